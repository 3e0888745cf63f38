"""Group items that report the same event into stories (pure: data in, data out).

Evidence is combined, not read off one title ratio:

* exact identity: the same guid or link; the same agency, title and text (a re-post); the
  same text under an edited title; a summary cut with "…" that starts a longer text;
* similarity: title words (boilerplate such as "Media advisory:" removed), the wording of the
  text (MinHash of word shingles and shared lead words), and the people, places, figures and
  operations both name, each weighted by how rare it is among nearby items;
* dates: a shared event date counts for a pair, publication far apart counts against it;
* vetoes: a conflict of event date, meeting day, country, person, operation phase or kind of
  crime, or one title recurring over different texts, keeps two items apart however alike
  their wording.

Clustering is incremental and free of chaining: each new item is compared with the stories
of candidate items found through blocking keys, and joins a story only if it matches one
member, agrees with every other member, and conflicts with none.
"""

from __future__ import annotations

import base64
import bisect
import json
import math
import re
import uuid
import zlib
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from aggregator import entities, minhash
from aggregator.config import DedupConfig
from aggregator.dates import find_dates
from aggregator.gazetteer import fold
from aggregator.model import MatchNote, StoredItem

STORY_NAMESPACE = uuid.UUID("6f1d3c52-4e0b-5a8e-9b7c-2d4f6a8b0c1e")
"""Namespace of story GUIDs: uuid5(namespace, founding item id), stable for a fresh store too."""

_EPOCH = date(1970, 1, 1)
_LEAD_CHARS = 1100
"""How much of a text the features read: the lead carries the story, and a 2 MB body costs
no more than a short one."""
_OPENING_CHARS = 600
_PREFIX_CHARS = 160
_MIN_PREFIX = 80
"""A "…" summary must share at least this many characters with the full text."""
_MIN_WORDS_FOR_TEXT_IDENTITY = 25
_KEY_LIMITS = {"t": 6, "n": 10, "#": 4, "c": 3}
"""At most this many blocking keys of each kind per item (the longest, most specific)."""

_BOILERPLATE_TITLE = re.compile(
    r"^\s*(?:(?:media|press)\s+(?:advisory|release|alert|note)|update|updated|breaking|"
    r"correction|corrected|news|statement|readout)\s*[:\-–—|]\s*",
    re.IGNORECASE,
)
# An advisory announces an event to the press: the title says so ("Media advisory:",
# "Chairman to host ..."), or the text carries the press logistics reports never have.
_ADVISORY_TITLE = re.compile(
    r"\b(?:media|press)\s+(?:advisory|alert)\b|\bto\s+(?:host|meet|visit|hold|attend|travel|"
    r"deliver|address|speak|participate|welcome|receive|chair|open)\b",
    re.IGNORECASE,
)
_ADVISORY_TEXT = re.compile(
    r"\b(?:media|press)\s+(?:advisory|alert|accreditation|coverage|representatives)\b|"
    r"\baccreditation\b|\bRSVP\b|\bwill\s+be\s+(?:streamed|broadcast|webcast)\b|"
    r"\bmedia\s+(?:interested|wishing)\b",
    re.IGNORECASE,
)
# "The Hague, ", "LYON, France – ", "WASHINGTON — ": a place (capitalized words) and a comma
# or dash before the date that opens a text.
_WEEKDAY_NAME = re.compile(r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b", re.IGNORECASE)
_DATELINE_PLACE = re.compile(
    r"^(?!(?:On|From|Since|Between|By|Until|In|At|During|As|After|Before|Following|A|An)\b)"
    r"(?:[A-Z][\w.'’-]*|of|de|the|la|le)(?:\s+(?:[A-Z][\w.'’-]*|of|de|the|la|le)){0,4}"
    r"(?:,\s*[A-Z][\w.'’-]*(?:\s+[A-Z][\w.'’-]*){0,2})?\s*[,–—-]\s*$"
)


@dataclass(frozen=True, slots=True)
class Features:
    """What dedup knows of an item: computed once, stored, compared many times."""

    item_id: str
    agency: str
    day: int | None
    """The item's stated date as days since 1970; None when undated."""
    seen_day: int
    """The day the store first saw it (orders undated items)."""
    title_key: str
    content_hash: str
    guid: str | None
    link: str | None
    prefix: str
    """The start of the folded text, to match a "…" summary with its full text."""
    truncated: bool
    advisory: bool
    length: int
    words_in_text: int
    stated: bool
    has_link: bool
    title_words: frozenset[str]
    lead_words: bytes
    """Content words of the opening as packed hashes (`minhash.word_hashes`)."""
    names: frozenset[str]
    title_people: frozenset[str]
    title_countries: frozenset[str]
    lead_countries: frozenset[str]
    countries: frozenset[str]
    operations: frozenset[str]
    """"name" or "name|phase" for each operation the title or opening names."""
    figures: frozenset[str]
    crimes: frozenset[str]
    """Kinds of crime the title is about."""
    meeting_day: str | None
    event_dates: tuple[tuple[int, int], ...]
    """Event days (first, last) the opening states; datelines and references left out."""
    signature: bytes
    """MinHash of the lead's word shingles (`minhash.signatures`)."""

    def to_json(self) -> str:
        """A compact serialization for the store: values in field order, bytes as base64.
        The item id is left out: the store keeps it beside."""
        values: list[object] = []
        for f in fields(self)[1:]:
            value = getattr(self, f.name)
            if isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, bytes):
                value = base64.b64encode(value).decode()
            values.append(value)
        return json.dumps(values, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, item_id: str) -> Features:
        """The inverse of `to_json`, for the item `item_id`."""
        data = dict(zip((f.name for f in fields(cls)[1:]), json.loads(text), strict=True))
        data["item_id"] = item_id
        for name, value in data.items():
            if name == "event_dates":
                data[name] = tuple(tuple(pair) for pair in value)
            elif name in ("signature", "lead_words"):
                data[name] = base64.b64decode(value)
            elif isinstance(value, list):
                data[name] = frozenset(value)
        return cls(**data)


