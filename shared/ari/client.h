/* client.h - the asynchronous ARI REST client.
 *
 * Two layers:
 *
 *  1. A transport table, `ari_rest` (STYLE habit 12): one function that sends
 *     a request and later calls back with the response. The real client below
 *     is one implementation; a unit test can supply its own to drive a leg's
 *     state machine with no sockets. All the typed wrappers (ari_channel_*,
 *     ari_bridge_*, ...) are written against this table only.
 *
 *  2. `ari_client`, the real transport: libcurl's multi-socket API driven by
 *     the daemon's libevent loop. Never a blocking call; connections are kept
 *     alive and reused; at most `max_connections` at once (further requests
 *     wait inside libcurl); every request has its own total timeout.
 *
 * Contract of every request, whatever the transport:
 *  - A call that returns an error (< 0) never calls its callback.
 *  - A call that returns 0 calls its callback exactly once, later, from the
 *    event loop: never from inside the call that started the request.
 *  - The response, its body and its JSON are borrowed: they are freed after the
 *    callback returns (json_incref what you keep).
 *  - The callback may start new requests, and may call ari_client_free() (see
 *    there).
 *  - An HTTP status is a result, not a failure: 404 (gone), 409 (not in
 *    Stasis), 422, 400 reach the callback with `status` set and `err == 0`.
 *    Only transport failures set `status = 0` and `err`.
 *
 * libcurl's global init: ari_client_new() runs curl_global_init() once per
 * process (pthread_once); nobody else needs to. curl_global_cleanup() is never
 * called (it is not safe while other threads may use libcurl).
 *
 * Credentials go to libcurl as CURLOPT_USERNAME / CURLOPT_PASSWORD, never into
 * a URL, and are never logged.
 *
 * Threads: none of its own. A client (and an ari_fake) is used only from the
 * thread that runs its event_base.
 *
 * Logging (mod=ari_rest): each response at debug; 5xx, 401/403 and transport
 * failures at warn. Other 4xx are the caller's to judge and log. */
#ifndef ARIQ_ARI_CLIENT_H
#define ARIQ_ARI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct event_base;

/* ------------------------------------------------------------------------- */
/* Responses and the transport table                                          */

typedef struct ari_response {
    long status;        /* HTTP status; 0 when the transport failed */
    int err;            /* 0, or ARIQ_EIO / ARIQ_ETIMEDOUT / ARIQ_ECLOSED /
                           ARIQ_ERANGE (body too large) when status is 0 */
    const char *error;  /* transport error text, or NULL; borrowed */
    json_t *json;       /* parsed body, borrowed; NULL if empty or not JSON */
    const char *body;   /* raw body, NUL-terminated, borrowed; "" if none */
    size_t body_len;
    double elapsed_ms;  /* from the request call to the response */
    const char *method; /* as requested, borrowed */
    const char *path;   /* as requested (relative to /ari), borrowed */
} ari_response;

typedef struct ari_rest ari_rest;

/* `rest` is the transport the request went through (so the callback can
 * start the next request on it); `r` and everything in it is borrowed until
 * the callback returns; `privdata` is the caller's, untouched. */
typedef void (*ari_cb)(ari_rest *rest, const ari_response *r, void *privdata);

/* A transport. `request` sends `method` ("GET", "POST", "PUT", "DELETE") to
 * `path` (relative to /ari, starting with '/', already escaped, query
 * included). `body` is borrowed and serialized before request() returns;
 * NULL sends no body. It must follow the contract above: return 0 and call
 * `cb` once later from the loop, or return a negative ARIQ_ error and never
 * call it. `cb` may be NULL (fire and forget). */
typedef struct ari_rest_ops {
    int (*request)(void *impl, const char *method, const char *path,
                   const json_t *body, ari_cb cb, void *privdata);
} ari_rest_ops;

/* A transport handle: a table and its object. Both borrowed by whoever holds
 * the handle; its owner (e.g. the ari_client) outlives every user. */
struct ari_rest {
    const ari_rest_ops *ops;
    void *impl;
};

/* Sends a request through any transport; returns what ops->request returns,
 * or ARIQ_EINVAL for a NULL rest / method / path or a path not starting with
 * '/'. */
int ari_rest_request(ari_rest *rest, const char *method, const char *path,
                     const json_t *body, ari_cb cb, void *privdata);

/* The "message" field of an ARI error body ({"message":"Channel not found"}),
 * else the transport error text, else "". Borrowed from r; never NULL. */
const char *ari_response_message(const ari_response *r);

/* ------------------------------------------------------------------------- */
/* The real client                                                            */

typedef struct ari_client ari_client;

typedef struct ari_client_config {
    const char *url;        /* base, e.g. "http://127.0.0.1:8088"; "/ari" is
                               appended. Must not carry credentials. */
    const char *user;       /* NULL or "" for no authentication */
    const char *password;
    long timeout_ms;        /* whole request, default (<= 0) 5000 */
    long connect_timeout_ms;/* default (<= 0) 2000 */
    int max_connections;    /* at once, to this server; default (<= 0) 16 */
} ari_client_config;

