/* test_sim_server.c - the asterisk-sim host as a real process: auth, the
 * events WebSocket, ApplicationReplaced, faults, node down/up, keep-alive,
 * signals, and command-line / config errors.
 *
 * Each test starts its own simulator (sim_proc) on free loopback ports and
 * stops it with SIGTERM, asserting a clean exit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "sim_proc.h"

extern char **environ;

/* ---- helpers ---------------------------------------------------------------- */

static int setup_one(void **state)
{
    static sim_proc p;
    assert_int_equal(sim_proc_start(&p, 1, 0.0), 0);
    *state = &p;
    return 0;
}

static int setup_two(void **state)
{
    static sim_proc p;
    assert_int_equal(sim_proc_start(&p, 2, 0.0), 0);
    *state = &p;
    return 0;
}

/* Every test ends with SIGTERM and a clean exit 0. */
static int teardown(void **state)
{
    int st = sim_proc_stop(*state);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    return 0;
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Sends a WebSocket upgrade for /ari/events?QUERY by hand and returns the
 * HTTP status of the answer (101 on success), 0 if none within 2 s. */
static int ws_probe(const sim_proc *p, int node, const char *query)
{
    char req[1024], resp[1024] = "";
    int fd = connect_port(sim_proc_port(p, node));
    if (fd < 0)
        return 0;
    int n = snprintf(
        req, sizeof req,
        "GET /ari/events?%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n",
        query);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return 0;
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    int status = 0;
    if (poll(&pfd, 1, 2000) == 1 && read(fd, resp, sizeof resp - 1) > 12)
        sscanf(resp, "HTTP/1.1 %d", &status); /* as Asterisk: 1.1 */
    close(fd);
    return status;
}

static const char *str(const json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "";
}

static const char *chan_id(const json_t *ev)
{
    return str(json_object_get(ev, "channel"), "id");
}

static uint64_t since(uint64_t t0)
{
    return clock_mono_ms() - t0;
}

/* ---- REST auth ---------------------------------------------------------------- */

static void test_rest_auth(void **state)
{
    sim_proc *p = *state;
    long st;
    char *b = sim_http(p, 0, "GET", "/ari/asterisk/info", NULL, false, &st);
    assert_int_equal(st, 401);
    assert_string_equal(b, "{\"message\":\"Authentication required\"}");
    free(b);

    b = sim_http(p, 0, "GET", "/ari/asterisk/info?api_key=ari:wrong", NULL, false, &st);
    assert_int_equal(st, 401);
    free(b);

    sim_proc wrong = *p;
    snprintf(wrong.password, sizeof wrong.password, "nope");
    json_decref(sim_ctl(&wrong, 0, "GET", "/ari/asterisk/info", NULL, &st));
    assert_int_equal(st, 401);

    json_t *j = sim_ctl(p, 0, "GET", "/ari/asterisk/info", NULL, &st); /* basic auth */
    assert_int_equal(st, 200);
    assert_non_null(j);
    json_decref(j);

    b = sim_http(p, 0, "GET", "/ari/asterisk/info?api_key=ari:ari", NULL, false, &st);
    assert_int_equal(st, 200);
    free(b);

    /* the control API takes no credentials; unknown paths are 404 */
    j = sim_ctl(p, 0, "GET", "/sim/state", NULL, &st);
    assert_int_equal(st, 200);
    json_decref(j);
    b = sim_http(p, 0, "GET", "/nothing/here", NULL, false, &st);
    assert_int_equal(st, 404);
    free(b);
}

/* ---- events WebSocket ----------------------------------------------------------- */

static void test_ws_auth(void **state)
{
    sim_proc *p = *state;
    assert_int_equal(ws_probe(p, 0, "app=queue"), 401);
    assert_int_equal(ws_probe(p, 0, "app=queue&api_key=ari:wrong"), 401);
    assert_int_equal(ws_probe(p, 0, "api_key=ari:ari"), 400);
    assert_int_equal(ws_probe(p, 0, "app=queue&api_key=ari:ari"), 101);
    assert_null(sim_events_open_query(p, 0, "app=queue&api_key=ari:bad"));
    sim_events *ev = sim_events_open(p, 0, "queue");
    assert_non_null(ev);
    sim_events_close(ev);
}

/* Calls and digits reach the socket as Asterisk sends them, in order. */
static void test_events_in_order(void **state)
{
    sim_proc *p = *state;
    char ids[3][64], args[16];
    sim_events *ev = sim_events_open(p, 0, "queue");
    assert_non_null(ev);
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "caller,q%d", i);
        json_decref(sim_place_call(p, 0, "queue", args, "100", ids[i], sizeof ids[i]));
    }
    for (int i = 0; i < 3; i++) {
        json_t *e = sim_events_wait(ev, "StasisStart", NULL, 3000);
        assert_non_null(e);
        assert_string_equal(chan_id(e), ids[i]);
        assert_string_equal(str(e, "application"), "queue");
        assert_string_equal(str(e, "asterisk_id"), "02:fc:00:00:00:01");
        snprintf(args, sizeof args, "q%d", i);
        assert_string_equal(
            json_string_value(json_array_get(json_object_get(e, "args"), 1)), args);
        json_decref(e);
    }
    assert_int_equal(sim_send_dtmf(p, 0, ids[1], "1234"), 204);
    for (const char *d = "1234"; *d; d++) {
        json_t *e = sim_events_wait(ev, "ChannelDtmfReceived", ids[1], 3000);
        assert_non_null(e);
        char want[2] = {*d, 0};
        assert_string_equal(str(e, "digit"), want);
        json_decref(e);
    }
    assert_int_equal(sim_hangup_call(p, 0, ids[0], 16), 204);
    json_t *e = sim_events_wait(ev, "StasisEnd", ids[0], 3000);
    assert_non_null(e);
    json_decref(e);
    /* the oracle helpers of sim_proc */
    e = sim_wait_timeline(p, 0, ids[1], "stasis_start", 2000);
    assert_non_null(e);
    json_decref(e);
    assert_null(sim_wait_timeline(p, 0, ids[1], "no_such_entry", 50));
    assert_true(sim_wait_live_channels(p, 0, 2, 2000));
    assert_false(sim_wait_connected(p, 0, ids[1], ids[2], true, 50));
    assert_true(sim_wait_connected(p, 0, ids[1], ids[2], false, 2000));
    sim_events_close(ev);
}

