/* Unit tests for queued's config: defaults, every bad value refused with
 * file:line, passwords never echoed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "qconfig.h"

static const char *const GOOD = "[general]\n"
                                "node_id = node1\n"
                                "ari_user = ariq\n"
                                "ari_password = ${ARIQ_TEST_ARI_PW}\n"
                                "redis_url = redis://:s3cret@127.0.0.1:6380/2\n"
                                "\n"
                                "[queue support]\n"
                                "announce_frequency = 20\n"
                                "wrapup_time = 5\n"
                                "key_hangup = *\n"
                                "\n"
                                "[queue sales]\n";

static void test_good(void **state)
{
    (void)state;
    setenv("ARIQ_TEST_ARI_PW", "pw-from-env", 1);
    qcfg *c = NULL;
    char err[512];
    assert_int_equal(qcfg_load_string(GOOD, "queued.conf", &c, err, sizeof err), 0);
    assert_string_equal(c->node_id, "node1");
    assert_string_equal(c->ari_password, "pw-from-env");
    assert_string_equal(c->app, "queue");
    assert_string_equal(c->ari_url, "http://127.0.0.1:8088");
    assert_string_equal(c->namespace_, "ariq");
    assert_int_equal(c->sweep_ms, 1000);
    assert_true(c->time_scale == 1.0);
    assert_int_equal(c->nqueues, 2);
    const qcfg_queue *s = qcfg_queue_find(c, "support");
    assert_non_null(s);
    assert_int_equal(s->announce_frequency_s, 20);
    assert_int_equal(s->wrapup_s, 5);
    assert_int_equal(s->key_hangup, '*');
    assert_int_equal(s->key_record, '0');
    const qcfg_queue *sales = qcfg_queue_find(c, "sales");
    assert_non_null(sales); /* an empty section is a queue with every default */
    assert_int_equal(sales->announce_frequency_s, 30);
    assert_string_equal(sales->moh_class, "default");
    assert_string_equal(sales->record_format, "wav");
    assert_false(sales->announce_on_join);
    assert_int_equal(sales->key_pause, '5');
    assert_int_equal(sales->key_stop, '7');
    assert_int_equal(sales->key_discard, '9');
    assert_int_equal(sales->key_hangup, '#');
    assert_null(qcfg_queue_find(c, "nosuch"));
    qcfg_free(c);
    qcfg_free(NULL);
}

static void test_bad(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"[general]\nari_user=a\n[queue q]\n", "q.conf:1: [general] node_id: required key is missing"},
        {"[general]\nnode_id=n/1\nari_user=a\n[queue q]\n", "q.conf:2: [general] node_id: bad value 'n/1'"},
        {"[general]\nnode_id=n1\nari_user=a\n", "q.conf: no [queue NAME] section"},
        {"[general]\nnode_id=n1\nari_user=a\n[queue q]\nannounce_frequency=-1\n",
         "q.conf:5: [queue q] announce_frequency: bad value '-1'"},
        {"[general]\nnode_id=n1\nari_user=a\n[queue q]\nkey_pause=0\n",
         "q.conf:4: [queue q] key '0' is given to two actions"},
        {"[general]\nnode_id=n1\nari_user=a\n[queue q]\nmusic=x\n",
         "q.conf:5: [queue q] music: unknown key"},
        {"[general]\nnode_id=n1\nari_user=a\n[queues q]\n", "q.conf:4: unknown section [queues q]"},
        {"[general]\nnode_id=n1\nari_user=a\n[queue]\nx=1\n", "q.conf:4: [queue] needs a name"},
        {"[general]\nnode_id=n1\nari_user=a\n[queue a.b/c]\n", "q.conf:4: [queue a.b/c] needs a name of 1 to 64 letters"},
        {"[general]\nnode_id=n1\nari_user=a\nari_url=https://h\n[queue q]\n",
         "q.conf: [general] ari_url: 'https://h' must start with http://"},
        {"[general]\nnode_id=n1\nari_user=a\nlog_level=loud\n[queue q]\n", "log_level: 'loud'"},
        {"[general]\nnode_id=n1\nari_user=a\nlink_dial=IAX2/x\n[queue q]\n", "must contain {pairing}"},
        {"[general]\nnode_id=n1\nari_user=a\nsweep_ms=1\n[queue q]\n", "sweep_ms: bad value '1'"},
        {"[general]\nnode_id=n1\nari_user=a\n[queue q]\nannounce_on_join=perhaps\n", "expected yes or no"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qcfg *c = NULL;
        char err[512] = "";
        int rc = qcfg_load_string(cases[i].text, "q.conf", &c, err, sizeof err);
        if (rc == 0 || !strstr(err, cases[i].want))
            fail_msg("case %zu: rc=%d err='%s' want '%s'", i, rc, err, cases[i].want);
        assert_null(c);
    }
}

/* A bad password-holding value is reported without the value (here inih's
 * line limit is what refuses it). */
static void test_secret_not_echoed(void **state)
{
    (void)state;
    char text[1024], pw[300];
    memset(pw, 'P', sizeof pw - 1);
    pw[sizeof pw - 1] = '\0';
    snprintf(text, sizeof text, "[general]\nnode_id=n1\nari_user=a\nredis_url=%s\n[queue q]\n",
             pw);
    qcfg *c = NULL;
    char err[512];
    assert_int_not_equal(qcfg_load_string(text, "q.conf", &c, err, sizeof err), 0);
    assert_non_null(strstr(err, "q.conf:4: line too long"));
    assert_null(strstr(err, "PPPP"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_secret_not_echoed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
