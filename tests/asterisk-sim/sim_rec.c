/* sim_rec.c - live and stored recordings, and the spans of conversation each
 * holds (paused time excluded) for the oracle. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "sim_internal.h"

static void key(char *out, size_t n, int node, const char *name)
{
    snprintf(out, n, "%d/%s", node, name);
}

sim_rec *rec_live_get(sim *s, int node, const char *name)
{
    char k[SIM_ID_MAX + 16];
    key(k, sizeof(k), node, name);
    return sim_map_get(s->recs_live, k);
}

sim_rec *rec_stored_get(sim *s, int node, const char *name)
{
    char k[SIM_ID_MAX + 16];
    key(k, sizeof(k), node, name);
    return sim_map_get(s->recs_stored, k);
}

bool rec_format_ok(const char *fmt)
{
    static const char *const ok[] = {"wav", "WAV", "wav16", "gsm", "ulaw", "alaw", "sln",
                                     "sln16", "g722", "g729", "ogg", "h264"};
    for (size_t i = 0; fmt && i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!strcmp(fmt, ok[i]))
            return true;
    return false;
}

json_t *rec_json(const sim_rec *r, bool live)
{
    if (!live)
        return json_pack("{s:s,s:s}", "name", r->name, "format", r->format);
    return json_pack("{s:s,s:s,s:s,s:s}", "name", r->name, "format", r->format, "state",
                     r->state, "target_uri", r->target_uri);
}

static void rec_emit(sim *s, sim_rec *r, const char *type, bool with_duration)
{
    json_t *j = rec_json(r, true);
    if (with_duration)
        json_object_set_new(j, "duration", json_integer((json_int_t)(r->dur_ms / 1000)));
    sim_emit(s, r->node, r->app, type, json_pack("{s:o}", "recording", j));
}

/* The channels a span of the recording holds: the bridge's members (or the
 * channel) when the span starts. New reference. */
static json_t *target_chans(sim *s, const sim_rec *r)
{
    if (!strncmp(r->target_uri, "bridge:", 7)) {
        sim_bridge *b = bridge_get(s, r->node, r->target_uri + 7);
        return b ? json_copy(b->ids) : json_array();
    }
    json_t *a = json_array();
    if (!strncmp(r->target_uri, "channel:", 8))
        json_array_append_new(a, json_string(r->target_uri + 8));
    return a;
}

static int remember(sim *s, sim_rec *r)
{
    if (s->n_recs == s->cap_recs) {
        size_t cap = s->cap_recs ? s->cap_recs * 2 : 16;
        sim_rec **v = realloc(s->recs, cap * sizeof(*v));
        if (!v)
            return ARIQ_ENOMEM;
        s->recs = v;
        s->cap_recs = cap;
    }
    s->recs[s->n_recs++] = r;
    return 0;
}

static void unstore(sim *s, int node, const char *name)
{
    char k[SIM_ID_MAX + 16];
    key(k, sizeof(k), node, name);
    sim_rec *old = sim_map_del(s->recs_stored, k);
    if (old)
        old->stored = false;
}

/* Returns 0, ARIQ_EBUSY (name taken: 409) or ARIQ_ENOMEM. */
int rec_start(sim *s, int node, const char *name, const char *format, const char *target_uri,
              const char *app, bool overwrite, sim_rec **out)
{
    char k[SIM_ID_MAX + 16];
    if (strlen(name) >= SIM_ID_MAX)
        return ARIQ_ERANGE;
    if (rec_live_get(s, node, name) || (!overwrite && rec_stored_get(s, node, name)))
        return ARIQ_EBUSY;
    sim_rec *r = calloc(1, sizeof(*r));
    if (!r || !(r->spans = json_array()) || remember(s, r)) {
        if (r)
            json_decref(r->spans);
        free(r);
        return ARIQ_ENOMEM;
    }
    if (overwrite)
        unstore(s, node, name);
    strcpy(r->name, name);
    snprintf(r->format, sizeof(r->format), "%s", format);
    snprintf(r->target_uri, sizeof(r->target_uri), "%s", target_uri);
    r->node = node;
    r->app = app ? strdup(app) : NULL;
    strcpy(r->state, "recording");
    r->started_ms = r->span_start = sim_now(s);
    r->span_chans = target_chans(s, r);
    key(k, sizeof(k), node, name);
    sim_map_put(s->recs_live, k, r);
    rec_emit(s, r, "RecordingStarted", false);
    *out = r;
    return 0;
}

