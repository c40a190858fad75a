/* Unit tests for model/entry: Stasis(queue,...) arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "model/entry.h"

#define PARSE(num, ...)                                                                    \
    ({                                                                                     \
        const char *a_[] = {__VA_ARGS__};                                                  \
        entry_args_parse(a_, sizeof a_ / sizeof a_[0], (num), &e, err, sizeof err);       \
    })

static void test_caller(void **state)
{
    (void)state;
    entry_args e;
    char err[256];
    assert_int_equal(PARSE(NULL, "caller"), 0);
    assert_int_equal(e.role, ENTRY_CALLER);
    assert_int_equal(e.nqueues, 1);
    assert_string_equal(e.queues[0], "default");
    assert_int_equal(e.priority, 0);

    assert_int_equal(PARSE(NULL, "caller", "support&sales", "5"), 0);
    assert_int_equal(e.nqueues, 2);
    assert_string_equal(e.queues[0], "support");
    assert_string_equal(e.queues[1], "sales");
    assert_int_equal(e.priority, 5);

    assert_int_equal(PARSE(NULL, "caller", "support", ""), 0); /* empty: default priority */
    assert_int_equal(e.priority, 0);
    assert_int_equal(PARSE(NULL, "caller", "", "1000"), 0);
    assert_string_equal(e.queues[0], "default");
    assert_int_equal(e.priority, 1000);
}

static void test_agent_and_link(void **state)
{
    (void)state;
    entry_args e;
    char err[256];
    assert_int_equal(PARSE("1001", "agent"), 0); /* id from the caller id */
    assert_int_equal(e.role, ENTRY_AGENT);
    assert_string_equal(e.agent_id, "1001");
    assert_string_equal(e.queues[0], "default");
    assert_int_equal(PARSE("1001", "agent", "support&sales", "a-7"), 0);
    assert_string_equal(e.agent_id, "a-7");
    assert_int_equal(e.nqueues, 2);

    assert_int_equal(PARSE(NULL, "link", "pair-100001"), 0);
    assert_int_equal(e.role, ENTRY_LINK);
    assert_string_equal(e.pairing, "pair-100001");
}

/* Every malformed form is refused with a message that names the argument. */
static void test_invalid(void **state)
{
    (void)state;
    entry_args e;
    char err[256];
    static const struct {
        const char *args[5];
        size_t n;
        const char *num;
        const char *want;
    } cases[] = {
        {{NULL}, 0, NULL, "no role"},
        {{"bogus"}, 1, NULL, "unknown role 'bogus'"},
        {{"Caller"}, 1, NULL, "unknown role"},
        {{"caller", "support", "high"}, 3, NULL, "args[2]: priority 'high'"},
        {{"caller", "support", "-1"}, 3, NULL, "from 0 to 1000"},
        {{"caller", "support", "1001"}, 3, NULL, "from 0 to 1000"},
        {{"caller", "support", "5x"}, 3, NULL, "priority '5x'"},
        {{"caller", "support", "99999999999999999999"}, 3, NULL, "priority"},
        {{"caller", "a&&b"}, 2, NULL, "empty or too long queue name"},
        {{"caller", "sup port"}, 2, NULL, "queue name 'sup port'"},
        {{"caller", "a/b"}, 2, NULL, "queue name 'a/b'"},
        {{"caller", "q&q"}, 2, NULL, "queue 'q' given twice"},
        {{"caller", "q", "1", "extra"}, 4, NULL, "at most 2 arguments"},
        {{"agent"}, 1, NULL, "no agent id given"},
        {{"agent"}, 1, "", "no agent id given"},
        {{"agent", "q", "bad id"}, 3, NULL, "args[2]: agent id 'bad id'"},
        {{"agent"}, 1, "+1 555", "agent id '+1 555'"},
        {{"link"}, 1, NULL, "exactly 1 argument"},
        {{"link", "a;b"}, 2, NULL, "pairing 'a;b'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        int rc = entry_args_parse(cases[i].args, cases[i].n, cases[i].num, &e, err, sizeof err);
        if (rc != ARIQ_EINVAL || !strstr(err, cases[i].want))
            fail_msg("case %zu: rc=%d err='%s' want '%s'", i, rc, err, cases[i].want);
    }
}

static void test_limits(void **state)
{
    (void)state;
    entry_args e;
    char err[256];
    char list[2048] = "";
    for (int i = 0; i < ENTRY_MAX_QUEUES; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%sq%d", i ? "&" : "", i);
    assert_int_equal(PARSE(NULL, "caller", list), 0);
    assert_int_equal(e.nqueues, ENTRY_MAX_QUEUES);
    strcat(list, "&one-more");
    assert_int_equal(PARSE(NULL, "caller", list), ARIQ_EINVAL);
    assert_non_null(strstr(err, "more than 16 queues"));

    char longname[ENTRY_NAME_MAX + 2];
    memset(longname, 'q', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(PARSE(NULL, "caller", longname), ARIQ_EINVAL);
    longname[ENTRY_NAME_MAX] = '\0'; /* exactly the limit fits */
    assert_int_equal(PARSE(NULL, "caller", longname), 0);
    /* a hostile arg is clipped in the message */
    char huge[4096];
    memset(huge, 'x', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(PARSE(NULL, huge), ARIQ_EINVAL);
    assert_true(strlen(err) < 120);
    assert_string_equal(entry_role_name(ENTRY_AGENT), "agent");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caller),
        cmocka_unit_test(test_agent_and_link),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
