/* queue_store's graceful drain against a real redis-server: node_drain (a
 * node stopping starts no new call; its waiting callers and free agents stay
 * where they are, passed over by every pairing, until it stops draining or
 * its flag lapses), the pairing order among the others (multi-queue
 * tie-breaks included), the bound on how far down a queue the pairing
 * looks, reconcile clearing the flag, bad arguments, and the cost of the
 * check when nobody drains.
 *
 * Each test runs its own server and the harness's nodes "A" (0) and "B" (1)
 * on one loop, and ends with every store freed and the loop empty.
 * QS_SCRIPTS_DIR names another scripts directory than the repo's: a mutated
 * copy of queue.lua, to see these tests fail without what they test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "harness.h"

#define OK       HX_OK
#define setup    hx_setup_env
#define teardown hx_teardown
#define A        0
#define B        1

/* node_drain on `node`; the result in hx_o. */
static int drain(hx *h, int node, bool on, int64_t ttl_ms)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_node_drain(h->n[node].qs, on, ttl_ms, hx_result_cb, &hx_o),
                   &hx_o);
}

/* The sweep of queue q run by `node`; the pairings in hx_o. */
static int pair_queue(hx *h, int node, const char *q)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_pair_queue(h->n[node].qs, q, hx_result_cb, &hx_o), &hx_o);
}

/* Asserts that pairing i of o is call with agent in queue q. */
static void paired(const hx_out *o, size_t i, const char *call, const char *agent,
                   const char *q)
{
    if (i >= o->npairs)
        fail_msg("pairing %zu of %zu: none (expected %s with %s)", i, o->npairs, call,
                 agent);
    if (strcmp(o->pairs[i].call, call) != 0 || strcmp(o->pairs[i].agent, agent) != 0 ||
        strcmp(o->pairs[i].queue, q) != 0)
        fail_msg("pairing %zu: %s with %s in %s, expected %s with %s in %s", i,
                 o->pairs[i].call, o->pairs[i].agent, o->pairs[i].queue, call, agent, q);
}

static long long score(hx *h, const char *q, const char *callid)
{
    return hx_int(h, "ZSCORE {ariq}:queue:%s:callers %s", q, callid);
}

static const char *state_of(hx *h, const char *kind, const char *id)
{
    char key[QS_ID_MAX + 32];
    snprintf(key, sizeof key, "{ariq}:%s:%s", kind, id);
    return hx_hget4(h, key, "state");
}

/* ---- callers --------------------------------------------------------------- */

/* B drains: its caller at the front is passed over, A's next caller is
 * paired with A's free agent; B's caller keeps its score and rank. Nothing
 * pairs it while B drains, by either node; once B stops, the sweep pairs it
 * first. */
static void test_caller_passed_over(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(drain(h, B, true, 60000));
    assert_string_equal(hx_o.res.outcome, "STARTED");
    assert_string_equal(hx_o.res.state, "on");
    OK(hx_enter(h, B, "b1", 0, "q", false, &o));
    long long sb1 = o.enter.score;
    OK(hx_enter(h, A, "c1", 0, "q", false, &o));
    OK(hx_enter(h, A, "c2", 0, "q", false, &o));
    OK(hx_login(h, A, "a1", "q", false, &o));
    OK(pair_queue(h, A, "q"));
    assert_int_equal(hx_o.npairs, 1);
    paired(&hx_o, 0, "c1", "a1", "q");
    assert_int_equal(hx_zrank(h, "q", "b1"), 0);
    assert_int_equal(score(h, "q", "b1"), sb1);
    assert_int_equal(hx_zrank(h, "q", "c2"), 1);
    assert_string_equal(state_of(h, "call", "b1"), "waiting");
    /* a second free agent goes to c2; B's own sweep does not take b1 either */
    OK(hx_login(h, A, "a2", "q", false, &o));
    OK(pair_queue(h, B, "q"));
    assert_int_equal(hx_o.npairs, 1);
    paired(&hx_o, 0, "c2", "a2", "q");
    OK(hx_login(h, A, "a3", "q", false, &o));
    OK(pair_queue(h, A, "q"));
    assert_int_equal(hx_o.npairs, 0);
    assert_int_equal(hx_zrank(h, "q", "b1"), 0);
    /* B stops: the next sweep pairs b1 first, at its place */
    OK(hx_enter(h, A, "c3", 0, "q", false, &o));
    OK(drain(h, B, false, 0));
    assert_string_equal(hx_o.res.outcome, "STOPPED");
    assert_string_equal(hx_o.res.state, "off");
    assert_int_equal(hx_zrank(h, "q", "b1"), 0); /* nothing paired at once */
    OK(pair_queue(h, A, "q"));
    assert_int_equal(hx_o.npairs, 1);
    paired(&hx_o, 0, "b1", "a3", "q");
    assert_int_equal(hx_zrank(h, "q", "c3"), 0);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:B:draining {ariq}:draining"), 0);
}

