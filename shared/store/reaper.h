/* reaper.h - offering every node of {NS}:nodes to queue.lua `reap`.
 *
 * A node whose heartbeat lapsed is dead: its callers, agents and pairings
 * must leave the queues. Whoever runs the janitor (every queued node, and
 * agentd) calls reaper_offer once per heartbeat period: it reads
 * {NS}:nodes and sends qs_reap for each member but `self`; the script
 * refuses a node whose heartbeat still exists (BADSTATE, silent here) and
 * reaps one whose heartbeat lapsed, in batches until nothing is left. reap
 * is idempotent, so any number of janitors at once are harmless.
 *
 * After Redis comes back every heartbeat may have lapsed while it was away
 * (the nodes could not beat): reaper_hold keeps the reaper quiet until the
 * nodes have had time to beat again.
 *
 * Ownership: the reaper borrows `s` and `qs`, and its requests in flight
 * point to it. Free the store first (it completes them with NULL), then
 * the reaper, then qs; a reaper freed with requests still in flight is
 * released when the last of them completes. */
#ifndef ARIQ_STORE_REAPER_H
#define ARIQ_STORE_REAPER_H

#include <stdint.h>

#include "store/queue_store.h"

typedef struct reaper reaper;

/* Creates a reaper on s and qs (borrowed). `self` (copied; NULL or "" for
 * none) is never offered: a node does not reap itself. Returns 0 and *out
 * (yours: reaper_free), ARIQ_EINVAL (self too long) or ARIQ_ENOMEM. */
int reaper_new(store *s, queue_store *qs, const char *self, reaper **out);

/* Frees r (see Ownership). NULL does nothing. */
void reaper_free(reaper *r);

/* Reads {NS}:nodes and offers each member to qs_reap, unless the store is
 * not ready or a hold is on. Logs what it reaped (a lost node is a warning).
 * Nothing is returned: the next period tries again. */
void reaper_offer(reaper *r);

/* No offer before the monotonic time until_ms (clock_mono_ms). */
void reaper_hold(reaper *r, uint64_t until_ms);

/* After reaper_stop nothing new is sent (batches in flight end after their
 * reply): for an owner that is closing but has not freed the store yet. */
void reaper_stop(reaper *r);

/* Counters for tests and health. */
typedef struct reaper_stats {
    uint64_t offers;   /* SMEMBERS sent */
    uint64_t reaped;   /* records removed (pairings + calls + agents) */
    uint64_t failures; /* reap errors other than "alive" */
} reaper_stats;
void reaper_get_stats(const reaper *r, reaper_stats *out);

#endif
