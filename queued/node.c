#include "node.h"
#include "node_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/strmap.h"
#include "model/entry.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "node"

/* ---- legs ---------------------------------------------------------------- */

void leg_init(leg *l, const leg_ops *ops, node *n, const char *chan)
{
    memset(l, 0, sizeof *l);
    l->ops = ops;
    l->n = n;
    l->refs = 1;
    snprintf(l->chan, sizeof l->chan, "%s", chan);
}

leg *leg_ref(leg *l)
{
    l->refs++;
    return l;
}

void leg_unref(leg *l)
{
    if (l && --l->refs == 0)
        l->ops->destroy(l);
}

int leg_register(leg *l)
{
    if (strmap_get(l->n->legs, l->chan))
        return ARIQ_EBUSY;
    int rc = strmap_put(l->n->legs, l->chan, l);
    if (rc == 0)
        leg_ref(l);
    return rc;
}

void leg_end(leg *l)
{
    if (l->ended)
        return;
    l->ended = true;
    leg_ref(l); /* on_end may drop the last reference but one */
    answer_cancel(l);
    hold_left(l);
    if (l->ops->on_end)
        l->ops->on_end(l);
    if (strmap_get(l->n->legs, l->chan) == l) {
        strmap_del(l->n->legs, l->chan);
        leg_unref(l);
    }
    leg_unref(l);
}

/* Every leg, each with a reference taken (drop them, free v): walking the
 * registry while legs end would change it under the walk. */
typedef struct leg_list {
    leg **v;
    size_t n;
} leg_list;

static void collect_leg(const char *key, void *value, void *ud)
{
    (void)key;
    leg_list *ll = ud;
    ll->v[ll->n++] = leg_ref(value);
}

static leg_list collect_legs(node *n)
{
    size_t count = strmap_count(n->legs);
    leg_list ll = {count ? calloc(count, sizeof *ll.v) : NULL, 0};
    if (ll.v)
        strmap_each(n->legs, collect_leg, &ll);
    return ll;
}

/* ---- ARI events ------------------------------------------------------------ */

typedef void (*event_fn)(node *n, const ari_event *ev);

void node_stasis_start(node *n, const ari_event *ev)
{
    n->stats.stasis_starts++;
    const char *chan = ev->channel.id;
    leg *l = strmap_get(n->legs, chan);
    if (l && leg_is_link(l)) { /* a link we dialled was answered */
        leg_ref(l);
        l->ops->on_event(l, ev);
        leg_unref(l);
        return;
    }
    if (l) {
        LOG_W(MOD, "chan=%s StasisStart for a channel that has a leg: ignored", chan);
        return;
    }
    entry_args args;
    char why[256];
    if (entry_args_parse(ev->args, ev->nargs, ev->channel.caller_number, &args, why,
                         sizeof why) != 0) {
        turnaway_start(n, chan, "INVALIDARGS", why);
        return;
    }
    for (size_t i = 0; i < args.nqueues; i++) {
        if (!qcfg_queue_find(n->cfg, args.queues[i])) {
            snprintf(why, sizeof why, "queue '%s' is not configured on this node",
                     args.queues[i]);
            turnaway_start(n, chan, "UNKNOWNQUEUE", why);
            return;
        }
    }
    switch (args.role) {
    case ENTRY_CALLER:
        caller_start(n, ev, &args);
        break;
    case ENTRY_AGENT:
        agent_start(n, ev, &args);
        break;
    case ENTRY_LINK:
        link_in_start(n, ev, &args);
        break;
    default: /* linkout: our dialled end of a link, whose call has ended */
        link_out_stray(n, ev);
        break;
    }
}

leg *node_leg(node *n, const char *chan)
{
    return chan ? strmap_get(n->legs, chan) : NULL;
}

