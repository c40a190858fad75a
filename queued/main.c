/* queued - the ariq node daemon: serves the Stasis application of one
 * Asterisk server and shares the queues with every other node through Redis.
 *
 *   queued -c /etc/ariq/queued.conf          run
 *   queued -c /etc/ariq/queued.conf --check  validate the config and exit
 *
 * Exit codes: 0 clean stop (SIGTERM / SIGINT: drains first, see node_drain;
 * a second signal stops at once), 2 bad arguments or config, 1 could not
 * start. Logs go to stderr, one line per event, key=value. */
#include "node.h"
#include "qconfig.h"

#include "core/clock.h"
#include "core/daemon.h"
#include "core/err.h"
#include "core/log.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "queued"

typedef struct stopper {
    struct event_base *base;
    node *n;
    int signals;
} stopper;

static void on_drained(node *n, void *ud)
{
    (void)n;
    event_base_loopbreak(((stopper *)ud)->base);
}

/* The first SIGTERM / SIGINT drains (calls in progress may finish, up to
 * drain_timeout_s), a second one stops at once. Either way the channels
 * stay in Asterisk for the restart to re-adopt. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    stopper *st = arg;
    if (st->signals++ == 0) {
        LOG_I(MOD, "signal=%d draining (again to stop at once)", (int)sig);
        node_drain(st->n, on_drained, st);
    } else {
        LOG_I(MOD, "signal=%d stopping", (int)sig);
        event_base_loopbreak(st->base);
    }
}

static int run(const qcfg *c)
{
    int rc = 1;
    node *n = NULL;
    struct event *sigterm = NULL, *sigint = NULL;
    struct event_base *base = event_base_new();
    if (!base)
        goto fail;
    char err[512];
    if (node_new(base, c, &n, err, sizeof err) != 0) {
        LOG_E(MOD, "cannot start: %s", err);
        goto fail;
    }
    stopper st = {base, n, 0};
    sigterm = evsignal_new(base, SIGTERM, on_signal, &st);
    sigint = evsignal_new(base, SIGINT, on_signal, &st);
    if (!sigterm || !sigint || evsignal_add(sigterm, NULL) || evsignal_add(sigint, NULL))
        goto fail;
    event_base_dispatch(base);
    LOG_I(MOD, "node=%s stopped", c->node_id);
    rc = 0;
fail:
    node_free(n);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (base)
        event_base_free(base);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path;
    int check;
    int code = daemon_start(argc, argv, "queued", &path, &check);
    if (code >= 0)
        return code;
    qcfg *c = NULL;
    char err[1024];
    if (qcfg_load_file(path, &c, err, sizeof err) != 0) {
        fprintf(stderr, "queued: %s\n", err);
        return 2;
    }
    if (check) {
        printf("%s: OK, node %s, %zu queue(s)\n", path, c->node_id, c->nqueues);
        qcfg_free(c);
        return 0;
    }
    daemon_runtime(c->log_level, c->time_scale);
    int rc = run(c);
    qcfg_free(c);
    return rc;
}
