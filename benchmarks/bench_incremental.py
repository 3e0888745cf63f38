"""Incremental dedup at scale: 1,000 new items arriving at a store of 10k or 100k items.

Figures of issue 4 (targets in brackets):
- with 100,000 items stored, the run that adds 1,000 new ones: its dedup step [<= 2 s] and
  the whole `aggregate --once` [<= 10 s];
- the same 1,000 new items against 10k vs 100k stored [<= 1.5x the time];
- cold clustering of 100,000 items [dedup step <= 30 s, peak RSS <= 1 GB].

The corpus is generated in date order, 1,000 items a file, so the last file holds the
newest items: the store is built from the other files, then the last one arrives. A larger
store is a longer history at the same pace (about 27 items a day: 10k items over a year,
100k over ten), so the window around the new items holds as many stored items; with
`--same-span` every store covers one year, ten times denser at 100k.

    python benchmarks/bench_incremental.py [--stored 10000 100000] [--same-span]
"""

from __future__ import annotations

import argparse

from _harness import aggregate, check, corpus, reset, workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3, help="incremental runs (median)")
    parser.add_argument("--same-span", action="store_true",
                        help="every store covers one year (denser as it grows)")
    args = parser.parse_args()
    dedup_by_size: dict[int, float] = {}
    for stored in args.stored:
        days = 365 if args.same_span else max(365, 365 * stored // 10_000)
        files = sorted(corpus(stored + 1000, seed=11, days=days).glob("*.txt"))
        old, new = files[:-1], files[-1]
        root = workspace(f"incremental-{stored}", old)
        incremental = []
        for attempt in range(args.repeat):
            reset(root)
            (root / "seeds" / new.name).unlink(missing_ok=True)
            cold = check(aggregate(root), f"{stored} cold")
            if attempt == 0:
                print(f"{stored:>7,} stored, cold: {cold.wall:.1f} s, dedup step "
                      f"{cold.phases.get('dedup', 0):.1f} s, peak {cold.peak_mb:.0f} MB")
            (root / "seeds" / new.name).symlink_to(new)
            incremental.append(check(aggregate(root), f"{stored} + 1000"))
        runs = sorted(incremental, key=lambda r: r.phases.get("dedup", 0))
        middle = runs[len(runs) // 2]
        dedup_by_size[stored] = middle.phases.get("dedup", 0)
        print(f"{stored:>7,} stored + 1,000 new: dedup step {dedup_by_size[stored]:.2f} s, "
              f"whole run {sorted(r.wall for r in incremental)[len(runs) // 2]:.2f} s, "
              f"peak {middle.peak_mb:.0f} MB")
    if 10_000 in dedup_by_size and 100_000 in dedup_by_size and dedup_by_size[10_000]:
        print(f"dedup step, 100k vs 10k stored: "
              f"{dedup_by_size[100_000] / dedup_by_size[10_000]:.2f}x")


if __name__ == "__main__":
    main()
