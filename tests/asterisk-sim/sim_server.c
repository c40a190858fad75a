/* sim_server.c - the simulator's host: HTTP + WebSocket as Asterisk 22 serves
 * ARI, over libwebsockets 4.1.6, around the core (sim_core.h).
 *
 * Shape:
 *   - one lws context, one vhost per node (vhost user = host_node);
 *   - the host owns each node's listening socket: it is adopted into lws as a
 *     raw file descriptor, and every accepted connection is adopted into the
 *     node's vhost. So "node down" closes the listener at once (connections
 *     are refused) and "node up" binds it again, which lws's own listeners
 *     (closed up to a second late by lws_vhost_destroy) cannot do;
 *   - one protocol serves HTTP and the events WebSocket (ARI clients name no
 *     subprotocol, so lws binds them to protocol 0);
 *   - per HTTP request an http_req, per WebSocket a ws_sess, per accepted
 *     connection a conn; lws's per-session data only points at them, because
 *     lws frees and re-zeroes it at every keep-alive transaction and upgrade.
 *
 * Nothing is freed inside its own lws callback except through the close
 * callbacks lws itself runs last (CLOSED, CLOSED_HTTP, WSI_DESTROY). */
#include "sim_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "sim_core.h"

#define MOD             "simhost"
#define BODY_MAX        (1024u * 1024u) /* request bodies above this: 413 */
#define WS_MAX_APPS     8
#define APP_MAX         64
#define CHUNK           65536
#define ASTERISK_SERVER "Asterisk/GIT-22-69535d4837"

typedef struct host_node host_node;

/* ---- types -------------------------------------------------------------- */

struct sim_timer {
    lws_sorted_usec_list_t sul; /* armed in lws when delay > 0 */
    lws_dll2_t all;             /* in srv->timers */
    lws_dll2_t imm;             /* in srv->imm when delay == 0 */
    sim_server *srv;
    sim_timer_fn fire;
    void *arg;
    uint64_t seq;
    bool immediate;
};

typedef struct ws_msg {
    struct ws_msg *next;
    size_t len; /* payload bytes after LWS_PRE */
    size_t cap;
    unsigned char *buf; /* LWS_PRE + payload */
} ws_msg;

/* One events WebSocket. */
typedef struct ws_sess {
    lws_dll2_t list; /* in node->sessions */
    host_node *node;
    struct lws *wsi;
    int napps;
    char apps[WS_MAX_APPS][APP_MAX];
    bool active[WS_MAX_APPS]; /* false once replaced by a newer socket */
    bool attached;            /* sim_app_attach done, detach owed */
    bool dead;                /* being killed: nothing more is queued */
    ws_msg *head, *tail;
    size_t qbytes;
} ws_sess;

/* One accepted TCP connection (HTTP, maybe upgraded). */
typedef struct conn {
    lws_dll2_t list; /* in node->conns */
    struct lws *wsi;
    struct host_node *node; /* the node whose port accepted it */
    bool spare; /* keep it when its node goes down (it carries the answer) */
} conn;

typedef struct node_faults {
    int http_500;   /* answer the next N /ari/ requests with 500 */
    int latency_ms; /* delay every /ari/ response */
    int refuse_ws;  /* refuse the next N upgrades */
} node_faults;

struct host_node {
    sim_server *srv;
    int index;
    char name[32];
    char asterisk_id[32];
    int port;
    struct lws_vhost *vh;
    struct lws *listen_wsi; /* NULL while down */
    bool down;
    lws_sorted_usec_list_t sul_down; /* closes the listener after a down */
    lws_dll2_owner_t conns;
    lws_dll2_owner_t sessions;
    node_faults faults;
};

/* One HTTP request from its headers until its answer is written. */
typedef struct http_req {
    host_node *node;
    struct lws *wsi;
    char method[8];
    char *path;
    char *query; /* re-encoded, api_key removed; NULL if none */
    char *body;
    size_t body_len;
    bool too_big;
    bool form;         /* application/x-www-form-urlencoded body */
    bool close_after;  /* no usable keep-alive after this one */
    char api_key[160]; /* from the query, decoded; never logged */
    /* the answer */
    bool ready;
    int status;
    const char *ctype;
    char *out;
    size_t out_len;
    size_t sent;
    bool hdrs_sent;
    bool www_auth;
    lws_sorted_usec_list_t sul_latency;
} http_req;

/* lws per-session data: only pointers, see the top of the file. */
typedef struct pss {
    http_req *req;
    ws_sess *ws;
} pss;

struct sim_server {
    sim_server_cfg cfg;
    struct lws_context *ctx;
    sim *core;
    host_node nodes[SIM_SERVER_MAX_NODES];
    int nnodes;
    lws_dll2_owner_t timers;
    lws_dll2_owner_t imm;
    lws_sorted_usec_list_t sul_imm;
    bool imm_armed;
    uint64_t timer_seq;
    lws_sorted_usec_list_t sul_deadline;
    volatile sig_atomic_t stop;
    unsigned char wbuf[LWS_PRE + CHUNK];
};

static int ari_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                        void *in, size_t len);

