/* agent.c - the agent leg: from Stasis(queue,agent,...) to logoff.
 *
 *   state        on                                  next
 *   ANSWERING    answer 204                          LOGGING_IN (qs_agent_login, autopair)
 *   ANSWERING    answer 404 / hangup                 ENDED
 *   ANSWERING    answer kept failing (5xx, ~6 s)     ENDED      (turned away: UNAVAILABLE)
 *   LOGGING_IN   logged in                           HOLDING    (hold_join)
 *   LOGGING_IN   logged in and paired at once        CONNECTING
 *   LOGGING_IN   AGENTINUSE (id waiting or talking)  ENDED      (turned away, AGENTINUSE)
 *   HOLDING      joined                              FREE
 *   HOLDING/FREE a pairing (call_start)              CONNECTING
 *   CONNECTING   both in the mixing bridge           TALKING
 *   CONNECTING   rolled back / caller gone           HOLDING    (free again)
 *   TALKING      call over                           WRAPUP (timer) or HOLDING (free)
 *   WRAPUP       timer: qs_agent_ready               HOLDING
 *   any          hangup                              ENDED      (qs_agent_logoff, or
 *                                                              the call ends it)
 *
 * The agent's DTMF only means something in a call (call.c's key table). */
#include "node_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "agent"

typedef enum {
    AGENT_ANSWERING,  /* answer sent */
    AGENT_LOGGING_IN, /* qs_agent_login sent */
    AGENT_HOLDING,    /* joining the holding bridge (free in Redis) */
    AGENT_FREE,       /* in the holding bridge, waiting for a caller */
    AGENT_CONNECTING, /* paired: moving to the caller */
    AGENT_TALKING,    /* in the mixing bridge */
    AGENT_WRAPUP,     /* after a call, before taking the next */
    AGENT_ENDED,      /* logged off */
    AGENT__COUNT
} agent_state;

static const char *const state_names[AGENT__COUNT] = {
    "answering", "logging_in", "holding", "free", "connecting", "talking", "wrapup", "ended"};

struct agent {
    leg base;
    agent_state state;
    char id[ENTRY_NAME_MAX + 1];
    size_t nqueues;
    const qcfg_queue *queues[ENTRY_MAX_QUEUES]; /* borrowed from the config */
    const qcfg_queue *q; /* queues[0]: music on hold */
    char name[128];      /* the channel name, for AGENTLOGIN */
    bool logged_in;
    bool held_early; /* Redis was away: held before its login was written */
    bool relogging;  /* agent_relogin: an AGENTINUSE answer means it is there */
    int64_t free_seq;  /* its place among free agents, as last known (qs_restore) */
    int64_t login_wall, since_wall, wrapup_until_wall; /* wall ms (qs_restore) */
    call *k;
    struct event *wrapup;
    const char *logoff_reason; /* AGENTLOGOFF's reason: "hangup", or agent_logoff_by's */
};

static void set_state(agent *a, agent_state to)
{
    a->since_wall = (int64_t)clock_wall_ms();
    LOG_D(MOD, "chan=%s agent=%s from=%s to=%s", a->base.chan, a->id,
          state_names[a->state], state_names[to]);
    a->state = to;
}

agent *leg_agent(leg *l)
{
    return l && strcmp(l->ops->role, "agent") == 0 ? (agent *)l : NULL;
}

/* ---- logging in ------------------------------------------------------------ */

static void on_held(leg *l, bool ok)
{
    agent *a = (agent *)l;
    if (a->state != AGENT_HOLDING)
        return;
    if (!ok)
        LOG_W(MOD, "chan=%s waits without the holding bridge (no MOH)", a->base.chan);
    set_state(a, AGENT_FREE);
}

static void to_holding(agent *a)
{
    set_state(a, AGENT_HOLDING);
    hold_join(&a->base, a->q->moh_class, on_held);
}

static void on_logoff(queue_store *qs, int err, const qs_result *res, void *pd);

