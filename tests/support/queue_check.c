/* queue_check.c - see queue_check.h. Linear scans throughout: a test run has
 * a few thousand events, and plain arrays keep the rules easy to read. */
#include "queue_check.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct qc_stream {
    qc_event *ev;
    size_t n, cap;
};

/* ---- loading ---------------------------------------------------------------- */

static void copy_field(char *dst, size_t len, const redisReply *v)
{
    if (v && v->type == REDIS_REPLY_STRING)
        snprintf(dst, len, "%s", v->str);
}

/* Fills e from one XRANGE entry [id, [name, value, ...]]. */
static int parse_entry(const redisReply *r, qc_event *e)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_ARRAY)
        return -1;
    memset(e, 0, sizeof *e);
    e->position = -1;
    copy_field(e->id, sizeof e->id, r->element[0]);
    const redisReply *f = r->element[1];
    for (size_t k = 0; k + 1 < f->elements; k += 2) {
        const char *name = f->element[k]->str;
        const redisReply *v = f->element[k + 1];
        if (!name)
            continue;
        if (!strcmp(name, "event"))
            copy_field(e->event, sizeof e->event, v);
        else if (!strcmp(name, "queue"))
            copy_field(e->queue, sizeof e->queue, v);
        else if (!strcmp(name, "callid"))
            copy_field(e->callid, sizeof e->callid, v);
        else if (!strcmp(name, "agent"))
            copy_field(e->agent, sizeof e->agent, v);
        else if (!strcmp(name, "pairing"))
            copy_field(e->pairing, sizeof e->pairing, v);
        else if (!strcmp(name, "reason"))
            copy_field(e->reason, sizeof e->reason, v);
        else if (!strcmp(name, "bridgedchanneluniqueid") ||
                 !strcmp(name, "agent_channel"))
            copy_field(e->peer, sizeof e->peer, v);
        else if (!strcmp(name, "position") && v->type == REDIS_REPLY_STRING)
            e->position = strtol(v->str, NULL, 10);
        else if (!strcmp(name, "ts_ms") && v->type == REDIS_REPLY_STRING)
            e->ts_ms = strtoll(v->str, NULL, 10);
    }
    return 0;
}

static int push(qc_stream *s, const qc_event *e)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        qc_event *ev = realloc(s->ev, cap * sizeof *ev);
        if (!ev)
            return -1;
        s->ev = ev;
        s->cap = cap;
    }
    s->ev[s->n++] = *e;
    return 0;
}

/* Appends one XRANGE page from `start`; returns entries read, or -1. */
static long load_page(redisContext *rc, const char *key, const char *start, qc_stream *s)
{
    redisReply *r = redisCommand(rc, "XRANGE %s %s + COUNT 1000", key, start);
    long got = -1;
    if (r && r->type == REDIS_REPLY_ARRAY) {
        got = (long)r->elements;
        for (size_t i = 0; i < r->elements && got >= 0; i++) {
            qc_event e;
            if (parse_entry(r->element[i], &e) != 0 || push(s, &e) != 0)
                got = -1;
        }
    }
    if (r)
        freeReplyObject(r);
    return got;
}

qc_stream *qc_stream_load(redisContext *rc, const char *ns)
{
    char key[96], start[48] = "-";
    snprintf(key, sizeof key, "{%s}:events", ns ? ns : "ariq");
    qc_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    for (;;) {
        long got = load_page(rc, key, start, s);
        if (got < 0) {
            qc_stream_free(s);
            return NULL;
        }
        if (got < 1000)
            return s;
        snprintf(start, sizeof start, "(%s", s->ev[s->n - 1].id);
    }
}

void qc_stream_free(qc_stream *s)
{
    if (!s)
        return;
    free(s->ev);
    free(s);
}

size_t qc_stream_len(const qc_stream *s)
{
    return s->n;
}

const qc_event *qc_stream_at(const qc_stream *s, size_t i)
{
    return i < s->n ? &s->ev[i] : NULL;
}

int qc_stream_count(const qc_stream *s, const char *type)
{
    int n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += !strcmp(s->ev[i].event, type);
    return n;
}

