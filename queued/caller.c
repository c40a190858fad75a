/* caller.c - the caller leg: from Stasis(queue,caller,...) to a call with an
 * agent, or to the end of the wait.
 *
 *   state        on                                   next
 *   CHECKING     no queue with a maxlen is full       ANSWERING
 *   CHECKING     a queue is full                      ENDED     (turned away: FULL)
 *   ANSWERING    answer 204                           ENTERING  (qs_enter, autopair)
 *   CHECKING,    answer 404 / hangup                  ENDED     (ENTERQUEUE + ABANDON: it
 *   ANSWERING                                                   reached the queue)
 *   ANSWERING    answer kept failing (5xx, ~6 s)      ENDED     (turned away: UNAVAILABLE)
 *   ENTERING     entered                              HOLDING   (hold_join)
 *   ENTERING     entered and paired at once           CONNECTING
 *   HOLDING      joined                               WAITING   (announce timer)
 *   WAITING      announce timer -> position read      ANNOUNCING (play)
 *   ANNOUNCING   PlaybackFinished                     WAITING   (timer again)
 *   HOLDING..    a pairing (call_start)               CONNECTING
 *   CONNECTING   both in the mixing bridge            TALKING
 *   CONNECTING   rolled back / agent gone             WAITING
 *   HOLDING..    timeout (the queue's, from entry)    ENDED     (EXITWITHTIMEOUT, turned
 *                                                               away: TIMEOUT)
 *   any          hangup                               ENDED     (qs_leave: ABANDON,
 *                                                               or the call ends it)
 *
 * Position is read from Redis when an announcement is due, never cached:
 * callers ahead leave on every node; the same read records in the call's
 * record when this announcement started (ann_ms). Announcements start every
 * announce_frequency seconds, start to start as app_queue's say_position
 * counts them (one still playing when the next is due delays it until it
 * ends). A pairing stops a running announcement at once (call.c deletes the
 * playback before moving the caller).
 *
 * Re-adoption (caller_adopt, after a restart): a waiting caller is taken
 * over in WAITING with its timeout counted from its entry and its next
 * announcement from the start of its last one (ann_ms), so it comes on
 * schedule, not at once and not never; a talking one in TALKING, its call
 * rebuilt by call.c. */
#include "node_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/ids.h"
#include "core/log.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "caller"

typedef enum {
    CALLER_CHECKING,   /* reading queue lengths (maxlen) before answering */
    CALLER_ANSWERING,  /* answer sent */
    CALLER_ENTERING,   /* qs_enter sent: taking its place in the queues */
    CALLER_HOLDING,    /* in the queues; joining the holding bridge */
    CALLER_WAITING,    /* in the holding bridge, hearing MOH */
    CALLER_ANNOUNCING, /* hearing its position */
    CALLER_CONNECTING, /* paired: moving to the agent */
    CALLER_TALKING,    /* in the mixing bridge with the agent */
    CALLER_ENDED,      /* gone, or handed back */
    CALLER__COUNT
} caller_state;

static const char *const state_names[CALLER__COUNT] = {
    "checking", "answering", "entering", "holding", "waiting", "announcing", "connecting", "talking",
    "ended"};

struct caller {
    leg base;
    caller_state state;
    size_t nqueues;
    const qcfg_queue *queues[ENTRY_MAX_QUEUES]; /* borrowed from the config */
    int priority;
    const qcfg_queue *q; /* queues[0]: music and announcement settings */
    char cid_num[64], cid_name[64];
    bool queued;         /* has a record in Redis (qs_enter succeeded) */
    call *k;             /* the call it is in, while paired */
    struct event *announce;
    struct event *expire; /* the queue's timeout */
    size_t checked;       /* queues whose maxlen was checked */
    unsigned announcements;
    uint64_t ann_start; /* monotonic ms the last announcement started (or, before
                           the first, the schedule's origin) */
    uint64_t entering_at; /* monotonic ms qs_enter was sent */
    bool held_early;      /* Redis was away: held before its entry was written */
    int64_t last_ahead;   /* callers ahead at the last position read; -1 none */
    int64_t seq, score;   /* as Redis gave them (for qs_restore) */
    int64_t entered_wall, ann_wall; /* wall ms of its entry, of its last announcement */
    char playback[ARI_EVENT_MAX_ID + 1]; /* the running announcement, "" if none */
};

