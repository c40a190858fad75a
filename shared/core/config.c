#include "core/config.h"
#include "core/err.h"
#include "core/ids.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CFG_MAX_SECTIONS 1024
#define CFG_MAX_KEYS 256   /* per section */
#define CFG_MAX_VALUE 1024 /* after ${ENV} substitution */
#define CFG_MAX_NAME 128

typedef struct cfg_kv {
    char *key;
    char *value;
    int line;
} cfg_kv;

typedef struct cfg_section {
    char *kind;
    char *name;
    int line;
    cfg_kv *kv;
    size_t nkv;
} cfg_section;

struct cfg {
    char *file;
    cfg_section *sec;
    size_t nsec;
};

/* Parse state shared by the line reader and the inih handler. inih (as built
 * by Debian) does not pass line numbers to the handler, so the reader counts
 * lines and the handler reads the count: inih calls the handler right after
 * the line that produced it. */
typedef struct parse_state {
    cfg *c;
    const char *text; /* cursor into the text being parsed */
    int line;
    char *err;
    size_t errlen;
    int failed;
    char cur_header[2 * 128 + 2];
    int header_seen;
    int header_line;
} parse_state;

static void set_err(parse_state *ps, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(parse_state *ps, int line, const char *fmt, ...)
{
    if (ps->failed)
        return; /* keep the first error: later ones are often its echoes */
    ps->failed = 1;
    int n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->c->file, line);
    if (n < 0 || (size_t)n >= ps->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* inih's reader: copies one line of ps->text. A line that does not fit in
 * inih's buffer is an error rather than two half-lines. */
static char *read_line(char *str, int num, void *stream)
{
    parse_state *ps = stream;
    if (!*ps->text)
        return NULL;
    const char *start = ps->text;
    const char *nl = strchr(start, '\n');
    size_t len = nl ? (size_t)(nl - start) + 1 : strlen(start);
    ps->text = start + len;
    ps->line++;
    if (len >= (size_t)num) {
        set_err(ps, ps->line, "line too long (limit %d bytes)", num - 2);
        len = (size_t)num - 1; /* inih gets a cut line; the error stands */
    }
    memcpy(str, start, len);
    str[len] = '\0';
    const char *p = str;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '[') {
        ps->header_seen = 1; /* even "[general]" twice starts a new section */
        ps->header_line = ps->line;
    }
    return str;
}

static cfg_section *last_section(cfg *c)
{
    return c->nsec ? &c->sec[c->nsec - 1] : NULL;
}

/* Splits "queue support" into kind "queue" and name "support". */
static int add_section(parse_state *ps, const char *header)
{
    cfg *c = ps->c;
    if (c->nsec >= CFG_MAX_SECTIONS) {
        set_err(ps, ps->line, "too many sections (limit %d)", CFG_MAX_SECTIONS);
        return -1;
    }
    const char *sp = strchr(header, ' ');
    size_t klen = sp ? (size_t)(sp - header) : strlen(header);
    const char *name = sp ? sp + 1 : "";
    if (klen == 0 || klen >= CFG_MAX_NAME || strlen(name) >= CFG_MAX_NAME ||
        strchr(name, ' ')) {
        set_err(ps, ps->line, "bad section header [%s]: expected [kind] or [kind name]",
                header);
        return -1;
    }
    char kind[CFG_MAX_NAME];
    memcpy(kind, header, klen);
    kind[klen] = '\0';
    if (cfg_section_find(c, kind, name) >= 0) {
        set_err(ps, ps->line, "duplicate section [%s]", header);
        return -1;
    }
    cfg_section *ns = realloc(c->sec, (c->nsec + 1) * sizeof *ns);
    if (!ns)
        return -1;
    c->sec = ns;
    cfg_section *s = &c->sec[c->nsec];
    memset(s, 0, sizeof *s);
    s->kind = strdup(kind);
    s->name = strdup(name);
    s->line = ps->line;
    c->nsec++;
    return (s->kind && s->name) ? 0 : -1;
}

/* Replaces a whole-value "${NAME}" with the environment variable. */
static int substitute_env(parse_state *ps, const char *key, const char *value, char *out,
                          size_t outlen)
{
    size_t n = strlen(value);
    if (n > 3 && value[0] == '$' && value[1] == '{' && value[n - 1] == '}') {
        char var[CFG_MAX_NAME];
        if (n - 3 >= sizeof var) {
            set_err(ps, ps->line, "%s: environment variable name too long", key);
            return -1;
        }
        memcpy(var, value + 2, n - 3);
        var[n - 3] = '\0';
        const char *env = getenv(var);
        if (!env) {
            set_err(ps, ps->line, "%s: environment variable %s is not set", key, var);
            return -1;
        }
        value = env;
    }
    if (strlen(value) >= outlen) {
        set_err(ps, ps->line, "%s: value too long (limit %zu bytes)", key, outlen - 1);
        return -1;
    }
    strcpy(out, value);
    return 0;
}

static int add_key(parse_state *ps, const char *key, const char *value)
{
    cfg_section *s = last_section(ps->c);
    if (!s) {
        set_err(ps, ps->line, "%s: key outside any section", key);
        return -1;
    }
    for (size_t i = 0; i < s->nkv; i++) {
        if (strcmp(s->kv[i].key, key) == 0) {
            set_err(ps, ps->line, "[%s%s%s] %s: duplicate key (first on line %d)", s->kind,
                    *s->name ? " " : "", s->name, key, s->kv[i].line);
            return -1;
        }
    }
    if (s->nkv >= CFG_MAX_KEYS) {
        set_err(ps, ps->line, "too many keys in one section (limit %d)", CFG_MAX_KEYS);
        return -1;
    }
    char buf[CFG_MAX_VALUE];
    if (substitute_env(ps, key, value, buf, sizeof buf) != 0)
        return -1;
    cfg_kv *nkv = realloc(s->kv, (s->nkv + 1) * sizeof *nkv);
    if (!nkv)
        return -1;
    s->kv = nkv;
    cfg_kv *kv = &s->kv[s->nkv++];
    kv->key = strdup(key);
    kv->value = strdup(buf);
    kv->line = ps->line;
    return (kv->key && kv->value) ? 0 : -1;
}

/* inih handler: returns nonzero to go on. inih passes the header text of the
 * section each key is in; a change of text means a new section began. */
static int on_ini(void *user, const char *section, const char *key, const char *value)
{
    parse_state *ps = user;
    if (ps->failed)
        return 0;
    if (!*section) {
        set_err(ps, ps->line, "%s: key outside any section", key);
        return 0;
    }
    if (ps->header_seen || strcmp(section, ps->cur_header) != 0) {
        ps->header_seen = 0;
        snprintf(ps->cur_header, sizeof ps->cur_header, "%s", section);
        int key_line = ps->line;
        ps->line = ps->header_line; /* the section, and its errors, are on its header */
        int rc = add_section(ps, section);
        ps->line = key_line;
        if (rc != 0) {
            set_err(ps, ps->line, "out of memory");
            return 0;
        }
    }
    if (add_key(ps, key, value) != 0) {
        set_err(ps, ps->line, "out of memory");
        return 0;
    }
    return 1;
}

static cfg *cfg_alloc(const char *name)
{
    cfg *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->file = strdup(name ? name : "(config)");
    if (!c->file) {
        free(c);
        return NULL;
    }
    return c;
}

/* inih only reports sections that hold keys; headers of empty sections are
 * found here so that [queue sales] with all defaults still counts. */
static void add_empty_sections(parse_state *ps, const char *text)
{
    int line = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        line++;
        const char *q = p;
        while (q < p + len && (*q == ' ' || *q == '\t'))
            q++;
        if (q < p + len && *q == '[') {
            const char *end = memchr(q, ']', len - (size_t)(q - p));
            if (end && end - q - 1 < CFG_MAX_NAME * 2) {
                char header[CFG_MAX_NAME * 2];
                memcpy(header, q + 1, (size_t)(end - q - 1));
                header[end - q - 1] = '\0';
                const char *sp = strchr(header, ' ');
                char kind[CFG_MAX_NAME * 2];
                snprintf(kind, sizeof kind, "%.*s", sp ? (int)(sp - header) : (int)strlen(header),
                         header);
                if (cfg_section_find(ps->c, kind, sp ? sp + 1 : "") < 0) {
                    int saved = ps->line;
                    ps->line = line;
                    add_section(ps, header);
                    ps->line = saved;
                }
            }
        }
        p += len + (nl ? 1 : 0);
    }
}

