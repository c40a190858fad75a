/* test_conformance.c - replays every recorded Asterisk 22 trace against the
 * simulator core on a virtual clock and compares, per request, the status and
 * the JSON shape of the body, and per channel / playback / recording / bridge
 * the order of events (see SIM.md, "Conformance").
 *
 * Outside actions are injected through /sim/: a StasisStart for a channel
 * nobody originated is a call (POST /sim/calls), a ChannelHangupRequest
 * without `soft` on such a channel is the party hanging up, a
 * ChannelDtmfReceived with a duration is the party pressing a key. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "vhost.h"

/* A matched event may happen this far from its recorded time: Asterisk's
 * own latency (a few ms per request) accumulates over a flow. */
#define MAX_DT_MS 60

typedef struct item {
    int node;
    uint64_t t;
    size_t idx;
    json_t *o; /* borrowed from the trace array */
} item;

typedef enum { A_REQ, A_CALL, A_HANGUP, A_DTMF } akind;

typedef struct action {
    akind k;
    int node;
    uint64_t t;
    size_t order;
    json_t *o;
} action;

typedef struct run {
    vhost *vh;
    json_t *lines[2];   /* arrays of parsed lines */
    item *items;
    size_t n_items;
    action *acts;
    size_t n_acts;
    json_t *map;        /* recorded id -> sim id */
    json_t *orig;       /* channel ids the app originated (recorded) */
    json_t *injected;   /* channel ids injected as calls */
    json_t *far_ss;     /* recorded far-leg StasisStarts: [{node,id,args}] */
    json_t *sim_resp;   /* "node:seq" -> {status, body} */
    int req_ok, req_n, ev_ok, ev_n;
    int shown;
    double skew;        /* ms subtracted from node2's clock */
    bool shape_only;    /* samples: keys and types, no values */
    json_int_t max_dt;  /* largest |sim time - trace time| of a matched event */
} run;

