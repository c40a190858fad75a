/* queue_store.c - typed requests over redis-schema/queue.lua (see
 * queue_store.h for the contract, SCHEMA.md for the ops).
 *
 * Every request is one qs_req: the callback and its kind, sent as the
 * privdata of store_script. The store calls back exactly once (with the
 * reply, or NULL when the connection is lost or the store freed); on_reply
 * parses, calls the owner, and frees the request. qs_free with requests in
 * flight only marks the queue_store closing: the last reply frees it. */
#include "store/queue_store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/ids.h"
#include "store/queue_store_int.h"

#define SCRIPT     "queue"
#define ARGS_MAX   12
#define QUEUES_BUF (QS_QUEUES_MAX * (QS_NAME_MAX + 1) + 1)

typedef struct qs_held qs_held;

struct queue_store {
    store *s;
    qs_config cfg;
    qs_held *held_head, *held_tail; /* the outbox: writes waiting for Redis */
    size_t nheld;
    bool hold_writes; /* qs_hold_writes: the outbox takes writes even when ready */
    bool shutting;    /* qs_shutdown: lost replies are errors, not held again */
    uint64_t (*now_ms)(void *ud);
    void *now_ud;
    unsigned pending;
    bool closing;
    char errmsg[QS_ERRMSG_MAX];
};

typedef enum {
    REQ_ENTER,
    REQ_RESULT,
    REQ_CALL_INFO,
    REQ_QUEUE_INFO,
    REQ_REAP,
    REQ_RECONCILE,
    REQ_RESTORE
} req_kind;

typedef struct qs_req {
    queue_store *qs;
    req_kind kind;
    unsigned required; /* REQ_RESULT: QS_REQ_* the reply must carry */
    union {
        qs_enter_cb enter;
        qs_result_cb result;
        qs_call_view_cb call_info;
        qs_queue_view_cb queue_info;
        qs_reap_cb reap;
        qs_reconcile_cb reconcile;
        qs_restore_cb restore;
    } cb;
    void *pd;
    struct qs_held *retry; /* a copy to send again if the connection drops first */
} qs_req;

/* One request being built: KEYS[3] and the op's own arguments. */
typedef struct qs_msg {
    const char *op;
    char key[STORE_KEY_MAX];
    int nargs;
    const char *args[ARGS_MAX];
    char num[4][24]; /* room for numbers formatted into args */
} qs_msg;

