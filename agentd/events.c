/* events.c - see events.h.
 *
 *   client    on                               next
 *   WAIT      the reader's start F known       LIVE (no from) or PAGING
 *   GAPCHECK  XINFO STREAM answered            PAGING (a GAP sent first if trimmed)
 *   PAGING    a page answered, pos >= F        LIVE
 *   PAGING    a page answered, pos < F         PAGING (next page)
 *   PAGING    a short page before F is known   WAIT
 *   LIVE      the reader fans out id > pos     LIVE
 *   any       socket closed                    freed (after a reply in flight)
 */
#include "events.h"

#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOD "events"
#define READ_BLOCK_MS "2000" /* well under the store's reply watchdog (10 s) */
#define READ_COUNT "256"
#define PAGE 256
#define PAGE_S "256"

typedef struct sid {
    uint64_t ms, seq;
} sid;

typedef enum {
    EC_WAIT,     /* waits for the reader's start F */
    EC_GAPCHECK, /* XINFO STREAM in flight: were entries after `from` trimmed? */
    EC_PAGING,   /* XRANGE pages from pos, the fan-out skips it */
    EC_LIVE,     /* the fan-out sends it every id above pos */
    EC_COUNT
} ec_state;

static const char *const ec_names[EC_COUNT] = {"WAIT", "GAPCHECK", "PAGING", "LIVE"};

typedef struct client {
    events *e;
    http_ws *w;        /* NULL once the socket is gone */
    struct client *prev, *next;
    ec_state st;
    bool has_from;     /* resume asked */
    bool whole;        /* from=0: the whole retained stream, no GAP check */
    sid pos;           /* the last id sent (or `from`) */
    char from_s[48];
    bool busy;         /* a command in flight holds this client */
    bool dead;         /* the socket is closing or gone: send nothing more */
    bool unlinked;     /* out of e's list; freed when not busy */
} client;

struct events {
    struct event_base *base;
    store *cmd, *rd;
    char key[STORE_KEY_MAX];
    bool known;   /* F is known */
    sid F;        /* the last id fanned out */
    bool reading; /* an XREAD is in flight */
    bool closing;
    client *clients;
    unsigned nclients;
    events_stats st;
    events_entry_fn follow; /* events_follow */
    void *follow_ud;
};

/* ---- ids ------------------------------------------------------------------------- */

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20)
        return ARIQ_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return ARIQ_EINVAL;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return ARIQ_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int events_parse_id(const char *s, uint64_t *ms, uint64_t *seq)
{
    const char *dash = s ? strchr(s, '-') : NULL;
    uint64_t a, b = 0;
    if (!s || parse_u64(s, dash ? (size_t)(dash - s) : strlen(s), &a) != 0 ||
        (dash && parse_u64(dash + 1, strlen(dash + 1), &b) != 0))
        return ARIQ_EINVAL;
    *ms = a;
    *seq = b;
    return 0;
}

static int sid_cmp(sid a, sid b)
{
    return a.ms != b.ms ? (a.ms < b.ms ? -1 : 1) : a.seq != b.seq ? (a.seq < b.seq ? -1 : 1) : 0;
}

static void sid_fmt(sid a, char *buf, size_t len)
{
    snprintf(buf, len, "%llu-%llu", (unsigned long long)a.ms, (unsigned long long)a.seq);
}

static bool sid_of(const redisReply *r, sid *out)
{
    return r && r->type == REDIS_REPLY_STRING && r->len < 48 &&
           events_parse_id(r->str, &out->ms, &out->seq) == 0;
}

/* ---- one entry as JSON ----------------------------------------------------------- */

/* A JSON string of Redis bytes; bytes that are not UTF-8 become '?'
 * (Redis is outside input, a message must stay valid JSON). */
static json_t *jstr(const redisReply *v)
{
    json_t *j = json_stringn(v->str, v->len);
    if (j || !v->str)
        return j;
    char *copy = malloc(v->len + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i < v->len; i++)
        copy[i] = (unsigned char)v->str[i] < 0x80 && v->str[i] ? v->str[i] : '?';
    j = json_stringn(copy, v->len);
    free(copy);
    return j;
}

