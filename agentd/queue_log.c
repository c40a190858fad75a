/* queue_log.c - the queue_log writer: the events stream -> the file, once.
 *
 * Exactly once, with any number of agentd and across crashes:
 *
 *   - One writer at a time: the lease `{NS}:queuelog:lease` (SET PX) holds
 *     the id of the agentd writing. It is taken when free, renewed by every
 *     commit (at least every lease_ms/3), released on a clean stop. A writer
 *     only writes a batch while its own clock says the lease it last renewed
 *     has more than a quarter of its TTL to run, so a writer that stalled
 *     (stopped process, lost Redis) does not write after another took over.
 *   - In order, nothing missed: it reads `XRANGE (pos + COUNT batch`, so
 *     each batch starts right after the last entry committed.
 *   - Write, fsync, then commit: the commit script sets `{NS}:queuelog:pos`
 *     (last id, and the file's inode and size after it) only if the lease
 *     is still ours. A crash between fsync and commit leaves lines in the
 *     file past the recorded size: whoever takes the lease next reads them
 *     back (the bytes after `size` in the same inode, or the whole file if
 *     it was rotated or truncated since), and does not write again the
 *     lines of the entries after pos that are already there, in order.
 *     A half-written last line (a crash inside write) is cut first.
 *
 * The state machine (STYLE habit 9):
 *
 *   STANDBY    --tick-->           ACQUIRING  (acquire script)
 *   ACQUIRING  --ours-->           IDLE       (pos, members loaded; file recovered)
 *   ACQUIRING  --taken/error-->    STANDBY
 *   IDLE       --tick, renew due-> COMMITTING (renew only)
 *   IDLE       --tick-->           READING    (XRANGE)
 *   READING    --no entries-->     IDLE
 *   READING    --entries-->        COMMITTING (written + fsynced first)
 *   READING    --lease too old, write error, reply lost--> STANDBY
 *   COMMITTING --ok-->             IDLE
 *   COMMITTING --lease lost/error--> STANDBY
 *   any        --crash hook-->     CRASHED    (tests: stops dead) */
#include "queue_log.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/strmap.h"
#include "store/store.h"

#define MOD "queue_log"
#define RECOVER_MAX (64u * 1024 * 1024) /* bytes read back after pos */
#define ID_MAX 64

typedef enum {
    QL_STANDBY,    /* no lease: try to take it at each tick */
    QL_ACQUIRING,  /* the acquire script is out */
    QL_IDLE,       /* lease held, position known; the next tick reads */
    QL_READING,    /* XRANGE is out */
    QL_COMMITTING, /* a batch is fsynced (or only a renewal due); commit is out */
    QL_CRASHED,    /* the test hook stopped it: nothing more happens */
    QL_STATE_COUNT
} ql_state;

static const char *const state_names[QL_STATE_COUNT] = {
    "STANDBY", "ACQUIRING", "IDLE", "READING", "COMMITTING", "CRASHED",
};

/* Lease, position and members, atomically. KEYS lease pos members;
 * ARGV owner ttl. Returns {1, id, ino, size, {agent, queues, ...}} when the
 * lease is (now) ours, {0} when another holds it. */
