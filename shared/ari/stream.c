#include "ari/stream.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <libwebsockets.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MOD         "ari_stream"
#define DRAIN_BATCH 256 /* items per loop wakeup, so a flood cannot starve the loop */
#define RX_BUF_SIZE 65536
#define REASON_MAX  160
#define STABLE_MS   5000 /* up this long before the backoff starts over */

/* What the service thread hands the loop, in arrival order. */
typedef enum {
    ITEM_MESSAGE,  /* data: one whole WebSocket message */
    ITEM_OVERSIZE, /* a message over ARI_EVENT_MAX_MSG was skipped */
    ITEM_UP,       /* the WebSocket is established */
    ITEM_DOWN,     /* an attempt failed or the connection ended; data: reason */
} item_kind;

typedef struct item {
    struct item *next;
    item_kind kind;
    size_t len;
    char data[]; /* NUL-terminated after len bytes */
} item;

struct ari_stream {
    /* fixed at creation */
    struct event_base *base;
    ari_stream_cfg cfg; /* string members point at the copies below */
    char *host, *app, *user, *password;
    char *prefix;   /* "" or "/asterisk": http.conf's prefix, from cfg.url */
    char *path;     /* /ari/events?app=...[&api_key=...]: holds the password */
    char *log_path; /* the same without credentials, for logs */
    char *auth;     /* "Basic ..." or NULL */
    struct lws_context *ctx;
    lws_retry_bo_t idle_policy; /* PING / hangup of an idle connection */
    int efd;                    /* eventfd: the service thread wakes the loop */

    /* service thread only */
    pthread_t thread;
    bool thread_started;
    struct lws *wsi;
    bool attempt_active; /* an attempt is under way and not yet reported down */
    bool established;
    char *rx;
    size_t rx_len;
    bool rx_in_msg, rx_skip;
    char down_reason[REASON_MAX];

    /* shared, under mu */
    pthread_mutex_t mu;
    item *head, *tail;
    size_t queued_bytes;
    bool stop;        /* the service thread must exit */
    bool connect_req; /* the loop asks for a connection attempt */
    bool resume_req;  /* the loop drained the queue: read the socket again */
    bool paused;      /* rx flow is off because the queue is full */
    uint64_t rx_pauses, queue_peak;

    /* loop thread only */
    struct event *wake_ev, *retry_ev;
    unsigned backoff_ms;
    uint64_t rng;
    bool connected, ever_connected;
    uint64_t up_since; /* mono ms of the last connect */
    int in_callback;
    bool free_pending;
    bool held; /* ari_stream_hold: items wait in the queue */
    ari_stream_stats stats;
};

/* ---- service thread -------------------------------------------------------- */

/* Appends an item and wakes the loop when the queue was empty. Stops reading
 * the socket when the loop is too far behind (resumed by the loop). */
static void post(ari_stream *s, item_kind kind, const char *data, size_t len)
{
    item *it = malloc(sizeof *it + len + 1);
    if (!it) {
        LOG_E(MOD, "msg=\"out of memory, message dropped\" bytes=%zu", len);
        return;
    }
    it->next = NULL;
    it->kind = kind;
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
    s->queued_bytes += len;
    if (s->queued_bytes > s->queue_peak)
        s->queue_peak = s->queued_bytes;
    if (s->queued_bytes > s->cfg.max_queued_bytes && !s->paused && s->wsi) {
        lws_rx_flow_control(s->wsi, 0);
        s->paused = true;
        s->rx_pauses++;
    }
    pthread_mutex_unlock(&s->mu);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t w = write(s->efd, &one, sizeof one);
        (void)w; /* EAGAIN only when the counter is huge: the loop is awake anyway */
    }
}

/* Reports the end of the current attempt exactly once, whichever of lws's
 * callbacks (connection error, closed, wsi destroyed) gets there first. */
static void report_down(ari_stream *s, const char *reason)
{
    if (!s->attempt_active)
        return;
    s->attempt_active = false;
    s->established = false;
    s->wsi = NULL;
    post(s, ITEM_DOWN, reason, strlen(reason));
}

