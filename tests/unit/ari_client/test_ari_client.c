/* test_ari_client.c - the real libcurl client on a libevent loop, against a
 * small evhttp server started by the test on 127.0.0.1 (it stands in for no
 * Asterisk behaviour: it records what arrived and answers what it is told).
 *
 * Covers: method/path/auth/body on the wire, statuses and bodies handed back,
 * callbacks never synchronous, chaining from a callback, connection refused,
 * a server that never answers (timeout), 500 concurrent requests, keep-alive
 * reuse and the max_connections cap, freeing with requests pending and from
 * inside a callback, and that the password never reaches a log line.
 * Every test ends with the loop empty. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "ari/client.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "proc.h"

#define MAX_CONNS_SEEN 64

/* ------------------------------------------------------------------------- */
/* The test's HTTP server                                                     */

typedef struct srv {
    struct event_base *base;
    struct evhttp *http;
    int port;
    int nreq;
    char method[16];
    char uri[4096];
    char body[4096];
    char auth[256];
    char ctype[128];
    char clen[32];
    char expect[64];
    int status;             /* answer with this ... */
    const char *reply;      /* ... and this body (NULL: none) */
    int delay_ms;           /* answer after this long */
    struct evhttp_connection *conns[MAX_CONNS_SEEN];
    int nconns, peak_conns, total_conns;
} srv;

static void srv_conn_closed(struct evhttp_connection *ec, void *ud)
{
    srv *s = ud;

    for (int i = 0; i < s->nconns; i++) {
        if (s->conns[i] == ec) {
            s->conns[i] = s->conns[--s->nconns];
            return;
        }
    }
}

/* Counts each distinct connection once, and how many are open together. */
static void srv_track(srv *s, struct evhttp_request *req)
{
    struct evhttp_connection *ec = evhttp_request_get_connection(req);

    for (int i = 0; i < s->nconns; i++)
        if (s->conns[i] == ec)
            return;
    if (s->nconns == MAX_CONNS_SEEN)
        return;
    s->conns[s->nconns++] = ec;
    s->total_conns++;
    if (s->nconns > s->peak_conns)
        s->peak_conns = s->nconns;
    evhttp_connection_set_closecb(ec, srv_conn_closed, s);
}

static void srv_copy_header(struct evhttp_request *req, const char *name,
                            char *out, size_t len)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
    snprintf(out, len, "%s", v ? v : "");
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    default: return "OTHER";
    }
}

typedef struct delayed {
    srv *s;
    struct evhttp_request *req;
} delayed;

static void srv_reply(srv *s, struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();

    if (s->reply) {
        evbuffer_add(out, s->reply, strlen(s->reply));
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
    }
    evhttp_send_reply(req, s->status, "X", out);
    evbuffer_free(out);
}

static void srv_delayed(evutil_socket_t fd, short what, void *ud)
{
    delayed *d = ud;

    (void)fd;
    (void)what;
    srv_reply(d->s, d->req);
    free(d);
}

static void srv_handle(struct evhttp_request *req, void *ud)
{
    srv *s = ud;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);

    s->nreq++;
    srv_track(s, req);
    snprintf(s->method, sizeof s->method, "%s", method_name(evhttp_request_get_command(req)));
    snprintf(s->uri, sizeof s->uri, "%s", evhttp_request_get_uri(req));
    if (n >= sizeof s->body)
        n = sizeof s->body - 1;
    evbuffer_copyout(in, s->body, n);
    s->body[n] = '\0';
    srv_copy_header(req, "Authorization", s->auth, sizeof s->auth);
    srv_copy_header(req, "Content-Type", s->ctype, sizeof s->ctype);
    srv_copy_header(req, "Content-Length", s->clen, sizeof s->clen);
    srv_copy_header(req, "Expect", s->expect, sizeof s->expect);
    if (s->delay_ms > 0) {
        delayed *d = malloc(sizeof *d);
        struct timeval tv = {0, s->delay_ms * 1000};
        d->s = s;
        d->req = req;
        event_base_once(s->base, -1, EV_TIMEOUT, srv_delayed, d, &tv);
        return;
    }
    srv_reply(s, req);
}