static const char ACQUIRE_LUA[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and v ~= ARGV[1] then return {0} end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "local p = redis.call('HMGET', KEYS[2], 'id', 'ino', 'size')\n"
    "return {1, p[1] or '', p[2] or '', p[3] or '', redis.call('HGETALL', KEYS[3])}\n";

/* Fenced commit. KEYS lease pos members; ARGV owner ttl id ino size, then
 * ops: `+ agent queues` or `- agent`. Returns 0 if the lease is not ours
 * (nothing changed), else renews it, records the position (when id is not
 * empty), applies the ops, and returns 1. */
static const char COMMIT_LUA[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "if ARGV[3] ~= '' then\n"
    "  redis.call('HSET', KEYS[2], 'id', ARGV[3], 'ino', ARGV[4], 'size', ARGV[5])\n"
    "end\n"
    "local i = 6\n"
    "while i <= #ARGV do\n"
    "  if ARGV[i] == '+' then redis.call('HSET', KEYS[3], ARGV[i+1], ARGV[i+2]); i = i + 3\n"
    "  else redis.call('HDEL', KEYS[3], ARGV[i+1]); i = i + 2 end\n"
    "end\n"
    "return 1\n";

static const char RELEASE_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

struct queue_log {
    struct event_base *base;
    store *s;
    queue_log_config cfg;
    qlog_file *file;
    struct event *tick;
    ql_state state;
    int inflight; /* a command of ours is out: its callback owns the next step */
    int closing;  /* queue_log_free ran while a command was out */
    char k_lease[STORE_KEY_MAX], k_pos[STORE_KEY_MAX], k_members[STORE_KEY_MAX],
        k_events[STORE_KEY_MAX];
    char pos[ID_MAX];     /* last entry committed, "" before any */
    char pending[ID_MAX]; /* last entry of the batch being committed */
    uint64_t lease_until; /* mono ms: the lease as of our last renewal */
    uint64_t renewed_at;  /* mono ms the last acquire/commit was sent */
    uint64_t sent_at;     /* mono ms the command out was sent */
    int full_batch;       /* the last read filled a batch: read again at once */
    strmap *members;      /* agent -> its queues (malloc'd string) */
    char **ops;           /* commit ops: "+", agent, queues / "-", agent */
    size_t nops, capops;
    char *expect_buf;     /* lines found in the file past pos, to match */
    char **expect;
    size_t nexpect, iexpect;
    queue_log_crash_hook hook;
    void *hook_ud;
    queue_log_stats st;
};

static void set_state(queue_log *q, ql_state to)
{
    if (q->state == to)
        return;
    LOG_D(MOD, "state %s -> %s", state_names[q->state], state_names[to]);
    q->state = to;
    q->st.leader = to == QL_IDLE || to == QL_READING || to == QL_COMMITTING;
}

void queue_log_config_init(queue_log_config *c)
{
    memset(c, 0, sizeof *c);
    c->lease_ms = 10000;
    c->poll_ms = 100;
    c->batch = 256;
}

static void free_member(const char *key, void *value, void *ud)
{
    (void)key;
    (void)ud;
    free(value);
}

static void clear_members(queue_log *q)
{
    strmap_each(q->members, free_member, NULL);
    strmap_free(q->members);
    q->members = strmap_new();
}

static void clear_ops(queue_log *q)
{
    for (size_t i = 0; i < q->nops; i++)
        free(q->ops[i]);
    q->nops = 0;
}

static void clear_expect(queue_log *q)
{
    free(q->expect_buf);
    free(q->expect);
    q->expect_buf = NULL;
    q->expect = NULL;
    q->nexpect = q->iexpect = 0;
}

static int push_op(queue_log *q, const char *v)
{
    if (q->nops == q->capops) {
        size_t cap = q->capops ? q->capops * 2 : 16;
        char **o = realloc(q->ops, cap * sizeof *o);
        if (!o)
            return ARIQ_ENOMEM;
        q->ops = o;
        q->capops = cap;
    }
    if (!(q->ops[q->nops] = strdup(v)))
        return ARIQ_ENOMEM;
    q->nops++;
    return 0;
}

/* Lost the lease, or cannot go on as writer now: forget what is not in
 * Redis; the next acquire loads it again and recovers the file. */
static void to_standby(queue_log *q)
{
    clear_ops(q);
    clear_expect(q);
    q->full_batch = 0;
    set_state(q, QL_STANDBY);
}

static void maybe_free(queue_log *q);

/* Sends EVAL script with the three queuelog keys and `nargs` args. */
static int eval3(queue_log *q, const char *script, int nargs, const char **args, store_cb cb)
{
    const char **argv = malloc((size_t)(6 + nargs) * sizeof *argv);
    if (!argv)
        return ARIQ_ENOMEM;
    int argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = script;
    argv[argc++] = "3";
    argv[argc++] = q->k_lease;
    argv[argc++] = q->k_pos;
    argv[argc++] = q->k_members;
    for (int i = 0; i < nargs; i++)
        argv[argc++] = args[i];
    int rc = store_command_argv(q->s, argc, argv, NULL, cb, q);
    free(argv);
    return rc;
}

/* Common head of every reply callback: the reply belongs to a writer that
 * may be closing. Returns 1 when the callback should go on. */
static int reply_begins(queue_log *q)
{
    q->inflight = 0;
    if (q->closing) {
        maybe_free(q);
        return 0;
    }
    return 1;
}

/* ---- acquire ----------------------------------------------------------------------- */

/* Splits buf in place into lines (without their '\n'). */
static int split_lines(queue_log *q, char *buf)
{
    size_t n = 0, cap = 0;
    for (char *p = buf; *p;) {
        char *nl = strchr(p, '\n');
        if (!nl)
            break; /* cut_partial ran: every line ends in '\n' */
        *nl = '\0';
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **e = realloc(q->expect, cap * sizeof *e);
            if (!e)
                return ARIQ_ENOMEM;
            q->expect = e;
        }
        q->expect[n++] = p;
        p = nl + 1;
    }
    q->nexpect = n;
    return 0;
}

/* The file after the recorded position: lines a writer fsynced and could
 * not commit. They are matched against what the entries after pos format
 * to (read_reply), so they are not written twice. */
static int recover_file(queue_log *q, const char *ino_s, const char *size_s)
{
    uint64_t ino = 0, size = 0, from = 0;
    if (qlog_file_cut_partial(q->file) < 0 || qlog_file_stat(q->file, &ino, &size) != 0)
        return ARIQ_EIO;
    if (*q->pos && *ino_s && *size_s && strtoull(ino_s, NULL, 10) == ino &&
        strtoull(size_s, NULL, 10) <= size)
        from = strtoull(size_s, NULL, 10);
    else if (*q->pos && size > 0)
        LOG_W(MOD, "msg=\"queue_log rotated or truncated since the last commit: matching the "
                   "whole file\" pos=%s",
              q->pos);
    char *buf = NULL;
    long n = qlog_file_read_from(q->file, from, RECOVER_MAX, &buf);
    if (n == ARIQ_ERANGE) {
        LOG_E(MOD, "msg=\"too much past the recorded position to match; writing on\" "
                   "from=%llu",
              (unsigned long long)from);
        return 0;
    }
    if (n < 0)
        return (int)n;
    clear_expect(q);
    q->expect_buf = buf;
    int rc = split_lines(q, buf);
    if (q->nexpect)
        LOG_I(MOD, "msg=\"lines past the recorded position, matched before writing\" lines=%zu "
                   "pos=%s",
              q->nexpect, *q->pos ? q->pos : "-");
    return rc;
}

static int load_members(queue_log *q, const redisReply *m)
{
    clear_members(q);
    if (!q->members)
        return ARIQ_ENOMEM;
    for (size_t i = 0; m && i + 1 < m->elements; i += 2) {
        char *v = strdup(m->element[i + 1]->str ? m->element[i + 1]->str : "");
        if (!v || strmap_put(q->members, m->element[i]->str, v) != 0) {
            free(v);
            return ARIQ_ENOMEM;
        }
    }
    return 0;
}

static const char *str_at(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return "";
    const redisReply *e = r->element[i];
    return (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) ? e->str : "";
}

static void acquire_reply(store *s, const redisReply *r, void *ud)
{
    (void)s;
    queue_log *q = ud;
    if (!reply_begins(q))
        return;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_INTEGER) {
        if (r && r->type == REDIS_REPLY_ERROR)
            LOG_E(MOD, "msg=\"acquire failed\" err=\"%s\"", r->str);
        set_state(q, QL_STANDBY);
        return;
    }
    if (r->element[0]->integer != 1 || r->elements < 5) {
        set_state(q, QL_STANDBY);
        return;
    }
    q->lease_until = q->sent_at + (uint64_t)q->cfg.lease_ms;
    q->renewed_at = q->sent_at;
    snprintf(q->pos, sizeof q->pos, "%s", str_at(r, 1));
    /* a standby's descriptor may name a file logrotate renamed long ago */
    if (qlog_file_reopen(q->file) != 0 || load_members(q, r->element[4]) != 0 ||
        recover_file(q, str_at(r, 2), str_at(r, 3)) != 0) {
        q->st.io_errors++;
        to_standby(q);
        return;
    }
    q->st.acquired++;
    snprintf(q->st.pos, sizeof q->st.pos, "%s", q->pos);
    LOG_I(MOD, "msg=\"writing the queue_log\" owner=%s pos=%s file=%s", q->cfg.owner,
          *q->pos ? q->pos : "-", q->cfg.path);
    set_state(q, QL_IDLE);
    event_active(q->tick, EV_TIMEOUT, 0);
}

