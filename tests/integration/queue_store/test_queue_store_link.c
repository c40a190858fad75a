/* queue_store's cross-node ops against a real redis-server: bridged by
 * side (CONNECT once both sides hold their party), unlink (a lost link:
 * rolled back before CONNECT, completed after, the party's state in the
 * reply), pairing_info, and the command stream through which a pairing
 * made by one node reaches the caller's node.
 *
 * Each test runs its own server and the harness's nodes "A" and "B" on one
 * loop (the command stream test adds a third, "C"), and ends with every
 * store freed and the loop empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "harness.h"

/* The harness and, for the command stream test, a third node. */
typedef struct fx {
    hx h;
    hx_node c; /* node "C"; zero when not started */
} fx;


#define OK HX_OK

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    *state = f;
    if (hx_start(&f->h, NULL) != 0) {
        hx_stop(&f->h);
        free(f);
        return -1;
    }
    return 0;
}

static void on_ready_c(store *s, void *ud)
{
    (void)s;
    ((hx_node *)ud)->ready++;
}

static uint64_t clock_c(void *ud)
{
    return ((hx *)ud)->now;
}

/* Node "C" on the same loop, server and clock as A and B. */
static int node_c_start(fx *f)
{
    store_config cfg;
    store_config_init(&cfg);
    cfg.port = f->h.r.port;
    store_callbacks cbs = {.on_ready = on_ready_c};
    char err[256];
    if (store_new(f->h.base, &cfg, &cbs, &f->c, &f->c.s, err, sizeof err) != 0) {
        fprintf(stderr, "store_new: %s\n", err);
        return -1;
    }
    qs_config qc;
    qs_config_init(&qc);
    snprintf(qc.node, sizeof qc.node, "C");
    if (qs_new(f->c.s, &qc, &f->c.qs) != 0)
        return -1;
    qs_set_clock(f->c.qs, clock_c, &f->h);
    return hx_wait(&f->h, &f->c.ready, 1, 5000) ? 0 : -1;
}

static int setup3(void **state)
{
    if (setup(state) != 0)
        return -1;
    fx *f = *state;
    if (node_c_start(f) != 0) {
        store_free(f->c.s);
        qs_free(f->c.qs);
        hx_stop(&f->h);
        free(f);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    store_free(f->c.s); /* completes what is pending first */
    qs_free(f->c.qs);
    int left = hx_stop(&f->h);
    free(f);
    assert_int_equal(left, 0);
    return 0;
}

#define hget hx_hget4

/* A pairing's hash field. */
static const char *pget(hx *h, const char *pid, const char *field)
{
    char key[QS_ID_MAX + 32];
    snprintf(key, sizeof key, "{ariq}:pairing:%s", pid);
    return hget(h, key, field);
}

#define zrank hx_zrank

static int bridged(hx *h, int node, const char *pairing, qs_side side)
{
    char pid[QS_ID_MAX + 1]; /* it may point into hx_o */
    snprintf(pid, sizeof pid, "%s", pairing);
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_bridged(h->n[node].qs, pid, side, hx_result_cb, &hx_o), &hx_o);
}

static int unlink_(hx *h, int node, const char *pairing, qs_side side, const char *party,
                   const char *reason, int wrapup_ms, bool autopair)
{
    char pid[QS_ID_MAX + 1];
    snprintf(pid, sizeof pid, "%s", pairing);
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h,
                   qs_unlink(h->n[node].qs, pid, side, party, reason, wrapup_ms, autopair,
                             hx_result_cb, &hx_o),
                   &hx_o);
}

static int pairing_info(hx *h, int node, const char *pairing)
{
    char pid[QS_ID_MAX + 1];
    snprintf(pid, sizeof pid, "%s", pairing);
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_pairing_info(h->n[node].qs, pid, hx_result_cb, &hx_o), &hx_o);
}

static int pair_queue(hx *h, queue_store *qs, const char *q)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_pair_queue(qs, q, hx_result_cb, &hx_o), &hx_o);
}

/* A cross-node pairing: `call` waits on A, `agent` logs in on B with
 * autopair and is paired with it (made by B). The pairing id into pid. */
static void cross_pair(hx *h, const char *call, const char *agent, const char *queues,
                       char pid[QS_ID_MAX + 1])
{
    hx_out o;
    OK(hx_enter(h, 0, call, 0, queues, false, &o));
    OK(hx_login(h, 1, agent, queues, true, &o));
    assert_int_equal(o.npairs, 1);
    assert_string_equal(o.pairs[0].call, call);
    assert_string_equal(o.pairs[0].agent, agent);
    snprintf(pid, QS_ID_MAX + 1, "%s", o.pairs[0].pairing);
}

/* The entries of node `node`'s command stream, read like the events. */
static void cmds_read(hx *h, const char *node, hx_events *out)
{
    char key[QS_ID_MAX + 32];
    snprintf(key, sizeof key, "{ariq}:node:%s:cmds", node);
    hx_stream_read(h, key, out);
}

static long long cmds_len(hx *h, const char *node)
{
    return hx_int(h, "XLEN {ariq}:node:%s:cmds", node);
}

/* ---- bridged by side ------------------------------------------------------- */

