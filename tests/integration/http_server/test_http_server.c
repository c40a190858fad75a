/* test_http_server.c - shared/http/server against real clients: libcurl
 * (easy and multi) for HTTP, an lws client (ws_client.c) for WebSockets.
 *
 * The server's loop runs on the test's main thread; each test's client side
 * runs on a second thread (client()), and the loop runs until it is done.
 * The owner below routes by table: /echo answers what it saw, /async
 * answers from a timer, /hold never answers (the server free takes it). */
#include "http/server.h"
#include "core/err.h"
#include "ws_client.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_WS 64

/* Checks for the client thread: cmocka's assert_* longjmp into the test's
 * frame, which only the main thread may do. A failed check is printed and
 * counted; the main thread asserts the count is zero after the join. */
static atomic_int client_failures;
#define ck_fail(...)                                                                     \
    do {                                                                                 \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                  \
        fprintf(stderr, __VA_ARGS__);                                                    \
        fputc('\n', stderr);                                                             \
        client_failures++;                                                               \
    } while (0)
#define ck_true(c)                                                                       \
    do {                                                                                 \
        if (!(c))                                                                        \
            ck_fail("check failed: %s", #c);                                             \
    } while (0)
#define ck_non_null(p) ck_true((p) != NULL)
#define ck_int_equal(a, b)                                                               \
    do {                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                              \
        if (a_ != b_)                                                                    \
            ck_fail("%s == %lld, want %lld", #a, a_, b_);                                \
    } while (0)
#define ck_string_equal(a, b)                                                            \
    do {                                                                                 \
        const char *a_ = (a), *b_ = (b);                                                 \
        if (!a_ || strcmp(a_, b_) != 0)                                                  \
            ck_fail("%s == \"%s\", want \"%s\"", #a, a_ ? a_ : "(null)", b_);            \
    } while (0)

typedef struct fx fx;
typedef void (*client_fn)(fx *f);

/* pending async answers */
typedef struct later {
    struct later *next;
    fx *f;
    http_req *r;
    struct event *ev;
    int status;
} later;

struct fx {
    struct event_base *base;
    http_server *s;
    http_server_cfg cfg;
    struct event *tick;
    pthread_t thread;
    client_fn client;
    atomic_bool done;
    /* owner state (loop thread), read by the client through atomics */
    atomic_int requests, ws_open, ws_closed, ws_msgs, orphan_replies;
    atomic_int close_half; /* client asks the loop to close sockets 0..n-1 */
    atomic_int send_count; /* client asks the loop to send this many to each */
    atomic_int send_size;  /* bytes per message */
    atomic_bool sending_done;
    atomic_int send_busy; /* http_ws_send returned ARIQ_EBUSY */
    int port;
    later *laters;
    http_req *held[64];
    int nheld;
    http_ws *ws[MAX_WS];
    int sent[MAX_WS];
    bool closed_by_us;
    char tls_dir[64];
};

/* ---- the owner ------------------------------------------------------------ */

static void reply_json(http_req *r, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    http_reply(r, status, "application/json", s, strlen(s));
    free(s);
    json_decref(j);
}

static void route_echo(fx *f, http_req *r)
{
    (void)f;
    size_t blen;
    const char *body = http_req_body(r, &blen);
    const char *x = http_req_param(r, "x"), *h = http_req_header(r, "X-Test");
    json_t *j = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s%, s:s, s:s?}", "method",
                          http_req_method(r), "path", http_req_path(r), "query",
                          http_req_query(r), "x", x, "h", h, "body", body, blen, "peer",
                          http_req_peer(r), "ct", http_req_header(r, "content-type"));
    reply_json(r, 200, j);
}

static void later_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    later *l = arg;
    fx *f = l->f;
    for (later **pp = &f->laters; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    int rc = http_reply(l->r, l->status, "text/plain", "later", 5);
    if (rc == ARIQ_ECLOSED)
        f->orphan_replies++;
    event_free(l->ev);
    free(l);
}

static void route_async(fx *f, http_req *r)
{
    const char *ms = http_req_param(r, "ms");
    int delay = ms ? atoi(ms) : 10;
    later *l = calloc(1, sizeof *l);
    l->f = f;
    l->r = r;
    l->status = 200;
    l->ev = evtimer_new(f->base, later_fire, l);
    l->next = f->laters;
    f->laters = l;
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    evtimer_add(l->ev, &tv);
}

static void route_hold(fx *f, http_req *r)
{
    f->held[f->nheld++] = r; /* never answered: the server free frees it */
}

static void route_auth(fx *f, http_req *r)
{
    (void)f;
    static const char *const hdrs[] = {"WWW-Authenticate: Bearer realm=\"ariq\"", NULL};
    http_reply_ex(r, 401, "application/json", "{\"error\":\"token\"}", 17, hdrs);
}

static const struct {
    const char *path;
    void (*fn)(fx *f, http_req *r);
} routes[] = {
    {"/echo", route_echo},
    {"/async", route_async},
    {"/hold", route_hold},
    {"/auth", route_auth},
};

static void on_request(http_server *s, http_req *r, void *ud)
{
    (void)s;
    fx *f = ud;
    f->requests++;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(http_req_path(r), routes[i].path)) {
            routes[i].fn(f, r);
            return;
        }
    http_reply_error(r, 404, "no such route");
}

