/* ari_stream against an in-process scripted WebSocket server (fake_ari.c)
 * and an evhttp server that answers every upgrade with 401: whole and
 * fragmented messages, malformed / unknown / oversized ones, reconnect with
 * backoff, 401 handling, credentials never logged, free from inside a
 * callback and while reconnecting. Every wait is bounded. */
#include "ari/stream.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "fake_ari.h"
#include "harness.h"
#include "proc.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>
#include <event2/http.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USER "ari-user"
/* '@' and '/' must be escaped in the query; the fake (lws) decodes them.
 * Not '&': lws splits query args on a decoded "%26", Asterisk does not. */
#define PASS "s3cr@t/pw"

/* ---- the script ----------------------------------------------------------------- */

#define CHAN(id) "{\"id\":\"" id "\",\"name\":\"PJSIP/100-01\",\"state\":\"Ring\"}"
static const char ss[] = "{\"type\":\"StasisStart\",\"application\":\"queue\","
                         "\"args\":[\"caller\",\"support\"],\"channel\":" CHAN("c1") "}";
static const char dtmf_a[] = "{\"type\":\"ChannelDtmfReceived\",\"dig";
static const char dtmf_b[] = "it\":\"5\",\"duration_ms\":100,";
static const char dtmf_c[] = "\"channel\":" CHAN("c1") "}";
static const char bad[] = "{\"type\":\"StasisEnd\",";
static const char unknown[] =
    "{\"type\":\"ChannelTalkingStarted\",\"channel\":" CHAN("c1") "}";
static const char end[] = "{\"type\":\"StasisEnd\",\"channel\":" CHAN("c2") "}";

static const fake_frame script[] = {
    {ss, sizeof ss - 1, true, false},
    {bad, sizeof bad - 1, true, false},
    {unknown, sizeof unknown - 1, true, false},
    {dtmf_a, sizeof dtmf_a - 1, false, false}, /* one message in three fragments */
    {dtmf_b, sizeof dtmf_b - 1, false, true},
    {dtmf_c, sizeof dtmf_c - 1, true, true},
    {end, sizeof end - 1, true, false},
};
#define NSCRIPT ((int)(sizeof script / sizeof script[0]))

static void test_events_in_order(void **state)
{
    (void)state;
    seen w;
    seen_init(&w);
    int port = proc_free_port();
    fake_ari *f = fake_ari_start(port, USER, PASS, script, NSCRIPT);
    assert_non_null(f);
    ari_stream *s = open_stream(&w, port, USER, PASS, false);
    int want = 3;
    assert_true(run_until(&w, n_events, &want, 5000));
    run_until(&w, never, NULL, 100); /* nothing more is coming */

    assert_false(w.wrong_thread);
    assert_int_equal(w.connected, 1);
    assert_int_equal(w.disconnected, 0);
    assert_true(ari_stream_is_connected(s));
    assert_int_equal(w.nevents, 3);
    assert_int_equal(w.types[0], ARI_EV_STASIS_START);
    assert_int_equal(w.types[1], ARI_EV_CHANNEL_DTMF_RECEIVED);
    assert_int_equal(w.types[2], ARI_EV_STASIS_END);
    assert_string_equal(w.first_arg, "caller");
    assert_string_equal(w.digits, "5");
    assert_string_equal(w.last_chan, "c2");

    ari_stream_stats st;
    ari_stream_get_stats(s, &st);
    assert_int_equal(st.messages, 5);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.unknown, 1);
    assert_int_equal(st.parse_errors, 1);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.reconnects, 0);

    char app[128], auth[512];
    fake_ari_last_app(f, app, sizeof app);
    fake_ari_last_auth(f, auth, sizeof auth);
    assert_string_equal(app, "queue");
    assert_string_equal(auth, USER ":" PASS); /* escaped on the wire, decoded by lws */
    assert_true(log_has("malformed event dropped"));
    assert_false(log_has(PASS));
    assert_false(log_has("s3cr"));

    ari_stream_free(s); /* while connected */
    fake_ari_stop(f);
    event_base_free(w.base);
}

