/* agentd's read routes and /metrics against a real redis-server: the state
 * is made with queue_store's own ops on the harness's nodes "A" and "B" (so
 * the records are exactly what queued writes), agentd runs as a child and
 * every route's JSON is checked: positions across the two nodes with
 * priorities, wait times, agent states, a live cross-node call with its
 * recording, recordings newest first and `limit`, the 404s and 400s,
 * service level and counters from a scripted set of events, /metrics
 * through `promtool check metrics`, and 503 once Redis is gone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentd_proc.h"
#include "core/clock.h"
#include "core/err.h"
#include "harness.h"

#define OK HX_OK
/* Sends a queue_store request with hx_o as its outcome and waits for it. */
#define DO(call)                                                                         \
    do {                                                                                 \
        memset(&hx_o, 0, sizeof hx_o);                                                   \
        OK(hx_done(h, (call), &hx_o));                                                   \
    } while (0)
#define EXTRA "snapshot_ms = 50\nservice_level_s = 20\nservice_level_window_s = 3600\n"

/* GET path: asserts the status, returns the body parsed (NULL when not
 * JSON); *raw (if given) gets the text. */
static json_t *get(int port, const char *path, long want, char **raw)
{
    char *body = NULL;
    long st = agentd_http(port, "GET", path, AGENTD_AUTH, &body, NULL, 0);
    if (st != want)
        fail_msg("GET %s: %ld, want %ld: %s", path, st, want, body ? body : "");
    json_t *o = body ? json_loads(body, 0, NULL) : NULL;
    if (raw)
        *raw = body;
    else
        free(body);
    return o;
}

static void assert_error(int port, const char *path, long want)
{
    json_t *o = get(port, path, want, NULL);
    assert_non_null(o);
    assert_true(json_is_string(json_object_get(o, "error")));
    json_decref(o);
}

static const char *js(const json_t *o, const char *path)
{
    const json_t *v = o;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(k)) : json_object_get(v, k);
    return json_string_value(v) ? json_string_value(v) : "<none>";
}

static long long ji(const json_t *o, const char *path)
{
    const json_t *v = o;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(k)) : json_object_get(v, k);
    if (!json_is_integer(v))
        fail_msg("%s: not an integer", path);
    return json_integer_value(v);
}

