"""Pairwise precision, recall and F1 of dedup on the labelled set in tests/data/dedup.

Prints the figures for a cold run (all items at once) and an incremental one (day by day),
then every wrong decision with the evidence behind it.

    python benchmarks/dedup_quality.py [--merge 0.4] [--agree 0.25]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from dedup_eval import (
    cluster_cold,
    cluster_incremental,
    explain_pair,
    load_items,
    load_labels,
    score,
)

from aggregator.config import DedupConfig


def main() -> None:
    defaults = DedupConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merge", type=float, default=defaults.merge_threshold)
    parser.add_argument("--agree", type=float, default=defaults.agree_threshold)
    args = parser.parse_args()
    config = DedupConfig(merge_threshold=args.merge, agree_threshold=args.agree,
                         near_miss_threshold=min(args.agree, args.merge))
    items, labels = load_items(), load_labels()
    stories = len(set(labels.story_of.values()))
    print(f"{len(items)} items, {stories} labelled stories, {len(labels.true_pairs())} true pairs, "
          f"{len(labels.hard_negatives)} hard-negative pairs")
    for name, clustering in (("cold", cluster_cold), ("incremental", cluster_incremental)):
        result = score(clustering(items, config), labels)
        print(f"{name:12s} precision {result.precision:.3f}  recall {result.recall:.3f}  "
              f"F1 {result.f1:.3f}  hard-negative merges {len(result.hard_negative_merges)}")
        for a, b in result.false_merges:
            print("   wrongly merged:", explain_pair(items, a, b, config))
        for a, b in result.missed_merges:
            kind = labels.kind_of_story[labels.story_of[a]]
            print(f"   missed ({kind}):", explain_pair(items, a, b, config))


if __name__ == "__main__":
    main()
