/* Unit tests of the jansson helpers in core/json.h: limits, types, defaults,
 * and that a failing getter leaves *out alone. */
#include "core/err.h"
#include "core/json.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

static json_t *load(const char *s)
{
    json_t *j = NULL;
    char err[128];
    assert_int_equal(jx_load(s, strlen(s), 4096, &j, err, sizeof err), 0);
    return j;
}

static void test_load(void **state)
{
    (void)state;
    json_t *j = NULL;
    char err[128] = "";
    assert_int_equal(jx_load("{\"a\":1,\"a\":2}", 13, 100, &j, err, sizeof err),
                     ARIQ_EINVAL);
    assert_non_null(strstr(err, "duplicate"));
    assert_int_equal(jx_load("{\"a\":1}", 7, 6, &j, err, sizeof err), ARIQ_ERANGE);
    assert_int_equal(jx_load("{\"a\":", 5, 100, &j, err, sizeof err), ARIQ_EINVAL);
    assert_non_null(strstr(err, "line 1"));
    assert_int_equal(jx_load(NULL, 0, 100, &j, NULL, 0), ARIQ_EINVAL);
    assert_null(j);
    j = load("\"scalar\"");
    assert_true(json_is_string(j));
    json_decref(j);
}

static void test_strings(void **state)
{
    (void)state;
    json_t *j =
        load("{\"s\":\"abc\",\"n\":5,\"c\":\"a\\tb\",\"u\":\"caf\\u00e9\",\"z\":null,"
             "\"id\":\"1795384614.39\",\"bad\":\"Local/x@y;2\"}");
    const char *out = "untouched";
    char err[128] = "";
    assert_int_equal(jx_get_str(j, "s", 3, &out, err, sizeof err), 0);
    assert_string_equal(out, "abc");
    out = "untouched";
    assert_int_equal(jx_get_str(j, "s", 2, &out, err, sizeof err), ARIQ_ERANGE);
    assert_string_equal(err, "s: 3 bytes, limit 2");
    assert_string_equal(out, "untouched");
    assert_int_equal(jx_get_str(j, "n", 10, &out, err, sizeof err), ARIQ_EINVAL);
    assert_string_equal(err, "n: not a string");
    assert_int_equal(jx_get_str(j, "c", 10, &out, err, sizeof err), ARIQ_EINVAL);
    assert_int_equal(jx_get_str(j, "u", 10, &out, err, sizeof err),
                     0); /* UTF-8 is fine */
    assert_int_equal(jx_get_str(j, "z", 10, &out, err, sizeof err), ARIQ_EINVAL);
    assert_string_equal(err, "z: missing");
    assert_int_equal(jx_get_str_opt(j, "z", 10, "dflt", &out, err, sizeof err), 0);
    assert_string_equal(out, "dflt");
    assert_int_equal(jx_get_str_opt(j, "n", 10, "dflt", &out, err, sizeof err),
                     ARIQ_EINVAL);
    assert_int_equal(jx_get_id(j, "id", 64, &out, err, sizeof err), 0);
    assert_string_equal(out, "1795384614.39");
    assert_int_equal(jx_get_id(j, "bad", 64, &out, err, sizeof err), ARIQ_EINVAL);
    assert_int_equal(jx_get_id(j, "id", 5, &out, err, sizeof err), ARIQ_ERANGE);
    /* a non-object container is "missing", never a crash */
    assert_int_equal(jx_get_str(json_object_get(j, "n"), "s", 3, &out, NULL, 0),
                     ARIQ_EINVAL);
    json_decref(j);
}

static void test_numbers_and_containers(void **state)
{
    (void)state;
    json_t *j = load("{\"i\":42,\"r\":1.5,\"neg\":-1,\"b\":true,\"a\":[1,2,3],\"o\":{}}");
    long long n = 7;
    bool b = false;
    json_t *v = NULL;
    char err[128] = "";
    assert_int_equal(jx_get_int(j, "i", 0, 100, &n, err, sizeof err), 0);
    assert_int_equal(n, 42);
    n = 7;
    assert_int_equal(jx_get_int(j, "i", 0, 41, &n, err, sizeof err), ARIQ_ERANGE);
    assert_string_equal(err, "i: 42 not in [0, 41]");
    assert_int_equal(n, 7);
    assert_int_equal(jx_get_int(j, "r", 0, 100, &n, err, sizeof err), ARIQ_EINVAL);
    assert_int_equal(jx_get_int(j, "neg", 0, 100, &n, err, sizeof err), ARIQ_ERANGE);
    assert_int_equal(jx_get_int_opt(j, "none", 0, 100, -1, &n, err, sizeof err), 0);
    assert_int_equal(n, -1);
    assert_int_equal(jx_get_bool_opt(j, "b", false, &b, err, sizeof err), 0);
    assert_true(b);
    assert_int_equal(jx_get_bool_opt(j, "i", false, &b, err, sizeof err), ARIQ_EINVAL);
    assert_int_equal(jx_get_array(j, "a", 3, &v, err, sizeof err), 0);
    assert_int_equal(json_array_size(v), 3);
    assert_int_equal(jx_get_array(j, "a", 2, &v, err, sizeof err), ARIQ_ERANGE);
    assert_int_equal(jx_get_array(j, "o", 2, &v, err, sizeof err), ARIQ_EINVAL);
    assert_int_equal(jx_get_obj(j, "o", &v, err, sizeof err), 0);
    assert_true(json_is_object(v));
    assert_int_equal(jx_get_obj(j, "a", &v, err, sizeof err), ARIQ_EINVAL);
    /* a tiny error buffer is truncated, never overrun */
    char tiny[4];
    assert_int_equal(jx_get_obj(j, "missing-key", &v, tiny, sizeof tiny), ARIQ_EINVAL);
    assert_int_equal(strlen(tiny), 3);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_numbers_and_containers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