static void test_application_replaced(void **state)
{
    sim_proc *p = *state;
    char id[64];
    sim_events *old = sim_events_open(p, 0, "queue");
    assert_non_null(old);
    sim_events *cur = sim_events_open(p, 0, "queue");
    assert_non_null(cur);
    json_t *e = sim_events_wait(old, "ApplicationReplaced", NULL, 3000);
    assert_non_null(e);
    assert_string_equal(str(e, "application"), "queue");
    assert_string_equal(str(e, "asterisk_id"), "02:fc:00:00:00:01");
    assert_int_equal(strlen(str(e, "timestamp")), 28);
    json_decref(e);

    json_decref(sim_place_call(p, 0, "queue", "caller", "100", id, sizeof id));
    e = sim_events_wait(cur, "StasisStart", id, 3000);
    assert_non_null(e);
    json_decref(e);
    assert_null(sim_events_wait(old, NULL, NULL, 300)); /* the old one hears nothing */
    assert_null(sim_events_wait(cur, "ApplicationReplaced", NULL, 0));
    sim_events_close(old);
    sim_events_close(cur);
}

/* One socket may serve several apps (app=alpha,beta). */
static void test_two_apps_one_socket(void **state)
{
    sim_proc *p = *state;
    char a[64], b[64];
    sim_events *ev = sim_events_open(p, 0, "alpha,beta");
    assert_non_null(ev);
    json_decref(sim_place_call(p, 0, "alpha", "x", "1", a, sizeof a));
    json_decref(sim_place_call(p, 0, "beta", "y", "2", b, sizeof b));
    json_t *e1 = sim_events_wait(ev, "StasisStart", a, 3000);
    json_t *e2 = sim_events_wait(ev, "StasisStart", b, 3000);
    assert_non_null(e1);
    assert_non_null(e2);
    assert_string_equal(str(e1, "application"), "alpha");
    assert_string_equal(str(e2, "application"), "beta");
    json_decref(e1);
    json_decref(e2);
    sim_events_close(ev);
}

