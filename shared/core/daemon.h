/* daemon.h - what every ariq daemon's main() does before its loop: the
 * command line (-c CONFIG [--check]), logging and the time scale from the
 * environment, SIGPIPE ignored. */
#ifndef ARIQ_CORE_DAEMON_H
#define ARIQ_CORE_DAEMON_H

/* Parses `name -c CONFIG [--check] | -h`, sets up logging and the clock
 * from the environment and ignores SIGPIPE (hiredis and libcurl write to
 * sockets that may close). Returns -1 to go on, with *path (borrowed from
 * argv) and *check set, or the exit code to return now (0 after -h, 2 on
 * bad arguments or ARIQ_TIME_SCALE; a message was printed). */
int daemon_start(int argc, char **argv, const char *name, const char **path, int *check);

/* The config's log level and time scale, unless the environment set them
 * (ARIQ_LOG_LEVEL, ARIQ_TIME_SCALE win). */
void daemon_runtime(const char *level, double time_scale);

#endif
