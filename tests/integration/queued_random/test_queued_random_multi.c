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
 *     alive and exiting 0 on SIGTERM. */
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

/* A party the script placed. */
typedef struct party_t {
    char chan[128];
    int node;
    int priority;  /* a caller's; -1 for an agent */
    char first[8]; /* a caller's first queue */
} party_t;

typedef struct caller_t {
    party_t *p;
    bool hung_up; /* by the script: it stops acting for it */
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
    int keys_sent, agent_leaves, agent_leaves_ringing, caller_hangups_waiting,
        caller_hangups_ringing, caller_hangups_talking, rule_windows;
    int rollbacks;
    bool faults;     /* ARIQ_FAULT=restart: queued processes die and come back */
    int down_node;   /* the node whose queued is dead, -1 if none */
    int back_tick;   /* when it comes back */
    int kills, stops; /* SIGKILL / SIGTERM restarts done */
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

/* A node for a newcomer: any but one whose queued is dead (there Stasis()
 * fails and the call goes on in the dialplan, never reaching the queue). */
static int arrival_node(void)
{
    int node = (int)test_rng_below(NNODES);
    return node == R.down_node ? (node + 1) % NNODES : node;
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
    return c ? c->p->priority : -1;
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

/* Samples one new CONNECT: connected now (through the link if it crosses
 * nodes), or the call is already over (the pairing gone from Redis, or a
 * party gone). A pairing still live with both parties alive must show them
 * connected (a few tries: queued may be between two requests). */
static void sample_connect(const connect_t *k)
{
    for (int tries = 0; tries < 10; tries++) {
        if (sim_is_connected(&R.c->sim, 0, k->caller, k->agent_chan) == 1) {
            R.live_confirmed++;
            return;
        }
        if (!pairing_exists(k->pairing) || !alive(k->caller) || !alive(k->agent_chan)) {
            R.live_unconfirmed++; /* over already: the timelines decide */
            return;
        }
        test_sleep_ms(10);
    }
    fail_msg(
        "seed %u: CONNECT %s (caller %s, agent %s): pairing live, both alive, but the "
        "oracle says they do not hear each other",
        R.seed, k->pairing, k->caller, k->agent_chan);
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
    const char *ev, *callid, *peer, *pairing, *agent_chan, *cnode, *anode, *reason;
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
    };
    entry_t e = {0};
    for (size_t k = 0; k + 1 < f->elements; k += 2)
        for (size_t j = 0; j < sizeof names / sizeof names[0]; j++)
            if (!strcmp(f->element[k]->str, names[j].name))
                *(const char **)((char *)&e + names[j].off) = f->element[k + 1]->str;
    return e;
}

static void on_entry(const entry_t *e)
{
    if (!e->ev || !e->pairing)
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
        sample_connect(k);
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

/* ARIQ_FAULT=restart: every FAULT_PERIOD ticks (2 s) one node's queued dies
 * (SIGKILL, or every third time a clean SIGTERM) and is started again 10 to
 * 60 ticks (0.1-0.6 s) later; the script goes on meanwhile (its parties
 * hang up, press keys), and the restarted node must re-adopt what is left. */
#define FAULT_PERIOD 200
static void faults(int tick)
{
    if (!R.faults)
        return;
    if (R.down_node >= 0 && tick >= R.back_tick) {
        if (queued_proc_restart(&R.c->q[R.down_node], &R.c->sim, R.down_node) != 0)
            fail_msg("seed %u: node%d did not come back", R.seed, R.down_node + 1);
        R.down_node = -1;
    } else if (R.down_node < 0 && tick % FAULT_PERIOD == FAULT_PERIOD / 2) {
        R.down_node = (int)test_rng_below(NNODES);
        R.back_tick = tick + 10 + (int)test_rng_below(50);
        if ((R.kills + R.stops) % 3 == 2) {
            R.stops++;
            if (queued_proc_stop(&R.c->q[R.down_node]) != 0)
                fail_msg("seed %u: node%d did not stop cleanly", R.seed, R.down_node + 1);
        } else {
            R.kills++;
            queued_proc_kill(&R.c->q[R.down_node]);
        }
    }
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
    read_new_events();
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
        qc_stream_free(s);
        fail_msg("seed %u: events stream: %s", R.seed, err);
    }
    check_every_caller_entered(s, placed);
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
    if (R.down_node >= 0) /* it comes back for the end */
        faults(R.back_tick);
    if (R.faults)
        fprintf(stderr, "seed %u: %d queued killed, %d stopped, each started again\n", R.seed,
                R.kills, R.stops);
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
    R.faults = fault && !strcmp(fault, "restart");
    R.down_node = -1;
    /* with faults, a heartbeat long enough that a restart is never taken
     * for a death (reaping is issue 4's test) */
    const char *general = R.faults ? "sweep_ms = 50\nheartbeat_s = 300\nlink_timeout_s = 5\n"
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
