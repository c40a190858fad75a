/* One node serving callers and agents (DESIGN.md section 1), end to end: the
 * real queued, the simulator, a real redis-server. Every assertion is on what
 * a party heard or is bridged with (the simulator's oracle) or on what Redis
 * holds; none on queued's log. Time runs 100x fast (scale 0.01). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "queue_check.h"
#include "queued_proc.h"
#include "redis_proc.h"
#include "sim_proc.h"

#define SCALE 0.01
#define WAIT_MS 5000

typedef queued_env fixture;

static fixture *F;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || queued_env_start(f, SCALE, "sweep_ms = 50\n",
                               "[queue support]\nannounce_frequency = 30\n"
                               "[queue sales]\nannounce_frequency = 0\nwrapup_time = 2\n"
                               "[queue small]\nmaxlen = 1\n"
                               "[queue brief]\ntimeout = 20\nannounce_frequency = 0\n") != 0) {
        free(f);
        return -1;
    }
    F = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int st = queued_env_stop(f);
    free(f);
    return (WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : -1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the oracle ---------------------------------------------------------- */

static json_t *chan(const char *id)
{
    json_t *c = sim_channel(&F->sim, 0, id);
    assert_non_null(c);
    return c;
}

/* Finished sounds `media` the channel heard. */
static int heard(const char *id, const char *media)
{
    json_t *c = chan(id), *e;
    size_t i;
    int n = 0;
    json_array_foreach(json_object_get(c, "timeline"), i, e)
    {
        const char *ev = json_string_value(json_object_get(e, "ev"));
        const char *m = json_string_value(json_object_get(e, "media"));
        const char *res = json_string_value(json_object_get(e, "result"));
        if (!strcmp(ev, "sound") && m && !strcmp(m, media) && res && !strcmp(res, "finished"))
            n++;
    }
    json_decref(c);
    return n;
}

static bool wait_heard(const char *id, const char *media, int times)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (heard(id, media) >= times)
            return true;
    return false;
}

static bool hearing_moh(const char *id)
{
    json_t *c = chan(id);
    bool on = json_is_true(json_object_get(c, "hearing_moh"));
    json_decref(c);
    return on;
}

static bool wait_moh(const char *id)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (hearing_moh(id))
            return true;
    return false;
}

static bool alive(const char *id)
{
    json_t *c = chan(id);
    bool a = json_is_true(json_object_get(c, "alive"));
    json_decref(c);
    return a;
}

static bool wait_gone(const char *id)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10))
        if (!alive(id))
            return true;
    return false;
}

static void place(const char *args, const char *num, char *id, size_t len)
{
    json_t *c = sim_place_call(&F->sim, 0, "queue", args, num, id, len);
    assert_non_null(c);
    json_decref(c);
}

/* The one recording made in the sim (or NULL), new reference. */
static json_t *only_recording(void)
{
    json_t *all = sim_ctl(&F->sim, 0, "GET", "/sim/recordings", NULL, NULL);
    json_t *r = json_array_size(all) ? json_incref(json_array_get(all, json_array_size(all) - 1))
                                     : NULL;
    json_decref(all);
    return r;
}

static bool wait_rec_state(const char *state)
{
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10)) {
        json_t *r = only_recording();
        bool ok = r && !strcmp(json_string_value(json_object_get(r, "state")) ?: "", state);
        json_decref(r);
        if (ok)
            return true;
    }
    return false;
}

/* ---- Redis ------------------------------------------------------------------ */

static long long redis_int(const char *fmt, const char *arg)
{
    redisContext *rc = redis_proc_connect(&F->redis);
    assert_non_null(rc);
    redisReply *r = redisCommand(rc, fmt, arg);
    assert_non_null(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    redisFree(rc);
    return v;
}

/* How many events of this type are in the stream. */
static int events_of(const char *type)
{
    redisContext *rc = redis_proc_connect(&F->redis);
    redisReply *r = redisCommand(rc, "XRANGE {ariq}:events - +");
    int n = 0;
    for (size_t i = 0; r && i < r->elements; i++) {
        redisReply *fields = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < fields->elements; k += 2)
            if (!strcmp(fields->element[k]->str, "event") &&
                !strcmp(fields->element[k + 1]->str, type))
                n++;
    }
    freeReplyObject(r);
    redisFree(rc);
    return n;
}

