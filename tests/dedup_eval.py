"""The labelled dedup evaluation sets and their pairwise scoring.

Sets: `tests/data/dedup` (the regression set: the engine was once tuned on it) and the blind
sets in `tests/data/dedup_blind/*`, written by authors who never saw the matcher. Each blind
set is split by story into a dev part (the scorer is fitted on it) and a test part (reported,
never fitted on). Stories linked by a hard-negative pair stay on one side, so each side keeps
its hard negatives.

Items are read from the sets' RSS and Atom files with feedparser and pass through the real
normalize step, then the real dedup clustering, cold (all at once) or incrementally (day by
day, as a daemon would see them). Used by tests/test_dedup_quality.py and by
benchmarks/dedup_quality.py and benchmarks/fit_dedup.py.
"""

from __future__ import annotations

import hashlib
import itertools
import tomllib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser

from aggregator import dedup
from aggregator.config import AgencyConfig, DedupConfig
from aggregator.model import MatchNote, RawItem, StoredItem
from aggregator.normalize import AgencyDirectory, normalize

DATA = Path(__file__).resolve().parent / "data"
EVAL_DIR = DATA / "dedup"
BLIND_DIR = DATA / "dedup_blind"
DENSE_DIR = DATA / "dedup_dense"
"""Blind sets whose items all fall in one fortnight (many stories of one type at once): never
fitted on, never split; evaluated whole."""
AGENCIES = AgencyDirectory.from_config({
    slug: AgencyConfig(slug, slug.upper()) for slug in ("nato", "europol", "eurojust",
                                                          "interpol", "jcs")
})
TEST_SHARE = 0.5
"""The share of each blind set's stories (by hard-negative component) held out for test."""


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

    def restricted(self, stories: Iterable[str]) -> Labels:
        """The labels of some stories only (their items and the hard negatives among them)."""
        kept = set(stories)
        story_of = {i: s for i, s in self.story_of.items() if s in kept}
        return Labels(
            story_of,
            {s: k for s, k in self.kind_of_story.items() if s in kept},
            [h for h in self.hard_negatives if h[0] in story_of and h[1] in story_of],
        )

    def multi_item_stories(self) -> int:
        sizes: dict[str, int] = {}
        for story in self.story_of.values():
            sizes[story] = sizes.get(story, 0) + 1
        return sum(1 for n in sizes.values() if n > 1)


@dataclass(frozen=True, slots=True)
class EvalSet:
    """One labelled set: its items (normalized, guid as item id) and labels."""

    name: str
    items: list[StoredItem]
    labels: Labels
    features: list[dedup.Features] = field(default_factory=list)
    """The items' dedup features, computed once (the scorer does not change them)."""

    def subset(self, stories: Iterable[str], name: str) -> EvalSet:
        """The set restricted to some stories."""
        labels = self.labels.restricted(stories)
        kept = labels.story_of
        return EvalSet(name, [i for i in self.items if i.item_id in kept], labels,
                       [f for f in self.features if f.item_id in kept])


@dataclass(slots=True)
class Score:
    """Pairwise precision and recall of one clustering against the labels."""

    precision: float
    recall: float
    f1: float
    false_merges: list[tuple[str, str]] = field(default_factory=list)
    missed_merges: list[tuple[str, str]] = field(default_factory=list)
    hard_negative_merges: list[tuple[str, str, str]] = field(default_factory=list)
    pairs: int = 0
    predicted: int = 0
    hits: int = 0


def load_set(directory: Path) -> EvalSet:
    """A set from its folder (`feeds/*.xml` and `labels.toml`)."""
    raws: list[RawItem] = []
    for path in sorted((directory / "feeds").glob("*.xml")):
        agency = path.name.split(".")[0].split("-")[0]
        parsed = feedparser.parse(path.read_bytes())
        for position, entry in enumerate(parsed.entries):
            raws.append(_raw(entry, agency, path.name, position))
    dated = [r.published for r in raws if r.published is not None]
    # First seen a little after the newest item, as a daemon following the feeds would.
    seen = (max(dated) + timedelta(days=2)) if dated else datetime(2024, 12, 20, tzinfo=UTC)
    items = [_stored(raw, seen) for raw in raws]
    return EvalSet(directory.name, items, load_labels(directory), dedup.extract_many(items))