/* Caller side, then agent side: the first only records the side (no
 * CONNECT, everything still paired; repeating it changes nothing at all),
 * the second connects exactly once; then BADSTATE. */
static void test_bridged_caller_then_agent(void **state)
{
    hx *h = &((fx *)*state)->h;
    char pid[QS_ID_MAX + 1];
    hx_out o;
    OK(hx_enter(h, 0, "c1", 0, "q&r", false, &o));
    h->now += 1000;
    OK(hx_login(h, 1, "a1", "q", true, &o));
    assert_int_equal(o.npairs, 1);
    snprintf(pid, sizeof pid, "%s", o.pairs[0].pairing);
    h->now += 2000;
    OK(bridged(h, 0, pid, QS_SIDE_CALLER));
    assert_int_equal(hx_o.res.connected, 0);
    assert_int_equal(hx_o.res.holdtime_ms, 0);
    assert_int_equal(hx_o.res.ringtime_ms, 0);
    assert_string_equal(pget(h, pid, "state"), "paired");
    assert_string_equal(pget(h, pid, "sides"), "caller");
    assert_string_equal(hget(h, "{ariq}:call:c1", "state"), "paired");
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "paired");
    assert_int_equal(hx_count_events(h, "CONNECT"), 0);
    assert_int_equal(hx_count_events(h, "WITHDRAW"), 0);
    /* the same side again: connected 0, not one byte changes */
    char *before = hx_snapshot(h);
    h->now += 100;
    OK(bridged(h, 0, pid, QS_SIDE_CALLER));
    assert_int_equal(hx_o.res.connected, 0);
    HX_UNCHANGED(h, before);
    h->now += 400;
    OK(bridged(h, 1, pid, QS_SIDE_AGENT));
    assert_int_equal(hx_o.res.connected, 1);
    assert_int_equal(hx_o.res.ringtime_ms, 2500);
    assert_int_equal(hx_o.res.holdtime_ms, 3500);
    assert_string_equal(pget(h, pid, "state"), "bridged");
    assert_string_equal(pget(h, pid, "sides"), "both");
    assert_string_equal(hget(h, "{ariq}:call:c1", "state"), "bridged");
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "talking");
    hx_events e;
    hx_events_read(h, &e);
    assert_int_equal(hx_count(&e, "CONNECT"), 1);
    int i = hx_find(&e, "CONNECT", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "pairing"), pid);
    assert_string_equal(hx_ev(&e.v[i], "callid"), "c1");
    assert_string_equal(hx_ev(&e.v[i], "agent"), "a1");
    assert_string_equal(hx_ev(&e.v[i], "queue"), "q");
    assert_string_equal(hx_ev(&e.v[i], "node"), "B");
    assert_string_equal(hx_ev(&e.v[i], "ringtime_ms"), "2500");
    assert_int_equal(hx_count(&e, "WITHDRAW"), 1);
    i = hx_find(&e, "WITHDRAW", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "queue"), "r");
    assert_string_equal(hx_ev(&e.v[i], "withdrawinfo"), "connected:q");
    hx_events_free(&e);
    /* once bridged, any side reported again (a reply lost with the
     * connection is resent) answers connected and writes nothing */
    before = hx_snapshot(h);
    assert_int_equal(bridged(h, 1, pid, QS_SIDE_AGENT), 0);
    assert_int_equal(hx_o.res.connected, 1);
    assert_int_equal(hx_o.res.ringtime_ms, 2500);
    assert_int_equal(bridged(h, 0, pid, QS_SIDE_CALLER), 0);
    assert_int_equal(bridged(h, 0, pid, QS_SIDE_BOTH), 0);
    assert_int_equal(hx_o.res.connected, 1);
    HX_UNCHANGED(h, before);
}

/* Agent side first works the same; BOTH connects at once; a pairing gone
 * (rolled back, completed, never made) is NOTFOUND, and a side reported
 * for a pairing that was rolled back does not carry over to the next
 * pairing of the same two parties. */
