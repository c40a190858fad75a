/* api.h - agentd's HTTP API on shared/http/server: a routing table (method
 * + path pattern -> handler), bearer auth on every route and on every
 * WebSocket upgrade, errors as {"error":"..."}.
 *
 *   401  no or a wrong `Authorization: Bearer <token>` (WWW-Authenticate:
 *        Bearer); checked before anything else, so an unauthenticated
 *        client learns nothing about routes
 *   404  no route has that path
 *   405  a route has the path, not the method (Allow lists the methods)
 *   400  a query parameter the route does not take
 *
 * Routes: agentd/API.md. GET /api/v1/health is here, GET /api/v1/events
 * (WebSocket) in events.h, the others in the modules of api_int.h; a new
 * route is one line of its module's table. */
#ifndef ARIQ_AGENTD_API_H
#define ARIQ_AGENTD_API_H

#include <stdbool.h>

#include "aconfig.h"
#include "events.h"
#include "http/server.h"
#include "queue_log.h"
#include "store/reaper.h"
#include "store/store.h"

/* What the handlers read, all BORROWED; the daemon fills it before the loop
 * runs and keeps it alive as long as the server (qlog may stay NULL). */
struct model;
struct actions;
typedef struct api_ctx {
    const acfg *cfg;
    store *store;
    events *events;
    queue_log *qlog;
    reaper *reaper;
    struct model *model;     /* read.c's snapshot (model.h); may be NULL in tests */
    struct actions *actions; /* actions.c's requests to nodes (actions.h); idem */
} api_ctx;

/* The http_server callbacks; ud is the api_ctx. */
void api_on_request(http_server *s, http_req *r, void *ud);
bool api_on_ws_open(http_server *s, http_ws *w, const http_req *upgrade, int *refuse_status,
                    void *ud);
void api_on_ws_close(http_server *s, http_ws *w, void *ud);

typedef enum {
    API_AUTH_OK = 0,
    API_AUTH_MISSING, /* no Authorization header, or not "Bearer <token>" */
    API_AUTH_WRONG,   /* a bearer token no configured token equals */
} api_auth;

/* Checks an Authorization header value (may be NULL) against cfg's tokens,
 * in time that does not depend on where a token differs. */
api_auth api_check_auth(const acfg *cfg, const char *authorization);

#endif
