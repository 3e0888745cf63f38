"""Stores made before the store package was merged with the operations and feed-history
work open under the merged schema: their steps were numbered differently, and every table
of both must be there after the upgrade. Unpublishing is idempotent, as the package's other
writes are (several nodes may do it at once)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import Workspace, seed_text
from sqlalchemy.engine import Connection

from aggregator import identity
from aggregator.model import Item
from aggregator.normalize import content_hash, title_key
from aggregator.store import MIGRATIONS, StoryPlan, open_store
from aggregator.store import schema as store_schema

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ALL_TABLES = {"schema_version", "meta", "sources", "items", "stories", "story_agencies",
              "match_notes", "dedup_keys", "source_leases", "websub_subscriptions",
              "tombstones", "story_feeds"}

MAIN_BEFORE_THE_PACKAGE = (store_schema._create_initial_schema,
                           store_schema._add_websub_subscriptions,
                           store_schema._add_tombstones, store_schema._add_story_feeds)
"""Version 4 of the single-module store: no source leases."""
PACKAGE_ALONE = (store_schema._create_initial_schema, store_schema._add_source_leases)
"""Version 2 of the store package before the merge: leases, none of the later tables."""


def make_old_store(url: str, steps: Sequence[Callable[[Connection], None]]) -> None:
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            store_schema.schema_version.create(conn)
            for step in steps:
                step(conn)
            conn.execute(store_schema.schema_version.insert().values(version=len(steps)))
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("steps", [MAIN_BEFORE_THE_PACKAGE, PACKAGE_ALONE],
                         ids=["main-version-4", "package-version-2"])
def test_an_older_store_gets_every_table(
    store_url: str, steps: Sequence[Callable[[Connection], None]]
) -> None:
    make_old_store(store_url, steps)
    assert "source_leases" not in tables(store_url) or "tombstones" not in tables(store_url)
    store = open_store(store_url)
    try:
        assert store.schema_version() == len(MIGRATIONS) == 6
        store.add_sources(["seedfile:a.txt"])
        claimed = store.claim_sources(["seedfile:a.txt"], lambda _s, _state: True,
                                      holder="n1", at=NOW, lease=60, limit=10)
        assert list(claimed) == ["seedfile:a.txt"]
        assert store.forgotten([item("A", "a")]) == [False]
        assert store.story_feeds() == {}
    finally:
        store.close()
    assert tables(store_url) >= ALL_TABLES


def item(title: str, text: str, *, guid: str | None = None, link: str | None = None,
         source: str = "seedfile:a.txt") -> Item:
    return Item(
        source_id=source, origin=f"{source}:0", position=0, agency="nato",
        agency_label="NATO", title=title, title_key=title_key(title), text=text, html=None,
        truncated=False, content_hash=content_hash(text), link=link, guid=guid,
        published=None, date_source=None,
    )


def test_forgetting_twice_changes_nothing_more(store_url: str) -> None:
    store = open_store(store_url)
    try:
        found = [item("Ministers meet", "Ministers met.", guid="g-1", link="https://x.test/1"),
                 item("Other news", "Something else.", source="seedfile:b.txt")]
        (first,) = store.reconcile("seedfile:a.txt", found[:1], NOW).new
        (second,) = store.reconcile("seedfile:b.txt", found[1:], NOW).new
        story = identity.story_id_for(first)
        store.apply_stories(StoryPlan(members={story: (first, second)}))
        with store.placement_lock():
            removal = store.forget_items([first], NOW)
        assert [i.item_id for i in removal.items] == [first]
        assert removal.stories_kept == (story,) and removal.members_left == (second,)
        generation = store.generation()
        with store.placement_lock():
            again = store.forget_items([first], NOW)
        assert again.items == () and store.generation() == generation
        # Each identity is tombstoned: the guid, the link, the agency, title and text.
        assert store.forgotten([found[0], item("Edited title", "New text.", guid="g-1"),
                                item("Edited", "Other.", link="https://x.test/1"),
                                item("Ministers meet", "Ministers met."), found[1]]) == [
            True, True, True, True, False]
    finally:
        store.close()


def test_withdrawing_a_source_drops_its_fetch_state_and_lease(store_url: str) -> None:
    store = open_store(store_url)
    try:
        store.add_sources(["seedfile:a.txt", "seedfile:b.txt"])
        (gone,) = store.reconcile("seedfile:a.txt", [item("A", "a")], NOW).new
        store.apply_stories(StoryPlan(members={identity.story_id_for(gone): (gone,)}))
        with store.placement_lock():
            removal = store.withdraw_sources(["seedfile:a.txt"])
        assert removal.stories_removed == (identity.story_id_for(gone),)
        assert store.item_source_ids() == set()
        assert store.counts() == (0, 0)
        claimed = store.claim_sources(["seedfile:a.txt", "seedfile:b.txt"],
                                      lambda _s, _state: True, holder="n1", at=NOW,
                                      lease=60, limit=10)
        assert list(claimed) == ["seedfile:b.txt"]  # a's lease row went with it
        store.add_sources(["seedfile:a.txt"])  # configured again: leasable again
        assert "seedfile:a.txt" in store.claim_sources(
            ["seedfile:a.txt"], lambda _s, _state: True, holder="n1", at=NOW, lease=60,
            limit=10)
    finally:
        store.close()


def test_entry_keys_kept_in_the_digest_by_an_earlier_build_move_to_their_column(
    store_url: str,
) -> None:
    key = "k" * 32
    store = open_store(store_url)
    try:
        (item_id,) = store.reconcile("seedfile:a.txt", [item("Ministers meet", "They met.")],
                                     NOW, keys=[key]).new
        assert store.entry_keys(["seedfile:a.txt"]) == {"seedfile:a.txt": {key: item_id}}
    finally:
        store.close()
    engine = sa.create_engine(store_url)
    try:  # as that build left it: schema 5, the key after the 32-digit digest
        with engine.begin() as conn:
            items = store_schema.items
            conn.execute(items.update().values(digest=items.c.digest + key, entry_key=None))
            conn.execute(store_schema.schema_version.update().values(version=5))
    finally:
        engine.dispose()
    store = open_store(store_url)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.entry_keys(["seedfile:a.txt"]) == {"seedfile:a.txt": {key: item_id}}
        # The item is the same: reading it again changes nothing.
        again = store.reconcile("seedfile:a.txt", [item("Ministers meet", "They met.")], NOW,
                                keys=[key])
        assert not again.new and not again.changed
    finally:
        store.close()


def test_a_store_indexed_by_another_version_is_indexed_again_before_new_items_are_placed(
    workspace: Workspace,
) -> None:
    # An older build indexed other blocking keys. Stand-in: the keys of every item but one
    # are gone and the version recorded is another. A report of the Montenegro meeting
    # arriving later must still find the stories it belongs to, as a cold run would.
    assert workspace.run("--once").returncode == 0
    db = sqlite3.connect(workspace.state)
    with db:
        rows = db.execute("SELECT count(*) FROM dedup_keys").fetchone()[0]
        kept = db.execute("SELECT item_id FROM dedup_keys LIMIT 1").fetchone()[0]
        db.execute("DELETE FROM dedup_keys WHERE item_id != ?", (kept,))
        db.execute("UPDATE meta SET value = '1.1' WHERE key = 'dedup_keys_version'")
    (workspace.seeds / "zz_later.txt").write_text(seed_text([(
        "Rutte and Milatović discuss the Western Balkans",
        "NATO",
        "NATO Secretary General Mark Rutte welcomed President Jakov Milatović of Montenegro "
        "to NATO Headquarters in Brussels on Wednesday 4 December 2024.",
    )]), encoding="utf-8")
    result = workspace.run("--once", "-v")
    assert result.returncode == 0, result.stderr
    assert "re-indexed the blocking keys" in result.stderr
    with db:
        assert db.execute("SELECT count(*) FROM dedup_keys").fetchone()[0] > rows
        stories = dict(db.execute(
            "SELECT title, story_id FROM items WHERE title LIKE '%Montenegro%' "
            "OR title LIKE '%Milatovi%'").fetchall())
        version = db.execute(
            "SELECT value FROM meta WHERE key = 'dedup_keys_version'").fetchone()[0]
    db.close()
    assert len(set(stories.values())) == 1, stories
    assert version != "1.1"
