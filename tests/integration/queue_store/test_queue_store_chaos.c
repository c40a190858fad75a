/* A seeded random script on two nodes at once: callers join one or two
 * queues with random priorities, agents serve random queue sets, pairings
 * are bridged and completed (by either side, with or without wrapup),
 * rolled back (keep, back, pause), abandoned while paired, or broken by the
 * agent hanging up; callers abandon and time out at random; agents pause,
 * unpause, log off and log in again. Everything is pipelined, so the two
 * nodes' requests interleave in Redis. Then every caller and agent leaves.
 *
 * A checker over the events stream then proves what the multi-node issue
 * asks: no caller or agent is ever in two pairings at once (PAIRED ..
 * UNPAIRED), every pairing ends exactly once, every (caller, queue) entered
 * ends exactly one way (ABANDON, EXITWITHTIMEOUT, WITHDRAW or CONNECT),
 * every CONNECT has exactly one COMPLETECALLER/COMPLETEAGENT, every
 * AGENTLOGIN one AGENTLOGOFF, and nothing is left in Redis but the counter
 * and the stream. Run with several seeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "harness.h"

#define NCALLERS     1500
#define NAGENTS      10
#define INFLIGHT_MAX 128

typedef struct chaos {
    hx *h;
    uint32_t rng;
    int inflight, sent, fatal, logins;
    char fatal_msg[QS_ERRMSG_MAX + 64];
} chaos;

/* One request's context: what it was about. */
typedef struct ctx {
    chaos *c;
    char call[QS_ID_MAX + 1];
    char agent[QS_ID_MAX + 1];
    int node;
    int step; /* what to do next with this pairing */
} ctx;

static uint32_t rnd(chaos *c, uint32_t n)
{
    uint32_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c->rng = x;
    return x % n;
}

static const char *const agent_queues[] = {"q1", "q2", "q1&q2"};

/* Refusals of state are normal in a race (the other node was faster);
 * anything else fails the test. */
static bool acceptable(chaos *c, int err)
{
    if (err == 0 || err == ARIQ_ENOTFOUND || err == ARIQ_ESTATE || err == ARIQ_EBUSY)
        return true;
    if (!c->fatal)
        snprintf(c->fatal_msg, sizeof c->fatal_msg, "%s: %s", ariq_strerror(err),
                 qs_errmsg(c->h->n[0].qs));
    c->fatal++;
    return false;
}

static ctx *ctx_new(chaos *c, const char *call, const char *agent, int node)
{
    ctx *x = calloc(1, sizeof *x);
    x->c = c;
    x->node = node;
    snprintf(x->call, sizeof x->call, "%s", call ? call : "");
    snprintf(x->agent, sizeof x->agent, "%s", agent ? agent : "");
    return x;
}

/* Counts a send; a refused send (not connected...) is fatal here. */
static void sent(chaos *c, int rc, ctx *x)
{
    if (rc == 0) {
        c->inflight++;
        return;
    }
    free(x);
    acceptable(c, rc == ARIQ_EINVAL ? ARIQ_EINVAL : ARIQ_EIO);
}

static void on_pairings(chaos *c, const qs_pairing *p, size_t n);

static void result_cb(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    ctx *x = pd;
    chaos *c = x->c;
    c->inflight--;
    if (acceptable(c, err) && res)
        on_pairings(c, res->pairings, res->npairings);
    free(x);
}

static void login(chaos *c, const char *agent, int node)
{
    char ch[64];
    snprintf(ch, sizeof ch, "ag-%s-%d", agent, c->logins++);
    char buf[16];
    snprintf(buf, sizeof buf, "%s", agent_queues[agent[1] % 3]);
    const char *qs[2];
    size_t nq = 0;
    for (char *tok = strtok(buf, "&"); tok; tok = strtok(NULL, "&"))
        qs[nq++] = tok;
    qs_agent a = {.agentid = agent,
                  .channel = ch,
                  .chan_name = "PJSIP/x",
                  .queues = qs,
                  .nqueues = nq};
    ctx *x = ctx_new(c, NULL, agent, node);
    sent(c, qs_agent_login(c->h->n[node].qs, &a, rnd(c, 2), result_cb, x), x);
}

