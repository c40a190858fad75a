/* ws_client.h - many WebSocket client connections for tests: one lws
 * client context on its own thread (as tests/support/sim_proc.c's event
 * collector does), every call here thread-safe and non-blocking except
 * wsc_wait.
 *
 * Messages the server sends as "m:<n>:..." are checked for order per
 * connection (n counts up from 0); every whole message is counted, and,
 * after wsc_keep_messages, kept for wsc_message (agentd's events feed). */
#ifndef ARIQ_TEST_WS_CLIENT_H
#define ARIQ_TEST_WS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#define WSC_MAX 256

typedef enum {
    WSC_CONNECTING,
    WSC_OPEN,
    WSC_CLOSED, /* was open */
    WSC_FAILED, /* never opened; wsc_http_status says why */
} wsc_state;

typedef struct wsc wsc;

/* tls: connect with TLS, accepting a self-signed certificate. */
wsc *wsc_new(bool tls);
void wsc_free(wsc *c);

/* Starts a connection to 127.0.0.1:port`path`; auth (may be NULL) goes as
 * the Authorization header. paused: never read the socket (a slow client).
 * Returns the connection's index, or -1. */
int wsc_connect(wsc *c, int port, const char *path, const char *auth, bool paused);

wsc_state wsc_get_state(wsc *c, int i);
int wsc_http_status(wsc *c, int i); /* the refused upgrade's status, or 0 */
size_t wsc_received(wsc *c, int i);
size_t wsc_order_errors(wsc *c, int i);
/* The last message received (copied into buf, truncated), "" if none. */
void wsc_last(wsc *c, int i, char *buf, size_t len);

/* From now on every whole message of every connection is kept (call it
 * before wsc_connect). */
void wsc_keep_messages(wsc *c);
/* Message k (0-based) of connection i copied into buf (truncated); false
 * if there is no such message (or messages are not kept). */
bool wsc_message(wsc *c, int i, size_t k, char *buf, size_t len);

int wsc_send(wsc *c, int i, const char *text); /* queued, sent in order */
void wsc_close(wsc *c, int i);                 /* a clean close from our side */

/* Waits until pred(c, arg) holds (checked every 5 ms), at most timeout_ms.
 * Returns true if it held. */
bool wsc_wait(wsc *c, bool (*pred)(wsc *c, void *arg), void *arg, int timeout_ms);

#endif
