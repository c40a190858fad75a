/* sim_orig.c - channels that start outside the app: originate (with its
 * Dial events and outcome rules), links between nodes, and calls placed into
 * the dialplan by the control API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "sim_internal.h"

#define DEFAULT_ANSWER_MS 20

void sim_make_id(sim *s, int node, char *out, size_t n)
{
    snprintf(out, n, "%s-%llu.%lu", s->nodes[node].name,
             (unsigned long long)(sim_now(s) / 1000), ++s->seq);
}

/* ---- outcome rules ---- */

static const char *const out_names[] = {"answer", "noanswer", "busy", "fail"};

int rules_set(sim *s, json_t *body)
{
    const char *match = json_string_value(json_object_get(body, "match"));
    const char *act = json_string_value(json_object_get(body, "action"));
    if (!match || strlen(match) >= sizeof(s->rules->match) || !act)
        return ARIQ_EINVAL;
    int k = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(act, out_names[i]))
            k = i;
    if (k < 0)
        return ARIQ_EINVAL;
    sim_rule *r = calloc(1, sizeof(*r));
    if (!r)
        return ARIQ_ENOMEM;
    strcpy(r->match, match);
    r->kind = (out_kind)k;
    json_t *d = json_object_get(body, "delay_ms");
    r->delay_ms = json_is_integer(d) ? json_integer_value(d) : -1;
    r->next = s->rules; /* newest first: a later rule overrides */
    s->rules = r;
    return 0;
}

json_t *rules_json(sim *s)
{
    json_t *a = json_array();
    for (sim_rule *r = s->rules; a && r; r = r->next)
        json_array_append_new(a, json_pack("{s:s,s:s,s:I}", "match", r->match, "action",
                                           out_names[r->kind], "delay_ms",
                                           (json_int_t)r->delay_ms));
    return a;
}

void rules_clear(sim *s)
{
    for (sim_rule *r = s->rules, *nx; r; r = nx) {
        nx = r->next;
        free(r);
    }
    s->rules = NULL;
}

static const sim_rule *rule_for(sim *s, const char *endpoint)
{
    for (sim_rule *r = s->rules; r; r = r->next)
        if (!strncmp(endpoint, r->match, strlen(r->match)))
            return r;
    return NULL;
}

/* ---- originate ---- */

sim_chan *orig_new_chan(sim *s, int node, const char *id, const char *endpoint)
{
    char idbuf[SIM_ID_MAX], name[SIM_ID_MAX], ctx[80] = "default", ext[80] = "s";
    const char *rest = NULL;
    if (!id || !*id) {
        sim_make_id(s, node, idbuf, sizeof(idbuf));
        id = idbuf;
    }
    const char *slash = strchr(endpoint, '/');
    if (!slash || !slash[1])
        return NULL;
    int far = sim_peer_find(s, endpoint, &rest);
    const char *at = strchr(slash + 1, '@');
    if (at) {
        snprintf(ctx, sizeof(ctx), "%s", at + 1);
        if (!strncmp(endpoint, "Local/", 6))
            snprintf(ext, sizeof(ext), "%.*s", (int)(at - slash - 1), slash + 1);
    }
    if (far >= 0)
        snprintf(name, sizeof(name), "%.*s-%04lu", (int)(strchr(rest - 1, '/') - endpoint),
                 endpoint, 1000 + (s->seq * 7919) % 9000);
    else if (!strncmp(endpoint, "Local/", 6))
        snprintf(name, sizeof(name), "%.60s-%08x;1", endpoint, ++s->local_seq);
    else
        snprintf(name, sizeof(name), "%.60s-%08x", endpoint, ++s->local_seq);
    sim_chan *ch = chan_new(s, node, id, name, CH_DOWN);
    if (!ch)
        return NULL;
    snprintf(ch->context, sizeof(ch->context), "%s", ctx);
    snprintf(ch->exten, sizeof(ch->exten), "%s", ext);
    strcpy(ch->app_name, "AppDial2");
    strcpy(ch->app_data, "(Outgoing Line)");
    snprintf(ch->endpoint, sizeof(ch->endpoint), "%s", endpoint);
    snprintf(ch->dialstring, sizeof(ch->dialstring), "%s", slash + 1);
    ch->far_node = far;
    return ch;
}