static int by_line(const void *a, const void *b)
{
    return ((const cfg_section *)a)->line - ((const cfg_section *)b)->line;
}

int cfg_load_string(const char *text, const char *name, cfg **out, char *err, size_t errlen)
{
    cfg *c = cfg_alloc(name);
    if (!c)
        return ARIQ_ENOMEM;
    parse_state ps = {.c = c, .text = text, .err = err, .errlen = errlen};
    if (errlen)
        err[0] = '\0';
    int rc = ini_parse_stream(read_line, &ps, on_ini, &ps);
    if (!ps.failed && rc != 0)
        set_err(&ps, rc > 0 ? rc : ps.line, "syntax error (expected [section] or key = value)");
    if (!ps.failed) {
        add_empty_sections(&ps, text);
        if (c->nsec > 1) /* qsort(NULL, 0) is undefined */
            qsort(c->sec, c->nsec, sizeof *c->sec, by_line);
    }
    if (ps.failed) {
        cfg_free(c);
        return ARIQ_EINVAL;
    }
    *out = c;
    return 0;
}

int cfg_load_file(const char *path, cfg **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return errno == ENOENT ? ARIQ_ENOTFOUND : ARIQ_EINVAL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    char buf[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            if (cap > 16u << 20) {
                snprintf(err, errlen, "%s: file too large (limit 16 MiB)", path);
                rc = ARIQ_ERANGE;
                goto fail;
            }
            char *nt = realloc(text, cap);
            if (!nt) {
                rc = ARIQ_ENOMEM;
                goto fail;
            }
            text = nt;
        }
        memcpy(text + len, buf, n);
        len += n;
    }
    if (memchr(text ? text : "", '\0', len)) {
        snprintf(err, errlen, "%s: contains a NUL byte", path);
        rc = ARIQ_EINVAL;
        goto fail;
    }
    if (text)
        text[len] = '\0';
    rc = cfg_load_string(text ? text : "", path, out, err, errlen);
