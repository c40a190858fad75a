/* bench_queued_cluster.c - many nodes, one queue (issue 4): four real queued
 * nodes on one simulator (nodes linked by IAX2 peers, a queue-link context
 * each) and one real redis-server, all on this machine.
 *
 *   1. load (simulator and queued at time scale 1, announcements off, wrapup
 *      0): AGENTS agents logged in on every node; callers arrive on every
 *      node at RATE per second in all (an open loop, capped at 2 x the agents
 *      in flight so an overloaded cluster is not buried); each caller is hung
 *      up as soon as its CONNECT is in the events stream (the agent is then
 *      free at the back of the queue and pairs again). After a warm-up, a
 *      window of DURATION seconds is measured: CONNECT events by their ts_ms
 *      (pairings per second, the share whose caller and agent are on
 *      different nodes, from PAIRED's caller_node / agent_node), PAIRED ->
 *      CONNECT ts_ms under load, INFO commandstats before and after (the
 *      bench's own XREAD and INFO left out), and the CPU each process used
 *      (/proc/PID/stat utime + stime) against the machine's (/proc/stat).
 *   2. latency (a fresh cluster at LAT_SCALE, 0 by default: the
 *      simulator's zero-latency mode, every delay instant but the
 *      originate timeout, which keeps its real length): ROUNDS rounds of
 *      one call on an idle cluster: an agent logs in on node a and is free;
 *      the bench places a caller on node b != a and polls /sim/connected
 *      every 200 us until they hear each other. Figures: queued's PAIRED ->
 *      CONNECT ts_ms (both were waiting at PAIRED: the agent was free and
 *      the caller's enter paired it at once), the oracle's "both waiting"
 *      (the later of the two answers, state Up) -> both in their mixing
 *      bridges, and the bench's own monotonic us from placing the caller to
 *      seeing them connected. The
 *      agent then hangs up (queued hangs the caller and the link up) and
 *      the next round waits until the simulator holds no channel. Redis
 *      commands per round (one cross-node call: agent login, caller enter,
 *      pairing, link, both sides bridged, agent hangup) by INFO
 *      commandstats, the bench's own commands left out.
 *
 * Prints "name: value unit" lines. Usage:
 *   bench_queued_cluster [duration_s=20] [rate=1500] [agents_per_node=50] [rounds=300]
 *                        [lat_scale=0] [log_level=info]
 * Exit 0 when every step worked and every queued stopped cleanly. */
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "queued_proc.h"
#include "redis_proc.h"
#include "sim_proc.h"

#define NODES       4
#define QUEUE       "bench"
#define EVENTS_KEY  "{ariq}:events"
#define AGENTS_KEY  "{ariq}:queue:" QUEUE ":agents"
#define CALLERS_KEY "{ariq}:queue:" QUEUE ":callers"
#define QUEUES_INI  "[queue " QUEUE "]\nannounce_frequency = 0\nwrapup_time = 0\n"
#define WARMUP_S    3
#define ID_LEN      40
#define HQ_CAP      65536u     /* hangups waiting for a worker, per node */
#define SLOTS       (1u << 20) /* PAIRED records by pairing seq (mod) */
#define MAX_STATS   64

typedef struct stat_set {
    int n;
    char name[MAX_STATS][40];
    long long v[MAX_STATS];
} stat_set;

static void stat_add(stat_set *s, const char *name, long long v)
{
    int i = 0;
    while (i < s->n && strcmp(s->name[i], name) != 0)
        i++;
    if (i == s->n) {
        if (s->n == MAX_STATS)
            return;
        snprintf(s->name[s->n++], sizeof s->name[0], "%s", name);
        s->v[i] = 0;
    }
    s->v[i] += v;
}

static long long stat_of(const stat_set *s, const char *name)
{
    for (int i = 0; s && i < s->n; i++)
        if (!strcmp(s->name[i], name))
            return s->v[i];
    return 0;
}

static void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static int by_value(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Sorts v and prints its p50, p99 and max (nearest rank) as one line. */
static void print_dist(const char *name, long long *v, long n, const char *unit)
{
    if (n <= 0) {
        printf("%s: no samples\n", name);
        return;
    }
    qsort(v, (size_t)n, sizeof *v, by_value);
    long r50 = (n * 50 + 99) / 100, r99 = (n * 99 + 99) / 100;
    printf("%s_p50: %lld %s\n%s_p99: %lld %s\n%s_max: %lld %s (%ld samples)\n", name,
           v[r50 - 1], unit, name, v[r99 - 1], unit, name, v[n - 1], unit, n);
}

/* ---- CPU accounting ------------------------------------------------------------ */

/* CPU time a process used so far (all its threads), in clock ticks. */
static long long ticks_of(pid_t pid)
{
    char path[48], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = '\0';
    char *p = strrchr(buf, ')'), *save = NULL;
    long long ticks = 0;
    int field = 3; /* the first after "(comm)" is field 3, state */
    for (char *t = p ? strtok_r(p + 1, " ", &save) : NULL; t;
         t = strtok_r(NULL, " ", &save)) {
        int f = field++;
        if (f == 14 || f == 15) /* utime, stime */
            ticks += atoll(t);
    }
    return p ? ticks : -1;
}

/* The machine's busy and total ticks from the "cpu" line of /proc/stat. */
static void machine_ticks(long long *busy, long long *total)
{
    long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    int n = f ? fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1],
                       &v[2], &v[3], &v[4], &v[5], &v[6], &v[7])
              : 0;
    if (f)
        fclose(f);
    *total = 0;
    for (int i = 0; i < n; i++)
        *total += v[i];
    *busy = *total - v[3] - v[4]; /* less idle and iowait */
}

