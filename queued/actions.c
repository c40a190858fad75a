/* actions.c - what agentd asks of this node through its command stream
 * (agentd/API.md "The command protocol (Redis)"): pause, unpause or log off
 * an agent it serves, hang up or re-prioritise a caller it serves, drive
 * the recording of a call it bridges, delete or fetch a stored recording
 * its Asterisk holds.
 *
 * One command is one `struct action`, owned by this file from parsing to
 * its reply: each step either answers at once or starts one request (ARI or
 * Redis) whose callback takes the action on or answers. Every answer goes
 * through reply(), which frees the action: XADD <reply_to> MAXLEN ~ 1000 *
 * req status error body, then PEXPIRE <reply_to> 60000.
 *
 * A command past its deadline_ms is dropped (agentd answered 504 already).
 * A malformed one is answered 400 when its req and reply_to are usable,
 * else only logged. reply_to must be a key of our namespace (a command
 * cannot make the node write elsewhere). */
#include "node_int.h"

#include "core/clock.h"
#include "core/err.h"
#include "core/ids.h"
#include "core/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "actions"
#define REPLY_MAXLEN "1000"
#define REPLY_TTL_MS "60000"
#define RECFILE_TTL_MS "60000"

typedef struct action {
    node *n;
    char id[64]; /* the stream entry's, for the log */
    char cmd[32];
    char req[QS_ID_MAX + 1];
    char reply_to[STORE_KEY_MAX];
    char agent[QS_NAME_MAX + 1];
    char reason[QS_TEXT_MAX + 1];
    char callid[QS_ID_MAX + 1];
    char act[16]; /* rec: start | stop | pause | unpause */
    char name[QS_ID_MAX + 1];
    int priority;
    leg *l;             /* the party acted on (a reference), or NULL */
    char ctype[32];     /* rec_fetch: the file's content type */
    size_t bytes;       /* rec_fetch: the file's length */
} action;

/* ---- answering ------------------------------------------------------------------ */

static void action_free(action *a)
{
    if (a->l)
        leg_unref(a->l);
    free(a);
}

/* Answers and frees a; body (may be NULL: {}) is consumed. */
static void reply(action *a, int status, const char *error, json_t *body)
{
    char st[8];
    snprintf(st, sizeof st, "%d", status);
    if (!body)
        body = json_object();
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (status == 200)
        LOG_I(MOD, "req=%s cmd=%s done", a->req, a->cmd);
    else
        LOG_W(MOD, "req=%s cmd=%s status=%d %s", a->req, a->cmd, status, error);
    const char *xadd[] = {"XADD", a->reply_to, "MAXLEN", "~", REPLY_MAXLEN, "*",
                          "req", a->req, "status", st, "error", error ? error : "",
                          "body", text ? text : "{}"};
    const char *pexp[] = {"PEXPIRE", a->reply_to, REPLY_TTL_MS};
    if (store_command_argv(a->n->store, 14, xadd, NULL, NULL, NULL) != 0 ||
        store_command_argv(a->n->store, 3, pexp, NULL, NULL, NULL) != 0)
        LOG_W(MOD, "req=%s reply not sent: Redis is away", a->req);
    free(text);
    json_decref(body);
    action_free(a);
}

