/* The Redis store against a real redis-server: handshake (AUTH, SELECT,
 * scripts), EVALSHA and NOSCRIPT reload, lost connections, reconnect with
 * backoff, store_free with pending commands and from callbacks, pipelining.
 *
 * Every test runs its own server on a free loopback port, bounds every wait,
 * and ends with the store freed and the event base empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "harness.h"
#include "redis_proc.h"
#include "store/keys.h"
#include "store/store.h"

/* ---- fixture --------------------------------------------------------------- */

typedef struct fx {
    sfx x; /* first: a hook gets back to the fx from it */
    redis_proc r;
    bool have_redis;
    /* what count_cb saw besides the replies and NULLs */
    int in_order_errors;
    long long expect_next;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    sfx_init(&f->x);
    *state = f;
    return 0;
}

/* Frees everything and checks that nothing is left on the loop. */
static int teardown(void **state)
{
    fx *f = *state;
    int left = sfx_fini(&f->x);
    if (f->have_redis)
        redis_proc_stop(&f->r, SIGKILL);
    free(f);
    assert_int_equal(left, 0);
    return 0;
}

static void start_redis(fx *f, const redis_opts *o)
{
    assert_int_equal(redis_proc_start(&f->r, o), 0);
    f->have_redis = true;
    f->x.cfg.port = f->r.port;
}

/* Redis up, store ready. */
static void start_ready(fx *f, const redis_opts *o)
{
    start_redis(f, o);
    sfx_new_store(&f->x);
    assert_true(sfx_wait(&f->x, &f->x.ready, 1, 5000));
    assert_true(store_is_ready(f->x.s));
}

static int cmd(fx *f, store_cb cb, void *pd, int argc, const char **argv)
{
    return store_command_argv(f->x.s, argc, argv, NULL, cb, pd);
}

/* Counts replies, NULLs and checks INCR results arrive in order. */
static void count_cb(store *s, const redisReply *r, void *pd)
{
    (void)s;
    fx *f = pd;
    if (!sfx_count_reply(&f->x, r))
        return;
    if (r->type == REDIS_REPLY_INTEGER && f->expect_next) {
        if (r->integer != f->expect_next)
            f->in_order_errors++;
        f->expect_next++;
    }
}

static long long redis_int(fx *f, const char *fmt, const char *arg)
{
    redisReply *rep = redis_proc_cmd(&f->r, fmt, arg);
    assert_non_null(rep);
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -999;
    freeReplyObject(rep);
    return v;
}

/* ---- tests ------------------------------------------------------------------ */

/* Connects, calls on_ready once, and a command lands in Redis. */
static void test_connect_ready(void **state)
{
    fx *f = *state;
    start_ready(f, NULL);
    assert_int_equal(f->x.ready, 1);
    assert_int_equal(f->x.down, 0);
    const char *set[] = {"SET", "{ariq}:probe", "hello"};
    assert_int_equal(cmd(f, count_cb, f, 3, set), 0);
    assert_true(sfx_wait(&f->x, &f->x.replies, 1, 2000));
    redisReply *rep = redis_proc_cmd(&f->r, "GET {ariq}:probe");
    assert_string_equal(rep->str, "hello");
    freeReplyObject(rep);
    store_stats st;
    store_get_stats(f->x.s, &st);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.pending, 0);
    assert_true(st.replies >= 2); /* the handshake's and ours */
    assert_true(st.rtt_sum_us > 0 && st.rtt_max_us > 0);
}

/* Before the store is ready, and for commands that would break the reply
 * order, a send fails at once and its callback never runs. */
