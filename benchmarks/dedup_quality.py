"""Pairwise precision, recall and F1 of dedup on the labelled sets, honestly split.

Prints, cold (all items at once) and incremental (day by day):
- the regression set (tests/data/dedup; the engine was once tuned on it, and it is part of
  the scorer's training data now);
- the dev part of the blind sets (tests/data/dedup_blind; the scorer is fitted on it);
- the test part of the blind sets (never fitted on): the figures to quote;
- k-fold cross-validation by story over the blind sets: refit on k-1 folds (plus the
  regression set), score the held-out fold, pooled over folds;
then every wrong decision on test, with the evidence behind it.

    python benchmarks/dedup_quality.py [--folds 5] [--show dev]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dedup_eval import (  # noqa: E402
    EVAL_DIR,
    EvalSet,
    Score,
    blind_sets,
    cluster_cold,
    cluster_incremental,
    dense_sets,
    explain_pair,
    folds,
    load_set,
    pooled,
    score,
    split,
)
from fit_dedup import fit  # noqa: E402

from aggregator.config import DedupConfig  # noqa: E402
from aggregator.dedup import scorer  # noqa: E402

MODES = {"cold": cluster_cold, "incremental": cluster_incremental}


def run(sets: Sequence[EvalSet], config: DedupConfig, mode: str) -> Score:
    """Pooled figures of the installed scorer over some sets in one mode."""
    return pooled([score(MODES[mode](s.features, config), s.labels) for s in sets])


def line(name: str, result: Score) -> str:
    return (f"{name:28s} P {result.precision:.3f}  R {result.recall:.3f}  F1 {result.f1:.3f}  "
            f"hard-negative merges {len(result.hard_negative_merges)}  "
            f"(true pairs {result.pairs}, predicted {result.predicted})")


def wrong_decisions(sets: Sequence[EvalSet], config: DedupConfig, mode: str) -> None:
    """Every false and missed merge of one mode, explained."""
    for evaluation in sets:
        result = score(MODES[mode](evaluation.features, config), evaluation.labels)
        labels = evaluation.labels
        for a, b in result.false_merges:
            kind = next((k for x, y, k in labels.hard_negatives if {x, y} == {a, b}), "")
            print(f"  wrongly merged {('[' + kind + '] ') if kind else ''}"
                  f"{explain_pair(evaluation.items, a, b, config)}")
        for a, b in result.missed_merges:
            kind = labels.kind_of_story[labels.story_of[a]]
            print(f"  missed [{kind}] {explain_pair(evaluation.items, a, b, config)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5, help="k of the cross-validation (0: none)")
    parser.add_argument("--show", choices=("test", "dev", "none"), default="test",
                        help="whose wrong decisions to list")
    args = parser.parse_args()
    config = DedupConfig()
    regression = load_set(EVAL_DIR)
    blind = blind_sets()
    dense = dense_sets()
    parts = [split(s) for s in blind]
    dev = [d for d, _ in parts]
    test = [t for _, t in parts]
    count = sum(len(s.items) for s in blind)
    stories = sum(s.labels.multi_item_stories() for s in blind)
    negatives = sum(len(s.labels.hard_negatives) for s in blind)
    print(f"blind sets: {', '.join(s.name for s in blind)}: {count} items, {stories} multi-item "
          f"stories, {negatives} hard-negative pairs")
    print(f"dev: {sum(len(s.items) for s in dev)} items, "
          f"{sum(s.labels.multi_item_stories() for s in dev)} multi-item stories; "
          f"test: {sum(len(s.items) for s in test)} items, "
          f"{sum(s.labels.multi_item_stories() for s in test)} multi-item stories, "
          f"{sum(len(s.labels.hard_negatives) for s in test)} hard-negative pairs")
    for mode in MODES:
        print(f"-- {mode}")
        print(line("regression set", run([regression], config, mode)))
        print(line("blind dev", run(dev, config, mode)))
        print(line("blind test", run(test, config, mode)))
        for evaluation in test:
            print(line(f"  {evaluation.name}", run([evaluation], config, mode)))
        for evaluation in dense:
            print(line(f"dense {evaluation.name} (whole)", run([evaluation], config, mode)))
    if args.folds:
        cross_validate(blind, regression, config, args.folds)
    shown = {"test": test, "dev": dev, "none": []}[args.show]
    if shown:
        print(f"-- wrong decisions on {args.show} (cold)")
        wrong_decisions(shown, config, "cold")
        print(f"-- wrong decisions on {args.show} (incremental)")
        wrong_decisions(shown, config, "incremental")


def cross_validate(blind: Sequence[EvalSet], regression: EvalSet, config: DedupConfig,
                   k: int) -> None:
    """Refit on k-1 folds of every blind set (plus the regression set); score the k-th."""
    split_sets = [folds(s, k) for s in blind]
    scores: dict[str, list[Score]] = {mode: [] for mode in MODES}
    for held in range(k):
        training = [f for parts in split_sets for n, f in enumerate(parts) if n != held]
        fitted = fit([*training, regression], config, verbose=False)
        scorer.install(fitted)
        try:
            settings = replace(config, merge_threshold=fitted.merge_threshold,
                               agree_threshold=fitted.agree_threshold)
            held_out = [parts[held] for parts in split_sets]
            for mode in MODES:
                scores[mode].append(run(held_out, settings, mode))
        finally:
            scorer.install(None)
    for mode in MODES:
        print(line(f"{k}-fold by story, {mode}", pooled(scores[mode])))


if __name__ == "__main__":
    main()
