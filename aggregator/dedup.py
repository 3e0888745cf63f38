"""Group items that report the same event into stories (pure: data in, data out).

Evidence is combined, not read off one title ratio:

* exact identity: the same guid or link; the same agency, title and text (a re-post);
  a summary cut with "…" that is the start of a longer text;
* similarity: title words (boilerplate such as "Media advisory:" removed), the text's
  wording (MinHash of word shingles, and shared lead words), and shared named entities
  (people, places, operation names, figures);
* agreement of stated event dates;
* vetoes: a conflict of event date, country, person or operation phase keeps two items
  apart however alike their wording.

Clustering is incremental and free of chaining: each new item is compared with candidate
stories found through blocking keys, and joins a story only if it matches one member and
agrees with (and conflicts with none of) all the others.
"""

from __future__ import annotations

import json
import math
import re
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

from aggregator.config import DedupConfig
from aggregator.dates import find_dates
from aggregator.gazetteer import COUNTRY_PHRASES, LONGEST_COUNTRY_PHRASE, fold
from aggregator.model import MatchNote, StoredItem

STORY_NAMESPACE = uuid.UUID("6f1d3c52-4e0b-5a8e-9b7c-2d4f6a8b0c1e")
"""Namespace of story GUIDs: uuid5(namespace, founding item id), stable for a fresh store too."""

_EPOCH = date(1970, 1, 1)
_LEAD_CHARS = 2400
"""How much of a text the features read: the lead carries the story; a 2 MB body costs
no more than a short one."""
_PREFIX_CHARS = 160
_MIN_PREFIX = 80
"""A "…" summary must share at least this many characters with the full text."""
_MINHASH_PERMUTATIONS = 64
_LSH_BANDS = 16
_MIN_WORDS_FOR_TEXT_IDENTITY = 25

_STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself
yourselves said says say new one two three its it's per via s t today yesterday week weeks
year years day days month months time well within without across along among around
""".split())
# Words every item of these agencies uses: they say nothing about which story it is.
_DOMAIN_WORDS = frozenset("""
nato europol eurojust interpol jcs agency agencies secretary general deputy police
operation operations authorities authority law enforcement international national support
supported supporting country countries member members state states european eu union
media advisory press release news statement readout update alliance allied allies
organization organisation office minister ministers ministry chief chiefs staff joint
official officials cooperation meeting meetings meet meets met held hold took take part
together including include includes further public information
""".split())
_BOILERPLATE_TITLE = re.compile(
    r"^\s*(?:(?:media|press)\s+(?:advisory|release|alert|note)|update|updated|breaking|"
    r"correction|corrected|news|statement|readout)\s*[:\-–—|]\s*",
    re.IGNORECASE,
)
_ADVISORY = re.compile(
    r"\b(?:media|press)\s+(?:advisory|alert)\b|\bmedia\s+accreditation\b|"
    r"\bwill\s+(?:meet|hold|host|attend|visit|deliver|give|participate|travel|address|"
    r"chair|open|welcome|receive)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:[ ,]\d{3})+|\d+(?:\.\d+)?)(?![\w])")
_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18",
    "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
    "hundred": "100", "dozen": "12",
}
_OPERATION = re.compile(
    r"\b(?:Operation|Op\.|Project|Operational action|Action)\s+"
    r"(?P<name>[A-Z][\w’'-]+(?:\s+[A-Z][a-z][\w’'-]+)?)"
    r"(?:\s+(?P<phase>[IVXL]{1,6}|\d{1,4})\b)?",
)
_PHASE_WORD = re.compile(
    r"\b(?P<ordinal>first|second|third|fourth|fifth|sixth|1st|2nd|3rd|4th|5th|6th)\s+"
    r"(?:phase|wave|edition|round)\b",
    re.IGNORECASE,
)
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "gen", "lt", "col", "capt", "cmdr", "adm",
                            "maj", "sgt", "st", "no", "prof", "sen", "rep", "gov", "jr", "sr",
                            "vs", "etc", "inc", "ltd", "co", "op"})
_CONNECTORS = frozenset({"de", "da", "del", "van", "von", "der", "den", "al", "bin", "ibn",
                         "el", "la", "le", "di", "du", "dos", "das", "y"})
_ROLE_WORDS = frozenset(fold(w) for w in """
mr mrs ms dr prof gen general lt col colonel capt captain cmdr commander adm admiral maj major
sgt president prime minister ministers secretary deputy chairman chair chief chiefs staff
ambassador director executive king queen prince majesty his her excellency sir lord dame
judge prosecutor spokesperson spokesman spokeswoman navy army air force forces jr sr
the a an of and for in on at to by with from this that these those during after before
on monday tuesday wednesday thursday friday saturday sunday january february march april may
june july august september october november december
""".split())
_ORG_WORDS = frozenset(fold(w) for w in """
agency office police ministry council committee union organization organisation headquarters
hq forces court prosecutor prosecutors service services department directorate bureau
assembly parliament government centre center unit command alliance university academy
college school programme program network group team summit conference forum
""".split())
_AGENCY_WORDS = frozenset(fold(w) for w in """
nato europol eurojust interpol afripol jcs un eu otan frontex
""".split())


@dataclass(frozen=True, slots=True)
class Features:
    """What dedup knows of an item: computed once, stored, compared many times."""

    item_id: str
    agency: str
    day: int | None
    """The item's stated date as days since 1970, None when undated."""
    seen_day: int
    """The day the store first saw it (orders undated items)."""
    title_key: str
    content_hash: str
    guid: str | None
    link: str | None
    prefix: str
    """The start of the folded text, for matching a "…" summary to its full text."""
    truncated: bool
    advisory: bool
    length: int
    words_in_text: int
    stated: bool
    has_link: bool
    title_words: frozenset[str]
    lead_words: frozenset[str]
    names: frozenset[str]
    title_names: frozenset[str]
    title_countries: frozenset[str]
    lead_countries: frozenset[str]
    countries: frozenset[str]
    operations: frozenset[str]
    """"name" or "name|phase" for each operation named in the title or lead."""
    numbers: frozenset[str]
    event_dates: tuple[tuple[int, int], ...]
    """Stated event days (start, end) in the opening, datelines and references left out."""
    signature: tuple[int, ...]
    """MinHash of the text's word 3-shingles."""

    def to_json(self) -> str:
        """A compact serialization for the store."""
        data = {
            name: sorted(value) if isinstance(value, frozenset) else value
            for name, value in ((f, getattr(self, f)) for f in self.__slots__)  # type: ignore[attr-defined]
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Features:
        """The inverse of `to_json`."""
        data = json.loads(text)
        for name, value in data.items():
            if isinstance(value, list):
                if name == "event_dates":
                    data[name] = tuple(tuple(pair) for pair in value)
                elif name == "signature":
                    data[name] = tuple(value)
                else:
                    data[name] = frozenset(value)
        return cls(**data)


# -- feature extraction -----------------------------------------------------------------


def extract_features(item: StoredItem) -> Features:
    """Analyse one stored item for matching (pure; reads only the item)."""
    return extract_many([item])[0]


def extract_many(batch: Sequence[StoredItem]) -> list[Features]:
    """Analyse many items; MinHash signatures are computed for the whole batch at once."""
    leads = [item.text[:_LEAD_CHARS] for item in batch]
    signatures = minhash_signatures([_shingle_words(lead) for lead in leads])
    return [
        _features(item, lead, signature)
        for item, lead, signature in zip(batch, leads, signatures, strict=True)
    ]


def _features(item: StoredItem, lead: str, signature: tuple[int, ...]) -> Features:
    title = _BOILERPLATE_TITLE.sub("", item.title)
    opening = _opening(lead)
    first_sentence = re.split(r"(?<=[.!?])\s", opening, maxsplit=1)[0]
    title_names, title_countries = _entities(title)
    lead_names, lead_countries = _entities(opening)
    if _title_cased(title):
        # "Readout Of Chairman's Phone Call": every word is capitalized, so only the runs
        # the text also names are names.
        title_names &= lead_names
    _, sentence_countries = _entities(first_sentence)
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
        advisory=bool(_ADVISORY.search(item.title) or _ADVISORY.search(opening[:600])),
        length=len(item.text),
        words_in_text=len(_WORD.findall(lead)),
        stated=item.published is not None,
        has_link=item.link is not None,
        title_words=frozenset(_content_words(title)),
        lead_words=frozenset(_content_words(opening)),
        names=frozenset(title_names | lead_names),
        title_names=frozenset(n for n in title_names if _is_person_like(n)),
        title_countries=frozenset(title_countries),
        lead_countries=frozenset(sentence_countries),
        countries=frozenset(title_countries | lead_countries),
        operations=frozenset(_operations(item.title + "\n" + opening)),
        numbers=frozenset(_numbers(title + "\n" + opening)),
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
        if size >= 700:
            break
    return "\n\n".join(taken)


def _folded_prefix(text: str, *, truncated: bool) -> str:
    folded = " ".join(fold(text[: _PREFIX_CHARS * 2]).split())
    if truncated:
        folded = re.sub(r"(?:…|\.\.\.|\[…\]|\(…\))\s*$", "", folded).rstrip()
    return folded[:_PREFIX_CHARS]


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _content_words(text: str) -> list[str]:
    words = []
    for token in _WORD.findall(text):
        word = fold(token).replace("’", "'")
        if word.endswith("'s"):
            word = word[:-2]
        if word in _NUMBER_WORDS:
            word = _NUMBER_WORDS[word]
        if word in _STOPWORDS or word in _DOMAIN_WORDS or len(word) < 2:
            continue
        if word.isdigit() and _YEAR.fullmatch(word):
            continue
        words.append(_stem(word))
    return words


def _shingle_words(lead: str) -> list[str]:
    return [fold(w) for w in _WORD.findall(lead)]


def _title_cased(title: str) -> bool:
    words = [w for w in _WORD.findall(title) if len(w) >= 4]
    return len(words) >= 3 and sum(w[0].isupper() for w in words) > 0.8 * len(words)


def _mostly_upper(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 8 and sum(c.isupper() for c in letters) > 0.6 * len(letters)


def _entities(text: str) -> tuple[set[str], set[str]]:
    """Names (runs of capitalized words, roles dropped) and country codes in `text`.

    A lone capitalized word that opens a sentence ("Drug trafficking ...") counts only if
    the text also capitalizes it elsewhere.
    """
    found: dict[str, bool] = {}
    countries: set[str] = set()
    # An all-caps text capitalizes every word, so its runs say nothing about names; the
    # gazetteer still finds its countries.
    names_reliable = not _mostly_upper(text)
    if not names_reliable:
        text = text.title()
    text = text.replace("U.S.", "US").replace("U.K.", "UK")
    run: list[str] = []
    run_initial = False
    previous_end = 0
    previous_token = ""

    def flush() -> None:
        if run:
            _take_run(run, run_initial, found, countries)
            run.clear()

    for match in _WORD.finditer(text):
        token = match.group()
        gap = text[previous_end : match.start()]
        sentence_start = previous_end == 0 or "\n" in gap or (
            any(mark in gap for mark in ".!?:;") and fold(previous_token) not in _ABBREVIATIONS
        )
        if run and gap.strip() not in ("", "-"):
            flush()
        if token[0].isupper():
            if not run:
                run_initial = sentence_start
            run.append(token)
        elif run and token.lower() in _CONNECTORS:
            run.append(token)
        else:
            flush()
        previous_end = match.end()
        previous_token = token
    flush()
    if not names_reliable:
        return set(), countries
    names = {name for name, confirmed in found.items() if confirmed or " " in name}
    return names, countries


def _take_run(run: list[str], initial: bool, found: dict[str, bool], countries: set[str]) -> None:
    """Split one run of capitalized words into countries and names."""
    words = [fold(token).replace("’", "'") for token in run]
    words = [w[:-2] if w.endswith("'s") else w for w in words]
    index = 0
    pending: list[str] = []
    pending_initial = initial
    while index < len(words):
        for size in range(min(LONGEST_COUNTRY_PHRASE, len(words) - index), 0, -1):
            code = COUNTRY_PHRASES.get(tuple(words[index : index + size]))
            if code is not None:
                countries.add(code)
                _add_name(pending, found, pending_initial)
                pending, pending_initial = [], False
                index += size
                break
        else:
            pending.append(words[index])
            index += 1
    _add_name(pending, found, pending_initial)


def _add_name(words: list[str], found: dict[str, bool], sentence_initial: bool) -> None:
    """Record a name; `found[name]` says whether it was ever seen away from a sentence start."""
    kept = [w for w in words if w not in _ROLE_WORDS and w not in _AGENCY_WORDS]
    while kept and kept[-1] in _CONNECTORS:
        kept.pop()
    while kept and kept[0] in _CONNECTORS:
        kept.pop(0)
    if not kept:
        return
    if len(kept) == 1:
        word = kept[0]
        if (word in _STOPWORDS or word in _DOMAIN_WORDS or word in _ORG_WORDS
                or len(word) < 3 or word.isdigit()):
            return
    name = " ".join(kept)
    confirmed = not (sentence_initial and len(words) == 1)
    found[name] = found.get(name, False) or confirmed


def _is_person_like(name: str) -> bool:
    words = name.split()
    return len(words) >= 2 and not any(w in _ORG_WORDS for w in words)


def _operations(text: str) -> set[str]:
    found: set[str] = set()
    phase_word = _PHASE_WORD.search(text)
    for match in _OPERATION.finditer(text):
        name = fold(match.group("name"))
        phase = match.group("phase")
        if phase is None and phase_word is not None:
            phase = phase_word.group("ordinal")[0]
        found.add(f"{name}|{_phase_value(phase)}" if phase else name)
    return found


_ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50}
_ORDINALS = {"f": 1, "s": 2, "t": 3, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6}


def _phase_value(phase: str) -> str:
    lowered = phase.lower()
    if lowered.isdigit():
        return str(int(lowered))
    if all(ch in _ROMAN for ch in lowered):
        total = 0
        for index, ch in enumerate(lowered):
            value = _ROMAN[ch]
            nxt = _ROMAN[lowered[index + 1]] if index + 1 < len(lowered) else 0
            total += -value if value < nxt else value
        return str(total)
    return str(_ORDINALS.get(lowered[0], lowered))


def _numbers(text: str) -> set[str]:
    found: set[str] = set()
    for match in _NUMBER.finditer(text):
        value = match.group(1).replace(",", "").replace(" ", "")
        if _YEAR.fullmatch(value) or len(value.replace(".", "")) < 2:
            continue
        found.add(value)
    for token in _WORD.findall(text.lower()):
        if token in _NUMBER_WORDS and int(_NUMBER_WORDS[token]) >= 10:
            found.add(_NUMBER_WORDS[token])
    return found


def _event_days(opening: str, reference: datetime) -> list[tuple[int, int]]:
    days: list[tuple[int, int]] = []
    for stated in find_dates(opening, reference):
        if stated.is_reference:
            continue
        if _is_dateline(opening, stated.offset):
            continue
        days.append(((stated.start - _EPOCH).days, (stated.end - _EPOCH).days))
    return days[:3]


def _is_dateline(text: str, offset: int) -> bool:
    """A date that opens the text (alone on its line, or after a place name and a comma)."""
    line_start = text.rfind("\n", 0, offset) + 1
    if line_start != 0 or offset > 60:
        return False
    before = text[:offset]
    line_end = text.find("\n", offset)
    line = text[: line_end if line_end >= 0 else len(text)]
    return not before.strip() or before.rstrip().endswith(",") or len(line) < 60


# -- MinHash ------------------------------------------------------------------------------

_MASK32 = np.uint64(0xFFFFFFFF)
_MULTIPLIERS = np.array(
    [int.from_bytes(zlib.crc32(b"a%d" % k).to_bytes(4, "big") * 2, "big") | 1
     for k in range(_MINHASH_PERMUTATIONS)],
    dtype=np.uint64,
)
_OFFSETS = np.array(
    [int.from_bytes(zlib.crc32(b"b%d" % k).to_bytes(4, "big") * 2, "big")
     for k in range(_MINHASH_PERMUTATIONS)],
    dtype=np.uint64,
)
_EMPTY_SIGNATURE = (0xFFFFFFFF,) * _MINHASH_PERMUTATIONS


def minhash_signatures(documents: Sequence[Sequence[str]]) -> list[tuple[int, ...]]:
    """MinHash signatures of each document's word 3-shingles, vectorized over the batch.

    Word hashes are CRC-32 (stable across processes, unlike `hash`), so stored signatures
    stay comparable with new ones.
    """
    vocabulary: dict[str, int] = {}
    shingle_hashes: list[np.ndarray] = []
    for words in documents:
        ids = np.fromiter(
            (vocabulary.setdefault(w, zlib.crc32(w.encode())) for w in words),
            dtype=np.uint64, count=len(words),
        )
        if len(ids) >= 3:
            combined = (ids[:-2] * np.uint64(0x9E3779B1) + ids[1:-1]) & _MASK32
            combined = (combined * np.uint64(0x85EBCA77) + ids[2:]) & _MASK32
        else:
            combined = ids
        shingle_hashes.append(np.unique(combined))
    result: list[tuple[int, ...]] = []
    for hashes in shingle_hashes:
        if hashes.size == 0:
            result.append(_EMPTY_SIGNATURE)
            continue
        permuted = (np.outer(_MULTIPLIERS, hashes) + _OFFSETS[:, None]) >> np.uint64(32)
        result.append(tuple(int(v) for v in permuted.min(axis=1)))
    return result


def signature_similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of two documents' shingle sets."""
    if a == _EMPTY_SIGNATURE or b == _EMPTY_SIGNATURE:
        return 0.0
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


# -- comparison ---------------------------------------------------------------------------


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


def compare(a: Features, b: Features, config: DedupConfig) -> Comparison:
    """Score how likely `a` and `b` report the same event, and why."""
    exact = _exact_identity(a, b)
    if exact is not None:
        return Comparison(1.0, exact=True, reasons=(exact,))
    if a.day is not None and b.day is not None and abs(a.day - b.day) > config.window_days:
        return Comparison(0.0, veto=f"published {abs(a.day - b.day)} days apart")
    title = _dice(a.title_words, b.title_words)
    text = max(signature_similarity(a.signature, b.signature), _dice(a.lead_words, b.lead_words))
    a_entities = a.names | a.countries | a.operations | a.numbers
    b_entities = b.names | b.countries | b.operations | b.numbers
    entities = _dice(a_entities, b_entities)
    score = 0.35 * title + 0.25 * text + 0.40 * entities
    reasons: list[str] = []
    if title >= 0.3:
        reasons.append(f"titles share {_percent(title)} of their words")
    if text >= 0.2:
        reasons.append(f"texts are {_percent(text)} alike")
    shared = sorted(a_entities & b_entities, key=lambda s: (-len(s), s))
    if shared:
        reasons.append("both name " + ", ".join(_display(s) for s in shared[:6]))
    same_dates = _shared_event_day(a, b)
    if same_dates is not None:
        score += 0.15
        reasons.append(f"both give the date {_show_day(same_dates)}")
    if a.day is not None and b.day is not None and abs(a.day - b.day) <= 1:
        score += 0.05
    score = min(1.0, score)
    veto = _conflict(a, b)
    return Comparison(round(score, 3), veto=veto, reasons=tuple(reasons))


def _exact_identity(a: Features, b: Features) -> str | None:
    if a.guid is not None and a.guid == b.guid:
        return "same guid"
    if a.link is not None and a.link == b.link:
        return "same link"
    substantial = min(a.words_in_text, b.words_in_text) >= _MIN_WORDS_FOR_TEXT_IDENTITY
    same_day = a.day == b.day or a.day is None or b.day is None
    if a.agency == b.agency and a.content_hash == b.content_hash and (substantial or same_day):
        if a.title_key == b.title_key:
            return "re-post: same agency, title and text"
        if substantial:
            return "same text under an edited title"
    for short, full in ((a, b), (b, a)):
        if (
            short.truncated
            and len(short.prefix) >= _MIN_PREFIX
            and full.prefix.startswith(short.prefix)
            and full.length > short.length - 5
        ):
            return 'summary cut with "…" is the start of the full text'
    return None


def _conflict(a: Features, b: Features) -> str | None:
    """A difference that proves two items are different events, in words."""
    if a.event_dates and b.event_dates and not _overlapping_days(a, b):
        return (f"different event dates ({_show_day(a.event_dates[0])} vs "
                f"{_show_day(b.event_dates[0])})")
    if a.title_countries and b.title_countries and not a.title_countries & b.title_countries:
        return ("titles name different countries ("
                f"{', '.join(sorted(a.title_countries))} vs {', '.join(sorted(b.title_countries))})")
    if (
        not (a.title_countries and b.title_countries)
        and a.lead_countries and b.lead_countries
        and not a.lead_countries & b.lead_countries
    ):
        return ("opening sentences name different countries ("
                f"{', '.join(sorted(a.lead_countries))} vs {', '.join(sorted(b.lead_countries))})")
    if a.title_names and b.title_names and a.title_names - b.title_names and \
            b.title_names - a.title_names and not _names_overlap(a.title_names, b.title_names):
        return ("titles name different people ("
                f"{_display(sorted(a.title_names - b.title_names)[0])} vs "
                f"{_display(sorted(b.title_names - a.title_names)[0])})")
    operation = _operation_conflict(a.operations, b.operations)
    if operation is not None:
        return operation
    return None


def _names_overlap(a: frozenset[str], b: frozenset[str]) -> bool:
    """True when every name of the smaller set shares a word (a surname) with the other."""
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    large_words = {w for name in large for w in name.split()}
    return all(set(name.split()) & large_words for name in small)


def _operation_conflict(a: frozenset[str], b: frozenset[str]) -> str | None:
    if not a or not b:
        return None
    a_names = {op.split("|")[0]: op for op in a}
    b_names = {op.split("|")[0]: op for op in b}
    common = a_names.keys() & b_names.keys()
    for name in sorted(common):
        phase_a, phase_b = a_names[name], b_names[name]
        if "|" in phase_a and "|" in phase_b and phase_a != phase_b:
            return (f"different phases of operation {name.title()} "
                    f"({phase_a.split('|')[1]} vs {phase_b.split('|')[1]})")
    if not common and len(a_names) == 1 and len(b_names) == 1:
        return (f"different operations ({next(iter(a_names)).title()} vs "
                f"{next(iter(b_names)).title()})")
    return None


def _overlapping_days(a: Features, b: Features) -> bool:
    first_a, first_b = a.event_dates[0], b.event_dates[0]
    if first_a[0] <= first_b[1] and first_b[0] <= first_a[1]:
        return True
    # An item may state several dates; agreeing on any of them is no conflict.
    return any(x[0] <= y[1] and y[0] <= x[1] for x in a.event_dates for y in b.event_dates)


def _shared_event_day(a: Features, b: Features) -> tuple[int, int] | None:
    for x in a.event_dates:
        for y in b.event_dates:
            if x[0] <= y[1] and y[0] <= x[1]:
                return x
    return None


def _dice(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))


