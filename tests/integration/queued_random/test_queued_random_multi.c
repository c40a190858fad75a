/* The seeded random run over four nodes (issue 4's correctness run): 240
 * callers and 24 agents spread at random over four simulator nodes, one
 * real queued per node, one real redis-server, time 100x fast (scale 0.01).
 *
 * A seeded script (seed: argv[1], else $ARIQ_SEED, else a fixed one)
 * drives it tick by tick (10 ms): callers arrive on any node in q1, q2, q3,
 * q1&q2 or q2&q3 with priorities 0..3; agents (serving one to three queues)
 * log in on a random node, leave (hang up while free, while their link
 * rings or while talking) and come back, maybe on another node; waiting
 * callers hang up, more often while their cross-node link rings; in each
 * call, on every node at once, the agent presses keys (0 5 7 9 #, and 3,
 * which means nothing) or a party hangs up. For a few windows the links to
 * one node are refused (busy, failed) or left ringing to their timeout, so
 * pairings are rolled back. Then the queues drain, everybody hangs up, and
 * the checks run:
 *   - queue_check over the whole events stream: every caller ends exactly
 *     one way, no caller or agent in two live pairings, each pairing takes
 *     the first waiting caller of its queue over all nodes (priority desc,
 *     arrival asc), every agent logged in is logged off once;
 *   - every CONNECT is a moment the oracle shows the two connected: sampled
 *     live as the CONNECT appears in the stream (through the link legs for
 *     a cross-node call), and on the timelines afterwards: same node, both
 *     in one mixing bridge; different nodes, the caller with the near link
 *     leg, the far leg (its peer, in Stasis(queue,link,PAIRING)) with the
 *     agent;
 *   - every recording finished, stored or discarded as Redis says;
 *   - nothing left in Redis (but the counter, the stream, recording metadata
 *     and the live nodes' own keys) or on any simulator node; every queued
 *     alive and exiting 0 on SIGTERM.
 *
 * With $ARIQ_FAULT, things go wrong while the script runs (see "faults"):
 * restart (a node's queued killed, or stopped, and started again), redis
 * (Redis stopped and started again on its AOF), wsdrop (a node's events
 * WebSocket dropped, its next upgrades maybe refused), mixed (one of the
 * three at a time, drawn). Every check above must still hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "core/clock.h"
#include "queue_check.h"
#include "queued_proc.h"
#include "redis_proc.h"
#include "sim_proc.h"
#include "test_rng.h"

#define NNODES        4
#define NCALLERS      240
#define NAGENTS       24
#define TICK_MS       10
#define ARRIVAL_TICKS 300  /* callers arrive over the first 300 ticks */
#define MAX_TICKS     2500 /* then everyone left waiting is hung up */
#define RULE_PERIOD   100  /* ticks between two changes of the link rules */
#define MAX_CHANS     (NCALLERS + 20 * NAGENTS)
#define MAX_PENDING   64
#define WAIT_MS       10000
#define DEFAULT_SEED  20261204u

/* ARIQ_FAULT: what goes wrong during the run (see "faults" below). */
typedef enum fault_mode {
    FM_NONE,    /* nothing */
    FM_RESTART, /* a node's queued dies and is started again */
    FM_REDIS,   /* Redis stops and is started again on its AOF */
    FM_WSDROP,  /* a node's events WebSocket drops */
    FM_MIXED,   /* one of the three at a time, drawn */
    FM__COUNT
} fault_mode;
static const char *const fault_mode_names[FM__COUNT] = {"none", "restart", "redis",
                                                        "wsdrop", "mixed"};

/* A party the script placed. */
typedef struct party_t {
    char chan[128];
    int node;
    int priority;  /* a caller's; -1 for an agent */
    char first[8]; /* a caller's first queue */
} party_t;

/* A caller in one queue, as the stream says so far (note_drain). */
typedef struct in_queue_t {
    char queue[8];
    long seq;     /* its ENTERQUEUE's place in the stream */
    bool waiting; /* entered, not paired, not ended there */
} in_queue_t;

typedef struct caller_t {
    party_t *p;
    bool hung_up; /* by the script: it stops acting for it */
    in_queue_t in[3];
    int nin;
    bool connected;   /* a CONNECT */
    bool passed_over; /* while its node drained (note_drain) */
} caller_t;

typedef struct agent_t {
    char id[16];
    const char *queues;
    party_t *p;  /* current channel, NULL while away */
    int back_at; /* tick it comes back at while away */
} agent_t;

/* A CONNECT seen in the stream and its live sample. */
typedef struct connect_t {
    char caller[136], agent_chan[136], pairing[136];
    bool cross;
} connect_t;

/* A cross-node pairing made and not yet connected or undone: its link is
 * being set up (or rings). */
typedef struct pending_t {
    char pairing[136], caller[136], agent_chan[136];
} pending_t;

static struct {
    queued_cluster *c;
    redisContext *rc;
    unsigned seed;
    caller_t callers[NCALLERS];
    agent_t agents[NAGENTS];
    party_t *parties; /* every channel placed, for lookups and the final sweep */
    size_t nparties;
    connect_t *connects;
    size_t nconnects;
    pending_t pending[MAX_PENDING];
    size_t npending;
    char last_id[48];
    int live_confirmed, live_unconfirmed, cross_connects, links_checked;
    size_t resample[NCALLERS]; /* connects sampled too early, to sample again */
    size_t nresample;
    int live_resampled;
    int keys_sent, agent_leaves, agent_leaves_ringing, caller_hangups_waiting,
        caller_hangups_ringing, caller_hangups_talking, rule_windows;
    int rollbacks;
    long nentries;         /* stream entries read */
    bool draining[NNODES]; /* between its NODEDRAIN on and off */
    int passed_over;       /* callers passed over while their node drained */
    fault_mode mode;
    uint64_t frng;    /* the faults' own generator (all modes but restart) */
    int down_node;    /* the node whose queued is dead, -1 if none */
    int back_tick;    /* when it comes back */
    int kills, stops; /* SIGKILL / SIGTERM restarts done */
    bool redis_down;  /* Redis stopped by the script */
    uint64_t redis_since, redis_back_ms; /* when it stopped, when it starts again */
    int redis_stops;
    long redis_down_ms;                             /* Redis away in all */
    int redis_readies[NNODES], redis_backs[NNODES]; /* log lines before the last stop */
    uint64_t redis_ready_at[NNODES]; /* when it was seen ready again, 0: not yet */
    bool redis_settled[NNODES];      /* it sent what it held (redis_settled) */
    bool ws_gone[NNODES];      /* WebSocket dropped, the app not attached again yet */
    uint64_t ws_up_ms[NNODES]; /* when it was seen attached again (0: from the start) */
    int ws_drops, ws_refused;
} R;