_EMPTY: frozenset[str] = frozenset()
_SET_FIELDS = tuple(f.name for f in fields(Features) if f.type == "frozenset[str]")


def settled(f: Features, item_id: str) -> Features:
    """The features under their item's id, every empty set the one shared empty set: sets
    that crossed from a worker process are each a new object (216 bytes, even empty), and a
    large run holds a hundred thousand items' features at once."""
    empty: dict[str, Any] = {name: _EMPTY for name in _SET_FIELDS if not getattr(f, name)}
    return replace(f, item_id=item_id, **empty)


# -- features -----------------------------------------------------------------------------


def extract_features(item: StoredItem) -> Features:
    """Analyse one stored item for matching."""
    return extract_many([item])[0]


def extract_many(batch: Sequence[StoredItem]) -> list[Features]:
    """Analyse many items; their MinHash signatures are computed as one batch."""
    leads = [item.text[:_LEAD_CHARS] for item in batch]
    words = [[fold(w) for w in entities.WORD.findall(lead)] for lead in leads]
    signatures = minhash.signatures(words)
    return [
        _features(item, lead, sig, len(lead_words))
        for item, lead, sig, lead_words in zip(batch, leads, signatures, words, strict=True)
    ]


def _features(item: StoredItem, lead: str, signature: bytes, words: int) -> Features:
    title = _BOILERPLATE_TITLE.sub("", item.title)
    opening = _opening(lead)
    first_sentence = re.split(r"(?<=[a-z0-9)][.!?])\s", opening, maxsplit=1)[0]
    title_names, title_countries = entities.names_and_countries(title)
    lead_names, lead_countries = entities.names_and_countries(opening)
    sentence_countries = {c for c, at in lead_countries.items() if at < len(first_sentence)}
    if entities.title_cased(title):
        # "Chairman Hosts Australian Chief Of Defence": every word is capitalized, so only
        # the runs the text also names are names.
        title_names &= lead_names
    reference = item.published or item.first_seen
    return Features(
        item_id=item.item_id,
        agency=item.agency,
        day=_day(item.published) if item.published is not None else None,
        seen_day=_day(item.first_seen),
        title_key=item.title_key,
        content_hash=item.content_hash,
        guid=item.guid,
        link=item.link,
        prefix=_folded_prefix(item.text, truncated=item.truncated),
        truncated=item.truncated,
        advisory=bool(_ADVISORY_TITLE.search(item.title) or _ADVISORY_TEXT.search(lead[:1500])),
        length=len(item.text),
        words_in_text=words,
        stated=item.published is not None,
        has_link=item.link is not None,
        title_words=frozenset(entities.content_words(title)),
        lead_words=minhash.word_hashes(entities.content_words(opening)),
        names=frozenset(title_names | lead_names),
        title_people=frozenset(n for n in title_names if entities.is_person_like(n)),
        title_countries=frozenset(title_countries),
        lead_countries=frozenset(sentence_countries),
        countries=frozenset(title_countries.keys() | lead_countries.keys()),
        operations=frozenset(entities.operations(item.title + "\n" + opening)),
        figures=frozenset(entities.figures(title + "\n" + opening)),
        crimes=frozenset(entities.crime_types(title)),
        meeting_day=entities.meeting_day(title + "\n" + first_sentence),
        event_dates=tuple(_event_days(opening, reference)),
        signature=signature,
    )