bool node_will_carry(node *n, const qs_pairing *p, size_t np, const char *chan)
{
    for (size_t i = 0; i < np; i++) {
        if (strcmp(p[i].caller_channel, chan) && strcmp(p[i].agent_channel, chan))
            continue;
        if (strcmp(p[i].caller_node, n->cfg->node_id) || strcmp(p[i].agent_node, n->cfg->node_id))
            return false; /* across nodes: chan waits in the holding bridge */
        leg *c = node_leg(n, p[i].caller_channel);
        leg *a = node_leg(n, p[i].agent_channel);
        return c && a && leg_caller(c) && leg_agent(a) && !c->ended && !a->ended;
    }
    return false;
}

/* A party in call k may take pairing p if p is newer: then k, which Redis
 * has ended already, goes. False if p is stale (older than k's). */
static bool take_over(call *k, const qs_pairing *p, leg *party)
{
    if (!k)
        return true;
    if (pairing_seq(call_pairing(k)) >= pairing_seq(p->pairing)) {
        LOG_I(MOD, "pairing=%s stale: %s is in pairing %s", p->pairing, party->chan,
              call_pairing(k));
        return false;
    }
    call_superseded(k, party);
    return true;
}

/* Carries out the pairings whose caller is ours (see node_int.h). A party
 * whose leg has ended is on its way out: its own leave / logoff fixes the
 * pairing in Redis. */
/* Keeps pairings that arrive while the node is adopting its legs. */
static void defer_pairings(node *n, const qs_pairing *p, size_t np)
{
    if (np == 0)
        return; /* p may be NULL then (a reply without pairings) */
    if (n->ndeferred + np > n->deferred_cap) {
        size_t cap = (n->ndeferred + np) * 2;
        qs_pairing *v = realloc(n->deferred, cap * sizeof *v);
        if (!v) {
            LOG_E(MOD, "node=%s out of memory: %zu pairings dropped (their parties' own ends "
                       "undo them)", n->cfg->node_id, np);
            return;
        }
        n->deferred = v;
        n->deferred_cap = cap;
    }
    memcpy(n->deferred + n->ndeferred, p, np * sizeof *p);
    n->ndeferred += np;
}

void node_take_pairings(node *n, const qs_pairing *p, size_t np)
{
    const char *me = n->cfg->node_id;
    if ((n->adopting || n->ari_down_since) && !n->closing) {
        /* adopting: the legs do not exist yet; events WebSocket down: a
         * link dialled now would find no app (Stasis fails without it) */
        defer_pairings(n, p, np);
        return;
    }
    for (size_t i = 0; i < np && !n->closing; i++) {
        if (pairing_seq(p[i].pairing) <= n->adopt_seq)
            continue; /* settled by the re-adoption */
        if (strcmp(p[i].caller_node, me) != 0) {
            if (strcmp(p[i].agent_node, me) == 0)
                link_expect(n, &p[i]); /* our agent: its link will come */
            continue; /* its caller's node carries it out (Redis told it) */
        }
        caller *c = leg_caller(node_leg(n, p[i].caller_channel));
        if (!c || ((leg *)c)->ended) {
            LOG_W(MOD, "pairing=%s caller=%s is not a live leg here: left to its leave",
                  p[i].pairing, p[i].caller_channel);
            continue;
        }
        if (strcmp(p[i].agent_node, me) != 0) {
            if (take_over(caller_call(c), &p[i], (leg *)c))
                call_start_out(n, &p[i], c);
            continue;
        }
        agent *a = leg_agent(node_leg(n, p[i].agent_channel));
        if (!a || ((leg *)a)->ended) {
            LOG_W(MOD, "pairing=%s agent=%s is not a live leg here: left to its logoff",
                  p[i].pairing, p[i].agent);
            continue;
        }
        if (take_over(caller_call(c), &p[i], (leg *)c) &&
            take_over(agent_call(a), &p[i], (leg *)a))
            call_start(n, &p[i], c, a);
    }
}

/* ---- the pairing sweep ------------------------------------------------------- */

static void on_swept(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    node *n = pd;
    if (!err)
        node_take_pairings(n, res->pairings, res->npairings);
}

