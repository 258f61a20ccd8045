#!/usr/bin/env bash
# Quicksilver vs nginx+nchan, same qs-fleet load against both in one run: idle memory per
# subscriber (HTTP/1.1, TLS, HTTP/2 streams), broadcast throughput and loss, delivery and publish
# latency, publish throughput, unpaced connects. Writes results/*.json (one per fleet run),
# results/summary.json and results/summary.md, and prints the goal table.
#
# Usage: run.sh [--h2-scale] [--quick]
#   --h2-scale  also run the heavy HTTP/2 scale goal (250,000 streams over 2,500 connections)
#   --quick     1,000 subscribers instead of 10,000 (a smoke test of the script, ~2 min)
# Env: SUBS (10000), QS_PORT (3910), NCHAN_PORT (3920; nginx also answers a canned 200 on
# NCHAN_PORT + 2, the ceiling of the publish-throughput goal): all on 127.0.0.1 only.
# Every fleet run is bounded by its own --timeout; servers started here are stopped on exit.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

h2_scale=0
subs="${SUBS:-10000}"
for arg in "$@"; do
    case "$arg" in
    --h2-scale) h2_scale=1 ;;
    --quick) subs=1000 ;;
    *) echo "unknown argument: $arg" >&2; exit 64 ;;
    esac
done
qs_port="${QS_PORT:-3910}"
qs_tls_port=$((qs_port + 1))
nchan_port="${NCHAN_PORT:-3920}"
nchan_tls_port=$((nchan_port + 1))
floor_port=$((nchan_port + 2))
small=$((subs / 10))
# Idle memory is sampled this long after the last connect: past khugepaged's scan period (10 s
# by default), which can make freed memory resident again (see src/alloc.rs).
settle=12
out="$here/results"
mkdir -p "$out"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else echo "need root (or sudo) to run: $*" >&2; return 1
    fi
}

# ---- build and install ---------------------------------------------------------------------
cd "$root"
cargo build --release --locked -p quicksilver -p quicksilver-fleet
qs_bin="$root/target/release/quicksilver"
fleet_bin="$root/target/release/qs-fleet"
if ! command -v nginx >/dev/null 2>&1 || [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        nginx libnginx-mod-nchan
fi
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

tmp="$(mktemp -d /tmp/vs-nchan.XXXXXX)"
qs_pid=""
nginx_master=""
cleanup() {
    stop_qs
    stop_nchan
    rm -rf "$tmp"
}
trap cleanup EXIT

key="vs-nchan-publisher-secret-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
pub_token="$("$qs_bin" token --key "$key" --publish '*' --ttl 2h \
    --aud "http://127.0.0.1:$qs_port/.well-known/mercure" \
    --aud "https://localhost:$qs_tls_port/.well-known/mercure")"