def _day(moment: datetime) -> int:
    return (moment.astimezone(UTC).date() - _EPOCH).days


def _opening(lead: str) -> str:
    """The first paragraphs, up to about 700 characters: what the story is about."""
    taken: list[str] = []
    size = 0
    for paragraph in lead.split("\n\n"):
        taken.append(paragraph)
        size += len(paragraph)
        if size >= _OPENING_CHARS:
            break
    return "\n\n".join(taken)


def _folded_prefix(text: str, *, truncated: bool) -> str:
    folded = " ".join(fold(text[: _PREFIX_CHARS * 2]).split())
    if truncated:
        folded = re.sub(r"(?:…|\.\.\.|\[…\]|\(…\))\s*$", "", folded).rstrip()
    return folded[:_PREFIX_CHARS]


def _event_days(opening: str, reference: datetime) -> list[tuple[int, int]]:
    days: list[tuple[int, int]] = []
    for stated in find_dates(opening, reference, infer_year=True):
        if stated.is_reference or _is_dateline(opening, stated.offset):
            continue
        days.append(((stated.start - _EPOCH).days, (stated.end - _EPOCH).days))
    return days[:3]


def _is_dateline(text: str, offset: int) -> bool:
    """A date opening the text: alone, or after a place ("The Hague, 28 November 2024 –")."""
    if text.rfind("\n", 0, offset) != -1:
        return False
    before = text[:offset]
    if not before.strip():
        return True
    return bool(_DATELINE_PLACE.match(before)) and not _WEEKDAY_NAME.search(before)


# -- comparison ---------------------------------------------------------------------------

class Weighting(Protocol):
    """How much a shared title word (`t`), name (`n`) or figure (`#`) counts: rare ones near 1."""

    def weight(self, key: str, around: Features) -> float:
        """The weight of one key (kind letter + value) among the items near `around`."""
        ...

    def total(self, f: Features, kind: str) -> float:
        """The summed weight of all of an item's values of one kind."""
        ...


class Uniform:
    """Every value counts the same, but for two-digit figures (for comparing a lone pair)."""

    def weight(self, key: str, around: Features) -> float:
        return _specificity(key)

    def total(self, f: Features, kind: str) -> float:
        return sum(self.weight(kind + value, f) for value in _values(f, kind))


UNIFORM = Uniform()


def _values(f: Features, kind: str) -> frozenset[str]:
    return f.title_words if kind == "t" else f.names if kind == "n" else f.figures


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
        """True when the pair may sit in one story (no conflict, enough in common)."""
        return self.exact or (self.veto is None and self.score >= config.agree_threshold)


@dataclass(frozen=True, slots=True)
class Evidence:
    """The similarity signals of one pair, each between 0 and 1."""

    title: float
    text: float
    names: float
    countries: float
    figures: float
    same_event_day: tuple[int, int] | None
    same_operation: str | None
    days_apart: int | None


