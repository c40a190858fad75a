#include "aconfig.h"

#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define F(key, type, member, min, max, def, req)                                           \
    {key, type, offsetof(acfg, member), min, max, def, req}
#define ACFG_FILE_MAX (1024 * 1024)
#define SZ(m) ((long)sizeof(((acfg *)0)->m))

/* [general]: every key agentd knows, with its limits and default. */
static const cfg_field general_fields[] = {
    F("listen", CFG_STR, listen, 0, SZ(listen), "127.0.0.1", false),
    F("port", CFG_INT, port, 1, 65535, "8091", false),
    F("tokens", CFG_SECRET, tokens_raw, 0, SZ(tokens_raw), NULL, true),
    F("tls_cert", CFG_STR, tls_cert, 0, SZ(tls_cert), "", false),
    F("tls_key", CFG_STR, tls_key, 0, SZ(tls_key), "", false),
    F("redis_url", CFG_SECRET, redis_url, 0, SZ(redis_url), "redis://127.0.0.1:6379/0", false),
    F("redis_password", CFG_SECRET, redis_password, 0, SZ(redis_password), "", false),
    F("namespace", CFG_ID, namespace_, 0, SZ(namespace_), "ariq", false),
    F("scripts_dir", CFG_STR, scripts_dir, 0, SZ(scripts_dir), "", false),
    F("queue_log", CFG_STR, queue_log, 0, SZ(queue_log), "", false),
    F("queue_log_caller_id_name", CFG_BOOL, queue_log_caller_id_name, 0, 0, "no", false),
    F("queue_log_agents", CFG_STR, queue_log_agents_s, 0, SZ(queue_log_agents_s), "member",
      false),
    F("heartbeat_s", CFG_INT, heartbeat_s, 1, 300, "5", false),
    F("max_body", CFG_INT, max_body, 1024, 16 * 1024 * 1024, "65536", false),
    F("rate_per_s", CFG_DOUBLE, rate_per_s, 0, 100000, "100", false),
    F("log_level", CFG_STR, log_level, 0, SZ(log_level), "info", false),
    F("time_scale", CFG_DOUBLE, time_scale, 0, 1000, "1", false),
    F("action_timeout_ms", CFG_INT, action_timeout_ms, 100, 600000, "5000", false),
    F("max_download", CFG_INT, max_download, 1024, 1024L * 1024 * 1024, "67108864", false),
    F("agentd_id", CFG_ID, agentd_id, 0, SZ(agentd_id), "", false),
    F("snapshot_ms", CFG_INT, snapshot_ms, 10, 60000, "250", false),
    F("service_level_s", CFG_INT, service_level_s, 1, 3600, "20", false),
    F("service_level_window_s", CFG_INT, service_level_window_s, 60, 7 * 86400, "86400", false),
    {NULL, 0, 0, 0, 0, NULL, false},
};

void acfg_free(acfg *c)
{
    free(c);
}

/* The line `key = ...` is on in text (agentd has one section), or 0.
 * config.h keeps no line per key, so checks made after cfg_apply find it
 * here to say "file:line:" as cfg_apply's own errors do. */
static int key_line(const char *text, const char *key)
{
    size_t klen = strlen(key);
    int line = 1;
    for (const char *p = text; p && *p; line++) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, key, klen) == 0) {
            const char *q = p + klen;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=')
                return line;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return 0;
}

/* "file:line: [general] key: why" (line 0: the default was bad, "file:"). */
static int bad(const char *text, const char *file, const char *key, char *err, size_t errlen,
               const char *why)
{
    int line = key_line(text, key);
    if (line)
        snprintf(err, errlen, "%s:%d: [general] %s: %s", file, line, key, why);
    else
        snprintf(err, errlen, "%s: [general] %s: %s", file, key, why);
    return ARIQ_EINVAL;
}

/* Splits tokens_raw at commas; each token trimmed, ACFG_TOKEN_MIN..MAX
 * visible ASCII bytes. Never copies a token into err. */
