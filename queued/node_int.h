/* node_int.h - what the legs of a node may use of it. Not for other modules. */
#ifndef ARIQ_QUEUED_NODE_INT_H
#define ARIQ_QUEUED_NODE_INT_H

#include "ari/client.h"
#include "ari/stream.h"
#include "core/strmap.h"
#include "leg.h"
#include "node.h"
#include "model/entry.h"
#include "store/queue_store.h"
#include "store/store.h"

typedef struct caller caller;
typedef struct cluster cluster;
typedef struct agent agent;
typedef struct call call;
typedef struct adoption adoption;

struct node {
    struct event_base *base; /* borrowed */
    const qcfg *cfg;         /* borrowed */
    ari_client *ari;
    ari_rest *rest; /* the ARI transport legs use: rest_timed over ari's own */
    ari_rest *rest_inner; /* the ARI client's transport (owned by ari) */
    ari_rest rest_timed;  /* times every request (cluster.c), then rest_inner */
    uint64_t ari_rtt[STORE_RTT_BUCKETS]; /* REST round trips per bucket (not cumulative) */
    double ari_rtt_sum_ms;
    ari_stream *events;
    store *store;
    queue_store *qs;
    strmap *legs; /* channel id -> leg (one reference each) */
    strmap *holds; /* holding bridge id -> how many of our legs are in it */
    strmap *expect; /* pairing id -> link.c's expected link (our agent, a far caller) */
    cluster *cl;         /* command stream, heartbeat, reaping */
    bool store_up;       /* the command connection was ready once */
    bool cluster_up;     /* the command stream's start is known */
    struct event *sweep; /* periodic pairing sweep */
    bool closing;        /* node_free running: start nothing new */
    unsigned ari_connects; /* events WebSocket connections so far */
    uint64_t ari_down_since; /* monotonic ms the events WebSocket went down; 0 while up */
    uint64_t ari_rest_ok_ms; /* monotonic ms of the last REST probe answered (cluster.c) */
    adoption *adopt;     /* adopt.c: taking over at start */
    bool adopting;       /* events held, pairings deferred until the legs exist */
    int64_t adopt_seq;   /* pairings at or below it were settled by the re-adoption */
    size_t ncalls;       /* calls in progress (call.c) */
    bool restoring;      /* qs_restore in flight: writes held until it is done */
    bool redis_lost;     /* Redis came back without (some of) its data once */
    bool store_reconnected; /* Redis was away once: replies may have been lost */
    bool draining;       /* node_drain: no new call */
    node_drained_fn drained; /* to call once drained */
    void *drained_ud;
    struct event *drain_timer;
    qs_pairing *deferred; /* pairings delivered while adopting, in order */
    size_t ndeferred, deferred_cap;
    node_stats stats;
};

/* Hands `chan` back to the dialplan with QUEUESTATUS=status, logging `why`
 * (borrowed). Never fails silently: every step that cannot be done is
 * logged; a channel that is gone just ends it. */
void turnaway_start(node *n, const char *chan, const char *status, const char *why);

/* A channel entered Stasis(app, args): a leg for it, or turned away. Also
 * for a channel found in our app with no record at a restart. */
void node_stasis_start(node *n, const ari_event *ev);

/* call.c: a call ended; a draining node may be done. */
void node_call_ended(node *n);

/* ---- adopt.c: taking over at start ---- */

int adopt_new(node *n, adoption **out);
/* Lists ARI's channels and bridges, reconciles Redis, builds the legs, then
 * calls node_adopted; retries by itself until it can. */
void adopt_start(adoption *ad);
void adopt_free(adoption *ad);
/* recheck.c: after a restart, makes the recordings of the call bridged in
 * ariq-mix-<pairing> (holding chan1, chan2: either may be NULL) agree
 * between Redis and Asterisk, asking ARI. */
void recheck_start(node *n, const char *pairing, const char *chan1, const char *chan2);
/* From adopt.c: the legs exist; Redis had settled every pairing up to seq. */
void node_adopted(node *n, int64_t seq);

/* The leg of a channel, or NULL. Borrowed. */
leg *node_leg(node *n, const char *chan);

