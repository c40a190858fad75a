/* read.c - the read routes (agentd/API.md "Read") from model.h's snapshot,
 * and GET /metrics (metrics.c).
 *
 * Each handler asks the model for a snapshot (now, or when the read in
 * flight completes) and renders from it. GET /queues and GET /queues/{name}
 * are rendered once per snapshot and kept in it: with 5,000 waiting callers
 * a request is then a copy of a string. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "core/clock.h"
#include "core/err.h"
#include "metrics.h"
#include "model.h"

#define ID_MAX 256
#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000

/* A request waiting for its snapshot. */
typedef struct rreq {
    api_ctx *a;
    http_req *r;
    char id[ID_MAX];
    long limit;
    void (*render)(struct rreq *q, model_snap *s);
} rreq;

/* One decimal real: precision 4 prints 66.7, 100.0, 5.0. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(4))

static char *dump(json_t *o, size_t *len)
{
    char *b = o ? json_dumps(o, DUMP_FLAGS) : NULL;
    json_decref(o);
    *len = b ? strlen(b) : 0;
    return b;
}

static void reply_dump(http_req *r, json_t *o)
{
    size_t len;
    char *b = dump(o, &len);
    if (!b) {
        api_reply_error(r, 500, "out of memory");
        return;
    }
    http_reply(r, 200, "application/json", b, len);
    free(b);
}

static json_t *num(const json_t *h, const char *f)
{
    return json_integer(model_int(h, f));
}

static json_t *str_or_null(const char *s)
{
    return *s ? json_string(s) : json_null();
}

/* "a&b" as ["a","b"]. */
static json_t *names(const char *amp)
{
    json_t *a = json_array();
    const char *p = amp;
    while (*p) {
        size_t n = strcspn(p, "&");
        if (n)
            json_array_append_new(a, json_stringn(p, n));
        p += n + (p[n] == '&');
    }
    return a;
}

/* ---- renderers ------------------------------------------------------------------- */

static json_t *caller_json(const model_snap *s, size_t idx, long position)
{
    const json_t *h = s->calls[idx].h;
    long long wait = (long long)s->as_of_ms - model_int(h, "entered_ms");
    return json_pack("{s:s, s:s, s:s, s:o, s:i, s:o, s:I, s:s, s:s, s:o}", "callid",
                     s->calls[idx].id, "channel", model_str(h, "channel"), "node",
                     model_str(h, "node"), "priority", num(h, "priority"), "position",
                     (json_int_t)position, "entered_ms", num(h, "entered_ms"), "wait_ms",
                     (json_int_t)(wait > 0 ? wait : 0), "cid_num", model_str(h, "cid_num"),
                     "cid_name", model_str(h, "cid_name"), "queues",
                     names(model_str(h, "queues")));
}

static json_t *summary_json(const api_ctx *a, const model_queue *q)
{
    json_t *ag = json_object();
    for (int i = 0; i < MA_COUNT; i++)
        json_object_set_new(ag, model_agent_count_names[i], json_integer(q->agents[i]));
    int64_t den = q->sl.answered + q->sl.abandoned;
    json_t *pct = den ? json_real(round(1000.0 * (double)q->sl.answered_within / (double)den) /
                                  10.0)
                      : json_null();
    return json_pack("{s:s, s:I, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:o}}", "name",
                     q->name, "waiting", (json_int_t)q->ncallers, "longest_wait_ms",
                     (json_int_t)q->longest_wait_ms, "agents", ag, "service_level",
                     "threshold_s", (json_int_t)a->cfg->service_level_s, "window_s",
                     (json_int_t)a->cfg->service_level_window_s, "answered",
                     (json_int_t)q->sl.answered, "answered_within",
                     (json_int_t)q->sl.answered_within, "abandoned",
                     (json_int_t)q->sl.abandoned, "percent", pct);
}

static const char *agent_state(const char *redis_state)
{
    if (!strcmp(redis_state, "free"))
        return "waiting";
    if (!strcmp(redis_state, "paired"))
        return "connecting";
    return redis_state;
}

