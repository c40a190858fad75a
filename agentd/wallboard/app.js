/* The ariq wallboard (agentd/API.md "Wallboard"). Plain script, no build step.
 *
 * The token comes from the URL fragment (#token=...), which the browser never
 * sends to the server. The page reads /api/v1/queues, /agents and /calls with
 * Authorization: Bearer, then follows the /api/v1/events WebSocket (token as
 * ?access_token=, since a browser cannot set a header on a WebSocket) and
 * re-reads on each event, at most every 500 ms. After a drop it reconnects
 * with ?from=<last event id>, backing off up to 10 s, and polls every 5 s
 * meanwhile. Durations tick every second on the server's clock (estimated
 * from each reply's as_of_ms), so a skewed browser clock does not matter.
 *
 * For tests and scrapers every value has a stable address:
 *   [data-queue="<name>"][data-field="waiting|longest_wait|service_level|
 *       agents_waiting|agents_connecting|agents_talking|agents_wrapup|
 *       agents_paused|agents_logged_in"]
 *   tr[data-agent="<id>"] [data-field="state|since|pause_reason|calls_taken|node"]
 *   tr[data-call="<callid>"] [data-field="caller|agent|queue|nodes|duration|recording"]
 *   body[data-loaded] (1 once the first read succeeded), body[data-ws]
 *   (open|closed), #status[data-state] (starting|live|reconnecting|error|auth),
 *   #message (shown for a missing or refused token). */