static void test_bridged_agent_first_both_notfound(void **state)
{
    hx *h = &((fx *)*state)->h;
    char pid[QS_ID_MAX + 1];
    hx_out o;
    cross_pair(h, "c2", "a2", "q", pid);
    OK(bridged(h, 1, pid, QS_SIDE_AGENT));
    assert_int_equal(hx_o.res.connected, 0);
    assert_string_equal(pget(h, pid, "sides"), "agent");
    assert_string_equal(hget(h, "{ariq}:agent:a2", "state"), "paired");
    OK(bridged(h, 1, pid, QS_SIDE_AGENT));
    assert_int_equal(hx_o.res.connected, 0);
    assert_string_equal(pget(h, pid, "state"), "paired");
    assert_int_equal(hx_count_events(h, "CONNECT"), 0);
    OK(bridged(h, 0, pid, QS_SIDE_CALLER));
    assert_int_equal(hx_o.res.connected, 1);
    assert_string_equal(pget(h, pid, "sides"), "both");
    assert_string_equal(hget(h, "{ariq}:call:c2", "state"), "bridged");
    assert_string_equal(hget(h, "{ariq}:agent:a2", "state"), "talking");
    assert_int_equal(hx_count_events(h, "CONNECT"), 1);
    /* one node: BOTH */
    OK(hx_enter(h, 0, "c3", 0, "s", false, &o));
    OK(hx_login(h, 0, "a3", "s", true, &o));
    snprintf(pid, sizeof pid, "%s", o.pairs[0].pairing);
    OK(bridged(h, 0, pid, QS_SIDE_BOTH));
    assert_int_equal(hx_o.res.connected, 1);
    assert_string_equal(pget(h, pid, "state"), "bridged");
    assert_string_equal(hget(h, "{ariq}:agent:a3", "state"), "talking");
    assert_int_equal(hx_count_events(h, "CONNECT"), 2);
    /* completed: NOTFOUND */
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h,
               qs_leave(h->n[0].qs, "c3", QS_LEAVE_HANGUP, QS_BY_CALLER, 0, false,
                        hx_result_cb, &hx_o),
               &hx_o));
    assert_int_equal(bridged(h, 0, pid, QS_SIDE_BOTH), ARIQ_ENOTFOUND);
    assert_non_null(strstr(hx_o.errmsg, "NOTFOUND"));
    assert_int_equal(bridged(h, 0, "p424242", QS_SIDE_CALLER), ARIQ_ENOTFOUND);
    /* one side in, then rolled back: the other side is NOTFOUND */
    cross_pair(h, "c4", "a4", "t", pid);
    OK(bridged(h, 1, pid, QS_SIDE_AGENT));
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_rollback(h->n[0].qs, pid, "x", QS_AGENT_KEEP, hx_result_cb, &hx_o),
               &hx_o));
    char *before = hx_snapshot(h);
    assert_int_equal(bridged(h, 0, pid, QS_SIDE_CALLER), ARIQ_ENOTFOUND);
    HX_UNCHANGED(h, before);
    assert_int_equal(hx_count_events(h, "CONNECT"), 2);
    /* the same two parties paired again start with no side in */
    OK(pair_queue(h, h->n[1].qs, "t"));
    assert_int_equal(hx_o.npairs, 1);
    snprintf(pid, sizeof pid, "%s", hx_o.pairs[0].pairing);
    OK(bridged(h, 0, pid, QS_SIDE_CALLER));
    assert_int_equal(hx_o.res.connected, 0);
    assert_int_equal(hx_count_events(h, "CONNECT"), 2);
}

/* ---- unlink before CONNECT ------------------------------------------------- */

/* From the caller's side: ROLLEDBACK, the caller first again with its
 * original score, the agent free with a NEW seq behind an agent freed
 * before it, no autopair even when asked; the party's view in the reply;
 * the other side's unlink then finds it GONE and changes nothing. */
static void test_unlink_rollback_from_caller(void **state)
{
    hx *h = &((fx *)*state)->h;
    char pid[QS_ID_MAX + 1];
    hx_out o;
    OK(hx_enter(h, 0, "c1", 0, "q", false, &o));
    long long score = o.enter.score, cseq = o.enter.seq;
    OK(hx_login(h, 1, "a1", "q", true, &o)); /* c1 with a1 */
    long long a1seq = o.res.seq;
    snprintf(pid, sizeof pid, "%s", o.pairs[0].pairing);
    OK(hx_login(h, 1, "a2", "q", false, &o)); /* freed after a1 */
    long long a2seq = o.res.seq;
    assert_true(a2seq > a1seq);
    OK(hx_enter(h, 0, "c2", 0, "q", false, &o));
    OK(bridged(h, 0, pid, QS_SIDE_CALLER)); /* one side in: still not connected */
    h->now += 1500;
    OK(unlink_(h, 0, pid, QS_SIDE_CALLER, "c1", "noanswer", 0, true));
    assert_string_equal(hx_o.res.outcome, "ROLLEDBACK");
    assert_string_equal(hx_o.res.state, "waiting");
    assert_string_equal(hx_o.res.pairing, "");
    assert_int_equal(hx_o.res.wrapup_ms, 0);
    assert_int_equal(hx_o.npairs, 0); /* no autopair */
    /* the caller: first, its score */
    assert_int_equal(zrank(h, "q", "c1"), 0);
    assert_int_equal(zrank(h, "q", "c2"), 1);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:callers c1"), score);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:arrivals c1"), cseq);
    assert_string_equal(hget(h, "{ariq}:call:c1", "state"), "waiting");
    assert_string_equal(hget(h, "{ariq}:call:c1", "pairing"), "");
    /* the agent: free with a new seq, behind a2 */
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "free");
    assert_string_equal(hget(h, "{ariq}:agent:a1", "pairing"), "");
    long long a1new = atoll(hget(h, "{ariq}:agent:a1", "free_seq"));
    assert_true(a1new > a2seq);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:agents a1"), a1new);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:agents a2"), a2seq);
    assert_int_equal(hx_int(h, "ZRANK {ariq}:queue:q:agents a1"), 1);
    /* the pairing is gone everywhere */
    assert_int_equal(hx_int(h, "EXISTS {ariq}:pairing:%s", pid), 0);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:A:pairings {ariq}:node:B:pairings"),
                     0);
    hx_events e;
    hx_events_read(h, &e);
    assert_int_equal(hx_count(&e, "PAIRED"), 1);
    assert_int_equal(hx_count(&e, "UNPAIRED"), 1);
    assert_int_equal(hx_count(&e, "CONNECT"), 0);
    int i = hx_find(&e, "UNPAIRED", "pairing", pid, 0);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&e.v[i], "reason"), "rollback");
    assert_string_equal(hx_ev(&e.v[i], "detail"), "noanswer;agent=back");
    assert_string_equal(hx_ev(&e.v[i], "callid"), "c1");
    assert_string_equal(hx_ev(&e.v[i], "agent"), "a1");
    hx_events_free(&e);
    /* the agent's node learns it too late: GONE, its agent free */
    char *before = hx_snapshot(h);
    OK(unlink_(h, 1, pid, QS_SIDE_AGENT, "a1", "noanswer", 0, true));
    assert_string_equal(hx_o.res.outcome, "GONE");
    assert_string_equal(hx_o.res.state, "free");
    assert_string_equal(hx_o.res.pairing, "");
    assert_int_equal(hx_o.npairs, 0);
    HX_UNCHANGED(h, before);
}

