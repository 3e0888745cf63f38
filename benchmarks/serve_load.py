#!/usr/bin/env python3
"""HTTP throughput of `aggregate --serve`: 200 concurrent conditional clients of combined.atom.

Starts the real daemon on a copy of the bundled seeds (`--serve 127.0.0.1:0`, an hourly
schedule so the files stay still), takes combined.atom's ETag, and loads it with wrk
(Debian's `wrk`; `apt-get install wrk`): every request carries `If-None-Match` and
`Accept-Encoding: gzip`, as a feed reader polls, so each answer is a 304. Three rounds:

* saturated: every client sends its next request as soon as the answer arrives, which gives
  the most requests/s the server manages, and latency with a queue always full;
* paced: every client waits `--pace` ms between requests (200 clients at 80 ms offer
  2,500 requests/s, above the target), which gives the latency at that rate;
* full body: saturated plain GETs of the gzip body, for comparison.

Prints requests/s and p99 latency against the targets (>= 2,000 requests/s, p99 <= 50 ms).

Usage::

    python benchmarks/serve_load.py [--connections 200] [--threads 1] [--duration 15]

Bounded by `--duration` per round; loopback only. On a 2-core machine wrk and the server
share the cores: `--threads 1` leaves the server one of them.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from _daemon import Daemon, make_workspace

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


_PACING_SCRIPT = """
local pause = 0
function init(args) pause = tonumber(args[1]) end
function delay() return pause end
"""
"""wrk's Lua hook: each connection waits `pause` ms before each request."""


def wrk(url: str, headers: dict[str, str], args: argparse.Namespace,
        pace: Path | None = None) -> tuple[float, float, str]:
    """Run wrk; return (requests per second, p99 in ms, its report)."""
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
               "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    if pace is not None:
        command[1:1] = ["-s", str(pace)]
        command += ["--", str(args.pace)]
    report = subprocess.run(command, capture_output=True, text=True, check=True,
                            timeout=args.duration + 60).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", report)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", report)
    if not rate or not p99:
        sys.exit(f"cannot read wrk's report:\n{report}")
    return float(rate.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)], report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--duration", type=int, default=15, help="seconds per round")
    parser.add_argument("--pace", type=int, default=80,
                        help="ms each client waits between requests in the paced round")
    parser.add_argument("--show", action="store_true", help="print wrk's full reports")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="newswire-bench-") as scratch:
        config = make_workspace(Path(scratch), '[schedule]\ninterval = "1h"\n')
        daemon = Daemon(config, "--serve", "127.0.0.1:0")
        try:
            url = f"http://127.0.0.1:{daemon.port()}/combined.atom"
            daemon.wait_runs(1, 60)
            probe = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(probe, timeout=10) as response:
                etag = response.headers["ETag"]
                size = len(response.read())
            pace = Path(scratch) / "pace.lua"
            pace.write_text(_PACING_SCRIPT, encoding="utf-8")
            conditional = {"If-None-Match": etag, "Accept-Encoding": "gzip"}
            rounds: list[tuple[str, dict[str, str], Path | None]] = [
                ("conditional (304), saturated", conditional, None),
                (f"conditional (304), paced {args.pace} ms/client", conditional, pace),
                (f"full gzip body ({size} B), saturated", {"Accept-Encoding": "gzip"}, None),
            ]
            print(f"wrk: {args.threads} thread(s), {args.connections} connections, "
                  f"{args.duration}s per round, {url}")
            for label, headers, script in rounds:
                cpu_before = daemon.cpu_seconds()
                rate, p99, report = wrk(url, headers, args, script)
                cpu = (daemon.cpu_seconds() - cpu_before) / args.duration
                verdict = "PASS" if rate >= 2000 and p99 <= 50 else "FAIL"
                print(f"  {label}: {rate:,.0f} requests/s, p99 {p99:.1f} ms, "
                      f"server CPU {100 * cpu:.0f}% of a core"
                      + (f" -> {verdict} (>= 2,000/s, p99 <= 50 ms)" if "304" in label else ""))
                if args.show:
                    print(report)
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
