#include "qconfig.h"

#include "core/config.h"
#include "core/err.h"
#include "core/ids.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(key, type, member, min, max, def, req)                                           \
    {key, type, offsetof(qcfg, member), min, max, def, req}
#define Q(key, type, member, min, max, def)                                                \
    {key, type, offsetof(qcfg_queue, member), min, max, def, false}
#define SZ(s, m) ((long)sizeof(((s *)0)->m))

/* [general]: every key queued knows, with its limits and default. */
static const cfg_field general_fields[] = {
    F("node_id", CFG_ID, node_id, 0, SZ(qcfg, node_id), NULL, true),
    F("ari_url", CFG_STR, ari_url, 0, SZ(qcfg, ari_url), "http://127.0.0.1:8088", false),
    F("ari_user", CFG_STR, ari_user, 0, SZ(qcfg, ari_user), NULL, true),
    F("ari_password", CFG_SECRET, ari_password, 0, SZ(qcfg, ari_password), "", false),
    F("app", CFG_ID, app, 0, SZ(qcfg, app), "queue", false),
    F("redis_url", CFG_SECRET, redis_url, 0, SZ(qcfg, redis_url), "redis://127.0.0.1:6379/0",
      false),
    F("redis_password", CFG_SECRET, redis_password, 0, SZ(qcfg, redis_password), "", false),
    F("namespace", CFG_ID, namespace_, 0, SZ(qcfg, namespace_), "ariq", false),
    F("scripts_dir", CFG_STR, scripts_dir, 0, SZ(qcfg, scripts_dir), "", false),
    F("link_dial", CFG_STR, link_dial, 0, SZ(qcfg, link_dial),
      "IAX2/{node}/{pairing}@queue-link", false),
    F("link_timeout_s", CFG_INT, link_timeout_s, 1, 300, "15", false),
    F("sweep_ms", CFG_INT, sweep_ms, 10, 60000, "1000", false),
    F("heartbeat_s", CFG_INT, heartbeat_s, 1, 300, "5", false),
    F("drain_timeout_s", CFG_INT, drain_timeout_s, 0, 3600, "60", false),
    F("time_scale", CFG_DOUBLE, time_scale, 0, 1000, "1", false),
    F("log_level", CFG_STR, log_level, 0, SZ(qcfg, log_level), "info", false),
    {NULL, 0, 0, 0, 0, NULL, false},
};

/* [queue NAME]: app_queue's names where app_queue has the same setting. */
static const cfg_field queue_fields[] = {
    Q("moh_class", CFG_ID, moh_class, 0, SZ(qcfg_queue, moh_class), "default"),
    Q("announce_frequency", CFG_INT, announce_frequency_s, 0, 3600, "30"),
    Q("announce_on_join", CFG_BOOL, announce_on_join, 0, 0, "no"),
    Q("record_format", CFG_ID, record_format, 0, SZ(qcfg_queue, record_format), "wav"),
    Q("key_record", CFG_DTMF, key_record, 0, 0, "0"),
    Q("key_pause", CFG_DTMF, key_pause, 0, 0, "5"),
    Q("key_stop", CFG_DTMF, key_stop, 0, 0, "7"),
    Q("key_discard", CFG_DTMF, key_discard, 0, 0, "9"),
    Q("key_hangup", CFG_DTMF, key_hangup, 0, 0, "#"),
    Q("wrapup_time", CFG_INT, wrapup_s, 0, 3600, "0"),
    Q("maxlen", CFG_INT, maxlen, 0, 100000, "0"),
    Q("timeout", CFG_INT, timeout_s, 0, 86400, "0"),
    {NULL, 0, 0, 0, 0, NULL, false},
};

const qcfg_queue *qcfg_queue_find(const qcfg *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->nqueues; i++)
        if (strcmp(c->queues[i].name, name) == 0)
            return &c->queues[i];
    return NULL;
}

void qcfg_free(qcfg *c)
{
    if (!c)
        return;
    free(c->queues);
    free(c);
}

/* Two actions on one key would make the agent's keypad ambiguous. */
static int check_keys(const cfg *ini, const char *file, int sec, const qcfg_queue *q,
                      char *err, size_t errlen)
{
    const char keys[] = {q->key_record, q->key_pause, q->key_stop, q->key_discard,
                         q->key_hangup};
    for (size_t i = 0; i < sizeof keys; i++)
        for (size_t j = i + 1; j < sizeof keys; j++)
            if (keys[i] && keys[i] == keys[j]) {
                snprintf(err, errlen, "%s:%d: [queue %s] key '%c' is given to two actions",
                         file, cfg_section_line(ini, (size_t)sec), q->name, keys[i]);
                return ARIQ_EINVAL;
            }
    return 0;
}

