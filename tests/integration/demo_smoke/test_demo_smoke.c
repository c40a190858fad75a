/* demo_smoke - the README's main job, fast: the demo's scenario driver
 * (tools/demo/ariq-demo) against a real redis-server, a two-node simulator
 * and one real queued per node (node1, node2, as scripts/demo.sh runs them),
 * configured with the driver's own queues, at time scale 0.05.
 * The driver checks its scenario on the simulator's oracle and on Redis and
 * exits 0 only when every check passed; this test requires that, a clean
 * stop of both queued, that dialplan/queued.conf.sample passes `queued --check`, and
 * that dialplan/extensions.conf's [ariq-status] or [ariq-agent-status] has an
 * extension for every QUEUESTATUS queued can hand a call back with. */
#include <dirent.h>
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

/* A whole file, malloc'd, or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[4096];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            char *p = realloc(buf, cap = (len + n + 1) * 2);
            if (!p)
                break;
            buf = p;
        }
        memcpy(buf + len, chunk, n);
        len += n;
        buf[len] = '\0';
    }
    fclose(f);
    return buf;
}

/* Every status literal of a turnaway_start(..., "STATUS", ...) call in
 * `src` must have `exten => STATUS,` in the dialplan text `ctx`.
 * Returns the number missing. */
static int statuses_handled(const char *file, const char *src, const char *ctx)
{
    int missing = 0;
    for (const char *p = src; (p = strstr(p, "turnaway_start(")) != NULL; p++) {
        const char *end = strchr(p, ';'), *q = strchr(p, '"');
        if (!end || !q || q > end)
            continue; /* the definition, or a status passed in a variable */
        char status[32], want[64];
        size_t n = strspn(q + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
        if (n == 0 || n >= sizeof status || q[1 + n] != '"')
            continue;
        snprintf(status, sizeof status, "%.*s", (int)n, q + 1);
        snprintf(want, sizeof want, "exten => %s,", status);
        if (!strstr(ctx, want)) {
            fprintf(stderr,
                    "demo_smoke: %s hands calls back with QUEUESTATUS=%s, but "
                    "dialplan/extensions.conf [ariq-status] has no '%s'\n",
                    file, status, want);
            missing++;
        }
    }
    return missing;
}

/* The text of section [name] of conf (up to the next section), or "". */
static void section(const char *conf, const char *name, char *out, size_t len)
{
    char head[64];
    snprintf(head, sizeof head, "\n[%s]", name);
    const char *s = strstr(conf, head), *next = s ? strstr(s + 1, "\n[") : NULL;
    size_t n = !s ? 0 : next ? (size_t)(next - s) : strlen(s);
    snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), s ? s : "");
}

static int check_dialplan(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/dialplan/extensions.conf", source_dir());
    char *conf = slurp(path);
    static char ctx[32768];
    size_t used = 0;
    if (conf) { /* callers' and agents' hand-backs */
        section(conf, "ariq-status", ctx, sizeof ctx);
        used = strlen(ctx);
        section(conf, "ariq-agent-status", ctx + used, sizeof ctx - used);
    }
    if (!conf || used == 0) {
        fprintf(stderr, "demo_smoke: no [ariq-status] in %s\n", path);
        free(conf);
        return -1;
    }
    snprintf(path, sizeof path, "%s/queued", source_dir());
    DIR *d = opendir(path);
    int missing = 0, files = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 3 || strcmp(e->d_name + n - 2, ".c") != 0)
            continue;
        char file[1400];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        char *src = slurp(file);
        if (src) {
            missing += statuses_handled(e->d_name, src, ctx);
            files++;
        }
        free(src);
    }
    if (d)
        closedir(d);
    free(conf);
    printf(
        "demo_smoke: QUEUESTATUS values in %d queued sources: %d without an extension\n",
        files, missing);
    return files > 0 && missing == 0 ? 0 : -1;
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
    static queued_cluster c;
    if (queued_cluster_start(&c, 2, atof(SCALE), "sweep_ms = 50\n", queues) != 0)
        return -1;
    char redis_addr[64];
    snprintf(redis_addr, sizeof redis_addr, "127.0.0.1:%d", c.redis.port);
    const char *argv[] = {drv,       "--sim",      sim_proc_url(&c.sim, 0),
                          "--redis", redis_addr,   "--scale",
                          SCALE,     "--no-color", NULL};
    int drc = run(argv);
    printf("demo_smoke: ariq-demo exited %d\n", drc);
    if (drc != 0)
        for (int i = 0; i < c.nnodes; i++)
            fprintf(stderr, "demo_smoke: queued %s log: %s\n", c.q[i].node_id,
                    c.q[i].logpath);
    int st = queued_cluster_stop(&c);
    bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!clean)
        fprintf(stderr, "demo_smoke: a queued did not stop cleanly (logs: %s, %s)\n",
                c.q[0].logpath, c.q[1].logpath);
    return drc == 0 && clean ? 0 : -1;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = check_sample();
    if (check_dialplan() != 0)
        rc = -1;
    if (scenario() != 0)
        rc = -1;
    printf("demo_smoke: %s\n", rc == 0 ? "PASS" : "FAIL");
    return rc == 0 ? 0 : 1;
}
