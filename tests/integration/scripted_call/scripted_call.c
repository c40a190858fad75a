/* scripted_call - one whole call driven through ariq's own ARI client and
 * event stream against the Asterisk simulator, every step checked on the
 * simulator's oracle (what the channel heard, which bridge it is in, who can
 * hear whom, what the recording holds).
 *
 *   StasisStart(args) -> answer -> holding bridge + MOH -> media list ->
 *   DTMF -> second channel, mixing bridge -> record, pause, unpause, stop ->
 *   DTMF across the bridge -> hangup -> nothing left over
 *
 * Modes:
 *   scripted_call                     the ctest: starts its own two-node
 *                                     simulator at a fast time scale
 *   scripted_call --attach P1[,P2] [--narrate]
 *                                     uses a simulator already running on
 *                                     127.0.0.1:P1 (scripts/demo.sh), and
 *                                     tells a newcomer what happens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ari/client.h"
#include "ari/stream.h"
#include "core/clock.h"
#include "core/ids.h"
#include "core/log.h"
#include "sim_proc.h"

#define APP "queue"
#define MAX_EVENTS 512
#define WAIT_MS 5000
#define NODES 2

/* ---- what the test keeps of each event (events are borrowed) ----------- */

typedef struct seen_event {
    int node; /* whose events WebSocket it came on */
    ari_event_type type;
    char chan[160];
    char bridge[160];
    char bridge_type[16];
    char playback[160];
    char playback_state[16];
    char recording[160];
    char chan_state[16];
    char digit;
    char args[4][32];
    size_t nargs;
    bool used;
} seen_event;

typedef struct harness {
    struct event_base *base;
    ari_client *client[NODES];
    ari_rest *rest; /* node1's; rest_on[n] for any node */
    ari_rest *rest_on[NODES];
    ari_stream *stream[NODES];
    bool connected[NODES];
    seen_event ev[MAX_EVENTS];
    size_t nev;
    sim_proc sim;
    bool own_sim;
    bool narrate;
    double scale; /* the simulator's, to size waits */
} harness;

