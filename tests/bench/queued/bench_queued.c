/* bench_queued.c - the single-node queue (issue 3) under load: the real
 * queued against the simulator in zero-latency mode (--scale 0, time_scale 0,
 * announcements off, sweep every 60 s) and a real redis-server.
 *
 *   1. warm-up: one caller and one agent paired and hung up (the holding
 *      bridge exists, every code path has run once); queued's VmRSS/VmData;
 *   2. the queue filled with 100 waiting callers (in Redis and in the holding
 *      bridge), then ROUNDS pairings one at a time: a new agent arrives, the
 *      bench polls the oracle until the agent is connected, reads both
 *      timelines, hangs the agent up (queued hangs the caller up) and places
 *      one caller at the back, so the number waiting stays 100;
 *   3. filled to 5,000 waiting: queued's VmRSS/VmData again; queued killed
 *      (SIGKILL) and started again, then stopped (SIGTERM) and started again:
 *      the time until it re-adopted them all (issue 7); ROUNDS pairings;
 *   4. 100 more agents arrive one at a time with 5,000 waiting, no hangups:
 *      Redis INFO commandstats before and after, and a MONITOR connection
 *      counting queued's commands by name and queue.lua op;
 *   5. every channel hung up: nothing left in the simulator or the queue;
 *      queued stops cleanly on SIGTERM.
 *
 * A pairing's latency is measured on the simulator's clock (its wall clock,
 * whole ms, the oracle timelines' `t`): from "both waiting" = the later of
 * the caller's entry into the holding bridge and the agent's answer (state
 * Up: queued has it and sends the login, which pairs at once) to "both in
 * the mixing bridge" = the later of their entered_bridge mixing. Also printed:
 * from the agent's StasisStart (its arrival), from queued's AGENTLOGIN/PAIRED
 * event (ts_ms, queued's wall clock on the same host), and the bench's own
 * monotonic µs from placing the agent to seeing it connected (polling every
 * 200 µs, so an upper bound).
 *
 * Prints "name: value unit" lines. Usage: bench_queued [rounds] [waiting]
 * [burst] (defaults 1000 and 5000; `burst` hangs every waiting caller up at
 * once at the end instead of 100 at a time, and reports what queued lost).
 * Exit 0 when every step worked. */
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "queued_proc.h"
#include "redis_proc.h"
#include "sim_proc.h"

#define QUEUE "bench"
#define CALLERS_KEY "{ariq}:queue:" QUEUE ":callers"
#define EVENTS_KEY "{ariq}:events"
#define RT_PAIRINGS 100
#define POLL_US 200
#define WAIT_MS 20000
#define MAX_NAMES 64

typedef struct counts {
    int n;
    char name[MAX_NAMES][48];
    long long v[MAX_NAMES];
} counts;

/* One measured pairing. Times are the oracle's wall ms. */
typedef struct sample {
    char agent_id[32];
    long long stasis, up, caller_held, both_in;
    bool agent_held; /* the agent entered the holding bridge before the call */
    uint64_t client_us;
} sample;

typedef struct monitor {
    pthread_t th;
    redisContext *c;
    atomic_int stop;
    atomic_int seen;
    char self[64]; /* "127.0.0.1:PORT" of the bench's own connection */
    counts cmds;   /* queued's commands by name */
    counts ops;    /* queued's EVALSHA by queue.lua op (or script sha) */
    long long lua; /* commands run inside scripts (shown as "[0 lua]") */
} monitor;

typedef struct bench {
    redis_proc redis;
    sim_proc sim;
    queued_proc q;
    bool redis_up, sim_up, q_up;
    CURL *c;
    struct curl_slist *hdrs;
    char *body;
    size_t body_len;
    redisContext *rc;
    int rounds, waiting;
    bool burst; /* hang up every waiting caller at once at the end */
    long ncallers, nagents;
    sample *s;
} bench;

/* ---- small helpers ---------------------------------------------------------- */

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void counts_add(counts *c, const char *name, long long v)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->name[i], name) == 0) {
            c->v[i] += v;
            return;
        }
    if (c->n < MAX_NAMES) {
        snprintf(c->name[c->n], sizeof c->name[0], "%s", name);
        c->v[c->n++] = v;
    }
}

static long long counts_get(const counts *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->name[i], name) == 0)
            return c->v[i];
    return 0;
}

static long proc_status_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ':')
            kb = atol(line + strlen(key) + 1);
    if (f)
        fclose(f);
    return kb;
}

/* utime + stime of a process, in ms (clock ticks: 10 ms resolution). */
static long long proc_cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                     &st) != 2)
        return -1;
    return (long long)((ut + st) * 1000ULL / (unsigned long long)sysconf(_SC_CLK_TCK));
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of v[0..n) (sorts v). */
static long long pct(long long *v, int n, int p)
{
    if (n <= 0)
        return -1;
    qsort(v, (size_t)n, sizeof *v, cmp_ll);
    int rank = (int)(((long long)p * n + 99) / 100);
    return v[rank < 1 ? 0 : rank - 1];
}

/* ---- the simulator over one keep-alive connection ----------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    bench *b = ud;
    size_t n = size * nmemb;
    char *d = realloc(b->body, b->body_len + n + 1);
    if (!d)
        return 0;
    memcpy(d + b->body_len, ptr, n);
    b->body = d;
    b->body_len += n;
    d[b->body_len] = '\0';
    return n;
}

/* One request; returns the status (0 if none); the body is in b->body. */
static long req(bench *b, const char *method, const char *path, const char *json)
{
    char url[512];
    long st = 0;
    snprintf(url, sizeof url, "%s%s", sim_proc_url(&b->sim, 0), path);
    b->body_len = 0;
    if (b->body)
        b->body[0] = '\0';
    curl_easy_setopt(b->c, CURLOPT_URL, url);
    curl_easy_setopt(b->c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "GET") == 0)
        curl_easy_setopt(b->c, CURLOPT_HTTPGET, 1L);
    else
        curl_easy_setopt(b->c, CURLOPT_POSTFIELDS, json ? json : "");
    if (curl_easy_perform(b->c) != CURLE_OK)
        return 0;
    curl_easy_getinfo(b->c, CURLINFO_RESPONSE_CODE, &st);
    return st;
}

