"""Reading a lead with the vocabulary in `vocabulary.toml`: kinds of crime and event, places
below the country level, counted things and amounts (pure functions, data loaded once)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from itertools import compress

from aggregator.entities import WORD, stem
from aggregator.gazetteer import caseless, fold

_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90, "hundred": 100, "dozen": 12, "dozens": 24, "hundreds": 200,
}
# A figure as agencies write it: "1 150", "1,150", "1.150" (thousands), "4.8", "4,8".
_FIGURE = r"\d{1,3}(?:[ \u00a0\u202f,.]\d{3})+(?![\d])|\d+(?:[.,]\d+)?"
_NUMBER = re.compile(rf"(?<![\w.,])(?:{_FIGURE}|{'|'.join(_NUMBER_WORDS)})(?![\w])")
"""Read in a `caseless` text: case-sensitive matching is the cheaper scan."""
# A figure whose test on the character before it follows its first digit, so that a scan
# skips to digits: `_FIGURE` with "\d" taken out in front of each alternative.
_DIGIT_FIGURE = (r"\d(?<![\w.,]\d)(?:\d{0,2}(?:[ \u00a0\u202f,.]\d{3})+(?![\d])|"
                 r"\d*(?:[.,]\d+)?)")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_COUNT_REACH = 3
"""A counted word may follow its number at this many words' distance ("18 further arrests",
"four illegal call centres")."""


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The data file, compiled for matching on folded, stemmed words."""

    crimes: dict[tuple[str, ...], str]
    events: dict[tuple[str, ...], str]
    counted: dict[tuple[str, ...], str]
    places: dict[tuple[str, ...], str]
    organisations: dict[tuple[str, ...], str]
    opposed: tuple[frozenset[str], ...]
    longest: int
    amount: re.Pattern[str]
    """Matched in a `caseless` text (as all patterns here: the cheaper scan)."""
    currencies: tuple[str, ...]
    """One of them is in every match of `amount`."""
    mass: re.Pattern[str]
    scales: dict[str, float]
    masses: dict[str, float]


def words_of(text: str) -> list[str]:
    """Folded, stemmed words, stopwords kept (phrases need them: "trafficking in human
    beings")."""
    return words_of_tokens(WORD.findall(text))


def words_of_tokens(tokens: Iterable[str]) -> list[str]:
    """`words_of` a text already split into `WORD` tokens."""
    return list(map(_word, tokens))


@lru_cache(maxsize=262_144)
def _word(token: str) -> str:
    return stem(fold(token).replace("’", "'"))


@cache
def vocabulary() -> Vocabulary:
    """The vocabulary, read from the package once."""
    data = tomllib.loads(resources.files("aggregator.dedup").joinpath("vocabulary.toml")
                         .read_text(encoding="utf-8"))
    crimes = _terms(data["crime"])
    events = _terms(data["event"])
    counted = _terms(data["count"])
    places = {tuple(words_of(name)): f"{name}|{code}" for name, code in data["place"].items()}
    organisations = _terms(data["organisation"])
    amount = data["amount"]
    currencies = "|".join(re.escape(c.lower()) for c in sorted(amount["currencies"], key=len,
                                                                reverse=True))
    scales = "|".join(s.lower() for s in sorted(amount["scales"], key=len, reverse=True))
    masses = "|".join(m.lower() for m in sorted(amount["masses"], key=len, reverse=True))
    figure = rf"(?P<figure>{_FIGURE})"
    scale = rf"(?:\s?(?P<scale>{scales})\b)?"
    return Vocabulary(
        crimes=crimes, events=events, counted=counted, places=places,
        organisations=organisations,
        opposed=tuple(frozenset(pair) for pair in data["opposed"]["pairs"]),
        longest=max(len(k) for table in (crimes, events, counted, places, organisations)
                    for k in table),
        amount=re.compile(
            rf"(?:(?<![\w])(?P<before>{currencies})\s?{figure}{scale})|"
            rf"(?:(?<![\w.,]){figure.replace('figure', 'figure2')}"
            rf"(?:\s?(?P<scale2>{scales})\b)?\s?(?P<after>{currencies})(?![\w]))"),
        currencies=tuple(c.lower() for c in amount["currencies"]),
        mass=re.compile(rf"(?P<figure>{_DIGIT_FIGURE})\s?(?P<unit>{masses})s?\b"),
        scales={k: float(v) for k, v in amount["scales"].items()},
        masses={k: float(v) for k, v in amount["masses"].items()},
    )


