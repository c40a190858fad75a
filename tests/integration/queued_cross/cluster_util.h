/* cluster_util.h - what the multi-node queued tests share: the cluster
 * they run against (C), the simulator's oracle, placing parties, Redis views
 * and the final "everything clean" check. Blocking test code (cmocka). */
#ifndef ARIQ_TEST_CLUSTER_UTIL_H
#define ARIQ_TEST_CLUSTER_UTIL_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "queue_check.h"
#include "queued_proc.h"

#define WAIT_MS 5000
#define N1 0 /* the callers' node */
#define N2 1 /* the agents' node */

extern queued_cluster *C;

int start(void **state, int nnodes, double scale, const char *general, const char *queues);
int teardown(void **state);
void sleep_ms(int ms);
json_t *chan(int node, const char *id);
bool flag(int node, const char *id, const char *name);
bool wait_flag(int node, const char *id, const char *name, bool want);
const char *hung_up_by(int node, const char *id, char *buf, size_t len);
void place(int node, const char *args, const char *number, char *id, size_t len);
void agent_in(int node, const char *queues, const char *agentid, char *id, size_t len);
void caller_in(int node, const char *queues, char *id, size_t len);
void wait_connected(const char *a, const char *b);
void caller_connects(int node, const char *queues, char *id, size_t len, const char *agent);
redisContext *redis(void);
int count_events(const char *type);
bool wait_events(const char *type, int n);
void call_across(const char *queue, const char *agentid, char *agent, char *caller);
/* An agent and a caller of `queue` on the same node talking, CONNECT
 * logged (agent and caller: 128 bytes). */
void call_local(int node, const char *queue, const char *agentid, char *agent, char *caller);
void assert_all_clean(void);
const char *hget(const char *key, const char *field, char *buf, size_t len);
long long zrank(const char *key, const char *member);
bool last_event(const char *type, qc_event *out);
void last_unpaired_detail(char *buf, size_t len);
const char *wait_agent_state(const char *agentid, const char *want, char *st, size_t len);
void hang_up(int node, const char *id);

#define alive(node, id) flag(node, id, "alive")
#define hearing_moh(node, id) flag(node, id, "hearing_moh")
#define wait_gone(node, id) wait_flag(node, id, "alive", false)
#define wait_moh(node, id) wait_flag(node, id, "hearing_moh", true)

#endif
