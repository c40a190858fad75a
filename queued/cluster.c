/* cluster.c - what a node owes the other nodes: it reads its command stream
 * (pairings other nodes made for its callers), says it is alive (the
 * heartbeat), and reaps the entries of nodes that stopped saying so.
 *
 * The command stream {NS}:node:<me>:cmds is read with XREAD BLOCK on a Redis
 * connection of its own (a blocking read would hold back every reply of the
 * command connection). The first read starts after the stream's last entry
 * at that moment (XREVRANGE + - COUNT 1): the node owns no channel yet, so
 * nothing older can be for it. After that it resumes from the last id it
 * read, across reconnects, so nothing is read twice or skipped (unless more
 * than the stream's cap came meanwhile: a pairing lost that way stays
 * "paired" in Redis until its caller leaves; the log says so).
 *
 *   reader   on                          next
 *   START    XREVRANGE answered          READING  (node_cluster_ready once)
 *   READING  entries, or the block ends  READING  (each `pair` -> node_take_pairings)
 *   any      connection lost             START or READING again when ready
 *
 * Heartbeat: every heartbeat_s (scaled, at least 0.5 s) node_heartbeat.lua sets
 * {NS}:node:<me>:heartbeat with a TTL of two periods, then every other
 * member of {NS}:nodes is offered to queue.lua `reap`, which refuses a node
 * whose heartbeat still exists (BADSTATE) and reaps one whose heartbeat
 * lapsed: a dead node's entries go within three periods. Every node does it
 * (agentd too, later); reap is idempotent, so two at once are harmless.
 *
 * A node whose Asterisk is gone (its events WebSocket down for two periods
 * and no answer to GET /asterisk/info either: dead, restarting,
 * unreachable) stops beating: its callers and agents are
 * gone with that Asterisk, so the other nodes reap them and undo the
 * pairings that target it, within three periods more. It beats again once
 * its Asterisk is back (and its legs whose channels vanished meanwhile end;
 * node.c also pairs nothing while the WebSocket is down). */
#include "node_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "store/reaper.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "cluster"
#define READ_BLOCK_MS "2000" /* well under the store's reply watchdog (10 s) */
#define READ_COUNT "256"

struct cluster {
    node *n;
    store *rd; /* the reader's own connection */
    char key[STORE_KEY_MAX];
    char last_id[64]; /* "" until the start is known */
    bool reading;     /* a read is in flight */
    bool told_ready;
    struct event *beat;
    unsigned beats;
    bool unhealthy; /* Asterisk lost: the node does not beat */
    uint64_t reap_from; /* monotonic ms: no reaping before (cluster_redis_back) */
    reaper *rp;         /* made at the first offer */
    uint64_t entries; /* command entries read */
};

/* ---- the command stream -------------------------------------------------------- */

static void read_next(cluster *cl);

static bool copy_field(const redisReply *kv, const char *name, char *dst, size_t len)
{
    const redisReply *v = store_entry_field(kv, name);
    if (!v || v->len == 0 || v->len >= len)
        return false;
    memcpy(dst, v->str, v->len + 1);
    return true;
}

static bool int_field(const redisReply *kv, const char *name, int64_t *out)
{
    char buf[24], *end;
    if (!copy_field(kv, name, buf, sizeof buf))
        return false;
    *out = strtoll(buf, &end, 10);
    return *end == '\0';
}

/* One `cmd pair` entry into a pairing; false if anything is missing. Redis
 * is outside input: every field is bounded and the ids checked when used. */
static bool parse_pair(const redisReply *kv, qs_pairing *p)
{
    memset(p, 0, sizeof *p);
    return copy_field(kv, "pairing", p->pairing, sizeof p->pairing) &&
           copy_field(kv, "call", p->call, sizeof p->call) &&
           copy_field(kv, "agent", p->agent, sizeof p->agent) &&
           copy_field(kv, "queue", p->queue, sizeof p->queue) &&
           copy_field(kv, "caller_channel", p->caller_channel, sizeof p->caller_channel) &&
           copy_field(kv, "agent_channel", p->agent_channel, sizeof p->agent_channel) &&
           copy_field(kv, "caller_node", p->caller_node, sizeof p->caller_node) &&
           copy_field(kv, "agent_node", p->agent_node, sizeof p->agent_node) &&
           int_field(kv, "created_ms", &p->created_ms) &&
           int_field(kv, "holdtime_ms", &p->holdtime_ms);
}

