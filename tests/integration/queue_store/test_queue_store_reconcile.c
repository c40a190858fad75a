/* queue_store's re-adoption ops against a real redis-server: reconcile (a
 * node restarted after its process died tells what its Asterisk still has;
 * what died ends as a hangup would, what is bridged is recorded, the reply
 * is what the node has left), announce_info (ann_ms), and the recording a
 * pairing names (rec).
 *
 * Each test runs its own server and the harness's nodes "A" (0) and "B" (1)
 * on one loop, and ends with every store freed and the loop empty. Callers
 * get channel ch-<callid>, agents ag-<agentid> (harness.c). QS_SCRIPTS_DIR
 * names a mutated copy of queue.lua, to see these tests fail without what
 * they test (hx_setup_env; the repo's file is shared with every other test
 * running). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "harness.h"

#define OK       HX_OK
#define hget     hx_hget4
#define setup    hx_setup_env
#define teardown hx_teardown

#define ALIVE_BUF 6000
#define KEEP_BUF  600

/* What reconcile's callback saw, deep-copied (the result is borrowed). */
typedef struct rc_out {
    int done, err;
    char errmsg[QS_ERRMSG_MAX];
    qs_reconcile_result r; /* arrays point at the copies below */
    qs_call_rec *calls;
    qs_agent_rec *agents;
    qs_kept_pairing *pairings;
    char (*hangup)[QS_ID_MAX + 1];
} rc_out;

static void *dup_array(const void *p, size_t n, size_t size)
{
    if (n == 0)
        return NULL;
    void *d = malloc(n * size);
    memcpy(d, p, n * size);
    return d;
}

static void rc_cb(queue_store *qs, int err, const qs_reconcile_result *res, void *pd)
{
    rc_out *o = pd;
    o->err = err;
    snprintf(o->errmsg, sizeof o->errmsg, "%s", err ? qs_errmsg(qs) : "");
    if (res) {
        o->r = *res;
        o->calls = dup_array(res->calls, res->ncalls, sizeof *res->calls);
        o->agents = dup_array(res->agents, res->nagents, sizeof *res->agents);
        o->pairings = dup_array(res->pairings, res->npairings, sizeof *res->pairings);
        o->hangup = res->nhangup ? calloc(res->nhangup, sizeof *o->hangup) : NULL;
        for (size_t i = 0; i < res->nhangup; i++)
            snprintf(o->hangup[i], sizeof o->hangup[i], "%s", res->hangup[i]);
        o->r.calls = o->calls;
        o->r.agents = o->agents;
        o->r.pairings = o->pairings;
        o->r.hangup = NULL;
    }
    o->done++;
}

static void rc_free(rc_out *o)
{
    free(o->calls);
    free(o->agents);
    free(o->pairings);
    free(o->hangup);
    memset(o, 0, sizeof *o);
}

/* Splits s at spaces into at most max words (copied into buf). */
static size_t words(const char *s, char (*buf)[QS_ID_MAX + 1], const char **v, size_t max)
{
    size_t n = 0;
    while (s && *s && n < max) {
        size_t len = strcspn(s, " ");
        if (len) {
            snprintf(buf[n], QS_ID_MAX + 1, "%.*s", (int)len, s);
            v[n] = buf[n];
            n++;
        }
        s += len + (s[len] == ' ');
    }
    return n;
}

/* reconcile on `node`: alive "ch-c1 ag-a1 ...", keep "pid,chan1,chan2 ..."
 * (words of three joined by commas). Returns the callback's err. */
static int reconcile(hx *h, int node, const char *alive, const char *keep, rc_out *o)
{
    static char abuf[64][QS_ID_MAX + 1], kbuf[32][QS_ID_MAX + 1],
        parts[96][QS_ID_MAX + 1];
    const char *av[64], *kv[32];
    qs_keep k[32];
    size_t na = words(alive, abuf, av, 64), nk = words(keep, kbuf, kv, 32);
    for (size_t i = 0; i < nk; i++) {
        const char *s = kv[i];
        for (int j = 0; j < 3; j++) {
            size_t len = strcspn(s, ",");
            snprintf(parts[3 * i + j], QS_ID_MAX + 1, "%.*s", (int)len, s);
            s += len + (s[len] == ',');
        }
        k[i] = (qs_keep){parts[3 * i], parts[3 * i + 1], parts[3 * i + 2]};
    }
    memset(o, 0, sizeof *o);
    int rc = qs_reconcile(h->n[node].qs, av, na, k, nk, rc_cb, o);
    if (rc != 0)
        return rc;
    if (!hx_wait(h, &o->done, 1, 10000))
        return -100;
    return o->err;
}

static const qs_call_rec *rc_call(const rc_out *o, const char *callid)
{
    for (size_t i = 0; i < o->r.ncalls; i++)
        if (strcmp(o->calls[i].callid, callid) == 0)
            return &o->calls[i];
    return NULL;
}

static const qs_agent_rec *rc_agent(const rc_out *o, const char *agentid)
{
    for (size_t i = 0; i < o->r.nagents; i++)
        if (strcmp(o->agents[i].agentid, agentid) == 0)
            return &o->agents[i];
    return NULL;
}

static const qs_kept_pairing *rc_kept(const rc_out *o, const char *pid)
{
    for (size_t i = 0; i < o->r.npairings; i++)
        if (strcmp(o->pairings[i].p.pairing, pid) == 0)
            return &o->pairings[i];
    return NULL;
}

static const char *pget(hx *h, const char *pid, const char *field)
{
    char key[QS_ID_MAX + 32];
    snprintf(key, sizeof key, "{ariq}:pairing:%s", pid);
    return hget(h, key, field);
}

