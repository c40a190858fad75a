/* call.c - one pairing carried out by this node, of one of three kinds:
 *
 *   LOCAL  caller and agent are both legs of this node: one mixing bridge.
 *   OUT    the caller is ours, the agent on node B: we dial a link call to B
 *          (link.c, our end is the OUT link leg) and bridge the caller with
 *          our end once B answered it. The caller hears MOH meanwhile.
 *   IN     the agent is ours, and the link from the caller's node arrived
 *          (the IN link leg): we answer it and bridge it with the agent.
 *          The agent's keys record our bridge.
 *
 *   state      kind    on                                 next
 *   STOPPING   L, OUT  the caller's announcement stopped  BRIDGING (L), DIALING (OUT)
 *   DIALING    OUT     link StasisStart (B answered)      BRIDGING
 *   ANSWERING  IN      answer 204                         BRIDGING
 *   BRIDGING   all     bridge 200                         JOINING   (addChannel both)
 *   JOINING    all     204                                CONNECTED (qs_bridged, our side:
 *                                                                   CONNECT when both are in)
 *   any        L       bridge/add failed, parties alive   ENDED     (qs_rollback: caller first
 *                                                                   again, agent keeps its place)
 *   any        OUT/IN  the link went, or a step failed    UNLINKING (link hung up, qs_unlink)
 *   UNLINKING  OUT/IN  the reply: our party's state now   ENDED     (caller back to its queue
 *                                                                   or hung up if its call is
 *                                                                   over; agent free, wrapup,
 *                                                                   or gone)
 *   any        L, OUT  caller hung up                     ENDED     (qs_leave: ABANDON before
 *                                                                   CONNECT, COMPLETECALLER after;
 *                                                                   the link hung up)
 *   any        L, IN   agent hung up                      ENDED     (qs_agent_logoff: caller
 *                                                                   requeued, or COMPLETEAGENT and
 *                                                                   the caller / link hung up)
 *   CONNECTED  L, IN   key_hangup ('#')                   ENDED     (COMPLETEAGENT, caller or link
 *                                                                   hung up, agent to wrapup)
 *   any        all     a newer pairing of its party       ENDED     (superseded: Redis ended
 *                                                                   this one already)
 *
 * Across nodes each node only knows its half; Redis decides the whole. A
 * link that goes before both halves reported CONNECT is a rollback (the
 * caller keeps the front), after it the end of the call; whichever node asks
 * first does it and the other learns its party's fate from the same op.
 *
 * The announcement is stopped first because Asterisk runs a channel's
 * commands in order: addChannel would wait for the playback to end
 * (OBSERVED.md). Recording keys, in CONNECTED only, on the agent's node (a
 * key that means nothing in the current recording state changes nothing):
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
    CALL_DIALING,   /* OUT: the link call is ringing on the agent's node */
    CALL_ANSWERING, /* IN: answering the link leg */
    CALL_BRIDGING,  /* creating the mixing bridge */
    CALL_JOINING,   /* moving both parties into it */
    CALL_CONNECTED, /* talking; our side reported */
    CALL_UNLINKING, /* OUT/IN: the link is gone, Redis decides */
    CALL_ENDED,
    CALL__COUNT
} call_state;

static const char *const state_names[CALL__COUNT] = {
    "stopping", "dialing", "answering", "bridging", "joining", "connected", "unlinking", "ended"};

typedef enum { CALL_LOCAL, CALL_OUT, CALL_IN } call_kind;
static const char *const kind_names[] = {"local", "out", "in"};

typedef enum { REC_NONE, REC_ON, REC_PAUSED } rec_state;

/* What the agent's keys ask of the recording, sent one at a time in key order:
 * requests for one recording may travel on different connections, and a
 * DELETE that overtook its POST .../record would find nothing to discard. */
typedef enum { RQ_START, RQ_PAUSE, RQ_UNPAUSE, RQ_STOP, RQ_DISCARD } rec_req;
#define REC_QUEUE_MAX 16