/* The id of an XRANGE/XREAD entry [id, [k, v, ...]]; false if malformed. */
static bool entry_id(const redisReply *e, sid *id)
{
    return e->type == REDIS_REPLY_ARRAY && e->elements == 2 && sid_of(e->element[0], id) &&
           e->element[1]->type == REDIS_REPLY_ARRAY;
}

/* The message text of an entry whose id parsed (malloc'd, yours), or NULL. */
static char *entry_json(const redisReply *e)
{
    const redisReply *kv = e->element[1];
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "id", json_stringn(e->element[0]->str, e->element[0]->len));
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            strlen(k->str) != k->len || strcmp(k->str, "id") == 0)
            continue;
        json_t *jk = json_stringn(k->str, k->len); /* a key must be UTF-8 too */
        if (!jk)
            continue;
        json_decref(jk);
        json_t *jv = jstr(v);
        json_object_set_new(o, k->str, jv ? jv : json_string(""));
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

/* ---- clients --------------------------------------------------------------------- */

static void set_state(client *c, ec_state to)
{
    LOG_D(MOD, "peer=%s %s -> %s", c->w ? http_ws_peer(c->w) : "-", ec_names[c->st],
          ec_names[to]);
    c->st = to;
}

static void unlink_client(client *c)
{
    events *e = c->e;
    if (c->unlinked)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        e->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->unlinked = true;
    e->nclients--;
}

/* Sends one message; false when the client can take no more (it is being
 * closed: too slow, or gone). */
static bool send_text(client *c, const char *text)
{
    if (c->dead || !c->w)
        return false;
    int rc = http_ws_send(c->w, text, strlen(text));
    if (rc == 0) {
        c->e->st.sent++;
        return true;
    }
    if (rc == ARIQ_EBUSY) {
        c->e->st.slow_closed++;
        LOG_W(MOD, "peer=%s too slow: closed (it may resume with from=<last id>)",
              http_ws_peer(c->w));
    }
    c->dead = true;
    return false;
}

static void fail_client(client *c, const char *why)
{
    if (!c->dead && c->w) {
        LOG_W(MOD, "peer=%s %s: closing the feed", http_ws_peer(c->w), why);
        http_ws_close(c->w, 1011, why);
    }
    c->dead = true;
}

static void page(client *c);

/* After a page or when F becomes known: live, another page, or wait. */
static void advance(client *c, bool full_page)
{
    if (c->e->known && sid_cmp(c->pos, c->e->F) >= 0)
        set_state(c, EC_LIVE);
    else if (c->e->known || full_page)
        page(c);
    else
        set_state(c, EC_WAIT);
}

/* A reply for a client: false when the client went meanwhile (freed here). */
static bool reply_for(client *c)
{
    c->busy = false;
    if (c->unlinked) {
        free(c);
        return false;
    }
    return !c->dead;
}

static void on_page(store *s, const redisReply *r, void *pd)
{
    (void)s;
    client *c = pd;
    if (!reply_for(c))
        return;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        fail_client(c, "redis unavailable");
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        sid id;
        if (!entry_id(r->element[i], &id) || sid_cmp(id, c->pos) <= 0)
            continue;
        char *text = entry_json(r->element[i]);
        bool ok = !text || send_text(c, text); /* no text: out of memory, passed over */
        free(text);
        c->pos = id;
        if (!ok)
            return;
    }
    advance(c, r->elements == PAGE);
}

static void page(client *c)
{
    char start[64];
    start[0] = '(';
    sid_fmt(c->pos, start + 1, sizeof start - 1);
    const char *argv[] = {"XRANGE", c->e->key, start, "+", "COUNT", PAGE_S};
    set_state(c, EC_PAGING);
    if (store_command_argv(c->e->cmd, 6, argv, NULL, on_page, c) == 0)
        c->busy = true;
    else
        fail_client(c, "redis unavailable");
}

/* XINFO STREAM's field `name`, or NULL. */
static const redisReply *info_field(const redisReply *r, const char *name)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1];
    return NULL;
}

