/* test_queued_cross - a caller on node1 and an agent on node2 (issue 4).
 *
 * The real queued on each of two simulator nodes, one real redis-server.
 * node1 (the caller's) dials IAX2/node2/PAIRING@queue-link; the far leg
 * enters Stasis(queue,link,PAIRING) on node2, which bridges it with the
 * agent. Everything is asserted on the simulator's oracle (who hears whom,
 * what a channel heard, who hung up), on the events stream (the checker:
 * every caller ends one way, exactly-once pairing, order) and on what Redis
 * still holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster_util.h"
#include "queue_check.h"
#include "queued_proc.h"
#include "redis_proc.h"
#include "sim_proc.h"

#define SCALE 0.01

/* Links ring at most 15 s (0.15 s here) before they count as not answered;
 * a heartbeat every 0.5 s (the floor), so a dead node goes within 1.5 s. */
static int setup(void **state)
{
    return start(state, 2, SCALE, "sweep_ms = 50\nheartbeat_s = 1\n",
                 "[queue support]\nannounce_frequency = 30\n"
                 "[queue sales]\nannounce_frequency = 0\nwrapup_time = 100\n");
}

static int setup_3(void **state)
{
    return start(state, 3, SCALE, "sweep_ms = 50\n",
                 "[queue support]\nannounce_frequency = 30\n");
}

/* 10x fast: "you are next" lasts ~0.4 s, long enough to arrive in it. */
static int setup_slow(void **state)
{
    return start(state, 2, 0.1, "sweep_ms = 50\n",
                 "[queue support]\nannounce_frequency = 5\nannounce_on_join = yes\n");
}

/* ---- tests ---------------------------------------------------------------------- */

/* The basic cross-node call: connected through the link; the caller hangs up
 * and everything on both nodes goes, the agent back to its holding bridge. */
static void test_caller_on_1_agent_on_2(void **state)
{
    (void)state;
    char agent[128], caller[128], who[32];
    call_across("support", "2001", agent, caller);
    assert_int_equal(count_events("CONNECT"), 1);
    assert_int_equal(sim_hangup_call(&C->sim, N1, caller, 16), 204);
    assert_true(wait_events("COMPLETECALLER", 1));
    assert_true(wait_moh(N2, agent)); /* free again, music */
    assert_string_equal(hung_up_by(N1, caller, who, sizeof who), "party");
    assert_int_equal(sim_hangup_call(&C->sim, N2, agent, 16), 204);
    assert_true(wait_gone(N2, agent));
    assert_all_clean();
}

/* A link that failed is undone and tried again: the pairing is rolled back
 * (the caller waiting, first in `queue`, still hearing music), and the sweep
 * pairs the same caller with the same agent again, which it can only do once
 * both are back: the caller at the front, the agent free. */
static void assert_rolled_back_and_retried(const char *queue, const char *caller,
                                           const char *agentid)
{
    assert_true(wait_events("PAIRED", 2));
    qc_event p;
    assert_true(last_event("PAIRED", &p));
    assert_string_equal(p.callid, caller);
    assert_string_equal(p.agent, agentid);
    assert_string_equal(p.queue, queue);
    assert_true(hearing_moh(N1, caller));
    assert_true(count_events("UNPAIRED") >= 1);
    assert_int_equal(count_events("CONNECT"), 0);
}

/* ---- the call across the link ---------------------------------------------------- */

/* The agent's keys on node2 drive the recording of node2's bridge: 0 starts
 * it (the caller is beeped over the link), 5 pauses and resumes, 7 keeps it,
 * 0 then 9 discards a second one; '#' ends the call: the caller on node1 is
 * hung up, the agent wraps up (sales: 100 s, 1 s here) with music, then is
 * free. */
