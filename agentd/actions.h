/* actions.h - agentd's actions on channels (agentd/API.md "Actions"),
 * carried out by the node that owns the channel: a command on the node's
 * stream {NS}:node:<node>:cmds, and the node's answer on this agentd's
 * reply stream, which `actions` reads on a Redis connection of its own.
 *
 * (To be built.) */
#ifndef ARIQ_AGENTD_ACTIONS_H
#define ARIQ_AGENTD_ACTIONS_H

#include <stddef.h>

#include "aconfig.h"
#include "store/store.h"

struct event_base;
typedef struct actions actions;

/* Creates the actions on `base`: commands sent through `cmd` (borrowed),
 * replies read on a connection of its own made from `sc` (copied).
 * Returns 0 and *out (yours: actions_free), or a negative ARIQ_ code with
 * err. */
int actions_new(struct event_base *base, store *cmd, const store_config *sc, const acfg *cfg,
                actions **out, char *err, size_t errlen);
/* Requests still waiting get no reply (the server is freed first). NULL
 * does nothing. */
void actions_free(actions *x);

#endif
