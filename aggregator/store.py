"""State that outlives a run: items with stable ids, stories, fetch state, dedup index.

SQLAlchemy Core behind the narrow `Store` protocol; one schema and one code path for SQLite
(the embedded default) and PostgreSQL (by URL). The schema is versioned: `MIGRATIONS` holds
each step, and opening a store applies the ones it lacks, so a user's state survives upgrades.

Identity: an item keeps its id across runs, restarts and edits. `reconcile` matches what a
source lists now against what it listed before: by guid, by link, by (title, text), then by
text alone (a title edit) and by title alone (a text edit) among the leftovers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aggregator.errors import StoreError
from aggregator.model import Item, MatchNote, StoredItem, Story, date_span

log = logging.getLogger(__name__)

STORY_NAMESPACE = uuid.UUID("6f1d3c52-4e0b-5a8e-9b7c-2d4f6a8b0c1e")
"""Namespace of story GUIDs: uuid5(namespace, founding item id), stable for a fresh store too."""

_KEY_ROWS_AT_ONCE = 50_000
"""Index rows inserted per statement: bounds memory on a large first run."""
_CHUNK = 500
"""Rows per IN (...) list: well under SQLite's variable limit and PostgreSQL's comfort."""


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)
meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
sources = sa.Table(
    "sources",
    metadata,
    sa.Column("source_id", sa.String(2000), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("signature", sa.Text),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("read_digest", sa.String(64)),
    sa.Column("last_attempt", UTCDateTime),
    sa.Column("last_success", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt", UTCDateTime),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("current_url", sa.Text),
)
items = sa.Table(
    "items",
    metadata,
    sa.Column("item_id", sa.String(40), primary_key=True),
    sa.Column("source_id", sa.String(2000), nullable=False),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("agency", sa.String(64), nullable=False),
    sa.Column("agency_label", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("title_key", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("html", sa.Text),
    sa.Column("truncated", sa.Boolean, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("link", sa.Text),
    sa.Column("guid", sa.Text),
    sa.Column("published", UTCDateTime),
    sa.Column("date_source", sa.String(16)),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("present", sa.Boolean, nullable=False),
    sa.Column("story_id", sa.String(40)),
    sa.Column("features", sa.Text),
)
sa.Index("ix_items_source", items.c.source_id)
sa.Index("ix_items_story", items.c.story_id)
sa.Index("ix_items_content", items.c.content_hash)
sa.Index("ix_items_present", items.c.present)
stories = sa.Table(
    "stories",
    metadata,
    sa.Column("story_id", sa.String(40), primary_key=True),
    sa.Column("canonical_item_id", sa.String(40), nullable=False),
    sa.Column("published", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
)
sa.Index("ix_stories_published", stories.c.published)
story_agencies = sa.Table(
    "story_agencies",
    metadata,
    sa.Column("story_id", sa.String(40), primary_key=True),
    sa.Column("agency", sa.String(64), primary_key=True),
    sa.Column("published", UTCDateTime, nullable=False),
)
sa.Index("ix_story_agencies_feed", story_agencies.c.agency, story_agencies.c.published)
match_notes = sa.Table(
    "match_notes",
    metadata,
    sa.Column("item_id", sa.String(40), primary_key=True),
    sa.Column("other_item_id", sa.String(40), primary_key=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("merged", sa.Boolean, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
)
sa.Index("ix_match_notes_other", match_notes.c.other_item_id)
dedup_keys = sa.Table(
    "dedup_keys",
    metadata,
    sa.Column("key", sa.BigInteger, nullable=False),
    sa.Column("item_id", sa.String(40), nullable=False),
    sa.Column("day", sa.Integer),
)
sa.Index("ix_dedup_keys_key", dedup_keys.c.key, dedup_keys.c.day)
# No index on item_id: only an edited item's keys are deleted by it (rare), while every
# first-run insert would pay for keeping it.


def _create_initial_schema(conn: Connection) -> None:
    for table in (meta, sources, items, stories, story_agencies, match_notes, dedup_keys):
        table.create(conn, checkfirst=True)


websub_subscriptions = sa.Table(
    "websub_subscriptions",
    metadata,
    sa.Column("callback", sa.String(2048), primary_key=True),
    sa.Column("topic", sa.String(2048), primary_key=True),
    sa.Column("secret", sa.String(200)),
    sa.Column("lease_seconds", sa.Integer, nullable=False),
    sa.Column("verified", UTCDateTime, nullable=False),
    sa.Column("expires", UTCDateTime, nullable=False),
)
sa.Index("ix_websub_subscriptions_topic", websub_subscriptions.c.topic,
         websub_subscriptions.c.expires)


def _add_websub_subscriptions(conn: Connection) -> None:
    websub_subscriptions.create(conn, checkfirst=True)


tombstones = sa.Table(
    "tombstones",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("item_id", sa.String(40), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("forgotten_at", UTCDateTime, nullable=False),
)
"""Items taken down for good (`aggregate forget`): one row per identity of each (its guid,
its link, its agency, title and text), so a source sending it again is not heard."""


def _add_tombstones(conn: Connection) -> None:
    tombstones.create(conn, checkfirst=True)


story_feeds = sa.Table(
    "story_feeds",
    metadata,
    sa.Column("story_id", sa.String(40), primary_key=True),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("countries", sa.Text, nullable=False),
    sa.Column("topics", sa.Text, nullable=False),
)
"""Feed history (issue 13): the countries and topics each story was last found to belong to,
under the key (story version, topics, classifier) they were computed for."""


def _add_story_feeds(conn: Connection) -> None:
    story_feeds.create(conn, checkfirst=True)


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _create_initial_schema,
    _add_websub_subscriptions,
    _add_tombstones,
    _add_story_feeds,
)
"""Schema steps in order; the store's version is how many have been applied. Append only."""


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store remembers of one source unit between runs."""

    source_id: str
    kind: str
    signature: str | None = None
    """Seed files: size and mtime, to skip unchanged files without reading them."""
    content_hash: str | None = None
    read_digest: str | None = None
    """Digest of the config that shaped the last read (agencies): a change forces a re-read."""
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    failures: int = 0
    next_attempt: datetime | None = None
    etag: str | None = None
    last_modified: str | None = None
    current_url: str | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    """A verified WebSub subscription of a callback to one of our feeds."""

    callback: str
    topic: str
    secret: str | None
    lease_seconds: int
    verified: datetime
    expires: datetime


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """What one source's items did to the store."""

    new: tuple[str, ...] = ()
    new_positions: tuple[int, ...] = ()
    """For each new id, the position of its item in the list given to `reconcile`."""
    changed: tuple[str, ...] = ()
    unchanged: int = 0
    gone: int = 0


