"""Dedup quality on the labelled evaluation set in tests/data/dedup (see its README)."""

from __future__ import annotations

import pytest
from dedup_eval import cluster_cold, cluster_incremental, load_items, load_labels, score

from aggregator.config import DedupConfig


@pytest.fixture(scope="module")
def evaluation() -> tuple[list, object]:
    return load_items(), load_labels()


def test_the_set_is_as_labelled(evaluation) -> None:
    items, labels = evaluation
    assert len(items) >= 80
    assert {i.item_id for i in items} == set(labels.story_of)
    sizes: dict[str, int] = {}
    for story in labels.story_of.values():
        sizes[story] = sizes.get(story, 0) + 1
    assert sum(1 for n in sizes.values() if n > 1) >= 15
    assert len(labels.hard_negatives) >= 20


@pytest.mark.parametrize("clustering", [cluster_cold, cluster_incremental],
                         ids=["cold", "incremental"])
def test_precision_recall_and_no_hard_negative_merges(evaluation, clustering) -> None:
    items, labels = evaluation
    result = score(clustering(items, DedupConfig()), labels)
    assert result.hard_negative_merges == []
    assert result.precision >= 0.95, result.false_merges
    assert result.recall >= 0.90, result.missed_merges