/* Every sweep_ms: pair in every queue, so nothing waits on a missed trigger
 * (a pairing made impossible earlier by a race, an agent freed elsewhere). */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    node *n = arg;
    link_expect_expire(n, false);
    if (!store_is_ready(n->store) || n->ari_down_since || n->adopting || n->draining ||
        n->restoring)
        return; /* no pairing a node cannot carry out (or will not: draining) */
    for (size_t i = 0; i < n->cfg->nqueues; i++)
        qs_pair_queue(n->qs, n->cfg->queues[i].name, on_swept, n);
}

/* Any other event: to the leg that owns its channel, if one does. */
static void route_to_leg(node *n, const ari_event *ev)
{
    const char *chan = ari_event_channel_id(ev);
    leg *l = chan ? strmap_get(n->legs, chan) : NULL;
    if (!l) {
        n->stats.unowned++;
        LOG_D(MOD, "event=%s chan=%s owner=none", ev->type_name, chan ? chan : "-");
        return;
    }
    leg_ref(l); /* the handler may end the leg */
    l->ops->on_event(l, ev);
    leg_unref(l);
}

static const event_fn event_handlers[ARI_EV__COUNT] = {
    [ARI_EV_STASIS_START] = node_stasis_start,
};

static void on_event(ari_stream *s, const ari_event *ev, void *ud)
{
    (void)s;
    node *n = ud;
    n->stats.events++;
    event_fn fn = (unsigned)ev->type < ARI_EV__COUNT ? event_handlers[ev->type] : NULL;
    (fn ? fn : route_to_leg)(n, ev);
}

/* GET /channels answered after a reconnect: every leg whose channel is no
 * longer there hung up while the WebSocket was down. It is told so with a
 * StasisEnd of its own (the events themselves are lost); a leg whose channel
 * is there checks what else it may have missed (resync: a playback that
 * ended, a link that was answered). Missed events are inferred from what
 * ARI holds now, never assumed. */
static void replay_deferred(node *n)
{
    size_t nd = n->ndeferred;
    n->ndeferred = 0;
    if (nd && !n->adopting && !n->ari_down_since)
        node_take_pairings(n, n->deferred, nd); /* not deferred again: both are over */
    else
        n->ndeferred = nd;
}

static void resync_legs(node *n, const ari_response *r);

static void on_channels_listed(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    node *n = pd;
    if (n->closing)
        return;
    resync_legs(n, r);
    replay_deferred(n); /* pairings that came while the WebSocket was down */
}

static void resync_legs(node *n, const ari_response *r)
{
    strmap *alive = NULL;
    if (r->status != 200 || !json_is_array(r->json) || !(alive = strmap_new()))
        return;
    size_t i;
    json_t *c;
    json_array_foreach(r->json, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        if (id)
            strmap_put(alive, id, c);
    }
    leg_list ll = collect_legs(n);
    size_t gone_n = 0;
    for (size_t k = 0; k < ll.n; k++) {
        leg *l = ll.v[k];
        const json_t *ch = strmap_get(alive, l->chan);
        gone_n += !l->ended && !ch;
        if (!l->ended && !ch) {
            LOG_W(MOD, "chan=%s role=%s gone while the events WebSocket was down", l->chan,
                  l->ops->role);
            ari_event gone = {.type = ARI_EV_STASIS_END, .type_name = "StasisEnd(inferred)"};
            l->ops->on_event(l, &gone);
        } else if (!l->ended && l->ops->resync) {
            l->ops->resync(l, ch);
        }
        leg_unref(l);
    }
    LOG_I(MOD, "node=%s reconciled after the events WebSocket was down: %zu legs checked, "
               "%zu gone meanwhile",
          n->cfg->node_id, ll.n, gone_n);
    free(ll.v);
    strmap_free(alive);
}

static void on_filtered(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    node *n = pd;
    if (r->status != 200 && r->err != ARIQ_ECLOSED)
        LOG_W(MOD, "node=%s event filter not set (%ld %s): every event type comes",
              n->cfg->node_id, r->status, ari_response_message(r));
}

/* The event types a node acts on. Asterisk sends an app every event of its
 * channels and bridges (ChannelVarset, ChannelDialplan, Dial, bridge moves,
 * ...), four or five times as many as these; filtered at the source they
 * are neither serialized, sent nor parsed. */
