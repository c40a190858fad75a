/* queue_store's restore op against a real redis-server: Redis came back
 * empty (FLUSHALL here) and each node re-registers the waiting callers and
 * logged-in agents it serves, with their original seqs and scores, so that
 * the order over both nodes is what it was; with Redis's data kept the op
 * changes nothing.
 *
 * What a node "knows" is read here from Redis before the flush (its node
 * sets and records), as a node keeps it in memory. Each test runs its own
 * server and the harness's nodes "A" (0) and "B" (1) on one loop, and ends
 * with every store freed and the loop empty. Callers get channel
 * ch-<callid>, agents ag-<agentid> (harness.c). QS_SCRIPTS_DIR names a
 * mutated copy of queue.lua, to see these tests fail without what they
 * test (hx_setup_env). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "harness.h"

#define OK       HX_OK
#define hget     hx_hget4
#define setup    hx_setup_env
#define teardown hx_teardown

/* ---- what a node knows ---------------------------------------------------- */

/* One caller or agent as the node holds it; the restore structs point in. */
typedef struct party {
    char id[QS_ID_MAX + 1], channel[QS_ID_MAX + 1], chan_name[QS_TEXT_MAX + 1];
    char state[32], reason[QS_TEXT_MAX + 1], cid_num[QS_TEXT_MAX + 1],
        cid_name[QS_TEXT_MAX + 1];
    char qbuf[QS_QUEUES_MAX][QS_NAME_MAX + 1];
    const char *qv[QS_QUEUES_MAX];
    size_t nq;
} party;

typedef struct mem {
    size_t nc, na;
    party *c, *a;
    qs_restore_call *rc;
    qs_restore_agent *ra;
    int64_t maxseq;
} mem;

static long long llv(const redisReply *v)
{
    return v && v->type == REDIS_REPLY_STRING ? atoll(v->str) : 0;
}

static void cpy(char *dst, size_t len, const redisReply *v)
{
    snprintf(dst, len, "%s", v && v->type == REDIS_REPLY_STRING ? v->str : "");
}

static void split_into(party *p, const redisReply *v)
{
    const char *s = v && v->type == REDIS_REPLY_STRING ? v->str : "";
    p->nq = 0;
    while (*s && p->nq < QS_QUEUES_MAX) {
        size_t len = strcspn(s, "&");
        snprintf(p->qbuf[p->nq], QS_NAME_MAX + 1, "%.*s", (int)len, s);
        p->qv[p->nq] = p->qbuf[p->nq];
        p->nq++;
        s += len + (s[len] == '&');
    }
}

static void maxseq_add(mem *m, long long v)
{
    if (v > m->maxseq)
        m->maxseq = v;
}

/* A waiting call of the node, as qs_restore takes it. */
static void mem_call(hx *h, mem *m, const char *id)
{
    redisReply *r = redisCommand(h->rc,
                                 "HMGET {ariq}:call:%s channel queues priority seq score "
                                 "entered_ms cid_num cid_name ann_ms state",
                                 id);
    assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements == 10);
    redisReply **v = r->element;
    if (v[9]->type == REDIS_REPLY_STRING && strcmp(v[9]->str, "waiting") == 0) {
        party *p = &m->c[m->nc];
        snprintf(p->id, sizeof p->id, "%s", id);
        cpy(p->channel, sizeof p->channel, v[0]);
        split_into(p, v[1]);
        cpy(p->cid_num, sizeof p->cid_num, v[6]);
        cpy(p->cid_name, sizeof p->cid_name, v[7]);
        m->rc[m->nc++] = (qs_restore_call){.callid = p->id,
                                           .channel = p->channel,
                                           .queues = p->qv,
                                           .nqueues = p->nq,
                                           .priority = (int)llv(v[2]),
                                           .seq = llv(v[3]),
                                           .score = llv(v[4]),
                                           .entered_ms = llv(v[5]),
                                           .ann_ms = llv(v[8]),
                                           .cid_num = p->cid_num,
                                           .cid_name = p->cid_name};
    }
    maxseq_add(m, llv(v[3]));
    freeReplyObject(r);
}

/* An agent of the node not in a call (free, paused, wrapup). */
static void mem_agent(hx *h, mem *m, const char *id)
{
    redisReply *r =
        redisCommand(h->rc,
                     "HMGET {ariq}:agent:%s channel chan_name queues state "
                     "pause_reason free_seq login_ms since_ms wrapup_until_ms",
                     id);
    assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements == 9);
    redisReply **v = r->element;
    const char *st = v[3]->type == REDIS_REPLY_STRING ? v[3]->str : "";
    if (!strcmp(st, "free") || !strcmp(st, "paused") || !strcmp(st, "wrapup")) {
        party *p = &m->a[m->na];
        snprintf(p->id, sizeof p->id, "%s", id);
        cpy(p->channel, sizeof p->channel, v[0]);
        cpy(p->chan_name, sizeof p->chan_name, v[1]);
        split_into(p, v[2]);
        cpy(p->state, sizeof p->state, v[3]);
        cpy(p->reason, sizeof p->reason, v[4]);
        m->ra[m->na++] = (qs_restore_agent){.agentid = p->id,
                                            .channel = p->channel,
                                            .chan_name = p->chan_name,
                                            .queues = p->qv,
                                            .nqueues = p->nq,
                                            .state = p->state,
                                            .pause_reason = p->reason,
                                            .free_seq = llv(v[5]),
                                            .login_ms = llv(v[6]),
                                            .since_ms = llv(v[7]),
                                            .wrapup_until_ms = llv(v[8])};
    }
    maxseq_add(m, llv(v[5]));
    freeReplyObject(r);
}

