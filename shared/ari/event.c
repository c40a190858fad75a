#include "ari/event.h"
#include "core/err.h"
#include "core/ids.h"
#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SHORT 64   /* state names, formats, dial statuses, types */
#define MAX_LONG  4096 /* dialplan app data, variable values */

struct ari_event_priv {
    json_t *root; /* every borrowed string of the event lives in this tree */
};

/* One allocation per event: the public record and its storage. */
typedef struct holder {
    ari_event ev; /* first: ari_event_free() casts back */
    ari_event_priv priv;
} holder;

typedef int (*extra_fn)(const json_t *root, ari_event *ev, char *err, size_t errlen);

/* Sub-objects a type carries. NEED_* must be present and valid; OPT_* is
 * validated when present. */
enum {
    NEED_CHANNEL = 1u << 0,
    OPT_CHANNEL = 1u << 1,
    NEED_BRIDGE = 1u << 2,
    NEED_PLAYBACK = 1u << 3,
    NEED_RECORDING = 1u << 4,
    NEED_APP = 1u << 5,
};

typedef struct type_desc {
    const char *name;
    unsigned members;
    extra_fn extra; /* the type's own members, or NULL */
} type_desc;

static int parse_args(const json_t *root, ari_event *ev, char *err, size_t errlen);
static int parse_dtmf(const json_t *root, ari_event *ev, char *err, size_t errlen);
static int parse_hangup(const json_t *root, ari_event *ev, char *err, size_t errlen);
static int parse_destroyed(const json_t *root, ari_event *ev, char *err, size_t errlen);
static int parse_varset(const json_t *root, ari_event *ev, char *err, size_t errlen);
static int parse_dial(const json_t *root, ari_event *ev, char *err, size_t errlen);

/* Type name -> what it must carry. Indexed by ari_event_type. */
static const type_desc types[ARI_EV__COUNT] = {
    [ARI_EV_UNKNOWN] = {"Unknown", 0, NULL},
    [ARI_EV_STASIS_START] = {"StasisStart", NEED_CHANNEL, parse_args},
    [ARI_EV_STASIS_END] = {"StasisEnd", NEED_CHANNEL, NULL},
    [ARI_EV_CHANNEL_DTMF_RECEIVED] = {"ChannelDtmfReceived", NEED_CHANNEL, parse_dtmf},
    [ARI_EV_CHANNEL_HANGUP_REQUEST] = {"ChannelHangupRequest", NEED_CHANNEL,
                                       parse_hangup},
    [ARI_EV_CHANNEL_DESTROYED] = {"ChannelDestroyed", NEED_CHANNEL, parse_destroyed},
    [ARI_EV_CHANNEL_STATE_CHANGE] = {"ChannelStateChange", NEED_CHANNEL, NULL},
    [ARI_EV_CHANNEL_CREATED] = {"ChannelCreated", NEED_CHANNEL, NULL},
    [ARI_EV_CHANNEL_VARSET] = {"ChannelVarset", OPT_CHANNEL, parse_varset},
    [ARI_EV_CHANNEL_ENTERED_BRIDGE] = {"ChannelEnteredBridge", NEED_BRIDGE | OPT_CHANNEL,
                                       NULL},
    [ARI_EV_CHANNEL_LEFT_BRIDGE] = {"ChannelLeftBridge", NEED_BRIDGE | NEED_CHANNEL,
                                    NULL},
    [ARI_EV_PLAYBACK_STARTED] = {"PlaybackStarted", NEED_PLAYBACK, NULL},
    [ARI_EV_PLAYBACK_CONTINUING] = {"PlaybackContinuing", NEED_PLAYBACK, NULL},
    [ARI_EV_PLAYBACK_FINISHED] = {"PlaybackFinished", NEED_PLAYBACK, NULL},
    [ARI_EV_RECORDING_STARTED] = {"RecordingStarted", NEED_RECORDING, NULL},
    [ARI_EV_RECORDING_FINISHED] = {"RecordingFinished", NEED_RECORDING, NULL},
    [ARI_EV_RECORDING_FAILED] = {"RecordingFailed", NEED_RECORDING, NULL},
    [ARI_EV_BRIDGE_CREATED] = {"BridgeCreated", NEED_BRIDGE, NULL},
    [ARI_EV_BRIDGE_DESTROYED] = {"BridgeDestroyed", NEED_BRIDGE, NULL},
    [ARI_EV_APPLICATION_REPLACED] = {"ApplicationReplaced", NEED_APP, NULL},
    [ARI_EV_DIAL] = {"Dial", 0, parse_dial},
};