static int check_general(const qcfg *c, const char *file, char *err, size_t errlen)
{
    log_level lvl;
    const char *why = NULL, *key = NULL, *val = NULL;
    if (strncmp(c->ari_url, "http://", 7) != 0)
        key = "ari_url", val = c->ari_url, why = "must start with http://";
    else if (log_level_parse(c->log_level, &lvl) != 0)
        key = "log_level", val = c->log_level, why = "is not debug, info, warn or error";
    else if (!strstr(c->link_dial, "{pairing}"))
        key = "link_dial", val = c->link_dial, why = "must contain {pairing}";
    if (!why)
        return 0;
    snprintf(err, errlen, "%s: [general] %s: '%s' %s", file, key, val, why);
    return ARIQ_EINVAL;
}

/* Applies one [queue NAME] section into the next slot of c->queues. */
static int apply_queue(const cfg *ini, const char *file, size_t i, qcfg *c, char *err,
                       size_t errlen)
{
    if (c->nqueues == QCFG_QUEUES_MAX) {
        snprintf(err, errlen, "%s: more than %d queues", file, QCFG_QUEUES_MAX);
        return ARIQ_ERANGE;
    }
    qcfg_queue *q = &c->queues[c->nqueues];
    memset(q, 0, sizeof *q);
    const char *name = cfg_section_name(ini, i);
    if (!ids_valid(name, QCFG_ID_MAX)) { /* it becomes part of Redis keys */
        snprintf(err, errlen,
                 "%s:%d: [queue%s%s] needs a name of 1 to %d letters, digits, '.', '_', '-'",
                 file, cfg_section_line(ini, i), *name ? " " : "", name, QCFG_ID_MAX);
        return ARIQ_EINVAL;
    }
    snprintf(q->name, sizeof q->name, "%s", name);
    int rc = cfg_apply(ini, (int)i, queue_fields, q, err, errlen);
    if (rc == 0)
        rc = check_keys(ini, file, (int)i, q, err, errlen);
    if (rc == 0)
        c->nqueues++;
    return rc;
}

static int from_ini(const cfg *ini, const char *file, qcfg *c, char *err, size_t errlen)
{
    int general = cfg_section_find(ini, "general", "");
    int rc = cfg_apply(ini, general, general_fields, c, err, errlen);
    if (rc)
        return rc;
    if ((rc = check_general(c, file, err, errlen)) != 0)
        return rc;
    c->queues = calloc(cfg_section_count(ini) ? cfg_section_count(ini) : 1, sizeof *c->queues);
    if (!c->queues)
        return ARIQ_ENOMEM;
    for (size_t i = 0; i < cfg_section_count(ini); i++) {
        const char *kind = cfg_section_kind(ini, i);
        if (strcmp(kind, "general") == 0)
            continue;
        if (strcmp(kind, "queue") != 0) {
            snprintf(err, errlen, "%s:%d: unknown section [%s%s%s]: expected [general] or "
                                  "[queue NAME]",
                     file, cfg_section_line(ini, i), kind, *cfg_section_name(ini, i) ? " " : "",
                     cfg_section_name(ini, i));
            return ARIQ_EINVAL;
        }
        if ((rc = apply_queue(ini, file, i, c, err, errlen)) != 0)
            return rc;
    }
    if (c->nqueues == 0) {
        snprintf(err, errlen, "%s: no [queue NAME] section: configure at least one queue", file);
        return ARIQ_EINVAL;
    }
    return 0;
}

static int load(cfg *ini, const char *name, qcfg **out, char *err, size_t errlen)
{
    qcfg *c = calloc(1, sizeof *c);
    if (!c) {
        cfg_free(ini);
        return ARIQ_ENOMEM;
    }
    int rc = from_ini(ini, name, c, err, errlen);
    cfg_free(ini);
    if (rc) {
        qcfg_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int qcfg_load_string(const char *text, const char *name, qcfg **out, char *err,
                     size_t errlen)
{
    cfg *ini = NULL;
    int rc = cfg_load_string(text, name, &ini, err, errlen);
    return rc ? rc : load(ini, name, out, err, errlen);
}

int qcfg_load_file(const char *path, qcfg **out, char *err, size_t errlen)
{
    cfg *ini = NULL;
    int rc = cfg_load_file(path, &ini, err, errlen);
    return rc ? rc : load(ini, path, out, err, errlen);
}
