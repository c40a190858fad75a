/* store.h - the Redis connection: commands, Lua scripts, reconnects.
 *
 * One store is one logical connection to Redis, driven by the daemon's
 * libevent loop through hiredis's async API and its libevent adapter. Nothing
 * in it blocks (except resolving a host *name*: use an IP address or a name in
 * /etc/hosts). hiredis writes with write(2): the process must ignore SIGPIPE
 * (signal(SIGPIPE, SIG_IGN)), or a write to a dead Redis kills it.
 *
 * Lifecycle. store_new() only arms a timer: no callback ever runs inside it.
 * The store then connects, sends AUTH (if a password is set, before anything
 * else), SELECT (if db != 0) and SCRIPT LOAD for every redis-schema script;
 * when all of them succeeded it is READY and calls on_ready. It calls on_ready
 * after EVERY successful (re)connect: that is where the owner reconciles its
 * memory with Redis. When a ready connection is lost, or the first attempt
 * fails, it calls on_down once per outage, and keeps retrying with exponential
 * backoff and ±20 % jitter (backoff_min_ms doubling up to backoff_max_ms). A
 * wrong password is logged clearly (never the password) and retried like any
 * other failure. While ready, a watchdog treats a reply overdue by
 * reply_timeout_ms as a lost connection (Redis hung, peer vanished).
 *
 * Commands. While the store is not READY, store_command_argv and store_script
 * return ARIQ_EBUSY at once and never call their callback (a function that
 * returns an error never calls its callback). Once accepted, a callback is
 * called exactly once: with the reply, or with reply NULL if the connection is
 * lost or the store is freed before the reply came. Replies of plain commands
 * arrive in the order the commands were sent. There is no per-command
 * timeout: do not send blocking commands (BLPOP, XREAD BLOCK, WAIT) on this
 * connection, they hold back every later reply; pub/sub, MONITOR, SELECT,
 * AUTH, HELLO, QUIT and RESET are refused (ARIQ_EINVAL).
 *
 * Scripts. Every `*.lua` of config.scripts_dir is read at store_new (name =
 * file name without ".lua") and loaded with SCRIPT LOAD at each connect;
 * store_script calls one by name with EVALSHA. On a NOSCRIPT reply (someone
 * ran SCRIPT FLUSH, or Redis restarted between our load and the call) the
 * store loads that script again and retries the call once, transparently; a
 * retried script call may then complete after commands sent later.
 *
 * Re-entrancy. Callbacks may send commands and may call store_free(); a free
 * inside a callback only marks the store closing, and it is freed when the
 * callback returns (STYLE habit 6). During store_free every pending callback
 * runs with reply NULL (on_down is not called).
 *
 * Where to connect: one internal function (locate) decides the address for
 * each attempt. Without sentinels it is config.host:config.port. With
 * config.nsentinels > 0 (Redis Sentinel), each attempt asks the sentinels in
 * turn, on the loop, `SENTINEL get-master-addr-by-name master_name` (each
 * within sentinel_timeout_ms; the one that answers moves to the front of the
 * list), connects to that address, and adds `ROLE` to the handshake: a server
 * that is not a master (a demoted master answers "slave") is a failed attempt,
 * retried with backoff, and so asked again. A lost connection asks again
 * too, so after a failover the store follows the promoted replica by itself
 * and calls on_ready there. If no sentinel answers, that is a failed attempt
 * like a refused connect (on_down once, backoff). The log names the sentinel
 * that answered and the master's address, never a password.
 *
 * The connection state lives in an internal per-connection struct, so a second
 * connection (blocking stream reads, pub/sub) can be added beside the command
 * one without changing this API. */
#ifndef ARIQ_STORE_STORE_H
#define ARIQ_STORE_STORE_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "store/keys.h"

struct event_base;

