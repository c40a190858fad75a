/* server.c - HTTP + WebSocket server: an lws service thread that moves
 * whole requests and messages, and the libevent loop that owns them.
 *
 * Who touches what:
 *   - service thread only: lws, conn, the rate table, a request while it is
 *     READING, a socket's receive buffer and its wsi;
 *   - under s->mu: the item queue to the loop, the lists of every request
 *     and socket (so the free can find them), the ready and kick lists back
 *     to the service thread, a request's state, a socket's send queue and
 *     flags;
 *   - loop thread only: owner callbacks, stats, a socket's owner data.
 * The service thread never touches the event_base; the loop never touches
 * lws except lws_cancel_service().
 *
 * A request's life (state under mu):
 *   READING  headers in, body arriving (service thread)
 *     -> OWNER   queued to / held by the loop; connection alive
 *     -> ORPHAN  held by the loop; the client has gone: http_reply frees
 *   OWNER -> REPLIED  answer set, on the ready list: the service thread
 *                     writes it and frees it (or frees it if the client goes)
 *   READING -> REPLIED for answers this layer gives itself (413, 429, 503).
 *
 * A socket's life: created at the upgrade, verdict PENDING; the loop takes
 * it (DECIDING), the owner answers (ACCEPTED / REFUSED); the service thread
 * gives up after UPGRADE_WAIT_S (ABANDONED: the loop frees it unasked).
 * An accepted socket ends when its connection does: the service thread
 * marks it gone and posts ITEM_WS_CLOSED, the last item about it; the loop
 * calls on_ws_close and frees it. */
#include "http/server.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#include <event2/event.h>
#include <jansson.h>
#include <libwebsockets.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MOD            "http_server"
#define DRAIN_BATCH    256 /* items per loop wakeup */
#define CHUNK          65536
#define WRITE_BATCH    64 /* WebSocket messages per writable callback */
#define UPGRADE_WAIT_S 5  /* the longest the service thread waits for on_ws_open */
#define CLOSE_WAIT_S   5  /* a graceful close gives up after this */
#define RATE_SLOTS     1024
#define RATE_PRUNE_MS  10000
#define SWEEP_MS       250 /* how often waiting requests are checked for a gone client */
#define PEER_MAX       64

/* ---- types ---------------------------------------------------------------- */

typedef enum {
    ITEM_REQUEST,   /* obj: an http_req, now OWNER */
    ITEM_WS_OPEN,   /* obj: an http_ws waiting for its verdict */
    ITEM_WS_MSG,    /* obj: the http_ws; data: one whole message */
    ITEM_WS_CLOSED, /* obj: the http_ws; its last item */
} item_kind;

typedef struct item {
    struct item *next;
    item_kind kind;
    void *obj;
    size_t len;
    char data[]; /* NUL-terminated after len bytes */
} item;

typedef enum {
    REQ_READING, /* service thread: headers in, body arriving */
    REQ_OWNER,   /* the loop's; connection alive */
    REQ_ORPHAN,  /* the loop's; the client has gone */
    REQ_REPLIED, /* the service thread's: answer set, to be written */
} req_state;

struct http_req {
    lws_dll2_t all;   /* s->reqs */
    lws_dll2_t ready; /* s->ready while REPLIED and waiting for a writable */
    http_server *s;
    struct lws *wsi; /* service thread; NULL once the connection is gone */
    req_state state;
    char method[8];
    char *path, *query;
    char *params; /* "k\0v\0k\0v\0" */
    size_t nparams;
    char *hdrs; /* "name\0value\0..." */
    size_t nhdrs;
    char *body;
    size_t body_len;
    char peer[PEER_MAX];
    bool too_big, close_after;
    /* the answer */
    int status;
    char *ctype, *extra, *out;
    size_t out_len, sent;
    bool hdrs_sent;
};

typedef enum {
    V_PENDING,   /* queued to the loop */
    V_DECIDING,  /* on_ws_open is running */
    V_ACCEPTED,  /* the owner's until on_ws_close */
    V_REFUSED,   /* the service thread answers and frees it */
    V_ABANDONED, /* the service thread gave up; the loop frees it unasked */
} verdict;

typedef struct out_msg {
    struct out_msg *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE + len */
} out_msg;

struct http_ws {
    lws_dll2_t all;  /* s->wss */
    lws_dll2_t kick; /* s->kicks: the service thread has work for it */
    http_server *s;
    http_req *upgrade; /* until the verdict */
    char peer[PEER_MAX];
    /* under mu */
    verdict v;
    int refuse_status;
    out_msg *head, *tail;
    size_t out_bytes, in_bytes;
    bool gone;      /* the connection ended */
    bool closing;   /* no more sends: http_ws_close or too slow */
    bool close_now; /* too slow: kill without draining */
    bool close_req; /* graceful: close once drained */
    bool rx_paused, resume_req;
    int close_code;
    char close_reason[124];
    /* service thread only */
    struct lws *wsi; /* from ESTABLISHED until gone */
    char *rx;
    size_t rx_len;
    bool rx_skip, rx_in_msg;
    /* loop thread only */
    void *data;
};

/* One accepted TCP connection; lws's per-session data is re-zeroed at every
 * keep-alive transaction and upgrade, so this hangs off the wsi's opaque
 * user data instead. */
typedef struct conn {
    http_req *req;
    http_ws *ws;
    bool over_limit; /* accepted past max_conns: 503 and close */
    char peer[PEER_MAX];
} conn;

typedef struct bucket {
    struct bucket *next;
    double tokens;
    uint64_t last_us;
    char peer[PEER_MAX];
} bucket;

struct http_server {
    struct event_base *base;
    http_server_cfg cfg; /* strings point at the copies below */
    char *bind, *cert, *key;
    char **custom; /* "x-foo:" */
    size_t ncustom;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    int port;
    int efd;
    struct event *wake_ev;

    /* service thread only */
    pthread_t thread;
    bool thread_started;
    struct lws *listen_wsi;
    unsigned nconns;
    bucket *rate[RATE_SLOTS];
    uint64_t next_prune_ms;
    lws_sorted_usec_list_t sul_sweep;
    unsigned char *wbuf; /* LWS_PRE + CHUNK */

    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a verdict, or stop */
    item *head, *tail;
    lws_dll2_owner_t reqs, wss, ready, kicks;
    bool stop;
    uint64_t too_large, rate_limited, over_conns, ws_timeouts, late_orphans;

    /* loop thread only */
    int in_callback;
    bool free_pending;
    http_server_stats stats;
};

static int lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len);