static harness H;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    if (!H.narrate)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("  ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

#define COPY(dst, src) snprintf((dst), sizeof(dst), "%s", (src) ? (src) : "")

static void on_event(ari_stream *s, const ari_event *e, void *ud)
{
    (void)s;
    if (H.nev >= MAX_EVENTS)
        return;
    seen_event *v = &H.ev[H.nev++];
    memset(v, 0, sizeof *v);
    v->node = (int)(intptr_t)ud;
    v->type = e->type;
    if (e->has_channel) {
        COPY(v->chan, e->channel.id);
        COPY(v->chan_state, e->channel.state_name);
    }
    if (e->has_bridge) {
        COPY(v->bridge, e->bridge.id);
        COPY(v->bridge_type, e->bridge.bridge_type);
    }
    if (e->has_playback) {
        COPY(v->playback, e->playback.id);
        COPY(v->playback_state, e->playback.state_name);
        if (!e->has_channel && e->playback.target_kind == ARI_TARGET_CHANNEL)
            COPY(v->chan, e->playback.target_id);
    }
    if (e->has_recording)
        COPY(v->recording, e->recording.name);
    v->digit = e->digit;
    for (size_t i = 0; i < e->nargs && i < 4; i++)
        COPY(v->args[i], e->args[i]);
    v->nargs = e->nargs;
}

static void on_connected(ari_stream *s, void *ud)
{
    (void)s;
    H.connected[(intptr_t)ud] = true;
}

/* Runs the loop until cond(arg) holds or timeout_ms passes. */
static bool run_until(bool (*cond)(void *), void *arg, int timeout_ms)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms;
    while (!cond(arg)) {
        if (clock_mono_ms() > deadline)
            return false;
        struct timeval tv = {0, 5000};
        event_base_loopexit(H.base, &tv);
        event_base_dispatch(H.base);
    }
    return true;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

/* Lets `ms` of simulated conversation pass (scaled like the simulator). */
static void pass_ms(int ms)
{
    run_until(never, NULL, (int)((double)ms * H.scale) + 1);
}

static bool all_connected(void *arg)
{
    (void)arg;
    for (int n = 0; n < NODES; n++)
        if (!H.connected[n])
            return false;
    return true;
}

/* ---- REST, synchronously for a readable script ------------------------- */

typedef struct rest_result {
    bool done;
    long status;
    json_t *json; /* kept (incref) */
} rest_result;

static void on_rest(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    rest_result *res = pd;
    res->done = true;
    res->status = r->status;
    res->json = r->json ? json_incref(r->json) : NULL;
}

static bool rest_done(void *arg)
{
    return ((rest_result *)arg)->done;
}

/* Waits for a request started with on_rest/&res; returns its status and
 * leaves the body in res->json (the caller json_decref's it). */
static long rest_wait(int rc, rest_result *res)
{
    assert_int_equal(rc, 0);
    assert_true(run_until(rest_done, res, WAIT_MS));
    return res->status;
}

#define REST(res, call) (memset(&(res), 0, sizeof(res)), rest_wait((call), &(res)))

/* ---- events ------------------------------------------------------------ */

typedef struct ev_query {
    int node; /* -1: any */
    ari_event_type type;
    const char *chan;
    seen_event *found;
} ev_query;

static bool find_event(void *arg)
{
    ev_query *q = arg;
    for (size_t i = 0; i < H.nev; i++) {
        seen_event *v = &H.ev[i];
        if (!v->used && v->type == q->type && (q->node < 0 || v->node == q->node) &&
            (!q->chan || strcmp(v->chan, q->chan) == 0)) {
            v->used = true;
            q->found = v;
            return true;
        }
    }
    return false;
}

/* Waits for the first unconsumed event of `type` about `chan` (NULL: any)
 * on node `node`'s WebSocket (-1: any). */
static seen_event *expect_event_on(int node, ari_event_type type, const char *chan)
{
    ev_query q = {node, type, chan, NULL};
    if (!run_until(find_event, &q, WAIT_MS))
        fail_msg("no %s event for %s on node %d within %d ms", ari_event_type_name(type),
                 chan ? chan : "(any)", node + 1, WAIT_MS);
    return q.found;
}

static seen_event *expect_event(ari_event_type type, const char *chan)
{
    return expect_event_on(-1, type, chan);
}

/* True if no unconsumed event of `type` about `chan` came on `node`. */
static bool no_event_on(int node, ari_event_type type, const char *chan)
{
    ev_query q = {node, type, chan, NULL};
    return !find_event(&q);
}

/* ---- the oracle -------------------------------------------------------- */

static json_t *oracle(const char *chan)
{
    json_t *c = sim_channel(&H.sim, 0, chan);
    assert_non_null(c);
    return c;
}

/* Number of timeline entries of kind `ev` (and media `media` when given). */
static size_t timeline_count(const char *chan, const char *ev, const char *media)
{
    json_t *c = oracle(chan);
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(json_object_get(c, "timeline"), i, e)
    {
        const char *kind = json_string_value(json_object_get(e, "ev"));
        const char *m = json_string_value(json_object_get(e, "media"));
        if (kind && strcmp(kind, ev) == 0 && (!media || (m && strcmp(m, media) == 0)))
            n++;
    }
    json_decref(c);
    return n;
}

/* The last timeline entry of kind `ev` (new reference) or NULL. */
static json_t *timeline_last(const char *chan, const char *ev)
{
    json_t *c = oracle(chan), *found = NULL, *e;
    size_t i;
    json_array_foreach(json_object_get(c, "timeline"), i, e)
    {
        const char *kind = json_string_value(json_object_get(e, "ev"));
        if (kind && strcmp(kind, ev) == 0)
            found = e;
    }
    if (found)
        json_incref(found);
    json_decref(c);
    return found;
}

static bool hearing_moh(const char *chan)
{
    json_t *c = oracle(chan);
    bool on = json_is_true(json_object_get(c, "hearing_moh"));
    json_decref(c);
    return on;
}

static const char *bridge_of(const char *chan, char *out, size_t len)
{
    json_t *c = oracle(chan);
    snprintf(out, len, "%s", json_string_value(json_object_get(c, "bridge")) ?: "");
    json_decref(c);
    return out;
}

/* Nothing is left in the simulator: no channel, bridge, playback or live
 * recording on any node. */
static void assert_sim_empty(void)
{
    json_t *st = sim_state(&H.sim, 0);
    assert_non_null(st);
    static const char *const kinds[] = {"channels", "bridges", "playbacks", "recordings"};
    for (size_t i = 0; i < 4; i++)
        if (json_integer_value(json_object_get(st, kinds[i])) != 0)
            fail_msg("the simulator still holds %lld %s",
                     (long long)json_integer_value(json_object_get(st, kinds[i])), kinds[i]);
    json_decref(st);
}

/* Creates a mixing bridge on `node` and puts chans in it; returns its id. */
static void mix_on(int node, const char *const *chans, size_t n, char *id, size_t len)
{
    rest_result r;
    assert_int_equal(REST(r, ari_bridge_create(H.rest_on[node], NULL, "mixing", NULL, on_rest,
                                               &r)),
                     200);
    snprintf(id, len, "%s", json_string_value(json_object_get(r.json, "id")) ?: "");
    json_decref(r.json);
    assert_int_equal(REST(r, ari_bridge_add_channel(H.rest_on[node], id, chans, n, NULL,
                                                    on_rest, &r)),
                     204);
    for (size_t i = 0; i < n; i++) {
        seen_event *e = expect_event_on(node, ARI_EV_CHANNEL_ENTERED_BRIDGE, chans[i]);
        assert_string_equal(e->bridge, id);
    }
}

/* ---- setup ------------------------------------------------------------- */

static void start_clients(void)
{
    memset(H.ev, 0, sizeof H.ev);
    H.nev = 0;
    H.base = event_base_new();
    assert_non_null(H.base);
    for (int n = 0; n < NODES && n < H.sim.nnodes; n++) {
        ari_client_config cc = {.url = sim_proc_url(&H.sim, n),
                                .user = sim_proc_user(&H.sim),
                                .password = sim_proc_password(&H.sim)};
        H.client[n] = ari_client_new(H.base, &cc);
        assert_non_null(H.client[n]);
        H.rest_on[n] = ari_client_rest(H.client[n]);
        ari_stream_cfg sc = {.host = "127.0.0.1",
                             .port = sim_proc_port(&H.sim, n),
                             .app = APP,
                             .user = sim_proc_user(&H.sim),
                             .password = sim_proc_password(&H.sim),
                             .on_event = on_event,
                             .on_connected = on_connected,
                             .ud = (void *)(intptr_t)n};
        assert_int_equal(ari_stream_new(H.base, &sc, &H.stream[n]), 0);
    }
    H.rest = H.rest_on[0];
    assert_true(run_until(all_connected, NULL, WAIT_MS));
}

static void stop_clients(void)
{
    for (int n = 0; n < NODES; n++) {
        ari_stream_free(H.stream[n]);
        ari_client_free(H.client[n]);
        H.stream[n] = NULL;
        H.client[n] = NULL;
        H.connected[n] = false;
    }
    event_base_free(H.base);
    H.base = NULL;
}

/* ---- the script -------------------------------------------------------- */

/* A caller arrives in Stasis(queue,caller,support,5): args as given, Ring. */
static void step_caller_arrives(char *caller, size_t len)
{
    json_t *c = sim_place_call(&H.sim, 0, APP, "caller,support,5", "5551001", caller, len);
    assert_non_null(c);
    json_decref(c);
    seen_event *ss = expect_event(ARI_EV_STASIS_START, caller);
    assert_int_equal(ss->nargs, 3);
    assert_string_equal(ss->args[0], "caller");
    assert_string_equal(ss->args[1], "support");
    assert_string_equal(ss->args[2], "5");
    assert_string_equal(ss->chan_state, "Ring");
    say("caller %s dials in: StasisStart args=[caller,support,5], channel state Ring", caller);
}

static void answer_on(int node, const char *chan, const char *who)
{
    rest_result r;
    assert_int_equal(REST(r, ari_channel_answer(H.rest_on[node], chan, on_rest, &r)), 204);
    seen_event *sc = expect_event(ARI_EV_CHANNEL_STATE_CHANGE, chan);
    assert_string_equal(sc->chan_state, "Up");
    json_t *o = oracle(chan);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "Up");
    json_decref(o);
    say("%s answered (204), ChannelStateChange -> Up", who);
}

