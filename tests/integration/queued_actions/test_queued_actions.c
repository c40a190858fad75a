/* queued's side of agentd's actions (agentd/API.md "The command protocol"):
 * the test plays agentd, XADDing commands to {ariq}:node:node1:cmds and
 * reading the answers on its reply stream, against the real queued, the
 * simulator and a real redis-server. Asserted on the replies, on what Redis
 * holds (records, events) and on the simulator's oracle (channels hung up,
 * recordings). Also: the queue registry and the node's stats hash. Time
 * runs 100x fast (scale 0.01). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "queued_proc.h"
#include "redis_proc.h"
#include "sim_proc.h"

#define SCALE    0.01
#define WAIT_MS  5000
#define CMDS     "{ariq}:node:node1:cmds"
#define REPLIES  "{ariq}:agentd:t1:replies"

static queued_env *F;
static int nreq;

static int setup(void **state)
{
    queued_env *f = calloc(1, sizeof *f);
    if (!f || queued_env_start(f, SCALE, "sweep_ms = 50\n",
                               "[queue support]\nannounce_frequency = 0\n"
                               "[queue sales]\nannounce_frequency = 0\n") != 0) {
        free(f);
        return -1;
    }
    F = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    queued_env *f = *state;
    int st = queued_env_stop(f);
    free(f);
    return (WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : -1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- Redis ------------------------------------------------------------------ */

static redisReply *rcmd(const char *fmt, ...)
{
    redisContext *rc = redis_proc_connect(&F->redis);
    assert_non_null(rc);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    redisFree(rc);
    assert_non_null(r);
    return r;
}

static long long rint_(const char *fmt, const char *arg)
{
    redisReply *r = rcmd(fmt, arg);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer
                  : r->type == REDIS_REPLY_STRING ? atoll(r->str)
                                                 : -1;
    freeReplyObject(r);
    return v;
}

/* HGET into buf ("" when missing). */
static const char *hget(const char *key, const char *f, char *buf, size_t len)
{
    redisReply *r = rcmd("HGET %s %s", key, f);
    snprintf(buf, len, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return buf;
}

static bool wait_hash(const char *key, const char *f, const char *want)
{
    char b[128];
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (strcmp(hget(key, f, b, sizeof b), want) == 0)
            return true;
    return false;
}

/* Events `type` in the stream whose field f is v (f NULL: any). */
static int events_of(const char *type, const char *f, const char *v)
{
    redisReply *r = rcmd("XRANGE {ariq}:events - +");
    int n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *kv = r->element[i]->element[1];
        bool is = false, has = f == NULL;
        for (size_t k = 0; k + 1 < kv->elements; k += 2) {
            is |= !strcmp(kv->element[k]->str, "event") && !strcmp(kv->element[k + 1]->str, type);
            has |= f && !strcmp(kv->element[k]->str, f) && !strcmp(kv->element[k + 1]->str, v);
        }
        n += is && has;
    }
    freeReplyObject(r);
    return n;
}

static bool wait_event(const char *type, const char *f, const char *v)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (events_of(type, f, v) > 0)
            return true;
    return false;
}

/* ---- playing agentd ------------------------------------------------------------ */

typedef struct answer {
    int status; /* 0: no answer */
    char error[512];
    json_t *body;
} answer;

/* The answer to req on REPLIES within ms, or status 0. */
static answer wait_answer(const char *req, int ms)
{
    answer a = {0};
    for (int t = 0; t < ms && !a.status; t += 20, sleep_ms(20)) {
        redisReply *r = rcmd("XRANGE %s - +", REPLIES);
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            redisReply *kv = r->element[i]->element[1];
            const char *rq = NULL, *st = NULL, *er = "", *body = NULL;
            for (size_t k = 0; k + 1 < kv->elements; k += 2) {
                const char *n = kv->element[k]->str, *v = kv->element[k + 1]->str;
                if (!strcmp(n, "req"))
                    rq = v;
                else if (!strcmp(n, "status"))
                    st = v;
                else if (!strcmp(n, "error"))
                    er = v;
                else if (!strcmp(n, "body"))
                    body = v;
            }
            if (rq && !strcmp(rq, req)) {
                assert_non_null(st);
                assert_non_null(body);
                a.status = atoi(st);
                snprintf(a.error, sizeof a.error, "%s", er);
                a.body = json_loads(body, 0, NULL);
                assert_non_null(a.body);
            }
        }
        freeReplyObject(r);
    }
    return a;
}