static void run_dialplan(sim *s, sim_chan *ch);

/* Dial carries the originated channel as "peer" (no "caller": the app
 * originated it, no channel dialed it). */
void dial_event(sim *s, sim_chan *ch, const char *status)
{
    if (!sim_app_attached(s, ch->node, chan_event_app(ch)))
        return;
    sim_emit(s, ch->node, chan_event_app(ch), "Dial",
             json_pack("{s:s,s:s,s:s,s:o}", "dialstatus", status, "forward", "", "dialstring",
                       ch->dialstring, "peer", chan_json(s, ch)));
}

/* An originated channel that never got answered: ChannelDestroyed only. */
static void end_unanswered(sim *s, sim_chan *ch, int cause)
{
    if (!ch->alive)
        return;
    if (ch->stasis_app) { /* /channels/create + dial: it is in Stasis */
        chan_hangup(s, ch, cause, false, "far_end");
        return;
    }
    ch->hangup_info = json_pack("{s:s,s:i,s:I}", "who", "far_end", "cause", cause, "t",
                                (json_int_t)sim_now(s));
    chan_note(s, ch, "hangup", json_pack("{s:s,s:i}", "who", "far_end", "cause", cause));
    sim_timer_cancel(s, ch->otimer);
    ch->otimer = NULL;
    if (ch->bridge)
        bridge_remove(s, ch->bridge, ch);
    chan_emit(s, ch, "ChannelDestroyed",
              json_pack("{s:i,s:s}", "cause", cause, "cause_txt", cause_txt(cause)));
    ch->alive = false;
    s->live_chans--;
    chan_note(s, ch, "ended", NULL);
    sim_chan *far = ch->link_peer;
    ch->link_peer = NULL;
    if (far) {
        far->link_peer = NULL;
        chan_hangup(s, far, 16, false, "far_end");
    }
}

/* Arms ch->otimer for fn after ms (unscaled). */
static void arm(sim *s, sim_chan *ch, uint64_t ms, sim_timer_fn fn)
{
    sim_timer_cancel(s, ch->otimer);
    ch->otimer = sim_timer_add(s, sim_scaled(s, ms), fn, ch);
}

static void on_timeout(void *arg);

/* The originate `timeout`: scaled like every delay, except in zero-latency
 * mode (scale 0), where "instant" would fail every call before its far end
 * could answer: there it keeps its real length. */
static void arm_timeout(sim *s, sim_chan *ch)
{
    sim_timer_cancel(s, ch->otimer);
    uint64_t ms = s->scale > 0 ? sim_scaled(s, (uint64_t)ch->timeout_ms) : (uint64_t)ch->timeout_ms;
    ch->otimer = sim_timer_add(s, ms, on_timeout, ch);
}

static void answered(sim *s, sim_chan *ch)
{
    chan_set_state(s, ch, CH_UP);
    dial_event(s, ch, "ANSWER");
    if (ch->stasis_app)
        return; /* /channels/create + dial: already in Stasis */
    json_t *args = ch->orig_args ? json_incref(ch->orig_args) : json_array();
    chan_enter_stasis(s, ch, ch->sub_app, args);
}

