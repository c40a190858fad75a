/* harness.c - see harness.h. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"

static const char *const node_names[HX_NODES] = {"A", "B"};

static void on_ready(store *s, void *ud)
{
    (void)s;
    ((hx_node *)ud)->ready++;
}

static uint64_t hx_clock(void *ud)
{
    return ((hx *)ud)->now;
}

static int node_start(hx *h, int i, const char *scripts_dir)
{
    store_config cfg;
    store_config_init(&cfg);
    cfg.port = h->r.port;
    if (scripts_dir)
        snprintf(cfg.scripts_dir, sizeof cfg.scripts_dir, "%s", scripts_dir);
    store_callbacks cbs = {.on_ready = on_ready};
    char err[256];
    if (store_new(h->base, &cfg, &cbs, &h->n[i], &h->n[i].s, err, sizeof err) != 0) {
        fprintf(stderr, "store_new: %s\n", err);
        return -1;
    }
    qs_config qc;
    qs_config_init(&qc);
    snprintf(qc.node, sizeof qc.node, "%s", node_names[i]);
    if (qs_new(h->n[i].s, &qc, &h->n[i].qs) != 0)
        return -1;
    qs_set_clock(h->n[i].qs, hx_clock, h);
    return hx_wait(h, &h->n[i].ready, 1, 5000) ? 0 : -1;
}

int hx_start(hx *h, const char *scripts_dir)
{
    memset(h, 0, sizeof *h);
    signal(SIGPIPE, SIG_IGN);
    h->now = 1700000000000ULL;
    h->base = event_base_new();
    if (!h->base || redis_proc_start(&h->r, NULL) != 0)
        return -1;
    h->rc = redis_proc_connect(&h->r);
    if (!h->rc)
        return -1;
    for (int i = 0; i < HX_NODES; i++)
        if (node_start(h, i, scripts_dir) != 0)
            return -1;
    return 0;
}

int hx_stop(hx *h)
{
    for (int i = 0; i < HX_NODES; i++) {
        store_free(h->n[i].s); /* completes what is pending first */
        qs_free(h->n[i].qs);
    }
    int left = h->base ? event_base_get_num_events(h->base, EVENT_BASE_COUNT_ADDED) : 0;
    if (h->base)
        event_base_free(h->base);
    if (h->rc)
        redisFree(h->rc);
    redis_proc_stop(&h->r, SIGKILL);
    return left;
}

int hx_setup_dir(void **state, const char *scripts_dir)
{
    hx *h = calloc(1, sizeof *h);
    *state = h;
    if (hx_start(h, scripts_dir) != 0) {
        hx_stop(h);
        free(h);
        return -1;
    }
    return 0;
}

int hx_setup(void **state)
{
    return hx_setup_dir(state, NULL);
}

int hx_setup_env(void **state)
{
    return hx_setup_dir(state, getenv("QS_SCRIPTS_DIR"));
}

int hx_teardown(void **state)
{
    hx *h = *state;
    int left = hx_stop(h);
    free(h);
    assert_int_equal(left, 0);
    return 0;
}

bool hx_wait(hx *h, const int *counter, int target, int ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)ms;
    while (*counter < target && clock_mono_ms() < end)
        event_base_loop(h->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    return *counter >= target;
}

static void copy_pairs(hx_out *o, const qs_pairing *p, size_t n)
{
    o->npairs = n < HX_PAIRS ? n : HX_PAIRS;
    for (size_t i = 0; i < o->npairs; i++)
        o->pairs[i] = p[i];
}

static void out_done(queue_store *qs, int err, hx_out *o)
{
    o->err = err;
    snprintf(o->errmsg, sizeof o->errmsg, "%s", err ? qs_errmsg(qs) : "");
    o->done++;
}

void hx_enter_cb(queue_store *qs, int err, const qs_enter_result *res, void *pd)
{
    hx_out *o = pd;
    if (res) {
        o->enter = *res;
        copy_pairs(o, res->pairings, res->npairings);
    }
    out_done(qs, err, o);
}