static void set_err(queue_store *qs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_err(queue_store *qs, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(qs->errmsg, sizeof qs->errmsg, fmt, ap);
    va_end(ap);
}

static uint64_t wall_now(void *ud)
{
    (void)ud;
    return clock_wall_ms();
}

void qs_config_init(qs_config *c)
{
    memset(c, 0, sizeof *c);
    c->events_maxlen = 100000;
    c->max_pairs = 16;
}

int qs_new(store *s, const qs_config *cfg, queue_store **out)
{
    *out = NULL;
    if (!s || !cfg || !ids_valid(cfg->node, QS_ID_MAX) || cfg->events_maxlen < 1 ||
        cfg->events_maxlen > 100000000 || cfg->max_pairs < 1 ||
        cfg->max_pairs > QS_PAIRS_MAX)
        return ARIQ_EINVAL;
    queue_store *qs = calloc(1, sizeof *qs);
    if (!qs)
        return ARIQ_ENOMEM;
    qs->s = s;
    qs->cfg = *cfg;
    qs->now_ms = wall_now;
    *out = qs;
    return 0;
}

static void held_drop_all(queue_store *qs);

void qs_free(queue_store *qs)
{
    if (!qs)
        return;
    qs->closing = true;
    held_drop_all(qs); /* nobody to tell, as for replies after the free */
    if (qs->pending == 0)
        free(qs);
}

const char *qs_errmsg(const queue_store *qs)
{
    return qs->errmsg;
}

void qs_set_clock(queue_store *qs, uint64_t (*now_ms)(void *ud), void *ud)
{
    qs->now_ms = now_ms ? now_ms : wall_now;
    qs->now_ud = ud;
}

unsigned qs_pending(const queue_store *qs)
{
    return qs->pending;
}

/* ---- replies -------------------------------------------------------------- */

/* Script refusals start with a code word (queue.lua's header). */
static int map_error(const char *msg)
{
    static const struct {
        const char *prefix;
        int err;
    } map[] = {{"ERR ariq:", ARIQ_EINVAL},
               {"NOTFOUND ", ARIQ_ENOTFOUND},
               {"EXISTS ", ARIQ_EBUSY},
               {"AGENTINUSE ", ARIQ_EBUSY},
               {"BADSTATE ", ARIQ_ESTATE}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strncmp(msg, map[i].prefix, strlen(map[i].prefix)) == 0)
            return map[i].err;
    return ARIQ_EIO;
}

/* Calls the owner with an error and no result. */
static void deliver_err(qs_req *q, int err)
{
    queue_store *qs = q->qs;
    switch (q->kind) {
    case REQ_ENTER:
        q->cb.enter(qs, err, NULL, q->pd);
        break;
    case REQ_RESULT:
        q->cb.result(qs, err, NULL, q->pd);
        break;
    case REQ_CALL_INFO:
        q->cb.call_info(qs, err, NULL, q->pd);
        break;
    case REQ_QUEUE_INFO:
        q->cb.queue_info(qs, err, NULL, q->pd);
        break;
    case REQ_REAP:
        q->cb.reap(qs, err, NULL, q->pd);
        break;
    case REQ_RECONCILE:
        q->cb.reconcile(qs, err, NULL, q->pd);
        break;
    case REQ_RESTORE:
        q->cb.restore(qs, err, NULL, q->pd);
        break;
    }
}

/* Parses a good reply and calls the owner: with the result, or with
 * ARIQ_EINVAL when the reply is malformed. */
static void deliver_reply(qs_req *q, const redisReply *r)
{
    queue_store *qs = q->qs;
    qs_pairing *owned = NULL;
    int rc;
    if (q->kind == REQ_ENTER) {
        qs_enter_result res;
        rc = qs_parse_enter(r, &res, &owned, qs->errmsg, sizeof qs->errmsg);
        q->cb.enter(qs, rc, rc == 0 ? &res : NULL, q->pd);
    } else if (q->kind == REQ_RESULT) {
        qs_result res;
        rc = qs_parse_result(r, q->required, &res, &owned, qs->errmsg, sizeof qs->errmsg);
        q->cb.result(qs, rc, rc == 0 ? &res : NULL, q->pd);
    } else if (q->kind == REQ_CALL_INFO) {
        qs_call_view res;
        rc = qs_parse_call_info(r, &res, qs->errmsg, sizeof qs->errmsg);
        q->cb.call_info(qs, rc, rc == 0 ? &res : NULL, q->pd);
    } else if (q->kind == REQ_QUEUE_INFO) {
        qs_queue_view res;
        rc = qs_parse_queue_info(r, &res, qs->errmsg, sizeof qs->errmsg);
        q->cb.queue_info(qs, rc, rc == 0 ? &res : NULL, q->pd);
    } else if (q->kind == REQ_REAP) {
        qs_reap_result res;
        rc = qs_parse_reap(r, &res, qs->errmsg, sizeof qs->errmsg);
        q->cb.reap(qs, rc, rc == 0 ? &res : NULL, q->pd);
    } else if (q->kind == REQ_RESTORE) {
        qs_restore_result res;
        rc = qs_parse_restore(r, &res, qs->errmsg, sizeof qs->errmsg);
        q->cb.restore(qs, rc, rc == 0 ? &res : NULL, q->pd);
    } else {
        qs_reconcile_result res;
        qs_reconcile_owned blocks;
        rc = qs_parse_reconcile(r, &res, &blocks, qs->errmsg, sizeof qs->errmsg);
        q->cb.reconcile(qs, rc, rc == 0 ? &res : NULL, q->pd);
        qs_reconcile_owned_free(&blocks);
    }
    free(owned);
}

static void held_free(struct qs_held *h);
static void held_push(queue_store *qs, struct qs_held *h);

static void on_reply(store *s, const redisReply *r, void *pd)
{
    (void)s;
    qs_req *q = pd;
    queue_store *qs = q->qs;
    if (!r && q->retry && !qs->closing && !qs->shutting) {
        /* lost with the connection, maybe before Redis ran it: held again,
         * to be sent when Redis is back (see resendable) */
        struct qs_held *h = q->retry;
        q->retry = NULL;
        held_push(qs, h); /* still pending: the same request */
        return;
    }
    if (q->retry)
        held_free(q->retry);
    if (qs->closing) {
        /* freed by its owner: nobody to tell */
    } else if (!r) {
        set_err(qs, "redis connection lost before the reply");
        deliver_err(q, ARIQ_EIO);
    } else if (r->type == REDIS_REPLY_ERROR) {
        set_err(qs, "%s", r->str ? r->str : "error reply");
        deliver_err(q, map_error(qs->errmsg));
    } else {
        deliver_reply(q, r);
    }
    free(q);
    if (--qs->pending == 0 && qs->closing)
        free(qs);
}

/* ---- sending -------------------------------------------------------------- */

/* ---- the outbox ------------------------------------------------------------ */

/* A write made while Redis was away: its whole EVALSHA (now included, so
 * its events keep the time it happened), sent in order by qs_flush. */
struct qs_held {
    qs_held *next;
    qs_req *q;
    int nargs; /* 4 + the op's */
    char *keys[3];
    char **argv;
};

/* Ops that change Redis on behalf of something that happened (a party
 * arrived, left, talked, pressed a key): kept while Redis is away. Pairing
 * sweeps, reads, reaping and the node's own re-adoption are not: they are
 * asked again, and a read answered 30 s late would be wrong. */
static bool held_op(const char *op)
{
    static const char *const writes[] = {"enter",  "leave",    "agent_login", "agent_logoff",
                                         "agent_pause", "agent_ready", "bridged", "unlink",
                                         "rollback", "rec",   "node_drain"};
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++)
        if (strcmp(op, writes[i]) == 0)
            return true;
    return false;
}

static void held_free(qs_held *h)
{
    for (int i = 0; i < 3; i++)
        free(h->keys[i]);
    for (int i = 0; h->argv && i < h->nargs; i++)
        free(h->argv[i]);
    free(h->argv);
    free(h);
}

/* A copy of one request's keys and arguments, for q (NULL if out of memory). */
static qs_held *held_new(const char *const *keys, const char **argv, int nargs, qs_req *q)
{
    qs_held *h = calloc(1, sizeof *h);
    if (!h || !(h->argv = calloc((size_t)nargs, sizeof *h->argv))) {
        free(h);
        return NULL;
    }
    h->q = q;
    h->nargs = nargs;
    bool ok = true;
    for (int i = 0; i < 3; i++)
        ok = ok && (h->keys[i] = strdup(keys[i])) != NULL;
    for (int i = 0; i < nargs; i++)
        ok = ok && (h->argv[i] = strdup(argv[i])) != NULL;
    if (!ok) {
        held_free(h);
        return NULL;
    }
    return h;
}

static void held_push(queue_store *qs, qs_held *h)
{
    h->next = NULL;
    if (qs->held_tail)
        qs->held_tail->next = h;
    else
        qs->held_head = h;
    qs->held_tail = h;
    qs->nheld++;
}

static int hold(queue_store *qs, const char *const *keys, const char **argv, int nargs,
                qs_req *q)
{
    if (qs->nheld >= QS_OUTBOX_MAX) {
        set_err(qs, "Redis away and %d writes waiting already", QS_OUTBOX_MAX);
        return ARIQ_EBUSY;
    }
    qs_held *h = held_new(keys, argv, nargs, q);
    if (!h)
        return ARIQ_ENOMEM;
    held_push(qs, h);
    qs->pending++;
    return 0;
}