static const struct lws_protocols protocols[] = {
    {"ari", ari_callback, sizeof(pss), 16384, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- timers (sim_host hooks) ---------------------------------------------
 * Delay 0 goes through one FIFO drained by one sul, so a burst of zero-delay
 * timers (scale 0) costs O(1) each and fires in the order armed; lws's sorted
 * list would walk every pending entry on each insert. */

/* sim_host.now_ms: the real wall clock. */
static uint64_t host_now_ms(void *ud)
{
    (void)ud;
    return clock_wall_ms();
}

/* Unlinks a timer from every list it is on and frees it. */
static void timer_free(sim_timer *t)
{
    lws_dll2_remove(&t->all);
    lws_dll2_remove(&t->imm);
    free(t);
}

/* A delayed timer is due. */
static void timer_fire_sul(lws_sorted_usec_list_t *sul)
{
    sim_timer *t = lws_container_of(sul, sim_timer, sul);
    sim_timer_fn fire = t->fire;
    void *arg = t->arg;
    timer_free(t); /* dead before fire runs, as the contract says */
    fire(arg);
}

static void imm_drain(lws_sorted_usec_list_t *sul);

/* Arms the drain 1 us ahead, so a drain that re-arms itself still lets lws
 * service sockets in between. */
static void imm_arm(sim_server *srv)
{
    if (srv->imm_armed)
        return;
    srv->imm_armed = true;
    lws_sul_schedule(srv->ctx, 0, &srv->sul_imm, imm_drain, 1);
}

/* Fires the zero-delay timers armed before this turn, oldest first. */
static void imm_drain(lws_sorted_usec_list_t *sul)
{
    sim_server *srv = lws_container_of(sul, sim_server, sul_imm);
    uint64_t limit = srv->timer_seq; /* timers armed while draining wait a turn */
    srv->imm_armed = false;
    while (srv->imm.head) {
        sim_timer *t = lws_container_of(srv->imm.head, sim_timer, imm);
        if (t->seq >= limit)
            break;
        sim_timer_fn fire = t->fire;
        void *arg = t->arg;
        timer_free(t);
        fire(arg);
    }
    if (srv->imm.count)
        imm_arm(srv);
}

/* sim_host.timer_add: delay 0 joins the FIFO, anything else is one sul. */
static sim_timer *host_timer_add(void *ud, uint64_t delay_ms, sim_timer_fn fire,
                                 void *arg)
{
    sim_server *srv = ud;
    sim_timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->srv = srv;
    t->fire = fire;
    t->arg = arg;
    t->seq = srv->timer_seq++;
    lws_dll2_add_tail(&t->all, &srv->timers);
    if (delay_ms == 0) {
        t->immediate = true;
        lws_dll2_add_tail(&t->imm, &srv->imm);
        imm_arm(srv);
    } else {
        lws_sul_schedule(srv->ctx, 0, &t->sul, timer_fire_sul,
                         (lws_usec_t)delay_ms * 1000);
    }
    return t;
}

/* sim_host.timer_cancel: NULL is a no-op. */
static void host_timer_cancel(void *ud, sim_timer *t)
{
    (void)ud;
    if (!t)
        return;
    if (!t->immediate)
        lws_sul_cancel(&t->sul);
    timer_free(t);
}

/* ---- events WebSocket: queue and routing --------------------------------- */

typedef struct dumpbuf {
    unsigned char *buf;
    size_t len, cap; /* len counts from LWS_PRE */
} dumpbuf;

/* json_dump_callback sink: appends after LWS_PRE bytes of headroom. */
static int dump_cb(const char *s, size_t n, void *ud)
{
    dumpbuf *d = ud;
    if (LWS_PRE + d->len + n > d->cap) {
        size_t cap = (d->cap ? d->cap * 2 : 1024) + n;
        unsigned char *b = realloc(d->buf, cap);
        if (!b)
            return -1;
        d->buf = b;
        d->cap = cap;
    }
    memcpy(d->buf + LWS_PRE + d->len, s, n);
    d->len += n;
    return 0;
}

static void ws_kill(ws_sess *ws, const char *why, bool detach_now);

/* Serializes `event` (borrowed) onto the socket's queue, in order. */
static void ws_queue(ws_sess *ws, const json_t *event)
{
    dumpbuf d = {NULL, 0, 0};
    if (ws->dead)
        return;
    if (json_dump_callback(event, dump_cb, &d, JSON_COMPACT) != 0) {
        free(d.buf);
        LOG_E(MOD, "node=%s event serialization failed", ws->node->name);
        return;
    }
    ws_msg *m = malloc(sizeof *m);
    if (!m) {
        free(d.buf);
        return;
    }
    *m = (ws_msg){NULL, d.len, d.cap, d.buf};
    if (ws->tail)
        ws->tail->next = m;
    else
        ws->head = m;
    ws->tail = m;
    ws->qbytes += d.len;
    if (ws->qbytes > ws->node->srv->cfg.ws_queue_max) {
        /* we may be inside the core's emit: detach later, from CLOSED */
        ws_kill(ws, "client not reading: event queue full", false);
        return;
    }
    lws_callback_on_writable(ws->wsi);
}

/* Drops every unsent event of the socket. */
static void ws_queue_free(ws_sess *ws)
{
    while (ws->head) {
        ws_msg *m = ws->head;
        ws->head = m->next;
        free(m->buf);
        free(m);
    }
    ws->tail = NULL;
    ws->qbytes = 0;
}

/* The socket that currently receives `app` on `n`, or NULL. */
static ws_sess *route_find(host_node *n, const char *app, int *slot)
{
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&n->sessions))
    {
        ws_sess *ws = lws_container_of(d, ws_sess, list);
        for (int i = 0; i < ws->napps && !ws->dead; i++)
            if (ws->active[i] && strcmp(ws->apps[i], app) == 0) {
                *slot = i;
                return ws;
            }
    }
    lws_end_foreach_dll(d);
    return NULL;
}

/* sim_host.emit: routes one event to the socket that holds (node, app). */
static void host_emit(void *ud, int node, const char *app, const json_t *event)
{
    sim_server *srv = ud;
    int slot;
    if (node < 0 || node >= srv->nnodes)
        return;
    ws_sess *ws = route_find(&srv->nodes[node], app, &slot);
    if (ws)
        ws_queue(ws, event);
    else
        LOG_D(MOD, "node=%s app=%s event dropped: no socket", srv->nodes[node].name, app);
}

/* Tells the older socket of `app` that it lost the app, as Asterisk does. */
static void send_replaced(ws_sess *old, int slot)
{
    char ts[40];
    json_t *e =
        json_pack("{s:s, s:s, s:s, s:s}", "type", "ApplicationReplaced", "timestamp",
                  clock_format_ari(clock_wall_ms(), ts, sizeof ts), "application",
                  old->apps[slot], "asterisk_id", old->node->asterisk_id);
    old->active[slot] = false;
    if (e)
        ws_queue(old, e);
    json_decref(e);
}

/* The socket stops receiving and the core forgets it; the socket itself is
 * closed separately. Idempotent. */
static void ws_detach(ws_sess *ws)
{
    sim_server *srv = ws->node->srv;
    for (int i = 0; i < ws->napps; i++)
        ws->active[i] = false;
    if (ws->attached && srv->core)
        for (int i = 0; i < ws->napps; i++)
            sim_app_detach(srv->core, ws->node->index, ws->apps[i]);
    ws->attached = false;
}

/* Drops the connection without a close handshake (a crash, a full queue).
 * lws closes it on its next turn; ws_sess is freed in LWS_CALLBACK_CLOSED,
 * which also detaches it from the core unless detach_now (never from inside
 * a core call). */
