/* Unit tests of the typed ARI event parser against everything a real
 * Asterisk 22 sent (samples/ and traces/ under ARIQ_SHARED_ARI_DIR) and
 * against malformed input. */
#include "ari/event.h"
#include "core/err.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *ari_dir(void)
{
    const char *d = getenv("ARIQ_SHARED_ARI_DIR");
    return d && *d ? d : "/work/shared/ari";
}

/* Reads a whole file; the caller frees. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

static ari_event *parse_ok(const char *buf, size_t len)
{
    ari_event *ev = NULL;
    char err[256] = "";
    int rc = ari_event_parse(buf, len, &ev, err, sizeof err);
    if (rc != 0)
        fail_msg("parse failed (%s): %s\n%.300s", ariq_strerror(rc), err, buf);
    assert_non_null(ev);
    return ev;
}

static ari_event *parse_sample(const char *file)
{
    char path[512];
    size_t len;
    snprintf(path, sizeof path, "%s/samples/%s", ari_dir(), file);
    char *buf = slurp(path, &len);
    if (!buf)
        fail_msg("cannot read %s", path);
    ari_event *ev = parse_ok(buf, len);
    free(buf);
    return ev;
}

/* ---- cross-check against an independent jansson reading ---------------- */

static const char *jstr(const json_t *o, const char *path1, const char *path2)
{
    json_t *v = json_object_get(o, path1);
    if (path2)
        v = json_object_get(v, path2);
    return json_string_value(v);
}

static void check_channel(const json_t *jc, const ari_channel *c)
{
    assert_string_equal(c->id, jstr(jc, "id", NULL));
    assert_string_equal(c->name, jstr(jc, "name", NULL));
    assert_string_equal(c->state_name, jstr(jc, "state", NULL));
    assert_string_equal(ari_chan_state_name(c->state), jstr(jc, "state", NULL));
    assert_string_equal(c->caller_number, jstr(jc, "caller", "number"));
    assert_string_equal(c->caller_name, jstr(jc, "caller", "name"));
    assert_string_equal(c->connected_number, jstr(jc, "connected", "number"));
    assert_string_equal(c->context, jstr(jc, "dialplan", "context"));
    assert_string_equal(c->exten, jstr(jc, "dialplan", "exten"));
    assert_string_equal(c->app_data, jstr(jc, "dialplan", "app_data"));
    assert_int_equal(c->priority, json_integer_value(json_object_get(
                                      json_object_get(jc, "dialplan"), "priority")));
}

static void check_target(const char *uri, ari_target_kind kind, const char *id)
{
    if (strncmp(uri, "channel:", 8) == 0) {
        assert_int_equal(kind, ARI_TARGET_CHANNEL);
        assert_string_equal(id, uri + 8);
    } else if (strncmp(uri, "bridge:", 7) == 0) {
        assert_int_equal(kind, ARI_TARGET_BRIDGE);
        assert_string_equal(id, uri + 7);
    } else {
        assert_int_equal(kind, ARI_TARGET_OTHER);
    }
}

static void check_objects(const json_t *j, const ari_event *ev)
{
    json_t *v;
    if ((v = json_object_get(j, "bridge"))) {
        assert_true(ev->has_bridge);
        assert_string_equal(ev->bridge.id, jstr(v, "id", NULL));
        assert_string_equal(ev->bridge.bridge_type, jstr(v, "bridge_type", NULL));
        assert_int_equal(ev->bridge.channel_count,
                         json_array_size(json_object_get(v, "channels")));
    }
    if ((v = json_object_get(j, "playback"))) {
        assert_true(ev->has_playback);
        assert_string_equal(ev->playback.id, jstr(v, "id", NULL));
        assert_string_equal(ev->playback.state_name, jstr(v, "state", NULL));
        assert_string_equal(ari_playback_state_name(ev->playback.state),
                            jstr(v, "state", NULL));
        assert_string_equal(ev->playback.media_uri, jstr(v, "media_uri", NULL));
        assert_string_equal(ev->playback.target_uri, jstr(v, "target_uri", NULL));
        check_target(ev->playback.target_uri, ev->playback.target_kind,
                     ev->playback.target_id);
    }
    if ((v = json_object_get(j, "recording"))) {
        assert_true(ev->has_recording);
        assert_string_equal(ev->recording.name, jstr(v, "name", NULL));
        assert_string_equal(ari_recording_state_name(ev->recording.state),
                            jstr(v, "state", NULL));
        assert_string_equal(ev->recording.target_uri, jstr(v, "target_uri", NULL));
        check_target(ev->recording.target_uri, ev->recording.target_kind,
                     ev->recording.target_id);
    }
}

