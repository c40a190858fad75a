/* client.c - the real ARI REST transport: libcurl multi-socket on libevent.
 *
 * libcurl owns the sockets and the protocol; this file only tells libevent
 * which sockets to watch (sock_cb), arms one timer when libcurl asks
 * (timer_cb), and hands finished transfers to their callbacks (drain).
 *
 * Callbacks run only from drain(), which runs only from a libevent callback
 * (socket or timer), never from ari_request(): libcurl does no I/O inside
 * curl_multi_add_handle, it only asks for a 0 ms timer.
 *
 * Reentrancy: `depth` counts the libevent callbacks of this client on the
 * stack. ari_client_free() with depth > 0 only marks the client closing; the
 * outermost callback frees it when it unwinds (STYLE habit 6). */
#include "ari/client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#define MOD "ari_rest"
#define ARI_MAX_BODY (32u << 20)  /* a response larger than this fails */

typedef struct ari_req {
    struct ari_req *prev, *next;
    ari_client *client;
    CURL *easy;
    ari_cb cb;
    void *pd;
    char *method, *path;
    char *buf;              /* response body, NUL-terminated */
    size_t len, cap;
    int too_large;
    uint64_t start_us;
    char errbuf[CURL_ERROR_SIZE];
} ari_req;

struct ari_client {
    ari_rest rest;          /* first: the handle users hold */
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct curl_slist *json_hdr;   /* for requests with a JSON body */
    struct curl_slist *empty_hdr;  /* for POST / PUT without one */
    char *base_url;         /* url + "/ari" */
    char *user, *password;
    long timeout_ms, connect_timeout_ms;
    int max_conns;
    ari_req *reqs;          /* pending, doubly linked */
    size_t npending;
    int depth;              /* our libevent callbacks on the stack */
    bool closing;
    char errmsg[256];
    /* Easy handles of finished requests, reset and kept for the next ones:
     * making one costs a dozen allocations (libcurl's advice: reuse them). */
    CURL *idle[32];
    size_t nidle;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int client_request(void *impl, const char *method, const char *path,
                          const json_t *body, ari_cb cb, void *pd);
static void client_destroy(ari_client *c);

static const ari_rest_ops client_ops = {.request = client_request};

/* Records the message of an error a public call is about to return. */
static int fail_msg(ari_client *c, int err, const char *msg)
{
    snprintf(c->errmsg, sizeof c->errmsg, "%s", msg);
    return err;
}

/* ------------------------------------------------------------------------- */
/* Requests                                                                   */

/* Frees a request that is out of the multi handle and off the list. */
static void req_free(ari_req *q)
{
    if (!q)
        return;
    ari_client *c = q->client;
    if (q->easy && c && !c->closing && c->nidle < sizeof c->idle / sizeof c->idle[0]) {
        curl_easy_reset(q->easy);
        c->idle[c->nidle++] = q->easy;
    } else if (q->easy) {
        curl_easy_cleanup(q->easy);
    }
    free(q->method);
    free(q->path);
    free(q->buf);
    free(q);
}

static void req_link(ari_client *c, ari_req *q)
{
    q->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = q;
    c->reqs = q;
    c->npending++;
}

static void req_unlink(ari_client *c, ari_req *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        c->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
    c->npending--;
}

/* libcurl's write callback: appends to the body, refusing past ARI_MAX_BODY
 * (returning less than given makes libcurl abort the transfer). */
static size_t req_write(char *data, size_t size, size_t n, void *ud)
{
    ari_req *q = ud;
    size_t add = size * n;

    if (q->len + add + 1 > ARI_MAX_BODY) {
        q->too_large = 1;
        return 0;
    }
    if (q->len + add + 1 > q->cap) {
        size_t cap = q->cap ? q->cap : 1024;
        while (cap < q->len + add + 1)
            cap *= 2;
        char *nb = realloc(q->buf, cap);
        if (!nb)
            return 0;
        q->buf = nb;
        q->cap = cap;
    }
    memcpy(q->buf + q->len, data, add);
    q->len += add;
    q->buf[q->len] = '\0';
    return add;
}

/* Maps a failed transfer to the ARIQ_ code the response carries. */
static int curl_err(const ari_req *q, CURLcode rc)
{
    if (q->too_large)
        return ARIQ_ERANGE;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return ARIQ_ETIMEDOUT;
    return ARIQ_EIO;
}

/* Logs the outcome at the level it deserves: most 4xx are answers the caller
 * handles (debug); 401/403 (wrong credentials), 5xx and transport failures
 * are worth a warning. */
static void req_log(const ari_response *r)
{
    log_level lvl = LOG_LVL_DEBUG;

    if (r->status == 0 && r->err != ARIQ_ECLOSED)
        lvl = LOG_LVL_WARN;
    else if (r->status >= 500 || r->status == 401 || r->status == 403)
        lvl = LOG_LVL_WARN;
    if (lvl < log_get_level())
        return;
    log_write(lvl, MOD, "method=%s path=%s status=%ld err=%s ms=%.1f msg=\"%s\"",
              r->method, r->path, r->status, r->err ? ariq_strerror(r->err) : "0",
              r->elapsed_ms, ari_response_message(r));
}

/* Calls the request's callback with a response built from what libcurl left,
 * then frees the request. The request is already out of the multi handle and
 * off the list, so the callback may do anything, including free the client. */
static void req_complete(ari_client *c, ari_req *q, CURLcode rc, int forced_err)
{
    ari_response r = {0};
    json_error_t jerr;

    r.method = q->method;
    r.path = q->path;
    r.body = q->buf ? q->buf : "";
    r.body_len = q->len;
    r.elapsed_ms = (double)(clock_mono_us() - q->start_us) / 1000.0;
    if (forced_err) {
        r.err = forced_err;
        r.error = "client closed";
    } else if (rc != CURLE_OK) {
        r.err = curl_err(q, rc);
        r.error = q->too_large ? "response too large"
                  : q->errbuf[0] ? q->errbuf : curl_easy_strerror(rc);
    } else {
        curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &r.status);
        if (q->len)
            r.json = json_loadb(q->buf, q->len, JSON_DECODE_ANY, &jerr);
    }
    req_log(&r);
    if (q->cb)
        q->cb(&c->rest, &r, q->pd);
    json_decref(r.json);
    req_free(q);
}

