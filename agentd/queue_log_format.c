/* queue_log_format.c - one events-stream entry -> the lines app_queue writes.
 *
 * The reference is Asterisk 22's apps/app_queue.c (branch 22): each event's
 * data follows the format string of its ast_queue_log call, quoted in the
 * table below, and main/logger.c lays out the line as
 * "%ld|%s|%s|%s|%s|" time, callid, queuename, agent, event, then the data. */
#include "queue_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* app_queue copies a pause reason into reason_paused[80], and writes a
 * withdraw info with "%.40s". */
#define PAUSE_REASON_MAX 79
#define WITHDRAW_INFO_MAX 40

void qlog_buf_free(qlog_buf *b)
{
    if (!b)
        return;
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

static int buf_reserve(qlog_buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s)
        return ARIQ_ENOMEM;
    b->s = s;
    b->cap = cap;
    return 0;
}

const char *qlog_field_get(const qlog_field *f, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (f[i].name && !strcmp(f[i].name, name))
            return f[i].value;
    return NULL;
}

/* The entry being formatted: its fields, and what went wrong so far. */
typedef struct fmt_ctx {
    const qlog_field *f;
    size_t n;
    const qlog_format_opts *o;
    char *why;
    size_t whylen;
    int bad;      /* a required field is missing */
    int replaced; /* a value had a byte written '_' */
    char line[QLOG_LINE_MAX + 2];
    size_t len;
} fmt_ctx;

static void say(fmt_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(fmt_ctx *c, const char *fmt, ...)
{
    if (!c->why || !c->whylen || c->why[0])
        return; /* the first reason is the one worth reading */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, c->whylen, fmt, ap);
    va_end(ap);
}

static const char *need(fmt_ctx *c, const char *name)
{
    const char *v = qlog_field_get(c->f, c->n, name);
    if (!v) {
        c->bad = 1;
        say(c, "field %s missing", name);
        return "";
    }
    return v;
}

/* Appends at most max bytes of v, each '|' or control byte written '_'. */
static void put_n(fmt_ctx *c, const char *name, const char *v, size_t max)
{
    for (size_t i = 0; v[i] && i < max && c->len < QLOG_LINE_MAX; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch == '|' || ch < 0x20 || ch == 0x7f) {
            ch = '_';
            if (!c->replaced)
                say(c, "field %s: '|' or a control character written '_'", name);
            c->replaced = 1;
        }
        c->line[c->len++] = (char)ch;
    }
}

static void put(fmt_ctx *c, const char *name, const char *v)
{
    put_n(c, name, v, (size_t)-1);
}

static void sep(fmt_ctx *c)
{
    if (c->len < QLOG_LINE_MAX)
        c->line[c->len++] = '|';
}

/* "|value" of a field that must be there. */
static void data(fmt_ctx *c, const char *name)
{
    sep(c);
    put(c, name, need(c, name));
}

static void data_n(fmt_ctx *c, const char *name, size_t max)
{
    sep(c);
    put_n(c, name, need(c, name), max);
}

/* Starts a line: TIME|CALLID|QUEUE|AGENT|EVENT (no data yet). */
static void head(fmt_ctx *c, const char *queue, const char *event)
{
    const char *ts = need(c, "ts_ms");
    char *end;
    unsigned long long ms = strtoull(ts, &end, 10);
    if (!*ts || *end || ts[0] == '-') {
        c->bad = 1;
        say(c, "ts_ms '%.32s' is not a number", ts);
    }
    c->len = (size_t)snprintf(c->line, sizeof c->line, "%llu", ms / 1000);
    const char *callid = need(c, "callid"), *agent = need(c, "agent");
    sep(c);
    put(c, "callid", callid);
    sep(c);
    put(c, "queue", queue);
    sep(c);
    put(c, "agent", agent);
    sep(c);
    put(c, "event", event);
}

static int end_line(fmt_ctx *c, qlog_buf *out)
{
    c->line[c->len++] = '\n';
    if (buf_reserve(out, c->len) != 0)
        return ARIQ_ENOMEM;
    memcpy(out->s + out->len, c->line, c->len);
    out->len += c->len;
    out->s[out->len] = '\0';
    return 1;
}

/* ---- one writer per event: the app_queue format string it follows ---------------- */

/* ENTERQUEUE "%s|%s|%d" url, callerid number, qe.opos; with
 * log_caller_id_name "%s|%s|%d|%s", the name's '|' written '_'. */
