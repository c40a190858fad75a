/* test_agentd_actions.c - agentd's action routes (agentd/API.md "Actions")
 * against a real Redis, with the test playing the owning node: a thread
 * reads the node's command stream with hiredis, records every command and
 * answers on the reply stream it names, as queued would. */
#include "agentd_proc.h"

#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define NS "{ariq}"
#define CMDS NS ":node:node1:cmds"
#define REPLIES NS ":agentd:ag1:replies"
#define NBATCH 8

/* The fake node: what it was sent, and how it answers. */
typedef struct node {
    pthread_t th;
    const redis_proc *redis;
    volatile int stop;
    bool joined;
    pthread_mutex_t mu;
    json_t *cmds; /* every command received, as {field: value} objects */
    /* commands for calls "b*" are held until NBATCH are, then answered in
     * reverse order; commands for agent "silent" are answered late */
    json_t *held;
    json_t *late;
} node;

typedef struct world {
    redis_proc redis;
    agentd_proc a;
    node n;
} world;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

static const char *f(json_t *c, const char *k)
{
    const char *v = json_string_value(json_object_get(c, k));
    return v ? v : "";
}

static void reply(redisContext *rc, json_t *c, int status, const char *error, json_t *body)
{
    char st[8], *b = body ? json_dumps(body, JSON_COMPACT) : strdup("");
    snprintf(st, sizeof st, "%d", status);
    redisReply *r = redisCommand(rc, "XADD %s MAXLEN ~ 1000 * req %s status %s error %s body %s",
                                 f(c, "reply_to"), f(c, "req"), st, error, b);
    freeReplyObject(r);
    r = redisCommand(rc, "PEXPIRE %s 60000", f(c, "reply_to"));
    freeReplyObject(r);
    free(b);
    json_decref(body);
}

/* The node's answer to one command, as queued would give it. */
static void answer(redisContext *rc, json_t *c)
{
    const char *cmd = f(c, "cmd"), *agent = f(c, "agent"), *callid = f(c, "callid"),
               *name = f(c, "name");
    if (strcmp(cmd, "agent_pause") == 0)
        reply(rc, c, 200, "", json_pack("{s:s,s:s,s:b,s:s}", "agent", agent, "state", "waiting",
                                         "paused", 1, "pause_reason", f(c, "reason")));
    else if (strcmp(cmd, "agent_unpause") == 0 && strcmp(agent, "idle") == 0)
        reply(rc, c, 409, "agent idle is not paused", NULL);
    else if (strcmp(cmd, "agent_unpause") == 0)
        reply(rc, c, 200, "", json_pack("{s:s,s:s,s:b}", "agent", agent, "state", "waiting",
                                         "paused", 0));
    else if (strcmp(cmd, "agent_logoff") == 0)
        reply(rc, c, 200, "", json_pack("{s:s,s:b}", "agent", agent, "logged_off", 1));
    else if (strcmp(cmd, "call_priority") == 0)
        reply(rc, c, 200, "", json_pack("{s:s,s:i,s:[{s:s,s:i}]}", "callid", callid, "priority",
                                         atoi(f(c, "priority")), "positions", "queue",
                                         "support", "position", 1));
    else if (strcmp(cmd, "call_hangup") == 0)
        reply(rc, c, 200, "", json_pack("{s:s,s:b}", "callid", callid, "hungup", 1));
    else if (strcmp(cmd, "rec") == 0)
        reply(rc, c, 200, "", json_pack("{s:s,s:{s:s,s:s}}", "callid", callid, "recording",
                                         "name", "rec-c1", "state", "recording"));
    else if (strcmp(cmd, "rec_delete") == 0)
        reply(rc, c, 200, "", json_pack("{s:s,s:b}", "name", name, "deleted", 1));
    else if (strcmp(cmd, "rec_fetch") == 0) {
        size_t len = strcmp(name, "big") == 0 ? 3000 : 600;
        char *file = malloc(len);
        for (size_t i = 0; i < len; i++)
            file[i] = (char)('a' + i % 26);
        memcpy(file, "RIFF", 4);
        redisReply *r = redisCommand(rc, "SET " NS ":recfile:%s %b PX 60000", f(c, "req"), file,
                                     len);
        freeReplyObject(r);
        free(file);
        reply(rc, c, 200, "", json_pack("{s:s}", "content_type", "audio/x-wav"));
    } else
        reply(rc, c, 500, "unknown command", NULL);
}

