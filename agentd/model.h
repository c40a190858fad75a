/* model.h - agentd's read model: what the read routes, /metrics and the
 * wallboard show (agentd/API.md "Read"), from Redis.
 *
 * (To be built: a snapshot of queues, waiting callers, agents, live calls
 * and recordings, read with one script and shared by every request while
 * it is younger than `snapshot_ms`; counters and histograms from the
 * events stream for service level and /metrics.) */
#ifndef ARIQ_AGENTD_MODEL_H
#define ARIQ_AGENTD_MODEL_H

#include <stddef.h>

#include "aconfig.h"
#include "store/store.h"

struct event_base;
typedef struct model model;

/* Creates the model on `base`, reading through `st` (borrowed). Returns 0
 * and *out (yours: model_free), or a negative ARIQ_ code with err. */
int model_new(struct event_base *base, store *st, const acfg *cfg, model **out, char *err,
              size_t errlen);
/* NULL does nothing. */
void model_free(model *m);

#endif