wait_port() { # $1 = port: wait up to 10 s for a listener
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

start_qs() { # fresh hub with its defaults: durable log in a new temp dir, anonymous subscribers
    # $1 = memory: --history memory instead of the durable log; further arguments go to the hub
    stop_qs
    local data="$tmp/qs-data-$RANDOM" history=()
    [ "${1:-}" = memory ] && history=(--history memory)
    [ $# -gt 0 ] && shift
    MERCURE_PUBLISHER_JWT_KEY="$key" QUICKSILVER_ANONYMOUS=1 "$qs_bin" "${history[@]}" "$@" \
        --addr "127.0.0.1:$qs_port" --tls-addr "127.0.0.1:$qs_tls_port" \
        --tls-cert "$root/certs-dev/localhost.pem" --tls-key "$root/certs-dev/localhost-key.pem" \
        --data-dir "$data" --log-level warn >>"$tmp/qs.log" 2>&1 &
    qs_pid=$!
    wait_port "$qs_port"
    sleep 0.5
}

stop_qs() {
    if [ -n "$qs_pid" ]; then
        kill -TERM "$qs_pid" 2>/dev/null || true
        wait "$qs_pid" 2>/dev/null || true
        qs_pid=""
    fi
}

start_nchan() { # fresh nginx master + 2 workers with the scenario's config, all paths in $tmp
    stop_nchan
    local dir="$tmp/nginx-$RANDOM"
    mkdir -p "$dir"
    sed -e "s#@DIR@#$dir#g; s#@PORT@#$nchan_port#g; s#@TLS_PORT@#$nchan_tls_port#g; s#@FLOOR_PORT@#$floor_port#g; s#@CERTS@#$root/certs-dev#g" \
        "$here/nchan.conf" >"$dir/nginx.conf"
    "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    wait_port "$nchan_port"
    nginx_master="$(cat "$dir/nginx.pid")"
    sleep 0.5
}

stop_nchan() {
    if [ -n "$nginx_master" ]; then
        kill -QUIT "$nginx_master" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$nginx_master" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$nginx_master" 2>/dev/null || true
        nginx_master=""
    fi
}

fleet() { # $1 = server (qs|nchan), $2 = run name, rest = qs-fleet options
    local server=$1 name=$2
    shift 2
    local target=(--target mercure --url "http://127.0.0.1:$qs_port" --pub-token "$pub_token" --server-pid "$qs_pid")
    if [ "$server" = nchan ]; then
        target=(--target nchan --url "http://127.0.0.1:$nchan_port" --server-pid-cmd "echo $nginx_master; pgrep -P $nginx_master")
    elif [ "$server" = floor ]; then
        target=(--target nchan --url "http://127.0.0.1:$floor_port" --server-pid-cmd "echo $nginx_master; pgrep -P $nginx_master")
    fi
    echo "== $server $name: $*" >&2
    "$fleet_bin" "${target[@]}" --label "$server-$name" --quiet --out "$out/$server-$name.json" "$@" \
        | tee "$out/$server-$name.log" || echo "   (qs-fleet exited with $?)" >&2
}

tls_args() { # $1 = server
    if [ "$1" = qs ]; then echo "--url https://localhost:$qs_tls_port --ca $root/certs-dev/ca.pem"
    else echo "--url https://localhost:$nchan_tls_port --ca $root/certs-dev/ca.pem"; fi
}

started=$(date +%s)
rm -f "$out"/*.json "$out"/*.log "$out"/*.md
for server in qs nchan; do
    start() { if [ "$server" = qs ]; then start_qs; else start_nchan; fi; }
    # Goals 1 (idle HTTP/1.1 memory), 6 (unpaced connects) and 2 (broadcast throughput, loss):
    # fresh server, N unpaced subscribers, then 8 publishers back to back.
    start
    fleet "$server" h1-broadcast --subscribers "$subs" --settle "$settle" --publishers 8 --count 500 --timeout 240
    # Goal 3 and 4 (publish latency with subscribers): paced 5/s for 10 s at N/10 and N.
    fleet "$server" latency --steps "$small,$subs" --publishers 1 --rate 5 --duration 30 \
        --timeout 180 --chart "$out/$server-latency.svg"
    # Goal 4: no subscribers: publish latency at 5/s, then 8 keep-alive publishers back to back.
    fleet "$server" pub-latency-0 --subscribers 0 --publishers 1 --rate 5 --duration 30 --timeout 90
    if [ "$server" = qs ]; then
        # With its defaults (durable log: one fdatasync per group of publishes).
        fleet qs pub-throughput --subscribers 0 --publishers 8 --duration 10 --timeout 60
    fi
    # Goal 1, TLS: fresh server, N idle HTTP/1.1 subscribers over TLS.
    start
    # shellcheck disable=SC2046
    fleet "$server" tls-h1-idle $(tls_args "$server") --subscribers "$subs" --settle "$settle" --timeout 180
done
# Goal 4, like for like: nchan keeps its messages in memory; so does Quicksilver with
# --history memory (the rows above use the durable log, one fdatasync per group of publishes).
start_qs memory
fleet qs pub-latency-0-memory --subscribers 0 --publishers 1 --rate 5 --duration 30 --timeout 90
# Goal 4, publish throughput (8 keep-alive publishers, no subscribers, 10 s), in alternating
# rounds: nchan's rate is bimodal (it depends on how its two workers split the 8 connections),
# so one run of each proves little. Per round: Quicksilver --history memory with its defaults and
# with --workers 1 (one request thread: no cross-thread wake-ups while the generator holds the
# other core), nchan, and the ceiling (nginx answering a canned 200 on NCHAN_PORT + 2). qs-fleet
# records each server's CPU per publish and its own.
start_nchan
for round in 1 2 3; do
    start_qs memory
    fleet qs "pub-memory-$round" --subscribers 0 --publishers 8 --duration 10 --timeout 60
    start_qs memory --workers 1
    fleet qs "pub-memory-w1-$round" --subscribers 0 --publishers 8 --duration 10 --timeout 60
    fleet nchan "pub-$round" --subscribers 0 --publishers 8 --duration 10 --timeout 60
    fleet floor "pub-$round" --subscribers 0 --publishers 8 --duration 10 --timeout 60
done
# Goal 1, HTTP/2 (Quicksilver only): the cost of a stream on an existing connection, from the
# same number of connections (N/100) carrying 1 stream each vs 100 streams each.
start_qs
fleet qs h2-conns --http2 --streams-per-conn 1 --subscribers $((subs / 100)) --settle "$settle" --timeout 60
start_qs
fleet qs h2-streams --http2 --streams-per-conn 100 --subscribers "$subs" --settle "$settle" --timeout 120
if [ "$h2_scale" = 1 ]; then
    # Goal 5 (opt-in): 250,000 streams over 2,500 connections, one broadcast, none lost.
    start_qs
    fleet qs h2-scale --http2 --streams-per-conn 100 --subscribers 250000 --procs 4 \
        --publishers 1 --count 1 --drain-max 60 --drain-idle 10 --timeout 600
fi
stop_qs
stop_nchan
echo "total $(( $(date +%s) - started )) s" >&2
python3 "$here/summarize.py" "$out" "$subs"