#define NPROCS (NODES + 3)
static const char *const proc_names[NPROCS] = {
    "queued_node1", "queued_node2", "queued_node3", "queued_node4",
    "simulator",    "redis",        "bench"};

typedef struct cpu_snap {
    long long ticks[NPROCS];
    long long busy, total;
    uint64_t mono_us;
} cpu_snap;

static void cpu_take(const queued_cluster *c, cpu_snap *s)
{
    for (int i = 0; i < NODES; i++)
        s->ticks[i] = ticks_of(c->q[i].proc.pid);
    s->ticks[NODES] = ticks_of(c->sim.proc.pid);
    s->ticks[NODES + 1] = ticks_of(c->redis.proc.pid);
    s->ticks[NODES + 2] = ticks_of(getpid());
    machine_ticks(&s->busy, &s->total);
    s->mono_us = clock_mono_us();
}

/* Each process's share of one core over [a, b], and its CPU ms per pairing. */
static void cpu_print(const cpu_snap *a, const cpu_snap *b, long long pairings)
{
    double secs = (double)(b->mono_us - a->mono_us) / 1e6,
           hz = (double)sysconf(_SC_CLK_TCK);
    for (int i = 0; i < NPROCS; i++) {
        double used = (double)(b->ticks[i] - a->ticks[i]) / hz;
        printf("cpu_%s: %.0f %% of a core (%.3f ms per pairing)\n", proc_names[i],
               100.0 * used / secs,
               pairings > 0 ? 1000.0 * used / (double)pairings : 0.0);
    }
    long long tot = b->total - a->total;
    printf("cpu_machine_busy: %.0f %% of %ld cores\n",
           tot > 0 ? 100.0 * (double)(b->busy - a->busy) / (double)tot : 0.0,
           sysconf(_SC_NPROCESSORS_ONLN));
}

/* ---- the simulator's control API over one kept-alive connection ------------------ */

typedef struct kconn {
    CURL *h;
    struct curl_slist *hdrs;
    char base[48];
    char *buf; /* the last answer's body, NUL-terminated */
    size_t len, cap;
} kconn;

static size_t kconn_sink(char *data, size_t size, size_t nmemb, void *ud)
{
    kconn *k = ud;
    size_t n = size * nmemb, need = k->len + n + 1;
    if (need > k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 8192;
        char *grown = realloc(k->buf, cap > need ? cap : need);
        if (!grown)
            return 0;
        k->buf = grown;
        k->cap = cap > need ? cap : need;
    }
    memcpy(k->buf + k->len, data, n);
    k->len += n;
    k->buf[k->len] = '\0';
    return n;
}

static void kconn_close(kconn *k)
{
    curl_easy_cleanup(k->h);
    curl_slist_free_all(k->hdrs);
    free(k->buf);
    memset(k, 0, sizeof *k);
}