static void test_basic_auth(void **state)
{
    (void)state;
    seen w;
    seen_init(&w);
    int port = proc_free_port();
    fake_ari *f = fake_ari_start(port, USER, PASS, script, 1);
    assert_non_null(f);
    ari_stream *s = open_stream(&w, port, USER, PASS, true);
    int want = 1;
    assert_true(run_until(&w, n_events, &want, 5000));
    char auth[512];
    fake_ari_last_auth(f, auth, sizeof auth);
    assert_string_equal(auth, "Basic YXJpLXVzZXI6czNjckB0L3B3"); /* ari-user:s3cr@t/pw */
    ari_stream_free(s);
    fake_ari_stop(f);
    event_base_free(w.base);
}

/* 2 MiB in 64 KiB fragments, then a small event: the big one is counted and
 * dropped, the next one still arrives. */
static void test_oversize_message(void **state)
{
    (void)state;
    enum { FRAG = 65536, NFRAG = 32 };
    char *big = malloc(FRAG);
    assert_non_null(big);
    memset(big, ' ', FRAG);
    big[0] = '{';
    fake_frame frames[NFRAG + 1];
    for (int i = 0; i < NFRAG; i++)
        frames[i] = (fake_frame){big, FRAG, i == NFRAG - 1, i > 0};
    frames[NFRAG] = (fake_frame){end, sizeof end - 1, true, false};

    seen w;
    seen_init(&w);
    int port = proc_free_port();
    fake_ari *f = fake_ari_start(port, USER, PASS, frames, NFRAG + 1);
    assert_non_null(f);
    ari_stream *s = open_stream(&w, port, USER, PASS, false);
    int want = 1;
    assert_true(run_until(&w, n_events, &want, 10000));
    assert_int_equal(w.types[0], ARI_EV_STASIS_END);
    ari_stream_stats st;
    ari_stream_get_stats(s, &st);
    assert_int_equal(st.messages, 2);
    assert_int_equal(st.parse_errors, 1);
    assert_int_equal(w.disconnected, 0);
    ari_stream_free(s);
    fake_ari_stop(f);
    event_base_free(w.base);
    free(big);
}

/* One 300 KB frame (FIN set) reaches the client in several reads: it is
 * still one message. */
static void test_large_single_frame(void **state)
{
    (void)state;
    enum { SIZE = 300 * 1024 };
    char *msg = malloc(SIZE);
    assert_non_null(msg);
    memset(msg, ' ', SIZE);
    memcpy(msg, ss, sizeof ss - 1);
    fake_frame frames[] = {{msg, SIZE, true, false}, {end, sizeof end - 1, true, false}};
    seen w;
    seen_init(&w);
    int port = proc_free_port();
    fake_ari *f = fake_ari_start(port, USER, PASS, frames, 2);
    assert_non_null(f);
    ari_stream *s = open_stream(&w, port, USER, PASS, false);
    int want = 2;
    assert_true(run_until(&w, n_events, &want, 10000));
    assert_int_equal(w.types[0], ARI_EV_STASIS_START);
    assert_int_equal(w.types[1], ARI_EV_STASIS_END);
    ari_stream_stats st;
    ari_stream_get_stats(s, &st);
    assert_int_equal(st.messages, 2);
    assert_int_equal(st.parse_errors, 0);
    ari_stream_free(s);
    fake_ari_stop(f);
    event_base_free(w.base);
    free(msg);
}

/* The server drops the connection: on_disconnected, a reconnect after the
 * backoff, on_connected again, and the new connection's events arrive. */
static void test_reconnect(void **state)
{
    (void)state;
    seen w;
    seen_init(&w);
    int port = proc_free_port();
    fake_ari *f = fake_ari_start(port, USER, PASS, script, NSCRIPT);
    assert_non_null(f);
    ari_stream *s = open_stream(&w, port, USER, PASS, false);
    int want = 3;
    assert_true(run_until(&w, n_events, &want, 5000));
    fake_ari_drop(f);
    int one = 1, two = 2;
    assert_true(run_until(&w, n_disconnected, &one, 5000));
    assert_false(ari_stream_is_connected(s));
    assert_true(run_until(&w, n_connected, &two, 5000));
    want = 6;
    assert_true(run_until(&w, n_events, &want, 5000));
    assert_int_equal(w.types[3], ARI_EV_STASIS_START);
    assert_false(w.wrong_thread);
    /* first retry after 100 ms -20 %..+20 % (less the callback latency) */
    uint64_t gap = w.t_up_again - w.t_down;
    print_message("reconnect after drop: %llu ms\n", (unsigned long long)gap);
    assert_true(gap >= 70 && gap < 1000);
    ari_stream_stats st;
    ari_stream_get_stats(s, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.failures, 1);
    assert_int_equal(fake_ari_connections(f), 2);
    ari_stream_free(s);
    fake_ari_stop(f);
    event_base_free(w.base);
}

