"""Blocking: the keys an item is indexed under, so that only items sharing rare keys are
compared, and the one ranking of candidates used both in memory and against the store."""

from __future__ import annotations

import bisect
import math
import sys
import zlib
from array import array
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from aggregator.config import DedupConfig
from aggregator.dedup import rarity
from aggregator.dedup.compare import operation_names, specificity, specificity_totals
from aggregator.dedup.features import MIN_PREFIX, Features

BLOCKING_VERSION = 3
"""Bumped whenever `blocking_keys` gives other keys for the same features: a store indexed by
another version has its items' keys worked out again (`placement`)."""
_KEY_LIMITS = {"t": 6, "w": 6, "n": 10, "#": 4, "c": 8, "p": 5}
"""At most this many blocking keys of each kind per item (the most specific)."""
MIN_CANDIDATE_OVERLAP = 1.0
"""Weighted keys a candidate must share: one rare name, or several commoner words."""
_STRONG_WEIGHT = 2.0

_BROAD_KINDS = frozenset("ckatxy")
"""Key kinds that many items share (countries, kind of crime with country or agency, title
words): past `_BROAD_KEY_CAP` holders they find no story worth the comparisons."""
_BROAD_KEY_CAP = 30
_DAYS_TOGETHER = 3
"""Width of the spans of days of a country-and-time key: items 2 days apart share one."""

Candidate = TypeVar("Candidate", int, str)


def useful(key: str, holders: int, key_cap: int) -> bool:
    """Whether a key held by `holders` items near a new one still finds candidates."""
    if holders == 0:
        return False
    return holders <= (_BROAD_KEY_CAP if key[0] in _BROAD_KINDS else key_cap)


def blocking_keys(f: Features) -> tuple[str, ...]:
    """The keys an item is indexed under; items sharing keys become candidates.

    Strong keys (one shared is enough) start with `!`: the text's hash and its opening
    words (which find a "…" summary's full text), the link and the guid.
    """
    keys: set[str] = {f"!h{f.content_hash[:16]}"}
    if len(f.prefix) >= MIN_PREFIX:
        keys.add("!p" + _short_hash(f.prefix[:MIN_PREFIX]))
    if f.link:
        keys.add("!l" + _short_hash(f.link))
    if f.guid:
        keys.add("!g" + _short_hash(f.guid))
    keys.update(_longest("t", f.title_words))
    keys.update(_rarest("w", f.terms - f.title_words))
    keys.update(_longest("n", f.names))
    keys.update(_longest("#", f.figures))
    keys.update("o" + name[:60] for name in operation_names(f))
    keys.update(_longest("c", f.countries))
    keys.update(_longest("p", f.places))
    keys.update(f"d{first}" for first, _ in f.event_dates[:1])
    # Pairs of facts find reports that share no rare word: the same kind of crime in the same
    # country, or an agency's announcement and its own results on that kind of crime.
    kinds = sorted(f.kinds)[:3]
    if kinds:
        countries = sorted(f.countries)[:4]
        keys.update(f"k{kind}|{country}" for kind in kinds for country in countries)
        keys.update(f"a{f.agency}|{kind}" for kind in kinds)
    # The same country (one its title or opening names) within a few days (by publication,
    # or the first event dated): agencies telling one case with other words and facts
    # share little more.
    anchor = f.day if f.day is not None else (f.event_dates[0][0] if f.event_dates else None)
    if anchor is not None:
        for country in sorted(f.title_countries | f.lead_countries)[:3]:
            keys.update(f"y{country}|{(anchor + shift) // _DAYS_TOGETHER}" for shift in (0, 1))
    # Host and visitor: each agency's report of a visit or a joint action names the other.
    if f.organisations:
        keys.update("x" + "|".join(sorted((f.agency, other))) for other in f.organisations
                    if other != f.agency)
    # One string per distinct key: a large run keeps every item's keys (for the store).
    return tuple(map(sys.intern, sorted(keys)))


def keys_for(f: Features, computed: Mapping[str, Sequence[str]] | None) -> Sequence[str]:
    """An item's blocking keys: from `computed` (by item id) where worked out already."""
    known = computed.get(f.item_id) if computed else None
    return known if known is not None else blocking_keys(f)


