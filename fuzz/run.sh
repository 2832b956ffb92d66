#!/usr/bin/env bash
# Runs every fuzz target, one after another, on the nightly toolchain with cargo-fuzz:
#   fuzz/run.sh                 a smoke run: 10 s each (what CI runs)
#   fuzz/run.sh SECONDS [RUNS]  up to SECONDS each, stopping a target after RUNS executions
#   FUZZ_TARGETS="jwt email" fuzz/run.sh ...   only those targets
# Each target starts from its committed seeds (fuzz/seeds/<target>) and keeps what it finds
# in target/fuzz-corpus/<target>; a crash, timeout or leak stops the script with its input
# under fuzz/artifacts/<target>/. One line per target says how many executions it ran.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-10}"
runs="${2:--1}"
targets=${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^crudauth-fuzz$')}
cargo +nightly fuzz build -O
for t in $targets; do
  corpus="../target/fuzz-corpus/$t"
  mkdir -p "$corpus"
  log="../target/fuzz-corpus/$t.log"
  if ! cargo +nightly fuzz run -O "$t" "$corpus" "seeds/$t" -- \
      -max_total_time="$seconds" -runs="$runs" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz target $t failed: see above and fuzz/artifacts/$t/" >&2
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  echo "fuzz $t: ${execs:-?} executions in ${secs:-?} s, no crash"
done
