/* actions.c - see actions.h; the action routes of agentd/API.md "Actions"
 * and their command protocol.
 *
 * One request is one `pending`, going through
 *   P_OWNER  HGET <record> node: which node owns the party
 *   P_ALIVE  EXISTS the node's heartbeat
 *   P_SENT   the command is XADDed; waiting for the reply entry with its req
 *   P_FETCH  rec_fetch only: STRLEN / GET of {NS}:recfile:<req>
 *   P_DONE   answered (or orphaned by actions_free); only store callbacks
 *            still in flight hold it
 * A timer armed at the start answers 504 in any state but P_DONE. The
 * pending is in the table (req -> pending) from its start to its answer, so
 * a reply for a req not in the table (late, or another agentd's) is dropped.
 * A pending is freed when its answer is given and no store callback still
 * holds it (refs), never inside a callback that uses it after (habit 6). */
#include "actions.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_int.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/strmap.h"

#define MOD "actions"
#define READ_COUNT "100"
#define READ_BLOCK_MS "2000" /* well under the store's reply watchdog (10 s) */
#define CMDS_MAXLEN "10000"
#define MAX_FIELDS 2
#define REASON_MAX 128

/* ---- the actions and their bodies -------------------------------------------------- */

typedef enum { FT_STRING, FT_INT, FT_CHOICE } ftype;

/* One body field: its JSON name (also the command's field), type, limits. */
typedef struct field_spec {
    const char *name;
    ftype type;
    bool required;
    long min, max; /* FT_INT: the range; FT_STRING: max bytes */
    const char *const *choices; /* FT_CHOICE, NULL-terminated */
} field_spec;

static const char *const rec_choices[] = {"start", "stop", "pause", "unpause", NULL};

/* One action: its command, the record that names the owning node, and the
 * body it takes. The party's id is path segment 3 in every route. */
typedef struct action_spec {
    const char *cmd;
    const char *kind;    /* the record: {NS}:<kind>:<id> */
    const char *what;    /* for messages: "agent", "call", "recording" */
    const char *idfield; /* the command's field for the id */
    field_spec fields[MAX_FIELDS];
} action_spec;

enum { A_PAUSE, A_UNPAUSE, A_LOGOFF, A_PRIORITY, A_HANGUP, A_REC, A_REC_DELETE, A_REC_FETCH };

static const action_spec specs[] = {
    [A_PAUSE] = {"agent_pause", "agent", "agent", "agent",
                 {{"reason", FT_STRING, false, 0, REASON_MAX, NULL}}},
    [A_UNPAUSE] = {"agent_unpause", "agent", "agent", "agent", {{0}}},
    [A_LOGOFF] = {"agent_logoff", "agent", "agent", "agent", {{0}}},
    [A_PRIORITY] = {"call_priority", "call", "call", "callid",
                    {{"priority", FT_INT, true, 0, 1000, NULL}}},
    [A_HANGUP] = {"call_hangup", "call", "call", "callid", {{0}}},
    [A_REC] = {"rec", "call", "call", "callid",
               {{"action", FT_CHOICE, true, 0, 0, rec_choices}}},
    [A_REC_DELETE] = {"rec_delete", "recording", "recording", "name", {{0}}},
    [A_REC_FETCH] = {"rec_fetch", "recording", "recording", "name", {{0}}},
};

/* ---- state ------------------------------------------------------------------------- */

typedef enum {
    P_OWNER, /* HGET <record> node in flight */
    P_ALIVE, /* EXISTS <node heartbeat> in flight */
    P_SENT,  /* command XADDed (or being): waiting for the reply entry */
    P_FETCH, /* rec_fetch: reading the file the node left */
    P_DONE,  /* answered; held only by store callbacks in flight */
    P_COUNT
} pstate;

static const char *const pstate_names[P_COUNT] = {"owner", "alive", "sent", "fetch", "done"};

struct actions {
    struct event_base *base;
    store *cmd;          /* borrowed: commands */
    store *rd;           /* ours: XREAD BLOCK of the reply stream */
    const acfg *cfg;
    strmap *pending;     /* req -> pending */
    char replies[STORE_KEY_MAX]; /* {NS}:agentd:<id>:replies */
    char last[48];       /* the reply stream's last id read */
    bool known;          /* last is set: commands may be sent */
    bool reading;        /* an XREAD (or the first XREVRANGE) in flight */
    bool closing;
    unsigned long long seq; /* req numbers, from the start time: unique across restarts */
};