fail:
    free(text);
    fclose(f);
    return rc;
}

void cfg_free(cfg *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nsec; i++) {
        for (size_t k = 0; k < c->sec[i].nkv; k++) {
            free(c->sec[i].kv[k].key);
            free(c->sec[i].kv[k].value);
        }
        free(c->sec[i].kv);
        free(c->sec[i].kind);
        free(c->sec[i].name);
    }
    free(c->sec);
    free(c->file);
    free(c);
}

size_t cfg_section_count(const cfg *c)
{
    return c->nsec;
}

const char *cfg_section_kind(const cfg *c, size_t i)
{
    return i < c->nsec ? c->sec[i].kind : NULL;
}

const char *cfg_section_name(const cfg *c, size_t i)
{
    return i < c->nsec ? c->sec[i].name : NULL;
}

int cfg_section_line(const cfg *c, size_t i)
{
    return i < c->nsec ? c->sec[i].line : 0;
}

int cfg_section_find(const cfg *c, const char *kind, const char *name)
{
    for (size_t i = 0; i < c->nsec; i++)
        if (strcmp(c->sec[i].kind, kind) == 0 && strcmp(c->sec[i].name, name ? name : "") == 0)
            return (int)i;
    return -1;
}

static const cfg_kv *find_kv(const cfg *c, int section, const char *key)
{
    if (section < 0 || (size_t)section >= c->nsec)
        return NULL;
    const cfg_section *s = &c->sec[section];
    for (size_t i = 0; i < s->nkv; i++)
        if (strcmp(s->kv[i].key, key) == 0)
            return &s->kv[i];
    return NULL;
}

const char *cfg_get(const cfg *c, int section, const char *key)
{
    const cfg_kv *kv = find_kv(c, section, key);
    return kv ? kv->value : NULL;
}

/* ---- typed values ------------------------------------------------------ */

typedef struct apply_ctx {
    const cfg *c;
    const char *section; /* "queue support" for messages */
    int line;
    char *err;
    size_t errlen;
} apply_ctx;

static int apply_err(const apply_ctx *a, const cfg_field *f, const char *value, const char *why)
{
    bool secret = f->type == CFG_SECRET;
    if (value && !secret)
        snprintf(a->err, a->errlen, "%s:%d: [%s] %s: bad value '%s': %s", a->c->file, a->line,
                 a->section, f->key, value, why);
    else
        snprintf(a->err, a->errlen, "%s:%d: [%s] %s: %s", a->c->file, a->line, a->section,
                 f->key, why);
    return ARIQ_EINVAL;
}