/* From the agent's side: the same rollback, the reply shows the agent; a
 * late unlink of the old pairing finds the caller already in a new one. */
static void test_unlink_rollback_from_agent(void **state)
{
    hx *h = &((fx *)*state)->h;
    char pid[QS_ID_MAX + 1];
    hx_out o;
    cross_pair(h, "c2", "a1", "q", pid);
    long long c2score = hx_int(h, "HGET {ariq}:call:c2 score");
    long long a1seq = hx_int(h, "HGET {ariq}:agent:a1 free_seq");
    OK(hx_login(h, 0, "a0", "q", false, &o)); /* freed after a1's pairing */
    long long a0now = o.res.seq;
    OK(hx_enter(h, 0, "c3", 0, "q", false, &o));
    h->now += 2000;
    OK(bridged(h, 1, pid, QS_SIDE_AGENT));
    OK(unlink_(h, 1, pid, QS_SIDE_AGENT, "a1", "dropped", 0, true));
    assert_string_equal(hx_o.res.outcome, "ROLLEDBACK");
    assert_string_equal(hx_o.res.state, "free");
    assert_string_equal(hx_o.res.pairing, "");
    assert_int_equal(hx_o.res.wrapup_ms, 0);
    assert_int_equal(hx_o.npairs, 0);
    assert_int_equal(zrank(h, "q", "c2"), 0);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:callers c2"), c2score);
    assert_string_equal(hget(h, "{ariq}:call:c2", "state"), "waiting");
    long long a1new = hx_int(h, "ZSCORE {ariq}:queue:q:agents a1");
    assert_true(a1new > a1seq);
    assert_true(a1new > a0now); /* behind a0, freed before */
    assert_int_equal(hx_int(h, "HGET {ariq}:agent:a1 free_seq"), a1new);
    assert_int_equal(hx_int(h, "ZRANK {ariq}:queue:q:agents a1"), 1);
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "UNPAIRED", "pairing", pid, 0);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&e.v[i], "reason"), "rollback");
    assert_string_equal(hx_ev(&e.v[i], "detail"), "dropped;agent=back");
    assert_string_equal(hx_ev(&e.v[i], "node"), "B");
    hx_events_free(&e);
    /* the caller's side, late: GONE, the caller waiting */
    OK(unlink_(h, 0, pid, QS_SIDE_CALLER, "c2", "dropped", 0, true));
    assert_string_equal(hx_o.res.outcome, "GONE");
    assert_string_equal(hx_o.res.state, "waiting");
    assert_string_equal(hx_o.res.pairing, "");
    assert_int_equal(hx_o.npairs, 0);
    /* the sweep pairs again; a late unlink of the old pairing says so */
    OK(pair_queue(h, h->n[0].qs, "q"));
    assert_int_equal(hx_o.npairs, 2);
    assert_string_equal(hx_o.pairs[0].call, "c2");
    assert_string_equal(hx_o.pairs[0].agent, "a0");
    char pid2[QS_ID_MAX + 1];
    snprintf(pid2, sizeof pid2, "%s", hx_o.pairs[0].pairing);
    char *before = hx_snapshot(h);
    OK(unlink_(h, 0, pid, QS_SIDE_CALLER, "c2", "late", 0, true));
    assert_string_equal(hx_o.res.outcome, "GONE");
    assert_string_equal(hx_o.res.state, "paired");
    assert_string_equal(hx_o.res.pairing, pid2);
    HX_UNCHANGED(h, before);
}

/* ---- unlink after CONNECT -------------------------------------------------- */

/* From the caller's side: COMPLETEAGENT as if the agent hung up, the call
 * record gone, the agent free at the back (no wrapup, no autopair). */
