/* ariq-demo - the live call-center scenario of scripts/demo.sh.
 *
 * Streams scripted callers and agents (with the agents' DTMF) into a running
 * two-node simulator (node1, node2, linked) through its control API
 * (/sim/calls with "node", /sim/channels/ID/dtmf, /sim/channels/ID/hangup),
 * while one real queued per node serves them from one Redis. Callers and
 * agents sit on either node, so some calls cross nodes over a link call.
 * Everything it prints about what happened is what it observed, never what
 * it meant to happen:
 *   node1, node2  that node's part of the simulator's oracle: each channel's
 *          timeline (answered, music on hold, each sound heard or cut off,
 *          QUEUESTATUS, hangups), who hears whom (connected_to, through link
 *          calls too), the link calls between the nodes, the recordings;
 *   redis  the events stream queue.lua writes (ENTERQUEUE, PAIRED with each
 *          party's node, CONNECT, ABANDON, COMPLETECALLER, RECORDSTART ...)
 *          and the queues' waiting lines (one line for both nodes).
 * Lines marked ">>" are the script's own actions (what a party does).
 *
 * At the end it prints a summary and checks the scenario's expectations
 * (who was served by whom and in which order over both nodes, which calls
 * crossed nodes through a link, what was turned away, what was recorded,
 * nothing left behind). Exit 0 when every check passed, 1 when one failed,
 * 2 for bad arguments or when the servers cannot be reached (or the
 * simulator has no node1 and node2).
 *
 *   ariq-demo --sim http://127.0.0.1:PORT --redis 127.0.0.1:PORT [--scale F]
 *             [--namespace NS] [--no-color]
 *   ariq-demo --print-queues      the [queue ...] sections queued needs for it
 *
 * --scale is the time scale the simulator and queued run at (1 = real time);
 * the script's pace follows it and every time printed is shown at real pace.
 * Blocking HTTP (libcurl easy) and Redis (hiredis) on purpose: a tool, not a
 * daemon, with one thread and a 20..100 ms poll. */
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/keys.h"

#define MAX_CONN    8
#define MAX_PENDING 32
#define MAX_LINKS   16

/* The simulator's nodes, each served by its own queued. */
enum { N1, N2, NNODES };
static const char *const node_name[NNODES] = {"node1", "node2"};
#define AT(p) node_name[(p)->node] /* the source column of what its node saw */

/* ---- the cast ------------------------------------------------------------- */

typedef enum {
    P_ALICE,
    P_BOB,
    P_MALLORY,
    P_CAROL,
    P_DAVE,
    P_ERIN,
    P_FRANK,
    P_HEIDI,
    P_IVAN,
    P_JUDY,
    P_GRACE,
    P_OSCAR,
    P_PEGGY,
    P__COUNT
} party_id;

typedef struct party {
    const char *name;
    const char *number; /* caller ID number */
    const char *exten;
    const char *args;     /* Stasis(queue, ARGS) */
    const char *agent_id; /* agents: the id in the events; NULL for callers */
    const char *note;     /* how the cast list introduces it */
    int node;             /* N1 or N2: the Asterisk it dials */
    /* observed */
    char chan[64];
    bool placed, ended;
    size_t tl_done;           /* timeline entries already told */
    int pending[MAX_PENDING]; /* timeline indexes of sounds still playing */
    size_t npending;
    bool moh_told;
    int conn[MAX_CONN]; /* parties it hears now */
    size_t nconn;
    unsigned heard_with; /* bitmask of parties it was ever connected with */
    long first_connect;  /* order of its first connection, 0 if never */
    char status[32];     /* QUEUESTATUS set by ariq */
    int sounds_youarenext, sounds_thereare, sounds_beep;
    int calls;      /* agents: calls completed (COMPLETE* events) */
    double talk_ms; /* and their talk time */
    /* the cross-node view */
    char pairing[32];     /* its last pairing (PAIRED) */
    unsigned linked_with; /* parties /sim/connected showed it with through a link */
    bool paired_nodes_ok; /* its PAIRED named the nodes it and its agent are on */
    double moh_t, mix_t;  /* first music on hold, first mixing bridge (wall ms) */
} party;

/* Designated fields: the rest of a party is what the run observes. */
#define PARTY(NAME, NUM, NODE, EXTEN, ARGS, AGENT, NOTE)                                 \
    {                                                                                    \
        .name = NAME, .number = NUM, .node = NODE, .exten = EXTEN, .args = ARGS,         \
        .agent_id = AGENT, .note = NOTE                                                  \
    }

static party cast[P__COUNT] = {
    [P_ALICE] = PARTY("Alice", "1001", N2, "600", "agent,support&sales,1001", "1001",
                      "agent 1001, serves support and sales"),
    [P_BOB] = PARTY("Bob", "1002", N1, "600", "agent,support,1002", "1002",
                    "agent 1002, serves support"),
    [P_MALLORY] = PARTY("Mallory", "1001", N1, "600", "agent,support,1001", "1001",
                        "dials in as agent 1001 while Alice is logged in on node2"),
    [P_CAROL] =
        PARTY("Carol", "5551001", N1, "500", "caller,support", NULL, "caller, support"),
    [P_DAVE] =
        PARTY("Dave", "5551002", N2, "500", "caller,support", NULL, "caller, support"),
    [P_ERIN] =
        PARTY("Erin", "5551003", N1, "500", "caller,support", NULL, "caller, support"),
    [P_FRANK] = PARTY("Frank", "5551004", N2, "501", "caller,support,5", NULL,
                      "caller, support, priority 5 (a VIP line)"),
    [P_HEIDI] = PARTY("Heidi", "5551005", N2, "500", "caller,support", NULL,
                      "caller, support, gives up waiting"),
    [P_IVAN] = PARTY("Ivan", "5551006", N1, "502", "caller,billing", NULL,
                     "caller, a queue no node serves"),
    [P_JUDY] = PARTY("Judy", "5551007", N2, "503", "caller,support,urgent", NULL,
                     "caller, a malformed priority"),
    [P_GRACE] =
        PARTY("Grace", "5551008", N2, "510", "caller,sales", NULL, "caller, sales"),
    [P_OSCAR] = PARTY("Oscar", "5551009", N1, "520", "caller,tech", NULL,
                      "caller, tech (nobody on shift: waits 20 s at most)"),
    [P_PEGGY] = PARTY("Peggy", "5551010", N2, "520", "caller,tech", NULL,
                      "caller, tech (one caller waiting at most, both nodes together)"),
};

/* The queues the scenario needs, for queued's config. */
static const char queues_ini[] = "[queue support]\n"
                                 "announce_frequency = 20\n"
                                 "\n"
                                 "[queue sales]\n"
                                 "announce_frequency = 15\n"
                                 "\n"
                                 "[queue tech]\n"
                                 "announce_frequency = 0\n"
                                 "maxlen = 1\n"
                                 "timeout = 20\n";

/* ---- the script (seconds at real pace, in time order)
 * --------------------------------------- */

typedef enum { ACT_CALL, ACT_DTMF, ACT_HANGUP } act_kind;

typedef struct step {
    double t;
    act_kind kind;
    party_id who;
    const char *digits;
    const char *why; /* printed with the action */
} step;

