/* agentd - the ariq control plane: the HTTP + WebSocket API, the live
 * events feed, the queue_log writer and the janitor, on one libevent loop.
 *
 *   agentd -c /etc/ariq/agentd.conf          run
 *   agentd -c /etc/ariq/agentd.conf --check  validate the config and exit
 *
 * Signals: SIGTERM / SIGINT stop cleanly (exit 0); SIGHUP reopens the
 * queue_log (logrotate's postrotate). Exit codes: 0 clean stop, 2 bad
 * arguments or config, 1 could not start. Logs go to stderr, key=value;
 * never a token nor a password. */
#include "aconfig.h"
#include "actions.h"
#include "api.h"
#include "model.h"
#include "events.h"
#include "queue_log.h"

#include "core/clock.h"
#include "core/daemon.h"
#include "core/err.h"
#include "core/log.h"
#include "http/server.h"
#include "store/queue_store.h"
#include "store/reaper.h"
#include "store/store.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "agentd"
/* janitor period floor, as queued's heartbeat: a stalled loop must not get
 * a live node reaped */
#define JANITOR_MIN_MS 500

typedef struct app {
    const acfg *cfg;
    struct event_base *base;
    store *store;
    queue_store *qs;
    reaper *rp;
    events *ev;
    queue_log *ql;
    http_server *http;
    model *model;
    actions *actions;
    api_ctx api;
    struct event *cron, *sigterm, *sigint, *sighup;
} app;

static uint64_t period_ms(const app *a)
{
    uint64_t ms = clock_scaled_ms((uint64_t)a->cfg->heartbeat_s * 1000u);
    return ms < JANITOR_MIN_MS ? JANITOR_MIN_MS : ms;
}

/* The one cron: the janitor offers every node to reap each period. */
static void on_cron(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    reaper_offer(((app *)arg)->rp);
}

/* Redis (back): the nodes could not beat while it was away, so no reaping
 * for two periods (queued's cluster_redis_back). */
static void on_store_ready(store *s, void *ud)
{
    (void)s;
    app *a = ud;
    LOG_I(MOD, "redis=ready");
    reaper_hold(a->rp, clock_mono_ms() + 2 * period_ms(a));
}

static void on_store_down(store *s, const char *reason, void *ud)
{
    (void)s;
    (void)ud;
    LOG_W(MOD, "redis=down reason=\"%s\"", reason);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    app *a = arg;
    if (sig == SIGHUP) {
        int rc = a->ql ? queue_log_reopen(a->ql) : 0;
        LOG_I(MOD, "signal=HUP queue_log %s", !a->ql ? "off" : rc ? "reopen FAILED" : "reopened");
        return;
    }
    LOG_I(MOD, "signal=%d stopping", (int)sig);
    event_base_loopbreak(a->base);
}

static int open_store(app *a, store_config *sc, char *err, size_t errlen)
{
    const acfg *c = a->cfg;
    store_config_init(sc);
    int rc = store_config_set_url(sc, c->redis_url, err, errlen);
    if (rc)
        return rc;
    if (c->redis_password[0])
        snprintf(sc->password, sizeof sc->password, "%s", c->redis_password);
    snprintf(sc->ns, sizeof sc->ns, "%s", c->namespace_);
    snprintf(sc->scripts_dir, sizeof sc->scripts_dir, "%s", c->scripts_dir);
    sc->backoff_max_ms = 1000; /* as queued: back within a second of Redis */
    store_callbacks cbs = {.on_ready = on_store_ready, .on_down = on_store_down};
    if ((rc = store_new(a->base, sc, &cbs, a, &a->store, err, errlen)) != 0)
        return rc;
    qs_config qc;
    qs_config_init(&qc);
    snprintf(qc.node, sizeof qc.node, "agentd"); /* the `node` of events it causes */
    if ((rc = qs_new(a->store, &qc, &a->qs)) != 0 ||
        (rc = reaper_new(a->store, a->qs, NULL, &a->rp)) != 0)
        snprintf(err, errlen, "queue store: %s", ariq_strerror(rc));
    return rc;
}

static int open_qlog(app *a, char *err, size_t errlen)
{
    if (!a->cfg->queue_log[0])
        return 0;
    queue_log_config qc;
    queue_log_config_init(&qc);
    snprintf(qc.path, sizeof qc.path, "%s", a->cfg->queue_log);
    qc.fmt.log_caller_id_name = a->cfg->queue_log_caller_id_name;
    qc.fmt.agents = a->cfg->queue_log_agents;
    return queue_log_new(a->base, a->store, &qc, &a->ql, err, errlen);
}

