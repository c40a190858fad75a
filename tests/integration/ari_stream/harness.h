/* harness.h - the owner side of an ari_stream in tests: callbacks that
 * record what arrived (and on which thread), captured logs, and a bounded
 * "run the loop until" helper. Single-threaded except the log capture. */
#ifndef ARIQ_TEST_STREAM_HARNESS_H
#define ARIQ_TEST_STREAM_HARNESS_H

#include "ari/stream.h"
#include "core/log.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define SEEN_MAX 64

typedef struct seen {
    struct event_base *base;
    ari_stream *stream;
    pthread_t loop_thread;
    bool wrong_thread; /* a callback ran off the loop thread */
    int connected, disconnected;
    int nevents;
    ari_event_type types[SEEN_MAX];
    int type_count[ARI_EV__COUNT];
    char chan_ids[SEEN_MAX][64]; /* channel id of each event ("" if none) */
    char first_arg[64], last_chan[64];
    char args[4][64]; /* of the last StasisStart */
    size_t nargs;
    char caller_number[64];
    ari_chan_state start_state;
    char digits[16];
    char reason[256];
    uint64_t t_down, t_up_again; /* first disconnect, the connect after it */
    uint64_t t_downs[16];        /* mono ms of the first 16 disconnects */
    bool free_in_event;          /* ari_stream_free from on_event */
} seen;

void on_event(ari_stream *s, const ari_event *ev, void *ud);
void on_connected(ari_stream *s, void *ud);
void on_disconnected(ari_stream *s, const char *reason, void *ud);

/* Log sink collecting every line; log_has() searches them. */
void log_capture(log_level lvl, const char *line, void *ud);
bool log_has(const char *needle);
void log_dump(void);

typedef bool (*cond_fn)(seen *w, void *arg);
/* Runs w->base until cond(w, arg) holds or timeout_ms pass. */
bool run_until(seen *w, cond_fn cond, void *arg, int timeout_ms);
bool n_events(seen *w, void *arg);       /* arg: int * */
bool n_connected(seen *w, void *arg);    /* arg: int * */
bool n_disconnected(seen *w, void *arg); /* arg: int * */
bool never(seen *w, void *arg);

/* A fresh event_base; the caller frees w->base. */
void seen_init(seen *w);
/* ari_stream_new on 127.0.0.1:port, app "queue", with the callbacks above. */
ari_stream *open_stream(seen *w, int port, const char *user, const char *pass,
                        bool basic);

#endif