static redisReply *members(hx *h, const char *node, const char *set)
{
    redisReply *r = redisCommand(h->rc, "SMEMBERS {ariq}:node:%s:%s", node, set);
    assert_true(r && r->type == REDIS_REPLY_ARRAY);
    return r;
}

/* What node `node` serves and the highest seq it knows of: its callers'
 * seqs, its agents' free_seqs, its pairings' p<seq>. */
static void mem_read(hx *h, const char *node, mem *m)
{
    memset(m, 0, sizeof *m);
    redisReply *calls = members(h, node, "calls"), *agents = members(h, node, "agents");
    redisReply *pairings = members(h, node, "pairings");
    m->c = calloc(calls->elements + 1, sizeof *m->c);
    m->rc = calloc(calls->elements + 1, sizeof *m->rc);
    m->a = calloc(agents->elements + 1, sizeof *m->a);
    m->ra = calloc(agents->elements + 1, sizeof *m->ra);
    for (size_t i = 0; i < calls->elements; i++)
        mem_call(h, m, calls->element[i]->str);
    for (size_t i = 0; i < agents->elements; i++)
        mem_agent(h, m, agents->element[i]->str);
    for (size_t i = 0; i < pairings->elements; i++)
        maxseq_add(m, atoll(pairings->element[i]->str + 1));
    freeReplyObject(calls);
    freeReplyObject(agents);
    freeReplyObject(pairings);
}

static void mem_free(mem *m)
{
    free(m->c);
    free(m->rc);
    free(m->a);
    free(m->ra);
    memset(m, 0, sizeof *m);
}

/* ---- the op ------------------------------------------------------------------ */

typedef struct rs_out {
    int done, err;
    char errmsg[QS_ERRMSG_MAX];
    qs_restore_result r;
} rs_out;

static void rs_cb(queue_store *qs, int err, const qs_restore_result *res, void *pd)
{
    rs_out *o = pd;
    o->err = err;
    snprintf(o->errmsg, sizeof o->errmsg, "%s", err ? qs_errmsg(qs) : "");
    if (res)
        o->r = *res;
    o->done++;
}

static int restore(hx *h, int node, const mem *m, rs_out *o)
{
    memset(o, 0, sizeof *o);
    int rc = qs_restore(h->n[node].qs, m->maxseq, m->rc, m->nc, m->ra, m->na, rs_cb, o);
    if (rc != 0)
        return rc;
    if (!hx_wait(h, &o->done, 1, 30000))
        return -100;
    return o->err;
}

/* ---- reading Redis -------------------------------------------------------- */

