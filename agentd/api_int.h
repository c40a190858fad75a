/* api_int.h - what the route modules share with api.c: the route type, the
 * tables each module exports, and the reply helpers.
 *
 * Modules and their tables (api.c's dispatch walks them in this order):
 *   api.c        GET /api/v1/health
 *   read.c       the read routes (queues, agents, calls, recordings) and
 *                GET /metrics, from model.h's snapshot
 *   actions.c    the actions (pause, logoff, priority, hangup, recording),
 *                carried out by the owning node (actions.h)
 *   wallboard.c  the wallboard page and its assets (public: no data)
 * The contract of every route is agentd/API.md; agentd/openapi.yaml
 * describes it for clients and the conformance test. */
#ifndef ARIQ_AGENTD_API_INT_H
#define ARIQ_AGENTD_API_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "api.h"

typedef void (*api_route_fn)(api_ctx *a, http_req *r);

/* One route: method + path pattern ("{name}" matches one non-empty path
 * segment), the query parameters it takes (NULL-terminated; NULL none),
 * and whether it is served without a bearer token (the wallboard's static
 * page and assets only: they carry no data). */
typedef struct api_route {
    const char *method;
    const char *pattern;
    const char *const *params;
    api_route_fn fn;
    bool public;
} api_route;

extern const api_route api_read_routes[];
extern const size_t api_read_nroutes;
extern const api_route api_action_routes[];
extern const size_t api_action_nroutes;
extern const api_route api_wallboard_routes[];
extern const size_t api_wallboard_nroutes;

/* Replies with o (stolen; NULL: 500) as compact JSON, keys in order. */
void api_reply_json(http_req *r, int status, json_t *o);
/* Replies {"error": msg} with status. */
void api_reply_error(http_req *r, int status, const char *msg);
/* The idx-th (0-based) segment of path into out; false if absent or too
 * long. "/api/v1/agents/1001/pause": segment 3 is "1001". */
bool api_path_segment(const char *path, int idx, char *out, size_t len);

#endif