/* Sends cmd with name/value pairs (NULL-ended), deadline `ahead_ms` from
 * now (negative: past), and returns the request id in req. */
static void send_cmd_at(char *req, size_t len, const char *cmd, long long ahead_ms,
                        const char *reply_to, va_list ap)
{
    const char *argv[40];
    int n = 0;
    char dl[32];
    snprintf(req, len, "t1-%d", ++nreq);
    snprintf(dl, sizeof dl, "%lld", (long long)clock_wall_ms() + ahead_ms);
    argv[n++] = "XADD";
    argv[n++] = CMDS;
    argv[n++] = "*";
    argv[n++] = "cmd";
    argv[n++] = cmd;
    argv[n++] = "req";
    argv[n++] = req;
    if (reply_to) {
        argv[n++] = "reply_to";
        argv[n++] = reply_to;
    }
    argv[n++] = "deadline_ms";
    argv[n++] = dl;
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL && n < 38)
        argv[n++] = s;
    redisContext *rc = redis_proc_connect(&F->redis);
    assert_non_null(rc);
    redisReply *r = redisCommandArgv(rc, n, argv, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    redisFree(rc);
}

/* Sends and waits for the answer (the body is the caller's: json_decref). */
static answer act(const char *cmd, ...)
{
    char req[32];
    va_list ap;
    va_start(ap, cmd);
    send_cmd_at(req, sizeof req, cmd, 5000, REPLIES, ap);
    va_end(ap);
    answer a = wait_answer(req, WAIT_MS);
    if (!a.status)
        fail_msg("no answer to %s %s", cmd, req);
    return a;
}

static void expect(answer a, int status)
{
    if (a.status != status)
        fail_msg("status %d (want %d): %s", a.status, status, a.error);
    json_decref(a.body);
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* ---- the simulator --------------------------------------------------------------- */

static void place(const char *args, const char *num, char *id, size_t len)
{
    json_t *c = sim_place_call(&F->sim, 0, "queue", args, num, id, len);
    assert_non_null(c);
    json_decref(c);
}

static bool alive(const char *id)
{
    json_t *c = sim_channel(&F->sim, 0, id);
    bool a = c && json_is_true(json_object_get(c, "alive"));
    json_decref(c);
    return a;
}

static bool wait_gone(const char *id)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (!alive(id))
            return true;
    return false;
}

/* The last recording made in the sim (or NULL), new reference. */
static json_t *last_recording(void)
{
    json_t *all = sim_ctl(&F->sim, 0, "GET", "/sim/recordings", NULL, NULL);
    json_t *r = json_array_size(all) ? json_incref(json_array_get(all, json_array_size(all) - 1))
                                     : NULL;
    json_decref(all);
    return r;
}

static bool wait_rec(const char *field, const char *want, bool flag)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10)) {
        json_t *r = last_recording();
        bool ok = r && (want ? !strcmp(jstr(r, field), want)
                             : json_is_true(json_object_get(r, field)) == flag);
        json_decref(r);
        if (ok)
            return true;
    }
    return false;
}

/* An agent 1001 logged in (free) in support. */
static void agent_in(char *ag, size_t len)
{
    place("agent,support,1001", "1001", ag, len);
    assert_true(wait_hash("{ariq}:agent:1001", "state", "free"));
}

/* A caller connected to agent ag. */
static void caller_talking(const char *ag, char *c, size_t len)
{
    place("caller,support", "5550001", c, len);
    assert_true(sim_wait_connected(&F->sim, 0, c, ag, true, WAIT_MS));
    char key[200];
    snprintf(key, sizeof key, "{ariq}:call:%s", c);
    assert_true(wait_hash(key, "state", "bridged"));
}

/* ---- the tests ------------------------------------------------------------------------ */

/* Malformed, unknown, not ours, past the deadline: a clear 400 / 404 (or,
 * past its deadline or without reply_to, nothing), and nothing changes:
 * the next good command is answered. Also: the node registered its queues
 * and writes its stats. */