static void test_agent_keys_across_link(void **state)
{
    (void)state;
    char agent[128], caller[128], who[32];
    call_across("sales", "2002", agent, caller);
    static const struct {
        const char *keys, *event;
        int n;
    } steps[] = {{"0", "RECORDSTART", 1}, {"5", "RECORDPAUSE", 1}, {"5", "RECORDUNPAUSE", 1},
                 {"7", "RECORDSTOP", 1},  {"0", "RECORDSTART", 2}, {"9", "RECORDDISCARD", 1}};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        assert_int_equal(sim_send_dtmf(&C->sim, N2, agent, steps[i].keys), 204);
        if (!wait_events(steps[i].event, steps[i].n))
            fail_msg("key %s: no %s", steps[i].keys, steps[i].event);
        sleep_ms(30); /* the recording request reaches node2's Asterisk */
    }
    /* node2 kept one recording and threw the other away (the events are
     * written as the keys are read; ARI's answers may come a little later) */
    size_t nstored = 0;
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10)) {
        long st = 0;
        char *body = sim_http(&C->sim, N2, "GET", "/ari/recordings/stored", NULL, true, &st);
        assert_int_equal(st, 200);
        json_t *stored = json_loads(body, 0, NULL);
        free(body);
        assert_true(json_is_array(stored));
        nstored = json_array_size(stored);
        json_decref(stored);
        if (nstored == 1 && count_events("RECORDDISCARD") == 1)
            break;
    }
    assert_int_equal(nstored, 1);
    assert_int_equal(count_events("CONNECT"), 1);
    assert_true(alive(N1, caller));
    assert_int_equal(sim_send_dtmf(&C->sim, N2, agent, "#"), 204);
    assert_true(wait_gone(N1, caller));
    assert_true(wait_events("COMPLETEAGENT", 1));
    assert_string_equal(hung_up_by(N1, caller, who, sizeof who), "app");
    assert_true(wait_moh(N2, agent));
    char state_[32]; /* wrapup_time 100 s: 1 s here */
    assert_string_equal(hget("{ariq}:agent:2002", "state", state_, sizeof state_), "wrapup");
    assert_string_equal(wait_agent_state("2002", "free", state_, sizeof state_),
                        "free"); /* and then free again */
    hang_up(N2, agent);
    assert_all_clean();
}

/* The agent hangs up while talking: the caller on node1 is hung up too. */
static void test_agent_hangs_up_while_talking(void **state)
{
    (void)state;
    char agent[128], caller[128], who[32];
    call_across("support", "2003", agent, caller);
    hang_up(N2, agent);
    assert_true(wait_gone(N1, caller));
    assert_true(wait_events("COMPLETEAGENT", 1));
    assert_string_equal(hung_up_by(N1, caller, who, sizeof who), "app");
    assert_int_equal(count_events("COMPLETECALLER"), 0);
    assert_all_clean();
}

/* The link itself drops while they talk (a network blip on the trunk): the
 * call is over; the caller is hung up, the agent is free again. */
static void test_link_drops_while_talking(void **state)
{
    (void)state;
    char agent[128], caller[128], link[160];
    call_across("support", "2004", agent, caller);
    qc_event p;
    assert_true(last_event("PAIRED", &p));
    snprintf(link, sizeof link, "ariq-lo-%s", p.pairing);
    assert_true(alive(N1, link));
    assert_int_equal(sim_hangup_call(&C->sim, N1, link, 16), 204);
    assert_true(wait_gone(N1, caller));
    assert_true(wait_moh(N2, agent));
    assert_int_equal(count_events("COMPLETECALLER") + count_events("COMPLETEAGENT"), 1);
    char st[32];
    assert_string_equal(wait_agent_state("2004", "free", st, sizeof st), "free");
    hang_up(N2, agent);
    assert_all_clean();
}

/* With the trunk answering `rule`, an agent on node2 and a caller on node1
 * are paired: the link fails, the UNPAIRED detail says `why`, and the
 * pairing is rolled back and retried with the same two. */
static void link_fails(const char *rule, const char *why, const char *agentid, char *agent,
                       char *caller)
{
    char detail[160];
    assert_int_equal(sim_originate_rule(&C->sim, N1, "IAX2/node2", rule, 0), 204);
    agent_in(N2, "support", agentid, agent, 128);
    caller_in(N1, "support", caller, 128);
    assert_true(wait_events("UNPAIRED", 1));
    last_unpaired_detail(detail, sizeof detail);
    if (!strstr(detail, why))
        fail_msg("UNPAIRED detail '%s' does not say %s", detail, why);
    assert_rolled_back_and_retried("support", caller, agentid);
}