static void srv_start(srv *s, struct event_base *base)
{
    memset(s, 0, sizeof *s);
    s->base = base;
    s->status = 200;
    s->http = evhttp_new(base);
    assert_non_null(s->http);
    evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(s->http, srv_handle, s);
    for (int tries = 0; tries < 20; tries++) {
        s->port = proc_free_port();
        if (evhttp_bind_socket(s->http, "127.0.0.1", (ev_uint16_t)s->port) == 0)
            return;
    }
    fail_msg("cannot bind test server");
}

static void srv_stop(srv *s)
{
    if (s->http)
        evhttp_free(s->http);
    s->http = NULL;
    s->nconns = 0; /* its connections are gone with it */
}

/* ------------------------------------------------------------------------- */
/* Loop helpers                                                               */

typedef struct env {
    struct event_base *base;
    srv s;
    ari_client *c;
} env;

static void tick(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (void)ud;
}

/* Runs the loop until *counter >= target or timeout_ms passes. */
static void run_until(struct event_base *base, const int *counter, int target,
                      int timeout_ms)
{
    struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = {0, 5000};
    uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;

    event_add(t, &tv);
    while (*counter < target && clock_mono_ms() < end)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
}

/* Runs the loop for ms milliseconds. */
static void run_for(struct event_base *base, int ms)
{
    int never = 0;
    run_until(base, &never, 1, ms);
}

static ari_client *client_for(env *e, int port, long timeout_ms, int max_conns)
{
    char url[64];
    ari_client_config cfg = {
        .url = url, .user = "ari", .password = "secret",
        .timeout_ms = timeout_ms, .max_connections = max_conns,
    };

    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    return ari_client_new(e->base, &cfg);
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);

    e->base = event_base_new();
    srv_start(&e->s, e->base);
    e->c = client_for(e, e->s.port, 5000, 16);
    assert_non_null(e->c);
    *state = e;
    return 0;
}

/* Frees everything and checks the loop is left with nothing registered. */
static int teardown(void **state)
{
    env *e = *state;

    ari_client_free(e->c);
    if (e->s.http) {
        run_for(e->base, 20);   /* let the server see the closes */
        srv_stop(&e->s);
    }
    assert_int_equal(event_base_get_num_events(e->base, EVENT_BASE_COUNT_ADDED), 0);
    event_base_free(e->base);
    free(e);
    return 0;
}

/* One response, copied out of the callback (it is freed after). */
typedef struct got {
    int calls;
    long status;
    int err;
    char error[256];
    char body[4096];
    size_t body_len;
    json_t *json;           /* our reference */
    double elapsed_ms;
    char path[256];
    ari_rest *rest;
} got;

static void got_cb(ari_rest *rest, const ari_response *r, void *pd)
{
    got *g = pd;

    g->calls++;
    g->status = r->status;
    g->err = r->err;
    snprintf(g->error, sizeof g->error, "%s", r->error ? r->error : "");
    snprintf(g->body, sizeof g->body, "%s", r->body);
    g->body_len = r->body_len;
    json_decref(g->json);
    g->json = json_incref(r->json);
    g->elapsed_ms = r->elapsed_ms;
    snprintf(g->path, sizeof g->path, "%s", r->path);
    g->rest = rest;
}

/* ------------------------------------------------------------------------- */
/* Tests                                                                      */

static void test_get_json_and_auth(void **state)
{
    env *e = *state;
    got g = {0};

    e->s.reply = "{\"system\":{\"version\":\"22.0.0\"}}";
    assert_int_equal(ari_asterisk_info(ari_client_rest(e->c), got_cb, &g), 0);
    assert_int_equal(g.calls, 0); /* never from inside the call */
    assert_int_equal(ari_client_pending(e->c), 1);
    run_until(e->base, &g.calls, 1, 3000);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.err, 0);
    assert_string_equal(e->s.method, "GET");
    assert_string_equal(e->s.uri, "/ari/asterisk/info");
    assert_string_equal(e->s.auth, "Basic YXJpOnNlY3JldA=="); /* ari:secret */
    assert_non_null(g.json);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(g.json, "system"), "version")), "22.0.0");
    assert_string_equal(g.path, "/asterisk/info");
    assert_ptr_equal(g.rest, ari_client_rest(e->c));
    assert_true(g.elapsed_ms >= 0.0 && g.elapsed_ms < 3000.0);
    assert_int_equal(ari_client_pending(e->c), 0);
    json_decref(g.json);
}