/* Hands every finished transfer to its callback. Each is removed from the
 * multi handle before its callback runs, so the callback may start or end
 * requests; once the client is closing, the rest wait for client_destroy. */
static void drain(ari_client *c)
{
    CURLMsg *m;
    int left;

    while (!c->closing && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        ari_req *q = NULL;

        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&q);
        curl_multi_remove_handle(c->multi, easy);
        req_unlink(c, q);
        req_complete(c, q, rc, 0);
    }
}

/* Leaves one of our libevent callbacks: frees the client if it was closed
 * from inside (the deferred part of ari_client_free). */
static void leave(ari_client *c)
{
    if (--c->depth == 0 && c->closing)
        client_destroy(c);
}

/* ------------------------------------------------------------------------- */
/* libcurl <-> libevent                                                       */

static void on_socket(evutil_socket_t fd, short what, void *ud)
{
    ari_client *c = ud;
    int flags = 0, running;

    if (what & EV_READ)
        flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        flags |= CURL_CSELECT_OUT;
    c->depth++;
    curl_multi_socket_action(c->multi, fd, flags, &running);
    drain(c);
    leave(c);
}

static void on_timer(evutil_socket_t fd, short what, void *ud)
{
    ari_client *c = ud;
    int running;

    (void)fd;
    (void)what;
    c->depth++;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain(c);
    leave(c);
}

/* CURLMOPT_TIMERFUNCTION: one timer; -1 disarms it. Must not call back into
 * libcurl. */
