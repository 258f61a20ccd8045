#!/usr/bin/env python3
"""Reads the qs-fleet results of run.sh (results/<server>-<run>.json) and writes the goal table:
results/summary.json and results/summary.md (with date and machine), and prints the markdown.
Usage: summarize.py RESULTS_DIR SUBSCRIBERS"""
import datetime, json, os, platform, sys

out, subs = sys.argv[1], int(sys.argv[2])


def load(server, run):
    try:
        with open(os.path.join(out, f"{server}-{run}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def step(r, n=None):
    if not r or not r.get("steps"):
        return None
    if n is None:
        return r["steps"][-1]
    return next((s for s in r["steps"] if s["subscribers"] == n), None)


def get(d, *path):
    for p in path:
        if d is None:
            return None
        d = d.get(p) if isinstance(d, dict) else None
    return d


def h2_stream_cost():
    conns, streams = load("qs", "h2-conns"), load("qs", "h2-streams")
    a, b = step(conns), step(streams)
    if not (a and b and conns.get("server_memory_before") and streams.get("server_memory_before")):
        return None
    grow = lambda r, s: s["server_memory_idle"]["rss"] - r["server_memory_before"]["rss"]
    extra = b["connected"] - a["connected"]
    return (grow(streams, b) - grow(conns, a)) / extra if extra > 0 else None


ROUNDS = (1, 2, 3)


def rounds(server, run, *path):
    """The values of `path` in the publish result of each round of `run` that completed."""
    vals = [get(step(load(server, f"{run}-{n}")), "publish", *path) for n in ROUNDS]
    return [v for v in vals if isinstance(v, (int, float))]


def median(vals):
    vals = sorted(vals)
    return vals[len(vals) // 2] if vals else None


def spread(vals, unit=""):
    return f"{len(vals)} rounds: " + ", ".join(f"{v:,.0f}{unit}" if v >= 100 else f"{v:.1f}{unit}" for v in vals)


rows = []  # (goal, measure, unit, qs, nchan, lower_is_better)


def row(goal, measure, unit, qs, nchan=None, lower=True):
    rows.append({"goal": goal, "measure": measure, "unit": unit, "quicksilver": qs, "nchan": nchan,
                 "lower_is_better": lower})


both = lambda f: (f("qs"), f("nchan"))
small = subs // 10
kb = lambda v: None if v is None else v / 1000.0

row("1 memory", f"RSS per idle HTTP/1.1 subscriber at {subs:,}", "KB",
    *both(lambda s: kb(get(step(load(s, "h1-broadcast")), "bytes_per_subscriber_rss"))))
row("1 memory", f"PSS per idle HTTP/1.1 subscriber at {subs:,}", "KB",
    *both(lambda s: kb(get(step(load(s, "h1-broadcast")), "bytes_per_subscriber_pss"))))
row("1 memory", f"RSS per additional HTTP/2 stream ({subs // 100:,} conns × 100 streams vs × 1)", "KB", kb(h2_stream_cost()))
row("1 memory", f"RSS per idle TLS HTTP/1.1 subscriber at {subs:,}", "KB",
    *both(lambda s: kb(get(step(load(s, "tls-h1-idle")), "bytes_per_subscriber_rss"))))
row("2 throughput", f"deliveries/s, {subs:,} subscribers, 8 publishers back to back (500 updates)", "/s",
    *both(lambda s: get(step(load(s, "h1-broadcast")), "delivery", "per_s")), lower=False)
row("2 throughput", "lost deliveries (missing + duplicates; must be 0)", "",
    *both(lambda s: None if get(step(load(s, "h1-broadcast")), "delivery") is None else
          get(step(load(s, "h1-broadcast")), "delivery", "missing") + get(step(load(s, "h1-broadcast")), "delivery", "duplicates")))
row("2 throughput", "delivery p99 during the broadcast burst", "ms",
    *both(lambda s: get(step(load(s, "h1-broadcast")), "delivery", "latency", "p99_ms")))
for n in (subs, small):
    row("3 latency", f"delivery p99, {n:,} subscribers, 5 publishes/s for 30 s", "ms",
        *both(lambda s: get(step(load(s, "latency"), n), "delivery", "latency", "p99_ms")))
    row("3 latency", f"delivery p50, {n:,} subscribers", "ms",
        *both(lambda s: get(step(load(s, "latency"), n), "delivery", "latency", "p50_ms")))
row("4 publishers", "publish p99, 0 subscribers, 5/s for 30 s (150 samples)", "ms",
    *both(lambda s: get(step(load(s, "pub-latency-0")), "publish", "latency", "p99_ms")))
row("4 publishers", f"publish p99, {subs:,} subscribers, 5/s for 30 s (150 samples)", "ms",
    *both(lambda s: get(step(load(s, "latency"), subs), "publish", "latency", "p99_ms")))
mem = lambda run: get(step(load("qs", run)), "publish")
nchan_rates = rounds("nchan", "pub", "rate")
row("4 publishers", "publish throughput, 8 keep-alive publishers, 0 subscribers, 10 s, Quicksilver with its defaults (durable log) vs nchan's median round", "req/s",
    get(step(load("qs", "pub-throughput")), "publish", "rate"), median(nchan_rates), lower=False)
for label, server, run in (("Quicksilver --history memory", "qs", "pub-memory"),
                           ("Quicksilver --history memory --workers 1", "qs", "pub-memory-w1"),
                           ("ceiling: nginx answering a canned 200 (no auth, parsing or storage), in the Quicksilver column", "floor", "pub")):
    rates = rounds(server, run, "rate")
    row("4 publishers", f"publish throughput, 8 keep-alive publishers, 0 subscribers, 10 s, median of "
        f"alternating rounds; {label} ({spread(rates, '/s')}; nchan {spread(nchan_rates, '/s')})", "req/s",
        median(rates), median(nchan_rates), lower=False)
for label, server, run in (("Quicksilver --history memory", "qs", "pub-memory"),
                           ("Quicksilver --history memory --workers 1", "qs", "pub-memory-w1"),
                           ("canned 200", "floor", "pub")):
    row("4 publishers", f"server CPU per publish in those rounds (user + system), {label} vs nchan", "µs",
        median(rounds(server, run, "server_cpu_us_per_publish")),
        median(rounds("nchan", "pub", "server_cpu_us_per_publish")))
row("4 publishers", "generator CPU per publish against Quicksilver --history memory vs against nchan", "µs",
    median(rounds("qs", "pub-memory", "generator_cpu_us_per_publish")),
    median(rounds("nchan", "pub", "generator_cpu_us_per_publish")))
row("4 publishers", "publish p99, 0 subscribers, 5/s, Quicksilver with --history memory", "ms",
    get(mem("pub-latency-0-memory"), "latency", "p99_ms"),
    get(step(load("nchan", "pub-latency-0")), "publish", "latency", "p99_ms"))
scale = step(load("qs", "h2-scale"))
if scale:
    row("5 HTTP/2 scale", "connected of 250,000 streams (2,500 conns × 100)", "", scale["connected"], lower=False)
    acked = get(scale, "publish", "acked")
    if acked:
        lost = scale["delivery"]["missing"] + scale["delivery"]["duplicates"]
    else:
        lost = "broadcast not acknowledged: " + ", ".join(get(scale, "publish", "errors") or ["no publish"])
    row("5 HTTP/2 scale", "lost of one broadcast (missing + duplicates)", "", lost)
    row("5 HTTP/2 scale", "streams that received the broadcast", "", get(scale, "delivery", "unique"), lower=False)
    row("5 HTTP/2 scale", "delivery p99 of the broadcast", "ms", get(scale, "delivery", "latency", "p99_ms"))
    row("5 HTTP/2 scale", "RSS per stream", "KB", kb(scale.get("bytes_per_subscriber_rss")))
else:
    row("5 HTTP/2 scale", "250,000 streams over 2,500 connections", "", "not run (run.sh --h2-scale)")
row("6 connects", f"{subs:,} unpaced HTTP/1.1 subscriber connects", "s",
    *both(lambda s: get(step(load(s, "h1-broadcast")), "connect_s")))
row("6 connects", "connect p99 (one connect: TCP + request + first bytes)", "ms",
    *both(lambda s: get(step(load(s, "h1-broadcast")), "connect_latency", "p99_ms")))
row("6 connects", "failed connects", "",
    *both(lambda s: get(step(load(s, "h1-broadcast")), "failed")))


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100):
        return f"{int(v):,}"
    return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"


def ratio(r):
    q, n = r["quicksilver"], r["nchan"]
    if not isinstance(q, (int, float)) or not isinstance(n, (int, float)) or n == 0:
        return "—"
    return f"{q / n:.2f}"


try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    cpu = platform.processor()
mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
machine = f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Linux {platform.release()}"
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = [f"# Quicksilver vs nginx+nchan ({date})", "",
         f"Machine: {machine}; generator (qs-fleet) and both servers on the same cores, loopback.", "",
         "| Goal | Measure | Unit | Quicksilver | nchan | Quicksilver / nchan |",
         "|---|---|---|---|---|---|"]
for r in rows:
    lines.append(f"| {r['goal']} | {r['measure']} | {r['unit']} | {fmt(r['quicksilver'])} | {fmt(r['nchan'])} | {ratio(r)} |")
errors = []
for name in sorted(os.listdir(out)):
    if name.endswith(".json") and name != "summary.json":
        r = load(*name[:-5].split("-", 1))
        if r and (r.get("errors") or r.get("timed_out")):
            errors.append(f"- `{name}`: timed out {r.get('timed_out')}, errors {r.get('errors')}")
if errors:
    lines += ["", "Errors reported by the fleet runs:", ""] + errors
md = "\n".join(lines) + "\n"
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(md)
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump({"date": date, "machine": machine, "subscribers": subs, "rows": rows}, f, indent=1)
print(md)