/* Carries out pairings: those a script returned (any request with
 * autopair, the sweep) and those other nodes made for our callers (the
 * command stream). The caller's node carries every pairing out: one whose
 * caller is ours becomes a LOCAL call (the agent is ours too) or an OUT call
 * (a link to the agent's node); others are left to their caller's node,
 * which Redis told. A pairing older than the one its party is in is stale
 * and ignored; a newer one supersedes it. While the node adopts its legs
 * (at start) or its events WebSocket is down, pairings are kept in order
 * and carried out when that is over (a link dialled with no WebSocket would
 * find no app); those the re-adoption settled are dropped then. */
void node_take_pairings(node *n, const qs_pairing *p, size_t np);

/* True if one of the pairings is chan's and node_take_pairings will carry it
 * out here as a LOCAL call (both parties live legs of this node): chan then
 * goes straight to its call. Otherwise chan waits as usual: in the holding
 * bridge while a link is dialled for it, or until its link arrives, or (a
 * party gone) until the gone party's own leave / logoff undoes the pairing. */
bool node_will_carry(node *n, const qs_pairing *p, size_t np, const char *chan);

/* ---- cluster.c: the command stream, the heartbeat, reaping dead nodes ---- */

/* Opens the reader's own Redis connection (config sc) and arms the
 * heartbeat. */
int cluster_new(node *n, const store_config *sc, cluster **out, char *err, size_t errlen);
void cluster_free(cluster *cl);
/* Redis is back (or there for the first time): every node's heartbeat may
 * have lapsed while it was away, so none is reaped for two periods, the
 * time for the others to beat again. */
void cluster_redis_back(cluster *cl);
/* Beats now (and offers the other nodes to reap); also done every period.
 * Each beat also writes the node's round-trip histograms to
 * {NS}:node:<me>:stats; cluster_redis_back also adds the configured queues
 * to {NS}:queues. */
void cluster_beat(cluster *cl);
/* A transport that times each request through inner (borrowed: must outlive
 * n's use of it) into n->ari_rtt, then answers as inner does. Returns
 * &n->rest_timed. */
ari_rest *cluster_timed_rest(node *n, ari_rest *inner);
/* ---- actions.c: commands from agentd on the command stream ---- */

/* One command entry (kv: the entry's name, value array, borrowed) whose
 * `cmd` is not `pair`: carried out, and answered on its reply_to stream
 * (status 200/400/404/409/500). A command past its deadline_ms is dropped
 * (logged); one without a usable reply_to is only logged. */
void actions_take(node *n, const char *id, const redisReply *kv);
/* From cluster.c: the command stream is being read; the node may take calls. */
void node_cluster_ready(node *n);

/* ---- answer.c: answering through ARI's transient errors ---- */

typedef enum {
    ANSWER_OK,     /* answered (204) */
    ANSWER_GONE,   /* the party left, or the channel is not ours */
    ANSWER_FAILED, /* ARI kept failing: hand the channel back */
} answer_outcome;

/* Answers l's channel, retrying 5xx and transport errors; done(l, outcome)
 * runs once, later, unless the leg ends first. */
typedef void (*answer_done_fn)(leg *l, answer_outcome o);
void answer_start(leg *l, answer_done_fn done);
/* From leg_end: drops a retry waiting on its timer. */
void answer_cancel(leg *l);

/* ---- hold.c: the node's holding bridges (one per MOH class) ---- */

/* Puts l's channel into the holding bridge of moh_class (creating the bridge
 * on first use; its id is fixed per node and class so a restart finds it)
 * and starts the bridge's music on hold (again: Asterisk drops it when a
 * holding bridge empties). done(l, ok) runs once, later; the leg is held
 * until then. */
typedef void (*hold_done_fn)(leg *l, bool ok);
void hold_join(leg *l, const char *moh_class, hold_done_fn done);
/* After a restart: l's channel is in `bridge` (NULL: none) per ARI. If that
 * is the holding bridge hold_join would put it in, it is counted there and
 * true returned; else false (join it). */
bool hold_adopt(leg *l, const char *bridge, const char *moh_class);
/* l left its holding bridge (moved to its call's bridge, or gone). */
void hold_left(leg *l);

/* ---- caller.c / agent.c ---- */

/* A party found alive at a restart, as Redis and ARI know it (all
 * borrowed). */