def _longest(kind: str, values: Collection[str]) -> list[str]:
    """The longest (most specific) values first, as many as the kind allows."""
    if not values:
        return []
    ranked = sorted(values, key=lambda v: (-len(v), v))[: _KEY_LIMITS[kind]]
    return [kind + v[:60] for v in ranked]


def _rarest(kind: str, values: Iterable[str]) -> list[str]:
    """The values rarest in the language first, as many as the kind allows."""
    # Only rare enough values are kept: dropping the others before sorting leaves the same
    # first ones (they sort after every value kept).
    language = rarity.language
    ranked = sorted((-rare, -len(v), v) for v in values if (rare := language(v)) >= 0.5)
    return [kind + v[:60] for _, _, v in ranked[: _KEY_LIMITS[kind]]]


def _short_hash(text: str) -> str:
    return format(zlib.crc32(text.encode()), "08x")


def is_strong_key(key: str) -> bool:
    """True for keys where one shared key makes a candidate."""
    return key.startswith("!")


def key_weight(key: str, holders: int) -> float:
    """How much sharing `key` says, when `holders` items near the new one hold it."""
    return _STRONG_WEIGHT if is_strong_key(key) else rarity.local(holders) * specificity(key)


def best_candidates(
    holders: Iterable[tuple[str, Sequence[Candidate], int]], limit: int
) -> list[Candidate]:
    """The candidates sharing the most rarity-weighted keys with an item, best first.

    `holders` gives, for each of the item's keys, the candidates holding it and how many
    items near the item hold the key (the candidates may be fewer: an incremental run's
    index holds only the stored neighbourhood, and weighs keys as a cold run would). The one
    ranking both the in-memory index and the store's candidate query use."""
    scores: dict[Candidate, float] = {}
    get = scores.get
    for key, holding, frequency in holders:
        weight = key_weight(key, frequency)
        for candidate in holding:
            scores[candidate] = get(candidate, 0.0) + weight
    return _ranked(scores, limit)


def _ranked(scores: Mapping[Candidate, float], limit: int) -> list[Candidate]:
    """The candidates with enough weight in common, the most first (ties: by candidate)."""
    ranked = sorted((-score, candidate) for candidate, score in scores.items()
                    if score >= MIN_CANDIDATE_OVERLAP)
    return [candidate for _, candidate in ranked[:limit]]


@dataclass(frozen=True, slots=True)
class Spread:
    """How many stored items hold one key, day by day: so a later run counts a key's
    holders within each new item's own window, as a cold run does."""

    days: tuple[int, ...]
    """The days that have holders, in order."""
    running: tuple[int, ...]
    """Holders up to and including each of `days`."""
    undated: int = 0
    everywhere: int | None = None
    """All holders whatever their days, when counted (for an undated item's window, which
    is unbounded); else those of `days` and the undated ones."""

    @classmethod
    def of(cls, by_day: Mapping[int | None, int], everywhere: int | None = None) -> Spread:
        """From the number of holders on each day (None: undated holders), counted over the
        days new items' windows span, and all holders (`everywhere`) where an undated new
        item holds the key."""
        days = sorted(d for d in by_day if d is not None)
        running: list[int] = []
        total = 0
        for day in days:
            total += by_day[day]
            running.append(total)
        return cls(tuple(days), tuple(running), by_day.get(None, 0), everywhere)

    def near(self, window: tuple[int, int] | None) -> int:
        """Holders dated within `window` (None: all of them), and the undated ones."""
        if window is None:
            if self.everywhere is not None:
                return self.everywhere
            return (self.running[-1] if self.running else 0) + self.undated
        if not self.running:
            return self.undated
        hi = bisect.bisect_right(self.days, window[1])
        lo = bisect.bisect_left(self.days, window[0])
        within = (self.running[hi - 1] if hi else 0) - (self.running[lo - 1] if lo else 0)
        return within + self.undated


def window_of(f: Features, window: float) -> tuple[int, int] | None:
    """The days within `window` of an item's day (None: undated, no bound)."""
    if f.day is None:
        return None
    return math.floor(f.day - window), math.floor(f.day + window)


