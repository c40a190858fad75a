/* store_scripts.c - the connect handshake and the Lua scripts.
 *
 * Scripts are read from disk once (store_new), so a missing or unreadable
 * schema directory is a config error at start, not a failure on some later
 * reconnect. They are loaded into Redis on every connect, because a restarted
 * or failed-over Redis has an empty script cache. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/ids.h"
#include "core/log.h"
#include "store/store_int.h"

#define MOD "store"
/* keys + args of one call: queue.lua reconcile names up to 200000 live channels
 * and 100000 bridges of 3 (queue_store.h QS_ALIVE_MAX, QS_KEEP_MAX) */
#define SCRIPT_ARGS_MAX (1 << 20)

/* The repo's redis-schema/: from ARIQ_SCHEMA_DIR when the build defines it,
 * else found from this file's own path (CMake compiles with absolute paths),
 * else relative to the working directory. */
static void default_scripts_dir(char *out, size_t len)
{
#ifdef ARIQ_SCHEMA_DIR
    snprintf(out, len, "%s", ARIQ_SCHEMA_DIR);
#else
    const char *f = __FILE__;
    const char *tail = strstr(f, "shared/store/");
    if (f[0] == '/' && tail)
        snprintf(out, len, "%.*sredis-schema", (int)(tail - f), f);
    else
        snprintf(out, len, "redis-schema");
#endif
}

/* Reads a whole script file, bounded by STORE_SCRIPT_SIZE_MAX. */
static int read_file(const char *path, char **body, size_t *len)
{
    char *buf = NULL;
    FILE *fp = fopen(path, "rb");
    struct stat st;
    if (!fp || fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > STORE_SCRIPT_SIZE_MAX)
        goto fail;
    buf = malloc((size_t)st.st_size + 1);
    if (!buf || fread(buf, 1, (size_t)st.st_size, fp) != (size_t)st.st_size)
        goto fail;
    buf[st.st_size] = '\0';
    fclose(fp);
    *body = buf;
    *len = (size_t)st.st_size;
    return 0;
fail:
    free(buf);
    if (fp)
        fclose(fp);
    return ARIQ_EINVAL;
}

/* Adds dir/<fname> as script <stem>. */
static int script_add(store *s, const char *dir, const char *fname, size_t stemlen, char *err,
                      size_t errlen)
{
    if (s->nscripts >= STORE_SCRIPTS_MAX) {
        snprintf(err, errlen, "more than %d scripts in %s", STORE_SCRIPTS_MAX, dir);
        return ARIQ_ERANGE;
    }
    store_script_ent *e = &s->scripts[s->nscripts];
    memset(e, 0, sizeof *e);
    if (stemlen > STORE_ID_MAX) {
        snprintf(err, errlen, "script name too long: %s", fname);
        return ARIQ_EINVAL;
    }
    memcpy(e->name, fname, stemlen);
    e->name[stemlen] = '\0';
    if (!ids_valid(e->name, STORE_ID_MAX)) {
        snprintf(err, errlen, "script file name must be [A-Za-z0-9._-].lua: %s", fname);
        return ARIQ_EINVAL;
    }
    char path[STORE_PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", dir, fname);
    if (read_file(path, &e->body, &e->len) != 0) {
        snprintf(err, errlen, "cannot read script %s (missing, not a file, or over %d bytes)",
                 path, STORE_SCRIPT_SIZE_MAX);
        return ARIQ_EINVAL;
    }
    s->nscripts++;
    return 0;
}

static int script_cmp(const void *a, const void *b)
{
    return strcmp(((const store_script_ent *)a)->name, ((const store_script_ent *)b)->name);
}

int store_scripts_read(store *s, char *err, size_t errlen)
{
    char dir[STORE_PATH_MAX];
    char ebuf[STORE_PATH_MAX + 512];
    if (s->cfg.scripts_dir[0])
        snprintf(dir, sizeof dir, "%s", s->cfg.scripts_dir);
    else
        default_scripts_dir(dir, sizeof dir);
    s->scripts = calloc(STORE_SCRIPTS_MAX, sizeof *s->scripts);
    if (!s->scripts)
        return ARIQ_ENOMEM;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(ebuf, sizeof ebuf, "cannot open scripts dir %s: %s", dir, strerror(errno));
        goto fail;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n <= 4 || strcmp(de->d_name + n - 4, ".lua") != 0)
            continue;
        if (script_add(s, dir, de->d_name, n - 4, ebuf, sizeof ebuf) != 0) {
            closedir(d);
            goto fail;
        }
    }
    closedir(d);
    qsort(s->scripts, (size_t)s->nscripts, sizeof *s->scripts, script_cmp);
    return 0;
fail:
    if (err && errlen)
        snprintf(err, errlen, "%s", ebuf);
    LOG_E(MOD, "%s", ebuf);
    return ARIQ_EINVAL;
}

void store_scripts_free(store *s)
{
    for (int i = 0; s->scripts && i < s->nscripts; i++)
        free(s->scripts[i].body);
    free(s->scripts);
    s->scripts = NULL;
    s->nscripts = 0;
}

static int script_find(const store *s, const char *name)
{
    for (int i = 0; i < s->nscripts; i++)
        if (strcmp(s->scripts[i].name, name) == 0)
            return i;
    return -1;
}

const char *store_script_sha(const store *s, const char *name)
{
    int i = script_find(s, name);
    return i >= 0 && s->scripts[i].sha[0] ? s->scripts[i].sha : NULL;
}

/* ---- handshake ------------------------------------------------------------ */

/* A handshake step failed: say which and why (Redis's error text; it never
 * echoes a password), then drop and retry with backoff. */
