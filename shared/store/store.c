/* store.c - the Redis connection (see store.h for the contract).
 *
 * Ownership of a request: every command sent is one store_req, the privdata
 * hiredis hands back to on_reply. hiredis calls on_reply exactly once per
 * request (with a reply, or NULL when the connection goes away), and on_reply
 * always frees the request. The store also keeps its pending requests in a
 * list, so that on a drop or a free it can run the owners' callbacks with
 * NULL itself, at once and in order, and "orphan" the requests (req->conn =
 * NULL): when hiredis later hands an orphan back, on_reply only frees it.
 *
 * Re-entrancy: every entry from the loop (reply, connect, disconnect, timer)
 * runs between enter() and leave(); store_free() inside one of them only sets
 * `closing`, and leave() frees the store when the outermost entry returns. */
#include "store/store.h"

#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <event2/event.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "store/store_int.h"

#define MOD "store"

static void on_reply(redisAsyncContext *ac, void *r, void *privdata);
static void conn_drop(store_conn *c, const char *reason, bool free_ac);

static const char *const conn_state_names[CONN_STATE_COUNT] = {
    [CONN_IDLE] = "idle",
    [CONN_LOCATING] = "locating",
    [CONN_CONNECTING] = "connecting",
    [CONN_HANDSHAKE] = "handshake",
    [CONN_READY] = "ready",
};

/* ---- small helpers ---------------------------------------------------- */

void store_set_err(store *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
}

/* Allowed transitions: forward one step at a time, or back to idle from
 * anywhere (a drop); without sentinels an attempt skips locating. */
static bool conn_transition_ok(conn_state from, conn_state to)
{
    return to == CONN_IDLE || (int)to == (int)from + 1 ||
           (from == CONN_IDLE && to == CONN_CONNECTING);
}

/* Every transition passes here, so a debug log shows the whole life of a
 * connection, and a wrong one is loud. */
static void conn_set_state(store_conn *c, conn_state to)
{
    if (c->state == to)
        return;
    if (!conn_transition_ok(c->state, to))
        LOG_E(MOD, "conn=%s bad transition from=%s to=%s", c->role,
              conn_state_names[c->state], conn_state_names[to]);
    LOG_D(MOD, "conn=%s from=%s to=%s", c->role, conn_state_names[c->state],
          conn_state_names[to]);
    c->state = to;
}

static void enter(store *s)
{
    s->depth++;
}

/* The last thing any loop entry does: nothing may touch s after it. */
static void leave(store *s)
{
    if (--s->depth == 0 && s->closing)
        store_destroy(s);
}

/* Names the server c is about, for log lines: "redis=host:port", with
 * sentinels "master=NAME redis=host:port" (no address before they gave one). */
static const char *conn_where(const store_conn *c, char *buf, size_t len)
{
    const store_config *cfg = &c->s->cfg;
    if (cfg->nsentinels == 0)
        snprintf(buf, len, "redis=%s:%d", cfg->host, cfg->port);
    else if (c->ever_located)
        snprintf(buf, len, "master=%s redis=%s:%d", cfg->master_name, cfg->host, cfg->port);
    else
        snprintf(buf, len, "master=%s", cfg->master_name);
    return buf;
}

static void req_link(store_conn *c, store_req *req)
{
    req->prev = c->tail;
    req->next = NULL;
    if (c->tail)
        c->tail->next = req;
    else
        c->head = req;
    c->tail = req;
    c->npending++;
}

static void req_unlink(store_conn *c, store_req *req)
{
    if (req->prev)
        req->prev->next = req->next;
    else
        c->head = req->next;
    if (req->next)
        req->next->prev = req->prev;
    else
        c->tail = req->prev;
    req->prev = req->next = NULL;
    c->npending--;
}

static void req_free(store_req *req)
{
    if (req->cmd)
        redisFreeCommand(req->cmd);
    free(req);
}

/* ---- sending ------------------------------------------------------------ */