static void ws_kill(ws_sess *ws, const char *why, bool detach_now)
{
    if (ws->dead)
        return;
    LOG_W(MOD, "node=%s ws dropped: %s (queued %zu bytes)", ws->node->name, why,
          ws->qbytes);
    if (detach_now)
        ws_detach(ws);
    for (int i = 0; i < ws->napps; i++)
        ws->active[i] = false;
    ws->dead = true;
    ws_queue_free(ws);
    lws_set_timeout(ws->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* Writes queued events while the socket takes them. */
static int ws_writeable(ws_sess *ws)
{
    for (int n = 0; ws->head && n < 64 && !lws_send_pipe_choked(ws->wsi); n++) {
        ws_msg *m = ws->head;
        ws->head = m->next;
        if (!ws->head)
            ws->tail = NULL;
        ws->qbytes -= m->len;
        int w = lws_write(ws->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
        free(m->buf);
        free(m);
        if (w < 0)
            return -1;
    }
    if (ws->head)
        lws_callback_on_writable(ws->wsi);
    return 0;
}

/* ---- connections and listeners ------------------------------------------ */

/* Remembers an accepted connection of node n, so node down can close it. */
static void conn_track(host_node *n, struct lws *wsi)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return;
    }
    c->wsi = wsi;
    c->node = n;
    lws_dll2_add_tail(&c->list, &n->conns);
    lws_set_opaque_user_data(wsi, c);
}

/* WSI_DESTROY: lws is done with the connection. */
static void conn_untrack(struct lws *wsi)
{
    conn *c = lws_get_opaque_user_data(wsi);
    if (!c)
        return;
    lws_set_opaque_user_data(wsi, NULL);
    lws_dll2_remove(&c->list);
    free(c);
}

/* Accepts every pending connection on the node's listener into its vhost. */
static int listener_accept(host_node *n, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                LOG_W(MOD, "node=%s accept: %s", n->name, strerror(errno));
            return 0;
        }
        int one = 1;
        /* headers and body leave in two writes: without NODELAY, Nagle and
         * the client's delayed ACK add 40 ms to every answer */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct lws *wsi = lws_adopt_socket_vhost(n->vh, fd); /* closes fd on failure */
        if (wsi)
            conn_track(n, wsi);
    }
}

/* A non-blocking listening socket on bind_addr:*port (0: any; *port gets
 * the one bound). Returns the fd or -1 with a message. */
static int listen_socket(const char *bind_addr, int *port, char *err, size_t errlen)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    socklen_t alen = sizeof a;
    int one = 1, fd = -1;
    if (inet_pton(AF_INET, bind_addr, &a.sin_addr) != 1) {
        snprintf(err, errlen, "bad bind address '%s'", bind_addr);
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        goto fail;
    *port = ntohs(a.sin_port);
    return fd;
fail:
    snprintf(err, errlen, "listen on %s:%d: %s", bind_addr, *port, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Starts listening on the node's port; lws polls the socket from then on. */
static int node_listen(host_node *n, char *err, size_t errlen)
{
    char why[160];
    int fd = listen_socket(n->srv->cfg.bind, &n->port, why, sizeof why);
    if (fd < 0) {
        snprintf(err, errlen, "node %s: %s", n->name, why);
        return ARIQ_EIO;
    }
    lws_sock_file_fd_type u;
    u.filefd = fd;
    n->listen_wsi =
        lws_adopt_descriptor_vhost(n->vh, LWS_ADOPT_RAW_FILE_DESC, u, "ari", NULL);
    if (!n->listen_wsi) {
        snprintf(err, errlen, "node %s: lws could not adopt the listener", n->name);
        close(fd);
        return ARIQ_EIO;
    }
    return 0;
}

/* Runs outside any callback of the node's sockets: closes the listener
 * (connections are refused from now on) and every connection but the one
 * that asked. */
static void node_close_sockets(lws_sorted_usec_list_t *sul)
{
    host_node *n = lws_container_of(sul, host_node, sul_down);
    if (n->listen_wsi) {
        struct lws *l = n->listen_wsi;
        n->listen_wsi = NULL;
        lws_set_timeout(l, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    }
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&n->conns))
    {
        conn *c = lws_container_of(d, conn, list);
        if (!c->spare)
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
    lws_end_foreach_dll(d);
}

/* ---- HTTP requests -------------------------------------------------------- */

/* The node a connection belongs to: the one whose port accepted it. Not the
 * vhost: once the headers are parsed lws rebinds a connection to the first
 * vhost that "listens" on its port, and no vhost listens here (the host owns
 * the sockets), so every connection would land on node1's vhost. */
static host_node *wsi_node(struct lws *wsi)
{
    conn *c = lws_get_opaque_user_data(wsi);
    return c ? c->node : lws_vhost_user(lws_get_vhost(wsi));
}

/* Cancels a held-back answer and frees the request. NULL is a no-op. */
static void req_free(http_req *r)
{
    if (!r)
        return;
    lws_sul_cancel(&r->sul_latency);
    free(r->path);
    free(r->query);
    free(r->body);
    free(r->out);
    free(r);
}

static const struct {
    enum lws_token_indexes tok;
    const char *name;
} methods[] = {
    {WSI_TOKEN_GET_URI, "GET"},     {WSI_TOKEN_POST_URI, "POST"},
    {WSI_TOKEN_PUT_URI, "PUT"},     {WSI_TOKEN_DELETE_URI, "DELETE"},
    {WSI_TOKEN_PATCH_URI, "PATCH"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
    {WSI_TOKEN_HEAD_URI, "HEAD"},
};

/* The request's method name, or NULL for one we do not serve. */
static const char *req_method(struct lws *wsi)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (lws_hdr_total_length(wsi, methods[i].tok))
            return methods[i].name;
    return NULL;
}

/* Appends s percent-encoded (RFC 3986 unreserved and ",:/@" kept). */
static void enc_append(char *out, size_t *o, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s && *o + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~,:/@", c)) {
            out[(*o)++] = (char)c;
        } else {
            out[(*o)++] = '%';
            out[(*o)++] = hex[c >> 4];
            out[(*o)++] = hex[c & 15];
        }
    }
    out[*o] = '\0';
}

/* lws hands the query over decoded and split at '&' into fragments; this
 * rebuilds a percent-encoded query string for the core, without api_key
 * (which goes to *api_key). Returns a malloc'd string, or NULL when empty. */
static char *query_rebuild(struct lws *wsi, char *api_key, size_t klen)
{
    char frag[16400]; /* max_http_header_data: a fragment is never longer */
    size_t cap = (size_t)lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) * 4 + 64,
           o = 0;
    char *q = malloc(cap);
    if (!q)
        return NULL;
    q[0] = '\0';
    for (int i = 0;
         lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0;
         i++) {
        if (!frag[0])
            continue;
        char *eq = strchr(frag, '=');
        if (eq)
            *eq = '\0';
        if (strcmp(frag, "api_key") == 0) {
            snprintf(api_key, klen, "%s", eq ? eq + 1 : "");
            continue;
        }
        if (o && o + 1 < cap)
            q[o++] = '&';
        enc_append(q, &o, cap, frag);
        if (eq && o + 1 < cap) {
            q[o++] = '=';
            enc_append(q, &o, cap, eq + 1);
        }
    }
    if (o == 0) {
        free(q);
        return NULL;
    }
    return q;
}