static int kconn_open(kconn *k, const sim_proc *sim, int node)
{
    memset(k, 0, sizeof *k);
    snprintf(k->base, sizeof k->base, "%s", sim_proc_url(sim, node));
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    k->hdrs = h ? curl_slist_append(h, "Expect:") : NULL;
    if (!k->hdrs)
        curl_slist_free_all(h);
    k->h = curl_easy_init();
    if (!k->h || !k->hdrs) {
        kconn_close(k);
        return -1;
    }
    curl_easy_setopt(k->h, CURLOPT_HTTPHEADER, k->hdrs);
    curl_easy_setopt(k->h, CURLOPT_WRITEFUNCTION, kconn_sink);
    curl_easy_setopt(k->h, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(k->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(k->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(k->h, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(k->h, CURLOPT_USERNAME, sim_proc_user(sim));
    curl_easy_setopt(k->h, CURLOPT_PASSWORD, sim_proc_password(sim));
    return 0;
}

/* GET `path` (json NULL) or POST json to it. Returns the HTTP status, 0 if
 * no answer came; the body is in k->buf until the next request. */
static long kconn_do(kconn *k, const char *path, const char *json)
{
    char url[320];
    long status = 0;
    snprintf(url, sizeof url, "%s%s", k->base, path);
    k->len = 0;
    curl_easy_setopt(k->h, CURLOPT_URL, url);
    if (json)
        curl_easy_setopt(k->h, CURLOPT_POSTFIELDS, json);
    else
        curl_easy_setopt(k->h, CURLOPT_HTTPGET, 1L);
    if (curl_easy_perform(k->h) == CURLE_OK)
        curl_easy_getinfo(k->h, CURLINFO_RESPONSE_CODE, &status);
    if (!k->buf)
        kconn_sink("", 1, 0, k);
    return status;
}

/* A call arriving on k's node into Stasis(queue, args) with channel id `id`. */
static int kconn_place(kconn *k, const char *args, const char *id)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"app\":\"queue\",\"args\":\"%s\",\"caller_number\":\"%s\",\"channel_id\":"
             "\"%s\"}",
             args, id, id);
    return kconn_do(k, "/sim/calls", body) == 201 ? 0 : -1;
}

/* The party hangs up: 204, or 404 when the channel is gone already. */
static int kconn_hangup(kconn *k, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/sim/channels/%s/hangup", id);
    long st = kconn_do(k, path, "{}");
    return st == 204 || st == 404 ? 0 : -1;
}

/* ---- Redis --------------------------------------------------------------------- */

/* INFO commandstats: calls per command name. */
static int cmdstats(redisContext *rc, stat_set *out)
{
    memset(out, 0, sizeof *out);
    redisReply *r = redisCommand(rc, "INFO commandstats");
    int rv = r && r->type == REDIS_REPLY_STRING ? 0 : -1;
    for (const char *l = rv == 0 ? r->str : ""; (l = strstr(l, "cmdstat_")) != NULL;) {
        char name[40];
        long long calls = 0;
        l += strlen("cmdstat_");
        if (sscanf(l, "%39[^:]:calls=%lld", name, &calls) == 2)
            stat_add(out, name, calls);
    }
    freeReplyObject(r);
    return rv;
}

/* after - before - the bench's own, per pairing, one line per command. */
static void cmdstats_print(const char *prefix, const stat_set *before,
                           const stat_set *after, const stat_set *own, long long pairings)
{
    long long total = 0;
    for (int i = 0; i < after->n; i++) {
        const char *nm = after->name[i];
        long long d = after->v[i] - stat_of(before, nm) - stat_of(own, nm);
        if (d <= 0 || !strcmp(nm, "info"))
            continue;
        total += d;
        printf("%s_%s_per_pairing: %.2f calls\n", prefix, nm,
               (double)d / (double)pairings);
    }
    printf("%s_all_per_pairing: %.2f commands (scripts' inner commands included)\n",
           prefix, (double)total / (double)pairings);
}

static long long redis_ll(redisContext *rc, stat_set *own, const char *cmd,
                          const char *key)
{
    redisReply *r = redisCommand(rc, "%s %s", cmd, key);
    long long v = !r                               ? -2
                  : r->type == REDIS_REPLY_INTEGER ? r->integer
                  : r->type == REDIS_REPLY_STRING  ? atoll(r->str)
                                                   : -1;
    freeReplyObject(r);
    if (own)
        stat_add(own, cmd, 1);
    return v;
}

/* A field of a stream entry's flat field/value array, or NULL. */
static const char *field(const redisReply *kv, const char *name)
{
    for (size_t i = 0; kv && i + 1 < kv->elements; i += 2)
        if (kv->element[i]->str && !strcmp(kv->element[i]->str, name))
            return kv->element[i + 1]->str;
    return NULL;
}

static bool field_is(const redisReply *kv, const char *name, const char *want)
{
    const char *v = field(kv, name);
    return v && !strcmp(v, want);
}

/* Every node's Redis connection is ready: its first heartbeat (sent right
 * after the scripts loaded) is there. Before that queued turns callers away. */
static int wait_ready(queued_cluster *c)
{
    redisContext *rc = redis_proc_connect(&c->redis);
    char key[64];
    int ready = 0;
    for (int t = 0; rc && ready < NODES && t < 10000; t += 10) {
        snprintf(key, sizeof key, "{ariq}:node:node%d:heartbeat", ready + 1);
        if (redis_ll(rc, NULL, "EXISTS", key) == 1)
            ready++;
        else
            nap_us(10000);
    }
    redisFree(rc);
    return ready == NODES ? 0 : -1;
}

/* ---- 1. load --------------------------------------------------------------------- */

typedef struct hangups { /* caller channel ids for one node's worker */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char (*ids)[ID_LEN];
    unsigned head, tail;
} hangups;

typedef struct paired { /* a PAIRED event, by pairing seq */
    long long seq, ts;
    bool cross;
} paired;

typedef struct load load;

typedef struct worker {
    load *l;
    int node;
    kconn k;
    pthread_t th;
    long placed, slot; /* callers placed; arrival slots used (placed or skipped) */
} worker;

struct load {
    queued_cluster *c;
    int rate, agents, cap; /* callers per s in all; agents per node; callers in flight */
    atomic_int stop_placing, stop;
    atomic_long placed, hung, skipped, errors;
    atomic_llong xreads;     /* the reader's own XREAD calls */
    atomic_llong win0, win1; /* the measured window (wall ms), 0 while unset */
    uint64_t start_us;
    hangups hq[NODES];
    worker w[NODES];
    pthread_t reader;
    bool reader_up;
    /* the reader's alone until it is joined */
    paired *slots;
    stat_set events; /* by type, in the window */
    long long connects, win_connects, win_cross, lost_paired, abandons;
    long long *lat_cross, *lat_same;
    long n_cross, n_same, lat_cap;
    char last_id[64];
};

static void hq_push(hangups *q, const char *id)
{
    pthread_mutex_lock(&q->mu);
    if (q->tail - q->head < HQ_CAP) {
        snprintf(q->ids[q->tail % HQ_CAP], ID_LEN, "%s", id);
        q->tail++;
    }
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Takes the oldest id into `id`, waiting up to wait_us. */
static bool hq_pop(hangups *q, char *id, long wait_us)
{
    pthread_mutex_lock(&q->mu);
    if (q->head == q->tail && wait_us > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += wait_us * 1000;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&q->cv, &q->mu, &ts);
    }
    bool got = q->head != q->tail;
    if (got)
        memcpy(id, q->ids[q->head++ % HQ_CAP], ID_LEN);
    pthread_mutex_unlock(&q->mu);
    return got;
}

/* Open loop: arrival slot n of this node is due at start + n * NODES / rate.
 * A slot is skipped (counted) while the cap is reached, and at most 50 ms of
 * slots are caught up after a stall, so the rate stays steady. */
static bool arrival_due(worker *w)
{
    load *l = w->l;
    if (atomic_load(&l->stop_placing))
        return false;
    double per_node = (double)l->rate / NODES;
    long due = (long)((double)(clock_mono_us() - l->start_us) * per_node / 1e6);
    long burst = (long)(per_node / 20) + 1;
    if (due - w->slot > burst) {
        atomic_fetch_add(&l->skipped, due - burst - w->slot);
        w->slot = due - burst;
    }
    if (w->slot >= due)
        return false;
    if (atomic_load(&l->placed) - atomic_load(&l->hung) >= l->cap) {
        w->slot++;
        atomic_fetch_add(&l->skipped, 1);
        return false;
    }
    w->slot++;
    return true;
}

static void worker_hang_up(worker *w, const char *id)
{
    if (kconn_hangup(&w->k, id) != 0)
        atomic_fetch_add(&w->l->errors, 1);
    atomic_fetch_add(&w->l->hung, 1);
}

/* One node's load: hangups first (they free agents), then due arrivals,
 * else a short wait for a hangup. */
static void *worker_run(void *arg)
{
    worker *w = arg;
    load *l = w->l;
    char id[ID_LEN];
    while (!atomic_load(&l->stop)) {
        if (hq_pop(&l->hq[w->node], id, 0)) {
            worker_hang_up(w, id);
        } else if (arrival_due(w)) {
            snprintf(id, sizeof id, "c%d-%ld", w->node, w->placed++);
            if (kconn_place(&w->k, "caller," QUEUE, id) != 0)
                atomic_fetch_add(&l->errors, 1);
            else
                atomic_fetch_add(&l->placed, 1);
        } else if (hq_pop(&l->hq[w->node], id, 500)) {
            worker_hang_up(w, id);
        }
    }
    return NULL;
}

static void lat_push(load *l, long long **v, long *n, long long x)
{
    if (*n == l->lat_cap)
        return;
    (*v)[(*n)++] = x;
}

/* Hands caller `call` ("c<node>-<n>") to its node's worker to hang up. */
static void hang_up_later(load *l, const char *call)
{
    int node = call && call[0] == 'c' ? call[1] - '0' : -1;
    if (node >= 0 && node < NODES)
        hq_push(&l->hq[node], call);
}

/* One event of the stream (the reader thread). */
static void on_event(load *l, const redisReply *kv)
{
    const char *ev = field(kv, "event"), *ts_s = field(kv, "ts_ms");
    if (!ev || !ts_s)
        return;
    long long ts = atoll(ts_s), w0 = atomic_load(&l->win0), w1 = atomic_load(&l->win1);
    bool in = w0 && ts >= w0 && (!w1 || ts < w1);
    if (in)
        stat_add(&l->events, ev, 1);
    const char *pairing = field(kv, "pairing");
    long long seq = pairing && pairing[0] == 'p' ? atoll(pairing + 1) : -1;
    if (!strcmp(ev, "PAIRED") && seq >= 0) {
        paired *p = &l->slots[seq % SLOTS];
        const char *cn = field(kv, "caller_node"), *an = field(kv, "agent_node");
        *p = (paired){seq, ts, cn && an && strcmp(cn, an) != 0};
    } else if (!strcmp(ev, "UNPAIRED") && in && field_is(kv, "reason", "rollback")) {
        stat_add(&l->events, "UNPAIRED_rollback", 1);
    } else if (!strcmp(ev, "ABANDON")) {
        /* queued dropped a caller the bench never hung up (see BENCHMARKS.md):
         * it sits in the dialplan now; the party hangs up */
        l->abandons++;
        hang_up_later(l, field(kv, "callid"));
    } else if (!strcmp(ev, "CONNECT")) {
        hang_up_later(l, field(kv, "callid"));
        l->connects++;
        if (!in)
            return;
        l->win_connects++;
        paired *p = seq >= 0 ? &l->slots[seq % SLOTS] : NULL;
        if (!p || p->seq != seq) {
            l->lost_paired++;
            return;
        }
        l->win_cross += p->cross;
        if (p->cross)
            lat_push(l, &l->lat_cross, &l->n_cross, ts - p->ts);
        else
            lat_push(l, &l->lat_same, &l->n_same, ts - p->ts);
    }
}

static void *reader_run(void *arg)
{
    load *l = arg;
    redisContext *rc = redis_proc_connect(&l->c->redis);
    while (rc && !atomic_load(&l->stop)) {
        redisReply *r = redisCommand(rc, "XREAD COUNT 1000 BLOCK 20 STREAMS %s %s",
                                     EVENTS_KEY, l->last_id);
        atomic_fetch_add(&l->xreads, 1);
        if (!r)
            break;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->elements == 2) {
            const redisReply *entries = r->element[0]->element[1];
            for (size_t i = 0; i < entries->elements; i++) {
                const redisReply *e = entries->element[i];
                snprintf(l->last_id, sizeof l->last_id, "%s", e->element[0]->str);
                on_event(l, e->element[1]);
            }
        }
        freeReplyObject(r);
    }
    redisFree(rc);
    return NULL;
}

static int load_agents(load *l, redisContext *rc)
{
    char id[ID_LEN], args[80];
    for (int i = 0; i < l->agents; i++)
        for (int n = 0; n < NODES; n++) {
            snprintf(id, sizeof id, "a%d-%d", n, i);
            snprintf(args, sizeof args, "agent," QUEUE ",%s", id);
            if (kconn_place(&l->w[n].k, args, id) != 0)
                return -1;
        }
    for (int t = 0;
         redis_ll(rc, NULL, "ZCARD", AGENTS_KEY) < (long long)l->agents * NODES;
         t += 10, nap_us(10000))
        if (t > 20000)
            return -1;
    return 0;
}

static int load_start(load *l)
{
    l->slots = calloc(SLOTS, sizeof *l->slots);
    l->lat_cap = 2000000;
    l->lat_cross = calloc((size_t)l->lat_cap, sizeof *l->lat_cross);
    l->lat_same = calloc((size_t)l->lat_cap, sizeof *l->lat_same);
    if (!l->slots || !l->lat_cross || !l->lat_same)
        return -1;
    for (int n = 0; n < NODES; n++) {
        hangups *q = &l->hq[n];
        pthread_mutex_init(&q->mu, NULL);
        pthread_cond_init(&q->cv, NULL);
        q->ids = calloc(HQ_CAP, ID_LEN);
        l->w[n].l = l;
        l->w[n].node = n;
        if (!q->ids || kconn_open(&l->w[n].k, &l->c->sim, n) != 0)
            return -1;
    }
    return 0;
}

static void load_free(load *l)
{
    for (int n = 0; n < NODES; n++) {
        kconn_close(&l->w[n].k);
        free(l->hq[n].ids);
        pthread_mutex_destroy(&l->hq[n].mu);
        pthread_cond_destroy(&l->hq[n].cv);
    }
    free(l->slots);
    free(l->lat_cross);
    free(l->lat_same);
}

/* The last id of the events stream, so the reader starts after the logins. */
static void last_event_id(redisContext *rc, char *out, size_t len)
{
    redisReply *r = redisCommand(rc, "XREVRANGE %s + - COUNT 1", EVENTS_KEY);
    bool one = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
    snprintf(out, len, "%s", one ? r->element[0]->element[0]->str : "0-0");
    freeReplyObject(r);
}

static void load_report(load *l, int secs, const stat_set *before, const stat_set *after,
                        const cpu_snap *c0, const cpu_snap *c1, long long waiting)
{
    long long n = l->win_connects;
    printf("load_nodes: %d\nload_agents: %d (%d per node)\n", NODES, l->agents * NODES,
           l->agents);
    printf("load_offered_rate: %d callers/s (in flight capped at %d)\n", l->rate, l->cap);
    printf("load_window: %d s\n", secs);
    printf("load_pairings_per_s: %.0f pairings/s (CONNECT events in the window)\n",
           (double)n / secs);
    printf("load_cross_node_share: %.1f %% (%lld of %lld)\n",
           n ? 100.0 * (double)l->win_cross / (double)n : 0.0, l->win_cross, n);
    for (int i = 0; i < l->events.n; i++)
        printf("load_events_%s_per_s: %.0f\n", l->events.name[i],
               (double)l->events.v[i] / secs);
    printf("load_callers_waiting_at_window_end: %lld\n", waiting);
    printf("load_arrivals_skipped: %ld (cap reached or behind schedule, whole run)\n",
           atomic_load(&l->skipped));
    printf("load_request_errors: %ld\n", atomic_load(&l->errors));
    printf("load_connect_without_paired_seen: %lld\n", l->lost_paired);
    printf("load_callers_abandoned_by_queued: %lld of %ld placed (whole run; the bench "
           "hangs "
           "up only after CONNECT)\n",
           l->abandons, atomic_load(&l->placed));
    print_dist("load_cross_paired_to_connect_ms", l->lat_cross, l->n_cross, "ms");
    print_dist("load_same_paired_to_connect_ms", l->lat_same, l->n_same, "ms");
    cmdstats_print("load_redis", before, after, NULL, n);
    cpu_print(c0, c1, n);
    printf("target_1000_pairings_per_s: %s (%.0f/s)\n",
           (double)n / secs >= 1000 ? "met" : "NOT met", (double)n / secs);
}

/* Every agent hangs up; then nothing may be left in the simulator or queue. */
static int load_cleanup(load *l, redisContext *rc)
{
    char id[ID_LEN];
    for (int i = 0; i < l->agents; i++)
        for (int n = 0; n < NODES; n++) {
            snprintf(id, sizeof id, "a%d-%d", n, i);
            if (kconn_hangup(&l->w[n].k, id) != 0)
                return -1;
        }
    if (!sim_wait_live_channels(&l->c->sim, 0, 0, 30000)) {
        fprintf(stderr, "bench_queued_cluster: channels left after the load\n");
        return -1;
    }
    for (int t = 0; t < 10000; t += 20, nap_us(20000))
        if (redis_ll(rc, NULL, "EXISTS", CALLERS_KEY) == 0 &&
            redis_ll(rc, NULL, "EXISTS", AGENTS_KEY) == 0)
            return 0;
    fprintf(stderr, "bench_queued_cluster: the queue is not empty after the load\n");
    return -1;
}

static int load_run(load *l, int secs)
{
    redisContext *rc = redis_proc_connect(&l->c->redis);
    stat_set before, after;
    cpu_snap c0, c1;
    int rc_ok = rc && load_start(l) == 0 && load_agents(l, rc) == 0 ? 0 : -1;
    if (rc_ok == 0) {
        last_event_id(rc, l->last_id, sizeof l->last_id);
        l->start_us = clock_mono_us();
        l->reader_up = pthread_create(&l->reader, NULL, reader_run, l) == 0;
        for (int n = 0; n < NODES; n++)
            pthread_create(&l->w[n].th, NULL, worker_run, &l->w[n]);
        nap_us(WARMUP_S * 1000000L);
        long long x0 = atomic_load(&l->xreads);
        atomic_store(&l->win0, (long long)clock_wall_ms());
        cpu_take(l->c, &c0);
        cmdstats(rc, &before);
        nap_us(secs * 1000000L);
        atomic_store(&l->win1, (long long)clock_wall_ms());
        cpu_take(l->c, &c1);
        cmdstats(rc, &after);
        stat_set own = {0};
        stat_add(&own, "xread", atomic_load(&l->xreads) - x0);
        stat_add(&after, "xread", -stat_of(&own, "xread"));
        long long waiting = redis_ll(rc, NULL, "ZCARD", CALLERS_KEY);
        atomic_store(&l->stop_placing, 1);
        for (int t = 0; atomic_load(&l->placed) > atomic_load(&l->hung);
             t += 10, nap_us(10000))
            if (t > 30000) {
                fprintf(stderr, "bench_queued_cluster: %ld callers never connected\n",
                        atomic_load(&l->placed) - atomic_load(&l->hung));
                rc_ok = -1;
                break;
            }
        atomic_store(&l->stop, 1);
        for (int n = 0; n < NODES; n++)
            pthread_join(l->w[n].th, NULL);
        if (l->reader_up)
            pthread_join(l->reader, NULL);
        load_report(l, secs, &before, &after, &c0, &c1, waiting);
        if (rc_ok == 0)
            rc_ok = load_cleanup(l, rc);
    }
    load_free(l);
    redisFree(rc);
    return rc_ok;
}

/* ---- 2. cross-node latency on an idle cluster
 * ---------------------------------------------- */

typedef struct lat {
    queued_cluster *c;
    redisContext *rc;
    kconn k[NODES];
    stat_set own; /* the bench's own Redis commands */
    long long *queued_ms, *oracle_ms, *client_us, *enter_ms;
    int rounds;
} lat;

/* `t` of the last timeline entry with ev (and, when key is set, key == val). */
static long long timeline_t(json_t *ch, const char *ev, const char *key, const char *val)
{
    json_t *tl = json_object_get(ch, "timeline");
    long long t = -1;
    for (size_t i = 0; i < json_array_size(tl); i++) {
        json_t *e = json_array_get(tl, i);
        const char *v = key ? json_string_value(json_object_get(e, key)) : NULL;
        if (!strcmp(json_string_value(json_object_get(e, "ev")) ?: "", ev) &&
            (!key || (v && !strcmp(v, val))))
            t = json_integer_value(json_object_get(e, "t"));
    }
    return t;
}

static json_t *chan_get(kconn *k, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/sim/channels/%s", id);
    return kconn_do(k, path, NULL) == 200 ? json_loads(k->buf, 0, NULL) : NULL;
}

/* ts_ms of the ENTERQUEUE, PAIRED and CONNECT of caller `call`, waiting up
 * to 2 s for the CONNECT. Returns 0 when all three were found. */
static int round_events(lat *L, const char *call, long long *enter, long long *paired_ts,
                        long long *connect)
{
    for (int t = 0; t < 2000; t++, nap_us(1000)) {
        redisReply *r = redisCommand(L->rc, "XREVRANGE %s + - COUNT 40", EVENTS_KEY);
        stat_add(&L->own, "xrevrange", 1);
        *enter = *paired_ts = *connect = -1;
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
            const redisReply *kv = r->element[i]->element[1];
            const char *ts = field(kv, "ts_ms");
            if (!ts || !field_is(kv, "callid", call))
                continue;
            if (field_is(kv, "event", "ENTERQUEUE"))
                *enter = atoll(ts);
            else if (field_is(kv, "event", "PAIRED"))
                *paired_ts = atoll(ts);
            else if (field_is(kv, "event", "CONNECT"))
                *connect = atoll(ts);
        }
        freeReplyObject(r);
        if (*enter >= 0 && *paired_ts >= 0 && *connect >= 0)
            return 0;
    }
    return -1;
}