def keys_to_fetch(
    new: Sequence[Features], spreads: Mapping[str, Spread], config: DedupConfig,
    keys_of: Mapping[str, Sequence[str]] | None = None,
) -> set[str]:
    """The keys whose stored holders can find a candidate: those held by few enough
    stored items within the window of some new item that holds them (the others are
    skipped for every new item, as a cold run skips them)."""
    wanted: set[str] = set()
    for f in new:
        span = window_of(f, config.window_days)
        for key in keys_for(f, keys_of):
            spread = spreads.get(key)
            if spread is not None and key not in wanted \
                    and useful(key, spread.near(span), config.key_cap):
                wanted.add(key)
    return wanted


def stored_candidates(
    new: Sequence[Features], holders: Mapping[str, Mapping[str, int | None]],
    spreads: Mapping[str, Spread], config: DedupConfig,
    keys_of: Mapping[str, Sequence[str]] | None = None,
) -> set[str]:
    """The stored items worth comparing with new ones: the best `candidate_limit` per new
    item, among the holders within its window, keys weighed by their holders there.
    `holders` maps each fetched key to the stored items holding it (with their days);
    `spreads` counts every key's stored holders by day; `keys_of` has new items' blocking
    keys where they were computed already."""
    chosen: set[str] = set()
    for f in new:
        span = window_of(f, config.window_days)
        held: list[tuple[str, Sequence[str], int]] = []
        for key in keys_for(f, keys_of):
            holding = holders.get(key)
            if not holding:
                continue
            frequency = spreads[key].near(span)
            if not useful(key, frequency, config.key_cap):
                continue
            near = sorted(i for i, day in holding.items() if span is None or day is None
                          or span[0] <= day <= span[1])
            if near:
                held.append((key, near, frequency))
        chosen.update(best_candidates(held, config.candidate_limit))
    return chosen


def index_rows(
    features: Iterable[Features], known_keys: Mapping[str, Sequence[str]] | None = None
) -> Iterator[tuple[str, str, int | None]]:
    """The blocking index rows (key, item id, day) of items, as the store keeps them
    (`known_keys`: keys already computed, by item id)."""
    for f in features:
        for key in keys_for(f, known_keys):
            yield key, f.item_id, f.day


_SLOT_MASK = (1 << 32) - 1
_DAY_OFFSET = 1 << 20
"""Days since 1970 shifted positive, so packed postings sort by day (dates from 1900 on)."""


def _pack(day: int, slot: int) -> int:
    """A posting as one integer: the day in the high bits, the item's slot in the low."""
    return (day + _DAY_OFFSET) << 32 | slot