static void test_not_ready_ebusy(void **state)
{
    fx *f = *state;
    start_redis(f, NULL);
    sfx_new_store(&f->x);
    const char *ping[] = {"PING"};
    assert_int_equal(cmd(f, count_cb, f, 1, ping), ARIQ_EBUSY);
    const char *keys[] = {"k1", "k2"}, *args[] = {"a", "1", "v"};
    assert_int_equal(
        store_script(f->x.s, "node_heartbeat", 2, keys, 3, args, count_cb, f),
        ARIQ_EBUSY);
    assert_true(sfx_wait(&f->x, &f->x.ready, 1, 5000));
    const char *sub[] = {"subscribe", "x"}, *sel[] = {"SELECT", "2"};
    assert_int_equal(cmd(f, count_cb, f, 2, sub), ARIQ_EINVAL);
    assert_int_equal(cmd(f, count_cb, f, 2, sel), ARIQ_EINVAL);
    assert_int_equal(cmd(f, count_cb, f, 0, ping), ARIQ_EINVAL);
    assert_int_equal(
        store_script(f->x.s, "no_such_script", 0, NULL, 0, NULL, count_cb, f),
        ARIQ_ENOTFOUND);
    sfx_run_for(&f->x, 100);
    assert_int_equal(f->x.replies + f->x.nulls, 0);
}

/* The right password (given in a redis:// URL with a db): ready, and the
 * command lands in that db. */
static void test_auth_ok(void **state)
{
    fx *f = *state;
    redis_opts o = {.password = "Corr3ct@horse/:x"};
    start_redis(f, &o);
    char url[256], err[256];
    redis_proc_url(&f->r, 2, url, sizeof url);
    assert_non_null(strstr(url, "Corr3ct%40horse%2F%3Ax@"));
    assert_int_equal(store_config_set_url(&f->x.cfg, url, err, sizeof err), 0);
    assert_string_equal(f->x.cfg.password, o.password);
    sfx_new_store(&f->x);
    assert_true(sfx_wait(&f->x, &f->x.ready, 1, 5000));
    const char *set[] = {"SET", "{ariq}:authed", "yes"};
    assert_int_equal(cmd(f, count_cb, f, 3, set), 0);
    assert_true(sfx_wait(&f->x, &f->x.replies, 1, 2000));
    redisContext *c = redis_proc_connect(&f->r);
    freeReplyObject(redisCommand(c, "SELECT 2"));
    redisReply *rep = redisCommand(c, "GET {ariq}:authed");
    assert_string_equal(rep->str, "yes");
    freeReplyObject(rep);
    redisFree(c);
}

/* A wrong password: never ready, one on_down, a clear error repeated at each
 * retry, and the password in no log line. */
static void test_auth_wrong(void **state)
{
    fx *f = *state;
    sfx_log_capture(false);
    log_set_level(LOG_LVL_DEBUG);
    redis_opts o = {.password = "the-real-one"};
    start_redis(f, &o);
    snprintf(f->x.cfg.password, sizeof f->x.cfg.password, "Wr0ngPassw0rd");
    sfx_new_store(&f->x);
    sfx_run_for(&f->x, 1200);
    assert_int_equal(f->x.ready, 0);
    assert_int_equal(f->x.down, 1);
    assert_non_null(strstr(f->x.down_reason, "AUTH"));
    assert_non_null(strstr(store_errmsg(f->x.s), "WRONGPASS"));
    int auth_errors =
        sfx_lines_matching(0, "level=error mod=store redis AUTH", NULL, NULL);
    int leaks = sfx_lines_matching(0, "Wr0ngPassw0rd", NULL, NULL) +
                sfx_lines_matching(0, "the-real-one", NULL, NULL);
    assert_true(auth_errors >= 3); /* it kept retrying */
    assert_int_equal(leaks, 0);
    assert_null(strstr(store_errmsg(f->x.s), "Wr0ngPassw0rd"));
    store_stats st;
    store_get_stats(f->x.s, &st);
    assert_int_equal(st.connects, 0);
}

/* No password configured for a server that needs one: a clear NOAUTH. */
static void test_auth_missing(void **state)
{
    fx *f = *state;
    redis_opts o = {.password = "needed"};
    start_redis(f, &o);
    sfx_new_store(&f->x);
    assert_true(sfx_wait(&f->x, &f->x.down, 1, 3000));
    sfx_run_for(&f->x, 200);
    assert_int_equal(f->x.ready, 0);
    assert_non_null(strstr(store_errmsg(f->x.s), "NOAUTH"));
}

