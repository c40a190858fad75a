/* server.h - the HTTP + WebSocket server agentd serves its API on, delivering
 * whole requests and WebSocket messages to a libevent loop.
 *
 * One port (loopback by default), HTTP/1.1 routes and WebSocket endpoints on
 * it, TLS when a certificate is configured. A transport only: routing, auth
 * (bearer tokens) and JSON bodies are the owner's, on its loop. What this
 * layer answers itself, each with a JSON body {"error":"..."}:
 *   413 a body over max_body (the owner never sees the request),
 *   429 a peer address over its token bucket (rate_per_s, rate_burst),
 *   503 more than max_conns connections open (this one is closed after),
 *   411 a POST/PUT/PATCH without Content-Length,
 *   503 a WebSocket upgrade the loop did not decide on within 5 s.
 * Malformed HTTP is libwebsockets' to refuse (it closes the connection).
 *
 * Threads, as ari/stream.[ch]. Debian 12's libwebsockets 4.1.6 has no
 * libevent integration, so the server runs one lws context on its own
 * service thread, which only moves bytes: it collects a request (headers and
 * body) or a WebSocket message whole, puts it on a mutex-protected queue and
 * wakes the loop through an eventfd. Every owner callback runs on the loop.
 * Replies and sends go the other way: copied under the same mutex, then
 * lws_cancel_service() wakes the service thread, which writes them.
 *
 * One exception, by necessity: lws decides a WebSocket upgrade inside one
 * callback (it writes "101 Switching Protocols" as that callback returns), so
 * for an upgrade the service thread waits for the loop's on_ws_open verdict
 * (a condition variable; one loop turn, at most 5 s, released at once by
 * http_server_free). Other connections wait meanwhile; keep on_ws_open short.
 *
 * Ownership, in one place:
 *   http_req  YOURS from on_request until http_reply*(), which frees it, also
 *             when the client has gone (nothing is sent then). Reply exactly
 *             once. Strings read from it are BORROWED until the reply.
 *   http_ws   YOURS from an accepting on_ws_open until on_ws_close returns;
 *             every accepted socket gets exactly one on_ws_close, whoever
 *             closed it. After on_ws_close, w is gone.
 *   http_server_free() frees every request and socket still outstanding and
 *   calls nothing: after it, no http_req or http_ws pointer may be used (cancel
 *   your own timers that would reply first).
 *
 * Use:
 *
 *     static void on_req(http_server *s, http_req *r, void *ud) {
 *         route(ud, r);                 // table: method + path -> handler
 *     }                                 // each handler ends in http_reply
 *     http_server_cfg cfg = {.port = 8090, .on_request = on_req, .ud = app};
 *     http_server *s;
 *     char err[256];
 *     if (http_server_new(base, &cfg, &s, err, sizeof err) != 0) ...
 *     event_base_dispatch(base);
 *     http_server_free(s);
 */
#ifndef ARIQ_HTTP_SERVER_H
#define ARIQ_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

#define HTTP_SERVER_MAX_BODY      (64u * 1024)       /* default max_body */
#define HTTP_SERVER_MAX_HEADER    (16u * 1024)       /* default max_header */
#define HTTP_SERVER_MAX_CONNS     1024u              /* default max_conns */
#define HTTP_SERVER_WS_MAX_QUEUED (4u * 1024 * 1024) /* default ws_max_queued */
#define HTTP_SERVER_RATE          100.0              /* default rate_per_s */
#define HTTP_SERVER_BURST         200u               /* default rate_burst */

typedef struct http_server http_server;
typedef struct http_req http_req; /* one HTTP request, the owner's until it replies */
typedef struct http_ws http_ws;   /* one WebSocket connection */

/* A whole request (headers + body). `r` is YOURS: answer it with
 * http_reply*(), now or from a later loop turn. */
typedef void (*http_request_fn)(http_server *s, http_req *r, void *ud);
/* A WebSocket upgrade for `upgrade`'s path and query. Return true to accept
 * (w is YOURS until on_ws_close), or false to refuse with the HTTP status
 * in *refuse_status (401 preset; 404, 403 ... as you see fit) and an
 * {"error":...} body; w must not be kept then. `upgrade` is BORROWED for
 * the call (method GET, path, query, headers, peer; no body). */
typedef bool (*http_ws_open_fn)(http_server *s, http_ws *w, const http_req *upgrade,
                                int *refuse_status, void *ud);
/* One whole message (text or binary), `msg` BORROWED for the call and
 * NUL-terminated after len bytes. */
typedef void (*http_ws_message_fn)(http_server *s, http_ws *w, const char *msg,
                                   size_t len, void *ud);
/* The socket is closed (by the peer, by http_ws_close, as too slow, or by a
 * failed handshake): free what http_ws_data points to; w is gone after. */
typedef void (*http_ws_close_fn)(http_server *s, http_ws *w, void *ud);

