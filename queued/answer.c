/* answer.c - answering a caller's or an agent's channel, through ARI's
 * transient errors.
 *
 * A 404 / 409 / 400 means the party is gone (or no longer ours): that is an
 * outcome, not an error. A 5xx or a transport failure says nothing about the
 * party, so the answer is tried again with backoff (100 ms doubling, six
 * tries, about 6 s) before the leg gives up and hands the channel back with a
 * QUEUESTATUS: a live caller is never left in Stasis unanswered and unheard.
 *
 * The request lives in leg->answering while it is pending, so leg_end (a
 * hangup) cancels a retry waiting on its timer. */
#include "node_int.h"

#include "core/err.h"
#include "core/log.h"

#include <event2/event.h>
#include <stdlib.h>

#define MOD "answer"
#define TRIES 6
#define BACKOFF_MIN_MS 100

struct answer_req {
    leg *l; /* referenced */
    answer_done_fn done;
    int tries;
    struct event *retry;
};

static void send_answer(answer_req *a);

static void answer_free(answer_req *a)
{
    a->l->answering = NULL;
    if (a->retry)
        event_free(a->retry);
    leg *l = a->l;
    free(a);
    leg_unref(l);
}

static void finish(answer_req *a, answer_outcome o)
{
    leg *l = a->l;
    answer_done_fn done = a->done;
    leg_ref(l);
    answer_free(a);
    if (!l->ended)
        done(l, o);
    leg_unref(l);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    send_answer(arg);
}

static void on_answered(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    answer_req *a = pd;
    if (r->status == 204) {
        finish(a, ANSWER_OK);
    } else if (r->status == 404 || r->status == 409 || r->status == 400 ||
               r->err == ARIQ_ECLOSED || a->l->ended) {
        finish(a, ANSWER_GONE);
    } else if (a->tries >= TRIES) {
        LOG_E(MOD, "chan=%s answer failed %d times (last: %ld %s)", a->l->chan, a->tries,
              r->status, ari_response_message(r));
        finish(a, ANSWER_FAILED);
    } else {
        int ms = BACKOFF_MIN_MS << (a->tries - 1);
        LOG_W(MOD, "chan=%s answer status=%ld error=\"%s\" retry_in_ms=%d", a->l->chan,
              r->status, ari_response_message(r), ms);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(a->retry, &tv);
    }
}

static void send_answer(answer_req *a)
{
    a->tries++;
    if (ari_channel_answer(a->l->n->rest, a->l->chan, on_answered, a) != 0)
        finish(a, ANSWER_FAILED);
}

void answer_start(leg *l, answer_done_fn done)
{
    answer_req *a = calloc(1, sizeof *a);
    if (a)
        a->retry = evtimer_new(l->n->base, on_retry, a);
    if (!a || !a->retry) {
        free(a);
        done(l, ANSWER_FAILED);
        return;
    }
    a->l = leg_ref(l);
    a->done = done;
    l->answering = a;
    send_answer(a);
}

void answer_cancel(leg *l)
{
    answer_req *a = l->answering;
    if (a && evtimer_pending(a->retry, NULL)) /* a request in flight finishes itself */
        answer_free(a);
}
