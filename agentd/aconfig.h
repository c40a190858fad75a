/* aconfig.h - agentd's configuration: one [general] section, in the INI
 * style of queued's (shared/core/config.h: table-driven, "file:line: ..."
 * errors, `${ENV}` for secrets, unknown keys refused).
 *
 *   [general]
 *   listen    = 127.0.0.1
 *   port      = 8091
 *   tokens    = ${ARIQ_AGENTD_TOKENS}     ; one or more, comma-separated
 *   redis_url = redis://127.0.0.1:6379/0
 *   queue_log = /var/log/asterisk/queue_log
 *
 * Every key, its default and its limits are in the table of aconfig.c and
 * in agentd/agentd.conf.sample. Tokens and Redis credentials are never
 * logged nor echoed in an error. */
#ifndef ARIQ_AGENTD_ACONFIG_H
#define ARIQ_AGENTD_ACONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "queue_log.h"

#define ACFG_TOKENS_MAX 16
#define ACFG_TOKEN_MIN 16   /* bytes: a bearer token shorter than this is refused */
#define ACFG_TOKEN_MAX 256
#define ACFG_STR_MAX 1024

typedef struct acfg {
    char listen[64];
    long port;
    char tokens_raw[ACFG_TOKENS_MAX * (ACFG_TOKEN_MAX + 1)]; /* secret */
    size_t ntokens;
    char tokens[ACFG_TOKENS_MAX][ACFG_TOKEN_MAX + 1]; /* split, trimmed; secret */
    char tls_cert[ACFG_STR_MAX];
    char tls_key[ACFG_STR_MAX];
    char redis_url[256]; /* may hold a password: never logged */
    char redis_password[256];
    char namespace_[33];
    char scripts_dir[512]; /* STORE_PATH_MAX */
    char queue_log[QLOG_PATH_MAX]; /* "" = no queue_log */
    bool queue_log_caller_id_name;
    char queue_log_agents_s[8];
    qlog_agent_mode queue_log_agents;
    long heartbeat_s; /* janitor period */
    long max_body;    /* bytes */
    double rate_per_s; /* per peer; 0 = no limit */
    char log_level[8];
    double time_scale;
    long action_timeout_ms; /* actions.h: a node's answer awaited this long */
    long max_download;      /* bytes: largest recording file served */
    char agentd_id[65];     /* names this agentd's reply stream; "" in the file: hostname-pid */
    long snapshot_ms;            /* model.h: a snapshot is reused while younger */
    long service_level_s;        /* answered within this counts for service level */
    long service_level_window_s; /* service level over this much of the events */
} acfg;

/* Loads and validates `path`. Returns 0 and *out (yours: acfg_free), or a
 * negative ARIQ_ code with "file:line: ..." (or "file: ...") in err. */
int acfg_load_file(const char *path, acfg **out, char *err, size_t errlen);
/* The same from text (tests); name stands for the file name. */
int acfg_load_string(const char *text, const char *name, acfg **out, char *err,
                     size_t errlen);
void acfg_free(acfg *c);

#endif
