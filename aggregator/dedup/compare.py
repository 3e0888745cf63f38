"""Comparing two items: exact identity, the evidence they share, the fitted score, vetoes,
and the reasons in words (pure)."""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Protocol

from aggregator import minhash
from aggregator.config import DedupConfig
from aggregator.dedup import rarity, scorer, vocabulary
from aggregator.dedup.features import _EPOCH, MIN_PREFIX, Features

_MIN_WORDS_FOR_TEXT_IDENTITY = 25
_ADVISORY_REACH_DAYS = 4
"""An advisory announces an event of the next few days."""
_ONE_DAY_EVENTS = frozenset({"visit", "call", "conference"})
"""Kinds of event that happen on the dates given: a meeting on another day is another one."""
_DATE_SLACK_DAYS = 3
"""Event dates this close are evidence against a pair, not a veto: one agency dates the
incident, another the statement on it two days later."""
WEIGHTED_KINDS = ("t", "w", "n", "c", "p", "#")
"""The kinds of key `evidence` weighs (see `Weighting`)."""


_SharedWeight = Callable[[str, Iterable[str], Features], float]
"""`Weighting.shared_weight`."""


class Weighting(Protocol):
    """How much a shared key counts: rare ones near 1. Keys are a kind letter and a value:
    title word `t`, lead term `w`, name `n`, figure `#`, country `c`, place `p`."""

    def weight(self, key: str, around: Features) -> float:
        """The weight of one key among the items near `around`."""
        ...

    def totals(self, f: Features) -> tuple[float, ...]:
        """The summed weight of all of an item's values of each kind, in the order of
        `WEIGHTED_KINDS`."""
        ...

    def shared_weight(self, kind: str, values: Iterable[str], around: Features) -> float:
        """The summed weight of some values of one kind (keys `kind + value`), in order."""
        ...


@lru_cache(maxsize=262_144)
def specificity(key: str) -> float:
    """How much a key says however rare it is locally: two-digit figures (10 arrests)
    coincide more often than 1,150 or a name; common English words say little."""
    kind, value = key[0], key[1:]
    if kind == "#":
        digits = value.replace(".", "")
        return 1.0 if len(digits) >= 3 or "." in value else 0.4
    if kind in ("t", "w"):
        return rarity.language(value)
    if kind == "n":
        # A name is as telling as its rarest word: "Balticconnector" more than "Europe".
        return max((rarity.language(word) for word in value.split()), default=1.0)
    return 1.0


class Uniform:
    """Weights from the keys alone, with no neighbourhood (for comparing a lone pair)."""

    def weight(self, key: str, around: Features) -> float:
        return specificity(key)

    def totals(self, f: Features) -> tuple[float, ...]:
        return specificity_totals(f)

    def shared_weight(self, kind: str, values: Iterable[str], around: Features) -> float:
        return sum(specificity(kind + value) for value in values)


UNIFORM = Uniform()


def specificity_totals(f: Features) -> tuple[float, ...]:
    """The summed specificity of an item's values of each weighted kind (`WEIGHTED_KINDS`):
    what an item says, whoever its neighbours are."""
    # `specificity` of each key, in the sets' order, without building the keys: a word's is
    # its rarity in the language, a country's and a place's 1.
    language = rarity.language
    return (
        sum(map(language, f.title_words)),
        sum(map(language, f.terms)),
        sum(specificity("n" + value) for value in f.names),
        float(len(f.countries)),
        float(len(f.places)),
        sum(specificity("#" + value) for value in f.figures),
    )


def values_of(f: Features, kind: str) -> frozenset[str]:
    """An item's values of one weighted kind."""
    if kind == "t":
        return f.title_words
    if kind == "w":
        return f.terms
    if kind == "n":
        return f.names
    if kind == "c":
        return f.countries
    if kind == "p":
        return f.places
    return f.figures


@dataclass(frozen=True, slots=True)
class Comparison:
    """The verdict on one pair, with reasons in words a user understands."""

    score: float
    exact: bool = False
    veto: str | None = None
    reasons: tuple[str, ...] = ()

    def merges(self, config: DedupConfig) -> bool:
        """True when the pair reports one story."""
        return self.exact or (self.veto is None and self.score >= config.merge_threshold)

    def agrees(self, config: DedupConfig) -> bool:
        """True when the pair may sit in one story (no conflict, not unrelated)."""
        return self.exact or (self.veto is None and self.score >= config.agree_threshold)