/* Ops whose reply lost with a dropped connection (maybe after Redis ran
 * them) would leave the node and Redis disagreeing, and that are safe to
 * run twice, so they are sent again when Redis is back and the second
 * reply tells what is so: a second leave, logoff, unlink or rollback of a
 * record already gone answers GONE / NOTFOUND; a second enter, login or
 * bridged of the same party answers what the first one did. (A node that
 * took a caller for waiting after a lost unlink re-registered a call that
 * had ended: found by the random run's redis faults.) */
static bool resendable(const char *op)
{
    static const char *const safe[] = {"enter", "leave", "agent_login", "agent_logoff",
                                       "bridged", "unlink", "rollback"};
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        if (strcmp(op, safe[i]) == 0)
            return true;
    return false;
}

static void held_drop_all(queue_store *qs)
{
    while (qs->held_head) {
        qs_held *h = qs->held_head;
        qs->held_head = h->next;
        free(h->q);
        held_free(h);
        qs->pending--;
    }
    qs->held_tail = NULL;
    qs->nheld = 0;
}

size_t qs_flush(queue_store *qs)
{
    while (qs->held_head && !qs->closing) {
        qs_held *h = qs->held_head;
        int rc = store_script(qs->s, SCRIPT, 3, (const char **)h->keys, h->nargs,
                              (const char **)h->argv, on_reply, h->q);
        if (rc == ARIQ_EBUSY)
            break; /* away again: the rest waits for the next flush */
        qs->held_head = h->next;
        if (!qs->held_head)
            qs->held_tail = NULL;
        qs->nheld--;
        if (rc != 0) { /* refused for good: told like a lost reply */
            set_err(qs, "cannot send a held %s: %s", h->argv[0], ariq_strerror(rc));
            qs_req *q = h->q;
            deliver_err(q, rc);
            free(q);
            qs->pending--;
            held_free(h);
        } else if (resendable(h->argv[0])) {
            h->q->retry = h; /* kept in case this connection drops too */
        } else {
            held_free(h);
        }
    }
    return qs->nheld;
}

size_t qs_held_count(const queue_store *qs)
{
    return qs->nheld;
}

void qs_hold_writes(queue_store *qs, bool hold)
{
    qs->hold_writes = hold;
}

void qs_shutdown(queue_store *qs)
{
    if (qs)
        qs->shutting = true;
}

/* ---- sending -------------------------------------------------------------- */

/* Sends `EVALSHA queue 3 seq events key op now node maxlen args...`: argv
 * has 4 + nargs slots, the op's arguments from argv[4]; the first four are
 * filled here. A write while Redis is away (or while earlier ones still
 * wait) goes to the outbox instead, in order. */
static int send_argv(queue_store *qs, const char *op, const char *key, const char **argv,
                     int nargs, qs_req *tmpl)
{
    const store_keys *k = store_get_keys(qs->s);
    char seq[STORE_KEY_MAX], events[STORE_KEY_MAX], now[24], maxlen[24];
    if (store_key(k, seq, sizeof seq, "seq", NULL, NULL) != 0 ||
        store_key(k, events, sizeof events, "events", NULL, NULL) != 0)
        return ARIQ_EINVAL;
    snprintf(now, sizeof now, "%llu", (unsigned long long)qs->now_ms(qs->now_ud));
    snprintf(maxlen, sizeof maxlen, "%ld", qs->cfg.events_maxlen);
    const char *keys[3] = {seq, events, key};
    argv[0] = op;
    argv[1] = now;
    argv[2] = qs->cfg.node;
    argv[3] = maxlen;
    qs_req *q = malloc(sizeof *q);
    if (!q)
        return ARIQ_ENOMEM;
    *q = *tmpl;
    q->qs = qs;
    int rc;
    if (held_op(op) && (qs->hold_writes || qs->held_head || !store_is_ready(qs->s))) {
        rc = hold(qs, keys, argv, 4 + nargs, q);
    } else {
        if (resendable(op))
            q->retry = held_new(keys, argv, 4 + nargs, q);
        if ((rc = store_script(qs->s, SCRIPT, 3, keys, 4 + nargs, argv, on_reply, q)) == 0)
            qs->pending++;
        else if (q->retry)
            held_free(q->retry);
    }
    if (rc != 0) {
        set_err(qs, "cannot send %s: %s", op, ariq_strerror(rc));
        free(q);
    }
    return rc;
}

static int send_msg(queue_store *qs, const qs_msg *m, qs_req *tmpl)
{
    const char *argv[4 + ARGS_MAX];
    for (int i = 0; i < m->nargs; i++)
        argv[4 + i] = m->args[i];
    return send_argv(qs, m->op, m->key, argv, m->nargs, tmpl);
}

static int send_result(queue_store *qs, const qs_msg *m, unsigned required,
                       qs_result_cb cb, void *pd)
{
    if (!cb)
        return ARIQ_EINVAL;
    qs_req t = {.kind = REQ_RESULT, .required = required, .cb.result = cb, .pd = pd};
    return send_msg(qs, m, &t);
}

/* ---- argument checks -------------------------------------------------------- */

static int bad(queue_store *qs, const char *what)
{
    set_err(qs, "invalid argument: %s", what);
    return ARIQ_EINVAL;
}

/* Free text goes into events and the queue_log: bounded, printable, no '|'. */
static bool text_ok(const char *s)
{
    if (!s)
        return true;
    size_t n = strnlen(s, QS_TEXT_MAX + 1);
    if (n > QS_TEXT_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 32 || ch == 127 || ch == '|')
            return false;
    }
    return true;
}

/* Builds KEYS[3] = {NS}:kind:id[:sub]; a bad id is refused here. */
static int msg_key(queue_store *qs, qs_msg *m, const char *kind, const char *id,
                   size_t idmax, const char *sub)
{
    if (!id || !ids_valid(id, idmax))
        return bad(qs, kind);
    if (store_key(store_get_keys(qs->s), m->key, sizeof m->key, kind, id, sub) != 0)
        return bad(qs, kind);
    return 0;
}

