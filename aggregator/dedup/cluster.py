"""Clustering: placing items into stories, incrementally and without chaining (pure).

Each new item is compared with the stories of its candidates (found through blocking keys)
and joins the story it matches best when it matches one member strongly, conflicts with no
member and is related to every member; otherwise it founds a new story. A later run places
an item exactly as a cold run would: the same candidates, the same comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aggregator.config import DedupConfig
from aggregator.dedup.blocking import Index, Spread, keys_for
from aggregator.dedup.compare import Comparison, Evidence, assess, explained
from aggregator.dedup.features import Features
from aggregator.identity import story_id_for
from aggregator.model import MatchNote


@dataclass(frozen=True, slots=True)
class Clustering:
    """The outcome: every touched story's members (canonical first), and the notes."""

    members: dict[str, tuple[str, ...]]
    notes: tuple[MatchNote, ...] = ()
    keys: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """The blocking keys of the items placed, computed on the way (for the store's index)."""


def cluster(
    new: Sequence[Features],
    known: Sequence[Features],
    stories: Mapping[str, Sequence[str]],
    config: DedupConfig,
    *,
    stored_counts: Mapping[str, Spread] | None = None,
    keys_of: Mapping[str, Sequence[str]] | None = None,
) -> Clustering:
    """Assign `new` items to the stories of `known` items, or to new stories.

    `stories` maps each story id to its members among `known`. From an incremental run,
    `stored_counts` says how many stored items hold each of their keys, day by day (keys too
    common to fetch holders for too). `keys_of` holds new items' blocking keys where they
    were computed already (by item id). Returns the whole membership, canonical first, of
    every story that gained a member.
    """
    index = Index(window=config.window_days, key_cap=config.key_cap,
                  stored_counts=stored_counts or {})
    by_id: dict[str, Features] = {f.item_id: f for f in known}
    members: dict[str, list[str]] = {}
    story_of_item: dict[str, str] = {}
    for story_id, ids in stories.items():
        members[story_id] = [i for i in ids if i in by_id]
        for item_id in ids:
            story_of_item[item_id] = story_id
    for f in sorted(known, key=processing_order):
        if f.item_id in story_of_item:
            index.add(f, story_of_item[f.item_id])
    index.known_slots = len(index.features)
    touched: set[str] = set()
    notes: list[MatchNote] = []
    placed_keys: dict[str, Sequence[str]] = {}
    for f in sorted(new, key=processing_order):
        if f.item_id in story_of_item:
            continue
        by_id[f.item_id] = f
        keys = placed_keys[f.item_id] = keys_for(f, keys_of)
        joined, item_notes = _place(f, keys, index, members, by_id, config)
        notes.extend(item_notes)
        story_id = joined if joined is not None else story_id_for(f.item_id)
        if joined is None:
            members[story_id] = []
        members[story_id].append(f.item_id)
        story_of_item[f.item_id] = story_id
        touched.add(story_id)
        index.add(f, story_id, keys)
    ordered = {
        story_id: tuple(sorted(members[story_id], key=lambda i: richness(by_id[i])))
        for story_id in sorted(touched)
    }
    return Clustering(members=ordered, notes=tuple(notes), keys=placed_keys)


def rerank(stories: Mapping[str, Sequence[str]], features: Mapping[str, Features]) -> Clustering:
    """Re-order stories whose members changed (an edit), canonical first."""
    return Clustering(members={
        story_id: tuple(sorted(ids, key=lambda i: richness(features[i])))
        for story_id, ids in stories.items() if all(i in features for i in ids)
    })


def processing_order(f: Features) -> tuple[int, int, str]:
    """Dated items first, in date order; undated ones after, in the order first seen."""
    return (0, f.day, f.item_id) if f.day is not None else (1, f.seen_day, f.item_id)


