/* client_api.c - the typed ARI wrappers, written against the ari_rest table
 * only, so they work over the real client and over any test transport.
 *
 * Paths are built in one fixed buffer (ari_path): every id and query value is
 * escaped with curl_easy_escape; list parameters (media, channel) are joined
 * with a literal ',' between escaped items, because Asterisk keeps only the
 * last of repeated parameters. Any step that fails sets p->err and later steps
 * do nothing, so a wrapper checks once, at the end. */
#include "ari/client.h"

#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "core/err.h"

#define ARI_PATH_MAX 4096

typedef struct ari_path {
    char buf[ARI_PATH_MAX];
    size_t len;
    int err;
    bool has_query;
} ari_path;

static void path_init(ari_path *p)
{
    p->buf[0] = '\0';
    p->len = 0;
    p->err = 0;
    p->has_query = false;
}

/* Appends n bytes as they are. */
static void path_raw_n(ari_path *p, const char *s, size_t n)
{
    if (p->err)
        return;
    if (p->len + n + 1 > sizeof p->buf) {
        p->err = ARIQ_ERANGE;
        return;
    }
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = '\0';
}

static void path_raw(ari_path *p, const char *s)
{
    path_raw_n(p, s, strlen(s));
}

/* Appends s percent-encoded (everything but [A-Za-z0-9._~-]). */
static void path_esc(ari_path *p, const char *s)
{
    char *e;

    if (p->err || !*s)
        return;
    if (!(e = curl_easy_escape(NULL, s, 0))) {
        p->err = ARIQ_ENOMEM;
        return;
    }
    path_raw(p, e);
    curl_free(e);
}

/* Appends "/" and a required, escaped path segment. */
static void path_seg(ari_path *p, const char *seg)
{
    if (!seg || !*seg) {
        p->err = p->err ? p->err : ARIQ_EINVAL;
        return;
    }
    path_raw(p, "/");
    path_esc(p, seg);
}

/* Starts a query parameter: "?key=" or "&key=". */
static void path_key(ari_path *p, const char *key)
{
    path_raw(p, p->has_query ? "&" : "?");
    p->has_query = true;
    path_raw(p, key);
    path_raw(p, "=");
}

/* Appends an optional query parameter; NULL leaves it out. */
static void path_q(ari_path *p, const char *key, const char *val)
{
    if (!val)
        return;
    path_key(p, key);
    path_esc(p, val);
}

/* Appends a required query parameter. */
static void path_q_req(ari_path *p, const char *key, const char *val)
{
    if (!val || !*val)
        p->err = p->err ? p->err : ARIQ_EINVAL;
    path_q(p, key, val);
}

/* Appends a positive integer parameter; v <= 0 leaves it out. */
static void path_qi(ari_path *p, const char *key, long v)
{
    char num[24];

    if (v <= 0)
        return;
    snprintf(num, sizeof num, "%ld", v);
    path_key(p, key);
    path_raw(p, num);
}

/* Appends key=a,b,c from n required, non-empty items. */
static void path_qlist(ari_path *p, const char *key, const char *const *items,
                       size_t n)
{
    if (!items || n == 0) {
        p->err = p->err ? p->err : ARIQ_EINVAL;
        return;
    }
    path_key(p, key);
    for (size_t i = 0; i < n; i++) {
        if (!items[i] || !*items[i]) {
            p->err = p->err ? p->err : ARIQ_EINVAL;
            return;
        }
        if (i)
            path_raw(p, ",");
        path_esc(p, items[i]);
    }
}

/* Sends the built path, or returns the first building error. */
static int path_send(ari_rest *r, const char *method, ari_path *p,
                     const json_t *body, ari_cb cb, void *pd)
{
    if (p->err)
        return p->err;
    return ari_rest_request(r, method, p->buf, body, cb, pd);
}

/* METHOD prefix/{id}suffix: the shape of most ARI operations. */
static int simple(ari_rest *r, const char *method, const char *prefix,
                  const char *id, const char *suffix, ari_cb cb, void *pd)
{
    ari_path p;

    path_init(&p);
    path_raw(&p, prefix);
    path_seg(&p, id);
    if (suffix)
        path_raw(&p, suffix);
    return path_send(r, method, &p, NULL, cb, pd);
}

/* ------------------------------------------------------------------------- */

