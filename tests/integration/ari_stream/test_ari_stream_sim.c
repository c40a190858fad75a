/* ari_stream against the asterisk-sim process: a call placed through the
 * control API arrives as StasisStart with its args on the loop; DTMF and
 * hangup follow; the sim's drop_ws and refuse_ws faults make the stream
 * reconnect; a wrong password gets 401 and retries; a second client takes
 * the app over (ApplicationReplaced). Every event the sim sends must parse. */
#include "ari/stream.h"
#include "core/clock.h"
#include "core/log.h"
#include "harness.h"
#include "sim_proc.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sim_proc g_sim;

static int setup(void **state)
{
    (void)state;
    log_set_sink(log_capture, NULL);
    if (sim_proc_start(&g_sim, 1, 1.0) != 0) {
        fprintf(stderr, "asterisk-sim did not start; see %s\n", g_sim.logpath);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    sim_proc_stop(&g_sim);
    log_set_sink(NULL, NULL);
    return 0;
}

typedef struct chan_wait {
    ari_event_type type;
    const char *id;
    int n; /* how many such events */
} chan_wait;

static bool got_for_chan(seen *w, void *arg)
{
    chan_wait *c = arg;
    int n = 0;
    for (int i = 0; i < w->nevents && i < SEEN_MAX; i++)
        n += w->types[i] == c->type && strcmp(w->chan_ids[i], c->id) == 0;
    return n >= c->n;
}

static bool type_seen(seen *w, void *arg)
{
    return w->type_count[*(ari_event_type *)arg] > 0;
}

static ari_stream *connect_stream(seen *w, bool basic)
{
    seen_init(w);
    ari_stream *s = open_stream(w, sim_proc_port(&g_sim, 0), sim_proc_user(&g_sim),
                                sim_proc_password(&g_sim), basic);
    int one = 1;
    assert_true(run_until(w, n_connected, &one, 5000));
    return s;
}

static void finish(seen *w, ari_stream *s)
{
    ari_stream_stats st;
    ari_stream_get_stats(s, &st);
    assert_int_equal(st.parse_errors, 0); /* the sim speaks what the parser takes */
    assert_false(w->wrong_thread);
    ari_stream_free(s);
    event_base_free(w->base);
    assert_int_equal(sim_reset(&g_sim, 0), 204);
}

static void test_call_reaches_loop(void **state)
{
    (void)state;
    seen w;
    ari_stream *s = connect_stream(&w, false);
    char id[64] = "";
    uint64_t t0 = clock_mono_us();
    json_t *sum =
        sim_place_call(&g_sim, 0, "queue", "caller,support,5", "1001", id, sizeof id);
    assert_non_null(sum);
    json_decref(sum);
    chan_wait cw = {ARI_EV_STASIS_START, id, 1};
    assert_true(run_until(&w, got_for_chan, &cw, 5000));
    print_message("place call -> StasisStart on the loop: %llu us\n",
                  (unsigned long long)(clock_mono_us() - t0));
    assert_int_equal(w.nargs, 3);
    assert_string_equal(w.args[0], "caller");
    assert_string_equal(w.args[1], "support");
    assert_string_equal(w.args[2], "5");
    assert_string_equal(w.caller_number, "1001");
    assert_int_equal(w.start_state, ARI_CHAN_RING);

    assert_int_equal(sim_send_dtmf(&g_sim, 0, id, "5#"), 204);
    cw = (chan_wait){ARI_EV_CHANNEL_DTMF_RECEIVED, id, 2};
    assert_true(run_until(&w, got_for_chan, &cw, 5000));
    assert_string_equal(w.digits, "5#");

    assert_int_equal(sim_hangup_call(&g_sim, 0, id, 16), 204);
    cw = (chan_wait){ARI_EV_STASIS_END, id, 1};
    assert_true(run_until(&w, got_for_chan, &cw, 5000));
    assert_int_equal(w.connected, 1);
    assert_int_equal(w.disconnected, 0);
    finish(&w, s); /* free while connected */
}

static bool n_of_type(seen *w, ari_event_type t, int n)
{
    return w->type_count[t] >= n;
}

static bool media_done(seen *w, void *arg)
{
    (void)arg;
    return n_of_type(w, ARI_EV_PLAYBACK_FINISHED, 1) &&
           n_of_type(w, ARI_EV_RECORDING_FINISHED, 1);
}

static bool bridge_gone(seen *w, void *arg)
{
    (void)arg;
    return n_of_type(w, ARI_EV_BRIDGE_DESTROYED, 1) && n_of_type(w, ARI_EV_STASIS_END, 1);
}

/* A queue's usual REST calls against the sim: every event they cause must
 * parse into its type (parse_errors stays 0 in finish()). */
static void test_sim_media_events_parse(void **state)
{
    (void)state;
    seen w;
    ari_stream *s = connect_stream(&w, false);
    char id[64] = "", path[256];
    long st = 0;
    json_t *sum = sim_place_call(&g_sim, 0, "queue", "caller", "1001", id, sizeof id);
    assert_non_null(sum);
    json_decref(sum);
    snprintf(path, sizeof path, "/ari/channels/%s/answer", id);
    json_decref(sim_ctl(&g_sim, 0, "POST", path, NULL, &st));
    assert_int_equal(st, 204);
    json_t *br =
        sim_ctl(&g_sim, 0, "POST", "/ari/bridges?type=mixing&bridgeId=br1", NULL, &st);
    assert_int_equal(st, 200);
    json_decref(br);
    snprintf(path, sizeof path, "/ari/bridges/br1/addChannel?channel=%s", id);
    json_decref(sim_ctl(&g_sim, 0, "POST", path, NULL, &st));
    assert_int_equal(st, 204);
    snprintf(path, sizeof path, "/ari/channels/%s/play?media=sound:beep&playbackId=pb1",
             id);
    json_decref(sim_ctl(&g_sim, 0, "POST", path, NULL, &st));
    assert_int_equal(st, 201);
    json_decref(sim_ctl(&g_sim, 0, "POST", "/ari/bridges/br1/record?name=rec1&format=wav",
                        NULL, &st));
    assert_int_equal(st, 201);
    json_decref(sim_ctl(&g_sim, 0, "DELETE", "/ari/playbacks/pb1", NULL, &st));
    json_decref(sim_ctl(&g_sim, 0, "POST", "/ari/recordings/live/rec1/stop", NULL, &st));
    assert_int_equal(st, 204);
    assert_true(run_until(&w, media_done, NULL, 5000));
    assert_int_equal(sim_hangup_call(&g_sim, 0, id, 16), 204);
    json_decref(sim_ctl(&g_sim, 0, "DELETE", "/ari/bridges/br1", NULL, &st));
    assert_true(run_until(&w, bridge_gone, NULL, 5000));
    const ari_event_type want[] = {
        ARI_EV_STASIS_START,
        ARI_EV_CHANNEL_STATE_CHANGE,
        ARI_EV_CHANNEL_ENTERED_BRIDGE,
        ARI_EV_PLAYBACK_STARTED,
        ARI_EV_PLAYBACK_FINISHED,
        ARI_EV_RECORDING_STARTED,
        ARI_EV_RECORDING_FINISHED,
        ARI_EV_CHANNEL_LEFT_BRIDGE,
        ARI_EV_STASIS_END,
        ARI_EV_BRIDGE_DESTROYED,
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (w.type_count[want[i]] == 0)
            fail_msg("no %s from the sim", ari_event_type_name(want[i]));
    }
    finish(&w, s);
}

static void test_drop_ws_reconnects(void **state)
{
    (void)state;
    seen w;
    ari_stream *s = connect_stream(&w, false);
    assert_int_equal(sim_fault(&g_sim, 0, "{\"drop_ws\":true}"), 200);
    int one = 1, two = 2;
    assert_true(run_until(&w, n_disconnected, &one, 5000));
    assert_true(run_until(&w, n_connected, &two, 5000));
    print_message("drop_ws -> connected again in %llu ms\n",
                  (unsigned long long)(w.t_up_again - w.t_down));

    char id[64] = "";
    json_t *sum =
        sim_place_call(&g_sim, 0, "queue", "agent,support,1001", "1001", id, sizeof id);
    assert_non_null(sum);
    json_decref(sum);
    chan_wait cw = {ARI_EV_STASIS_START, id, 1};
    assert_true(run_until(&w, got_for_chan, &cw, 5000));
    assert_string_equal(w.args[0], "agent");

    ari_stream_stats st;
    ari_stream_get_stats(s, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(sim_hangup_call(&g_sim, 0, id, 16), 204);
    cw = (chan_wait){ARI_EV_STASIS_END, id, 1};
    assert_true(run_until(&w, got_for_chan, &cw, 5000));
    finish(&w, s);
}

/* refuse_ws answers the next upgrades with an error status: each is one
 * failed attempt, then the stream gets through. */
static void test_refused_upgrades_then_connect(void **state)
{
    (void)state;
    seen w;
    ari_stream *s = connect_stream(&w, false);
    assert_int_equal(sim_fault(&g_sim, 0, "{\"refuse_ws\":2,\"drop_ws\":true}"), 200);
    int three = 3, two = 2;
    assert_true(run_until(&w, n_disconnected, &three, 5000));
    assert_true(run_until(&w, n_connected, &two, 5000));
    assert_non_null(strstr(w.reason, "HTTP"));
    print_message("last refusal: %s\n", w.reason);
    finish(&w, s);
}

static void test_wrong_password(void **state)
{
    (void)state;
    seen w;
    seen_init(&w);
    ari_stream *s = open_stream(&w, sim_proc_port(&g_sim, 0), sim_proc_user(&g_sim),
                                "not-the-password", false);
    int three = 3;
    assert_true(run_until(&w, n_disconnected, &three, 5000));
    assert_int_equal(w.connected, 0);
    assert_non_null(strstr(w.reason, "401"));
    assert_true(log_has("401 unauthorized"));
    assert_false(log_has("not-the-password"));
    ari_stream_free(s); /* while waiting to retry */
    event_base_free(w.base);
}

static void test_basic_auth_and_replaced(void **state)
{
    (void)state;
    seen a, b;
    ari_stream *sa = connect_stream(&a, true);
    /* a second client for the same app on the same loop takes it over */
    ari_stream_cfg cfg = {.host = "127.0.0.1",
                          .port = sim_proc_port(&g_sim, 0),
                          .app = "queue",
                          .user = sim_proc_user(&g_sim),
                          .password = sim_proc_password(&g_sim),
                          .on_event = on_event,
                          .on_connected = on_connected,
                          .on_disconnected = on_disconnected,
                          .ud = &b};
    memset(&b, 0, sizeof b);
    b.base = a.base;
    b.loop_thread = a.loop_thread;
    ari_stream *sb = NULL;
    assert_int_equal(ari_stream_new(a.base, &cfg, &sb), 0);
    int one = 1;
    assert_true(run_until(&b, n_connected, &one, 5000));
    ari_event_type t = ARI_EV_APPLICATION_REPLACED;
    assert_true(run_until(&a, type_seen, &t, 5000));
    ari_stream_free(sb);
    finish(&a, sa);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_reaches_loop),
        cmocka_unit_test(test_sim_media_events_parse),
        cmocka_unit_test(test_drop_ws_reconnects),
        cmocka_unit_test(test_refused_upgrades_then_connect),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_basic_auth_and_replaced),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
