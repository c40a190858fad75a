/* test_queued_redis - Redis goes away and comes back (issue 7, item 3).
 *
 * Two simulator nodes, a real queued on each, one real redis-server (AOF),
 * time 20x fast. While Redis is away nobody is hung up or turned away:
 * waiting callers keep their music and hear their last known position, new
 * callers and agents are answered and wait with music, and what they do is
 * held in order; when Redis is back it is written, in order, and pairing
 * resumes in global order. Asserted on the simulator's oracle, the events
 * stream (the checker over the whole run) and what Redis holds at the end. */
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

static int setup(void **state)
{
    return start(state, 2, SCALE, "sweep_ms = 50\nheartbeat_s = 60\n",
                 "[queue support]\nannounce_frequency = 20\n");
}

/* Redis behind three sentinels, a replica ready to take over. */
static int setup_ha(void **state)
{
    queued_cluster *c = calloc(1, sizeof *c);
    if (!c || queued_cluster_start_ha(c, 2, SCALE, "sweep_ms = 50\nheartbeat_s = 60\n",
                                      "[queue support]\nannounce_frequency = 20\n") != 0) {
        free(c);
        return -1;
    }
    C = c;
    *state = c;
    return 0;
}

static int log_count(int node, const char *needle)
{
    return queued_proc_log_count(&C->q[node], needle);
}

static bool wait_log(int node, const char *needle, int n)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (log_count(node, needle) >= n)
            return true;
    return false;
}

/* The events of one caller, in stream order, joined by ' '. */
static const char *events_of(const char *callid, char *buf, size_t len)
{
    redisContext *rc = redis();
    qc_stream *s = qc_stream_load(rc, NULL);
    assert_non_null(s);
    buf[0] = '\0';
    for (size_t i = 0; i < qc_stream_len(s); i++) {
        const qc_event *e = qc_stream_at(s, i);
        if (!strcmp(e->callid, callid))
            snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", buf[0] ? " " : "", e->event);
    }
    qc_stream_free(s);
    redisFree(rc);
    return buf;
}

/* Redis stopped cleanly (its AOF written) for 3 s, then started again. */
static void test_outage_nobody_lost(void **state)
{
    (void)state;
    char c0[128], c1[128], c2[128], agent[128], ev[256];
    caller_in(N1, "support", c0, sizeof c0);
    assert_true(wait_moh(N1, c0));
    assert_true(wait_log(N1, "announce ahead=0", 1)); /* its position is known */

    assert_int_equal(redis_proc_stop(&C->redis, SIGTERM), 0);
    assert_true(wait_log(N1, "redis=down", 1));
    caller_in(N1, "support", c1, sizeof c1);  /* after c0 */
    caller_in(N2, "support", c2, sizeof c2);  /* after c1, then hangs up */
    assert_true(wait_moh(N1, c1));
    assert_true(wait_moh(N2, c2));
    place(N2, "agent,support,2001", "2001", agent, sizeof agent);
    assert_true(wait_moh(N2, agent)); /* waits with music: no caller can be given yet */
    hang_up(N2, c2);
    /* c0 goes on hearing where it was */
    assert_true(wait_log(N1, "announcing the last known position", 1));
    sleep_ms(1500);
    assert_true(alive(N1, c0));
    assert_true(alive(N1, c1));
    assert_true(hearing_moh(N1, c1) || alive(N1, c1));

    assert_int_equal(redis_proc_restart(&C->redis), 0);
    /* what happened meanwhile is written in order; pairing resumes: the
     * agent takes c0 (first), then c1 */
    wait_connected(c0, agent);
    assert_true(wait_events("ENTERQUEUE", 3)); /* each node sends its own when it is back */
    assert_string_equal(events_of(c2, ev, sizeof ev), "ENTERQUEUE ABANDON");
    assert_int_equal(count_events("ABANDON"), 1);
    hang_up(N1, c0);
    wait_connected(c1, agent);
    hang_up(N1, c1);
    assert_true(wait_moh(N2, agent));
    hang_up(N2, agent);
    assert_all_clean();
}

static long long caller_rank(const char *callid)
{
    return zrank("{ariq}:queue:support:callers", callid);
}