static int timer_cb(CURLM *multi, long timeout_ms, void *ud)
{
    ari_client *c = ud;
    struct timeval tv;

    (void)multi;
    if (timeout_ms < 0) {
        evtimer_del(c->timer);
        return 0;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    return evtimer_add(c->timer, &tv) == 0 ? 0 : -1;
}

/* CURLMOPT_SOCKETFUNCTION: keeps one persistent libevent event per socket,
 * stored with curl_multi_assign, re-armed for what libcurl wants to wait on
 * and freed on CURL_POLL_REMOVE. */
static int sock_cb(CURL *easy, curl_socket_t s, int what, void *ud, void *sockp)
{
    ari_client *c = ud;
    struct event *ev = sockp;
    short kind = EV_PERSIST;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (ev)
            event_free(ev);
        curl_multi_assign(c->multi, s, NULL);
        return 0;
    }
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    if (ev) {
        event_del(ev);
        event_assign(ev, c->base, s, kind, on_socket, c);
    } else {
        ev = event_new(c->base, s, kind, on_socket, c);
        if (!ev)
            return -1;
        curl_multi_assign(c->multi, s, ev);
    }
    return event_add(ev, NULL) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------- */
/* Starting a request                                                         */

static bool method_known(const char *m)
{
    return !strcmp(m, "GET") || !strcmp(m, "POST") || !strcmp(m, "PUT") ||
           !strcmp(m, "DELETE");
}

/* Sets the method and body options. GET and DELETE without a body send
 * none; POST and PUT without one send Content-Length: 0 and no Content-Type
 * (libcurl would otherwise claim a form). */
static int req_set_method(ari_client *c, ari_req *q, const char *method,
                          const char *json)
{
    CURL *e = q->easy;
    int rc = 0;

    if (!json && strcmp(method, "GET") == 0)
        return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (!json && strcmp(method, "DELETE") == 0)
        return curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, json ? (long)strlen(json) : 0L);
    rc |= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, json ? json : "");
    if (strcmp(method, "POST") != 0)
        rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, json ? c->json_hdr : c->empty_hdr);
    return rc;
}

/* Sets everything that is the same for every request of this client. */
static int req_set_common(ari_client *c, ari_req *q, const char *url)
{
    CURL *e = q->easy;
    int rc = 0;

    rc |= curl_easy_setopt(e, CURLOPT_URL, url);
    rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)q);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, req_write);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->user) {
        rc |= curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        rc |= curl_easy_setopt(e, CURLOPT_USERNAME, c->user);
        rc |= curl_easy_setopt(e, CURLOPT_PASSWORD, c->password);
    }
    return rc;
}

/* Builds the easy handle for one request. Returns NULL when out of memory or
 * when libcurl refuses an option. */
static ari_req *req_new(ari_client *c, const char *method, const char *path,
                        const char *json)
{
    ari_req *q = calloc(1, sizeof *q);
    char *url = NULL;
    size_t n;

    if (!q)
        return NULL;
    n = strlen(c->base_url) + strlen(path) + 1;
    q->client = c;
    q->method = strdup(method);
    q->path = strdup(path);
    q->easy = c->nidle ? c->idle[--c->nidle] : curl_easy_init();
    url = malloc(n);
    if (!q->method || !q->path || !q->easy || !url)
        goto fail;
    snprintf(url, n, "%s%s", c->base_url, path);
    if (req_set_common(c, q, url) != 0 || req_set_method(c, q, method, json) != 0)
        goto fail;
    free(url);
    return q;
fail:
    free(url);
    req_free(q);
    return NULL;
}

/* ari_rest_ops.request of the real client. The body is serialized here and
 * copied by libcurl, so the caller's json_t is not kept. */