/* The flag lapses by itself (a short PX): the sweep pairs B's caller again,
 * the index forgets B, and an off after the lapse changes nothing. */
static void test_ttl_lapse(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_enter(h, B, "b1", 0, "q", false, &o));
    OK(hx_enter(h, A, "c1", 0, "q", false, &o));
    OK(drain(h, B, true, 1000));
    OK(hx_login(h, A, "a1", "q", false, &o));
    OK(pair_queue(h, A, "q"));
    paired(&hx_o, 0, "c1", "a1", "q");
    OK(hx_login(h, A, "a2", "q", false, &o));
    OK(pair_queue(h, A, "q"));
    assert_int_equal(hx_o.npairs, 0);
    uint64_t end = clock_mono_ms() + 3000;
    while (hx_int(h, "EXISTS {ariq}:node:B:draining") == 1 && clock_mono_ms() < end)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:B:draining"), 0);
    assert_int_equal(hx_int(h, "SISMEMBER {ariq}:draining B"), 1);
    OK(pair_queue(h, A, "q"));
    assert_int_equal(hx_o.npairs, 1);
    paired(&hx_o, 0, "b1", "a2", "q");
    assert_int_equal(hx_int(h, "EXISTS {ariq}:draining"), 0);
    int n = hx_count_events(h, NULL);
    OK(drain(h, B, false, 0));
    assert_string_equal(hx_o.res.outcome, "NOTDRAINING");
    assert_int_equal(hx_count_events(h, NULL), n);
}

/* ---- agents ----------------------------------------------------------------- */

/* An agent of a draining node is not offered: the agents of other nodes
 * are, in the order they became free; it keeps its place and is first once
 * its node stops. */
static void test_agent_passed_over(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_login(h, B, "b1", "q", false, &o));
    long long seq_b1 = o.res.seq;
    OK(hx_login(h, A, "a1", "q", false, &o));
    OK(hx_login(h, B, "b2", "q", false, &o));
    OK(hx_login(h, A, "a2", "q", false, &o));
    OK(drain(h, B, true, 60000));
    OK(hx_enter(h, A, "c1", 0, "q", true, &o));
    paired(&o, 0, "c1", "a1", "q");
    OK(hx_enter(h, B, "c2", 0, "q&r", false, &o)); /* B's caller: passed over too */
    OK(hx_enter(h, A, "c3", 0, "q", true, &o));
    paired(&o, 0, "c3", "a2", "q");
    OK(hx_enter(h, A, "c4", 0, "q", true, &o));
    assert_int_equal(o.npairs, 0);
    assert_string_equal(state_of(h, "agent", "b1"), "free");
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:agents b1"), seq_b1);
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:q:agents"), 2);
    OK(drain(h, B, false, 0));
    OK(pair_queue(h, A, "q"));
    assert_int_equal(hx_o.npairs, 2);
    paired(&hx_o, 0, "c2", "b1", "q");
    paired(&hx_o, 1, "c4", "b2", "q");
}

/* ---- autopair --------------------------------------------------------------- */

/* Every op's autopair goes through the same loop: enter, agent_login,
 * agent_ready, agent_pause (unpause) and leave pair nobody of B while it
 * drains, and the others in order. */
