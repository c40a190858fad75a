/* queue_log.h - one Asterisk-format queue_log for the whole cluster.
 *
 * Every queue event of every queued node is an entry of the Redis stream
 * `{NS}:events` (redis-schema/SCHEMA.md, "The events stream"). This module
 * turns them into the file Asterisk's app_queue writes, line for line, so
 * that QueueMetrics, Asternic, qpanel and the like read it unchanged:
 *
 *     TIME|CALLID|QUEUE|AGENT|EVENT|DATA...      (main/logger.c ast_queue_log)
 *
 * Three layers, each usable alone:
 *
 *   - the formatter (queue_log_format): one stream entry -> zero or more
 *     lines. Pure: no I/O, no state but what its caller passes in.
 *   - the file (qlog_file_*): append, fsync, reopen (logrotate).
 *   - the writer (queue_log_*): a component on the daemon's libevent loop
 *     and its store. It reads the stream in order from the last entry
 *     written, appends, fsyncs, then records its position in Redis, and
 *     writes each event exactly once even with several agentd running and
 *     across crashes (see queue_log_new and SCHEMA.md `{NS}:queuelog:*`).
 *
 * The app_queue format of every event is in SCHEMA.md's events table; the
 * formatter follows Asterisk 22's apps/app_queue.c ast_queue_log calls. */
#ifndef ARIQ_AGENTD_QUEUE_LOG_H
#define ARIQ_AGENTD_QUEUE_LOG_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;

/* ---- the formatter ---------------------------------------------------------------- */

/* app_queue writes at most 8191 bytes per line (logger.c qlog_msg[8192]);
 * so does the formatter (a longer line is cut there, as Asterisk does). */
#define QLOG_LINE_MAX 8191

/* Who an agent is to the reporting tool. ariq's agent logs in with one
 * channel into several queues, which app_queue reports either way:
 *   MEMBER: ADDMEMBER / REMOVEMEMBER once per queue, as AddQueueMember /
 *           RemoveQueueMember run from the agent's channel write them
 *           (callid = the agent's channel id, data "" ).
 *   AGENT:  AGENTLOGIN / AGENTLOGOFF once, queue NONE, as app_queue's
 *           queue_agent_cb writes them for app_agent_pool's AgentLogin.
 *   BOTH:   both sets, AGENTLOGIN before the ADDMEMBERs, REMOVEMEMBERs before
 *           AGENTLOGOFF. */
typedef enum {
    QLOG_AGENTS_MEMBER = 0,
    QLOG_AGENTS_AGENT,
    QLOG_AGENTS_BOTH,
} qlog_agent_mode;

typedef struct qlog_format_opts {
    /* queues.conf [general] log_caller_id_name: ENTERQUEUE carries the
     * caller id name as a 4th data field. Default 0, as in Asterisk. */
    int log_caller_id_name;
    qlog_agent_mode agents;
} qlog_format_opts;

/* One stream entry as XRANGE/XREAD give it: field/value pairs, borrowed. */
typedef struct qlog_field {
    const char *name;
    const char *value;
} qlog_field;

/* A growable byte buffer the formatter appends lines to. Zero-initialise;
 * release with qlog_buf_free. */
typedef struct qlog_buf {
    char *s;
    size_t len, cap;
} qlog_buf;

void qlog_buf_free(qlog_buf *b);

/* Appends the queue_log lines of one entry (fields f[0..n), borrowed) to
 * `out`, each ending in '\n'. `agent_queues` is the `&`-joined queues of
 * the entry's agent when the event is AGENTLOGOFF (the stream entry does
 * not carry them; the writer remembers them from AGENTLOGIN), else ignored;
 * NULL when unknown. o NULL means the defaults.
 *
 * Returns the number of lines appended: 0 for ariq's own events that have
 * no app_queue line (PAIRED, UNPAIRED, NODEDRAIN, RESTORE) and for an
 * unknown event; ARIQ_EINVAL for a malformed entry (a missing field, a bad
 * ts_ms), ARIQ_ENOMEM; on error `out` is as it was and `why` (whylen bytes)
 * says what was wrong. A value holding '|', a newline or another control
 * character has each such byte written '_' (app_queue's log_caller_id_name
 * rule, applied to every field so a value can never forge a field or a
 * line); `why` then names the field and the return is still the count. */
int queue_log_format(const qlog_field *f, size_t n, const qlog_format_opts *o,
                     const char *agent_queues, qlog_buf *out, char *why, size_t whylen);

/* The value of field `name` in f[0..n), or NULL. Borrowed from f. */
const char *qlog_field_get(const qlog_field *f, size_t n, const char *name);

/* ---- the file --------------------------------------------------------------------- */

typedef struct qlog_file qlog_file;

/* Opens (creates, mode 0640) `path` for appending. path is copied. Returns
 * 0 and *out (yours: qlog_file_free), or ARIQ_EIO / ARIQ_ENOMEM with a
 * message in err. */