static void test_post_json_body(void **state)
{
    env *e = *state;
    got g = {0};
    json_t *vars = json_pack("{s:s}", "QUEUE_PAIRING", "p-1");
    ari_originate o = {.endpoint = "Local/100@agents", .app = "queue",
                       .app_args = "agent", .variables = vars};

    e->s.reply = "{\"id\":\"1.1\",\"state\":\"Down\"}";
    assert_int_equal(ari_channel_originate(ari_client_rest(e->c), &o, got_cb, &g), 0);
    json_decref(vars); /* serialized already: the client keeps no reference */
    run_until(e->base, &g.calls, 1, 3000);
    assert_int_equal(g.status, 200);
    assert_string_equal(e->s.method, "POST");
    assert_string_equal(e->s.uri, "/ari/channels?endpoint=Local%2F100%40agents&app=queue&appArgs=agent");
    assert_string_equal(e->s.ctype, "application/json");
    assert_string_equal(e->s.body, "{\"variables\":{\"QUEUE_PAIRING\":\"p-1\"}}");
    assert_string_equal(json_string_value(json_object_get(g.json, "state")), "Down");
    json_decref(g.json);
}

/* A big body goes out at once, without "Expect: 100-continue" (libcurl adds
 * it past 1 MiB; Asterisk never answers 100, so libcurl would stall 1 s). */
static void test_large_body_no_expect(void **state)
{
    env *e = *state;
    got g = {0};
    json_t *vars = json_object();
    char key[32];

    for (int i = 0; i < 40000; i++) {
        snprintf(key, sizeof key, "VAR_%05d", i);
        json_object_set_new(vars, key, json_string("0123456789abcdef"));
    }
    ari_originate o = {.endpoint = "Local/1@x", .variables = vars};
    assert_int_equal(ari_channel_originate(ari_client_rest(e->c), &o, got_cb, &g), 0);
    json_decref(vars);
    run_until(e->base, &g.calls, 1, 3000);
    assert_int_equal(g.status, 200);
    assert_true(atoi(e->s.clen) > 1024 * 1024);
    assert_string_equal(e->s.expect, "");
    assert_true(g.elapsed_ms < 500.0);
}

static void test_post_without_body_and_204(void **state)
{
    env *e = *state;
    got g = {0};

    e->s.status = 204;
    assert_int_equal(ari_channel_answer(ari_client_rest(e->c), "1.1", got_cb, &g), 0);
    run_until(e->base, &g.calls, 1, 3000);
    assert_int_equal(g.status, 204);
    assert_string_equal(e->s.method, "POST");
    assert_string_equal(e->s.uri, "/ari/channels/1.1/answer");
    assert_string_equal(e->s.clen, "0");
    assert_string_equal(e->s.ctype, "");  /* not a form */
    assert_string_equal(e->s.body, "");
    assert_null(g.json);
    assert_int_equal(g.body_len, 0);
    assert_string_equal(g.body, "");

    g.calls = 0;
    assert_int_equal(ari_recording_unpause(ari_client_rest(e->c), "rec 1", got_cb, &g), 0);
    run_until(e->base, &g.calls, 1, 3000);
    assert_string_equal(e->s.method, "DELETE");
    assert_string_equal(e->s.uri, "/ari/recordings/live/rec%201/pause");
    assert_string_equal(e->s.ctype, "");
    assert_string_equal(e->s.clen, "");   /* no body at all */
    assert_int_equal(g.status, 204);
}

/* 4xx are results: status and body reach the callback, err stays 0. */
static void test_error_statuses_are_results(void **state)
{
    env *e = *state;
    got g = {0};
    const long statuses[] = {400, 404, 409, 422, 500};

    e->s.reply = "{\"message\":\"Channel not found\"}";
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        g.calls = 0;
        e->s.status = (int)statuses[i];
        assert_int_equal(ari_channel_get(ari_client_rest(e->c), "nope", got_cb, &g), 0);
        run_until(e->base, &g.calls, 1, 3000);
        assert_int_equal(g.calls, 1);
        assert_int_equal(g.status, statuses[i]);
        assert_int_equal(g.err, 0);
        assert_string_equal(json_string_value(json_object_get(g.json, "message")),
                            "Channel not found");
    }
    json_decref(g.json);
}

