/* ws_client.c - see ws_client.h. All lws calls run on the client thread;
 * other threads only set flags under the mutex and lws_cancel_service(). */
#include "ws_client.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RX_MAX 262144

typedef struct out {
    struct out *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE + len */
} out;

typedef struct wsc_conn {
    struct wsc *c;
    int idx;
    struct lws *wsi;
    wsc_state state;
    int port;
    char path[256];
    char auth[256];
    bool paused;
    bool want_connect, want_close;
    int http_status;
    size_t received, order_errors;
    long next;
    char *rx;
    size_t rx_len;
    char last[128];
    char **msgs; /* wsc_keep_messages: every message, msgs[0..received) */
    size_t msgs_cap;
    out *head, *tail;
} wsc_conn;

struct wsc {
    struct lws_context *ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    bool stop, tls, keep;
    int n;
    wsc_conn conns[WSC_MAX];
};

static void on_message(wsc_conn *k)
{
    if (k->c->keep) {
        if (k->received == k->msgs_cap) {
            size_t cap = k->msgs_cap ? 2 * k->msgs_cap : 64;
            char **m = realloc(k->msgs, cap * sizeof *m);
            if (m)
                k->msgs = m, k->msgs_cap = cap;
        }
        if (k->received < k->msgs_cap)
            k->msgs[k->received] = strndup(k->rx, k->rx_len);
        else
            return; /* out of memory: not counted either */
    }
    k->received++;
    snprintf(k->last, sizeof k->last, "%.*s", (int)k->rx_len, k->rx);
    if (k->rx_len > 2 && k->rx[0] == 'm' && k->rx[1] == ':') {
        long n = strtol(k->rx + 2, NULL, 10);
        if (n != k->next)
            k->order_errors++;
        k->next = n + 1;
    }
}