/* Collects one received chunk; a message may arrive in several fragments
 * and each fragment in several chunks. Over ARI_EVENT_MAX_MSG the rest of the
 * message is skipped and the loop is told. */
static void rx_chunk(ari_stream *s, struct lws *wsi, const void *in, size_t len)
{
    if (!s->rx_in_msg) {
        s->rx_in_msg = true;
        s->rx_skip = false;
        s->rx_len = 0;
    }
    if (!s->rx_skip && s->rx_len + len > ARI_EVENT_MAX_MSG)
        s->rx_skip = true;
    if (!s->rx_skip) {
        memcpy(s->rx + s->rx_len, in, len);
        s->rx_len += len;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) != 0)
        return;
    if (s->rx_skip)
        post(s, ITEM_OVERSIZE, NULL, 0);
    else
        post(s, ITEM_MESSAGE, s->rx, s->rx_len);
    s->rx_in_msg = false;
}

/* Why a connection attempt failed, in words an operator can act on. */
static void conn_error_reason(ari_stream *s, struct lws *wsi, const void *in, size_t len)
{
    char lws_why[96] = "connection failed";
    if (in && len) {
        size_t n = len < sizeof lws_why - 1 ? len : sizeof lws_why - 1;
        memcpy(lws_why, in, n);
        lws_why[n] = '\0';
    }
    unsigned status = wsi ? lws_http_client_http_response(wsi) : 0;
    if (strstr(lws_why, "unauthorized") || status == 401) {
        snprintf(s->down_reason, sizeof s->down_reason,
                 "HTTP 401 unauthorized: check the ARI user \"%s\" and its password",
                 s->user);
    } else if (status >= 200) {
        snprintf(s->down_reason, sizeof s->down_reason, "HTTP %u on upgrade (%s)", status,
                 lws_why);
    } else {
        snprintf(s->down_reason, sizeof s->down_reason, "%s", lws_why);
    }
}

static int append_auth(ari_stream *s, struct lws *wsi, void *in, size_t len)
{
    unsigned char **p = (unsigned char **)in, *end = *p + len;
    if (!s->auth)
        return 0;
    return lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                        (const unsigned char *)s->auth,
                                        (int)strlen(s->auth), p, end)
               ? -1
               : 0;
}

/* The one lws callback. Runs on the service thread only (and, after the
 * thread has been joined, inside lws_context_destroy). A context holds at
 * most one client connection, so every client callback is about it. */
static int lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    (void)user;
    ari_stream *s = lws_context_user(lws_get_context(wsi));
    if (!s)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return append_auth(s, wsi, in, len);
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        pthread_mutex_lock(&s->mu);
        s->wsi = wsi;
        s->paused = false; /* flow control belonged to the previous connection */
        pthread_mutex_unlock(&s->mu);
        s->established = true;
        s->rx_in_msg = false;
        post(s, ITEM_UP, NULL, 0);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        rx_chunk(s, wsi, in, len);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        conn_error_reason(s, wsi, in, len);
        report_down(s, s->down_reason);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        report_down(s, "closed by peer");
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        /* one client wsi per context: any destroy during an attempt is its end */
        report_down(s, s->established ? "connection lost" : s->down_reason);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"ariq-ari-events", lws_cb, 0, RX_BUF_SIZE, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Starts one connection attempt. A NULL from lws without a callback is
 * reported here, so every attempt ends in exactly one ITEM_UP/ITEM_DOWN. */
static void start_connect(ari_stream *s)
{
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = s->ctx;
    ci.address = s->host;
    ci.port = s->cfg.port;
    ci.path = s->path;
    ci.host = s->host;
    ci.origin = s->host;
    ci.local_protocol_name = protocols[0].name;
    /* no pwsi: lws clears it before the close callbacks; s->wsi is set on
     * ESTABLISHED and cleared by report_down() */
    ci.ssl_connection = 0;
    ci.retry_and_idle_policy = &s->idle_policy;
    s->attempt_active = true;
    s->established = false;
    snprintf(s->down_reason, sizeof s->down_reason, "connection failed");
    if (!lws_client_connect_via_info(&ci))
        report_down(s, s->down_reason);
}

