/* queue_log_format: every event of the stream against the line Asterisk 22's
 * app_queue writes for it, written out by hand from its ast_queue_log format
 * strings (logger.c: "%ld|%s|%s|%s|%s|" time callid queue agent event, then
 * the event's data). Entries are shaped as queue.lua's emit writes them:
 * event ts_ms queue callid agent node, then the event's own fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "queue_log.h"

#define MAXF 32

/* Builds an entry from "name=value" strings (value may be empty). */
typedef struct entry {
    qlog_field f[MAXF];
    char store[MAXF][512];
    size_t n;
} entry;

static void mk(entry *e, const char *const *kv)
{
    memset(e, 0, sizeof *e);
    for (; *kv; kv++) {
        snprintf(e->store[e->n], sizeof e->store[0], "%s", *kv);
        char *eq = strchr(e->store[e->n], '=');
        *eq = '\0';
        e->f[e->n].name = e->store[e->n];
        e->f[e->n].value = eq + 1;
        e->n++;
    }
}

static void expect_lines(const qlog_format_opts *o, const char *queues, const char *const *kv,
                         int nlines, const char *want)
{
    entry e;
    mk(&e, kv);
    qlog_buf b = {0};
    char why[256];
    int rc = queue_log_format(e.f, e.n, o, queues, &b, why, sizeof why);
    assert_int_equal(rc, nlines);
    assert_string_equal(b.s ? b.s : "", want);
    qlog_buf_free(&b);
}

#define E(...) ((const char *const[]){__VA_ARGS__, NULL})
#define COMMON(ev, q, c, a) "event=" ev, "ts_ms=1700000123456", "queue=" q, "callid=" c, \
                            "agent=" a, "node=node1"

/* ENTERQUEUE "%s|%s|%d" url|callerid|opos (app_queue.c:9038); with
 * log_caller_id_name "%s|%s|%d|%s", '|' in the name written '_' (9032). */
static void t_enterqueue(void **st)
{
    (void)st;
    const char *const *kv = E(COMMON("ENTERQUEUE", "support", "c-1", "NONE"), "url=",
                              "callerid=5551234", "position=2", "callername=Ann|Lee");
    expect_lines(NULL, NULL, kv, 1, "1700000123|c-1|support|NONE|ENTERQUEUE||5551234|2\n");
    qlog_format_opts o = {1, QLOG_AGENTS_MEMBER};
    expect_lines(&o, NULL, kv, 1, "1700000123|c-1|support|NONE|ENTERQUEUE||5551234|2|Ann_Lee\n");
}

/* CONNECT "%ld|%s|%ld" holdtime|peer uniqueid|ringtime (7684). */
static void t_connect(void **st)
{
    (void)st;
    expect_lines(NULL, NULL,
                 E(COMMON("CONNECT", "support", "c-1", "1001"), "holdtime=12",
                   "bridgedchanneluniqueid=a-9", "ringtime=0", "holdtime_ms=12345",
                   "ringtime_ms=40", "pairing=p7"),
                 1, "1700000123|c-1|support|1001|CONNECT|12|a-9|0\n");
}

/* COMPLETECALLER / COMPLETEAGENT "%ld|%ld|%d" holdtime|calltime|opos (6961). */
static void t_complete(void **st)
{
    (void)st;
    expect_lines(NULL, NULL,
                 E(COMMON("COMPLETECALLER", "support", "c-1", "1001"), "holdtime=12",
                   "calltime=61", "origposition=2", "holdtime_ms=12345", "calltime_ms=61000",
                   "pairing=p7"),
                 1, "1700000123|c-1|support|1001|COMPLETECALLER|12|61|2\n");
    expect_lines(NULL, NULL,
                 E(COMMON("COMPLETEAGENT", "sales", "c-2", "1002"), "holdtime=0", "calltime=5",
                   "origposition=1", "holdtime_ms=10", "calltime_ms=5000", "pairing=p8"),
                 1, "1700000123|c-2|sales|1002|COMPLETEAGENT|0|5|1\n");
}

/* ABANDON / EXITWITHTIMEOUT / EXITEMPTY "%d|%d|%ld" pos|opos|waittime
 * (9232, 9099, 9153); the reaper's extra `reason` is not written. */
static void t_exits(void **st)
{
    (void)st;
    expect_lines(NULL, NULL,
                 E(COMMON("ABANDON", "support", "c-3", "NONE"), "position=1", "origposition=3",
                   "waittime=7", "waittime_ms=7500", "reason=node node2 lost"),
                 1, "1700000123|c-3|support|NONE|ABANDON|1|3|7\n");
    expect_lines(NULL, NULL,
                 E(COMMON("EXITWITHTIMEOUT", "brief", "c-4", "NONE"), "position=1",
                   "origposition=1", "waittime=20", "waittime_ms=20010"),
                 1, "1700000123|c-4|brief|NONE|EXITWITHTIMEOUT|1|1|20\n");
    expect_lines(NULL, NULL,
                 E(COMMON("EXITEMPTY", "brief", "c-5", "NONE"), "position=2", "origposition=2",
                   "waittime=3", "waittime_ms=3000"),
                 1, "1700000123|c-5|brief|NONE|EXITEMPTY|2|2|3\n");
}

