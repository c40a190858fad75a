/* store_keys (the one place that builds key names) and store_config's
 * URL parser, redis:// and redis-sentinel://, and its checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "store/keys.h"
#include "store/store.h"

static store_keys *keys(const char *ns)
{
    store_keys *k = NULL;
    assert_int_equal(store_keys_new(ns, &k), 0);
    assert_non_null(k);
    return k;
}

/* Every key carries the hash tag made from the namespace. */
static void test_hash_tag(void **state)
{
    (void)state;
    store_keys *k = keys(NULL);
    char out[STORE_KEY_MAX];
    assert_string_equal(store_keys_tag(k), "{ariq}");
    assert_int_equal(store_key(k, out, sizeof out, "queue", "support", "callers"), 0);
    assert_string_equal(out, "{ariq}:queue:support:callers");
    assert_int_equal(store_key(k, out, sizeof out, "call", "1700000000.42", NULL), 0);
    assert_string_equal(out, "{ariq}:call:1700000000.42");
    assert_int_equal(store_key(k, out, sizeof out, "events", NULL, NULL), 0);
    assert_string_equal(out, "{ariq}:events");
    store_keys_free(k);

    k = keys("acme-2");
    assert_int_equal(store_key_nodes(k, out, sizeof out), 0);
    assert_string_equal(out, "{acme-2}:nodes");
    assert_int_equal(store_key_node_heartbeat(k, out, sizeof out, "node1"), 0);
    assert_string_equal(out, "{acme-2}:node:node1:heartbeat");
    store_keys_free(k);
    store_keys_free(NULL);
}

/* A namespace that could change the slot or the layout is refused. */
static void test_bad_namespace(void **state)
{
    (void)state;
    const char *bad[] = {"", "a}b", "{a", "a:b", "a b", "a.b", "ü",
                         "123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        store_keys *k = (store_keys *)1;
        assert_int_equal(store_keys_new(bad[i], &k), ARIQ_EINVAL);
        assert_null(k);
    }
    store_keys *k = keys("12345678901234567890123456789012"); /* 32: the limit */
    store_keys_free(k);
}

/* Ids from outside cannot forge another key: no ':', braces, spaces, empty. */
static void test_bad_ids(void **state)
{
    (void)state;
    store_keys *k = keys(NULL);
    char out[STORE_KEY_MAX];
    const char *bad[] = {"", "a:b", "{ariq}", "a b", "a/b", "a\nb", "a*", "é"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(out, "junk");
        assert_int_equal(store_key(k, out, sizeof out, "call", bad[i], NULL), ARIQ_EINVAL);
        assert_string_equal(out, "");
        assert_int_equal(store_key(k, out, sizeof out, "queue", "ok", bad[i]), ARIQ_EINVAL);
        assert_int_equal(store_key_node_heartbeat(k, out, sizeof out, bad[i]), ARIQ_EINVAL);
    }
    assert_int_equal(store_key(k, out, sizeof out, "call", NULL, "x"), ARIQ_EINVAL);
    assert_int_equal(store_key(k, out, sizeof out, "Call", "x", NULL), ARIQ_EINVAL);
    assert_int_equal(store_key(k, out, sizeof out, "ca:ll", "x", NULL), ARIQ_EINVAL);
    assert_int_equal(store_key(k, out, sizeof out, "", "x", NULL), ARIQ_EINVAL);
    assert_int_equal(store_key(k, out, sizeof out, NULL, "x", NULL), ARIQ_EINVAL);
    store_keys_free(k);
}

/* Ids are bounded, and a key that does not fit is an error, never cut. */
static void test_lengths(void **state)
{
    (void)state;
    store_keys *k = keys(NULL);
    char id[STORE_ID_MAX + 2];
    memset(id, 'a', sizeof id);
    id[STORE_ID_MAX] = '\0';
    char out[STORE_KEY_MAX];
    assert_int_equal(store_key(k, out, sizeof out, "call", id, id), 0);
    assert_int_equal(strlen(out), strlen("{ariq}:call:") + 2 * STORE_ID_MAX + 1);
    id[STORE_ID_MAX] = 'a';
    id[STORE_ID_MAX + 1] = '\0';
    assert_int_equal(store_key(k, out, sizeof out, "call", id, NULL), ARIQ_EINVAL);

    char small[32]; /* "{ariq}:call:12345678" is 20 bytes + NUL */
    assert_int_equal(store_key(k, small, 20, "call", "12345678", NULL), ARIQ_ERANGE);
    assert_string_equal(small, "");
    assert_int_equal(store_key(k, small, 21, "call", "12345678", NULL), 0); /* exact fit */
    assert_string_equal(small, "{ariq}:call:12345678");
    store_keys_free(k);
}

