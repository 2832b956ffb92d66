"""Shared pieces of bench/faults.py and bench/isolation.py (Python 3, standard library only).

- processes: the quickstart binary (built once if missing), a private redis-server, workers;
- sign-in: POST /login as a form, keeping the `session_id` cookie;
- `Readers`: the authenticated load. Threads with keep-alive `http.client` connections send
  GET /dashboard at a paced rate and record, for every request, its start (time.monotonic()),
  its latency and its status (0 = no HTTP answer: refused, reset, timed out). wrk would give
  more throughput but no per-request timeline, and the fault claims are about what happened in
  a given window of time, so the readers are Python; a few hundred requests per second is
  plenty for that. wrk is used for the login storm in isolation.py, where only counts matter.
"""

import http.client
import math
import os
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "examples", "quickstart")
SECRET = "bench-secret-key-0123456789abcdef0123456789abcdef"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


_built = False


def quickstart_binary():
    """The release quickstart, built (or brought up to date: a stale binary measures old code)
    the first time it is asked for."""
    global _built
    if not _built:
        log("building the quickstart (release)...")
        subprocess.run(
            ["cargo", "build", "--release", "--example", "quickstart"], cwd=ROOT, check=True
        )
        _built = True
    return BINARY


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Redis ---------------------------------------------------------------------------------


def redis_cli(port, *args, check=True):
    out = subprocess.run(
        ["redis-cli", "-p", str(port), *map(str, args)],
        capture_output=True, text=True, errors="surrogateescape", timeout=10,
    )
    if check and out.returncode != 0:
        raise RuntimeError(f"redis-cli {args}: {out.stderr}")
    return out.stdout.strip()


