/* store_int.h - internals shared by store.c and store_scripts.c. Not for use
 * outside shared/store. */
#ifndef ARIQ_STORE_INT_H
#define ARIQ_STORE_INT_H

#include <hiredis/async.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

struct event;

/* The life of one connection. */
typedef enum {
    CONN_IDLE,       /* no connection; the timer holds the next attempt */
    CONN_LOCATING,   /* asking sentinel sidx for the master; the timer is its
                        deadline, or fires at once when it has answered */
    CONN_CONNECTING, /* TCP connect in flight; the timer is the deadline */
    CONN_HANDSHAKE,  /* AUTH / SELECT / SCRIPT LOAD (/ ROLE) in flight; same
                        deadline */
    CONN_READY,      /* commands accepted */
    CONN_STATE_COUNT
} conn_state;

typedef struct store_conn store_conn;

/* One command in flight; see the ownership note at the top of store.c. */
typedef struct store_req {
    struct store_req *prev, *next;
    store_conn *conn; /* NULL once orphaned */
    store_cb cb;
    void *privdata;
    uint64_t sent_us;
    int script;  /* index in store.scripts for an EVALSHA, else -1 */
    bool retried;
    char *cmd;   /* formatted command, kept for script calls only */
    size_t cmdlen;
} store_req;

/* One hiredis connection and its pending requests. A store has one for
 * commands; a second (blocking reads, pub/sub) would be another of these. */
struct store_conn {
    store *s;
    const char *role; /* "cmd" */
    redisAsyncContext *ac;
    conn_state state;
    int hs_pending; /* handshake replies still expected */
    store_req *head, *tail;
    uint32_t npending;
    struct event *timer;
    int backoff_ms;
    bool down_reported; /* on_down already called for this outage */
    bool ever_ready;
    bool drop_asap; /* the timer drops the connection (errmsg says why) */
    /* Sentinel lookup (CONN_LOCATING). The sentinel's context is only ever
     * freed from the timer or a drop, never inside its own callbacks. */
    redisAsyncContext *sac; /* the sentinel being asked; NULL once gone */
    int sidx;               /* its index in s->cfg.sentinels */
    bool sdone;             /* it answered or failed: the timer goes on */
    bool located;           /* it named the master: mhost:mport */
    bool ever_located;
    char mhost[STORE_HOST_MAX];
    int mport;
};

typedef struct store_script_ent {
    char name[STORE_ID_MAX + 1];
    char *body;
    size_t len;
    char sha[41];
} store_script_ent;

struct store {
    struct event_base *base;
    /* A copy of the config. With sentinels, cfg.host:cfg.port is the master
     * they named last (every message names the server it is about), and
     * cfg.sentinels is kept in asking order (the last to answer first). */
    store_config cfg;
    store_callbacks cbs;
    void *ud;
    store_keys *keys;
    store_script_ent *scripts;
    int nscripts;
    store_conn cmd;
    store_stats stats;
    int depth;    /* loop entries on the stack */
    bool closing; /* store_free called: freed when depth reaches 0 */
    uint32_t rng;
    char errmsg[256];
};

void store_set_err(store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void store_destroy(store *s);
int store_can_send(const store *s);
int store_conn_send(store_conn *c, int argc, const char **argv, const size_t *argvlen,
                    store_cb cb, void *privdata, int script);
int store_conn_resend(store_conn *c, store_req *req);
void store_conn_connect_to(store_conn *c, const char *host, int port);

/* store_scripts.c */
int store_scripts_read(store *s, char *err, size_t errlen);
void store_scripts_free(store *s);
int store_handshake_send(store_conn *c);
/* Called with every reply: on a first NOSCRIPT for a script call, reloads the
 * script, sends the call again and returns true (the request stays pending). */
bool store_script_retry(store_conn *c, store_req *req, const redisReply *reply);
/* The handshake's last reply arrived (defined in store.c). */
void store_conn_hs_done(store_conn *c);
/* Drops c from a reply callback: fails pending, frees the context. */
void store_conn_fail(store_conn *c, const char *reason);

#endif
