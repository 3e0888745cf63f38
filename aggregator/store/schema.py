"""The store's schema: tables, and the migrations that bring a store up to date.

The schema is versioned: `MIGRATIONS` holds each step, and opening a store applies the ones
it lacks, so a user's state survives upgrades.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.errors import StoreError

log = logging.getLogger(__name__)


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
    sa.Column("entry_key", sa.String(64)),
    # The key of the feed entry the item was made from (`normalize.entry_key`): an entry
    # whose key is stored is not prepared again. None for items stored before version 6.
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


source_leases = sa.Table(
    "source_leases",
    metadata,
    sa.Column("source_id", sa.String(2000), primary_key=True),
    sa.Column("holder", sa.String(100)),
    sa.Column("expires", UTCDateTime),
)
"""Which node is reading a source, until when (several nodes on one store). A row per known
source; claiming locks rows with SKIP LOCKED, so nodes never wait for each other."""


def _add_source_leases(conn: Connection) -> None:
    source_leases.create(conn, checkfirst=True)


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
"""Verified WebSub subscriptions of callbacks to our feeds (the hub of `aggregate --serve`)."""
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
its link, its agency, title and text: `identity.identity_keys`), so a source sending it
again is not heard."""


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


def _add_entry_keys(conn: Connection) -> None:
    if "entry_key" not in {c["name"] for c in sa.inspect(conn).get_columns("items")}:
        conn.execute(sa.text("ALTER TABLE items ADD COLUMN entry_key VARCHAR(64)"))
    # A build between versions 5 and 6 kept the key after the item's 32-digit digest.
    conn.execute(sa.text(
        "UPDATE items SET entry_key = substr(digest, 33), digest = substr(digest, 1, 32) "
        "WHERE length(digest) > 32"
    ))


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _create_initial_schema,
    _add_source_leases,
    _add_websub_subscriptions,
    _add_tombstones,
    _add_story_feeds,
    _add_entry_keys,
)
"""Schema steps in order; the store's version is how many have been applied. Append only."""

_CREATE_ONLY_STEPS = 5
"""The first steps only create what is missing (`checkfirst`), so a store below this version
runs all of them again when upgraded. Builds before the store package applied them in
another order (version 4 there was initial, WebSub, tombstones, feed history; version 2 of
the package alone was initial, leases): either store ends up with every table. Steps after
these run from the store's version only, as usual."""



def migrate(conn: Connection, where: str) -> None:
    """Apply the migrations the store at `where` lacks, in the transaction `conn`."""
    schema_version.create(conn, checkfirst=True)
    row = conn.execute(sa.select(schema_version.c.version)).first()
    current = row.version if row else 0
    if current > len(MIGRATIONS):
        raise StoreError(
            f"{where}: schema version {current} is newer than this "
            f"aggregator knows ({len(MIGRATIONS)}); upgrade the aggregator"
        )
    first = 0 if current < _CREATE_ONLY_STEPS else current
    for version, step in enumerate(MIGRATIONS[first:], start=first + 1):
        if version > current:
            log.info("store migrate version=%d", version)
        step(conn)
    if row is None:
        conn.execute(schema_version.insert().values(version=len(MIGRATIONS)))
    elif current != len(MIGRATIONS):
        conn.execute(schema_version.update().values(version=len(MIGRATIONS)))
