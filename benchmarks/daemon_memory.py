#!/usr/bin/env python3
"""Daemon memory over 1,000 scheduled runs, and its CPU use while idle between runs.

Runs the real daemon (`aggregate --serve 127.0.0.1:0`) on a copy of the bundled seeds with
`[schedule] interval = "50ms"`, so the scheduler itself drives every run, and reads the
process's RSS from /proc after run 10 and after run 1,000 (target: within +20 MB). With
`--churn`, a side thread rewrites one seed file every 100 ms with an extra item whose text
changes each time (an edit of one stored item, so the store does not grow), so runs also
parse, reconcile, deduplicate and publish instead of finding everything unchanged.
Then a second daemon with an hourly schedule sits idle after its first run, and its CPU time
over `--idle` seconds gives the idle CPU share (target: ~0).

Usage::

    python benchmarks/daemon_memory.py [--runs 1000] [--churn] [--idle 20]

Bounded: every wait has a timeout; loopback only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from _daemon import Daemon, make_workspace

EXTRA_ITEM = (
    "\nBenchmark churn item about a training exercise\n\nSource: NATO\n\n"
    "On Monday 2 December 2024 NATO held training exercise number {number} in Brussels.\n"
)


def churn(seed: Path, stop: threading.Event) -> int:
    """Rewrite `seed` with an edited extra item every 100 ms until `stop`; return the edits."""
    original = seed.read_text(encoding="utf-8")
    edits = 0
    while not stop.wait(0.1):
        edits += 1
        _replace(seed, original + EXTRA_ITEM.format(number=edits))
    _replace(seed, original)
    return edits


def _replace(path: Path, text: str) -> None:
    # A rename, so a run never reads a half-written file (that would be a failed source).
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def memory(root: Path, runs: int, early: int, with_churn: bool, timeout: float) -> None:
    config = make_workspace(root, '[schedule]\ninterval = "50ms"\njitter = "0s"\n')
    daemon = Daemon(config, "--serve", "127.0.0.1:0")
    stop = threading.Event()
    switches: list[int] = []
    if with_churn:
        seed = sorted((root / "seeds").glob("*.txt"))[0]
        worker = threading.Thread(target=lambda: switches.append(churn(seed, stop)))
        worker.start()
    started = time.monotonic()
    try:
        daemon.wait_runs(early, timeout)
        rss_early = daemon.rss_kib()
        daemon.wait_runs(runs, timeout)
        rss_late = daemon.rss_kib()
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        if with_churn:
            worker.join()
        status = daemon.stop()
    written = sum(1 for line in daemon.lines if ": run " in line and "written=0" not in line)
    failed = sum(1 for line in daemon.lines if "outcome=ok" not in line and ": run " in line)
    growth = (rss_late - rss_early) / 1024
    print(f"memory: {runs} scheduled runs in {elapsed:.0f}s"
          f"{f' (churn: {switches[0]} seed edits)' if with_churn else ''};"
          f" runs that rewrote files: {written}; runs not ok: {failed}; exit status {status}")
    print(f"  RSS after run {early}: {rss_early / 1024:.1f} MB")
    print(f"  RSS after run {runs}: {rss_late / 1024:.1f} MB")
    print(f"  growth: {growth:+.1f} MB (target: at most +20 MB) -> "
          f"{'PASS' if growth <= 20 else 'FAIL'}")


def idle(root: Path, seconds: float) -> None:
    config = make_workspace(root, '[schedule]\ninterval = "1h"\n')
    for label, args in (("daemon", ()), ("daemon --serve", ("--serve", "127.0.0.1:0"))):
        daemon = Daemon(config, *args)
        try:
            daemon.wait_runs(1, 60)
            time.sleep(1.0)  # let the first run's aftermath settle
            cpu_before, wall_before = daemon.cpu_seconds(), time.monotonic()
            time.sleep(seconds)
            cpu = daemon.cpu_seconds() - cpu_before
            wall = time.monotonic() - wall_before
        finally:
            daemon.stop()
        print(f"idle CPU, {label}: {cpu:.2f} s CPU in {wall:.0f} s = {100 * cpu / wall:.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--early", type=int, default=10, help="the baseline run (default 10)")
    parser.add_argument("--churn", action="store_true",
                        help="keep changing a seed file so runs do real work")
    parser.add_argument("--idle", type=float, default=20.0, help="idle seconds to measure")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="newswire-bench-") as scratch:
        memory(Path(scratch) / "memory", args.runs, args.early, args.churn, args.timeout)
        if args.idle > 0:
            idle(Path(scratch) / "idle", args.idle)


if __name__ == "__main__":
    main()
