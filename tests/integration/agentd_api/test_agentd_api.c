/* test_agentd_api.c - agentd as a child process against a real Redis. */
#include "agentd_proc.h"
#include "ws_client.h"

#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define EVENTS "{ariq}:events"

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* XADDs one entry shaped like queue.lua's; returns its id in id. */
static void xadd(const redis_proc *r, const char *event, const char *callid, char *id,
                 size_t len)
{
    redisReply *rep = redis_proc_cmd(r, "XADD " EVENTS " * event %s ts_ms %llu queue support "
                                        "callid %s agent NONE node node1 url %s callerid 100 "
                                        "position 1 callername Alice",
                                     event, (unsigned long long)time(NULL) * 1000, callid, "");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    if (id)
        snprintf(id, len, "%s", rep->str);
    freeReplyObject(rep);
}

typedef struct want {
    int i;
    size_t n;
} want;

static bool has_n(wsc *c, void *arg)
{
    want *w = arg;
    return wsc_received(c, w->i) >= w->n;
}

static bool settled(wsc *c, void *arg)
{
    want *w = arg;
    return wsc_get_state(c, w->i) != WSC_CONNECTING;
}

/* Message k of conn i: its "id" and "event" (asserts it is JSON). */
static void msg_at(wsc *c, int i, size_t k, char *id, char *ev, size_t len)
{
    char text[4096];
    assert_true(wsc_message(c, i, k, text, sizeof text));
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    snprintf(id, len, "%s", json_string_value(json_object_get(j, "id")) ?: "");
    snprintf(ev, len, "%s", json_string_value(json_object_get(j, "event")) ?: "");
    json_decref(j);
}

static int open_ws(wsc *c, int port, const char *path, const char *auth)
{
    int i = wsc_connect(c, port, path, auth, false);
    want w = {i, 0};
    assert_true(wsc_wait(c, settled, &w, 5000));
    return i;
}

/* ---- config ---------------------------------------------------------------------- */

static int check_conf(const char *text, char *out, size_t len)
{
    char dir[512], conf[600], log[600], bin[512];
    proc_tmpdir("agentd-conf", dir, sizeof dir);
    snprintf(conf, sizeof conf, "%s/bad.conf", dir);
    snprintf(log, sizeof log, "%s/out.log", dir);
    unlink(log);
    FILE *f = fopen(conf, "w");
    fputs(text, f);
    fclose(f);
    proc_build_path("agentd/agentd", bin, sizeof bin);
    const char *argv[] = {bin, "-c", conf, "--check", NULL};
    test_proc p;
    assert_int_equal(proc_start(&p, argv, log), 0);
    int st = proc_stop(&p, 0, 5000);
    f = fopen(log, "r");
    size_t n = f ? fread(out, 1, len - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_config(void **state)
{
    (void)state;
    char out[2048];
    static const struct {
        const char *text, *needle;
    } bad[] = {
        {"[general]\nport = 1\n", "tokens"},
        {"[general]\ntokens = short\n", "bad.conf:2: [general] tokens"},
        {"[general]\ntokens = aaaaaaaaaaaaaaaaaaaa\nport = 0\n", "bad.conf:3:"},
        {"[general]\ntokens = aaaaaaaaaaaaaaaaaaaa\n\ntls_cert = /x.pem\n", "bad.conf:4:"},
        {"[general]\ntokens = aaaaaaaaaaaaaaaaaaaa\nqueue_log_agents = all\n", "bad.conf:3:"},
        {"[general]\ntokens = aaaaaaaaaaaaaaaaaaaa\nredis_url = http://x\n", "bad.conf:3:"},
        {"[general]\ntokens = aaaaaaaaaaaaaaaaaaaa\nlisten = localhost\n", "bad.conf:3:"},
        {"[general]\ntokens = aaaaaaaaaaaaaaaaaaaa\nbogus = 1\n", "bad.conf:3:"},
        {"[general]\ntokens = aaaaaaaaaaaaaaaaaaaa\nheartbeat_s = x\n", "bad.conf:3:"},
        {"[general]\ntokens = aaaaaaaaaaaaaaaaaaaa\n[queue x]\n", "bad.conf:3:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = check_conf(bad[i].text, out, sizeof out);
        if (rc != 2 || !strstr(out, bad[i].needle))
            fail_msg("case %zu: rc=%d out=%s", i, rc, out);
        assert_null(strstr(out, "aaaaaaaaaaaaaaaaaaaa")); /* a token is never echoed */
    }
    assert_int_equal(check_conf("[general]\ntokens = aaaaaaaaaaaaaaaaaaaa\n", out, sizeof out),
                     0);
}

/* ---- one agentd for the API tests ------------------------------------------------ */

typedef struct world {
    redis_proc redis;
    agentd_proc a;
    char qlog[600];
} world;

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    if (redis_proc_start(&w->redis, NULL) != 0)
        return -1;
    char dir[512], extra[800];
    proc_tmpdir("agentd-qlog", dir, sizeof dir);
    snprintf(w->qlog, sizeof w->qlog, "%s/queue_log", dir);
    snprintf(extra, sizeof extra, "queue_log = %s\nheartbeat_s = 1\n", w->qlog);
    if (agentd_proc_start(&w->a, &w->redis, extra) != 0)
        return -1;
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    int st = agentd_proc_stop(&w->a);
    redis_proc_stop(&w->redis, SIGTERM);
    free(w);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "agentd did not exit 0 on SIGTERM (status %d)\n", st);
        return -1;
    }
    return 0;
}

