/* The checker the random run relies on (tests/support/queue_check.h) must
 * catch what it claims to: each case writes a hand-made events stream into
 * a real redis-server and runs qc_check over it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_check.h"
#include "redis_proc.h"

static redis_proc R;
static redisContext *RC;

/* Priorities: a caller named pN has priority N, others 0. */
static int prio(const char *callid, void *ud)
{
    (void)ud;
    return callid[0] == 'p' ? atoi(callid + 1) : 0;
}

/* Writes the stream: one entry per line, "EVENT QUEUE CALLID AGENT [name value]...". */
static void write_stream(const char *const *lines)
{
    freeReplyObject(redisCommand(RC, "DEL {ariq}:events"));
    for (size_t i = 0; lines[i]; i++) {
        char buf[512], *save = NULL;
        const char *argv[40];
        int argc = 0;
        snprintf(buf, sizeof buf, "%s", lines[i]);
        argv[argc++] = "XADD";
        argv[argc++] = "{ariq}:events";
        argv[argc++] = "*";
        static const char *const names[] = {"event", "queue", "callid", "agent"};
        char *tok = strtok_r(buf, " ", &save);
        for (int k = 0; tok && argc < 38; k++, tok = strtok_r(NULL, " ", &save)) {
            if (k < 4)
                argv[argc++] = names[k];
            argv[argc++] = tok;
        }
        redisReply *r = redisCommandArgv(RC, argc, argv, NULL);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
    }
}

/* Runs the checker; returns its result, the message on stderr. */
static int check(const char *const *lines, bool final)
{
    write_stream(lines);
    qc_stream *s = qc_stream_load(RC, NULL);
    assert_non_null(s);
    qc_opts o = {.final = final, .priority_of = prio};
    char err[512] = "";
    int rc = qc_check(s, &o, NULL, err, sizeof err);
    qc_stream_free(s);
    if (rc)
        fprintf(stderr, "  checker: %s\n", err);
    return rc;
}

#define LOGIN  "AGENTLOGIN NONE ach a1"
#define LOGOFF "AGENTLOGOFF NONE ach a1"

static void test_a_good_run_passes(void **state)
{
    (void)state;
    const char *lines[] = {
        "ENTERQUEUE q c1 NONE position 1",
        "ENTERQUEUE q c2 NONE position 2",
        "ENTERQUEUE r c2 NONE position 1",
        LOGIN,
        "PAIRED q c1 a1 pairing x1 agent_channel ach",
        "CONNECT q c1 a1 bridgedchanneluniqueid ach pairing x1",
        "COMPLETECALLER q c1 a1 pairing x1",
        "UNPAIRED q c1 a1 pairing x1 reason complete",
        "PAIRED r c2 a1 pairing x2 agent_channel ach",
        "UNPAIRED r c2 a1 pairing x2 reason rollback", /* back in both queues */
        "PAIRED q c2 a1 pairing x3 agent_channel ach",
        "CONNECT q c2 a1 bridgedchanneluniqueid ach pairing x3",
        "WITHDRAW r c2 NONE position 1",
        "COMPLETEAGENT q c2 a1 pairing x3",
        "UNPAIRED q c2 a1 pairing x3 reason complete",
        LOGOFF,
        NULL};
    assert_int_equal(check(lines, true), 0);
}

static void test_order_by_priority_then_arrival(void **state)
{
    (void)state;
    const char *prio_first[] = {"ENTERQUEUE q c1 NONE position 1",
                                "ENTERQUEUE q p3 NONE position 1", LOGIN,
                                "PAIRED q c1 a1 pairing x1 agent_channel ach", NULL};
    assert_int_equal(check(prio_first, false), -1);
    const char *arrival_first[] = {"ENTERQUEUE q c1 NONE position 1",
                                   "ENTERQUEUE q c2 NONE position 2", LOGIN,
                                   "PAIRED q c2 a1 pairing x1 agent_channel ach", NULL};
    assert_int_equal(check(arrival_first, false), -1);
    const char *bad_position[] = {"ENTERQUEUE q c1 NONE position 1",
                                  "ENTERQUEUE q p2 NONE position 2", NULL};
    assert_int_equal(check(bad_position, false), -1);
}