static void test_unlink_connected_from_caller(void **state)
{
    hx *h = &((fx *)*state)->h;
    char pid[QS_ID_MAX + 1];
    hx_out o;
    cross_pair(h, "c1", "a1", "q", pid);
    OK(bridged(h, 0, pid, QS_SIDE_CALLER));
    OK(bridged(h, 1, pid, QS_SIDE_AGENT));
    assert_int_equal(hx_o.res.connected, 1);
    OK(hx_login(h, 1, "a2", "q", false, &o)); /* free before a1 is */
    long long a2seq = o.res.seq;
    h->now += 7000;
    OK(unlink_(h, 0, pid, QS_SIDE_CALLER, "c1", "linklost", 0, false));
    assert_string_equal(hx_o.res.outcome, "COMPLETEAGENT");
    assert_string_equal(hx_o.res.state, "gone");
    assert_string_equal(hx_o.res.pairing, "");
    assert_int_equal(hx_o.res.wrapup_ms, 0);
    assert_int_equal(hx_o.npairs, 0);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:call:c1 {ariq}:pairing:%s", pid), 0);
    assert_int_equal(hx_int(h, "SISMEMBER {ariq}:node:A:calls c1"), 0);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:A:pairings {ariq}:node:B:pairings"),
                     0);
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "free");
    assert_string_equal(hget(h, "{ariq}:agent:a1", "calls_taken"), "1");
    assert_string_equal(hget(h, "{ariq}:agent:a1", "talk_ms"), "7000");
    assert_true(hx_int(h, "ZSCORE {ariq}:queue:q:agents a1") > a2seq);
    hx_events e;
    hx_events_read(h, &e);
    assert_int_equal(hx_count(&e, "COMPLETEAGENT"), 1);
    assert_int_equal(hx_count(&e, "COMPLETECALLER"), 0);
    int i = hx_find(&e, "COMPLETEAGENT", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "callid"), "c1");
    assert_string_equal(hx_ev(&e.v[i], "agent"), "a1");
    assert_string_equal(hx_ev(&e.v[i], "calltime"), "7");
    assert_string_equal(hx_ev(&e.v[i], "pairing"), pid);
    i = hx_find(&e, "UNPAIRED", "pairing", pid, 0);
    assert_string_equal(hx_ev(&e.v[i], "reason"), "complete");
    assert_string_equal(hx_ev(&e.v[i], "detail"), "COMPLETEAGENT");
    hx_events_free(&e);
    /* the agent's side, late: GONE, its agent free */
    char *before = hx_snapshot(h);
    OK(unlink_(h, 1, pid, QS_SIDE_AGENT, "a1", "linklost", 0, true));
    assert_string_equal(hx_o.res.outcome, "GONE");
    assert_string_equal(hx_o.res.state, "free");
    HX_UNCHANGED(h, before);
}

/* From the agent's side with wrapup: COMPLETECALLER, the agent in wrapup
 * (no pairing although a caller waits and autopair is asked), the wrapup
 * left in the reply, also to a late unlink. */
static void test_unlink_connected_from_agent_wrapup(void **state)
{
    hx *h = &((fx *)*state)->h;
    char pid[QS_ID_MAX + 1];
    hx_out o;
    cross_pair(h, "c1", "a1", "q", pid);
    OK(bridged(h, 1, pid, QS_SIDE_AGENT));
    OK(bridged(h, 0, pid, QS_SIDE_CALLER));
    h->now += 3000;
    OK(hx_enter(h, 0, "c2", 0, "q", false, &o));
    OK(unlink_(h, 1, pid, QS_SIDE_AGENT, "a1", "linklost", 30000, true));
    assert_string_equal(hx_o.res.outcome, "COMPLETECALLER");
    assert_string_equal(hx_o.res.state, "wrapup");
    assert_int_equal(hx_o.res.wrapup_ms, 30000);
    assert_string_equal(hx_o.res.pairing, "");
    assert_int_equal(hx_o.npairs, 0);
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "wrapup");
    assert_int_equal(hx_int(h, "HGET {ariq}:agent:a1 wrapup_until_ms"),
                     (long long)h->now + 30000);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:agents a1"), -1);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:call:c1 {ariq}:pairing:%s", pid), 0);
    assert_int_equal(zrank(h, "q", "c2"), 0);
    hx_events e;
    hx_events_read(h, &e);
    assert_int_equal(hx_count(&e, "COMPLETECALLER"), 1);
    assert_int_equal(hx_count(&e, "COMPLETEAGENT"), 0);
    int i = hx_find(&e, "COMPLETECALLER", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "callid"), "c1");
    assert_string_equal(hx_ev(&e.v[i], "calltime"), "3");
    hx_events_free(&e);
    /* later, both sides hear of it again: GONE; the agent's wrapup left */
    h->now += 10000;
    OK(unlink_(h, 0, pid, QS_SIDE_CALLER, "c1", "linklost", 0, true));
    assert_string_equal(hx_o.res.outcome, "GONE");
    assert_string_equal(hx_o.res.state, "gone");
    assert_int_equal(hx_o.res.wrapup_ms, 0);
    OK(unlink_(h, 1, pid, QS_SIDE_AGENT, "a1", "linklost", 30000, true));
    assert_string_equal(hx_o.res.outcome, "GONE");
    assert_string_equal(hx_o.res.state, "wrapup");
    assert_int_equal(hx_o.res.wrapup_ms, 20000);
}

/* No wrapup and autopair with a caller waiting: the agent is paired again
 * in the same call, from either side; without autopair it is not. */