static void redis_ok(hx *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(h->rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* The state: callers c1 (A), c3 (A, priority 5), c4 (B) waiting in sales;
 * c2 (B, sales&support) talking to agent a1 (A, support) across the nodes,
 * recorded as rec1; a2 (A, sales) paused; rec_old stored earlier. */
static void make_state(hx *h, char *pairing, size_t plen)
{
    redis_ok(h, "SADD {ariq}:nodes A B");
    redis_ok(h, "SET {ariq}:node:A:heartbeat 1");
    redis_ok(h, "SADD {ariq}:queues sales support empty slq");
    h->now = clock_wall_ms() - 60000;
    OK(hx_enter(h, 0, "c1", 0, "sales", false, &hx_o));
    h->now += 1000;
    OK(hx_enter(h, 1, "c2", 0, "sales&support", false, &hx_o));
    h->now += 1000;
    OK(hx_enter(h, 0, "c3", 5, "sales", false, &hx_o));
    h->now += 1000;
    OK(hx_enter(h, 1, "c4", 0, "sales", false, &hx_o));
    OK(hx_login(h, 0, "a1", "support", true, &hx_o));
    assert_int_equal(hx_o.npairs, 1);
    snprintf(pairing, plen, "%s", hx_o.pairs[0].pairing);
    h->now += 500;
    DO(qs_bridged(h->n[1].qs, pairing, QS_SIDE_CALLER, hx_result_cb, &hx_o));
    DO(qs_bridged(h->n[0].qs, pairing, QS_SIDE_AGENT, hx_result_cb, &hx_o));
    OK(hx_login(h, 0, "a2", "sales", false, &hx_o));
    DO(qs_agent_pause(h->n[0].qs, "a2", true, "lunch", false, hx_result_cb, &hx_o));
    redis_ok(h, "HSET {ariq}:recording:rec_old pairing p1 queue sales agent a9 call c0 node B "
                "file rec_old.wav started_ms 1000 state stored spans '' paused_ms 0 "
                "ended_ms 2000");
    redis_ok(h, "ZADD {ariq}:recordings 1000 rec_old");
    h->now += 100;
    DO(qs_rec(h->n[0].qs, QS_REC_START, "rec1", pairing, "rec1.wav", 0, hx_result_cb, &hx_o));
    redis_ok(h, "HSET {ariq}:node:A:stats redis_rtt_ms_buckets "
                "1:3,2:5,5:6,10:6,25:6,50:6,100:6,250:6,500:6,1000:6,2500:6,+Inf:7 "
                "redis_rtt_ms_sum_ms 4000.250 redis_rtt_ms_count 7 ari_rtt_ms_buckets "
                "1:0,2:0,5:1,10:1,25:1,50:1,100:1,250:1,500:1,1000:1,2500:1,+Inf:1 "
                "ari_rtt_ms_sum_ms 3.000 ari_rtt_ms_count 1");
}

static void check_queues(int port)
{
    char *raw = NULL;
    json_t *o = get(port, "/api/v1/queues", 200, &raw);
    assert_non_null(o);
    free(raw);
    long long asof = ji(o, "as_of_ms");
    json_t *qs = json_object_get(o, "queues");
    assert_int_equal(json_array_size(qs), 4);
    assert_string_equal(js(qs, "0.name"), "empty");
    assert_int_equal(ji(qs, "0.waiting"), 0);
    assert_int_equal(ji(qs, "0.longest_wait_ms"), 0);
    assert_string_equal(js(qs, "1.name"), "sales");
    assert_int_equal(ji(qs, "1.waiting"), 3);
    assert_true(ji(qs, "1.longest_wait_ms") >= 60000 && ji(qs, "1.longest_wait_ms") < 70000);
    assert_int_equal(ji(qs, "1.agents.logged_in"), 1);
    assert_int_equal(ji(qs, "1.agents.paused"), 1);
    assert_int_equal(ji(qs, "1.agents.waiting"), 0);
    assert_string_equal(js(qs, "3.name"), "support");
    assert_int_equal(ji(qs, "3.waiting"), 0);
    assert_int_equal(ji(qs, "3.agents.talking"), 1);
    assert_int_equal(ji(qs, "3.service_level.threshold_s"), 20);
    assert_int_equal(ji(qs, "3.service_level.window_s"), 3600);
    assert_true(asof > 0);
    json_decref(o);

    o = get(port, "/api/v1/queues/sales", 200, NULL);
    asof = ji(o, "as_of_ms");
    json_t *c = json_object_get(o, "callers");
    assert_int_equal(json_array_size(c), 3);
    const char *want[3][3] = {{"c3", "A", "5"}, {"c1", "A", "0"}, {"c4", "B", "0"}};
    for (int i = 0; i < 3; i++) {
        json_t *x = json_array_get(c, (size_t)i);
        assert_string_equal(js(x, "callid"), want[i][0]);
        assert_string_equal(js(x, "node"), want[i][1]);
        assert_int_equal(ji(x, "priority"), atoi(want[i][2]));
        assert_int_equal(ji(x, "position"), i + 1);
        assert_int_equal(ji(x, "wait_ms"), asof - ji(x, "entered_ms"));
        assert_string_equal(js(x, "cid_name"), "Ann Caller");
        assert_string_equal(js(x, "queues.0"), "sales");
    }
    assert_int_equal(ji(o, "longest_wait_ms"), asof - ji(c, "1.entered_ms"));
    json_decref(o);
    assert_error(port, "/api/v1/queues/nope", 404);
}

static void check_agents_calls(int port, const char *pairing)
{
    json_t *o = get(port, "/api/v1/agents", 200, NULL);
    json_t *a = json_object_get(o, "agents");
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(js(a, "0.agent"), "a1");
    assert_string_equal(js(a, "0.state"), "talking");
    assert_string_equal(js(a, "0.node"), "A");
    assert_string_equal(js(a, "0.channel_name"), "PJSIP/a1-0001");
    assert_string_equal(js(a, "0.pairing"), pairing);
    assert_string_equal(js(a, "0.callid"), "c2");
    assert_true(json_is_false(json_object_get(json_array_get(a, 0), "paused")));
    assert_string_equal(js(a, "1.agent"), "a2");
    assert_string_equal(js(a, "1.state"), "paused");
    assert_true(json_is_true(json_object_get(json_array_get(a, 1), "paused")));
    assert_string_equal(js(a, "1.pause_reason"), "lunch");
    assert_true(json_is_null(json_object_get(json_array_get(a, 1), "pairing")));
    assert_true(json_is_null(json_object_get(json_array_get(a, 1), "callid")));
    json_decref(o);
    o = get(port, "/api/v1/agents/a2", 200, NULL);
    assert_string_equal(js(o, "agent.state"), "paused");
    json_decref(o);
    assert_error(port, "/api/v1/agents/a9", 404);

    o = get(port, "/api/v1/calls", 200, NULL);
    json_t *c = json_object_get(o, "calls");
    assert_int_equal(json_array_size(c), 1);
    assert_string_equal(js(c, "0.pairing"), pairing);
    assert_string_equal(js(c, "0.state"), "talking");
    assert_string_equal(js(c, "0.queue"), "support");
    assert_string_equal(js(c, "0.callid"), "c2");
    assert_string_equal(js(c, "0.caller_node"), "B");
    assert_string_equal(js(c, "0.agent_node"), "A");
    assert_string_equal(js(c, "0.agent"), "a1");
    assert_true(ji(c, "0.bridged_ms") > 0);
    assert_string_equal(js(c, "0.recording.name"), "rec1");
    assert_string_equal(js(c, "0.recording.state"), "recording");
    assert_string_equal(js(c, "0.cid_num"), "5551234"); /* the caller's, from its record */
    assert_string_equal(js(c, "0.cid_name"), "Ann Caller");
    json_decref(o);
    o = get(port, "/api/v1/calls/c2", 200, NULL);
    assert_string_equal(js(o, "call.pairing"), pairing);
    json_decref(o);
    o = get(port, "/api/v1/calls/c1", 200, NULL);
    assert_true(json_is_null(json_object_get(o, "call")));
    assert_string_equal(js(o, "waiting.callid"), "c1");
    assert_int_equal(ji(o, "waiting.position"), 2);
    json_decref(o);
    assert_error(port, "/api/v1/calls/zz", 404);
}

static void check_recordings(int port)
{
    json_t *o = get(port, "/api/v1/recordings", 200, NULL);
    json_t *r = json_object_get(o, "recordings");
    assert_int_equal(json_array_size(r), 2);
    assert_string_equal(js(r, "0.name"), "rec1");
    assert_string_equal(js(r, "0.state"), "recording");
    assert_string_equal(js(r, "0.callid"), "c2");
    assert_string_equal(js(r, "0.file"), "rec1.wav");
    assert_true(json_is_null(json_object_get(json_array_get(r, 0), "ended_ms")));
    assert_string_equal(js(r, "1.name"), "rec_old");
    assert_int_equal(ji(r, "1.ended_ms"), 2000);
    json_decref(o);
    o = get(port, "/api/v1/recordings?limit=1", 200, NULL);
    assert_int_equal(json_array_size(json_object_get(o, "recordings")), 1);
    json_decref(o);
    o = get(port, "/api/v1/recordings/rec_old", 200, NULL);
    assert_string_equal(js(o, "recording.state"), "stored");
    assert_string_equal(js(o, "recording.agent"), "a9");
    json_decref(o);
    assert_error(port, "/api/v1/recordings/nope", 404);
    assert_error(port, "/api/v1/recordings?limit=0", 400);
    assert_error(port, "/api/v1/recordings?limit=1001", 400);
    assert_error(port, "/api/v1/recordings?limit=abc", 400);
    assert_error(port, "/api/v1/recordings?limit=", 400);
    assert_error(port, "/api/v1/recordings?foo=1", 400);
}

/* Events for queue slq: one before agentd started (window only), then
 * CONNECT within and beyond 20 s, an old CONNECT (out of the window), a
 * cross-node PAIRED + CONNECT, ABANDON, EXITWITHTIMEOUT, a rollback. */
static void scripted_events_before(hx *h)
{
    redis_ok(h, "XADD {ariq}:events * event CONNECT ts_ms %llu queue slq holdtime 1 "
                "ringtime_ms 100", (unsigned long long)clock_wall_ms());
}

static void scripted_events_after(hx *h)
{
    unsigned long long now = clock_wall_ms(), old = now - 2 * 3600 * 1000ULL;
    redis_ok(h, "XADD {ariq}:events * event CONNECT ts_ms %llu queue slq holdtime 5 "
                "ringtime_ms 200", now);
    redis_ok(h, "XADD {ariq}:events * event CONNECT ts_ms %llu queue slq holdtime 30 "
                "ringtime_ms 300", now);
    redis_ok(h, "XADD {ariq}:events * event CONNECT ts_ms %llu queue slq holdtime 2 "
                "ringtime_ms 300", old);
    redis_ok(h, "XADD {ariq}:events * event PAIRED ts_ms %llu queue slq pairing px "
                "caller_node A agent_node B", now);
    redis_ok(h, "XADD {ariq}:events * event CONNECT ts_ms %llu queue slq holdtime 20 "
                "ringtime_ms 1500 pairing px", now);
    redis_ok(h, "XADD {ariq}:events * event ABANDON ts_ms %llu queue slq waittime 3", now);
    redis_ok(h, "XADD {ariq}:events * event EXITWITHTIMEOUT ts_ms %llu queue slq", now);
    redis_ok(h, "XADD {ariq}:events * event UNPAIRED ts_ms %llu queue slq pairing py "
                "reason rollback detail x", now);
}

static void check_service_level(int port)
{
    json_t *o = NULL;
    for (int i = 0; i < 100; i++) {
        json_decref(o);
        o = get(port, "/api/v1/queues/slq", 200, NULL);
        if (ji(o, "service_level.abandoned") == 2 && ji(o, "service_level.answered") == 4)
            break;
        usleep(50 * 1000);
    }
    /* answered: the pre-start 1 s, 5 s, 30 s, 20 s (within: <= 20); the
     * CONNECT of two hours ago is out of the window */
    json_decref(o);
    o = get(port, "/api/v1/queues/slq", 200, NULL);
    assert_int_equal(ji(o, "service_level.answered"), 4);
    assert_int_equal(ji(o, "service_level.answered_within"), 3);
    assert_int_equal(ji(o, "service_level.abandoned"), 2);
    assert_true(json_is_real(json_object_get(json_object_get(o, "service_level"), "percent")));
    assert_float_equal(json_real_value(json_object_get(json_object_get(o, "service_level"),
                                                       "percent")),
                       50.0, 1e-9);
    json_decref(o);
    o = get(port, "/api/v1/queues/empty", 200, NULL);
    assert_true(json_is_null(json_object_get(json_object_get(o, "service_level"), "percent")));
    json_decref(o);
}

/* Runs promtool check metrics on text; returns its exit status. */
static int promtool(const char *text)
{
    if (access("/usr/bin/promtool", X_OK) != 0)
        fail_msg("promtool missing: install the Debian package prometheus (scripts/deps.sh)");
    FILE *p = popen("/usr/bin/promtool check metrics 1>&2", "w");
    assert_non_null(p);
    fputs(text, p);
    int st = pclose(p);
    if (st != 0)
        fprintf(stderr, "%s", text);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void check_metrics(int port)
{
    char *body = NULL, hdrs[2048];
    long st = agentd_http(port, "GET", "/metrics", AGENTD_AUTH, &body, hdrs, sizeof hdrs);
    assert_int_equal(st, 200);
    assert_non_null(strstr(hdrs, "text/plain; version=0.0.4"));
    const char *lines[] = {
        "ariq_queue_waiting_callers{queue=\"sales\"} 3\n",
        "ariq_agents{queue=\"support\",state=\"talking\"} 1\n",
        "ariq_agents{queue=\"sales\",state=\"paused\"} 1\n",
        "ariq_live_calls{state=\"talking\"} 1\n",
        "ariq_queue_service_level_ratio{queue=\"slq\"} 0.5\n",
        "ariq_connects_total{queue=\"slq\"} 4\n", /* pre-start not counted */
        "ariq_abandons_total{queue=\"slq\"} 1\n",
        "ariq_timeouts_total{queue=\"slq\"} 1\n",
        "ariq_rollbacks_total{queue=\"slq\"} 1\n",
        "ariq_pairings_total{queue=\"slq\"} 1\n",
        "ariq_pairing_latency_seconds_count{queue=\"slq\"} 4\n",
        "ariq_pairing_latency_seconds_bucket{queue=\"slq\",le=\"0.25\"} 1\n",
        "ariq_pairing_latency_seconds_bucket{queue=\"slq\",le=\"2\"} 4\n",
        "ariq_cross_node_connect_seconds_count 1\n",
        "ariq_cross_node_connect_seconds_sum 1.5\n",
        "ariq_node_up{node=\"A\"} 1\n",
        "ariq_node_up{node=\"B\"} 0\n",
        "ariq_redis_rtt_seconds_bucket{node=\"A\",le=\"0.001\"} 3\n",
        "ariq_redis_rtt_seconds_bucket{node=\"A\",le=\"+Inf\"} 7\n",
        "ariq_redis_rtt_seconds_sum{node=\"A\"} 4.00025\n",
        "ariq_ari_rtt_seconds_count{node=\"A\"} 1\n",
        "# TYPE ariq_pairing_latency_seconds histogram\n",
        "# HELP ariq_node_up ",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!strstr(body, lines[i]))
        {
            fputs(body, stderr);
            fail_msg("/metrics lacks %s", lines[i]);
        }
    assert_int_equal(promtool(body), 0);
    free(body);
}

static void test_read_routes(void **state)
{
    hx *h = *state;
    char pairing[QS_ID_MAX + 1];
    make_state(h, pairing, sizeof pairing);
    scripted_events_before(h);
    agentd_proc a;
    assert_int_equal(agentd_proc_start(&a, &h->r, EXTRA), 0);
    scripted_events_after(h);
    check_queues(a.port);
    check_agents_calls(a.port, pairing);
    check_recordings(a.port);
    check_service_level(a.port);
    check_metrics(a.port);
    assert_int_equal(agentd_proc_stop(&a), 0);
}

/* Redis gone: the last snapshot serves for 10 x snapshot_ms, then 503. */
static void test_redis_gone(void **state)
{
    hx *h = *state;
    agentd_proc a;
    assert_int_equal(agentd_proc_start(&a, &h->r, EXTRA), 0);
    json_t *o = get(a.port, "/api/v1/queues", 200, NULL);
    json_decref(o);
    redis_proc_stop(&h->r, SIGKILL);
    long st = 0;
    for (int i = 0; i < 100 && st != 503; i++) {
        char *body = NULL;
        st = agentd_http(a.port, "GET", "/api/v1/queues", AGENTD_AUTH, &body, NULL, 0);
        free(body);
        usleep(50 * 1000);
    }
    assert_int_equal(st, 503);
    assert_error(a.port, "/api/v1/agents", 503);
    assert_error(a.port, "/api/v1/recordings/x", 503);
    assert_int_equal(agentd_proc_stop(&a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_routes, hx_setup, hx_teardown),
        cmocka_unit_test_setup_teardown(test_redis_gone, hx_setup, hx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