static void step_answer(const char *chan, const char *who)
{
    answer_on(0, chan, who);
}

/* Holding bridge with MOH: the oracle says the caller hears music. */
static void step_hold(const char *caller, char *hold, size_t len)
{
    rest_result r;
    assert_int_equal(REST(r, ari_bridge_create(H.rest, NULL, "holding", "ariq-hold-support",
                                               on_rest, &r)),
                     200);
    snprintf(hold, len, "%s", json_string_value(json_object_get(r.json, "id")) ?: "");
    assert_string_equal(json_string_value(json_object_get(r.json, "bridge_type")), "holding");
    json_decref(r.json);
    const char *chans[] = {caller};
    assert_int_equal(REST(r, ari_bridge_add_channel(H.rest, hold, chans, 1, NULL, on_rest, &r)),
                     204);
    seen_event *eb = expect_event(ARI_EV_CHANNEL_ENTERED_BRIDGE, caller);
    assert_string_equal(eb->bridge, hold);
    assert_false(hearing_moh(caller)); /* nothing yet: MOH is not started */
    assert_int_equal(REST(r, ari_bridge_moh_start(H.rest, hold, "default", on_rest, &r)), 204);
    assert_true(hearing_moh(caller));
    char b[160];
    assert_string_equal(bridge_of(caller, b, sizeof b), hold);
    say("caller waits in holding bridge %.8s... and hears music on hold", hold);
}

