/* Benchmark: events per second through ari_stream, from a local WebSocket
 * server (the scripted fake of tests/integration/ari_stream) to on_event on
 * the libevent loop: lws read, reassembly, queue hand-off, eventfd wakeup,
 * parse, callback.
 *
 *   bench_ari_stream [EVENTS]     default 200000
 *
 * Prints ari_stream_events_per_sec. Exits non-zero if not every event
 * arrived within 120 s or any failed to parse. */
#include "ari/stream.h"
#include "core/clock.h"
#include "core/log.h"
#include "fake_ari.h"
#include "proc.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bench {
    struct event_base *base;
    long want, got;
    uint64_t t_first, t_last;
} bench;

static void on_event(ari_stream *s, const ari_event *ev, void *ud)
{
    (void)s;
    (void)ev;
    bench *b = ud;
    if (b->got++ == 0)
        b->t_first = clock_mono_us();
    if (b->got == b->want) {
        b->t_last = clock_mono_us();
        event_base_loopbreak(b->base);
    }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    static const char msg[] =
        "{\"type\":\"ChannelDtmfReceived\",\"timestamp\":\"2026-11-22T21:57:15.627+0000\","
        "\"digit\":\"5\",\"duration_ms\":100,\"channel\":{\"id\":\"1795384628.48\","
        "\"name\":\"Local/dtmf@script-00000013;1\",\"state\":\"Up\",\"caller\":{\"name\":"
        "\"Agent\",\"number\":\"100\"},\"dialplan\":{\"context\":\"script\",\"exten\":"
        "\"dtmf\",\"priority\":1,\"app_name\":\"Stasis\",\"app_data\":\"queue,agent\"}},"
        "\"asterisk_id\":\"02:fc:00:00:00:01\",\"application\":\"queue\"}";
    bench b = {.want = argc > 1 ? atol(argv[1]) : 200000};
    if (b.want <= 0)
        return 2;
    log_set_level(LOG_LVL_WARN);
    fake_frame *frames = calloc((size_t)b.want, sizeof *frames);
    b.base = event_base_new();
    if (!frames || !b.base)
        return 1;
    for (long i = 0; i < b.want; i++)
        frames[i] = (fake_frame){msg, sizeof msg - 1, true, false};
    int port = proc_free_port();
    fake_ari *f = fake_ari_start(port, "ari", "ari", frames, (int)b.want);
    ari_stream_cfg cfg = {.host = "127.0.0.1", .port = port, .app = "queue", .user = "ari",
                          .password = "ari", .on_event = on_event, .ud = &b};
    ari_stream *s = NULL;
    if (!f || ari_stream_new(b.base, &cfg, &s) != 0)
        return 1;
    struct event *t = evtimer_new(b.base, on_timeout, b.base);
    struct timeval tv = {120, 0};
    evtimer_add(t, &tv);
    event_base_dispatch(b.base);
    ari_stream_stats st;
    ari_stream_get_stats(s, &st);
    int rc = (b.got == b.want && st.parse_errors == 0) ? 0 : 1;
    double secs = b.t_last > b.t_first ? (double)(b.t_last - b.t_first) / 1e6 : 0;
    printf("ari_stream_events: %ld of %ld (%llu parse errors, %llu rx pauses)\n", b.got,
           b.want, (unsigned long long)st.parse_errors, (unsigned long long)st.rx_pauses);
    if (secs > 0)
        printf("ari_stream_events_per_sec: %.0f\n", (double)(b.got - 1) / secs);
    event_free(t);
    ari_stream_free(s);
    fake_ari_stop(f);
    event_base_free(b.base);
    free(frames);
    return rc;
}