static const char *const chan_state_names[ARI_CHAN__COUNT] = {
    [ARI_CHAN_UNKNOWN] = "Unknown",  [ARI_CHAN_DOWN] = "Down",
    [ARI_CHAN_RSRVD] = "Rsrvd",      [ARI_CHAN_OFFHOOK] = "OffHook",
    [ARI_CHAN_DIALING] = "Dialing",  [ARI_CHAN_RING] = "Ring",
    [ARI_CHAN_RINGING] = "Ringing",  [ARI_CHAN_UP] = "Up",
    [ARI_CHAN_BUSY] = "Busy",        [ARI_CHAN_DIALING_OFFHOOK] = "Dialing Offhook",
    [ARI_CHAN_PRERING] = "Pre-ring",
};

static const char *const pb_state_names[ARI_PB__COUNT] = {
    [ARI_PB_UNKNOWN] = "unknown", [ARI_PB_QUEUED] = "queued",
    [ARI_PB_PLAYING] = "playing", [ARI_PB_CONTINUING] = "continuing",
    [ARI_PB_DONE] = "done",       [ARI_PB_FAILED] = "failed",
};

static const char *const rec_state_names[ARI_REC__COUNT] = {
    [ARI_REC_UNKNOWN] = "unknown",     [ARI_REC_QUEUED] = "queued",
    [ARI_REC_RECORDING] = "recording", [ARI_REC_PAUSED] = "paused",
    [ARI_REC_DONE] = "done",           [ARI_REC_FAILED] = "failed",
    [ARI_REC_CANCELED] = "canceled",
};

const char *ari_event_type_name(ari_event_type t)
{
    return ((unsigned)t < ARI_EV__COUNT) ? types[t].name : "?";
}

const char *ari_chan_state_name(ari_chan_state s)
{
    return ((unsigned)s < ARI_CHAN__COUNT) ? chan_state_names[s] : "?";
}

const char *ari_playback_state_name(ari_playback_state s)
{
    return ((unsigned)s < ARI_PB__COUNT) ? pb_state_names[s] : "?";
}

const char *ari_recording_state_name(ari_recording_state s)
{
    return ((unsigned)s < ARI_REC__COUNT) ? rec_state_names[s] : "?";
}

ari_event_type ari_event_type_from_name(const char *name)
{
    for (int t = ARI_EV_UNKNOWN + 1; name && t < ARI_EV__COUNT; t++) {
        if (strcmp(types[t].name, name) == 0)
            return (ari_event_type)t;
    }
    return ARI_EV_UNKNOWN;
}

/* Index of s in names[0..n), or 0 (every table's UNKNOWN) when absent. */
static int lookup(const char *const *names, int n, const char *s)
{
    for (int i = 1; i < n; i++) {
        if (strcmp(names[i], s) == 0)
            return i;
    }
    return 0;
}

/* Prepends "prefix." to the message already in err, so a nested member's
 * error reads "channel.id: missing". */
static int prefix_err(int rc, const char *prefix, char *err, size_t errlen)
{
    if (!err || errlen == 0)
        return rc;
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", err);
    snprintf(err, errlen, "%s.%s", prefix, tmp);
    return rc;
}

/* An informational string (caller id, dialplan app): a bad or oversized
 * value becomes "" instead of failing the event, because losing a
 * StasisStart over a caller name with a control byte would lose the call. */
static const char *soft_str(const json_t *obj, const char *key, size_t maxlen)
{
    const char *s = "";
    if (jx_get_str_opt(obj, key, maxlen, "", &s, NULL, 0) != 0)
        return "";
    return s;
}

/* Reads a CallerID object {name, number}; absent or malformed gives "". */
static void parse_callerid(const json_t *chan, const char *key, const char **name,
                           const char **number)
{
    json_t *o = json_object_get(chan, key);
    *name = json_is_object(o) ? soft_str(o, "name", ARI_EVENT_MAX_STR) : "";
    *number = json_is_object(o) ? soft_str(o, "number", ARI_EVENT_MAX_STR) : "";
}