static void logoff(agent *a)
{
    leg_ref(&a->base);
    if (qs_agent_logoff(a->base.n->qs, a->id, a->logoff_reason, true, on_logoff, a) != 0) {
        leg_unref(&a->base);
        LOG_E(MOD, "agent=%s hung up but Redis is unreachable: its record stays until reaped",
              a->id);
    }
}

static void on_login(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    agent *a = pd;
    bool relog = a->relogging;
    a->relogging = false;
    if (err == ARIQ_EBUSY && a->state == AGENT_LOGGING_IN && relog) {
        LOG_I(MOD, "agent=%s is logged in after all", a->id); /* its record is there */
        if (a->base.hold_bridge)
            set_state(a, AGENT_FREE);
        else if (a->base.busy)
            set_state(a, AGENT_HOLDING);
        else
            to_holding(a);
    } else if (err == ARIQ_EBUSY && a->state == AGENT_LOGGING_IN) {
        set_state(a, AGENT_ENDED);
        leg_end(&a->base);
        turnaway_start(a->base.n, a->base.chan, "AGENTINUSE", qs_errmsg(a->base.n->qs));
    } else if (err) {
        LOG_E(MOD, "agent=%s login failed: %s (%s)", a->id, ariq_strerror(err),
              qs_errmsg(a->base.n->qs));
        bool alive = a->state == AGENT_LOGGING_IN;
        set_state(a, AGENT_ENDED);
        leg_end(&a->base);
        if (alive)
            turnaway_start(a->base.n, a->base.chan, "UNAVAILABLE", "the queue store refused");
    } else if (a->state == AGENT_LOGGING_IN) {
        a->logged_in = true;
        a->free_seq = res->seq;
        LOG_I(MOD, "agent=%s chan=%s logged in queues=%zu", a->id, a->base.chan,
              a->nqueues);
        /* paired at once with a caller here: straight to the call (below) */
        bool carried = node_will_carry(a->base.n, res->pairings, res->npairings, a->base.chan);
        if (!carried && a->held_early && a->base.hold_bridge)
            set_state(a, AGENT_FREE); /* in the holding bridge already */
        else if (!carried && a->held_early && a->base.busy)
            set_state(a, AGENT_HOLDING); /* its join ends in on_held */
        else if (!carried)
            to_holding(a);
        node_take_pairings(a->base.n, res->pairings, res->npairings);
    } else if (a->state == AGENT_CONNECTING && a->k) {
        /* a link for it arrived before this reply (another node paired it) */
        a->logged_in = true;
        node_take_pairings(a->base.n, res->pairings, res->npairings);
    } else {
        a->logged_in = true; /* hung up while logging in */
        logoff(a);
    }
    leg_unref(&a->base);
}

static void login(agent *a)
{
    const char *queues[ENTRY_MAX_QUEUES];
    for (size_t i = 0; i < a->nqueues; i++)
        queues[i] = a->queues[i]->name;
    qs_agent qa = {.agentid = a->id,
                   .channel = a->base.chan,
                   .chan_name = a->name,
                   .queues = queues,
                   .nqueues = a->nqueues};
    set_state(a, AGENT_LOGGING_IN);
    a->login_wall = (int64_t)clock_wall_ms();
    leg_ref(&a->base);
    int rc = qs_agent_login(a->base.n->qs, &qa, true, on_login, a);
    if (rc == 0 && !store_is_ready(a->base.n->store)) {
        /* held until Redis is back: the agent waits with music meanwhile */
        LOG_W(MOD, "agent=%s Redis away: its login is held", a->id);
        a->held_early = true;
        hold_join(&a->base, a->q->moh_class, on_held);
    }
    if (rc != 0) {
        leg_unref(&a->base);
        LOG_E(MOD, "agent=%s cannot log in: %s", a->id, ariq_strerror(rc));
        set_state(a, AGENT_ENDED);
        leg_end(&a->base);
        turnaway_start(a->base.n, a->base.chan, "UNAVAILABLE", "Redis is not reachable");
    }
}

