/* model.h - agentd's read model: what the read routes, /metrics and the
 * wallboard show (agentd/API.md "Read"), from Redis.
 *
 * Two parts:
 *
 * The snapshot: queues, waiting callers, agents, live pairings, the newest
 * recordings and the nodes, read with ONE read-only script (EVAL), so it is
 * one consistent instant of Redis. It is shared by every request while it
 * is younger than `snapshot_ms`; a request arriving while a read is in
 * flight waits for that read (coalescing: at most one read in flight). The
 * script costs O(records) (each call, agent, pairing hash read once; each
 * queue's callers zset read once), so 5,000 waiting callers are one pass.
 *
 * The counters: the `{NS}:events` stream, read back `service_level_window_s`
 * at start (XRANGE pages on the command store) and then followed through
 * the events feed's own reader (events_follow: one read of the stream per
 * agentd, not a second poll), gives per queue the service level window (minute
 * buckets of CONNECT / ABANDON / EXITWITHTIMEOUT) and, for entries written
 * since agentd started, the counters and histograms of /metrics. */
#ifndef ARIQ_AGENTD_MODEL_H
#define ARIQ_AGENTD_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aconfig.h"
#include "events.h"
#include "store/store.h"

struct event_base;
typedef struct model model;

/* Agent counts of a queue, in API.md's order. */
enum { MA_LOGGED_IN, MA_WAITING, MA_CONNECTING, MA_TALKING, MA_WRAPUP, MA_PAUSED, MA_COUNT };
extern const char *const model_agent_count_names[MA_COUNT];

/* Service level over the window (API.md "Read"). */
typedef struct model_sl {
    int64_t answered, answered_within, abandoned;
} model_sl;

/* One Redis record: its id and its hash as a JSON object of strings. */
typedef struct model_rec {
    char *id;
    json_t *h;
} model_rec;

typedef struct model_queue {
    char *name;
    size_t ncallers;
    size_t *callers;           /* indexes into snap->calls, in queue order */
    int64_t agents[MA_COUNT];
    int64_t longest_wait_ms;
    model_sl sl;
    char *body;                /* read.c's rendered GET /queues/{name}, or NULL */
    size_t body_len;
} model_queue;

typedef struct model_node {
    char *name;
    bool up;    /* its heartbeat key exists */
    json_t *stats; /* {NS}:node:<n>:stats as strings; NULL when absent */
} model_node;

/* A snapshot. Everything is owned by the model; a snapshot handed to a
 * model_fn is BORROWED for that call only. The render fields are for the
 * routes to cache what they rendered from it (freed with it). */
typedef struct model_snap {
    uint64_t as_of_ms; /* wall ms when the read was sent */
    size_t nqueues;
    model_queue *queues; /* by name */
    size_t ncalls;
    model_rec *calls; /* every call record (waiting, paired, bridged); h holds channel,
                          node, queues, state, priority, entered_ms, cid_num, cid_name,
                          pairing only */
    size_t nagents;
    model_rec *agents; /* by id */
    size_t npairings;
    model_rec *pairings; /* oldest first; h also has "rec_state" */
    size_t nrecordings;
    model_rec *recordings; /* newest first, at most 1000 */
    size_t nnodes;
    model_node *nodes; /* by name */
    char *queues_body; /* read.c's rendered GET /queues, or NULL */
    size_t queues_body_len;
} model_snap;

/* Creates the model on `base`, reading through `st` (borrowed); after its
 * read-back of the events window it follows `feed` (borrowed, freed after
 * the model: events_follow) instead of reading the stream again. Returns 0
 * and *out (yours: model_free), or a negative ARIQ_ code with err. */
int model_new(struct event_base *base, store *st, events *feed, const acfg *cfg, model **out,
              char *err, size_t errlen);
/* Drops the waiters without calling them (free the HTTP server first: it
 * has freed their requests). NULL does nothing. */
void model_free(model *m);

/* Called exactly once with a usable snapshot (BORROWED for the call), or
 * with NULL when there is none (Redis away and the last one older than
 * 10 x snapshot_ms). */
typedef void (*model_fn)(model *m, model_snap *s, void *ud);
/* Calls fn now (a fresh snapshot) or once the read in flight completes.
 * Returns 0, or ARIQ_ENOMEM (fn not called). */
int model_get(model *m, model_fn fn, void *ud);

/* String field of a record's hash, "" when absent (BORROWED). */
const char *model_str(const json_t *h, const char *field);
/* Integer field, 0 when absent or not a number. */
long long model_int(const json_t *h, const char *field);
/* Record by id (linear), NULL when absent. */
const model_rec *model_find(const model_rec *v, size_t n, const char *id);

/* ---- counters from the events stream (since agentd started) ---- */

#define MODEL_LAT_NB 10 /* pairing latency buckets, seconds */
extern const double model_lat_le[MODEL_LAT_NB];

typedef struct model_hist {
    uint64_t bucket[MODEL_LAT_NB]; /* not cumulative; +Inf is count */
    double sum;
    uint64_t count;
} model_hist;

typedef struct model_qcount {
    uint64_t pairings, connects, abandons, timeouts, rollbacks;
    model_hist latency;
} model_qcount;

/* Calls fn for each queue seen in the stream since start. */
void model_each_count(const model *m, void (*fn)(const char *queue, const model_qcount *c,
                                                  void *ud), void *ud);
const model_hist *model_cross_node(const model *m);
/* Service level of `queue` now. */
void model_service_level(const model *m, const char *queue, model_sl *out);
/* Stream entries read (backfill included), for tests and health. */
uint64_t model_entries_read(const model *m);
/* Sends one command on the model's store; cb runs exactly once (reply NULL
 * when the connection is lost) unless the model is freed first: then never
 * (a request's reply would go to a freed server). Returns 0 or the store's
 * error (cb not called). */
int model_command(model *m, int argc, const char **argv, store_cb cb, void *pd);

#endif
