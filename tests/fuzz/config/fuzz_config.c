/* Fuzz target: the INI config loader and the table-driven validation, which
 * read files an operator writes (outside input). Any input must give either a
 * config or an error message naming file:line, never a crash or a leak. */
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

typedef struct fz_general {
    char node_id[32];
    char secret[64];
    long n;
    bool b;
    double d;
    char key;
} fz_general;

static const cfg_field fields[] = {
    {"node_id", CFG_ID, offsetof(fz_general, node_id), 0, 32, "n1", false},
    {"password", CFG_SECRET, offsetof(fz_general, secret), 0, 64, "", false},
    {"announce_frequency", CFG_INT, offsetof(fz_general, n), 0, 3600, "30", false},
    {"announce_on_join", CFG_BOOL, offsetof(fz_general, b), 0, 0, "no", false},
    {"scale", CFG_DOUBLE, offsetof(fz_general, d), 0, 100, "1", false},
    {"key_record", CFG_DTMF, offsetof(fz_general, key), 0, 0, "0", false},
    {NULL, 0, 0, 0, 0, NULL, false},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* a NUL inside just ends the text early */
    cfg *c = NULL;
    char err[256];
    if (cfg_load_string(text, "fuzz.conf", &c, err, sizeof err) == 0) {
        for (size_t i = 0; i < cfg_section_count(c); i++) {
            fz_general g;
            memset(&g, 0, sizeof g);
            (void)cfg_apply(c, (int)i, fields, &g, err, sizeof err);
            (void)cfg_get(c, (int)i, "node_id");
        }
        cfg_free(c);
    }
    free(text);
    return 0;
}