static const struct lws_protocols protocols[] = {
    {"ariq-http", lws_cb, 0, 16384, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- small helpers --------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

/* {"error":"msg"}, malloc'd, or NULL on no memory. */
static char *error_json(const char *msg)
{
    json_t *j = json_pack("{s:s}", "error", msg ? msg : "");
    char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return out;
}

static void req_free(http_req *r)
{
    if (!r)
        return;
    free(r->path);
    free(r->query);
    free(r->params);
    free(r->hdrs);
    free(r->body);
    free(r->ctype);
    free(r->extra);
    free(r->out);
    free(r);
}

/* Unlinks r from every list (under mu) and frees it. */
static void req_drop(http_server *s, http_req *r)
{
    pthread_mutex_lock(&s->mu);
    lws_dll2_remove(&r->ready);
    lws_dll2_remove(&r->all);
    pthread_mutex_unlock(&s->mu);
    req_free(r);
}

static void ws_free(http_ws *w)
{
    for (out_msg *m = w->head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    req_free(w->upgrade);
    free(w->rx);
    free(w);
}

/* "k\0v\0..." lookups: the value after the first name matching. */
static const char *pairs_find(const char *buf, size_t n, const char *name, bool nocase)
{
    const char *p = buf;
    for (size_t i = 0; p && i < n; i++) {
        const char *v = p + strlen(p) + 1;
        if (nocase ? !strcasecmp(p, name) : !strcmp(p, name))
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* ---- service thread: the queue to the loop --------------------------------- */

/* Appends an item and wakes the loop when the queue was empty. For a
 * WebSocket message, pauses reading that socket when the loop is too far
 * behind on it (resumed by the loop through the kick list). */
static int post(http_server *s, item_kind kind, void *obj, const char *data, size_t len)
{
    item *it = malloc(sizeof *it + len + 1);
    if (!it)
        return ARIQ_ENOMEM;
    it->next = NULL;
    it->kind = kind;
    it->obj = obj;
    it->len = len;
    if (len)
        memcpy(it->data, data, len);
    it->data[len] = '\0';
    pthread_mutex_lock(&s->mu);
    bool was_empty = !s->head;
    if (s->tail)
        s->tail->next = it;
    else
        s->head = it;
    s->tail = it;
    if (kind == ITEM_REQUEST)
        ((http_req *)obj)->state = REQ_OWNER;
    if (kind == ITEM_WS_MSG) {
        http_ws *w = obj;
        w->in_bytes += len;
        if (w->in_bytes > s->cfg.ws_max_queued && !w->rx_paused && w->wsi) {
            lws_rx_flow_control(w->wsi, 0);
            w->rx_paused = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t n = write(s->efd, &one, sizeof one);
        (void)n; /* EAGAIN only when the counter is huge: the loop is awake anyway */
    }
    return 0;
}

/* ---- service thread: rate limit ------------------------------------------- */

static unsigned peer_hash(const char *p)
{
    unsigned h = 2166136261u;
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % RATE_SLOTS;
}

/* Takes one token from the peer's bucket; false when it is empty. */
static bool rate_take(http_server *s, const char *peer)
{
    if (s->cfg.rate_per_s < 0)
        return true;
    uint64_t now = clock_mono_us();
    bucket **slot = &s->rate[peer_hash(peer)], *b = *slot;
    while (b && strcmp(b->peer, peer) != 0)
        b = b->next;
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b)
            return true; /* no memory for the limit: do not refuse service for it */
        snprintf(b->peer, sizeof b->peer, "%s", peer);
        b->tokens = s->cfg.rate_burst;
        b->last_us = now;
        b->next = *slot;
        *slot = b;
    }
    b->tokens += (double)(now - b->last_us) / 1e6 * s->cfg.rate_per_s;
    if (b->tokens > s->cfg.rate_burst)
        b->tokens = s->cfg.rate_burst;
    b->last_us = now;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

/* Forgets buckets that have refilled: they hold nothing a new one would not. */
static void rate_prune(http_server *s)
{
    uint64_t now = clock_mono_us();
    for (int i = 0; i < RATE_SLOTS; i++) {
        for (bucket **pp = &s->rate[i], *b; (b = *pp);) {
            double full =
                b->tokens + (double)(now - b->last_us) / 1e6 * s->cfg.rate_per_s;
            if (full >= s->cfg.rate_burst) {
                *pp = b->next;
                free(b);
            } else {
                pp = &b->next;
            }
        }
    }
}

static void rate_free(http_server *s)
{
    for (int i = 0; i < RATE_SLOTS; i++)
        for (bucket *b = s->rate[i], *next; b; b = next) {
            next = b->next;
            free(b);
        }
}

/* ---- service thread: building a request ------------------------------------ */

static const struct {
    enum lws_token_indexes tok;
    const char *name;
} methods[] = {
    {WSI_TOKEN_GET_URI, "GET"},     {WSI_TOKEN_POST_URI, "POST"},
    {WSI_TOKEN_PUT_URI, "PUT"},     {WSI_TOKEN_DELETE_URI, "DELETE"},
    {WSI_TOKEN_PATCH_URI, "PATCH"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
    {WSI_TOKEN_HEAD_URI, "HEAD"},
};

static int req_method(struct lws *wsi)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (lws_hdr_total_length(wsi, methods[i].tok))
            return (int)i;
    return -1;
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static int sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 256) + n;
        char *p = realloc(b->p, cap);
        if (!p)
            return ARIQ_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* Appends s percent-encoded (RFC 3986 unreserved kept). */
static int sb_enc(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (; *s && rc == 0; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c)) {
            rc = sb_add(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = sb_add(b, e, 3);
        }
    }
    return rc;
}

/* Query parameters: lws hands them over decoded, split at '&'. Keeps them
 * as pairs for http_req_param and rebuilds an encoded query string. */
static int req_query(http_req *r, struct lws *wsi)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    sbuf q = {0}, pr = {0};
    char *frag = malloc((size_t)total + 2);
    int rc = frag ? sb_add(&q, "", 0) : ARIQ_ENOMEM;
    for (int i = 0;
         rc == 0 && total > 0 &&
         lws_hdr_copy_fragment(wsi, frag, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0;
         i++) {
        if (!frag[0])
            continue;
        char *eq = strchr(frag, '=');
        if (eq)
            *eq = '\0';
        const char *val = eq ? eq + 1 : "";
        rc = sb_add(&pr, frag, strlen(frag) + 1);
        if (rc == 0)
            rc = sb_add(&pr, val, strlen(val) + 1);
        r->nparams++;
        if (rc == 0 && q.len)
            rc = sb_add(&q, "&", 1);
        if (rc == 0)
            rc = sb_enc(&q, frag);
        if (rc == 0 && eq)
            rc = sb_add(&q, "=", 1);
        if (rc == 0 && eq)
            rc = sb_enc(&q, val);
    }
    free(frag);
    r->query = q.p;
    r->params = pr.p;
    return rc;
}

static int hdr_add(sbuf *h, const char *name, size_t nlen, const char *val)
{
    int rc = sb_add(h, name, nlen);
    if (rc == 0)
        rc = sb_add(h, "", 1); /* the NUL after the name */
    return rc ? rc : sb_add(h, val, strlen(val) + 1);
}

/* Every header lws knows (name "host:" and the like; method lines and
 * pseudo headers skipped), then the configured custom ones. */
static int req_headers(http_server *s, http_req *r, struct lws *wsi)
{
    sbuf h = {0};
    int rc = 0;
    char *val = NULL;
    for (int t = 0; rc == 0 && t < WSI_TOKEN_COUNT; t++) {
        const char *name = (const char *)lws_token_to_string((enum lws_token_indexes)t);
        size_t nl = name ? strlen(name) : 0;
        int len = lws_hdr_total_length(wsi, (enum lws_token_indexes)t);
        if (!nl || name[0] == ':' || name[nl - 1] != ':' || len <= 0)
            continue;
        char *v = realloc(val, (size_t)len + 1);
        if (!v) {
            rc = ARIQ_ENOMEM;
            break;
        }
        val = v;
        if (lws_hdr_copy(wsi, val, len + 1, (enum lws_token_indexes)t) < 0)
            continue;
        rc = hdr_add(&h, name, nl - 1, val);
        r->nhdrs++;
    }
    for (size_t i = 0; rc == 0 && i < s->ncustom; i++) {
        const char *name = s->custom[i];
        int nl = (int)strlen(name), len = lws_hdr_custom_length(wsi, name, nl);
        if (len < 0)
            continue;
        char *v = realloc(val, (size_t)len + 1);
        if (!v) {
            rc = ARIQ_ENOMEM;
            break;
        }
        val = v;
        if (lws_hdr_custom_copy(wsi, val, len + 1, name, nl) < 0)
            continue;
        rc = hdr_add(&h, name, (size_t)nl - 1, val);
        r->nhdrs++;
    }
    free(val);
    r->hdrs = h.p;
    return rc;
}

/* A new request from the headers lws parsed; path is the decoded URI.
 * Linked into s->reqs. NULL on no memory or an unknown method. */
static http_req *req_new(http_server *s, conn *c, struct lws *wsi, const char *path)
{
    int m = req_method(wsi);
    http_req *r = m < 0 ? NULL : calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->s = s;
    r->wsi = wsi;
    snprintf(r->method, sizeof r->method, "%s", methods[m].name);
    snprintf(r->peer, sizeof r->peer, "%s", c->peer);
    r->path = strdup(path ? path : "/");
    if (!r->path || req_query(r, wsi) != 0 || req_headers(s, r, wsi) != 0) {
        req_free(r);
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    lws_dll2_add_tail(&r->all, &s->reqs);
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* Sets an answer (copies). Returns 0 or ARIQ_ENOMEM (then a bare 500 goes out). */
static int req_set_answer(http_req *r, int status, const char *ctype, const char *body,
                          size_t len, const char *const *extra)
{
    sbuf x = {0};
    int rc = 0;
    r->status = status;
    r->ctype = ctype ? strdup(ctype) : NULL;
    r->out = len ? malloc(len) : NULL;
    if ((ctype && !r->ctype) || (len && !r->out))
        rc = ARIQ_ENOMEM;
    if (r->out)
        memcpy(r->out, body, len);
    r->out_len = r->out ? len : 0;
    for (size_t i = 0; rc == 0 && extra && extra[i]; i++)
        if (!strchr(extra[i], '\r') && !strchr(extra[i], '\n') && /* no injection */
            (rc = sb_add(&x, extra[i], strlen(extra[i]))) == 0)
            rc = sb_add(&x, "\r\n", 2);
    r->extra = x.p;
    if (rc != 0) {
        free(r->out);
        r->out = NULL;
        r->out_len = 0;
        r->status = 500;
    }
    return rc;
}

/* ---- service thread: writing an answer -------------------------------------- */

static int write_headers(http_server *s, http_req *r, struct lws *wsi)
{
    unsigned char buf[LWS_PRE + 4096], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof buf - 1;
    (void)s;
    if (lws_add_http_common_headers(wsi, (unsigned)r->status, r->ctype, r->out_len, &p,
                                    end))
        return -1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (r->close_after &&
        lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                     (const unsigned char *)"close", 5, &p, end))
        return -1;
    if (r->extra) {
        size_t n = strlen(r->extra);
        if ((size_t)(end - p) <= n)
            return -1;
        memcpy(p, r->extra, n);
        p += n;
    }
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

/* Writes r's answer (REPLIED, the service thread's): headers, then the body
 * while the socket takes it; frees r when done. Returns -1 to close. */
static int req_write(http_server *s, conn *c, struct lws *wsi)
{
    http_req *r = c->req;
    bool head = !strcmp(r->method, "HEAD");
    if (!r->hdrs_sent) {
        r->hdrs_sent = true;
        if (write_headers(s, r, wsi))
            return -1;
    }
    while (!head && r->sent < r->out_len && !lws_send_pipe_choked(wsi)) {
        size_t n = r->out_len - r->sent < CHUNK ? r->out_len - r->sent : CHUNK;
        bool last = r->sent + n == r->out_len;
        memcpy(s->wbuf + LWS_PRE, r->out + r->sent, n);
        if (lws_write(wsi, s->wbuf + LWS_PRE, n,
                      last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
            return -1;
        r->sent += n;
    }
    if (!head && r->sent < r->out_len) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    bool close = r->close_after;
    c->req = NULL;
    req_drop(s, r);
    if (close)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* An answer this layer gives itself: {"error":msg}, connection closed after
 * (a body may still be on its way). */
static int req_refuse(http_server *s, conn *c, struct lws *wsi, int status,
                      const char *msg)
{
    http_req *r = c->req;
    char *body = error_json(msg);
    r->close_after = true;
    req_set_answer(r, status, "application/json", body, body ? strlen(body) : 0, NULL);
    free(body);
    pthread_mutex_lock(&s->mu);
    r->state = REQ_REPLIED;
    pthread_mutex_unlock(&s->mu);
    return req_write(s, c, wsi);
}

/* ---- service thread: HTTP callbacks ------------------------------------------ */

static conn *conn_of(struct lws *wsi)
{
    return lws_get_opaque_user_data(wsi);
}

static void count(http_server *s, uint64_t *counter)
{
    pthread_mutex_lock(&s->mu);
    (*counter)++;
    pthread_mutex_unlock(&s->mu);
}

/* Headers are in: limits first, then wait for a body or hand it over. */
static int on_http(http_server *s, struct lws *wsi, const char *uri)
{
    char cl[32] = "";
    conn *c = conn_of(wsi);
    if (!c)
        return -1;
    c->req = req_new(s, c, wsi, uri);
    if (!c->req)
        return -1;
    const char *m = c->req->method;
    if (c->over_limit) {
        count(s, &s->over_conns);
        return req_refuse(s, c, wsi, 503, "too many connections, try again later");
    }
    if (!rate_take(s, c->peer)) {
        count(s, &s->rate_limited);
        return req_refuse(s, c, wsi, 429,
                          "too many requests from this address, slow down");
    }
    bool has_cl = lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
    long long n = has_cl ? atoll(cl) : 0;
    if (has_cl && (n < 0 || (unsigned long long)n > s->cfg.max_body)) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body over %zu bytes", s->cfg.max_body);
        count(s, &s->too_large);
        return req_refuse(s, c, wsi, 413, msg);
    }
    bool bodied = !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
    if (bodied && !has_cl)
        return req_refuse(s, c, wsi, 411, "a request body needs a Content-Length header");
    if (has_cl && (n > 0 || !strcmp(m, "POST")))
        return 0; /* lws delivers the body, then BODY_COMPLETION (also for POST with 0) */
    return post(s, ITEM_REQUEST, c->req, NULL, 0) ? -1 : 0;
}

static int on_body(http_server *s, conn *c, const void *in, size_t len)
{
    http_req *r = c ? c->req : NULL;
    if (!r || r->state != REQ_READING || r->too_big || !len)
        return 0;
    if (r->body_len + len > s->cfg.max_body) { /* Content-Length lied */
        r->too_big = true;
        return 0;
    }
    char *b = realloc(r->body, r->body_len + len + 1);
    if (!b)
        return -1;
    memcpy(b + r->body_len, in, len);
    r->body = b;
    r->body_len += len;
    b[r->body_len] = '\0';
    return 0;
}

static int on_body_done(http_server *s, conn *c, struct lws *wsi)
{
    http_req *r = c ? c->req : NULL;
    if (!r || r->state != REQ_READING)
        return -1;
    if (r->too_big) {
        count(s, &s->too_large);
        return req_refuse(s, c, wsi, 413, "request body too large");
    }
    return post(s, ITEM_REQUEST, r, NULL, 0) ? -1 : 0;
}

static int on_http_writeable(http_server *s, struct lws *wsi)
{
    conn *c = conn_of(wsi);
    http_req *r = c ? c->req : NULL;
    if (!r)
        return 0;
    pthread_mutex_lock(&s->mu);
    bool mine = r->state == REQ_REPLIED;
    pthread_mutex_unlock(&s->mu);
    return mine ? req_write(s, c, wsi) : 0;
}

/* The connection of c's request is gone: whoever holds it next frees it. */
static void conn_req_gone(http_server *s, conn *c)
{
    http_req *r = c->req;
    if (!r)
        return;
    c->req = NULL;
    pthread_mutex_lock(&s->mu);
    r->wsi = NULL;
    bool mine = r->state == REQ_READING || r->state == REQ_REPLIED;
    if (r->state == REQ_OWNER)
        r->state = REQ_ORPHAN;
    pthread_mutex_unlock(&s->mu);
    if (mine)
        req_drop(s, r);
}

/* ---- service thread: WebSocket ----------------------------------------------- */

/* Answers an upgrade with an HTTP error, written whole as raw bytes (lws has
 * no HTTP response state for an upgrade request); lws then completes the
 * transaction. Returns 1, what CONFIRM_UPGRADE wants for "answered". */
static int upgrade_reject(struct lws *wsi, int status, const char *msg)
{
    unsigned char buf[LWS_PRE + 1024];
    char *p = (char *)buf + LWS_PRE, *body = error_json(msg);
    int n = snprintf(p, sizeof buf - LWS_PRE,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, reason_phrase(status), body ? strlen(body) : 0,
                     body ? body : "");
    free(body);
    if (n < 0 || (size_t)n >= sizeof buf - LWS_PRE)
        return -1;
    if (lws_write(wsi, (unsigned char *)p, (size_t)n, LWS_WRITE_HTTP_HEADERS) < n)
        return -1;
    return 1;
}

/* Waits for the loop's verdict on w. The only place the service thread
 * waits for the loop; see server.h. Returns the verdict (V_ABANDONED after
 * UPGRADE_WAIT_S, or when the server stops). */
static verdict await_verdict(http_server *s, http_ws *w)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += UPGRADE_WAIT_S;
    pthread_mutex_lock(&s->mu);
    while (!s->stop && (w->v == V_PENDING || w->v == V_DECIDING)) {
        if (w->v == V_DECIDING) { /* the owner is on it: it is short, wait */
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) == ETIMEDOUT &&
            w->v == V_PENDING) {
            w->v = V_ABANDONED;
            s->ws_timeouts++;
        }
    }
    verdict v = s->stop ? V_ABANDONED : w->v;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static int on_confirm_upgrade(http_server *s, struct lws *wsi, const char *what)
{
    char uri[1024] = "";
    conn *c = conn_of(wsi);
    if (!c)
        return -1;
    if (strcasecmp(what, "websocket") != 0)
        return upgrade_reject(wsi, 501, "only WebSocket upgrades are served");
    if (c->over_limit) {
        count(s, &s->over_conns);
        return upgrade_reject(wsi, 503, "too many connections, try again later");
    }
    if (!rate_take(s, c->peer)) {
        count(s, &s->rate_limited);
        return upgrade_reject(wsi, 429, "too many requests from this address, slow down");
    }
    http_ws *w = calloc(1, sizeof *w);
    if (!w || lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) < 0)
        goto fail;
    w->s = s;
    snprintf(w->peer, sizeof w->peer, "%s", c->peer);
    w->refuse_status = 401;
    w->upgrade = req_new(s, c, wsi, uri);
    if (!w->upgrade)
        goto fail;
    pthread_mutex_lock(&s->mu); /* the upgrade request is w's, not on s->reqs */
    lws_dll2_remove(&w->upgrade->all);
    lws_dll2_add_tail(&w->all, &s->wss);
    pthread_mutex_unlock(&s->mu);
    c->ws = w;
    if (post(s, ITEM_WS_OPEN, w, NULL, 0) != 0) {
        pthread_mutex_lock(&s->mu);
        lws_dll2_remove(&w->all);
        pthread_mutex_unlock(&s->mu);
        c->ws = NULL;
        goto fail;
    }
    verdict v = await_verdict(s, w);
    if (v == V_ACCEPTED)
        return 0;
    c->ws = NULL;
    if (v == V_ABANDONED) /* the loop frees w when it gets to it, or the free does */
        return s->stop ? -1 : upgrade_reject(wsi, 503, "the server is busy, try again");
    int st = w->refuse_status;
    pthread_mutex_lock(&s->mu);
    lws_dll2_remove(&w->all);
    pthread_mutex_unlock(&s->mu);
    ws_free(w);
    return upgrade_reject(wsi, st,
                          st == 401   ? "authentication required"
                          : st == 404 ? "no such WebSocket endpoint"
                                      : "WebSocket refused");
fail:
    if (w)
        ws_free(w);
    return -1;
}

static int on_ws_established(http_server *s, struct lws *wsi)
{
    conn *c = conn_of(wsi);
    http_ws *w = c ? c->ws : NULL;
    if (!w)
        return -1;
    pthread_mutex_lock(&s->mu);
    w->wsi = wsi;
    bool kill = w->close_now, work = w->head || w->close_req;
    pthread_mutex_unlock(&s->mu);
    if (kill)
        return -1;
    if (work)
        lws_callback_on_writable(wsi);
    return 0;
}

/* One received chunk; a message may come in several fragments and each in
 * several chunks. Over max_body the socket is closed with 1009. */
static int on_ws_receive(http_server *s, struct lws *wsi, const void *in, size_t len)
{
    conn *c = conn_of(wsi);
    http_ws *w = c ? c->ws : NULL;
    if (!w)
        return -1;
    if (!w->rx_in_msg) {
        w->rx_in_msg = true;
        w->rx_len = 0;
    }
    if (w->rx_len + len > s->cfg.max_body) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                         (unsigned char *)"message too large", 17);
        return -1;
    }
    if (!w->rx && !(w->rx = malloc(s->cfg.max_body + 1)))
        return -1;
    memcpy(w->rx + w->rx_len, in, len);
    w->rx_len += len;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) != 0)
        return 0;
    w->rx_in_msg = false;
    return post(s, ITEM_WS_MSG, w, w->rx, w->rx_len) ? -1 : 0;
}

/* Sends what is queued, in order, while the socket takes it; closes when
 * asked and drained, or at once when too slow. */
static int on_ws_writeable(http_server *s, struct lws *wsi)
{
    conn *c = conn_of(wsi);
    http_ws *w = c ? c->ws : NULL;
    if (!w)
        return 0;
    for (int i = 0; i < WRITE_BATCH; i++) {
        pthread_mutex_lock(&s->mu);
        bool kill = w->close_now, close = w->close_req;
        out_msg *m = kill ? NULL : w->head;
        if (m) {
            w->head = m->next;
            if (!w->head)
                w->tail = NULL;
            w->out_bytes -= m->len;
        }
        pthread_mutex_unlock(&s->mu);
        if (kill)
            return -1;
        if (!m) {
            if (!close)
                return 0;
            lws_close_reason(wsi, (enum lws_close_status)w->close_code,
                             (unsigned char *)w->close_reason, strlen(w->close_reason));
            return -1;
        }
        int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
        free(m);
        if (n < 0)
            return -1;
        if (lws_send_pipe_choked(wsi))
            break;
    }
    lws_callback_on_writable(wsi);
    return 0;
}

/* The connection of c's socket ended (or never upgraded). An accepted
 * socket goes to the loop for on_ws_close; one still waiting for its
 * verdict only happens when the server stops (the free takes it). */
static void conn_ws_gone(http_server *s, conn *c)
{
    http_ws *w = c->ws;
    if (!w)
        return;
    c->ws = NULL;
    pthread_mutex_lock(&s->mu);
    w->gone = true;
    w->wsi = NULL;
    lws_dll2_remove(&w->kick);
    for (out_msg *m = w->head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    w->head = w->tail = NULL;
    w->out_bytes = 0;
    bool accepted = w->v == V_ACCEPTED;
    pthread_mutex_unlock(&s->mu);
    if (accepted)
        post(s, ITEM_WS_CLOSED, w, NULL, 0); /* on no memory the free still frees w */
}

/* ---- service thread: connections and the listener ---------------------------- */

static void conn_end(http_server *s, struct lws *wsi)
{
    conn *c = conn_of(wsi);
    if (!c)
        return;
    conn_req_gone(s, c);
    conn_ws_gone(s, c);
    lws_set_opaque_user_data(wsi, NULL);
    s->nconns--;
    free(c);
}

static void peer_name(const struct sockaddr_storage *a, char *out, size_t len)
{
    if (getnameinfo((const struct sockaddr *)a, sizeof *a, out, (socklen_t)len, NULL, 0,
                    NI_NUMERICHOST) != 0)
        snprintf(out, len, "?");
}

/* Accepts every pending connection into the vhost; past max_conns it is
 * still accepted, to be told 503 on its first request. */
static int listener_accept(http_server *s, int lfd)
{
    for (;;) {
        struct sockaddr_storage a;
        socklen_t alen = sizeof a;
        int fd = accept4(lfd, (struct sockaddr *)&a, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                LOG_W(MOD, "msg=\"accept failed\" why=\"%s\"", strerror(errno));
            return 0;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        peer_name(&a, c->peer, sizeof c->peer);
        c->over_limit = s->nconns >= s->cfg.max_conns;
        struct lws *wsi = lws_adopt_socket_vhost(s->vh, fd); /* closes fd on failure */
        if (!wsi) {
            free(c);
            continue;
        }
        lws_set_opaque_user_data(wsi, c);
        s->nconns++;
    }
}

/* The one protocol callback: one small handler per reason. */
static int lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    (void)user;
    http_server *s = lws_context_user(lws_get_context(wsi));
    if (!s)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        return wsi == s->listen_wsi ? listener_accept(s, lws_get_socket_fd(wsi)) : 0;
    case LWS_CALLBACK_HTTP:
        return on_http(s, wsi, in);
    case LWS_CALLBACK_HTTP_BODY:
        return on_body(s, conn_of(wsi), in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return on_body_done(s, conn_of(wsi), wsi);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_http_writeable(s, wsi);
    case LWS_CALLBACK_CLOSED_HTTP:
        if (conn_of(wsi))
            conn_req_gone(s, conn_of(wsi));
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return on_confirm_upgrade(s, wsi, in ? in : "");
    case LWS_CALLBACK_ESTABLISHED:
        return on_ws_established(s, wsi);
    case LWS_CALLBACK_RECEIVE:
        return on_ws_receive(s, wsi, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return on_ws_writeable(s, wsi);
    case LWS_CALLBACK_CLOSED:
        if (conn_of(wsi))
            conn_ws_gone(s, conn_of(wsi));
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (wsi == s->listen_wsi)
            s->listen_wsi = NULL;
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        conn_end(s, wsi);
        return 0;
    default:
        return 0;
    }
}

/* True when the client has closed its side. lws notices an EOF only when it
 * reads, and it does not read a connection whose request awaits its answer;
 * a peek does. Plain TCP only: over TLS the close alert is data. */
static bool peer_gone(struct lws *wsi)
{
    char c;
    return recv(lws_get_socket_fd(wsi), &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Closes the connections whose clients left while the owner holds their
 * request, so it turns ORPHAN and http_reply sends nothing. Under mu. */
static void sweep_gone(http_server *s)
{
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&s->reqs))
    {
        http_req *r = lws_container_of(d, http_req, all);
        if (r->state == REQ_OWNER && r->wsi && peer_gone(r->wsi))
            lws_set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    lws_end_foreach_dll(d);
}

/* What the loop asked for since the last turn: answers to write (unless
 * their client left meanwhile), sockets to write, close or resume. */
static void drain_kicks(http_server *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->ready.head) {
        http_req *r = lws_container_of(s->ready.head, http_req, ready);
        lws_dll2_remove(&r->ready);
        if (r->wsi && peer_gone(r->wsi)) {
            s->late_orphans++;
            lws_set_timeout(r->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        } else if (r->wsi) {
            lws_callback_on_writable(r->wsi);
        }
    }
    while (s->kicks.head) {
        http_ws *w = lws_container_of(s->kicks.head, http_ws, kick);
        lws_dll2_remove(&w->kick);
        if (!w->wsi)
            continue; /* not upgraded yet: ESTABLISHED looks at the queue */
        if (w->close_now) {
            lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        if (w->resume_req) {
            w->resume_req = w->rx_paused = false;
            lws_rx_flow_control(w->wsi, 1);
        }
        if (w->close_req)
            lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_WAIT_S);
        if (w->head || w->close_req)
            lws_callback_on_writable(w->wsi);
    }
    pthread_mutex_unlock(&s->mu);
}

/* The service thread's housekeeping, every SWEEP_MS on an lws timer. */
static void on_sweep(lws_sorted_usec_list_t *sul)
{
    http_server *s = lws_container_of(sul, http_server, sul_sweep);
    pthread_mutex_lock(&s->mu);
    sweep_gone(s);
    pthread_mutex_unlock(&s->mu);
    if (s->cfg.rate_per_s >= 0 && clock_mono_ms() >= s->next_prune_ms) {
        rate_prune(s);
        s->next_prune_ms = clock_mono_ms() + RATE_PRUNE_MS;
    }
    lws_sul_schedule(s->ctx, 0, &s->sul_sweep, on_sweep, SWEEP_MS * LWS_US_PER_MS);
}

static void *service_main(void *arg)
{
    http_server *s = arg;
    lws_sul_schedule(s->ctx, 0, &s->sul_sweep, on_sweep, SWEEP_MS * LWS_US_PER_MS);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        drain_kicks(s);
        lws_service(s->ctx, 0);
    }
    lws_sul_cancel(&s->sul_sweep);
    return NULL;
}

/* ---- loop thread ----------------------------------------------------------- */

/* Puts w on the kick list; true when the service thread must be woken. */
static bool kick_locked(http_server *s, http_ws *w)
{
    bool was_empty = !s->kicks.head;
    if (!lws_dll2_is_detached(&w->kick))
        return false;
    lws_dll2_add_tail(&w->kick, &s->kicks);
    return was_empty;
}

static void deliver_request(http_server *s, http_req *r)
{
    pthread_mutex_lock(&s->mu);
    bool orphan = r->state == REQ_ORPHAN;
    if (orphan)
        lws_dll2_remove(&r->all);
    pthread_mutex_unlock(&s->mu);
    if (orphan) { /* the client left before the owner saw it */
        s->stats.orphaned++;
        req_free(r);
        return;
    }
    s->stats.requests++;
    s->cfg.on_request(s, r, s->cfg.ud);
}

static void deliver_ws_open(http_server *s, http_ws *w)
{
    pthread_mutex_lock(&s->mu);
    bool abandoned = w->v == V_ABANDONED;
    if (abandoned)
        lws_dll2_remove(&w->all);
    else
        w->v = V_DECIDING;
    pthread_mutex_unlock(&s->mu);
    if (abandoned) { /* counted as refused by the service thread */
        ws_free(w);
        return;
    }
    int status = 401;
    bool ok = false;
    if (s->cfg.on_ws_open)
        ok = s->cfg.on_ws_open(s, w, w->upgrade, &status, s->cfg.ud);
    else
        status = 404;
    if (status < 400 || status > 599)
        status = 403;
    req_free(w->upgrade);
    w->upgrade = NULL;
    if (ok)
        s->stats.ws_opened++;
    else
        s->stats.ws_refused++;
    pthread_mutex_lock(&s->mu);
    w->v = ok ? V_ACCEPTED : V_REFUSED;
    w->refuse_status = status;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu); /* refused: w is the service thread's from here */
}

static void deliver_ws_msg(http_server *s, http_ws *w, const item *it)
{
    pthread_mutex_lock(&s->mu);
    w->in_bytes -= it->len;
    bool wake = false;
    if (w->rx_paused && !w->resume_req && w->in_bytes < s->cfg.ws_max_queued / 2) {
        w->resume_req = true;
        wake = kick_locked(s, w);
    }
    pthread_mutex_unlock(&s->mu);
    if (wake)
        lws_cancel_service(s->ctx);
    s->stats.ws_messages_in++;
    if (s->cfg.on_ws_message)
        s->cfg.on_ws_message(s, w, it->data, it->len, s->cfg.ud);
}

static void deliver_ws_closed(http_server *s, http_ws *w)
{
    if (s->cfg.on_ws_close)
        s->cfg.on_ws_close(s, w, s->cfg.ud);
    pthread_mutex_lock(&s->mu);
    lws_dll2_remove(&w->all);
    pthread_mutex_unlock(&s->mu);
    ws_free(w);
}

static void handle_item(http_server *s, item *it)
{
    s->in_callback++;
    switch (it->kind) {
    case ITEM_REQUEST:
        deliver_request(s, it->obj);
        break;
    case ITEM_WS_OPEN:
        deliver_ws_open(s, it->obj);
        break;
    case ITEM_WS_MSG:
        deliver_ws_msg(s, it->obj, it);
        break;
    case ITEM_WS_CLOSED:
        deliver_ws_closed(s, it->obj);
        break;
    }
    s->in_callback--;
}

static item *pop(http_server *s)
{
    pthread_mutex_lock(&s->mu);
    item *it = s->head;
    if (it) {
        s->head = it->next;
        if (!s->head)
            s->tail = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    return it;
}

static void server_destroy(http_server *s);

/* The eventfd fired: deliver up to DRAIN_BATCH items, then yield to the loop
 * and come back if more are waiting. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    http_server *s = arg;
    uint64_t n;
    ssize_t rd = read(fd, &n, sizeof n);
    (void)rd;
    int done = 0;
    while (!s->free_pending && done < DRAIN_BATCH) {
        item *it = pop(s);
        if (!it)
            break;
        handle_item(s, it);
        free(it);
        done++;
    }
    if (s->free_pending) {
        server_destroy(s);
        return;
    }
    if (done == DRAIN_BATCH)
        event_active(s->wake_ev, EV_READ, 0);
}

/* ---- public: requests --------------------------------------------------------- */

const char *http_req_method(const http_req *r)
{
    return r->method;
}

const char *http_req_path(const http_req *r)
{
    return r->path;
}

const char *http_req_query(const http_req *r)
{
    return r->query ? r->query : "";
}

const char *http_req_param(const http_req *r, const char *name)
{
    return pairs_find(r->params, r->nparams, name, false);
}

const char *http_req_header(const http_req *r, const char *name)
{
    return pairs_find(r->hdrs, r->nhdrs, name, true);
}

const char *http_req_body(const http_req *r, size_t *len)
{
    if (len)
        *len = r->body_len;
    return r->body ? r->body : "";
}

const char *http_req_peer(const http_req *r)
{
    return r->peer;
}

int http_reply_ex(http_req *r, int status, const char *content_type, const char *body,
                  size_t len, const char *const *extra_headers)
{
    if (!r)
        return ARIQ_EINVAL;
    http_server *s = r->s;
    bool bad = status < 100 || status > 599;
    int rc = bad ? ARIQ_EINVAL : 0;
    s->stats.replies++;
    pthread_mutex_lock(&s->mu);
    bool orphan = r->state == REQ_ORPHAN;
    if (orphan)
        lws_dll2_remove(&r->all);
    pthread_mutex_unlock(&s->mu);
    if (orphan) {
        s->stats.orphaned++;
        req_free(r);
        return ARIQ_ECLOSED;
    }
    if (bad)
        req_set_answer(r, 500, "application/json", "{\"error\":\"internal error\"}", 26,
                       NULL);
    else
        rc = req_set_answer(r, status, content_type, body, len, extra_headers);
    pthread_mutex_lock(&s->mu);
    /* the connection may have gone meanwhile: the answer is then the
     * service thread's to drop, as REPLIED */
    orphan = r->state == REQ_ORPHAN;
    bool wake = false;
    if (orphan) {
        lws_dll2_remove(&r->all);
    } else {
        r->state = REQ_REPLIED;
        wake = !s->ready.head;
        lws_dll2_add_tail(&r->ready, &s->ready);
    }
    pthread_mutex_unlock(&s->mu);
    if (orphan) {
        s->stats.orphaned++;
        req_free(r);
        return ARIQ_ECLOSED;
    }
    if (wake)
        lws_cancel_service(s->ctx);
    return rc;
}

int http_reply(http_req *r, int status, const char *content_type, const char *body,
               size_t len)
{
    return http_reply_ex(r, status, content_type, body, len, NULL);
}

int http_reply_error(http_req *r, int status, const char *message)
{
    char *body = error_json(message);
    int rc = http_reply(r, status, "application/json", body, body ? strlen(body) : 0);
    free(body);
    return rc;
}

/* ---- public: WebSockets ------------------------------------------------------- */

int http_ws_send(http_ws *w, const char *text, size_t len)
{
    if (!w || (!text && len))
        return ARIQ_EINVAL;
    http_server *s = w->s;
    out_msg *m = malloc(sizeof *m + LWS_PRE + len);
    if (!m)
        return ARIQ_ENOMEM;
    m->next = NULL;
    m->len = len;
    if (len)
        memcpy(m->buf + LWS_PRE, text, len);
    int rc = 0;
    bool wake = false;
    pthread_mutex_lock(&s->mu);
    if (w->gone || w->closing) {
        rc = ARIQ_ECLOSED;
    } else if (w->out_bytes + len > s->cfg.ws_max_queued) {
        w->closing = w->close_now = true;
        wake = kick_locked(s, w);
        rc = ARIQ_EBUSY;
    } else {
        bool was_empty = !w->head;
        if (w->tail)
            w->tail->next = m;
        else
            w->head = m;
        w->tail = m;
        w->out_bytes += len;
        m = NULL;
        if (was_empty)
            wake = kick_locked(s, w);
    }
    pthread_mutex_unlock(&s->mu);
    free(m);
    if (rc == 0)
        s->stats.ws_messages_out++;
    if (rc == ARIQ_EBUSY) {
        s->stats.ws_slow_closed++;
        LOG_W(MOD, "peer=%s msg=\"WebSocket closed: client too slow\" queued_max=%zu",
              w->peer, s->cfg.ws_max_queued);
    }
    if (wake)
        lws_cancel_service(s->ctx);
    return rc;
}

void http_ws_close(http_ws *w, int code, const char *reason)
{
    if (!w)
        return;
    http_server *s = w->s;
    bool wake = false;
    pthread_mutex_lock(&s->mu);
    if (!w->gone && !w->closing) {
        w->closing = w->close_req = true;
        w->close_code = code >= 1000 && code <= 4999 ? code : 1000;
        snprintf(w->close_reason, sizeof w->close_reason, "%s", reason ? reason : "");
        wake = kick_locked(s, w);
    }
    pthread_mutex_unlock(&s->mu);
    if (wake)
        lws_cancel_service(s->ctx);
}

void *http_ws_data(const http_ws *w)
{
    return w ? w->data : NULL;
}

void http_ws_set_data(http_ws *w, void *p)
{
    if (w)
        w->data = p;
}

const char *http_ws_peer(const http_ws *w)
{
    return w->peer;
}

/* ---- construction and teardown ----------------------------------------------- */

static void lws_log_to_ariq(int level, const char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (level & LLL_ERR)
        LOG_E("lws", "%.*s", (int)n, line);
    else
        LOG_W("lws", "%.*s", (int)n, line);
}

static void lws_log_once(void)
{
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_to_ariq);
}

/* A non-blocking listening socket on bind:port (0: any; s->port gets the
 * one bound). */
static int listen_socket(http_server *s, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE,
                             .ai_socktype = SOCK_STREAM},
                    *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    if (getaddrinfo(s->bind, port, &hints, &ai) != 0 || !ai) {
        snprintf(err, errlen,
                 "bad bind address \"%s\": want a numeric IPv4 or IPv6 address", s->bind);
        return -1;
    }
    int one = 1,
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_storage a;
    socklen_t alen = sizeof a;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        snprintf(err, errlen, "listen on %s:%d: %s", s->bind, s->cfg.port,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    s->port = ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                            : ((struct sockaddr_in *)&a)->sin_port);
    return fd;
}

static int create_lws(http_server *s, char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, lws_log_once);
    bool tls = s->cert && s->key;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   (tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0);
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.user = s;
    info.gid = -1;
    info.uid = -1;
    info.server_string = "ariq";
    info.max_http_header_data =
        (unsigned short)(s->cfg.max_header > 65535 ? 65535 : s->cfg.max_header);
    info.max_http_header_pool =
        (unsigned short)(s->cfg.max_conns > 65535 ? 65535 : s->cfg.max_conns);
    info.pt_serv_buf_size = CHUNK;
    s->ctx = lws_create_context(&info);
    if (!s->ctx) {
        snprintf(err, errlen, "lws_create_context failed");
        return ARIQ_EIO;
    }
    struct lws_context_creation_info vi;
    memset(&vi, 0, sizeof vi);
    vi.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    vi.protocols = protocols;
    vi.vhost_name = "ariq";
    vi.keepalive_timeout = 15;
    vi.timeout_secs = 20;
    /* ADOPT_APPLY_LISTEN_ACCEPT_CONFIG also keeps lws from building a client
     * SSL_CTX on this server-only vhost (4.1.6 leaks that one at destroy) */
    vi.options = tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                           LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG
                     : 0;
    vi.ssl_cert_filepath = tls ? s->cert : NULL;
    vi.ssl_private_key_filepath = tls ? s->key : NULL;
    vi.alpn = "http/1.1"; /* no h2: one request per connection at a time */
    s->vh = lws_create_vhost(s->ctx, &vi);
    if (!s->vh) {
        snprintf(err, errlen,
                 tls ? "TLS setup failed: check cert_path \"%s\" and key_path (PEM)"
                     : "lws_create_vhost failed%s",
                 tls ? s->cert : "");
        return ARIQ_EIO;
    }
    return 0;
}

static int start_listening(http_server *s, char *err, size_t errlen)
{
    int fd = listen_socket(s, err, errlen);
    if (fd < 0)
        return ARIQ_EIO;
    lws_sock_file_fd_type u;
    u.filefd = fd;
    s->listen_wsi =
        lws_adopt_descriptor_vhost(s->vh, LWS_ADOPT_RAW_FILE_DESC, u, "ariq-http", NULL);
    if (!s->listen_wsi) {
        snprintf(err, errlen, "lws could not adopt the listening socket");
        close(fd);
        return ARIQ_EIO;
    }
    return 0;
}

static int copy_cfg(http_server *s, const http_server_cfg *cfg)
{
    http_server_cfg *c = &s->cfg;
    *c = *cfg;
    c->max_body = c->max_body ? c->max_body : HTTP_SERVER_MAX_BODY;
    c->max_header = c->max_header ? c->max_header : HTTP_SERVER_MAX_HEADER;
    c->max_conns = c->max_conns ? c->max_conns : HTTP_SERVER_MAX_CONNS;
    c->ws_max_queued = c->ws_max_queued ? c->ws_max_queued : HTTP_SERVER_WS_MAX_QUEUED;
    if (c->rate_per_s == 0)
        c->rate_per_s = HTTP_SERVER_RATE;
    if (!c->rate_burst)
        c->rate_burst = c->rate_per_s > 0 && c->rate_per_s * 2 > HTTP_SERVER_BURST
                            ? (unsigned)(c->rate_per_s * 2)
                            : HTTP_SERVER_BURST;
    s->bind = strdup(cfg->bind ? cfg->bind : "127.0.0.1");
    s->cert = cfg->cert_path && cfg->key_path ? strdup(cfg->cert_path) : NULL;
    s->key = cfg->cert_path && cfg->key_path ? strdup(cfg->key_path) : NULL;
    if (!s->bind || (cfg->cert_path && cfg->key_path && (!s->cert || !s->key)))
        return ARIQ_ENOMEM;
    c->bind = s->bind;
    c->cert_path = s->cert;
    c->key_path = s->key;
    for (size_t i = 0; cfg->custom_headers && cfg->custom_headers[i]; i++) {
        char **v = realloc(s->custom, (s->ncustom + 1) * sizeof *v);
        if (!v)
            return ARIQ_ENOMEM;
        s->custom = v;
        if (asprintf(&s->custom[s->ncustom], "%s:", cfg->custom_headers[i]) < 0)
            return ARIQ_ENOMEM;
        for (char *p = s->custom[s->ncustom]; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        s->ncustom++;
    }
    c->custom_headers = NULL;
    return 0;
}

static int check_cfg(const struct event_base *base, const http_server_cfg *c, char *err,
                     size_t errlen)
{
    const char *why = NULL;
    if (!base || !c)
        why = "no event_base or no cfg";
    else if (!c->on_request)
        why = "on_request is required";
    else if (c->port < 0 || c->port > 65535)
        why = "port: 0..65535";
    else if (!c->cert_path != !c->key_path)
        why = "TLS needs both cert_path and key_path";
    else if (c->cert_path && (access(c->cert_path, R_OK) || access(c->key_path, R_OK)))
        why = "TLS: cert_path or key_path is not readable";
    else if (c->max_body > 256u * 1024 * 1024)
        why = "max_body: at most 256 MiB";
    if (!why)
        return 0;
    snprintf(err, errlen, "%s", why);
    return ARIQ_EINVAL;
}

int http_server_new(struct event_base *base, const http_server_cfg *cfg,
                    http_server **out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    int rc = check_cfg(base, cfg, err, errlen);
    if (rc != 0)
        return rc;
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return ARIQ_ENOMEM;
    }
    s->base = base;
    s->efd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    rc = copy_cfg(s, cfg);
    if (rc == 0 && !(s->wbuf = malloc(LWS_PRE + CHUNK)))
        rc = ARIQ_ENOMEM;
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->wake_ev =
        s->efd >= 0 ? event_new(base, s->efd, EV_READ | EV_PERSIST, on_wake, s) : NULL;
    if (!s->wake_ev || event_add(s->wake_ev, NULL) != 0) {
        snprintf(err, errlen, "eventfd or event_new failed");
        rc = ARIQ_EIO;
        goto fail;
    }
    if ((rc = create_lws(s, err, errlen)) != 0 ||
        (rc = start_listening(s, err, errlen)) != 0)
        goto fail;
    if (pthread_create(&s->thread, NULL, service_main, s) != 0) {
        snprintf(err, errlen, "pthread_create failed");
        rc = ARIQ_EIO;
        goto fail;
    }
    s->thread_started = true;
    LOG_I(MOD, "msg=listening addr=%s port=%d tls=%d", s->bind, s->port, s->cert != NULL);
    *out = s;
    return 0;
fail:
    server_destroy(s);
    return rc;
}

/* Stops the thread, lets lws close every connection (its last callbacks run
 * here, with no other thread about), then frees what the owner still held
 * and what never reached it. */
static void server_destroy(http_server *s)
{
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        lws_cancel_service(s->ctx);
        pthread_join(s->thread, NULL);
    }
    s->stop = true;
    if (s->ctx)
        lws_context_destroy(s->ctx);
    for (item *it = s->head, *next; it; it = next) {
        next = it->next;
        free(it); /* its request or socket is on s->reqs or s->wss */
    }
    while (s->reqs.head) {
        http_req *r = lws_container_of(s->reqs.head, http_req, all);
        lws_dll2_remove(&r->ready);
        lws_dll2_remove(&r->all);
        req_free(r);
    }
    while (s->wss.head) {
        http_ws *w = lws_container_of(s->wss.head, http_ws, all);
        lws_dll2_remove(&w->all);
        ws_free(w);
    }
    rate_free(s);
    if (s->wake_ev)
        event_free(s->wake_ev);
    if (s->efd >= 0)
        close(s->efd);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    for (size_t i = 0; i < s->ncustom; i++)
        free(s->custom[i]);
    free(s->custom);
    free(s->wbuf);
    free(s->bind);
    free(s->cert);
    free(s->key);
    free(s);
}

void http_server_free(http_server *s)
{
    if (!s)
        return;
    if (s->in_callback > 0) {
        s->free_pending = true; /* on_wake frees it when the callback returns */
        return;
    }
    server_destroy(s);
}

int http_server_port(const http_server *s)
{
    return s ? s->port : -1;
}

void http_server_get_stats(const http_server *s, http_server_stats *out)
{
    *out = s->stats;
    pthread_mutex_lock((pthread_mutex_t *)&s->mu);
    out->too_large = s->too_large;
    out->rate_limited = s->rate_limited;
    out->over_conns = s->over_conns;
    out->ws_refused += s->ws_timeouts;
    out->orphaned += s->late_orphans;
    pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
}
