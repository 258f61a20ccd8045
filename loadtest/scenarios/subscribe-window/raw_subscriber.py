"""Per-event delivery latency that k6 cannot see: one raw HTTP/1.1 SSE subscriber that timestamps
each event as it arrives and subtracts the publish time the k6 publisher put in `data` (same
machine, same clock). Bounded: reads for SECONDS, then prints one line.

Usage: raw_subscriber.py HUB_URL TOPIC SECONDS [TOKEN]
"""
import json
import socket
import sys
import time
import urllib.parse

hub, topic, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
token = sys.argv[4] if len(sys.argv) > 4 else ""
url = urllib.parse.urlsplit(hub)
target = f"{url.path}?{urllib.parse.urlencode({'match': topic})}"
auth = f"Authorization: Bearer {token}\r\n" if token else ""
sock = socket.create_connection((url.hostname, url.port), timeout=5)
sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: text/event-stream\r\n{auth}\r\n".encode())
sock.settimeout(0.2)
deadline = time.monotonic() + seconds
buf = b""
latencies = []
status = None
while time.monotonic() < deadline:
    try:
        chunk = sock.recv(65536)
    except socket.timeout:
        continue
    if not chunk:
        break
    now_ms = time.time() * 1000
    buf += chunk
    if status is None and b"\r\n" in buf:
        status = buf.split(b"\r\n", 1)[0].decode()
    # Chunk-size lines never contain "data:", so events are found without de-chunking.
    while b"\n\n" in buf:
        block, buf = buf.split(b"\n\n", 1)
        for line in block.split(b"\n"):
            if line.startswith(b"data: {"):
                latencies.append(now_ms - json.loads(line[6:])["t"])
latencies.sort()
if not latencies:
    print(f"raw subscriber: no events ({status})")
else:
    pick = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))]
    print(
        f"raw subscriber ({status}): {len(latencies)} events, delivery latency "
        f"p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, max {latencies[-1]:.1f} ms"
    )