/* ---- parties --------------------------------------------------------------------- */

static party_t *party_of(const char *chan)
{
    for (size_t i = 0; i < R.nparties; i++)
        if (!strcmp(R.parties[i].chan, chan))
            return &R.parties[i];
    return NULL;
}

static party_t *place(int node, const char *args, const char *num, int priority)
{
    assert_true(R.nparties < MAX_CHANS);
    party_t *p = &R.parties[R.nparties++];
    json_t *c =
        sim_place_call(&R.c->sim, node, "queue", args, num, p->chan, sizeof p->chan);
    assert_non_null(c);
    json_decref(c);
    p->node = node;
    p->priority = priority;
    return p;
}

static void hangup(const char *chan)
{
    long st = sim_hangup_call(&R.c->sim, 0, chan, 16);
    assert_true(st == 204 || st == 404 || st == 409); /* gone already: fine */
}

static void ws_watch(void);

/* A newcomer may arrive on `node`: its queued is alive and its app attached
 * (else Stasis() fails and the call goes on in the dialplan, never reaching
 * the queue, as in Asterisk). */
static bool node_takes_calls(int node)
{
    return node != R.down_node && !R.ws_gone[node];
}

/* A node for a newcomer: the one drawn, or the next that takes calls (one
 * draw either way, so the script's sequence does not depend on faults). */
static int arrival_node(void)
{
    int node = (int)test_rng_below(NNODES);
    for (int waited = 0; waited <= WAIT_MS; waited += 10) {
        for (int k = 0; k < NNODES; k++, node = (node + 1) % NNODES)
            if (node_takes_calls(node))
                return node;
        test_sleep_ms(10); /* none: wait for a WebSocket to come back */
        ws_watch();
    }
    fail_msg("seed %u: no node took calls for %d s", R.seed, WAIT_MS / 1000);
    return 0;
}

static void caller_arrives(int i)
{
    static const char *const qs[] = {"q1", "q2", "q3", "q1&q2", "q2&q3"};
    int r = test_rng_below(20), prio = test_rng_below(4);
    char args[64], num[16];
    snprintf(args, sizeof args, "caller,%s,%d",
             qs[r < 6    ? 0
                : r < 11 ? 1
                : r < 15 ? 2
                : r < 18 ? 3
                         : 4],
             prio);
    snprintf(num, sizeof num, "55%05d", i);
    R.callers[i].p = place(arrival_node(), args, num, prio);
    snprintf(R.callers[i].p->first, sizeof R.callers[i].p->first, "%.2s", args + 7);
}

static void agent_arrives(agent_t *a)
{
    char args[64];
    snprintf(args, sizeof args, "agent,%s,%s", a->queues, a->id);
    a->p = place(arrival_node(), args, a->id, -1);
}

static void agent_leaves(agent_t *a, int tick)
{
    hangup(a->p->chan);
    a->p = NULL;
    a->back_at = tick + 30 + test_rng_below(60); /* after its logoff is long done */
    R.agent_leaves++;
}

static agent_t *agent_of(const char *chan)
{
    for (int i = 0; i < NAGENTS; i++)
        if (R.agents[i].p && !strcmp(R.agents[i].p->chan, chan))
            return &R.agents[i];
    return NULL;
}

static caller_t *caller_of(const char *chan)
{
    for (int i = 0; i < NCALLERS; i++)
        if (R.callers[i].p && !strcmp(R.callers[i].p->chan, chan))
            return &R.callers[i];
    return NULL;
}

static int priority_of(const char *callid, void *ud)
{
    (void)ud;
    caller_t *c = caller_of(callid);
    return c && !c->passed_over ? c->p->priority : -1;
}

/* ---- the oracle, tick by tick -------------------------------------------------- */

/* A call now: a caller and an agent's channel that hear each other, in one
 * mixing bridge or through a link. */
typedef struct talk_t {
    char caller[128], agent[128];
} talk_t;

/* The live channels' link peers, and the mixing bridges' members. */
typedef struct view_t {
    json_t *chans;   /* id -> summary */
    json_t *bridges; /* "node/bridge" -> [members] of mixing bridges */
} view_t;

static void view_load(view_t *v)
{
    json_t *all = sim_ctl(&R.c->sim, 0, "GET", "/sim/channels?alive=1", NULL, NULL), *x;
    json_t *br = sim_ctl(&R.c->sim, 0, "GET", "/sim/bridges", NULL, NULL);
    size_t i;
    assert_true(json_is_array(all) && json_is_array(br));
    v->chans = json_object();
    v->bridges = json_object();
    json_array_foreach(all, i, x)
    {
        const char *id = json_string_value(json_object_get(x, "id"));
        if (id)
            json_object_set(v->chans, id, x);
    }
    json_array_foreach(br, i, x)
    {
        const char *type = json_string_value(json_object_get(x, "bridge_type"));
        char key[300];
        if (!type || strcmp(type, "mixing"))
            continue;
        snprintf(key, sizeof key, "%s/%s",
                 json_string_value(json_object_get(x, "node")) ?: "",
                 json_string_value(json_object_get(x, "id")) ?: "");
        json_object_set(v->bridges, key, json_object_get(x, "channels"));
    }
    json_decref(all);
    json_decref(br);
}

static void view_free(view_t *v)
{
    json_decref(v->chans);
    json_decref(v->bridges);
}

/* The members of chan's mixing bridge (borrowed), or NULL. */
static json_t *mixing_of(const view_t *v, const char *chan)
{
    json_t *c = json_object_get(v->chans, chan);
    const char *b = json_string_value(json_object_get(c, "bridge"));
    char key[300];
    if (!b)
        return NULL;
    snprintf(key, sizeof key, "%s/%s",
             json_string_value(json_object_get(c, "node")) ?: "", b);
    return json_object_get(v->bridges, key);
}

/* The other member of chan's two-party mixing bridge, or NULL. */
static const char *other_member(const view_t *v, const char *chan)
{
    json_t *m = mixing_of(v, chan);
    if (json_array_size(m) != 2)
        return NULL;
    const char *x = json_string_value(json_array_get(m, 0));
    const char *y = json_string_value(json_array_get(m, 1));
    return x && y ? (!strcmp(x, chan) ? y : x) : NULL;
}

