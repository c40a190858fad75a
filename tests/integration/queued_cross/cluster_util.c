/* cluster_util.c - see cluster_util.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "cluster_util.h"
#include "redis_proc.h"
#include "sim_proc.h"

queued_cluster *C;

int start(void **state, int nnodes, double scale, const char *general,
                 const char *queues)
{
    queued_cluster *c = calloc(1, sizeof *c);
    if (!c || queued_cluster_start(c, nnodes, scale, general, queues) != 0) {
        free(c);
        return -1;
    }
    C = c;
    *state = c;
    return 0;
}

int teardown(void **state)
{
    queued_cluster *c = *state;
    int st = queued_cluster_stop(c);
    free(c);
    return (WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : -1;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the oracle ------------------------------------------------------------ */

json_t *chan(int node, const char *id)
{
    json_t *c = sim_channel(&C->sim, node, id);
    assert_non_null(c);
    return c;
}

/* A boolean of the oracle's channel summary ("alive", "hearing_moh"). */
bool flag(int node, const char *id, const char *name)
{
    json_t *c = chan(node, id);
    bool on = json_is_true(json_object_get(c, name));
    json_decref(c);
    return on;
}

bool wait_flag(int node, const char *id, const char *name, bool want)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (flag(node, id, name) == want)
            return true;
    return false;
}


/* Who hung the channel up ("party", "app", "link", ...), or "" if alive. */
const char *hung_up_by(int node, const char *id, char *buf, size_t len)
{
    json_t *c = chan(node, id);
    json_t *h = json_object_get(c, "hangup");
    snprintf(buf, len, "%s", json_is_object(h) ? json_string_value(json_object_get(h, "who")) : "");
    json_decref(c);
    return buf;
}

/* ---- placing parties --------------------------------------------------------- */

void place(int node, const char *args, const char *number, char *id, size_t len)
{
    json_t *c = sim_place_call(&C->sim, node, "queue", args, number, id, len);
    assert_non_null(c);
    json_decref(c);
}

/* An agent on `node` waiting in the holding bridge. */
void agent_in(int node, const char *queues, const char *agentid, char *id, size_t len)
{
    char args[128];
    snprintf(args, sizeof args, "agent,%s,%s", queues, agentid);
    place(node, args, agentid, id, len);
    assert_true(wait_moh(node, id));
}

void caller_in(int node, const char *queues, char *id, size_t len)
{
    char args[128];
    snprintf(args, sizeof args, "caller,%s", queues);
    place(node, args, "5551000", id, len);
}

void wait_connected(const char *a, const char *b)
{
    if (!sim_wait_connected(&C->sim, 0, a, b, true, WAIT_MS))
        fail_msg("%s never connected with %s", a, b);
}

/* A caller on `node` put through to `agent` (on another node): connected
 * through the link. */
void caller_connects(int node, const char *queues, char *id, size_t len,
                            const char *agent)
{
    caller_in(node, queues, id, len);
    wait_connected(id, agent);
}

/* ---- Redis -------------------------------------------------------------------- */

redisContext *redis(void)
{
    redisContext *rc = redis_proc_connect(&C->redis);
    assert_non_null(rc);
    return rc;
}

int count_events(const char *type)
{
    redisContext *rc = redis();
    qc_stream *s = qc_stream_load(rc, NULL);
    assert_non_null(s);
    int n = qc_stream_count(s, type);
    qc_stream_free(s);
    redisFree(rc);
    return n;
}

bool wait_events(const char *type, int n)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (count_events(type) >= n)
            return true;
    return false;
}

/* An agent on node2 and a caller on node1 of `queue` talking through the
 * link, CONNECT logged. */
void call_across(const char *queue, const char *agentid, char *agent, char *caller)
{
    agent_in(N2, queue, agentid, agent, 128);
    caller_connects(N1, queue, caller, 128, agent);
    assert_true(wait_events("CONNECT", 1));
}

/* Everybody gone: the checker over the whole stream, nothing of any party
 * in Redis, nothing in the simulator. */
