/* queue_store.h - the queues' state in Redis: callers, agents, pairings,
 * recordings, and the events stream, through redis-schema/queue.lua.
 *
 * Every function here is one EVALSHA of queue.lua (one round trip, one
 * atomic change), sent on a store you own (store.h). redis-schema/SCHEMA.md
 * documents the keys, the ops, the events and the ordering rules; in short:
 *
 *   - a caller's place in a queue is (priority, global arrival sequence), the
 *     same on every node; an agent's place is the sequence at which it last
 *     became free;
 *   - pairing takes the front caller and the front free agent atomically, so
 *     two nodes racing can never pair a caller or an agent twice; the
 *     parties of a draining node (qs_node_drain) are passed over;
 *   - every op that writes also appends its events (app_queue's names and
 *     fields) to the events stream in the same script.
 *
 * Calling convention (STYLE habit 2). Each request function validates its
 * arguments and returns 0 (its callback will run exactly once) or a negative
 * ARIQ_ code (its callback never runs): ARIQ_EINVAL for a bad argument
 * (message in qs_errmsg), or what store_script returned (ARIQ_EBUSY while
 * Redis is not connected, ARIQ_ECLOSED, ARIQ_ENOMEM, ARIQ_EIO).
 *
 * The callback gets err and a result:
 *   0              res is the parsed reply
 *   ARIQ_EINVAL    the script refused the arguments, or the reply was
 *                  malformed (Redis replies are outside input)
 *   ARIQ_ENOTFOUND the record named does not exist (NOTFOUND)
 *   ARIQ_EBUSY     the id is taken: a call already queued (EXISTS), an agent
 *                  already logged in (AGENTINUSE)
 *   ARIQ_ESTATE    the record is not in a state the op applies to (BADSTATE)
 *   ARIQ_EIO       the connection was lost before the reply (or another
 *                  Redis error)
 * res is NULL whenever err != 0; qs_errmsg(qs) then says why (the script's
 * message, e.g. "AGENTINUSE agent 1001 is talking on node a").
 * res and everything it points to are borrowed: valid only during the
 * callback. The callback may send more requests; it must not free the
 * queue_store (free it after the store, see qs_free).
 *
 * Strings passed in are borrowed for the call (copied). Ids (call, channel,
 * agent, pairing, recording, node) are 1..QS_ID_MAX bytes of [A-Za-z0-9._-];
 * queue names and agent ids at most QS_NAME_MAX; free text (caller ID,
 * reasons, file names) at most QS_TEXT_MAX bytes without control characters
 * or '|'. */
#ifndef ARIQ_STORE_QUEUE_STORE_H
#define ARIQ_STORE_QUEUE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define QS_ID_MAX      128
#define QS_NAME_MAX    64
#define QS_TEXT_MAX    128
#define QS_QUEUES_MAX  16
#define QS_PAIRS_MAX   1000
#define QS_OUTCOME_MAX 32
#define QS_ERRMSG_MAX  512

typedef struct queue_store queue_store;

/* Copied by qs_new. */
typedef struct qs_config {
    char node[QS_ID_MAX + 1]; /* this node's id: the `node` of its events */
    long events_maxlen;       /* XADD MAXLEN ~ N; default 100000 */
    int max_pairs;            /* pairings one request may make, 1..1000; default 16 */
} qs_config;

/* Sets the defaults above and node "" (which qs_new refuses). */
void qs_config_init(qs_config *c);

/* Creates a queue_store on `s` (borrowed: must outlive it, or see qs_free).
 * Returns 0 and *out (yours: qs_free), ARIQ_EINVAL (bad config), or
 * ARIQ_ENOMEM. */
int qs_new(store *s, const qs_config *cfg, queue_store **out);

/* Frees qs. With requests still pending (their replies not yet come), the
 * memory is kept until the last of them completes and their callbacks are
 * not called: so free the store first (which completes them) or free qs
 * when nothing is pending. qs_free(NULL) does nothing. */
void qs_free(queue_store *qs);

/* The last error: an argument refused here, or the script's message.
 * Borrowed, valid until the next call on qs; never NULL. */