static void test_autopair(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(drain(h, B, true, 60000));
    OK(hx_enter(h, A, "c1", 0, "q", false, &o));
    OK(hx_login(h, B, "b1", "q", true, &o)); /* B's agent: not c1's */
    assert_int_equal(o.npairs, 0);
    OK(hx_enter(h, B, "cb", 0, "q", true, &o)); /* B's caller, b1 free: no */
    assert_int_equal(o.npairs, 0);
    OK(hx_login(h, A, "a1", "q", true, &o)); /* A's agent: c1, behind cb */
    assert_int_equal(o.npairs, 1);
    paired(&o, 0, "c1", "a1", "q");
    OK(hx_enter(h, A, "c2", 0, "q", false, &o));
    /* leave: a1's caller abandons, a1 is free again and takes c2 */
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h,
               qs_leave(h->n[A].qs, "c1", QS_LEAVE_HANGUP, QS_BY_CALLER, 0, true,
                        hx_result_cb, &hx_o),
               &hx_o));
    assert_int_equal(hx_o.npairs, 1);
    paired(&hx_o, 0, "c2", "a1", "q");
    /* agent_pause: b1 unpaused while B drains: free, not paired */
    OK(hx_enter(h, A, "c3", 0, "q", false, &o));
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_agent_pause(h->n[B].qs, "b1", true, "x", false, hx_result_cb, &hx_o),
               &hx_o));
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_agent_pause(h->n[B].qs, "b1", false, "", true, hx_result_cb, &hx_o),
               &hx_o));
    assert_string_equal(hx_o.res.state, "free");
    assert_int_equal(hx_o.npairs, 0);
    /* agent_ready: a1 ends a call into wrapup, then ready: c3 (cb passed over) */
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h,
               qs_bridged(h->n[A].qs, hx_hget4(h, "{ariq}:agent:a1", "pairing"),
                          QS_SIDE_BOTH, hx_result_cb, &hx_o),
               &hx_o));
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h,
               qs_leave(h->n[A].qs, "c2", QS_LEAVE_HANGUP, QS_BY_CALLER, 5000, true,
                        hx_result_cb, &hx_o),
               &hx_o));
    assert_string_equal(state_of(h, "agent", "a1"), "wrapup");
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_agent_ready(h->n[A].qs, "a1", true, hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 1);
    paired(&hx_o, 0, "c3", "a1", "q");
    assert_int_equal(hx_zrank(h, "q", "cb"), 0);
    assert_string_equal(state_of(h, "agent", "b1"), "free");
}

/* ---- the order among the others ----------------------------------------------- */

/* Two queues, B draining with an early caller in both and the longest-free
 * agent in both. The first open caller of q and of r is then the same (c1):
 * the tie goes to the queue whose first open agent is free longest (r).
 * Then priority over arrival among the open callers (q by score), and the
 * loop goes on into r. B's parties are never taken; once B stops, they are
 * first. */
static void test_multi_queue(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_enter(h, B, "b1", 0, "q&r", false, &o));
    OK(hx_enter(h, A, "c1", 0, "q&r", false, &o));
    OK(hx_login(h, B, "bg", "q&r", false, &o));
    OK(hx_login(h, A, "ar", "r", false, &o));
    OK(hx_login(h, A, "aq", "q", false, &o));
    OK(drain(h, B, true, 60000));
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_pair_call(h->n[A].qs, "c1", hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 1);
    paired(&hx_o, 0, "c1", "ar", "r");
    /* c3 (r, priority 0) arrives before c4 (q, priority 5); aqr frees last */
    OK(hx_enter(h, A, "c3", 0, "r", false, &o));
    OK(hx_enter(h, A, "c4", 5, "q", false, &o));
    OK(hx_login(h, A, "aqr", "q&r", false, &o));
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_pair_agent(h->n[A].qs, "aqr", hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 2);
    paired(&hx_o, 0, "c4", "aq", "q");
    paired(&hx_o, 1, "c3", "aqr", "r");
    assert_int_equal(hx_zrank(h, "q", "b1"), 0);
    assert_int_equal(hx_zrank(h, "r", "b1"), 0);
    assert_string_equal(state_of(h, "agent", "bg"), "free");
    /* B stops: b1 with bg, in q (the first queue, the agent the same) */
    OK(drain(h, B, false, 0));
    OK(hx_enter(h, A, "c5", 0, "r", false, &o));
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_pair_call(h->n[A].qs, "b1", hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 1);
    paired(&hx_o, 0, "b1", "bg", "q");
}

/* A caller of A behind many of B's: found within the bound (200 passed
 * over), given up past it (300); B's callers keep their order either way. */
