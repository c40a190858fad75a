#include "redis_proc.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define REDIS_DEFAULT_START_MS 10000

static const char *redis_binary(void)
{
    const char *b = getenv("ARIQ_REDIS_SERVER");
    return b && *b ? b : "/usr/bin/redis-server";
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* True once the server answers PING with PONG. A server that is still
 * loading its AOF answers -LOADING, which is not ready yet. */
static bool answers_ping(const redis_proc *r)
{
    redisContext *c = redis_proc_connect(r);
    if (!c)
        return false;
    redisReply *rep = redisCommand(c, "PING");
    bool ok = rep && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return ok;
}

/* The command line for *r. Every string argv points to lives in *r, in
 * port / master_port (the caller's), or is a literal. Returns argc. */
static int build_argv(const redis_proc *r, const char **argv, const char *port,
                      const char *master_port)
{
    int n = 0;
    argv[n++] = redis_binary();
    if (r->sentinel) { /* everything else is in its config file */
        argv[n++] = r->conf;
        argv[n++] = "--sentinel";
        return n;
    }
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--dir";
    argv[n++] = r->dir;
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--logfile";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = r->aof ? "yes" : "no";
    if (r->aof) {
        argv[n++] = "--appendfsync";
        argv[n++] = "everysec";
    }
    if (r->password[0]) {
        argv[n++] = "--requirepass";
        argv[n++] = r->password;
    }
    if (r->replicaof_port) {
        argv[n++] = "--replicaof";
        argv[n++] = "127.0.0.1";
        argv[n++] = master_port;
        if (r->password[0]) {
            argv[n++] = "--masterauth";
            argv[n++] = r->password;
        }
    }
    return n;
}

/* Starts the child with the configuration in *r and waits for PING. */
static int spawn(redis_proc *r)
{
    char port[16], master_port[16];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(master_port, sizeof master_port, "%d", r->replicaof_port);
    const char *argv[32];
    argv[build_argv(r, argv, port, master_port)] = NULL;

    if (proc_start(&r->proc, argv, r->logpath) != 0) {
        fprintf(stderr, "redis_proc: cannot start %s\n", argv[0]);
        return -1;
    }
    if (proc_wait_port(&r->proc, r->port, r->start_timeout_ms) != 0)
        goto fail;
    for (int waited = 0; waited <= r->start_timeout_ms; waited += 10) {
        if (answers_ping(r))
            return 0;
        if (!proc_alive(&r->proc))
            break;
        sleep_ms(10);
    }
fail:
    fprintf(stderr, "redis_proc: redis-server on port %d did not come up (log: %s)\n",
            r->port, r->logpath);
    proc_stop(&r->proc, SIGKILL, 1000);
    return -1;
}

int redis_proc_start(redis_proc *r, const redis_opts *o)
{
    memset(r, 0, sizeof *r);
    r->port = proc_free_port();
    r->aof = o && o->aof;
    r->start_timeout_ms = o && o->start_timeout_ms > 0 ? o->start_timeout_ms
                                                       : REDIS_DEFAULT_START_MS;
    if (o && o->password) {
        if (strlen(o->password) >= sizeof r->password) {
            fprintf(stderr, "redis_proc: password too long\n");
            return -1;
        }
        snprintf(r->password, sizeof r->password, "%s", o->password);
    }
    r->replicaof_port = o ? o->replicaof_port : 0;
    char name[64];
    snprintf(name, sizeof name, "redis-%d", r->port);
    proc_tmpdir(name, r->dir, sizeof r->dir);
    snprintf(r->logpath, sizeof r->logpath, "%s/redis.log", r->dir);
    return spawn(r);
}

/* Writes the sentinel's config file. Passwords go in double quotes: the
 * tests' passwords hold no quote or backslash. */
static int write_sentinel_conf(const redis_proc *r, const sentinel_opts *o)
{
    const char *name = o->master_name ? o->master_name : "mymaster";
    FILE *fp = fopen(r->conf, "w");
    if (!fp)
        return -1;
    fprintf(fp,
            "port %d\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\ndir \"%s\"\n"
            "sentinel monitor %s 127.0.0.1 %d %d\n"
            "sentinel down-after-milliseconds %s %d\n"
            "sentinel failover-timeout %s %d\n",
            r->port, r->dir, name, o->master_port, o->quorum > 0 ? o->quorum : 2, name,
            o->down_after_ms > 0 ? o->down_after_ms : 500, name,
            o->failover_timeout_ms > 0 ? o->failover_timeout_ms : 2000);
    if (o->master_password && *o->master_password)
        fprintf(fp, "sentinel auth-pass %s \"%s\"\n", name, o->master_password);
    if (r->password[0])
        fprintf(fp, "requirepass \"%s\"\nsentinel sentinel-pass \"%s\"\n", r->password,
                r->password);
    return fclose(fp) == 0 ? 0 : -1;
}

int redis_proc_start_sentinel(redis_proc *r, const sentinel_opts *o)
{
    memset(r, 0, sizeof *r);
    r->port = proc_free_port();
    r->sentinel = true;
    r->start_timeout_ms = o->start_timeout_ms > 0 ? o->start_timeout_ms : REDIS_DEFAULT_START_MS;
    if (o->password) {
        if (strlen(o->password) >= sizeof r->password) {
            fprintf(stderr, "redis_proc: password too long\n");
            return -1;
        }
        snprintf(r->password, sizeof r->password, "%s", o->password);
    }
    char name[64];
    snprintf(name, sizeof name, "sentinel-%d", r->port);
    proc_tmpdir(name, r->dir, sizeof r->dir);
    snprintf(r->logpath, sizeof r->logpath, "%s/sentinel.log", r->dir);
    snprintf(r->conf, sizeof r->conf, "%s/sentinel.conf", r->dir);
    if (write_sentinel_conf(r, o) != 0) {
        fprintf(stderr, "redis_proc: cannot write %s\n", r->conf);
        return -1;
    }
    return spawn(r);
}

/* The integer value of `field` in a SENTINEL MASTER reply (a flat list of
 * field, value), or -1. */
static long long master_field(const redisReply *rep, const char *field)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i + 1 < rep->elements; i += 2)
        if (rep->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(rep->element[i]->str, field) == 0 &&
            rep->element[i + 1]->type == REDIS_REPLY_STRING)
            return atoll(rep->element[i + 1]->str);
    return -1;
}