/* Creates a client on `base` (borrowed; must outlive the client). Strings in
 * `cfg` are copied. Returns NULL on a bad config or out of memory. */
ari_client *ari_client_new(struct event_base *base,
                           const ari_client_config *cfg);

/* Frees the client. Every request still pending completes first, each callback
 * called once with status 0, err ARIQ_ECLOSED (so owners free their privdata);
 * requests started during those callbacks are refused with ARIQ_ECLOSED.
 *
 * May be called from inside one of this client's callbacks: the client is then
 * only marked closing (new requests are refused with ARIQ_ECLOSED) and is
 * really freed, with the same ECLOSED completions, once that callback has
 * returned. ari_client_free(NULL) does nothing. */
void ari_client_free(ari_client *c);

/* The transport handle of this client, owned by it (valid until freed). */
ari_rest *ari_client_rest(ari_client *c);

/* ari_rest_request() through this client. */
int ari_request(ari_client *c, const char *method, const char *path,
                const json_t *body, ari_cb cb, void *privdata);

/* Requests started and not yet called back. */
size_t ari_client_pending(const ari_client *c);

/* Text of the last error a call on this client returned; borrowed, never NULL. */
const char *ari_client_errmsg(const ari_client *c);

/* ------------------------------------------------------------------------- */
/* A scripted transport for unit tests: no sockets, no loop.
 *
 * Every request is recorded (in order, never forgotten until freed) and stays
 * unanswered until the test answers it with ari_fake_respond() or
 * ari_fake_fail(); the callback runs inside that call, which plays the part
 * of the event loop, so the contract above holds (never from inside the call
 * that started the request). A callback may start new requests; they are
 * appended. Indexes count every request since ari_fake_new, from 0. */

typedef struct ari_fake ari_fake;

ari_fake *ari_fake_new(void);
/* Completes every unanswered request with ARIQ_ECLOSED, then frees.
 * NULL is a no-op. */
void ari_fake_free(ari_fake *f);
/* The transport handle, owned by f. */
ari_rest *ari_fake_rest(ari_fake *f);
/* While err != 0, requests are refused with err (and not recorded). */
void ari_fake_refuse(ari_fake *f, int err);

size_t ari_fake_count(const ari_fake *f);   /* requests recorded */
size_t ari_fake_pending(const ari_fake *f); /* of which unanswered */
/* Fields of request i, borrowed from f; NULL / false if i is out of range.
 * body is the serialized JSON body or NULL. */
const char *ari_fake_method(const ari_fake *f, size_t i);
const char *ari_fake_path(const ari_fake *f, size_t i);
const char *ari_fake_body(const ari_fake *f, size_t i);
bool ari_fake_answered(const ari_fake *f, size_t i);
/* Index of the first unanswered request with this method (NULL: any) whose
 * path starts with path_prefix (NULL: any), or -1. */
long ari_fake_find(const ari_fake *f, const char *method,
                   const char *path_prefix);

/* Answers request i: its callback runs now with `status` and `body` (raw,
 * parsed as JSON if it is; NULL for none). Returns 0, or ARIQ_ENOTFOUND if
 * there is no such request, ARIQ_ESTATE if it was answered already. */
int ari_fake_respond(ari_fake *f, size_t i, long status, const char *body);
/* Fails request i as the transport would: status 0 and `err`
 * (ARIQ_EIO, ARIQ_ETIMEDOUT, ...). Same returns as ari_fake_respond. */
int ari_fake_fail(ari_fake *f, size_t i, int err);

/* ------------------------------------------------------------------------- */
/* Typed wrappers. Each builds the path with every id and query value escaped
 * (curl_easy_escape) and returns 0, or a negative ARIQ_ error (ARIQ_EINVAL for
 * a missing id or required argument) without calling cb. Optional string
 * arguments are NULL to leave the parameter out. All pointers are borrowed for
 * the duration of the call only. */

/* Channels */
int ari_channel_list(ari_rest *r, ari_cb cb, void *pd);
int ari_channel_get(ari_rest *r, const char *chan, ari_cb cb, void *pd);
int ari_channel_answer(ari_rest *r, const char *chan, ari_cb cb, void *pd);
/* reason: "normal", "busy", "congestion", ... or NULL. */
int ari_channel_hangup(ari_rest *r, const char *chan, const char *reason,
                       ari_cb cb, void *pd);
/* Each of context, extension, label optional; priority <= 0 leaves it out. */
int ari_channel_continue(ari_rest *r, const char *chan, const char *context,
                         const char *extension, int priority,
                         const char *label, ari_cb cb, void *pd);
/* Plays media[0..nmedia) in order, sent as one comma-joined `media=a,b,c`
 * (Asterisk keeps only the last of repeated media= parameters). playback_id
 * optional: when set the path is /play/{playback_id}. lang optional. */
int ari_channel_play(ari_rest *r, const char *chan, const char *playback_id,
                     const char *const *media, size_t nmedia,
                     const char *lang, ari_cb cb, void *pd);