const char *qs_errmsg(const queue_store *qs);

/* The wall clock (ms) sent with each request as "now"; clock_wall_ms by
 * default. Tests set their own to control hold and talk times. */
void qs_set_clock(queue_store *qs, uint64_t (*now_ms)(void *ud), void *ud);

/* Requests sent and not completed yet (held ones included). */
unsigned qs_pending(const queue_store *qs);

/* The outbox. A write (enter, leave, agent_login, agent_logoff,
 * agent_pause, agent_ready, bridged, unlink, rollback, rec, node_drain)
 * made while the store is not ready, or while earlier ones still wait, is
 * accepted (returns 0) and held in memory, in order, with the time it was
 * made (its events keep it), up to QS_OUTBOX_MAX (then ARIQ_EBUSY as
 * before); its callback runs when its reply comes. Reads, pairing sweeps,
 * reaping, reconcile and restore are never held: they fail at once
 * (ARIQ_EBUSY) while Redis is away. The owner calls qs_flush once the
 * store is ready again (after anything that must go first, e.g.
 * qs_restore); it sends what waits, in order, and returns how many still
 * wait (Redis went away again). qs_free drops held writes without their
 * callbacks, like replies after the free. A leave or agent_logoff whose
 * reply is lost with the connection (Redis may not have run it) is held
 * again and resent: both are safe twice (GONE / NOTFOUND). */
#define QS_OUTBOX_MAX 100000
size_t qs_flush(queue_store *qs);
size_t qs_held_count(const queue_store *qs);
/* While hold is true every write goes to the outbox even with Redis ready
 * (what must go first, e.g. qs_restore, goes meanwhile); then qs_flush. */
void qs_hold_writes(queue_store *qs, bool hold);
/* The owner is closing (call it before freeing the store): a leave or
 * logoff whose reply is lost from now on is told to its callback as an
 * error (ARIQ_EIO), not held again to be resent. */
void qs_shutdown(queue_store *qs);

/* ---- results ---------------------------------------------------------- */

/* One pairing made by a script: the call and the agent left every queue. */
typedef struct qs_pairing {
    char pairing[QS_ID_MAX + 1]; /* "p<seq>" */
    char call[QS_ID_MAX + 1];
    char agent[QS_ID_MAX + 1];
    char queue[QS_ID_MAX + 1]; /* the queue it was made in */
    char caller_channel[QS_ID_MAX + 1];
    char agent_channel[QS_ID_MAX + 1];
    char caller_node[QS_ID_MAX + 1];
    char agent_node[QS_ID_MAX + 1];
    int64_t created_ms;
    int64_t holdtime_ms; /* entered -> paired */
} qs_pairing;

/* qs_enter's result. */
typedef struct qs_enter_result {
    int64_t seq;   /* global arrival sequence */
    int64_t score; /* (1000 - priority) * 2^43 + seq */
    size_t npositions;
    int64_t positions[QS_QUEUES_MAX]; /* 1-based, per queue, in the order given */
    size_t npairings;
    const qs_pairing *pairings; /* made at once when autopair */
} qs_enter_result;

/* The result of every other writing op; which fields are set is said at
 * each function ("" and 0 otherwise). */
typedef struct qs_result {
    char outcome[QS_OUTCOME_MAX]; /* e.g. ABANDON, COMPLETECALLER, GONE */
    char
        call_outcome[QS_OUTCOME_MAX]; /* qs_agent_logoff: NONE, REQUEUED, COMPLETEAGENT */
    char call[QS_ID_MAX + 1];         /* qs_agent_logoff: the call it had */
    char state[QS_OUTCOME_MAX];       /* agent or recording state after the op */
    int64_t seq;                      /* qs_agent_login: its free-since seq */
    int64_t holdtime_ms;              /* qs_bridged */
    int64_t ringtime_ms;              /* qs_bridged: paired -> bridged */
    size_t npairings;
    const qs_pairing *pairings;
    int64_t connected;                /* qs_bridged: 1 when CONNECT was written */
    char pairing[QS_ID_MAX + 1];      /* qs_unlink: the party's pairing now */
    int64_t wrapup_ms;                /* qs_unlink: an agent's wrapup left */
    char sides[QS_OUTCOME_MAX];       /* qs_pairing_info: sides bridged so far */
} qs_result;

