/* bench_sim.c - the asterisk-sim host and core under 10,000 concurrent calls.
 *
 * One node at scale 0 (media takes no time). An events WebSocket for app
 * "queue" counts events without keeping them. Then, through one keep-alive
 * HTTP connection (so the figures measure the simulator, not TCP set-up):
 *   1. N calls placed with POST /sim/calls (all stay up: N concurrent);
 *   2. per call: answer, add to a holding bridge (100 calls per bridge, so a
 *      bridge snapshot in an event stays small), play a sound;
 *   3. the simulator's VmRSS / VmHWM with N channels up;
 *   3b. GET /ari/channels listing all N (one multi-megabyte answer);
 *   3c. 20,000 GET /ari/channels/{id} over 8 parallel keep-alive connections;
 *   3d. a burst of 50,000 DTMF events on one call (the WebSocket path alone);
 *   4. every call hung up over ARI, bridges destroyed, /sim/state empty.
 * Prints "name: value unit" lines. Exit 0 if every step worked. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "sim_proc.h"

#define PER_BRIDGE 100

typedef struct bench {
    sim_proc p;
    sim_events *ev;
    CURL *c;
    struct curl_slist *hdrs;
    char *body;
    size_t body_len;
    long requests;
    int n;
    char (*ids)[64];
    int nbridges;
    char (*bridges)[64];
} bench;

static size_t on_sink(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    bench *b = ud;
    size_t n = size * nmemb;
    char *d = realloc(b->body, b->body_len + n + 1);
    if (!d)
        return 0;
    memcpy(d + b->body_len, ptr, n);
    b->body = d;
    b->body_len += n;
    d[b->body_len] = '\0';
    return n;
}

/* One request on the shared keep-alive handle. Returns the status, 0 if
 * none; the body is in b->body until the next request. */