/* The service thread: lws_service until told to stop; between rounds, act on
 * what the loop asked for (lws_cancel_service wakes it). */
static void *service_main(void *arg)
{
    ari_stream *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stop = s->stop, connect = s->connect_req, resume = s->resume_req;
        s->connect_req = s->resume_req = false;
        if (resume && s->paused) {
            s->paused = false;
            if (s->wsi)
                lws_rx_flow_control(s->wsi, 1);
        }
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        if (connect && !s->attempt_active)
            start_connect(s);
        lws_service(s->ctx, 0);
    }
    return NULL;
}

/* ---- loop thread ----------------------------------------------------------- */

static uint64_t next_rand(ari_stream *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

/* Backoff: the current delay ±20 %, then double it up to the cap. The
 * delay goes back to the minimum after a connection that stayed up for
 * STABLE_MS (handle_down). */
static void schedule_retry(ari_stream *s)
{
    unsigned base = s->backoff_ms;
    unsigned span = base * 2 / 5; /* 40 % wide window around base */
    unsigned delay = base - base / 5 + (span ? (unsigned)(next_rand(s) % (span + 1)) : 0);
    s->backoff_ms = base * 2 > s->cfg.backoff_max_ms ? s->cfg.backoff_max_ms : base * 2;
    struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
    evtimer_add(s->retry_ev, &tv);
    LOG_D(MOD, "url=%s retry_in_ms=%u", s->log_path, delay);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ari_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    s->connect_req = true;
    pthread_mutex_unlock(&s->mu);
    lws_cancel_service(s->ctx);
}

static void handle_up(ari_stream *s)
{
    s->connected = true;
    s->stats.connects++;
    if (s->ever_connected)
        s->stats.reconnects++;
    s->ever_connected = true;
    s->up_since = clock_mono_ms();
    LOG_I(MOD, "url=ws://%s:%d%s msg=connected", s->host, s->cfg.port, s->log_path);
    if (s->cfg.on_connected)
        s->cfg.on_connected(s, s->cfg.ud);
}

static void handle_down(ari_stream *s, const char *reason)
{
    bool was = s->connected;
    s->connected = false;
    s->stats.failures++;
    /* Start over only after a connection that held: a server that accepts
     * and drops at once must not be hammered every 100 ms. */
    if (was && clock_mono_ms() - s->up_since >= STABLE_MS)
        s->backoff_ms = s->cfg.backoff_min_ms;
    if (strstr(reason, "401"))
        LOG_E(MOD, "url=ws://%s:%d%s msg=\"%s\"", s->host, s->cfg.port, s->log_path,
              reason);
    else
        LOG_W(MOD, "url=ws://%s:%d%s msg=\"%s\" was_connected=%d", s->host, s->cfg.port,
              s->log_path, reason, was);
    schedule_retry(s);
    if (s->cfg.on_disconnected)
        s->cfg.on_disconnected(s, reason, s->cfg.ud);
}

static void handle_message(ari_stream *s, const item *it)
{
    ari_event *ev = NULL;
    char err[256];
    s->stats.messages++;
    if (ari_event_parse(it->data, it->len, &ev, err, sizeof err) != 0) {
        s->stats.parse_errors++;
        LOG_W(MOD, "msg=\"malformed event dropped\" bytes=%zu why=\"%s\"", it->len, err);
        return;
    }
    if (ev->type == ARI_EV_UNKNOWN) {
        s->stats.unknown++;
        if (!s->cfg.deliver_unknown) {
            ari_event_free(ev);
            return;
        }
    } else {
        s->stats.events++;
    }
    if (ev->type == ARI_EV_APPLICATION_REPLACED)
        LOG_W(MOD, "app=%s msg=\"another client took over the application\"", s->app);
    s->cfg.on_event(s, ev, s->cfg.ud);
    ari_event_free(ev);
}

/* One item, with the owner's callback (if any) counted as in progress so
 * that ari_stream_free() from inside it only marks the stream. */
static void handle_item(ari_stream *s, const item *it)
{
    s->in_callback++;
    switch (it->kind) {
    case ITEM_MESSAGE:
        handle_message(s, it);
        break;
    case ITEM_OVERSIZE:
        s->stats.messages++;
        s->stats.parse_errors++;
        LOG_W(MOD, "msg=\"event over %d bytes dropped\"", ARI_EVENT_MAX_MSG);
        break;
    case ITEM_UP:
        handle_up(s);
        break;
    case ITEM_DOWN:
        handle_down(s, it->data);
        break;
    }
    s->in_callback--;
}

static item *pop(ari_stream *s, bool *resume)
{
    pthread_mutex_lock(&s->mu);
    item *it = s->head;
    if (it) {
        s->head = it->next;
        if (!s->head)
            s->tail = NULL;
        s->queued_bytes -= it->len;
    }
    *resume =
        s->paused && !s->resume_req && s->queued_bytes < s->cfg.max_queued_bytes / 2;
    if (*resume)
        s->resume_req = true;
    pthread_mutex_unlock(&s->mu);
    return it;
}

static void stream_destroy(ari_stream *s);

/* The eventfd fired: deliver up to DRAIN_BATCH items, then yield to the loop
 * and come back if more are waiting. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    ari_stream *s = arg;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof n);
    (void)r;
    int done = 0;
    bool resume = false, more = false;
    while (!s->free_pending && !s->held) {
        if (done == DRAIN_BATCH) {
            more = true;
            break;
        }
        item *it = pop(s, &resume);
        if (resume)
            lws_cancel_service(s->ctx);
        if (!it)
            break;
        handle_item(s, it);
        free(it);
        done++;
    }
    if (s->free_pending) {
        stream_destroy(s);
        return;
    }
    if (more)
        event_active(s->wake_ev, EV_READ, 0);
}

/* ---- construction and teardown --------------------------------------------- */

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

/* "user:pass" percent-escaped per part, or NULL on no memory. */
static char *escaped(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *copy = e ? strdup(e) : NULL;
    curl_free(e);
    return copy;
}

static int build_paths(ari_stream *s)
{
    char *app = escaped(s->app), *user = escaped(s->user), *pass = escaped(s->password);
    const char *all = s->cfg.subscribe_all ? "&subscribeAll=true" : "";
    int rc = ARIQ_ENOMEM;
    if (!app || !user || !pass)
        goto fail;
    if (asprintf(&s->log_path, "%s/ari/events?app=%s%s", s->prefix, app, all) < 0) {
        s->log_path = NULL;
        goto fail;
    }
    int n = s->cfg.basic_auth
                ? asprintf(&s->path, "%s", s->log_path)
                : asprintf(&s->path, "%s&api_key=%s:%s", s->log_path, user, pass);
    if (n < 0) {
        s->path = NULL;
        goto fail;
    }
    rc = 0;
fail:
    free(app);
    free(user);
    if (pass)
        explicit_bzero(pass, strlen(pass));
    free(pass);
    return rc;
}

/* "Basic base64(user:password)" for cfg.basic_auth. */
static int build_auth(ari_stream *s)
{
    if (!s->cfg.basic_auth)
        return 0;
    char plain[512], b64[700];
    int n = snprintf(plain, sizeof plain, "%s:%s", s->user, s->password);
    if (n < 0 || (size_t)n >= sizeof plain)
        return ARIQ_EINVAL;
    int m = lws_b64_encode_string(plain, n, b64, sizeof b64);
    explicit_bzero(plain, sizeof plain);
    if (m < 0 || asprintf(&s->auth, "Basic %s", b64) < 0) {
        s->auth = NULL;
        return ARIQ_ENOMEM;
    }
    explicit_bzero(b64, sizeof b64);
    return 0;
}

/* Fills the 0-means-default numbers and clamps them to what the timers and
 * lws's 16-bit idle policy can hold. */
static void apply_defaults(ari_stream *s)
{
    ari_stream_cfg *c = &s->cfg;
    c->backoff_min_ms = c->backoff_min_ms ? c->backoff_min_ms : 100;
    c->backoff_max_ms = c->backoff_max_ms ? c->backoff_max_ms : 5000;
    if (c->backoff_max_ms > 3600000) /* an hour; keeps the doubling in range */
        c->backoff_max_ms = 3600000;
    if (c->backoff_min_ms > c->backoff_max_ms)
        c->backoff_min_ms = c->backoff_max_ms;
    s->backoff_ms = c->backoff_min_ms;
    if (!c->max_queued_bytes)
        c->max_queued_bytes = ARI_STREAM_MAX_QUEUED;
    unsigned ping = c->ping_interval_s ? c->ping_interval_s : 20;
    ping = ping > 30000 ? 30000 : ping;
    s->idle_policy.secs_since_valid_ping = (uint16_t)ping;
    s->idle_policy.secs_since_valid_hangup = (uint16_t)(ping * 2);
}

/* "[::1]" -> "::1": lws wants the bare address. */
static char *bare_host(const char *h)
{
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']')
        return strndup(h + 1, n - 2);
    return strdup(h);
}

