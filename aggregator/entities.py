"""A light, dependency-free reader of what a news text names (pure functions).

People, places and organisations as runs of capitalized words (roles such as "Secretary
General" dropped), countries through a gazetteer of names and adjectives, figures (arrests,
amounts) without the numbers that are parts of dates, operation names with their phase,
the kinds of crime a title is about, and which day of a multi-day meeting a text reports.
No model downloads: rules tuned on agency press releases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from aggregator.gazetteer import (
    COUNTRY_PHRASES,
    JOINED_COUNTRY_NAMES,
    LONGEST_COUNTRY_PHRASE,
    caseless,
    fold,
)

WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself
yourselves said says say new its it's per via s t today yesterday week weeks year years
day days month months time well within without across along among around upon
""".split())
DOMAIN_WORDS = frozenset("""
nato europol eurojust interpol jcs agency agencies secretary general deputy police
operation operations authorities authority law enforcement international national support
supported supporting country countries member members state states european eu union
media advisory press release news statement readout update alliance allied allies
organization organisation office minister ministers ministry chief chiefs staff joint
official officials cooperation meeting meetings meet meets met held hold took take part
together including include includes further public information
""".split())
"""Words every item of these agencies uses: they say nothing about which story it is."""

# A number not inside a word or another number: "1,200", "3.5", "40". The test on the character
# before it follows the first digit, so that the scan can skip to digits (a pattern that
# opens with a character class is searched for that class first).
_NUMBER = re.compile(r"(\d(?<![\w.,]\d)(?:\d{0,2}(?:[ ,.]\d{3})+|\d*(?:\.\d+)?))(?![\w])")
_THOUSANDS_DOTS = re.compile(r"\d{1,3}(?:\.\d{3})+")
_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18",
    "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
    "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100",
}
_MONTH_NAMES = (r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
                r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?")
# What around a number makes it part of a date or a clock time, not a figure of the story.
_MONTH_AFTER = re.compile(rf"(?:st|nd|rd|th)?(?:\s*(?:-|–|to|and)\s*\d{{1,2}}(?:st|nd|rd|th)?)?"
                          rf"\s+(?:{_MONTH_NAMES})\b", re.IGNORECASE)
_MONTH_BEFORE = re.compile(rf"\b(?:{_MONTH_NAMES})\.?\s+(?:\d{{1,2}}\s*(?:-|–|to|and)\s*)?$",
                           re.IGNORECASE)
_CLOCK_AFTER = re.compile(r"[:.]\d\d\b|\s*(?:a\.?m\b|p\.?m\b|h\b|hrs\b|CET|CEST|GMT|UTC)")

_OPERATION = re.compile(
    r"\b(?:Operation|Op\.|Project|Action)\s+"
    r"(?P<name>[A-Z][\w’'-]+(?:\s+[A-Z][a-z][\w’'-]+)?)"
    r"(?:\s+(?P<phase>[IVXL]{1,6}|\d{1,4})\b)?",
)
_OPERATION_WORDS = ("Operation", "Op.", "Project", "Action")
"""One of them is in every match of `_OPERATION`."""
_PHASE_WORD = re.compile(
    r"\b(?P<ordinal>first|second|third|fourth|fifth|sixth|1st|2nd|3rd|4th|5th|6th|new|next|"
    r"latest)\s+(?:phase|wave|edition|round|stage)\b",
)
"""Read in a `caseless` text, as `_MEETING_DAY` (case-sensitive matching is the cheaper scan)."""
_ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50}
_ORDINAL_VALUES = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
                   "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "6th": 6}

_GATHERING = r"(?:meeting|meetings|assembly|summit|conference|session|ministerial|talks|forum)"
_MEETING_DAY: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(?:first|opening)\s+day\b|\bday\s+(?:one|1)\b|\bopening\s+(?:session\b|of\s+"
                rf"(?:the|its|their)\b)|\bfor\s+the\s+opening\s+of\b|\b{_GATHERING}(?:\s+\d{{4}})?\s+(?:opens|opened|kicks?\s+off|"
                r"kicked\s+off)\b"), "1"),
    (re.compile(r"\bsecond\s+day\b|\bday\s+(?:two|2)\b"), "2"),
    (re.compile(r"\bthird\s+day\b|\bday\s+(?:three|3)\b"), "3"),
    (re.compile(r"\b(?:final|last|closing|concluding)\s+day\b|"
                rf"\b{_GATHERING}(?:\s+\d{{4}})?\s+(?:concludes|concluded|closes|closed|wraps?\s+up|"
                rf"wrapped\s+up|ends|ended)\b|\b(?:conclude[sd]?|wrap(?:s|ped)?\s+up|close[sd]?)\s+"
                rf"(?:(?:the|their|its|two|three)\s+)*(?:days?\s+of\s+)?{_GATHERING}"),
     "last"),
]
_MEETING_DAY_WORDS = [("day", "open", "kick"), ("day",), ("day",),
                      ("day", "conclude", "close", "wrap", "end")]