/* One command: recorded, then answered now, held or left for later. */
static void on_command(node *n, redisContext *rc, const redisReply *kv)
{
    json_t *c = json_object();
    for (size_t i = 0; i + 1 < kv->elements; i += 2)
        json_object_set_new(c, kv->element[i]->str, json_string(kv->element[i + 1]->str));
    pthread_mutex_lock(&n->mu);
    json_array_append(n->cmds, c);
    pthread_mutex_unlock(&n->mu);
    if (strcmp(f(c, "agent"), "silent") == 0) {
        json_array_append(n->late, c);
    } else if (f(c, "callid")[0] == 'b') {
        json_array_append(n->held, c);
        if (json_array_size(n->held) == NBATCH) {
            for (size_t i = NBATCH; i-- > 0;)
                answer(rc, json_array_get(n->held, i));
            json_array_clear(n->held);
        }
    } else {
        answer(rc, c);
    }
    json_decref(c);
}

static void *node_main(void *arg)
{
    node *n = arg;
    redisContext *rc = redis_proc_connect(n->redis);
    char last[64] = "0-0";
    while (rc && !n->stop) {
        redisReply *r = redisCommand(rc, "XREAD COUNT 16 BLOCK 100 STREAMS " CMDS " %s", last);
        if (!r)
            break;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            redisReply *es = r->element[0]->element[1];
            for (size_t i = 0; i < es->elements; i++) {
                snprintf(last, sizeof last, "%s", es->element[i]->element[0]->str);
                on_command(n, rc, es->element[i]->element[1]);
            }
        }
        freeReplyObject(r);
    }
    if (rc)
        redisFree(rc);
    return NULL;
}

/* Answers the commands left for later (agent "silent"). */
static void answer_late(world *w)
{
    redisContext *rc = redis_proc_connect(&w->redis);
    assert_non_null(rc);
    pthread_mutex_lock(&w->n.mu);
    for (size_t i = 0; i < json_array_size(w->n.late); i++)
        reply(rc, json_array_get(w->n.late, i), 200, "",
              json_pack("{s:s,s:b}", "agent", "silent", "logged_off", 1));
    json_array_clear(w->n.late);
    pthread_mutex_unlock(&w->n.mu);
    redisFree(rc);
}

/* The last command the node received (a new reference), or NULL. */
static json_t *last_cmd(world *w)
{
    pthread_mutex_lock(&w->n.mu);
    size_t n = json_array_size(w->n.cmds);
    json_t *c = n ? json_incref(json_array_get(w->n.cmds, n - 1)) : NULL;
    pthread_mutex_unlock(&w->n.mu);
    return c;
}

static size_t ncmds(world *w)
{
    pthread_mutex_lock(&w->n.mu);
    size_t n = json_array_size(w->n.cmds);
    pthread_mutex_unlock(&w->n.mu);
    return n;
}

