/* See harness.h. cmocka asserts stay in the tests; this file only records. */
#include "harness.h"
#include "core/clock.h"
#include "core/log.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void on_event(ari_stream *s, const ari_event *ev, void *ud)
{
    seen *w = ud;
    (void)s;
    if (!pthread_equal(pthread_self(), w->loop_thread))
        w->wrong_thread = true;
    if (w->nevents < SEEN_MAX) {
        w->types[w->nevents] = ev->type;
        snprintf(w->chan_ids[w->nevents], sizeof w->chan_ids[0], "%s",
                 ev->has_channel ? ev->channel.id : "");
    }
    w->nevents++;
    w->type_count[ev->type]++;
    if (ev->type == ARI_EV_STASIS_START) {
        w->nargs = ev->nargs;
        for (size_t i = 0; i < ev->nargs && i < 4; i++)
            snprintf(w->args[i], sizeof w->args[i], "%s", ev->args[i]);
        snprintf(w->caller_number, sizeof w->caller_number, "%s",
                 ev->channel.caller_number);
        w->start_state = ev->channel.state;
    }
    if (ev->type == ARI_EV_STASIS_START && ev->nargs > 0)
        snprintf(w->first_arg, sizeof w->first_arg, "%s", ev->args[0]);
    if (ev->has_channel)
        snprintf(w->last_chan, sizeof w->last_chan, "%s", ev->channel.id);
    if (ev->type == ARI_EV_CHANNEL_DTMF_RECEIVED && strlen(w->digits) < 15)
        w->digits[strlen(w->digits)] = ev->digit;
    if (w->free_in_event) {
        ari_stream_free(w->stream);
        w->stream = NULL;
    }
}

void on_connected(ari_stream *s, void *ud)
{
    seen *w = ud;
    (void)s;
    if (!pthread_equal(pthread_self(), w->loop_thread))
        w->wrong_thread = true;
    w->connected++;
    if (w->t_down && !w->t_up_again)
        w->t_up_again = clock_mono_ms();
}

void on_disconnected(ari_stream *s, const char *reason, void *ud)
{
    seen *w = ud;
    (void)s;
    if (!pthread_equal(pthread_self(), w->loop_thread))
        w->wrong_thread = true;
    if (w->disconnected < 16)
        w->t_downs[w->disconnected] = clock_mono_ms();
    w->disconnected++;
    if (!w->t_down)
        w->t_down = clock_mono_ms();
    snprintf(w->reason, sizeof w->reason, "%s", reason);
}

/* ---- captured logs ---------------------------------------------------------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[65536];
static size_t log_len;

void log_capture(log_level lvl, const char *line, void *ud)
{
    (void)lvl;
    (void)ud;
    pthread_mutex_lock(&log_mu);
    size_t n = strlen(line);
    if (log_len + n + 2 < sizeof log_buf) {
        memcpy(log_buf + log_len, line, n);
        log_len += n;
        log_buf[log_len++] = '\n';
        log_buf[log_len] = '\0';
    }
    pthread_mutex_unlock(&log_mu);
}

void log_dump(void)
{
    pthread_mutex_lock(&log_mu);
    print_message("---- captured log ----\n%s----\n", log_buf);
    pthread_mutex_unlock(&log_mu);
}

bool log_has(const char *needle)
{
    pthread_mutex_lock(&log_mu);
    bool has = strstr(log_buf, needle) != NULL;
    pthread_mutex_unlock(&log_mu);
    return has;
}

/* ---- loop helpers ------------------------------------------------------------ */

typedef struct waiter {
    seen *w;
    cond_fn cond;
    void *arg;
    uint64_t deadline;
    bool met;
} waiter;

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    waiter *wt = arg;
    if (wt->cond(wt->w, wt->arg)) {
        wt->met = true;
        event_base_loopbreak(wt->w->base);
    } else if (clock_mono_ms() > wt->deadline) {
        event_base_loopbreak(wt->w->base);
    }
}

/* Runs the loop until cond holds or timeout_ms pass; returns whether it held. */
bool run_until(seen *w, cond_fn cond, void *arg, int timeout_ms)
{
    waiter wt = {w, cond, arg, clock_mono_ms() + (uint64_t)timeout_ms, false};
    static bool dump_registered;
    const char *dump = getenv("ARIQ_TEST_LOG_DUMP");
    if (!dump_registered && dump && *dump) {
        dump_registered = true;
        atexit(log_dump); /* ARIQ_TEST_LOG_DUMP=1: print the captured log at exit */
    }
    struct event *t = event_new(w->base, -1, EV_PERSIST, poll_cb, &wt);
    struct timeval tv = {0, 2000};
    event_add(t, &tv);
    if (!cond(w, arg))
        event_base_dispatch(w->base);
    else
        wt.met = true;
    event_free(t);
    return wt.met;
}

bool n_events(seen *w, void *arg)
{
    return w->nevents >= *(int *)arg;
}
bool n_connected(seen *w, void *arg)
{
    return w->connected >= *(int *)arg;
}
bool n_disconnected(seen *w, void *arg)
{
    return w->disconnected >= *(int *)arg;
}
bool never(seen *w, void *arg)
{
    (void)w;
    (void)arg;
    return false;
}

void seen_init(seen *w)
{
    memset(w, 0, sizeof *w);
    w->base = event_base_new();
    assert_non_null(w->base);
    w->loop_thread = pthread_self();
}

ari_stream *open_stream(seen *w, int port, const char *user, const char *pass, bool basic)
{
    ari_stream_cfg cfg = {
        .host = "127.0.0.1",
        .port = port,
        .app = "queue",
        .user = user,
        .password = pass,
        .basic_auth = basic,
        .on_event = on_event,
        .on_connected = on_connected,
        .on_disconnected = on_disconnected,
        .ud = w,
    };
    ari_stream *s = NULL;
    assert_int_equal(ari_stream_new(w->base, &cfg, &s), 0);
    w->stream = s;
    return s;
}
