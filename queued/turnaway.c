/* turnaway.c - handing a channel back to the dialplan with a QUEUESTATUS.
 *
 * What app_queue users expect when a queue cannot take a call: the channel
 * leaves the application with QUEUESTATUS set (INVALIDARGS, UNKNOWNQUEUE,
 * FULL, JOINEMPTY, ...) and the dialplan goes on, so the administrator can
 * route it elsewhere. The order matters: the variable first, then continue,
 * as in the recorded traces (single-malformed).
 *
 *   state       on                                      next
 *   SETTING     POST .../variable answered 204          CONTINUING (POST continue)
 *   SETTING     5xx or transport error                  SETTING (retry, backoff)
 *   CONTINUING  POST .../continue answered 204          DONE
 *   CONTINUING  5xx or transport error                  CONTINUING (retry, backoff)
 *   any         404 / 409 (channel gone / not ours)     DONE
 *   any         ChannelHangupRequest, StasisEnd,        DONE
 *               ChannelDestroyed for the channel
 *
 * Retries never give up while the channel is still ours: a caller is never
 * left in Stasis silently. Backoff doubles from 100 ms to 5 s. */
#include "node_int.h"

#include "core/err.h"
#include "core/log.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "turnaway"
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef enum {
    TA_SETTING,    /* setting QUEUESTATUS */
    TA_CONTINUING, /* sending the channel back to the dialplan */
    TA_DONE,       /* back in the dialplan, or gone */
    TA__COUNT
} ta_state;

static const char *const ta_names[TA__COUNT] = {"setting", "continuing", "done"};

typedef struct turnaway {
    leg base;
    ta_state state;
    char status[32];
    int backoff_ms;
    struct event *retry;
} turnaway;

static void ta_step(turnaway *t);

/* Every transition passes here and is logged "from -> to". */
static void ta_set_state(turnaway *t, ta_state to)
{
    LOG_I(MOD, "chan=%s status=%s from=%s to=%s", t->base.chan, t->status, ta_names[t->state],
          ta_names[to]);
    t->state = to;
    if (to == TA_DONE)
        leg_end(&t->base);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    turnaway *t = arg;
    if (t->state != TA_DONE)
        ta_step(t);
    leg_unref(&t->base); /* the timer's reference */
}

/* A transient failure: same state, again after the backoff. */
static void ta_retry(turnaway *t, const ari_response *r)
{
    t->backoff_ms = t->backoff_ms ? t->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (t->backoff_ms > BACKOFF_MAX_MS)
        t->backoff_ms = BACKOFF_MAX_MS;
    LOG_W(MOD, "chan=%s state=%s status=%ld error=\"%s\" retry_in_ms=%d", t->base.chan,
          ta_names[t->state], r->status, ari_response_message(r), t->backoff_ms);
    struct timeval tv = {t->backoff_ms / 1000, (t->backoff_ms % 1000) * 1000};
    leg_ref(&t->base);
    evtimer_add(t->retry, &tv);
}

/* The answer to the current step's request. */
static void on_answer(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    turnaway *t = pd;
    if (t->state == TA_DONE || t->base.ended || r->err == ARIQ_ECLOSED) {
        /* hung up meanwhile, or the node is shutting down */
    } else if (r->status >= 200 && r->status < 300) {
        ta_set_state(t, t->state == TA_SETTING ? TA_CONTINUING : TA_DONE);
        if (t->state == TA_CONTINUING)
            ta_step(t);
    } else if (r->status == 404 || r->status == 409 || r->status == 400) {
        LOG_I(MOD, "chan=%s state=%s status=%ld: the channel is gone or not ours",
              t->base.chan, ta_names[t->state], r->status);
        ta_set_state(t, TA_DONE);
    } else {
        ta_retry(t, r);
    }
    leg_unref(&t->base); /* the request's reference */
}

/* Sends the request of the current state, holding a reference for it. */
static void ta_step(turnaway *t)
{
    ari_rest *rest = t->base.n->rest;
    int rc;
    leg_ref(&t->base);
    if (t->state == TA_SETTING)
        rc = ari_channel_set_var(rest, t->base.chan, "QUEUESTATUS", t->status, on_answer, t);
    else
        rc = ari_channel_continue(rest, t->base.chan, NULL, NULL, 0, NULL, on_answer, t);
    if (rc != 0) {
        leg_unref(&t->base);
        ari_response fake = {.err = rc, .error = ariq_strerror(rc)};
        ta_retry(t, &fake);
    }
}

static void ta_on_event(leg *l, const ari_event *ev)
{
    turnaway *t = (turnaway *)l;
    switch (ev->type) {
    case ARI_EV_CHANNEL_HANGUP_REQUEST:
    case ARI_EV_STASIS_END:
    case ARI_EV_CHANNEL_DESTROYED:
        if (t->state != TA_DONE)
            ta_set_state(t, TA_DONE);
        break;
    default:
        break;
    }
}

/* The leg ended (done, or the node is closing): no retry will come. */
static void ta_on_end(leg *l)
{
    turnaway *t = (turnaway *)l;
    if (t->retry && evtimer_pending(t->retry, NULL)) {
        evtimer_del(t->retry);
        leg_unref(l); /* the timer's reference */
    }
}

static void ta_destroy(leg *l)
{
    turnaway *t = (turnaway *)l;
    if (t->retry)
        event_free(t->retry);
    free(t);
}

static const leg_ops turnaway_ops = {"turnaway", ta_on_event, ta_on_end, ta_destroy, NULL};

void turnaway_start(node *n, const char *chan, const char *status, const char *why)
{
    if (n->closing)
        return; /* the channel stays in Stasis; a restart re-adopts it */
    n->stats.turned_away++;
    LOG_W(MOD, "chan=%s status=%s why=\"%s\"", chan, status, why);
    turnaway *t = calloc(1, sizeof *t);
    if (!t) {
        LOG_E(MOD, "chan=%s out of memory: the channel stays in Stasis", chan);
        return;
    }
    leg_init(&t->base, &turnaway_ops, n, chan);
    snprintf(t->status, sizeof t->status, "%s", status);
    t->retry = evtimer_new(n->base, on_retry, t);
    if (!t->retry || leg_register(&t->base) != 0) {
        LOG_E(MOD, "chan=%s cannot track the channel: it stays in Stasis", chan);
        leg_unref(&t->base);
        return;
    }
    ta_step(t);
    leg_unref(&t->base); /* the creator's reference; registry and request hold it */
}