static const char *const wanted_events[] = {
    "StasisStart",       "StasisEnd",      "ChannelHangupRequest", "ChannelDestroyed",
    "ChannelDtmfReceived", "PlaybackFinished", "RecordingFinished",  "RecordingFailed",
    "ApplicationReplaced"};

static void on_ari_connected(ari_stream *s, void *ud)
{
    (void)s;
    node *n = ud;
    LOG_I(MOD, "node=%s ari=connected app=%s", n->cfg->node_id, n->cfg->app);
    n->ari_down_since = 0;
    ari_application_filter(n->rest, n->cfg->app, wanted_events,
                           sizeof wanted_events / sizeof wanted_events[0], on_filtered, n);
    if (n->ari_connects++ > 0) { /* a reconnect: what happened meanwhile? */
        ari_channel_list(n->rest, on_channels_listed, n);
        return;
    }
    /* the first connection: take over what is there before acting on events */
    n->adopting = true;
    ari_stream_hold(n->events, true);
    adopt_start(n->adopt);
}

void node_adopted(node *n, int64_t seq)
{
    n->adopting = false;
    n->adopt_seq = seq;
    ari_stream_hold(n->events, false);
    replay_deferred(n);
    on_sweep(-1, 0, n);
}

static void on_ari_disconnected(ari_stream *s, const char *reason, void *ud)
{
    (void)s;
    node *n = ud;
    LOG_W(MOD, "node=%s ari=disconnected reason=\"%s\"", n->cfg->node_id, reason);
    if (!n->ari_down_since)
        n->ari_down_since = clock_mono_ms();
}

/* ---- Redis ----------------------------------------------------------------- */

static int open_events(node *n, char *err, size_t errlen);
static int restore(node *n);
static void flush_and_sweep(node *n);

static void maybe_open_events(node *n)
{
    char err[QCFG_URL_MAX + 256];
    if (!n->events && n->store_up && n->cluster_up && open_events(n, err, sizeof err) != 0)
        LOG_E(MOD, "node=%s cannot take calls: %s", n->cfg->node_id, err);
}

void node_cluster_ready(node *n)
{
    n->cluster_up = true;
    maybe_open_events(n);
}

/* Redis is ready. The first time (and once the command stream is being
 * read) the node starts taking calls: it attaches the events WebSocket only
 * now, so that no caller arrives before its queue can be written (until then
 * Stasis() fails and the dialplan goes on) and no pairing made for it by
 * another node can be missed. */
static void on_store_ready(store *s, void *ud)
{
    (void)s;
    node *n = ud;
    LOG_I(MOD, "node=%s redis=ready", n->cfg->node_id);
    bool again = n->store_up;
    n->store_up = true;
    n->store_reconnected |= again;
    cluster_redis_back(n->cl);
    cluster_beat(n->cl);
    maybe_open_events(n);
    if (again && n->events && !n->adopting && !n->restoring && restore(n) == 0)
        return; /* flushes once Redis has every party this node serves */
    flush_and_sweep(n);
}

static void on_node_pairings(queue_store *qs, int err, const qs_result *res, void *pd)
{
    node *n = pd;
    if (err) {
        LOG_W(MOD, "node=%s cannot read its pairings: %s (%s)", n->cfg->node_id,
              ariq_strerror(err), qs_errmsg(qs));
        return;
    }
    if (res->npairings)
        LOG_I(MOD, "node=%s %zu pairings in Redis to carry out (or already carried)",
              n->cfg->node_id, res->npairings);
    node_take_pairings(n, res->pairings, res->npairings);
}

/* Sends what happened while Redis was away, in order, then pairs. After a
 * reconnect the node also reads its pairings (sent after the held writes,
 * so it sees what they did): one whose reply was lost with the connection
 * is carried out now, one it carries already is stale (take_over). */
static void flush_and_sweep(node *n)
{
    size_t held = qs_held_count(n->qs);
    size_t left = qs_flush(n->qs);
    if (held)
        LOG_I(MOD, "node=%s redis=back sent %zu writes held meanwhile (%zu still wait)",
              n->cfg->node_id, held - left, left);
    if (!n->events || n->adopting || left)
        return;
    if (n->store_reconnected && qs_node_pairings(n->qs, on_node_pairings, n) != 0)
        LOG_W(MOD, "node=%s cannot ask for its pairings: %s", n->cfg->node_id,
              qs_errmsg(n->qs));
    on_sweep(-1, 0, n); /* pairing resumes at once */
}

