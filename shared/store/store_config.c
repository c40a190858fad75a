/* store_config.c - defaults, range checks and the redis:// and
 * redis-sentinel:// URL parsers.
 *
 * The URL comes from a config file or the environment, so it is outside
 * input: every part is bounded and validated, and no error message ever
 * quotes the userinfo or the query (they hold passwords). */
#include "store/store.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

#define URL_MAX 1024

void store_config_init(store_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 6379;
    snprintf(c->ns, sizeof c->ns, "%s", STORE_NS_DEFAULT);
    c->connect_timeout_ms = 5000;
    c->backoff_min_ms = 100;
    c->backoff_max_ms = 5000;
    c->reply_timeout_ms = 10000;
    c->health_interval_ms = 1000;
    c->sentinel_timeout_ms = 1000;
}

static int fail_msg(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return ARIQ_EINVAL;
}

static int fail_fmt(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_fmt(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return ARIQ_EINVAL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..n) into out (outlen bytes). A NUL byte, a broken
 * escape or an overlong result are errors: they could only be mistakes or
 * attacks. */
static bool pct_decode(const char *src, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)src[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval(src[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(src[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch == 0 || o + 1 >= outlen)
            return false;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return true;
}

/* Parses a decimal number of 1..9 digits in [s, s+n) within lo..hi. */
static bool parse_num(const char *s, size_t n, long lo, long hi, long *out)
{
    if (n == 0 || n > 9)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool host_char_ok(char c, bool v6)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        c == '.' || c == '-')
        return true;
    return v6 && c == ':';
}

/* Parses "host[:port]" or "[v6][:port]" in [s, s+n) into a (its port only
 * when one is written). `ctx` starts each message ("" or "sentinel 2: "). */
static int parse_hostport(const char *s, size_t n, store_addr *a, const char *ctx, char *err,
                          size_t errlen)
{
    const char *h = s, *end = s + n, *colon;
    bool v6 = n > 0 && s[0] == '[';
    if (v6) {
        const char *close = memchr(s, ']', n);
        if (!close)
            return fail_fmt(err, errlen, "redis URL: %smissing ']' after IPv6 host", ctx);
        h = s + 1;
        colon = close + 1 < end ? close + 1 : NULL;
        if (colon && *colon != ':')
            return fail_fmt(err, errlen, "redis URL: %sunexpected text after IPv6 host", ctx);
        end = close;
    } else {
        colon = memchr(s, ':', n);
        if (colon)
            end = colon;
    }
    size_t hl = (size_t)(end - h);
    if (hl == 0)
        return fail_fmt(err, errlen, "redis URL: %smissing host", ctx);
    if (hl >= sizeof a->host)
        return fail_fmt(err, errlen, "redis URL: %shost too long", ctx);
    for (size_t i = 0; i < hl; i++)
        if (!host_char_ok(h[i], v6))
            return fail_fmt(err, errlen, "redis URL: %sbad character in host", ctx);
    memcpy(a->host, h, hl);
    a->host[hl] = '\0';
    if (colon) {
        long port;
        if (!parse_num(colon + 1, (size_t)(s + n - colon - 1), 1, 65535, &port))
            return fail_fmt(err, errlen, "redis URL: %sport must be a number 1..65535", ctx);
        a->port = (int)port;
    }
    return 0;
}

/* Parses "[user]:password" in [s, s+n) into t. The message never quotes it. */
static int parse_userinfo(const char *s, size_t n, store_config *t, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    if (!colon)
        return fail_msg(err, errlen,
                        "redis URL: credentials must be written [user]:password@");
    size_t ul = (size_t)(colon - s);
    if (!pct_decode(s, ul, t->username, sizeof t->username))
        return fail_msg(err, errlen, "redis URL: bad or too long user name");
    if (!pct_decode(colon + 1, n - ul - 1, t->password, sizeof t->password))
        return fail_msg(err, errlen, "redis URL: bad percent-encoding or too long password");
    return 0;
}

static int parse_db(const char *s, size_t n, store_config *t, char *err, size_t errlen)
{
    long db = 0;
    if (n > 0 && !parse_num(s, n, 0, STORE_DB_MAX, &db))
        return fail_msg(err, errlen, "redis URL: db must be a number 0..65535 after '/'");
    t->db = (int)db;
    return 0;
}

/* Parses what follows "redis://". */
static int parse_plain_url(store_config *c, const char *a, const char *end, char *err,
                           size_t errlen)
{
    if (memchr(a, '?', (size_t)(end - a)) || memchr(a, '#', (size_t)(end - a)))
        return fail_msg(err, errlen, "redis URL: query strings and fragments are not supported");
    const char *slash = memchr(a, '/', (size_t)(end - a));
    const char *aend = slash ? slash : end;
    const char *at = NULL;
    for (const char *p = a; p < aend; p++) /* the last '@' ends the userinfo */
        if (*p == '@')
            at = p;

    store_config t = *c;
    t.username[0] = t.password[0] = '\0';
    t.nsentinels = 0;
    t.master_name[0] = t.sentinel_password[0] = '\0';
    store_addr addr = {.port = 6379};
    const char *hp = at ? at + 1 : a;
    int rc = at ? parse_userinfo(a, (size_t)(at - a), &t, err, errlen) : 0;
    if (rc == 0)
        rc = parse_hostport(hp, (size_t)(aend - hp), &addr, "", err, errlen);
    if (rc == 0) {
        memcpy(t.host, addr.host, sizeof t.host);
        t.port = addr.port;
        rc = parse_db(slash ? slash + 1 : aend, slash ? (size_t)(end - slash - 1) : 0, &t, err,
                      errlen);
    }
    if (rc == 0)
        *c = t;
    memset(&t, 0, sizeof t); /* do not leave a copy of the password on the stack */
    return rc;
}

/* Master names as `sentinel monitor` takes them, kept to characters that
 * need no quoting in a URL or a log line. */
static bool master_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > STORE_MASTER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* Parses the comma-separated sentinel list in [s, s+n) into t. */
static int parse_sentinels(const char *s, size_t n, store_config *t, char *err, size_t errlen)
{
    const char *p = s, *end = s + n;
    t->nsentinels = 0;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (t->nsentinels == STORE_SENTINELS_MAX)
            return fail_fmt(err, errlen, "redis URL: more than %d sentinels",
                            STORE_SENTINELS_MAX);
        char ctx[32];
        snprintf(ctx, sizeof ctx, "sentinel %d: ", t->nsentinels + 1);
        store_addr *a = &t->sentinels[t->nsentinels];
        memset(a, 0, sizeof *a);
        a->port = STORE_SENTINEL_PORT;
        int rc = parse_hostport(p, (size_t)(e - p), a, ctx, err, errlen);
        if (rc != 0)
            return rc;
        t->nsentinels++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/* Parses "db=N&sentinel_password=P" (either, in any order, each once) in
 * [s, s+n) into t. Messages name the parameter, never its value. */
static int parse_sentinel_query(const char *s, size_t n, store_config *t, char *err,
                                size_t errlen)
{
    static const char db_key[] = "db=", pw_key[] = "sentinel_password=";
    bool have_db = false, have_pw = false;
    const char *p = s, *end = s + n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        size_t len = (size_t)(e - p);
        if (len >= sizeof db_key - 1 && strncmp(p, db_key, sizeof db_key - 1) == 0) {
            if (have_db)
                return fail_msg(err, errlen, "redis URL: db given twice");
            have_db = true;
            if (len == sizeof db_key - 1 ||
                parse_db(p + sizeof db_key - 1, len - (sizeof db_key - 1), t, err, errlen) != 0)
                return fail_msg(err, errlen, "redis URL: db must be a number 0..65535 (?db=N)");
        } else if (len >= sizeof pw_key - 1 && strncmp(p, pw_key, sizeof pw_key - 1) == 0) {
            if (have_pw)
                return fail_msg(err, errlen, "redis URL: sentinel_password given twice");
            have_pw = true;
            if (!pct_decode(p + sizeof pw_key - 1, len - (sizeof pw_key - 1),
                            t->sentinel_password, sizeof t->sentinel_password))
                return fail_msg(err, errlen,
                                "redis URL: bad percent-encoding or too long sentinel_password");
        } else {
            return fail_msg(err, errlen,
                            "redis URL: unknown query parameter (known: db, sentinel_password)");
        }
        p = amp ? amp + 1 : end;
    }
    return 0;
}

/* Parses what follows "redis-sentinel://":
 * [[user]:password@]host[:port][,host[:port]...]/master_name[?query]. */
static int parse_sentinel_url(store_config *c, const char *a, const char *end, char *err,
                              size_t errlen)
{
    if (memchr(a, '#', (size_t)(end - a)))
        return fail_msg(err, errlen, "redis URL: fragments (#) are not supported");
    const char *q = memchr(a, '?', (size_t)(end - a));
    const char *pend = q ? q : end;
    const char *slash = memchr(a, '/', (size_t)(pend - a));
    if (!slash || slash + 1 == pend)
        return fail_msg(err, errlen,
                        "redis URL: missing master name "
                        "(redis-sentinel://host:port,host:port,.../master_name)");
    const char *at = NULL;
    for (const char *p = a; p < slash; p++) /* the last '@' ends the userinfo */
        if (*p == '@')
            at = p;
    const char *name = slash + 1;
    if (!master_name_ok(name, (size_t)(pend - name)))
        return fail_fmt(err, errlen,
                        "redis URL: master name must be 1..%d characters of [A-Za-z0-9._-] "
                        "(the db goes in ?db=N)",
                        STORE_MASTER_NAME_MAX);

    store_config t = *c;
    t.username[0] = t.password[0] = t.sentinel_password[0] = '\0';
    t.db = 0;
    const char *hp = at ? at + 1 : a;
    int rc = at ? parse_userinfo(a, (size_t)(at - a), &t, err, errlen) : 0;
    if (rc == 0)
        rc = parse_sentinels(hp, (size_t)(slash - hp), &t, err, errlen);
    if (rc == 0 && q)
        rc = parse_sentinel_query(q + 1, (size_t)(end - q - 1), &t, err, errlen);
    if (rc == 0) {
        memcpy(t.master_name, name, (size_t)(pend - name));
        t.master_name[pend - name] = '\0';
        *c = t;
    }
    memset(&t, 0, sizeof t); /* no copy of a password left on the stack */
    return rc;
}

int store_config_set_url(store_config *c, const char *url, char *err, size_t errlen)
{
    static const char plain[] = "redis://", sentinel[] = "redis-sentinel://";
    if (!url)
        return fail_msg(err, errlen, "redis URL: missing");
    size_t n = strnlen(url, URL_MAX + 1);
    if (n > URL_MAX)
        return fail_msg(err, errlen, "redis URL: too long");
    if (strncasecmp(url, "rediss://", 9) == 0)
        return fail_msg(err, errlen, "redis URL: TLS (rediss://) is not supported");
    if (strncasecmp(url, plain, sizeof plain - 1) == 0)
        return parse_plain_url(c, url + sizeof plain - 1, url + n, err, errlen);
    if (strncasecmp(url, sentinel, sizeof sentinel - 1) == 0)
        return parse_sentinel_url(c, url + sizeof sentinel - 1, url + n, err, errlen);
    return fail_msg(err, errlen, "redis URL: must start with redis:// or redis-sentinel://");
}

/* The Sentinel fields, when sentinels are configured. */
static int check_sentinels(const store_config *c, char *err, size_t errlen)
{
    if (c->nsentinels > STORE_SENTINELS_MAX)
        return fail_fmt(err, errlen, "redis: at most %d sentinels", STORE_SENTINELS_MAX);
    for (int i = 0; i < c->nsentinels; i++) {
        const store_addr *a = &c->sentinels[i];
        if (!a->host[0] || memchr(a->host, '\0', sizeof a->host) == NULL)
            return fail_fmt(err, errlen, "redis: sentinel %d: host missing", i + 1);
        if (a->port < 1 || a->port > 65535)
            return fail_fmt(err, errlen, "redis: sentinel %d: port must be 1..65535", i + 1);
    }
    if (memchr(c->master_name, '\0', sizeof c->master_name) == NULL ||
        !master_name_ok(c->master_name, strlen(c->master_name)))
        return fail_fmt(err, errlen,
                        "redis: master_name must be 1..%d characters of [A-Za-z0-9._-]",
                        STORE_MASTER_NAME_MAX);
    if (memchr(c->sentinel_password, '\0', sizeof c->sentinel_password) == NULL)
        return fail_msg(err, errlen, "redis: sentinel_password too long");
    if (c->sentinel_timeout_ms < 10 || c->sentinel_timeout_ms > 600000)
        return fail_msg(err, errlen, "redis: sentinel_timeout_ms must be 10..600000");
    return 0;
}

int store_config_check(const store_config *c, char *err, size_t errlen)
{
    if (c->nsentinels < 0)
        return fail_msg(err, errlen, "redis: nsentinels must not be negative");
    if (c->nsentinels > 0) {
        int rc = check_sentinels(c, err, errlen);
        if (rc != 0)
            return rc;
    } else if (c->master_name[0]) {
        return fail_msg(err, errlen, "redis: master_name is set but no sentinels are");
    } else if (!c->host[0] || memchr(c->host, '\0', sizeof c->host) == NULL) {
        return fail_msg(err, errlen, "redis: host missing");
    } else if (c->port < 1 || c->port > 65535) {
        return fail_msg(err, errlen, "redis: port must be 1..65535");
    }
    if (c->db < 0 || c->db > STORE_DB_MAX)
        return fail_msg(err, errlen, "redis: db must be 0..65535");
    if (!store_keys_ns_valid(c->ns))
        return fail_msg(err, errlen,
                        "redis: namespace must be 1..32 characters of [A-Za-z0-9_-]");
    if (c->connect_timeout_ms < 10 || c->connect_timeout_ms > 600000)
        return fail_msg(err, errlen, "redis: connect_timeout_ms must be 10..600000");
    if (c->backoff_min_ms < 1 || c->backoff_max_ms < c->backoff_min_ms ||
        c->backoff_max_ms > 600000)
        return fail_msg(err, errlen, "redis: need 1 <= backoff_min_ms <= backoff_max_ms <= 600000");
    if (c->reply_timeout_ms != 0 && (c->reply_timeout_ms < 10 || c->reply_timeout_ms > 600000))
        return fail_msg(err, errlen, "redis: reply_timeout_ms must be 0 or 10..600000");
    if (c->health_interval_ms < 10 || c->health_interval_ms > 60000)
        return fail_msg(err, errlen, "redis: health_interval_ms must be 10..60000");
    return 0;
}