static int bridged(hx *h, int node, const char *pid, qs_side side)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_bridged(h->n[node].qs, pid, side, hx_result_cb, &hx_o), &hx_o);
}

static int rec(hx *h, qs_rec_action action, const char *name, const char *pid)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(
        h, qs_rec(h->n[0].qs, action, name, pid, "/rec/x.wav", 0, hx_result_cb, &hx_o),
        &hx_o);
}

/* `call` waits on node cn, `agent` logs in on node an with autopair and is
 * paired with it. The pairing id into pid. */
static void pair(hx *h, int cn, const char *call, int an, const char *agent,
                 char pid[QS_ID_MAX + 1])
{
    hx_out o;
    OK(hx_enter(h, cn, call, 0, "q", false, &o));
    OK(hx_login(h, an, agent, "q", true, &o));
    assert_int_equal(o.npairs, 1);
    assert_string_equal(o.pairs[0].call, call);
    snprintf(pid, QS_ID_MAX + 1, "%s", o.pairs[0].pairing);
}

static long long seq_now(hx *h)
{
    return hx_int(h, "GET {ariq}:seq");
}

/* ---- callers and agents whose channel is gone ---------------------------- */

/* Three callers waiting on A, one gone: ABANDON (reason restart) in each of
 * its queues, out of both zsets, the record and its node set entry gone;
 * the others keep their scores and order and are in the reply with their
 * fields. B's caller is not A's business. */
static void test_caller_gone(void **state)
{
    hx *h = *state;
    hx_out o;
    long long score[3];
    OK(hx_enter(h, 0, "c1", 0, "q&r", false, &o));
    score[0] = o.enter.score;
    OK(hx_enter(h, 0, "c2", 5, "q&r", false, &o));
    score[1] = o.enter.score;
    OK(hx_enter(h, 0, "c3", 0, "q", false, &o));
    score[2] = o.enter.score;
    OK(hx_enter(h, 1, "b1", 0, "q", false, &o));
    h->now += 4000;
    rc_out r;
    OK(reconcile(h, 0, "ch-c2 ch-c3 ch-nobody", "", &r));
    assert_int_equal(r.r.abandoned, 1);
    assert_int_equal(r.r.rolled_back + r.r.unlinked + r.r.completed + r.r.logged_off, 0);
    assert_int_equal(r.r.seq, seq_now(h));
    assert_int_equal(r.r.ncalls, 2);
    assert_int_equal(r.r.nagents + r.r.npairings + r.r.nhangup, 0);
    const qs_call_rec *c2 = rc_call(&r, "c2");
    assert_non_null(c2);
    assert_string_equal(c2->channel, "ch-c2");
    assert_string_equal(c2->state, "waiting");
    assert_string_equal(c2->pairing, "");
    assert_int_equal(c2->nqueues, 2);
    assert_string_equal(c2->queues[0], "q");
    assert_string_equal(c2->queues[1], "r");
    assert_int_equal(c2->priority, 5);
    assert_int_equal(c2->score, score[1]);
    assert_int_equal(c2->seq, 2);
    assert_int_equal(c2->entered_ms, 1700000000000LL);
    assert_int_equal(c2->ann_ms, 0);
    assert_string_equal(c2->cid_num, "5551234");
    assert_string_equal(c2->cid_name, "Ann Caller");
    assert_int_equal(rc_call(&r, "c3")->score, score[2]);
    rc_free(&r);
    /* Redis: c1 gone everywhere, the others where they were */
    assert_int_equal(hx_int(h, "EXISTS {ariq}:call:c1"), 0);
    assert_int_equal(hx_int(h, "SISMEMBER {ariq}:node:A:calls c1"), 0);
    assert_int_equal(hx_int(h, "SCARD {ariq}:node:A:calls"), 2);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:callers c2"), score[1]);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:callers c3"), score[2]);
    assert_int_equal(hx_zrank(h, "q", "c2"), 0); /* priority 5 */
    assert_int_equal(hx_zrank(h, "q", "c3"), 1);
    assert_int_equal(hx_zrank(h, "q", "b1"), 2);
    assert_int_equal(hx_zrank(h, "r", "c2"), 0);
    assert_int_equal(hx_zrank(h, "q", "c1"), -1);
    assert_int_equal(hx_zrank(h, "r", "c1"), -1);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:arrivals c1"), -1);
    hx_events e;
    hx_events_read(h, &e);
    assert_int_equal(hx_count(&e, "ABANDON"), 2);
    int i = hx_find(&e, "ABANDON", "queue", "r", 0);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&e.v[i], "callid"), "c1");
    assert_string_equal(hx_ev(&e.v[i], "node"), "A");
    assert_string_equal(hx_ev(&e.v[i], "position"), "2");
    assert_string_equal(hx_ev(&e.v[i], "waittime"), "4");
    assert_string_equal(hx_ev(&e.v[i], "reason"), "restart");
    hx_events_free(&e);
    (void)score[0];
}

/* An agent whose channel is gone is logged off (AGENTLOGOFF, reason
 * "restart: channel gone"), out of the free set and the node set; the live
 * one is in the reply as it was. */