static int wait_sim_empty(kconn *k)
{
    for (int t = 0; t < 5000; t++, nap_us(1000)) {
        json_t *s =
            kconn_do(k, "/sim/state", NULL) == 200 ? json_loads(k->buf, 0, NULL) : NULL;
        long long live = json_integer_value(json_object_get(s, "channels"));
        json_decref(s);
        if (s && live == 0)
            return 0;
    }
    return -1;
}

/* True once agent `id` is free in Redis (a member of the queue's free set). */
static bool agent_free(lat *L, const char *id)
{
    redisReply *r = redisCommand(L->rc, "ZSCORE %s %s", AGENTS_KEY, id);
    stat_add(&L->own, "zscore", 1);
    bool yes = r && r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);
    return yes;
}

static bool hear_each_other(kconn *k, const char *a, const char *b)
{
    char path[160];
    snprintf(path, sizeof path, "/sim/connected?a=%s&b=%s", a, b);
    return kconn_do(k, path, NULL) == 200 && strstr(k->buf, "true") != NULL;
}

/* The oracle's both answered (state Up) -> both in their mixing bridges. */
static long long oracle_connect_ms(lat *L, int ca, const char *caller, int ag,
                                   const char *agent)
{
    json_t *cj = chan_get(&L->k[ca], caller), *aj = chan_get(&L->k[ag], agent);
    long long cu = timeline_t(cj, "state", "state", "Up");
    long long au = timeline_t(aj, "state", "state", "Up");
    long long cm = timeline_t(cj, "entered_bridge", "type", "mixing");
    long long am = timeline_t(aj, "entered_bridge", "type", "mixing");
    json_decref(cj);
    json_decref(aj);
    if (cu < 0 || au < 0 || cm < 0 || am < 0)
        return -1;
    return (cm > am ? cm : am) - (cu > au ? cu : au);
}

