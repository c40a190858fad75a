/* The Redis test harness itself: start, password, AOF restart, stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <string.h>

#include "redis_proc.h"

/* A started server answers, holds what is written, and is gone after stop. */
static void test_start_stop(void **state)
{
    (void)state;
    redis_proc r;
    assert_int_equal(redis_proc_start(&r, NULL), 0);
    assert_true(r.port > 0);
    redisReply *rep = redis_proc_cmd(&r, "SET k v");
    assert_non_null(rep);
    freeReplyObject(rep);
    rep = redis_proc_cmd(&r, "GET k");
    assert_non_null(rep);
    assert_string_equal(rep->str, "v");
    freeReplyObject(rep);
    assert_int_equal(redis_proc_stop(&r, SIGTERM), 0);
    assert_null(redis_proc_connect(&r));
}

/* With a password, an unauthenticated client is refused. */
static void test_password(void **state)
{
    (void)state;
    redis_proc r;
    redis_opts o = {.password = "s3cret"};
    assert_int_equal(redis_proc_start(&r, &o), 0);
    redisContext *c = redisConnect("127.0.0.1", r.port);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "PING");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    redisFree(c);
    rep = redis_proc_cmd(&r, "PING");
    assert_non_null(rep);
    assert_string_equal(rep->str, "PONG");
    freeReplyObject(rep);
    redis_proc_stop(&r, SIGKILL);
}

/* With AOF, data survives a crash and a restart on the same port; without,
 * it does not. */
static void restart_keeps(bool aof)
{
    redis_proc r;
    redis_opts o = {.aof = aof};
    assert_int_equal(redis_proc_start(&r, &o), 0);
    int port = r.port;
    redisReply *rep = redis_proc_cmd(&r, "SET k v");
    freeReplyObject(rep);
    if (aof) { /* fsync everysec: make sure it reached the file */
        rep = redis_proc_cmd(&r, "CONFIG SET appendfsync always");
        freeReplyObject(rep);
        rep = redis_proc_cmd(&r, "SET k2 v2");
        freeReplyObject(rep);
    }
    assert_int_equal(redis_proc_restart(&r), 0);
    assert_int_equal(r.port, port);
    rep = redis_proc_cmd(&r, "EXISTS k");
    assert_non_null(rep);
    assert_int_equal(rep->integer, aof ? 1 : 0);
    freeReplyObject(rep);
    redis_proc_stop(&r, SIGTERM);
}

static void test_restart_aof(void **state)
{
    (void)state;
    restart_keeps(true);
}

static void test_restart_no_aof(void **state)
{
    (void)state;
    restart_keeps(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_stop),
        cmocka_unit_test(test_password),
        cmocka_unit_test(test_restart_aof),
        cmocka_unit_test(test_restart_no_aof),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
