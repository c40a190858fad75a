/* event.h - typed, validated ARI events.
 *
 * ari_event_parse() turns one message of the /ari/events WebSocket into an
 * ari_event whose fields are already checked against explicit limits (DESIGN
 * section 6), so a handler never re-validates what Asterisk sent:
 *
 *   - ids (channel, bridge, playback, recording name) are non-empty, at most
 *     ARI_EVENT_MAX_ID bytes, only [A-Za-z0-9._-]: safe in a URL path and a
 *     Redis key. Asterisk's own ids ("1795384614.39", UUIDs) and the ids ariq
 *     chooses all fit. A recording whose name has a '/' (a subdirectory) is
 *     rejected: ariq never names one that way.
 *   - names and other strings are printable (no control bytes) and bounded;
 *     channel *names* are not ids ("Local/c-support-0@accept-00000002;2").
 *   - args: at most ARI_EVENT_MAX_ARGS, each at most ARI_EVENT_MAX_ARG bytes.
 *   - digit: exactly one of 0-9 * # A-D.
 *   - the whole message: at most ARI_EVENT_MAX_MSG bytes.
 *
 * Which members a type requires is in the type table in event.c: what the
 * queue needs to act (a StasisStart without a channel id is useless), not
 * every member api-docs marks required. Members that are optional get a
 * default: "" for strings, ARI_CHAN_UNKNOWN / ARI_PB_UNKNOWN / ARI_REC_UNKNOWN
 * for unknown state names, -1 for absent numbers. Informational strings
 * (caller id, dialplan app and data, bridge name) that fail their check
 * become "" instead of failing the event: a caller name with a control byte
 * must not cost the call its StasisStart.
 *
 * The struct is public and read-only (unlike ariq's opaque objects) because it
 * is a record every leg handler reads many fields of; its storage stays
 * private. Every const char * in it is BORROWED from the event and lives until
 * ari_event_free(). Never NULL for a present sub-object; strings of absent
 * sub-objects are NULL (check has_channel etc.). */
#ifndef ARIQ_ARI_EVENT_H
#define ARIQ_ARI_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_t; /* jansson's */

#define ARI_EVENT_MAX_MSG  (1024 * 1024) /* bytes in one WebSocket message */
#define ARI_EVENT_MAX_ID   150           /* ids; Asterisk's AST_MAX_UNIQUEID */
#define ARI_EVENT_MAX_STR  512           /* names, caller ids, uris, causes */
#define ARI_EVENT_MAX_ARGS 16            /* Stasis() arguments */
#define ARI_EVENT_MAX_ARG  512           /* bytes in one argument */

/* Event types ariq knows. Dispatch on these with a table indexed by type. */
typedef enum {
    ARI_EV_UNKNOWN = 0, /* any other type: parsed only as far as "type" */
    ARI_EV_STASIS_START,
    ARI_EV_STASIS_END,
    ARI_EV_CHANNEL_DTMF_RECEIVED,
    ARI_EV_CHANNEL_HANGUP_REQUEST,
    ARI_EV_CHANNEL_DESTROYED,
    ARI_EV_CHANNEL_STATE_CHANGE,
    ARI_EV_CHANNEL_CREATED,
    ARI_EV_CHANNEL_VARSET,
    ARI_EV_CHANNEL_ENTERED_BRIDGE,
    ARI_EV_CHANNEL_LEFT_BRIDGE,
    ARI_EV_PLAYBACK_STARTED,
    ARI_EV_PLAYBACK_CONTINUING,
    ARI_EV_PLAYBACK_FINISHED,
    ARI_EV_RECORDING_STARTED,
    ARI_EV_RECORDING_FINISHED,
    ARI_EV_RECORDING_FAILED,
    ARI_EV_BRIDGE_CREATED,
    ARI_EV_BRIDGE_DESTROYED,
    ARI_EV_APPLICATION_REPLACED,
    ARI_EV_DIAL,
    ARI_EV__COUNT
} ari_event_type;

