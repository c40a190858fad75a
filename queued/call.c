/* call.c - one pairing carried out on this node: the caller and the agent
 * into a mixing bridge, the agent's keys driving a recording of it, and the
 * end of the call by whoever ends it.
 *
 *   state      on                                   next
 *   STOPPING   the caller's announcement stopped    BRIDGING   (create mixing bridge)
 *   BRIDGING   bridge 200                           JOINING    (addChannel caller,agent)
 *   JOINING    204                                  CONNECTED  (qs_bridged: CONNECT)
 *   STOPPING.. bridge/add failed, parties alive     ENDED      (qs_rollback: caller first
 *                                                              again, agent keeps its place)
 *   any        caller hung up                       ENDED      (qs_leave: ABANDON before
 *                                                              CONNECT, COMPLETECALLER after)
 *   any        agent hung up                        ENDED      (qs_agent_logoff: caller
 *                                                              requeued, or COMPLETEAGENT and
 *                                                              the caller hung up)
 *   CONNECTED  key_hangup ('#')                     ENDED      (COMPLETEAGENT, caller hung
 *                                                              up, agent to wrapup)
 *
 * The announcement is stopped first because Asterisk runs a channel's
 * commands in order: addChannel would wait for the playback to end
 * (OBSERVED.md). Recording keys, in CONNECTED only (a key that means nothing
 * in the current recording state changes nothing):
 *
 *   rec state  key          action                           next
 *   NONE       key_record   POST bridges/{b}/record, beep    ON
 *   ON         key_pause    POST recordings/live/{n}/pause   PAUSED
 *   PAUSED     key_pause    DELETE .../pause                 ON
 *   ON/PAUSED  key_stop     POST .../stop (kept)             NONE
 *   ON/PAUSED  key_discard  DELETE recordings/live/{n}       NONE (file gone)
 */
#include "node_int.h"

#include "core/err.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "call"

typedef enum {
    CALL_STOPPING,  /* stopping the caller's announcement */
    CALL_BRIDGING,  /* creating the mixing bridge */
    CALL_JOINING,   /* moving both parties into it */
    CALL_CONNECTED, /* talking; CONNECT logged */
    CALL_ENDED,
    CALL__COUNT
} call_state;

static const char *const state_names[CALL__COUNT] = {"stopping", "bridging", "joining",
                                                     "connected", "ended"};

typedef enum { REC_NONE, REC_ON, REC_PAUSED } rec_state;

/* What the agent's keys ask of the recording, sent one at a time in key order:
 * requests for one recording may travel on different connections, and a
 * DELETE that overtook its POST .../record would find nothing to discard. */
typedef enum { RQ_START, RQ_PAUSE, RQ_UNPAUSE, RQ_STOP, RQ_DISCARD } rec_req;
#define REC_QUEUE_MAX 16

struct call {
    node *n;
    int refs;
    call_state state;
    qs_pairing p;
    caller *c; /* referenced until the call ends */
    agent *a;
    const qcfg_queue *q;
    char bridge[ARI_EVENT_MAX_ID + 1];
    bool bridge_made;
    bool creating;   /* POST /bridges in flight: a late 200 after the end destroys it */
    bool wait_holds; /* waiting for a party's order-sensitive request (leg->busy) */
    rec_state rec; /* as the keys left it (requests may still be queued) */
    unsigned nrec;
    char rec_name[ARI_EVENT_MAX_ID + 1];
    rec_req rq[REC_QUEUE_MAX]; /* recording requests not sent yet */
    size_t rq_head, rq_len;
    bool rq_busy; /* one is in flight */
    bool destroy_when_idle; /* the bridge goes after the last recording request */
};

static void step(call *k);
static void rec_push(call *k, rec_req r);

static call *call_ref(call *k)
{
    k->refs++;
    return k;
}

/* Kept out of line on purpose: inlined, gcc -O2's use-after-free analysis
 * (which cannot count references) takes every drop for a free and flags the
 * uses after it, although the caller always holds another reference there.
 * ASan runs of the same paths check it for real. */
__attribute__((noinline)) static void call_unref(call *k)
{
    if (k && --k->refs == 0)
        free(k);
}