/* With db = 5, a key written through the store lands in db 5 only. */
static void test_select_db(void **state)
{
    fx *f = *state;
    f->x.cfg.db = 5;
    start_ready(f, NULL);
    const char *set[] = {"SET", "{ariq}:in-db", "5"};
    assert_int_equal(cmd(f, count_cb, f, 3, set), 0);
    assert_true(sfx_wait(&f->x, &f->x.replies, 1, 2000));
    redisContext *c = redis_proc_connect(&f->r);
    redisReply *rep = redisCommand(c, "EXISTS {ariq}:in-db");
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    freeReplyObject(redisCommand(c, "SELECT 5"));
    rep = redisCommand(c, "GET {ariq}:in-db");
    assert_string_equal(rep->str, "5");
    freeReplyObject(rep);
    redisFree(c);
}

typedef struct hb_result {
    int done;
    int type;
    long long integer;
    char err[128];
} hb_result;

static void hb_cb(store *s, const redisReply *r, void *pd)
{
    (void)s;
    hb_result *h = pd;
    h->done++;
    h->type = r ? r->type : -1;
    if (r && r->type == REDIS_REPLY_INTEGER)
        h->integer = r->integer;
    if (r && r->type == REDIS_REPLY_ERROR)
        snprintf(h->err, sizeof h->err, "%s", r->str);
}

/* Calls node_heartbeat through the store; keys come from store_keys. */
static int heartbeat(fx *f, const char *node, const char *ttl, hb_result *h)
{
    char hbkey[STORE_KEY_MAX], nodes[STORE_KEY_MAX];
    const store_keys *k = store_get_keys(f->x.s);
    assert_int_equal(store_key_node_heartbeat(k, hbkey, sizeof hbkey, node), 0);
    assert_int_equal(store_key_nodes(k, nodes, sizeof nodes), 0);
    const char *keys[] = {hbkey, nodes};
    const char *args[] = {node, ttl, "1700000000000"};
    return store_script(f->x.s, "node_heartbeat", 2, keys, 3, args, hb_cb, h);
}

/* Scripts are loaded at connect and called with EVALSHA; the script's
 * effect is atomic and visible in Redis. */
static void test_script_evalsha(void **state)
{
    fx *f = *state;
    start_ready(f, NULL);
    const char *sha = store_script_sha(f->x.s, "node_heartbeat");
    assert_non_null(sha);
    assert_int_equal(strlen(sha), 40);
    redisReply *rep = redis_proc_cmd(&f->r, "SCRIPT EXISTS %s", sha);
    assert_int_equal(rep->element[0]->integer, 1);
    freeReplyObject(rep);

    hb_result h = {0};
    assert_int_equal(heartbeat(f, "node1", "5000", &h), 0);
    assert_true(sfx_wait(&f->x, &h.done, 1, 2000));
    assert_int_equal(h.type, REDIS_REPLY_INTEGER);
    assert_int_equal(h.integer, 1); /* joined */
    long long pttl = redis_int(f, "PTTL %s", "{ariq}:node:node1:heartbeat");
    assert_true(pttl > 0 && pttl <= 5000);
    assert_int_equal(redis_int(f, "SISMEMBER {ariq}:nodes %s", "node1"), 1);

    hb_result h2 = {0};
    assert_int_equal(heartbeat(f, "node1", "5000", &h2), 0);
    assert_true(sfx_wait(&f->x, &h2.done, 1, 2000));
    assert_int_equal(h2.integer, 0); /* already known */

    /* a bad TTL is an error reply and changes nothing */
    hb_result h3 = {0};
    assert_int_equal(heartbeat(f, "node2", "0", &h3), 0);
    assert_true(sfx_wait(&f->x, &h3.done, 1, 2000));
    assert_int_equal(h3.type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(h3.err, "TTL"));
    assert_int_equal(redis_int(f, "SISMEMBER {ariq}:nodes %s", "node2"), 0);
    assert_int_equal(redis_int(f, "EXISTS %s", "{ariq}:node:node2:heartbeat"), 0);
}

/* SCRIPT FLUSH from another client: the next call gets NOSCRIPT, the store
 * reloads the script and retries, and the owner only sees success. */
