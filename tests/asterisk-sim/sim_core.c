/* sim_core.c - the simulator's root object: nodes, apps, timers, events and
 * the request dispatcher (see sim_core.h for the contract with the host). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "sim_internal.h"

uint64_t sim_now(sim *s)
{
    return s->host.now_ms(s->host.ud);
}

uint64_t sim_scaled(sim *s, uint64_t ms)
{
    double v = (double)ms * s->scale + 0.5;
    return v < 0 ? 0 : (uint64_t)v;
}

/* The host's timer fired: unlink first so the callback may arm new timers or
 * free the object that held this one. */
static void ctimer_fire(void *arg)
{
    sim_ctimer *t = arg;
    sim *s = t->s;
    if (t->prev)
        t->prev->next = t->next;
    else
        s->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    sim_timer_fn fn = t->fn;
    void *a = t->arg;
    free(t);
    fn(a);
}

sim_ctimer *sim_timer_add(sim *s, uint64_t delay_ms, sim_timer_fn fn, void *arg)
{
    sim_ctimer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->s = s;
    t->fn = fn;
    t->arg = arg;
    t->h = s->host.timer_add(s->host.ud, delay_ms, ctimer_fire, t);
    if (!t->h) {
        free(t);
        return NULL;
    }
    t->next = s->timers;
    if (s->timers)
        s->timers->prev = t;
    s->timers = t;
    return t;
}

void sim_timer_cancel(sim *s, sim_ctimer *t)
{
    if (!t)
        return;
    s->host.timer_cancel(s->host.ud, t->h);
    if (t->prev)
        t->prev->next = t->next;
    else
        s->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t);
}

char *sim_ts(sim *s, uint64_t ms, char *buf)
{
    (void)s;
    return clock_format_ari(ms, buf, 32);
}

bool sim_app_attached(sim *s, int node, const char *app)
{
    if (!app || node < 0 || node >= s->n_nodes || !s->nodes[node].up)
        return false;
    return json_integer_value(json_object_get(s->nodes[node].apps, app)) > 0;
}

void sim_emit(sim *s, int node, const char *app, const char *type, json_t *ev)
{
    if (!ev)
        return;
    if (sim_app_attached(s, node, app) && !sim_event_filtered(s, node, app, type)) {
        char ts[32];
        json_object_set_new(ev, "type", json_string(type));
        json_object_set_new(ev, "timestamp", json_string(sim_ts(s, sim_now(s), ts)));
        json_object_set_new(ev, "asterisk_id", json_string(s->nodes[node].asterisk_id));
        json_object_set_new(ev, "application", json_string(app));
        s->host.emit(s->host.ud, node, app, ev);
    }
    json_decref(ev);
}

sim *sim_new(const sim_host *host, double scale)
{
    if (!host || !host->now_ms || !host->timer_add || !host->timer_cancel || !host->emit ||
        scale < 0 || scale > 1000)
        return NULL;
    sim *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->host = *host;
    s->scale = scale;
    s->chans = sim_map_new();
    s->bridges = sim_map_new();
    s->pbs = sim_map_new();
    s->recs_live = sim_map_new();
    s->recs_stored = sim_map_new();
    if (!s->chans || !s->bridges || !s->pbs || !s->recs_live || !s->recs_stored)
        goto fail;
    return s;
fail:
    sim_free(s);
    return NULL;
}

static void free_rules(sim *s)
{
    for (sim_rule *r = s->rules, *nx; r; r = nx) {
        nx = r->next;
        free(r);
    }
    s->rules = NULL;
}

/* Frees every channel, bridge, playback and recording; nodes stay. */
static void free_world(sim *s)
{
    void **v;
    size_t n = sim_map_values(s->pbs, &v);
    for (size_t i = 0; i < n; i++) {
        sim_map_del(s->pbs, ((sim_pb *)v[i])->id);
        pb_free(v[i]);
    }
    free(v);
    n = sim_map_values(s->bridges, &v);
    for (size_t i = 0; i < n; i++) {
        sim_map_del(s->bridges, ((sim_bridge *)v[i])->key);
        bridge_free(v[i]);
    }
    free(v);
    n = sim_map_values(s->chans, &v);
    for (size_t i = 0; i < n; i++) {
        sim_chan *ch = v[i];
        sim_map_del(s->chans, ch->id);
        sim_timer_cancel(s, ch->otimer);
        chan_free(ch);
    }
    free(v);
    s->live_chans = 0;
    rec_free_all(s);
}