def _percent(value: float) -> str:
    return f"{round(value * 100)}%"


def _display(entity: str) -> str:
    if "|" in entity:
        name, phase = entity.split("|", 1)
        return f"operation {name.title()} {phase}"
    if len(entity) == 2 and entity.isupper():
        return entity
    return entity.title() if not entity.isdigit() else entity


def _show_day(days: tuple[int, int]) -> str:
    start = _EPOCH + timedelta(days=days[0])
    end = _EPOCH + timedelta(days=days[1])
    if start == end:
        return f"{start.day} {start:%B %Y}"
    return f"{start.day}–{end.day} {end:%B %Y}"


# -- blocking -----------------------------------------------------------------------------


def blocking_keys(f: Features) -> tuple[str, ...]:
    """Keys under which an item is indexed: items sharing keys become candidates.

    Strong keys (one shared is enough) start with `!`: content, prefix, link, MinHash band.
    """
    keys: set[str] = {f"!h{f.content_hash[:16]}"}
    if len(f.prefix) >= _MIN_PREFIX:
        keys.add("!p" + _short_hash(f.prefix[:_MIN_PREFIX]))
    if f.link:
        keys.add("!l" + _short_hash(f.link))
    if f.guid:
        keys.add("!g" + _short_hash(f.guid))
    if f.signature != _EMPTY_SIGNATURE:
        rows = _MINHASH_PERMUTATIONS // _LSH_BANDS
        for band in range(_LSH_BANDS):
            chunk = f.signature[band * rows : (band + 1) * rows]
            keys.add(f"!b{band}:" + _short_hash(",".join(map(str, chunk))))
    keys.update("t" + w[:40] for w in f.title_words)
    keys.update("n" + n[:60] for n in f.names)
    keys.update("o" + o.split("|")[0][:60] for o in f.operations)
    keys.update("#" + n for n in f.numbers if len(n) >= 3)
    return tuple(sorted(keys))