static void test_noscript_reload(void **state)
{
    fx *f = *state;
    start_ready(f, NULL);
    redisReply *rep = redis_proc_cmd(&f->r, "SCRIPT FLUSH");
    freeReplyObject(rep);
    hb_result h = {0};
    assert_int_equal(heartbeat(f, "node7", "5000", &h), 0);
    assert_true(sfx_wait(&f->x, &h.done, 1, 2000));
    assert_int_equal(h.done, 1);
    assert_int_equal(h.type, REDIS_REPLY_INTEGER);
    assert_int_equal(redis_int(f, "SISMEMBER {ariq}:nodes %s", "node7"), 1);
    store_stats st;
    store_get_stats(f->x.s, &st);
    assert_int_equal(st.noscript_reloads, 1);
    assert_int_equal(st.pending, 0);
}

/* Queues n SETs and then a blocked command (its reply never comes; it would
 * hold back any command sent after it). */
static void send_pending(fx *f, int n)
{
    for (int i = 0; i < n; i++) {
        const char *set[] = {"SET", "{ariq}:x", "1"};
        assert_int_equal(cmd(f, count_cb, f, 3, set), 0);
    }
    const char *blpop[] = {"BLPOP", "{ariq}:never", "0"};
    assert_int_equal(cmd(f, count_cb, f, 3, blpop), 0);
}

/* Redis killed with commands in flight: every callback runs with NULL,
 * on_down once, and sends fail with EBUSY (no callback) while down. Then
 * Redis comes back on the same port: the store reconnects by itself, calls
 * on_ready again, and commands work. */
static void test_kill_and_restart(void **state)
{
    fx *f = *state;
    sfx_log_capture(false);
    log_set_level(LOG_LVL_DEBUG);
    start_ready(f, NULL);
    send_pending(f, 20);
    assert_true(sfx_wait(&f->x, &f->x.replies, 20, 2000)); /* the BLPOP stays pending */
    sfx_run_for(&f->x, 20);
    assert_int_equal(f->x.replies, 20);
    redis_proc_stop(&f->r, SIGKILL);
    send_pending(f, 5); /* not yet written when the loss is seen */
    assert_true(sfx_wait(&f->x, &f->x.down, 1, 3000));
    assert_true(sfx_wait(&f->x, &f->x.nulls, 7, 1000));
    sfx_run_for(&f->x, 50);
    assert_int_equal(f->x.nulls, 7); /* 2 BLPOPs + 5 SETs, each exactly once */
    assert_int_equal(f->x.down, 1);
    assert_false(store_is_ready(f->x.s));
    const char *ping[] = {"PING"};
    assert_int_equal(cmd(f, count_cb, f, 1, ping), ARIQ_EBUSY);
    hb_result h = {0};
    assert_int_equal(heartbeat(f, "node1", "5000", &h), ARIQ_EBUSY);

    sfx_run_for(&f->x, 1500); /* several failed attempts: backoff grows to the cap */
    assert_int_equal(f->x.down, 1);
    assert_int_equal(redis_proc_restart(&f->r), 0);
    assert_true(sfx_wait(&f->x, &f->x.ready, 2, 3000));
    assert_int_equal(cmd(f, count_cb, f, 1, ping), 0);
    assert_true(sfx_wait(&f->x, &f->x.replies, 21, 2000));
    assert_int_equal(f->x.nulls, 7);
    store_stats st;
    store_get_stats(f->x.s, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.failed, 7);

    /* The retry delays: 50, 100, 200, 400, 400... ms, each within ±20 %. */
    int seen = 0, base = 50, jittered = 0;
    const char *line;
    for (int i = 0; (line = sfx_line(i)) != NULL; i++) {
        const char *p = strstr(line, "retry_ms=");
        if (!p || !strstr(line, "mod=store"))
            continue;
        int ms = atoi(p + 9);
        if (ms < base * 8 / 10 || ms > base * 12 / 10)
            fail_msg("retry %d: %d ms, expected %d ±20%%", seen, ms, base);
        jittered += ms != base;
        base = base * 2 > 400 ? 400 : base * 2;
        seen++;
    }
    assert_true(seen >= 4);
    assert_true(jittered >= 2); /* not a fixed schedule */
    assert_int_equal(h.done, 0);
}

