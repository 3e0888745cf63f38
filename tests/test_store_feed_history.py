"""The store's feed-history block, on SQLite and PostgreSQL: timelines, versions, classes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from test_store import NOW, item

from aggregator.store import SqlStore, StoryPlan, open_store


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def test_timelines_versions_and_recorded_classes(store: SqlStore) -> None:
    day = datetime(2024, 12, 4, 12, tzinfo=UTC)
    nato = store.reconcile("seedfile:a.txt", [
        item("Report", "Long report text.", published=day),
        item("Advisory", "Advisory text.", position=1, published=day - timedelta(days=2)),
    ], NOW).new
    (europol,) = store.reconcile("seedfile:b.txt", [
        item("Older", "E.", agency="europol", source="seedfile:b.txt",
             published=day - timedelta(days=30))], NOW).new
    store.apply_stories(StoryPlan(members={"s1": (nato[0], europol), "s2": (nato[1],)}))
    # The combined order is by the story's earliest date; an agency's by its own reports'.
    assert store.story_timeline() == [("s2", day - timedelta(days=2)),
                                      ("s1", day - timedelta(days=30))]
    assert store.agency_timeline() == [("europol", "s1", day - timedelta(days=30)),
                                       ("nato", "s1", day), ("nato", "s2", day - timedelta(days=2))]
    versions = store.story_versions()
    assert set(versions) == {"s1", "s2"} and versions["s1"] != versions["s2"]
    # A title edit changes its story's version, and only that one.
    store.reconcile("seedfile:a.txt", [
        item("Report, corrected", "Long report text.", published=day),
        item("Advisory", "Advisory text.", position=1, published=day - timedelta(days=2)),
    ], NOW)
    edited = store.story_versions()
    assert edited["s1"] != versions["s1"] and edited["s2"] == versions["s2"]
    assert store.story_feeds() == {}
    store.save_story_feeds({"s1": ("k1", ("NL", "UA"), ("cyber",)), "s2": ("k2", (), ())})
    store.save_story_feeds({"s2": ("k3", ("ME",), ())})
    assert store.story_feeds() == {"s1": ("k1", ("NL", "UA"), ("cyber",)),
                                   "s2": ("k3", ("ME",), ())}