static void reply_err(action *a, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_err(action *a, int status, const char *fmt, ...)
{
    char msg[QS_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply(a, status, msg, NULL);
}

/* A queue_store error as a status: the record missing 404, the wrong state
 * 409, anything else (Redis away, refused) 500. */
static void reply_qs(action *a, int err)
{
    int status = err == ARIQ_ENOTFOUND ? 404 : err == ARIQ_ESTATE ? 409 : 500;
    reply_err(a, status, "%s", qs_errmsg(a->n->qs));
}

/* ---- agents ------------------------------------------------------------------------ */

typedef struct find_agent {
    const char *id;
    agent *found;
} find_agent;

static void match_agent(const char *key, void *value, void *ud)
{
    (void)key;
    find_agent *f = ud;
    agent *ag = leg_agent(value);
    if (ag && !f->found && agent_logged_in(ag) && strcmp(agent_id(ag), f->id) == 0)
        f->found = ag;
}

/* The logged-in agent leg of this node with that id, or NULL (answered
 * 404). Takes a reference into a->l. */
static agent *our_agent(action *a)
{
    find_agent f = {a->agent, NULL};
    strmap_each(a->n->legs, match_agent, &f);
    if (!f.found) {
        reply_err(a, 404, "agent %s is not logged in on node %s", a->agent, a->n->cfg->node_id);
        return NULL;
    }
    a->l = leg_ref((leg *)f.found);
    return f.found;
}

static void on_paused(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    action *a = pd;
    if (err) {
        reply_qs(a, err);
        return;
    }
    node_take_pairings(a->n, res->pairings, res->npairings); /* an unpause may pair */
    bool paused = strcmp(a->cmd, "agent_pause") == 0;
    json_t *b = json_pack("{s:s, s:s, s:b}", "agent", a->agent, "state", res->state, "paused",
                          paused);
    if (b && paused)
        json_object_set_new(b, "pause_reason", json_string(a->reason));
    reply(a, 200, "", b);
}

static void do_pause(action *a)
{
    if (!our_agent(a))
        return;
    bool paused = strcmp(a->cmd, "agent_pause") == 0;
    int rc = qs_agent_pause(a->n->qs, a->agent, paused, paused ? a->reason : "", true,
                            on_paused, a);
    if (rc)
        reply_qs(a, rc);
}

static void do_logoff(action *a)
{
    agent *ag = our_agent(a);
    if (!ag)
        return;
    if (agent_logoff_by(ag, "agentd") != 0) {
        reply_err(a, 404, "agent %s is not logged in", a->agent);
        return;
    }
    reply(a, 200, "", json_pack("{s:s, s:b}", "agent", a->agent, "logged_off", 1));
}

/* ---- callers ----------------------------------------------------------------------- */

/* Our caller leg of that call id (its channel id), or NULL (answered 404).
 * Takes a reference into a->l. */
static caller *our_caller(action *a)
{
    leg *l = node_leg(a->n, a->callid);
    caller *c = leg_caller(l);
    if (!c || l->ended) {
        reply_err(a, 404, "call %s is not on node %s", a->callid, a->n->cfg->node_id);
        return NULL;
    }
    a->l = leg_ref(l);
    return c;
}

static void on_hungup(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    action *a = pd;
    if (r->status == 204 || r->status == 200)
        reply(a, 200, "", json_pack("{s:s, s:b}", "callid", a->callid, "hungup", 1));
    else if (r->status == 404)
        reply_err(a, 404, "call %s: %s", a->callid, ari_response_message(r));
    else
        reply_err(a, 500, "hanging up %s: ARI %ld %s", a->callid, r->status,
                  ari_response_message(r));
}

/* The caller's hangup event then ends it as any hangup does. */
static void do_hangup(action *a)
{
    if (!our_caller(a))
        return;
    int rc = ari_channel_hangup(a->n->rest, a->callid, "normal", on_hungup, a);
    if (rc)
        reply_err(a, 500, "cannot hang up %s: %s", a->callid, ariq_strerror(rc));
}

static void on_priority(queue_store *qs, int err, const qs_call_view *v, void *pd)
{
    (void)qs;
    action *a = pd;
    if (err) {
        reply_qs(a, err);
        return;
    }
    caller_set_priority(leg_caller(a->l), a->priority);
    json_t *pos = json_array();
    for (size_t i = 0; i < v->nqueues; i++)
        json_array_append_new(pos, json_pack("{s:s, s:I}", "queue", v->queues[i].queue,
                                             "position", (json_int_t)v->queues[i].position));
    reply(a, 200, "", json_pack("{s:s, s:i, s:o}", "callid", a->callid, "priority",
                                a->priority, "positions", pos));
}

static void do_priority(action *a)
{
    caller *c = our_caller(a);
    if (!c)
        return;
    if (!caller_waiting(c)) {
        reply_err(a, 409, "call %s is not waiting", a->callid);
        return;
    }
    int rc = qs_set_priority(a->n->qs, a->callid, a->priority, on_priority, a);
    if (rc)
        reply_qs(a, rc);
}

static void do_rec(action *a)
{
    caller *c = our_caller(a);
    if (!c)
        return;
    call *k = caller_call(c);
    const char *name = NULL, *state = NULL;
    if (!k || call_rec_command(k, a->act, &name, &state) != 0) {
        reply_err(a, 409, "call %s: not talking, or no recording to %s", a->callid, a->act);
        return;
    }
    reply(a, 200, "", json_pack("{s:s, s:{s:s, s:s}}", "callid", a->callid, "recording", "name",
                                name, "state", state));
}

/* ---- stored recordings --------------------------------------------------------------- */

static void fetch_file(action *a, const char *file);
static void delete_file(action *a);

/* The content type of a recording file by its extension (Asterisk's
 * formats), application/octet-stream when unknown. */
static const char *content_type(const char *file)
{
    static const char *const types[][2] = {{"wav", "audio/wav"},   {"wav16", "audio/wav"},
                                           {"gsm", "audio/x-gsm"}, {"ulaw", "audio/basic"},
                                           {"alaw", "audio/x-alaw-basic"},
                                           {"sln", "audio/x-raw"}, {"mp3", "audio/mpeg"},
                                           {"ogg", "audio/ogg"}};
    const char *dot = file ? strrchr(file, '.') : NULL;
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot + 1, types[i][0]) == 0)
            return types[i][1];
    return "application/octet-stream";
}