int ari_rest_request(ari_rest *rest, const char *method, const char *path,
                     const json_t *body, ari_cb cb, void *privdata)
{
    if (!rest || !rest->ops || !rest->ops->request || !method || !path ||
        path[0] != '/')
        return ARIQ_EINVAL;
    return rest->ops->request(rest->impl, method, path, body, cb, privdata);
}

const char *ari_response_message(const ari_response *r)
{
    json_t *m;

    if (!r)
        return "";
    m = json_is_object(r->json) ? json_object_get(r->json, "message") : NULL;
    if (json_is_string(m))
        return json_string_value(m);
    return r->error ? r->error : "";
}

/* Channels ---------------------------------------------------------------- */

int ari_channel_list(ari_rest *r, ari_cb cb, void *pd)
{
    return ari_rest_request(r, "GET", "/channels", NULL, cb, pd);
}

int ari_channel_get(ari_rest *r, const char *chan, ari_cb cb, void *pd)
{
    return simple(r, "GET", "/channels", chan, NULL, cb, pd);
}

int ari_channel_answer(ari_rest *r, const char *chan, ari_cb cb, void *pd)
{
    return simple(r, "POST", "/channels", chan, "/answer", cb, pd);
}

int ari_channel_hangup(ari_rest *r, const char *chan, const char *reason,
                       ari_cb cb, void *pd)
{
    ari_path p;

    path_init(&p);
    path_raw(&p, "/channels");
    path_seg(&p, chan);
    path_q(&p, "reason", reason);
    return path_send(r, "DELETE", &p, NULL, cb, pd);
}

int ari_channel_continue(ari_rest *r, const char *chan, const char *context,
                         const char *extension, int priority,
                         const char *label, ari_cb cb, void *pd)
{
    ari_path p;

    path_init(&p);
    path_raw(&p, "/channels");
    path_seg(&p, chan);
    path_raw(&p, "/continue");
    path_q(&p, "context", context);
    path_q(&p, "extension", extension);
    path_qi(&p, "priority", priority);
    path_q(&p, "label", label);
    return path_send(r, "POST", &p, NULL, cb, pd);
}

/* POST {prefix}/{target}/play[/{playback_id}]?media=a,b,c[&lang=] for
 * channels and bridges alike. */
static int play(ari_rest *r, const char *prefix, const char *target,
                const char *playback_id, const char *const *media,
                size_t nmedia, const char *lang, ari_cb cb, void *pd)
{
    ari_path p;

    path_init(&p);
    path_raw(&p, prefix);
    path_seg(&p, target);
    path_raw(&p, "/play");
    if (playback_id)
        path_seg(&p, playback_id);
    path_qlist(&p, "media", media, nmedia);
    path_q(&p, "lang", lang);
    return path_send(r, "POST", &p, NULL, cb, pd);
}

int ari_channel_play(ari_rest *r, const char *chan, const char *playback_id,
                     const char *const *media, size_t nmedia,
                     const char *lang, ari_cb cb, void *pd)
{
    return play(r, "/channels", chan, playback_id, media, nmedia, lang, cb, pd);
}

/* POST {prefix}/{target}/moh[?mohClass=] */
static int moh_start(ari_rest *r, const char *prefix, const char *target,
                     const char *moh_class, ari_cb cb, void *pd)
{
    ari_path p;

    path_init(&p);
    path_raw(&p, prefix);
    path_seg(&p, target);
    path_raw(&p, "/moh");
    path_q(&p, "mohClass", moh_class);
    return path_send(r, "POST", &p, NULL, cb, pd);
}

int ari_channel_moh_start(ari_rest *r, const char *chan, const char *moh_class,
                          ari_cb cb, void *pd)
{
    return moh_start(r, "/channels", chan, moh_class, cb, pd);
}

int ari_channel_moh_stop(ari_rest *r, const char *chan, ari_cb cb, void *pd)
{
    return simple(r, "DELETE", "/channels", chan, "/moh", cb, pd);
}

int ari_channel_set_var(ari_rest *r, const char *chan, const char *variable,
                        const char *value, ari_cb cb, void *pd)
{
    ari_path p;

    path_init(&p);
    path_raw(&p, "/channels");
    path_seg(&p, chan);
    path_raw(&p, "/variable");
    path_q_req(&p, "variable", variable);
    path_q(&p, "value", value);
    return path_send(r, "POST", &p, NULL, cb, pd);
}

