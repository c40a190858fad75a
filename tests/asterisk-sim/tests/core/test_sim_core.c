/* test_sim_core.c - the simulator core's behaviour on a virtual clock: the
 * Asterisk quirks the queue depends on, the control API and the oracle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/clock.h"
#include "vhost.h"

#define T0 1795575200000ull

typedef struct fx {
    vhost *vh;
    sim *s;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    f->vh = vhost_new(T0, 1.0);
    f->s = vhost_sim(f->vh);
    assert_int_equal(sim_node_add(f->s, "node1", "02:fc:00:00:00:01"), 0);
    assert_int_equal(sim_node_add(f->s, "node2", "02:fc:00:00:00:02"), 1);
    for (int n = 0; n < 2; n++) {
        sim_app_attach(f->s, n, "queue");
        assert_int_equal(sim_dialplan_add(f->s, n, "accept-link", "queue", "link,{exten}"), 0);
    }
    assert_int_equal(sim_peer_add(f->s, "IAX2/node2", 1), 0);
    assert_int_equal(sim_peer_add(f->s, "IAX2/node1", 0), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    vhost_free(f->vh);
    free(f);
    return 0;
}

/* Sends a request and returns the status; *out gets the body if wanted. */
static int req(fx *f, int node, const char *method, const char *path, const char *body,
               json_t **out)
{
    int st;
    json_t *j = vhost_req(f->vh, node, method, path, body, &st);
    if (out)
        *out = j;
    else
        json_decref(j);
    return st;
}

static void call(fx *f, int node, const char *id, const char *args)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"app\":\"queue\",\"args\":\"%s\",\"channel_id\":\"%s\"}", args,
             id);
    assert_int_equal(req(f, node, "POST", "/sim/calls", body, NULL), 201);
}

static const char *types(fx *f, const char *id)
{
    static char buf[4096];
    return vhost_chan_types(f->vh, id, buf, sizeof(buf));
}

/* Types of events about playback / recording `id`, space separated. */
static const char *obj_types(fx *f, const char *field, const char *key, const char *id)
{
    static char buf[4096];
    size_t i, off = 0;
    json_t *e;
    buf[0] = 0;
    json_array_foreach(vhost_events(f->vh), i, e)
    {
        json_t *ev = json_object_get(e, "event");
        const char *v = json_string_value(json_object_get(json_object_get(ev, field), key));
        if (v && !strcmp(v, id))
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s/%s", off ? " " : "",
                                    json_string_value(json_object_get(ev, "type")),
                                    json_string_value(json_object_get(
                                        json_object_get(ev, field), "state")));
    }
    return buf;
}

static json_t *timeline(fx *f, const char *id)
{
    char path[256];
    json_t *o;
    snprintf(path, sizeof(path), "/sim/channels/%s", id);
    assert_int_equal(req(f, 0, "GET", path, NULL, &o), 200);
    return o;
}

/* The oracle entries of `ev` kind for channel id, as "a b c" of field. */
static const char *tl(fx *f, const char *id, const char *ev, const char *field)
{
    static char buf[2048];
    json_t *o = timeline(f, id), *e;
    size_t i, off = 0;
    buf[0] = 0;
    json_array_foreach(json_object_get(o, "timeline"), i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "ev")), ev))
            continue;
        json_t *v = json_object_get(e, field);
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s", off ? " " : "",
                                json_is_string(v) ? json_string_value(v) : json_is_null(v) ? "null" : "?");
    }
    json_decref(o);
    return buf;
}

static bool hearing_moh(fx *f, const char *id)
{
    json_t *o = timeline(f, id);
    bool b = json_is_true(json_object_get(o, "hearing_moh"));
    json_decref(o);
    return b;
}

static char *make_bridge(fx *f, int node, const char *type)
{
    char path[128];
    json_t *b;
    snprintf(path, sizeof(path), "/ari/bridges?type=%s&name=b", type);
    assert_int_equal(req(f, node, "POST", path, NULL, &b), 200);
    char *id = strdup(json_string_value(json_object_get(b, "id")));
    json_decref(b);
    return id;
}

static void add(fx *f, int node, const char *bridge, const char *chans)
{
    char path[640];
    snprintf(path, sizeof(path), "/ari/bridges/%s/addChannel?channel=%s", bridge, chans);
    assert_int_equal(req(f, node, "POST", path, NULL, NULL), 204);
}

static json_int_t state_count(fx *f, const char *what)
{
    json_t *o;
    assert_int_equal(req(f, 0, "GET", "/sim/state", NULL, &o), 200);
    json_int_t n = json_integer_value(json_object_get(o, what));
    json_decref(o);
    return n;
}

static void test_answer_ring_to_up(void **state)
{
    fx *f = *state;
    json_t *ch;
    call(f, 0, "c1", "caller,support");
    assert_int_equal(req(f, 0, "GET", "/ari/channels/c1", NULL, &ch), 200);
    assert_string_equal(json_string_value(json_object_get(ch, "state")), "Ring");
    json_decref(ch);
    assert_int_equal(req(f, 0, "POST", "/ari/channels/c1/answer", NULL, NULL), 204);
    assert_int_equal(req(f, 0, "POST", "/ari/channels/c1/answer", NULL, NULL), 204);
    assert_string_equal(types(f, "c1"), "StasisStart ChannelStateChange");
    json_t *ev = json_object_get(json_array_get(vhost_events(f->vh), 0), "event");
    assert_string_equal(json_string_value(json_array_get(json_object_get(ev, "args"), 1)),
                        "support");
    assert_string_equal(tl(f, "c1", "state", "state"), "Up");
}

