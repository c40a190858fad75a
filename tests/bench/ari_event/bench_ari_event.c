/* Benchmark: ari_event_parse() over the events a real Asterisk sent in one
 * session (samples/all-events.jsonl), repeated to about a million events.
 *
 *   bench_ari_event [EVENTS]     default 1000000
 *
 * Prints ari_events_parsed_per_sec and ari_event_parse_mb_per_sec. Exits
 * non-zero if any recorded event fails to parse (then the figure would lie). */
#include "ari/event.h"
#include "core/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct line {
    char *text;
    size_t len;
} line;

/* Reads the non-empty lines of path; returns how many, or -1. */
static int load_lines(const char *path, line **out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    line *v = NULL;
    int n = 0, cap = 0;
    char *buf = NULL;
    size_t bcap = 0;
    ssize_t r;
    while ((r = getline(&buf, &bcap, f)) > 0) {
        while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == '\r'))
            r--;
        if (r == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            line *nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv)
                abort();
            v = nv;
        }
        v[n].text = strndup(buf, (size_t)r);
        v[n].len = (size_t)r;
        n++;
    }
    free(buf);
    fclose(f);
    *out = v;
    return n;
}

int main(int argc, char **argv)
{
    long target = argc > 1 ? atol(argv[1]) : 1000000;
    const char *dir = getenv("ARIQ_SHARED_ARI_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/samples/all-events.jsonl",
             dir && *dir ? dir : "/work/shared/ari");
    line *lines = NULL;
    int n = load_lines(path, &lines);
    if (n <= 0) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    long done = 0, failed = 0;
    size_t bytes = 0;
    uint64_t t0 = clock_mono_us();
    while (done < target) {
        for (int i = 0; i < n && done < target; i++, done++) {
            ari_event *ev = NULL;
            if (ari_event_parse(lines[i].text, lines[i].len, &ev, NULL, 0) != 0)
                failed++;
            ari_event_free(ev);
            bytes += lines[i].len;
        }
    }
    uint64_t us = clock_mono_us() - t0;
    double secs = us ? (double)us / 1e6 : 1e-6;
    printf("ari_events_parsed: %ld (%d distinct, %ld failed)\n", done, n, failed);
    printf("ari_events_parsed_per_sec: %.0f\n", (double)done / secs);
    printf("ari_event_parse_mb_per_sec: %.1f\n", (double)bytes / secs / 1e6);
    for (int i = 0; i < n; i++)
        free(lines[i].text);
    free(lines);
    return failed ? 1 : 0;
}
