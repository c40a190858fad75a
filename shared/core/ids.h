/* ids.h - identifiers.
 *
 * Ids that ariq chooses for ARI objects (playbacks, bridges, recordings,
 * originated channels) must be unique across nodes and restarts, and must be
 * safe in a URL path and a Redis key: only [A-Za-z0-9._-]. */
#ifndef ARIQ_CORE_IDS_H
#define ARIQ_CORE_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define IDS_UUID_LEN 36

/* Writes a random (v4) UUID, NUL-terminated; out must hold 37 bytes. */
void ids_uuid(char *out);

/* Writes "<prefix>-<16 hex random>" into out. Returns 0, or ARIQ_ERANGE if it
 * does not fit or ARIQ_EINVAL if prefix is not a valid id. */
int ids_make(const char *prefix, char *out, size_t outlen);

/* True if s is a non-empty id of at most maxlen bytes, only [A-Za-z0-9._-].
 * Use it on every outside name that will become part of a key or a path. */
bool ids_valid(const char *s, size_t maxlen);

#endif