static const char *S(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static const char *mapped(run *r, const char *id)
{
    const char *m = S(r->map, id);
    return m ? m : id;
}

static void complain(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void complain(run *r, const char *fmt, ...)
{
    if (r->shown++ > 40)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "    ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static json_t *load_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    json_t *a = json_array();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        if (o)
            json_array_append_new(a, o);
    }
    free(line);
    fclose(f);
    return a;
}

static int item_cmp(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    if (x->node != y->node)
        return x->node - y->node;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int act_cmp(const void *a, const void *b)
{
    const action *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static json_t *ev_chan(json_t *ev)
{
    json_t *c = json_object_get(ev, "channel");
    return c ? c : json_object_get(ev, "peer");
}

/* The recorded response of request `seq` on `node`. */
static json_t *rec_response(run *r, int node, json_int_t seq)
{
    size_t i;
    json_t *o;
    json_array_foreach(r->lines[node], i, o)
    {
        if (!strcmp(S(o, "kind"), "response") &&
            json_integer_value(json_object_get(o, "request")) == seq)
            return o;
    }
    return NULL;
}

static void add_act(run *r, akind k, int node, uint64_t t, size_t order, json_t *o)
{
    r->acts[r->n_acts++] = (action){k, node, t, order, o};
}

/* Id from "channelId=..." in a query string, or NULL. */
static void query_param(const char *path, const char *name, char *out, size_t n)
{
    out[0] = 0;
    const char *q = strchr(path, '?');
    size_t nl = strlen(name);
    for (const char *p = q; p && *p; p = strchr(p + 1, '&')) {
        if (!strncmp(p + 1, name, nl) && p[1 + nl] == '=') {
            snprintf(out, n, "%.*s", (int)strcspn(p + 2 + nl, "&"), p + 2 + nl);
            return;
        }
    }
}

/* Earliest request mentioning `id` answered "Channel not found" after `from`:
 * the party had already gone when Asterisk looked, so the hangup goes first. */
static uint64_t hangup_time(run *r, const char *id, uint64_t from, uint64_t t_ev)
{
    uint64_t best = t_ev;
    for (size_t i = 0; i < r->n_items; i++) {
        item *it = &r->items[i];
        if (it->t <= from || it->t >= best || strcmp(S(it->o, "kind"), "request") ||
            !strstr(S(it->o, "path"), id))
            continue;
        json_t *resp = rec_response(r, it->node, json_integer_value(json_object_get(it->o, "seq")));
        const char *msg = S(json_object_get(resp, "body"), "message");
        if (msg && !strcmp(msg, "Channel not found"))
            best = it->t;
    }
    return best;
}

/* The party hung up and the app's DELETE still got in (a soft request
 * follows on the same channel): the hangup happened just before that
 * DELETE. Returns the DELETE's item index, or 0. */
static size_t delete_after(run *r, item *it, const char *id)
{
    size_t at = (size_t)(it - r->items), del = 0;
    bool soft = false;
    char path[256];
    snprintf(path, sizeof(path), "/ari/channels/%s", id);
    for (size_t i = at + 1; i < r->n_items && !soft; i++) {
        json_t *ev = json_object_get(r->items[i].o, "event");
        soft = ev && r->items[i].node == it->node &&
               !strcmp(S(ev, "type"), "ChannelHangupRequest") && json_object_get(ev, "soft") &&
               !strcmp(S(ev_chan(ev), "id"), id);
    }
    for (size_t i = 0; soft && i < at; i++) {
        json_t *o = r->items[i].o;
        if (r->items[i].node == it->node && !strcmp(S(o, "kind"), "request") &&
            !strcmp(S(o, "method"), "DELETE") && !strncmp(S(o, "path"), path, strlen(path)) &&
            (S(o, "path")[strlen(path)] == 0 || S(o, "path")[strlen(path)] == '?'))
            del = i;
    }
    return del;
}

static void plan_event(run *r, item *it, size_t order)
{
    json_t *ev = json_object_get(it->o, "event");
    const char *type = S(ev, "type");
    json_t *ch = ev_chan(ev);
    const char *id = S(ch, "id");
    if (!id)
        return;
    if (!strcmp(type, "StasisStart") && !json_object_get(r->orig, id)) {
        if (!strncmp(S(ch, "name"), "IAX2/", 5)) {
            json_array_append_new(r->far_ss, json_pack("{s:i,s:s,s:O}", "node", it->node, "id",
                                                       id, "args", json_object_get(ev, "args")));
            return;
        }
        json_object_set_new(r->injected, id, json_integer((json_int_t)it->t));
        add_act(r, A_CALL, it->node, it->t - 1, order, it->o);
    } else if (!strcmp(type, "ChannelHangupRequest") && !json_object_get(ev, "soft") &&
               json_is_integer(json_object_get(r->injected, id))) {
        uint64_t from = (uint64_t)json_integer_value(json_object_get(r->injected, id));
        json_object_set_new(r->injected, id, json_true()); /* hung: first one only */
        size_t del = delete_after(r, it, id);
        if (del)
            add_act(r, A_HANGUP, it->node, r->items[del].t, 2 * del - 1, it->o);
        else
            add_act(r, A_HANGUP, it->node, hangup_time(r, id, from, it->t) - 1, order, it->o);
    } else if (!strcmp(type, "ChannelDtmfReceived") &&
               json_integer_value(json_object_get(ev, "duration_ms")) > 0 &&
               json_object_get(r->injected, id)) {
        add_act(r, A_DTMF, it->node, it->t - 1, order, it->o);
    }
}

static void plan(run *r)
{
    r->acts = calloc(r->n_items, sizeof(*r->acts));
    for (size_t i = 0; i < r->n_items; i++) {
        item *it = &r->items[i];
        const char *kind = S(it->o, "kind");
        if (!strcmp(kind, "request") && !strcmp(S(it->o, "method"), "POST") &&
            !strncmp(S(it->o, "path"), "/ari/channels?", 14)) {
            char id[128];
            query_param(S(it->o, "path"), "channelId", id, sizeof(id));
            json_t *resp = rec_response(r, it->node,
                                        json_integer_value(json_object_get(it->o, "seq")));
            const char *rid = S(json_object_get(resp, "body"), "id");
            if (*id)
                json_object_set_new(r->orig, id, json_true());
            if (rid)
                json_object_set_new(r->orig, rid, json_true());
        }
    }
    for (size_t i = 0; i < r->n_items; i++) {
        item *it = &r->items[i];
        const char *kind = S(it->o, "kind");
        if (!strcmp(kind, "request"))
            add_act(r, A_REQ, it->node, it->t, 2 * i, it->o);
        else if (!strcmp(kind, "event"))
            plan_event(r, it, 2 * i);
    }
    qsort(r->acts, r->n_acts, sizeof(*r->acts), act_cmp);
}

/* A far leg the sim created: pair it with the recorded one by node + args. */
static void on_event(vhost *vh, int node, const json_t *ev, void *ud)
{
    run *r = ud;
    (void)vh;
    if (strcmp(S((json_t *)ev, "type"), "StasisStart"))
        return;
    const char *sid = S(ev_chan((json_t *)ev), "id");
    size_t i;
    json_t *f;
    json_array_foreach(r->far_ss, i, f)
    {
        if (json_integer_value(json_object_get(f, "node")) != node ||
            json_object_get(f, "used") ||
            !json_equal(json_object_get(f, "args"), json_object_get(ev, "args")))
            continue;
        json_object_set_new(f, "used", json_true());
        json_object_set_new(r->map, S(f, "id"), json_string(sid));
        return;
    }
}

/* Replaces every recorded id in s with its sim id. New string (free). */
static char *subst(run *r, const char *s)
{
    char *cur = strdup(s);
    const char *k;
    json_t *v;
    json_object_foreach(r->map, k, v)
    {
        const char *to = json_string_value(v);
        char *p;
        while ((p = strstr(cur, k))) {
            size_t n = strlen(cur) - strlen(k) + strlen(to) + 1;
            char *nx = malloc(n);
            snprintf(nx, n, "%.*s%s%s", (int)(p - cur), cur, to, p + strlen(k));
            free(cur);
            cur = nx;
            if (!strcmp(k, to))
                break;
        }
    }
    return cur;
}

static void do_req(run *r, action *a)
{
    char *path = subst(r, S(a->o, "path"));
    json_t *b = json_object_get(a->o, "body");
    char *body = json_is_object(b) ? json_dumps(b, JSON_COMPACT) : NULL;
    int status;
    json_t *resp = vhost_req(r->vh, a->node, S(a->o, "method"), path, body, &status);
    json_int_t seq = json_integer_value(json_object_get(a->o, "seq"));
    json_t *rec = rec_response(r, a->node, seq);
    const char *rid = S(json_object_get(rec, "body"), "id"), *sid = S(resp, "id");
    if (rid && sid && strcmp(rid, sid) && !json_object_get(r->map, rid))
        json_object_set_new(r->map, rid, json_string(sid));
    char key[64];
    snprintf(key, sizeof(key), "%d:%lld", a->node, (long long)seq);
    json_object_set_new(r->sim_resp, key, json_pack("{s:i,s:o*}", "status", status, "body", resp));
    free(path);
    free(body);
}

static void do_outside(run *r, action *a)
{
    json_t *ev = json_object_get(a->o, "event");
    json_t *ch = ev_chan(ev);
    char path[256];
    json_t *body = NULL;
    const char *id = mapped(r, S(ch, "id"));
    if (a->k == A_CALL) {
        json_t *dp = json_object_get(ch, "dialplan");
        json_t *caller = json_object_get(ch, "caller");
        body = json_pack("{s:s,s:O,s:s,s:s,s:s,s:s,s:s,s:s}", "app", S(ev, "application"),
                         "args", json_object_get(ev, "args"), "channel_id", id, "name",
                         S(ch, "name"), "context", S(dp, "context"), "exten", S(dp, "exten"),
                         "caller_number", S(caller, "number"), "caller_name", S(caller, "name"));
        snprintf(path, sizeof(path), "/sim/calls");
    } else if (a->k == A_HANGUP) {
        body = json_pack("{s:O}", "cause", json_object_get(ev, "cause"));
        snprintf(path, sizeof(path), "/sim/channels/%s/hangup", id);
    } else {
        body = json_pack("{s:s,s:O}", "digits", S(ev, "digit"), "duration_ms",
                         json_object_get(ev, "duration_ms"));
        snprintf(path, sizeof(path), "/sim/channels/%s/dtmf", id);
    }
    char *b = json_dumps(body, JSON_COMPACT);
    int status;
    json_decref(vhost_req(r->vh, a->node, "POST", path, b, &status));
    if (status >= 300)
        complain(r, "inject %s -> %d", path, status);
    free(b);
    json_decref(body);
}

static bool value_key(const char *k)
{
    static const char *const keys[] = {"state",     "bridge_type", "technology", "args",
                                       "message",   "media_uri",   "format",     "dialstatus",
                                       "bridge_class", "next_media_uri"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!strcmp(k, keys[i]))
            return true;
    return false;
}

static bool racy_state(const char *k, json_t *a, json_t *b)
{
    const char *x = json_string_value(a), *y = json_string_value(b);
    return !strcmp(k, "state") && x && y &&
           (!strcmp(x, "queued") || !strcmp(x, "playing")) &&
           (!strcmp(y, "queued") || !strcmp(y, "playing"));
}

/* Ids and names that must be the same once recorded ids are mapped: ids,
 * targets, bridge and recording names; not channel names of IAX2 legs
 * (Asterisk numbers them at random). */
static bool id_key_differs(run *r, const char *k, json_t *a, json_t *b)
{
    const char *x = json_string_value(a), *y = json_string_value(b);
    if (!x || !y || (strcmp(k, "id") && strcmp(k, "target_uri") && strcmp(k, "name")))
        return false;
    if (!strcmp(k, "name") && !strncmp(x, "IAX2/", 5))
        return false;
    char *m = subst(r, x);
    bool differs = strcmp(m, y) != 0;
    free(m);
    return differs;
}

/* Same keys recursively, same JSON types, same values where they matter. */
static bool same_shape(run *r, const char *where, json_t *a, json_t *b)
{
    if (json_typeof(a) != json_typeof(b) &&
        !(json_is_integer(a) && json_is_real(b)) && !(json_is_boolean(a) && json_is_boolean(b))) {
        complain(r, "%s: type differs", where);
        return false;
    }
    if (json_is_array(a) && json_array_size(a) && json_array_size(b))
        return same_shape(r, where, json_array_get(a, 0), json_array_get(b, 0));
    if (!json_is_object(a))
        return true;
    bool ok = true;
    const char *k;
    json_t *v;
    char w[256];
    json_object_foreach(a, k, v)
    {
        snprintf(w, sizeof(w), "%s.%s", where, k);
        json_t *bv = json_object_get(b, k);
        if (!bv) {
            complain(r, "%s: missing", w);
            ok = false;
        } else if (!r->shape_only &&
                   ((value_key(k) && !json_equal(v, bv) && !racy_state(k, v, bv)) ||
                    id_key_differs(r, k, v, bv))) {
            char *x = json_dumps(v, JSON_ENCODE_ANY), *y = json_dumps(bv, JSON_ENCODE_ANY);
            complain(r, "%s: %s != %s", w, x, y);
            free(x);
            free(y);
            ok = false;
        } else if (!same_shape(r, w, v, bv)) {
            ok = false;
        }
    }
    json_object_foreach(b, k, v)
    {
        if (!json_object_get(a, k) && *k != '_') {
            complain(r, "%s.%s: extra", where, k);
            ok = false;
        }
    }
    return ok;
}

static void check_requests(run *r)
{
    for (size_t i = 0; i < r->n_items; i++) {
        item *it = &r->items[i];
        if (strcmp(S(it->o, "kind"), "request"))
            continue;
        json_int_t seq = json_integer_value(json_object_get(it->o, "seq"));
        json_t *rec = rec_response(r, it->node, seq);
        char key[64], where[300];
        snprintf(key, sizeof(key), "%d:%lld", it->node, (long long)seq);
        json_t *sim = json_object_get(r->sim_resp, key);
        r->req_n++;
        if (!rec || !sim)
            continue;
        int rs = (int)json_integer_value(json_object_get(rec, "status"));
        int ss = (int)json_integer_value(json_object_get(sim, "status"));
        snprintf(where, sizeof(where), "node%d %s %.200s", it->node + 1, S(it->o, "method"),
                 S(it->o, "path"));
        json_t *rb = json_object_get(rec, "body"), *sb = json_object_get(sim, "body");
        if (rs != ss) {
            complain(r, "%s: status %d != %d", where, rs, ss);
            continue;
        }
        bool empty_r = json_is_string(rb) && !*json_string_value(rb);
        if (empty_r ? sb != NULL && !json_is_null(sb) : !same_shape(r, where, rb, sb ? sb : json_null()))
            continue;
        r->req_ok++;
    }
}

static bool ignored(json_t *ev)
{
    const char *t = S(ev, "type");
    if (!strcmp(t, "ChannelConnectedLine") || !strcmp(t, "ChannelCallerId"))
        return true;
    return false;
}

/* Appends "Type(detail)" to the stream of the object the event is about. */
/* "2026-11-25T02:53:21.823+0000" -> ms since the epoch (UTC). */
static json_int_t ts_ms(const char *ts)
{
    struct tm tm = {0};
    int ms = 0;
    if (!ts || sscanf(ts, "%d-%d-%dT%d:%d:%d.%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (json_int_t)timegm(&tm) * 1000 + ms;
}

static void stream_add(run *r, json_t *streams, int node, json_t *ev, json_int_t when,
                       bool recorded)
{
    if (ignored(ev))
        return;
    const char *t = S(ev, "type");
    char key[300], val[300];
    json_t *ch = ev_chan(ev), *pb = json_object_get(ev, "playback");
    json_t *rec = json_object_get(ev, "recording"), *br = json_object_get(ev, "bridge");
    if (ch) {
        const char *id = S(ch, "id");
        snprintf(key, sizeof(key), "%d channel %s", node, recorded ? mapped(r, id) : id);
        json_t *c = json_object_get(ev, "cause");
        char *args = json_dumps(json_object_get(ev, "args"), JSON_COMPACT | JSON_ENCODE_ANY);
        char cause[32] = "";
        if (c)
            snprintf(cause, sizeof(cause), " cause=%lld", (long long)json_integer_value(c));
        char var[96] = "";
        const char *vn = S(ev, "variable"), *vv = S(ev, "value");
        if (vn) /* names of peers differ (IAX2 ids): compare the variable, the
                 * recorder and whether it is empty */
            snprintf(var, sizeof(var), " %s=%s", vn,
                     !strcmp(vn, "BRIDGEPEER") ? (!*vv ? "" : !strncmp(vv, "Recorder/", 9) ? "Recorder,..." : "...")
                                              : vv);
        snprintf(val, sizeof(val), "%s(%s%s%s%s%s)", t, S(ch, "state"), cause,
                 json_object_get(ev, "soft") ? " soft" : "", var, args ? args : "");
        free(args);
    } else if (pb) {
        snprintf(key, sizeof(key), "%d playback %s", node,
                 recorded ? mapped(r, S(pb, "id")) : S(pb, "id"));
        snprintf(val, sizeof(val), "%s(%s)", t, S(pb, "state"));
    } else if (rec) {
        snprintf(key, sizeof(key), "%d recording %s", node, S(rec, "name"));
        snprintf(val, sizeof(val), "%s(%s)", t, S(rec, "state"));
    } else if (br) {
        snprintf(key, sizeof(key), "%d bridge %s", node,
                 recorded ? mapped(r, S(br, "id")) : S(br, "id"));
        snprintf(val, sizeof(val), "%s", t);
    } else {
        return;
    }
    json_t *a = json_object_get(streams, key);
    if (!a) {
        a = json_array();
        json_object_set_new(streams, key, a);
    }
    json_array_append_new(a, json_pack("{s:s,s:O,s:I}", "v", val, "e", ev, "t", when));
}

static json_t *vals(json_t *stream)
{
    json_t *o = json_array(), *e;
    size_t i;
    json_array_foreach(stream, i, e) json_array_append(o, json_object_get(e, "v"));
    return o;
}

/* The recorded event minus the client's receive stamps. */
static json_t *strip_rx(json_t *e)
{
    json_t *c = json_copy(e);
    json_object_del(c, "_rx");
    json_object_del(c, "_rx_s");
    return c;
}

/* Same sequence of (type, detail); every event of it with the same shape. */
static void compare_stream(run *r, const char *key, json_t *ra, json_t *sa)
{
    size_t n = json_array_size(ra), m = json_array_size(sa), i = 0;
    r->ev_n += (int)n;
    for (; i < n && i < m; i++) {
        json_t *re = json_array_get(ra, i), *se = json_array_get(sa, i);
        if (!json_equal(json_object_get(re, "v"), json_object_get(se, "v")))
            break;
        char where[400];
        snprintf(where, sizeof(where), "%s event #%zu %s", key, i,
                 json_string_value(json_object_get(re, "v")));
        json_t *rec = strip_rx(json_object_get(re, "e"));
        bool same = same_shape(r, where, rec, json_object_get(se, "e"));
        json_decref(rec);
        if (!same)
            break;
        /* the media clock: when it happened, against the client's clock */
        json_int_t dt = json_integer_value(json_object_get(se, "t")) -
                        json_integer_value(json_object_get(re, "t"));
        if (dt < 0)
            dt = -dt;
        /* Asterisk sometimes holds BridgeDestroyed back until the app's next
         * event (1.5 s in multi-x-call, single-record): order only */
        if (!strcmp(S(json_object_get(re, "e"), "type"), "BridgeDestroyed"))
            dt = 0;
        if (dt > r->max_dt)
            r->max_dt = dt;
        if (dt > MAX_DT_MS) {
            complain(r, "%s: %lld ms off the trace", where, (long long)dt);
            break;
        }
    }
    r->ev_ok += (int)i;
    if (i == n && n == m)
        return;
    json_t *rv = vals(ra), *sv = vals(sa);
    char *x = json_dumps(rv, JSON_COMPACT), *y = json_dumps(sv, JSON_COMPACT);
    complain(r, "%s at #%zu:\n      trace %s\n      sim   %s", key, i, x ? x : "[]", y ? y : "[]");
    if (i == n)
        r->ev_ok -= 1; /* extra sim events: count the stream as failed */
    free(x);
    free(y);
    json_decref(rv);
    json_decref(sv);
}

static void check_events(run *r)
{
    json_t *rs = json_object(), *ss = json_object();
    for (size_t i = 0; i < r->n_items; i++)
        if (!strcmp(S(r->items[i].o, "kind"), "event"))
            stream_add(r, rs, r->items[i].node, json_object_get(r->items[i].o, "event"),
                       (json_int_t)r->items[i].t, true);
    size_t i;
    json_t *e;
    json_array_foreach(vhost_events(r->vh), i, e)
        stream_add(r, ss, (int)json_integer_value(json_object_get(e, "node")),
                   json_object_get(e, "event"),
                   ts_ms(S(json_object_get(e, "event"), "timestamp")), false);
    const char *k;
    json_t *v;
    json_object_foreach(rs, k, v) compare_stream(r, k, v, json_object_get(ss, k));
    json_object_foreach(ss, k, v)
    {
        if (!json_object_get(rs, k)) {
            json_t *none = json_array();
            compare_stream(r, k, none, v);
            json_decref(none);
        }
    }
    json_decref(rs);
    json_decref(ss);
}

static void setup_sim(run *r)
{
    sim *s = vhost_sim(r->vh);
    for (int n = 0; n < 2; n++) {
        char name[16];
        snprintf(name, sizeof(name), "node%d", n + 1);
        sim_node_add(s, name, "02:fc:00:00:00:01");
        sim_dialplan_add(s, n, "accept-link", "queue", "link,{exten}");
        sim_app_attach(s, n, "queue");
    }
    sim_peer_add(s, "IAX2/node2", 1);
    sim_peer_add(s, "IAX2/node1", 0);
}

/* Value of query parameter `name` in a recorded path, %-decoded. */
static void param(const char *path, const char *name, char *out, size_t n)
{
    char raw[512];
    query_param(path, name, raw, sizeof(raw));
    size_t k = 0;
    for (const char *p = raw; *p && k + 1 < n; p++) {
        unsigned v;
        if (*p == '%' && sscanf(p + 1, "%2x", &v) == 1) {
            out[k++] = (char)v;
            p += 2;
        } else {
            out[k++] = *p;
        }
    }
    out[k] = 0;
}

typedef struct bounds {
    double lo, hi;
} bounds;

/* cause on node a at ta, effect on node b at tb, with >= 1 ms between:
 * bounds the offset o = clock(node2) - clock(node1). */
static void causal(bounds *b, int a, uint64_t ta, int nb, uint64_t tb)
{
    if (a == nb)
        return;
    double d = (double)tb - (double)ta;
    if (getenv("SIM_DESKEW_DEBUG"))
        fprintf(stderr, "causal node%d@%llu -> node%d@%llu\n", a + 1, (unsigned long long)ta,
                nb + 1, (unsigned long long)tb);
    if (a == 0) {
        if (d - 1 < b->hi)
            b->hi = d - 1;
    } else if (-d + 1 > b->lo) {
        b->lo = -d + 1;
    }
}

static const item *find_event(run *r, int node, const char *type, const char *id,
                              const char *state)
{
    for (size_t i = 0; i < r->n_items; i++) {
        json_t *ev = json_object_get(r->items[i].o, "event");
        json_t *ch = ev_chan(ev);
        if (ev && r->items[i].node == node && !strcmp(S(ev, "type"), type) &&
            (!id || !strcmp(S(ch, "id"), id)) && (!state || !strcmp(S(ch, "state"), state)))
            return &r->items[i];
    }
    return NULL;
}

/* The two nodes' files were written by clocks a few ms apart. Events that
 * must follow each other across the link (originate -> far StasisStart,
 * far answer -> near Up, a digit -> its copy over the link) bound the
 * offset; node2's times are shifted by the middle of those bounds. */
static void deskew(run *r)
{
    bounds b = {-1e9, 1e9};
    for (size_t i = 0; i < r->n_items; i++) {
        item *it = &r->items[i];
        json_t *o = it->o, *ev = json_object_get(o, "event");
        char ep[256], near[128];
        if (!strcmp(S(o, "kind"), "request") && !strncmp(S(o, "path"), "/ari/channels?", 14)) {
            param(S(o, "path"), "endpoint", ep, sizeof(ep));
            param(S(o, "path"), "channelId", near, sizeof(near));
            const char *ext = strchr(ep, '/') ? strchr(strchr(ep, '/') + 1, '/') : NULL;
            if (!ext || !*near)
                continue;
            for (size_t j = 0; j < r->n_items; j++) {
                json_t *e = json_object_get(r->items[j].o, "event");
                json_t *args = json_object_get(e, "args");
                const char *a1 = json_string_value(json_array_get(args, 1));
                if (!e || r->items[j].node == it->node || strcmp(S(e, "type"), "StasisStart") ||
                    !a1 || strncmp(ext + 1, a1, strlen(a1)) || ext[1 + strlen(a1)] != '@')
                    continue;
                causal(&b, it->node, it->t, r->items[j].node, r->items[j].t);
                const item *up = find_event(r, it->node, "ChannelStateChange", near, "Up");
                char ans[256];
                snprintf(ans, sizeof(ans), "/ari/channels/%s/answer",
                         S(ev_chan(json_object_get(r->items[j].o, "event")), "id"));
                for (size_t k = 0; up && k < r->n_items; k++)
                    if (r->items[k].node != it->node &&
                        !strcmp(S(r->items[k].o, "kind"), "request") &&
                        !strcmp(S(r->items[k].o, "path"), ans))
                        causal(&b, r->items[k].node, r->items[k].t, up->node, up->t);
            }
        } else if (ev && !strcmp(S(ev, "type"), "ChannelDtmfReceived") &&
                   json_integer_value(json_object_get(ev, "duration_ms")) == 0) {
            /* nearest digit pressed on the other node */
            const item *best = NULL;
            for (size_t j = 0; j < r->n_items; j++) {
                json_t *e = json_object_get(r->items[j].o, "event");
                if (!e || r->items[j].node == it->node ||
                    strcmp(S(e, "type"), "ChannelDtmfReceived") ||
                    !json_integer_value(json_object_get(e, "duration_ms")) ||
                    strcmp(S(e, "digit"), S(ev, "digit")))
                    continue;
                if (!best || llabs((long long)r->items[j].t - (long long)it->t) <
                                 llabs((long long)best->t - (long long)it->t))
                    best = &r->items[j];
            }
            if (best)
                causal(&b, best->node, best->t, it->node, it->t);
        }
    }
    double o = b.lo <= b.hi ? (b.lo + b.hi) / 2 : (b.lo > -1e9 ? b.lo : (b.hi < 1e9 ? b.hi : 0));
    if (b.lo <= -1e9 && b.hi >= 1e9)
        o = 0;
    for (size_t i = 0; i < r->n_items; i++)
        if (r->items[i].node == 1)
            r->items[i].t = (uint64_t)((double)r->items[i].t - o);
    r->skew = o;
}

static bool replay(const char *dir, const char *name)
{
    run r = {0};
    char path[1400];
    size_t total = 0;
    for (int n = 0; n < 2; n++) {
        snprintf(path, sizeof(path), "%s/node%d.jsonl", dir, n + 1);
        r.lines[n] = load_lines(path);
        if (!r.lines[n])
            r.lines[n] = json_array();
        total += json_array_size(r.lines[n]);
    }
    r.items = calloc(total, sizeof(*r.items));
    for (int n = 0; n < 2; n++) {
        size_t i;
        json_t *o;
        json_array_foreach(r.lines[n], i, o)
            r.items[r.n_items++] = (item){n, (uint64_t)json_integer_value(json_object_get(o, "t")),
                                          i, o};
    }
    deskew(&r);
    qsort(r.items, r.n_items, sizeof(*r.items), item_cmp);
    r.map = json_object();
    r.orig = json_object();
    r.injected = json_object();
    r.far_ss = json_array();
    r.sim_resp = json_object();
    plan(&r);
    r.vh = vhost_new(r.n_items ? r.items[0].t - 1000 : 0, 1.0);
    setup_sim(&r);
    vhost_set_event_fn(r.vh, on_event, &r);
    for (size_t i = 0; i < r.n_acts; i++) {
        action *a = &r.acts[i];
        if (a->t > vhost_now(r.vh))
            vhost_advance(r.vh, a->t - vhost_now(r.vh));
        if (a->k == A_REQ)
            do_req(&r, a);
        else
            do_outside(&r, a);
    }
    vhost_advance(r.vh, 120000);
    check_requests(&r);
    check_events(&r);
    bool ok = r.req_ok == r.req_n && r.ev_ok == r.ev_n && !r.shown;
    printf("%s: %d/%d requests, %d/%d events %s", name, r.req_ok, r.req_n, r.ev_ok, r.ev_n,
           ok ? "OK" : "MISMATCH");
    printf(" (max |dt| %lld ms", (long long)r.max_dt);
    if (r.skew != 0)
        printf(", node2 clock %+.1f ms", -r.skew);
    printf(")");
    printf("\n");
    fflush(stdout);
    vhost_free(r.vh);
    json_decref(r.lines[0]);
    json_decref(r.lines[1]);
    json_decref(r.map);
    json_decref(r.orig);
    json_decref(r.injected);
    json_decref(r.far_ss);
    json_decref(r.sim_resp);
    free(r.items);
    free(r.acts);
    return ok;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_traces(void **state)
{
    (void)state;
    const char *base = getenv("ARIQ_SHARED_ARI_DIR");
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/traces", base && *base ? base : "/work/shared/ari");
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *names[64];
    int n = 0, bad = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64)
        if (de->d_name[0] != '.' && strcmp(de->d_name, "README.md"))
            names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof(*names), name_cmp);
    const char *only = getenv("SIM_TRACE");
    for (int i = 0; i < n; i++) {
        char sub[1300];
        snprintf(sub, sizeof(sub), "%s/%s", dir, names[i]);
        if (!only || !strcmp(only, names[i]))
            bad += !replay(sub, names[i]);
        free(names[i]);
    }
    assert_true(n >= 12 || only);
    assert_int_equal(bad, 0);
}

/* ---- samples: every event type the sim emits has the recorded shape ---- */

static int q(vhost *vh, const char *method, const char *path, json_t **out)
{
    int st;
    json_t *j = vhost_req(vh, 0, method, path, NULL, &st);
    if (out)
        *out = j;
    else
        json_decref(j);
    return st;
}

/* One session touching every event type the core emits. */
static void sample_session(vhost *vh)
{
    json_t *o;
    char path[300], m[64], h[64];
    sim_node_add(vhost_sim(vh), "node1", "02:fc:00:00:00:01");
    sim_app_attach(vhost_sim(vh), 0, "queue");
    json_decref(vhost_req(vh, 0, "POST", "/sim/calls",
                          "{\"app\":\"queue\",\"args\":\"caller\",\"channel_id\":\"c1\"}", &(int){0}));
    q(vh, "POST", "/ari/channels/c1/answer", NULL);
    q(vh, "POST", "/ari/channels/c1/variable?variable=QUEUE_POS&value=1", NULL);
    q(vh, "POST", "/ari/bridges?type=holding", &o);
    snprintf(h, sizeof(h), "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);
    snprintf(path, sizeof(path), "/ari/bridges/%s/addChannel?channel=c1", h);
    q(vh, "POST", path, NULL);
    q(vh, "POST", "/ari/channels/c1/play?media=sound:queue-thereare,number:3", NULL);
    vhost_advance(vh, 5000);
    q(vh, "POST", "/ari/channels?endpoint=Local/dtmf@script&app=queue&appArgs=agent&channelId=a1",
      NULL);
    vhost_advance(vh, 1000);
    q(vh, "POST", "/ari/bridges?type=mixing", &o);
    snprintf(m, sizeof(m), "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);
    snprintf(path, sizeof(path), "/ari/bridges/%s/addChannel?channel=c1,a1", m);
    q(vh, "POST", path, NULL);
    json_decref(vhost_req(vh, 0, "POST", "/sim/channels/a1/dtmf", "{\"digits\":\"0\"}", &(int){0}));
    snprintf(path, sizeof(path), "/ari/bridges/%s/record?name=r1&format=wav", m);
    q(vh, "POST", path, NULL);
    vhost_advance(vh, 2000);
    q(vh, "POST", "/ari/recordings/live/r1/stop", NULL);
    q(vh, "POST", "/ari/channels/a1/record?name=r2&format=wav", NULL);
    q(vh, "POST", "/ari/channels/a1/snoop?app=queue&appArgs=snoop&spy=both&snoopId=s1", NULL);
    q(vh, "POST", "/ari/channels/s1/record?name=r3&format=wav", NULL);
    q(vh, "POST", "/ari/recordings/live/r3/stop", NULL);
    q(vh, "DELETE", "/ari/channels/s1", NULL);
    q(vh, "POST", "/ari/events/user/QueueTest?application=queue&source=channel:c1", NULL);
    q(vh, "DELETE", "/ari/channels/a1", NULL);
    snprintf(path, sizeof(path), "/ari/bridges/%s", m);
    q(vh, "DELETE", path, NULL);
    sim_peer_add(vhost_sim(vh), "IAX2/node1", 0);
    q(vh, "POST", "/ari/channels?endpoint=IAX2/node1/x@y&app=queue&channelId=i1", NULL);
    vhost_advance(vh, 1000);
}

static void test_samples(void **state)
{
    (void)state;
    const char *base = getenv("ARIQ_SHARED_ARI_DIR");
    char dir[1024], path[1400];
    snprintf(dir, sizeof(dir), "%s/samples", base && *base ? base : "/work/shared/ari");
    vhost *vh = vhost_new(1795575200000ull, 1.0);
    sample_session(vh);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int bad = 0, checked = 0;
    run quiet = {.shown = 1000, .shape_only = true}, loud = {.shape_only = true};
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        json_t *sample = json_load_file(path, 0, NULL), *stripped = strip_rx(sample);
        const char *type = S(sample, "type");
        json_t *first = NULL, *e;
        size_t i;
        bool ok = false;
        json_array_foreach(vhost_events(vh), i, e)
        {
            json_t *ev = json_object_get(e, "event");
            if (strcmp(S(ev, "type"), type))
                continue;
            if (!first)
                first = ev;
            quiet.map = json_object();
            ok = same_shape(&quiet, de->d_name, stripped, ev) || ok;
            json_decref(quiet.map);
        }
        if (first) {
            checked++;
            if (!ok) {
                loud.map = json_object();
                same_shape(&loud, de->d_name, stripped, first);
                json_decref(loud.map);
                bad++;
            }
        } else {
            printf("samples: %s (%s) not emitted by the core\n", de->d_name, type);
        }
        json_decref(stripped);
        json_decref(sample);
    }
    closedir(d);
    printf("samples: %d event shapes checked, %d differ\n", checked, bad);
    vhost_free(vh);
    assert_int_equal(bad, 0);
    assert_true(checked >= 18);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_traces), cmocka_unit_test(test_samples)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
