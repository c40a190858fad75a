/* demo_smoke - the README's main job, fast: the demo's scenario driver
 * (tools/demo/ariq-demo) against a real redis-server, the simulator and the
 * real queued, configured with the driver's own queues, at time scale 0.05.
 * The driver checks its scenario on the simulator's oracle and on Redis and
 * exits 0 only when every check passed; this test requires that, a clean
 * queued stop, and that dialplan/queued.conf.sample passes `queued --check`. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queued_proc.h"
#include "redis_proc.h"
#include "sim_proc.h"

#define SCALE "0.05"

static const char *source_dir(void)
{
    const char *s = getenv("ARIQ_SOURCE_DIR");
    return s && *s ? s : ARIQ_SOURCE_DIR;
}

/* Runs argv to the end; returns its exit code, or -1. */
static int run(const char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int check_sample(void)
{
    char bin[512], sample[1024];
    proc_build_path("queued/queued", bin, sizeof bin);
    snprintf(sample, sizeof sample, "%s/dialplan/queued.conf.sample", source_dir());
    setenv("ARIQ_ARI_PASSWORD", "demo-secret", 1);
    const char *argv[] = {bin, "-c", sample, "--check", NULL};
    int rc = run(argv);
    printf("demo_smoke: queued --check %s -> %d\n", sample, rc);
    return rc == 0 ? 0 : -1;
}

/* The [queue ...] sections the driver's scenario needs. */
static char *driver_queues(const char *drv)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "'%s' --print-queues", drv);
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    static char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, p);
    text[n] = '\0';
    return pclose(p) == 0 && n > 0 ? text : NULL;
}

static int scenario(void)
{
    char drv[512];
    proc_build_path("tools/demo/ariq-demo", drv, sizeof drv);
    const char *queues = driver_queues(drv);
    if (!queues) {
        fprintf(stderr, "demo_smoke: %s --print-queues failed\n", drv);
        return -1;
    }
    redis_proc redis;
    sim_proc sim;
    queued_proc q;
    if (redis_proc_start(&redis, NULL) != 0)
        return -1;
    int rc = -1;
    if (sim_proc_start(&sim, 1, atof(SCALE)) != 0)
        goto out_redis;
    if (queued_proc_start(&q, &sim, 0, &redis, "time_scale = " SCALE "\nsweep_ms = 50\n",
                          queues) != 0)
        goto out_sim;
    char redis_addr[64];
    snprintf(redis_addr, sizeof redis_addr, "127.0.0.1:%d", redis.port);
    const char *argv[] = {drv,       "--sim",      sim_proc_url(&sim, 0),
                          "--redis", redis_addr,   "--scale",
                          SCALE,     "--no-color", NULL};
    int drc = run(argv);
    printf("demo_smoke: ariq-demo exited %d\n", drc);
    int st = queued_proc_stop(&q);
    bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!clean)
        fprintf(stderr, "demo_smoke: queued did not stop cleanly (log: %s)\n", q.logpath);
    rc = drc == 0 && clean ? 0 : -1;
out_sim:
    sim_proc_stop(&sim);
out_redis:
    redis_proc_stop(&redis, SIGTERM);
    return rc;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = check_sample();
    if (scenario() != 0)
        rc = -1;
    printf("demo_smoke: %s\n", rc == 0 ? "PASS" : "FAIL");
    return rc == 0 ? 0 : 1;
}
