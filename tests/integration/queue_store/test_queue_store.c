/* queue_store against a real redis-server: order, positions, multi-queue
 * callers and agents, the three pairing entry points, rollback, leaving,
 * wrapup, pause, AGENTINUSE, recordings, argument checks that change
 * nothing, and the events each op writes.
 *
 * Each test runs its own server and two nodes ("A", "B") on one loop, and
 * ends with both stores freed and the loop empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "harness.h"

#define OK       HX_OK
#define setup    hx_setup
#define teardown hx_teardown


#define hget hx_hget4

#define zrank hx_zrank

static int leave(hx *h, int node, const char *callid, qs_leave_reason why, qs_party who,
                 int wrapup, bool autopair)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(
        h,
        qs_leave(h->n[node].qs, callid, why, who, wrapup, autopair, hx_result_cb, &hx_o),
        &hx_o);
}

static int call_info(hx *h, const char *callid)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_call_info(h->n[0].qs, callid, hx_call_cb, &hx_o), &hx_o);
}

static int pair_queue(hx *h, int node, const char *q)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_pair_queue(h->n[node].qs, q, hx_result_cb, &hx_o), &hx_o);
}

static int logoff(hx *h, const char *agent, bool autopair)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(
        h, qs_agent_logoff(h->n[0].qs, agent, "hangup", autopair, hx_result_cb, &hx_o),
        &hx_o);
}

static int bridged(hx *h, const char *pairing)
{
    char pid[QS_ID_MAX + 1]; /* it may point into hx_o */
    snprintf(pid, sizeof pid, "%s", pairing);
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_bridged(h->n[0].qs, pid, QS_SIDE_BOTH, hx_result_cb, &hx_o), &hx_o);
}

/* Callers are ordered by priority, then by arrival over both nodes;
 * positions and callers-ahead follow as callers leave; ENTERQUEUE carries
 * the position at entry. */
static void test_order_and_positions(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_enter(h, 0, "c1", 0, "support", false, &o));
    assert_int_equal(o.enter.positions[0], 1);
    h->now += 1000;
    OK(hx_enter(h, 1, "c2", 0, "support", false, &o));
    assert_int_equal(o.enter.positions[0], 2);
    OK(hx_enter(h, 0, "c3", 5, "support", false, &o)); /* jumps ahead of both */
    assert_int_equal(o.enter.positions[0], 1);
    assert_true(o.enter.score < (1000LL - 4) * (1LL << 43));
    OK(hx_enter(h, 1, "c4", 5, "support", false, &o)); /* behind c3 */
    assert_int_equal(o.enter.positions[0], 2);
    /* the order is c3 c4 c1 c2 */
    assert_int_equal(zrank(h, "support", "c3"), 0);
    assert_int_equal(zrank(h, "support", "c4"), 1);
    assert_int_equal(zrank(h, "support", "c1"), 2);
    assert_int_equal(zrank(h, "support", "c2"), 3);
    OK(call_info(h, "c2"));
    assert_true(hx_o.call.found);
    assert_string_equal(hx_o.call.state, "waiting");
    assert_string_equal(hx_o.call.node, "B");
    assert_int_equal(hx_o.call.queues[0].position, 4);
    assert_int_equal(hx_o.call.queues[0].ahead, 3);
    assert_int_equal(hx_o.call.queues[0].length, 4);
    h->now += 2000;
    OK(leave(h, 0, "c3", QS_LEAVE_HANGUP, QS_BY_CALLER, 0, false));
    assert_string_equal(hx_o.res.outcome, "ABANDON");
    OK(call_info(h, "c2"));
    assert_int_equal(hx_o.call.queues[0].ahead, 2);
    OK(leave(h, 1, "c4", QS_LEAVE_TIMEOUT, QS_BY_CALLER, 0, false));
    assert_string_equal(hx_o.res.outcome, "EXITWITHTIMEOUT");
    OK(call_info(h, "c2"));
    assert_int_equal(hx_o.call.queues[0].position, 2);
    assert_int_equal(hx_o.call.queues[0].ahead, 1);
    /* the queue: 2 waiting, the longest wait is c1's (entered first) */
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_queue_info(h->n[1].qs, "support", hx_queue_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.queue.callers, 2);
    assert_int_equal(hx_o.queue.agents_free, 0);
    assert_string_equal(hx_o.queue.front, "c1");
    assert_string_equal(hx_o.queue.oldest, "c1");
    assert_int_equal(hx_o.queue.longest_wait_ms, 3000);
    /* an unknown call, an empty queue */
    OK(call_info(h, "nobody"));
    assert_false(hx_o.call.found);
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_queue_info(h->n[0].qs, "empty", hx_queue_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.queue.callers, 0);
    assert_string_equal(hx_o.queue.front, "");
    assert_int_equal(hx_o.queue.longest_wait_ms, 0);
    hx_events e;
    hx_events_read(h, &e);
    assert_int_equal(hx_count(&e, "ENTERQUEUE"), 4);
    int i = hx_find(&e, "ENTERQUEUE", "callid", "c2", 0);
    assert_string_equal(hx_ev(&e.v[i], "position"), "2");
    assert_string_equal(hx_ev(&e.v[i], "callerid"), "5551234");
    assert_string_equal(hx_ev(&e.v[i], "node"), "B");
    assert_string_equal(hx_ev(&e.v[i], "agent"), "NONE");
    assert_string_equal(hx_ev(&e.v[i], "queue"), "support");
    i = hx_find(&e, "ABANDON", "callid", "c3", 0);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&e.v[i], "position"), "1");
    assert_string_equal(hx_ev(&e.v[i], "origposition"), "1");
    assert_string_equal(hx_ev(&e.v[i], "waittime"), "2");
    assert_string_equal(hx_ev(&e.v[i], "waittime_ms"), "2000");
    i = hx_find(&e, "EXITWITHTIMEOUT", "callid", "c4", 0);
    assert_string_equal(hx_ev(&e.v[i], "position"), "1"); /* c3 had gone */
    assert_string_equal(hx_ev(&e.v[i], "origposition"), "2");
    hx_events_free(&e);
    /* nothing of c3 / c4 is left */
    assert_int_equal(hx_int(h, "EXISTS {ariq}:call:c3 {ariq}:call:c4"), 0);
    assert_int_equal(hx_int(h, "SISMEMBER {ariq}:node:A:calls c3"), 0);
    assert_int_equal(hx_int(h, "SCARD {ariq}:node:B:calls"), 1);
}