@dataclass(frozen=True, slots=True)
class Candidates:
    """Stored items found through blocking keys."""

    items: Mapping[str, set[str]]
    """key -> ids of the stored items holding it (keys under the cap only)."""
    common: frozenset[str]
    """Keys held by more items than the cap: too common to find candidates with."""


@dataclass(frozen=True, slots=True)
class StoryPlan:
    """Dedup's decisions to apply: story membership, canonical order and notes."""

    members: Mapping[str, tuple[str, ...]]
    """story id -> item ids, canonical first (the whole membership of each touched story)."""
    notes: tuple[MatchNote, ...] = ()
    index_rows: Callable[[], Iterable[tuple[str, str, int | None]]] | None = None
    """The blocking index rows (key, item id, day) of `keyed_items`, for later incremental
    runs; produced lazily, so a large run never holds them all at once."""
    keyed_items: tuple[str, ...] = ()
    """Items whose index rows `index_rows` replaces."""
    features: Mapping[str, str] = field(default_factory=dict)
    """item id -> serialized dedup features, so stored items are not analysed again."""


@dataclass(frozen=True, slots=True)
class Removal:
    """Items taken out of the store, and what became of their stories."""

    items: tuple[StoredItem, ...] = ()
    stories_removed: tuple[str, ...] = ()
    """Stories left without a member: gone from every feed."""
    stories_kept: tuple[str, ...] = ()
    """Stories that lost members but keep their id with the others."""
    members_left: tuple[str, ...] = ()
    """The items still in `stories_kept` (their stories may want a new canonical entry)."""


class Store(Protocol):
    """The narrow interface the pipeline, dedup and publish steps use."""

    def close(self) -> None: ...
    def source_state(self, source_id: str) -> SourceState | None: ...
    def source_states(self, source_ids: Iterable[str]) -> dict[str, SourceState]: ...
    def save_source_state(self, state: SourceState) -> None: ...
    def save_source_states(self, states: Sequence[SourceState]) -> None: ...
    def reconcile(
        self, source_id: str, found: Sequence[Item], now: datetime,
        features: Sequence[str | None] | None = None,
    ) -> ReconcileResult: ...
    def items(self, item_ids: Iterable[str]) -> list[StoredItem]: ...
    def features(self, item_ids: Iterable[str]) -> dict[str, str]: ...
    def candidates(self, keys: Iterable[str], days: tuple[int, int] | None,
                   limit_per_key: int) -> Candidates: ...
    def has_index(self) -> bool: ...
    def stories_of(self, item_ids: Iterable[str]) -> dict[str, tuple[str, ...]]: ...
    def apply_stories(self, plan: StoryPlan) -> None: ...
    def unassigned_items(self) -> list[str]: ...
    def top_stories(self, limit: int, agency: str | None = None) -> list[Story]: ...
    def story(self, story_id: str) -> Story | None: ...
    def find_stories(self, words: str, limit: int) -> list[Story]: ...
    def notes_for(self, item_ids: Iterable[str]) -> list[MatchNote]: ...
    def agencies(self) -> dict[str, str]: ...
    def counts(self) -> tuple[int, int]: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def generation(self) -> int: ...
    # WebSub subscriptions
    def save_subscription(self, subscription: Subscription) -> None: ...
    def delete_subscription(self, callback: str, topic: str) -> bool: ...
    def subscription(self, callback: str, topic: str, now: datetime) -> Subscription | None: ...
    def subscribers(self, topics: Iterable[str], now: datetime) -> list[Subscription]: ...
    def expire_subscriptions(self, now: datetime) -> int: ...
    # unpublishing (issue 12)
    def item_source_ids(self) -> set[str]: ...
    def withdraw_sources(self, source_ids: Iterable[str]) -> Removal: ...
    def forget_items(self, item_ids: Iterable[str], now: datetime) -> Removal: ...
    def forgotten(self, found: Sequence[Item]) -> list[bool]: ...
    def find_items(self, reference: str) -> list[StoredItem]: ...
    def find_story_ids(self, reference: str) -> list[str]: ...
    # feed history (issue 13)
    def story_timeline(self) -> list[tuple[str, datetime]]: ...
    def agency_timeline(self) -> list[tuple[str, str, datetime]]: ...
    def story_versions(self) -> dict[str, str]: ...
    def stories(self, story_ids: Sequence[str]) -> dict[str, Story]: ...
    def story_feeds(self) -> dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]]: ...
    def save_story_feeds(
        self, rows: Mapping[str, tuple[str, tuple[str, ...], tuple[str, ...]]]) -> None: ...


def open_store(url: str) -> SqlStore:
    """Open (creating and migrating as needed) the store at a SQLAlchemy URL."""
    return SqlStore(url)


