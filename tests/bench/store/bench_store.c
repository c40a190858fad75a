/* bench_store - Redis round trips per second through the store.
 *
 * Starts its own redis-server on a free loopback port and measures:
 *   pipelined:      N INCRs sent at once, then waits for all replies
 *   one at a time:  each PING sent from the previous one's callback
 *   script:         node_heartbeat via EVALSHA, pipelined
 * and prints `store_cmds_per_sec: N` lines (plus round-trip figures from the
 * store's own counters). Usage: bench_store [N] (default 200000). */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/log.h"
#include "redis_proc.h"
#include "store/store.h"

typedef struct bench {
    struct event_base *base;
    store *s;
    int ready;
    long done, target;
    int errors;
} bench;

static void on_ready(store *s, void *ud)
{
    (void)s;
    ((bench *)ud)->ready = 1;
}

static void count_cb(store *s, const redisReply *r, void *pd)
{
    (void)s;
    bench *b = pd;
    if (!r || r->type == REDIS_REPLY_ERROR)
        b->errors++;
    b->done++;
}

static void chain_cb(store *s, const redisReply *r, void *pd)
{
    bench *b = pd;
    count_cb(s, r, pd);
    const char *ping[] = {"PING"};
    if (b->done < b->target && store_command_argv(s, 1, ping, NULL, chain_cb, b) != 0)
        b->errors++;
}

static void loop_until(bench *b, long target)
{
    uint64_t end = clock_mono_ms() + 120000;
    while (b->done < target && !b->errors && clock_mono_ms() < end)
        event_base_loop(b->base, EVLOOP_ONCE);
}

static void report(const char *mode, long n, uint64_t us, store *s)
{
    store_stats st;
    store_get_stats(s, &st);
    printf("store_cmds_per_sec: %.0f mode=%s n=%ld elapsed_ms=%.1f rtt_max_us=%llu\n",
           (double)n * 1e6 / (double)(us ? us : 1), mode, n, (double)us / 1000.0,
           (unsigned long long)st.rtt_max_us);
}

static int run(bench *b, long n)
{
    /* pipelined */
    uint64_t t0 = clock_mono_us();
    b->done = 0;
    for (long i = 0; i < n; i++) {
        const char *incr[] = {"INCR", "{ariq}:bench"};
        if (store_command_argv(b->s, 2, incr, NULL, count_cb, b) != 0)
            return -1;
    }
    loop_until(b, n);
    report("pipelined", n, clock_mono_us() - t0, b->s);

    /* one at a time */
    long m = n / 10;
    b->done = 0;
    b->target = m;
    t0 = clock_mono_us();
    const char *ping[] = {"PING"};
    if (store_command_argv(b->s, 1, ping, NULL, chain_cb, b) != 0)
        return -1;
    loop_until(b, m);
    report("sequential", m, clock_mono_us() - t0, b->s);

    /* scripts, pipelined */
    char hb[STORE_KEY_MAX], nodes[STORE_KEY_MAX];
    store_key_node_heartbeat(store_get_keys(b->s), hb, sizeof hb, "bench");
    store_key_nodes(store_get_keys(b->s), nodes, sizeof nodes);
    const char *keys[] = {hb, nodes}, *args[] = {"bench", "60000", "0"};
    b->done = 0;
    t0 = clock_mono_us();
    for (long i = 0; i < m; i++)
        if (store_script(b->s, "node_heartbeat", 2, keys, 3, args, count_cb, b) != 0)
            return -1;
    loop_until(b, m);
    report("script", m, clock_mono_us() - t0, b->s);
    return b->errors ? -1 : 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LVL_WARN);
    long n = argc > 1 ? atol(argv[1]) : 200000;
    if (n < 10)
        n = 10;
    redis_proc r;
    if (redis_proc_start(&r, NULL) != 0)
        return 1;
    bench b = {.base = event_base_new()};
    store_config cfg;
    store_config_init(&cfg);
    cfg.port = r.port;
    store_callbacks cbs = {.on_ready = on_ready};
    char err[256];
    int rc = store_new(b.base, &cfg, &cbs, &b, &b.s, err, sizeof err);
    if (rc == 0) {
        uint64_t end = clock_mono_ms() + 5000;
        while (!b.ready && clock_mono_ms() < end)
            event_base_loop(b.base, EVLOOP_ONCE);
        rc = b.ready ? run(&b, n) : -1;
    } else {
        fprintf(stderr, "store_new: %s\n", err);
    }
    store_free(b.s);
    event_base_free(b.base);
    redis_proc_stop(&r, SIGTERM);
    if (rc != 0)
        fprintf(stderr, "bench_store: failed (errors=%d)\n", b.errors);
    return rc == 0 ? 0 : 1;
}