/* Reads the channel's dialplan location; absent members get defaults. */
static void parse_dialplan(const json_t *chan, ari_channel *c)
{
    json_t *d = json_object_get(chan, "dialplan");
    long long prio = -1;
    if (!json_is_object(d)) {
        c->context = c->exten = c->app_name = c->app_data = "";
        c->priority = -1;
        return;
    }
    c->context = soft_str(d, "context", ARI_EVENT_MAX_STR);
    c->exten = soft_str(d, "exten", ARI_EVENT_MAX_STR);
    c->app_name = soft_str(d, "app_name", ARI_EVENT_MAX_STR);
    c->app_data = soft_str(d, "app_data", MAX_LONG);
    if (jx_get_int_opt(d, "priority", 0, INT32_MAX, -1, &prio, NULL, 0) != 0)
        prio = -1;
    c->priority = prio;
}

/* Validates a Channel object into c. id, name and state are what the queue
 * acts on, so they are required and validated; the rest is informational. */
static int parse_channel_obj(const json_t *o, ari_channel *c, char *err, size_t errlen)
{
    int rc = jx_get_id(o, "id", ARI_EVENT_MAX_ID, &c->id, err, errlen);
    if (rc == 0)
        rc = jx_get_str(o, "name", ARI_EVENT_MAX_STR, &c->name, err, errlen);
    if (rc == 0)
        rc = jx_get_str(o, "state", MAX_SHORT, &c->state_name, err, errlen);
    if (rc != 0)
        return rc;
    c->state = (ari_chan_state)lookup(chan_state_names, ARI_CHAN__COUNT, c->state_name);
    if (c->state == ARI_CHAN_UNKNOWN && strcmp(c->state_name, "Rsrved") == 0)
        c->state = ARI_CHAN_RSRVD; /* api-docs' spelling of ast_state2str's "Rsrvd" */
    parse_callerid(o, "caller", &c->caller_name, &c->caller_number);
    parse_callerid(o, "connected", &c->connected_name, &c->connected_number);
    parse_dialplan(o, c);
    return 0;
}

/* Parses the Channel object root[key] into c; errors read "key.member". */
static int parse_channel(const json_t *root, const char *key, ari_channel *c, char *err,
                         size_t errlen)
{
    json_t *o = NULL;
    int rc = jx_get_obj(root, key, &o, err, errlen);
    if (rc != 0)
        return rc;
    rc = parse_channel_obj(o, c, err, errlen);
    return rc ? prefix_err(rc, key, err, errlen) : 0;
}

/* Splits "channel:ID" / "bridge:ID" into kind and a copied, validated id. */
static int parse_target(const char *uri, ari_target_kind *kind, char *id, char *err,
                        size_t errlen)
{
    const char *rest = NULL;
    if (strncmp(uri, "channel:", 8) == 0) {
        *kind = ARI_TARGET_CHANNEL;
        rest = uri + 8;
    } else if (strncmp(uri, "bridge:", 7) == 0) {
        *kind = ARI_TARGET_BRIDGE;
        rest = uri + 7;
    } else {
        *kind = ARI_TARGET_OTHER;
        id[0] = '\0';
        return 0;
    }
    if (!ids_valid(rest, ARI_EVENT_MAX_ID)) {
        if (err && errlen)
            snprintf(err, errlen, "target_uri: bad id after scheme");
        return ARIQ_EINVAL;
    }
    memcpy(id, rest, strlen(rest) + 1);
    return 0;
}

static int parse_bridge(const json_t *root, ari_bridge *b, char *err, size_t errlen)
{
    json_t *o = NULL, *chans;
    int rc = jx_get_obj(root, "bridge", &o, err, errlen);
    if (rc != 0)
        return rc;
    rc = jx_get_id(o, "id", ARI_EVENT_MAX_ID, &b->id, err, errlen);
    if (rc == 0)
        rc =
            jx_get_str_opt(o, "bridge_type", MAX_SHORT, "", &b->bridge_type, err, errlen);
    if (rc == 0)
        rc = jx_get_str_opt(o, "technology", MAX_SHORT, "", &b->technology, err, errlen);
    if (rc != 0)
        return prefix_err(rc, "bridge", err, errlen);
    b->kind = strcmp(b->bridge_type, "mixing") == 0    ? ARI_BRIDGE_MIXING
              : strcmp(b->bridge_type, "holding") == 0 ? ARI_BRIDGE_HOLDING
                                                       : ARI_BRIDGE_OTHER;
    b->name = soft_str(o, "name", ARI_EVENT_MAX_STR);
    chans = json_object_get(o, "channels");
    b->channel_count = json_is_array(chans) ? json_array_size(chans) : 0;
    return 0;
}

