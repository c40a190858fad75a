/* sim_routes.c - the /ari/... routes: one small handler per route, status
 * codes and error bodies as Asterisk 22 answered them (http-status.txt). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "sim_internal.h"

#define NOT_IN_STASIS "Channel not in Stasis application"

static sim_chan *find_chan(sim_req *r, const char *id)
{
    sim_chan *ch = chan_get(r->s, r->node, id);
    if (!ch)
        req_error(r, 404, "Channel not found");
    return ch;
}

/* A channel the app controls: 404 gone, 409 not in Stasis. */
static sim_chan *stasis_chan(sim_req *r, const char *id)
{
    sim_chan *ch = find_chan(r, id);
    if (ch && !ch->stasis_app) {
        req_error(r, 409, NOT_IN_STASIS);
        return NULL;
    }
    return ch;
}

static sim_bridge *find_bridge(sim_req *r, const char *id)
{
    sim_bridge *b = bridge_get(r->s, r->node, id);
    if (!b)
        req_error(r, 404, "Bridge not found");
    return b;
}

static sim_cmd *cmd(cmd_kind k, const char *a, const char *b, long num)
{
    sim_cmd *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->kind = k;
    c->str = a ? strdup(a) : NULL;
    c->str2 = b ? strdup(b) : NULL;
    c->num = num;
    return c;
}

static void enqueue(sim_req *r, sim_chan *ch, sim_cmd *c)
{
    if (!c) {
        req_error(r, 500, "Allocation failed");
        return;
    }
    req_reply(r, 204, NULL);
    chan_enqueue(r->s, ch, c);
}

/* ---- channels ---- */

static void ch_list(sim_req *r)
{
    json_t *a = json_array();
    void **v;
    size_t n = sim_map_values(r->s->chans, &v);
    for (size_t i = 0; i < n; i++) {
        sim_chan *ch = v[i];
        if (ch->alive && ch->node == r->node)
            json_array_append_new(a, chan_json(r->s, ch));
    }
    free(v);
    req_reply(r, 200, a);
}

static void ch_get(sim_req *r)
{
    sim_chan *ch = find_chan(r, r->p[0]);
    if (ch)
        req_reply(r, 200, chan_json(r->s, ch));
}

static int hangup_cause(const char *reason, const char *code)
{
    static const struct {
        const char *n;
        int c;
    } t[] = {{"normal", 16}, {"busy", 17}, {"congestion", 34}, {"no_answer", 19},
             {"timeout", 19}, {"rejected", 21}, {"unallocated", 1}, {"normal_unspecified", 31},
             {"number_incomplete", 28}, {"codec_mismatch", 58}, {"interworking", 127},
             {"failed", 38}, {"answered_elsewhere", 26}};
    if (code && *code)
        return atoi(code);
    for (size_t i = 0; reason && i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(reason, t[i].n))
            return t[i].c;
    return reason ? -1 : 32;
}

static void ch_delete(sim_req *r)
{
    sim_chan *ch = find_chan(r, r->p[0]);
    if (!ch)
        return;
    int cause = hangup_cause(req_q(r, "reason"), req_q(r, "reason_code"));
    if (cause < 0) {
        req_error(r, 400, "Invalid reason for hangup provided");
        return;
    }
    req_reply(r, 204, NULL);
    chan_hangup(r->s, ch, cause, true, "app");
}

static void ch_answer(sim_req *r)
{
    sim_chan *ch = stasis_chan(r, r->p[0]);
    if (ch)
        enqueue(r, ch, cmd(CMD_ANSWER, NULL, NULL, 0));
}

static void ch_continue(sim_req *r)
{
    sim_chan *ch = stasis_chan(r, r->p[0]);
    const char *prio = req_q(r, "priority");
    if (ch)
        enqueue(r, ch, cmd(CMD_CONTINUE, req_q(r, "context"), req_q(r, "extension"),
                           prio ? atol(prio) : 0));
}

/* media from the query (comma list; a repeated media= keeps the last) or
 * from a JSON body {"media": [...] | "..."}. New reference or NULL. */
static json_t *media_list(sim_req *r)
{
    const char *m = req_q(r, "media");
    json_t *bm = json_object_get(r->body, "media");
    json_t *a = NULL;
    if (m)
        a = split_list(m);
    else if (json_is_array(bm))
        a = json_deep_copy(bm);
    else if (json_is_string(bm))
        a = split_list(json_string_value(bm));
    if (a && !json_array_size(a)) {
        json_decref(a);
        a = NULL;
    }
    return a;
}

