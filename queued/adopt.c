/* adopt.c - taking over what the node's Asterisk and Redis hold when the
 * node starts: re-adoption after a crash (SIGKILL) or a restart.
 *
 * A node that starts may find its Asterisk full of channels in its Stasis
 * app (callers waiting with MOH, agents, calls in progress) and Redis full
 * of their records. Before it acts on any event it takes the whole picture:
 *
 *   step       on                                   next
 *   LISTING    events WebSocket up (held: events    RECONCILING  (qs_reconcile with
 *              wait in order); GET /channels and                  the live channels and
 *              GET /bridges both answered                         the calls whose mixing
 *                                                                 bridge holds both sides)
 *   LISTING    a listing failed                     LISTING again in 1 s
 *   RECONCILING  the script's answer: what is left  DONE (legs built, the events
 *                                                         released, a sweep)
 *   RECONCILING  Redis refused / unreachable        LISTING again in 1 s
 *
 * Redis does the deciding in one atomic script (queue.lua `reconcile`):
 * records of channels that are gone end as if they had hung up (ABANDON,
 * COMPLETECALLER, AGENTLOGOFF), pairings half made are rolled back (the
 * caller keeps its place) or unlinked, calls whose mixing bridge holds both
 * our sides are kept (CONNECT recorded if the crash came between the move
 * and its report). The node then builds a leg for every record left:
 * waiting callers keep their place, timeout and announcement schedule;
 * agents stay free, paused or in wrapup; kept calls go on in CONNECTED with
 * their recording and the agent's keys. Then it cleans what nothing owns:
 * live channels in its app with no record start over as if they had just
 * arrived (they had no place yet), stray link legs are hung up, and mixing
 * bridges of calls not kept are destroyed.
 *
 * Nothing is acted on twice or missed: the events WebSocket is held from
 * its connection until the legs exist (a hangup after GET /channels reaches
 * the adopted leg), and pairings delivered meanwhile (command stream,
 * replies) are kept and replayed after, those at or below the script's
 * sequence number dropped: the script already settled them. */
#include "node_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "adopt"
#define RETRY_MS 1000

struct adoption {
    node *n;
    json_t *chans;   /* GET /channels (owned) */
    json_t *bridges; /* GET /bridges (owned) */
    strmap *where;   /* channel id -> bridge id (borrowed from bridges) */
    strmap *hung;    /* channels hung up by the adoption (keys only) */
    int pending;     /* listings in flight */
    bool failed;
    uint64_t t0;
    struct event *retry;
};

static void list(adoption *ad);