/* The core's timers run on the host's real clock: at scale 0.1 the 4.241 s
 * queue-youarenext plays for about 424 ms. */
static int setup_scaled(void **state)
{
    static sim_proc p;
    assert_int_equal(sim_proc_start(&p, 1, 0.1), 0);
    *state = &p;
    return 0;
}

static void test_timers_real_time(void **state)
{
    sim_proc *p = *state;
    char id[64], path[256];
    long st;
    sim_events *ev = sim_events_open(p, 0, "queue");
    assert_non_null(ev);
    json_decref(sim_place_call(p, 0, "queue", "caller", "1", id, sizeof id));
    snprintf(path, sizeof path, "/ari/channels/%s/answer", id);
    json_decref(sim_ctl(p, 0, "POST", path, NULL, &st));
    assert_int_equal(st, 204);
    snprintf(path, sizeof path, "/ari/channels/%s/play?media=sound:queue-youarenext", id);
    uint64_t t0 = clock_mono_ms();
    json_decref(sim_ctl(p, 0, "POST", path, NULL, &st));
    assert_int_equal(st, 201);
    json_t *e = sim_events_wait(ev, "PlaybackStarted", id, 3000);
    assert_non_null(e);
    json_decref(e);
    e = sim_events_wait(ev, "PlaybackFinished", id, 5000);
    assert_non_null(e);
    json_decref(e);
    uint64_t ms = since(t0);
    assert_true(ms >= 400);
    assert_true(ms < 3000);
    sim_events_close(ev);
}

/* ---- faults ------------------------------------------------------------------- */

static void test_fault_drop_ws(void **state)
{
    sim_proc *p = *state;
    sim_events *ev = sim_events_open(p, 0, "queue");
    assert_non_null(ev);
    assert_false(sim_events_wait_closed(ev, 100));
    assert_int_equal(sim_fault(p, 0, "{\"drop_ws\":true}"), 200);
    assert_true(sim_events_wait_closed(ev, 3000));
    sim_events_close(ev);
    /* the app is gone from the core: a call now fails Stasis */
    char id[64];
    json_decref(sim_place_call(p, 0, "queue", "caller", "1", id, sizeof id));
    json_t *ch = sim_channel(p, 0, id);
    assert_non_null(ch);
    assert_false(json_is_true(json_object_get(ch, "in_stasis")));
    json_decref(ch);
    /* and a new socket works */
    ev = sim_events_open(p, 0, "queue");
    assert_non_null(ev);
    sim_events_close(ev);
}

static void test_fault_http_500(void **state)
{
    sim_proc *p = *state;
    long st;
    assert_int_equal(sim_fault(p, 0, "{\"http_500\":2}"), 200);
    for (int i = 0; i < 2; i++) {
        char *b = sim_http(p, 0, "GET", "/ari/channels", NULL, true, &st);
        assert_int_equal(st, 500);
        assert_string_equal(b, "{\"message\":\"Internal Server Error\"}");
        free(b);
    }
    json_t *j = sim_ctl(p, 0, "GET", "/ari/channels", NULL, &st);
    assert_int_equal(st, 200);
    assert_true(json_is_array(j));
    json_decref(j);
    /* bad fault bodies are refused and change nothing */
    assert_int_equal(sim_fault(p, 0, "{\"http_500\":-1}"), 400);
    assert_int_equal(sim_fault(p, 0, "{\"bogus\":1}"), 400);
    assert_int_equal(sim_fault(p, 0, "not json"), 400);
    json_decref(sim_ctl(p, 0, "GET", "/ari/channels", NULL, &st));
    assert_int_equal(st, 200);
}

