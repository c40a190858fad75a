/* libFuzzer target for ari_event_parse(): any byte string must either be
 * rejected with a message and nothing allocated, or give an event whose
 * validated fields hold what event.h promises. A broken promise aborts, so
 * the fuzzer reports it like a crash. */
#include "ari/event.h"
#include "core/ids.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok)
{
    if (!ok)
        abort();
}

/* Every borrowed string is readable (ASan checks) and printable. */
static size_t touch(const char *s)
{
    check(s != NULL);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        check(*p >= 0x20 && *p != 0x7f);
    return strlen(s);
}

static void check_channel(const ari_channel *c)
{
    check(ids_valid(c->id, ARI_EVENT_MAX_ID));
    touch(c->name);
    touch(c->caller_name);
    touch(c->caller_number);
    touch(c->connected_name);
    touch(c->connected_number);
    touch(c->context);
    touch(c->exten);
    touch(c->app_data);
    check((unsigned)c->state < ARI_CHAN__COUNT);
}

static void check_event(const ari_event *ev)
{
    check((unsigned)ev->type < ARI_EV__COUNT);
    touch(ev->type_name);
    if (ev->type == ARI_EV_UNKNOWN)
        return;
    touch(ev->application);
    if (ev->has_channel)
        check_channel(&ev->channel);
    if (ev->has_peer)
        check_channel(&ev->peer);
    if (ev->has_bridge)
        check(ids_valid(ev->bridge.id, ARI_EVENT_MAX_ID));
    if (ev->has_playback) {
        check(ids_valid(ev->playback.id, ARI_EVENT_MAX_ID));
        check(ev->playback.target_kind == ARI_TARGET_OTHER ||
              ids_valid(ev->playback.target_id, ARI_EVENT_MAX_ID));
    }
    if (ev->has_recording)
        check(ids_valid(ev->recording.name, ARI_EVENT_MAX_ID));
    check(ev->nargs <= ARI_EVENT_MAX_ARGS);
    for (size_t i = 0; i < ev->nargs; i++)
        check(touch(ev->args[i]) <= ARI_EVENT_MAX_ARG);
    if (ev->type == ARI_EV_CHANNEL_DTMF_RECEIVED)
        check(ev->digit && strchr("0123456789*#ABCD", ev->digit) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ari_event *ev = NULL;
    char err[160];
    err[0] = '\0';
    int rc = ari_event_parse((const char *)data, size, &ev, err, sizeof err);
    if (rc != 0) {
        check(ev == NULL && err[0] != '\0');
        return 0;
    }
    check_event(ev);
    ari_event_free(ev);
    return 0;
}
