/* sim_internal.h - what the simulator core's files share. Not for the host.
 *
 * Object model (one owner each, all owned by `sim`):
 *   sim_node      one simulated Asterisk: apps attached, dialplan, peers.
 *   sim_chan      a channel. Live ones are in s->chans (id -> chan); when it
 *                 ends it stays in s->chans with alive=false so the oracle can
 *                 still read its timeline until /sim/reset.
 *   sim_bridge    a bridge, in s->bridges until DELETE or node down.
 *   sim_pb        a playback, in s->pbs while queued or playing.
 *   sim_rec       a recording; live ones in s->recs_live ("node/name"), all of
 *                 them (oracle) in s->recs_all, stored ones in s->recs_stored.
 *
 * Channel commands run one after another (sim_cmd queue per channel), like a
 * Stasis control's command queue in Asterisk: a playback holds the queue until
 * it ends, so an addChannel sent meanwhile happens only then. */
#ifndef ARIQ_SIM_INTERNAL_H
#define ARIQ_SIM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_core.h"
#include "sim_map.h"

#define SIM_ID_MAX 128
#define SIM_MAX_NODES 16

typedef struct sim_bridge sim_bridge;
typedef struct sim_pb sim_pb;
typedef struct sim_chan sim_chan;
typedef struct sim_ctimer sim_ctimer;
typedef struct sim_rec sim_rec;

/* A core-owned timer: wraps the host's so sim_free can cancel everything. */
struct sim_ctimer {
    sim *s;
    sim_timer *h;
    sim_timer_fn fn;
    void *arg;
    sim_ctimer *prev, *next;
};

typedef enum {
    CH_DOWN,
    CH_RING,
    CH_RINGING,
    CH_UP,
} chan_state;

typedef enum {
    CMD_ANSWER,
    CMD_PLAY,     /* pb */
    CMD_MOVE,     /* bridge id in str */
    CMD_REMOVE,   /* bridge id in str */
    CMD_CONTINUE, /* str = context, str2 = exten, num = priority */
    CMD_SETVAR,   /* str = name, str2 = value */
    CMD_MOH,      /* str = class or NULL to stop */
    CMD_DTMF,     /* str = digit, num = duration: held back by a recording */
} cmd_kind;

typedef struct sim_cmd {
    cmd_kind kind;
    char *str, *str2;
    long num;
    sim_pb *pb;
    struct sim_cmd *next;
} sim_cmd;

/* How the far end of an originate behaves (rules from /sim/originate-rules). */
typedef enum { OUT_ANSWER, OUT_NOANSWER, OUT_BUSY, OUT_FAIL } out_kind;

struct sim_chan {
    sim *s;
    char id[SIM_ID_MAX];
    char name[SIM_ID_MAX];
    int node;
    chan_state state;
    char caller_name[64], caller_number[64];
    char context[80], exten[80], app_name[32], app_data[200];
    int priority;
    uint64_t created_ms;
    bool alive;
    bool hanging;         /* party hung up; teardown on the next loop turn */
    sim_ctimer *hup_timer; /* pending teardown or link hangup */
    char *stasis_app;     /* in Stasis of this app, or NULL */
    char *sub_app;        /* originated by this app: gets its events to the end */
    json_t *vars;         /* object name -> string */
    sim_bridge *bridge;
    sim_chan *link_peer;  /* the other leg of a node link */
    bool link_out;        /* this leg originated the link */
    bool chan_moh;        /* channel MOH on */
    bool bridgepeer;      /* BRIDGEPEER was set by a mixing bridge */
    bool dp_wait;         /* after Stasis the dialplan waits (else it ends) */
    bool hearing_moh;     /* oracle: last reported MOH state */
    sim_pb *playing;      /* the channel playback holding the queue */
    sim_rec *rec_hold;    /* a recording of this channel holds it too */
    sim_cmd *q_head, *q_tail;
    bool q_running;       /* guards re-entry of the queue runner */
    /* originate */
    sim_ctimer *otimer;
    char dialstring[160]; /* endpoint without "TECH/" (Dial events) */
    char endpoint[200];
    int64_t timeout_ms;
    int far_node;         /* link: node the far leg lives on, else -1 */
    json_t *orig_args;    /* args for StasisStart once answered */
    /* oracle */
    json_t *timeline;     /* array, owned */
    json_t *hangup_info;  /* object or NULL */
};

struct sim_bridge {
    char id[SIM_ID_MAX];
    char key[SIM_ID_MAX + 16]; /* "node/id": each Asterisk has its own bridge ids */
    char name[128];
    int node;
    bool mixing;
    uint64_t created_ms;
    sim_chan **members;
    size_t n, cap;
    json_t *ids;          /* member ids, kept in step with members: the
                           * snapshots share it (events are serialized at
                           * once, so 10,000 members cost no copies) */
    bool announcer;       /* MOH announcer present */
    char moh_class[64];
    char *app;            /* an app that had a channel here: BridgeDestroyed */
    char recorder[48];    /* "Recorder/ARI-0000000a;2" while recorded, else "" */
    size_t n_pbs;         /* bridge playbacks on it (skip scans when 0) */
};

