/* node_int.h - what the legs of a node may use of it. Not for other modules. */
#ifndef ARIQ_QUEUED_NODE_INT_H
#define ARIQ_QUEUED_NODE_INT_H

#include "ari/client.h"
#include "ari/stream.h"
#include "core/strmap.h"
#include "leg.h"
#include "node.h"
#include "store/store.h"

struct node {
    struct event_base *base; /* borrowed */
    const qcfg *cfg;         /* borrowed */
    ari_client *ari;
    ari_rest *rest; /* the ARI transport legs use (owned by ari) */
    ari_stream *events;
    store *store;
    strmap *legs; /* channel id -> leg (one reference each) */
    node_stats stats;
};

/* Hands `chan` back to the dialplan with QUEUESTATUS=status, logging `why`
 * (borrowed). Never fails silently: every step that cannot be done is
 * logged; a channel that is gone just ends it. */
void turnaway_start(node *n, const char *chan, const char *status, const char *why);

#endif