@dataclass(slots=True)
class Index:
    """In-memory blocking index (key -> the items holding it, sorted by day) that also
    weighs keys by how many items near an item hold them (a `Weighting`)."""

    window: float
    key_cap: int
    stored_counts: Mapping[str, Spread]
    """How many stored items hold each key, day by day (the store's view, from an
    incremental run)."""
    dated: dict[str, int | array[int]] = field(default_factory=dict)
    """key -> its dated postings, each `_pack(day, slot)`, in order: one int while a key has
    one posting (most names and hashes do), an array from the second on."""
    undated: dict[str, int | list[int]] = field(default_factory=dict)
    features: list[Features] = field(default_factory=list)
    story_of: list[str] = field(default_factory=list)
    totals_by_item: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Item id -> the summed specificity of its values of each kind (`Weighting.totals`)."""
    around: Features | None = None
    """The item being placed: weights are computed for its neighbourhood, and cached."""
    weights: dict[str, float] = field(default_factory=dict)
    kind_weights: dict[str, _KindWeights] = field(default_factory=dict)
    """Kind -> value -> the weight of the key around the focus (as `weight` gives it)."""
    counts: dict[str, int] = field(default_factory=dict)
    """Postings near the focus (dated in its window, or undated) per key, as counted."""
    span: tuple[int, int] | None = None
    """The focus's window as packed postings."""
    known_slots: int = 0
    """Slots below this hold stored items (counted in `stored_counts`), not this run's."""
    around_keys: frozenset[str] = frozenset()

    def add(self, f: Features, story_id: str, keys: Sequence[str] | None = None) -> None:
        """Index an item (of story `story_id`) under its keys."""
        slot = len(self.features)
        self.features.append(f)
        self.story_of.append(story_id)
        for key in keys if keys is not None else blocking_keys(f):
            if f.day is None:
                held = self.undated.get(key)
                if held is None:
                    self.undated[key] = slot
                elif isinstance(held, int):
                    self.undated[key] = [held, slot]
                else:
                    held.append(slot)
                continue
            posting = _pack(f.day, slot)
            postings = self.dated.get(key)
            if postings is None:
                self.dated[key] = posting
            elif isinstance(postings, int):
                self.dated[key] = array("q", sorted((postings, posting)))
            elif postings[-1] <= posting:
                postings.append(posting)
            else:
                postings.insert(bisect.bisect_right(postings, posting), posting)

    def focus(self, f: Features, keys: Sequence[str] | None = None) -> None:
        """Weigh keys around `f` (whose blocking keys are `keys`) from now on."""
        if self.around is not f:
            self.around = f
            self.around_keys = frozenset(keys if keys is not None else blocking_keys(f))
            self.weights = {}
            self.kind_weights = {}
            self.counts = {}
            self.span = self._span(f)

    def weight(self, key: str, around: Features) -> float:
        """The rarity of a key among the items near `around` (cached for the focus).

        Only `around`'s own blocking keys are counted: the store counts those for a later run
        (and no others), so a cold run weighs exactly as a later one. Other values weigh by
        their specificity alone."""
        if around is not self.around:
            self.focus(around)
        cached = self.weights.get(key)
        if cached is None:
            local = (rarity.local(self.frequency(key, around)) if key in self.around_keys
                     else 1.0)
            cached = self.weights[key] = local * specificity(key)
        return cached

    def shared_weight(self, kind: str, values: Iterable[str], around: Features) -> float:
        """The summed weight of some values of one kind around `around`, in their order."""
        if around is not self.around:
            return sum(self.weight(kind + value, around) for value in values)
        table = self.kind_weights.get(kind)
        if table is None:
            table = self.kind_weights[kind] = _KindWeights(self, kind)
        # `sum` as `compare` always summed: the same additions in the same order.
        return sum(map(table.__getitem__, values))

    def totals(self, f: Features) -> tuple[float, ...]:
        """The summed weight of an item's values of each kind (cached: an item is compared
        with many)."""
        per_kind = self.totals_by_item.get(f.item_id)
        if per_kind is None:
            # The keys' specificity alone: what an item says does not depend on its neighbours.
            per_kind = self.totals_by_item[f.item_id] = specificity_totals(f)
        return per_kind

    def _span(self, f: Features) -> tuple[int, int] | None:
        """The packed postings bounding the window of `f` (None: undated, no bound)."""
        if f.day is None:
            return None
        return (_pack(math.floor(f.day - self.window), 0),
                _pack(math.floor(f.day + self.window), _SLOT_MASK))

    def _near(self, key: str, f: Features) -> Sequence[int]:
        """`key`'s dated postings within the window of `f` (all, if `f` is undated)."""
        held = self.dated.get(key)
        if held is None:
            return ()
        span = self.span if f is self.around else self._span(f)
        if isinstance(held, int):
            return (held,) if span is None or span[0] <= held <= span[1] else ()
        if span is None:
            return held
        return held[bisect.bisect_left(held, span[0]) : bisect.bisect_right(held, span[1])]

    def _near_count(self, key: str, f: Features) -> int:
        """How many of `key`'s postings, dated within the window of `f` or undated, there are
        (cached for the focus)."""
        focused = f is self.around
        if focused:
            cached = self.counts.get(key)
            if cached is not None:
                return cached
        held = self.dated.get(key)
        span = self.span if focused else self._span(f)
        if held is None:
            count = 0
        elif isinstance(held, int):
            count = 1 if span is None or span[0] <= held <= span[1] else 0
        elif span is None:
            count = len(held)
        else:
            count = bisect.bisect_right(held, span[1]) - bisect.bisect_left(held, span[0])
        undated = self.undated.get(key)
        if undated is not None:
            count += 1 if isinstance(undated, int) else len(undated)
        if focused:
            self.counts[key] = count
        return count

    def _undated(self, key: str) -> Sequence[int]:
        held = self.undated.get(key, ())
        return (held,) if isinstance(held, int) else held

    def frequency(self, key: str, f: Features) -> int:
        """How many items near `f` hold `key`: the store's count of its stored holders, and
        the items of this run indexed so far (the stored items indexed, a neighbourhood, are
        in the store's count already), so a later run weighs keys as a cold run would."""
        spread = self.stored_counts.get(key)
        stored = spread.near(window_of(f, self.window)) if spread is not None else 0
        known = self.known_slots
        if not known:
            return stored + self._near_count(key, f)
        near = self._near(key, f)
        undated = self._undated(key)
        fresh = sum(1 for p in near if p & _SLOT_MASK >= known)
        fresh += sum(1 for slot in undated if slot >= known)
        # The stored items indexed are among the store's holders (a caller that gave no
        # counts has only those).
        indexed = len(near) + len(undated) - fresh
        return max(stored, indexed) + fresh

    def candidates(self, f: Features, keys: Sequence[str], limit: int) -> list[int]:
        """The indexed items (slots) sharing the most rarity-weighted keys with `f`: the
        ranking of `best_candidates`, summed straight from the postings (every new item
        ranks its candidates: this loop is hot, hence the local names)."""
        focused = f is self.around
        span = self.span if focused else self._span(f)
        counts = self.counts
        dated = self.dated
        undated_postings = self.undated
        key_cap = self.key_cap
        # A cold run's index holds every item near `f`: what it counts is the frequency.
        counted_is_frequency = not self.known_slots and not self.stored_counts
        scores: dict[int, float] = {}
        get = scores.get
        for key in keys:
            cap = _BROAD_KEY_CAP if key[0] in _BROAD_KINDS else key_cap
            unplaced = undated_postings.get(key)
            undated: Sequence[int] = (() if unplaced is None else (unplaced,)
                                      if isinstance(unplaced, int) else unplaced)
            held = dated.get(key)
            if held is None:
                near: Sequence[int] = ()
            elif isinstance(held, int):
                near = (held,) if span is None or span[0] <= held <= span[1] else ()
            elif span is None:
                near = held
            else:
                lo = bisect.bisect_left(held, span[0])
                hi = bisect.bisect_right(held, span[1])
                # Counted before listed: a broad key's postings are never copied (a later
                # run's count, with the store's holders, is no smaller).
                if hi - lo + len(undated) > cap:
                    if focused:
                        counts[key] = hi - lo + len(undated)
                    continue
                near = held[lo:hi]
            count = len(near) + len(undated)
            if focused:
                counts[key] = count
            if not count:
                continue
            # Counted with the store's holders: a later run's index holds a neighbourhood.
            frequency = count if counted_is_frequency else self.frequency(key, f)
            if not 0 < frequency <= cap:  # `useful`
                continue
            # Summed key by key, each key's holders in slot order: `best_candidates`'s sums.
            weight = key_weight(key, frequency)
            for posting in near:
                slot = posting & _SLOT_MASK
                scores[slot] = get(slot, 0.0) + weight
            for slot in undated:
                scores[slot] = get(slot, 0.0) + weight
        # Ties by item id, as `best_candidates` breaks them: slots are numbered in the order
        # a run indexed items, which differs between a cold and a later run.
        features = self.features
        ranked = sorted((-score, features[slot].item_id, slot) for slot, score in scores.items()
                        if score >= MIN_CANDIDATE_OVERLAP)
        return [slot for _, _, slot in ranked[:limit]]


class _KindWeights(dict[str, float]):
    """Value -> the weight of the key `kind + value` around an index's focus (as
    `Index.weight` gives it), each computed on first use."""

    __slots__ = ("index", "kind")

    def __init__(self, index: Index, kind: str) -> None:
        super().__init__()
        self.index = index
        self.kind = kind

    def __missing__(self, value: str) -> float:
        # `Index.weight`'s value, without its checks: the index's focus is this table's.
        index = self.index
        around = index.around
        assert around is not None
        key = self.kind + value
        local = rarity.local(index.frequency(key, around)) if key in index.around_keys else 1.0
        weight = self[value] = local * specificity(key)
        return weight
