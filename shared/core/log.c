#include "core/log.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>

static atomic_int g_level = LOG_LVL_INFO;
static pthread_mutex_t g_sink_lock = PTHREAD_MUTEX_INITIALIZER;
static log_sink_fn g_sink;
static void *g_sink_ud;

static const char *const level_names[] = {"debug", "info", "warn", "error", "none"};

void log_set_level(log_level lvl)
{
    atomic_store(&g_level, (int)lvl);
}

log_level log_get_level(void)
{
    return (log_level)atomic_load(&g_level);
}

int log_level_parse(const char *s, log_level *out)
{
    for (size_t i = 0; s && i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return ARIQ_EINVAL;
}

void log_init_from_env(void)
{
    log_level lvl;
    if (log_level_parse(getenv("ARIQ_LOG_LEVEL"), &lvl) == 0)
        log_set_level(lvl);
}

void log_set_sink(log_sink_fn fn, void *ud)
{
    pthread_mutex_lock(&g_sink_lock);
    g_sink = fn;
    g_sink_ud = ud;
    pthread_mutex_unlock(&g_sink_lock);
}

/* Writes "2026-11-25T03:02:02.123Z" into buf. */
static size_t format_time(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000L);
    return n + (m > 0 ? (size_t)m : 0);
}

void log_write(log_level lvl, const char *mod, const char *fmt, ...)
{
    if ((int)lvl < atomic_load(&g_level) || lvl >= LOG_LVL_NONE)
        return;
    char line[2048];
    size_t n = format_time(line, sizeof line);
    int m = snprintf(line + n, sizeof line - n, " level=%s mod=%s ", level_names[lvl],
                     mod ? mod : "-");
    if (m > 0)
        n += (size_t)m;
    va_list ap;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (m > 0)
        n += (size_t)m;
    if (n > sizeof line - 2)
        n = sizeof line - 2; /* truncated: keep the line whole */
    for (size_t i = 0; i < n; i++) /* one event, one line */
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n] = '\0';

    pthread_mutex_lock(&g_sink_lock);
    if (g_sink) {
        g_sink(lvl, line, g_sink_ud);
    } else {
        line[n] = '\n';
        ssize_t w = write(STDERR_FILENO, line, n + 1);
        (void)w;
    }
    pthread_mutex_unlock(&g_sink_lock);
}

char *log_redact_url(const char *url, char *out, size_t outlen)
{
    if (!outlen)
        return out;
    snprintf(out, outlen, "%s", url ? url : "");
    char *scheme = strstr(out, "://");
    char *auth = scheme ? scheme + 3 : out;
    char *at = strchr(auth, '@');
    char *slash = strchr(auth, '/');
    if (!at || (slash && slash < at))
        return out;
    char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (!colon)
        return out;
    char tail[1024];
    snprintf(tail, sizeof tail, "%s", at);
    snprintf(colon + 1, outlen - (size_t)(colon + 1 - out), "***%s", tail);
    return out;
}
