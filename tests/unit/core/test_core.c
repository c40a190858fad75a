/* Unit tests for shared/core: config, log, clock, ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/strmap.h"

typedef struct qcfg {
    char node_id[32];
    char password[64];
    long announce;
    bool on_join;
    double scale;
    char key_start;
    char key_end;
} qcfg;

static const cfg_field fields[] = {
    {"node_id", CFG_ID, offsetof(qcfg, node_id), 0, 32, NULL, true},
    {"password", CFG_SECRET, offsetof(qcfg, password), 0, 64, "", false},
    {"announce_frequency", CFG_INT, offsetof(qcfg, announce), 0, 3600, "30", false},
    {"announce_on_join", CFG_BOOL, offsetof(qcfg, on_join), 0, 0, "no", false},
    {"scale", CFG_DOUBLE, offsetof(qcfg, scale), 0, 10, "1", false},
    {"key_start", CFG_DTMF, offsetof(qcfg, key_start), 0, 0, "0", false},
    {"key_end", CFG_DTMF, offsetof(qcfg, key_end), 0, 0, "#", false},
    {NULL, 0, 0, 0, 0, NULL, false},
};

static int load_apply(const char *text, qcfg *q, char *err, size_t errlen)
{
    cfg *c = NULL;
    int rc = cfg_load_string(text, "test.conf", &c, err, errlen);
    if (rc != 0)
        return rc;
    memset(q, 0, sizeof *q);
    rc = cfg_apply(c, cfg_section_find(c, "general", ""), fields, q, err, errlen);
    cfg_free(c);
    return rc;
}

static void test_config_good(void **state)
{
    (void)state;
    qcfg q;
    char err[256];
    const char *text = "; comment\n[general]\nnode_id = node-1\nannounce_frequency = 45 ; inline\n"
                       "announce_on_join = yes\nkey_end = none\n\n[queue support]\n[queue sales]\n"
                       "x = 1\n";
    assert_int_equal(load_apply(text, &q, err, sizeof err), 0);
    assert_string_equal(q.node_id, "node-1");
    assert_int_equal(q.announce, 45);
    assert_true(q.on_join);
    assert_true(q.scale == 1.0);
    assert_int_equal(q.key_start, '0');
    assert_int_equal(q.key_end, '\0');

    cfg *c = NULL;
    assert_int_equal(cfg_load_string(text, "t", &c, err, sizeof err), 0);
    assert_int_equal(cfg_section_count(c), 3);
    assert_int_equal(cfg_section_line(c, 0), 2); /* the header line, not the first key */
    assert_string_equal(cfg_section_kind(c, 1), "queue");
    assert_string_equal(cfg_section_name(c, 1), "support"); /* empty section kept, in order */
    assert_int_equal(cfg_section_line(c, 1), 8);
    assert_string_equal(cfg_section_name(c, 2), "sales");
    assert_string_equal(cfg_get(c, 2, "x"), "1");
    cfg_free(c);
}

/* Each bad input names file:line, section, key and value (never a secret). */
static void test_config_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"[general]\nnode_id = n1\nannounce_frequency = abc\n",
         "test.conf:3: [general] announce_frequency: bad value 'abc': expected an integer from 0 to 3600"},
        {"[general]\nnode_id = n1\nannounce_frequency = 4000\n", "test.conf:3:"},
        {"[general]\nnode_id = bad/id\n",
         "test.conf:2: [general] node_id: bad value 'bad/id': only letters"},
        {"[general]\nannounce_frequency = 1\n", "[general] node_id: required key is missing"},
        {"[general]\nnode_id = n1\nanounce_frequency = 1\n",
         "test.conf:3: [general] anounce_frequency: unknown key"},
        {"[general]\nnode_id = n1\nnode_id = n2\n", "test.conf:3: [general] node_id: duplicate key"},
        {"[general]\nnode_id = n1\nannounce_on_join = maybe\n", "expected yes or no"},
        {"[general]\nnode_id = n1\nkey_start = 12\n", "expected one DTMF key"},
        {"[general]\nnode_id = n1\n[general]\nnode_id = n2\n", "test.conf:3: duplicate section"},
        {"node_id = n1\n", "test.conf:1: node_id: key outside any section"},
        {"[general]\nnode_id\n", "test.conf:2: syntax error"},
        {"[general]\nnode_id = n1\npassword = ${ARIQ_TEST_UNSET_VAR}\n",
         "test.conf:3: password: environment variable ARIQ_TEST_UNSET_VAR is not set"},
        {"[general]\nnode_id = n1\nscale = 11\n", "expected a number from 0 to 10"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qcfg q;
        char err[256] = "";
        int rc = load_apply(cases[i].text, &q, err, sizeof err);
        if (rc != ARIQ_EINVAL || !strstr(err, cases[i].want))
            fail_msg("case %zu: rc=%d err='%s' want '%s'", i, rc, err, cases[i].want);
    }
}