/* A wrong password at the fake: refused, retried, never connected. */
static void test_wrong_password_refused(void **state)
{
    (void)state;
    seen w;
    seen_init(&w);
    int port = proc_free_port();
    fake_ari *f = fake_ari_start(port, USER, PASS, script, NSCRIPT);
    assert_non_null(f);
    ari_stream *s = open_stream(&w, port, USER, "wrong-pw", false);
    int three = 3;
    assert_true(run_until(&w, n_disconnected, &three, 5000));
    assert_int_equal(w.connected, 0);
    assert_true(fake_ari_refused(f) >= 3);
    assert_int_equal(w.nevents, 0);
    assert_false(log_has("wrong-pw"));
    ari_stream_free(s); /* while reconnecting */
    fake_ari_stop(f);
    event_base_free(w.base);
}

/* ---- 401 from an HTTP server ----------------------------------------------------- */

typedef struct http401 {
    int requests;
    char uri[512];
} http401;

static void reply_401(struct evhttp_request *req, void *arg)
{
    http401 *h = arg;
    h->requests++;
    snprintf(h->uri, sizeof h->uri, "%s", evhttp_request_get_uri(req));
    evhttp_send_reply(req, 401, "Unauthorized", NULL);
}

static void test_401_logged_and_retried(void **state)
{
    (void)state;
    seen w;
    seen_init(&w);
    int port = proc_free_port();
    http401 h = {0};
    struct evhttp *http = evhttp_new(w.base);
    assert_non_null(http);
    assert_int_equal(evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port), 0);
    evhttp_set_gencb(http, reply_401, &h);
    uint64_t t0 = clock_mono_ms();
    ari_stream *s = open_stream(&w, port, USER, PASS, false);
    int four = 4;
    assert_true(run_until(&w, n_disconnected, &four, 5000));
    uint64_t dt = clock_mono_ms() - t0;
    /* retries at ~100, ~200, ~400 ms: four attempts take at least ~560 ms */
    print_message("4 failed attempts in %llu ms\n", (unsigned long long)dt);
    assert_true(dt >= 500);
    assert_int_equal(w.connected, 0);
    assert_non_null(strstr(w.reason, "401"));
    assert_true(h.requests >= 4);
    assert_non_null(
        strstr(h.uri, "/ari/events?app=queue&api_key=ari-user:s3cr%40t%2Fpw"));
    assert_true(log_has("401 unauthorized"));
    assert_false(log_has(PASS));
    assert_false(log_has("s3cr%40t"));
    ari_stream_stats st;
    ari_stream_get_stats(s, &st);
    assert_true(st.failures >= 4);
    assert_int_equal(st.connects, 0);
    ari_stream_free(s);
    evhttp_free(http);
    event_base_free(w.base);
}

/* Nothing listens: attempts fail and back off; free in the middle. */
static void test_refused_and_backoff_cap(void **state)
{
    (void)state;
    seen w;
    seen_init(&w);
    int port = proc_free_port();
    ari_stream_cfg cfg = {.host = "127.0.0.1",
                          .port = port,
                          .app = "queue",
                          .user = USER,
                          .password = PASS,
                          .backoff_min_ms = 10,
                          .backoff_max_ms = 40,
                          .on_event = on_event,
                          .on_disconnected = on_disconnected,
                          .ud = &w};
    ari_stream *s = NULL;
    assert_int_equal(ari_stream_new(w.base, &cfg, &s), 0);
    /* capped at 40 ms (+20 %): 10 failures in about 0.4 s */
    int ten = 10;
    uint64_t t0 = clock_mono_ms();
    assert_true(run_until(&w, n_disconnected, &ten, 3000));
    assert_true(clock_mono_ms() - t0 < 1500); /* uncapped it would be > 10 s */
    ari_stream_free(s);
    event_base_free(w.base);
}

static void test_free_inside_callback(void **state)
{
    (void)state;
    seen w;
    seen_init(&w);
    int port = proc_free_port();
    fake_ari *f = fake_ari_start(port, USER, PASS, script, NSCRIPT);
    assert_non_null(f);
    w.free_in_event = true;
    open_stream(&w, port, USER, PASS, false);
    int one = 1;
    assert_true(run_until(&w, n_events, &one, 5000));
    run_until(&w, never, NULL, 100);
    assert_int_equal(w.nevents, 1); /* nothing after the free */
    assert_null(w.stream);
    fake_ari_stop(f);
    event_base_free(w.base);
}