static void test_auth_and_routes(void **state)
{
    world *w = *state;
    int port = w->a.port;
    char hdrs[4096], *body = NULL;
    assert_int_equal(agentd_http(port, "GET", "/api/v1/health", NULL, &body, hdrs, sizeof hdrs),
                     401);
    assert_non_null(strcasestr(hdrs, "WWW-Authenticate: Bearer"));
    assert_non_null(strstr(body, "\"error\""));
    free(body);
    assert_int_equal(agentd_http(port, "GET", "/api/v1/health", "Bearer wrong-token-0123456789",
                                 &body, hdrs, sizeof hdrs), 401);
    assert_non_null(strstr(body, "\"error\""));
    free(body);
    /* auth first: an unknown route answers 401 too */
    assert_int_equal(agentd_http(port, "GET", "/nope", NULL, NULL, NULL, 0), 401);
    assert_int_equal(agentd_http(port, "GET", "/api/v1/health", AGENTD_AUTH, &body, NULL, 0),
                     200);
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(json_object_get(j, "redis"), "ready")));
    assert_true(json_is_true(json_object_get(json_object_get(j, "queue_log"), "enabled")));
    assert_non_null(json_object_get(j, "version"));
    json_decref(j);
    free(body);
    assert_int_equal(agentd_http(port, "GET", "/api/v1/health",
                                 "Bearer other-token-abcdefghij", NULL, NULL, 0), 200);
    assert_int_equal(agentd_http(port, "GET", "/nope", AGENTD_AUTH, &body, NULL, 0), 404);
    assert_non_null(strstr(body, "{\"error\":"));
    free(body);
    assert_int_equal(agentd_http(port, "DELETE", "/api/v1/health", AGENTD_AUTH, &body, hdrs,
                                 sizeof hdrs), 405);
    assert_non_null(strcasestr(hdrs, "Allow: GET"));
    assert_non_null(strstr(body, "{\"error\":"));
    free(body);
    assert_int_equal(agentd_http(port, "GET", "/api/v1/health?x=1", AGENTD_AUTH, &body, NULL, 0),
                     400);
    assert_non_null(strstr(body, "{\"error\":"));
    free(body);
}

static void test_upgrade_auth(void **state)
{
    world *w = *state;
    wsc *c = wsc_new(false);
    int none = open_ws(c, w->a.port, "/api/v1/events", NULL);
    int wrong = open_ws(c, w->a.port, "/api/v1/events", "Bearer wrong-token-0123456789");
    int badfrom = open_ws(c, w->a.port, "/api/v1/events?from=abc", AGENTD_AUTH);
    int nopath = open_ws(c, w->a.port, "/api/v1/nothing", AGENTD_AUTH);
    int right = open_ws(c, w->a.port, "/api/v1/events", AGENTD_AUTH);
    assert_int_equal(wsc_get_state(c, none), WSC_FAILED);
    assert_int_equal(wsc_http_status(c, none), 401);
    assert_int_equal(wsc_get_state(c, wrong), WSC_FAILED);
    assert_int_equal(wsc_http_status(c, wrong), 401);
    assert_int_equal(wsc_get_state(c, badfrom), WSC_FAILED);
    assert_int_equal(wsc_http_status(c, badfrom), 400);
    assert_int_equal(wsc_get_state(c, nopath), WSC_FAILED);
    assert_int_equal(wsc_http_status(c, nopath), 404);
    assert_int_equal(wsc_get_state(c, right), WSC_OPEN);
    wsc_free(c);
}

