/* model.c - see model.h. */
#include "model.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strmap.h"

#define MOD "model"
#define REC_MAX 1000     /* recordings the snapshot holds (the route's max limit) */
#define PAGE 1000        /* events per XRANGE page */
#define POLL_MS 100      /* paging again while the feed has not started */
#define RETRY_MS 1000    /* after a failed read */

const char *const model_agent_count_names[MA_COUNT] = {
    "logged_in", "waiting", "connecting", "talking", "wrapup", "paused"};
const double model_lat_le[MODEL_LAT_NB] = {0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120};

/* The call fields the routes show (HMGET: a call hash has twice as many,
 * and 5,000 of them are most of the snapshot). channel first: present in
 * every record; queues third and state fourth: the script reads them. */
static const char *const call_fields[] = {"channel",    "node",    "queues",   "state",
                                          "priority",   "entered_ms", "cid_num", "cid_name",
                                          "pairing",    NULL};
#define CALL_FIELDS_LUA                                                                    \
    "'channel', 'node', 'queues', 'state', 'priority', 'entered_ms', 'cid_num', "          \
    "'cid_name', 'pairing'"

/* The snapshot: KEYS[1] = {NS}:nodes; every other key is derived from its
 * prefix with SCHEMA.md's layout (same hash tag). ARGV[1] = recordings
 * limit. Read only. Returns {queues, calls, agents, pairings, recordings,
 * nodes}: queues {name, {call index...}} sorted by name, the queue order
 * from ZRANGE of :callers; calls/agents/recordings {id, hash}; pairings
 * {id, hash, recording state}; nodes {name, heartbeat exists, stats hash}. */
static const char SNAP_LUA[] =
    "local p = string.sub(KEYS[1], 1, #KEYS[1] - 5)\n"
    "local lim = tonumber(ARGV[1])\n"
    "local function field(h, f) for i = 1, #h, 2 do if h[i] == f then return h[i+1] end end "
    "return nil end\n"
    "local function split(s, set) for q in string.gmatch(s or '', '[^&]+') do set[q] = true "
    "end end\n"
    "local qset = {}\n"
    "for _, q in ipairs(redis.call('SMEMBERS', p .. 'queues')) do qset[q] = true end\n"
    "local nodes, calls, cidx, agents, aseen, prs, pseen = {}, {}, {}, {}, {}, {}, {}\n"
    "local nl = redis.call('SMEMBERS', KEYS[1]); table.sort(nl)\n"
    "for _, n in ipairs(nl) do\n"
    "  local np = p .. 'node:' .. n\n"
    "  nodes[#nodes+1] = {n, redis.call('EXISTS', np .. ':heartbeat'), "
    "redis.call('HGETALL', np .. ':stats')}\n"
    "  for _, c in ipairs(redis.call('SMEMBERS', np .. ':calls')) do\n"
    "    local h = redis.call('HMGET', p .. 'call:' .. c, " CALL_FIELDS_LUA ")\n"
    "    if h[1] and not cidx[c] then\n"
    "      calls[#calls+1] = {c, h}; cidx[c] = #calls - 1\n"
    "      if h[4] == 'waiting' then split(h[3], qset) end\n"
    "    end\n"
    "  end\n"
    "  for _, a in ipairs(redis.call('SMEMBERS', np .. ':agents')) do\n"
    "    local h = redis.call('HGETALL', p .. 'agent:' .. a)\n"
    "    if #h > 0 and not aseen[a] then\n"
    "      aseen[a] = true; agents[#agents+1] = {a, h}; split(field(h, 'queues'), qset)\n"
    "    end\n"
    "  end\n"
    "  for _, id in ipairs(redis.call('SMEMBERS', np .. ':pairings')) do\n"
    "    local h = redis.call('HGETALL', p .. 'pairing:' .. id)\n"
    "    if #h > 0 and not pseen[id] then\n"
    "      pseen[id] = true\n"
    "      local rec, rs = field(h, 'rec'), ''\n"
    "      if rec and rec ~= '' then rs = redis.call('HGET', p .. 'recording:' .. rec, "
    "'state') or '' end\n"
    "      prs[#prs+1] = {id, h, rs, tonumber(field(h, 'created_ms')) or 0}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "table.sort(agents, function(x, y) return x[1] < y[1] end)\n"
    "table.sort(prs, function(x, y) if x[4] ~= y[4] then return x[4] < y[4] end "
    "return x[1] < y[1] end)\n"
    "for _, x in ipairs(prs) do x[4] = nil end\n"
    "local ql = {}\n"
    "for q in pairs(qset) do ql[#ql+1] = q end\n"
    "table.sort(ql)\n"
    "local qs = {}\n"
    "for i, q in ipairs(ql) do\n"
    "  local order = {}\n"
    "  for _, c in ipairs(redis.call('ZRANGE', p .. 'queue:' .. q .. ':callers', 0, -1)) do\n"
    "    if cidx[c] then order[#order+1] = cidx[c] end\n"
    "  end\n"
    "  qs[i] = {q, order}\n"
    "end\n"
    "local recs = {}\n"
    "for _, r in ipairs(redis.call('ZREVRANGE', p .. 'recordings', 0, lim - 1)) do\n"
    "  local h = redis.call('HGETALL', p .. 'recording:' .. r)\n"
    "  if #h > 0 then recs[#recs+1] = {r, h} end\n"
    "end\n"
    "return {qs, calls, agents, prs, recs, nodes}\n";

