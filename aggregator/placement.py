"""Placing items into stories: the glue between the store and dedup.

Under the store's placement lock (one node at a time changes stories): the items of sources
the config no longer lists are withdrawn, then new items are placed into stories with the
stored items they may join, and the stories of edited items choose their lead again. Dedup
itself is pure (`aggregator.dedup`); this module loads what it needs and stores what it
decided.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aggregator import identity
from aggregator.config import Config
from aggregator.errors import SourceError
from aggregator.logs import facts
from aggregator.sources import expand
from aggregator.store import Removal, Store, StoryPlan

if TYPE_CHECKING:
    from aggregator import dedup

log = logging.getLogger(__name__)

_FEATURE_BATCH = 1000
"""Items analysed for dedup at a time: bounds memory when stored items are analysed again."""
_KEYS_VERSION_META = "dedup_keys_version"
"""Store setting: the features and blocking versions that indexed the stored items."""


def place(store: Store, config: Config, changed: Sequence[str],
          fresh: Mapping[str, dedup.Features],
          fresh_keys: Mapping[str, Sequence[str]] | None = None) -> None:
    """Withdraw the items of removed sources, then place new items into stories and re-rank
    the stories of edited ones (`changed`); `fresh` are this run's new items' features and
    `fresh_keys` the blocking keys of those the read computed already."""
    with store.placement_lock():
        withdrawn = withdraw_removed_sources(store, config)
        # Stories that lost members to a removed source choose their lead entry again.
        _deduplicate(store, config, [*changed, *withdrawn.members_left], fresh,
                     fresh_keys or {})


def withdraw_removed_sources(store: Store, config: Config) -> Removal:
    """Remove the items of sources the config no longer lists (a source switched off with
    `enabled = false` is still listed, and keeps its items)."""
    configured: set[str] = set()
    for source in config.sources:
        try:
            configured.update(unit.source_id for unit in expand(source, config))
        except SourceError:
            return Removal()  # its units cannot be known this run: withdraw nothing
    removed = sorted(store.item_source_ids() - configured)
    if not removed:
        return Removal()
    removal = store.withdraw_sources(removed)
    log.warning("unpublished the items of sources no longer in the config", extra=facts(
        sources=removed, items=len(removal.items),
        stories_removed=len(removal.stories_removed), stories_kept=len(removal.stories_kept)))
    return removal


def serialized(features: Any) -> str:
    """Prepared features (`prepare.Prepared.features`) as the store keeps them."""
    text: str = features.to_json()
    return text


def with_id(features: Any, item_id: str) -> dedup.Features:
    from aggregator import dedup

    return dedup.settled(features, item_id)


def keys_of(features: dedup.Features) -> tuple[str, ...]:
    """An item's blocking keys (a pure function of its features): worked out while the
    read still waits for other units, they cost the dedup step nothing."""
    from aggregator import dedup

    return dedup.blocking_keys(features)


def _deduplicate(
    store: Store, config: Config, changed: Sequence[str], fresh: Mapping[str, dedup.Features],
    fresh_keys: Mapping[str, Sequence[str]],
) -> None:
    """Place new items in stories (their features `fresh` from this run, or from the store
    for items an interrupted run left unplaced); re-rank the stories of edited items."""
    pending = store.unassigned_items()
    if pending:
        # Under the placement lock, which `aggregate forget` holds too: an item another
        # node stored while it was being forgotten (read just before its tombstones were
        # written) is dropped here, before it reaches a story.
        late = store.drop_forgotten(pending)
        if late.items:
            dropped = {item.item_id for item in late.items}
            pending = [i for i in pending if i not in dropped]
            log.info("forgotten=%d (stored while `aggregate forget` took them down; dropped)",
                     len(dropped))
    if not pending and not changed:
        return  # nothing to place: a run of 304s never even loads dedup (and numpy)
    from aggregator import dedup

    _rekey_if_outdated(store)
    timer = time.perf_counter()
    new_features = [fresh[i] for i in pending if i in fresh]
    new_features += _load_features(store, [i for i in pending if i not in fresh]).values()
    neighbourhood = _known_neighbourhood(store, config, new_features, fresh_keys)
    loaded = time.perf_counter()
    clustering = dedup.cluster(
        new_features, neighbourhood.features, neighbourhood.stories, config.dedup,
        stored_counts=neighbourhood.key_counts,
        keys_of=fresh_keys,
    )
    clustered = time.perf_counter()
    # A new story's id follows from its members by a rule on content and dates
    # (identity.settle_story_ids); stories the store holds keep the ids they have.
    new_members = [i for ids in clustering.members.values() for i in ids]
    members = identity.settle_story_ids(clustering.members, neighbourhood.stories,
                                        store.own_dates(new_members))
    analysed = list(new_features)
    pending_ids = set(pending)
    edited = [i for i in changed if i not in pending_ids]
    if edited:
        edited_features = _analyse(store, edited)
        analysed.extend(edited_features)
        stories = {s: ids for s, ids in store.stories_of(edited).items() if s not in members}
        by_id = {f.item_id: f for f in edited_features}
        others = [i for ids in stories.values() for i in ids if i not in by_id]
        by_id.update(_load_features(store, others))
        members.update(dedup.rerank(stories, by_id).members)
    if not analysed:
        return
    store.apply_stories(StoryPlan(
        members=members,
        notes=clustering.notes,
        index_rows=lambda: dedup.index_rows(analysed, clustering.keys),
        keyed_items=tuple(f.item_id for f in analysed if f.item_id not in fresh),
        # This run's new items were stored with their features; the others were analysed now.
        features={f.item_id: f.to_json() for f in analysed if f.item_id not in fresh},
    ))
    log.debug("dedup new=%d known=%d neighbourhood=%.2fs cluster=%.2fs write=%.2fs",
              len(new_features), len(neighbourhood.features), loaded - timer,
              clustered - loaded, time.perf_counter() - clustered)


def _rekey_if_outdated(store: Store) -> None:
    """Work out the stored items' blocking keys again when this version computes other keys
    (or other features) than the one that indexed them, so that new items find stored ones
    as a cold run would. Once per upgrade (and again after one that was interrupted: the
    version is recorded last)."""
    from aggregator import dedup

    version = f"{dedup.FEATURES_VERSION}.{dedup.BLOCKING_VERSION}"
    if store.get_meta(_KEYS_VERSION_META) == version:
        return
    item_ids = store.placed_items()
    if item_ids:
        timer = time.perf_counter()
        # All at once, then batch by batch: deleting by item would scan the index each time.
        store.clear_index()
        for start in range(0, len(item_ids), _FEATURE_BATCH):
            features = _load_features(store, item_ids[start : start + _FEATURE_BATCH])
            rows = list(dedup.index_rows(features.values()))
            store.apply_stories(StoryPlan(
                members={}, index_rows=rows.__iter__,
                features={i: f.to_json() for i, f in features.items()},
            ))
        log.info("re-indexed the blocking keys of %d stored items (indexed by another "
                 "version) in %.1fs", len(item_ids), time.perf_counter() - timer)
    store.set_meta(_KEYS_VERSION_META, version)


def _analyse(store: Store, item_ids: Sequence[str]) -> list[dedup.Features]:
    """Dedup features of stored items (edited ones, or an older run's), read in batches."""
    from aggregator import dedup

    return [f for start in range(0, len(item_ids), _FEATURE_BATCH)
            for f in dedup.extract_many(store.items(item_ids[start : start + _FEATURE_BATCH]))]


@dataclass(frozen=True, slots=True)
class _Neighbourhood:
    """The stored items new items may join, and what the store knows of their keys."""

    features: list[dedup.Features] = field(default_factory=list)
    stories: dict[str, tuple[str, ...]] = field(default_factory=dict)
    key_counts: dict[str, dedup.Spread] = field(default_factory=dict)


def _known_neighbourhood(
    store: Store, config: Config, new_features: Sequence[dedup.Features],
    fresh_keys: Mapping[str, Sequence[str]],
) -> _Neighbourhood:
    """Stored items that may report the same story as a new item, with their stories."""
    from aggregator import dedup

    if not new_features or not store.has_index():
        return _Neighbourhood()  # a first run: every item is new, none stored to compare
    dated = [f for f in new_features if f.day is not None]
    undated = [f for f in new_features if f.day is None]

    def keys(features: Sequence[dedup.Features]) -> set[str]:
        return {key for f in features for key in dedup.keys_for(f, fresh_keys)}

    window = int(config.dedup.window_days) + 1
    days = [f.day for f in dated if f.day is not None]
    span = (min(days) - window, max(days) + window) if days else None
    # New items enter the index only once placed, so the holders counted are stored items:
    # day by day over the dated items' windows; in all, for keys an undated item holds
    # (its window has no bound).
    by_day = store.key_days(keys(dated), span) if dated else {}
    everywhere = store.key_counts(keys(undated)) if undated else {}
    spreads = {key: dedup.Spread.of(by_day.get(key, {}), everywhere.get(key))
               for key in by_day.keys() | everywhere.keys()}
    wanted_dated = dedup.keys_to_fetch(dated, spreads, config.dedup, keys_of=fresh_keys)
    wanted_undated = dedup.keys_to_fetch(undated, spreads, config.dedup, keys_of=fresh_keys)
    found = store.holders(wanted_dated - wanted_undated, span) if wanted_dated else {}
    if wanted_undated:
        found.update(store.holders(wanted_undated, None))
    new_ids = {f.item_id for f in new_features}
    holders = {key: {i: day for i, day in held.items() if i not in new_ids}
               for key, held in found.items()}
    candidate_ids = dedup.stored_candidates(new_features, holders, spreads, config.dedup,
                                            keys_of=fresh_keys)
    if not candidate_ids:
        return _Neighbourhood(key_counts=spreads)
    memberships = store.stories_of(candidate_ids)
    member_ids = [i for ids in memberships.values() for i in ids]
    return _Neighbourhood(
        features=list(_load_features(store, member_ids).values()),
        stories=memberships,
        key_counts=spreads,
    )


def _load_features(store: Store, item_ids: Sequence[str]) -> dict[str, dedup.Features]:
    """Stored features of items, analysing again any that have none (an older run's items)."""
    from aggregator import dedup

    stored = store.features(item_ids)
    result: dict[str, dedup.Features] = {}
    for item_id, text in stored.items():
        # Features of an older version are analysed again from the stored item.
        read = dedup.Features.from_json(text, item_id)
        if read is not None:
            result[item_id] = read
    missing = [i for i in item_ids if i not in result]
    result.update({f.item_id: f for f in _analyse(store, missing)})
    return result