/* The loop stalls while 400 messages of 2 KiB arrive: the service thread
 * stops reading at the bound instead of queueing all 800 KiB, and once the
 * loop runs every message is delivered, in order. */
static void test_backpressure(void **state)
{
    (void)state;
    enum { N = 400, SIZE = 2048, BOUND = 32 * 1024 };
    char *msg = malloc(SIZE);
    assert_non_null(msg);
    memset(msg, ' ', SIZE);
    memcpy(msg, end, sizeof end - 1);
    fake_frame *frames = calloc(N, sizeof *frames);
    assert_non_null(frames);
    for (int i = 0; i < N; i++)
        frames[i] = (fake_frame){msg, SIZE, true, false};
    seen w;
    seen_init(&w);
    int port = proc_free_port();
    fake_ari *f = fake_ari_start(port, USER, PASS, frames, N);
    assert_non_null(f);
    ari_stream_cfg cfg = {.host = "127.0.0.1",
                          .port = port,
                          .app = "queue",
                          .user = USER,
                          .password = PASS,
                          .max_queued_bytes = BOUND,
                          .on_event = on_event,
                          .on_connected = on_connected,
                          .on_disconnected = on_disconnected,
                          .ud = &w};
    ari_stream *s = NULL;
    assert_int_equal(ari_stream_new(w.base, &cfg, &s), 0);
    usleep(500 * 1000); /* the loop does not run: the queue fills up */
    int want = N;
    assert_true(run_until(&w, n_events, &want, 10000));
    ari_stream_stats st;
    ari_stream_get_stats(s, &st);
    print_message("queue peak %llu bytes of %d sent, %llu pauses\n",
                  (unsigned long long)st.queue_peak_bytes, N * SIZE,
                  (unsigned long long)st.rx_pauses);
    assert_int_equal(st.events, N);
    assert_int_equal(st.parse_errors, 0);
    assert_true(st.rx_pauses >= 1);
    assert_true(st.queue_peak_bytes < N * SIZE / 2);
    assert_int_equal(w.disconnected, 0);
    ari_stream_free(s);
    fake_ari_stop(f);
    event_base_free(w.base);
    free(frames);
    free(msg);
}

/* Idle pings are answered (the connection stays); a peer that stops
 * answering is dropped after twice the ping interval. */
static void test_idle_ping_and_dead_peer(void **state)
{
    (void)state;
    seen w;
    seen_init(&w);
    int port = proc_free_port();
    fake_ari *f = fake_ari_start(port, USER, PASS, script, 1);
    assert_non_null(f);
    ari_stream_cfg cfg = {.host = "127.0.0.1",
                          .port = port,
                          .app = "queue",
                          .user = USER,
                          .password = PASS,
                          .ping_interval_s = 1,
                          .on_event = on_event,
                          .on_connected = on_connected,
                          .on_disconnected = on_disconnected,
                          .ud = &w};
    ari_stream *s = NULL;
    assert_int_equal(ari_stream_new(w.base, &cfg, &s), 0);
    int one = 1;
    assert_true(run_until(&w, n_events, &one, 5000));
    run_until(&w, never, NULL, 3000); /* idle, pinged, answered */
    assert_int_equal(w.disconnected, 0);
    assert_true(ari_stream_is_connected(s));
    fake_ari_freeze(f, true);
    uint64_t t0 = clock_mono_ms();
    assert_true(run_until(&w, n_disconnected, &one, 6000));
    print_message("silent peer dropped after %llu ms (ping 1 s)\n",
                  (unsigned long long)(clock_mono_ms() - t0));
    ari_stream_free(s);
    fake_ari_freeze(f, false);
    fake_ari_stop(f);
    event_base_free(w.base);
}

/* The base URL the REST client takes works here too, with http.conf's
 * prefix; TLS and junk are refused up front. */