@dataclass(frozen=True, slots=True)
class Evidence:
    """The signals of one pair, each between 0 and 1, in the scorer's feature order."""

    values: tuple[float, ...]
    same_event_day: tuple[int, int] | None
    same_operation: str | None
    days_apart: int | None

    def get(self, name: str) -> float:
        """One signal by its name in `scorer.FEATURES`."""
        return self.values[scorer.FEATURES.index(name)]


def evidence(a: Features, b: Features, weighting: Weighting = UNIFORM) -> Evidence:
    """Measure what two items have in common."""
    same_day = _same_first_day(a, b)
    operation = (next(iter(sorted(operation_names(a) & operation_names(b))), None)
                 if a.operations and b.operations else None)
    days_apart = abs(a.day - b.day) if a.day is not None and b.day is not None else None
    counts_agree, counts_differ = (_count_agreement(a.counts, b.counts)
                                   if a.counts and b.counts else (0.0, 0.0))
    advisory_pair = a.advisory != b.advisory
    close_in_time = days_apart is None or days_apart <= _ADVISORY_REACH_DAYS
    # Every pair is scored, most of them to be told apart: the totals are looked up once per
    # pair, and the values laid out straight in the scorer's order (`_SIGNALS`).
    a_title, a_terms, a_names, a_countries, a_places, a_figures = weighting.totals(a)
    b_title, b_terms, b_names, b_countries, b_places, b_figures = weighting.totals(b)
    shared_weight = weighting.shared_weight
    values = (
        _weighted_dice(a, "t", a.title_words, b.title_words, a_title, b_title, shared_weight),
        max(minhash.similarity(a.signature, b.signature),
            _packed_dice(a.lead_words, b.lead_words)),
        _weighted_containment(a, "w", a.terms, b.terms, a_terms, b_terms, shared_weight),
        _weighted_dice(a, "n", a.names, b.names, a_names, b_names, shared_weight),
        _weighted_dice(a, "c", a.countries, b.countries, a_countries, b_countries,
                       shared_weight),
        _weighted_dice(a, "p", a.places, b.places, a_places, b_places, shared_weight),
        1.0 if a.places and b.places and not a.places & b.places else 0.0,
        _weighted_dice(a, "#", a.figures, b.figures, a_figures, b_figures, shared_weight),
        counts_agree,
        counts_differ,
        1.0 if a.amounts and b.amounts and _amounts_agree(a.amounts, b.amounts) else 0.0,
        _dice(a.kinds, b.kinds),
        _dice(a.events, b.events),
        1.0 if same_day is not None else 0.0,
        1.0 if a.event_dates and b.event_dates and _event_day_gap(a, b) > 0 else 0.0,
        1.0 if operation is not None else 0.0,
        min(timed, 14) / 14 if (timed := _time_apart(a, b, days_apart)) is not None else 0.0,
        1.0 if timed is None else 0.0,
        1.0 if a.agency == b.agency else 0.0,
        1.0 if a.agency != b.agency and a.agency in b.organisations
        and b.agency in a.organisations else 0.0,
        1.0 if advisory_pair and close_in_time else 0.0,
        1.0 if advisory_pair and close_in_time and a.agency == b.agency else 0.0,
    )
    return Evidence(
        values=values,
        same_event_day=same_day,
        same_operation=operation,
        days_apart=days_apart,
    )


_SIGNALS = (
    "title", "text", "terms", "names", "countries", "places", "places_differ", "figures",
    "counts_agree", "counts_differ", "amounts_agree", "kinds", "events", "event_day",
    "dates_differ", "operation", "days_apart", "undated", "same_agency", "name_each_other",
    "advisory_pair", "advisory_same_agency",
)
"""The order `evidence` lays its values out in: the scorer's."""
if _SIGNALS != scorer.FEATURES:
    raise ImportError("compare.evidence lays out its values in another order than the scorer")
_TEXT = _SIGNALS.index("text")


def compare(
    a: Features, b: Features, config: DedupConfig, weighting: Weighting = UNIFORM,
    *, explain: bool = True,
) -> Comparison:
    """How likely `a` and `b` report the same event, and (with `explain`) why, in words."""
    comparison, e = assess(a, b, config, weighting)
    return explained(a, b, comparison, e) if explain else comparison