static void test_play_list_events(void **state)
{
    fx *f = *state;
    json_t *pb;
    call(f, 0, "c1", "caller");
    assert_int_equal(req(f, 0, "POST",
                         "/ari/channels/c1/play/pb1?media=sound:queue-thereare,number:3,"
                         "sound:queue-callswaiting",
                         NULL, &pb),
                     201);
    assert_string_equal(json_string_value(json_object_get(pb, "next_media_uri")), "number:3");
    assert_string_equal(json_string_value(json_object_get(pb, "state")), "queued");
    json_decref(pb);
    vhost_advance(f->vh, 774);
    assert_string_equal(obj_types(f, "playback", "id", "pb1"), "PlaybackStarted/playing");
    vhost_advance(f->vh, 10000);
    assert_string_equal(obj_types(f, "playback", "id", "pb1"),
                        "PlaybackStarted/playing PlaybackContinuing/continuing "
                        "PlaybackStarted/playing PlaybackContinuing/continuing "
                        "PlaybackStarted/playing PlaybackFinished/done");
    assert_string_equal(tl(f, "c1", "sound", "media"),
                        "sound:queue-thereare number:3 sound:queue-callswaiting");
    assert_string_equal(tl(f, "c1", "sound", "result"), "finished finished finished");
    /* repeated media= keeps the last; JSON body lists work too */
    assert_int_equal(req(f, 0, "POST", "/ari/channels/c1/play?media=sound:beep&media=number:4",
                         NULL, &pb), 201);
    assert_string_equal(json_string_value(json_object_get(pb, "media_uri")), "number:4");
    json_decref(pb);
    assert_int_equal(req(f, 0, "POST", "/ari/channels/c1/play",
                         "{\"media\":[\"sound:beep\",\"number:42\"]}", &pb), 201);
    assert_string_equal(json_string_value(json_object_get(pb, "next_media_uri")), "number:42");
    json_decref(pb);
    assert_int_equal(req(f, 0, "POST", "/ari/channels/c1/play", NULL, NULL), 500);
}

static void test_playback_stop_failed_bogus(void **state)
{
    fx *f = *state;
    call(f, 0, "c1", "caller");
    req(f, 0, "POST", "/ari/channels/c1/play/p1?media=sound:queue-youarenext", NULL, NULL);
    vhost_advance(f->vh, 500);
    assert_int_equal(req(f, 0, "DELETE", "/ari/playbacks/p1", NULL, NULL), 204);
    assert_int_equal(req(f, 0, "DELETE", "/ari/playbacks/p1", NULL, NULL), 404);
    assert_string_equal(obj_types(f, "playback", "id", "p1"),
                        "PlaybackStarted/playing PlaybackFinished/done");
    assert_string_equal(tl(f, "c1", "sound", "result"), "cut");
    assert_int_equal(req(f, 0, "POST", "/ari/channels/c1/play/p2?media=sound:no-such-file",
                         NULL, NULL), 201);
    assert_string_equal(obj_types(f, "playback", "id", "p2"),
                        "PlaybackStarted/playing PlaybackFinished/failed");
    assert_int_equal(req(f, 0, "POST", "/ari/channels/c1/play/p3?media=bogus:xyz", NULL, NULL),
                     201);
    vhost_advance(f->vh, 600000);
    assert_string_equal(obj_types(f, "playback", "id", "p3"), "PlaybackStarted/playing");
}

static void test_holding_moh_announcer(void **state)
{
    fx *f = *state;
    char *h = make_bridge(f, 0, "holding");
    call(f, 0, "c1", "caller");
    call(f, 0, "c2", "caller");
    char path[256];
    snprintf(path, sizeof(path), "/ari/bridges/%s/moh?mohClass=default", h);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 204); /* empty: announcer leaves */
    add(f, 0, h, "c1");
    assert_false(hearing_moh(f, "c1"));
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 204);
    assert_true(hearing_moh(f, "c1"));
    add(f, 0, h, "c2");
    assert_true(hearing_moh(f, "c2"));
    /* a channel playback: only that channel loses MOH, until it ends */
    req(f, 0, "POST", "/ari/channels/c1/play?media=sound:beep", NULL, NULL);
    assert_false(hearing_moh(f, "c1"));
    assert_true(hearing_moh(f, "c2"));
    vhost_advance(f->vh, 300);
    assert_true(hearing_moh(f, "c1"));
    /* emptied bridge: the next joiner hears silence */
    snprintf(path, sizeof(path), "/ari/bridges/%s/removeChannel?channel=c1,c2", h);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 204);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 422);
    add(f, 0, h, "c1");
    assert_false(hearing_moh(f, "c1"));
    assert_string_equal(tl(f, "c1", "moh_on", "ev"), "moh_on moh_on");
    snprintf(path, sizeof(path), "/ari/bridges/nosuch/moh?mohClass=default");
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 404);
    snprintf(path, sizeof(path), "/ari/bridges/%s/moh?mohClass=nosuchclass", h);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 204);
    free(h);
}