static int client_request(void *impl, const char *method, const char *path,
                          const json_t *body, ari_cb cb, void *pd)
{
    ari_client *c = impl;
    char *json = NULL;
    ari_req *q;

    if (c->closing)
        return fail_msg(c, ARIQ_ECLOSED, "client is closing");
    if (!method_known(method))
        return fail_msg(c, ARIQ_EINVAL, "method not GET, POST, PUT or DELETE");
    if (body && !(json = json_dumps(body, JSON_COMPACT)))
        return fail_msg(c, ARIQ_EINVAL, "body cannot be serialized");
    q = req_new(c, method, path, json);
    free(json);
    if (!q)
        return fail_msg(c, ARIQ_ENOMEM, "cannot set up request");
    q->cb = cb;
    q->pd = pd;
    q->start_us = clock_mono_us();
    if (curl_multi_add_handle(c->multi, q->easy) != CURLM_OK) {
        req_free(q);
        return fail_msg(c, ARIQ_EIO, "curl_multi_add_handle failed");
    }
    req_link(c, q);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Client lifetime                                                            */

/* Copies the config with defaults applied. Returns 0 or ARIQ_EINVAL /
 * ARIQ_ENOMEM. */
static int client_config(ari_client *c, const ari_client_config *cfg)
{
    size_t n;

    if (!cfg->url || strncmp(cfg->url, "http", 4) != 0)
        return ARIQ_EINVAL;
    n = strlen(cfg->url);
    while (n > 0 && cfg->url[n - 1] == '/')
        n--;
    if (!(c->base_url = malloc(n + 5)))
        return ARIQ_ENOMEM;
    memcpy(c->base_url, cfg->url, n);
    memcpy(c->base_url + n, "/ari", 5);
    if (cfg->user && cfg->user[0]) {
        c->user = strdup(cfg->user);
        c->password = strdup(cfg->password ? cfg->password : "");
        if (!c->user || !c->password)
            return ARIQ_ENOMEM;
    }
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 5000;
    c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 2000;
    c->max_conns = cfg->max_connections > 0 ? cfg->max_connections : 16;
    return 0;
}

/* Creates the multi handle and wires it to the loop. */
static int client_multi(ari_client *c)
{
    CURLM *m;
    struct curl_slist *hdr;
    int rc = 0;

    if (!(c->timer = evtimer_new(c->base, on_timer, c)))
        return ARIQ_ENOMEM;
    if (!(c->multi = m = curl_multi_init()))
        return ARIQ_ENOMEM;
    rc |= curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, sock_cb);
    rc |= curl_multi_setopt(m, CURLMOPT_SOCKETDATA, c);
    rc |= curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, timer_cb);
    rc |= curl_multi_setopt(m, CURLMOPT_TIMERDATA, c);
    rc |= curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)c->max_conns);
    rc |= curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)c->max_conns);
    rc |= curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)c->max_conns);
    /* No "Expect: 100-continue" for bodies over 1 KiB: Asterisk never sends
     * 100, so libcurl would wait a second before every such request. */
    if (!(c->json_hdr = curl_slist_append(NULL, "Content-Type: application/json")))
        return ARIQ_ENOMEM;
    if (!(hdr = curl_slist_append(c->json_hdr, "Expect:")))
        return ARIQ_ENOMEM;
    c->json_hdr = hdr;
    if (!(c->empty_hdr = curl_slist_append(NULL, "Content-Type:")))
        return ARIQ_ENOMEM;
    return rc ? ARIQ_EIO : 0;
}

ari_client *ari_client_new(struct event_base *base, const ari_client_config *cfg)
{
    ari_client *c;
    char red[512];

    if (!base || !cfg)
        return NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return NULL;
    if (!(c = calloc(1, sizeof *c)))
        return NULL;
    c->rest.ops = &client_ops;
    c->rest.impl = c;
    c->base = base;
    if (client_config(c, cfg) != 0 || client_multi(c) != 0) {
        LOG_E(MOD, "cannot create client: url must be http(s)://host:port, or out of memory");
        goto fail;
    }
    LOG_I(MOD, "url=%s user=%s timeout_ms=%ld max_connections=%d",
          log_redact_url(c->base_url, red, sizeof red), c->user ? c->user : "-",
          c->timeout_ms, c->max_conns);
    return c;
fail:
    client_destroy(c);
    return NULL;
}

/* Completes every pending request with ECLOSED, then releases everything.
 * Runs with `closing` set, so requests started from those callbacks are
 * refused and nested ari_client_free calls do nothing. */
static void client_destroy(ari_client *c)
{
    c->closing = true;
    while (c->reqs) {
        ari_req *q = c->reqs;
        req_unlink(c, q);
        curl_multi_remove_handle(c->multi, q->easy);
        req_complete(c, q, CURLE_OK, ARIQ_ECLOSED);
    }
    while (c->nidle)
        curl_easy_cleanup(c->idle[--c->nidle]);
    if (c->multi)
        curl_multi_cleanup(c->multi);   /* closes cached connections */
    if (c->timer)
        event_free(c->timer);
    curl_slist_free_all(c->json_hdr);
    curl_slist_free_all(c->empty_hdr);
    free(c->base_url);
    free(c->user);
    if (c->password)
        memset(c->password, 0, strlen(c->password));
    free(c->password);
    free(c);
}

void ari_client_free(ari_client *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    if (c->depth == 0)
        client_destroy(c);
}

ari_rest *ari_client_rest(ari_client *c)
{
    return c ? &c->rest : NULL;
}

int ari_request(ari_client *c, const char *method, const char *path,
                const json_t *body, ari_cb cb, void *privdata)
{
    if (!c)
        return ARIQ_EINVAL;
    return ari_rest_request(&c->rest, method, path, body, cb, privdata);
}

size_t ari_client_pending(const ari_client *c)
{
    return c ? c->npending : 0;
}

const char *ari_client_errmsg(const ari_client *c)
{
    return c ? c->errmsg : "";
}