static int client_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                     void *in, size_t len)
{
    (void)user;
    wsc_conn *k = lws_get_opaque_user_data(wsi);
    if (!k)
        return 0;
    wsc *c = k->c;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (k->auth[0]) {
            unsigned char **p = (unsigned char **)in, *end = *p + len;
            rc = lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                              (unsigned char *)k->auth,
                                              (int)strlen(k->auth), p, end)
                     ? -1
                     : 0;
        }
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        k->state = WSC_OPEN;
        if (k->paused)
            lws_rx_flow_control(wsi, 0);
        if (k->head || k->want_close)
            lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        k->http_status = (int)lws_http_client_http_response(wsi);
        k->state = WSC_FAILED;
        k->wsi = NULL;
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (!k->rx_len && !k->rx)
            k->rx = malloc(RX_MAX);
        if (k->rx && k->rx_len + len <= RX_MAX) {
            memcpy(k->rx + k->rx_len, in, len);
            k->rx_len += len;
        }
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            on_message(k);
            k->rx_len = 0;
        }
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (k->head) {
            out *o = k->head;
            k->head = o->next;
            if (!k->head)
                k->tail = NULL;
            lws_write(wsi, o->buf + LWS_PRE, o->len, LWS_WRITE_TEXT);
            free(o);
            if (k->head || k->want_close)
                lws_callback_on_writable(wsi);
        } else if (k->want_close) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"bye", 3);
            rc = -1;
        }
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        if (k->state == WSC_OPEN)
            k->state = WSC_CLOSED;
        else if (k->state == WSC_CONNECTING)
            k->state = WSC_FAILED;
        k->wsi = NULL;
        lws_set_opaque_user_data(wsi, NULL);
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static const struct lws_protocols protocols[] = {
    {"wsc", client_cb, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void do_connect(wsc *c, wsc_conn *k)
{
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = c->ctx;
    ci.address = "127.0.0.1";
    ci.port = k->port;
    ci.path = k->path;
    ci.host = "127.0.0.1";
    ci.origin = "127.0.0.1";
    ci.protocol = NULL;
    ci.local_protocol_name = "wsc";
    ci.opaque_user_data = k;
    ci.pwsi = &k->wsi;
    if (c->tls)
        ci.ssl_connection = LCCSCF_USE_SSL | LCCSCF_ALLOW_SELFSIGNED |
                            LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                            LCCSCF_ALLOW_INSECURE;
    pthread_mutex_unlock(&c->mu); /* connect may call back at once */
    struct lws *wsi = lws_client_connect_via_info(&ci);
    pthread_mutex_lock(&c->mu);
    if (!wsi && k->state == WSC_CONNECTING)
        k->state = WSC_FAILED;
}

static void *client_main(void *arg)
{
    wsc *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        for (int i = 0; i < c->n; i++) {
            wsc_conn *k = &c->conns[i];
            if (k->want_connect) {
                k->want_connect = false;
                do_connect(c, k);
            }
            if (k->wsi && k->state == WSC_OPEN && (k->head || k->want_close))
                lws_callback_on_writable(k->wsi);
        }
        pthread_mutex_unlock(&c->mu);
        lws_service(c->ctx, 0);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

wsc *wsc_new(bool tls)
{
    wsc *c = calloc(1, sizeof *c);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.options = tls ? LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT : 0;
    info.fd_limit_per_thread = 1024;
    c->tls = tls;
    pthread_mutex_init(&c->mu, NULL);
    c->ctx = lws_create_context(&info);
    if (!c->ctx || pthread_create(&c->thread, NULL, client_main, c) != 0) {
        if (c->ctx)
            lws_context_destroy(c->ctx);
        free(c);
        return NULL;
    }
    return c;
}

void wsc_free(wsc *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_mutex_unlock(&c->mu);
    lws_cancel_service(c->ctx);
    pthread_join(c->thread, NULL);
    lws_context_destroy(c->ctx);
    for (int i = 0; i < c->n; i++) {
        for (out *o = c->conns[i].head, *next; o; o = next) {
            next = o->next;
            free(o);
        }
        free(c->conns[i].rx);
        for (size_t m = 0; c->conns[i].msgs && m < c->conns[i].received; m++)
            free(c->conns[i].msgs[m]);
        free(c->conns[i].msgs);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int wsc_connect(wsc *c, int port, const char *path, const char *auth, bool paused)
{
    pthread_mutex_lock(&c->mu);
    int i = c->n < WSC_MAX ? c->n++ : -1;
    if (i >= 0) {
        wsc_conn *k = &c->conns[i];
        k->c = c;
        k->idx = i;
        k->port = port;
        snprintf(k->path, sizeof k->path, "%s", path);
        snprintf(k->auth, sizeof k->auth, "%s", auth ? auth : "");
        k->paused = paused;
        k->state = WSC_CONNECTING;
        k->want_connect = true;
    }
    pthread_mutex_unlock(&c->mu);
    lws_cancel_service(c->ctx);
    return i;
}

#define GET(field)                                                                       \
    pthread_mutex_lock(&c->mu);                                                          \
    __typeof__(c->conns[0].field) v = c->conns[i].field;                                 \
    pthread_mutex_unlock(&c->mu);                                                        \
    return v

wsc_state wsc_get_state(wsc *c, int i)
{
    GET(state);
}

int wsc_http_status(wsc *c, int i)
{
    GET(http_status);
}

size_t wsc_received(wsc *c, int i)
{
    GET(received);
}

size_t wsc_order_errors(wsc *c, int i)
{
    GET(order_errors);
}

void wsc_last(wsc *c, int i, char *buf, size_t len)
{
    pthread_mutex_lock(&c->mu);
    snprintf(buf, len, "%s", c->conns[i].last);
    pthread_mutex_unlock(&c->mu);
}

void wsc_keep_messages(wsc *c)
{
    pthread_mutex_lock(&c->mu);
    c->keep = true;
    pthread_mutex_unlock(&c->mu);
}

bool wsc_message(wsc *c, int i, size_t k, char *buf, size_t len)
{
    pthread_mutex_lock(&c->mu);
    wsc_conn *n = &c->conns[i];
    bool ok = c->keep && k < n->received && n->msgs && n->msgs[k];
    if (ok)
        snprintf(buf, len, "%s", n->msgs[k]);
    pthread_mutex_unlock(&c->mu);
    return ok;
}

int wsc_send(wsc *c, int i, const char *text)
{
    size_t n = strlen(text);
    out *o = malloc(sizeof *o + LWS_PRE + n);
    if (!o)
        return -1;
    o->next = NULL;
    o->len = n;
    memcpy(o->buf + LWS_PRE, text, n);
    pthread_mutex_lock(&c->mu);
    wsc_conn *k = &c->conns[i];
    if (k->tail)
        k->tail->next = o;
    else
        k->head = o;
    k->tail = o;
    pthread_mutex_unlock(&c->mu);
    lws_cancel_service(c->ctx);
    return 0;
}

void wsc_close(wsc *c, int i)
{
    pthread_mutex_lock(&c->mu);
    c->conns[i].want_close = true;
    pthread_mutex_unlock(&c->mu);
    lws_cancel_service(c->ctx);
}

bool wsc_wait(wsc *c, bool (*pred)(wsc *c, void *arg), void *arg, int timeout_ms)
{
    for (int t = 0; t <= timeout_ms; t += 5) {
        if (pred(c, arg))
            return true;
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
    return pred(c, arg);
}