/* The trunk answers busy: the pairing is undone, the caller keeps the front
 * (a later caller, even on the agent's own node, does not overtake it) and
 * its music; the agent is free again. Once the trunk works, it connects. */
static void test_link_busy_rolls_back(void **state)
{
    (void)state;
    char agent[128], caller[128], later[128];
    link_fails("busy", "busy", "2005", agent, caller);
    caller_in(N2, "support", later, sizeof later); /* same node as the agent */
    sleep_ms(200); /* several sweeps: each retries the first caller, never the later */
    assert_false(sim_is_connected(&C->sim, 0, later, agent) == 1);
    assert_int_equal(sim_originate_rule(&C->sim, N1, "IAX2/node2", "answer", 0), 204);
    wait_connected(caller, agent);
    assert_true(hearing_moh(N2, later));
    hang_up(N1, caller);
    wait_connected(later, agent); /* now the later one, on node2 itself */
    hang_up(N2, later);
    hang_up(N2, agent);
    assert_all_clean();
}

/* Nobody answers the link within link_timeout_s: rolled back as for busy. */
static void test_link_not_answered_rolls_back(void **state)
{
    (void)state;
    char agent[128], caller[128];
    link_fails("noanswer", "not answered", "2006", agent, caller);
    assert_int_equal(sim_originate_rule(&C->sim, N1, "IAX2/node2", "answer", 0), 204);
    wait_connected(caller, agent);
    hang_up(N1, caller);
    hang_up(N2, agent);
    assert_all_clean();
}

/* An agent on node2 and a caller on node1 paired, their link ringing (the
 * trunk does not answer). */
static void link_rings(const char *agentid, char *agent, char *caller)
{
    assert_int_equal(sim_originate_rule(&C->sim, N1, "IAX2/node2", "noanswer", 0), 204);
    agent_in(N2, "support", agentid, agent, 128);
    caller_in(N1, "support", caller, 128);
    assert_true(wait_events("PAIRED", 1));
}

/* The caller hangs up while its link rings: ABANDON, the link goes, the
 * agent is free again. */
static void test_caller_hangs_up_while_link_rings(void **state)
{
    (void)state;
    char agent[128], caller[128], link[160];
    link_rings("2007", agent, caller);
    qc_event p;
    assert_true(last_event("PAIRED", &p));
    snprintf(link, sizeof link, "ariq-lo-%s", p.pairing);
    for (int t = 0; t < WAIT_MS; t += 5, sleep_ms(5)) { /* dialled, maybe not yet */
        json_t *l = sim_channel(&C->sim, N1, link);
        bool up = json_is_true(json_object_get(l, "alive"));
        json_decref(l);
        if (up)
            break;
    }
    hang_up(N1, caller);
    assert_true(wait_events("ABANDON", 1));
    assert_true(wait_gone(N1, link));
    char st[32];
    assert_string_equal(wait_agent_state("2007", "free", st, sizeof st), "free");
    assert_true(hearing_moh(N2, agent));
    hang_up(N2, agent);
    assert_all_clean();
}

/* The agent hangs up while the link to it rings: the caller keeps the front
 * and is served by the next agent. */
static void test_agent_hangs_up_while_link_rings(void **state)
{
    (void)state;
    char agent[128], agent2[128], caller[128];
    link_rings("2008", agent, caller);
    hang_up(N2, agent);
    assert_true(wait_events("AGENTLOGOFF", 1));
    assert_true(wait_events("UNPAIRED", 1));
    char k[64];
    snprintf(k, sizeof k, "{ariq}:queue:%s:callers", "support");
    for (int t = 0; t < WAIT_MS && zrank(k, caller) != 0; t += 10)
        sleep_ms(10);
    assert_int_equal(zrank(k, caller), 0);
    assert_true(alive(N1, caller));
    assert_int_equal(sim_originate_rule(&C->sim, N1, "IAX2/node2", "answer", 0), 204);
    place(N2, "agent,support,2009", "2009", agent2, sizeof agent2);
    wait_connected(caller, agent2);
    hang_up(N1, caller);
    hang_up(N2, agent2);
    assert_all_clean();
}