/* A position announcement: the caller hears each item in order, not MOH
 * under it, and MOH again after. */
static void step_announce(const char *caller)
{
    static const char *const media[] = {"sound:queue-thereare", "number:3",
                                        "sound:queue-callswaiting"};
    char pb[64];
    assert_int_equal(ids_make("pb", pb, sizeof pb), 0);
    rest_result r;
    assert_int_equal(REST(r, ari_channel_play(H.rest, caller, pb, media, 3, NULL, on_rest, &r)),
                     201);
    assert_string_equal(json_string_value(json_object_get(r.json, "id")), pb);
    json_decref(r.json);
    seen_event *st = expect_event(ARI_EV_PLAYBACK_STARTED, caller);
    assert_string_equal(st->playback, pb);
    assert_false(hearing_moh(caller));
    say("announcement %s plays: there are / 3 / calls waiting (MOH paused under it)", pb);
    seen_event *fin = expect_event(ARI_EV_PLAYBACK_FINISHED, caller);
    assert_string_equal(fin->playback, pb);
    assert_string_equal(fin->playback_state, "done");
    for (size_t i = 0; i < 3; i++) {
        json_t *c = oracle(caller), *e;
        size_t k, hits = 0;
        json_array_foreach(json_object_get(c, "timeline"), k, e)
        {
            const char *m = json_string_value(json_object_get(e, "media"));
            const char *res = json_string_value(json_object_get(e, "result"));
            if (m && strcmp(m, media[i]) == 0 && res && strcmp(res, "finished") == 0)
                hits++;
        }
        json_decref(c);
        if (hits != 1)
            fail_msg("oracle: %s heard %zu times finished, want 1", media[i], hits);
    }
    assert_true(hearing_moh(caller));
    say("announcement finished; the oracle heard all three items whole; MOH is back");
}

static void step_caller_dtmf(const char *caller)
{
    assert_int_equal(sim_send_dtmf(&H.sim, 0, caller, "5"), 204);
    seen_event *d = expect_event(ARI_EV_CHANNEL_DTMF_RECEIVED, caller);
    assert_int_equal(d->digit, '5');
    say("caller presses 5: ChannelDtmfReceived digit=5");
}

/* An agent arrives and both move into a mixing bridge: they hear each other. */
static void step_connect(const char *caller, char *agent, size_t alen, char *mix, size_t mlen)
{
    json_t *c = sim_place_call(&H.sim, 0, APP, "agent,support,1001", "1001", agent, alen);
    assert_non_null(c);
    json_decref(c);
    expect_event(ARI_EV_STASIS_START, agent);
    say("agent %s dials in: StasisStart args=[agent,support,1001]", agent);
    step_answer(agent, "agent 1001");
    assert_int_equal(sim_is_connected(&H.sim, 0, caller, agent), 0);

    rest_result r;
    assert_int_equal(REST(r, ari_bridge_create(H.rest, NULL, "mixing", "ariq-call-1", on_rest,
                                               &r)),
                     200);
    snprintf(mix, mlen, "%s", json_string_value(json_object_get(r.json, "id")) ?: "");
    json_decref(r.json);
    const char *both[] = {caller, agent};
    assert_int_equal(REST(r, ari_bridge_add_channel(H.rest, mix, both, 2, NULL, on_rest, &r)),
                     204);
    seen_event *left = expect_event(ARI_EV_CHANNEL_LEFT_BRIDGE, caller);
    assert_string_equal(left->bridge_type, "holding");
    seen_event *e1 = expect_event(ARI_EV_CHANNEL_ENTERED_BRIDGE, caller);
    seen_event *e2 = expect_event(ARI_EV_CHANNEL_ENTERED_BRIDGE, agent);
    assert_string_equal(e1->bridge, mix);
    assert_string_equal(e2->bridge, mix);
    assert_string_equal(e1->bridge_type, "mixing");
    assert_int_equal(sim_is_connected(&H.sim, 0, caller, agent), 1);
    assert_false(hearing_moh(caller));
    say("caller and agent moved into mixing bridge %.8s...: the oracle says they hear each other",
        mix);
}