static long req(bench *b, const char *method, const char *path, const char *json)
{
    char url[512];
    long st = 0;
    snprintf(url, sizeof url, "%s%s", sim_proc_url(&b->p, 0), path);
    b->body_len = 0;
    if (b->body)
        b->body[0] = '\0';
    curl_easy_setopt(b->c, CURLOPT_URL, url);
    curl_easy_setopt(b->c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(b->c, CURLOPT_POSTFIELDS, json ? json : "");
    if (strcmp(method, "GET") == 0)
        curl_easy_setopt(b->c, CURLOPT_HTTPGET, 1L);
    b->requests++;
    if (curl_easy_perform(b->c) != CURLE_OK)
        return 0;
    curl_easy_getinfo(b->c, CURLINFO_RESPONSE_CODE, &st);
    return st;
}

static int setup(bench *b)
{
    if (sim_proc_start(&b->p, 1, 0.0) != 0)
        return -1;
    b->ev = sim_events_open(&b->p, 0, "queue");
    if (!b->ev)
        return -1;
    sim_events_set_store(b->ev, false);
    b->c = curl_easy_init();
    b->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    b->hdrs = curl_slist_append(b->hdrs, "Expect:");
    curl_easy_setopt(b->c, CURLOPT_HTTPHEADER, b->hdrs);
    curl_easy_setopt(b->c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(b->c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(b->c, CURLOPT_USERNAME, sim_proc_user(&b->p));
    curl_easy_setopt(b->c, CURLOPT_PASSWORD, sim_proc_password(&b->p));
    curl_easy_setopt(b->c, CURLOPT_TIMEOUT_MS, 30000L);
    b->ids = calloc((size_t)b->n, sizeof *b->ids);
    b->nbridges = (b->n + PER_BRIDGE - 1) / PER_BRIDGE;
    b->bridges = calloc((size_t)b->nbridges, sizeof *b->bridges);
    return b->c && b->ids && b->bridges ? 0 : -1;
}

/* Copies member "id" of the last answer into out. */
static int last_id(bench *b, char *out)
{
    json_t *j = json_loads(b->body ? b->body : "", 0, NULL);
    const char *id = json_string_value(json_object_get(j, "id"));
    if (id)
        snprintf(out, 64, "%s", id);
    json_decref(j);
    return id ? 0 : -1;
}

static int place_calls(bench *b)
{
    char body[160];
    for (int i = 0; i < b->n; i++) {
        snprintf(body, sizeof body,
                 "{\"app\":\"queue\",\"args\":\"caller,bench\","
                 "\"caller_number\":\"%d\"}",
                 1000 + i);
        if (req(b, "POST", "/sim/calls", body) != 201 || last_id(b, b->ids[i]) != 0) {
            fprintf(stderr, "bench_sim: call %d failed: %s\n", i, b->body ? b->body : "");
            return -1;
        }
    }
    return sim_events_wait_count(b->ev, "StasisStart", (size_t)b->n, 60000) ? 0 : -1;
}

static int make_bridges(bench *b)
{
    for (int i = 0; i < b->nbridges; i++)
        if (req(b, "POST", "/ari/bridges?type=holding", NULL) != 200 ||
            last_id(b, b->bridges[i]) != 0)
            return -1;
    return 0;
}

/* answer, addChannel, play for every call. */
static int serve_calls(bench *b)
{
    char path[256];
    for (int i = 0; i < b->n; i++) {
        snprintf(path, sizeof path, "/ari/channels/%s/answer", b->ids[i]);
        if (req(b, "POST", path, NULL) != 204)
            return -1;
        snprintf(path, sizeof path, "/ari/bridges/%s/addChannel?channel=%s",
                 b->bridges[i / PER_BRIDGE], b->ids[i]);
        if (req(b, "POST", path, NULL) != 204)
            return -1;
        snprintf(path, sizeof path,
                 "/ari/channels/%s/play?media=sound:queue-periodic-announce", b->ids[i]);
        if (req(b, "POST", path, NULL) != 201)
            return -1;
    }
    return sim_events_wait_count(b->ev, "PlaybackFinished", (size_t)b->n, 60000) ? 0 : -1;
}

/* Event throughput of the WebSocket path alone: 50 requests of 1000 digits
 * each on one call give 50,000 ChannelDtmfReceived. Returns events/s, or -1. */
static double event_burst(bench *b)
{
    char path[256], body[1100] = "{\"digits\":\"";
    size_t o = strlen(body);
    for (int i = 0; i < 1000; i++)
        body[o++] = (char)('0' + i % 10);
    snprintf(body + o, sizeof body - o, "\"}");
    size_t before = sim_events_count(b->ev, "ChannelDtmfReceived");
    snprintf(path, sizeof path, "/sim/channels/%s/dtmf", b->ids[0]);
    uint64_t t0 = clock_mono_ms();
    for (int i = 0; i < 50; i++)
        if (req(b, "POST", path, body) != 204)
            return -1;
    if (!sim_events_wait_count(b->ev, "ChannelDtmfReceived", before + 50000, 60000))
        return -1;
    return 50000.0 * 1000.0 / (double)((clock_mono_ms() - t0) ? clock_mono_ms() - t0 : 1);
}

/* GET /ari/channels with every channel up: one large answer written in
 * chunks. Returns the milliseconds it took, or -1 if the list is wrong. */
static long list_channels(bench *b)
{
    uint64_t t0 = clock_mono_ms();
    if (req(b, "GET", "/ari/channels", NULL) != 200)
        return -1;
    long ms = (long)(clock_mono_ms() - t0);
    json_t *j = json_loads(b->body ? b->body : "", 0, NULL);
    size_t n = json_array_size(j);
    json_decref(j);
    printf("sim_get_channels_bytes: %zu bytes\n", b->body_len);
    return n == (size_t)b->n ? ms : -1;
}

/* Read-only REST throughput with PARALLEL keep-alive connections in flight
 * at once (curl multi): GET /ari/channels/{id} over every call, `total`
 * requests. Returns calls/s, or -1 if one failed. */
#define PARALLEL 8
static double rest_parallel(bench *b, int total)
{
    CURLM *m = curl_multi_init();
    CURL *h[PARALLEL];
    char urls[PARALLEL][256];
    int next = 0, done = 0, running = 0, failed = 0;
    uint64_t t0 = clock_mono_ms();
    for (int i = 0; i < PARALLEL; i++) {
        h[i] = curl_easy_init();
        curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, on_sink);
        curl_easy_setopt(h[i], CURLOPT_USERNAME, sim_proc_user(&b->p));
        curl_easy_setopt(h[i], CURLOPT_PASSWORD, sim_proc_password(&b->p));
        curl_easy_setopt(h[i], CURLOPT_PRIVATE, urls[i]);
    }
    for (int i = 0; i < PARALLEL && next < total; i++, next++) {
        snprintf(urls[i], sizeof urls[i], "%s/ari/channels/%s", sim_proc_url(&b->p, 0),
                 b->ids[next % b->n]);
        curl_easy_setopt(h[i], CURLOPT_URL, urls[i]);
        curl_multi_add_handle(m, h[i]);
    }
    while (done < total && !failed) {
        CURLMsg *msg;
        int left;
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left))) {
            long code = 0;
            CURL *e = msg->easy_handle;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
            failed |= msg->data.result != CURLE_OK || code != 200;
            done++;
            curl_multi_remove_handle(m, e);
            if (next < total) {
                char *url;
                curl_easy_getinfo(e, CURLINFO_PRIVATE, &url);
                snprintf(url, 256, "%s/ari/channels/%s", sim_proc_url(&b->p, 0),
                         b->ids[next++ % b->n]);
                curl_easy_setopt(e, CURLOPT_URL, url);
                curl_multi_add_handle(m, e);
            }
        }
        if (done < total)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    uint64_t ms = clock_mono_ms() - t0;
    for (int i = 0; i < PARALLEL; i++) {
        curl_multi_remove_handle(m, h[i]);
        curl_easy_cleanup(h[i]);
    }
    curl_multi_cleanup(m);
    return failed ? -1 : (double)total * 1000.0 / (double)(ms ? ms : 1);
}