static void check_scalars(const json_t *j, const ari_event *ev)
{
    json_t *v;
    if ((v = json_object_get(j, "args"))) {
        assert_int_equal(ev->nargs, json_array_size(v));
        for (size_t i = 0; i < ev->nargs; i++)
            assert_string_equal(ev->args[i], json_string_value(json_array_get(v, i)));
    }
    if ((v = json_object_get(j, "digit"))) {
        assert_int_equal(ev->digit, json_string_value(v)[0]);
        assert_int_equal(ev->duration_ms,
                         json_integer_value(json_object_get(j, "duration_ms")));
    }
    if ((v = json_object_get(j, "cause")))
        assert_int_equal(ev->cause, json_integer_value(v));
    if ((v = json_object_get(j, "cause_txt")))
        assert_string_equal(ev->cause_txt, json_string_value(v));
    if ((v = json_object_get(j, "dialstatus")))
        assert_string_equal(ev->dialstatus, json_string_value(v));
    assert_string_equal(ev->application, jstr(j, "application", NULL));
    assert_string_equal(ev->timestamp, jstr(j, "timestamp", NULL));
    assert_true(ev->timestamp_ms > 1700000000000LL);
}

/* Parses the serialized event `j` and checks every typed field against j. */
static void check_event(const json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    ari_event *ev = parse_ok(text, strlen(text));
    const char *type = jstr(j, "type", NULL);
    assert_string_equal(ev->type_name, type);
    assert_int_equal(ev->type, ari_event_type_from_name(type));
    if (ev->type != ARI_EV_UNKNOWN) {
        assert_string_equal(ari_event_type_name(ev->type), type);
        if (json_object_get(j, "channel")) {
            assert_true(ev->has_channel);
            check_channel(json_object_get(j, "channel"), &ev->channel);
        }
        if (json_object_get(j, "peer")) {
            assert_true(ev->has_peer);
            check_channel(json_object_get(j, "peer"), &ev->peer);
        }
        check_objects(j, ev);
        check_scalars(j, ev);
    }
    ari_event_free(ev);
    free(text);
}

/* Checks every event of a .jsonl file; trace lines wrap it in "event".
 * Returns how many events were checked. */
static int check_jsonl(const char *path, int counts[ARI_EV__COUNT])
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot read %s", path);
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j)
            continue; /* blank line */
        json_t *ev = json_object_get(j, "kind") ? json_object_get(j, "event") : j;
        if (json_is_object(ev) && (!json_object_get(j, "kind") ||
                                   strcmp(jstr(j, "kind", NULL), "event") == 0)) {
            check_event(ev);
            counts[ari_event_type_from_name(jstr(ev, "type", NULL))]++;
            n++;
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    return n;
}

static void test_every_sample_file(void **state)
{
    (void)state;
    char pattern[512];
    glob_t g;
    snprintf(pattern, sizeof pattern, "%s/samples/*.json", ari_dir());
    assert_int_equal(glob(pattern, 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 20);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        json_t *j = json_load_file(g.gl_pathv[i], 0, NULL);
        assert_non_null(j);
        check_event(j);
        json_decref(j);
    }
    globfree(&g);
}

