/* test_queued_restart - a queued killed (SIGKILL) or stopped (SIGTERM) and
 * started again with the same node id re-adopts what its Asterisk and Redis
 * hold (issue 7, item 1).
 *
 * Two simulator nodes, a real queued on each, one real redis-server, time
 * 20x fast. Each test puts parties in a state, kills node1's queued (or
 * node2's), changes what happens while it is down, starts it again, and
 * asserts what the parties then hear and do (the simulator's oracle), what
 * the events stream says (the checker over the whole run: every caller ends
 * exactly one way, exactly-once pairing, global order) and that nothing is
 * left in Redis or the simulator at the end. */
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

#include "cluster_util.h"
#include "queue_check.h"
#include "queued_proc.h"
#include "redis_proc.h"
#include "sim_proc.h"

#define SCALE 0.05
#define ANNOUNCE_MS 1000 /* announce_frequency 20 s at this scale */

/* The heartbeat is long enough (60 s: a 6 s TTL here) that a restart is
 * never taken for a death: these tests are about re-adoption, not reaping. */
static int setup(void **state)
{
    return start(state, 2, SCALE, "sweep_ms = 50\nheartbeat_s = 60\ndrain_timeout_s = 60\n",
                 "[queue support]\nannounce_frequency = 20\n"
                 "[queue sales]\nannounce_frequency = 0\n");
}

/* A drain deadline far off (400 s, 20 s here): a node that exits soon after
 * its last call ended did not wait for it. */
static int setup_long_drain(void **state)
{
    return start(state, 2, SCALE, "sweep_ms = 50\nheartbeat_s = 60\ndrain_timeout_s = 400\n",
                 "[queue support]\nannounce_frequency = 20\n"
                 "[queue sales]\nannounce_frequency = 0\n");
}

static void kill_node(int node)
{
    queued_proc_kill(&C->q[node]);
    assert_false(queued_proc_alive(&C->q[node]));
}

static void restart_node(int node)
{
    if (queued_proc_restart(&C->q[node], &C->sim, node) != 0)
        fail_msg("node%d did not come back and adopt", node + 1);
}

/* Start times (sim ms) of the position announcements `id` heard, oldest
 * first; returns how many (at most max). */
static size_t announcements(int node, const char *id, long long *out, size_t max)
{
    json_t *c = chan(node, id), *e;
    size_t i, n = 0;
    json_array_foreach(json_object_get(c, "timeline"), i, e)
    {
        const char *ev = json_string_value(json_object_get(e, "ev"));
        const char *media = json_string_value(json_object_get(e, "media"));
        if (ev && media && !strcmp(ev, "sound") &&
            (!strcmp(media, "sound:queue-youarenext") || !strcmp(media, "sound:queue-thereare")) &&
            n < max)
            out[n++] = json_integer_value(json_object_get(e, "start"));
    }
    json_decref(c);
    return n;
}

static size_t wait_announcements(int node, const char *id, size_t n, long long *out, size_t max)
{
    size_t got = 0;
    for (int t = 0; t < WAIT_MS && (got = announcements(node, id, out, max)) < n; t += 10)
        sleep_ms(10);
    return got;
}

static long long caller_rank(const char *queue, const char *callid)
{
    char k[96];
    snprintf(k, sizeof k, "{ariq}:queue:%s:callers", queue);
    return zrank(k, callid);
}

/* The last recording the simulator made on node, its state ("" if none). */
static const char *rec_state(int node, char *buf, size_t len)
{
    json_t *all = sim_ctl(&C->sim, node, "GET", "/sim/recordings", NULL, NULL);
    json_t *r = json_array_get(all, json_array_size(all) ? json_array_size(all) - 1 : 0);
    snprintf(buf, len, "%s", r ? json_string_value(json_object_get(r, "state")) : "");
    json_decref(all);
    return buf;
}

static bool wait_rec_state(int node, const char *want)
{
    char st[32];
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (!strcmp(rec_state(node, st, sizeof st), want))
            return true;
    return false;
}

/* ---- tests ------------------------------------------------------------------------ */

/* Three callers wait on node1; its queued is killed and started again, then
 * stopped cleanly and started again. They never stop hearing music, keep
 * their places, and their announcements go on on schedule (start to start
 * one period, not at once after the restart and not never); an agent then
 * takes them in their order. */