/* Far leg of a link: a channel on the far node running its dialplan. */
static int link_far(sim *s, sim_chan *near)
{
    const char *rest = NULL;
    sim_peer_find(s, near->endpoint, &rest);
    char exten[80], ctx[80] = "default", id[SIM_ID_MAX], name[SIM_ID_MAX];
    const char *at = strchr(rest, '@');
    snprintf(exten, sizeof(exten), "%.*s", at ? (int)(at - rest) : (int)strlen(rest), rest);
    if (at)
        snprintf(ctx, sizeof(ctx), "%s", at + 1);
    int fn = near->far_node;
    if (!s->nodes[fn].up)
        return ARIQ_EIO;
    sim_make_id(s, fn, id, sizeof(id));
    const char *tech_end = strchr(near->endpoint, '/');
    snprintf(name, sizeof(name), "%.*s/%s-%04lu", (int)(tech_end - near->endpoint),
             near->endpoint, s->nodes[near->node].name, 1000 + (s->seq * 104729) % 9000);
    sim_chan *far = chan_new(s, fn, id, name, CH_RING);
    if (!far)
        return ARIQ_ENOMEM;
    snprintf(far->caller_name, sizeof(far->caller_name), "%s", near->caller_name);
    snprintf(far->caller_number, sizeof(far->caller_number), "%s", near->caller_number);
    near->link_peer = far;
    far->link_peer = near;
    near->link_out = true;
    snprintf(far->context, sizeof(far->context), "%s", ctx);
    snprintf(far->exten, sizeof(far->exten), "%s", exten);
    run_dialplan(s, far);
    return 0;
}

/* The far party of a ringing originate (not a link: its far app answers)
 * picks up now: for rules that leave the call ringing. */
int orig_answer_now(sim *s, sim_chan *ch)
{
    if (!ch->sub_app || ch->far_node >= 0 || ch->state != CH_RINGING)
        return -1;
    sim_timer_cancel(s, ch->otimer);
    ch->otimer = NULL;
    answered(s, ch);
    return 0;
}

void orig_fail(sim *s, sim_chan *ch, int cause)
{
    end_unanswered(s, ch, cause);
}

static void on_timeout(void *arg)
{
    sim_chan *ch = arg;
    ch->otimer = NULL;
    end_unanswered(ch->s, ch, 19);
}

static void on_answer(void *arg)
{
    sim_chan *ch = arg;
    ch->otimer = NULL;
    answered(ch->s, ch);
}

static void on_busy(void *arg)
{
    sim_chan *ch = arg;
    ch->otimer = NULL;
    dial_event(ch->s, ch, "BUSY");
    end_unanswered(ch->s, ch, 17);
}

static void on_fail(void *arg)
{
    sim_chan *ch = arg;
    ch->otimer = NULL;
    dial_event(ch->s, ch, "CONGESTION");
    end_unanswered(ch->s, ch, 34);
}

/* Starts dialing an originated channel: Dial events now, the outcome by
 * the first matching rule (default: answer; for a link, the far node's app
 * answers). */
int orig_start(sim *s, sim_chan *ch)
{
    const sim_rule *r = rule_for(s, ch->endpoint);
    out_kind k = r ? r->kind : OUT_ANSWER;
    int64_t delay = r && r->delay_ms >= 0 ? r->delay_ms : DEFAULT_ANSWER_MS;
    if (ch->far_node >= 0) {
        chan_set_state(s, ch, CH_RINGING);
        chan_emit(s, ch, "ChannelDialplan",
                  json_pack("{s:s,s:s}", "dialplan_app", ch->app_name, "dialplan_app_data",
                            ch->app_data));
        dial_event(s, ch, "");
    } else {
        dial_event(s, ch, "");
        chan_set_state(s, ch, CH_RINGING);
        dial_event(s, ch, "RINGING");
    }
    switch (k) {
    case OUT_ANSWER:
        if (ch->far_node >= 0) {
            arm_timeout(s, ch);
            if (link_far(s, ch)) {
                end_unanswered(s, ch, 34);
                return 0;
            }
        } else {
            arm(s, ch, (uint64_t)delay, on_answer);
        }
        break;
    case OUT_NOANSWER: arm_timeout(s, ch); break;
    case OUT_BUSY: arm(s, ch, (uint64_t)(r && r->delay_ms >= 0 ? delay : 0), on_busy); break;
    case OUT_FAIL: arm(s, ch, (uint64_t)(r && r->delay_ms >= 0 ? delay : 0), on_fail); break;
    }
    return 0;
}