static int url(store_config *c, const char *u, char *err)
{
    err[0] = '\0';
    return store_config_set_url(c, u, err, 256);
}

static void test_url_ok(void **state)
{
    (void)state;
    store_config c;
    char err[256];
    store_config_init(&c);
    assert_int_equal(url(&c, "redis://10.0.0.5", err), 0);
    assert_string_equal(c.host, "10.0.0.5");
    assert_int_equal(c.port, 6379);
    assert_int_equal(c.db, 0);
    assert_string_equal(c.password, "");

    assert_int_equal(url(&c, "redis://:s3cr%40t%2F@redis.local:6380/3", err), 0);
    assert_string_equal(c.host, "redis.local");
    assert_int_equal(c.port, 6380);
    assert_int_equal(c.db, 3);
    assert_string_equal(c.username, "");
    assert_string_equal(c.password, "s3cr@t/");

    assert_int_equal(url(&c, "REDIS://queue:pw:with:colons@[::1]:7000/", err), 0);
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.port, 7000);
    assert_string_equal(c.username, "queue");
    assert_string_equal(c.password, "pw:with:colons");
    assert_int_equal(c.db, 0);

    /* a raw '@' in the password: the last '@' ends the userinfo */
    assert_int_equal(url(&c, "redis://:a@b@h:1/65535", err), 0);
    assert_string_equal(c.password, "a@b");
    assert_string_equal(c.host, "h");
    assert_int_equal(c.db, 65535);
    /* the namespace and timeouts are not touched by a URL */
    assert_string_equal(c.ns, "ariq");
    assert_int_equal(c.backoff_max_ms, 5000);
}