static void on_answered(leg *l, answer_outcome o)
{
    agent *a = (agent *)l;
    if (a->state != AGENT_ANSWERING)
        return;
    if (o == ANSWER_OK) {
        login(a);
        return;
    }
    set_state(a, AGENT_ENDED);
    leg_end(&a->base);
    if (o == ANSWER_FAILED)
        turnaway_start(a->base.n, a->base.chan, "UNAVAILABLE", "the channel could not be answered");
}

/* ---- calls and wrapup ------------------------------------------------------ */

call *agent_call(const agent *a)
{
    return a->k;
}

void agent_set_call(agent *a, call *k)
{
    a->k = k;
    if (k && a->state != AGENT_CONNECTING)
        set_state(a, AGENT_CONNECTING);
}

void agent_talking(agent *a)
{
    if (a->state == AGENT_CONNECTING)
        set_state(a, AGENT_TALKING);
}

void agent_back_to_free(agent *a)
{
    a->k = NULL;
    hold_left(&a->base); /* where it is after a failed call is not sure: MOH anew */
    if (!a->base.ended)
        to_holding(a);
}

static void on_ready(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    agent *a = pd;
    if (err == ARIQ_ENOTFOUND && a->state == AGENT_WRAPUP && a->base.n->redis_lost) {
        agent_relogin(a); /* Redis lost its record (came back empty) */
    } else if (err)
        LOG_W(MOD, "agent=%s end of wrapup not recorded: %s", a->id,
              ariq_strerror(err));
    else if (a->state == AGENT_WRAPUP) {
        set_state(a, AGENT_FREE);
        node_take_pairings(a->base.n, res->pairings, res->npairings);
    }
    leg_unref(&a->base);
}

static void on_wrapup_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    agent *a = arg;
    if (a->state == AGENT_WRAPUP) {
        leg_ref(&a->base);
        if (qs_agent_ready(a->base.n->qs, a->id, true, on_ready, a) != 0) {
            leg_unref(&a->base);
            LOG_W(MOD, "agent=%s stays in wrapup: Redis is unreachable", a->id);
        }
    }
    leg_unref(&a->base); /* the timer's */
}

static void on_back_in_hold(leg *l, bool ok)
{
    (void)ok;
    (void)l; /* the agent's state was set before the move */
}

/* Wrapup for ms (unscaled) from now: agent_ready when it is over. */
static void start_wrapup(agent *a, uint64_t ms)
{
    set_state(a, AGENT_WRAPUP);
    a->wrapup_until_wall = a->since_wall + (int64_t)ms;
    ms = clock_scaled_ms(ms);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (!evtimer_pending(a->wrapup, NULL))
        leg_ref(&a->base);
    evtimer_add(a->wrapup, &tv);
}

void agent_after_call(agent *a, long wrapup_s, bool hold)
{
    a->k = NULL;
    if (a->base.ended || a->state != AGENT_TALKING)
        return; /* gone, or already in its next call */
    if (wrapup_s > 0) {
        start_wrapup(a, (uint64_t)wrapup_s * 1000u);
    } else {
        set_state(a, AGENT_FREE); /* the script freed it at the back already */
    }
    if (hold) /* not when the same script paired it again */
        hold_join(&a->base, a->q->moh_class, on_back_in_hold);
}

void agent_after_link(agent *a, const char *state, int64_t wrapup_ms)
{
    a->k = NULL;
    if (a->base.ended)
        return;
    if (strcmp(state, "gone") == 0) { /* logged off behind our back (reaped) */
        set_state(a, AGENT_ENDED);
        leg_end(&a->base);
        turnaway_start(a->base.n, a->base.chan, "UNAVAILABLE",
                       "the agent's queue record is gone (its node was taken for dead)");
    } else if (strcmp(state, "wrapup") == 0 && wrapup_ms > 0) {
        start_wrapup(a, (uint64_t)wrapup_ms);
        hold_join(&a->base, a->q->moh_class, on_back_in_hold);
    } else { /* free, paused, or paired again: its link will come */
        to_holding(a);
    }
}

