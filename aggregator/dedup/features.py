"""What dedup reads from one item, once: the evidence its comparisons use (pure).

Everything comes from the title and the lead (the opening paragraphs), not the title alone,
so two reports of one event in different words still share their places, people, figures,
kinds of crime and dates.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime
from typing import Any

from aggregator import entities, minhash
from aggregator.dates import find_dates
from aggregator.dedup import rarity, vocabulary
from aggregator.gazetteer import caseless, fold
from aggregator.model import StoredItem

FEATURES_VERSION = 8
"""Bumped whenever the features change: stored features of another version are read again
from their items."""

_EPOCH = date(1970, 1, 1)
_LEAD_CHARS = 1100
"""How much of a text the features read: the lead carries the story, and a 2 MB body costs
no more than a short one."""
_OPENING_CHARS = 600
_PREFIX_CHARS = 160
MIN_PREFIX = 80
_PERSON_RARITY = 0.4
"""A person's name has a word at least this rare in English (`rarity.language`)."""
"""A "…" summary must share at least this many characters with the full text."""

_BOILERPLATE_TITLE = re.compile(
    r"^\s*(?:(?:media|press)\s+(?:advisory|release|alert|note)|update|updated|breaking|"
    r"correction|corrected|news|statement|readout)\s*[:\-–—|]\s*",
    re.IGNORECASE,
)
# An advisory announces an event to the press: the title says so ("Media advisory:",
# "Chairman to host ..."), or the text carries the press logistics reports never have. Both
# are read in a `caseless` text (case-sensitive matching is the cheaper scan).
_ADVISORY_TITLE = re.compile(
    r"\b(?:media|press)\s+(?:advisory|alert)\b|\bto\s+(?:host|meet|visit|hold|attend|travel|"
    r"deliver|address|speak|participate|welcome|receive|chair|open|announce|present|brief|"
    r"launch|unveil|sign)\b",
)
_ADVISORY_TEXT = re.compile(
    r"\b(?:media|press)\s+(?:advisory|alert|accreditation|coverage|representatives)\b|"
    r"\baccreditation\b|\brsvp\b|\bwill\s+be\s+(?:streamed|broadcast|webcast)\b|"
    r"\bmedia\s+(?:interested|wishing)\b|\bjournalists\s+(?:wishing|interested)\b",
)
_ADVISORY_TEXT_WORDS = ("advisory", "alert", "accreditation", "coverage", "representatives",
                        "rsvp", "streamed", "broadcast", "webcast", "interested", "wishing")
