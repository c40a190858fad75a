/* sim_chan.c - channels: model JSON, events, the per-channel command queue,
 * Stasis entry/exit, hangup, DTMF, and the oracle timeline. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "sim_internal.h"

static const char *const state_names[] = {"Down", "Ring", "Ringing", "Up"};

const char *chan_state_name(chan_state st)
{
    return state_names[st];
}

const char *cause_txt(int cause)
{
    switch (cause) {
    case 16: return "Normal Clearing";
    case 17: return "User busy";
    case 18: return "No user responding";
    case 19: return "User alerting, no answer";
    case 21: return "Call Rejected";
    case 31: return "Normal, unspecified";
    case 34: return "Circuit/channel congestion";
    default: return "Unknown";
    }
}

/* Creates a live channel and indexes it. An ended channel with the same id
 * (kept for the oracle) is replaced: nothing live points at ended channels. */
sim_chan *chan_new(sim *s, int node, const char *id, const char *name, chan_state st)
{
    if (strlen(id) >= SIM_ID_MAX || strlen(name) >= SIM_ID_MAX)
        return NULL;
    sim_chan *old = sim_map_get(s->chans, id);
    if (old && old->alive)
        return NULL;
    sim_chan *ch = calloc(1, sizeof(*ch));
    if (!ch || !(ch->vars = json_object()) || !(ch->timeline = json_array()))
        goto fail;
    ch->s = s;
    strcpy(ch->id, id);
    strcpy(ch->name, name);
    ch->far_node = -1;
    ch->node = node;
    ch->state = st;
    ch->priority = 1;
    ch->alive = true;
    ch->created_ms = sim_now(s);
    if (sim_map_put(s->chans, id, ch))
        goto fail;
    if (old)
        chan_free(old);
    s->live_chans++;
    chan_note(s, ch, "created", json_pack("{s:s,s:s}", "state", state_names[st], "name", name));
    return ch;
fail:
    chan_free(ch);
    return NULL;
}

void chan_free(sim_chan *ch)
{
    if (!ch)
        return;
    for (sim_cmd *c = ch->q_head, *nx; c; c = nx) {
        nx = c->next;
        free(c->str);
        free(c->str2);
        free(c);
    }
    free(ch->stasis_app);
    free(ch->sub_app);
    json_decref(ch->vars);
    json_decref(ch->timeline);
    json_decref(ch->hangup_info);
    json_decref(ch->orig_args);
    free(ch);
}

sim_chan *chan_get(sim *s, int node, const char *id)
{
    sim_chan *ch = sim_map_get(s->chans, id);
    return ch && ch->alive && ch->node == node ? ch : NULL;
}

json_t *chan_json(sim *s, const sim_chan *ch)
{
    char ts[32];
    return json_pack("{s:s,s:s,s:s,s:s,s:{s:s,s:s},s:{s:s,s:s},s:s,"
                     "s:{s:s,s:s,s:i,s:s,s:s},s:s,s:s}",
                     "id", ch->id, "name", ch->name, "state", state_names[ch->state],
                     "protocol_id", "", "caller", "name", ch->caller_name, "number",
                     ch->caller_number, "connected", "name", ch->caller_name, "number",
                     ch->caller_number, "accountcode", "", "dialplan", "context", ch->context,
                     "exten", ch->exten, "priority", ch->priority, "app_name", ch->app_name,
                     "app_data", ch->app_data, "creationtime", sim_ts(s, ch->created_ms, ts),
                     "language", "en");
}

const char *chan_event_app(const sim_chan *ch)
{
    return ch->stasis_app ? ch->stasis_app : ch->sub_app;
}

bool chan_wants(sim *s, const sim_chan *ch, const char *type)
{
    return sim_app_attached(s, ch->node, chan_event_app(ch)) &&
           !sim_event_filtered(s, ch->node, chan_event_app(ch), type);
}

