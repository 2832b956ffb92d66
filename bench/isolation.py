#!/usr/bin/env python3
"""Isolation: a login storm at 5 × the hash pool's capacity must not hurt signed-in readers.

One quickstart worker (in-memory stores), K signed-in sessions. The readers (bench/loadlib.py)
send GET /dashboard at a modest steady rate; their p50/p99 are measured idle, then while wrk
keeps 5 × the hash pool's capacity of connections POSTing correct-password /login (the pool's
default: one hashing slot per core but one, at least one, + 16 waiting per slot; on two cores
1 + 16 = 17 in flight, so 85 connections). Claim: the storm at most
doubles the readers' p99; the storm itself gets 503 (Busy) past the pool, some 200s.

The storm comes from one address (127.0.0.1) for one account. With crudauth's lockout (5
attempts per address per 60 s, every attempt counted, successful or not, before any hashing)
the sixth login in flight locks the address and the storm becomes 429s that never reach the
pool, so by default the worker runs with CRUDAUTH_LOCKOUT_MAX_ATTEMPTS=4000000000;
--default-lockout runs it with the default to show that case.

Exit status 1 if the ratio claim fails. Usage: python3 bench/isolation.py [--connections N]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadlib as L  # noqa: E402

PASSWORD = "correct horse battery staple"

LUA = r"""
wrk.method = "POST"
wrk.body = "username=bench&password=correct+horse+battery+staple"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("counts")) do total[s] = (total[s] or 0) + n end
  end
  for s, n in pairs(total) do io.write(string.format("STATUS %d %d\n", s, n)) end
end
"""


def pool_capacity():
    """The default hash pool's capacity on this machine (crudauth-core's Passwords): the
    hashing slots (every core but one, at least one) and 16 waiting per slot."""
    slots = max(1, (os.cpu_count() or 1) - 1)
    return slots + 16 * slots


def cpu_seconds(pid):
    """User + system CPU time of a process (Linux /proc), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--rate", type=float, default=50, help="reader GETs per second")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--idle", type=float, default=10)
    ap.add_argument("--storm", type=float, default=15)
    ap.add_argument("--connections", type=int, default=5 * pool_capacity(),
                    help="storm connections (default: 5 x the hash pool's capacity)")
    ap.add_argument("--ratio", type=float, default=2.0)
    ap.add_argument("--default-lockout", action="store_true")
    args = ap.parse_args()

    L.quickstart_binary()
    work = tempfile.mkdtemp(prefix="crudauth-isolation-")
    port = L.free_port()
    target = ("127.0.0.1", port)
    env = {"CRUDAUTH_ADMIN": f"bench:bench@example.com:{PASSWORD}"}
    if not args.default_lockout:
        env["CRUDAUTH_LOCKOUT_MAX_ATTEMPTS"] = "4000000000"
    worker = L.start_worker(port, work, "worker", env)
    try:
        cookies = L.sign_in_many([target], L.add_readers(work, "bench", args.sessions), PASSWORD)
        lua = os.path.join(work, "login.lua")
        with open(lua, "w") as f:
            f.write(LUA)

        readers = L.Readers([target], cookies, args.rate, args.threads).start()
        time.sleep(args.idle)
        t_idle = time.monotonic()
        wrk_out = {}

        def storm():
            wrk_out["p"] = subprocess.run(
                ["wrk", "-t2", f"-c{args.connections}", f"-d{int(args.storm)}s", "--timeout", "10s",
                 "-s", lua, f"http://127.0.0.1:{port}/login"],
                capture_output=True, text=True)

        th = threading.Thread(target=storm)
        cpu0 = cpu_seconds(worker.pid)
        t_storm = time.monotonic()
        th.start()
        th.join()
        t_storm_end = time.monotonic()
        cpu = (cpu_seconds(worker.pid) - cpu0) / (t_storm_end - t_storm)
        time.sleep(1)
        records = readers.stop()

        idle = [r for r in records if r[0] < t_idle]
        # The storm's first second (connections opening) and its end are left out.
        during = [r for r in records if t_storm + 1 <= r[0] < t_storm_end - 0.5]
        bad = [r for r in idle + during if r[2] != 200]
        lat_i = [r[1] for r in idle]
        lat_s = [r[1] for r in during]
        p99_i, p99_s = L.pct(lat_i, 99), L.pct(lat_s, 99)
        ratio = p99_s / p99_i
        out = wrk_out["p"].stdout
        counts = {int(s): int(n) for s, n in re.findall(r"STATUS (\d+) (\d+)", out)}
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
        errors = re.search(r"Socket errors:.*", out)
        lockout = "default lockout" if args.default_lockout else "lockout max_attempts 4e9"
        print(f"\nIsolation: 1 worker (memory stores, {lockout}), {args.sessions} sessions, "
              f"readers {args.rate:.0f} GET/s; storm wrk -t2 -c{args.connections} "
              f"-d{int(args.storm)}s POST /login")
        print("| phase | reader requests | p50 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|")
        print(f"| idle | {len(idle)} | {L.ms(L.pct(lat_i, 50))} | {L.ms(p99_i)} | "
              f"{L.ms(max(lat_i))} |")
        print(f"| storm | {len(during)} | {L.ms(L.pct(lat_s, 50))} | {L.ms(p99_s)} | "
              f"{L.ms(max(lat_s))} |")
        print(f"p99 ratio storm/idle: {ratio:.2f} (claim ≤ {args.ratio})")
        print(f"storm: {sum(counts.values())} logins answered, "
              f"{rps.group(1) if rps else '?'} req/s, statuses "
              + ", ".join(f"{s}×{n}" for s, n in sorted(counts.items()))
              + (f"; {errors.group(0)}" if errors else ""))
        print(f"the worker used {cpu:.2f} of the machine's {os.cpu_count()} cores during the storm")
        if bad:
            print(f"readers got {len(bad)} non-200 answers: "
                  f"{sorted({r[2] for r in bad})}")
        if wrk_out["p"].returncode != 0:
            print(wrk_out["p"].stderr)
        ok = ratio <= args.ratio and not bad
        print("claim holds" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        L.stop(worker)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