/* An agent arrives on node1 while the caller on node2 hears its position
 * (multi-x-cutoff): the announcement is cut at once and they connect. */
static void test_link_cuts_announcement(void **state)
{
    (void)state;
    char c[128], ag[128];
    caller_in(N2, "support", c, sizeof c);
    json_t *snd = NULL;
    for (int t = 0; t < WAIT_MS && !snd; t += 5, sleep_ms(5)) {
        json_t *o = chan(N2, c), *e;
        size_t i;
        json_array_foreach(json_object_get(o, "timeline"), i, e)
        {
            const char *ev = json_string_value(json_object_get(e, "ev"));
            if (!strcmp(ev, "sound") && json_is_null(json_object_get(e, "result")))
                snd = json_incref(e);
        }
        json_decref(o);
    }
    assert_non_null(snd);
    json_int_t started = json_integer_value(json_object_get(snd, "start"));
    json_decref(snd);
    place(N1, "agent,support,1001", "1001", ag, sizeof ag);
    wait_connected(c, ag);
    json_t *o = chan(N2, c), *e;
    size_t i;
    const char *result = NULL;
    json_int_t ended = 0;
    json_array_foreach(json_object_get(o, "timeline"), i, e)
    {
        if (!strcmp(json_string_value(json_object_get(e, "ev")), "sound") &&
            json_integer_value(json_object_get(e, "start")) == started) {
            result = json_string_value(json_object_get(e, "result"));
            ended = json_integer_value(json_object_get(e, "end"));
        }
    }
    assert_non_null(result);
    assert_string_equal(result, "cut");
    assert_true(ended - started < 400); /* it lasts ~424 ms when heard whole */
    json_decref(o);
    hang_up(N1, ag);
    assert_true(wait_gone(N2, c));
    assert_all_clean();
}

/* ---- three nodes: global order ------------------------------------------------------ */

static const struct {
    int node, prio;
} joins[] = {{0, 0}, {1, 0}, {2, 5}, {0, 0}, {2, 0}, {1, 5}};
#define NJOINS (sizeof joins / sizeof joins[0])
static char g_callers[NJOINS][128];

static int priority_of(const char *callid, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < NJOINS; i++)
        if (!strcmp(g_callers[i], callid))
            return joins[i].prio;
    return -1;
}

/* Callers join on three nodes, interleaved, two of them at priority 5; each
 * hears how many are ahead of it over all nodes; agents arriving one by one,
 * on any node, take them in global order: priority 5 first (in the order
 * they came), then the others in the order they came. */
