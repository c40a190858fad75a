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

typedef enum {
    QF_INT,      /* int64_t */
    QF_STR,      /* char[size] */
    QF_INTLIST,  /* int64_t[QS_QUEUES_MAX], count at count_off */
    QF_PAIRINGS, /* const qs_pairing *, count at count_off */
    QF_QUEUES,   /* qs_call_queue[QS_QUEUES_MAX], count at count_off */
} qf_kind;

/* One name a reply may carry and where its value goes in the result. */
typedef struct qf {
    const char *name;
    qf_kind kind;
    size_t off;
    size_t size;      /* QF_STR: buffer size */
    size_t count_off; /* list kinds: where the count goes */
} qf;

typedef struct parse_ctx {
    qs_pairing **owned;
    char *err;
    size_t errlen;
} parse_ctx;

#define F_INT(T, m)                                                                      \
    {                                                                                    \
#m, QF_INT, offsetof(T, m), 0, 0                                                 \
    }
#define F_STR(T, m)                                                                      \
    {                                                                                    \
#m, QF_STR, offsetof(T, m), sizeof(((T *)0)->m), 0                               \
    }

static const qf pairing_fields[] = {
    F_STR(qs_pairing, pairing),        F_STR(qs_pairing, call),
    F_STR(qs_pairing, agent),          F_STR(qs_pairing, queue),
    F_STR(qs_pairing, caller_channel), F_STR(qs_pairing, agent_channel),
    F_STR(qs_pairing, caller_node),    F_STR(qs_pairing, agent_node),
    F_INT(qs_pairing, created_ms),     F_INT(qs_pairing, holdtime_ms),
};
#define PAIRING_ALL ((1u << 10) - 1)

static const qf call_queue_fields[] = {
    F_STR(qs_call_queue, queue),
    F_INT(qs_call_queue, position),
    F_INT(qs_call_queue, ahead),
    F_INT(qs_call_queue, length),
};
#define CALL_QUEUE_ALL 0xFu

static int perr(parse_ctx *c, const char *what, const char *name)
{
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, "malformed reply: %s%s%s", what, name ? " for " : "",
                 name ? name : "");
    return ARIQ_EINVAL;
}

static int parse_kv(parse_ctx *c, const redisReply *r, const qf *fields, size_t nfields,
                    void *out, unsigned *seen);

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
    for (size_t i = 0; i < v->elements; i++) {
        unsigned seen = 0;
        int rc =
            parse_kv(c, v->element[i], pairing_fields,
                     sizeof pairing_fields / sizeof pairing_fields[0], &ps[i], &seen);
        if (rc == 0 && seen != PAIRING_ALL)
            rc = perr(c, "a pairing lacks a field", f->name);
        if (rc != 0)
            return rc;
    }
    *(const qs_pairing **)(base + f->off) = ps;
    *(size_t *)(base + f->count_off) = v->elements;
    return 0;
}

static int put_queues(parse_ctx *c, const qf *f, const redisReply *v, char *base)
{
    if (v->type != REDIS_REPLY_ARRAY || v->elements > QS_QUEUES_MAX)
        return perr(c, "an array of at most 16 queues expected", f->name);
    qs_call_queue *qs = (qs_call_queue *)(base + f->off);
    for (size_t i = 0; i < v->elements; i++) {
        unsigned seen = 0;
        int rc = parse_kv(c, v->element[i], call_queue_fields,
                          sizeof call_queue_fields / sizeof call_queue_fields[0], &qs[i],
                          &seen);
        if (rc == 0 && seen != CALL_QUEUE_ALL)
            rc = perr(c, "a queue lacks a field", f->name);
        if (rc != 0)
            return rc;
    }
    *(size_t *)(base + f->count_off) = v->elements;
    return 0;
}

static int put_value(parse_ctx *c, const qf *f, const redisReply *v, void *out)
{
    char *base = out;
    switch (f->kind) {
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
     offsetof(qs_enter_result, npositions)},
    {"pairings", QF_PAIRINGS, offsetof(qs_enter_result, pairings), 0,
     offsetof(qs_enter_result, npairings)},
};

int qs_parse_enter(const redisReply *r, qs_enter_result *out, qs_pairing **owned,
                   char *err, size_t errlen)
{
    parse_ctx c = {owned, err, errlen};
    unsigned seen = 0;
    memset(out, 0, sizeof *out);
    *owned = NULL;
    int rc = parse_kv(&c, r, enter_fields, 4, out, &seen);
    if (rc == 0 && seen != 0xFu)
        rc = perr(&c, "seq, score, positions and pairings expected", NULL);
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
     offsetof(qs_result, npairings)},
    F_INT(qs_result, connected),
    F_STR(qs_result, pairing),
    F_INT(qs_result, wrapup_ms),
    F_STR(qs_result, sides),
};

int qs_parse_result(const redisReply *r, unsigned required, qs_result *out,
                    qs_pairing **owned, char *err, size_t errlen)
{
    parse_ctx c = {owned, err, errlen};
    unsigned seen = 0;
    memset(out, 0, sizeof *out);
    *owned = NULL;
    int rc = parse_kv(&c, r, result_fields,
                      sizeof result_fields / sizeof result_fields[0], out, &seen);
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
     offsetof(qs_call_view, nqueues)},
};

/* "found" is read by hand: a not-found reply carries nothing else. */
int qs_parse_call_info(const redisReply *r, qs_call_view *out, char *err, size_t errlen)
{
    parse_ctx c = {NULL, err, errlen};
    memset(out, 0, sizeof *out);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !r->element[0] ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "found") != 0 || !r->element[1] ||
        r->element[1]->type != REDIS_REPLY_INTEGER)
        return perr(&c, "found expected first", NULL);
    if (r->element[1]->integer == 0)
        return r->elements == 2 ? 0 : perr(&c, "fields after found 0", NULL);
    out->found = true;
    unsigned seen = 0;
    int rc = parse_kv(&c, r, call_info_fields, 7, out, &seen);
    if (rc == 0 && seen != 0x7Fu)
        rc = perr(&c, "a call field is missing", NULL);
    return rc;
}

static const qf queue_info_fields[] = {
    F_INT(qs_queue_view, callers),         F_INT(qs_queue_view, agents_free),
    F_STR(qs_queue_view, front),           F_STR(qs_queue_view, oldest),
    F_INT(qs_queue_view, longest_wait_ms),
};

int qs_parse_queue_info(const redisReply *r, qs_queue_view *out, char *err, size_t errlen)
{
    parse_ctx c = {NULL, err, errlen};
    unsigned seen = 0;
    memset(out, 0, sizeof *out);
    int rc = parse_kv(&c, r, queue_info_fields, 5, out, &seen);
    if (rc == 0 && seen != 0x1Fu)
        rc = perr(&c, "a queue field is missing", NULL);
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
    parse_ctx c = {NULL, err, errlen};
    reap_raw raw = {0};
    unsigned seen = 0;
    memset(out, 0, sizeof *out);
    int rc = parse_kv(&c, r, reap_fields, 4, &raw, &seen);
    if (rc == 0 && seen != 0xFu)
        rc = perr(&c, "a reap field is missing", NULL);
    if (rc == 0 && (raw.pairings < 0 || raw.calls < 0 || raw.agents < 0 ||
                    (raw.more != 0 && raw.more != 1)))
        rc = perr(&c, "counts must be >= 0 and more 0 or 1", NULL);
    if (rc == 0)
        *out = (qs_reap_result){raw.pairings, raw.calls, raw.agents, raw.more == 1};
    return rc;
}