typedef enum { PB_QUEUED, PB_PLAYING, PB_DONE } pb_state;

struct sim_pb {
    sim *s;
    char id[SIM_ID_MAX];
    int node;
    json_t *media;        /* array of strings */
    size_t idx;
    char lang[16];
    char target_uri[SIM_ID_MAX + 16];
    sim_chan *chan;       /* channel target, or NULL */
    sim_bridge *bridge;   /* bridge target, or NULL */
    char *app;            /* where its events go */
    pb_state state;
    bool paused;
    sim_ctimer *timer;
    json_t *heard;        /* oracle entries (borrowed from timelines) of the current item */
};

struct sim_rec {
    char name[SIM_ID_MAX];
    char format[16];
    char target_uri[SIM_ID_MAX + 16];
    int node;
    char *app;
    char state[16];       /* queued recording paused done failed */
    bool muted;
    bool stored, discarded;
    bool deleted;         /* stored, then DELETE /recordings/stored/{name} */
    json_t *spans;        /* array of {start,end} in sim ms */
    uint64_t span_start;
    json_t *span_chans;   /* who was in the target when the open span began */
    uint64_t started_ms, ended_ms;
    uint64_t dur_ms;      /* recorded (not paused) */
};

typedef struct sim_rule {
    char match[160];      /* prefix of the endpoint */
    out_kind kind;
    int64_t delay_ms;     /* answer delay (unscaled) */
    struct sim_rule *next;
} sim_rule;

typedef struct sim_dp {
    char context[80];
    char app[64];
    char args[200];
    struct sim_dp *next;
} sim_dp;

typedef struct sim_node {
    char name[64];
    char asterisk_id[64];
    bool up;
    uint64_t started_ms;  /* node (re)start, for /asterisk/info */
    json_t *apps;         /* object app -> attach count */
    json_t *filters;      /* object app -> {"allowed":[types],"disallowed":[types]} */
    sim_dp *dialplan;
} sim_node;

typedef struct sim_peer {
    char tech_peer[96];
    int to_node;
    struct sim_peer *next;
} sim_peer;

struct sim {
    sim_host host;
    double scale;
    sim_node nodes[SIM_MAX_NODES];
    int n_nodes;
    sim_peer *peers;
    sim_rule *rules;
    sim_map *chans;       /* id -> sim_chan (live and ended) */
    sim_map *bridges;     /* id -> sim_bridge */
    sim_map *pbs;         /* id -> sim_pb */
    sim_map *recs_live;   /* "node/name" -> sim_rec */
    sim_map *recs_stored; /* "node/name" -> sim_rec */
    sim_rec **recs;       /* every recording ever made (oracle), owned */
    size_t n_recs, cap_recs;
    size_t live_chans;
    sim_ctimer *timers;
    unsigned long seq;
    int local_seq;
    unsigned recorder_seq;
};

/* Ownership, for every function below: `sim *s` and objects passed in are
 * borrowed; json_t parameters are borrowed unless marked "consumed"; json_t
 * results are new references the caller owns unless marked "borrowed".
 * Objects returned by *_new / *_get are owned by the sim (its maps). */

/* ---- sim_core.c ---- */
uint64_t sim_now(sim *s);                   /* host wall ms (virtual in tests) */
uint64_t sim_scaled(sim *s, uint64_t ms);   /* ms * scale, rounded */
/* A core timer: fn(arg) once after delay_ms. NULL on failure (then fn never
 * runs). The handle dies when fn is called; cancel only before that. */
sim_ctimer *sim_timer_add(sim *s, uint64_t delay_ms, sim_timer_fn fn, void *arg);
void sim_timer_cancel(sim *s, sim_ctimer *t); /* NULL is a no-op */
/* True if a WebSocket for app is attached to node and the node is up. */
bool sim_app_attached(sim *s, int node, const char *app);
char *sim_ts(sim *s, uint64_t ms, char *buf); /* ARI timestamp; buf >= 32 */
/* Sends `ev` (consumed) to `app` on `node`, adding type, timestamp,
 * asterisk_id and application; dropped if nobody listens. */
void sim_emit(sim *s, int node, const char *app, const char *type, json_t *ev);
/* Node reached by "TECH/PEER/rest" (sim_peer_add) and *rest, or ENOTFOUND. */
int sim_peer_find(sim *s, const char *endpoint, const char **rest);
/* The app's event filter (PUT /applications/{app}/eventFilter) keeps
 * events of `type` from it. */
