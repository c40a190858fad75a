/* harness.h - the fixture the store tests share: a loop kept turning by a
 * 5 ms tick, a store_config with short backoffs, the store under test with
 * counters for what its callbacks saw, bounded waits, and a capture of the
 * log lines.
 *
 * A test's own fixture holds an sfx as its first member, so that a hook
 * given the sfx can get back to it. Everything here is owned by the sfx. */
#ifndef ARIQ_TEST_STORE_HARNESS_H
#define ARIQ_TEST_STORE_HARNESS_H

#include <event2/event.h>
#include <stdbool.h>

#include "store/store.h"

typedef struct sfx {
    struct event_base *base;
    struct event *tick;
    store_config cfg;
    store *s; /* NULL until sfx_new_store, and after a test frees it */
    int ready, down;
    char down_reason[256];
    int replies, nulls; /* for the tests' own reply callbacks */
    void (*on_ready_hook)(struct sfx *x); /* run by sfx_on_ready, when set */
} sfx;

/* The loop, its tick and the config (backoff 50..400 ms, connect timeout
 * 2 s). */
void sfx_init(sfx *x);
/* Frees the store (when there is one), the tick and the loop, and puts the
 * log back as it was. Returns the number of events that were left on the
 * loop (0 when clean). */
int sfx_fini(sfx *x);

/* The callbacks sfx_new_store gives the store (ud = the sfx), for a test
 * making its own store. */
void sfx_on_ready(store *s, void *ud);
void sfx_on_down(store *s, const char *reason, void *ud);
/* For a test's reply callback: counts r in x->replies, or x->nulls when
 * NULL (the command failed). Returns whether there was a reply. */
bool sfx_count_reply(sfx *x, const redisReply *r);

/* store_new with x->cfg and the callbacks above; fails the test when it
 * fails. */
void sfx_new_store(sfx *x);

/* Runs the loop until *counter >= target or ms passed. */
bool sfx_wait(sfx *x, const int *counter, int target, int ms);
/* Runs the loop for ms. */
void sfx_run_for(sfx *x, int ms);

/* From now until sfx_fini every log line is kept (the first 4096); with
 * echo those at info and above go to stderr too. The level is the test's
 * to set. */
void sfx_log_capture(bool echo);
/* How many lines were kept so far. */
int sfx_lines_count(void);
/* Line i (borrowed, valid until sfx_fini), or NULL past the last. */
const char *sfx_line(int i);
/* Lines from index `from` on holding every one of the (up to 3) needles;
 * b and c may be NULL. */
int sfx_lines_matching(int from, const char *a, const char *b, const char *c);

#endif
