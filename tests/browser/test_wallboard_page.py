"""test_wallboard_page - the wallboard page itself (agentd/wallboard/), in a
headless Chromium, against a stand-in API on 127.0.0.1 that serves the page's
files and fixed replies in the JSON shapes of agentd/API.md "Read" (no
WebSocket: the page must fall back to polling). Checks what the page shows:
the message for a missing and for a refused token, each queue's figures,
the longest wait ticking, the agents with their states, the call in
progress, and a change of data reaching the page without a reload."""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import wb_harness as h

ASSETS = {"/wallboard": ("index.html", "text/html"),
          "/wallboard/app.js": ("app.js", "text/javascript"),
          "/wallboard/style.css": ("style.css", "text/css")}


# The front caller entered 65 s before the stand-in started; each reply
# says how long it has waited by then, as agentd's would (a fixed figure
# with a fresh as_of_ms would set the page's clock back at every poll).
ENTERED_MS = int(time.time() * 1000) - 65000


def fixture(now_ms, waiting):
    sl = {"threshold_s": 20, "window_s": 86400, "answered": 7, "answered_within": 7,
          "abandoned": 1, "percent": 87.5}
    queues = {"as_of_ms": now_ms, "queues": [
        {"name": "sales", "waiting": 0, "longest_wait_ms": 0,
         "agents": {"logged_in": 0, "waiting": 0, "connecting": 0, "talking": 0,
                    "wrapup": 0, "paused": 0},
         "service_level": dict(sl, answered=0, answered_within=0, abandoned=0, percent=None)},
        {"name": "support", "waiting": waiting, "longest_wait_ms": now_ms - ENTERED_MS if waiting else 0,
         "agents": {"logged_in": 3, "waiting": 1, "connecting": 0, "talking": 1,
                    "wrapup": 0, "paused": 1},
         "service_level": sl}]}

    def agent(aid, state, node, reason="", taken=0):
        return {"agent": aid, "node": node, "channel": "ch-" + aid, "channel_name": "PJSIP/" + aid,
                "queues": ["support"], "state": state, "paused": state == "paused",
                "pause_reason": reason, "since_ms": now_ms - 30000, "login_ms": now_ms - 600000,
                "calls_taken": taken, "talk_time_ms": 0, "pairing": None, "callid": None}
    agents = {"as_of_ms": now_ms, "agents": [agent("1001", "talking", "node2", taken=4),
                                              agent("1002", "waiting", "node1", taken=2),
                                              agent("1003", "paused", "node1", "lunch")]}
    calls = {"as_of_ms": now_ms, "calls": [
        {"pairing": "p1", "state": "talking", "queue": "support", "callid": "c-carol",
         "caller_channel": "carol", "caller_node": "node1", "agent": "1001",
         "agent_channel": "ch-1001", "agent_node": "node2", "created_ms": now_ms - 95000,
         "bridged_ms": now_ms - 90000, "holdtime_ms": 5000,
         "recording": {"name": "rec-1", "state": "recording"}}]}
    return {"/api/v1/queues": queues, "/api/v1/agents": agents, "/api/v1/calls": calls}


class Api:
    waiting = 2
    bearer_seen = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in ASSETS:
            name, ctype = ASSETS[path]
            with open(os.path.join(h.SOURCE, "agentd", "wallboard", name), "rb") as f:
                return self.send(200, ctype, f.read())
        data = fixture(int(time.time() * 1000), Api.waiting)
        if path not in data:
            return self.send(404, "application/json", b'{"error":"no such route"}')
        auth = self.headers.get("Authorization", "")
        Api.bearer_seen.append(auth)
        if auth != "Bearer " + h.TOKEN:
            return self.send(401, "application/json", b'{"error":"invalid token"}')
        self.send(200, "application/json", json.dumps(data[path]).encode())


def secs(mss):
    m, s = mss.split(":")
    return int(m) * 60 + int(s)


def run():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d/wallboard" % srv.server_address[1]
    d = h.browser()
    try:
        check(d, base)
    finally:
        d.quit()
        srv.shutdown()


def check(d, base):
    q = '[data-queue="support"][data-field="%s"]'
    h.open_page(d, base)
    h.wait_for("the missing-token message",
               lambda: "No token" in (h.text(d, "#message") or ""))
    h.screenshot(d, "wallboard_page_no_token")

    h.open_page(d, base + "#token=not-the-token")
    h.wait_for("the refused-token message",
               lambda: "refused (401)" in (h.text(d, "#message") or ""))
    assert h.text(d, "#status") == "not authorized"
    h.screenshot(d, "wallboard_page_bad_token")

    h.open_page(d, base + "#token=" + h.TOKEN)
    h.wait_for("the page loaded", lambda: d.find_element("css selector", "body")
               .get_attribute("data-loaded") == "1")
    assert "Bearer " + h.TOKEN in Api.bearer_seen, "the page sent no bearer token"
    assert not d.find_element("css selector", "#message").is_displayed()
    assert h.text(d, q % "waiting") == "2", h.text(d, q % "waiting")
    assert h.text(d, q % "service_level") == "87.5%", h.text(d, q % "service_level")
    assert h.text(d, '[data-queue="sales"][data-field="service_level"]') == "\u2014"
    for f, v in (("agents_waiting", "1"), ("agents_talking", "1"), ("agents_paused", "1"),
                 ("agents_wrapup", "0"), ("agents_logged_in", "3")):
        assert h.text(d, q % f) == v, (f, h.text(d, q % f))
    w1 = h.text(d, q % "longest_wait")
    assert 63 <= secs(w1) <= 70, w1  # 65 s and counting
    h.wait_for("the longest wait ticking", lambda: h.text(d, q % "longest_wait") != w1, 3)

    a = 'tr[data-agent="%s"] [data-field="%s"]'
    assert h.text(d, a % ("1001", "state")) == "talking"
    assert h.text(d, a % ("1002", "state")) == "waiting"
    assert h.text(d, a % ("1003", "state")) == "paused"
    assert h.text(d, a % ("1003", "pause_reason")) == "lunch"
    assert h.text(d, a % ("1001", "calls_taken")) == "4"
    assert h.text(d, a % ("1002", "node")) == "node1"
    colour = d.find_element("css selector", 'tr[data-agent="1003"] .state') \
        .value_of_css_property("background-color")
    assert colour != d.find_element("css selector", 'tr[data-agent="1002"] .state') \
        .value_of_css_property("background-color"), "paused and waiting look alike"

    c = 'tr[data-call="c-carol"] [data-field="%s"]'
    assert h.text(d, c % "agent") == "1001"
    assert h.text(d, c % "queue") == "support"
    assert h.text(d, c % "nodes") == "node1 \u2192 node2", h.text(d, c % "nodes")
    assert "recording" in h.text(d, c % "recording")
    assert 88 <= secs(h.text(d, c % "duration")) <= 95, h.text(d, c % "duration")  # 90 s
    h.screenshot(d, "wallboard_page")

    Api.waiting = 0  # no WebSocket here: the page's 5 s poll must bring it
    h.wait_for("waiting back to 0", lambda: h.text(d, q % "waiting") == "0", 8)
    assert h.text(d, q % "longest_wait") == "0:00"


if __name__ == "__main__":
    h.main(run)
