#include "queued_proc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

static int write_conf(queued_proc *q, const sim_proc *sim, int node, const redis_proc *r,
                      const char *general_extra, const char *queues)
{
    char dir[512], redis_url[256];
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
            redis_proc_url(r, 0, redis_url, sizeof redis_url), general_extra ? general_extra : "",
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

int queued_proc_start(queued_proc *q, const sim_proc *sim, int node, const redis_proc *r,
                      const char *general_extra, const char *queues)
{
    memset(q, 0, sizeof *q);
    if (write_conf(q, sim, node, r, general_extra, queues) != 0)
        return -1;
    return launch(q, sim, node, attached, 0);
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

int queued_cluster_start(queued_cluster *c, int nnodes, double scale, const char *general_extra,
                         const char *queues)
{
    memset(c, 0, sizeof *c);
    redis_opts ro = {.aof = true}; /* a test may restart Redis and expect its data */
    if (nnodes < 1 || nnodes > QUEUED_CLUSTER_MAX || redis_proc_start(&c->redis, &ro) != 0)
        return -1;
    if (sim_proc_start(&c->sim, nnodes, scale) != 0) {
        redis_proc_stop(&c->redis, SIGKILL);
        return -1;
    }
    char general[1024];
    snprintf(general, sizeof general, "time_scale = %g\n%s", scale,
             general_extra ? general_extra : "");
    for (int i = 0; i < nnodes; i++) {
        if (queued_proc_start(&c->q[i], &c->sim, i, &c->redis, general, queues) != 0) {
            while (i-- > 0)
                queued_proc_kill(&c->q[i]);
            sim_proc_stop(&c->sim);
            redis_proc_stop(&c->redis, SIGKILL);
            return -1;
        }
        c->nnodes = i + 1;
    }
    return 0;
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
    redis_proc_stop(&c->redis, SIGTERM);
    return worst;
}