typedef struct adopt_party {
    const char *chan;
    const char *state;               /* its record's state */
    const char *const *queues;       /* names, in the record's order */
    size_t nqueues;
    const char *bridge;              /* the bridge ARI has the channel in, or NULL */
    int priority;                    /* caller */
    const char *cid_num, *cid_name;  /* caller */
    int64_t entered_ms, ann_ms;      /* caller: wall ms of entry, last announcement (0) */
    int64_t seq, score;              /* caller: its arrival seq and place */
    int64_t free_seq;                /* agent: its place among free agents */
    const char *id, *name;           /* agent: its id, its channel's name */
    int64_t since_ms, wrapup_until_ms; /* agent: wall ms of its last state change */
} adopt_party;

/* Takes over a live party after a restart (see caller.c / agent.c): waiting
 * or free in its holding bridge (joined again if ARI has it elsewhere), or,
 * talking, ready for call_adopt. Returns the leg (borrowed: the registry
 * holds it) or NULL, logged. */
caller *caller_adopt(node *n, const adopt_party *p, bool talking);
agent *agent_adopt(node *n, const adopt_party *p, bool talking);

/* What Redis would hold of a waiting caller / a logged-in agent not in a
 * call, from memory, for qs_restore when Redis came back without its data
 * (queues: room for QS_QUEUES_MAX names, borrowed from the leg). False when
 * the party is not in such a state (in a call, entering, leaving). *seq:
 * the highest sequence number the party knows of. */
bool caller_restore_info(caller *c, qs_restore_call *out, const char **queues, int64_t *seq);
bool agent_restore_info(agent *a, qs_restore_agent *out, const char **queues, int64_t *seq);

/* StasisStart of a caller / agent with valid arguments. */
void caller_start(node *n, const ari_event *ev, const entry_args *a);
void agent_start(node *n, const ari_event *ev, const entry_args *a);

/* The role of a leg, or NULL if it is not one. */
caller *leg_caller(leg *l);
agent *leg_agent(leg *l);

/* A pairing made this leg's party one side of a call, or the call ended
 * (c NULL); see call.c. */
void caller_set_call(caller *c, call *k);
void agent_set_call(agent *a, call *k);
/* The caller's running announcement (playback id) or NULL. */
const char *caller_playback(const caller *c);
/* Both parties are in the mixing bridge. */
void caller_talking(caller *c);
void agent_talking(agent *a);
/* Waiting again after a call could not be made (rolled back / requeued). */
void caller_back_to_queue(caller *c);
/* Logs a (held, answered) agent in again: Redis lost its record (it came
 * back without its data, n->redis_lost). */
void agent_relogin(agent *a);
/* After a call: free at once, or after wrapup_s; to the holding bridge
 * unless `hold` is false (the end-of-call script paired it again). */
void agent_after_call(agent *a, long wrapup_s, bool hold);
/* Free again after a call could not be made. */
void agent_back_to_free(agent *a);

/* After the link of a cross-node call went and Redis said what the party
 * is now (qs_unlink's state): a caller waits again; with no record left
 * ("gone") it is hung up if it was talking (its call is over), else handed
 * back to the dialplan (UNAVAILABLE). An agent is free again (to the
 * holding bridge), wraps up for wrapup_ms (unscaled), or without a record
 * is handed back (UNAVAILABLE). */
void caller_after_link(caller *c, const char *state, bool was_talking);
void agent_after_link(agent *a, const char *state, int64_t wrapup_ms);

/* ---- link.c: the two ends of a link call between nodes ---- */

/* Stasis(app, link, PAIRING) on the agent's node: looks the pairing up and
 * hands the link to its agent's call, or hangs it up. */
void link_in_start(node *n, const ari_event *ev, const entry_args *a);
/* A cross-node pairing of one of our agents: its link will come (kept so
 * that the link need not read the pairing from Redis). */
void link_expect(node *n, const qs_pairing *p);
/* Forgets expected links older than two minutes (all: every one). */
void link_expect_expire(node *n, bool all);
/* Stasis(app, linkout, ...) with no call waiting for it: hung up. */
void link_out_stray(node *n, const ari_event *ev);
/* Registers our end of a link about to be dialled for call k; returns the
 * leg with a reference for the caller, or NULL. */