void qc_stream_history(const qc_stream *s, const char *callid, FILE *out)
{
    for (size_t i = 0; i < s->n; i++) {
        const qc_event *e = &s->ev[i];
        if (strcmp(e->callid, callid) != 0)
            continue;
        fprintf(out, "  %s %s queue=%s agent=%s pairing=%s reason=%s peer=%s pos=%ld ts=%lld\n",
                e->id, e->event, e->queue, e->agent, e->pairing, e->reason, e->peer,
                e->position, e->ts_ms);
    }
}

/* ---- the checker's model ------------------------------------------------------ */

/* One (callid, queue) from its ENTERQUEUE to its end. */
typedef struct entry {
    const char *callid, *queue;
    size_t seq; /* index of its ENTERQUEUE: arrival order */
    int priority;
    bool waiting, connected, ended;
} entry;

typedef struct pairing {
    const char *pid, *callid, *agent, *agent_channel, *queue;
    bool open, connected;
} pairing;

typedef struct agent_rec {
    const char *agent;
    bool in;
} agent_rec;

typedef struct model {
    const qc_opts *o;
    entry *e;
    size_t ne;
    pairing *p;
    size_t np;
    agent_rec *a;
    size_t na;
    qc_stats st;
    char *err;
    size_t errlen;
} model;

__attribute__((format(printf, 3, 4))) static int bad(model *m, const qc_event *ev,
                                                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(m->err, m->errlen,
                     "%s %s queue=%s callid=%s agent=%s pairing=%s: ", ev ? ev->id : "-",
                     ev ? ev->event : "-", ev ? ev->queue : "", ev ? ev->callid : "",
                     ev ? ev->agent : "", ev ? ev->pairing : "");
    if (k >= 0 && (size_t)k < m->errlen)
        vsnprintf(m->err + k, m->errlen - (size_t)k, fmt, ap);
    va_end(ap);
    return -1;
}

static entry *find_entry(model *m, const char *callid, const char *queue)
{
    for (size_t i = 0; i < m->ne; i++)
        if (!strcmp(m->e[i].callid, callid) && !strcmp(m->e[i].queue, queue))
            return &m->e[i];
    return NULL;
}

static pairing *find_pairing(model *m, const char *pid)
{
    for (size_t i = 0; i < m->np; i++)
        if (!strcmp(m->p[i].pid, pid))
            return &m->p[i];
    return NULL;
}

static agent_rec *find_agent(model *m, const char *agent)
{
    for (size_t i = 0; i < m->na; i++)
        if (!strcmp(m->a[i].agent, agent))
            return &m->a[i];
    return NULL;
}

/* x goes before y in a queue: higher priority, then earlier arrival. */
static bool before(const entry *x, const entry *y)
{
    if (x->priority != y->priority)
        return x->priority > y->priority;
    return x->seq < y->seq;
}

static int on_enter(model *m, const qc_event *ev, size_t idx)
{
    if (find_entry(m, ev->callid, ev->queue))
        return bad(m, ev, "a second ENTERQUEUE for this caller and queue");
    entry *e = &m->e[m->ne++];
    *e = (entry){.callid = ev->callid, .queue = ev->queue, .seq = idx, .waiting = true};
    e->priority = m->o->priority_of ? m->o->priority_of(ev->callid, m->o->ud) : -1;
    m->st.enters++;
    int waiting = 0;
    for (size_t i = 0; i < m->ne; i++)
        waiting += m->e[i].waiting && !strcmp(m->e[i].queue, e->queue);
    if (waiting > m->st.max_waiting)
        m->st.max_waiting = waiting;
    if (e->priority < 0)
        return 0;
    long pos = 1;
    for (size_t i = 0; i + 1 < m->ne; i++) {
        entry *x = &m->e[i];
        if (x->waiting && !strcmp(x->queue, e->queue)) {
            if (x->priority < 0)
                return 0; /* a caller of unknown priority: position not checkable */
            pos += before(x, e);
        }
    }
    if (ev->position != pos)
        return bad(m, ev,
                   "position %ld, but %ld by the waiting callers rebuilt from the stream",
                   ev->position, pos);
    return 0;
}

