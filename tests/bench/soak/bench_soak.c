/* bench_soak.c - the seeded random run over four nodes
 * (tests/integration/queued_random/test_queued_random_multi), many times in
 * a row: seeds 1..RUNS, the fault modes taken in turn (ARIQ_FAULT = restart,
 * redis, wsdrop, mixed by default). Each run is the test binary itself,
 * started as a child with the seed and ARIQ_FAULT, its output kept in a log
 * of its own: a run that hangs or crashes leaves the others alone, and a
 * failure is rerun by hand with the same two values.
 *
 * Figures ("name: value unit" lines) from what each run prints: runs passed
 * and failed (each failure with its seed, mode and first error line), the
 * callers placed, connected and abandoned over the runs that got to the
 * end, the faults injected by kind, and each run's wall time (median, max).
 *
 * Usage: bench_soak [runs=20] [modes=restart,redis,wsdrop,mixed]
 * ("none" in modes: a fault-free run). Exit 0 only if every run passed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/clock.h"
#include "proc.h"

#define MAX_RUNS    10000
#define MAX_MODES   8
#define RUN_TIMEOUT 300000 /* ms: the test's own ctest timeout is 240 s */
#define TEST_BIN    "tests/integration/queued_random/test_queued_random_multi"

/* What one run printed, and how it went. */
typedef struct run_t {
    unsigned seed;
    const char *mode;
    bool passed;
    bool counted; /* its "callers:" line was there (it got to the end) */
    int placed, connected, abandoned;
    int kills, stops, redis_stops, ws_drops, ws_refused;
    long redis_down_ms;
    double wall_s;
    char error[320]; /* its first error line, "" if none */
} run_t;

typedef struct soak_t {
    const char *modes[MAX_MODES];
    int nmodes;
    int nruns;
    run_t *runs;
    char dir[600]; /* the runs' logs */
} soak_t;

/* ---- one run ---------------------------------------------------------------------- */

/* Keeps what a line of the test's output says about the run. */
static void parse_line(run_t *r, const char *line)
{
    const char *p;
    if ((p = strstr(line, ": callers: ")) &&
        sscanf(p, ": callers: placed=%d connected=%d abandoned=%d", &r->placed,
               &r->connected, &r->abandoned) == 3)
        r->counted = true;
    else if ((p = strstr(line, "): kills=")))
        sscanf(p,
               "): kills=%d stops=%d redis_stops=%d redis_down_ms=%ld ws_drops=%d "
               "ws_refused=%d",
               &r->kills, &r->stops, &r->redis_stops, &r->redis_down_ms, &r->ws_drops,
               &r->ws_refused);
    else if (!r->error[0] && (!strncmp(line, "ERROR: ", 7) || strstr(line, "did not") ||
                              strstr(line, "a queued did not exit 0")))
        snprintf(r->error, sizeof r->error, "%.*s", (int)strcspn(line, "\n"), line);
}

static void parse_log(run_t *r, const char *path)
{
    char line[4096];
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        parse_line(r, line);
    fclose(f);
}

/* Runs the test once with r's seed and mode, its output in dir; fills r. */
static void run_once(const soak_t *s, run_t *r)
{
    char bin[600], seed[16], log[700];
    proc_build_path(TEST_BIN, bin, sizeof bin);
    snprintf(seed, sizeof seed, "%u", r->seed);
    snprintf(log, sizeof log, "%s/seed%u-%s.log", s->dir, r->seed, r->mode);
    const char *argv[] = {bin, seed, NULL};
    if (strcmp(r->mode, "none") == 0)
        unsetenv("ARIQ_FAULT");
    else
        setenv("ARIQ_FAULT", r->mode, 1);
    uint64_t t0 = clock_mono_ms();
    test_proc p;
    int st = proc_start(&p, argv, log) == 0 ? proc_stop(&p, 0, RUN_TIMEOUT) : -1;
    r->wall_s = (double)(clock_mono_ms() - t0) / 1000.0;
    r->passed = st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    parse_log(r, log);
    if (!r->passed && !r->error[0])
        snprintf(r->error, sizeof r->error, "exit status %d, no error line in its log",
                 st);
    fprintf(stderr, "bench_soak: seed %u %s: %s in %.1f s%s%s\n", r->seed, r->mode,
            r->passed ? "passed" : "FAILED", r->wall_s, r->error[0] ? ": " : "",
            r->error);
}