def evidence(a: Features, b: Features, weighting: Weighting = UNIFORM) -> Evidence:
    """Measure what two items have in common."""
    return Evidence(
        title=_weighted_dice(a, b, "t", weighting),
        text=max(minhash.similarity(a.signature, b.signature), _packed_dice(a.lead_words,
                                                                              b.lead_words)),
        names=_weighted_dice(a, b, "n", weighting),
        countries=_dice(a.countries, b.countries),
        figures=_weighted_dice(a, b, "#", weighting),
        same_event_day=_same_first_day(a, b),
        same_operation=next(iter(sorted(_operation_names(a) & _operation_names(b))), None),
        days_apart=abs(a.day - b.day) if a.day is not None and b.day is not None else None,
    )


def score_of(e: Evidence, a: Features, b: Features) -> float:
    """Combine the evidence of a pair into one score between 0 and 1."""
    # Weights fitted for the widest gap between true pairs and unvetoed near misses on the
    # labelled set (benchmarks/dedup_quality.py); they need not sum to one (score is capped).
    score = 0.30 * e.title + 0.30 * e.text + 0.20 * e.names + 0.10 * e.countries \
        + 0.25 * e.figures
    if e.same_event_day is not None:
        score += 0.15
    if e.same_operation is not None:
        score += 0.15
    if a.advisory != b.advisory and a.agency == b.agency and e.same_event_day and e.names > 0:
        # An advisory announces what the later report tells: few words in common, but the
        # same people on the same day, and whoever the advisory's title names is in the report.
        advisory, report = (a, b) if a.advisory else (b, a)
        if _covers(report, advisory):
            score += 0.2
    if e.days_apart is not None and e.days_apart > 5:
        # Reports of one event come out within days of each other; a week apart is suspect.
        score *= max(0.5, 1.0 - 0.05 * (e.days_apart - 5))
    return min(1.0, score)


def compare(
    a: Features, b: Features, config: DedupConfig, weighting: Weighting = UNIFORM,
    *, explain: bool = True,
) -> Comparison:
    """How likely `a` and `b` report the same event, and (with `explain`) why, in words."""
    exact = _exact_identity(a, b)
    if exact is not None:
        return Comparison(1.0, exact=True, reasons=(exact,))
    if a.day is not None and b.day is not None and abs(a.day - b.day) > config.window_days:
        return Comparison(0.0, veto=f"published {abs(a.day - b.day)} days apart")
    e = evidence(a, b, weighting)
    score = score_of(e, a, b)
    reasons = _reasons_for(a, b, e) if explain else ()
    return Comparison(round(score, 3), veto=_conflict(a, b, e), reasons=reasons)


def _reasons_for(a: Features, b: Features, e: Evidence) -> tuple[str, ...]:
    reasons: list[str] = []
    if e.title >= 0.25:
        reasons.append(f"titles share {_percent(e.title)} of their words")
    if e.text >= 0.2:
        reasons.append(f"texts are {_percent(e.text)} alike")
    shared = sorted(a.names & b.names, key=lambda s: (-len(s), s))
    if shared:
        reasons.append("both name " + ", ".join(s.title() for s in shared[:5]))
    countries = sorted(a.countries & b.countries)
    if countries:
        reasons.append("both are about " + ", ".join(countries))
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
    return tuple(reasons)


def _exact_identity(a: Features, b: Features) -> str | None:
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
            and len(short.prefix) >= _MIN_PREFIX
            and full.prefix.startswith(short.prefix)
            and full.length > short.length - 5
        ):
            return 'a summary cut with "…" that is the start of the full text'
    return None


