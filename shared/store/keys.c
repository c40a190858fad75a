#include "store/keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/ids.h"

struct store_keys {
    char tag[STORE_NS_MAX + 3]; /* "{ns}" */
};

/* Namespaces become part of every key and of the hash tag, so braces and
 * colons (which would change the slot or the key layout) are not allowed. */
int store_keys_ns_valid(const char *ns)
{
    size_t n = ns ? strlen(ns) : 0;
    if (n == 0 || n > STORE_NS_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = ns[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int store_keys_new(const char *ns, store_keys **out)
{
    *out = NULL;
    if (!ns)
        ns = STORE_NS_DEFAULT;
    if (!store_keys_ns_valid(ns))
        return ARIQ_EINVAL;
    store_keys *k = calloc(1, sizeof *k);
    if (!k)
        return ARIQ_ENOMEM;
    snprintf(k->tag, sizeof k->tag, "{%s}", ns);
    *out = k;
    return 0;
}

void store_keys_free(store_keys *k)
{
    free(k);
}

const char *store_keys_tag(const store_keys *k)
{
    return k->tag;
}

/* Kinds are chosen by code, not by outside input, but a typo in one would
 * silently split the schema: keep them to lower-case words. */
static int kind_valid(const char *kind)
{
    size_t n = kind ? strlen(kind) : 0;
    if (n == 0 || n > STORE_KIND_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((kind[i] >= 'a' && kind[i] <= 'z') || (kind[i] >= '0' && kind[i] <= '9') ||
              kind[i] == '_'))
            return 0;
    return 1;
}

/* Ids come from outside (ARI, the API, config), so they are validated on
 * every use: a ':' or '{' in one would let it forge another key. */
int store_key(const store_keys *k, char *out, size_t len, const char *kind, const char *id,
              const char *sub)
{
    if (len)
        out[0] = '\0';
    if (!kind_valid(kind) || (!id && sub) || (id && !ids_valid(id, STORE_ID_MAX)) ||
        (sub && !ids_valid(sub, STORE_ID_MAX)))
        return ARIQ_EINVAL;
    int n;
    if (!id)
        n = snprintf(out, len, "%s:%s", k->tag, kind);
    else if (!sub)
        n = snprintf(out, len, "%s:%s:%s", k->tag, kind, id);
    else
        n = snprintf(out, len, "%s:%s:%s:%s", k->tag, kind, id, sub);
    if (n < 0 || (size_t)n >= len) {
        if (len)
            out[0] = '\0';
        return ARIQ_ERANGE;
    }
    return 0;
}

int store_key_node_heartbeat(const store_keys *k, char *out, size_t len, const char *node_id)
{
    return store_key(k, out, len, "node", node_id, "heartbeat");
}

int store_key_node_draining(const store_keys *k, char *out, size_t len, const char *node_id)
{
    return store_key(k, out, len, "node", node_id, "draining");
}

int store_key_nodes(const store_keys *k, char *out, size_t len)
{
    return store_key(k, out, len, "nodes", NULL, NULL);
}

int store_key_events(const store_keys *k, char *out, size_t len)
{
    return store_key(k, out, len, "events", NULL, NULL);
}

int store_key_queuelog_lease(const store_keys *k, char *out, size_t len)
{
    return store_key(k, out, len, "queuelog", "lease", NULL);
}

int store_key_queuelog_pos(const store_keys *k, char *out, size_t len)
{
    return store_key(k, out, len, "queuelog", "pos", NULL);
}

int store_key_queuelog_members(const store_keys *k, char *out, size_t len)
{
    return store_key(k, out, len, "queuelog", "members", NULL);
}