void chan_emit(sim *s, sim_chan *ch, const char *type, json_t *extra)
{
    if (!chan_wants(s, ch, type)) {
        json_decref(extra); /* nobody listens: skip building the model */
        return;
    }
    json_t *ev = extra ? extra : json_object();
    if (!ev)
        return;
    json_object_set_new(ev, "channel", chan_json(s, ch));
    sim_emit(s, ch->node, chan_event_app(ch), type, ev);
}

void chan_note(sim *s, sim_chan *ch, const char *what, json_t *fields)
{
    json_t *e = fields ? fields : json_object();
    if (!e)
        return;
    json_object_set_new(e, "t", json_integer((json_int_t)sim_now(s)));
    json_object_set_new(e, "ev", json_string(what));
    json_array_append_new(ch->timeline, e);
}

void chan_set_state(sim *s, sim_chan *ch, chan_state st)
{
    if (ch->state == st)
        return;
    ch->state = st;
    chan_note(s, ch, "state", json_pack("{s:s}", "state", state_names[st]));
    chan_emit(s, ch, "ChannelStateChange", NULL);
}

/* What the party on this channel hears apart from sounds: MOH from the
 * channel itself or from the bridge's announcer, never under a playback. */
void chan_update_hearing(sim *s, sim_chan *ch)
{
    bool moh = ch->alive && !ch->playing &&
               (ch->chan_moh || (ch->bridge && ch->bridge->announcer));
    if (moh == ch->hearing_moh)
        return;
    ch->hearing_moh = moh;
    chan_note(s, ch, moh ? "moh_on" : "moh_off", NULL);
}

int chan_enqueue(sim *s, sim_chan *ch, sim_cmd *c)
{
    c->next = NULL;
    if (ch->q_tail)
        ch->q_tail->next = c;
    else
        ch->q_head = c;
    ch->q_tail = c;
    chan_run_queue(s, ch);
    return 0;
}

static void cmd_free(sim_cmd *c)
{
    free(c->str);
    free(c->str2);
    free(c);
}

static void exec_move(sim *s, sim_chan *ch, const char *bid)
{
    sim_bridge *b = bridge_get(s, ch->node, bid);
    if (!b || ch->bridge == b)
        return;
    if (ch->bridge)
        bridge_remove(s, ch->bridge, ch);
    bridge_add(s, b, ch);
}

/* A variable Asterisk sets itself: the event, no oracle entry. */
void chan_setvar_event(sim *s, sim_chan *ch, const char *name, const char *val)
{
    json_object_set_new(ch->vars, name, json_string(val));
    if (chan_wants(s, ch, "ChannelVarset"))
        chan_emit(s, ch, "ChannelVarset", json_pack("{s:s,s:s}", "variable", name, "value", val));
}

static void exec_setvar(sim *s, sim_chan *ch, const char *name, const char *val)
{
    chan_note(s, ch, "varset", json_pack("{s:s,s:s}", "variable", name, "value", val));
    chan_setvar_event(s, ch, name, val);
}

static void link_answered(sim *s, sim_chan *far);
static void dtmf_deliver(sim *s, sim_chan *ch, const char *digit, long dur_ms, bool from_party,
                         const sim_chan *via);

/* Runs one command; a PLAY leaves ch->playing set, which holds the queue. */
static void exec_cmd(sim *s, sim_chan *ch, sim_cmd *c)
{
    switch (c->kind) {
    case CMD_ANSWER:
        if (ch->state != CH_UP) {
            chan_set_state(s, ch, CH_UP);
            link_answered(s, ch);
        }
        break;
    case CMD_PLAY: pb_start(s, c->pb); break;
    case CMD_MOVE: exec_move(s, ch, c->str); break;
    case CMD_REMOVE:
        if (ch->bridge && !strcmp(ch->bridge->id, c->str))
            bridge_remove(s, ch->bridge, ch);
        break;
    case CMD_CONTINUE: chan_continue_dialplan(s, ch, c->str, c->str2, c->num, "app"); break;
    case CMD_SETVAR: exec_setvar(s, ch, c->str, c->str2 ? c->str2 : ""); break;
    case CMD_MOH:
        ch->chan_moh = c->str != NULL;
        chan_update_hearing(s, ch);
        break;
    case CMD_DTMF: dtmf_deliver(s, ch, c->str, c->num, c->str2 != NULL, NULL); break;
    }
}