/* Only the counter, the events stream and recording metadata (kept on
 * purpose, for reporting) are left: no record of any party. */
static void assert_redis_clean(void)
{
    redisContext *rc = redis_proc_connect(&F->redis);
    char err[256];
    int clean = qc_redis_clean(rc, "ariq", err, sizeof err);
    redisFree(rc);
    if (clean != 0)
        fail_msg("%s", err);
}

/* Mixing bridges the simulator still holds (holding bridges are reused and
 * may stay). */
static int mixing_bridges(void)
{
    json_t *all = sim_ctl(&F->sim, 0, "GET", "/sim/bridges", NULL, NULL), *b;
    size_t i;
    int n = 0;
    json_array_foreach(all, i, b)
    {
        const char *t = json_string_value(json_object_get(b, "bridge_type"));
        n += t && strcmp(t, "holding") != 0;
    }
    json_decref(all);
    return n;
}

static void wait_sim_empty(void)
{
    assert_true(sim_wait_live_channels(&F->sim, 0, 0, WAIT_MS));
    for (int t = 0; t < WAIT_MS; t += 10, sleep_ms(10)) {
        json_t *st = sim_state(&F->sim, 0);
        long long pb = json_integer_value(json_object_get(st, "playbacks"));
        long long rec = json_integer_value(json_object_get(st, "recordings"));
        json_decref(st);
        if (pb == 0 && rec == 0 && mixing_bridges() == 0)
            return;
    }
    fail_msg("the simulator still holds playbacks, recordings or mixing bridges");
}

/* ---- the tests --------------------------------------------------------------- */

/* A caller alone: answered, MOH, "you are next" every 30 s (scaled); a
 * second caller hears "there are 1 calls waiting"; a hangup while waiting
 * is an ABANDON and leaves nothing. */
static void test_waiting_and_announcements(void **state)
{
    (void)state;
    char c1[128], c2[128];
    place("caller,support", "5551001", c1, sizeof c1);
    assert_true(wait_moh(c1));
    json_t *o = chan(c1);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "Up");
    json_decref(o);
    assert_int_equal(redis_int("ZCARD {ariq}:queue:%s:callers", "support"), 1);
    assert_int_equal(heard(c1, "sound:queue-youarenext"), 0); /* not at once */
    assert_true(wait_heard(c1, "sound:queue-youarenext", 1));
    assert_true(wait_moh(c1)); /* music again after it */

    place("caller,support", "5551002", c2, sizeof c2);
    assert_true(wait_moh(c2));
    assert_true(wait_heard(c2, "sound:queue-thereare", 1));
    assert_true(wait_heard(c2, "number:1", 1));
    assert_true(wait_heard(c2, "sound:queue-callswaiting", 1));
    assert_int_equal(heard(c2, "sound:queue-youarenext"), 0);

    /* the caller ahead leaves: now c2 is next */
    assert_int_equal(sim_hangup_call(&F->sim, 0, c1, 16), 204);
    assert_true(wait_heard(c2, "sound:queue-youarenext", 1));
    assert_int_equal(sim_hangup_call(&F->sim, 0, c2, 16), 204);
    wait_sim_empty();
    sleep_ms(100);
    assert_int_equal(events_of("ENTERQUEUE"), 2);
    assert_int_equal(events_of("ABANDON"), 2);
    assert_redis_clean();
}

/* Callers served by priority then arrival; the agent's keys drive the
 * recording; the caller hanging up sends the agent to the next caller; '#'
 * ends a call; the agent hanging up logs off. Nothing left at the end. */