static sim_pb *make_pb(sim_req *r, const char *pbid, const char *kind, const char *target,
                       const char *app)
{
    json_t *media = media_list(r);
    if (!media) {
        req_error(r, 500, "Failed to queue media for playback");
        return NULL;
    }
    if (pbid && sim_map_get(r->s->pbs, pbid)) {
        json_decref(media);
        req_error(r, 409, "Playback with given id already exists");
        return NULL;
    }
    sim_pb *pb = pb_new(r->s, r->node, pbid, media, req_q(r, "lang"));
    json_decref(media);
    if (!pb) {
        req_error(r, 500, "Failed to queue media for playback");
        return NULL;
    }
    snprintf(pb->target_uri, sizeof(pb->target_uri), "%s:%s", kind, target);
    pb->app = app ? strdup(app) : NULL;
    req_reply(r, 201, pb_json(pb, "queued"));
    return pb;
}

static void ch_play(sim_req *r)
{
    sim_chan *ch = stasis_chan(r, r->p[0]);
    if (!ch)
        return;
    const char *pbid = r->p[1][0] ? r->p[1] : req_q(r, "playbackId");
    sim_pb *pb = make_pb(r, pbid, "channel", ch->id, ch->stasis_app);
    if (!pb)
        return;
    pb->chan = ch;
    sim_cmd *c = cmd(CMD_PLAY, NULL, NULL, 0);
    if (!c) {
        pb_drop(r->s, pb);
        req_error(r, 500, "Allocation failed");
        return;
    }
    c->pb = pb;
    chan_enqueue(r->s, ch, c);
}

static void ch_moh(sim_req *r)
{
    sim_chan *ch = stasis_chan(r, r->p[0]);
    const char *cls = req_q(r, "mohClass");
    if (ch)
        enqueue(r, ch, cmd(CMD_MOH, cls ? cls : "default", NULL, 0));
}

static void ch_unmoh(sim_req *r)
{
    sim_chan *ch = stasis_chan(r, r->p[0]);
    if (ch)
        enqueue(r, ch, cmd(CMD_MOH, NULL, NULL, 0));
}

static void ch_setvar(sim_req *r)
{
    sim_chan *ch = stasis_chan(r, r->p[0]);
    const char *var = req_q(r, "variable");
    if (!ch)
        return;
    if (!var || !*var) {
        req_error(r, 400, "Variable name is required");
        return;
    }
    const char *val = req_q(r, "value");
    enqueue(r, ch, cmd(CMD_SETVAR, var, val ? val : "", 0));
}

static void ch_getvar(sim_req *r)
{
    sim_chan *ch = find_chan(r, r->p[0]);
    const char *var = req_q(r, "variable");
    if (!ch)
        return;
    if (!var || !*var) {
        req_error(r, 400, "Variable name is required");
        return;
    }
    json_t *v = json_object_get(ch->vars, var);
    if (!strcmp(var, "CHANNEL(state)"))
        req_reply(r, 200, json_pack("{s:s}", "value", chan_state_name(ch->state)));
    else if (!v)
        req_error(r, 404, "Provided variable was not found");
    else
        req_reply(r, 200, json_pack("{s:O}", "value", v));
}

static void ch_nop(sim_req *r)
{
    if (stasis_chan(r, r->p[0]))
        req_reply(r, 204, NULL);
}

static void ch_dtmf(sim_req *r)
{
    sim_chan *ch = stasis_chan(r, r->p[0]);
    const char *d = req_q(r, "dtmf");
    if (!ch)
        return;
    if (!d || !*d) {
        req_error(r, 400, "DTMF is required");
        return;
    }
    chan_note(r->s, ch, "dtmf_heard", json_pack("{s:s,s:s}", "digit", d, "from", "app"));
    req_reply(r, 204, NULL);
}