static void flushall(hx *h)
{
    redisReply *r = redisCommand(h->rc, "FLUSHALL");
    assert_true(r && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    assert_int_equal(hx_int(h, "DBSIZE"), 0);
}

/* A zset as "member=score ..." in order (caller frees). */
static char *zdump(hx *h, const char *queue, const char *which)
{
    redisReply *r =
        redisCommand(h->rc, "ZRANGE {ariq}:queue:%s:%s 0 -1 WITHSCORES", queue, which);
    assert_true(r && r->type == REDIS_REPLY_ARRAY);
    size_t len = 1;
    for (size_t i = 0; i < r->elements; i++)
        len += r->element[i]->len + 2;
    char *s = calloc(1, len), *o = s;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        o += sprintf(o, "%s=%s ", r->element[i]->str, r->element[i + 1]->str);
    freeReplyObject(r);
    return s;
}

/* Every zset of the queues in `queues` (space separated), in order. */
static char *queues_dump(hx *h, const char *queues)
{
    static const char *const which[] = {"callers", "arrivals", "agents"};
    char *all = calloc(1, 1), q[QS_NAME_MAX + 1];
    size_t len = 0;
    for (const char *p = queues; *p;) {
        size_t n = strcspn(p, " ");
        snprintf(q, sizeof q, "%.*s", (int)n, p);
        p += n + (p[n] == ' ');
        for (int i = 0; i < 3; i++) {
            char *z = zdump(h, q, which[i]);
            all = realloc(all, len + strlen(q) + strlen(z) + 32);
            len += (size_t)sprintf(all + len, "%s:%s: %s\n", q, which[i], z);
            free(z);
        }
    }
    return all;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A hash as sorted "field=value" lines, leaving out the fields in `skip`
 * (space separated, each followed by a space). Caller frees. */
static char *hdump(hx *h, const char *key, const char *skip)
{
    redisReply *r = redisCommand(h->rc, "HGETALL %s", key);
    assert_true(r && r->type == REDIS_REPLY_ARRAY);
    size_t n = r->elements / 2, len = 1, k = 0;
    char **lines = calloc(n + 1, sizeof *lines), pat[80];
    for (size_t i = 0; i < n; i++) {
        snprintf(pat, sizeof pat, "%s ", r->element[2 * i]->str);
        if (skip && strstr(skip, pat))
            continue;
        lines[k] = malloc(r->element[2 * i]->len + r->element[2 * i + 1]->len + 3);
        sprintf(lines[k], "%s=%s\n", r->element[2 * i]->str, r->element[2 * i + 1]->str);
        len += strlen(lines[k++]);
    }
    qsort(lines, k, sizeof *lines, cmp_str);
    char *s = calloc(1, len);
    for (size_t i = 0; i < k; i++) {
        strcat(s, lines[i]);
        free(lines[i]);
    }
    free(lines);
    freeReplyObject(r);
    return s;
}

/* Every record of the listed calls and agents ("call:c1 agent:a1 ..."),
 * without the fields a restore does not bring back. */
static char *records_dump(hx *h, const char *recs)
{
    char *all = calloc(1, 1), k[200];
    size_t len = 0;
    for (const char *p = recs; *p;) {
        size_t n = strcspn(p, " ");
        snprintf(k, sizeof k, "{ariq}:%.*s", (int)n, p);
        p += n + (p[n] == ' ');
        char *d = hdump(h, k, "opos anns calls_taken talk_ms ");
        all = realloc(all, len + strlen(k) + strlen(d) + 4);
        len += (size_t)sprintf(all + len, "%s\n%s", k, d);
        free(d);
    }
    return all;
}

static char *smembers_dump(hx *h, const char *node, const char *set)
{
    redisReply *r = members(h, node, set);
    char **v = calloc(r->elements + 1, sizeof *v), *s;
    size_t len = 1;
    for (size_t i = 0; i < r->elements; i++) {
        v[i] = r->element[i]->str;
        len += r->element[i]->len + 1;
    }
    qsort(v, r->elements, sizeof *v, cmp_str);
    s = calloc(1, len);
    for (size_t i = 0; i < r->elements; i++) {
        strcat(s, v[i]);
        strcat(s, " ");
    }
    free(v);
    freeReplyObject(r);
    return s;
}

static void same_str(char *before, char *after)
{
    assert_string_equal(before, after);
    free(before);
    free(after);
}

/* The commands Redis ran since CONFIG RESETSTAT, those in scripts
 * included, as " name=calls name=calls ... " (the INFO itself left out).
 * One of four rotating buffers. */
static const char *commands_run(hx *h)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    char *o = buf[k];
    snprintf(o, sizeof buf[k], " ");
    redisReply *r = redisCommand(h->rc, "INFO commandstats");
    assert_true(r && r->type == REDIS_REPLY_STRING);
    char name[64];
    long long calls;
    for (const char *p = strstr(r->str, "cmdstat_"); p; p = strstr(p + 1, "cmdstat_"))
        if (sscanf(p, "cmdstat_%63[^:]:calls=%lld", name, &calls) == 2 &&
            strcmp(name, "info") != 0)
            snprintf(o + strlen(o), sizeof buf[k] - strlen(o), "%s=%lld ", name, calls);
    freeReplyObject(r);
    return o;
}

static long long seq_now(hx *h)
{
    return hx_int(h, "GET {ariq}:seq");
}

static int bridged(hx *h, int node, const char *pid)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_bridged(h->n[node].qs, pid, QS_SIDE_BOTH, hx_result_cb, &hx_o),
                   &hx_o);
}

static int pause_agent(hx *h, int node, const char *agentid, bool paused)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h,
                   qs_agent_pause(h->n[node].qs, agentid, paused, "lunch", false,
                                  hx_result_cb, &hx_o),
                   &hx_o);
}

/* `agent` logs in on `node` on queue `q`, takes call `call` (entered there
 * on `node`) and ends it with wrapup: the agent is in wrapup after. */
static void into_wrapup(hx *h, int node, const char *agent, const char *call,
                        const char *q)
{
    hx_out o;
    OK(hx_login(h, node, agent, q, false, &o));
    OK(hx_enter(h, node, call, 0, q, true, &o));
    assert_int_equal(o.npairs, 1);
    OK(bridged(h, node, o.pairs[0].pairing));
    h->now += 2000;
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h,
               qs_leave(h->n[node].qs, call, QS_LEAVE_HANGUP, QS_BY_CALLER, 30000, false,
                        hx_result_cb, &hx_o),
               &hx_o));
    char key[QS_NAME_MAX + 16];
    snprintf(key, sizeof key, "{ariq}:agent:%s", agent);
    assert_string_equal(hget(h, key, "state"), "wrapup");
}

/* ---- Redis lost its data ------------------------------------------------------- */

