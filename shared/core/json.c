#include "core/json.h"
#include "core/err.h"
#include "core/ids.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Formats "KEY: why" into err when the caller asked for a message, and
 * returns code so a failing getter is one line: return fail(...). */
__attribute__((format(printf, 5, 6))) static int
fail(int code, char *err, size_t errlen, const char *key, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return code;
    int n = snprintf(err, errlen, "%s: ", key ? key : "(value)");
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

bool jx_printable(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

int jx_load(const char *buf, size_t len, size_t maxlen, json_t **out, char *err,
            size_t errlen)
{
    if (!buf)
        return fail(ARIQ_EINVAL, err, errlen, "json", "no input");
    if (len > maxlen)
        return fail(ARIQ_ERANGE, err, errlen, "json", "%zu bytes, limit %zu", len,
                    maxlen);
    json_error_t je;
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!v) {
        return fail(ARIQ_EINVAL, err, errlen, "json", "line %d column %d: %s", je.line,
                    je.column, je.text);
    }
    *out = v;
    return 0;
}

/* The member `key` of obj, or NULL when obj is not an object, the key is
 * absent, or the value is JSON null (null counts as absent everywhere). */
static json_t *member(const json_t *obj, const char *key)
{
    if (!json_is_object(obj))
        return NULL;
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

int jx_get_obj(const json_t *obj, const char *key, json_t **out, char *err, size_t errlen)
{
    json_t *v = member(obj, key);
    if (!v)
        return fail(ARIQ_EINVAL, err, errlen, key, "missing");
    if (!json_is_object(v))
        return fail(ARIQ_EINVAL, err, errlen, key, "not an object");
    *out = v;
    return 0;
}

int jx_get_array(const json_t *obj, const char *key, size_t maxcount, json_t **out,
                 char *err, size_t errlen)
{
    json_t *v = member(obj, key);
    if (!v)
        return fail(ARIQ_EINVAL, err, errlen, key, "missing");
    if (!json_is_array(v))
        return fail(ARIQ_EINVAL, err, errlen, key, "not an array");
    if (json_array_size(v) > maxcount) {
        return fail(ARIQ_ERANGE, err, errlen, key, "%zu elements, limit %zu",
                    json_array_size(v), maxcount);
    }
    *out = v;
    return 0;
}

/* Checks that v is a printable string of at most maxlen bytes. */
static int check_str(const json_t *v, const char *key, size_t maxlen, char *err,
                     size_t errlen)
{
    if (!json_is_string(v))
        return fail(ARIQ_EINVAL, err, errlen, key, "not a string");
    size_t n = json_string_length(v);
    if (n > maxlen)
        return fail(ARIQ_ERANGE, err, errlen, key, "%zu bytes, limit %zu", n, maxlen);
    if (!jx_printable(json_string_value(v)))
        return fail(ARIQ_EINVAL, err, errlen, key, "control characters");
    return 0;
}

int jx_check_str(const json_t *v, const char *what, size_t maxlen, const char **out,
                 char *err, size_t errlen)
{
    int rc = check_str(v, what, maxlen, err, errlen);
    if (rc == 0)
        *out = json_string_value(v);
    return rc;
}

int jx_get_str(const json_t *obj, const char *key, size_t maxlen, const char **out,
               char *err, size_t errlen)
{
    json_t *v = member(obj, key);
    if (!v)
        return fail(ARIQ_EINVAL, err, errlen, key, "missing");
    return jx_check_str(v, key, maxlen, out, err, errlen);
}

int jx_get_str_opt(const json_t *obj, const char *key, size_t maxlen, const char *dflt,
                   const char **out, char *err, size_t errlen)
{
    if (!member(obj, key)) {
        *out = dflt;
        return 0;
    }
    return jx_get_str(obj, key, maxlen, out, err, errlen);
}

int jx_get_id(const json_t *obj, const char *key, size_t maxlen, const char **out,
              char *err, size_t errlen)
{
    const char *s = NULL;
    int rc = jx_get_str(obj, key, maxlen, &s, err, errlen);
    if (rc != 0)
        return rc;
    if (!ids_valid(s, maxlen))
        return fail(ARIQ_EINVAL, err, errlen, key, "not an id ([A-Za-z0-9._-]+)");
    *out = s;
    return 0;
}

int jx_get_int(const json_t *obj, const char *key, long long min, long long max,
               long long *out, char *err, size_t errlen)
{
    json_t *v = member(obj, key);
    if (!v)
        return fail(ARIQ_EINVAL, err, errlen, key, "missing");
    if (!json_is_integer(v))
        return fail(ARIQ_EINVAL, err, errlen, key, "not an integer");
    long long n = (long long)json_integer_value(v);
    if (n < min || n > max)
        return fail(ARIQ_ERANGE, err, errlen, key, "%lld not in [%lld, %lld]", n, min,
                    max);
    *out = n;
    return 0;
}

int jx_get_int_opt(const json_t *obj, const char *key, long long min, long long max,
                   long long dflt, long long *out, char *err, size_t errlen)
{
    if (!member(obj, key)) {
        *out = dflt;
        return 0;
    }
    return jx_get_int(obj, key, min, max, out, err, errlen);
}

int jx_get_bool_opt(const json_t *obj, const char *key, bool dflt, bool *out, char *err,
                    size_t errlen)
{
    json_t *v = member(obj, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!json_is_boolean(v))
        return fail(ARIQ_EINVAL, err, errlen, key, "not a boolean");
    *out = json_is_true(v);
    return 0;
}