static void test_config_secret_never_echoed(void **state)
{
    (void)state;
    qcfg q;
    char err[256];
    char text[256];
    char longpw[100];
    memset(longpw, 'S', sizeof longpw - 1);
    longpw[sizeof longpw - 1] = '\0';
    snprintf(text, sizeof text, "[general]\nnode_id = n1\npassword = %s\n", longpw);
    assert_int_equal(load_apply(text, &q, err, sizeof err), ARIQ_EINVAL);
    assert_non_null(strstr(err, "password: too long"));
    assert_null(strstr(err, "SSSS"));
}

static void test_config_env_secret(void **state)
{
    (void)state;
    qcfg q;
    char err[256];
    setenv("ARIQ_TEST_PW", "s3cret", 1);
    assert_int_equal(load_apply("[general]\nnode_id=n1\npassword=${ARIQ_TEST_PW}\n", &q, err,
                                sizeof err),
                     0);
    assert_string_equal(q.password, "s3cret");
}

static void test_config_long_line(void **state)
{
    (void)state;
    char text[600] = "[general]\nnode_id = ";
    memset(text + strlen(text), 'a', 400);
    strcat(text, "\n");
    qcfg q;
    char err[256];
    assert_int_equal(load_apply(text, &q, err, sizeof err), ARIQ_EINVAL);
    assert_non_null(strstr(err, "test.conf:2: line too long"));
}

static void test_config_file(void **state)
{
    (void)state;
    char err[256];
    cfg *c = NULL;
    assert_int_equal(cfg_load_file("/nonexistent/ariq.conf", &c, err, sizeof err),
                     ARIQ_ENOTFOUND);
    assert_non_null(strstr(err, "/nonexistent/ariq.conf: cannot open"));
    char path[] = "/tmp/ariq-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("[general]\nnode_id = n9\n", f);
    fclose(f);
    assert_int_equal(cfg_load_file(path, &c, err, sizeof err), 0);
    assert_string_equal(cfg_get(c, 0, "node_id"), "n9");
    cfg_free(c);
    unlink(path);
}

static char g_last_line[4096];
static void capture(log_level lvl, const char *line, void *ud)
{
    (void)lvl;
    (void)ud;
    snprintf(g_last_line, sizeof g_last_line, "%s", line);
}

static void test_log(void **state)
{
    (void)state;
    char out[256];
    assert_string_equal(log_redact_url("http://ari:secret@127.0.0.1:8088/ari", out, sizeof out),
                        "http://ari:***@127.0.0.1:8088/ari");
    assert_string_equal(log_redact_url("redis://:pw@h:6379/2", out, sizeof out),
                        "redis://:***@h:6379/2");
    assert_string_equal(log_redact_url("http://h:1/a@b", out, sizeof out), "http://h:1/a@b");
    assert_string_equal(log_redact_url("http://user@h/", out, sizeof out), "http://user@h/");

    log_set_sink(capture, NULL);
    log_set_level(LOG_LVL_INFO);
    LOG_D("test", "hidden=1");
    assert_null(strstr(g_last_line, "hidden"));
    LOG_W("test", "chan=%s line\nbreak", "c1");
    assert_non_null(strstr(g_last_line, "level=warn mod=test chan=c1 line break"));
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    LOG_E("test", "v=%s", big); /* truncated, not overflowed */
    assert_true(strlen(g_last_line) < 2048);
    log_set_sink(NULL, NULL);

    log_level l;
    assert_int_equal(log_level_parse("WARN", &l), 0);
    assert_int_equal(l, LOG_LVL_WARN);
    assert_int_equal(log_level_parse("loud", &l), ARIQ_EINVAL);
}