/* ABANDON, EXITWITHTIMEOUT, WITHDRAW: this (caller, queue) ends unconnected. */
static int on_leave(model *m, const qc_event *ev)
{
    entry *e = find_entry(m, ev->callid, ev->queue);
    if (!e)
        return bad(m, ev, "no ENTERQUEUE before it");
    if (e->ended || e->connected)
        return bad(m, ev, "this caller already ended in this queue (or is connected)");
    e->ended = true;
    e->waiting = false;
    if (!strcmp(ev->event, "ABANDON"))
        m->st.abandons++;
    else if (!strcmp(ev->event, "WITHDRAW"))
        m->st.withdraws++;
    else
        m->st.timeouts++;
    return 0;
}

/* Is the paired caller the first of its queue? */
static int check_order(model *m, const qc_event *ev, const entry *e)
{
    if (e->priority < 0)
        return 0;
    for (size_t i = 0; i < m->ne; i++) {
        const entry *x = &m->e[i];
        if (x == e || !x->waiting || strcmp(x->queue, e->queue))
            continue;
        if (x->priority < 0)
            return 0;
        if (before(x, e))
            return bad(m, ev,
                       "caller %s (priority %d) was waiting before it (priority %d)",
                       x->callid, x->priority, e->priority);
    }
    m->st.order_checked++;
    return 0;
}

static int on_paired(model *m, const qc_event *ev)
{
    entry *e = find_entry(m, ev->callid, ev->queue);
    if (!e || !e->waiting)
        return bad(m, ev, "the caller is not waiting in this queue");
    if (check_order(m, ev, e))
        return -1;
    if (find_pairing(m, ev->pairing))
        return bad(m, ev, "a pairing id used twice");
    for (size_t i = 0; i < m->np; i++) {
        const pairing *p = &m->p[i];
        if (p->open && !strcmp(p->callid, ev->callid))
            return bad(m, ev, "the caller is still in pairing %s", p->pid);
        if (p->open && !strcmp(p->agent, ev->agent))
            return bad(m, ev, "the agent is still in pairing %s", p->pid);
    }
    agent_rec *a = find_agent(m, ev->agent);
    if (!a || !a->in)
        return bad(m, ev, "the agent is not logged in");
    for (size_t i = 0; i < m->ne; i++)
        if (!strcmp(m->e[i].callid, ev->callid))
            m->e[i].waiting = false;
    m->p[m->np++] = (pairing){.pid = ev->pairing,
                              .callid = ev->callid,
                              .agent = ev->agent,
                              .agent_channel = ev->peer,
                              .queue = ev->queue,
                              .open = true};
    m->st.paired++;
    return 0;
}

static int on_unpaired(model *m, const qc_event *ev)
{
    pairing *p = find_pairing(m, ev->pairing);
    if (!p || !p->open)
        return bad(m, ev, "no open pairing of that id");
    if (strcmp(p->callid, ev->callid) || strcmp(p->agent, ev->agent))
        return bad(m, ev, "names another caller or agent than its PAIRED");
    p->open = false;
    m->st.unpaired++;
    if (p->connected)
        return 0;
    for (size_t i = 0; i < m->ne; i++) /* back in its queues, unless it left */
        if (!strcmp(m->e[i].callid, p->callid) && !m->e[i].ended)
            m->e[i].waiting = true;
    return 0;
}

static int on_connect(model *m, const qc_event *ev)
{
    pairing *p = find_pairing(m, ev->pairing);
    if (!p || !p->open || p->connected)
        return bad(m, ev, "no open, unconnected pairing of that id");
    if (strcmp(p->callid, ev->callid) || strcmp(p->agent, ev->agent) ||
        strcmp(p->queue, ev->queue) || strcmp(p->agent_channel, ev->peer))
        return bad(m, ev, "caller, agent, queue or agent channel differ from its PAIRED");
    entry *e = find_entry(m, ev->callid, ev->queue);
    if (!e || e->ended || e->connected)
        return bad(m, ev, "the caller already ended in this queue");
    p->connected = true;
    e->connected = true;
    m->st.connects++;
    return 0;
}

static int on_complete(model *m, const qc_event *ev)
{
    entry *e = find_entry(m, ev->callid, ev->queue);
    if (!e || !e->connected || e->ended)
        return bad(m, ev, "no CONNECT before it, or a second end");
    pairing *p = find_pairing(m, ev->pairing);
    if (!p || !p->open || !p->connected)
        return bad(m, ev, "its pairing is not open and connected");
    e->ended = true;
    m->st.completes++;
    return 0;
}