typedef struct pending {
    actions *x; /* NULL once actions_free ran */
    http_req *r;
    const action_spec *spec;
    pstate st;
    int refs; /* 1 until answered, + 1 per store command in flight */
    struct event *timer;
    char req[96];
    char id[STORE_ID_MAX + 1];
    char node[STORE_ID_MAX + 1];
    int nf;
    const char *fname[MAX_FIELDS];
    char fval[MAX_FIELDS][REASON_MAX + 1];
    char ctype[128]; /* rec_fetch: the file's content type */
} pending;

static void p_set_state(pending *p, pstate to)
{
    LOG_D(MOD, "req=%s %s -> %s", p->req, pstate_names[p->st], pstate_names[to]);
    p->st = to;
}

static void p_unref(pending *p)
{
    if (--p->refs > 0)
        return;
    if (p->timer)
        event_free(p->timer);
    free(p);
}

/* Gives up the request: out of the table, timer off, state done; the
 * table's reference dropped. The reply itself is the caller's. */
static http_req *p_finish(pending *p)
{
    http_req *r = p->r;
    p->r = NULL;
    if (p->x)
        strmap_del(p->x->pending, p->req);
    if (p->timer)
        event_del(p->timer);
    p_set_state(p, P_DONE);
    p_unref(p);
    return r;
}