/* Bad URLs: a clear message, the config unchanged, and never the password. */
static void test_url_bad(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *msg;
    } bad[] = {
        {"http://h:1", "must start with redis://"},
        {"rediss://:topsecret@h", "TLS"},
        {"redis://", "missing host"},
        {"redis://:topsecret@", "missing host"},
        {"redis://:topsecret@:6379", "missing host"},
        {"redis://h:0", "port"},
        {"redis://h:65536", "port"},
        {"redis://h:", "port"},
        {"redis://h:12ab", "port"},
        {"redis://h/x", "db"},
        {"redis://h/65536", "db"},
        {"redis://h/-1", "db"},
        {"redis://h/1/2", "db"},
        {"redis://topsecret@h", "[user]:password"},
        {"redis://:top%zzsecret@h", "password"},
        {"redis://:top%00secret@h", "password"},
        {"redis://:topsecret%4@h", "password"},
        {"redis://h_x", "bad character in host"},
        {"redis://[::1", "]"},
        {"redis://[::1]x", "after IPv6"},
        {"redis://h?db=1", "query"},
        {"redis://h#f", "query"},
        /* redis-sentinel:// */
        {"redis-sentinel://", "missing master name"},
        {"redis-sentinel://h1,h2", "missing master name"},
        {"redis-sentinel://:topsecret@h1/", "missing master name"},
        {"redis-sentinel://h1/?db=1", "missing master name"},
        {"redis-sentinel:///m", "sentinel 1: missing host"},
        {"redis-sentinel://h1,,h3/m", "sentinel 2: missing host"},
        {"redis-sentinel://h1,/m", "sentinel 2: missing host"},
        {"redis-sentinel://h1,h2:0/m", "sentinel 2: port must be a number 1..65535"},
        {"redis-sentinel://h1,h2,h3:x/m", "sentinel 3: port"},
        {"redis-sentinel://h_1/m", "sentinel 1: bad character in host"},
        {"redis-sentinel://[::1/m", "sentinel 1: missing ']'"},
        {"redis-sentinel://a,b,c,d,e,f,g,h,i/m", "more than 8 sentinels"},
        {"redis-sentinel://h/m/3", "master name must be 1..64 characters"},
        {"redis-sentinel://h/my master", "master name"},
        {"redis-sentinel://h/"
         "m123456789012345678901234567890123456789012345678901234567890123456",
         "master name"},
        {"redis-sentinel://h/m?db=x", "db must be a number 0..65535"},
        {"redis-sentinel://h/m?db=65536", "db must be"},
        {"redis-sentinel://h/m?db=", "db must be"},
        {"redis-sentinel://h/m?db=1&db=2", "db given twice"},
        {"redis-sentinel://h/m?password=topsecret", "unknown query parameter"},
        {"redis-sentinel://h/m?sentinel_password=top%zzsecret", "sentinel_password"},
        {"redis-sentinel://h/m?sentinel_password=topsecret&sentinel_password=topsecret",
         "sentinel_password given twice"},
        {"redis-sentinel://h/m?sentinel_password=topsecret#x", "fragments"},
        {"redis-sentinel://topsecret@h/m", "[user]:password"},
        {"redis-sentinel://:top%zzsecret@h/m", "password"},
        {"sentinel://h/m", "must start with redis:// or redis-sentinel://"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        store_config c, before;
        store_config_init(&c);
        snprintf(c.host, sizeof c.host, "keep");
        before = c;
        assert_int_equal(url(&c, bad[i].url, err), ARIQ_EINVAL);
        if (!strstr(err, bad[i].msg))
            fail_msg("url %s: message \"%s\" lacks \"%s\"", bad[i].url, err, bad[i].msg);
        assert_null(strstr(err, "topsecret"));
        assert_memory_equal(&c, &before, sizeof c);
    }
    store_config c;
    store_config_init(&c);
    char longurl[2048];
    memset(longurl, 'a', sizeof longurl);
    memcpy(longurl, "redis://", 8);
    longurl[sizeof longurl - 1] = '\0';
    assert_int_equal(url(&c, longurl, err), ARIQ_EINVAL);
    assert_non_null(strstr(err, "too long"));
    longurl[8 + STORE_HOST_MAX] = '\0';
    assert_int_equal(url(&c, longurl, err), ARIQ_EINVAL);
    assert_non_null(strstr(err, "host too long"));
    assert_int_equal(url(&c, NULL, err), ARIQ_EINVAL);
}

static void test_config_check(void **state)
{
    (void)state;
    store_config c;
    char err[256];
    store_config_init(&c);
    assert_int_equal(store_config_check(&c, err, sizeof err), 0);
    c.ns[0] = '\0';
    assert_int_equal(store_config_check(&c, err, sizeof err), ARIQ_EINVAL);
    assert_non_null(strstr(err, "namespace"));
    store_config_init(&c);
    c.backoff_min_ms = 10;
    c.backoff_max_ms = 5;
    assert_int_equal(store_config_check(&c, err, sizeof err), ARIQ_EINVAL);
    store_config_init(&c);
    c.db = -1;
    assert_int_equal(store_config_check(&c, err, sizeof err), ARIQ_EINVAL);
    store_config_init(&c);
    c.reply_timeout_ms = 0; /* never */
    assert_int_equal(store_config_check(&c, err, sizeof err), 0);
    c.reply_timeout_ms = 5;
    assert_int_equal(store_config_check(&c, err, sizeof err), ARIQ_EINVAL);
    assert_non_null(strstr(err, "reply_timeout_ms"));
    store_config_init(&c);
    c.health_interval_ms = 0;
    assert_int_equal(store_config_check(&c, err, sizeof err), ARIQ_EINVAL);
    store_config_init(&c);
    c.port = 0;
    assert_int_equal(store_config_check(&c, err, sizeof err), ARIQ_EINVAL);
}

/* ---- redis-sentinel:// ---------------------------------------------------- */