"""For each of `_MEETING_DAY`'s patterns, words one of which (lower case) is in any match."""

_CRIMES = {
    "drugs": "drug drugs cocaine heroin cannabis narcotic narcotics methamphetamine "
             "amphetamine amphetamines fentanyl ecstasy mdma hashish marijuana precursor "
             "precursors opioid opioids captagon",
    "cyber": "cyber cybercrime cybercriminal cybercriminals ransomware malware hacking hacker "
             "hackers phishing botnet botnets ddos darknet infostealer",
    "fraud": "fraud frauds fraudulent scam scams scammer scammers ponzi swindle",
    "laundering": "laundering launderers",
    "smuggling": "smuggling smugglers smuggler migrant migrants",
    "trafficking-people": "exploitation forced labour labor prostitution",
    "firearms": "firearm firearms weapon weapons gun guns explosives",
    "environment": "waste environmental wildlife timber pollution ivory poaching",
    "terrorism": "terror terrorist terrorists terrorism jihadist extremist extremism",
    "child-abuse": "csam paedophile pedophile paedophiles pedophiles grooming",
    "cultural-goods": "antiquities artefacts artifacts antiquity archaeological",
    "vehicles": "vehicle vehicles cars car",
}
_CRIME_OF = {word: crime for crime, words in _CRIMES.items() for word in words.split()}

ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "gen", "lt", "col", "capt", "cmdr", "adm",
                           "maj", "sgt", "st", "no", "prof", "sen", "rep", "gov", "jr", "sr",
                           "vs", "etc", "inc", "ltd", "co", "op", "va", "calif", "fla"})
_CONNECTORS = frozenset({"de", "da", "del", "van", "von", "der", "den", "al", "bin", "ibn",
                         "el", "la", "le", "di", "du", "dos", "das", "y"})
_ROLE_WORDS = frozenset(fold(w) for w in """
mr mrs ms dr prof gen general lt col colonel capt captain cmdr commander adm admiral maj major
sgt president prime minister ministers secretary deputy chairman chair chief chiefs staff
ambassador director executive king queen prince majesty his her excellency sir lord dame
judge prosecutor spokesperson spokesman spokeswoman navy army air force forces jr sr
the a an of and for in on at to by with from this that these those during after before
monday tuesday wednesday thursday friday saturday sunday january february march april may
june july august september october november december jan feb mar apr jun jul aug sep sept
oct nov dec eur usd gbp chf cet cest gmt utc est edt pst
""".split())
ORG_WORDS = frozenset(fold(w) for w in """
agency office police ministry council committee union organization organisation headquarters
hq forces court prosecutor prosecutors service services department directorate bureau
assembly parliament government centre center unit command alliance university academy
college school programme program network group team summit conference forum portal
""".split())
_AGENCY_WORDS = frozenset(fold(w) for w in """
nato europol eurojust interpol afripol jcs un eu otan frontex
""".split())


def stem(word: str) -> str:
    """A light English stem: plural endings off, so "arrests" meets "arrest"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """Folded, stemmed words that carry meaning: stopwords, agency boilerplate and years out,
    number words as digits ("ten" and "10" meet)."""
    return content_words_of(WORD.findall(text))


def content_words_of(tokens: Iterable[str]) -> list[str]:
    """`content_words` of a text already split into `WORD` tokens."""
    return list(filter(None, map(_content_word, tokens)))


@lru_cache(maxsize=262_144)
def _content_word(token: str) -> str:
    word = fold(token).replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    word = _NUMBER_WORDS.get(word, word)
    if word in STOPWORDS or word in DOMAIN_WORDS or len(word) < 2:
        return ""
    if len(word) == 4 and word.isdigit() and word[:2] in ("19", "20"):
        return ""
    return stem(word)


def title_cased(title: str) -> bool:
    """True when nearly every longer word is capitalized ("Chairman Hosts Australian Chief")."""
    return title_cased_tokens(WORD.findall(title))


def title_cased_tokens(tokens: Iterable[str]) -> bool:
    """`title_cased` of a title already split into `WORD` tokens."""
    words = [w for w in tokens if len(w) >= 4]
    return len(words) >= 3 and sum(w[0].isupper() for w in words) > 0.8 * len(words)


def mostly_upper(text: str) -> bool:
    """True for all-caps text, whose capitals say nothing about names (judged on its start:
    an all-caps text is all caps from the first line)."""
    sample = text[:_CASE_SAMPLE]
    uppers = len(_UPPER_LETTER.findall(sample))
    # Counting every letter is the costly part; the ASCII lower-case letters alone (a lower
    # bound, counted in bytes) settle the common case of a text in sentence case.
    if uppers <= 0.6 * len(sample.encode("ascii", "ignore").translate(None, _NOT_ASCII_LOWER)):
        return False
    letters = len(_LETTER.findall(sample))
    return letters >= 8 and uppers > 0.6 * letters


_CASE_SAMPLE = 300
_NOT_ASCII_LOWER = bytes(b for b in range(128) if not 0x61 <= b <= 0x7A)


def _character_class(test: str) -> str:
    """A regex class of every BMP character for which `str.<test>()` holds, as ranges."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF or not getattr(chr(code), test)():
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                   for a, b in ranges)