static void p_error(pending *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void p_error(pending *p, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    LOG_I(MOD, "%s %s %s: %d %s", p->req, p->spec->cmd, p->id, status, msg);
    http_req *r = p_finish(p);
    if (r)
        api_reply_error(r, status, msg);
}

/* Sends one command for p on the command connection; on refusal answers
 * 503 and returns false. */
static bool p_send(pending *p, int argc, const char **argv, const size_t *lens, store_cb cb)
{
    if (store_command_argv(p->x->cmd, argc, argv, lens, cb, p) != 0) {
        p_error(p, 503, "Redis is not available");
        return false;
    }
    p->refs++;
    return true;
}

/* ---- the flow ---------------------------------------------------------------------- */

static void on_timeout(evutil_socket_t fd, short what, void *pd)
{
    (void)fd;
    (void)what;
    pending *p = pd;
    p_error(p, 504, "node %s did not answer within %ld ms (the action may still happen)",
            p->node[0] ? p->node : "(not yet known)", p->x->cfg->action_timeout_ms);
}

static bool reply_is_redis_error(pending *p, const redisReply *rep)
{
    if (!rep) {
        p_error(p, 503, "Redis is not available");
        return true;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        p_error(p, 503, "Redis refused: %.200s", rep->str);
        return true;
    }
    return false;
}

static void on_added(store *s, const redisReply *rep, void *pd)
{
    (void)s;
    pending *p = pd;
    if (p->st == P_SENT)
        reply_is_redis_error(p, rep);
    p_unref(p);
}

static void send_command(pending *p)
{
    actions *x = p->x;
    char key[STORE_KEY_MAX], deadline[32];
    if (!x->known || !store_is_ready(x->rd)) {
        p_error(p, 503, "Redis is not available (the reply stream is not read yet)");
        return;
    }
    if (store_key(store_get_keys(x->cmd), key, sizeof key, "node", p->node, "cmds") != 0) {
        p_error(p, 500, "node '%s' cannot name a key", p->node);
        return;
    }
    snprintf(deadline, sizeof deadline, "%llu",
             (unsigned long long)(clock_wall_ms() + (uint64_t)x->cfg->action_timeout_ms));
    const char *argv[16 + 2 * MAX_FIELDS] = {
        "XADD", key,        "MAXLEN", "~",        CMDS_MAXLEN,        "*",     "cmd",
        p->spec->cmd, "req", p->req, "reply_to", x->replies, "deadline_ms", deadline,
        p->spec->idfield, p->id};
    int argc = 16;
    for (int i = 0; i < p->nf; i++) {
        argv[argc++] = p->fname[i];
        argv[argc++] = p->fval[i];
    }
    p_set_state(p, P_SENT); /* the reply may be read before XADD's own reply */
    p_send(p, argc, argv, NULL, on_added);
}

static void on_alive(store *s, const redisReply *rep, void *pd)
{
    (void)s;
    pending *p = pd;
    if (p->st == P_ALIVE && !reply_is_redis_error(p, rep)) {
        if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
            send_command(p);
        else
            p_error(p, 503, "node %s is not available", p->node);
    }
    p_unref(p);
}

static void on_owner(store *s, const redisReply *rep, void *pd)
{
    (void)s;
    pending *p = pd;
    char key[STORE_KEY_MAX];
    if (p->st != P_OWNER || reply_is_redis_error(p, rep)) {
        p_unref(p);
        return;
    }
    if (rep->type != REDIS_REPLY_STRING) {
        p_error(p, 404, "no such %s '%s'", p->spec->what, p->id);
    } else if (!ids_valid(rep->str, STORE_ID_MAX) ||
               store_key_node_heartbeat(store_get_keys(p->x->cmd), key, sizeof key,
                                        rep->str) != 0) {
        p_error(p, 500, "the %s's record names a bad node", p->spec->what);
    } else {
        snprintf(p->node, sizeof p->node, "%s", rep->str);
        p_set_state(p, P_ALIVE);
        const char *argv[] = {"EXISTS", key};
        p_send(p, 2, argv, NULL, on_alive);
    }
    p_unref(p);
}

/* Starts p: in the table, timer armed, the owner asked. */
static void p_start(actions *x, pending *p)
{
    char key[STORE_KEY_MAX];
    snprintf(p->req, sizeof p->req, "%s-%llu", x->cfg->agentd_id, ++x->seq);
    p->timer = evtimer_new(x->base, on_timeout, p);
    if (!p->timer || strmap_put(x->pending, p->req, p) != 0) {
        http_req *r = p->r;
        if (p->timer)
            event_free(p->timer);
        free(p);
        api_reply_error(r, 500, "out of memory");
        return;
    }
    struct timeval tv = {x->cfg->action_timeout_ms / 1000,
                         (x->cfg->action_timeout_ms % 1000) * 1000};
    evtimer_add(p->timer, &tv);
    store_key(store_get_keys(x->cmd), key, sizeof key, p->spec->kind, p->id, NULL);
    const char *argv[] = {"HGET", key, "node"};
    p_send(p, 3, argv, NULL, on_owner);
}

/* ---- the node's reply ---------------------------------------------------------------- */

static void on_file(store *s, const redisReply *rep, void *pd)
{
    (void)s;
    pending *p = pd;
    if (p->st == P_FETCH && !reply_is_redis_error(p, rep)) {
        if (rep->type != REDIS_REPLY_STRING) {
            p_error(p, 502, "node %s left no file for the recording", p->node);
        } else if ((long long)rep->len > p->x->cfg->max_download) {
            p_error(p, 413, "the recording is %zu bytes, over max_download (%ld)", rep->len,
                    p->x->cfg->max_download);
        } else {
            LOG_I(MOD, "%s rec_fetch %s: 200 (%zu bytes)", p->req, p->id, rep->len);
            http_req *r = p_finish(p);
            http_reply(r, 200, p->ctype, rep->str, rep->len);
        }
    }
    p_unref(p);
}

/* The file's key goes whatever the outcome (sent after a GET, it runs
 * after it); it would expire within a minute anyway. */
static void del_recfile(actions *x, const char *req)
{
    char key[STORE_KEY_MAX];
    if (store_key(store_get_keys(x->cmd), key, sizeof key, "recfile", req, NULL) != 0)
        return;
    const char *del[] = {"DEL", key};
    store_command_argv(x->cmd, 2, del, NULL, NULL, NULL);
}

static void on_size(store *s, const redisReply *rep, void *pd)
{
    (void)s;
    pending *p = pd;
    if (p->st == P_FETCH && !reply_is_redis_error(p, rep)) {
        char key[STORE_KEY_MAX];
        store_key(store_get_keys(p->x->cmd), key, sizeof key, "recfile", p->req, NULL);
        actions *x = p->x;
        if (rep->type == REDIS_REPLY_INTEGER && rep->integer > x->cfg->max_download) {
            del_recfile(x, p->req);
            p_error(p, 413, "the recording is %lld bytes, over max_download (%ld)",
                    rep->integer, p->x->cfg->max_download);
        } else {
            const char *get[] = {"GET", key};
            if (p_send(p, 2, get, NULL, on_file))
                del_recfile(x, p->req);
        }
    }
    p_unref(p);
}

/* The file of a rec_fetch: its size first, so that a file over max_download
 * is never read; then its bytes. */
static void fetch_file(pending *p, json_t *body)
{
    const char *ct = json_string_value(json_object_get(body, "content_type"));
    bool ok = ct && *ct && strlen(ct) < sizeof p->ctype;
    for (const char *c = ct; ok && *c; c++)
        ok = (unsigned char)*c >= ' ' && *c != 127;
    snprintf(p->ctype, sizeof p->ctype, "%s", ok ? ct : "audio/wav");
    char key[STORE_KEY_MAX];
    store_key(store_get_keys(p->x->cmd), key, sizeof key, "recfile", p->req, NULL);
    p_set_state(p, P_FETCH);
    const char *strlen_argv[] = {"STRLEN", key};
    p_send(p, 2, strlen_argv, NULL, on_size);
}

/* Answers p with the node's reply (fields of its entry). */
static void p_reply(pending *p, const redisReply *kv)
{
    const redisReply *st = store_entry_field(kv, "status");
    const redisReply *er = store_entry_field(kv, "error"), *bd = store_entry_field(kv, "body");
    long status = st ? strtol(st->str, NULL, 10) : 0;
    if (status < 200 || status > 599) {
        p_error(p, 502, "node %s answered without a valid status", p->node);
        return;
    }
    if (status != 200) {
        p_error(p, (int)status, "%s", er && er->len ? er->str : "the node refused the action");
        return;
    }
    json_t *body = bd ? json_loadb(bd->str, bd->len, 0, NULL) : NULL;
    if (!json_is_object(body)) {
        json_decref(body);
        p_error(p, 502, "node %s answered with a malformed body", p->node);
        return;
    }
    if (p->spec == &specs[A_REC_FETCH]) {
        fetch_file(p, body);
        json_decref(body);
        return;
    }
    LOG_I(MOD, "%s %s %s on node %s: 200", p->req, p->spec->cmd, p->id, p->node);
    http_req *r = p_finish(p);
    api_reply_json(r, 200, body);
}

/* One entry of the reply stream: its request answered, or dropped. */
static void on_entry(actions *x, const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
        return;
    snprintf(x->last, sizeof x->last, "%s", e->element[0]->str);
    const redisReply *kv = e->element[1], *req = store_entry_field(kv, "req");
    pending *p = req ? strmap_get(x->pending, req->str) : NULL;
    if (p && p->st == P_SENT) {
        p_reply(p, kv);
        return;
    }
    LOG_I(MOD, "reply for %s dropped (late or unknown)", req ? req->str : "(no req)");
    const redisReply *st = store_entry_field(kv, "status");
    if (!p && req && st && strcmp(st->str, "200") == 0 && ids_valid(req->str, STORE_ID_MAX))
        del_recfile(x, req->str); /* a late rec_fetch's file: nobody will read it */
}

/* ---- the reader ------------------------------------------------------------------- */

static void read_next(actions *x);

static void on_read(store *s, const redisReply *rep, void *pd)
{
    (void)s;
    actions *x = pd;
    x->reading = false;
    if (!rep || x->closing)
        return; /* connection lost: on_reader_ready resumes from last */
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2 &&
        rep->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *entries = rep->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; i++)
            on_entry(x, entries->element[i]);
    } else if (rep->type == REDIS_REPLY_ERROR) {
        LOG_W(MOD, "reading %s: %s", x->replies, rep->str);
    }
    read_next(x);
}

