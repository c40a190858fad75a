/* events.h - GET /api/v1/events: the {NS}:events stream as a WebSocket
 * feed, live, with resume.
 *
 * Each stream entry goes out as one JSON text message
 *     {"id":"<stream id>","event":"CONNECT","ts_ms":"...","queue":"...",...}
 * with every field of the entry, as strings, in the entry's order.
 *
 * Live: one reader on a Redis connection of its own (XREAD BLOCK, as
 * queued/cluster.c reads its command stream) delivers each new entry once;
 * it is formatted once and sent to every live client. The reader's position
 * F (the last id it fanned out) survives reconnects, so the feed has no gap
 * across a Redis blip (unless the stream's cap trimmed past F meanwhile).
 *
 * Resume: `?from=<id>` (or `from=0`: the whole retained stream) first sends
 * the entries after that id with XRANGE pages on the command connection,
 * then joins the live feed. The seam: a client catching up is skipped by
 * the fan-out; it pages until its position reaches F, then goes live, and
 * from then on the fan-out sends it only ids above its position. Entries
 * that arrived while it caught up are in a later page (they are in Redis
 * before the reader hands them out), so none is missed and none is sent
 * twice. If `from` is older than the stream's first retained entry (or
 * than XINFO STREAM's max-deleted-entry-id), the first message is
 *     {"event":"GAP","from":"<from>","first":"<first retained id>"}.
 * Without `from` a client starts at F (what comes from now on).
 *
 * A client whose send queue is full (http_ws_send EBUSY) is closed by the
 * server; the others are unaffected. A catch-up page that fails (Redis
 * away) closes the client with 1011: it reconnects with its last id. */
#ifndef ARIQ_AGENTD_EVENTS_H
#define ARIQ_AGENTD_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "http/server.h"
#include "store/store.h"

struct event_base;
typedef struct events events;

/* Creates the feed: `cmd` (borrowed; the daemon's command store, used for
 * catch-up pages) and a reader connection of its own made from `sc`
 * (copied). Returns 0 and *out (yours: events_free) or a negative code
 * with a message in err. No callback runs inside. */
int events_new(struct event_base *base, store *cmd, const store_config *sc, events **out,
               char *err, size_t errlen);

/* Forgets every client (call it after http_server_free, which closes the
 * sockets without on_ws_close) and closes the reader. Free `cmd` after it:
 * a page in flight completes into nothing then. NULL does nothing. */
void events_free(events *e);

/* on_ws_open for the events path (auth already checked): validates the
 * query (from; access_token, which api.c checked), and accepts (true: w
 * is the feed's until events_closed) or refuses with *status 400. */
bool events_open(events *e, http_ws *w, const http_req *upgrade, int *status);

/* on_ws_close for a socket events_open accepted. */
void events_closed(events *e, http_ws *w);

typedef struct events_stats {
    bool reading;        /* the reader's position is known and it is connected */
    char position[48];   /* F: the last id fanned out ("" before the start) */
    unsigned clients;    /* open feeds */
    uint64_t entries;    /* entries read live */
    uint64_t sent;       /* messages sent, catch-up included */
    uint64_t slow_closed;/* clients closed as too slow */
    uint64_t gaps;       /* GAP messages sent */
} events_stats;
void events_get_stats(const events *e, events_stats *out);

/* An in-process follower (the read model): fn gets every entry the reader
 * fans out, in stream order, with its id and its [k1, v1, ...] fields
 * (both borrowed for the call), whether or not a WebSocket client is
 * there. Entries up to the reader's start position are not fanned out:
 * read them with XRANGE, and count on fn only for pages sent once
 * events_following() is true. One follower per feed; fn NULL removes it. */
typedef void (*events_entry_fn)(const char *id, const redisReply *fields, void *ud);
void events_follow(events *e, events_entry_fn fn, void *ud);
/* True once the reader's start position is known: every entry added after
 * a command sent from now on is fanned out. */
bool events_following(const events *e);

/* A stream id "ms" or "ms-seq" (decimal, each fitting 64 bits) into *ms,
 * *seq. Returns 0 or ARIQ_EINVAL. */
int events_parse_id(const char *s, uint64_t *ms, uint64_t *seq);

#endif
