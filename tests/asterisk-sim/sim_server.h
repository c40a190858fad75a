/* sim_server.h - the simulator's host: Asterisk 22's ARI transport over
 * libwebsockets, around the core of sim_core.h.
 *
 * One lws context, one vhost per node. Each node listens on its own port on
 * the bind address; the host accepts connections itself and hands them to
 * lws (so it can stop and restart listening when a node goes down and up).
 * Everything runs on the thread that calls sim_server_run(): lws callbacks,
 * the core's timers and the core's events.
 *
 * What the host answers itself (everything else goes to sim_request):
 *   /ari/events          WebSocket upgrade, checked in Asterisk's order:
 *                        credentials (basic auth or api_key=user:password,
 *                        401 {"message":"Authentication required"}), then
 *                        app=NAME[,NAME2] (400, text/html as Asterisk), then
 *                        the refuse_ws fault (503). subscribeAll is accepted
 *                        and ignored. One text message per event, compact
 *                        JSON, in the order the core emits them. A newer
 *                        socket for the same app on the same node takes it
 *                        over: the older gets ApplicationReplaced and nothing
 *                        more. A socket with more than --ws-queue-max bytes
 *                        unsent (default 64 MiB) is dropped and logged.
 *                        Without Upgrade: 426.
 *   /ari/...             401 without valid credentials; then the faults
 *                        below; then the core. Query strings reach the core
 *                        re-encoded (lws decodes them), without api_key; an
 *                        application/x-www-form-urlencoded body is appended
 *                        to the query, as Asterisk reads it.
 *   /sim/faults          per node (the port you send it to):
 *                        POST {"drop_ws":true} close its event sockets now
 *                             {"http_500":N}   next N /ari/ requests: 500
 *                                              {"message":"Internal Server Error"}
 *                             {"latency_ms":N} hold every /ari/ answer N ms
 *                                              (0 turns it off)
 *                             {"refuse_ws":N}  refuse the next N upgrades (503)
 *                        (keys combine; unknown key or bad value: 400)
 *                        -> 200 {"node","http_500","latency_ms","refuse_ws"};
 *                        GET -> the same, unchanged.
 *   /sim/nodes/NAME/down POST, to any live node: NAME dies (sim_node_down):
 *                        its event sockets drop, its listener closes
 *                        (connections refused), its other connections close.
 *                        -> 200 {"node","state":"down","port"}; 404 unknown.
 *   /sim/nodes/NAME/up   POST: listens again on the same port, empty.
 *                        -> 200 {"node","state":"up","port"}.
 * Bodies over 1 MiB: 413. Paths outside /ari/ and /sim/: 404. */
#ifndef ARIQ_SIM_SERVER_H
#define ARIQ_SIM_SERVER_H

#include <stddef.h>

#define SIM_SERVER_MAX_NODES    16
#define SIM_SERVER_MAX_PEERS    64
#define SIM_SERVER_MAX_CONTEXTS 64

typedef struct sim_node_cfg {
    char name[32];        /* "node1": [A-Za-z0-9._-] */
    int port;             /* 0: the kernel picks one (see the ready line) */
    char asterisk_id[32]; /* "" : "02:fc:00:00:00:0N" with N its position */
} sim_node_cfg;

typedef struct sim_peer_cfg {
    char tech_peer[64]; /* "IAX2/node2" */
    char node[32];      /* the node it leads to */
} sim_peer_cfg;

typedef struct sim_context_cfg {
    char context[64]; /* dialplan context */
    char node[32];    /* on this node */
    char app[64];     /* Stasis(app, args) */
    char args[128];   /* comma list, "{exten}" replaced by the dialed exten */
} sim_context_cfg;

/* Plain data, filled by sim_main.c from the command line and the INI file.
 * The host adds, for every node N, peer IAX2/N -> N and context queue-link on
 * N -> Stasis(queue, link,{exten}) unless the config names them itself. */
typedef struct sim_server_cfg {
    char bind[64]; /* listen address, "127.0.0.1" */
    char user[64]; /* ARI credentials */
    char password[64];
    double scale;        /* sim_new's scale */
    size_t ws_queue_max; /* bytes queued on one events socket before it is dropped */
    int nnodes;
    sim_node_cfg nodes[SIM_SERVER_MAX_NODES];
    int npeers;
    sim_peer_cfg peers[SIM_SERVER_MAX_PEERS];
    int ncontexts;
    sim_context_cfg contexts[SIM_SERVER_MAX_CONTEXTS];
} sim_server_cfg;

typedef struct sim_server sim_server;

/* Builds the core and the lws context and starts listening on every node's
 * port. `cfg` is copied. Returns NULL on failure with a message in err. */
sim_server *sim_server_new(const sim_server_cfg *cfg, char *err, size_t errlen);

/* Stops listening, closes every connection, frees the core and everything
 * else. NULL is a no-op. Never call it from inside sim_server_run(). */
void sim_server_free(sim_server *srv);

/* Writes "asterisk-sim ready node1=127.0.0.1:PORT node2=..." (no newline).
 * Returns 0, or ARIQ_ERANGE if buf is too small. */
int sim_server_ready_line(const sim_server *srv, char *buf, size_t len);

/* Serves until sim_server_request_stop() or until max_runtime_s seconds
 * have passed (0: no limit). Returns 0, or a negative ARIQ_ error if the
 * event loop failed. */
int sim_server_run(sim_server *srv, unsigned max_runtime_s);

/* Asks sim_server_run() to return. Async-signal-safe: a signal handler may
 * call it. */
void sim_server_request_stop(sim_server *srv);

#endif