def _terms(table: dict[str, list[str]]) -> dict[tuple[str, ...], str]:
    return {tuple(words_of(term)): label for label, terms in table.items() for term in terms}


def labels_in(words: Sequence[str], table: dict[tuple[str, ...], str]) -> set[str]:
    """The labels of every term of `table` that occurs in `words` (longest match first)."""
    return {label for _, label in _matches(words, table)}


def _matches(words: Sequence[str],
             table: dict[tuple[str, ...], str]) -> list[tuple[tuple[str, ...], str]]:
    """The terms of `table` in `words`, left to right, longest first, not overlapping."""
    starts = _starts(id(table), table)
    found: list[tuple[tuple[str, ...], str]] = []
    count = len(words)
    free = 0
    # Only the words that start a term are tried (most words start none, and one pass in C
    # finds those that do); a term found covers its words, which start no other.
    for index in compress(range(count), map(starts.__contains__, words)):
        if index < free:
            continue
        for size in range(min(starts[words[index]], count - index), 0, -1):
            key = tuple(words[index : index + size])
            label = table.get(key)
            if label is not None:
                found.append((key, label))
                free = index + size
                break
    return found


_STARTS: dict[int, dict[str, int]] = {}


def _starts(table_id: int, table: dict[tuple[str, ...], str]) -> dict[str, int]:
    """First word of each term -> the longest term it starts (kept by the table's id: the
    tables live as long as the cached vocabulary)."""
    starts = _STARTS.get(table_id)
    if starts is None:
        starts = {}
        for key in table:
            starts[key[0]] = max(starts.get(key[0], 0), len(key))
        _STARTS[table_id] = starts
    return starts


def crime_kinds(words: Sequence[str]) -> set[str]:
    """Kinds of crime the words are about ("drugs", "cyber", ...)."""
    return labels_in(words, vocabulary().crimes)


def event_kinds(words: Sequence[str]) -> set[str]:
    """Kinds of event the words tell ("enforcement", "sentencing", "visit", ...)."""
    return labels_in(words, vocabulary().events)


def organisations(words: Sequence[str]) -> set[str]:
    """Agencies and bodies the words name ("europol", "interpol", ...)."""
    return labels_in(words, vocabulary().organisations)


def places(words: Sequence[str]) -> dict[str, str]:
    """Cities and regions named (their name in the vocabulary -> ISO country code, "-" for
    a region)."""
    found: dict[str, str] = {}
    for _, entry in _matches(words, vocabulary().places):
        name, code = entry.split("|")
        found[name] = code
    return found


def opposed_events(a: frozenset[str], b: frozenset[str]) -> tuple[str, str] | None:
    """A pair of opposed event kinds, one only in `a` and the other only in `b`, if any."""
    for pair in vocabulary().opposed:
        first, second = sorted(pair)
        if first in a and second in b and first not in b and second not in a:
            return first, second
        if second in a and first in b and second not in b and first not in a:
            return second, first
    return None