static void test_all_events_and_traces(void **state)
{
    (void)state;
    int counts[ARI_EV__COUNT] = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/samples/all-events.jsonl", ari_dir());
    int n = check_jsonl(path, counts);
    assert_true(n > 100);
    glob_t g;
    snprintf(path, sizeof path, "%s/traces/*/node*.jsonl", ari_dir());
    assert_int_equal(glob(path, 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 12);
    for (size_t i = 0; i < g.gl_pathc; i++)
        n += check_jsonl(g.gl_pathv[i], counts);
    globfree(&g);
    print_message("checked %d recorded events\n", n);
    /* The recordings hold every type the queue acts on. */
    const ari_event_type seen[] = {
        ARI_EV_STASIS_START,
        ARI_EV_STASIS_END,
        ARI_EV_CHANNEL_DTMF_RECEIVED,
        ARI_EV_CHANNEL_HANGUP_REQUEST,
        ARI_EV_CHANNEL_DESTROYED,
        ARI_EV_CHANNEL_STATE_CHANGE,
        ARI_EV_CHANNEL_ENTERED_BRIDGE,
        ARI_EV_CHANNEL_LEFT_BRIDGE,
        ARI_EV_PLAYBACK_STARTED,
        ARI_EV_PLAYBACK_CONTINUING,
        ARI_EV_PLAYBACK_FINISHED,
        ARI_EV_RECORDING_STARTED,
        ARI_EV_RECORDING_FINISHED,
        ARI_EV_BRIDGE_DESTROYED,
        ARI_EV_DIAL,
    };
    for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++) {
        if (counts[seen[i]] == 0)
            fail_msg("no %s parsed", ari_event_type_name(seen[i]));
    }
    assert_true(counts[ARI_EV_UNKNOWN] > 0); /* ChannelDialplan & co. */
}

/* ---- hand-checked fields of the individual samples ------------------------ */

static void test_stasis_start(void **state)
{
    (void)state;
    ari_event *ev = parse_sample("StasisStart-caller-from-dialplan.json");
    assert_int_equal(ev->type, ARI_EV_STASIS_START);
    assert_int_equal(ev->nargs, 1);
    assert_string_equal(ev->args[0], "caller");
    assert_true(ev->has_channel);
    assert_string_equal(ev->channel.id, "1795384614.39");
    assert_string_equal(ev->channel.name, "Local/caller@queue-test-0000000e;2");
    assert_int_equal(ev->channel.state, ARI_CHAN_RING);
    assert_string_equal(ev->channel.context, "queue-test");
    assert_string_equal(ev->channel.exten, "caller");
    assert_int_equal(ev->channel.priority, 2);
    assert_string_equal(ev->channel.app_name, "Stasis");
    assert_string_equal(ev->application, "queue");
    assert_string_equal(ev->asterisk_id, "02:fc:00:00:00:01");
    assert_int_equal(ev->timestamp_ms, 1795384614021LL);
    assert_false(ev->has_bridge || ev->has_playback || ev->has_recording || ev->has_peer);
    ari_event_free(ev);

    ev = parse_sample("StasisStart-originated-variant.json");
    assert_int_equal(ev->channel.state, ARI_CHAN_UP);
    ari_event_free(ev);
}

static void test_channel_events(void **state)
{
    (void)state;
    ari_event *ev = parse_sample("ChannelDtmfReceived.json");
    assert_int_equal(ev->type, ARI_EV_CHANNEL_DTMF_RECEIVED);
    assert_int_equal(ev->digit, '0');
    assert_int_equal(ev->duration_ms, 100);
    assert_string_equal(ev->channel.id, "1795384628.48");
    assert_string_equal(ev->channel.caller_number, "100");
    assert_string_equal(ev->channel.caller_name, "Agent");
    ari_event_free(ev);

    ev = parse_sample("node2-ChannelDtmfReceived-iax2.json");
    assert_int_equal(ev->digit, '#');
    assert_int_equal(ev->duration_ms, 0);
    assert_string_equal(ev->channel.name, "IAX2/node1-4021");
    ari_event_free(ev);

    ev = parse_sample("ChannelHangupRequest.json");
    assert_int_equal(ev->type, ARI_EV_CHANNEL_HANGUP_REQUEST);
    assert_int_equal(ev->cause, 32);
    assert_true(ev->soft);
    ari_event_free(ev);

    ev = parse_sample("ChannelDestroyed.json");
    assert_int_equal(ev->type, ARI_EV_CHANNEL_DESTROYED);
    assert_int_equal(ev->cause, 16);
    assert_string_equal(ev->cause_txt, "Normal Clearing");
    assert_int_equal(ev->channel.state, ARI_CHAN_UP);
    ari_event_free(ev);

    ev = parse_sample("ChannelStateChange.json");
    assert_int_equal(ev->type, ARI_EV_CHANNEL_STATE_CHANGE);
    assert_int_equal(ev->channel.state, ARI_CHAN_UP);
    ari_event_free(ev);

    ev = parse_sample("StasisEnd.json");
    assert_int_equal(ev->type, ARI_EV_STASIS_END);
    assert_string_equal(ev->channel.id, "1795384645.56");
    assert_int_equal(ev->nargs, 0);
    ari_event_free(ev);

    ev = parse_sample("ChannelVarset.json");
    assert_int_equal(ev->type, ARI_EV_CHANNEL_VARSET);
    assert_string_equal(ev->variable, "QUEUE_POS");
    assert_string_equal(ev->value, "1");
    ari_event_free(ev);
}