bool sim_event_filtered(const sim *s, int node, const char *app, const char *type);

/* Drops channels, bridges, playbacks, recordings, rules; keeps nodes. */
void sim_reset(sim *s);

/* ---- sim_chan.c ---- */
/* A live channel, indexed by id. NULL if a live one has that id. */
sim_chan *chan_new(sim *s, int node, const char *id, const char *name, chan_state st);
sim_chan *chan_get(sim *s, int node, const char *id); /* live, on node, or NULL */
json_t *chan_json(sim *s, const sim_chan *ch);        /* the ARI Channel model */
const char *chan_state_name(chan_state st);
/* The app that gets ch's events: its Stasis app, else the app that
 * originated it, else NULL. */
const char *chan_event_app(const sim_chan *ch);
/* Emits `type` with "channel" added to `extra` (consumed; NULL = {}). */
/* Some app listens for this channel's events of `type` (attached, not
 * filtered out): worth building the event. */
bool chan_wants(sim *s, const sim_chan *ch, const char *type);
void chan_emit(sim *s, sim_chan *ch, const char *type, json_t *extra);
/* Appends {t, ev: what, ...fields} (fields consumed) to ch's timeline. */
void chan_note(sim *s, sim_chan *ch, const char *what, json_t *fields);
void chan_set_state(sim *s, sim_chan *ch, chan_state st); /* + ChannelStateChange */
/* Queues c (consumed) behind the channel's earlier commands and runs what
 * can run now. A playback or the channel's own recording holds the queue. */
int chan_enqueue(sim *s, sim_chan *ch, sim_cmd *c);
void chan_run_queue(sim *s, sim_chan *ch);
void chan_unblock(sim *s, sim_chan *ch); /* its playback ended: go on */
/* Hangs up now (events in Asterisk's order); `soft` marks the app's DELETE.
 * The link peer follows SIM_LINK_LATENCY_MS (scaled) later. */
void chan_hangup(sim *s, sim_chan *ch, int cause, bool soft, const char *who);
/* The party hangs up: ChannelHangupRequest now, the rest on the next loop
 * turn (Asterisk's window in which a DELETE still answers 204). */
void chan_party_hangup(sim *s, sim_chan *ch, int cause, const char *who);
#define SIM_LINK_LATENCY_MS 5
/* Stasis(app, args): StasisStart if the app is attached, else the channel
 * continues in the dialplan. args consumed (NULL = []). */
void chan_enter_stasis(sim *s, sim_chan *ch, const char *app, json_t *args);
/* Recomputes what MOH the party hears and notes moh_on / moh_off. */
void chan_update_hearing(sim *s, sim_chan *ch);
void chan_free(sim_chan *ch); /* NULL is a no-op; not while indexed */
json_t *chan_summary(sim *s, const sim_chan *ch); /* for /sim/channels */
/* ch receives one digit (held back while its own recording runs), then its
 * mixing bridge writes it to the others; via: the leg it came over, or NULL. */
int chan_dtmf(sim *s, sim_chan *ch, const char *digit, long dur_ms, bool from_party,
              const sim_chan *via);
/* Leaves any bridge and Stasis; context/exten NULL keep the current ones,
 * prio <= 0 means next priority. */
void chan_continue_dialplan(sim *s, sim_chan *ch, const char *context, const char *exten,
                            long prio, const char *why);
/* A variable Asterisk sets itself: stored + ChannelVarset, no oracle note. */
void chan_setvar_event(sim *s, sim_chan *ch, const char *name, const char *val);
const char *cause_txt(int cause); /* Asterisk's cause text (static) */

/* ---- sim_bridge.c ---- */
/* id NULL/"" = a new UUID. NULL if the id is taken. */
sim_bridge *bridge_new(sim *s, int node, const char *id, bool mixing, const char *name);
sim_bridge *bridge_get(sim *s, int node, const char *id);
/* The ARI Bridge model; its "channels" array is shared with the bridge:
 * serialize before the bridge changes. */
json_t *bridge_json(sim *s, const sim_bridge *b);
void bridge_add(sim *s, sim_bridge *b, sim_chan *ch);    /* + events, BRIDGEPEER */
void bridge_remove(sim *s, sim_bridge *b, sim_chan *ch); /* + events; drops MOH if empty */
/* cls NULL stops MOH; on an empty bridge the announcer does not stay. */
void bridge_set_moh(sim *s, sim_bridge *b, const char *cls);
/* Empties, stops its playbacks and recordings, unindexes and frees b. */
void bridge_destroy(sim *s, sim_bridge *b, bool events);
void bridge_free(sim_bridge *b);
/* a and b hear each other through mixing bridges and link legs. */
bool sim_connected(sim *s, const sim_chan *a, const sim_chan *b);
json_t *sim_hears(sim *s, const sim_chan *a); /* ids a is connected to */
/* A recording of the bridge starts (on) or ends: BRIDGEPEER noise. */
void bridge_set_recorder(sim *s, sim_bridge *b, bool on);