static void test_agent_gone(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_login(h, 0, "a1", "q&r", false, &o));
    OK(hx_login(h, 0, "a2", "q", false, &o));
    long long a2seq = o.res.seq;
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(
        h, qs_agent_pause(h->n[0].qs, "a2", true, "lunch", false, hx_result_cb, &hx_o),
        &hx_o));
    rc_out r;
    OK(reconcile(h, 0, "ag-a2", "", &r));
    assert_int_equal(r.r.logged_off, 1);
    assert_int_equal(r.r.nagents, 1);
    const qs_agent_rec *a2 = rc_agent(&r, "a2");
    assert_non_null(a2);
    assert_string_equal(a2->channel, "ag-a2");
    assert_string_equal(a2->chan_name, "PJSIP/a2-0001");
    assert_string_equal(a2->state, "paused");
    assert_true(a2->paused);
    assert_string_equal(a2->pause_reason, "lunch");
    assert_int_equal(a2->nqueues, 1);
    assert_string_equal(a2->queues[0], "q");
    assert_int_equal(a2->free_seq, a2seq);
    assert_int_equal(a2->wrapup_until_ms, 0);
    assert_string_equal(a2->pairing, "");
    rc_free(&r);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:agent:a1"), 0);
    assert_int_equal(hx_int(h, "SISMEMBER {ariq}:node:A:agents a1"), 0);
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:q:agents"), 0);
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:r:agents"), 0);
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "AGENTLOGOFF", NULL, NULL, 0);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&e.v[i], "agent"), "a1");
    assert_string_equal(hx_ev(&e.v[i], "callid"), "ag-a1");
    assert_string_equal(hx_ev(&e.v[i], "reason"), "restart: channel gone");
    assert_int_equal(hx_count(&e, "AGENTLOGOFF"), 1);
    hx_events_free(&e);
}

/* ---- pairings on one node (LOCAL) ------------------------------------------ */

/* Not kept, both alive: rolled back as rollback keep does; the caller first
 * again with its score, the agent free with its old seq, and nobody paired
 * again (no autopair). */
static void test_local_paired_rolled_back(void **state)
{
    hx *h = *state;
    hx_out o;
    char pid[QS_ID_MAX + 1];
    OK(hx_enter(h, 0, "c1", 0, "q", false, &o));
    long long score = o.enter.score;
    OK(hx_enter(h, 0, "c2", 0, "q", false, &o));
    OK(hx_login(h, 0, "a1", "q", true, &o));
    long long aseq = o.res.seq;
    assert_int_equal(o.npairs, 1);
    snprintf(pid, sizeof pid, "%s", o.pairs[0].pairing);
    rc_out r;
    OK(reconcile(h, 0, "ch-c1 ch-c2 ag-a1", "", &r));
    assert_int_equal(r.r.rolled_back, 1);
    assert_int_equal(r.r.npairings, 0);
    assert_string_equal(rc_call(&r, "c1")->state, "waiting");
    assert_string_equal(rc_agent(&r, "a1")->state, "free");
    assert_int_equal(rc_agent(&r, "a1")->free_seq, aseq);
    assert_int_equal(r.r.seq, seq_now(h));
    rc_free(&r);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:pairing:%s", pid), 0);
    assert_int_equal(hx_int(h, "SCARD {ariq}:node:A:pairings"), 0);
    assert_int_equal(hx_zrank(h, "q", "c1"), 0);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:callers c1"), score);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:agents a1"), aseq);
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "UNPAIRED", "pairing", pid, 0);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&e.v[i], "reason"), "rollback");
    assert_string_equal(hx_ev(&e.v[i], "detail"), "restart;agent=keep");
    assert_int_equal(hx_count(&e, "PAIRED"), 1);
    hx_events_free(&e);
}

/* Kept while paired (the bridge holds both, in any order): it becomes
 * bridged with CONNECT; kept again, nothing changes. */
static void test_local_kept_connects(void **state)
{
    hx *h = *state;
    char pid[QS_ID_MAX + 1], keep[3 * QS_ID_MAX];
    pair(h, 0, "c1", 0, "a1", pid);
    h->now += 3000;
    snprintf(keep, sizeof keep, "%s,ag-a1,ch-c1", pid);
    rc_out r;
    OK(reconcile(h, 0, "ch-c1 ag-a1", keep, &r));
    assert_int_equal(r.r.npairings, 1);
    const qs_kept_pairing *k = rc_kept(&r, pid);
    assert_non_null(k);
    assert_string_equal(k->state, "bridged");
    assert_string_equal(k->sides, "both");
    assert_string_equal(k->link_channel, "");
    assert_string_equal(k->rec, "");
    assert_string_equal(k->p.call, "c1");
    assert_string_equal(k->p.agent, "a1");
    assert_string_equal(k->p.caller_channel, "ch-c1");
    assert_string_equal(rc_call(&r, "c1")->state, "bridged");
    assert_string_equal(rc_call(&r, "c1")->pairing, pid);
    assert_string_equal(rc_agent(&r, "a1")->state, "talking");
    assert_int_equal(r.r.rolled_back + r.r.unlinked + r.r.abandoned + r.r.logged_off, 0);
    rc_free(&r);
    assert_string_equal(pget(h, pid, "state"), "bridged");
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "CONNECT", NULL, NULL, 0);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&e.v[i], "ringtime"), "3");
    assert_string_equal(hx_ev(&e.v[i], "pairing"), pid);
    int n = e.n;
    hx_events_free(&e);
    /* bridged and kept: stays as it is */
    char *before = hx_snapshot(h);
    OK(reconcile(h, 0, "ch-c1 ag-a1", keep, &r));
    assert_int_equal(r.r.npairings, 1);
    assert_string_equal(r.pairings[0].state, "bridged");
    rc_free(&r);
    HX_UNCHANGED(h, before);
    assert_int_equal(hx_count_events(h, NULL), n);
}

/* Bridged, the agent's channel gone: the agent is logged off, the caller's
 * call completed (COMPLETEAGENT) and its channel to be hung up. */