static long long redis_int(world *w, const char *fmt, const char *arg)
{
    redisReply *r = redis_proc_cmd(&w->redis, fmt, arg);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    if (redis_proc_start(&w->redis, NULL) != 0)
        return -1;
    redisContext *rc = redis_proc_connect(&w->redis);
    const char *cmds[] = {
        "HSET " NS ":agent:1001 node node1 state free",
        "HSET " NS ":agent:idle node node1 state free",
        "HSET " NS ":agent:silent node node1 state free",
        "HSET " NS ":agent:1002 node node2 state free",
        "HSET " NS ":call:c1 node node1 state waiting",
        "HSET " NS ":recording:r1 node node1 state stored",
        "HSET " NS ":recording:big node node1 state stored",
        "SET " NS ":node:node1:heartbeat 1",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        freeReplyObject(redisCommand(rc, cmds[i]));
    for (int i = 1; i <= NBATCH; i++)
        freeReplyObject(redisCommand(rc, "HSET " NS ":call:b%d node node1", i));
    redisFree(rc);
    if (agentd_proc_start(&w->a, &w->redis,
                          "agentd_id = ag1\naction_timeout_ms = 1500\nmax_download = 2048\n") !=
        0)
        return -1;
    w->n = (node){.redis = &w->redis, .cmds = json_array(), .held = json_array(),
                  .late = json_array()};
    pthread_mutex_init(&w->n.mu, NULL);
    pthread_create(&w->n.th, NULL, node_main, &w->n);
    sleep_ms(300); /* agentd's reply reader finds its start */
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    w->n.stop = 1;
    if (!w->n.joined)
        pthread_join(w->n.th, NULL);
    int st = w->a.proc.pid > 0 ? agentd_proc_stop(&w->a) : 0; /* else asserted */
    redis_proc_stop(&w->redis, SIGTERM);
    json_decref(w->n.cmds);
    json_decref(w->n.held);
    json_decref(w->n.late);
    pthread_mutex_destroy(&w->n.mu);
    free(w);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "agentd did not exit 0 on SIGTERM (status %d)\n", st);
        return -1;
    }
    return 0;
}

/* POSTs (or whatever method) body to path; returns the status and the
 * reply parsed (a new reference, NULL if not JSON) in *out. */
static long call(world *w, const char *method, const char *path, const char *body, json_t **out)
{
    char *resp = NULL;
    long st = agentd_http_send(w->a.port, method, path, AGENTD_AUTH, body, &resp, NULL, 0);
    *out = resp ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    return st;
}

/* The request gets status and an {"error"} holding needle. */
static void expect_error(world *w, const char *method, const char *path, const char *body,
                         long status, const char *needle)
{
    json_t *o;
    long st = call(w, method, path, body, &o);
    const char *e = json_string_value(json_object_get(o, "error"));
    if (st != status || !e || !strstr(e, needle))
        fail_msg("%s %s %s: got %ld %s, want %ld '%s'", method, path, body ? body : "", st,
                 e ? e : "(no error)", status, needle);
    json_decref(o);
}

/* ---- good paths ------------------------------------------------------------------- */

static void test_pause(void **state)
{
    world *w = *state;
    json_t *o;
    long long before = now_ms();
    assert_int_equal(call(w, "POST", "/api/v1/agents/1001/pause", "{\"reason\":\"lunch\"}", &o),
                     200);
    assert_string_equal(f(o, "agent"), "1001");
    assert_true(json_is_true(json_object_get(o, "paused")));
    assert_string_equal(f(o, "pause_reason"), "lunch");
    json_decref(o);
    json_t *c = last_cmd(w);
    assert_non_null(c);
    assert_string_equal(f(c, "cmd"), "agent_pause");
    assert_string_equal(f(c, "agent"), "1001");
    assert_string_equal(f(c, "reason"), "lunch");
    assert_string_equal(f(c, "reply_to"), REPLIES);
    assert_memory_equal(f(c, "req"), "ag1-", 4);
    long long dl = atoll(f(c, "deadline_ms"));
    assert_true(dl >= before + 1500 && dl <= now_ms() + 1500);
    json_decref(c);
    /* no body at all: an empty reason */
    assert_int_equal(call(w, "POST", "/api/v1/agents/1001/pause", NULL, &o), 200);
    json_decref(o);
    c = last_cmd(w);
    assert_string_equal(f(c, "reason"), "");
    assert_non_null(json_object_get(c, "reason"));
    json_decref(c);
}

static void test_agent_actions(void **state)
{
    world *w = *state;
    json_t *o;
    assert_int_equal(call(w, "POST", "/api/v1/agents/1001/unpause", "{}", &o), 200);
    assert_true(json_is_false(json_object_get(o, "paused")));
    json_decref(o);
    json_t *c = last_cmd(w);
    assert_string_equal(f(c, "cmd"), "agent_unpause");
    json_decref(c);
    expect_error(w, "POST", "/api/v1/agents/idle/unpause", "{}", 409, "not paused");
    assert_int_equal(call(w, "POST", "/api/v1/agents/1001/logoff", NULL, &o), 200);
    assert_true(json_is_true(json_object_get(o, "logged_off")));
    json_decref(o);
    c = last_cmd(w);
    assert_string_equal(f(c, "cmd"), "agent_logoff");
    assert_string_equal(f(c, "agent"), "1001");
    json_decref(c);
}