def _short_hash(text: str) -> str:
    return format(zlib.crc32(text.encode()), "08x")


def is_strong_key(key: str) -> bool:
    """True for keys where one shared key makes a candidate."""
    return key.startswith("!")


# -- clustering ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clustering:
    """The outcome: every touched story's members (canonical first) and the notes."""

    members: dict[str, tuple[str, ...]]
    notes: tuple[MatchNote, ...] = ()


@dataclass(slots=True)
class _Index:
    """In-memory blocking index over the items clustering knows so far."""

    window_days: float
    key_cap: int
    postings: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    features: list[Features] = field(default_factory=list)
    story_of: list[str] = field(default_factory=list)

    def add(self, f: Features, story_id: str) -> None:
        slot = len(self.features)
        self.features.append(f)
        self.story_of.append(story_id)
        for key in blocking_keys(f):
            self.postings[key].append(slot)

    def candidates(self, f: Features, limit: int) -> list[int]:
        counts: Counter[int] = Counter()
        for key in blocking_keys(f):
            slots = self.postings.get(key)
            if not slots:
                continue
            if len(slots) > self.key_cap * 4:
                continue
            near = [s for s in slots if self._in_window(f, self.features[s])]
            if len(near) > self.key_cap:
                continue
            weight = 2 if is_strong_key(key) else 1
            for slot in near:
                counts[slot] += weight
        ranked = sorted((c for c in counts.items() if c[1] >= 2), key=lambda c: (-c[1], c[0]))
        return [slot for slot, _ in ranked[:limit]]

    def _in_window(self, a: Features, b: Features) -> bool:
        if a.day is None or b.day is None:
            return True
        return abs(a.day - b.day) <= self.window_days