static void test_sentinel_url_ok(void **state)
{
    (void)state;
    store_config c;
    char err[256];
    store_config_init(&c);
    assert_int_equal(url(&c, "redis-sentinel://10.0.0.1,10.0.0.2:26380,[::1]:7/mymaster", err),
                     0);
    assert_int_equal(c.nsentinels, 3);
    assert_string_equal(c.sentinels[0].host, "10.0.0.1");
    assert_int_equal(c.sentinels[0].port, 26379);
    assert_string_equal(c.sentinels[1].host, "10.0.0.2");
    assert_int_equal(c.sentinels[1].port, 26380);
    assert_string_equal(c.sentinels[2].host, "::1");
    assert_int_equal(c.sentinels[2].port, 7);
    assert_string_equal(c.master_name, "mymaster");
    assert_int_equal(c.db, 0);
    assert_string_equal(c.password, "");
    assert_string_equal(c.sentinel_password, "");
    assert_string_equal(c.host, "127.0.0.1"); /* untouched, unused */
    assert_int_equal(store_config_check(&c, err, sizeof err), 0);

    assert_int_equal(url(&c,
                         "REDIS-SENTINEL://app:Mast3r%40pw@s1:1/ha.main-1"
                         "?sentinel_password=S3nt%21nel%2Fx&db=7",
                         err),
                     0);
    assert_int_equal(c.nsentinels, 1);
    assert_string_equal(c.sentinels[0].host, "s1");
    assert_string_equal(c.master_name, "ha.main-1");
    assert_string_equal(c.username, "app");
    assert_string_equal(c.password, "Mast3r@pw");
    assert_string_equal(c.sentinel_password, "S3nt!nel/x");
    assert_int_equal(c.db, 7);
    assert_int_equal(store_config_check(&c, err, sizeof err), 0);

    /* eight is the most; a plain redis:// URL turns Sentinel off again */
    assert_int_equal(url(&c, "redis-sentinel://a,b,c,d,e,f,g,h/m", err), 0);
    assert_int_equal(c.nsentinels, 8);
    assert_int_equal(url(&c, "redis://10.0.0.9:6390/2", err), 0);
    assert_int_equal(c.nsentinels, 0);
    assert_string_equal(c.master_name, "");
    assert_string_equal(c.sentinel_password, "");
    assert_string_equal(c.host, "10.0.0.9");
    assert_int_equal(store_config_check(&c, err, sizeof err), 0);
}

/* store_config_check on Sentinel fields set by hand. */
static void test_sentinel_config_check(void **state)
{
    (void)state;
    store_config c;
    char err[256];
    store_config_init(&c);
    c.nsentinels = 1;
    snprintf(c.sentinels[0].host, sizeof c.sentinels[0].host, "127.0.0.1");
    c.sentinels[0].port = 26379;
    assert_int_equal(store_config_check(&c, err, sizeof err), ARIQ_EINVAL);
    assert_non_null(strstr(err, "master_name"));
    snprintf(c.master_name, sizeof c.master_name, "m");
    assert_int_equal(store_config_check(&c, err, sizeof err), 0);
    c.host[0] = '\0'; /* host and port are not used with sentinels */
    c.port = 0;
    assert_int_equal(store_config_check(&c, err, sizeof err), 0);
    c.sentinels[0].port = 0;
    assert_int_equal(store_config_check(&c, err, sizeof err), ARIQ_EINVAL);
    assert_non_null(strstr(err, "sentinel 1: port"));
    c.sentinels[0].port = 1;
    c.nsentinels = STORE_SENTINELS_MAX + 1;
    assert_int_equal(store_config_check(&c, err, sizeof err), ARIQ_EINVAL);
    assert_non_null(strstr(err, "at most 8 sentinels"));
    c.nsentinels = 1;
    c.sentinel_timeout_ms = 5;
    assert_int_equal(store_config_check(&c, err, sizeof err), ARIQ_EINVAL);
    assert_non_null(strstr(err, "sentinel_timeout_ms"));
    store_config_init(&c);
    snprintf(c.master_name, sizeof c.master_name, "m");
    assert_int_equal(store_config_check(&c, err, sizeof err), ARIQ_EINVAL);
    assert_non_null(strstr(err, "no sentinels"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_tag),   cmocka_unit_test(test_bad_namespace),
        cmocka_unit_test(test_bad_ids),    cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_url_ok),     cmocka_unit_test(test_url_bad),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_sentinel_url_ok),
        cmocka_unit_test(test_sentinel_config_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
