/* queue_store_parse.c - turns queue.lua's replies into typed results.
 *
 * A reply is outside input like any other: every value is checked for its
 * type and bounded (string lengths, array counts) before it is copied into
 * a result, and a reply that lacks what the op promises is refused whole. */
#include "store/queue_store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/ids.h"

typedef enum {
    QF_INT,      /* int64_t */
    QF_STR,      /* char[size] */
    QF_INTLIST,  /* int64_t[QS_QUEUES_MAX], count at count_off */
    QF_PAIRINGS, /* const qs_pairing *, count at count_off */
    QF_QUEUES,   /* qs_call_queue[QS_QUEUES_MAX], count at count_off */
    QF_BOOL,     /* bool, from an integer 0 or 1 */
    QF_QNAMES,   /* "a&b" into char[QS_QUEUES_MAX][QS_NAME_MAX + 1], count at count_off */
    QF_RECS,     /* const T *, an array of records described by rec, count at count_off */
    QF_CHANS,    /* const char *const *, an array of ids, count at count_off */
} qf_kind;

struct qf_rec;

/* One name a reply may carry and where its value goes in the result. */
typedef struct qf {
    const char *name;
    qf_kind kind;
    size_t off;
    size_t size;              /* QF_STR: buffer size */
    size_t count_off;         /* list kinds: where the count goes */
    const struct qf_rec *rec; /* QF_RECS, QF_CHANS: the array's layout */
} qf;

/* An array of records in a reply (QF_RECS): each a name, value array parsed
 * with `fields`, all of them required; allocated into block `slot` of the
 * context. QF_CHANS uses max and slot only. */
typedef struct qf_rec {
    const qf *fields;
    size_t nfields;
    size_t size; /* sizeof one record */
    size_t max;  /* most records accepted */
    int slot;
} qf_rec;

typedef struct parse_ctx {
    qs_pairing **owned;
    char *err;
    size_t errlen;
    void **blocks; /* QF_RECS / QF_CHANS allocations, QS_RC_BLOCKS of them */
} parse_ctx;

#define NFIELDS(a) (sizeof(a) / sizeof(a)[0])

#define F_INT(T, m)                                                                      \
    {                                                                                    \
#m, QF_INT, offsetof(T, m), 0, 0, NULL                                           \
    }
#define F_STR(T, m)                                                                      \
    {                                                                                    \
#m, QF_STR, offsetof(T, m), sizeof(((T *)0)->m), 0, NULL                         \
    }

static const qf pairing_fields[] = {
    F_STR(qs_pairing, pairing),        F_STR(qs_pairing, call),
    F_STR(qs_pairing, agent),          F_STR(qs_pairing, queue),
    F_STR(qs_pairing, caller_channel), F_STR(qs_pairing, agent_channel),
    F_STR(qs_pairing, caller_node),    F_STR(qs_pairing, agent_node),
    F_INT(qs_pairing, created_ms),     F_INT(qs_pairing, holdtime_ms),
};

static const qf call_queue_fields[] = {
    F_STR(qs_call_queue, queue),
    F_INT(qs_call_queue, position),
    F_INT(qs_call_queue, ahead),
    F_INT(qs_call_queue, length),
};

static int perr(parse_ctx *c, const char *what, const char *name)
{
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, "malformed reply: %s%s%s", what, name ? " for " : "",
                 name ? name : "");
    return ARIQ_EINVAL;
}

static int parse_kv(parse_ctx *c, const redisReply *r, const qf *fields, size_t nfields,
                    void *out, unsigned *seen);

/* parse_kv with every one of the fields required: `missing` (for `name`)
 * when one is not there. */
static int parse_all(parse_ctx *c, const redisReply *r, const qf *fields, size_t nfields,
                     void *out, const char *missing, const char *name)
{
    unsigned seen = 0;
    int rc = parse_kv(c, r, fields, nfields, out, &seen);
    if (rc == 0 && seen != (1u << nfields) - 1)
        rc = perr(c, missing, name);
    return rc;
}

/* Each element of array v a record of `fields`, all required, into out
 * (records `size` bytes apart); `lacks` names what a short one lacks. */