static void fail_and_retry(adoption *ad, const char *why)
{
    LOG_W(MOD, "node=%s re-adoption postponed %d ms: %s", ad->n->cfg->node_id, RETRY_MS, why);
    struct timeval tv = {RETRY_MS / 1000, (RETRY_MS % 1000) * 1000};
    evtimer_add(ad->retry, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    list(arg);
}

/* ---- what ARI holds ------------------------------------------------------------ */

static const char *str_of(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

/* The Stasis() arguments of a channel in our app, from its dialplan
 * app_data ("queue,caller,sales" for app "queue"), split into args; false
 * if the channel is not in our app. */
static bool our_args(const node *n, const json_t *ch, char *buf, size_t len, const char **args,
                     size_t *nargs)
{
    const json_t *dp = json_object_get(ch, "dialplan");
    const char *app = str_of(dp, "app_name"), *data = str_of(dp, "app_data");
    size_t al = strlen(n->cfg->app);
    if (strcmp(app, "Stasis") != 0 || strncmp(data, n->cfg->app, al) != 0 ||
        (data[al] != ',' && data[al] != '\0'))
        return false;
    snprintf(buf, len, "%s", data[al] ? data + al + 1 : "");
    *nargs = 0;
    for (char *p = buf; *p && *nargs < ARI_EVENT_MAX_ARGS;) {
        args[(*nargs)++] = p;
        char *comma = strchr(p, ',');
        if (!comma)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    return true;
}

/* ---- building the legs ---------------------------------------------------------- */

typedef struct tally {
    size_t callers, agents, calls, restarted, hung_up, bridges;
} tally;

/* The fields a caller's and an agent's record share. */
#define PARTY_BASE(ad, r, queues)                                                          \
    .chan = (r)->channel, .state = (r)->state, .queues = (queues), .nqueues = (r)->nqueues, \
    .bridge = strmap_get((ad)->where, (r)->channel)

static void queue_names(const char (*names)[QS_NAME_MAX + 1], size_t n, const char **out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = names[i];
}

static caller *adopt_caller(adoption *ad, const qs_call_rec *r, bool talking)
{
    const char *queues[QS_QUEUES_MAX];
    queue_names(r->queues, r->nqueues, queues);
    adopt_party p = {PARTY_BASE(ad, r, queues),
                     .priority = (int)r->priority,
                     .cid_num = r->cid_num,
                     .cid_name = r->cid_name,
                     .entered_ms = r->entered_ms,
                     .ann_ms = r->ann_ms,
                     .seq = r->seq,
                     .score = r->score};
    return caller_adopt(ad->n, &p, talking);
}

static agent *adopt_agent(adoption *ad, const qs_agent_rec *r, bool talking)
{
    const char *queues[QS_QUEUES_MAX];
    queue_names(r->queues, r->nqueues, queues);
    adopt_party p = {PARTY_BASE(ad, r, queues),
                     .id = r->agentid,
                     .name = r->chan_name,
                     .since_ms = r->since_ms,
                     .wrapup_until_ms = r->wrapup_until_ms,
                     .free_seq = r->free_seq};
    return agent_adopt(ad->n, &p, talking);
}

static const qs_call_rec *find_call(const qs_reconcile_result *res, const char *callid)
{
    for (size_t i = 0; i < res->ncalls; i++)
        if (strcmp(res->calls[i].callid, callid) == 0)
            return &res->calls[i];
    return NULL;
}

static const qs_agent_rec *find_agent(const qs_reconcile_result *res, const char *agentid)
{
    for (size_t i = 0; i < res->nagents; i++)
        if (strcmp(res->agents[i].agentid, agentid) == 0)
            return &res->agents[i];
    return NULL;
}

/* A call Redis kept: its legs and the call, CONNECTED. */
static void adopt_call(adoption *ad, const qs_reconcile_result *res, const qs_kept_pairing *kp,
                       tally *t)
{
    node *n = ad->n;
    const qs_pairing *p = &kp->p;
    const char *me = n->cfg->node_id;
    bool ours_c = strcmp(p->caller_node, me) == 0, ours_a = strcmp(p->agent_node, me) == 0;
    const qs_call_rec *cr = ours_c ? find_call(res, p->call) : NULL;
    const qs_agent_rec *ar = ours_a ? find_agent(res, p->agent) : NULL;
    if ((ours_c && !cr) || (ours_a && !ar)) {
        LOG_E(MOD, "pairing=%s kept without its party's record: left alone", p->pairing);
        return;
    }
    caller *c = cr ? adopt_caller(ad, cr, true) : NULL;
    agent *a = ar ? adopt_agent(ad, ar, true) : NULL;
    leg *link = NULL;
    char lo[ARI_EVENT_MAX_ID + 1];
    if (ours_c && !ours_a) {
        snprintf(lo, sizeof lo, "ariq-lo-%s", p->pairing);
        link = link_adopt(n, lo, p->pairing, true);
    } else if (ours_a && !ours_c) {
        link = link_adopt(n, kp->link_channel, p->pairing, false);
    }
    if ((cr && !c) || (ar && !a) || (!(ours_c && ours_a) && !link) ||
        !call_adopt(n, p, c, a, link, kp->rec, kp->rec_state))
        LOG_E(MOD, "pairing=%s could not be adopted (out of memory?)", p->pairing);
    else
        t->calls++;
    leg_unref(link); /* the call holds it */
}

static void on_hung_up(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    (void)pd;
    if (r->status != 204 && r->status != 404 && r->err != ARIQ_ECLOSED)
        LOG_W(MOD, "%s %s failed: %ld %s", r->method, r->path, r->status,
              ari_response_message(r));
}

static void hang_up(adoption *ad, const char *chan, const char *why, tally *t)
{
    LOG_I(MOD, "chan=%s hung up: %s", chan, why);
    ari_channel_hangup(ad->n->rest, chan, "normal", on_hung_up, NULL);
    strmap_put(ad->hung, chan, (void *)1); /* not a stray: done with */
    t->hung_up++;
}

/* Live channels of our app that no leg took: a caller still in a call's
 * mixing bridge had that call ended by the other side meanwhile (hung up),
 * other parties with no record start over (they had not taken a place yet,
 * or theirs was lost), links of calls that are over are hung up. Other
 * channels are not ours. */
static void adopt_strays(adoption *ad, tally *t)
{
    node *n = ad->n;
    size_t i;
    json_t *ch;
    json_array_foreach(ad->chans, i, ch)
    {
        char buf[ARI_EVENT_MAX_ARG * 2];
        const char *args[ARI_EVENT_MAX_ARGS];
        size_t nargs = 0;
        const char *id = str_of(ch, "id");
        if (!*id || node_leg(n, id) || strmap_get(ad->hung, id))
            continue; /* adopted, or hung up already */
        bool ours = our_args(n, ch, buf, sizeof buf, args, &nargs);
        if (strncmp(id, "ariq-lo-", 8) == 0 ||
            (ours && nargs > 0 && (!strcmp(args[0], "link") || !strcmp(args[0], "linkout")))) {
            hang_up(ad, id, "a link of no call of ours", t);
            continue;
        }
        if (!ours || nargs == 0)
            continue;
        const char *bridge = strmap_get(ad->where, id);
        if (!strcmp(args[0], "caller") && bridge && !strncmp(bridge, "ariq-mix-", 9)) {
            hang_up(ad, id, "its call ended while the node was down (no record left)", t);
            continue;
        }
        ari_event ev = {.type = ARI_EV_STASIS_START, .type_name = "StasisStart(adopted)",
                        .nargs = nargs};
        char err[128];
        if (ari_channel_from_json(ch, &ev.channel, err, sizeof err) != 0) {
            LOG_W(MOD, "chan=%s not adoptable: %s", id, err);
            continue;
        }
        ev.has_channel = true;
        memcpy(ev.args, args, nargs * sizeof *args);
        LOG_I(MOD, "chan=%s in Stasis(%s) with no record: it starts over", id,
              str_of(json_object_get(ch, "dialplan"), "app_data"));
        node_stasis_start(n, &ev);
        t->restarted++;
    }
}

/* Mixing bridges of ours that no adopted call uses: destroyed. Each one's
 * recordings are checked against ARI (recheck.c). */
static void adopt_bridges(adoption *ad, tally *t)
{
    size_t i;
    json_t *b;
    json_array_foreach(ad->bridges, i, b)
    {
        const char *id = str_of(b, "id");
        if (strncmp(id, "ariq-mix-", 9) != 0)
            continue;
        const json_t *chans = json_object_get(b, "channels");
        recheck_start(ad->n, id + 9, json_string_value(json_array_get(chans, 0)),
                      json_string_value(json_array_get(chans, 1)));
        bool used = false;
        size_t j;
        json_t *c;
        json_array_foreach(json_object_get(b, "channels"), j, c)
        {
            leg *l = node_leg(ad->n, json_string_value(c));
            used = used || (l && (leg_caller(l) ? caller_call(leg_caller(l)) != NULL
                                  : leg_agent(l) ? agent_call(leg_agent(l)) != NULL
                                                 : leg_is_link(l)));
        }
        if (!used) {
            LOG_I(MOD, "bridge=%s of no call: destroyed", id);
            ari_bridge_destroy(ad->n->rest, id, on_hung_up, NULL);
            t->bridges++;
        }
    }
}

static void adopt_done(adoption *ad)
{
    json_decref(ad->chans);
    json_decref(ad->bridges);
    ad->chans = ad->bridges = NULL;
    strmap_free(ad->where);
    strmap_free(ad->hung);
    ad->where = ad->hung = NULL;
}

static void on_reconciled(queue_store *qs, int err, const qs_reconcile_result *res, void *pd)
{
    adoption *ad = pd;
    node *n = ad->n;
    if (n->closing) {
        adopt_done(ad);
        return;
    }
    if (err) {
        char why[QS_ERRMSG_MAX + 64];
        snprintf(why, sizeof why, "reconcile: %s (%s)", ariq_strerror(err), qs_errmsg(qs));
        adopt_done(ad);
        fail_and_retry(ad, why);
        return;
    }
    tally t = {0};
    for (size_t i = 0; i < res->npairings; i++)
        adopt_call(ad, res, &res->pairings[i], &t);
    for (size_t i = 0; i < res->ncalls; i++) {
        const qs_call_rec *r = &res->calls[i];
        if (node_leg(n, r->channel))
            continue; /* a kept call's */
        if (strcmp(r->state, "waiting") != 0)
            LOG_E(MOD, "call=%s state=%s with no kept pairing: adopted as waiting", r->callid,
                  r->state);
        if (adopt_caller(ad, r, false))
            t.callers++;
    }
    for (size_t i = 0; i < res->nagents; i++) {
        const qs_agent_rec *r = &res->agents[i];
        if (node_leg(n, r->channel))
            continue;
        if (adopt_agent(ad, r, false))
            t.agents++;
    }
    for (size_t i = 0; i < res->nhangup; i++)
        hang_up(ad, res->hangup[i], "its call ended while the node was down", &t);
    adopt_strays(ad, &t);
    adopt_bridges(ad, &t);
    LOG_I(MOD,
          "node=%s adopted callers=%zu agents=%zu calls=%zu restarted=%zu hung_up=%zu "
          "bridges_destroyed=%zu redis: rolled_back=%lld unlinked=%lld completed=%lld "
          "abandoned=%lld logged_off=%lld seq=%lld in %llu ms",
          n->cfg->node_id, t.callers, t.agents, t.calls, t.restarted, t.hung_up, t.bridges,
          (long long)res->rolled_back, (long long)res->unlinked, (long long)res->completed,
          (long long)res->abandoned,
          (long long)res->logged_off, (long long)res->seq,
          (unsigned long long)(clock_mono_ms() - ad->t0));
    adopt_done(ad);
    node_adopted(n, res->seq);
}

/* ---- what Redis is asked ---------------------------------------------------------- */

static void reconcile(adoption *ad)
{
    size_t nchans = json_array_size(ad->chans), nkeep = 0, nalive = 0;
    const char **alive = calloc(nchans + 1, sizeof *alive);
    qs_keep *keep = calloc(json_array_size(ad->bridges) + 1, sizeof *keep);
    if (!alive || !keep || !(ad->where = strmap_new()) || !(ad->hung = strmap_new())) {
        free(alive);
        free(keep);
        adopt_done(ad);
        fail_and_retry(ad, "out of memory");
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(ad->chans, i, v)
    {
        const char *id = str_of(v, "id");
        if (*id)
            alive[nalive++] = id;
    }
    json_array_foreach(ad->bridges, i, v)
    {
        const char *id = str_of(v, "id");
        const json_t *chans = json_object_get(v, "channels");
        size_t j;
        json_t *c;
        json_array_foreach(chans, j, c)
            if (json_string_value(c))
                strmap_put(ad->where, json_string_value(c), (void *)id);
        if (strncmp(id, "ariq-mix-", 9) == 0 && json_array_size(chans) == 2 &&
            json_string_value(json_array_get(chans, 0)) &&
            json_string_value(json_array_get(chans, 1)))
            keep[nkeep++] = (qs_keep){id + 9, json_string_value(json_array_get(chans, 0)),
                                      json_string_value(json_array_get(chans, 1))};
    }
    LOG_I(MOD, "node=%s reconciling: %zu channels alive, %zu calls in mixing bridges",
          ad->n->cfg->node_id, nalive, nkeep);
    int rc = qs_reconcile(ad->n->qs, alive, nalive, keep, nkeep, on_reconciled, ad);
    free(alive);
    free(keep);
    if (rc != 0) {
        adopt_done(ad);
        fail_and_retry(ad, "Redis is not reachable");
    }
}

static void on_listed(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    adoption *ad = pd;
    bool chans = strcmp(r->path, "/channels") == 0;
    if (r->status == 200 && json_is_array(r->json))
        *(chans ? &ad->chans : &ad->bridges) = json_incref(r->json);
    else
        ad->failed = true;
    if (--ad->pending > 0 || ad->n->closing)
        return;
    if (ad->failed) {
        adopt_done(ad);
        if (r->err != ARIQ_ECLOSED)
            fail_and_retry(ad, "ARI did not list its channels and bridges");
        return;
    }
    reconcile(ad);
}

static void list(adoption *ad)
{
    ad->failed = false;
    ad->pending = 0;
    ad->t0 = clock_mono_ms();
    if (ari_channel_list(ad->n->rest, on_listed, ad) == 0)
        ad->pending++;
    if (ari_bridge_list(ad->n->rest, on_listed, ad) == 0)
        ad->pending++;
    if (ad->pending < 2) {
        ad->failed = true;
        if (ad->pending == 0)
            fail_and_retry(ad, "ARI requests refused");
    }
}

int adopt_new(node *n, adoption **out)
{
    adoption *ad = calloc(1, sizeof *ad);
    if (!ad)
        return ARIQ_ENOMEM;
    ad->n = n;
    ad->retry = evtimer_new(n->base, on_retry, ad);
    if (!ad->retry) {
        free(ad);
        return ARIQ_ENOMEM;
    }
    *out = ad;
    return 0;
}

void adopt_start(adoption *ad)
{
    LOG_I(MOD, "node=%s taking over what its Asterisk and Redis hold", ad->n->cfg->node_id);
    list(ad);
}

void adopt_free(adoption *ad)
{
    if (!ad)
        return;
    adopt_done(ad);
    event_free(ad->retry);
    free(ad);
}