static int parse_playback(const json_t *root, ari_playback *p, char *err, size_t errlen)
{
    json_t *o = NULL;
    int rc = jx_get_obj(root, "playback", &o, err, errlen);
    if (rc != 0)
        return rc;
    rc = jx_get_id(o, "id", ARI_EVENT_MAX_ID, &p->id, err, errlen);
    if (rc == 0)
        rc = jx_get_str(o, "state", MAX_SHORT, &p->state_name, err, errlen);
    if (rc == 0)
        rc = jx_get_str(o, "media_uri", ARI_EVENT_MAX_STR, &p->media_uri, err, errlen);
    if (rc == 0)
        rc = jx_get_str_opt(o, "next_media_uri", ARI_EVENT_MAX_STR, "",
                            &p->next_media_uri, err, errlen);
    if (rc == 0)
        rc = jx_get_str(o, "target_uri", ARI_EVENT_MAX_STR, &p->target_uri, err, errlen);
    if (rc == 0)
        rc = parse_target(p->target_uri, &p->target_kind, p->target_id, err, errlen);
    if (rc != 0)
        return prefix_err(rc, "playback", err, errlen);
    p->state = (ari_playback_state)lookup(pb_state_names, ARI_PB__COUNT, p->state_name);
    return 0;
}

static int parse_recording(const json_t *root, ari_recording *r, char *err, size_t errlen)
{
    json_t *o = NULL;
    int rc = jx_get_obj(root, "recording", &o, err, errlen);
    if (rc != 0)
        return rc;
    rc = jx_get_id(o, "name", ARI_EVENT_MAX_ID, &r->name, err, errlen);
    if (rc == 0)
        rc = jx_get_str(o, "state", MAX_SHORT, &r->state_name, err, errlen);
    if (rc == 0)
        rc = jx_get_str_opt(o, "format", MAX_SHORT, "", &r->format, err, errlen);
    if (rc == 0)
        rc = jx_get_str(o, "target_uri", ARI_EVENT_MAX_STR, &r->target_uri, err, errlen);
    if (rc == 0)
        rc = parse_target(r->target_uri, &r->target_kind, r->target_id, err, errlen);
    if (rc == 0)
        rc = jx_get_str_opt(o, "cause", ARI_EVENT_MAX_STR, "", &r->cause, err, errlen);
    if (rc == 0)
        rc = jx_get_int_opt(o, "duration", 0, INT32_MAX, -1, &r->duration_s, err, errlen);
    if (rc != 0)
        return prefix_err(rc, "recording", err, errlen);
    r->state =
        (ari_recording_state)lookup(rec_state_names, ARI_REC__COUNT, r->state_name);
    return 0;
}

static int parse_args(const json_t *root, ari_event *ev, char *err, size_t errlen)
{
    json_t *arr = NULL;
    int rc = jx_get_array(root, "args", ARI_EVENT_MAX_ARGS, &arr, err, errlen);
    for (size_t i = 0; rc == 0 && i < json_array_size(arr); i++) {
        char what[32];
        snprintf(what, sizeof what, "args[%zu]", i);
        rc = jx_check_str(json_array_get(arr, i), what, ARI_EVENT_MAX_ARG, &ev->args[i],
                          err, errlen);
        ev->nargs = i + 1;
    }
    if (rc != 0)
        ev->nargs = 0;
    return rc;
}

static int parse_dtmf(const json_t *root, ari_event *ev, char *err, size_t errlen)
{
    const char *d = NULL;
    int rc = jx_get_str(root, "digit", MAX_SHORT, &d, err, errlen);
    if (rc != 0)
        return rc;
    if (strlen(d) != 1 || !strchr("0123456789*#ABCD", d[0])) {
        if (err && errlen)
            snprintf(err, errlen, "digit: not one of 0-9 * # A-D");
        return ARIQ_EINVAL;
    }
    ev->digit = d[0];
    return jx_get_int(root, "duration_ms", 0, INT32_MAX, &ev->duration_ms, err, errlen);
}

