/* store_config.c - defaults, range checks and the redis:// URL parser.
 *
 * The URL comes from a config file or the environment, so it is outside
 * input: every part is bounded and validated, and no error message ever
 * quotes the userinfo (it holds the password). */
#include "store/store.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

#define URL_MAX 1024

void store_config_init(store_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 6379;
    snprintf(c->ns, sizeof c->ns, "%s", STORE_NS_DEFAULT);
    c->connect_timeout_ms = 5000;
    c->backoff_min_ms = 100;
    c->backoff_max_ms = 5000;
    c->reply_timeout_ms = 10000;
    c->health_interval_ms = 1000;
}

static int fail_msg(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return ARIQ_EINVAL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..n) into out (outlen bytes). A NUL byte, a broken
 * escape or an overlong result are errors: they could only be mistakes or
 * attacks. */
static bool pct_decode(const char *src, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)src[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval(src[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(src[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch == 0 || o + 1 >= outlen)
            return false;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return true;
}

/* Parses a decimal number of 1..9 digits in [s, s+n) within lo..hi. */
static bool parse_num(const char *s, size_t n, long lo, long hi, long *out)
{
    if (n == 0 || n > 9)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool host_char_ok(char c, bool v6)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        c == '.' || c == '-')
        return true;
    return v6 && c == ':';
}

/* Parses "host[:port]" or "[v6][:port]" in [s, s+n) into t. */
static int parse_hostport(const char *s, size_t n, store_config *t, char *err, size_t errlen)
{
    const char *h = s, *end = s + n, *colon;
    bool v6 = n > 0 && s[0] == '[';
    if (v6) {
        const char *close = memchr(s, ']', n);
        if (!close)
            return fail_msg(err, errlen, "redis URL: missing ']' after IPv6 host");
        h = s + 1;
        colon = close + 1 < end ? close + 1 : NULL;
        if (colon && *colon != ':')
            return fail_msg(err, errlen, "redis URL: unexpected text after IPv6 host");
        end = close;
    } else {
        colon = memchr(s, ':', n);
        if (colon)
            end = colon;
    }
    size_t hl = (size_t)(end - h);
    if (hl == 0)
        return fail_msg(err, errlen, "redis URL: missing host");
    if (hl >= sizeof t->host)
        return fail_msg(err, errlen, "redis URL: host too long");
    for (size_t i = 0; i < hl; i++)
        if (!host_char_ok(h[i], v6))
            return fail_msg(err, errlen, "redis URL: bad character in host");
    memcpy(t->host, h, hl);
    t->host[hl] = '\0';
    if (colon) {
        long port;
        if (!parse_num(colon + 1, (size_t)(s + n - colon - 1), 1, 65535, &port))
            return fail_msg(err, errlen, "redis URL: port must be a number 1..65535");
        t->port = (int)port;
    }
    return 0;
}

/* Parses "[user]:password" in [s, s+n) into t. The message never quotes it. */
static int parse_userinfo(const char *s, size_t n, store_config *t, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    if (!colon)
        return fail_msg(err, errlen,
                        "redis URL: credentials must be written [user]:password@");
    size_t ul = (size_t)(colon - s);
    if (!pct_decode(s, ul, t->username, sizeof t->username))
        return fail_msg(err, errlen, "redis URL: bad or too long user name");
    if (!pct_decode(colon + 1, n - ul - 1, t->password, sizeof t->password))
        return fail_msg(err, errlen, "redis URL: bad percent-encoding or too long password");
    return 0;
}

static int parse_db(const char *s, size_t n, store_config *t, char *err, size_t errlen)
{
    long db = 0;
    if (n > 0 && !parse_num(s, n, 0, STORE_DB_MAX, &db))
        return fail_msg(err, errlen, "redis URL: db must be a number 0..65535 after '/'");
    t->db = (int)db;
    return 0;
}

int store_config_set_url(store_config *c, const char *url, char *err, size_t errlen)
{
    static const char scheme[] = "redis://";
    if (!url)
        return fail_msg(err, errlen, "redis URL: missing");
    size_t n = strnlen(url, URL_MAX + 1);
    if (n > URL_MAX)
        return fail_msg(err, errlen, "redis URL: too long");
    if (strncasecmp(url, "rediss://", 9) == 0)
        return fail_msg(err, errlen, "redis URL: TLS (rediss://) is not supported");
    if (strncasecmp(url, scheme, sizeof scheme - 1) != 0)
        return fail_msg(err, errlen, "redis URL: must start with redis://");
    const char *a = url + sizeof scheme - 1;
    if (strpbrk(a, "?#"))
        return fail_msg(err, errlen, "redis URL: query strings and fragments are not supported");
    const char *slash = strchr(a, '/');
    const char *aend = slash ? slash : url + n;
    const char *at = NULL;
    for (const char *p = a; p < aend; p++) /* the last '@' ends the userinfo */
        if (*p == '@')
            at = p;

    store_config t = *c;
    t.username[0] = t.password[0] = '\0';
    t.port = 6379;
    const char *hp = at ? at + 1 : a;
    int rc = at ? parse_userinfo(a, (size_t)(at - a), &t, err, errlen) : 0;
    if (rc == 0)
        rc = parse_hostport(hp, (size_t)(aend - hp), &t, err, errlen);
    if (rc == 0)
        rc = parse_db(slash ? slash + 1 : aend, slash ? (size_t)(url + n - slash - 1) : 0, &t,
                      err, errlen);
    if (rc == 0)
        *c = t;
    memset(&t, 0, sizeof t); /* do not leave a copy of the password on the stack */
    return rc;
}

int store_config_check(const store_config *c, char *err, size_t errlen)
{
    if (!c->host[0] || memchr(c->host, '\0', sizeof c->host) == NULL)
        return fail_msg(err, errlen, "redis: host missing");
    if (c->port < 1 || c->port > 65535)
        return fail_msg(err, errlen, "redis: port must be 1..65535");
    if (c->db < 0 || c->db > STORE_DB_MAX)
        return fail_msg(err, errlen, "redis: db must be 0..65535");
    if (!store_keys_ns_valid(c->ns))
        return fail_msg(err, errlen,
                        "redis: namespace must be 1..32 characters of [A-Za-z0-9_-]");
    if (c->connect_timeout_ms < 10 || c->connect_timeout_ms > 600000)
        return fail_msg(err, errlen, "redis: connect_timeout_ms must be 10..600000");
    if (c->backoff_min_ms < 1 || c->backoff_max_ms < c->backoff_min_ms ||
        c->backoff_max_ms > 600000)
        return fail_msg(err, errlen, "redis: need 1 <= backoff_min_ms <= backoff_max_ms <= 600000");
    if (c->reply_timeout_ms != 0 && (c->reply_timeout_ms < 10 || c->reply_timeout_ms > 600000))
        return fail_msg(err, errlen, "redis: reply_timeout_ms must be 0 or 10..600000");
    if (c->health_interval_ms < 10 || c->health_interval_ms > 60000)
        return fail_msg(err, errlen, "redis: health_interval_ms must be 10..60000");
    return 0;
}