static const step script[] = {
    {0, ACT_CALL, P_ALICE, NULL, "logs in"},
    {4, ACT_CALL, P_CAROL, NULL, "calls the support line"},
    {8, ACT_CALL, P_DAVE, NULL, "calls the support line"},
    {12, ACT_CALL, P_ERIN, NULL, "calls the support line"},
    {16, ACT_DTMF, P_ALICE, "0", "starts recording the call"},
    {20, ACT_CALL, P_FRANK, NULL, "calls the VIP line (priority 5)"},
    {26, ACT_DTMF, P_ALICE, "5", "pauses the recording (a card number is read out)"},
    {32, ACT_DTMF, P_ALICE, "5", "resumes the recording"},
    {38, ACT_DTMF, P_ALICE, "7", "stops the recording"},
    {42, ACT_CALL, P_IVAN, NULL, "calls a billing line nobody configured"},
    {46, ACT_CALL, P_JUDY, NULL, "calls with a malformed priority"},
    {50, ACT_CALL, P_MALLORY, NULL, "tries to log in as agent 1001 too"},
    {54, ACT_CALL, P_HEIDI, NULL, "calls the support line"},
    {60, ACT_HANGUP, P_CAROL, NULL, "hangs up: her call is done"},
    {62, ACT_CALL, P_OSCAR, NULL, "calls the tech line, where nobody is on shift"},
    {66, ACT_DTMF, P_ALICE, "0", "starts recording"},
    {68, ACT_CALL, P_PEGGY, NULL, "calls the tech line too"},
    {72, ACT_DTMF, P_ALICE, "9", "discards that recording"},
    {78, ACT_HANGUP, P_HEIDI, NULL, "gives up waiting and hangs up"},
    {84, ACT_CALL, P_BOB, NULL, "logs in"},
    {90, ACT_CALL, P_GRACE, NULL, "calls the sales line"},
    {98, ACT_DTMF, P_ALICE, "#", "ends the call with her key #"},
    {107, ACT_HANGUP, P_ERIN, NULL, "hangs up: her call is done"},
    {114, ACT_HANGUP, P_BOB, NULL, "hangs up in the middle of a call"},
    {128, ACT_HANGUP, P_GRACE, NULL, "hangs up: her call is done"},
    {134, ACT_HANGUP, P_ALICE, NULL, "hangs up: end of her shift"},
};
#define NSTEPS (sizeof script / sizeof script[0])

/* One leg of a link call between the nodes (an IAX2 channel in the sim):
 * the near leg, on the caller's node, runs Stasis(queue,linkout,PAIRING);
 * the far leg, on the agent's node, Stasis(queue,link,PAIRING). */
typedef struct link_leg {
    char id[64];
    char name[64];
    char pairing[32];
    int node;
    bool near, ended;
    size_t tl_done;
    double up_t; /* wall ms it was answered, 0 before */
} link_leg;

/* ---- state of the run ---------------------------------------------------------- */

static struct {
    const char *sim_url;
    const char *redis_host;
    int redis_port;
    const char *ns;
    double scale;
    bool color;
    CURL *curl;
    redisContext *redis;
    store_keys *keys;
    char events_key[STORE_KEY_MAX];
    char last_id[64];
    struct timespec t0;
    double wall0; /* wall ms at the start */
    double obs_t; /* wall ms of what is being told now; 0: now */
    long connect_seq;
    /* from the events stream */
    int n_enter, n_connect, n_abandon, n_timeout, n_complete_caller, n_complete_agent;
    int n_login, n_logoff, n_recstart, n_recstop, n_recdiscard, n_recpause;
    int n_paired, n_paired_cross;
    /* link calls seen in the sim */
    link_leg links[MAX_LINKS];
    size_t nlinks;
    double hold_sum_ms, hold_max_ms;
    bool abandoned[P__COUNT];
    /* recordings seen in the sim: name -> last state told */
    json_t *recs;
    json_t *lines;  /* queue -> the waiting line last told */
    json_t *logins; /* agent id -> ts_ms of its AGENTLOGIN */
    int checks, failed;
} R;

/* ---- output ------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - R.t0.tv_sec) + (double)(t.tv_nsec - R.t0.tv_nsec) / 1e9;
}

/* Scenario time: real elapsed time at real pace. */
static double scen_s(void)
{
    return R.scale > 0 ? now_s() / R.scale : now_s();
}

static const char *dim(void)
{
    return R.color ? "\033[2m" : "";
}
static const char *bold(void)
{
    return R.color ? "\033[1m" : "";
}
static const char *off(void)
{
    return R.color ? "\033[0m" : "";
}

static double wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

/* Scenario time of a wall-clock instant (the simulator's timeline and the
 * events' ts_ms are both on this host's clock). */
static double scen_of(double wall)
{
    double s = (wall - R.wall0) / 1000.0;
    return R.scale > 0 ? s / R.scale : s;
}

/* What one poll observed, told in the order it happened, not polled. */
typedef struct obs {
    double t; /* wall ms */
    size_t seq;
    char src[8];
    char text[480];
} obs;

static obs *pend;
static size_t npend, cap_pend;