static void ch_record(sim_req *r)
{
    sim_chan *ch = stasis_chan(r, r->p[0]);
    const char *name = req_q(r, "name"), *fmt = req_q(r, "format");
    if (!ch)
        return;
    if (!name || !fmt) {
        req_error(r, 400, "Record requires name and format");
        return;
    }
    if (!rec_format_ok(fmt)) {
        req_error(r, 422, "specified format is unknown on this system");
        return;
    }
    const char *ifx = req_q(r, "ifExists");
    bool over = ifx && !strcmp(ifx, "overwrite");
    if (rec_live_get(r->s, r->node, name) || (!over && rec_stored_get(r->s, r->node, name))) {
        char msg[SIM_ID_MAX + 64];
        snprintf(msg, sizeof(msg), "Recording '%s' already exists and can not be overwritten",
                 name);
        req_error(r, 409, msg);
        return;
    }
    char uri[SIM_ID_MAX + 16];
    snprintf(uri, sizeof(uri), "channel:%s", ch->id);
    req_reply(r, 201, json_pack("{s:s,s:s,s:s,s:s}", "name", name, "format", fmt, "state",
                                "queued", "target_uri", uri));
    if (ch->bridge) {
        sim_emit(r->s, r->node, ch->stasis_app, "RecordingFailed",
                 json_pack("{s:{s:s,s:s,s:s,s:s,s:s}}", "recording", "name", name, "format", fmt,
                           "state", "failed", "target_uri", uri, "cause",
                           "Cannot record channel while in bridge"));
        return;
    }
    sim_rec *rec;
    if (!rec_start(r->s, r->node, name, fmt, uri, ch->stasis_app, over, &rec))
        ch->rec_hold = rec; /* runs in the channel's queue until it stops */
}

/* POST /channels and /channels/{id}: 200 at once in state Down. */
static void originate(sim_req *r, const char *id, bool dial)
{
    const char *ep = req_q(r, "endpoint"), *app = req_q(r, "app");
    if (!ep || !strchr(ep, '/')) {
        req_error(r, 400, "Endpoint must be specified");
        return;
    }
    if (!app) {
        req_error(r, 400, "Originate with no app is not simulated");
        return;
    }
    if (!id)
        id = req_q(r, "channelId");
    if (id && chan_get(r->s, r->node, id)) {
        req_error(r, 409, "Channel with given unique ID already exists");
        return;
    }
    sim_chan *ch = orig_new_chan(r->s, r->node, id, ep);
    if (!ch) {
        req_error(r, 400, "Invalid endpoint or channel id");
        return;
    }
    ch->sub_app = strdup(app);
    ch->orig_args = split_list(req_q(r, "appArgs"));
    const char *to = req_q(r, "timeout");
    ch->timeout_ms = (to ? atol(to) : 30) * 1000;
    const char *cid = req_q(r, "callerId");
    if (cid) {
        const char *lt = strchr(cid, '<');
        snprintf(ch->caller_name, sizeof(ch->caller_name), "%.*s",
                 lt ? (int)(lt - cid) : (int)strlen(cid), cid);
        size_t l = strlen(ch->caller_name);
        while (l && ch->caller_name[l - 1] == ' ')
            ch->caller_name[--l] = 0;
        if (lt)
            snprintf(ch->caller_number, sizeof(ch->caller_number), "%.*s",
                     (int)strcspn(lt + 1, ">"), lt + 1);
    }
    json_t *vars = json_object_get(r->body, "variables");
    const char *k;
    json_t *v;
    json_object_foreach(vars, k, v) json_object_set(ch->vars, k, v);
    req_reply(r, 200, chan_json(r->s, ch));
    if (dial)
        orig_start(r->s, ch);
    else
        chan_enter_stasis(r->s, ch, app, json_incref(ch->orig_args));
}

static void ch_originate(sim_req *r)
{
    originate(r, NULL, true);
}

static void ch_originate_id(sim_req *r)
{
    originate(r, r->p[0], true);
}

static void ch_create(sim_req *r)
{
    originate(r, NULL, false);
}

static void ch_dial(sim_req *r)
{
    sim_chan *ch = stasis_chan(r, r->p[0]);
    if (!ch)
        return;
    if (ch->state != CH_DOWN || !ch->endpoint[0]) {
        req_error(r, 409, "Channel is not in the 'Down' state");
        return;
    }
    const char *to = req_q(r, "timeout");
    if (to)
        ch->timeout_ms = atol(to) * 1000;
    req_reply(r, 204, NULL);
    orig_start(r->s, ch);
}

/* A snoop channel on `id`: Up, in Stasis(app, appArgs) at once. It only
 * listens (the oracle does not count it as connected). */
static void ch_snoop(sim_req *r)
{
    sim_chan *target = find_chan(r, r->p[0]);
    const char *app = req_q(r, "app");
    char id[SIM_ID_MAX], name[SIM_ID_MAX];
    if (!target)
        return;
    if (!app || !*app) {
        req_error(r, 400, "Application name is required");
        return;
    }
    const char *sid = r->p[1][0] ? r->p[1] : req_q(r, "snoopId");
    if (sid)
        snprintf(id, sizeof(id), "%.100s", sid);
    else
        sim_make_id(r->s, r->node, id, sizeof(id));
    snprintf(name, sizeof(name), "Snoop/%.80s-%08x", target->id, ++r->s->local_seq);
    sim_chan *ch = chan_get(r->s, r->node, id) ? NULL : chan_new(r->s, r->node, id, name, CH_UP);
    if (!ch) {
        req_error(r, 409, "Channel with given unique ID already exists");
        return;
    }
    strcpy(ch->context, "default");
    strcpy(ch->exten, "s");
    req_reply(r, 200, chan_json(r->s, ch));
    chan_enter_stasis(r->s, ch, app, split_list(req_q(r, "appArgs")));
}