/* A caller in two queues is paired in one and leaves both; an agent in two
 * queues is taken from both. */
static void test_multi_queue(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_enter(h, 0, "c1", 0, "support&sales", false, &o));
    assert_int_equal(o.enter.npositions, 2);
    OK(hx_login(h, 1, "a1", "billing&sales", false, &o));
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:billing:agents"), 1);
    OK(pair_queue(h, 1, "sales"));
    assert_int_equal(hx_o.npairs, 1);
    qs_pairing *p = &hx_o.pairs[0];
    assert_string_equal(p->call, "c1");
    assert_string_equal(p->agent, "a1");
    assert_string_equal(p->queue, "sales");
    assert_string_equal(p->caller_node, "A");
    assert_string_equal(p->agent_node, "B");
    assert_string_equal(p->caller_channel, "ch-c1");
    assert_string_equal(p->agent_channel, "ag-a1");
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:support:callers"), 0);
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:support:arrivals"), 0);
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:sales:callers"), 0);
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:billing:agents"), 0);
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:sales:agents"), 0);
    char key[QS_ID_MAX + 32];
    snprintf(key, sizeof key, "{ariq}:pairing:%s", p->pairing);
    assert_string_equal(hget(h, key, "state"), "paired");
    assert_string_equal(hget(h, "{ariq}:call:c1", "state"), "paired");
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "paired");
    assert_int_equal(hx_int(h, "SISMEMBER {ariq}:node:A:pairings %s", p->pairing), 1);
    assert_int_equal(hx_int(h, "SISMEMBER {ariq}:node:B:pairings %s", p->pairing), 1);
    /* the connect logs CONNECT in sales and WITHDRAW in support */
    h->now += 3000;
    OK(bridged(h, p->pairing));
    assert_int_equal(hx_o.res.ringtime_ms, 3000);
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "CONNECT", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "queue"), "sales");
    assert_string_equal(hx_ev(&e.v[i], "bridgedchanneluniqueid"), "ag-a1");
    assert_string_equal(hx_ev(&e.v[i], "holdtime"), "3");
    assert_string_equal(hx_ev(&e.v[i], "ringtime"), "3");
    i = hx_find(&e, "WITHDRAW", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "queue"), "support");
    assert_string_equal(hx_ev(&e.v[i], "withdrawinfo"), "connected:sales");
    assert_int_equal(hx_count(&e, "WITHDRAW"), 1);
    hx_events_free(&e);
}

/* A caller arriving takes the free agent that waited longest over all its
 * queues, whatever queue it is in. */
static void test_pair_on_caller_arrival(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_login(h, 0, "a1", "sales", false, &o));
    OK(hx_login(h, 1, "a2", "support", false, &o)); /* free later than a1 */
    OK(hx_login(h, 1, "a3", "support", false, &o));
    OK(hx_enter(h, 0, "c1", 0, "support&sales", true, &o));
    assert_int_equal(o.npairs, 1);
    assert_string_equal(o.pairs[0].agent, "a1");
    assert_string_equal(o.pairs[0].queue, "sales");
    /* the next one goes to a2, the front of support */
    OK(hx_enter(h, 1, "c2", 0, "support", false, &o));
    assert_int_equal(o.npairs, 0);
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_pair_call(h->n[1].qs, "c2", hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].agent, "a2");
    /* pairing a call that is no longer waiting pairs nothing */
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_pair_call(h->n[1].qs, "c2", hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 0);
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_pair_call(h->n[1].qs, "nobody", hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 0);
}