static json_t *agent_json(const model_snap *s, const model_rec *ag)
{
    const json_t *h = ag->h;
    const char *pid = model_str(h, "pairing");
    const model_rec *p = *pid ? model_find(s->pairings, s->npairings, pid) : NULL;
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:b, s:s, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "agent", ag->id, "node", model_str(h, "node"), "channel",
                     model_str(h, "channel"), "channel_name", model_str(h, "chan_name"),
                     "queues", names(model_str(h, "queues")), "state",
                     agent_state(model_str(h, "state")), "paused",
                     model_int(h, "paused") != 0, "pause_reason",
                     model_str(h, "pause_reason"), "since_ms", num(h, "since_ms"), "login_ms",
                     num(h, "login_ms"), "calls_taken", num(h, "calls_taken"), "talk_time_ms",
                     num(h, "talk_ms"), "pairing", str_or_null(pid), "callid",
                     str_or_null(p ? model_str(p->h, "call") : ""));
}

static json_t *call_json(const model_snap *s, const model_rec *p)
{
    const json_t *h = p->h;
    const model_rec *c = model_find(s->calls, s->ncalls, model_str(h, "call"));
    const json_t *ch = c ? c->h : NULL; /* the caller's number and name, for a wallboard */
    bool bridged = !strcmp(model_str(h, "state"), "bridged");
    const char *rec = model_str(h, "rec");
    json_t *recj = *rec ? json_pack("{s:s, s:s}", "name", rec, "state",
                                    model_str(h, "rec_state"))
                        : json_null();
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s,"
                     " s:s}",
                     "pairing", p->id, "state", bridged ? "talking" : "connecting", "queue",
                     model_str(h, "queue"), "callid", model_str(h, "call"), "caller_channel",
                     model_str(h, "caller_channel"), "caller_node",
                     model_str(h, "caller_node"), "agent", model_str(h, "agent"),
                     "agent_channel", model_str(h, "agent_channel"), "agent_node",
                     model_str(h, "agent_node"), "created_ms", num(h, "created_ms"),
                     "bridged_ms", bridged ? num(h, "bridged_ms") : json_null(),
                     "holdtime_ms", num(h, "holdtime_ms"), "recording", recj, "cid_num",
                     ch ? model_str(ch, "cid_num") : "", "cid_name",
                     ch ? model_str(ch, "cid_name") : "");
}

static json_t *recording_json(const char *name, const json_t *h)
{
    const char *st = model_str(h, "state");
    bool ended = strcmp(st, "recording") && strcmp(st, "paused") && model_int(h, "ended_ms");
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "name", name,
                     "state", st, "pairing", model_str(h, "pairing"), "queue",
                     model_str(h, "queue"), "agent", model_str(h, "agent"), "callid",
                     model_str(h, "call"), "node", model_str(h, "node"), "file",
                     model_str(h, "file"), "started_ms", num(h, "started_ms"), "ended_ms",
                     ended ? num(h, "ended_ms") : json_null(), "paused_ms",
                     num(h, "paused_ms"));
}

static json_t *as_of(const model_snap *s)
{
    return json_pack("{s:I}", "as_of_ms", (json_int_t)s->as_of_ms);
}

static const model_queue *find_queue(const model_snap *s, const char *name)
{
    for (size_t i = 0; i < s->nqueues; i++)
        if (!strcmp(s->queues[i].name, name))
            return &s->queues[i];
    return NULL;
}

/* ---- the routes -------------------------------------------------------------------- */

static void r_queues(rreq *q, model_snap *s)
{
    if (!s->queues_body) {
        json_t *o = as_of(s), *arr = json_array();
        for (size_t i = 0; i < s->nqueues; i++)
            json_array_append_new(arr, summary_json(q->a, &s->queues[i]));
        json_object_set_new(o, "queues", arr);
        s->queues_body = dump(o, &s->queues_body_len);
    }
    if (!s->queues_body)
        api_reply_error(q->r, 500, "out of memory");
    else
        http_reply(q->r, 200, "application/json", s->queues_body, s->queues_body_len);
}

static void r_queue(rreq *q, model_snap *s)
{
    model_queue *qu = (model_queue *)find_queue(s, q->id);
    if (!qu) {
        api_reply_error(q->r, 404, "queue not found");
        return;
    }
    if (!qu->body) {
        json_t *o = summary_json(q->a, qu), *arr = json_array();
        for (size_t i = 0; i < qu->ncallers; i++)
            json_array_append_new(arr, caller_json(s, qu->callers[i], (long)i + 1));
        json_object_set_new(o, "callers", arr);
        json_object_set_new(o, "as_of_ms", json_integer((json_int_t)s->as_of_ms));
        qu->body = dump(o, &qu->body_len);
    }
    if (!qu->body)
        api_reply_error(q->r, 500, "out of memory");
    else
        http_reply(q->r, 200, "application/json", qu->body, qu->body_len);
}