/* ---- bridges ---- */

static void br_list(sim_req *r)
{
    json_t *a = json_array();
    void **v;
    size_t n = sim_map_values(r->s->bridges, &v);
    for (size_t i = 0; i < n; i++)
        if (((sim_bridge *)v[i])->node == r->node)
            json_array_append_new(a, bridge_json(r->s, v[i]));
    free(v);
    req_reply(r, 200, a);
}

/* type: comma list; holding wins over mixing; anything unknown -> 500. */
static int bridge_type(const char *t, bool *mixing)
{
    static const char *const ok[] = {"mixing", "holding", "dtmf_events", "proxy_media",
                                     "video_sfu", "video_single", "sdp_label"};
    json_t *a = split_list(t ? t : "mixing");
    size_t i;
    json_t *e;
    int rc = 0;
    bool hold = false;
    json_array_foreach(a, i, e)
    {
        const char *v = json_string_value(e);
        bool known = false;
        for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]); k++)
            known |= !strcmp(v, ok[k]);
        if (!known)
            rc = -1;
        hold |= !strcmp(v, "holding");
    }
    json_decref(a);
    *mixing = !hold;
    return rc;
}

static void create_bridge(sim_req *r, const char *id)
{
    bool mixing;
    if (!id)
        id = req_q(r, "bridgeId");
    sim_bridge *b = NULL;
    if (!bridge_type(req_q(r, "type"), &mixing))
        b = bridge_new(r->s, r->node, id, mixing, req_q(r, "name"));
    if (!b) {
        char msg[SIM_ID_MAX + 80];
        snprintf(msg, sizeof(msg),
                 "Unable to create bridge. Possible duplicate bridge id '%s'", id ? id : "(null)");
        req_error(r, 500, msg);
        return;
    }
    req_reply(r, 200, bridge_json(r->s, b));
}

static void br_create(sim_req *r)
{
    create_bridge(r, NULL);
}

static void br_create_id(sim_req *r)
{
    sim_bridge *b = bridge_get(r->s, r->node, r->p[0]);
    if (b) /* createWithId on an existing bridge updates it: same answer */
        req_reply(r, 200, bridge_json(r->s, b));
    else
        create_bridge(r, r->p[0]);
}

static void br_get(sim_req *r)
{
    sim_bridge *b = find_bridge(r, r->p[0]);
    if (b)
        req_reply(r, 200, bridge_json(r->s, b));
}

static void br_delete(sim_req *r)
{
    sim_bridge *b = find_bridge(r, r->p[0]);
    if (!b)
        return;
    req_reply(r, 204, NULL);
    bridge_destroy(r->s, b, true);
}

/* Checks every listed channel before touching any (Asterisk does too). */
static json_t *bridge_chans(sim_req *r, sim_bridge **bp)
{
    sim_bridge *b = find_bridge(r, r->p[0]);
    const char *list = req_q(r, "channel");
    if (!b)
        return NULL;
    if (!list || !*list) {
        req_error(r, 400, "Missing parameter channel");
        return NULL;
    }
    json_t *ids = split_list(list);
    size_t i;
    json_t *e;
    json_array_foreach(ids, i, e)
    {
        sim_chan *ch = chan_get(r->s, r->node, json_string_value(e));
        if (!ch || !ch->stasis_app) {
            req_error(r, ch ? 422 : 400, ch ? NOT_IN_STASIS : "Channel not found");
            json_decref(ids);
            return NULL;
        }
        if (ch->rec_hold) {
            char msg[SIM_ID_MAX + 40];
            snprintf(msg, sizeof(msg), "Channel %s currently recording", ch->id);
            req_error(r, 409, msg);
            json_decref(ids);
            return NULL;
        }
    }
    *bp = b;
    return ids;
}

static void br_add(sim_req *r)
{
    sim_bridge *b;
    json_t *ids = bridge_chans(r, &b);
    size_t i;
    json_t *e;
    if (!ids)
        return;
    req_reply(r, 204, NULL);
    json_array_foreach(ids, i, e)
    {
        sim_chan *ch = chan_get(r->s, r->node, json_string_value(e));
        sim_cmd *c = cmd(CMD_MOVE, b->id, NULL, 0);
        if (ch && c)
            chan_enqueue(r->s, ch, c);
        else
            free(c);
    }
    json_decref(ids);
}

