"""Dedup quality on the labelled sets (tests/dedup_eval.py): the regression set, and the test
part of the blind sets, which the scorer was never fitted on.

The floors are what the engine reaches with a margin (benchmarks/dedup_quality.py prints the
figures): a change that loses stories or merges hard negatives fails here.
"""

from __future__ import annotations

from dataclasses import astuple

import pytest
from dedup_eval import (
    EVAL_DIR,
    blind_sets,
    cluster_cold,
    cluster_incremental,
    components,
    dense_sets,
    load_set,
    pooled,
    score,
    split,
)

from aggregator.config import DedupConfig
from aggregator.model import MatchNote


@pytest.fixture(scope="module")
def regression():
    return load_set(EVAL_DIR)


@pytest.fixture(scope="module")
def blind():
    return blind_sets()


def test_the_regression_set_is_as_labelled(regression) -> None:
    assert len(regression.items) >= 80
    assert {i.item_id for i in regression.items} == set(regression.labels.story_of)
    assert regression.labels.multi_item_stories() >= 15
    assert len(regression.labels.hard_negatives) >= 20


def test_the_blind_sets_are_large_enough_and_as_labelled(blind) -> None:
    assert sum(len(s.items) for s in blind) >= 1300
    assert sum(s.labels.multi_item_stories() for s in blind) >= 270
    assert sum(len(s.labels.hard_negatives) for s in blind) >= 400
    for evaluation in blind:
        assert {i.item_id for i in evaluation.items} == set(evaluation.labels.story_of)
        for a, b, _ in evaluation.labels.hard_negatives:
            assert evaluation.labels.story_of[a] != evaluation.labels.story_of[b], (a, b)


def test_the_split_is_by_story_and_keeps_hard_negatives_on_one_side(blind) -> None:
    for evaluation in blind:
        dev, test = split(evaluation)
        assert set(dev.labels.story_of).isdisjoint(test.labels.story_of)
        assert set(dev.labels.story_of) | set(test.labels.story_of) == set(
            evaluation.labels.story_of)
        kept = len(dev.labels.hard_negatives) + len(test.labels.hard_negatives)
        assert kept == len(evaluation.labels.hard_negatives)
        assert dev.labels.multi_item_stories() >= 5 and test.labels.multi_item_stories() >= 5
        # Every story lies wholly on one side.
        for group in components(evaluation.labels):
            sides = {story in dev.labels.kind_of_story for story in group}
            assert len(sides) == 1
        assert split(evaluation)[1].labels.story_of == test.labels.story_of  # a fixed draw


@pytest.mark.parametrize("clustering", [cluster_cold, cluster_incremental],
                         ids=["cold", "incremental"])
def test_the_regression_set_keeps_its_stories(regression, clustering) -> None:
    result = score(clustering(regression.features, DedupConfig()), regression.labels)
    assert result.hard_negative_merges == []
    assert result.precision >= 0.95, result.false_merges
    assert result.recall >= 0.90, result.missed_merges


@pytest.mark.parametrize("clustering", [cluster_cold, cluster_incremental],
                         ids=["cold", "incremental"])
def test_the_held_out_test_split_stays_at_its_measured_level(blind, clustering) -> None:
    tests = [split(s)[1] for s in blind]
    result = pooled([score(clustering(t.features, DedupConfig()), t.labels) for t in tests])
    assert result.precision >= 0.90, result.false_merges
    assert result.recall >= 0.57, result.missed_merges
    assert len(result.hard_negative_merges) <= 8, result.hard_negative_merges


def test_the_dense_window_sets_are_as_labelled() -> None:
    dense = dense_sets()
    assert dense, "tests/data/dedup_dense holds at least one set"
    for evaluation in dense:
        assert {i.item_id for i in evaluation.items} == set(evaluation.labels.story_of)
        days = {i.published.date() for i in evaluation.items if i.published is not None}
        assert days and (max(days) - min(days)).days <= 15, evaluation.name


def test_a_later_run_places_items_as_a_cold_run_does(blind, regression) -> None:
    for evaluation in [*blind, *dense_sets(), regression]:
        cold = cluster_cold(evaluation.features, DedupConfig())
        later = cluster_incremental(evaluation.features, DedupConfig())
        assert _stories(cold) == _stories(later), evaluation.name


def test_a_later_run_scores_every_pair_as_a_cold_run_does(blind, regression) -> None:
    # Not only the same stories: the same scores, to the last digit, for every decision a
    # note records (the store counts a key's holders within each new item's own window).
    for evaluation in [*blind, *dense_sets(), regression]:
        cold: list[MatchNote] = []
        later: list[MatchNote] = []
        cluster_cold(evaluation.features, DedupConfig(), cold)
        cluster_incremental(evaluation.features, DedupConfig(), later)
        assert sorted(map(astuple, cold)) == sorted(map(astuple, later)), evaluation.name


def _stories(assignment: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for item, story in assignment.items():
        groups.setdefault(story, set()).add(item)
    return {frozenset(g) for g in groups.values()}