static void read_next(actions *x)
{
    if (x->reading || x->closing || !store_is_ready(x->rd))
        return;
    const char *argv[] = {"XREAD", "COUNT", READ_COUNT, "BLOCK", READ_BLOCK_MS,
                          "STREAMS", x->replies, x->last};
    if (store_command_argv(x->rd, 8, argv, NULL, on_read, x) == 0)
        x->reading = true;
}

/* The first position: the stream's last entry now (an older one answers no
 * request of this process). Commands wait for it (known). */
static void on_start(store *s, const redisReply *rep, void *pd)
{
    (void)s;
    actions *x = pd;
    x->reading = false;
    if (!rep || rep->type != REDIS_REPLY_ARRAY || x->closing)
        return; /* tried again at the next ready */
    snprintf(x->last, sizeof x->last, "0-0");
    if (rep->elements && rep->element[0]->type == REDIS_REPLY_ARRAY &&
        rep->element[0]->elements == 2 && rep->element[0]->element[0]->type == REDIS_REPLY_STRING)
        snprintf(x->last, sizeof x->last, "%s", rep->element[0]->element[0]->str);
    x->known = true;
    LOG_I(MOD, "reading replies on %s from %s", x->replies, x->last);
    read_next(x);
}

static void on_reader_ready(store *s, void *ud)
{
    actions *x = ud;
    if (x->known) {
        read_next(x);
        return;
    }
    const char *argv[] = {"XREVRANGE", x->replies, "+", "-", "COUNT", "1"};
    if (store_command_argv(s, 6, argv, NULL, on_start, x) == 0)
        x->reading = true;
}

