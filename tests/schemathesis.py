#!/usr/bin/env python3
"""Property-based HTTP tests of auth.router() against its own OpenAPI document (schemathesis).

Starts the quickstart (debug build, in-memory stores, a fresh SQLite user table, GitHub OAuth
configured so the OAuth routes are mounted and documented), reads GET /openapi.json and runs
schemathesis against it three times: anonymously, with a bearer token, and with a session
cookie and its CSRF header. Every generated request must get an answer the document lists:
no 5xx, no undocumented status, content type, header or body. Exits non-zero otherwise, or if
the server died or logged a panic.

    python3 tests/schemathesis.py            # what CI runs (.ci/run)
    python3 tests/schemathesis.py --examples 200 --seed 1234

Needs `schemathesis` (PyPI) on the PATH; .ci/run installs the version it pins.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import loadlib  # noqa: E402

BINARY = os.path.join(ROOT, "target", "debug", "examples", "quickstart")
# Its script, where pip put it (a fresh install may not be on the PATH yet).
SCHEMATHESIS = shutil.which("schemathesis") or os.path.join(
    os.path.dirname(sys.executable), "schemathesis")
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])
PASSWORD = "correct horse battery"
JSON = {"content-type": "application/json"}


def build():
    loadlib.log("building the quickstart (debug, all features)...")
    subprocess.run(
        ["cargo", "build", "-p", "crudauth-examples", "--example", "quickstart", "--all-features"],
        cwd=ROOT, check=True)


def credentials(target):
    """Registers an account and signs it in twice: (bearer token, session cookie, CSRF token)."""
    body = json.dumps({"email": "st@example.com", "username": "st", "password": PASSWORD})
    status, _, data = loadlib.request(target, "POST", "/register", body, JSON)
    if status not in (200, 202):
        raise RuntimeError(f"/register answered {status}: {data!r}")
    form = urllib.parse.urlencode({"username": "st", "password": PASSWORD})
    status, _, data = loadlib.request(target, "POST", "/token", form, loadlib.FORM)
    if status != 200:
        raise RuntimeError(f"/token answered {status}: {data!r}")
    token = json.loads(data)["access_token"]
    status, msg, data = loadlib.request(target, "POST", "/login", form, loadlib.FORM)
    if status != 200:
        raise RuntimeError(f"/login answered {status}: {data!r}")
    session = loadlib.set_cookies(msg)["session_id"]
    return token, f"session_id={session}", json.loads(data)["csrf_token"]


def schemathesis(url, name, headers, args, workdir):
    """One schemathesis run; True when it found nothing."""
    argv = [SCHEMATHESIS, "run", f"{url}/openapi.json", "--checks", CHECKS,
            "--max-redirects", "0", "--max-examples", str(args.examples), "--workers", "2",
            "--no-color", "--report", "junit",
            "--report-junit-path", os.path.join(workdir, f"{name}.xml")]
    if args.seed is not None:
        argv += ["--seed", str(args.seed)]
    for h in headers:
        argv += ["-H", h]
    for attempt in (1, 2):
        loadlib.log(f"schemathesis ({name})...")
        # From the scratch directory, where schemathesis leaves its cache.
        result = subprocess.run(argv, capture_output=True, text=True, cwd=workdir)
        # The summary and failures; schemathesis' own tracebacks can run to megabytes.
        out = result.stdout
        tail = out[out.find("FAILURES"):] if "FAILURES" in out else out[-3000:]
        print(f"--- {name}: exit {result.returncode}\n{tail[:20000]}", flush=True)
        if result.stderr.strip():
            print(result.stderr[-3000:], flush=True)
        # CPython 3.11's spurious "AST constructor recursion depth mismatch" (python/cpython
        # #106905), raised inside hypothesis while it names a lambda, is the tool failing, not
        # a finding about the API: that run, and only that, is made once more.
        if result.returncode == 0 or attempt == 2 or not interpreter_bug(out):
            return result.returncode == 0
        loadlib.log(f"schemathesis ({name}) hit CPython #106905; running it once more")
    return False


def interpreter_bug(out):
    """Whether a failed run hit CPython's spurious AST recursion SystemError and found nothing."""
    return "AST constructor recursion depth mismatch" in out and "FAILURES" not in out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=40, help="test cases per operation")
    parser.add_argument("--seed", type=int, help="schemathesis' random seed")
    parser.add_argument("--no-build", action="store_true", help="use the binary as it is")
    args = parser.parse_args()
    if not args.no_build:
        build()
    workdir = tempfile.mkdtemp(prefix="crudauth-schemathesis-")
    port = loadlib.free_port()
    env = loadlib.worker_env(port, workdir, {
        "CRUDAUTH_OUTBOX": os.path.join(workdir, "outbox.jsonl"),
        "CRUDAUTH_GITHUB_CLIENT_ID": "schemathesis",
        "CRUDAUTH_GITHUB_CLIENT_SECRET": "schemathesis",
        "CRUDAUTH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "RUST_LOG": "warn",
    })
    server = loadlib.start_server([BINARY], env, port, workdir, "quickstart")
    target = ("127.0.0.1", port)
    url = f"http://127.0.0.1:{port}"
    ok = True
    try:
        status, _, data = loadlib.request(target, "GET", "/openapi.json")
        doc = json.loads(data)
        if status != 200 or doc.get("openapi") != "3.1.0" or len(doc.get("paths", {})) < 20:
            raise RuntimeError(f"/openapi.json answered {status}: {data[:200]!r}")
        token, cookie, csrf = credentials(target)
        runs = [
            ("anonymous", []),
            ("bearer", [f"Authorization: Bearer {token}"]),
            ("session", [f"Cookie: {cookie}", f"X-CSRF-Token: {csrf}"]),
        ]
        for name, headers in runs:
            ok &= schemathesis(url, name, headers, args, workdir)
        if server.poll() is not None:
            print(f"the quickstart exited ({server.returncode})", flush=True)
            ok = False
    finally:
        loadlib.stop(server)
    with open(os.path.join(workdir, "quickstart.log"), errors="replace") as f:
        if "panicked" in f.read():
            print(f"the quickstart panicked: see {workdir}/quickstart.log", flush=True)
            ok = False
    print("schemathesis: " + ("no answer outside the document" if ok else "FAILED"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
