/* test_ari_paths.c - every typed wrapper builds the method, path, query and
 * body Asterisk 22 expects (see shared/ari/samples/http-status.txt), escapes
 * what it must, and refuses bad arguments without calling back.
 *
 * Runs over a fake ari_rest transport that records the request: this is also
 * the example of driving code with no sockets (STYLE habit 12). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ari/client.h"
#include "core/err.h"

typedef struct fake {
    char method[16];
    char path[4096];
    char *body;          /* serialized JSON or NULL */
    int calls;
    int fail_with;       /* returned by request() when non-zero */
} fake;

static int fake_request(void *impl, const char *method, const char *path,
                        const json_t *body, ari_cb cb, void *pd)
{
    fake *f = impl;

    (void)cb;
    (void)pd;
    if (f->fail_with)
        return f->fail_with;
    f->calls++;
    snprintf(f->method, sizeof f->method, "%s", method);
    snprintf(f->path, sizeof f->path, "%s", path);
    free(f->body);
    f->body = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    return 0;
}

static const ari_rest_ops fake_ops = {.request = fake_request};

static int setup(void **state)
{
    static fake f;
    static ari_rest rest;

    memset(&f, 0, sizeof f);
    rest.ops = &fake_ops;
    rest.impl = &f;
    *state = &rest;
    return 0;
}

static int teardown(void **state)
{
    ari_rest *rest = *state;
    fake *f = rest->impl;

    free(f->body);
    f->body = NULL;
    return 0;
}

static void never_cb(ari_rest *r, const ari_response *resp, void *pd)
{
    (void)r;
    (void)resp;
    (void)pd;
    fail_msg("callback must not run");
}

#define EXPECT(rest, m, p)                                           \
    do {                                                             \
        fake *f_ = (rest)->impl;                                     \
        assert_string_equal(f_->method, (m));                        \
        assert_string_equal(f_->path, (p));                          \
    } while (0)

static void test_channels_simple(void **state)
{
    ari_rest *r = *state;

    assert_int_equal(ari_channel_list(r, never_cb, NULL), 0);
    EXPECT(r, "GET", "/channels");
    assert_int_equal(ari_channel_get(r, "1795384614.39", never_cb, NULL), 0);
    EXPECT(r, "GET", "/channels/1795384614.39");
    assert_int_equal(ari_channel_answer(r, "1795384614.39", never_cb, NULL), 0);
    EXPECT(r, "POST", "/channels/1795384614.39/answer");
    assert_int_equal(ari_channel_hangup(r, "c1", NULL, never_cb, NULL), 0);
    EXPECT(r, "DELETE", "/channels/c1");
    assert_int_equal(ari_channel_hangup(r, "c1", "normal", never_cb, NULL), 0);
    EXPECT(r, "DELETE", "/channels/c1?reason=normal");
    assert_int_equal(ari_channel_moh_start(r, "c1", "default", never_cb, NULL), 0);
    EXPECT(r, "POST", "/channels/c1/moh?mohClass=default");
    assert_int_equal(ari_channel_moh_start(r, "c1", NULL, never_cb, NULL), 0);
    EXPECT(r, "POST", "/channels/c1/moh");
    assert_int_equal(ari_channel_moh_stop(r, "c1", never_cb, NULL), 0);
    EXPECT(r, "DELETE", "/channels/c1/moh");
}

static void test_channel_continue(void **state)
{
    ari_rest *r = *state;

    assert_int_equal(ari_channel_continue(r, "c1", NULL, NULL, 0, NULL, NULL, NULL), 0);
    EXPECT(r, "POST", "/channels/c1/continue");
    assert_int_equal(ari_channel_continue(r, "c1", "queue-out", "s", 2, "next",
                                          NULL, NULL), 0);
    EXPECT(r, "POST", "/channels/c1/continue?context=queue-out&extension=s&priority=2&label=next");
    assert_int_equal(ari_channel_continue(r, "c1", NULL, "100", 0, NULL, NULL, NULL), 0);
    EXPECT(r, "POST", "/channels/c1/continue?extension=100");
}