/* The caller agent `a` talks with now (directly, or through a link), or NULL. */
static const char *partner_of(const view_t *v, const char *a)
{
    const char *x = other_member(v, a);
    if (!x || caller_of(x))
        return x;
    const char *peer =
        json_string_value(json_object_get(json_object_get(v->chans, x), "link_peer"));
    const char *y = peer ? other_member(v, peer) : NULL;
    return y && caller_of(y) ? y : NULL;
}

static size_t calls_now(const view_t *v, talk_t *out, size_t max)
{
    size_t n = 0;
    for (int i = 0; i < NAGENTS && n < max; i++) {
        const char *a = R.agents[i].p ? R.agents[i].p->chan : NULL;
        const char *c = a ? partner_of(v, a) : NULL;
        if (!c)
            continue;
        snprintf(out[n].caller, 128, "%s", c);
        snprintf(out[n].agent, 128, "%s", a);
        n++;
    }
    return n;
}

/* ---- live CONNECT sampling --------------------------------------------------------- */

static bool pairing_exists(const char *pid)
{
    redisReply *r = redisCommand(R.rc, "EXISTS {ariq}:pairing:%s", pid);
    bool e = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r)
        freeReplyObject(r);
    return e;
}

static bool alive(const char *chan)
{
    json_t *c = sim_channel(&R.c->sim, 0, chan);
    bool a = json_is_true(json_object_get(c, "alive"));
    json_decref(c);
    return a;
}

/* For a failure's message: where chan is now (its summary, no timeline). */
static void print_chan(const char *role, const char *chan)
{
    json_t *c = sim_channel(&R.c->sim, 0, chan);
    json_object_del(c, "timeline");
    char *s = c ? json_dumps(c, JSON_COMPACT) : NULL;
    fprintf(stderr, "seed %u: %s %s now: %s\n", R.seed, role, chan, s ? s : "(unknown)");
    free(s);
    json_decref(c);
}

static bool redis_settled(int node);

/* Both parties' nodes have told Redis what they held while it was away. */
static bool call_settled(const connect_t *k)
{
    const party_t *c = party_of(k->caller), *a = party_of(k->agent_chan);
    return (!c || redis_settled(c->node)) && (!a || redis_settled(a->node));
}

/* Samples one new CONNECT: connected now (through the link if it crosses
 * nodes), or the call is already over (the pairing gone from Redis, or a
 * party gone). A pairing still live with both parties alive must show them
 * connected (a few tries: queued may be between two requests). After a
 * Redis outage, though, Redis lags behind until each node has sent what it
 * held: a call that ended meanwhile (say the agent pressed '#') is still a
 * live pairing there until both its nodes are back. Such a sample decides
 * nothing: it returns false, to be taken again once they are (resample). */
static bool sample_connect(const connect_t *k)
{
    bool settled = true;
    for (int tries = 0; tries < 10; tries++) {
        if (sim_is_connected(&R.c->sim, 0, k->caller, k->agent_chan) == 1) {
            R.live_confirmed++;
            return true;
        }
        settled = call_settled(k); /* before Redis is read */
        if (!pairing_exists(k->pairing) || !alive(k->caller) || !alive(k->agent_chan)) {
            R.live_unconfirmed++; /* over already: the timelines decide */
            return true;
        }
        test_sleep_ms(10);
    }
    if (!settled)
        return false;
    print_chan("caller", k->caller);
    print_chan("agent", k->agent_chan);
    fail_msg(
        "seed %u: CONNECT %s (caller %s, agent %s): pairing live, both alive, but the "
        "oracle says they do not hear each other",
        R.seed, k->pairing, k->caller, k->agent_chan);
    return true;
}

/* Samples again the CONNECTs sampled too early (sample_connect) whose nodes
 * have caught up since; with `all`, every one left (the script is over, its
 * parties have not hung up yet, and every node has caught up). */
static void resample(bool all)
{
    for (size_t i = 0; i < R.nresample;) {
        const connect_t *k = &R.connects[R.resample[i]];
        if ((all || call_settled(k)) && sample_connect(k))
            R.resample[i] = R.resample[--R.nresample];
        else
            i++;
    }
}

static void pending_drop(const char *pairing)
{
    for (size_t i = 0; i < R.npending; i++)
        if (!strcmp(R.pending[i].pairing, pairing)) {
            R.pending[i] = R.pending[--R.npending];
            return;
        }
}

/* One stream entry's fields by name (borrowed from the reply). */
typedef struct entry_t {
    const char *ev, *callid, *peer, *pairing, *agent_chan, *cnode, *anode, *reason, *node,
        *state, *queue;
} entry_t;

static entry_t entry_fields(const redisReply *f)
{
    static const struct {
        const char *name;
        size_t off;
    } names[] = {
        {"event", offsetof(entry_t, ev)},
        {"callid", offsetof(entry_t, callid)},
        {"bridgedchanneluniqueid", offsetof(entry_t, peer)},
        {"pairing", offsetof(entry_t, pairing)},
        {"agent_channel", offsetof(entry_t, agent_chan)},
        {"caller_node", offsetof(entry_t, cnode)},
        {"agent_node", offsetof(entry_t, anode)},
        {"reason", offsetof(entry_t, reason)},
        {"node", offsetof(entry_t, node)},
        {"state", offsetof(entry_t, state)},
        {"queue", offsetof(entry_t, queue)},
    };
    entry_t e = {0};
    for (size_t k = 0; k + 1 < f->elements; k += 2)
        for (size_t j = 0; j < sizeof names / sizeof names[0]; j++)
            if (!strcmp(f->element[k]->str, names[j].name))
                *(const char **)((char *)&e + names[j].off) = f->element[k + 1]->str;
    return e;
}

/* ---- callers passed over by a drain --------------------------------------------- */

/* A node drains (SIGTERM; restart and mixed modes): by design no node pairs
 * its callers meanwhile, and callers who came after them are served first
 * (SCHEMA.md, Ordering: "A draining node's parties are passed over"). The
 * checker's order rule knows nothing of draining (qc_event carries no
 * NODEDRAIN node), so each caller passed over that way, and only those,
 * gets an unknown priority (priority_of: -1): the checker then checks
 * neither the order of pairings in that queue while it waits there nor the
 * positions of those who enter behind it. Every other check still covers
 * it. The waiting sets are rebuilt as the checker does (ENTERQUEUE adds,
 * PAIRED takes out of every queue, an UNPAIRED without CONNECT puts back,
 * ABANDON / EXITWITHTIMEOUT / WITHDRAW end one queue); a node drains from
 * its NODEDRAIN on to its NODEDRAIN off (written when it starts again). */
static in_queue_t *in_queue(caller_t *c, const char *queue)
{
    for (int i = 0; queue && i < c->nin; i++)
        if (!strcmp(c->in[i].queue, queue))
            return &c->in[i];
    return NULL;
}

