/* queue_store's set_priority and the recordings index against a real
 * redis-server: a waiting call's new priority gives it a new place in every
 * queue (its seq kept), with PRIORITY per queue; a call not waiting (paired)
 * or unknown is refused and nothing changes; rec start indexes the
 * recording in {NS}:recordings and rec delete removes it (not while it
 * records).
 *
 * Each test runs its own server and the harness's nodes on one loop.
 * QS_SCRIPTS_DIR names another scripts directory than the repo's (a mutated
 * queue.lua, to see these tests fail without what they test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "harness.h"

#define OK       HX_OK
#define setup    hx_setup_env
#define teardown hx_teardown
#define A        0

static int set_prio(hx *h, const char *callid, int prio)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_set_priority(h->n[A].qs, callid, prio, hx_call_cb, &hx_o), &hx_o);
}

static int rec(hx *h, qs_rec_action act, const char *name, const char *pairing,
               const char *file)
{
    memset(&hx_o, 0, sizeof hx_o);
    return hx_done(h, qs_rec(h->n[A].qs, act, name, pairing, file, 0, hx_result_cb, &hx_o),
                   &hx_o);
}

/* c1, c2, c3 arrive at priority 0 in "sales&support"; c3 raised to 5 goes
 * to the front of both, c1 raised to 5 too goes before it (earlier seq),
 * then lowered back to 0 returns behind c2 (where it arrived). */
static void test_reorders(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_enter(h, A, "c1", 0, "sales&support", false, &o));
    long long seq1 = o.enter.seq;
    OK(hx_enter(h, A, "c2", 0, "sales&support", false, &o));
    OK(hx_enter(h, A, "c3", 0, "support", false, &o));
    long long seq3 = o.enter.seq;

    OK(set_prio(h, "c3", 5));
    assert_true(hx_o.call.found);
    assert_int_equal(hx_o.call.priority, 5);
    assert_int_equal(hx_o.call.seq, seq3);
    assert_int_equal(hx_o.call.nqueues, 1);
    assert_string_equal(hx_o.call.queues[0].queue, "support");
    assert_int_equal(hx_o.call.queues[0].position, 1);
    assert_int_equal(hx_zrank(h, "support", "c3"), 0);
    assert_int_equal(hx_zrank(h, "support", "c1"), 1);
    long long want = 995LL * 8796093022208LL + seq3;
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:support:callers c3"), want);
    assert_string_equal(hx_hget4(h, "{ariq}:call:c3", "priority"), "5");
    char sc[32];
    snprintf(sc, sizeof sc, "%lld", want);
    assert_string_equal(hx_hget4(h, "{ariq}:call:c3", "score"), sc);

    OK(set_prio(h, "c1", 5));
    assert_int_equal(hx_o.call.nqueues, 2);
    assert_int_equal(hx_o.call.queues[0].position, 1); /* sales */
    assert_int_equal(hx_o.call.queues[1].position, 1); /* support: before c3 */
    assert_int_equal(hx_zrank(h, "support", "c3"), 1);

    OK(set_prio(h, "c1", 0));
    assert_int_equal(hx_zrank(h, "sales", "c1"), 0);   /* arrived first */
    assert_int_equal(hx_zrank(h, "support", "c1"), 1); /* after c3 (5) */
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:queue:sales:callers c1"),
                     1000LL * 8796093022208LL + seq1);

    hx_events ev;
    hx_events_read(h, &ev);
    assert_int_equal(hx_count(&ev, "PRIORITY"), 1 + 2 + 2);
    int i = hx_find(&ev, "PRIORITY", "callid", "c3", 0);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&ev.v[i], "queue"), "support");
    assert_string_equal(hx_ev(&ev.v[i], "priority"), "5");
    assert_string_equal(hx_ev(&ev.v[i], "old_priority"), "0");
    assert_string_equal(hx_ev(&ev.v[i], "position"), "1");
    i = hx_find(&ev, "PRIORITY", "callid", "c1", 3);
    assert_true(i >= 0);
    assert_string_equal(hx_ev(&ev.v[i], "old_priority"), "5");
    assert_string_equal(hx_ev(&ev.v[i], "position"), "2");
    hx_events_free(&ev);
}

/* Paired, unknown, bad: refused, nothing written. */
static void test_refused(void **state)
{
    hx *h = *state;
    hx_out o;
    OK(hx_enter(h, A, "c1", 0, "sales", false, &o));
    OK(hx_login(h, A, "1001", "sales", true, &o));
    assert_int_equal(o.npairs, 1); /* c1 is paired now */
    char *before = hx_snapshot(h);
    assert_int_equal(set_prio(h, "c1", 7), ARIQ_ESTATE);
    assert_int_equal(set_prio(h, "nobody", 7), ARIQ_ENOTFOUND);
    assert_int_equal(qs_set_priority(h->n[A].qs, "c1", 1001, hx_call_cb, &hx_o), ARIQ_EINVAL);
    assert_int_equal(qs_set_priority(h->n[A].qs, "c1", -1, hx_call_cb, &hx_o), ARIQ_EINVAL);
    assert_int_equal(qs_set_priority(h->n[A].qs, "bad id", 1, hx_call_cb, &hx_o), ARIQ_EINVAL);
    assert_int_equal(qs_set_priority(h->n[A].qs, "c1", 1, NULL, NULL), ARIQ_EINVAL);
    HX_UNCHANGED(h, before);
}

/* rec start indexes, delete is refused while recording, then unindexes. */
static void test_recordings_index(void **state)
{
    hx *h = *state;
    h->now = 5000;
    OK(rec(h, QS_REC_START, "r1", "p1", "r1.wav"));
    h->now = 6000;
    OK(rec(h, QS_REC_START, "r2", "p2", "r2.wav"));
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:recordings r1"), 5000);
    assert_int_equal(hx_int(h, "ZSCORE {ariq}:recordings r2"), 6000);
    char *before = hx_snapshot(h);
    assert_int_equal(rec(h, QS_REC_DELETE, "r1", NULL, NULL), ARIQ_ESTATE);
    assert_int_equal(rec(h, QS_REC_DELETE, "nope", NULL, NULL), ARIQ_ENOTFOUND);
    HX_UNCHANGED(h, before);
    OK(rec(h, QS_REC_STOP, "r1", NULL, NULL));
    OK(rec(h, QS_REC_DELETE, "r1", NULL, NULL));
    assert_string_equal(hx_o.res.state, "deleted");
    assert_int_equal(hx_int(h, "EXISTS {ariq}:recording:r1"), 0);
    assert_int_equal(hx_int(h, "ZCARD {ariq}:recordings"), 1);
    assert_int_equal(rec(h, QS_REC_DELETE, "r1", NULL, NULL), ARIQ_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reorders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recordings_index, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