static void send_acquire(queue_log *q)
{
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", q->cfg.lease_ms);
    const char *args[] = {q->cfg.owner, ttl};
    q->sent_at = clock_mono_ms();
    if (eval3(q, ACQUIRE_LUA, 2, args, acquire_reply) == 0) {
        q->inflight = 1;
        set_state(q, QL_ACQUIRING);
    }
}

/* ---- commit ------------------------------------------------------------------------ */

static void commit_reply(store *s, const redisReply *r, void *ud)
{
    (void)s;
    queue_log *q = ud;
    if (!reply_begins(q))
        return;
    if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        if (r && r->type == REDIS_REPLY_INTEGER) {
            q->st.lost++;
            LOG_W(MOD, "msg=\"the queue_log lease is another's now; standing by\" owner=%s",
                  q->cfg.owner);
        } else if (r && r->type == REDIS_REPLY_ERROR) {
            LOG_E(MOD, "msg=\"commit failed\" err=\"%s\"", r->str);
        }
        to_standby(q);
        return;
    }
    q->lease_until = q->sent_at + (uint64_t)q->cfg.lease_ms;
    q->renewed_at = q->sent_at;
    if (*q->pending) {
        snprintf(q->pos, sizeof q->pos, "%s", q->pending);
        snprintf(q->st.pos, sizeof q->st.pos, "%s", q->pos);
        q->pending[0] = '\0';
        q->st.batches++;
    }
    clear_ops(q);
    set_state(q, QL_IDLE);
    if (q->full_batch)
        event_active(q->tick, EV_TIMEOUT, 0);
}