/* Credentials as Asterisk takes them: an Authorization header if present
 * (basic), else the api_key query parameter "user:password". */
static bool auth_ok(sim_server *srv, struct lws *wsi, const char *api_key)
{
    char want[140], hdr[512], dec[300];
    snprintf(want, sizeof want, "%s:%s", srv->cfg.user, srv->cfg.password);
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
        if (lws_hdr_copy(wsi, hdr, sizeof hdr, WSI_TOKEN_HTTP_AUTHORIZATION) < 0 ||
            strncasecmp(hdr, "Basic ", 6) != 0)
            return false;
        int n = lws_b64_decode_string(hdr + 6, dec, sizeof dec);
        return n > 0 && (size_t)n == strlen(want) && memcmp(dec, want, (size_t)n) == 0;
    }
    return api_key && strcmp(api_key, want) == 0;
}

/* The answer is in place: send it now or after the node's latency. */
static void req_latency_done(lws_sorted_usec_list_t *sul)
{
    http_req *r = lws_container_of(sul, http_req, sul_latency);
    r->ready = true;
    lws_callback_on_writable(r->wsi);
}

/* Sets a JSON answer the host makes itself (body is copied; NULL: none). */
static void req_answer(http_req *r, int status, const char *body)
{
    free(r->out);
    r->status = status;
    r->out = body ? strdup(body) : NULL;
    r->out_len = r->out ? strlen(r->out) : 0;
    r->ctype = r->out ? "application/json" : NULL;
}

static int faults_get(http_req *r);
static int faults_post(http_req *r);
static int node_down_route(http_req *r);
static int node_up_route(http_req *r);

/* Host-owned /sim/ routes; everything else under /sim/ is the core's. */
static const struct {
    const char *method;
    const char *prefix; /* path starts with */
    const char *suffix; /* and ends with ("" for exact prefix match) */
    int (*fn)(http_req *r);
} host_routes[] = {
    {"GET", "/sim/faults", "", faults_get},
    {"POST", "/sim/faults", "", faults_post},
    {"POST", "/sim/nodes/", "/down", node_down_route},
    {"POST", "/sim/nodes/", "/up", node_up_route},
};

/* prefix + something + suffix (something non-empty), or exactly prefix. */
static bool route_matches(const char *path, const char *prefix, const char *suffix)
{
    size_t pl = strlen(path), xl = strlen(prefix), sl = strlen(suffix);
    if (pl < xl + sl || strncmp(path, prefix, xl) != 0)
        return false;
    if (!sl)
        return pl == xl;
    return pl > xl + sl && strcmp(path + pl - sl, suffix) == 0;
}

/* The core answers; its body becomes ours to send and free. */
static void req_core(http_req *r)
{
    sim_server *srv = r->node->srv;
    const char *body = r->body_len ? r->body : NULL;
    char *merged = NULL;
    if (r->form && body) {
        /* Asterisk reads a form body as more query parameters */
        size_t ql = r->query ? strlen(r->query) : 0;
        merged = malloc(ql + r->body_len + 2);
        if (merged)
            snprintf(merged, ql + r->body_len + 2, "%s%s%.*s", r->query ? r->query : "",
                     ql ? "&" : "", (int)r->body_len, r->body);
        body = NULL;
    }
    int st = 0;
    char *out = NULL;
    size_t out_len = 0;
    const char *ctype = NULL;
    int rc = sim_request(srv->core, r->node->index, r->method, r->path,
                         merged ? merged : r->query, body, body ? r->body_len : 0, &st,
                         &out, &out_len, &ctype);
    free(merged);
    if (rc != 0) {
        req_answer(r, 500, "{\"message\":\"Internal Server Error\"}");
        return;
    }
    free(r->out);
    r->status = st;
    r->out = out;
    r->out_len = out ? out_len : 0;
    r->ctype = out ? (ctype ? ctype : "application/json") : NULL;
}

/* /sim/: the host's own routes first (405 on a wrong method), else the core. */
static void req_sim(http_req *r)
{
    for (size_t i = 0; i < sizeof host_routes / sizeof host_routes[0]; i++)
        if (route_matches(r->path, host_routes[i].prefix, host_routes[i].suffix)) {
            if (strcmp(r->method, host_routes[i].method) == 0) {
                host_routes[i].fn(r);
                return;
            }
            if (i + 1 == sizeof host_routes / sizeof host_routes[0] ||
                !route_matches(r->path, host_routes[i + 1].prefix,
                               host_routes[i + 1].suffix)) {
                req_answer(r, 405, "{\"message\":\"Method Not Allowed\"}");
                return;
            }
        }
    req_core(r);
}

/* /ari/ REST: credentials, then the node's faults, then the core. Returns
 * true when the answer is to be held back by the node's latency. */
static bool req_ari(http_req *r)
{
    host_node *n = r->node;
    if (!auth_ok(n->srv, r->wsi, r->api_key)) {
        req_answer(r, 401, "{\"message\":\"Authentication required\"}");
        r->www_auth = true;
        return false;
    }
    if (strcmp(r->path, "/ari/events") == 0)
        req_answer(r, 426, "{\"message\":\"Upgrade Required\"}");
    else if (n->faults.http_500 > 0) {
        n->faults.http_500--;
        req_answer(r, 500, "{\"message\":\"Internal Server Error\"}");
    } else
        req_core(r);
    return n->faults.latency_ms > 0;
}

static int on_http_writeable(pss *ps, struct lws *wsi);

/* The request is complete (headers and body): compute the answer and send
 * it at once (lws allows writing from the HTTP callbacks; waiting for
 * POLLOUT would cost a loop turn per request), or after the latency fault.
 * Returns -1 to close the connection. */
static int req_dispatch(pss *ps, http_req *r)
{
    bool delay = false;
    if (r->too_big)
        req_answer(r, 413, "{\"message\":\"Request Entity Too Large\"}");
    else if (strncmp(r->path, "/ari/", 5) == 0)
        delay = req_ari(r);
    else if (strncmp(r->path, "/sim/", 5) == 0)
        req_sim(r);
    else
        req_answer(r, 404, "{\"message\":\"Resource not found\"}");
    LOG_D(MOD, "node=%s %s %s%s%s -> %d", r->node->name, r->method, r->path,
          r->query ? "?" : "", r->query ? r->query : "", r->status);
    if (delay) {
        lws_sul_schedule(r->node->srv->ctx, 0, &r->sul_latency, req_latency_done,
                         (lws_usec_t)r->node->faults.latency_ms * 1000);
        return 0;
    }
    r->ready = true;
    return on_http_writeable(ps, r->wsi);
}