static void leave_queue_with(caller *c, qs_result_cb cb);
static void on_left(queue_store *qs, int err, const qs_result *res, void *pd);
static void leave_queue(caller *c);
static void record_abandon(caller *c);
static void arm_announcement(caller *c, bool first);
static void arm_timeout(caller *c);
static void arm_timeout_after(caller *c, uint64_t waited_ms);
static void answer(caller *c);
static void on_answered(leg *l, answer_outcome o);

static void set_state(caller *c, caller_state to)
{
    LOG_D(MOD, "chan=%s queue=%s from=%s to=%s", c->base.chan, c->q->name,
          state_names[c->state], state_names[to]);
    c->state = to;
}

caller *leg_caller(leg *l)
{
    return l && strcmp(l->ops->role, "caller") == 0 ? (caller *)l : NULL;
}

call *caller_call(const caller *c)
{
    return c->k;
}

const char *caller_playback(const caller *c)
{
    return c->playback[0] ? c->playback : NULL;
}

/* ---- joining ------------------------------------------------------------- */

static void on_held(leg *l, bool ok)
{
    caller *c = (caller *)l;
    if (c->state != CALLER_HOLDING)
        return; /* paired or gone meanwhile */
    if (!ok)
        LOG_W(MOD, "chan=%s waits without the holding bridge (no MOH)", c->base.chan);
    set_state(c, CALLER_WAITING);
    c->ann_start = clock_mono_ms(); /* the first one is due a period after joining */
    arm_announcement(c, c->q->announce_on_join);
}

static void on_entered(queue_store *qs, int err, const qs_enter_result *res, void *pd)
{
    (void)qs;
    caller *c = pd;
    if (err) {
        LOG_E(MOD, "chan=%s could not enter the queue: %s (%s)", c->base.chan,
              ariq_strerror(err), qs_errmsg(c->base.n->qs));
        bool alive = c->state == CALLER_ENTERING;
        set_state(c, CALLER_ENDED);
        leg_end(&c->base); /* first: the turn-away takes the channel over */
        if (alive)
            turnaway_start(c->base.n, c->base.chan, "UNAVAILABLE", "the queue store refused");
    } else if (c->state == CALLER_ENTERING) {
        c->queued = true;
        c->seq = res->seq;
        c->score = res->score;
        LOG_I(MOD, "chan=%s queue=%s entered position=%lld seq=%lld", c->base.chan, c->q->name,
              (long long)res->positions[0], (long long)res->seq);
        arm_timeout_after(c, clock_mono_ms() - c->entering_at); /* held: it waited already */
        if (node_will_carry(c->base.n, res->pairings, res->npairings, c->base.chan)) {
            node_take_pairings(c->base.n, res->pairings, res->npairings); /* -> CONNECTING */
        } else if (c->held_early && c->base.hold_bridge) { /* in the holding bridge */
            set_state(c, CALLER_WAITING);
            c->ann_start = clock_mono_ms();
            arm_announcement(c, c->q->announce_on_join);
            node_take_pairings(c->base.n, res->pairings, res->npairings);
        } else if (c->held_early && c->base.busy) { /* its join ends in on_held */
            set_state(c, CALLER_HOLDING);
            node_take_pairings(c->base.n, res->pairings, res->npairings);
        } else {
            set_state(c, CALLER_HOLDING);
            hold_join(&c->base, c->q->moh_class, on_held);
            node_take_pairings(c->base.n, res->pairings, res->npairings);
        }
    } else if (c->state == CALLER_CONNECTING && c->k) {
        /* another node paired it and its command came before this reply
         * (two connections): it waits in the holding bridge while the link
         * is dialled, unless its call is already past that */
        c->queued = true;
        arm_timeout(c);
        if (call_is_out(c->k))
            hold_join(&c->base, c->q->moh_class, on_held);
        node_take_pairings(c->base.n, res->pairings, res->npairings);
    } else {
        c->queued = true; /* hung up while entering: leave now */
        leave_queue(c);
    }
    leg_unref(&c->base);
}