#define QUEUES "q r s t w x"
#define RECORDS                                                                          \
    "call:c1 call:c2 call:c3 call:c4 call:c6 agent:a1 agent:a2 agent:b1 agent:b2"

/* Callers, free, paused and wrapup agents on both nodes, a bridged pairing
 * on A; FLUSHALL; each node restores its own. Every queue holds the same
 * members with the same scores, in the same order; the records and node
 * sets are back; {NS}:seq is the highest either node knew (A's pairing);
 * RESTORE events, no ENTERQUEUE or AGENTLOGIN; a new caller numbers above
 * and ranks behind those of its priority. */
static void test_restore_after_flush(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_enter(h, 0, "c1", 0, "q", false, &o));
    OK(hx_enter(h, 1, "c2", 0, "q&r", false, &o));
    OK(hx_login(h, 0, "a1", "s", false, &o));
    OK(hx_enter(h, 1, "c3", 5, "r&q", false, &o));
    h->now += 1000;
    OK(hx_enter(h, 0, "c4", 0, "r", false, &o));
    OK(hx_login(h, 1, "b1", "s&t", false, &o));
    OK(hx_login(h, 0, "a2", "t", false, &o));
    OK(pause_agent(h, 0, "a2", true));
    into_wrapup(h, 1, "b2", "c5", "w");
    OK(hx_enter(h, 1, "c6", 0, "q", false, &o));
    /* A's bridged pairing: its parties are not restored, its number is */
    OK(hx_login(h, 0, "a3", "x", false, &o));
    OK(hx_enter(h, 0, "c7", 0, "x", true, &o));
    assert_int_equal(o.npairs, 1);
    OK(bridged(h, 0, o.pairs[0].pairing));
    long long pid = atoll(o.pairs[0].pairing + 1), seq = seq_now(h);
    assert_int_equal(pid, seq);

    char *zs = queues_dump(h, QUEUES), *recs = records_dump(h, RECORDS);
    mem ma, mb;
    mem_read(h, "A", &ma);
    mem_read(h, "B", &mb);
    assert_int_equal(ma.nc, 2); /* c1 c4 (c7 is bridged) */
    assert_int_equal(ma.na, 2); /* a1 a2 (a3 talks) */
    assert_int_equal(mb.nc, 3);
    assert_int_equal(mb.na, 2);
    assert_int_equal(ma.maxseq, pid);
    assert_true(mb.maxseq < pid);

    flushall(h);
    h->now += 60000;
    rs_out r;
    OK(restore(h, 1, &mb, &r));
    assert_int_equal(r.r.seq, mb.maxseq);
    assert_int_equal(seq_now(h), mb.maxseq);
    assert_int_equal(r.r.restored_calls, 3);
    assert_int_equal(r.r.restored_agents, 2);
    assert_int_equal(r.r.present_calls + r.r.present_agents, 0);
    OK(restore(h, 0, &ma, &r));
    assert_int_equal(r.r.seq, pid);
    assert_int_equal(seq_now(h), seq);
    assert_int_equal(r.r.restored_calls, 2);
    assert_int_equal(r.r.restored_agents, 2);

    same_str(zs, queues_dump(h, QUEUES));
    same_str(recs, records_dump(h, RECORDS));
    /* the node sets hold the parties restored (not c7, a3) */
    same_str(strdup("c1 c4 "), smembers_dump(h, "A", "calls"));
    same_str(strdup("a1 a2 "), smembers_dump(h, "A", "agents"));
    same_str(strdup("c2 c3 c6 "), smembers_dump(h, "B", "calls"));
    same_str(strdup("b1 b2 "), smembers_dump(h, "B", "agents"));
    /* opos is the position as restored: c1 entered first, now c3 (priority
     * 5, restored by B before) is ahead of it */
    assert_string_equal(hget(h, "{ariq}:call:c1", "opos"), "2");
    assert_int_equal(hx_int(h, "EXISTS {ariq}:call:c7"), 0);
    assert_int_equal(hx_int(h, "EXISTS {ariq}:agent:a3"), 0);

    /* events: one RESTORE per party, with the common fields */
    hx_events e;
    hx_events_read(h, &e);
    assert_int_equal(e.n, 9);
    assert_int_equal(hx_count(&e, "RESTORE"), 9);
    int i = hx_find(&e, "RESTORE", "callid", "c3", 0);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&e.v[i], "queue"), "r");
    assert_string_equal(hx_ev(&e.v[i], "agent"), "NONE");
    assert_string_equal(hx_ev(&e.v[i], "node"), "B");
    assert_string_equal(hx_ev(&e.v[i], "position"), "1");
    assert_string_equal(hx_ev(&e.v[i], "ts_ms"), "1700000063000");
    i = hx_find(&e, "RESTORE", "agent", "b2", 0);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&e.v[i], "queue"), "w");
    assert_string_equal(hx_ev(&e.v[i], "callid"), "NONE");
    assert_string_equal(hx_ev(&e.v[i], "state"), "wrapup");
    hx_events_free(&e);

    /* a new caller of priority 0 numbers above all and ranks behind c1,
     * c2, c6 (and c3, of priority 5) */
    OK(hx_enter(h, 0, "c8", 0, "q", false, &o));
    assert_int_equal(o.enter.seq, pid + 1);
    assert_int_equal(hx_zrank(h, "q", "c8"), 4);
    assert_int_equal(hx_zrank(h, "q", "c3"), 0);
    mem_free(&ma);
    mem_free(&mb);
}