static void test_call_actions(void **state)
{
    world *w = *state;
    json_t *o;
    assert_int_equal(call(w, "POST", "/api/v1/calls/c1/priority", "{\"priority\": 7}", &o), 200);
    assert_string_equal(f(o, "callid"), "c1");
    assert_int_equal(json_integer_value(json_object_get(o, "priority")), 7);
    assert_int_equal(json_array_size(json_object_get(o, "positions")), 1);
    json_decref(o);
    json_t *c = last_cmd(w);
    assert_string_equal(f(c, "cmd"), "call_priority");
    assert_string_equal(f(c, "callid"), "c1");
    assert_string_equal(f(c, "priority"), "7");
    json_decref(c);

    assert_int_equal(call(w, "POST", "/api/v1/calls/c1/hangup", "{}", &o), 200);
    assert_true(json_is_true(json_object_get(o, "hungup")));
    json_decref(o);
    c = last_cmd(w);
    assert_string_equal(f(c, "cmd"), "call_hangup");
    json_decref(c);

    assert_int_equal(call(w, "POST", "/api/v1/calls/c1/recording", "{\"action\":\"start\"}", &o),
                     200);
    assert_string_equal(f(json_object_get(o, "recording"), "state"), "recording");
    json_decref(o);
    c = last_cmd(w);
    assert_string_equal(f(c, "cmd"), "rec");
    assert_string_equal(f(c, "action"), "start");
    json_decref(c);
}

static void test_recordings(void **state)
{
    world *w = *state;
    json_t *o;
    assert_int_equal(call(w, "DELETE", "/api/v1/recordings/r1", NULL, &o), 200);
    assert_true(json_is_true(json_object_get(o, "deleted")));
    json_decref(o);
    json_t *c = last_cmd(w);
    assert_string_equal(f(c, "cmd"), "rec_delete");
    assert_string_equal(f(c, "name"), "r1");
    json_decref(c);

    char hdrs[4096], *body = NULL;
    assert_int_equal(agentd_http(w->a.port, "GET", "/api/v1/recordings/r1/file", AGENTD_AUTH,
                                 &body, hdrs, sizeof hdrs),
                     200);
    assert_non_null(strcasestr(hdrs, "Content-Type: audio/x-wav"));
    assert_int_equal(strlen(body), 600);
    assert_memory_equal(body, "RIFFefghij", 10);
    free(body);
    c = last_cmd(w);
    assert_string_equal(f(c, "cmd"), "rec_fetch");
    char key[200];
    snprintf(key, sizeof key, NS ":recfile:%s", f(c, "req"));
    json_decref(c);
    sleep_ms(100); /* the DEL follows the GET */
    assert_int_equal(redis_int(w, "EXISTS %s", key), 0);

    expect_error(w, "GET", "/api/v1/recordings/big/file", NULL, 413, "max_download");
    c = last_cmd(w);
    snprintf(key, sizeof key, NS ":recfile:%s", f(c, "req"));
    json_decref(c);
    sleep_ms(100);
    assert_int_equal(redis_int(w, "EXISTS %s", key), 0);
}

/* ---- refusals ---------------------------------------------------------------------- */