/* After a completed call with wrapup, or a pause, the agent comes back. */
static void agent_back_cb(queue_store *qs, int err, const qs_result *res, void *pd)
{
    ctx *x = pd;
    chaos *c = x->c;
    c->inflight--;
    if (acceptable(c, err) && res) {
        on_pairings(c, res->pairings, res->npairings);
        if (x->step == 3) { /* log in again */
            login(c, x->agent, x->node);
        } else {
            ctx *y = ctx_new(c, NULL, x->agent, x->node);
            sent(c,
                 x->step == 1
                     ? qs_agent_ready(qs, x->agent, true, result_cb, y) /* wrapup over */
                     : qs_agent_pause(qs, x->agent, false, "", true, result_cb, y),
                 y);
        }
    }
    free(x);
}

static void bridged_cb(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)res;
    ctx *x = pd;
    chaos *c = x->c;
    c->inflight--;
    if (acceptable(c, err) && err == 0) {
        int wrapup = rnd(c, 3) == 0 ? 1000 : 0;
        ctx *y = ctx_new(c, x->call, x->agent, x->node);
        y->step = wrapup ? 1 : 0;
        int rc =
            qs_leave(qs, x->call, QS_LEAVE_HANGUP, rnd(c, 2) ? QS_BY_AGENT : QS_BY_CALLER,
                     wrapup, true, wrapup ? agent_back_cb : result_cb, y);
        sent(c, rc, y);
    }
    free(x);
}

/* What happens to a pairing this node got. */
static void handle_pairing(chaos *c, const qs_pairing *p)
{
    int node = strcmp(p->caller_node, "A") == 0 ? 0 : 1;
    queue_store *qs = c->h->n[node].qs;
    ctx *x = ctx_new(c, p->call, p->agent, node);
    uint32_t r = rnd(c, 10);
    int rc;
    if (r < 7) {
        rc = qs_bridged(qs, p->pairing, QS_SIDE_BOTH, bridged_cb, x);
    } else if (r == 7) {
        qs_agent_to to = (qs_agent_to)rnd(c, 3);
        x->step = 2;
        rc = qs_rollback(qs, p->pairing, "link failed", to,
                         to == QS_AGENT_PAUSE ? agent_back_cb : result_cb, x);
    } else if (r == 8) {
        rc = qs_leave(qs, p->call, QS_LEAVE_HANGUP, QS_BY_CALLER, 0, true, result_cb, x);
    } else {
        x->step = 3;
        x->node = strcmp(p->agent_node, "A") == 0 ? 0 : 1;
        rc = qs_agent_logoff(c->h->n[x->node].qs, p->agent, "hangup", true, agent_back_cb,
                             x);
    }
    sent(c, rc, x);
}

static void on_pairings(chaos *c, const qs_pairing *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        handle_pairing(c, &p[i]);
}

static void enter_cb(queue_store *qs, int err, const qs_enter_result *res, void *pd)
{
    (void)qs;
    ctx *x = pd;
    chaos *c = x->c;
    c->inflight--;
    if (acceptable(c, err) && res)
        on_pairings(c, res->pairings, res->npairings);
    free(x);
}

static void send_enter(chaos *c)
{
    char id[32], ch[40];
    snprintf(id, sizeof id, "c%05d", c->sent++);
    snprintf(ch, sizeof ch, "ch-%s", id);
    static const char *const sets[][2] = {
        {"q1", NULL}, {"q2", NULL}, {"q1", "q2"}, {"q2", "q1"}};
    const char *const *qs = sets[rnd(c, 4)];
    qs_caller cl = {.callid = id,
                    .channel = ch,
                    .priority = (int)rnd(c, 4),
                    .queues = qs,
                    .nqueues = qs[1] ? 2 : 1};
    int node = (int)rnd(c, 2);
    ctx *x = ctx_new(c, id, NULL, node);
    sent(c, qs_enter(c->h->n[node].qs, &cl, rnd(c, 2), enter_cb, x), x);
}