def load_items(directory: Path = EVAL_DIR) -> list[StoredItem]:
    """Every item of a set, normalized, with its guid as item id."""
    return load_set(directory).items


def blind_sets() -> list[EvalSet]:
    """The blind sets, in name order."""
    return _sets_in(BLIND_DIR)


def dense_sets() -> list[EvalSet]:
    """The dense-window sets, in name order."""
    return _sets_in(DENSE_DIR)


def _sets_in(folder: Path) -> list[EvalSet]:
    """Every labelled set in `folder` (one per subfolder with a labels.toml), in name order."""
    return [load_set(d) for d in sorted(folder.iterdir()) if (d / "labels.toml").is_file()]


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


def _stored(raw: RawItem, seen: datetime) -> StoredItem:
    result = normalize(raw, AGENCIES, seen)
    assert result.item is not None, raw.origin
    item = result.item
    return StoredItem(**{name: getattr(item, name) for name in item.__slots__},  # type: ignore[attr-defined]
                      item_id=raw.guid or raw.origin, first_seen=seen)


def load_labels(directory: Path = EVAL_DIR) -> Labels:
    """A set's labels.toml."""
    data = tomllib.loads((directory / "labels.toml").read_text(encoding="utf-8"))
    story_of = {m: s["id"] for s in data["story"] for m in s["members"]}
    kinds = {s["id"]: s["kind"] for s in data["story"]}
    negatives = [(h["pair"][0], h["pair"][1], h["kind"]) for h in data.get("hard_negative", [])]
    return Labels(story_of, kinds, negatives)


# -- splits ---------------------------------------------------------------------------------