static void test_scan_bound(void **state)
{
    hx *h = *state;
    hx_out o;
    char id[32];
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "b%d", i);
        OK(hx_enter(h, B, id, 0, i < 200 ? "near&far" : "far", false, &o));
    }
    OK(hx_enter(h, A, "c1", 0, "near", false, &o));
    OK(hx_enter(h, A, "c2", 0, "far", false, &o));
    OK(hx_login(h, B, "bg", "near&far", false, &o)); /* passed over too */
    OK(hx_login(h, A, "a1", "near&far", false, &o));
    OK(drain(h, B, true, 60000));
    OK(pair_queue(h, A, "far"));
    assert_int_equal(hx_o.npairs, 0);
    assert_int_equal(hx_zrank(h, "far", "c2"), 300);
    OK(pair_queue(h, A, "near"));
    assert_int_equal(hx_o.npairs, 1);
    paired(&hx_o, 0, "c1", "a1", "near");
    assert_int_equal(hx_zrank(h, "near", "b0"), 0);
    assert_int_equal(hx_zrank(h, "near", "b199"), 199);
    assert_int_equal(hx_zrank(h, "far", "b299"), 299);
}

/* ---- the op itself ----------------------------------------------------------- */

/* on: STARTED, the flag holds the start time with the TTL, NODEDRAIN on
 * (the events' common fields, then state and ttl_ms); on again: RENEWED,
 * the TTL renewed, the start time kept, no event; off: STOPPED, NODEDRAIN
 * off; off again: NOTDRAINING, no event. */
static void test_on_renew_off(void **state)
{
    hx *h = *state;
    OK(drain(h, A, true, 60000));
    assert_string_equal(hx_o.res.outcome, "STARTED");
    assert_int_equal(hx_int(h, "GET {ariq}:node:A:draining"), 1700000000000LL);
    long long ttl = hx_int(h, "PTTL {ariq}:node:A:draining");
    assert_true(ttl > 50000 && ttl <= 60000);
    assert_int_equal(hx_int(h, "SISMEMBER {ariq}:draining A"), 1);
    h->now += 7000;
    OK(drain(h, A, true, 3600000));
    assert_string_equal(hx_o.res.outcome, "RENEWED");
    assert_string_equal(hx_o.res.state, "on");
    assert_int_equal(hx_int(h, "GET {ariq}:node:A:draining"), 1700000000000LL);
    assert_true(hx_int(h, "PTTL {ariq}:node:A:draining") > 3000000);
    h->now += 1000;
    OK(drain(h, A, false, 0));
    assert_string_equal(hx_o.res.outcome, "STOPPED");
    OK(drain(h, A, false, 0));
    assert_string_equal(hx_o.res.outcome, "NOTDRAINING");
    assert_string_equal(hx_o.res.state, "off");
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:A:draining {ariq}:draining"), 0);
    hx_events e;
    hx_events_read(h, &e);
    assert_int_equal(e.n, 2);
    const hx_event *on = &e.v[0], *off = &e.v[1];
    const char *want_on[] = {"event", "NODEDRAIN", "ts_ms",  "1700000000000",
                             "queue", "NONE",      "callid", "NONE",
                             "agent", "NONE",      "node",   "A",
                             "state", "on",        "ttl_ms", "60000"};
    assert_int_equal(on->nf, 16);
    for (int i = 0; i < 16; i++)
        assert_string_equal(on->f[i], want_on[i]);
    assert_int_equal(off->nf, 16);
    assert_string_equal(hx_ev(off, "state"), "off");
    assert_string_equal(hx_ev(off, "ttl_ms"), "0");
    assert_string_equal(hx_ev(off, "ts_ms"), "1700000008000");
    assert_null(hx_ev(off, "reason"));
    hx_events_free(&e);
}

static void rc_cb(queue_store *qs, int err, const qs_reconcile_result *res, void *pd)
{
    (void)res;
    hx_out *o = pd;
    o->err = err;
    snprintf(o->errmsg, sizeof o->errmsg, "%s", err ? qs_errmsg(qs) : "");
    o->done++;
}

static int reconcile(hx *h, int node, const char *const *alive, size_t n)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_reconcile(h->n[node].qs, alive, n, NULL, 0, rc_cb, &hx_o),
                   &hx_o);
}