static int parse_hangup(const json_t *root, ari_event *ev, char *err, size_t errlen)
{
    int rc = jx_get_int_opt(root, "cause", 0, 65535, -1, &ev->cause, err, errlen);
    if (rc == 0)
        rc = jx_get_bool_opt(root, "soft", false, &ev->soft, err, errlen);
    return rc;
}

static int parse_destroyed(const json_t *root, ari_event *ev, char *err, size_t errlen)
{
    int rc = jx_get_int(root, "cause", 0, 65535, &ev->cause, err, errlen);
    if (rc == 0)
        rc =
            jx_get_str(root, "cause_txt", ARI_EVENT_MAX_STR, &ev->cause_txt, err, errlen);
    return rc;
}

static int parse_varset(const json_t *root, ari_event *ev, char *err, size_t errlen)
{
    int rc = jx_get_str(root, "variable", ARI_EVENT_MAX_STR, &ev->variable, err, errlen);
    if (rc == 0)
        rc = jx_get_str(root, "value", MAX_LONG, &ev->value, err, errlen);
    return rc;
}

/* Dial: the peer is required; the caller (absent for an originate) goes into
 * ev->channel so a handler finds "the channel" in the same place. */
static int parse_dial(const json_t *root, ari_event *ev, char *err, size_t errlen)
{
    int rc = parse_channel(root, "peer", &ev->peer, err, errlen);
    if (rc != 0)
        return rc;
    ev->has_peer = true;
    if (json_object_get(root, "caller") &&
        !json_is_null(json_object_get(root, "caller"))) {
        rc = parse_channel(root, "caller", &ev->channel, err, errlen);
        if (rc != 0)
            return rc;
        ev->has_channel = true;
    }
    rc = jx_get_str(root, "dialstatus", MAX_SHORT, &ev->dialstatus, err, errlen);
    if (rc == 0)
        rc = jx_get_str_opt(root, "dialstring", ARI_EVENT_MAX_STR, "", &ev->dialstring,
                            err, errlen);
    return rc;
}

/* "2026-11-22T21:56:54.021+0000" -> ms since the epoch, or -1. */
static int64_t parse_timestamp(const char *s)
{
    int y, mo, d, h, mi, sec, ms, tzh, tzm, n = 0;
    char sign;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c%2d%2d%n", &y, &mo, &d, &h, &mi, &sec,
               &ms, &sign, &tzh, &tzm, &n) != 10 ||
        s[n] != '\0' || (sign != '+' && sign != '-'))
        return -1;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
        mi > 59 || sec > 60 || ms < 0 || tzh > 23 || tzm > 59 || h < 0 || mi < 0 ||
        sec < 0 || tzh < 0 || tzm < 0)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    int64_t t = (int64_t)timegm(&tm);
    int64_t off = (int64_t)tzh * 3600 + tzm * 60;
    t -= (sign == '+') ? off : -off;
    return t * 1000 + ms;
}

/* Members every event may carry. None is required except ApplicationReplaced's
 * application: an event is still worth delivering without a timestamp. */
static int parse_common(const json_t *root, const type_desc *td, ari_event *ev, char *err,
                        size_t errlen)
{
    int rc;
    if (td->members & NEED_APP)
        rc = jx_get_str(root, "application", ARI_EVENT_MAX_STR, &ev->application, err,
                        errlen);
    else
        rc = jx_get_str_opt(root, "application", ARI_EVENT_MAX_STR, "", &ev->application,
                            err, errlen);
    if (rc == 0)
        rc = jx_get_str_opt(root, "asterisk_id", MAX_SHORT, "", &ev->asterisk_id, err,
                            errlen);
    if (rc == 0)
        rc =
            jx_get_str_opt(root, "timestamp", MAX_SHORT, "", &ev->timestamp, err, errlen);
    if (rc == 0)
        ev->timestamp_ms = parse_timestamp(ev->timestamp);
    return rc;
}

