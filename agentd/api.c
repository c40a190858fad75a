/* api.c - see api.h. */
#include "api.h"
#include "api_int.h"

#include "core/err.h"
#include "core/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "api"
#ifndef ARIQ_VERSION
#define ARIQ_VERSION "0.1.0-dev"
#endif
#define EVENTS_PATH "/api/v1/events"

static void get_health(api_ctx *a, http_req *r);

static const api_route core_routes[] = {
    {"GET", "/api/v1/health", NULL, get_health, false},
};

/* Every table of routes: this file's, then each module's (api_int.h). */
static const struct {
    const api_route *v;
    const size_t *n;
} tables[] = {
    {core_routes, NULL},
    {api_read_routes, &api_read_nroutes},
    {api_action_routes, &api_action_nroutes},
    {api_wallboard_routes, &api_wallboard_nroutes},
};
#define NTABLES (sizeof tables / sizeof tables[0])

static size_t table_len(size_t t)
{
    return tables[t].n ? *tables[t].n : sizeof core_routes / sizeof core_routes[0];
}

/* ---- auth ------------------------------------------------------------------------ */

/* Equal in time that depends only on the lengths: every byte of the longer
 * is looked at whatever the first difference. */
static int ct_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen > blen ? alen : blen;
    unsigned char diff = (unsigned char)(alen != blen);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)((i < alen ? a[i] : 0) ^ (i < blen ? b[i] : 0));
    return diff == 0;
}

/* tok (len bytes) against every token of cfg. */
static api_auth check_token(const acfg *cfg, const char *tok, size_t len)
{
    if (len == 0)
        return API_AUTH_MISSING;
    int ok = 0;
    for (size_t i = 0; i < cfg->ntokens; i++) /* no early exit: every token compared */
        ok |= ct_equal(tok, len, cfg->tokens[i], strlen(cfg->tokens[i]));
    return ok ? API_AUTH_OK : API_AUTH_WRONG;
}

api_auth api_check_auth(const acfg *cfg, const char *h)
{
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return API_AUTH_MISSING;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    while (len && tok[len - 1] == ' ')
        len--;
    return check_token(cfg, tok, len);
}

static const char *const hdr_missing[] = {"WWW-Authenticate: Bearer realm=\"ariq\"", NULL};
static const char *const hdr_wrong[] = {
    "WWW-Authenticate: Bearer realm=\"ariq\", error=\"invalid_token\"", NULL};

static void reply_json_error(http_req *r, int status, const char *msg,
                             const char *const *headers)
{
    json_t *o = json_pack("{s:s}", "error", msg);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body)
        http_reply_ex(r, status, "application/json", body, strlen(body), headers);
    else
        http_reply_error(r, status, msg);
    free(body);
}

/* ---- routing --------------------------------------------------------------------- */

/* Does path match pattern, segment by segment? */
static bool path_match(const char *pat, const char *path)
{
    while (*pat && *path) {
        if (pat[0] == '{') {
            const char *pe = strchr(pat, '}'), *se = strchr(path, '/');
            size_t seg = se ? (size_t)(se - path) : strlen(path);
            if (!pe || seg == 0)
                return false;
            pat = pe + 1;
            path += seg;
        } else if (*pat++ != *path++) {
            return false;
        }
    }
    return *pat == '\0' && *path == '\0';
}

/* The first query parameter the route does not take, or NULL. The query is
 * rebuilt by the server as name[=value]&...; names are compared whole. */
