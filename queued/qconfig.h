/* qconfig.h - queued's configuration: one [general] section and one
 * [queue NAME] section per queue, in the INI style of Asterisk's own files.
 *
 *   [general]
 *   node_id      = node1                      ; unique per Asterisk server
 *   ari_url      = http://127.0.0.1:8088      ; "/ari" is appended
 *   ari_user     = ariq
 *   ari_password = ${ARIQ_ARI_PASSWORD}       ; from the environment
 *   app          = queue                      ; the Stasis() application
 *   redis_url    = redis://127.0.0.1:6379/0
 *
 *   [queue support]
 *   announce_frequency = 30
 *
 * Every key, its default and its limits are in the tables of qconfig.c and in
 * dialplan/queued.conf.sample. Loading validates everything and either yields
 * a whole config or one error naming file:line, key and value (never a
 * password). */
#ifndef ARIQ_QUEUED_QCONFIG_H
#define ARIQ_QUEUED_QCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define QCFG_ID_MAX 64 /* node id, app, queue names: bytes */
#define QCFG_URL_MAX 512
#define QCFG_SECRET_MAX 256
#define QCFG_QUEUES_MAX 256

typedef struct qcfg_queue {
    char name[QCFG_ID_MAX + 1];
    char moh_class[QCFG_ID_MAX + 1];
    long announce_frequency_s; /* 0: never */
    bool announce_on_join;
    char record_format[16];
    char key_record;  /* DTMF keys of the agent in a call; '\0' = disabled */
    char key_pause;   /* pause, and unpause */
    char key_stop;
    char key_discard;
    char key_hangup;  /* end the call */
    long wrapup_s;
    long maxlen;      /* waiting callers at most; 0: no limit (else FULL) */
    long timeout_s;   /* longest wait; 0: none (else TIMEOUT) */
} qcfg_queue;

typedef struct qcfg {
    char node_id[QCFG_ID_MAX + 1];
    char ari_url[QCFG_URL_MAX];
    char ari_user[QCFG_ID_MAX + 1];
    char ari_password[QCFG_SECRET_MAX];
    char app[QCFG_ID_MAX + 1];
    char redis_url[QCFG_SECRET_MAX]; /* may hold a password: never logged */
    char redis_password[QCFG_SECRET_MAX];
    char namespace_[33];
    char scripts_dir[QCFG_URL_MAX];
    char link_dial[QCFG_URL_MAX]; /* "IAX2/{node}/{pairing}@queue-link" */
    long link_timeout_s;          /* a link call not answered by then fails */
    long sweep_ms;                /* periodic pairing sweep */
    long heartbeat_s;
    long drain_timeout_s;         /* SIGTERM: calls may finish this long; 0: stop at once */
    double time_scale;            /* tests: scales every configured duration */
    char log_level[8];
    size_t nqueues;
    qcfg_queue *queues; /* nqueues entries, in file order */
} qcfg;

/* Loads and validates `path`. On success *out is yours (qcfg_free). On error
 * returns a negative ARIQ_ code with "file:line: ..." in err. */
int qcfg_load_file(const char *path, qcfg **out, char *err, size_t errlen);
/* The same from text (tests); name stands for the file name. */
int qcfg_load_string(const char *text, const char *name, qcfg **out, char *err,
                     size_t errlen);
void qcfg_free(qcfg *c);

/* The queue named `name`, borrowed from c, or NULL. */
const qcfg_queue *qcfg_queue_find(const qcfg *c, const char *name);

#endif