static void set_state(call *k, call_state to)
{
    LOG_I(MOD, "pairing=%s caller=%s agent=%s from=%s to=%s", k->p.pairing, k->p.caller_channel,
          k->p.agent, state_names[k->state], state_names[to]);
    k->state = to;
}

/* Completion of a request whose answer does not matter beyond the log. */
static void on_logged(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    call *k = pd;
    if (r->status == 0 || r->status >= 500)
        LOG_W(MOD, "pairing=%s %s %s failed: %ld %s", k->p.pairing, r->method, r->path,
              r->status, ari_response_message(r));
    call_unref(k);
}

#define FIRE(k, expr)                                                                      \
    do {                                                                                   \
        call_ref(k);                                                                       \
        if ((expr) != 0)                                                                   \
            call_unref(k);                                                                 \
    } while (0)

static void on_qs_logged(queue_store *qs, int err, const qs_result *res, void *pd)
{
    call *k = pd;
    if (err)
        LOG_W(MOD, "pairing=%s not recorded: %s (%s)", k->p.pairing, ariq_strerror(err),
              qs_errmsg(qs));
    else
        node_take_pairings(k->n, res->pairings, res->npairings);
    call_unref(k);
}

/* ---- the end ---------------------------------------------------------------- */

/* Releases both legs and the bridge; the call is over for this node. */
static void finish(call *k)
{
    set_state(k, CALL_ENDED);
    if (k->rec != REC_NONE) { /* keep what was recorded */
        rec_push(k, RQ_STOP);
        FIRE(k, qs_rec(k->n->qs, QS_REC_STOP, k->rec_name, NULL, NULL, 0, on_qs_logged, k));
        k->rec = REC_NONE;
    }
    if (k->bridge_made && (k->rq_busy || k->rq_len))
        k->destroy_when_idle = true; /* a discard must reach it before the bridge goes */
    else if (k->bridge_made)
        FIRE(k, ari_bridge_destroy(k->n->rest, k->bridge, on_logged, k));
    /* no party may point at a call that is over (it may be freed below) */
    if (caller_call(k->c) == k)
        caller_set_call(k->c, NULL);
    if (agent_call(k->a) == k)
        agent_set_call(k->a, NULL);
    leg_unref((leg *)k->c);
    leg_unref((leg *)k->a);
    k->c = NULL;
    k->a = NULL;
    call_unref(k); /* the legs' reference */
}

/* The end of a talking call is recorded; what the agent does next depends on
 * the answer: with no wrapup the same script may have paired it again, and
 * then it goes straight to that call instead of through the holding bridge. */
typedef struct completion {
    node *n;
    agent *a; /* referenced */
    long wrapup_s;
} completion;

static void on_completed(queue_store *qs, int err, const qs_result *res, void *pd)
{
    completion *cp = pd;
    leg *al = (leg *)cp->a;
    if (err)
        LOG_W(MOD, "agent=%s end of call not recorded: %s (%s)", al->chan, ariq_strerror(err),
              qs_errmsg(qs));
    bool next = !err && node_will_carry(cp->n, res->pairings, res->npairings, al->chan);
    agent_after_call(cp->a, cp->wrapup_s, !next);
    if (!err)
        node_take_pairings(cp->n, res->pairings, res->npairings);
    leg_unref(al);
    free(cp);
}

/* Records the end of a talking call (COMPLETECALLER / COMPLETEAGENT by
 * `who`); the agent follows from on_completed. */
static void complete(call *k, qs_party who)
{
    completion *cp = calloc(1, sizeof *cp);
    if (cp) {
        cp->n = k->n;
        cp->a = k->a;
        cp->wrapup_s = k->q->wrapup_s;
        leg_ref((leg *)k->a);
    }
    if (!cp || qs_leave(k->n->qs, k->p.call, QS_LEAVE_HANGUP, who, (int)(k->q->wrapup_s * 1000),
                        true, on_completed, cp) != 0) {
        LOG_W(MOD, "pairing=%s end of call not sent to Redis", k->p.pairing);
        agent_after_call(k->a, k->q->wrapup_s, true);
        if (cp) {
            leg_unref((leg *)cp->a);
            free(cp);
        }
    }
}