/* One queue of qs_call_info. */
typedef struct qs_call_queue {
    char queue[QS_NAME_MAX + 1];
    int64_t position; /* 1-based; 0 when not waiting (paired) */
    int64_t ahead;    /* callers ahead of it (position - 1) */
    int64_t length;   /* callers waiting in the queue */
} qs_call_queue;

typedef struct qs_call_view {
    bool found;
    char state[QS_OUTCOME_MAX]; /* waiting | paired | bridged */
    char node[QS_ID_MAX + 1];
    char pairing[QS_ID_MAX + 1];
    int64_t seq, priority, entered_ms;
    size_t nqueues;
    qs_call_queue queues[QS_QUEUES_MAX];
} qs_call_view;

typedef struct qs_queue_view {
    int64_t callers;            /* waiting */
    int64_t agents_free;        /* free, not paused */
    char front[QS_ID_MAX + 1];  /* next call served, "" when empty */
    char oldest[QS_ID_MAX + 1]; /* earliest arrival, "" when empty */
    int64_t longest_wait_ms;    /* how long `oldest` has waited */
} qs_queue_view;

/* qs_reap's result: records handled by this call. */
typedef struct qs_reap_result {
    int64_t pairings, calls, agents;
    bool more; /* the node still has entries: call again */
} qs_reap_result;

typedef void (*qs_enter_cb)(queue_store *qs, int err, const qs_enter_result *res,
                            void *pd);
typedef void (*qs_result_cb)(queue_store *qs, int err, const qs_result *res, void *pd);
typedef void (*qs_call_view_cb)(queue_store *qs, int err, const qs_call_view *res,
                                void *pd);
typedef void (*qs_queue_view_cb)(queue_store *qs, int err, const qs_queue_view *res,
                                 void *pd);
typedef void (*qs_reap_cb)(queue_store *qs, int err, const qs_reap_result *res, void *pd);

/* ---- callers ------------------------------------------------------------- */

/* A caller joining; all strings borrowed. */
typedef struct qs_caller {
    const char *callid;             /* usually the channel's uniqueid */
    const char *channel;            /* ARI channel id */
    int priority;                   /* 0..1000, higher first */
    const char *cid_num, *cid_name; /* may be NULL */
    const char *const *queues;
    size_t nqueues; /* 1..QS_QUEUES_MAX, distinct */
} qs_caller;

/* The caller enters each of its queues (ENTERQUEUE per queue) on this node.
 * With autopair, pairs at once if an agent is free (res->pairings).
 * EBUSY if the call id is already queued. */
int qs_enter(queue_store *qs, const qs_caller *c, bool autopair, qs_enter_cb cb,
             void *pd);

typedef enum {
    QS_LEAVE_HANGUP,  /* the caller hung up (ABANDON while waiting) */
    QS_LEAVE_TIMEOUT, /* the queue timed it out (EXITWITHTIMEOUT) */
} qs_leave_reason;

typedef enum {
    QS_BY_CALLER, /* a bridged call ended by the caller: COMPLETECALLER */
    QS_BY_AGENT,  /* ... by the agent (`#`): COMPLETEAGENT */
} qs_party;

/* The caller is gone, whatever its state; outcome says what was logged:
 *   waiting  -> ABANDON / EXITWITHTIMEOUT in every queue, record deleted;
 *   paired   -> ABANDON; the agent is free again keeping its place;
 *   bridged  -> COMPLETECALLER / COMPLETEAGENT (by `who`); the agent goes to
 *               wrapup for wrapup_ms (qs_agent_ready ends it), or with 0 is
 *               free at once at the back of the agent queue;
 *   no record -> GONE (nothing changes: safe to repeat).
 * With autopair, a freed agent is paired at once (res->pairings). */
int qs_leave(queue_store *qs, const char *callid, qs_leave_reason reason, qs_party who,
             int wrapup_ms, bool autopair, qs_result_cb cb, void *pd);