/* reconcile clears the running node's flag (NODEDRAIN off, reason restart),
 * not another's; without a flag it writes no NODEDRAIN. Then A's parties
 * are paired again. */
static void test_reconcile_clears(void **state)
{
    hx *h = *state;
    hx_out o;
    const char *alive[] = {"ch-c1", "ag-a1"};
    OK(hx_enter(h, A, "c1", 0, "q", false, &o));
    OK(drain(h, A, true, 60000));
    OK(drain(h, B, true, 60000));
    OK(hx_login(h, A, "a1", "q", true, &o));
    assert_int_equal(o.npairs, 0);
    assert_int_equal(hx_count_events(h, "NODEDRAIN"), 2);
    OK(reconcile(h, A, alive, 2));
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:A:draining"), 0);
    assert_int_equal(hx_int(h, "SISMEMBER {ariq}:draining A"), 0);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:B:draining"), 1);
    assert_int_equal(hx_int(h, "SISMEMBER {ariq}:draining B"), 1);
    hx_events e;
    hx_events_read(h, &e);
    assert_int_equal(hx_count(&e, "NODEDRAIN"), 3);
    int i = hx_find(&e, "NODEDRAIN", "node", "A", 1);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&e.v[i], "state"), "off");
    assert_string_equal(hx_ev(&e.v[i], "ttl_ms"), "0");
    assert_string_equal(hx_ev(&e.v[i], "reason"), "restart");
    hx_events_free(&e);
    /* again, not draining: no NODEDRAIN */
    OK(reconcile(h, A, alive, 2));
    assert_int_equal(hx_count_events(h, "NODEDRAIN"), 3);
    OK(pair_queue(h, B, "q"));
    assert_int_equal(hx_o.npairs, 1);
    paired(&hx_o, 0, "c1", "a1", "q");
}

/* ---- bad arguments -------------------------------------------------------- */

static redisReply *raw(hx *h, const char *keys3, const char *node, const char *a5,
                       const char *a6, const char *a7)
{
    const char *sha = store_script_sha(h->n[0].s, "queue");
    const char *argv[] = {"EVALSHA", sha,          "3",    "{ariq}:seq", "{ariq}:events",
                          keys3,     "node_drain", "1000", node,         "100",
                          a5,        a6,           a7};
    int argc = 10 + (a5 != NULL) + (a6 != NULL) + (a7 != NULL);
    redisReply *r = redisCommandArgv(h->rc, argc, argv, NULL);
    assert_non_null(r);
    return r;
}

static void refused(hx *h, const char *keys3, const char *node, const char *a5,
                    const char *a6, const char *a7)
{
    redisReply *r = raw(h, keys3, node, a5, a6, a7);
    if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "ERR ariq:", 9) != 0)
        fail_msg("not refused: %s %s %s: type %d %s", a5 ? a5 : "-", a6 ? a6 : "-",
                 a7 ? a7 : "-", r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
}

/* Refused by the script (nothing changes, B's flag stays, A gets none) and
 * by the C API (no callback, nothing sent). */