/* The caller left. */
void call_caller_gone(call *k)
{
    if (k->state == CALL_ENDED)
        return;
    caller_set_call(k->c, NULL);
    if (k->state == CALL_CONNECTED) {
        complete(k, QS_BY_CALLER);
    } else { /* ABANDON while paired: the agent is free again, keeping its place */
        FIRE(k, qs_leave(k->n->qs, k->p.call, QS_LEAVE_HANGUP, QS_BY_CALLER, 0, true,
                         on_qs_logged, k));
        agent_back_to_free(k->a);
    }
    finish(k);
}

/* The agent left: logged off; the caller is requeued (not yet talking) or
 * completed and hung up. */
void call_agent_gone(call *k)
{
    if (k->state == CALL_ENDED)
        return;
    bool talking = k->state == CALL_CONNECTED;
    FIRE(k, qs_agent_logoff(k->n->qs, k->p.agent, "hangup", true, on_qs_logged, k));
    agent_set_call(k->a, NULL);
    if (talking) {
        caller_set_call(k->c, NULL);
        leg_end((leg *)k->c);
        FIRE(k, ari_channel_hangup(k->n->rest, k->p.caller_channel, "normal", on_logged, k));
    } else {
        caller_back_to_queue(k->c);
    }
    finish(k);
}

/* '#': the agent ends the call; the caller is hung up, the agent wraps up. */
static void agent_hangs_up_call(call *k)
{
    caller_set_call(k->c, NULL);
    leg_end((leg *)k->c);
    FIRE(k, ari_channel_hangup(k->n->rest, k->p.caller_channel, "normal", on_logged, k));
    complete(k, QS_BY_AGENT);
    finish(k);
}

/* The bridge could not be made and both are still here: undo the pairing. */
static void roll_back(call *k, const char *why)
{
    LOG_W(MOD, "pairing=%s rolled back: %s", k->p.pairing, why);
    FIRE(k, qs_rollback(k->n->qs, k->p.pairing, why, QS_AGENT_KEEP, on_qs_logged, k));
    caller_back_to_queue(k->c);
    agent_back_to_free(k->a);
    finish(k);
}

/* ---- connecting --------------------------------------------------------------- */

/* addChannel said 400 "Channel not found": one party is gone (its events may
 * never come, e.g. after a WebSocket drop). A roll-back would put a gone
 * caller back at the front; instead the caller's channel is looked up and the
 * party that left leaves as if it had hung up. */
static void on_caller_checked(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    call *k = pd;
    if (k->state != CALL_ENDED && r->err != ARIQ_ECLOSED) {
        if (r->status == 404) {
            LOG_W(MOD, "pairing=%s the caller's channel is gone", k->p.pairing);
            leg *c = (leg *)k->c;
            caller_set_call(k->c, NULL);
            leg_end(c);
            FIRE(k, qs_leave(k->n->qs, k->p.call, QS_LEAVE_HANGUP, QS_BY_CALLER, 0, true,
                             on_qs_logged, k));
            agent_back_to_free(k->a);
            finish(k);
        } else if (r->status == 200) {
            LOG_W(MOD, "pairing=%s the agent's channel is gone", k->p.pairing);
            leg_end((leg *)k->a);
            call_agent_gone(k);
        } else {
            roll_back(k, "a channel could not be added to the call");
        }
    }
    call_unref(k);
}

static void on_bridged(queue_store *qs, int err, const qs_result *res, void *pd)
{
    call *k = pd;
    if (err)
        LOG_W(MOD, "pairing=%s CONNECT not recorded: %s (%s)", k->p.pairing, ariq_strerror(err),
              qs_errmsg(qs));
    else
        LOG_I(MOD, "pairing=%s connected holdtime_ms=%lld", k->p.pairing,
              (long long)res->holdtime_ms);
    call_unref(k);
}

