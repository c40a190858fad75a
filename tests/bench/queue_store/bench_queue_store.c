/* bench_queue_store - pairing through redis-schema/queue.lua.
 *
 * Starts its own redis-server on a free loopback port, fills a queue with N
 * waiting callers (100, then 5,000), and measures the pairing script
 * (qs_pair_queue) while the number waiting stays N: each round logs an agent
 * in (not paired), pairs (measured), and enters a caller to replace the one
 * served.
 *   sequential: one pairing at a time: p50 / p99 script latency (send to
 *               callback) and Redis commands sent per pairing;
 *   pipelined:  rounds of 64 pairings in flight: pairings per second.
 * Prints `name: value unit` lines. Usage: bench_queue_store [pairings]
 * (default 5000 per figure). */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "redis_proc.h"
#include "store/queue_store.h"

#define BATCH 64

typedef struct bench {
    struct event_base *base;
    store *s;
    queue_store *qs;
    int ready, done, errors;
    long callers, agents; /* ids handed out */
    size_t pairs;         /* pairings seen in replies */
} bench;

static void on_ready(store *s, void *ud)
{
    (void)s;
    ((bench *)ud)->ready = 1;
}

static void wait_done(bench *b, int target)
{
    uint64_t end = clock_mono_ms() + 120000;
    while (b->done < target && !b->errors && clock_mono_ms() < end)
        event_base_loop(b->base, EVLOOP_ONCE);
    if (b->done < target)
        b->errors++;
}

static void enter_cb(queue_store *qs, int err, const qs_enter_result *r, void *pd)
{
    (void)qs;
    (void)r;
    bench *b = pd;
    b->errors += err != 0;
    b->done++;
}

static void result_cb(queue_store *qs, int err, const qs_result *r, void *pd)
{
    (void)qs;
    bench *b = pd;
    b->errors += err != 0;
    if (r)
        b->pairs += r->npairings;
    b->done++;
}

static int send_enter(bench *b)
{
    char id[32], ch[40];
    snprintf(id, sizeof id, "c%ld", b->callers++);
    snprintf(ch, sizeof ch, "ch-%s", id);
    const char *q[] = {"bench"};
    qs_caller c = {.callid = id,
                   .channel = ch,
                   .priority = (int)(b->callers % 3),
                   .queues = q,
                   .nqueues = 1};
    return qs_enter(b->qs, &c, false, enter_cb, b);
}

static int send_login(bench *b)
{
    char id[32], ch[40];
    snprintf(id, sizeof id, "a%ld", b->agents++);
    snprintf(ch, sizeof ch, "ag-%s", id);
    const char *q[] = {"bench"};
    qs_agent a = {.agentid = id, .channel = ch, .queues = q, .nqueues = 1};
    return qs_agent_login(b->qs, &a, false, result_cb, b);
}

/* Sends n requests made by fn and waits for all of them. */
static int run_n(bench *b, int (*fn)(bench *), int n)
{
    b->done = 0;
    for (int i = 0; i < n; i++)
        if (fn(b) != 0)
            return -1;
    wait_done(b, n);
    return b->errors ? -1 : 0;
}

static int send_pair(bench *b)
{
    return qs_pair_queue(b->qs, "bench", result_cb, b);
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, c = *(const uint64_t *)y;
    return a < c ? -1 : a > c;
}

/* One pairing at a time: latency and commands per pairing. */
static int sequential(bench *b, long waiting, int n)
{
    uint64_t *lat = calloc((size_t)n, sizeof *lat);
    uint64_t cmds = 0;
    size_t pairs0 = b->pairs;
    for (int i = 0; i < n && !b->errors; i++) {
        if (run_n(b, send_login, 1) != 0)
            break;
        store_stats s0, s1;
        store_get_stats(b->s, &s0);
        uint64_t t0 = clock_mono_us();
        if (run_n(b, send_pair, 1) != 0)
            break;
        lat[i] = clock_mono_us() - t0;
        store_get_stats(b->s, &s1);
        cmds += s1.cmds_sent - s0.cmds_sent;
        if (run_n(b, send_enter, 1) != 0)
            break;
    }
    size_t pairs = b->pairs - pairs0;
    if (!b->errors && pairs == (size_t)n) {
        qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
        printf("qs_pair_latency_p50_waiting_%ld: %llu us\n", waiting,
               (unsigned long long)lat[n / 2]);
        printf("qs_pair_latency_p99_waiting_%ld: %llu us\n", waiting,
               (unsigned long long)lat[(size_t)n * 99 / 100]);
        printf("qs_round_trips_per_pairing_waiting_%ld: %.2f round_trips\n", waiting,
               (double)cmds / (double)pairs);
    }
    free(lat);
    return !b->errors && pairs == (size_t)n ? 0 : -1;
}

/* BATCH pairings in flight at a time: throughput of the pairing script. */
static int pipelined(bench *b, long waiting, int n)
{
    uint64_t busy_us = 0;
    size_t pairs0 = b->pairs;
    for (int done = 0; done < n && !b->errors; done += BATCH) {
        if (run_n(b, send_login, BATCH) != 0)
            break;
        uint64_t t0 = clock_mono_us();
        if (run_n(b, send_pair, BATCH) != 0)
            break;
        busy_us += clock_mono_us() - t0;
        if (run_n(b, send_enter, BATCH) != 0)
            break;
    }
    size_t pairs = b->pairs - pairs0;
    if (b->errors)
        return -1;
    printf("qs_pairings_per_sec_waiting_%ld: %.0f pairings/s\n", waiting,
           (double)pairs * 1e6 / (double)(busy_us ? busy_us : 1));
    return 0;
}

static int run(bench *b, int n)
{
    static const long sizes[] = {100, 5000};
    for (size_t i = 0; i < 2; i++) {
        if (run_n(b, send_enter, (int)(sizes[i] - (i ? sizes[i - 1] : 0))) != 0)
            return -1;
        if (sequential(b, sizes[i], n) != 0 || pipelined(b, sizes[i], n) != 0)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LVL_WARN);
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    if (n < 100)
        n = 100;
    redis_proc r;
    if (redis_proc_start(&r, NULL) != 0)
        return 1;
    bench b = {.base = event_base_new()};
    store_config cfg;
    store_config_init(&cfg);
    cfg.port = r.port;
    store_callbacks cbs = {.on_ready = on_ready};
    char err[256];
    qs_config qc;
    qs_config_init(&qc);
    snprintf(qc.node, sizeof qc.node, "bench");
    int rc = store_new(b.base, &cfg, &cbs, &b, &b.s, err, sizeof err);
    if (rc == 0)
        rc = qs_new(b.s, &qc, &b.qs);
    if (rc == 0) {
        uint64_t end = clock_mono_ms() + 5000;
        while (!b.ready && clock_mono_ms() < end)
            event_base_loop(b.base, EVLOOP_ONCE);
        rc = b.ready ? run(&b, n) : -1;
    }
    store_free(b.s);
    qs_free(b.qs);
    event_base_free(b.base);
    redis_proc_stop(&r, SIGTERM);
    if (rc != 0)
        fprintf(stderr, "bench_queue_store: failed (errors=%d)\n", b.errors);
    return rc == 0 ? 0 : 1;
}
