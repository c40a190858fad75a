/* test_ari_client_sim.c - the REST client against the real simulator process.
 *
 * Calls are placed through the simulator's control API (blocking helpers of
 * sim_proc.h); every ARI request goes through ari_client on a libevent loop,
 * and the test asserts statuses and body fields as Asterisk 22 answered them
 * (shared/ari/samples/http-status.txt). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "ari/client.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "sim_proc.h"

typedef struct got {
    int calls;
    long status;
    int err;
    json_t *json; /* our reference, replaced on each response */
} got;

typedef struct it {
    struct event_base *base;
    sim_proc sp;
    sim_events *ev;
    ari_client *c;
    ari_rest *r;
    got g;
} it;

static void on_resp(ari_rest *rest, const ari_response *r, void *pd)
{
    got *g = pd;

    (void)rest;
    g->calls++;
    g->status = r->status;
    g->err = r->err;
    json_decref(g->json);
    g->json = json_incref(r->json);
}

static void tick(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (void)ud;
}

/* Asserts the request started, runs the loop until its answer (at most 5 s)
 * and returns the HTTP status. */
static long wait_answer(it *t, int rc)
{
    struct event *tk = event_new(t->base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = {0, 10000};
    int target = t->g.calls + 1;
    uint64_t end = clock_mono_ms() + 5000;

    assert_int_equal(rc, 0);
    event_add(tk, &tv);
    while (t->g.calls < target && clock_mono_ms() < end)
        event_base_loop(t->base, EVLOOP_ONCE);
    event_free(tk);
    assert_int_equal(t->g.calls, target);
    assert_int_equal(t->g.err, 0);
    return t->g.status;
}

#define CALL(t, expr) wait_answer((t), (expr))
#define CB(t) on_resp, &(t)->g

static const char *jstr(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

static int setup(void **state)
{
    it *t = calloc(1, sizeof *t);
    ari_client_config cfg = {0};

    if (sim_proc_start(&t->sp, 2, 1.0) != 0) /* node2 only for down/up */
        fail_msg("asterisk-sim did not start");
    t->ev = sim_events_open(&t->sp, 0, "queue");
    assert_non_null(t->ev);
    t->base = event_base_new();
    cfg.url = sim_proc_url(&t->sp, 0);
    cfg.user = sim_proc_user(&t->sp);
    cfg.password = sim_proc_password(&t->sp);
    cfg.timeout_ms = 5000;
    t->c = ari_client_new(t->base, &cfg);
    assert_non_null(t->c);
    t->r = ari_client_rest(t->c);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    it *t = *state;

    ari_client_free(t->c);
    assert_int_equal(event_base_get_num_events(t->base, EVENT_BASE_COUNT_ADDED), 0);
    event_base_free(t->base);
    json_decref(t->g.json);
    sim_events_close(t->ev);
    sim_proc_stop(&t->sp);
    free(t);
    return 0;
}

/* Places a call into Stasis(queue, args) with channel id `id` and waits for
 * its StasisStart. */
static void place_call(it *t, const char *id, const char *app, bool wait_stasis)
{
    char body[256];
    long st = 0;
    json_t *j, *ev;

    snprintf(body, sizeof body,
             "{\"app\":\"%s\",\"args\":\"caller,support\",\"channel_id\":\"%s\","
             "\"caller_number\":\"100\",\"caller_name\":\"Alice\"}", app, id);
    j = sim_ctl(&t->sp, 0, "POST", "/sim/calls", body, &st);
    assert_int_equal(st, 201);
    assert_string_equal(jstr(j, "id"), id);
    json_decref(j);
    if (!wait_stasis)
        return;
    ev = sim_events_wait(t->ev, "StasisStart", id, 3000);
    assert_non_null(ev);
    json_decref(ev);
}

static void test_info_and_channel(void **state)
{
    it *t = *state;

    assert_int_equal(CALL(t, ari_asterisk_info(t->r, CB(t))), 200);
    assert_non_null(json_object_get(t->g.json, "system"));

    place_call(t, "it-c1", "queue", true);
    assert_int_equal(CALL(t, ari_channel_get(t->r, "it-c1", CB(t))), 200);
    assert_string_equal(jstr(t->g.json, "id"), "it-c1");
    assert_string_equal(jstr(t->g.json, "state"), "Ring");
    assert_string_equal(jstr(json_object_get(t->g.json, "caller"), "number"), "100");

    assert_int_equal(CALL(t, ari_channel_answer(t->r, "it-c1", CB(t))), 204);
    assert_null(t->g.json);
    assert_int_equal(CALL(t, ari_channel_answer(t->r, "it-c1", CB(t))), 204);
    assert_int_equal(CALL(t, ari_channel_get(t->r, "it-c1", CB(t))), 200);
    assert_string_equal(jstr(t->g.json, "state"), "Up");

    assert_int_equal(CALL(t, ari_channel_list(t->r, CB(t))), 200);
    assert_true(json_is_array(t->g.json) && json_array_size(t->g.json) >= 1);

    /* escaped query values arrive decoded */
    assert_int_equal(CALL(t, ari_channel_set_var(t->r, "it-c1", "QUEUE_NOTE",
                                                 "a b&c=d,e", CB(t))), 204);
    assert_int_equal(CALL(t, ari_channel_get_var(t->r, "it-c1", "QUEUE_NOTE", CB(t))), 200);
    assert_string_equal(jstr(t->g.json, "value"), "a b&c=d,e");
    assert_int_equal(CALL(t, ari_channel_get_var(t->r, "it-c1", "NO_SUCH_VAR", CB(t))), 404);

    assert_int_equal(CALL(t, ari_channel_get(t->r, "nonexistent-id", CB(t))), 404);
    assert_string_equal(jstr(t->g.json, "message"), "Channel not found");
    assert_int_equal(CALL(t, ari_channel_answer(t->r, "nonexistent-id", CB(t))), 404);
}

static void test_play_and_moh(void **state)
{
    it *t = *state;
    const char *list[] = {"sound:queue-thereare", "number:3", "sound:queue-callswaiting"};
    const char *beep[] = {"sound:beep"};

    place_call(t, "it-c2", "queue", true);
    assert_int_equal(CALL(t, ari_channel_answer(t->r, "it-c2", CB(t))), 204);
    assert_int_equal(CALL(t, ari_channel_play(t->r, "it-c2", "it-pb-1", list, 3, "en",
                                              CB(t))), 201);
    assert_string_equal(jstr(t->g.json, "id"), "it-pb-1");
    assert_string_equal(jstr(t->g.json, "media_uri"), "sound:queue-thereare");
    assert_string_equal(jstr(t->g.json, "next_media_uri"), "number:3");
    assert_string_equal(jstr(t->g.json, "target_uri"), "channel:it-c2");
    assert_int_equal(CALL(t, ari_playback_get(t->r, "it-pb-1", CB(t))), 200);
    assert_string_equal(jstr(t->g.json, "id"), "it-pb-1");
    assert_int_equal(CALL(t, ari_playback_stop(t->r, "it-pb-1", CB(t))), 204);
    assert_int_equal(CALL(t, ari_playback_stop(t->r, "it-pb-1", CB(t))), 404);

    /* without an id: the server picks one */
    assert_int_equal(CALL(t, ari_channel_play(t->r, "it-c2", NULL, beep, 1, NULL, CB(t))), 201);
    assert_true(strlen(jstr(t->g.json, "id")) > 0);
    assert_string_equal(jstr(t->g.json, "media_uri"), "sound:beep");

    assert_int_equal(CALL(t, ari_channel_moh_start(t->r, "it-c2", "default", CB(t))), 204);
    assert_int_equal(CALL(t, ari_channel_moh_stop(t->r, "it-c2", CB(t))), 204);
    assert_int_equal(CALL(t, ari_channel_play(t->r, "nonexistent-id", NULL, beep, 1, NULL,
                                              CB(t))), 404);
}

/* PUT /applications/{app}/eventFilter: only the allowed types reach the
 * app; an unknown app is 404; a malformed list is 400 and changes nothing;
 * an empty allowed list lets everything through again. */
static void test_event_filter(void **state)
{
    it *t = *state;
    const char *only[] = {"StasisStart", "ChannelDtmfReceived"};
    assert_int_equal(CALL(t, ari_application_filter(t->r, "queue", only, 2, CB(t))), 200);
    json_t *al = json_object_get(t->g.json, "events_allowed");
    assert_int_equal(json_array_size(al), 2);
    assert_string_equal(jstr(json_array_get(al, 0), "type"), "StasisStart");
    assert_int_equal(CALL(t, ari_application_filter(t->r, "nosuchapp", only, 2, CB(t))), 404);
    json_t *bad = json_pack("{s:[s]}", "allowed", "StasisStart"); /* not {"type":..} */
    assert_int_equal(
        CALL(t, ari_rest_request(t->r, "PUT", "/applications/queue/eventFilter", bad, CB(t))),
        400);
    json_decref(bad);

    place_call(t, "it-f1", "queue", true); /* StasisStart: allowed */
    assert_int_equal(CALL(t, ari_channel_answer(t->r, "it-f1", CB(t))), 204);
    long st = 0;
    json_decref(sim_ctl(&t->sp, 0, "POST", "/sim/channels/it-f1/dtmf", "{\"digits\":\"5\"}",
                        &st));
    assert_int_equal(st, 204);
    json_t *ev = sim_events_wait(t->ev, "ChannelDtmfReceived", "it-f1", 3000);
    assert_non_null(ev);
    json_decref(ev);
    /* the answer's ChannelStateChange was held back: nothing else came */
    assert_int_equal(sim_events_count(t->ev, "ChannelStateChange"), 0);

    assert_int_equal(CALL(t, ari_application_filter(t->r, "queue", NULL, 0, CB(t))), 200);
    assert_int_equal(CALL(t, ari_channel_hangup(t->r, "it-f1", "normal", CB(t))), 204);
    ev = sim_events_wait(t->ev, "StasisEnd", "it-f1", 3000); /* all types again */
    assert_non_null(ev);
    json_decref(ev);
}

static void test_bridges(void **state)
{
    it *t = *state;
    const char *c3[] = {"it-c3"};
    const char *c34[] = {"it-c3", "it-c4"};
    const char *nope[] = {"nonexistent-id"};
    const char *other[] = {"it-other"};
    char hold[64];

    place_call(t, "it-c3", "queue", true);
    place_call(t, "it-c4", "queue", true);
    place_call(t, "it-other", "nosuchapp", false); /* alive, not in Stasis */

    assert_int_equal(CALL(t, ari_bridge_create(t->r, NULL, "holding", "hold1", CB(t))), 200);
    assert_string_equal(jstr(t->g.json, "bridge_type"), "holding");
    assert_string_equal(jstr(t->g.json, "name"), "hold1");
    snprintf(hold, sizeof hold, "%s", jstr(t->g.json, "id"));
    assert_true(strlen(hold) > 0);
    assert_int_equal(CALL(t, ari_bridge_create(t->r, "it-mix-1", "mixing", "call1", CB(t))), 200);
    assert_string_equal(jstr(t->g.json, "id"), "it-mix-1");
    assert_string_equal(jstr(t->g.json, "bridge_type"), "mixing");

    assert_int_equal(CALL(t, ari_bridge_add_channel(t->r, hold, c3, 1, NULL, CB(t))), 204);
    assert_int_equal(CALL(t, ari_bridge_moh_start(t->r, hold, "default", CB(t))), 204);
    assert_int_equal(CALL(t, ari_bridge_moh_stop(t->r, hold, CB(t))), 204);
    assert_int_equal(CALL(t, ari_bridge_remove_channel(t->r, hold, c3, 1, CB(t))), 204);
    assert_int_equal(CALL(t, ari_bridge_remove_channel(t->r, hold, c3, 1, CB(t))), 422);

    assert_int_equal(CALL(t, ari_bridge_add_channel(t->r, "it-mix-1", c34, 2, NULL, CB(t))), 204);
    assert_int_equal(CALL(t, ari_bridge_get(t->r, "it-mix-1", CB(t))), 200);
    json_t *chans = json_object_get(t->g.json, "channels");
    assert_int_equal(json_array_size(chans), 2);

    assert_int_equal(CALL(t, ari_bridge_list(t->r, CB(t))), 200);
    assert_int_equal(json_array_size(t->g.json), 2);

    /* the error cases Asterisk answers */
    assert_int_equal(CALL(t, ari_bridge_add_channel(t->r, "it-mix-1", nope, 1, NULL, CB(t))), 400);
    assert_int_equal(CALL(t, ari_bridge_add_channel(t->r, "it-mix-1", other, 1, NULL, CB(t))), 422);
    assert_int_equal(CALL(t, ari_bridge_add_channel(t->r, "nonexistent-id", c3, 1, NULL, CB(t))), 404);
    assert_int_equal(CALL(t, ari_bridge_moh_start(t->r, "nonexistent-id", "default", CB(t))), 404);
    assert_int_equal(CALL(t, ari_channel_answer(t->r, "it-other", CB(t))), 409);
    assert_int_equal(CALL(t, ari_bridge_create(t->r, NULL, "bogus", NULL, CB(t))), 500);

    assert_int_equal(CALL(t, ari_bridge_destroy(t->r, "it-mix-1", CB(t))), 204);
    assert_int_equal(CALL(t, ari_bridge_destroy(t->r, "it-mix-1", CB(t))), 404);
    assert_int_equal(CALL(t, ari_bridge_destroy(t->r, hold, CB(t))), 204);
}

static void test_recording(void **state)
{
    it *t = *state;
    const char *both[] = {"it-c5", "it-c6"};
    ari_record_opts rec = {.name = "it-rec-1", .format = "wav"};

    place_call(t, "it-c5", "queue", true);
    place_call(t, "it-c6", "queue", true);
    assert_int_equal(CALL(t, ari_bridge_create(t->r, "it-mix-2", "mixing", NULL, CB(t))), 200);
    assert_int_equal(CALL(t, ari_bridge_add_channel(t->r, "it-mix-2", both, 2, NULL, CB(t))), 204);

    assert_int_equal(CALL(t, ari_bridge_record(t->r, "it-mix-2", &rec, CB(t))), 201);
    assert_string_equal(jstr(t->g.json, "name"), "it-rec-1");
    assert_string_equal(jstr(t->g.json, "format"), "wav");
    assert_string_equal(jstr(t->g.json, "target_uri"), "bridge:it-mix-2");
    assert_int_equal(CALL(t, ari_bridge_record(t->r, "it-mix-2", &rec, CB(t))), 409);

    assert_int_equal(CALL(t, ari_recording_pause(t->r, "it-rec-1", CB(t))), 204);
    assert_int_equal(CALL(t, ari_recording_live_get(t->r, "it-rec-1", CB(t))), 200);
    assert_string_equal(jstr(t->g.json, "state"), "paused");
    assert_int_equal(CALL(t, ari_recording_unpause(t->r, "it-rec-1", CB(t))), 204);
    assert_int_equal(CALL(t, ari_recording_live_get(t->r, "it-rec-1", CB(t))), 200);
    assert_string_equal(jstr(t->g.json, "state"), "recording");
    assert_int_equal(CALL(t, ari_recording_stop(t->r, "it-rec-1", CB(t))), 204);
    assert_int_equal(CALL(t, ari_recording_pause(t->r, "it-rec-1", CB(t))), 404);
    assert_int_equal(CALL(t, ari_recording_stored_get(t->r, "it-rec-1", CB(t))), 200);
    assert_string_equal(jstr(t->g.json, "name"), "it-rec-1");
    assert_int_equal(CALL(t, ari_recording_stored_delete(t->r, "it-rec-1", CB(t))), 204);
    assert_int_equal(CALL(t, ari_recording_stored_delete(t->r, "it-rec-1", CB(t))), 404);

    /* discard: no file left */
    rec.name = "it-rec-2";
    rec.max_duration_s = 30;
    rec.beep = true;
    assert_int_equal(CALL(t, ari_bridge_record(t->r, "it-mix-2", &rec, CB(t))), 201);
    assert_int_equal(CALL(t, ari_recording_cancel(t->r, "it-rec-2", CB(t))), 204);
    assert_int_equal(CALL(t, ari_recording_stored_get(t->r, "it-rec-2", CB(t))), 404);

    rec.name = "it-rec-3";
    rec.format = "bogusfmt";
    assert_int_equal(CALL(t, ari_bridge_record(t->r, "it-mix-2", &rec, CB(t))), 422);
}

static void test_originate_continue_hangup(void **state)
{
    it *t = *state;
    json_t *vars = json_pack("{s:s}", "QUEUE_PAIRING", "p-1");
    ari_originate o = {.endpoint = "Local/100@agents", .app = "queue",
                       .app_args = "agent,support,1001", .caller_id = "Agent <100>",
                       .timeout_s = 20, .channel_id = "it-o1", .variables = vars};
    json_t *ev;

    assert_int_equal(CALL(t, ari_channel_originate(t->r, &o, CB(t))), 200);
    json_decref(vars);
    assert_string_equal(jstr(t->g.json, "id"), "it-o1");
    assert_string_equal(jstr(t->g.json, "state"), "Down");
    ev = sim_events_wait(t->ev, "StasisStart", "it-o1", 3000);
    assert_non_null(ev);
    json_t *args = json_object_get(ev, "args");
    assert_int_equal(json_array_size(args), 3);
    assert_string_equal(json_string_value(json_array_get(args, 0)), "agent");
    json_decref(ev);
    assert_int_equal(CALL(t, ari_channel_hangup(t->r, "it-o1", "normal", CB(t))), 204);
    assert_int_equal(CALL(t, ari_channel_hangup(t->r, "it-o1", NULL, CB(t))), 404);

    place_call(t, "it-c7", "queue", true);
    assert_int_equal(CALL(t, ari_channel_continue(t->r, "it-c7", "queue-out", "s", 1, NULL,
                                                  CB(t))), 204);
    ev = sim_events_wait(t->ev, "StasisEnd", "it-c7", 3000);
    assert_non_null(ev);
    json_decref(ev);
}

/* Runs the loop until g->calls reaches target, at most 5 s. */
static void wait_calls(it *t, got *g, int target)
{
    struct event *tk = event_new(t->base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = {0, 10000};
    uint64_t end = clock_mono_ms() + 5000;

    event_add(tk, &tv);
    while (g->calls < target && clock_mono_ms() < end)
        event_base_loop(t->base, EVLOOP_ONCE);
    event_free(tk);
    assert_int_equal(g->calls, target);
}

/* What the transport does when the server misbehaves: injected 500s reach
 * the callback as results, latency past the timeout is ETIMEDOUT, a node
 * that dies is EIO, and the same client works again once it is back. */
static void test_faults(void **state)
{
    it *t = *state;
    got g = {0};
    ari_client_config cfg = {.url = sim_proc_url(&t->sp, 0), .user = "ari",
                             .password = "wrong", .timeout_ms = 300};
    ari_client *bad = ari_client_new(t->base, &cfg);
    ari_client *quick;

    assert_int_equal(ari_asterisk_info(ari_client_rest(bad), on_resp, &g), 0);
    wait_calls(t, &g, 1);
    assert_int_equal(g.status, 401);
    ari_client_free(bad);

    assert_int_equal(sim_fault(&t->sp, 0, "{\"http_500\":2}"), 200);
    assert_int_equal(CALL(t, ari_asterisk_info(t->r, CB(t))), 500);
    assert_int_equal(CALL(t, ari_asterisk_info(t->r, CB(t))), 500);
    assert_int_equal(CALL(t, ari_asterisk_info(t->r, CB(t))), 200);

    cfg.password = sim_proc_password(&t->sp);
    quick = ari_client_new(t->base, &cfg);
    assert_int_equal(sim_fault(&t->sp, 0, "{\"latency_ms\":1000}"), 200);
    uint64_t t0 = clock_mono_ms();
    assert_int_equal(ari_asterisk_info(ari_client_rest(quick), on_resp, &g), 0);
    wait_calls(t, &g, 2);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, ARIQ_ETIMEDOUT);
    assert_true(clock_mono_ms() - t0 < 900);
    assert_int_equal(sim_fault(&t->sp, 0, "{\"latency_ms\":0}"), 200);
    ari_client_free(quick);

    assert_int_equal(sim_set_node_down(&t->sp, 0, 1), 200);
    assert_int_equal(ari_asterisk_info(t->r, on_resp, &g), 0);
    wait_calls(t, &g, 3);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, ARIQ_EIO);
    assert_int_equal(sim_set_node_up(&t->sp, 0, 1), 200);
    assert_int_equal(CALL(t, ari_asterisk_info(t->r, CB(t))), 200);
    json_decref(g.json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_info_and_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_play_and_moh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bridges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recording, setup, teardown),
        cmocka_unit_test_setup_teardown(test_originate_continue_hangup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
    };
    log_set_level(LOG_LVL_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
