"""The labelled dedup evaluation set (tests/data/dedup) and its pairwise scoring.

Used by tests/test_dedup_quality.py and benchmarks/dedup_quality.py. Items are read from
the set's RSS and Atom files with feedparser and pass through the real normalize step, then
the real dedup clustering, cold (all at once) or incrementally (day by day, as a daemon
would see them).
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import feedparser

from aggregator import dedup
from aggregator.config import AgencyConfig, DedupConfig
from aggregator.model import RawItem, StoredItem
from aggregator.normalize import AgencyDirectory, normalize

EVAL_DIR = Path(__file__).resolve().parent / "data" / "dedup"
SEEN = datetime(2024, 12, 20, 9, 0, tzinfo=UTC)
"""When the evaluation pretends to have first seen every item."""
AGENCIES = AgencyDirectory.from_config({
    slug: AgencyConfig(slug, slug.upper()) for slug in ("nato", "europol", "eurojust",
                                                          "interpol", "jcs")
})


@dataclass(frozen=True, slots=True)
class Labels:
    """The truth: each item's story, and the hard-negative pairs."""

    story_of: dict[str, str]
    kind_of_story: dict[str, str]
    hard_negatives: list[tuple[str, str, str]]

    def true_pairs(self) -> set[frozenset[str]]:
        by_story: dict[str, list[str]] = {}
        for item, story in self.story_of.items():
            by_story.setdefault(story, []).append(item)
        return {frozenset(p) for ids in by_story.values() for p in itertools.combinations(ids, 2)}


@dataclass(slots=True)
class Score:
    """Pairwise precision and recall of one clustering against the labels."""

    precision: float
    recall: float
    f1: float
    false_merges: list[tuple[str, str]] = field(default_factory=list)
    missed_merges: list[tuple[str, str]] = field(default_factory=list)
    hard_negative_merges: list[tuple[str, str, str]] = field(default_factory=list)


def load_items() -> list[StoredItem]:
    """Every item of the set, normalized, with its guid as item id."""
    items: list[StoredItem] = []
    for path in sorted((EVAL_DIR / "feeds").glob("*.xml")):
        agency = path.name.split(".")[0].split("-")[0]
        parsed = feedparser.parse(path.read_bytes())
        for position, entry in enumerate(parsed.entries):
            items.append(_stored(_raw(entry, agency, path.name, position)))
    return items


def _raw(entry: feedparser.FeedParserDict, agency: str, file: str, position: int) -> RawItem:
    content = entry.get("content")
    body = content[0].value if content else entry.get("summary", "")
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    published = datetime(*stamp[:6], tzinfo=UTC) if stamp else None
    return RawItem(
        source_id=f"eval:{file}", origin=f"{file}#{entry.id}", agency_label=agency,
        title=entry.get("title", ""), content=body, content_is_html=True,
        link=entry.get("link"), guid=entry.id, published=published, position=position,
    )


def _stored(raw: RawItem) -> StoredItem:
    result = normalize(raw, AGENCIES, SEEN)
    assert result.item is not None, raw.origin
    item = result.item
    return StoredItem(**{name: getattr(item, name) for name in item.__slots__},  # type: ignore[attr-defined]
                      item_id=raw.guid or raw.origin, first_seen=SEEN)


def load_labels() -> Labels:
    """The set's labels.toml."""
    data = tomllib.loads((EVAL_DIR / "labels.toml").read_text(encoding="utf-8"))
    story_of = {m: s["id"] for s in data["story"] for m in s["members"]}
    kinds = {s["id"]: s["kind"] for s in data["story"]}
    negatives = [(h["pair"][0], h["pair"][1], h["kind"]) for h in data["hard_negative"]]
    return Labels(story_of, kinds, negatives)


def cluster_cold(items: Sequence[StoredItem], config: DedupConfig) -> dict[str, str]:
    """Cluster every item at once (a cold run); returns item id -> story id."""
    features = dedup.extract_many(items)
    clustering = dedup.cluster(features, [], {}, config)
    return {i: s for s, ids in clustering.members.items() for i in ids}


