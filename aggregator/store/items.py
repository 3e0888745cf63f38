"""Items: what sources list, under stable ids; edits in place; what is new for dedup."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator import identity
from aggregator.identity import StoredIdentity, content_key
from aggregator.model import Item, StoredItem
from aggregator.store.api import ReconcileResult
from aggregator.store.engine import SqlBase, bump_generation, chunks, insert_new
from aggregator.store.schema import items, stories


class ItemTables(SqlBase):
    """Items: the `items` table."""

    def reconcile(
        self, source_id: str, found: Sequence[Item], now: datetime,
        features: Sequence[str | None] | None = None, keys: Sequence[str] | None = None,
    ) -> ReconcileResult:
        """Record what a source lists now: new items get ids, edited ones keep theirs.

        Items the source no longer lists stay stored (and published) but are marked absent.
        `features` (serialized dedup features, per item of `found`) are stored with new items;
        `keys` (the entry key each item was made from) with every item, so an unchanged
        entry is not prepared again (`entry_keys`).
        """
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(
                    items.c.item_id, items.c.agency, items.c.guid, items.c.link,
                    items.c.title_key, items.c.content_hash, items.c.digest, items.c.present,
                    items.c.entry_key,
                ).where(items.c.source_id == source_id)
            ).all()
            stored = [StoredIdentity(*row[:-1]) for row in rows]
            recorded_keys = {row.item_id: row.entry_key or "" for row in rows}
            matches, unmatched = identity.match(found, stored)
            if unmatched:
                adopted = self._adoptable(conn, source_id, [found[i] for i in unmatched])
                for index in list(unmatched):
                    row = adopted.pop(content_key(found[index]), None)
                    if row is not None:
                        matches[index] = row
                        unmatched.remove(index)
            new_rows, changed_rows, touched_present, rekeyed = [], [], [], []
            changed_ids: list[str] = []
            pure = identity.item_ids(found)
            # An edited item keeps the id of what it was; a new item with that old identity
            # takes the next one (rare: a re-post of an item's original wording).
            reserved = {row.item_id for index, row in matches.items()
                        if row.item_id != pure[index]}
            proposed = identity.item_ids(found, reserved) if reserved else pure
            for index in unmatched:
                new_rows.append(_item_row(
                    found[index], proposed[index], now, features[index] if features else None,
                    keys[index] if keys else ""))
            for index, row in matches.items():
                item = found[index]
                digest = identity.digest(item)
                recorded = recorded_keys.get(row.item_id, "")  # moved from another source: none
                key = keys[index] if keys else recorded
                if digest != row.digest:
                    changed_rows.append(_item_update(item, row.item_id, digest, key))
                    changed_ids.append(row.item_id)
                    continue
                if key != recorded:
                    rekeyed.append({"b_item_id": row.item_id, "entry_key": key or None})
                if not row.present:
                    touched_present.append(row.item_id)
            matched_ids = {row.item_id for row in matches.values()}
            gone = [r.item_id for r in stored if r.item_id not in matched_ids and r.present]
            # Ids are pure functions of identity: a taken id means another source or node
            # stored this very item already, so it is not new here.
            inserted = set(insert_new(conn, items, _NEW_ROW_COLUMNS, new_rows, "item_id"))
            new_positions = [i for i in unmatched if proposed[i] in inserted]
            if changed_rows:
                conn.execute(
                    items.update().where(items.c.item_id == sa.bindparam("b_item_id")),
                    changed_rows,
                )
            if rekeyed:  # not an edit: the same item, made from an entry written otherwise
                conn.execute(
                    items.update().where(items.c.item_id == sa.bindparam("b_item_id"))
                    .values(entry_key=sa.bindparam("entry_key")),
                    rekeyed,
                )
            for ids, present in ((touched_present, True), (gone, False)):
                for chunk in chunks(ids):
                    conn.execute(
                        items.update().where(items.c.item_id.in_(chunk)).values(present=present)
                    )
            if inserted or changed_rows:
                bump_generation(conn)
        return ReconcileResult(
            new=tuple(proposed[i] for i in new_positions),
            new_positions=tuple(new_positions),
            changed=tuple(changed_ids),
            unchanged=len(matches) - len(changed_ids),
            gone=len(gone),
        )

    def _adoptable(
        self, conn: Connection, source_id: str, unmatched: Sequence[Item]
    ) -> dict[tuple[str, str, str], StoredIdentity]:
        """Absent items of other sources with the same agency, title and text (a moved or
        renamed seed file): they keep their ids instead of becoming new items."""
        wanted = {content_key(i) for i in unmatched if i.guid is None and i.link is None}
        if not wanted or not self._has_absent_items(conn):
            return {}
        found: dict[tuple[str, str, str], StoredIdentity] = {}
        hashes = sorted({key[2] for key in wanted})
        for chunk in chunks(hashes):
            rows = conn.execute(
                sa.select(
                    items.c.item_id, items.c.agency, items.c.guid, items.c.link,
                    items.c.title_key, items.c.content_hash, items.c.digest, items.c.present,
                ).where(
                    items.c.content_hash.in_(chunk),
                    items.c.present.is_(False),
                    items.c.guid.is_(None),
                    items.c.source_id != source_id,
                )
            )
            for raw in rows:
                row = StoredIdentity(*raw)
                key = (row.agency, row.title_key, row.content_hash)
                if key in wanted:
                    found.setdefault(key, row)
        for row in found.values():
            conn.execute(
                items.update().where(items.c.item_id == row.item_id).values(source_id=source_id)
            )
        return found

    @staticmethod
    def _has_absent_items(conn: Connection) -> bool:
        """Whether any source dropped an item (a first run has none: nothing to adopt)."""
        query = sa.select(items.c.item_id).where(items.c.present.is_(False)).limit(1)
        return conn.execute(query).first() is not None

    def entry_keys(self, source_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """Per source, the entry key -> id of its stored items that record one (items
        stored before entry keys existed have none, and are prepared again once)."""
        result: dict[str, dict[str, str]] = {}
        with self._tx() as conn:
            for chunk in chunks(sorted(set(source_ids))):
                rows = conn.execute(sa.select(items.c.source_id, items.c.item_id,
                                              items.c.entry_key)
                                    .where(items.c.source_id.in_(chunk),
                                           items.c.entry_key.is_not(None)))
                for source_id, item_id, key in rows:
                    result.setdefault(source_id, {}).setdefault(key, item_id)
        return result

    def items(self, item_ids: Iterable[str]) -> list[StoredItem]:
        """The stored items with these ids (unknown ids are ignored)."""
        result: list[StoredItem] = []
        with self._tx() as conn:
            for chunk in chunks(sorted(set(item_ids))):
                rows = conn.execute(sa.select(*ITEM_COLUMNS).where(items.c.item_id.in_(chunk)))
                result.extend(stored_item(row) for row in rows)
        return result

    def features(self, item_ids: Iterable[str]) -> dict[str, str]:
        """Serialized dedup features of stored items that have them."""
        result: dict[str, str] = {}
        with self._tx() as conn:
            for chunk in chunks(sorted(set(item_ids))):
                rows = conn.execute(
                    sa.select(items.c.item_id, items.c.features).where(
                        items.c.item_id.in_(chunk), items.c.features.is_not(None)
                    )
                )
                result.update({row.item_id: row.features for row in rows})
        return result

    def own_dates(self, item_ids: Iterable[str]) -> dict[str, datetime | None]:
        """Each item's own stated date (None when it states none): the story id rule's input."""
        result: dict[str, datetime | None] = {}
        with self._tx() as conn:
            for chunk in chunks(sorted(set(item_ids))):
                rows = conn.execute(sa.select(items.c.item_id, items.c.published)
                                    .where(items.c.item_id.in_(chunk)))
                result.update({row.item_id: row.published for row in rows})
        return result

    def unassigned_items(self) -> list[str]:
        """Ids of items not yet in any story (new ones, or left by an interrupted run)."""
        with self._tx() as conn:
            return list(
                conn.execute(
                    sa.select(items.c.item_id).where(items.c.story_id.is_(None))
                ).scalars()
            )

    def placed_items(self) -> list[str]:
        """Ids of the items in a story, in id order."""
        with self._tx() as conn:
            return list(conn.execute(
                sa.select(items.c.item_id).where(items.c.story_id.is_not(None))
                .order_by(items.c.item_id)
            ).scalars())

    def agencies(self) -> dict[str, str]:
        """Every agency slug with items, and the label its newest item used."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(items.c.agency, sa.func.max(items.c.agency_label))
                .group_by(items.c.agency)
            )
            return {row[0]: row[1] for row in rows}

    def counts(self) -> tuple[int, int]:
        """How many items and stories the store holds."""
        with self._tx() as conn:
            n_items = conn.execute(sa.select(sa.func.count()).select_from(items)).scalar_one()
            n_stories = conn.execute(sa.select(sa.func.count()).select_from(stories)).scalar_one()
        return int(n_items), int(n_stories)


