/* bench_ari_client.c - REST calls per second through ari_client.
 *
 * Keeps `inflight` GET /ari/asterisk/info requests outstanding until `calls`
 * have completed, all on one libevent loop, and prints
 *
 *   ari_rest_calls_per_sec: N          against the simulator (node1)
 *   ari_rest_calls_per_sec_evhttp: N   against a bare evhttp server in a
 *                                      child process (the client's ceiling)
 *   ari_rest_client_cpu_us_per_call: U the client's own CPU (user + system)
 *                                      per call, in the evhttp run
 *   ari_rest_latency_ms_p50 / _p99     per call against the simulator, from
 *                                      the request call to the callback
 *                                      (with `inflight` queued, so it includes
 *                                      waiting for a connection)
 *
 * Usage: bench_ari_client [--calls N] [--inflight K] [--conns C]
 *                         [--only sim|evhttp]
 * Exits non-zero if any call fails. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "ari/client.h"
#include "core/clock.h"
#include "core/log.h"
#include "proc.h"
#include "sim_proc.h"

typedef struct bench {
    ari_client *c;
    long calls, started, done, ok, failed;
    long first_bad_status;
    int first_bad_err;
    double *lat_ms;         /* elapsed_ms of each call, in completion order */
} bench;

static void on_done(ari_rest *rest, const ari_response *r, void *pd)
{
    bench *b = pd;

    if (b->done < b->calls)
        b->lat_ms[b->done] = r->elapsed_ms;
    b->done++;
    if (r->status == 200 && r->json) {
        b->ok++;
    } else {
        if (!b->failed) {
            b->first_bad_status = r->status;
            b->first_bad_err = r->err;
        }
        b->failed++;
    }
    if (b->started < b->calls && ari_asterisk_info(rest, on_done, b) == 0)
        b->started++;
}

static double cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static double last_cpu_us_per_call;
static double last_p50_ms, last_p99_ms;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs the benchmark against url; returns calls/s, or -1 on failure. */
static double run(const char *url, const char *user, const char *password,
                  long calls, int inflight, int conns)
{
    struct event_base *base = event_base_new();
    ari_client_config cfg = {.url = url, .user = user, .password = password,
                             .timeout_ms = 10000, .max_connections = conns};
    bench b = {.calls = calls};
    uint64_t t0, t1;

    b.lat_ms = calloc((size_t)calls, sizeof *b.lat_ms);
    b.c = ari_client_new(base, &cfg);
    if (!b.c || !b.lat_ms) {
        ari_client_free(b.c);
        free(b.lat_ms);
        event_base_free(base);
        return -1;
    }
    double cpu0 = cpu_us();
    t0 = clock_mono_us();
    for (int i = 0; i < inflight && b.started < calls; i++)
        if (ari_asterisk_info(ari_client_rest(b.c), on_done, &b) == 0)
            b.started++;
    while (b.done < b.started && clock_mono_us() - t0 < 120000000ull)
        event_base_loop(base, EVLOOP_ONCE);
    t1 = clock_mono_us();
    last_cpu_us_per_call = (cpu_us() - cpu0) / (double)calls;
    ari_client_free(b.c);
    event_base_free(base);
    qsort(b.lat_ms, (size_t)b.done, sizeof *b.lat_ms, cmp_double);
    last_p50_ms = b.done ? b.lat_ms[b.done / 2] : 0;
    last_p99_ms = b.done ? b.lat_ms[b.done * 99 / 100] : 0;
    free(b.lat_ms);
    if (b.failed || b.done != calls) {
        fprintf(stderr, "bench: %ld/%ld done, %ld failed (first: status %ld err %d)\n",
                b.done, calls, b.failed, b.first_bad_status, b.first_bad_err);
        return -1;
    }
    return (double)calls * 1e6 / (double)(t1 - t0);
}

/* ---- the evhttp baseline server (child process) ------------------------- */

static void evhttp_answer(struct evhttp_request *req, void *ud)
{
    static const char body[] =
        "{\"system\":{\"version\":\"22.0.0\",\"entity_id\":\"02:fc:00:00:00:01\"}}";
    struct evbuffer *out = evbuffer_new();

    (void)ud;
    evbuffer_add(out, body, sizeof body - 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void evhttp_child(int port)
{
    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);

    evhttp_set_gencb(http, evhttp_answer, NULL);
    if (evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) != 0)
        _exit(2);
    event_base_dispatch(base);
    _exit(0);
}

static double bench_evhttp(long calls, int inflight, int conns)
{
    int port = proc_free_port();
    test_proc p = {.name = "evhttp"};
    char url[64];
    double rate;

    p.pid = fork();
    if (p.pid == 0)
        evhttp_child(port);
    if (p.pid < 0 || proc_wait_port(&p, port, 5000) != 0)
        return -1;
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    rate = run(url, "ari", "ari", calls, inflight, conns);
    kill(p.pid, SIGKILL);
    waitpid(p.pid, NULL, 0);
    return rate;
}

static int bench_sim(long calls, int inflight, int conns)
{
    sim_proc sp;
    double rate;

    if (sim_proc_start(&sp, 1, 1.0) != 0) {
        printf("ari_rest_calls_per_sec: skipped (simulator did not start)\n");
        return 0;
    }
    rate = run(sim_proc_url(&sp, 0), sim_proc_user(&sp), sim_proc_password(&sp),
               calls, inflight, conns);
    sim_proc_stop(&sp);
    if (rate < 0)
        return 1;
    printf("ari_rest_calls_per_sec: %.0f\nari_rest_latency_ms_p50: %.2f\n"
           "ari_rest_latency_ms_p99: %.2f\n", rate, last_p50_ms, last_p99_ms);
    return 0;
}

int main(int argc, char **argv)
{
    long calls = 20000;
    int inflight = 64, conns = 16, rc = 0;
    const char *only = NULL;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--calls"))
            calls = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--inflight"))
            inflight = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--conns"))
            conns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only"))
            only = argv[i + 1];
    }
    log_set_level(LOG_LVL_WARN);
    printf("calls=%ld inflight=%d max_connections=%d\n", calls, inflight, conns);
    if (!only || !strcmp(only, "evhttp")) {
        double rate = bench_evhttp(calls, inflight, conns);
        if (rate < 0)
            rc = 1;
        else
            printf("ari_rest_calls_per_sec_evhttp: %.0f\nari_rest_client_cpu_us_per_call: %.1f\n",
                   rate, last_cpu_us_per_call);
    }
    if (!only || !strcmp(only, "sim"))
        rc |= bench_sim(calls, inflight, conns);
    return rc;
}