/* One random action besides entering. */
static void random_action(chaos *c)
{
    int node = (int)rnd(c, 2);
    queue_store *qs = c->h->n[node].qs;
    char id[32];
    uint32_t r = rnd(c, 10);
    ctx *x = ctx_new(c, NULL, NULL, node);
    int rc;
    if (r < 4) {
        rc = qs_pair_queue(qs, rnd(c, 2) ? "q1" : "q2", result_cb, x);
    } else if (r < 6 && c->sent) {
        snprintf(id, sizeof id, "c%05u", rnd(c, (uint32_t)c->sent));
        rc = qs_leave(qs, id, rnd(c, 2) ? QS_LEAVE_TIMEOUT : QS_LEAVE_HANGUP,
                      QS_BY_CALLER, 0, true, result_cb, x);
    } else if (r < 8) {
        snprintf(x->agent, sizeof x->agent, "a%u", rnd(c, NAGENTS));
        x->step = 2;
        rc = qs_agent_pause(qs, x->agent, true, "break", false, agent_back_cb, x);
    } else {
        snprintf(id, sizeof id, "a%u", rnd(c, NAGENTS));
        rc = qs_pair_agent(qs, id, result_cb, x);
    }
    sent(c, rc, x);
}

static void drain(chaos *c, int ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)ms;
    while (c->inflight && !c->fatal && clock_mono_ms() < end)
        event_base_loop(c->h->base, EVLOOP_ONCE);
}

static void run_script(chaos *c)
{
    char id[16];
    for (int i = 0; i < NAGENTS; i++) {
        snprintf(id, sizeof id, "a%d", i);
        login(c, id, i % 2);
    }
    uint64_t end = clock_mono_ms() + 60000;
    while (c->sent < NCALLERS && !c->fatal && clock_mono_ms() < end) {
        while (c->inflight < INFLIGHT_MAX && c->sent < NCALLERS) {
            send_enter(c);
            random_action(c);
        }
        c->h->now += rnd(c, 50);
        event_base_loop(c->h->base, EVLOOP_ONCE);
    }
    drain(c, 30000);
}

/* Everyone leaves: callers first, then agents. */
static void everyone_leaves(chaos *c)
{
    char id[16];
    for (int i = 0; i < c->sent; i++) {
        snprintf(id, sizeof id, "c%05d", i);
        ctx *x = ctx_new(c, id, NULL, i % 2);
        sent(c,
             qs_leave(c->h->n[i % 2].qs, id, QS_LEAVE_HANGUP, QS_BY_CALLER, 0, false,
                      result_cb, x),
             x);
        if (c->inflight >= INFLIGHT_MAX)
            drain(c, 30000);
    }
    drain(c, 30000);
    for (int i = 0; i < NAGENTS; i++) {
        snprintf(id, sizeof id, "a%d", i);
        ctx *x = ctx_new(c, NULL, id, 0);
        sent(c, qs_agent_logoff(c->h->n[0].qs, id, "end", false, result_cb, x), x);
    }
    drain(c, 30000);
}

/* ---- the checker ---------------------------------------------------------- */

typedef struct strs {
    int n;
    char **v;
} strs;

static void strs_add(strs *s, const char *a, const char *b)
{
    s->v = realloc(s->v, (size_t)(s->n + 1) * sizeof *s->v);
    size_t len = strlen(a) + (b ? strlen(b) : 0) + 2;
    s->v[s->n] = malloc(len);
    snprintf(s->v[s->n++], len, "%s|%s", a, b ? b : "");
}

