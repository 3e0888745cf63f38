"""The dedup index: blocking keys of stored items, so a run compares new items only with
the stored items that share a rare key with them."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable
from functools import cache
from itertools import islice

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.store.api import StoryPlan
from aggregator.store.engine import SqlBase, bulk_insert, chunks
from aggregator.store.schema import dedup_keys

_KEY_ROWS_AT_ONCE = 50_000
"""Index rows inserted per statement: bounds memory on a large first run."""


class DedupIndex(SqlBase):
    """The `dedup_keys` table."""

    def key_days(
        self, keys: Iterable[str], days: tuple[int, int] | None
    ) -> dict[str, dict[int | None, int]]:
        """How many stored items hold each key on each day within a day range (undated
        items always count, under None). Counted inside the index: a common key's
        thousands of postings are never fetched."""
        by_hash = {key_hash(k): k for k in keys}
        result: dict[str, dict[int | None, int]] = defaultdict(dict)
        with self._tx() as conn:
            for chunk in chunks(sorted(by_hash)):
                rows = conn.execute(
                    sa.select(dedup_keys.c.key, dedup_keys.c.day, sa.func.count())
                    .where(dedup_keys.c.key.in_(chunk), _in_range(days))
                    .group_by(dedup_keys.c.key, dedup_keys.c.day)
                )
                for hashed, day, count in rows:
                    result[by_hash[hashed]][day] = count
        return dict(result)

    def key_counts(self, keys: Iterable[str]) -> dict[str, int]:
        """How many stored items hold each key, whatever their days (counted inside the
        index)."""
        by_hash = {key_hash(k): k for k in keys}
        result: dict[str, int] = {}
        with self._tx() as conn:
            for chunk in chunks(sorted(by_hash)):
                rows = conn.execute(
                    sa.select(dedup_keys.c.key, sa.func.count())
                    .where(dedup_keys.c.key.in_(chunk))
                    .group_by(dedup_keys.c.key)
                )
                for hashed, count in rows:
                    result[by_hash[hashed]] = count
        return result

    def holders(
        self, keys: Iterable[str], days: tuple[int, int] | None
    ) -> dict[str, dict[str, int | None]]:
        """The stored items holding each key within a day range (undated items always),
        with their days."""
        by_hash = {key_hash(k): k for k in keys}
        result: dict[str, dict[str, int | None]] = defaultdict(dict)
        with self._tx() as conn:
            for chunk in chunks(sorted(by_hash)):
                rows = conn.execute(
                    sa.select(dedup_keys.c.key, dedup_keys.c.item_id, dedup_keys.c.day)
                    .where(dedup_keys.c.key.in_(chunk), _in_range(days))
                )
                for hashed, item_id, day in rows:
                    result[by_hash[hashed]][item_id] = day
        return dict(result)

    def clear_index(self) -> None:
        """Drop every row of the blocking index (before it is built again)."""
        with self._tx() as conn:
            conn.execute(dedup_keys.delete())

    def has_index(self) -> bool:
        """Whether any item is in the blocking index yet (not on a first run)."""
        with self._tx() as conn:
            return conn.execute(sa.select(dedup_keys.c.key).limit(1)).first() is not None


def _in_range(days: tuple[int, int] | None) -> sa.ColumnElement[bool]:
    """Index rows dated within `days` (all, when None), and the undated ones."""
    if days is None:
        return sa.true()
    return sa.or_(dedup_keys.c.day.between(*days), dedup_keys.c.day.is_(None))


def write_index(conn: Connection, plan: StoryPlan) -> None:
    """Replace the index rows of the plan's items (in the plan's transaction)."""
    if plan.keyed_items:
        for chunk in chunks(sorted(plan.keyed_items)):
            conn.execute(dedup_keys.delete().where(dedup_keys.c.item_id.in_(chunk)))
    if plan.index_rows is None:
        return
    rows = iter(plan.index_rows())
    hashed = cache(key_hash)  # a key is held by many items: hashed once
    while batch := [(hashed(key), item_id, day)
                    for key, item_id, day in islice(rows, _KEY_ROWS_AT_ONCE)]:
        bulk_insert(conn, dedup_keys, ("key", "item_id", "day"), batch)


def key_hash(key: str) -> int:
    """A blocking key as a signed 64-bit integer: smaller rows and faster indexes than text.

    CRC-32 and Adler-32 side by side: two independent checksums, cheap on short keys, and
    stable across processes. A rare collision only adds a candidate, which is compared and
    dropped like any other.
    """
    data = key.encode()
    value = zlib.crc32(data) << 32 | zlib.adler32(data)
    return value - (1 << 64) if value >= 1 << 63 else value