/* HMGET recording:<name> state file answered: 404 without a record, 409
 * while it records, else on to ARI. */
static void on_rec_read(store *s, const redisReply *r, void *pd)
{
    (void)s;
    action *a = pd;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        reply_err(a, 500, "cannot read recording %s: %s", a->name,
                  r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
        return;
    }
    const redisReply *st = r->element[0], *file = r->element[1];
    if (st->type != REDIS_REPLY_STRING) {
        reply_err(a, 404, "recording %s does not exist", a->name);
    } else if (strcmp(st->str, "recording") == 0 || strcmp(st->str, "paused") == 0) {
        reply_err(a, 409, "recording %s is %s", a->name, st->str);
    } else if (strcmp(a->cmd, "rec_delete") == 0) {
        delete_file(a);
    } else {
        fetch_file(a, file->type == REDIS_REPLY_STRING ? file->str : NULL);
    }
}

static void read_record(action *a)
{
    char key[STORE_KEY_MAX];
    if (store_key(store_get_keys(a->n->store), key, sizeof key, "recording", a->name, NULL)) {
        reply_err(a, 400, "bad recording name");
        return;
    }
    const char *argv[] = {"HMGET", key, "state", "file"};
    int rc = store_command_argv(a->n->store, 4, argv, NULL, on_rec_read, a);
    if (rc)
        reply_err(a, 500, "Redis: %s", ariq_strerror(rc));
}

static void on_rec_deleted(queue_store *qs, int err, const qs_result *res, void *pd)
{
    (void)qs;
    (void)res;
    action *a = pd;
    if (err)
        reply_qs(a, err);
    else
        reply(a, 200, "", json_pack("{s:s, s:b}", "name", a->name, "deleted", 1));
}

static void on_file_deleted(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    action *a = pd;
    /* 404: the file was gone already (deleted by hand): the record goes too */
    if (r->status != 204 && r->status != 200 && r->status != 404) {
        reply_err(a, 500, "deleting %s: ARI %ld %s", a->name, r->status,
                  ari_response_message(r));
        return;
    }
    int rc = qs_rec(a->n->qs, QS_REC_DELETE, a->name, NULL, NULL, 0, on_rec_deleted, a);
    if (rc)
        reply_qs(a, rc);
}