/* Queues one command on c's connection. With keep, the formatted command is
 * kept in the request so a NOSCRIPT retry can send it again. Returns 0 or
 * ARIQ_ENOMEM / ARIQ_EIO; on error cb is not called. */
int store_conn_send(store_conn *c, int argc, const char **argv, const size_t *argvlen,
                    store_cb cb, void *privdata, int script)
{
    store_req *req = calloc(1, sizeof *req);
    if (!req)
        return ARIQ_ENOMEM;
    req->conn = c;
    req->cb = cb;
    req->privdata = privdata;
    req->script = script;
    int len = redisFormatCommandArgv(&req->cmd, argc, argv, argvlen);
    if (len < 0) {
        free(req);
        return ARIQ_ENOMEM;
    }
    req->cmdlen = (size_t)len;
    if (redisAsyncFormattedCommand(c->ac, on_reply, req, req->cmd, req->cmdlen) != REDIS_OK) {
        req_free(req);
        return ARIQ_EIO;
    }
    if (script < 0) { /* only script calls may need to be sent again */
        redisFreeCommand(req->cmd);
        req->cmd = NULL;
    }
    req->sent_us = clock_mono_us();
    req_link(c, req);
    c->s->stats.cmds_sent++;
    return 0;
}

/* Sends a script call again after NOSCRIPT, keeping its place as a pending
 * request (moved to the back, where its reply now is). */
int store_conn_resend(store_conn *c, store_req *req)
{
    if (!req->cmd ||
        redisAsyncFormattedCommand(c->ac, on_reply, req, req->cmd, req->cmdlen) != REDIS_OK)
        return ARIQ_EIO;
    req->retried = true;
    req_unlink(c, req);
    req_link(c, req);
    req->sent_us = clock_mono_us();
    c->s->stats.cmds_sent++;
    c->s->stats.noscript_reloads++;
    return 0;
}

/* Runs the owners' callbacks of every pending request with NULL, in the
 * order sent, and orphans the requests (hiredis still holds them and will
 * hand each back once; on_reply then frees it). Callbacks may send (they get
 * ARIQ_EBUSY) or free the store (deferred). */
static void fail_pending(store_conn *c)
{
    store *s = c->s;
    store_req *req;
    while ((req = c->head) != NULL) {
        req_unlink(c, req);
        req->conn = NULL;
        s->stats.failed++;
        if (req->cb)
            req->cb(s, NULL, req->privdata);
    }
}

/* ---- connecting ----------------------------------------------------------- */