static bool on_ws_open(http_server *s, http_ws *w, const http_req *up, int *st, void *ud)
{
    (void)s;
    fx *f = ud;
    if (strcmp(http_req_path(up), "/ws") != 0) {
        *st = 404;
        return false;
    }
    const char *auth = http_req_header(up, "authorization");
    if (!auth || strcmp(auth, "Bearer good") != 0) {
        *st = 401;
        return false;
    }
    int i = f->ws_open;
    if (i >= MAX_WS)
        return false;
    f->ws[i] = w;
    http_ws_set_data(w, (void *)(intptr_t)(i + 1));
    f->ws_open++;
    return true;
}

static void on_ws_message(http_server *s, http_ws *w, const char *msg, size_t len,
                          void *ud)
{
    (void)s;
    fx *f = ud;
    f->ws_msgs++;
    char buf[128];
    int n = snprintf(buf, sizeof buf, "echo:%.*s", (int)(len > 100 ? 100 : len), msg);
    http_ws_send(w, buf, (size_t)n);
}

static void on_ws_close(http_server *s, http_ws *w, void *ud)
{
    (void)s;
    fx *f = ud;
    intptr_t i = (intptr_t)http_ws_data(w) - 1;
    if (i >= 0 && i < MAX_WS)
        f->ws[i] = NULL;
    f->ws_closed++;
}

/* ---- the loop side of the harness --------------------------------------- */

/* Sends up to `batch` messages to every open socket per tick, so a fast
 * client keeps up and only a client that does not read falls behind. */
static void pump(fx *f)
{
    int total = f->send_count, size = f->send_size, open = 0;
    if (!total)
        return;
    char *buf = malloc((size_t)size + 32);
    int batch = size > 1000 ? 4 : total;
    for (int i = 0; i < MAX_WS; i++) {
        if (!f->ws[i] || f->sent[i] < 0 || f->sent[i] >= total)
            continue;
        open++;
        for (int k = 0; k < batch && f->sent[i] < total; k++) {
            int n = snprintf(buf, 32, "m:%d:", f->sent[i]);
            memset(buf + n, 'x', (size_t)(size > n ? size - n : 0));
            int rc = http_ws_send(f->ws[i], buf, (size_t)(size > n ? size : n));
            if (rc == ARIQ_EBUSY) {
                f->send_busy++;
                f->sent[i] = -1;
                break;
            }
            f->sent[i]++;
        }
    }
    free(buf);
    if (!open)
        f->sending_done = true;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fx *f = arg;
    if (f->close_half > 0 && !f->closed_by_us) {
        f->closed_by_us = true;
        for (int i = 0; i < f->close_half; i++)
            if (f->ws[i])
                http_ws_close(f->ws[i], 1000, "server says bye");
    }
    if (f->s)
        pump(f);
    if (f->done)
        event_base_loopbreak(f->base);
}

static void *client_main(void *arg)
{
    fx *f = arg;
    f->client(f);
    f->done = true;
    return NULL;
}

static void fx_start(fx *f)
{
    char err[256] = "";
    f->cfg.on_request = on_request;
    f->cfg.on_ws_open = on_ws_open;
    f->cfg.on_ws_message = on_ws_message;
    f->cfg.on_ws_close = on_ws_close;
    f->cfg.ud = f;
    f->base = event_base_new();
    int rc = http_server_new(f->base, &f->cfg, &f->s, err, sizeof err);
    if (rc != 0)
        fail_msg("http_server_new: %s", err);
    f->port = http_server_port(f->s);
    assert_true(f->port > 0);
    f->tick = event_new(f->base, -1, EV_PERSIST, on_tick, f);
    struct timeval tv = {0, 1000};
    event_add(f->tick, &tv);
}