void chan_run_queue(sim *s, sim_chan *ch)
{
    if (ch->q_running)
        return;
    ch->q_running = true;
    while (ch->alive && !ch->hanging && !ch->playing && !ch->rec_hold && ch->q_head) {
        sim_cmd *c = ch->q_head;
        ch->q_head = c->next;
        if (!ch->q_head)
            ch->q_tail = NULL;
        exec_cmd(s, ch, c);
        cmd_free(c);
    }
    ch->q_running = false;
}

void chan_unblock(sim *s, sim_chan *ch)
{
    ch->playing = NULL;
    chan_update_hearing(s, ch);
    chan_run_queue(s, ch);
}

/* Drops queued commands; queued playbacks vanish without events. */
static void flush_queue(sim *s, sim_chan *ch)
{
    sim_cmd *c = ch->q_head;
    ch->q_head = ch->q_tail = NULL;
    while (c) {
        sim_cmd *nx = c->next;
        if (c->kind == CMD_PLAY)
            pb_drop(s, c->pb);
        cmd_free(c);
        c = nx;
    }
}

/* The far leg of a link was answered on its node: the near leg is Up and
 * enters Stasis on its node, as the originating Asterisk reports it. */
static void link_answered(sim *s, sim_chan *far)
{
    sim_chan *near = far->link_peer;
    if (!near || !near->alive || !near->link_out || near->state == CH_UP)
        return;
    sim_timer_cancel(s, near->otimer);
    near->otimer = NULL;
    chan_set_state(s, near, CH_UP);
    dial_event(s, near, "ANSWER");
    json_t *args = near->orig_args ? json_incref(near->orig_args) : json_array();
    chan_enter_stasis(s, near, near->sub_app, args);
}

void chan_enter_stasis(sim *s, sim_chan *ch, const char *app, json_t *args)
{
    if (!args)
        args = json_array();
    if (!app || !sim_app_attached(s, ch->node, app)) {
        chan_note(s, ch, "stasis_failed", json_pack("{s:s}", "app", app ? app : ""));
        json_object_set_new(ch->vars, "STASISSTATUS", json_string("FAILED"));
        chan_continue_dialplan(s, ch, NULL, NULL, 0, "no_app");
        json_decref(args);
        return;
    }
    if (ch->sub_app)
        chan_setvar_event(s, ch, "STASISSTATUS", "");
    free(ch->stasis_app);
    ch->stasis_app = strdup(app);
    chan_note(s, ch, "stasis_start", json_pack("{s:s,s:O}", "app", app, "args", args));
    chan_emit(s, ch, "StasisStart", json_pack("{s:o}", "args", args));
}

static void leave_stasis(sim *s, sim_chan *ch)
{
    if (!ch->stasis_app)
        return;
    chan_emit(s, ch, "StasisEnd", NULL);
    chan_note(s, ch, "stasis_end", NULL);
    free(ch->stasis_app);
    ch->stasis_app = NULL;
}

static void dialplan_end(void *arg)
{
    sim_chan *ch = arg;
    ch->hup_timer = NULL;
    chan_hangup(ch->s, ch, 16, false, "dialplan");
}