/* ---- agents -------------------------------------------------------------- */

typedef struct qs_agent {
    const char *agentid;
    const char *channel; /* ARI channel id */
    const char
        *chan_name; /* channel name for AGENTLOGIN ("PJSIP/1001-..."), may be NULL */
    const char *const *queues;
    size_t nqueues;
} qs_agent;

/* The agent logs in on this node, free at the back of each of its queues
 * (AGENTLOGIN). res->seq is its free-since seq. EBUSY (AGENTINUSE) when the
 * agent id is logged in anywhere: nothing changes. */
int qs_agent_login(queue_store *qs, const qs_agent *a, bool autopair, qs_result_cb cb,
                   void *pd);

/* The agent is gone (logoff or hangup), whatever its state: AGENTLOGOFF,
 * record deleted. A caller it was paired with goes back to the front
 * (call_outcome REQUEUED; with autopair it may be paired again at once); a
 * caller it talked to is completed (COMPLETEAGENT) and its record deleted
 * (the node hangs it up). outcome AGENTLOGOFF, or GONE when not logged in.
 * reason is free text (may be NULL). */
int qs_agent_logoff(queue_store *qs, const char *agentid, const char *reason,
                    bool autopair, qs_result_cb cb, void *pd);

/* Pauses (PAUSE per queue; a free agent leaves the free sets; a busy one
 * pauses when its call ends) or unpauses (UNPAUSE; a paused agent is free at
 * the back). ENOTFOUND if not logged in, ESTATE to unpause an agent not
 * paused. res->state is the agent's state after. */
int qs_agent_pause(queue_store *qs, const char *agentid, bool paused, const char *reason,
                   bool autopair, qs_result_cb cb, void *pd);

/* Wrapup is over: free at the back (or paused). ESTATE if not in wrapup. */
int qs_agent_ready(queue_store *qs, const char *agentid, bool autopair, qs_result_cb cb,
                   void *pd);

/* ---- pairing ------------------------------------------------------------- */

/* Each pairs while a queue in scope has a waiting caller and a free agent
 * (at most config max_pairs), choosing the queue whose front caller has the
 * lowest score, then whose front agent has been free longest, and returns
 * the pairings (none is normal: someone else was faster). Callers and
 * agents of a draining node are passed over (qs_node_drain): "front" is the
 * first one not on a draining node, looked for among at most 256 members of
 * each queue's callers and agents per request. The same holds for the
 * autopair of every other op.
 *   qs_pair_queue: one queue (the periodic sweep);
 *   qs_pair_call:  the queues of a call that just arrived;
 *   qs_pair_agent: the queues of an agent that just became free. */
int qs_pair_queue(queue_store *qs, const char *queue, qs_result_cb cb, void *pd);
int qs_pair_call(queue_store *qs, const char *callid, qs_result_cb cb, void *pd);
int qs_pair_agent(queue_store *qs, const char *agentid, qs_result_cb cb, void *pd);

/* Which parties a node has put into its mixing bridge. */
typedef enum {
    QS_SIDE_BOTH,   /* one node: caller and agent together */
    QS_SIDE_CALLER, /* across nodes: the caller's node, caller + link leg */
    QS_SIDE_AGENT,  /* across nodes: the agent's node, agent + link leg */
} qs_side;

/* A side is in its mixing bridge. When both are (QS_SIDE_BOTH, or the
 * second of the two sides): CONNECT (and WITHDRAW in the caller's other
 * queues), res->connected 1, res->holdtime_ms, res->ringtime_ms; the first
 * side alone: res->connected 0 (repeating it changes nothing). ENOTFOUND if
 * the pairing (or a party's record) is gone, ESTATE if already bridged. */
int qs_bridged(queue_store *qs, const char *pairing, qs_side side, qs_result_cb cb, void *pd);

typedef enum {
    QS_AGENT_KEEP,  /* free again with its old free-since seq (its place) */
    QS_AGENT_BACK,  /* free at the back of the agent queue */
    QS_AGENT_PAUSE, /* paused with the reason */
} qs_agent_to;

