/* metrics.c - see metrics.h. Every family has HELP and TYPE, also when it
 * has no sample yet; the node RTT histograms appear only when some node's
 * stats hash is there. */
#include "metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NODE_NB 12 /* node stats buckets: 1..2500 ms and +Inf */

static const char *const node_le[NODE_NB] = {"0.001", "0.002", "0.005", "0.01",
                                             "0.025", "0.05",  "0.1",   "0.25",
                                             "0.5",   "1",     "2.5",   "+Inf"};
static const char *const node_le_ms[NODE_NB] = {"1",   "2",   "5",    "10",   "25",   "50",
                                                "100", "250", "500", "1000", "2500", "+Inf"};

void metrics_label(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            fputs("\\\\", f);
        else if (*v == '"')
            fputs("\\\"", f);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"[,label2="v2"]} */
static void sample_head(FILE *f, const char *name, const char *label, const char *value)
{
    fprintf(f, "%s{%s=\"", name, label);
    metrics_label(f, value);
    fputc('"', f);
}

static void gauge_q(FILE *f, const char *name, const char *queue, double v)
{
    sample_head(f, name, "queue", queue);
    fprintf(f, "} %.15g\n", v);
}

static void hist(FILE *f, const char *name, const char *label, const char *value,
                 const model_hist *h)
{
    uint64_t cum = 0;
    char bn[128];
    snprintf(bn, sizeof bn, "%s_bucket", name);
    for (int i = 0; i <= MODEL_LAT_NB; i++) {
        if (label) {
            sample_head(f, bn, label, value);
            fputc(',', f);
        } else {
            fprintf(f, "%s{", bn);
        }
        cum = i < MODEL_LAT_NB ? cum + h->bucket[i] : h->count;
        if (i < MODEL_LAT_NB)
            fprintf(f, "le=\"%g\"} %llu\n", model_lat_le[i], (unsigned long long)cum);
        else
            fprintf(f, "le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    const char *suf[] = {"_sum", "_count"};
    for (int i = 0; i < 2; i++) {
        if (label) {
            fprintf(f, "%s%s{%s=\"", name, suf[i], label);
            metrics_label(f, value);
            fputs("\"}", f);
        } else {
            fprintf(f, "%s%s", name, suf[i]);
        }
        if (i == 0)
            fprintf(f, " %.15g\n", h->sum);
        else
            fprintf(f, " %llu\n", (unsigned long long)h->count);
    }
}

static void queue_gauges(FILE *f, const model_snap *s)
{
    family(f, "ariq_queue_waiting_callers", "gauge", "Callers waiting in the queue.");
    for (size_t i = 0; i < s->nqueues; i++)
        gauge_q(f, "ariq_queue_waiting_callers", s->queues[i].name,
                (double)s->queues[i].ncallers);
    family(f, "ariq_queue_longest_wait_seconds", "gauge",
           "How long the queue's longest waiting caller has waited.");
    for (size_t i = 0; i < s->nqueues; i++)
        gauge_q(f, "ariq_queue_longest_wait_seconds", s->queues[i].name,
                (double)s->queues[i].longest_wait_ms / 1000.0);
    family(f, "ariq_agents", "gauge", "Logged-in agents of the queue by state.");
    for (size_t i = 0; i < s->nqueues; i++)
        for (int k = MA_WAITING; k < MA_COUNT; k++) {
            sample_head(f, "ariq_agents", "queue", s->queues[i].name);
            fprintf(f, ",state=\"%s\"} %lld\n", model_agent_count_names[k],
                    (long long)s->queues[i].agents[k]);
        }
    long long live[2] = {0, 0};
    for (size_t i = 0; i < s->npairings; i++)
        live[!strcmp(model_str(s->pairings[i].h, "state"), "bridged")]++;
    family(f, "ariq_live_calls", "gauge", "Live pairings by state.");
    fprintf(f, "ariq_live_calls{state=\"connecting\"} %lld\n", live[0]);
    fprintf(f, "ariq_live_calls{state=\"talking\"} %lld\n", live[1]);
    family(f, "ariq_queue_service_level_ratio", "gauge",
           "Answered within the threshold over answered and abandoned, in the window.");
    for (size_t i = 0; i < s->nqueues; i++) {
        const model_sl *sl = &s->queues[i].sl;
        if (sl->answered + sl->abandoned > 0)
            gauge_q(f, "ariq_queue_service_level_ratio", s->queues[i].name,
                    (double)sl->answered_within / (double)(sl->answered + sl->abandoned));
    }
}

/* The counters, one family at a time: model_each_count's order is the
 * map's, so each family walks it once. */
typedef struct cnt_ctx {
    FILE *f;
    const char *name;
    size_t off; /* offset of the uint64_t in model_qcount; SIZE_MAX: latency */
} cnt_ctx;

static void one_count(const char *queue, const model_qcount *c, void *ud)
{
    cnt_ctx *x = ud;
    if (x->off == (size_t)-1) {
        hist(x->f, x->name, "queue", queue, &c->latency);
        return;
    }
    uint64_t v = *(const uint64_t *)((const char *)c + x->off);
    sample_head(x->f, x->name, "queue", queue);
    fprintf(x->f, "} %llu\n", (unsigned long long)v);
}

static void counters(FILE *f, const api_ctx *a)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } fams[] = {
        {"ariq_pairings_total", "Pairings made (PAIRED) since agentd started.",
         offsetof(model_qcount, pairings)},
        {"ariq_connects_total", "Calls connected (CONNECT) since agentd started.",
         offsetof(model_qcount, connects)},
        {"ariq_abandons_total", "Callers who hung up waiting (ABANDON) since agentd started.",
         offsetof(model_qcount, abandons)},
        {"ariq_timeouts_total", "Callers who timed out (EXITWITHTIMEOUT) since agentd started.",
         offsetof(model_qcount, timeouts)},
        {"ariq_rollbacks_total", "Pairings rolled back (UNPAIRED rollback) since agentd started.",
         offsetof(model_qcount, rollbacks)},
    };
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        family(f, fams[i].name, "counter", fams[i].help);
        cnt_ctx x = {f, fams[i].name, fams[i].off};
        model_each_count(a->model, one_count, &x);
    }
    family(f, "ariq_pairing_latency_seconds", "histogram",
           "From pairing to connect (CONNECT's ringtime), since agentd started.");
    cnt_ctx x = {f, "ariq_pairing_latency_seconds", (size_t)-1};
    model_each_count(a->model, one_count, &x);
    family(f, "ariq_cross_node_connect_seconds", "histogram",
           "From pairing to connect for pairings across two nodes, since agentd started.");
    hist(f, "ariq_cross_node_connect_seconds", NULL, NULL, model_cross_node(a->model));
}