void hx_result_cb(queue_store *qs, int err, const qs_result *res, void *pd)
{
    hx_out *o = pd;
    if (res) {
        o->res = *res;
        copy_pairs(o, res->pairings, res->npairings);
    }
    out_done(qs, err, o);
}

void hx_call_cb(queue_store *qs, int err, const qs_call_view *res, void *pd)
{
    hx_out *o = pd;
    if (res)
        o->call = *res;
    out_done(qs, err, o);
}

void hx_queue_cb(queue_store *qs, int err, const qs_queue_view *res, void *pd)
{
    hx_out *o = pd;
    if (res)
        o->queue = *res;
    out_done(qs, err, o);
}

int hx_done(hx *h, int rc, hx_out *o)
{
    if (rc != 0)
        return rc;
    if (!hx_wait(h, &o->done, 1, 5000))
        return -100;
    return o->err;
}

/* Splits "a&b" into at most 16 names in buf. */
static size_t split_queues(const char *queues, char buf[][QS_NAME_MAX + 1],
                           const char **v)
{
    size_t n = 0;
    const char *p = queues;
    while (*p && n < QS_QUEUES_MAX) {
        size_t len = strcspn(p, "&");
        snprintf(buf[n], QS_NAME_MAX + 1, "%.*s", (int)len, p);
        v[n] = buf[n];
        n++;
        p += len + (p[len] == '&');
    }
    return n;
}

int hx_enter(hx *h, int node, const char *callid, int prio, const char *queues,
             bool autopair, hx_out *o)
{
    char buf[QS_QUEUES_MAX][QS_NAME_MAX + 1], chan[QS_ID_MAX + 1];
    const char *v[QS_QUEUES_MAX];
    snprintf(chan, sizeof chan, "ch-%s", callid);
    qs_caller c = {.callid = callid,
                   .channel = chan,
                   .priority = prio,
                   .cid_num = "5551234",
                   .cid_name = "Ann Caller",
                   .queues = v};
    c.nqueues = split_queues(queues, buf, v);
    memset(o, 0, sizeof *o);
    return hx_done(h, qs_enter(h->n[node].qs, &c, autopair, hx_enter_cb, o), o);
}

int hx_login(hx *h, int node, const char *agentid, const char *queues, bool autopair,
             hx_out *o)
{
    char buf[QS_QUEUES_MAX][QS_NAME_MAX + 1], chan[QS_ID_MAX + 1], name[QS_ID_MAX + 8];
    const char *v[QS_QUEUES_MAX];
    snprintf(chan, sizeof chan, "ag-%s", agentid);
    snprintf(name, sizeof name, "PJSIP/%s-0001", agentid);
    qs_agent a = {.agentid = agentid, .channel = chan, .chan_name = name, .queues = v};
    a.nqueues = split_queues(queues, buf, v);
    memset(o, 0, sizeof *o);
    return hx_done(h, qs_agent_login(h->n[node].qs, &a, autopair, hx_result_cb, o), o);
}

long long hx_int(hx *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(h->rc, fmt, ap);
    va_end(ap);
    long long v = -1;
    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    if (r)
        freeReplyObject(r);
    return v;
}