static void test_fault_latency(void **state)
{
    sim_proc *p = *state;
    long st;
    assert_int_equal(sim_fault(p, 0, "{\"latency_ms\":800}"), 200);
    uint64_t t0 = clock_mono_ms();
    json_decref(sim_ctl(p, 0, "GET", "/ari/channels", NULL, &st));
    assert_int_equal(st, 200);
    assert_true(since(t0) >= 790);
    /* the control API is not delayed */
    t0 = clock_mono_ms();
    json_decref(sim_ctl(p, 0, "GET", "/sim/state", NULL, &st));
    assert_true(since(t0) < 600);
    assert_int_equal(sim_fault(p, 0, "{\"latency_ms\":0}"), 200);
    t0 = clock_mono_ms();
    json_decref(sim_ctl(p, 0, "GET", "/ari/channels", NULL, &st));
    assert_int_equal(st, 200);
    assert_true(since(t0) < 600);
}

static void test_fault_refuse_ws(void **state)
{
    sim_proc *p = *state;
    assert_int_equal(sim_fault(p, 0, "{\"refuse_ws\":1}"), 200);
    assert_int_equal(ws_probe(p, 0, "app=queue&api_key=ari:ari"), 503);
    assert_int_equal(ws_probe(p, 0, "app=queue&api_key=ari:ari"), 101);
}

/* ---- node down / up ------------------------------------------------------------- */

static void test_node_down_up(void **state)
{
    sim_proc *p = *state;
    char id[64];
    long st;
    sim_events *ev = sim_events_open(p, 0, "queue");
    assert_non_null(ev);
    json_decref(sim_place_call(p, 0, "queue", "caller", "1", id, sizeof id));
    assert_int_equal(sim_live_channels(p, 1), 1);

    assert_int_equal(sim_set_node_down(p, 0, 1), 200);
    assert_true(sim_events_wait_closed(ev, 3000));
    sim_events_close(ev);
    int fd = -1;
    for (int i = 0; i < 100 && (fd = connect_port(sim_proc_port(p, 0))) >= 0; i++) {
        close(fd); /* the listener closes on the next loop turn */
        usleep(10000);
    }
    assert_int_equal(fd, -ECONNREFUSED);
    char *b = sim_http(p, 0, "GET", "/sim/state", NULL, false, &st);
    assert_null(b);
    assert_int_equal(st, 0);
    assert_int_equal(sim_live_channels(p, 1), 0);      /* its channels died with it */
    assert_int_equal(sim_set_node_down(p, 0, 1), 200); /* idempotent */

    assert_int_equal(sim_set_node_up(p, 0, 1), 200);
    json_t *j = sim_ctl(p, 0, "GET", "/ari/channels", NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
    ev = sim_events_open(p, 0, "queue");
    assert_non_null(ev);
    sim_events_close(ev);

    /* a node may take itself down: the answer still arrives */
    assert_int_equal(sim_set_node_down(p, 1, 1), 200);
    assert_int_equal(sim_set_node_up(p, 1, 0), 200);
    json_decref(sim_ctl(p, 0, "GET", "/sim/nodes/nosuch/down", NULL, &st));
    assert_int_equal(st, 405);
    json_decref(sim_ctl(p, 0, "POST", "/sim/nodes/nosuch/down", NULL, &st));
    assert_int_equal(st, 404);
}

/* A crash and a restart on the same ports: clients see the socket close,
 * then the same URLs serve an empty simulator. */
/* Each port is its own Asterisk: REST, calls and events on node2's port are
 * node2's, not node1's (lws rebinds connections to its first vhost; the host
 * must not take the node from the vhost). */
static void test_nodes_are_separate(void **state)
{
    sim_proc *p = *state;
    for (int node = 0; node < 2; node++) {
        long st = 0;
        json_t *info = sim_ctl(p, node, "GET", "/ari/asterisk/info", NULL, &st);
        assert_int_equal(st, 200);
        char want[8];
        snprintf(want, sizeof want, "node%d", node + 1);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(info, "config"), "name")), want);
        json_decref(info);
    }
    sim_events *ev1 = sim_events_open(p, 0, "queue");
    sim_events *ev2 = sim_events_open(p, 1, "queue");
    assert_non_null(ev1);
    assert_non_null(ev2);
    char id[64];
    json_t *c = sim_place_call(p, 1, "queue", "caller", "100", id, sizeof id);
    assert_non_null(c);
    assert_string_equal(str(c, "node"), "node2");
    json_decref(c);
    json_t *e = sim_events_wait(ev2, "StasisStart", id, 3000);
    assert_non_null(e);
    assert_string_equal(str(e, "asterisk_id"), "02:fc:00:00:00:02");
    json_decref(e);
    assert_null(sim_events_wait(ev1, "StasisStart", id, 200));
    long st = 0;
    char path[128];
    snprintf(path, sizeof path, "/ari/channels/%s/answer", id);
    json_decref(sim_ctl(p, 0, "POST", path, NULL, &st));
    assert_int_equal(st, 404); /* node1 has no such channel */
    json_decref(sim_ctl(p, 1, "POST", path, NULL, &st));
    assert_int_equal(st, 204);
    sim_events_close(ev1);
    sim_events_close(ev2);
}

