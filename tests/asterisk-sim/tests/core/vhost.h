/* vhost.h - a virtual-clock host for the simulator core: timers in a sorted
 * list fired by vhost_advance(), events captured in memory. No sockets, no
 * sleeping: tests drive time explicitly. */
#ifndef ARIQ_SIM_VHOST_H
#define ARIQ_SIM_VHOST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "sim_core.h"

typedef struct vhost vhost;

/* Called for every emitted event after it is captured (may be NULL); the
 * event is borrowed for the call only. */
typedef void (*vhost_event_fn)(vhost *vh, int node, const json_t *event, void *ud);

/* A host at wall time start_ms with a sim of the given scale (owned). */
vhost *vhost_new(uint64_t start_ms, double scale);
void vhost_free(vhost *vh); /* frees the sim too; NULL is a no-op */
sim *vhost_sim(vhost *vh);
uint64_t vhost_now(const vhost *vh);
void vhost_set_event_fn(vhost *vh, vhost_event_fn fn, void *ud);
/* Events are captured by default; off for load tests (the fn still runs). */
void vhost_set_capture(vhost *vh, bool on);
/* Fires every timer due within ms, in order, moving the clock; returns how
 * many fired. */
int vhost_advance(vhost *vh, uint64_t ms);
int vhost_pending(const vhost *vh); /* armed timers */

/* Events captured so far: array of {"node":int,"event":{...}} (borrowed). */
json_t *vhost_events(vhost *vh);
void vhost_clear_events(vhost *vh);
/* Types of the events for channel `id` (also Dial peers), in order, as one
 * space-separated string in buf; ChannelVarset of BRIDGEPEER and
 * STASISSTATUS (Asterisk's own noise) left out. */
const char *vhost_chan_types(vhost *vh, const char *id, char *buf, size_t len);

/* One request; "path?query" is split here. Returns the parsed body (new
 * reference, NULL when empty) and sets *status. */
json_t *vhost_req(vhost *vh, int node, const char *method, const char *path_query,
                  const char *body, int *status);

#endif