void sim_reset(sim *s)
{
    free_world(s);
    while (s->timers)
        sim_timer_cancel(s, s->timers);
    free_rules(s);
}

void sim_free(sim *s)
{
    if (!s)
        return;
    if (s->chans && s->bridges && s->pbs && s->recs_live && s->recs_stored)
        sim_reset(s);
    for (int i = 0; i < s->n_nodes; i++) {
        json_decref(s->nodes[i].apps);
        json_decref(s->nodes[i].filters);
        for (sim_dp *d = s->nodes[i].dialplan, *nx; d; d = nx) {
            nx = d->next;
            free(d);
        }
    }
    for (sim_peer *p = s->peers, *nx; p; p = nx) {
        nx = p->next;
        free(p);
    }
    sim_map_free(s->chans);
    sim_map_free(s->bridges);
    sim_map_free(s->pbs);
    sim_map_free(s->recs_live);
    sim_map_free(s->recs_stored);
    free(s->recs);
    free(s);
}

int sim_node_add(sim *s, const char *name, const char *asterisk_id)
{
    if (!s || !name || !*name || strlen(name) >= sizeof(s->nodes[0].name) || !asterisk_id ||
        strlen(asterisk_id) >= sizeof(s->nodes[0].asterisk_id))
        return ARIQ_EINVAL;
    if (s->n_nodes >= SIM_MAX_NODES)
        return ARIQ_ERANGE;
    if (sim_node_find(s, name) >= 0)
        return ARIQ_EINVAL;
    sim_node *n = &s->nodes[s->n_nodes];
    memset(n, 0, sizeof(*n));
    if (!(n->apps = json_object()) || !(n->filters = json_object())) {
        json_decref(n->apps);
        return ARIQ_ENOMEM;
    }
    strcpy(n->name, name);
    strcpy(n->asterisk_id, asterisk_id);
    n->up = true;
    n->started_ms = sim_now(s);
    return s->n_nodes++;
}

int sim_node_count(const sim *s)
{
    return s ? s->n_nodes : 0;
}

int sim_node_find(const sim *s, const char *name)
{
    for (int i = 0; s && name && i < s->n_nodes; i++)
        if (!strcmp(s->nodes[i].name, name))
            return i;
    return ARIQ_ENOTFOUND;
}

const char *sim_node_name(const sim *s, int node)
{
    if (!s || node < 0 || node >= s->n_nodes)
        return NULL;
    return s->nodes[node].name;
}

int sim_peer_add(sim *s, const char *tech_peer, int to_node)
{
    if (!s || !tech_peer || strlen(tech_peer) >= sizeof(s->peers->tech_peer) || to_node < 0 ||
        to_node >= s->n_nodes)
        return ARIQ_EINVAL;
    sim_peer *p = calloc(1, sizeof(*p));
    if (!p)
        return ARIQ_ENOMEM;
    strcpy(p->tech_peer, tech_peer);
    p->to_node = to_node;
    p->next = s->peers;
    s->peers = p;
    return 0;
}

/* Which node a dial string "IAX2/node2/EXTEN@CTX" reaches; *rest points at
 * "EXTEN@CTX". Returns the node or ARIQ_ENOTFOUND. */
int sim_peer_find(sim *s, const char *endpoint, const char **rest)
{
    for (sim_peer *p = s->peers; p; p = p->next) {
        size_t n = strlen(p->tech_peer);
        if (!strncasecmp(endpoint, p->tech_peer, n) && endpoint[n] == '/') {
            *rest = endpoint + n + 1;
            return p->to_node;
        }
    }
    return ARIQ_ENOTFOUND;
}

int sim_dialplan_add(sim *s, int node, const char *context, const char *app,
                     const char *args_template)
{
    if (!s || node < 0 || node >= s->n_nodes || !context || !app)
        return ARIQ_EINVAL;
    if (!args_template)
        args_template = "";
    sim_dp *d = calloc(1, sizeof(*d));
    if (!d)
        return ARIQ_ENOMEM;
    if (strlen(context) >= sizeof(d->context) || strlen(app) >= sizeof(d->app) ||
        strlen(args_template) >= sizeof(d->args)) {
        free(d);
        return ARIQ_ERANGE;
    }
    strcpy(d->context, context);
    strcpy(d->app, app);
    strcpy(d->args, args_template);
    d->next = s->nodes[node].dialplan;
    s->nodes[node].dialplan = d;
    return 0;
}