static void on_info(store *s, const redisReply *r, void *pd)
{
    (void)s;
    client *c = pd;
    if (!reply_for(c))
        return;
    if (!r) {
        fail_client(c, "redis unavailable");
        return;
    }
    /* an error reply: no such stream, nothing was ever trimmed */
    const redisReply *fe = r->type == REDIS_REPLY_ARRAY ? info_field(r, "first-entry") : NULL;
    const redisReply *md = r->type == REDIS_REPLY_ARRAY
                               ? info_field(r, "max-deleted-entry-id") : NULL;
    sid first = {0, 0}, maxdel = {0, 0};
    bool has_first = fe && fe->type == REDIS_REPLY_ARRAY && fe->elements == 2 &&
                     sid_of(fe->element[0], &first);
    /* Trimming does not move max-deleted-entry-id (only XDEL does), so the
     * first retained entry decides too. Conservative: a client whose last
     * id was itself trimmed, with nothing after it lost, is told GAP too
     * (ids are not consecutive, so that cannot be told apart). */
    bool gap = (has_first && sid_cmp(c->pos, first) < 0) ||
               (sid_of(md, &maxdel) && sid_cmp(c->pos, maxdel) < 0);
    if (gap) {
        char f[48] = "";
        if (has_first)
            sid_fmt(first, f, sizeof f);
        json_t *o = json_pack("{s:s,s:s,s:s}", "event", "GAP", "from", c->from_s, "first", f);
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(o);
        c->e->st.gaps++;
        bool ok = text && send_text(c, text);
        free(text);
        if (!ok)
            return;
    }
    page(c);
}

/* Where a client begins once it is accepted (and again once F is known). */
static void begin(client *c)
{
    events *e = c->e;
    if (!c->has_from) {
        if (!e->known)
            return; /* stays WAIT */
        c->pos = e->F;
        set_state(c, EC_LIVE);
        return;
    }
    if (c->whole) {
        page(c);
        return;
    }
    const char *argv[] = {"XINFO", "STREAM", e->key};
    set_state(c, EC_GAPCHECK);
    if (store_command_argv(e->cmd, 3, argv, NULL, on_info, c) == 0)
        c->busy = true;
    else
        fail_client(c, "redis unavailable");
}

/* Does the query name only from and access_token (api.c checked the
 * token)? Names are compared whole; the query is name[=value]&... */
static bool query_known(const char *q)
{
    static const char *const known[] = {"from", "access_token"};
    for (const char *p = q; p && *p;) {
        size_t n = strcspn(p, "=&");
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0] && !ok; i++)
            ok = n == strlen(known[i]) && strncmp(p, known[i], n) == 0;
        if (!ok)
            return false;
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return true;
}

bool events_open(events *e, http_ws *w, const http_req *upgrade, int *status)
{
    const char *from = http_req_param(upgrade, "from");
    sid pos = {0, 0};
    if ((from && events_parse_id(from, &pos.ms, &pos.seq) != 0) ||
        !query_known(http_req_query(upgrade))) {
        *status = 400;
        return false;
    }
    client *c = calloc(1, sizeof *c);
    if (!c) {
        *status = 503;
        return false;
    }
    c->e = e;
    c->w = w;
    c->has_from = from != NULL;
    c->whole = from && pos.ms == 0 && pos.seq == 0;
    c->pos = pos;
    sid_fmt(pos, c->from_s, sizeof c->from_s);
    c->next = e->clients;
    if (e->clients)
        e->clients->prev = c;
    e->clients = c;
    e->nclients++;
    http_ws_set_data(w, c);
    LOG_I(MOD, "peer=%s feed opened from=%s", http_ws_peer(w), from ? c->from_s : "now");
    begin(c);
    return true;
}

void events_closed(events *e, http_ws *w)
{
    (void)e;
    client *c = http_ws_data(w);
    if (!c)
        return;
    http_ws_set_data(w, NULL);
    c->w = NULL;
    c->dead = true;
    unlink_client(c);
    if (!c->busy)
        free(c);
}

/* ---- the live reader ------------------------------------------------------------- */

static void read_next(events *e);