static json_t *req_json(bench *b, const char *method, const char *path)
{
    if (req(b, method, path, NULL) != 200)
        return NULL;
    return json_loads(b->body ? b->body : "", 0, NULL);
}

/* A call into Stasis(queue,args); its channel id into id. */
static int place(bench *b, const char *args, long number, char *id, size_t idlen)
{
    char body[200];
    snprintf(body, sizeof body,
             "{\"app\":\"queue\",\"args\":\"%s\",\"caller_number\":\"%ld\"}", args, number);
    if (req(b, "POST", "/sim/calls", body) != 201)
        return -1;
    json_t *j = json_loads(b->body ? b->body : "", 0, NULL);
    const char *s = json_string_value(json_object_get(j, "id"));
    if (s)
        snprintf(id, idlen, "%s", s);
    json_decref(j);
    return s ? 0 : -1;
}

static int place_caller(bench *b, char *id, size_t idlen)
{
    return place(b, "caller," QUEUE, 20000 + b->ncallers++, id, idlen);
}

static json_t *channel(bench *b, const char *id)
{
    char path[256];
    snprintf(path, sizeof path, "/sim/channels/%s", id);
    return req_json(b, "GET", path);
}

static long hangup(bench *b, const char *id)
{
    char path[256];
    snprintf(path, sizeof path, "/sim/channels/%s/hangup", id);
    return req(b, "POST", path, "{}");
}

/* `t` of the first timeline entry with ev (and key == val when key is set),
 * or -1. */
static long long tl_first(json_t *ch, const char *ev, const char *key, const char *val)
{
    json_t *e;
    size_t i;
    json_array_foreach(json_object_get(ch, "timeline"), i, e)
    {
        const char *x = json_string_value(json_object_get(e, "ev"));
        const char *v = key ? json_string_value(json_object_get(e, key)) : NULL;
        if (x && !strcmp(x, ev) && (!key || (v && !strcmp(v, val))))
            return (long long)json_integer_value(json_object_get(e, "t"));
    }
    return -1;
}

/* `t` of the last timeline entry with ev (and key == val), or -1. */
static long long tl_last(json_t *ch, const char *ev, const char *key, const char *val)
{
    json_t *e;
    size_t i;
    long long t = -1;
    json_array_foreach(json_object_get(ch, "timeline"), i, e)
    {
        const char *x = json_string_value(json_object_get(e, "ev"));
        const char *v = key ? json_string_value(json_object_get(e, key)) : NULL;
        if (x && !strcmp(x, ev) && (!key || (v && !strcmp(v, val))))
            t = (long long)json_integer_value(json_object_get(e, "t"));
    }
    return t;
}

/* Members of the simulator's holding bridges. */
static long holding_members(bench *b)
{
    json_t *all = req_json(b, "GET", "/ari/bridges"), *br;
    size_t i;
    long n = all ? 0 : -1;
    json_array_foreach(all, i, br)
    {
        const char *t = json_string_value(json_object_get(br, "bridge_type"));
        if (t && !strcmp(t, "holding"))
            n += (long)json_array_size(json_object_get(br, "channels"));
    }
    json_decref(all);
    return n;
}

/* ---- Redis ------------------------------------------------------------------ */

static long long redis_int(bench *b, const char *cmd)
{
    redisReply *r = redisCommand(b->rc, cmd);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

/* INFO commandstats as name -> calls. */
static int commandstats(bench *b, counts *out)
{
    memset(out, 0, sizeof *out);
    redisReply *r = redisCommand(b->rc, "INFO commandstats");
    if (!r || r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return -1;
    }
    char *save = NULL;
    for (char *l = strtok_r(r->str, "\r\n", &save); l; l = strtok_r(NULL, "\r\n", &save)) {
        char name[48];
        long long calls;
        if (sscanf(l, "cmdstat_%47[^:]:calls=%lld", name, &calls) == 2)
            counts_add(out, name, calls);
    }
    freeReplyObject(r);
    return 0;
}

/* Waits until n callers wait: in the queue in Redis and in the holding bridge. */
static int wait_waiting(bench *b, long n, long agents_held)
{
    for (int t = 0; t < 120000; t += 20, sleep_us(20000))
        if (redis_int(b, "ZCARD " CALLERS_KEY) == n && holding_members(b) == n + agents_held)
            return 0;
    fprintf(stderr, "bench_queued: %ld callers never all waiting (redis %lld, holding %ld)\n",
            n, redis_int(b, "ZCARD " CALLERS_KEY), holding_members(b));
    return -1;
}

/* Fills the queue to `target` waiting callers, FILL_BATCH at a time (each
 * batch all waiting before the next), so queued's memory is measured with
 * few requests in flight, not after one burst of thousands. */
#define FILL_BATCH 100
static int fill(bench *b, long target)
{
    long have = redis_int(b, "ZCARD " CALLERS_KEY);
    char id[128];
    for (long i = have < 0 ? 0 : have; i < target;) {
        long upto = i + FILL_BATCH < target ? i + FILL_BATCH : target;
        for (; i < upto; i++)
            if (place_caller(b, id, sizeof id) != 0)
                return -1;
        if (wait_waiting(b, upto, 0) != 0)
            return -1;
    }
    return 0;
}

/* ---- MONITOR: queued's commands by name and op --------------------------------- */

/* Next quoted token of a MONITOR line (escapes kept), into out. */
static const char *next_token(const char *p, char *out, size_t len)
{
    size_t o = 0;
    p = strchr(p, '"');
    if (!p)
        return NULL;
    for (p++; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1])
            p++;
        if (o + 1 < len)
            out[o++] = *p;
    }
    out[o] = '\0';
    return *p ? p + 1 : NULL;
}