static void test_addchannel_waits_for_playback(void **state)
{
    fx *f = *state;
    char *h = make_bridge(f, 0, "holding"), *m = make_bridge(f, 0, "mixing");
    call(f, 0, "c1", "caller");
    call(f, 0, "a1", "agent");
    add(f, 0, h, "c1");
    req(f, 0, "POST", "/ari/channels/c1/play/p1?media=sound:queue-youarenext", NULL, NULL);
    add(f, 0, m, "c1,a1");
    assert_string_equal(types(f, "c1"), "StasisStart ChannelEnteredBridge");
    assert_string_equal(types(f, "a1"), "StasisStart ChannelEnteredBridge");
    vhost_advance(f->vh, 4240);
    assert_string_equal(types(f, "c1"), "StasisStart ChannelEnteredBridge");
    vhost_advance(f->vh, 1);
    assert_string_equal(types(f, "c1"),
                        "StasisStart ChannelEnteredBridge ChannelLeftBridge ChannelEnteredBridge");
    /* DELETE the playback first: the move happens at once */
    call(f, 0, "c2", "caller");
    add(f, 0, h, "c2");
    req(f, 0, "POST", "/ari/channels/c2/play/p2?media=sound:queue-youarenext", NULL, NULL);
    assert_int_equal(req(f, 0, "DELETE", "/ari/playbacks/p2", NULL, NULL), 204);
    add(f, 0, m, "c2");
    assert_string_equal(types(f, "c2"),
                        "StasisStart ChannelEnteredBridge ChannelLeftBridge ChannelEnteredBridge");
    free(h);
    free(m);
}

static void test_mixing_dtmf_and_connected(void **state)
{
    fx *f = *state;
    char *m = make_bridge(f, 0, "mixing"), *h = make_bridge(f, 0, "holding");
    call(f, 0, "c1", "caller");
    call(f, 0, "a1", "agent");
    add(f, 0, h, "c1,a1");
    json_t *o;
    assert_int_equal(req(f, 0, "GET", "/sim/connected?a=c1&b=a1", NULL, &o), 200);
    assert_false(json_is_true(json_object_get(o, "connected")));
    json_decref(o);
    add(f, 0, m, "c1,a1");
    assert_int_equal(req(f, 0, "GET", "/sim/connected?a=c1&b=a1", NULL, &o), 200);
    assert_true(json_is_true(json_object_get(o, "connected")));
    json_decref(o);
    assert_int_equal(req(f, 0, "POST", "/sim/channels/a1/dtmf", "{\"digits\":\"5#\"}", NULL), 204);
    assert_string_equal(tl(f, "c1", "dtmf_heard", "digit"), "5 #");
    assert_string_equal(tl(f, "a1", "dtmf_sent", "digit"), "5 #");
    const char *t = types(f, "a1");
    assert_non_null(strstr(t, "ChannelDtmfReceived ChannelDtmfReceived"));
    /* BRIDGEPEER noise as Asterisk sends it: each member gets the other */
    size_t i;
    json_t *e;
    int peers = 0;
    json_array_foreach(vhost_events(f->vh), i, e)
    {
        json_t *ev = json_object_get(e, "event");
        const char *v = json_string_value(json_object_get(ev, "variable"));
        if (v && !strcmp(v, "BRIDGEPEER") &&
            strstr(json_string_value(json_object_get(ev, "value")), "Local/s@sim"))
            peers++;
    }
    assert_int_equal(peers, 2);
    free(m);
    free(h);
}

static void test_recording_spans(void **state)
{
    fx *f = *state;
    char *m = make_bridge(f, 0, "mixing");
    char path[256];
    call(f, 0, "c1", "caller");
    add(f, 0, m, "c1");
    snprintf(path, sizeof(path), "/ari/bridges/%s/record?name=r1&format=wav", m);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 201);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 409);
    snprintf(path, sizeof(path), "/ari/bridges/%s/record?name=r9&format=bogusfmt", m);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 422);
    vhost_advance(f->vh, 1000);
    assert_int_equal(req(f, 0, "POST", "/ari/recordings/live/r1/pause", NULL, NULL), 204);
    vhost_advance(f->vh, 2000);
    assert_int_equal(req(f, 0, "POST", "/ari/recordings/live/r1/unpause", NULL, NULL), 404);
    assert_int_equal(req(f, 0, "DELETE", "/ari/recordings/live/r1/pause", NULL, NULL), 204);
    vhost_advance(f->vh, 1500);
    assert_int_equal(req(f, 0, "POST", "/ari/recordings/live/r1/stop", NULL, NULL), 204);
    assert_int_equal(req(f, 0, "POST", "/ari/recordings/live/r1/stop", NULL, NULL), 404);
    assert_int_equal(req(f, 0, "GET", "/ari/recordings/stored/r1", NULL, NULL), 200);
    assert_string_equal(obj_types(f, "recording", "name", "r1"),
                        "RecordingStarted/recording RecordingFinished/done");
    snprintf(path, sizeof(path), "/ari/bridges/%s/record?name=r2&format=wav", m);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 201);
    assert_int_equal(req(f, 0, "DELETE", "/ari/recordings/live/r2", NULL, NULL), 204);
    assert_int_equal(req(f, 0, "GET", "/ari/recordings/stored/r2", NULL, NULL), 404);
    json_t *o;
    assert_int_equal(req(f, 0, "GET", "/sim/recordings", NULL, &o), 200);
    json_t *r1 = json_array_get(o, 0), *spans = json_object_get(r1, "spans");
    assert_int_equal(json_array_size(spans), 2);
    assert_int_equal(json_integer_value(json_object_get(r1, "duration_ms")), 2500);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(spans, 1), "start")) -
                         json_integer_value(json_object_get(json_array_get(spans, 0), "end")),
                     2000);
    assert_true(json_is_true(json_object_get(r1, "stored")));
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_array_get(spans, 1), "channels"), 0)),
                        "c1");
    assert_true(json_is_true(json_object_get(json_array_get(o, 1), "discarded")));
    json_decref(o);
    free(m);
}

