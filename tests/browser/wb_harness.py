"""wb_harness - what the wallboard's browser tests share: free loopback ports,
child processes (killed at exit, logs kept in the run directory), a headless
Chromium through chromedriver, waiting for what the page shows, screenshots.

Binaries come from ARIQ_BUILD_DIR, the repository from ARIQ_SOURCE_DIR (both
set by ctest); screenshots go to the current directory (ctest runs the test in
its build directory) and their paths are printed."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SOURCE = os.environ.get("ARIQ_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("ARIQ_BUILD_DIR", os.path.join(SOURCE, "build"))
TOKEN = "wallboard-test-token-0123456789"


def log(msg):
    print("[wallboard] " + msg, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, fn, timeout=10.0, step=0.05):
    """Polls fn until it returns a true value (returned) or fails after timeout."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Exception as e:  # the page or a server not there yet
            last = e
        time.sleep(step)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class Procs:
    """Children started here; stop() ends each by its pid (TERM, then KILL)."""

    def __init__(self, tag):
        self.dir = tempfile.mkdtemp(prefix="ariq-%s-" % tag)
        self.children = []
        self.failed = False

    def start(self, name, argv, env=None):
        logf = open(os.path.join(self.dir, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, env=env,
                             stdin=subprocess.DEVNULL)
        self.children.append((name, p, logf))
        return p

    def stop(self):
        for name, p, logf in reversed(self.children):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            logf.close()
        if self.failed:
            log("logs kept in " + self.dir)
            for name, _, _ in self.children:
                path = os.path.join(self.dir, name + ".log")
                with open(path, errors="replace") as f:
                    tail = f.readlines()[-15:]
                log("---- last lines of %s:\n%s" % (path, "".join(tail)))
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def http(method, url, body=None, headers=None, timeout=5):
    """(status, parsed JSON or text) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, st = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, st = e.read(), e.code
    try:
        return st, json.loads(raw)
    except ValueError:
        return st, raw.decode(errors="replace")


def ws_handshake(port, query, headers=()):
    """The status code agentd answers a WebSocket upgrade of /api/v1/events
    with (101 accepted; 400, 401 refused). Raw socket: no client library."""
    lines = ["GET /api/v1/events%s HTTP/1.1" % query, "Host: 127.0.0.1:%d" % port,
             "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]
    lines += list(headers)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return int(buf.split(b" ", 2)[1]) if buf.startswith(b"HTTP/1.1 ") else -1


def browser():
    """A headless Chromium (--no-sandbox: tests may run as root)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1600,1000"):
        opts.add_argument(a)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    opts.binary_location = chromium
    drv = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    d = webdriver.Chrome(service=Service(drv), options=opts)
    d.set_page_load_timeout(15)
    d.set_script_timeout(10)
    return d


def text(d, css):
    """The text of the first element matching css, or None. Read in one
    script, since the page re-renders under a test's feet."""
    return d.execute_script(
        "var e = document.querySelector(arguments[0]);"
        "return e ? e.textContent.trim() : null;", css)


def screenshot(d, name):
    path = os.path.abspath(name + ".png")
    d.save_screenshot(path)
    log("screenshot " + path)
    return path


def open_page(d, url):
    """Loads url afresh (a change of fragment alone would not reload)."""
    d.get("about:blank")
    d.get(url)


def main(run):
    """Runs run() and exits 0, or 1 with the assertion that failed."""
    try:
        run()
    except AssertionError as e:
        log("FAILED: %s" % e)
        sys.exit(1)
    log("passed")