#define STORE_HOST_MAX 256
#define STORE_PASSWORD_MAX 256
#define STORE_USER_MAX 128
#define STORE_PATH_MAX 512
#define STORE_DB_MAX 65535
#define STORE_SCRIPTS_MAX 128
#define STORE_SCRIPT_SIZE_MAX (256 * 1024)
#define STORE_SENTINELS_MAX 8
#define STORE_MASTER_NAME_MAX 64 /* characters of [A-Za-z0-9._-] */
#define STORE_SENTINEL_PORT 26379

/* One host:port. */
typedef struct store_addr {
    char host[STORE_HOST_MAX];
    int port;
} store_addr;

/* Plain configuration; fill it with store_config_init() then set fields or
 * store_config_set_url(). Copied by store_new. */
typedef struct store_config {
    char host[STORE_HOST_MAX];         /* default "127.0.0.1" */
    int port;                          /* default 6379 */
    char username[STORE_USER_MAX];     /* ACL user, "" for the default user */
    char password[STORE_PASSWORD_MAX]; /* "" for none; never logged */
    int db;                            /* 0..STORE_DB_MAX, SELECTed on connect */
    char ns[STORE_NS_MAX + 1];         /* key namespace, default "ariq" */
    char scripts_dir[STORE_PATH_MAX];  /* "" means the repo's redis-schema/ */
    int connect_timeout_ms;            /* connect + handshake, default 5000 */
    int backoff_min_ms;                /* first retry delay, default 100 */
    int backoff_max_ms;                /* cap, default 5000 */
    /* A ready connection whose oldest command has had no reply for this long
     * is dropped and reconnected (Redis hung, or the network vanished without
     * a reset); its callbacks run with NULL. 0 = never. Default 10000. */
    int reply_timeout_ms;
    /* How often a ready connection checks that, sending a PING when idle so a
     * dead peer is noticed too. Default 1000. */
    int health_interval_ms;
    /* Redis Sentinel (see "Where to connect" above); default: none. With
     * nsentinels > 0, host and port are not used: the sentinels name the
     * master. username, password and db are the master's. */
    store_addr sentinels[STORE_SENTINELS_MAX];
    int nsentinels;                              /* 0..STORE_SENTINELS_MAX */
    char master_name[STORE_MASTER_NAME_MAX + 1]; /* as in `sentinel monitor` */
    char sentinel_password[STORE_PASSWORD_MAX];  /* the sentinels' requirepass,
                                                    "" for none; never logged */
    int sentinel_timeout_ms; /* per sentinel, connect and answer; default 1000 */
} store_config;

/* Sets the defaults above. */
void store_config_init(store_config *c);

/* Parses one of
 *
 *   redis://[[user]:password@]host[:port][/db]
 *   redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/master_name
 *                   [?db=N][&sentinel_password=P]
 *
 * The first sets host, port (default 6379), username, password and db, and
 * turns Sentinel off (nsentinels 0, master_name and sentinel_password "").
 * The second sets the sentinels (1..STORE_SENTINELS_MAX, port default 26379),
 * master_name (1..64 characters of [A-Za-z0-9._-]), username and password
 * (the master's), db (default 0) and sentinel_password (default none); host
 * and port are left as they were. Other fields are untouched either way.
 * User and passwords may be percent-encoded; an IPv6 host is written [::1].
 * On error returns ARIQ_EINVAL, leaves c untouched and writes a message into
 * err (errlen bytes) that never contains a password. url and err are
 * borrowed. */
int store_config_set_url(store_config *c, const char *url, char *err, size_t errlen);

/* Checks every field's range. Returns 0 or ARIQ_EINVAL with a message in err. */
int store_config_check(const store_config *c, char *err, size_t errlen);

typedef struct store store;

/* A command's completion. `reply` is borrowed (freed after the callback
 * returns) and is NULL when the connection was lost or the store freed before
 * the reply came; a Redis error is a reply of type REDIS_REPLY_ERROR.
 * `privdata` is what you passed in: yours to free, here or later. */
typedef void (*store_cb)(store *s, const redisReply *reply, void *privdata);