/* ---- logging off ------------------------------------------------------------ */

static void on_logoff(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    agent *a = pd;
    if (err)
        LOG_W(MOD, "agent=%s logoff not recorded: %s", a->id, ariq_strerror(err));
    else {
        LOG_I(MOD, "agent=%s logged off outcome=%s call=%s", a->id, res->call_outcome,
              res->call);
        node_take_pairings(a->base.n, res->pairings, res->npairings);
    }
    leg_unref(&a->base);
}

static void agent_gone(agent *a)
{
    agent_state was = a->state;
    set_state(a, AGENT_ENDED);
    leg_end(&a->base);
    if (a->k)
        call_agent_logoff(a->k, a->logoff_reason); /* logs it off, ends the caller */
    else if (a->logged_in && was != AGENT_LOGGING_IN)
        logoff(a);
}

static void on_event(leg *l, const ari_event *ev)
{
    agent *a = (agent *)l;
    switch (ev->type) {
    case ARI_EV_CHANNEL_HANGUP_REQUEST:
    case ARI_EV_STASIS_END:
    case ARI_EV_CHANNEL_DESTROYED:
        if (!a->base.ended)
            agent_gone(a);
        break;
    case ARI_EV_CHANNEL_DTMF_RECEIVED:
        if (a->k && a->state == AGENT_TALKING)
            call_agent_dtmf(a->k, ev->digit);
        break;
    default:
        break;
    }
}

static void on_end(leg *l)
{
    agent *a = (agent *)l;
    if (evtimer_pending(a->wrapup, NULL)) {
        evtimer_del(a->wrapup);
        leg_unref(l);
    }
}

static void destroy(leg *l)
{
    agent *a = (agent *)l;
    if (a->wrapup)
        event_free(a->wrapup);
    free(a);
}

static const leg_ops agent_ops = {"agent", on_event, on_end, destroy, NULL};

/* ---- what agentd asks (actions.c) ------------------------------------------- */

const char *agent_id(const agent *a)
{
    return a->id;
}

bool agent_logged_in(const agent *a)
{
    return a->logged_in && !a->base.ended && a->state != AGENT_LOGGING_IN &&
           a->state != AGENT_ANSWERING;
}

int agent_logoff_by(agent *a, const char *reason)
{
    if (!agent_logged_in(a))
        return ARIQ_ENOTFOUND;
    LOG_I(MOD, "agent=%s logged off by %s: hanging up chan=%s", a->id, reason, a->base.chan);
    a->logoff_reason = reason;
    leg_ref(&a->base);
    agent_gone(a); /* as if it hung up: the events that follow find it ended */
    ari_channel_hangup(a->base.n->rest, a->base.chan, "normal", NULL, NULL);
    leg_unref(&a->base);
    return 0;
}

/* An agent leg for chan, registered, with the creator's reference; NULL
 * (logged) if it cannot be. Queues not configured here are left out. */
static agent *agent_new(node *n, const char *chan, const char *id, const char *const *queues,
                        size_t nqueues, const char *name)
{
    agent *a = calloc(1, sizeof *a);
    if (!a) {
        LOG_E(MOD, "chan=%s out of memory", chan);
        return NULL;
    }
    leg_init(&a->base, &agent_ops, n, chan);
    snprintf(a->id, sizeof a->id, "%s", id);
    for (size_t i = 0; i < nqueues && a->nqueues < ENTRY_MAX_QUEUES; i++) {
        const qcfg_queue *q = qcfg_queue_find(n->cfg, queues[i]);
        if (q)
            a->queues[a->nqueues++] = q;
    }
    a->q = a->nqueues ? a->queues[0] : &n->cfg->queues[0];
    snprintf(a->name, sizeof a->name, "%s", name ? name : "");
    a->wrapup = evtimer_new(n->base, on_wrapup_over, a);
    a->logoff_reason = "hangup";
    if (!a->wrapup || leg_register(&a->base) != 0) {
        LOG_E(MOD, "chan=%s cannot track the agent", chan);
        leg_unref(&a->base);
        return NULL;
    }
    return a;
}