/* Fills the sub-objects the type's table entry asks for. */
static int parse_members(const json_t *root, const type_desc *td, ari_event *ev,
                         char *err, size_t errlen)
{
    int rc = 0;
    bool want_chan = (td->members & NEED_CHANNEL) ||
                     ((td->members & OPT_CHANNEL) && json_object_get(root, "channel") &&
                      !json_is_null(json_object_get(root, "channel")));
    if (want_chan) {
        rc = parse_channel(root, "channel", &ev->channel, err, errlen);
        ev->has_channel = (rc == 0);
    }
    if (rc == 0 && (td->members & NEED_BRIDGE)) {
        rc = parse_bridge(root, &ev->bridge, err, errlen);
        ev->has_bridge = (rc == 0);
    }
    if (rc == 0 && (td->members & NEED_PLAYBACK)) {
        rc = parse_playback(root, &ev->playback, err, errlen);
        ev->has_playback = (rc == 0);
    }
    if (rc == 0 && (td->members & NEED_RECORDING)) {
        rc = parse_recording(root, &ev->recording, err, errlen);
        ev->has_recording = (rc == 0);
    }
    if (rc == 0 && td->extra)
        rc = td->extra(root, ev, err, errlen);
    return rc;
}

static holder *holder_new(json_t *root)
{
    holder *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->priv.root = root;
    h->ev.priv = &h->priv;
    h->ev.timestamp_ms = -1;
    h->ev.duration_ms = -1;
    h->ev.cause = -1;
    h->ev.cause_txt = h->ev.dialstatus = h->ev.dialstring = "";
    h->ev.variable = h->ev.value = "";
    return h;
}

int ari_event_parse(const char *buf, size_t len, ari_event **out, char *err,
                    size_t errlen)
{
    json_t *root = NULL;
    holder *h = NULL;
    const char *tname = "message";
    char why[256] = "";
    int rc = jx_load(buf, len, ARI_EVENT_MAX_MSG, &root, why, sizeof why);
    if (rc == 0 && !json_is_object(root)) {
        snprintf(why, sizeof why, "not a JSON object");
        rc = ARIQ_EINVAL;
    }
    if (rc == 0)
        rc = jx_get_str(root, "type", MAX_SHORT, &tname, why, sizeof why);
    if (rc != 0)
        goto fail;
    ari_event_type t = ari_event_type_from_name(tname);
    h = holder_new(root);
    if (!h) {
        rc = ARIQ_ENOMEM;
        snprintf(why, sizeof why, "out of memory");
        goto fail;
    }
    h->ev.type = t;
    h->ev.type_name = tname;
    rc = parse_common(root, &types[t], &h->ev, why, sizeof why);
    if (rc == 0)
        rc = parse_members(root, &types[t], &h->ev, why, sizeof why);
    if (rc != 0)
        goto fail;
    *out = &h->ev;
    return 0;
fail:
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", tname, why);
    free(h);
    json_decref(root);
    return rc;
}

void ari_event_free(ari_event *ev)
{
    if (!ev)
        return;
    holder *h = (holder *)ev;
    json_decref(h->priv.root);
    free(h);
}

const char *ari_event_channel_id(const ari_event *ev)
{
    if (ev->has_channel)
        return ev->channel.id;
    if (ev->has_peer)
        return ev->peer.id;
    if (ev->has_playback && ev->playback.target_kind == ARI_TARGET_CHANNEL)
        return ev->playback.target_id;
    if (ev->has_recording && ev->recording.target_kind == ARI_TARGET_CHANNEL)
        return ev->recording.target_id;
    return NULL;
}

const char *ari_event_bridge_id(const ari_event *ev)
{
    if (ev->has_bridge)
        return ev->bridge.id;
    if (ev->has_playback && ev->playback.target_kind == ARI_TARGET_BRIDGE)
        return ev->playback.target_id;
    if (ev->has_recording && ev->recording.target_kind == ARI_TARGET_BRIDGE)
        return ev->recording.target_id;
    return NULL;
}

const json_t *ari_event_json(const ari_event *ev)
{
    return ev->priv->root;
}

int ari_channel_from_json(const json_t *obj, ari_channel *out, char *err, size_t errlen)
{
    ari_channel c;
    memset(&c, 0, sizeof c);
    if (!json_is_object(obj)) {
        if (err && errlen)
            snprintf(err, errlen, "channel: not an object");
        return ARIQ_EINVAL;
    }
    int rc = parse_channel_obj(obj, &c, err, errlen);
    if (rc == 0)
        *out = c;
    return rc;
}
