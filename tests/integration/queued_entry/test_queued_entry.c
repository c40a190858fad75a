/* queued turns away every entry it cannot serve as app_queue users expect:
 * QUEUESTATUS set, then the channel continues in the dialplan (unanswered,
 * alive), with nothing written to Redis and the daemon unharmed. */
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
#include <unistd.h>

#include "queue_check.h"
#include "queued_proc.h"
#include "redis_proc.h"
#include "sim_proc.h"

typedef queued_env fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || queued_env_start(f, 0.01, NULL, "[queue support]\n[queue sales]\n") != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int st = queued_env_stop(f);
    free(f);
    return (WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : -1; /* a clean SIGTERM stop */
}

/* The value the timeline says `chan` got for QUEUESTATUS before it
 * continued, or NULL if it did not continue within 5 s. */
static const char *turned_away_with(fixture *f, const char *chan, char *buf, size_t len)
{
    json_t *cont = sim_wait_timeline(&f->sim, 0, chan, "continued", 5000);
    if (!cont)
        return NULL;
    json_decref(cont);
    json_t *c = sim_channel(&f->sim, 0, chan), *e;
    size_t i;
    buf[0] = '\0';
    json_array_foreach(json_object_get(c, "timeline"), i, e)
    {
        const char *ev = json_string_value(json_object_get(e, "ev"));
        if (strcmp(ev, "continued") == 0)
            break; /* only what was set before it counts */
        if (strcmp(ev, "varset") == 0 &&
            strcmp(json_string_value(json_object_get(e, "variable")), "QUEUESTATUS") == 0)
            snprintf(buf, len, "%s", json_string_value(json_object_get(e, "value")));
    }
    assert_true(json_is_true(json_object_get(c, "alive"))); /* back in the dialplan */
    assert_false(json_is_true(json_object_get(c, "in_stasis")));
    assert_string_equal(json_string_value(json_object_get(c, "state")), "Ring"); /* unanswered */
    json_decref(c);
    return buf;
}

static void test_bad_entries(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *body; /* POST /sim/calls */
        const char *status;
    } cases[] = {
        {"{\"app\":\"queue\",\"args\":[\"bogus\"]}", "INVALIDARGS"},
        {"{\"app\":\"queue\",\"args\":[]}", "INVALIDARGS"},
        {"{\"app\":\"queue\",\"args\":[\"caller\",\"support\",\"high\"]}", "INVALIDARGS"},
        {"{\"app\":\"queue\",\"args\":[\"caller\",\"bad/name\"]}", "INVALIDARGS"},
        {"{\"app\":\"queue\",\"args\":[\"caller\",\"support\",\"1\",\"x\"]}", "INVALIDARGS"},
        {"{\"app\":\"queue\",\"args\":[\"agent\",\"support\"],\"caller_number\":\"\"}",
         "INVALIDARGS"},
        {"{\"app\":\"queue\",\"args\":[\"link\"]}", "INVALIDARGS"},
        {"{\"app\":\"queue\",\"args\":[\"caller\",\"nosuchq\",\"0\"]}", "UNKNOWNQUEUE"},
        {"{\"app\":\"queue\",\"args\":[\"caller\",\"support&nosuchq\"]}", "UNKNOWNQUEUE"},
        {"{\"app\":\"queue\",\"args\":[\"agent\",\"sales&other\",\"1001\"]}", "UNKNOWNQUEUE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char chan[128], got[64];
        json_t *c = sim_place_call_json(&f->sim, 0, cases[i].body, chan, sizeof chan);
        assert_non_null(c);
        json_decref(c);
        const char *status = turned_away_with(f, chan, got, sizeof got);
        if (!status || strcmp(status, cases[i].status) != 0)
            fail_msg("case %zu %s: QUEUESTATUS '%s', want '%s'", i, cases[i].body,
                     status ? status : "(never continued)", cases[i].status);
    }
    /* nothing reached Redis (only the node's heartbeat is there), and the
     * daemon is fine */
    redisContext *rc = redis_proc_connect(&f->redis);
    assert_non_null(rc);
    char err[256];
    if (qc_redis_clean(rc, "ariq", err, sizeof err) != 0)
        fail_msg("%s", err);
    redisReply *rep = redisCommand(rc, "EXISTS {ariq}:seq {ariq}:events");
    assert_non_null(rep);
    assert_int_equal(rep->integer, 0);
    freeReplyObject(rep);
    redisFree(rc);
    assert_true(queued_proc_alive(&f->q));
    assert_true(queued_proc_log_count(&f->q, "status=INVALIDARGS") >= 7);
}

/* A caller that hangs up while being turned away ends the leg quietly. */
static void test_hangup_while_turned_away(void **state)
{
    fixture *f = *state;
    assert_int_equal(sim_fault(&f->sim, 0, "{\"latency_ms\":200}"), 200);
    char chan[128];
    json_t *c = sim_place_call_json(&f->sim, 0, "{\"app\":\"queue\",\"args\":[\"bogus\"]}", chan,
                                    sizeof chan);
    assert_non_null(c);
    json_decref(c);
    usleep(50 * 1000);
    assert_int_equal(sim_hangup_call(&f->sim, 0, chan, 16), 204);
    assert_int_equal(sim_fault(&f->sim, 0, "{\"latency_ms\":0}"), 200);
    assert_true(sim_wait_live_channels(&f->sim, 0, 0, 3000));
    usleep(300 * 1000);
    assert_true(queued_proc_alive(&f->q));
}

/* ARI answering 500 for a while: the turn-away retries until it goes through. */
static void test_retries_through_errors(void **state)
{
    fixture *f = *state;
    assert_int_equal(sim_fault(&f->sim, 0, "{\"http_500\":3}"), 200);
    char chan[128], got[64];
    json_t *c = sim_place_call_json(
        &f->sim, 0, "{\"app\":\"queue\",\"args\":[\"caller\",\"nosuchq\"]}", chan, sizeof chan);
    assert_non_null(c);
    json_decref(c);
    const char *status = turned_away_with(f, chan, got, sizeof got);
    assert_non_null(status);
    assert_string_equal(status, "UNKNOWNQUEUE");
    assert_true(queued_proc_log_count(&f->q, "retry_in_ms") >= 3);
}

/* queued --check: a bad config is refused with file:line, a good one passes. */
static void test_check_config(void **state)
{
    fixture *f = *state;
    char bin[512], cmd[2048];
    proc_build_path("queued/queued", bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "%s -c %s --check >/dev/null", bin, f->q.conf);
    assert_int_equal(system(cmd), 0);
    char bad[700];
    snprintf(bad, sizeof bad, "%s.bad", f->q.conf);
    FILE *fp = fopen(bad, "w");
    fputs("[general]\nnode_id = n1\nari_user = a\n[queue q]\nwrapuptime = soon\n", fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s -c %s --check 2>&1 | grep -q '%s:5: \\[queue q\\] wrapuptime'",
             bin, bad, bad);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s -c %s --check 2>/dev/null", bin, bad);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hangup_while_turned_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_through_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