static void timer_arm(store_conn *c, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* xorshift32: jitter needs no crypto, only to differ between nodes. */
static uint32_t rng_next(store *s)
{
    uint32_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return s->rng = x;
}

/* Arms the next attempt: the current backoff ±20 %, then doubles it up to
 * the cap, so a fleet of nodes does not reconnect in lockstep. */
static int schedule_retry(store_conn *c)
{
    store *s = c->s;
    double f = 0.8 + 0.4 * ((double)(rng_next(s) % 10001) / 10000.0);
    int delay = (int)(c->backoff_ms * f);
    timer_arm(c, delay);
    c->backoff_ms = c->backoff_ms * 2 > s->cfg.backoff_max_ms ? s->cfg.backoff_max_ms
                                                               : c->backoff_ms * 2;
    return delay;
}

static void on_connect(const redisAsyncContext *cac, int status);
static void on_disconnect(const redisAsyncContext *cac, int status);

/* ---- Sentinel: where the master is ----------------------------------------
 *
 * One sentinel at a time is asked, in list order, on its own short-lived
 * hiredis context. Its callbacks only record the outcome and fire the timer
 * at once; the timer (sentinel_step) frees the context and takes the next
 * step, so no context is ever freed inside its own callback. */

static void sentinel_note(store_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records why the sentinel being asked gave no address (the first outcome
 * wins). The message goes into errmsg: the drop reason if none answers. */
static void sentinel_note(store_conn *c, const char *fmt, ...)
{
    if (c->sdone)
        return;
    store *s = c->s;
    const store_addr *a = &s->cfg.sentinels[c->sidx];
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    store_set_err(s, "sentinel %.64s:%d: %s", a->host, a->port, why);
    LOG_D(MOD, "conn=%s %s", c->role, s->errmsg);
    c->sdone = true;
}

static void on_sentinel_connect(const redisAsyncContext *ac, int status)
{
    store_conn *c = ac->data;
    if (!c || status == REDIS_OK)
        return;
    c->sac = NULL; /* hiredis frees it after this callback */
    sentinel_note(c, "connect failed: %s", ac->errstr);
    timer_arm(c, 0);
}

static void on_sentinel_disconnect(const redisAsyncContext *ac, int status)
{
    store_conn *c = ac->data;
    if (!c)
        return;
    c->sac = NULL; /* hiredis frees it after this callback */
    sentinel_note(c, "connection lost: %s", status == REDIS_OK ? "closed" : ac->errstr);
    timer_arm(c, 0);
}

/* A wrong sentinel_password shows here; Redis's message never echoes it. */
static void on_sentinel_auth(redisAsyncContext *ac, void *r, void *pd)
{
    const redisReply *reply = r;
    store_conn *c = pd;
    if (!reply || ac->data != c || reply->type != REDIS_REPLY_ERROR)
        return;
    sentinel_note(c, "AUTH refused (check sentinel_password): %s", reply->str);
    timer_arm(c, 0);
}

/* The answer to SENTINEL get-master-addr-by-name: [ip, port], or nil for a
 * master name it does not monitor. */
static bool parse_master_addr(const redisReply *r, char *host, size_t hostlen, int *port)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[0]->len == 0 || r->element[0]->len >= hostlen)
        return false;
    char *end;
    long p = strtol(r->element[1]->str, &end, 10);
    if (end == r->element[1]->str || *end || p < 1 || p > 65535)
        return false;
    memcpy(host, r->element[0]->str, r->element[0]->len + 1);
    *port = (int)p;
    return true;
}

static void on_sentinel_master(redisAsyncContext *ac, void *r, void *pd)
{
    const redisReply *reply = r;
    store_conn *c = pd;
    if (!reply || ac->data != c || c->sdone)
        return;
    if (reply->type == REDIS_REPLY_NIL)
        sentinel_note(c, "does not know master %s", c->s->cfg.master_name);
    else if (reply->type == REDIS_REPLY_ERROR)
        sentinel_note(c, "%s", reply->str);
    else if (!parse_master_addr(reply, c->mhost, sizeof c->mhost, &c->mport))
        sentinel_note(c, "unexpected reply to SENTINEL get-master-addr-by-name");
    else
        c->located = c->sdone = true;
    timer_arm(c, 0);
}

/* Frees the context of the sentinel being asked. Never called from its own
 * callbacks (only from the timer or a drop). */
static void sentinel_close(store_conn *c)
{
    redisAsyncContext *ac = c->sac;
    if (!ac)
        return;
    c->sac = NULL;
    ac->data = NULL; /* its late callbacks now find nothing */
    redisAsyncFree(ac);
}

/* Asks sentinel c->sidx where the master is (AUTH first when it has a
 * password); the timer is its deadline. */