static void monitor_line(monitor *m, const char *line)
{
    const char *addr = strchr(line, '['), *p = strchr(line, ']');
    char tok[96], cmd[48];
    if (!addr || !p)
        return;
    if (strstr(addr, m->self) && strstr(addr, m->self) < p)
        return; /* the bench's own INFO / PING */
    if (strncmp(p - 4, " lua", 4) == 0) {
        m->lua++; /* run by a script: not a round trip */
        return;
    }
    if (!(p = next_token(p, cmd, sizeof cmd)))
        return;
    for (char *c = cmd; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    counts_add(&m->cmds, cmd, 1);
    if (strcmp(cmd, "evalsha") != 0)
        return;
    /* EVALSHA sha numkeys keys... op: queue.lua's op follows its 3 keys. */
    char sha[48], nk[16];
    if (!(p = next_token(p, sha, sizeof sha)) || !(p = next_token(p, nk, sizeof nk)))
        return;
    int nkeys = atoi(nk);
    for (int i = 0; i < nkeys && p; i++)
        p = next_token(p, tok, sizeof tok);
    if (p && nkeys == 3 && next_token(p, tok, sizeof tok))
        counts_add(&m->ops, tok, 1);
    else {
        snprintf(tok, sizeof tok, "sha:%.8s", sha);
        counts_add(&m->ops, tok, 1);
    }
}

static void *monitor_run(void *arg)
{
    monitor *m = arg;
    void *rv;
    while (redisGetReply(m->c, &rv) == REDIS_OK) {
        redisReply *r = rv;
        if (r && r->type == REDIS_REPLY_STATUS && r->str) {
            bool self = strstr(r->str, m->self) != NULL;
            if (self && strstr(r->str, "\"PING\"")) {
                atomic_store(&m->seen, 1);
                if (atomic_load(&m->stop)) {
                    freeReplyObject(r);
                    break;
                }
            }
            monitor_line(m, r->str);
        }
        freeReplyObject(r);
    }
    return NULL;
}

static int monitor_start(bench *b, monitor *m)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    memset(m, 0, sizeof *m);
    if (getsockname(b->rc->fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    snprintf(m->self, sizeof m->self, "127.0.0.1:%d]", ntohs(a.sin_port));
    m->c = redis_proc_connect(&b->redis);
    redisReply *r = m->c ? redisCommand(m->c, "MONITOR") : NULL;
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!ok || pthread_create(&m->th, NULL, monitor_run, m) != 0)
        return -1;
    for (int i = 0; i < 500 && !atomic_load(&m->seen); i++) {
        freeReplyObject(redisCommand(b->rc, "PING"));
        sleep_us(10000);
    }
    return atomic_load(&m->seen) ? 0 : -1;
}

static void monitor_stop(bench *b, monitor *m)
{
    atomic_store(&m->stop, 1);
    freeReplyObject(redisCommand(b->rc, "PING"));
    pthread_join(m->th, NULL);
    redisFree(m->c);
}

/* ---- one pairing ---------------------------------------------------------------- */

/* A new agent arrives with callers waiting; returns once it is connected,
 * with the caller it got in caller (size 128). */
static int agent_arrives(bench *b, sample *s, char *agent, char *caller)
{
    char args[96];
    snprintf(s->agent_id, sizeof s->agent_id, "ag%ld", b->nagents);
    snprintf(args, sizeof args, "agent," QUEUE ",%s", s->agent_id);
    uint64_t t0 = clock_mono_us();
    if (place(b, args, 9000 + b->nagents++, agent, 128) != 0)
        return -1;
    for (uint64_t end = clock_mono_ms() + WAIT_MS; clock_mono_ms() < end; sleep_us(POLL_US)) {
        json_t *a = channel(b, agent);
        json_t *to = json_array_get(json_object_get(a, "connected_to"), 0);
        if (json_is_string(to)) {
            s->client_us = clock_mono_us() - t0;
            snprintf(caller, 128, "%s", json_string_value(to));
            json_decref(a);
            return 0;
        }
        json_decref(a);
    }
    fprintf(stderr, "bench_queued: agent %s never connected\n", agent);
    return -1;
}

/* Reads both timelines of a connected pair into s. */
static int read_timelines(bench *b, sample *s, const char *agent, const char *caller)
{
    json_t *a = channel(b, agent), *c = channel(b, caller);
    s->stasis = tl_first(a, "stasis_start", NULL, NULL);
    s->up = tl_first(a, "state", "state", "Up");
    s->caller_held = tl_first(c, "entered_bridge", "type", "holding");
    long long am = tl_first(a, "entered_bridge", "type", "mixing");
    s->agent_held = tl_first(a, "entered_bridge", "type", "holding") >= 0;
    long long cm = tl_first(c, "entered_bridge", "type", "mixing");
    s->both_in = am > cm ? am : cm;
    json_decref(a);
    json_decref(c);
    if (s->stasis < 0 || s->up < 0 || s->caller_held < 0 || am < 0 || cm < 0) {
        fprintf(stderr, "bench_queued: incomplete timelines for %s / %s\n", agent, caller);
        return -1;
    }
    return 0;
}

/* Waits until the channel's timeline has `ev` (with type), or it is gone
 * (want_gone). */
static int wait_channel(bench *b, const char *id, bool want_gone)
{
    for (uint64_t end = clock_mono_ms() + WAIT_MS; clock_mono_ms() < end; sleep_us(POLL_US)) {
        json_t *c = channel(b, id);
        bool ok = want_gone ? !json_is_true(json_object_get(c, "alive"))
                            : tl_first(c, "entered_bridge", "type", "holding") >= 0;
        json_decref(c);
        if (ok)
            return 0;
    }
    fprintf(stderr, "bench_queued: channel %s never %s\n", id,
            want_gone ? "ended" : "held");
    return -1;
}

/* Waits until queued has logged CONNECT for `agent_id` (it has the answer
 * to its addChannel): hanging up before that is a different path (the
 * caller goes back to the queue), not the end of a call. */
static int wait_connect_by(bench *b, const char *field, const char *value)
{
    for (uint64_t end = clock_mono_ms() + WAIT_MS; clock_mono_ms() < end; sleep_us(POLL_US)) {
        redisReply *r = redisCommand(b->rc, "XREVRANGE " EVENTS_KEY " + - COUNT 16");
        bool found = false;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && !found; i++) {
            redisReply *f = r->element[i]->element[1];
            bool connect = false, mine = false;
            for (size_t k = 0; k + 1 < f->elements; k += 2) {
                connect |= !strcmp(f->element[k]->str, "event") &&
                           !strcmp(f->element[k + 1]->str, "CONNECT");
                mine |= !strcmp(f->element[k]->str, field) &&
                        !strcmp(f->element[k + 1]->str, value);
            }
            found = connect && mine;
        }
        freeReplyObject(r);
        if (found)
            return 0;
    }
    fprintf(stderr, "bench_queued: no CONNECT for %s %s\n", field, value);
    return -1;
}