/* Sends the commit: position `id` ("" = renew only) with the file's inode
 * and size, and the member ops gathered since the last one. */
static void send_commit(queue_log *q, const char *id)
{
    uint64_t ino = 0, size = 0;
    char ttl[16], ino_s[24], size_s[24];
    if (*id && qlog_file_stat(q->file, &ino, &size) != 0) {
        q->st.io_errors++;
        to_standby(q);
        return;
    }
    snprintf(ttl, sizeof ttl, "%d", q->cfg.lease_ms);
    snprintf(ino_s, sizeof ino_s, "%llu", (unsigned long long)ino);
    snprintf(size_s, sizeof size_s, "%llu", (unsigned long long)size);
    const char **args = malloc((5 + q->nops) * sizeof *args);
    if (!args) {
        to_standby(q);
        return;
    }
    args[0] = q->cfg.owner;
    args[1] = ttl;
    args[2] = id;
    args[3] = ino_s;
    args[4] = size_s;
    for (size_t i = 0; i < q->nops; i++)
        args[5 + i] = q->ops[i];
    snprintf(q->pending, sizeof q->pending, "%s", id);
    q->sent_at = clock_mono_ms();
    int rc = eval3(q, COMMIT_LUA, (int)(5 + q->nops), args, commit_reply);
    free(args);
    if (rc != 0) {
        to_standby(q);
        return;
    }
    q->inflight = 1;
    set_state(q, QL_COMMITTING);
}

/* ---- read, format, write ----------------------------------------------------------- */

/* Members bookkeeping for REMOVEMEMBER, and the queues the formatter needs
 * for this entry (borrowed from the map; freed by the caller after use via
 * *drop). */
static int track_members(queue_log *q, const qlog_field *f, size_t n, const char **queues,
                         char **drop)
{
    const char *ev = qlog_field_get(f, n, "event"), *agent = qlog_field_get(f, n, "agent");
    *queues = NULL;
    *drop = NULL;
    if (!ev || !agent)
        return 0;
    if (!strcmp(ev, "AGENTLOGIN")) {
        const char *qs = qlog_field_get(f, n, "queues");
        char *v = strdup(qs ? qs : "");
        if (!v)
            return ARIQ_ENOMEM;
        free(strmap_del(q->members, agent));
        if (strmap_put(q->members, agent, v) != 0) {
            free(v);
            return ARIQ_ENOMEM;
        }
        if (push_op(q, "+") || push_op(q, agent) || push_op(q, v))
            return ARIQ_ENOMEM;
    } else if (!strcmp(ev, "AGENTLOGOFF")) {
        *drop = strmap_del(q->members, agent);
        *queues = *drop;
        if (push_op(q, "-") || push_op(q, agent))
            return ARIQ_ENOMEM;
    }
    return 0;
}

/* Appends to `w` the lines of one entry not already in the file. */
static int take_lines(queue_log *q, const char *lines, size_t len, qlog_buf *w)
{
    const char *p = lines, *end = lines + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = (size_t)(nl - p);
        if (q->iexpect < q->nexpect) {
            const char *e = q->expect[q->iexpect];
            if (strlen(e) == l && !memcmp(e, p, l)) {
                q->iexpect++;
                q->st.skipped_lines++;
                p = nl + 1;
                continue;
            }
            LOG_W(MOD, "msg=\"lines past the recorded position are not ours; left as they are\" "
                       "lines=%zu",
                  q->nexpect - q->iexpect);
            q->iexpect = q->nexpect;
        }
        if (w->len + l + 2 > w->cap) {
            size_t cap = w->cap ? w->cap : 4096;
            while (cap < w->len + l + 2)
                cap *= 2;
            char *s = realloc(w->s, cap);
            if (!s)
                return ARIQ_ENOMEM;
            w->s = s;
            w->cap = cap;
        }
        memcpy(w->s + w->len, p, l + 1);
        w->len += l + 1;
        q->st.lines++;
        p = nl + 1;
    }
    return 0;
}