static void test_restart_same_ports(void **state)
{
    sim_proc *p = *state;
    char id[64], url[64];
    long st;
    snprintf(url, sizeof url, "%s", sim_proc_url(p, 0));
    sim_events *ev = sim_events_open(p, 0, "queue");
    assert_non_null(ev);
    json_decref(sim_place_call(p, 0, "queue", "caller", "1", id, sizeof id));
    assert_int_equal(sim_live_channels(p, 0), 1);
    assert_int_equal(sim_proc_restart(p, SIGKILL), 0);
    assert_true(sim_events_wait_closed(ev, 3000));
    sim_events_close(ev);
    assert_string_equal(sim_proc_url(p, 0), url);
    assert_int_equal(sim_live_channels(p, 0), 0);
    json_decref(sim_ctl(p, 0, "GET", "/ari/channels", NULL, &st));
    assert_int_equal(st, 200);
}

/* ---- HTTP transport --------------------------------------------------------------- */

static size_t sink(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

/* One connection serves GET, POST (empty and JSON body), PUT and DELETE in
 * turn: libcurl reuses it every time. */
static void test_keepalive(void **state)
{
    static const struct {
        const char *method, *path, *body;
        long status;
    } reqs[] = {
        {"GET", "/ari/asterisk/info", NULL, 200},
        {"POST", "/ari/channels/nosuch/answer", "", 404},
        {"POST", "/ari/channels/nosuch/play", "{\"media\":[\"sound:beep\"]}", 404},
        {"PUT", "/ari/nosuch", "{}", 404},
        {"DELETE", "/ari/channels/nosuch", NULL, 404},
        {"GET", "/ari/channels", NULL, 200},
    };
    sim_proc *p = *state;
    char url[256];
    long connects_total = 0, code = 0;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_USERNAME, "ari");
    curl_easy_setopt(c, CURLOPT_PASSWORD, "ari");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
            long connects = 0;
            snprintf(url, sizeof url, "%s%s", sim_proc_url(p, 0), reqs[i].path);
            curl_easy_setopt(c, CURLOPT_URL, url);
            curl_easy_setopt(c, CURLOPT_HTTPGET, 1L); /* resets body options */
            if (reqs[i].body)
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, reqs[i].body);
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, reqs[i].method);
            assert_int_equal(curl_easy_perform(c), CURLE_OK);
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
            assert_int_equal(code, reqs[i].status);
            curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
            connects_total += connects;
        }
    assert_int_equal(connects_total, 1);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
}

/* A POST without Content-Length (lws would wait for a body until close) is
 * answered at once, and the connection closes after the answer. */