static void test_one_end_per_entry(void **state)
{
    (void)state;
    const char *twice[] = {"ENTERQUEUE q c1 NONE position 1",
                           "ABANDON q c1 NONE position 1", "ABANDON q c1 NONE position 1",
                           NULL};
    assert_int_equal(check(twice, false), -1);
    const char *never[] = {"ENTERQUEUE q c1 NONE position 1", NULL};
    assert_int_equal(check(never, false), 0);
    assert_int_equal(check(never, true), -1);
    const char *no_complete[] = {"ENTERQUEUE q c1 NONE position 1",
                                 LOGIN,
                                 "PAIRED q c1 a1 pairing x1 agent_channel ach",
                                 "CONNECT q c1 a1 bridgedchanneluniqueid ach pairing x1",
                                 "UNPAIRED q c1 a1 pairing x1 reason complete",
                                 LOGOFF,
                                 NULL};
    assert_int_equal(check(no_complete, true), -1);
    const char *abandon_after_connect[] = {
        "ENTERQUEUE q c1 NONE position 1",
        LOGIN,
        "PAIRED q c1 a1 pairing x1 agent_channel ach",
        "CONNECT q c1 a1 bridgedchanneluniqueid ach pairing x1",
        "ABANDON q c1 NONE",
        NULL};
    assert_int_equal(check(abandon_after_connect, false), -1);
}

static void test_no_party_in_two_pairings(void **state)
{
    (void)state;
    const char *agent_twice[] = {"ENTERQUEUE q c1 NONE position 1",
                                 "ENTERQUEUE q c2 NONE position 2",
                                 LOGIN,
                                 "PAIRED q c1 a1 pairing x1 agent_channel ach",
                                 "PAIRED q c2 a1 pairing x2 agent_channel ach",
                                 NULL};
    assert_int_equal(check(agent_twice, false), -1);
    const char *caller_twice[] = {"ENTERQUEUE q c1 NONE position 1",
                                  LOGIN,
                                  "AGENTLOGIN NONE bch b1",
                                  "PAIRED q c1 a1 pairing x1 agent_channel ach",
                                  "PAIRED q c1 b1 pairing x2 agent_channel bch",
                                  NULL};
    assert_int_equal(check(caller_twice, false), -1);
    const char *wrong_peer[] = {"ENTERQUEUE q c1 NONE position 1", LOGIN,
                                "PAIRED q c1 a1 pairing x1 agent_channel ach",
                                "CONNECT q c1 a1 bridgedchanneluniqueid zzz pairing x1",
                                NULL};
    assert_int_equal(check(wrong_peer, false), -1);
    const char *unpaired_twice[] = {"ENTERQUEUE q c1 NONE position 1",
                                    LOGIN,
                                    "PAIRED q c1 a1 pairing x1 agent_channel ach",
                                    "UNPAIRED q c1 a1 pairing x1 reason rollback",
                                    "UNPAIRED q c1 a1 pairing x1 reason rollback",
                                    NULL};
    assert_int_equal(check(unpaired_twice, false), -1);
    const char *logged_off_paired[] = {"ENTERQUEUE q c1 NONE position 1", LOGIN,
                                       "PAIRED q c1 a1 pairing x1 agent_channel ach",
                                       LOGOFF, NULL};
    assert_int_equal(check(logged_off_paired, false), -1);
}

static int setup(void **state)
{
    (void)state;
    if (redis_proc_start(&R, NULL) != 0)
        return -1;
    RC = redis_proc_connect(&R);
    return RC ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    redisFree(RC);
    return redis_proc_stop(&R, SIGTERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_good_run_passes),
        cmocka_unit_test(test_order_by_priority_then_arrival),
        cmocka_unit_test(test_one_end_per_entry),
        cmocka_unit_test(test_no_party_in_two_pairings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