/* Record the bridge, pause, unpause, stop: two spans, the pause left out. */
static void step_record(const char *mix)
{
    char name[64];
    assert_int_equal(ids_make("rec", name, sizeof name), 0);
    ari_record_opts o = {.name = name, .format = "wav"};
    rest_result r;
    assert_int_equal(REST(r, ari_bridge_record(H.rest, mix, &o, on_rest, &r)), 201);
    json_decref(r.json);
    seen_event *rs = expect_event(ARI_EV_RECORDING_STARTED, NULL);
    assert_string_equal(rs->recording, name);
    say("recording %s of the bridge started", name);
    pass_ms(2000);
    assert_int_equal(REST(r, ari_recording_pause(H.rest, name, on_rest, &r)), 204);
    pass_ms(1000);
    assert_int_equal(REST(r, ari_recording_unpause(H.rest, name, on_rest, &r)), 204);
    pass_ms(2000);
    assert_int_equal(REST(r, ari_recording_stop(H.rest, name, on_rest, &r)), 204);
    seen_event *rf = expect_event(ARI_EV_RECORDING_FINISHED, NULL);
    assert_string_equal(rf->recording, name);
    say("paused for 1 s, unpaused, stopped");

    json_t *all = sim_ctl(&H.sim, 0, "GET", "/sim/recordings", NULL, NULL), *rec, *found = NULL;
    size_t i;
    json_array_foreach(all, i, rec)
    {
        if (strcmp(json_string_value(json_object_get(rec, "name")) ?: "", name) == 0)
            found = rec;
    }
    assert_non_null(found);
    assert_string_equal(json_string_value(json_object_get(found, "state")), "done");
    assert_true(json_is_true(json_object_get(found, "stored")));
    json_t *spans = json_object_get(found, "spans");
    assert_int_equal(json_array_size(spans), 2);
    json_int_t s0 = json_integer_value(json_object_get(json_array_get(spans, 0), "end"));
    json_int_t s1 = json_integer_value(json_object_get(json_array_get(spans, 1), "start"));
    assert_true(s1 > s0); /* the paused second is in no span */
    say("oracle: recording stored with 2 spans of conversation; the paused gap is not in it");
    json_decref(all);

    assert_int_equal(REST(r, ari_recording_stored_get(H.rest, name, on_rest, &r)), 200);
    json_decref(r.json);
    assert_int_equal(REST(r, ari_recording_stored_delete(H.rest, name, on_rest, &r)), 204);
    assert_int_equal(REST(r, ari_recording_stored_get(H.rest, name, on_rest, &r)), 404);
    json_decref(r.json);
}

/* The agent's key reaches the app on the agent's channel, and the caller
 * hears it through the bridge. */
static void step_agent_dtmf(const char *caller, const char *agent)
{
    size_t before = timeline_count(caller, "dtmf_heard", NULL);
    assert_int_equal(sim_send_dtmf(&H.sim, 0, agent, "#"), 204);
    seen_event *d = expect_event(ARI_EV_CHANNEL_DTMF_RECEIVED, agent);
    assert_int_equal(d->digit, '#');
    assert_int_equal(timeline_count(caller, "dtmf_heard", NULL), before + 1);
    json_t *h = timeline_last(caller, "dtmf_heard");
    assert_string_equal(json_string_value(json_object_get(h, "digit")), "#");
    json_decref(h);
    say("agent presses #: the app gets it on the agent's channel, the caller hears the tone");
}