/* Live, then a reconnect with the last id: exactly the missed ones, then
 * live ones, no duplicate. */
static void test_events_live_and_resume(void **state)
{
    world *w = *state;
    wsc *c = wsc_new(false);
    wsc_keep_messages(c);
    char ids[8][64], id[64], ev[64], path[256];
    int a = open_ws(c, w->a.port, "/api/v1/events", AGENTD_AUTH);
    assert_int_equal(wsc_get_state(c, a), WSC_OPEN);
    const char *evs[] = {"ENTERQUEUE", "CONNECT", "COMPLETECALLER"};
    for (int i = 0; i < 3; i++)
        xadd(&w->redis, evs[i], "live1", ids[i], sizeof ids[i]);
    want wa = {a, 3};
    assert_true(wsc_wait(c, has_n, &wa, 5000));
    for (int i = 0; i < 3; i++) {
        msg_at(c, a, (size_t)i, id, ev, sizeof id);
        assert_string_equal(id, ids[i]);
        assert_string_equal(ev, evs[i]);
    }
    char text[4096];
    assert_true(wsc_message(c, a, 0, text, sizeof text));
    assert_non_null(strstr(text, "\"queue\":\"support\""));
    assert_non_null(strstr(text, "\"callid\":\"live1\""));
    assert_non_null(strstr(text, "\"node\":\"node1\""));
    wsc_close(c, a);
    sleep_ms(100);
    for (int i = 3; i < 6; i++)
        xadd(&w->redis, "ENTERQUEUE", "missed", ids[i], sizeof ids[i]);
    snprintf(path, sizeof path, "/api/v1/events?from=%s", ids[2]);
    int b = open_ws(c, w->a.port, path, AGENTD_AUTH);
    assert_int_equal(wsc_get_state(c, b), WSC_OPEN);
    want wb = {b, 3};
    assert_true(wsc_wait(c, has_n, &wb, 5000));
    for (int i = 6; i < 8; i++)
        xadd(&w->redis, "ABANDON", "after", ids[i], sizeof ids[i]);
    wb.n = 5;
    assert_true(wsc_wait(c, has_n, &wb, 5000));
    sleep_ms(200);
    assert_int_equal(wsc_received(c, b), 5);
    for (int i = 0; i < 5; i++) {
        msg_at(c, b, (size_t)i, id, ev, sizeof id);
        assert_string_equal(id, ids[3 + i]);
    }
    wsc_free(c);
}

/* The seam under load: entries keep coming while clients catch up from the
 * start; each gets every entry once, in order. */
typedef struct writer {
    const redis_proc *r;
    int n;
} writer;

static void *write_many(void *arg)
{
    writer *wr = arg;
    redisContext *rc = redis_proc_connect(wr->r);
    for (int i = 0; i < wr->n; i++) {
        redisReply *rep = redisCommand(rc, "XADD " EVENTS " * event PAUSE ts_ms 1 queue q "
                                           "callid NONE agent a%d node n reason x", i);
        freeReplyObject(rep);
        if (i % 50 == 0)
            sleep_ms(1);
    }
    redisFree(rc);
    return NULL;
}

static void test_events_seam(void **state)
{
    world *w = *state;
    redisReply *len0 = redis_proc_cmd(&w->redis, "XLEN " EVENTS);
    size_t base = (size_t)len0->integer;
    freeReplyObject(len0);
    writer wr = {&w->redis, 3000};
    pthread_t t;
    pthread_create(&t, NULL, write_many, &wr);
    wsc *c = wsc_new(false);
    wsc_keep_messages(c);
    int k[4];
    for (int i = 0; i < 4; i++) {
        sleep_ms(15 * (i + 1));
        k[i] = open_ws(c, w->a.port, "/api/v1/events?from=0", AGENTD_AUTH);
    }
    pthread_join(t, NULL);
    size_t total = base + 3000;
    redisReply *all = redis_proc_cmd(&w->redis, "XRANGE " EVENTS " - +");
    assert_int_equal(all->elements, total);
    for (int i = 0; i < 4; i++) {
        want wk = {k[i], total};
        assert_true(wsc_wait(c, has_n, &wk, 20000));
    }
    sleep_ms(200);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(wsc_received(c, k[i]), total);
        for (size_t m = 0; m < total; m++) {
            char id[64], ev[64];
            msg_at(c, k[i], m, id, ev, sizeof id);
            assert_string_equal(id, all->element[m]->element[0]->str);
        }
    }
    freeReplyObject(all);
    wsc_free(c);
}

