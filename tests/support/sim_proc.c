/* sim_proc.c - the simulator as a child process, REST helpers, event collector.
 *
 * Test code only: everything blocks. The event collector is the one place
 * with a thread: it owns its lws context while running and hands parsed
 * events over through a mutex and a condition variable. */
#include "sim_proc.h"

#include <curl/curl.h>
#include <errno.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- process ------------------------------------------------------------ */

static void ms_sleep(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* True once `path` holds the simulator's ready line. */
static bool ready_file_done(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[512] = "";
    bool ok = fgets(line, sizeof line, f) && strncmp(line, "asterisk-sim ready", 18) == 0;
    fclose(f);
    return ok;
}

static int wait_ready(sim_proc *p, const char *ready, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        if (ready_file_done(ready))
            return 0;
        if (!proc_alive(&p->proc))
            return -1;
        ms_sleep(10);
    }
    return -1;
}

/* Builds argv into `store`/`argv` (both caller-owned arrays). */
static int build_argv(sim_proc *p, const sim_proc_opts *o, const char *ready,
                      char store[][96], char *bin, const char **argv, int max)
{
    int n = 0, s = 0;
    argv[n++] = proc_build_path("tests/asterisk-sim/asterisk-sim", bin, 512);
    for (int i = 0; i < p->nnodes; i++) {
        argv[n++] = "--node";
        snprintf(store[s], 96, "node%d:%d", i + 1, p->ports[i]);
        argv[n++] = store[s++];
    }
    snprintf(store[s], 96, "%g", o->scale);
    argv[n++] = "--scale";
    argv[n++] = store[s++];
    argv[n++] = "--user";
    argv[n++] = p->user;
    argv[n++] = "--password";
    argv[n++] = p->password;
    argv[n++] = "--ready-file";
    argv[n++] = ready;
    argv[n++] = "--max-runtime";
    argv[n++] = "3600";
    if (o->config) {
        argv[n++] = "--config";
        argv[n++] = o->config;
    }
    for (int i = 0; o->extra_args && o->extra_args[i] && n < max - 1; i++)
        argv[n++] = o->extra_args[i];
    argv[n] = NULL;
    return n;
}

/* Starts the program once; with new_ports, on fresh free ports. */
static int start_once(sim_proc *p, const sim_proc_opts *o, int attempt, bool new_ports)
{
    char ready[600], bin[512], store[SIM_PROC_MAX_NODES + 2][96];
    const char *argv[64];
    for (int i = 0; i < p->nnodes && new_ports; i++) {
        p->ports[i] = proc_free_port();
        snprintf(p->urls[i], sizeof p->urls[i], "http://127.0.0.1:%d", p->ports[i]);
    }
    char root[400];
    proc_build_path("test-tmp", root, sizeof root);
    if (mkdir(root, 0755) != 0 && errno != EEXIST)
        return -1;
    snprintf(p->logpath, sizeof p->logpath, "%s/asterisk-sim-%d-%d.log", root,
             (int)getpid(), p->ports[0]);
    snprintf(ready, sizeof ready, "%s/asterisk-sim-%d-%d.ready", root, (int)getpid(),
             p->ports[0]);
    unlink(ready);
    build_argv(p, o, ready, store, bin, argv, 64);
    if (proc_start(&p->proc, argv, p->logpath) != 0)
        return -1;
    int timeout = o->ready_timeout_ms > 0 ? o->ready_timeout_ms : 10000;
    if (wait_ready(p, ready, timeout) == 0) {
        unlink(ready);
        return 0;
    }
    fprintf(stderr, "sim_proc: asterisk-sim not ready (attempt %d), log %s\n", attempt,
            p->logpath);
    proc_stop(&p->proc, SIGKILL, 1000);
    unlink(ready);
    return -1;
}

