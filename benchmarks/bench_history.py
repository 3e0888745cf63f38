"""Time publishing the full history: topic and country feeds and every RFC 5005 archive.

For each size: one cold run (read, dedup, publish, from the run's own -v timings); then
`--repeat` times each of: publishing everything again into an empty output directory (the
state kept: every document rendered and written), a run that brings one new item (only the
archives it changes are rendered), and an unchanged rerun. Prints the documents published
(archives among them), wall times (min-max) and peak resident memory. Issue 14's budget for
100,000 items cold: <= 50 s, <= 1 GB.

    python benchmarks/bench_history.py [--sizes 10000 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil

from _harness import CONFIG, Run, aggregate, check, corpus, reset, workspace

TOPICS = """
[[topics]]
slug = "cybercrime"
title = "Cybercrime"
query = 'any(cybercrime cyber* ransomware DDoS phishing malware)'

[[topics]]
slug = "drugs"
title = "Drug trafficking"
query = 'any(cocaine heroin cannabis "drug trafficking" narcotics)'

[[topics]]
slug = "balkans"
title = "Western Balkans"
query = 'any("Western Balkans" country:AL country:BA country:ME country:MK country:RS)'
"""


def spread(runs: list[Run], phase: str | None = None) -> str:
    values = [r.phases.get(phase, 0.0) if phase else r.wall for r in runs]
    return f"{min(values):.2f}-{max(values):.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for size in args.sizes:
        root = workspace(f"history-{size}", sorted(corpus(size).glob("*.txt")))
        (root / "config" / "aggregator.toml").write_text(CONFIG + TOPICS)
        reset(root)
        cold = check(aggregate(root), f"{size} cold")
        output = root / "output"
        documents = [p for p in output.rglob("*") if p.is_file() and not p.name.startswith(".")]
        archives = [p for p in documents if p.parent.name == "archive"]
        topics = [p for p in documents if p.name.startswith("topic-")]
        countries = [p for p in documents if p.name.startswith("country-")]
        size_mb = sum(p.stat().st_size for p in documents) / 1e6
        print(f"{size:>7,} items: {len(documents)} files ({len(archives)} archive, "
              f"{len(topics)} topic, {len(countries)} country; {size_mb:.0f} MB)")
        print(f"  cold: {cold.wall:.1f} s, peak {cold.peak_mb:.0f} MB "
              f"(read {cold.phases.get('read', 0):.1f} s, dedup {cold.phases.get('dedup', 0):.1f}"
              f" s, publish {cold.phases.get('publish', 0):.1f} s)")
        republish = []
        for _ in range(args.repeat):
            shutil.rmtree(output)
            republish.append(check(aggregate(root), f"{size} republish"))
        print(f"  publish everything into an empty directory: publish "
              f"{spread(republish, 'publish')}, whole run {spread(republish)}, "
              f"peak {max(r.peak_mb for r in republish):.0f} MB")
        incremental = []
        for n in range(args.repeat):
            (root / "seeds" / f"zz-new-{n}.txt").write_text(
                f"Europol supports operation Bench {n}\n\nSource: Europol\n\nA new text "
                f"number {n} about counterfeit medicine seized in Ruritania.\n")
            incremental.append(check(aggregate(root), f"{size} one new item"))
        print(f"  one new item: publish {spread(incremental, 'publish')}, whole run "
              f"{spread(incremental)}; files written {max(_written(r) for r in incremental)}")
        unchanged = [check(aggregate(root), f"{size} rerun") for _ in range(args.repeat)]
        print(f"  unchanged rerun: {spread(unchanged)}; "
              f"files written {max(_written(r) for r in unchanged)}")

def _written(run: Run) -> int:
    for part in run.stderr.split(";"):
        if "files written" in part:
            return int(part.split()[0])
    return -1


if __name__ == "__main__":
    main()