/* Hang up: the app hangs the caller up, the agent hangs up himself; the
 * bridges go and nothing is left in the simulator. */
static void step_hangup(const char *caller, const char *agent, const char *hold,
                        const char *mix)
{
    rest_result r;
    assert_int_equal(REST(r, ari_channel_hangup(H.rest, caller, "normal", on_rest, &r)), 204);
    expect_event(ARI_EV_STASIS_END, caller);
    assert_int_equal(sim_is_connected(&H.sim, 0, caller, agent), 0);
    assert_int_equal(sim_hangup_call(&H.sim, 0, agent, 16), 204);
    expect_event(ARI_EV_STASIS_END, agent);
    assert_int_equal(REST(r, ari_channel_answer(H.rest, caller, on_rest, &r)), 404);
    json_decref(r.json);
    assert_int_equal(REST(r, ari_bridge_destroy(H.rest, mix, on_rest, &r)), 204);
    assert_int_equal(REST(r, ari_bridge_destroy(H.rest, hold, on_rest, &r)), 204);
    json_t *h = timeline_last(agent, "hangup");
    assert_non_null(h);
    assert_string_equal(json_string_value(json_object_get(h, "who")), "party");
    json_decref(h);

    assert_sim_empty();
    say("caller hung up by the app, agent hung up himself; bridges destroyed; nothing left");
}

static void test_scripted_call(void **state)
{
    (void)state;
    start_clients();
    say("ARI client and events WebSocket connected to %s (app %s)", sim_proc_url(&H.sim, 0),
        APP);
    char caller[160], agent[160], hold[160], mix[160];
    step_caller_arrives(caller, sizeof caller);
    step_answer(caller, "caller");
    step_hold(caller, hold, sizeof hold);
    step_announce(caller);
    step_caller_dtmf(caller);
    step_connect(caller, agent, sizeof agent, mix, sizeof mix);
    step_record(mix);
    step_agent_dtmf(caller, agent);
    step_hangup(caller, agent, hold, mix);
    stop_clients();
}

/* A caller on node1 and an agent on node2 joined by a link call, as ariq's
 * nodes will: node1 originates IAX2/node2/PAIRING@queue-link, the far leg
 * arrives on node2 in Stasis(queue,link,PAIRING), each node bridges its
 * party with its leg; they hear each other, the agent's keys reach both
 * apps, and a hangup on node2 tears node1's side down. */
