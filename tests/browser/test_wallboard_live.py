"""test_wallboard_live - agentd's wallboard on a live node, in a headless
Chromium: a redis-server, the Asterisk simulator (node1), one real queued
and agentd, all on 127.0.0.1 and free ports. The test drives calls through
the simulator's control API and checks what the page shows, as events reach
it over /api/v1/events (the token as ?access_token=):
  a caller waiting (waiting 1, its wait ticking), her hangup (waiting 0),
  an agent logging in (waiting), a caller put through to her (the call in
  progress, the agent talking), the hangup clearing it.
First it checks the WebSocket upgrade's token handling on the raw socket:
?access_token= right (101), wrong or empty (401), an unknown parameter
(400), and that the token never shows in agentd's log."""
import os

import wb_harness as h

SCALE = "0.2"
QUEUES = "[queue support]\nannounce_frequency = 0\n"


def start_cluster(p):
    ports = {k: h.free_port() for k in ("redis", "sim", "agentd")}
    p.start("redis", ["redis-server", "--port", str(ports["redis"]), "--bind", "127.0.0.1",
                      "--save", "", "--appendonly", "no", "--dir", p.dir])
    redis_url = "redis://127.0.0.1:%d/0" % ports["redis"]
    ready = os.path.join(p.dir, "sim.ready")
    p.start("sim", [os.path.join(h.BUILD, "tests/asterisk-sim/asterisk-sim"), "--node",
                    "node1:%d" % ports["sim"], "--scale", SCALE, "--user", "ari",
                    "--password", "ari", "--ready-file", ready, "--max-runtime", "600"])
    h.wait_for("the simulator", lambda: os.path.exists(ready) and os.path.getsize(ready) > 0)
    sim = "http://127.0.0.1:%d" % ports["sim"]

    qconf = os.path.join(p.dir, "queued.conf")
    with open(qconf, "w") as f:
        f.write("[general]\nnode_id = node1\nari_url = %s\nari_user = ari\nari_password = ari\n"
                "redis_url = %s\ntime_scale = %s\nsweep_ms = 200\ndrain_timeout_s = 0\n\n%s"
                % (sim, redis_url, SCALE, QUEUES))
    p.start("queued", [os.path.join(h.BUILD, "queued/queued"), "-c", qconf])
    auth = {"Authorization": "Basic YXJpOmFyaQ=="}  # ari:ari
    h.wait_for("queued attached to the simulator",
               lambda: h.http("GET", sim + "/ari/applications/queue", headers=auth)[0] == 200)

    aconf = os.path.join(p.dir, "agentd.conf")
    with open(aconf, "w") as f:
        f.write("[general]\nlisten = 127.0.0.1\nport = %d\ntokens = ${ARIQ_AGENTD_TOKENS}\n"
                "redis_url = %s\nheartbeat_s = 1\n" % (ports["agentd"], redis_url))
    api = "http://127.0.0.1:%d" % ports["agentd"]
    agentd = start_agentd(p, "agentd", aconf, api)
    return sim, api, ports["agentd"], agentd


def start_agentd(p, name, aconf, api):
    env = dict(os.environ, ARIQ_AGENTD_TOKENS=h.TOKEN)
    proc = p.start(name, [os.path.join(h.BUILD, "agentd/agentd"), "-c", aconf], env=env)
    bearer = {"Authorization": "Bearer " + h.TOKEN}
    h.wait_for("agentd's queues route",
               lambda: h.http("GET", api + "/api/v1/queues", headers=bearer)[0] == 200)
    return proc


def call(sim, cid, args, number, name):
    st, body = h.http("POST", sim + "/sim/calls", {
        "app": "queue", "args": args, "caller_number": number, "caller_name": name,
        "channel_id": cid, "name": "PJSIP/%s-00000001" % cid, "exten": "500",
        "node": "node1", "after_stasis": "hangup"})
    assert st == 201, "placing %s: HTTP %s %s" % (cid, st, body)


def hangup(sim, cid):
    st, body = h.http("POST", sim + "/sim/channels/%s/hangup" % cid, {"cause": 16})
    assert st in (200, 204), "hanging up %s: HTTP %s %s" % (cid, st, body)


def check_ws_token(port, logpath):
    ok = "?access_token=" + h.TOKEN
    assert h.ws_handshake(port, ok) == 101, "the right access_token was refused"
    assert h.ws_handshake(port, ok + "&from=0") == 101
    assert h.ws_handshake(port, "?access_token=wrong-token-0123456789") == 401
    assert h.ws_handshake(port, "?access_token=") == 401
    assert h.ws_handshake(port, "") == 401
    assert h.ws_handshake(port, ok + "&colour=red") == 400, "an unknown parameter was taken"
    assert h.ws_handshake(port, ok + "&from=nonsense") == 400
    with open(logpath, errors="replace") as f:
        logged = f.read()
    assert h.TOKEN not in logged and "wrong-token-0123456789" not in logged, \
        "agentd logged a token"