static void enter_queue(caller *c)
{
    const char *queues[ENTRY_MAX_QUEUES];
    for (size_t i = 0; i < c->nqueues; i++)
        queues[i] = c->queues[i]->name;
    qs_caller qc = {.callid = c->base.chan,
                    .channel = c->base.chan,
                    .priority = c->priority,
                    .cid_num = c->cid_num,
                    .cid_name = c->cid_name,
                    .queues = queues,
                    .nqueues = c->nqueues};
    set_state(c, CALLER_ENTERING);
    c->entering_at = clock_mono_ms();
    c->entered_wall = (int64_t)clock_wall_ms();
    leg_ref(&c->base);
    int rc = qs_enter(c->base.n->qs, &qc, true, on_entered, c);
    if (rc == 0 && !store_is_ready(c->base.n->store)) {
        /* held until Redis is back: the caller waits with music meanwhile */
        LOG_W(MOD, "chan=%s Redis away: its entry is held, it waits with music", c->base.chan);
        c->held_early = true;
        hold_join(&c->base, c->q->moh_class, on_held);
    }
    if (rc != 0) {
        leg_unref(&c->base);
        LOG_E(MOD, "chan=%s cannot enter the queue: %s (%s)", c->base.chan, ariq_strerror(rc),
              qs_errmsg(c->base.n->qs));
        set_state(c, CALLER_ENDED);
        leg_end(&c->base);
        turnaway_start(c->base.n, c->base.chan, "UNAVAILABLE", "Redis is not reachable");
    }
}

/* ---- a caller gone before it was answered ----------------------------------- */

static void on_abandon_left(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    caller *c = pd;
    if (!err)
        node_take_pairings(c->base.n, res->pairings, res->npairings);
    leg_unref(&c->base);
}

static void on_abandon_entered(queue_store *qs, int err, const qs_enter_result *res, void *pd)
{
    (void)qs;
    (void)res;
    caller *c = pd;
    if (!err) {
        c->queued = true;
        leave_queue_with(c, on_abandon_left);
    }
    leg_unref(&c->base);
}

/* The caller reached the queue and hung up before it was answered: for the
 * queue_log that is a call that entered and abandoned (ENTERQUEUE, ABANDON),
 * as app_queue would have logged it. */
static void record_abandon(caller *c)
{
    const char *queues[ENTRY_MAX_QUEUES];
    for (size_t i = 0; i < c->nqueues; i++)
        queues[i] = c->queues[i]->name;
    qs_caller qc = {.callid = c->base.chan, .channel = c->base.chan, .priority = c->priority,
                    .cid_num = c->cid_num, .cid_name = c->cid_name, .queues = queues,
                    .nqueues = c->nqueues};
    leg_ref(&c->base);
    if (qs_enter(c->base.n->qs, &qc, false, on_abandon_entered, c) != 0)
        leg_unref(&c->base);
}

static void answer(caller *c)
{
    set_state(c, CALLER_ANSWERING);
    answer_start(&c->base, on_answered);
}

/* ---- maxlen: FULL, checked before answering as app_queue does ---------------- */

static void check_next(caller *c);