static int wait_connect(bench *b, const char *agent_id)
{
    return wait_connect_by(b, "agent", agent_id);
}

/* One measured pairing, then the agent hangs up (queued hangs the caller up)
 * and a new caller takes a place at the back: the number waiting is kept. */
static int round_trip(bench *b, sample *s)
{
    char agent[128], caller[128], fresh[128];
    if (agent_arrives(b, s, agent, caller) != 0 || read_timelines(b, s, agent, caller) != 0 ||
        wait_connect(b, s->agent_id) != 0)
        return -1;
    if (hangup(b, agent) != 204 || place_caller(b, fresh, sizeof fresh) != 0)
        return -1;
    if (wait_channel(b, caller, true) != 0 || wait_channel(b, fresh, false) != 0)
        return -1;
    return 0;
}

/* AGENTLOGIN ts_ms (queued's clock when it sent the login that paired) of
 * every agent since `from_ms`, matched into login[] by agent id. */
static void login_times(bench *b, uint64_t from_ms, const sample *s, int n, long long *login)
{
    redisReply *r = redisCommand(b->rc, "XRANGE " EVENTS_KEY " %llu-0 +",
                                 (unsigned long long)from_ms);
    for (int i = 0; i < n; i++)
        login[i] = -1;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *f = r->element[i]->element[1];
        const char *ev = NULL, *agent = NULL, *ts = NULL;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            const char *key = f->element[k]->str, *v = f->element[k + 1]->str;
            if (!strcmp(key, "event"))
                ev = v;
            else if (!strcmp(key, "agent"))
                agent = v;
            else if (!strcmp(key, "ts_ms"))
                ts = v;
        }
        if (!ev || strcmp(ev, "AGENTLOGIN") != 0 || !agent || !ts)
            continue;
        for (int j = 0; j < n; j++)
            if (!strcmp(s[j].agent_id, agent))
                login[j] = atoll(ts);
    }
    freeReplyObject(r);
}

static void print_pct(const char *name, int waiting, long long *v, int n, const char *unit)
{
    long long p50 = pct(v, n, 50), p99 = pct(v, n, 99), max = v[n - 1];
    printf("%s_p50_waiting_%d: %lld %s\n", name, waiting, p50, unit);
    printf("%s_p99_waiting_%d: %lld %s\n", name, waiting, p99, unit);
    printf("%s_max_waiting_%d: %lld %s\n", name, waiting, max, unit);
}

/* ROUNDS pairings with `waiting` callers waiting. Returns the p99 of the main
 * figure (ms), or -1. */
static long long latency_phase(bench *b, int waiting)
{
    uint64_t from = clock_wall_ms(), t0 = clock_mono_ms();
    if (req(b, "GET", "/ari/bridges", NULL) == 200)
        printf("sim_get_bridges_bytes_waiting_%d: %zu bytes (every holding-bridge event "
               "carries the member list)\n",
               waiting, b->body_len);
    long long cq = proc_cpu_ms(b->q.proc.pid), cs = proc_cpu_ms(b->sim.proc.pid),
              cr = proc_cpu_ms(b->redis.proc.pid);
    for (int i = 0; i < b->rounds; i++)
        if (round_trip(b, &b->s[i]) != 0)
            return -1;
    uint64_t ms = clock_mono_ms() - t0;
    printf("queued_rounds_waiting_%d: %d rounds in %llu ms\n", waiting, b->rounds,
           (unsigned long long)ms);
    printf("queued_cpu_per_round_waiting_%d: %.0f us (pairing + hangup + refill)\n", waiting,
           (double)(proc_cpu_ms(b->q.proc.pid) - cq) * 1000.0 / b->rounds);
    printf("sim_cpu_per_round_waiting_%d: %.0f us\n", waiting,
           (double)(proc_cpu_ms(b->sim.proc.pid) - cs) * 1000.0 / b->rounds);
    printf("redis_cpu_per_round_waiting_%d: %.0f us\n", waiting,
           (double)(proc_cpu_ms(b->redis.proc.pid) - cr) * 1000.0 / b->rounds);
    int held = 0;
    for (int i = 0; i < b->rounds; i++)
        held += b->s[i].agent_held;
    printf("queued_agent_via_holding_bridge_waiting_%d: %d of %d pairings\n", waiting, held,
           b->rounds);
    int n = b->rounds;
    if (n < 1)
        return -1;
    long long *v = calloc((size_t)n, sizeof *v), *login = calloc((size_t)n, sizeof *login);
    if (!v || !login) {
        free(v);
        free(login);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        long long w = b->s[i].up > b->s[i].caller_held ? b->s[i].up : b->s[i].caller_held;
        v[i] = b->s[i].both_in - w;
    }
    print_pct("queued_pair_ms", waiting, v, n, "ms");
    long long p99 = pct(v, n, 99);
    for (int i = 0; i < n; i++)
        v[i] = b->s[i].both_in - b->s[i].stasis;
    print_pct("queued_agent_arrival_to_bridged_ms", waiting, v, n, "ms");
    login_times(b, from, b->s, n, login);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (login[i] >= 0)
            v[m++] = b->s[i].both_in - login[i];
    if (m > 0)
        print_pct("queued_login_pair_to_bridged_ms", waiting, v, m, "ms");
    m = 0;
    for (int i = 0; i < n; i++)
        if (login[i] >= 0)
            v[m++] = login[i] - b->s[i].up;
    if (m > 0)
        print_pct("queued_answered_to_login_ms", waiting, v, m, "ms");
    for (int i = 0; i < n; i++)
        v[i] = (long long)b->s[i].client_us;
    print_pct("queued_client_place_to_seen_us", waiting, v, n, "us");
    free(v);
    free(login);
    return p99;
}