/* Headers are in: create the request; answer now unless a body follows. */
static int on_http(pss *ps, struct lws *wsi, const char *uri)
{
    /* A dead Asterisk answers nothing: a request that reaches a downed node on
     * a kept-alive connection (before node_close_sockets ran) drops it. */
    if (wsi_node(wsi)->down)
        return -1;
    char cl[32] = "", ct[128] = "";
    const char *m = req_method(wsi);
    http_req *r = calloc(1, sizeof *r);
    if (!r || !m || !(r->path = strdup(uri))) {
        req_free(r);
        return -1;
    }
    ps->req = r;
    r->node = wsi_node(wsi);
    r->wsi = wsi;
    snprintf(r->method, sizeof r->method, "%s", m);
    r->query = query_rebuild(wsi, r->api_key, sizeof r->api_key);
    if (lws_hdr_copy(wsi, ct, sizeof ct, WSI_TOKEN_HTTP_CONTENT_TYPE) > 0)
        r->form = strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
    bool has_cl = lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
    bool bodied = !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH");
    if (has_cl && (atoll(cl) > 0 || !strcmp(m, "POST")))
        return 0; /* lws delivers the body, then BODY_COMPLETION (also for POST with 0) */
    /* lws waits for a body until close on a POST/PUT without Content-Length:
     * answer now and close after, so keep-alive cannot go wrong. */
    r->close_after = bodied && !has_cl;
    return req_dispatch(ps, r);
}

/* Collects the body; past BODY_MAX it is dropped and the answer is 413. */
static int on_body(http_req *r, const void *in, size_t len)
{
    if (!r || r->too_big || !len)
        return 0;
    if (r->body_len + len > BODY_MAX) {
        r->too_big = true;
        free(r->body);
        r->body = NULL;
        r->body_len = 0;
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

/* The whole body is in. */
static int on_body_done(pss *ps)
{
    if (!ps || !ps->req)
        return -1;
    return req_dispatch(ps, ps->req);
}

/* Writes the status line and headers of r's answer. */
static int write_headers(struct lws *wsi, int status, const char *ctype, size_t len,
                         bool www_auth, bool close)
{
    unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start,
                                       *end = buf + sizeof buf - 1;
    static const char realm[] = "Basic realm=\"Asterisk REST Interface\"";
    if (lws_add_http_common_headers(wsi, (unsigned)status, ctype, len, &p, end))
        return -1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-cache, no-store", 18, &p,
                                    end))
        return -1;
    if (www_auth && lws_add_http_header_by_name(
                        wsi, (const unsigned char *)"www-authenticate:",
                        (const unsigned char *)realm, (int)strlen(realm), &p, end))
        return -1;
    if (close && lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                              (const unsigned char *)"close", 5, &p, end))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

/* Sends the answer: headers, then the body in chunks while the socket takes
 * them. Returns -1 to close the connection. */
static int on_http_writeable(pss *ps, struct lws *wsi)
{
    http_req *r = ps->req;
    sim_server *srv;
    if (!r || !r->ready)
        return 0;
    srv = r->node->srv;
    if (!r->hdrs_sent) {
        r->hdrs_sent = true;
        if (write_headers(wsi, r->status, r->ctype, r->out_len, r->www_auth,
                          r->close_after))
            return -1;
    }
    while (r->sent < r->out_len && !lws_send_pipe_choked(wsi)) {
        size_t n = r->out_len - r->sent < CHUNK ? r->out_len - r->sent : CHUNK;
        bool last = r->sent + n == r->out_len;
        memcpy(srv->wbuf + LWS_PRE, r->out + r->sent, n);
        if (lws_write(wsi, srv->wbuf + LWS_PRE, n,
                      last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n)
            return -1;
        r->sent += n;
    }
    if (r->sent < r->out_len) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    bool close = r->close_after;
    ps->req = NULL; /* before transaction_completed: it rebinds and re-zeroes pss */
    req_free(r);
    if (close)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- host routes: faults, node down / up ---------------------------------- */

/* Answers 200 with the node's current faults. */
static void faults_json(http_req *r)
{
    host_node *n = r->node;
    json_t *j =
        json_pack("{s:s, s:i, s:i, s:i}", "node", n->name, "http_500", n->faults.http_500,
                  "latency_ms", n->faults.latency_ms, "refuse_ws", n->faults.refuse_ws);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    req_answer(r, s ? 200 : 500, s ? s : "{\"message\":\"Internal Server Error\"}");
    free(s);
}

/* GET /sim/faults */
static int faults_get(http_req *r)
{
    faults_json(r);
    return 0;
}

/* Closes every events WebSocket of the node now, as if the network died. */
static void drop_ws(host_node *n)
{
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&n->sessions))
    {
        ws_kill(lws_container_of(d, ws_sess, list), "fault drop_ws", true);
    }
    lws_end_foreach_dll(d);
}

