"""Fit dedup's pair scorer on the dev split of the labelled sets and write scorer.json.

The model is a logistic regression over the evidence of a pair (`aggregator.dedup.scorer`
lists the features). Training pairs are the pairs the engine would compare: each item with
the candidates its blocking keys find among the other items of its set, exact identities and
vetoed pairs left out (those are decided by rules, not by the score). The thresholds are then
chosen on dev clustering near the probability of one half: the pair with the best pairwise F1,
each merged hard-negative pair counted as a loss of 0.03.

Fits on: the dev part of every blind set (tests/data/dedup_blind) and the regression set
(tests/data/dedup). Never on a test part.

    python benchmarks/fit_dedup.py            # fit and write aggregator/dedup/scorer.json
    python benchmarks/fit_dedup.py --dry-run  # fit and print, write nothing
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from dedup_eval import (  # noqa: E402
    EVAL_DIR,
    EvalSet,
    blind_sets,
    cluster_cold,
    cluster_incremental,
    load_set,
    pooled,
    score,
    split,
)

from aggregator import dedup  # noqa: E402
from aggregator.config import DedupConfig  # noqa: E402
from aggregator.dedup import scorer  # noqa: E402
from aggregator.dedup.blocking import Index  # noqa: E402

SCORER_JSON = ROOT / "aggregator" / "dedup" / "scorer.json"
MERGE_GRID = (0.4, 0.45, 0.5, 0.55, 0.6)
"""Merge thresholds tried: near the probability of one half, where a calibrated model's
decision belongs; a wide grid chose extreme values on small folds."""
AGREE_GRID = (0.05, 0.1, 0.2)
HARD_NEGATIVE_COST = 0.03
"""F1 given up per merged hard-negative pair when choosing thresholds."""
REGULARIZATION = 1.0
"""Inverse L2 strength (scikit-learn's C): a small set, so keep the coefficients modest."""


def training_pairs(evaluation: EvalSet, config: DedupConfig,
                   diagnosis: dict[str, list[str]] | None = None,
                   ) -> tuple[list[list[float]], list[int]]:
    """Evidence vectors and labels of the pairs a cold run would score in one set: each item,
    in the order a run places them, with the candidates blocking finds among the items before
    it. `diagnosis` collects what became of each true pair (not a candidate, exact, vetoed)."""
    index = Index(window=config.window_days, key_cap=config.key_cap, stored_counts={})
    story_of = evaluation.labels.story_of
    vectors: list[list[float]] = []
    labels: list[int] = []
    compared: set[frozenset[str]] = set()
    for f in sorted(evaluation.features, key=dedup.processing_order):
        index.focus(f)
        for slot in index.candidates(f, dedup.blocking_keys(f), config.candidate_limit):
            other = index.features[slot]
            same = story_of[f.item_id] == story_of[other.item_id]
            compared.add(frozenset((f.item_id, other.item_id)))
            if dedup.exact_identity(f, other) is not None:
                _note(diagnosis, same, "exact", f, other)
                continue
            if f.day is not None and other.day is not None \
                    and abs(f.day - other.day) > config.window_days:
                _note(diagnosis, same, "outside the window", f, other)
                continue
            e = dedup.evidence(f, other, index)
            veto = dedup.conflict(f, other, e)
            if veto is not None:
                _note(diagnosis, same, f"veto: {veto}", f, other)
                continue
            vectors.append(list(e.values))
            labels.append(int(same))
        index.add(f, f.item_id)
    if diagnosis is not None:
        for pair in evaluation.labels.true_pairs() - compared:
            diagnosis.setdefault("not a candidate", []).append(" ~ ".join(sorted(pair)))
    return vectors, labels


def _note(diagnosis: dict[str, list[str]] | None, same: bool, what: str,
          a: dedup.Features, b: dedup.Features) -> None:
    if diagnosis is not None and same:
        diagnosis.setdefault(what, []).append(f"{a.item_id} ~ {b.item_id}")


def fit(dev: Sequence[EvalSet], config: DedupConfig, *, verbose: bool = True) -> scorer.Model:
    """A model fitted on the dev sets, thresholds chosen on their clustering."""
    from sklearn.linear_model import LogisticRegression

    xs: list[list[float]] = []
    ys: list[int] = []
    diagnosis: dict[str, list[str]] = {}
    for evaluation in dev:
        vectors, labels = training_pairs(evaluation, config, diagnosis)
        xs.extend(vectors)
        ys.extend(labels)
    regression = LogisticRegression(C=REGULARIZATION, max_iter=2000)
    regression.fit(np.array(xs), np.array(ys))
    if verbose:
        print(f"training pairs {len(ys)} ({sum(ys)} true); true pairs decided otherwise:")
        for what, pairs in sorted(diagnosis.items(), key=lambda d: -len(d[1])):
            print(f"  {len(pairs):3d} {what}")
    fitted = scorer.Model(
        intercept=float(regression.intercept_[0]),
        coefficients=tuple(float(c) for c in regression.coef_[0]),
        merge_threshold=0.5, agree_threshold=0.05,
    )
    return choose_thresholds(fitted, dev, config, verbose=verbose)


def choose_thresholds(fitted: scorer.Model, dev: Sequence[EvalSet], config: DedupConfig,
                      *, verbose: bool) -> scorer.Model:
    """The thresholds with the best dev F1 (cold and incremental pooled), each merged
    hard-negative pair counted as a loss; among equals, the middle ones."""
    results: list[tuple[float, float, float]] = []
    for agree in AGREE_GRID:
        for merge in MERGE_GRID:
            candidate = replace(fitted, merge_threshold=merge, agree_threshold=agree)
            figures = evaluate(candidate, dev, config)
            value = figures.f1 - HARD_NEGATIVE_COST * len(figures.hard_negative_merges)
            results.append((value, merge, agree))
    best_value = max(r[0] for r in results)
    best = [r for r in results if r[0] >= best_value - 0.002]
    agrees = sorted({r[2] for r in best})
    agree = agrees[len(agrees) // 2]
    merges = sorted(r[1] for r in best if r[2] == agree)
    merge = merges[len(merges) // 2]
    if verbose:
        print(f"thresholds: merge {merge} agree {agree} (dev F1 less hard-negative cost "
              f"{best_value:.3f}; {len(best)} settings within 0.002)")
    return replace(fitted, merge_threshold=merge, agree_threshold=agree)


def evaluate(fitted: scorer.Model, sets: Sequence[EvalSet], config: DedupConfig,
             modes: Sequence[str] = ("cold", "incremental")) -> object:
    """Pooled pairwise figures of a model on some sets."""
    scorer.install(fitted)
    try:
        settings = replace(config, merge_threshold=fitted.merge_threshold,
                           agree_threshold=fitted.agree_threshold)
        scores = []
        for evaluation in sets:
            for mode in modes:
                clustering = cluster_cold if mode == "cold" else cluster_incremental
                scores.append(score(clustering(evaluation.features, settings),
                                    evaluation.labels))
        return pooled(scores)
    finally:
        scorer.install(None)


def dev_sets() -> list[EvalSet]:
    """The sets the scorer is fitted on: each blind set's dev part and the regression set."""
    return [split(s)[0] for s in blind_sets()] + [load_set(EVAL_DIR)]


def as_json(fitted: scorer.Model, sets: Sequence[EvalSet]) -> str:
    """scorer.json's text."""
    return json.dumps({
        "comment": "Fitted by benchmarks/fit_dedup.py on the dev split; do not edit by hand.",
        "fitted_on": [s.name for s in sets],
        "intercept": round(fitted.intercept, 4),
        "coefficients": {name: round(c, 4) for name, c in zip(scorer.FEATURES,
                                                               fitted.coefficients,
                                                               strict=True)},
        "merge_threshold": fitted.merge_threshold,
        "agree_threshold": fitted.agree_threshold,
    }, indent=2) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print, write nothing")
    args = parser.parse_args()
    sets = dev_sets()
    fitted = fit(sets, DedupConfig())
    for name, c in sorted(zip(scorer.FEATURES, fitted.coefficients, strict=True),
                          key=lambda p: -abs(p[1])):
        print(f"  {name:14s} {c:+.3f}")
    print(f"  {'intercept':14s} {fitted.intercept:+.3f}")
    text = as_json(fitted, sets)
    if args.dry_run:
        print(text)
    else:
        SCORER_JSON.write_text(text, encoding="utf-8")
        print(f"wrote {SCORER_JSON.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