static void arg(qs_msg *m, const char *v)
{
    m->args[m->nargs++] = v ? v : "";
}

/* Formats a number into one of the message's slots and adds it. */
static void arg_num(qs_msg *m, int slot, long long v)
{
    snprintf(m->num[slot], sizeof m->num[slot], "%lld", v);
    arg(m, m->num[slot]);
}

/* Adds the two trailing arguments of every op that may pair: autopair and
 * max_pairs (slot 3). */
static void arg_autopair(queue_store *qs, qs_msg *m, bool autopair)
{
    arg(m, autopair ? "1" : "0");
    arg_num(m, 3, qs->cfg.max_pairs);
}

/* Checks 1..16 distinct queue names; *len gets their length joined with
 * '&' (without the NUL). */
static int check_queues(queue_store *qs, const char *const *queues, size_t n, size_t *len)
{
    if (!queues || n < 1 || n > QS_QUEUES_MAX)
        return bad(qs, "queues: 1..16 names");
    *len = n - 1;
    for (size_t i = 0; i < n; i++) {
        if (!queues[i] || !ids_valid(queues[i], QS_NAME_MAX))
            return bad(qs, "queue name");
        for (size_t j = 0; j < i; j++)
            if (strcmp(queues[i], queues[j]) == 0)
                return bad(qs, "queue given twice");
        *len += strlen(queues[i]);
    }
    return 0;
}

/* Writes checked names joined with '&' into out (room for check_queues'
 * length + 1); returns out. */
static char *queues_join(const char *const *queues, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(queues[i]);
        if (i)
            out[o++] = '&';
        memcpy(out + o, queues[i], len);
        o += len;
    }
    out[o] = '\0';
    return out;
}

/* Joins 1..16 distinct queue names with '&'. */
static int join_queues(queue_store *qs, const char *const *queues, size_t n, char *out,
                       size_t len)
{
    size_t need;
    int rc = check_queues(qs, queues, n, &need);
    if (rc == 0 && need >= len)
        rc = bad(qs, "queues: too long");
    if (rc == 0)
        queues_join(queues, n, out);
    return rc;
}

/* ---- callers ---------------------------------------------------------------- */

int qs_enter(queue_store *qs, const qs_caller *c, bool autopair, qs_enter_cb cb, void *pd)
{
    qs_msg m = {.op = "enter"};
    char queues[QUEUES_BUF];
    if (!c || !cb)
        return bad(qs, "caller and callback required");
    int rc = msg_key(qs, &m, "call", c->callid, QS_ID_MAX, NULL);
    if (rc != 0)
        return rc;
    if (!c->channel || !ids_valid(c->channel, QS_ID_MAX))
        return bad(qs, "channel");
    if (c->priority < 0 || c->priority > 1000)
        return bad(qs, "priority 0..1000");
    if (!text_ok(c->cid_num) || !text_ok(c->cid_name))
        return bad(qs, "caller id: at most 128 printable bytes without |");
    if ((rc = join_queues(qs, c->queues, c->nqueues, queues, sizeof queues)) != 0)
        return rc;
    arg(&m, c->callid);
    arg(&m, c->channel);
    arg_num(&m, 0, c->priority);
    arg(&m, c->cid_num);
    arg(&m, c->cid_name);
    arg(&m, queues);
    arg_autopair(qs, &m, autopair);
    qs_req t = {.kind = REQ_ENTER, .cb.enter = cb, .pd = pd};
    return send_msg(qs, &m, &t);
}

int qs_leave(queue_store *qs, const char *callid, qs_leave_reason reason, qs_party who,
             int wrapup_ms, bool autopair, qs_result_cb cb, void *pd)
{
    qs_msg m = {.op = "leave"};
    int rc = msg_key(qs, &m, "call", callid, QS_ID_MAX, NULL);
    if (rc != 0)
        return rc;
    if ((reason != QS_LEAVE_HANGUP && reason != QS_LEAVE_TIMEOUT) ||
        (who != QS_BY_CALLER && who != QS_BY_AGENT))
        return bad(qs, "reason or who");
    if (wrapup_ms < 0 || wrapup_ms > 86400000)
        return bad(qs, "wrapup_ms 0..86400000");
    arg(&m, callid);
    arg(&m, reason == QS_LEAVE_TIMEOUT ? "timeout" : "hangup");
    arg(&m, who == QS_BY_AGENT ? "agent" : "caller");
    arg_num(&m, 0, wrapup_ms);
    arg_autopair(qs, &m, autopair);
    return send_result(qs, &m, QS_REQ_OUTCOME | QS_REQ_PAIRINGS, cb, pd);
}

/* ---- agents ----------------------------------------------------------------- */

int qs_agent_login(queue_store *qs, const qs_agent *a, bool autopair, qs_result_cb cb,
                   void *pd)
{
    qs_msg m = {.op = "agent_login"};
    char queues[QUEUES_BUF];
    if (!a)
        return bad(qs, "agent required");
    int rc = msg_key(qs, &m, "agent", a->agentid, QS_NAME_MAX, NULL);
    if (rc != 0)
        return rc;
    if (!a->channel || !ids_valid(a->channel, QS_ID_MAX))
        return bad(qs, "channel");
    if (!text_ok(a->chan_name))
        return bad(qs, "channel name");
    if ((rc = join_queues(qs, a->queues, a->nqueues, queues, sizeof queues)) != 0)
        return rc;
    arg(&m, a->agentid);
    arg(&m, a->channel);
    arg(&m, a->chan_name);
    arg(&m, queues);
    arg_autopair(qs, &m, autopair);
    return send_result(qs, &m, QS_REQ_SEQ | QS_REQ_PAIRINGS, cb, pd);
}