leg *link_out_open(node *n, call *k, const char *chan, const char *pairing);
/* The call a link leg belongs to (NULL: none any more). NULL l: no-op. */
void link_set_call(leg *l, call *k);
/* Ends the leg and hangs its channel up, once. NULL or ended: no-op. */
void link_hangup(leg *l);
bool leg_is_link(const leg *l);
/* After a restart: our end of a link found in its call's mixing bridge;
 * returns the leg with the creator's reference, or NULL. */
leg *link_adopt(node *n, const char *chan, const char *pairing, bool out);

/* ---- call.c: one pairing carried out on this node ---- */

/* LOCAL: both parties here. */
void call_start(node *n, const qs_pairing *p, caller *c, agent *a);
/* OUT: our caller, the agent on p->agent_node: a link is dialled. */
void call_start_out(node *n, const qs_pairing *p, caller *c);
/* IN: our agent and the link that arrived for it; returns the call or NULL. */
call *call_start_in(node *n, const qs_pairing *p, agent *a, leg *link);
/* After a restart: a call found connected (its mixing bridge holds both
 * our channels) rebuilt in CONNECTED with the recording the agent's keys
 * act on (rec: its name or "", rec_state "recording" | "paused"). LOCAL
 * with c and a, OUT with c and link, IN with a and link. */
call *call_adopt(node *n, const qs_pairing *p, caller *c, agent *a, leg *link, const char *rec,
                 const char *rec_state);
/* node_free: k lets go of its legs and is over for this process, sending
 * nothing (the call goes on in Asterisk; the restart re-adopts it). */
void call_detach(call *k);
/* After a restart: recording number `num` of k's pairing exists (recheck.c):
 * the next the keys start gets a higher one (names are never reused). */
void call_rec_seen(call *k, unsigned num);
/* After a restart: recording `name` of k turned out not to run (recheck.c):
 * the keys start from no recording. */
void call_rec_gone(call *k, const char *name);
/* OUT: our end of the link was answered. */
void call_link_answered(call *k);
/* OUT, IN: the link is gone (why: for the log and the UNPAIRED detail). */
void call_link_gone(call *k, const char *why);
/* A newer pairing of `mover`, one of k's parties, arrived: k is over. */
void call_superseded(call *k, leg *mover);
const char *call_pairing(const call *k);
/* An OUT call still dialling: its caller belongs in the holding bridge. */
bool call_is_out(const call *k);
/* The sequence number of a pairing id ("p<seq>"); 0 if it is not one. */
long long pairing_seq(const char *pairing);
/* A party's channel is gone (hung up). */
void call_caller_gone(call *k);
void call_agent_gone(call *k);
/* No order-sensitive request of this leg is in flight any more (leg->busy
 * is 0): a call waiting to stop its announcement or move it may go on. */
void call_leg_idle(leg *l);
/* The call a caller / agent is in, or NULL. */
call *caller_call(const caller *c);
call *agent_call(const agent *a);
/* The agent pressed a key while in the call. */
void call_agent_dtmf(call *k, char digit);
/* call_agent_gone, with AGENTLOGOFF's reason (borrowed, must live on: a
 * literal). */
void call_agent_logoff(call *k, const char *reason);
/* agentd asks what the agent's keys do: action "start" | "pause" |
 * "unpause" | "stop". Returns 0 with *name (the recording, borrowed from k)
 * and *state (what it becomes), or ARIQ_ESTATE (not connected, or the
 * action does not apply to the recording's state). */
int call_rec_command(call *k, const char *action, const char **name, const char **state);

/* ---- what agentd may ask of a party (actions.c) ---- */

const char *agent_id(const agent *a);
/* Logged in (its login written) and not ended. */
bool agent_logged_in(const agent *a);
/* Logs a logged-in agent off as if it hung up (AGENTLOGOFF with reason, a
 * literal; its call ends as then) and hangs its channel up. ARIQ_ENOTFOUND
 * if it is not logged in. */
int agent_logoff_by(agent *a, const char *reason);
/* Waiting in its queues (entered, not paired, not gone). */
bool caller_waiting(const caller *c);
/* Redis changed its priority (set_priority): kept for qs_restore. */
void caller_set_priority(caller *c, int priority);

#endif