static int w_enterqueue(fmt_ctx *c, qlog_buf *out)
{
    head(c, need(c, "queue"), "ENTERQUEUE");
    data(c, "url");
    data(c, "callerid");
    data(c, "position");
    if (c->o->log_caller_id_name) {
        const char *name = qlog_field_get(c->f, c->n, "callername");
        sep(c);
        put(c, "callername", name ? name : "");
    }
    return end_line(c, out);
}

/* CONNECT "%ld|%s|%ld" holdtime, the agent channel's uniqueid, ringtime. */
static int w_connect(fmt_ctx *c, qlog_buf *out)
{
    head(c, need(c, "queue"), "CONNECT");
    data(c, "holdtime");
    data(c, "bridgedchanneluniqueid");
    data(c, "ringtime");
    return end_line(c, out);
}

/* COMPLETECALLER / COMPLETEAGENT "%ld|%ld|%d" holdtime, calltime, caller_pos
 * (= qe->opos). */
static int w_complete(fmt_ctx *c, const char *ev, qlog_buf *out)
{
    head(c, need(c, "queue"), ev);
    data(c, "holdtime");
    data(c, "calltime");
    data(c, "origposition");
    return end_line(c, out);
}

/* ABANDON, EXITWITHTIMEOUT, EXITEMPTY "%d|%d|%ld" pos, opos, waittime. */
static int w_exit(fmt_ctx *c, const char *ev, qlog_buf *out)
{
    head(c, need(c, "queue"), ev);
    data(c, "position");
    data(c, "origposition");
    data(c, "waittime");
    return end_line(c, out);
}

/* EXITWITHKEY "%s|%d|%d|%ld" digits, pos, opos, waittime. */
static int w_exitwithkey(fmt_ctx *c, qlog_buf *out)
{
    head(c, need(c, "queue"), "EXITWITHKEY");
    data(c, "key");
    data(c, "position");
    data(c, "origposition");
    data(c, "waittime");
    return end_line(c, out);
}

/* WITHDRAW "%d|%d|%ld|%.40s" pos, opos, waittime, withdraw_info. */
static int w_withdraw(fmt_ctx *c, qlog_buf *out)
{
    head(c, need(c, "queue"), "WITHDRAW");
    data(c, "position");
    data(c, "origposition");
    data(c, "waittime");
    data_n(c, "withdrawinfo", WITHDRAW_INFO_MAX);
    return end_line(c, out);
}

/* PAUSE / UNPAUSE "%s" mem->reason_paused (char[80]). */
static int w_pause(fmt_ctx *c, const char *ev, qlog_buf *out)
{
    head(c, need(c, "queue"), ev);
    data_n(c, "reason", PAUSE_REASON_MAX);
    return end_line(c, out);
}

/* RINGNOANSWER "%d" rnatime (ms). */
static int w_ringnoanswer(fmt_ctx *c, qlog_buf *out)
{
    head(c, need(c, "queue"), "RINGNOANSWER");
    data(c, "ringtime_ms");
    return end_line(c, out);
}

/* ADDMEMBER "%s" "" (not paused) / REMOVEMEMBER "%s" "", one line per
 * queue of the `&`-joined list, as AddQueueMember / RemoveQueueMember run
 * on the agent's channel write them. */
static int w_members(fmt_ctx *c, const char *ev, const char *queues, qlog_buf *out)
{
    int lines = 0;
    const char *q = queues;
    while (*q) {
        size_t n = strcspn(q, "&");
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), q);
        if (n) {
            head(c, name, ev);
            sep(c);
            int rc = end_line(c, out);
            if (rc < 0)
                return rc;
            lines++;
        }
        q += n + (q[n] == '&');
    }
    return lines;
}

/* AGENTLOGIN "%s" channel name (queue NONE), from queue_agent_cb. */
static int w_agentlogin(fmt_ctx *c, qlog_buf *out)
{
    int lines = 0, rc;
    if (c->o->agents != QLOG_AGENTS_MEMBER) {
        head(c, "NONE", "AGENTLOGIN");
        data(c, "channel");
        if ((rc = end_line(c, out)) < 0)
            return rc;
        lines++;
    }
    if (c->o->agents != QLOG_AGENTS_AGENT) {
        if ((rc = w_members(c, "ADDMEMBER", need(c, "queues"), out)) < 0)
            return rc;
        lines += rc;
    }
    return lines;
}

