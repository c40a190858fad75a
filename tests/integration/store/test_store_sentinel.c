/* The store with Redis Sentinel, against real processes: a master, a
 * replica and three sentinels (redis-server --sentinel), all on free
 * loopback ports. The store asks the sentinels where the master is, checks
 * it with ROLE, skips sentinels that are dead or hung, and follows a
 * failover by itself. The redis-sentinel:// URL and the Sentinel fields of
 * store_config are checked in tests/unit/store_keys.
 *
 * Run without arguments: everything but the failover. With the argument
 * "failover": the failover test alone (ctest labels it fault too).
 *
 * Every wait is bounded; every test ends with the store freed, every
 * process stopped and the event base empty. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "harness.h"
#include "redis_proc.h"
#include "store/store.h"

#define NSENT 3
#define MASTER_PW "Mast3r@pw"    /* in a URL: Mast3r%40pw */
#define SENTINEL_PW "S3nt!nel/x" /* in a URL: S3nt%21nel%2Fx */

/* ---- fixture --------------------------------------------------------------- */

typedef struct fx {
    sfx x; /* first: a hook gets back to the fx from it */
    redis_proc master, replica, sent[NSENT];
    bool have_master, have_replica, have_sent[NSENT];
    char last_reply[128];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    sfx_init(&f->x);
    f->x.cfg.sentinel_timeout_ms = 500;
    sfx_log_capture(true);
    log_set_level(LOG_LVL_DEBUG);
    *state = f;
    return 0;
}

static void stop_all(fx *f)
{
    for (int i = 0; i < NSENT; i++)
        if (f->have_sent[i]) {
            kill(f->sent[i].proc.pid, SIGCONT); /* a test may have stopped it */
            redis_proc_stop(&f->sent[i], SIGKILL);
        }
    if (f->have_replica)
        redis_proc_stop(&f->replica, SIGKILL);
    if (f->have_master)
        redis_proc_stop(&f->master, SIGKILL);
}

/* Frees everything and checks that nothing is left on the loop. */
static int teardown(void **state)
{
    fx *f = *state;
    int left = sfx_fini(&f->x);
    stop_all(f);
    free(f);
    assert_int_equal(left, 0);
    return 0;
}

/* True once `r` answers INFO replication with `needle` in it. */
static bool info_has(const redis_proc *r, const char *needle, int timeout_ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;
    do {
        redisReply *rep = redis_proc_cmd(r, "INFO replication");
        bool ok = rep && rep->type == REDIS_REPLY_STRING && strstr(rep->str, needle);
        if (rep)
            freeReplyObject(rep);
        if (ok)
            return true;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    } while (clock_mono_ms() < end);
    return false;
}

/* A master, its replica in sync, and three sentinels watching them (quorum
 * 2, down after 500 ms). With peers, also waits until every sentinel knows
 * the replica and the two others (a failover needs that). */
static void start_cluster(fx *f, bool passwords, bool peers)
{
    redis_opts mo = {.password = passwords ? MASTER_PW : NULL};
    assert_int_equal(redis_proc_start(&f->master, &mo), 0);
    f->have_master = true;
    /* a full sync would wait 5 s for more replicas to share it */
    redisReply *rep = redis_proc_cmd(&f->master, "CONFIG SET repl-diskless-sync-delay 0");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    redis_opts ro = mo;
    ro.replicaof_port = f->master.port;
    assert_int_equal(redis_proc_start(&f->replica, &ro), 0);
    f->have_replica = true;
    assert_true(info_has(&f->replica, "master_link_status:up", 10000));
    assert_true(info_has(&f->master, "connected_slaves:1", 10000));
    sentinel_opts so = {.master_port = f->master.port,
                        .master_password = passwords ? MASTER_PW : NULL,
                        .password = passwords ? SENTINEL_PW : NULL};
    for (int i = 0; i < NSENT; i++) {
        assert_int_equal(redis_proc_start_sentinel(&f->sent[i], &so), 0);
        f->have_sent[i] = true;
    }
    for (int i = 0; peers && i < NSENT; i++)
        assert_int_equal(redis_proc_sentinel_wait(&f->sent[i], "mymaster", 1, NSENT - 1, 15000),
                         0);
}

/* "redis-sentinel://[creds@]127.0.0.1:P1,...,127.0.0.1:Pn/mymaster?..." with
 * the dead port `dead` first when not 0. */
