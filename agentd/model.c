/* model.c - see model.h. */
#include "model.h"

#include <stdlib.h>

#include "core/err.h"

struct model {
    struct event_base *base;
    store *st;
    const acfg *cfg;
};

int model_new(struct event_base *base, store *st, const acfg *cfg, model **out, char *err,
              size_t errlen)
{
    (void)err;
    (void)errlen;
    model *m = calloc(1, sizeof *m);
    if (!m)
        return ARIQ_ENOMEM;
    *m = (model){.base = base, .st = st, .cfg = cfg};
    *out = m;
    return 0;
}

void model_free(model *m)
{
    free(m);
}