/* ---- sim_media.c ---- */
/* Length of one media item at scale 1: -1 missing file, -2 unknown scheme,
 * -3 plays until stopped. */
int64_t media_duration_ms(sim *s, const char *uri);
/* A queued playback of `media` (borrowed array), indexed by id (NULL/"" =
 * UUID). The caller sets target_uri, app and chan or bridge. */
sim_pb *pb_new(sim *s, int node, const char *id, json_t *media, const char *lang);
json_t *pb_json(const sim_pb *pb, const char *state); /* the ARI Playback model */
void pb_start(sim *s, sim_pb *pb);
/* DELETE /playbacks: queued ones vanish; playing ones finish `done` (the
 * listeners' sound entries get result `how`). pb is freed. */
void pb_stop(sim *s, sim_pb *pb, const char *how);
void pb_drop(sim *s, sim_pb *pb); /* gone without events; pb is freed */
void pb_free(sim_pb *pb);
/* ch joined (true) or is leaving b: the oracle's sound entries follow. */
void pb_bridge_member(sim *s, sim_bridge *b, sim_chan *ch, bool joined);

/* ---- sim_rec.c ---- */
sim_rec *rec_live_get(sim *s, int node, const char *name);
sim_rec *rec_stored_get(sim *s, int node, const char *name);
json_t *rec_json(const sim_rec *r, bool live); /* LiveRecording / StoredRecording */
/* Starts recording target_uri: RecordingStarted. ARIQ_EBUSY if the name is
 * live, or stored and !overwrite. *out is owned by the sim. */
int rec_start(sim *s, int node, const char *name, const char *format, const char *target_uri,
              const char *app, bool overwrite, sim_rec **out);
void rec_pause(sim *s, sim_rec *r, bool pause);
/* Stop (keep) or discard: RecordingFinished `done` either way. */
void rec_finish(sim *s, sim_rec *r, bool keep);
void rec_stop_target(sim *s, const char *target_uri); /* stops and keeps */
void rec_free_all(sim *s);
json_t *rec_oracle(sim *s); /* every recording ever made, for /sim/recordings */
bool rec_format_ok(const char *fmt);

/* ---- sim_orig.c ---- */
/* Dials an originated channel: Dial events, then the outcome rules. */
int orig_start(sim *s, sim_chan *ch);
/* Ends an originated channel that was not answered (ChannelDestroyed). */
void orig_fail(sim *s, sim_chan *ch, int cause);
int orig_answer_now(sim *s, sim_chan *ch); /* 0, or -1 if not ringing */
void dial_event(sim *s, sim_chan *ch, const char *status);
/* The Down channel of POST /channels (id NULL = generated). */
sim_chan *orig_new_chan(sim *s, int node, const char *id, const char *endpoint);
void sim_make_id(sim *s, int node, char *out, size_t n); /* "node1-<secs>.<n>" */
int rules_set(sim *s, json_t *body); /* 0 or ARIQ_EINVAL / ARIQ_ENOMEM */
json_t *rules_json(sim *s);
void rules_clear(sim *s);
/* POST /sim/calls: a call in Ring entering Stasis or the node's dialplan.
 * NULL with *err (static) on bad input. */
sim_chan *call_place(sim *s, int node, json_t *spec, const char **err);

/* sim_routes.c / sim_control.c */
typedef struct sim_req {
    sim *s;
    int node;
    const char *method;
    json_t *q;    /* query params: object name -> string (last wins) */
    json_t *body; /* parsed JSON body or NULL */
    const char *raw_query;
    char p[3][SIM_ID_MAX * 2];
    int status;
    json_t *out;  /* body to send, or NULL */
    char *raw_out; /* non-JSON body (recording file) */
    size_t raw_len;
    const char *ctype;
} sim_req;

typedef void (*sim_route_fn)(sim_req *r);
typedef struct sim_route {
    const char *method;
    const char *pattern; /* "/ari/channels/:/play/:" */
    sim_route_fn fn;
} sim_route;

extern const sim_route sim_ari_routes[]; /* sim_routes.c, NULL-terminated */
extern const sim_route sim_ctl_routes[]; /* sim_control.c */
/* Replies: body consumed (NULL = none). */
void req_reply(sim_req *r, int status, json_t *body);
void req_error(sim_req *r, int status, const char *msg); /* {"message": msg} */
const char *req_q(sim_req *r, const char *name); /* decoded query value or NULL */
json_t *split_list(const char *s); /* "a,b,,c" -> ["a","b","c"] */

#endif