(function () {
  "use strict";

  var REFRESH_MIN_MS = 500;
  var POLL_MS = 5000;
  var BACKOFF_MAX_MS = 10000;

  var token = new URLSearchParams(location.hash.replace(/^#/, "")).get("token") || "";
  var lastEventId = null;
  var ws = null;
  var backoff = 1000;
  var authFailed = false;
  var inFlight = false, pending = false, lastFetch = 0, refreshTimer = null;
  var offsetMs = 0; /* server clock - browser clock */

  function $(id) { return document.getElementById(id); }

  /* el("td", {"data-field": "x"}, "text" | [children]) */
  function el(tag, attrs, content) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (Array.isArray(content)) content.forEach(function (c) { if (c) e.appendChild(c); });
    else if (content !== undefined && content !== null) e.textContent = String(content);
    return e;
  }

  function serverNow() { return Date.now() + offsetMs; }

  function fmtDuration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = s % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return (h ? h + ":" + two(m) : String(m)) + ":" + two(ss);
  }

  /* An element whose text is the time since `from` (server ms), ticking. */
  function ticker(attrs, from) {
    var e = el("span", attrs, from ? fmtDuration(serverNow() - from) : "0:00");
    if (from) e.setAttribute("data-tick-from", String(from));
    return e;
  }

  function tick() {
    var now = serverNow();
    $("clock").textContent = new Date(now).toLocaleTimeString();
    var all = document.querySelectorAll("[data-tick-from]");
    for (var i = 0; i < all.length; i++)
      all[i].textContent = fmtDuration(now - Number(all[i].getAttribute("data-tick-from")));
  }

  function setStatus(state, text) {
    var s = $("status");
    s.setAttribute("data-state", state);
    s.textContent = text;
  }

  function showMessage(text) {
    var m = $("message");
    m.textContent = text;
    m.hidden = !text;
  }

  /* ---- rendering ---------------------------------------------------------- */

  function stat(queue, field, label, value, extra) {
    var v = extra || el("span", {}, value);
    v.className = "v";
    v.setAttribute("data-queue", queue);
    v.setAttribute("data-field", field);
    return el("div", {"class": "stat"}, [v, el("span", {"class": "l"}, label)]);
  }

  function renderQueues(queues, asOf) {
    var box = $("queues");
    box.textContent = "";
    queues.forEach(function (q) {
      var ag = q.agents || {}, sl = q.service_level || {};
      var wait = q.waiting > 0
        ? ticker({}, asOf - (q.longest_wait_ms || 0))
        : el("span", {}, "0:00");
      var pct = typeof sl.percent === "number" ? sl.percent.toFixed(1) + "%" : "\u2014";
      var card = el("div", {"class": "queue", "data-queue-card": q.name,
                            "data-alert": q.waiting > 0 && !ag.waiting ? "1" : "0"}, [
        el("h3", {}, q.name),
        el("div", {"class": "big"}, [
          stat(q.name, "waiting", "waiting", q.waiting),
          stat(q.name, "longest_wait", "longest wait", null, wait),
          stat(q.name, "service_level", "service level" +
               (sl.threshold_s ? " (" + sl.threshold_s + " s)" : ""), pct)
        ]),
        el("div", {"class": "agents-line"}, ["waiting", "connecting", "talking", "wrapup", "paused"]
          .map(function (st) {
            return el("span", {}, [
              el("span", {"class": "dot " + st}),
              el("span", {"class": "v", "data-queue": q.name, "data-field": "agents_" + st},
                 ag[st] || 0),
              el("span", {"class": "dim"}, " " + (st === "wrapup" ? "wrap-up" : st))
            ]);
          }).concat([el("span", {"class": "dim"}, [
            el("span", {"data-queue": q.name, "data-field": "agents_logged_in"}, ag.logged_in || 0),
            el("span", {}, " logged in")])]))
      ]);
      box.appendChild(card);
    });
    $("queues-empty").hidden = queues.length > 0;
  }

  function renderAgents(agents) {
    var body = document.querySelector("#agents tbody");
    body.textContent = "";
    agents.forEach(function (a) {
      body.appendChild(el("tr", {"data-agent": a.agent}, [
        el("td", {"data-field": "agent"}, a.agent),
        el("td", {"data-field": "state"},
           [el("span", {"class": "state", "data-state": a.state}, a.state)]),
        el("td", {}, [ticker({"data-field": "since"}, a.since_ms)]),
        el("td", {"data-field": "pause_reason"}, a.pause_reason || (a.paused ? "paused" : "")),
        el("td", {"data-field": "calls_taken"}, a.calls_taken || 0),
        el("td", {"data-field": "node"}, a.node || "")
      ]));
    });
    $("agents-count").textContent = agents.length;
    $("agents-empty").hidden = agents.length > 0;
  }

  function renderCalls(calls) {
    var body = document.querySelector("#calls tbody");
    body.textContent = "";
    calls.forEach(function (c) {
      var nodes = c.caller_node === c.agent_node || !c.agent_node
        ? c.caller_node : c.caller_node + " \u2192 " + c.agent_node;
      var rec = c.recording
        ? el("span", {"class": c.recording.state === "recording" ? "rec" : "dim"},
             (c.recording.state === "recording" ? "\u25cf " : "") + c.recording.state)
        : null;
      var caller = c.cid_num || c.caller_channel || c.callid;
      body.appendChild(el("tr", {"data-call": c.callid, "data-state": c.state}, [
        el("td", {"data-field": "caller"}, caller),
        el("td", {"data-field": "agent"}, c.agent),
        el("td", {"data-field": "queue"}, c.queue),
        el("td", {"data-field": "nodes"}, nodes),
        el("td", {}, [c.state === "talking"
          ? ticker({"data-field": "duration"}, c.bridged_ms || c.created_ms)
          : el("span", {"data-field": "duration", "class": "dim"}, "connecting")]),
        el("td", {"data-field": "recording"}, rec ? [rec] : "")
      ]));
    });
    $("calls-count").textContent = calls.length;
    $("calls-empty").hidden = calls.length > 0;
  }

  /* ---- reading ------------------------------------------------------------ */

  function get(path) {
    return fetch(path, {headers: {"Authorization": "Bearer " + token}, cache: "no-store"})
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (!r.ok) {
            var err = new Error(body.error || ("HTTP " + r.status));
            err.status = r.status;
            throw err;
          }
          return body;
        });
      });
  }

  function refuse(text) {
    authFailed = true;
    setStatus("auth", "not authorized");
    showMessage(text);
    if (ws) ws.close();
  }

  function refresh() {
    inFlight = true;
    pending = false;
    lastFetch = Date.now();
    Promise.all([get("/api/v1/queues"), get("/api/v1/agents"), get("/api/v1/calls")])
      .then(function (r) {
        offsetMs = r[0].as_of_ms - Date.now();
        renderQueues(r[0].queues || [], r[0].as_of_ms);
        renderAgents(r[1].agents || []);
        renderCalls(r[2].calls || []);
        document.body.setAttribute("data-loaded", "1");
        showMessage("");
        if (ws && ws.readyState === WebSocket.OPEN) setStatus("live", "live");
        tick();
      })
      .catch(function (e) {
        if (e.status === 401)
          refuse("The token was refused (401): open this page as /wallboard#token=<a token " +
                 "from agentd's tokens>.");
        else
          setStatus("error", "API: " + e.message);
      })
      .then(function () {
        inFlight = false;
        if (pending && !authFailed) scheduleRefresh();
      });
  }

  /* Throttled: at most one read per REFRESH_MIN_MS, one in flight. */
  function scheduleRefresh() {
    if (authFailed) return;
    if (inFlight) { pending = true; return; }
    if (refreshTimer) return;
    var wait = Math.max(0, lastFetch + REFRESH_MIN_MS - Date.now());
    refreshTimer = setTimeout(function () { refreshTimer = null; refresh(); }, wait);
  }

  /* ---- following the events ----------------------------------------------- */

  function connect() {
    if (authFailed) return;
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
      "/api/v1/events?access_token=" + encodeURIComponent(token) +
      (lastEventId ? "&from=" + encodeURIComponent(lastEventId) : "");
    ws = new WebSocket(url);
    ws.onopen = function () {
      backoff = 1000;
      document.body.setAttribute("data-ws", "open");
      setStatus("live", "live");
      scheduleRefresh();
    };
    ws.onmessage = function (m) {
      try {
        var ev = JSON.parse(m.data);
        if (ev.id) lastEventId = ev.id;
      } catch (e) { /* not ours to judge: re-read anyway */ }
      scheduleRefresh();
    };
    ws.onclose = function () {
      ws = null;
      document.body.setAttribute("data-ws", "closed");
      if (authFailed) return;
      setStatus("reconnecting", "reconnecting\u2026");
      scheduleRefresh(); /* also tells a refused token (401) */
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    };
  }

  function start() {
    tick();
    setInterval(tick, 1000);
    if (!token) {
      refuse("No token: open this page as /wallboard#token=<a token from agentd's tokens>.");
      return;
    }
    refresh();
    connect();
    setInterval(function () {
      if (!ws || ws.readyState !== WebSocket.OPEN) scheduleRefresh();
    }, POLL_MS);
  }

  start();
})();
