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

#include "queue_check.h"
#include "queued_proc.h"
#include "redis_proc.h"
#include "sim_proc.h"

#define SCALE 0.01
#define WAIT_MS 5000
#define N1 0 /* the callers' node */
#define N2 1 /* the agents' node */

static queued_cluster *C;

static int setup(void **state)
{
    queued_cluster *c = calloc(1, sizeof *c);
    if (!c || queued_cluster_start(c, 2, SCALE, "sweep_ms = 50\nheartbeat_s = 1\n",
                                   "[queue support]\nannounce_frequency = 30\n"
                                   "[queue sales]\nannounce_frequency = 0\nwrapup_time = 2\n") !=
                  0) {
        free(c);
        return -1;
    }
    C = c;
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    queued_cluster *c = *state;
    int st = queued_cluster_stop(c);
    free(c);
    return (WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : -1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the oracle ------------------------------------------------------------ */

static json_t *chan(int node, const char *id)
{
    json_t *c = sim_channel(&C->sim, node, id);
    assert_non_null(c);
    return c;
}

static bool alive(int node, const char *id)
{
    json_t *c = chan(node, id);
    bool a = json_is_true(json_object_get(c, "alive"));
    json_decref(c);
    return a;
}

static bool wait_gone(int node, const char *id)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (!alive(node, id))
            return true;
    return false;
}

static bool hearing_moh(int node, const char *id)
{
    json_t *c = chan(node, id);
    bool on = json_is_true(json_object_get(c, "hearing_moh"));
    json_decref(c);
    return on;
}

static bool wait_moh(int node, const char *id)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (hearing_moh(node, id))
            return true;
    return false;
}

/* Who hung the channel up ("party", "app", "link", ...), or "" if alive. */
static const char *hung_up_by(int node, const char *id, char *buf, size_t len)
{
    json_t *c = chan(node, id);
    json_t *h = json_object_get(c, "hangup");
    snprintf(buf, len, "%s", json_is_object(h) ? json_string_value(json_object_get(h, "who")) : "");
    json_decref(c);
    return buf;
}

/* ---- placing parties --------------------------------------------------------- */

static void place(int node, const char *args, const char *number, char *id, size_t len)
{
    json_t *c = sim_place_call(&C->sim, node, "queue", args, number, id, len);
    assert_non_null(c);
    json_decref(c);
}

/* An agent on `node` waiting in the holding bridge. */
static void agent_in(int node, const char *queues, const char *agentid, char *id, size_t len)
{
    char args[128];
    snprintf(args, sizeof args, "agent,%s,%s", queues, agentid);
    place(node, args, agentid, id, len);
    assert_true(wait_moh(node, id));
}

/* A caller on `node` paired with `agent` (on `anode`): connected through the
 * link. */
static void caller_connects(int node, const char *queues, char *id, size_t len, int anode,
                            const char *agent)
{
    char args[128];
    snprintf(args, sizeof args, "caller,%s", queues);
    place(node, args, "5551000", id, len);
    (void)anode;
    if (!sim_wait_connected(&C->sim, node, id, agent, true, WAIT_MS))
        fail_msg("caller %s never connected with agent %s", id, agent);
}

/* ---- Redis -------------------------------------------------------------------- */

static redisContext *redis(void)
{
    redisContext *rc = redis_proc_connect(&C->redis);
    assert_non_null(rc);
    return rc;
}

static int count_events(const char *type)
{
    redisContext *rc = redis();
    qc_stream *s = qc_stream_load(rc, NULL);
    assert_non_null(s);
    int n = qc_stream_count(s, type);
    qc_stream_free(s);
    redisFree(rc);
    return n;
}

static bool wait_events(const char *type, int n)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (count_events(type) >= n)
            return true;
    return false;
}

/* Everybody gone: the checker over the whole stream, nothing of any party
 * in Redis, nothing in the simulator. */
static void assert_all_clean(void)
{
    for (int node = 0; node < 2; node++)
        if (!sim_wait_live_channels(&C->sim, node, 0, WAIT_MS))
            fail_msg("node%d still has live channels", node + 1);
    sleep_ms(200); /* the last writes of the nodes */
    redisContext *rc = redis();
    char err[512];
    qc_stream *s = qc_stream_load(rc, NULL);
    assert_non_null(s);
    qc_opts o = {.final = true};
    if (qc_check(s, &o, NULL, err, sizeof err) != 0)
        fail_msg("events: %s", err);
    qc_stream_free(s);
    if (qc_redis_clean(rc, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    redisFree(rc);
    for (int node = 0; node < 2; node++)
        if (qc_sim_wait_clean(&C->sim, node, WAIT_MS, 0, err, sizeof err) != 0)
            fail_msg("node%d: %s", node + 1, err);
}

/* ---- tests ---------------------------------------------------------------------- */

/* The basic cross-node call: connected through the link; the caller hangs up
 * and everything on both nodes goes, the agent back to its holding bridge. */
static void test_caller_on_1_agent_on_2(void **state)
{
    (void)state;
    char agent[128], caller[128], who[32];
    agent_in(N2, "support", "2001", agent, sizeof agent);
    caller_connects(N1, "support", caller, sizeof caller, N2, agent);
    assert_true(wait_events("CONNECT", 1));
    assert_int_equal(count_events("CONNECT"), 1);
    assert_int_equal(sim_hangup_call(&C->sim, N1, caller, 16), 204);
    assert_true(wait_events("COMPLETECALLER", 1));
    assert_true(wait_moh(N2, agent)); /* free again, music */
    assert_string_equal(hung_up_by(N1, caller, who, sizeof who), "party");
    assert_int_equal(sim_hangup_call(&C->sim, N2, agent, 16), 204);
    assert_true(wait_gone(N2, agent));
    assert_all_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_caller_on_1_agent_on_2, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