/* Back to the dialplan: out of any bridge, StasisEnd. */
void chan_continue_dialplan(sim *s, sim_chan *ch, const char *context, const char *exten,
                            long prio, const char *why)
{
    if (ch->bridge)
        bridge_remove(s, ch->bridge, ch);
    leave_stasis(s, ch);
    if (context && *context)
        snprintf(ch->context, sizeof(ch->context), "%s", context);
    if (exten && *exten)
        snprintf(ch->exten, sizeof(ch->exten), "%s", exten);
    ch->priority = prio > 0 ? (int)prio : ch->priority + 1;
    ch->app_name[0] = ch->app_data[0] = 0;
    chan_note(s, ch, "continued",
              json_pack("{s:s,s:s,s:i,s:s}", "context", ch->context, "exten", ch->exten,
                        "priority", ch->priority, "why", why));
    /* The rest of the dialplan is not simulated: the channel waits there
     * until hung up, or with after_stasis=hangup it ends on the next turn. */
    if (!ch->dp_wait && !ch->hup_timer)
        ch->hup_timer = sim_timer_add(s, 0, dialplan_end, ch);
}

static void hangup_begin(sim *s, sim_chan *ch, int cause, bool soft, const char *who)
{
    if (!ch->hangup_info)
        ch->hangup_info = json_pack("{s:s,s:i,s:I}", "who", who, "cause", cause, "t",
                                    (json_int_t)sim_now(s));
    chan_note(s, ch, "hangup", json_pack("{s:s,s:i}", "who", who, "cause", cause));
    json_t *ev = json_pack("{s:i}", "cause", cause);
    if (soft)
        json_object_set_new(ev, "soft", json_true());
    chan_emit(s, ch, "ChannelHangupRequest", ev);
}

static void link_hangup_fire(void *arg)
{
    sim_chan *ch = arg;
    ch->hup_timer = NULL;
    if (ch->link_out && ch->state != CH_UP)
        orig_fail(ch->s, ch, 16); /* far end gone before it answered */
    else
        chan_hangup(ch->s, ch, 16, false, "link");
}

/* The far end of a link learns of the hangup a little later, as over IAX2:
 * both apps may still DELETE their own leg meanwhile. */
static void link_hangup_later(sim *s, sim_chan *peer)
{
    peer->link_peer = NULL;
    if (!peer->alive || peer->hup_timer)
        return;
    peer->hup_timer = sim_timer_add(s, sim_scaled(s, SIM_LINK_LATENCY_MS), link_hangup_fire, peer);
    if (!peer->hup_timer)
        chan_hangup(s, peer, 16, false, "link");
}

static void hangup_finish(sim *s, sim_chan *ch, int cause, bool soft)
{
    flush_queue(s, ch);
    if (ch->playing)
        pb_stop(s, ch->playing, "cut");
    if (ch->bridge)
        bridge_remove(s, ch->bridge, ch);
    bool was_in_stasis = ch->stasis_app != NULL;
    leave_stasis(s, ch);
    char uri[SIM_ID_MAX + 16];
    snprintf(uri, sizeof(uri), "channel:%s", ch->id);
    rec_stop_target(s, uri);
    if (ch->sub_app) {
        if (was_in_stasis)
            chan_setvar_event(s, ch, "STASISSTATUS", "SUCCESS");
        /* IAX2 legs report a second request after StasisEnd; Local ;1
         * channels only when the far end hung up (samples, traces). */
        if (!soft || ch->far_node >= 0)
            chan_emit(s, ch, "ChannelHangupRequest", json_pack("{s:i}", "cause", 16));
        int c = cause == 32 ? 16 : cause;
        chan_emit(s, ch, "ChannelDestroyed", json_pack("{s:i,s:s}", "cause", c, "cause_txt",
                                                       cause_txt(c)));
    }
    ch->alive = false;
    ch->hanging = false;
    s->live_chans--;
    chan_update_hearing(s, ch);
    sim_timer_cancel(s, ch->otimer);
    ch->otimer = NULL;
    sim_timer_cancel(s, ch->hup_timer);
    ch->hup_timer = NULL;
    chan_note(s, ch, "ended", NULL);
    sim_chan *peer = ch->link_peer;
    ch->link_peer = NULL;
    if (peer)
        link_hangup_later(s, peer);
}

