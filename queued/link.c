/* link.c - the legs of a link call between two nodes.
 *
 * A caller on this node paired with an agent on node B: call.c dials
 * link_dial (IAX2/B/PAIRING@queue-link) with Stasis(app, linkout, PAIRING)
 * for our end, the OUT leg. Its id (ariq-lo-PAIRING) is chosen by us and the
 * leg is registered before the originate is sent, so every event of the
 * channel reaches it, also those of a call never answered (Dial,
 * ChannelDestroyed with no StasisStart: OBSERVED.md).
 *
 * On B the far end runs Stasis(app, link, PAIRING): an IN leg. It asks Redis
 * for the pairing and hands itself to its agent's call (call.c) if the
 * pairing is live, its agent a live leg of this node and not in a newer
 * pairing; otherwise it is hung up and the caller's node learns from the
 * link going down.
 *
 *   leg  state      on                            next
 *   IN   LOOKING    pairing_info: ours, agent here CALL     (call_start_in)
 *   IN   LOOKING    gone / not ours / no agent     ENDED    (hung up)
 *   OUT  CALL       StasisStart (answered)         CALL     (call_link_answered)
 *   any  CALL       hangup, StasisEnd, destroyed   ENDED    (call_link_gone)
 *   any  any        DTMF                           -        (the agent's node reads the
 *                                                           agent's own channel)
 *
 * A link leg holds no reference on its call (the call holds the leg): the
 * call detaches itself with link_set_call(l, NULL) when it ends. */
#include "node_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "link"

typedef struct link_leg {
    leg base;
    bool out;
    call *k; /* the call it belongs to, while it does (not referenced) */
    char pairing[ENTRY_NAME_MAX + 1];
    int cause; /* the hangup cause, when it came with one */
} link_leg;

static link_leg *as_link(leg *l)
{
    return l && strcmp(l->ops->role, "link") == 0 ? (link_leg *)l : NULL;
}

bool leg_is_link(const leg *l)
{
    return l && strcmp(l->ops->role, "link") == 0;
}

void link_set_call(leg *l, call *k)
{
    link_leg *x = as_link(l);
    if (x)
        x->k = k;
}

static void on_hung_up(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    leg *l = pd;
    if (r->status != 204 && r->status != 404 && r->err != ARIQ_ECLOSED)
        LOG_W(MOD, "chan=%s hangup failed: %ld %s", l->chan, r->status,
              ari_response_message(r));
    leg_unref(l);
}

void link_hangup(leg *l)
{
    if (!l || l->ended)
        return;
    leg_end(l);
    leg_ref(l);
    if (ari_channel_hangup(l->n->rest, l->chan, "normal", on_hung_up, l) != 0)
        leg_unref(l);
}

static void link_gone(link_leg *x, const char *why)
{
    call *k = x->k;
    leg_end(&x->base);
    if (k)
        call_link_gone(k, why);
}

static void on_event(leg *l, const ari_event *ev)
{
    link_leg *x = (link_leg *)l;
    char why[64];
    switch (ev->type) {
    case ARI_EV_STASIS_START:
        if (x->out && x->k)
            call_link_answered(x->k);
        break;
    case ARI_EV_CHANNEL_HANGUP_REQUEST:
    case ARI_EV_CHANNEL_DESTROYED:
        if (ev->cause > 0 && ev->cause < 1000)
            x->cause = (int)ev->cause;
        /* fall through */
    case ARI_EV_STASIS_END:
        if (!l->ended) {
            snprintf(why, sizeof why, "link %s (cause %d)",
                     x->cause == 17   ? "busy"
                     : x->cause == 19 ? "not answered"
                     : x->cause == 34 ? "congested"
                                      : "hung up",
                     x->cause);
            link_gone(x, why);
        }
        break;
    default:
        break; /* DTMF and the rest: the agent's node reads the agent */
    }
}

static void destroy(leg *l)
{
    free(l);
}

/* After a reconnect: our dialled end answered meanwhile (Up, in Stasis)
 * means its StasisStart was missed. */
static void resync(leg *l, const json_t *ch)
{
    link_leg *x = (link_leg *)l;
    const char *st = json_string_value(json_object_get(ch, "state"));
    const char *app =
        json_string_value(json_object_get(json_object_get(ch, "dialplan"), "app_name"));
    if (x->out && x->k && st && !strcmp(st, "Up") && app && !strcmp(app, "Stasis")) {
        LOG_W(MOD, "chan=%s answered while the events WebSocket was down", l->chan);
        call_link_answered(x->k);
    }
}

static const leg_ops link_ops = {"link", on_event, NULL, destroy, resync};

static link_leg *link_new(node *n, const char *chan, const char *pairing, bool out)
{
    link_leg *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    leg_init(&x->base, &link_ops, n, chan);
    x->out = out;
    snprintf(x->pairing, sizeof x->pairing, "%s", pairing);
    if (leg_register(&x->base) != 0) {
        leg_unref(&x->base);
        return NULL;
    }
    return x;
}

leg *link_out_open(node *n, call *k, const char *chan, const char *pairing)
{
    link_leg *x = link_new(n, chan, pairing, true);
    if (!x)
        return NULL;
    x->k = k;
    return &x->base; /* the creator's reference goes to the call */
}