/* Redis kept its data: nothing changes (the keyspace is the same byte for
 * byte, {NS}:seq included, no event), every party counted present. Then
 * one caller and one agent lost (their keys deleted by hand): only they
 * come back. */
static void test_restore_present(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_enter(h, 0, "c1", 0, "q&r", false, &o));
    OK(hx_enter(h, 0, "c2", 3, "r", false, &o));
    OK(hx_login(h, 0, "a1", "s", false, &o));
    OK(hx_login(h, 0, "a2", "s", false, &o));
    OK(pause_agent(h, 0, "a2", true));
    OK(hx_enter(h, 1, "c3", 0, "q", false, &o));
    mem m;
    mem_read(h, "A", &m);
    assert_true(m.maxseq < seq_now(h)); /* B's caller came later */
    char *before = hx_snapshot(h);
    redisReply *x = redisCommand(h->rc, "CONFIG RESETSTAT");
    freeReplyObject(x);
    rs_out r;
    OK(restore(h, 0, &m, &r));
    /* not one write, and one EXISTS for the calls, one for the agents */
    const char *ran = commands_run(h);
    if (!strstr(ran, " exists=2 ") || !strstr(ran, " evalsha=1 "))
        fail_msg("commands run: %s", ran);
    static const char *const writes[] = {"set",  "hset", "zadd", "sadd",
                                         "xadd", "incr", "del",  "pexpire"};
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        char w[32];
        snprintf(w, sizeof w, " %s=", writes[i]);
        if (strstr(ran, w))
            fail_msg("a write: %s", ran);
    }
    HX_UNCHANGED(h, before);
    assert_int_equal(r.r.seq, seq_now(h));
    assert_int_equal(r.r.present_calls, 2);
    assert_int_equal(r.r.present_agents, 2);
    assert_int_equal(r.r.restored_calls + r.r.restored_agents, 0);

    /* c1 and a1 lost */
    char *zq = zdump(h, "q", "callers"), *zs = zdump(h, "s", "agents");
    x = redisCommand(h->rc, "DEL {ariq}:call:c1 {ariq}:agent:a1 {ariq}:queue:q:callers "
                            "{ariq}:queue:q:arrivals {ariq}:queue:s:agents");
    freeReplyObject(x);
    x = redisCommand(h->rc, "ZREM {ariq}:queue:r:callers c1");
    freeReplyObject(x);
    x = redisCommand(h->rc, "ZREM {ariq}:queue:r:arrivals c1");
    freeReplyObject(x);
    x = redisCommand(h->rc, "ZADD {ariq}:queue:q:callers %s c3",
                     hget(h, "{ariq}:call:c3", "score"));
    freeReplyObject(x);
    x = redisCommand(h->rc, "ZADD {ariq}:queue:q:arrivals %s c3",
                     hget(h, "{ariq}:call:c3", "seq"));
    freeReplyObject(x);
    OK(restore(h, 0, &m, &r));
    assert_int_equal(r.r.present_calls, 1);
    assert_int_equal(r.r.present_agents, 1);
    assert_int_equal(r.r.restored_calls, 1);
    assert_int_equal(r.r.restored_agents, 1);
    same_str(zq, zdump(h, "q", "callers"));
    same_str(zs, zdump(h, "s", "agents"));
    assert_int_equal(hx_zrank(h, "r", "c1"), 1); /* c2 has priority 3 */
    assert_string_equal(hget(h, "{ariq}:call:c1", "opos"), "1&2");
    mem_free(&m);
}

/* Agents free, paused and in wrapup come back as they were; the free ones
 * take the callers in the original order (pair op): the higher priority
 * first, then the earlier arrival, each with the agent free the longest. A
 * paused one pairs once unpaused, one in wrapup once ready. */