/* Splits the curl-parsed URL into host, port and path prefix. */
static int url_parts(ari_stream *s, CURLU *u)
{
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    int rc = ARIQ_EINVAL;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        goto fail;
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "ws") != 0)
        goto fail; /* https / wss: no TLS here */
    CURLUcode pc = curl_url_get(u, CURLUPART_PORT, &port, 0);
    s->cfg.port = pc == CURLUE_OK ? atoi(port) : 80;
    size_t plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    s->host = bare_host(host);
    s->prefix = strndup(path, plen);
    rc = (s->host && s->prefix) ? 0 : ARIQ_ENOMEM;
    if (rc == 0 && (s->cfg.port <= 0 || s->cfg.port > 65535 || !*s->host))
        rc = ARIQ_EINVAL;
fail:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    return rc;
}

/* Host, port and prefix from cfg.url, else from cfg.host / cfg.port. */
static int resolve_where(ari_stream *s, const ari_stream_cfg *cfg)
{
    if (!cfg->url) {
        s->host = strdup(cfg->host);
        s->prefix = strdup("");
        return (s->host && s->prefix) ? 0 : ARIQ_ENOMEM;
    }
    CURLU *u = curl_url();
    if (!u)
        return ARIQ_ENOMEM;
    int rc =
        curl_url_set(u, CURLUPART_URL, cfg->url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK
            ? url_parts(s, u)
            : ARIQ_EINVAL;
    curl_url_cleanup(u);
    if (rc == ARIQ_EINVAL)
        LOG_E(MOD, "msg=\"bad ARI url: want http://HOST[:PORT][/PREFIX] (no TLS)\"");
    return rc;
}

static int copy_cfg(ari_stream *s, const ari_stream_cfg *cfg)
{
    s->cfg = *cfg;
    apply_defaults(s);
    int rc = resolve_where(s, cfg);
    if (rc != 0)
        return rc;
    s->app = strdup(cfg->app);
    s->user = strdup(cfg->user ? cfg->user : "");
    s->password = strdup(cfg->password ? cfg->password : "");
    if (!s->app || !s->user || !s->password)
        return ARIQ_ENOMEM;
    s->cfg.url = NULL;
    s->cfg.host = s->host;
    s->cfg.app = s->app;
    s->cfg.user = s->user;
    s->cfg.password = s->password;
    rc = build_paths(s);
    return rc ? rc : build_auth(s);
}

static int create_lws(ari_stream *s)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, lws_log_once);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = s;
    info.gid = -1;
    info.uid = -1;
    info.options = 0;
    s->ctx = lws_create_context(&info);
    return s->ctx ? 0 : ARIQ_EIO;
}

