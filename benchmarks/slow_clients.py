#!/usr/bin/env python3
"""`aggregate --serve` under slow clients: /healthz latency while thousands of connections
trickle their request heads, the daemon limited to 1,024 open files.

Starts the real daemon on a copy of the bundled seeds (`--serve 127.0.0.1:0`, a 2 s
schedule) with `RLIMIT_NOFILE` lowered to `--file-limit`, opens `--clients` connections that
each send one header line every 3 s (never a whole request), and meanwhile asks `/healthz`
every 0.2 s on a new connection. Prints the health check's latency (p50, p99, max), how many
runs finished and how (all must be ok), how many slow connections the server closed (to
make room, or at the read timeout), accept errors logged, and the daemon's memory.

Usage::

    python benchmarks/slow_clients.py [--clients 2000] [--file-limit 1024] [--duration 20]

Loopback only; bounded by `--duration`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import resource
import socket
import statistics
import tempfile
import time
from pathlib import Path

from _daemon import Daemon, make_workspace


def health_latency(port: int) -> tuple[float, int]:
    """Seconds for a GET /healthz on a new connection, and its status (0: no answer)."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        response.read()
        status = response.status
    except OSError:
        status = 0
    finally:
        connection.close()
    return time.monotonic() - started, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--file-limit", type=int, default=1024)
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with tempfile.TemporaryDirectory(prefix="newswire-bench-") as scratch:
        config = make_workspace(Path(scratch), '[schedule]\ninterval = "2s"\njitter = "0s"\n')
        # The daemon inherits the low limit; this process then takes its own back, since it
        # holds the clients' ends.
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.file_limit, hard))
        daemon = Daemon(config, "--serve", "127.0.0.1:0")
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, args.clients + 500), hard))
        clients: list[socket.socket] = []
        try:
            port = daemon.port()
            daemon.wait_runs(1, 60)
            rss_before = daemon.rss_kib()
            runs_before = daemon.runs
            for _ in range(args.clients):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
                clients.append(sock)
            latencies: list[float] = []
            failures = 0
            started = time.monotonic()
            next_line, line = started, 0
            while time.monotonic() - started < args.duration:
                if time.monotonic() >= next_line:
                    payload = b"GET / HTTP/1.1\r\n" if line == 0 else b"X-Slow-%d: 1\r\n" % line
                    for sock in clients:
                        with contextlib.suppress(OSError):
                            sock.send(payload)
                    line += 1
                    next_line += 3.0
                took, status = health_latency(port)
                latencies.append(took)
                failures += status != 200
                time.sleep(0.2)
            closed = 0
            for sock in clients:
                try:
                    sock.send(b"X-Last: 1\r\n")
                    closed += sock.recv(1, socket.MSG_DONTWAIT) == b""
                except BlockingIOError:
                    pass
                except OSError:
                    closed += 1
            rss_after = daemon.rss_kib()
        finally:
            for sock in clients:
                sock.close()
            status = daemon.stop()
    runs = [line for line in daemon.lines if ": run " in line][runs_before:]
    accept_lines = [line for line in daemon.lines if "accept" in line]
    latencies.sort()
    print(f"{args.clients} slow clients, daemon file limit {args.file_limit}, "
          f"{args.duration:.0f}s; {next(line for line in daemon.lines if 'serving' in line)}")
    print(f"  /healthz: {len(latencies)} checks, {failures} failed; latency p50 "
          f"{1000 * statistics.median(latencies):.1f} ms, p99 "
          f"{1000 * latencies[int(0.99 * (len(latencies) - 1))]:.1f} ms, max "
          f"{1000 * latencies[-1]:.1f} ms")
    print(f"  runs meanwhile: {len(runs)}, ok: {sum('outcome=ok' in r for r in runs)}")
    print(f"  slow connections closed by the server: {closed} of {args.clients}")
    print(f"  accept-error log lines: {len(accept_lines)}; daemon RSS {rss_before // 1024} -> "
          f"{rss_after // 1024} MB; exit status {status}")


if __name__ == "__main__":
    main()