static void test_bad_input(void **state)
{
    world *w = *state;
    size_t n0 = ncmds(w);
    long long xlen0 = redis_int(w, "XLEN %s", CMDS);
    expect_error(w, "POST", "/api/v1/agents/1001/pause", "{\"reason\":", 400, "malformed JSON");
    expect_error(w, "POST", "/api/v1/agents/1001/pause", "[1]", 400, "JSON object");
    expect_error(w, "POST", "/api/v1/agents/1001/pause", "{\"why\":\"x\"}", 400,
                 "unknown field 'why'");
    expect_error(w, "POST", "/api/v1/agents/1001/pause", "{\"reason\":\"a|b\"}", 400, "reason");
    expect_error(w, "POST", "/api/v1/agents/1001/pause", "{\"reason\":\"a\\nb\"}", 400, "reason");
    expect_error(w, "POST", "/api/v1/agents/1001/pause", "{\"reason\":5}", 400, "reason");
    char longr[200];
    snprintf(longr, sizeof longr, "{\"reason\":\"%0129d\"}", 0);
    expect_error(w, "POST", "/api/v1/agents/1001/pause", longr, 400, "128");
    expect_error(w, "POST", "/api/v1/agents/1001/unpause", "{\"reason\":\"x\"}", 400,
                 "unknown field 'reason'");
    expect_error(w, "POST", "/api/v1/calls/c1/priority", "{\"priority\":1001}", 400, "priority");
    expect_error(w, "POST", "/api/v1/calls/c1/priority", "{\"priority\":-1}", 400, "priority");
    expect_error(w, "POST", "/api/v1/calls/c1/priority", "{\"priority\":\"5\"}", 400,
                 "priority");
    expect_error(w, "POST", "/api/v1/calls/c1/priority", "{\"priority\":5.5}", 400, "priority");
    expect_error(w, "POST", "/api/v1/calls/c1/priority", "{}", 400, "'priority' is required");
    expect_error(w, "POST", "/api/v1/calls/c1/recording", "{\"action\":\"rewind\"}", 400,
                 "action");
    expect_error(w, "POST", "/api/v1/calls/c1/hangup", "{\"now\":true}", 400, "unknown field");
    expect_error(w, "POST", "/api/v1/calls/c1/hangup", "{\"a\":1,\"a\":2}", 400, "malformed");
    expect_error(w, "POST", "/api/v1/agents/a:b/pause", "{}", 400, "bad agent id");
    expect_error(w, "DELETE", "/api/v1/recordings/r1", "{\"x\":1}", 400, "unknown field");
    expect_error(w, "POST", "/api/v1/calls/c1/hangup?force=1", "{}", 400, "query");
    expect_error(w, "GET", "/api/v1/calls/c1/hangup", NULL, 405, "not allowed");
    /* nothing reached the node */
    assert_int_equal(redis_int(w, "XLEN %s", CMDS), xlen0);
    assert_int_equal(ncmds(w), n0);

    char *body = NULL;
    assert_int_equal(agentd_http_send(w->a.port, "POST", "/api/v1/calls/c1/hangup", NULL, "{}",
                                      &body, NULL, 0),
                     401);
    free(body);
    assert_int_equal(agentd_http_send(w->a.port, "POST", "/api/v1/calls/c1/hangup",
                                      "Bearer wrong-token-0123456789", "{}", &body, NULL, 0),
                     401);
    free(body);
    assert_int_equal(redis_int(w, "XLEN %s", CMDS), xlen0);
}

static void test_not_found_and_unavailable(void **state)
{
    world *w = *state;
    long long xlen0 = redis_int(w, "XLEN %s", CMDS);
    expect_error(w, "POST", "/api/v1/agents/9999/pause", "{}", 404, "no such agent '9999'");
    expect_error(w, "POST", "/api/v1/calls/nope/hangup", "{}", 404, "no such call 'nope'");
    expect_error(w, "DELETE", "/api/v1/recordings/nope", NULL, 404, "no such recording");
    expect_error(w, "GET", "/api/v1/recordings/nope/file", NULL, 404, "no such recording");
    expect_error(w, "POST", "/api/v1/agents/1002/pause", "{}", 503,
                 "node node2 is not available");
    assert_int_equal(redis_int(w, "XLEN %s", CMDS), xlen0);
    assert_int_equal(redis_int(w, "EXISTS %s", NS ":node:node2:cmds"), 0);
}

/* No answer in action_timeout_ms: 504; the late answer is dropped and the
 * next request is answered as usual. */
