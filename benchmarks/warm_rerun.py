#!/usr/bin/env python3
"""Time the unchanged rerun: `aggregate --once` over 10,000 stored seed items when nothing
changed (issue 14's warm path; target <= 0.25 s), and show what it imports.

Prints the min-max wall and CPU seconds of `--runs` reruns (after one cold run), the floor
of a bare `python -c pass` and of importing the CLI, and the heaviest top-level packages the
rerun imports (from `python -X importtime`, cumulative microseconds).

    python benchmarks/warm_rerun.py [--items 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence

from _harness import AGGREGATE, Run, check, corpus, reset, timed, workspace

_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)$")


def spread(runs: Sequence[Run]) -> str:
    """min-max of wall and CPU seconds."""
    walls = [r.wall for r in runs]
    cpus = [r.cpu for r in runs]
    return (f"wall {min(walls):.3f}-{max(walls):.3f} s, "
            f"CPU {min(cpus):.3f}-{max(cpus):.3f} s ({len(runs)} runs)")


def heavy_imports(config: str, top: int) -> list[tuple[str, float]]:
    """The top-level packages a rerun imports, with the seconds their modules took to import
    (each module's own time, summed by package)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", AGGREGATE, "--once", "--config", config],
        capture_output=True, text=True, timeout=120, check=False,
    )
    totals: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            totals[match.group(2).split(".")[0]] += int(match.group(1)) / 1e6
    return totals.most_common(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    floor = [timed([sys.executable, "-c", "pass"]) for _ in range(args.runs)]
    cli = [timed([sys.executable, "-c", "import aggregator.cli"]) for _ in range(args.runs)]
    print(f"python -c pass: {spread(floor)}")
    print(f"python -c 'import aggregator.cli': {spread(cli)}")

    root = workspace(f"warm-{args.items}", sorted(corpus(args.items).glob("*.txt")))
    reset(root)
    config = str(root / "config" / "aggregator.toml")
    cold = check(timed([AGGREGATE, "--once", "--config", config]), "cold")
    print(f"{args.items:,} items cold: wall {cold.wall:.2f} s, CPU {cold.cpu:.2f} s")
    reruns = [check(timed([AGGREGATE, "--once", "--config", config]), "rerun")
              for _ in range(args.runs)]
    print(f"{args.items:,} items unchanged rerun: {spread(reruns)} (target <= 0.25 s)")
    print("heaviest packages the rerun imports (import seconds by package, one run):")
    for name, seconds in heavy_imports(config, top=12):
        print(f"  {name:24s} {seconds:.3f}")
    print(f"(machine: {os.cpu_count()} cores, shared; figures move between runs)")


if __name__ == "__main__":
    main()
