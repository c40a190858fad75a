/* sim_bridge.c - bridges, bridge MOH (the announcer quirk) and who can hear
 * whom (the oracle's connected()). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ids.h"
#include "sim_internal.h"

sim_bridge *bridge_new(sim *s, int node, const char *id, bool mixing, const char *name)
{
    char uuid[IDS_UUID_LEN + 1];
    if (!id || !*id) {
        ids_uuid(uuid);
        id = uuid;
    }
    char key[SIM_ID_MAX + 16];
    if (strlen(id) >= SIM_ID_MAX)
        return NULL;
    snprintf(key, sizeof key, "%d/%s", node, id);
    if (sim_map_get(s->bridges, key))
        return NULL;
    sim_bridge *b = calloc(1, sizeof(*b));
    if (!b || !(b->ids = json_array())) {
        free(b);
        return NULL;
    }
    strcpy(b->id, id);
    strcpy(b->key, key);
    snprintf(b->name, sizeof(b->name), "%s", name ? name : "");
    b->node = node;
    b->mixing = mixing;
    b->created_ms = sim_now(s);
    if (sim_map_put(s->bridges, b->key, b)) {
        bridge_free(b);
        return NULL;
    }
    return b;
}

void bridge_free(sim_bridge *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        b->members[i]->bridge = NULL;
    free(b->members);
    json_decref(b->ids);
    free(b->app);
    free(b);
}

sim_bridge *bridge_get(sim *s, int node, const char *id)
{
    char key[SIM_ID_MAX + 16];
    if (!id || strlen(id) >= SIM_ID_MAX)
        return NULL;
    snprintf(key, sizeof key, "%d/%s", node, id);
    return sim_map_get(s->bridges, key);
}

/* The "channels" array is shared with the bridge: serialize the result
 * before the bridge changes (events and replies both do). */
json_t *bridge_json(sim *s, const sim_bridge *b)
{
    char ts[32];
    json_t *chans = json_incref(b->ids);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:s}", "id", b->id, "technology",
                     b->mixing ? "simple_bridge" : "holding_bridge", "bridge_type",
                     b->mixing ? "mixing" : "holding", "bridge_class", "stasis", "creator",
                     "Stasis", "name", b->name, "channels", chans, "creationtime",
                     sim_ts(s, b->created_ms, ts), "video_mode", "talker");
}

/* Asterisk sets BRIDGEPEER on every member of a two-or-more mixing bridge:
 * the other members' names, after a recorder's when the bridge records. */
static void peers_update(sim *s, sim_bridge *b)
{
    if (!b->mixing || b->n < 2)
        return;
    for (size_t i = 0; i < b->n; i++) {
        char val[1024];
        size_t off = (size_t)snprintf(val, sizeof(val), "%s", b->recorder);
        for (size_t j = 0; j < b->n && off < sizeof(val); j++)
            if (j != i)
                off += (size_t)snprintf(val + off, sizeof(val) - off, "%s%s", off ? "," : "",
                                        b->members[j]->name);
        b->members[i]->bridgepeer = true;
        chan_setvar_event(s, b->members[i], "BRIDGEPEER", val);
    }
}

void bridge_set_recorder(sim *s, sim_bridge *b, bool on)
{
    if (on)
        snprintf(b->recorder, sizeof(b->recorder), "Recorder/ARI-%08x;2", ++s->recorder_seq);
    else
        b->recorder[0] = 0;
    peers_update(s, b);
}

static void update_all(sim *s, sim_bridge *b)
{
    for (size_t i = 0; i < b->n; i++)
        chan_update_hearing(s, b->members[i]);
}

void bridge_add(sim *s, sim_bridge *b, sim_chan *ch)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4;
        sim_chan **m = realloc(b->members, cap * sizeof(*m));
        if (!m)
            return;
        b->members = m;
        b->cap = cap;
    }
    if (json_array_append_new(b->ids, json_string(ch->id)))
        return;
    b->members[b->n++] = ch;
    ch->bridge = b;
    const char *app = chan_event_app(ch);
    if (!b->app && app)
        b->app = strdup(app);
    chan_note(s, ch, "entered_bridge",
              json_pack("{s:s,s:s}", "bridge", b->id, "type", b->mixing ? "mixing" : "holding"));
    if (chan_wants(s, ch, "ChannelEnteredBridge")) /* a bridge model is costly */
        chan_emit(s, ch, "ChannelEnteredBridge", json_pack("{s:o}", "bridge", bridge_json(s, b)));
    peers_update(s, b);
    pb_bridge_member(s, b, ch, true);
    chan_update_hearing(s, ch);
}

