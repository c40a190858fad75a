/* Bad input at every layer:
 *   - queue.lua called directly (EVALSHA) with bad keys or arguments for
 *     every op, and with refusals of state: an error reply each time, and a
 *     DUMP of the whole keyspace identical before and after;
 *   - the C API refusing bad arguments up front (no callback, nothing sent);
 *   - malformed replies (a stand-in queue.lua returns them): ARIQ_EINVAL,
 *     never a crash or a half-filled result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "harness.h"

#define setup    hx_setup
#define teardown hx_teardown

#define NOW "1700000000000"

typedef struct bad_case {
    const char *expect;   /* error prefix */
    const char *argv[20]; /* KEYS[1..3] then ARGV..., NULL-terminated */
} bad_case;

#define K3(k)      "{ariq}:seq", "{ariq}:events", k
#define CALL       K3("{ariq}:call:c1")
#define AGENT      K3("{ariq}:agent:a1")
#define COMMON(op) op, NOW, "A", "1000"

static const bad_case cases[] = {
    /* keys and the common arguments */
    {"ERR ariq: expected 3 keys", {"{ariq}:seq", "{ariq}:events", NULL}},
    {"ERR ariq: unknown op x", {K3("{ariq}:call:c9"), "x", NULL}},
    {"ERR ariq: KEYS[1]",
     {"{ariq}:sequence", "{ariq}:events", "{ariq}:call:c9", COMMON("call_info"), "c9",
      NULL}},
    {"ERR ariq: KEYS[2]",
     {"{ariq}:seq", "{other}:events", "{ariq}:call:c9", COMMON("call_info"), "c9", NULL}},
    {"ERR ariq: KEYS[3]", {CALL, COMMON("call_info"), "c2", NULL}},
    {"ERR ariq: unknown op", {CALL, COMMON("drop_all"), NULL}},
    {"ERR ariq: now_ms", {CALL, "call_info", "soon", "A", "1000", "c1", NULL}},
    {"ERR ariq: now_ms", {CALL, "call_info", "-5", "A", "1000", "c1", NULL}},
    {"ERR ariq: node id", {CALL, "call_info", NOW, "A:B", "1000", "c1", NULL}},
    {"ERR ariq: events maxlen", {CALL, "call_info", NOW, "A", "0", "c1", NULL}},
    /* enter */
    {"ERR ariq: expected 12",
     {K3("{ariq}:call:c9"), COMMON("enter"), "c9", "ch", "0", NULL}},
    {"ERR ariq: priority",
     {K3("{ariq}:call:c9"), COMMON("enter"), "c9", "ch", "1001", "", "", "q", "0", "1",
      NULL}},
    {"ERR ariq: priority",
     {K3("{ariq}:call:c9"), COMMON("enter"), "c9", "ch", "5x", "", "", "q", "0", "1",
      NULL}},
    {"ERR ariq: queues",
     {K3("{ariq}:call:c9"), COMMON("enter"), "c9", "ch", "1", "", "", "", "0", "1",
      NULL}},
    {"ERR ariq: queues",
     {K3("{ariq}:call:c9"), COMMON("enter"), "c9", "ch", "1", "", "", "a&&b", "0", "1",
      NULL}},
    {"ERR ariq: queues: q given twice",
     {K3("{ariq}:call:c9"), COMMON("enter"), "c9", "ch", "1", "", "", "q&r&q", "0", "1",
      NULL}},
    {"ERR ariq: queue name",
     {K3("{ariq}:call:c9"), COMMON("enter"), "c9", "ch", "1", "", "", "q:x", "0", "1",
      NULL}},
    {"ERR ariq: caller number",
     {K3("{ariq}:call:c9"), COMMON("enter"), "c9", "ch", "1", "1|2", "", "q", "0", "1",
      NULL}},
    {"ERR ariq: caller name",
     {K3("{ariq}:call:c9"), COMMON("enter"), "c9", "ch", "1", "", "new\nline", "q", "0",
      "1", NULL}},
    {"ERR ariq: autopair",
     {K3("{ariq}:call:c9"), COMMON("enter"), "c9", "ch", "1", "", "", "q", "2", "1",
      NULL}},
    {"ERR ariq: max_pairs",
     {K3("{ariq}:call:c9"), COMMON("enter"), "c9", "ch", "1", "", "", "q", "1", "0",
      NULL}},
    {"ERR ariq: channel",
     {K3("{ariq}:call:c9"), COMMON("enter"), "c9", "ch an", "1", "", "", "q", "1", "1",
      NULL}},
    {"EXISTS call c1",
     {CALL, COMMON("enter"), "c1", "ch", "1", "", "", "q", "1", "1", NULL}},
    /* leave */
    {"ERR ariq: reason",
     {CALL, COMMON("leave"), "c1", "bored", "caller", "0", "1", "1", NULL}},
    {"ERR ariq: who",
     {CALL, COMMON("leave"), "c1", "hangup", "nobody", "0", "1", "1", NULL}},
    {"ERR ariq: wrapup_ms",
     {CALL, COMMON("leave"), "c1", "hangup", "caller", "-1", "1", "1", NULL}},
    /* agents */
    {"ERR ariq: agent id",
     {K3("{ariq}:agent:x"), COMMON("agent_login"),
      "a12345678901234567890123456789012345678901234567890123456789012345", "ch", "", "q",
      "0", "1", NULL}},
    {"ERR ariq: queues: 1..16",
     {K3("{ariq}:agent:a9"), COMMON("agent_login"), "a9", "ch", "",
      "q1&q2&q3&q4&q5&q6&q7&q8&q9&q10&q11&q12&q13&q14&q15&q16&q17", "0", "1", NULL}},
    {"AGENTINUSE agent a1",
     {AGENT, COMMON("agent_login"), "a1", "ch2", "", "q", "1", "1", NULL}},
    {"ERR ariq: reason",
     {AGENT, COMMON("agent_logoff"), "a1", "bye\x01", "0", "1", NULL}},
    {"ERR ariq: paused", {AGENT, COMMON("agent_pause"), "a1", "2", "", "0", "1", NULL}},
    {"BADSTATE agent a1 is not paused",
     {AGENT, COMMON("agent_pause"), "a1", "0", "", "0", "1", NULL}},
    {"NOTFOUND agent a9",
     {K3("{ariq}:agent:a9"), COMMON("agent_pause"), "a9", "1", "", "0", "1", NULL}},
    {"BADSTATE agent a1 is", {AGENT, COMMON("agent_ready"), "a1", "0", "1", NULL}},
    {"ERR ariq: autopair", {AGENT, COMMON("agent_ready"), "a1", "yes", "1", NULL}},
    {"ERR ariq: expected 7", {AGENT, COMMON("agent_ready"), "a1", NULL}},
    /* pairing */
    {"ERR ariq: scope",
     {K3("{ariq}:queue:q:callers"), COMMON("pair"), "all", "q", "1", NULL}},
    {"ERR ariq: max_pairs",
     {K3("{ariq}:queue:q:callers"), COMMON("pair"), "queue", "q", "1001", NULL}},
    {"ERR ariq: KEYS[3]",
     {K3("{ariq}:queue:q:agents"), COMMON("pair"), "queue", "q", "1", NULL}},
    {"ERR ariq: pairing id",
     {K3("{ariq}:pairing:p 1"), COMMON("bridged"), "p 1", "both", NULL}},
    {"ERR ariq: side", {K3("{ariq}:pairing:p77"), COMMON("bridged"), "p77", "left", NULL}},
    {"ERR ariq: expected 6", {K3("{ariq}:pairing:p77"), COMMON("bridged"), "p77", NULL}},
    {"NOTFOUND pairing p77",
     {K3("{ariq}:pairing:p77"), COMMON("bridged"), "p77", "caller", NULL}},
    {"ERR ariq: side",
     {K3("{ariq}:pairing:p77"), COMMON("unlink"), "p77", "both", "c1", "", "0", "1", "1",
      NULL}},
    {"ERR ariq: party",
     {K3("{ariq}:pairing:p77"), COMMON("unlink"), "p77", "caller", "c 1", "", "0", "1", "1",
      NULL}},
    {"ERR ariq: reason",
     {K3("{ariq}:pairing:p77"), COMMON("unlink"), "p77", "agent", "a1", "x|y", "0", "1", "1",
      NULL}},
    {"ERR ariq: wrapup_ms",
     {K3("{ariq}:pairing:p77"), COMMON("unlink"), "p77", "agent", "a1", "", "-1", "1", "1",
      NULL}},
    {"ERR ariq: KEYS[3]",
     {K3("{ariq}:pairing:p78"), COMMON("unlink"), "p77", "agent", "a1", "", "0", "1", "1",
      NULL}},
    {"ERR ariq: expected 5", {K3("{ariq}:pairing:p77"), COMMON("pairing_info"), NULL}},
    {"ERR ariq: agent_to",
     {K3("{ariq}:pairing:p77"), COMMON("rollback"), "p77", "x", "later", NULL}},
    /* recordings */
    {"ERR ariq: action",
     {K3("{ariq}:recording:r1"), COMMON("rec"), "erase", "r1", "", "", "0", NULL}},
    {"ERR ariq: ttl_ms",
     {K3("{ariq}:recording:r1"), COMMON("rec"), "stop", "r1", "", "", "-1", NULL}},
    {"ERR ariq: pairing id",
     {K3("{ariq}:recording:r1"), COMMON("rec"), "start", "r1", "", "f", "0", NULL}},
    {"NOTFOUND recording r1",
     {K3("{ariq}:recording:r1"), COMMON("rec"), "stop", "r1", "", "", "0", NULL}},
    /* reaping */
    {"ERR ariq: max_items",
     {K3("{ariq}:node:B:heartbeat"), COMMON("reap"), "B", "x", "0", NULL}},
    {"ERR ariq: KEYS[3]",
     {K3("{ariq}:node:B:calls"), COMMON("reap"), "B", "x", "10", NULL}},
    {"ERR ariq: node id",
     {K3("{ariq}:node:B:heartbeat"), COMMON("reap"), "", "x", "10", NULL}},
    /* reads */
    {"ERR ariq: call id", {K3("{ariq}:call:c1"), COMMON("call_info"), "", NULL}},
    {"ERR ariq: queue name",
     {K3("{ariq}:queue:q:callers"), COMMON("queue_info"), "q{x}", NULL}},
};