static void test_restore_agents(void **state)
{
    hx *h = *state;
    hx_out o;
    into_wrapup(h, 0, "b2", "c0", "q");
    OK(hx_login(h, 0, "a1", "q", false, &o));
    OK(hx_login(h, 1, "a2", "q", false, &o));
    OK(hx_login(h, 0, "p1", "q&r", false, &o));
    OK(pause_agent(h, 0, "p1", true));
    OK(hx_enter(h, 1, "c1", 0, "q", false, &o));
    OK(hx_enter(h, 0, "c2", 0, "q", false, &o));
    OK(hx_enter(h, 1, "c3", 10, "q", false, &o));
    OK(hx_enter(h, 0, "c4", 0, "q", false, &o));
    OK(hx_enter(h, 1, "c5", 0, "q", false, &o));
    char *recs = records_dump(h, "agent:a1 agent:a2 agent:p1 agent:b2");
    mem ma, mb;
    mem_read(h, "A", &ma);
    mem_read(h, "B", &mb);
    assert_int_equal(ma.na, 3);
    flushall(h);
    rs_out r;
    OK(restore(h, 0, &ma, &r));
    OK(restore(h, 1, &mb, &r));
    same_str(recs, records_dump(h, "agent:a1 agent:a2 agent:p1 agent:b2"));
    assert_string_equal(hget(h, "{ariq}:agent:p1", "state"), "paused");
    assert_string_equal(hget(h, "{ariq}:agent:p1", "paused"), "1");
    assert_string_equal(hget(h, "{ariq}:agent:p1", "pause_reason"), "lunch");
    assert_string_equal(hget(h, "{ariq}:agent:b2", "wrapup_until_ms"), "1700000032000");
    assert_string_equal(hget(h, "{ariq}:agent:a1", "paused"), "0");
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:q:agents"), 2);
    assert_int_equal(hx_int(h, "ZCARD {ariq}:queue:r:agents"), 0);

    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_pair_queue(h->n[0].qs, "q", hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 2);
    assert_string_equal(hx_o.pairs[0].call, "c3");
    assert_string_equal(hx_o.pairs[0].agent, "a1");
    assert_string_equal(hx_o.pairs[1].call, "c1");
    assert_string_equal(hx_o.pairs[1].agent, "a2");
    assert_string_equal(hx_o.pairs[1].caller_node, "B");
    assert_string_equal(hx_o.pairs[1].agent_node, "B");
    /* the pairing ids number above what the nodes held */
    assert_true(atoll(hx_o.pairs[0].pairing + 1) > ma.maxseq);
    assert_true(atoll(hx_o.pairs[0].pairing + 1) > mb.maxseq);
    /* the paused one pairs once unpaused, the one in wrapup once ready */
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_agent_pause(h->n[0].qs, "p1", false, "", true, hx_result_cb, &hx_o),
               &hx_o));
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].call, "c2");
    memset(&hx_o, 0, sizeof hx_o);
    OK(hx_done(h, qs_agent_ready(h->n[0].qs, "b2", true, hx_result_cb, &hx_o), &hx_o));
    assert_int_equal(hx_o.npairs, 1);
    assert_string_equal(hx_o.pairs[0].call, "c4");
    assert_string_equal(hx_o.pairs[0].agent, "b2");
    mem_free(&ma);
    mem_free(&mb);
}

/* ---- arguments ---------------------------------------------------------------- */

/* EVALSHA of restore on A with the given arguments after the fixed four. */
static void refused(hx *h, const char *keys3, int n, const char **args)
{
    const char *sha = store_script_sha(h->n[0].s, "queue");
    const char *argv[80] = {"EVALSHA", sha,       "3",    "{ariq}:seq", "{ariq}:events",
                            keys3,     "restore", "1000", "A",          "100"};
    int argc = 10;
    for (int i = 0; i < n && argc < 80; i++)
        argv[argc++] = args[i];
    redisReply *r = redisCommandArgv(h->rc, argc, argv, NULL);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "ERR ariq:", 9) != 0)
        fail_msg("not refused: type %d %s", r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
}

#define K "{ariq}:node:A:calls"
/* one good call and one good agent, each 10 arguments */
#define CALL(id, q, prio, seq, score)                                                    \
    id, "ch-" id, q, prio, seq, score, "1700000000000", "555", "Ann", "0"
#define AGENT(id, st, fseq, wrap)                                                        \
    id, "ag-" id, "PJSIP/x", "s", st, "", fseq, "1700000000000", "1700000000000", wrap

/* Bad counts, ids, numbers, states, duplicates and keys: refused, nothing
 * written (not even {NS}:seq), on an empty Redis where a good call writes.
 * The C side refuses before sending. */
