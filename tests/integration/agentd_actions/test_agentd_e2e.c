/* test_agentd_e2e.c - agentd's actions carried out by real queued nodes:
 * a two-node cluster on the simulator, agentd beside it on the same Redis;
 * an agent on node2 paused and unpaused, a caller on node1 hung up, each
 * through agentd's HTTP API, asserted on Redis and the simulator's oracle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "agentd_proc.h"
#include "cluster_util.h"

#define SCALE 0.01

static agentd_proc A;

static int setup(void **state)
{
    if (start(state, 2, SCALE, "sweep_ms = 50\nheartbeat_s = 1\n",
              "[queue support]\nannounce_frequency = 0\n") != 0)
        return -1;
    return agentd_proc_start(&A, &C->redis, "agentd_id = e2e\n");
}

static int teardown_all(void **state)
{
    int st = agentd_proc_stop(&A);
    int rc = teardown(state);
    return (WIFEXITED(st) && WEXITSTATUS(st) == 0 && rc == 0) ? 0 : -1;
}

/* One request through agentd; its status, and its JSON reply in *out. */
static long api(const char *method, const char *path, const char *body, json_t **out)
{
    char *resp = NULL;
    long st = agentd_http_send(A.port, method, path, AGENTD_AUTH, body, &resp, NULL, 0);
    *out = resp ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    return st;
}

static const char *js(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

static void test_pause_and_hangup(void **state)
{
    (void)state;
    char ag[128], c[128], st[64], key[200], path[300];
    json_t *o;
    agent_in(N2, "support", "1001", ag, sizeof ag);
    assert_string_equal(wait_agent_state("1001", "free", st, sizeof st), "free");

    assert_int_equal(api("POST", "/api/v1/agents/1001/pause", "{\"reason\":\"lunch\"}", &o), 200);
    assert_string_equal(js(o, "agent"), "1001");
    assert_string_equal(js(o, "state"), "paused");
    assert_true(json_is_true(json_object_get(o, "paused")));
    assert_string_equal(js(o, "pause_reason"), "lunch");
    json_decref(o);
    assert_string_equal(hget("{ariq}:agent:1001", "state", st, sizeof st), "paused");
    assert_string_equal(hget("{ariq}:agent:1001", "pause_reason", st, sizeof st), "lunch");
    assert_true(wait_events("PAUSE", 1));

    /* the paused agent is not offered the caller: it waits, then is hung up */
    caller_in(N1, "support", c, sizeof c);
    snprintf(key, sizeof key, "{ariq}:call:%s", c);
    sleep_ms(300);
    assert_string_equal(hget(key, "state", st, sizeof st), "waiting");
    assert_true(alive(N2, ag));
    snprintf(path, sizeof path, "/api/v1/calls/%s/hangup", c);
    assert_int_equal(api("POST", path, "{}", &o), 200);
    assert_string_equal(js(o, "callid"), c);
    assert_true(json_is_true(json_object_get(o, "hungup")));
    json_decref(o);
    assert_true(wait_gone(N1, c));
    assert_true(wait_events("ABANDON", 1));
    redisContext *rc = redis();
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10)) {
        redisReply *r = redisCommand(rc, "EXISTS %s", key);
        long long n = r ? r->integer : -1;
        freeReplyObject(r);
        if (n == 0)
            break;
    }
    redisReply *r = redisCommand(rc, "EXISTS %s", key);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    redisFree(rc);
    assert_int_equal(api("POST", path, "{}", &o), 404);
    json_decref(o);

    /* unpaused: free again, still logged in on node2 */
    assert_int_equal(api("POST", "/api/v1/agents/1001/unpause", NULL, &o), 200);
    assert_true(json_is_false(json_object_get(o, "paused")));
    json_decref(o);
    assert_string_equal(wait_agent_state("1001", "free", st, sizeof st), "free");
    assert_int_equal(api("POST", "/api/v1/agents/1001/unpause", NULL, &o), 409);
    assert_non_null(json_object_get(o, "error"));
    json_decref(o);
    assert_true(alive(N2, ag));
    hang_up(N2, ag);
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_pause_and_hangup),
    };
    return cmocka_run_group_tests_name("agentd_e2e", t, setup, teardown_all);
}