static int on_login(model *m, const qc_event *ev)
{
    agent_rec *a = find_agent(m, ev->agent);
    if (a && a->in)
        return bad(m, ev, "logged in twice");
    if (!a) {
        a = &m->a[m->na++];
        a->agent = ev->agent;
    }
    a->in = true;
    return 0;
}

static int on_logoff(model *m, const qc_event *ev)
{
    agent_rec *a = find_agent(m, ev->agent);
    if (!a || !a->in)
        return bad(m, ev, "not logged in");
    for (size_t i = 0; i < m->np; i++)
        if (m->p[i].open && !strcmp(m->p[i].agent, ev->agent))
            return bad(m, ev, "logged off while still in pairing %s", m->p[i].pid);
    a->in = false;
    return 0;
}

static int apply(model *m, const qc_event *ev, size_t idx)
{
    const char *t = ev->event;
    if (!strcmp(t, "ENTERQUEUE"))
        return on_enter(m, ev, idx);
    if (!strcmp(t, "ABANDON") || !strcmp(t, "EXITWITHTIMEOUT") || !strcmp(t, "WITHDRAW"))
        return on_leave(m, ev);
    if (!strcmp(t, "PAIRED"))
        return on_paired(m, ev);
    if (!strcmp(t, "UNPAIRED"))
        return on_unpaired(m, ev);
    if (!strcmp(t, "CONNECT"))
        return on_connect(m, ev);
    if (!strcmp(t, "COMPLETECALLER") || !strcmp(t, "COMPLETEAGENT"))
        return on_complete(m, ev);
    if (!strcmp(t, "AGENTLOGIN"))
        return on_login(m, ev);
    if (!strcmp(t, "AGENTLOGOFF"))
        return on_logoff(m, ev);
    return 0; /* recording and pause events: not this checker's */
}

static int check_final(model *m)
{
    for (size_t i = 0; i < m->ne; i++)
        if (!m->e[i].ended)
            return bad(m, NULL, "caller %s never ended in queue %s", m->e[i].callid,
                       m->e[i].queue);
    for (size_t i = 0; i < m->np; i++)
        if (m->p[i].open)
            return bad(m, NULL, "pairing %s never got its UNPAIRED", m->p[i].pid);
    for (size_t i = 0; i < m->na; i++)
        if (m->a[i].in)
            return bad(m, NULL, "agent %s never logged off", m->a[i].agent);
    return 0;
}

int qc_check(const qc_stream *s, const qc_opts *o, qc_stats *st, char *err, size_t errlen)
{
    static const qc_opts none;
    model m = {.o = o ? o : &none, .err = err, .errlen = errlen};
    m.e = calloc(s->n + 1, sizeof *m.e);
    m.p = calloc(s->n + 1, sizeof *m.p);
    m.a = calloc(s->n + 1, sizeof *m.a);
    int rc = -1;
    if (!m.e || !m.p || !m.a) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < s->n; i++)
        if (apply(&m, &s->ev[i], i) != 0)
            goto done;
    rc = m.o->final ? check_final(&m) : 0;
done:
    if (st)
        *st = m.st;
    free(m.e);
    free(m.p);
    free(m.a);
    return rc;
}

/* ---- Redis and the simulator ------------------------------------------------ */

