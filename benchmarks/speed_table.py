"""Every row of issue 14's speed table in one run, next to lemon24/reader where it applies.

Rows (targets from the issue):

- seed items cold: 1,000 (<= 1.2 s), 10,000 (<= 5 s), 100,000 (<= 50 s, <= 1 GB peak; and
  time(100k) / time(10k) <= 10);
- the unchanged rerun over 10,000 stored seed items (<= 0.25 s);
- live feeds on loopback, newswire over reader `update_feeds(workers=16)`: 100 feeds x 50
  entries cold (<= 1.0x) and warm, every feed answering 304 (<= 0.5x); 500 feeds cold
  (<= 0.75x), warm (<= 0.5x), and after 52 of them changed with 2 new entries each (<= 0.75x).

Each figure is min-max (and median) of `--runs` whole processes, timed from outside. reader
must be importable here (see benchmarks/README.md: a separate venv with `reader sgmllib3k`
and this project installed); without it, `--no-reader` prints newswire's figures alone.

    python benchmarks/speed_table.py                 # every row, 3 runs each (~25 min)
    python benchmarks/speed_table.py --skip-100k     # without the 100,000-item rows
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import live_feeds
from _harness import aggregate, check, corpus, reset, workspace


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    what: str
    ours: Sequence[float]
    theirs: Sequence[float] = ()
    target: str = ""
    met: bool | None = None
    note: str = ""


def spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.2f}-{max(values):.2f} (median {statistics.median(values):.2f})"


def seed_rows(size: int, runs: int, limit: float, rerun_limit: float | None) -> list[Row]:
    """Cold runs of `size` seed items (and, with `rerun_limit`, unchanged reruns)."""
    root = workspace(f"table-{size}", sorted(corpus(size).glob("*.txt")))
    colds, reruns, peaks, notes = [], [], [], []
    for _ in range(runs):
        reset(root)
        cold = check(aggregate(root), f"{size} cold")
        colds.append(cold.wall)
        peaks.append(cold.peak_mb)
        phases = cold.phases
        notes.append(", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
        if rerun_limit is not None:
            reruns.append(check(aggregate(root), f"{size} rerun").wall)
    rows = [Row(f"{size:,} seed items, cold", colds, target=f"<= {limit:g} s",
                met=statistics.median(colds) <= limit,
                note=f"peak {max(peaks):.0f} MB; phases of the last run: {notes[-1]}")]
    if rerun_limit is not None:
        rows.append(Row(f"unchanged rerun ({size:,} stored)", reruns,
                        target=f"<= {rerun_limit:g} s",
                        met=statistics.median(reruns) <= rerun_limit))
    return rows


def live_rows(feeds: int, runs: int, with_reader: bool, changed: int) -> list[Row]:
    """Cold, warm (and changed) rounds over `feeds` loopback feeds, newswire and reader."""
    budget = live_feeds.Budget(3600)
    with tempfile.TemporaryDirectory(prefix="newswire-table-") as temporary:
        results = live_feeds.measure(feeds, 50, runs, with_reader, budget, Path(temporary),
                                     changed)
    rows = []
    for step in ("cold", "warm", "changed"):
        ours = results.figures.get(f"newswire {step}", [])
        if not ours:
            continue
        theirs = results.figures.get(f"reader {step}", [])
        target = live_feeds.ratio_target(feeds, step)
        ratio = (statistics.median(ours) / statistics.median(theirs)) if theirs else None
        label = {"cold": "cold", "warm": "warm (all 304)",
                 "changed": f"after {changed} changed "
                            f"({live_feeds.NEW_ENTRIES} new entries each)"}[step]
        rows.append(Row(
            f"{feeds} feeds x 50 entries, {label}", ours, theirs,
            target=f"<= {target:g}x reader" if target is not None else "",
            met=None if ratio is None or target is None else ratio <= target,
            note=f"ratio {ratio:.2f}" if ratio is not None else "",
        ))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (>= 3 to quote)")
    parser.add_argument("--skip-100k", action="store_true", help="leave out 100,000 items")
    parser.add_argument("--no-reader", action="store_true", help="newswire's figures only")
    args = parser.parse_args()
    with_reader = not args.no_reader
    if with_reader:
        try:
            import reader  # noqa: F401
        except ImportError:
            parser.error("reader is not installed here (see benchmarks/README.md), "
                         "or pass --no-reader")
    rows: list[Row] = []
    rows += seed_rows(1_000, args.runs, 1.2, None)
    rows += seed_rows(10_000, args.runs, 5.0, 0.25)
    if not args.skip_100k:
        big = seed_rows(100_000, args.runs, 50.0, None)
        rows += big
        ten = next(r for r in rows if r.what.startswith("10,000"))
        factor = statistics.median(big[0].ours) / statistics.median(ten.ours)
        rows.append(Row("time(100k) / time(10k)", [factor], target="<= 10",
                        met=factor <= 10))
    rows += live_rows(100, args.runs, with_reader, 0)
    rows += live_rows(500, args.runs, with_reader, 52)
    print()
    print(f"{'row':52s} {'newswire s':30s} {'reader s':30s} {'target':16s} met")
    for row in rows:
        verdict = "-" if row.met is None else ("yes" if row.met else "NO")
        print(f"{row.what:52s} {spread(row.ours):30s} {spread(row.theirs):30s} "
              f"{row.target:16s} {verdict}  {row.note}")


if __name__ == "__main__":
    main()