static void test_originate_link(void **state)
{
    fx *f = *state;
    json_t *o;
    char *m1 = make_bridge(f, 0, "mixing"), *m2 = make_bridge(f, 1, "mixing");
    call(f, 0, "c1", "caller");
    call(f, 1, "a1", "agent");
    assert_int_equal(req(f, 0, "POST",
                         "/ari/channels?endpoint=IAX2%2Fnode2%2F100001%40accept-link&app=queue"
                         "&appArgs=linkout%2C100001&channelId=lo1&timeout=15",
                         NULL, &o), 200);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "Down");
    json_decref(o);
    /* the far leg is in Stasis on node2 with the dialplan's args */
    json_t *evs = vhost_events(f->vh), *e;
    size_t i;
    const char *far = NULL;
    json_array_foreach(evs, i, e)
    {
        json_t *ev = json_object_get(e, "event");
        if (json_integer_value(json_object_get(e, "node")) == 1 &&
            !strcmp(json_string_value(json_object_get(ev, "type")), "StasisStart") &&
            !strcmp(json_string_value(json_array_get(json_object_get(ev, "args"), 0)), "link"))
            far = json_string_value(json_object_get(json_object_get(ev, "channel"), "id"));
    }
    assert_non_null(far);
    char farid[128], path[256];
    snprintf(farid, sizeof(farid), "%s", far);
    assert_string_equal(types(f, "lo1"), "ChannelStateChange ChannelDialplan Dial");
    snprintf(path, sizeof(path), "/ari/channels/%s/answer", farid);
    assert_int_equal(req(f, 1, "POST", path, NULL, NULL), 204);
    assert_string_equal(types(f, "lo1"), "ChannelStateChange ChannelDialplan Dial ChannelStateChange Dial StasisStart");
    add(f, 0, m1, "c1,lo1");
    snprintf(path, sizeof(path), "%s,a1", farid);
    add(f, 1, m2, path);
    assert_int_equal(req(f, 0, "GET", "/sim/connected?a=c1&b=a1", NULL, &o), 200);
    assert_true(json_is_true(json_object_get(o, "connected")));
    json_decref(o);
    o = timeline(f, "c1");
    assert_int_equal(json_array_size(json_object_get(o, "connected_to")), 3); /* lo1, far, a1 */
    json_decref(o);
    req(f, 1, "POST", "/sim/channels/a1/dtmf", "{\"digits\":\"0\"}", NULL);
    assert_non_null(strstr(types(f, "lo1"), "ChannelDtmfReceived"));
    assert_string_equal(tl(f, "c1", "dtmf_heard", "digit"), "0");
    snprintf(path, sizeof(path), "/ari/channels/%s", farid);
    assert_int_equal(req(f, 1, "DELETE", path, NULL, NULL), 204);
    vhost_advance(f->vh, 4);
    assert_null(strstr(types(f, "lo1"), "ChannelHangupRequest"));
    vhost_advance(f->vh, 1); /* the link takes 5 ms */
    assert_string_equal(types(f, "lo1"),
                        "ChannelStateChange ChannelDialplan Dial ChannelStateChange Dial StasisStart "
                        "ChannelEnteredBridge ChannelDtmfReceived ChannelHangupRequest "
                        "ChannelLeftBridge StasisEnd ChannelHangupRequest ChannelDestroyed");
    free(m1);
    free(m2);
}

static void test_originate_noanswer_busy(void **state)
{
    fx *f = *state;
    assert_int_equal(req(f, 0, "POST", "/sim/originate-rules",
                         "{\"match\":\"Local/ring\",\"action\":\"noanswer\"}", NULL), 204);
    assert_int_equal(req(f, 0, "POST", "/sim/originate-rules",
                         "{\"match\":\"Local/busy\",\"action\":\"busy\"}", NULL), 204);
    req(f, 0, "POST", "/ari/channels?endpoint=Local/ring@script&app=queue&timeout=3&channelId=o1",
        NULL, NULL);
    req(f, 0, "POST", "/ari/channels?endpoint=Local/busy@script&app=queue&channelId=o2", NULL,
        NULL);
    req(f, 0, "POST", "/ari/channels?endpoint=Local/ok@script&app=queue&appArgs=agent&channelId=o3",
        NULL, NULL);
    vhost_advance(f->vh, 2999);
    assert_string_equal(types(f, "o1"), "Dial ChannelStateChange Dial");
    vhost_advance(f->vh, 1);
    assert_string_equal(types(f, "o1"), "Dial ChannelStateChange Dial ChannelDestroyed");
    json_t *last = json_object_get(json_array_get(vhost_events(f->vh),
                                                  json_array_size(vhost_events(f->vh)) - 1),
                                   "event");
    assert_int_equal(json_integer_value(json_object_get(last, "cause")), 19);
    assert_string_equal(types(f, "o2"), "Dial ChannelStateChange Dial Dial ChannelDestroyed");
    assert_string_equal(types(f, "o3"),
                        "Dial ChannelStateChange Dial ChannelStateChange Dial StasisStart");
    assert_int_equal(req(f, 0, "GET", "/ari/channels/o1", NULL, NULL), 404);
    /* noanswer, then the test makes the far party pick up */
    req(f, 0, "POST", "/ari/channels?endpoint=Local/ring@script&app=queue&channelId=o4", NULL,
        NULL);
    vhost_advance(f->vh, 1000);
    assert_int_equal(req(f, 0, "POST", "/sim/channels/o4/answer", NULL, NULL), 204);
    assert_int_equal(req(f, 0, "POST", "/sim/channels/o4/answer", NULL, NULL), 409);
    assert_string_equal(types(f, "o4"),
                        "Dial ChannelStateChange Dial ChannelStateChange Dial StasisStart");
    vhost_advance(f->vh, 60000);
    assert_int_equal(req(f, 0, "GET", "/ari/channels/o4", NULL, NULL), 200);
}

