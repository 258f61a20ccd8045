#!/usr/bin/env python3
"""Hub RSS per idle HTTP/1.1 subscriber: start the release hub (memory history, anonymous), read
its RSS, open N subscriber streams (each reads the `:` preamble, then idles), read the RSS again.
Loopback only, bounded: N connections, a 60 s deadline. Usage: measure.py N [N ...]"""
import asyncio, os, re, subprocess, sys, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../.."))
BIN = os.path.join(ROOT, "target/release/quicksilver")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


async def subscribe(port, i):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /.well-known/mercure?match=https%3A%2F%2Fexample.com%2Fidle%2F{i % 100} HTTP/1.1\r\n"
                 "Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b":"):
        chunk = await reader.read(4096)
        if not chunk:
            raise RuntimeError("stream closed")
        data += chunk
    return writer


async def run(n):
    proc = subprocess.Popen([BIN, "--addr", "127.0.0.1:0", "--history", "memory", "--log-level", "info"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = None
    for line in proc.stderr:
        m = re.search(r"addr=127\.0\.0\.1:(\d+)", line)
        if m and "h2c" in line:
            port = int(m.group(1))
            break
    try:
        await asyncio.sleep(0.5)
        before = rss_kib(proc.pid)
        writers = []
        deadline = time.time() + 60
        for start in range(0, n, 500):
            writers += await asyncio.gather(*(subscribe(port, i) for i in range(start, min(n, start + 500))))
            if time.time() > deadline:
                raise RuntimeError("deadline")
        # Past khugepaged's scan period (10 s by default), which can make memory the allocator
        # returned resident again (src/alloc.rs).
        await asyncio.sleep(12.0)
        after = rss_kib(proc.pid)
        per = (after - before) * 1024 / n
        print(f"{n:>6} idle HTTP/1.1 subscribers: RSS {before} KiB -> {after} KiB, {per:,.0f} bytes each")
        for w in writers:
            w.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


for arg in sys.argv[1:] or ["5000"]:
    asyncio.run(run(int(arg)))