/* One agent serves the queue: `#` ends its call (wrapup 0), the script that
 * ends the call frees the agent and pairs it with the next caller at once.
 * Latency from the agent's `#` (timeline dtmf_sent) to both in the new mixing
 * bridge; queued's scripts per pairing by MONITOR. A caller is placed at the
 * back after each call, so `waiting` stays constant. */
#define FREED_ROUNDS 200
static int freed_phase(bench *b, int waiting)
{
    char agent[128], caller[128], prev[128], fresh[128], path[256];
    sample s;
    long long v[FREED_ROUNDS];
    monitor m;
    if (agent_arrives(b, &s, agent, caller) != 0 || wait_connect(b, s.agent_id) != 0 ||
        monitor_start(b, &m) != 0)
        return -1;
    snprintf(path, sizeof path, "/sim/channels/%s/dtmf", agent);
    int rc = 0, n = 0;
    for (; n < FREED_ROUNDS && rc == 0; n++) {
        snprintf(prev, sizeof prev, "%s", caller);
        rc = req(b, "POST", path, "{\"digits\":\"#\"}") == 204 ? 0 : -1;
        caller[0] = '\0';
        for (uint64_t end = clock_mono_ms() + WAIT_MS; rc == 0 && !caller[0]; sleep_us(POLL_US)) {
            json_t *a = channel(b, agent);
            const char *to =
                json_string_value(json_array_get(json_object_get(a, "connected_to"), 0));
            if (to && strcmp(to, prev) != 0)
                snprintf(caller, sizeof caller, "%s", to);
            json_decref(a);
            if (clock_mono_ms() > end)
                rc = -1;
        }
        if (rc != 0)
            break;
        json_t *a = channel(b, agent), *c = channel(b, caller);
        long long hash = tl_last(a, "dtmf_sent", NULL, NULL);
        long long am = tl_last(a, "entered_bridge", "type", "mixing");
        long long cm = tl_first(c, "entered_bridge", "type", "mixing");
        json_decref(a);
        json_decref(c);
        v[n] = (am > cm ? am : cm) - hash;
        if (hash < 0 || am < 0 || cm < 0 || wait_connect_by(b, "callid", caller) != 0 ||
            place_caller(b, fresh, sizeof fresh) != 0 || wait_channel(b, prev, true) != 0 ||
            wait_channel(b, fresh, false) != 0)
            rc = -1;
    }
    monitor_stop(b, &m);
    json_t *a = channel(b, agent), *e;
    size_t i;
    int held = 0;
    json_array_foreach(json_object_get(a, "timeline"), i, e)
    {
        const char *x = json_string_value(json_object_get(e, "ev"));
        const char *t = json_string_value(json_object_get(e, "type"));
        held += x && t && !strcmp(x, "entered_bridge") && !strcmp(t, "holding");
    }
    json_decref(a);
    printf("queued_freed_agent_via_holding_bridge_waiting_%d: %d of %d calls\n", waiting, held,
           n);
    if (rc != 0 || hangup(b, agent) != 204 || wait_channel(b, caller, true) != 0) {
        fprintf(stderr, "bench_queued: the agent-freed phase failed at round %d\n", n);
        return -1;
    }
    print_pct("queued_agent_freed_to_bridged_ms", waiting, v, n, "ms");
    for (int i = 0; i < m.ops.n; i++)
        printf("queued_freed_script_op_%s_per_call: %.2f calls (with one refill caller each)\n",
               m.ops.name[i], (double)m.ops.v[i] / n);
    return 0;
}

/* RT_PAIRINGS agents arrive one at a time, nothing hung up: queued's Redis
 * commands per pairing. Returns EVALSHA per pairing (x100), or -1. */