static void br_remove(sim_req *r)
{
    sim_bridge *b;
    json_t *ids = bridge_chans(r, &b);
    size_t i;
    json_t *e;
    if (!ids)
        return;
    json_array_foreach(ids, i, e)
    {
        if (chan_get(r->s, r->node, json_string_value(e))->bridge != b) {
            req_error(r, 422, "Channel not in this bridge");
            json_decref(ids);
            return;
        }
    }
    req_reply(r, 204, NULL);
    json_array_foreach(ids, i, e)
    {
        sim_chan *ch = chan_get(r->s, r->node, json_string_value(e));
        sim_cmd *c = cmd(CMD_REMOVE, b->id, NULL, 0);
        if (ch && c)
            chan_enqueue(r->s, ch, c);
        else
            free(c);
    }
    json_decref(ids);
}

static void br_moh(sim_req *r)
{
    sim_bridge *b = find_bridge(r, r->p[0]);
    const char *cls = req_q(r, "mohClass");
    if (!b)
        return;
    req_reply(r, 204, NULL);
    bridge_set_moh(r->s, b, cls && *cls ? cls : "default");
}

static void br_unmoh(sim_req *r)
{
    sim_bridge *b = find_bridge(r, r->p[0]);
    if (!b)
        return;
    req_reply(r, 204, NULL);
    bridge_set_moh(r->s, b, NULL);
}

static const char *any_app(sim *s, int node, const char *pref)
{
    if (pref)
        return pref;
    const char *k;
    json_t *v;
    json_object_foreach(s->nodes[node].apps, k, v) return k;
    return NULL;
}

static void br_play(sim_req *r)
{
    sim_bridge *b = find_bridge(r, r->p[0]);
    if (!b)
        return;
    const char *pbid = r->p[1][0] ? r->p[1] : req_q(r, "playbackId");
    sim_pb *pb = make_pb(r, pbid, "bridge", b->id, any_app(r->s, r->node, b->app));
    if (!pb)
        return;
    pb->bridge = b;
    b->n_pbs++;
    pb_start(r->s, pb);
}

static void br_record(sim_req *r)
{
    sim_bridge *b = find_bridge(r, r->p[0]);
    const char *name = req_q(r, "name"), *fmt = req_q(r, "format");
    if (!b)
        return;
    if (!name || !fmt) {
        req_error(r, 400, "Record requires name and format");
        return;
    }
    if (!rec_format_ok(fmt)) {
        req_error(r, 422, "specified format is unknown on this system");
        return;
    }
    const char *ifx = req_q(r, "ifExists");
    char uri[SIM_ID_MAX + 16];
    snprintf(uri, sizeof(uri), "bridge:%s", b->id);
    sim_rec *rec;
    bool over = ifx && !strcmp(ifx, "overwrite");
    if (!rec_live_get(r->s, r->node, name) && (over || !rec_stored_get(r->s, r->node, name)))
        bridge_set_recorder(r->s, b, true);
    int rc = rec_start(r->s, r->node, name, fmt, uri, any_app(r->s, r->node, b->app), over, &rec);
    if (rc == ARIQ_EBUSY) {
        char msg[SIM_ID_MAX + 64];
        snprintf(msg, sizeof(msg), "Recording '%s' already exists and can not be overwritten",
                 name);
        req_error(r, 409, msg);
    } else if (rc) {
        req_error(r, 500, "Internal Server Error");
    } else {
        req_reply(r, 201, json_pack("{s:s,s:s,s:s,s:s}", "name", name, "format", fmt, "state",
                                    "queued", "target_uri", uri));
    }
}

/* ---- playbacks ---- */

static sim_pb *find_pb(sim_req *r)
{
    sim_pb *pb = sim_map_get(r->s->pbs, r->p[0]);
    if (!pb || pb->node != r->node) {
        req_error(r, 404, "Playback not found");
        return NULL;
    }
    return pb;
}

static void pb_get(sim_req *r)
{
    sim_pb *pb = find_pb(r);
    if (pb)
        req_reply(r, 200, pb_json(pb, pb->state == PB_QUEUED ? "queued" : "playing"));
}

static void pb_delete(sim_req *r)
{
    sim_pb *pb = find_pb(r);
    if (!pb)
        return;
    req_reply(r, 204, NULL);
    pb_stop(r->s, pb, "cut");
}

