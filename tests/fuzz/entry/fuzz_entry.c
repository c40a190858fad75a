/* Fuzz target: Stasis(queue,...) arguments, split on NUL bytes into args
 * (the first arg of the input may also be used as the caller id). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *args[8];
    size_t n = 0;
    for (size_t i = 0; i <= size && n < 8;) {
        args[n++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    entry_args e;
    char err[256];
    const char *num = n > 1 ? args[n - 1] : NULL;
    if (entry_args_parse(args, n > 1 ? n - 1 : n, num, &e, err, sizeof err) == 0) {
        bool link = e.role == ENTRY_LINK || e.role == ENTRY_LINKOUT;
        if (!link && (e.nqueues == 0 || e.nqueues > ENTRY_MAX_QUEUES))
            abort(); /* a caller or agent always has its queues */
        if (link && e.pairing[0] == '\0')
            abort(); /* a link always names its pairing */
    }
    free(buf);
    return 0;
}