static void delete_file(action *a)
{
    char path[64 + QS_ID_MAX];
    snprintf(path, sizeof path, "/recordings/stored/%s", a->name); /* an id: no escaping */
    int rc = ari_rest_request(a->n->rest, "DELETE", path, NULL, on_file_deleted, a);
    if (rc)
        reply_err(a, 500, "cannot delete %s: %s", a->name, ariq_strerror(rc));
}

static void on_file_kept(store *s, const redisReply *r, void *pd)
{
    (void)s;
    action *a = pd;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        reply_err(a, 500, "cannot keep the file in Redis: %s", r ? r->str : "no reply");
        return;
    }
    char key[STORE_KEY_MAX];
    store_key(store_get_keys(a->n->store), key, sizeof key, "recfile", a->req, NULL);
    reply(a, 200, "", json_pack("{s:s, s:s, s:I}", "key", key, "content_type", a->ctype,
                                "bytes", (json_int_t)a->bytes));
}

static void on_file(ari_rest *rest, const ari_response *r, void *pd)
{
    (void)rest;
    action *a = pd;
    if (r->status != 200) {
        int status = r->status == 404 ? 404 : 500;
        reply_err(a, status, "fetching %s: ARI %ld %s", a->name, r->status,
                  ari_response_message(r));
        return;
    }
    char key[STORE_KEY_MAX];
    if (store_key(store_get_keys(a->n->store), key, sizeof key, "recfile", a->req, NULL)) {
        reply_err(a, 400, "bad req");
        return;
    }
    if (r->body_len > (size_t)INT32_MAX) {
        reply_err(a, 500, "recording %s too large", a->name);
        return;
    }
    a->bytes = r->body_len;
    const char *argv[] = {"SET", key, r->body, "PX", RECFILE_TTL_MS};
    size_t lens[] = {3, strlen(key), r->body_len, 2, strlen(RECFILE_TTL_MS)};
    int rc = store_command_argv(a->n->store, 5, argv, lens, on_file_kept, a);
    if (rc)
        reply_err(a, 500, "Redis: %s", ariq_strerror(rc));
}

static void fetch_file(action *a, const char *file)
{
    snprintf(a->ctype, sizeof a->ctype, "%s", content_type(file));
    char path[64 + QS_ID_MAX];
    snprintf(path, sizeof path, "/recordings/stored/%s/file", a->name);
    int rc = ari_rest_request(a->n->rest, "GET", path, NULL, on_file, a);
    if (rc)
        reply_err(a, 500, "cannot fetch %s: %s", a->name, ariq_strerror(rc));
}

/* ---- parsing and dispatch ------------------------------------------------------------- */

/* Copies field `name` into dst: 1 copied, 0 absent, -1 too long or holding
 * a NUL. */
static int take(const redisReply *kv, const char *name, char *dst, size_t len)
{
    const redisReply *v = store_entry_field(kv, name);
    if (!v)
        return 0;
    if (v->len >= len || strlen(v->str) != v->len)
        return -1;
    memcpy(dst, v->str, v->len + 1);
    return 1;
}

static bool text_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 32 || *s == 127 || *s == '|')
            return false;
    return true;
}