static int parse_each(parse_ctx *c, const qf *f, const redisReply *v, const qf *fields,
                      size_t nfields, char *out, size_t size, const char *lacks)
{
    for (size_t i = 0; i < v->elements; i++) {
        int rc = parse_all(c, v->element[i], fields, nfields, out + i * size, lacks,
                           f->name);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int put_str(parse_ctx *c, const qf *f, const redisReply *v, char *dst)
{
    if (v->type != REDIS_REPLY_STRING)
        return perr(c, "a string expected", f->name);
    if (v->len >= f->size || memchr(v->str, '\0', v->len))
        return perr(c, "string too long or with a NUL", f->name);
    memcpy(dst, v->str, v->len);
    dst[v->len] = '\0';
    return 0;
}

static int put_intlist(parse_ctx *c, const qf *f, const redisReply *v, char *base)
{
    if (v->type != REDIS_REPLY_ARRAY || v->elements > QS_QUEUES_MAX)
        return perr(c, "an array of at most 16 integers expected", f->name);
    int64_t *dst = (int64_t *)(base + f->off);
    for (size_t i = 0; i < v->elements; i++) {
        const redisReply *e = v->element[i];
        if (!e || e->type != REDIS_REPLY_INTEGER)
            return perr(c, "an integer expected", f->name);
        dst[i] = e->integer;
    }
    *(size_t *)(base + f->count_off) = v->elements;
    return 0;
}

static int put_pairings(parse_ctx *c, const qf *f, const redisReply *v, char *base)
{
    if (v->type != REDIS_REPLY_ARRAY || v->elements > QS_PAIRS_MAX)
        return perr(c, "an array of at most 1000 pairings expected", f->name);
    if (*c->owned || v->elements == 0)
        return *c->owned ? perr(c, "pairings given twice", f->name) : 0;
    qs_pairing *ps = calloc(v->elements, sizeof *ps);
    if (!ps)
        return ARIQ_ENOMEM;
    *c->owned = ps;
    int rc = parse_each(c, f, v, pairing_fields, NFIELDS(pairing_fields), (char *)ps,
                        sizeof *ps, "a pairing lacks a field");
    if (rc != 0)
        return rc;
    *(const qs_pairing **)(base + f->off) = ps;
    *(size_t *)(base + f->count_off) = v->elements;
    return 0;
}

static int put_queues(parse_ctx *c, const qf *f, const redisReply *v, char *base)
{
    if (v->type != REDIS_REPLY_ARRAY || v->elements > QS_QUEUES_MAX)
        return perr(c, "an array of at most 16 queues expected", f->name);
    int rc = parse_each(c, f, v, call_queue_fields, NFIELDS(call_queue_fields),
                        base + f->off, sizeof(qs_call_queue), "a queue lacks a field");
    if (rc != 0)
        return rc;
    *(size_t *)(base + f->count_off) = v->elements;
    return 0;
}

static int put_bool(parse_ctx *c, const qf *f, const redisReply *v, char *base)
{
    if (v->type != REDIS_REPLY_INTEGER || (v->integer != 0 && v->integer != 1))
        return perr(c, "0 or 1 expected", f->name);
    *(bool *)(base + f->off) = v->integer == 1;
    return 0;
}

/* "a&b": 1..16 names of 1..64 id bytes. */
static int put_qnames(parse_ctx *c, const qf *f, const redisReply *v, char *base)
{
    char(*dst)[QS_NAME_MAX + 1] = (char(*)[QS_NAME_MAX + 1])(base + f->off);
    size_t n = 0;
    if (v->type != REDIS_REPLY_STRING)
        return perr(c, "a string expected", f->name);
    for (size_t i = 0; i <= v->len; n++) {
        size_t len = 0;
        while (i + len < v->len && v->str[i + len] != '&')
            len++;
        if (n >= QS_QUEUES_MAX || len < 1 || len > QS_NAME_MAX)
            return perr(c, "1..16 queue names joined by & expected", f->name);
        memcpy(dst[n], v->str + i, len);
        dst[n][len] = '\0';
        if (!ids_valid(dst[n], QS_NAME_MAX))
            return perr(c, "a bad queue name", f->name);
        i += len + 1;
    }
    *(size_t *)(base + f->count_off) = n;
    return 0;
}

/* QF_RECS and QF_CHANS: an array of at most rec->max elements, its block
 * not taken yet. */
static int check_block(parse_ctx *c, const qf *f, const redisReply *v,
                       const char *not_array, const char *twice)
{
    if (v->type != REDIS_REPLY_ARRAY || v->elements > f->rec->max)
        return perr(c, not_array, f->name);
    if (!c->blocks || c->blocks[f->rec->slot])
        return perr(c, twice, f->name);
    return 0;
}

static int put_recs(parse_ctx *c, const qf *f, const redisReply *v, char *base)
{
    const qf_rec *d = f->rec;
    int rc = check_block(c, f, v, "an array of records expected", "records given twice");
    if (rc != 0 || v->elements == 0)
        return rc;
    char *recs = calloc(v->elements, d->size);
    if (!recs)
        return ARIQ_ENOMEM;
    c->blocks[d->slot] = recs;
    rc = parse_each(c, f, v, d->fields, d->nfields, recs, d->size,
                    "a record lacks a field");
    if (rc != 0)
        return rc;
    *(const void **)(base + f->off) = recs;
    *(size_t *)(base + f->count_off) = v->elements;
    return 0;
}

/* An array of ids: one block, the pointers first, then the strings. */
static int put_chans(parse_ctx *c, const qf *f, const redisReply *v, char *base)
{
    const qf_rec *d = f->rec;
    int rc = check_block(c, f, v, "an array of ids expected", "ids given twice");
    if (rc != 0 || v->elements == 0)
        return rc;
    size_t ptrs = v->elements * sizeof(char *);
    char **vec = calloc(1, ptrs + v->elements * (QS_ID_MAX + 1));
    if (!vec)
        return ARIQ_ENOMEM;
    c->blocks[d->slot] = vec;
    char *str = (char *)vec + ptrs;
    for (size_t i = 0; i < v->elements; i++) {
        const redisReply *e = v->element[i];
        if (!e || e->type != REDIS_REPLY_STRING || e->len > QS_ID_MAX)
            return perr(c, "an id expected", f->name);
        vec[i] = str + i * (QS_ID_MAX + 1);
        memcpy(vec[i], e->str, e->len);
        vec[i][e->len] = '\0';
        if (!ids_valid(vec[i], QS_ID_MAX))
            return perr(c, "a bad id", f->name);
    }
    *(const char *const **)(base + f->off) = (const char *const *)vec;
    *(size_t *)(base + f->count_off) = v->elements;
    return 0;
}

static int put_value(parse_ctx *c, const qf *f, const redisReply *v, void *out)
{
    char *base = out;
    switch (f->kind) {
    case QF_BOOL:
        return put_bool(c, f, v, base);
    case QF_QNAMES:
        return put_qnames(c, f, v, base);
    case QF_RECS:
        return put_recs(c, f, v, base);
    case QF_CHANS:
        return put_chans(c, f, v, base);
    case QF_INT:
        if (v->type != REDIS_REPLY_INTEGER)
            return perr(c, "an integer expected", f->name);
        *(int64_t *)(base + f->off) = v->integer;
        return 0;
    case QF_STR:
        return put_str(c, f, v, base + f->off);
    case QF_INTLIST:
        return put_intlist(c, f, v, base);
    case QF_PAIRINGS:
        return put_pairings(c, f, v, base);
    case QF_QUEUES:
        return put_queues(c, f, v, base);
    }
    return perr(c, "internal: unknown field kind", f->name);
}

/* Walks a flat name, value array; `seen` gets bit i for fields[i]. A name
 * given twice is refused (which value would be right?). */
static int parse_kv(parse_ctx *c, const redisReply *r, const qf *fields, size_t nfields,
                    void *out, unsigned *seen)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
        return perr(c, "an array of name, value pairs expected", NULL);
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *n = r->element[i], *v = r->element[i + 1];
        if (!n || !v || n->type != REDIS_REPLY_STRING)
            return perr(c, "a field name expected", NULL);
        for (size_t j = 0; j < nfields; j++) {
            if (strlen(fields[j].name) != n->len ||
                memcmp(fields[j].name, n->str, n->len) != 0)
                continue;
            if (*seen & (1u << j))
                return perr(c, "a field given twice", fields[j].name);
            *seen |= 1u << j;
            int rc = put_value(c, &fields[j], v, out);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

static const qf enter_fields[] = {
    F_INT(qs_enter_result, seq),
    F_INT(qs_enter_result, score),
    {"positions", QF_INTLIST, offsetof(qs_enter_result, positions), 0,
     offsetof(qs_enter_result, npositions), NULL},
    {"pairings", QF_PAIRINGS, offsetof(qs_enter_result, pairings), 0,
     offsetof(qs_enter_result, npairings), NULL},
};

int qs_parse_enter(const redisReply *r, qs_enter_result *out, qs_pairing **owned,
                   char *err, size_t errlen)
{
    parse_ctx c = {owned, err, errlen, NULL};
    memset(out, 0, sizeof *out);
    *owned = NULL;
    int rc = parse_all(&c, r, enter_fields, NFIELDS(enter_fields), out,
                       "seq, score, positions and pairings expected", NULL);
    if (rc == 0 && (out->seq < 1 || out->score < 1 || out->npositions < 1))
        rc = perr(&c, "seq, score and positions must be positive", NULL);
    return rc;
}

/* Order matters: bit i of `required` is result_fields[i] (QS_REQ_*). */
static const qf result_fields[] = {
    F_STR(qs_result, outcome),
    F_STR(qs_result, call_outcome),
    F_STR(qs_result, call),
    F_STR(qs_result, state),
    F_INT(qs_result, seq),
    F_INT(qs_result, holdtime_ms),
    F_INT(qs_result, ringtime_ms),
    {"pairings", QF_PAIRINGS, offsetof(qs_result, pairings), 0,
     offsetof(qs_result, npairings), NULL},
    F_INT(qs_result, connected),
    F_STR(qs_result, pairing),
    F_INT(qs_result, wrapup_ms),
    F_STR(qs_result, sides),
};

int qs_parse_result(const redisReply *r, unsigned required, qs_result *out,
                    qs_pairing **owned, char *err, size_t errlen)
{
    parse_ctx c = {owned, err, errlen, NULL};
    unsigned seen = 0;
    memset(out, 0, sizeof *out);
    *owned = NULL;
    int rc = parse_kv(&c, r, result_fields, NFIELDS(result_fields), out, &seen);
    if (rc == 0 && (seen & required) != required)
        rc = perr(&c, "a field the op promises is missing", NULL);
    return rc;
}

static const qf call_info_fields[] = {
    F_STR(qs_call_view, state),
    F_STR(qs_call_view, node),
    F_STR(qs_call_view, pairing),
    F_INT(qs_call_view, seq),
    F_INT(qs_call_view, priority),
    F_INT(qs_call_view, entered_ms),
    {"queues", QF_QUEUES, offsetof(qs_call_view, queues), 0,
     offsetof(qs_call_view, nqueues), NULL},
};

/* "found" is read by hand: a not-found reply carries nothing else. */
int qs_parse_call_info(const redisReply *r, qs_call_view *out, char *err, size_t errlen)
{
    parse_ctx c = {NULL, err, errlen, NULL};
    memset(out, 0, sizeof *out);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !r->element[0] ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "found") != 0 || !r->element[1] ||
        r->element[1]->type != REDIS_REPLY_INTEGER)
        return perr(&c, "found expected first", NULL);
    if (r->element[1]->integer == 0)
        return r->elements == 2 ? 0 : perr(&c, "fields after found 0", NULL);
    out->found = true;
    return parse_all(&c, r, call_info_fields, NFIELDS(call_info_fields), out,
                     "a call field is missing", NULL);
}

static const qf queue_info_fields[] = {
    F_INT(qs_queue_view, callers),         F_INT(qs_queue_view, agents_free),
    F_STR(qs_queue_view, front),           F_STR(qs_queue_view, oldest),
    F_INT(qs_queue_view, longest_wait_ms),
};

int qs_parse_queue_info(const redisReply *r, qs_queue_view *out, char *err, size_t errlen)
{
    parse_ctx c = {NULL, err, errlen, NULL};
    memset(out, 0, sizeof *out);
    int rc = parse_all(&c, r, queue_info_fields, NFIELDS(queue_info_fields), out,
                       "a queue field is missing", NULL);
    if (rc == 0 && (out->callers < 0 || out->agents_free < 0 || out->longest_wait_ms < 0))
        rc = perr(&c, "negative count", NULL);
    return rc;
}

typedef struct reap_raw {
    int64_t pairings, calls, agents, more;
} reap_raw;

static const qf reap_fields[] = {
    F_INT(reap_raw, pairings),
    F_INT(reap_raw, calls),
    F_INT(reap_raw, agents),
    F_INT(reap_raw, more),
};

int qs_parse_reap(const redisReply *r, qs_reap_result *out, char *err, size_t errlen)
{
    parse_ctx c = {NULL, err, errlen, NULL};
    reap_raw raw = {0};
    memset(out, 0, sizeof *out);
    int rc = parse_all(&c, r, reap_fields, NFIELDS(reap_fields), &raw,
                       "a reap field is missing", NULL);
    if (rc == 0 && (raw.pairings < 0 || raw.calls < 0 || raw.agents < 0 ||
                    (raw.more != 0 && raw.more != 1)))
        rc = perr(&c, "counts must be >= 0 and more 0 or 1", NULL);
    if (rc == 0)
        *out = (qs_reap_result){raw.pairings, raw.calls, raw.agents, raw.more == 1};
    return rc;
}

static const qf restore_fields[] = {
    F_INT(qs_restore_result, seq),
    F_INT(qs_restore_result, restored_calls),
    F_INT(qs_restore_result, restored_agents),
    F_INT(qs_restore_result, present_calls),
    F_INT(qs_restore_result, present_agents),
};

int qs_parse_restore(const redisReply *r, qs_restore_result *out, char *err,
                     size_t errlen)
{
    parse_ctx c = {NULL, err, errlen, NULL};
    memset(out, 0, sizeof *out);
    int rc = parse_all(&c, r, restore_fields, NFIELDS(restore_fields), out,
                       "a restore field is missing", NULL);
    if (rc == 0 && (out->seq < 0 || out->restored_calls < 0 || out->restored_agents < 0 ||
                    out->present_calls < 0 || out->present_agents < 0))
        rc = perr(&c, "negative count", NULL);
    return rc;
}

/* ---- reconcile ------------------------------------------------------------ */

#define F_STRN(T, n, m)                                                                  \
    {                                                                                    \
        n, QF_STR, offsetof(T, m), sizeof(((T *)0)->m), 0, NULL                          \
    }
#define F_INTN(T, n, m)                                                                  \
    {                                                                                    \
        n, QF_INT, offsetof(T, m), 0, 0, NULL                                            \
    }

static const qf call_rec_fields[] = {
    F_STR(qs_call_rec, callid),
    F_STR(qs_call_rec, channel),
    F_STR(qs_call_rec, state),
    F_STR(qs_call_rec, pairing),
    {"queues", QF_QNAMES, offsetof(qs_call_rec, queues), 0,
     offsetof(qs_call_rec, nqueues), NULL},
    F_INT(qs_call_rec, priority),
    F_INT(qs_call_rec, seq),
    F_INT(qs_call_rec, score),
    F_INT(qs_call_rec, entered_ms),
    F_INT(qs_call_rec, ann_ms),
    F_INT(qs_call_rec, anns),
    F_STR(qs_call_rec, cid_num),
    F_STR(qs_call_rec, cid_name),
};

static const qf agent_rec_fields[] = {
    F_STR(qs_agent_rec, agentid),
    F_STR(qs_agent_rec, channel),
    F_STR(qs_agent_rec, chan_name),
    F_STR(qs_agent_rec, state),
    {"queues", QF_QNAMES, offsetof(qs_agent_rec, queues), 0,
     offsetof(qs_agent_rec, nqueues), NULL},
    {"paused", QF_BOOL, offsetof(qs_agent_rec, paused), 0, 0, NULL},
    F_STR(qs_agent_rec, pause_reason),
    F_INT(qs_agent_rec, since_ms),
    F_INT(qs_agent_rec, wrapup_until_ms),
    F_STR(qs_agent_rec, pairing),
    F_INT(qs_agent_rec, free_seq),
};

static const qf kept_fields[] = {
    F_STRN(qs_kept_pairing, "pairing", p.pairing),
    F_STRN(qs_kept_pairing, "call", p.call),
    F_STRN(qs_kept_pairing, "agent", p.agent),
    F_STRN(qs_kept_pairing, "queue", p.queue),
    F_STRN(qs_kept_pairing, "caller_channel", p.caller_channel),
    F_STRN(qs_kept_pairing, "agent_channel", p.agent_channel),
    F_STRN(qs_kept_pairing, "caller_node", p.caller_node),
    F_STRN(qs_kept_pairing, "agent_node", p.agent_node),
    F_INTN(qs_kept_pairing, "created_ms", p.created_ms),
    F_INTN(qs_kept_pairing, "holdtime_ms", p.holdtime_ms),
    F_STR(qs_kept_pairing, state),
    F_STR(qs_kept_pairing, sides),
    F_STR(qs_kept_pairing, link_channel),
    F_STR(qs_kept_pairing, rec),
    F_STR(qs_kept_pairing, rec_state),
};

static const qf_rec calls_rec = {call_rec_fields, NFIELDS(call_rec_fields),
                                 sizeof(qs_call_rec), QS_ALIVE_MAX, 0};
static const qf_rec agents_rec = {agent_rec_fields, NFIELDS(agent_rec_fields),
                                  sizeof(qs_agent_rec), QS_ALIVE_MAX, 1};
static const qf_rec kept_rec = {kept_fields, NFIELDS(kept_fields),
                                sizeof(qs_kept_pairing), QS_KEEP_MAX, 2};
static const qf_rec hangup_rec = {NULL, 0, 0, QS_ALIVE_MAX, 3};

#define F_RECS(n, m, cnt, d)                                                             \
    {                                                                                    \
        n, QF_RECS, offsetof(qs_reconcile_result, m), 0,                                 \
            offsetof(qs_reconcile_result, cnt), &d                                       \
    }

static const qf reconcile_fields[] = {
    F_INT(qs_reconcile_result, seq),
    F_RECS("calls", calls, ncalls, calls_rec),
    F_RECS("agents", agents, nagents, agents_rec),
    F_RECS("pairings", pairings, npairings, kept_rec),
    {"hangup", QF_CHANS, offsetof(qs_reconcile_result, hangup), 0,
     offsetof(qs_reconcile_result, nhangup), &hangup_rec},
    F_INT(qs_reconcile_result, rolled_back),
    F_INT(qs_reconcile_result, unlinked),
    F_INT(qs_reconcile_result, completed),
    F_INT(qs_reconcile_result, abandoned),
    F_INT(qs_reconcile_result, logged_off),
};

int qs_parse_reconcile(const redisReply *r, qs_reconcile_result *out,
                       qs_reconcile_owned *owned, char *err, size_t errlen)
{
    parse_ctx c = {NULL, err, errlen, owned->block};
    memset(out, 0, sizeof *out);
    memset(owned, 0, sizeof *owned);
    int rc = parse_all(&c, r, reconcile_fields, NFIELDS(reconcile_fields), out,
                       "a reconcile field is missing", NULL);
    if (rc == 0 && (out->seq < 0 || out->rolled_back < 0 || out->unlinked < 0 ||
                    out->completed < 0 || out->abandoned < 0 || out->logged_off < 0))
        rc = perr(&c, "negative count", NULL);
    return rc;
}

void qs_reconcile_owned_free(qs_reconcile_owned *o)
{
    for (size_t i = 0; i < QS_RC_BLOCKS; i++) {
        free(o->block[i]);
        o->block[i] = NULL;
    }
}