static void on_length(queue_store *qs, int err, const qs_queue_view *v, void *pd)
{
    (void)qs;
    caller *c = pd;
    if (c->state == CALLER_CHECKING) {
        const qcfg_queue *q = c->queues[c->checked];
        if (!err && v->callers >= q->maxlen) {
            char why[128];
            snprintf(why, sizeof why, "queue %s holds %lld callers (maxlen %ld)", q->name,
                     (long long)v->callers, q->maxlen);
            set_state(c, CALLER_ENDED);
            leg_end(&c->base);
            turnaway_start(c->base.n, c->base.chan, "FULL", why);
        } else { /* an unreadable length does not keep a caller out */
            c->checked++;
            check_next(c);
        }
    }
    leg_unref(&c->base);
}

/* Reads the length of the next queue that has a maxlen; answers when none
 * is left. */
static void check_next(caller *c)
{
    for (; c->checked < c->nqueues; c->checked++) {
        const qcfg_queue *q = c->queues[c->checked];
        if (q->maxlen <= 0)
            continue;
        leg_ref(&c->base);
        if (qs_queue_info(c->base.n->qs, q->name, on_length, c) == 0)
            return;
        leg_unref(&c->base);
    }
    answer(c);
}

static void on_answered(leg *l, answer_outcome o)
{
    caller *c = (caller *)l;
    if (c->state != CALLER_ANSWERING)
        return;
    if (o == ANSWER_OK) {
        enter_queue(c);
        return;
    }
    LOG_I(MOD, "chan=%s not answered: %s", c->base.chan,
          o == ANSWER_GONE ? "the caller left" : "ARI kept failing");
    set_state(c, CALLER_ENDED);
    leg_end(&c->base);
    if (o == ANSWER_FAILED)
        turnaway_start(c->base.n, c->base.chan, "UNAVAILABLE", "the channel could not be answered");
    else
        record_abandon(c);
}

/* ---- announcements --------------------------------------------------------- */

/* The play request is answered: the playback exists (or failed). A call that
 * waited to stop it goes on now. */
static void on_played(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    caller *c = pd;
    if (r->status != 201 && c->state == CALLER_ANNOUNCING) {
        c->playback[0] = '\0'; /* no playback: music again, next one later */
        set_state(c, CALLER_WAITING);
        arm_announcement(c, false);
    }
    if (--c->base.busy == 0)
        call_leg_idle(&c->base);
    leg_unref(&c->base);
}

static void play_position(caller *c, int64_t ahead);

static void on_position(queue_store *qs, int err, const qs_call_view *v, void *pd)
{
    (void)qs;
    caller *c = pd;
    if (c->state == CALLER_WAITING && !err && v->found && v->nqueues > 0) {
        c->last_ahead = v->queues[0].ahead;
        play_position(c, v->queues[0].ahead);
    } else if (c->state == CALLER_WAITING) {
        if (err)
            LOG_W(MOD, "chan=%s position unknown (%s): announcement skipped", c->base.chan,
                  ariq_strerror(err));
        c->ann_start = clock_mono_ms(); /* skipped: the next a whole period on */
        arm_announcement(c, false);
    }
    leg_unref(&c->base);
}

/* Plays "you are next" or "there are N calls waiting" (ahead = N). */
static void play_position(caller *c, int64_t ahead)
{
    char pb[ARI_EVENT_MAX_ID + 1], num[32];
    ids_make("ann", pb, sizeof pb); /* not from the channel id: that may be 150 bytes */
    c->announcements++;
    snprintf(num, sizeof num, "number:%lld", (long long)ahead);
    const char *next[] = {"sound:queue-youarenext"};
    const char *behind[] = {"sound:queue-thereare", num, "sound:queue-callswaiting"};
    const char *const *media = ahead == 0 ? next : behind;
    size_t nmedia = ahead == 0 ? 1 : 3;
    snprintf(c->playback, sizeof c->playback, "%s", pb);
    c->ann_start = clock_mono_ms();
    c->ann_wall = (int64_t)clock_wall_ms();
    set_state(c, CALLER_ANNOUNCING);
    LOG_I(MOD, "chan=%s announce ahead=%lld playback=%s", c->base.chan, (long long)ahead, pb);
    leg_ref(&c->base);
    c->base.busy++; /* a pairing must not stop it before it exists */
    if (ari_channel_play(c->base.n->rest, c->base.chan, pb, media, nmedia, NULL, on_played,
                         c) != 0) {
        c->base.busy--;
        leg_unref(&c->base);
        c->playback[0] = '\0';
        set_state(c, CALLER_WAITING);
        arm_announcement(c, false);
    }
}