static void test_local_bridged_agent_gone(void **state)
{
    hx *h = *state;
    char pid[QS_ID_MAX + 1];
    pair(h, 0, "c1", 0, "a1", pid);
    OK(bridged(h, 0, pid, QS_SIDE_BOTH));
    h->now += 10000;
    rc_out r;
    OK(reconcile(h, 0, "ch-c1", "", &r));
    assert_int_equal(r.r.logged_off, 1);
    assert_int_equal(r.r.ncalls + r.r.nagents + r.r.npairings, 0);
    assert_int_equal(r.r.nhangup, 1);
    assert_string_equal(r.hangup[0], "ch-c1");
    rc_free(&r);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:call:c1"), 0);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:pairing:%s", pid), 0);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:agent:a1"), 0);
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "COMPLETEAGENT", NULL, NULL, 0);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&e.v[i], "calltime"), "10");
    i = hx_find(&e, "UNPAIRED", "pairing", pid, 0);
    assert_string_equal(hx_ev(&e.v[i], "detail"), "COMPLETEAGENT;restart");
    assert_int_equal(hx_count(&e, "AGENTLOGOFF"), 1);
    assert_int_equal(hx_count(&e, "COMPLETECALLER"), 0);
    hx_events_free(&e);
}

/* Bridged, the caller's channel gone: completed as the caller's hangup
 * (COMPLETECALLER), the agent free at the back, nobody hung up. */
static void test_local_bridged_caller_gone(void **state)
{
    hx *h = *state;
    char pid[QS_ID_MAX + 1];
    pair(h, 0, "c1", 0, "a1", pid);
    OK(bridged(h, 0, pid, QS_SIDE_BOTH));
    long long before = seq_now(h);
    rc_out r;
    OK(reconcile(h, 0, "ag-a1", "", &r));
    assert_int_equal(r.r.abandoned, 1);
    assert_int_equal(r.r.nhangup, 0);
    assert_int_equal(r.r.ncalls, 0);
    assert_string_equal(rc_agent(&r, "a1")->state, "free");
    assert_true(rc_agent(&r, "a1")->free_seq > before);
    rc_free(&r);
    assert_int_equal(hx_count_events(h, "COMPLETECALLER"), 1);
    assert_int_equal(hx_count_events(h, "ABANDON"), 0);
}

/* Bridged, both alive, no bridge holding them: completed (COMPLETEAGENT),
 * the caller hung up, the agent stays, free. */
static void test_local_bridged_not_kept(void **state)
{
    hx *h = *state;
    char pid[QS_ID_MAX + 1];
    pair(h, 0, "c1", 0, "a1", pid);
    OK(bridged(h, 0, pid, QS_SIDE_BOTH));
    rc_out r;
    OK(reconcile(h, 0, "ch-c1 ag-a1", "", &r));
    assert_int_equal(r.r.completed, 1);
    assert_int_equal(r.r.nhangup, 1);
    assert_string_equal(r.hangup[0], "ch-c1");
    assert_string_equal(rc_agent(&r, "a1")->state, "free");
    assert_int_equal(r.r.ncalls, 0);
    rc_free(&r);
    assert_int_equal(hx_count_events(h, "COMPLETEAGENT"), 1);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:agent:a1"), 1);
}

/* Paired, the caller's channel gone: ABANDON as leave does (positions when
 * paired), the agent free keeping its place; the agent's gone too: it is
 * logged off after. */
static void test_local_paired_both_gone(void **state)
{
    hx *h = *state;
    char pid[QS_ID_MAX + 1];
    pair(h, 0, "c1", 0, "a1", pid);
    rc_out r;
    OK(reconcile(h, 0, "", "", &r));
    assert_int_equal(r.r.abandoned, 1);
    assert_int_equal(r.r.logged_off, 1);
    assert_int_equal(r.r.rolled_back, 0);
    rc_free(&r);
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "UNPAIRED", "pairing", pid, 0);
    assert_string_equal(hx_ev(&e.v[i], "reason"), "abandon");
    assert_string_equal(hx_ev(&e.v[i], "detail"), "ABANDON;restart");
    i = hx_find(&e, "ABANDON", NULL, NULL, 0);
    assert_string_equal(hx_ev(&e.v[i], "position"), "1");
    assert_int_equal(hx_count(&e, "AGENTLOGOFF"), 1);
    hx_events_free(&e);
    assert_int_equal(hx_dbsize(h), 2); /* {ariq}:seq and {ariq}:events */
}

/* Paired, the agent's channel gone: logged off, its caller back at the
 * front with its score, as the reply says too. A keep naming the dead
 * channel is no keep. */
static void test_local_paired_agent_gone(void **state)
{
    hx *h = *state;
    hx_out o;
    char pid[QS_ID_MAX + 1], keep[3 * QS_ID_MAX];
    pair(h, 0, "c1", 0, "a1", pid);
    OK(hx_enter(h, 0, "c2", 0, "q", false, &o));
    long long score = hx_int(h, "HGET {ariq}:call:c1 score");
    snprintf(keep, sizeof keep, "%s,ch-c1,ag-a1", pid);
    rc_out r;
    OK(reconcile(h, 0, "ch-c1 ch-c2", keep, &r));
    assert_int_equal(r.r.npairings, 0);
    assert_int_equal(r.r.logged_off, 1);
    assert_int_equal(r.r.nhangup + r.r.rolled_back + r.r.abandoned, 0);
    const qs_call_rec *c1 = rc_call(&r, "c1");
    assert_non_null(c1);
    assert_string_equal(c1->state, "waiting");
    assert_string_equal(c1->pairing, "");
    assert_int_equal(c1->score, score);
    rc_free(&r);
    assert_int_equal(hx_zrank(h, "q", "c1"), 0);
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "UNPAIRED", "pairing", pid, 0);
    assert_string_equal(hx_ev(&e.v[i], "reason"), "agent_gone");
    assert_int_equal(hx_count(&e, "CONNECT"), 0);
    hx_events_free(&e);
}