/* One new entry to every live client above it. */
static void fan_out(events *e, const redisReply *entry)
{
    sid id;
    if (!entry_id(entry, &id)) {
        LOG_W(MOD, "malformed entry in %s: passed over", e->key);
        return;
    }
    e->F = id; /* even when it cannot be sent: the next XREAD starts after it */
    e->st.entries++;
    if (e->follow)
        e->follow(entry->element[0]->str, entry->element[1], e->follow_ud);
    char *text = entry_json(entry);
    if (!text)
        return;
    for (client *c = e->clients; c; c = c->next)
        if (c->st == EC_LIVE && sid_cmp(id, c->pos) > 0 && send_text(c, text))
            c->pos = id;
    free(text);
}

static void on_read(store *s, const redisReply *r, void *pd)
{
    (void)s;
    events *e = pd;
    e->reading = false;
    if (!r || e->closing)
        return; /* connection lost: on_reader_ready resumes from F */
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
        r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *entries = r->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; i++)
            fan_out(e, entries->element[i]);
    } else if (r->type == REDIS_REPLY_ERROR) {
        LOG_W(MOD, "reading %s: %s", e->key, r->str);
    }
    read_next(e);
}

static void read_next(events *e)
{
    char from[48];
    if (e->reading || e->closing || !store_is_ready(e->rd))
        return;
    sid_fmt(e->F, from, sizeof from);
    const char *argv[] = {"XREAD", "COUNT", READ_COUNT, "BLOCK", READ_BLOCK_MS,
                          "STREAMS", e->key, from};
    if (store_command_argv(e->rd, 8, argv, NULL, on_read, e) == 0)
        e->reading = true;
}

static void on_start(store *s, const redisReply *r, void *pd)
{
    (void)s;
    events *e = pd;
    e->reading = false;
    if (!r || r->type != REDIS_REPLY_ARRAY || e->closing)
        return; /* lost, or refused: tried again at the next ready */
    sid last = {0, 0};
    if (r->elements && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2)
        sid_of(r->element[0]->element[0], &last);
    e->F = last;
    e->known = true;
    char f[48];
    sid_fmt(last, f, sizeof f);
    LOG_I(MOD, "reading %s live from %s", e->key, f);
    for (client *c = e->clients; c; c = c->next)
        if (c->st == EC_WAIT && !c->busy && !c->dead) {
            if (c->has_from)
                advance(c, false);
            else
                begin(c);
        }
    read_next(e);
}

static void on_reader_ready(store *s, void *ud)
{
    events *e = ud;
    if (e->known) {
        read_next(e);
        return;
    }
    const char *argv[] = {"XREVRANGE", e->key, "+", "-", "COUNT", "1"};
    if (store_command_argv(s, 6, argv, NULL, on_start, e) == 0)
        e->reading = true;
}

/* ---- life cycle ------------------------------------------------------------------ */

int events_new(struct event_base *base, store *cmd, const store_config *sc, events **out,
               char *err, size_t errlen)
{
    events *e = calloc(1, sizeof *e);
    if (!e)
        return ARIQ_ENOMEM;
    e->base = base;
    e->cmd = cmd;
    store_callbacks cbs = {.on_ready = on_reader_ready};
    int rc = store_new(base, sc, &cbs, e, &e->rd, err, errlen);
    if (rc == 0 && store_key_events(store_get_keys(e->rd), e->key, sizeof e->key) != 0) {
        snprintf(err, errlen, "the namespace cannot name the events key");
        rc = ARIQ_EINVAL;
    }
    if (rc) {
        events_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void events_free(events *e)
{
    if (!e)
        return;
    e->closing = true;
    while (e->clients) {
        client *c = e->clients;
        c->w = NULL; /* the server has freed the sockets */
        c->dead = true;
        unlink_client(c);
        if (!c->busy)
            free(c);
    }
    store_free(e->rd); /* a read in flight completes with NULL */
    free(e);
}

void events_follow(events *e, events_entry_fn fn, void *ud)
{
    e->follow = fn;
    e->follow_ud = ud;
}

bool events_following(const events *e)
{
    return e->known;
}

void events_get_stats(const events *e, events_stats *out)
{
    *out = e->st;
    out->reading = e->known && store_is_ready(e->rd);
    out->clients = e->nclients;
    out->position[0] = '\0';
    if (e->known)
        sid_fmt(e->F, out->position, sizeof out->position);
}