static void test_channel_play(void **state)
{
    ari_rest *r = *state;
    const char *list[] = {"sound:queue-thereare", "number:3", "sound:queue-callswaiting"};
    const char *one[] = {"sound:beep"};

    assert_int_equal(ari_channel_play(r, "c1", NULL, list, 3, NULL, never_cb, NULL), 0);
    /* one media= with a comma-joined list, each item escaped */
    EXPECT(r, "POST", "/channels/c1/play?media=sound%3Aqueue-thereare,number%3A3,"
                      "sound%3Aqueue-callswaiting");
    assert_int_equal(ari_channel_play(r, "c1", "my-pb-1", one, 1, "en", never_cb, NULL), 0);
    EXPECT(r, "POST", "/channels/c1/play/my-pb-1?media=sound%3Abeep&lang=en");
    /* a comma inside an item cannot be confused with the separator */
    const char *comma[] = {"sound:a,b"};
    assert_int_equal(ari_channel_play(r, "c1", NULL, comma, 1, NULL, NULL, NULL), 0);
    EXPECT(r, "POST", "/channels/c1/play?media=sound%3Aa%2Cb");
}

static void test_channel_vars(void **state)
{
    ari_rest *r = *state;

    assert_int_equal(ari_channel_set_var(r, "c1", "QUEUESTATUS", "TIMEOUT", NULL, NULL), 0);
    EXPECT(r, "POST", "/channels/c1/variable?variable=QUEUESTATUS&value=TIMEOUT");
    assert_int_equal(ari_channel_set_var(r, "c1", "X", "a b&c=d", NULL, NULL), 0);
    EXPECT(r, "POST", "/channels/c1/variable?variable=X&value=a%20b%26c%3Dd");
    assert_int_equal(ari_channel_set_var(r, "c1", "X", "", NULL, NULL), 0);
    EXPECT(r, "POST", "/channels/c1/variable?variable=X&value=");
    assert_int_equal(ari_channel_get_var(r, "c1", "CHANNEL(state)", NULL, NULL), 0);
    EXPECT(r, "GET", "/channels/c1/variable?variable=CHANNEL%28state%29");
}

static void test_originate(void **state)
{
    ari_rest *r = *state;
    fake *f = r->impl;
    ari_originate o = {
        .endpoint = "IAX2/node2/p-1@queue-link",
        .app = "queue",
        .app_args = "link,p-1",
        .caller_id = "Agent <100>",
        .timeout_s = 20,
    };

    assert_int_equal(ari_channel_originate(r, &o, NULL, NULL), 0);
    EXPECT(r, "POST", "/channels?endpoint=IAX2%2Fnode2%2Fp-1%40queue-link&app=queue"
                      "&appArgs=link%2Cp-1&callerId=Agent%20%3C100%3E&timeout=20");
    assert_null(f->body);

    json_t *vars = json_pack("{s:s}", "QUEUE_PAIRING", "p-1");
    o.channel_id = "link-p-1";
    o.other_channel_id = "link-p-1-b";
    o.variables = vars;
    assert_int_equal(ari_channel_originate(r, &o, NULL, NULL), 0);
    EXPECT(r, "POST", "/channels/link-p-1?endpoint=IAX2%2Fnode2%2Fp-1%40queue-link"
                      "&app=queue&appArgs=link%2Cp-1&callerId=Agent%20%3C100%3E"
                      "&timeout=20&otherChannelId=link-p-1-b");
    assert_string_equal(f->body, "{\"variables\":{\"QUEUE_PAIRING\":\"p-1\"}}");
    assert_int_equal(vars->refcount, 1); /* the caller's reference only */
    json_decref(vars);

    ari_originate dp = {.endpoint = "Local/100@agents", .context = "agents",
                        .extension = "100", .priority = 1};
    assert_int_equal(ari_channel_originate(r, &dp, NULL, NULL), 0);
    EXPECT(r, "POST", "/channels?endpoint=Local%2F100%40agents&extension=100"
                      "&context=agents&priority=1");
}

