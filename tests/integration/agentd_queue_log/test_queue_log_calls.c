/* End to end: a real queued on the simulator, a real agentd writing the
 * queue_log, and a scripted set of calls. The file must hold, in order, the
 * lines Asterisk 22's app_queue writes for the same calls (its
 * ast_queue_log format strings: see test_queue_log_format.c for each):
 *
 *   agent 1001 logs in           ADDMEMBER
 *   caller A answered, agent '#' ENTERQUEUE, CONNECT, COMPLETEAGENT
 *   agent 1001 hangs up          REMOVEMEMBER
 *   caller B hangs up waiting    ENTERQUEUE, ABANDON
 *   caller C waits past timeout  ENTERQUEUE, EXITWITHTIMEOUT
 *
 * Each line is checked field by field: the time (epoch seconds within the
 * run), callid (the channel's uniqueid), queue, agent, event, and every data
 * field: positions exactly, durations as whole seconds within what the run
 * allows (the simulator runs 100x fast, so they are small). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../agentd_api/agentd_proc.h"
#include "../queued_cross/cluster_util.h"
#include "proc.h"

#define SCALE 0.01
#define MAXLINES 32
#define MAXF 12

static agentd_proc A;
static char qlog[700];

static int setup(void **state)
{
    /* timeout 300 s: 3 s at this scale */
    if (start(state, 1, SCALE, "sweep_ms = 50\n",
              "[queue support]\nannounce_frequency = 0\ntimeout = 300\n") != 0)
        return -1;
    char dir[600], extra[800];
    proc_tmpdir("qlog_calls", dir, sizeof dir);
    snprintf(qlog, sizeof qlog, "%s/queue_log", dir);
    unlink(qlog);
    snprintf(extra, sizeof extra, "queue_log = %s\nqueue_log_agents = member\n", qlog);
    return agentd_proc_start(&A, &C->redis, extra);
}

static int stop_all(void **state)
{
    int st = agentd_proc_stop(&A);
    return teardown(state) | (st == 0 ? 0 : -1);
}

/* The file's lines, split on '|' (fields point into lines[i]). */
typedef struct qline {
    char text[512];
    char *f[MAXF];
    int nf;
} qline;

static int read_lines(qline *v, int max)
{
    FILE *fp = fopen(qlog, "r");
    if (!fp)
        return 0;
    int n = 0;
    char buf[512];
    while (n < max && fgets(buf, sizeof buf, fp)) {
        buf[strcspn(buf, "\n")] = '\0';
        qline *l = &v[n++];
        snprintf(l->text, sizeof l->text, "%s", buf);
        l->nf = 0;
        char *p = l->text;
        while (l->nf < MAXF) {
            l->f[l->nf++] = p;
            char *bar = strchr(p, '|');
            if (!bar)
                break;
            *bar = '\0';
            p = bar + 1;
        }
    }
    fclose(fp);
    return n;
}

static int wait_lines(qline *v, int want)
{
    int n = 0;
    for (int i = 0; i < 200 && (n = read_lines(v, MAXLINES)) < want; i++)
        sleep_ms(50);
    return n;
}

static long num(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end)
        fail_msg("not a whole number: '%s'", s);
    return v;
}

/* Asserts line l is `callid|queue|agent|EVENT` with the data fields
 * `data` ("=" prefix: exactly; "~N": a whole number 0..N; "*": anything),
 * stamped within [t0, t1]. */
static void expect(const qline *l, time_t t0, time_t t1, const char *callid, const char *queue,
                   const char *agent, const char *event, const char *const *data, int ndata)
{
    char ctx[600];
    snprintf(ctx, sizeof ctx, "line '%s|%s|%s|%s|%s...' (want %s)", l->f[0],
             l->nf > 1 ? l->f[1] : "", l->nf > 2 ? l->f[2] : "", l->nf > 3 ? l->f[3] : "",
             l->nf > 4 ? l->f[4] : "", event);
    if (l->nf != 5 + ndata)
        fail_msg("%s: %d fields, want %d", ctx, l->nf, 5 + ndata);
    long t = num(l->f[0]);
    if (t < (long)t0 || t > (long)t1)
        fail_msg("%s: time %ld outside the run [%ld, %ld]", ctx, t, (long)t0, (long)t1);
    if (strcmp(l->f[1], callid) || strcmp(l->f[2], queue) || strcmp(l->f[3], agent) ||
        strcmp(l->f[4], event))
        fail_msg("%s: want callid=%s queue=%s agent=%s", ctx, callid, queue, agent);
    for (int i = 0; i < ndata; i++) {
        const char *want = data[i], *got = l->f[5 + i];
        if (want[0] == '=' && strcmp(got, want + 1) != 0)
            fail_msg("%s: data field %d is '%s', want '%s'", ctx, i + 1, got, want + 1);
        if (want[0] == '~') {
            long v = num(got), max = num(want + 1);
            if (v < 0 || v > max)
                fail_msg("%s: data field %d is %ld, want 0..%ld", ctx, i + 1, v, max);
        }
    }
}

