/* sim_map.c - chained string hash table (FNV-1a), doubling at load 1. */
#include "sim_map.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

typedef struct ent {
    char *key;
    void *val;
    struct ent *next;
} ent;

struct sim_map {
    ent **b;
    size_t nb, n;
};

static size_t hash(const char *k)
{
    size_t h = 1469598103934665603ull;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return h;
}

sim_map *sim_map_new(void)
{
    sim_map *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->nb = 64;
    m->b = calloc(m->nb, sizeof(*m->b));
    if (!m->b) {
        free(m);
        return NULL;
    }
    return m;
}

void sim_map_free(sim_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nb; i++) {
        for (ent *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            free(e->key);
            free(e);
        }
    }
    free(m->b);
    free(m);
}

/* Grows the bucket array; on allocation failure the map keeps working, just
 * with longer chains. */
static void grow(sim_map *m)
{
    size_t nb = m->nb * 2;
    ent **b = calloc(nb, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < m->nb; i++) {
        for (ent *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            size_t h = hash(e->key) & (nb - 1);
            e->next = b[h];
            b[h] = e;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

int sim_map_put(sim_map *m, const char *key, void *val)
{
    size_t h = hash(key) & (m->nb - 1);
    for (ent *e = m->b[h]; e; e = e->next) {
        if (!strcmp(e->key, key)) {
            e->val = val;
            return 0;
        }
    }
    ent *e = malloc(sizeof(*e));
    if (!e || !(e->key = strdup(key))) {
        free(e);
        return ARIQ_ENOMEM;
    }
    e->val = val;
    e->next = m->b[h];
    m->b[h] = e;
    if (++m->n > m->nb)
        grow(m);
    return 0;
}

void *sim_map_get(const sim_map *m, const char *key)
{
    for (ent *e = m->b[hash(key) & (m->nb - 1)]; e; e = e->next)
        if (!strcmp(e->key, key))
            return e->val;
    return NULL;
}

void *sim_map_del(sim_map *m, const char *key)
{
    ent **pp = &m->b[hash(key) & (m->nb - 1)];
    for (ent *e = *pp; e; pp = &e->next, e = e->next) {
        if (!strcmp(e->key, key)) {
            void *v = e->val;
            *pp = e->next;
            free(e->key);
            free(e);
            m->n--;
            return v;
        }
    }
    return NULL;
}

size_t sim_map_count(const sim_map *m)
{
    return m->n;
}

size_t sim_map_values(const sim_map *m, void ***vals)
{
    *vals = NULL;
    if (!m->n || !(*vals = malloc(m->n * sizeof(void *))))
        return 0;
    size_t k = 0;
    for (size_t i = 0; i < m->nb; i++)
        for (ent *e = m->b[i]; e; e = e->next)
            (*vals)[k++] = e->val;
    return k;
}