/* EXITWITHKEY "%s|%d|%d|%ld" digits|pos|opos|waittime (9244). */
static void t_exitwithkey(void **st)
{
    (void)st;
    expect_lines(NULL, NULL,
                 E(COMMON("EXITWITHKEY", "support", "c-6", "NONE"), "key=5", "position=1",
                   "origposition=4", "waittime=9"),
                 1, "1700000123|c-6|support|NONE|EXITWITHKEY|5|1|4|9\n");
}

/* WITHDRAW "%d|%d|%ld|%.40s" (9224): the info cut at 40 bytes. */
static void t_withdraw(void **st)
{
    (void)st;
    expect_lines(NULL, NULL,
                 E(COMMON("WITHDRAW", "sales", "c-1", "NONE"), "position=1", "origposition=1",
                   "waittime=12", "withdrawinfo=connected:support"),
                 1, "1700000123|c-1|sales|NONE|WITHDRAW|1|1|12|connected:support\n");
    expect_lines(NULL, NULL,
                 E(COMMON("WITHDRAW", "sales", "c-1", "NONE"), "position=1", "origposition=1",
                   "waittime=12",
                   "withdrawinfo=connected:a-very-long-queue-name-that-goes-on-and-on"),
                 1,
                 "1700000123|c-1|sales|NONE|WITHDRAW|1|1|12|"
                 "connected:a-very-long-queue-name-that-go\n");
}

/* PAUSE / UNPAUSE "%s" reason_paused (8138; char[80]: 79 bytes kept). */
static void t_pause(void **st)
{
    (void)st;
    expect_lines(NULL, NULL, E(COMMON("PAUSE", "support", "NONE", "1001"), "reason=lunch"), 1,
                 "1700000123|NONE|support|1001|PAUSE|lunch\n");
    expect_lines(NULL, NULL, E(COMMON("UNPAUSE", "support", "NONE", "1001"), "reason="), 1,
                 "1700000123|NONE|support|1001|UNPAUSE|\n");
    char r[120], want[200];
    memset(r, 'x', 100);
    r[100] = '\0';
    char kvr[130];
    snprintf(kvr, sizeof kvr, "reason=%s", r);
    snprintf(want, sizeof want, "1700000123|NONE|q|1001|PAUSE|%.79s\n", r);
    expect_lines(NULL, NULL, E(COMMON("PAUSE", "q", "NONE", "1001"), kvr), 1, want);
}

/* RINGNOANSWER "%d" rnatime in ms (5361). */
static void t_ringnoanswer(void **st)
{
    (void)st;
    expect_lines(NULL, NULL,
                 E(COMMON("RINGNOANSWER", "support", "c-1", "1001"), "ringtime_ms=15000"), 1,
                 "1700000123|c-1|support|1001|RINGNOANSWER|15000\n");
}

/* AGENTLOGIN: ADDMEMBER "%s" "" per queue (8719: callid = the channel
 * running AddQueueMember, the agent's), or AGENTLOGIN "%s" channel name
 * with queue NONE (queue_agent_cb, 6419). AGENTLOGOFF: REMOVEMEMBER "%s" ""
 * per queue (8619) or AGENTLOGOFF "%s|%ld" channel|logintime (6423). */
static void t_agents(void **st)
{
    (void)st;
    const char *const *in = E(COMMON("AGENTLOGIN", "NONE", "a-9", "1001"),
                              "channel=PJSIP/1001-00000001", "queues=support&sales");
    const char *const *out = E(COMMON("AGENTLOGOFF", "NONE", "a-9", "1001"),
                               "channel=PJSIP/1001-00000001", "logintime=3600", "reason=hangup");
    expect_lines(NULL, NULL, in, 2,
                 "1700000123|a-9|support|1001|ADDMEMBER|\n"
                 "1700000123|a-9|sales|1001|ADDMEMBER|\n");
    expect_lines(NULL, "support&sales", out, 2,
                 "1700000123|a-9|support|1001|REMOVEMEMBER|\n"
                 "1700000123|a-9|sales|1001|REMOVEMEMBER|\n");
    expect_lines(NULL, NULL, out, 0, ""); /* queues unknown: nothing invented */
    qlog_format_opts ag = {0, QLOG_AGENTS_AGENT};
    expect_lines(&ag, NULL, in, 1, "1700000123|a-9|NONE|1001|AGENTLOGIN|PJSIP/1001-00000001\n");
    expect_lines(&ag, NULL, out, 1,
                 "1700000123|a-9|NONE|1001|AGENTLOGOFF|PJSIP/1001-00000001|3600\n");
    qlog_format_opts both = {0, QLOG_AGENTS_BOTH};
    expect_lines(&both, "support", out, 2,
                 "1700000123|a-9|support|1001|REMOVEMEMBER|\n"
                 "1700000123|a-9|NONE|1001|AGENTLOGOFF|PJSIP/1001-00000001|3600\n");
}

