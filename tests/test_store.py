"""The store, on a real SQLite file and on PostgreSQL: identity, edits, stories, state."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from aggregator.model import Item, MatchNote
from aggregator.normalize import content_hash, title_key
from aggregator.store import MIGRATIONS, SourceState, SqlStore, StoryPlan, open_store

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def item(title: str, text: str, *, agency: str = "nato", source: str = "seedfile:a.txt",
         position: int = 0, guid: str | None = None, link: str | None = None,
         published: datetime | None = None) -> Item:
    return Item(
        source_id=source, origin=f"{source}:{position}", position=position, agency=agency,
        agency_label=agency.upper(), title=title, title_key=title_key(title), text=text,
        html=None, truncated=False, content_hash=content_hash(text), link=link, guid=guid,
        published=published, date_source="text" if published else None,
    )


def test_new_items_get_ids_and_first_seen_once(store: SqlStore) -> None:
    batch = [item("A", "Text a."), item("B", "Text b.", position=1)]
    first = store.reconcile("seedfile:a.txt", batch, NOW)
    assert len(first.new) == 2 and not first.changed
    again = store.reconcile("seedfile:a.txt", batch, NOW + timedelta(hours=1))
    assert again.new == () and again.changed == () and again.unchanged == 2
    stored = {i.item_id: i for i in store.items(first.new)}
    assert set(stored) == set(first.new)
    assert all(i.first_seen == NOW for i in stored.values())


def test_title_edit_keeps_the_id(store: SqlStore) -> None:
    (item_id,) = store.reconcile("seedfile:a.txt", [item("Old title", "Same body text.")], NOW).new
    result = store.reconcile("seedfile:a.txt", [item("New title", "Same body text.")], NOW)
    assert result.new == () and result.changed == (item_id,)
    (edited,) = store.items([item_id])
    assert edited.title == "New title" and edited.first_seen == NOW


def test_body_edit_under_the_same_title_keeps_the_id(store: SqlStore) -> None:
    (item_id,) = store.reconcile("seedfile:a.txt", [item("Title", "Body v1.")], NOW).new
    result = store.reconcile("seedfile:a.txt", [item("Title", "Body v2, corrected.")], NOW)
    assert result.changed == (item_id,) and result.new == ()


def test_one_title_on_two_items_keeps_two_items(store: SqlStore) -> None:
    briefings = [item("Weekly press briefing", "Briefing of week 47."),
                 item("Weekly press briefing", "Briefing of week 48.", position=1)]
    first = store.reconcile("seedfile:a.txt", briefings, NOW)
    assert len(set(first.new)) == 2
    again = store.reconcile("seedfile:a.txt", briefings, NOW)
    assert again.new == () and again.changed == ()


def test_identical_reposts_get_distinct_ids(store: SqlStore) -> None:
    twins = [item("Same", "Same text."), item("Same", "Same text.", position=1)]
    result = store.reconcile("seedfile:a.txt", twins, NOW)
    assert len(set(result.new)) == 2


def test_guid_is_the_identity_of_feed_items(store: SqlStore) -> None:
    source = "feed:https://x.test/rss"
    (item_id,) = store.reconcile(source, [item("T", "Body", source=source, guid="g1")], NOW).new
    retitled = store.reconcile(source, [item("T2", "Body 2", source=source, guid="g1")], NOW)
    assert retitled.changed == (item_id,)
    other = store.reconcile(source, [item("T2", "Body 2", source=source, guid="g2")], NOW)
    assert len(other.new) == 1 and other.gone == 1


def test_items_a_source_drops_stay_stored(store: SqlStore) -> None:
    ids = store.reconcile("seedfile:a.txt", [item("A", "a"), item("B", "b", position=1)], NOW).new
    result = store.reconcile("seedfile:a.txt", [item("A", "a")], NOW)
    assert result.gone == 1
    assert len(store.items(ids)) == 2


def test_a_renamed_seed_file_keeps_its_item_ids(store: SqlStore) -> None:
    old = [item("A", "Body a.", source="seedfile:old.txt")]
    (item_id,) = store.reconcile("seedfile:old.txt", old, NOW).new
    store.reconcile("seedfile:old.txt", [], NOW)
    moved = store.reconcile("seedfile:new.txt", [item("A", "Body a.", source="seedfile:new.txt")],
                            NOW)
    assert moved.new == ()
    (stored,) = store.items([item_id])
    assert stored.source_id == "seedfile:new.txt"


def test_ids_are_derived_from_content_so_a_fresh_store_agrees(store_url: str, tmp_path) -> None:
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    store = open_store(store_url)
    try:
        batch = [item("A", "a"), item("B", "b", position=1)]
        assert store.reconcile("seedfile:a.txt", batch, NOW).new == other.reconcile(
            "seedfile:a.txt", batch, NOW + timedelta(days=3)).new
    finally:
        store.close()
        other.close()


def test_stories_order_canonical_first_and_restrict_per_agency(store: SqlStore) -> None:
    day = datetime(2024, 12, 4, 12, tzinfo=UTC)
    nato = store.reconcile("seedfile:a.txt", [
        item("Report", "Long report text.", published=day),
        item("Advisory", "Advisory text.", position=1, published=day - timedelta(days=2)),
    ], NOW).new
    (europol,) = store.reconcile("seedfile:b.txt", [item("Older", "E.", agency="europol",
                                 source="seedfile:b.txt", published=day - timedelta(days=30))],
                                 NOW).new
    note = MatchNote(nato[1], nato[0], 0.7, True, ("titles share 50% of their words",))
    store.apply_stories(StoryPlan(members={"s1": (nato[0], nato[1], europol)}, notes=(note,)))
    (story,) = store.top_stories(10)
    assert [m.item_id for m in story.members] == [nato[0], europol, nato[1]][:1] + sorted(
        [europol, nato[1]], key=lambda i: {europol: 0, nato[1]: 1}[i])
    assert story.canonical.title == "Report"
    assert story.published == day - timedelta(days=30)
    assert story.agencies == ("nato", "europol")
    (nato_view,) = store.top_stories(10, agency="nato")
    assert [m.agency for m in nato_view.members] == ["nato", "nato"]
    assert nato_view.published == day - timedelta(days=2)
    assert store.notes_for([nato[0]]) == [note]


def test_top_stories_are_newest_first_and_limited(store: SqlStore) -> None:
    base = datetime(2024, 11, 1, 12, tzinfo=UTC)
    ids = store.reconcile("seedfile:a.txt", [
        item(f"T{n}", f"Body {n}", position=n, published=base + timedelta(days=n)) for n in range(5)
    ], NOW).new
    store.apply_stories(StoryPlan(members={f"s{n}": (i,) for n, i in enumerate(ids)}))
    top = store.top_stories(3)
    assert [s.canonical.title for s in top] == ["T4", "T3", "T2"]


def test_a_large_batch_is_stored_whole_with_its_dates_flags_and_stories(
        store: SqlStore) -> None:
    # More items than one multi-row insert takes; one of them another source stored first.
    stated = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    (shared,) = store.reconcile("seedfile:b.txt", [
        item("Shared", "Same text.", source="seedfile:b.txt")], NOW).new
    batch = [item(f"T{n}", f"Body {n}.", position=n, published=stated if n % 2 else None)
             for n in range(900)]
    result = store.reconcile("seedfile:a.txt", [*batch, item("Shared", "Same text.",
                                                             position=900)], NOW)
    assert len(result.new) == 900 and shared not in result.new
    assert result.new_positions == tuple(range(900))
    stored = store.items(result.new)
    assert len(stored) == 900
    assert {s.published for s in stored} == {stated, None}
    assert {(s.first_seen, s.truncated, s.story_id) for s in stored} == {(NOW, False, None)}
    undated, dated = result.new[0], result.new[1]
    store.apply_stories(StoryPlan(members={"s-undated": (undated,), "s-dated": (dated,)},
                                  features={undated: "[0]"}))
    assert [s.story_id for s in store.top_stories(5)] == ["s-undated", "s-dated"]
    assert [s.story_id for s in store.top_stories(5, agency="nato")] == ["s-undated", "s-dated"]
    assert store.features([undated, dated]) == {undated: "[0]"}
    assert {s.item_id: s.story_id for s in store.items([undated, dated])} == {
        undated: "s-undated", dated: "s-dated"}


def test_key_days_and_holders_respect_the_day_window(store: SqlStore) -> None:
    ids = store.reconcile("seedfile:a.txt", [item(f"T{n}", f"B{n}", position=n) for n in range(4)],
                          NOW).new
    store.apply_stories(StoryPlan(
        members={f"s{n}": (i,) for n, i in enumerate(ids)},
        index_rows=lambda: [("nrutte", ids[0], 100), ("nrutte", ids[1], 120),
                      ("nrutte", ids[2], None), ("tcommon", ids[2], 100),
                      ("tcommon", ids[3], 101)],
    ))
    assert store.key_days(["nrutte", "tcommon", "nabsent"], (95, 105)) == {
        "nrutte": {100: 1, None: 1}, "tcommon": {100: 1, 101: 1}}
    assert store.key_days(["nrutte"], None) == {"nrutte": {100: 1, 120: 1, None: 1}}
    assert store.key_counts(["nrutte", "tcommon", "nabsent"]) == {"nrutte": 3, "tcommon": 2}
    assert store.holders(["nrutte", "tcommon"], (95, 105)) == {
        "nrutte": {ids[0]: 100, ids[2]: None}, "tcommon": {ids[2]: 100, ids[3]: 101}}
    assert store.holders(["tcommon"], (101, 130)) == {"tcommon": {ids[3]: 101}}


def test_the_index_is_cleared_whole_and_placed_items_are_listed(store: SqlStore) -> None:
    ids = store.reconcile("seedfile:a.txt", [item(f"T{n}", f"B{n}", position=n) for n in range(3)],
                          NOW).new
    store.apply_stories(StoryPlan(members={"s0": (ids[0], ids[1])},
                                  index_rows=lambda: [("nrutte", ids[0], 100)]))
    assert store.placed_items() == sorted(ids[:2])
    assert store.has_index()
    store.clear_index()
    assert not store.has_index() and store.key_days(["nrutte"], None) == {}
    assert store.placed_items() == sorted(ids[:2])


def test_source_state_round_trips(store: SqlStore) -> None:
    assert store.source_state("feed:x") is None
    state = SourceState(source_id="feed:x", kind="feed", etag='"abc"', failures=2,
                        last_attempt=NOW, next_attempt=NOW + timedelta(minutes=5))
    store.save_source_state(state)
    assert store.source_state("feed:x") == state
    store.save_source_state(replace(state, etag=None, failures=0))
    assert store.source_state("feed:x") == replace(state, etag=None, failures=0)


def test_generation_grows_only_when_something_changed(store: SqlStore) -> None:
    before = store.generation()
    store.reconcile("seedfile:a.txt", [item("A", "a")], NOW)
    after_new = store.generation()
    store.reconcile("seedfile:a.txt", [item("A", "a")], NOW)
    assert after_new > before and store.generation() == after_new


def test_schema_is_versioned_and_reopening_is_idempotent(store_url: str) -> None:
    first = open_store(store_url)
    assert first.schema_version() == len(MIGRATIONS)
    first.close()
    again = open_store(store_url)
    assert again.schema_version() == len(MIGRATIONS)
    again.close()


def test_a_store_from_a_newer_version_is_refused(store_url: str) -> None:
    opened = open_store(store_url)
    with opened._engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_version SET version = 999"))
    opened.close()
    from aggregator.errors import StoreError

    with pytest.raises(StoreError, match="newer than this aggregator knows"):
        open_store(store_url)
