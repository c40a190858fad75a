/* redis_proc.h - a real redis-server for integration tests.
 *
 * Starts /usr/bin/redis-server (or $ARIQ_REDIS_SERVER) as a child process on a
 * free 127.0.0.1 port, with its own empty directory under the build tree, no
 * RDB snapshots, and optionally a password and an append-only file. The child
 * is killed when the test process exits (see proc.h), so a failed assertion
 * never leaves a server behind.
 *
 * Typical use:
 *
 *     redis_proc r;
 *     assert_int_equal(redis_proc_start(&r, NULL), 0);
 *     ... point the code under test at 127.0.0.1:r.port ...
 *     redisContext *c = redis_proc_connect(&r);   // inspect what Redis holds
 *     redisFree(c);
 *     redis_proc_stop(&r, SIGTERM);
 *
 * redis_proc is a plain struct owned by the test (usually on its stack).
 *
 * For Redis Sentinel tests the same struct holds a replica (redis_opts
 * replicaof_port) or a sentinel (redis_proc_start_sentinel: `redis-server
 * sentinel.conf --sentinel`, so no redis-sentinel package is needed); stop,
 * restart, connect and cmd work on both. */
#ifndef ARIQ_TEST_REDIS_PROC_H
#define ARIQ_TEST_REDIS_PROC_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "proc.h"

typedef struct redis_opts {
    /* requirepass; NULL or "" for none. Borrowed: copied by redis_proc_start. */
    const char *password;
    /* appendonly yes + appendfsync everysec: data survives a restart. */
    bool aof;
    /* Milliseconds to wait for PING to answer; 0 means 10000. */
    int start_timeout_ms;
    /* Not 0: start as a replica of 127.0.0.1:replicaof_port (--replicaof),
     * with --masterauth set to `password` when there is one. */
    int replicaof_port;
} redis_opts;

typedef struct redis_proc {
    test_proc proc;     /* the child; proc.pid == 0 when stopped */
    int port;           /* 127.0.0.1 port, the same across restarts */
    bool aof;
    char password[128]; /* "" when none */
    int start_timeout_ms;
    char dir[512];      /* the server's --dir (AOF lives here) */
    char logpath[600];  /* the server's stdout/stderr */
    int replicaof_port; /* 0, or the master's port (a replica) */
    bool sentinel;      /* a sentinel, started from conf */
    char conf[600];     /* the sentinel's config file (it rewrites it) */
} redis_proc;

/* A sentinel monitoring one master on 127.0.0.1, with short timeouts so a
 * failover takes seconds. Strings are borrowed (copied into its config). */
typedef struct sentinel_opts {
    const char *master_name;     /* NULL: "mymaster" */
    int master_port;             /* the master to monitor */
    const char *master_password; /* sentinel auth-pass (master and replicas); NULL none */
    const char *password;        /* the sentinel's own requirepass, also used
                                    to talk to its peers; NULL none */
    int quorum;                  /* 0: 2 */
    int down_after_ms;           /* 0: 500 */
    int failover_timeout_ms;     /* 0: 2000 */
    int start_timeout_ms;        /* 0: 10000 */
} sentinel_opts;

/* Starts a server on a fresh free port and waits until it answers PING
 * (authenticated when a password is set). `o` may be NULL (defaults) and is
 * borrowed. Returns 0, or -1 with a line on stderr (the server is stopped). */
int redis_proc_start(redis_proc *r, const redis_opts *o);

/* Stops the server with `sig` (SIGTERM: clean shutdown; SIGKILL: a crash),
 * waiting up to 5 s before SIGKILL. Stopping a stopped server does nothing.
 * Returns 0 or -1. */
int redis_proc_stop(redis_proc *r, int sig);

/* Starts the server again on the same port and directory (so with aof the data
 * survives) and waits for PING. Stops it first (SIGKILL) if it is running.
 * Returns 0 or -1. */
int redis_proc_restart(redis_proc *r);

/* A blocking hiredis connection to the server, authenticated when a password
 * is set; for tests to inspect or change what Redis holds. Returns a context
 * the caller owns (redisFree), or NULL on failure. */
redisContext *redis_proc_connect(const redis_proc *r);

/* Writes the server's address as a redis:// URL for a daemon's config:
 * "redis://127.0.0.1:PORT/db", or "redis://:PASSWORD@127.0.0.1:PORT/db"
 * with the password percent-encoded. Returns buf. */
const char *redis_proc_url(const redis_proc *r, int db, char *buf, size_t len);

/* Starts a sentinel (redis-server --sentinel) on a fresh free port with a
 * config file in its own directory, and waits until it answers PING. `o` is
 * borrowed. Returns 0, or -1 with a line on stderr (nothing left running). */
int redis_proc_start_sentinel(redis_proc *r, const sentinel_opts *o);

/* Waits up to timeout_ms until sentinel `r` monitors `master` with at least
 * `replicas` replicas and `peers` other sentinels known (what a failover
 * needs). Returns 0, or -1 on timeout. */
int redis_proc_sentinel_wait(const redis_proc *r, const char *master, int replicas, int peers,
                             int timeout_ms);

/* Runs one command on a fresh blocking connection and returns its reply (the
 * caller owns it: freeReplyObject), or NULL. For one-line checks in tests. */
redisReply *redis_proc_cmd(const redis_proc *r, const char *fmt, ...);

#endif