/* ---- pairings across nodes (OUT: caller here, IN: agent here) ------------ */

/* OUT not kept while paired: unlinked, rolled back with the agent at the
 * back (it is on B); the caller keeps its score. */
static void test_out_paired_not_kept(void **state)
{
    hx *h = *state;
    char pid[QS_ID_MAX + 1];
    pair(h, 0, "c1", 1, "a1", pid);
    long long score = hx_int(h, "HGET {ariq}:call:c1 score");
    long long aseq = hx_int(h, "HGET {ariq}:agent:a1 free_seq");
    rc_out r;
    OK(reconcile(h, 0, "ch-c1", "", &r));
    assert_int_equal(r.r.unlinked, 1);
    assert_int_equal(r.r.nhangup, 0);
    assert_string_equal(rc_call(&r, "c1")->state, "waiting");
    assert_int_equal(r.r.nagents, 0); /* a1 is B's */
    rc_free(&r);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:callers c1"), score);
    assert_true(hx_int(h, "ZSCORE {ariq}:queue:q:agents a1") > aseq);
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "UNPAIRED", "pairing", pid, 0);
    assert_string_equal(hx_ev(&e.v[i], "detail"), "restart;agent=back");
    hx_events_free(&e);
}

/* OUT not kept once connected: completed as if the agent hung up
 * (COMPLETEAGENT), the caller hung up, the agent on B free. A bridge with
 * the caller and some other channel than ariq-lo-<pid> is no keep. */
static void test_out_bridged_not_kept(void **state)
{
    hx *h = *state;
    char pid[QS_ID_MAX + 1], keep[3 * QS_ID_MAX];
    pair(h, 0, "c1", 1, "a1", pid);
    OK(bridged(h, 0, pid, QS_SIDE_CALLER));
    OK(bridged(h, 1, pid, QS_SIDE_AGENT));
    assert_int_equal(hx_o.res.connected, 1);
    snprintf(keep, sizeof keep, "%s,ch-c1,other", pid);
    rc_out r;
    OK(reconcile(h, 0, "ch-c1 other", keep, &r));
    assert_int_equal(r.r.unlinked, 1);
    assert_int_equal(r.r.npairings, 0);
    assert_int_equal(r.r.nhangup, 1);
    assert_string_equal(r.hangup[0], "ch-c1");
    rc_free(&r);
    assert_string_equal(hget(h, "{ariq}:agent:a1", "state"), "free");
    assert_int_equal(hx_int(h, "EXISTS {ariq}:call:c1"), 0);
    hx_events e;
    hx_events_read(h, &e);
    int i = hx_find(&e, "UNPAIRED", "pairing", pid, 0);
    assert_string_equal(hx_ev(&e.v[i], "detail"), "COMPLETEAGENT;restart");
    assert_int_equal(hx_count(&e, "COMPLETEAGENT"), 1);
    hx_events_free(&e);
}

/* OUT kept (our caller with ariq-lo-<pid>): our side recorded, not yet
 * connected; the far side's report then connects. */
static void test_out_kept(void **state)
{
    hx *h = *state;
    char pid[QS_ID_MAX + 1], keep[3 * QS_ID_MAX], alive[3 * QS_ID_MAX];
    pair(h, 0, "c1", 1, "a1", pid);
    snprintf(keep, sizeof keep, "%s,ch-c1,ariq-lo-%s", pid, pid);
    snprintf(alive, sizeof alive, "ch-c1 ariq-lo-%s", pid);
    rc_out r;
    OK(reconcile(h, 0, alive, keep, &r));
    assert_int_equal(r.r.npairings, 1);
    assert_string_equal(r.pairings[0].state, "paired");
    assert_string_equal(r.pairings[0].sides, "caller");
    assert_string_equal(r.pairings[0].link_channel, "");
    assert_int_equal(r.r.unlinked, 0);
    rc_free(&r);
    assert_int_equal(hx_count_events(h, "CONNECT"), 0);
    OK(bridged(h, 1, pid, QS_SIDE_AGENT));
    assert_int_equal(hx_o.res.connected, 1);
}

/* IN kept: our agent with the link leg that came in; the caller's node had
 * its side in, so it connects; the reply names the link leg. */
static void test_in_kept(void **state)
{
    hx *h = *state;
    char pid[QS_ID_MAX + 1], keep[3 * QS_ID_MAX];
    pair(h, 1, "c1", 0, "a1", pid);
    OK(bridged(h, 1, pid, QS_SIDE_CALLER));
    snprintf(keep, sizeof keep, "%s,link-77,ag-a1", pid);
    rc_out r;
    OK(reconcile(h, 0, "ag-a1 link-77", keep, &r));
    assert_int_equal(r.r.npairings, 1);
    const qs_kept_pairing *k = &r.pairings[0];
    assert_string_equal(k->state, "bridged");
    assert_string_equal(k->sides, "both");
    assert_string_equal(k->link_channel, "link-77");
    assert_string_equal(k->p.caller_node, "B");
    assert_string_equal(k->p.agent_node, "A");
    assert_int_equal(r.r.ncalls, 0); /* c1 is B's */
    assert_string_equal(rc_agent(&r, "a1")->state, "talking");
    rc_free(&r);
    assert_int_equal(hx_count_events(h, "CONNECT"), 1);
}