static void test_bad_commands(void **state)
{
    (void)state;
    answer a = act("fly", "agent", "1001", NULL);
    assert_int_equal(a.status, 400);
    assert_non_null(strstr(a.error, "unknown cmd"));
    json_decref(a.body);
    a = act("agent_pause", NULL); /* no agent */
    assert_int_equal(a.status, 400);
    assert_non_null(strstr(a.error, "agent"));
    json_decref(a.body);
    expect(act("agent_pause", "agent", "bad id!", NULL), 400);
    expect(act("agent_pause", "agent", "1001", "reason", "a|b", NULL), 400);
    expect(act("call_priority", "callid", "c1", "priority", "1001", NULL), 400);
    expect(act("call_priority", "callid", "c1", "priority", "x", NULL), 400);
    expect(act("rec", "callid", "c1", "action", "explode", NULL), 400);
    expect(act("rec_delete", NULL), 400);
    a = act("agent_pause", "agent", "1001", NULL); /* nobody logged in */
    assert_int_equal(a.status, 404);
    assert_non_null(strstr(a.error, "1001"));
    json_decref(a.body);
    expect(act("agent_logoff", "agent", "1001", NULL), 404);
    expect(act("call_hangup", "callid", "nosuchcall", NULL), 404);
    expect(act("rec_fetch", "name", "nosuchrec", NULL), 404);

    /* past its deadline: dropped, no answer */
    {
        const char *argv[] = {"XADD", CMDS, "*", "cmd", "agent_pause", "req", "t1-late",
                              "reply_to", REPLIES, "deadline_ms", "1000", "agent", "1001"};
        redisContext *rc = redis_proc_connect(&F->redis);
        redisReply *r = redisCommandArgv(rc, 13, argv, NULL);
        freeReplyObject(r);
        /* no reply_to, and one outside our namespace: only logged */
        const char *argv2[] = {"XADD", CMDS, "*", "cmd", "agent_pause", "req", "t1-norep",
                               "deadline_ms", "99999999999999", "agent", "1001"};
        r = redisCommandArgv(rc, 11, argv2, NULL);
        freeReplyObject(r);
        const char *argv3[] = {"XADD", CMDS, "*", "cmd", "agent_pause", "req", "t1-foreign",
                               "reply_to", "elsewhere", "deadline_ms", "99999999999999",
                               "agent", "1001"};
        r = redisCommandArgv(rc, 13, argv3, NULL);
        freeReplyObject(r);
        redisFree(rc);
    }
    expect(act("call_hangup", "callid", "nosuchcall", NULL), 404); /* after them */
    answer late = wait_answer("t1-late", 200);
    assert_int_equal(late.status, 0);
    assert_int_equal(wait_answer("t1-norep", 10).status, 0);
    assert_int_equal(rint_("EXISTS %s", "elsewhere"), 0);
    assert_true(queued_proc_log_count(&F->q, "past its deadline") >= 1);
    assert_int_equal(rint_("PTTL %s", REPLIES) > 0, 1); /* the reply stream expires */

    /* the queue registry and the node's stats */
    assert_int_equal(rint_("SISMEMBER {ariq}:queues %s", "support"), 1);
    assert_int_equal(rint_("SISMEMBER {ariq}:queues %s", "sales"), 1);
    char b[400];
    for (int t = 0; t < WAIT_MS && !*hget("{ariq}:node:node1:stats", "redis_rtt_ms_count", b,
                                           sizeof b);
         t += 20)
        sleep_ms(20);
    assert_true(atoll(b) > 0);
    hget("{ariq}:node:node1:stats", "redis_rtt_ms_buckets", b, sizeof b);
    assert_true(strncmp(b, "1:", 2) == 0);
    assert_non_null(strstr(b, ",+Inf:"));
    hget("{ariq}:node:node1:stats", "ari_rtt_ms_buckets", b, sizeof b);
    assert_non_null(strstr(b, ",2500:"));
    hget("{ariq}:node:node1:stats", "ari_rtt_ms_count", b, sizeof b);
    assert_true(atoll(b) > 0); /* at least the answers and the filter */
    long long ttl = rint_("PTTL %s", "{ariq}:node:node1:stats");
    assert_true(ttl > 0);
}

/* Pause (with a reason, again with another), unpause, unpause again (409);
 * then with a caller talking, logoff: the agent's channel is hung up,
 * AGENTLOGOFF reason agentd, the call ends COMPLETEAGENT, the caller hung
 * up. */
