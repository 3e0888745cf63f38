"""State that outlives a run: items with stable ids, stories, fetch state, dedup index.

SQLAlchemy Core behind the narrow `Store` protocol; one schema and one code path for SQLite
(the embedded default) and PostgreSQL (by URL). The parts, one module each: `schema`
(tables and migrations), `sources` (fetch state), `items`, `stories`, `index` (the dedup
index), `subscriptions` (the WebSub hub's), `unpublish` (withdrawn sources, forgotten
items and their tombstones), `feeds` (feed history); `api` holds the protocol and its
values. Which stored item a found item is, the ids of items and stories, and the keys of
tombstones are decided by the pure `aggregator.identity`.
"""

from __future__ import annotations

from aggregator.identity import STORY_NAMESPACE, story_id_for
from aggregator.store.api import (
    ReconcileResult,
    Removal,
    SourceState,
    Store,
    StoryPlan,
    Subscription,
)
from aggregator.store.engine import SqlBase
from aggregator.store.feeds import FeedHistory
from aggregator.store.index import DedupIndex, key_hash
from aggregator.store.items import ItemTables
from aggregator.store.schema import MIGRATIONS
from aggregator.store.sources import SourceTables
from aggregator.store.stories import StoryTables
from aggregator.store.subscriptions import SubscriptionTables
from aggregator.store.unpublish import Unpublishing

# The story id helpers were public names of the single-module store: still importable here.
__all__ = [
    "MIGRATIONS",
    "STORY_NAMESPACE",
    "ReconcileResult",
    "Removal",
    "SourceState",
    "SqlStore",
    "Store",
    "StoryPlan",
    "Subscription",
    "key_hash",
    "open_store",
    "story_id_for",
]


class SqlStore(SourceTables, ItemTables, SubscriptionTables, Unpublishing, FeedHistory,
               StoryTables, DedupIndex, SqlBase):
    """The SQLAlchemy implementation of `Store` (SQLite or PostgreSQL)."""


def open_store(url: str) -> SqlStore:
    """Open (creating and migrating as needed) the store at a SQLAlchemy URL."""
    return SqlStore(url)