static void on_announce_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    caller *c = arg;
    if (c->state == CALLER_WAITING) {
        leg_ref(&c->base);
        int rc = qs_announce_info(c->base.n->qs, c->base.chan, on_position, c);
        if (rc == ARIQ_EBUSY && c->last_ahead >= 0) {
            leg_unref(&c->base);
            LOG_W(MOD, "chan=%s Redis away: announcing the last known position (ahead=%lld)",
                  c->base.chan, (long long)c->last_ahead);
            play_position(c, c->last_ahead);
        } else if (rc != 0) {
            leg_unref(&c->base);
            c->ann_start = clock_mono_ms();
            arm_announcement(c, false);
        }
    }
    leg_unref(&c->base); /* the timer's reference */
}

/* The next announcement: at once (now), or announce_frequency seconds
 * (scaled) after the start of the last one, or at once if that is past. */
static void arm_announcement(caller *c, bool now)
{
    if (c->q->announce_frequency_s <= 0 || c->base.ended)
        return;
    uint64_t period = clock_scaled_ms((uint64_t)c->q->announce_frequency_s * 1000u);
    uint64_t since = clock_mono_ms() - c->ann_start;
    uint64_t ms = now || since >= period ? 0 : period - since;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (!evtimer_pending(c->announce, NULL)) {
        leg_ref(&c->base);
        evtimer_add(c->announce, &tv);
    }
}

static void cancel_announcement(caller *c)
{
    if (evtimer_pending(c->announce, NULL)) {
        evtimer_del(c->announce);
        leg_unref(&c->base);
    }
}

/* ---- timeout: EXITWITHTIMEOUT ------------------------------------------------ */

static void on_timed_out(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    caller *c = pd;
    if (err)
        LOG_W(MOD, "chan=%s timeout not recorded: %s", c->base.chan, ariq_strerror(err));
    else
        node_take_pairings(c->base.n, res->pairings, res->npairings);
    leg_unref(&c->base);
}

/* The queue's timeout passed while the caller still waits: out of the
 * queues (EXITWITHTIMEOUT) and back to the dialplan with TIMEOUT. */
static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    caller *c = arg;
    if (c->state == CALLER_HOLDING || c->state == CALLER_WAITING ||
        c->state == CALLER_ANNOUNCING) {
        cancel_announcement(c);
        if (c->playback[0]) /* the dialplan should not wait for it */
            ari_playback_stop(c->base.n->rest, c->playback, NULL, NULL);
        set_state(c, CALLER_ENDED);
        leg_end(&c->base);
        leg_ref(&c->base);
        if (qs_leave(c->base.n->qs, c->base.chan, QS_LEAVE_TIMEOUT, QS_BY_CALLER, 0, true,
                     on_timed_out, c) != 0)
            leg_unref(&c->base);
        char why[128];
        snprintf(why, sizeof why, "waited %ld s in %s", c->q->timeout_s, c->q->name);
        turnaway_start(c->base.n, c->base.chan, "TIMEOUT", why);
    }
    leg_unref(&c->base); /* the timer's */
}

/* The first queue's timeout, `waited_ms` (real) after the caller entered. */
static void arm_timeout_after(caller *c, uint64_t waited_ms)
{
    if (c->q->timeout_s <= 0)
        return;
    uint64_t ms = clock_scaled_ms((uint64_t)c->q->timeout_s * 1000u);
    ms = waited_ms < ms ? ms - waited_ms : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    leg_ref(&c->base);
    evtimer_add(c->expire, &tv);
}