/* Reads one non-negative int member; absent is fine. */
static int fault_int(json_t *j, const char *key, int *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(j, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > 10000000) {
        snprintf(err, errlen, "%s: expected an integer 0..10000000", key);
        return ARIQ_EINVAL;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

/* POST /sim/faults: all keys are checked before any takes effect. */
static int faults_post(http_req *r)
{
    static const char *const known[] = {"drop_ws", "http_500", "latency_ms", "refuse_ws"};
    char err[160] = "", msg[220];
    node_faults f = r->node->faults;
    const char *key;
    json_t *v, *j = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    if (!json_is_object(j))
        snprintf(err, sizeof err, "body: expected a JSON object");
    json_object_foreach(j, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok = ok || strcmp(key, known[i]) == 0;
        if (!ok && !err[0])
            snprintf(err, sizeof err, "%s: unknown fault", key);
    }
    if (!err[0] && !fault_int(j, "http_500", &f.http_500, err, sizeof err) &&
        !fault_int(j, "latency_ms", &f.latency_ms, err, sizeof err))
        fault_int(j, "refuse_ws", &f.refuse_ws, err, sizeof err);
    if (!err[0] && json_object_get(j, "drop_ws") &&
        !json_is_boolean(json_object_get(j, "drop_ws")))
        snprintf(err, sizeof err, "drop_ws: expected a boolean");
    if (err[0]) {
        json_decref(j);
        snprintf(msg, sizeof msg, "{\"message\":\"%s\"}", err);
        req_answer(r, 400, msg);
        return 0;
    }
    r->node->faults = f;
    if (json_is_true(json_object_get(j, "drop_ws")))
        drop_ws(r->node);
    LOG_I(MOD, "node=%s faults http_500=%d latency_ms=%d refuse_ws=%d", r->node->name,
          f.http_500, f.latency_ms, f.refuse_ws);
    json_decref(j);
    faults_json(r);
    return 0;
}

/* "/sim/nodes/NAME/down" -> the node, or NULL (and a 404 answer). */
static host_node *route_node(http_req *r, const char *suffix)
{
    sim_server *srv = r->node->srv;
    const char *name = r->path + strlen("/sim/nodes/");
    size_t len = strlen(name) - strlen(suffix);
    for (int i = 0; i < srv->nnodes; i++)
        if (strlen(srv->nodes[i].name) == len &&
            strncmp(srv->nodes[i].name, name, len) == 0)
            return &srv->nodes[i];
    req_answer(r, 404, "{\"message\":\"Node not found\"}");
    return NULL;
}

/* Answers 200 {"node","state","port"}. */
static void node_state_answer(http_req *r, host_node *n)
{
    char buf[160];
    snprintf(buf, sizeof buf, "{\"node\":\"%s\",\"state\":\"%s\",\"port\":%d}", n->name,
             n->down ? "down" : "up", n->port);
    req_answer(r, 200, buf);
}

/* The node dies now for the core and its event sockets; the listener and the
 * other connections close on the next turn of the loop (node_close_sockets),
 * outside any of their callbacks. The asking connection answers first. */
static int node_down_route(http_req *r)
{
    host_node *n = route_node(r, "/down");
    if (!n)
        return 0;
    if (!n->down) {
        sim_server *srv = n->srv;
        lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&n->sessions))
        {
            ws_kill(lws_container_of(d, ws_sess, list), "node down", true);
        }
        lws_end_foreach_dll(d);
        sim_node_down(srv->core, n->index);
        n->down = true;
        conn *self = lws_get_opaque_user_data(r->wsi);
        if (self && r->node == n) {
            self->spare = true;
            r->close_after = true;
        }
        lws_sul_schedule(srv->ctx, 0, &n->sul_down, node_close_sockets, 0);
        LOG_I(MOD, "node=%s down", n->name);
    }
    node_state_answer(r, n);
    return 0;
}

/* The node listens again on its port and the core brings it back empty. */
static int node_up_route(http_req *r)
{
    char err[200];
    host_node *n = route_node(r, "/up");
    if (!n)
        return 0;
    if (n->down) {
        if (n->listen_wsi) {
            /* down and up in one turn: the listener never closed */
            lws_sul_cancel(&n->sul_down);
        } else if (node_listen(n, err, sizeof err) != 0) {
            LOG_E(MOD, "node=%s up failed: %s", n->name, err);
            req_answer(r, 500, "{\"message\":\"Internal Server Error\"}");
            return 0;
        }
        sim_node_up(n->srv->core, n->index);
        n->down = false;
        LOG_I(MOD, "node=%s up port=%d", n->name, n->port);
    }
    node_state_answer(r, n);
    return 0;
}

/* ---- WebSocket upgrade ---------------------------------------------------- */

/* The reason phrase of the statuses upgrade_reject() sends. */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    default:
        return "Service Unavailable";
    }
}

/* Answers an upgrade request with an HTTP error right away, written whole
 * as raw bytes: lws has not read the request's HTTP version yet at this
 * point and its header helpers would say "HTTP/1.0", where Asterisk says
 * HTTP/1.1. The connection closes after (lws sees no keep-alive). */
static int upgrade_reject(struct lws *wsi, int status, const char *ctype,
                          const char *body, bool www_auth)
{
    unsigned char buf[LWS_PRE + 2048];
    char *p = (char *)buf + LWS_PRE;
    int n = snprintf(p, sizeof buf - LWS_PRE,
                     "HTTP/1.1 %d %s\r\nServer: " ASTERISK_SERVER "\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-cache, no-store\r\n%s"
                     "Connection: close\r\n\r\n%s",
                     status, reason_phrase(status), ctype, strlen(body),
                     www_auth ? "WWW-Authenticate: Basic realm=\"Asterisk REST "
                                "Interface\"\r\n"
                              : "",
                     body);
    if (n < 0 || (size_t)n >= sizeof buf - LWS_PRE)
        return -1;
    if (lws_write(wsi, (unsigned char *)p, (size_t)n, LWS_WRITE_HTTP_HEADERS) < n)
        return -1;
    return 1; /* "rejected, answer sent" */
}

/* Splits the app parameter ("a,b") into ws (or, with ws NULL, only counts). */
static int parse_apps(const char *val, ws_sess *ws)
{
    int n = 0;
    char tmp[WS_MAX_APPS * APP_MAX], *save = NULL;
    snprintf(tmp, sizeof tmp, "%s", val);
    for (char *t = strtok_r(tmp, ",", &save); t && n < WS_MAX_APPS;
         t = strtok_r(NULL, ",", &save)) {
        if (!*t || strlen(t) >= APP_MAX)
            continue;
        if (ws) {
            snprintf(ws->apps[n], APP_MAX, "%s", t);
            ws->active[n] = true;
        }
        n++;
    }
    if (ws)
        ws->napps = n;
    return n;
}

/* Copies at most cap-1 bytes of src; truncation is wanted (bounded input). */
static void copy_trunc(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memmove(dst, src, n);
    dst[n] = '\0';
}

/* Reads the query of an upgrade: app list and api_key (both decoded). */
static void upgrade_args(struct lws *wsi, char *app, size_t applen, char *key,
                         size_t keylen)
{
    char frag[1024];
    app[0] = key[0] = '\0';
    for (int i = 0;
         lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) >= 0;
         i++) {
        if (strncmp(frag, "app=", 4) == 0)
            copy_trunc(app, applen, frag + 4);
        else if (strncmp(frag, "api_key=", 8) == 0)
            copy_trunc(key, keylen, frag + 8);
    }
}

/* Accept or refuse a WebSocket upgrade, in Asterisk's order: credentials
 * (401), the app parameter (400), then the node's refuse_ws fault (503). */
