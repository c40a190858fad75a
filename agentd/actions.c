/* actions.c - see actions.h; the action routes (agentd/API.md "Actions"):
 * none yet. */
#include "actions.h"

#include <stdlib.h>

#include "api_int.h"
#include "core/err.h"

const api_route api_action_routes[1] = {{0}};
const size_t api_action_nroutes = 0;

struct actions {
    struct event_base *base;
    store *cmd;
    const acfg *cfg;
};

int actions_new(struct event_base *base, store *cmd, const store_config *sc, const acfg *cfg,
                actions **out, char *err, size_t errlen)
{
    (void)sc;
    (void)err;
    (void)errlen;
    actions *x = calloc(1, sizeof *x);
    if (!x)
        return ARIQ_ENOMEM;
    *x = (actions){.base = base, .cmd = cmd, .cfg = cfg};
    *out = x;
    return 0;
}

void actions_free(actions *x)
{
    free(x);
}