leg *link_adopt(node *n, const char *chan, const char *pairing, bool out)
{
    link_leg *x = link_new(n, chan, pairing, out);
    return x ? &x->base : NULL; /* the creator's reference: drop it once the call has it */
}

/* ---- IN: the far end of a link arrived ------------------------------------ */

static void refuse(link_leg *x, const char *why)
{
    LOG_W(MOD, "chan=%s pairing=%s link refused: %s", x->base.chan, x->pairing, why);
    link_hangup(&x->base);
}

/* The pairing p (live, as far as we know) came for link x: hand x to its
 * agent's call, or hang it up. */
static void take_link(link_leg *x, const qs_pairing *p)
{
    node *n = x->base.n;
    agent *a = leg_agent(node_leg(n, p->agent_channel));
    call *old = a ? agent_call(a) : NULL;
    if (strcmp(p->agent_node, n->cfg->node_id) != 0)
        refuse(x, "its agent is on another node");
    else if (!a || ((leg *)a)->ended)
        refuse(x, "its agent is not here any more");
    else if (old && pairing_seq(call_pairing(old)) >= pairing_seq(p->pairing))
        refuse(x, "its agent is in a newer call");
    else {
        if (old)
            call_superseded(old, (leg *)a);
        x->k = call_start_in(n, p, a, &x->base);
        if (!x->k)
            refuse(x, "out of memory");
    }
}

static void on_pairing(queue_store *qs, int err, const qs_result *res, void *pd)
{
    link_leg *x = pd;
    if (x->base.ended) {
        /* hung up while we looked: the caller's node sees its link go */
    } else if (err) {
        char why[QS_ERRMSG_MAX + 32];
        snprintf(why, sizeof why, "pairing not readable: %s", qs_errmsg(qs));
        refuse(x, why);
    } else if (res->npairings != 1 || strcmp(res->state, "paired") != 0) {
        refuse(x, strcmp(res->state, "gone") == 0 ? "the pairing is over" : "already bridged");
    } else {
        take_link(x, &res->pairings[0]);
    }
    leg_unref(&x->base);
}

/* ---- links we were told to expect ------------------------------------------- */

/* A cross-node pairing whose agent is ours, as Redis told us (command stream
 * or a reply): its link is on its way. Kept until it comes, or for
 * EXPECT_KEEP_MS; if it ended meanwhile, the caller's node hangs the link up
 * and Redis refuses what we report for it (bridged: NOTFOUND), so acting on
 * a stale one loses nothing. */
typedef struct expected {
    qs_pairing p;
    uint64_t at_ms;
} expected;

#define EXPECT_MAX 20000
#define EXPECT_KEEP_MS 120000

void link_expect(node *n, const qs_pairing *p)
{
    if (strmap_get(n->expect, p->pairing) || strmap_count(n->expect) >= EXPECT_MAX)
        return; /* known, or too many: the link will look it up */
    expected *e = malloc(sizeof *e);
    if (!e)
        return;
    e->p = *p;
    e->at_ms = clock_mono_ms();
    if (strmap_put(n->expect, p->pairing, e) != 0)
        free(e);
}

static expected *take_expected(node *n, const char *pairing)
{
    expected *e = strmap_get(n->expect, pairing);
    if (e)
        strmap_del(n->expect, pairing);
    return e;
}

typedef struct expiry {
    uint64_t now;
    char (*old)[ENTRY_NAME_MAX + 1];
    size_t n, cap;
} expiry;

static void find_old(const char *key, void *value, void *ud)
{
    expiry *x = ud;
    const expected *e = value;
    if (x->now - e->at_ms > EXPECT_KEEP_MS && x->n < x->cap && strlen(key) <= ENTRY_NAME_MAX)
        snprintf(x->old[x->n++], sizeof x->old[0], "%s", key);
}

void link_expect_expire(node *n, bool all)
{
    size_t cap = strmap_count(n->expect);
    if (!cap)
        return;
    expiry x = {all ? UINT64_MAX : clock_mono_ms(), calloc(cap, sizeof *x.old), 0, cap};
    if (!x.old)
        return;
    strmap_each(n->expect, find_old, &x);
    for (size_t i = 0; i < x.n; i++)
        free(take_expected(n, x.old[i]));
    free(x.old);
}

void link_in_start(node *n, const ari_event *ev, const entry_args *args)
{
    link_leg *x = link_new(n, ev->channel.id, args->pairing, false);
    if (!x) {
        LOG_E(MOD, "chan=%s cannot track the link: hung up", ev->channel.id);
        ari_channel_hangup(n->rest, ev->channel.id, "normal", NULL, NULL);
        return;
    }
    LOG_I(MOD, "chan=%s pairing=%s link arrived", x->base.chan, x->pairing);
    expected *e = take_expected(n, x->pairing);
    if (e) { /* Redis told us of it already */
        take_link(x, &e->p);
        free(e);
    } else {
        leg_ref(&x->base);
        if (qs_pairing_info(n->qs, x->pairing, on_pairing, x) != 0) {
            leg_unref(&x->base);
            refuse(x, "Redis is not reachable");
        }
    }
    leg_unref(&x->base); /* the creator's; the registry keeps it */
}

void link_out_stray(node *n, const ari_event *ev)
{
    LOG_W(MOD, "chan=%s Stasis(linkout) for no call of ours: hung up", ev->channel.id);
    ari_channel_hangup(n->rest, ev->channel.id, "normal", NULL, NULL);
}