static int on_confirm_upgrade(struct lws *wsi)
{
    static const char missing_app[] =
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\r\n<html><head>\r\n"
        "<title>400 Bad Request</title>\r\n</head><body>\r\n<h1>Bad Request</h1>\r\n"
        "<p>HTTP request is missing param: [app]</p>\r\n<hr "
        "/>\r\n<address>" ASTERISK_SERVER "</address>\r\n</body></html>\r\n";
    char uri[256] = "", app[WS_MAX_APPS * APP_MAX], key[160];
    host_node *n = wsi_node(wsi);
    lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
    upgrade_args(wsi, app, sizeof app, key, sizeof key);
    if (strncmp(uri, "/ari/", 5) == 0 && !auth_ok(n->srv, wsi, key))
        return upgrade_reject(wsi, 401, "application/json",
                              "{\"message\":\"Authentication required\"}", true);
    if (strcmp(uri, "/ari/events") != 0)
        return upgrade_reject(wsi, 404, "application/json",
                              "{\"message\":\"Resource not found\"}", false);
    if (parse_apps(app, NULL) == 0)
        return upgrade_reject(wsi, 400, "text/html", missing_app, false);
    if (n->faults.refuse_ws > 0) {
        n->faults.refuse_ws--;
        LOG_I(MOD, "node=%s ws upgrade refused by fault", n->name);
        return upgrade_reject(wsi, 503, "application/json",
                              "{\"message\":\"Service Unavailable\"}", false);
    }
    return 0;
}

/* Upgraded: the socket takes over its apps (the older holder of each gets
 * ApplicationReplaced) and the core learns the apps are attached. */
static int on_ws_established(pss *ps, struct lws *wsi)
{
    char app[WS_MAX_APPS * APP_MAX], key[160];
    host_node *n = wsi_node(wsi);
    ws_sess *ws = calloc(1, sizeof *ws);
    if (!ws)
        return -1;
    ws->node = n;
    ws->wsi = wsi;
    upgrade_args(wsi, app, sizeof app, key, sizeof key);
    parse_apps(app, ws);
    for (int i = 0; i < ws->napps; i++) {
        int slot;
        ws_sess *old = route_find(n, ws->apps[i], &slot);
        if (old)
            send_replaced(old, slot);
    }
    lws_dll2_add_tail(&ws->list, &n->sessions);
    ps->ws = ws;
    for (int i = 0; i < ws->napps; i++)
        sim_app_attach(n->srv->core, n->index, ws->apps[i]);
    ws->attached = true;
    LOG_I(MOD, "node=%s ws connected app=%s", n->name, app);
    return 0;
}

/* The socket is gone: detach it (if not done) and free it. */
static void on_ws_closed(pss *ps)
{
    ws_sess *ws = ps->ws;
    if (!ws)
        return;
    ps->ws = NULL;
    ws_detach(ws);
    ws_queue_free(ws);
    lws_dll2_remove(&ws->list);
    LOG_I(MOD, "node=%s ws closed", ws->node->name);
    free(ws);
}

/* ---- the lws callback: dispatch by reason --------------------------------- */

/* A listener is readable: accept. */
static int on_raw_rx_file(struct lws *wsi)
{
    host_node *n = wsi_node(wsi);
    if (!n || wsi != n->listen_wsi)
        return 0;
    return listener_accept(n, lws_get_socket_fd(wsi));
}

/* lws closed a listener (ours on node down, or its own on an error). */
static void on_raw_close_file(struct lws *wsi)
{
    host_node *n = wsi_node(wsi);
    if (n && wsi == n->listen_wsi) {
        if (!n->srv->stop)
            LOG_W(MOD, "node=%s listener closed", n->name);
        n->listen_wsi = NULL;
    }
}

/* The one protocol callback: one small handler per reason. */
static int ari_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                        void *in, size_t len)
{
    pss *ps = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(ps, wsi, in);
    case LWS_CALLBACK_HTTP_BODY:
        return on_body(ps ? ps->req : NULL, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return on_body_done(ps);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return ps ? on_http_writeable(ps, wsi) : 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (ps) {
            req_free(ps->req);
            ps->req = NULL;
        }
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* only WebSocket upgrades are ours to judge (h2c is lws's) */
        return in && !strcasecmp(in, "websocket") ? on_confirm_upgrade(wsi) : 0;
    case LWS_CALLBACK_ESTABLISHED:
        return on_ws_established(ps, wsi);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ps && ps->ws && !ps->ws->dead ? ws_writeable(ps->ws) : 0;
    case LWS_CALLBACK_CLOSED:
        on_ws_closed(ps);
        return 0;
    case LWS_CALLBACK_RAW_RX_FILE:
        return on_raw_rx_file(wsi);
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        on_raw_close_file(wsi);
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        conn_untrack(wsi);
        return 0;
    default:
        return 0;
    }
}

/* ---- lifecycle ------------------------------------------------------------ */

/* Node i: in the core, its vhost, its listener. */
static int node_setup(sim_server *srv, int i, char *err, size_t errlen)
{
    host_node *n = &srv->nodes[i];
    const sim_node_cfg *c = &srv->cfg.nodes[i];
    struct lws_context_creation_info vi;
    n->srv = srv;
    copy_trunc(n->name, sizeof n->name, c->name);
    if (c->asterisk_id[0])
        copy_trunc(n->asterisk_id, sizeof n->asterisk_id, c->asterisk_id);
    else
        snprintf(n->asterisk_id, sizeof n->asterisk_id, "02:fc:00:00:00:%02x", i + 1);
    n->port = c->port;
    n->index = sim_node_add(srv->core, n->name, n->asterisk_id);
    if (n->index < 0) {
        snprintf(err, errlen, "node %s: %s", n->name, ariq_strerror(n->index));
        return n->index;
    }
    memset(&vi, 0, sizeof vi);
    vi.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    vi.protocols = protocols;
    vi.vhost_name = n->name;
    vi.user = n;
    vi.keepalive_timeout = 15; /* Asterisk's session_keep_alive */
    vi.timeout_secs = 20;
    n->vh = lws_create_vhost(srv->ctx, &vi);
    if (!n->vh) {
        snprintf(err, errlen, "node %s: lws_create_vhost failed", n->name);
        return ARIQ_EIO;
    }
    srv->nnodes = i + 1;
    return node_listen(n, err, errlen);
}

/* True if the config names this peer itself (no default then). */
static bool peer_configured(const sim_server_cfg *c, const char *tp)
{
    for (int i = 0; i < c->npeers; i++)
        if (strcmp(c->peers[i].tech_peer, tp) == 0)
            return true;
    return false;
}

/* True if the config names this context on this node itself. */
static bool context_configured(const sim_server_cfg *c, const char *ctx, const char *node)
{
    for (int i = 0; i < c->ncontexts; i++)
        if (!strcmp(c->contexts[i].context, ctx) && !strcmp(c->contexts[i].node, node))
            return true;
    return false;
}

/* The index of a configured node name, or a negative error with a message. */
static int node_of(sim_server *srv, const char *name, char *err, size_t errlen)
{
    int idx = sim_node_find(srv->core, name);
    if (idx < 0)
        snprintf(err, errlen, "unknown node '%s'", name);
    return idx;
}

/* Peers and dialplan: the configured ones, then the defaults every node has. */
static int dialplan_setup(sim_server *srv, char *err, size_t errlen)
{
    const sim_server_cfg *c = &srv->cfg;
    char tp[64];
    int rc = 0;
    for (int i = 0; i < c->npeers && rc >= 0; i++) {
        rc = node_of(srv, c->peers[i].node, err, errlen);
        if (rc >= 0 && (rc = sim_peer_add(srv->core, c->peers[i].tech_peer, rc)) < 0)
            snprintf(err, errlen, "peer %s: %s", c->peers[i].tech_peer,
                     ariq_strerror(rc));
    }
    for (int i = 0; i < c->ncontexts && rc >= 0; i++) {
        const sim_context_cfg *x = &c->contexts[i];
        rc = node_of(srv, x->node, err, errlen);
        if (rc >= 0 &&
            (rc = sim_dialplan_add(srv->core, rc, x->context, x->app, x->args)) < 0)
            snprintf(err, errlen, "context %s@%s: %s", x->context, x->node,
                     ariq_strerror(rc));
    }
    for (int i = 0; i < srv->nnodes && rc >= 0; i++) {
        snprintf(tp, sizeof tp, "IAX2/%s", srv->nodes[i].name);
        if (!peer_configured(c, tp) && (rc = sim_peer_add(srv->core, tp, i)) < 0)
            snprintf(err, errlen, "peer %s: %s", tp, ariq_strerror(rc));
        if (rc >= 0 && !context_configured(c, "queue-link", srv->nodes[i].name) &&
            (rc = sim_dialplan_add(srv->core, i, "queue-link", "queue", "link,{exten}")) <
                0)
            snprintf(err, errlen, "context queue-link@%s: %s", srv->nodes[i].name,
                     ariq_strerror(rc));
    }
    return rc < 0 ? rc : 0;
}

/* The lws context: explicit vhosts, Asterisk's Server header, larger header
 * limits for long query strings. */
static int context_setup(sim_server *srv, char *err, size_t errlen)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.user = srv;
    info.server_string = ASTERISK_SERVER;
    info.max_http_header_data = 16384;
    info.max_http_header_pool = 256;
    info.pt_serv_buf_size = 65536;
    lws_set_log_level(LLL_ERR, NULL);
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        snprintf(err, errlen, "lws_create_context failed");
        return ARIQ_EIO;
    }
    return 0;
}