static void on_restored(queue_store *qs, int err, const qs_restore_result *res, void *pd)
{
    node *n = pd;
    n->restoring = false;
    qs_hold_writes(qs, false);
    if (n->closing)
        return;
    if (err) {
        LOG_E(MOD, "node=%s restore failed: %s (%s)", n->cfg->node_id, ariq_strerror(err),
              qs_errmsg(qs));
    } else if (res->restored_calls || res->restored_agents) {
        n->redis_lost = true;
        LOG_E(MOD, "node=%s Redis came back without its data: re-registered %lld callers "
                   "and %lld agents with their places (seq now %lld)",
              n->cfg->node_id, (long long)res->restored_calls,
              (long long)res->restored_agents, (long long)res->seq);
    }
    flush_and_sweep(n);
}

/* Redis is back after an outage: every waiting caller and free agent of
 * this node is registered again if Redis lost it (qs_restore), with the
 * writes held until then, so a caller arriving now cannot take a number
 * below those it lost. */
static int restore(node *n)
{
    leg_list ll = collect_legs(n);
    size_t cap = ll.n ? ll.n : 1;
    qs_restore_call *calls = calloc(cap, sizeof *calls);
    qs_restore_agent *agents = calloc(cap, sizeof *agents);
    const char **queues = calloc(cap * QS_QUEUES_MAX, sizeof *queues);
    size_t nc = 0, na = 0;
    int64_t maxseq = n->adopt_seq, seq;
    for (size_t i = 0; calls && agents && queues && i < ll.n; i++) {
        leg *l = ll.v[i];
        const char **qv = queues + i * QS_QUEUES_MAX;
        call *k = leg_caller(l) ? caller_call(leg_caller(l))
                  : leg_agent(l) ? agent_call(leg_agent(l))
                                 : NULL;
        if (k && pairing_seq(call_pairing(k)) > maxseq)
            maxseq = pairing_seq(call_pairing(k));
        if (leg_caller(l) && caller_restore_info(leg_caller(l), &calls[nc], qv, &seq))
            nc++;
        else if (leg_agent(l) && agent_restore_info(leg_agent(l), &agents[na], qv, &seq))
            na++;
        else
            continue;
        if (seq > maxseq)
            maxseq = seq;
    }
    int rc = calls && agents && queues ? 0 : ARIQ_ENOMEM;
    if (rc == 0) {
        qs_hold_writes(n->qs, true);
        rc = qs_restore(n->qs, maxseq, calls, nc, agents, na, on_restored, n);
        if (rc != 0)
            qs_hold_writes(n->qs, false);
    }
    n->restoring = rc == 0;
    if (rc != 0)
        LOG_E(MOD, "node=%s cannot re-register its parties: %s (%s)", n->cfg->node_id,
              ariq_strerror(rc), qs_errmsg(n->qs));
    for (size_t i = 0; i < ll.n; i++)
        leg_unref(ll.v[i]);
    free(ll.v);
    free(calls);
    free(agents);
    free(queues);
    return rc;
}

static void on_store_down(store *s, const char *reason, void *ud)
{
    (void)s;
    node *n = ud;
    LOG_W(MOD, "node=%s redis=down reason=\"%s\": parties keep waiting, what they do is "
               "held in order until it is back",
          n->cfg->node_id, reason);
}

/* ---- life cycle ------------------------------------------------------------ */

