/* sim_map.h - a small string -> pointer hash table for the simulator's ids.
 *
 * Keys are copied; values are borrowed (the map never frees them). Lookups,
 * inserts and deletes are O(1) on average so 10,000 channels stay cheap.
 * Iteration order is unspecified; do not insert or delete while iterating
 * except through sim_map_del of the current key after reading it. */
#ifndef ARIQ_SIM_MAP_H
#define ARIQ_SIM_MAP_H

#include <stddef.h>

typedef struct sim_map sim_map;

sim_map *sim_map_new(void);
void sim_map_free(sim_map *m); /* NULL is a no-op; values are not freed */
/* Inserts or replaces. Returns 0 or ARIQ_ENOMEM. */
int sim_map_put(sim_map *m, const char *key, void *val);
void *sim_map_get(const sim_map *m, const char *key);
/* Removes key; returns its value or NULL. */
void *sim_map_del(sim_map *m, const char *key);
size_t sim_map_count(const sim_map *m);
/* Fills vals (malloc'd array, caller frees) with a snapshot of all values,
 * so callers may change the map while walking it. Returns the count, or 0
 * with *vals NULL when empty or out of memory. */
size_t sim_map_values(const sim_map *m, void ***vals);

#endif