static void test_unlink_connected_autopair(void **state)
{
    hx *h = &((fx *)*state)->h;
    char pid[QS_ID_MAX + 1];
    hx_out o;
    cross_pair(h, "c1", "a1", "q", pid);
    OK(bridged(h, 0, pid, QS_SIDE_BOTH));
    OK(hx_enter(h, 0, "c2", 0, "q", false, &o));
    OK(unlink_(h, 1, pid, QS_SIDE_AGENT, "a1", "linklost", 0, true));
    assert_string_equal(hx_o.res.outcome, "COMPLETECALLER");
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].call, "c2");
    assert_string_equal(hx_o.pairs[0].agent, "a1");
    assert_string_equal(hx_o.pairs[0].queue, "q");
    assert_string_equal(hx_o.res.state, "paired");
    assert_string_equal(hx_o.res.pairing, hx_o.pairs[0].pairing);
    assert_int_equal(hx_o.res.wrapup_ms, 0);
    snprintf(pid, sizeof pid, "%s", hx_o.pairs[0].pairing);
    assert_string_equal(hget(h, "{ariq}:agent:a1", "pairing"), pid);
    assert_string_equal(hget(h, "{ariq}:call:c2", "state"), "paired");
    /* made by B for a caller on A: handed to A like any other */
    assert_int_equal(cmds_len(h, "A"), 2);
    /* from the caller's side: the caller is gone, its agent paired again */
    OK(bridged(h, 0, pid, QS_SIDE_BOTH));
    OK(hx_enter(h, 0, "c3", 0, "q", false, &o));
    OK(unlink_(h, 0, pid, QS_SIDE_CALLER, "c2", "linklost", 0, true));
    assert_string_equal(hx_o.res.outcome, "COMPLETEAGENT");
    assert_string_equal(hx_o.res.state, "gone");
    assert_string_equal(hx_o.res.pairing, "");
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].call, "c3");
    assert_string_equal(hx_o.pairs[0].agent, "a1");
    snprintf(pid, sizeof pid, "%s", hx_o.pairs[0].pairing);
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "paired");
    assert_int_equal(cmds_len(h, "A"), 2); /* made by A itself */
    /* without autopair: nobody is paired */
    OK(bridged(h, 0, pid, QS_SIDE_BOTH));
    OK(hx_enter(h, 0, "c4", 0, "q", false, &o));
    OK(unlink_(h, 1, pid, QS_SIDE_AGENT, "a1", "linklost", 0, false));
    assert_string_equal(hx_o.res.outcome, "COMPLETECALLER");
    assert_string_equal(hx_o.res.state, "free");
    assert_int_equal(hx_o.npairs, 0);
    assert_int_equal(zrank(h, "q", "c4"), 0);
}

/* ---- unlink refused -------------------------------------------------------- */

/* A party that is not that side of the pairing is refused (EINVAL) and
 * nothing changes, paired or bridged; a side other than caller/agent is
 * refused before sending (no callback). A pairing gone has no sides to
 * check: GONE. */