/* Channel states as Asterisk names them (ast_state2str). */
typedef enum {
    ARI_CHAN_UNKNOWN = 0, /* "Unknown", or a name we do not know */
    ARI_CHAN_DOWN,
    ARI_CHAN_RSRVD,
    ARI_CHAN_OFFHOOK,
    ARI_CHAN_DIALING,
    ARI_CHAN_RING, /* arrived, not answered: a caller entering Stasis */
    ARI_CHAN_RINGING,
    ARI_CHAN_UP,
    ARI_CHAN_BUSY,
    ARI_CHAN_DIALING_OFFHOOK,
    ARI_CHAN_PRERING,
    ARI_CHAN__COUNT
} ari_chan_state;

typedef enum {
    ARI_PB_UNKNOWN = 0,
    ARI_PB_QUEUED,
    ARI_PB_PLAYING,
    ARI_PB_CONTINUING,
    ARI_PB_DONE, /* also after DELETE /playbacks/{id} */
    ARI_PB_FAILED,
    ARI_PB__COUNT
} ari_playback_state;

typedef enum {
    ARI_REC_UNKNOWN = 0,
    ARI_REC_QUEUED,
    ARI_REC_RECORDING,
    ARI_REC_PAUSED,
    ARI_REC_DONE, /* stopped, or discarded (the file is gone then) */
    ARI_REC_FAILED,
    ARI_REC_CANCELED,
    ARI_REC__COUNT
} ari_recording_state;

/* What a playback or recording runs on, from its target_uri. */
typedef enum {
    ARI_TARGET_OTHER = 0, /* endpoint:, deviceState:, ... target_id is NULL */
    ARI_TARGET_CHANNEL,   /* "channel:ID" */
    ARI_TARGET_BRIDGE,    /* "bridge:ID" */
} ari_target_kind;

typedef struct ari_channel {
    const char *id;   /* an id (see above) */
    const char *name; /* "PJSIP/100-00000001", "Local/x@ctx-0000000e;2" */
    ari_chan_state state;
    const char *state_name;                        /* as received */
    const char *caller_number, *caller_name;       /* "" when absent */
    const char *connected_number, *connected_name; /* "" when absent */
    const char *context, *exten;                   /* dialplan location; "" when absent */
    long long priority;                            /* -1 when absent */
    const char *app_name, *app_data;               /* current dialplan application */
} ari_channel;

typedef enum {
    ARI_BRIDGE_OTHER = 0, /* absent or another bridge_type */
    ARI_BRIDGE_MIXING,
    ARI_BRIDGE_HOLDING,
} ari_bridge_kind;

typedef struct ari_bridge {
    const char *id;
    ari_bridge_kind kind;    /* from bridge_type */
    const char *bridge_type; /* "mixing", "holding" */
    const char *technology;  /* "simple_bridge", "holding_bridge", ... */
    const char *name;        /* "" when absent */
    size_t channel_count;    /* entries in "channels" */
} ari_bridge;

typedef struct ari_playback {
    const char *id;
    ari_playback_state state;
    const char *state_name;
    const char *media_uri;      /* "sound:queue-thereare" */
    const char *next_media_uri; /* "" when absent */
    const char *target_uri;     /* "channel:1795384614.39" */
    ari_target_kind target_kind;
    char target_id[ARI_EVENT_MAX_ID + 1]; /* the id after "channel:"/"bridge:" */
} ari_playback;

typedef struct ari_recording {
    const char *name;
    ari_recording_state state;
    const char *state_name;
    const char *format;     /* "wav" */
    const char *target_uri; /* "bridge:83d0be22-..." */
    ari_target_kind target_kind;
    char target_id[ARI_EVENT_MAX_ID + 1];
    const char *cause;    /* RecordingFailed's reason; "" when absent */
    long long duration_s; /* -1 when absent */
} ari_recording;

typedef struct ari_event_priv ari_event_priv;

