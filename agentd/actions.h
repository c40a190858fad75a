/* actions.h - agentd's actions on channels (agentd/API.md "Actions"),
 * carried out by the node that owns the channel: a command on the node's
 * stream {NS}:node:<node>:cmds, and the node's answer on this agentd's
 * reply stream, which `actions` reads on a Redis connection of its own.
 *
 * The routes are api_action_routes (api_int.h). Each request: the owner
 * from the party's record (`node`; 404 without one), the node's heartbeat
 * (503 without it), the command XADDed with req `<agentd_id>-<n>`, then the
 * reply entry with that req answers the request with the node's status and
 * body; 504 when none came within action_timeout_ms (a later one is
 * dropped). rec_fetch serves {NS}:recfile:<req> (deleted after; 413 over
 * max_download). Redis away: 503. Requests are answered, or dropped at
 * actions_free, never leaked; the server tells nobody when a client goes
 * away, so such a request lives until its reply or its timeout at most.
 * Durations are not time-scaled: deadline_ms is wall time the node checks. */
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