static void test_unlink_wrong_party(void **state)
{
    hx *h = &((fx *)*state)->h;
    char pid[QS_ID_MAX + 1];
    hx_out o;
    cross_pair(h, "c1", "a1", "q", pid);
    OK(hx_enter(h, 0, "c2", 0, "q", false, &o));
    OK(hx_login(h, 1, "a2", "r", false, &o));
    for (int bridged_yet = 0; bridged_yet < 2; bridged_yet++) {
        char *before = hx_snapshot(h);
        static const struct {
            qs_side side;
            const char *party;
        } bad[] = {
            {QS_SIDE_CALLER, "a1"}, /* the agent given as the caller */
            {QS_SIDE_AGENT, "c1"},  /* the caller given as the agent */
            {QS_SIDE_CALLER, "c2"}, /* another call */
            {QS_SIDE_AGENT, "a2"},  /* another agent */
            {QS_SIDE_CALLER, "nobody"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            int rc = unlink_(h, (int)i % 2, pid, bad[i].side, bad[i].party, "x", 0, true);
            if (rc != ARIQ_EINVAL)
                fail_msg("unlink %s (%s): %s, want EINVAL", bad[i].party,
                         bridged_yet ? "bridged" : "paired", ariq_strerror(rc));
            assert_non_null(strstr(hx_o.errmsg, "ERR ariq"));
        }
        char *after = hx_snapshot(h);
        assert_string_equal(before, after);
        free(before);
        free(after);
        if (!bridged_yet)
            OK(bridged(h, 0, pid, QS_SIDE_BOTH));
    }
    assert_string_equal(pget(h, pid, "state"), "bridged");
    /* a side that is neither: refused here, the callback never runs */
    memset(&o, 0, sizeof o);
    int rc =
        qs_unlink(h->n[0].qs, pid, QS_SIDE_BOTH, "c1", "x", 0, true, hx_result_cb, &o);
    assert_int_equal(rc, ARIQ_EINVAL);
    assert_int_equal(qs_pending(h->n[0].qs), 0);
    hx_wait(h, &o.done, 1, 100);
    assert_int_equal(o.done, 0);
    /* a pairing that no longer exists: GONE whoever asks */
    OK(unlink_(h, 0, pid, QS_SIDE_CALLER, "c1", "x", 0, false));
    assert_string_equal(hx_o.res.outcome, "COMPLETEAGENT");
    char *before = hx_snapshot(h);
    OK(unlink_(h, 1, pid, QS_SIDE_AGENT, "a2", "x", 0, false));
    assert_string_equal(hx_o.res.outcome, "GONE");
    assert_string_equal(hx_o.res.state, "free");
    HX_UNCHANGED(h, before);
}

/* ---- pairing_info ---------------------------------------------------------- */

/* Read only: the pairing and its sides while it lives, "gone" after. */
static void test_pairing_info(void **state)
{
    hx *h = &((fx *)*state)->h;
    char pid[QS_ID_MAX + 1];
    hx_out o;
    OK(hx_enter(h, 0, "c1", 0, "q", false, &o));
    h->now += 2000;
    OK(hx_login(h, 1, "a1", "q", true, &o));
    snprintf(pid, sizeof pid, "%s", o.pairs[0].pairing);
    char *before = hx_snapshot(h);
    OK(pairing_info(h, 0, pid));
    HX_UNCHANGED(h, before);
    assert_string_equal(hx_o.res.state, "paired");
    assert_string_equal(hx_o.res.sides, "");
    assert_int_equal(hx_o.npairs, 1);
    qs_pairing *p = &hx_o.pairs[0];
    assert_string_equal(p->pairing, pid);
    assert_string_equal(p->call, "c1");
    assert_string_equal(p->agent, "a1");
    assert_string_equal(p->queue, "q");
    assert_string_equal(p->caller_channel, "ch-c1");
    assert_string_equal(p->agent_channel, "ag-a1");
    assert_string_equal(p->caller_node, "A");
    assert_string_equal(p->agent_node, "B");
    assert_int_equal(p->created_ms, (int64_t)h->now);
    assert_int_equal(p->holdtime_ms, 2000);
    OK(bridged(h, 1, pid, QS_SIDE_AGENT));
    OK(pairing_info(h, 1, pid));
    assert_string_equal(hx_o.res.state, "paired");
    assert_string_equal(hx_o.res.sides, "agent");
    OK(bridged(h, 0, pid, QS_SIDE_CALLER));
    OK(pairing_info(h, 0, pid));
    assert_string_equal(hx_o.res.state, "bridged");
    assert_string_equal(hx_o.res.sides, "both");
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].call, "c1");
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h,
               qs_leave(h->n[0].qs, "c1", QS_LEAVE_HANGUP, QS_BY_CALLER, 0, false,
                        hx_result_cb, &hx_o),
               &hx_o));
    OK(pairing_info(h, 1, pid));
    assert_string_equal(hx_o.res.state, "gone");
    assert_int_equal(hx_o.npairs, 0);
    assert_string_equal(hx_o.res.sides, "");
    OK(pairing_info(h, 0, "p424242"));
    assert_string_equal(hx_o.res.state, "gone");
    assert_int_equal(hx_o.npairs, 0);
}

/* ---- the command streams ---------------------------------------------------- */

/* The one command entry of `node`'s stream at index i is a `pair` for
 * pairing p, every field of it and nothing else. */
static void assert_pair_cmd(hx *h, const char *node, int i, const qs_pairing *p)
{
    hx_events c;
    cmds_read(h, node, &c);
    assert_true(i < c.n);
    const hx_event *e = &c.v[i];
    assert_int_equal(e->nf, 22); /* cmd and the ten fields of a pairing */
    assert_string_equal(hx_ev(e, "cmd"), "pair");
    assert_string_equal(hx_ev(e, "pairing"), p->pairing);
    assert_string_equal(hx_ev(e, "call"), p->call);
    assert_string_equal(hx_ev(e, "agent"), p->agent);
    assert_string_equal(hx_ev(e, "queue"), p->queue);
    assert_string_equal(hx_ev(e, "caller_channel"), p->caller_channel);
    assert_string_equal(hx_ev(e, "agent_channel"), p->agent_channel);
    assert_string_equal(hx_ev(e, "caller_node"), p->caller_node);
    assert_string_equal(hx_ev(e, "agent_node"), p->agent_node);
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)p->created_ms);
    assert_string_equal(hx_ev(e, "created_ms"), num);
    snprintf(num, sizeof num, "%lld", (long long)p->holdtime_ms);
    assert_string_equal(hx_ev(e, "holdtime_ms"), num);
    hx_events_free(&c);
}

/* A pairing made by the agent's node B for a caller on A is handed to A
 * (one entry, every field); one made by A itself is not; a sweep by C for
 * a caller on A is; a caller on B paired by A goes to B. Only the caller's
 * node ever gets one. */