/* store_free with commands pending: each callback runs once with NULL and
 * frees its privdata (ASan checks the rest). */
static void free_pd_cb(store *s, const redisReply *r, void *pd)
{
    (void)s;
    (void)r;
    int *counter = *(int **)pd;
    (*counter)++;
    free(pd);
}

static void test_free_with_pending(void **state)
{
    fx *f = *state;
    start_ready(f, NULL);
    int called = 0;
    for (int i = 0; i < 50; i++) {
        int **pd = malloc(sizeof *pd);
        *pd = &called;
        const char *blpop[] = {"BLPOP", "{ariq}:never", "0"};
        const char *set[] = {"SET", "{ariq}:y", "1"};
        assert_int_equal(cmd(f, free_pd_cb, pd, 3, i == 0 ? blpop : set), 0);
    }
    store_free(f->x.s);
    f->x.s = NULL;
    assert_int_equal(called, 50);
    sfx_run_for(&f->x, 50); /* nothing may run after the free */
    assert_int_equal(called, 50);
}

/* store_free from inside a reply callback: the store stays valid until the
 * callback returns, later sends fail with ECLOSED, the other pending
 * callbacks run with NULL, and the free completes afterwards. */
static void free_inside_cb(store *s, const redisReply *r, void *pd)
{
    fx *f = pd;
    assert_non_null(r);
    f->x.replies++;
    store_free(s);
    store_free(s); /* twice is harmless */
    const char *ping[] = {"PING"};
    assert_int_equal(store_command_argv(s, 1, ping, NULL, count_cb, f), ARIQ_ECLOSED);
    assert_false(store_is_ready(s));
    f->x.s = NULL;
}

static void test_free_in_callback(void **state)
{
    fx *f = *state;
    start_ready(f, NULL);
    const char *ping[] = {"PING"};
    assert_int_equal(cmd(f, free_inside_cb, f, 1, ping), 0);
    send_pending(f, 10);
    assert_true(sfx_wait(&f->x, &f->x.replies, 1, 2000));
    assert_null(f->x.s);
    assert_int_equal(f->x.nulls, 11);
    sfx_run_for(&f->x, 50);
    assert_int_equal(f->x.replies, 1);
    assert_int_equal(f->x.nulls, 11);
}

/* store_free from on_ready and from a NULL callback during a loss. */
static void free_on_ready(sfx *x)
{
    store_free(x->s);
    x->s = NULL;
}

static void test_free_in_on_ready(void **state)
{
    fx *f = *state;
    f->x.on_ready_hook = free_on_ready;
    start_redis(f, NULL);
    sfx_new_store(&f->x);
    assert_true(sfx_wait(&f->x, &f->x.ready, 1, 5000));
    assert_null(f->x.s);
    sfx_run_for(&f->x, 50);
}

static void free_on_null_cb(store *s, const redisReply *r, void *pd)
{
    fx *f = pd;
    if (r)
        return;
    f->x.nulls++;
    if (f->x.s) {
        store_free(s);
        f->x.s = NULL;
    }
}