/* ariq's recording events, own names, same layout. */
static void t_record(void **st)
{
    (void)st;
    expect_lines(NULL, NULL,
                 E(COMMON("RECORDSTART", "support", "c-1", "1001"), "recording=r1",
                   "file=r1.wav", "pairing=p7"),
                 1, "1700000123|c-1|support|1001|RECORDSTART|r1|r1.wav|p7\n");
    expect_lines(NULL, NULL,
                 E(COMMON("RECORDPAUSE", "support", "c-1", "1001"), "recording=r1",
                   "file=r1.wav", "pairing=p7", "paused_ms=0"),
                 1, "1700000123|c-1|support|1001|RECORDPAUSE|r1|r1.wav|p7|0\n");
    expect_lines(NULL, NULL,
                 E(COMMON("RECORDUNPAUSE", "support", "c-1", "1001"), "recording=r1",
                   "file=r1.wav", "pairing=p7", "paused_ms=1500"),
                 1, "1700000123|c-1|support|1001|RECORDUNPAUSE|r1|r1.wav|p7|1500\n");
    expect_lines(NULL, NULL,
                 E(COMMON("RECORDSTOP", "support", "c-1", "1001"), "recording=r1",
                   "file=r1.wav", "pairing=p7", "paused_ms=1500", "duration_ms=20000"),
                 1, "1700000123|c-1|support|1001|RECORDSTOP|r1|r1.wav|p7|1500|20000\n");
    expect_lines(NULL, NULL,
                 E(COMMON("RECORDDISCARD", "support", "c-1", "1001"), "recording=r1",
                   "file=r1.wav", "pairing=p7", "paused_ms=0", "duration_ms=100"),
                 1, "1700000123|c-1|support|1001|RECORDDISCARD|r1|r1.wav|p7|0|100\n");
}

/* ariq's own events have no app_queue line. */
static void t_skipped(void **st)
{
    (void)st;
    expect_lines(NULL, NULL, E(COMMON("PAIRED", "support", "c-1", "1001"), "pairing=p7"), 0, "");
    expect_lines(NULL, NULL, E(COMMON("UNPAIRED", "support", "c-1", "1001"), "pairing=p7"), 0,
                 "");
    expect_lines(NULL, NULL, E(COMMON("NODEDRAIN", "NONE", "NONE", "NONE"), "state=on"), 0, "");
    expect_lines(NULL, NULL, E(COMMON("RESTORE", "support", "c-1", "NONE"), "position=1"), 0,
                 "");
    expect_lines(NULL, NULL, E(COMMON("PRIORITY", "support", "c-1", "NONE"), "priority=5"), 0,
                 "");
    expect_lines(NULL, NULL, E(COMMON("SOMETHINGNEW", "support", "c-1", "NONE")), 0, "");
}

/* A value can never forge a field or a line; a malformed entry is refused
 * and leaves the buffer as it was. */
static void t_hostile(void **st)
{
    (void)st;
    expect_lines(NULL, NULL,
                 E(COMMON("PAUSE", "support", "NONE", "1001"), "reason=a|b\nc\r"), 1,
                 "1700000123|NONE|support|1001|PAUSE|a_b_c_\n");
    entry e;
    mk(&e, E("event=CONNECT", "ts_ms=12x", "queue=q", "callid=c", "agent=a", "holdtime=1",
             "bridgedchanneluniqueid=b", "ringtime=0"));
    qlog_buf b = {0};
    char why[256];
    assert_int_equal(queue_log_format(e.f, e.n, NULL, NULL, &b, why, sizeof why), ARIQ_EINVAL);
    assert_non_null(strstr(why, "ts_ms"));
    mk(&e, E(COMMON("CONNECT", "q", "c", "a"), "holdtime=1"));
    assert_int_equal(queue_log_format(e.f, e.n, NULL, NULL, &b, why, sizeof why), ARIQ_EINVAL);
    assert_non_null(strstr(why, "bridgedchanneluniqueid"));
    assert_int_equal((int)b.len, 0);
    mk(&e, E("ts_ms=1"));
    assert_int_equal(queue_log_format(e.f, e.n, NULL, NULL, &b, why, sizeof why), ARIQ_EINVAL);
    qlog_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_enterqueue), cmocka_unit_test(t_connect),
        cmocka_unit_test(t_complete),   cmocka_unit_test(t_exits),
        cmocka_unit_test(t_exitwithkey), cmocka_unit_test(t_withdraw),
        cmocka_unit_test(t_pause),      cmocka_unit_test(t_ringnoanswer),
        cmocka_unit_test(t_agents),     cmocka_unit_test(t_record),
        cmocka_unit_test(t_skipped),    cmocka_unit_test(t_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
