"""The receiver under hostile clients: how fast ``/healthz`` answers, with default limits.

    .venv/bin/python benchmarks/receiver_stress.py            # 900 slowloris connections
    .venv/bin/python benchmarks/receiver_stress.py --slow 300 --probes 50

Opens ``--slow`` connections that each send half a request head and then nothing (slowloris),
plus one 10 GB unauthenticated body announcement, one 5000-digit ``webhook-timestamp`` and one
70 KB header line, then times ``--probes`` ``GET /healthz`` requests on fresh connections. Prints
one JSON object: median and worst probe latency, evictions, open connections. 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from ci_report.platform.receiver import start_receiver


def _send(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(data)
    return sock


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--slow", type=int, default=900, help="slowloris connections")
    ap.add_argument("--probes", type=int, default=20, help="/healthz requests timed")
    args = ap.parse_args()
    handle = start_receiver(api_keys=["stress-key-0123456789"])
    port = int(handle.server.server_address[1])
    held = []
    try:
        started = time.monotonic()
        for _ in range(args.slow):
            held.append(_send(port, b"POST /api/jenkins/callback HTTP/1.1\r\nHost: x\r\nX-A: "))
        opened_s = time.monotonic() - started
        ts = str(int(time.time()))
        hostile = [
            b"POST /api/jenkins/callback HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n"
            b"webhook-id: msg_a\r\nwebhook-timestamp: " + ts.encode() + b"\r\n\r\n",
            b"POST /api/jenkins/callback HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"webhook-id: msg_b\r\nwebhook-timestamp: " + b"9" * 5000 + b"\r\n\r\n{}",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
        ]
        held.extend(_send(port, data) for data in hostile)
        latencies = []
        for _ in range(args.probes):
            t0 = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = b""
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer[:60]
            latencies.append(time.monotonic() - t0)
        print(
            json.dumps(
                {
                    "slowConnections": args.slow,
                    "openedInS": round(opened_s, 2),
                    "healthzMedianMs": round(statistics.median(latencies) * 1000, 1),
                    "healthzMaxMs": round(max(latencies) * 1000, 1),
                    "maxConnections": handle.server.limits.max_connections,
                    "openConnections": handle.server.open_connections(),
                    "evicted": handle.server.stats["evicted"],
                }
            )
        )
    finally:
        for sock in held:
            sock.close()
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