static void r_agents(rreq *q, model_snap *s)
{
    json_t *o = as_of(s), *arr = json_array();
    for (size_t i = 0; i < s->nagents; i++)
        json_array_append_new(arr, agent_json(s, &s->agents[i]));
    json_object_set_new(o, "agents", arr);
    reply_dump(q->r, o);
}

static void r_agent(rreq *q, model_snap *s)
{
    const model_rec *ag = model_find(s->agents, s->nagents, q->id);
    if (!ag) {
        api_reply_error(q->r, 404, "agent not found");
        return;
    }
    json_t *o = as_of(s);
    json_object_set_new(o, "agent", agent_json(s, ag));
    reply_dump(q->r, o);
}

static void r_calls(rreq *q, model_snap *s)
{
    json_t *o = as_of(s), *arr = json_array();
    for (size_t i = 0; i < s->npairings; i++)
        json_array_append_new(arr, call_json(s, &s->pairings[i]));
    json_object_set_new(o, "calls", arr);
    reply_dump(q->r, o);
}

/* Position of call idx in queue qu (1-based), 0 when not there. */
static long position_in(const model_queue *qu, size_t idx)
{
    for (size_t i = 0; qu && i < qu->ncallers; i++)
        if (qu->callers[i] == idx)
            return (long)i + 1;
    return 0;
}

static void r_call(rreq *q, model_snap *s)
{
    for (size_t i = 0; i < s->npairings; i++)
        if (!strcmp(model_str(s->pairings[i].h, "call"), q->id)) {
            json_t *o = as_of(s);
            json_object_set_new(o, "call", call_json(s, &s->pairings[i]));
            reply_dump(q->r, o);
            return;
        }
    const model_rec *c = model_find(s->calls, s->ncalls, q->id);
    if (!c || strcmp(model_str(c->h, "state"), "waiting") != 0) {
        api_reply_error(q->r, 404, "call not found");
        return;
    }
    /* its position in its first queue */
    char first[ID_MAX];
    const char *qs = model_str(c->h, "queues");
    size_t n = strcspn(qs, "&");
    snprintf(first, sizeof first, "%.*s", (int)(n < sizeof first ? n : sizeof first - 1), qs);
    size_t idx = (size_t)(c - s->calls);
    json_t *o = as_of(s);
    json_object_set_new(o, "call", json_null());
    json_object_set_new(o, "waiting", caller_json(s, idx, position_in(find_queue(s, first), idx)));
    reply_dump(q->r, o);
}

static void r_recordings(rreq *q, model_snap *s)
{
    json_t *o = as_of(s), *arr = json_array();
    for (size_t i = 0; i < s->nrecordings && (long)i < q->limit; i++)
        json_array_append_new(arr, recording_json(s->recordings[i].id, s->recordings[i].h));
    json_object_set_new(o, "recordings", arr);
    reply_dump(q->r, o);
}

static void r_metrics(rreq *q, model_snap *s)
{
    size_t len;
    char *b = metrics_render(q->a, s, &len);
    if (!b)
        api_reply_error(q->r, 500, "out of memory");
    else
        http_reply(q->r, 200, "text/plain; version=0.0.4; charset=utf-8", b, len);
    free(b);
}

/* ---- plumbing ---------------------------------------------------------------------- */

static void on_snap(model *m, model_snap *s, void *ud)
{
    (void)m;
    rreq *q = ud;
    if (!s)
        api_reply_error(q->r, 503, "no snapshot of Redis: Redis is unavailable");
    else
        q->render(q, s);
    free(q);
}

/* Takes segment `seg` of the path into q->id (when seg >= 0) and asks the
 * model for a snapshot to render with. */
static void serve(api_ctx *a, http_req *r, int seg, void (*render)(rreq *, model_snap *),
                  long limit)
{
    if (!a->model) {
        api_reply_error(r, 503, "the read model is not running");
        return;
    }
    rreq *q = calloc(1, sizeof *q);
    if (!q) {
        api_reply_error(r, 500, "out of memory");
        return;
    }
    *q = (rreq){.a = a, .r = r, .render = render, .limit = limit};
    if (seg >= 0 && !api_path_segment(http_req_path(r), seg, q->id, sizeof q->id)) {
        free(q);
        api_reply_error(r, 404, "not found: name too long");
        return;
    }
    if (model_get(a->model, on_snap, q) != 0) {
        free(q);
        api_reply_error(r, 500, "out of memory");
    }
}