/* IN not kept: paired, undone (the caller back at its place on B, our agent
 * at the back); connected, completed as if the caller hung up. */
static void test_in_not_kept(void **state)
{
    hx *h = *state;
    char pid[QS_ID_MAX + 1], pid2[QS_ID_MAX + 1];
    pair(h, 1, "c1", 0, "a1", pid);
    long long score = hx_int(h, "HGET {ariq}:call:c1 score");
    rc_out r;
    OK(reconcile(h, 0, "ag-a1", "", &r));
    assert_int_equal(r.r.unlinked, 1);
    assert_string_equal(rc_agent(&r, "a1")->state, "free");
    rc_free(&r);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:callers c1"), score);
    /* pair them again (B's sweep) and connect */
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_pair_queue(h->n[1].qs, "q", hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 1);
    snprintf(pid2, sizeof pid2, "%s", hx_o.pairs[0].pairing);
    OK(bridged(h, 1, pid2, QS_SIDE_CALLER));
    OK(bridged(h, 0, pid2, QS_SIDE_AGENT));
    OK(reconcile(h, 0, "ag-a1", "", &r));
    assert_int_equal(r.r.unlinked, 1);
    assert_int_equal(r.r.nhangup, 0);
    assert_string_equal(rc_agent(&r, "a1")->state, "free");
    rc_free(&r);
    assert_int_equal(hx_count_events(h, "COMPLETECALLER"), 1);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:call:c1"), 0);
}

/* ---- the running recording ---------------------------------------------- */

/* rec start names the recording on the pairing, pause keeps it, stop
 * clears it; reconcile returns it with its state. */
static void test_rec_on_pairing(void **state)
{
    hx *h = *state;
    char pid[QS_ID_MAX + 1], keep[3 * QS_ID_MAX];
    pair(h, 0, "c1", 0, "a1", pid);
    OK(bridged(h, 0, pid, QS_SIDE_BOTH));
    snprintf(keep, sizeof keep, "%s,ch-c1,ag-a1", pid);
    OK(rec(h, QS_REC_START, "r1", pid));
    assert_string_equal(pget(h, pid, "rec"), "r1");
    rc_out r;
    OK(reconcile(h, 0, "ch-c1 ag-a1", keep, &r));
    assert_string_equal(r.pairings[0].rec, "r1");
    assert_string_equal(r.pairings[0].rec_state, "recording");
    rc_free(&r);
    OK(rec(h, QS_REC_PAUSE, "r1", NULL));
    assert_string_equal(pget(h, pid, "rec"), "r1");
    OK(reconcile(h, 0, "ch-c1 ag-a1", keep, &r));
    assert_string_equal(r.pairings[0].rec_state, "paused");
    rc_free(&r);
    OK(rec(h, QS_REC_STOP, "r1", NULL));
    assert_string_equal(pget(h, pid, "rec"), "");
    assert_int_equal(hx_int(h, "HEXISTS {ariq}:pairing:%s rec", pid), 1);
    OK(reconcile(h, 0, "ch-c1 ag-a1", keep, &r));
    assert_string_equal(r.pairings[0].rec, "");
    assert_string_equal(r.pairings[0].rec_state, "");
    rc_free(&r);
    /* a second recording, discarded: cleared too; an older one's discard
     * does not clear a newer one */
    OK(rec(h, QS_REC_START, "r2", pid));
    OK(rec(h, QS_REC_DISCARD, "r1", NULL));
    assert_string_equal(pget(h, pid, "rec"), "r2");
    OK(rec(h, QS_REC_DISCARD, "r2", NULL));
    assert_string_equal(pget(h, pid, "rec"), "");
    /* once the pairing is gone, a stop does not bring its hash back */
    OK(rec(h, QS_REC_START, "r3", pid));
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h,
               qs_leave(h->n[0].qs, "c1", QS_LEAVE_HANGUP, QS_BY_CALLER, 0, false,
                        hx_result_cb, &hx_o),
               &hx_o));
    OK(rec(h, QS_REC_STOP, "r3", NULL));
    assert_int_equal(hx_int(h, "EXISTS {ariq}:pairing:%s", pid), 0);
}

/* ---- arguments ---------------------------------------------------------- */

/* EVALSHA of reconcile with the given arguments after the fixed four. */
static redisReply *raw(hx *h, const char *keys3, int n, const char **args)
{
    const char *sha = store_script_sha(h->n[0].s, "queue");
    const char *argv[64] = {"EVALSHA", sha,         "3",    "{ariq}:seq", "{ariq}:events",
                            keys3,     "reconcile", "1000", "A",          "100"};
    int argc = 10;
    for (int i = 0; i < n && argc < 64; i++)
        argv[argc++] = args[i];
    redisReply *r = redisCommandArgv(h->rc, argc, argv, NULL);
    assert_non_null(r);
    return r;
}

static void refused(hx *h, const char *keys3, int n, const char **args)
{
    redisReply *r = raw(h, keys3, n, args);
    if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "ERR ariq:", 9) != 0)
        fail_msg("not refused: type %d %s", r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
}

/* Bad counts, ids, keep triples and keys: refused, nothing changes (with a
 * dead caller, a dead agent and a pairing that a good call would end). */