int qc_redis_clean(redisContext *rc, const char *ns, char *err, size_t errlen)
{
    char seq[96], events[96], rec[96];
    ns = ns ? ns : "ariq";
    snprintf(seq, sizeof seq, "{%s}:seq", ns);
    snprintf(events, sizeof events, "{%s}:events", ns);
    int reclen = snprintf(rec, sizeof rec, "{%s}:recording:", ns);
    redisReply *r = redisCommand(rc, "KEYS *");
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "KEYS failed");
        if (r)
            freeReplyObject(r);
        return -1;
    }
    char nodes[96], node[96];
    snprintf(nodes, sizeof nodes, "{%s}:nodes", ns);
    int nodelen = snprintf(node, sizeof node, "{%s}:node:", ns);
    int ret = 0;
    for (size_t i = 0; i < r->elements && ret == 0; i++) {
        const char *k = r->element[i]->str;
        size_t kl = strlen(k);
        /* a live node's own keys: its heartbeat, its command stream, its
         * stats; the registry of queues and the index of recordings */
        bool node_key = strncmp(k, node, (size_t)nodelen) == 0 &&
                        ((kl > 10 && strcmp(k + kl - 10, ":heartbeat") == 0) ||
                         (kl > 5 && strcmp(k + kl - 5, ":cmds") == 0) ||
                         (kl > 6 && strcmp(k + kl - 6, ":stats") == 0));
        const char *colon = strchr(k, ':');
        bool kept = colon && (strcmp(colon, ":queues") == 0 || strcmp(colon, ":recordings") == 0);
        if (strcmp(k, seq) && strcmp(k, events) && strcmp(k, nodes) && !node_key && !kept &&
            strncmp(k, rec, (size_t)reclen)) {
            snprintf(err, errlen, "Redis still holds %s", k);
            ret = -1;
        }
    }
    freeReplyObject(r);
    return ret;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Mixing bridges the simulator holds now (with a channel in them only, when
 * flags allow empty ones), or -1. */
static int mixing_bridges(const sim_proc *sim, int node, unsigned flags)
{
    json_t *all = sim_ctl(sim, node, "GET", "/sim/bridges", NULL, NULL), *b;
    size_t i;
    int n = 0;
    if (!json_is_array(all)) {
        json_decref(all);
        return -1;
    }
    json_array_foreach(all, i, b)
    {
        const char *t = json_string_value(json_object_get(b, "bridge_type"));
        bool empty = json_array_size(json_object_get(b, "channels")) == 0;
        n += t && !strcmp(t, "mixing") && !(empty && (flags & QC_ALLOW_EMPTY_MIXING));
    }
    json_decref(all);
    return n;
}

int qc_sim_wait_clean(const sim_proc *sim, int node, int timeout_ms, unsigned flags,
                      char *err, size_t errlen)
{
    long long ch = -1, pb = -1, rec = -1;
    int mix = -1;
    for (int t = 0; t <= timeout_ms; t += 20, nap_ms(20)) {
        json_t *st = sim_state(sim, node);
        ch = json_integer_value(json_object_get(st, "channels"));
        pb = json_integer_value(json_object_get(st, "playbacks"));
        rec = json_integer_value(json_object_get(st, "recordings"));
        bool got = st != NULL;
        json_decref(st);
        mix = mixing_bridges(sim, node, flags);
        if (got && ch == 0 && pb == 0 && rec == 0 && mix == 0)
            return 0;
    }
    snprintf(err, errlen,
             "the simulator still holds %lld channels, %lld playbacks, %lld live "
             "recordings, %d mixing bridges",
             ch, pb, rec, mix);
    return -1;
}

/* A channel's stays in mixing bridges: [from, to] in sim ms, to = when it
 * left, hung up or (still there) forever. */
typedef struct stay {
    char bridge[136];
    long long from, to;
} stay;

static long long hangup_time(json_t *timeline)
{
    json_t *e;
    size_t i;
    json_array_foreach(timeline, i, e)
    {
        const char *ev = json_string_value(json_object_get(e, "ev"));
        if (ev && !strcmp(ev, "hangup"))
            return json_integer_value(json_object_get(e, "t"));
    }
    return -1;
}

static size_t mixing_stays(json_t *chan, stay *out, size_t max)
{
    json_t *tl = json_object_get(chan, "timeline"), *e;
    long long hung = hangup_time(tl);
    size_t i, n = 0;
    json_array_foreach(tl, i, e)
    {
        const char *ev = json_string_value(json_object_get(e, "ev"));
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *br = json_string_value(json_object_get(e, "bridge"));
        long long t = json_integer_value(json_object_get(e, "t"));
        if (!ev || !type || !br || strcmp(type, "mixing"))
            continue;
        if (!strcmp(ev, "entered_bridge") && n < max) {
            snprintf(out[n].bridge, sizeof out[n].bridge, "%s", br);
            out[n].from = t;
            out[n].to = hung >= 0 ? hung : (long long)1 << 62;
            n++;
        } else if (!strcmp(ev, "left_bridge") && n && !strcmp(out[n - 1].bridge, br) &&
                   t < out[n - 1].to) {
            out[n - 1].to = t;
        }
    }
    return n;
}