static void on_step(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    call *k = pd;
    bool ok = r->status >= 200 && r->status < 300;
    if (k->creating) {
        k->creating = false;
        k->bridge_made = ok;
        if (ok && k->state == CALL_ENDED) /* the call ended while it was made */
            FIRE(k, ari_bridge_destroy(k->n->rest, k->bridge, on_logged, k));
    }
    if (k->state == CALL_ENDED || r->err == ARIQ_ECLOSED) {
        /* ended meanwhile, or closing */
    } else if (k->state == CALL_STOPPING) {
        set_state(k, CALL_BRIDGING); /* 404: it had finished by itself: fine */
        step(k);
    } else if (!ok && k->state == CALL_JOINING && r->status == 400) {
        FIRE(k, ari_channel_get(k->n->rest, k->p.caller_channel, on_caller_checked, k));
    } else if (!ok) {
        roll_back(k, r->status ? ari_response_message(r) : "ARI unreachable");
    } else if (k->state == CALL_BRIDGING) {
        set_state(k, CALL_JOINING);
        step(k);
    } else if (k->state == CALL_JOINING) {
        set_state(k, CALL_CONNECTED);
        caller_talking(k->c);
        agent_talking(k->a);
        FIRE(k, qs_bridged(k->n->qs, k->p.pairing, QS_SIDE_BOTH, on_bridged, k));
    }
    call_unref(k);
}

/* Sends the request of the current state. */
static void step(call *k)
{
    ari_rest *rest = k->n->rest;
    const char *both[] = {k->p.caller_channel, k->p.agent_channel};
    const char *pb = caller_playback(k->c);
    if (k->state == CALL_STOPPING && ((leg *)k->c)->busy) {
        k->wait_holds = true; /* its announcement's play is in flight: stop it once made */
        return;
    }
    if (k->state == CALL_STOPPING && !pb)
        set_state(k, CALL_BRIDGING); /* no announcement to stop */
    if (k->state == CALL_JOINING && (((leg *)k->c)->busy || ((leg *)k->a)->busy)) {
        k->wait_holds = true; /* call_leg_idle resumes */
        return;
    }
    int rc = 0;
    call_ref(k);
    switch (k->state) {
    case CALL_STOPPING:
        rc = ari_playback_stop(rest, pb, on_step, k);
        break;
    case CALL_BRIDGING:
        rc = ari_bridge_create(rest, k->bridge, "mixing", k->bridge, on_step, k);
        k->creating = rc == 0;
        break;
    case CALL_JOINING:
        rc = ari_bridge_add_channel(rest, k->bridge, both, 2, NULL, on_step, k);
        break;
    default:
        break;
    }
    if (rc)
        roll_back(k, "ARI request refused");
    if (rc || k->state > CALL_JOINING)
        call_unref(k); /* no request took the reference */
}

void call_leg_idle(leg *l)
{
    caller *c = leg_caller(l);
    agent *a = leg_agent(l);
    call *k = c ? caller_call(c) : a ? agent_call(a) : NULL;
    if (!k || (k->state != CALL_JOINING && k->state != CALL_STOPPING) || !k->wait_holds)
        return;
    if (((leg *)k->c)->busy || ((leg *)k->a)->busy)
        return; /* the other party's is still in flight */
    k->wait_holds = false;
    step(k);
}

void call_start(node *n, const qs_pairing *p, caller *c, agent *a)
{
    call *k = calloc(1, sizeof *k);
    if (!k) {
        LOG_E(MOD, "pairing=%s out of memory: left to the parties' own ends", p->pairing);
        return;
    }
    k->n = n;
    k->refs = 1; /* the legs' */
    k->p = *p;
    k->c = c;
    k->a = a;
    leg_ref((leg *)c);
    leg_ref((leg *)a);
    k->q = qcfg_queue_find(n->cfg, p->queue);
    if (!k->q)
        k->q = &n->cfg->queues[0];
    snprintf(k->bridge, sizeof k->bridge, "ariq-mix-%s", p->pairing);
    LOG_I(MOD, "pairing=%s queue=%s caller=%s agent=%s holdtime_ms=%lld", p->pairing, p->queue,
          p->caller_channel, p->agent, (long long)p->holdtime_ms);
    k->state = CALL_STOPPING;
    caller_set_call(c, k);
    agent_set_call(a, k);
    step(k);
}

/* ---- recording keys --------------------------------------------------------- */

static void rec_log(call *k, qs_rec_action act)
{
    char file[ARI_EVENT_MAX_ID + 24];
    snprintf(file, sizeof file, "%s.%s", k->rec_name, k->q->record_format);
    FIRE(k, qs_rec(k->n->qs, act, k->rec_name, k->p.pairing, file, 0, on_qs_logged, k));
}