int ari_channel_get_var(ari_rest *r, const char *chan, const char *variable,
                        ari_cb cb, void *pd)
{
    ari_path p;

    path_init(&p);
    path_raw(&p, "/channels");
    path_seg(&p, chan);
    path_raw(&p, "/variable");
    path_q_req(&p, "variable", variable);
    return path_send(r, "GET", &p, NULL, cb, pd);
}

/* Query parameters of originate other than the channel id. */
static void originate_query(ari_path *p, const ari_originate *o)
{
    path_q_req(p, "endpoint", o->endpoint);
    path_q(p, "extension", o->extension);
    path_q(p, "context", o->context);
    path_qi(p, "priority", o->priority);
    path_q(p, "label", o->label);
    path_q(p, "app", o->app);
    path_q(p, "appArgs", o->app_args);
    path_q(p, "callerId", o->caller_id);
    path_qi(p, "timeout", o->timeout_s);
    path_q(p, "otherChannelId", o->other_channel_id);
    path_q(p, "originator", o->originator);
    path_q(p, "formats", o->formats);
}

int ari_channel_originate(ari_rest *r, const ari_originate *o, ari_cb cb,
                          void *pd)
{
    ari_path p;
    json_t *body = NULL;
    int rc;

    if (!o)
        return ARIQ_EINVAL;
    if (o->variables && !json_is_object(o->variables))
        return ARIQ_EINVAL;
    path_init(&p);
    path_raw(&p, "/channels");
    if (o->channel_id)
        path_seg(&p, o->channel_id);
    originate_query(&p, o);
    if (p.err)
        return p.err;
    if (o->variables &&
        !(body = json_pack("{s:O}", "variables", (json_t *)o->variables)))
        return ARIQ_ENOMEM;
    rc = path_send(r, "POST", &p, body, cb, pd);
    json_decref(body);
    return rc;
}

/* Bridges ----------------------------------------------------------------- */

int ari_bridge_list(ari_rest *r, ari_cb cb, void *pd)
{
    return ari_rest_request(r, "GET", "/bridges", NULL, cb, pd);
}

int ari_bridge_get(ari_rest *r, const char *bridge, ari_cb cb, void *pd)
{
    return simple(r, "GET", "/bridges", bridge, NULL, cb, pd);
}

int ari_bridge_create(ari_rest *r, const char *bridge_id, const char *type,
                      const char *name, ari_cb cb, void *pd)
{
    ari_path p;

    path_init(&p);
    path_raw(&p, "/bridges");
    if (bridge_id)
        path_seg(&p, bridge_id);
    path_q(&p, "type", type);
    path_q(&p, "name", name);
    return path_send(r, "POST", &p, NULL, cb, pd);
}

int ari_bridge_destroy(ari_rest *r, const char *bridge, ari_cb cb, void *pd)
{
    return simple(r, "DELETE", "/bridges", bridge, NULL, cb, pd);
}

int ari_bridge_add_channel(ari_rest *r, const char *bridge,
                           const char *const *chans, size_t nchans,
                           const char *role, ari_cb cb, void *pd)
{
    ari_path p;

    path_init(&p);
    path_raw(&p, "/bridges");
    path_seg(&p, bridge);
    path_raw(&p, "/addChannel");
    path_qlist(&p, "channel", chans, nchans);
    path_q(&p, "role", role);
    return path_send(r, "POST", &p, NULL, cb, pd);
}

int ari_bridge_remove_channel(ari_rest *r, const char *bridge,
                              const char *const *chans, size_t nchans,
                              ari_cb cb, void *pd)
{
    ari_path p;

    path_init(&p);
    path_raw(&p, "/bridges");
    path_seg(&p, bridge);
    path_raw(&p, "/removeChannel");
    path_qlist(&p, "channel", chans, nchans);
    return path_send(r, "POST", &p, NULL, cb, pd);
}

int ari_bridge_moh_start(ari_rest *r, const char *bridge, const char *moh_class,
                         ari_cb cb, void *pd)
{
    return moh_start(r, "/bridges", bridge, moh_class, cb, pd);
}

int ari_bridge_moh_stop(ari_rest *r, const char *bridge, ari_cb cb, void *pd)
{
    return simple(r, "DELETE", "/bridges", bridge, "/moh", cb, pd);
}