static const char *sentinel_url(fx *f, bool passwords, int dead, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "redis-sentinel://%s",
                                passwords ? ":Mast3r%40pw@" : "");
    if (dead)
        o += (size_t)snprintf(buf + o, len - o, "127.0.0.1:%d,", dead);
    for (int i = 0; i < NSENT; i++)
        o += (size_t)snprintf(buf + o, len - o, "127.0.0.1:%d%s", f->sent[i].port,
                              i + 1 < NSENT ? "," : "");
    snprintf(buf + o, len - o, "/mymaster?db=3%s",
             passwords ? "&sentinel_password=S3nt%21nel%2Fx" : "");
    return buf;
}

/* The config names the sentinels (sentinel_url). */
static void use_sentinels(fx *f, bool passwords, int dead)
{
    char u[512], err[256];
    sentinel_url(f, passwords, dead, u, sizeof u);
    assert_int_equal(store_config_set_url(&f->x.cfg, u, err, sizeof err), 0);
}

static void reply_cb(store *s, const redisReply *r, void *pd)
{
    (void)s;
    fx *f = pd;
    if (!sfx_count_reply(&f->x, r))
        return;
    snprintf(f->last_reply, sizeof f->last_reply, "%s",
             r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR ||
                     r->type == REDIS_REPLY_STRING
                 ? r->str
                 : "?");
}

/* SETs key=val through the store and waits for the reply. */
static void store_set(fx *f, const char *key, const char *val)
{
    const char *argv[] = {"SET", key, val};
    int before = f->x.replies;
    assert_int_equal(store_command_argv(f->x.s, 3, argv, NULL, reply_cb, f), 0);
    assert_true(sfx_wait(&f->x, &f->x.replies, before + 1, 3000));
    assert_string_equal(f->last_reply, "OK");
}

/* GET key in db 3 of r; returns a new string or NULL. */
static char *get_db3(const redis_proc *r, const char *key)
{
    redisContext *c = redis_proc_connect(r);
    assert_non_null(c);
    freeReplyObject(redisCommand(c, "SELECT 3"));
    redisReply *rep = redisCommand(c, "GET %s", key);
    char *v = rep && rep->type == REDIS_REPLY_STRING ? strdup(rep->str) : NULL;
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return v;
}

