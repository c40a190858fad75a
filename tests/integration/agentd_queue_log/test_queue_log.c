/* The queue_log writer on a libevent loop over a real redis-server: a
 * scripted events stream (entries shaped as queue.lua's emit writes them)
 * becomes the app_queue lines, in stream order, each exactly once: with
 * two writers at once, after a writer dies between fsync and commit, and
 * across a logrotate rename + reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "proc.h"
#include "queue_log.h"
#include "redis_proc.h"
#include "store/store.h"

typedef struct fixture {
    redis_proc r;
    struct event_base *base;
    char dir[512], path[600];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || redis_proc_start(&f->r, NULL) != 0)
        return -1;
    f->base = event_base_new();
    proc_tmpdir("agentd_queue_log", f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/queue_log", f->dir);
    unlink(f->path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    event_base_free(f->base);
    redis_proc_stop(&f->r, SIGTERM);
    free(f);
    return 0;
}

static store *mkstore(fixture *f)
{
    store_config c;
    store_config_init(&c);
    c.port = f->r.port;
    store *s = NULL;
    char err[256];
    store_callbacks cbs = {0};
    assert_int_equal(store_new(f->base, &c, &cbs, NULL, &s, err, sizeof err), 0);
    return s;
}

static queue_log *mkqlog(fixture *f, store *s, const char *owner, int batch)
{
    queue_log_config c;
    queue_log_config_init(&c);
    snprintf(c.path, sizeof c.path, "%s", f->path);
    snprintf(c.owner, sizeof c.owner, "%s", owner);
    c.poll_ms = 5;
    c.batch = batch;
    c.lease_ms = 1000;
    queue_log *q = NULL;
    char err[256];
    assert_int_equal(queue_log_new(f->base, s, &c, &q, err, sizeof err), 0);
    return q;
}

static void spin(fixture *f, int ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)ms;
    struct timeval tv = {0, 2000};
    while (clock_mono_ms() < end) {
        event_base_loopexit(f->base, &tv);
        event_base_dispatch(f->base);
    }
}

static uint64_t lines_of(const queue_log *q)
{
    queue_log_stats st;
    queue_log_get_stats(q, &st);
    return st.lines;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return strdup("");
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* ---- a scripted stream ------------------------------------------------------------- */

/* XADD with explicit ids 1700000000+i-1 so ts and ids are known; `rest`
 * is space-separated field value pairs, "~" standing for an empty value. */
static void xadd(fixture *f, int i, const char *ev, const char *q, const char *c, const char *a,
                 const char *rest)
{
    char id[32], ts[32], buf[1024];
    snprintf(id, sizeof id, "%d-1", 1700000000 + i);
    snprintf(ts, sizeof ts, "%d000", 1700000000 + i);
    const char *argv[64] = {"XADD", "{ariq}:events", id, "event", ev, "ts_ms", ts, "queue", q,
                            "callid", c, "agent", a, "node", "n1"};
    int argc = 15;
    snprintf(buf, sizeof buf, "%s", rest);
    for (char *t = strtok(buf, " "); t && argc < 64; t = strtok(NULL, " "))
        argv[argc++] = strcmp(t, "~") ? t : "";
    redisContext *rc = redis_proc_connect(&f->r);
    assert_non_null(rc);
    redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    redisFree(rc);
}

/* One call of every kind, and what app_queue writes for it. */
static const char *script(fixture *f, int base)
{
    xadd(f, base + 0, "AGENTLOGIN", "NONE", "a-1", "1001",
         "channel PJSIP/1001-1 queues support&sales");
    xadd(f, base + 1, "ENTERQUEUE", "support", "c-1", "NONE",
         "url ~ callerid 555 position 1 callername Ann");
    xadd(f, base + 2, "PAIRED", "support", "c-1", "1001", "pairing p3 holdtime_ms 900");
    xadd(f, base + 3, "CONNECT", "support", "c-1", "1001",
         "holdtime 2 bridgedchanneluniqueid a-1 ringtime 0 holdtime_ms 2000 ringtime_ms 5 "
         "pairing p3");
    xadd(f, base + 4, "RECORDSTART", "support", "c-1", "1001", "recording r1 file r1 pairing p3");
    xadd(f, base + 5, "COMPLETECALLER", "support", "c-1", "1001",
         "holdtime 2 calltime 30 origposition 1 holdtime_ms 2000 calltime_ms 30000 pairing p3");
    xadd(f, base + 6, "ENTERQUEUE", "sales", "c-2", "NONE",
         "url ~ callerid 556 position 1 callername Bob");
    xadd(f, base + 7, "ABANDON", "sales", "c-2", "NONE",
         "position 1 origposition 1 waittime 4 waittime_ms 4100");
    xadd(f, base + 8, "PAUSE", "support", "NONE", "1001", "reason lunch");
    xadd(f, base + 9, "AGENTLOGOFF", "NONE", "a-1", "1001",
         "channel PJSIP/1001-1 logintime 60 reason hangup");
    static char want[2048];
    int t = 1700000000 + base;
    snprintf(want, sizeof want,
             "%d|a-1|support|1001|ADDMEMBER|\n"
             "%d|a-1|sales|1001|ADDMEMBER|\n"
             "%d|c-1|support|NONE|ENTERQUEUE||555|1\n"
             "%d|c-1|support|1001|CONNECT|2|a-1|0\n"
             "%d|c-1|support|1001|RECORDSTART|r1|r1|p3\n"
             "%d|c-1|support|1001|COMPLETECALLER|2|30|1\n"
             "%d|c-2|sales|NONE|ENTERQUEUE||556|1\n"
             "%d|c-2|sales|NONE|ABANDON|1|1|4\n"
             "%d|NONE|support|1001|PAUSE|lunch\n"
             "%d|a-1|support|1001|REMOVEMEMBER|\n"
             "%d|a-1|sales|1001|REMOVEMEMBER|\n",
             t, t, t + 1, t + 3, t + 4, t + 5, t + 6, t + 7, t + 8, t + 9, t + 9);
    return want;
}
#define SCRIPT_LINES 11

