#!/usr/bin/env python3
"""The side-by-side HTTP benchmark: the quickstart's authenticated GET /dashboard against what
a team would run instead (bench/peers: bare axum, tower-sessions + axum-login, the one-GETEX
Redis floor), loaded with wrk.

    python3 bench/side_by_side.py [--redis] [--bearer] [--seconds 6] [--rounds 3] [--connections 32]

memory (default): bare axum, the glue on tower-sessions' MemoryStore, the quickstart on its
memory stores. --redis: the floor, the glue on tower-sessions-redis-store, the quickstart on
Redis, all on one private Redis started for the run (no persistence); it also reports Redis
commands per request and the bytes each stack keeps per session (MEMORY USAGE). --bearer: the
quickstart with a bearer token (no store read at all) against bare axum.

Servers are loaded in turns (A B C A B C ...), so the machine's drift hits all alike; the
medians and their ratios are printed. On a shared two-core machine the load generator and the
server compete for the cores: compare ratios within one run, not figures across runs.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadlib as L  # noqa: E402

PEERS_DIR = os.path.join(L.ROOT, "bench", "peers")
PEERS = os.path.join(PEERS_DIR, "target", "release", "crudauth-bench-peers")
ADMIN = ("bench", "bench@example.com", "bench-password-1")


class Server:
    """A server under test on its own port, and the credential header its requests carry."""

    def __init__(self, name, port, argv, env):
        self.name, self.port, self.argv, self.env = name, port, argv, env
        self.proc = None
        self.header = None

    def start(self, workdir):
        self.proc = L.start_server(self.argv, self.env, self.port, workdir,
                                   self.name.replace(" ", "_"))

    @property
    def target(self):
        return ("127.0.0.1", self.port)

    def sign_in(self, username, password="", bearer=False):
        """Signs in once (`/token` for a bearer token, else `/login` for cookies) and keeps the
        credential for the load."""
        body = urllib.parse.urlencode({"username": username, "password": password})
        status, msg, data = L.request(self.target, "POST", "/token" if bearer else "/login",
                                      body, L.FORM)
        cookies = [c.split(";", 1)[0] for c in msg.get_all("Set-Cookie") or []]
        if status != 200 or not (bearer or cookies):
            raise RuntimeError(f"{self.name}: sign-in answered {status}")
        self.header = (f"Authorization: Bearer {json.loads(data)['access_token']}" if bearer
                       else "Cookie: " + "; ".join(cookies))
        # The credential must really authenticate, or the figures measure 401s.
        status = L.request(self.target, "GET", "/dashboard",
                           headers=dict([self.header.split(": ", 1)]))[0]
        if status != 200:
            raise RuntimeError(f"{self.name}: /dashboard answered {status} when signed in")

    def stop(self):
        L.stop(self.proc)


def peer(name, mode, *args):
    """A server of bench/peers."""
    port = L.free_port()
    return Server(name, port, [PEERS, mode, str(port), *args], dict(os.environ, RUST_LOG="warn"))


def quickstart(name, workdir, extra_env):
    """The quickstart, with the bench's admin account."""
    port = L.free_port()
    env = L.worker_env(port, workdir, {"CRUDAUTH_ADMIN": ":".join(ADMIN), **extra_env})
    return Server(name, port, [L.BINARY], env)