/* EVALSHA of one case; returns the reply (caller frees). */
static redisReply *eval_case(hx *h, const char *sha, const bad_case *c)
{
    const char *argv[32] = {"EVALSHA", sha, "3"};
    int argc = 3, nkeys = 0;
    for (int i = 0; c->argv[i]; i++) {
        argv[argc++] = c->argv[i];
        if (i < 3 && strncmp(c->argv[i], "{", 1) == 0)
            nkeys++;
    }
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys < 3 ? nkeys : 3);
    argv[2] = nk;
    return redisCommandArgv(h->rc, argc, argv, NULL);
}

/* Some state first (a waiting caller, a free agent, a queue with a
 * paired call), so a bad op would have something to break. */
static void fill(hx *h)
{
    hx_out o;
    assert_int_equal(hx_enter(h, 0, "c1", 0, "q", false, &o), 0);
    assert_int_equal(hx_login(h, 1, "a1", "r", false, &o), 0);
    assert_int_equal(hx_enter(h, 0, "c2", 0, "s", false, &o), 0);
    assert_int_equal(hx_login(h, 1, "a2", "s", true, &o), 0);
    assert_int_equal(o.npairs, 1);
}

static void test_bad_script_args_change_nothing(void **state)
{
    hx *h = *state;
    fill(h);
    const char *sha = store_script_sha(h->n[0].s, "queue");
    assert_non_null(sha);
    char *before = hx_snapshot(h);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        redisReply *r = eval_case(h, sha, &cases[i]);
        assert_non_null(r);
        if (r->type != REDIS_REPLY_ERROR ||
            strncmp(r->str, cases[i].expect, strlen(cases[i].expect)) != 0)
            fail_msg("case %zu: expected \"%s\", got type %d \"%s\"", i, cases[i].expect,
                     r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
        freeReplyObject(r);
        char *after = hx_snapshot(h);
        if (strcmp(before, after) != 0)
            fail_msg("case %zu (%s) changed the keyspace", i, cases[i].expect);
        free(after);
    }
    free(before);
}