static void test_non_json_body(void **state)
{
    env *e = *state;
    got g = {0};

    e->s.status = 400;
    e->s.reply = "400 Bad Request HTTP request is missing param";
    assert_int_equal(ari_request(e->c, "GET", "/events", NULL, got_cb, &g), 0);
    run_until(e->base, &g.calls, 1, 3000);
    assert_int_equal(g.status, 400);
    assert_null(g.json);
    assert_string_equal(g.body, e->s.reply);
    assert_int_equal(g.body_len, strlen(e->s.reply));
}

/* A callback starts the next request: 20 in a chain. */
typedef struct chain {
    int done;
    int left;
    long last_status;
} chain;

static void chain_cb(ari_rest *rest, const ari_response *r, void *pd)
{
    chain *ch = pd;

    ch->last_status = r->status;
    if (r->status != 200 || --ch->left == 0) {
        ch->done = 1;
        return;
    }
    assert_int_equal(ari_asterisk_info(rest, chain_cb, ch), 0);
}

static void test_chain_from_callback_reuses_connection(void **state)
{
    env *e = *state;
    chain ch = {.left = 20};

    assert_int_equal(ari_asterisk_info(ari_client_rest(e->c), chain_cb, &ch), 0);
    run_until(e->base, &ch.done, 1, 5000);
    assert_int_equal(ch.done, 1);
    assert_int_equal(ch.left, 0);
    assert_int_equal(e->s.nreq, 20);
    assert_int_equal(e->s.total_conns, 1); /* keep-alive */
}

/* Restarts the test server on the port it had. */
static void srv_restart(srv *s)
{
    srv_stop(s);
    s->http = evhttp_new(s->base);
    assert_non_null(s->http);
    evhttp_set_gencb(s->http, srv_handle, s);
    assert_int_equal(evhttp_bind_socket(s->http, "127.0.0.1", (ev_uint16_t)s->port), 0);
}

/* The server goes away and comes back on the same port (an Asterisk
 * restart): the kept-alive connection is dead, the next request notices and
 * reconnects by itself. While the server is down, requests fail with EIO. */
static void test_server_restart(void **state)
{
    env *e = *state;
    got g = {0};

    assert_int_equal(ari_asterisk_info(ari_client_rest(e->c), got_cb, &g), 0);
    run_until(e->base, &g.calls, 1, 3000);
    assert_int_equal(g.status, 200);

    srv_restart(&e->s);
    run_for(e->base, 20);
    assert_int_equal(ari_asterisk_info(ari_client_rest(e->c), got_cb, &g), 0);
    run_until(e->base, &g.calls, 2, 3000);
    assert_int_equal(g.status, 200);
    assert_int_equal(e->s.total_conns, 2);

    srv_stop(&e->s);
    assert_int_equal(ari_asterisk_info(ari_client_rest(e->c), got_cb, &g), 0);
    run_until(e->base, &g.calls, 3, 3000);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, ARIQ_EIO);

    srv_restart(&e->s);
    assert_int_equal(ari_asterisk_info(ari_client_rest(e->c), got_cb, &g), 0);
    run_until(e->base, &g.calls, 4, 3000);
    assert_int_equal(g.calls, 4);
    assert_int_equal(g.status, 200);
}

static void test_connection_refused(void **state)
{
    env *e = *state;
    got g = {0};
    int port = proc_free_port(); /* nothing listens there */
    ari_client *c = client_for(e, port, 2000, 4);

    assert_int_equal(ari_asterisk_info(ari_client_rest(c), got_cb, &g), 0);
    assert_int_equal(g.calls, 0);
    run_until(e->base, &g.calls, 1, 3000);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, ARIQ_EIO);
    assert_true(strlen(g.error) > 0);
    assert_null(g.json);
    ari_client_free(c);
}

/* A socket that listens and never accepts: the kernel completes the TCP
 * handshake, then nothing ever answers. */
static int silent_listener(int *port_out)
{
    for (int tries = 0; tries < 20; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        int port = proc_free_port();

        a.sin_port = htons((uint16_t)port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 128) == 0) {
            *port_out = port;
            return fd;
        }
        close(fd);
    }
    fail_msg("no silent listener");
    return -1;
}

static void count_tick(evutil_socket_t fd, short what, void *ud)
{
    (void)fd;
    (void)what;
    (*(int *)ud)++;
}