static void test_timeout(void **state)
{
    world *w = *state;
    long long t0 = now_ms();
    expect_error(w, "POST", "/api/v1/agents/silent/logoff", "{}", 504, "did not answer");
    long long took = now_ms() - t0;
    assert_true(took >= 1400 && took < 3000);
    answer_late(w);
    sleep_ms(200);
    json_t *o;
    assert_int_equal(call(w, "POST", "/api/v1/agents/1001/unpause", "{}", &o), 200);
    assert_string_equal(f(o, "agent"), "1001");
    json_decref(o);
    assert_true(agentd_proc_log_count(&w->a, "dropped") >= 1);
}

typedef struct one {
    world *w;
    int i;
    long status;
    char callid[32];
} one;

static void *hangup_one(void *arg)
{
    one *x = arg;
    char path[100], *resp = NULL;
    snprintf(path, sizeof path, "/api/v1/calls/b%d/hangup", x->i);
    x->status = agentd_http_send(x->w->a.port, "POST", path, AGENTD_AUTH, "{}", &resp, NULL, 0);
    json_t *o = resp ? json_loads(resp, 0, NULL) : NULL;
    snprintf(x->callid, sizeof x->callid, "%s", f(o, "callid"));
    json_decref(o);
    free(resp);
    return NULL;
}

/* NBATCH requests pending at once, answered in reverse order: each gets
 * its own answer. */
static void test_concurrent(void **state)
{
    world *w = *state;
    pthread_t th[NBATCH];
    one x[NBATCH];
    for (int i = 0; i < NBATCH; i++) {
        x[i] = (one){.w = w, .i = i + 1};
        pthread_create(&th[i], NULL, hangup_one, &x[i]);
    }
    for (int i = 0; i < NBATCH; i++) {
        char want[32];
        pthread_join(th[i], NULL);
        snprintf(want, sizeof want, "b%d", i + 1);
        assert_int_equal(x[i].status, 200);
        assert_string_equal(x[i].callid, want);
    }
}

/* Redis away: 503, and agentd still answers health. */
static void test_redis_down(void **state)
{
    world *w = *state;
    w->n.stop = 1;
    pthread_join(w->n.th, NULL);
    w->n.joined = true;
    redis_proc_stop(&w->redis, SIGKILL);
    sleep_ms(300);
    expect_error(w, "POST", "/api/v1/calls/c1/hangup", "{}", 503, "Redis");
    char *body = NULL;
    assert_int_equal(agentd_http(w->a.port, "GET", "/api/v1/health", AGENTD_AUTH, &body, NULL,
                                 0),
                     503);
    free(body);
}

static void *logoff_silent(void *arg)
{
    one *x = arg;
    char *resp = NULL;
    x->status = agentd_http_send(x->w->a.port, "POST", "/api/v1/agents/silent/logoff",
                                 AGENTD_AUTH, "{}", &resp, NULL, 0);
    free(resp);
    return NULL;
}

/* SIGTERM while requests wait for their node: agentd exits 0 (under ASan:
 * nothing leaked), the clients see the connection close. */
static void test_stop_with_pending(void **state)
{
    world *w = *state;
    pthread_t th[3];
    one x[3];
    for (int i = 0; i < 3; i++) {
        x[i] = (one){.w = w, .i = i};
        pthread_create(&th[i], NULL, logoff_silent, &x[i]);
    }
    for (int i = 0; i < 50 && ncmds(w) < 3; i++)
        sleep_ms(20);
    assert_int_equal(ncmds(w), 3);
    int st = agentd_proc_stop(&w->a);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_not_equal(x[i].status, 200);
    }
}

int main(void)
{
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_pause),
        cmocka_unit_test(test_agent_actions),
        cmocka_unit_test(test_call_actions),
        cmocka_unit_test(test_recordings),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_not_found_and_unavailable),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_redis_down),
    };
    const struct CMUnitTest stop[] = {
        cmocka_unit_test(test_stop_with_pending),
    };
    int failed = cmocka_run_group_tests_name("agentd_actions", t, setup, teardown);
    failed += cmocka_run_group_tests_name("agentd_actions_stop", stop, setup, teardown);
    return failed;
}
