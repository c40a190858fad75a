#!/usr/bin/env python3
"""agentd against its OpenAPI description (agentd/openapi.yaml).

Starts its own redis-server and agentd (free ports, a temp dir under the build
dir), writes the cluster's state through redis-schema/queue.lua itself (the
records are exactly what queued writes), plays the owning node of every party
(a thread answering {NS}:node:n1:cmds on each command's reply_to, as API.md's
command protocol says), then calls every route of the spec with good and bad
input. Each answer's status must be one the spec lists for that route (and the
one API.md says for that input), and its body must match the spec's schema for
that status. A route of the spec answering 404 "no such route" is missing; a
route in agentd's tables that the spec lacks is a failure too.

Usage: test_api_conformance.py  (ARIQ_SOURCE_DIR, ARIQ_BUILD_DIR from ctest;
else the paths around this file). Exit 0 only if every route passes.
"""
import base64
import copy
import glob
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("ARIQ_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("ARIQ_BUILD_DIR") or os.path.join(SRC, "build")
NS = "{ariq}"
NODE = "n1"
TOKEN = "conformance-token-0123456789"
WRONG = "wrong-token-0123456789abcdef"


def now_ms():
    return int(time.time() * 1000)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ---- a small RESP client (no python3-redis needed) ---------------------------------

class RedisError(Exception):
    pass


class Redis:
    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def close(self):
        self.f.close()
        self.sock.close()

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line:
            raise RedisError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            try:
                return data.decode()
            except UnicodeDecodeError:
                return data
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RedisError("bad reply %r" % line)


def pairs(flat):
    return {flat[i]: flat[i + 1] for i in range(0, len(flat or []), 2)}


class Queue:
    """queue.lua, called as queued calls it (shared/store/queue_store.c)."""

    def __init__(self, r):
        self.r = r
        with open(os.path.join(SRC, "redis-schema", "queue.lua")) as f:
            self.sha = r("SCRIPT", "LOAD", f.read())

    def op(self, name, key, *args):
        rep = self.r("EVALSHA", self.sha, 3, NS + ":seq", NS + ":events", NS + ":" + key,
                     name, now_ms(), NODE, 10000, *args)
        return pairs(rep)


# ---- processes ---------------------------------------------------------------------

class Procs:
    def __init__(self):
        base = os.path.join(BUILD, "tmp")
        os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="api_conformance-", dir=base)
        self.redis = self.agentd = None

    def start_redis(self):
        self.rport = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.rport), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=open(os.path.join(self.dir, "redis.log"), "w"), stderr=subprocess.STDOUT)
        for _ in range(500):
            try:
                r = Redis(self.rport, timeout=1)
                if r("PING") == "PONG":
                    return r
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def start_agentd(self):
        self.port = free_port()
        conf = os.path.join(self.dir, "agentd.conf")
        with open(conf, "w") as f:
            f.write("[general]\nport = %d\ntokens = other-token-abcdefghij, %s\n"
                    "redis_url = redis://127.0.0.1:%d/0\nnamespace = ariq\n"
                    "heartbeat_s = 300\nrate_per_s = 0\naction_timeout_ms = 3000\n"
                    "agentd_id = conformance\nsnapshot_ms = 50\n"
                    % (self.port, TOKEN, self.rport))
        self.log = os.path.join(self.dir, "agentd.log")
        self.agentd = subprocess.Popen([os.path.join(BUILD, "agentd", "agentd"), "-c", conf],
                                       stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline and self.agentd.poll() is None:
            try:
                st, _, body = request("GET", self.port, "/api/v1/health", auth=TOKEN)
                if st == 200 and json.loads(body)["events"]["reading"]:
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise RuntimeError("agentd not ready (log: %s)" % self.log)

    def stop(self):
        for p in (self.agentd, self.redis):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def request(method, port, path, auth=None, body=None, ctype="application/json", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = dict(headers or {})
    if auth:
        h["Authorization"] = "Bearer " + auth
    if body is not None:
        if isinstance(body, str):
            body = body.encode()
        if ctype:
            h["Content-Type"] = ctype
    elif method == "POST":
        body = b""
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, data


def ws_upgrade(port, path, auth=None, read_message=False):
    """A WebSocket handshake by hand: (status, headers, body or first message)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
           % (path, port, key))
    if auth:
        req += "Authorization: Bearer %s\r\n" % auth
    s.sendall((req + "\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else -1
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if status == 101:
        want = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        if hdrs.get("sec-websocket-accept") != want:
            s.close()
            return status, hdrs, b"BAD Sec-WebSocket-Accept"
        data = b""
        if read_message:
            data = ws_read_text(s, rest)
        s.close()
        return status, hdrs, data
    n = int(hdrs.get("content-length", "0") or 0)
    while len(rest) < n:
        d = s.recv(4096)
        if not d:
            break
        rest += d
    s.close()
    return status, hdrs, rest


def ws_read_text(s, buf):
    def need(n):
        nonlocal buf
        while len(buf) < n:
            d = s.recv(65536)
            if not d:
                raise OSError("closed")
            buf += d
    need(2)
    b1 = buf[1] & 0x7F
    off = 2
    if b1 == 126:
        need(4)
        b1 = int.from_bytes(buf[2:4], "big")
        off = 4
    elif b1 == 127:
        need(10)
        b1 = int.from_bytes(buf[2:10], "big")
        off = 10
    need(off + b1)
    return buf[off:off + b1]


# ---- the spec as JSON Schema ---------------------------------------------------------

def to_jsonschema(o):
    """OpenAPI 3.0 schema objects -> JSON Schema: nullable: true becomes
    anyOf [the schema, {type: null}]."""
    if isinstance(o, list):
        return [to_jsonschema(x) for x in o]
    if not isinstance(o, dict):
        return o
    d = {k: to_jsonschema(v) for k, v in o.items() if k != "nullable"}
    if o.get("nullable") is True:
        return {"anyOf": [d, {"type": "null"}]}
    return d


class Spec:
    def __init__(self, path):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        self.components = to_jsonschema(self.doc["components"])
        self.ops = {}  # (METHOD, path template) -> operation
        for p, item in self.doc["paths"].items():
            for m, op in item.items():
                if m in ("get", "post", "delete", "put", "patch"):
                    self.ops[(m.upper(), p)] = op

    def resolve(self, o):
        while isinstance(o, dict) and "$ref" in o:
            cur = self.doc
            for part in o["$ref"].lstrip("#/").split("/"):
                cur = cur[part]
            o = cur
        return o

    def response(self, key, status):
        op = self.ops[key]
        r = op["responses"].get(str(status))
        return None if r is None else self.resolve(r)

    def validate(self, schema, value):
        root = {"allOf": [to_jsonschema(schema)], "components": self.components}
        jsonschema.Draft7Validator(root).validate(value)


def match(template, path):
    """Segment by segment, as api.c's path_match: "{x}" matches one non-empty
    segment; "/wallboard/" is not "/wallboard"."""
    t = template.split("/")
    p = path.split("?")[0].split("/")
    return len(t) == len(p) and all(a == b or (a.startswith("{") and b) for a, b in zip(t, p))


# ---- the owning node ---------------------------------------------------------------

AGENT_STATE = {"free": "waiting", "paired": "connecting", "talking": "talking",
               "wrapup": "wrapup", "paused": "paused"}


class Node(threading.Thread):
    """Plays queued on node n1: reads its command stream, does what the
    command says through queue.lua, answers on reply_to."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.r = Redis(port, timeout=5)
        self.q = Queue(self.r)
        self.stop = False
        self.seen = []
        self.files = {}
        self.nrec = 0

    def run(self):
        last = "0-0"
        key = "%s:node:%s:cmds" % (NS, NODE)
        while not self.stop:
            try:
                rep = self.r("XREAD", "COUNT", 10, "BLOCK", 200, "STREAMS", key, last)
            except (RedisError, OSError) as e:
                print("node: %s" % e)
                return
            for _, entries in rep or []:
                for eid, flat in entries:
                    last = eid
                    c = pairs(flat)
                    self.seen.append(c)
                    try:
                        st, err, body = self.handle(c)
                    except RedisError as e:
                        st, err, body = 500, str(e), {}
                    if c.get("reply_to"):
                        self.r("XADD", c["reply_to"], "MAXLEN", "~", 1000, "*", "req",
                               c.get("req", ""), "status", st, "error", err, "body",
                               json.dumps(body))
                        self.r("PEXPIRE", c["reply_to"], 60000)

    def agent(self, a):
        return pairs(self.r("HGETALL", "%s:agent:%s" % (NS, a)))

    def call(self, c):
        return pairs(self.r("HGETALL", "%s:call:%s" % (NS, c)))

    def handle(self, c):
        cmd = c.get("cmd")
        if cmd in ("agent_pause", "agent_unpause", "agent_logoff"):
            a = c.get("agent", "")
            h = self.agent(a)
            if not h:
                return 404, "no such agent", {}
            if cmd == "agent_pause":
                self.q.op("agent_pause", "agent:" + a, a, 1, c.get("reason", ""), 0, 1)
                h = self.agent(a)
                return 200, "", {"agent": a, "state": AGENT_STATE.get(h["state"], "paused"),
                                 "paused": True, "pause_reason": h.get("pause_reason", "")}
            if cmd == "agent_unpause":
                if h.get("paused") != "1" and h.get("state") != "paused":
                    return 409, "agent %s is not paused" % a, {}
                self.q.op("agent_pause", "agent:" + a, a, 0, "", 0, 1)
                h = self.agent(a)
                return 200, "", {"agent": a, "state": AGENT_STATE.get(h["state"], "waiting"),
                                 "paused": False}
            self.q.op("agent_logoff", "agent:" + a, a, "agentd", 0, 1)
            return 200, "", {"agent": a, "logged_off": True}
        if cmd in ("call_priority", "call_hangup", "rec"):
            cid = c.get("callid", "")
            h = self.call(cid)
            if not h:
                return 404, "no such call", {}
            if cmd == "call_priority":
                if h.get("state") != "waiting":
                    return 409, "call %s is not waiting" % cid, {}
                pos = []
                for qn in h["queues"].split("&"):
                    rk = self.r("ZRANK", "%s:queue:%s:callers" % (NS, qn), cid)
                    pos.append({"queue": qn, "position": (rk or 0) + 1})
                return 200, "", {"callid": cid, "priority": int(c.get("priority", "0")),
                                 "positions": pos}
            if cmd == "call_hangup":
                self.q.op("leave", "call:" + cid, cid, "hangup", "caller", 0, 0, 1)
                return 200, "", {"callid": cid, "hungup": True}
            pid = h.get("pairing", "")
            if h.get("state") != "bridged" or not pid:
                return 409, "call %s is not talking" % cid, {}
            p = pairs(self.r("HGETALL", "%s:pairing:%s" % (NS, pid)))
            cur = p.get("rec", "")
            rs = pairs(self.r("HGETALL", "%s:recording:%s" % (NS, cur))) if cur else {}
            act = c.get("action")
            running = rs.get("state") in ("recording", "paused")
            if act == "start":
                if running:
                    return 409, "already recording", {}
                self.nrec += 1
                name = "rec-live-%d" % self.nrec
                self.q.op("rec", "recording:" + name, "start", name, pid, "/rec/%s.wav" % name, 0)
                return 200, "", {"callid": cid, "recording": {"name": name, "state": "recording"}}
            if not running:
                return 409, "not recording", {}
            try:
                rep = self.q.op("rec", "recording:" + cur, act, cur, "", "", 0)
            except RedisError as e:
                return 409, str(e), {}
            return 200, "", {"callid": cid, "recording": {"name": cur, "state": rep["state"]}}
        if cmd in ("rec_delete", "rec_fetch"):
            name = c.get("name", "")
            rs = pairs(self.r("HGETALL", "%s:recording:%s" % (NS, name)))
            if not rs:
                return 404, "no such recording", {}
            if rs.get("state") in ("recording", "paused"):
                return 409, "recording %s is running" % name, {}
            if cmd == "rec_delete":
                self.r("DEL", "%s:recording:%s" % (NS, name))
                self.r("ZREM", NS + ":recordings", name)
                return 200, "", {"name": name, "deleted": True}
            data = b"RIFF" + os.urandom(60)
            self.files[c.get("req", "")] = data
            self.r("SET", "%s:recfile:%s" % (NS, c.get("req", "")), data, "PX", 60000)
            return 200, "", {"content_type": "audio/wav"}
        return 500, "unknown command %r" % cmd, {}


# ---- the state -----------------------------------------------------------------------

def populate(r):
    q = Queue(r)
    r("SET", "%s:node:%s:heartbeat" % (NS, NODE), now_ms(), "PX", 3600000)
    r("SADD", NS + ":nodes", NODE)
    r("SADD", NS + ":queues", "sales", "support", "billing")
    # c1 waits in sales (with c3); c2 talks to a1 in support; a2 paused in
    # sales; a3, a4 free in billing (no callers there: nothing pairs).
    q.op("enter", "call:c1", "c1", "chan-c1", 0, "100", "Alice", "sales", 0, 1)
    q.op("enter", "call:c3", "c3", "chan-c3", 5, "300", "Carol", "sales", 0, 1)
    q.op("enter", "call:c2", "c2", "chan-c2", 0, "200", "Bob", "support", 0, 1)
    q.op("agent_login", "agent:a1", "a1", "chan-a1", "PJSIP/a1-0001", "support", 0, 1)
    rep = r("EVALSHA", q.sha, 3, NS + ":seq", NS + ":events", NS + ":queue:support:callers",
            "pair", now_ms(), NODE, 10000, "queue", "support", 1)
    plist = pairs(rep)["pairings"]
    if not plist:
        raise RuntimeError("pair made no pairing")
    pid = pairs(plist[0])["pairing"]
    q.op("bridged", "pairing:" + pid, pid, "both")
    q.op("agent_login", "agent:a2", "a2", "chan-a2", "PJSIP/a2-0001", "sales", 0, 1)
    q.op("agent_pause", "agent:a2", "a2", 1, "lunch", 0, 1)
    q.op("agent_login", "agent:a3", "a3", "chan-a3", "PJSIP/a3-0001", "billing", 0, 1)
    q.op("agent_login", "agent:a4", "a4", "chan-a4", "PJSIP/a4-0001", "billing", 0, 1)
    q.op("rec", "recording:rec1", "start", "rec1", pid, "/rec/rec1.wav", 0)
    q.op("rec", "recording:rec1", "stop", "rec1", "", "", 0)
    q.op("rec", "recording:rec2", "start", "rec2", pid, "/rec/rec2.wav", 0)
    return pid


# ---- the cases ----------------------------------------------------------------------

def cases():
    """(method, path, auth, body, expected status, note). Run in this order:
    the actions change the state later cases see (rec2 is stopped by the
    recording actions, which start rec-live-1: the node's first name)."""
    T, W = TOKEN, WRONG
    c = []
    for p in ("/api/v1/health", "/api/v1/queues", "/api/v1/agents", "/api/v1/calls",
              "/api/v1/recordings", "/metrics"):
        c += [("GET", p, T, None, 200, "good"),
              ("GET", p, None, None, 401, "no token"),
              ("GET", p, W, None, 401, "wrong token"),
              ("GET", p + "?bogus=1", T, None, 400, "unknown query parameter")]
    c += [("GET", "/api/v1/recordings?limit=1", T, None, 200, "limit=1"),
          ("GET", "/api/v1/recordings?limit=0", T, None, 400, "limit out of range"),
          ("GET", "/api/v1/recordings?limit=1001", T, None, 400, "limit out of range"),
          ("GET", "/api/v1/recordings?limit=x", T, None, 400, "limit not a number")]
    for p, good, bad in (("/api/v1/queues/", "sales", "nosuchqueue"),
                         ("/api/v1/agents/", "a1", "nosuchagent"),
                         ("/api/v1/calls/", "c2", "nosuchcall"),
                         ("/api/v1/recordings/", "rec1", "nosuchrec")):
        c += [("GET", p + good, T, None, 200, "good"),
              ("GET", p + bad, T, None, 404, "unknown"),
              ("GET", p + good, None, None, 401, "no token"),
              ("GET", p + good, W, None, 401, "wrong token"),
              ("GET", p + good + "?bogus=1", T, None, 400, "unknown query parameter")]
    c += [("GET", "/api/v1/queues/billing", T, None, 200, "a queue without callers"),
          ("GET", "/api/v1/agents/a2", T, None, 200, "paused agent"),
          ("GET", "/api/v1/calls/c1", T, None, 200, "waiting caller"),
          ("GET", "/api/v1/recordings/rec2", T, None, 200, "running recording")]
    # actions
    ag = "/api/v1/agents/"
    c += [("POST", ag + "a3/pause", T, '{"reason": "lunch"}', 200, "good"),
          ("POST", ag + "a3/pause", T, '{"reason": "coffee"}', 200, "again: new reason"),
          ("POST", ag + "a1/pause", T, "{}", 200, "busy agent, no reason"),
          ("POST", ag + "a3/pause", None, "{}", 401, "no token"),
          ("POST", ag + "a3/pause", W, "{}", 401, "wrong token"),
          ("POST", ag + "a3/pause", T, '{"reason": ', 400, "malformed JSON"),
          ("POST", ag + "a3/pause", T, '{"bogus": 1}', 400, "unknown field"),
          ("POST", ag + "a3/pause", T, '{"reason": 5}', 400, "reason not a string"),
          ("POST", ag + "a3/pause", T, '{"reason": "a|b"}', 400, "reason with |"),
          ("POST", ag + "a3/pause", T, json.dumps({"reason": "x" * 129}), 400, "reason too long"),
          ("POST", ag + "a3/pause", T, "[]", 400, "not an object"),
          ("POST", ag + "nosuchagent/pause", T, "{}", 404, "unknown agent"),
          ("POST", ag + "a3/unpause", T, "{}", 200, "good"),
          ("POST", ag + "a3/unpause", T, "", 409, "not paused (empty body is {})"),
          ("POST", ag + "a3/unpause", None, "{}", 401, "no token"),
          ("POST", ag + "a3/unpause", W, "{}", 401, "wrong token"),
          ("POST", ag + "a3/unpause", T, "{", 400, "malformed JSON"),
          ("POST", ag + "a3/unpause", T, '{"bogus": true}', 400, "unknown field"),
          ("POST", ag + "nosuchagent/unpause", T, "{}", 404, "unknown agent"),
          ("POST", ag + "a4/logoff", None, "{}", 401, "no token"),
          ("POST", ag + "a4/logoff", W, "{}", 401, "wrong token"),
          ("POST", ag + "a4/logoff", T, "{,}", 400, "malformed JSON"),
          ("POST", ag + "a4/logoff", T, '{"bogus": 1}', 400, "unknown field"),
          ("POST", ag + "nosuchagent/logoff", T, "{}", 404, "unknown agent"),
          ("POST", ag + "a4/logoff", T, "{}", 200, "good")]
    ca = "/api/v1/calls/"
    c += [("POST", ca + "c1/priority", T, '{"priority": 10}', 200, "good"),
          ("POST", ca + "c2/priority", T, '{"priority": 10}', 409, "not waiting"),
          ("POST", ca + "c1/priority", None, '{"priority": 10}', 401, "no token"),
          ("POST", ca + "c1/priority", W, '{"priority": 10}', 401, "wrong token"),
          ("POST", ca + "c1/priority", T, '{"priority": ', 400, "malformed JSON"),
          ("POST", ca + "c1/priority", T, '{"priority": 1, "x": 1}', 400, "unknown field"),
          ("POST", ca + "c1/priority", T, "{}", 400, "priority missing"),
          ("POST", ca + "c1/priority", T, '{"priority": 1001}', 400, "out of range"),
          ("POST", ca + "c1/priority", T, '{"priority": "5"}', 400, "wrong type"),
          ("POST", ca + "nosuchcall/priority", T, '{"priority": 1}', 404, "unknown call")]
    c += [("POST", ca + "c2/recording", T, '{"action": "start"}', 409, "start while recording"),
          ("POST", ca + "c2/recording", T, '{"action": "pause"}', 200, "pause"),
          ("POST", ca + "c2/recording", T, '{"action": "unpause"}', 200, "unpause"),
          ("POST", ca + "c2/recording", T, '{"action": "stop"}', 200, "stop"),
          ("POST", ca + "c2/recording", T, '{"action": "stop"}', 409, "stop while not recording"),
          ("POST", ca + "c2/recording", T, '{"action": "start"}', 200, "start"),
          ("POST", ca + "c1/recording", T, '{"action": "start"}', 409, "caller not talking"),
          ("POST", ca + "c2/recording", None, '{"action": "stop"}', 401, "no token"),
          ("POST", ca + "c2/recording", W, '{"action": "stop"}', 401, "wrong token"),
          ("POST", ca + "c2/recording", T, '{"action"', 400, "malformed JSON"),
          ("POST", ca + "c2/recording", T, '{"action": "stop", "y": 2}', 400, "unknown field"),
          ("POST", ca + "c2/recording", T, '{"action": "rewind"}', 400, "bad action"),
          ("POST", ca + "c2/recording", T, "{}", 400, "action missing"),
          ("POST", ca + "nosuchcall/recording", T, '{"action": "stop"}', 404, "unknown call")]
    re_ = "/api/v1/recordings/"
    c += [("GET", re_ + "rec1/file", T, None, 200, "good"),
          ("GET", re_ + "rec-live-1/file", T, None, 409, "still recording"),
          ("GET", re_ + "rec1/file", None, None, 401, "no token"),
          ("GET", re_ + "rec1/file", W, None, 401, "wrong token"),
          ("GET", re_ + "rec1/file?bogus=1", T, None, 400, "unknown query parameter"),
          ("GET", re_ + "nosuchrec/file", T, None, 404, "unknown recording"),
          ("DELETE", re_ + "rec-live-1", T, None, 409, "still recording"),
          ("DELETE", re_ + "rec2", T, None, 200, "stored (stopped above)"),
          ("DELETE", re_ + "rec1", None, None, 401, "no token"),
          ("DELETE", re_ + "rec1", W, None, 401, "wrong token"),
          ("DELETE", re_ + "rec1?bogus=1", T, None, 400, "unknown query parameter"),
          ("DELETE", re_ + "nosuchrec", T, None, 404, "unknown recording"),
          ("DELETE", re_ + "rec1", T, None, 200, "good"),
          ("GET", re_ + "rec1", T, None, 404, "deleted")]
    c += [("POST", ca + "c1/hangup", None, "{}", 401, "no token"),
          ("POST", ca + "c1/hangup", W, "{}", 401, "wrong token"),
          ("POST", ca + "c1/hangup", T, "{", 400, "malformed JSON"),
          ("POST", ca + "c1/hangup", T, '{"now": true}', 400, "unknown field"),
          ("POST", ca + "nosuchcall/hangup", T, "{}", 404, "unknown call"),
          ("POST", ca + "c1/hangup", T, "{}", 200, "good (waiting)"),
          ("POST", ca + "c2/hangup", T, "", 200, "good (talking, empty body)")]
    c += [("GET", "/wallboard", None, None, 200, "public"),
          ("GET", "/wallboard", W, None, 200, "public, any token"),
          ("GET", "/wallboard/", None, None, 200, "public"),
          ("GET", "/wallboard?bogus=1", None, None, 400, "unknown query parameter"),
          ("GET", "/wallboard/nosuchasset.js", T, None, 404, "unknown asset"),
          ("GET", "/wallboard/nosuchasset.js", None, None, 401,
           "unknown asset, no token (unknown paths are authenticated)")]
    return c


def wallboard_assets(page):
    """The assets the page links (/wallboard/<asset>)."""
    return sorted(set(re.findall(r'(?:src|href)="(?:/wallboard/|\./)?([A-Za-z0-9._-]+\.(?:js|css))"',
                                 page)))


def route_tables():
    """(METHOD, path template with {}) of every entry in agentd's route tables."""
    out = set()
    for f in glob.glob(os.path.join(SRC, "agentd", "*.c")):
        with open(f) as fh:
            for m, p in re.findall(r'\{\s*"(GET|POST|PUT|DELETE|PATCH|HEAD)"\s*,\s*"(/[^"]*)"',
                                   fh.read()):
                out.add((m, re.sub(r"\{[^}]*\}", "{}", p)))
    return out


class Checker:
    def __init__(self, spec, port):
        self.spec, self.port = spec, port
        self.results = {k: [] for k in spec.ops}  # key -> [(ok, text)]
        self.missing = set()

    def find(self, method, path):
        for key in self.spec.ops:
            if key[0] == method and match(key[1], path):
                # a literal template wins over a {param} one (/wallboard/x vs ...)
                return key
        return None

    def check(self, method, path, auth, body, want, note, got=None):
        key = self.find(method, path)
        if key is None:
            print("INTERNAL: no spec route for %s %s" % (method, path))
            return None
        try:
            st, hdrs, data = got or request(method, self.port, path, auth=auth, body=body)
        except OSError as e:
            self.results[key].append((False, "%s %s [%s]: %s" % (method, path, note, e)))
            return None
        errs = []
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        # an unknown wallboard asset is no route: its 404 is the one wanted
        if st == 404 and "no such route" in text and "unknown asset" not in note:
            self.missing.add(key)
            errs.append("404 no such route (not implemented)")
        elif st != want:
            errs.append("status %d, want %d (%s)" % (st, want, text[:160]))
        resp = self.spec.response(key, st)
        if resp is None:
            errs.append("status %d not in the spec for this route" % st)
        elif st != 101:
            errs += self.check_body(resp, hdrs, data)
        ok = not errs
        self.results[key].append((ok, "%s %s [%s] -> %d%s" % (
            method, path, note, st, "" if ok else ": " + "; ".join(errs))))
        return st, hdrs, data

    def check_body(self, resp, hdrs, data):
        content = resp.get("content") or {}
        if not content:
            return []
        ctype = hdrs.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in content:
            return ["content-type %r not in %s" % (ctype, sorted(content))]
        schema = content[ctype].get("schema")
        if ctype != "application/json":
            return []
        try:
            v = json.loads(data)
        except ValueError as e:
            return ["body is not JSON: %s" % e]
        try:
            self.spec.validate(schema, v)
        except jsonschema.ValidationError as e:
            return ["schema: %s at %s" % (e.message[:200], "/".join(map(str, e.absolute_path)))]
        return []


def main():
    spec = Spec(os.path.join(SRC, "agentd", "openapi.yaml"))
    procs = Procs()
    node = None
    failed = False
    try:
        r = procs.start_redis()
        populate(r)
        procs.start_agentd()
        node = Node(procs.rport)
        node.start()
        time.sleep(0.2)  # a snapshot that has the state
        ck = Checker(spec, procs.port)

        # the events upgrade (WebSocket): before the actions, so from=0 has entries
        ev = "/api/v1/events"
        tok = "?access_token=" + TOKEN
        for path, auth, want, note, msg in (
                (ev, TOKEN, 101, "bearer header", False),
                (ev + tok, None, 101, "access_token", False),
                (ev + "?from=0", TOKEN, 101, "from=0: the retained stream", True),
                (ev + "?from=0&access_token=" + TOKEN, None, 101, "from=0 + access_token", True),
                (ev, None, 401, "no token", False),
                (ev + "?access_token=" + WRONG, None, 401, "wrong access_token", False),
                (ev, WRONG, 401, "wrong token", False),
                (ev + "?from=garbage", TOKEN, 400, "bad from", False),
                (ev + "?bogus=1", TOKEN, 400, "unknown query parameter", False)):
            try:
                got = ws_upgrade(procs.port, path, auth, read_message=msg)
            except OSError as e:
                got = (-1, {}, str(e).encode())
            res = ck.check("GET", path, auth, None, want, "upgrade, " + note, got=got)
            if res and res[0] == 101 and msg:
                try:
                    m = json.loads(got[2])
                    assert isinstance(m.get("id"), str) and isinstance(m.get("event"), str)
                except (ValueError, AssertionError):
                    ck.results[("GET", ev)].append(
                        (False, "GET %s: first message %r is not an event" % (path, got[2][:100])))
        ck.check("GET", ev, TOKEN, None, 400, "plain GET, no upgrade")

        for method, path, auth, body, want, note in cases():
            res = ck.check(method, path, auth, body, want, note)
            if res and res[0] == 200 and path == "/api/v1/recordings/rec1/file":
                fetched = [d for d in node.files.values() if d == res[2]]
                if not fetched:
                    ck.results[("GET", "/api/v1/recordings/{name}/file")].append(
                        (False, "the file served is not the node's"))
            if res and res[0] == 200 and path == "/wallboard":
                for a in wallboard_assets(res[2].decode("utf-8", "replace")):
                    ck.check("GET", "/wallboard/" + a, None, None, 200, "linked asset")
            if res and res[0] == 200 and path == "/metrics":
                txt = res[2].decode()
                bad = [ln for ln in txt.splitlines() if ln and not ln.startswith("#") and
                       not re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEInfa]+$', ln)]
                if bad or "# TYPE ariq_" not in txt:
                    ck.results[("GET", "/metrics")].append(
                        (False, "not Prometheus text: %r" % (bad[:2] or txt[:80])))

        # routes agentd serves that the spec lacks, and the other way round
        served = route_tables()
        described = {(m, re.sub(r"\{[^}]*\}", "{}", p)) for m, p in spec.ops}
        extra = sorted((m, p) for m, p in served
                       if (m, p) not in described and
                       not any(k[0] == m and match(k[1], p) for k in spec.ops))
        for m, p in extra:
            print("FAIL %-6s %-36s served by agentd (route table) but not in openapi.yaml" % (m, p))
            failed = True

        # the summary
        npass = 0
        for key in sorted(spec.ops, key=lambda k: (k[1], k[0])):
            rs = ck.results[key]
            tabled = (key[0], re.sub(r"\{[^}]*\}", "{}", key[1])) in served or \
                key[1] == "/api/v1/events" or \
                any(m == key[0] and match(key[1], p) for m, p in served)
            if not rs:
                verdict = "UNTESTED"
            elif key in ck.missing:
                verdict = "MISSING"
            elif all(ok for ok, _ in rs):
                verdict = "PASS"
            else:
                verdict = "FAIL"
            npass += verdict == "PASS"
            failed |= verdict != "PASS"
            print("%-8s %-6s %-34s %d/%d cases%s" % (
                verdict, key[0], key[1], sum(ok for ok, _ in rs), len(rs),
                "" if tabled else " (not in agentd's route tables)"))
            if verdict in ("FAIL", "UNTESTED"):
                for ok, text in rs:
                    if not ok:
                        print("           %s" % text)
        print("routes: %d of %d pass; %d missing; %d served but not described"
              % (npass, len(spec.ops), len(ck.missing), len(extra)))
        print("node: %d commands answered" % len(node.seen))
    except Exception as e:  # noqa: BLE001 - a setup failure fails the test
        print("ERROR: %s: %s" % (type(e).__name__, e))
        failed = True
    finally:
        if node:
            node.stop = True
            node.join(2)
        procs.stop()
    if failed:
        print("agentd log: %s" % getattr(procs, "log", "-"))
    else:
        shutil.rmtree(procs.dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