static void test_post_without_length(void **state)
{
    sim_proc *p = *state;
    char resp[2048] = "";
    const char req[] = "POST /sim/reset HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = connect_port(sim_proc_port(p, 0)), status = 0;
    size_t got = 0;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    uint64_t t0 = clock_mono_ms();
    bool eof = false;
    while (!eof && since(t0) < 3000 && got < sizeof resp - 1) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 200) != 1)
            continue;
        ssize_t n = read(fd, resp + got, sizeof resp - 1 - got);
        eof = n <= 0;
        got += n > 0 ? (size_t)n : 0;
    }
    close(fd);
    resp[got] = '\0';
    sscanf(resp, "HTTP/1.1 %d", &status);
    assert_int_equal(status, 204);
    assert_true(eof);
}

static void test_body_limit(void **state)
{
    sim_proc *p = *state;
    long st;
    size_t n = 2u * 1024 * 1024;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    big[n] = '\0';
    big[0] = '{';
    big[n - 1] = '}';
    char *b = sim_http(p, 0, "POST", "/sim/calls", big, false, &st);
    assert_int_equal(st, 413);
    free(b);
    free(big);
    json_decref(sim_ctl(p, 0, "GET", "/sim/state", NULL, &st));
    assert_int_equal(st, 200);
}

/* Query strings reach the core re-encoded: a value with '&', '+' and spaces
 * survives, and a form body counts as parameters as in Asterisk. */
static void test_query_encoding(void **state)
{
    sim_proc *p = *state;
    char id[64], path[256];
    long st;
    sim_events *ev = sim_events_open(p, 0, "queue");
    assert_non_null(ev);
    json_decref(sim_place_call(p, 0, "queue", "caller", "1", id, sizeof id));
    snprintf(path, sizeof path,
             "/ari/channels/%s/variable?variable=X&value=a%%26b+c%%2Bd", id);
    json_decref(sim_ctl(p, 0, "POST", path, NULL, &st));
    assert_int_equal(st, 204);
    snprintf(path, sizeof path, "/ari/channels/%s/variable?variable=X", id);
    json_t *j = sim_ctl(p, 0, "GET", path, NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(str(j, "value"), "a&b c+d");
    json_decref(j);

    /* a form body is read as parameters */
    CURL *c = curl_easy_init();
    char url[512];
    long code = 0;
    snprintf(url, sizeof url, "%s/ari/channels/%s/variable", sim_proc_url(p, 0), id);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "variable=Y&value=hello+world%21");
    curl_easy_setopt(c, CURLOPT_USERNAME, "ari");
    curl_easy_setopt(c, CURLOPT_PASSWORD, "ari");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 204);
    curl_easy_cleanup(c);
    snprintf(path, sizeof path, "/ari/channels/%s/variable?variable=Y", id);
    j = sim_ctl(p, 0, "GET", path, NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(str(j, "value"), "hello world!");
    json_decref(j);
    sim_events_close(ev);
}

/* ---- a client that stops reading ------------------------------------------------- */

static int setup_small_queue(void **state)
{
    static sim_proc p;
    static const char *const extra[] = {"--ws-queue-max", "262144", NULL};
    sim_proc_opts o = {.nnodes = 1, .scale = 0, .extra_args = extra};
    assert_int_equal(sim_proc_start_opts(&p, &o), 0);
    *state = &p;
    return 0;
}

/* Upgrades a raw socket for `app` with a tiny receive buffer; returns it. */
static int ws_raw_open(const sim_proc *p, const char *app)
{
    char req[512], resp[512];
    int fd = socket(AF_INET, SOCK_STREAM, 0), small = 4096;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)sim_proc_port(p, 0)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    int n = snprintf(req, sizeof req,
                     "GET /ari/events?app=%s&api_key=ari:ari HTTP/1.1\r\nHost: x\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: "
                     "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     app);
    assert_int_equal(write(fd, req, (size_t)n), n);
    struct pollfd pfd = {fd, POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    assert_true(read(fd, resp, sizeof resp - 1) > 12);
    assert_memory_equal(resp, "HTTP/1.1 101", 12);
    return fd;
}

/* Reads until EOF; true if EOF came within timeout_ms. */
static bool drained_to_eof(int fd, int timeout_ms)
{
    char buf[65536];
    uint64_t t0 = clock_mono_ms();
    while (since(t0) < (uint64_t)timeout_ms) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 200) != 1)
            continue;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            return true;
    }
    return false;
}