def start_redis(port, directory, durable=True):
    """A private Redis. Durable: every acknowledged write is fsynced to the AOF, so SIGKILL
    loses nothing Redis said it kept; otherwise CI's kind (no persistence), for throughput.
    Returns the Popen once it answers PING."""
    persistence = ["--appendonly", "yes", "--appendfsync", "always"] if durable else ["--appendonly", "no"]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
         *persistence, "--save", ""],
        stdout=open(os.path.join(directory, "redis.log"), "a"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
        if r.stdout.strip() == "PONG":
            return proc
        time.sleep(0.01)
    raise RuntimeError(f"redis-server on {port} did not start")


def snapshot_keys(port):
    """{key: (type, pttl_ms, value)} for every key (value: a comparable dump of small types)."""
    keys = [k for k in redis_cli(port, "--scan").splitlines() if k]
    snap = {}
    for k in keys:
        kind = redis_cli(port, "TYPE", k)
        pttl = int(redis_cli(port, "PTTL", k) or -2)
        if kind == "string":
            value = redis_cli(port, "GET", k)
        elif kind == "hash":
            value = redis_cli(port, "HGETALL", k)
        else:
            value = None
        snap[k] = (kind, pttl, value)
    return snap


# --- workers -------------------------------------------------------------------------------


def worker_env(port, workdir, extra_env):
    """The environment of a quickstart worker on `port` with its users in `workdir`."""
    env = dict(os.environ)
    env.update({
        "CRUDAUTH_BIND": f"127.0.0.1:{port}",
        "SECRET_KEY": SECRET,
        "DATABASE_URL": f"sqlite://{os.path.join(workdir, 'users.db')}?mode=rwc",
        "CRUDAUTH_COOKIE_SECURE": "false",
        "RUST_LOG": "warn",
    })
    env.update(extra_env)
    return env


def start_server(argv, env, port, workdir, name):
    """Starts `argv` (its output in `workdir`/`name`.log) and returns the Popen once it answers
    GET /hello on `port`."""
    out = open(os.path.join(workdir, f"{name}.log"), "a")
    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited ({proc.returncode}); see {out.name}")
        try:
            if request(("127.0.0.1", port), "GET", "/hello")[0] == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not start; see {out.name}")


def start_worker(port, workdir, name, extra_env):
    """A quickstart worker on `port` (see `worker_env`)."""
    return start_server([quickstart_binary()], worker_env(port, workdir, extra_env), port,
                        workdir, name)


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def request(target, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection(*target, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.msg, data
    finally:
        conn.close()


FORM = {"content-type": "application/x-www-form-urlencoded"}


def set_cookies(msg):
    """The cookies an answer's headers (`msg`) set, by name: {name: value}."""
    cookies = {}
    for c in msg.get_all("Set-Cookie") or []:
        name, _, rest = c.partition("=")
        cookies[name.strip()] = rest.split(";", 1)[0]
    return cookies


def login(target, username, password):
    """(status, session_id cookie or None)."""
    body = urllib.parse.urlencode({"username": username, "password": password})
    status, msg, _ = request(target, "POST", "/login", body, FORM)
    return status, set_cookies(msg).get("session_id")


def add_readers(workdir, template, k):
    """K accounts `reader0`..: the quickstart keeps at most 5 sessions per user (the 6th
    sign-in ends the oldest), so K sessions need K accounts. Inserted straight into the users
    table with `template`'s password hash, so no hashing is spent on them."""
    db = sqlite3.connect(os.path.join(workdir, "users.db"))
    with db:
        for i in range(k):
            db.execute(
                "INSERT OR IGNORE INTO users (email, username, hashed_password, email_verified) "
                "SELECT ?, ?, hashed_password, 1 FROM users WHERE username = ?",
                (f"reader{i}@example.com", f"reader{i}", template))
    db.close()
    return [f"reader{i}" for i in range(k)]


def sign_in_many(targets, usernames, password):
    """One session per user name, alternating over the targets; their session_id cookies."""
    cookies = []
    for i, name in enumerate(usernames):
        status, cookie = login(targets[i % len(targets)], name, password)
        if status != 200 or not cookie:
            raise RuntimeError(f"sign-in of {name} answered {status}")
        cookies.append(cookie)
    return cookies


def dashboard(target, cookie):
    return request(target, "GET", "/dashboard", headers={"cookie": f"session_id={cookie}"})[0]


# --- the readers ---------------------------------------------------------------------------


class Readers:
    """GET /dashboard at `rate` requests/s in total, over `threads` threads, round-robin over
    `targets` with a random session cookie each time. `records` holds
    (start, latency, status, target index) for every request once `stop()` returns."""

    def __init__(self, targets, cookies, rate, threads=8, timeout=5.0, path="/dashboard"):
        self.targets, self.cookies, self.path = targets, cookies, path
        self.interval = threads / rate
        self.timeout = timeout
        self.n = threads
        self.running = False
        self.per_thread = [[] for _ in range(threads)]
        self.threads = []

    def start(self):
        self.running = True
        for i in range(self.n):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join()
        self.records = sorted(r for rs in self.per_thread for r in rs)
        return self.records

    def _run(self, idx):
        rng = random.Random(idx)
        conns = [None] * len(self.targets)
        out = self.per_thread[idx]
        # Threads start staggered so that requests spread evenly over each interval.
        nxt = time.monotonic() + self.interval * idx / self.n
        i = idx
        while self.running:
            now = time.monotonic()
            if nxt > now:
                time.sleep(nxt - now)
            nxt = max(nxt + self.interval, time.monotonic() - self.interval)
            w = i % len(self.targets)
            i += 1
            headers = {"cookie": f"session_id={rng.choice(self.cookies)}"}
            t0 = time.monotonic()
            status = 0
            try:
                if conns[w] is None:
                    conns[w] = http.client.HTTPConnection(*self.targets[w], timeout=self.timeout)
                conns[w].request("GET", self.path, headers=headers)
                resp = conns[w].getresponse()
                resp.read()
                status = resp.status
                if resp.will_close:
                    conns[w].close()
                    conns[w] = None
            except (OSError, http.client.HTTPException):
                if conns[w] is not None:
                    conns[w].close()
                conns[w] = None
            out.append((t0, time.monotonic() - t0, status, w))
        for c in conns:
            if c is not None:
                c.close()


def pct(values, q):
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s), max(1, math.ceil(q / 100 * len(s)))) - 1]


def ms(x):
    return "-" if x is None else f"{x * 1000:.1f}"