def _conflict(a: Features, b: Features, e: Evidence) -> str | None:
    """A difference that shows two items report different events, in words."""
    if a.event_dates and b.event_dates and _shared_event_day(a, b) is None:
        return (f"different event dates ({_show_days(a.event_dates[0])} vs "
                f"{_show_days(b.event_dates[0])})")
    if a.meeting_day and b.meeting_day and a.meeting_day != b.meeting_day:
        return (f"different days of a meeting ({_meeting_day_words(a.meeting_day)} vs "
                f"{_meeting_day_words(b.meeting_day)})")
    if a.title_countries and b.title_countries and not a.title_countries & b.title_countries:
        return (f"titles name different countries ({', '.join(sorted(a.title_countries))} vs "
                f"{', '.join(sorted(b.title_countries))})")
    if (not (a.title_countries and b.title_countries) and a.lead_countries and b.lead_countries
            and not a.lead_countries & b.lead_countries):
        return ("opening sentences name different countries ("
                f"{', '.join(sorted(a.lead_countries))} vs {', '.join(sorted(b.lead_countries))})")
    people = _people_conflict(a.title_people, b.title_people)
    if people is not None:
        return people
    operation = _operation_conflict(a.operations, b.operations)
    if operation is not None:
        return operation
    if a.crimes and b.crimes and not a.crimes & b.crimes:
        return (f"titles are about different crimes ({', '.join(sorted(a.crimes))} vs "
                f"{', '.join(sorted(b.crimes))})")
    if a.agency == b.agency and _dice(a.title_words, b.title_words) >= 0.8 and e.text < 0.5 and (
        (e.days_apart is not None and e.days_apart >= 1) or (e.days_apart is None and e.text < 0.3)
    ):
        return "the same title over a different text on another day (a recurring item)"
    return None


def _covers(report: Features, advisory: Features) -> bool:
    """True when the report names the countries and people the advisory's title names."""
    if not advisory.title_countries <= report.countries:
        return False
    surnames = {w for name in report.names for w in name.split()}
    return all(set(name.split()) & surnames for name in advisory.title_people)


def _people_conflict(a: frozenset[str], b: frozenset[str]) -> str | None:
    """Titles naming different people: each names someone the other does not, by surname."""
    if not a or not b:
        return None
    a_words = {w for name in a for w in name.split()}
    b_words = {w for name in b for w in name.split()}
    only_a = [n for n in sorted(a) if not set(n.split()) & b_words]
    only_b = [n for n in sorted(b) if not set(n.split()) & a_words]
    if only_a and only_b:
        return f"titles name different people ({only_a[0].title()} vs {only_b[0].title()})"
    return None


def _operation_names(f: Features) -> set[str]:
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


def _same_first_day(a: Features, b: Features) -> tuple[int, int] | None:
    """The first event date both give, when their first (main) event dates agree."""
    if not a.event_dates or not b.event_dates:
        return None
    x, y = a.event_dates[0], b.event_dates[0]
    return x if x[0] <= y[1] and y[0] <= x[1] else None


def _shared_event_day(a: Features, b: Features) -> tuple[int, int] | None:
    for x in a.event_dates:
        for y in b.event_dates:
            if x[0] <= y[1] and y[0] <= x[1]:
                return x
    return None


