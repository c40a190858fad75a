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
 *   /ari/events          WebSocket upgrade (basic auth or api_key; 401, 400)
 *   /ari/...             401 without valid credentials; fault 500s and latency
 *   /sim/faults          GET: this node's faults; POST: set them
 *   /sim/nodes/NAME/down POST: the node dies and stops listening
 *   /sim/nodes/NAME/up   POST: the node comes back empty and listens again */
#ifndef ARIQ_SIM_SERVER_H
#define ARIQ_SIM_SERVER_H

#include <stddef.h>

#define SIM_SERVER_MAX_NODES 16
#define SIM_SERVER_MAX_PEERS 64
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
    char bind[64];     /* listen address, "127.0.0.1" */
    char user[64];     /* ARI credentials */
    char password[64];
    double scale;      /* sim_new's scale */
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