static void test_hangups_clean_up(void **state)
{
    fx *f = *state;
    char *m = make_bridge(f, 0, "mixing");
    call(f, 0, "c1", "caller");
    call(f, 0, "a1", "agent");
    add(f, 0, m, "c1,a1");
    req(f, 0, "POST", "/ari/channels/c1/play?media=sound:queue-youarenext", NULL, NULL);
    assert_int_equal(state_count(f, "channels"), 2);
    assert_int_equal(state_count(f, "playbacks"), 1);
    assert_int_equal(req(f, 0, "POST", "/sim/channels/c1/hangup", "{}", NULL), 204);
    assert_string_equal(types(f, "c1"), "StasisStart ChannelEnteredBridge ChannelHangupRequest");
    vhost_advance(f->vh, 0);
    assert_string_equal(types(f, "c1"),
                        "StasisStart ChannelEnteredBridge ChannelHangupRequest ChannelLeftBridge "
                        "StasisEnd");
    assert_int_equal(req(f, 0, "DELETE", "/ari/channels/a1", NULL, NULL), 204);
    assert_int_equal(req(f, 0, "DELETE", "/ari/channels/a1", NULL, NULL), 404);
    char path[128];
    snprintf(path, sizeof(path), "/ari/bridges/%s", m);
    assert_int_equal(req(f, 0, "DELETE", path, NULL, NULL), 204);
    assert_int_equal(state_count(f, "channels"), 0);
    assert_int_equal(state_count(f, "bridges"), 0);
    assert_int_equal(state_count(f, "playbacks"), 0);
    assert_int_equal(state_count(f, "channels_ended"), 2);
    assert_string_equal(tl(f, "c1", "hangup", "who"), "party");
    assert_int_equal(req(f, 0, "POST", "/sim/reset", NULL, NULL), 204);
    assert_int_equal(state_count(f, "channels_ended"), 0);
    free(m);
}

static void test_error_statuses(void **state)
{
    fx *f = *state;
    static const struct {
        const char *method, *path;
        int status;
        const char *msg;
    } t[] = {
        {"POST", "/ari/channels/nope/play?media=sound:beep", 404, "Channel not found"},
        {"POST", "/ari/channels/nope/answer", 404, "Channel not found"},
        {"GET", "/ari/channels/nope", 404, "Channel not found"},
        {"POST", "/ari/bridges/nope/addChannel?channel=c1", 404, "Bridge not found"},
        {"POST", "/ari/bridges?type=bogus", 500,
         "Unable to create bridge. Possible duplicate bridge id '(null)'"},
        {"DELETE", "/ari/playbacks/nope", 404, "Playback not found"},
        {"GET", "/ari/recordings/live/nope", 404, "Recording not found"},
        {"DELETE", "/ari/recordings/stored/nope", 404, "Recording not found"},
        {"GET", "/ari/channels/c1/variable?variable=NO_SUCH", 404,
         "Provided variable was not found"},
        {"GET", "/ari/nothing/here", 404, "Resource not found"},
        {"PUT", "/ari/channels", 405, NULL},
    };
    call(f, 0, "c1", "caller");
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        json_t *o;
        assert_int_equal(req(f, 0, t[i].method, t[i].path, NULL, &o), t[i].status);
        if (t[i].msg)
            assert_string_equal(json_string_value(json_object_get(o, "message")), t[i].msg);
        json_decref(o);
    }
    char *m = make_bridge(f, 0, "mixing");
    char path[256];
    snprintf(path, sizeof(path), "/ari/bridges/%s/addChannel?channel=nope", m);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 400);
    json_t *o;
    assert_int_equal(req(f, 0, "POST", "/ari/playbacks/x/control?operation=pause", NULL, NULL),
                     404);
    req(f, 0, "POST", "/ari/channels/c1/play/pp?media=sound:queue-youarenext", NULL, NULL);
    assert_int_equal(req(f, 0, "POST", "/ari/playbacks/pp/control?operation=bogus", NULL, &o), 400);
    assert_string_equal(json_string_value(json_object_get(o, "message")), "Invalid operation bogus");
    json_decref(o);
    free(m);
}

static void test_stasis_without_app(void **state)
{
    fx *f = *state;
    assert_int_equal(req(f, 0, "POST", "/sim/calls",
                         "{\"app\":\"other\",\"args\":\"caller\",\"channel_id\":\"x1\"}", NULL),
                     201);
    assert_string_equal(types(f, "x1"), "");
    assert_string_equal(tl(f, "x1", "stasis_failed", "app"), "other");
    assert_string_equal(tl(f, "x1", "continued", "why"), "no_app");
    char *m = make_bridge(f, 0, "mixing");
    char path[256];
    snprintf(path, sizeof(path), "/ari/bridges/%s/addChannel?channel=x1", m);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 422);
    assert_int_equal(req(f, 0, "POST", "/ari/channels/x1/answer", NULL, NULL), 409);
    assert_int_equal(req(f, 0, "DELETE", "/ari/channels/x1", NULL, NULL), 204);
    /* continue from Stasis: StasisEnd and the oracle shows where it went */
    assert_int_equal(req(f, 0, "POST", "/sim/calls",
                         "{\"app\":\"queue\",\"args\":\"bogus\",\"channel_id\":\"c1\","
                         "\"after_stasis\":\"hangup\"}", NULL),
                     201);
    req(f, 0, "POST", "/ari/channels/c1/variable?variable=QUEUESTATUS&value=INVALIDARGS", NULL,
        NULL);
    assert_int_equal(req(f, 0, "POST", "/ari/channels/c1/continue", NULL, NULL), 204);
    assert_string_equal(types(f, "c1"), "StasisStart ChannelVarset StasisEnd");
    assert_string_equal(tl(f, "c1", "varset", "value"), "INVALIDARGS");
    /* by default the rest of the dialplan ends the call (the sample's 404) */
    vhost_advance(f->vh, 0);
    assert_int_equal(req(f, 0, "POST", "/ari/channels/c1/answer", NULL, NULL), 404);
    assert_string_equal(tl(f, "c1", "hangup", "who"), "dialplan");
    assert_int_equal(state_count(f, "channels"), 0);
    free(m);
}