static void test_global_order_three_nodes(void **state)
{
    (void)state;
    for (size_t i = 0; i < NJOINS; i++) {
        char args[64];
        snprintf(args, sizeof args, "caller,support,%d", joins[i].prio);
        place(joins[i].node, args, "5552000", g_callers[i], sizeof g_callers[i]);
        sleep_ms(20); /* a clear arrival order */
    }
    /* the first announcement (0.3 s after joining) counts everyone ahead */
    static const size_t order[] = {2, 5, 0, 1, 3, 4};
    for (size_t k = 0; k < NJOINS; k++) {
        size_t i = order[k];
        char num[32];
        snprintf(num, sizeof num, k == 0 ? "sound:queue-youarenext" : "number:%zu", k);
        bool heard = false;
        for (int t = 0; t < WAIT_MS && !heard; t += 20, sleep_ms(20)) {
            json_t *o = chan(joins[i].node, g_callers[i]), *e;
            size_t j;
            json_array_foreach(json_object_get(o, "timeline"), j, e)
            {
                const char *m = json_string_value(json_object_get(e, "media"));
                heard |= m && !strcmp(m, num);
            }
            json_decref(o);
        }
        if (!heard)
            fail_msg("caller %zu (node%d) never heard %s", i, joins[i].node + 1, num);
    }
    char agents[NJOINS][128];
    for (size_t k = 0; k < NJOINS; k++) {
        char args[64], id[16];
        snprintf(id, sizeof id, "30%02zu", k);
        snprintf(args, sizeof args, "agent,support,%s", id);
        place((int)(k * 2 % 3), args, id, agents[k], sizeof agents[k]); /* nodes 1,3,2,1,.. */
        wait_connected(g_callers[order[k]], agents[k]);
    }
    for (size_t i = 0; i < NJOINS; i++)
        hang_up(joins[i].node, g_callers[i]);
    for (size_t k = 0; k < NJOINS; k++)
        hang_up((int)(k * 2 % 3), agents[k]);
    assert_all_clean();
    redisContext *rc = redis();
    qc_stream *s = qc_stream_load(rc, NULL);
    char err[512];
    qc_stats st;
    qc_opts o = {.final = true, .priority_of = priority_of};
    if (qc_check(s, &o, &st, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(st.order_checked, (int)NJOINS);
    qc_stream_free(s);
    redisFree(rc);
}

/* Agents are offered calls in the order they became free, over all nodes:
 * three log in on nodes 3, 1, 2 in that order; callers arriving one by one
 * on any node go to them in that order; the first agent, free again after
 * its call, is behind the other two. */
static void test_agent_order_three_nodes(void **state)
{
    (void)state;
    static const int anode[] = {2, 0, 1};
    char agents[3][128], callers[4][128];
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "40%02d", i);
        agent_in(anode[i], "support", id, agents[i], sizeof agents[i]);
        sleep_ms(20);
    }
    caller_connects(0, "support", callers[0], sizeof callers[0], agents[0]);
    hang_up(0, callers[0]); /* agent 0 is free again: now the last one */
    assert_true(wait_moh(anode[0], agents[0]));
    caller_connects(1, "support", callers[1], sizeof callers[1], agents[1]);
    caller_connects(2, "support", callers[2], sizeof callers[2], agents[2]);
    caller_connects(1, "support", callers[3], sizeof callers[3], agents[0]);
    hang_up(1, callers[1]);
    hang_up(2, callers[2]);
    hang_up(1, callers[3]);
    for (int i = 0; i < 3; i++)
        hang_up(anode[i], agents[i]);
    assert_all_clean();
}

/* ---- a node dies ------------------------------------------------------------------------ */

/* node2's queued is killed and its Asterisk goes down. Within three
 * heartbeats (1.5 s) node1 reaps node2's entries: its waiting caller is
 * ABANDONed and its agent logged off, with the reason; the pairing of node1's
 * caller with node2's agent (its link ringing) is undone, the caller keeps
 * the front and is served by an agent on node1. */