static void hs_failed(store_conn *c, const char *step, const redisReply *r)
{
    store *s = c->s;
    store_set_err(s, "redis %s on %s:%d failed: %s", step, s->cfg.host, s->cfg.port,
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    LOG_E(MOD, "%s", s->errmsg);
    store_conn_fail(c, s->errmsg);
}

static void hs_auth_cb(store *s, const redisReply *r, void *pd)
{
    (void)s;
    if (!r) /* connection lost: already handled */
        return;
    if (r->type != REDIS_REPLY_STATUS)
        hs_failed(pd, "AUTH (check the password)", r);
    else
        store_conn_hs_done(pd);
}

static void hs_select_cb(store *s, const redisReply *r, void *pd)
{
    (void)s;
    if (!r)
        return;
    if (r->type != REDIS_REPLY_STATUS)
        hs_failed(pd, "SELECT", r);
    else
        store_conn_hs_done(pd);
}

/* Without a password configured, a server that needs one fails here with
 * NOAUTH: the message says so. */
static void hs_ping_cb(store *s, const redisReply *r, void *pd)
{
    (void)s;
    if (!r)
        return;
    if (r->type != REDIS_REPLY_STATUS)
        hs_failed(pd, "PING", r);
    else
        store_conn_hs_done(pd);
}

static bool is_sha(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING && r->len == 40;
}

static void hs_script_cb(store *s, const redisReply *r, void *pd)
{
    store_script_ent *e = pd;
    if (!r)
        return;
    if (!is_sha(r)) {
        char step[STORE_ID_MAX + 32];
        snprintf(step, sizeof step, "SCRIPT LOAD %s.lua", e->name);
        hs_failed(&s->cmd, step, r);
        return;
    }
    memcpy(e->sha, r->str, 40);
    e->sha[40] = '\0';
    store_conn_hs_done(&s->cmd);
}

static int send_auth(store_conn *c)
{
    const store_config *cfg = &c->s->cfg;
    const char *argv[3] = {"AUTH", cfg->username, cfg->password};
    if (cfg->username[0])
        return store_conn_send(c, 3, argv, NULL, hs_auth_cb, c, -1);
    argv[1] = cfg->password;
    return store_conn_send(c, 2, argv, NULL, hs_auth_cb, c, -1);
}

static int send_select(store_conn *c)
{
    char db[16];
    snprintf(db, sizeof db, "%d", c->s->cfg.db);
    const char *argv[2] = {"SELECT", db};
    return store_conn_send(c, 2, argv, NULL, hs_select_cb, c, -1);
}

static int send_script_load(store_conn *c, store_script_ent *e, store_cb cb)
{
    const char *argv[3] = {"SCRIPT", "LOAD", e->body};
    size_t lens[3] = {6, 4, e->len};
    return store_conn_send(c, 3, argv, lens, cb, e, -1);
}

/* Pipelines the whole handshake: AUTH first (nothing else is allowed before
 * it), then SELECT, then every script, then a PING so there is always at
 * least one step. hs_pending counts the replies still to come. */
int store_handshake_send(store_conn *c)
{
    store *s = c->s;
    int rc = 0;
    c->hs_pending = 0;
    if (s->cfg.password[0] && (rc = send_auth(c)) == 0)
        c->hs_pending++;
    if (rc == 0 && s->cfg.db != 0 && (rc = send_select(c)) == 0)
        c->hs_pending++;
    for (int i = 0; rc == 0 && i < s->nscripts; i++)
        if ((rc = send_script_load(c, &s->scripts[i], hs_script_cb)) == 0)
            c->hs_pending++;
    const char *ping[1] = {"PING"};
    if (rc == 0 && (rc = store_conn_send(c, 1, ping, NULL, hs_ping_cb, c, -1)) == 0)
        c->hs_pending++;
    if (rc != 0)
        store_set_err(s, "cannot send the handshake: %s", ariq_strerror(rc));
    return rc;
}

/* ---- calling scripts ------------------------------------------------------ */

static void reload_cb(store *s, const redisReply *r, void *pd)
{
    (void)s;
    store_script_ent *e = pd;
    if (r && is_sha(r))
        LOG_I(MOD, "script=%s reloaded after NOSCRIPT", e->name);
    else if (r)
        LOG_W(MOD, "script=%s reload after NOSCRIPT failed: %s", e->name,
              r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
}

bool store_script_retry(store_conn *c, store_req *req, const redisReply *r)
{
    if (req->script < 0 || req->retried || r->type != REDIS_REPLY_ERROR || !r->str ||
        strncmp(r->str, "NOSCRIPT", 8) != 0 || c->state != CONN_READY)
        return false;
    store_script_ent *e = &c->s->scripts[req->script];
    if (send_script_load(c, e, reload_cb) != 0)
        return false;
    return store_conn_resend(c, req) == 0;
}

int store_script(store *s, const char *name, int nkeys, const char **keys, int nargs,
                 const char **args, store_cb cb, void *privdata)
{
    int rc = store_can_send(s);
    if (rc != 0)
        return rc;
    if (!name || nkeys < 0 || nargs < 0 || nkeys + nargs > SCRIPT_ARGS_MAX ||
        (nkeys && !keys) || (nargs && !args))
        return ARIQ_EINVAL;
    int idx = script_find(s, name);
    if (idx < 0)
        return ARIQ_ENOTFOUND;
    const char **argv = malloc((size_t)(3 + nkeys + nargs) * sizeof *argv);
    if (!argv)
        return ARIQ_ENOMEM;
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = s->scripts[idx].sha;
    argv[2] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];
    for (int i = 3; i < 3 + nkeys + nargs; i++)
        if (!argv[i])
            rc = ARIQ_EINVAL;
    if (rc == 0)
        rc = store_conn_send(&s->cmd, 3 + nkeys + nargs, argv, NULL, cb, privdata, idx);
    free(argv);
    return rc;
}