def cluster(
    new: Sequence[Features],
    known: Sequence[Features],
    stories: Mapping[str, Sequence[str]],
    config: DedupConfig,
) -> Clustering:
    """Assign `new` items to the stories of `known` items or to new stories.

    `stories` maps each story id to its member ids (the members among `known`). Returns the
    whole membership, canonical first, of every story that gained a member.
    """
    index = _Index(window_days=config.window_days, key_cap=config.key_cap)
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
    for f in sorted(new, key=_processing_order):
        if f.item_id in story_of_item:
            continue
        by_id[f.item_id] = f
        story_id, item_notes = _place(f, index, members, by_id, config)
        notes.extend(item_notes)
        if story_id is None:
            story_id = story_id_for(f.item_id)
            members[story_id] = []
        members[story_id].append(f.item_id)
        story_of_item[f.item_id] = story_id
        touched.add(story_id)
        index.add(f, story_id)
    ordered = {
        story_id: tuple(sorted(members[story_id], key=lambda i: richness(by_id[i])))
        for story_id in sorted(touched)
    }
    return Clustering(members=ordered, notes=tuple(notes))


def rerank(stories: Mapping[str, Sequence[str]], features: Mapping[str, Features]) -> Clustering:
    """Re-order stories whose members changed (an edit), canonical first."""
    return Clustering(members={
        story_id: tuple(sorted(ids, key=lambda i: richness(features[i])))
        for story_id, ids in stories.items() if all(i in features for i in ids)
    })