static int parse_string(const apply_ctx *a, const cfg_field *f, const char *v, void *dst)
{
    size_t cap = (size_t)f->max;
    if (strlen(v) >= cap) {
        char why[64];
        snprintf(why, sizeof why, "too long (limit %zu bytes)", cap - 1);
        return apply_err(a, f, f->type == CFG_SECRET ? NULL : v, why);
    }
    if (f->type == CFG_ID && *v && !ids_valid(v, cap - 1))
        return apply_err(a, f, v, "only letters, digits, '.', '_' and '-' are allowed");
    memcpy((char *)dst + f->offset, v, strlen(v) + 1);
    return 0;
}

static int parse_int(const apply_ctx *a, const cfg_field *f, const char *v, void *dst)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    char why[96];
    snprintf(why, sizeof why, "expected an integer from %ld to %ld", f->min, f->max);
    if (!*v || *end || errno || n < f->min || n > f->max)
        return apply_err(a, f, v, why);
    *(long *)((char *)dst + f->offset) = n;
    return 0;
}

static int parse_double(const apply_ctx *a, const cfg_field *f, const char *v, void *dst)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    char why[96];
    snprintf(why, sizeof why, "expected a number from %ld to %ld", f->min, f->max);
    if (!*v || *end || errno || !isfinite(d) || d < (double)f->min || d > (double)f->max)
        return apply_err(a, f, v, why);
    *(double *)((char *)dst + f->offset) = d;
    return 0;
}

static int parse_bool(const apply_ctx *a, const cfg_field *f, const char *v, void *dst)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *(bool *)((char *)dst + f->offset) = strcasecmp(v, yes[i]) == 0;
            return 0;
        }
    }
    return apply_err(a, f, v, "expected yes or no");
}

static int parse_dtmf(const apply_ctx *a, const cfg_field *f, const char *v, void *dst)
{
    char *out = (char *)dst + f->offset;
    if (!*v || strcasecmp(v, "none") == 0) {
        *out = '\0';
        return 0;
    }
    if (strlen(v) == 1 && strchr("0123456789*#ABCD", v[0])) {
        *out = v[0];
        return 0;
    }
    return apply_err(a, f, v, "expected one DTMF key (0-9, *, #, A-D) or none");
}

typedef int (*parse_fn)(const apply_ctx *, const cfg_field *, const char *, void *);

static const parse_fn parsers[] = {
    [CFG_STR] = parse_string, [CFG_ID] = parse_string,   [CFG_SECRET] = parse_string,
    [CFG_INT] = parse_int,    [CFG_BOOL] = parse_bool,   [CFG_DOUBLE] = parse_double,
    [CFG_DTMF] = parse_dtmf,
};

int cfg_apply(const cfg *c, int i, const cfg_field *fields, void *dst, char *err,
              size_t errlen)
{
    char secname[CFG_MAX_NAME * 2 + 2] = "";
    const cfg_section *s = (i >= 0 && (size_t)i < c->nsec) ? &c->sec[i] : NULL;
    if (s)
        snprintf(secname, sizeof secname, "%s%s%s", s->kind, *s->name ? " " : "", s->name);
    apply_ctx a = {.c = c, .section = secname, .line = s ? s->line : 0, .err = err,
                   .errlen = errlen};

    for (size_t k = 0; s && k < s->nkv; k++) { /* a typo never means a default */
        const cfg_field *f = fields;
        while (f->key && strcmp(f->key, s->kv[k].key) != 0)
            f++;
        if (!f->key) {
            snprintf(err, errlen, "%s:%d: [%s] %s: unknown key", c->file, s->kv[k].line,
                     secname, s->kv[k].key);
            return ARIQ_EINVAL;
        }
    }
    for (const cfg_field *f = fields; f->key; f++) {
        const cfg_kv *kv = s ? find_kv(c, i, f->key) : NULL;
        a.line = kv ? kv->line : (s ? s->line : 0);
        const char *v = kv ? kv->value : f->def;
        if (!v) {
            if (f->required)
                return apply_err(&a, f, NULL, "required key is missing");
            continue;
        }
        if ((size_t)f->type >= sizeof parsers / sizeof parsers[0] || !parsers[f->type])
            return apply_err(&a, f, NULL, "internal: unknown field type");
        int rc = parsers[f->type](&a, f, v, dst);
        if (rc != 0)
            return rc;
    }
    return 0;
}
