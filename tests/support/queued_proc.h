/* queued_proc.h - the queued daemon as a child process, for integration
 * tests: a config written for a running simulator node and Redis, the real
 * binary started, and a wait until its events WebSocket is attached. */
#ifndef ARIQ_TEST_QUEUED_PROC_H
#define ARIQ_TEST_QUEUED_PROC_H

#include <stdbool.h>

#include "proc.h"
#include "redis_proc.h"
#include "sim_proc.h"

typedef struct queued_proc {
    test_proc proc;
    char node_id[32];
    char conf[600];    /* the config file written */
    char logpath[600]; /* its stderr */
} queued_proc;

/* Writes a config for simulator node `node` (node ids "node1", ...) and Redis
 * `r`, with `general_extra` appended to [general] and `queues` (INI text of
 * the [queue ...] sections) after it, then starts build/queued/queued and
 * waits until the app is attached on that node and has set its event filter
 * (GET /ari/applications/queue answers 200 with events_allowed), up to 10 s.
 * Returns 0, or -1 (its log says why). */
int queued_proc_start(queued_proc *q, const sim_proc *sim, int node, const redis_proc *r,
                      const char *general_extra, const char *queues);

/* SIGTERM, wait up to 5 s, then SIGKILL. Returns the exit status (0 for a
 * clean stop) or -1. */
int queued_proc_stop(queued_proc *q);

/* Starts q again (after queued_proc_kill or _stop) on the same config and
 * node id, appending to the same log, and waits until it is attached and
 * has re-adopted what its node holds (its log says "adopted"), up to 10 s.
 * Returns 0, or -1. */
int queued_proc_restart(queued_proc *q, const sim_proc *sim, int node);

/* Sends SIGTERM and returns at once (queued drains: see node_drain). */
void queued_proc_term(queued_proc *q);
/* Waits up to timeout_ms for q to exit by itself (then SIGKILL). Returns
 * its exit status, or -1. */
int queued_proc_wait_exit(queued_proc *q, int timeout_ms);

/* SIGKILL at once (a crash). */
void queued_proc_kill(queued_proc *q);

bool queued_proc_alive(const queued_proc *q);

/* Number of lines of its log containing `needle`. */
int queued_proc_log_count(const queued_proc *q, const char *needle);

/* The whole single-node world most queued tests need: a real redis-server,
 * a one-node simulator at `scale`, and queued with time_scale = scale plus
 * `general_extra` and `queues` (as for queued_proc_start). */
typedef struct queued_env {
    redis_proc redis;
    sim_proc sim;
    queued_proc q;
} queued_env;

/* Returns 0, or -1 with everything already started stopped again. */
int queued_env_start(queued_env *e, double scale, const char *general_extra,
                     const char *queues);
/* Stops queued (SIGTERM), the simulator and Redis. Returns queued's exit
 * status (0 for a clean stop). */
int queued_env_stop(queued_env *e);

/* Several nodes, one queue: a real redis-server (with AOF, so a test can
 * restart it and keep its data), a simulator with nnodes nodes (linked by
 * IAX2 peers and a queue-link context each) at `scale`, and one queued per
 * node ("node1", ...) with the same config. */
#define QUEUED_CLUSTER_MAX 8
#define QUEUED_SENTINELS 3
typedef struct queued_cluster {
    redis_proc redis; /* the master */
    redis_proc replica, sentinel[QUEUED_SENTINELS]; /* queued_cluster_start_ha */
    bool ha;
    sim_proc sim;
    int nnodes;
    queued_proc q[QUEUED_CLUSTER_MAX];
} queued_cluster;

/* Returns 0, or -1 with everything already started stopped again. */
int queued_cluster_start(queued_cluster *c, int nnodes, double scale, const char *general_extra,
                         const char *queues);
/* The same with Redis behind Sentinel: the master (c->redis, AOF), a
 * replica (c->replica) and three sentinels (quorum 2, down-after 0.5 s);
 * the nodes get a redis-sentinel:// URL naming the sentinels. */
int queued_cluster_start_ha(queued_cluster *c, int nnodes, double scale,
                            const char *general_extra, const char *queues);
/* Stops every queued still running (SIGTERM), the simulator and Redis.
 * Returns 0 if each of them stopped cleanly, else the first bad status. */
int queued_cluster_stop(queued_cluster *c);

#endif