static void test_agent_serves_callers(void **state)
{
    (void)state;
    char low[128], high[128], late[128], ag[128];
    place("caller,support", "5552001", low, sizeof low);
    assert_true(wait_moh(low));
    place("caller,support", "5552002", late, sizeof late);
    assert_true(wait_moh(late));
    place("caller,support,5", "5552003", high, sizeof high); /* last, but priority 5 */
    assert_true(wait_moh(high));

    place("agent,support,1001", "1001", ag, sizeof ag);
    assert_true(sim_wait_connected(&F->sim, 0, high, ag, true, WAIT_MS));
    assert_int_equal(sim_is_connected(&F->sim, 0, low, ag), 0);
    assert_true(hearing_moh(low));
    assert_int_equal(events_of("CONNECT"), 1);

    /* recording: 0 start (beep to the caller), 5 pause, 5 unpause, 7 stop */
    assert_int_equal(sim_send_dtmf(&F->sim, 0, ag, "0"), 204);
    assert_true(wait_rec_state("recording"));
    assert_true(wait_heard(high, "sound:beep", 1));
    sleep_ms(50);
    assert_int_equal(sim_send_dtmf(&F->sim, 0, ag, "5"), 204);
    assert_true(wait_rec_state("paused"));
    sleep_ms(50);
    assert_int_equal(sim_send_dtmf(&F->sim, 0, ag, "5"), 204);
    assert_true(wait_rec_state("recording"));
    sleep_ms(50);
    assert_int_equal(sim_send_dtmf(&F->sim, 0, ag, "7"), 204);
    assert_true(wait_rec_state("done"));
    json_t *rec = only_recording();
    assert_true(json_is_true(json_object_get(rec, "stored")));
    assert_int_equal(json_array_size(json_object_get(rec, "spans")), 2); /* pause left out */
    /* Redis keeps its metadata: which call, and that it was stored */
    char key[256];
    snprintf(key, sizeof key, "{ariq}:recording:%s",
             json_string_value(json_object_get(rec, "name")));
    json_decref(rec);
    redisContext *rc = redis_proc_connect(&F->redis);
    redisReply *rr = redisCommand(rc, "HGET %s state", key);
    assert_int_equal(rr->type, REDIS_REPLY_STRING);
    assert_string_equal(rr->str, "stored");
    freeReplyObject(rr);
    redisFree(rc);
    assert_int_equal(events_of("RECORDSTART"), 1);
    assert_int_equal(events_of("RECORDPAUSE"), 1);
    assert_int_equal(events_of("RECORDSTOP"), 1);
    assert_int_equal(sim_send_dtmf(&F->sim, 0, ag, "5"), 204); /* nothing to pause: no-op */
    sleep_ms(50);
    assert_true(sim_is_connected(&F->sim, 0, high, ag));

    /* the caller hangs up: the agent takes the next caller, the earliest */
    assert_int_equal(sim_hangup_call(&F->sim, 0, high, 16), 204);
    assert_true(sim_wait_connected(&F->sim, 0, low, ag, true, WAIT_MS));
    assert_int_equal(events_of("COMPLETECALLER"), 1);

    /* '#': the agent ends this call; the caller is hung up; then the last */
    assert_int_equal(sim_send_dtmf(&F->sim, 0, ag, "#"), 204);
    assert_true(wait_gone(low));
    assert_true(sim_wait_connected(&F->sim, 0, late, ag, true, WAIT_MS));
    assert_int_equal(events_of("COMPLETEAGENT"), 1);

    /* the agent hangs up mid-call: the caller is hung up too */
    assert_int_equal(sim_hangup_call(&F->sim, 0, ag, 16), 204);
    assert_true(wait_gone(late));
    wait_sim_empty();
    sleep_ms(100);
    assert_int_equal(events_of("AGENTLOGIN"), 1);
    assert_int_equal(events_of("AGENTLOGOFF"), 1);
    assert_int_equal(events_of("CONNECT"), 3);
    assert_redis_clean();
}

/* An agent id already logged in is turned away (AGENTINUSE), the first one
 * keeps working. */
static void test_agent_in_use(void **state)
{
    (void)state;
    char a1[128], a2[128], c[128];
    place("agent,sales,2001", "2001", a1, sizeof a1);
    assert_true(wait_moh(a1));
    place("agent,sales,2001", "2001", a2, sizeof a2);
    json_t *cont = sim_wait_timeline(&F->sim, 0, a2, "continued", WAIT_MS);
    assert_non_null(cont);
    json_decref(cont);
    json_t *o = chan(a2);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(o, "variables"), "QUEUESTATUS")),
        "AGENTINUSE");
    json_decref(o);
    place("caller,sales", "5553001", c, sizeof c);
    assert_true(sim_wait_connected(&F->sim, 0, c, a1, true, WAIT_MS));
    assert_int_equal(sim_hangup_call(&F->sim, 0, c, 16), 204);
    assert_int_equal(sim_hangup_call(&F->sim, 0, a1, 16), 204);
    assert_int_equal(sim_hangup_call(&F->sim, 0, a2, 16), 204);
    wait_sim_empty();
    sleep_ms(100);
    assert_redis_clean();
}

