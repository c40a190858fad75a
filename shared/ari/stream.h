/* stream.h - the ARI events WebSocket, delivering typed events to a libevent
 * loop.
 *
 * Connects to ws://HOST:PORT[/PREFIX]/ari/events?app=APP (credentials as
 * api_key=USER:PASS in the query, or an Authorization: Basic header), keeps
 * reconnecting with exponential backoff and jitter (100 ms doubling to 5 s,
 * ±20 %; back to 100 ms only after a connection that held for 5 s, so a
 * server that accepts and drops at once is not hammered), and hands each message,
 * parsed by ari_event_parse(), to the owner on the owner's event_base.
 *
 * Threads. Debian 12's libwebsockets 4.1.6 is built without its libevent
 * plugin and without external poll (lws_config.h: LWS_WITH_LIBEVENT and
 * LWS_WITH_EXTERNAL_POLL undefined), so it cannot share the owner's loop.
 * Each stream runs one lws context on its own service thread. That thread
 * only reassembles whole messages (bounded by ARI_EVENT_MAX_MSG) and moves
 * them, and connection news, into a mutex-protected queue, then wakes the
 * loop through an eventfd the loop watches. Parsing, logging of bad
 * messages, the backoff timer and every owner callback run on the loop
 * thread. No evthread_use_pthreads() is needed: the other thread never
 * touches the event_base.
 *
 * Backpressure: when the loop falls behind by more than ARI_STREAM_MAX_QUEUED
 * bytes (cfg.max_queued_bytes), the service thread stops reading the socket until the
 * loop has drained the queue, so memory stays bounded and no event is dropped.
 *
 * Passwords are never logged; the URL in logs has no api_key. lws resolves
 * the host with a blocking getaddrinfo: on the service thread, never the loop.
 *
 * Use:
 *
 *     static void on_ev(ari_stream *s, const ari_event *ev, void *ud) {
 *         handlers[ev->type](ud, ev);        // dispatch by table, ev borrowed
 *     }
 *     ari_stream_cfg cfg = {.host = "127.0.0.1", .port = 8088, .app = "queue",
 *                           .user = "ari", .password = pw, .on_event = on_ev,
 *                           .on_connected = reconcile, .ud = node};
 *     ari_stream *s;
 *     if (ari_stream_new(base, &cfg, &s) != 0) ...   // no callback has run
 *     event_base_dispatch(base);
 *     ari_stream_free(s);
 *
 * Unit tests of a leg need no stream: ari_event_parse() a sample and call
 * the handler. */
#ifndef ARIQ_ARI_STREAM_H
#define ARIQ_ARI_STREAM_H

#include "ari/event.h"

#include <stdbool.h>
#include <stdint.h>

struct event_base;

#define ARI_STREAM_MAX_QUEUED (16u * 1024 * 1024) /* bytes waiting for the loop */

typedef struct ari_stream ari_stream;

/* One event. `ev` is BORROWED for the call: copy what you keep. Unknown
 * types (ARI_EV_UNKNOWN) are not delivered unless deliver_unknown is set. */
typedef void (*ari_stream_event_fn)(ari_stream *s, const ari_event *ev, void *ud);
/* The WebSocket is up: after the first connection and after every reconnect.
 * Events may have been missed while it was down: reconcile now (list
 * channels over REST). */
typedef void (*ari_stream_connected_fn)(ari_stream *s, void *ud);
/* The WebSocket went down, or a connection attempt failed. `reason` is
 * BORROWED for the call ("connection refused", "HTTP 401 unauthorized: check
 * the ARI user and password", "closed by peer"). The stream retries by
 * itself; called once per failed attempt or lost connection. */
typedef void (*ari_stream_disconnected_fn)(ari_stream *s, const char *reason, void *ud);

typedef struct ari_stream_cfg {
    /* Where: either url, the same base URL the REST client takes
     * ("http://127.0.0.1:8088", or with a prefix from http.conf:
     * "http://h:8088/asterisk"; "/ari/events" is appended; ws:// works too;
     * no credentials in it; https/wss are refused: no TLS), or host + port. */
    const char *url;         /* copied; when set, host and port are ignored */
    const char *host;        /* "127.0.0.1"; copied */
    int port;                /* 1..65535 */
    const char *app;         /* Stasis application name; copied, URL-escaped */
    const char *user;        /* ARI user; copied */
    const char *password;    /* copied; never logged */
    bool basic_auth;         /* send an Authorization header instead of api_key */
    bool subscribe_all;      /* adds subscribeAll=true */
    bool deliver_unknown;    /* also pass ARI_EV_UNKNOWN events to on_event */
    unsigned backoff_min_ms; /* first retry delay; 0 means 100 */
    unsigned backoff_max_ms; /* cap (at most an hour); 0 means 5000 */
    /* A connection idle this long gets a WebSocket PING; with no answer
     * after twice as long it is closed and retried, so a peer that vanished
     * without a FIN (cable, NAT timeout) is noticed. 0 means 20 s. */
    unsigned ping_interval_s;
    size_t max_queued_bytes; /* backpressure threshold; 0 means ARI_STREAM_MAX_QUEUED */
    ari_stream_event_fn on_event;               /* required */
    ari_stream_connected_fn on_connected;       /* may be NULL */
    ari_stream_disconnected_fn on_disconnected; /* may be NULL */
    void *ud;                                   /* passed to every callback */
} ari_stream_cfg;

typedef struct ari_stream_stats {
    uint64_t messages;         /* whole messages received */
    uint64_t events;           /* delivered to on_event */
    uint64_t unknown;          /* well-formed, type ariq does not handle; skipped */
    uint64_t parse_errors;     /* malformed or oversized; logged and dropped */
    uint64_t connects;         /* successful connections */
    uint64_t reconnects;       /* connections after the first */
    uint64_t failures;         /* failed attempts and lost connections */
    uint64_t rx_pauses;        /* times reading stopped because the loop fell behind */
    uint64_t queue_peak_bytes; /* most bytes ever waiting for the loop */
} ari_stream_stats;

/* Creates the stream and starts connecting at once. `base` is BORROWED and
 * must outlive the stream; cfg and its strings are copied. Callbacks run
 * only on `base`'s thread, from inside event_base_loop, never from inside
 * ari_stream_new. Returns 0 and *out (YOURS: ari_stream_free), or
 * ARIQ_EINVAL (bad cfg), ARIQ_ENOMEM, ARIQ_EIO (lws context, thread or
 * eventfd could not be created); on error nothing is left behind. */
int ari_stream_new(struct event_base *base, const ari_stream_cfg *cfg, ari_stream **out);

/* Stops the service thread (lws_cancel_service + join), closes the socket
 * and frees everything; no callback runs after it returns. NULL is a no-op.
 * Called from inside one of this stream's callbacks it only marks the stream
 * and the free happens when the callback returns. */
void ari_stream_free(ari_stream *s);

/* Holds back delivery (hold true): events and connection news wait in the
 * queue, in order, until released (hold false), when they are delivered
 * from the loop (never from inside this call). The queue stays bounded as
 * always: past max_queued_bytes the socket is not read, nothing is dropped.
 * For a node that must see the whole state (GET /channels) before acting on
 * the events that follow it. Call on the loop thread; safe from a callback. */
void ari_stream_hold(ari_stream *s, bool hold);

/* True between on_connected and the next on_disconnected. */
bool ari_stream_is_connected(const ari_stream *s);

/* Copies the counters (for metrics). Call on the loop thread. */
void ari_stream_get_stats(const ari_stream *s, ari_stream_stats *out);

#endif