int qs_agent_logoff(queue_store *qs, const char *agentid, const char *reason,
                    bool autopair, qs_result_cb cb, void *pd)
{
    qs_msg m = {.op = "agent_logoff"};
    int rc = msg_key(qs, &m, "agent", agentid, QS_NAME_MAX, NULL);
    if (rc != 0)
        return rc;
    if (!text_ok(reason))
        return bad(qs, "reason");
    arg(&m, agentid);
    arg(&m, reason);
    arg_autopair(qs, &m, autopair);
    return send_result(qs, &m, QS_REQ_OUTCOME | QS_REQ_PAIRINGS, cb, pd);
}

int qs_agent_pause(queue_store *qs, const char *agentid, bool paused, const char *reason,
                   bool autopair, qs_result_cb cb, void *pd)
{
    qs_msg m = {.op = "agent_pause"};
    int rc = msg_key(qs, &m, "agent", agentid, QS_NAME_MAX, NULL);
    if (rc != 0)
        return rc;
    if (!text_ok(reason))
        return bad(qs, "reason");
    arg(&m, agentid);
    arg(&m, paused ? "1" : "0");
    arg(&m, reason);
    arg_autopair(qs, &m, autopair);
    return send_result(qs, &m, QS_REQ_STATE | QS_REQ_PAIRINGS, cb, pd);
}

int qs_agent_ready(queue_store *qs, const char *agentid, bool autopair, qs_result_cb cb,
                   void *pd)
{
    qs_msg m = {.op = "agent_ready"};
    int rc = msg_key(qs, &m, "agent", agentid, QS_NAME_MAX, NULL);
    if (rc != 0)
        return rc;
    arg(&m, agentid);
    arg_autopair(qs, &m, autopair);
    return send_result(qs, &m, QS_REQ_STATE | QS_REQ_PAIRINGS, cb, pd);
}

/* ---- pairing ---------------------------------------------------------------- */

static int pair(queue_store *qs, const char *scope, const char *kind, const char *id,
                size_t idmax, const char *sub, qs_result_cb cb, void *pd)
{
    qs_msg m = {.op = "pair"};
    int rc = msg_key(qs, &m, kind, id, idmax, sub);
    if (rc != 0)
        return rc;
    arg(&m, scope);
    arg(&m, id);
    arg_num(&m, 3, qs->cfg.max_pairs);
    return send_result(qs, &m, QS_REQ_PAIRINGS, cb, pd);
}

int qs_pair_queue(queue_store *qs, const char *queue, qs_result_cb cb, void *pd)
{
    return pair(qs, "queue", "queue", queue, QS_NAME_MAX, "callers", cb, pd);
}

int qs_pair_call(queue_store *qs, const char *callid, qs_result_cb cb, void *pd)
{
    return pair(qs, "call", "call", callid, QS_ID_MAX, NULL, cb, pd);
}

int qs_pair_agent(queue_store *qs, const char *agentid, qs_result_cb cb, void *pd)
{
    return pair(qs, "agent", "agent", agentid, QS_NAME_MAX, NULL, cb, pd);
}

static const char *const side_names[] = {
    [QS_SIDE_BOTH] = "both", [QS_SIDE_CALLER] = "caller", [QS_SIDE_AGENT] = "agent"};

int qs_bridged(queue_store *qs, const char *pairing, qs_side side, qs_result_cb cb, void *pd)
{
    qs_msg m = {.op = "bridged"};
    int rc = msg_key(qs, &m, "pairing", pairing, QS_ID_MAX, NULL);
    if (rc != 0)
        return rc;
    if ((unsigned)side > QS_SIDE_AGENT)
        return bad(qs, "side");
    arg(&m, pairing);
    arg(&m, side_names[side]);
    return send_result(qs, &m, QS_REQ_CONNECTED | QS_REQ_HOLDTIME | QS_REQ_RINGTIME, cb, pd);
}

int qs_unlink(queue_store *qs, const char *pairing, qs_side side, const char *party,
              const char *reason, int wrapup_ms, bool autopair, qs_result_cb cb, void *pd)
{
    qs_msg m = {.op = "unlink"};
    int rc = msg_key(qs, &m, "pairing", pairing, QS_ID_MAX, NULL);
    if (rc != 0)
        return rc;
    if (side != QS_SIDE_CALLER && side != QS_SIDE_AGENT)
        return bad(qs, "side must be the caller's or the agent's");
    if (!party || !ids_valid(party, side == QS_SIDE_CALLER ? QS_ID_MAX : QS_NAME_MAX))
        return bad(qs, "party");
    if (!text_ok(reason) || wrapup_ms < 0 || wrapup_ms > 86400000)
        return bad(qs, "reason or wrapup_ms");
    arg(&m, pairing);
    arg(&m, side_names[side]);
    arg(&m, party);
    arg(&m, reason);
    arg_num(&m, 0, wrapup_ms);
    arg_autopair(qs, &m, autopair);
    return send_result(qs, &m,
                       QS_REQ_OUTCOME | QS_REQ_STATE | QS_REQ_PAIRING | QS_REQ_WRAPUP |
                           QS_REQ_PAIRINGS,
                       cb, pd);
}

int qs_pairing_info(queue_store *qs, const char *pairing, qs_result_cb cb, void *pd)
{
    qs_msg m = {.op = "pairing_info"};
    int rc = msg_key(qs, &m, "pairing", pairing, QS_ID_MAX, NULL);
    if (rc != 0)
        return rc;
    arg(&m, pairing);
    return send_result(qs, &m, QS_REQ_STATE | QS_REQ_PAIRINGS, cb, pd);
}

int qs_node_pairings(queue_store *qs, qs_result_cb cb, void *pd)
{
    qs_msg m = {.op = "node_pairings"};
    int rc = msg_key(qs, &m, "node", qs->cfg.node, QS_ID_MAX, "pairings");
    if (rc != 0)
        return rc;
    return send_result(qs, &m, QS_REQ_PAIRINGS, cb, pd);
}

