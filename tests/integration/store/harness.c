/* harness.c - see harness.h. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

/* ---- log capture (the sink runs under the log lock) ---------------------- */

#define MAX_LINES 4096
static char *g_lines[MAX_LINES];
static int g_nlines;
static pthread_mutex_t g_lines_lock = PTHREAD_MUTEX_INITIALIZER;

static void sink(log_level lvl, const char *line, void *ud)
{
    bool echo = ud != NULL;
    pthread_mutex_lock(&g_lines_lock);
    if (g_nlines < MAX_LINES)
        g_lines[g_nlines++] = strdup(line);
    pthread_mutex_unlock(&g_lines_lock);
    if (echo && lvl >= LOG_LVL_INFO)
        fprintf(stderr, "%s\n", line);
}

/* The sink's ud says whether to echo: any non-NULL pointer does. */
void sfx_log_capture(bool echo)
{
    static int on;
    log_set_sink(sink, echo ? &on : NULL);
}

static void lines_clear(void)
{
    pthread_mutex_lock(&g_lines_lock);
    for (int i = 0; i < g_nlines; i++)
        free(g_lines[i]);
    g_nlines = 0;
    pthread_mutex_unlock(&g_lines_lock);
}

int sfx_lines_count(void)
{
    pthread_mutex_lock(&g_lines_lock);
    int n = g_nlines;
    pthread_mutex_unlock(&g_lines_lock);
    return n;
}

const char *sfx_line(int i)
{
    pthread_mutex_lock(&g_lines_lock);
    const char *l = i >= 0 && i < g_nlines ? g_lines[i] : NULL;
    pthread_mutex_unlock(&g_lines_lock);
    return l;
}

int sfx_lines_matching(int from, const char *a, const char *b, const char *c)
{
    int n = 0;
    pthread_mutex_lock(&g_lines_lock);
    for (int i = from; i < g_nlines; i++)
        n += strstr(g_lines[i], a) && (!b || strstr(g_lines[i], b)) &&
             (!c || strstr(g_lines[i], c));
    pthread_mutex_unlock(&g_lines_lock);
    return n;
}

/* ---- fixture --------------------------------------------------------------- */

void sfx_on_ready(store *s, void *ud)
{
    sfx *x = ud;
    assert_ptr_equal(s, x->s);
    x->ready++;
    if (x->on_ready_hook)
        x->on_ready_hook(x);
}

void sfx_on_down(store *s, const char *reason, void *ud)
{
    (void)s;
    sfx *x = ud;
    x->down++;
    snprintf(x->down_reason, sizeof x->down_reason, "%s", reason);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

void sfx_init(sfx *x)
{
    x->base = event_base_new();
    x->tick = event_new(x->base, -1, EV_PERSIST, tick_cb, NULL);
    struct timeval tv = {0, 5000};
    event_add(x->tick, &tv);
    store_config_init(&x->cfg);
    x->cfg.backoff_min_ms = 50;
    x->cfg.backoff_max_ms = 400;
    x->cfg.connect_timeout_ms = 2000;
}

int sfx_fini(sfx *x)
{
    store_free(x->s);
    x->s = NULL;
    event_free(x->tick);
    int left = event_base_get_num_events(x->base, EVENT_BASE_COUNT_ADDED);
    event_base_free(x->base);
    log_set_sink(NULL, NULL);
    log_set_level(LOG_LVL_INFO);
    lines_clear();
    return left;
}

bool sfx_count_reply(sfx *x, const redisReply *r)
{
    if (!r) {
        x->nulls++;
        return false;
    }
    x->replies++;
    return true;
}

void sfx_new_store(sfx *x)
{
    store_callbacks cbs = {.on_ready = sfx_on_ready, .on_down = sfx_on_down};
    char err[256] = "";
    int rc = store_new(x->base, &x->cfg, &cbs, x, &x->s, err, sizeof err);
    if (rc != 0)
        fail_msg("store_new: %s %s", ariq_strerror(rc), err);
}

bool sfx_wait(sfx *x, const int *counter, int target, int ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)ms;
    while (*counter < target && clock_mono_ms() < end)
        event_base_loop(x->base, EVLOOP_ONCE);
    return *counter >= target;
}

void sfx_run_for(sfx *x, int ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)ms;
    while (clock_mono_ms() < end)
        event_base_loop(x->base, EVLOOP_ONCE);
}