static int open_http(app *a, char *err, size_t errlen)
{
    const acfg *c = a->cfg;
    a->api = (api_ctx){.cfg = c, .store = a->store, .events = a->ev, .qlog = a->ql,
                       .reaper = a->rp, .model = a->model, .actions = a->actions};
    http_server_cfg hc = {
        .bind = c->listen,
        .port = (int)c->port,
        .cert_path = c->tls_cert[0] ? c->tls_cert : NULL,
        .key_path = c->tls_key[0] ? c->tls_key : NULL,
        .max_body = (size_t)c->max_body,
        .rate_per_s = c->rate_per_s > 0 ? c->rate_per_s : -1,
        /* bursts of two seconds' worth, at least 10 (the server's own
         * default burst, 200, would let a low limit through for 40 s) */
        .rate_burst = c->rate_per_s > 5 ? (unsigned)(c->rate_per_s * 2) : 10,
        .on_request = api_on_request,
        .on_ws_open = api_on_ws_open,
        .on_ws_close = api_on_ws_close,
        .ud = &a->api,
    };
    return http_server_new(a->base, &hc, &a->http, err, errlen);
}

static int arm(app *a, char *err, size_t errlen)
{
    uint64_t ms = period_ms(a);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    a->cron = event_new(a->base, -1, EV_PERSIST, on_cron, a);
    a->sigterm = evsignal_new(a->base, SIGTERM, on_signal, a);
    a->sigint = evsignal_new(a->base, SIGINT, on_signal, a);
    a->sighup = evsignal_new(a->base, SIGHUP, on_signal, a);
    if (!a->cron || !a->sigterm || !a->sigint || !a->sighup || event_add(a->cron, &tv) ||
        evsignal_add(a->sigterm, NULL) || evsignal_add(a->sigint, NULL) ||
        evsignal_add(a->sighup, NULL)) {
        snprintf(err, errlen, "cannot arm the cron and signals");
        return ARIQ_ENOMEM;
    }
    return 0;
}

/* In this order: the server first (no callback after it), then the feed
 * and the writer (they use the store), the store (completes what is in
 * flight), then what its callbacks pointed to. */
static void app_close(app *a)
{
    http_server_free(a->http);
    actions_free(a->actions);
    model_free(a->model);
    events_free(a->ev);
    queue_log_free(a->ql);
    store_free(a->store);
    reaper_free(a->rp);
    qs_free(a->qs);
    struct event *evs[] = {a->cron, a->sigterm, a->sigint, a->sighup};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    if (a->base)
        event_base_free(a->base);
}

static int run(const acfg *c)
{
    app a = {.cfg = c};
    char err[512];
    store_config sc;
    int rc = 1;
    if (!(a.base = event_base_new())) {
        snprintf(err, sizeof err, "no event base");
        goto fail;
    }
    if (open_store(&a, &sc, err, sizeof err) != 0 ||
        events_new(a.base, a.store, &sc, &a.ev, err, sizeof err) != 0 ||
        model_new(a.base, a.store, a.ev, c, &a.model, err, sizeof err) != 0 ||
        actions_new(a.base, a.store, &sc, c, &a.actions, err, sizeof err) != 0 ||
        open_qlog(&a, err, sizeof err) != 0 || open_http(&a, err, sizeof err) != 0 ||
        arm(&a, err, sizeof err) != 0)
        goto fail;
    LOG_I(MOD, "listening on %s:%d%s, namespace %s, queue_log %s, janitor every %llu ms",
          c->listen, http_server_port(a.http), c->tls_cert[0] ? " (TLS)" : "", c->namespace_,
          c->queue_log[0] ? c->queue_log : "off", (unsigned long long)period_ms(&a));
    event_base_dispatch(a.base);
    LOG_I(MOD, "stopped");
    rc = 0;
fail:
    if (rc)
        LOG_E(MOD, "cannot start: %s", err);
    app_close(&a);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path;
    int check;
    int code = daemon_start(argc, argv, "agentd", &path, &check);
    if (code >= 0)
        return code;
    acfg *c = NULL;
    char err[1024];
    if (acfg_load_file(path, &c, err, sizeof err) != 0) {
        fprintf(stderr, "agentd: %s\n", err);
        return 2;
    }
    if (check) {
        printf("%s: OK, %zu token(s), listen %s:%ld, queue_log %s\n", path, c->ntokens,
               c->listen, c->port, c->queue_log[0] ? c->queue_log : "off");
        acfg_free(c);
        return 0;
    }
    daemon_runtime(c->log_level, c->time_scale);
    int rc = run(c);
    acfg_free(c);
    return rc;
}