static void pb_control(sim_req *r)
{
    static const char *const ops[] = {"pause", "unpause", "restart", "reverse", "forward"};
    sim_pb *pb = find_pb(r);
    const char *op = req_q(r, "operation");
    if (!pb)
        return;
    for (size_t i = 0; op && i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (!strcmp(op, ops[i])) {
            req_reply(r, 204, NULL);
            return;
        }
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "Invalid operation %s", op ? op : "");
    req_error(r, 400, msg);
}

/* ---- recordings ---- */

static sim_rec *find_live(sim_req *r)
{
    sim_rec *rec = rec_live_get(r->s, r->node, r->p[0]);
    if (!rec)
        req_error(r, 404, "Recording not found");
    return rec;
}

static void rl_get(sim_req *r)
{
    sim_rec *rec = find_live(r);
    if (rec)
        req_reply(r, 200, rec_json(rec, true));
}

static void rl_stop(sim_req *r)
{
    sim_rec *rec = find_live(r);
    if (!rec)
        return;
    req_reply(r, 204, NULL);
    rec_finish(r->s, rec, true);
}

static void rl_discard(sim_req *r)
{
    sim_rec *rec = find_live(r);
    if (!rec)
        return;
    req_reply(r, 204, NULL);
    rec_finish(r->s, rec, false);
}

static void rl_pause(sim_req *r)
{
    sim_rec *rec = find_live(r);
    if (!rec)
        return;
    req_reply(r, 204, NULL);
    rec_pause(r->s, rec, true);
}

static void rl_unpause(sim_req *r)
{
    sim_rec *rec = find_live(r);
    if (!rec)
        return;
    req_reply(r, 204, NULL);
    rec_pause(r->s, rec, false);
}

static void rl_mute(sim_req *r)
{
    sim_rec *rec = find_live(r);
    if (!rec)
        return;
    rec->muted = !strcmp(r->method, "POST");
    req_reply(r, 204, NULL);
}

static void rs_list(sim_req *r)
{
    json_t *a = json_array();
    void **v;
    size_t n = sim_map_values(r->s->recs_stored, &v);
    for (size_t i = 0; i < n; i++)
        if (((sim_rec *)v[i])->node == r->node)
            json_array_append_new(a, rec_json(v[i], false));
    free(v);
    req_reply(r, 200, a);
}

static sim_rec *find_stored(sim_req *r)
{
    sim_rec *rec = rec_stored_get(r->s, r->node, r->p[0]);
    if (!rec)
        req_error(r, 404, "Recording not found");
    return rec;
}

static void rs_get(sim_req *r)
{
    sim_rec *rec = find_stored(r);
    if (rec)
        req_reply(r, 200, rec_json(rec, false));
}

static void rs_delete(sim_req *r)
{
    sim_rec *rec = find_stored(r);
    if (!rec)
        return;
    char k[SIM_ID_MAX + 16];
    snprintf(k, sizeof(k), "%d/%s", rec->node, rec->name);
    sim_map_del(r->s->recs_stored, k);
    rec->stored = false;
    rec->deleted = true;
    req_reply(r, 204, NULL);
}

/* A 44-byte WAV header for 8 kHz mono 16-bit and no samples. */
static void rs_file(sim_req *r)
{
    static const unsigned char wav[44] = {
        'R', 'I', 'F', 'F', 36, 0, 0, 0, 'W', 'A', 'V', 'E', 'f', 'm', 't', ' ', 16, 0, 0, 0, 1, 0,
        1,   0,   0x40, 0x1f, 0, 0, 0x80, 0x3e, 0, 0, 2, 0, 16, 0, 'd', 'a', 't', 'a', 0, 0, 0, 0};
    if (!find_stored(r))
        return;
    r->raw_out = malloc(sizeof(wav));
    if (!r->raw_out) {
        req_error(r, 500, "Allocation failed");
        return;
    }
    memcpy(r->raw_out, wav, sizeof(wav));
    r->raw_len = sizeof(wav);
    r->ctype = "audio/wav";
    r->status = 200;
}

/* ---- user events ---- */