/* 10,000 callers on one node in one holding bridge, each answered, joined,
 * MOH re-started, announced to, then hung up: must stay fast (bridge
 * snapshots are shared, not rebuilt) and end with nothing left. */
static void test_ten_thousand_channels(void **state)
{
    fx *f = *state;
    char *h = make_bridge(f, 0, "holding");
    char body[256], path[256];
    vhost_set_capture(f->vh, false);
    uint64_t t0 = clock_mono_ms();
    for (int i = 0; i < 10000; i++) {
        snprintf(body, sizeof(body),
                 "{\"app\":\"queue\",\"args\":\"caller,support\",\"channel_id\":\"k%d\"}", i);
        assert_int_equal(req(f, 0, "POST", "/sim/calls", body, NULL), 201);
        snprintf(path, sizeof(path), "/ari/channels/k%d/answer", i);
        assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 204);
        snprintf(path, sizeof(path), "k%d", i);
        add(f, 0, h, path);
        snprintf(path, sizeof(path), "/ari/bridges/%s/moh?mohClass=default", h);
        assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 204);
    }
    assert_int_equal(state_count(f, "channels"), 10000);
    assert_true(hearing_moh(f, "k0"));
    uint64_t t1 = clock_mono_ms();
    for (int i = 0; i < 10000; i++) {
        snprintf(path, sizeof(path),
                 "/ari/channels/k%d/play?media=sound:queue-thereare,number:%d,"
                 "sound:queue-callswaiting", i, i);
        assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 201);
    }
    assert_int_equal(state_count(f, "playbacks"), 10000);
    vhost_advance(f->vh, 10000);
    assert_int_equal(state_count(f, "playbacks"), 0);
    uint64_t t2 = clock_mono_ms();
    for (int i = 0; i < 10000; i++) {
        snprintf(path, sizeof(path), "/ari/channels/k%d", i);
        assert_int_equal(req(f, 0, "DELETE", path, NULL, NULL), 204);
    }
    assert_int_equal(state_count(f, "channels"), 0);
    assert_int_equal(vhost_pending(f->vh), 0);
    char line[128] = "", hwm[64] = "?";
    FILE *st = fopen("/proc/self/status", "r");
    while (st && fgets(line, sizeof(line), st))
        if (!strncmp(line, "VmHWM:", 6))
            snprintf(hwm, sizeof(hwm), "%s", line + 6 + strspn(line + 6, " \t"));
    if (st)
        fclose(st);
    hwm[strcspn(hwm, "\n")] = 0;
    printf("10000 callers in one holding bridge: join %llu ms (40k requests), announce "
           "%llu ms, hang up %llu ms, peak RSS %s\n",
           (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1),
           (unsigned long long)(clock_mono_ms() - t2), hwm);
    free(h);
}

static void test_dialplan_call_and_bridge_play(void **state)
{
    fx *f = *state;
    json_t *o;
    assert_int_equal(sim_dialplan_add(f->s, 0, "queue-in", "queue", "caller,{exten}"), 0);
    assert_int_equal(req(f, 0, "POST", "/sim/calls",
                         "{\"context\":\"queue-in\",\"exten\":\"support\",\"channel_id\":\"d1\","
                         "\"caller_number\":\"555\"}",
                         &o), 201);
    assert_string_equal(json_string_value(json_object_get(json_object_get(
                            json_object_get(o, "channel"), "caller"), "number")), "555");
    json_decref(o);
    json_t *ev = json_object_get(json_array_get(vhost_events(f->vh), 0), "event");
    assert_string_equal(json_string_value(json_array_get(json_object_get(ev, "args"), 1)), "support");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(ev, "channel"), "dialplan"), "app_data")),
                        "queue,caller,support");
    char *h = make_bridge(f, 0, "holding");
    call(f, 0, "d2", "caller");
    add(f, 0, h, "d1,d2");
    char path[256];
    snprintf(path, sizeof(path), "/ari/bridges/%s/play/bp?media=sound:beep", h);
    assert_int_equal(req(f, 0, "POST", path, NULL, &o), 201);
    assert_string_equal(json_string_value(json_object_get(o, "target_uri")) + 7, h);
    json_decref(o);
    vhost_advance(f->vh, 248);
    assert_string_equal(tl(f, "d1", "sound", "result"), "finished");
    assert_string_equal(tl(f, "d2", "sound", "media"), "sound:beep");
    /* joining and leaving during a bridge playback */
    call(f, 0, "d3", "caller");
    snprintf(path, sizeof(path), "/ari/bridges/%s/play?media=sound:queue-youarenext", h);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 201);
    vhost_advance(f->vh, 1000);
    add(f, 0, h, "d3");
    snprintf(path, sizeof(path), "/ari/bridges/%s/removeChannel?channel=d2", h);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 204);
    vhost_advance(f->vh, 5000);
    assert_string_equal(tl(f, "d2", "sound", "result"), "finished left");
    assert_string_equal(tl(f, "d3", "sound", "result"), "finished");
    assert_string_equal(tl(f, "d1", "sound", "result"), "finished finished");
    /* a channel in a bridge cannot be recorded by itself */
    assert_int_equal(req(f, 0, "POST", "/ari/channels/d1/record?name=cr&format=wav", NULL, NULL),
                     201);
    json_t *last = json_object_get(json_array_get(vhost_events(f->vh),
                                                  json_array_size(vhost_events(f->vh)) - 1),
                                   "event");
    assert_string_equal(json_string_value(json_object_get(last, "type")), "RecordingFailed");
    assert_int_equal(req(f, 0, "GET", "/ari/applications/queue", NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "channel_ids")), 3);
    json_decref(o);
    assert_int_equal(req(f, 0, "GET", "/ari/applications/nope", NULL, NULL), 404);
    free(h);
}