/* An agent becoming free takes the best caller over its queues: highest
 * priority, then earliest arrival. */
static void test_pair_on_agent_free(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_enter(h, 0, "c1", 0, "support", false, &o));
    OK(hx_enter(h, 1, "c2", 0, "sales", false, &o));
    OK(hx_enter(h, 0, "c3", 3, "billing", false,
                &o)); /* priority, but a1 is not in billing */
    OK(hx_enter(h, 1, "c4", 2, "sales", false, &o)); /* priority 2 wins over c1 */
    OK(hx_login(h, 0, "a1", "support&sales", false, &o));
    assert_int_equal(o.npairs, 0);
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_pair_agent(h->n[0].qs, "a1", hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].call, "c4");
    /* a2 in both: c1 (arrived before c2, same priority) */
    OK(hx_login(h, 1, "a2", "sales&support", true, &o));
    assert_int_equal(o.npairs, 1);
    assert_string_equal(o.pairs[0].call, "c1");
    assert_string_equal(o.pairs[0].queue, "support");
    /* the sweep of sales with a third agent: c2 */
    OK(hx_login(h, 1, "a3", "sales", false, &o));
    OK(pair_queue(h, 0, "sales"));
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].call, "c2");
    assert_string_equal(hx_o.pairs[0].agent, "a3");
    OK(pair_queue(h, 0, "sales"));
    assert_int_equal(hx_o.npairs, 0);
    assert_int_equal(zrank(h, "billing", "c3"), 0);
}

/* A sweep pairs as many as it can (up to max_pairs) in order. */
static void test_sweep_many(void **state)
{
    hx *h = *state;
    hx_out o;
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "a%d", i);
        OK(hx_login(h, i % 2, id, "q", false, &o));
    }
    for (int i = 0; i < 8; i++) {
        snprintf(id, sizeof id, "c%d", i);
        OK(hx_enter(h, i % 2, id, i == 7 ? 9 : 0, "q", false, &o));
    }
    OK(pair_queue(h, 0, "q"));
    assert_int_equal(hx_o.npairs, 5);
    assert_string_equal(hx_o.pairs[0].call, "c7"); /* priority first */
    assert_string_equal(hx_o.pairs[0].agent, "a0");
    for (int i = 1; i < 5; i++) {
        snprintf(id, sizeof id, "c%d", i - 1);
        assert_string_equal(hx_o.pairs[i].call, id);
        snprintf(id, sizeof id, "a%d", i);
        assert_string_equal(hx_o.pairs[i].agent, id);
    }
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:q:callers"), 3);
}

/* Rollback: the caller is first again with its original score, the agent
 * free with its old seq (keep), the pairing gone, UNPAIRED says why; a
 * second rollback changes nothing. */
static void test_rollback(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_enter(h, 0, "c1", 0, "q", false, &o));
    long long score = o.enter.score;
    OK(hx_login(h, 1, "a1", "q", false, &o));
    long long aseq = o.res.seq;
    OK(hx_enter(h, 1, "c2", 0, "q", true, &o)); /* pairs c1 with a1 */
    assert_int_equal(o.npairs, 1);
    assert_string_equal(o.pairs[0].call, "c1");
    char pid[QS_ID_MAX + 1];
    snprintf(pid, sizeof pid, "%s", o.pairs[0].pairing);
    OK(hx_enter(h, 0, "c3", 0, "q", false, &o));
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_rollback(h->n[0].qs, pid, "busy", QS_AGENT_KEEP, hx_result_cb, &hx_o),
               &hx_o));
    assert_string_equal(hx_o.res.outcome, "ROLLEDBACK");
    assert_int_equal(zrank(h, "q", "c1"), 0);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:callers c1"), score);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:agents a1"), aseq);
    assert_string_equal(hget(h, "{ariq}:call:c1", "state"), "waiting");
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "free");
    assert_int_equal(hx_int(h, "EXISTS {ariq}:pairing:%s", pid), 0);
    assert_int_equal(hx_int(h, "SCARD {ariq}:node:A:pairings"), 0);
    char *snap = hx_snapshot(h);
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_rollback(h->n[1].qs, pid, "busy", QS_AGENT_KEEP, hx_result_cb, &hx_o),
               &hx_o));
    assert_string_equal(hx_o.res.outcome, "GONE");
    char *snap2 = hx_snapshot(h);
    assert_string_equal(snap, snap2);
    free(snap);
    free(snap2);
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "UNPAIRED", "pairing", pid, 0);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&e.v[i], "reason"), "rollback");
    assert_string_equal(hx_ev(&e.v[i], "detail"), "busy;agent=keep");
    hx_events_free(&e);
    /* paired again, the same way: c1 and a1 */
    OK(pair_queue(h, 0, "q"));
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].call, "c1");
    assert_string_equal(hx_o.pairs[0].agent, "a1");
    /* rollback to pause: a1 paused, c1 first again */
    snprintf(pid, sizeof pid, "%s", hx_o.pairs[0].pairing);
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(
        h, qs_rollback(h->n[0].qs, pid, "noanswer", QS_AGENT_PAUSE, hx_result_cb, &hx_o),
        &hx_o));
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "paused");
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:agents a1"), -1);
    assert_int_equal(zrank(h, "q", "c1"), 0);
    /* a bridged pairing cannot be rolled back */
    OK(hx_login(h, 1, "a2", "q", true, &o));
    assert_string_equal(o.pairs[0].call, "c1");
    hx_o = o;
    snprintf(pid, sizeof pid, "%s", hx_o.pairs[0].pairing);
    OK(bridged(h, pid));
    memset(&hx_o, 0, sizeof hx_o);
    assert_int_equal(
        hx_done(h,
                qs_rollback(h->n[0].qs, pid, "late", QS_AGENT_KEEP, hx_result_cb, &hx_o),
                &hx_o),
        ARIQ_ESTATE);
    assert_non_null(strstr(hx_o.errmsg, "BADSTATE"));
}