/* Outlives the model while a reply is due: a reply arriving after
 * model_free (the store is freed after it) finds alive false. */
typedef struct life {
    bool alive;
    int refs;    /* the model's + one per command in flight */
    void *owner; /* the model */
} life;

static void life_put(life *l)
{
    if (--l->refs == 0)
        free(l);
}

typedef struct waiter {
    model_fn fn;
    void *ud;
    struct waiter *next;
} waiter;

/* Service level minute bucket. */
typedef struct slb {
    int64_t minute;
    int64_t answered, within, abandoned;
} slb;

typedef struct qstat {
    model_qcount c;
    slb *ring; /* nring minute buckets */
} qstat;

struct model {
    struct event_base *base;
    store *st;
    const acfg *cfg;
    char k_nodes[STORE_KEY_MAX];
    char k_events[STORE_KEY_MAX];
    model_snap *snap;     /* the newest usable one, or NULL */
    uint64_t snap_mono;   /* when it was read (mono ms) */
    bool inflight;
    waiter *waiters, **wtail;
    life *life;
    /* events: XRANGE pages until caught up with the feed, then the feed
     * (events_follow) */
    events *feed;
    struct event *poll;
    bool ev_inflight;
    bool page_following; /* the page in flight was sent once the feed followed */
    bool ev_missed;      /* a fed entry came while paging: page again */
    bool caught_up;      /* paging is over: entries come from the feed */
    char ev_last[48];     /* exclusive start of the next page */
    uint64_t last_ms, last_seq; /* the id of the last entry taken */
    uint64_t start_ms;    /* entries before this are window only */
    uint64_t entries;
    size_t nring;
    strmap *qstats;       /* queue -> qstat */
    strmap *cross;        /* pairing -> (void *)1, cross-node PAIRED not yet CONNECT */
    model_hist cross_hist;
};

/* ---- small helpers ----------------------------------------------------------- */

const char *model_str(const json_t *h, const char *field)
{
    const char *s = json_string_value(json_object_get(h, field));
    return s ? s : "";
}

long long model_int(const json_t *h, const char *field)
{
    return strtoll(model_str(h, field), NULL, 10);
}

const model_rec *model_find(const model_rec *v, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].id, id) == 0)
            return &v[i];
    return NULL;
}


uint64_t model_entries_read(const model *m)
{
    return m->entries;
}

static const char *rstr(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) ? r->str : "";
}

/* A flat name/value array reply (names NULL) or the values of HMGET names
 * as a new JSON object of strings. */
static json_t *hash_json(const redisReply *r, const char *const *names)
{
    json_t *o = json_object();
    if (!o || !r || r->type != REDIS_REPLY_ARRAY)
        return o;
    if (names) {
        for (size_t i = 0; names[i] && i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING)
                json_object_set_new(o, names[i], json_string(r->element[i]->str));
        return o;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        json_object_set_new(o, rstr(r->element[i]), json_string(rstr(r->element[i + 1])));
    return o;
}

static void recs_free(model_rec *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].id);
        json_decref(v[i].h);
    }
    free(v);
}

static void snap_free(model_snap *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nqueues; i++) {
        free(s->queues[i].name);
        free(s->queues[i].callers);
        free(s->queues[i].body);
    }
    free(s->queues);
    recs_free(s->calls, s->ncalls);
    recs_free(s->agents, s->nagents);
    recs_free(s->pairings, s->npairings);
    recs_free(s->recordings, s->nrecordings);
    for (size_t i = 0; i < s->nnodes; i++) {
        free(s->nodes[i].name);
        json_decref(s->nodes[i].stats);
    }
    free(s->nodes);
    free(s->queues_body);
    free(s);
}