static void set_waiting(caller_t *c, bool waiting)
{
    for (int i = 0; i < c->nin; i++)
        c->in[i].waiting = waiting && c->in[i].seq >= 0;
}

/* c is paired in its queue q: the callers of draining nodes waiting there
 * before it were passed over. */
static void mark_passed_over(const caller_t *c, const in_queue_t *q)
{
    for (int i = 0; i < NCALLERS; i++) {
        caller_t *x = &R.callers[i];
        const in_queue_t *xq = x->p ? in_queue(x, q->queue) : NULL;
        if (!xq || !xq->waiting || !R.draining[x->p->node] || x->passed_over)
            continue;
        if (x->p->priority > c->p->priority ||
            (x->p->priority == c->p->priority && xq->seq < q->seq)) {
            x->passed_over = true;
            R.passed_over++;
        }
    }
}

/* Follows one stream entry (the seq-th) in the waiting sets and the drains. */
static void note_drain(const entry_t *e, long seq)
{
    caller_t *c = e->callid ? caller_of(e->callid) : NULL;
    in_queue_t *q = c ? in_queue(c, e->queue) : NULL;
    if (!strcmp(e->ev, "NODEDRAIN") && e->node && e->state) {
        for (int n = 0; n < NNODES; n++)
            if (!strcmp(e->node, R.c->q[n].node_id))
                R.draining[n] = !strcmp(e->state, "on");
    } else if (!c || !e->queue) {
        return;
    } else if (!strcmp(e->ev, "ENTERQUEUE") && !q && c->nin < 3) {
        in_queue_t *n = &c->in[c->nin++];
        snprintf(n->queue, sizeof n->queue, "%s", e->queue);
        n->seq = seq;
        n->waiting = true;
    } else if (!strcmp(e->ev, "PAIRED") && q) {
        mark_passed_over(c, q);
        set_waiting(c, false);
    } else if (!strcmp(e->ev, "UNPAIRED") && !c->connected) {
        set_waiting(c, true);
    } else if (!strcmp(e->ev, "CONNECT")) {
        c->connected = true;
    } else if (q && (!strcmp(e->ev, "ABANDON") || !strcmp(e->ev, "EXITWITHTIMEOUT") ||
                     !strcmp(e->ev, "WITHDRAW"))) {
        q->waiting = false;
        q->seq = -1; /* ended there: never waiting again */
    }
}

static void on_entry(const entry_t *e)
{
    if (!e->ev)
        return;
    note_drain(e, R.nentries++);
    if (!e->pairing)
        return;
    if (!strcmp(e->ev, "PAIRED") && e->cnode && e->anode && strcmp(e->cnode, e->anode) &&
        e->callid && e->agent_chan && R.npending < MAX_PENDING) {
        pending_t *p = &R.pending[R.npending++];
        snprintf(p->pairing, sizeof p->pairing, "%s", e->pairing);
        snprintf(p->caller, sizeof p->caller, "%s", e->callid);
        snprintf(p->agent_chan, sizeof p->agent_chan, "%s", e->agent_chan);
    } else if (!strcmp(e->ev, "UNPAIRED")) {
        pending_drop(e->pairing);
        R.rollbacks += e->reason && !strcmp(e->reason, "rollback");
    } else if (!strcmp(e->ev, "CONNECT") && e->callid && e->peer) {
        bool cross = false;
        for (size_t i = 0; i < R.npending; i++)
            cross |= !strcmp(R.pending[i].pairing, e->pairing);
        pending_drop(e->pairing);
        assert_true(R.nconnects < NCALLERS); /* a caller connects at most once */
        connect_t *k = &R.connects[R.nconnects++];
        snprintf(k->caller, sizeof k->caller, "%s", e->callid);
        snprintf(k->agent_chan, sizeof k->agent_chan, "%s", e->peer);
        snprintf(k->pairing, sizeof k->pairing, "%s", e->pairing);
        k->cross = cross;
        R.cross_connects += cross;
        if (!sample_connect(k) && R.nresample < NCALLERS) {
            R.resample[R.nresample++] = R.nconnects - 1;
            R.live_resampled++;
        }
    }
}

/* Reads the stream entries added since the last tick. */
static void read_new_events(void)
{
    char start[64];
    snprintf(start, sizeof start, "%s%s", R.last_id[0] ? "(" : "",
             R.last_id[0] ? R.last_id : "-");
    redisReply *r = redisCommand(R.rc, "XRANGE {ariq}:events %s + COUNT 5000", start);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        snprintf(R.last_id, sizeof R.last_id, "%s", e->element[0]->str);
        entry_t f = entry_fields(e->element[1]);
        on_entry(&f);
    }
    freeReplyObject(r);
}

/* ---- the script ------------------------------------------------------------------ */

/* Every RULE_PERIOD ticks the links to one node may be refused or left
 * ringing for a third of the period: pairings across nodes roll back. */
static void change_link_rules(int tick)
{
    static const char *const actions[] = {"busy", "fail", "noanswer"};
    if (tick % RULE_PERIOD == RULE_PERIOD / 3) {
        long st = 0;
        json_decref(sim_ctl(&R.c->sim, 0, "DELETE", "/sim/originate-rules", NULL, &st));
        assert_int_equal(st, 204);
    }
    if (tick % RULE_PERIOD)
        return;
    char match[32];
    snprintf(match, sizeof match, "IAX2/node%d", 1 + test_rng_below(NNODES));
    long st = sim_originate_rule(&R.c->sim, 0, match, actions[test_rng_below(3)],
                                 2000 + test_rng_below(6000));
    assert_true(st == 204 || st == 200);
    R.rule_windows++;
}

/* ---- faults --------------------------------------------------------------------- */

/* A fault's draws. Restart mode drew from the script's generator when it
 * was the only mode, and keeps doing so, so its registered seeds replay as
 * before; every other mode draws from a generator of its own (xorshift64*,
 * as test_rng), so a fault-free run never draws anything here. */
static int fault_below(int n)
{
    if (R.mode == FM_RESTART)
        return test_rng_below(n);
    uint64_t x = R.frng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    R.frng = x;
    return (int)((x * 0x2545F4914F6CDD1DULL) % (uint64_t)n);
}

/* Restart: one node's queued dies (SIGKILL, or every third time a clean
 * SIGTERM) and is started again 10 to 60 ticks (0.1-0.6 s) later; the
 * script goes on meanwhile (its parties hang up, press keys), and the
 * restarted node must re-adopt what is left. */