void chan_hangup(sim *s, sim_chan *ch, int cause, bool soft, const char *who)
{
    if (!ch->alive)
        return;
    if (ch->hanging) {
        /* already going: a DELETE in the window only adds its request */
        if (soft)
            hangup_begin(s, ch, cause, soft, who);
        return;
    }
    hangup_begin(s, ch, cause, soft, who);
    hangup_finish(s, ch, cause, soft);
}

static void party_finish(void *arg)
{
    sim_chan *ch = arg;
    ch->hup_timer = NULL;
    int cause = (int)json_integer_value(json_object_get(ch->hangup_info, "cause"));
    hangup_finish(ch->s, ch, cause, false);
}

void chan_party_hangup(sim *s, sim_chan *ch, int cause, const char *who)
{
    if (!ch->alive || ch->hanging)
        return;
    sim_timer_cancel(s, ch->hup_timer);
    ch->hup_timer = sim_timer_add(s, 0, party_finish, ch);
    if (!ch->hup_timer) {
        chan_hangup(s, ch, cause, false, who);
        return;
    }
    ch->hanging = true;
    hangup_begin(s, ch, cause, false, who);
}

/* One digit received by `ch` from its far side: an event on ch, then the
 * bridge writes it to the other members; a link leg written to makes its
 * peer receive it (duration 0, as IAX2 reports). */
static void dtmf_deliver(sim *s, sim_chan *ch, const char *digit, long dur_ms, bool from_party,
                         const sim_chan *via);

int chan_dtmf(sim *s, sim_chan *ch, const char *digit, long dur_ms, bool from_party,
              const sim_chan *via)
{
    if (ch->rec_hold) {
        /* a recording of this channel holds its queue, digits included */
        sim_cmd *c = calloc(1, sizeof(*c));
        if (!c || !(c->str = strdup(digit))) {
            free(c);
            return -1;
        }
        c->kind = CMD_DTMF;
        c->num = dur_ms;
        c->str2 = from_party ? strdup("party") : NULL;
        chan_enqueue(s, ch, c);
        return 0;
    }
    dtmf_deliver(s, ch, digit, dur_ms, from_party, via);
    return 0;
}

static void dtmf_deliver(sim *s, sim_chan *ch, const char *digit, long dur_ms, bool from_party,
                         const sim_chan *via)
{
    chan_note(s, ch, from_party ? "dtmf_sent" : "dtmf_received",
              json_pack("{s:s,s:i}", "digit", digit, "duration_ms", (int)dur_ms));
    chan_emit(s, ch, "ChannelDtmfReceived",
              json_pack("{s:s,s:i}", "digit", digit, "duration_ms", (int)dur_ms));
    sim_bridge *b = ch->bridge;
    if (!b || !b->mixing)
        return;
    for (size_t i = 0; i < b->n; i++) {
        sim_chan *m = b->members[i];
        if (m == ch)
            continue;
        chan_note(s, m, "dtmf_heard", json_pack("{s:s,s:s}", "digit", digit, "from", ch->id));
        if (m->link_peer && m->link_peer->alive && m->link_peer != via)
            chan_dtmf(s, m->link_peer, digit, 0, false, m);
    }
}

json_t *chan_summary(sim *s, const sim_chan *ch)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b,s:b,s:I}", "id", ch->id, "node",
                          s->nodes[ch->node].name, "name", ch->name, "state",
                          state_names[ch->state], "alive", ch->alive, "in_stasis",
                          ch->stasis_app != NULL, "created", (json_int_t)ch->created_ms);
    if (!o)
        return NULL;
    json_object_set_new(o, "bridge", ch->bridge ? json_string(ch->bridge->id) : json_null());
    json_object_set_new(o, "link_peer", ch->link_peer ? json_string(ch->link_peer->id)
                                                      : json_null());
    json_object_set_new(o, "hearing_moh", json_boolean(ch->hearing_moh));
    json_object_set_new(o, "variables", json_deep_copy(ch->vars));
    json_object_set_new(o, "hangup", ch->hangup_info ? json_incref(ch->hangup_info)
                                                     : json_null());
    return o;
}
