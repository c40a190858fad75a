/* fake_ari.h - a scripted ARI events WebSocket server for the stream tests.
 *
 * A libwebsockets server on its own thread, on 127.0.0.1:port. Every
 * connection to /ari/events gets the same script of frames, in order, each
 * frame a whole message or one fragment of one; then it idles. The test can
 * drop the current connection. Connections whose api_key (or Basic
 * Authorization) does not match are refused at the upgrade. It checks what
 * the simulator may not: fragmented and oversized messages, malformed JSON,
 * the exact query and header the client sent. */
#ifndef ARIQ_TEST_FAKE_ARI_H
#define ARIQ_TEST_FAKE_ARI_H

#include <stdbool.h>
#include <stddef.h>

typedef struct fake_ari fake_ari;

typedef struct fake_frame {
    const char *data; /* borrowed; must outlive the server */
    size_t len;
    bool fin;          /* last fragment of its message */
    bool continuation; /* a later fragment of a message */
} fake_frame;

/* Starts the server on `port`, expecting api_key "user:pass" or a Basic
 * header for it. `frames` is borrowed for the server's lifetime. Returns
 * NULL on failure. */
fake_ari *fake_ari_start(int port, const char *user, const char *pass,
                         const fake_frame *frames, int nframes);
/* Stops the thread and frees everything. NULL is a no-op. */
void fake_ari_stop(fake_ari *f);

/* When set, every connection is closed as soon as its script is sent. */
void fake_ari_set_hangup_after_script(fake_ari *f, bool on);

/* Closes the current connection (as Asterisk restarting would). */
void fake_ari_drop(fake_ari *f);

/* Stops / restarts servicing sockets: the peer looks alive to TCP but
 * answers nothing, not even a PING (a hung Asterisk, a black-holed link). */
void fake_ari_freeze(fake_ari *f, bool frozen);

/* Counters and what the last upgrade request carried (copied into buf). */
int fake_ari_connections(fake_ari *f);
int fake_ari_refused(fake_ari *f);
int fake_ari_frames_sent(fake_ari *f);
void fake_ari_last_app(fake_ari *f, char *buf, size_t len);
void fake_ari_last_auth(fake_ari *f, char *buf, size_t len);
void fake_ari_last_path(fake_ari *f, char *buf, size_t len); /* without the query */

#endif