static void test_bad_args(void **state)
{
    hx *h = *state;
    flushall(h);
    char *before = hx_snapshot(h);
    refused(h, K, 2, (const char *[]){"9", "0"}); /* no nagents */
    refused(h, K, 4, (const char *[]){"9", "0", "0", "x"});
    refused(h, K, 3, (const char *[]){"9", "1", "0"}); /* one call short */
    refused(h, K, 13, (const char *[]){"9", "1", CALL("c1", "q", "0", "5", "100"), "1"});
    refused(h, K, 3, (const char *[]){"8796093022208", "0", "0"}); /* maxseq 2^43 */
    refused(h, K, 3, (const char *[]){"-1", "0", "0"});
    refused(h, K, 3, (const char *[]){"9", "90001", "0"});
    refused(h, K, 3, (const char *[]){"9", "0", "10001"});
    refused(h, K, 3, (const char *[]){"x", "0", "0"});
#define ONE_CALL(...) refused(h, K, 13, (const char *[]){"9", "1", __VA_ARGS__, "0"})
    ONE_CALL("c:1", "ch-c1", "q", "0", "5", "100", "1", "5", "A", "0");
    ONE_CALL("c1", "", "q", "0", "5", "100", "1", "5", "A", "0");
    ONE_CALL(CALL("c1", "q&&r", "0", "5", "100"));
    ONE_CALL(CALL("c1", "q&q", "0", "5", "100"));
    ONE_CALL(CALL("c1", "", "0", "5", "100"));
    ONE_CALL(CALL("c1", "q", "1001", "5", "100"));
    ONE_CALL(CALL("c1", "q", "-1", "5", "100"));
    ONE_CALL(CALL("c1", "q", "0", "0", "100"));  /* seq 0 */
    ONE_CALL(CALL("c1", "q", "0", "10", "100")); /* seq above maxseq */
    ONE_CALL(CALL("c1", "q", "0", "5", "0"));    /* score 0 */
    ONE_CALL(CALL("c1", "q", "0", "5", "8804889115230208"));
    ONE_CALL(CALL("c1", "q", "0", "5", "1.5"));
    ONE_CALL("c1", "ch-c1", "q", "0", "5", "100", "-1", "5", "A", "0");
    ONE_CALL("c1", "ch-c1", "q", "0", "5", "100", "1", "5|6", "A", "0");
    ONE_CALL("c1", "ch-c1", "q", "0", "5", "100", "1", "5", "A\n", "0");
    ONE_CALL("c1", "ch-c1", "q", "0", "5", "100", "1", "5", "A", "x");
    ONE_CALL("c1", "ch-c1", "q", "0", "5", "100", "1", "5", "A", "4102444800001");
#define ONE_AGENT(...) refused(h, K, 13, (const char *[]){"9", "0", "1", __VA_ARGS__})
    ONE_AGENT(AGENT("a1", "talking", "3", "0"));
    ONE_AGENT(AGENT("a1", "paired", "3", "0"));
    ONE_AGENT(AGENT("a1", "free", "0", "0")); /* a free agent needs its place */
    ONE_AGENT(AGENT("a1", "free", "10", "0"));
    ONE_AGENT(AGENT("a1", "wrapup", "3", "0")); /* wrapup needs its end */
    ONE_AGENT(AGENT("a1", "free", "3", "-1"));
    ONE_AGENT(AGENT("a12345678901234567890123456789012345678901234567890123456789012345",
                    "free", "3", "0"));
    ONE_AGENT("a1", "ag-a1", "PJSIP|x", "s", "free", "", "3", "1", "1", "0");
    ONE_AGENT("a1", "ag-a1", "PJSIP/x", "s", "paused", "a|b", "3", "1", "1", "0");
    ONE_AGENT("a1", "ag-a1", "PJSIP/x", "s&", "free", "", "3", "1", "1", "0");
    ONE_AGENT("a1", "ag-a1", "PJSIP/x", "s", "free", "", "3", "", "1", "0");
    /* an id twice, a good party before the bad one */
    refused(h, K, 23,
            (const char *[]){"9", "2", CALL("c1", "q", "0", "5", "100"),
                             CALL("c1", "r", "0", "6", "101"), "0"});
    refused(h, K, 23,
            (const char *[]){"9", "0", "2", AGENT("a1", "free", "3", "0"),
                             AGENT("a1", "paused", "3", "0")});
    refused(h, K, 23,
            (const char *[]){"9", "1", CALL("c1", "q", "0", "5", "100"), "1",
                             AGENT("a1", "free", "0", "0")});
    /* not our key, or not a node's calls */
    refused(h, "{ariq}:node:B:calls", 3, (const char *[]){"9", "0", "0"});
    refused(h, "{ariq}:call:c1", 3, (const char *[]){"9", "0", "0"});

    /* the C side refuses before sending: the callback never runs */
    const char *qs1[] = {"q"}, *qs2[] = {"q", "q"};
    qs_restore_call c = {.callid = "c1",
                         .channel = "ch-c1",
                         .queues = qs1,
                         .nqueues = 1,
                         .seq = 5,
                         .score = 100,
                         .entered_ms = 1};
    qs_restore_agent a = {.agentid = "a1",
                          .channel = "ag-a1",
                          .queues = qs1,
                          .nqueues = 1,
                          .state = "free",
                          .free_seq = 3};
    qs_restore_call bc[3] = {c, c, c};
    bc[0].queues = qs2;
    bc[0].nqueues = 2;
    bc[1].priority = 1001;
    bc[2].cid_name = "a|b";
    qs_restore_agent ba[4] = {a, a, a, a};
    ba[0].state = "talking";
    ba[1].free_seq = 0;
    ba[2].state = "wrapup";
    ba[3].agentid = NULL;
    rs_out r;
    memset(&r, 0, sizeof r);
    queue_store *qs = h->n[0].qs;
    assert_int_equal(qs_restore(qs, 9, &c, 1, &a, 1, NULL, NULL), ARIQ_EINVAL);
    assert_int_equal(qs_restore(qs, 9, NULL, 1, NULL, 0, rs_cb, &r), ARIQ_EINVAL);
    assert_int_equal(qs_restore(qs, 9, &c, QS_RESTORE_CALLS_MAX + 1, NULL, 0, rs_cb, &r),
                     ARIQ_EINVAL);
    assert_int_equal(qs_restore(qs, 9, NULL, 0, &a, QS_RESTORE_AGENTS_MAX + 1, rs_cb, &r),
                     ARIQ_EINVAL);
    assert_int_equal(qs_restore(qs, INT64_C(1) << 43, &c, 1, &a, 1, rs_cb, &r),
                     ARIQ_EINVAL);
    assert_int_equal(qs_restore(qs, 4, &c, 1, NULL, 0, rs_cb, &r), ARIQ_EINVAL);
    for (int i = 0; i < 3; i++) {
        qs_restore_call two[2] = {c, bc[i]};
        two[0].callid = "c0";
        assert_int_equal(qs_restore(qs, 9, two, 2, &a, 1, rs_cb, &r), ARIQ_EINVAL);
        assert_non_null(strstr(qs_errmsg(qs), "restore call 1:"));
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(qs_restore(qs, 9, &c, 1, &ba[i], 1, rs_cb, &r), ARIQ_EINVAL);
        assert_non_null(strstr(qs_errmsg(qs), "restore agent 0:"));
    }
    /* a duplicate is the script's to refuse: the callback says so */
    qs_restore_agent two[2] = {a, a};
    two[1].state = "paused";
    OK(qs_restore(qs, 9, &c, 1, two, 2, rs_cb, &r));
    assert_true(hx_wait(h, &r.done, 1, 5000));
    assert_int_equal(r.err, ARIQ_EINVAL);
    assert_non_null(strstr(r.errmsg, "given twice"));
    HX_UNCHANGED(h, before);
    /* and the good one writes */
    memset(&r, 0, sizeof r);
    OK(qs_restore(qs, 9, &c, 1, &a, 1, rs_cb, &r));
    assert_true(hx_wait(h, &r.done, 1, 5000));
    OK(r.err);
    assert_int_equal(r.r.restored_calls + r.r.restored_agents, 2);
    assert_int_equal(seq_now(h), 9);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:q:callers c1"), 100);
}

