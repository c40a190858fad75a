/* leg.h - what every leg (caller, agent, link, turn-away) shares.
 *
 * A leg is the node's state machine for one channel it owns. It is truly
 * shared (STYLE habit 7): the node's registry, every REST request and Redis
 * command in flight for it, and its timers each hold a reference, so a leg
 * whose channel vanished stays valid until the last callback has run, and is
 * destroyed by the last leg_unref. "Ended" and "freed" are two things: a leg
 * ends (leaves the registry, ignores further events) when its channel is gone
 * or handed back to the dialplan; it is freed when nothing refers to it.
 *
 * Roles plug in through leg_ops: one handler for events, one destructor. */
#ifndef ARIQ_QUEUED_LEG_H
#define ARIQ_QUEUED_LEG_H

#include <stdbool.h>

#include "ari/event.h"

struct node;
struct json_t;
typedef struct leg leg;
typedef struct answer_req answer_req;

typedef struct leg_ops {
    const char *role;                              /* "caller", "agent", ... */
    void (*on_event)(leg *l, const ari_event *ev); /* ev borrowed for the call */
    void (*on_end)(leg *l);  /* optional: cancel timers (drop their references) */
    void (*destroy)(leg *l); /* frees the role's struct */
    /* optional: after the events WebSocket was down, the leg's channel is
     * still there (ch: its ARI Channel model, borrowed): infer the events
     * the leg waits for that may have been missed meanwhile */
    void (*resync)(leg *l, const struct json_t *ch);
} leg_ops;

struct leg {
    const leg_ops *ops;
    struct node *n;
    char chan[ARI_EVENT_MAX_ID + 1]; /* the channel's id */
    int refs;
    /* Requests in flight whose order against a call's matters (holding-bridge
     * joins, announcement plays): a call waits for them (call_leg_idle). */
    int busy;
    answer_req *answering; /* answer.c, while the answer is being retried */
    char *hold_bridge;     /* hold.c: the holding bridge it is in, or NULL */
    bool ended;
};

/* Fills the base of a new leg with one reference (the creator's). */
void leg_init(leg *l, const leg_ops *ops, struct node *n, const char *chan);

/* Takes / drops a reference; the last unref calls ops->destroy. */
leg *leg_ref(leg *l);
void leg_unref(leg *l);

/* Puts the leg in the node's registry (which takes a reference), so events
 * for its channel reach ops->on_event. Returns 0, ARIQ_EBUSY if the channel
 * already has a leg, or ARIQ_ENOMEM. */
int leg_register(leg *l);

/* Ends the leg: ops->on_end runs, it leaves the registry (dropping that
 * reference) and gets no more events. Idempotent. The leg lives on while
 * callbacks still hold it. */
void leg_end(leg *l);

#endif
