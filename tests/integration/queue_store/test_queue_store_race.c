/* Two nodes racing: both enter callers, sweep the same queue, complete
 * calls and free agents, all pipelined on one loop against one Redis, for
 * thousands of pairings. Then the events stream is checked: no caller or
 * agent is ever in two live pairings, every caller is paired exactly once,
 * every pairing reached exactly one requester, and callers were served in
 * the global order they arrived in (one priority, over both nodes). */
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

#define NCALLERS     3000
#define NAGENTS      12
#define INFLIGHT_MAX 256
#define SWEEPS_MAX   4

typedef struct race {
    hx *h;
    int sent, completed, paired, errors, inflight;
    int sweeps[HX_NODES];
    char (*pids)[QS_ID_MAX + 1]; /* every pairing a callback got */
} race;

static void on_pairings(race *r, const qs_pairing *p, size_t n);

static int node_of(const char *name)
{
    return strcmp(name, "A") == 0 ? 0 : 1;
}

static void left_cb(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    race *r = pd;
    r->inflight--;
    if (err || strcmp(res->outcome, "COMPLETECALLER") != 0) {
        r->errors++;
        return;
    }
    r->completed++;
    on_pairings(r, res->pairings, res->npairings);
}

/* The caller's node bridges, then the caller hangs up at once: the agent
 * is free again at the back and autopaired. */
typedef struct bridge_ctx {
    race *r;
    char call[QS_ID_MAX + 1];
    int node;
} bridge_ctx;

static void bridged_cb(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)res;
    bridge_ctx *b = pd;
    race *r = b->r;
    r->inflight--;
    if (err)
        r->errors++;
    else if (qs_leave(qs, b->call, QS_LEAVE_HANGUP, QS_BY_CALLER, 0, true, left_cb, r) ==
             0)
        r->inflight++;
    else
        r->errors++;
    free(b);
}

static void on_pairings(race *r, const qs_pairing *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (r->paired < NCALLERS)
            snprintf(r->pids[r->paired], QS_ID_MAX + 1, "%s", p[i].pairing);
        r->paired++;
        bridge_ctx *b = calloc(1, sizeof *b);
        b->r = r;
        b->node = node_of(p[i].caller_node);
        snprintf(b->call, sizeof b->call, "%s", p[i].call);
        queue_store *qs = r->h->n[b->node].qs;
        if (qs_bridged(qs, p[i].pairing, QS_SIDE_BOTH, bridged_cb, b) == 0) {
            r->inflight++;
        } else {
            r->errors++;
            free(b);
        }
    }
}

static void enter_cb(queue_store *qs, int err, const qs_enter_result *res, void *pd)
{
    (void)qs;
    race *r = pd;
    r->inflight--;
    if (err) {
        r->errors++;
        return;
    }
    on_pairings(r, res->pairings, res->npairings);
}

typedef struct sweep_ctx {
    race *r;
    int node;
} sweep_ctx;

static sweep_ctx g_sweep[HX_NODES];

static void sweep_cb(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    sweep_ctx *s = pd;
    s->r->sweeps[s->node]--;
    if (err) {
        s->r->errors++;
        return;
    }
    on_pairings(s->r, res->pairings, res->npairings);
}

static void send_enter(race *r)
{
    char id[32], chan[40];
    int i = r->sent;
    snprintf(id, sizeof id, "c%05d", i);
    snprintf(chan, sizeof chan, "ch-%s", id);
    const char *queues[] = {"q"};
    qs_caller c = {
        .callid = id, .channel = chan, .priority = 0, .queues = queues, .nqueues = 1};
    if (qs_enter(r->h->n[i % 2].qs, &c, i % 3 == 0, enter_cb, r) != 0) {
        r->errors++;
        return;
    }
    r->inflight++;
    r->sent++;
}

static void send_sweeps(race *r)
{
    for (int n = 0; n < HX_NODES; n++) {
        if (r->sweeps[n] >= SWEEPS_MAX)
            continue;
        g_sweep[n] = (sweep_ctx){r, n};
        if (qs_pair_queue(r->h->n[n].qs, "q", sweep_cb, &g_sweep[n]) == 0)
            r->sweeps[n]++;
        else
            r->errors++;
    }
}