/* The whole life of a call, then everything is cleaned: COMPLETECALLER
 * with hold and talk time, wrapup, the agent back at the end of the agent
 * queue, then logoff; nothing left in Redis but the counter and stream. */
static void test_complete_wrapup_logoff(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_login(h, 1, "a1", "q", false, &o));
    OK(hx_login(h, 1, "a2", "q", false, &o));
    h->now += 1000;
    OK(hx_enter(h, 0, "c1", 0, "q", true, &o));
    assert_string_equal(o.pairs[0].agent, "a1");
    char pid[QS_ID_MAX + 1];
    snprintf(pid, sizeof pid, "%s", o.pairs[0].pairing);
    h->now += 2000;
    OK(bridged(h, pid));
    assert_int_equal(hx_o.res.holdtime_ms, 2000);
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "talking");
    h->now += 65000;
    OK(leave(h, 0, "c1", QS_LEAVE_HANGUP, QS_BY_CALLER, 10000, true));
    assert_string_equal(hx_o.res.outcome, "COMPLETECALLER");
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "wrapup");
    assert_string_equal(hget(h, "{ariq}:agent:a1", "calls_taken"), "1");
    assert_string_equal(hget(h, "{ariq}:agent:a1", "talk_ms"), "65000");
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:agents a1"), -1);
    /* ready again: behind a2 */
    memset(&hx_o, 0, sizeof hx_o);
    assert_int_equal(
        hx_done(h, qs_agent_ready(h->n[1].qs, "a2", true, hx_result_cb, &hx_o), &hx_o),
        ARIQ_ESTATE);
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_agent_ready(h->n[1].qs, "a1", true, hx_result_cb, &hx_o), &hx_o));
    assert_string_equal(hx_o.res.state, "free");
    assert_true(hx_int(h, "ZSCORE {ariq}:queue:q:agents a1") >
                hx_int(h, "ZSCORE {ariq}:queue:q:agents a2"));
    /* a second call: the agent ends it (#) without wrapup: free at once */
    OK(hx_enter(h, 0, "c2", 0, "q", true, &o));
    assert_string_equal(o.pairs[0].agent, "a2");
    snprintf(pid, sizeof pid, "%s", o.pairs[0].pairing);
    OK(bridged(h, pid));
    h->now += 5000;
    OK(leave(h, 0, "c2", QS_LEAVE_HANGUP, QS_BY_AGENT, 0, true));
    assert_string_equal(hx_o.res.outcome, "COMPLETEAGENT");
    assert_string_equal(hget(h, "{ariq}:agent:a2", "state"), "free");
    OK(leave(h, 0, "c2", QS_LEAVE_HANGUP, QS_BY_CALLER, 0, true));
    assert_string_equal(hx_o.res.outcome, "GONE");
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "COMPLETECALLER", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "callid"), "c1");
    assert_string_equal(hx_ev(&e.v[i], "agent"), "a1");
    assert_string_equal(hx_ev(&e.v[i], "holdtime"), "2");
    assert_string_equal(hx_ev(&e.v[i], "calltime"), "65");
    assert_string_equal(hx_ev(&e.v[i], "origposition"), "1");
    i = hx_find(&e, "COMPLETEAGENT", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "callid"), "c2");
    assert_string_equal(hx_ev(&e.v[i], "calltime"), "5");
    assert_int_equal(hx_count(&e, "UNPAIRED"), 2);
    hx_events_free(&e);
    OK(logoff(h, "a1", false));
    assert_string_equal(hx_o.res.outcome, "AGENTLOGOFF");
    OK(logoff(h, "a2", false));
    OK(logoff(h, "a2", false));
    assert_string_equal(hx_o.res.outcome, "GONE");
    hx_events_read(h, &e);
    i = hx_find(&e, "AGENTLOGOFF", "agent", "a1", 0);
    assert_string_equal(hx_ev(&e.v[i], "channel"), "PJSIP/a1-0001");
    assert_string_equal(hx_ev(&e.v[i], "callid"), "ag-a1");
    assert_string_equal(hx_ev(&e.v[i], "logintime"), "73");
    assert_string_equal(hx_ev(&e.v[i], "queue"), "NONE");
    i = hx_find(&e, "AGENTLOGIN", "agent", "a1", 0);
    assert_string_equal(hx_ev(&e.v[i], "channel"), "PJSIP/a1-0001");
    hx_events_free(&e);
    /* only the counter and the stream remain */
    assert_int_equal(hx_dbsize(h), 2);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:seq {ariq}:events"), 2);
}