int qlog_file_open(const char *path, qlog_file **out, char *err, size_t errlen);

/* Closes f. NULL does nothing. */
void qlog_file_free(qlog_file *f);

/* Writes all of data[0..len) at the end of the file (retrying short
 * writes), then fsyncs. Returns 0 or ARIQ_EIO with the reason logged and
 * kept (qlog_file_errmsg). On error, the bytes that did reach the file may
 * be a partial line: qlog_file_cut_partial removes it. */
int qlog_file_append_sync(qlog_file *f, const char *data, size_t len);

/* Closes and opens the path again (after logrotate renamed it). On failure
 * the old descriptor is kept, so nothing is lost; returns ARIQ_EIO. */
int qlog_file_reopen(qlog_file *f);

/* Inode and size of the open file. Returns 0 or ARIQ_EIO. */
int qlog_file_stat(qlog_file *f, uint64_t *ino, uint64_t *size);

/* If the file does not end with '\n', truncates it after its last '\n'
 * (a line an interrupted write left half written) and fsyncs. Returns the
 * number of bytes cut (>= 0) or ARIQ_EIO. */
long qlog_file_cut_partial(qlog_file *f);

/* Reads bytes [from, end of file) into *out (malloc'd, NUL-terminated,
 * yours), at most max bytes: ARIQ_ERANGE if there are more. Returns the
 * length or a negative code. */
long qlog_file_read_from(qlog_file *f, uint64_t from, size_t max, char **out);

/* The last error, borrowed. Never NULL. */
const char *qlog_file_errmsg(const qlog_file *f);

/* ---- the writer ------------------------------------------------------------------- */

#define QLOG_OWNER_MAX 128
#define QLOG_PATH_MAX 1024

typedef struct queue_log_config {
    char path[QLOG_PATH_MAX];    /* the queue_log file; required */
    /* This process's id in the lease, [A-Za-z0-9._:-]; "" = host:pid:random */
    char owner[QLOG_OWNER_MAX];
    int lease_ms;   /* lease TTL, renewed at each batch and at lease_ms/3; 10000 */
    int poll_ms;    /* idle read interval, and standby retry; default 100 */
    int batch;      /* stream entries per read and per fsync; default 256 */
    qlog_format_opts fmt;
} queue_log_config;

/* Sets the defaults above (path ""). */
void queue_log_config_init(queue_log_config *c);

typedef struct queue_log queue_log;

/* Counters for tests and metrics. */
typedef struct queue_log_stats {
    uint64_t entries;      /* stream entries consumed */
    uint64_t lines;        /* lines written */
    uint64_t skipped_lines;/* lines found already in the file (crash recovery) */
    uint64_t batches;      /* fsynced batches committed */
    uint64_t bad_entries;  /* malformed entries logged and passed over */
    uint64_t acquired;     /* times this process took the lease */
    uint64_t lost;         /* times it found the lease taken from it */
    uint64_t io_errors;
    int leader;            /* 1 while it holds the lease */
    char pos[64];          /* the last entry id committed ("" before any) */
} queue_log_stats;

/* Test hook: called after a batch was written and fsynced and before its
 * position is sent to Redis. Returning nonzero stops the writer right
 * there, as a crash would (nothing more is written or committed; the lease
 * is left to lapse). */
typedef int (*queue_log_crash_hook)(queue_log *q, void *ud);

/* Creates the writer on `base` and `s` (both borrowed: they must outlive
 * it; free the writer before the store). cfg is copied. Opens the file at
 * once (an unwritable path is an error here, not later) and arms a timer;
 * nothing is sent to Redis inside this call. Each tick, while the store is
 * ready, it takes the lease `{NS}:queuelog:lease` if free, and while it
 * holds the lease reads `{NS}:events` after `{NS}:queuelog:pos`, formats,
 * appends, fsyncs and commits the new position (which also renews the
 * lease). A process that does not hold the lease writes nothing. Writes
 * and fsyncs are the only blocking calls it makes on the loop: one batch
 * per tick at most.
 *
 * Returns 0 and *out (yours: queue_log_free), ARIQ_EINVAL (bad config,
 * message in err), ARIQ_EIO (the file cannot be opened) or ARIQ_ENOMEM. */
int queue_log_new(struct event_base *base, struct store *s, const queue_log_config *cfg,
                  queue_log **out, char *err, size_t errlen);

/* Stops: releases the lease when it holds one (so another agentd takes
 * over at once, not after lease_ms), closes the file. A command still in
 * flight completes into nothing. NULL does nothing. */
void queue_log_free(queue_log *q);

/* Reopens the file by its path: call it from the loop on SIGHUP after
 * logrotate renamed the file. Returns 0 or ARIQ_EIO (the old file is kept). */
int queue_log_reopen(queue_log *q);

void queue_log_get_stats(const queue_log *q, queue_log_stats *out);

/* Installs the test hook (NULL removes it). */
void queue_log_set_crash_hook(queue_log *q, queue_log_crash_hook fn, void *ud);

#endif