static void test_dead_node_is_reaped(void **state)
{
    (void)state;
    char ag2[128], c2[128], c1[128], ag1[128];
    assert_int_equal(sim_originate_rule(&C->sim, N1, "IAX2/node2", "noanswer", 0), 204);
    agent_in(N2, "support", "2010", ag2, sizeof ag2);
    caller_in(N2, "sales", c2, sizeof c2); /* no sales agent: it waits */
    caller_in(N1, "support", c1, sizeof c1);
    assert_true(wait_events("PAIRED", 1));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    queued_proc_kill(&C->q[N2]);
    assert_int_equal(sim_set_node_down(&C->sim, N2, N1), 200);
    /* ABANDON for c2 and AGENTLOGOFF for 2010, both with the reason */
    bool reaped = false;
    for (int t = 0; t < 5000 && !reaped; t += 20, sleep_ms(20)) {
        redisContext *rc = redis();
        redisReply *r = redisCommand(rc, "SISMEMBER {ariq}:nodes node2");
        reaped = r && r->type == REDIS_REPLY_INTEGER && r->integer == 0;
        freeReplyObject(r);
        redisFree(rc);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("node2 reaped %.2f s after it died (three heartbeats: 1.5 s)\n", took);
    assert_true(reaped);
    assert_true(took < 3.0); /* 1.5 s, and slack for a loaded machine */
    qc_event e;
    assert_true(last_event("ABANDON", &e));
    assert_string_equal(e.callid, c2);
    assert_true(last_event("AGENTLOGOFF", &e));
    assert_string_equal(e.agent, "2010");
    char k[64];
    snprintf(k, sizeof k, "{ariq}:queue:support:callers");
    for (int t = 0; t < WAIT_MS && zrank(k, c1) != 0; t += 10)
        sleep_ms(10);
    assert_int_equal(zrank(k, c1), 0);
    assert_true(wait_moh(N1, c1));
    place(N1, "agent,support,1010", "1010", ag1, sizeof ag1);
    wait_connected(c1, ag1);
    hang_up(N1, c1);
    hang_up(N1, ag1);
    /* node2 is gone for good: only node1 is checked for leftovers */
    C->nnodes = 1;
    assert_all_clean();
    C->nnodes = 2;
}

/* node2's Asterisk dies but its queued lives on: queued stops beating once
 * its events WebSocket has been down two periods, so node1 reaps node2's
 * entries (ABANDON, AGENTLOGOFF, the pairing that targeted it undone) and
 * carries on; when node2's Asterisk is back, its queued beats again and
 * ends the legs whose channels went with the old Asterisk. */
static void test_asterisk_dies_queued_lives(void **state)
{
    (void)state;
    char ag2[128], c2[128], c1[128], ag1[128];
    assert_int_equal(sim_originate_rule(&C->sim, N1, "IAX2/node2", "noanswer", 0), 204);
    agent_in(N2, "support", "2011", ag2, sizeof ag2);
    caller_in(N2, "sales", c2, sizeof c2); /* no sales agent: it waits */
    caller_in(N1, "support", c1, sizeof c1);
    assert_true(wait_events("PAIRED", 1));
    assert_int_equal(sim_set_node_down(&C->sim, N2, N1), 200);
    bool reaped = false;
    for (int t = 0; t < 6000 && !reaped; t += 20, sleep_ms(20))
        reaped = count_events("AGENTLOGOFF") >= 1 && count_events("ABANDON") >= 1;
    assert_true(reaped); /* 2 periods without Asterisk + TTL + a check: ~2.5 s */
    assert_true(queued_proc_alive(&C->q[N2]));
    qc_event e;
    assert_true(last_event("ABANDON", &e));
    assert_string_equal(e.callid, c2);
    char k[64];
    snprintf(k, sizeof k, "{ariq}:queue:support:callers");
    for (int t = 0; t < WAIT_MS && zrank(k, c1) != 0; t += 10)
        sleep_ms(10);
    assert_int_equal(zrank(k, c1), 0); /* still first */
    place(N1, "agent,support,1011", "1011", ag1, sizeof ag1);
    wait_connected(c1, ag1); /* node1 carries on */
    assert_int_equal(sim_set_node_up(&C->sim, N2, N1), 200);
    bool back = false;
    for (int t = 0; t < 8000 && !back; t += 50, sleep_ms(50)) {
        redisContext *rc = redis();
        redisReply *r = redisCommand(rc, "SISMEMBER {ariq}:nodes node2");
        back = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
        redisFree(rc);
    }
    assert_true(back); /* beating again */
    hang_up(N1, c1);
    hang_up(N1, ag1);
    assert_all_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_caller_on_1_agent_on_2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_keys_across_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_hangs_up_while_talking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_drops_while_talking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_busy_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_not_answered_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caller_hangs_up_while_link_rings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_hangs_up_while_link_rings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_cuts_announcement, setup_slow, teardown),
        cmocka_unit_test_setup_teardown(test_global_order_three_nodes, setup_3, teardown),
        cmocka_unit_test_setup_teardown(test_agent_order_three_nodes, setup_3, teardown),
        cmocka_unit_test_setup_teardown(test_dead_node_is_reaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_asterisk_dies_queued_lives, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