sim_server *sim_server_new(const sim_server_cfg *cfg, char *err, size_t errlen)
{
    sim_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->cfg = *cfg;
    sim_host host = {srv, host_now_ms, host_timer_add, host_timer_cancel, host_emit};
    if (context_setup(srv, err, errlen) != 0)
        goto fail;
    srv->core = sim_new(&host, cfg->scale);
    if (!srv->core) {
        snprintf(err, errlen, "sim_new failed (scale %g)", cfg->scale);
        goto fail;
    }
    for (int i = 0; i < cfg->nnodes; i++)
        if (node_setup(srv, i, err, errlen) != 0)
            goto fail;
    if (dialplan_setup(srv, err, errlen) != 0)
        goto fail;
    return srv;
fail:
    sim_server_free(srv);
    return NULL;
}

/* After lws_context_destroy: whatever lws did not close through a callback. */
static void node_forget(host_node *n)
{
    while (n->conns.head) {
        conn *c = lws_container_of(n->conns.head, conn, list);
        lws_dll2_remove(&c->list);
        free(c);
    }
    while (n->sessions.head) {
        ws_sess *ws = lws_container_of(n->sessions.head, ws_sess, list);
        lws_dll2_remove(&ws->list);
        ws_queue_free(ws);
        free(ws);
    }
}

void sim_server_free(sim_server *srv)
{
    if (!srv)
        return;
    srv->stop = 1; /* closing listeners from here on is expected */
    /* event sockets first, while the core still listens to detaches */
    for (int i = 0; i < srv->nnodes; i++)
        lws_start_foreach_dll(struct lws_dll2 *, d,
                              lws_dll2_get_head(&srv->nodes[i].sessions))
        {
            ws_detach(lws_container_of(d, ws_sess, list));
        }
    lws_end_foreach_dll(d);
    sim_free(srv->core); /* cancels its timers through host_timer_cancel */
    srv->core = NULL;
    while (srv->timers.head)
        host_timer_cancel(srv, lws_container_of(srv->timers.head, sim_timer, all));
    lws_sul_cancel(&srv->sul_imm);
    lws_sul_cancel(&srv->sul_deadline);
    for (int i = 0; i < srv->nnodes; i++)
        lws_sul_cancel(&srv->nodes[i].sul_down);
    if (srv->ctx)
        lws_context_destroy(srv->ctx); /* closes every socket; callbacks see core NULL */
    for (int i = 0; i < srv->nnodes; i++)
        node_forget(&srv->nodes[i]);
    free(srv);
}

int sim_server_ready_line(const sim_server *srv, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "asterisk-sim ready");
    for (int i = 0; i < srv->nnodes && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, " %s=%s:%d", srv->nodes[i].name,
                              srv->cfg.bind, srv->nodes[i].port);
    return o < len ? 0 : ARIQ_ERANGE;
}

/* --max-runtime is up: stop like SIGTERM. */
static void deadline_hit(lws_sorted_usec_list_t *sul)
{
    sim_server *srv = lws_container_of(sul, sim_server, sul_deadline);
    LOG_I(MOD, "max runtime reached, stopping");
    srv->stop = 1;
    lws_cancel_service(srv->ctx); /* poll() would sleep on otherwise */
}

int sim_server_run(sim_server *srv, unsigned max_runtime_s)
{
    if (max_runtime_s)
        lws_sul_schedule(srv->ctx, 0, &srv->sul_deadline, deadline_hit,
                         (lws_usec_t)max_runtime_s * LWS_US_PER_SEC);
    while (!srv->stop)
        if (lws_service(srv->ctx, 0) < 0) {
            LOG_E(MOD, "lws_service failed");
            return ARIQ_EIO;
        }
    lws_sul_cancel(&srv->sul_deadline);
    return 0;
}

void sim_server_request_stop(sim_server *srv)
{
    srv->stop = 1;
    if (srv->ctx)
        lws_cancel_service(srv->ctx);
}