static void test_bridge_events(void **state)
{
    (void)state;
    ari_event *ev = parse_sample("ChannelEnteredBridge.json");
    assert_int_equal(ev->type, ARI_EV_CHANNEL_ENTERED_BRIDGE);
    assert_string_equal(ev->bridge.id, "fe1a7e1e-9e6a-473b-83b2-461bd74885c2");
    assert_string_equal(ev->bridge.bridge_type, "holding");
    assert_int_equal(ev->bridge.kind, ARI_BRIDGE_HOLDING);
    assert_string_equal(ev->bridge.name, "hold1");
    assert_int_equal(ev->bridge.channel_count, 1);
    assert_string_equal(ev->channel.id, "1795384614.39");
    ari_event_free(ev);

    ev = parse_sample("ChannelLeftBridge.json");
    assert_int_equal(ev->type, ARI_EV_CHANNEL_LEFT_BRIDGE);
    assert_true(ev->has_bridge && ev->has_channel);
    ari_event_free(ev);

    ev = parse_sample("BridgeDestroyed.json");
    assert_int_equal(ev->type, ARI_EV_BRIDGE_DESTROYED);
    assert_string_equal(ev->bridge.bridge_type, "mixing");
    assert_int_equal(ev->bridge.kind, ARI_BRIDGE_MIXING);
    assert_int_equal(ev->bridge.channel_count, 0);
    assert_false(ev->has_channel);
    ari_event_free(ev);
}

static void test_media_events(void **state)
{
    (void)state;
    ari_event *ev = parse_sample("PlaybackContinuing.json");
    assert_int_equal(ev->type, ARI_EV_PLAYBACK_CONTINUING);
    assert_string_equal(ev->playback.id, "fc095df6-e9d2-4e9b-9f41-2d8b7c98a7c2");
    assert_int_equal(ev->playback.state, ARI_PB_CONTINUING);
    assert_string_equal(ev->playback.media_uri, "sound:queue-thereare");
    assert_string_equal(ev->playback.next_media_uri, "number:3");
    assert_int_equal(ev->playback.target_kind, ARI_TARGET_CHANNEL);
    assert_string_equal(ev->playback.target_id, "1795384614.39");
    ari_event_free(ev);

    ev = parse_sample("PlaybackFinished.json");
    assert_int_equal(ev->playback.state, ARI_PB_DONE);
    assert_string_equal(ev->playback.next_media_uri, "");
    ari_event_free(ev);

    ev = parse_sample("RecordingFailed.json");
    assert_int_equal(ev->type, ARI_EV_RECORDING_FAILED);
    assert_string_equal(ev->recording.name, "chan0");
    assert_int_equal(ev->recording.state, ARI_REC_FAILED);
    assert_string_equal(ev->recording.cause, "Cannot record channel while in bridge");
    assert_int_equal(ev->recording.duration_s, -1);
    ari_event_free(ev);

    ev = parse_sample("RecordingFinished.json");
    assert_int_equal(ev->recording.state, ARI_REC_DONE);
    assert_int_equal(ev->recording.duration_s, 13);
    assert_int_equal(ev->recording.target_kind, ARI_TARGET_BRIDGE);
    assert_string_equal(ev->recording.target_id, "83d0be22-d60a-4de1-82a3-ecf4b228e3ff");
    assert_string_equal(ev->recording.format, "wav");
    ari_event_free(ev);
}