static void restart_begin(int tick)
{
    R.down_node = fault_below(NNODES);
    R.back_tick = tick + 10 + fault_below(50);
    if ((R.kills + R.stops) % 3 == 2) {
        R.stops++;
        if (queued_proc_stop(&R.c->q[R.down_node]) != 0)
            fail_msg("seed %u: node%d did not stop cleanly", R.seed, R.down_node + 1);
    } else {
        R.kills++;
        queued_proc_kill(&R.c->q[R.down_node]);
    }
}

static void restart_end(void)
{
    if (queued_proc_restart(&R.c->q[R.down_node], &R.c->sim, R.down_node) != 0)
        fail_msg("seed %u: node%d did not come back", R.seed, R.down_node + 1);
    R.ws_up_ms[R.down_node] = 0; /* a new process: its backoff starts afresh */
    R.down_node = -1;
}

/* Redis: it stops (SIGTERM: it writes its AOF and exits) for 0.3 to 1.5 s
 * and starts again on its data. The script goes on meanwhile (arrivals,
 * hangups, keys: every queued holds its writes and answers newcomers) but
 * reads nothing from Redis; the stream is read on from the last entry seen
 * once the test's connection is made again. */
static void redis_begin(void)
{
    for (int n = 0; n < NNODES; n++) {
        R.redis_readies[n] = queued_proc_log_count(&R.c->q[n], "redis=ready");
        R.redis_backs[n] = queued_proc_log_count(&R.c->q[n], "redis=back sent");
        R.redis_ready_at[n] = 0;
        R.redis_settled[n] = false;
    }
    R.redis_since = clock_mono_ms();
    R.redis_back_ms = R.redis_since + 300 + (uint64_t)fault_below(1201);
    R.redis_down = true;
    R.redis_stops++;
    if (redis_proc_stop(&R.c->redis, SIGTERM) != 0)
        fail_msg("seed %u: Redis did not stop cleanly", R.seed);
}

static void redis_end(void)
{
    if (redis_proc_restart(&R.c->redis) != 0)
        fail_msg("seed %u: Redis did not start again (its log: %s)", R.seed,
                 R.c->redis.logpath);
    redisFree(R.rc);
    R.rc = redis_proc_connect(&R.c->redis);
    if (!R.rc)
        fail_msg("seed %u: cannot connect to Redis again", R.seed);
    R.redis_down = false;
    R.redis_down_ms += (long)(clock_mono_ms() - R.redis_since);
}

/* Node n has sent Redis what it held during the last outage: it logged
 * "redis=back sent N writes held meanwhile" (only when it held some), or
 * "redis=ready" REDIS_SETTLE_MS ago without it (it held nothing: ready, it
 * re-registers its parties in one round trip and would flush then). Polled
 * every tick, so the times are the tick's. */
#define REDIS_SETTLE_MS 300
static bool redis_settled(int n)
{
    if (!R.redis_stops || R.redis_settled[n])
        return true;
    if (R.redis_down)
        return false;
    uint64_t now = clock_mono_ms();
    const queued_proc *q = &R.c->q[n];
    if (!R.redis_ready_at[n] &&
        queued_proc_log_count(q, "redis=ready") > R.redis_readies[n])
        R.redis_ready_at[n] = now;
    R.redis_settled[n] =
        queued_proc_log_count(q, "redis=back sent") > R.redis_backs[n] ||
        (R.redis_ready_at[n] && now >= R.redis_ready_at[n] + REDIS_SETTLE_MS);
    return R.redis_settled[n];
}

/* WebSocket drop: one node's events WebSocket closes (as if the network
 * died), a third of the time with its next 1 to 3 upgrades refused (503)
 * so queued's reconnect backs off once or more. queued must reconcile with
 * what ARI holds once it is back. The node drawn, or the next one whose
 * WebSocket has been up WS_STABLE_MS (none: no drop this time): queued's
 * backoff starts over only after a connection held 5 s (ari/stream.h), so
 * drops closer than that push it to its 5 s cap and that node would take
 * no call for most of the run. */
#define WS_STABLE_MS 5500
static void wsdrop_begin(void)
{
    int node = fault_below(NNODES), refuse = fault_below(3) ? 0 : 1 + fault_below(3),
        k = 0;
    uint64_t now = clock_mono_ms();
    while (k < NNODES && (R.ws_gone[node] || R.ws_up_ms[node] + WS_STABLE_MS > now)) {
        node = (node + 1) % NNODES;
        k++;
    }
    if (k == NNODES)
        return;
    char body[64];
    if (refuse)
        snprintf(body, sizeof body, "{\"drop_ws\":true,\"refuse_ws\":%d}", refuse);
    else
        snprintf(body, sizeof body, "{\"drop_ws\":true}");
    if (sim_fault(&R.c->sim, node, body) != 200)
        fail_msg("seed %u: node%d: POST /sim/faults %s refused", R.seed, node + 1, body);
    R.ws_gone[node] = true; /* the simulator detached the app before answering */
    R.ws_drops++;
    R.ws_refused += refuse;
}

/* Clears ws_gone for the nodes whose app is attached again. */
static void ws_watch(void)
{
    for (int n = 0; n < NNODES; n++) {
        long st = 0;
        if (!R.ws_gone[n])
            continue;
        json_decref(sim_ctl(&R.c->sim, n, "GET", "/ari/applications/queue", NULL, &st));
        R.ws_gone[n] = st != 200;
        if (st == 200)
            R.ws_up_ms[n] = clock_mono_ms();
    }
}

/* A fault is not over: a queued dead, Redis stopped or some node not caught
 * up with it yet (a node killed then would lose what it held), an app not
 * attached again. */
static bool fault_in_progress(void)
{
    bool any = R.down_node >= 0 || R.redis_down;
    for (int n = 0; n < NNODES; n++)
        any |= R.ws_gone[n] || !redis_settled(n);
    return any;
}

/* Every FAULT_PERIOD ticks (2 s) a restart or a Redis stop; every
 * WS_PERIOD ticks (1 s) a WebSocket drop; mixed: every WS_PERIOD ticks,
 * when the last fault is over, one of the three, drawn. */