/* Runs the dialplan of ch's node at ch->context: Stasis(app,args) when the
 * context has an entry, else the channel just sits in the dialplan. */
static void run_dialplan(sim *s, sim_chan *ch)
{
    sim_dp *d = s->nodes[ch->node].dialplan;
    while (d && strcmp(d->context, ch->context))
        d = d->next;
    if (!d) {
        chan_note(s, ch, "no_dialplan", NULL);
        return;
    }
    char tmpl[400], *w = tmpl;
    for (const char *p = d->args; *p && w < tmpl + sizeof(tmpl) - 81; p++) {
        if (!strncmp(p, "{exten}", 7)) {
            w += snprintf(w, 80, "%s", ch->exten);
            p += 6;
        } else {
            *w++ = *p;
        }
    }
    *w = 0;
    strcpy(ch->app_name, "Stasis");
    snprintf(ch->app_data, sizeof(ch->app_data), "%.60s%s%.130s", d->app, *tmpl ? "," : "", tmpl);
    chan_enter_stasis(s, ch, d->app, split_list(tmpl));
}

static const char *jstr(json_t *o, const char *k, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : dflt;
}

/* A party calls in: a Local ;2 style channel in Ring that runs
 * Stasis(app,args) directly ("app") or the node's dialplan ("context"). */
sim_chan *call_place(sim *s, int node, json_t *spec, const char **err)
{
    char idbuf[SIM_ID_MAX], name[SIM_ID_MAX];
    const char *id = jstr(spec, "channel_id", NULL), *app = jstr(spec, "app", NULL);
    const char *ctx = jstr(spec, "context", app ? "sim" : NULL), *ext = jstr(spec, "exten", "s");
    *err = NULL;
    if (!ctx) {
        *err = "need app or context";
        return NULL;
    }
    if (!id) {
        sim_make_id(s, node, idbuf, sizeof(idbuf));
        id = idbuf;
    }
    snprintf(name, sizeof(name), "%s", jstr(spec, "name", ""));
    if (!*name)
        snprintf(name, sizeof(name), "Local/%.40s@%.40s-%08x;2", ext, ctx, ++s->local_seq);
    sim_chan *ch = chan_new(s, node, id, name, CH_RING);
    if (!ch) {
        *err = "channel id in use or invalid";
        return NULL;
    }
    snprintf(ch->caller_number, sizeof(ch->caller_number), "%s", jstr(spec, "caller_number", ""));
    snprintf(ch->caller_name, sizeof(ch->caller_name), "%s", jstr(spec, "caller_name", ""));
    snprintf(ch->context, sizeof(ch->context), "%s", ctx);
    snprintf(ch->exten, sizeof(ch->exten), "%s", ext);
    ch->dp_wait = strcmp(jstr(spec, "after_stasis", "wait"), "hangup") != 0;
    if (!app) {
        run_dialplan(s, ch);
        return ch;
    }
    json_t *args = json_object_get(spec, "args");
    args = json_is_array(args) ? json_deep_copy(args) : split_list(json_string_value(args));
    char *data = json_dumps(args, JSON_COMPACT);
    strcpy(ch->app_name, "Stasis");
    snprintf(ch->app_data, sizeof(ch->app_data), "%s", app);
    for (size_t i = 0; i < json_array_size(args); i++) {
        size_t l = strlen(ch->app_data);
        snprintf(ch->app_data + l, sizeof(ch->app_data) - l, ",%s",
                 json_string_value(json_array_get(args, i)));
    }
    free(data);
    chan_enter_stasis(s, ch, app, args);
    return ch;
}
