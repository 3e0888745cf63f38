"""Unpublishing (issue 12): withdrawing the items of sources no longer configured, and
forgetting items for good (`aggregate forget`) behind tombstones, so no source brings them
back. Both change stories: callers hold the store's `placement_lock`, as placement does."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.identity import identity_keys
from aggregator.model import Item, StoredItem
from aggregator.store.api import Removal
from aggregator.store.engine import bump_generation, chunks, insert_ignoring_conflicts
from aggregator.store.items import ITEM_COLUMNS, stored_item
from aggregator.store.schema import (
    dedup_keys,
    items,
    match_notes,
    source_leases,
    sources,
    stories,
    story_agencies,
    tombstones,
)
from aggregator.store.stories import StoryTables


class Unpublishing(StoryTables):
    """The `tombstones` table, and taking items out of the store."""

    def item_source_ids(self) -> set[str]:
        """Every source id that has items stored."""
        with self._tx() as conn:
            return set(conn.execute(sa.select(items.c.source_id).distinct()).scalars())

    def withdraw_sources(self, source_ids: Iterable[str]) -> Removal:
        """Remove the items (and the fetch state and lease) of sources no longer in the
        config; their stories keep their ids while another member remains. Not a tombstone:
        a source configured again brings its items back, under the same ids."""
        wanted = sorted(set(source_ids))
        with self._tx() as conn:
            ids: list[str] = []
            for chunk in chunks(wanted):
                ids.extend(conn.execute(
                    sa.select(items.c.item_id).where(items.c.source_id.in_(chunk))).scalars())
                conn.execute(sources.delete().where(sources.c.source_id.in_(chunk)))
                conn.execute(source_leases.delete().where(source_leases.c.source_id.in_(chunk)))
            return self._remove(conn, ids)

    def forget_items(self, item_ids: Iterable[str], now: datetime) -> Removal:
        """Take items down for good: removed, and tombstoned by every identity they have, so
        no source brings them back (`forgotten`). Forgetting twice changes nothing more."""
        ids = sorted(set(item_ids))
        with self._tx() as conn:
            rows: list[Any] = []
            for chunk in chunks(ids):
                rows.extend(conn.execute(sa.select(*ITEM_COLUMNS)
                                         .where(items.c.item_id.in_(chunk))))
            wanted = {key: row for row in rows for key in identity_keys(row)}
            insert_ignoring_conflicts(conn, tombstones, [
                {"key": key, "item_id": row.item_id, "title": row.title, "forgotten_at": now}
                for key, row in sorted(wanted.items())
            ], "key")
            return self._remove(conn, ids)

    def forgotten(self, found: Sequence[Item]) -> list[bool]:
        """For each item a source lists, whether it was forgotten (`forget_items`)."""
        keys = [identity_keys(item) for item in found]
        wanted = sorted({key for item_keys in keys for key in item_keys})
        if not wanted:
            return [False] * len(found)
        dead: set[str] = set()
        with self._tx() as conn:
            if conn.execute(sa.select(tombstones.c.key).limit(1)).first() is None:
                return [False] * len(found)
            for chunk in chunks(wanted):
                dead.update(conn.execute(
                    sa.select(tombstones.c.key).where(tombstones.c.key.in_(chunk))).scalars())
        return [any(key in dead for key in item_keys) for item_keys in keys]

    def drop_forgotten(self, item_ids: Iterable[str]) -> Removal:
        """Remove those of these items that a tombstone names. A node that checked
        `forgotten` just before another wrote the tombstones stores the item again; placing
        runs under the placement lock, which forgetting holds too, so calling this there
        keeps such an item out of every story."""
        ids = sorted(set(item_ids))
        with self._tx() as conn:
            if not ids or conn.execute(sa.select(tombstones.c.key).limit(1)).first() is None:
                return Removal()
            dead: list[str] = []
            for chunk in chunks(ids):
                keys = {row.item_id: identity_keys(row) for row in conn.execute(
                    sa.select(items.c.item_id, items.c.agency, items.c.guid, items.c.link,
                              items.c.title_key, items.c.content_hash)
                    .where(items.c.item_id.in_(chunk)))}
                known: set[str] = set()
                for key_chunk in chunks(sorted({k for ks in keys.values() for k in ks})):
                    known.update(conn.execute(sa.select(tombstones.c.key).where(
                        tombstones.c.key.in_(key_chunk))).scalars())
                dead.extend(i for i, ks in keys.items() if any(k in known for k in ks))
            return self._remove(conn, dead)

    def find_items(self, reference: str) -> list[StoredItem]:
        """Items by id (or its first characters, at least 4), guid or link."""
        text = reference.strip().removeprefix("urn:newswire:item:")
        conditions = [items.c.guid == reference.strip(), items.c.link == reference.strip()]
        if len(text) >= 4:
            conditions.append(items.c.item_id.startswith(text.lower(), autoescape=True))
        with self._tx() as conn:
            rows = conn.execute(sa.select(*ITEM_COLUMNS).where(sa.or_(*conditions)).limit(50))
            return [stored_item(row) for row in rows]

    def find_story_ids(self, reference: str) -> list[str]:
        """Stories by their published id: `urn:uuid:ID`, or ID's first characters (at least
        4), or the id an agency's feed gives the story (derived from it and the agency)."""
        text = reference.strip().lower().removeprefix("urn:uuid:")
        if len(text) < 4:
            return []
        with self._tx() as conn:
            found = list(conn.execute(
                sa.select(stories.c.story_id)
                .where(stories.c.story_id.startswith(text, autoescape=True)).limit(50)
            ).scalars())
            if found:
                return found
            try:
                wanted = uuid.UUID(text)
            except ValueError:
                return []
            for story_id, agency in conn.execute(
                sa.select(story_agencies.c.story_id, story_agencies.c.agency)
            ):
                if uuid.uuid5(uuid.UUID(story_id), agency) == wanted:
                    return [story_id]
        return []

    def _remove(self, conn: Connection, item_ids: Sequence[str]) -> Removal:
        """Delete items with their notes and index rows; rewrite or drop their stories."""
        if not item_ids:
            return Removal()
        removed: list[StoredItem] = []
        story_ids: set[str] = set()
        for chunk in chunks(sorted(set(item_ids))):
            for row in conn.execute(sa.select(*ITEM_COLUMNS).where(items.c.item_id.in_(chunk))):
                removed.append(stored_item(row))
                if row.story_id is not None:
                    story_ids.add(row.story_id)
        gone = {item.item_id for item in removed}
        memberships = self._memberships(conn, story_ids)
        for chunk in chunks(sorted(gone)):
            conn.execute(match_notes.delete().where(sa.or_(
                match_notes.c.item_id.in_(chunk), match_notes.c.other_item_id.in_(chunk))))
            conn.execute(dedup_keys.delete().where(dedup_keys.c.item_id.in_(chunk)))
            conn.execute(items.delete().where(items.c.item_id.in_(chunk)))
        remaining = {story_id: tuple(i for i in ids if i not in gone)
                     for story_id, ids in memberships.items()}
        self._write_stories(conn, remaining)
        if removed:
            bump_generation(conn)
        return Removal(
            items=tuple(removed),
            stories_removed=tuple(sorted(s for s, ids in remaining.items() if not ids)),
            stories_kept=tuple(sorted(s for s, ids in remaining.items() if ids)),
            members_left=tuple(i for ids in remaining.values() for i in ids),
        )