int qs_rollback(queue_store *qs, const char *pairing, const char *reason, qs_agent_to to,
                qs_result_cb cb, void *pd)
{
    static const char *const names[] = {
        [QS_AGENT_KEEP] = "keep", [QS_AGENT_BACK] = "back", [QS_AGENT_PAUSE] = "pause"};
    qs_msg m = {.op = "rollback"};
    int rc = msg_key(qs, &m, "pairing", pairing, QS_ID_MAX, NULL);
    if (rc != 0)
        return rc;
    if (!text_ok(reason) || (unsigned)to > QS_AGENT_PAUSE)
        return bad(qs, "reason or agent_to");
    arg(&m, pairing);
    arg(&m, reason);
    arg(&m, names[to]);
    return send_result(qs, &m, QS_REQ_OUTCOME, cb, pd);
}

/* ---- recordings ------------------------------------------------------------- */

int qs_rec(queue_store *qs, qs_rec_action action, const char *name, const char *pairing,
           const char *file, int64_t ttl_ms, qs_result_cb cb, void *pd)
{
    static const char *const names[] = {[QS_REC_START] = "start",
                                        [QS_REC_PAUSE] = "pause",
                                        [QS_REC_UNPAUSE] = "unpause",
                                        [QS_REC_STOP] = "stop",
                                        [QS_REC_DISCARD] = "discard",
                                        [QS_REC_DELETE] = "delete"};
    qs_msg m = {.op = "rec"};
    if ((unsigned)action > QS_REC_DELETE)
        return bad(qs, "recording action");
    int rc = msg_key(qs, &m, "recording", name, QS_ID_MAX, NULL);
    if (rc != 0)
        return rc;
    if (action == QS_REC_START && (!pairing || !ids_valid(pairing, QS_ID_MAX) || !file ||
                                   !file[0] || !text_ok(file)))
        return bad(qs, "recording start needs a pairing and a file");
    if (ttl_ms < 0 || ttl_ms > 31536000000LL)
        return bad(qs, "ttl_ms 0..31536000000");
    arg(&m, names[action]);
    arg(&m, name);
    arg(&m, action == QS_REC_START ? pairing : "");
    arg(&m, action == QS_REC_START ? file : "");
    arg_num(&m, 0, ttl_ms);
    return send_result(qs, &m, QS_REQ_STATE, cb, pd);
}

/* ---- dead nodes ------------------------------------------------------------- */

int qs_reap(queue_store *qs, const char *node, const char *reason, int max_items,
            qs_reap_cb cb, void *pd)
{
    qs_msg m = {.op = "reap"};
    int rc = msg_key(qs, &m, "node", node, QS_ID_MAX, "heartbeat");
    if (rc != 0)
        return rc;
    if (!cb || !text_ok(reason) || max_items < 1 || max_items > 100000)
        return bad(qs, "reap needs a callback, a reason and max_items 1..100000");
    arg(&m, node);
    arg(&m, reason);
    arg_num(&m, 0, max_items);
    qs_req t = {.kind = REQ_REAP, .cb.reap = cb, .pd = pd};
    return send_msg(qs, &m, &t);
}

/* ---- draining -------------------------------------------------------------- */

int qs_node_drain(queue_store *qs, bool on, int64_t ttl_ms, qs_result_cb cb, void *pd)
{
    qs_msg m = {.op = "node_drain"};
    if (!cb)
        return bad(qs, "callback required");
    if (on && (ttl_ms < 1 || ttl_ms > QS_DRAIN_TTL_MAX))
        return bad(qs, "ttl_ms 1..86400000");
    if (store_key_node_draining(store_get_keys(qs->s), m.key, sizeof m.key,
                                qs->cfg.node) != 0)
        return bad(qs, "node");
    arg(&m, on ? "on" : "off");
    arg_num(&m, 0, on ? ttl_ms : 0);
    return send_result(qs, &m, QS_REQ_OUTCOME | QS_REQ_STATE, cb, pd);
}

/* ---- re-adoption after a restart ------------------------------------------------ */

static int check_reconcile(queue_store *qs, const char *const *alive, size_t nalive,
                           const qs_keep *keep, size_t nkeep)
{
    if (nalive > QS_ALIVE_MAX || nkeep > QS_KEEP_MAX || (nalive && !alive) ||
        (nkeep && !keep))
        return bad(qs, "alive 0..200000 channels, keep 0..100000 bridges");
    for (size_t i = 0; i < nalive; i++)
        if (!alive[i] || !ids_valid(alive[i], QS_ID_MAX))
            return bad(qs, "alive channel id");
    for (size_t i = 0; i < nkeep; i++) {
        const qs_keep *k = &keep[i];
        if (!k->pairing || !ids_valid(k->pairing, QS_ID_MAX) || !k->chan1 ||
            !ids_valid(k->chan1, QS_ID_MAX) || !k->chan2 ||
            !ids_valid(k->chan2, QS_ID_MAX) || strcmp(k->chan1, k->chan2) == 0)
            return bad(qs, "keep: a pairing id and two distinct channel ids");
    }
    return 0;
}

/* The arguments of reconcile and restore are counted in the hundreds of
 * thousands, so they are on the heap, in one block: argv (the four slots
 * send_argv fills, then the op's), then the text formatted for them
 * (numbers, queue lists). The other strings are borrowed from the caller
 * until store_script has copied them. */
#define BIG_NUM 21 /* room for one "%lld" and its NUL */

typedef struct qs_big {
    const char **argv;
    size_t n;   /* slots filled, the first four included */
    char *text; /* where the next formatted argument goes */
} qs_big;

/* Room for nargs arguments and textlen bytes of formatted text. */
static int big_new(qs_big *b, size_t nargs, size_t textlen)
{
    size_t head = (4 + nargs) * sizeof *b->argv;
    b->argv = malloc(head + textlen);
    if (!b->argv)
        return ARIQ_ENOMEM;
    b->n = 4;
    b->text = (char *)b->argv + head;
    return 0;
}