struct call {
    node *n;
    int refs;
    call_kind kind;
    call_state state;
    qs_pairing p;
    caller *c; /* LOCAL, OUT; referenced until the call ends */
    agent *a;  /* LOCAL, IN; referenced */
    leg *link; /* OUT, IN: our end of the link call; referenced */
    const qcfg_queue *q;
    char bridge[ARI_EVENT_MAX_ID + 1];
    bool bridge_made;
    bool creating;   /* POST /bridges in flight: a late 200 after the end destroys it */
    bool wait_holds; /* waiting for a party's order-sensitive request (leg->busy) */
    rec_state rec; /* as the keys left it (requests may still be queued) */
    unsigned nrec;
    char rec_name[ARI_EVENT_MAX_ID + 1];
    /* Recording requests not sent yet, each with the number of the recording
     * it is for (its name is the pairing and that number): a key may start
     * the next recording while requests for the last are still queued. */
    struct {
        rec_req r;
        unsigned n;
    } rq[REC_QUEUE_MAX];
    size_t rq_head, rq_len;
    bool rq_busy; /* one is in flight */
    rec_req rq_now; /* the one in flight, and its recording's name */
    char rq_name[ARI_EVENT_MAX_ID + 1];
    bool destroy_when_idle; /* the bridge goes after the last recording request */
    bool was_connected;     /* UNLINKING: our side had been connected */
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
    LOG_D(MOD, "pairing=%s kind=%s caller=%s agent=%s from=%s to=%s", k->p.pairing,
          kind_names[k->kind], k->p.caller_channel, k->p.agent, state_names[k->state],
          state_names[to]);
    k->state = to;
}

const char *call_pairing(const call *k)
{
    return k->p.pairing;
}

bool call_is_out(const call *k)
{
    return k->kind == CALL_OUT && k->state <= CALL_DIALING;
}

long long pairing_seq(const char *pairing)
{
    return pairing && pairing[0] == 'p' ? strtoll(pairing + 1, NULL, 10) : 0;
}

/* The two channels of our mixing bridge. */
static const char *chan_caller_side(const call *k)
{
    return k->kind == CALL_IN ? k->link->chan : k->p.caller_channel;
}

static const char *chan_agent_side(const call *k)
{
    return k->kind == CALL_OUT ? k->link->chan : k->p.agent_channel;
}

/* An order-sensitive request of a party of ours is in flight. */
static bool parties_busy(const call *k)
{
    return (k->c && ((const leg *)k->c)->busy) || (k->a && ((const leg *)k->a)->busy);
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

/* No party may point at a call that is over (it may be freed here): k lets
 * go of its legs and they of it. */
static void release_legs(call *k)
{
    if (k->c && caller_call(k->c) == k)
        caller_set_call(k->c, NULL);
    if (k->a && agent_call(k->a) == k)
        agent_set_call(k->a, NULL);
    link_set_call(k->link, NULL);
    leg_unref((leg *)k->c);
    leg_unref((leg *)k->a);
    leg_unref(k->link);
    k->c = NULL;
    k->a = NULL;
    k->link = NULL;
    call_unref(k); /* the legs' reference */
}

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
    node_call_ended(k->n);
    release_legs(k);
}

/* The end of a talking call is recorded; what the agent does next depends on
 * the answer: with no wrapup the same script may have paired it again, and
 * then it goes straight to that call instead of through the holding bridge. */
typedef struct completion {
    node *n;
    agent *a; /* referenced */
    long wrapup_s;
    char pairing[QS_ID_MAX + 1]; /* the call completed */
} completion;

