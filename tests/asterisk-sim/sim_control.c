/* sim_control.c - the /sim/... control API and the oracle read-outs (see
 * SIM.md for the contract tests rely on). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

static int body_node(sim_req *r)
{
    const char *n = json_string_value(json_object_get(r->body, "node"));
    return n ? sim_node_find(r->s, n) : r->node;
}

static void c_calls(sim_req *r)
{
    int node = body_node(r);
    const char *err = NULL;
    if (node < 0) {
        req_error(r, 404, "No such node");
        return;
    }
    json_t *spec = json_is_object(r->body) ? r->body : NULL;
    json_t *empty = spec ? NULL : json_object();
    sim_chan *ch = call_place(r->s, node, spec ? spec : empty, &err);
    json_decref(empty);
    if (!ch) {
        req_error(r, 400, err ? err : "Cannot place call");
        return;
    }
    json_t *o = chan_summary(r->s, ch);
    json_object_set_new(o, "channel", chan_json(r->s, ch));
    req_reply(r, 201, o);
}

/* Any node: the control API addresses every channel of the sim. */
static sim_chan *live_any(sim_req *r)
{
    sim_chan *ch = sim_map_get(r->s->chans, r->p[0]);
    if (!ch || !ch->alive) {
        req_error(r, 404, "Channel not found");
        return NULL;
    }
    return ch;
}

static void c_dtmf(sim_req *r)
{
    sim_chan *ch = live_any(r);
    const char *digits = json_string_value(json_object_get(r->body, "digits"));
    json_t *d = json_object_get(r->body, "duration_ms");
    if (!ch)
        return;
    if (!digits || !*digits) {
        req_error(r, 400, "digits required");
        return;
    }
    long dur = json_is_integer(d) ? (long)json_integer_value(d) : 100;
    req_reply(r, 204, NULL);
    for (const char *p = digits; *p && ch->alive; p++) {
        char dg[2] = {*p, 0};
        chan_dtmf(r->s, ch, dg, dur, true, NULL);
    }
}

static void c_hangup(sim_req *r)
{
    sim_chan *ch = live_any(r);
    json_t *c = json_object_get(r->body, "cause");
    if (!ch)
        return;
    req_reply(r, 204, NULL);
    chan_party_hangup(r->s, ch, json_is_integer(c) ? (int)json_integer_value(c) : 16, "party");
}

static void c_answer(sim_req *r)
{
    sim_chan *ch = live_any(r);
    if (!ch)
        return;
    if (orig_answer_now(r->s, ch))
        req_error(r, 409, "Not an originated channel that is ringing");
    else
        req_reply(r, 204, NULL);
}

static void c_chan(sim_req *r)
{
    sim_chan *ch = sim_map_get(r->s->chans, r->p[0]);
    if (!ch) {
        req_error(r, 404, "Channel not found");
        return;
    }
    json_t *o = chan_summary(r->s, ch);
    json_object_set_new(o, "connected_to", sim_hears(r->s, ch));
    json_object_set(o, "timeline", ch->timeline);
    req_reply(r, 200, o);
}

static void c_chans(sim_req *r)
{
    json_t *a = json_array();
    void **v;
    size_t n = sim_map_values(r->s->chans, &v);
    const char *alive = json_string_value(json_object_get(r->q, "alive"));
    for (size_t i = 0; i < n; i++) {
        sim_chan *ch = v[i];
        if (alive && (!strcmp(alive, "1") || !strcmp(alive, "true")) != ch->alive)
            continue;
        json_array_append_new(a, chan_summary(r->s, ch));
    }
    free(v);
    req_reply(r, 200, a);
}

static void c_bridges(sim_req *r)
{
    json_t *a = json_array();
    void **v;
    size_t n = sim_map_values(r->s->bridges, &v);
    for (size_t i = 0; i < n; i++) {
        sim_bridge *b = v[i];
        json_t *o = bridge_json(r->s, b);
        json_object_set_new(o, "node", json_string(r->s->nodes[b->node].name));
        json_object_set_new(o, "moh", json_boolean(b->announcer));
        json_array_append_new(a, o);
    }
    free(v);
    req_reply(r, 200, a);
}

static void c_playbacks(sim_req *r)
{
    json_t *a = json_array();
    void **v;
    size_t n = sim_map_values(r->s->pbs, &v);
    for (size_t i = 0; i < n; i++) {
        sim_pb *pb = v[i];
        json_t *o = pb_json(pb, pb->state == PB_QUEUED ? "queued" : "playing");
        json_object_set_new(o, "node", json_string(r->s->nodes[pb->node].name));
        json_array_append_new(a, o);
    }
    free(v);
    req_reply(r, 200, a);
}