static void get_queues(api_ctx *a, http_req *r) { serve(a, r, -1, r_queues, 0); }
static void get_queue(api_ctx *a, http_req *r) { serve(a, r, 3, r_queue, 0); }
static void get_agents(api_ctx *a, http_req *r) { serve(a, r, -1, r_agents, 0); }
static void get_agent(api_ctx *a, http_req *r) { serve(a, r, 3, r_agent, 0); }
static void get_calls(api_ctx *a, http_req *r) { serve(a, r, -1, r_calls, 0); }
static void get_call(api_ctx *a, http_req *r) { serve(a, r, 3, r_call, 0); }
static void get_metrics(api_ctx *a, http_req *r) { serve(a, r, -1, r_metrics, 0); }

static void get_recordings(api_ctx *a, http_req *r)
{
    const char *l = http_req_param(r, "limit");
    long limit = LIMIT_DEFAULT;
    if (l) {
        char *end = NULL;
        limit = strtol(l, &end, 10);
        if (!*l || *end || l[0] == '-' || l[0] == '+' || l[0] == ' ' || limit < 1 ||
            limit > LIMIT_MAX) {
            api_reply_error(r, 400, "limit: an integer 1..1000");
            return;
        }
    }
    serve(a, r, -1, r_recordings, limit);
}

/* GET /recordings/{name}: from Redis at once (a recording ends after the
 * snapshot; the detail page wants its end). */
typedef struct recq {
    http_req *r;
    char name[ID_MAX];
} recq;

static void on_recording(store *st, const redisReply *reply, void *pd)
{
    (void)st;
    recq *q = pd;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        api_reply_error(q->r, 503, "Redis is unavailable");
    } else if (reply->elements == 0) {
        api_reply_error(q->r, 404, "recording not found");
    } else {
        json_t *h = json_object();
        for (size_t i = 0; i + 1 < reply->elements; i += 2)
            json_object_set_new(h, reply->element[i]->str ? reply->element[i]->str : "",
                                json_string(reply->element[i + 1]->str
                                                ? reply->element[i + 1]->str
                                                : ""));
        json_t *o = json_pack("{s:I, s:o}", "as_of_ms", (json_int_t)clock_wall_ms(),
                              "recording", recording_json(q->name, h));
        json_decref(h);
        reply_dump(q->r, o);
    }
    free(q);
}

static void get_recording(api_ctx *a, http_req *r)
{
    recq *q = calloc(1, sizeof *q);
    char key[STORE_KEY_MAX];
    if (!q) {
        api_reply_error(r, 500, "out of memory");
        return;
    }
    q->r = r;
    if (!api_path_segment(http_req_path(r), 3, q->name, sizeof q->name) ||
        store_key(store_get_keys(a->store), key, sizeof key, "recording", q->name, NULL) != 0) {
        free(q);
        api_reply_error(r, 404, "recording not found");
        return;
    }
    const char *argv[] = {"HGETALL", key};
    if (!a->model || model_command(a->model, 2, argv, on_recording, q) != 0) {
        free(q);
        api_reply_error(r, 503, "Redis is unavailable");
    }
}

static const char *const limit_param[] = {"limit", NULL};

const api_route api_read_routes[] = {
    {"GET", "/api/v1/queues", NULL, get_queues, false},
    {"GET", "/api/v1/queues/{name}", NULL, get_queue, false},
    {"GET", "/api/v1/agents", NULL, get_agents, false},
    {"GET", "/api/v1/agents/{id}", NULL, get_agent, false},
    {"GET", "/api/v1/calls", NULL, get_calls, false},
    {"GET", "/api/v1/calls/{callid}", NULL, get_call, false},
    {"GET", "/api/v1/recordings", limit_param, get_recordings, false},
    {"GET", "/api/v1/recordings/{name}", NULL, get_recording, false},
    {"GET", "/metrics", NULL, get_metrics, false},
};
const size_t api_read_nroutes = sizeof api_read_routes / sizeof api_read_routes[0];