static void line(const char *src, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void line(const char *src, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (strcmp(src, ">>") == 0) {
        printf("[%6.1fs] %s>> ", scen_s(), bold());
        vprintf(fmt, ap);
        printf("%s\n", off());
        fflush(stdout);
    } else if (npend < cap_pend || (pend = realloc(pend, (cap_pend = cap_pend * 2 + 64) *
                                                             sizeof *pend)) != NULL) {
        obs *o = &pend[npend];
        o->t = R.obs_t > 0 ? R.obs_t : wall_ms();
        o->seq = npend++;
        snprintf(o->src, sizeof o->src, "%s", src);
        vsnprintf(o->text, sizeof o->text, fmt, ap);
    }
    va_end(ap);
}

static int by_time(const void *a, const void *b)
{
    const obs *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Tells what happened before `cutoff` (wall ms), in time order; the rest
 * waits a poll or two, so a Redis event read a moment after the simulator's
 * change it caused still comes out in its place. */
static void flush_lines(double cutoff)
{
    if (npend == 0)
        return;
    qsort(pend, npend, sizeof *pend, by_time);
    size_t i = 0;
    for (; i < npend && pend[i].t <= cutoff; i++)
        printf("[%6.1fs] %s%-5s%s  %s\n", scen_of(pend[i].t), dim(), pend[i].src, off(),
               pend[i].text);
    fflush(stdout);
    memmove(pend, pend + i, (npend - i) * sizeof *pend);
    npend -= i;
    for (size_t k = 0; k < npend; k++)
        pend[k].seq = k;
}

/* A duration measured at the scaled pace, shown at real pace. */
static double real_s(double ms)
{
    return (R.scale > 0 ? ms / R.scale : ms) / 1000.0;
}

/* ---- HTTP to the simulator ------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;
    size_t len = size * nmemb;
    char *p = realloc(b->p, b->n + len + 1);
    if (!p)
        return 0;
    memcpy(p + b->n, data, len);
    b->p = p;
    b->n += len;
    p[b->n] = '\0';
    return len;
}

/* One request; returns the body as JSON (new reference) or NULL; *status is
 * the HTTP status or 0. */
static json_t *sim(const char *method, const char *path, const char *body, long *status)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", R.sim_url, path);
    buf b = {NULL, 0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_reset(R.curl);
    curl_easy_setopt(R.curl, CURLOPT_URL, url);
    curl_easy_setopt(R.curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(R.curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(R.curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(R.curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(R.curl, CURLOPT_WRITEDATA, &b);
    if (body)
        curl_easy_setopt(R.curl, CURLOPT_POSTFIELDS, body);
    long st = 0;
    if (curl_easy_perform(R.curl) == CURLE_OK)
        curl_easy_getinfo(R.curl, CURLINFO_RESPONSE_CODE, &st);
    curl_slist_free_all(h);
    if (status)
        *status = st;
    json_t *j = b.p ? json_loads(b.p, 0, NULL) : NULL;
    free(b.p);
    return j;
}

/* GET /sim/channels/ID: summary, connected_to and timeline (new reference),
 * or NULL. */
static json_t *sim_channel(const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/sim/channels/%s", id);
    return sim("GET", path, NULL, NULL);
}

/* ---- who is who ------------------------------------------------------------------- */

static int by_chan(const char *chan)
{
    for (int i = 0; chan && i < P__COUNT; i++)
        if (cast[i].placed && strcmp(cast[i].chan, chan) == 0)
            return i;
    return -1;
}

/* The logged-in agent with this id (Mallory shares Alice's id but is never
 * logged in: the first placed wins). */
static int by_agent(const char *id)
{
    for (int i = 0; id && i < P__COUNT; i++)
        if (cast[i].agent_id && cast[i].placed && strcmp(cast[i].agent_id, id) == 0)
            return i;
    return -1;
}

static const char *name_chan(const char *chan)
{
    int i = by_chan(chan);
    return i >= 0 ? cast[i].name : (chan ? chan : "?");
}

static const char *name_agent(const char *id)
{
    int i = by_agent(id);
    return i >= 0 ? cast[i].name : (id ? id : "?");
}

/* ---- the script's actions ------------------------------------------------------------
 */

static void lowercase(char *dst, size_t len, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++)
        dst[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
    dst[i] = '\0';
}

static void act_call(party *p, const step *s)
{
    char id[32], chname[64];
    lowercase(id, sizeof id, p->name);
    snprintf(chname, sizeof chname, "PJSIP/%s-00000001", id);
    /* after_stasis hangup: when ariq hands a call back, the dialplan ends it */
    json_t *body = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "app", "queue", "args", p->args,
        "caller_number", p->number, "caller_name", p->name, "channel_id", id, "name",
        chname, "exten", p->exten, "node", node_name[p->node], "after_stasis", "hangup");
    char *txt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    line(">>", "%s (%s) %s on %s: dials %s -> Stasis(queue,%s)", p->name, p->number,
         s->why, node_name[p->node], p->exten, p->args);
    long st = 0;
    json_t *r = sim("POST", "/sim/calls", txt, &st);
    free(txt);
    const char *cid = json_string_value(json_object_get(r, "id"));
    if (st == 201 && cid) {
        snprintf(p->chan, sizeof p->chan, "%s", cid);
        p->placed = true;
    } else {
        line(AT(p), "could not place the call (HTTP %ld)", st);
    }
    json_decref(r);
}

static void act(const step *s)
{
    party *p = &cast[s->who];
    char path[256], body[128];
    long st = 0;
    switch (s->kind) {
    case ACT_CALL:
        act_call(p, s);
        return;
    case ACT_DTMF:
        line(">>", "%s presses %s: %s", p->name, s->digits, s->why);
        snprintf(path, sizeof path, "/sim/channels/%s/dtmf", p->chan);
        snprintf(body, sizeof body, "{\"digits\":\"%s\"}", s->digits);
        break;
    case ACT_HANGUP:
        line(">>", "%s %s", p->name, s->why);
        snprintf(path, sizeof path, "/sim/channels/%s/hangup", p->chan);
        snprintf(body, sizeof body, "{\"cause\":16}");
        break;
    }
    json_decref(sim("POST", path, body, &st));
    if (st != 204)
        line(AT(p), "%s: the simulator answered HTTP %ld", p->name, st);
}

/* ---- the oracle: each channel's timeline
 * ------------------------------------------------ */

static const char *sound_words(const char *media, char *out, size_t len)
{
    static const struct {
        const char *media, *words;
    } names[] = {
        {"sound:queue-youarenext", "\"you are next\""},
        {"sound:queue-thereare", "\"there are\""},
        {"sound:queue-callswaiting", "\"calls waiting\""},
        {"sound:beep", "a beep (the call is being recorded)"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(media, names[i].media) == 0)
            return names[i].words;
    if (strncmp(media, "number:", 7) == 0)
        snprintf(out, len, "\"%s\"", media + 7);
    else
        snprintf(out, len, "%s", media);
    return out;
}

static void tell_sound(party *p, json_t *e, int idx)
{
    const char *media = json_string_value(json_object_get(e, "media"));
    char w[160];
    if (!media)
        return;
    line(AT(p), "%s hears %s", p->name, sound_words(media, w, sizeof w));
    if (strcmp(media, "sound:queue-youarenext") == 0)
        p->sounds_youarenext++;
    else if (strcmp(media, "sound:queue-thereare") == 0)
        p->sounds_thereare++;
    else if (strcmp(media, "sound:beep") == 0)
        p->sounds_beep++;
    if (json_is_null(json_object_get(e, "result")) && p->npending < MAX_PENDING)
        p->pending[p->npending++] = idx;
    else if (json_string_value(json_object_get(e, "result")) &&
             strcmp(json_string_value(json_object_get(e, "result")), "cut") == 0)
        line(AT(p), "%s: the announcement is cut off", p->name);
}

/* Sounds that were still playing: told again only if they were cut off. */
static void tell_pending(party *p, json_t *tl)
{
    size_t keep = 0;
    for (size_t i = 0; i < p->npending; i++) {
        json_t *e = json_array_get(tl, (size_t)p->pending[i]);
        const char *res = json_string_value(json_object_get(e, "result"));
        if (!res)
            p->pending[keep++] = p->pending[i];
        else if (strcmp(res, "cut") == 0) {
            R.obs_t = json_number_value(json_object_get(e, "end"));
            line(AT(p), "%s: the announcement is cut off at once", p->name);
        }
    }
    p->npending = keep;
}

static void tell_hangup(party *p, json_t *e)
{
    const char *who = json_string_value(json_object_get(e, "who"));
    if (!who)
        return;
    if (strcmp(who, "party") == 0)
        line(AT(p), "%s's line is hung up (by %s)", p->name, p->name);
    else if (strcmp(who, "app") == 0)
        line(AT(p), "%s is hung up by ariq", p->name);
    else if (strcmp(who, "dialplan") == 0)
        line(AT(p), "%s: the dialplan ends the call", p->name);
    else
        line(AT(p), "%s is hung up (%s)", p->name, who);
}

/* Music that stopped again within a moment (a caller paired as it joins the
 * holding bridge) is not worth telling. */
static bool blip(json_t *tl, size_t on)
{
    double t0 = json_number_value(json_object_get(json_array_get(tl, on), "t"));
    for (size_t i = on + 1; i < json_array_size(tl); i++) {
        json_t *e = json_array_get(tl, i);
        const char *ev = json_string_value(json_object_get(e, "ev"));
        if (ev && strcmp(ev, "moh_off") == 0)
            return json_number_value(json_object_get(e, "t")) - t0 < 300 * R.scale;
    }
    return false;
}

static void tell_entry(party *p, json_t *tl, int idx)
{
    json_t *e = json_array_get(tl, (size_t)idx);
    const char *ev = json_string_value(json_object_get(e, "ev"));
    if (!ev)
        return;
    R.obs_t = json_number_value(json_object_get(e, "t"));
    if (strcmp(ev, "state") == 0) {
        const char *st = json_string_value(json_object_get(e, "state"));
        if (st && strcmp(st, "Up") == 0)
            line(AT(p), "%s is answered", p->name);
    } else if (strcmp(ev, "moh_on") == 0) {
        if (!p->moh_t)
            p->moh_t = R.obs_t;
        if (!p->moh_told && !blip(tl, (size_t)idx))
            line(AT(p), "%s hears music on hold", p->name);
        p->moh_told = true;
    } else if (strcmp(ev, "sound") == 0) {
        tell_sound(p, e, idx);
    } else if (strcmp(ev, "varset") == 0) {
        const char *var = json_string_value(json_object_get(e, "variable"));
        const char *val = json_string_value(json_object_get(e, "value"));
        if (var && val && strcmp(var, "QUEUESTATUS") == 0) {
            snprintf(p->status, sizeof p->status, "%s", val);
            line(AT(p), "%s: ariq sets QUEUESTATUS=%s", p->name, val);
        }
    } else if (strcmp(ev, "continued") == 0) {
        line(AT(p),
             "%s leaves ariq, back in the dialplan ([ariq-status] takes it from here)",
             p->name);
    } else if (strcmp(ev, "entered_bridge") == 0) {
        const char *type = json_string_value(json_object_get(e, "type"));
        if (type && strcmp(type, "mixing") == 0 && !p->mix_t)
            p->mix_t = R.obs_t;
    } else if (strcmp(ev, "stasis_failed") == 0) {
        line(AT(p), "%s: Stasis failed, no queued attached", p->name);
    } else if (strcmp(ev, "hangup") == 0) {
        tell_hangup(p, e);
    } else if (strcmp(ev, "ended") == 0) {
        p->ended = true;
    }
}

static bool has_conn(const party *p, int who)
{
    for (size_t i = 0; i < p->nconn; i++)
        if (p->conn[i] == who)
            return true;
    return false;
}

static bool is_link(const char *chan);

/* A new pair that hears each other. Across nodes, the oracle is asked again
 * (/sim/connected) and the pair must hear each other through a link leg. */
static void tell_pair(party *p, int self, int other, json_t *list)
{
    party *o = &cast[other];
    if (p->node == o->node) {
        line(AT(p), "%s%s and %s hear each other%s (both on %s)", bold(), p->name,
             o->name, off(), AT(p));
        return;
    }
    bool via_link = false;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) via_link |= is_link(json_string_value(v));
    char path[256];
    snprintf(path, sizeof path, "/sim/connected?a=%s&b=%s", p->chan, o->chan);
    json_t *c = sim("GET", path, NULL, NULL);
    if (via_link && json_is_true(json_object_get(c, "connected"))) {
        p->linked_with |= 1u << other;
        o->linked_with |= 1u << self;
    }
    json_decref(c);
    line(AT(p), "%s%s (%s) and %s (%s) hear each other%s, through the link call", bold(),
         p->name, AT(p), o->name, AT(o), off());
}

/* Who this party hears now; a new pair is told once, by the lower index. */
static void tell_connected(party *p, int self, json_t *list, json_t *tl)
{
    R.obs_t = 0; /* when it joined its last mixing bridge, else now */
    for (size_t i = json_array_size(tl); i-- > 0;) {
        json_t *e = json_array_get(tl, i);
        const char *type = json_string_value(json_object_get(e, "type"));
        if (type && strcmp(type, "mixing") == 0) {
            R.obs_t = json_number_value(json_object_get(e, "t"));
            break;
        }
    }
    int now[MAX_CONN];
    size_t n = 0;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        int who = by_chan(json_string_value(v));
        if (who >= 0 && n < MAX_CONN)
            now[n++] = who;
    }
    for (size_t k = 0; k < n; k++) {
        if (has_conn(p, now[k]))
            continue;
        p->heard_with |= 1u << now[k];
        if (!p->first_connect && !cast[self].agent_id)
            p->first_connect = ++R.connect_seq;
        if (!has_conn(&cast[now[k]], self)) /* the other side has not told it yet */
            tell_pair(p, self, now[k], list);
        p->moh_told = false; /* music again later is worth telling */
    }
    memcpy(p->conn, now, n * sizeof now[0]);
    p->nconn = n;
}

static void poll_party(int i)
{
    party *p = &cast[i];
    if (!p->placed || p->ended)
        return;
    json_t *c = sim_channel(p->chan);
    if (!c)
        return;
    json_t *tl = json_object_get(c, "timeline");
    tell_pending(p, tl);
    for (; p->tl_done < json_array_size(tl); p->tl_done++)
        tell_entry(p, tl, (int)p->tl_done);
    tell_connected(p, i, json_object_get(c, "connected_to"), tl);
    json_decref(c);
}

/* ---- the oracle: link calls between the nodes
 * ------------------------------------------------------------- */

static int node_index(const char *name)
{
    for (int i = 0; name && i < NNODES; i++)
        if (strcmp(name, node_name[i]) == 0)
            return i;
    return -1;
}

static link_leg *link_by_id(const char *id)
{
    for (size_t i = 0; id && i < R.nlinks; i++)
        if (strcmp(R.links[i].id, id) == 0)
            return &R.links[i];
    return NULL;
}

/* A link leg is an IAX2 channel: the dial string of link_dial. */
static bool is_link_name(const char *name)
{
    return name && strncmp(name, "IAX2/", 5) == 0;
}

static bool is_link(const char *chan)
{
    if (!chan || by_chan(chan) >= 0)
        return false;
    if (link_by_id(chan))
        return true;
    json_t *c = sim_channel(chan); /* one the last poll did not list yet */
    bool yes = is_link_name(json_string_value(json_object_get(c, "name")));
    json_decref(c);
    return yes;
}

/* The party on the far side of a link leg: in what the leg hears, the one
 * on the other node. */
static party *across(const link_leg *l, json_t *connected_to)
{
    size_t i;
    json_t *v;
    json_array_foreach(connected_to, i, v)
    {
        int who = by_chan(json_string_value(v));
        if (who >= 0 && cast[who].node != l->node)
            return &cast[who];
    }
    return NULL;
}

static void tell_link_entry(link_leg *l, json_t *c, json_t *e)
{
    const char *ev = json_string_value(json_object_get(e, "ev"));
    const char *at = node_name[l->node];
    R.obs_t = json_number_value(json_object_get(e, "t"));
    if (!ev)
        return;
    if (strcmp(ev, "state") == 0) {
        const char *st = json_string_value(json_object_get(e, "state"));
        if (st && strcmp(st, "Up") == 0)
            l->up_t = R.obs_t;
    } else if (strcmp(ev, "stasis_start") == 0) {
        json_t *args = json_object_get(e, "args");
        const char *role = json_string_value(json_array_get(args, 0));
        const char *pairing = json_string_value(json_array_get(args, 1));
        snprintf(l->pairing, sizeof l->pairing, "%s", pairing ? pairing : "?");
        l->near = role && strcmp(role, "linkout") == 0;
        link_leg *far = link_by_id(json_string_value(json_object_get(c, "link_peer")));
        if (l->near)
            line(at, "the link call for pairing %s is up: %s here <-> %s on %s",
                 l->pairing, l->name, far ? far->name : "its far leg",
                 far ? node_name[far->node] : "the other node");
        else
            line(at, "a link call for pairing %s arrives from %s: Stasis(queue,link,%s)",
                 l->pairing, far ? node_name[far->node] : "the other node", l->pairing);
    } else if (strcmp(ev, "sound") == 0) {
        const char *media = json_string_value(json_object_get(e, "media"));
        party *p = across(l, json_object_get(c, "connected_to"));
        if (p && media && strcmp(media, "sound:beep") == 0) {
            p->sounds_beep++;
            line(at,
                 "%s hears a beep (the call is being recorded): played here into the "
                 "link call, which carries it to %s on %s",
                 p->name, p->name, AT(p));
        }
    } else if (strcmp(ev, "hangup") == 0) {
        const char *who = json_string_value(json_object_get(e, "who"));
        if (who && strcmp(who, "app") == 0)
            line(at, "queued hangs up its leg of the link call for pairing %s",
                 l->pairing);
    } else if (strcmp(ev, "ended") == 0) {
        l->ended = true;
    }
}

/* Tracks channel summary c if it is a link leg not yet known. */
static void link_add(json_t *c)
{
    const char *id = json_string_value(json_object_get(c, "id"));
    const char *name = json_string_value(json_object_get(c, "name"));
    int node = node_index(json_string_value(json_object_get(c, "node")));
    if (!id || !is_link_name(name) || node < 0 || link_by_id(id) || R.nlinks == MAX_LINKS)
        return;
    link_leg *l = &R.links[R.nlinks++];
    memset(l, 0, sizeof *l);
    snprintf(l->id, sizeof l->id, "%s", id);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->node = node;
}

/* New link legs from the sim's channel list, then what each one still open
 * went through. */
static void poll_links(void)
{
    json_t *all = sim("GET", "/sim/channels", NULL, NULL), *c;
    size_t i;
    json_array_foreach(all, i, c) link_add(c);
    json_decref(all);
    for (size_t k = 0; k < R.nlinks; k++) {
        link_leg *l = &R.links[k];
        if (l->ended || !(c = sim_channel(l->id)))
            continue;
        json_t *tl = json_object_get(c, "timeline");
        for (; l->tl_done < json_array_size(tl); l->tl_done++)
            tell_link_entry(l, c, json_array_get(tl, l->tl_done));
        json_decref(c);
    }
}

/* The near leg of a pairing's link call, or NULL. */
static const link_leg *near_leg(const char *pairing)
{
    for (size_t i = 0; pairing && *pairing && i < R.nlinks; i++)
        if (R.links[i].near && strcmp(R.links[i].pairing, pairing) == 0)
            return &R.links[i];
    return NULL;
}

/* ---- the oracle: recordings
 * ---------------------------------------------------------------- */

static void poll_recordings(void)
{
    json_t *all = sim("GET", "/sim/recordings", NULL, NULL);
    size_t i;
    json_t *r;
    json_array_foreach(all, i, r)
    {
        const char *name = json_string_value(json_object_get(r, "name"));
        const char *state = json_string_value(json_object_get(r, "state"));
        if (!name || !state)
            continue;
        const char *was = json_string_value(json_object_get(R.recs, name));
        if (was && strcmp(was, state) == 0)
            continue;
        json_object_set_new(R.recs, name, json_string(state));
        if (strcmp(state, "done") != 0)
            continue;
        R.obs_t = json_number_value(json_object_get(r, "ended"));
        const char *at = json_string_value(json_object_get(r, "node"));
        at = at ? at : "sim";
        if (json_is_true(json_object_get(r, "discarded")))
            line(at, "recorder: %s is gone (discarded)", name);
        else
            line(at, "recorder: %s is kept: %.1f s of conversation in %zu span(s)", name,
                 real_s((double)json_integer_value(json_object_get(r, "duration_ms"))),
                 json_array_size(json_object_get(r, "spans")));
    }
    json_decref(all);
}

/* ---- Redis: the events stream and the waiting lines
 * ---------------------------------------- */

static const char *field(redisReply *fields, const char *name)
{
    for (size_t k = 0; k + 1 < fields->elements; k += 2)
        if (fields->element[k]->str && strcmp(fields->element[k]->str, name) == 0)
            return fields->element[k + 1]->str ? fields->element[k + 1]->str : "";
    return "";
}

static double num(redisReply *f, const char *name)
{
    return atof(field(f, name));
}

/* "support: 1. Frank  2. Dave" from the queue's callers zset. */
static void tell_line(const char *queue)
{
    char key[STORE_KEY_MAX];
    if (!queue || !*queue || strcmp(queue, "NONE") == 0 ||
        store_key(R.keys, key, sizeof key, "queue", queue, "callers") != 0)
        return;
    redisReply *r = redisCommand(R.redis, "ZRANGE %s 0 -1", key);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return;
    }
    char out[512];
    int n = snprintf(out, sizeof out, "  %s queue now: ", queue);
    if (r->elements == 0)
        n += snprintf(out + n, sizeof out - (size_t)n, "nobody waiting");
    for (size_t i = 0; i < r->elements && n < (int)sizeof out - 40; i++) {
        int who = by_chan(r->element[i]->str);
        n += snprintf(out + n, sizeof out - (size_t)n, "%s%zu. %s%s%s%s", i ? "  " : "",
                      i + 1, name_chan(r->element[i]->str), who >= 0 ? " (" : "",
                      who >= 0 ? AT(&cast[who]) : "", who >= 0 ? ")" : "");
    }
    freeReplyObject(r);
    const char *was = json_string_value(json_object_get(R.lines, queue));
    if (was && strcmp(was, out) == 0)
        return; /* told already */
    json_object_set_new(R.lines, queue, json_string(out));
    line("redis", "%s", out);
}

/* RECORDSTART, RECORDPAUSE, RECORDUNPAUSE, RECORDSTOP, RECORDDISCARD. */
static void tell_record(redisReply *f, const char *ev, const char *caller,
                        const char *agent)
{
    static const char *const what[][2] = {
        {"RECORDSTART", "started"},
        {"RECORDPAUSE", "paused"},
        {"RECORDUNPAUSE", "resumed"},
        {"RECORDSTOP", "stopped, the file is kept"},
        {"RECORDDISCARD", "discarded, the file is deleted"}};
    const char *w = "changed";
    for (size_t i = 0; i < sizeof what / sizeof what[0]; i++)
        if (strcmp(ev, what[i][0]) == 0)
            w = what[i][1];
    R.n_recstart += strcmp(ev, "RECORDSTART") == 0;
    R.n_recpause += strcmp(ev, "RECORDPAUSE") == 0;
    R.n_recstop += strcmp(ev, "RECORDSTOP") == 0;
    R.n_recdiscard += strcmp(ev, "RECORDDISCARD") == 0;
    line("redis", "%-15s recording %s of %s and %s: %s", ev, field(f, "recording"), agent,
         caller, w);
}

/* PAIRED: which node each party is on, and so whether a link call is needed. */
static void tell_paired(redisReply *f)
{
    const char *cn = field(f, "caller_node"), *an = field(f, "agent_node");
    const char *pairing = field(f, "pairing");
    int c = by_chan(field(f, "caller_channel")), a = by_chan(field(f, "agent_channel"));
    const char *caller = c >= 0 ? cast[c].name : "?",
               *agent = a >= 0 ? cast[a].name : "?";
    bool cross = strcmp(cn, an) != 0;
    R.n_paired++;
    R.n_paired_cross += cross;
    if (c >= 0) {
        snprintf(cast[c].pairing, sizeof cast[c].pairing, "%s", pairing);
        cast[c].paired_nodes_ok =
            a >= 0 && strcmp(cn, AT(&cast[c])) == 0 && strcmp(an, AT(&cast[a])) == 0;
    }
    if (cross)
        line("redis",
             "PAIRED          %s (%s) with %s (%s), pairing %s: different nodes, so "
             "%s calls %s over a link call; %s stays on hold until it is up",
             caller, cn, agent, an, pairing, cn, an, caller);
    else
        line(
            "redis",
            "PAIRED          %s with %s, both on %s (pairing %s): %s bridges them itself",
            caller, agent, cn, pairing, cn);
}

static void tell_event(redisReply *f)
{
    R.obs_t = num(f, "ts_ms");
    const char *ev = field(f, "event"), *q = field(f, "queue");
    const char *caller = name_chan(field(f, "callid")),
               *agent = name_agent(field(f, "agent"));
    if (strcmp(ev, "ENTERQUEUE") == 0) {
        R.n_enter++;
        int who = by_chan(field(f, "callid"));
        line("redis", "ENTERQUEUE      %s waits in %s at position %s (called %s)", caller,
             q, field(f, "position"), who >= 0 ? AT(&cast[who]) : "?");
        tell_line(q);
    } else if (strcmp(ev, "CONNECT") == 0) {
        double h = num(f, "holdtime_ms");
        R.n_connect++;
        R.hold_sum_ms += h;
        if (h > R.hold_max_ms)
            R.hold_max_ms = h;
        int c = by_chan(field(f, "callid")), a = by_agent(field(f, "agent"));
        bool cross = c >= 0 && a >= 0 && cast[c].node != cast[a].node;
        if (cross)
            line("redis",
                 "CONNECT         %s%s on %s is put through to %s on %s over the link "
                 "call%s after %.1f s on hold (%s)",
                 bold(), caller, AT(&cast[c]), agent, AT(&cast[a]), off(), real_s(h), q);
        else
            line("redis",
                 "CONNECT         %s%s is put through to %s%s after %.1f s on hold (%s)",
                 bold(), caller, agent, off(), real_s(h), q);
        tell_line(q);
    } else if (strcmp(ev, "ABANDON") == 0 || strcmp(ev, "EXITWITHTIMEOUT") == 0) {
        bool ab = ev[0] == 'A';
        ab ? R.n_abandon++ : R.n_timeout++;
        int who = by_chan(field(f, "callid"));
        if (who >= 0 && ab)
            R.abandoned[who] = true;
        line("redis", "%-15s %s %s at position %s after %.1f s", ev, caller,
             ab ? "hung up while waiting" : "waited too long", field(f, "position"),
             real_s(num(f, "waittime_ms")));
        tell_line(q);
    } else if (strcmp(ev, "COMPLETECALLER") == 0 || strcmp(ev, "COMPLETEAGENT") == 0) {
        bool by_caller = strcmp(ev, "COMPLETECALLER") == 0;
        by_caller ? R.n_complete_caller++ : R.n_complete_agent++;
        int a = by_agent(field(f, "agent"));
        if (a >= 0) {
            cast[a].calls++;
            cast[a].talk_ms += num(f, "calltime_ms");
        }
        line("redis", "%-15s %s's call with %s is over: %.1f s talking (%s ended it)", ev,
             caller, agent, real_s(num(f, "calltime_ms")),
             by_caller ? "the caller" : "the agent");
    } else if (strcmp(ev, "AGENTLOGIN") == 0) {
        R.n_login++;
        json_object_set_new(R.logins, field(f, "agent"), json_real(num(f, "ts_ms")));
        int a = by_agent(field(f, "agent"));
        line("redis",
             "AGENTLOGIN      %s (agent %s) on %s is logged in to %s, waiting for calls",
             agent, field(f, "agent"), a >= 0 ? AT(&cast[a]) : "?", field(f, "queues"));
    } else if (strcmp(ev, "AGENTLOGOFF") == 0) {
        R.n_logoff++;
        json_t *in = json_object_get(R.logins, field(f, "agent"));
        if (in)
            line("redis", "AGENTLOGOFF     %s is logged off after %.1f s logged in",
                 agent, real_s(num(f, "ts_ms") - json_real_value(in)));
        else
            line("redis", "AGENTLOGOFF     %s is logged off", agent);
    } else if (strncmp(ev, "RECORD", 6) == 0) {
        tell_record(f, ev, caller, agent);
    } else if (strcmp(ev, "PAIRED") == 0) {
        tell_paired(f);
    } else if (strcmp(ev, "UNPAIRED") == 0 &&
               strcmp(field(f, "reason"), "rollback") == 0) {
        line("redis", "UNPAIRED        pairing %s rolled back (%s)", field(f, "pairing"),
             field(f, "detail"));
    }
    /* UNPAIRED (normal ends) and WITHDRAW add nothing a newcomer needs */
}

static void poll_events(void)
{
    redisReply *r =
        redisCommand(R.redis, "XRANGE %s (%s + COUNT 100", R.events_key, R.last_id);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return;
    }
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
            continue;
        snprintf(R.last_id, sizeof R.last_id, "%s", e->element[0]->str);
        tell_event(e->element[1]);
    }
    freeReplyObject(r);
}

static void poll_all(void)
{
    poll_events();
    poll_links(); /* first: a party's connected_to may name a new link leg */
    for (int i = 0; i < P__COUNT; i++)
        poll_party(i);
    poll_recordings();
    R.obs_t = 0;
    flush_lines(wall_ms() - 100);
}

/* ---- checks and summary
 * ------------------------------------------------------------------ */

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    R.checks++;
    if (!ok)
        R.failed++;
    printf("  [%s] ", ok ? " ok " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static bool served(party_id c, party_id a)
{
    return (cast[c].heard_with & (1u << a)) != 0;
}

static int live_channels(void)
{
    json_t *st = sim("GET", "/sim/state", NULL, NULL);
    int n = st ? (int)json_integer_value(json_object_get(st, "channels")) : -1;
    json_decref(st);
    return n;
}

/* Records of parties left in Redis (call, agent, pairing keys, waiting lines). */
static long long redis_left(void)
{
    static const char *const kinds[] = {"call", "agent", "pairing", "queue"};
    long long n = 0;
    for (size_t i = 0; i < 4; i++) {
        char key[STORE_KEY_MAX];
        if (store_key(R.keys, key, sizeof key, kinds[i], NULL, NULL) != 0)
            continue;
        redisReply *r = redisCommand(R.redis, "KEYS %s:*", key);
        n += r && r->type == REDIS_REPLY_ARRAY ? (long long)r->elements : 1;
        freeReplyObject(r);
    }
    return n;
}

static void recordings_seen(int *kept, int *gone, int *kept_spans, char *kept_node,
                            size_t len)
{
    json_t *all = sim("GET", "/sim/recordings", NULL, NULL);
    size_t i;
    json_t *r;
    *kept = *gone = *kept_spans = 0;
    json_array_foreach(all, i, r)
    {
        if (json_is_true(json_object_get(r, "discarded")))
            (*gone)++;
        else if (json_is_true(json_object_get(r, "stored"))) {
            (*kept)++;
            *kept_spans = (int)json_array_size(json_object_get(r, "spans"));
            const char *n = json_string_value(json_object_get(r, "node"));
            snprintf(kept_node, len, "%s", n ? n : "");
        }
    }
    json_decref(all);
}

static void summary(void)
{
    int callers = 0, turned = 0, kept, gone, spans;
    for (int i = 0; i < P__COUNT; i++)
        if (!cast[i].agent_id && cast[i].placed)
            callers++;
    for (int i = 0; i < P__COUNT; i++) /* TIMEOUT counts as timed out */
        turned += cast[i].status[0] != '\0' && strcmp(cast[i].status, "TIMEOUT") != 0;
    char kept_node[32] = "";
    recordings_seen(&kept, &gone, &spans, kept_node, sizeof kept_node);
    printf("\n%s== summary ==%s\n", bold(), off());
    printf("  callers      %d called, %d served, %d abandoned, %d timed out, %d turned "
           "away\n",
           callers, R.n_connect, R.n_abandon, R.n_timeout, turned);
    printf("  hold time    average %.1f s, longest %.1f s (from %d CONNECT events)\n",
           R.n_connect ? real_s(R.hold_sum_ms / R.n_connect) : 0.0, real_s(R.hold_max_ms),
           R.n_connect);
    printf("  calls ended  %d by the caller (COMPLETECALLER), %d by the agent "
           "(COMPLETEAGENT)\n",
           R.n_complete_caller, R.n_complete_agent);
    int shown = 0;
    printf("  agents       %d logged in, %d logged off;", R.n_login, R.n_logoff);
    for (int i = 0; i < P__COUNT; i++)
        if (cast[i].calls)
            printf("%s %s %d call%s (%.0f s talking)", ++shown > 1 ? "," : "",
                   cast[i].name, cast[i].calls, cast[i].calls > 1 ? "s" : "",
                   real_s(cast[i].talk_ms));
    printf("\n");
    printf("  recordings   %d kept, %d discarded\n", kept, gone);
    printf("  nodes        %d pairings, %d of them across node1 and node2 over a link "
           "call\n",
           R.n_paired, R.n_paired_cross);
    if (R.scale != 1)
        printf("  (times shown at real pace; this run went %.0fx faster)\n", 1 / R.scale);

    printf("\n%s== checks ==%s\n", bold(), off());
    check(served(P_CAROL, P_ALICE),
          "Carol (node1) was put through to Alice (node2), the only agent");
    check(served(P_FRANK, P_ALICE) && cast[P_FRANK].first_connect &&
              cast[P_FRANK].first_connect < cast[P_DAVE].first_connect &&
              cast[P_FRANK].first_connect < cast[P_ERIN].first_connect,
          "Frank (priority 5, called last) was served before Dave and Erin");
    check(served(P_DAVE, P_BOB) && cast[P_DAVE].first_connect &&
              cast[P_DAVE].first_connect < cast[P_ERIN].first_connect,
          "one order over both nodes: Bob (node1) got Dave (node2, called at 8 s) before "
          "Erin (node1, 12 s)");
    check(served(P_ERIN, P_ALICE) && served(P_GRACE, P_ALICE),
          "Alice served Erin (support) and then Grace (sales)");
    check(R.n_paired == 5 && R.n_paired_cross == 3 && cast[P_CAROL].paired_nodes_ok &&
              cast[P_DAVE].paired_nodes_ok && cast[P_ERIN].paired_nodes_ok &&
              cast[P_FRANK].paired_nodes_ok && cast[P_GRACE].paired_nodes_ok,
          "5 PAIRED naming each party's node: 3 with caller_node != agent_node (Carol, "
          "Dave, Erin), 2 on node2 alone");
    check((cast[P_CAROL].linked_with & (1u << P_ALICE)) &&
              (cast[P_ERIN].linked_with & (1u << P_ALICE)) &&
              (cast[P_DAVE].linked_with & (1u << P_BOB)),
          "the oracle's /sim/connected: Carol-Alice, Erin-Alice, Dave-Bob heard each "
          "other through link legs");
    bool held = true;
    for (int c = P_CAROL; c <= P_ERIN; c++) {
        const link_leg *l = near_leg(cast[c].pairing);
        held &= l && l->up_t > 0 && cast[c].moh_t > 0 && cast[c].moh_t <= l->up_t &&
                cast[c].mix_t >= l->up_t;
    }
    check(held, "Carol, Dave and Erin heard music on hold until their link call was up");
    check(cast[P_DAVE].sounds_youarenext > 0 && cast[P_ERIN].sounds_thereare > 0,
          "waiting callers heard their position (\"you are next\", \"there are N\")");
    check(cast[P_CAROL].sounds_beep > 0,
          "Carol (node1) heard the beep of Alice's key 0 (node2), through the link");
    check(kept == 1 && spans == 2 && gone == 1 && strcmp(kept_node, "node2") == 0,
          "one recording kept without its paused part (2 spans) on node2, the agent's "
          "node; one discarded");
    check(R.abandoned[P_HEIDI] && !cast[P_HEIDI].heard_with,
          "Heidi abandoned, never connected");
    check(strcmp(cast[P_IVAN].status, "UNKNOWNQUEUE") == 0,
          "Ivan got QUEUESTATUS=UNKNOWNQUEUE");
    check(strcmp(cast[P_JUDY].status, "INVALIDARGS") == 0,
          "Judy got QUEUESTATUS=INVALIDARGS");
    check(strcmp(cast[P_MALLORY].status, "AGENTINUSE") == 0,
          "Mallory (node1) got QUEUESTATUS=AGENTINUSE: agent 1001 is Alice's, on node2");
    check(strcmp(cast[P_PEGGY].status, "FULL") == 0,
          "Peggy (node2) got QUEUESTATUS=FULL: Oscar waits in tech on node1, maxlen 1");
    check(R.n_timeout == 1 && strcmp(cast[P_OSCAR].status, "TIMEOUT") == 0,
          "Oscar left tech after its 20 s timeout: EXITWITHTIMEOUT, QUEUESTATUS=TIMEOUT");
    check(R.n_enter == 7 && R.n_connect == 5 &&
              R.n_complete_caller + R.n_complete_agent == 5 && R.n_login == 2 &&
              R.n_logoff == 2,
          "events stream: 7 ENTERQUEUE, 5 CONNECT, 5 COMPLETE*, 2 AGENTLOGIN, 2 "
          "AGENTLOGOFF");
    check(R.n_recstart == 2 && R.n_recpause == 1 && R.n_recstop == 1 &&
              R.n_recdiscard == 1,
          "events stream: 2 RECORDSTART, 1 RECORDPAUSE, 1 RECORDSTOP, 1 RECORDDISCARD");
    int live = live_channels();
    check(live == 0, "no channel left on either node, link legs included (%d)", live);
    long long left = redis_left();
    check(left == 0, "no call, agent, pairing or queue left in Redis (%lld keys)", left);
    printf("\n  %d/%d checks passed\n", R.checks - R.failed, R.checks);
}

/* ---- main
 * -------------------------------------------------------------------------------- */

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static bool all_ended(void)
{
    for (int i = 0; i < P__COUNT; i++)
        if (cast[i].placed && !cast[i].ended)
            return false;
    return true;
}

static void run(void)
{
    for (size_t s = 1; s < NSTEPS; s++)
        if (script[s].t < script[s - 1].t)
            abort(); /* the script must be in time order */
    double tick = R.scale * 0.1;
    if (tick < 0.02)
        tick = 0.02;
    clock_gettime(CLOCK_MONOTONIC, &R.t0);
    R.wall0 = wall_ms();
    for (size_t s = 0; s < NSTEPS;) {
        if (scen_s() >= script[s].t) {
            poll_all(); /* what happened before the action is told before it */
            flush_lines(HUGE_VAL);
        }
        while (s < NSTEPS && scen_s() >= script[s].t)
            act(&script[s++]);
        poll_all();
        sleep_s(tick);
    }
    /* let the last hangups play out: every channel ended, then a beat more */
    double until = now_s() + 10 * (R.scale > 0.2 ? R.scale : 0.2) + 2;
    while (!all_ended() && now_s() < until) {
        poll_all();
        sleep_s(tick);
    }
    sleep_s(0.2);
    poll_all();
    flush_lines(HUGE_VAL);
}

static void intro(void)
{
    printf("%s== the cast ==%s\n", bold(), off());
    for (int i = 0; i < P__COUNT; i++)
        printf("  %-8s %-8s %-6s %s\n", cast[i].name, cast[i].number, AT(&cast[i]),
               cast[i].note);
    printf(
        "\n  Two Asterisk servers, node1 and node2, each with its own queued, share one\n"
        "  Redis: a queue is one line over both nodes, served in one order. Alice\n"
        "  works on node2 and Bob on node1; callers dial either node. When a caller\n"
        "  and an agent are on different nodes, the caller's node places a link call\n"
        "  (IAX2) to the agent's node and each node bridges its own party with it;\n"
        "  the agent's node sees the agent's keys and records there.\n"
        "  Queues: support (announcements every 20 s), sales (every 15 s), tech (no\n"
        "  announcements, at most 1 caller waiting, for 20 s at most).\n"
        "  Alice's keys in a call: 0 record, 5 pause/resume, 7 stop, 9 discard, # "
        "hang up.\n"
        "  \">>\" is what a party does; \"node1\"/\"node2\" lines are what that "
        "simulated\n"
        "  Asterisk saw (its oracle), \"redis\" lines are ariq's events stream and "
        "waiting lines.\n\n");
    printf("%s== the call center at work ==%s\n", bold(), off());
}

static int usage(void)
{
    fprintf(stderr,
            "usage: ariq-demo --sim URL --redis HOST:PORT [--scale F] [--namespace NS]"
            " [--no-color]\n"
            "       ariq-demo --print-queues\n");
    return 2;
}

static int parse_args(int argc, char **argv)
{
    R.scale = 1;
    R.ns = STORE_NS_DEFAULT;
    R.color = isatty(1);
    static char host[256];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--print-queues") == 0) {
            fputs(queues_ini, stdout);
            exit(0);
        } else if (strcmp(a, "--no-color") == 0) {
            R.color = false;
        } else if (!v) {
            return usage();
        } else if (strcmp(a, "--sim") == 0) {
            R.sim_url = v, i++;
        } else if (strcmp(a, "--namespace") == 0) {
            R.ns = v, i++;
        } else if (strcmp(a, "--scale") == 0) {
            R.scale = atof(v), i++;
        } else if (strcmp(a, "--redis") == 0) {
            const char *colon = strrchr(v, ':');
            if (!colon || colon == v || (size_t)(colon - v) >= sizeof host)
                return usage();
            snprintf(host, sizeof host, "%.*s", (int)(colon - v), v);
            R.redis_host = host;
            R.redis_port = atoi(colon + 1);
            i++;
        } else {
            return usage();
        }
    }
    if (!R.sim_url || !R.redis_host || R.redis_port <= 0 || R.scale <= 0 || R.scale > 100)
        return usage();
    return 0;
}