static void take_entry(cluster *cl, const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= sizeof cl->last_id ||
        e->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    memcpy(cl->last_id, e->element[0]->str, e->element[0]->len + 1);
    cl->entries++;
    const redisReply *kv = e->element[1];
    const redisReply *cmd = store_entry_field(kv, "cmd");
    qs_pairing p;
    if (cmd && strcmp(cmd->str, "pair") == 0 && parse_pair(kv, &p)) {
        LOG_D(MOD, "cmd=pair pairing=%s call=%s agent=%s@%s", p.pairing, p.call, p.agent,
              p.agent_node);
        node_take_pairings(cl->n, &p, 1);
    } else if (!cmd || strcmp(cmd->str, "pair") != 0) {
        actions_take(cl->n, cl->last_id, kv); /* agentd's, or not understood: answered */
    } else {
        LOG_W(MOD, "id=%s command not understood: ignored", cl->last_id);
    }
}

static void on_read(store *s, const redisReply *r, void *pd)
{
    (void)s;
    cluster *cl = pd;
    cl->reading = false;
    if (!r)
        return; /* connection lost: on_reader_ready resumes */
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *entries = r->element[0]->element[1];
        for (size_t i = 0; i < entries->elements && !cl->n->closing; i++)
            take_entry(cl, entries->element[i]);
    } else if (r->type == REDIS_REPLY_ERROR) {
        LOG_W(MOD, "reading %s: %s", cl->key, r->str);
    }
    if (!cl->n->closing)
        read_next(cl);
}

static void read_next(cluster *cl)
{
    if (cl->reading || !store_is_ready(cl->rd))
        return;
    const char *argv[] = {"XREAD", "COUNT", READ_COUNT, "BLOCK", READ_BLOCK_MS,
                          "STREAMS", cl->key, cl->last_id};
    if (store_command_argv(cl->rd, 8, argv, NULL, on_read, cl) == 0)
        cl->reading = true;
}

static void on_start_id(store *s, const redisReply *r, void *pd)
{
    (void)s;
    cluster *cl = pd;
    cl->reading = false;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return; /* lost, or refused: tried again at the next ready */
    const redisReply *e = r->elements ? r->element[0] : NULL;
    if (e && e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
        e->element[0]->type == REDIS_REPLY_STRING && e->element[0]->len < sizeof cl->last_id)
        memcpy(cl->last_id, e->element[0]->str, e->element[0]->len + 1);
    else
        snprintf(cl->last_id, sizeof cl->last_id, "0-0");
    LOG_I(MOD, "node=%s reading %s from %s", cl->n->cfg->node_id, cl->key, cl->last_id);
    if (!cl->told_ready) {
        cl->told_ready = true;
        node_cluster_ready(cl->n);
    }
    read_next(cl);
}

static void on_reader_ready(store *s, void *ud)
{
    cluster *cl = ud;
    if (cl->last_id[0]) {
        read_next(cl);
        return;
    }
    const char *argv[] = {"XREVRANGE", cl->key, "+", "-", "COUNT", "1"};
    if (store_command_argv(s, 6, argv, NULL, on_start_id, cl) == 0)
        cl->reading = true;
}

/* ---- round-trip statistics and the queue registry ------------------------------- */

typedef struct timed_req {
    node *n;
    ari_cb cb;
    void *pd;
} timed_req;

static void on_timed(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    timed_req *t = pd;
    static const double bounds[STORE_RTT_BUCKETS - 1] = STORE_RTT_BOUNDS_MS;
    size_t b = 0;
    while (b < STORE_RTT_BUCKETS - 1 && r->elapsed_ms > bounds[b])
        b++;
    t->n->ari_rtt[b]++;
    t->n->ari_rtt_sum_ms += r->elapsed_ms;
    if (t->cb)
        t->cb(&t->n->rest_timed, r, t->pd);
    free(t);
}

static int timed_request(void *impl, const char *method, const char *path, const json_t *body,
                         ari_cb cb, void *pd)
{
    node *n = impl;
    timed_req *t = malloc(sizeof *t);
    if (!t)
        return ARIQ_ENOMEM;
    *t = (timed_req){n, cb, pd};
    int rc = ari_rest_request(n->rest_inner, method, path, body, on_timed, t);
    if (rc)
        free(t); /* an error never calls back */
    return rc;
}

static const ari_rest_ops timed_ops = {timed_request};

ari_rest *cluster_timed_rest(node *n, ari_rest *inner)
{
    n->rest_inner = inner;
    n->rest_timed = (ari_rest){&timed_ops, n};
    return &n->rest_timed;
}

/* "1:c,2:c,...,+Inf:c", cumulative, from per-bucket counts; returns the
 * total. */