int sim_proc_start_opts(sim_proc *p, const sim_proc_opts *o)
{
    memset(p, 0, sizeof *p);
    p->opts = *o;
    p->nnodes = o->nnodes > 0 ? o->nnodes : 1;
    if (p->nnodes > SIM_PROC_MAX_NODES)
        return -1;
    snprintf(p->user, sizeof p->user, "%s", o->user ? o->user : "ari");
    snprintf(p->password, sizeof p->password, "%s", o->password ? o->password : "ari");
    /* A free port can be taken between proc_free_port() and bind: retry. */
    for (int attempt = 1; attempt <= 3; attempt++)
        if (start_once(p, o, attempt, true) == 0)
            return 0;
    return -1;
}

int sim_proc_restart(sim_proc *p, int sig)
{
    if (p->proc.pid > 0)
        proc_stop(&p->proc, sig, 5000);
    return start_once(p, &p->opts, 1, false);
}

int sim_proc_start(sim_proc *p, int nnodes, double scale)
{
    sim_proc_opts o = {.nnodes = nnodes, .scale = scale};
    return sim_proc_start_opts(p, &o);
}

int sim_proc_stop(sim_proc *p)
{
    if (p->proc.pid <= 0)
        return -1;
    return proc_stop(&p->proc, SIGTERM, 5000);
}

const char *sim_proc_url(const sim_proc *p, int node)
{
    return node >= 0 && node < p->nnodes ? p->urls[node] : "";
}

int sim_proc_port(const sim_proc *p, int node)
{
    return node >= 0 && node < p->nnodes ? p->ports[node] : 0;
}

const char *sim_proc_user(const sim_proc *p)
{
    return p->user;
}

const char *sim_proc_password(const sim_proc *p)
{
    return p->password;
}

/* ---- REST --------------------------------------------------------------- */

typedef struct growbuf {
    char *data;
    size_t len;
} growbuf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    growbuf *b = ud;
    size_t n = size * nmemb;
    char *d = realloc(b->data, b->len + n + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, ptr, n);
    b->len += n;
    d[b->len] = '\0';
    b->data = d;
    return n;
}

char *sim_http(const sim_proc *p, int node, const char *method, const char *path,
               const char *body, bool with_auth, long *status)
{
    char url[1024];
    growbuf b = {calloc(1, 1), 0};
    struct curl_slist *hdrs = NULL;
    CURL *c = curl_easy_init();
    if (status)
        *status = 0;
    if (!c || !b.data)
        goto fail;
    snprintf(url, sizeof url, "%s%s", sim_proc_url(p, node), path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (with_auth) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, p->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, p->password);
    }
    if (curl_easy_perform(c) != CURLE_OK)
        goto fail;
    if (status)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return b.data;
fail:
    curl_slist_free_all(hdrs);
    if (c)
        curl_easy_cleanup(c);
    free(b.data);
    return NULL;
}

json_t *sim_ctl(const sim_proc *p, int node, const char *method, const char *path,
                const char *json_body, long *status)
{
    bool ari = strncmp(path, "/ari/", 5) == 0;
    char *body = sim_http(p, node, method, path, json_body, ari, status);
    if (!body)
        return NULL;
    json_t *j = body[0] ? json_loads(body, JSON_DECODE_ANY, NULL) : NULL;
    free(body);
    return j;
}

static long ctl_status(const sim_proc *p, int node, const char *method, const char *path,
                       const char *body)
{
    long st = 0;
    json_decref(sim_ctl(p, node, method, path, body, &st));
    return st;
}

long sim_fault(const sim_proc *p, int node, const char *json)
{
    return ctl_status(p, node, "POST", "/sim/faults", json);
}

long sim_set_node_down(const sim_proc *p, int node, int via)
{
    char path[128];
    snprintf(path, sizeof path, "/sim/nodes/node%d/down", node + 1);
    return ctl_status(p, via, "POST", path, NULL);
}

long sim_set_node_up(const sim_proc *p, int node, int via)
{
    char path[128];
    snprintf(path, sizeof path, "/sim/nodes/node%d/up", node + 1);
    return ctl_status(p, via, "POST", path, NULL);
}

/* ---- control API wrappers (SIM.md) ------------------------------------- */