static void assert_get_db3(const redis_proc *r, const char *key, const char *want)
{
    char *v = get_db3(r, key);
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

/* No password in any log line or in the last error. */
static void assert_no_password_logged(fx *f)
{
    assert_int_equal(sfx_lines_matching(0, "Mast3r", NULL, NULL), 0);
    assert_int_equal(sfx_lines_matching(0, "S3nt", NULL, NULL), 0);
    if (f->x.s) {
        assert_null(strstr(store_errmsg(f->x.s), "Mast3r"));
        assert_null(strstr(store_errmsg(f->x.s), "S3nt"));
    }
}

/* ---- against real sentinels ------------------------------------------------ */

/* Through three sentinels (with passwords) to the master: ready, commands
 * land in the master's db 3, the log names the sentinel that answered and
 * the master's address, and no password anywhere. */
static void test_connect(void **state)
{
    fx *f = *state;
    start_cluster(f, true, false);
    use_sentinels(f, true, 0);
    sfx_new_store(&f->x);
    assert_true(sfx_wait(&f->x, &f->x.ready, 1, 5000));
    assert_int_equal(f->x.down, 0);
    store_set(f, "{ariq}:via-sentinel", "yes");
    assert_get_db3(&f->master, "{ariq}:via-sentinel", "yes");

    char want[128];
    snprintf(want, sizeof want, "sentinel=127.0.0.1:%d master=mymaster addr=127.0.0.1:%d",
             f->sent[0].port, f->master.port);
    assert_int_equal(sfx_lines_matching(0, want, "skipped=0", NULL), 1);
    snprintf(want, sizeof want, "master=mymaster redis=127.0.0.1:%d db=3 ready",
             f->master.port);
    assert_int_equal(sfx_lines_matching(0, want, NULL, NULL), 1);
    assert_no_password_logged(f);
}

/* A dead first sentinel and a hung second one (SIGSTOP: it accepts, never
 * answers) are skipped; the third that answers moves to the front, so the
 * next connect asks it first and waits for nobody. */
static void test_dead_and_hung_sentinels(void **state)
{
    fx *f = *state;
    start_cluster(f, false, false);
    int dead = proc_free_port(); /* nothing listens there */
    kill(f->sent[0].proc.pid, SIGSTOP);
    use_sentinels(f, false, dead);
    uint64_t t0 = clock_mono_ms();
    sfx_new_store(&f->x);
    assert_true(sfx_wait(&f->x, &f->x.ready, 1, 5000));
    uint64_t took = clock_mono_ms() - t0;
    fprintf(stderr, "dead + hung sentinel first: ready after %llu ms\n",
            (unsigned long long)took);
    assert_true(took >= 450); /* it waited for the hung one */
    assert_int_equal(f->x.down, 0);
    char want[96];
    snprintf(want, sizeof want, "sentinel=127.0.0.1:%d master=mymaster", f->sent[1].port);
    assert_int_equal(sfx_lines_matching(0, want, "skipped=2", NULL), 1);
    assert_int_equal(sfx_lines_matching(0, "connect failed", NULL, NULL), 1);
    assert_int_equal(sfx_lines_matching(0, "no answer within 500 ms", NULL, NULL), 1);

    /* The server drops us: the reconnect asks sent[1] first (no failed
     * connect, no timeout in the log this time). */
    int mark = sfx_lines_count();
    redisReply *rep = redis_proc_cmd(&f->master, "CLIENT KILL TYPE normal SKIPME yes");
    assert_non_null(rep);
    assert_true(rep->integer >= 1);
    freeReplyObject(rep);
    t0 = clock_mono_ms();
    assert_true(sfx_wait(&f->x, &f->x.ready, 2, 5000));
    took = clock_mono_ms() - t0;
    fprintf(stderr, "reconnect with the answering sentinel first: %llu ms\n",
            (unsigned long long)took);
    assert_int_equal(sfx_lines_matching(mark, want, NULL, NULL), 1);
    assert_int_equal(sfx_lines_matching(mark, "no answer within", NULL, NULL), 0);
    assert_int_equal(sfx_lines_matching(mark, "connect failed", NULL, NULL), 0);
    store_set(f, "{ariq}:after-kill", "1");
}

/* A sentinel that names a replica (here: told to watch it as a master): ROLE
 * answers "slave", so the store never becomes ready there, reports down
 * once, and asks the sentinel again at each retry. */
static void test_role_not_master(void **state)
{
    fx *f = *state;
    start_cluster(f, false, false);
    redisReply *rep = redis_proc_cmd(&f->sent[0], "SENTINEL MONITOR wrong 127.0.0.1 %d 1",
                                     f->replica.port);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    f->x.cfg.nsentinels = 1;
    snprintf(f->x.cfg.sentinels[0].host, sizeof f->x.cfg.sentinels[0].host, "127.0.0.1");
    f->x.cfg.sentinels[0].port = f->sent[0].port;
    snprintf(f->x.cfg.master_name, sizeof f->x.cfg.master_name, "wrong");
    sfx_new_store(&f->x);
    assert_true(sfx_wait(&f->x, &f->x.down, 1, 3000));
    sfx_run_for(&f->x, 1000);
    assert_int_equal(f->x.ready, 0);
    assert_int_equal(f->x.down, 1);
    char want[96];
    snprintf(want, sizeof want, "redis 127.0.0.1:%d is not master wrong (ROLE: slave)",
             f->replica.port);
    assert_non_null(strstr(f->x.down_reason, want));
    snprintf(want, sizeof want, "master=wrong addr=127.0.0.1:%d", f->replica.port);
    assert_true(sfx_lines_matching(0, want, NULL, NULL) >= 3); /* asked again and again */
    store_stats st;
    store_get_stats(f->x.s, &st);
    assert_int_equal(st.connects, 0);
}

/* What the store says when no sentinel gives an address: none listening, a
 * master name they do not know, a wrong sentinel password. */
static void expect_down(fx *f, const char *needle)
{
    store_free(f->x.s);
    f->x.s = NULL;
    f->x.down = 0;
    sfx_new_store(&f->x);
    assert_true(sfx_wait(&f->x, &f->x.down, 1, 3000));
    assert_int_equal(f->x.ready, 0);
    if (!strstr(f->x.down_reason, needle))
        fail_msg("down reason \"%s\" lacks \"%s\"", f->x.down_reason, needle);
}

static void test_no_answer(void **state)
{
    fx *f = *state;
    start_cluster(f, true, false);
    char u[512], err[256], want[160];
    int dead1 = proc_free_port(), dead2 = proc_free_port();
    snprintf(u, sizeof u, "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/mymaster", dead1, dead2);
    assert_int_equal(store_config_set_url(&f->x.cfg, u, err, sizeof err), 0);
    snprintf(want, sizeof want,
             "no sentinel gave the address of master mymaster (last: sentinel 127.0.0.1:%d: "
             "connect failed",
             dead2);
    expect_down(f, want);

    sentinel_url(f, true, 0, u, sizeof u);
    assert_int_equal(store_config_set_url(&f->x.cfg, u, err, sizeof err), 0);
    snprintf(f->x.cfg.master_name, sizeof f->x.cfg.master_name, "nosuch");
    snprintf(want, sizeof want, "sentinel 127.0.0.1:%d: does not know master nosuch",
             f->sent[NSENT - 1].port);
    expect_down(f, want);

    assert_int_equal(store_config_set_url(&f->x.cfg, u, err, sizeof err), 0);
    snprintf(f->x.cfg.sentinel_password, sizeof f->x.cfg.sentinel_password, "S3nt-wrong");
    expect_down(f, "AUTH refused (check sentinel_password)");

    assert_int_equal(store_config_set_url(&f->x.cfg, u, err, sizeof err), 0);
    f->x.cfg.sentinel_password[0] = '\0';
    expect_down(f, "NOAUTH");
    assert_no_password_logged(f);
}

/* ---- failover (label fault) ------------------------------------------------ */

/* What an owner does in on_ready: write at once. The reply must be OK, so
 * the store is on a master. */
static void set_on_ready(sfx *x)
{
    fx *f = (fx *)x; /* its first member */
    const char *argv[] = {"INCR", "{ariq}:readies"};
    assert_int_equal(store_command_argv(f->x.s, 2, argv, NULL, reply_cb, f), 0);
}

/* SIGKILL the master: the sentinels promote the replica, and the store,
 * with no help, reconnects there and calls on_ready, where a write works. */
static void test_failover(void **state)
{
    fx *f = *state;
    start_cluster(f, true, true);
    use_sentinels(f, true, 0);
    f->x.on_ready_hook = set_on_ready;
    sfx_new_store(&f->x);
    assert_true(sfx_wait(&f->x, &f->x.ready, 1, 5000));
    assert_true(sfx_wait(&f->x, &f->x.replies, 1, 2000));
    store_set(f, "{ariq}:before", "kept");
    redisReply *rep = redis_proc_cmd(&f->master, "WAIT 1 2000"); /* on the replica too */
    assert_non_null(rep);
    assert_int_equal(rep->integer, 1);
    freeReplyObject(rep);

    uint64_t t0 = clock_mono_ms();
    redis_proc_stop(&f->master, SIGKILL);
    assert_true(sfx_wait(&f->x, &f->x.down, 1, 3000));
    assert_true(sfx_wait(&f->x, &f->x.ready, 2, 20000));
    uint64_t took = clock_mono_ms() - t0;
    fprintf(stderr, "failover: SIGKILL of the master to on_ready on the promoted replica: "
                    "%llu ms\n",
            (unsigned long long)took);

    /* on_ready's INCR and a later SET succeeded on the promoted replica */
    assert_true(sfx_wait(&f->x, &f->x.replies, 3, 2000));
    store_set(f, "{ariq}:after", "written");
    assert_get_db3(&f->replica, "{ariq}:after", "written");
    assert_get_db3(&f->replica, "{ariq}:before", "kept");
    assert_get_db3(&f->replica, "{ariq}:readies", "2");
    rep = redis_proc_cmd(&f->replica, "ROLE");
    assert_string_equal(rep->element[0]->str, "master");
    freeReplyObject(rep);
    assert_int_equal(f->x.down, 1);
    assert_int_equal(f->x.nulls, 0);
    char want[96];
    snprintf(want, sizeof want, "master=mymaster addr=127.0.0.1:%d", f->replica.port);
    assert_true(sfx_lines_matching(0, want, "level=info", NULL) >= 1);
    assert_no_password_logged(f);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* as every daemon does: hiredis writes with write(2) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_and_hung_sentinels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_role_not_master, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_answer, setup, teardown),
    };
    const struct CMUnitTest failover[] = {
        cmocka_unit_test_setup_teardown(test_failover, setup, teardown),
    };
    if (argc > 1 && strcmp(argv[1], "failover") == 0)
        return cmocka_run_group_tests(failover, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