/* ---- parsing the snapshot ---------------------------------------------------- */

/* {{id, hash[, extra]}...} into *out. Returns 0 or ARIQ_ENOMEM / EINVAL. */
static int parse_recs(const redisReply *r, const char *const *names, model_rec **out,
                      size_t *n)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return ARIQ_EINVAL;
    *out = calloc(r->elements ? r->elements : 1, sizeof **out);
    if (!*out)
        return ARIQ_ENOMEM;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2)
            return ARIQ_EINVAL;
        model_rec *x = &(*out)[(*n)++];
        x->id = strdup(rstr(e->element[0]));
        x->h = hash_json(e->element[1], names);
        if (!x->id || !x->h)
            return ARIQ_ENOMEM;
        if (e->elements > 2)
            json_object_set_new(x->h, "rec_state", json_string(rstr(e->element[2])));
    }
    return 0;
}

static int parse_nodes(const redisReply *r, model_snap *s)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return ARIQ_EINVAL;
    s->nodes = calloc(r->elements ? r->elements : 1, sizeof *s->nodes);
    if (!s->nodes)
        return ARIQ_ENOMEM;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3)
            return ARIQ_EINVAL;
        model_node *n = &s->nodes[s->nnodes++];
        n->name = strdup(rstr(e->element[0]));
        n->up = e->element[1]->type == REDIS_REPLY_INTEGER && e->element[1]->integer > 0;
        if (e->element[2]->type == REDIS_REPLY_ARRAY && e->element[2]->elements > 0)
            n->stats = hash_json(e->element[2], NULL);
        if (!n->name)
            return ARIQ_ENOMEM;
    }
    return 0;
}

/* Counts one agent into the queues it names. */
static void count_agent(model_snap *s, const json_t *h)
{
    const char *st = model_str(h, "state");
    int k = !strcmp(st, "free")      ? MA_WAITING
            : !strcmp(st, "paired")  ? MA_CONNECTING
            : !strcmp(st, "talking") ? MA_TALKING
            : !strcmp(st, "wrapup")  ? MA_WRAPUP
            : !strcmp(st, "paused")  ? MA_PAUSED
                                     : -1;
    char qs[1024];
    snprintf(qs, sizeof qs, "%s", model_str(h, "queues"));
    char *save = NULL;
    for (char *q = strtok_r(qs, "&", &save); q; q = strtok_r(NULL, "&", &save))
        for (size_t i = 0; i < s->nqueues; i++)
            if (strcmp(s->queues[i].name, q) == 0) {
                s->queues[i].agents[MA_LOGGED_IN]++;
                if (k >= 0)
                    s->queues[i].agents[k]++;
            }
}

static int parse_queues(model *m, const redisReply *r, model_snap *s)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return ARIQ_EINVAL;
    s->queues = calloc(r->elements ? r->elements : 1, sizeof *s->queues);
    if (!s->queues)
        return ARIQ_ENOMEM;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[1]->type != REDIS_REPLY_ARRAY)
            return ARIQ_EINVAL;
        model_queue *q = &s->queues[s->nqueues++];
        const redisReply *o = e->element[1];
        q->name = strdup(rstr(e->element[0]));
        q->callers = malloc((o->elements ? o->elements : 1) * sizeof *q->callers);
        if (!q->name || !q->callers)
            return ARIQ_ENOMEM;
        for (size_t j = 0; j < o->elements; j++) {
            long long x = o->element[j]->integer;
            if (o->element[j]->type != REDIS_REPLY_INTEGER || x < 0 || (size_t)x >= s->ncalls)
                return ARIQ_EINVAL;
            q->callers[q->ncallers++] = (size_t)x;
            long long w = (long long)s->as_of_ms - model_int(s->calls[x].h, "entered_ms");
            if (w > q->longest_wait_ms)
                q->longest_wait_ms = w;
        }
        model_service_level(m, q->name, &q->sl);
    }
    return 0;
}

