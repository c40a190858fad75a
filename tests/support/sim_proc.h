/* sim_proc.h - the Asterisk simulator as a child process, for integration tests.
 *
 * sim_proc_start() runs the built `tests/asterisk-sim/asterisk-sim` on free
 * loopback ports (one per node, named "node1", "node2", ...) and waits until it
 * prints its ready line. Everything here is blocking and meant for test code
 * only: REST and control requests use libcurl's easy API, and an event
 * collector runs a libwebsockets client on its own thread that moves every
 * event into a locked list.
 *
 * Nodes are numbered from 0 (node 0 is "node1"), as the simulator core numbers
 * them. The child is killed if the test process dies (see proc.h). */
#ifndef ARIQ_TEST_SIM_PROC_H
#define ARIQ_TEST_SIM_PROC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "proc.h"

#define SIM_PROC_MAX_NODES 8

/* Everything sim_proc_start_opts() can vary. Zeroed fields take defaults.
 * The strings are borrowed and must outlive the sim_proc (restart uses
 * them again). */
typedef struct sim_proc_opts {
    int nnodes;                    /* 1 .. SIM_PROC_MAX_NODES; 0 means 1 */
    double scale;                  /* --scale (0 is zero-latency mode) */
    const char *user;              /* NULL: "ari" */
    const char *password;          /* NULL: "ari" */
    const char *config;            /* --config FILE, or NULL; user/password above are
                                      always passed and win over its [general] */
    const char *const *extra_args; /* more argv entries, NULL-terminated, or NULL */
    int ready_timeout_ms;          /* 0: 10000 */
} sim_proc_opts;

typedef struct sim_proc {
    test_proc proc;
    sim_proc_opts opts;
    int nnodes;
    int ports[SIM_PROC_MAX_NODES];
    char urls[SIM_PROC_MAX_NODES][40]; /* "http://127.0.0.1:PORT" */
    char user[64];
    char password[64];
    char logpath[512]; /* the simulator's stdout+stderr */
} sim_proc;

/* Starts the simulator with nnodes nodes at `scale`, user/password ari/ari.
 * Returns 0 once it is ready, or -1 (it is not running then; its log says
 * why). `p` is yours; it holds no heap memory. */
int sim_proc_start(sim_proc *p, int nnodes, double scale);
int sim_proc_start_opts(sim_proc *p, const sim_proc_opts *o);

/* SIGTERM, wait up to 5 s (then SIGKILL). Returns the exit status as waitpid
 * reports it (WIFEXITED(st) && WEXITSTATUS(st) == 0 for a clean exit), or -1
 * if it was not running. */
int sim_proc_stop(sim_proc *p);

/* Stops the simulator with `sig` (SIGKILL: it crashed; SIGTERM: a clean
 * stop) and starts it again on the same ports with the same options: every
 * node comes back empty. Returns 0 once ready, or -1. */
int sim_proc_restart(sim_proc *p, int sig);

/* Borrowed strings that live as long as `p`. */
const char *sim_proc_url(const sim_proc *p, int node); /* "http://127.0.0.1:PORT" */
int sim_proc_port(const sim_proc *p, int node);
const char *sim_proc_user(const sim_proc *p);
const char *sim_proc_password(const sim_proc *p);

/* One HTTP request to `node`. `path` starts with "/ari/" or "/sim/" and may
 * carry a query string; /ari/ requests get HTTP basic auth with the
 * simulator's credentials. `json_body` (borrowed, may be NULL) is sent as
 * application/json. Sets *status (when not NULL) to the HTTP status, or 0 if
 * no response arrived (connection refused, timeout after 10 s).
 * Returns the response body parsed as JSON (NEW reference), or NULL when the
 * body is empty or not JSON. */
json_t *sim_ctl(const sim_proc *p, int node, const char *method, const char *path,
                const char *json_body, long *status);

/* As sim_ctl, but returns the raw body (malloc'd, NUL-terminated, yours to
 * free; "" when empty) and sends no credentials unless `with_auth`. Returns
 * NULL only if no response arrived; *status as for sim_ctl. */
char *sim_http(const sim_proc *p, int node, const char *method, const char *path,
               const char *body, bool with_auth, long *status);

/* Host control routes (documented in tests/asterisk-sim/sim_server.h).
 * sim_fault posts `json` (e.g. "{\"http_500\":2}") to /sim/faults of `node`.
 * sim_node_down/up take `node` down or up, asking through the port of
 * `via` (a node that is up). Each returns the HTTP status, 0 if none. */
long sim_fault(const sim_proc *p, int node, const char *json);
long sim_set_node_down(const sim_proc *p, int node, int via);
long sim_set_node_up(const sim_proc *p, int node, int via);

/* ---- Control API wrappers (tests/asterisk-sim/SIM.md) ----------------------
 * `node` is the port the request goes to; channel ids are global. */