/* A from older than what the stream retains: GAP first. */
static void test_events_gap(void **state)
{
    world *w = *state;
    char ids[10][64], path[256], id[64], ev[64];
    for (int i = 0; i < 10; i++)
        xadd(&w->redis, "ENTERQUEUE", "gap", ids[i], sizeof ids[i]);
    freeReplyObject(redis_proc_cmd(&w->redis, "XTRIM " EVENTS " MAXLEN 3"));
    wsc *c = wsc_new(false);
    wsc_keep_messages(c);
    snprintf(path, sizeof path, "/api/v1/events?from=%s", ids[1]);
    int a = open_ws(c, w->a.port, path, AGENTD_AUTH);
    want wa = {a, 4};
    char text[512];
    if (!wsc_wait(c, has_n, &wa, 5000)) {
        for (size_t m = 0; wsc_message(c, a, m, text, sizeof text); m++)
            fprintf(stderr, "got %s\n", text);
        fail_msg("received %zu of 4 (state %d)", wsc_received(c, a), (int)wsc_get_state(c, a));
    }
    assert_true(wsc_message(c, a, 0, text, sizeof text));
    json_t *j = json_loads(text, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "event")), "GAP");
    assert_string_equal(json_string_value(json_object_get(j, "from")), ids[1]);
    assert_string_equal(json_string_value(json_object_get(j, "first")), ids[7]);
    json_decref(j);
    for (int i = 0; i < 3; i++) {
        msg_at(c, a, (size_t)i + 1, id, ev, sizeof id);
        assert_string_equal(id, ids[7 + i]);
    }
    /* a from at the last retained entry: no GAP, nothing until the next */
    snprintf(path, sizeof path, "/api/v1/events?from=%s", ids[9]);
    int b = open_ws(c, w->a.port, path, AGENTD_AUTH);
    xadd(&w->redis, "ENTERQUEUE", "gap2", id, sizeof id);
    want wb = {b, 1};
    assert_true(wsc_wait(c, has_n, &wb, 5000));
    char got[64];
    msg_at(c, b, 0, got, ev, sizeof got);
    assert_string_equal(got, id);
    wsc_free(c);
}

static long file_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    long n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

static bool wait_file(const char *path, const char *needle, long n)
{
    for (int t = 0; t < 5000; t += 20, sleep_ms(20))
        if (file_count(path, needle) >= n)
            return true;
    return false;
}

/* The queue_log gets the lines; SIGHUP after a rename reopens the path. */
static void test_queue_log_and_hup(void **state)
{
    world *w = *state;
    xadd(&w->redis, "ENTERQUEUE", "qlogcall1", NULL, 0);
    assert_true(wait_file(w->qlog, "|qlogcall1|support|NONE|ENTERQUEUE|", 1));
    char rotated[700];
    snprintf(rotated, sizeof rotated, "%s.1", w->qlog);
    assert_int_equal(rename(w->qlog, rotated), 0);
    kill(w->a.proc.pid, SIGHUP);
    for (int t = 0; t < 5000 && agentd_proc_log_count(&w->a, "queue_log reopened") < 1; t += 20)
        sleep_ms(20);
    xadd(&w->redis, "ENTERQUEUE", "qlogcall2", NULL, 0);
    assert_true(wait_file(w->qlog, "|qlogcall2|support|NONE|ENTERQUEUE|", 1));
    assert_int_equal(file_count(w->qlog, "qlogcall1"), 0);
    assert_int_equal(file_count(rotated, "qlogcall2"), 0);
}

/* ---- the janitor ----------------------------------------------------------------- */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *s = calloc(1, 1 << 20);
    fread(s, 1, (1 << 20) - 1, f);
    fclose(f);
    return s;
}