def _packed_dice(a: bytes, b: bytes) -> float:
    if not a or not b:
        return 0.0
    return 2 * minhash.shared_count(a, b) / ((len(a) + len(b)) // 4)


def _dice(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


def _weighted_dice(a: Features, b: Features, kind: str, weighting: Weighting) -> float:
    a_values, b_values = _values(a, kind), _values(b, kind)
    if not a_values or not b_values:
        return 0.0
    shared = a_values & b_values
    if not shared:
        return 0.0
    total = weighting.total(a, kind) + weighting.total(b, kind)
    weight = weighting.weight
    return min(1.0, 2 * sum(weight(kind + v, a) for v in shared) / total) if total else 0.0


def _specificity(key: str) -> float:
    """Two-digit figures (10 arrests) coincide more often than 1,150 or 5.8 or a name."""
    if not key.startswith("#"):
        return 1.0
    digits = key[1:].replace(".", "")
    return 1.0 if len(digits) >= 3 or "." in key else 0.4


def _percent(value: float) -> str:
    return f"{round(value * 100)}%"


def _meeting_day_words(day: str) -> str:
    return "the last day" if day == "last" else f"day {day}"


def _show_days(days: tuple[int, int]) -> str:
    start = _EPOCH + timedelta(days=days[0])
    end = _EPOCH + timedelta(days=days[1])
    if start == end:
        return f"{start.day} {start:%B %Y}"
    return f"{start.day}–{end.day} {end:%B %Y}"


# -- blocking -----------------------------------------------------------------------------


def blocking_keys(f: Features) -> tuple[str, ...]:
    """The keys an item is indexed under; items sharing keys become candidates.

    Strong keys (one shared is enough) start with `!`: the text's hash and its opening
    words (which find a "…" summary's full text), the link and the guid.
    """
    keys: set[str] = {f"!h{f.content_hash[:16]}"}
    if len(f.prefix) >= _MIN_PREFIX:
        keys.add("!p" + _short_hash(f.prefix[:_MIN_PREFIX]))
    if f.link:
        keys.add("!l" + _short_hash(f.link))
    if f.guid:
        keys.add("!g" + _short_hash(f.guid))
    keys.update(_specific("t", f.title_words))
    keys.update(_specific("n", f.names))
    keys.update(_specific("#", f.figures))
    keys.update("o" + name[:60] for name in _operation_names(f))
    keys.update(_specific("c", f.countries))
    keys.update(f"d{first}" for first, _ in f.event_dates[:1])
    return tuple(sorted(keys))


def _specific(kind: str, values: Iterable[str]) -> list[str]:
    """The longest (most specific) values first, as many as the kind allows."""
    ranked = sorted(values, key=lambda v: (-len(v), v))[: _KEY_LIMITS[kind]]
    return [kind + v[:60] for v in ranked]


def _short_hash(text: str) -> str:
    return format(zlib.crc32(text.encode()), "08x")


def is_strong_key(key: str) -> bool:
    """True for keys where one shared key makes a candidate."""
    return key.startswith("!")


def rarity(frequency: int) -> float:
    """A key's weight from how many indexed items have it: 1 for one, falling slowly."""
    return 1.0 if frequency <= 1 else 1.0 / (1.0 + math.log2(frequency))


# -- clustering ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clustering:
    """The outcome: every touched story's members (canonical first), and the notes."""

    members: dict[str, tuple[str, ...]]
    notes: tuple[MatchNote, ...] = ()
    keys: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """The blocking keys of the items placed, computed on the way (for the store's index)."""


_COMMON = 10**9


@dataclass(slots=True)
class _Index:
    """In-memory blocking index (key -> the items holding it, sorted by day) that also
    weighs keys by how many items near an item hold them."""

    window: float
    key_cap: int
    common: frozenset[str]
    stored_counts: Mapping[str, int]
    """How many stored items hold each key (the store's view, from an incremental run)."""
    dated: dict[str, int | array[int]] = field(default_factory=dict)
    """key -> its dated postings, each `_pack(day, slot)`, in order: one int while a key has
    one posting (most names and hashes do), an array from the second on."""
    undated: dict[str, int | list[int]] = field(default_factory=dict)
    features: list[Features] = field(default_factory=list)
    story_of: list[str] = field(default_factory=list)
    totals: dict[tuple[str, str], float] = field(default_factory=dict)
    around: Features | None = None
    """The item being placed: weights are computed for its neighbourhood, and cached."""
    weights: dict[str, float] = field(default_factory=dict)

    def add(self, f: Features, story_id: str, keys: Sequence[str] | None = None) -> None:
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

    def focus(self, f: Features) -> None:
        """Weigh keys around `f` from now on."""
        if self.around is not f:
            self.around = f
            self.weights = {}

    # Weighting: the rarity of a key among the items near the item being placed.
    def weight(self, key: str, around: Features) -> float:
        if around is not self.around:
            return rarity(self.frequency(key, around)) * _specificity(key)
        cached = self.weights.get(key)
        if cached is None:
            cached = self.weights[key] = rarity(self.frequency(key, around)) * _specificity(key)
        return cached

    def total(self, f: Features, kind: str) -> float:
        cached = self.totals.get((f.item_id, kind))
        if cached is None:
            # Fixed when first asked: a slightly stale total is cheap and close enough.
            cached = sum(self.weight(kind + value, f) for value in _values(f, kind))
            self.totals[(f.item_id, kind)] = cached
        return cached

    def _near(self, key: str, f: Features) -> tuple[Sequence[int], int, int]:
        """`key`'s dated postings and the slice of them within the window of `f` (all, if
        `f` is undated)."""
        held = self.dated.get(key)
        if held is None:
            return (), 0, 0
        postings: Sequence[int] = (held,) if isinstance(held, int) else held
        if f.day is None:
            return postings, 0, len(postings)
        lo = bisect.bisect_left(postings, _pack(math.floor(f.day - self.window), 0))
        hi = bisect.bisect_right(postings, _pack(math.floor(f.day + self.window), _SLOT_MASK))
        return postings, lo, hi

    def _undated(self, key: str) -> Sequence[int]:
        held = self.undated.get(key, ())
        return (held,) if isinstance(held, int) else held

    def frequency(self, key: str, f: Features) -> int:
        """How many indexed items near `f` hold `key` (or the store's count, if larger)."""
        if key in self.common:
            return _COMMON
        _, lo, hi = self._near(key, f)
        count = hi - lo + len(self._undated(key))
        stored = self.stored_counts.get(key, 0)
        return count if count > stored else stored

    def candidates(self, f: Features, keys: Sequence[str], limit: int) -> list[int]:
        """The items sharing the most (rarity-weighted) keys with `f`."""
        scores: dict[int, float] = {}
        for key in keys:
            if key in self.common:
                continue
            postings, lo, hi = self._near(key, f)
            undated = self._undated(key)
            count = hi - lo + len(undated)
            if count == 0 or count > self.key_cap:
                continue
            weight = 2.0 if is_strong_key(key) else rarity(count) * _specificity(key)
            for posting in postings[lo:hi]:
                slot = posting & _SLOT_MASK
                scores[slot] = scores.get(slot, 0.0) + weight
            for slot in undated:
                scores[slot] = scores.get(slot, 0.0) + weight
        ranked = sorted((c for c in scores.items() if c[1] >= _MIN_CANDIDATE_OVERLAP),
                        key=lambda c: (-c[1], c[0]))
        return [slot for slot, _ in ranked[:limit]]


_SLOT_MASK = (1 << 32) - 1
_DAY_OFFSET = 1 << 20
"""Days since 1970 shifted positive, so packed postings sort by day (dates from 1900 on)."""


def _pack(day: int, slot: int) -> int:
    """A posting as one integer: the day in the high bits, the item's slot in the low."""
    return (day + _DAY_OFFSET) << 32 | slot


_MIN_CANDIDATE_OVERLAP = 1.0
"""Weighted keys a candidate must share: one rare name, or several commoner words."""


def stored_candidates(
    new: Sequence[Features], holders: Mapping[str, Iterable[str]], config: DedupConfig
) -> set[str]:
    """The stored items worth comparing with new ones, chosen as the in-memory index
    chooses: the best `candidate_limit` per new item by rarity-weighted shared keys.

    `holders` maps each key (under the cap) to the stored items that hold it.
    """
    chosen: set[str] = set()
    for f in new:
        scores: dict[str, float] = {}
        for key in blocking_keys(f):
            items = holders.get(key)
            if not items:
                continue
            ids = list(items)
            weight = 2.0 if is_strong_key(key) else rarity(len(ids)) * _specificity(key)
            for item_id in ids:
                scores[item_id] = scores.get(item_id, 0.0) + weight
        ranked = sorted((s for s in scores.items() if s[1] >= _MIN_CANDIDATE_OVERLAP),
                        key=lambda s: (-s[1], s[0]))
        chosen.update(item_id for item_id, _ in ranked[: config.candidate_limit])
    return chosen


def cluster(
    new: Sequence[Features],
    known: Sequence[Features],
    stories: Mapping[str, Sequence[str]],
    config: DedupConfig,
    *,
    common_keys: Iterable[str] = (),
    stored_counts: Mapping[str, int] | None = None,
) -> Clustering:
    """Assign `new` items to the stories of `known` items, or to new stories.

    `stories` maps each story id to its members among `known`. From an incremental run,
    `stored_counts` says how many stored items near the new ones hold each of their keys and
    `common_keys` which keys the store found too frequent to use. Returns the whole
    membership, canonical first, of every story that gained a member.
    """
    index = _Index(window=config.window_days, key_cap=config.key_cap,
                   common=frozenset(common_keys), stored_counts=stored_counts or {})
    by_id: dict[str, Features] = {f.item_id: f for f in known}
    members: dict[str, list[str]] = {}
    story_of_item: dict[str, str] = {}
    for story_id, ids in stories.items():
        members[story_id] = [i for i in ids if i in by_id]
        for item_id in ids:
            story_of_item[item_id] = story_id
    for f in sorted(known, key=_processing_order):
        if f.item_id in story_of_item:
            index.add(f, story_of_item[f.item_id])
    touched: set[str] = set()
    notes: list[MatchNote] = []
    placed_keys: dict[str, Sequence[str]] = {}
    for f in sorted(new, key=_processing_order):
        if f.item_id in story_of_item:
            continue
        by_id[f.item_id] = f
        keys = placed_keys[f.item_id] = blocking_keys(f)
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


def _processing_order(f: Features) -> tuple[int, int, str]:
    # Dated items first, in date order; undated ones after, in the order first seen.
    return (0, f.day, f.item_id) if f.day is not None else (1, f.seen_day, f.item_id)


def _place(
    f: Features,
    keys: Sequence[str],
    index: _Index,
    members: Mapping[str, Sequence[str]],
    by_id: Mapping[str, Features],
    config: DedupConfig,
) -> tuple[str | None, list[MatchNote]]:
    """The story `f` joins (None: a new one) and the notes that explain the decision."""
    index.focus(f)
    candidate_stories = list(dict.fromkeys(
        index.story_of[slot] for slot in index.candidates(f, keys, config.candidate_limit)
    ))
    best: tuple[float, str, str, Comparison] | None = None
    near_misses: list[tuple[float, str, Comparison]] = []
    for story_id in candidate_stories:
        # Words only for the pairs that become notes: most comparisons need just a score.
        comparisons = [(m, compare(f, by_id[m], config, index, explain=False))
                       for m in members[story_id]]
        if not comparisons:
            continue
        top_member, top = max(comparisons, key=lambda mc: (mc[1].exact, mc[1].score))
        joins = top.merges(config) and (
            top.exact or all(c.agrees(config) for _, c in comparisons)
        )
        if joins:
            rank = 2.0 if top.exact else top.score
            if best is None or rank > best[0]:
                best = (rank, story_id, top_member, top)
            continue
        if top.score < config.near_miss_threshold * 0.6:
            continue
        top = compare(f, by_id[top_member], config, index)
        near_miss = _near_miss(top, comparisons, config)
        if near_miss is not None:
            near_misses.append((top.score, top_member, near_miss))
    notes = [
        MatchNote(f.item_id, member, score, False, c.reasons)
        for score, member, c in sorted(near_misses, key=lambda n: -n[0])[:3]
    ]
    if best is None:
        return None, notes
    _, story_id, member, _ = best
    comparison = compare(f, by_id[member], config, index)
    notes.insert(0, MatchNote(f.item_id, member, comparison.score, True, comparison.reasons))
    return story_id, notes


def _near_miss(
    top: Comparison, comparisons: Sequence[tuple[str, Comparison]], config: DedupConfig
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
        odd = next((c for _, c in comparisons if not c.agrees(config)), None)
        why = odd.veto if odd is not None and odd.veto else "it does not agree with every item"
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


def story_id_for(founding_item_id: str) -> str:
    """The GUID of a story founded by an item: stable, and unique because item ids are."""
    return str(uuid.uuid5(STORY_NAMESPACE, founding_item_id))


def index_rows(
    features: Iterable[Features], known_keys: Mapping[str, Sequence[str]] | None = None
) -> Iterator[tuple[str, str, int | None]]:
    """The blocking index rows (key, item id, day) of items, as the store keeps them
    (`known_keys`: keys already computed, by item id)."""
    known = known_keys or {}
    for f in features:
        keys = known.get(f.item_id)
        for key in keys if keys is not None else blocking_keys(f):
            yield key, f.item_id, f.day

