/* hold.c - the node's holding bridges, shared by the waiting callers and free
 * agents of the node (a holding bridge connects nobody, each member hears
 * only the music): HOLD_SHARDS per MOH class, a channel's shard chosen by a
 * hash of its id. One bridge for everyone would make every join and leave an
 * ARI event carrying all its members' ids (120 KB at 5,000 waiting, parsed
 * whole: most of queued's time, bench_queued found); 32 shards keep them
 * small.
 *
 * The bridge is made lazily and heals itself: join = addChannel; a 404 (no
 * such bridge: first use, or someone destroyed it) creates it with its fixed
 * id and tries once more. Asterisk drops bridge MOH when a holding bridge
 * empties (OBSERVED.md): the next joiner would hear silence, so the bridge's
 * MOH is started again whenever a party joins one that was empty. Every
 * member of a node's holding bridges is a leg of that node, so the node
 * counts them (n->holds): a leg is in from its join until it moves to its
 * mixing bridge (hold_left, from call.c) or ends (leg_end). A bridge made
 * anew counts from zero.
 *
 *   step      on                        next
 *   ADD       204                       MOH
 *   ADD       404 (first try)           CREATE
 *   CREATE    200, or 500 (exists)      ADD (second try)
 *   MOH       any answer                done(ok)
 *   any       other failure             done(false)
 *
 * Requests travel over several connections, so two for one channel may reach
 * Asterisk in either order: a call must not move a party into its mixing
 * bridge while that party's join to the holding bridge is still in flight.
 * leg->busy counts them, and call_leg_idle() tells the call when they are
 * done. */
#include "node_int.h"

#include "core/err.h"
#include "core/log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "hold"
#define HOLD_SHARDS 32

typedef enum { HOLD_ADD, HOLD_CREATE, HOLD_MOH } hold_step;

typedef struct hold_req {
    leg *l; /* referenced */
    hold_done_fn done;
    hold_step step;
    bool retried;
    char bridge[ARI_EVENT_MAX_ID + 1];
    char moh_class[QCFG_ID_MAX + 1];
} hold_req;

static void hold_send(hold_req *h);

static void hold_finish(hold_req *h, bool ok)
{
    if (!ok)
        LOG_W(MOD, "chan=%s bridge=%s could not join the holding bridge", h->l->chan,
              h->bridge);
    leg *l = h->l;
    h->done(l, ok);
    free(h);
    if (--l->busy == 0)
        call_leg_idle(l);
    leg_unref(l);
}

/* ---- who is in which holding bridge ---------------------------------------- */

static intptr_t members(node *n, const char *bridge)
{
    return (intptr_t)strmap_get(n->holds, bridge);
}

static void set_members(node *n, const char *bridge, intptr_t count)
{
    if (count > 0)
        strmap_put(n->holds, bridge, (void *)count);
    else
        strmap_del(n->holds, bridge);
}

void hold_left(leg *l)
{
    if (!l->hold_bridge)
        return;
    set_members(l->n, l->hold_bridge, members(l->n, l->hold_bridge) - 1);
    free(l->hold_bridge);
    l->hold_bridge = NULL;
}

/* l is in `bridge` now; returns true if it is the only one of our legs
 * there (the bridge was empty: its MOH must be started again). */
static bool joined(leg *l, const char *bridge)
{
    if (l->hold_bridge && strcmp(l->hold_bridge, bridge) == 0)
        return false; /* it was there already */
    hold_left(l);
    char *copy = strdup(bridge);
    if (!copy)
        return true; /* untracked: MOH every time for it */
    l->hold_bridge = copy;
    intptr_t n = members(l->n, bridge) + 1;
    set_members(l->n, bridge, n);
    return n == 1;
}

static void on_answer(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    hold_req *h = pd;
    bool ok2xx = r->status >= 200 && r->status < 300;
    switch (h->step) {
    case HOLD_ADD:
        if (ok2xx && h->l->ended) {
            hold_finish(h, true); /* gone meanwhile: nothing to track */
            return;
        } else if (ok2xx && !joined(h->l, h->bridge)) {
            hold_finish(h, true); /* others of ours are there: MOH is playing */
            return;
        } else if (ok2xx) {
            h->step = HOLD_MOH;
        } else if (r->status == 404 && !h->retried) {
            h->step = HOLD_CREATE;
            h->retried = true;
        } else {
            hold_finish(h, false);
            return;
        }
        break;
    case HOLD_CREATE:
        if (!ok2xx && r->status != 500) { /* 500: it exists already */
            hold_finish(h, false);
            return;
        }
        if (ok2xx) /* a new bridge: whatever we counted in the old one is gone */
            set_members(h->l->n, h->bridge, 0);
        h->step = HOLD_ADD;
        break;
    case HOLD_MOH:
        hold_finish(h, true); /* MOH is best effort: the caller is held either way */
        return;
    }
    hold_send(h);
}

static void hold_send(hold_req *h)
{
    ari_rest *rest = h->l->n->rest;
    const char *chans[] = {h->l->chan};
    int rc = ARIQ_EINVAL;
    switch (h->step) {
    case HOLD_ADD:
        rc = ari_bridge_add_channel(rest, h->bridge, chans, 1, NULL, on_answer, h);
        break;
    case HOLD_CREATE:
        rc = ari_bridge_create(rest, h->bridge, "holding", h->bridge, on_answer, h);
        break;
    case HOLD_MOH:
        rc = ari_bridge_moh_start(rest, h->bridge, h->moh_class, on_answer, h);
        break;
    }
    if (rc != 0)
        hold_finish(h, false);
}

/* The holding bridge of l's channel for moh_class: its shard of them. */
static void bridge_of(const leg *l, const char *moh_class, char *out, size_t len)
{
    uint32_t hash = 2166136261u; /* FNV-1a of the channel id */
    for (const char *p = l->chan; *p; p++)
        hash = (hash ^ (unsigned char)*p) * 16777619u;
    snprintf(out, len, "ariq-hold-%s-%s-%u", l->n->cfg->node_id, moh_class,
             (unsigned)(hash % HOLD_SHARDS));
}

void hold_join(leg *l, const char *moh_class, hold_done_fn done)
{
    hold_req *h = calloc(1, sizeof *h);
    if (!h) {
        done(l, false);
        return;
    }
    h->l = leg_ref(l);
    l->busy++;
    h->done = done;
    snprintf(h->moh_class, sizeof h->moh_class, "%s", moh_class);
    bridge_of(l, moh_class, h->bridge, sizeof h->bridge);
    hold_send(h);
}

bool hold_adopt(leg *l, const char *bridge, const char *moh_class)
{
    char want[ARI_EVENT_MAX_ID + 1];
    bridge_of(l, moh_class, want, sizeof want);
    if (!bridge || strcmp(bridge, want) != 0)
        return false;
    joined(l, want); /* its music plays on: the bridge was never empty */
    return true;
}