static void arm_timeout(caller *c)
{
    arm_timeout_after(c, 0);
}

/* ---- calls --------------------------------------------------------------- */

void caller_set_call(caller *c, call *k)
{
    c->k = k;
    if (k && c->state != CALLER_CONNECTING) {
        cancel_announcement(c);
        set_state(c, CALLER_CONNECTING);
    } else if (!k && c->state == CALLER_TALKING) {
        set_state(c, CALLER_ENDED); /* the call ended: the caller goes with it */
    }
}

void caller_back_to_queue(caller *c)
{
    c->k = NULL;
    if (c->base.ended)
        return;
    set_state(c, CALLER_HOLDING);
    c->playback[0] = '\0';
    hold_left(&c->base); /* where it is after a failed call is not sure: MOH anew */
    hold_join(&c->base, c->q->moh_class, on_held);
}

void caller_after_link(caller *c, const char *state, bool was_talking)
{
    c->k = NULL;
    if (c->base.ended)
        return;
    /* unknown (Redis could not be asked) after a call: it is over all the
     * same, and a caller taken back would be waiting where Redis may have
     * no record of it */
    bool over = strcmp(state, "gone") == 0 || (was_talking && strcmp(state, "unknown") == 0);
    if (!over) {
        caller_back_to_queue(c); /* waiting again (or paired anew: it comes) */
        return;
    }
    set_state(c, CALLER_ENDED);
    leg_end(&c->base);
    if (was_talking) { /* the call is over: the agent's side ended it */
        ari_channel_hangup(c->base.n->rest, c->base.chan, "normal", NULL, NULL);
    } else {
        turnaway_start(c->base.n, c->base.chan, "UNAVAILABLE",
                       "the caller's queue record is gone (its node was taken for dead)");
    }
}

void caller_talking(caller *c)
{
    if (c->state == CALLER_CONNECTING)
        set_state(c, CALLER_TALKING);
}

/* ---- leaving --------------------------------------------------------------- */

static void on_left(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    caller *c = pd;
    if (err)
        LOG_W(MOD, "chan=%s leave not recorded: %s (%s)", c->base.chan, ariq_strerror(err),
              qs_errmsg(c->base.n->qs));
    else {
        LOG_I(MOD, "chan=%s left outcome=%s", c->base.chan, res->outcome);
        node_take_pairings(c->base.n, res->pairings, res->npairings);
    }
    leg_unref(&c->base);
}

/* Out of every queue: ABANDON while waiting (the script knows the state). */
static void leave_queue_with(caller *c, qs_result_cb cb)
{
    leg_ref(&c->base);
    if (qs_leave(c->base.n->qs, c->base.chan, QS_LEAVE_HANGUP, QS_BY_CALLER, 0, true, cb, c) !=
        0) {
        leg_unref(&c->base);
        LOG_E(MOD, "chan=%s hung up but Redis is unreachable: its record stays until reaped",
              c->base.chan);
    }
}

static void leave_queue(caller *c)
{
    leave_queue_with(c, on_left);
}

/* The caller's channel is gone. In a call, the call records the end;
 * entering, on_entered leaves once the enter is done; otherwise it leaves
 * the queue now if it had entered. */
static void caller_gone(caller *c)
{
    caller_state was = c->state;
    set_state(c, CALLER_ENDED);
    leg_end(&c->base);
    if (c->k)
        call_caller_gone(c->k);
    else if (c->queued && was != CALLER_ENTERING)
        leave_queue(c);
    else if (was == CALLER_CHECKING || was == CALLER_ANSWERING)
        record_abandon(c); /* it reached the queue: ENTERQUEUE, ABANDON */
}