static void close_span(sim *s, sim_rec *r)
{
    uint64_t now = sim_now(s);
    json_array_append_new(r->spans, json_pack("{s:I,s:I,s:o}", "start",
                                              (json_int_t)r->span_start, "end", (json_int_t)now,
                                              "channels", r->span_chans));
    r->span_chans = NULL;
    r->dur_ms += now - r->span_start;
}

void rec_pause(sim *s, sim_rec *r, bool pause)
{
    if (pause && !strcmp(r->state, "recording")) {
        close_span(s, r);
        strcpy(r->state, "paused");
    } else if (!pause && !strcmp(r->state, "paused")) {
        r->span_start = sim_now(s);
        json_decref(r->span_chans);
        r->span_chans = target_chans(s, r);
        strcpy(r->state, "recording");
    }
}

/* Stop (keep) or discard: both end with RecordingFinished state done. */
void rec_finish(sim *s, sim_rec *r, bool keep)
{
    char k[SIM_ID_MAX + 16];
    if (!strcmp(r->state, "recording"))
        close_span(s, r);
    strcpy(r->state, "done");
    r->ended_ms = sim_now(s);
    key(k, sizeof(k), r->node, r->name);
    sim_map_del(s->recs_live, k);
    rec_emit(s, r, "RecordingFinished", true);
    sim_chan *ch = !strncmp(r->target_uri, "channel:", 8)
                       ? chan_get(s, r->node, r->target_uri + 8) : NULL;
    if (ch && ch->rec_hold == r) {
        ch->rec_hold = NULL;
        chan_run_queue(s, ch);
    }
    if (!strncmp(r->target_uri, "bridge:", 7)) {
        sim_bridge *b = bridge_get(s, r->node, r->target_uri + 7);
        if (b)
            bridge_set_recorder(s, b, false);
    }
    if (keep) {
        unstore(s, r->node, r->name);
        r->stored = true;
        sim_map_put(s->recs_stored, k, r);
    } else {
        r->discarded = true;
    }
}

void rec_stop_target(sim *s, const char *target_uri)
{
    void **v;
    size_t n = sim_map_values(s->recs_live, &v);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(((sim_rec *)v[i])->target_uri, target_uri))
            rec_finish(s, v[i], true);
    free(v);
}

void rec_free_all(sim *s)
{
    void **v;
    size_t n = sim_map_values(s->recs_live, &v);
    for (size_t i = 0; i < n; i++) {
        char k[SIM_ID_MAX + 16];
        key(k, sizeof(k), ((sim_rec *)v[i])->node, ((sim_rec *)v[i])->name);
        sim_map_del(s->recs_live, k);
    }
    free(v);
    n = sim_map_values(s->recs_stored, &v);
    for (size_t i = 0; i < n; i++) {
        char k[SIM_ID_MAX + 16];
        key(k, sizeof(k), ((sim_rec *)v[i])->node, ((sim_rec *)v[i])->name);
        sim_map_del(s->recs_stored, k);
    }
    free(v);
    for (size_t i = 0; i < s->n_recs; i++) {
        json_decref(s->recs[i]->spans);
        json_decref(s->recs[i]->span_chans);
        free(s->recs[i]->app);
        free(s->recs[i]);
    }
    s->n_recs = 0;
}

json_t *rec_oracle(sim *s)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < s->n_recs; i++) {
        sim_rec *r = s->recs[i];
        json_t *spans = json_deep_copy(r->spans);
        if (!strcmp(r->state, "recording"))
            json_array_append_new(spans, json_pack("{s:I,s:n,s:O}", "start",
                                                   (json_int_t)r->span_start, "end", "channels",
                                                   r->span_chans));
        json_array_append_new(
            a, json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:b,s:b,s:o,s:I,s:I,s:I}", "node",
                         s->nodes[r->node].name, "name", r->name, "format", r->format,
                         "target_uri", r->target_uri, "state", r->state, "stored", r->stored,
                         "discarded", r->discarded, "deleted", r->deleted, "spans", spans,
                         "started",
                         (json_int_t)r->started_ms, "ended", (json_int_t)r->ended_ms,
                         "duration_ms", (json_int_t)r->dur_ms));
    }
    return a;
}