static void rec_send_next(call *k);

static void on_rec_answered(ari_rest *rest, const ari_response *r, void *pd)
{
    call *k = pd;
    on_logged(rest, r, call_ref(k)); /* logs failures, drops that reference */
    k->rq_busy = false;
    if (r->err != ARIQ_ECLOSED)
        rec_send_next(k);
    call_unref(k);
}

/* Sends the oldest queued recording request, if none is in flight. */
static void rec_send_next(call *k)
{
    if (!k->rq_busy && !k->rq_len && k->destroy_when_idle) {
        k->destroy_when_idle = false;
        FIRE(k, ari_bridge_destroy(k->n->rest, k->bridge, on_logged, k));
    }
    if (k->rq_busy || !k->rq_len)
        return;
    rec_req r = k->rq[k->rq_head];
    k->rq_head = (k->rq_head + 1) % REC_QUEUE_MAX;
    k->rq_len--;
    ari_rest *rest = k->n->rest;
    ari_record_opts o = {.name = k->rec_name, .format = k->q->record_format, .if_exists = "fail"};
    int rc = ARIQ_EINVAL;
    call_ref(k);
    switch (r) {
    case RQ_START:
        rc = ari_bridge_record(rest, k->bridge, &o, on_rec_answered, k);
        break;
    case RQ_PAUSE:
        rc = ari_recording_pause(rest, k->rec_name, on_rec_answered, k);
        break;
    case RQ_UNPAUSE:
        rc = ari_recording_unpause(rest, k->rec_name, on_rec_answered, k);
        break;
    case RQ_STOP:
        rc = ari_recording_stop(rest, k->rec_name, on_rec_answered, k);
        break;
    case RQ_DISCARD:
        rc = ari_recording_cancel(rest, k->rec_name, on_rec_answered, k);
        break;
    }
    k->rq_busy = rc == 0;
    if (rc) {
        call_unref(k);
        rec_send_next(k);
    }
}

static void rec_push(call *k, rec_req r)
{
    if (k->rq_len == REC_QUEUE_MAX) {
        LOG_W(MOD, "pairing=%s too many recording keys at once: key dropped", k->p.pairing);
        return;
    }
    k->rq[(k->rq_head + k->rq_len) % REC_QUEUE_MAX] = r;
    k->rq_len++;
    rec_send_next(k);
}

static void rec_start(call *k)
{
    snprintf(k->rec_name, sizeof k->rec_name, "ariq-%s-%u", k->p.pairing, ++k->nrec);
    rec_push(k, RQ_START);
    const char *beep[] = {"sound:beep"}; /* the caller is told it is recorded */
    FIRE(k, ari_channel_play(k->n->rest, k->p.caller_channel, NULL, beep, 1, NULL, on_logged,
                             k));
    k->rec = REC_ON;
    rec_log(k, QS_REC_START);
}

void call_agent_dtmf(call *k, char digit)
{
    if (k->state != CALL_CONNECTED || !digit)
        return;
    const qcfg_queue *q = k->q;
    LOG_I(MOD, "pairing=%s agent key=%c rec=%d", k->p.pairing, digit, (int)k->rec);
    if (digit == q->key_hangup) {
        agent_hangs_up_call(k);
    } else if (digit == q->key_record && k->rec == REC_NONE) {
        rec_start(k);
    } else if (digit == q->key_pause && k->rec == REC_ON) {
        rec_push(k, RQ_PAUSE);
        k->rec = REC_PAUSED;
        rec_log(k, QS_REC_PAUSE);
    } else if (digit == q->key_pause && k->rec == REC_PAUSED) {
        rec_push(k, RQ_UNPAUSE);
        k->rec = REC_ON;
        rec_log(k, QS_REC_UNPAUSE);
    } else if (digit == q->key_stop && k->rec != REC_NONE) {
        rec_push(k, RQ_STOP);
        k->rec = REC_NONE;
        rec_log(k, QS_REC_STOP);
    } else if (digit == q->key_discard && k->rec != REC_NONE) {
        rec_push(k, RQ_DISCARD);
        k->rec = REC_NONE;
        rec_log(k, QS_REC_DISCARD);
    } /* any other key, or one that means nothing now, changes nothing */
}