static void on_completed(queue_store *qs, int err, const qs_result *res, void *pd)
{
    completion *cp = pd;
    leg *al = (leg *)cp->a;
    call *now = agent_call(cp->a);
    if (err)
        LOG_W(MOD, "agent=%s end of call not recorded: %s (%s)", al->chan, ariq_strerror(err),
              qs_errmsg(qs));
    if (now && strcmp(call_pairing(now), cp->pairing) != 0) {
        /* a late reply (held while Redis was away): the agent is in its next
         * call already, which is not this reply's to end */
        LOG_I(MOD, "agent=%s end of pairing %s recorded; in pairing %s already", al->chan,
              cp->pairing, call_pairing(now));
        if (!err)
            node_take_pairings(cp->n, res->pairings, res->npairings);
        leg_unref(al);
        free(cp);
        return;
    }
    bool next = !err && node_will_carry(cp->n, res->pairings, res->npairings, al->chan);
    /* Redis lost the call's records (came back without its data): the agent's too */
    bool lost = cp->n->redis_lost &&
                (err == ARIQ_ENOTFOUND || (!err && strcmp(res->outcome, "GONE") == 0));
    agent_after_call(cp->a, lost ? 0 : cp->wrapup_s, !next);
    if (lost)
        agent_relogin(cp->a);
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
        snprintf(cp->pairing, sizeof cp->pairing, "%s", k->p.pairing);
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

static void hangup_party(call *k, leg *l)
{
    leg_end(l);
    FIRE(k, ari_channel_hangup(k->n->rest, l->chan, "normal", on_logged, k));
}

static long wrapup_ms(const call *k)
{
    return k->q->wrapup_s * 1000;
}

/* The caller left. */
void call_caller_gone(call *k)
{
    if (k->state == CALL_ENDED)
        return;
    caller_set_call(k->c, NULL);
    if (k->kind == CALL_OUT) { /* the script knows how far it got */
        link_hangup(k->link);
        FIRE(k, qs_leave(k->n->qs, k->p.call, QS_LEAVE_HANGUP, QS_BY_CALLER, (int)wrapup_ms(k),
                         true, on_qs_logged, k));
    } else if (k->state == CALL_CONNECTED) {
        complete(k, QS_BY_CALLER);
    } else { /* ABANDON while paired: the agent is free again, keeping its place */
        FIRE(k, qs_leave(k->n->qs, k->p.call, QS_LEAVE_HANGUP, QS_BY_CALLER, 0, true,
                         on_qs_logged, k));
        agent_back_to_free(k->a);
    }
    finish(k);
}

/* The agent left: logged off; the caller is requeued (not yet talking) or
 * completed and hung up (on another node: the link goes, and that node
 * learns the rest from Redis). */
void call_agent_gone(call *k)
{
    call_agent_logoff(k, "hangup");
}

void call_agent_logoff(call *k, const char *reason)
{
    if (k->state == CALL_ENDED)
        return;
    bool talking = k->state == CALL_CONNECTED;
    FIRE(k, qs_agent_logoff(k->n->qs, k->p.agent, reason, true, on_qs_logged, k));
    agent_set_call(k->a, NULL);
    if (k->kind == CALL_IN) {
        link_hangup(k->link);
    } else if (talking) {
        caller_set_call(k->c, NULL);
        hangup_party(k, (leg *)k->c);
    } else {
        caller_back_to_queue(k->c);
    }
    finish(k);
}

/* '#': the agent ends the call; the caller (or the link to it) is hung up,
 * the agent wraps up. */
static void agent_hangs_up_call(call *k)
{
    if (k->kind == CALL_IN) {
        link_hangup(k->link);
    } else {
        caller_set_call(k->c, NULL);
        hangup_party(k, (leg *)k->c);
    }
    complete(k, QS_BY_AGENT);
    finish(k);
}

/* ---- across nodes: the link is gone ------------------------------------------ */

static void on_unlinked(queue_store *qs, int err, const qs_result *res, void *pd)
{
    call *k = pd;
    if (err)
        LOG_W(MOD, "pairing=%s unlink not recorded: %s (%s)", k->p.pairing, ariq_strerror(err),
              qs_errmsg(qs));
    else
        LOG_I(MOD, "pairing=%s unlinked outcome=%s party=%s", k->p.pairing, res->outcome,
              res->state);
    if (k->state == CALL_UNLINKING) { /* not superseded or left meanwhile */
        const char *st = err ? "unknown" : res->state;
        if (k->kind == CALL_OUT)
            caller_after_link(k->c, st, k->was_connected);
        else
            agent_after_link(k->a, st, err ? 0 : res->wrapup_ms);
        finish(k);
    }
    if (!err)
        node_take_pairings(k->n, res->pairings, res->npairings);
    call_unref(k);
}

/* OUT, IN: our end of the link is hung up (if it is not gone already) and
 * Redis is asked to end the pairing from our side; the reply says what
 * our party is now. */
static void link_lost(call *k, const char *why)
{
    if (k->state == CALL_ENDED || k->state == CALL_UNLINKING)
        return;
    k->was_connected = k->state == CALL_CONNECTED;
    if (k->was_connected) /* the usual end of a call from the other side */
        LOG_I(MOD, "pairing=%s link gone: %s", k->p.pairing, why);
    else
        LOG_W(MOD, "pairing=%s link lost: %s", k->p.pairing, why);
    link_hangup(k->link);
    set_state(k, CALL_UNLINKING);
    bool out = k->kind == CALL_OUT;
    call_ref(k);
    if (qs_unlink(k->n->qs, k->p.pairing, out ? QS_SIDE_CALLER : QS_SIDE_AGENT,
                  out ? k->p.call : k->p.agent, why, (int)wrapup_ms(k), true, on_unlinked,
                  k) != 0) {
        qs_result none = {.state = "unknown"};
        on_unlinked(k->n->qs, ARIQ_EIO, &none, k); /* drops the reference */
    }
}

void call_link_gone(call *k, const char *why)
{
    if (k->kind == CALL_IN && k->state == CALL_CONNECTED) {
        /* The link of a call in progress went from the caller's side: the
         * caller's node records the end (its caller's leave, or its own
         * unlink when the link dropped), and says what the agent is next.
         * Here the agent wraps up or is free as after any call; Redis has
         * the last word on pairing it again. One script call less a call. */
        LOG_I(MOD, "pairing=%s over from the caller's side: %s", k->p.pairing, why);
        agent_set_call(k->a, NULL);
        agent_after_call(k->a, k->q->wrapup_s, true);
        finish(k);
        return;
    }
    link_lost(k, why);
}

/* The bridge could not be made and both are still here: undo the pairing. */
static void roll_back(call *k, const char *why)
{
    if (k->kind != CALL_LOCAL) {
        link_lost(k, why);
        return;
    }
    LOG_W(MOD, "pairing=%s rolled back: %s", k->p.pairing, why);
    FIRE(k, qs_rollback(k->n->qs, k->p.pairing, why, QS_AGENT_KEEP, on_qs_logged, k));
    caller_back_to_queue(k->c);
    agent_back_to_free(k->a);
    finish(k);
}

/* A newer pairing of `mover` (one of k's parties) arrived: Redis ended this
 * one already. Our end of it goes; the other local party, if any, waits
 * again (its own newer pairing, if it has one, is on its way). */
void call_superseded(call *k, leg *mover)
{
    if (k->state == CALL_ENDED)
        return;
    LOG_I(MOD, "pairing=%s superseded by a newer pairing of %s", k->p.pairing, mover->chan);
    link_hangup(k->link);
    if (k->c && (leg *)k->c != mover) {
        caller_set_call(k->c, NULL);
        caller_back_to_queue(k->c);
    }
    if (k->a && (leg *)k->a != mover) {
        agent_set_call(k->a, NULL);
        agent_back_to_free(k->a);
    }
    finish(k);
}

/* ---- connecting --------------------------------------------------------------- */

/* addChannel said 400 "Channel not found": one party is gone (its events may
 * never come, e.g. after a WebSocket drop). A roll-back would put a gone
 * caller back at the front; instead our party's channel is looked up
 * (the caller's, or on the agent's node the agent's) and whoever left leaves
 * as if it had hung up. */
static void on_party_checked(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    call *k = pd;
    if (k->state == CALL_JOINING && r->err != ARIQ_ECLOSED) {
        if (r->status == 404 && k->kind == CALL_IN) {
            LOG_W(MOD, "pairing=%s the agent's channel is gone", k->p.pairing);
            leg_end((leg *)k->a);
            call_agent_gone(k);
        } else if (r->status == 404) {
            LOG_W(MOD, "pairing=%s the caller's channel is gone", k->p.pairing);
            leg_end((leg *)k->c);
            call_caller_gone(k);
        } else if (r->status == 200 && k->kind == CALL_LOCAL) {
            LOG_W(MOD, "pairing=%s the agent's channel is gone", k->p.pairing);
            leg_end((leg *)k->a);
            call_agent_gone(k);
        } else if (r->status == 200) {
            link_lost(k, "the link leg could not be added");
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
        LOG_I(MOD, "pairing=%s %s holdtime_ms=%lld", k->p.pairing,
              res->connected ? "connected" : "our side in, waiting for the other",
              (long long)res->holdtime_ms);
    call_unref(k);
}

static const qs_side our_side[] = {
    [CALL_LOCAL] = QS_SIDE_BOTH, [CALL_OUT] = QS_SIDE_CALLER, [CALL_IN] = QS_SIDE_AGENT};

static void connected(call *k)
{
    if (k->c) /* both moved out of their holding bridges */
        hold_left((leg *)k->c);
    if (k->a)
        hold_left((leg *)k->a);
    set_state(k, CALL_CONNECTED);
    if (k->c)
        caller_talking(k->c);
    if (k->a)
        agent_talking(k->a);
    FIRE(k, qs_bridged(k->n->qs, k->p.pairing, our_side[k->kind], on_bridged, k));
}

static void on_step(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    call *k = pd;
    bool ok = r->status >= 200 && r->status < 300;
    if (k->creating) {
        k->creating = false;
        k->bridge_made = ok;
        if (ok && (k->state == CALL_ENDED || k->state == CALL_UNLINKING)) /* ended meanwhile */
            FIRE(k, ari_bridge_destroy(k->n->rest, k->bridge, on_logged, k));
    }
    if (k->state == CALL_ENDED || k->state == CALL_UNLINKING || r->err == ARIQ_ECLOSED) {
        /* ended meanwhile, or closing */
    } else if (k->state == CALL_STOPPING) {
        set_state(k, k->kind == CALL_OUT ? CALL_DIALING : CALL_BRIDGING); /* 404: it had
                                                                         finished: fine */
        step(k);
    } else if (!ok && k->state == CALL_JOINING && r->status == 400) {
        const char *ours = k->kind == CALL_IN ? k->p.agent_channel : k->p.caller_channel;
        FIRE(k, ari_channel_get(k->n->rest, ours, on_party_checked, k));
    } else if (!ok) {
        roll_back(k, r->status ? ari_response_message(r) : "ARI unreachable");
    } else if (k->state == CALL_ANSWERING) {
        set_state(k, CALL_BRIDGING);
        step(k);
    } else if (k->state == CALL_BRIDGING) {
        set_state(k, CALL_JOINING);
        step(k);
    } else if (k->state == CALL_JOINING) {
        connected(k);
    }
    call_unref(k);
}

/* The originate's own answer: only a refusal matters (the link's events
 * say the rest, and may come before this answer). */
static void on_originated(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    call *k = pd;
    if (k->state == CALL_DIALING && r->err != ARIQ_ECLOSED &&
        (r->status < 200 || r->status >= 300)) {
        char why[160];
        snprintf(why, sizeof why, "link not dialled: %ld %s", r->status,
                 r->status ? ari_response_message(r) : "ARI unreachable");
        link_lost(k, why);
    }
    call_unref(k);
}

/* link_dial with {node} and {pairing} filled in. */
static int dial_string(const call *k, char *out, size_t len)
{
    size_t o = 0;
    for (const char *t = k->n->cfg->link_dial; *t && o + 1 < len;) {
        const char *v = NULL;
        if (strncmp(t, "{node}", 6) == 0)
            v = k->p.agent_node, t += 6;
        else if (strncmp(t, "{pairing}", 9) == 0)
            v = k->p.pairing, t += 9;
        if (v) {
            int w = snprintf(out + o, len - o, "%s", v);
            if (w < 0 || (size_t)w >= len - o)
                return ARIQ_ERANGE;
            o += (size_t)w;
        } else {
            out[o++] = *t++;
        }
    }
    out[o] = '\0';
    return o + 1 < len ? 0 : ARIQ_ERANGE;
}

/* OUT: our end of the link, registered before it is dialled so that every
 * event of it reaches us. */
static int dial(call *k)
{
    char endpoint[QCFG_URL_MAX], chan[ARI_EVENT_MAX_ID + 1], args[QS_ID_MAX + 16];
    if (dial_string(k, endpoint, sizeof endpoint) != 0)
        return ARIQ_ERANGE;
    snprintf(chan, sizeof chan, "ariq-lo-%s", k->p.pairing);
    snprintf(args, sizeof args, "linkout,%s", k->p.pairing);
    if (!(k->link = link_out_open(k->n, k, chan, k->p.pairing)))
        return ARIQ_ENOMEM;
    ari_originate o = {.endpoint = endpoint,
                       .app = k->n->cfg->app,
                       .app_args = args,
                       .channel_id = chan,
                       .timeout_s = (int)k->n->cfg->link_timeout_s};
    LOG_I(MOD, "pairing=%s dialing %s", k->p.pairing, endpoint);
    return ari_channel_originate(k->n->rest, &o, on_originated, k);
}

/* Sends the request of the current state. */
static void step(call *k)
{
    ari_rest *rest = k->n->rest;
    const char *pb = k->c ? caller_playback(k->c) : NULL;
    if (k->state == CALL_STOPPING && parties_busy(k)) {
        k->wait_holds = true; /* its announcement's play is in flight: stop it once made */
        return;
    }
    if (k->state == CALL_STOPPING && !pb)
        set_state(k, k->kind == CALL_OUT ? CALL_DIALING : CALL_BRIDGING); /* nothing to stop */
    if (k->state == CALL_JOINING && parties_busy(k)) {
        k->wait_holds = true; /* call_leg_idle resumes */
        return;
    }
    int rc = 0;
    call_ref(k);
    switch (k->state) {
    case CALL_STOPPING:
        rc = ari_playback_stop(rest, pb, on_step, k);
        break;
    case CALL_DIALING:
        rc = dial(k);
        break;
    case CALL_ANSWERING:
        rc = ari_channel_answer(rest, k->link->chan, on_step, k);
        break;
    case CALL_BRIDGING:
        rc = ari_bridge_create(rest, k->bridge, "mixing", k->bridge, on_step, k);
        k->creating = rc == 0;
        break;
    case CALL_JOINING: {
        const char *both[] = {chan_caller_side(k), chan_agent_side(k)};
        rc = ari_bridge_add_channel(rest, k->bridge, both, 2, NULL, on_step, k);
        break;
    }
    default:
        break;
    }
    if (rc || k->state > CALL_JOINING)
        call_unref(k); /* no request took the reference */
    if (rc)
        roll_back(k, "ARI request refused");
}

void call_leg_idle(leg *l)
{
    caller *c = leg_caller(l);
    agent *a = leg_agent(l);
    call *k = c ? caller_call(c) : a ? agent_call(a) : NULL;
    if (!k || (k->state != CALL_JOINING && k->state != CALL_STOPPING) || !k->wait_holds)
        return;
    if (parties_busy(k))
        return; /* the other party's is still in flight */
    k->wait_holds = false;
    step(k);
}

/* OUT: our end of the link was answered on the agent's node. */
void call_link_answered(call *k)
{
    if (k->state != CALL_DIALING)
        return;
    set_state(k, CALL_BRIDGING);
    step(k);
}

static call *call_new(node *n, const qs_pairing *p, call_kind kind, caller *c, agent *a,
                      leg *link)
{
    call *k = calloc(1, sizeof *k);
    if (!k) {
        LOG_E(MOD, "pairing=%s out of memory: left to the parties' own ends", p->pairing);
        return NULL;
    }
    k->n = n;
    k->refs = 1; /* the legs' */
    n->ncalls++;
    k->kind = kind;
    k->p = *p;
    k->c = c ? (caller *)leg_ref((leg *)c) : NULL;
    k->a = a ? (agent *)leg_ref((leg *)a) : NULL;
    k->link = link ? leg_ref(link) : NULL;
    k->q = qcfg_queue_find(n->cfg, p->queue);
    if (!k->q)
        k->q = &n->cfg->queues[0];
    snprintf(k->bridge, sizeof k->bridge, "ariq-mix-%s", p->pairing);
    LOG_I(MOD, "pairing=%s kind=%s queue=%s caller=%s@%s agent=%s@%s holdtime_ms=%lld",
          p->pairing, kind_names[kind], p->queue, p->caller_channel, p->caller_node, p->agent,
          p->agent_node, (long long)p->holdtime_ms);
    if (c)
        caller_set_call(c, k);
    if (a)
        agent_set_call(a, k);
    return k;
}

void call_start(node *n, const qs_pairing *p, caller *c, agent *a)
{
    call *k = call_new(n, p, CALL_LOCAL, c, a, NULL);
    if (k) {
        k->state = CALL_STOPPING;
        step(k);
    }
}

void call_start_out(node *n, const qs_pairing *p, caller *c)
{
    call *k = call_new(n, p, CALL_OUT, c, NULL, NULL);
    if (k) {
        k->state = CALL_STOPPING;
        step(k);
    }
}

call *call_start_in(node *n, const qs_pairing *p, agent *a, leg *link)
{
    call *k = call_new(n, p, CALL_IN, NULL, a, link);
    if (k) {
        k->state = CALL_ANSWERING;
        step(k);
    }
    return k;
}

call *call_adopt(node *n, const qs_pairing *p, caller *c, agent *a, leg *link, const char *rec,
                 const char *rec_state)
{
    call *k = call_new(n, p, link ? (c ? CALL_OUT : CALL_IN) : CALL_LOCAL, c, a, link);
    if (!k)
        return NULL;
    k->state = CALL_CONNECTED;
    k->bridge_made = true;
    link_set_call(link, k);
    if (c)
        caller_talking(c);
    if (a)
        agent_talking(a);
    const char *num = rec && *rec ? strrchr(rec, '-') : NULL;
    if (num) { /* ariq-<pairing>-<n>: the keys go on with it */
        snprintf(k->rec_name, sizeof k->rec_name, "%s", rec);
        k->nrec = (unsigned)strtoul(num + 1, NULL, 10);
        k->rec = rec_state && strcmp(rec_state, "paused") == 0 ? REC_PAUSED : REC_ON;
    }
    LOG_I(MOD, "pairing=%s adopted connected rec=%s", p->pairing, num ? rec : "none");
    return k;
}

void call_detach(call *k)
{
    if (k->state == CALL_ENDED)
        return;
    set_state(k, CALL_ENDED); /* callbacks still pending see it over */
    release_legs(k);
}

void call_rec_seen(call *k, unsigned num)
{
    if (num > k->nrec)
        k->nrec = num; /* the next recording takes the number after it */
}

void call_rec_gone(call *k, const char *name)
{
    if (k->rec != REC_NONE && strcmp(k->rec_name, name) == 0) {
        LOG_W(MOD, "pairing=%s recording %s is not running: the keys start anew", k->p.pairing,
              name);
        k->rec = REC_NONE;
    }
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
    if (k->rq_now == RQ_DISCARD && r->status == 404) {
        /* it ended by itself meanwhile (the bridge emptied as the call
         * ended) and was stored: the agent's key still means "throw it
         * away" */
        LOG_I(MOD, "pairing=%s recording %s ended before its discard: deleting the file",
              k->p.pairing, k->rq_name);
        FIRE(k, ari_recording_stored_delete(k->n->rest, k->rq_name, on_logged, k));
    }
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
    rec_req r = k->rq[k->rq_head].r;
    char *name = k->rq_name;
    snprintf(name, sizeof k->rq_name, "ariq-%s-%u", k->p.pairing, k->rq[k->rq_head].n);
    k->rq_head = (k->rq_head + 1) % REC_QUEUE_MAX;
    k->rq_len--;
    ari_rest *rest = k->n->rest;
    ari_record_opts o = {.name = name, .format = k->q->record_format, .if_exists = "fail"};
    int rc = ARIQ_EINVAL;
    call_ref(k);
    switch (r) {
    case RQ_START:
        rc = ari_bridge_record(rest, k->bridge, &o, on_rec_answered, k);
        break;
    case RQ_PAUSE:
        rc = ari_recording_pause(rest, name, on_rec_answered, k);
        break;
    case RQ_UNPAUSE:
        rc = ari_recording_unpause(rest, name, on_rec_answered, k);
        break;
    case RQ_STOP:
        rc = ari_recording_stop(rest, name, on_rec_answered, k);
        break;
    case RQ_DISCARD:
        rc = ari_recording_cancel(rest, name, on_rec_answered, k);
        break;
    }
    k->rq_busy = rc == 0;
    k->rq_now = r;
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
    size_t i = (k->rq_head + k->rq_len) % REC_QUEUE_MAX;
    k->rq[i].r = r;
    k->rq[i].n = k->nrec; /* the recording the keys are about now */
    k->rq_len++;
    rec_send_next(k);
}

static void rec_start(call *k)
{
    snprintf(k->rec_name, sizeof k->rec_name, "ariq-%s-%u", k->p.pairing, ++k->nrec);
    rec_push(k, RQ_START);
    const char *beep[] = {"sound:beep"}; /* the caller is told it is recorded */
    FIRE(k, ari_channel_play(k->n->rest, chan_caller_side(k), NULL, beep, 1, NULL, on_logged,
                             k));
    k->rec = REC_ON;
    rec_log(k, QS_REC_START);
}

int call_rec_command(call *k, const char *action, const char **name, const char **state)
{
    if (k->state != CALL_CONNECTED)
        return ARIQ_ESTATE;
    if (strcmp(action, "start") == 0 && k->rec == REC_NONE) {
        rec_start(k);
        *state = "recording";
    } else if (strcmp(action, "pause") == 0 && k->rec == REC_ON) {
        rec_push(k, RQ_PAUSE);
        k->rec = REC_PAUSED;
        rec_log(k, QS_REC_PAUSE);
        *state = "paused";
    } else if (strcmp(action, "unpause") == 0 && k->rec == REC_PAUSED) {
        rec_push(k, RQ_UNPAUSE);
        k->rec = REC_ON;
        rec_log(k, QS_REC_UNPAUSE);
        *state = "recording";
    } else if (strcmp(action, "stop") == 0 && k->rec != REC_NONE) {
        rec_push(k, RQ_STOP);
        k->rec = REC_NONE;
        rec_log(k, QS_REC_STOP);
        *state = "stored";
    } else {
        return ARIQ_ESTATE;
    }
    LOG_I(MOD, "pairing=%s recording %s %s (agentd)", k->p.pairing, k->rec_name, action);
    *name = k->rec_name;
    return 0;
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