static void user_event(sim_req *r)
{
    const char *app = req_q(r, "application"), *src = req_q(r, "source");
    if (!app) {
        req_error(r, 400, "Missing parameter application");
        return;
    }
    if (!sim_app_attached(r->s, r->node, app)) {
        req_error(r, 404, "Application not found");
        return;
    }
    sim_chan *ch = NULL;
    if (src && !strncmp(src, "channel:", 8) && !(ch = chan_get(r->s, r->node, src + 8))) {
        req_error(r, 422, "Event source not found");
        return;
    }
    json_t *vars = json_object_get(r->body, "variables");
    json_t *uev = json_is_object(vars) ? json_deep_copy(vars) : json_object();
    json_object_set_new(uev, "eventname", json_string(r->p[0])); /* as Asterisk does */
    json_t *ev = json_pack("{s:s,s:o}", "eventname", r->p[0], "userevent", uev);
    if (ch)
        json_object_set_new(ev, "channel", chan_json(r->s, ch));
    req_reply(r, 204, NULL);
    sim_emit(r->s, r->node, app, ch ? "ChannelUserevent" : "ApplicationUserevent", ev);
}

/* ---- asterisk, applications ---- */

/* AsteriskInfo as in api-docs/asterisk.json. */
static void ast_info(sim_req *r)
{
    char up[32];
    sim_node *n = &r->s->nodes[r->node];
    sim_ts(r->s, n->started_ms, up);
    req_reply(r, 200,
              json_pack("{s:{s:s,s:s,s:s,s:s,s:s,s:s},s:{s:s,s:s},"
                        "s:{s:s,s:s,s:i,s:i,s:f,s:{s:s,s:s}},s:{s:s,s:s}}",
                        "build", "os", "Linux", "kernel", "6.1.0", "machine", "x86_64",
                        "options", "", "date", "2026-11-01", "user", "sim", "system", "version",
                        "22.0.0-sim", "entity_id", n->asterisk_id, "config", "name", n->name,
                        "default_language", "en", "max_channels", 0, "max_open_files", 0,
                        "max_load", 0.0, "setid", "user", "asterisk", "group", "asterisk",
                        "status", "startup_time", up, "last_reload_time", up));
}

static json_t *app_json(sim *s, int node, const char *app)
{
    json_t *chans = json_array(), *bridges = json_array();
    void **v;
    size_t n = sim_map_values(s->chans, &v);
    for (size_t i = 0; i < n; i++) {
        sim_chan *ch = v[i];
        const char *a = chan_event_app(ch);
        if (ch->alive && ch->node == node && a && !strcmp(a, app))
            json_array_append_new(chans, json_string(ch->id));
    }
    free(v);
    n = sim_map_values(s->bridges, &v); /* bridges its channels used */
    for (size_t i = 0; i < n; i++) {
        sim_bridge *b = v[i];
        if (b->node == node && b->app && !strcmp(b->app, app))
            json_array_append_new(bridges, json_string(b->id));
    }
    free(v);
    json_t *allowed = json_array(), *disallowed = json_array(), *t;
    const json_t *f = json_object_get(s->nodes[node].filters, app);
    size_t i;
    json_array_foreach(json_object_get(f, "allowed"), i, t)
        json_array_append_new(allowed, json_pack("{s:O}", "type", t));
    json_array_foreach(json_object_get(f, "disallowed"), i, t)
        json_array_append_new(disallowed, json_pack("{s:O}", "type", t));
    return json_pack("{s:s,s:o,s:o,s:[],s:[],s:o,s:o}", "name", app, "channel_ids", chans,
                     "bridge_ids", bridges, "endpoint_ids", "device_names", "events_allowed",
                     allowed, "events_disallowed", disallowed);
}

/* One list of the filter body: [{"type":"T"}, ...] -> ["T", ...]; NULL if
 * malformed. */
static json_t *filter_list(const json_t *in)
{
    json_t *out = json_array(), *e;
    size_t i;
    if (!json_is_array(in) || !out) {
        json_decref(out);
        return NULL;
    }
    json_array_foreach(in, i, e)
    {
        const char *t = json_string_value(json_object_get(e, "type"));
        if (!json_is_object(e) || !t || !*t || strlen(t) > 64) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, json_string(t));
    }
    return out;
}

/* PUT /applications/{app}/eventFilter, by api-docs/applications.json: an
 * empty body clears both lists; a list given replaces that list only. */
static void app_filter(sim_req *r)
{
    const char *app = r->p[0];
    json_t *filters = r->s->nodes[r->node].filters;
    if (!sim_app_attached(r->s, r->node, app) && !json_object_get(filters, app)) {
        req_error(r, 404, "Application not found");
        return;
    }
    json_t *body = r->body;
    if (body && !json_is_object(body)) {
        req_error(r, 400, "Invalid filter: expected an object");
        return;
    }
    json_t *cur = json_object_get(filters, app);
    json_t *next = json_pack("{s:O?,s:O?}", "allowed", json_object_get(cur, "allowed"),
                             "disallowed", json_object_get(cur, "disallowed"));
    static const char *const keys[] = {"allowed", "disallowed"};
    for (size_t k = 0; k < 2; k++) {
        json_t *in = body ? json_object_get(body, keys[k]) : NULL;
        if (!body || json_object_size(body) == 0) {
            json_object_set_new(next, keys[k], json_array());
        } else if (in) {
            json_t *l = filter_list(in);
            if (!l) {
                json_decref(next);
                req_error(r, 400, "Invalid filter: each entry must be {\"type\": name}");
                return;
            }
            json_object_set_new(next, keys[k], l);
        }
    }
    json_object_set_new(filters, app, next);
    req_reply(r, 200, app_json(r->s, r->node, app));
}