static void test_waiting_callers_keep_place(void **state)
{
    (void)state;
    char c[3][128], agent[128];
    for (int i = 0; i < 3; i++) {
        caller_in(N1, "support", c[i], sizeof c[i]);
        assert_true(wait_moh(N1, c[i]));
    }
    long long t[8];
    assert_int_equal(wait_announcements(N1, c[0], 1, t, 8), 1);
    sleep_ms(ANNOUNCE_MS / 2); /* half way to the next one */
    kill_node(N1);
    sleep_ms(100);
    restart_node(N1);
    for (int i = 0; i < 3; i++) {
        assert_true(alive(N1, c[i]));
        assert_true(wait_moh(N1, c[i]));
        assert_int_equal(caller_rank("support", c[i]), i);
    }
    size_t n = wait_announcements(N1, c[0], 2, t, 8);
    assert_int_equal(n, 2);
    long long gap = t[1] - t[0];
    if (gap < ANNOUNCE_MS * 9 / 10 || gap > ANNOUNCE_MS * 3 / 2)
        fail_msg("the announcement after the restart came %lld ms after the last one "
                 "(period %d ms)", gap, ANNOUNCE_MS);

    assert_int_equal(queued_proc_stop(&C->q[N1]), 0); /* clean stop: SIGTERM */
    restart_node(N1);
    for (int i = 0; i < 3; i++) {
        assert_true(wait_moh(N1, c[i]));
        assert_int_equal(caller_rank("support", c[i]), i);
    }
    assert_int_equal(count_events("ABANDON"), 0);
    assert_int_equal(count_events("PAIRED"), 0);

    place(N2, "agent,support,2001", "2001", agent, sizeof agent); /* paired at once */
    for (int i = 0; i < 3; i++) {
        wait_connected(c[i], agent);
        hang_up(N1, c[i]);
    }
    hang_up(N2, agent);
    assert_all_clean();
}

/* What hangs up while node1's queued is dead ends as a hangup would have
 * (ABANDON, AGENTLOGOFF) once it is back; the others keep their places. */
static void test_gone_while_down(void **state)
{
    (void)state;
    char c0[128], c1[128], agent[128];
    caller_in(N1, "sales", c0, sizeof c0);
    assert_true(wait_moh(N1, c0));
    caller_in(N1, "sales", c1, sizeof c1);
    assert_true(wait_moh(N1, c1));
    agent_in(N1, "support", "1001", agent, sizeof agent); /* another queue: stays free */
    kill_node(N1);
    assert_int_equal(sim_hangup_call(&C->sim, N1, c0, 16), 204);
    assert_int_equal(sim_hangup_call(&C->sim, N1, agent, 16), 204);
    assert_true(wait_gone(N1, c0));
    assert_true(wait_gone(N1, agent));
    assert_int_equal(count_events("ABANDON"), 0); /* nobody there to see it */
    restart_node(N1);
    assert_true(wait_events("ABANDON", 1));
    assert_true(wait_events("AGENTLOGOFF", 1));
    qc_event e;
    assert_true(last_event("ABANDON", &e));
    assert_string_equal(e.callid, c0);
    assert_true(wait_moh(N1, c1));
    assert_int_equal(caller_rank("sales", c1), 0);
    hang_up(N1, c1);
    assert_all_clean();
}

/* A call on node1 (caller and agent both there) recording when the node is
 * killed goes on after the restart: still connected, and the agent's keys
 * still pause and stop that recording and end the call. */
static void test_local_call_keeps_recording(void **state)
{
    (void)state;
    char agent[128], caller[128], who[32];
    call_local(N1, "support", "1001", agent, caller);
    assert_int_equal(sim_send_dtmf(&C->sim, N1, agent, "0"), 204);
    assert_true(wait_rec_state(N1, "recording"));
    kill_node(N1);
    sleep_ms(100);
    restart_node(N1);
    assert_int_equal(sim_is_connected(&C->sim, N1, caller, agent), 1);
    assert_int_equal(sim_send_dtmf(&C->sim, N1, agent, "5"), 204);
    assert_true(wait_rec_state(N1, "paused"));
    assert_int_equal(sim_send_dtmf(&C->sim, N1, agent, "7"), 204);
    assert_true(wait_rec_state(N1, "done"));
    assert_int_equal(sim_send_dtmf(&C->sim, N1, agent, "#"), 204);
    assert_true(wait_events("COMPLETEAGENT", 1));
    assert_true(wait_gone(N1, caller));
    assert_string_equal(hung_up_by(N1, caller, who, sizeof who), "app");
    assert_true(wait_moh(N1, agent));
    assert_int_equal(count_events("CONNECT"), 1);
    hang_up(N1, agent);
    assert_all_clean();
}