static int split_tokens(acfg *c, char *why, size_t whylen)
{
    char *p = c->tokens_raw;
    c->ntokens = 0;
    for (;;) {
        char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        for (size_t i = 0; i < n; i++)
            if (p[i] <= ' ' || p[i] > '~') {
                snprintf(why, whylen, "token %zu holds a character other than visible ASCII",
                         c->ntokens + 1);
                return ARIQ_EINVAL;
            }
        if (n < ACFG_TOKEN_MIN || n > ACFG_TOKEN_MAX) {
            snprintf(why, whylen, "token %zu must be %d to %d characters (it is %zu)",
                     c->ntokens + 1, ACFG_TOKEN_MIN, ACFG_TOKEN_MAX, n);
            return ARIQ_EINVAL;
        }
        if (c->ntokens == ACFG_TOKENS_MAX) {
            snprintf(why, whylen, "more than %d tokens", ACFG_TOKENS_MAX);
            return ARIQ_EINVAL;
        }
        memcpy(c->tokens[c->ntokens], p, n);
        c->tokens[c->ntokens++][n] = '\0';
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* The default agentd_id: hostname-pid, the hostname cut at its first dot
 * and reduced to [A-Za-z0-9_-], so that it can name a Redis key. */
static void default_agentd_id(acfg *c)
{
    char host[64] = "agentd";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "agentd");
    host[sizeof host - 1] = '\0';
    host[strcspn(host, ".")] = '\0';
    for (char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            *p = '_';
    snprintf(c->agentd_id, sizeof c->agentd_id, "%.40s-%ld", host[0] ? host : "agentd",
             (long)getpid());
}

static int check_general(const char *text, const char *file, acfg *c, char *err, size_t errlen)
{
    char why[256], serr[256];
    unsigned char addr[16];
    log_level lvl;
    store_config sc;
    store_config_init(&sc);
    if (split_tokens(c, why, sizeof why) != 0)
        return bad(text, file, "tokens", err, errlen, why);
    if (inet_pton(AF_INET, c->listen, addr) != 1 && inet_pton(AF_INET6, c->listen, addr) != 1) {
        snprintf(why, sizeof why, "'%s' is not a numeric IPv4 or IPv6 address", c->listen);
        return bad(text, file, "listen", err, errlen, why);
    }
    if (!c->tls_cert[0] != !c->tls_key[0])
        return bad(text, file, c->tls_cert[0] ? "tls_cert" : "tls_key", err, errlen,
                   c->tls_cert[0] ? "needs tls_key too (set both or neither)"
                                  : "needs tls_cert too (set both or neither)");
    if (store_config_set_url(&sc, c->redis_url, serr, sizeof serr) != 0)
        return bad(text, file, "redis_url", err, errlen, serr); /* never holds the password */
    if (strcmp(c->queue_log_agents_s, "member") == 0)
        c->queue_log_agents = QLOG_AGENTS_MEMBER;
    else if (strcmp(c->queue_log_agents_s, "agent") == 0)
        c->queue_log_agents = QLOG_AGENTS_AGENT;
    else if (strcmp(c->queue_log_agents_s, "both") == 0)
        c->queue_log_agents = QLOG_AGENTS_BOTH;
    else {
        snprintf(why, sizeof why, "'%s' is not member, agent or both", c->queue_log_agents_s);
        return bad(text, file, "queue_log_agents", err, errlen, why);
    }
    if (!c->agentd_id[0])
        default_agentd_id(c);
    if (log_level_parse(c->log_level, &lvl) != 0) {
        snprintf(why, sizeof why, "'%s' is not debug, info, warn or error", c->log_level);
        return bad(text, file, "log_level", err, errlen, why);
    }
    return 0;
}

static int from_ini(const cfg *ini, const char *text, const char *file, acfg *c, char *err,
                    size_t errlen)
{
    for (size_t i = 0; i < cfg_section_count(ini); i++)
        if (strcmp(cfg_section_kind(ini, i), "general") != 0 ||
            *cfg_section_name(ini, i)) {
            snprintf(err, errlen, "%s:%d: unknown section [%s%s%s]: agentd has only [general]",
                     file, cfg_section_line(ini, i), cfg_section_kind(ini, i),
                     *cfg_section_name(ini, i) ? " " : "", cfg_section_name(ini, i));
            return ARIQ_EINVAL;
        }
    int general = cfg_section_find(ini, "general", "");
    if (general < 0) {
        snprintf(err, errlen, "%s: no [general] section (it needs at least tokens)", file);
        return ARIQ_EINVAL;
    }
    int rc = cfg_apply(ini, general, general_fields, c, err, errlen);
    return rc ? rc : check_general(text, file, c, err, errlen);
}

static int load(cfg *ini, const char *text, const char *name, acfg **out, char *err,
                size_t errlen)
{
    acfg *c = calloc(1, sizeof *c);
    if (!c) {
        cfg_free(ini);
        return ARIQ_ENOMEM;
    }
    int rc = from_ini(ini, text, name, c, err, errlen);
    cfg_free(ini);
    if (rc) {
        acfg_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int acfg_load_string(const char *text, const char *name, acfg **out, char *err, size_t errlen)
{
    cfg *ini = NULL;
    int rc = cfg_load_string(text, name, &ini, err, errlen);
    return rc ? rc : load(ini, text, name, out, err, errlen);
}

/* Read whole, then parsed from memory: the checks need the text for lines. */
int acfg_load_file(const char *path, acfg **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %m", path);
        return ARIQ_ENOTFOUND;
    }
    char *text = malloc(ACFG_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, ACFG_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!text)
        return ARIQ_ENOMEM;
    if (n > ACFG_FILE_MAX) {
        free(text);
        snprintf(err, errlen, "%s: larger than %d bytes", path, ACFG_FILE_MAX);
        return ARIQ_ERANGE;
    }
    text[n] = '\0';
    int rc = acfg_load_string(text, path, out, err, errlen);
    free(text);
    return rc;
}