static int create_loop_side(ari_stream *s)
{
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd < 0)
        return ARIQ_EIO;
    s->wake_ev = event_new(s->base, s->efd, EV_READ | EV_PERSIST, on_wake, s);
    s->retry_ev = evtimer_new(s->base, on_retry, s);
    if (!s->wake_ev || !s->retry_ev || event_add(s->wake_ev, NULL) != 0)
        return ARIQ_ENOMEM;
    return 0;
}

static bool cfg_ok(const struct event_base *base, const ari_stream_cfg *c)
{
    bool where =
        (c && c->url) || (c && c->host && *c->host && c->port > 0 && c->port <= 65535);
    return base && where && c->app && *c->app && c->on_event && strlen(c->app) <= 256 &&
           (!c->user || strlen(c->user) <= 128) &&
           (!c->password || strlen(c->password) <= 256);
}

int ari_stream_new(struct event_base *base, const ari_stream_cfg *cfg, ari_stream **out)
{
    if (!cfg_ok(base, cfg))
        return ARIQ_EINVAL;
    ari_stream *s = calloc(1, sizeof *s);
    if (!s)
        return ARIQ_ENOMEM;
    s->efd = -1;
    s->base = base;
    s->rng = clock_mono_us() ^ (uint64_t)(uintptr_t)s ^ 0x9e3779b97f4a7c15ULL;
    pthread_mutex_init(&s->mu, NULL);
    int rc = copy_cfg(s, cfg);
    if (rc == 0 && !(s->rx = malloc(ARI_EVENT_MAX_MSG)))
        rc = ARIQ_ENOMEM;
    if (rc == 0)
        rc = create_loop_side(s);
    if (rc == 0)
        rc = create_lws(s);
    if (rc != 0)
        goto fail;
    s->connect_req = true;
    if (pthread_create(&s->thread, NULL, service_main, s) != 0) {
        rc = ARIQ_EIO;
        goto fail;
    }
    s->thread_started = true;
    LOG_I(MOD, "url=ws://%s:%d%s msg=connecting", s->host, s->cfg.port, s->log_path);
    *out = s;
    return 0;
fail:
    stream_destroy(s);
    return rc;
}