_UPPER = _character_class("isupper")
_LETTER = re.compile(r"[^\W\d_]")
_UPPER_LETTER = re.compile(f"[{_UPPER}]")
_CAPITALIZED_WORD = rf"(?:[{_UPPER}]|[a-z]'[{_UPPER}])[\w'’-]*"
# A run of capitalized words, joined by single spaces or hyphens, with lowercase particles
# inside ("Recep Tayyip Erdoğan", "Côte d'Ivoire", "Abu Bakr al Baghdadi").
_MORE_WORDS = (rf"(?:(?:[ \t]+|[ \t]*-[ \t]*)(?:(?:{'|'.join(sorted(_CONNECTORS))})[ \t]+)*"
               rf"{_CAPITALIZED_WORD})*")
_RUN = re.compile(rf"(?<![\w'’]){_CAPITALIZED_WORD}{_MORE_WORDS}")
# `_RUN` for a text where no run can open with "d'I" (no apostrophe before a capital): it
# opens with a capital, and the test on the character before follows it, so that the scan
# skips to capitals (a pattern that opens with a character class is searched for it first).
_CAPITAL_RUN = re.compile(rf"[{_UPPER}](?<![\w'’].)[\w'’-]*{_MORE_WORDS}")
_APOSTROPHE_CAPITAL = re.compile(rf"'[{_UPPER}]")
_SENTENCE_BREAK = re.compile(r"(?:^|[.!?:;]|\n)[\s\"“‘(\[]*$")
_LAST_WORD = re.compile(r"([\w]+)\W*$")


def names_and_countries(text: str) -> tuple[set[str], dict[str, int]]:
    """Names (runs of capitalized words, roles dropped) and the countries of `text` (ISO
    code -> offset of the first mention).

    A lone capitalized word that opens a sentence ("Drug trafficking ...") counts as a name
    only if the text also capitalizes it elsewhere.
    """
    found: dict[str, bool] = {}
    countries: dict[str, int] = {}
    names_reliable = not mostly_upper(text)
    if not names_reliable:
        text = text.title()
    text = text.replace("U.S.", "US").replace("U.K.", "UK").replace("’", "'")
    runs = _RUN if "'" in text and _APOSTROPHE_CAPITAL.search(text) else _CAPITAL_RUN
    for run in runs.finditer(text):
        names, codes, lone = _read_run(run.group())
        # Only a lone word that is a name needs to know whether it opens a sentence.
        initial = lone and bool(names) and _opens_sentence(text, run.start())
        for name in names:
            confirmed = not (initial and " " not in name)
            found[name] = found.get(name, False) or confirmed
        for code in codes:
            countries.setdefault(code, run.start())
    for spelling, code in JOINED_COUNTRY_NAMES:
        at = text.find(spelling)
        if at != -1 and countries.get(code, at) >= at:
            countries[code] = at
    if not names_reliable:
        return set(), countries
    return {name for name, confirmed in found.items() if confirmed or " " in name}, countries


def _opens_sentence(text: str, at: int) -> bool:
    before = text[max(0, at - 12) : at]
    if not _SENTENCE_BREAK.search(before) and at > 0:
        return False
    if at == 0:
        return True
    # "Gen. CQ Brown": a full stop after an abbreviation does not end the sentence.
    previous = _LAST_WORD.search(text[max(0, at - 12) : at].rstrip(" \t\"“‘(["))
    return previous is None or fold(previous.group(1)) not in ABBREVIATIONS


@lru_cache(maxsize=131_072)
def _read_run(run: str) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """The names and country codes in one run of capitalized words, and whether it is one
    lone word (cached: agency news names the same people and places again and again)."""
    # "Pre-ministerial" is one capitalized word, but only "Pre" of it is a name's part.
    words = [fold(w) for w in WORD.findall(run)
             if w[0].isupper() or w in _CONNECTORS or (len(w) > 2 and w[1] == "'")]
    words = [w[:-2] if w.endswith("'s") else w for w in words]
    names: list[str] = []
    codes: list[str] = []
    index = 0
    pending: list[str] = []
    while index < len(words):
        for size in range(min(LONGEST_COUNTRY_PHRASE, len(words) - index), 0, -1):
            code = COUNTRY_PHRASES.get(tuple(words[index : index + size]))
            if code is not None:
                codes.append(code)
                names.extend(_name_of(pending))
                pending = []
                index += size
                break
        else:
            pending.append(words[index])
            index += 1
    names.extend(_name_of(pending))
    return tuple(names), tuple(codes), len(words) == 1