/* Runs the loop while `client` runs on its thread. */
static void fx_run(fx *f, client_fn client)
{
    f->done = false;
    client_failures = 0;
    f->client = client;
    pthread_create(&f->thread, NULL, client_main, f);
    event_base_dispatch(f->base);
    pthread_join(f->thread, NULL);
    assert_int_equal(client_failures, 0);
}

/* Frees the server with whatever is outstanding, then the loop: it must
 * end with nothing left on it. */
static void fx_stop(fx *f)
{
    http_server_free(f->s);
    f->s = NULL;
    while (f->laters) {
        later *l = f->laters;
        f->laters = l->next;
        event_free(l->ev);
        free(l);
    }
    event_free(f->tick);
    assert_int_equal(event_base_get_num_events(f->base, EVENT_BASE_COUNT_ADDED), 0);
    event_base_free(f->base);
}

static fx *fx_new(void)
{
    fx *f = calloc(1, sizeof *f);
    f->cfg.rate_per_s = -1; /* most tests send bursts */
    return f;
}

/* ---- curl helpers (client thread) ---------------------------------------- */

typedef struct buf {
    char *p;
    size_t len;
} buf;

static size_t on_data(char *ptr, size_t sz, size_t n, void *ud)
{
    buf *b = ud;
    b->p = realloc(b->p, b->len + sz * n + 1);
    memcpy(b->p + b->len, ptr, sz * n);
    b->len += sz * n;
    b->p[b->len] = '\0';
    return sz * n;
}

/* One request; returns the status (0: no answer) and the body in *out. */
static long http_do(fx *f, const char *method, const char *path, const char *body,
                    size_t blen, const char *hdr, char **out, long timeout_ms, bool tls)
{
    char url[512];
    snprintf(url, sizeof url, "%s://127.0.0.1:%d%s", tls ? "https" : "http", f->port,
             path);
    CURL *e = curl_easy_init();
    buf b = {0};
    struct curl_slist *h = hdr ? curl_slist_append(NULL, hdr) : NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms ? timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (tls) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (h)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)blen);
    }
    long status = 0;
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    if (out)
        *out = b.p ? b.p : strdup("");
    else
        free(b.p);
    return status;
}

static json_t *echo(fx *f, const char *method, const char *path, const char *body,
                    const char *hdr, long *status)
{
    char *out = NULL;
    *status =
        http_do(f, method, path, body, body ? strlen(body) : 0, hdr, &out, 0, false);
    json_t *j = json_loads(out, 0, NULL);
    free(out);
    return j;
}

/* Runs n requests to path at once over n connections (curl multi). Counts
 * the statuses in st[0..599] (0: no answer). */