static void test_bad_args(void **state)
{
    hx *h = *state;
    hx_out o;
    const char *KA = "{ariq}:node:A:draining", *KB = "{ariq}:node:B:draining";
    OK(hx_enter(h, A, "c1", 0, "q", false, &o));
    OK(hx_login(h, B, "a1", "q", false, &o));
    OK(drain(h, B, true, 60000));
    char *before = hx_snapshot(h);
    refused(h, KA, "A", "maybe", "1000", NULL);
    refused(h, KA, "A", "ON", "1000", NULL);
    refused(h, KA, "A", "on", "0", NULL);
    refused(h, KA, "A", "on", "-5", NULL);
    refused(h, KA, "A", "on", "86400001", NULL);
    refused(h, KA, "A", "on", "1e3", NULL);
    refused(h, KA, "A", "on", "", NULL);
    refused(h, KA, "A", "off", "-1", NULL);
    refused(h, KA, "A", "off", "86400001", NULL);
    refused(h, KA, "A", "on", NULL, NULL);
    refused(h, KA, "A", "on", "1000", "x");
    refused(h, KB, "A", "on", "1000", NULL); /* another node's flag */
    refused(h, KB, "A", "off", "0", NULL);   /* ... nor stop it */
    refused(h, KA, "B", "off", "0", NULL);   /* KEYS[3] must be the running node's */
    refused(h, "{ariq}:node:A:heartbeat", "A", "on", "1000", NULL);
    refused(h, "{ariq}:node:A:draining:x", "A", "on", "1000", NULL);
    HX_UNCHANGED(h, before);
    /* the bounds themselves are taken */
    redisReply *r = raw(h, KA, "A", "on", "86400000", NULL);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    r = raw(h, KA, "A", "off", "86400000", NULL);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    /* C */
    memset(&hx_o, 0, sizeof hx_o);
    queue_store *qs = h->n[A].qs;
    assert_int_equal(qs_node_drain(qs, true, 0, hx_result_cb, &hx_o), ARIQ_EINVAL);
    assert_int_equal(qs_node_drain(qs, true, -1, hx_result_cb, &hx_o), ARIQ_EINVAL);
    assert_int_equal(qs_node_drain(qs, true, QS_DRAIN_TTL_MAX + 1LL, hx_result_cb, &hx_o),
                     ARIQ_EINVAL);
    assert_int_equal(qs_node_drain(qs, true, 1000, NULL, NULL), ARIQ_EINVAL);
    assert_int_equal(qs_node_drain(qs, false, 0, NULL, NULL), ARIQ_EINVAL);
    assert_non_null(strstr(qs_errmsg(qs), "callback"));
    assert_int_equal(qs_pending(qs), 0);
    assert_int_equal(hx_o.done, 0);
    /* off ignores ttl_ms */
    OK(drain(h, A, false, -7));
    assert_string_equal(hx_o.res.outcome, "NOTDRAINING");
    assert_int_equal(hx_int(h, "EXISTS %s", KB), 1);
}

/* ---- cost ------------------------------------------------------------------- */

/* Redis's own time (SLOWLOG, us) of one pair op that makes one pairing, on
 * average over n: nobody draining, B draining with no party in the queue,
 * and B draining with 50 callers ahead. Printed; bounded loosely. */
static long long slowlog_pair_us(hx *h)
{
    redisReply *x = redisCommand(h->rc, "SLOWLOG GET 1");
    long long us = -1;
    if (x && x->type == REDIS_REPLY_ARRAY && x->elements == 1)
        us = x->element[0]->element[2]->integer;
    freeReplyObject(x);
    return us;
}

static double pair_cost(hx *h, const char *tag, int n)
{
    hx_out o;
    char c[32], a[32];
    long long sum = 0;
    for (int i = 0; i < n; i++) {
        snprintf(c, sizeof c, "%s-c%d", tag, i);
        snprintf(a, sizeof a, "%s-a%d", tag, i);
        OK(hx_enter(h, A, c, 0, "q", false, &o));
        OK(hx_login(h, A, a, "q", false, &o));
        freeReplyObject(redisCommand(h->rc, "SLOWLOG RESET"));
        OK(pair_queue(h, A, "q"));
        assert_int_equal(hx_o.npairs, 1);
        paired(&hx_o, 0, c, a, "q");
        long long us = slowlog_pair_us(h);
        assert_true(us >= 0);
        sum += us;
    }
    return (double)sum / n;
}

static void test_cost(void **state)
{
    hx *h = *state;
    hx_out o;
    char id[32];
    freeReplyObject(redisCommand(h->rc, "CONFIG SET slowlog-log-slower-than 0"));
    pair_cost(h, "warm", 50);
    double none = pair_cost(h, "none", 200);
    fprintf(stderr, "pair op (one pairing), script time: nobody draining %.1f us\n",
            none);
    OK(drain(h, B, true, 600000));
    double other = pair_cost(h, "other", 200);
    fprintf(stderr, "... B draining, none of its parties in the queue: %.1f us\n", other);
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof id, "b%d", i);
        OK(hx_enter(h, B, id, 0, "q", false, &o));
    }
    double ahead = pair_cost(h, "ahead", 200);
    fprintf(stderr, "... B draining with 50 callers ahead: %.1f us\n", ahead);
    assert_true(none < 2000 && other < 2000 && ahead < 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_caller_passed_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_lapse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_passed_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autopair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_renew_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_clears, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cost, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
