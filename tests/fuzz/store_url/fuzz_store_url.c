/* Fuzz target: the redis:// URL parser (configuration, outside input). Any
 * input gives a parsed config or a message, never a crash, and a rejected URL
 * leaves the config as it was. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    if (!url)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    store_config c, before;
    store_config_init(&c);
    before = c;
    char err[256];
    if (store_config_set_url(&c, url, err, sizeof err) != 0) {
        if (memcmp(&c, &before, sizeof c) != 0)
            abort(); /* a rejected URL must change nothing */
    } else {
        (void)store_config_check(&c, err, sizeof err);
    }
    free(url);
    return 0;
}