static void test_clock_ids(void **state)
{
    (void)state;
    assert_int_equal(clock_set_scale(0.01), 0);
    assert_int_equal(clock_scaled_ms(30000), 300);
    assert_int_equal(clock_set_scale(-1), ARIQ_EINVAL);
    assert_int_equal(clock_set_scale(0), 0);
    assert_int_equal(clock_scaled_ms(30000), 0);
    clock_set_scale(1.0);
    char ts[40];
    assert_string_equal(clock_format_ari(1795575201823ull, ts, sizeof ts),
                        "2026-11-25T02:53:21.823+0000");
    uint64_t a = clock_mono_ms(), b = clock_mono_ms();
    assert_true(b >= a);

    char u1[IDS_UUID_LEN + 1], u2[IDS_UUID_LEN + 1];
    ids_uuid(u1);
    ids_uuid(u2);
    assert_int_equal(strlen(u1), 36);
    assert_string_not_equal(u1, u2);
    assert_int_equal(u1[14], '4');
    char id[64];
    assert_int_equal(ids_make("pb", id, sizeof id), 0);
    assert_true(ids_valid(id, 64));
    assert_int_equal(strncmp(id, "pb-", 3), 0);
    assert_int_equal(ids_make("bad prefix", id, sizeof id), ARIQ_EINVAL);
    assert_int_equal(ids_make("pb", id, 8), ARIQ_ERANGE);
    assert_true(ids_valid("1795384614.39", 64));
    assert_false(ids_valid("a/b", 64));
    assert_false(ids_valid("", 64));
    assert_false(ids_valid("abcdef", 5));
    assert_string_equal(ariq_strerror(ARIQ_ENOMEM), "ENOMEM");
}

static void count_cb(const char *key, void *value, void *ud)
{
    (void)key;
    *(long *)ud += (long)(intptr_t)value;
}

/* Many inserts, replaces and removes; tombstones reused; nothing lost. */
static void test_strmap(void **state)
{
    (void)state;
    strmap *m = strmap_new();
    assert_non_null(m);
    char key[32];
    for (long i = 1; i <= 20000; i++) {
        snprintf(key, sizeof key, "chan-%ld", i);
        assert_int_equal(strmap_put(m, key, (void *)(intptr_t)i), 0);
    }
    assert_int_equal(strmap_count(m), 20000);
    assert_int_equal((intptr_t)strmap_get(m, "chan-777"), 777);
    assert_null(strmap_get(m, "chan-0"));
    assert_int_equal(strmap_put(m, "chan-777", (void *)(intptr_t)1), 0); /* replace */
    assert_int_equal(strmap_count(m), 20000);
    for (long i = 1; i <= 20000; i += 2) {
        snprintf(key, sizeof key, "chan-%ld", i);
        assert_non_null(strmap_del(m, key));
    }
    assert_null(strmap_del(m, "chan-1"));
    assert_int_equal(strmap_count(m), 10000);
    for (int round = 0; round < 50; round++) { /* churn: tombstones must not pile up */
        for (long i = 0; i < 1000; i++) {
            snprintf(key, sizeof key, "tmp-%d-%ld", round, i);
            assert_int_equal(strmap_put(m, key, (void *)(intptr_t)1), 0);
        }
        for (long i = 0; i < 1000; i++) {
            snprintf(key, sizeof key, "tmp-%d-%ld", round, i);
            assert_non_null(strmap_del(m, key));
        }
    }
    long sum = 0;
    strmap_each(m, count_cb, &sum);
    long want = 0;
    for (long i = 2; i <= 20000; i += 2)
        want += i;
    assert_int_equal(sum, want);
    assert_int_equal(strmap_put(m, NULL, (void *)1), ARIQ_EINVAL);
    assert_int_equal(strmap_put(m, "k", NULL), ARIQ_EINVAL);
    strmap_free(m);
    strmap_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_good),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_secret_never_echoed),
        cmocka_unit_test(test_config_env_secret),
        cmocka_unit_test(test_config_long_line),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_log),
        cmocka_unit_test(test_clock_ids),
        cmocka_unit_test(test_strmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
