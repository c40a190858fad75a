/* proc.h - child processes and loopback ports for integration tests.
 *
 * Tests start real programs (redis-server, asterisk-sim, queued, agentd) as
 * children. Every child is killed when the test process exits, even on a
 * failed assertion (prctl PDEATHSIG and an atexit sweep), so no test leaves a
 * server running. */
#ifndef ARIQ_TEST_PROC_H
#define ARIQ_TEST_PROC_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct test_proc {
    pid_t pid;
    char name[64];
} test_proc;

/* Returns a TCP port on 127.0.0.1 that was free a moment ago (bound with port
 * 0 and released). Never returns 0; aborts the test on failure. */
int proc_free_port(void);

/* Starts argv[0] (a path) with argv; stdout/stderr go to `logpath` when not
 * NULL (appended), else inherited. Returns 0 or -1. */
int proc_start(test_proc *p, const char *const argv[], const char *logpath);

/* Waits until something accepts TCP connections on 127.0.0.1:port, up to
 * timeout_ms. Returns 0, or -1 on timeout or if the child died meanwhile. */
int proc_wait_port(const test_proc *p, int port, int timeout_ms);

/* Sends sig and waits up to timeout_ms for the child to exit, then SIGKILLs.
 * Returns the exit status as waitpid reports it, or -1. */
int proc_stop(test_proc *p, int sig, int timeout_ms);

/* True if the child is still running. */
bool proc_alive(const test_proc *p);

/* Path of a program built in this build tree ("tests/asterisk-sim/asterisk-sim"),
 * written into buf. */
const char *proc_build_path(const char *rel, char *buf, unsigned long len);

/* A fresh empty directory under the build tree for one test's files. */
const char *proc_tmpdir(const char *test_name, char *buf, unsigned long len);

#endif