/* Also shows the loop is never blocked: a 10 ms timer on the same loop keeps
 * its pace while the request hangs. */
static void test_timeout(void **state)
{
    env *e = *state;
    got g = {0};
    int port, ticks = 0;
    int fd = silent_listener(&port);
    ari_client *c = client_for(e, port, 300, 4);
    struct event *ticker = event_new(e->base, -1, EV_PERSIST, count_tick, &ticks);
    struct timeval ten_ms = {0, 10000};
    uint64_t t0 = clock_mono_ms();

    event_add(ticker, &ten_ms);
    assert_int_equal(ari_channel_answer(ari_client_rest(c), "1.1", got_cb, &g), 0);
    run_until(e->base, &g.calls, 1, 3000);
    uint64_t took = clock_mono_ms() - t0;
    event_free(ticker);
    assert_true(ticks >= 20); /* ~30 expected in 300 ms */
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.err, ARIQ_ETIMEDOUT);
    assert_true(took >= 290 && took < 1500);
    assert_true(g.elapsed_ms >= 290.0);
    ari_client_free(c);
    close(fd);
}

typedef struct many {
    int done;
    int ok;
    int wrong;
    unsigned char seen[1000];
} many;

typedef struct many_ref {
    many *m;
    int idx;
} many_ref;

static void many_cb(ari_rest *rest, const ari_response *r, void *pd)
{
    many_ref *ref = pd;
    many *m = ref->m;
    char want[32];

    (void)rest;
    snprintf(want, sizeof want, "/channels/c%d", ref->idx);
    if (r->status == 200 && strcmp(r->path, want) == 0)
        m->ok++;
    else
        m->wrong++;
    m->seen[ref->idx]++;
    m->done++;
}

static void test_500_concurrent(void **state)
{
    env *e = *state;
    many m = {0};
    static many_ref refs[500];
    char id[16];

    e->s.reply = "{}";
    for (int i = 0; i < 500; i++) {
        refs[i] = (many_ref){&m, i};
        snprintf(id, sizeof id, "c%d", i);
        assert_int_equal(ari_channel_get(ari_client_rest(e->c), id, many_cb, &refs[i]), 0);
    }
    assert_int_equal(ari_client_pending(e->c), 500);
    run_until(e->base, &m.done, 500, 20000);
    assert_int_equal(m.done, 500);
    assert_int_equal(m.ok, 500);
    assert_int_equal(m.wrong, 0);
    for (int i = 0; i < 500; i++)
        assert_int_equal(m.seen[i], 1);
    assert_int_equal(ari_client_pending(e->c), 0);
    assert_true(e->s.peak_conns <= 16);
}

static void test_max_connections(void **state)
{
    env *e = *state;
    many m = {0};
    static many_ref refs[100];
    char id[16];
    ari_client *c = client_for(e, e->s.port, 5000, 4);

    e->s.delay_ms = 5; /* so requests overlap */
    for (int i = 0; i < 100; i++) {
        refs[i] = (many_ref){&m, i};
        snprintf(id, sizeof id, "c%d", i);
        assert_int_equal(ari_channel_get(ari_client_rest(c), id, many_cb, &refs[i]), 0);
    }
    run_until(e->base, &m.done, 100, 20000);
    assert_int_equal(m.ok, 100);
    assert_true(e->s.peak_conns >= 2);   /* they did run in parallel */
    assert_true(e->s.peak_conns <= 4);
    assert_true(e->s.total_conns <= 4);  /* and were reused */
    ari_client_free(c);
}

typedef struct closing {
    int calls;
    int eclosed;
    int refused;
    ari_client *c;
    int free_in_cb;
} closing;

static void closing_cb(ari_rest *rest, const ari_response *r, void *pd)
{
    closing *k = pd;

    k->calls++;
    if (r->status == 0 && r->err == ARIQ_ECLOSED)
        k->eclosed++;
    if (k->free_in_cb) {
        k->free_in_cb = 0;
        ari_client_free(k->c);
    }
    /* A request started while the client closes is refused, not queued. */
    if (ari_asterisk_info(rest, closing_cb, k) == ARIQ_ECLOSED)
        k->refused++;
}

