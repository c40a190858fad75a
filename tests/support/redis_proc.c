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

/* Starts the child with the configuration in *r and waits for PING. The
 * argument list is built on the stack: every string it points to lives in *r
 * or is a literal. */
static int spawn(redis_proc *r)
{
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    const char *argv[32];
    int n = 0;
    argv[n++] = redis_binary();
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
    argv[n] = NULL;

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
    char name[64];
    snprintf(name, sizeof name, "redis-%d", r->port);
    proc_tmpdir(name, r->dir, sizeof r->dir);
    snprintf(r->logpath, sizeof r->logpath, "%s/redis.log", r->dir);
    return spawn(r);
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