/* ---- the routes -------------------------------------------------------------------- */

/* Checks one body field's value against f; fills p's command field. */
static bool check_field(http_req *r, pending *p, const field_spec *f, json_t *v)
{
    char msg[256];
    const char *s = json_string_value(v);
    if (f->type == FT_INT) {
        json_int_t n = json_integer_value(v);
        if (!json_is_integer(v) || n < f->min || n > f->max) {
            snprintf(msg, sizeof msg, "'%s' must be an integer from %ld to %ld", f->name,
                     f->min, f->max);
            api_reply_error(r, 400, msg);
            return false;
        }
        snprintf(p->fval[p->nf], sizeof p->fval[0], "%lld", (long long)n);
    } else if (f->type == FT_CHOICE) {
        bool ok = false;
        for (const char *const *c = f->choices; s && *c && !ok; c++)
            ok = strcmp(*c, s) == 0;
        if (!ok) {
            snprintf(msg, sizeof msg, "'%s' must be one of start, stop, pause, unpause",
                     f->name);
            api_reply_error(r, 400, msg);
            return false;
        }
        snprintf(p->fval[p->nf], sizeof p->fval[0], "%s", s);
    } else {
        bool ok = s && json_string_length(v) <= (size_t)f->max;
        for (const char *c = s; ok && *c; c++)
            ok = (unsigned char)*c >= ' ' && *c != 127 && *c != '|';
        if (!ok) {
            snprintf(msg, sizeof msg,
                     "'%s' must be a string of at most %ld bytes, without control "
                     "characters or '|'", f->name, f->max);
            api_reply_error(r, 400, msg);
            return false;
        }
        snprintf(p->fval[p->nf], sizeof p->fval[0], "%s", s);
    }
    p->fname[p->nf++] = f->name;
    return true;
}

/* Parses r's body against spec into p (an empty body is {}). Answers 400
 * and returns false on anything wrong. */
static bool parse_body(http_req *r, pending *p, const action_spec *spec)
{
    size_t len;
    const char *text = http_req_body(r, &len);
    json_error_t je;
    char msg[300];
    json_t *o = len ? json_loadb(text, len, JSON_REJECT_DUPLICATES, &je) : json_object();
    if (!o) {
        snprintf(msg, sizeof msg, "malformed JSON at line %d, column %d: %s", je.line,
                 je.column, je.text);
        api_reply_error(r, 400, msg);
        return false;
    }
    bool ok = json_is_object(o);
    if (!ok)
        api_reply_error(r, 400, "the body must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool known = false;
        for (int i = 0; ok && i < MAX_FIELDS && spec->fields[i].name && !known; i++)
            known = strcmp(spec->fields[i].name, k) == 0;
        if (ok && !known) {
            snprintf(msg, sizeof msg, "unknown field '%.64s'", k);
            api_reply_error(r, 400, msg);
            ok = false;
        }
    }
    for (int i = 0; ok && i < MAX_FIELDS && spec->fields[i].name; i++) {
        const field_spec *f = &spec->fields[i];
        json_t *fv = json_object_get(o, f->name);
        if (!fv && f->required) {
            snprintf(msg, sizeof msg, "'%s' is required", f->name);
            api_reply_error(r, 400, msg);
            ok = false;
        } else if (fv) {
            ok = check_field(r, p, f, fv);
        }
    }
    json_decref(o);
    return ok;
}

