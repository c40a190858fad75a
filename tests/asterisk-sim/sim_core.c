/* sim_core.c - skeleton of the simulated Asterisk 22 core (see sim_core.h). */
#include "sim_core.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

struct sim {
    sim_host host;
    double scale;
    int nodes;
};

sim *sim_new(const sim_host *host, double scale)
{
    if (!host || scale < 0)
        return NULL;
    sim *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->host = *host;
    s->scale = scale;
    return s;
}

void sim_free(sim *s)
{
    free(s);
}

int sim_node_add(sim *s, const char *name, const char *asterisk_id)
{
    (void)name;
    (void)asterisk_id;
    return s->nodes++;
}

int sim_node_count(const sim *s) { return s->nodes; }
int sim_node_find(const sim *s, const char *name) { (void)s; (void)name; return ARIQ_ENOTFOUND; }
const char *sim_node_name(const sim *s, int node) { (void)s; (void)node; return NULL; }
int sim_peer_add(sim *s, const char *tp, int to) { (void)s; (void)tp; (void)to; return 0; }
int sim_dialplan_add(sim *s, int node, const char *c, const char *a, const char *t)
{
    (void)s; (void)node; (void)c; (void)a; (void)t;
    return 0;
}
void sim_app_attach(sim *s, int node, const char *app) { (void)s; (void)node; (void)app; }
void sim_app_detach(sim *s, int node, const char *app) { (void)s; (void)node; (void)app; }
int sim_node_down(sim *s, int node) { (void)s; (void)node; return 0; }
int sim_node_up(sim *s, int node) { (void)s; (void)node; return 0; }

int sim_request(sim *s, int node, const char *method, const char *path, const char *query,
                const char *body, size_t body_len, int *status, char **out_body,
                size_t *out_len, const char **content_type)
{
    (void)s; (void)node; (void)method; (void)path; (void)query; (void)body; (void)body_len;
    const char *msg = "{\"message\":\"Resource not found\"}";
    char *b = strdup(msg);
    if (!b)
        return ARIQ_ENOMEM;
    *status = 404;
    *out_body = b;
    *out_len = strlen(b);
    *content_type = "application/json";
    return 0;
}