const char *hx_hget(hx *h, const char *key, const char *field, char *buf, size_t len)
{
    redisReply *r = redisCommand(h->rc, "HGET %s %s", key, field);
    snprintf(buf, len, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    if (r)
        freeReplyObject(r);
    return buf;
}

long long hx_dbsize(hx *h)
{
    long long n = hx_int(h, "DBSIZE");
    redisReply *r = redisCommand(h->rc, "KEYS %s", "*:cmds");
    if (r && r->type == REDIS_REPLY_ARRAY)
        n -= (long long)r->elements;
    freeReplyObject(r);
    return n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* DUMP's payload is binary: hex it so the snapshot is a C string. */
static void append_hex(char **buf, size_t *len, const char *s, size_t n)
{
    *buf = realloc(*buf, *len + 2 * n + 2);
    for (size_t i = 0; i < n; i++)
        sprintf(*buf + *len + 2 * i, "%02x", (unsigned char)s[i]);
    *len += 2 * n;
    (*buf)[(*len)++] = '\n';
    (*buf)[*len] = '\0';
}

char *hx_snapshot(hx *h)
{
    redisReply *keys = redisCommand(h->rc, "KEYS *");
    char **names = calloc(keys->elements + 1, sizeof *names);
    for (size_t i = 0; i < keys->elements; i++)
        names[i] = keys->element[i]->str;
    qsort(names, keys->elements, sizeof *names, cmp_str);
    char *buf = calloc(1, 1);
    size_t len = 0;
    for (size_t i = 0; i < keys->elements; i++) {
        append_hex(&buf, &len, names[i], strlen(names[i]));
        redisReply *d = redisCommand(h->rc, "DUMP %s", names[i]);
        if (d && d->type == REDIS_REPLY_STRING)
            append_hex(&buf, &len, d->str, d->len);
        if (d)
            freeReplyObject(d);
        long long ttl = hx_int(h, "PTTL %s", names[i]);
        char t[32];
        snprintf(t, sizeof t, "ttl=%d", ttl >= 0 ? 1 : (int)ttl);
        append_hex(&buf, &len, t, strlen(t));
    }
    free(names);
    freeReplyObject(keys);
    return buf;
}

void hx_events_read(hx *h, hx_events *out)
{
    hx_stream_read(h, "{ariq}:events", out);
}

void hx_stream_read(hx *h, const char *key, hx_events *out)
{
    memset(out, 0, sizeof *out);
    redisReply *r = redisCommand(h->rc, "XRANGE %s - +", key);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return;
    }
    out->v = calloc(r->elements + 1, sizeof *out->v);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i], *fv = e->element[1];
        hx_event *ev = &out->v[out->n++];
        snprintf(ev->id, sizeof ev->id, "%s", e->element[0]->str);
        for (size_t j = 0; j < fv->elements && ev->nf < 40; j++)
            ev->f[ev->nf++] = strdup(fv->element[j]->str);
    }
    freeReplyObject(r);
}

void hx_events_free(hx_events *e)
{
    for (int i = 0; i < e->n; i++)
        for (int j = 0; j < e->v[i].nf; j++)
            free(e->v[i].f[j]);
    free(e->v);
    memset(e, 0, sizeof *e);
}

const char *hx_ev(const hx_event *e, const char *name)
{
    for (int i = 0; i + 1 < e->nf; i += 2)
        if (strcmp(e->f[i], name) == 0)
            return e->f[i + 1];
    return NULL;
}

int hx_count(const hx_events *e, const char *name)
{
    int n = 0;
    for (int i = 0; i < e->n; i++)
        n += !name || strcmp(hx_ev(&e->v[i], "event"), name) == 0;
    return n;
}

int hx_count_events(hx *h, const char *name)
{
    hx_events e;
    hx_events_read(h, &e);
    int n = hx_count(&e, name);
    hx_events_free(&e);
    return n;
}

int hx_find(const hx_events *e, const char *name, const char *fname, const char *fval,
            int k)
{
    for (int i = 0; i < e->n; i++) {
        if (name && strcmp(hx_ev(&e->v[i], "event"), name) != 0)
            continue;
        const char *v = fname ? hx_ev(&e->v[i], fname) : NULL;
        if (fname && (!v || strcmp(v, fval) != 0))
            continue;
        if (k-- == 0)
            return i;
    }
    return -1;
}

hx_out hx_o;

const char *hx_errors(hx *h)
{
    static char buf[2 * QS_ERRMSG_MAX + 8];
    snprintf(buf, sizeof buf, "A: %s B: %s", qs_errmsg(h->n[0].qs), qs_errmsg(h->n[1].qs));
    return buf;
}

const char *hx_hget4(hx *h, const char *key, const char *field)
{
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    return hx_hget(h, key, field, buf[i], sizeof buf[i]);
}

long long hx_zrank(hx *h, const char *queue, const char *callid)
{
    redisReply *r = redisCommand(h->rc, "ZRANK {ariq}:queue:%s:callers %s", queue, callid);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}