static uint64_t buckets_text(const uint64_t *per, char *out, size_t len)
{
    static const unsigned bounds[STORE_RTT_BUCKETS - 1] = STORE_RTT_BOUNDS_MS;
    uint64_t cum = 0;
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < STORE_RTT_BUCKETS; i++) {
        cum += per[i];
        char le[16];
        if (i < STORE_RTT_BUCKETS - 1)
            snprintf(le, sizeof le, "%u", bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        int w = snprintf(out + used, len - used, "%s%s:%llu", i ? "," : "", le,
                         (unsigned long long)cum);
        if (w < 0 || (size_t)w >= len - used)
            break;
        used += (size_t)w;
    }
    return cum;
}

static uint64_t period_ms(const cluster *cl);

/* {NS}:node:<me>:stats, TTL three periods (fire and forget: the next beat
 * writes it again). */
static void write_stats(cluster *cl, store *s)
{
    node *n = cl->n;
    char key[STORE_KEY_MAX], rb[400], ab[400], rsum[32], rcnt[24], asum[32], acnt[24],
        ttl[24];
    if (store_key(store_get_keys(s), key, sizeof key, "node", n->cfg->node_id, "stats") != 0)
        return;
    store_stats st;
    store_get_stats(s, &st);
    snprintf(rcnt, sizeof rcnt, "%llu",
             (unsigned long long)buckets_text(st.rtt_buckets, rb, sizeof rb));
    snprintf(rsum, sizeof rsum, "%.3f", (double)st.rtt_sum_us / 1000.0);
    snprintf(acnt, sizeof acnt, "%llu",
             (unsigned long long)buckets_text(n->ari_rtt, ab, sizeof ab));
    snprintf(asum, sizeof asum, "%.3f", n->ari_rtt_sum_ms);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)(3 * period_ms(cl)));
    const char *hset[] = {"HSET", key, "redis_rtt_ms_buckets", rb, "redis_rtt_ms_sum_ms", rsum,
                          "redis_rtt_ms_count", rcnt, "ari_rtt_ms_buckets", ab,
                          "ari_rtt_ms_sum_ms", asum, "ari_rtt_ms_count", acnt};
    const char *pexp[] = {"PEXPIRE", key, ttl};
    store_command_argv(s, 14, hset, NULL, NULL, NULL);
    store_command_argv(s, 3, pexp, NULL, NULL, NULL);
}

/* SADD {NS}:queues <every configured queue> (fire and forget: done again at
 * every reconnect). */
static void register_queues(cluster *cl, store *s)
{
    const qcfg *c = cl->n->cfg;
    char key[STORE_KEY_MAX];
    if (!c->nqueues || !store_is_ready(s) ||
        store_key(store_get_keys(s), key, sizeof key, "queues", NULL, NULL) != 0)
        return;
    const char **argv = calloc(c->nqueues + 2, sizeof *argv);
    if (!argv)
        return;
    argv[0] = "SADD";
    argv[1] = key;
    for (size_t i = 0; i < c->nqueues; i++)
        argv[2 + i] = c->queues[i].name;
    if (store_command_argv(s, (int)c->nqueues + 2, argv, NULL, NULL, NULL) != 0)
        LOG_W(MOD, "node=%s cannot add its queues to %s", c->node_id, key);
    free(argv);
}

/* ---- heartbeat and reaping ----------------------------------------------------- */

/* The offering itself is shared with agentd (store/reaper.c). The reaper
 * is made at the first offer: the queue store does not exist yet when the
 * cluster is created. */
static void offer_reaps(cluster *cl, store *s)
{
    if (clock_mono_ms() < cl->reap_from || cl->n->closing)
        return; /* Redis just came back: the others have not beaten yet */
    if (!cl->rp && reaper_new(s, cl->n->qs, cl->n->cfg->node_id, &cl->rp) != 0)
        return;
    reaper_offer(cl->rp);
}

static void on_beat(store *s, const redisReply *r, void *pd)
{
    cluster *cl = pd;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        LOG_W(MOD, "node=%s heartbeat failed: %s", cl->n->cfg->node_id,
              r ? r->str : "no reply");
        return;
    }
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1 && cl->beats++ > 0)
        LOG_E(MOD, "node=%s was taken for dead and reaped by another node: its waiting "
                   "callers and agents left the queues",
              cl->n->cfg->node_id);
    else if (cl->beats == 0)
        cl->beats = 1;
    offer_reaps(cl, s);
}

/* heartbeat_s, scaled for tests but never under HEARTBEAT_MIN_MS: a loop
 * stalled that long (a loaded machine, a sanitizer build) must not get a
 * live node reaped. */