static void big_arg(qs_big *b, const char *v)
{
    b->argv[b->n++] = v ? v : "";
}

static void big_num(qs_big *b, long long v)
{
    int len = snprintf(b->text, BIG_NUM, "%lld", v);
    big_arg(b, b->text);
    b->text += len + 1;
}

/* Adds checked queue names joined with '&'. */
static void big_queues(qs_big *b, const char *const *queues, size_t n)
{
    big_arg(b, queues_join(queues, n, b->text));
    b->text += strlen(b->text) + 1;
}

/* Sends the op with the arguments added, and frees the block either way. */
static int big_send(queue_store *qs, const char *op, const char *key, qs_big *b,
                    qs_req *tmpl)
{
    int rc = send_argv(qs, op, key, b->argv, (int)(b->n - 4), tmpl);
    free(b->argv);
    b->argv = NULL;
    return rc;
}

/* KEYS[3] of reconcile and restore: {NS}:node:<this node>:calls. */
static int node_calls_key(queue_store *qs, char *key)
{
    if (store_key(store_get_keys(qs->s), key, STORE_KEY_MAX, "node", qs->cfg.node,
                  "calls") != 0)
        return bad(qs, "node");
    return 0;
}

int qs_reconcile(queue_store *qs, const char *const *alive, size_t nalive,
                 const qs_keep *keep, size_t nkeep, qs_reconcile_cb cb, void *pd)
{
    char key[STORE_KEY_MAX];
    qs_big b;
    if (!cb)
        return bad(qs, "callback required");
    int rc = check_reconcile(qs, alive, nalive, keep, nkeep);
    if (rc == 0)
        rc = node_calls_key(qs, key);
    if (rc == 0)
        rc = big_new(&b, 2 + nalive + 3 * nkeep, 2 * BIG_NUM);
    if (rc != 0)
        return rc;
    big_num(&b, (long long)nalive);
    for (size_t i = 0; i < nalive; i++)
        big_arg(&b, alive[i]);
    big_num(&b, (long long)nkeep);
    for (size_t i = 0; i < nkeep; i++) {
        big_arg(&b, keep[i].pairing);
        big_arg(&b, keep[i].chan1);
        big_arg(&b, keep[i].chan2);
    }
    qs_req t = {.kind = REQ_RECONCILE, .cb.reconcile = cb, .pd = pd};
    return big_send(qs, "reconcile", key, &b, &t);
}

/* ---- re-registration after Redis lost its data ------------------------------ */

#define SEQ_MAX      ((INT64_C(1) << 43) - 1)        /* seqs below the priority */
#define SCORE_MAX    (1001 * (INT64_C(1) << 43) - 1) /* (1000 - 0) * 2^43 + SEQ_MAX */
#define MS_MAX       INT64_C(4102444800000)          /* wall ms bound, as now */
#define RESTORE_N    10                              /* arguments per call, per agent */
#define RESTORE_HEAD (3 * BIG_NUM)                   /* maxseq, ncalls, nagents */

/* The states an agent is restored in (qs_restore_agent.state). */
typedef enum { RS_FREE, RS_PAUSED, RS_WRAPUP, RS_COUNT } restore_st;
static const char *const restore_states[RS_COUNT] = {"free", "paused", "wrapup"};

static bool ms_ok(int64_t ms)
{
    return ms >= 0 && ms <= MS_MAX;
}

static int bad_party(queue_store *qs, const char *kind, size_t i, const char *what)
{
    set_err(qs, "invalid argument: restore %s %zu: %s", kind, i, what);
    return ARIQ_EINVAL;
}

/* Call i of qs_restore, checked as queue.lua checks it; *text grows by the
 * room its formatted arguments take. */
static int check_restore_call(queue_store *qs, size_t i, const qs_restore_call *c,
                              int64_t maxseq, size_t *text)
{
    size_t qlen;
    if (!c->callid || !ids_valid(c->callid, QS_ID_MAX) || !c->channel ||
        !ids_valid(c->channel, QS_ID_MAX))
        return bad_party(qs, "call", i, "call id and channel");
    if (check_queues(qs, c->queues, c->nqueues, &qlen) != 0)
        return bad_party(qs, "call", i, "queues: 1..16 distinct names");
    if (c->priority < 0 || c->priority > 1000)
        return bad_party(qs, "call", i, "priority 0..1000");
    if (c->seq < 1 || c->seq > maxseq || c->score < 1 || c->score > SCORE_MAX)
        return bad_party(qs, "call", i, "seq 1..maxseq, score 1..1001*2^43-1");
    if (!ms_ok(c->entered_ms) || !ms_ok(c->ann_ms))
        return bad_party(qs, "call", i, "entered_ms and ann_ms 0..4102444800000");
    if (!text_ok(c->cid_num) || !text_ok(c->cid_name))
        return bad_party(qs, "call", i, "caller id");
    *text += qlen + 1 + 5 * BIG_NUM;
    return 0;
}

/* The restore_st named s, or -1. */
static int restore_state(const char *s)
{
    for (int i = 0; s && i < RS_COUNT; i++)
        if (strcmp(s, restore_states[i]) == 0)
            return i;
    return -1;
}

/* Agent i of qs_restore: free needs a free_seq, wrapup its end. */
static int check_restore_agent(queue_store *qs, size_t i, const qs_restore_agent *a,
                               int64_t maxseq, size_t *text)
{
    size_t qlen;
    int st = restore_state(a->state);
    if (!a->agentid || !ids_valid(a->agentid, QS_NAME_MAX) || !a->channel ||
        !ids_valid(a->channel, QS_ID_MAX) || !text_ok(a->chan_name))
        return bad_party(qs, "agent", i, "agent id, channel and channel name");
    if (check_queues(qs, a->queues, a->nqueues, &qlen) != 0)
        return bad_party(qs, "agent", i, "queues: 1..16 distinct names");
    if (st < 0 || !text_ok(a->pause_reason))
        return bad_party(qs, "agent", i, "state free|paused|wrapup, pause reason");
    if (a->free_seq < (st == RS_FREE ? 1 : 0) || a->free_seq > maxseq)
        return bad_party(qs, "agent", i, "free_seq 0..maxseq (free: from 1)");
    if (!ms_ok(a->login_ms) || !ms_ok(a->since_ms) || !ms_ok(a->wrapup_until_ms) ||
        (st == RS_WRAPUP && a->wrapup_until_ms < 1))
        return bad_party(qs, "agent", i, "times 0..4102444800000 (wrapup: its end)");
    *text += qlen + 1 + 4 * BIG_NUM;
    return 0;
}