static void test_free_in_null_callback(void **state)
{
    fx *f = *state;
    start_ready(f, NULL);
    const char *blpop[] = {"BLPOP", "{ariq}:never", "0"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(cmd(f, free_on_null_cb, f, 3, blpop), 0);
    sfx_run_for(&f->x, 30);
    redis_proc_stop(&f->r, SIGKILL);
    assert_true(sfx_wait(&f->x, &f->x.nulls, 3, 3000));
    assert_null(f->x.s);
    assert_int_equal(f->x.down, 0); /* freed while failing: no on_down */
    sfx_run_for(&f->x, 100);
}

/* 10,000 pipelined INCRs: all complete, in the order sent. */
static void test_pipeline_10000(void **state)
{
    fx *f = *state;
    start_ready(f, NULL);
    f->expect_next = 1;
    for (int i = 0; i < 10000; i++) {
        const char *incr[] = {"INCR", "{ariq}:counter"};
        assert_int_equal(cmd(f, count_cb, f, 2, incr), 0);
    }
    assert_true(sfx_wait(&f->x, &f->x.replies, 10000, 20000));
    assert_int_equal(f->in_order_errors, 0);
    assert_int_equal(f->expect_next, 10001);
    redisReply *rep = redis_proc_cmd(&f->r, "GET {ariq}:counter");
    assert_string_equal(rep->str, "10000");
    freeReplyObject(rep);
}

/* What an owner does in on_ready: reconcile, i.e. send commands at once. */
static void incr_on_ready(sfx *x)
{
    const char *incr[] = {"INCR", "{ariq}:readies"};
    assert_int_equal(store_command_argv(x->s, 2, incr, NULL, NULL, NULL), 0);
}

/* The server closes an idle connection (CLIENT KILL, no command pending):
 * on_down, then the store reconnects by itself and calls on_ready again,
 * where commands are accepted. */
static void test_server_closes_idle(void **state)
{
    fx *f = *state;
    f->x.on_ready_hook = incr_on_ready;
    start_ready(f, NULL);
    const char *ping[] = {"PING"};
    assert_int_equal(cmd(f, count_cb, f, 1, ping), 0); /* after the INCR */
    assert_true(sfx_wait(&f->x, &f->x.replies, 1, 2000));
    f->x.replies = 0;
    redisReply *rep = redis_proc_cmd(&f->r, "CLIENT KILL TYPE normal SKIPME yes");
    assert_non_null(rep);
    assert_true(rep->integer >= 1);
    freeReplyObject(rep);
    assert_true(sfx_wait(&f->x, &f->x.down, 1, 3000));
    assert_false(store_is_ready(f->x.s));
    assert_true(sfx_wait(&f->x, &f->x.ready, 2, 3000));
    assert_int_equal(cmd(f, count_cb, f, 1, ping), 0);
    assert_true(sfx_wait(&f->x, &f->x.replies, 1, 2000));
    assert_int_equal(f->x.down, 1);
    redisReply *r2 = redis_proc_cmd(&f->r, "GET {ariq}:readies");
    assert_string_equal(r2->str, "2");
    freeReplyObject(r2);
}

/* A peer that accepts TCP but never answers: the handshake times out, the
 * store reports down and keeps retrying without ever being ready. */
static void test_handshake_timeout(void **state)
{
    fx *f = *state;
    int port = proc_free_port();
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 16), 0); /* never accept(): the kernel does */
    f->x.cfg.port = port;
    f->x.cfg.connect_timeout_ms = 200;
    sfx_new_store(&f->x);
    assert_true(sfx_wait(&f->x, &f->x.down, 1, 2000));
    assert_non_null(strstr(f->x.down_reason, "timed out"));
    sfx_run_for(&f->x, 600);
    assert_int_equal(f->x.ready, 0);
    assert_int_equal(f->x.down, 1);
    store_free(f->x.s);
    f->x.s = NULL;
    close(lfd);
}