"""One of them (lower case) is in every match of `_ADVISORY_TEXT`: what follows "media" or
"press" or ends the phrase."""
_WEEKDAY_NAME = re.compile(r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b", re.IGNORECASE)
# "The Hague, ", "LYON, France – ", "WASHINGTON — ": a place (capitalized words) and a comma
# or dash before the date that opens a text.
_DATELINE_PLACE = re.compile(
    r"^(?!(?:On|From|Since|Between|By|Until|In|At|During|As|After|Before|Following|A|An)\b)"
    r"(?:[A-Z][\w.'’-]*|of|de|the|la|le)(?:\s+(?:[A-Z][\w.'’-]*|of|de|the|la|le)){0,4}"
    r"(?:,\s*[A-Z][\w.'’-]*(?:\s+[A-Z][\w.'’-]*){0,2})?\s*[,–—-]\s*$"
)
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)][.!?])\s")
# "LYON, France –", "WASHINGTON —", "The Hague, 21 November 2025 -": where the agency wrote
# from, not what the story is about, so its places are left out of the story's places.
_DATELINE = re.compile(
    r"^\s*(?:[A-Z][\w.'’-]*(?:\s+(?:[A-Z][\w.'’-]*|of|de|the|la|le)){0,3})"
    r"(?:,\s*[A-Z][\w.'’-]*(?:\s+[A-Z][\w.'’-]*){0,2})?"
    r"(?:,?\s*\(?\d{1,2}\s+[A-Z][a-z]+\s+\d{4}\)?|,?\s*[A-Z][a-z]+\.?\s+\d{1,2},?\s+\d{4})?"
    r"\s*[–—-]{1,2}\s+"
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
    terms: frozenset[str]
    """Content words of the title and the opening, for rarity-weighted overlap."""
    names: frozenset[str]
    title_people: frozenset[str]
    title_countries: frozenset[str]
    lead_countries: frozenset[str]
    countries: frozenset[str]
    """Countries of the title and opening, named or implied by a city."""
    places: frozenset[str]
    """Cities and regions of the title and opening."""
    organisations: frozenset[str]
    """Agencies and bodies the title and opening name."""
    operations: frozenset[str]
    """"name" or "name|phase" for each operation the title or opening names."""
    figures: frozenset[str]
    crimes: frozenset[str]
    """Kinds of crime the title is about (a veto's evidence)."""
    kinds: frozenset[str]
    """Kinds of crime the title and opening are about (the vocabulary's synonyms)."""
    events: frozenset[str]
    """Kinds of event the title and first sentence tell."""
    counts: tuple[tuple[str, float], ...]
    """What the opening counts: ("arrests", 18.0), ..."""
    amounts: tuple[tuple[str, float], ...]
    """Money and masses the opening states: ("money", 3.2e6), ("kg", 450.0)."""
    meeting_day: str | None
    event_dates: tuple[tuple[int, int], ...]
    """Event days (first, last) the opening states; datelines and references left out."""
    signature: bytes
    """MinHash of the lead's word shingles (`minhash.signatures`)."""

    def to_json(self) -> str:
        """A compact serialization for the store: the version, then values in field order,
        bytes as base64. The item id is left out: the store keeps it beside."""
        values: list[object] = [FEATURES_VERSION]
        for f in fields(self)[1:]:
            value = getattr(self, f.name)
            if isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, bytes):
                value = base64.b64encode(value).decode()
            values.append(value)
        return json.dumps(values, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, item_id: str) -> Features | None:
        """The inverse of `to_json`, for the item `item_id`; None for features of another
        version (to be computed again)."""
        values = json.loads(text)
        names = [f.name for f in fields(cls)[1:]]
        if not values or values[0] != FEATURES_VERSION or len(values) != len(names) + 1:
            return None
        data: dict[str, Any] = dict(zip(names, values[1:], strict=True))
        data["item_id"] = item_id
        for name, value in data.items():
            if name in ("event_dates", "counts", "amounts"):
                data[name] = tuple(tuple(pair) for pair in value)
            elif name in ("signature", "lead_words"):
                data[name] = base64.b64decode(value)
            elif isinstance(value, list):
                data[name] = frozenset(map(sys.intern, value)) if value else _EMPTY
        data["agency"] = sys.intern(data["agency"])
        return cls(**data)


_EMPTY: frozenset[str] = frozenset()
_SET_FIELDS = tuple(f.name for f in fields(Features) if f.type == "frozenset[str]")


def settled(f: Features, item_id: str) -> Features:
    """The features under their item's id, every empty set the one shared empty set and
    every word one shared string: sets that crossed from a worker process are each a new
    object (216 bytes, even empty) of new strings (a word 50 bytes, in as many copies as
    items use it), and a large run holds a hundred thousand items' features at once."""
    compact: dict[str, Any] = {name: frozenset(map(sys.intern, values)) if values else _EMPTY
                               for name in _SET_FIELDS for values in (getattr(f, name),)}
    return replace(f, item_id=item_id, agency=sys.intern(f.agency), **compact)


def extract_features(item: StoredItem) -> Features:
    """Analyse one stored item for matching."""
    return extract_many([item])[0]