int ari_bridge_play(ari_rest *r, const char *bridge, const char *playback_id,
                    const char *const *media, size_t nmedia, const char *lang,
                    ari_cb cb, void *pd)
{
    return play(r, "/bridges", bridge, playback_id, media, nmedia, lang, cb, pd);
}

int ari_bridge_record(ari_rest *r, const char *bridge,
                      const ari_record_opts *o, ari_cb cb, void *pd)
{
    ari_path p;

    if (!o)
        return ARIQ_EINVAL;
    path_init(&p);
    path_raw(&p, "/bridges");
    path_seg(&p, bridge);
    path_raw(&p, "/record");
    path_q_req(&p, "name", o->name);
    path_q_req(&p, "format", o->format);
    path_qi(&p, "maxDurationSeconds", o->max_duration_s);
    path_qi(&p, "maxSilenceSeconds", o->max_silence_s);
    path_q(&p, "ifExists", o->if_exists);
    path_q(&p, "beep", o->beep ? "true" : NULL);
    path_q(&p, "terminateOn", o->terminate_on);
    return path_send(r, "POST", &p, NULL, cb, pd);
}

/* Playbacks --------------------------------------------------------------- */

int ari_playback_get(ari_rest *r, const char *playback, ari_cb cb, void *pd)
{
    return simple(r, "GET", "/playbacks", playback, NULL, cb, pd);
}

int ari_playback_stop(ari_rest *r, const char *playback, ari_cb cb, void *pd)
{
    return simple(r, "DELETE", "/playbacks", playback, NULL, cb, pd);
}

/* Recordings -------------------------------------------------------------- */

int ari_recording_live_get(ari_rest *r, const char *name, ari_cb cb, void *pd)
{
    return simple(r, "GET", "/recordings/live", name, NULL, cb, pd);
}

int ari_recording_stop(ari_rest *r, const char *name, ari_cb cb, void *pd)
{
    return simple(r, "POST", "/recordings/live", name, "/stop", cb, pd);
}

int ari_recording_pause(ari_rest *r, const char *name, ari_cb cb, void *pd)
{
    return simple(r, "POST", "/recordings/live", name, "/pause", cb, pd);
}

int ari_recording_unpause(ari_rest *r, const char *name, ari_cb cb, void *pd)
{
    return simple(r, "DELETE", "/recordings/live", name, "/pause", cb, pd);
}

int ari_recording_cancel(ari_rest *r, const char *name, ari_cb cb, void *pd)
{
    return simple(r, "DELETE", "/recordings/live", name, NULL, cb, pd);
}

int ari_recording_stored_get(ari_rest *r, const char *name, ari_cb cb,
                             void *pd)
{
    return simple(r, "GET", "/recordings/stored", name, NULL, cb, pd);
}

int ari_recording_stored_delete(ari_rest *r, const char *name, ari_cb cb,
                                void *pd)
{
    return simple(r, "DELETE", "/recordings/stored", name, NULL, cb, pd);
}

/* Applications -------------------------------------------------------------- */

int ari_application_filter(ari_rest *r, const char *app, const char *const *allowed,
                           size_t nallowed, ari_cb cb, void *pd)
{
    ari_path p;
    json_t *list = json_array(), *body = NULL;
    int rc = list ? 0 : ARIQ_ENOMEM;
    for (size_t i = 0; i < nallowed && rc == 0; i++) {
        if (!allowed || !allowed[i] || !*allowed[i])
            rc = ARIQ_EINVAL;
        else if (json_array_append_new(list, json_pack("{s:s}", "type", allowed[i])) != 0)
            rc = ARIQ_ENOMEM;
    }
    if (rc == 0 && !(body = json_pack("{s:O}", "allowed", list)))
        rc = ARIQ_ENOMEM;
    json_decref(list);
    if (rc == 0) {
        path_init(&p);
        path_raw(&p, "/applications");
        path_seg(&p, app);
        path_raw(&p, "/eventFilter");
        rc = path_send(r, "PUT", &p, body, cb, pd);
    }
    json_decref(body);
    return rc;
}

/* Asterisk ---------------------------------------------------------------- */

int ari_asterisk_info(ari_rest *r, ari_cb cb, void *pd)
{
    return ari_rest_request(r, "GET", "/asterisk/info", NULL, cb, pd);
}