/* AGENTLOGOFF "%s|%ld" channel name, logintime (queue NONE). */
static int w_agentlogoff(fmt_ctx *c, const char *queues, qlog_buf *out)
{
    int lines = 0, rc;
    if (c->o->agents != QLOG_AGENTS_AGENT) {
        if (!queues) {
            say(c, "agent %.128s: its queues are unknown (AGENTLOGIN not seen), no REMOVEMEMBER",
                need(c, "agent"));
        } else {
            if ((rc = w_members(c, "REMOVEMEMBER", queues, out)) < 0)
                return rc;
            lines += rc;
        }
    }
    if (c->o->agents != QLOG_AGENTS_MEMBER) {
        head(c, "NONE", "AGENTLOGOFF");
        data(c, "channel");
        data(c, "logintime");
        if ((rc = end_line(c, out)) < 0)
            return rc;
        lines++;
    }
    return lines;
}

/* ariq's recording events, under their own names, with the same layout:
 * recording|file|pairing[|paused_ms[|duration_ms]]. */
static int w_record(fmt_ctx *c, const char *ev, int nums, qlog_buf *out)
{
    head(c, need(c, "queue"), ev);
    data(c, "recording");
    data(c, "file");
    data(c, "pairing");
    if (nums >= 1)
        data(c, "paused_ms");
    if (nums >= 2)
        data(c, "duration_ms");
    return end_line(c, out);
}

static int dispatch(fmt_ctx *c, const char *ev, const char *agent_queues, qlog_buf *out)
{
    if (!strcmp(ev, "ENTERQUEUE"))
        return w_enterqueue(c, out);
    if (!strcmp(ev, "CONNECT"))
        return w_connect(c, out);
    if (!strcmp(ev, "COMPLETECALLER") || !strcmp(ev, "COMPLETEAGENT"))
        return w_complete(c, ev, out);
    if (!strcmp(ev, "ABANDON") || !strcmp(ev, "EXITWITHTIMEOUT") || !strcmp(ev, "EXITEMPTY"))
        return w_exit(c, ev, out);
    if (!strcmp(ev, "EXITWITHKEY"))
        return w_exitwithkey(c, out);
    if (!strcmp(ev, "WITHDRAW"))
        return w_withdraw(c, out);
    if (!strcmp(ev, "PAUSE") || !strcmp(ev, "UNPAUSE"))
        return w_pause(c, ev, out);
    if (!strcmp(ev, "RINGNOANSWER"))
        return w_ringnoanswer(c, out);
    if (!strcmp(ev, "AGENTLOGIN"))
        return w_agentlogin(c, out);
    if (!strcmp(ev, "AGENTLOGOFF"))
        return w_agentlogoff(c, agent_queues, out);
    if (!strcmp(ev, "RECORDSTART"))
        return w_record(c, ev, 0, out);
    if (!strcmp(ev, "RECORDPAUSE") || !strcmp(ev, "RECORDUNPAUSE"))
        return w_record(c, ev, 1, out);
    if (!strcmp(ev, "RECORDSTOP") || !strcmp(ev, "RECORDDISCARD"))
        return w_record(c, ev, 2, out);
    if (!strcmp(ev, "PAIRED") || !strcmp(ev, "UNPAIRED") || !strcmp(ev, "NODEDRAIN") ||
        !strcmp(ev, "RESTORE") || !strcmp(ev, "PRIORITY"))
        return 0; /* ariq's own, no app_queue line */
    say(c, "unknown event %.64s", ev);
    return 0;
}

int queue_log_format(const qlog_field *f, size_t n, const qlog_format_opts *o,
                     const char *agent_queues, qlog_buf *out, char *why, size_t whylen)
{
    static const qlog_format_opts defaults = {0, QLOG_AGENTS_MEMBER};
    fmt_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return ARIQ_ENOMEM;
    c->f = f;
    c->n = n;
    c->o = o ? o : &defaults;
    c->why = why;
    c->whylen = whylen;
    if (why && whylen)
        why[0] = '\0';
    size_t was = out->len;
    const char *ev = qlog_field_get(f, n, "event");
    int rc;
    if (!ev) {
        c->bad = 1;
        say(c, "field event missing");
        rc = ARIQ_EINVAL;
    } else {
        rc = dispatch(c, ev, agent_queues, out);
    }
    if (rc >= 0 && c->bad)
        rc = ARIQ_EINVAL;
    if (rc < 0) {
        out->len = was;
        if (out->s)
            out->s[was] = '\0';
    }
    free(c);
    return rc;
}