void sim_app_attach(sim *s, int node, const char *app)
{
    if (!s || !app || node < 0 || node >= s->n_nodes)
        return;
    json_t *apps = s->nodes[node].apps;
    json_object_set_new(apps, app, json_integer(json_integer_value(json_object_get(apps, app)) + 1));
}

void sim_app_detach(sim *s, int node, const char *app)
{
    if (!s || !app || node < 0 || node >= s->n_nodes)
        return;
    json_t *apps = s->nodes[node].apps;
    json_int_t n = json_integer_value(json_object_get(apps, app));
    if (n <= 1)
        json_object_del(apps, app);
    else
        json_object_set_new(apps, app, json_integer(n - 1));
}

int sim_node_down(sim *s, int node)
{
    if (!s || node < 0 || node >= s->n_nodes)
        return ARIQ_EINVAL;
    /* Down first: events to this node's apps stop, its channels end silently
     * while link peers elsewhere still see the hangup. */
    s->nodes[node].up = false;
    void **v;
    size_t n = sim_map_values(s->chans, &v);
    for (size_t i = 0; i < n; i++) {
        sim_chan *ch = v[i];
        if (ch->node == node && ch->alive)
            chan_hangup(s, ch, 16, false, "node_down");
    }
    free(v);
    n = sim_map_values(s->pbs, &v);
    for (size_t i = 0; i < n; i++)
        if (((sim_pb *)v[i])->node == node)
            pb_drop(s, v[i]);
    free(v);
    n = sim_map_values(s->recs_live, &v); /* live recordings are lost */
    for (size_t i = 0; i < n; i++)
        if (((sim_rec *)v[i])->node == node)
            rec_finish(s, v[i], false);
    free(v);
    n = sim_map_values(s->bridges, &v);
    for (size_t i = 0; i < n; i++)
        if (((sim_bridge *)v[i])->node == node)
            bridge_destroy(s, v[i], false);
    free(v);
    return 0;
}

int sim_node_up(sim *s, int node)
{
    if (!s || node < 0 || node >= s->n_nodes)
        return ARIQ_EINVAL;
    s->nodes[node].up = true;
    s->nodes[node].started_ms = sim_now(s);
    json_object_clear(s->nodes[node].filters); /* a restarted Asterisk has none */
    return 0;
}

static bool type_listed(const json_t *list, const char *type)
{
    size_t i;
    json_t *t;
    json_array_foreach(list, i, t) if (!strcmp(json_string_value(t), type)) return true;
    return false;
}

bool sim_event_filtered(const sim *s, int node, const char *app, const char *type)
{
    const json_t *f = json_object_get(s->nodes[node].filters, app);
    if (!f)
        return false;
    const json_t *allowed = json_object_get(f, "allowed");
    if (type_listed(json_object_get(f, "disallowed"), type))
        return true; /* disallowed wins */
    return json_array_size(allowed) > 0 && !type_listed(allowed, type);
}

/* ---- request dispatch ---- */

static int hexval(int c)
{
    if (isdigit(c))
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes [p, p+n) into a new string ('+' is a space). */
static char *url_decode(const char *p, size_t n)
{
    char *o = malloc(n + 1), *w = o;
    if (!o)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 && hexval(p[i + 2]) >= 0) {
            *w++ = (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2]));
            i += 2;
        } else {
            *w++ = p[i] == '+' ? ' ' : p[i];
        }
    }
    *w = 0;
    return o;
}

/* Query string -> object; a repeated name keeps the last value, as Asterisk. */
static json_t *parse_query(const char *q)
{
    json_t *o = json_object();
    while (o && q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        char *k = url_decode(q, eq ? (size_t)(eq - q) : len);
        char *v = eq ? url_decode(eq + 1, len - (size_t)(eq - q) - 1) : strdup("");
        if (k && v && *k)
            json_object_set_new(o, k, json_string(v));
        free(k);
        free(v);
        q = amp ? amp + 1 : NULL;
    }
    return o;
}