/* ---- figures ---------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_walls(const soak_t *s)
{
    double *w = malloc((size_t)s->nruns * sizeof *w);
    if (!w)
        return;
    for (int i = 0; i < s->nruns; i++)
        w[i] = s->runs[i].wall_s;
    qsort(w, (size_t)s->nruns, sizeof *w, cmp_double);
    double median =
        s->nruns % 2 ? w[s->nruns / 2] : (w[s->nruns / 2 - 1] + w[s->nruns / 2]) / 2;
    printf("run_wall_median: %.1f s\n", median);
    printf("run_wall_max: %.1f s\n", w[s->nruns - 1]);
    free(w);
}

static void print_modes(const soak_t *s)
{
    for (int m = 0; m < s->nmodes; m++) {
        int n = 0, ok = 0;
        for (int i = 0; i < s->nruns; i++)
            if (s->runs[i].mode == s->modes[m]) {
                n++;
                ok += s->runs[i].passed;
            }
        printf("passed_%s: %d of %d runs\n", s->modes[m], ok, n);
    }
}

/* Prints every figure; returns the number of runs that failed. */
static int report(const soak_t *s)
{
    run_t t = {0};
    int failed = 0, counted = 0;
    for (int i = 0; i < s->nruns; i++) {
        const run_t *r = &s->runs[i];
        failed += !r->passed;
        counted += r->counted;
        t.placed += r->placed;
        t.connected += r->connected;
        t.abandoned += r->abandoned;
        t.kills += r->kills;
        t.stops += r->stops;
        t.redis_stops += r->redis_stops;
        t.redis_down_ms += r->redis_down_ms;
        t.ws_drops += r->ws_drops;
        t.ws_refused += r->ws_refused;
    }
    printf("runs: %d runs\n", s->nruns);
    printf("passed: %d runs\n", s->nruns - failed);
    printf("failed: %d runs\n", failed);
    for (int i = 0; i < s->nruns; i++)
        if (!s->runs[i].passed)
            printf("failure: seed %u mode %s (%s)\n", s->runs[i].seed, s->runs[i].mode,
                   s->runs[i].error);
    print_modes(s);
    printf("callers_placed: %d callers (over the %d runs that got to the end)\n",
           t.placed, counted);
    printf("callers_connected: %d callers\n", t.connected);
    printf("callers_abandoned: %d callers\n", t.abandoned);
    printf("faults_queued_killed: %d SIGKILL\n", t.kills);
    printf("faults_queued_stopped: %d SIGTERM\n", t.stops);
    printf("faults_redis_stopped: %d stops\n", t.redis_stops);
    printf("faults_redis_down: %ld ms in all\n", t.redis_down_ms);
    printf("faults_ws_dropped: %d drops\n", t.ws_drops);
    printf("faults_ws_refused: %d upgrades\n", t.ws_refused);
    print_walls(s);
    printf("logs: %s\n", s->dir);
    return failed;
}

/* ---- main ------------------------------------------------------------------------- */

/* Splits a comma list of modes (in place: s->modes point into `list`). */
static int parse_modes(soak_t *s, char *list)
{
    for (char *m = strtok(list, ","); m; m = strtok(NULL, ",")) {
        if (s->nmodes == MAX_MODES)
            return -1;
        s->modes[s->nmodes++] = m;
    }
    return s->nmodes > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    static soak_t s;
    static char modes[256] = "restart,redis,wsdrop,mixed";
    s.nruns = argc > 1 ? atoi(argv[1]) : 20;
    if (argc > 2)
        snprintf(modes, sizeof modes, "%s", argv[2]);
    if (s.nruns < 1 || s.nruns > MAX_RUNS || parse_modes(&s, modes) != 0) {
        fprintf(stderr,
                "usage: bench_soak [runs=20] [modes=restart,redis,wsdrop,mixed]\n");
        return 2;
    }
    s.runs = calloc((size_t)s.nruns, sizeof *s.runs);
    if (!s.runs)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    proc_tmpdir("bench_soak", s.dir, sizeof s.dir);
    for (int i = 0; i < s.nruns; i++) {
        s.runs[i].seed = (unsigned)i + 1;
        s.runs[i].mode = s.modes[i % s.nmodes];
        run_once(&s, &s.runs[i]);
    }
    int failed = report(&s);
    free(s.runs);
    return failed ? 1 : 0;
}