static long proc_status_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0)
            kb = atol(line + strlen(key) + 1);
    if (f)
        fclose(f);
    return kb;
}

static int teardown_calls(bench *b)
{
    char path[256];
    for (int i = 0; i < b->n; i++) {
        snprintf(path, sizeof path, "/ari/channels/%s", b->ids[i]);
        if (req(b, "DELETE", path, NULL) != 204)
            return -1;
    }
    if (!sim_events_wait_count(b->ev, "StasisEnd", (size_t)b->n, 60000))
        return -1;
    for (int i = 0; i < b->nbridges; i++) {
        snprintf(path, sizeof path, "/ari/bridges/%s", b->bridges[i]);
        if (req(b, "DELETE", path, NULL) != 204)
            return -1;
    }
    json_t *st = sim_state(&b->p, 0);
    int empty = json_integer_value(json_object_get(st, "channels")) == 0 &&
                json_integer_value(json_object_get(st, "bridges")) == 0 &&
                json_integer_value(json_object_get(st, "playbacks")) == 0;
    if (!empty) {
        char *s = json_dumps(st, JSON_COMPACT);
        fprintf(stderr, "bench_sim: /sim/state not empty: %s\n", s ? s : "?");
        free(s);
    }
    json_decref(st);
    return empty ? 0 : -1;
}

static double per_sec(double n, uint64_t ms)
{
    return n * 1000.0 / (double)(ms ? ms : 1);
}

static int run(bench *b)
{
    uint64_t t0 = clock_mono_ms();
    long r0 = b->requests;
    size_t e0 = sim_events_received(b->ev);
    if (place_calls(b) != 0 || make_bridges(b) != 0 || serve_calls(b) != 0) {
        fprintf(stderr, "bench_sim: load phase failed (last body: %s)\n",
                b->body ? b->body : "");
        return -1;
    }
    uint64_t ms = clock_mono_ms() - t0;
    double events = (double)(sim_events_received(b->ev) - e0);
    printf("sim_calls_concurrent: %d calls\n", b->n);
    printf("sim_load_phase: %llu ms\n", (unsigned long long)ms);
    printf("sim_events_per_sec: %.0f events/s\n", per_sec(events, ms));
    printf("sim_rest_calls_per_sec: %.0f calls/s\n",
           per_sec((double)(b->requests - r0), ms));
    printf("sim_vmrss_at_%d_channels: %ld kB\n", b->n,
           proc_status_kb(b->p.proc.pid, "VmRSS"));
    printf("sim_vmhwm: %ld kB\n", proc_status_kb(b->p.proc.pid, "VmHWM"));
    long list_ms = list_channels(b);
    if (list_ms < 0) {
        fprintf(stderr, "bench_sim: GET /ari/channels did not list %d channels\n", b->n);
        return -1;
    }
    printf("sim_get_channels_ms: %ld ms\n", list_ms);
    double par = rest_parallel(b, 20000);
    if (par < 0) {
        fprintf(stderr, "bench_sim: parallel GETs failed\n");
        return -1;
    }
    printf("sim_rest_parallel_get_per_sec: %.0f calls/s (%d connections)\n", par,
           PARALLEL);
    double burst = event_burst(b);
    if (burst < 0) {
        fprintf(stderr, "bench_sim: DTMF burst failed\n");
        return -1;
    }
    printf("sim_event_burst_per_sec: %.0f events/s\n", burst);
    t0 = clock_mono_ms();
    r0 = b->requests;
    if (teardown_calls(b) != 0) {
        fprintf(stderr, "bench_sim: hang-up phase failed\n");
        return -1;
    }
    ms = clock_mono_ms() - t0;
    printf("sim_hangup_calls_per_sec: %.0f calls/s\n",
           per_sec((double)(b->requests - r0), ms));
    printf("sim_vmrss_after_hangup: %ld kB\n", proc_status_kb(b->p.proc.pid, "VmRSS"));
    printf("sim_events_total: %zu events\n", sim_events_received(b->ev));
    return 0;
}

int main(int argc, char **argv)
{
    bench b;
    memset(&b, 0, sizeof b);
    b.n = argc > 1 ? atoi(argv[1]) : 10000;
    if (b.n <= 0 || b.n > 1000000)
        return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = setup(&b) == 0 && run(&b) == 0 ? 0 : 1;
    curl_easy_cleanup(b.c);
    curl_slist_free_all(b.hdrs);
    sim_events_close(b.ev);
    int st = sim_proc_stop(&b.p);
    if (st != 0)
        rc = 1;
    free(b.ids);
    free(b.bridges);
    free(b.body);
    curl_global_cleanup();
    return rc;
}