def assess(
    a: Features, b: Features, config: DedupConfig, weighting: Weighting = UNIFORM
) -> tuple[Comparison, Evidence | None]:
    """`compare` without the words, and the evidence behind the score (None when identity
    or the publication window decided), so the words can be added later (`explained`)."""
    exact = exact_identity(a, b)
    if exact is not None:
        return Comparison(1.0, exact=True, reasons=(exact,)), None
    if a.day is not None and b.day is not None and abs(a.day - b.day) > config.window_days:
        return Comparison(0.0, veto=f"published {abs(a.day - b.day)} days apart"), None
    e = evidence(a, b, weighting)
    score = scorer.probability(e.values)
    return Comparison(round(score, 3), veto=conflict(a, b, e)), e


def explained(a: Features, b: Features, comparison: Comparison,
              e: Evidence | None) -> Comparison:
    """`comparison` (from `assess`, with evidence `e`) with its reasons in words."""
    if e is None:
        return comparison
    return Comparison(comparison.score, veto=comparison.veto, reasons=_reasons_for(a, b, e))


def _reasons_for(a: Features, b: Features, e: Evidence) -> tuple[str, ...]:
    reasons: list[str] = []
    if e.get("title") >= 0.25:
        reasons.append(f"titles share {_percent(e.get('title'))} of their words")
    if e.get("text") >= 0.2:
        reasons.append(f"texts are {_percent(e.get('text'))} alike")
    shared = sorted(a.names & b.names, key=lambda s: (-len(s), s))
    if shared:
        reasons.append("both name " + ", ".join(s.title() for s in shared[:5]))
    places = sorted(a.places & b.places)
    countries = sorted(a.countries & b.countries)
    if countries or places:
        reasons.append("both are about " + ", ".join([p.title() for p in places] + countries))
    kinds = sorted(a.kinds & b.kinds)
    if kinds:
        reasons.append("both are about " + ", ".join(kinds) + " crime")
    agreeing = _agreeing_counts(a.counts, b.counts)
    if agreeing:
        reasons.append("their counts agree (" + ", ".join(agreeing) + ")")
    figures = sorted(a.figures & b.figures, key=lambda s: (-len(s), s))
    if figures:
        reasons.append("both give the figures " + ", ".join(figures[:5]))
    if e.same_operation:
        reasons.append(f"both name operation {e.same_operation.title()}")
    if e.same_event_day is not None:
        reasons.append(f"both give the date {_show_days(e.same_event_day)}")
    if a.advisory != b.advisory:
        reasons.append("one announces the event (an advisory), the other reports it")
    if e.days_apart is not None and e.days_apart > 5:
        reasons.append(f"published {e.days_apart} days apart")
    contributions = scorer.contributions(e.values)
    shown = [f"{name} {value:+.2f}" for name, value in contributions if abs(value) >= 0.05]
    if shown:
        reasons.append("score from: " + ", ".join(shown[:8]))
    return tuple(reasons)


def exact_identity(a: Features, b: Features) -> str | None:
    """Why two items are one and the same report, if they are."""
    if a.guid is not None and a.guid == b.guid:
        return "same guid"
    if a.link is not None and a.link == b.link:
        return "same link"
    substantial = min(a.words_in_text, b.words_in_text) >= _MIN_WORDS_FOR_TEXT_IDENTITY
    same_day = a.day == b.day or a.day is None or b.day is None
    if a.agency == b.agency and a.content_hash == b.content_hash and (substantial or same_day):
        if a.title_key == b.title_key:
            return "a re-post: same agency, title and text"
        if substantial:
            return "the same text under an edited title"
    for short, full in ((a, b), (b, a)):
        if (
            short.truncated
            and len(short.prefix) >= MIN_PREFIX
            and full.prefix.startswith(short.prefix)
            and full.length > short.length - 5
        ):
            return 'a summary cut with "…" that is the start of the full text'
    return None