static int parse_snap(model *m, const redisReply *r, model_snap *s)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 6)
        return ARIQ_EINVAL;
    int rc;
    if ((rc = parse_recs(r->element[1], call_fields, &s->calls, &s->ncalls)) ||
        (rc = parse_queues(m, r->element[0], s)) ||
        (rc = parse_recs(r->element[2], NULL, &s->agents, &s->nagents)) ||
        (rc = parse_recs(r->element[3], NULL, &s->pairings, &s->npairings)) ||
        (rc = parse_recs(r->element[4], NULL, &s->recordings, &s->nrecordings)) ||
        (rc = parse_nodes(r->element[5], s)))
        return rc;
    for (size_t i = 0; i < s->nagents; i++)
        count_agent(s, s->agents[i].h);
    return 0;
}

/* ---- the snapshot read and its waiters --------------------------------------- */

static bool snap_fresh(const model *m)
{
    return m->snap && clock_mono_ms() - m->snap_mono < (uint64_t)m->cfg->snapshot_ms;
}

static bool snap_usable(const model *m)
{
    return m->snap && clock_mono_ms() - m->snap_mono < 10 * (uint64_t)m->cfg->snapshot_ms;
}

/* Hands the current snapshot (or NULL) to every waiter. The list is taken
 * first: a waiter may call model_get again. */
static void serve_waiters(model *m)
{
    waiter *w = m->waiters;
    m->waiters = NULL;
    m->wtail = &m->waiters;
    while (w) {
        waiter *next = w->next;
        w->fn(m, snap_usable(m) ? m->snap : NULL, w->ud);
        free(w);
        w = next;
    }
}

typedef struct snap_req {
    model *m;
    life *life;
    model_snap *s;
} snap_req;

static void on_snap(store *st, const redisReply *reply, void *pd)
{
    (void)st;
    snap_req *q = pd;
    model *m = q->m;
    bool alive = q->life->alive;
    life_put(q->life);
    if (!alive) {
        snap_free(q->s);
        free(q);
        return;
    }
    m->inflight = false;
    int rc = reply && reply->type == REDIS_REPLY_ARRAY ? parse_snap(m, reply, q->s) : ARIQ_EIO;
    if (rc == 0) {
        snap_free(m->snap);
        m->snap = q->s;
        m->snap_mono = clock_mono_ms() - (clock_wall_ms() - q->s->as_of_ms);
    } else {
        LOG_W(MOD, "snapshot failed: %s", reply && reply->type == REDIS_REPLY_ERROR
                                               ? reply->str
                                               : ariq_strerror(rc));
        snap_free(q->s);
    }
    free(q);
    serve_waiters(m);
}

/* Sends the snapshot script. Returns 0 or an error (nothing in flight). */
static int snap_send(model *m)
{
    snap_req *q = calloc(1, sizeof *q);
    if (!q)
        return ARIQ_ENOMEM;
    q->s = calloc(1, sizeof *q->s);
    if (!q->s) {
        free(q);
        return ARIQ_ENOMEM;
    }
    q->m = m;
    q->life = m->life;
    q->s->as_of_ms = clock_wall_ms();
    char lim[16];
    snprintf(lim, sizeof lim, "%d", REC_MAX);
    const char *argv[] = {"EVAL", SNAP_LUA, "1", m->k_nodes, lim};
    int rc = store_command_argv(m->st, 5, argv, NULL, on_snap, q);
    if (rc != 0) {
        free(q->s);
        free(q);
        return rc;
    }
    m->inflight = true;
    m->life->refs++;
    return 0;
}

int model_get(model *m, model_fn fn, void *ud)
{
    if (!m->inflight && snap_fresh(m)) {
        fn(m, m->snap, ud);
        return 0;
    }
    waiter *w = calloc(1, sizeof *w);
    if (!w)
        return ARIQ_ENOMEM;
    *w = (waiter){.fn = fn, .ud = ud};
    *m->wtail = w;
    m->wtail = &w->next;
    if (!m->inflight && snap_send(m) != 0)
        serve_waiters(m); /* Redis away: the last one if still usable, else NULL */
    return 0;
}

/* ---- the events stream ------------------------------------------------------- */

static qstat *qstat_get(model *m, const char *queue)
{
    qstat *q = strmap_get(m->qstats, queue);
    if (q)
        return q;
    q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->ring = calloc(m->nring, sizeof *q->ring);
    if (!q->ring || strmap_put(m->qstats, queue, q) != 0) {
        free(q->ring);
        free(q);
        return NULL;
    }
    return q;
}

static slb *bucket(model *m, qstat *q, uint64_t ts_ms)
{
    int64_t minute = (int64_t)(ts_ms / 60000);
    slb *b = &q->ring[(size_t)minute % m->nring];
    if (b->minute != minute)
        *b = (slb){.minute = minute};
    return b;
}

