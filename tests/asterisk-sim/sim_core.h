/* sim_core.h - the simulated Asterisk 22: all state and behaviour, no I/O.
 *
 * The simulator is two halves that meet here:
 *
 *   core (sim_*.c)        channels, bridges, playbacks, recordings, originate,
 *                         links between nodes, the scaled media clock, the
 *                         /ari/... and /sim/... routes, the oracle. Pure logic:
 *                         it never touches a socket, a thread or the real clock.
 *   host (sim_server.c)   libwebsockets HTTP + WebSocket transport, one vhost per
 *                         node, auth, fault injection, timers, main().
 *
 * The host gives the core a clock, one-shot timers and an event sink; the core
 * gives the host one function per HTTP request. Because the core runs on any
 * clock, its unit and conformance tests drive it on a virtual clock, with no
 * sockets and no sleeping.
 *
 * Threads: none. Every function here, and every host hook, runs on the one
 * thread that owns the sim.
 */
#ifndef ARIQ_SIM_CORE_H
#define ARIQ_SIM_CORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sim sim;
typedef struct sim_timer sim_timer; /* opaque to the core; owned by the host */

typedef void (*sim_timer_fn)(void *arg);

typedef struct sim_host {
    void *ud;
    /* Wall-clock milliseconds since the epoch: event timestamps and oracle
     * times. A test host returns virtual time. */
    uint64_t (*now_ms)(void *ud);
    /* Arms a one-shot timer: fire(arg) runs once, after delay_ms (0 = on the
     * next turn of the loop, never from inside timer_add). After fire returns
     * the handle is dead: the core must not cancel it. */
    sim_timer *(*timer_add)(void *ud, uint64_t delay_ms, sim_timer_fn fire, void *arg);
    /* Cancels an armed timer; fire will not run. NULL is a no-op. */
    void (*timer_cancel)(void *ud, sim_timer *t);
    /* One ARI event for the WebSocket(s) of `app` on `node`. `event` is
     * borrowed for the call (the host serializes it). The core calls this only
     * for apps that are attached (sim_app_attach), in the order Asterisk would
     * send them. */
    void (*emit)(void *ud, int node, const char *app, const json_t *event);
} sim_host;

/* scale multiplies every simulated duration (sound lengths, originate answer
 * delays, DTMF durations): 1.0 is real time, 0.001 runs a 30 s cycle in 30 ms,
 * 0 makes them all 0 (zero-latency mode; still asynchronous via timers).
 * `host` is copied. Returns NULL on bad arguments or no memory. */
sim *sim_new(const sim_host *host, double scale);
/* Cancels the core's timers and frees everything. sim_free(NULL) is a no-op. */
void sim_free(sim *s);

/* Nodes: one simulated Asterisk each. Returns the node index (>= 0, dense, in
 * the order added) or a negative ARIQ_ error. asterisk_id as in events
 * ("02:fc:00:00:00:01"). */
int sim_node_add(sim *s, const char *name, const char *asterisk_id);
int sim_node_count(const sim *s);
int sim_node_find(const sim *s, const char *name); /* index or ARIQ_ENOTFOUND */
const char *sim_node_name(const sim *s, int node);  /* borrowed */

/* A dial string "TECH/PEER/..." originated on any node arrives on `to_node`
 * (e.g. sim_peer_add(s, "IAX2/node2", 1)). Returns 0 or an ARIQ_ error. */
int sim_peer_add(sim *s, const char *tech_peer, int to_node);

/* Dialplan of `node`: a call arriving at any exten of `context` runs
 * Stasis(app, args...), where args_template is a comma list in which "{exten}"
 * is replaced by the dialed exten ("link,{exten}" -> ["link","PAIR-1"]).
 * Returns 0 or an ARIQ_ error. */
int sim_dialplan_add(sim *s, int node, const char *context, const char *app,
                     const char *args_template);

/* The host tells the core when an events WebSocket for `app` connects to and
 * disconnects from `node`. Stasis(app) on a node with no such WebSocket fails
 * and the channel continues in the dialplan, as in Asterisk. Attaching twice
 * is counted (the host sends ApplicationReplaced to the older socket itself). */
void sim_app_attach(sim *s, int node, const char *app);
void sim_app_detach(sim *s, int node, const char *app);

/* Takes a node down as if its Asterisk died: every channel on it is gone
 * without events to its apps, link legs on other nodes see the far end hang
 * up, its bridges, playbacks and live recordings vanish. sim_node_up() brings
 * it back empty. The host closes / reopens its listener. */
int sim_node_down(sim *s, int node);
int sim_node_up(sim *s, int node);

/* One HTTP request to `node`, for every path under /ari/ and /sim/ except
 * the ones the host keeps (/ari/events, /sim/faults, /sim/nodes/.../down|up).
 *   path   decoded path without the query ("/ari/channels/abc/answer")
 *   query  raw query string without '?', percent-encoded, or NULL
 *   body   request body (JSON for POST /sim/... and for play/originate
 *          variants that take one), or NULL
 * On return *status is the HTTP status, *out_body a malloc'd body the caller
 * frees (NULL when there is none, e.g. 204) of *out_len bytes, and
 * *content_type a static string ("application/json"). Unknown paths answer as
 * Asterisk does (404 {"message":"Resource not found"}); a known path with the
 * wrong method answers 405.
 * Returns 0, or ARIQ_ENOMEM (then nothing is set). */
int sim_request(sim *s, int node, const char *method, const char *path, const char *query,
                const char *body, size_t body_len, int *status, char **out_body,
                size_t *out_len, const char **content_type);

#endif