static int cmp_s(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Two lists must hold the same strings, each once. */
static void strs_match(strs *a, strs *b, const char *what)
{
    qsort(a->v, (size_t)a->n, sizeof *a->v, cmp_s);
    qsort(b->v, (size_t)b->n, sizeof *b->v, cmp_s);
    if (a->n != b->n)
        fail_msg("%s: %d begin, %d end", what, a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        if (strcmp(a->v[i], b->v[i]) != 0)
            fail_msg("%s: %s vs %s", what, a->v[i], b->v[i]);
        if (i && strcmp(a->v[i], a->v[i - 1]) == 0)
            fail_msg("%s: %s twice", what, a->v[i]);
    }
}

static void strs_free(strs *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static bool is(const hx_event *e, const char *name)
{
    return strcmp(hx_ev(e, "event"), name) == 0;
}

/* PAIRED .. UNPAIRED: nobody in two live pairings; each pairing ends once. */
static void check_pairings(const hx_events *e)
{
    strs live = {0}, begin = {0}, end = {0};
    for (int i = 0; i < e->n; i++) {
        const hx_event *ev = &e->v[i];
        const char *c = hx_ev(ev, "callid"), *a = hx_ev(ev, "agent");
        if (is(ev, "PAIRED")) {
            for (int j = 0; j < live.n; j++)
                if (strcmp(live.v[j], c) == 0 || strcmp(live.v[j], a) == 0)
                    fail_msg("%s: %s or %s already paired", ev->id, c, a);
            live.v = realloc(live.v, (size_t)(live.n + 2) * sizeof *live.v);
            live.v[live.n++] = (char *)c;
            live.v[live.n++] = (char *)a;
            strs_add(&begin, hx_ev(ev, "pairing"), NULL);
        } else if (is(ev, "UNPAIRED")) {
            int k = 0;
            for (int j = 0; j < live.n; j++)
                if (strcmp(live.v[j], c) != 0 && strcmp(live.v[j], a) != 0)
                    live.v[k++] = live.v[j];
            if (k != live.n - 2)
                fail_msg("%s: UNPAIRED of a pairing not live", ev->id);
            live.n = k;
            strs_add(&end, hx_ev(ev, "pairing"), NULL);
        }
    }
    assert_int_equal(live.n, 0);
    strs_match(&begin, &end, "pairings");
    /* the script went down every path */
    static const char *const reasons[] = {"complete", "abandon", "agent_gone",
                                          "rollback"};
    for (size_t r = 0; r < 4; r++) {
        int n = 0;
        for (int i = 0; i < e->n; i++)
            n += is(&e->v[i], "UNPAIRED") &&
                 strcmp(hx_ev(&e->v[i], "reason"), reasons[r]) == 0;
        printf("  UNPAIRED %s: %d\n", reasons[r], n);
        assert_true(n > 0);
    }
    printf("  PAIRED: %d, events: %d\n", begin.n, e->n);
    free(live.v);
    strs_free(&begin);
    strs_free(&end);
}

/* Every (caller, queue) entered ends exactly one way; every CONNECT is
 * completed once; every login has its logoff. */
static void check_endings(const hx_events *e)
{
    strs enter = {0}, ends = {0}, connect = {0}, complete = {0}, in = {0}, out = {0};
    for (int i = 0; i < e->n; i++) {
        const hx_event *ev = &e->v[i];
        const char *c = hx_ev(ev, "callid"), *q = hx_ev(ev, "queue");
        if (is(ev, "ENTERQUEUE"))
            strs_add(&enter, c, q);
        else if (is(ev, "ABANDON") || is(ev, "EXITWITHTIMEOUT") || is(ev, "WITHDRAW"))
            strs_add(&ends, c, q);
        else if (is(ev, "CONNECT")) {
            strs_add(&ends, c, q);
            strs_add(&connect, c, NULL);
        } else if (is(ev, "COMPLETECALLER") || is(ev, "COMPLETEAGENT"))
            strs_add(&complete, c, NULL);
        else if (is(ev, "AGENTLOGIN"))
            strs_add(&in, hx_ev(ev, "agent"), c);
        else if (is(ev, "AGENTLOGOFF"))
            strs_add(&out, hx_ev(ev, "agent"), c);
    }
    assert_int_equal(enter.n >= NCALLERS, 1);
    assert_true(connect.n > NCALLERS / 10); /* the script did connect calls */
    strs_match(&enter, &ends, "caller endings");
    strs_match(&connect, &complete, "completions");
    strs_match(&in, &out, "agent sessions");
    strs_free(&enter);
    strs_free(&ends);
    strs_free(&connect);
    strs_free(&complete);
    strs_free(&in);
    strs_free(&out);
}

static void run_seed(uint32_t seed)
{
    hx h;
    assert_int_equal(hx_start(&h, NULL), 0);
    chaos c = {.h = &h, .rng = seed};
    run_script(&c);
    if (!c.fatal)
        everyone_leaves(&c);
    if (c.fatal)
        fail_msg("seed %u: %s", seed, c.fatal_msg);
    assert_int_equal(c.inflight, 0);
    assert_int_equal(c.sent, NCALLERS);
    hx_events e;
    hx_events_read(&h, &e);
    check_pairings(&e);
    check_endings(&e);
    hx_events_free(&e);
    assert_int_equal(hx_dbsize(&h), 2); /* {ariq}:seq and {ariq}:events */
    assert_int_equal(hx_stop(&h), 0);
}

static void test_chaos_seeds(void **state)
{
    (void)state;
    static const uint32_t seeds[] = {1, 42, 2026, 0xC0FFEE};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        run_seed(seeds[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chaos_seeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