def run():
    p = h.Procs("wallboard")
    d = None
    try:
        sim, api, port, agentd = start_cluster(p)
        check_ws_token(port, os.path.join(p.dir, "agentd.log"))
        d = h.browser()
        check_page(d, sim, api)
        check_resume(d, p, sim, api, agentd)
    except BaseException:
        p.failed = True
        if d:
            h.screenshot(d, "wallboard_live_failure")
        raise
    finally:
        if d:
            d.quit()
        p.stop()


def check_page(d, sim, api):
    q = '[data-queue="support"][data-field="%s"]'
    a = 'tr[data-agent="1001"] [data-field="%s"]'
    h.open_page(d, api + "/wallboard#token=" + h.TOKEN)
    h.wait_for("the page loaded and following events", lambda: d.execute_script(
        "return document.body.dataset.loaded === '1' && document.body.dataset.ws === 'open'"))
    # A queue is listed once a node announces it ({NS}:queues) or someone names it
    assert h.text(d, q % "waiting") in ("0", None), h.text(d, q % "waiting")
    assert h.text(d, "#status") == "live"

    call(sim, "carol", "caller,support", "5551001", "Carol")
    h.wait_for("Carol waiting (waiting 1)", lambda: h.text(d, q % "waiting") == "1")
    h.wait_for("her wait ticking", lambda: h.text(d, q % "longest_wait") not in ("0:00", None), 4)
    h.screenshot(d, "wallboard_live_caller_waiting")
    hangup(sim, "carol")
    h.wait_for("Carol gone (waiting 0)", lambda: h.text(d, q % "waiting") in ("0", None))

    call(sim, "alice", "agent,support,1001", "1001", "Alice")
    h.wait_for("agent 1001 waiting", lambda: h.text(d, a % "state") == "waiting")
    assert h.text(d, a % "node") == "node1"
    h.wait_for("one agent waiting on support", lambda: h.text(d, q % "agents_waiting") == "1")
    h.screenshot(d, "wallboard_live_agent_waiting")

    call(sim, "dave", "caller,support", "5551002", "Dave")
    h.wait_for("the call in progress", lambda: d.execute_script(
        "return document.querySelectorAll('#calls tbody tr[data-state=\"talking\"]').length") == 1)
    assert h.text(d, '#calls tbody tr [data-field="agent"]') == "1001"
    assert h.text(d, '#calls tbody tr [data-field="queue"]') == "support"
    assert h.text(d, '#calls tbody tr [data-field="nodes"]') == "node1"
    h.wait_for("agent 1001 talking", lambda: h.text(d, a % "state") == "talking")
    assert h.text(d, q % "agents_talking") == "1"
    assert h.text(d, q % "waiting") == "0"
    h.screenshot(d, "wallboard_live_talking")

    hangup(sim, "dave")
    h.wait_for("the call cleared", lambda: d.execute_script(
        "return document.querySelectorAll('#calls tbody tr').length") == 0)
    h.wait_for("agent 1001 no longer talking", lambda: h.text(d, a % "state") != "talking")
    h.wait_for("one call taken", lambda: h.text(d, a % "calls_taken") == "1")
    h.screenshot(d, "wallboard_live_after_hangup")


def check_resume(d, p, sim, api, agentd):
    """agentd goes away and comes back on the same port: the page says it is
    reconnecting, then follows the feed again from its last event id, and
    what happened meanwhile reaches it."""
    q = '[data-queue="support"][data-field="waiting"]'
    agentd.terminate()
    agentd.wait(10)
    h.wait_for("the page reconnecting", lambda: h.text(d, "#status").startswith("reconnecting"))
    assert d.execute_script("return document.body.dataset.ws") == "closed"
    call(sim, "erin", "caller,support", "5551003", "Erin")  # Alice takes her meanwhile
    start_agentd(p, "agentd-again", os.path.join(p.dir, "agentd.conf"), api)
    h.wait_for("the page live again", lambda: h.text(d, "#status") == "live", 15)
    h.wait_for("Erin's call in progress", lambda: h.text(
        d, '#calls tbody tr [data-field="caller"]') is not None, 5)
    assert h.text(d, q) in ("0", None)
    with open(os.path.join(p.dir, "agentd-again.log"), errors="replace") as f:
        opened = [l for l in f if "feed opened" in l]
    assert opened and "from=now" not in opened[0], \
        "the page did not resume with its last event id: %r" % opened
    h.screenshot(d, "wallboard_live_resumed")
    hangup(sim, "erin")


if __name__ == "__main__":
    h.main(run)