static int connect_all(void)
{
    if (store_keys_new(R.ns, &R.keys) != 0 ||
        store_key(R.keys, R.events_key, sizeof R.events_key, "events", NULL, NULL) != 0) {
        fprintf(stderr, "ariq-demo: bad namespace '%s'\n", R.ns);
        return 2;
    }
    R.redis = redisConnect(R.redis_host, R.redis_port);
    if (!R.redis || R.redis->err) {
        fprintf(stderr, "ariq-demo: cannot reach Redis at %s:%d\n", R.redis_host,
                R.redis_port);
        return 2;
    }
    /* start after what the stream holds already */
    redisReply *r = redisCommand(R.redis, "XREVRANGE %s + - COUNT 1", R.events_key);
    snprintf(R.last_id, sizeof R.last_id, "0-0");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1)
        snprintf(R.last_id, sizeof R.last_id, "%s", r->element[0]->element[0]->str);
    freeReplyObject(r);
    R.curl = curl_easy_init();
    long st = 0;
    json_t *state = sim("GET", "/sim/state", NULL, &st);
    int found = 0;
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(state, "nodes"), i, n) found +=
        node_index(json_string_value(json_object_get(n, "name"))) >= 0;
    json_decref(state);
    if (st != 200) {
        fprintf(stderr, "ariq-demo: no simulator at %s\n", R.sim_url);
        return 2;
    }
    if (found != NNODES) {
        fprintf(stderr,
                "ariq-demo: the simulator at %s must run node1 and node2 (each "
                "with its queued)\n",
                R.sim_url);
        return 2;
    }
    R.recs = json_object();
    R.lines = json_object();
    R.logins = json_object();
    return 0;
}

int main(int argc, char **argv)
{
    int rc = parse_args(argc, argv);
    if (rc)
        return rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if ((rc = connect_all()) == 0) {
        intro();
        run();
        summary();
        rc = R.failed ? 1 : 0;
    }
    free(pend);
    json_decref(R.recs);
    json_decref(R.lines);
    json_decref(R.logins);
    if (R.curl)
        curl_easy_cleanup(R.curl);
    if (R.redis)
        redisFree(R.redis);
    store_keys_free(R.keys);
    curl_global_cleanup();
    return rc;
}