/* The link or bridge could not be made: the caller goes back with its
 * original score (the front), the agent as `to` says, the pairing is
 * deleted (UNPAIRED reason rollback). outcome ROLLEDBACK, or GONE when the
 * pairing no longer exists (safe to repeat). ESTATE once bridged. */
int qs_rollback(queue_store *qs, const char *pairing, const char *reason, qs_agent_to to,
                qs_result_cb cb, void *pd);

/* The link of a cross-node pairing is gone (hung up, dropped, never
 * answered) and this node's party of `side` (QS_SIDE_CALLER: its call id;
 * QS_SIDE_AGENT: its agent id) is still here. Not yet connected: undone
 * (outcome ROLLEDBACK: the caller back at its place, the agent free at the
 * back, UNPAIRED reason rollback with `reason`). Connected: completed as if
 * the far side hung up (outcome COMPLETEAGENT from the caller's side,
 * COMPLETECALLER from the agent's; the agent to wrapup for wrapup_ms, or
 * free and, with autopair, paired again). Gone already: outcome GONE. In
 * every case res->state is what the party is now (a call: waiting, paired,
 * bridged; an agent: free, paused, wrapup, paired, talking; or gone),
 * res->pairing its pairing ("" if none), res->wrapup_ms the wrapup left. */
int qs_unlink(queue_store *qs, const char *pairing, qs_side side, const char *party,
              const char *reason, int wrapup_ms, bool autopair, qs_result_cb cb, void *pd);

/* ---- recordings ---------------------------------------------------------- */

typedef enum {
    QS_REC_START,   /* needs pairing and file; EBUSY if the name exists */
    QS_REC_PAUSE,   /* recording -> paused */
    QS_REC_UNPAUSE, /* paused -> recording (the span is kept) */
    QS_REC_STOP,    /* recording|paused -> stored */
    QS_REC_DISCARD, /* recording|paused|stored -> discarded */
    QS_REC_DELETE,  /* stored|discarded -> the record and its index entry
                       deleted (res->state "deleted"); ESTATE while recording */
} qs_rec_action;

/* Writes a recording's metadata and its RECORD* event. pairing and file
 * matter for START only (may be NULL otherwise). ttl_ms > 0: the record
 * expires that long after STOP / DISCARD (0: kept). res->state is the new
 * state. ENOTFOUND / ESTATE as usual. START also names the recording on its
 * pairing, STOP and DISCARD clear that again (qs_reconcile reports the
 * recording running on a kept pairing). */
int qs_rec(queue_store *qs, qs_rec_action action, const char *name, const char *pairing,
           const char *file, int64_t ttl_ms, qs_result_cb cb, void *pd);

/* ---- priority ------------------------------------------------------------ */

/* A waiting call's priority (0..1000) changes: its place in every queue is
 * recomputed with its original seq (as if it had arrived with that
 * priority), PRIORITY per queue. res is the call as qs_call_info reads it
 * after the change (queues with their new positions). ENOTFOUND, ESTATE (not
 * waiting). Not held while Redis is away (ARIQ_EBUSY at once). */
int qs_set_priority(queue_store *qs, const char *callid, int priority, qs_call_view_cb cb,
                    void *pd);

/* ---- dead nodes ---------------------------------------------------------- */

/* Removes the entries of node `node` whose heartbeat has lapsed (any live
 * node or agentd may run it; running it twice changes nothing): each
 * pairing with a party there ends (bridged: COMPLETECALLER / COMPLETEAGENT
 * as if the dead side hung up, a live agent free at the back; paired: the
 * live caller back at the front, the live agent free keeping its place);
 * its callers are abandoned (ABANDON with `reason`), its agents logged off
 * (AGENTLOGOFF with `reason`). At most max_items (1..100000) records per
 * call: repeat while res->more. When nothing is left the node leaves
 * {NS}:nodes. ESTATE if the node's heartbeat key still exists. */
int qs_reap(queue_store *qs, const char *node, const char *reason, int max_items,
            qs_reap_cb cb, void *pd);

/* ---- draining ------------------------------------------------------------ */