static const char *bad_param(const api_route *rt, const char *query, char *name, size_t len)
{
    for (const char *p = query; p && *p;) {
        size_t n = strcspn(p, "=&");
        snprintf(name, len, "%.*s", (int)n, p);
        bool known = false;
        for (const char *const *k = rt->params; k && *k && !known; k++)
            known = strcmp(*k, name) == 0;
        if (!known)
            return name;
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return NULL;
}

/* The route for method + path: *found set, or NULL with allow listing the
 * methods the path takes ("" if none). */
static const api_route *find_route(const char *method, const char *path, char *allow,
                                   size_t len)
{
    allow[0] = '\0';
    for (size_t t = 0; t < NTABLES; t++) {
        for (size_t i = 0; i < table_len(t); i++) {
            const api_route *rt = &tables[t].v[i];
            if (!path_match(rt->pattern, path))
                continue;
            if (strcmp(rt->method, method) == 0)
                return rt;
            size_t n = strlen(allow);
            snprintf(allow + n, len - n, "%s%s", n ? ", " : "", rt->method);
        }
    }
    return NULL;
}

static void dispatch(api_ctx *a, http_req *r, const api_route *rt, const char *allow)
{
    const char *method = http_req_method(r), *path = http_req_path(r);
    char name[64], msg[400];
    if (rt) {
        if (bad_param(rt, http_req_query(r), name, sizeof name)) {
            snprintf(msg, sizeof msg, "unknown query parameter '%s'", name);
            reply_json_error(r, 400, msg, NULL);
            return;
        }
        rt->fn(a, r);
        return;
    }
    char allowed[128];
    snprintf(allowed, sizeof allowed, "%s", allow);
    if (!allowed[0] && strcmp(path, EVENTS_PATH) == 0)
        snprintf(allowed, sizeof allowed, "GET");
    if (allowed[0]) {
        char hdr[160];
        snprintf(hdr, sizeof hdr, "Allow: %s", allowed);
        const char *const hdrs[] = {hdr, NULL};
        snprintf(msg, sizeof msg, "method %s not allowed on %s (allowed: %s)", method, path,
                 allowed);
        if (strcmp(path, EVENTS_PATH) == 0 && strcmp(method, "GET") == 0)
            snprintf(msg, sizeof msg, "%s is a WebSocket: upgrade the connection", path);
        reply_json_error(r, strcmp(method, "GET") == 0 && strcmp(path, EVENTS_PATH) == 0
                                ? 400 : 405,
                         msg, hdrs);
        return;
    }
    snprintf(msg, sizeof msg, "no such route: %s", path);
    reply_json_error(r, 404, msg, NULL);
}

void api_on_request(http_server *s, http_req *r, void *ud)
{
    (void)s;
    api_ctx *a = ud;
    char allow[128];
    const api_route *rt = find_route(http_req_method(r), http_req_path(r), allow, sizeof allow);
    if (rt && rt->public) { /* the wallboard's page: it carries no data */
        dispatch(a, r, rt, allow);
        return;
    }
    switch (api_check_auth(a->cfg, http_req_header(r, "authorization"))) {
    case API_AUTH_MISSING:
        reply_json_error(r, 401, "authentication required: Authorization: Bearer <token>",
                         hdr_missing);
        return;
    case API_AUTH_WRONG:
        LOG_W(MOD, "peer=%s wrong bearer token", http_req_peer(r));
        reply_json_error(r, 401, "invalid token", hdr_wrong);
        return;
    case API_AUTH_OK:
        break;
    }
    dispatch(a, r, rt, allow);
}

bool api_on_ws_open(http_server *s, http_ws *w, const http_req *up, int *refuse_status,
                    void *ud)
{
    (void)s;
    api_ctx *a = ud;
    /* A browser cannot set a header on a WebSocket: the token may come as
     * ?access_token= (RFC 6750 2.3) instead. It is never logged. */
    const char *hdr = http_req_header(up, "authorization");
    const char *qtok = http_req_param(up, "access_token");
    api_auth au = hdr || !qtok ? api_check_auth(a->cfg, hdr)
                               : check_token(a->cfg, qtok, strlen(qtok));
    if (au != API_AUTH_OK) {
        if (au == API_AUTH_WRONG)
            LOG_W(MOD, "peer=%s wrong bearer token (upgrade)", http_req_peer(up));
        *refuse_status = 401;
        return false;
    }
    if (strcmp(http_req_path(up), EVENTS_PATH) != 0) {
        *refuse_status = 404;
        return false;
    }
    return events_open(a->events, w, up, refuse_status);
}

void api_on_ws_close(http_server *s, http_ws *w, void *ud)
{
    (void)s;
    api_ctx *a = ud;
    events_closed(a->events, w);
}

/* ---- handlers -------------------------------------------------------------------- */

void api_reply_json(http_req *r, int status, json_t *o)
{
    char *body = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (body)
        http_reply(r, status, "application/json", body, strlen(body));
    else
        http_reply_error(r, 500, "out of memory");
    free(body);
}

void api_reply_error(http_req *r, int status, const char *msg)
{
    reply_json_error(r, status, msg, NULL);
}

bool api_path_segment(const char *path, int idx, char *out, size_t len)
{
    const char *p = path;
    for (int i = 0; *p; i++) {
        while (*p == '/')
            p++;
        size_t n = strcspn(p, "/");
        if (n == 0)
            break;
        if (i == idx) {
            if (n >= len)
                return false;
            memcpy(out, p, n);
            out[n] = '\0';
            return true;
        }
        p += n;
    }
    return false;
}

/* Redis ready, the feed's position, the queue_log writer: 200 when Redis
 * is ready, 503 (same body) when not, for a load balancer's check. */
static void get_health(api_ctx *a, http_req *r)
{
    events_stats es;
    events_get_stats(a->events, &es);
    bool ready = store_is_ready(a->store);
    json_t *ql;
    if (a->qlog) {
        queue_log_stats qs;
        queue_log_get_stats(a->qlog, &qs);
        ql = json_pack("{s:b,s:s,s:b,s:s,s:I,s:I,s:I}", "enabled", 1, "path",
                       a->cfg->queue_log, "leader", qs.leader, "position", qs.pos, "lines",
                       (json_int_t)qs.lines, "entries", (json_int_t)qs.entries, "io_errors",
                       (json_int_t)qs.io_errors);
    } else {
        ql = json_pack("{s:b}", "enabled", 0);
    }
    reaper_stats rs = {0};
    if (a->reaper)
        reaper_get_stats(a->reaper, &rs);
    json_t *o = json_pack("{s:s,s:s,s:{s:b},s:{s:b,s:s,s:i,s:I,s:I},s:o,s:{s:I,s:I}}",
                          "status", ready ? "ok" : "degraded", "version", ARIQ_VERSION,
                          "redis", "ready", ready, "events", "reading", es.reading,
                          "position", es.position, "clients", (int)es.clients, "entries",
                          (json_int_t)es.entries, "sent", (json_int_t)es.sent, "queue_log", ql,
                          "janitor", "offers", (json_int_t)rs.offers, "reaped",
                          (json_int_t)rs.reaped);
    api_reply_json(r, ready ? 200 : 503, o);
}