/* Agent hangs up while talking: COMPLETEAGENT, the call record goes (the
 * node hangs the caller up); while paired: the caller goes back first. */
static void test_agent_hangup(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_login(h, 1, "a1", "q", false, &o));
    OK(hx_enter(h, 0, "c1", 0, "q", true, &o));
    OK(bridged(h, o.pairs[0].pairing));
    OK(logoff(h, "a1", true));
    assert_string_equal(hx_o.res.call_outcome, "COMPLETEAGENT");
    assert_string_equal(hx_o.res.call, "c1");
    assert_int_equal(hx_int(h, "EXISTS {ariq}:call:c1"), 0);
    OK(leave(h, 0, "c1", QS_LEAVE_HANGUP, QS_BY_CALLER, 0, true));
    assert_string_equal(hx_o.res.outcome, "GONE");
    assert_int_equal(hx_dbsize(h), 2);
    /* paired, not bridged */
    OK(hx_enter(h, 0, "c2", 0, "q", false, &o));
    OK(hx_enter(h, 0, "c3", 0, "q", false, &o));
    OK(hx_login(h, 1, "a2", "q", true, &o));
    assert_string_equal(o.pairs[0].call, "c2");
    OK(hx_login(h, 1, "a3", "q", false, &o));
    OK(logoff(h, "a2", true)); /* c2 goes back first and is paired with a3 */
    assert_string_equal(hx_o.res.call_outcome, "REQUEUED");
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].call, "c2");
    assert_string_equal(hx_o.pairs[0].agent, "a3");
}

/* A caller hanging up while paired: ABANDON, the agent free again keeping
 * its place. */
static void test_abandon_while_paired(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_login(h, 1, "a1", "q", false, &o));
    long long aseq = o.res.seq;
    OK(hx_enter(h, 0, "c1", 0, "q", true, &o));
    h->now += 4000;
    OK(leave(h, 0, "c1", QS_LEAVE_HANGUP, QS_BY_CALLER, 0, false));
    assert_string_equal(hx_o.res.outcome, "ABANDON");
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:agents a1"), aseq);
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "ABANDON", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "position"), "1");
    assert_string_equal(hx_ev(&e.v[i], "waittime"), "4");
    assert_int_equal(hx_count(&e, "UNPAIRED"), 1);
    hx_events_free(&e);
    OK(logoff(h, "a1", false));
    assert_int_equal(hx_dbsize(h), 2);
}

/* Pause: out of the free sets, PAUSE per queue with the reason; pausing
 * during a call takes effect after it; unpause at the back. */
static void test_pause(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_login(h, 0, "a1", "q&r", false, &o));
    OK(hx_login(h, 0, "a2", "q", false, &o));
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h,
               qs_agent_pause(h->n[0].qs, "a1", true, "lunch", false, hx_result_cb, &hx_o),
               &hx_o));
    assert_string_equal(hx_o.res.state, "paused");
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:r:agents"), 0);
    assert_string_equal(hget(h, "{ariq}:agent:a1", "pause_reason"), "lunch");
    OK(hx_enter(h, 0, "c1", 0, "r", true, &o));
    assert_int_equal(o.npairs, 0);
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_agent_pause(h->n[0].qs, "a1", false, "", true, hx_result_cb, &hx_o),
               &hx_o));
    assert_string_equal(hx_o.res.state,
                        "paired"); /* unpaused and paired with c1 at once */
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].call, "c1");
    OK(bridged(h, hx_o.pairs[0].pairing));
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h,
               qs_agent_pause(h->n[0].qs, "a1", true, "after", false, hx_result_cb, &hx_o),
               &hx_o));
    assert_string_equal(hx_o.res.state, "talking");
    OK(leave(h, 0, "c1", QS_LEAVE_HANGUP, QS_BY_CALLER, 0, true));
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "paused");
    memset(&hx_o, 0, sizeof hx_o);
    assert_int_equal(
        hx_done(h, qs_agent_pause(h->n[0].qs, "a2", false, "", false, hx_result_cb, &hx_o),
                &hx_o),
        ARIQ_ESTATE);
    memset(&hx_o, 0, sizeof hx_o);
    assert_int_equal(
        hx_done(h, qs_agent_pause(h->n[0].qs, "zz", true, "", false, hx_result_cb, &hx_o),
                &hx_o),
        ARIQ_ENOTFOUND);
    hx_events e;
    hx_events_read(h, &e);
    assert_int_equal(hx_count(&e, "PAUSE"), 4); /* q and r, twice */
    assert_int_equal(hx_count(&e, "UNPAUSE"), 2);
    int i = hx_find(&e, "PAUSE", "queue", "r", 0);
    assert_string_equal(hx_ev(&e.v[i], "reason"), "lunch");
    assert_string_equal(hx_ev(&e.v[i], "callid"), "NONE");
    hx_events_free(&e);
}