static void test_agent_pause_logoff(void **state)
{
    (void)state;
    char ag[128], c[128];
    agent_in(ag, sizeof ag);
    answer a = act("agent_pause", "agent", "1001", "reason", "lunch", NULL);
    assert_int_equal(a.status, 200);
    assert_string_equal(jstr(a.body, "agent"), "1001");
    assert_string_equal(jstr(a.body, "state"), "paused");
    assert_true(json_is_true(json_object_get(a.body, "paused")));
    assert_string_equal(jstr(a.body, "pause_reason"), "lunch");
    json_decref(a.body);
    char b[64];
    assert_string_equal(hget("{ariq}:agent:1001", "state", b, sizeof b), "paused");
    assert_int_equal(rint_("ZCARD %s", "{ariq}:queue:support:agents"), 0);
    assert_true(wait_event("PAUSE", "reason", "lunch"));
    expect(act("agent_pause", "agent", "1001", "reason", "meeting", NULL), 200);
    assert_true(wait_event("PAUSE", "reason", "meeting"));

    a = act("agent_unpause", "agent", "1001", NULL);
    assert_int_equal(a.status, 200);
    assert_string_equal(jstr(a.body, "state"), "free");
    assert_true(json_is_false(json_object_get(a.body, "paused")));
    json_decref(a.body);
    assert_int_equal(rint_("ZCARD %s", "{ariq}:queue:support:agents"), 1);
    a = act("agent_unpause", "agent", "1001", NULL);
    assert_int_equal(a.status, 409);
    json_decref(a.body);

    caller_talking(ag, c, sizeof c);
    a = act("agent_logoff", "agent", "1001", NULL);
    assert_int_equal(a.status, 200);
    assert_string_equal(jstr(a.body, "agent"), "1001");
    assert_true(json_is_true(json_object_get(a.body, "logged_off")));
    json_decref(a.body);
    assert_true(wait_gone(ag));
    assert_true(wait_gone(c));
    assert_true(wait_event("AGENTLOGOFF", "reason", "agentd"));
    assert_true(wait_event("COMPLETEAGENT", "callid", c));
    for (int t = 0; t < WAIT_MS && rint_("EXISTS %s", "{ariq}:agent:1001"); t += 10)
        sleep_ms(10);
    assert_int_equal(rint_("EXISTS %s", "{ariq}:agent:1001"), 0);
    expect(act("agent_logoff", "agent", "1001", NULL), 404);
}

/* Two callers waiting: the later one raised to priority 10 goes first
 * (PRIORITY event, Redis scores, the node's own copy used when it
 * restores); the first hung up by command: ABANDON. Priority of a talking
 * call: 409. */
static void test_priority_and_hangup(void **state)
{
    (void)state;
    char c1[128], c2[128], ag[128], k1[200], k2[200];
    place("caller,support", "5551001", c1, sizeof c1);
    place("caller,support", "5551002", c2, sizeof c2);
    snprintf(k1, sizeof k1, "{ariq}:call:%s", c1);
    snprintf(k2, sizeof k2, "{ariq}:call:%s", c2);
    assert_true(wait_hash(k1, "state", "waiting"));
    assert_true(wait_hash(k2, "state", "waiting"));
    answer a = act("call_priority", "callid", c2, "priority", "10", NULL);
    assert_int_equal(a.status, 200);
    assert_string_equal(jstr(a.body, "callid"), c2);
    assert_int_equal(json_integer_value(json_object_get(a.body, "priority")), 10);
    json_t *pos = json_object_get(a.body, "positions");
    assert_int_equal(json_array_size(pos), 1);
    assert_string_equal(jstr(json_array_get(pos, 0), "queue"), "support");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(pos, 0), "position")), 1);
    json_decref(a.body);
    char b[64];
    assert_string_equal(hget(k2, "priority", b, sizeof b), "10");
    redisReply *r = rcmd("ZRANGE {ariq}:queue:support:callers 0 -1");
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[0]->str, c2);
    freeReplyObject(r);
    assert_true(wait_event("PRIORITY", "callid", c2));
    assert_int_equal(events_of("PRIORITY", "old_priority", "0"), 1);

    a = act("call_hangup", "callid", c1, NULL);
    assert_int_equal(a.status, 200);
    assert_true(json_is_true(json_object_get(a.body, "hungup")));
    json_decref(a.body);
    assert_true(wait_gone(c1));
    assert_true(wait_event("ABANDON", "callid", c1));
    assert_true(alive(c2));

    place("agent,support,1001", "1001", ag, sizeof ag);
    assert_true(sim_wait_connected(&F->sim, 0, c2, ag, true, WAIT_MS));
    assert_true(wait_hash(k2, "state", "bridged"));
    expect(act("call_priority", "callid", c2, "priority", "3", NULL), 409);
    expect(act("call_hangup", "callid", c2, NULL), 200);
    assert_true(wait_gone(c2));
    assert_true(wait_event("COMPLETECALLER", "callid", c2));
}

