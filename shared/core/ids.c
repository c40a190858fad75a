#include "core/ids.h"
#include "core/err.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static void random_bytes(uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
    }
}

void ids_uuid(char *out)
{
    uint8_t b[16];
    random_bytes(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, IDS_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int ids_make(const char *prefix, char *out, size_t outlen)
{
    if (!ids_valid(prefix, 64))
        return ARIQ_EINVAL;
    uint8_t b[8];
    random_bytes(b, sizeof b);
    int n = snprintf(out, outlen, "%s-%02x%02x%02x%02x%02x%02x%02x%02x", prefix, b[0], b[1],
                     b[2], b[3], b[4], b[5], b[6], b[7]);
    return (n < 0 || (size_t)n >= outlen) ? ARIQ_ERANGE : 0;
}

bool ids_valid(const char *s, size_t maxlen)
{
    if (!s || !*s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || n >= maxlen)
            return false;
    }
    return true;
}
