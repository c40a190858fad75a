/* keys.h - the one place that builds Redis key names (STYLE habit 13).
 *
 * Every key ariq writes is `{NS}:kind[:id[:sub]]`, where NS is the configured
 * namespace (default "ariq"). The braces are a Redis Cluster hash tag: only
 * "{NS}" is hashed, so every key lands in one slot and every Lua script can
 * touch any of them. redis-schema/SCHEMA.md lists each kind, its type, its
 * writer and its lifetime; add a kind there when you add one here.
 *
 * Nobody formats a key by hand elsewhere: build it here, so the namespace, the
 * hash tag and the validation of ids that come from outside (channel ids,
 * queue names, agent ids) are the same everywhere.
 *
 * Limits: namespace 1..STORE_NS_MAX bytes of [A-Za-z0-9_-]; kind 1..
 * STORE_KIND_MAX bytes of [a-z0-9_]; ids 1..STORE_ID_MAX bytes of
 * [A-Za-z0-9._-] (core/ids.h ids_valid); a whole key < STORE_KEY_MAX bytes. */
#ifndef ARIQ_STORE_KEYS_H
#define ARIQ_STORE_KEYS_H

#include <stddef.h>

#define STORE_NS_DEFAULT "ariq"
#define STORE_NS_MAX 32
#define STORE_KIND_MAX 32
#define STORE_ID_MAX 128
/* Buffer size that holds any key this module builds, NUL included. */
#define STORE_KEY_MAX 512

typedef struct store_keys store_keys;

/* Creates a key builder for namespace `ns` (NULL means STORE_NS_DEFAULT;
 * borrowed, copied). Returns 0 and a new object in *out (yours:
 * store_keys_free), ARIQ_EINVAL for a bad namespace, or ARIQ_ENOMEM. */
int store_keys_new(const char *ns, store_keys **out);

/* Frees k. store_keys_free(NULL) does nothing. */
void store_keys_free(store_keys *k);

/* The hash tag, "{ariq}". Borrowed: lives as long as k. */
const char *store_keys_tag(const store_keys *k);

/* True if ns is a valid namespace. */
int store_keys_ns_valid(const char *ns);

/* Writes `{NS}:kind`, `{NS}:kind:id` (sub NULL) or `{NS}:kind:id:sub` into
 * out (len bytes, NUL-terminated). kind, id and sub are borrowed; id NULL
 * means none (then sub must be NULL too). Returns 0, ARIQ_EINVAL for a bad
 * kind, id or sub (out is then ""), or ARIQ_ERANGE if the key does not fit. */
int store_key(const store_keys *k, char *out, size_t len, const char *kind, const char *id,
              const char *sub);

/* Typed builders for the keys of redis-schema/SCHEMA.md. Each returns what
 * store_key returns. */

/* STRING with TTL: `{NS}:node:<node_id>:heartbeat`. */
int store_key_node_heartbeat(const store_keys *k, char *out, size_t len, const char *node_id);
/* STRING with TTL: `{NS}:node:<node_id>:draining`, set while the node drains
 * (queue.lua op node_drain). */
int store_key_node_draining(const store_keys *k, char *out, size_t len, const char *node_id);
/* SET of node ids: `{NS}:nodes`. */
int store_key_nodes(const store_keys *k, char *out, size_t len);
/* STREAM: `{NS}:events`, every queue event (queue.lua). */
int store_key_events(const store_keys *k, char *out, size_t len);
/* agentd's queue_log writer (agentd/queue_log.h): `{NS}:queuelog:lease`
 * (STRING with TTL: the id of the one agentd writing the file),
 * `{NS}:queuelog:pos` (HASH: the last stream entry written, with the file's
 * inode and size after it) and `{NS}:queuelog:members` (HASH agent -> its
 * queues, for REMOVEMEMBER). */
int store_key_queuelog_lease(const store_keys *k, char *out, size_t len);
int store_key_queuelog_pos(const store_keys *k, char *out, size_t len);
int store_key_queuelog_members(const store_keys *k, char *out, size_t len);

#endif