_ITEM_FIELDS = (
    "source_id", "origin", "position", "agency", "agency_label", "title", "title_key", "text",
    "html", "truncated", "content_hash", "link", "guid", "published", "date_source",
)
"""The columns that hold an item's own fields (named as its attributes)."""
_read_item_fields = attrgetter(*_ITEM_FIELDS)


def _item_values(item: Item) -> dict[str, Any]:
    return dict(zip(_ITEM_FIELDS, _read_item_fields(item), strict=True))


_NEW_ROW_COLUMNS = (*_ITEM_FIELDS, "item_id", "first_seen", "digest", "entry_key", "present",
                    "story_id", "features")


def _item_row(item: Item, item_id: str, now: datetime, features: str | None,
              key: str) -> tuple[Any, ...]:
    """A new item's row, its values in the order of `_NEW_ROW_COLUMNS`."""
    return (*_read_item_fields(item), item_id, now, identity.digest(item), key or None, True,
            None, features)


def _item_update(item: Item, item_id: str, digest: str, key: str) -> dict[str, Any]:
    # Edited text needs fresh dedup features; the story keeps the item (ids never move).
    return {**_item_values(item), "b_item_id": item_id, "digest": digest,
            "entry_key": key or None, "present": True, "features": None}


ITEM_COLUMNS = (
    items.c.item_id, items.c.source_id, items.c.origin, items.c.position, items.c.agency,
    items.c.agency_label, items.c.title, items.c.title_key, items.c.text, items.c.html,
    items.c.truncated, items.c.content_hash, items.c.link, items.c.guid, items.c.published,
    items.c.date_source, items.c.first_seen, items.c.story_id,
)


def stored_item(row: Any) -> StoredItem:
    return StoredItem(
        item_id=row.item_id, source_id=row.source_id, origin=row.origin, position=row.position,
        agency=row.agency, agency_label=row.agency_label, title=row.title,
        title_key=row.title_key, text=row.text, html=row.html, truncated=bool(row.truncated),
        content_hash=row.content_hash, link=row.link, guid=row.guid, published=row.published,
        date_source=row.date_source, first_seen=row.first_seen, story_id=row.story_id,
    )


