/* entry.h - what a channel entering Stasis(queue,...) asks for.
 *
 * The dialplan is outside input: an Asterisk administrator writes
 *
 *   Stasis(queue,caller[,QUEUES[,PRIORITY]])
 *   Stasis(queue,agent[,QUEUES[,AGENT_ID]])
 *   Stasis(queue,link,PAIRING)                 (ariq's own cross-node legs)
 *   Stasis(queue,linkout,PAIRING)              (the dialling end of one: set by
 *                                               queued's originate, never dialplan)
 *
 * and this module turns the StasisStart args into a validated request, or a
 * QUEUESTATUS and a message saying exactly what is wrong. Queue names and
 * agent ids become parts of Redis keys, so they are held to the id character
 * set ([A-Za-z0-9._-]) and bounded lengths. Whether a queue exists is the
 * caller's question (UNKNOWNQUEUE), not this module's.
 *
 * Pure: no I/O, no allocation. */
#ifndef ARIQ_MODEL_ENTRY_H
#define ARIQ_MODEL_ENTRY_H

#include <stddef.h>

#define ENTRY_MAX_QUEUES 16
#define ENTRY_NAME_MAX 64     /* queue name, agent id, pairing id: bytes */
#define ENTRY_PRIORITY_MIN 0
#define ENTRY_PRIORITY_MAX 1000
#define ENTRY_DEFAULT_QUEUE "default"

typedef enum {
    ENTRY_CALLER = 0,
    ENTRY_AGENT,
    ENTRY_LINK,    /* the far end of a link call, on the agent's node */
    ENTRY_LINKOUT, /* our end of a link call we dialled (originate appArgs) */
    ENTRY__COUNT
} entry_role;

typedef struct entry_args {
    entry_role role;
    size_t nqueues;                                   /* >= 1 for caller/agent */
    char queues[ENTRY_MAX_QUEUES][ENTRY_NAME_MAX + 1]; /* in the order given, no duplicates */
    int priority;                                     /* caller; higher is served first */
    char agent_id[ENTRY_NAME_MAX + 1];                /* agent */
    char pairing[ENTRY_NAME_MAX + 1];                 /* link, linkout */
} entry_args;

/* Parses args[0..nargs) (borrowed; from StasisStart). `caller_number` is the
 * channel's caller id number, used as the agent id when none is given (may be
 * NULL or ""). Returns 0 with *out filled, or ARIQ_EINVAL with a message in
 * err ("args[2]: priority 'x' is not an integer from 0 to 1000") and *out
 * unspecified. The QUEUESTATUS for a failure is always "INVALIDARGS". */
int entry_args_parse(const char *const *args, size_t nargs, const char *caller_number,
                     entry_args *out, char *err, size_t errlen);

const char *entry_role_name(entry_role r);

#endif