static void test_routing_ids(void **state)
{
    (void)state;
    const struct {
        const char *file, *chan, *bridge;
    } cases[] = {
        {"StasisStart.json", "1795384614.39", NULL},
        {"ChannelEnteredBridge.json", "1795384614.39",
         "fe1a7e1e-9e6a-473b-83b2-461bd74885c2"},
        {"PlaybackStarted.json", "1795384614.39", NULL},
        {"RecordingStarted.json", NULL, "83d0be22-d60a-4de1-82a3-ecf4b228e3ff"},
        {"RecordingFailed.json", "1795384628.48", NULL},
        {"Dial.json", "1795384628.48", NULL},
        {"BridgeDestroyed.json", NULL, "83d0be22-d60a-4de1-82a3-ecf4b228e3ff"},
        {"ApplicationReplaced.json", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ari_event *ev = parse_sample(cases[i].file);
        const char *c = ari_event_channel_id(ev), *b = ari_event_bridge_id(ev);
        if ((c == NULL) != (cases[i].chan == NULL) || (c && strcmp(c, cases[i].chan)) ||
            (b == NULL) != (cases[i].bridge == NULL) || (b && strcmp(b, cases[i].bridge)))
            fail_msg("%s: channel %s bridge %s", cases[i].file, c ? c : "NULL",
                     b ? b : "NULL");
        ari_event_free(ev);
    }
}

/* The Channel models of REST answers in the traces validate like events'. */
static void test_channel_from_rest_answers(void **state)
{
    (void)state;
    char pattern[512];
    glob_t g;
    snprintf(pattern, sizeof pattern, "%s/traces/*/node*.jsonl", ari_dir());
    assert_int_equal(glob(pattern, 0, NULL, &g), 0);
    int n = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        FILE *f = fopen(g.gl_pathv[i], "r");
        char *line = NULL;
        size_t cap = 0;
        while (f && getline(&line, &cap, f) > 0) {
            json_t *j = json_loads(line, 0, NULL);
            json_t *body = json_object_get(j, "body");
            if (j && strcmp(jstr(j, "kind", NULL), "response") == 0 &&
                json_is_object(body) && json_object_get(body, "dialplan")) {
                ari_channel c;
                char err[128];
                if (ari_channel_from_json(body, &c, err, sizeof err) != 0)
                    fail_msg("%s: %s", g.gl_pathv[i], err);
                check_channel(body, &c);
                n++;
            }
            json_decref(j);
        }
        free(line);
        if (f)
            fclose(f);
    }
    globfree(&g);
    print_message("checked %d channels from REST answers\n", n);
    assert_true(n > 0);

    ari_channel c = {.id = "untouched"};
    json_t *bad = json_loads("{\"id\":\"a/b\",\"name\":\"x\",\"state\":\"Up\"}", 0, NULL);
    char err[128] = "";
    assert_int_equal(ari_channel_from_json(bad, &c, err, sizeof err), ARIQ_EINVAL);
    assert_string_equal(c.id, "untouched");
    assert_int_equal(ari_channel_from_json(json_object_get(bad, "id"), &c, NULL, 0),
                     ARIQ_EINVAL);
    json_decref(bad);

    /* the whole message stays reachable for untyped members */
    ari_event *ev = parse_sample("ChannelUserevent.json");
    const json_t *root = ari_event_json(ev);
    assert_string_equal(json_string_value(json_object_get(root, "eventname")),
                        "QueueTest");
    ari_event_free(ev);
}

static void test_other_events(void **state)
{
    (void)state;
    ari_event *ev = parse_sample("Dial.json");
    assert_int_equal(ev->type, ARI_EV_DIAL);
    assert_true(ev->has_peer);
    assert_false(ev->has_channel);
    assert_string_equal(ev->peer.id, "1795384628.48");
    assert_int_equal(ev->peer.state, ARI_CHAN_DOWN);
    assert_string_equal(ev->dialstatus, "");
    assert_string_equal(ev->dialstring, "dtmf@script");
    ari_event_free(ev);

    ev = parse_sample("ApplicationReplaced.json");
    assert_int_equal(ev->type, ARI_EV_APPLICATION_REPLACED);
    assert_string_equal(ev->application, "queue");
    ari_event_free(ev);

    ev = parse_sample("ChannelUserevent.json");
    assert_int_equal(ev->type, ARI_EV_UNKNOWN);
    assert_string_equal(ev->type_name, "ChannelUserevent");
    ari_event_free(ev);
}