typedef struct http_server_cfg {
    const char *bind; /* numeric IPv4/IPv6 address; NULL: "127.0.0.1"; copied */
    int port;         /* 0: an ephemeral port (http_server_port) */
    const char *cert_path, *key_path; /* both set: TLS (PEM files); else plain */
    size_t max_body;    /* 0: HTTP_SERVER_MAX_BODY; also the largest WS message */
    size_t max_header;  /* lws header buffer; 0: HTTP_SERVER_MAX_HEADER */
    unsigned max_conns; /* 0: HTTP_SERVER_MAX_CONNS */
    /* Token bucket per peer address over requests and upgrades. rate_per_s
     * 0 means HTTP_SERVER_RATE (burst HTTP_SERVER_BURST when rate_burst is
     * 0); a negative rate turns the limit off. */
    double rate_per_s;
    unsigned rate_burst;
    size_t ws_max_queued; /* bytes unsent on one socket before it is closed
                             as too slow; 0: HTTP_SERVER_WS_MAX_QUEUED. Also
                             the received bytes one socket may have waiting
                             for the loop before its reading pauses. */
    /* Header names (lowercase, e.g. "x-request-id") beyond the ones lws
     * knows (all common ones: authorization, content-type, origin, cookie,
     * user-agent, sec-websocket-protocol, x-forwarded-for ...) that
     * http_req_header() must see. NULL-terminated; BORROWED for the call. */
    const char *const *custom_headers;
    http_request_fn on_request;       /* required */
    http_ws_open_fn on_ws_open;       /* NULL: every upgrade gets 404 */
    http_ws_message_fn on_ws_message; /* may be NULL */
    http_ws_close_fn on_ws_close;     /* may be NULL */
    void *ud;                         /* passed to every callback */
} http_server_cfg;

typedef struct http_server_stats {
    uint64_t requests;        /* delivered to on_request */
    uint64_t replies;         /* http_reply* calls */
    uint64_t orphaned;        /* replies whose client had gone */
    uint64_t too_large;       /* 413 */
    uint64_t rate_limited;    /* 429 */
    uint64_t over_conns;      /* 503 for max_conns */
    uint64_t ws_opened;       /* accepted upgrades */
    uint64_t ws_refused;      /* refused by on_ws_open (or timed out) */
    uint64_t ws_slow_closed;  /* closed at ws_max_queued */
    uint64_t ws_messages_in;  /* delivered to on_ws_message */
    uint64_t ws_messages_out; /* accepted by http_ws_send */
} http_server_stats;

/* Binds, listens and starts the service thread. `base` is BORROWED and must
 * outlive the server; cfg and its strings are copied. Callbacks run only on
 * `base`'s thread from inside event_base_loop, never from inside this call.
 * Returns 0 and *out (YOURS: http_server_free), or ARIQ_EINVAL (bad cfg),
 * ARIQ_ENOMEM, ARIQ_EIO (bind, certificate, lws, thread), with a message in
 * err; on error nothing is left behind. */
int http_server_new(struct event_base *base, const http_server_cfg *cfg,
                    http_server **out, char *err, size_t errlen);

/* Stops the service thread, closes every connection and frees every request
 * and socket still outstanding; no callback runs after it returns. NULL is a
 * no-op. From inside one of this server's callbacks it only marks the
 * server, which is freed when the callback returns. */
void http_server_free(http_server *s);

/* The port listened on (the ephemeral one when cfg.port was 0). */
int http_server_port(const http_server *s);

/* Copies the counters. Call on the loop thread. */
void http_server_get_stats(const http_server *s, http_server_stats *out);

/* ---- a request: all strings BORROWED until the reply ---- */

const char *http_req_method(const http_req *r); /* "GET", "POST", ... */
const char *http_req_path(const http_req *r);   /* decoded, without the query */
/* The query without '?', rebuilt percent-encoded from lws's decoded
 * parameters (lws keeps no raw copy): equivalent to what the client sent,
 * not always byte-identical. "" when none. */
const char *http_req_query(const http_req *r);
/* The decoded value of query parameter `name` (first occurrence), "" for a
 * parameter without '=', NULL when absent. */
const char *http_req_param(const http_req *r, const char *name);
/* A request header by name, case-insensitive, or NULL (see custom_headers). */
const char *http_req_header(const http_req *r, const char *name);
/* The body (NUL-terminated after *len bytes; "" and 0 when none). */
const char *http_req_body(const http_req *r, size_t *len);
const char *http_req_peer(const http_req *r); /* "127.0.0.1", "::1" */

/* Answers and frees `r` (CONSUMED, whatever the result). `body` (len bytes,
 * may be NULL with len 0) and content_type are copied. extra_headers, for
 * http_reply_ex, is NULL or a NULL-terminated list of "Name: value" lines
 * (e.g. "WWW-Authenticate: Bearer"), BORROWED. Returns 0; ARIQ_ECLOSED when
 * the client had gone (nothing sent); ARIQ_EINVAL for a status outside
 * 100..599 (r freed, the client gets 500); ARIQ_ENOMEM. Loop thread only. */
int http_reply(http_req *r, int status, const char *content_type, const char *body,
               size_t len);
int http_reply_ex(http_req *r, int status, const char *content_type, const char *body,
                  size_t len, const char *const *extra_headers);
/* http_reply with application/json {"error":"<message>"} (escaped). */
int http_reply_error(http_req *r, int status, const char *message);

/* ---- a WebSocket ---- */

/* Queues one text message (copied), sent in order. Returns 0, ARIQ_EBUSY
 * when the socket would hold more than ws_max_queued unsent bytes (it is
 * being closed as too slow then; on_ws_close follows), ARIQ_ECLOSED when it
 * is closing or closed, ARIQ_ENOMEM. Loop thread only. */
int http_ws_send(http_ws *w, const char *text, size_t len);
/* Closes after what is queued has been sent (5 s at most) with close code
 * `code` (1000 normal) and `reason` (copied, up to 120 bytes, may be NULL).
 * on_ws_close follows from the loop. Loop thread only; idempotent. */
void http_ws_close(http_ws *w, int code, const char *reason);
void *http_ws_data(const http_ws *w);
void http_ws_set_data(http_ws *w, void *p); /* the owner's pointer; not freed here */
const char *http_ws_peer(const http_ws *w); /* BORROWED while w lives */

#endif