static void test_cross_node_link(void **state)
{
    (void)state;
    say("-- a second call across two nodes --");
    start_clients();
    char caller[160], agent[160], far[160], mix1[160], mix2[160];
    json_decref(sim_place_call(&H.sim, 0, APP, "caller,support,0", "5551002", caller,
                               sizeof caller));
    expect_event_on(0, ARI_EV_STASIS_START, caller);
    answer_on(0, caller, "caller on node1");
    json_decref(sim_place_call(&H.sim, 1, APP, "agent,support,3001", "3001", agent,
                               sizeof agent));
    assert_true(no_event_on(0, ARI_EV_STASIS_START, agent)); /* node2's, not node1's */
    expect_event_on(1, ARI_EV_STASIS_START, agent);
    answer_on(1, agent, "agent 3001 on node2");

    char pairing[64], near[96];
    assert_int_equal(ids_make("pair", pairing, sizeof pairing), 0);
    snprintf(near, sizeof near, "lo-%s", pairing);
    char endpoint[128], args[96];
    snprintf(endpoint, sizeof endpoint, "IAX2/node2/%s@queue-link", pairing);
    snprintf(args, sizeof args, "linkout,%s", pairing);
    ari_originate o = {.endpoint = endpoint, .app = APP, .app_args = args,
                       .channel_id = near, .timeout_s = 15};
    rest_result r;
    assert_int_equal(REST(r, ari_channel_originate(H.rest_on[0], &o, on_rest, &r)), 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "state")), "Down");
    json_decref(r.json);
    say("node1 originates %s (link leg %s)", endpoint, near);

    seen_event *fs = expect_event_on(1, ARI_EV_STASIS_START, NULL);
    assert_int_equal(fs->nargs, 2);
    assert_string_equal(fs->args[0], "link");
    assert_string_equal(fs->args[1], pairing);
    snprintf(far, sizeof far, "%s", fs->chan);
    say("the far leg %s arrives on node2 in Stasis(queue,link,%s)", far, pairing);
    answer_on(1, far, "far leg");
    seen_event *ns = expect_event_on(0, ARI_EV_STASIS_START, near);
    assert_string_equal(ns->args[0], "linkout");

    const char *side1[] = {caller, near};
    const char *side2[] = {far, agent};
    mix_on(0, side1, 2, mix1, sizeof mix1);
    mix_on(1, side2, 2, mix2, sizeof mix2);
    assert_int_equal(sim_is_connected(&H.sim, 0, caller, agent), 1);
    say("each node bridges its party with its leg: caller and agent hear each other");

    assert_int_equal(sim_send_dtmf(&H.sim, 1, agent, "0"), 204);
    assert_int_equal(expect_event_on(1, ARI_EV_CHANNEL_DTMF_RECEIVED, agent)->digit, '0');
    assert_int_equal(expect_event_on(0, ARI_EV_CHANNEL_DTMF_RECEIVED, near)->digit, '0');
    say("agent presses 0: node2 sees it on the agent, node1 on its link leg");

    assert_int_equal(sim_hangup_call(&H.sim, 1, agent, 16), 204);
    expect_event_on(1, ARI_EV_STASIS_END, agent);
    assert_int_equal(REST(r, ari_channel_hangup(H.rest_on[1], far, "normal", on_rest, &r)), 204);
    expect_event_on(1, ARI_EV_STASIS_END, far);
    expect_event_on(0, ARI_EV_STASIS_END, near); /* the link went down with it */
    assert_int_equal(sim_is_connected(&H.sim, 0, caller, agent), 0);
    assert_int_equal(REST(r, ari_channel_hangup(H.rest_on[0], caller, "normal", on_rest, &r)),
                     204);
    expect_event_on(0, ARI_EV_STASIS_END, caller);
    assert_int_equal(REST(r, ari_bridge_destroy(H.rest_on[0], mix1, on_rest, &r)), 204);
    assert_int_equal(REST(r, ari_bridge_destroy(H.rest_on[1], mix2, on_rest, &r)), 204);
    assert_sim_empty();
    say("agent hangs up; node2 drops the link, node1 sees its leg end and hangs up the caller");
    stop_clients();
}

/* --attach P1[,P2]: describe a simulator that is already running. */
static int attach(const char *ports)
{
    memset(&H.sim, 0, sizeof H.sim);
    snprintf(H.sim.user, sizeof H.sim.user, "%s", getenv("ARIQ_SIM_USER") ?: "ari");
    snprintf(H.sim.password, sizeof H.sim.password, "%s", getenv("ARIQ_SIM_PASSWORD") ?: "ari");
    char buf[128];
    snprintf(buf, sizeof buf, "%s", ports);
    for (char *tok = strtok(buf, ","); tok && H.sim.nnodes < SIM_PROC_MAX_NODES;
         tok = strtok(NULL, ",")) {
        int port = atoi(tok);
        if (port <= 0 || port > 65535)
            return -1;
        H.sim.ports[H.sim.nnodes] = port;
        snprintf(H.sim.urls[H.sim.nnodes], sizeof H.sim.urls[0], "http://127.0.0.1:%d", port);
        H.sim.nnodes++;
    }
    return H.sim.nnodes > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    log_init_from_env();
    H.scale = 0.01;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--attach") == 0 && i + 1 < argc) {
            if (attach(argv[++i]) != 0) {
                fprintf(stderr, "scripted_call: bad --attach ports\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--narrate") == 0) {
            H.narrate = true;
        } else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            H.scale = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: scripted_call [--attach P1[,P2]] [--narrate] [--scale F]\n");
            return 2;
        }
    }
    if (!H.sim.nnodes) {
        if (sim_proc_start(&H.sim, 2, H.scale) != 0) {
            fprintf(stderr, "scripted_call: the simulator did not start\n");
            return 1;
        }
        H.own_sim = true;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scripted_call),
        cmocka_unit_test(test_cross_node_link),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (H.own_sim) {
        int st = sim_proc_stop(&H.sim);
        if (st != 0) {
            fprintf(stderr, "scripted_call: simulator exited with status %d\n", st);
            rc = rc ? rc : 1;
        }
    }
    return rc;
}