/* The QUEUESTATUS a channel continued with, or "" (new string in buf). */
static const char *status_of(const char *id, char *buf, size_t len)
{
    json_t *o = chan(id);
    snprintf(buf, len, "%s",
             json_string_value(json_object_get(json_object_get(o, "variables"), "QUEUESTATUS"))
                 ?: "");
    json_decref(o);
    return buf;
}

/* maxlen: the second caller of a queue of one is turned away unanswered
 * (FULL); timeout: a caller who waited too long goes back to the dialplan
 * (TIMEOUT, EXITWITHTIMEOUT), having heard music until then. */
static void test_full_and_timeout(void **state)
{
    (void)state;
    char first[128], second[128], slow[128], st[32];
    place("caller,small", "5554001", first, sizeof first);
    assert_true(wait_moh(first));
    place("caller,small", "5554002", second, sizeof second);
    json_t *cont = sim_wait_timeline(&F->sim, 0, second, "continued", WAIT_MS);
    assert_non_null(cont);
    json_decref(cont);
    assert_string_equal(status_of(second, st, sizeof st), "FULL");
    json_t *o = chan(second);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "Ring");
    json_decref(o);
    assert_true(hearing_moh(first)); /* the first keeps its place */
    assert_int_equal(sim_hangup_call(&F->sim, 0, first, 16), 204);

    place("caller,brief", "5554003", slow, sizeof slow);
    assert_true(wait_moh(slow));
    cont = sim_wait_timeline(&F->sim, 0, slow, "continued", WAIT_MS);
    assert_non_null(cont);
    json_decref(cont);
    assert_string_equal(status_of(slow, st, sizeof st), "TIMEOUT");
    sleep_ms(100);
    assert_int_equal(events_of("EXITWITHTIMEOUT"), 1);
    assert_int_equal(sim_hangup_call(&F->sim, 0, second, 16), 204);
    assert_int_equal(sim_hangup_call(&F->sim, 0, slow, 16), 204);
    wait_sim_empty();
    assert_redis_clean();
}

/* The events WebSocket drops, and the caller hangs up before it is back:
 * the hangup event is lost, yet after the reconnect the node sees from ARI
 * that the channel is gone and the caller leaves the queue (ABANDON). */
static void test_hangup_while_disconnected(void **state)
{
    (void)state;
    char c[128];
    place("caller,support", "5555001", c, sizeof c);
    assert_true(wait_moh(c));
    assert_int_equal(sim_fault(&F->sim, 0, "{\"refuse_ws\":3,\"drop_ws\":true}"), 200);
    sleep_ms(20);
    assert_int_equal(sim_hangup_call(&F->sim, 0, c, 16), 204);
    for (int t = 0; t < WAIT_MS && events_of("ABANDON") < 1; t += 20)
        sleep_ms(20);
    assert_int_equal(events_of("ABANDON"), 1);
    assert_int_equal(redis_int("ZCARD {ariq}:queue:%s:callers", "support"), 0);
    wait_sim_empty();
    assert_redis_clean();
}

/* A running announcement: the first sound entry with no result yet, or NULL. */
static json_t *playing_sound(const char *id)
{
    json_t *c = chan(id), *e, *found = NULL;
    size_t i;
    json_array_foreach(json_object_get(c, "timeline"), i, e)
    {
        const char *ev = json_string_value(json_object_get(e, "ev"));
        if (!strcmp(ev, "sound") && json_is_null(json_object_get(e, "result")))
            found = json_incref(e);
    }
    json_decref(c);
    return found;
}

static int setup_slow(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    /* 10x fast: "you are next" lasts ~0.4 s, long enough to arrive in it */
    if (!f || queued_env_start(f, 0.1, "sweep_ms = 50\n",
                               "[queue support]\nannounce_frequency = 5\n"
                               "announce_on_join = yes\n") != 0) {
        free(f);
        return -1;
    }
    F = f;
    *state = f;
    return 0;
}

/* An agent arrives while the caller hears its position: the announcement
 * is cut at once and they are connected (not after it ends). */