static void multi_do(fx *f, const char *path, int n, int *st)
{
    CURLM *m = curl_multi_init();
    CURL **es = calloc((size_t)n, sizeof *es);
    buf *bs = calloc((size_t)n, sizeof *bs);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    for (int i = 0; i < n; i++) {
        es[i] = curl_easy_init();
        curl_easy_setopt(es[i], CURLOPT_URL, url);
        curl_easy_setopt(es[i], CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(es[i], CURLOPT_WRITEDATA, &bs[i]);
        curl_easy_setopt(es[i], CURLOPT_TIMEOUT_MS, 20000L);
        curl_easy_setopt(es[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(es[i], CURLOPT_FRESH_CONNECT, 1L);
        curl_multi_add_handle(m, es[i]);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < n; i++) {
        long s = 0;
        curl_easy_getinfo(es[i], CURLINFO_RESPONSE_CODE, &s);
        st[s >= 0 && s < 600 ? s : 0]++;
        curl_multi_remove_handle(m, es[i]);
        curl_easy_cleanup(es[i]);
        free(bs[i].p);
    }
    curl_multi_cleanup(m);
    free(es);
    free(bs);
}

/* ---- HTTP tests --------------------------------------------------------- */

static void client_routes(fx *f)
{
    long st;
    json_t *j = echo(f, "GET", "/echo?x=1%202&y=a&flag", NULL, "X-Test: hello", &st);
    ck_int_equal(st, 200);
    ck_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    ck_string_equal(json_string_value(json_object_get(j, "path")), "/echo");
    ck_string_equal(json_string_value(json_object_get(j, "x")), "1 2");
    ck_string_equal(json_string_value(json_object_get(j, "query")), "x=1%202&y=a&flag");
    ck_string_equal(json_string_value(json_object_get(j, "h")), "hello");
    ck_string_equal(json_string_value(json_object_get(j, "peer")), "127.0.0.1");
    json_decref(j);
    static const char *const ms[] = {"POST", "PUT", "DELETE"};
    for (int i = 0; i < 3; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        j = echo(f, ms[i], "/echo?x=b", body, "Content-Type: application/json", &st);
        ck_int_equal(st, 200);
        ck_string_equal(json_string_value(json_object_get(j, "method")), ms[i]);
        ck_string_equal(json_string_value(json_object_get(j, "body")), body);
        ck_string_equal(json_string_value(json_object_get(j, "x")), "b");
        ck_string_equal(json_string_value(json_object_get(j, "ct")), "application/json");
        json_decref(j);
    }
    /* percent-decoded path, unknown route, extra headers */
    j = echo(f, "GET", "/ec%68o", NULL, NULL, &st);
    ck_int_equal(st, 200);
    ck_string_equal(json_string_value(json_object_get(j, "path")), "/echo");
    json_decref(j);
    char *out = NULL;
    ck_int_equal(http_do(f, "GET", "/nope", NULL, 0, NULL, &out, 0, false), 404);
    ck_string_equal(out, "{\"error\":\"no such route\"}");
    free(out);
    ck_int_equal(http_do(f, "GET", "/auth", NULL, 0, NULL, NULL, 0, false), 401);
    /* async: the answer comes from a timer on a later loop turn */
    ck_int_equal(http_do(f, "GET", "/async?ms=50", NULL, 0, NULL, &out, 0, false), 200);
    ck_string_equal(out, "later");
    free(out);
}

static void test_routes(void **state)
{
    (void)state;
    fx *f = fx_new();
    static const char *const custom[] = {"x-test", NULL};
    f->cfg.custom_headers = custom;
    fx_start(f);
    fx_run(f, client_routes);
    assert_int_equal(f->requests, 8);
    fx_stop(f);
    free(f);
}

static void client_concurrent(fx *f)
{
    int st[600] = {0};
    multi_do(f, "/async?ms=20", 200, st);
    ck_int_equal(st[200], 200);
}

static void test_concurrent(void **state)
{
    (void)state;
    fx *f = fx_new();
    fx_start(f);
    fx_run(f, client_concurrent);
    assert_int_equal(f->requests, 200);
    fx_stop(f);
    free(f);
}

static void client_limits(fx *f)
{
    size_t n = 100 * 1024;
    char *big = malloc(n);
    memset(big, 'a', n);
    char *out = NULL;
    ck_int_equal(http_do(f, "POST", "/echo", big, n, NULL, &out, 0, false), 413);
    json_t *j = json_loads(out, 0, NULL);
    ck_non_null(json_string_value(json_object_get(j, "error")));
    json_decref(j);
    free(out);
    free(big);
    /* just at the limit is fine */
    big = calloc(1, 1024);
    memset(big, 'b', 1023);
    ck_int_equal(http_do(f, "POST", "/echo", big, 1023, NULL, NULL, 0, false), 200);
    free(big);
}

static void test_too_large(void **state)
{
    (void)state;
    fx *f = fx_new();
    f->cfg.max_body = 1024;
    fx_start(f);
    fx_run(f, client_limits);
    assert_int_equal(f->requests, 1); /* the 413 never reached the owner */
    http_server_stats st;
    http_server_get_stats(f->s, &st);
    assert_int_equal(st.too_large, 1);
    fx_stop(f);
    free(f);
}

static void client_rate(fx *f)
{
    int n429 = 0, n200 = 0;
    char *out = NULL;
    for (int i = 0; i < 20; i++) {
        long st = http_do(f, "GET", "/echo", NULL, 0, NULL, &out, 0, false);
        if (st == 429) {
            n429++;
            json_t *j = json_loads(out, 0, NULL);
            ck_non_null(
                strstr(json_string_value(json_object_get(j, "error")), "too many"));
            json_decref(j);
        } else if (st == 200) {
            n200++;
        }
        free(out);
    }
    ck_true(n200 >= 5 && n200 <= 7); /* the burst, plus what refilled */
    ck_true(n429 >= 13);
    usleep(600 * 1000); /* 3 tokens back at 5/s */
    ck_int_equal(http_do(f, "GET", "/echo", NULL, 0, NULL, NULL, 0, false), 200);
}

static void test_rate_limit(void **state)
{
    (void)state;
    fx *f = fx_new();
    f->cfg.rate_per_s = 5;
    f->cfg.rate_burst = 5;
    fx_start(f);
    fx_run(f, client_rate);
    fx_stop(f);
    free(f);
}

static void client_gone(fx *f)
{
    /* the client gives up after 100 ms; the answer comes at 400 ms */
    ck_int_equal(http_do(f, "GET", "/async?ms=400", NULL, 0, NULL, NULL, 100, false), 0);
    usleep(600 * 1000);
    ck_int_equal(f->orphan_replies, 1);
    ck_int_equal(http_do(f, "GET", "/echo", NULL, 0, NULL, NULL, 0, false), 200);
}

static void test_client_gone(void **state)
{
    (void)state;
    fx *f = fx_new();
    fx_start(f);
    fx_run(f, client_gone);
    http_server_stats st;
    http_server_get_stats(f->s, &st);
    assert_int_equal(st.orphaned, 1);
    fx_stop(f);
    free(f);
}

static void client_max_conns(fx *f)
{
    int st[600] = {0};
    multi_do(f, "/async?ms=300", 5, st);
    ck_int_equal(st[200], 2);
    ck_int_equal(st[503], 3);
}

static void test_max_conns(void **state)
{
    (void)state;
    fx *f = fx_new();
    f->cfg.max_conns = 2;
    fx_start(f);
    fx_run(f, client_max_conns);
    fx_stop(f);
    free(f);
}

/* ---- WebSocket tests ------------------------------------------------------- */

#define NWS   50
#define NMSGS 10000

typedef struct waitarg {
    fx *f;
    int n;
    size_t want;
} waitarg;

static bool all_settled(wsc *c, void *arg)
{
    waitarg *a = arg;
    for (int i = 0; i < a->n; i++)
        if (wsc_get_state(c, i) == WSC_CONNECTING)
            return false;
    return true;
}

static bool all_received(wsc *c, void *arg)
{
    waitarg *a = arg;
    for (int i = 0; i < a->n; i++)
        if (wsc_received(c, i) < a->want)
            return false;
    return true;
}

static bool owner_msgs(wsc *c, void *arg)
{
    (void)c;
    waitarg *a = arg;
    return a->f->ws_msgs >= (int)a->want;
}

static bool owner_closed(wsc *c, void *arg)
{
    (void)c;
    waitarg *a = arg;
    return a->f->ws_closed >= (int)a->want;
}

static bool all_closed(wsc *c, void *arg)
{
    waitarg *a = arg;
    for (int i = 0; i < a->n; i++)
        if (wsc_get_state(c, i) != WSC_CLOSED)
            return false;
    return true;
}

static void client_ws(fx *f)
{
    wsc *c = wsc_new(false);
    ck_non_null(c);
    for (int i = 0; i < NWS; i++)
        wsc_connect(c, f->port, "/ws?k=v", "Bearer good", false);
    int bad = wsc_connect(c, f->port, "/ws", "Bearer bad", false);
    int none = wsc_connect(c, f->port, "/elsewhere", "Bearer good", false);
    waitarg a = {f, NWS + 2, 0};
    ck_true(wsc_wait(c, all_settled, &a, 10000));
    for (int i = 0; i < NWS; i++)
        ck_int_equal(wsc_get_state(c, i), WSC_OPEN);
    ck_int_equal(wsc_get_state(c, bad), WSC_FAILED);
    ck_int_equal(wsc_http_status(c, bad), 401);
    ck_int_equal(wsc_get_state(c, none), WSC_FAILED);
    ck_int_equal(wsc_http_status(c, none), 404);
    ck_int_equal(f->ws_open, NWS);

    /* the owner sends NMSGS to each, in order */
    f->send_size = 40;
    f->send_count = NMSGS;
    a = (waitarg){f, NWS, NMSGS};
    ck_true(wsc_wait(c, all_received, &a, 60000));
    for (int i = 0; i < NWS; i++) {
        ck_int_equal(wsc_received(c, i), NMSGS);
        ck_int_equal(wsc_order_errors(c, i), 0);
    }
    /* client messages reach on_ws_message (each is echoed back) */
    for (int i = 0; i < NWS; i++)
        for (int k = 0; k < 10; k++)
            wsc_send(c, i, "hello");
    a = (waitarg){f, NWS, (size_t)NWS * 10};
    ck_true(wsc_wait(c, owner_msgs, &a, 10000));
    a = (waitarg){f, NWS, NMSGS + 10};
    ck_true(wsc_wait(c, all_received, &a, 10000));
    char last[128];
    wsc_last(c, 0, last, sizeof last);
    ck_string_equal(last, "echo:hello");

    /* close: the first half from the server, the rest from the client */
    f->close_half = NWS / 2;
    for (int i = NWS / 2; i < NWS; i++)
        wsc_close(c, i);
    a = (waitarg){f, NWS, NWS};
    ck_true(wsc_wait(c, owner_closed, &a, 10000));
    ck_true(wsc_wait(c, all_closed, &a, 10000));
    ck_int_equal(f->ws_closed, NWS);
    wsc_free(c);
}

static void test_ws(void **state)
{
    (void)state;
    fx *f = fx_new();
    fx_start(f);
    fx_run(f, client_ws);
    http_server_stats st;
    http_server_get_stats(f->s, &st);
    assert_int_equal(st.ws_opened, NWS);
    assert_int_equal(st.ws_refused, 2);
    fx_stop(f);
    free(f);
}

static bool sending_done(wsc *c, void *arg)
{
    (void)c;
    waitarg *a = arg;
    return a->f->sending_done;
}

static void client_slow(fx *f)
{
    wsc *c = wsc_new(false);
    for (int i = 0; i < 3; i++)
        wsc_connect(c, f->port, "/ws", "Bearer good", i == 2);
    waitarg a = {f, 3, 0};
    ck_true(wsc_wait(c, all_settled, &a, 10000));
    f->send_size = 4096;
    f->send_count = 4000; /* 16 MiB each: more than the kernel buffers hold */
    a = (waitarg){f, 2, 4000};
    ck_true(wsc_wait(c, all_received, &a, 60000));
    ck_true(wsc_wait(c, sending_done, &a, 10000));
    a = (waitarg){f, 3, 1};
    ck_true(wsc_wait(c, owner_closed, &a, 10000));
    ck_int_equal(f->send_busy, 1);
    for (int i = 0; i < 2; i++) {
        ck_int_equal(wsc_received(c, i), 4000);
        ck_int_equal(wsc_order_errors(c, i), 0);
        ck_int_equal(wsc_get_state(c, i), WSC_OPEN);
    }
    wsc_free(c);
}

static void test_ws_slow(void **state)
{
    (void)state;
    fx *f = fx_new();
    f->cfg.ws_max_queued = 512 * 1024;
    fx_start(f);
    fx_run(f, client_slow);
    http_server_stats st;
    http_server_get_stats(f->s, &st);
    assert_int_equal(st.ws_slow_closed, 1);
    assert_int_equal(f->ws_closed, 3); /* the two others closed when the client freed */
    fx_stop(f);
    free(f);
}

/* ---- free with everything outstanding -------------------------------------- */

static void *hold_requests(void *arg)
{
    fx *f = arg;
    int st[600] = {0};
    multi_do(f, "/hold", 5, st);
    assert_int_equal(st[0], 5); /* no answer: the server went away */
    return NULL;
}

static void client_outstanding(fx *f)
{
    pthread_t t;
    pthread_create(&t, NULL, hold_requests, f);
    wsc *c = wsc_new(false);
    for (int i = 0; i < 5; i++)
        wsc_connect(c, f->port, "/ws", "Bearer good", false);
    waitarg a = {f, 5, 0};
    ck_true(wsc_wait(c, all_settled, &a, 10000));
    f->send_size = 4096;
    f->send_count = 100000; /* still sending when the server goes */
    while (f->nheld < 5)
        usleep(5000);
    usleep(50 * 1000);
    f->done = true; /* the loop breaks; the test frees the server */
    pthread_join(t, NULL);
    a = (waitarg){f, 5, 0};
    ck_true(wsc_wait(c, all_closed, &a, 10000));
    wsc_free(c);
}

static void *outstanding_main(void *arg)
{
    client_outstanding(arg);
    return NULL;
}

static void test_free_outstanding(void **state)
{
    (void)state;
    fx *f = fx_new();
    fx_start(f);
    f->done = false;
    client_failures = 0;
    pthread_t t;
    pthread_create(&t, NULL, outstanding_main, f);
    event_base_dispatch(f->base); /* until client_outstanding says done */
    int closed = f->ws_closed;
    fx_stop(f); /* 5 held requests, 5 sockets, queued messages */
    assert_int_equal(f->ws_closed, closed); /* no callback from the free */
    assert_int_equal(f->nheld, 5);
    pthread_join(t, NULL);
    assert_int_equal(client_failures, 0);
    free(f);
}

/* ---- TLS ----------------------------------------------------------------- */

static void client_tls(fx *f)
{
    char *out = NULL;
    ck_int_equal(http_do(f, "GET", "/echo?x=tls", NULL, 0, NULL, &out, 0, true), 200);
    json_t *j = json_loads(out, 0, NULL);
    ck_string_equal(json_string_value(json_object_get(j, "x")), "tls");
    json_decref(j);
    free(out);
    /* plain HTTP on the TLS port gets nowhere */
    ck_int_equal(http_do(f, "GET", "/echo", NULL, 0, NULL, NULL, 2000, false), 0);
    wsc *c = wsc_new(true);
    wsc_connect(c, f->port, "/ws", "Bearer good", false);
    waitarg a = {f, 1, 0};
    ck_true(wsc_wait(c, all_settled, &a, 10000));
    ck_int_equal(wsc_get_state(c, 0), WSC_OPEN);
    wsc_send(c, 0, "over tls");
    a = (waitarg){f, 1, 1};
    ck_true(wsc_wait(c, all_received, &a, 10000));
    char last[64];
    wsc_last(c, 0, last, sizeof last);
    ck_string_equal(last, "echo:over tls");
    wsc_free(c);
}

static void test_tls(void **state)
{
    (void)state;
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        print_message("SKIP test_tls: the openssl command is not installed "
                      "(apt-get install openssl)\n");
        skip();
    }
    fx *f = fx_new();
    char cmd[512], cert[96], key[96];
    snprintf(f->tls_dir, sizeof f->tls_dir, "/tmp/ariq-http-tls-XXXXXX");
    assert_non_null(mkdtemp(f->tls_dir));
    snprintf(cert, sizeof cert, "%s/cert.pem", f->tls_dir);
    snprintf(key, sizeof key, "%s/key.pem", f->tls_dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
             "-keyout %s -out %s >/dev/null 2>&1",
             key, cert);
    assert_int_equal(system(cmd), 0);
    f->cfg.cert_path = cert;
    f->cfg.key_path = key;
    fx_start(f);
    fx_run(f, client_tls);
    fx_stop(f);
    unlink(cert);
    unlink(key);
    rmdir(f->tls_dir);
    free(f);
}

static void test_bad_cfg(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    http_server *s = NULL;
    char err[256];
    http_server_cfg c = {.on_request = on_request, .bind = "localhost"};
    assert_int_equal(http_server_new(base, &c, &s, err, sizeof err), ARIQ_EIO);
    assert_non_null(strstr(err, "numeric"));
    c.bind = NULL;
    c.cert_path = "/nonexistent/cert.pem";
    assert_int_equal(http_server_new(base, &c, &s, err, sizeof err), ARIQ_EINVAL);
    c.key_path = "/nonexistent/key.pem";
    assert_int_equal(http_server_new(base, &c, &s, err, sizeof err), ARIQ_EINVAL);
    c.cert_path = c.key_path = NULL;
    c.on_request = NULL;
    assert_int_equal(http_server_new(base, &c, &s, err, sizeof err), ARIQ_EINVAL);
    http_server_free(NULL);
    event_base_free(base);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_cfg),    cmocka_unit_test(test_routes),
        cmocka_unit_test(test_concurrent), cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_rate_limit), cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_max_conns),  cmocka_unit_test(test_ws),
        cmocka_unit_test(test_ws_slow),    cmocka_unit_test(test_free_outstanding),
        cmocka_unit_test(test_tls),
    };
    if (getenv("HTTP_TEST_FILTER")) /* e.g. "test_ws*" */
        cmocka_set_test_filter(getenv("HTTP_TEST_FILTER"));
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