/* Matches "/a/:/b" against path; ':' segments are captured into r->p. */
static bool route_match(const char *pat, const char *path, sim_req *r)
{
    int np = 0;
    while (*pat && *path) {
        if (*pat != '/' || *path != '/')
            return false;
        pat++, path++;
        const char *pe = strchr(pat, '/'), *se = strchr(path, '/');
        size_t pl = pe ? (size_t)(pe - pat) : strlen(pat);
        size_t sl = se ? (size_t)(se - path) : strlen(path);
        if (pl == 1 && *pat == ':') {
            if (!sl || sl >= sizeof(r->p[0]) || np >= 3)
                return false;
            memcpy(r->p[np], path, sl);
            r->p[np++][sl] = 0;
        } else if (pl != sl || memcmp(pat, path, sl)) {
            return false;
        }
        pat += pl, path += sl;
    }
    return !*pat && !*path;
}

/* Finds the handler: 0 found, 405 path known with another method, 404. */
static int route_find(const sim_route *t, const char *method, const char *path, sim_req *r,
                      sim_route_fn *fn)
{
    int res = 404;
    for (; t->pattern; t++) {
        memset(r->p, 0, sizeof(r->p));
        if (!route_match(t->pattern, path, r))
            continue;
        if (!strcmp(t->method, method)) {
            *fn = t->fn;
            return 0;
        }
        res = 405;
    }
    return res;
}

void req_reply(sim_req *r, int status, json_t *body)
{
    r->status = status;
    json_decref(r->out);
    r->out = body;
}

void req_error(sim_req *r, int status, const char *msg)
{
    req_reply(r, status, json_pack("{s:s}", "message", msg));
}

const char *req_q(sim_req *r, const char *name)
{
    return json_string_value(json_object_get(r->q, name));
}

/* "a,b,,c" -> ["a","b","c"] (new reference). */
json_t *split_list(const char *s)
{
    json_t *a = json_array();
    while (a && s && *s) {
        const char *c = strchr(s, ',');
        size_t n = c ? (size_t)(c - s) : strlen(s);
        if (n)
            json_array_append_new(a, json_stringn(s, n));
        s = c ? c + 1 : NULL;
    }
    return a;
}

static int finish(sim_req *r, int *status, char **out_body, size_t *out_len,
                  const char **content_type)
{
    char *b = NULL;
    size_t len = 0;
    if (r->raw_out) {
        b = r->raw_out;
        len = r->raw_len;
        r->raw_out = NULL;
    } else if (r->out) {
        if (!(b = json_dumps(r->out, JSON_COMPACT | JSON_ENCODE_ANY)))
            return ARIQ_ENOMEM;
        len = strlen(b);
    }
    *status = r->status;
    *out_body = b;
    *out_len = len;
    *content_type = r->ctype ? r->ctype : "application/json";
    return 0;
}

int sim_request(sim *s, int node, const char *method, const char *path, const char *query,
                const char *body, size_t body_len, int *status, char **out_body,
                size_t *out_len, const char **content_type)
{
    sim_req r = {.s = s, .node = node, .method = method, .raw_query = query, .status = 500};
    int rc = ARIQ_ENOMEM;
    sim_route_fn fn = NULL;
    if (!(r.q = parse_query(query)))
        goto out;
    if (body && body_len) {
        r.body = json_loadb(body, body_len, JSON_DECODE_ANY, NULL);
        if (!r.body)
            r.body = json_null();
    }
    int found = !strncmp(path, "/sim/", 5) ? route_find(sim_ctl_routes, method, path, &r, &fn)
                                           : route_find(sim_ari_routes, method, path, &r, &fn);
    if (found == 404 || node < 0 || node >= s->n_nodes)
        req_error(&r, 404, "Resource not found");
    else if (found == 405)
        req_error(&r, 405, "Method Not Allowed");
    else if (body && body_len && json_is_null(r.body) && !strncmp(path, "/sim/", 5))
        req_error(&r, 400, "Invalid JSON body");
    else
        fn(&r);
    rc = finish(&r, status, out_body, out_len, content_type);
out:
    json_decref(r.q);
    json_decref(r.body);
    json_decref(r.out);
    free(r.raw_out);
    return rc;
}
