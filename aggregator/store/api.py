"""What the store's callers see: the `Store` protocol and the values it takes and gives."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from aggregator.model import Item, MatchNote, StoredItem, Story


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
class Subscription:
    """A verified WebSub subscription of a callback to one of our feeds."""

    callback: str
    topic: str
    secret: str | None
    lease_seconds: int
    verified: datetime
    expires: datetime


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


FeedRecord = tuple[str, tuple[str, ...], tuple[str, ...]]
"""A story's feed history record: (key, countries, topics)."""


class Store(Protocol):
    """The narrow interface the pipeline, dedup and publish steps use."""

    def close(self) -> None: ...
    def source_state(self, source_id: str) -> SourceState | None: ...
    def source_states(self, source_ids: Iterable[str]) -> dict[str, SourceState]: ...
    def save_source_state(self, state: SourceState) -> None: ...
    def save_source_states(self, states: Sequence[SourceState]) -> None: ...
    def add_sources(self, source_ids: Iterable[str]) -> None: ...
    def claim_sources(
        self, source_ids: Iterable[str], is_due: Callable[[str, SourceState | None], bool],
        *, holder: str, at: datetime, lease: float, limit: int,
    ) -> dict[str, SourceState | None]: ...
    def renew_sources(
        self, source_ids: Iterable[str], holder: str, *, at: datetime, lease: float
    ) -> None: ...
    def release_sources(self, source_ids: Iterable[str], holder: str) -> None: ...
    def leases(self) -> dict[str, tuple[str, datetime]]: ...
    def reconcile(
        self, source_id: str, found: Sequence[Item], now: datetime,
        features: Sequence[str | None] | None = None, keys: Sequence[str] | None = None,
    ) -> ReconcileResult: ...
    def entry_keys(self, source_ids: Iterable[str]) -> dict[str, dict[str, str]]: ...
    def items(self, item_ids: Iterable[str]) -> list[StoredItem]: ...
    def features(self, item_ids: Iterable[str]) -> dict[str, str]: ...
    def candidates(self, keys: Iterable[str], days: tuple[int, int] | None,
                   limit_per_key: int) -> Candidates: ...
    def has_index(self) -> bool: ...
    def stories_of(self, item_ids: Iterable[str]) -> dict[str, tuple[str, ...]]: ...
    def apply_stories(self, plan: StoryPlan) -> None: ...
    def unassigned_items(self) -> list[str]: ...
    def own_dates(self, item_ids: Iterable[str]) -> dict[str, datetime | None]: ...
    def top_stories(self, limit: int, agency: str | None = None) -> list[Story]: ...
    def story(self, story_id: str) -> Story | None: ...
    def find_stories(self, words: str, limit: int) -> list[Story]: ...
    def notes_for(self, item_ids: Iterable[str]) -> list[MatchNote]: ...
    def agencies(self) -> dict[str, str]: ...
    def counts(self) -> tuple[int, int]: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
    def generation(self) -> int: ...
    def placement_lock(self) -> AbstractContextManager[None]: ...
    # WebSub subscriptions (store/subscriptions.py)
    def save_subscription(self, subscription: Subscription) -> None: ...
    def delete_subscription(self, callback: str, topic: str) -> bool: ...
    def subscription(self, callback: str, topic: str, now: datetime) -> Subscription | None: ...
    def subscribers(self, topics: Iterable[str], now: datetime) -> list[Subscription]: ...
    def expire_subscriptions(self, now: datetime) -> int: ...
    # unpublishing, issue 12 (store/unpublish.py); changes stories: under placement_lock
    def item_source_ids(self) -> set[str]: ...
    def withdraw_sources(self, source_ids: Iterable[str]) -> Removal: ...
    def forget_items(self, item_ids: Iterable[str], now: datetime) -> Removal: ...
    def forgotten(self, found: Sequence[Item]) -> list[bool]: ...
    def drop_forgotten(self, item_ids: Iterable[str]) -> Removal: ...
    def find_items(self, reference: str) -> list[StoredItem]: ...
    def find_story_ids(self, reference: str) -> list[str]: ...
    # feed history, issue 13 (store/feeds.py)
    def story_timeline(self) -> list[tuple[str, datetime]]: ...
    def agency_timeline(self) -> list[tuple[str, str, datetime]]: ...
    def story_versions(self) -> dict[str, str]: ...
    def stories(self, story_ids: Sequence[str], notes: bool = True) -> dict[str, Story]: ...
    def story_feeds(self) -> dict[str, FeedRecord]: ...
    def save_story_feeds(self, rows: Mapping[str, FeedRecord]) -> None: ...