/* One stream entry [id, [f, v, ...]] -> lines in w. */
static int one_entry(queue_log *q, const redisReply *e, qlog_buf *w)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[1]->type != REDIS_REPLY_ARRAY)
        return ARIQ_EINVAL;
    const redisReply *kv = e->element[1];
    size_t n = kv->elements / 2;
    qlog_field *f = calloc(n ? n : 1, sizeof *f);
    if (!f)
        return ARIQ_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        f[i].name = kv->element[2 * i]->str ? kv->element[2 * i]->str : "";
        f[i].value = kv->element[2 * i + 1]->str ? kv->element[2 * i + 1]->str : "";
    }
    const char *queues;
    char *drop;
    int rc = track_members(q, f, n, &queues, &drop);
    qlog_buf lines = {0};
    char why[256];
    if (rc == 0)
        rc = queue_log_format(f, n, &q->cfg.fmt, queues, &lines, why, sizeof why);
    if (rc == ARIQ_EINVAL) {
        q->st.bad_entries++;
        LOG_E(MOD, "msg=\"stream entry passed over\" id=%s why=\"%s\"", e->element[0]->str, why);
        rc = 0;
    } else if (rc >= 0) {
        if (why[0])
            LOG_W(MOD, "msg=\"stream entry\" id=%s note=\"%s\"", e->element[0]->str, why);
        rc = take_lines(q, lines.s ? lines.s : "", lines.len, w);
    }
    qlog_buf_free(&lines);
    free(drop);
    free(f);
    q->st.entries++;
    return rc < 0 ? rc : 0;
}

/* True while our last renewal leaves more than a quarter of the TTL. */
static int lease_fresh(const queue_log *q)
{
    return clock_mono_ms() + (uint64_t)q->cfg.lease_ms / 4 < q->lease_until;
}

static void read_reply(store *s, const redisReply *r, void *ud)
{
    (void)s;
    queue_log *q = ud;
    if (!reply_begins(q))
        return;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r && r->type == REDIS_REPLY_ERROR)
            LOG_E(MOD, "msg=\"XRANGE failed\" err=\"%s\"", r->str);
        to_standby(q);
        return;
    }
    if (r->elements == 0) {
        q->full_batch = 0;
        set_state(q, QL_IDLE);
        return;
    }
    if (!lease_fresh(q)) { /* stalled: another may be writing by now */
        to_standby(q);
        return;
    }
    qlog_buf w = {0};
    int rc = 0;
    for (size_t i = 0; i < r->elements && rc == 0; i++)
        rc = one_entry(q, r->element[i], &w);
    const redisReply *last = r->element[r->elements - 1];
    if (rc == 0 && w.len && qlog_file_append_sync(q->file, w.s, w.len) != 0)
        rc = ARIQ_EIO;
    free(w.s);
    if (rc != 0) {
        q->st.io_errors++;
        qlog_file_cut_partial(q->file);
        to_standby(q);
        return;
    }
    if (q->hook && q->hook(q, q->hook_ud)) {
        clear_ops(q);
        set_state(q, QL_CRASHED);
        return;
    }
    q->full_batch = r->elements >= (size_t)q->cfg.batch;
    send_commit(q, last->element[0]->str);
}