void agent_start(node *n, const ari_event *ev, const entry_args *args)
{
    const char *queues[ENTRY_MAX_QUEUES];
    for (size_t i = 0; i < args->nqueues; i++)
        queues[i] = args->queues[i];
    agent *a = agent_new(n, ev->channel.id, args->agent_id, queues, args->nqueues,
                         ev->channel.name);
    if (!a)
        return;
    LOG_I(MOD, "chan=%s agent=%s queues=%zu state=answering", a->base.chan, args->agent_id,
          args->nqueues);
    answer_start(&a->base, on_answered);
    leg_unref(&a->base);
}

void agent_relogin(agent *a)
{
    if (a->base.ended)
        return;
    LOG_W(MOD, "agent=%s has no record in Redis any more (Redis lost its data): logging in "
               "again", a->id);
    a->held_early = true; /* it is in (or on its way to) the holding bridge */
    a->relogging = true;
    login(a);
}

bool agent_restore_info(agent *a, qs_restore_agent *out, const char **queues, int64_t *seq)
{
    static const char *const names[AGENT__COUNT] = {[AGENT_HOLDING] = "free",
                                                    [AGENT_FREE] = "free",
                                                    [AGENT_WRAPUP] = "wrapup"};
    const char *st = names[a->state];
    if (!st || !a->logged_in || a->k || a->base.ended || !a->nqueues || a->free_seq <= 0)
        return false;
    for (size_t i = 0; i < a->nqueues; i++)
        queues[i] = a->queues[i]->name;
    *out = (qs_restore_agent){.agentid = a->id,
                              .channel = a->base.chan,
                              .chan_name = a->name,
                              .queues = queues,
                              .nqueues = a->nqueues,
                              .state = st,
                              .free_seq = a->free_seq,
                              .login_ms = a->login_wall,
                              .since_ms = a->since_wall,
                              .wrapup_until_ms = a->wrapup_until_wall};
    *seq = a->free_seq;
    return true;
}

agent *agent_adopt(node *n, const adopt_party *p, bool talking)
{
    agent *a = agent_new(n, p->chan, p->id, p->queues, p->nqueues, p->name);
    if (!a)
        return NULL;
    a->logged_in = true;
    a->free_seq = p->free_seq;
    a->login_wall = p->since_ms;
    a->since_wall = p->since_ms;
    a->wrapup_until_wall = p->wrapup_until_ms;
    if (talking) {
        a->state = AGENT_CONNECTING; /* call_adopt makes it TALKING */
    } else if (strcmp(p->state, "wrapup") == 0) {
        /* what is left of its wrapup, in real ms at this scale */
        int64_t wall = (int64_t)clock_wall_ms();
        int64_t total = p->wrapup_until_ms - p->since_ms;
        uint64_t scaled = clock_scaled_ms(total > 0 ? (uint64_t)total : 0);
        uint64_t gone = wall > p->since_ms ? (uint64_t)(wall - p->since_ms) : 0;
        uint64_t left = scaled > gone ? scaled - gone : 0;
        a->state = AGENT_WRAPUP;
        struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
        leg_ref(&a->base);
        evtimer_add(a->wrapup, &tv);
    } else {
        a->state = AGENT_FREE; /* free or paused: waits in the holding bridge */
    }
    if (!talking && !hold_adopt(&a->base, p->bridge, a->q->moh_class))
        hold_join(&a->base, a->q->moh_class, on_back_in_hold);
    LOG_I(MOD, "agent=%s chan=%s adopted state=%s", a->id, a->base.chan,
          talking ? "talking" : state_names[a->state]);
    leg_unref(&a->base); /* the registry keeps it */
    return a;
}