/* Recording by command: start, start again (409), pause, unpause, delete
 * while recording (409), stop; fetch (the file's bytes in Redis); delete
 * (Asterisk's file and the Redis record gone); fetch again 404. */
static void test_recording(void **state)
{
    (void)state;
    char ag[128], c[128];
    expect(act("rec", "callid", "nosuchcall", "action", "start", NULL), 404);
    agent_in(ag, sizeof ag);
    caller_talking(ag, c, sizeof c);
    expect(act("rec", "callid", c, "action", "stop", NULL), 409); /* nothing recording */
    answer a = act("rec", "callid", c, "action", "start", NULL);
    assert_int_equal(a.status, 200);
    json_t *rec = json_object_get(a.body, "recording");
    char name[128], key[200];
    snprintf(name, sizeof name, "%s", jstr(rec, "name"));
    assert_string_equal(jstr(rec, "state"), "recording");
    json_decref(a.body);
    assert_true(wait_rec("state", "recording", false));
    snprintf(key, sizeof key, "{ariq}:recording:%s", name);
    assert_true(wait_hash(key, "state", "recording"));
    assert_true(rint_("ZSCORE {ariq}:recordings %s", name) > 0);
    expect(act("rec", "callid", c, "action", "start", NULL), 409);

    expect(act("rec", "callid", c, "action", "pause", NULL), 200);
    assert_true(wait_rec("state", "paused", false));
    expect(act("rec", "callid", c, "action", "unpause", NULL), 200);
    assert_true(wait_rec("state", "recording", false));
    expect(act("rec_delete", "name", name, NULL), 409);
    expect(act("rec_fetch", "name", name, NULL), 409);
    a = act("rec", "callid", c, "action", "stop", NULL);
    assert_int_equal(a.status, 200);
    assert_string_equal(jstr(json_object_get(a.body, "recording"), "state"), "stored");
    json_decref(a.body);
    assert_true(wait_rec("stored", NULL, true));
    assert_true(wait_hash(key, "state", "stored"));

    a = act("rec_fetch", "name", name, NULL);
    assert_int_equal(a.status, 200);
    assert_string_equal(jstr(a.body, "content_type"), "audio/wav");
    assert_int_equal(json_integer_value(json_object_get(a.body, "bytes")), 44);
    char fk[200];
    snprintf(fk, sizeof fk, "%s", jstr(a.body, "key"));
    assert_non_null(strstr(fk, "{ariq}:recfile:t1-"));
    json_decref(a.body);
    redisReply *r = rcmd("GET %s", fk);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 44);
    assert_memory_equal(r->str, "RIFF", 4);
    freeReplyObject(r);
    assert_true(rint_("PTTL %s", fk) > 0);

    a = act("rec_delete", "name", name, NULL);
    assert_int_equal(a.status, 200);
    assert_true(json_is_true(json_object_get(a.body, "deleted")));
    json_decref(a.body);
    assert_true(wait_rec("deleted", NULL, true));
    assert_int_equal(rint_("EXISTS %s", key), 0);
    assert_int_equal(rint_("ZSCORE {ariq}:recordings %s", name), -1);
    expect(act("rec_fetch", "name", name, NULL), 404);
    expect(act("rec_delete", "name", name, NULL), 404);
    assert_int_equal(sim_hangup_call(&F->sim, 0, c, 16), 204);
    assert_true(wait_gone(c));
    expect(act("rec", "callid", c, "action", "start", NULL), 404);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_pause_logoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priority_and_hangup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recording, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