json_t *sim_place_call_json(const sim_proc *p, int node, const char *json_body, char *id,
                            size_t idlen)
{
    long st = 0;
    json_t *j = sim_ctl(p, node, "POST", "/sim/calls", json_body, &st);
    const char *cid = json_string_value(json_object_get(j, "id"));
    if (st != 201 || !cid) {
        fprintf(stderr, "sim_place_call: status %ld for %s\n", st, json_body);
        json_decref(j);
        return NULL;
    }
    if (id)
        snprintf(id, idlen, "%s", cid);
    return j;
}

json_t *sim_place_call(const sim_proc *p, int node, const char *app, const char *args_csv,
                       const char *caller_number, char *id, size_t idlen)
{
    json_t *req =
        json_pack("{s:s, s:s, s:s}", "app", app, "args", args_csv ? args_csv : "",
                  "caller_number", caller_number ? caller_number : "");
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    json_t *j = body ? sim_place_call_json(p, node, body, id, idlen) : NULL;
    free(body);
    return j;
}

static long chan_post(const sim_proc *p, int node, const char *chan, const char *what,
                      json_t *body)
{
    char path[512];
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    snprintf(path, sizeof path, "/sim/channels/%s/%s", chan, what);
    long st = s ? ctl_status(p, node, "POST", path, s) : 0;
    free(s);
    json_decref(body);
    return st;
}

long sim_send_dtmf(const sim_proc *p, int node, const char *chan, const char *digits)
{
    return chan_post(p, node, chan, "dtmf", json_pack("{s:s}", "digits", digits));
}

long sim_hangup_call(const sim_proc *p, int node, const char *chan, int cause)
{
    return chan_post(p, node, chan, "hangup", json_pack("{s:i}", "cause", cause));
}

json_t *sim_channel(const sim_proc *p, int node, const char *chan)
{
    char path[512];
    long st = 0;
    snprintf(path, sizeof path, "/sim/channels/%s", chan);
    json_t *j = sim_ctl(p, node, "GET", path, NULL, &st);
    if (st != 200) {
        json_decref(j);
        return NULL;
    }
    return j;
}

int sim_is_connected(const sim_proc *p, int node, const char *a, const char *b)
{
    char path[512];
    long st = 0;
    snprintf(path, sizeof path, "/sim/connected?a=%s&b=%s", a, b);
    json_t *j = sim_ctl(p, node, "GET", path, NULL, &st);
    json_t *c = json_object_get(j, "connected");
    int r = st == 200 && json_is_boolean(c) ? json_is_true(c) : -1;
    json_decref(j);
    return r;
}

json_t *sim_state(const sim_proc *p, int node)
{
    long st = 0;
    json_t *j = sim_ctl(p, node, "GET", "/sim/state", NULL, &st);
    if (st != 200) {
        json_decref(j);
        return NULL;
    }
    return j;
}

int sim_live_channels(const sim_proc *p, int node)
{
    json_t *j = sim_state(p, node);
    json_t *c = json_object_get(j, "channels");
    int n = json_is_integer(c) ? (int)json_integer_value(c) : -1;
    json_decref(j);
    return n;
}

long sim_originate_rule(const sim_proc *p, int node, const char *match,
                        const char *action, int delay_ms)
{
    json_t *b = json_pack("{s:s, s:s, s:i}", "match", match, "action", action, "delay_ms",
                          delay_ms);
    char *s = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    long st = s ? ctl_status(p, node, "POST", "/sim/originate-rules", s) : 0;
    free(s);
    return st;
}

long sim_reset(const sim_proc *p, int node)
{
    return ctl_status(p, node, "POST", "/sim/reset", NULL);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool sim_wait_live_channels(const sim_proc *p, int node, int n, int timeout_ms)
{
    uint64_t end = mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (sim_live_channels(p, node) == n)
            return true;
        if (mono_ms() >= end)
            return false;
        ms_sleep(10);
    }
}