/* A write whose reply was lost with the connection is sent again
 * (queue_store's resendable ops): the second enter, login and bridged of
 * the same party answer what the first did and write nothing; another
 * node's enter of the same call id is still refused. A node's pairings
 * not yet bridged are read back (node_pairings), the bridged ones not. */
static void test_resent_writes(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_enter(h, 0, "c0", 0, "q", false, &o));
    OK(hx_enter(h, 0, "c1", 0, "q", false, &o));
    long long seq = o.enter.seq;
    char *before = hx_snapshot(h);
    OK(hx_enter(h, 0, "c1", 0, "q", false, &o)); /* resent */
    assert_int_equal(o.enter.seq, seq);
    assert_int_equal(o.enter.positions[0], 2);
    HX_UNCHANGED(h, before);
    assert_int_equal(hx_enter(h, 1, "c1", 0, "q", false, &o), ARIQ_EBUSY);
    assert_int_equal(hx_enter(h, 0, "c1", 0, "q&r", false, &o), ARIQ_EBUSY);
    OK(hx_login(h, 0, "1001", "q", false, &o));
    seq = o.res.seq;
    before = hx_snapshot(h);
    OK(hx_login(h, 0, "1001", "q", false, &o)); /* resent: nothing more */
    assert_int_equal(o.res.seq, seq);
    HX_UNCHANGED(h, before);
    OK(hx_login(h, 0, "1001", "q", true, &o)); /* resent with its autopair */
    assert_int_equal(o.npairs, 1);
    assert_string_equal(o.pairs[0].call, "c0");
    char pid[QS_ID_MAX + 1];
    snprintf(pid, sizeof pid, "%s", o.pairs[0].pairing);
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_node_pairings(h->n[0].qs, hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].pairing, pid);
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_node_pairings(h->n[1].qs, hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 0); /* B serves neither party */
    OK(hx_enter(h, 0, "c0", 0, "q", false, &o)); /* paired since: still the same */
    assert_int_equal(o.enter.positions[0], 0);
    OK(bridged(h, pid));
    assert_int_equal(hx_o.res.connected, 1);
    before = hx_snapshot(h);
    OK(bridged(h, pid)); /* resent */
    assert_int_equal(hx_o.res.connected, 1);
    HX_UNCHANGED(h, before);
    assert_int_equal(hx_count_events(h, "CONNECT"), 1);
    assert_int_equal(hx_count_events(h, "ENTERQUEUE"), 2);
    assert_int_equal(hx_count_events(h, "AGENTLOGIN"), 1);
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_node_pairings(h->n[0].qs, hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 0);
    /* bridged and talking: a login or enter now is not a resend */
    assert_int_equal(hx_login(h, 0, "1001", "q", false, &o), ARIQ_EBUSY);
    assert_int_equal(hx_enter(h, 0, "c0", 0, "q", false, &o), ARIQ_EBUSY);
}

/* An agent id already logged in (on any node, in any state) is refused and
 * nothing changes. */
static void test_agentinuse(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_login(h, 0, "1001", "q", false, &o));
    char *before = hx_snapshot(h);
    assert_int_equal(hx_login(h, 1, "1001", "q&r", false, &o), ARIQ_EBUSY);
    assert_non_null(strstr(o.errmsg, "AGENTINUSE"));
    assert_non_null(strstr(o.errmsg, "node A"));
    HX_UNCHANGED(h, before);
    OK(hx_enter(h, 0, "c1", 0, "q", true, &o));
    OK(bridged(h, o.pairs[0].pairing));
    assert_int_equal(hx_login(h, 0, "1001", "q", false, &o), ARIQ_EBUSY);
    assert_non_null(strstr(o.errmsg, "talking"));
    /* a call id queued twice is refused as well */
    assert_int_equal(hx_enter(h, 1, "c1", 0, "q", false, &o), ARIQ_EBUSY);
}