static void on_event(leg *l, const ari_event *ev)
{
    caller *c = (caller *)l;
    switch (ev->type) {
    case ARI_EV_CHANNEL_HANGUP_REQUEST:
    case ARI_EV_STASIS_END:
    case ARI_EV_CHANNEL_DESTROYED:
        if (!c->base.ended)
            caller_gone(c);
        break;
    case ARI_EV_PLAYBACK_FINISHED:
        if (c->playback[0] && strcmp(ev->playback.id, c->playback) == 0) {
            c->playback[0] = '\0';
            if (c->state == CALLER_ANNOUNCING) {
                set_state(c, CALLER_WAITING);
                arm_announcement(c, false);
            }
        }
        break;
    default:
        break; /* the caller's keys mean nothing here (yet) */
    }
}

static void cancel_timeout(caller *c)
{
    if (evtimer_pending(c->expire, NULL)) {
        evtimer_del(c->expire);
        leg_unref(&c->base);
    }
}

static void on_end(leg *l)
{
    cancel_announcement((caller *)l);
    cancel_timeout((caller *)l);
}

/* A playback's state, asked after a reconnect: gone (404) means it ended
 * while the events WebSocket was down; its PlaybackFinished is inferred. */
static void on_playback_checked(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    caller *c = pd;
    const char *id = strrchr(r->path, '/');
    if (r->status == 404 && id && c->playback[0] && strcmp(id + 1, c->playback) == 0 &&
        !c->base.ended) {
        LOG_W(MOD, "chan=%s playback=%s ended while the events WebSocket was down",
              c->base.chan, c->playback);
        ari_event done = {.type = ARI_EV_PLAYBACK_FINISHED,
                          .type_name = "PlaybackFinished(inferred)",
                          .has_playback = true};
        char pb[sizeof c->playback];
        snprintf(pb, sizeof pb, "%s", c->playback);
        done.playback.id = pb;
        on_event(&c->base, &done);
    }
    leg_unref(&c->base);
}

static void resync(leg *l, const json_t *ch)
{
    (void)ch;
    caller *c = (caller *)l;
    if (c->state != CALLER_ANNOUNCING || !c->playback[0])
        return;
    leg_ref(l);
    if (ari_playback_get(l->n->rest, c->playback, on_playback_checked, c) != 0)
        leg_unref(l);
}

static void destroy(leg *l)
{
    caller *c = (caller *)l;
    if (c->announce)
        event_free(c->announce);
    if (c->expire)
        event_free(c->expire);
    free(c);
}

static const leg_ops caller_ops = {"caller", on_event, on_end, destroy, resync};

/* A caller leg for chan, registered, with the creator's reference; NULL
 * (logged) if it cannot be. Queues not configured here are left out (a
 * re-adopted caller may name one the config has dropped since); with none
 * left, the node's first queue gives its music and announcements. */
static caller *caller_new(node *n, const char *chan, const char *const *queues, size_t nqueues,
                          int priority, const char *cid_num, const char *cid_name)
{
    caller *c = calloc(1, sizeof *c);
    if (!c) {
        LOG_E(MOD, "chan=%s out of memory", chan);
        return NULL;
    }
    leg_init(&c->base, &caller_ops, n, chan);
    for (size_t i = 0; i < nqueues && c->nqueues < ENTRY_MAX_QUEUES; i++) {
        const qcfg_queue *q = qcfg_queue_find(n->cfg, queues[i]);
        if (q)
            c->queues[c->nqueues++] = q;
        else
            LOG_W(MOD, "chan=%s queue=%s is not configured here any more", chan, queues[i]);
    }
    c->priority = priority;
    c->q = c->nqueues ? c->queues[0] : &n->cfg->queues[0];
    snprintf(c->cid_num, sizeof c->cid_num, "%s", cid_num ? cid_num : "");
    snprintf(c->cid_name, sizeof c->cid_name, "%s", cid_name ? cid_name : "");
    c->last_ahead = -1;
    c->announce = evtimer_new(n->base, on_announce_due, c);
    c->expire = evtimer_new(n->base, on_expire, c);
    if (!c->announce || !c->expire || leg_register(&c->base) != 0) {
        LOG_E(MOD, "chan=%s cannot track the caller", chan);
        leg_unref(&c->base);
        return NULL;
    }
    return c;
}