static int g_called;

static void never_cb(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    (void)err;
    (void)res;
    (void)pd;
    g_called++;
}

static void never_enter_cb(queue_store *qs, int err, const qs_enter_result *res, void *pd)
{
    (void)qs;
    (void)err;
    (void)res;
    (void)pd;
    g_called++;
}

/* The C API refuses bad arguments itself: EINVAL, a message, no callback,
 * nothing sent. */
static void test_c_api_refuses(void **state)
{
    hx *h = *state;
    queue_store *qs = h->n[0].qs;
    const char *q1[] = {"q"}, *qdup[] = {"q", "q"}, *qbad[] = {"q:1"};
    qs_caller c = {
        .callid = "c1", .channel = "ch1", .priority = 0, .queues = q1, .nqueues = 1};
    qs_caller b = c;
    b.priority = 1001;
    assert_int_equal(qs_enter(qs, &b, false, never_enter_cb, NULL), ARIQ_EINVAL);
    assert_non_null(strstr(qs_errmsg(qs), "priority"));
    b = c;
    b.callid = "c{1}";
    assert_int_equal(qs_enter(qs, &b, false, never_enter_cb, NULL), ARIQ_EINVAL);
    b = c;
    b.queues = qdup;
    b.nqueues = 2;
    assert_int_equal(qs_enter(qs, &b, false, never_enter_cb, NULL), ARIQ_EINVAL);
    b = c;
    b.queues = qbad;
    assert_int_equal(qs_enter(qs, &b, false, never_enter_cb, NULL), ARIQ_EINVAL);
    b = c;
    b.nqueues = 0;
    assert_int_equal(qs_enter(qs, &b, false, never_enter_cb, NULL), ARIQ_EINVAL);
    b = c;
    b.cid_name = "a|b";
    assert_int_equal(qs_enter(qs, &b, false, never_enter_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(qs_enter(qs, &c, false, NULL, NULL), ARIQ_EINVAL);
    assert_int_equal(
        qs_leave(qs, "c1", QS_LEAVE_HANGUP, QS_BY_CALLER, -1, false, never_cb, NULL),
        ARIQ_EINVAL);
    assert_int_equal(qs_leave(qs, "c1", 7, QS_BY_CALLER, 0, false, never_cb, NULL),
                     ARIQ_EINVAL);
    assert_int_equal(qs_agent_logoff(qs, "", "x", false, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(qs_agent_pause(qs, "a1", true, "tab\there", false, never_cb, NULL),
                     ARIQ_EINVAL);
    assert_int_equal(qs_pair_queue(qs, NULL, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(qs_rollback(qs, "p1", "x", 9, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(qs_rec(qs, QS_REC_START, "r1", NULL, "f.wav", 0, never_cb, NULL),
                     ARIQ_EINVAL);
    assert_int_equal(qs_rec(qs, QS_REC_STOP, "r1", NULL, NULL, -1, never_cb, NULL),
                     ARIQ_EINVAL);
    assert_int_equal(qs_pending(qs), 0);
    int dummy = 0;
    hx_wait(h, &dummy, 1, 100);
    assert_int_equal(g_called, 0);
    assert_int_equal(hx_dbsize(h), 0);
    /* a bad config */
    qs_config cfg;
    qs_config_init(&cfg);
    queue_store *x = NULL;
    assert_int_equal(qs_new(h->n[0].s, &cfg, &x), ARIQ_EINVAL); /* no node */
    snprintf(cfg.node, sizeof cfg.node, "n1");
    cfg.max_pairs = 0;
    assert_int_equal(qs_new(h->n[0].s, &cfg, &x), ARIQ_EINVAL);
    assert_null(x);
    qs_free(NULL);
}

/* ---- malformed replies ------------------------------------------------------ */

/* A stand-in queue.lua: the reply is chosen by the mode stored in
 * {ariq}:seq (KEYS[1]). */
static const char fake_script[] =
    "local m = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local p = "
    "{'pairing','p1','call','c1','agent','a1','queue','q','caller_channel','x',\n"
    "  "
    "'agent_channel','y','caller_node','A','agent_node','B','created_ms',1,'holdtime_ms',"
    "2}\n"
    "local R = {\n"
    " [1] = 42,\n"
    " [2] = {'seq', 1, 'score'},\n"
    " [3] = {'seq', 'x', 'score', 1, 'positions', {1}, 'pairings', {}},\n"
    " [4] = {'seq', 1, 'score', 1, 'positions', {1}},\n"
    " [5] = {'seq', 1, 'score', 1, 'positions', {1}, 'pairings', {{'pairing', 'p1'}}},\n"
    " [6] = {'seq', 1, 'score', 1, 'positions', {1}, 'pairings', {p, 7}},\n"
    " [7] = {'seq', 1, 'score', 1, 'positions', {1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1},\n"
    "        'pairings', {}},\n"
    " [8] = {'seq', 1, 'seq', 2, 'score', 1, 'positions', {1}, 'pairings', {}},\n"
    " [9] = {'seq', 1, 'score', 1, 'positions', {1}, 'pairings', {p}},\n"
    " [10] = {'seq', 1, 'score', 1, 'positions', {}, 'pairings', {}},\n"
    " [11] = {'seq', 1, 'score', 1, 'positions', {1}, 'pairings', {p}, 'more', "
    "'ignored'},\n"
    "}\n"
    "if m == 6 then p[2] = string.rep('x', 200) end\n"
    "if m == 12 then return redis.error_reply('OOM command not allowed') end\n"
    "if m == 13 then return {'found', 1, 'state', 'waiting'} end\n"
    "if m == 14 then return {'callers', -1, 'agents_free', 0, 'front', '', 'oldest', "
    "'',\n"
    "  'longest_wait_ms', 0} end\n"
    "if m == 15 then local big = {} for i = 1, 1001 do big[i] = p end\n"
    "  return {'outcome', 'X', 'pairings', big} end\n"
    "if m == 16 then return {'outcome', 'X'} end\n"
    "return R[m]\n";

static int setup_fake(void **state)
{
    char dir[512], path[600];
    proc_tmpdir("qs-fake-schema", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/queue.lua", dir);
    FILE *fp = fopen(path, "w");
    if (!fp)
        return -1;
    fputs(fake_script, fp);
    fclose(fp);
    return hx_setup_dir(state, dir);
}

static int enter_mode(hx *h, int mode, hx_out *o)
{
    redisReply *r = redisCommand(h->rc, "SET {ariq}:seq %d", mode);
    freeReplyObject(r);
    return hx_enter(h, 0, "c1", 0, "q", false, o);
}

static void test_malformed_replies(void **state)
{
    hx *h = *state;
    hx_out o;
    for (int m = 1; m <= 10; m++) {
        if (m == 9)
            continue;
        int rc = enter_mode(h, m, &o);
        if (rc != ARIQ_EINVAL)
            fail_msg("mode %d: %s (%s)", m, ariq_strerror(rc), o.errmsg);
        assert_non_null(strstr(o.errmsg, "malformed reply"));
        assert_int_equal(o.npairs, 0);
    }
    /* the good ones parse: unknown names are ignored */
    assert_int_equal(enter_mode(h, 9, &o), 0);
    assert_int_equal(o.npairs, 1);
    assert_string_equal(o.pairs[0].agent_node, "B");
    assert_int_equal(o.pairs[0].holdtime_ms, 2);
    assert_int_equal(enter_mode(h, 11, &o), 0);
    /* a Redis error that is not ours */
    assert_int_equal(enter_mode(h, 12, &o), ARIQ_EIO);
    assert_non_null(strstr(o.errmsg, "OOM"));
    /* the other result kinds */
    redisReply *r = redisCommand(h->rc, "SET {ariq}:seq 13");
    freeReplyObject(r);
    memset(&o, 0, sizeof o);
    assert_int_equal(hx_done(h, qs_call_info(h->n[0].qs, "c1", hx_call_cb, &o), &o),
                     ARIQ_EINVAL);
    r = redisCommand(h->rc, "SET {ariq}:seq 14");
    freeReplyObject(r);
    memset(&o, 0, sizeof o);
    assert_int_equal(hx_done(h, qs_queue_info(h->n[0].qs, "q", hx_queue_cb, &o), &o),
                     ARIQ_EINVAL);
    r = redisCommand(h->rc, "SET {ariq}:seq 15");
    freeReplyObject(r);
    memset(&o, 0, sizeof o);
    assert_int_equal(hx_done(h, qs_pair_queue(h->n[0].qs, "q", hx_result_cb, &o), &o),
                     ARIQ_EINVAL);
    r = redisCommand(h->rc, "SET {ariq}:seq 16"); /* pairings missing */
    freeReplyObject(r);
    memset(&o, 0, sizeof o);
    assert_int_equal(hx_done(h, qs_pair_queue(h->n[0].qs, "q", hx_result_cb, &o), &o),
                     ARIQ_EINVAL);
    memset(&o, 0, sizeof o); /* ... but a rollback only promises an outcome */
    assert_int_equal(
        hx_done(h, qs_rollback(h->n[0].qs, "p1", "x", QS_AGENT_KEEP, hx_result_cb, &o),
                &o),
        0);
    assert_string_equal(o.res.outcome, "X");
}

/* A lost connection: the callback of a read or a sweep gets ARIQ_EIO (a
 * resendable write is held again instead: queue_store.c resendable); freeing the
 * store with requests pending completes them, and qs_free after is clean. */
static void test_connection_lost(void **state)
{
    hx *h = *state;
    hx_out o[3];
    memset(o, 0, sizeof o);
    assert_int_equal(qs_call_info(h->n[0].qs, "c1", hx_call_cb, &o[0]), 0);
    assert_int_equal(qs_pair_queue(h->n[0].qs, "q", hx_result_cb, &o[1]), 0);
    assert_int_equal(qs_pending(h->n[0].qs), 2);
    store_free(h->n[0].s);
    h->n[0].s = NULL;
    assert_int_equal(o[0].done, 1);
    assert_int_equal(o[0].err, ARIQ_EIO);
    assert_int_equal(o[1].err, ARIQ_EIO);
    assert_int_equal(qs_pending(h->n[0].qs), 0);
    /* freeing the queue_store with a request in flight: no callback later */
    assert_int_equal(qs_pair_queue(h->n[1].qs, "q", hx_result_cb, &o[2]), 0);
    qs_free(h->n[1].qs);
    h->n[1].qs = NULL;
    int dummy = 0;
    hx_wait(h, &dummy, 1, 200);
    assert_int_equal(o[2].done, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_script_args_change_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_c_api_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_replies, setup_fake, teardown),
        cmocka_unit_test_setup_teardown(test_connection_lost, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