def joins(comparisons: Sequence[Comparison], config: DedupConfig) -> float | None:
    """How strongly an item joins a story (None: it does not), from its comparisons with
    every member. It joins when it is one of them, or when it matches one member strongly,
    conflicts with none and is related to every member (a weak score with some is fine, a
    conflict or none at all is not). A weak link alone never joins: no chaining.

    (Combining the members' scores, so that fair matches with several members add up, was
    tried on the dev split and merged more hard negatives than it found stories.)"""
    if any(c.exact for c in comparisons):
        return 2.0
    top = max(c.score for c in comparisons)
    if top < config.merge_threshold or not all(c.agrees(config) for c in comparisons):
        return None
    return top


def _place(
    f: Features,
    keys: Sequence[str],
    index: Index,
    members: Mapping[str, Sequence[str]],
    by_id: Mapping[str, Features],
    config: DedupConfig,
) -> tuple[str | None, list[MatchNote]]:
    """The story `f` joins (None: a new one) and the notes that explain the decision."""
    index.focus(f, keys)
    candidate_stories = list(dict.fromkeys(
        index.story_of[slot] for slot in index.candidates(f, keys, config.candidate_limit)
    ))
    best: tuple[float, str, str, Comparison, Evidence | None] | None = None
    near_misses: list[tuple[float, str, Comparison]] = []
    for story_id in candidate_stories:
        # Words only for the pairs that become notes: most comparisons need just a score.
        ids = members[story_id]
        if not ids:
            continue
        assessed = [assess(f, by_id[m], config, index) for m in ids]
        comparisons = [c for c, _ in assessed]
        strength = joins(comparisons, config)
        # Ties go to the member with the greater id: a cold and a later run list a story's
        # members and candidates in other orders, and must decide alike.
        top_at = max(range(len(ids)), key=lambda k: (comparisons[k].exact,
                                                     comparisons[k].score, ids[k]))
        if strength is not None:
            if best is None or (strength, ids[top_at]) > (best[0], best[2]):
                best = (strength, story_id, ids[top_at], *assessed[top_at])
            continue
        top = comparisons[top_at]
        if top.score < config.near_miss_threshold * 0.6:
            continue
        worded = explained(f, by_id[ids[top_at]], *assessed[top_at])
        near_miss = _near_miss(worded, comparisons, config)
        if near_miss is not None:
            near_misses.append((worded.score, ids[top_at], near_miss))
    notes = [
        MatchNote(f.item_id, member, score, False, c.reasons)
        for score, member, c in sorted(near_misses, key=lambda n: (-n[0], n[1]))[:3]
    ]
    if best is None:
        return None, notes
    _, story_id, member, comparison, e = best
    comparison = explained(f, by_id[member], comparison, e)
    notes.insert(0, MatchNote(f.item_id, member, comparison.score, True, comparison.reasons))
    return story_id, notes


def _near_miss(
    top: Comparison, comparisons: Sequence[Comparison], config: DedupConfig
) -> Comparison | None:
    """The note for a story the item did not join, if it came close enough to record."""
    if top.veto:
        if top.score < config.near_miss_threshold * 0.6:
            return None
        return Comparison(top.score, veto=top.veto,
                          reasons=(*top.reasons, f"kept apart: {top.veto}"))
    if top.score < config.near_miss_threshold:
        return None
    if top.merges(config):
        odd = next((c for c in comparisons if not c.agrees(config)), None)
        why = odd.veto if odd is not None and odd.veto else "it is unrelated to another item"
        return Comparison(top.score, reasons=(*top.reasons, f"kept apart: {why} of that story"))
    return Comparison(top.score, reasons=(*top.reasons, "kept apart: not enough in common"))


def richness(f: Features) -> tuple[bool, bool, int, bool, bool, int, str]:
    """Sort key, best first: full text over a summary, a report over its advisory, more text
    over less, a live item (with a link) over a seed copy, a stated date, the original first."""
    return (
        f.truncated,
        f.advisory,
        -int(math.log2(f.length + 1) * 4),
        not f.has_link,
        not f.stated,
        f.seen_day,
        f.item_id,
    )