#define FAULT_PERIOD 200
#define WS_PERIOD    100
static void faults(int tick)
{
    ws_watch();
    for (int n = 0; n < NNODES; n++)
        redis_settled(n);
    if (R.down_node >= 0 && tick >= R.back_tick)
        restart_end();
    if (R.redis_down && clock_mono_ms() >= R.redis_back_ms)
        redis_end();
    switch (R.mode) {
    case FM_RESTART:
        if (R.down_node < 0 && tick % FAULT_PERIOD == FAULT_PERIOD / 2)
            restart_begin(tick);
        break;
    case FM_REDIS:
        if (!R.redis_down && tick % FAULT_PERIOD == FAULT_PERIOD / 2)
            redis_begin();
        break;
    case FM_WSDROP:
        if (tick % WS_PERIOD == WS_PERIOD / 2)
            wsdrop_begin();
        break;
    case FM_MIXED:
        if (tick % WS_PERIOD == WS_PERIOD / 2 && !fault_in_progress()) {
            int kind = fault_below(3);
            if (kind == 0)
                restart_begin(tick);
            else if (kind == 1)
                redis_begin();
            else
                wsdrop_begin();
        }
        break;
    default:
        break;
    }
}

/* After the script: every fault undone before the checks (a dead queued
 * and a stopped Redis back, every app attached again, every node caught up
 * with Redis and the CONNECTs sampled too early sampled again). */
static void faults_end(void)
{
    if (R.down_node >= 0)
        restart_end();
    if (R.redis_down)
        redis_end();
    /* up to 30 s: a WebSocket whose upgrades were refused backs off up to
     * 5 s between attempts, and a sanitizer build on a loaded machine is slow */
    uint64_t from = clock_mono_ms();
    while (clock_mono_ms() - from < 3 * WAIT_MS && fault_in_progress()) {
        test_sleep_ms(10);
        ws_watch();
    }
    if (fault_in_progress()) {
        for (int n = 0; n < NNODES; n++) /* which node, and its log */
            fprintf(stderr, "seed %u: node%d: queued %s, app %s, Redis %s; log %s\n", R.seed,
                    n + 1, queued_proc_alive(&R.c->q[n]) ? "running" : "EXITED",
                    R.ws_gone[n] ? "NOT attached" : "attached",
                    redis_settled(n) ? "caught up" : "NOT caught up", R.c->q[n].logpath);
        fail_msg(
            "seed %u: %llu ms after the script, an events WebSocket is not attached again "
            "or a node has not caught up with Redis",
            R.seed, (unsigned long long)(clock_mono_ms() - from));
    }
    read_new_events();
    resample(true);
}

/* One party of one call acts. */
static void act_in_call(const talk_t *t, int tick, bool agents_may_leave)
{
    static const char keys[] = "05795793#";
    agent_t *a = agent_of(t->agent);
    if (test_rng_chance(0.08)) {
        char d[2] = {keys[test_rng_below((int)sizeof keys - 1)], 0};
        assert_int_equal(sim_send_dtmf(&R.c->sim, 0, t->agent, d), 204);
        R.keys_sent++;
    } else if (test_rng_chance(0.02)) {
        hangup(t->caller);
        caller_of(t->caller)->hung_up = true;
        R.caller_hangups_talking++;
    } else if (a && agents_may_leave && test_rng_chance(0.004)) {
        agent_leaves(a, tick); /* the agent hangs up mid-call */
    }
}

/* Pairings whose link is being set up: the caller or the agent hangs up. */
static void act_while_ringing(int tick, bool agents_may_leave)
{
    for (size_t i = 0; i < R.npending; i++) {
        caller_t *c = caller_of(R.pending[i].caller);
        agent_t *a = agent_of(R.pending[i].agent_chan);
        if (c && !c->hung_up && test_rng_chance(0.03)) {
            hangup(c->p->chan);
            c->hung_up = true;
            R.caller_hangups_ringing++;
        } else if (a && agents_may_leave && test_rng_chance(0.01)) {
            agent_leaves(a, tick);
            R.agent_leaves_ringing++;
        }
    }
}

static void tick_once(int tick, int *next_caller)
{
    static talk_t talks[NAGENTS];
    bool arrivals = *next_caller < NCALLERS;
    bool agents_may_leave = arrivals || tick < ARRIVAL_TICKS + 100;
    view_t v;

    change_link_rules(tick);
    faults(tick);
    if (arrivals && test_rng_chance((double)NCALLERS / ARRIVAL_TICKS))
        caller_arrives((*next_caller)++);
    for (int i = 0; i < NAGENTS; i++) { /* arrivals: the first ones, those coming back */
        agent_t *a = &R.agents[i];
        if (!a->p && tick >= a->back_at)
            agent_arrives(a);
        else if (a->p && agents_may_leave && test_rng_chance(0.001))
            agent_leaves(a, tick); /* free, ringing or talking */
    }
    view_load(&v);
    size_t nt = calls_now(&v, talks, NAGENTS);
    for (size_t i = 0; i < nt; i++)
        act_in_call(&talks[i], tick, agents_may_leave);
    act_while_ringing(tick, agents_may_leave);
    for (int i = 0; i < *next_caller; i++) { /* impatient callers outside a call */
        caller_t *c = &R.callers[i];
        if (!c->hung_up && !mixing_of(&v, c->p->chan) && test_rng_chance(0.003)) {
            hangup(c->p->chan);
            c->hung_up = true;
            R.caller_hangups_waiting++;
        }
    }
    view_free(&v);
    if (!R.redis_down) {
        read_new_events();
        resample(false);
    }
}

/* Callers still alive. */
static int callers_alive(void)
{
    json_t *all = sim_ctl(&R.c->sim, 0, "GET", "/sim/channels?alive=1", NULL, NULL), *c;
    size_t i;
    int n = 0;
    json_array_foreach(all, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        n += id && caller_of(id);
    }
    json_decref(all);
    return n;
}

/* ---- the checks ------------------------------------------------------------------ */

/* Every link leg by its Stasis args: "ROLE,PAIRING" -> {"id","node"} (role
 * "linkout": the near leg, on the caller's node; "link": the far leg, on the
 * agent's node). NEW reference. */
static json_t *link_legs(json_t *all)
{
    json_t *index = json_object(), *c;
    size_t i;
    json_array_foreach(all, i, c)
    {
        const char *cid = json_string_value(json_object_get(c, "id"));
        const char *name = json_string_value(json_object_get(c, "name"));
        if (!cid || !name || strncmp(name, "IAX2/", 5) || party_of(cid))
            continue;
        json_t *full = sim_channel(&R.c->sim, 0, cid), *e;
        size_t j;
        json_array_foreach(json_object_get(full, "timeline"), j, e)
        {
            const char *ev = json_string_value(json_object_get(e, "ev"));
            json_t *args = json_object_get(e, "args");
            char key[300];
            if (!ev || strcmp(ev, "stasis_start") || json_array_size(args) != 2)
                continue;
            snprintf(key, sizeof key, "%s,%s",
                     json_string_value(json_array_get(args, 0)) ?: "",
                     json_string_value(json_array_get(args, 1)) ?: "");
            json_object_set_new(
                index, key,
                json_pack("{s:s,s:O}", "id", cid, "node", json_object_get(c, "node")));
        }
        json_decref(full);
    }
    return index;
}