def _name_of(words: list[str]) -> list[str]:
    """The name in a run of folded words once roles are dropped: zero or one name."""
    kept = [w for w in words if w not in _ROLE_WORDS and w not in _AGENCY_WORDS]
    while kept and kept[-1] in _CONNECTORS:
        kept.pop()
    while kept and kept[0] in _CONNECTORS:
        kept.pop(0)
    if not kept:
        return []
    if len(kept) == 1:
        word = kept[0]
        if (word in STOPWORDS or word in DOMAIN_WORDS or word in ORG_WORDS
                or len(word) < 3 or word.isdigit()):
            return []
    return [" ".join(kept)]


def is_person_like(name: str) -> bool:
    """Two or more words and no organisation word: probably a person."""
    words = name.split()
    return len(words) >= 2 and not any(w in ORG_WORDS for w in words)


def figures(text: str) -> set[str]:
    """The figures a text gives (arrests, amounts, counts of two digits or more), without the
    numbers that belong to dates, years or clock times; number words become digits."""
    found: set[str] = set()
    for match in _NUMBER.finditer(text):
        raw = match.group(1)
        value = raw.replace(" ", "").replace(",", "")
        if _THOUSANDS_DOTS.fullmatch(raw):
            value = raw.replace(".", "")
        if len(value.replace(".", "").lstrip("0")) < 2 or _is_date_part(text, match, value):
            continue
        found.add(value)
    lowered = text.lower()
    for word, digits, pattern in _FIGURE_WORDS:
        if word in lowered and pattern.search(lowered):
            found.add(digits)
    return found


_FIGURE_WORDS = [(word, digits, re.compile(rf"\b{word}\b"))
                 for word, digits in _NUMBER_WORDS.items() if len(digits) >= 2]


def _is_date_part(text: str, match: re.Match[str], value: str) -> bool:
    if len(value) == 4 and value[:2] in ("19", "20") and value.isdigit():
        return True
    after = text[match.end() : match.end() + 24]
    if _CLOCK_AFTER.match(after) or _MONTH_AFTER.match(after):
        return True
    return bool(_MONTH_BEFORE.search(text[max(0, match.start() - 16) : match.start()]))


def operations(text: str) -> set[str]:
    """Operations named in `text`: "name", or "name|phase" when a phase is given."""
    found: set[str] = set()
    if not any(word in text for word in _OPERATION_WORDS):
        return found
    phase_word: re.Match[str] | None = None
    phase_read = False
    for match in _OPERATION.finditer(text):
        name = fold(match.group("name"))
        phase = match.group("phase")
        if phase is None and not phase_read:
            # Read only for an operation without a phase of its own: most texts name none.
            phase_word, phase_read = _PHASE_WORD.search(caseless(text)), True
        if phase is not None:
            found.add(f"{name}|{_phase_value(phase)}")
        elif phase_word is not None:
            found.add(f"{name}|{_ORDINAL_VALUES.get(phase_word.group('ordinal').lower(), 'n')}")
        else:
            found.add(name)
    return found


def _phase_value(phase: str) -> str:
    lowered = phase.lower()
    if lowered.isdigit():
        return str(int(lowered))
    total = 0
    for index, ch in enumerate(lowered):
        value = _ROMAN[ch]
        following = _ROMAN[lowered[index + 1]] if index + 1 < len(lowered) else 0
        total += -value if value < following else value
    return str(total)


def crime_types(text: str) -> set[str]:
    """The kinds of crime a (title) text is about: drugs, cyber, fraud, firearms, ..."""
    kinds = {_CRIME_OF[w] for w in (fold(t) for t in WORD.findall(text)) if w in _CRIME_OF}
    lowered = caseless(text)
    if "trafficking" in lowered and _HUMAN_TRAFFICKING.search(lowered):
        kinds.add("trafficking-people")
    return kinds


_HUMAN_TRAFFICKING = re.compile(r"\btrafficking in human beings\b|\bhuman trafficking\b")
"""Read in a `caseless` text."""


def meeting_day(text: str) -> str | None:
    """Which day of a multi-day meeting the text reports ("1", "2", "3", "last"), if it says."""
    lowered = caseless(text)
    for (pattern, day), words in zip(_MEETING_DAY, _MEETING_DAY_WORDS, strict=True):
        if any(word in lowered for word in words) and pattern.search(lowered):
            return day
    return None