/* Round r: an agent free on node a, a caller placed on node b != a. */
static int lat_round(lat *L, int r)
{
    int a = r % NODES, b = (a + 1 + (r / NODES) % (NODES - 1)) % NODES;
    char agent[ID_LEN], caller[ID_LEN], args[80];
    long long enter, paired_ts, connect;
    snprintf(agent, sizeof agent, "la%d", r);
    snprintf(caller, sizeof caller, "lc%d", r);
    snprintf(args, sizeof args, "agent," QUEUE ",%s", agent);
    if (kconn_place(&L->k[a], args, agent) != 0)
        return -1;
    for (int t = 0; !agent_free(L, agent); t++, nap_us(200))
        if (t > 25000)
            return -1;
    uint64_t t0 = clock_mono_us();
    if (kconn_place(&L->k[b], "caller," QUEUE, caller) != 0)
        return -1;
    while (!hear_each_other(&L->k[b], caller, agent)) {
        if (clock_mono_us() - t0 > 5000000)
            return -1;
        nap_us(200);
    }
    L->client_us[r] = (long long)(clock_mono_us() - t0);
    if (round_events(L, caller, &enter, &paired_ts, &connect) != 0)
        return -1;
    L->queued_ms[r] = connect - paired_ts;
    L->enter_ms[r] = connect - enter;
    L->oracle_ms[r] = oracle_connect_ms(L, b, caller, a, agent);
    if (L->oracle_ms[r] < 0 || kconn_hangup(&L->k[a], agent) != 0)
        return -1;
    return wait_sim_empty(&L->k[a]);
}