def counts(text: str) -> set[tuple[str, float]]:
    """What the text counts: ("arrests", 18.0), ("searches", 4.0), ... Numbers that are
    parts of dates, times or amounts are not counts."""
    table = vocabulary().counted
    found: set[tuple[str, float]] = set()
    for match in _NUMBER.finditer(caseless(text)):
        value = _value(match.group())
        if value is None or _is_date_or_time(text, match.start(), match.end()):
            continue
        following = words_of(text[match.end() : match.end() + 60])[: _COUNT_REACH + 1]
        for start in range(min(_COUNT_REACH, len(following))):
            label = table.get(tuple(following[start : start + 2])) or table.get(
                (following[start],))
            if label is not None:
                found.add((label, value))
                break
    return found


def amounts(text: str) -> set[tuple[str, float]]:
    """Money ("money", 3.2e6) and masses in kilograms ("kg", 2500.0) the text states."""
    vocab = vocabulary()
    found: set[tuple[str, float]] = set()
    lowered = caseless(text)
    for match in vocab.amount.finditer(lowered) if _names_money(lowered, vocab) else ():
        figure = match.group("figure") or match.group("figure2")
        scale = (match.group("scale") or match.group("scale2") or "").lower()
        value = _value(figure)
        if value is not None:
            found.add(("money", value * vocab.scales.get(scale, 1.0)))
    for match in vocab.mass.finditer(lowered):
        value = _value(match.group("figure"))
        if value is not None:
            found.add(("kg", value * vocab.masses[match.group("unit").lower()]))
    return found


def _names_money(lowered: str, vocab: Vocabulary) -> bool:
    """False when no match of `vocab.amount` can be in the (caseless) text: every match has a
    currency not glued to letters ("EUR 5", "5 euros", "€5"; not the "eur" of "Europol")."""
    for currency in vocab.currencies:
        at = lowered.find(currency)
        while at != -1:
            end = at + len(currency)
            if not ((at > 0 and _is_letter(currency[0]) and _is_letter(lowered[at - 1]))
                    or (end < len(lowered) and _is_letter(currency[-1])
                        and _is_letter(lowered[end]))):
                return True
            at = lowered.find(currency, at + 1)
    return False


def _is_letter(char: str) -> bool:
    """A word character (regex "\\w") that is not a digit ("\\d")."""
    return (char.isalnum() or char == "_") and not char.isdecimal()


_GROUPED_FIGURE = re.compile(r"\d{1,3}(?:[ \u00a0\u202f,.]\d{3})+")
_NOT_DIGIT = re.compile(r"\D")


def _value(figure: str) -> float | None:
    lowered = figure.lower()
    if lowered in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[lowered])
    if _GROUPED_FIGURE.fullmatch(figure):
        return float(_NOT_DIGIT.sub("", figure))
    try:
        return float(figure.replace(",", "."))
    except ValueError:
        return None


_DAY_BEFORE_MONTH = re.compile(
    r"(?:st|nd|rd|th)?\s*(?:-|–|and|to)?\s*\d{0,2}\s*(?:" + "|".join(_MONTHS) + ")")
_MONTH_BEFORE = re.compile(r"(?:" + "|".join(_MONTHS) + r")[a-z]*\.?\s*$")
_CLOCK_AFTER = re.compile(r"\s*(?:[:.]\d\d\b|a\.?m\b|p\.?m\b|h\b|hrs\b|cet|cest|gmt|utc)")


def _is_date_or_time(text: str, start: int, end: int) -> bool:
    after = text[end : end + 12].lower()
    before = text[max(0, start - 10) : start].lower()
    if _DAY_BEFORE_MONTH.match(after):
        return True
    if _MONTH_BEFORE.search(before):
        return True
    if _CLOCK_AFTER.match(after):
        return True
    digits = text[start:end]
    return len(digits) == 4 and digits.isdigit() and digits[:2] in ("19", "20")


def agree(a: float, b: float) -> bool:
    """Two figures that agencies would give for one thing: within 15 % (at least 1 apart
    allowed), as "eight" and "nine" suspects or "more than 60" and 63 are."""
    return abs(a - b) <= max(1.0, 0.15 * max(a, b))