def conflict(a: Features, b: Features, e: Evidence) -> str | None:
    """A difference that shows two items report different events, in words (a veto)."""
    if a.event_dates and b.event_dates:
        gap = _event_day_gap(a, b)
        if gap > _DATE_SLACK_DAYS or (gap > 0 and a.events & b.events & _ONE_DAY_EVENTS):
            return (f"different event dates ({_show_days(a.event_dates[0])} vs "
                    f"{_show_days(b.event_dates[0])})")
    if a.meeting_day and b.meeting_day and a.meeting_day != b.meeting_day:
        return (f"different days of a meeting ({_meeting_day_words(a.meeting_day)} vs "
                f"{_meeting_day_words(b.meeting_day)})")
    if (a.title_countries and b.title_countries and not a.title_countries & b.countries
            and not b.title_countries & a.countries):
        # Each title's countries are absent from the other's whole lead: not two angles
        # (victims in one country, call centres in another) of one case.
        return (f"titles name different countries ({', '.join(sorted(a.title_countries))} vs "
                f"{', '.join(sorted(b.title_countries))})")
    if (not (a.title_countries and b.title_countries) and a.lead_countries and b.lead_countries
            and not a.lead_countries & b.lead_countries and not a.countries & b.countries):
        return ("opening sentences name different countries ("
                f"{', '.join(sorted(a.lead_countries))} vs {', '.join(sorted(b.lead_countries))})")
    people = _people_conflict(a.title_people, b.title_people, a.names, b.names)
    if people is not None:
        return people
    operation = _operation_conflict(a.operations, b.operations)
    if operation is not None:
        return operation
    if a.crimes and b.crimes and not a.crimes & b.crimes and not a.kinds & b.kinds:
        return (f"titles are about different crimes ({', '.join(sorted(a.crimes))} vs "
                f"{', '.join(sorted(b.crimes))})")
    # Opposed kinds need a kind on each side.
    opposed = vocabulary.opposed_events(a.events, b.events) if a.events and b.events else None
    if opposed is not None:
        return f"different kinds of event ({opposed[0]} vs {opposed[1]})"
    if a.agency != b.agency:
        return None
    text = e.values[_TEXT]
    if _dice(a.title_words, b.title_words) >= 0.8 and text < 0.5 and (
        (e.days_apart is not None and e.days_apart >= 1) or (e.days_apart is None and text < 0.3)
    ):
        return "the same title over a different text on another day (a recurring item)"
    return None


def covers(report: Features, advisory: Features) -> bool:
    """True when the report names the countries and people the advisory's title names."""
    if not advisory.title_countries <= report.countries:
        return False
    surnames = {w for name in report.names for w in name.split()}
    return all(set(name.split()) & surnames for name in advisory.title_people)


def _people_conflict(a: frozenset[str], b: frozenset[str], a_names: frozenset[str],
                     b_names: frozenset[str]) -> str | None:
    """Titles naming different people: each title names someone the other item does not
    name anywhere in its lead, by surname."""
    if not a or not b:
        return None
    a_words = {w for name in a | a_names for w in name.split()}
    b_words = {w for name in b | b_names for w in name.split()}
    only_a = [n for n in sorted(a) if not set(n.split()) & b_words]
    only_b = [n for n in sorted(b) if not set(n.split()) & a_words]
    if only_a and only_b:
        return f"titles name different people ({only_a[0].title()} vs {only_b[0].title()})"
    return None


def operation_names(f: Features) -> set[str]:
    """The names of the operations an item names, phases left off."""
    return {op.split("|")[0] for op in f.operations}


def _operation_conflict(a: frozenset[str], b: frozenset[str]) -> str | None:
    if not a or not b:
        return None
    a_by_name = {op.split("|")[0]: op for op in a}
    b_by_name = {op.split("|")[0]: op for op in b}
    common = a_by_name.keys() & b_by_name.keys()
    for name in sorted(common):
        phase_a, phase_b = a_by_name[name], b_by_name[name]
        if "|" in phase_a and "|" in phase_b and phase_a != phase_b:
            return (f"different phases of operation {name.title()} "
                    f"({phase_a.split('|')[1]} vs {phase_b.split('|')[1]})")
    if not common and len(a_by_name) == 1 and len(b_by_name) == 1:
        return (f"different operations ({next(iter(a_by_name)).title()} vs "
                f"{next(iter(b_by_name)).title()})")
    return None


def _time_apart(a: Features, b: Features, days_apart: int | None) -> int | None:
    """Days between two items' publication, or, when one has no date of publication, between
    the event it dates first and the other's publication (None: nothing to go by)."""
    if days_apart is not None:
        return days_apart
    if a.day is None and b.day is not None and a.event_dates:
        return max(0, b.day - a.event_dates[0][1], a.event_dates[0][0] - b.day)
    if b.day is None and a.day is not None and b.event_dates:
        return max(0, a.day - b.event_dates[0][1], b.event_dates[0][0] - a.day)
    return None