/* A socket whose client stops reading is dropped once its queue passes the
 * limit; a client that reads the same flow of events is not. */
static void test_slow_client_dropped(void **state)
{
    sim_proc *p = *state;
    char slow_id[64], fast_id[64];
    int fd = ws_raw_open(p, "slow");
    sim_events *fast = sim_events_open(p, 0, "fast");
    assert_non_null(fast);
    sim_events_set_store(fast, false);
    json_decref(sim_place_call(p, 0, "slow", "x", "1", slow_id, sizeof slow_id));
    json_decref(sim_place_call(p, 0, "fast", "x", "2", fast_id, sizeof fast_id));
    const char *digits = "01234567890123456789012345678901234567890123456789";
    for (int i = 0; i < 200; i++) {
        assert_int_equal(sim_send_dtmf(p, 0, slow_id, digits), 204);
        assert_int_equal(sim_send_dtmf(p, 0, fast_id, digits), 204);
    }
    assert_true(sim_events_wait_count(fast, "ChannelDtmfReceived", 200 * 50, 10000));
    assert_false(sim_events_wait_closed(fast, 100));
    assert_true(drained_to_eof(fd, 10000));
    close(fd);
    long st;
    json_decref(sim_ctl(p, 0, "GET", "/sim/state", NULL, &st));
    assert_int_equal(st, 200);
    sim_events_close(fast);
}

/* ---- process: signals, command line, config --------------------------------------- */

/* Runs asterisk-sim with argv[1..] and returns its exit status; its stderr
 * goes to errpath. */
static int run_sim(const char *const *args, const char *errpath)
{
    char bin[512];
    const char *argv[32];
    int n = 0;
    argv[n++] = proc_build_path("tests/asterisk-sim/asterisk-sim", bin, sizeof bin);
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int st = -1;
    if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) == 0)
        waitpid(pid, &st, 0);
    posix_spawn_file_actions_destroy(&fa);
    return st;
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* SIGTERM with an events socket open and an answer held back by latency:
 * the sim still exits 0 at once (and ASan-clean in the sanitizer build). */
