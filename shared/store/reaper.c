/* reaper.c - see reaper.h. Moved out of queued/cluster.c so that queued and
 * agentd run the very same janitor. */
#include "store/reaper.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MOD "reaper"
#define REAP_BATCH 1000
#define REAP_REASON "node lost"

struct reaper {
    store *s;
    queue_store *qs;
    char self[QS_ID_MAX + 1];
    uint64_t hold_until; /* monotonic ms */
    unsigned inflight;   /* requests whose callback has not run */
    bool stopped;
    bool freed; /* reaper_free came while requests were in flight */
    reaper_stats st;
};

typedef struct reap_ctx {
    reaper *r;
    char node[QS_ID_MAX + 1];
} reap_ctx;

/* A request completed: the last one releases a reaper already freed. */
static void done(reaper *r)
{
    if (--r->inflight == 0 && r->freed)
        free(r);
}

static void on_reaped(queue_store *qs, int err, const qs_reap_result *res, void *pd)
{
    reap_ctx *rc = pd;
    reaper *r = rc->r;
    if (err == 0 && (res->pairings || res->calls || res->agents)) {
        r->st.reaped += (uint64_t)(res->pairings + res->calls + res->agents);
        LOG_W(MOD, "node=%s lost (heartbeat lapsed): reaped pairings=%lld calls=%lld "
                   "agents=%lld more=%d",
              rc->node, (long long)res->pairings, (long long)res->calls,
              (long long)res->agents, (int)res->more);
    } else if (err && err != ARIQ_ESTATE) { /* ESTATE: it is alive */
        r->st.failures++;
        LOG_W(MOD, "node=%s reap failed: %s (%s)", rc->node, ariq_strerror(err), qs_errmsg(qs));
    }
    if (err == 0 && res->more && !r->stopped && !r->freed &&
        qs_reap(qs, rc->node, REAP_REASON, REAP_BATCH, on_reaped, rc) == 0)
        return; /* rc goes on, still in flight */
    free(rc);
    done(r);
}

static void offer_one(reaper *r, const redisReply *m)
{
    if (m->type != REDIS_REPLY_STRING || m->len == 0 || m->len > QS_ID_MAX ||
        strcmp(m->str, r->self) == 0)
        return;
    reap_ctx *rc = calloc(1, sizeof *rc);
    if (!rc)
        return;
    rc->r = r;
    memcpy(rc->node, m->str, m->len + 1);
    if (qs_reap(r->qs, rc->node, REAP_REASON, REAP_BATCH, on_reaped, rc) == 0)
        r->inflight++;
    else
        free(rc);
}

static void on_members(store *s, const redisReply *rep, void *pd)
{
    (void)s;
    reaper *r = pd;
    /* the SMEMBERS still counts in inflight here: r cannot go inside the loop
     * (and a reap never completes inside qs_reap anyway) */
    if (rep && rep->type == REDIS_REPLY_ARRAY && !r->stopped && !r->freed)
        for (size_t i = 0; i < rep->elements; i++)
            offer_one(r, rep->element[i]);
    done(r); /* the SMEMBERS itself */
}

void reaper_offer(reaper *r)
{
    char nodes[STORE_KEY_MAX];
    if (r->stopped || clock_mono_ms() < r->hold_until || !store_is_ready(r->s))
        return; /* Redis just came back: the others have not beaten yet */
    if (store_key_nodes(store_get_keys(r->s), nodes, sizeof nodes) != 0)
        return;
    const char *argv[] = {"SMEMBERS", nodes};
    if (store_command_argv(r->s, 2, argv, NULL, on_members, r) == 0) {
        r->inflight++;
        r->st.offers++;
    }
}

void reaper_hold(reaper *r, uint64_t until_ms)
{
    r->hold_until = until_ms;
}

void reaper_stop(reaper *r)
{
    r->stopped = true;
}

void reaper_get_stats(const reaper *r, reaper_stats *out)
{
    *out = r->st;
}

int reaper_new(store *s, queue_store *qs, const char *self, reaper **out)
{
    if (self && strlen(self) > QS_ID_MAX)
        return ARIQ_EINVAL;
    reaper *r = calloc(1, sizeof *r);
    if (!r)
        return ARIQ_ENOMEM;
    r->s = s;
    r->qs = qs;
    if (self)
        memcpy(r->self, self, strlen(self) + 1);
    *out = r;
    return 0;
}

void reaper_free(reaper *r)
{
    if (!r)
        return;
    r->stopped = true;
    if (r->inflight)
        r->freed = true; /* the last completion frees it */
    else
        free(r);
}