int redis_proc_sentinel_wait(const redis_proc *r, const char *master, int replicas, int peers,
                             int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        redisReply *rep = redis_proc_cmd(r, "SENTINEL MASTER %s", master);
        bool ok = master_field(rep, "num-slaves") >= replicas &&
                  master_field(rep, "num-other-sentinels") >= peers;
        if (rep)
            freeReplyObject(rep);
        if (ok)
            return 0;
        sleep_ms(50);
    }
    fprintf(stderr, "redis_proc: sentinel on port %d: master %s without %d replicas and %d peers "
                    "after %d ms (log: %s)\n",
            r->port, master, replicas, peers, timeout_ms, r->logpath);
    return -1;
}

int redis_proc_stop(redis_proc *r, int sig)
{
    if (r->proc.pid <= 0)
        return 0;
    return proc_stop(&r->proc, sig, 5000) == -1 ? -1 : 0;
}

int redis_proc_restart(redis_proc *r)
{
    if (redis_proc_stop(r, SIGKILL) != 0)
        return -1;
    return spawn(r);
}

redisContext *redis_proc_connect(const redis_proc *r)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (!c || c->err)
        goto fail;
    redisSetTimeout(c, tv);
    if (r->password[0]) {
        redisReply *rep = redisCommand(c, "AUTH %s", r->password);
        bool ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep)
            freeReplyObject(rep);
        if (!ok)
            goto fail;
    }
    return c;
fail:
    if (c)
        redisFree(c);
    return NULL;
}

redisReply *redis_proc_cmd(const redis_proc *r, const char *fmt, ...)
{
    redisContext *c = redis_proc_connect(r);
    if (!c)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return rep;
}

/* Percent-encodes everything but RFC 3986 unreserved characters. */
static void pct_encode(const char *in, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < len; in++) {
        unsigned char ch = (unsigned char)*in;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

const char *redis_proc_url(const redis_proc *r, int db, char *buf, size_t len)
{
    if (!r->password[0]) {
        snprintf(buf, len, "redis://127.0.0.1:%d/%d", r->port, db);
        return buf;
    }
    char enc[3 * sizeof r->password + 1];
    pct_encode(r->password, enc, sizeof enc);
    snprintf(buf, len, "redis://:%s@127.0.0.1:%d/%d", enc, r->port, db);
    return buf;
}