static int open_store(node *n, char *err, size_t errlen)
{
    store_config sc;
    store_config_init(&sc);
    int rc = store_config_set_url(&sc, n->cfg->redis_url, err, errlen);
    if (rc)
        return rc;
    if (n->cfg->redis_password[0])
        snprintf(sc.password, sizeof sc.password, "%s", n->cfg->redis_password);
    snprintf(sc.ns, sizeof sc.ns, "%s", n->cfg->namespace_);
    snprintf(sc.scripts_dir, sizeof sc.scripts_dir, "%s", n->cfg->scripts_dir);
    /* Redis back after a long outage: pairing resumes within a second, not
     * after the store's default 5 s cap (one connect a second is nothing) */
    sc.backoff_max_ms = 1000;
    store_callbacks cbs = {.on_ready = on_store_ready, .on_down = on_store_down};
    rc = store_new(n->base, &sc, &cbs, n, &n->store, err, errlen);
    if (rc == 0)
        rc = cluster_new(n, &sc, &n->cl, err, errlen);
    if (rc)
        return rc;
    qs_config qc;
    qs_config_init(&qc);
    snprintf(qc.node, sizeof qc.node, "%s", n->cfg->node_id);
    rc = qs_new(n->store, &qc, &n->qs);
    if (rc)
        snprintf(err, errlen, "queue store: %s", ariq_strerror(rc));
    return rc;
}

static int start_sweep(node *n, char *err, size_t errlen)
{
    n->sweep = event_new(n->base, -1, EV_PERSIST, on_sweep, n);
    struct timeval tv = {n->cfg->sweep_ms / 1000, (n->cfg->sweep_ms % 1000) * 1000};
    if (!n->sweep || event_add(n->sweep, &tv) != 0) {
        snprintf(err, errlen, "cannot arm the pairing sweep");
        return ARIQ_ENOMEM;
    }
    return 0;
}

static int open_ari(node *n, char *err, size_t errlen)
{
    const qcfg *c = n->cfg;
    ari_client_config ac = {.url = c->ari_url, .user = c->ari_user, .password = c->ari_password};
    n->ari = ari_client_new(n->base, &ac);
    if (!n->ari) {
        snprintf(err, errlen, "ari_url '%s': cannot create the REST client", c->ari_url);
        return ARIQ_EINVAL;
    }
    n->rest = cluster_timed_rest(n, ari_client_rest(n->ari));
    return 0;
}

static int open_events(node *n, char *err, size_t errlen)
{
    const qcfg *c = n->cfg;
    ari_stream_cfg sc = {.url = c->ari_url,
                         .app = c->app,
                         .user = c->ari_user,
                         .password = c->ari_password,
                         .on_event = on_event,
                         .on_connected = on_ari_connected,
                         .on_disconnected = on_ari_disconnected,
                         .ud = n};
    int rc = ari_stream_new(n->base, &sc, &n->events);
    if (rc)
        snprintf(err, errlen, "ari_url '%s': cannot start the events WebSocket: %s", c->ari_url,
                 ariq_strerror(rc));
    return rc;
}

int node_new(struct event_base *base, const qcfg *cfg, node **out, char *err, size_t errlen)
{
    node *n = calloc(1, sizeof *n);
    if (!n)
        return ARIQ_ENOMEM;
    n->base = base;
    n->cfg = cfg;
    int rc = ARIQ_ENOMEM;
    if (!(n->legs = strmap_new()) || !(n->holds = strmap_new()) || !(n->expect = strmap_new()))
        goto fail;
    if ((rc = open_store(n, err, errlen)) != 0 || (rc = open_ari(n, err, errlen)) != 0 ||
        (rc = start_sweep(n, err, errlen)) != 0 || (rc = adopt_new(n, &n->adopt)) != 0)
        goto fail;
    LOG_I(MOD, "node=%s queues=%zu app=%s starting", cfg->node_id, cfg->nqueues, cfg->app);
    *out = n;
    return 0;
fail:
    node_free(n);
    return rc;
}

/* Ends every leg, and lets every call go (they hold their legs). Pending
 * callbacks then complete with ECLOSED as the clients are freed, and the
 * last reference frees each leg. */
static void end_all_legs(node *n)
{
    leg_list ll = collect_legs(n);
    for (size_t k = 0; k < ll.n; k++) {
        leg *l = ll.v[k];
        call *c = leg_caller(l) ? caller_call(leg_caller(l))
                  : leg_agent(l) ? agent_call(leg_agent(l))
                                 : NULL;
        if (c)
            call_detach(c);
    }
    for (size_t k = 0; k < ll.n; k++) {
        leg_end(ll.v[k]);
        leg_unref(ll.v[k]);
    }
    free(ll.v);
}