void caller_start(node *n, const ari_event *ev, const entry_args *a)
{
    const char *queues[ENTRY_MAX_QUEUES];
    for (size_t i = 0; i < a->nqueues; i++)
        queues[i] = a->queues[i];
    caller *c = caller_new(n, ev->channel.id, queues, a->nqueues, a->priority,
                           ev->channel.caller_number, ev->channel.caller_name);
    if (!c)
        return;
    LOG_I(MOD, "chan=%s queues=%zu first=%s priority=%d state=checking", c->base.chan,
          a->nqueues, c->q->name, a->priority);
    check_next(c);
    leg_unref(&c->base); /* the creator's */
}

bool caller_waiting(const caller *c)
{
    return !c->base.ended && c->queued && !c->k &&
           (c->state == CALLER_HOLDING || c->state == CALLER_WAITING ||
            c->state == CALLER_ANNOUNCING);
}

void caller_set_priority(caller *c, int priority)
{
    c->priority = priority;
    if (c->seq > 0)
        c->score = (int64_t)(1000 - priority) * ((int64_t)1 << 43) + c->seq;
}

bool caller_restore_info(caller *c, qs_restore_call *out, const char **queues, int64_t *seq)
{
    bool waiting = c->state == CALLER_HOLDING || c->state == CALLER_WAITING ||
                   c->state == CALLER_ANNOUNCING;
    if (!waiting || !c->queued || c->k || c->base.ended || c->seq <= 0 || !c->nqueues)
        return false;
    for (size_t i = 0; i < c->nqueues; i++)
        queues[i] = c->queues[i]->name;
    *out = (qs_restore_call){.callid = c->base.chan,
                             .channel = c->base.chan,
                             .queues = queues,
                             .nqueues = c->nqueues,
                             .priority = c->priority,
                             .seq = c->seq,
                             .score = c->score,
                             .entered_ms = c->entered_wall,
                             .ann_ms = c->ann_wall,
                             .cid_num = c->cid_num,
                             .cid_name = c->cid_name};
    *seq = c->seq;
    return true;
}

static void on_held_again(leg *l, bool ok)
{
    if (!ok)
        LOG_W(MOD, "chan=%s waits without the holding bridge (no MOH)", l->chan);
}

caller *caller_adopt(node *n, const adopt_party *p, bool talking)
{
    caller *c = caller_new(n, p->chan, p->queues, p->nqueues, p->priority, p->cid_num,
                           p->cid_name);
    if (!c)
        return NULL;
    c->queued = true;
    c->seq = p->seq;
    c->score = p->score;
    c->entered_wall = p->entered_ms;
    c->ann_wall = p->ann_ms;
    int64_t wall = (int64_t)clock_wall_ms();
    uint64_t waited = wall > p->entered_ms ? (uint64_t)(wall - p->entered_ms) : 0;
    if (talking) {
        c->state = CALLER_CONNECTING; /* call_adopt makes it TALKING */
    } else {
        c->state = CALLER_WAITING;
        /* the last announcement started at ann_ms; none yet: the schedule
         * starts at the entry, as it did at the join */
        int64_t last = p->ann_ms > 0 ? p->ann_ms : p->entered_ms;
        uint64_t ago = wall > last ? (uint64_t)(wall - last) : 0;
        uint64_t now = clock_mono_ms();
        c->ann_start = now > ago ? now - ago : 0;
        arm_timeout_after(c, waited);
        if (!hold_adopt(&c->base, p->bridge, c->q->moh_class))
            hold_join(&c->base, c->q->moh_class, on_held_again);
        arm_announcement(c, false);
    }
    LOG_I(MOD, "chan=%s queue=%s adopted state=%s waited_ms=%llu", c->base.chan, c->q->name,
          talking ? "talking" : "waiting", (unsigned long long)waited);
    leg_unref(&c->base); /* the registry keeps it */
    return c;
}