static int lat_run(lat *L)
{
    stat_set before, after;
    int rc = 0, done = 0;
    L->rc = redis_proc_connect(&L->c->redis);
    L->queued_ms = calloc((size_t)L->rounds, sizeof(long long));
    L->enter_ms = calloc((size_t)L->rounds, sizeof(long long));
    L->oracle_ms = calloc((size_t)L->rounds, sizeof(long long));
    L->client_us = calloc((size_t)L->rounds, sizeof(long long));
    for (int n = 0; n < NODES && rc == 0; n++)
        rc = kconn_open(&L->k[n], &L->c->sim, n);
    if (!L->rc || !L->queued_ms || !L->enter_ms || !L->oracle_ms || !L->client_us ||
        cmdstats(L->rc, &before) != 0)
        rc = -1;
    for (; rc == 0 && done < L->rounds; done++)
        if ((rc = lat_round(L, done)) != 0)
            fprintf(stderr, "bench_queued_cluster: latency round %d failed\n", done);
    if (rc == 0 && cmdstats(L->rc, &after) == 0) {
        printf("latency_rounds: %d (one cross-node call each, idle cluster)\n", done);
        cmdstats_print("latency_redis", &before, &after, &L->own, done);
        long long p99 = 0;
        print_dist("latency_cross_paired_to_connect_ms", L->queued_ms, done, "ms");
        p99 = L->queued_ms[(done * 99 + 99) / 100 - 1];
        print_dist("latency_cross_enterqueue_to_connect_ms", L->enter_ms, done, "ms");
        print_dist("latency_cross_oracle_both_up_to_both_bridged_ms", L->oracle_ms, done,
                   "ms");
        print_dist("latency_cross_client_place_caller_to_connected_us", L->client_us,
                   done, "us");
        printf(
            "target_cross_connect_p99_under_20ms: %s (PAIRED -> CONNECT p99 %lld ms)\n",
            p99 < 20 ? "met" : "NOT met", p99);
    }
    for (int n = 0; n < NODES; n++)
        kconn_close(&L->k[n]);
    redisFree(L->rc);
    free(L->queued_ms);
    free(L->enter_ms);
    free(L->oracle_ms);
    free(L->client_us);
    return rc;
}

