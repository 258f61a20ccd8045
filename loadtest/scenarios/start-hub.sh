# Sourced by the k6 scenarios' run.sh: builds the release hub and starts it on 127.0.0.1:$port
# with HS256 publisher and subscriber keys ($pub_key, $sub_key) and the durable log in a fresh
# directory; stops it and removes that directory on exit. Defines $bin (the hub binary), $pid and
# `cpu` (the hub's user+system clock ticks so far). Needs $root and $port.
cd "$root"
cargo build --release --quiet
bin="$root/target/release/quicksilver"
data="$(mktemp -d)"
log="$(mktemp)"
"$bin" --addr "127.0.0.1:$port" --publisher-jwt-key "$pub_key" --subscriber-jwt-key "$sub_key" \
  --data-dir "$data" --log-level warn >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$data" "$log"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