static void test_pairing_cuts_announcement(void **state)
{
    (void)state;
    char c[128], ag[128];
    place("caller,support", "5556001", c, sizeof c);
    json_t *snd = NULL;
    for (int t = 0; t < WAIT_MS && !snd; t += 5, sleep_ms(5))
        snd = playing_sound(c);
    assert_non_null(snd);
    const char *media = json_string_value(json_object_get(snd, "media"));
    assert_string_equal(media, "sound:queue-youarenext");
    json_int_t started = json_integer_value(json_object_get(snd, "start"));
    json_decref(snd);
    place("agent,support,1001", "1001", ag, sizeof ag);
    assert_true(sim_wait_connected(&F->sim, 0, c, ag, true, WAIT_MS));
    json_t *o = chan(c), *e;
    size_t i;
    const char *result = NULL;
    json_int_t ended = 0;
    json_array_foreach(json_object_get(o, "timeline"), i, e)
    {
        const char *ev = json_string_value(json_object_get(e, "ev"));
        if (!strcmp(ev, "sound") && json_integer_value(json_object_get(e, "start")) == started) {
            result = json_string_value(json_object_get(e, "result"));
            ended = json_integer_value(json_object_get(e, "end"));
        }
    }
    assert_non_null(result);
    assert_string_equal(result, "cut");   /* not heard to the end */
    assert_true(ended - started < 400);   /* it lasts ~424 ms when heard whole */
    json_decref(o);
    assert_int_equal(sim_hangup_call(&F->sim, 0, ag, 16), 204);
    wait_sim_empty();
    assert_redis_clean();
}

/* The holding bridge a channel id lands in (hold.c: FNV-1a of the id, 32
 * shards). */
static unsigned shard_of(const char *id)
{
    uint32_t h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % 32;
}

/* A channel id "<prefix>N" in the same holding bridge as `like`. */
static void id_in_shard_of(const char *like, const char *prefix, char *out, size_t len)
{
    for (int i = 0;; i++) {
        snprintf(out, len, "%s%d", prefix, i);
        if (shard_of(out) == shard_of(like))
            return;
    }
}

static void place_id(const char *id, const char *args, const char *num)
{
    char body[256], got[128];
    snprintf(body, sizeof body,
             "{\"app\":\"queue\",\"args\":\"%s\",\"channel_id\":\"%s\","
             "\"caller_number\":\"%s\"}",
             args, id, num);
    json_t *c = sim_place_call_json(&F->sim, 0, body, got, sizeof got);
    assert_non_null(c);
    json_decref(c);
}

/* Music on hold is started again only when a party joins a holding bridge
 * that had emptied (Asterisk drops bridge MOH then): whoever joins, into an
 * empty bridge or one with others in it, hears music. All parties here are
 * in one holding bridge. */
static void test_moh_in_a_reused_holding_bridge(void **state)
{
    (void)state;
    const char *first = "mohc-0";
    char c2[64], c3[64], c4[64], ag[64];
    id_in_shard_of(first, "mohc-a", c2, sizeof c2);
    id_in_shard_of(first, "mohc-b", c3, sizeof c3);
    id_in_shard_of(first, "mohc-c", c4, sizeof c4);
    id_in_shard_of(first, "moha-", ag, sizeof ag);
    place_id(first, "caller,support", "5557001");
    assert_true(wait_moh(first)); /* an empty bridge: music started */
    place_id(c2, "caller,support", "5557002");
    assert_true(wait_moh(c2)); /* a bridge with someone in it: music already on */
    assert_int_equal(sim_hangup_call(&F->sim, 0, first, 16), 204);
    assert_int_equal(sim_hangup_call(&F->sim, 0, c2, 16), 204); /* the bridge empties */
    sleep_ms(50);
    place_id(c3, "caller,support", "5557003");
    assert_true(wait_moh(c3)); /* emptied, so music started again */
    place_id(ag, "agent,support,7101", "7101"); /* takes c3: the bridge empties */
    assert_true(sim_wait_connected(&F->sim, 0, c3, ag, true, WAIT_MS));
    assert_int_equal(sim_hangup_call(&F->sim, 0, c3, 16), 204);
    assert_true(wait_moh(ag)); /* the agent back, alone: music started again */
    place_id(c4, "caller,support", "5557004"); /* paired with the agent at once */
    assert_true(sim_wait_connected(&F->sim, 0, c4, ag, true, WAIT_MS));
    assert_int_equal(sim_hangup_call(&F->sim, 0, ag, 16), 204);
    wait_sim_empty();
    assert_redis_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_waiting_and_announcements, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_serves_callers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moh_in_a_reused_holding_bridge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hangup_while_disconnected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pairing_cuts_announcement, setup_slow, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
