#include "model/entry.h"
#include "core/err.h"
#include "core/ids.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_names[ENTRY__COUNT] = {"caller", "agent", "link", "linkout"};

const char *entry_role_name(entry_role r)
{
    return (unsigned)r < ENTRY__COUNT ? role_names[r] : "?";
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return ARIQ_EINVAL;
}

/* Copies at most 40 bytes of an arg for a message, so a hostile arg cannot
 * flood the log. */
static const char *clip(const char *s, char *buf, size_t len)
{
    snprintf(buf, len, "%.40s%s", s, strlen(s) > 40 ? "..." : "");
    return buf;
}

/* "support&sales" -> queues; empty means the default queue. */
static int parse_queues(const char *list, entry_args *out, char *err, size_t errlen)
{
    if (!list || !*list) {
        snprintf(out->queues[0], sizeof out->queues[0], "%s", ENTRY_DEFAULT_QUEUE);
        out->nqueues = 1;
        return 0;
    }
    char clipped[48];
    const char *p = list;
    while (1) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (out->nqueues == ENTRY_MAX_QUEUES)
            return fail(err, errlen, "args[1]: more than %d queues in '%s'", ENTRY_MAX_QUEUES,
                        clip(list, clipped, sizeof clipped));
        if (len == 0 || len > ENTRY_NAME_MAX)
            return fail(err, errlen, "args[1]: empty or too long queue name in '%s'",
                        clip(list, clipped, sizeof clipped));
        char *q = out->queues[out->nqueues];
        memcpy(q, p, len);
        q[len] = '\0';
        if (!ids_valid(q, ENTRY_NAME_MAX))
            return fail(err, errlen,
                        "args[1]: queue name '%s' may hold only letters, digits, '.', '_', '-'",
                        clip(q, clipped, sizeof clipped));
        for (size_t i = 0; i < out->nqueues; i++)
            if (strcmp(out->queues[i], q) == 0)
                return fail(err, errlen, "args[1]: queue '%s' given twice", q);
        out->nqueues++;
        if (!amp)
            return 0;
        p = amp + 1;
    }
}

static int parse_priority(const char *s, entry_args *out, char *err, size_t errlen)
{
    if (!s || !*s) {
        out->priority = 0;
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    char clipped[48];
    if (*end || errno || v < ENTRY_PRIORITY_MIN || v > ENTRY_PRIORITY_MAX)
        return fail(err, errlen, "args[2]: priority '%s' is not an integer from %d to %d",
                    clip(s, clipped, sizeof clipped), ENTRY_PRIORITY_MIN, ENTRY_PRIORITY_MAX);
    out->priority = (int)v;
    return 0;
}

static int parse_id(const char *s, const char *what, int argi, char *dst, char *err,
                    size_t errlen)
{
    char clipped[48];
    if (!ids_valid(s, ENTRY_NAME_MAX))
        return fail(err, errlen,
                    "args[%d]: %s '%s' must be 1 to %d of letters, digits, '.', '_', '-'", argi,
                    what, clip(s ? s : "", clipped, sizeof clipped), ENTRY_NAME_MAX);
    snprintf(dst, ENTRY_NAME_MAX + 1, "%s", s);
    return 0;
}

static int parse_caller(const char *const *args, size_t nargs, entry_args *out, char *err,
                        size_t errlen)
{
    if (nargs > 3)
        return fail(err, errlen, "caller takes at most 2 arguments (QUEUES, PRIORITY), got %zu",
                    nargs - 1);
    int rc = parse_queues(nargs > 1 ? args[1] : NULL, out, err, errlen);
    return rc ? rc : parse_priority(nargs > 2 ? args[2] : NULL, out, err, errlen);
}

static int parse_agent(const char *const *args, size_t nargs, const char *caller_number,
                       entry_args *out, char *err, size_t errlen)
{
    if (nargs > 3)
        return fail(err, errlen, "agent takes at most 2 arguments (QUEUES, AGENT_ID), got %zu",
                    nargs - 1);
    int rc = parse_queues(nargs > 1 ? args[1] : NULL, out, err, errlen);
    if (rc)
        return rc;
    const char *id = nargs > 2 && *args[2] ? args[2] : caller_number;
    if (!id || !*id)
        return fail(err, errlen, "args[2]: no agent id given and the channel has no caller id");
    return parse_id(id, "agent id", 2, out->agent_id, err, errlen);
}

static int parse_link(const char *const *args, size_t nargs, entry_args *out, char *err,
                      size_t errlen)
{
    if (nargs != 2)
        return fail(err, errlen, "%s takes exactly 1 argument (PAIRING), got %zu", args[0],
                    nargs - 1);
    return parse_id(args[1], "pairing", 1, out->pairing, err, errlen);
}

int entry_args_parse(const char *const *args, size_t nargs, const char *caller_number,
                     entry_args *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (nargs == 0 || !args || !args[0])
        return fail(err, errlen, "no role: expected caller, agent or link as the first argument");
    for (size_t i = 0; i < nargs; i++)
        if (!args[i])
            return fail(err, errlen, "args[%zu] is missing", i);
    char clipped[48];
    for (int r = 0; r < ENTRY__COUNT; r++) {
        if (strcmp(args[0], role_names[r]) != 0)
            continue;
        out->role = (entry_role)r;
        switch (out->role) {
        case ENTRY_CALLER:
            return parse_caller(args, nargs, out, err, errlen);
        case ENTRY_AGENT:
            return parse_agent(args, nargs, caller_number, out, err, errlen);
        default:
            return parse_link(args, nargs, out, err, errlen);
        }
    }
    return fail(err, errlen, "unknown role '%s': expected caller, agent or link",
                clip(args[0], clipped, sizeof clipped));
}