static void do_action(api_ctx *a, http_req *r, int which)
{
    const action_spec *spec = &specs[which];
    actions *x = a->actions;
    char msg[200];
    if (!x) {
        api_reply_error(r, 503, "actions are not available");
        return;
    }
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        api_reply_error(r, 500, "out of memory");
        return;
    }
    *p = (pending){.x = x, .r = r, .spec = spec, .st = P_OWNER, .refs = 1};
    if (!api_path_segment(http_req_path(r), 3, p->id, sizeof p->id) ||
        !ids_valid(p->id, STORE_ID_MAX)) {
        snprintf(msg, sizeof msg, "bad %s id: 1 to %d characters of [A-Za-z0-9._-]",
                 spec->what, STORE_ID_MAX);
        api_reply_error(r, 400, msg);
        free(p);
        return;
    }
    if (!parse_body(r, p, spec)) {
        free(p);
        return;
    }
    if (which == A_PAUSE && p->nf == 0) { /* no reason: an empty one */
        p->fname[0] = "reason";
        p->nf = 1;
    }
    p_start(x, p);
}

static void post_pause(api_ctx *a, http_req *r) { do_action(a, r, A_PAUSE); }
static void post_unpause(api_ctx *a, http_req *r) { do_action(a, r, A_UNPAUSE); }
static void post_logoff(api_ctx *a, http_req *r) { do_action(a, r, A_LOGOFF); }
static void post_priority(api_ctx *a, http_req *r) { do_action(a, r, A_PRIORITY); }
static void post_hangup(api_ctx *a, http_req *r) { do_action(a, r, A_HANGUP); }
static void post_recording(api_ctx *a, http_req *r) { do_action(a, r, A_REC); }
static void delete_recording(api_ctx *a, http_req *r) { do_action(a, r, A_REC_DELETE); }
static void get_recording_file(api_ctx *a, http_req *r) { do_action(a, r, A_REC_FETCH); }

const api_route api_action_routes[] = {
    {"POST", "/api/v1/agents/{id}/pause", NULL, post_pause, false},
    {"POST", "/api/v1/agents/{id}/unpause", NULL, post_unpause, false},
    {"POST", "/api/v1/agents/{id}/logoff", NULL, post_logoff, false},
    {"POST", "/api/v1/calls/{callid}/priority", NULL, post_priority, false},
    {"POST", "/api/v1/calls/{callid}/hangup", NULL, post_hangup, false},
    {"POST", "/api/v1/calls/{callid}/recording", NULL, post_recording, false},
    {"DELETE", "/api/v1/recordings/{name}", NULL, delete_recording, false},
    {"GET", "/api/v1/recordings/{name}/file", NULL, get_recording_file, false},
};
const size_t api_action_nroutes = sizeof api_action_routes / sizeof api_action_routes[0];

/* ---- life cycle -------------------------------------------------------------------- */

int actions_new(struct event_base *base, store *cmd, const store_config *sc, const acfg *cfg,
                actions **out, char *err, size_t errlen)
{
    actions *x = calloc(1, sizeof *x);
    if (!x)
        return ARIQ_ENOMEM;
    *x = (actions){.base = base, .cmd = cmd, .cfg = cfg, .pending = strmap_new(),
                   .seq = (unsigned long long)clock_wall_ms() * 1000u};
    int rc = x->pending ? 0 : ARIQ_ENOMEM;
    store_callbacks cbs = {.on_ready = on_reader_ready};
    if (rc == 0)
        rc = store_new(base, sc, &cbs, x, &x->rd, err, errlen);
    if (rc == 0 && store_key(store_get_keys(x->rd), x->replies, sizeof x->replies, "agentd",
                             cfg->agentd_id, "replies") != 0) {
        snprintf(err, errlen, "agentd_id '%s' cannot name the reply stream", cfg->agentd_id);
        rc = ARIQ_EINVAL;
    }
    if (rc) {
        actions_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

static void collect(const char *key, void *value, void *ud)
{
    (void)key;
    pending ***at = ud;
    *(*at)++ = value;
}

void actions_free(actions *x)
{
    if (!x)
        return;
    x->closing = true;
    size_t n = x->pending ? strmap_count(x->pending) : 0;
    pending **all = n ? calloc(n, sizeof *all) : NULL, **at = all;
    if (all) {
        strmap_each(x->pending, collect, &at);
        for (size_t i = 0; i < n; i++) {
            all[i]->r = NULL; /* the server has freed the requests */
            all[i]->x = NULL;  /* callbacks still in flight find it P_DONE */
            p_finish(all[i]);
        }
    }
    free(all);
    strmap_free(x->pending);
    store_free(x->rd); /* a read in flight completes with NULL */
    free(x);
}
