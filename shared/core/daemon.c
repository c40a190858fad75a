#include "core/daemon.h"

#include "core/clock.h"
#include "core/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f, const char *name)
{
    fprintf(f, "usage: %s -c CONFIG [--check]\n", name);
}

int daemon_start(int argc, char **argv, const char *name, const char **path, int *check)
{
    *path = NULL;
    *check = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            *path = argv[++i];
        } else if (strcmp(argv[i], "--check") == 0) {
            *check = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout, name);
            return 0;
        } else {
            usage(stderr, name);
            return 2;
        }
    }
    if (!*path) {
        usage(stderr, name);
        return 2;
    }
    log_init_from_env();
    if (clock_init_from_env() != 0) {
        fprintf(stderr, "%s: ARIQ_TIME_SCALE must be a number from 0 to 1000\n", name);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    return -1;
}

void daemon_runtime(const char *level, double time_scale)
{
    log_level lvl;
    if (!getenv("ARIQ_LOG_LEVEL") && log_level_parse(level, &lvl) == 0)
        log_set_level(lvl);
    if (!getenv("ARIQ_TIME_SCALE"))
        clock_set_scale(time_scale);
}
