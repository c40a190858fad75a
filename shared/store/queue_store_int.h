/* queue_store_int.h - the reply parser of queue_store, shared by
 * queue_store.c and its tests. Not for use outside shared/store and tests.
 *
 * queue.lua answers with flat arrays of name, value pairs; a value is an
 * integer, a string, or an array (positions, pairings, queues). The parser
 * is strict about what it uses (types, lengths, counts, required names) and
 * ignores names it does not know, so a newer script can add fields. */
#ifndef ARIQ_STORE_QUEUE_STORE_INT_H
#define ARIQ_STORE_QUEUE_STORE_INT_H

#include <hiredis/hiredis.h>

#include "store/queue_store.h"

/* Which names a qs_result must carry, by op. */
enum {
    QS_REQ_OUTCOME = 1u << 0,
    QS_REQ_CALL_OUTCOME = 1u << 1,
    QS_REQ_CALL = 1u << 2,
    QS_REQ_STATE = 1u << 3,
    QS_REQ_SEQ = 1u << 4,
    QS_REQ_HOLDTIME = 1u << 5,
    QS_REQ_RINGTIME = 1u << 6,
    QS_REQ_PAIRINGS = 1u << 7,
    QS_REQ_CONNECTED = 1u << 8,
    QS_REQ_PAIRING = 1u << 9,
    QS_REQ_WRAPUP = 1u << 10,
    QS_REQ_SIDES = 1u << 11,
};

/* Each parses reply r into *out (zeroed first). Pairings are allocated into
 * *owned (yours: free(), also on error; NULL when none) and out points at
 * them. Returns 0, or ARIQ_EINVAL with a message in err. r is borrowed. */
int qs_parse_enter(const redisReply *r, qs_enter_result *out, qs_pairing **owned,
                   char *err, size_t errlen);
int qs_parse_result(const redisReply *r, unsigned required, qs_result *out,
                    qs_pairing **owned, char *err, size_t errlen);
int qs_parse_call_info(const redisReply *r, qs_call_view *out, char *err, size_t errlen);
int qs_parse_queue_info(const redisReply *r, qs_queue_view *out, char *err,
                        size_t errlen);
int qs_parse_reap(const redisReply *r, qs_reap_result *out, char *err, size_t errlen);
int qs_parse_restore(const redisReply *r, qs_restore_result *out, char *err,
                     size_t errlen);

/* The heap arrays behind a qs_reconcile_result: calls, agents, pairings,
 * hangup (NULL when empty). */
#define QS_RC_BLOCKS 4
typedef struct qs_reconcile_owned {
    void *block[QS_RC_BLOCKS];
} qs_reconcile_owned;

/* Parses reconcile's reply into *out, whose arrays are allocated into
 * *owned (yours: qs_reconcile_owned_free, also on error). */
int qs_parse_reconcile(const redisReply *r, qs_reconcile_result *out,
                       qs_reconcile_owned *owned, char *err, size_t errlen);
void qs_reconcile_owned_free(qs_reconcile_owned *o);

#endif