static void test_bridges(void **state)
{
    ari_rest *r = *state;
    const char *two[] = {"1795384614.39", "1795384628.48"};
    const char *media[] = {"sound:beep"};

    assert_int_equal(ari_bridge_list(r, NULL, NULL), 0);
    EXPECT(r, "GET", "/bridges");
    assert_int_equal(ari_bridge_create(r, NULL, "holding", "hold1", NULL, NULL), 0);
    EXPECT(r, "POST", "/bridges?type=holding&name=hold1");
    assert_int_equal(ari_bridge_create(r, "b-1", "mixing", NULL, NULL, NULL), 0);
    EXPECT(r, "POST", "/bridges/b-1?type=mixing");
    assert_int_equal(ari_bridge_create(r, NULL, "mixing,dtmf_events", NULL, NULL, NULL), 0);
    EXPECT(r, "POST", "/bridges?type=mixing%2Cdtmf_events");
    assert_int_equal(ari_bridge_get(r, "b-1", NULL, NULL), 0);
    EXPECT(r, "GET", "/bridges/b-1");
    assert_int_equal(ari_bridge_destroy(r, "b-1", NULL, NULL), 0);
    EXPECT(r, "DELETE", "/bridges/b-1");
    assert_int_equal(ari_bridge_add_channel(r, "b-1", two, 2, NULL, NULL, NULL), 0);
    EXPECT(r, "POST", "/bridges/b-1/addChannel?channel=1795384614.39,1795384628.48");
    assert_int_equal(ari_bridge_add_channel(r, "b-1", two, 1, "announcer", NULL, NULL), 0);
    EXPECT(r, "POST", "/bridges/b-1/addChannel?channel=1795384614.39&role=announcer");
    assert_int_equal(ari_bridge_remove_channel(r, "b-1", two + 1, 1, NULL, NULL), 0);
    EXPECT(r, "POST", "/bridges/b-1/removeChannel?channel=1795384628.48");
    assert_int_equal(ari_bridge_moh_start(r, "b-1", "default", NULL, NULL), 0);
    EXPECT(r, "POST", "/bridges/b-1/moh?mohClass=default");
    assert_int_equal(ari_bridge_moh_stop(r, "b-1", NULL, NULL), 0);
    EXPECT(r, "DELETE", "/bridges/b-1/moh");
    assert_int_equal(ari_bridge_play(r, "b-1", NULL, media, 1, NULL, NULL, NULL), 0);
    EXPECT(r, "POST", "/bridges/b-1/play?media=sound%3Abeep");
    assert_int_equal(ari_bridge_play(r, "b-1", "pb 2", media, 1, NULL, NULL, NULL), 0);
    EXPECT(r, "POST", "/bridges/b-1/play/pb%202?media=sound%3Abeep");
}

static void test_bridge_record(void **state)
{
    ari_rest *r = *state;
    ari_record_opts o = {.name = "test1", .format = "wav"};

    assert_int_equal(ari_bridge_record(r, "b-1", &o, NULL, NULL), 0);
    EXPECT(r, "POST", "/bridges/b-1/record?name=test1&format=wav");
    o.max_duration_s = 30;
    o.max_silence_s = 5;
    o.if_exists = "overwrite";
    o.beep = true;
    o.terminate_on = "#";
    assert_int_equal(ari_bridge_record(r, "b-1", &o, NULL, NULL), 0);
    EXPECT(r, "POST", "/bridges/b-1/record?name=test1&format=wav&maxDurationSeconds=30"
                      "&maxSilenceSeconds=5&ifExists=overwrite&beep=true&terminateOn=%23");
}

static void test_playbacks_recordings(void **state)
{
    ari_rest *r = *state;

    assert_int_equal(ari_playback_get(r, "my-pb-1", NULL, NULL), 0);
    EXPECT(r, "GET", "/playbacks/my-pb-1");
    assert_int_equal(ari_playback_stop(r, "my-pb-1", NULL, NULL), 0);
    EXPECT(r, "DELETE", "/playbacks/my-pb-1");
    assert_int_equal(ari_recording_live_get(r, "test1", NULL, NULL), 0);
    EXPECT(r, "GET", "/recordings/live/test1");
    assert_int_equal(ari_recording_stop(r, "test1", NULL, NULL), 0);
    EXPECT(r, "POST", "/recordings/live/test1/stop");
    assert_int_equal(ari_recording_pause(r, "test1", NULL, NULL), 0);
    EXPECT(r, "POST", "/recordings/live/test1/pause");
    assert_int_equal(ari_recording_unpause(r, "test1", NULL, NULL), 0);
    EXPECT(r, "DELETE", "/recordings/live/test1/pause");
    assert_int_equal(ari_recording_cancel(r, "test1", NULL, NULL), 0);
    EXPECT(r, "DELETE", "/recordings/live/test1");
    assert_int_equal(ari_recording_stored_get(r, "test1", NULL, NULL), 0);
    EXPECT(r, "GET", "/recordings/stored/test1");
    assert_int_equal(ari_recording_stored_delete(r, "test1", NULL, NULL), 0);
    EXPECT(r, "DELETE", "/recordings/stored/test1");
    assert_int_equal(ari_asterisk_info(r, NULL, NULL), 0);
    EXPECT(r, "GET", "/asterisk/info");
}

