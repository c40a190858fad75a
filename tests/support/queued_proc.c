#include "queued_proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

static int write_conf(queued_proc *q, const sim_proc *sim, int node, const char *redis_url,
                      const char *general_extra, const char *queues)
{
    char dir[512];
    snprintf(q->node_id, sizeof q->node_id, "node%d", node + 1);
    static int starts; /* one directory per start: each test keeps its log */
    char tag[64];
    snprintf(tag, sizeof tag, "queued-%s-%d", q->node_id, ++starts);
    proc_tmpdir(tag, dir, sizeof dir);
    snprintf(q->conf, sizeof q->conf, "%s/queued.conf", dir);
    snprintf(q->logpath, sizeof q->logpath, "%s/queued.log", dir);
    FILE *f = fopen(q->conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "[general]\nnode_id = %s\nari_url = %s\nari_user = %s\nari_password = %s\n"
            "redis_url = %s\n%s\n%s\n",
            q->node_id, sim_proc_url(sim, node), sim_proc_user(sim), sim_proc_password(sim),
            redis_url, general_extra ? general_extra : "",
            queues ? queues : "[queue support]\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* The app is attached and has set its event filter: queued's start-up
 * requests are done, so a test's faults meet only the requests it causes. */
static bool app_attached(const sim_proc *sim, int node)
{
    long st = 0;
    json_t *j = sim_ctl(sim, node, "GET", "/ari/applications/queue", NULL, &st);
    bool ready = st == 200 && json_array_size(json_object_get(j, "events_allowed")) > 0;
    json_decref(j);
    return ready;
}

/* Starts the binary on q's config and waits until `ready` holds, up to 10 s. */
static int launch(queued_proc *q, const sim_proc *sim, int node,
                  bool (*ready)(const queued_proc *, const sim_proc *, int, int), int arg)
{
    char bin[512];
    proc_build_path("queued/queued", bin, sizeof bin);
    const char *argv[] = {bin, "-c", q->conf, NULL};
    if (proc_start(&q->proc, argv, q->logpath) != 0)
        return -1;
    for (int i = 0; i < 1000; i++) {
        if (ready(q, sim, node, arg))
            return 0;
        if (!proc_alive(&q->proc))
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "queued_proc: %s did not get ready (log: %s)\n", q->node_id, q->logpath);
    proc_stop(&q->proc, SIGKILL, 1000);
    return -1;
}

static bool attached(const queued_proc *q, const sim_proc *sim, int node, int arg)
{
    (void)q;
    (void)arg;
    return app_attached(sim, node);
}

static int start_url(queued_proc *q, const sim_proc *sim, int node, const char *redis_url,
                     const char *general_extra, const char *queues)
{
    memset(q, 0, sizeof *q);
    if (write_conf(q, sim, node, redis_url, general_extra, queues) != 0)
        return -1;
    return launch(q, sim, node, attached, 0);
}

int queued_proc_start(queued_proc *q, const sim_proc *sim, int node, const redis_proc *r,
                      const char *general_extra, const char *queues)
{
    char url[256];
    return start_url(q, sim, node, redis_proc_url(r, 0, url, sizeof url), general_extra, queues);
}

static bool adopted(const queued_proc *q, const sim_proc *sim, int node, int before)
{
    return app_attached(sim, node) && queued_proc_log_count(q, "adopted callers=") > before;
}

int queued_proc_restart(queued_proc *q, const sim_proc *sim, int node)
{
    if (proc_alive(&q->proc))
        return -1;
    return launch(q, sim, node, adopted, queued_proc_log_count(q, "adopted callers="));
}

int queued_proc_stop(queued_proc *q)
{
    return proc_stop(&q->proc, SIGTERM, 5000);
}

void queued_proc_term(queued_proc *q)
{
    if (q->proc.pid > 0)
        kill(q->proc.pid, SIGTERM);
}

int queued_proc_wait_exit(queued_proc *q, int timeout_ms)
{
    return proc_stop(&q->proc, 0, timeout_ms); /* signal 0: only waits */
}

void queued_proc_kill(queued_proc *q)
{
    proc_stop(&q->proc, SIGKILL, 1000);
}

bool queued_proc_alive(const queued_proc *q)
{
    return proc_alive(&q->proc);
}

int queued_proc_log_count(const queued_proc *q, const char *needle)
{
    FILE *f = fopen(q->logpath, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

int queued_env_start(queued_env *e, double scale, const char *general_extra,
                     const char *queues)
{
    memset(e, 0, sizeof *e);
    if (redis_proc_start(&e->redis, NULL) != 0)
        return -1;
    if (sim_proc_start(&e->sim, 1, scale) != 0) {
        redis_proc_stop(&e->redis, SIGKILL);
        return -1;
    }
    char general[1024];
    snprintf(general, sizeof general, "time_scale = %g\n%s", scale,
             general_extra ? general_extra : "");
    if (queued_proc_start(&e->q, &e->sim, 0, &e->redis, general, queues) != 0) {
        sim_proc_stop(&e->sim);
        redis_proc_stop(&e->redis, SIGKILL);
        return -1;
    }
    return 0;
}

int queued_env_stop(queued_env *e)
{
    int st = queued_proc_stop(&e->q);
    sim_proc_stop(&e->sim);
    redis_proc_stop(&e->redis, SIGTERM);
    return st;
}

/* Redis behind Sentinel: the master (c->redis), a replica and three
 * sentinels; the URL the nodes get names the sentinels. */
/* The replica's link to the master is up (its first sync done). */
static bool replica_synced(const redis_proc *r)
{
    redisReply *rep = redis_proc_cmd(r, "INFO replication");
    bool up = rep && rep->str && strstr(rep->str, "master_link_status:up");
    freeReplyObject(rep);
    return up;
}

static int start_ha(queued_cluster *c, char *url, size_t len)
{
    /* Redis 7 holds a diskless full sync back 5 s by default: a test's
     * writes meanwhile would never reach the replica */
    freeReplyObject(redis_proc_cmd(&c->redis, "CONFIG SET repl-diskless-sync-delay 0"));
    redis_opts ro = {.aof = true, .replicaof_port = c->redis.port};
    if (redis_proc_start(&c->replica, &ro) != 0)
        return -1;
    for (int t = 0; !replica_synced(&c->replica); t += 10) {
        if (t > 10000)
            return -1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int n = snprintf(url, len, "redis-sentinel://");
    for (int i = 0; i < QUEUED_SENTINELS; i++) {
        sentinel_opts so = {.master_port = c->redis.port};
        if (redis_proc_start_sentinel(&c->sentinel[i], &so) != 0)
            return -1;
        n += snprintf(url + n, len - (size_t)n, "%s127.0.0.1:%d", i ? "," : "",
                      c->sentinel[i].port);
    }
    snprintf(url + n, len - (size_t)n, "/mymaster?db=0");
    for (int i = 0; i < QUEUED_SENTINELS; i++)
        if (redis_proc_sentinel_wait(&c->sentinel[i], "mymaster", 1, QUEUED_SENTINELS - 1,
                                     10000) != 0)
            return -1;
    return 0;
}

static void stop_redis(queued_cluster *c, int sig)
{
    for (int i = 0; i < QUEUED_SENTINELS; i++)
        redis_proc_stop(&c->sentinel[i], sig);
    redis_proc_stop(&c->replica, sig);
    redis_proc_stop(&c->redis, sig);
}

static int cluster_start(queued_cluster *c, int nnodes, double scale, const char *general_extra,
                         const char *queues, bool ha)
{
    memset(c, 0, sizeof *c);
    char url[512];
    redis_opts ro = {.aof = true}; /* a test may restart Redis and expect its data */
    if (nnodes < 1 || nnodes > QUEUED_CLUSTER_MAX || redis_proc_start(&c->redis, &ro) != 0)
        return -1;
    c->ha = ha;
    if (ha ? start_ha(c, url, sizeof url) != 0
           : redis_proc_url(&c->redis, 0, url, sizeof url) == NULL) {
        stop_redis(c, SIGKILL);
        return -1;
    }
    if (sim_proc_start(&c->sim, nnodes, scale) != 0) {
        stop_redis(c, SIGKILL);
        return -1;
    }
    char general[1024];
    snprintf(general, sizeof general, "time_scale = %g\n%s", scale,
             general_extra ? general_extra : "");
    for (int i = 0; i < nnodes; i++) {
        if (start_url(&c->q[i], &c->sim, i, url, general, queues) != 0) {
            while (i-- > 0)
                queued_proc_kill(&c->q[i]);
            sim_proc_stop(&c->sim);
            stop_redis(c, SIGKILL);
            return -1;
        }
        c->nnodes = i + 1;
    }
    return 0;
}

int queued_cluster_start(queued_cluster *c, int nnodes, double scale, const char *general_extra,
                         const char *queues)
{
    return cluster_start(c, nnodes, scale, general_extra, queues, false);
}

int queued_cluster_start_ha(queued_cluster *c, int nnodes, double scale,
                            const char *general_extra, const char *queues)
{
    return cluster_start(c, nnodes, scale, general_extra, queues, true);
}

int queued_cluster_stop(queued_cluster *c)
{
    int worst = 0;
    for (int i = 0; i < c->nnodes; i++) {
        if (!queued_proc_alive(&c->q[i]))
            continue; /* killed by the test */
        int st = queued_proc_stop(&c->q[i]);
        if (st != 0)
            worst = st;
    }
    sim_proc_stop(&c->sim);
    stop_redis(c, SIGTERM);
    return worst;
}