static void test_free_with_pending(void **state)
{
    env *e = *state;
    closing k = {0};
    int port;
    int fd = silent_listener(&port);
    ari_client *c = client_for(e, port, 5000, 4);

    for (int i = 0; i < 10; i++)
        assert_int_equal(ari_asterisk_info(ari_client_rest(c), closing_cb, &k), 0);
    run_for(e->base, 50); /* some connected, some queued inside libcurl */
    assert_int_equal(k.calls, 0);
    assert_int_equal(ari_client_pending(c), 10);
    ari_client_free(c);
    assert_int_equal(k.calls, 10);
    assert_int_equal(k.eclosed, 10);
    assert_int_equal(k.refused, 10);
    close(fd);
}

/* Freed before the loop ever ran: nothing was sent, each callback still runs
 * once with ECLOSED, and nothing is left on the loop. */
static void test_free_before_loop(void **state)
{
    env *e = *state;
    closing k = {0};
    ari_client *c = client_for(e, e->s.port, 5000, 4);

    for (int i = 0; i < 3; i++)
        assert_int_equal(ari_channel_answer(ari_client_rest(c), "c1", closing_cb, &k), 0);
    ari_client_free(c);
    assert_int_equal(k.calls, 3);
    assert_int_equal(k.eclosed, 3);
    run_for(e->base, 30);
    assert_int_equal(e->s.nreq, 0);
}

/* The first response's callback frees the client: the client goes away after
 * that callback returns; the others complete with ECLOSED. */
static void test_free_inside_callback(void **state)
{
    env *e = *state;
    closing k = {0};
    ari_client *c = client_for(e, e->s.port, 5000, 1);

    k.c = c;
    k.free_in_cb = 1;
    e->s.delay_ms = 2;
    for (int i = 0; i < 5; i++)
        assert_int_equal(ari_asterisk_info(ari_client_rest(c), closing_cb, &k), 0);
    run_until(e->base, &k.calls, 5, 3000);
    assert_int_equal(k.calls, 5);
    assert_int_equal(k.eclosed, 4);  /* one real answer, four closed */
    assert_int_equal(k.refused, 5);  /* no request accepted once closing */
    run_for(e->base, 30);            /* nothing of the client fires later */
    assert_int_equal(k.calls, 5);
}

static int log_lines;
static int log_leaks;
static void capture(log_level lvl, const char *line, void *ud)
{
    (void)lvl;
    (void)ud;
    log_lines++;
    if (strstr(line, "secret"))
        log_leaks++;
}

static void test_password_never_logged(void **state)
{
    env *e = *state;
    got g = {0};
    ari_client *bad = client_for(e, proc_free_port(), 1000, 1);

    log_set_level(LOG_LVL_DEBUG);
    log_set_sink(capture, NULL);
    ari_client *c = client_for(e, e->s.port, 1000, 1);
    e->s.status = 404;
    assert_int_equal(ari_channel_get(ari_client_rest(c), "x", got_cb, &g), 0);
    assert_int_equal(ari_channel_get(ari_client_rest(bad), "x", got_cb, &g), 0);
    run_until(e->base, &g.calls, 2, 3000);
    ari_client_free(c);
    ari_client_free(bad);
    log_set_sink(NULL, NULL);
    log_set_level(LOG_LVL_WARN);
    assert_int_equal(g.calls, 2);
    assert_true(log_lines >= 3); /* the new, the 404 and the refused */
    assert_int_equal(log_leaks, 0);
}

static void test_config_and_free_null(void **state)
{
    env *e = *state;
    ari_client_config none = {0};
    ari_client_config ftp = {.url = "ftp://x"};

    assert_null(ari_client_new(e->base, &none));
    assert_null(ari_client_new(e->base, &ftp));
    assert_null(ari_client_new(NULL, &ftp));
    ari_client_free(NULL);
    assert_int_equal(ari_client_pending(NULL), 0);
    assert_int_equal(ari_request(e->c, "GET", "no-slash", NULL, NULL, NULL), ARIQ_EINVAL);
    assert_int_equal(ari_request(e->c, "get", "/channels", NULL, NULL, NULL), ARIQ_EINVAL);
    assert_true(strlen(ari_client_errmsg(e->c)) > 0);
    assert_int_equal(ari_client_pending(e->c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_json_and_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_json_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_body_no_expect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_without_body_and_204, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_statuses_are_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_json_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_from_callback_reuses_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_500_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_before_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_password_never_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_and_free_null, setup, teardown),
    };
    log_set_level(LOG_LVL_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