/* A call across the link survives a restart of either node: still
 * connected after each, and the agent's '#' still ends it. */
static void test_cross_call_survives_restarts(void **state)
{
    (void)state;
    char agent[128], caller[128];
    call_across("support", "2001", agent, caller);
    kill_node(N1);
    restart_node(N1);
    kill_node(N2);
    restart_node(N2);
    assert_int_equal(sim_is_connected(&C->sim, N1, caller, agent), 1);
    assert_int_equal(count_events("UNPAIRED"), 0);
    assert_int_equal(sim_send_dtmf(&C->sim, N2, agent, "#"), 204);
    assert_true(wait_events("COMPLETEAGENT", 1));
    assert_true(wait_gone(N1, caller));
    assert_true(wait_moh(N2, agent));
    hang_up(N2, agent);
    assert_all_clean();
}

/* Killed while its caller's link rings: the half-made pairing is rolled
 * back at the restart (the caller keeps the front, the ringing link is hung
 * up), and the same two are paired again and connected once links answer. */
static void test_ringing_link_rolled_back(void **state)
{
    (void)state;
    char agent[128], caller[128];
    assert_int_equal(sim_originate_rule(&C->sim, N1, "IAX2/node2", "noanswer", 0), 204);
    agent_in(N2, "support", "2001", agent, sizeof agent);
    caller_in(N1, "support", caller, sizeof caller);
    assert_true(wait_events("PAIRED", 1));
    kill_node(N1);
    json_t *del = sim_ctl(&C->sim, N1, "DELETE", "/sim/originate-rules", NULL, NULL);
    json_decref(del);
    restart_node(N1);
    assert_true(wait_events("UNPAIRED", 1));
    wait_connected(caller, agent);
    assert_int_equal(count_events("PAIRED"), 2);
    assert_int_equal(count_events("CONNECT"), 1);
    hang_up(N1, caller);
    assert_true(wait_moh(N2, agent));
    hang_up(N2, agent);
    assert_all_clean();
}

/* The agent of a call on node1 hangs up while node1's queued is dead: at
 * the restart the call is over (COMPLETEAGENT), the caller is hung up and
 * the call's mixing bridge destroyed. */
static void test_call_over_while_down(void **state)
{
    (void)state;
    char agent[128], caller[128], who[32];
    call_local(N1, "support", "1001", agent, caller);
    kill_node(N1);
    assert_int_equal(sim_hangup_call(&C->sim, N1, agent, 16), 204);
    assert_true(wait_gone(N1, agent));
    restart_node(N1);
    assert_true(wait_events("COMPLETEAGENT", 1));
    assert_true(wait_gone(N1, caller));
    assert_string_equal(hung_up_by(N1, caller, who, sizeof who), "app");
    assert_all_clean();
}

/* The node's events WebSocket drops and its next `refused` upgrades are
 * refused (503), so it stays down a while (the stream's backoff: 0.1 s
 * doubling, not reset by a connection that held under 5 s). */
static void drop_ws(int node, int refused)
{
    char body[64];
    snprintf(body, sizeof body, "{\"drop_ws\":true,\"refuse_ws\":%d}", refused);
    assert_int_equal(sim_fault(&C->sim, node, body), 200);
}

/* Up to 20 s: the stream's backoff grows after a connection that held less
 * than 5 s. */
static bool wait_ws_back(int node, int before)
{
    for (int t = 0; t < 20000; t += 10, sleep_ms(10))
        if (queued_proc_log_count(&C->q[node], "ari=connected") > before)
            return true;
    return false;
}

/* Item 2: the events WebSocket drops. What happened meanwhile is inferred
 * from what ARI holds once it is back: a caller who hung up is ABANDON, an
 * announcement that ended is followed by the next one on schedule; a
 * pairing made meanwhile (by node2, whose agent arrives) is carried out once
 * the socket is back (a link dialled without it would find no app). (An
 * OUT link answered while the socket is down is inferred too, from its
 * channel's state, but the simulator cannot delay a link's answer to make
 * that window: not covered here.) */
