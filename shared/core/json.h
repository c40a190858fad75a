/* json.h - jansson helpers for outside input, with explicit limits.
 *
 * Prefix jx_ ("jansson extras"): jansson owns json_*. Every getter checks type
 * and limits and, on failure, writes "KEY: why" into err (when err is not
 * NULL) and leaves *out alone, so a caller can report exactly what was wrong
 * with a message from Asterisk, an API client or Redis.
 *
 * References: jx_load() returns a NEW reference (json_decref it). Every getter
 * returns a BORROWED pointer (json_t * or const char *) that lives as long as
 * the object it came from; do not decref or free it.
 *
 * Strings: jansson rejects "\u0000" while decoding, so a string's length is
 * its strlen. "Printable" below means no byte below 0x20 and no 0x7f (UTF-8
 * above 0x7f is allowed: caller names are not ASCII everywhere). */
#ifndef ARIQ_CORE_JSON_H
#define ARIQ_CORE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Decodes buf[0..len) as one JSON value (any type), rejecting duplicate keys
 * and anything longer than maxlen bytes. Returns 0 and a NEW reference in
 * *out, or ARIQ_ERANGE (too long) / ARIQ_EINVAL (not JSON) with a message
 * that includes jansson's line and column. */
int jx_load(const char *buf, size_t len, size_t maxlen, json_t **out, char *err,
            size_t errlen);

/* Member `key` of obj as an object (BORROWED). ARIQ_EINVAL if obj is not an
 * object, the member is absent, or it is not an object. */
int jx_get_obj(const json_t *obj, const char *key, json_t **out, char *err,
               size_t errlen);

/* Member `key` as an array of at most maxcount elements (BORROWED).
 * ARIQ_EINVAL if absent or not an array, ARIQ_ERANGE if too long. */
int jx_get_array(const json_t *obj, const char *key, size_t maxcount, json_t **out,
                 char *err, size_t errlen);

/* Member `key` as a printable string of at most maxlen bytes (may be empty).
 * *out is BORROWED from obj. ARIQ_EINVAL if absent, not a string or not
 * printable; ARIQ_ERANGE if longer than maxlen. */
int jx_get_str(const json_t *obj, const char *key, size_t maxlen, const char **out,
               char *err, size_t errlen);

/* Checks a value already in hand (an array element) as jx_get_str checks a
 * member; `what` names it in the message ("args[2]"). *out is BORROWED. */
int jx_check_str(const json_t *v, const char *what, size_t maxlen, const char **out,
                 char *err, size_t errlen);

/* As jx_get_str, but an absent member (or JSON null) is fine: *out = dflt,
 * returns 0. A present member of the wrong type is still an error. */
int jx_get_str_opt(const json_t *obj, const char *key, size_t maxlen, const char *dflt,
                   const char **out, char *err, size_t errlen);

/* Member `key` as an id: non-empty, at most maxlen bytes, only
 * [A-Za-z0-9._-] (core/ids.h ids_valid), so it is safe in a URL path and a
 * Redis key. *out is BORROWED. ARIQ_EINVAL if absent / wrong type / bad
 * characters, ARIQ_ERANGE if too long. */
int jx_get_id(const json_t *obj, const char *key, size_t maxlen, const char **out,
              char *err, size_t errlen);

/* Member `key` as an integer in [min, max] (a JSON integer, not a real).
 * ARIQ_EINVAL if absent or not an integer, ARIQ_ERANGE if out of range. */
int jx_get_int(const json_t *obj, const char *key, long long min, long long max,
               long long *out, char *err, size_t errlen);

/* As jx_get_int, but absent (or null) gives *out = dflt and returns 0. */
int jx_get_int_opt(const json_t *obj, const char *key, long long min, long long max,
                   long long dflt, long long *out, char *err, size_t errlen);

/* Member `key` as a boolean; absent (or null) gives dflt. ARIQ_EINVAL if
 * present and not true/false. */
int jx_get_bool_opt(const json_t *obj, const char *key, bool dflt, bool *out, char *err,
                    size_t errlen);

/* True if s has no control bytes (< 0x20 or 0x7f). s must not be NULL. */
bool jx_printable(const char *s);

#endif