/* Recording metadata: spans of pauses, stored, discarded, events. */
static void test_recording(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_login(h, 1, "a1", "q", false, &o));
    OK(hx_enter(h, 0, "c1", 0, "q", true, &o));
    char pid[QS_ID_MAX + 1];
    snprintf(pid, sizeof pid, "%s", o.pairs[0].pairing);
    OK(bridged(h, pid));
    queue_store *qs = h->n[1].qs;
#define REC(act, name, ...)                                                              \
    (memset(&hx_o, 0, sizeof hx_o),                                                        \
     hx_done(h, qs_rec(qs, act, name, __VA_ARGS__, hx_result_cb, &hx_o), &hx_o))
    OK(REC(QS_REC_START, "r1", pid, "q-r1.wav", 0));
    assert_string_equal(hx_o.res.state, "recording");
    assert_int_equal(REC(QS_REC_START, "r1", pid, "q-r1.wav", 0), ARIQ_EBUSY);
    assert_int_equal(REC(QS_REC_UNPAUSE, "r1", NULL, NULL, 0), ARIQ_ESTATE);
    h->now += 1000;
    OK(REC(QS_REC_PAUSE, "r1", NULL, NULL, 0));
    h->now += 500;
    OK(REC(QS_REC_UNPAUSE, "r1", NULL, NULL, 0));
    h->now += 2000;
    OK(REC(QS_REC_STOP, "r1", NULL, NULL, 0));
    assert_string_equal(hx_o.res.state, "stored");
    const char *k = "{ariq}:recording:r1";
    assert_string_equal(hget(h, k, "paused_ms"), "500");
    assert_string_equal(hget(h, k, "call"), "c1");
    assert_string_equal(hget(h, k, "agent"), "a1");
    assert_string_equal(hget(h, k, "queue"), "q");
    assert_string_equal(hget(h, k, "file"), "q-r1.wav");
    char span[64];
    snprintf(span, sizeof span, "%llu-%llu", (unsigned long long)h->now - 2500,
             (unsigned long long)h->now - 2000);
    assert_string_equal(hget(h, k, "spans"), span);
    OK(REC(QS_REC_START, "r2", pid, "q-r2.wav", 0));
    OK(REC(QS_REC_DISCARD, "r2", NULL, NULL, 60000));
    assert_string_equal(hget(h, "{ariq}:recording:r2", "state"), "discarded");
    assert_true(hx_int(h, "PTTL {ariq}:recording:r2") > 0);
    assert_int_equal(REC(QS_REC_STOP, "nope", NULL, NULL, 0), ARIQ_ENOTFOUND);
    /* a start held while Redis was away may arrive after its pairing ended:
     * Asterisk has the recording, so Redis records it, names unknown */
    OK(REC(QS_REC_START, "r3", "p999999", "x.wav", 0));
    assert_string_equal(hget(h, "{ariq}:recording:r3", "state"), "recording");
    assert_string_equal(hget(h, "{ariq}:recording:r3", "queue"), "NONE");
    assert_string_equal(hget(h, "{ariq}:recording:r3", "call"), "NONE");
    assert_string_equal(hget(h, "{ariq}:pairing:p999999", "rec"), ""); /* no pairing made */
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "RECORDSTOP", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "duration_ms"), "3000");
    assert_string_equal(hx_ev(&e.v[i], "paused_ms"), "500");
    assert_string_equal(hx_ev(&e.v[i], "callid"), "c1");
    assert_int_equal(hx_count(&e, "RECORDSTART"), 3);
    assert_int_equal(hx_count(&e, "RECORDPAUSE"), 1);
    assert_int_equal(hx_count(&e, "RECORDUNPAUSE"), 1);
    assert_int_equal(hx_count(&e, "RECORDDISCARD"), 1);
    hx_events_free(&e);
#undef REC
}

/* A node whose clock is behind the one that stamped the call: durations
 * are 0, never negative. */
static void test_clock_skew(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_enter(h, 0, "c1", 0, "q", false, &o));
    h->now -= 3000;
    OK(leave(h, 1, "c1", QS_LEAVE_HANGUP, QS_BY_CALLER, 0, false));
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "ABANDON", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "waittime"), "0");
    assert_string_equal(hx_ev(&e.v[i], "waittime_ms"), "0");
    hx_events_free(&e);
}

static void reap_cb(queue_store *qs, int err, const qs_reap_result *res, void *pd)
{
    hx_out *o = pd;
    if (res) {
        o->res.seq = res->pairings;
        o->res.holdtime_ms = res->calls;
        o->res.ringtime_ms = res->agents;
        o->res.npairings = res->more;
    }
    o->err = err;
    snprintf(o->errmsg, sizeof o->errmsg, "%s", err ? qs_errmsg(qs) : "");
    o->done++;
}