def extract_many(batch: Sequence[StoredItem]) -> list[Features]:
    """Analyse many items; their MinHash signatures are computed as one batch."""
    leads = [item.text[:_LEAD_CHARS] for item in batch]
    readings = [_Lead.of(lead) for lead in leads]
    words = [list(map(fold, reading.tokens)) for reading in readings]
    signatures = minhash.signatures(words)
    return [
        _features(item, lead, reading, sig, len(lead_words))
        for item, lead, reading, sig, lead_words
        in zip(batch, leads, readings, signatures, words, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class _Lead:
    """A lead's opening (its first paragraphs, the dateline left out) and the lead's words,
    read once: the opening's words are the middle of the lead's."""

    opening: str
    opening_tokens: list[str]
    tokens: list[str]

    @classmethod
    def of(cls, lead: str) -> _Lead:
        opened = _opening(lead)
        dateline = _DATELINE.match(opened)
        skipped = dateline.end() if dateline else 0
        opening = opened[skipped:]
        words = entities.WORD.findall(opening)
        # No word spans either cut: the dateline ends with spaces, the opening with a
        # paragraph break or the lead itself.
        tokens = (entities.WORD.findall(lead, 0, skipped) + words
                  + entities.WORD.findall(lead, len(opened)))
        return cls(opening, words, tokens)


def _features(item: StoredItem, lead: str, reading: _Lead, signature: bytes,
              words: int) -> Features:
    title = _BOILERPLATE_TITLE.sub("", item.title)
    opening = reading.opening
    first_sentence = _SENTENCE_END.split(opening, maxsplit=1)[0]
    title_names, title_countries = entities.names_and_countries(title)
    lead_names, lead_countries = entities.names_and_countries(opening)
    sentence_countries = {c for c, at in lead_countries.items() if at < len(first_sentence)}
    title_tokens = entities.WORD.findall(title)
    if entities.title_cased_tokens(title_tokens):
        # "Chairman Hosts Australian Chief Of Defence": every word is capitalized, so only
        # the runs the text also names are names.
        title_names &= lead_names
    title_and_opening = title + "\n" + opening
    # Each text's words are read once (no word spans the line break that joins two texts).
    opening_tokens = reading.opening_tokens
    title_content = entities.content_words_of(title_tokens)
    opening_content = entities.content_words_of(opening_tokens)
    title_read = vocabulary.words_of_tokens(title_tokens)
    read = title_read + vocabulary.words_of_tokens(opening_tokens)
    places = vocabulary.places(read)
    reference = item.published or item.first_seen
    return Features(
        item_id=item.item_id,
        agency=item.agency,
        day=day_number(item.published) if item.published is not None else None,
        seen_day=day_number(item.first_seen),
        title_key=item.title_key,
        content_hash=item.content_hash,
        guid=item.guid,
        link=item.link,
        prefix=_folded_prefix(item.text, truncated=item.truncated),
        truncated=item.truncated,
        advisory=bool(_ADVISORY_TITLE.search(caseless(item.title))
                      or _advisory_text(lead[:1500])),
        length=len(item.text),
        words_in_text=words,
        stated=item.published is not None,
        has_link=item.link is not None,
        title_words=frozenset(title_content),
        lead_words=minhash.word_hashes(opening_content),
        terms=frozenset(title_content + opening_content),
        names=frozenset(title_names | lead_names),
        title_people=frozenset(n for n in title_names if _is_person(n)),
        title_countries=frozenset(title_countries),
        lead_countries=frozenset(sentence_countries),
        countries=frozenset(title_countries.keys() | lead_countries.keys()
                            | {code for code in places.values() if code != "-"}),
        places=frozenset(places),
        organisations=frozenset(vocabulary.organisations(read)),
        operations=frozenset(entities.operations(item.title + "\n" + opening)),
        figures=frozenset(entities.figures(title_and_opening)),
        crimes=frozenset(entities.crime_types(title)),
        kinds=frozenset(vocabulary.crime_kinds(read)),
        events=frozenset(vocabulary.event_kinds(title_read + vocabulary.words_of(
            first_sentence))),
        counts=tuple(sorted(vocabulary.counts(title_and_opening))),
        amounts=tuple(sorted(vocabulary.amounts(title_and_opening))),
        meeting_day=entities.meeting_day(title + "\n" + first_sentence),
        event_dates=tuple(_event_days(opening, reference)),
        signature=signature,
    )


def _advisory_text(text: str) -> bool:
    lowered = caseless(text)
    return (any(word in lowered for word in _ADVISORY_TEXT_WORDS)
            and _ADVISORY_TEXT.search(lowered) is not None)


def _is_person(name: str) -> bool:
    """A title's name that is probably a person: person-like words (not an organisation),
    not an operation's name, and at least one word that is not common English ("Red Notice"
    and "Most Wanted" are notices and lists; "Milley", "Stock" after "Jurgen" are people)."""
    if not entities.is_person_like(name) or name.startswith("operation "):
        return False
    return max(rarity.language(word) for word in name.split()) >= _PERSON_RARITY


def day_number(moment: datetime) -> int:
    """A moment's UTC calendar day as days since 1970."""
    return (moment.astimezone(UTC).date() - _EPOCH).days


def _opening(lead: str) -> str:
    """The first paragraphs, up to about 700 characters: what the story is about."""
    size = start = 0
    # Paragraph by paragraph, without splitting the rest of the lead.
    while (end := lead.find("\n\n", start)) != -1:
        size += end - start
        if size >= _OPENING_CHARS:
            return lead[:end]
        start = end + 2
    return lead


def _folded_prefix(text: str, *, truncated: bool) -> str:
    start = text[: _PREFIX_CHARS * 2]
    # Not through `fold`'s cache, which is for words: every item's opening is a new text, and
    # a hundred thousand of them would fill it with 300-character strings. ASCII folds to
    # its lower case (no accents to strip, no compatibility forms).
    folded = " ".join((start.lower() if start.isascii() else fold.__wrapped__(start)).split())
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
