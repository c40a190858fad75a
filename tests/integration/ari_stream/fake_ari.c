#include "fake_ari.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fake_ari {
    struct lws_context *ctx;
    pthread_t thread;
    const fake_frame *frames;
    int nframes;
    char api_key[256];
    char basic[512];

    pthread_mutex_t mu; /* guards everything below */
    bool stop, drop, frozen, hangup_after_script;
    struct lws *wsi; /* the current connection */
    int connections, refused, sent;
    char last_app[128], last_auth[512], last_path[256];
};

typedef struct session {
    int next; /* index of the next frame to send */
} session;

static void copy_locked(fake_ari *f, char *dst, const char *src, size_t len)
{
    pthread_mutex_lock(&f->mu);
    snprintf(dst, len, "%s", src);
    pthread_mutex_unlock(&f->mu);
}

/* Refuses an upgrade whose credentials do not match (non-zero closes it). */
static int filter(fake_ari *f, struct lws *wsi)
{
    char keybuf[256] = "", auth[512] = "", appbuf[128] = "";
    /* lws 4.1 copies "name=value" into buf and returns the value */
    const char *key = lws_get_urlarg_by_name(wsi, "api_key=", keybuf, sizeof keybuf);
    const char *app = lws_get_urlarg_by_name(wsi, "app=", appbuf, sizeof appbuf);
    key = key ? key : "";
    app = app ? app : "";
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0)
        lws_hdr_copy(wsi, auth, sizeof auth, WSI_TOKEN_HTTP_AUTHORIZATION);
    char path[256] = "";
    lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI);
    copy_locked(f, f->last_path, path, sizeof f->last_path);
    copy_locked(f, f->last_app, app, sizeof f->last_app);
    copy_locked(f, f->last_auth, auth[0] ? auth : key, sizeof f->last_auth);
    bool ok = strcmp(key, f->api_key) == 0 || strcmp(auth, f->basic) == 0;
    if (!ok) {
        pthread_mutex_lock(&f->mu);
        f->refused++;
        pthread_mutex_unlock(&f->mu);
    }
    return ok ? 0 : -1;
}

static int send_next(fake_ari *f, struct lws *wsi, session *ss)
{
    pthread_mutex_lock(&f->mu);
    bool drop = f->drop && wsi == f->wsi;
    if (drop)
        f->drop = false;
    pthread_mutex_unlock(&f->mu);
    if (drop)
        return -1;
    if (ss->next >= f->nframes) {
        pthread_mutex_lock(&f->mu);
        bool hangup = f->hangup_after_script;
        pthread_mutex_unlock(&f->mu);
        return hangup ? -1 : 0;
    }
    const fake_frame *fr = &f->frames[ss->next++];
    unsigned char *buf = malloc(LWS_PRE + fr->len + 1);
    if (!buf)
        return -1;
    memcpy(buf + LWS_PRE, fr->data, fr->len);
    int flags = fr->continuation ? LWS_WRITE_CONTINUATION : LWS_WRITE_TEXT;
    if (!fr->fin)
        flags |= LWS_WRITE_NO_FIN;
    int n = lws_write(wsi, buf + LWS_PRE, fr->len, (enum lws_write_protocol)flags);
    free(buf);
    if (n < (int)fr->len)
        return -1;
    pthread_mutex_lock(&f->mu);
    f->sent++;
    pthread_mutex_unlock(&f->mu);
    lws_callback_on_writable(wsi); /* the next frame, or the hangup */
    return 0;
}

static int cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
              size_t len)
{
    (void)in;
    (void)len;
    fake_ari *f = lws_context_user(lws_get_context(wsi));
    session *ss = user;
    if (!f)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return filter(f, wsi);
    case LWS_CALLBACK_ESTABLISHED:
        ss->next = 0;
        pthread_mutex_lock(&f->mu);
        f->wsi = wsi;
        f->connections++;
        pthread_mutex_unlock(&f->mu);
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return send_next(f, wsi, ss);
    case LWS_CALLBACK_CLOSED:
        pthread_mutex_lock(&f->mu);
        if (f->wsi == wsi)
            f->wsi = NULL;
        pthread_mutex_unlock(&f->mu);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        pthread_mutex_lock(&f->mu);
        if (f->drop && f->wsi)
            lws_callback_on_writable(f->wsi);
        pthread_mutex_unlock(&f->mu);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"fake-ari", cb, sizeof(session), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *run(void *arg)
{
    fake_ari *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        bool stop = f->stop, frozen = f->frozen;
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;
        if (frozen) {
            usleep(5000);
            continue;
        }
        lws_service(f->ctx, 0);
    }
    return NULL;
}

fake_ari *fake_ari_start(int port, const char *user, const char *pass,
                         const fake_frame *frames, int nframes)
{
    fake_ari *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->mu, NULL);
    f->frames = frames;
    f->nframes = nframes;
    snprintf(f->api_key, sizeof f->api_key, "%s:%s", user, pass);
    char b64[400];
    lws_b64_encode_string(f->api_key, (int)strlen(f->api_key), b64, sizeof b64);
    snprintf(f->basic, sizeof f->basic, "Basic %s", b64);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.user = f;
    info.gid = -1;
    info.uid = -1;
    f->ctx = lws_create_context(&info);
    if (!f->ctx || pthread_create(&f->thread, NULL, run, f) != 0) {
        if (f->ctx)
            lws_context_destroy(f->ctx);
        pthread_mutex_destroy(&f->mu);
        free(f);
        return NULL;
    }
    return f;
}

void fake_ari_stop(fake_ari *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_mutex_unlock(&f->mu);
    lws_cancel_service(f->ctx);
    pthread_join(f->thread, NULL);
    lws_context_destroy(f->ctx);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void fake_ari_set_hangup_after_script(fake_ari *f, bool on)
{
    pthread_mutex_lock(&f->mu);
    f->hangup_after_script = on;
    pthread_mutex_unlock(&f->mu);
}

void fake_ari_freeze(fake_ari *f, bool frozen)
{
    pthread_mutex_lock(&f->mu);
    f->frozen = frozen;
    pthread_mutex_unlock(&f->mu);
    lws_cancel_service(f->ctx);
}

void fake_ari_drop(fake_ari *f)
{
    pthread_mutex_lock(&f->mu);
    f->drop = true;
    pthread_mutex_unlock(&f->mu);
    lws_cancel_service(f->ctx);
}

static int read_int(fake_ari *f, const int *p)
{
    pthread_mutex_lock(&f->mu);
    int v = *p;
    pthread_mutex_unlock(&f->mu);
    return v;
}

int fake_ari_connections(fake_ari *f)
{
    return read_int(f, &f->connections);
}

int fake_ari_refused(fake_ari *f)
{
    return read_int(f, &f->refused);
}

int fake_ari_frames_sent(fake_ari *f)
{
    return read_int(f, &f->sent);
}

void fake_ari_last_app(fake_ari *f, char *buf, size_t len)
{
    copy_locked(f, buf, f->last_app, len);
}

void fake_ari_last_auth(fake_ari *f, char *buf, size_t len)
{
    copy_locked(f, buf, f->last_auth, len);
}

void fake_ari_last_path(fake_ari *f, char *buf, size_t len)
{
    copy_locked(f, buf, f->last_path, len);
}