/* ---- scale ---------------------------------------------------------------- */

/* Redis's own time for the last EVALSHA (SLOWLOG, logging everything). */
static long long script_us(hx *h)
{
    redisReply *x = redisCommand(h->rc, "SLOWLOG GET 10");
    long long us = -1;
    for (size_t i = 0; x && i < x->elements && us < 0; i++) {
        redisReply *e = x->element[i];
        if (e->element[3]->elements > 0 &&
            strcmp(e->element[3]->element[0]->str, "EVALSHA") == 0)
            us = e->element[2]->integer;
    }
    freeReplyObject(x);
    return us;
}

static void slowlog_reset(hx *h)
{
    redisReply *x = redisCommand(h->rc, "SLOWLOG RESET");
    freeReplyObject(x);
}

/* 5,000 callers and 500 agents on A: restore with all present (one EXISTS
 * each, nothing written), then after FLUSHALL with all missing; Redis's
 * measure of each is printed and bounded, the queues are as they were. */
static void test_scale(void **state)
{
    hx *h = *state;
    hx_out o;
    char id[32];
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof id, "a%d", i);
        OK(hx_login(h, 0, id, i % 2 ? "s" : "q&r", false, &o));
        if (i % 2 == 0)
            OK(pause_agent(h, 0, id, true));
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "c%d", i);
        OK(hx_enter(h, 0, id, i % 3, i % 2 ? "q" : "q&r", false, &o));
    }
    char *zs = queues_dump(h, "q r s");
    mem m;
    mem_read(h, "A", &m);
    assert_int_equal(m.nc, 5000);
    assert_int_equal(m.na, 500);
    redisReply *x = redisCommand(h->rc, "CONFIG SET slowlog-log-slower-than 0");
    freeReplyObject(x);
    for (int round = 0; round < 2; round++) {
        if (round == 1)
            flushall(h);
        slowlog_reset(h);
        rs_out r;
        uint64_t t0 = clock_mono_us();
        OK(restore(h, 0, &m, &r));
        uint64_t t1 = clock_mono_us();
        long long us = script_us(h);
        fprintf(stderr,
                "restore %s: 5000 calls, 500 agents -> script %lld us, round trip %llu "
                "us; restored %lld/%lld present %lld/%lld\n",
                round ? "all missing" : "all present", us, (unsigned long long)(t1 - t0),
                (long long)r.r.restored_calls, (long long)r.r.restored_agents,
                (long long)r.r.present_calls, (long long)r.r.present_agents);
        assert_int_equal(round ? r.r.restored_calls : r.r.present_calls, 5000);
        assert_int_equal(round ? r.r.restored_agents : r.r.present_agents, 500);
        /* loose bounds (the machine may be loaded): the figures are printed */
        assert_true(us > 0 && us < (round ? 2000000 : 250000));
    }
    same_str(zs, queues_dump(h, "q r s"));
    mem_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_restore_after_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_present, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_agents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