/* The order matters: pending callbacks run during each free and may try to
 * start more work. ARI goes first (its callbacks may still reach Redis), then
 * the REST handle is cleared so later attempts fail cleanly (EINVAL), then
 * the store (its callbacks get EIO; new commands are refused while it
 * closes), and the queue store last, with nothing pending. */
void node_free(node *n)
{
    if (!n)
        return;
    n->closing = true;
    qs_shutdown(n->qs); /* replies lost as the store closes are errors, not resent */
    if (n->legs)
        end_all_legs(n);
    if (n->sweep)
        event_free(n->sweep);
    if (n->drain_timer)
        event_free(n->drain_timer);
    ari_stream_free(n->events);
    ari_client_free(n->ari); /* pending requests complete with ECLOSED */
    n->ari = NULL;
    n->rest = NULL;
    store_free(n->store); /* heartbeat and reap callbacks run, with the cluster alive */
    cluster_free(n->cl);  /* its reads end too; closing: they start nothing */
    qs_free(n->qs);
    adopt_free(n->adopt); /* after the clients: their callbacks may still reach it */
    free(n->deferred);
    strmap_free(n->legs);
    strmap_free(n->holds);
    if (n->expect)
        link_expect_expire(n, true);
    strmap_free(n->expect);
    free(n);
}

void node_get_stats(const node *n, node_stats *out)
{
    *out = n->stats;
}

/* ---- graceful stop ---------------------------------------------------------- */

static void drained(node *n, const char *why)
{
    node_drained_fn done = n->drained;
    if (!done)
        return;
    n->drained = NULL;
    LOG_I(MOD, "node=%s drained: %s; %zu call(s) left to the restart", n->cfg->node_id, why,
          n->ncalls);
    done(n, n->drained_ud);
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    node *n = arg;
    drained(n, n->ncalls ? "drain_timeout_s passed" : "no call left");
}

static void on_drain_flag(queue_store *qs, int err, const qs_result *res, void *pd)
{
    node *n = pd;
    if (err)
        LOG_W(MOD, "node=%s drain not recorded in Redis (%s): other nodes may still pair "
                   "its parties", n->cfg->node_id, qs_errmsg(qs));
    else
        LOG_I(MOD, "node=%s draining in Redis: %s", n->cfg->node_id, res->outcome);
}

void node_call_ended(node *n)
{
    if (n->ncalls)
        n->ncalls--;
    if (n->draining && n->ncalls == 0 && n->drained) {
        /* from the loop, not from inside the call's end */
        struct timeval now = {0, 0};
        evtimer_add(n->drain_timer, &now);
    }
}

void node_drain(node *n, node_drained_fn done, void *ud)
{
    if (n->draining || n->closing)
        return;
    n->draining = true;
    n->drained = done;
    n->drained_ud = ud;
    uint64_t ms = n->cfg->drain_timeout_s > 0
                      ? clock_scaled_ms((uint64_t)n->cfg->drain_timeout_s * 1000u)
                      : 0;
    LOG_I(MOD, "node=%s draining: no new call; %zu in progress, up to %llu ms", n->cfg->node_id,
          n->ncalls, (unsigned long long)ms);
    /* the flag outlives the deadline by a minute: a node killed while draining
     * has its parties paired again by then (or its restart clears it) */
    if (ms > 0 && qs_node_drain(n->qs, true, (int64_t)ms + 60000, on_drain_flag, n) != 0)
        LOG_W(MOD, "node=%s drain not recorded: Redis is not reachable", n->cfg->node_id);
    n->drain_timer = evtimer_new(n->base, on_drain_deadline, n);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (!n->drain_timer || ms == 0 || n->ncalls == 0) {
        struct timeval now = {0, 0};
        tv = now;
    }
    if (!n->drain_timer || evtimer_add(n->drain_timer, &tv) != 0)
        drained(n, "cannot wait");
}