static void sentinel_ask(store_conn *c)
{
    store *s = c->s;
    const store_addr *a = &s->cfg.sentinels[c->sidx];
    c->sdone = c->located = false;
    conn_set_state(c, CONN_LOCATING);
    timer_arm(c, s->cfg.sentinel_timeout_ms);
    redisAsyncContext *ac = redisAsyncConnect(a->host, a->port);
    if (!ac || ac->err) {
        sentinel_note(c, "connect failed: %s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        timer_arm(c, 0);
        return;
    }
    ac->data = c;
    redisLibeventAttach(ac, s->base);
    redisAsyncSetConnectCallback(ac, on_sentinel_connect);
    redisAsyncSetDisconnectCallback(ac, on_sentinel_disconnect);
    c->sac = ac;
    const char *auth[2] = {"AUTH", s->cfg.sentinel_password};
    const char *ask[3] = {"SENTINEL", "get-master-addr-by-name", s->cfg.master_name};
    if ((s->cfg.sentinel_password[0] &&
         redisAsyncCommandArgv(ac, on_sentinel_auth, c, 2, auth, NULL) != REDIS_OK) ||
        redisAsyncCommandArgv(ac, on_sentinel_master, c, 3, ask, NULL) != REDIS_OK) {
        sentinel_note(c, "cannot send the question");
        timer_arm(c, 0);
    }
}

/* Sentinel i answered: it goes to the front of the list, so the next
 * attempt asks it first (the Sentinel client guidelines' rule). */
static void sentinel_to_front(store *s, int i)
{
    store_addr first = s->cfg.sentinels[i];
    memmove(&s->cfg.sentinels[1], &s->cfg.sentinels[0], (size_t)i * sizeof first);
    s->cfg.sentinels[0] = first;
}

/* The sentinel being asked named the master: log who said what (at info
 * when the address changed or an earlier sentinel failed), then connect. */
static void sentinel_found(store_conn *c)
{
    store *s = c->s;
    const store_addr *a = &s->cfg.sentinels[c->sidx];
    bool moved = !c->ever_located || s->cfg.port != c->mport || strcmp(s->cfg.host, c->mhost);
    if (moved || c->sidx > 0)
        LOG_I(MOD, "conn=%s sentinel=%s:%d master=%s addr=%s:%d skipped=%d", c->role, a->host,
              a->port, s->cfg.master_name, c->mhost, c->mport, c->sidx);
    else
        LOG_D(MOD, "conn=%s sentinel=%s:%d master=%s addr=%s:%d", c->role, a->host, a->port,
              s->cfg.master_name, c->mhost, c->mport);
    memcpy(s->cfg.host, c->mhost, sizeof s->cfg.host);
    s->cfg.port = c->mport;
    c->ever_located = true;
    c->located = false;
    sentinel_to_front(s, c->sidx);
    store_conn_connect_to(c, s->cfg.host, s->cfg.port);
}

/* The timer while locating: the sentinel answered, failed, or ran out of
 * time. Connects to the master it named, or asks the next sentinel, or, when
 * none is left, fails the attempt like a refused connect (backoff). */
static void sentinel_step(store_conn *c)
{
    store *s = c->s;
    sentinel_note(c, "no answer within %d ms", s->cfg.sentinel_timeout_ms);
    sentinel_close(c);
    if (c->located) {
        sentinel_found(c);
        return;
    }
    if (++c->sidx < s->cfg.nsentinels) {
        sentinel_ask(c);
        return;
    }
    char last[sizeof s->errmsg];
    snprintf(last, sizeof last, "%s", s->errmsg);
    store_set_err(s, "no sentinel gave the address of master %s (last: %.160s)",
                  s->cfg.master_name, last);
    conn_drop(c, s->errmsg, false);
}

/* Where to connect: the configured address, or the master the sentinels
 * name (asked on the loop, then connected from sentinel_step). */
static void conn_locate(store_conn *c)
{
    if (c->s->cfg.nsentinels == 0) {
        store_conn_connect_to(c, c->s->cfg.host, c->s->cfg.port);
        return;
    }
    c->sidx = 0;
    sentinel_ask(c);
}

void store_conn_connect_to(store_conn *c, const char *host, int port)
{
    store *s = c->s;
    redisAsyncContext *ac = redisAsyncConnect(host, port);
    if (!ac || ac->err) {
        store_set_err(s, "connect to %s:%d failed: %s", host, port,
                      ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        conn_drop(c, s->errmsg, false);
        return;
    }
    ac->data = c;
    redisEnableKeepAlive(&ac->c); /* the kernel also notices a dead peer */
    redisLibeventAttach(ac, s->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    conn_set_state(c, CONN_CONNECTING);
    timer_arm(c, s->cfg.connect_timeout_ms);
}

/* Forgets c's hiredis context, fails every pending request, and (unless the
 * store is closing) reports the outage once and arms a retry. free_ac: we
 * end the connection (timeout, AUTH refused, store_free); otherwise hiredis
 * is already tearing it down and frees it itself. */
static void conn_drop(store_conn *c, const char *reason, bool free_ac)
{
    store *s = c->s;
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    if (ac)
        ac->data = NULL; /* its late callbacks now find no store */
    char why[sizeof s->errmsg];
    snprintf(why, sizeof why, "%s", reason);
    evtimer_del(c->timer);
    c->drop_asap = false;
    sentinel_close(c);
    c->sdone = c->located = false;
    conn_set_state(c, CONN_IDLE);
    fail_pending(c);
    if (ac && free_ac)
        redisAsyncFree(ac);
    if (s->closing)
        return;
    int delay = schedule_retry(c);
    if (c->down_reported) {
        LOG_D(MOD, "conn=%s reason=\"%s\" retry_ms=%d", c->role, why, delay);
        return;
    }
    c->down_reported = true;
    char where[STORE_HOST_MAX + STORE_MASTER_NAME_MAX + 40];
    LOG_W(MOD, "conn=%s %s down reason=\"%s\" retry_ms=%d", c->role,
          conn_where(c, where, sizeof where), why, delay);
    if (s->cbs.on_down)
        s->cbs.on_down(s, why, s->ud);
}

/* The handshake finished: the connection takes commands. */
static void conn_ready(store_conn *c)
{
    store *s = c->s;
    timer_arm(c, s->cfg.health_interval_ms); /* now the watchdog */
    conn_set_state(c, CONN_READY);
    c->backoff_ms = s->cfg.backoff_min_ms;
    c->down_reported = false;
    s->stats.connects++;
    if (c->ever_ready)
        s->stats.reconnects++;
    c->ever_ready = true;
    char where[STORE_HOST_MAX + STORE_MASTER_NAME_MAX + 40];
    LOG_I(MOD, "conn=%s %s db=%d ready scripts=%d", c->role, conn_where(c, where, sizeof where),
          s->cfg.db, s->nscripts);
    if (s->cbs.on_ready && !s->closing)
        s->cbs.on_ready(s, s->ud);
}

void store_conn_hs_done(store_conn *c)
{
    if (--c->hs_pending == 0)
        conn_ready(c);
}

void store_conn_fail(store_conn *c, const char *reason)
{
    conn_drop(c, reason, true);
}

/* With sentinels the handshake ends with ROLE: the address they gave may be
 * a master demoted since (it answers "slave"), where writes fail and reads
 * are stale. Not a master: a failed attempt, so the sentinels are asked
 * again after the backoff. */
static void hs_role_cb(store *s, const redisReply *r, void *pd)
{
    store_conn *c = pd;
    if (!r) /* connection lost: already handled */
        return;
    const char *role = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                               r->element[0]->type == REDIS_REPLY_STRING
                           ? r->element[0]->str
                           : NULL;
    if (role && strcmp(role, "master") == 0) {
        store_conn_hs_done(c);
        return;
    }
    store_set_err(s, "redis %s:%d is not master %s (ROLE: %.80s)", s->cfg.host, s->cfg.port,
                  s->cfg.master_name,
                  role ? role : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    LOG_W(MOD, "conn=%s %s", c->role, s->errmsg);
    store_conn_fail(c, s->errmsg);
}

/* The handshake of store_scripts.c, plus the ROLE check with sentinels. */
static int conn_handshake_send(store_conn *c)
{
    int rc = store_handshake_send(c);
    if (rc != 0 || c->s->cfg.nsentinels == 0)
        return rc;
    const char *role[1] = {"ROLE"};
    rc = store_conn_send(c, 1, role, NULL, hs_role_cb, c, -1);
    if (rc == 0)
        c->hs_pending++;
    else
        store_set_err(c->s, "cannot send the handshake: %s", ariq_strerror(rc));
    return rc;
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    store_conn *c = cac->data;
    if (!c)
        return;
    store *s = c->s;
    enter(s);
    if (status != REDIS_OK) {
        store_set_err(s, "connect to %s:%d failed: %s", s->cfg.host, s->cfg.port, cac->errstr);
        conn_drop(c, s->errmsg, false); /* hiredis frees the context */
    } else {
        conn_set_state(c, CONN_HANDSHAKE);
        if (conn_handshake_send(c) != 0) {
            /* Freeing the context here would pull it from under hiredis's
             * connect handler: drop from the timer instead. */
            c->drop_asap = true;
            timer_arm(c, 0);
        }
    }
    leave(s);
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    store_conn *c = cac->data;
    if (!c)
        return;
    store *s = c->s;
    enter(s);
    if (status == REDIS_OK)
        store_set_err(s, "connection closed");
    else
        store_set_err(s, "connection lost: %s", cac->errstr);
    conn_drop(c, s->errmsg, false);
    leave(s);
}

/* A ready connection's watchdog. An overdue reply means Redis hangs or the
 * peer vanished without a reset: drop and reconnect rather than leave every
 * owner waiting forever. When idle, a PING lets a dead peer show up the same
 * way. Runs from the timer, so freeing the context here is safe. */
static void conn_health(store_conn *c)
{
    store *s = c->s;
    uint64_t limit_us = (uint64_t)s->cfg.reply_timeout_ms * 1000u;
    if (c->head && limit_us && clock_mono_us() - c->head->sent_us > limit_us) {
        store_set_err(s, "no reply from %s:%d for %d ms", s->cfg.host, s->cfg.port,
                      s->cfg.reply_timeout_ms);
        conn_drop(c, s->errmsg, true);
        return;
    }
    const char *ping[1] = {"PING"};
    if (!c->head)
        store_conn_send(c, 1, ping, NULL, NULL, NULL, -1);
    timer_arm(c, s->cfg.health_interval_ms);
}

/* One timer per connection: the next attempt while idle, the sentinel's
 * deadline (or its answer) while locating, the connect and handshake
 * deadline while connecting, the watchdog while ready. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    store_conn *c = arg;
    store *s = c->s;
    enter(s);
    if (c->state == CONN_IDLE) {
        conn_locate(c);
    } else if (c->state == CONN_LOCATING) {
        sentinel_step(c);
    } else if (c->state == CONN_READY) {
        conn_health(c);
    } else {
        if (!c->drop_asap)
            store_set_err(s, "connect to %s:%d timed out after %d ms", s->cfg.host, s->cfg.port,
                          s->cfg.connect_timeout_ms);
        conn_drop(c, s->errmsg, true);
    }
    leave(s);
}

/* ---- replies --------------------------------------------------------------- */

static void count_reply(store *s, const store_req *req, const redisReply *reply)
{
    uint64_t rtt = clock_mono_us() - req->sent_us;
    s->stats.replies++;
    s->stats.rtt_sum_us += rtt;
    if (rtt > s->stats.rtt_max_us)
        s->stats.rtt_max_us = rtt;
    static const uint64_t bounds[STORE_RTT_BUCKETS - 1] = STORE_RTT_BOUNDS_MS;
    size_t b = 0;
    while (b < STORE_RTT_BUCKETS - 1 && rtt > bounds[b] * 1000u)
        b++;
    s->stats.rtt_buckets[b]++;
    if (reply->type == REDIS_REPLY_ERROR)
        s->stats.error_replies++;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    store_req *req = privdata;
    store_conn *c = req->conn;
    const redisReply *reply = r;
    if (!c) { /* orphaned: its owner was already told */
        req_free(req);
        return;
    }
    store *s = c->s;
    enter(s);
    if (!reply) { /* hiredis is tearing the connection down */
        store_set_err(s, "connection lost: %s", ac->errstr[0] ? ac->errstr : "closed");
        conn_drop(c, s->errmsg, false); /* runs this request's callback too */
        req_free(req);
        leave(s);
        return;
    }
    count_reply(s, req, reply);
    if (store_script_retry(c, req, reply)) {
        leave(s);
        return;
    }
    req_unlink(c, req);
    if (req->cb)
        req->cb(s, reply, req->privdata);
    req_free(req);
    leave(s);
}

/* ---- public API ---------------------------------------------------------- */

static int conn_init(store *s, store_conn *c, const char *role)
{
    c->s = s;
    c->role = role;
    c->state = CONN_IDLE;
    c->backoff_ms = s->cfg.backoff_min_ms;
    c->timer = evtimer_new(s->base, on_timer, c);
    return c->timer ? 0 : ARIQ_ENOMEM;
}

int store_new(struct event_base *base, const store_config *cfg, const store_callbacks *cbs,
              void *ud, store **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!base || !cfg)
        return ARIQ_EINVAL;
    int rc = store_config_check(cfg, err, errlen);
    if (rc != 0)
        return rc;
    store *s = calloc(1, sizeof *s);
    if (!s)
        return ARIQ_ENOMEM;
    s->base = base;
    s->cfg = *cfg;
    if (cbs)
        s->cbs = *cbs;
    s->ud = ud;
    s->rng = (uint32_t)(clock_mono_us() ^ (uintptr_t)s) | 1u;
    rc = store_keys_new(cfg->ns, &s->keys);
    if (rc == 0)
        rc = conn_init(s, &s->cmd, "cmd");
    if (rc == 0)
        rc = store_scripts_read(s, err, errlen);
    if (rc != 0)
        goto fail;
    timer_arm(&s->cmd, 0); /* first attempt from the loop, never from here */
    *out = s;
    return 0;
fail:
    store_destroy(s);
    return rc;
}

void store_destroy(store *s)
{
    s->closing = true;
    if (s->cmd.timer) {
        conn_drop(&s->cmd, "store freed", true);
        event_free(s->cmd.timer);
    }
    store_scripts_free(s);
    store_keys_free(s->keys);
    memset(&s->cfg, 0, sizeof s->cfg); /* the password */
    free(s);
}

void store_free(store *s)
{
    if (!s || s->closing)
        return;
    s->closing = true;
    if (s->depth == 0)
        store_destroy(s);
}

/* Commands that would change the connection's mode or identity under the
 * store (pub/sub, MONITOR, another db, another user) would break the
 * one-reply-per-command order every owner relies on. */
static bool command_allowed(const char *name, size_t len)
{
    static const char *const denied[] = {"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE",
                                         "PUNSUBSCRIBE", "SUNSUBSCRIBE", "MONITOR", "SELECT",
                                         "QUIT", "RESET", "AUTH", "HELLO"};
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++)
        if (strlen(denied[i]) == len && strncasecmp(denied[i], name, len) == 0)
            return false;
    return true;
}

/* The checks every public send makes, in the order an owner can act on. */
int store_can_send(const store *s)
{
    if (!s)
        return ARIQ_EINVAL;
    if (s->closing)
        return ARIQ_ECLOSED;
    if (s->cmd.state != CONN_READY || !s->cmd.ac)
        return ARIQ_EBUSY;
    return 0;
}

int store_command_argv(store *s, int argc, const char **argv, const size_t *argvlen,
                       store_cb cb, void *privdata)
{
    int rc = store_can_send(s);
    if (rc != 0)
        return rc;
    if (argc < 1 || !argv || !argv[0])
        return ARIQ_EINVAL;
    if (!command_allowed(argv[0], argvlen ? argvlen[0] : strlen(argv[0])))
        return ARIQ_EINVAL;
    return store_conn_send(&s->cmd, argc, argv, argvlen, cb, privdata, -1);
}

int store_is_ready(const store *s)
{
    return s && store_can_send(s) == 0;
}

const store_keys *store_get_keys(const store *s)
{
    return s->keys;
}

const char *store_errmsg(const store *s)
{
    return s->errmsg;
}

void store_get_stats(const store *s, store_stats *out)
{
    *out = s->stats;
    out->pending = s->cmd.npending;
}

const redisReply *store_entry_field(const redisReply *kv, const char *name)
{
    for (size_t i = 0; kv && i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
            strcmp(k->str, name) == 0)
            return v;
    }
    return NULL;
}