#define QS_DRAIN_TTL_MAX 86400000 /* ms: the longest a drain flag may live */

/* This node drains (on) or stops draining (off). While it drains it starts
 * no new call: no pairing op of any node pairs its waiting callers or its
 * free agents. They stay where they are, keeping their places, for the node
 * restarted to re-adopt (qs_reconcile clears the flag); the other parties
 * are paired in the usual order among themselves. The flag lapses ttl_ms
 * (1..QS_DRAIN_TTL_MAX) after the last `on`, so a drainer that dies does
 * not hold its parties for good; `on` again renews it (ttl_ms is ignored
 * with off). NODEDRAIN (state on|off) is written when the state changes.
 * res->state is "on" or "off" after the op; res->outcome STARTED, RENEWED
 * (on while on), STOPPED, or NOTDRAINING (off while off, or after a lapse).
 * Nothing pairs at once when it stops: the next pairing op (the sweep)
 * pairs its parties again, at their places. */
int qs_node_drain(queue_store *qs, bool on, int64_t ttl_ms, qs_result_cb cb, void *pd);

/* ---- re-adoption after a restart ----------------------------------------- */

#define QS_ALIVE_MAX 200000 /* live channels one qs_reconcile may name */
#define QS_KEEP_MAX  100000 /* bridges one qs_reconcile may name */

/* A mixing bridge ariq-mix-<pairing> on this node's Asterisk that holds
 * exactly the two live channels chan1 and chan2 (in either order). All
 * borrowed. */
typedef struct qs_keep {
    const char *pairing, *chan1, *chan2;
} qs_keep;

/* A call record this node has left after qs_reconcile. */
typedef struct qs_call_rec {
    char callid[QS_ID_MAX + 1];
    char channel[QS_ID_MAX + 1];
    char state[QS_OUTCOME_MAX];  /* waiting | paired | bridged */
    char pairing[QS_ID_MAX + 1]; /* "" when waiting */
    size_t nqueues;
    char queues[QS_QUEUES_MAX][QS_NAME_MAX + 1]; /* in the order it entered them */
    int64_t priority;
    int64_t seq;   /* its arrival seq */
    int64_t score; /* its place in every queue, kept across rollbacks */
    int64_t entered_ms;
    int64_t ann_ms; /* start of its last announcement (qs_announce_info), 0 if none */
    int64_t anns;   /* announcements started while waiting */
    char cid_num[QS_TEXT_MAX + 1];
    char cid_name[QS_TEXT_MAX + 1];
} qs_call_rec;

/* An agent record this node has left after qs_reconcile. */
typedef struct qs_agent_rec {
    char agentid[QS_NAME_MAX + 1];
    char channel[QS_ID_MAX + 1];
    char chan_name[QS_TEXT_MAX + 1];
    char state[QS_OUTCOME_MAX]; /* free | paired | talking | wrapup | paused */
    size_t nqueues;
    char queues[QS_QUEUES_MAX][QS_NAME_MAX + 1];
    bool paused; /* also while busy: takes effect when the call ends */
    char pause_reason[QS_TEXT_MAX + 1];
    int64_t since_ms;            /* last state change */
    int64_t wrapup_until_ms;     /* while in wrapup, else 0 */
    char pairing[QS_ID_MAX + 1]; /* "" when none */
    int64_t free_seq;            /* its place among free agents */
} qs_agent_rec;

/* A pairing of this node that qs_reconcile kept: its bridge is up. */
typedef struct qs_kept_pairing {
    qs_pairing p;
    char state[QS_OUTCOME_MAX];       /* paired (the far side not in yet) | bridged */
    char sides[QS_OUTCOME_MAX];       /* caller | agent | both: sides in their bridge */
    char link_channel[QS_ID_MAX + 1]; /* IN (agent here, caller elsewhere): the link
                                          leg in the bridge; else "" */
    char rec[QS_ID_MAX + 1];          /* the recording running on it, "" if none */
    char rec_state[QS_OUTCOME_MAX];   /* recording | paused; "" when rec is "" */
} qs_kept_pairing;

/* qs_reconcile's result. The arrays are the store's, valid during the
 * callback only. */