static void hist_add(model_hist *h, double v)
{
    for (int i = 0; i < MODEL_LAT_NB; i++)
        if (v <= model_lat_le[i]) {
            h->bucket[i]++;
            break;
        }
    h->sum += v;
    h->count++;
}

/* Field `name` of an entry's flat field array, "" if absent. */
static const char *efield(const redisReply *f, const char *name)
{
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (strcmp(rstr(f->element[i]), name) == 0)
            return rstr(f->element[i + 1]);
    return "";
}

static void on_entry(model *m, uint64_t id_ms, const redisReply *f)
{
    const char *ev = efield(f, "event"), *queue = efield(f, "queue"),
               *pairing = efield(f, "pairing");
    uint64_t ts = strtoull(efield(f, "ts_ms"), NULL, 10);
    bool live = id_ms >= m->start_ms;
    if (!*queue || !strcmp(queue, "NONE"))
        return;
    qstat *q = qstat_get(m, queue);
    if (!q)
        return;
    if (!strcmp(ev, "PAIRED")) {
        q->c.pairings += live;
        if (strcmp(efield(f, "caller_node"), efield(f, "agent_node")) != 0 && *pairing)
            strmap_put(m->cross, pairing, (void *)1);
    } else if (!strcmp(ev, "CONNECT")) {
        slb *b = bucket(m, q, ts);
        b->answered++;
        b->within += strtoll(efield(f, "holdtime"), NULL, 10) <= m->cfg->service_level_s;
        double lat = (double)strtoll(efield(f, "ringtime_ms"), NULL, 10) / 1000.0;
        bool cross = *pairing && strmap_del(m->cross, pairing) != NULL;
        if (live) {
            q->c.connects++;
            hist_add(&q->c.latency, lat);
            if (cross)
                hist_add(&m->cross_hist, lat);
        }
    } else if (!strcmp(ev, "ABANDON") || !strcmp(ev, "EXITWITHTIMEOUT")) {
        bucket(m, q, ts)->abandoned++;
        if (live)
            ++*(ev[0] == 'A' ? &q->c.abandons : &q->c.timeouts);
    } else if (!strcmp(ev, "UNPAIRED")) {
        if (*pairing)
            strmap_del(m->cross, pairing);
        q->c.rollbacks += live && !strncmp(efield(f, "reason"), "rollback", 8);
    }
}

static void poll_arm(model *m, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(m->poll, &tv);
}

/* Takes entry `id` once: pages and the feed overlap at the seam. */
static void take_entry(model *m, const char *id, const redisReply *fields)
{
    uint64_t ms, seq;
    if (events_parse_id(id, &ms, &seq) != 0 ||
        (ms < m->last_ms || (ms == m->last_ms && seq <= m->last_seq)))
        return;
    m->last_ms = ms;
    m->last_seq = seq;
    snprintf(m->ev_last, sizeof m->ev_last, "(%s", id);
    on_entry(m, ms, fields);
    m->entries++;
}

static void on_fed(const char *id, const redisReply *fields, void *ud)
{
    model *m = ud;
    if (m->caught_up)
        take_entry(m, id, fields);
    else
        m->ev_missed = true; /* maybe after the page in flight was read: the next has it */
}

static void on_events(store *st, const redisReply *r, void *pd)
{
    (void)st;
    life *l = pd;
    bool alive = l->alive;
    model *m = alive ? (model *)l->owner : NULL;
    life_put(l);
    if (!alive)
        return;
    m->ev_inflight = false;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        poll_arm(m, RETRY_MS);
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        take_entry(m, rstr(e->element[0]), e->element[1]);
    }
    if (r->elements >= PAGE || m->ev_missed)
        poll_arm(m, 0); /* more, or an entry fed meanwhile */
    else if (m->page_following)
        m->caught_up = true; /* the feed has everything after this page */
    else
        poll_arm(m, POLL_MS); /* the feed's reader has not started yet */
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    model *m = arg;
    char count[16];
    snprintf(count, sizeof count, "%d", PAGE);
    const char *argv[] = {"XRANGE", m->k_events, m->ev_last, "+", "COUNT", count};
    m->page_following = events_following(m->feed);
    m->ev_missed = false;
    if (store_command_argv(m->st, 6, argv, NULL, on_events, m->life) != 0) {
        poll_arm(m, RETRY_MS);
        return;
    }
    m->ev_inflight = true;
    m->life->refs++;
}