int ari_channel_moh_start(ari_rest *r, const char *chan, const char *moh_class,
                          ari_cb cb, void *pd);
int ari_channel_moh_stop(ari_rest *r, const char *chan, ari_cb cb, void *pd);
/* value NULL unsets the variable. */
int ari_channel_set_var(ari_rest *r, const char *chan, const char *variable,
                        const char *value, ari_cb cb, void *pd);
int ari_channel_get_var(ari_rest *r, const char *chan, const char *variable,
                        ari_cb cb, void *pd);

typedef struct ari_originate {
    const char *endpoint;        /* required, e.g. "IAX2/node2/123@queue-link" */
    const char *app;             /* Stasis app ... */
    const char *app_args;        /* ... and its args ("link,PAIRING") */
    const char *context;         /* or dialplan: context/extension/priority */
    const char *extension;
    int priority;                /* <= 0: left out */
    const char *label;
    const char *caller_id;       /* "Name <number>" */
    int timeout_s;               /* <= 0: left out (Asterisk's 30) */
    const char *channel_id;      /* set: POST /channels/{channel_id} */
    const char *other_channel_id;
    const char *originator;
    const char *formats;
    const json_t *variables;     /* object of strings, borrowed; sent as the
                                    JSON body {"variables": {...}} */
} ari_originate;
int ari_channel_originate(ari_rest *r, const ari_originate *o, ari_cb cb,
                          void *pd);

/* Applications: PUT /applications/{app}/eventFilter with {"allowed":
 * [{"type": T}, ...]}: only those event types reach the app's WebSocket
 * (Asterisk 13.26/16.3 and later; an empty list allows every type). */
int ari_application_filter(ari_rest *r, const char *app, const char *const *allowed,
                           size_t nallowed, ari_cb cb, void *pd);

/* Bridges */
int ari_bridge_list(ari_rest *r, ari_cb cb, void *pd);
int ari_bridge_get(ari_rest *r, const char *bridge, ari_cb cb, void *pd);
/* bridge_id set: POST /bridges/{bridge_id}; type ("mixing", "holding",
 * "mixing,dtmf_events", ...) and name optional. */
int ari_bridge_create(ari_rest *r, const char *bridge_id, const char *type,
                      const char *name, ari_cb cb, void *pd);
int ari_bridge_destroy(ari_rest *r, const char *bridge, ari_cb cb, void *pd);
/* chans[0..nchans) comma-joined in one `channel=`; role optional. */
int ari_bridge_add_channel(ari_rest *r, const char *bridge,
                           const char *const *chans, size_t nchans,
                           const char *role, ari_cb cb, void *pd);
int ari_bridge_remove_channel(ari_rest *r, const char *bridge,
                              const char *const *chans, size_t nchans,
                              ari_cb cb, void *pd);
int ari_bridge_moh_start(ari_rest *r, const char *bridge, const char *moh_class,
                         ari_cb cb, void *pd);
int ari_bridge_moh_stop(ari_rest *r, const char *bridge, ari_cb cb, void *pd);
int ari_bridge_play(ari_rest *r, const char *bridge, const char *playback_id,
                    const char *const *media, size_t nmedia, const char *lang,
                    ari_cb cb, void *pd);

typedef struct ari_record_opts {
    const char *name;            /* required */
    const char *format;          /* required, e.g. "wav" */
    int max_duration_s;          /* <= 0: left out */
    int max_silence_s;           /* <= 0: left out */
    const char *if_exists;       /* "fail" / "overwrite" / "append" or NULL */
    bool beep;                   /* true sends beep=true */
    const char *terminate_on;    /* "none", "any", "*", "#" or NULL */
} ari_record_opts;
int ari_bridge_record(ari_rest *r, const char *bridge,
                      const ari_record_opts *o, ari_cb cb, void *pd);

/* Playbacks */
int ari_playback_get(ari_rest *r, const char *playback, ari_cb cb, void *pd);
int ari_playback_stop(ari_rest *r, const char *playback, ari_cb cb, void *pd);

/* Recordings. Unpause is DELETE .../pause; cancel (discard) is DELETE on the
 * live recording and leaves no file. */
int ari_recording_live_get(ari_rest *r, const char *name, ari_cb cb, void *pd);
int ari_recording_stop(ari_rest *r, const char *name, ari_cb cb, void *pd);
int ari_recording_pause(ari_rest *r, const char *name, ari_cb cb, void *pd);
int ari_recording_unpause(ari_rest *r, const char *name, ari_cb cb, void *pd);
int ari_recording_cancel(ari_rest *r, const char *name, ari_cb cb, void *pd);
int ari_recording_stored_get(ari_rest *r, const char *name, ari_cb cb,
                             void *pd);
int ari_recording_stored_delete(ari_rest *r, const char *name, ari_cb cb,
                                void *pd);

/* Asterisk */
int ari_asterisk_info(ari_rest *r, ari_cb cb, void *pd);

#endif