static const char *leg_field(json_t *legs, const char *role, const char *pairing,
                             const char *field)
{
    char key[300];
    snprintf(key, sizeof key, "%s,%s", role, pairing);
    return json_string_value(json_object_get(json_object_get(legs, key), field)) ?: "";
}

/* A cross-node CONNECT on the timelines: the caller in one mixing bridge
 * with the near link leg on its node, the far leg in one with the agent on
 * the agent's node. */
static int cross_on_timelines(json_t *legs, const connect_t *k)
{
    const char *near = leg_field(legs, "linkout", k->pairing, "id");
    const char *far = leg_field(legs, "link", k->pairing, "id");
    party_t *caller = party_of(k->caller), *agent = party_of(k->agent_chan);
    char cnode[32], anode[32];
    if (!caller || !agent || !*near || !*far)
        return 0;
    snprintf(cnode, sizeof cnode, "node%d", caller->node + 1);
    snprintf(anode, sizeof anode, "node%d", agent->node + 1);
    int ok = !strcmp(cnode, leg_field(legs, "linkout", k->pairing, "node")) &&
             !strcmp(anode, leg_field(legs, "link", k->pairing, "node")) &&
             qc_oracle_were_connected(&R.c->sim, 0, k->caller, near) == 1 &&
             qc_oracle_were_connected(&R.c->sim, 0, far, k->agent_chan) == 1;
    R.links_checked += ok;
    return ok;
}

static void check_connects_on_timelines(void)
{
    json_t *all = sim_ctl(&R.c->sim, 0, "GET", "/sim/channels", NULL, NULL);
    assert_true(json_is_array(all));
    json_t *legs = link_legs(all);
    for (size_t i = 0; i < R.nconnects; i++) {
        connect_t *k = &R.connects[i];
        int ok = k->cross
                     ? cross_on_timelines(legs, k)
                     : qc_oracle_were_connected(&R.c->sim, 0, k->caller, k->agent_chan);
        if (ok != 1)
            fail_msg(
                "seed %u: CONNECT %s (%s): the timelines of %s and %s never show them "
                "connected",
                R.seed, k->pairing, k->cross ? "across nodes" : "one node", k->caller,
                k->agent_chan);
    }
    json_decref(legs);
    json_decref(all);
}

static void check_clean(void)
{
    char err[1024];
    for (int n = 0; n < NNODES; n++)
        if (qc_sim_wait_clean(&R.c->sim, n, WAIT_MS, 0, err, sizeof err))
            fail_msg("seed %u: node%d: %s", R.seed, n + 1, err);
    int clean = -1;
    for (int t = 0; t < WAIT_MS && clean; t += 20) {
        clean = qc_redis_clean(R.rc, NULL, err, sizeof err);
        if (clean)
            test_sleep_ms(20);
    }
    if (clean)
        fail_msg("seed %u: %s", R.seed, err);
}

/* Every caller the script placed reached the queue: an ENTERQUEUE (even one
 * gone before its answer is logged as entered, then abandoned), so the
 * checker's "ends exactly one way" covers every caller placed. */
static void check_every_caller_entered(const qc_stream *s, int placed)
{
    for (int i = 0; i < placed; i++) {
        const party_t *p = R.callers[i].p;
        bool entered = false;
        for (size_t j = 0; j < qc_stream_len(s) && !entered; j++) {
            const qc_event *e = qc_stream_at(s, j);
            entered = !strcmp(e->event, "ENTERQUEUE") && !strcmp(e->callid, p->chan);
        }
        if (!entered)
            fail_msg("seed %u: caller %s (node%d) never reached the queue: no ENTERQUEUE",
                     R.seed, p->chan, p->node + 1);
    }
}

/* The callers placed who connected, and those who abandoned (an ABANDON in
 * some queue and no CONNECT), for the soak's figures. */
static void count_callers(const qc_stream *s, int placed, int *connected, int *abandoned)
{
    *connected = *abandoned = 0;
    for (int i = 0; i < placed; i++) {
        const char *id = R.callers[i].p->chan;
        bool c = false, a = false;
        for (size_t j = 0; j < qc_stream_len(s); j++) {
            const qc_event *e = qc_stream_at(s, j);
            if (!strcmp(e->callid, id)) {
                c |= !strcmp(e->event, "CONNECT");
                a |= !strcmp(e->event, "ABANDON");
            }
        }
        *connected += c;
        *abandoned += a && !c;
    }
}

static void check_the_end(int placed)
{
    char err[1024];
    for (int n = 0; n < NNODES; n++)
        if (!queued_proc_alive(&R.c->q[n]))
            fail_msg("seed %u: queued on node%d died (its log: %s)", R.seed, n + 1,
                     R.c->q[n].logpath);
    check_clean();
    read_new_events();
    qc_stream *s = qc_stream_load(R.rc, NULL);
    assert_non_null(s);
    qc_opts o = {.final = true, .priority_of = priority_of};
    qc_stats st;
    int rc = qc_check(s, &o, &st, err, sizeof err);
    int recstart = qc_stream_count(s, "RECORDSTART");
    if (rc) {
        const char *cid = strstr(err, "callid=");
        if (cid) { /* the history of the caller the check stopped at */
            char id[136];
            if (sscanf(cid, "callid=%135[^ ]", id) == 1) {
                fprintf(stderr, "seed %u: every entry of caller %s:\n", R.seed, id);
                qc_stream_history(s, id, stderr);
            }
        }
        qc_stream_free(s);
        for (int n = 0; n < NNODES; n++)
            fprintf(stderr, "seed %u: node%d's log: %s\n", R.seed, n + 1, R.c->q[n].logpath);
        fail_msg("seed %u: events stream: %s", R.seed, err);
    }
    check_every_caller_entered(s, placed);
    int connected, abandoned;
    count_callers(s, placed, &connected, &abandoned);
    qc_stream_free(s);
    int stored = 0, discarded = 0;
    if (qc_recordings_agree(&R.c->sim, 0, R.rc, NULL, &stored, &discarded, err,
                            sizeof err))
        fail_msg("seed %u: %s", R.seed, err);
    check_connects_on_timelines();
    fprintf(
        stderr,
        "seed %u: %d entries (at most %d waiting in a queue), %d pairings (%d "
        "order-checked, %d rolled back), %d connects (%d across nodes, links on the "
        "timelines %d; %d sampled connected live, %d already over), %d completes, %d "
        "abandons, %d withdraws; %d keys, %d agent leaves (%d while a link rang), caller "
        "hangups: %d waiting, %d while a link rang, %d in a call; %d link-rule windows; "
        "recordings %d (stored %d, discarded %d)\n",
        R.seed, st.enters, st.max_waiting, st.paired, st.order_checked, R.rollbacks,
        st.connects, R.cross_connects, R.links_checked, R.live_confirmed,
        R.live_unconfirmed, st.completes, st.abandons, st.withdraws, R.keys_sent,
        R.agent_leaves, R.agent_leaves_ringing, R.caller_hangups_waiting,
        R.caller_hangups_ringing, R.caller_hangups_talking, R.rule_windows, recstart,
        stored, discarded);
    assert_int_equal((size_t)st.connects, R.nconnects);
    assert_true(st.connects > 0 && st.abandons > 0 && R.cross_connects > 0 &&
                R.rollbacks > 0);
    if (R.live_resampled)
        fprintf(stderr,
                "seed %u: %d connects sampled again once both their nodes had told Redis "
                "what they held during an outage\n",
                R.seed, R.live_resampled);
    if (R.passed_over)
        fprintf(stderr,
                "seed %u: %d callers passed over while their node drained (the order and "
                "positions around them not checked)\n",
                R.seed, R.passed_over);
    fprintf(stderr, "seed %u: callers: placed=%d connected=%d abandoned=%d\n", R.seed,
            placed, connected, abandoned);
}

