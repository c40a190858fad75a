/* log.h - structured, leveled logging.
 *
 * One line per call: `TIME level=LEVEL mod=MODULE MESSAGE`, where MESSAGE is by
 * convention key=value fields ("chan=%s from=%s to=%s"). A line is written with
 * one write(2), so lines from the lws service thread and the event loop never
 * interleave. Values that may hold credentials go through log_redact_url()
 * first: a password never reaches a log.
 *
 * Thread-safe. The level and sink are process-wide. */
#ifndef ARIQ_CORE_LOG_H
#define ARIQ_CORE_LOG_H

#include <stddef.h>

typedef enum {
    LOG_LVL_DEBUG = 0,
    LOG_LVL_INFO,
    LOG_LVL_WARN,
    LOG_LVL_ERROR,
    LOG_LVL_NONE, /* nothing is written */
} log_level;

/* A sink receives each finished line (no trailing newline). `line` is borrowed
 * for the duration of the call. The sink runs on the logging thread. */
typedef void (*log_sink_fn)(log_level lvl, const char *line, void *ud);

void log_set_level(log_level lvl);
log_level log_get_level(void);

/* Parses "debug", "info", "warn", "error", "none". Returns 0, or ARIQ_EINVAL
 * and leaves *out alone. */
int log_level_parse(const char *s, log_level *out);

/* Reads ARIQ_LOG_LEVEL from the environment if set and valid. */
void log_init_from_env(void);

/* Replaces the sink (NULL restores stderr). */
void log_set_sink(log_sink_fn fn, void *ud);

void log_write(log_level lvl, const char *mod, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies `url` into `out` with any password in its userinfo replaced by "***"
 * ("http://ari:secret@h/" -> "http://ari:***@h/"). Always NUL-terminates.
 * Returns `out`. */
char *log_redact_url(const char *url, char *out, size_t outlen);

#define LOG_D(mod, ...) log_write(LOG_LVL_DEBUG, (mod), __VA_ARGS__)
#define LOG_I(mod, ...) log_write(LOG_LVL_INFO, (mod), __VA_ARGS__)
#define LOG_W(mod, ...) log_write(LOG_LVL_WARN, (mod), __VA_ARGS__)
#define LOG_E(mod, ...) log_write(LOG_LVL_ERROR, (mod), __VA_ARGS__)

#endif