def wrk(server, seconds, connections):
    """(requests/s, p99 ms) of GET /dashboard; any non-2xx answer fails the run."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", server.header,
         f"http://127.0.0.1:{server.port}/dashboard"],
        capture_output=True, text=True, check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{server.name}: non-2xx answers under load:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def redis_calls(port):
    """Every command Redis has served so far (INFO commandstats)."""
    stats = L.redis_cli(port, "INFO", "commandstats")
    return sum(int(n) for n in re.findall(r"calls=(\d+)", stats))


def memory_usage(port, keys):
    """The bytes Redis holds for `keys` (MEMORY USAGE, exact)."""
    return sum(int(L.redis_cli(port, "MEMORY", "USAGE", k, "SAMPLES", "0") or 0) for k in keys)


def build():
    L.quickstart_binary()
    L.log("building bench/peers (release)...")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=PEERS_DIR, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis", action="store_true")
    ap.add_argument("--bearer", action="store_true")
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    a = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    build()
    work = tempfile.mkdtemp(prefix="crudauth-bench-")
    redis = None
    rport = L.free_port()
    if a.redis:
        redis = L.start_redis(rport, work, durable=False)
        url = f"redis://127.0.0.1:{rport}"
        servers = [peer("floor", "floor", url),
                   peer("tower-sessions + axum-login", "glue", url),
                   quickstart("crudauth-rs", work, {"REDIS_URL": url})]
    elif a.bearer:
        servers = [peer("bare axum", "bare"), quickstart("crudauth-rs (bearer)", work, {})]
    else:
        servers = [peer("bare axum", "bare"),
                   peer("tower-sessions + axum-login", "glue"),
                   quickstart("crudauth-rs", work, {})]
    baseline, ours = servers[0], servers[-1]
    figures = {s.name: [] for s in servers}
    try:
        for s in servers:
            s.start(work)
            if s is ours:
                s.sign_in(ADMIN[0], ADMIN[2], bearer=a.bearer)
            else:
                s.sign_in("user1")
        sizes = {}
        if a.redis:
            # One session each: the glue's key (tower-sessions-redis-store keys a session by
            # its bare id), the quickstart's record and its user's session index.
            glue_keys = [k for k in L.redis_cli(rport, "--scan").splitlines()
                         if k and not k.startswith("crudauth")]
            sizes["tower-sessions + axum-login"] = (memory_usage(rport, glue_keys), len(glue_keys))
            ours_keys = [k for k in L.redis_cli(rport, "--scan", "--pattern", "crudauth:[su]:*").splitlines() if k]
            sizes["crudauth-rs"] = (memory_usage(rport, ours_keys), len(ours_keys))
        calls = []
        for r in range(a.rounds):
            for s in servers:
                before = redis_calls(rport) if a.redis and s is ours else None
                rps, p99 = wrk(s, a.seconds, a.connections)
                if before is not None:
                    calls.append((redis_calls(rport) - before - 1) / (rps * a.seconds))
                figures[s.name].append((rps, p99))
                L.log(f"round {r + 1}: {s.name}: {rps:,.0f} req/s, p99 {p99:.2f} ms")
    finally:
        for s in servers:
            s.stop()
        L.stop(redis)
    print(f"\n{'server':32} {'req/s (median)':>15} {'p99 ms':>8} {'vs ' + baseline.name:>14}")
    base = statistics.median(r for r, _ in figures[baseline.name])
    for s in servers:
        rps = statistics.median(r for r, _ in figures[s.name])
        p99 = statistics.median(p for _, p in figures[s.name])
        print(f"{s.name:32} {rps:>15,.0f} {p99:>8.2f} {rps / base:>14.2f}")
    if len(servers) == 3:
        glue = statistics.median(r for r, _ in figures[servers[1].name])
        mine = statistics.median(r for r, _ in figures[ours.name])
        print(f"crudauth-rs / {servers[1].name}: {mine / glue:.2f}")
    if calls:
        print(f"Redis commands per authenticated GET (crudauth-rs): {statistics.median(calls):.2f}")
    for name, (size, keys) in sizes.items():
        print(f"bytes per session in Redis, {name}: {size:.0f} (MEMORY USAGE, {keys} keys)")
    if a.redis and sizes["tower-sessions + axum-login"][0]:
        ratio = sizes["crudauth-rs"][0] / sizes["tower-sessions + axum-login"][0]
        print(f"crudauth-rs / tower-sessions-redis-store, bytes per session: {ratio:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
