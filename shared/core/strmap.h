/* strmap.h - a map from strings to pointers (open addressing, linear probing).
 *
 * For registries keyed by ids (channel id -> leg). Keys are copied; values are
 * borrowed pointers the map never frees. Lookups, inserts and removals are
 * O(1) on average; the table doubles at 50 % load and never shrinks below
 * its first size. Iteration order is unspecified. Not thread-safe. */
#ifndef ARIQ_CORE_STRMAP_H
#define ARIQ_CORE_STRMAP_H

#include <stddef.h>

typedef struct strmap strmap;

/* Returns NULL when out of memory. */
strmap *strmap_new(void);
/* Frees the map and its copies of the keys, not the values. NULL is a no-op. */
void strmap_free(strmap *m);

/* Sets key -> value (value must not be NULL), replacing an old value.
 * Returns 0, ARIQ_EINVAL (NULL key or value) or ARIQ_ENOMEM (then the map is
 * unchanged). */
int strmap_put(strmap *m, const char *key, void *value);
/* The value for key, or NULL. */
void *strmap_get(const strmap *m, const char *key);
/* Removes key; returns its value, or NULL if it was not there. */
void *strmap_del(strmap *m, const char *key);
size_t strmap_count(const strmap *m);

/* Calls fn(key, value, ud) for every entry. fn must not change the map;
 * collect keys first to remove while walking. */
void strmap_each(const strmap *m, void (*fn)(const char *key, void *value, void *ud),
                 void *ud);

#endif