/* POST /sim/calls {"app":app,"args":args_csv,"caller_number":number}: a call
 * arrives on `node` and enters Stasis(app,args). Copies the new channel id
 * into id (when not NULL). Returns the channel summary (NEW reference), or
 * NULL if the answer was not 201. */
json_t *sim_place_call(const sim_proc *p, int node, const char *app, const char *args_csv,
                       const char *caller_number, char *id, size_t idlen);

/* POST /sim/calls with any body (e.g. {"context":"queue-link","exten":"X"}).
 * Returns the summary (NEW reference) or NULL unless 201. */
json_t *sim_place_call_json(const sim_proc *p, int node, const char *json_body, char *id,
                            size_t idlen);

/* POST /sim/channels/{id}/dtmf {"digits":digits}; /hangup {"cause":cause}.
 * Return the HTTP status (204 when done), 0 if none. */
long sim_send_dtmf(const sim_proc *p, int node, const char *chan, const char *digits);
long sim_hangup_call(const sim_proc *p, int node, const char *chan, int cause);

/* GET /sim/channels/{id}: summary + "timeline" (NEW reference) or NULL. */
json_t *sim_channel(const sim_proc *p, int node, const char *chan);

/* GET /sim/connected?a=&b=: 1 connected, 0 not, -1 on error. */
int sim_is_connected(const sim_proc *p, int node, const char *a, const char *b);

/* GET /sim/state (NEW reference) or NULL; sim_live_channels() its
 * "channels" count, or -1 on error. */
json_t *sim_state(const sim_proc *p, int node);
int sim_live_channels(const sim_proc *p, int node);

/* POST /sim/originate-rules {"match","action","delay_ms"}; returns status. */
long sim_originate_rule(const sim_proc *p, int node, const char *match,
                        const char *action, int delay_ms);

/* POST /sim/reset; returns status (204). */
long sim_reset(const sim_proc *p, int node);

/* Waits, polling the control API every 10 ms for at most timeout_ms:
 *   sim_wait_live_channels  until /sim/state counts n live channels;
 *   sim_wait_connected      until /sim/connected?a=&b= is `want`;
 *   sim_wait_timeline       until the channel's timeline has an entry with
 *                           "ev" == ev; returns that entry (NEW reference)
 *                           or NULL on timeout.
 * The first two return true if the condition held in time. */
bool sim_wait_live_channels(const sim_proc *p, int node, int n, int timeout_ms);
bool sim_wait_connected(const sim_proc *p, int node, const char *a, const char *b,
                        bool want, int timeout_ms);
json_t *sim_wait_timeline(const sim_proc *p, int node, const char *chan, const char *ev,
                          int timeout_ms);

/* ---- Event collector ------------------------------------------------------
 * One ARI events WebSocket (/ari/events?app=APP&api_key=USER:PASSWORD) read
 * on a background thread; every text message is parsed and kept, in order,
 * until a wait consumes it. */
typedef struct sim_events sim_events;

/* Connects and waits for the upgrade (up to 5 s). Returns NULL if the
 * connection or the upgrade failed. Free with sim_events_close(). */
sim_events *sim_events_open(const sim_proc *p, int node, const char *app);

/* As sim_events_open, with the whole query string given (credentials are
 * not added: "app=queue&subscribeAll=true&api_key=ari:ari"). */
sim_events *sim_events_open_query(const sim_proc *p, int node, const char *query);

/* Waits up to timeout_ms for the first queued event whose "type" equals
 * `type` (NULL: any) and that concerns `channel_id` (NULL: any), i.e. whose
 * channel.id, peer.id, or playback/recording target_uri "channel:ID" matches.
 * Removes it from the queue and returns it (NEW reference), or NULL on
 * timeout. Events before it stay queued. */
json_t *sim_events_wait(sim_events *ev, const char *type, const char *channel_id,
                        int timeout_ms);

/* Removes and returns the oldest event (NEW reference), waiting up to
 * timeout_ms; NULL on timeout. */
json_t *sim_events_next(sim_events *ev, int timeout_ms);

/* Number of events received and not yet consumed. */
size_t sim_events_pending(sim_events *ev);

/* Total events received since open. */
size_t sim_events_received(sim_events *ev);

/* With store false, events are only counted (sim_events_received,
 * sim_events_count), not kept: for benchmarks that receive many thousands.
 * Default true. */
void sim_events_set_store(sim_events *ev, bool store);

/* How many events of `type` arrived since open (stored or not). */
size_t sim_events_count(sim_events *ev, const char *type);

/* Waits up to timeout_ms until sim_events_count(ev, type) >= n. Returns true
 * if it got there. */
bool sim_events_wait_count(sim_events *ev, const char *type, size_t n, int timeout_ms);

/* Waits up to timeout_ms for the server to close the socket. Returns true if
 * it is closed. */
bool sim_events_wait_closed(sim_events *ev, int timeout_ms);

/* Closes the socket, stops the thread and frees everything, queued events
 * included. NULL is a no-op. */
void sim_events_close(sim_events *ev);

#endif