#define HEARTBEAT_MIN_MS 500
static uint64_t period_ms(const cluster *cl)
{
    uint64_t ms = clock_scaled_ms((uint64_t)cl->n->cfg->heartbeat_s * 1000u);
    return ms < HEARTBEAT_MIN_MS ? HEARTBEAT_MIN_MS : ms;
}

/* While the events WebSocket is down: is Asterisk there at all? */
static void on_probe(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    node *n = pd;
    if (r->status == 200)
        n->ari_rest_ok_ms = clock_mono_ms();
}

static void probe(cluster *cl)
{
    if (cl->n->rest)
        ari_asterisk_info(cl->n->rest, on_probe, cl->n);
}

static uint64_t period_ms(const cluster *cl);

void cluster_redis_back(cluster *cl)
{
    cl->reap_from = clock_mono_ms() + 2 * period_ms(cl);
    register_queues(cl, cl->n->store);
}

void cluster_beat(cluster *cl)
{
    store *s = cl->n->store;
    char hb[STORE_KEY_MAX], nodes[STORE_KEY_MAX], ttl[24], now[24];
    node *n = cl->n;
    uint64_t now_ms = clock_mono_ms(), grace = 2 * period_ms(cl);
    uint64_t heard = n->ari_rest_ok_ms > n->ari_down_since ? n->ari_rest_ok_ms : n->ari_down_since;
    /* lost: no events for two periods and no REST answer either (a refused
     * or dropped WebSocket alone is a blip: its channels are still there) */
    bool lost = n->ari_down_since && now_ms - n->ari_down_since > grace && now_ms - heard > grace;
    if (n->ari_down_since)
        probe(cl);
    if (lost != cl->unhealthy) {
        cl->unhealthy = lost;
        if (lost)
            LOG_E(MOD, "node=%s Asterisk unreachable for %llu ms: not beating, so the other "
                       "nodes reap this node's callers and agents and undo its pairings",
                  n->cfg->node_id, (unsigned long long)(clock_mono_ms() - n->ari_down_since));
        else
            LOG_W(MOD, "node=%s Asterisk is back: beating again", n->cfg->node_id);
    }
    if (lost && store_is_ready(s)) {
        offer_reaps(cl, s);
        return;
    }
    if (!store_is_ready(s) ||
        store_key_node_heartbeat(store_get_keys(s), hb, sizeof hb, cl->n->cfg->node_id) != 0 ||
        store_key_nodes(store_get_keys(s), nodes, sizeof nodes) != 0)
        return;
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)(2 * period_ms(cl)));
    snprintf(now, sizeof now, "%llu", (unsigned long long)clock_wall_ms());
    const char *keys[] = {hb, nodes};
    const char *args[] = {cl->n->cfg->node_id, ttl, now};
    store_script(s, "node_heartbeat", 2, keys, 3, args, on_beat, cl);
    write_stats(cl, s);
}

static void on_beat_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cluster_beat(arg);
}

/* ---- life cycle ---------------------------------------------------------------- */

int cluster_new(node *n, const store_config *sc, cluster **out, char *err, size_t errlen)
{
    cluster *cl = calloc(1, sizeof *cl);
    if (!cl)
        return ARIQ_ENOMEM;
    cl->n = n;
    store_callbacks cbs = {.on_ready = on_reader_ready};
    int rc = store_new(n->base, sc, &cbs, cl, &cl->rd, err, errlen);
    if (rc == 0 && store_key(store_get_keys(cl->rd), cl->key, sizeof cl->key, "node",
                             n->cfg->node_id, "cmds") != 0) {
        snprintf(err, errlen, "node_id '%s' cannot name a Redis key", n->cfg->node_id);
        rc = ARIQ_EINVAL;
    }
    if (rc == 0) {
        uint64_t ms = period_ms(cl);
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        cl->beat = event_new(n->base, -1, EV_PERSIST, on_beat_timer, cl);
        if (!cl->beat || event_add(cl->beat, &tv) != 0) {
            snprintf(err, errlen, "cannot arm the heartbeat");
            rc = ARIQ_ENOMEM;
        }
    }
    if (rc) {
        cluster_free(cl);
        return rc;
    }
    *out = cl;
    return 0;
}

void cluster_free(cluster *cl)
{
    if (!cl)
        return;
    if (cl->beat)
        event_free(cl->beat);
    store_free(cl->rd); /* a read in flight completes with NULL */
    reaper_free(cl->rp); /* after the node's store: its reaps have completed */
    free(cl);
}