static void test_cmds_stream(void **state)
{
    fx *f = *state;
    hx *h = &f->h;
    hx_out o;
    uint64_t entered = h->now;
    OK(hx_enter(h, 0, "c1", 0, "q", false, &o));
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:A:cmds"), 0);
    h->now += 4000;
    OK(hx_login(h, 1, "a1", "q", true, &o)); /* B pairs c1 (A) with a1 */
    assert_int_equal(o.npairs, 1);
    assert_int_equal(cmds_len(h, "A"), 1);
    qs_pairing want = {.call = "c1",
                       .agent = "a1",
                       .queue = "q",
                       .caller_channel = "ch-c1",
                       .agent_channel = "ag-a1",
                       .caller_node = "A",
                       .agent_node = "B",
                       .created_ms = (int64_t)entered + 4000,
                       .holdtime_ms = 4000};
    snprintf(want.pairing, sizeof want.pairing, "%s", o.pairs[0].pairing);
    assert_pair_cmd(h, "A", 0, &want);
    assert_pair_cmd(h, "A", 0, &o.pairs[0]); /* and it is what B was told */
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:B:cmds {ariq}:node:C:cmds"), 0);
    /* A pairs its own caller with an agent on B: nothing to hand over to A,
     * and B, the agent's node, is told so that it expects the link */
    OK(hx_login(h, 1, "a2", "r", false, &o));
    OK(hx_enter(h, 0, "c2", 0, "r", true, &o));
    assert_int_equal(o.npairs, 1);
    assert_string_equal(o.pairs[0].agent, "a2");
    assert_int_equal(cmds_len(h, "A"), 1);
    assert_int_equal(cmds_len(h, "B"), 1);
    assert_pair_cmd(h, "B", 0, &o.pairs[0]);
    OK(hx_enter(h, 0, "c3", 0, "s", false, &o));
    OK(hx_login(h, 0, "a3", "s", true, &o)); /* A again, both parties its own */
    assert_int_equal(o.npairs, 1);
    assert_int_equal(cmds_len(h, "A"), 1);
    assert_int_equal(cmds_len(h, "B"), 1);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:C:cmds"), 0);
    /* a sweep by C for a caller on A, agent on B: one more on A's stream */
    OK(hx_enter(h, 0, "c4", 0, "t", false, &o));
    OK(hx_login(h, 1, "a4", "t", false, &o));
    h->now += 1000;
    OK(pair_queue(h, f->c.qs, "t"));
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].call, "c4");
    assert_int_equal(cmds_len(h, "A"), 2);
    assert_pair_cmd(h, "A", 1, &hx_o.pairs[0]);
    hx_events c;
    cmds_read(h, "A", &c);
    assert_string_equal(hx_ev(&c.v[1], "agent_node"), "B");
    assert_string_equal(hx_ev(&c.v[1], "caller_node"), "A");
    assert_string_equal(hx_ev(&c.v[1], "holdtime_ms"), "1000");
    hx_events_free(&c);
    assert_int_equal(cmds_len(h, "B"), 2); /* and one on the agent's node */
    assert_pair_cmd(h, "B", 1, &hx_o.pairs[0]);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:C:cmds"), 0); /* C ran it */
    /* a caller on B paired by A (the agent's own node): B's stream only */
    OK(hx_enter(h, 1, "c5", 0, "u", false, &o));
    OK(hx_login(h, 0, "a5", "u", true, &o));
    assert_int_equal(o.npairs, 1);
    assert_int_equal(cmds_len(h, "B"), 3);
    assert_pair_cmd(h, "B", 2, &o.pairs[0]);
    assert_int_equal(cmds_len(h, "A"), 2);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:C:cmds"), 0);
    /* the PAIRED events say who made each */
    hx_events e;
    hx_events_read(h, &e);
    assert_int_equal(hx_count(&e, "PAIRED"), 5);
    assert_string_equal(hx_ev(&e.v[hx_find(&e, "PAIRED", "callid", "c4", 0)], "node"),
                        "C");
    hx_events_free(&e);
}

/* The stream is capped: a pairing handed over trims a long stream to
 * about 10000 entries (MAXLEN ~ trims whole stream nodes, so a little
 * more may stay), the newest entry being that pairing. */
static void test_cmds_capped(void **state)
{
    hx *h = &((fx *)*state)->h;
    for (int i = 0; i < 12000; i++)
        redisAppendCommand(h->rc, "XADD {ariq}:node:A:cmds * cmd old n %d", i);
    for (int i = 0; i < 12000; i++) {
        void *r = NULL;
        assert_int_equal(redisGetReply(h->rc, &r), REDIS_OK);
        freeReplyObject(r);
    }
    assert_int_equal(cmds_len(h, "A"), 12000);
    char pid[QS_ID_MAX + 1];
    cross_pair(h, "c1", "a1", "q", pid);
    long long n = cmds_len(h, "A");
    assert_true(n >= 10000 && n <= 10200);
    redisReply *r = redisCommand(h->rc, "XREVRANGE {ariq}:node:A:cmds + - COUNT 1");
    assert_non_null(r);
    assert_int_equal(r->elements, 1);
    redisReply *fv = r->element[0]->element[1];
    assert_true(fv->elements >= 4);
    assert_string_equal(fv->element[1]->str, "pair");
    assert_string_equal(fv->element[3]->str, pid);
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bridged_caller_then_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bridged_agent_first_both_notfound, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unlink_rollback_from_caller, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unlink_rollback_from_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlink_connected_from_caller, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unlink_connected_from_agent_wrapup, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unlink_connected_autopair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlink_wrong_party, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pairing_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cmds_stream, setup3, teardown),
        cmocka_unit_test_setup_teardown(test_cmds_capped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