typedef struct each_ctx {
    void (*fn)(const char *, const model_qcount *, void *);
    void *ud;
} each_ctx;

static void each_fn(const char *k, void *v, void *u)
{
    each_ctx *e = u;
    e->fn(k, &((qstat *)v)->c, e->ud);
}

void model_each_count(const model *m,
                      void (*fn)(const char *queue, const model_qcount *c, void *ud), void *ud)
{
    each_ctx e = {fn, ud};
    strmap_each(m->qstats, each_fn, &e);
}

const model_hist *model_cross_node(const model *m)
{
    return &m->cross_hist;
}

void model_service_level(const model *m, const char *queue, model_sl *out)
{
    *out = (model_sl){0};
    const qstat *q = strmap_get(m->qstats, queue);
    if (!q)
        return;
    int64_t now_min = (int64_t)(clock_wall_ms() / 60000);
    int64_t from = now_min - (int64_t)m->nring + 2; /* nring - 1 minutes */
    for (size_t i = 0; i < m->nring; i++) {
        const slb *b = &q->ring[i];
        if (b->minute >= from && b->minute <= now_min) {
            out->answered += b->answered;
            out->answered_within += b->within;
            out->abandoned += b->abandoned;
        }
    }
}

typedef struct cmd_req {
    life *life;
    store_cb cb;
    void *pd;
} cmd_req;

static void on_cmd(store *st, const redisReply *r, void *pd)
{
    cmd_req *q = pd;
    if (q->life->alive)
        q->cb(st, r, q->pd);
    life_put(q->life);
    free(q);
}

int model_command(model *m, int argc, const char **argv, store_cb cb, void *pd)
{
    cmd_req *q = malloc(sizeof *q);
    if (!q)
        return ARIQ_ENOMEM;
    *q = (cmd_req){.life = m->life, .cb = cb, .pd = pd};
    int rc = store_command_argv(m->st, argc, argv, NULL, on_cmd, q);
    if (rc != 0) {
        free(q);
        return rc;
    }
    m->life->refs++;
    return 0;
}

/* ---- life ---------------------------------------------------------------------- */

int model_new(struct event_base *base, store *st, events *feed, const acfg *cfg, model **out,
              char *err, size_t errlen)
{
    model *m = calloc(1, sizeof *m);
    if (!m)
        return ARIQ_ENOMEM;
    *m = (model){.base = base, .st = st, .cfg = cfg, .feed = feed};
    m->wtail = &m->waiters;
    m->life = calloc(1, sizeof *m->life);
    if (m->life)
        *m->life = (life){.alive = true, .refs = 1, .owner = m};
    m->qstats = strmap_new();
    m->cross = strmap_new();
    m->poll = event_new(base, -1, 0, on_poll, m);
    const store_keys *k = store_get_keys(st);
    if (!m->life || !m->qstats || !m->cross || !m->poll ||
        store_key_nodes(k, m->k_nodes, sizeof m->k_nodes) != 0 ||
        store_key_events(k, m->k_events, sizeof m->k_events) != 0) {
        snprintf(err, errlen, "model: out of memory or bad namespace");
        model_free(m);
        return ARIQ_ENOMEM;
    }
    /* one more minute than the window: the current minute is partial */
    m->nring = (size_t)(cfg->service_level_window_s + 59) / 60 + 1;
    m->start_ms = clock_wall_ms();
    uint64_t from = m->start_ms - (uint64_t)cfg->service_level_window_s * 1000;
    snprintf(m->ev_last, sizeof m->ev_last, "%llu-0", (unsigned long long)from);
    events_follow(feed, on_fed, m);
    poll_arm(m, 0);
    *out = m;
    return 0;
}

static void qstat_free(const char *k, void *v, void *ud)
{
    (void)k;
    (void)ud;
    qstat *q = v;
    free(q->ring);
    free(q);
}

void model_free(model *m)
{
    if (!m)
        return;
    while (m->waiters) {
        waiter *w = m->waiters;
        m->waiters = w->next;
        free(w);
    }
    if (m->feed)
        events_follow(m->feed, NULL, NULL);
    if (m->life) {
        m->life->alive = false;
        life_put(m->life);
    }
    if (m->poll)
        event_free(m->poll);
    if (m->qstats) {
        strmap_each(m->qstats, qstat_free, NULL);
        strmap_free(m->qstats);
    }
    strmap_free(m->cross);
    snap_free(m->snap);
    free(m);
}