static long round_trips_phase(bench *b, int waiting, char (*agents)[128])
{
    counts before, after;
    monitor m;
    if (monitor_start(b, &m) != 0)
        return -1;
    sample s;
    char caller[128];
    int rc = commandstats(b, &before);
    for (int i = 0; i < RT_PAIRINGS && rc == 0; i++)
        rc = agent_arrives(b, &s, agents[i], caller);
    sleep_us(300000); /* the last CONNECT */
    if (rc == 0)
        rc = commandstats(b, &after);
    monitor_stop(b, &m);
    if (rc != 0)
        return -1;
    long long total = 0, evalsha = 0, trips = 0;
    for (int i = 0; i < m.cmds.n; i++)
        trips += m.cmds.v[i];
    for (int i = 0; i < after.n; i++) {
        const char *nm = after.name[i];
        long long d = after.v[i] - counts_get(&before, nm);
        if (!strcmp(nm, "info") || !strcmp(nm, "monitor") || !strcmp(nm, "ping"))
            continue; /* the bench's own */
        total += d;
        if (!strcmp(nm, "evalsha") || !strcmp(nm, "eval"))
            evalsha += d;
    }
    printf("queued_redis_round_trips_per_pairing_waiting_%d: %.2f commands\n", waiting,
           (double)trips / RT_PAIRINGS);
    for (int i = 0; i < m.cmds.n; i++)
        printf("queued_redis_round_trips_%s_per_pairing: %.2f commands\n", m.cmds.name[i],
               (double)m.cmds.v[i] / RT_PAIRINGS);
    for (int i = 0; i < m.ops.n; i++)
        printf("queued_redis_script_op_%s_per_pairing: %.2f calls\n", m.ops.name[i],
               (double)m.ops.v[i] / RT_PAIRINGS);
    printf("queued_redis_evalsha_per_pairing_waiting_%d: %.2f calls (commandstats)\n",
           waiting, (double)evalsha / RT_PAIRINGS);
    printf("queued_redis_commands_in_scripts_per_pairing: %.2f commands (MONITOR)\n",
           (double)m.lua / RT_PAIRINGS);
    printf("queued_redis_commandstats_calls_per_pairing: %.2f commands (scripts' own "
           "included, ping/info excluded)\n",
           (double)total / RT_PAIRINGS);
    return (long)(evalsha * 100 / RT_PAIRINGS);
}

/* ---- set-up, teardown ----------------------------------------------------------- */