/* ---- malformed input --------------------------------------------------- */

#define CHAN           "{\"id\":\"1.2\",\"name\":\"PJSIP/x\",\"state\":\"Up\"}"
#define SS(args, chan) "{\"type\":\"StasisStart\",\"args\":" args ",\"channel\":" chan "}"
#define DTMF(d)                                                                          \
    "{\"type\":\"ChannelDtmfReceived\",\"digit\":" d                                     \
    ",\"duration_ms\":5,\"channel\":" CHAN "}"

typedef struct bad_case {
    const char *json;
    int rc;
    const char *msg; /* must appear in the error message */
} bad_case;

static const bad_case bad_cases[] = {
    {"", ARIQ_EINVAL, "json"},
    {"{\"type\":\"StasisStart\",\"args\":[\"caller\"],\"chan", ARIQ_EINVAL, "json"},
    {"[]", ARIQ_EINVAL, "not a JSON object"},
    {"42", ARIQ_EINVAL, "not a JSON object"},
    {"\"StasisStart\"", ARIQ_EINVAL, "not a JSON object"},
    {"{}", ARIQ_EINVAL, "type: missing"},
    {"{\"type\":5}", ARIQ_EINVAL, "type: not a string"},
    {"{\"type\":\"StasisStart\",\"args\":[]}", ARIQ_EINVAL,
     "StasisStart: channel: missing"},
    {"{\"type\":\"StasisEnd\",\"channel\":[]}", ARIQ_EINVAL, "channel: not an object"},
    {SS("[]", "{\"name\":\"x\",\"state\":\"Up\"}"), ARIQ_EINVAL, "channel.id: missing"},
    {SS("[]", "{\"id\":7,\"name\":\"x\",\"state\":\"Up\"}"), ARIQ_EINVAL, "channel.id"},
    {SS("[]", "{\"id\":\"\",\"name\":\"x\",\"state\":\"Up\"}"), ARIQ_EINVAL,
     "channel.id"},
    {SS("[]", "{\"id\":\"a/b\",\"name\":\"x\",\"state\":\"Up\"}"), ARIQ_EINVAL,
     "not an id"},
    {SS("[]", "{\"id\":\"a b\",\"name\":\"x\",\"state\":\"Up\"}"), ARIQ_EINVAL,
     "not an id"},
    {SS("[]", "{\"id\":\"1.2\",\"name\":\"x\\u0001\",\"state\":\"Up\"}"), ARIQ_EINVAL,
     "control"},
    {SS("[]", "{\"id\":\"1.2\",\"name\":\"x\",\"state\":1}"), ARIQ_EINVAL,
     "channel.state"},
    {SS("[]", "{\"id\":\"1.\\u0000\",\"name\":\"x\",\"state\":\"Up\"}"), ARIQ_EINVAL,
     "json"},
    {SS("{}", CHAN), ARIQ_EINVAL, "args: not an array"},
    {"{\"type\":\"StasisStart\",\"channel\":" CHAN "}", ARIQ_EINVAL, "args: missing"},
    {SS("[\"caller\",5]", CHAN), ARIQ_EINVAL, "args[1]: not a string"},
    {SS("[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\","
        "\"n\","
        "\"o\",\"p\",\"q\"]",
        CHAN),
     ARIQ_ERANGE, "args: 17 elements"},
    {SS("[\"caller\",\"a\\nb\"]", CHAN), ARIQ_EINVAL, "args[1]: control"},
    {DTMF("\"E\""), ARIQ_EINVAL, "digit"},
    {DTMF("\"\""), ARIQ_EINVAL, "digit"},
    {DTMF("\"12\""), ARIQ_EINVAL, "digit"},
    {DTMF("1"), ARIQ_EINVAL, "digit: not a string"},
    {"{\"type\":\"ChannelDtmfReceived\",\"digit\":\"1\",\"duration_ms\":-5,"
     "\"channel\":" CHAN "}",
     ARIQ_ERANGE, "duration_ms"},
    {"{\"type\":\"ChannelDtmfReceived\",\"digit\":\"1\",\"channel\":" CHAN "}",
     ARIQ_EINVAL, "duration_ms: missing"},
    {"{\"type\":\"ChannelDestroyed\",\"cause_txt\":\"x\",\"channel\":" CHAN "}",
     ARIQ_EINVAL, "cause: missing"},
    {"{\"type\":\"ChannelDestroyed\",\"cause\":1.5,\"cause_txt\":\"x\",\"channel\":" CHAN
     "}",
     ARIQ_EINVAL, "cause: not an integer"},
    {"{\"type\":\"ChannelHangupRequest\",\"soft\":\"yes\",\"channel\":" CHAN "}",
     ARIQ_EINVAL, "soft"},
    {"{\"type\":\"ChannelLeftBridge\",\"bridge\":{\"id\":\"b1\"}}", ARIQ_EINVAL,
     "channel: missing"},
    {"{\"type\":\"BridgeDestroyed\",\"bridge\":{\"id\":\"b/1\"}}", ARIQ_EINVAL,
     "bridge.id"},
    {"{\"type\":\"PlaybackStarted\",\"playback\":{\"id\":\"p1\",\"state\":\"playing\","
     "\"media_uri\":\"sound:x\"}}",
     ARIQ_EINVAL, "playback.target_uri: missing"},
    {"{\"type\":\"PlaybackStarted\",\"playback\":{\"id\":\"p1\",\"state\":\"playing\","
     "\"media_uri\":\"sound:x\",\"target_uri\":\"channel:a b\"}}",
     ARIQ_EINVAL, "playback.target_uri"},
    {"{\"type\":\"RecordingStarted\",\"recording\":{\"name\":\"../"
     "x\",\"state\":\"recording\","
     "\"target_uri\":\"bridge:b1\"}}",
     ARIQ_EINVAL, "recording.name"},
    {"{\"type\":\"Dial\",\"dialstatus\":\"\"}", ARIQ_EINVAL, "peer: missing"},
    {"{\"type\":\"Dial\",\"peer\":" CHAN "}", ARIQ_EINVAL, "dialstatus: missing"},
    {"{\"type\":\"ApplicationReplaced\"}", ARIQ_EINVAL, "application: missing"},
    {"{\"type\":\"StasisEnd\",\"type\":\"StasisEnd\",\"channel\":" CHAN "}", ARIQ_EINVAL,
     "duplicate"},
    {"{\"type\":\"StasisEnd\",\"timestamp\":5,\"channel\":" CHAN "}", ARIQ_EINVAL,
     "timestamp"},
};