/* A node whose heartbeat lapsed, with a waiting caller: agentd alone reaps it. */
static void test_janitor(void **state)
{
    (void)state;
    redis_proc r;
    assert_int_equal(redis_proc_start(&r, NULL), 0);
    char lua[700];
    snprintf(lua, sizeof lua, "%s/redis-schema/queue.lua", ARIQ_SOURCE_DIR);
    char *src = read_all(lua);
    redisContext *rc = redis_proc_connect(&r);
    redisReply *sha = redisCommand(rc, "SCRIPT LOAD %s", src);
    free(src);
    assert_int_equal(sha->type, REDIS_REPLY_STRING);
    redisReply *rep = redisCommand(rc, "EVALSHA %s 3 {ariq}:seq {ariq}:events {ariq}:call:c1 "
                                       "enter %llu deadnode 1000 c1 chan1 0 100 Alice support 0 16",
                                   sha->str, (unsigned long long)time(NULL) * 1000);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    freeReplyObject(rep);
    freeReplyObject(sha);
    freeReplyObject(redisCommand(rc, "SADD {ariq}:nodes deadnode")); /* no heartbeat key */
    agentd_proc a;
    assert_int_equal(agentd_proc_start(&a, &r, "heartbeat_s = 1\ntime_scale = 0.5\n"), 0);
    bool gone = false;
    for (int t = 0; t < 10000 && !gone; t += 50, sleep_ms(50)) {
        rep = redisCommand(rc, "SISMEMBER {ariq}:nodes deadnode");
        gone = rep->integer == 0;
        freeReplyObject(rep);
    }
    assert_true(gone);
    rep = redisCommand(rc, "EXISTS {ariq}:call:c1");
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    rep = redisCommand(rc, "XREVRANGE {ariq}:events + - COUNT 1");
    assert_int_equal(rep->elements, 1);
    const redisReply *kv = rep->element[0]->element[1];
    assert_string_equal(kv->element[1]->str, "ABANDON");
    freeReplyObject(rep);
    assert_true(agentd_proc_log_count(&a, "node=deadnode lost") >= 1);
    redisFree(rc);
    int st = agentd_proc_stop(&a);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    redis_proc_stop(&r, SIGTERM);
}

/* The server's limits reach agentd's routes as JSON errors and change
 * nothing: a body over max_body is 413 (no command reaches the node), a
 * burst over rate_per_s from one peer gets 429 for the excess. */
static void test_limits(void **state)
{
    (void)state;
    redis_proc r;
    assert_int_equal(redis_proc_start(&r, NULL), 0);
    redisContext *rc = redis_proc_connect(&r);
    freeReplyObject(redisCommand(rc, "HSET {ariq}:agent:1001 node n1 channel ag1 state free"));
    freeReplyObject(redisCommand(rc, "SET {ariq}:node:n1:heartbeat 1"));
    agentd_proc a;
    assert_int_equal(agentd_proc_start(&a, &r, "max_body = 1024\nrate_per_s = 5\n"), 0);
    size_t big = 4096;
    char *body = malloc(big + 32), *reply = NULL;
    snprintf(body, big + 32, "{\"reason\":\"%0*d\"}", (int)big, 0);
    assert_int_equal(agentd_http_send(a.port, "POST", "/api/v1/agents/1001/pause", AGENTD_AUTH,
                                      body, &reply, NULL, 0),
                     413);
    assert_non_null(reply);
    assert_non_null(strstr(reply, "{\"error\":"));
    free(reply);
    free(body);
    redisReply *n = redisCommand(rc, "XLEN {ariq}:node:n1:cmds");
    assert_int_equal(n->integer, 0); /* nothing reached the node */
    freeReplyObject(n);
    int limited = 0, ok = 0;
    for (int i = 0; i < 40; i++) {
        long st = agentd_http(a.port, "GET", "/api/v1/health", AGENTD_AUTH, &reply, NULL, 0);
        if (st == 429) {
            limited++;
            assert_non_null(strstr(reply, "{\"error\":"));
        } else {
            assert_int_equal(st, 200);
            ok++;
        }
        free(reply);
        reply = NULL;
    }
    print_message("limits: 40 requests at once: %d answered, %d refused (429)\n", ok, limited);
    assert_true(ok >= 1 && limited >= 20); /* 5 per s: most of a quick burst is refused */
    redisFree(rc);
    assert_int_equal(agentd_proc_stop(&a), 0);
    redis_proc_stop(&r, SIGTERM);
}

int main(void)
{
    const struct CMUnitTest api[] = {
        cmocka_unit_test(test_auth_and_routes),
        cmocka_unit_test(test_upgrade_auth),
        cmocka_unit_test(test_events_live_and_resume),
        cmocka_unit_test(test_events_gap),
        cmocka_unit_test(test_events_seam),
        cmocka_unit_test(test_queue_log_and_hup),
    };
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_janitor),
        cmocka_unit_test(test_limits),
    };
    int failed = cmocka_run_group_tests_name("agentd_alone", alone, NULL, NULL);
    failed += cmocka_run_group_tests_name("agentd_api", api, setup, teardown);
    return failed;
}