static void test_ws_drop_reconciled(void **state)
{
    (void)state;
    char c0[128], c1[128], agent[128];
    caller_in(N1, "support", c0, sizeof c0);
    assert_true(wait_moh(N1, c0));
    caller_in(N1, "support", c1, sizeof c1);
    assert_true(wait_moh(N1, c1));
    long long t[8];
    assert_int_equal(wait_announcements(N1, c0, 1, t, 8), 1); /* the first has started */
    int ups = queued_proc_log_count(&C->q[N1], "ari=connected");
    drop_ws(N1, 3);
    assert_int_equal(sim_hangup_call(&C->sim, N1, c1, 16), 204);
    assert_true(wait_gone(N1, c1));
    assert_true(wait_ws_back(N1, ups));
    assert_true(wait_events("ABANDON", 1));
    qc_event e;
    assert_true(last_event("ABANDON", &e));
    assert_string_equal(e.callid, c1);
    /* the announcement that ended while the socket was down: the next comes */
    assert_true(wait_announcements(N1, c0, 2, t, 8) >= 2);

    /* an agent arrives on node2 while node1's socket is down: node1 is told
     * of the pairing through Redis and dials the link over REST; its
     * answer (StasisStart of our end) comes while the socket is down */
    ups = queued_proc_log_count(&C->q[N1], "ari=connected");
    drop_ws(N1, 1);
    place(N2, "agent,support,2001", "2001", agent, sizeof agent);
    assert_true(wait_events("PAIRED", 1));
    assert_true(wait_ws_back(N1, ups));
    wait_connected(c0, agent);
    assert_true(wait_events("CONNECT", 1));
    hang_up(N1, c0);
    assert_true(wait_moh(N2, agent));

    hang_up(N2, agent);
    assert_all_clean();
}

/* Item 5: SIGTERM drains node1. Its call goes on; its waiting caller is
 * passed over (an agent arriving on node2 takes node2's later caller
 * instead) and stays where it is; when the call ends node1 exits 0 at once
 * (not at the deadline); started again, it re-adopts the caller, who is
 * then served first, by node1's agent, free since its call. */
static void test_drain_lets_calls_finish(void **state)
{
    (void)state;
    char a1[128], c1[128], cw[128], a2[128], c2[128];
    call_local(N1, "support", "1001", a1, c1);
    caller_in(N1, "support", cw, sizeof cw);
    assert_true(wait_moh(N1, cw));
    int st_before = queued_proc_log_count(&C->q[N1], "draining in Redis");
    queued_proc_term(&C->q[N1]);
    for (int t = 0; t < WAIT_MS && queued_proc_log_count(&C->q[N1], "draining in Redis") ==
                                       st_before;
         t += 10)
        sleep_ms(10);
    caller_in(N2, "support", c2, sizeof c2); /* behind cw */
    place(N2, "agent,support,2001", "2001", a2, sizeof a2);
    wait_connected(c2, a2); /* cw, first in the queue, is passed over */
    assert_true(hearing_moh(N1, cw));
    assert_int_equal(sim_is_connected(&C->sim, N1, c1, a1), 1);
    assert_true(queued_proc_alive(&C->q[N1]));
    hang_up(N1, c1); /* the last call of node1 ends: it exits, long before the deadline */
    int st = queued_proc_wait_exit(&C->q[N1], 10000);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(hearing_moh(N1, cw));
    assert_int_equal(caller_rank("support", cw), 0);
    restart_node(N1); /* a1 has been free since its call: cw is served */
    wait_connected(cw, a1);
    hang_up(N1, cw);
    hang_up(N2, c2);
    hang_up(N2, a2);
    hang_up(N1, a1);
    assert_all_clean();
}

/* A call still going at the drain deadline (60 s, 3 s here) goes on in
 * Asterisk after node1 exits, and the restart re-adopts it. */
static void test_drain_deadline(void **state)
{
    (void)state;
    char a1[128], c1[128];
    call_local(N1, "support", "1001", a1, c1);
    queued_proc_term(&C->q[N1]);
    sleep_ms(2000);
    assert_true(queued_proc_alive(&C->q[N1])); /* still waiting for the call */
    int st = queued_proc_wait_exit(&C->q[N1], 10000); /* the deadline: 3 s */
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(sim_is_connected(&C->sim, N1, c1, a1), 1);
    restart_node(N1);
    assert_int_equal(sim_send_dtmf(&C->sim, N1, a1, "#"), 204);
    assert_true(wait_events("COMPLETEAGENT", 1));
    assert_true(wait_gone(N1, c1));
    hang_up(N1, a1);
    assert_all_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_waiting_callers_keep_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone_while_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_call_keeps_recording, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cross_call_survives_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ringing_link_rolled_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_call_over_while_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_drop_reconciled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_lets_calls_finish, setup_long_drain, teardown),
        cmocka_unit_test_setup_teardown(test_drain_deadline, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