/* Takes ch out of b. The announcer does not stay alone in a bridge: when
 * the last channel leaves, bridge MOH is gone until started again. */
void bridge_remove(sim *s, sim_bridge *b, sim_chan *ch)
{
    size_t i = 0;
    while (i < b->n && b->members[i] != ch)
        i++;
    if (i == b->n)
        return;
    if (ch->bridgepeer) {
        ch->bridgepeer = false;
        chan_setvar_event(s, ch, "BRIDGEPEER", "");
    }
    pb_bridge_member(s, b, ch, false);
    memmove(&b->members[i], &b->members[i + 1], (b->n - i - 1) * sizeof(*b->members));
    json_array_remove(b->ids, i);
    b->n--;
    ch->bridge = NULL;
    if (!b->n)
        b->announcer = false;
    chan_note(s, ch, "left_bridge",
              json_pack("{s:s,s:s}", "bridge", b->id, "type", b->mixing ? "mixing" : "holding"));
    if (chan_wants(s, ch, "ChannelLeftBridge")) /* a bridge model is costly */
        chan_emit(s, ch, "ChannelLeftBridge", json_pack("{s:o}", "bridge", bridge_json(s, b)));
    chan_update_hearing(s, ch);
}

void bridge_set_moh(sim *s, sim_bridge *b, const char *cls)
{
    b->announcer = cls && b->n > 0;
    snprintf(b->moh_class, sizeof(b->moh_class), "%s", cls ? cls : "");
    update_all(s, b);
}

void bridge_destroy(sim *s, sim_bridge *b, bool events)
{
    while (b->n)
        bridge_remove(s, b, b->members[b->n - 1]);
    void **v;
    size_t n = sim_map_values(s->pbs, &v);
    for (size_t i = 0; i < n; i++)
        if (((sim_pb *)v[i])->bridge == b)
            pb_stop(s, v[i], "cut");
    free(v);
    char uri[SIM_ID_MAX + 16];
    snprintf(uri, sizeof(uri), "bridge:%s", b->id);
    rec_stop_target(s, uri);
    /* Observed in every trace: a deleted holding bridge raises no
     * BridgeDestroyed for the app, a mixing bridge does. */
    if (events && b->app && b->mixing)
        sim_emit(s, b->node, b->app, "BridgeDestroyed",
                 json_pack("{s:o}", "bridge", bridge_json(s, b)));
    sim_map_del(s->bridges, b->key);
    bridge_free(b);
}

/* Channels one hop from c: its link peer, and the other members of its
 * mixing bridge (a holding bridge connects nobody). */
static size_t neighbours(const sim_chan *c, const sim_chan **out, size_t max)
{
    size_t n = 0;
    if (c->link_peer && c->link_peer->alive && n < max)
        out[n++] = c->link_peer;
    if (c->bridge && c->bridge->mixing)
        for (size_t i = 0; i < c->bridge->n && n < max; i++)
            if (c->bridge->members[i] != c)
                out[n++] = c->bridge->members[i];
    return n;
}

enum { REACH_MAX = 256 };

/* Breadth-first over neighbours from a: fills seen[0] = a, then everyone a
 * hears (at most REACH_MAX in all). Returns how many. */
static size_t reach(const sim_chan *a, const sim_chan **seen)
{
    const sim_chan *nb[64];
    size_t nseen = 1, head = 0;
    seen[0] = a;
    while (head < nseen) {
        size_t k = neighbours(seen[head++], nb, 64);
        for (size_t i = 0; i < k; i++) {
            bool dup = false;
            for (size_t j = 0; j < nseen && !dup; j++)
                dup = seen[j] == nb[i];
            if (!dup && nseen < REACH_MAX)
                seen[nseen++] = nb[i];
        }
    }
    return nseen;
}

json_t *sim_hears(sim *s, const sim_chan *a)
{
    (void)s;
    const sim_chan *seen[REACH_MAX];
    json_t *out = json_array();
    size_t n = a->alive ? reach(a, seen) : 0;
    for (size_t i = 1; i < n; i++)
        json_array_append_new(out, json_string(seen[i]->id));
    return out;
}

bool sim_connected(sim *s, const sim_chan *a, const sim_chan *b)
{
    (void)s;
    if (!a || !b || a == b || !a->alive || !b->alive)
        return false;
    const sim_chan *seen[REACH_MAX];
    size_t n = reach(a, seen);
    for (size_t i = 1; i < n; i++)
        if (seen[i] == b)
            return true;
    return false;
}