static int reap(hx *h, const char *node, int max)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_reap(h->n[0].qs, node, "heartbeat lapsed", max, reap_cb, &hx_o),
                   &hx_o);
}

/* Node B dies: its pairings end (a paired caller of A back at the front, a
 * bridged one completed), its callers abandoned, its agents logged off;
 * a second run changes nothing; a live node is refused. */
static void test_reap_node(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_login(h, 1, "a1", "q", false, &o));
    OK(hx_enter(h, 0, "c2", 0, "q", true, &o)); /* c2 (A) paired with a1 (B) */
    long long c2score = o.enter.score;
    OK(hx_login(h, 1, "a2", "q", false, &o));
    OK(hx_enter(h, 0, "c3", 0, "q", true, &o)); /* c3 (A) talking with a2 (B) */
    OK(bridged(h, o.pairs[0].pairing));
    OK(hx_enter(h, 0, "c1", 0, "q", false, &o));
    OK(hx_login(h, 1, "a3", "q", false, &o));
    OK(hx_enter(h, 1, "c4", 0, "q", false, &o));
    redisReply *r = redisCommand(h->rc, "SADD {ariq}:nodes A B");
    freeReplyObject(r);
    h->now += 9000;
    OK(reap(h, "B", 100));
    assert_int_equal(hx_o.res.seq, 2);         /* pairings */
    assert_int_equal(hx_o.res.holdtime_ms, 1); /* calls */
    assert_int_equal(hx_o.res.ringtime_ms, 3); /* agents */
    assert_int_equal(hx_o.res.npairings, 0);   /* more */
    assert_int_equal(zrank(h, "q", "c2"), 0);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:callers c2"), c2score);
    assert_string_equal(hget(h, "{ariq}:call:c2", "state"), "waiting");
    assert_int_equal(zrank(h, "q", "c1"), 1);
    assert_int_equal(zrank(h, "q", "c4"), -1);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:call:c3 {ariq}:call:c4"), 0);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:agent:a1 {ariq}:agent:a2 {ariq}:agent:a3"),
                     0);
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:q:agents"), 0);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:node:B:calls {ariq}:node:B:agents "
                               "{ariq}:node:B:pairings {ariq}:node:A:pairings"),
                     0);
    assert_int_equal(hx_int(h, "SCARD {ariq}:node:A:calls"), 2);
    assert_int_equal(hx_int(h, "SISMEMBER {ariq}:nodes B"), 0);
    assert_int_equal(hx_int(h, "SISMEMBER {ariq}:nodes A"), 1);
    hx_events e;
    hx_events_read(h, &e);
    assert_int_equal(hx_count(&e, "AGENTLOGOFF"), 3);
    int i = hx_find(&e, "AGENTLOGOFF", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "reason"), "heartbeat lapsed");
    i = hx_find(&e, "ABANDON", "callid", "c4", 0);
    assert_string_equal(hx_ev(&e.v[i], "reason"), "heartbeat lapsed");
    assert_string_equal(hx_ev(&e.v[i], "waittime"), "9");
    i = hx_find(&e, "COMPLETEAGENT", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "callid"), "c3");
    i = hx_find(&e, "UNPAIRED", "callid", "c2", 0);
    assert_string_equal(hx_ev(&e.v[i], "reason"), "rollback");
    assert_int_equal(hx_count(&e, "UNPAIRED"), 2);
    hx_events_free(&e);
    char *before = hx_snapshot(h);
    OK(reap(h, "B", 100));
    assert_int_equal(hx_o.res.seq + hx_o.res.holdtime_ms + hx_o.res.ringtime_ms, 0);
    HX_UNCHANGED(h, before);
    /* a live node is not reaped */
    r = redisCommand(h->rc, "SET {ariq}:node:A:heartbeat 1 PX 60000");
    freeReplyObject(r);
    assert_int_equal(reap(h, "A", 100), ARIQ_ESTATE);
    assert_int_equal(hx_int(h, "SCARD {ariq}:node:A:calls"), 2);
}

/* A budget of one record per call: `more` until everything is gone. */
static void test_reap_budget(void **state)
{
    hx *h = *state;
    hx_out o;
    char id[16];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "c%d", i);
        OK(hx_enter(h, 1, id, 0, "q", false, &o));
    }
    OK(hx_login(h, 1, "a1", "r", false, &o));
    int calls = 0;
    do {
        OK(reap(h, "B", 1));
        calls++;
        assert_true(hx_o.res.seq + hx_o.res.holdtime_ms + hx_o.res.ringtime_ms <= 1);
    } while (hx_o.res.npairings && calls < 20);
    assert_int_equal(calls, 6);
    assert_int_equal(hx_dbsize(h), 2); /* seq and events */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_and_positions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pair_on_caller_arrival, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pair_on_agent_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_wrapup_logoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_hangup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandon_while_paired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resent_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agentinuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recording, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock_skew, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reap_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reap_budget, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