static void wait_lines(fixture *f, queue_log **qs, int nq, uint64_t n)
{
    for (int i = 0; i < 400; i++) {
        uint64_t tot = 0;
        for (int k = 0; k < nq; k++)
            tot += qs[k] ? lines_of(qs[k]) : 0;
        if (tot >= n)
            break;
        spin(f, 10);
    }
    spin(f, 50); /* and nothing more comes */
}

/* The scripted stream, read in batches of 3, gives app_queue's lines in
 * stream order; the position lands on the last entry. */
static void t_order(void **state)
{
    fixture *f = *state;
    const char *want = script(f, 0);
    store *s = mkstore(f);
    queue_log *q = mkqlog(f, s, "agentd-a", 3);
    wait_lines(f, &q, 1, SCRIPT_LINES);
    char *got = slurp(f->path);
    assert_string_equal(got, want);
    free(got);
    redisReply *r = redis_proc_cmd(&f->r, "HGET {ariq}:queuelog:pos id");
    assert_string_equal(r->str, "1700000009-1");
    freeReplyObject(r);
    r = redis_proc_cmd(&f->r, "HLEN {ariq}:queuelog:members");
    assert_int_equal(r->integer, 0); /* logged in and out */
    freeReplyObject(r);
    queue_log_free(q);
    spin(f, 20);
    store_free(s);
    r = redis_proc_cmd(&f->r, "EXISTS {ariq}:queuelog:lease");
    assert_int_equal(r->integer, 0); /* released on a clean stop */
    freeReplyObject(r);
}

/* Two writers on one file and one Redis: each line once, in order, also
 * when the first stops and the second takes over mid-stream. */
static void t_two_writers(void **state)
{
    fixture *f = *state;
    store *s1 = mkstore(f), *s2 = mkstore(f);
    queue_log *q[2] = {mkqlog(f, s1, "agentd-a", 2), mkqlog(f, s2, "agentd-b", 2)};
    char want[8192] = "";
    strcat(want, script(f, 0));
    wait_lines(f, q, 2, SCRIPT_LINES);
    queue_log_stats a, b;
    queue_log_get_stats(q[0], &a);
    queue_log_get_stats(q[1], &b);
    assert_int_equal(a.leader + b.leader, 1);
    queue_log_free(q[a.leader ? 0 : 1]); /* the writer stops; the other takes over */
    q[a.leader ? 0 : 1] = NULL;
    strcat(want, script(f, 100));
    wait_lines(f, q, 2, 2 * SCRIPT_LINES);
    char *got = slurp(f->path);
    assert_string_equal(got, want);
    free(got);
    queue_log_free(q[0]);
    queue_log_free(q[1]);
    spin(f, 20);
    store_free(s1);
    store_free(s2);
}

static int crash_after_first(queue_log *q, void *ud)
{
    (void)q;
    int *n = ud;
    return ++*n == 2; /* the second batch is fsynced, never committed */
}

/* A writer dies between fsync and commit: the next one (after the lease
 * lapsed) writes no line twice and misses none. A half line left by a
 * crash inside write is cut. */
static void t_crash(void **state)
{
    fixture *f = *state;
    const char *want = script(f, 0);
    store *s = mkstore(f);
    queue_log *q = mkqlog(f, s, "agentd-a", 3);
    int n = 0;
    queue_log_set_crash_hook(q, crash_after_first, &n);
    spin(f, 300);
    queue_log_stats st;
    queue_log_get_stats(q, &st);
    assert_int_equal(st.batches, 1);
    queue_log_free(q); /* crashed: the lease is not released */
    spin(f, 20);
    store_free(s);
    FILE *fp = fopen(f->path, "a");
    fputs("1700000004|c-1|supp", fp); /* a torn write */
    fclose(fp);

    s = mkstore(f);
    q = mkqlog(f, s, "agentd-b", 3);
    spin(f, 1300); /* the crashed writer's 1 s lease lapses */
    wait_lines(f, &q, 1, 1);
    char *got = slurp(f->path);
    assert_string_equal(got, want);
    free(got);
    queue_log_get_stats(q, &st);
    assert_true(st.skipped_lines >= 1);
    queue_log_free(q);
    spin(f, 20);
    store_free(s);
}

/* logrotate: rename, then SIGHUP -> queue_log_reopen; the next lines go to
 * a new file at the old path, none lost or doubled. */
static void t_reopen(void **state)
{
    fixture *f = *state;
    char want1[2048], rotated[700];
    snprintf(want1, sizeof want1, "%s", script(f, 0));
    store *s = mkstore(f);
    queue_log *q = mkqlog(f, s, "agentd-a", 64);
    wait_lines(f, &q, 1, SCRIPT_LINES);
    snprintf(rotated, sizeof rotated, "%s.1", f->path);
    assert_int_equal(rename(f->path, rotated), 0);
    assert_int_equal(queue_log_reopen(q), 0);
    const char *want2 = script(f, 100);
    wait_lines(f, &q, 1, 2 * SCRIPT_LINES);
    char *got = slurp(rotated);
    assert_string_equal(got, want1);
    free(got);
    got = slurp(f->path);
    assert_string_equal(got, want2);
    free(got);
    queue_log_free(q);
    spin(f, 20);
    store_free(s);
    unlink(rotated);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_order, setup, teardown),
        cmocka_unit_test_setup_teardown(t_two_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(t_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(t_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