int qc_oracle_were_connected(const sim_proc *sim, int node, const char *a, const char *b)
{
    json_t *ca = sim_channel(sim, node, a), *cb = sim_channel(sim, node, b);
    int ret = -1;
    if (!ca || !cb)
        goto done;
    stay sa[64], sb[64];
    size_t na = mixing_stays(ca, sa, 64), nb = mixing_stays(cb, sb, 64);
    ret = 0;
    for (size_t i = 0; i < na && !ret; i++)
        for (size_t j = 0; j < nb && !ret; j++) {
            long long from = sa[i].from > sb[j].from ? sa[i].from : sb[j].from;
            long long to = sa[i].to < sb[j].to ? sa[i].to : sb[j].to;
            ret = !strcmp(sa[i].bridge, sb[j].bridge) && from <= to;
        }
done:
    json_decref(ca);
    json_decref(cb);
    return ret;
}

static int rec_agrees(json_t *r, redisContext *rc, const char *ns, int *ns_, int *nd,
                      char *err, size_t errlen)
{
    const char *name = json_string_value(json_object_get(r, "name"));
    const char *state = json_string_value(json_object_get(r, "state"));
    bool stored = json_is_true(json_object_get(r, "stored"));
    /* discarded live, or stored and then deleted: either way not kept */
    bool discarded = json_is_true(json_object_get(r, "discarded")) ||
                     json_is_true(json_object_get(r, "deleted"));
    if (!name || !state || strcmp(state, "done") || stored == discarded) {
        snprintf(err, errlen, "recording %s is %s (stored %d, discarded %d)",
                 name ? name : "?", state ? state : "?", stored, discarded);
        return -1;
    }
    redisReply *rr = redisCommand(rc, "HGET {%s}:recording:%s state", ns, name);
    const char *want = stored ? "stored" : "discarded";
    int ret = 0;
    if (!rr || rr->type != REDIS_REPLY_STRING || strcmp(rr->str, want)) {
        snprintf(err, errlen, "recording %s is %s in the simulator but %s in Redis", name,
                 want, rr && rr->type == REDIS_REPLY_STRING ? rr->str : "absent");
        ret = -1;
    }
    if (rr)
        freeReplyObject(rr);
    *(stored ? ns_ : nd) += 1;
    return ret;
}

/* Each {ns}:recording:NAME in Redis is a recording of the simulator. */
static int redis_recs_known(json_t *all, redisContext *rc, const char *ns, char *err,
                            size_t errlen)
{
    redisReply *r = redisCommand(rc, "KEYS {%s}:recording:*", ns);
    size_t plen = strlen(ns) + strlen("{}:recording:");
    int ret = r && r->type == REDIS_REPLY_ARRAY ? 0 : -1;
    if (ret)
        snprintf(err, errlen, "KEYS failed");
    for (size_t i = 0; r && ret == 0 && i < r->elements; i++) {
        const char *name = r->element[i]->str + plen;
        bool found = false;
        json_t *x;
        size_t k;
        json_array_foreach(all, k, x)
        {
            const char *n = json_string_value(json_object_get(x, "name"));
            found = found || (n && !strcmp(n, name));
        }
        if (!found) {
            snprintf(err, errlen,
                     "Redis holds recording %s, which the simulator never made", name);
            ret = -1;
        }
    }
    if (r)
        freeReplyObject(r);
    return ret;
}

int qc_recordings_agree(const sim_proc *sim, int node, redisContext *rc, const char *ns,
                        int *nstored, int *ndiscarded, char *err, size_t errlen)
{
    int s = 0, d = 0, ret = 0;
    json_t *all = sim_ctl(sim, node, "GET", "/sim/recordings", NULL, NULL), *r;
    size_t i;
    if (!json_is_array(all)) {
        snprintf(err, errlen, "GET /sim/recordings failed");
        ret = -1;
    }
    json_array_foreach(all, i, r)
    {
        if (ret == 0)
            ret = rec_agrees(r, rc, ns ? ns : "ariq", &s, &d, err, errlen);
    }
    if (ret == 0)
        ret = redis_recs_known(all, rc, ns ? ns : "ariq", err, errlen);
    json_decref(all);
    if (nstored)
        *nstored = s;
    if (ndiscarded)
        *ndiscarded = d;
    return ret;
}
