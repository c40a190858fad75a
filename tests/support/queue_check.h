/* queue_check.h - a checker over what a queue run left behind: the Redis
 * events stream (redis-schema/SCHEMA.md "The events stream"), what Redis
 * still holds, and the simulator's oracle. For integration tests of queued.
 *
 * What qc_check() proves over a stream read with qc_stream_load():
 *   - every caller ends exactly one way: for each ENTERQUEUE (callid, queue)
 *     exactly one of ABANDON, EXITWITHTIMEOUT, WITHDRAW, or CONNECT followed
 *     by exactly one COMPLETECALLER / COMPLETEAGENT in that queue; nothing
 *     for a (callid, queue) that never entered, nothing after its end;
 *   - every PAIRED has exactly one UNPAIRED after it, and between the two
 *     neither its caller nor its agent is in any other pairing; a CONNECT
 *     names a live pairing and its agent's channel;
 *   - order: when a pairing is made for a queue, its caller is the lowest
 *     (priority desc, arrival asc) among the callers waiting in that queue
 *     at that moment (arrival = ENTERQUEUE order in the stream, which is the
 *     global seq order; priorities come from the test, which placed the
 *     calls). The waiting sets are rebuilt from the stream: ENTERQUEUE adds,
 *     PAIRED takes the caller out of all its queues, an UNPAIRED of a pairing
 *     that never got its CONNECT puts a caller that has not ended back,
 *     ABANDON / EXITWITHTIMEOUT / WITHDRAW take it out of that queue. Each
 *     ENTERQUEUE's `position` is checked against the rebuilt set too.
 * With `final`, every ENTERQUEUE must have its end and every PAIRED its
 * UNPAIRED (everybody has hung up).
 *
 * Everything here is blocking test code; failures are reported as text. */
#ifndef ARIQ_TEST_QUEUE_CHECK_H
#define ARIQ_TEST_QUEUE_CHECK_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "sim_proc.h"

/* One stream entry; the strings are owned by the stream ("" when absent). */
typedef struct qc_event {
    char id[32];
    char event[24];
    char queue[72];
    char callid[136];
    char agent[72];
    char pairing[136];
    char reason[32];
    char peer[136];  /* CONNECT: bridgedchanneluniqueid; PAIRED: agent_channel */
    long position;   /* ENTERQUEUE / ABANDON / WITHDRAW: position, else -1 */
    long long ts_ms; /* the op's wall clock */
} qc_event;

typedef struct qc_stream qc_stream;

/* Reads the whole stream `{ns}:events` (ns NULL: "ariq") with XRANGE pages.
 * Returns a stream you own (qc_stream_free), or NULL on a Redis error. */
qc_stream *qc_stream_load(redisContext *rc, const char *ns);
void qc_stream_free(qc_stream *s);
size_t qc_stream_len(const qc_stream *s);
/* Borrowed from s; NULL past the end. */
const qc_event *qc_stream_at(const qc_stream *s, size_t i);
/* Entries whose event is `type`. */
int qc_stream_count(const qc_stream *s, const char *type);
/* Prints every entry naming callid, in stream order (a failure's history). */
void qc_stream_history(const qc_stream *s, const char *callid, FILE *out);

typedef struct qc_opts {
    bool final;
    /* Priority (0..1000) the test gave this caller, or -1 when unknown
     * (then the order is not checked for pairings that involve it). NULL:
     * order not checked. */
    int (*priority_of)(const char *callid, void *ud);
    void *ud;
} qc_opts;

typedef struct qc_stats {
    int enters, connects, completes, abandons, timeouts, withdraws;
    int paired, unpaired, order_checked;
    int max_waiting; /* most callers waiting in one queue at once */
} qc_stats;

/* Runs every check above over s. Returns 0, or -1 with the first violation
 * (and the stream ids involved) in err. `st` (may be NULL) gets the counts. */
int qc_check(const qc_stream *s, const qc_opts *o, qc_stats *st, char *err,
             size_t errlen);

/* Redis holds nothing of any party: only {ns}:seq, {ns}:events,
 * {ns}:recording:*, and the live nodes' own keys ({ns}:nodes,
 * {ns}:node:<n>:heartbeat, {ns}:node:<n>:cmds). Returns 0, or -1 naming a
 * key left. */
int qc_redis_clean(redisContext *rc, const char *ns, char *err, size_t errlen);

/* The simulator holds no live channel, no playback, no live recording and no
 * mixing bridge (holding bridges are reused and may stay). Polls up to
 * timeout_ms. Returns 0, or -1 with what is left in err. With
 * QC_ALLOW_EMPTY_MIXING in flags, mixing bridges with no channel are not
 * counted: only for a test that must pass while a known leak of empty
 * mixing bridges is open (say so where it is used). */
#define QC_ALLOW_EMPTY_MIXING 1u
int qc_sim_wait_clean(const sim_proc *sim, int node, int timeout_ms, unsigned flags,
                      char *err, size_t errlen);

/* The oracle's timelines of a and b show a moment when both were in the
 * same mixing bridge and neither had hung up. 1 yes, 0 no, -1 on error. */
int qc_oracle_were_connected(const sim_proc *sim, int node, const char *a, const char *b);

/* Every recording the simulator made is finished (state done, stored or
 * discarded), and Redis's record agrees: `stored` for a stored one,
 * `discarded` for one discarded live or deleted after it was stored; and every recording record in Redis
 * names a recording the simulator made. Returns 0, or -1 with the first
 * disagreement. *nstored / *ndiscarded (may be NULL) get the counts. */
int qc_recordings_agree(const sim_proc *sim, int node, redisContext *rc, const char *ns,
                        int *nstored, int *ndiscarded, char *err, size_t errlen);

#endif