static void test_url_config(void **state)
{
    (void)state;
    seen w;
    seen_init(&w);
    int port = proc_free_port();
    fake_ari *f = fake_ari_start(port, USER, PASS, script, 1);
    assert_non_null(f);
    char url[128], path[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/asterisk/", port);
    ari_stream_cfg cfg = {.url = url,
                          .app = "queue",
                          .user = USER,
                          .password = PASS,
                          .on_event = on_event,
                          .on_connected = on_connected,
                          .ud = &w};
    ari_stream *s = NULL;
    assert_int_equal(ari_stream_new(w.base, &cfg, &s), 0);
    int one = 1;
    assert_true(run_until(&w, n_events, &one, 5000));
    fake_ari_last_path(f, path, sizeof path);
    assert_string_equal(path, "/asterisk/ari/events");
    ari_stream_free(s);

    snprintf(url, sizeof url, "ws://127.0.0.1:%d", port);
    assert_int_equal(ari_stream_new(w.base, &cfg, &s), 0);
    int two = 2;
    assert_true(run_until(&w, n_connected, &two, 5000));
    fake_ari_last_path(f, path, sizeof path);
    assert_string_equal(path, "/ari/events");
    ari_stream_free(s);

    const char *bad[] = {"https://127.0.0.1:8089", "wss://h", "not a url", "http://:80",
                         "http://127.0.0.1:0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg.url = bad[i];
        s = (ari_stream *)0x1;
        if (ari_stream_new(w.base, &cfg, &s) != ARIQ_EINVAL || s != (ari_stream *)0x1)
            fail_msg("url %s accepted", bad[i]);
    }
    fake_ari_stop(f);
    event_base_free(w.base);
}

/* A server that accepts and hangs up at once: every connect succeeds, yet
 * the retry delay keeps growing instead of restarting at the minimum. */
static void test_flapping_server_backs_off(void **state)
{
    (void)state;
    seen w;
    seen_init(&w);
    int port = proc_free_port();
    fake_ari *f = fake_ari_start(port, USER, PASS, script, 1);
    assert_non_null(f);
    fake_ari_set_hangup_after_script(f, true);
    ari_stream_cfg cfg = {.host = "127.0.0.1",
                          .port = port,
                          .app = "queue",
                          .user = USER,
                          .password = PASS,
                          .backoff_min_ms = 20,
                          .backoff_max_ms = 1000,
                          .on_event = on_event,
                          .on_connected = on_connected,
                          .on_disconnected = on_disconnected,
                          .ud = &w};
    ari_stream *s = NULL;
    assert_int_equal(ari_stream_new(w.base, &cfg, &s), 0);
    int five = 5;
    assert_true(run_until(&w, n_disconnected, &five, 5000));
    uint64_t first = w.t_downs[1] - w.t_downs[0], last = w.t_downs[4] - w.t_downs[3];
    print_message("gaps between drops: first %llu ms, fourth %llu ms\n",
                  (unsigned long long)first, (unsigned long long)last);
    assert_true(w.connected >= 4);
    assert_true(last >= 3 * first); /* ~20 -> ~160 ms; without the rule both ~20 */
    ari_stream_free(s);
    fake_ari_stop(f);
    event_base_free(w.base);
}

static void test_bad_config(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    ari_stream *s = (ari_stream *)0x1;
    ari_stream_cfg cfg = {
        .host = "127.0.0.1", .port = 0, .app = "queue", .on_event = on_event};
    assert_int_equal(ari_stream_new(base, &cfg, &s), ARIQ_EINVAL);
    cfg.port = 8088;
    cfg.on_event = NULL;
    assert_int_equal(ari_stream_new(base, &cfg, &s), ARIQ_EINVAL);
    cfg.on_event = on_event;
    cfg.app = "";
    assert_int_equal(ari_stream_new(base, &cfg, &s), ARIQ_EINVAL);
    assert_int_equal(ari_stream_new(NULL, &cfg, &s), ARIQ_EINVAL);
    assert_ptr_equal(s, (ari_stream *)0x1);
    ari_stream_free(NULL);
    event_base_free(base);
}

int main(void)
{
    log_set_sink(log_capture, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_in_order),
        cmocka_unit_test(test_basic_auth),
        cmocka_unit_test(test_oversize_message),
        cmocka_unit_test(test_large_single_frame),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_wrong_password_refused),
        cmocka_unit_test(test_401_logged_and_retried),
        cmocka_unit_test(test_refused_and_backoff_cap),
        cmocka_unit_test(test_free_inside_callback),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_idle_ping_and_dead_peer),
        cmocka_unit_test(test_url_config),
        cmocka_unit_test(test_flapping_server_backs_off),
        cmocka_unit_test(test_bad_config),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    log_set_sink(NULL, NULL);
    return rc;
}