static void test_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        ari_event *ev = (ari_event *)0x1; /* must stay untouched */
        char err[256] = "";
        int rc = ari_event_parse(c->json, strlen(c->json), &ev, err, sizeof err);
        if (rc != c->rc || ev != (ari_event *)0x1 || !strstr(err, c->msg))
            fail_msg("case %zu: rc %d (want %d), err \"%s\" (want \"%s\")\n  %s", i, rc,
                     c->rc, err, c->msg, c->json);
    }
}

static void test_minimal_and_unknown(void **state)
{
    (void)state;
    const char *ok = SS("[\"caller\",\"support\",\"5\"]", CHAN);
    ari_event *ev = parse_ok(ok, strlen(ok));
    assert_int_equal(ev->nargs, 3);
    assert_string_equal(ev->args[2], "5");
    assert_string_equal(ev->application, "");
    assert_int_equal(ev->timestamp_ms, -1);
    assert_string_equal(ev->channel.caller_number, "");
    assert_int_equal(ev->channel.priority, -1);
    ari_event_free(ev);

    /* a caller name with a control byte does not cost the call */
    const char *soft = SS("[]", "{\"id\":\"1.2\",\"name\":\"x\",\"state\":\"Weird\","
                                "\"caller\":{\"name\":\"a\\u0007\",\"number\":\"1\"}}");
    ev = parse_ok(soft, strlen(soft));
    assert_string_equal(ev->channel.caller_name, "");
    assert_string_equal(ev->channel.caller_number, "1");
    assert_int_equal(ev->channel.state, ARI_CHAN_UNKNOWN);
    assert_string_equal(ev->channel.state_name, "Weird");
    ari_event_free(ev);

    const char *unk = "{\"type\":\"ChannelTalkingStarted\",\"whatever\":[1,2]}";
    ev = parse_ok(unk, strlen(unk));
    assert_int_equal(ev->type, ARI_EV_UNKNOWN);
    assert_string_equal(ev->type_name, "ChannelTalkingStarted");
    ari_event_free(ev);

    /* not NUL-terminated: only len bytes are read */
    char buf[64];
    const char *e = "{\"type\":\"X\"}";
    memcpy(buf, e, strlen(e));
    memset(buf + strlen(e), 'z', sizeof buf - strlen(e));
    ev = parse_ok(buf, strlen(e));
    ari_event_free(ev);

    ari_event_free(NULL);
    assert_string_equal(ari_event_type_name(ARI_EV__COUNT), "?");
    assert_string_equal(ari_chan_state_name((ari_chan_state)-1), "?");
}

