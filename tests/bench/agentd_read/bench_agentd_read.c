/* bench_agentd_read - agentd's read routes with many waiting callers.
 *
 * Starts redis-server and agentd (child, rate limit off, snapshot_ms 250),
 * enters N waiting callers (default 5,000) with queue_store's real `enter`
 * on two nodes into queue "q1" (and a few agents in "q1"), then, for each
 * of GET /api/v1/queues and GET /api/v1/queues/q1, keeps C clients (curl
 * multi, default 4) busy for S seconds (default 5) and counts the answers.
 * Then agentd's VmRSS and VmHWM from /proc/<pid>/status.
 * Prints `name: value unit` lines.
 * Usage: bench_agentd_read [callers] [clients] [seconds] */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "agentd_proc.h"
#include "core/clock.h"
#include "harness.h"

#define CLIENTS_MAX 32

typedef struct client {
    CURL *e;
    size_t bytes;
    char url[256];
} client;

static size_t sink(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    ((client *)ud)->bytes += sz * n;
    return sz * n;
}

/* Requests per second on url with nc clients for secs seconds; *bytes gets
 * the size of one answer, *bad the non-200 answers. */
static double run(int port, const char *path, int nc, int secs, size_t *bytes, long *bad)
{
    CURLM *m = curl_multi_init();
    client c[CLIENTS_MAX];
    struct curl_slist *hd = curl_slist_append(NULL, "Authorization: " AGENTD_AUTH);
    for (int i = 0; i < nc; i++) {
        c[i] = (client){.e = curl_easy_init()};
        snprintf(c[i].url, sizeof c[i].url, "http://127.0.0.1:%d%s", port, path);
        curl_easy_setopt(c[i].e, CURLOPT_URL, c[i].url);
        curl_easy_setopt(c[i].e, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(c[i].e, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(c[i].e, CURLOPT_WRITEDATA, &c[i]);
        curl_easy_setopt(c[i].e, CURLOPT_PRIVATE, &c[i]);
        curl_easy_setopt(c[i].e, CURLOPT_TIMEOUT, 10L);
        curl_multi_add_handle(m, c[i].e);
    }
    long done = 0;
    *bad = 0;
    uint64_t t0 = clock_mono_ms(), end = t0 + (uint64_t)secs * 1000;
    int running = 1;
    while (running || clock_mono_ms() < end) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            client *cl;
            long st = 0;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&cl);
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
            if (msg->data.result == CURLE_OK && st == 200) {
                done++;
                *bytes = cl->bytes;
            } else {
                (*bad)++;
            }
            cl->bytes = 0;
            curl_multi_remove_handle(m, e);
            if (clock_mono_ms() < end) {
                curl_multi_add_handle(m, e);
                running = 1;
            }
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
        else if (clock_mono_ms() >= end)
            break;
    }
    double rate = (double)done * 1000.0 / (double)(clock_mono_ms() - t0);
    for (int i = 0; i < nc; i++) {
        curl_multi_remove_handle(m, c[i].e);
        curl_easy_cleanup(c[i].e);
    }
    curl_slist_free_all(hd);
    curl_multi_cleanup(m);
    return rate;
}

static long status_kb(int pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n) && line[n] == ':')
            v = atol(line + n + 1);
    if (f)
        fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    int ncallers = argc > 1 ? atoi(argv[1]) : 5000;
    int nc = argc > 2 ? atoi(argv[2]) : 4;
    int secs = argc > 3 ? atoi(argv[3]) : 5;
    if (ncallers < 1 || nc < 1 || nc > CLIENTS_MAX || secs < 1) {
        fprintf(stderr, "usage: bench_agentd_read [callers] [clients 1..32] [seconds]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    static hx h;
    if (hx_start(&h, NULL) != 0) {
        fprintf(stderr, "bench: redis or nodes did not start\n");
        return 1;
    }
    h.now = clock_wall_ms();
    redisReply *r = redisCommand(h.rc, "SADD {ariq}:nodes A B");
    freeReplyObject(r);
    char id[32];
    uint64_t t0 = clock_mono_ms();
    for (int i = 0; i < ncallers; i++) {
        snprintf(id, sizeof id, "c%d", i);
        h.now++;
        if (hx_enter(&h, i % 2, id, i % 7 == 0 ? 5 : 0, "q1", false, &hx_o) != 0) {
            fprintf(stderr, "bench: enter %s failed: %s\n", id, hx_o.errmsg);
            return 1;
        }
    }
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "a%d", i);
        hx_login(&h, i % 2, id, "q1", false, &hx_o);
        hx_done(&h, qs_agent_pause(h.n[i % 2].qs, id, true, "bench", false, hx_result_cb,
                                   &hx_o),
                &hx_o);
    }
    printf("enter_callers: %d callers in %llu ms\n", ncallers,
           (unsigned long long)(clock_mono_ms() - t0));
    agentd_proc a;
    if (agentd_proc_start(&a, &h.r, "rate_per_s = 0\nsnapshot_ms = 250\n") != 0) {
        fprintf(stderr, "bench: agentd did not start (log %s)\n", a.logpath);
        return 1;
    }
    printf("rss_idle: %ld kB\n", status_kb(a.proc.pid, "VmRSS"));
    /* a cold request: the snapshot script, its parse and the render */
    for (int i = 0; i < 3; i++) {
        usleep(300 * 1000); /* older than snapshot_ms: read again */
        char *body = NULL;
        uint64_t t = clock_mono_us();
        long st = agentd_http(a.port, "GET", "/api/v1/queues/q1", AGENTD_AUTH, &body, NULL, 0);
        printf("cold_get_queue_q1: %.1f ms (status %ld)\n", (double)(clock_mono_us() - t) / 1000.0,
               st);
        free(body);
    }
    /* the snapshot script's own time in Redis (which is blocked meanwhile) */
    redisReply *sl = redisCommand(h.rc, "SLOWLOG GET 10");
    long long script_us = 0;
    for (size_t i = 0; sl && sl->type == REDIS_REPLY_ARRAY && i < sl->elements; i++) {
        redisReply *e = sl->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements > 3 && e->element[3]->elements > 0 &&
            !strcasecmp(e->element[3]->element[0]->str, "EVAL") &&
            e->element[2]->integer > script_us)
            script_us = e->element[2]->integer;
    }
    if (sl)
        freeReplyObject(sl);
    printf("snapshot_script_max: %.1f ms (redis SLOWLOG)\n", (double)script_us / 1000.0);
    const char *paths[] = {"/api/v1/queues", "/api/v1/queues/q1"};
    const char *names[] = {"get_queues", "get_queue_q1"};
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        size_t bytes = 0;
        long bad = 0;
        double rate = run(a.port, paths[i], nc, secs, &bytes, &bad);
        printf("%s_rps: %.0f req/s (%d clients, %d callers)\n", names[i], rate, nc, ncallers);
        printf("%s_body: %zu bytes\n", names[i], bytes);
        if (bad) {
            printf("%s_errors: %ld answers\n", names[i], bad);
            rc = 1;
        }
    }
    printf("rss: %ld kB\n", status_kb(a.proc.pid, "VmRSS"));
    printf("rss_peak: %ld kB\n", status_kb(a.proc.pid, "VmHWM"));
    agentd_proc_stop(&a);
    hx_stop(&h);
    curl_global_cleanup();
    return rc;
}