void call_local(int node, const char *queue, const char *agentid, char *agent, char *caller)
{
    agent_in(node, queue, agentid, agent, 128);
    caller_in(node, queue, caller, 128);
    wait_connected(caller, agent);
    assert_true(wait_events("CONNECT", 1));
}

void assert_all_clean(void)
{
    for (int node = 0; node < C->nnodes; node++)
        if (!sim_wait_live_channels(&C->sim, node, 0, WAIT_MS))
            fail_msg("node%d still has live channels", node + 1);
    sleep_ms(200); /* the last writes of the nodes */
    redisContext *rc = redis();
    char err[512];
    qc_stream *s = qc_stream_load(rc, NULL);
    assert_non_null(s);
    qc_opts o = {.final = true};
    if (qc_check(s, &o, NULL, err, sizeof err) != 0)
        fail_msg("events: %s", err);
    qc_stream_free(s);
    if (qc_redis_clean(rc, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    redisFree(rc);
    for (int node = 0; node < C->nnodes; node++)
        if (qc_sim_wait_clean(&C->sim, node, WAIT_MS, 0, err, sizeof err) != 0)
            fail_msg("node%d: %s", node + 1, err);
}

/* ---- Redis views ------------------------------------------------------------------ */

/* HGET of a key ("" when missing) into buf. */
const char *hget(const char *key, const char *field, char *buf, size_t len)
{
    redisContext *rc = redis();
    redisReply *r = redisCommand(rc, "HGET %s %s", key, field);
    snprintf(buf, len, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    redisFree(rc);
    return buf;
}

/* 0-based rank in a sorted set, -1 when not a member. */
long long zrank(const char *key, const char *member)
{
    redisContext *rc = redis();
    redisReply *r = redisCommand(rc, "ZRANK %s %s", key, member);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    redisFree(rc);
    return v;
}

/* The last event of `type` in the stream, copied; false if none. */
bool last_event(const char *type, qc_event *out)
{
    redisContext *rc = redis();
    qc_stream *s = qc_stream_load(rc, NULL);
    assert_non_null(s);
    bool found = false;
    for (size_t i = 0; i < qc_stream_len(s); i++) {
        const qc_event *e = qc_stream_at(s, i);
        if (!strcmp(e->event, type)) {
            *out = *e;
            found = true;
        }
    }
    qc_stream_free(s);
    redisFree(rc);
    return found;
}

/* The detail of the last UNPAIRED (XREVRANGE: the checker keeps only the
 * reason). */
void last_unpaired_detail(char *buf, size_t len)
{
    redisContext *rc = redis();
    redisReply *r = redisCommand(rc, "XREVRANGE {ariq}:events + - COUNT 200");
    buf[0] = '\0';
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && !buf[0]; i++) {
        redisReply *kv = r->element[i]->element[1];
        bool unpaired = false;
        for (size_t j = 0; j + 1 < kv->elements; j += 2)
            if (!strcmp(kv->element[j]->str, "event") &&
                !strcmp(kv->element[j + 1]->str, "UNPAIRED"))
                unpaired = true;
        for (size_t j = 0; unpaired && j + 1 < kv->elements; j += 2)
            if (!strcmp(kv->element[j]->str, "detail"))
                snprintf(buf, len, "%s", kv->element[j + 1]->str);
    }
    freeReplyObject(r);
    redisFree(rc);
}

/* Polls the agent's record until its state is `want`; returns it. */
const char *wait_agent_state(const char *agentid, const char *want, char *st,
                                    size_t len)
{
    char k[96];
    snprintf(k, sizeof k, "{ariq}:agent:%s", agentid);
    for (int t = 0; t < WAIT_MS && strcmp(hget(k, "state", st, len), want); t += 10)
        sleep_ms(10);
    return st;
}

void hang_up(int node, const char *id)
{
    assert_int_equal(sim_hangup_call(&C->sim, node, id, 16), 204);
    assert_true(wait_gone(node, id));
}