static int check_restore(queue_store *qs, int64_t maxseq, const qs_restore_call *calls,
                         size_t ncalls, const qs_restore_agent *agents, size_t nagents,
                         size_t *text)
{
    if (maxseq < 0 || maxseq > SEQ_MAX || ncalls > QS_RESTORE_CALLS_MAX ||
        nagents > QS_RESTORE_AGENTS_MAX || (ncalls && !calls) || (nagents && !agents))
        return bad(qs, "maxseq 0..2^43-1, calls 0..90000, agents 0..10000");
    for (size_t i = 0; i < ncalls; i++)
        if (check_restore_call(qs, i, &calls[i], maxseq, text) != 0)
            return ARIQ_EINVAL;
    for (size_t i = 0; i < nagents; i++)
        if (check_restore_agent(qs, i, &agents[i], maxseq, text) != 0)
            return ARIQ_EINVAL;
    return 0;
}

static void restore_call_args(qs_big *b, const qs_restore_call *c)
{
    big_arg(b, c->callid);
    big_arg(b, c->channel);
    big_queues(b, c->queues, c->nqueues);
    big_num(b, c->priority);
    big_num(b, c->seq);
    big_num(b, c->score);
    big_num(b, c->entered_ms);
    big_arg(b, c->cid_num);
    big_arg(b, c->cid_name);
    big_num(b, c->ann_ms);
}

static void restore_agent_args(qs_big *b, const qs_restore_agent *a)
{
    big_arg(b, a->agentid);
    big_arg(b, a->channel);
    big_arg(b, a->chan_name);
    big_queues(b, a->queues, a->nqueues);
    big_arg(b, a->state);
    big_arg(b, a->pause_reason);
    big_num(b, a->free_seq);
    big_num(b, a->login_ms);
    big_num(b, a->since_ms);
    big_num(b, a->wrapup_until_ms);
}

int qs_restore(queue_store *qs, int64_t maxseq, const qs_restore_call *calls,
               size_t ncalls, const qs_restore_agent *agents, size_t nagents,
               qs_restore_cb cb, void *pd)
{
    char key[STORE_KEY_MAX];
    size_t text = RESTORE_HEAD;
    qs_big b;
    if (!cb)
        return bad(qs, "callback required");
    int rc = check_restore(qs, maxseq, calls, ncalls, agents, nagents, &text);
    if (rc == 0)
        rc = node_calls_key(qs, key);
    if (rc == 0)
        rc = big_new(&b, 3 + RESTORE_N * (ncalls + nagents), text);
    if (rc != 0)
        return rc;
    big_num(&b, maxseq);
    big_num(&b, (long long)ncalls);
    for (size_t i = 0; i < ncalls; i++)
        restore_call_args(&b, &calls[i]);
    big_num(&b, (long long)nagents);
    for (size_t i = 0; i < nagents; i++)
        restore_agent_args(&b, &agents[i]);
    qs_req t = {.kind = REQ_RESTORE, .cb.restore = cb, .pd = pd};
    return big_send(qs, "restore", key, &b, &t);
}

/* ---- reads ------------------------------------------------------------------ */

/* call_info and announce_info: the same key, argument and reply. */
static int call_view(queue_store *qs, const char *op, const char *callid,
                     qs_call_view_cb cb, void *pd)
{
    qs_msg m = {.op = op};
    int rc = msg_key(qs, &m, "call", callid, QS_ID_MAX, NULL);
    if (rc != 0)
        return rc;
    if (!cb)
        return bad(qs, "callback required");
    arg(&m, callid);
    qs_req t = {.kind = REQ_CALL_INFO, .cb.call_info = cb, .pd = pd};
    return send_msg(qs, &m, &t);
}

int qs_call_info(queue_store *qs, const char *callid, qs_call_view_cb cb, void *pd)
{
    return call_view(qs, "call_info", callid, cb, pd);
}

int qs_announce_info(queue_store *qs, const char *callid, qs_call_view_cb cb, void *pd)
{
    return call_view(qs, "announce_info", callid, cb, pd);
}

int qs_set_priority(queue_store *qs, const char *callid, int priority, qs_call_view_cb cb,
                    void *pd)
{
    qs_msg m = {.op = "set_priority"};
    int rc = msg_key(qs, &m, "call", callid, QS_ID_MAX, NULL);
    if (rc != 0)
        return rc;
    if (!cb || priority < 0 || priority > 1000)
        return bad(qs, "set_priority needs a callback and a priority 0..1000");
    arg(&m, callid);
    arg_num(&m, 0, priority);
    qs_req t = {.kind = REQ_CALL_INFO, .cb.call_info = cb, .pd = pd};
    return send_msg(qs, &m, &t);
}

int qs_queue_info(queue_store *qs, const char *queue, qs_queue_view_cb cb, void *pd)
{
    qs_msg m = {.op = "queue_info"};
    int rc = msg_key(qs, &m, "queue", queue, QS_NAME_MAX, "callers");
    if (rc != 0)
        return rc;
    if (!cb)
        return bad(qs, "callback required");
    arg(&m, queue);
    qs_req t = {.kind = REQ_QUEUE_INFO, .cb.queue_info = cb, .pd = pd};
    return send_msg(qs, &m, &t);
}