/* The namespace makes the hash tag of every key a script touches. */
static void test_namespace(void **state)
{
    fx *f = *state;
    snprintf(f->x.cfg.ns, sizeof f->x.cfg.ns, "acme");
    start_ready(f, NULL);
    hb_result h = {0};
    assert_int_equal(heartbeat(f, "n1", "5000", &h), 0);
    assert_true(sfx_wait(&f->x, &h.done, 1, 2000));
    assert_int_equal(redis_int(f, "EXISTS %s", "{acme}:node:n1:heartbeat"), 1);
    assert_int_equal(redis_int(f, "SISMEMBER {acme}:nodes %s", "n1"), 1);
    assert_int_equal(redis_int(f, "EXISTS %s", "{ariq}:nodes"), 0);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* A script Redis refuses: never ready, and the error names the script. A
 * good one from the same custom directory is callable once fixed. */
static void test_broken_script(void **state)
{
    fx *f = *state;
    char dir[STORE_PATH_MAX];
    proc_tmpdir("store-scripts", dir, sizeof dir);
    write_file(dir, "good.lua", "return ARGV[1]\n");
    write_file(dir, "broken.lua", "return (((\n");
    write_file(dir, "README.txt", "not a script\n");
    memcpy(f->x.cfg.scripts_dir, dir, sizeof dir);
    start_redis(f, NULL);
    sfx_new_store(&f->x);
    assert_true(sfx_wait(&f->x, &f->x.down, 1, 3000));
    sfx_run_for(&f->x, 200);
    assert_int_equal(f->x.ready, 0);
    assert_non_null(strstr(store_errmsg(f->x.s), "broken.lua"));
    store_free(f->x.s);
    f->x.s = NULL;

    write_file(dir, "broken.lua", "return 42\n");
    sfx_new_store(&f->x);
    assert_true(sfx_wait(&f->x, &f->x.ready, 1, 3000));
    assert_null(store_script_sha(f->x.s, "README"));
    hb_result h = {0};
    assert_int_equal(store_script(f->x.s, "broken", 0, NULL, 0, NULL, hb_cb, &h), 0);
    assert_true(sfx_wait(&f->x, &h.done, 1, 2000));
    assert_int_equal(h.integer, 42);
}

/* store_free from on_down while nothing listens on the port. */
static void free_on_down(store *s, const char *reason, void *ud)
{
    (void)reason;
    sfx *x = ud;
    x->down++;
    store_free(s);
    x->s = NULL;
}

static void test_free_in_on_down(void **state)
{
    fx *f = *state;
    f->x.cfg.port = proc_free_port(); /* nothing there */
    store_callbacks cbs = {.on_ready = sfx_on_ready, .on_down = free_on_down};
    char err[256];
    assert_int_equal(
        store_new(f->x.base, &f->x.cfg, &cbs, &f->x, &f->x.s, err, sizeof err), 0);
    assert_true(sfx_wait(&f->x, &f->x.down, 1, 3000));
    assert_null(f->x.s);
    sfx_run_for(&f->x, 200);
    assert_int_equal(f->x.down, 1);
}

/* Redis hangs (SIGSTOP) with a command in flight: after reply_timeout_ms the
 * callback runs with NULL and on_down is called; when Redis resumes the store
 * is ready again. */
static void test_redis_hangs(void **state)
{
    fx *f = *state;
    f->x.cfg.reply_timeout_ms = 300;
    f->x.cfg.health_interval_ms = 50;
    f->x.cfg.connect_timeout_ms = 300;
    start_ready(f, NULL);
    sfx_run_for(&f->x, 200); /* idle PINGs keep a healthy connection up */
    assert_int_equal(f->x.down, 0);
    kill(f->r.proc.pid, SIGSTOP);
    const char *set[] = {"SET", "{ariq}:z", "1"};
    assert_int_equal(cmd(f, count_cb, f, 3, set), 0);
    uint64_t t0 = clock_mono_ms();
    assert_true(sfx_wait(&f->x, &f->x.down, 1, 3000));
    uint64_t took = clock_mono_ms() - t0;
    assert_true(took >= 250 && took < 2000);
    assert_int_equal(f->x.nulls, 1);
    assert_non_null(strstr(f->x.down_reason, "no reply"));
    kill(f->r.proc.pid, SIGCONT);
    assert_true(sfx_wait(&f->x, &f->x.ready, 2, 5000));
    assert_int_equal(cmd(f, count_cb, f, 3, set), 0);
    assert_true(sfx_wait(&f->x, &f->x.replies, 1, 2000));
}

/* A scripts dir that cannot be read is a clear error at store_new. */
static void test_bad_scripts_dir(void **state)
{
    fx *f = *state;
    snprintf(f->x.cfg.scripts_dir, sizeof f->x.cfg.scripts_dir,
             "/nonexistent/ariq-schema");
    store_callbacks cbs = {0};
    char err[256] = "";
    sfx_log_capture(false);
    assert_int_equal(store_new(f->x.base, &f->x.cfg, &cbs, f, &f->x.s, err, sizeof err),
                     ARIQ_EINVAL);
    assert_null(f->x.s);
    assert_non_null(strstr(err, "/nonexistent/ariq-schema"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as every daemon does: hiredis writes with write(2) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_ready_ebusy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_wrong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_select_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_evalsha, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noscript_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_on_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_null_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_10000, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_scripts_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_closes_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_namespace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broken_script, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_on_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_hangs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