static void c_recordings(sim_req *r)
{
    req_reply(r, 200, rec_oracle(r->s));
}

/* Per-node counts of the live objects in `m` whose node field is read by
 * `node_of`. */
static void count_nodes(sim_map *m, int (*node_of)(void *), size_t *out, int n_nodes)
{
    void **v;
    size_t n = sim_map_values(m, &v);
    for (size_t i = 0; i < n; i++) {
        int node = node_of(v[i]);
        if (node >= 0 && node < n_nodes)
            out[node]++;
    }
    free(v);
}

static int chan_node(void *p)
{
    sim_chan *ch = p;
    return ch->alive ? ch->node : -1;
}

static int bridge_node(void *p)
{
    return ((sim_bridge *)p)->node;
}

static int pb_node(void *p)
{
    return ((sim_pb *)p)->node;
}

static int rec_node(void *p)
{
    return ((sim_rec *)p)->node;
}

static void c_state(sim_req *r)
{
    sim *s = r->s;
    size_t c[SIM_MAX_NODES] = {0}, b[SIM_MAX_NODES] = {0}, p[SIM_MAX_NODES] = {0},
           rc[SIM_MAX_NODES] = {0};
    count_nodes(s->chans, chan_node, c, s->n_nodes);
    count_nodes(s->bridges, bridge_node, b, s->n_nodes);
    count_nodes(s->pbs, pb_node, p, s->n_nodes);
    count_nodes(s->recs_live, rec_node, rc, s->n_nodes);
    json_t *nodes = json_array();
    for (int i = 0; i < s->n_nodes; i++)
        json_array_append_new(nodes, json_pack("{s:s,s:b,s:I,s:I,s:I,s:I}", "name",
                                               s->nodes[i].name, "up", s->nodes[i].up,
                                               "channels", (json_int_t)c[i], "bridges",
                                               (json_int_t)b[i], "playbacks", (json_int_t)p[i],
                                               "recordings", (json_int_t)rc[i]));
    req_reply(r, 200,
              json_pack("{s:I,s:I,s:I,s:I,s:I,s:o}", "channels", (json_int_t)s->live_chans,
                        "channels_ended",
                        (json_int_t)(sim_map_count(s->chans) - s->live_chans), "bridges",
                        (json_int_t)sim_map_count(s->bridges), "playbacks",
                        (json_int_t)sim_map_count(s->pbs), "recordings",
                        (json_int_t)sim_map_count(s->recs_live), "nodes", nodes));
}

static void c_connected(sim_req *r)
{
    const char *a = json_string_value(json_object_get(r->q, "a"));
    const char *b = json_string_value(json_object_get(r->q, "b"));
    if (!a || !b) {
        req_error(r, 400, "a and b required");
        return;
    }
    sim_chan *ca = sim_map_get(r->s->chans, a), *cb = sim_map_get(r->s->chans, b);
    if (!ca || !cb) {
        req_error(r, 404, "Channel not found");
        return;
    }
    req_reply(r, 200, json_pack("{s:b}", "connected", sim_connected(r->s, ca, cb)));
}

static void c_rules_add(sim_req *r)
{
    if (rules_set(r->s, r->body))
        req_error(r, 400, "need match and action (answer|noanswer|busy|fail)");
    else
        req_reply(r, 204, NULL);
}

static void c_rules_get(sim_req *r)
{
    req_reply(r, 200, rules_json(r->s));
}

static void c_rules_clear(sim_req *r)
{
    rules_clear(r->s);
    req_reply(r, 204, NULL);
}

static void c_reset(sim_req *r)
{
    sim_reset(r->s);
    req_reply(r, 204, NULL);
}

const sim_route sim_ctl_routes[] = {
    {"POST", "/sim/calls", c_calls},
    {"GET", "/sim/channels", c_chans},
    {"GET", "/sim/channels/:", c_chan},
    {"POST", "/sim/channels/:/dtmf", c_dtmf},
    {"POST", "/sim/channels/:/hangup", c_hangup},
    {"POST", "/sim/channels/:/answer", c_answer},
    {"GET", "/sim/bridges", c_bridges},
    {"GET", "/sim/playbacks", c_playbacks},
    {"GET", "/sim/recordings", c_recordings},
    {"GET", "/sim/state", c_state},
    {"GET", "/sim/connected", c_connected},
    {"POST", "/sim/originate-rules", c_rules_add},
    {"GET", "/sim/originate-rules", c_rules_get},
    {"DELETE", "/sim/originate-rules", c_rules_clear},
    {"POST", "/sim/reset", c_reset},
    {NULL, NULL, NULL},
};