static void test_node_down_hangs_up_link(void **state)
{
    fx *f = *state;
    call(f, 0, "c1", "caller");
    req(f, 0, "POST", "/ari/channels?endpoint=IAX2/node2/7@accept-link&app=queue&channelId=lo1",
        NULL, NULL);
    assert_int_equal(state_count(f, "channels"), 3);
    json_t *o;
    assert_int_equal(req(f, 0, "GET", "/sim/state", NULL, &o), 200);
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(json_object_get(o, "nodes"), 1), "channels")), 1);
    json_decref(o);
    assert_int_equal(sim_node_down(f->s, 1), 0);
    assert_int_equal(state_count(f, "channels"), 2); /* far leg gone, no events */
    vhost_advance(f->vh, 5);
    assert_int_equal(state_count(f, "channels"), 1);
    assert_non_null(strstr(types(f, "lo1"), "ChannelDestroyed"));
    /* a link to a node that is down fails */
    req(f, 0, "POST", "/ari/channels?endpoint=IAX2/node2/8@accept-link&app=queue&channelId=lo2",
        NULL, NULL);
    assert_non_null(strstr(types(f, "lo2"), "ChannelDestroyed"));
    assert_int_equal(sim_node_up(f->s, 1), 0);
    /* pending timers at teardown are cancelled by sim_free (ASan checks) */
    req(f, 0, "POST", "/ari/channels/c1/play?media=sound:queue-youarenext", NULL, NULL);
}

static void test_create_then_dial(void **state)
{
    fx *f = *state;
    json_t *o;
    assert_int_equal(req(f, 0, "POST",
                         "/ari/channels/create?endpoint=Local/wait@script&app=queue&appArgs=dialed",
                         NULL, &o), 200);
    char id[128];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(o, "id")));
    json_decref(o);
    char path[256];
    snprintf(path, sizeof(path), "/ari/channels/%s/dial?timeout=10", id);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 204);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 409);
    vhost_advance(f->vh, 100);
    assert_string_equal(types(f, id), "StasisStart Dial ChannelStateChange Dial ChannelStateChange Dial");
}

/* The party's hangup and the app's DELETE race (single-record): the DELETE
 * still answers 204 and adds its soft request before the teardown. */
static void test_party_hangup_window(void **state)
{
    fx *f = *state;
    json_t *o;
    call(f, 0, "c1", "caller");
    req(f, 0, "POST", "/ari/channels/c1/play?media=sound:beep", NULL, NULL);
    vhost_advance(f->vh, 300);
    o = timeline(f, "c1");
    json_t *snd = NULL, *e;
    size_t i;
    json_array_foreach(json_object_get(o, "timeline"), i, e)
        if (!strcmp(json_string_value(json_object_get(e, "ev")), "sound"))
            snd = e;
    assert_non_null(snd);
    assert_true(json_is_true(json_object_get(snd, "early"))); /* played while Ring */
    json_decref(o);
    assert_int_equal(req(f, 0, "POST", "/sim/channels/c1/hangup", "{\"cause\":16}", NULL), 204);
    assert_int_equal(req(f, 0, "DELETE", "/ari/channels/c1", NULL, NULL), 204);
    assert_string_equal(types(f, "c1"), "StasisStart ChannelHangupRequest ChannelHangupRequest");
    assert_int_equal(req(f, 0, "POST", "/ari/channels/c1/answer", NULL, NULL), 204);
    vhost_advance(f->vh, 0);
    assert_string_equal(types(f, "c1"),
                        "StasisStart ChannelHangupRequest ChannelHangupRequest StasisEnd");
    assert_int_equal(req(f, 0, "DELETE", "/ari/channels/c1", NULL, NULL), 404);
    o = timeline(f, "c1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "hangup"), "who")),
                        "party");
    json_decref(o);
}

/* OBSERVED: recording a Stasis channel itself runs in its command queue
 * and holds back every later command, DTMF delivery included. */
static void test_channel_recording_holds_queue(void **state)
{
    fx *f = *state;
    char *m = make_bridge(f, 0, "mixing");
    call(f, 0, "c1", "caller");
    assert_int_equal(req(f, 0, "POST", "/ari/channels/c1/record?name=cr&format=wav", NULL, NULL),
                     201);
    assert_int_equal(req(f, 0, "POST", "/sim/channels/c1/dtmf", "{\"digits\":\"1\"}", NULL),
                     204);
    assert_int_equal(req(f, 0, "POST", "/ari/channels/c1/answer", NULL, NULL), 204);
    char path[256];
    snprintf(path, sizeof(path), "/ari/bridges/%s/addChannel?channel=c1", m);
    assert_int_equal(req(f, 0, "POST", path, NULL, NULL), 409);
    assert_string_equal(types(f, "c1"), "StasisStart");
    vhost_advance(f->vh, 1000);
    assert_int_equal(req(f, 0, "POST", "/ari/recordings/live/cr/stop", NULL, NULL), 204);
    assert_string_equal(types(f, "c1"), "StasisStart ChannelDtmfReceived ChannelStateChange");
    add(f, 0, m, "c1");
    free(m);
}

/* Random requests over every route with ids that exist and ids that do
 * not, interleaved with time and control actions: no crash, no status
 * outside what ARI answers, and (under ASan) nothing leaked at the end. */
