/* recheck.c - after a restart, each recording of this node's calls is made
 * to agree between Redis and Asterisk.
 *
 * The agent's recording keys change two places: Redis (the metadata and its
 * RECORD* event, sent at the key press) and Asterisk (the live recording,
 * sent one request at a time). A node killed between the two leaves them
 * apart, and a call that ended while the node was down leaves a recording
 * Redis still calls "recording" that Asterisk stored when the call's
 * bridge went. Missed events are never assumed: ARI is asked.
 *
 * For every mixing bridge ariq-mix-PAIRING that ARI listed, the recordings
 * ariq-PAIRING-1, -2, ... that Redis holds are checked in turn, those this
 * node made (the agent's node records; the caller's node of a call across
 * nodes has a bridge of the same name and skips them):
 *
 *   Redis        ARI live       ARI stored    done
 *   recording/   yes, call on   -             nothing (the keys go on)
 *   paused       yes, call over -             STOP in Redis (its bridge is being
 *                                             destroyed: Asterisk stores it)
 *                no             yes           STOP in Redis; a call that goes on
 *                                             has no recording running
 *                no             no            DISCARD in Redis (same)
 *   stored       yes            -             POST .../stop
 *   discarded    yes            -             DELETE (the agent's discard, done)
 *   other cases                               nothing */
#include "node_int.h"

#include "core/err.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "recheck"
#define RECHECK_MAX 64 /* recordings per call looked at */

typedef struct recheck {
    node *n;
    char pairing[QS_ID_MAX + 1];
    char chan[2][ARI_EVENT_MAX_ID + 1]; /* the bridge's channels, to find its call */
    unsigned num;                       /* the recording looked at: ariq-PAIRING-num */
    char name[ARI_EVENT_MAX_ID + 1];
    char state[QS_OUTCOME_MAX]; /* its state in Redis */
} recheck;

static void next(recheck *rc);

/* The call still going on in this bridge, or NULL. */
static call *live_call(recheck *rc)
{
    for (int i = 0; i < 2; i++) {
        leg *l = node_leg(rc->n, rc->chan[i]);
        call *k = !l                ? NULL
                  : leg_caller(l)   ? caller_call(leg_caller(l))
                  : leg_agent(l)    ? agent_call(leg_agent(l))
                                    : NULL;
        if (k && strcmp(call_pairing(k), rc->pairing) == 0)
            return k;
    }
    return NULL;
}

static void on_logged(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)res;
    recheck *rc = pd;
    if (err)
        LOG_W(MOD, "recording=%s not corrected in Redis: %s (%s)", rc->name, ariq_strerror(err),
              qs_errmsg(qs));
    next(rc);
}

static void fix_redis(recheck *rc, qs_rec_action act, const char *why)
{
    LOG_W(MOD, "recording=%s was %s in Redis: %s", rc->name, rc->state, why);
    call *k = live_call(rc);
    if (k)
        call_rec_gone(k, rc->name);
    if (qs_rec(rc->n->qs, act, rc->name, NULL, NULL, 0, on_logged, rc) != 0)
        next(rc);
}

static void on_ari_done(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    recheck *rc = pd;
    if (r->status >= 300 && r->status != 404)
        LOG_W(MOD, "recording=%s %s %s: %ld %s", rc->name, r->method, r->path, r->status,
              ari_response_message(r));
    next(rc);
}

static void on_stored(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    recheck *rc = pd;
    if (r->status == 200)
        fix_redis(rc, QS_REC_STOP, "Asterisk stored it meanwhile");
    else if (r->status == 404)
        fix_redis(rc, QS_REC_DISCARD, "Asterisk has no such recording (never started, or "
                                      "discarded)");
    else
        next(rc); /* ARI not answering: left as it is */
}

static bool running(const char *state)
{
    return !strcmp(state, "recording") || !strcmp(state, "paused");
}

static void on_live(ari_rest *rest, const ari_response *r, void *pd)
{
    recheck *rc = pd;
    int sent = -1;
    if (r->status == 200 && running(rc->state)) {
        if (!live_call(rc)) {
            fix_redis(rc, QS_REC_STOP, "its call ended while the node was down");
            return;
        }
    } else if (r->status == 200 && !strcmp(rc->state, "stored")) {
        LOG_W(MOD, "recording=%s stored in Redis but still running: stopped", rc->name);
        sent = ari_recording_stop(rest, rc->name, on_ari_done, rc);
    } else if (r->status == 200 && !strcmp(rc->state, "discarded")) {
        LOG_W(MOD, "recording=%s discarded in Redis but still running: discarded", rc->name);
        sent = ari_recording_cancel(rest, rc->name, on_ari_done, rc);
    } else if (r->status == 404 && running(rc->state)) {
        sent = ari_recording_stored_get(rest, rc->name, on_stored, rc);
    }
    if (sent != 0)
        next(rc);
}

static void on_state(store *s, const redisReply *reply, void *pd)
{
    (void)s;
    recheck *rc = pd;
    const redisReply *st = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
                               ? reply->element[0]
                               : NULL;
    const redisReply *nd = st ? reply->element[1] : NULL;
    if (!st || st->type != REDIS_REPLY_STRING || rc->n->closing) {
        free(rc); /* no such recording: the last was the one before */
        return;
    }
    call *k = live_call(rc);
    if (k)
        call_rec_seen(k, rc->num);
    if (!nd || nd->type != REDIS_REPLY_STRING || strcmp(nd->str, rc->n->cfg->node_id) != 0) {
        next(rc); /* made on the agent's node, another one: that node checks it */
        return;
    }
    snprintf(rc->state, sizeof rc->state, "%.*s", (int)st->len, st->str);
    if (ari_recording_live_get(rc->n->rest, rc->name, on_live, rc) != 0)
        next(rc);
}

/* The next recording of the call: its state in Redis. */
static void next(recheck *rc)
{
    char key[STORE_KEY_MAX];
    store *s = rc->n->store;
    snprintf(rc->name, sizeof rc->name, "ariq-%s-%u", rc->pairing, ++rc->num);
    if (rc->num > RECHECK_MAX || rc->n->closing ||
        store_key(store_get_keys(s), key, sizeof key, "recording", rc->name, NULL) != 0) {
        free(rc);
        return;
    }
    const char *argv[] = {"HMGET", key, "state", "node"};
    if (store_command_argv(s, 4, argv, NULL, on_state, rc) != 0)
        free(rc);
}

void recheck_start(node *n, const char *pairing, const char *chan1, const char *chan2)
{
    recheck *rc = calloc(1, sizeof *rc);
    if (!rc)
        return;
    rc->n = n;
    snprintf(rc->pairing, sizeof rc->pairing, "%s", pairing);
    snprintf(rc->chan[0], sizeof rc->chan[0], "%s", chan1 ? chan1 : "");
    snprintf(rc->chan[1], sizeof rc->chan[1], "%s", chan2 ? chan2 : "");
    next(rc);
}
