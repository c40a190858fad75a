/* harness.h - drives queue_store against a real redis-server for the
 * queue_store tests: two "nodes" (two stores, two queue_stores) on one loop,
 * synchronous wrappers that send a request and run the loop (bounded) until
 * its callback, and readers of what Redis holds.
 *
 * Everything here is owned by the fixture; every wait is bounded. */
#ifndef ARIQ_TEST_QS_HARNESS_H
#define ARIQ_TEST_QS_HARNESS_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>

#include "redis_proc.h"
#include "store/queue_store.h"

#define HX_NODES 2
#define HX_PAIRS 64

typedef struct hx_node {
    store *s;
    queue_store *qs;
    int ready;
} hx_node;

typedef struct hx {
    struct event_base *base;
    redis_proc r;
    redisContext *rc; /* blocking, for inspection */
    hx_node n[HX_NODES];
    uint64_t now; /* the clock every queue_store uses */
} hx;

/* What one request's callback saw, copied out of the borrowed result. */
typedef struct hx_out {
    int done;
    int err;
    char errmsg[QS_ERRMSG_MAX];
    qs_enter_result enter; /* pairings pointer invalid: use pairs */
    qs_result res;         /* idem */
    qs_call_view call;
    qs_queue_view queue;
    size_t npairs;
    qs_pairing pairs[HX_PAIRS];
} hx_out;

/* Starts redis and two ready nodes "A" and "B" (scripts_dir NULL: the
 * repo's). Returns 0 or -1. */
int hx_start(hx *h, const char *scripts_dir);
/* Frees both nodes (stores first), the loop, the server. Returns the number
 * of events left on the loop (0 when clean). */
int hx_stop(hx *h);

/* cmocka fixtures: *state gets a started hx (freed on failure), with the
 * repo's scripts, those in dir, or those in $QS_SCRIPTS_DIR when set (a
 * mutated copy of queue.lua, to see a test fail without what it tests).
 * hx_teardown frees it and fails the test when the loop was left with
 * events. */
int hx_setup(void **state);
int hx_setup_dir(void **state, const char *scripts_dir);
int hx_setup_env(void **state);
int hx_teardown(void **state);

/* Runs the loop until *counter >= target or ms passed. */
bool hx_wait(hx *h, const int *counter, int target, int ms);

/* The last request's outcome, for the tests' own requests and HX_OK. */
extern hx_out hx_o;

/* Both nodes' last queue_store errors ("A: ... B: ..."), for failures. */
const char *hx_errors(hx *h);

/* Asserts that expr returned 0, and says why not: the last request's
 * message and both nodes' errors (needs a `hx *h` in scope). */
#define HX_OK(expr)                                                                      \
    do {                                                                                 \
        int rc_ = (expr);                                                                \
        if (rc_ != 0)                                                                    \
            fail_msg("%s: %s (%s | %s)", #expr, ariq_strerror(rc_), hx_o.errmsg,         \
                     hx_errors(h));                                                      \
    } while (0)

/* Asserts that the keyspace is what hx_snapshot returned as `before`
 * (freed here). */
#define HX_UNCHANGED(h, before)                                                          \
    do {                                                                                 \
        char *after_ = hx_snapshot(h);                                                   \
        assert_string_equal((before), after_);                                           \
        free(before);                                                                    \
        free(after_);                                                                    \
    } while (0)

/* 0-based rank of a call in a queue's callers, -1 when not there. */
long long hx_zrank(hx *h, const char *queue, const char *callid);

/* HGET into one of four rotating buffers ("" when missing): several may be
 * used in one expression. */
const char *hx_hget4(hx *h, const char *key, const char *field);

/* The callbacks, for a test sending its own requests (pd = hx_out *). */
void hx_enter_cb(queue_store *qs, int err, const qs_enter_result *res, void *pd);
void hx_result_cb(queue_store *qs, int err, const qs_result *res, void *pd);
void hx_call_cb(queue_store *qs, int err, const qs_call_view *res, void *pd);
void hx_queue_cb(queue_store *qs, int err, const qs_queue_view *res, void *pd);

/* Waits for a request sent with rc; returns the callback's err, or the send
 * error, or -100 on timeout. */
int hx_done(hx *h, int rc, hx_out *o);

/* Synchronous wrappers on node `node` (0 or 1). queues is "a&b". */
int hx_enter(hx *h, int node, const char *callid, int prio, const char *queues,
             bool autopair, hx_out *o);
int hx_login(hx *h, int node, const char *agentid, const char *queues, bool autopair,
             hx_out *o);

/* Redis inspection. Each returns a value the test owns, or -1. */
long long hx_int(hx *h, const char *fmt, ...);
/* HGET; "" when missing. Returns buf. */
const char *hx_hget(hx *h, const char *key, const char *field, char *buf, size_t len);
/* A canonical dump of the whole keyspace (sorted KEYS, DUMP of each) for
 * before/after comparisons. Caller frees. */
char *hx_snapshot(hx *h);
/* Number of keys in the db, leaving out the nodes' command streams
 * ({NS}:node:<node>:cmds: capped, they stay). */
long long hx_dbsize(hx *h);

/* The events stream. */
typedef struct hx_event {
    char id[32];
    int nf;
    char *f[40]; /* name, value, ... (owned by the hx_events) */
} hx_event;

typedef struct hx_events {
    int n;
    hx_event *v;
} hx_events;

void hx_events_read(hx *h, hx_events *out);
/* The same for any stream (a node's command stream). */
void hx_stream_read(hx *h, const char *key, hx_events *out);
void hx_events_free(hx_events *e);
/* A field of an event, or NULL. */
const char *hx_ev(const hx_event *e, const char *name);
/* Events named `name` (all when NULL) counted. */
int hx_count(const hx_events *e, const char *name);
/* The same over the events stream as Redis holds it now. */
int hx_count_events(hx *h, const char *name);
/* The index of the i-th (0-based) event named `name` with field `fname` =
 * fval (any when fname NULL), or -1. */
int hx_find(const hx_events *e, const char *name, const char *fname, const char *fval,
            int i);

#endif