static void app_get(sim_req *r)
{
    if (!sim_app_attached(r->s, r->node, r->p[0])) {
        req_error(r, 404, "Application not found");
        return;
    }
    req_reply(r, 200, app_json(r->s, r->node, r->p[0]));
}

static void app_list(sim_req *r)
{
    json_t *a = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(r->s->nodes[r->node].apps, k, v)
        json_array_append_new(a, app_json(r->s, r->node, k));
    req_reply(r, 200, a);
}

const sim_route sim_ari_routes[] = {
    {"GET", "/ari/channels", ch_list},
    {"POST", "/ari/channels", ch_originate},
    {"POST", "/ari/channels/create", ch_create},
    {"GET", "/ari/channels/:", ch_get},
    {"POST", "/ari/channels/:", ch_originate_id},
    {"DELETE", "/ari/channels/:", ch_delete},
    {"POST", "/ari/channels/:/answer", ch_answer},
    {"POST", "/ari/channels/:/continue", ch_continue},
    {"POST", "/ari/channels/:/play", ch_play},
    {"POST", "/ari/channels/:/play/:", ch_play},
    {"POST", "/ari/channels/:/moh", ch_moh},
    {"DELETE", "/ari/channels/:/moh", ch_unmoh},
    {"POST", "/ari/channels/:/variable", ch_setvar},
    {"GET", "/ari/channels/:/variable", ch_getvar},
    {"POST", "/ari/channels/:/ring", ch_nop},
    {"DELETE", "/ari/channels/:/ring", ch_nop},
    {"POST", "/ari/channels/:/dtmf", ch_dtmf},
    {"POST", "/ari/channels/:/record", ch_record},
    {"POST", "/ari/channels/:/dial", ch_dial},
    {"POST", "/ari/channels/:/snoop", ch_snoop},
    {"POST", "/ari/channels/:/snoop/:", ch_snoop},
    {"POST", "/ari/events/user/:", user_event},
    {"GET", "/ari/bridges", br_list},
    {"POST", "/ari/bridges", br_create},
    {"GET", "/ari/bridges/:", br_get},
    {"POST", "/ari/bridges/:", br_create_id},
    {"DELETE", "/ari/bridges/:", br_delete},
    {"POST", "/ari/bridges/:/addChannel", br_add},
    {"POST", "/ari/bridges/:/removeChannel", br_remove},
    {"POST", "/ari/bridges/:/moh", br_moh},
    {"DELETE", "/ari/bridges/:/moh", br_unmoh},
    {"POST", "/ari/bridges/:/play", br_play},
    {"POST", "/ari/bridges/:/play/:", br_play},
    {"POST", "/ari/bridges/:/record", br_record},
    {"GET", "/ari/playbacks/:", pb_get},
    {"DELETE", "/ari/playbacks/:", pb_delete},
    {"POST", "/ari/playbacks/:/control", pb_control},
    {"GET", "/ari/recordings/live/:", rl_get},
    {"DELETE", "/ari/recordings/live/:", rl_discard},
    {"POST", "/ari/recordings/live/:/stop", rl_stop},
    {"POST", "/ari/recordings/live/:/pause", rl_pause},
    {"DELETE", "/ari/recordings/live/:/pause", rl_unpause},
    {"POST", "/ari/recordings/live/:/mute", rl_mute},
    {"DELETE", "/ari/recordings/live/:/mute", rl_mute},
    {"GET", "/ari/recordings/stored", rs_list},
    {"GET", "/ari/recordings/stored/:", rs_get},
    {"DELETE", "/ari/recordings/stored/:", rs_delete},
    {"GET", "/ari/recordings/stored/:/file", rs_file},
    {"GET", "/ari/asterisk/info", ast_info},
    {"GET", "/ari/applications", app_list},
    {"GET", "/ari/applications/:", app_get},
    {"PUT", "/ari/applications/:/eventFilter", app_filter},
    {NULL, NULL, NULL},
};