static void test_oversize(void **state)
{
    (void)state;
    size_t n = ARI_EVENT_MAX_MSG + 1;
    char *big = malloc(n + 1);
    assert_non_null(big);
    /* a valid event padded with whitespace past the limit */
    const char *e = SS("[]", CHAN);
    memset(big, ' ', n);
    memcpy(big, e, strlen(e));
    big[n] = '\0';
    ari_event *ev = NULL;
    char err[128] = "";
    assert_int_equal(ari_event_parse(big, n, &ev, err, sizeof err), ARIQ_ERANGE);
    assert_null(ev);
    assert_non_null(strstr(err, "limit"));
    /* exactly at the limit is fine */
    ev = parse_ok(big, ARI_EVENT_MAX_MSG);
    ari_event_free(ev);
    free(big);

    /* an arg one byte too long; one at the limit */
    char args[ARI_EVENT_MAX_ARG + 16];
    memset(args, 'a', sizeof args);
    args[0] = '"';
    char *msg = malloc(ARI_EVENT_MAX_ARG + 256);
    assert_non_null(msg);
    for (int extra = 0; extra <= 1; extra++) {
        int alen = ARI_EVENT_MAX_ARG + extra;
        snprintf(msg, ARI_EVENT_MAX_ARG + 256,
                 "{\"type\":\"StasisStart\",\"args\":[\"%.*s\"],\"channel\":" CHAN "}",
                 alen, args + 1);
        int rc = ari_event_parse(msg, strlen(msg), &ev, err, sizeof err);
        assert_int_equal(rc, extra ? ARIQ_ERANGE : 0);
        if (rc == 0)
            ari_event_free(ev);
    }
    free(msg);
}

/* Every proper prefix of a real event is rejected, and nothing leaks. */
static void test_truncated_samples(void **state)
{
    (void)state;
    char path[512];
    size_t len;
    snprintf(path, sizeof path, "%s/samples/ChannelEnteredBridge.json", ari_dir());
    char *buf = slurp(path, &len);
    assert_non_null(buf);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        len--;
    for (size_t i = 0; i < len; i++) {
        ari_event *ev = NULL;
        assert_int_not_equal(ari_event_parse(buf, i, &ev, NULL, 0), 0);
        assert_null(ev);
    }
    ari_event *ev = parse_ok(buf, len);
    ari_event_free(ev);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_sample_file),
        cmocka_unit_test(test_all_events_and_traces),
        cmocka_unit_test(test_stasis_start),
        cmocka_unit_test(test_channel_events),
        cmocka_unit_test(test_bridge_events),
        cmocka_unit_test(test_media_events),
        cmocka_unit_test(test_other_events),
        cmocka_unit_test(test_routing_ids),
        cmocka_unit_test(test_channel_from_rest_answers),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_minimal_and_unknown),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_truncated_samples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