typedef struct store_callbacks {
    /* Connected, authenticated, db selected, scripts loaded. Called after
     * every successful (re)connect. May be NULL. */
    void (*on_ready)(store *s, void *ud);
    /* Not connected (first attempt failed, or a ready connection was lost);
     * once per outage. `reason` is borrowed, never holds a password. May be
     * NULL. */
    void (*on_down)(store *s, const char *reason, void *ud);
} store_callbacks;

/* Round-trip histogram bounds (ms), and one more bucket for +Inf. */
#define STORE_RTT_BUCKETS 12
#define STORE_RTT_BOUNDS_MS {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500}

/* Counters for metrics. Round trips are measured from sending a command to
 * its reply, in microseconds. */
typedef struct store_stats {
    uint64_t cmds_sent;     /* commands written, handshake included */
    uint64_t replies;       /* replies received (errors included) */
    uint64_t error_replies; /* replies of type error */
    uint64_t failed;        /* callbacks run with reply NULL */
    uint64_t connects;      /* times the store became READY */
    uint64_t reconnects;    /* READY again after the first time */
    uint64_t noscript_reloads;
    uint64_t rtt_sum_us;
    uint64_t rtt_max_us;
    /* round trips by the first bound of STORE_RTT_BOUNDS_MS they are within
     * (the last: over every bound); not cumulative */
    uint64_t rtt_buckets[STORE_RTT_BUCKETS];
    uint32_t pending;       /* commands sent and not yet completed */
} store_stats;

/* Creates a store on `base` (borrowed; must outlive the store). cfg is
 * copied; cbs is copied; ud is passed to the callbacks (yours). Reads the
 * scripts and arms the first connect attempt; no callback runs inside this
 * call. Returns 0 and *out (yours: store_free), or ARIQ_EINVAL (bad config, a
 * script dir that cannot be read: message in err), or ARIQ_ENOMEM. */
int store_new(struct event_base *base, const store_config *cfg, const store_callbacks *cbs,
              void *ud, store **out, char *err, size_t errlen);

/* Closes the connection, runs every pending callback with reply NULL, and
 * frees s. Safe inside any store callback (the free is then deferred until
 * that callback returns). store_free(NULL) does nothing. */
void store_free(store *s);

/* Sends one command. argv/argvlen are borrowed for the call (copied);
 * argvlen NULL means strlen of each argv. cb may be NULL (reply ignored).
 * Returns 0 (cb will be called exactly once), ARIQ_EBUSY (not ready),
 * ARIQ_ECLOSED (store closing), ARIQ_EINVAL, or ARIQ_EIO; on error cb is
 * never called. */
int store_command_argv(store *s, int argc, const char **argv, const size_t *argvlen,
                       store_cb cb, void *privdata);

/* Calls script `name` (file redis-schema/<name>.lua) with EVALSHA. keys and
 * args are borrowed NUL-terminated strings (copied); build keys with
 * store_keys. Same returns and callback contract as store_command_argv, plus
 * ARIQ_ENOTFOUND for an unknown script. */
int store_script(store *s, const char *name, int nkeys, const char **keys, int nargs,
                 const char **args, store_cb cb, void *privdata);

/* True when commands are accepted. */
int store_is_ready(const store *s);

/* The key builder of this store's namespace. Borrowed: lives as long as s. */
const store_keys *store_get_keys(const store *s);

/* The last error (connect failure, AUTH refused, ...), never a password.
 * Borrowed: valid until the next store call or callback. Never NULL. */
const char *store_errmsg(const store *s);

/* Copies the counters into *out. */
void store_get_stats(const store *s, store_stats *out);

/* The sha of a loaded script, or NULL. Borrowed, valid while s lives. */
const char *store_script_sha(const store *s, const char *name);

/* The value of field `name` in a stream entry's fields [k1, v1, k2, v2...]
 * (XREAD / XRANGE), or NULL when absent or not a string. Borrowed from kv. */
const redisReply *store_entry_field(const redisReply *kv, const char *name);

#endif