#define D(...) ((const char *const[]){__VA_ARGS__}), \
               (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static void test_scripted_calls(void **state)
{
    (void)state;
    time_t t0 = time(NULL);
    char agent[128], a[128], b[128], c[128];
    agent_in(N1, "support", "1001", agent, sizeof agent);
    assert_true(wait_events("AGENTLOGIN", 1));

    caller_in(N1, "support", a, sizeof a);
    wait_connected(a, agent);
    assert_true(wait_events("CONNECT", 1));
    sleep_ms(1100); /* a talk time of 1 s at least in the wall clock */
    assert_int_equal(sim_send_dtmf(&C->sim, N1, agent, "#"), 204);
    assert_true(wait_gone(N1, a));
    assert_true(wait_events("COMPLETEAGENT", 1));
    hang_up(N1, agent);
    assert_true(wait_events("AGENTLOGOFF", 1));

    caller_in(N1, "support", b, sizeof b);
    assert_true(wait_moh(N1, b));
    hang_up(N1, b);
    assert_true(wait_events("ABANDON", 1));

    caller_in(N1, "support", c, sizeof c);
    assert_true(wait_events("EXITWITHTIMEOUT", 1));

    qline v[MAXLINES];
    int n = wait_lines(v, 9);
    time_t t1 = time(NULL) + 1;
    for (int i = 0; i < n; i++)
        print_message("queue_log: %s|%s|%s|%s|%s\n", v[i].f[0], v[i].f[1], v[i].f[2],
                      v[i].f[3], v[i].f[4]);
    assert_int_equal(n, 9);
    long span = (long)(t1 - t0) + 1; /* no duration can exceed the run */
    char sp[24];
    snprintf(sp, sizeof sp, "~%ld", span);
    /* ADDMEMBER "%s" "" (not paused) */
    expect(&v[0], t0, t1, agent, "support", "1001", "ADDMEMBER", D("="));
    /* ENTERQUEUE url|callerid|position */
    expect(&v[1], t0, t1, a, "support", "NONE", "ENTERQUEUE", D("=", "=5551000", "=1"));
    /* CONNECT holdtime|bridgedchanneluniqueid|ringtime */
    char peer[140];
    snprintf(peer, sizeof peer, "=%s", agent);
    expect(&v[2], t0, t1, a, "support", "1001", "CONNECT", D(sp, peer, sp));
    /* COMPLETEAGENT holdtime|calltime|origposition; it talked >= 1 s */
    expect(&v[3], t0, t1, a, "support", "1001", "COMPLETEAGENT", D(sp, sp, "=1"));
    assert_true(num(v[3].f[6]) >= 1);
    /* REMOVEMEMBER "%s" "" */
    expect(&v[4], t0, t1, agent, "support", "1001", "REMOVEMEMBER", D("="));
    expect(&v[5], t0, t1, b, "support", "NONE", "ENTERQUEUE", D("=", "=5551000", "=1"));
    /* ABANDON position|origposition|waittime */
    expect(&v[6], t0, t1, b, "support", "NONE", "ABANDON", D("=1", "=1", sp));
    expect(&v[7], t0, t1, c, "support", "NONE", "ENTERQUEUE", D("=", "=5551000", "=1"));
    /* EXITWITHTIMEOUT position|origposition|waittime: 3 s at this scale */
    expect(&v[8], t0, t1, c, "support", "NONE", "EXITWITHTIMEOUT", D("=1", "=1", sp));
    assert_true(num(v[8].f[7]) >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scripted_calls, setup, stop_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