static void test_sigterm_with_clients(void **state)
{
    (void)state;
    sim_proc p;
    char req[256];
    assert_int_equal(sim_proc_start(&p, 1, 0.0), 0);
    sim_events *ev = sim_events_open(&p, 0, "queue");
    assert_non_null(ev);
    assert_int_equal(sim_fault(&p, 0, "{\"latency_ms\":10000}"), 200);
    int fd = connect_port(sim_proc_port(&p, 0));
    assert_true(fd >= 0);
    int n = snprintf(req, sizeof req,
                     "GET /ari/channels?api_key=ari:ari HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(write(fd, req, (size_t)n), n);
    usleep(100000);
    uint64_t t0 = clock_mono_ms();
    int st = sim_proc_stop(&p);
    assert_true(since(t0) < 3000);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(sim_events_wait_closed(ev, 3000));
    sim_events_close(ev);
    close(fd);
}

static void test_bad_command_line(void **state)
{
    (void)state;
    char dir[512], err[600], ini[600], want[700];
    proc_tmpdir("sim_server_badcli", dir, sizeof dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    static const char *const bad[][5] = {
        {"--node", "node1", NULL},
        {"--node", "node1:99999", NULL},
        {"--node", "a b:1", NULL},
        {"--scale", "fast", "--node", "n:0"},
        {"--bogus", NULL},
        {NULL},
        {"--node", "n:0", "--max-runtime", "x"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = run_sim(bad[i], err);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 2);
    }
    snprintf(ini, sizeof ini, "%s/sim.ini", dir);
    write_file(ini, "[general]\nscale = 1\nuser = ari\n[node a]\nport = notaport\n");
    const char *args[] = {"--config", ini, NULL};
    int st = run_sim(args, err);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    snprintf(want, sizeof want, "%s:5: port", ini);
    assert_non_null(strstr(slurp(err), want));

    write_file(ini, "[node a]\nport = 0\n\n[peer IAX2/x]\nnode = nowhere\n");
    st = run_sim(args, err);
    assert_int_equal(WEXITSTATUS(st), 2);
    snprintf(want, sizeof want, "%s:5: peer IAX2/x: unknown node", ini);
    assert_non_null(strstr(slurp(err), want));

    write_file(ini, "[node a]\nport = 0\nfoo = 1\n");
    st = run_sim(args, err);
    assert_int_equal(WEXITSTATUS(st), 2);
    snprintf(want, sizeof want, "%s:3: unknown key 'foo'", ini);
    assert_non_null(strstr(slurp(err), want));

    write_file(ini, "[node a]\nport 0\n");
    st = run_sim(args, err);
    assert_int_equal(WEXITSTATUS(st), 2);
    snprintf(want, sizeof want, "%s:2: syntax error", ini);
    assert_non_null(strstr(slurp(err), want));
}

static void test_max_runtime(void **state)
{
    (void)state;
    char dir[512], err[600];
    proc_tmpdir("sim_server_maxrt", dir, sizeof dir);
    snprintf(err, sizeof err, "%s/stderr", dir);
    const char *args[] = {"--node", "n1:0", "--max-runtime", "1", NULL};
    uint64_t t0 = clock_mono_ms();
    int st = run_sim(args, err);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(since(t0) >= 900 && since(t0) < 5000);
}

/* A config file: credentials, a dialplan context with args, a peer. */
static void test_config_file(void **state)
{
    (void)state;
    char dir[512], ini[600], id[64];
    long st;
    sim_proc p;
    proc_tmpdir("sim_server_config", dir, sizeof dir);
    snprintf(ini, sizeof ini, "%s/sim.ini", dir);
    write_file(ini, "; test config\n[general]\nuser = u1\npassword = p1\n\n"
                    "[context accept@node1]\napp = queue\nargs = caller,{exten},7\n");
    sim_proc_opts o = {
        .nnodes = 1, .scale = 0, .config = ini, .user = "u1", .password = "p1"};
    assert_int_equal(sim_proc_start_opts(&p, &o), 0);
    json_decref(sim_ctl(&p, 0, "GET", "/ari/channels", NULL, &st));
    assert_int_equal(st, 200);
    char *b = sim_http(&p, 0, "GET", "/ari/channels?api_key=ari:ari", NULL, false, &st);
    assert_int_equal(st, 401);
    free(b);
    sim_events *ev = sim_events_open(&p, 0, "queue");
    assert_non_null(ev);
    json_decref(sim_place_call_json(&p, 0, "{\"context\":\"accept\",\"exten\":\"555\"}",
                                    id, sizeof id));
    json_t *e = sim_events_wait(ev, "StasisStart", id, 3000);
    assert_non_null(e);
    json_t *args = json_object_get(e, "args");
    assert_int_equal(json_array_size(args), 3);
    assert_string_equal(json_string_value(json_array_get(args, 1)), "555");
    json_decref(e);
    sim_events_close(ev);
    st = sim_proc_stop(&p);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rest_auth, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_ws_auth, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_events_in_order, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_application_replaced, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_two_apps_one_socket, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_timers_real_time, setup_scaled, teardown),
        cmocka_unit_test_setup_teardown(test_fault_drop_ws, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_fault_http_500, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_fault_latency, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_fault_refuse_ws, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_node_down_up, setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_nodes_are_separate, setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_restart_same_ports, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_post_without_length, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_query_encoding, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_slow_client_dropped, setup_small_queue,
                                        teardown),
        cmocka_unit_test(test_sigterm_with_clients),
        cmocka_unit_test(test_bad_command_line),
        cmocka_unit_test(test_max_runtime),
        cmocka_unit_test(test_config_file),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