/* Redis loses everything (FLUSHALL, every client dropped: a new, empty
 * server). Each node registers its waiting callers again with their
 * original places, so the order over both nodes is what it was; the agent
 * of the call in progress (its records gone too) is logged in again when
 * the call ends and takes the callers in that order. */
static void test_redis_comes_back_empty(void **state)
{
    (void)state;
    char at[128], ct[128], c[3][128];
    call_local(N1, "support", "1001", at, ct);
    const int node_of[3] = {N1, N2, N1};
    for (int i = 0; i < 3; i++) {
        caller_in(node_of[i], "support", c[i], sizeof c[i]);
        assert_true(wait_moh(node_of[i], c[i]));
        assert_int_equal(caller_rank(c[i]), i);
    }
    redisContext *rc = redis();
    freeReplyObject(redisCommand(rc, "FLUSHALL"));
    freeReplyObject(redisCommand(rc, "CLIENT KILL TYPE normal"));
    redisFree(rc);
    assert_true(wait_log(N1, "re-registered 2 callers", 1));
    assert_true(wait_log(N2, "re-registered 1 callers", 1));
    for (int i = 0; i < 3; i++)
        assert_int_equal(caller_rank(c[i]), i);
    assert_int_equal(count_events("RESTORE"), 3);

    assert_int_equal(sim_send_dtmf(&C->sim, N1, at, "#"), 204); /* the call ends */
    assert_true(wait_gone(N1, ct));
    for (int i = 0; i < 3; i++) {
        wait_connected(c[i], at);
        hang_up(node_of[i], c[i]);
    }
    hang_up(N1, at);
    for (int node = 0; node < C->nnodes; node++)
        assert_true(sim_wait_live_channels(&C->sim, node, 0, WAIT_MS));
    sleep_ms(200);
    char err[512];
    rc = redis();
    if (qc_redis_clean(rc, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    redisFree(rc);
}

/* The Redis master is killed (SIGKILL) with callers waiting on both nodes
 * and a call in progress; a caller arrives during the failover. The
 * sentinels promote the replica, both nodes find it through them and go
 * on: every caller keeps its place, the late one queues behind, and the
 * agent takes them in that order once its call ends. */
static void test_sentinel_failover(void **state)
{
    (void)state;
    char at[128], ct[128], c[3][128];
    call_local(N1, "support", "1001", at, ct);
    const int node_of[3] = {N1, N2, N2};
    for (int i = 0; i < 2; i++) {
        caller_in(node_of[i], "support", c[i], sizeof c[i]);
        assert_true(wait_moh(node_of[i], c[i]));
    }
    sleep_ms(200); /* replicated */
    int ready[2] = {log_count(N1, "redis=ready"), log_count(N2, "redis=ready")};
    assert_int_equal(redis_proc_stop(&C->redis, SIGKILL), 0);
    caller_in(node_of[2], "support", c[2], sizeof c[2]); /* during the failover */
    assert_true(wait_moh(node_of[2], c[2]));
    for (int t = 0; t < 15000 && (log_count(N1, "redis=ready") == ready[0] ||
                                  log_count(N2, "redis=ready") == ready[1]);
         t += 10)
        sleep_ms(10);
    assert_true(log_count(N1, "redis=ready") > ready[0]);
    assert_true(log_count(N2, "redis=ready") > ready[1]);
    redis_proc tmp = C->redis; /* the replica is the master now */
    C->redis = C->replica;
    C->replica = tmp;
    for (int t = 0; t < WAIT_MS && count_events("ENTERQUEUE") < 4; t += 10)
        sleep_ms(10);
    for (int i = 0; i < 3; i++)
        assert_int_equal(zrank("{ariq}:queue:support:callers", c[i]), i);
    assert_int_equal(sim_send_dtmf(&C->sim, N1, at, "#"), 204);
    assert_true(wait_gone(N1, ct));
    for (int i = 0; i < 3; i++) {
        wait_connected(c[i], at);
        hang_up(node_of[i], c[i]);
    }
    hang_up(N1, at);
    assert_all_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outage_nobody_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_comes_back_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sentinel_failover, setup_ha, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