static void run_race(race *r)
{
    uint64_t end = clock_mono_ms() + 60000;
    while ((r->completed < NCALLERS || r->inflight || r->sweeps[0] || r->sweeps[1]) &&
           !r->errors && clock_mono_ms() < end) {
        for (int k = 0; k < 8 && r->sent < NCALLERS && r->inflight < INFLIGHT_MAX; k++)
            send_enter(r);
        if (r->completed < NCALLERS)
            send_sweeps(r);
        event_base_loop(r->h->base, EVLOOP_ONCE);
    }
}

/* The checker: replays the stream, holding who is in a live pairing. */
typedef struct live {
    char *who[2 * (NCALLERS + NAGENTS)];
    int n;
} live;

static int live_find(live *l, const char *id)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->who[i], id) == 0)
            return i;
    return -1;
}

static void live_del(live *l, const char *id)
{
    int i = live_find(l, id);
    assert_true(i >= 0);
    l->who[i] = l->who[--l->n];
}

static void check_stream(hx *h)
{
    hx_events e;
    hx_events_read(h, &e);
    live l = {.n = 0};
    int next_served = 0, paired = 0;
    char *enter_order[NCALLERS];
    int nenter = 0;
    for (int i = 0; i < e.n; i++) {
        const hx_event *ev = &e.v[i];
        const char *name = hx_ev(ev, "event");
        if (strcmp(name, "ENTERQUEUE") == 0 && nenter < NCALLERS)
            enter_order[nenter++] = (char *)hx_ev(ev, "callid");
        if (strcmp(name, "PAIRED") == 0) {
            const char *c = hx_ev(ev, "callid"), *a = hx_ev(ev, "agent");
            if (live_find(&l, c) >= 0 || live_find(&l, a) >= 0)
                fail_msg("stream entry %s: %s or %s paired twice", ev->id, c, a);
            l.who[l.n++] = (char *)c;
            l.who[l.n++] = (char *)a;
            /* global order: the next caller served is the next that arrived */
            assert_true(next_served < nenter);
            if (strcmp(c, enter_order[next_served]) != 0)
                fail_msg("served %s before %s", c, enter_order[next_served]);
            next_served++;
            paired++;
        } else if (strcmp(name, "UNPAIRED") == 0) {
            live_del(&l, hx_ev(ev, "callid"));
            live_del(&l, hx_ev(ev, "agent"));
        }
    }
    assert_int_equal(paired, NCALLERS);
    /* both nodes really raced: each made pairings */
    assert_true(hx_find(&e, "PAIRED", "node", "A", 100) >= 0);
    assert_true(hx_find(&e, "PAIRED", "node", "B", 100) >= 0);
    assert_int_equal(hx_count(&e, "ENTERQUEUE"), NCALLERS);
    assert_int_equal(hx_count(&e, "CONNECT"), NCALLERS);
    assert_int_equal(hx_count(&e, "COMPLETECALLER"), NCALLERS);
    assert_int_equal(hx_count(&e, "UNPAIRED"), NCALLERS);
    assert_int_equal(l.n, 0);
    hx_events_free(&e);
}

static int cmp_pid(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void test_two_nodes_race(void **state)
{
    (void)state;
    hx h;
    assert_int_equal(hx_start(&h, NULL), 0);
    race r = {.h = &h, .pids = calloc(NCALLERS, QS_ID_MAX + 1)};
    hx_out o;
    char id[16];
    for (int i = 0; i < NAGENTS; i++) {
        snprintf(id, sizeof id, "a%02d", i);
        assert_int_equal(hx_login(&h, i % 2, id, "q", false, &o), 0);
    }
    run_race(&r);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.completed, NCALLERS);
    assert_int_equal(r.paired, NCALLERS);
    /* every pairing id reached exactly one requester */
    qsort(r.pids, NCALLERS, QS_ID_MAX + 1, cmp_pid);
    for (int i = 1; i < NCALLERS; i++)
        assert_string_not_equal(r.pids[i - 1], r.pids[i]);
    check_stream(&h);
    /* all agents free again, no caller, no pairing left */
    assert_int_equal(hx_int(&h, "ZCARD {ariq}:queue:q:agents"), NAGENTS);
    assert_int_equal(hx_int(&h, "ZCARD {ariq}:queue:q:callers"), 0);
    assert_int_equal(hx_int(&h, "EXISTS {ariq}:node:A:pairings {ariq}:node:B:pairings"),
                     0);
    assert_int_equal(hx_int(&h, "EXISTS {ariq}:node:A:calls {ariq}:node:B:calls"), 0);
    free(r.pids);
    assert_int_equal(hx_stop(&h), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_nodes_race),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