def _same_first_day(a: Features, b: Features) -> tuple[int, int] | None:
    """The first event date both give, when their first (main) event dates agree."""
    if not a.event_dates or not b.event_dates:
        return None
    x, y = a.event_dates[0], b.event_dates[0]
    return x if x[0] <= y[1] and y[0] <= x[1] else None


def _event_day_gap(a: Features, b: Features) -> int:
    """Days between the closest event dates of two items (0: they share one)."""
    return min(max(0, x[0] - y[1], y[0] - x[1]) for x in a.event_dates for y in b.event_dates)


def _count_agreement(a: Sequence[tuple[str, float]],
                     b: Sequence[tuple[str, float]]) -> tuple[float, float]:
    """The shares of the things both count on which they agree, and on which they differ."""
    by_kind_a: dict[str, list[float]] = {}
    by_kind_b: dict[str, list[float]] = {}
    for kind, value in a:
        by_kind_a.setdefault(kind, []).append(value)
    for kind, value in b:
        by_kind_b.setdefault(kind, []).append(value)
    both = by_kind_a.keys() & by_kind_b.keys()
    if not both:
        return 0.0, 0.0
    agreeing = 0.0
    differing = 0
    for kind in both:
        matched = [min(x, y) for x in by_kind_a[kind] for y in by_kind_b[kind]
                   if vocabulary.agree(x, y)]
        if matched:
            # Agreeing on 61 arrests says more than agreeing on 2.
            agreeing += min(1.0, 0.4 + 0.3 * math.log10(max(matched)))
        else:
            differing += 1
    return agreeing / len(both), differing / len(both)


def _agreeing_counts(a: Sequence[tuple[str, float]], b: Sequence[tuple[str, float]]) -> list[str]:
    found: list[str] = []
    for kind, x in a:
        for other_kind, y in b:
            if kind == other_kind and vocabulary.agree(x, y):
                found.append(f"{kind} {x:g}" if x == y else f"{kind} {x:g}/{y:g}")
                break
    return sorted(set(found))[:4]


def _amounts_agree(a: Sequence[tuple[str, float]], b: Sequence[tuple[str, float]]) -> bool:
    return any(kind == other and vocabulary.agree(x, y)
               for kind, x in a for other, y in b)


def _packed_dice(a: bytes, b: bytes) -> float:
    if not a or not b:
        return 0.0
    # `minhash.shared_count`, keeping the first item's set: it is the item being placed,
    # compared with every member of its candidate stories in turn.
    return 2 * len(_hash_set(a).intersection(array("I", b))) / ((len(a) + len(b)) // 4)


@lru_cache(maxsize=256)
def _hash_set(packed: bytes) -> frozenset[int]:
    """The hashes of a `minhash.word_hashes` set, as a set."""
    return frozenset(array("I", packed))


def _dice(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


def _weighted_dice(a: Features, kind: str, a_values: frozenset[str], b_values: frozenset[str],
                   a_total: float, b_total: float, shared_weight: _SharedWeight) -> float:
    """Rarity-weighted Dice of `a_values` and `b_values`, `kind`'s values of `a` and another
    item (their summed weights `a_total` and `b_total`)."""
    if not a_values or not b_values:
        return 0.0
    shared = a_values & b_values
    if not shared:
        return 0.0
    total = a_total + b_total
    return min(1.0, 2 * shared_weight(kind, shared, a) / total) if total else 0.0


def _weighted_containment(a: Features, kind: str, a_values: frozenset[str],
                          b_values: frozenset[str], a_total: float, b_total: float,
                          shared_weight: _SharedWeight) -> float:
    """Shared weight over the smaller item's weight: a short summary and a long report of
    one event share most of the summary's rare words (`a_values`, `b_values`: `kind`'s)."""
    shared = a_values & b_values
    if not shared:
        return 0.0
    smaller = min(a_total, b_total)
    return min(1.0, shared_weight(kind, shared, a) / smaller) if smaller else 0.0


def _percent(value: float) -> str:
    return f"{round(value * 100)}%"


def _meeting_day_words(day: str) -> str:
    return "the last day" if day == "last" else f"day {day}"


@lru_cache(maxsize=4096)
def _show_days(days: tuple[int, int]) -> str:
    # Cached: every veto on dates words them, and a month's name costs a strftime.
    start = _EPOCH + timedelta(days=days[0])
    end = _EPOCH + timedelta(days=days[1])
    if start == end:
        return f"{start.day} {start:%B %Y}"
    return f"{start.day}–{end.day} {end:%B %Y}"