static bool int_ok(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    if (!*s)
        return false;
    long long v = strtoll(s, &end, 10);
    if (*end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

typedef struct cmd_def {
    const char *name;
    void (*run)(action *a);
    bool agent, callid, name_field;
} cmd_def;

static const cmd_def cmds[] = {
    {"agent_pause", do_pause, true, false, false},
    {"agent_unpause", do_pause, true, false, false},
    {"agent_logoff", do_logoff, true, false, false},
    {"call_hangup", do_hangup, false, true, false},
    {"call_priority", do_priority, false, true, false},
    {"rec", do_rec, false, true, false},
    {"rec_delete", read_record, false, false, true},
    {"rec_fetch", read_record, false, false, true},
};

/* The fields the command needs, checked; NULL when fine, else why. */
static const char *check_fields(action *a, const cmd_def *d, const redisReply *kv)
{
    if (d->agent && (take(kv, "agent", a->agent, sizeof a->agent) != 1 ||
                     !ids_valid(a->agent, QS_NAME_MAX)))
        return "agent: 1..64 bytes of [A-Za-z0-9._-] expected";
    if (d->callid && (take(kv, "callid", a->callid, sizeof a->callid) != 1 ||
                      !ids_valid(a->callid, QS_ID_MAX)))
        return "callid: 1..128 bytes of [A-Za-z0-9._-] expected";
    if (d->name_field &&
        (take(kv, "name", a->name, sizeof a->name) != 1 || !ids_valid(a->name, QS_ID_MAX)))
        return "name: 1..128 bytes of [A-Za-z0-9._-] expected";
    if (strcmp(d->name, "agent_pause") == 0 &&
        (take(kv, "reason", a->reason, sizeof a->reason) < 0 || !text_ok(a->reason)))
        return "reason: 0..128 bytes, no control character, no '|'";
    if (strcmp(d->name, "call_priority") == 0) {
        char buf[16];
        long long p;
        if (take(kv, "priority", buf, sizeof buf) != 1 || !int_ok(buf, 0, 1000, &p))
            return "priority: an integer 0..1000 expected";
        a->priority = (int)p;
    }
    if (strcmp(d->name, "rec") == 0) {
        static const char *const acts[] = {"start", "stop", "pause", "unpause"};
        bool ok = take(kv, "action", a->act, sizeof a->act) == 1;
        size_t i = 0;
        while (ok && i < 4 && strcmp(a->act, acts[i]) != 0)
            i++;
        if (!ok || i == 4)
            return "action: start, stop, pause or unpause expected";
    }
    return NULL;
}

/* reply_to must name a key of our namespace ({NS}:...). */
static bool reply_to_ok(const node *n, const char *key)
{
    const char *tag = store_keys_tag(store_get_keys(n->store));
    size_t tl = strlen(tag);
    return strncmp(key, tag, tl) == 0 && key[tl] == ':' && key[tl + 1] && text_ok(key) &&
           !strchr(key, ' ');
}

void actions_take(node *n, const char *id, const redisReply *kv)
{
    action *a = calloc(1, sizeof *a);
    if (!a) {
        LOG_E(MOD, "id=%s out of memory: command dropped", id);
        return;
    }
    a->n = n;
    snprintf(a->id, sizeof a->id, "%s", id);
    int has_cmd = take(kv, "cmd", a->cmd, sizeof a->cmd);
    if (take(kv, "req", a->req, sizeof a->req) != 1 || !ids_valid(a->req, QS_ID_MAX) ||
        take(kv, "reply_to", a->reply_to, sizeof a->reply_to) != 1 ||
        !reply_to_ok(n, a->reply_to)) {
        LOG_W(MOD, "id=%s cmd=%s without a usable req and reply_to: ignored", id,
              has_cmd == 1 ? a->cmd : "?");
        free(a);
        return;
    }
    char dl[24];
    long long deadline;
    if (take(kv, "deadline_ms", dl, sizeof dl) != 1 || !int_ok(dl, 0, INT64_MAX, &deadline)) {
        reply_err(a, 400, "deadline_ms: wall clock ms expected");
        return;
    }
    if ((uint64_t)deadline < clock_wall_ms()) {
        LOG_W(MOD, "id=%s req=%s cmd=%s past its deadline by %llu ms: dropped", id, a->req,
              a->cmd, (unsigned long long)(clock_wall_ms() - (uint64_t)deadline));
        free(a);
        return;
    }
    const cmd_def *d = NULL;
    for (size_t i = 0; has_cmd == 1 && i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(a->cmd, cmds[i].name) == 0)
            d = &cmds[i];
    if (!d) {
        reply_err(a, 400, "unknown cmd '%s'", has_cmd == 1 ? a->cmd : "");
        return;
    }
    const char *why = check_fields(a, d, kv);
    if (why) {
        reply_err(a, 400, "%s: %s", a->cmd, why);
        return;
    }
    LOG_I(MOD, "id=%s req=%s cmd=%s", id, a->req, a->cmd);
    d->run(a);
}
