#!/usr/bin/env python3
"""The events feed's fan-out: C WebSocket clients on agentd's /api/v1/events,
N entries XADDed into {NS}:events at R per second; prints "name: value unit"
lines: events per second delivered to every client, messages per second,
lag p50/p99/max (XADD time to receipt, one clock: this process), messages
lost, clients closed, agentd's peak RSS (VmHWM).

Usage: bench_events_fanout.py [clients=200] [events=2000] [rate=200]
(ARIQ_SOURCE_DIR / ARIQ_BUILD_DIR from ctest, else the paths around this file.)
The clients are one Python process (selectors): at high rates the receiving
side, not agentd, may be what is measured; see the receiver's CPU line.
"""
import base64
import os
import selectors
import shutil
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "api_conformance"))
import test_api_conformance as tac  # noqa: E402  (Redis, Procs, the token)


class Client:
    def __init__(self, port, idx):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall(("GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                        "Authorization: Bearer %s\r\n\r\n" % (key, tac.TOKEN)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = self.s.recv(4096)
            if not d:
                raise OSError("client %d: closed during the handshake" % idx)
            buf += d
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise OSError("client %d: %s" % (idx, head.split(b"\r\n")[0].decode()))
        self.s.setblocking(False)
        self.got = 0
        self.closed = False

    def feed(self, data, lags, now):
        b = self.buf + data
        off = 0
        n = len(b)
        while n - off >= 2:
            ln = b[off + 1] & 0x7F
            h = 2
            if ln == 126:
                if n - off < 4:
                    break
                ln = int.from_bytes(b[off + 2:off + 4], "big")
                h = 4
            elif ln == 127:
                if n - off < 10:
                    break
                ln = int.from_bytes(b[off + 2:off + 10], "big")
                h = 10
            if n - off < h + ln:
                break
            op = b[off] & 0x0F
            if op == 1:
                p = b[off + h:off + h + ln]
                i = p.find(b'"t":"')
                if i >= 0:
                    j = p.find(b'"', i + 5)
                    lags.append(now - int(p[i + 5:j]))
                    self.got += 1
            elif op == 8:
                self.closed = True
            off += h + ln
        self.buf = b[off:]


def main():
    nclients = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    nevents = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 200.0
    procs = tac.Procs()
    try:
        r = procs.start_redis()
        procs.start_agentd()
        clients = [Client(procs.port, i) for i in range(nclients)]
        sel = selectors.DefaultSelector()
        for c in clients:
            sel.register(c.s, selectors.EVENT_READ, c)
        time.sleep(0.3)  # every feed live
        key = tac.NS + ":events"
        done = threading.Event()
        t_first = []

        def writer():
            w = tac.Redis(procs.rport)
            t0 = time.monotonic()
            for k in range(nevents):
                due = t0 + k / rate
                d = due - time.monotonic()
                if d > 0:
                    time.sleep(d)
                us = time.time_ns() // 1000
                if not t_first:
                    t_first.append(time.monotonic())
                w("XADD", key, "MAXLEN", "~", 100000, "*", "event", "BENCH", "t", us)
            w.close()
            done.set()

        lags = []
        cpu0 = time.process_time()
        th = threading.Thread(target=writer, daemon=True)
        th.start()
        want = nevents * nclients
        deadline = None
        t_last = None
        while True:
            for k, _ in sel.select(timeout=0.2):
                c = k.data
                try:
                    d = c.s.recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    d = b""
                if not d:
                    c.closed = True
                    sel.unregister(c.s)
                    continue
                c.feed(d, lags, time.time_ns() // 1000)
            got = sum(c.got for c in clients)
            if got >= want:
                t_last = time.monotonic()
                break
            if done.is_set() and deadline is None:
                deadline = time.monotonic() + 10
            if deadline and time.monotonic() > deadline:
                break
            if all(c.closed for c in clients):
                break
        cpu = time.process_time() - cpu0
        t_last = t_last or time.monotonic()
        th.join(5)
        span = max(t_last - t_first[0], 1e-6) if t_first else 0
        hwm = "?"
        with open("/proc/%d/status" % procs.agentd.pid) as f:
            for ln in f:
                if ln.startswith("VmHWM:"):
                    hwm = ln.split()[1]
        lags.sort()

        def pct(p):
            return lags[min(len(lags) - 1, int(p * len(lags)))] / 1000.0 if lags else -1

        got = sum(c.got for c in clients)
        print("events_fanout_clients: %d clients" % nclients)
        print("events_fanout_events: %d events at %.0f/s" % (nevents, rate))
        print("events_fanout_delivered: %.0f events/s (to all %d clients)"
              % ((nevents if got >= want else got / nclients) / span, nclients))
        print("events_fanout_messages: %.0f messages/s" % (got / span))
        print("events_fanout_lag_p50: %.2f ms" % pct(0.50))
        print("events_fanout_lag_p99: %.2f ms" % pct(0.99))
        print("events_fanout_lag_max: %.2f ms" % (lags[-1] / 1000.0 if lags else -1))
        print("events_fanout_lost: %d messages" % (want - got))
        print("events_fanout_closed: %d clients" % sum(c.closed for c in clients))
        print("events_fanout_receiver_cpu: %.0f %% of one core" % (100 * cpu / span))
        print("agentd_rss_hwm: %s kB" % hwm)
        for c in clients:
            c.s.close()
        return 0 if got >= want else 1
    finally:
        procs.stop()
        shutil.rmtree(procs.dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