/* Path segments are escaped so an id can never reach another resource. */
static void test_segment_escaping(void **state)
{
    ari_rest *r = *state;

    assert_int_equal(ari_channel_get(r, "../bridges", NULL, NULL), 0);
    EXPECT(r, "GET", "/channels/..%2Fbridges");
    assert_int_equal(ari_channel_answer(r, "a?b#c", NULL, NULL), 0);
    EXPECT(r, "POST", "/channels/a%3Fb%23c/answer");
    assert_int_equal(ari_recording_pause(r, "q/1 2", NULL, NULL), 0);
    EXPECT(r, "POST", "/recordings/live/q%2F1%202/pause");
}

/* Bad arguments: a negative error and no request (so no callback). */
static void test_bad_arguments(void **state)
{
    ari_rest *r = *state;
    fake *f = r->impl;
    const char *media[] = {"sound:beep", ""};
    const char *nul[] = {NULL};
    ari_originate no_ep = {.app = "queue"};
    ari_record_opts no_fmt = {.name = "x"};
    int before = f->calls;

    assert_int_equal(ari_channel_get(r, NULL, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_channel_answer(r, "", never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_channel_play(r, "c1", NULL, media, 0, NULL, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_channel_play(r, "c1", NULL, media, 2, NULL, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_channel_play(r, "c1", NULL, NULL, 1, NULL, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_channel_play(r, "c1", "", media, 1, NULL, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_bridge_add_channel(r, "b", nul, 1, NULL, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_channel_set_var(r, "c1", NULL, "v", never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_channel_originate(r, &no_ep, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_channel_originate(r, NULL, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_bridge_record(r, "b", &no_fmt, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_bridge_record(r, "b", NULL, never_cb, NULL), ARIQ_EINVAL);
    json_t *arr = json_array();
    ari_originate bad_vars = {.endpoint = "x", .variables = arr};
    assert_int_equal(ari_channel_originate(r, &bad_vars, never_cb, NULL), ARIQ_EINVAL);
    json_decref(arr);
    assert_int_equal(ari_rest_request(r, "GET", "channels", NULL, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_rest_request(NULL, "GET", "/channels", NULL, never_cb, NULL), ARIQ_EINVAL);
    assert_int_equal(f->calls, before);
}

/* A path too long for the builder is refused, not truncated. */
static void test_too_long(void **state)
{
    ari_rest *r = *state;
    fake *f = r->impl;
    char *big = malloc(3000);
    int before = f->calls;

    memset(big, '/', 2999);   /* escapes to 3 bytes each */
    big[2999] = '\0';
    assert_int_equal(ari_channel_get(r, big, never_cb, NULL), ARIQ_ERANGE);
    assert_int_equal(f->calls, before);
    free(big);
}

/* The transport's own error comes back unchanged, callback untouched. */
static void test_transport_error_passthrough(void **state)
{
    ari_rest *r = *state;
    fake *f = r->impl;

    f->fail_with = ARIQ_ECLOSED;
    assert_int_equal(ari_channel_answer(r, "c1", never_cb, NULL), ARIQ_ECLOSED);
    f->fail_with = 0;
}

static void test_response_message(void **state)
{
    ari_response r = {0};
    (void)state;

    assert_string_equal(ari_response_message(&r), "");
    r.error = "Connection refused";
    assert_string_equal(ari_response_message(&r), "Connection refused");
    r.json = json_pack("{s:s}", "message", "Channel not found");
    assert_string_equal(ari_response_message(&r), "Channel not found");
    json_decref(r.json);
    assert_string_equal(ari_response_message(NULL), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_channels_simple, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_play, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_vars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_originate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bridges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bridge_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_playbacks_recordings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_error_passthrough, setup, teardown),
        cmocka_unit_test(test_response_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