/* Stops the thread and frees everything. The lws context is destroyed after
 * the join, so its last callbacks run here with no other thread about. */
static void stream_destroy(ari_stream *s)
{
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_mutex_unlock(&s->mu);
        lws_cancel_service(s->ctx);
        pthread_join(s->thread, NULL);
    }
    if (s->ctx) {
        lws_context_destroy(s->ctx);
        s->ctx = NULL;
    }
    for (item *it = s->head, *next; it; it = next) {
        next = it->next;
        free(it);
    }
    if (s->wake_ev)
        event_free(s->wake_ev);
    if (s->retry_ev)
        event_free(s->retry_ev);
    if (s->efd >= 0)
        close(s->efd);
    pthread_mutex_destroy(&s->mu);
    if (s->path)
        explicit_bzero(s->path, strlen(s->path));
    if (s->password)
        explicit_bzero(s->password, strlen(s->password));
    if (s->auth)
        explicit_bzero(s->auth, strlen(s->auth));
    free(s->path);
    free(s->log_path);
    free(s->auth);
    free(s->rx);
    free(s->host);
    free(s->prefix);
    free(s->app);
    free(s->user);
    free(s->password);
    free(s);
}

void ari_stream_free(ari_stream *s)
{
    if (!s)
        return;
    if (s->in_callback > 0) {
        s->free_pending = true; /* on_wake frees it when the callback returns */
        return;
    }
    stream_destroy(s);
}

void ari_stream_hold(ari_stream *s, bool hold)
{
    if (!s || s->held == hold)
        return;
    s->held = hold;
    if (!hold) /* deliver what waited, from the loop, not from inside this call */
        event_active(s->wake_ev, EV_READ, 0);
}

bool ari_stream_is_connected(const ari_stream *s)
{
    return s && s->connected;
}

void ari_stream_get_stats(const ari_stream *s, ari_stream_stats *out)
{
    *out = s->stats;
    pthread_mutex_lock((pthread_mutex_t *)&s->mu);
    out->rx_pauses = s->rx_pauses;
    out->queue_peak_bytes = s->queue_peak;
    pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
}