bool sim_wait_connected(const sim_proc *p, int node, const char *a, const char *b,
                        bool want, int timeout_ms)
{
    uint64_t end = mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (sim_is_connected(p, node, a, b) == (want ? 1 : 0))
            return true;
        if (mono_ms() >= end)
            return false;
        ms_sleep(10);
    }
}

/* The first timeline entry of `chan` with "ev" == ev (NEW reference). */
static json_t *timeline_find(const sim_proc *p, int node, const char *chan,
                             const char *ev)
{
    json_t *c = sim_channel(p, node, chan), *e, *hit = NULL;
    size_t i;
    json_array_foreach(json_object_get(c, "timeline"), i, e)
    {
        const char *name = json_string_value(json_object_get(e, "ev"));
        if (name && strcmp(name, ev) == 0) {
            hit = json_incref(e);
            break;
        }
    }
    json_decref(c);
    return hit;
}

json_t *sim_wait_timeline(const sim_proc *p, int node, const char *chan, const char *ev,
                          int timeout_ms)
{
    uint64_t end = mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        json_t *hit = timeline_find(p, node, chan, ev);
        if (hit || mono_ms() >= end)
            return hit;
        ms_sleep(10);
    }
}

/* ---- event collector ---------------------------------------------------- */

#define EV_MAX_TYPES 64
#define EV_MAX_MSG   (16u * 1024 * 1024)

typedef enum {
    EV_CONNECTING = 0, /* connect issued, no answer yet */
    EV_OPEN,           /* upgraded, receiving */
    EV_FAILED,         /* connect or upgrade failed */
    EV_CLOSED,         /* was open, now closed */
} ev_state;

typedef struct ev_item {
    struct ev_item *next;
    json_t *event;
} ev_item;

typedef struct ev_count {
    char type[48];
    size_t n;
} ev_count;

struct sim_events {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    bool thread_started;
    atomic_int stopping; /* set by the owner, read by the service thread */
    struct lws_context *ctx;
    ev_state state;
    bool store;
    ev_item *head, *tail;
    size_t pending, received;
    ev_count counts[EV_MAX_TYPES];
    int ncounts;
    char *rx; /* one message being reassembled (service thread only) */
    size_t rx_len;
};

static void ev_set_state(sim_events *ev, ev_state st)
{
    pthread_mutex_lock(&ev->mu);
    ev->state = st;
    pthread_cond_broadcast(&ev->cond);
    pthread_mutex_unlock(&ev->mu);
}

/* Caller holds the mutex. */
static void ev_count_type(sim_events *ev, const char *type)
{
    for (int i = 0; i < ev->ncounts; i++)
        if (strcmp(ev->counts[i].type, type) == 0) {
            ev->counts[i].n++;
            return;
        }
    if (ev->ncounts < EV_MAX_TYPES) {
        snprintf(ev->counts[ev->ncounts].type, sizeof ev->counts[0].type, "%s", type);
        ev->counts[ev->ncounts++].n = 1;
    }
}

/* Takes ownership of `j`. */
static void ev_push(sim_events *ev, json_t *j)
{
    const char *type = json_string_value(json_object_get(j, "type"));
    pthread_mutex_lock(&ev->mu);
    ev->received++;
    ev_count_type(ev, type ? type : "");
    ev_item *it = ev->store ? malloc(sizeof *it) : NULL;
    if (it) {
        it->next = NULL;
        it->event = j;
        j = NULL;
        if (ev->tail)
            ev->tail->next = it;
        else
            ev->head = it;
        ev->tail = it;
        ev->pending++;
    }
    pthread_cond_broadcast(&ev->cond);
    pthread_mutex_unlock(&ev->mu);
    json_decref(j);
}

static int ev_receive(sim_events *ev, struct lws *wsi, const void *in, size_t len)
{
    if (lws_is_first_fragment(wsi))
        ev->rx_len = 0;
    if (ev->rx_len + len > EV_MAX_MSG)
        return -1;
    char *d = realloc(ev->rx, ev->rx_len + len + 1);
    if (!d)
        return -1;
    memcpy(d + ev->rx_len, in, len);
    ev->rx = d;
    ev->rx_len += len;
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return 0;
    json_t *j = json_loadb(ev->rx, ev->rx_len, 0, NULL);
    if (j)
        ev_push(ev, j);
    else
        fprintf(stderr, "sim_events: message is not JSON: %.*s\n", (int)ev->rx_len,
                ev->rx);
    ev->rx_len = 0;
    return 0;
}