class SqlStore:
    """The SQLAlchemy implementation of `Store` (SQLite or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = self._connect(url)
        try:
            self._migrate()
        except sa.exc.SQLAlchemyError as exc:
            self._engine.dispose()
            raise StoreError(f"{_safe_url(url)}: cannot open the store: {_reason(exc)}"
                             f"{_damage_hint(url, exc)}") from None

    @staticmethod
    def _connect(url: str) -> Engine:
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{path.parent}: cannot create the state directory: "
                                 f"{exc.strerror}") from None
            engine = sa.create_engine(url, connect_args={"timeout": 30})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        try:
            return sa.create_engine(url, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"{_safe_url(url)}: unusable store URL: {exc}") from None

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreError(f"{_safe_url(self.url)}: {_reason(exc)}") from None

    # -- schema ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._engine.begin() as conn:
            schema_version.create(conn, checkfirst=True)
            row = conn.execute(sa.select(schema_version.c.version)).first()
            current = row.version if row else 0
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"{_safe_url(self.url)}: schema version {current} is newer than this "
                    f"aggregator knows ({len(MIGRATIONS)}); upgrade the aggregator"
                )
            for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
                log.info("store migrate version=%d", version)
                step(conn)
            if row is None:
                conn.execute(schema_version.insert().values(version=len(MIGRATIONS)))
            elif current != len(MIGRATIONS):
                conn.execute(schema_version.update().values(version=len(MIGRATIONS)))

    def schema_version(self) -> int:
        """The schema version the store is at."""
        with self._tx() as conn:
            return int(conn.execute(sa.select(schema_version.c.version)).scalar_one())

    # -- meta -----------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A stored setting, or None."""
        with self._tx() as conn:
            value = conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()
            return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        with self._tx() as conn:
            _set_meta(conn, key, value)

    def generation(self) -> int:
        """A counter that grows whenever items or stories change: publish skips when equal."""
        value = self.get_meta("generation")
        return int(value) if value else 0

    # -- sources --------------------------------------------------------------------------

    def source_state(self, source_id: str) -> SourceState | None:
        """What the store remembers of a source, or None if it never ran."""
        with self._tx() as conn:
            row = conn.execute(sa.select(sources).where(sources.c.source_id == source_id)).first()
        if row is None:
            return None
        return SourceState(**{f.name: getattr(row, f.name) for f in fields(SourceState)})

    def source_states(self, source_ids: Iterable[str]) -> dict[str, SourceState]:
        """What the store remembers of many sources at once (those that never ran are left
        out): one query per chunk instead of one per source."""
        result: dict[str, SourceState] = {}
        with self._tx() as conn:
            for chunk in _chunks(sorted(set(source_ids))):
                for row in conn.execute(sa.select(sources).where(sources.c.source_id.in_(chunk))):
                    result[row.source_id] = SourceState(
                        **{f.name: getattr(row, f.name) for f in fields(SourceState)})
        return result

    def save_source_state(self, state: SourceState) -> None:
        """Insert or replace a source's state."""
        self.save_source_states([state])

    def save_source_states(self, states: Sequence[SourceState]) -> None:
        """Insert or replace many sources' states in one transaction."""
        if not states:
            return
        # One row per source, the last state given winning (as one save after another would).
        by_id = {state.source_id: state for state in states}
        rows = [{f.name: getattr(state, f.name) for f in fields(SourceState)}
                for state in by_id.values()]
        with self._tx() as conn:
            known: set[str] = set()
            for chunk in _chunks(sorted({row["source_id"] for row in rows})):
                known.update(conn.execute(
                    sa.select(sources.c.source_id).where(sources.c.source_id.in_(chunk))
                ).scalars())
            updates = [{**row, "b_source_id": row["source_id"]} for row in rows
                       if row["source_id"] in known]
            if updates:
                conn.execute(
                    sources.update().where(sources.c.source_id == sa.bindparam("b_source_id")),
                    updates,
                )
            inserts = [row for row in rows if row["source_id"] not in known]
            if inserts:
                conn.execute(sources.insert(), inserts)

    # -- items ----------------------------------------------------------------------------

    def reconcile(
        self, source_id: str, found: Sequence[Item], now: datetime,
        features: Sequence[str | None] | None = None,
    ) -> ReconcileResult:
        """Record what a source lists now: new items get ids, edited ones keep theirs.

        Items the source no longer lists stay stored (and published) but are marked absent.
        `features` (serialized dedup features, per item of `found`) are stored with new items.
        """
        with self._tx() as conn:
            stored = [
                _StoredRow(*row)
                for row in conn.execute(
                    sa.select(
                        items.c.item_id, items.c.agency, items.c.guid, items.c.link,
                        items.c.title_key, items.c.content_hash, items.c.digest, items.c.present,
                    ).where(items.c.source_id == source_id)
                )
            ]
            matches, unmatched = _match(found, stored)
            if unmatched:
                adopted = self._adoptable(conn, source_id, [found[i] for i in unmatched])
                for index in list(unmatched):
                    row = adopted.pop(_content_key(found[index]), None)
                    if row is not None:
                        matches[index] = row
                        unmatched.remove(index)
            new_rows, changed_rows, touched_present = [], [], []
            changed_ids: list[str] = []
            new_ids = self._new_ids(conn, [found[i] for i in unmatched])
            for index, item_id in zip(unmatched, new_ids, strict=True):
                new_rows.append(_item_row(found[index], item_id, now,
                                          features[index] if features else None))
            for index, row in matches.items():
                item = found[index]
                digest = _digest(item)
                if digest != row.digest:
                    changed_rows.append(_item_update(item, row.item_id, digest))
                    changed_ids.append(row.item_id)
                elif not row.present:
                    touched_present.append(row.item_id)
            matched_ids = {row.item_id for row in matches.values()}
            gone = [r.item_id for r in stored if r.item_id not in matched_ids and r.present]
            if new_rows:
                conn.execute(items.insert(), new_rows)
            if changed_rows:
                conn.execute(
                    items.update().where(items.c.item_id == sa.bindparam("b_item_id")),
                    changed_rows,
                )
            for ids, present in ((touched_present, True), (gone, False)):
                for chunk in _chunks(ids):
                    conn.execute(
                        items.update().where(items.c.item_id.in_(chunk)).values(present=present)
                    )
            if new_rows or changed_rows:
                _bump_generation(conn)
        return ReconcileResult(
            new=tuple(new_ids),
            new_positions=tuple(unmatched),
            changed=tuple(changed_ids),
            unchanged=len(matches) - len(changed_ids),
            gone=len(gone),
        )

    def _adoptable(
        self, conn: Connection, source_id: str, unmatched: Sequence[Item]
    ) -> dict[tuple[str, str, str], _StoredRow]:
        """Absent items of other sources with the same agency, title and text (a moved or
        renamed seed file): they keep their ids instead of becoming new items."""
        wanted = {_content_key(i) for i in unmatched if i.guid is None and i.link is None}
        if not wanted or not self._has_absent_items(conn):
            return {}
        found: dict[tuple[str, str, str], _StoredRow] = {}
        hashes = sorted({key[2] for key in wanted})
        for chunk in _chunks(hashes):
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
                row = _StoredRow(*raw)
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

    def _new_ids(self, conn: Connection, new_items: Sequence[Item]) -> list[str]:
        """Ids derived from each item's identity, made unique against the store and batch."""
        proposed = [_item_id(item, 0) for item in new_items]
        taken: set[str] = set()
        for chunk in _chunks(sorted(set(proposed))):
            taken.update(
                conn.execute(sa.select(items.c.item_id).where(items.c.item_id.in_(chunk))).scalars()
            )
        ids: list[str] = []
        for item, item_id in zip(new_items, proposed, strict=True):
            attempt = 0
            # A later attempt's id may be stored too: the third source to carry the same
            # item (no guid, no link) finds the first two ids taken.
            while item_id in taken or (attempt and conn.execute(
                sa.select(items.c.item_id).where(items.c.item_id == item_id)
            ).first() is not None):
                taken.add(item_id)
                attempt += 1
                item_id = _item_id(item, attempt)
            taken.add(item_id)
            ids.append(item_id)
        return ids

    def items(self, item_ids: Iterable[str]) -> list[StoredItem]:
        """The stored items with these ids (unknown ids are ignored)."""
        result: list[StoredItem] = []
        with self._tx() as conn:
            for chunk in _chunks(sorted(set(item_ids))):
                rows = conn.execute(sa.select(*_ITEM_COLUMNS).where(items.c.item_id.in_(chunk)))
                result.extend(_stored_item(row) for row in rows)
        return result

    def features(self, item_ids: Iterable[str]) -> dict[str, str]:
        """Serialized dedup features of stored items that have them."""
        result: dict[str, str] = {}
        with self._tx() as conn:
            for chunk in _chunks(sorted(set(item_ids))):
                rows = conn.execute(
                    sa.select(items.c.item_id, items.c.features).where(
                        items.c.item_id.in_(chunk), items.c.features.is_not(None)
                    )
                )
                result.update({row.item_id: row.features for row in rows})
        return result

    def unassigned_items(self) -> list[str]:
        """Ids of items not yet in any story (new ones, or left by an interrupted run)."""
        with self._tx() as conn:
            return list(
                conn.execute(
                    sa.select(items.c.item_id).where(items.c.story_id.is_(None))
                ).scalars()
            )

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

    # -- dedup index and stories ----------------------------------------------------------

    def candidates(
        self, keys: Iterable[str], days: tuple[int, int] | None, limit_per_key: int
    ) -> Candidates:
        """Stored items sharing each key, within a day range (undated items always match).

        A key shared by more than `limit_per_key` items is too common to tell stories
        apart: it is reported in `common` instead.
        """
        by_hash = {key_hash(k): k for k in keys}
        in_range = (sa.or_(dedup_keys.c.day.between(*days), dedup_keys.c.day.is_(None))
                    if days is not None else sa.true())
        common: set[str] = set()
        wanted: list[int] = []
        result: dict[str, set[str]] = defaultdict(set)
        with self._tx() as conn:
            # Count first (inside the index), so a common key's thousands of postings are
            # never fetched only to be dropped.
            for chunk in _chunks(sorted(by_hash)):
                counts = conn.execute(
                    sa.select(dedup_keys.c.key, sa.func.count())
                    .where(dedup_keys.c.key.in_(chunk), in_range)
                    .group_by(dedup_keys.c.key)
                )
                for hashed, count in counts:
                    if count > limit_per_key:
                        common.add(by_hash[hashed])
                    else:
                        wanted.append(hashed)
            for chunk in _chunks(wanted):
                rows = conn.execute(
                    sa.select(dedup_keys.c.key, dedup_keys.c.item_id)
                    .where(dedup_keys.c.key.in_(chunk), in_range)
                )
                for hashed, item_id in rows:
                    result[by_hash[hashed]].add(item_id)
        return Candidates(items=dict(result), common=frozenset(common))

    def has_index(self) -> bool:
        """Whether any item is in the blocking index yet (not on a first run)."""
        with self._tx() as conn:
            return conn.execute(sa.select(dedup_keys.c.key).limit(1)).first() is not None

    def stories_of(self, item_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """The stories these items belong to, each with its whole membership."""
        story_ids: set[str] = set()
        with self._tx() as conn:
            for chunk in _chunks(sorted(set(item_ids))):
                story_ids.update(
                    s for s in conn.execute(
                        sa.select(items.c.story_id).where(items.c.item_id.in_(chunk))
                    ).scalars() if s is not None
                )
            return self._memberships(conn, story_ids)

    @staticmethod
    def _memberships(conn: Connection, story_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        members: dict[str, list[str]] = defaultdict(list)
        canonical: dict[str, str] = {}
        for chunk in _chunks(sorted(set(story_ids))):
            for row in conn.execute(
                sa.select(stories.c.story_id, stories.c.canonical_item_id).where(
                    stories.c.story_id.in_(chunk)
                )
            ):
                canonical[row.story_id] = row.canonical_item_id
            for row in conn.execute(
                sa.select(items.c.story_id, items.c.item_id)
                .where(items.c.story_id.in_(chunk))
                .order_by(items.c.item_id)
            ):
                members[row.story_id].append(row.item_id)
        result: dict[str, tuple[str, ...]] = {}
        for story_id, ids in members.items():
            head = canonical.get(story_id)
            ordered = sorted(ids, key=lambda i: (i != head, i))
            result[story_id] = tuple(ordered)
        return result

    def apply_stories(self, plan: StoryPlan) -> None:
        """Write dedup's decisions: memberships, story rows, notes, keys and features."""
        with self._tx() as conn:
            memberships = [{"b_item_id": i, "story_id": story_id}
                           for story_id, ids in plan.members.items() for i in ids]
            if memberships:
                conn.execute(
                    items.update().where(items.c.item_id == sa.bindparam("b_item_id"))
                    .values(story_id=sa.bindparam("story_id")),
                    memberships,
                )
            if plan.features:
                conn.execute(
                    items.update().where(items.c.item_id == sa.bindparam("b_item_id"))
                    .values(features=sa.bindparam("features")),
                    [{"b_item_id": k, "features": v} for k, v in plan.features.items()],
                )
            changed_stories = self._write_stories(conn, plan.members)
            if plan.notes:
                noted = sorted({n.item_id for n in plan.notes})
                for chunk in _chunks(noted):
                    conn.execute(match_notes.delete().where(match_notes.c.item_id.in_(chunk)))
                _bulk_insert(conn, match_notes,
                             ("item_id", "other_item_id", "score", "merged", "reasons"), [
                    (n.item_id, n.other_item_id, n.score, n.merged,
                     json.dumps(list(n.reasons), ensure_ascii=False))
                    for n in _unique_notes(plan.notes)
                ])
            if plan.keyed_items:
                for chunk in _chunks(sorted(plan.keyed_items)):
                    conn.execute(dedup_keys.delete().where(dedup_keys.c.item_id.in_(chunk)))
            if plan.index_rows is not None:
                rows: list[tuple[int, str, int | None]] = []
                for key, item_id, day in plan.index_rows():
                    rows.append((key_hash(key), item_id, day))
                    if len(rows) >= _KEY_ROWS_AT_ONCE:
                        _bulk_insert(conn, dedup_keys, ("key", "item_id", "day"), rows)
                        rows = []
                _bulk_insert(conn, dedup_keys, ("key", "item_id", "day"), rows)
            if changed_stories:
                _bump_generation(conn)

    @staticmethod
    def _write_stories(conn: Connection, members: Mapping[str, tuple[str, ...]]) -> int:
        """Rewrite the rows of these stories (dates, canonical, agencies); returns how many."""
        member_ids = [i for ids in members.values() for i in ids]
        dates = _member_dates(conn, member_ids)
        touched = sorted(members)
        for chunk in _chunks(touched):
            conn.execute(stories.delete().where(stories.c.story_id.in_(chunk)))
            conn.execute(story_agencies.delete().where(story_agencies.c.story_id.in_(chunk)))
        story_rows, agency_rows = [], []
        for story_id in touched:
            ids = members[story_id]
            if not ids:
                continue
            rows = [dates[i] for i in ids]
            published, updated = date_span(rows)
            story_rows.append({
                "story_id": story_id, "canonical_item_id": ids[0],
                "published": published, "updated": updated, "size": len(ids),
            })
            for agency in dict.fromkeys(r.agency for r in rows):
                mine = [r for r in rows if r.agency == agency]
                agency_rows.append({
                    "story_id": story_id, "agency": agency, "published": date_span(mine)[0],
                })
        if story_rows:
            conn.execute(stories.insert(), story_rows)
            conn.execute(story_agencies.insert(), agency_rows)
        return len(story_rows)

    def top_stories(self, limit: int, agency: str | None = None) -> list[Story]:
        """The newest `limit` stories (of one agency, restricted to its members), newest first."""
        with self._tx() as conn:
            if agency is None:
                query = sa.select(stories.c.story_id).order_by(
                    stories.c.published.desc(), stories.c.story_id
                )
            else:
                query = (
                    sa.select(story_agencies.c.story_id)
                    .where(story_agencies.c.agency == agency)
                    .order_by(story_agencies.c.published.desc(), story_agencies.c.story_id)
                )
            story_ids = list(conn.execute(query.limit(limit)).scalars())
            loaded = self._load_stories(conn, story_ids)
        result = [loaded[s] for s in story_ids if s in loaded]
        if agency is None:
            return result
        restricted = [s.for_agency(agency) for s in result]
        return [s for s in restricted if s is not None]

    def story(self, story_id: str) -> Story | None:
        """One story by id (a unique prefix of the id is enough)."""
        with self._tx() as conn:
            ids = list(
                conn.execute(
                    sa.select(stories.c.story_id)
                    .where(stories.c.story_id.startswith(story_id, autoescape=True))
                    .limit(2)
                ).scalars()
            )
            if len(ids) != 1:
                return None
            return self._load_stories(conn, ids).get(ids[0])

    def find_stories(self, words: str, limit: int) -> list[Story]:
        """Stories with a member whose title holds every one of `words` (case-insensitive)."""
        terms = [w for w in words.casefold().split() if w]
        if not terms:
            return []
        with self._tx() as conn:
            query = sa.select(items.c.story_id).where(items.c.story_id.is_not(None))
            for term in terms:
                query = query.where(items.c.title_key.contains(term, autoescape=True))
            story_ids = list(dict.fromkeys(conn.execute(query.limit(limit * 4)).scalars()))
            loaded = self._load_stories(conn, story_ids[:limit])
        return [loaded[s] for s in story_ids[:limit] if s in loaded]

    def notes_for(self, item_ids: Iterable[str]) -> list[MatchNote]:
        """Every recorded merge and near miss involving these items."""
        wanted = sorted(set(item_ids))
        result: list[MatchNote] = []
        with self._tx() as conn:
            for chunk in _chunks(wanted):
                rows = conn.execute(
                    sa.select(match_notes).where(
                        sa.or_(match_notes.c.item_id.in_(chunk),
                               match_notes.c.other_item_id.in_(chunk))
                    )
                )
                result.extend(
                    MatchNote(r.item_id, r.other_item_id, r.score, r.merged,
                              tuple(json.loads(r.reasons)))
                    for r in rows
                )
        return list({(n.item_id, n.other_item_id): n for n in result}.values())

    # -- feed history (issue 13): every story, for topic, country and archive feeds -------

    def story_timeline(self) -> list[tuple[str, datetime]]:
        """Every story's id and date in the combined feed's order: newest first, ties by id."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(stories.c.story_id, stories.c.published).order_by(
                    stories.c.published.desc(), stories.c.story_id))
            return [(row.story_id, row.published) for row in rows]

    def agency_timeline(self) -> list[tuple[str, str, datetime]]:
        """(agency, story id, date of the agency's reports) in each agency feed's order."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(story_agencies).order_by(
                    story_agencies.c.agency, story_agencies.c.published.desc(),
                    story_agencies.c.story_id))
            return [(row.agency, row.story_id, row.published) for row in rows]

    def story_versions(self) -> dict[str, str]:
        """Every story's version: a digest of its canonical item and its members' digests,
        which changes whenever anything published of the story does."""
        members: dict[str, list[str]] = defaultdict(list)
        with self._tx() as conn:
            canonical = {row.story_id: row.canonical_item_id for row in conn.execute(
                sa.select(stories.c.story_id, stories.c.canonical_item_id))}
            for row in conn.execute(
                sa.select(items.c.story_id, items.c.item_id, items.c.digest)
                .where(items.c.story_id.is_not(None))
            ):
                members[row.story_id].append(f"{row.item_id}={row.digest}")
        versions = {}
        for story_id, head in canonical.items():
            blob = "|".join([head, *sorted(members.get(story_id, ()))]).encode()
            versions[story_id] = hashlib.blake2b(blob, digest_size=12).hexdigest()
        return versions

    def story_feeds(self) -> dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]]:
        """Each story's recorded (key, countries, topics)."""
        with self._tx() as conn:
            return {
                row.story_id: (row.key, tuple(row.countries.split()), tuple(row.topics.split()))
                for row in conn.execute(sa.select(story_feeds))
            }

    def save_story_feeds(
        self, rows: Mapping[str, tuple[str, tuple[str, ...], tuple[str, ...]]]
    ) -> None:
        """Record stories' (key, countries, topics), replacing what was recorded."""
        if not rows:
            return
        with self._tx() as conn:
            for chunk in _chunks(sorted(rows)):
                conn.execute(story_feeds.delete().where(story_feeds.c.story_id.in_(chunk)))
                conn.execute(story_feeds.insert(), [
                    {"story_id": story_id, "key": rows[story_id][0],
                     "countries": " ".join(rows[story_id][1]),
                     "topics": " ".join(rows[story_id][2])}
                    for story_id in chunk
                ])

    def stories(self, story_ids: Sequence[str]) -> dict[str, Story]:
        """Stories by id, whole (ids of no story are left out)."""
        with self._tx() as conn:
            return self._load_stories(conn, story_ids)

    def _load_stories(self, conn: Connection, story_ids: Sequence[str]) -> dict[str, Story]:
        memberships = self._memberships(conn, story_ids)
        all_ids = [i for ids in memberships.values() for i in ids]
        by_id: dict[str, StoredItem] = {}
        notes: dict[str, list[MatchNote]] = defaultdict(list)
        for chunk in _chunks(all_ids):
            for row in conn.execute(sa.select(*_ITEM_COLUMNS).where(items.c.item_id.in_(chunk))):
                item = _stored_item(row)
                by_id[item.item_id] = item
            for r in conn.execute(
                sa.select(match_notes).where(
                    match_notes.c.item_id.in_(chunk), match_notes.c.merged.is_(True)
                )
            ):
                notes[r.item_id].append(
                    MatchNote(r.item_id, r.other_item_id, r.score, True,
                              tuple(json.loads(r.reasons)))
                )
        result: dict[str, Story] = {}
        for story_id, ids in memberships.items():
            members = [by_id[i] for i in ids if i in by_id]
            if not members:
                continue
            head, rest = members[0], sorted(members[1:], key=lambda m: (m.date, m.item_id))
            story_notes = tuple(n for m in members for n in notes.get(m.item_id, ()))
            result[story_id] = Story(story_id, (head, *rest), story_notes)
        return result


    # -- WebSub subscriptions (the hub of `aggregate --serve`) ----------------------------

    def save_subscription(self, subscription: Subscription) -> None:
        """Insert or replace the subscription of a callback to a topic (a renewal)."""
        row = {f.name: getattr(subscription, f.name) for f in fields(Subscription)}
        with self._tx() as conn:
            conn.execute(websub_subscriptions.delete().where(
                (websub_subscriptions.c.callback == subscription.callback)
                & (websub_subscriptions.c.topic == subscription.topic)))
            conn.execute(websub_subscriptions.insert().values(**row))

    def delete_subscription(self, callback: str, topic: str) -> bool:
        """Remove a subscription; True if there was one."""
        with self._tx() as conn:
            deleted = conn.execute(websub_subscriptions.delete().where(
                (websub_subscriptions.c.callback == callback)
                & (websub_subscriptions.c.topic == topic)))
            return bool(deleted.rowcount)

    def subscription(self, callback: str, topic: str, now: datetime) -> Subscription | None:
        """The subscription of a callback to a topic, unless it has expired by `now`."""
        with self._tx() as conn:
            row = conn.execute(sa.select(websub_subscriptions).where(
                (websub_subscriptions.c.callback == callback)
                & (websub_subscriptions.c.topic == topic)
                & (websub_subscriptions.c.expires > now))).first()
        return None if row is None else _subscription(row)

    def subscribers(self, topics: Iterable[str], now: datetime) -> list[Subscription]:
        """The subscriptions to any of `topics` whose lease runs past `now`."""
        found: list[Subscription] = []
        with self._tx() as conn:
            for chunk in _chunks(sorted(set(topics))):
                rows = conn.execute(sa.select(websub_subscriptions).where(
                    websub_subscriptions.c.topic.in_(chunk)
                    & (websub_subscriptions.c.expires > now)
                ).order_by(websub_subscriptions.c.topic, websub_subscriptions.c.callback))
                found.extend(_subscription(row) for row in rows)
        return found

    def expire_subscriptions(self, now: datetime) -> int:
        """Delete the subscriptions whose lease ended by `now`; how many there were."""
        with self._tx() as conn:
            deleted = conn.execute(websub_subscriptions.delete().where(
                websub_subscriptions.c.expires <= now))
            return int(deleted.rowcount or 0)

    # -- unpublishing (issue 12) ----------------------------------------------------------

    def item_source_ids(self) -> set[str]:
        """Every source id that has items stored."""
        with self._tx() as conn:
            return set(conn.execute(sa.select(items.c.source_id).distinct()).scalars())

    def withdraw_sources(self, source_ids: Iterable[str]) -> Removal:
        """Remove the items (and the fetch state) of sources no longer in the config; their
        stories keep their ids while another member remains. Not a tombstone: a source
        configured again brings its items back."""
        wanted = sorted(set(source_ids))
        with self._tx() as conn:
            ids: list[str] = []
            for chunk in _chunks(wanted):
                ids.extend(conn.execute(
                    sa.select(items.c.item_id).where(items.c.source_id.in_(chunk))).scalars())
                conn.execute(sources.delete().where(sources.c.source_id.in_(chunk)))
            return self._remove(conn, ids)

    def forget_items(self, item_ids: Iterable[str], now: datetime) -> Removal:
        """Take items down for good: removed, and tombstoned by every identity they have, so
        no source brings them back (`forgotten`)."""
        ids = sorted(set(item_ids))
        with self._tx() as conn:
            rows: list[Any] = []
            for chunk in _chunks(ids):
                rows.extend(conn.execute(sa.select(*_ITEM_COLUMNS)
                                         .where(items.c.item_id.in_(chunk))))
            wanted = {key: row for row in rows for key in _identity_keys(
                row.agency, row.guid, row.link, row.title_key, row.content_hash)}
            known: set[str] = set()
            for chunk in _chunks(sorted(wanted)):
                known.update(conn.execute(
                    sa.select(tombstones.c.key).where(tombstones.c.key.in_(chunk))).scalars())
            new_rows = [{"key": key, "item_id": row.item_id, "title": row.title,
                         "forgotten_at": now} for key, row in wanted.items() if key not in known]
            if new_rows:
                conn.execute(tombstones.insert(), new_rows)
            return self._remove(conn, ids)

    def forgotten(self, found: Sequence[Item]) -> list[bool]:
        """For each item a source lists, whether it was forgotten (`forget_items`)."""
        keys = [_identity_keys(i.agency, i.guid, i.link, i.title_key, i.content_hash)
                for i in found]
        wanted = sorted({key for item_keys in keys for key in item_keys})
        if not wanted:
            return [False] * len(found)
        dead: set[str] = set()
        with self._tx() as conn:
            if conn.execute(sa.select(tombstones.c.key).limit(1)).first() is None:
                return [False] * len(found)
            for chunk in _chunks(wanted):
                dead.update(conn.execute(
                    sa.select(tombstones.c.key).where(tombstones.c.key.in_(chunk))).scalars())
        return [any(key in dead for key in item_keys) for item_keys in keys]

    def find_items(self, reference: str) -> list[StoredItem]:
        """Items by id (or its first characters, at least 4), guid or link."""
        text = reference.strip().removeprefix("urn:newswire:item:")
        conditions = [items.c.guid == reference.strip(), items.c.link == reference.strip()]
        if len(text) >= 4:
            conditions.append(items.c.item_id.startswith(text.lower(), autoescape=True))
        with self._tx() as conn:
            rows = conn.execute(sa.select(*_ITEM_COLUMNS).where(sa.or_(*conditions)).limit(50))
            return [_stored_item(row) for row in rows]

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
        for chunk in _chunks(sorted(set(item_ids))):
            for row in conn.execute(sa.select(*_ITEM_COLUMNS).where(items.c.item_id.in_(chunk))):
                removed.append(_stored_item(row))
                if row.story_id is not None:
                    story_ids.add(row.story_id)
        gone = {item.item_id for item in removed}
        memberships = self._memberships(conn, story_ids)
        for chunk in _chunks(sorted(gone)):
            conn.execute(match_notes.delete().where(sa.or_(
                match_notes.c.item_id.in_(chunk), match_notes.c.other_item_id.in_(chunk))))
            conn.execute(dedup_keys.delete().where(dedup_keys.c.item_id.in_(chunk)))
            conn.execute(items.delete().where(items.c.item_id.in_(chunk)))
        remaining = {story_id: tuple(i for i in ids if i not in gone)
                     for story_id, ids in memberships.items()}
        self._write_stories(conn, remaining)
        _bump_generation(conn)
        return Removal(
            items=tuple(removed),
            stories_removed=tuple(sorted(s for s, ids in remaining.items() if not ids)),
            stories_kept=tuple(sorted(s for s, ids in remaining.items() if ids)),
            members_left=tuple(i for ids in remaining.values() for i in ids),
        )


