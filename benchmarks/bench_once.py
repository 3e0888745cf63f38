"""Time the whole `aggregate --once` process: the bundled seeds, 10k and 100k items.

Figures of issue 3 (targets in brackets):
- the bundled seeds, cold [<= 1.0 s], next to `python -c "import feedgen, feedparser,
  httpx, apscheduler"`;
- 10,000 items cold [<= 6 s]; 100,000 items cold [<= 60 s, peak RSS <= 1 GB];
- a rerun with nothing changed [<= 10 % of the cold time, zero files rewritten];
- time(100k) / time(10k) [<= 12].

    python benchmarks/bench_once.py [--sizes 10000 100000] [--repeat 3]

Corpora come from benchmarks/gen_seeds.py and are kept in benchmarks/_work.
"""

from __future__ import annotations

import argparse
import sys

from _harness import (
    ROOT,
    aggregate,
    check,
    corpus,
    median,
    output_stamps,
    reset,
    timed,
    workspace,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    args = parser.parse_args()

    imports = [timed([sys.executable, "-c", "import feedgen, feedparser, httpx, apscheduler"])
               for _ in range(5)]
    print(f"python + import feedgen, feedparser, httpx, apscheduler: "
          f"{median([r.wall for r in imports]):.2f} s")

    seeds = workspace("once-seeds", sorted((ROOT / "seeds").glob("*.txt")))
    cold, rerun = [], []
    for _ in range(max(5, args.repeat)):
        reset(seeds)
        cold.append(check(aggregate(seeds), "seeds cold"))
        rerun.append(check(aggregate(seeds), "seeds rerun"))
    print(f"bundled seeds: cold {median([r.wall for r in cold]):.2f} s "
          f"(peak {median([r.peak_mb for r in cold]):.0f} MB), "
          f"rerun {median([r.wall for r in rerun]):.2f} s")

    cold_by_size: dict[int, float] = {}
    for size in args.sizes:
        root = workspace(f"once-{size}", sorted(corpus(size).glob("*.txt")))
        colds, reruns, rewritten = [], [], []
        for _ in range(args.repeat if size <= 10_000 else 1):
            reset(root)
            colds.append(check(aggregate(root), f"{size} cold"))
            before = output_stamps(root)
            reruns.append(check(aggregate(root), f"{size} rerun"))
            after = output_stamps(root)
            rewritten.append(sum(1 for name, stamp in after.items() if before.get(name) != stamp))
        cold_wall = median([r.wall for r in colds])
        rerun_wall = median([r.wall for r in reruns])
        cold_by_size[size] = cold_wall
        phases = colds[len(colds) // 2].phases
        print(f"{size:>7,} items: cold {cold_wall:6.2f} s (peak {max(r.peak_mb for r in colds):.0f}"
              f" MB; read {phases.get('read', 0):.1f} s, dedup {phases.get('dedup', 0):.1f} s, "
              f"publish {phases.get('publish', 0):.1f} s); rerun {rerun_wall:.2f} s "
              f"= {100 * rerun_wall / cold_wall:.1f} % of cold, files rewritten {max(rewritten)}")
    if 10_000 in cold_by_size and 100_000 in cold_by_size:
        print(f"time(100k) / time(10k) = {cold_by_size[100_000] / cold_by_size[10_000]:.1f}")


if __name__ == "__main__":
    main()