typedef struct qs_reconcile_result {
    int64_t seq; /* {NS}:seq after the op: a pairing with a seq (p<seq>) at or
                    below it that arrives later is old news */
    size_t ncalls;
    const qs_call_rec *calls;
    size_t nagents;
    const qs_agent_rec *agents;
    size_t npairings;
    const qs_kept_pairing *pairings;
    size_t nhangup;
    const char *const *hangup; /* live channels of this node whose call the op
                                  ended while they talked: hang them up */
    int64_t rolled_back;       /* LOCAL pairings rolled back */
    int64_t unlinked;          /* OUT / IN pairings unlinked from this side */
    int64_t completed;         /* LOCAL bridged pairings completed (COMPLETEAGENT) */
    int64_t abandoned;         /* calls ended: their channel was gone */
    int64_t logged_off;        /* agents logged off: their channel was gone */
} qs_reconcile_result;

typedef void (*qs_reconcile_cb)(queue_store *qs, int err, const qs_reconcile_result *res,
                                void *pd);

/* A node restarted after its process died re-adopts what its Asterisk still
 * has. alive: every channel id alive there now (nalive 0..QS_ALIVE_MAX);
 * keep: every mixing bridge ariq-mix-<pairing> holding two of them (nkeep
 * 0..QS_KEEP_MAX). One atomic op, no autopair; events say `restart`:
 *   1. each pairing with a party on this node: KEPT if its keep entry holds
 *      both channels of a local pairing, our caller and ariq-lo-<pairing>
 *      (OUT), or our agent and a link leg (IN), all alive and both parties'
 *      records there; a side not yet recorded is, as qs_bridged does (CONNECT
 *      once both sides are in). Not kept, with this node's parties alive: a
 *      local paired one is rolled back (QS_AGENT_KEEP), a local bridged one
 *      completed (COMPLETEAGENT; the agent free at the back, the caller in
 *      hangup), an OUT / IN one unlinked from this side as qs_unlink does
 *      (wrapup 0). A party whose channel is gone is left to steps 2 and 3;
 *   2. each call whose channel is gone ends as qs_leave(HANGUP, BY_CALLER,
 *      wrapup 0) does (ABANDON with reason restart, or COMPLETECALLER);
 *   3. each agent whose channel is gone is logged off as qs_agent_logoff does
 *      (reason "restart: channel gone"); a caller here it talked to is in
 *      hangup.
 * This node's draining flag is cleared too (qs_node_drain: a node that
 * starts is not draining; NODEDRAIN off with reason restart if it was set).
 * Then res holds every call and agent record left on this node and the kept
 * pairings. A freed agent is free at the back; none goes to wrapup (the op
 * has no wrapup time). alive and keep are borrowed for the call (copied).
 * EINVAL for a bad id or count (nothing changes). */
int qs_reconcile(queue_store *qs, const char *const *alive, size_t nalive,
                 const qs_keep *keep, size_t nkeep, qs_reconcile_cb cb, void *pd);

/* ---- re-registration after Redis lost its data --------------------------- */

/* The most calls and agents one qs_restore may name: with 10 arguments
 * each, the request stays within store_script's 2^20. */
#define QS_RESTORE_CALLS_MAX  90000
#define QS_RESTORE_AGENTS_MAX 10000

/* A waiting caller this node serves, as Redis had it (qs_enter's reply, or
 * qs_reconcile's qs_call_rec). All borrowed. */
typedef struct qs_restore_call {
    const char *callid, *channel;
    const char *const *queues;      /* in the order it entered them */
    size_t nqueues;                 /* 1..QS_QUEUES_MAX, distinct */
    int priority;                   /* 0..1000 */
    int64_t seq;                    /* its arrival seq, 1..maxseq */
    int64_t score;                  /* its place as Redis had it, stored as given:
                                       (1000 - priority) * 2^43 + seq */
    int64_t entered_ms;             /* wall ms of its entry */
    int64_t ann_ms;                 /* start of its last announcement, 0 if none */
    const char *cid_num, *cid_name; /* may be NULL */
} qs_restore_call;