static void test_bad_args(void **state)
{
    hx *h = *state;
    hx_out o;
    char pid[QS_ID_MAX + 1];
    const char *K = "{ariq}:node:A:calls";
    pair(h, 0, "c1", 0, "a1", pid);
    OK(hx_enter(h, 0, "c2", 0, "q", false, &o));
    OK(hx_login(h, 0, "a2", "r", false, &o));
    char *before = hx_snapshot(h);
    refused(h, K, 4, (const char *[]){"2", "ch-c1", "0", "x"}); /* count mismatch */
    refused(h, K, 3, (const char *[]){"2", "ch-c1", "0"});
    refused(h, K, 2, (const char *[]){"1", "ch-c1"}); /* no nkeep */
    refused(h, K, 4, (const char *[]){"1", "ch-c1", "0", "extra"});
    refused(h, K, 3, (const char *[]){"1", "ch:c1", "0"}); /* bad id */
    refused(h, K, 3, (const char *[]){"1", "", "0"});
    refused(h, K, 3, (const char *[]){"-1", "ch-c1", "0"});
    refused(h, K, 3, (const char *[]){"200001", "ch-c1", "0"});
    refused(h, K, 2, (const char *[]){"x", "0"});
    refused(h, K, 5,
            (const char *[]){"1", "ch-c1", "1", pid, "ch-c1"}); /* short triple */
    refused(h, K, 6, (const char *[]){"1", "ch-c1", "1", pid, "ch-c1", "ch-c1"});
    refused(h, K, 6, (const char *[]){"1", "ch-c1", "1", "p{1}", "ch-c1", "ag-a1"});
    refused(h, K, 9,
            (const char *[]){"1", "ch-c1", "2", pid, "ch-c1", "ag-a1", pid, "ch-c1",
                             "ag-a1"});
    refused(h, "{ariq}:node:B:calls", 2, (const char *[]){"0", "0"}); /* not our key */
    refused(h, "{ariq}:call:c1", 2, (const char *[]){"0", "0"});
    HX_UNCHANGED(h, before);
    /* the C side refuses before sending: the callback never runs */
    rc_out r;
    memset(&r, 0, sizeof r);
    const char *bad_alive[] = {"ch-c1", "a b"};
    assert_int_equal(qs_reconcile(h->n[0].qs, bad_alive, 2, NULL, 0, rc_cb, &r),
                     ARIQ_EINVAL);
    qs_keep same = {pid, "ch-c1", "ch-c1"};
    assert_int_equal(qs_reconcile(h->n[0].qs, bad_alive, 1, &same, 1, rc_cb, &r),
                     ARIQ_EINVAL);
    assert_int_equal(qs_reconcile(h->n[0].qs, NULL, 1, NULL, 0, rc_cb, &r), ARIQ_EINVAL);
    assert_int_equal(qs_reconcile(h->n[0].qs, NULL, 0, NULL, 0, NULL, NULL), ARIQ_EINVAL);
    assert_int_equal(r.done, 0);
    /* and a good one with nothing alive ends them all */
    OK(reconcile(h, 0, "", "", &r));
    assert_int_equal(r.r.abandoned, 2);
    assert_int_equal(r.r.logged_off, 2);
    rc_free(&r);
    assert_int_equal(hx_dbsize(h), 2);
}

/* ---- announcements ------------------------------------------------------ */

static void same_view(const qs_call_view *a, const qs_call_view *b)
{
    assert_int_equal(a->found, b->found);
    assert_string_equal(a->state, b->state);
    assert_string_equal(a->node, b->node);
    assert_string_equal(a->pairing, b->pairing);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->priority, b->priority);
    assert_int_equal(a->entered_ms, b->entered_ms);
    assert_int_equal(a->nqueues, b->nqueues);
    for (size_t i = 0; i < a->nqueues; i++) {
        assert_string_equal(a->queues[i].queue, b->queues[i].queue);
        assert_int_equal(a->queues[i].position, b->queues[i].position);
        assert_int_equal(a->queues[i].ahead, b->queues[i].ahead);
        assert_int_equal(a->queues[i].length, b->queues[i].length);
    }
}

/* announce_info answers as call_info does; only a waiting call records the
 * announcement (ann_ms, anns), and reconcile returns them. */
static void test_announce_info(void **state)
{
    hx *h = *state;
    hx_out o, info;
    OK(hx_enter(h, 0, "c1", 0, "q&r", false, &o));
    OK(hx_enter(h, 0, "c2", 0, "q", false, &o));
    h->now += 5000;
    memset(&info, 0, sizeof info);
    OK(hx_done(h, qs_call_info(h->n[0].qs, "c2", hx_call_cb, &info), &info));
    memset(&o, 0, sizeof o);
    OK(hx_done(h, qs_announce_info(h->n[0].qs, "c2", hx_call_cb, &o), &o));
    same_view(&o.call, &info.call);
    assert_true(o.call.found);
    assert_int_equal(o.call.queues[0].position, 2);
    assert_int_equal(hx_int(h, "HGET {ariq}:call:c2 ann_ms"), 1700000005000LL);
    assert_int_equal(hx_int(h, "HGET {ariq}:call:c2 anns"), 1);
    h->now += 1000;
    memset(&o, 0, sizeof o);
    OK(hx_done(h, qs_announce_info(h->n[0].qs, "c2", hx_call_cb, &o), &o));
    assert_int_equal(hx_int(h, "HGET {ariq}:call:c2 ann_ms"), 1700000006000LL);
    assert_int_equal(hx_int(h, "HGET {ariq}:call:c2 anns"), 2);
    rc_out r;
    OK(reconcile(h, 0, "ch-c1 ch-c2", "", &r));
    assert_int_equal(rc_call(&r, "c2")->ann_ms, 1700000006000LL);
    assert_int_equal(rc_call(&r, "c2")->anns, 2);
    assert_int_equal(rc_call(&r, "c1")->ann_ms, 0);
    rc_free(&r);
    /* paired: read only */
    OK(hx_login(h, 0, "a1", "q", true, &o));
    assert_int_equal(o.npairs, 1);
    char *before = hx_snapshot(h);
    h->now += 1000;
    memset(&o, 0, sizeof o);
    OK(hx_done(h, qs_announce_info(h->n[0].qs, "c1", hx_call_cb, &o), &o));
    assert_string_equal(o.call.state, "paired");
    HX_UNCHANGED(h, before);
    memset(&o, 0, sizeof o);
    OK(hx_done(h, qs_announce_info(h->n[0].qs, "nobody", hx_call_cb, &o), &o));
    assert_false(o.call.found);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:call:nobody"), 0);
}