def components(labels: Labels) -> list[list[str]]:
    """Stories grouped so that hard-negative pairs never cross groups (sorted, stable)."""
    parent = {s: s for s in set(labels.story_of.values())}

    def root(s: str) -> str:
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for a, b, _ in labels.hard_negatives:
        ra, rb = root(labels.story_of[a]), root(labels.story_of[b])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for story in parent:
        groups.setdefault(root(story), []).append(story)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def _draw(group: Sequence[str], salt: str) -> float:
    digest = hashlib.sha256((salt + "|" + group[0]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(evaluation: EvalSet) -> tuple[EvalSet, EvalSet]:
    """The dev and test parts of a set, by story (a fixed, seeded draw per component)."""
    dev: list[str] = []
    test: list[str] = []
    for group in components(evaluation.labels):
        (test if _draw(group, "dedup-split-v1") < TEST_SHARE else dev).extend(group)
    return (evaluation.subset(dev, f"{evaluation.name}/dev"),
            evaluation.subset(test, f"{evaluation.name}/test"))


def folds(evaluation: EvalSet, k: int) -> list[EvalSet]:
    """`k` parts of a set by story component, for cross-validation."""
    groups = sorted(components(evaluation.labels), key=lambda g: _draw(g, "dedup-folds-v1"))
    parts: list[list[str]] = [[] for _ in range(k)]
    for index, group in enumerate(groups):
        parts[index % k].extend(group)
    return [evaluation.subset(p, f"{evaluation.name}/fold{n + 1}") for n, p in enumerate(parts)]


# -- clustering and scoring -----------------------------------------------------------------


def cluster_cold(items: Sequence[StoredItem] | Sequence[dedup.Features],
                 config: DedupConfig, notes: list[MatchNote] | None = None) -> dict[str, str]:
    """Cluster every item at once (a cold run); returns item id -> story id (and adds the
    decisions' notes to `notes`)."""
    features = _features(items)
    clustering = dedup.cluster(features, [], {}, config)
    if notes is not None:
        notes.extend(clustering.notes)
    return {i: s for s, ids in clustering.members.items() for i in ids}


def cluster_incremental(items: Sequence[StoredItem] | Sequence[dedup.Features],
                        config: DedupConfig, notes: list[MatchNote] | None = None,
                        ) -> dict[str, str]:
    """Cluster day by day, each day's items against the stories so far, the way the pipeline
    does it: stored candidates chosen through the blocking keys, then their stories."""
    features = {f.item_id: f for f in _features(items)}
    batches: dict[int, list[dedup.Features]] = {}
    for f in features.values():
        batches.setdefault(f.day if f.day is not None else 10**9, []).append(f)
    stories: dict[str, tuple[str, ...]] = {}
    story_of: dict[str, str] = {}
    holders: dict[str, set[str]] = {}
    for day in sorted(batches):
        new = batches[day]
        spreads, near = _stored_view(holders, features, new, config)
        chosen = dedup.stored_candidates(new, near, spreads, config)
        neighbourhood = {story_of[i]: stories[story_of[i]] for i in chosen}
        known = [features[i] for ids in neighbourhood.values() for i in ids]
        result = dedup.cluster(new, known, neighbourhood, config, stored_counts=spreads)
        if notes is not None:
            notes.extend(result.notes)
        stories.update(result.members)
        for story_id, ids in result.members.items():
            story_of.update(dict.fromkeys(ids, story_id))
        for f in new:
            for key in dedup.blocking_keys(f):
                holders.setdefault(key, set()).add(f.item_id)
    return {i: s for s, ids in stories.items() for i in ids}


def _features(items: Sequence[StoredItem] | Sequence[dedup.Features]) -> list[dedup.Features]:
    if all(isinstance(i, dedup.Features) for i in items):
        return list(items)  # type: ignore[arg-type]
    return dedup.extract_many(items)  # type: ignore[arg-type]


def _stored_view(
    holders: dict[str, set[str]], features: dict[str, dedup.Features],
    new: Sequence[dedup.Features], config: DedupConfig,
) -> tuple[dict[str, dedup.Spread], dict[str, dict[str, int | None]]]:
    """What the pipeline asks of the store (`placement`): the new items' keys' holders
    counted day by day within the window of their days (undated items always), and the
    holders of the keys worth fetching, with their days."""
    days = [f.day for f in new if f.day is not None]
    window = int(config.window_days) + 1
    span = (min(days) - window, max(days) + window) if len(days) == len(new) else None
    found: dict[str, dict[str, int | None]] = {}
    for key in {k for f in new for k in dedup.blocking_keys(f)}:
        ids = {i: features[i].day for i in holders.get(key, ()) if span is None
               or features[i].day is None
               or span[0] <= features[i].day <= span[1]}  # type: ignore[operator]
        if ids:
            found[key] = ids
    spreads = {key: dedup.Spread.of(Counter(ids.values())) for key, ids in found.items()}
    wanted = dedup.keys_to_fetch(new, spreads, config)
    return spreads, {key: ids for key, ids in found.items() if key in wanted}


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
        pairs=len(truth),
        predicted=len(predicted),
        hits=len(hits),
    )


def pooled(scores: Sequence[Score]) -> Score:
    """Several sets' scores as one (pairs added up, not figures averaged)."""
    pairs = sum(s.pairs for s in scores)
    predicted = sum(s.predicted for s in scores)
    hits = sum(s.hits for s in scores)
    precision = hits / predicted if predicted else 1.0
    recall = hits / pairs if pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(
        precision, recall, f1,
        false_merges=[p for s in scores for p in s.false_merges],
        missed_merges=[p for s in scores for p in s.missed_merges],
        hard_negative_merges=[h for s in scores for h in s.hard_negative_merges],
        pairs=pairs, predicted=predicted, hits=hits,
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