typedef struct ari_event {
    ari_event_type type;
    const char *type_name;   /* as received ("ChannelTalkingStarted" for UNKNOWN) */
    const char *application; /* "" when absent */
    const char *asterisk_id; /* "" when absent */
    const char *timestamp;   /* "2026-11-22T21:56:54.021+0000"; "" when absent */
    int64_t timestamp_ms;    /* the same in ms since the epoch; -1 if absent/bad */

    bool has_channel; /* channel: most channel events; Dial's caller */
    ari_channel channel;
    bool has_peer; /* Dial's peer */
    ari_channel peer;
    bool has_bridge;
    ari_bridge bridge;
    bool has_playback;
    ari_playback playback;
    bool has_recording;
    ari_recording recording;

    const char *args[ARI_EVENT_MAX_ARGS]; /* StasisStart; nargs may be 0 */
    size_t nargs;
    char digit;             /* ChannelDtmfReceived: '0'-'9', '*', '#', 'A'-'D' */
    long long duration_ms;  /* ChannelDtmfReceived; -1 otherwise */
    long long cause;        /* ChannelHangupRequest / ChannelDestroyed; -1 if absent */
    const char *cause_txt;  /* ChannelDestroyed; "" otherwise */
    bool soft;              /* ChannelHangupRequest */
    const char *dialstatus; /* Dial: "", "RINGING", "ANSWER", "BUSY", ... */
    const char *dialstring; /* Dial; "" when absent */
    const char *variable, *value; /* ChannelVarset */

    ari_event_priv *priv; /* storage; not for callers */
} ari_event;

/* Parses one message buf[0..len) (need not be NUL-terminated). On success
 * returns 0 and *out is YOURS: free it with ari_event_free(). Unknown types
 * succeed with type ARI_EV_UNKNOWN. On failure returns ARIQ_EINVAL (not JSON,
 * not an object, a required member missing or of the wrong type, a bad id or
 * digit) or ARIQ_ERANGE (a limit exceeded) or ARIQ_ENOMEM, writes a message
 * naming the type and member into err (when err is not NULL; errlen >= 128
 * gives the whole message), and allocates nothing (*out untouched). */
int ari_event_parse(const char *buf, size_t len, ari_event **out, char *err,
                    size_t errlen);

/* Frees the event and everything it points to. NULL is a no-op. */
void ari_event_free(ari_event *ev);

/* The channel an event concerns, for routing it to the leg that owns that
 * channel: channel.id; else Dial's peer.id; else the id in a playback's or
 * recording's "channel:ID" target. NULL when it concerns no channel (a
 * bridge playback, BridgeDestroyed). BORROWED from ev. */
const char *ari_event_channel_id(const ari_event *ev);

/* Likewise the bridge: bridge.id, or a "bridge:ID" target; NULL if none. */
const char *ari_event_bridge_id(const ari_event *ev);

/* The whole message as jansson parsed it, for members ariq does not type
 * (channelvars, userevent). BORROWED: lives as long as ev; do not decref. */
const struct json_t *ari_event_json(const ari_event *ev);

/* Validates one ARI Channel model (from a REST answer: GET /channels when
 * reconciling after a reconnect, an originate's 200) exactly as an event's
 * channel. Strings in *out are BORROWED from obj. Returns 0, or ARIQ_EINVAL /
 * ARIQ_ERANGE with a message in err and *out untouched. */
int ari_channel_from_json(const struct json_t *obj, ari_channel *out, char *err,
                          size_t errlen);

/* Static names; never NULL ("?" when out of range). */
const char *ari_event_type_name(ari_event_type t);
const char *ari_chan_state_name(ari_chan_state s);
const char *ari_playback_state_name(ari_playback_state s);
const char *ari_recording_state_name(ari_recording_state s);

/* The type whose name is `name`, or ARI_EV_UNKNOWN. */
ari_event_type ari_event_type_from_name(const char *name);

#endif
