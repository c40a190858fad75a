/* agentd_proc.h - the agentd daemon as a child process for tests (modelled
 * on tests/support/queued_proc): a config written for a running Redis, the
 * real binary started, and a wait until its API answers and its events
 * reader is running. */
#ifndef ARIQ_TEST_AGENTD_PROC_H
#define ARIQ_TEST_AGENTD_PROC_H

#include "proc.h"
#include "redis_proc.h"

#define AGENTD_TOKEN "test-token-0123456789"
#define AGENTD_AUTH "Bearer " AGENTD_TOKEN

typedef struct agentd_proc {
    test_proc proc;
    int port;
    char dir[512];
    char conf[600];
    char logpath[600];
} agentd_proc;

/* Writes a config (port free, tokens AGENTD_TOKEN and a second one, Redis
 * r, `extra` appended to [general]) and starts build/agentd/agentd; waits
 * up to 10 s until GET /api/v1/health says the events reader is reading.
 * Returns 0, or -1 (its log says why). */
int agentd_proc_start(agentd_proc *a, const redis_proc *r, const char *extra);
/* SIGTERM, wait up to 5 s. Returns the exit status (0 clean) or -1. */
int agentd_proc_stop(agentd_proc *a);
/* Lines of its log holding needle. */
int agentd_proc_log_count(const agentd_proc *a, const char *needle);

/* One HTTP request to 127.0.0.1:port (curl). auth may be NULL. The body
 * (malloc'd, yours, may be NULL) and the headers (if hdrs) go into *body
 * and hdrs[0..hlen). Returns the status, or -1. */
long agentd_http(int port, const char *method, const char *path, const char *auth,
                 char **body, char *hdrs, size_t hlen);
/* The same with a request body (req_body NULL: none; else sent as
 * application/json, POST or whatever method). */
long agentd_http_send(int port, const char *method, const char *path, const char *auth,
                      const char *req_body, char **body, char *hdrs, size_t hlen);

#endif