static void send_read(queue_log *q)
{
    char start[ID_MAX + 2], count[16];
    snprintf(start, sizeof start, "%s%s", *q->pos ? "(" : "-", q->pos);
    snprintf(count, sizeof count, "%d", q->cfg.batch);
    const char *argv[] = {"XRANGE", q->k_events, start, "+", "COUNT", count};
    if (store_command_argv(q->s, 6, argv, NULL, read_reply, q) == 0) {
        q->inflight = 1;
        set_state(q, QL_READING);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    queue_log *q = ud;
    if (q->inflight || q->state == QL_CRASHED || !store_is_ready(q->s))
        return;
    if (q->state == QL_STANDBY) {
        send_acquire(q);
        return;
    }
    uint64_t now = clock_mono_ms();
    if (!lease_fresh(q) || now >= q->renewed_at + (uint64_t)q->cfg.lease_ms / 3)
        send_commit(q, "");
    else
        send_read(q);
}

/* ---- lifecycle --------------------------------------------------------------------- */

static int build_keys(queue_log *q, char *err, size_t errlen)
{
    const store_keys *k = store_get_keys(q->s);
    if (store_key_queuelog_lease(k, q->k_lease, sizeof q->k_lease) ||
        store_key_queuelog_pos(k, q->k_pos, sizeof q->k_pos) ||
        store_key_queuelog_members(k, q->k_members, sizeof q->k_members) ||
        store_key_events(k, q->k_events, sizeof q->k_events)) {
        snprintf(err, errlen, "cannot build the queuelog keys");
        return ARIQ_EINVAL;
    }
    return 0;
}

static int check_config(queue_log_config *c, char *err, size_t errlen)
{
    if (!c->path[0]) {
        snprintf(err, errlen, "queue_log path is empty");
        return ARIQ_EINVAL;
    }
    if (c->lease_ms < 1000 || c->lease_ms > 600000 || c->poll_ms < 1 || c->poll_ms > 60000 ||
        c->batch < 1 || c->batch > 1024) {
        snprintf(err, errlen, "queue_log: lease_ms 1000..600000, poll_ms 1..60000, batch 1..1024");
        return ARIQ_EINVAL;
    }
    if (!c->owner[0]) {
        char host[64] = "agentd", rnd[40];
        gethostname(host, sizeof host - 1);
        host[strcspn(host, ".")] = '\0';
        ids_make("x", rnd, sizeof rnd);
        snprintf(c->owner, sizeof c->owner, "%s:%ld:%s", host, (long)getpid(), rnd + 2);
    }
    for (const char *p = c->owner; *p; p++)
        if (*p == ' ' || (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e) {
            snprintf(err, errlen, "queue_log owner: printable characters, no spaces");
            return ARIQ_EINVAL;
        }
    return 0;
}

int queue_log_new(struct event_base *base, store *s, const queue_log_config *cfg,
                  queue_log **out, char *err, size_t errlen)
{
    queue_log *q = calloc(1, sizeof *q);
    if (!q)
        return ARIQ_ENOMEM;
    q->base = base;
    q->s = s;
    q->cfg = *cfg;
    int rc = check_config(&q->cfg, err, errlen);
    if (rc == 0)
        rc = build_keys(q, err, errlen);
    if (rc == 0)
        rc = qlog_file_open(q->cfg.path, &q->file, err, errlen);
    if (rc != 0)
        goto fail;
    rc = ARIQ_ENOMEM;
    if (!(q->members = strmap_new()) ||
        !(q->tick = event_new(base, -1, EV_PERSIST, on_tick, q)))
        goto fail;
    struct timeval tv = {q->cfg.poll_ms / 1000, (q->cfg.poll_ms % 1000) * 1000};
    event_add(q->tick, &tv);
    q->state = QL_STANDBY;
    *out = q;
    return 0;
fail:
    queue_log_free(q);
    return rc;
}

static void maybe_free(queue_log *q)
{
    if (q->inflight)
        return;
    clear_ops(q);
    free(q->ops);
    clear_expect(q);
    if (q->members)
        strmap_each(q->members, free_member, NULL);
    strmap_free(q->members);
    qlog_file_free(q->file);
    free(q);
}

void queue_log_free(queue_log *q)
{
    if (!q)
        return;
    if (q->tick)
        event_free(q->tick);
    q->tick = NULL;
    if (q->st.leader && q->state != QL_CRASHED && q->s && store_is_ready(q->s)) {
        const char *argv[] = {"EVAL", RELEASE_LUA, "1", q->k_lease, q->cfg.owner};
        store_command_argv(q->s, 5, argv, NULL, NULL, NULL);
    }
    q->closing = 1;
    maybe_free(q);
}

int queue_log_reopen(queue_log *q)
{
    int rc = qlog_file_reopen(q->file);
    if (rc == 0)
        LOG_I(MOD, "msg=\"queue_log reopened\" file=%s", q->cfg.path);
    return rc;
}

void queue_log_get_stats(const queue_log *q, queue_log_stats *out)
{
    *out = q->st;
}

void queue_log_set_crash_hook(queue_log *q, queue_log_crash_hook fn, void *ud)
{
    q->hook = fn;
    q->hook_ud = ud;
}