/* ---- scale ---------------------------------------------------------------- */

/* 5,000 callers waiting and 500 agents talking on A, all alive, every bridge
 * kept, then 10 % of the callers and agents gone: each one script run;
 * Redis's own measure of it (SLOWLOG) is printed and bounded. */
static void test_scale(void **state)
{
    hx *h = *state;
    hx_out o;
    char id[32];
    static char abuf[ALIVE_BUF][QS_ID_MAX + 1], kbuf[KEEP_BUF][3][QS_ID_MAX + 1];
    static const char *alive[ALIVE_BUF];
    static qs_keep keep[KEEP_BUF];
    size_t na = 0, nk = 0;
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof id, "a%d", i);
        OK(hx_login(h, 0, id, "q&r", false, &o));
        snprintf(abuf[na], sizeof abuf[na], "ag-%s", id);
        alive[na] = abuf[na];
        na++;
    }
    for (int i = 0; i < 5500; i++) {
        snprintf(id, sizeof id, "c%d", i);
        OK(hx_enter(h, 0, id, i % 3, i % 2 ? "q" : "q&r", i < 500, &o));
        if (i < 500) {
            assert_int_equal(o.npairs, 1);
            snprintf(kbuf[nk][0], QS_ID_MAX + 1, "%s", o.pairs[0].pairing);
            snprintf(kbuf[nk][1], QS_ID_MAX + 1, "%s", o.pairs[0].caller_channel);
            snprintf(kbuf[nk][2], QS_ID_MAX + 1, "%s", o.pairs[0].agent_channel);
            keep[nk] = (qs_keep){kbuf[nk][0], kbuf[nk][1], kbuf[nk][2]};
            OK(bridged(h, 0, kbuf[nk][0], QS_SIDE_BOTH));
            nk++;
        }
        snprintf(abuf[na], sizeof abuf[na], "ch-%s", id);
        alive[na] = abuf[na];
        na++;
    }
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:q:callers"), 5000);
    redisReply *x = redisCommand(h->rc, "CONFIG SET slowlog-log-slower-than 0");
    freeReplyObject(x);
    for (int round = 0; round < 2; round++) {
        x = redisCommand(h->rc, "SLOWLOG RESET");
        freeReplyObject(x);
        rc_out r;
        uint64_t t0 = clock_mono_us();
        memset(&r, 0, sizeof r);
        /* round 1: every 10th agent and every 10th caller gone, not the
         * agents of those callers (a_k talks to c_k) */
        size_t n = 0;
        for (size_t i = 0; i < na; i++)
            if (round == 0 || i % 10 != (i < 500 ? 3u : 5u))
                alive[n++] = abuf[i];
        OK(qs_reconcile(h->n[0].qs, alive, n, keep, nk, rc_cb, &r));
        assert_true(hx_wait(h, &r.done, 1, 30000));
        OK(r.err);
        uint64_t t1 = clock_mono_us();
        x = redisCommand(h->rc, "SLOWLOG GET 10");
        long long us = -1;
        for (size_t i = 0; x && i < x->elements; i++) {
            redisReply *e = x->element[i];
            if (e->element[3]->elements > 0 &&
                strcmp(e->element[3]->element[0]->str, "EVALSHA") == 0)
                us = e->element[2]->integer;
        }
        freeReplyObject(x);
        fprintf(
            stderr,
            "reconcile round %d: %zu alive, %zu kept -> script %lld us, round trip %llu "
            "us; calls %zu agents %zu kept %zu hangup %zu abandoned %lld logged_off "
            "%lld\n",
            round, n, nk, us, (unsigned long long)(t1 - t0), r.r.ncalls, r.r.nagents,
            r.r.npairings, r.r.nhangup, (long long)r.r.abandoned,
            (long long)r.r.logged_off);
        assert_true(us > 0 && us < 1000000);
        if (round == 0) {
            assert_int_equal(r.r.ncalls, 5500);
            assert_int_equal(r.r.nagents, 500);
            assert_int_equal(r.r.npairings, 500);
        } else {
            assert_int_equal(r.r.abandoned, 550);
            assert_int_equal(r.r.logged_off, 50);
            assert_int_equal(r.r.nhangup, 50); /* the callers of the agents gone */
            assert_int_equal(r.r.ncalls, 4900);
            assert_int_equal(r.r.npairings, 400);
        }
        rc_free(&r);
    }
    /* the order of the callers left is untouched */
    x = redisCommand(h->rc, "ZRANGE {ariq}:queue:q:callers 0 2 WITHSCORES");
    assert_int_equal(x->elements, 6);
    freeReplyObject(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_caller_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_paired_rolled_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_kept_connects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_bridged_agent_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_bridged_caller_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_bridged_not_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_paired_both_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_paired_agent_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_paired_not_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_bridged_not_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_not_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rec_on_pairing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_announce_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