def _processing_order(f: Features) -> tuple[int, int, str]:
    # Dated items first in date order, undated ones after them in the order first seen.
    return (0, f.day, f.item_id) if f.day is not None else (1, f.seen_day, f.item_id)


def _place(
    f: Features,
    index: _Index,
    members: Mapping[str, Sequence[str]],
    by_id: Mapping[str, Features],
    config: DedupConfig,
) -> tuple[str | None, list[MatchNote]]:
    """The story `f` joins (None: a new one) and the notes explaining the decision."""
    candidate_stories = list(dict.fromkeys(
        index.story_of[slot] for slot in index.candidates(f, config.candidate_limit)
    ))
    best: tuple[float, str, str, Comparison] | None = None
    near_misses: list[tuple[float, str, Comparison]] = []
    for story_id in candidate_stories:
        comparisons = [(m, compare(f, by_id[m], config)) for m in members[story_id]]
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
        blocking = next((c for _, c in comparisons if c.veto), None) if not top.exact else None
        if top.score >= config.near_miss_threshold or (blocking and top.score >= 0.2):
            why = top if top.veto or not blocking else Comparison(
                top.score, veto=blocking.veto, reasons=top.reasons)
            if not why.veto and top.merges(config):
                why = Comparison(top.score, reasons=(*top.reasons,
                                 "but it does not agree with every item of that story"))
            near_misses.append((top.score, top_member, why))
    notes = [
        MatchNote(f.item_id, member, score, False, _reasons(c, merged=False))
        for score, member, c in sorted(near_misses, key=lambda n: -n[0])[:3]
    ]
    if best is None:
        return None, notes
    _, story_id, member, comparison = best
    notes.insert(0, MatchNote(f.item_id, member, comparison.score, True,
                              _reasons(comparison, merged=True)))
    return story_id, notes


def _reasons(c: Comparison, *, merged: bool) -> tuple[str, ...]:
    if c.veto:
        return (*c.reasons, f"kept apart: {c.veto}")
    return c.reasons if merged else (*c.reasons, "kept apart: not enough in common")


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


def keys_with_days(features: Iterable[Features]) -> dict[str, tuple[tuple[str, int | None], ...]]:
    """Blocking keys of each item with its day, as the store indexes them."""
    return {f.item_id: tuple((k, f.day) for k in blocking_keys(f)) for f in features}