/* One node's `<prefix>_ms_buckets` "le:count,..." as a histogram in
 * seconds; false when the hash lacks it or it does not parse. */
static bool node_hist(FILE *f, const char *fam, const char *node, const json_t *st,
                      const char *prefix)
{
    char field[64];
    snprintf(field, sizeof field, "%s_ms_buckets", prefix);
    const char *b = model_str(st, field);
    unsigned long long cnt[NODE_NB];
    for (int i = 0; i < NODE_NB; i++) {
        size_t n = strlen(node_le_ms[i]);
        if (strncmp(b, node_le_ms[i], n) != 0 || b[n] != ':')
            return false;
        char *end;
        cnt[i] = strtoull(b + n + 1, &end, 10);
        if (end == b + n + 1 || (*end != ',' && *end))
            return false;
        b = *end ? end + 1 : end;
    }
    char bn[128];
    snprintf(bn, sizeof bn, "%s_bucket", fam);
    for (int i = 0; i < NODE_NB; i++) {
        sample_head(f, bn, "node", node);
        fprintf(f, ",le=\"%s\"} %llu\n", node_le[i], cnt[i]);
    }
    /* as queued writes them (API.md "Metrics"): <prefix>_ms_sum_ms, a
     * decimal number of ms, and <prefix>_ms_count */
    snprintf(field, sizeof field, "%s_ms_sum_ms", prefix);
    double sum = strtod(model_str(st, field), NULL) / 1000.0;
    snprintf(field, sizeof field, "%s_ms_count", prefix);
    long long count = model_int(st, field);
    fprintf(f, "%s_sum{node=\"", fam);
    metrics_label(f, node);
    fprintf(f, "\"} %.15g\n%s_count{node=\"", sum, fam);
    metrics_label(f, node);
    fprintf(f, "\"} %lld\n", count);
    return true;
}

static void nodes(FILE *f, const model_snap *s)
{
    family(f, "ariq_node_up", "gauge", "1 while the node's heartbeat key exists.");
    bool stats = false;
    for (size_t i = 0; i < s->nnodes; i++) {
        sample_head(f, "ariq_node_up", "node", s->nodes[i].name);
        fprintf(f, "} %d\n", s->nodes[i].up ? 1 : 0);
        stats = stats || s->nodes[i].stats;
    }
    if (!stats)
        return;
    static const struct {
        const char *fam, *prefix, *help;
    } h[] = {{"ariq_redis_rtt_seconds", "redis_rtt", "Round trips of a node to Redis."},
             {"ariq_ari_rtt_seconds", "ari_rtt", "Round trips of a node to its Asterisk's ARI."}};
    for (size_t k = 0; k < 2; k++) {
        family(f, h[k].fam, "histogram", h[k].help);
        for (size_t i = 0; i < s->nnodes; i++)
            if (s->nodes[i].stats)
                node_hist(f, h[k].fam, s->nodes[i].name, s->nodes[i].stats, h[k].prefix);
    }
}

char *metrics_render(const api_ctx *a, const model_snap *s, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    queue_gauges(f, s);
    counters(f, a);
    nodes(f, s);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