def _subscription(row: Any) -> Subscription:
    return Subscription(**{f.name: getattr(row, f.name) for f in fields(Subscription)})


def _identity_keys(agency: str, guid: str | None, link: str | None, title_key: str,
                   content_hash: str) -> list[str]:
    """Every identity of an item, hashed: its guid, its link, its agency, title and text."""
    parts = [f"content\x1f{agency}\x1f{title_key}\x1f{content_hash}"]
    if guid:
        parts.append(f"guid\x1f{agency}\x1f{guid}")
    if link:
        parts.append(f"link\x1f{agency}\x1f{link}")
    return [hashlib.blake2b(part.encode(), digest_size=20).hexdigest() for part in parts]


# -- helpers ------------------------------------------------------------------------------


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets a reader (explain, a server) look while a run writes; NORMAL is durable
    # enough with WAL and much faster than FULL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # A 64 MB page cache keeps the index inserts of a large first run in memory.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def _bulk_insert(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert many plain rows through the driver's executemany: for the hundreds of
    thousands of index rows of a large first run, SQLAlchemy's per-row work would dominate.
    Only for columns whose values need no conversion (ints, strings, None)."""
    if not rows:
        return
    placeholder = {"qmark": "?", "numeric": ":{}", "named": ":c{}",
                   "format": "%s", "pyformat": "%s"}[conn.dialect.paramstyle]
    marks = ", ".join(placeholder.format(i + 1) for i in range(len(columns)))
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
    if conn.dialect.paramstyle == "named":
        conn.exec_driver_sql(statement, [{f"c{i + 1}": v for i, v in enumerate(row)}
                                         for row in rows])
    else:
        conn.exec_driver_sql(statement, list(rows))


def key_hash(key: str) -> int:
    """A blocking key as a signed 64-bit integer: smaller rows and faster indexes than text.

    CRC-32 and Adler-32 side by side: two independent checksums, cheap on short keys, and
    stable across processes. A rare collision only adds a candidate, which is compared and
    dropped like any other.
    """
    data = key.encode()
    value = zlib.crc32(data) << 32 | zlib.adler32(data)
    return value - (1 << 64) if value >= 1 << 63 else value


def _safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _damage_hint(url: str, exc: sa.exc.SQLAlchemyError) -> str:
    """What to do about a damaged SQLite file (nothing to add for other failures)."""
    if not url.startswith("sqlite:///"):
        return ""
    reason = _reason(exc).lower()
    if "not a database" not in reason and "malformed" not in reason:
        return ""
    path = url[len("sqlite:///") :]
    return (f"; the file is damaged: move it aside (mv {path} {path}.damaged) and run again."
            " A new store is made; stories keep their ids (they follow from the items), but"
            " items first seen before get new first-seen dates when undated")


def _reason(exc: sa.exc.SQLAlchemyError) -> str:
    origin = getattr(exc, "orig", None)
    return str(origin or exc).strip().splitlines()[0]


def _set_meta(conn: Connection, key: str, value: str) -> None:
    updated = conn.execute(meta.update().where(meta.c.key == key).values(value=value))
    if updated.rowcount == 0:
        conn.execute(meta.insert().values(key=key, value=value))


def _bump_generation(conn: Connection) -> int:
    current = conn.execute(sa.select(meta.c.value).where(meta.c.key == "generation")).scalar()
    new = (int(current) if current else 0) + 1
    _set_meta(conn, "generation", str(new))
    return new


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


@dataclass(frozen=True, slots=True)
class _StoredRow:
    item_id: str
    agency: str
    guid: str | None
    link: str | None
    title_key: str
    content_hash: str
    digest: str
    present: bool


def _content_key(item: Item | _StoredRow) -> tuple[str, str, str]:
    return (item.agency, item.title_key, item.content_hash)


def _match(
    found: Sequence[Item], stored: Sequence[_StoredRow]
) -> tuple[dict[int, _StoredRow], list[int]]:
    """Pair found items with stored ones, strongest identity first; return the leftovers.

    Passes: guid; link; agency+title+text; agency+text (title edited); agency+title (text
    edited). An item with a guid only ever matches by that guid, or a stored item without one.
    """
    matches: dict[int, _StoredRow] = {}
    taken: set[str] = set()

    def run(key_of_found: Callable[[Item], Any], key_of_stored: Callable[[_StoredRow], Any],
            allowed: Callable[[Item, _StoredRow], bool]) -> None:
        pool: dict[Any, list[_StoredRow]] = defaultdict(list)
        for row in stored:
            key = key_of_stored(row)
            if key is not None and row.item_id not in taken:
                pool[key].append(row)
        for index, item in enumerate(found):
            if index in matches:
                continue
            key = key_of_found(item)
            for row in pool.get(key, ()) if key is not None else ():
                if row.item_id not in taken and allowed(item, row):
                    matches[index] = row
                    taken.add(row.item_id)
                    break

    def compatible(item: Item, row: _StoredRow) -> bool:
        return item.guid is None or row.guid is None or item.guid == row.guid

    run(lambda i: i.guid, lambda r: r.guid, lambda i, r: True)
    run(lambda i: i.link, lambda r: r.link, compatible)
    run(_content_key, _content_key, compatible)
    run(lambda i: (i.agency, i.content_hash), lambda r: (r.agency, r.content_hash), compatible)
    run(lambda i: (i.agency, i.title_key), lambda r: (r.agency, r.title_key), compatible)
    unmatched = [i for i in range(len(found)) if i not in matches]
    return matches, unmatched


def _item_id(item: Item, attempt: int) -> str:
    """A 24-hex id from the item's identity: the same content gets the same id in a fresh
    store, so losing the state does not re-publish stories under new GUIDs."""
    basis = item.guid or item.link or f"{item.title_key}\x1f{item.content_hash}"
    text = f"{item.agency}\x1f{basis}\x1f{attempt}" if attempt else f"{item.agency}\x1f{basis}"
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def story_id_for(founding_item_id: str) -> str:
    """The GUID of a story founded by an item: stable, and unique because item ids are."""
    return str(uuid.uuid5(STORY_NAMESPACE, founding_item_id))


# Not the position: a feed's items move down as new ones arrive, which is no edit of theirs.
_DIGESTED = ("agency", "agency_label", "title", "text", "html", "truncated", "link", "guid",
             "published", "date_source", "origin")


def _digest(item: Item) -> str:
    """Fingerprint of everything published about an item: equal digests, nothing to update."""
    blob = json.dumps([str(getattr(item, name)) for name in _DIGESTED], ensure_ascii=False)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def _item_values(item: Item) -> dict[str, Any]:
    return {
        "source_id": item.source_id, "origin": item.origin, "position": item.position,
        "agency": item.agency, "agency_label": item.agency_label, "title": item.title,
        "title_key": item.title_key, "text": item.text, "html": item.html,
        "truncated": item.truncated, "content_hash": item.content_hash, "link": item.link,
        "guid": item.guid, "published": item.published, "date_source": item.date_source,
    }


def _item_row(item: Item, item_id: str, now: datetime, features: str | None) -> dict[str, Any]:
    return {
        **_item_values(item), "item_id": item_id, "first_seen": now, "digest": _digest(item),
        "present": True, "story_id": None, "features": features,
    }


def _item_update(item: Item, item_id: str, digest: str) -> dict[str, Any]:
    # Edited text needs fresh dedup features; the story keeps the item (ids never move).
    return {**_item_values(item), "b_item_id": item_id, "digest": digest, "present": True,
            "features": None}


_ITEM_COLUMNS = (
    items.c.item_id, items.c.source_id, items.c.origin, items.c.position, items.c.agency,
    items.c.agency_label, items.c.title, items.c.title_key, items.c.text, items.c.html,
    items.c.truncated, items.c.content_hash, items.c.link, items.c.guid, items.c.published,
    items.c.date_source, items.c.first_seen, items.c.story_id,
)


def _stored_item(row: Any) -> StoredItem:
    return StoredItem(
        item_id=row.item_id, source_id=row.source_id, origin=row.origin, position=row.position,
        agency=row.agency, agency_label=row.agency_label, title=row.title,
        title_key=row.title_key, text=row.text, html=row.html, truncated=bool(row.truncated),
        content_hash=row.content_hash, link=row.link, guid=row.guid, published=row.published,
        date_source=row.date_source, first_seen=row.first_seen, story_id=row.story_id,
    )


@dataclass(frozen=True, slots=True)
class _DateRow:
    agency: str
    published: datetime | None
    first_seen: datetime


def _member_dates(conn: Connection, item_ids: Sequence[str]) -> dict[str, _DateRow]:
    result: dict[str, _DateRow] = {}
    for chunk in _chunks(sorted(set(item_ids))):
        for row in conn.execute(
            sa.select(items.c.item_id, items.c.agency, items.c.published, items.c.first_seen)
            .where(items.c.item_id.in_(chunk))
        ):
            result[row.item_id] = _DateRow(row.agency, row.published, row.first_seen)
    return result


def _unique_notes(notes: Iterable[MatchNote]) -> list[MatchNote]:
    return list({(n.item_id, n.other_item_id): n for n in notes}.values())