/* ---- main ----------------------------------------------------------------------- */

static int cluster_up(queued_cluster *c, double scale, const char *log_level)
{
    char general[64];
    snprintf(general, sizeof general, "log_level = %s\n", log_level);
    if (queued_cluster_start(c, NODES, scale, general, QUEUES_INI) != 0)
        return -1;
    if (wait_ready(c) == 0)
        return 0;
    queued_cluster_stop(c);
    return -1;
}

static int cluster_down(queued_cluster *c, const char *phase)
{
    int st = queued_cluster_stop(c);
    bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    printf("%s_queued_clean_exit: %s\n", phase, clean ? "yes" : "no");
    return clean ? 0 : -1;
}

int main(int argc, char **argv)
{
    static queued_cluster c;
    static load l;
    static lat L;
    int secs = argc > 1 ? atoi(argv[1]) : 20;
    l.rate = argc > 2 ? atoi(argv[2]) : 1500;
    l.agents = argc > 3 ? atoi(argv[3]) : 50;
    L.rounds = argc > 4 ? atoi(argv[4]) : 300;
    double lat_scale = argc > 5 ? atof(argv[5]) : 0;
    const char *log_level = argc > 6 ? argv[6] : "info";
    if (secs < 1 || secs > 600 || l.rate < 1 || l.rate > 100000 || l.agents < 1 ||
        l.agents > 1000 || L.rounds < 1 || L.rounds > 100000 || lat_scale < 0 ||
        lat_scale > 1 ||
        strspn(log_level, "abcdefghijklmnopqrstuvwxyz") != strlen(log_level))
        return 2;
    printf("queued_log_level: %s\nlatency_scale: %g\n", log_level, lat_scale);
    l.cap = 2 * l.agents * NODES;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 0;
    if (cluster_up(&c, 1.0, log_level) != 0) {
        fprintf(stderr, "bench_queued_cluster: the scale-1 cluster did not start\n");
        rc = 1;
    } else {
        l.c = &c;
        if (load_run(&l, secs) != 0) {
            fprintf(stderr,
                    "bench_queued_cluster: the load phase failed (logs: %s ...)\n",
                    c.q[0].logpath);
            rc = 1;
        }
        rc |= cluster_down(&c, "load") != 0;
    }
    if (cluster_up(&c, lat_scale, log_level) != 0) {
        fprintf(stderr, "bench_queued_cluster: the scale-0 cluster did not start\n");
        rc = 1;
    } else {
        L.c = &c;
        if (lat_run(&L) != 0) {
            fprintf(stderr,
                    "bench_queued_cluster: the latency phase failed (logs: %s ...)\n",
                    c.q[0].logpath);
            rc = 1;
        }
        rc |= cluster_down(&c, "latency") != 0;
    }
    curl_global_cleanup();
    return rc;
}
