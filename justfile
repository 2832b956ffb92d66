# The everyday commands. `just --list` shows them.

# Run every test (needs Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432).
test:
    cargo test --workspace --all-features

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings

# Criterion benchmarks, then the side-by-side HTTP load test.
bench: && bench-http
    cargo bench -p crudauth-core

# The quickstart against bare axum, tower-sessions + axum-login and the one-GETEX Redis floor
# (bench/peers), with wrk: memory stores, Redis, bearer.
bench-http *ARGS:
    python3 bench/side_by_side.py {{ARGS}}
    python3 bench/side_by_side.py --redis {{ARGS}}
    python3 bench/side_by_side.py --bearer {{ARGS}}

# Start a local Redis like CI's.
redis:
    redis-server --daemonize yes --port 6379 --save "" --appendonly no

# Build the user guide (mdBook).
docs:
    mdbook build docs

# The demo app.
demo:
    CRUDAUTH_COOKIE_SECURE=false cargo run --example quickstart

# Load with faults: two workers on a private Redis that is killed, paused, its clients killed.
faults:
    python3 bench/faults.py

# Isolation: signed-in readers' p99 idle vs during a login storm at 5 × the hash pool.
isolation:
    python3 bench/isolation.py