/* ---- the run --------------------------------------------------------------------- */

static void test_random_multi_run(void **state)
{
    (void)state;
    static const char *const qs[] = {"q1&q2&q3", "q1", "q2", "q3", "q1&q2", "q2&q3"};
    int next_caller = 0, tick = 0;
    for (int i = 0; i < NAGENTS; i++) {
        snprintf(R.agents[i].id, sizeof R.agents[i].id, "%d", 8001 + i);
        R.agents[i].queues = qs[i % 6];
        R.agents[i].back_at = i * 3; /* they log in over the first 72 ticks */
    }
    for (; tick < MAX_TICKS; tick++) {
        tick_once(tick, &next_caller);
        if (next_caller == NCALLERS && tick > ARRIVAL_TICKS && tick % 20 == 0 &&
            callers_alive() == 0)
            break;
        test_sleep_ms(TICK_MS);
    }
    fprintf(stderr, "seed %u: script ran %d ticks\n", R.seed, tick);
    faults_end();
    json_decref(sim_ctl(&R.c->sim, 0, "DELETE", "/sim/originate-rules", NULL, NULL));
    for (size_t i = 0; i < R.nparties; i++) /* everybody hangs up: callers, then agents */
        if (R.parties[i].priority >= 0)
            hangup(R.parties[i].chan);
    test_sleep_ms(200);
    for (size_t i = 0; i < R.nparties; i++)
        hangup(R.parties[i].chan);
    if (!sim_wait_live_channels(&R.c->sim, 0, 0, WAIT_MS))
        fail_msg("seed %u: channels still alive %d s after everybody hung up", R.seed,
                 WAIT_MS / 1000);
    check_the_end(next_caller);
}

static int setup(void **state)
{
    (void)state;
    R.c = calloc(1, sizeof *R.c);
    const char *fault = getenv("ARIQ_FAULT");
    int m = FM_NONE;
    while (fault && *fault && m < FM__COUNT && strcmp(fault, fault_mode_names[m]))
        m++;
    if (m == FM__COUNT) {
        fprintf(stderr, "ARIQ_FAULT=%s: expected restart, redis, wsdrop or mixed\n",
                fault);
        return -1;
    }
    R.mode = (fault_mode)m;
    R.frng = 0xD1B54A32D192ED03ULL ^ ((uint64_t)R.seed * 0x9E3779B97F4A7C15ULL);
    R.frng = R.frng ? R.frng : 1;
    R.down_node = -1;
    /* with faults, a heartbeat long enough that a restart, an outage or a
     * sanitizer build's stall is never taken for a death (reaping is issue
     * 4's test, the fault-free run keeps its 1 s) */
    bool restarts = R.mode != FM_NONE;
    const char *general = restarts
                              ? "sweep_ms = 50\nheartbeat_s = 300\nlink_timeout_s = 5\n"
                              : "sweep_ms = 50\nheartbeat_s = 1\nlink_timeout_s = 5\n";
    /* q1 announces every 5 s (50 ms here); q2 has a wrapup of 1 s (10 ms
     * here); links time out after 5 s (50 ms) when left ringing. */
    if (!R.c ||
        queued_cluster_start(R.c, NNODES, 0.01, general,
                             "[queue q1]\nannounce_frequency = 5\n"
                             "[queue q2]\nannounce_frequency = 30\nwrapup_time = 1\n"
                             "[queue q3]\nannounce_frequency = 0\n") != 0) {
        free(R.c);
        R.c = NULL;
        return -1;
    }
    const char *lat = getenv("ARIQ_SIM_LATENCY_MS"); /* widen every window */
    if (lat && *lat) {
        char body[64];
        snprintf(body, sizeof body, "{\"latency_ms\":%d}", atoi(lat));
        for (int n = 0; n < NNODES; n++)
            if (sim_fault(&R.c->sim, n, body) != 200)
                return -1;
    }
    R.rc = redis_proc_connect(&R.c->redis);
    R.parties = calloc(MAX_CHANS, sizeof *R.parties);
    R.connects = calloc(NCALLERS + 1, sizeof *R.connects);
    return R.rc && R.parties && R.connects ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (R.mode != FM_NONE) /* here: printed even when the run failed */
        fprintf(
            stderr,
            "seed %u: faults (%s): kills=%d stops=%d redis_stops=%d redis_down_ms=%ld "
            "ws_drops=%d ws_refused=%d\n",
            R.seed, fault_mode_names[R.mode], R.kills, R.stops, R.redis_stops,
            R.redis_down_ms, R.ws_drops, R.ws_refused);
    if (R.rc)
        redisFree(R.rc);
    int st = R.c ? queued_cluster_stop(R.c) : -1;
    free(R.c);
    free(R.parties);
    free(R.connects);
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        fprintf(stderr, "seed %u: a queued did not exit 0 on SIGTERM (status %d)\n",
                R.seed, st);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    R.seed = test_rng_seed(argc, argv, DEFAULT_SEED);
    fprintf(stderr, "seed %u (rerun: test_queued_random_multi %u)\n", R.seed, R.seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_random_multi_run, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