static int setup(bench *b)
{
    redis_opts ro = {.aof = true}; /* the outage phase restarts it */
    if (redis_proc_start(&b->redis, &ro) != 0)
        return -1;
    b->redis_up = true;
    if (sim_proc_start(&b->sim, 1, 0.0) != 0)
        return -1;
    b->sim_up = true;
    if (queued_proc_start(&b->q, &b->sim, 0, &b->redis, "time_scale = 0\nsweep_ms = 60000\n",
                          "[queue " QUEUE "]\nannounce_frequency = 0\n") != 0)
        return -1;
    b->q_up = true;
    /* queued attaches to ARI before its Redis connection is ready, and turns
     * a caller away (UNAVAILABLE) in that window: wait for it. */
    for (int t = 0; queued_proc_log_count(&b->q, "redis=ready") == 0; t += 10, sleep_us(10000))
        if (t > 10000)
            return -1;
    b->rc = redis_proc_connect(&b->redis);
    b->c = curl_easy_init();
    b->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    b->hdrs = curl_slist_append(b->hdrs, "Expect:");
    if (!b->rc || !b->c || !b->hdrs)
        return -1;
    curl_easy_setopt(b->c, CURLOPT_HTTPHEADER, b->hdrs);
    curl_easy_setopt(b->c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(b->c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(b->c, CURLOPT_USERNAME, sim_proc_user(&b->sim));
    curl_easy_setopt(b->c, CURLOPT_PASSWORD, sim_proc_password(&b->sim));
    curl_easy_setopt(b->c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(b->c, CURLOPT_TCP_NODELAY, 1L);
    b->s = calloc((size_t)b->rounds, sizeof *b->s);
    return b->s ? 0 : -1;
}

/* Hangs up every channel in `ids` that is still alive. */
static int hang_up_list(bench *b, json_t *ids, size_t from, size_t to)
{
    for (size_t i = from; i < to && i < json_array_size(ids); i++) {
        const char *id = json_string_value(json_object_get(json_array_get(ids, i), "id"));
        long st = id ? hangup(b, id) : 204;
        if (st != 204 && st != 404) /* 404: queued hung it up meanwhile */
            return -1;
    }
    return 0;
}

/* Every channel hung up by its party: first the agents in a call (queued
 * hangs their callers up), then the waiting callers HANGUP_BATCH at a time,
 * each batch out of the queue in Redis before the next. Paced because every
 * ChannelLeftBridge carries the holding bridge's whole member list: 5,000
 * hangups at once queue O(N^2) bytes of events for queued (see BENCHMARKS.md).
 * Then nothing may be left in the simulator or in the queue in Redis. */
#define HANGUP_BATCH 100
static int hang_up_all(bench *b, char (*agents)[128], int nagents)
{
    for (int i = 0; i < nagents; i++)
        if (hangup(b, agents[i]) != 204)
            return -1;
    long waiting = redis_int(b, "ZCARD " CALLERS_KEY);
    if (!sim_wait_live_channels(&b->sim, 0, (int)waiting, 30000))
        return -1;
    json_t *all = req_json(b, "GET", "/sim/channels?alive=1");
    if (!all)
        return -1;
    if (b->burst) { /* every waiting caller at once */
        int rc = hang_up_list(b, all, 0, json_array_size(all));
        json_decref(all);
        long long left = -1;
        for (int t = 0; rc == 0 && t < 30000; t += 100, sleep_us(100000))
            if ((left = redis_int(b, "ZCARD " CALLERS_KEY)) == 0)
                break;
        printf("queued_burst_hangup_callers_left_in_redis: %lld callers\n", left);
        printf("queued_burst_hangup_ari_disconnects: %d\n",
               queued_proc_log_count(&b->q, "ari=disconnected"));
        if (rc == 0 && left > 0) { /* does a new caller still reach a new agent? */
            char c1[128], a1[128];
            long st = 0;
            if (place_caller(b, c1, sizeof c1) == 0 &&
                place(b, "agent," QUEUE ",late", 8999, a1, sizeof a1) == 0) {
                sleep_us(3000000);
                char path[400];
                snprintf(path, sizeof path, "/sim/connected?a=%s&b=%s", a1, c1);
                json_t *j = req_json(b, "GET", path);
                st = json_is_true(json_object_get(j, "connected"));
                json_decref(j);
            }
            printf("queued_burst_then_new_caller_and_agent_connected: %s\n", st ? "yes" : "no");
        }
        return rc == 0 && left == 0 ? 0 : -1;
    }
    for (size_t i = 0; i < json_array_size(all); i += HANGUP_BATCH) {
        long left = waiting - (long)(i + HANGUP_BATCH < json_array_size(all)
                                         ? i + HANGUP_BATCH
                                         : json_array_size(all));
        if (hang_up_list(b, all, i, i + HANGUP_BATCH) != 0) {
            json_decref(all);
            return -1;
        }
        for (int t = 0; redis_int(b, "ZCARD " CALLERS_KEY) > left; t += 1, sleep_us(1000))
            if (t > 30000) {
                fprintf(stderr, "bench_queued: hung-up callers stay in the queue\n");
                json_decref(all);
                return -1;
            }
    }
    json_decref(all);
    if (!sim_wait_live_channels(&b->sim, 0, 0, 60000)) {
        fprintf(stderr, "bench_queued: channels left after hanging up all\n");
        return -1;
    }
    for (int t = 0; t < 10000; t += 20, sleep_us(20000))
        if (redis_int(b, "EXISTS " CALLERS_KEY) == 0 &&
            redis_int(b, "EXISTS {ariq}:queue:" QUEUE ":agents") == 0)
            return 0;
    fprintf(stderr, "bench_queued: the queue is not empty in Redis after every hangup\n");
    return -1;
}

/* The adoption's own time from queued's log line "adopted callers=N ... in
 * X ms" (the last one); -1 if none. */
static long long adopted_line(bench *b, long *callers)
{
    FILE *f = fopen(b->q.logpath, "r");
    char line[4096];
    long long ms = -1;
    while (f && fgets(line, sizeof line, f)) {
        const char *a = strstr(line, "adopted callers="), *in = strstr(line, " in ");
        if (a && in) {
            *callers = atol(a + strlen("adopted callers="));
            ms = atoll(in + 4);
        }
    }
    if (f)
        fclose(f);
    return ms;
}

/* queued killed (SIGKILL), or stopped (SIGTERM), with `waiting` callers in
 * the queue, and started again: the time from the new process's start to
 * its log saying it adopted them, and that every one is still queued and
 * held. */
static int readopt_phase(bench *b, bool crash)
{
    const char *how = crash ? "sigkill" : "sigterm";
    long long before = redis_int(b, "ZCARD " CALLERS_KEY);
    if (crash)
        queued_proc_kill(&b->q);
    else if (queued_proc_stop(&b->q) != 0)
        return -1;
    uint64_t t0 = clock_mono_us();
    if (queued_proc_restart(&b->q, &b->sim, 0) != 0)
        return -1;
    uint64_t us = clock_mono_us() - t0;
    long adopted = 0;
    long long inner = adopted_line(b, &adopted);
    long long after = redis_int(b, "ZCARD " CALLERS_KEY);
    long held = holding_members(b);
    printf("readopt_%s_waiting: %lld callers before, %lld after, %ld adopted, %ld in holding "
           "bridges\n", how, before, after, adopted, held);
    printf("readopt_%s_start_to_adopted_ms: %.1f ms (process start, Redis, ARI, lists, "
           "reconcile, legs; polled every 10 ms)\n", how, us / 1000.0);
    printf("readopt_%s_adoption_ms: %lld ms (queued's own: listing to legs built)\n", how, inner);
    printf("target_readopt_%d_under_2s_%s: %s\n", b->waiting, how,
           us < 2000000 && adopted >= before && after == before ? "met" : "NOT met");
    return after == before && adopted >= before ? 0 : -1;
}

/* Waits until queued's log holds more than `before` lines with needle;
 * returns the ms waited, or -1. */
static long long wait_log(bench *b, const char *needle, int before)
{
    uint64_t t0 = clock_mono_us();
    for (int t = 0; t < WAIT_MS; t += 1, sleep_us(1000))
        if (queued_proc_log_count(&b->q, needle) > before)
            return (long long)(clock_mono_us() - t0) / 1000;
    return -1;
}

/* Issue 7's outage figures, with `waiting` callers queued:
 *   - the events WebSocket dropped by the simulator: time until queued has
 *     reconnected and reconciled every leg against GET /channels;
 *   - Redis stopped (SIGTERM, AOF) while an agent arrives (its login held),
 *     started again: time from Redis answering PING to that agent connected
 *     with the first caller (writes flushed, sweep);
 *   - Redis emptied (FLUSHALL, every client dropped): time until queued has
 *     registered every waiting caller again (qs_restore), and that the queue
 *     holds them all. */
static int outage_phase(bench *b)
{
    int before = queued_proc_log_count(&b->q, "reconciled after the events WebSocket");
    if (sim_fault(&b->sim, 0, "{\"drop_ws\":true}") != 200)
        return -1;
    long long ws = wait_log(b, "reconciled after the events WebSocket", before);
    printf("ws_drop_to_reconciled_ms: %lld ms (%d legs checked against GET /channels)\n", ws,
           b->waiting);

    before = queued_proc_log_count(&b->q, "redis=down");
    if (redis_proc_stop(&b->redis, SIGTERM) != 0 || wait_log(b, "redis=down", before) < 0)
        return -1;
    char agent[128], args[96];
    snprintf(args, sizeof args, "agent," QUEUE ",outage%ld", b->nagents);
    if (place(b, args, 9000 + b->nagents++, agent, sizeof agent) != 0)
        return -1;
    sleep_us(200000); /* its login is held */
    uint64_t t0 = clock_mono_us();
    if (redis_proc_restart(&b->redis) != 0)
        return -1;
    uint64_t t_up = clock_mono_us();
    long long paired = -1;
    for (uint64_t end = clock_mono_ms() + WAIT_MS; clock_mono_ms() < end && paired < 0;
         sleep_us(POLL_US)) {
        json_t *a = channel(b, agent);
        if (json_is_string(json_array_get(json_object_get(a, "connected_to"), 0)))
            paired = (long long)(clock_mono_us() - t_up);
        json_decref(a);
    }
    printf("redis_restart_aof_ms: %.1f ms (redis-server loading %d callers' keys)\n",
           (t_up - t0) / 1000.0, b->waiting);
    printf("redis_back_to_pairing_ms: %.1f ms (PING answered -> held login written, swept, "
           "agent connected)\n", paired / 1000.0);
    redisFree(b->rc);
    if (!(b->rc = redis_proc_connect(&b->redis)) || paired < 0 || hangup(b, agent) != 204)
        return -1;
    if (fill(b, b->waiting) != 0) /* the one it took */
        return -1;

    before = queued_proc_log_count(&b->q, "re-registered");
    freeReplyObject(redisCommand(b->rc, "FLUSHALL"));
    freeReplyObject(redisCommand(b->rc, "CLIENT KILL TYPE normal"));
    redisFree(b->rc);
    long long empty = wait_log(b, "re-registered", before);
    if (!(b->rc = redis_proc_connect(&b->redis)))
        return -1;
    long long back = redis_int(b, "ZCARD " CALLERS_KEY);
    printf("redis_empty_to_reregistered_ms: %lld ms (%lld of %d waiting callers back in "
           "their places)\n", empty, back, b->waiting);
    return ws >= 0 && empty >= 0 && back == b->waiting ? 0 : -1;
}

static void print_mem(bench *b, const char *when, long *rss, long *data)
{
    *rss = proc_status_kb(b->q.proc.pid, "VmRSS");
    *data = proc_status_kb(b->q.proc.pid, "VmData");
    printf("queued_vmrss_%s: %ld kB\n", when, *rss);
    printf("queued_vmdata_%s: %ld kB\n", when, *data);
}

static int run(bench *b)
{
    sample s;
    char agent[128], caller[128], fresh[128];
    long rss0, data0, rss1, data1, rss2, data2;
    /* warm-up: the holding bridge made, each path run once */
    if (place_caller(b, fresh, sizeof fresh) != 0 || wait_waiting(b, 1, 0) != 0 ||
        agent_arrives(b, &s, agent, caller) != 0 || wait_connect(b, s.agent_id) != 0 ||
        hangup(b, agent) != 204 ||
        wait_channel(b, caller, true) != 0)
        return -1;
    sleep_us(200000);
    print_mem(b, "waiting_0", &rss0, &data0);
    if (fill(b, 100) != 0)
        return -1;
    long long p99_small = latency_phase(b, 100);
    if (p99_small < 0 || fill(b, b->waiting) != 0)
        return -1;
    sleep_us(200000);
    print_mem(b, "waiting_max", &rss1, &data1);
    printf("queued_waiting_callers: %d callers\n", b->waiting);
    double per = (double)(rss1 - rss0) * 1024.0 / b->waiting;
    printf("queued_rss_bytes_per_waiting_caller: %.0f bytes\n", per);
    printf("queued_vmdata_bytes_per_waiting_caller: %.0f bytes\n",
           (double)(data1 - data0) * 1024.0 / b->waiting);
    if (readopt_phase(b, true) != 0 || readopt_phase(b, false) != 0 || outage_phase(b) != 0)
        return -1;
    long long p99_big = latency_phase(b, b->waiting);
    if (p99_big < 0)
        return -1;
    if (freed_phase(b, b->waiting) != 0)
        return -1;
    char(*agents)[128] = calloc(RT_PAIRINGS, sizeof *agents);
    long rt = agents ? round_trips_phase(b, b->waiting, agents) : -1;
    if (rt < 0) {
        free(agents);
        return -1;
    }
    printf("target_pair_p99_under_5ms_at_%d: %s (p99 %lld ms)\n", b->waiting,
           p99_big < 5 ? "met" : "NOT met", p99_big);
    printf("target_under_2KB_per_waiting_caller: %s (%.0f bytes RSS)\n",
           per < 2048 ? "met" : "NOT met", per);
    printf("target_one_script_call_per_pairing: %s (%.2f EVALSHA per pairing: the pairing "
           "itself is the agent's login script; CONNECT is recorded by a second script)\n",
           rt <= 100 ? "met" : "NOT met", rt / 100.0);
    uint64_t t0 = clock_mono_ms();
    int rc = hang_up_all(b, agents, RT_PAIRINGS);
    free(agents);
    if (rc != 0)
        return -1;
    printf("queued_hangup_all_ms: %llu ms\n", (unsigned long long)(clock_mono_ms() - t0));
    sleep_us(200000);
    print_mem(b, "after_hangup_all", &rss2, &data2);
    return 0;
}

int main(int argc, char **argv)
{
    static bench b;
    b.rounds = argc > 1 ? atoi(argv[1]) : 1000;
    b.waiting = argc > 2 ? atoi(argv[2]) : 5000;
    b.burst = argc > 3 && strcmp(argv[3], "burst") == 0;
    if (b.rounds < 1 || b.rounds > 100000 || b.waiting < 100 || b.waiting > 100000)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = setup(&b) == 0 && run(&b) == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "bench_queued: failed (queued log: %s)\n", b.q.logpath);
    if (b.q_up) {
        int st = queued_proc_stop(&b.q);
        bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        printf("queued_clean_exit: %s\n", clean ? "yes" : "no");
        if (!clean)
            rc = 1;
    }
    curl_easy_cleanup(b.c);
    curl_slist_free_all(b.hdrs);
    redisFree(b.rc);
    if (b.sim_up)
        sim_proc_stop(&b.sim);
    if (b.redis_up)
        redis_proc_stop(&b.redis, SIGTERM);
    free(b.s);
    free(b.body);
    curl_global_cleanup();
    return rc;
}
