/* node.h - one queued node: the Asterisk it serves over ARI, Redis, and the
 * legs (callers, agents, links) of the channels that Asterisk hands it.
 *
 * A node owns, on one libevent loop: the ARI REST client, the ARI events
 * WebSocket (its own lws thread; events arrive on the loop), the Redis store,
 * and a registry of legs by channel id. ARI events are dispatched by table:
 * StasisStart starts a leg (or turns the channel away with QUEUESTATUS),
 * every other channel event goes to the leg that owns the channel, and events
 * about channels no leg owns are ignored (a normal sight: a leg may already
 * have ended).
 *
 * Today the node turns away every entry it cannot serve (malformed
 * arguments, unknown queue) exactly as app_queue users expect: QUEUESTATUS is
 * set and the channel continues in the dialplan. The caller and agent legs
 * are being built on this (issue 3). */
#ifndef ARIQ_QUEUED_NODE_H
#define ARIQ_QUEUED_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "qconfig.h"

struct event_base;
typedef struct node node;

typedef struct node_stats {
    uint64_t stasis_starts; /* channels handed to the app */
    uint64_t turned_away;   /* continued with a QUEUESTATUS */
    uint64_t events;        /* ARI events handled */
    uint64_t unowned;       /* events about channels no leg owns */
} node_stats;

/* Creates the node on `base` (borrowed, must outlive it) with config `cfg`
 * (borrowed, must outlive it) and starts connecting to ARI and Redis; no
 * callback runs inside this call. Returns 0 and *out (yours: node_free), or a
 * negative ARIQ_ code with a message in err (bad URL, unreadable scripts). */
int node_new(struct event_base *base, const qcfg *cfg, node **out, char *err, size_t errlen);

/* Disconnects and frees everything. Channels stay where they are in
 * Asterisk (a restart re-adopts them). NULL is a no-op. */
void node_free(node *n);

void node_get_stats(const node *n, node_stats *out);

/* Graceful stop (SIGTERM): the node starts no new call. Redis is told
 * (queue.lua node_drain: no node pairs this node's waiting callers or free
 * agents meanwhile; they stay where they are, for the restart to re-adopt),
 * the node's own sweep stops, and the calls in progress go on. done(n, ud)
 * runs once, from the loop, when no call is left or drain_timeout_s has
 * passed (those still talking go on in Asterisk: the restart re-adopts
 * them). A second call changes nothing. */
typedef void (*node_drained_fn)(node *n, void *ud);
void node_drain(node *n, node_drained_fn done, void *ud);

#endif
