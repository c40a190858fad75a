/* vhost.c - see vhost.h. */
#include "vhost.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct sim_timer {
    uint64_t due;
    unsigned long seq;
    sim_timer_fn fn;
    void *arg;
    struct sim_timer *next, *prev;
};

struct vhost {
    uint64_t now;
    unsigned long seq;
    struct sim_timer *timers; /* sorted by (due, seq) */
    struct sim_timer *tail;
    bool capture;
    int n_timers;
    json_t *events;
    sim *s;
    vhost_event_fn fn;
    void *ud;
};

static uint64_t v_now(void *ud)
{
    return ((vhost *)ud)->now;
}

static sim_timer *v_add(void *ud, uint64_t delay, sim_timer_fn fn, void *arg)
{
    vhost *vh = ud;
    sim_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->due = vh->now + delay;
    t->seq = ++vh->seq;
    t->fn = fn;
    t->arg = arg;
    /* most timers go last: walk back from the tail */
    sim_timer *p = vh->tail;
    while (p && p->due > t->due)
        p = p->prev;
    t->prev = p;
    t->next = p ? p->next : vh->timers;
    if (t->next)
        t->next->prev = t;
    else
        vh->tail = t;
    if (p)
        p->next = t;
    else
        vh->timers = t;
    vh->n_timers++;
    return t;
}

static void unlink_timer(vhost *vh, sim_timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        vh->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        vh->tail = t->prev;
    vh->n_timers--;
}

static void v_cancel(void *ud, sim_timer *t)
{
    if (!t)
        return;
    unlink_timer(ud, t);
    free(t);
}

static void v_emit(void *ud, int node, const char *app, const json_t *event)
{
    vhost *vh = ud;
    (void)app;
    /* a copy: the core shares parts of events (bridge snapshots) */
    if (vh->capture)
        json_array_append_new(vh->events, json_pack("{s:i,s:o}", "node", node, "event",
                                                     json_deep_copy(event)));
    if (vh->fn)
        vh->fn(vh, node, event, vh->ud);
}

vhost *vhost_new(uint64_t start_ms, double scale)
{
    vhost *vh = calloc(1, sizeof(*vh));
    if (!vh)
        return NULL;
    vh->now = start_ms;
    vh->capture = true;
    vh->events = json_array();
    sim_host h = {.ud = vh, .now_ms = v_now, .timer_add = v_add, .timer_cancel = v_cancel,
                  .emit = v_emit};
    vh->s = sim_new(&h, scale);
    if (!vh->s || !vh->events) {
        vhost_free(vh);
        return NULL;
    }
    return vh;
}

void vhost_free(vhost *vh)
{
    if (!vh)
        return;
    sim_free(vh->s);
    while (vh->timers) {
        sim_timer *t = vh->timers;
        vh->timers = t->next;
        free(t);
    }
    json_decref(vh->events);
    free(vh);
}

sim *vhost_sim(vhost *vh)
{
    return vh->s;
}

uint64_t vhost_now(const vhost *vh)
{
    return vh->now;
}

void vhost_set_capture(vhost *vh, bool on)
{
    vh->capture = on;
}

void vhost_set_event_fn(vhost *vh, vhost_event_fn fn, void *ud)
{
    vh->fn = fn;
    vh->ud = ud;
}

int vhost_advance(vhost *vh, uint64_t ms)
{
    uint64_t target = vh->now + ms;
    int fired = 0;
    while (vh->timers && vh->timers->due <= target && fired < 10000000) {
        sim_timer *t = vh->timers;
        unlink_timer(vh, t);
        if (t->due > vh->now)
            vh->now = t->due;
        sim_timer_fn fn = t->fn;
        void *arg = t->arg;
        free(t);
        fn(arg);
        fired++;
    }
    vh->now = target;
    return fired;
}

int vhost_pending(const vhost *vh)
{
    return vh->n_timers;
}

json_t *vhost_events(vhost *vh)
{
    return vh->events;
}

void vhost_clear_events(vhost *vh)
{
    json_array_clear(vh->events);
}

const char *vhost_chan_types(vhost *vh, const char *id, char *buf, size_t len)
{
    size_t i, off = 0;
    json_t *e;
    buf[0] = 0;
    json_array_foreach(vh->events, i, e)
    {
        json_t *ev = json_object_get(e, "event");
        json_t *ch = json_object_get(ev, "channel");
        if (!ch)
            ch = json_object_get(ev, "peer");
        const char *cid = json_string_value(json_object_get(ch, "id"));
        if (!cid || strcmp(cid, id))
            continue;
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *var = json_string_value(json_object_get(ev, "variable"));
        if (var && (!strcmp(var, "BRIDGEPEER") || !strcmp(var, "STASISSTATUS")))
            continue;
        int n = snprintf(buf + off, len - off, "%s%s", off ? " " : "", type);
        if (n < 0 || (size_t)n >= len - off)
            break;
        off += (size_t)n;
    }
    return buf;
}

json_t *vhost_req(vhost *vh, int node, const char *method, const char *path_query,
                  const char *body, int *status)
{
    char path[1024];
    const char *q = strchr(path_query, '?');
    size_t pl = q ? (size_t)(q - path_query) : strlen(path_query);
    if (pl >= sizeof(path))
        pl = sizeof(path) - 1;
    memcpy(path, path_query, pl);
    path[pl] = 0;
    char *out = NULL;
    size_t out_len = 0;
    const char *ct = NULL;
    *status = 0;
    if (sim_request(vh->s, node, method, path, q ? q + 1 : NULL, body, body ? strlen(body) : 0,
                    status, &out, &out_len, &ct))
        return NULL;
    json_t *j = NULL;
    if (out && ct && !strcmp(ct, "application/json"))
        j = json_loadb(out, out_len, JSON_DECODE_ANY, NULL);
    free(out);
    return j;
}
