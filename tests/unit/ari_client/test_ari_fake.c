/* test_ari_fake.c - the scripted test transport keeps the same contract as
 * the real client: recorded in order, answered only when the test says,
 * never synchronously, ECLOSED for what is pending at free, deferred free
 * from inside a callback. This is how a leg's state machine is driven with no
 * sockets: a callback that answers a channel and then plays to it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "ari/client.h"
#include "core/err.h"

typedef struct leg {
    int step;          /* 0 answering, 1 playing, 2 done, -1 gone */
    int calls;
    int eclosed;
    long last_status;
    char last_msg[64];
    char last_pb[64];
} leg;

/* A tiny "state machine": answer, then play, then done; 404 means gone. */
static void leg_cb(ari_rest *rest, const ari_response *r, void *pd)
{
    leg *l = pd;
    const char *media[] = {"sound:queue-youarenext"};

    l->calls++;
    l->last_status = r->status;
    snprintf(l->last_msg, sizeof l->last_msg, "%s", ari_response_message(r));
    if (r->err == ARIQ_ECLOSED) {
        l->eclosed++;
        return;
    }
    if (r->status == 404) {
        l->step = -1;
        return;
    }
    if (l->step == 0 && r->status == 204) {
        l->step = 1;
        assert_int_equal(ari_channel_play(rest, "c1", "pb-1", media, 1, NULL, leg_cb, l), 0);
    } else if (l->step == 1 && r->status == 201) {
        snprintf(l->last_pb, sizeof l->last_pb, "%s",
                 json_string_value(json_object_get(r->json, "id")));
        l->step = 2;
    }
}

static void test_drive_a_leg(void **state)
{
    ari_fake *f = ari_fake_new();
    leg l = {0};
    (void)state;

    assert_int_equal(ari_channel_answer(ari_fake_rest(f), "c1", leg_cb, &l), 0);
    assert_int_equal(l.calls, 0); /* nothing happens until the test answers */
    assert_int_equal(ari_fake_count(f), 1);
    assert_string_equal(ari_fake_method(f, 0), "POST");
    assert_string_equal(ari_fake_path(f, 0), "/channels/c1/answer");
    assert_int_equal(ari_fake_respond(f, 0, 204, NULL), 0);
    assert_int_equal(l.step, 1);
    assert_true(ari_fake_answered(f, 0));
    assert_int_equal(ari_fake_respond(f, 0, 204, NULL), ARIQ_ESTATE);
    long i = ari_fake_find(f, "POST", "/channels/c1/play");
    assert_int_equal(i, 1);
    assert_string_equal(ari_fake_path(f, 1), "/channels/c1/play/pb-1?media=sound%3Aqueue-youarenext");
    assert_int_equal(ari_fake_respond(f, 1, 201, "{\"id\":\"pb-1\",\"state\":\"queued\"}"), 0);
    assert_int_equal(l.step, 2);
    assert_string_equal(l.last_pb, "pb-1");
    assert_int_equal(ari_fake_pending(f), 0);
    assert_int_equal(ari_fake_respond(f, 7, 200, NULL), ARIQ_ENOTFOUND);
    assert_null(ari_fake_path(f, 7));
    ari_fake_free(f);
}

static void test_gone_and_transport_failure(void **state)
{
    ari_fake *f = ari_fake_new();
    leg l = {0};
    (void)state;

    assert_int_equal(ari_channel_answer(ari_fake_rest(f), "c1", leg_cb, &l), 0);
    assert_int_equal(ari_fake_respond(f, 0, 404, "{\"message\":\"Channel not found\"}"), 0);
    assert_int_equal(l.step, -1);
    assert_string_equal(l.last_msg, "Channel not found");

    assert_int_equal(ari_channel_answer(ari_fake_rest(f), "c1", leg_cb, &l), 0);
    assert_int_equal(ari_fake_fail(f, 1, ARIQ_ETIMEDOUT), 0);
    assert_int_equal(l.last_status, 0);
    assert_int_equal(l.calls, 2);
    ari_fake_free(f);
}

static void test_refuse_and_free_pending(void **state)
{
    ari_fake *f = ari_fake_new();
    leg l = {0};
    json_t *vars = json_pack("{s:s}", "A", "1");
    ari_originate o = {.endpoint = "Local/1@x", .variables = vars};
    (void)state;

    ari_fake_refuse(f, ARIQ_EIO);
    assert_int_equal(ari_channel_answer(ari_fake_rest(f), "c1", leg_cb, &l), ARIQ_EIO);
    assert_int_equal(ari_fake_count(f), 0);
    ari_fake_refuse(f, 0);
    assert_int_equal(ari_channel_originate(ari_fake_rest(f), &o, leg_cb, &l), 0);
    assert_string_equal(ari_fake_body(f, 0), "{\"variables\":{\"A\":\"1\"}}");
    json_decref(vars);
    assert_int_equal(ari_channel_answer(ari_fake_rest(f), "c2", leg_cb, &l), 0);
    assert_int_equal(ari_fake_find(f, NULL, "/channels/c2"), 1);
    assert_int_equal(ari_fake_find(f, "GET", NULL), -1);
    ari_fake_free(f);
    assert_int_equal(l.calls, 2);
    assert_int_equal(l.eclosed, 2);
    ari_fake_free(NULL);
}

typedef struct freer {
    ari_fake *f;
    int calls, eclosed, refused;
} freer;

static void freer_cb(ari_rest *rest, const ari_response *r, void *pd)
{
    freer *x = pd;

    x->calls++;
    if (r->err == ARIQ_ECLOSED)
        x->eclosed++;
    ari_fake_free(x->f); /* deferred until this callback returns */
    if (ari_asterisk_info(rest, freer_cb, x) == ARIQ_ECLOSED)
        x->refused++;
}

static void test_free_inside_callback(void **state)
{
    freer x = {0};
    (void)state;

    x.f = ari_fake_new();
    for (int i = 0; i < 3; i++)
        assert_int_equal(ari_asterisk_info(ari_fake_rest(x.f), freer_cb, &x), 0);
    assert_int_equal(ari_fake_respond(x.f, 0, 200, "{}"), 0); /* frees x.f */
    assert_int_equal(x.calls, 3);
    assert_int_equal(x.eclosed, 2);
    assert_int_equal(x.refused, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drive_a_leg),
        cmocka_unit_test(test_gone_and_transport_failure),
        cmocka_unit_test(test_refuse_and_free_pending),
        cmocka_unit_test(test_free_inside_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
