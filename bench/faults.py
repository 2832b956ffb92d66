#!/usr/bin/env python3
"""Load with faults: two quickstart workers on one private Redis under steady authenticated
load, while Redis is killed (SIGKILL, then restarted on its AOF), paused (SIGSTOP, SIGCONT)
and its clients killed (CLIENT KILL TYPE normal).

Checks, per fault:
  - outage: every request that started after the fault and was answered before Redis came
    back got 503 (or 429), never a 2xx, never another code nor a dropped connection;
  - the p99 latency of the requests started during the outage is within the command timeout
    (1 s, the quickstart's default; --slack allows for the client's own overhead);
  - each worker answers a 200 to a request started after Redis is back within 2 s, without a
    restart, and from 2 s after that every request is a 200;
and, after all faults: each of the K sessions still works on both workers, and every key that
Redis held before the faults (sessions, lockout counters) is still there unless its TTL ran
out, string counters with the same value.

Exit status 1 if any claim fails. Usage: python3 bench/faults.py [--sessions 50] [--rate 200]
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadlib as L  # noqa: E402

PASSWORD = "correct horse battery staple"
COMMAND_TIMEOUT = 1.0   # crates/crudauth-core/src/store/redis/config.rs DEFAULT_COMMAND_TIMEOUT
RECOVERY_LIMIT = 2.0
OK_DURING_OUTAGE = {503, 429}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--rate", type=float, default=200, help="GET /dashboard per second, total")
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--baseline", type=float, default=5)
    ap.add_argument("--hold", type=float, default=5)
    ap.add_argument("--after", type=float, default=5)
    ap.add_argument("--slack", type=float, default=0.05,
                    help="client-side allowance over the command timeout for the p99 (s)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    L.quickstart_binary()
    work = tempfile.mkdtemp(prefix="crudauth-faults-")
    rport = L.free_port()
    redis = L.start_redis(rport, work)
    ports = [L.free_port(), L.free_port()]
    targets = [("127.0.0.1", p) for p in ports]
    url = f"redis://127.0.0.1:{rport}"
    workers = []
    failures = []
    try:
        # Worker A creates the reader account, worker B the one whose lockout we keep.
        workers.append(L.start_worker(ports[0], work, "worker-a", {
            "REDIS_URL": url, "CRUDAUTH_ADMIN": f"bench:bench@example.com:{PASSWORD}"}))
        workers.append(L.start_worker(ports[1], work, "worker-b", {
            "REDIS_URL": url, "CRUDAUTH_ADMIN": f"victim:victim@example.com:{PASSWORD}"}))
        cookies = L.sign_in_many(targets, L.add_readers(work, "bench", args.sessions), PASSWORD)
        # The counter: wrong passwords for `victim` until the lockout trips (5 × 401, then 429);
        # its round counter is kept an hour, the lock itself 60 s.
        wrong = [L.login(targets[i % 2], "victim", "wrong password")[0] for i in range(6)]
        L.log(f"{args.sessions} sessions signed in; victim's wrong logins: {wrong}")
        if wrong != [401] * 5 + [429]:
            failures.append(f"lockout setup answered {wrong}")
        before = L.snapshot_keys(rport)
        t_snap = time.monotonic()
        L.log(f"{len(before)} keys in Redis before the faults")

        readers = L.Readers(targets, cookies, args.rate, args.threads).start()
        faults = []

        def phase(name, fault, recover=None):
            """Baseline, the fault, `--hold` seconds, `recover`, then `--after` seconds. With no
            `recover` (CLIENT KILL) Redis never stops answering: the outage window is empty and
            the time back, each worker's reconnect, counts from the kill's return (redis-cli's
            own ~20 ms is not an outage: connections live until the kill executes)."""
            time.sleep(args.baseline)
            t_fault = time.monotonic()
            fault()
            t_end = t_fault
            if recover is not None:
                time.sleep(args.hold)
                t_end = time.monotonic()      # Redis is unreachable until at least here
                recover()
            t_back = time.monotonic()         # Redis answers again from here on
            time.sleep(args.after)
            faults.append((name, t_fault, t_end, t_back))

        def kill():
            redis.send_signal(signal.SIGKILL)
            redis.wait()

        def restart():
            nonlocal redis
            redis = L.start_redis(rport, work)

        killed = {}

        def client_kill():
            killed["n"] = L.redis_cli(rport, "CLIENT", "KILL", "TYPE", "normal")

        phase("SIGKILL+restart", kill, restart)
        phase("SIGSTOP+SIGCONT", lambda: redis.send_signal(signal.SIGSTOP),
              lambda: redis.send_signal(signal.SIGCONT))
        phase("CLIENT KILL", client_kill)
        records = readers.stop()
        L.log(f"CLIENT KILL closed {killed.get('n')} connections; {len(records)} requests")

        # --- judgement -------------------------------------------------------------------
        rows = []
        bounds = [f[1] for f in faults[1:]] + [float("inf")]
        for (name, t_fault, t_end, t_back), t_next in zip(faults, bounds):
            outage = [r for r in records if r[0] >= t_fault and r[0] + r[1] <= t_end]
            started = [r for r in records if t_fault <= r[0] < t_end]
            codes = Counter(r[2] for r in outage)
            p99 = L.pct([r[1] for r in started], 99)
            recov = []
            for w in range(len(targets)):
                first = next((r for r in records if r[3] == w and r[0] >= t_back and r[2] == 200),
                             None)
                recov.append(None if first is None else first[0] + first[1] - t_back)
            transition = Counter(r[2] for r in records if t_end <= r[0] < t_back + RECOVERY_LIMIT)
            settled = [r for r in records if t_back + RECOVERY_LIMIT <= r[0] < t_next]
            after_bad = sum(1 for r in settled if r[2] != 200)
            bad = []
            if set(codes) - OK_DURING_OUTAGE:
                bad.append("outage statuses")
            if p99 is not None and p99 > COMMAND_TIMEOUT + args.slack:
                bad.append("p99")
            if any(x is None or x > RECOVERY_LIMIT for x in recov):
                bad.append("recovery")
            if after_bad:
                bad.append("after")
            failures += [f"{name}: {b}" for b in bad]
            if after_bad:
                failures += [f"  {name}: status {r[2]} on worker {'AB'[r[3]]}, started "
                             f"{r[0] - t_back:.3f} s after Redis was back, took {r[1] * 1000:.1f} ms"
                             for r in settled if r[2] != 200][:5]
            rows.append((name, t_end - t_fault, len(started), codes, transition, p99,
                         max((r[1] for r in started), default=None), recov, after_bad,
                         len(settled), "FAIL " + ",".join(bad) if bad else "ok"))

        others = Counter(r[2] for r in records if r[2] not in (200, 503, 429))
        if others:
            failures.append(f"statuses other than 200/503/429 in the run: {others}")

        # No session lost: every cookie, on both workers.
        lost = [(i, w) for i, c in enumerate(cookies) for w in range(2)
                if L.dashboard(targets[w], c) != 200]
        if lost:
            failures.append(f"{len(lost)} session checks failed after the faults: {lost[:5]}")
        after = L.snapshot_keys(rport)
        elapsed_ms = (time.monotonic() - t_snap) * 1000
        gone, changed = [], []
        for k, (kind, pttl, value) in before.items():
            if pttl != -1 and pttl < elapsed_ms + 1000:
                continue  # it may have expired on its own
            if k not in after:
                gone.append(k)
            elif kind == "string" and after[k][2] != value:
                changed.append((k, value, after[k][2]))
        if gone:
            failures.append(f"{len(gone)} keys lost: {gone[:5]}")
        if changed:
            failures.append(f"{len(changed)} counters changed: {changed[:5]}")
        kept = sum(1 for k, (_, p, _v) in before.items() if p == -1 or p >= elapsed_ms + 1000)
        victim = L.login(targets[0], "victim", PASSWORD)[0]

        # --- report ----------------------------------------------------------------------
        total = len(records)
        base = [r[1] for r in records if r[0] < faults[0][1] and r[2] == 200]
        print(f"\nLoad with faults: 2 workers, {args.sessions} sessions, {args.rate:.0f} req/s "
              f"offered over {args.threads} threads, {total} requests "
              f"(baseline p50 {L.ms(L.pct(base, 50))} ms, p99 {L.ms(L.pct(base, 99))} ms)")
        hdr = ("fault", "outage s", "started", "outage statuses", "back+2 s statuses",
               "p99 ms", "max ms",
               "A back ms", "B back ms", "non-200 after", "verdict")
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        def counts(d):
            return ", ".join(f"{c}×{n_}" if c else f"no-answer×{n_}"
                             for c, n_ in sorted(d.items())) or "-"

        for name, dur, n, codes, trans, p99, mx, recov, ab, ns, verdict in rows:
            print(f"| {name} | {dur:.2f} | {n} | {counts(codes)} | {counts(trans)} | "
                  f"{L.ms(p99)} | {L.ms(mx)} | "
                  f"{L.ms(recov[0])} | {L.ms(recov[1])} | {ab}/{ns} | {verdict} |")
        print(f"sessions after the faults: {2 * args.sessions - len(lost)}/{2 * args.sessions} "
              f"answered 200 (each session on both workers)")
        groups = Counter(":".join(k.split(":")[:2]) for k in before)
        print("Redis keys before the faults: "
              + ", ".join(f"{g}…×{n}" for g, n in sorted(groups.items())))
        print(f"Redis keys: {len(before)} before, {kept} still due, {len(gone)} lost, "
              f"{len(changed)} string counters changed; victim's correct login now: {victim} "
              f"(429 = still locked)")
        if failures:
            print("FAILED:\n  " + "\n  ".join(failures))
            return 1
        print("all claims hold")
        return 0
    finally:
        for w in workers:
            L.stop(w)
        try:
            redis.send_signal(signal.SIGCONT)
        except (ProcessLookupError, OSError):
            pass
        L.stop(redis)
        if args.keep:
            L.log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