static int ev_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                       void *in, size_t len)
{
    (void)user;
    sim_events *ev = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        ev_set_state(ev, EV_OPEN);
        break;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        ev_set_state(ev, EV_FAILED);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return ev_receive(ev, wsi, in, len);
    case LWS_CALLBACK_CLIENT_CLOSED:
        ev_set_state(ev, EV_CLOSED);
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols ev_protocols[] = {
    {"ari-events-client", ev_callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *ev_thread(void *arg)
{
    sim_events *ev = arg;
    while (!ev->stopping)
        if (lws_service(ev->ctx, 0) < 0)
            break;
    return NULL;
}

static int ev_connect(sim_events *ev, int port, const char *query)
{
    char path[1024];
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    snprintf(path, sizeof path, "/ari/events?%s", query);
    ci.context = ev->ctx;
    ci.address = "127.0.0.1";
    ci.port = port;
    ci.path = path;
    ci.host = "127.0.0.1";
    ci.origin = "127.0.0.1";
    ci.local_protocol_name = ev_protocols[0].name;
    return lws_client_connect_via_info(&ci) ? 0 : -1;
}

static ev_state ev_wait_state(sim_events *ev, ev_state not_state, int timeout_ms);

sim_events *sim_events_open_query(const sim_proc *p, int node, const char *query)
{
    struct lws_context_creation_info info;
    sim_events *ev = calloc(1, sizeof *ev);
    if (!ev)
        return NULL;
    pthread_mutex_init(&ev->mu, NULL);
    pthread_cond_init(&ev->cond, NULL);
    ev->store = true;
    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = ev_protocols;
    info.user = ev;
    info.options = 0;
    ev->ctx = lws_create_context(&info);
    if (!ev->ctx || ev_connect(ev, sim_proc_port(p, node), query) != 0)
        goto fail;
    if (pthread_create(&ev->thread, NULL, ev_thread, ev) != 0)
        goto fail;
    ev->thread_started = true;
    if (ev_wait_state(ev, EV_CONNECTING, 5000) != EV_OPEN)
        goto fail;
    return ev;
fail:
    fprintf(stderr, "sim_events: no events socket on node %d\n", node);
    sim_events_close(ev);
    return NULL;
}

sim_events *sim_events_open(const sim_proc *p, int node, const char *app)
{
    char q[512];
    snprintf(q, sizeof q, "app=%s&api_key=%s:%s", app, p->user, p->password);
    return sim_events_open_query(p, node, q);
}

static void deadline_after(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits until the state differs from not_state; returns the state then. */
static ev_state ev_wait_state(sim_events *ev, ev_state not_state, int timeout_ms)
{
    struct timespec dl;
    deadline_after(&dl, timeout_ms);
    pthread_mutex_lock(&ev->mu);
    while (ev->state == not_state)
        if (pthread_cond_timedwait(&ev->cond, &ev->mu, &dl) == ETIMEDOUT)
            break;
    ev_state st = ev->state;
    pthread_mutex_unlock(&ev->mu);
    return st;
}

static bool str_is(const json_t *v, const char *s)
{
    const char *x = json_string_value(v);
    return x && strcmp(x, s) == 0;
}

static bool target_is(const json_t *obj, const char *chan)
{
    const char *t = json_string_value(json_object_get(obj, "target_uri"));
    return t && strncmp(t, "channel:", 8) == 0 && strcmp(t + 8, chan) == 0;
}

static bool ev_matches(const json_t *e, const char *type, const char *chan)
{
    if (type && !str_is(json_object_get(e, "type"), type))
        return false;
    if (!chan)
        return true;
    return str_is(json_object_get(json_object_get(e, "channel"), "id"), chan) ||
           str_is(json_object_get(json_object_get(e, "peer"), "id"), chan) ||
           target_is(json_object_get(e, "playback"), chan) ||
           target_is(json_object_get(e, "recording"), chan);
}

/* Caller holds the mutex. Unlinks and returns the first match, or NULL. */
static json_t *ev_take(sim_events *ev, const char *type, const char *chan)
{
    ev_item *prev = NULL;
    for (ev_item *it = ev->head; it; prev = it, it = it->next) {
        if (!ev_matches(it->event, type, chan))
            continue;
        if (prev)
            prev->next = it->next;
        else
            ev->head = it->next;
        if (ev->tail == it)
            ev->tail = prev;
        json_t *j = it->event;
        free(it);
        ev->pending--;
        return j;
    }
    return NULL;
}

json_t *sim_events_wait(sim_events *ev, const char *type, const char *channel_id,
                        int timeout_ms)
{
    struct timespec dl;
    json_t *j;
    deadline_after(&dl, timeout_ms);
    pthread_mutex_lock(&ev->mu);
    while (!(j = ev_take(ev, type, channel_id)))
        if (pthread_cond_timedwait(&ev->cond, &ev->mu, &dl) == ETIMEDOUT) {
            j = ev_take(ev, type, channel_id);
            break;
        }
    pthread_mutex_unlock(&ev->mu);
    return j;
}

json_t *sim_events_next(sim_events *ev, int timeout_ms)
{
    return sim_events_wait(ev, NULL, NULL, timeout_ms);
}

size_t sim_events_pending(sim_events *ev)
{
    pthread_mutex_lock(&ev->mu);
    size_t n = ev->pending;
    pthread_mutex_unlock(&ev->mu);
    return n;
}

size_t sim_events_received(sim_events *ev)
{
    pthread_mutex_lock(&ev->mu);
    size_t n = ev->received;
    pthread_mutex_unlock(&ev->mu);
    return n;
}

void sim_events_set_store(sim_events *ev, bool store)
{
    pthread_mutex_lock(&ev->mu);
    ev->store = store;
    pthread_mutex_unlock(&ev->mu);
}

/* Caller holds the mutex. */
static size_t ev_count_locked(sim_events *ev, const char *type)
{
    for (int i = 0; i < ev->ncounts; i++)
        if (strcmp(ev->counts[i].type, type) == 0)
            return ev->counts[i].n;
    return 0;
}

size_t sim_events_count(sim_events *ev, const char *type)
{
    pthread_mutex_lock(&ev->mu);
    size_t n = ev_count_locked(ev, type);
    pthread_mutex_unlock(&ev->mu);
    return n;
}

bool sim_events_wait_count(sim_events *ev, const char *type, size_t n, int timeout_ms)
{
    struct timespec dl;
    deadline_after(&dl, timeout_ms);
    pthread_mutex_lock(&ev->mu);
    while (ev_count_locked(ev, type) < n)
        if (pthread_cond_timedwait(&ev->cond, &ev->mu, &dl) == ETIMEDOUT)
            break;
    bool ok = ev_count_locked(ev, type) >= n;
    pthread_mutex_unlock(&ev->mu);
    return ok;
}

bool sim_events_wait_closed(sim_events *ev, int timeout_ms)
{
    ev_state st = ev_wait_state(ev, EV_OPEN, timeout_ms);
    return st == EV_CLOSED || st == EV_FAILED;
}

void sim_events_close(sim_events *ev)
{
    if (!ev)
        return;
    if (ev->thread_started) {
        ev->stopping = 1;
        lws_cancel_service(ev->ctx);
        pthread_join(ev->thread, NULL);
    }
    if (ev->ctx)
        lws_context_destroy(ev->ctx);
    while (ev->head) {
        ev_item *it = ev->head;
        ev->head = it->next;
        json_decref(it->event);
        free(it);
    }
    free(ev->rx);
    pthread_cond_destroy(&ev->cond);
    pthread_mutex_destroy(&ev->mu);
    free(ev);
}