def cluster_incremental(items: Sequence[StoredItem], config: DedupConfig) -> dict[str, str]:
    """Cluster day by day, each day's items against the stories so far, the way the pipeline
    does it: stored candidates chosen through the blocking keys, then their stories."""
    features = {f.item_id: f for f in dedup.extract_many(items)}
    batches: dict[int, list[dedup.Features]] = {}
    for f in features.values():
        batches.setdefault(f.day if f.day is not None else 10**9, []).append(f)
    stories: dict[str, tuple[str, ...]] = {}
    story_of: dict[str, str] = {}
    holders: dict[str, set[str]] = {}
    for day in sorted(batches):
        new = batches[day]
        near = _near(holders, features, new, config)
        chosen = dedup.stored_candidates(new, near, config)
        neighbourhood = {story_of[i]: stories[story_of[i]] for i in chosen}
        known = [features[i] for ids in neighbourhood.values() for i in ids]
        result = dedup.cluster(new, known, neighbourhood, config,
                               stored_counts={k: len(ids) for k, ids in near.items()})
        stories.update(result.members)
        for story_id, ids in result.members.items():
            story_of.update(dict.fromkeys(ids, story_id))
        for f in new:
            for key in dedup.blocking_keys(f):
                holders.setdefault(key, set()).add(f.item_id)
    return {i: s for s, ids in stories.items() for i in ids}


def _near(holders: dict[str, set[str]], features: dict[str, dedup.Features],
          new: Sequence[dedup.Features], config: DedupConfig) -> dict[str, set[str]]:
    """What the store's candidate query returns: holders of the new items' keys within the
    window of their days (undated items always), keys over the cap left out."""
    days = [f.day for f in new if f.day is not None]
    span = (min(days) - config.window_days - 1, max(days) + config.window_days + 1) \
        if len(days) == len(new) else None
    found: dict[str, set[str]] = {}
    for key in {k for f in new for k in dedup.blocking_keys(f)}:
        ids = {i for i in holders.get(key, ()) if span is None or features[i].day is None
               or span[0] <= features[i].day <= span[1]}  # type: ignore[operator]
        if ids and len(ids) <= config.key_cap:
            found[key] = ids
    return found


def score(assignment: dict[str, str], labels: Labels) -> Score:
    """Pairwise precision, recall and F1, with every wrong decision listed."""
    predicted = {
        frozenset(p)
        for ids in _groups(assignment).values()
        for p in itertools.combinations(sorted(ids), 2)
    }
    truth = labels.true_pairs()
    hits = predicted & truth
    precision = len(hits) / len(predicted) if predicted else 1.0
    recall = len(hits) / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    negatives = [(a, b, k) for a, b, k in labels.hard_negatives if frozenset((a, b)) in predicted]
    return Score(
        precision=precision,
        recall=recall,
        f1=f1,
        false_merges=sorted(tuple(sorted(p)) for p in predicted - truth),  # type: ignore[misc]
        missed_merges=sorted(tuple(sorted(p)) for p in truth - predicted),  # type: ignore[misc]
        hard_negative_merges=negatives,
    )


def _groups(assignment: dict[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for item, story in assignment.items():
        groups.setdefault(story, []).append(item)
    return groups


def explain_pair(items: Iterable[StoredItem], a: str, b: str, config: DedupConfig) -> str:
    """One line on how dedup compares two items of the set (for reports)."""
    by_id = {i.item_id: i for i in items}
    fa, fb = dedup.extract_many([by_id[a], by_id[b]])
    verdict = dedup.compare(fa, fb, config)
    veto = f" VETO {verdict.veto}" if verdict.veto else ""
    return f"{a} ~ {b}: score {verdict.score:.3f}{veto}; {'; '.join(verdict.reasons)}"


def with_seen(items: Sequence[StoredItem], moment: datetime) -> list[StoredItem]:
    """The items as if first seen at `moment`."""
    return [replace(i, first_seen=moment) for i in items]
