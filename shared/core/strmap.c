#include "core/strmap.h"
#include "core/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL 16

typedef struct slot {
    char *key;   /* NULL: empty; TOMB: removed */
    void *value;
} slot;

struct strmap {
    slot *slots;
    size_t cap;   /* power of two */
    size_t count; /* live entries */
    size_t used;  /* live + tombstones */
};

static char tomb_key;
#define TOMB (&tomb_key)

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

strmap *strmap_new(void)
{
    strmap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->slots = calloc(INITIAL, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    m->cap = INITIAL;
    return m;
}

void strmap_free(strmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            free(m->slots[i].key);
    free(m->slots);
    free(m);
}

/* The slot holding key, or NULL. */
static slot *find(const strmap *m, const char *key)
{
    size_t mask = m->cap - 1;
    for (size_t i = hash(key) & mask, n = 0; n < m->cap; i = (i + 1) & mask, n++) {
        slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != TOMB && strcmp(s->key, key) == 0)
            return s;
    }
    return NULL;
}

/* Places an owned key without checking for duplicates (used by grow). */
static void place(slot *slots, size_t cap, char *key, void *value)
{
    size_t mask = cap - 1;
    size_t i = hash(key) & mask;
    while (slots[i].key && slots[i].key != TOMB)
        i = (i + 1) & mask;
    slots[i].key = key;
    slots[i].value = value;
}

/* Rehashes into a table of `cap` slots, dropping tombstones. */
static int rehash(strmap *m, size_t cap)
{
    slot *ns = calloc(cap, sizeof *ns);
    if (!ns)
        return ARIQ_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            place(ns, cap, m->slots[i].key, m->slots[i].value);
    free(m->slots);
    m->slots = ns;
    m->cap = cap;
    m->used = m->count;
    return 0;
}

int strmap_put(strmap *m, const char *key, void *value)
{
    if (!key || !value)
        return ARIQ_EINVAL;
    slot *s = find(m, key);
    if (s) {
        s->value = value;
        return 0;
    }
    if ((m->used + 1) * 2 > m->cap) {
        size_t cap = (m->count + 1) * 2 > m->cap ? m->cap * 2 : m->cap; /* else: tombstones */
        if (rehash(m, cap) != 0)
            return ARIQ_ENOMEM;
    }
    char *k = strdup(key);
    if (!k)
        return ARIQ_ENOMEM;
    size_t mask = m->cap - 1;
    size_t i = hash(key) & mask;
    while (m->slots[i].key && m->slots[i].key != TOMB)
        i = (i + 1) & mask;
    if (!m->slots[i].key)
        m->used++;
    m->slots[i].key = k;
    m->slots[i].value = value;
    m->count++;
    return 0;
}

void *strmap_get(const strmap *m, const char *key)
{
    slot *s = key ? find(m, key) : NULL;
    return s ? s->value : NULL;
}

void *strmap_del(strmap *m, const char *key)
{
    slot *s = key ? find(m, key) : NULL;
    if (!s)
        return NULL;
    void *v = s->value;
    free(s->key);
    s->key = TOMB;
    s->value = NULL;
    m->count--;
    return v;
}

size_t strmap_count(const strmap *m)
{
    return m->count;
}

void strmap_each(const strmap *m, void (*fn)(const char *key, void *value, void *ud), void *ud)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            fn(m->slots[i].key, m->slots[i].value, ud);
}