static void test_random_requests(void **state)
{
    fx *f = *state;
    static const char *const tmpl[] = {
        "GET /ari/channels", "POST /ari/channels?endpoint=Local/x@y&app=queue&appArgs=a,b",
        "POST /ari/channels?endpoint=IAX2/node2/7@accept-link&app=queue&channelId=%C",
        "POST /ari/channels/create?endpoint=Local/w@s&app=queue", "GET /ari/channels/%C",
        "DELETE /ari/channels/%C", "DELETE /ari/channels/%C?reason=busy",
        "POST /ari/channels/%C/answer", "POST /ari/channels/%C/continue?context=x&priority=2",
        "POST /ari/channels/%C/play?media=sound:beep,number:12,bogus:x",
        "POST /ari/channels/%C/play/%P?media=sound:queue-youarenext",
        "POST /ari/channels/%C/play?media=tone:ring", "POST /ari/channels/%C/moh",
        "DELETE /ari/channels/%C/moh", "POST /ari/channels/%C/variable?variable=V&value=1",
        "GET /ari/channels/%C/variable?variable=V", "POST /ari/channels/%C/dial",
        "POST /ari/channels/%C/record?name=%R&format=wav", "POST /ari/channels/%C/dtmf?dtmf=1",
        "POST /ari/channels/%C/snoop?app=queue", "GET /ari/bridges",
        "POST /ari/bridges?type=holding", "POST /ari/bridges?type=mixing",
        "POST /ari/bridges/%B?type=mixing", "GET /ari/bridges/%B", "DELETE /ari/bridges/%B",
        "POST /ari/bridges/%B/addChannel?channel=%C,%C",
        "POST /ari/bridges/%B/removeChannel?channel=%C", "POST /ari/bridges/%B/moh",
        "DELETE /ari/bridges/%B/moh", "POST /ari/bridges/%B/play?media=sound:beep",
        "POST /ari/bridges/%B/record?name=%R&format=wav&ifExists=overwrite",
        "GET /ari/playbacks/%P", "DELETE /ari/playbacks/%P",
        "POST /ari/playbacks/%P/control?operation=pause", "GET /ari/recordings/live/%R",
        "DELETE /ari/recordings/live/%R", "POST /ari/recordings/live/%R/stop",
        "POST /ari/recordings/live/%R/pause", "DELETE /ari/recordings/live/%R/pause",
        "GET /ari/recordings/stored", "DELETE /ari/recordings/stored/%R",
        "GET /ari/recordings/stored/%R/file", "GET /ari/asterisk/info",
        "GET /ari/applications/queue", "POST /ari/events/user/E?application=queue&source=channel:%C",
        "POST /sim/channels/%C/hangup", "POST /sim/channels/%C/answer", "GET /sim/channels/%C",
        "GET /sim/state", "GET /sim/connected?a=%C&b=%C", "GET /sim/recordings",
        "PATCH /ari/channels", "GET /ari/%%%2F/..", "POST /ari/bridges/%B/addChannel",
    };
    static const int ok[] = {200, 201, 204, 400, 404, 405, 409, 422, 500};
    const size_t n = sizeof(tmpl) / sizeof(tmpl[0]);
    unsigned seed = 12345;
    char path[512], bodyc[128];
    char bridges[4][64] = {"b0", "b1", "b2", "b3"};
    for (int i = 0; i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        if (r % 7 == 0) {
            snprintf(bodyc, sizeof(bodyc),
                     "{\"app\":\"queue\",\"args\":\"caller\",\"channel_id\":\"c%u\"}", r % 16);
            req(f, r % 2, "POST", "/sim/calls", bodyc, NULL);
        }
        const char *t = tmpl[r % n];
        char *w = path;
        for (const char *p = t; *p && w < path + sizeof(path) - 40; p++) {
            if (*p != '%' || !p[1] || !strchr("CBPR", p[1])) {
                *w++ = *p;
                continue;
            }
            seed = seed * 1103515245u + 12345u;
            unsigned k = (seed >> 8) % 16;
            switch (*++p) {
            case 'C': w += sprintf(w, "c%u", k); break;
            case 'B': w += sprintf(w, "%s", bridges[k % 4]); break;
            case 'P': w += sprintf(w, "p%u", k); break;
            default: w += sprintf(w, "r%u", k % 4); break;
            }
        }
        *w = 0;
        char method[8];
        const char *sp = strchr(path, ' ');
        snprintf(method, sizeof(method), "%.*s", (int)(sp - path), path);
        json_t *o;
        int st = req(f, (int)(r % 2), method, sp + 1, NULL, &o);
        bool known = false;
        for (size_t k = 0; k < sizeof(ok) / sizeof(ok[0]); k++)
            known |= st == ok[k];
        if (!known)
            fail_msg("%s -> %d", path, st);
        const char *id = json_string_value(json_object_get(o, "id"));
        if (st == 200 && id && json_object_get(o, "bridge_type"))
            snprintf(bridges[r % 4], sizeof(bridges[0]), "%s", id);
        json_decref(o);
        if (r % 5 == 0)
            vhost_advance(f->vh, (r >> 4) % 3000);
    }
    vhost_advance(f->vh, 120000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answer_ring_to_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_play_list_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_playback_stop_failed_bogus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holding_moh_announcer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addchannel_waits_for_playback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mixing_dtmf_and_connected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recording_spans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_originate_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_originate_noanswer_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hangups_clean_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stasis_without_app, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ten_thousand_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialplan_call_and_bridge_play, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_down_hangs_up_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_then_dial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_party_hangup_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channel_recording_holds_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_requests, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