/* A logged-in agent this node serves that is not in a call. All borrowed. */
typedef struct qs_restore_agent {
    const char *agentid, *channel;
    const char *chan_name; /* may be NULL */
    const char *const *queues;
    size_t nqueues;
    const char *state;        /* "free" | "paused" | "wrapup" */
    const char *pause_reason; /* paused: its reason (may be NULL); else ignored */
    int64_t free_seq;         /* its place among free agents, 0..maxseq (free: >= 1) */
    int64_t login_ms, since_ms;
    int64_t wrapup_until_ms; /* wrapup: when it ends (> 0); else ignored */
} qs_restore_agent;

/* qs_restore's result: what it found and did. */
typedef struct qs_restore_result {
    int64_t seq;            /* {NS}:seq after the op (>= maxseq) */
    int64_t restored_calls; /* records re-created */
    int64_t restored_agents;
    int64_t present_calls; /* records that existed: left as they were */
    int64_t present_agents;
} qs_restore_result;

typedef void (*qs_restore_cb)(queue_store *qs, int err, const qs_restore_result *res,
                              void *pd);

/* Redis came back without its data (a new server, data lost): this node
 * re-registers every waiting caller and every logged-in agent not in a
 * call that it serves, in one atomic op. Each one whose record is missing
 * is re-created as qs_enter / qs_agent_login left it, with its ORIGINAL
 * seq, score, entry and login times (so the order over all nodes is what it
 * was): a call waiting in its queues (opos: its position as it is added),
 * an agent free with its free_seq in its queues' free sets, paused (with its
 * reason), or in wrapup until wrapup_until_ms. Each re-created one gets a
 * RESTORE event (not a second ENTERQUEUE / AGENTLOGIN). One whose record
 * exists is left alone and counted present: when Redis kept its data the op
 * writes nothing (for 5,000 calls and 500 agents about 20 ms of script
 * time, mostly the argument checks; re-creating them all about 0.2 s).
 * {NS}:seq is raised to maxseq when below it: give the highest seq this
 * node knows of (its callers' seq, its agents' free_seq, its pairings'
 * p<seq>), so new arrivals and pairings number above all of them.
 * The op pairs nothing: sweep after it (qs_pair_queue). Not restored: a
 * call's `anns` count, an agent's calls_taken and talk_ms (back to 0), a
 * pause taken during wrapup, pairings and the parties in them.
 * calls and agents are borrowed for the call (copied). EINVAL for a bad
 * argument (the message names the call or agent by its index), or, from
 * the script (callback), for an id given twice: nothing changes. */
int qs_restore(queue_store *qs, int64_t maxseq, const qs_restore_call *calls,
               size_t ncalls, const qs_restore_agent *agents, size_t nagents,
               qs_restore_cb cb, void *pd);

/* ---- reads --------------------------------------------------------------- */

/* A call's state and its position, callers ahead and queue length in each
 * of its queues. res->found false when there is no such call. */
int qs_call_info(queue_store *qs, const char *callid, qs_call_view_cb cb, void *pd);

/* The same as qs_call_info; a waiting call also records that an
 * announcement starts now (ann_ms = now, anns + 1: qs_call_rec), so a
 * restarted node knows when the last one did. Call it when one is due. */
int qs_announce_info(queue_store *qs, const char *callid, qs_call_view_cb cb, void *pd);

/* A pairing: res->state paired or bridged with the pairing as
 * res->pairings[0] and res->sides (bridged sides so far: "", caller, agent,
 * both), or state "gone" and no pairing. Read only. */
int qs_pairing_info(queue_store *qs, const char *pairing, qs_result_cb cb, void *pd);

/* The pairings not yet bridged whose caller this node serves (res->pairings):
 * read after a reconnect, once the held writes are sent, so that a pairing
 * whose reply was lost with the connection is carried out all the same. */
int qs_node_pairings(queue_store *qs, qs_result_cb cb, void *pd);

/* A queue's length, free agents and longest wait. */
int qs_queue_info(queue_store *qs, const char *queue, qs_queue_view_cb cb, void *pd);

#endif
