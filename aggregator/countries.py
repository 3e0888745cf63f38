"""Which countries a story is about (pure): those its reports name in a title or a lead.

A country named only further down a text ("... with partners from Chile and Peru") is a
passing mention: it does not put the story in that country's feed. The lead is a report's
first paragraph that is more than a date, without its dateline: "LYON, France –" says where
a release was issued (INTERPOL's are all from Lyon), not what it is about. Country names,
short forms and demonyms ("Montenegrin", "Turkish") come from `gazetteer`, read by
`entities`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from aggregator.entities import names_and_countries
from aggregator.gazetteer import COUNTRY_PHRASES
from aggregator.model import StoredItem, Story

_DATE_ONLY = re.compile(
    r"^\W*(?:\w+day,?\s+)?(?:\d{1,2}\s+[A-Za-z]+\.?,?\s+\d{4}|[A-Za-z]+\.?\s+\d{1,2},?\s+\d{4})\W*$"
)
"""A paragraph that is a date alone ("26 November 2024", "November 25, 2024")."""
_DATELINE_TO_DASH = re.compile(r"^[A-Z][A-Z.'’ ]+,[^\n–—]{0,40}?\s[–—-]\s*")
"""An upper-case place, a comma, more place, then a dash: "UNITED NATIONS, New York –"."""
_DATELINE_PLACE = re.compile(r"^[A-Z][A-Z.'’ ]+,\s+[A-Z][\w.]*\s*")
"""An upper-case place, a comma and one word, without a dash: "LYON, France Vehicle ..."."""
_LOWER_WORDS = frozenset({"and", "of", "the"})


def _display(words: tuple[str, ...]) -> str:
    return " ".join(w if w in _LOWER_WORDS else w[:1].upper() + w[1:] for w in words)


COUNTRY_NAMES: dict[str, str] = {}
"""ISO code -> the country's first name in the gazetteer, for titles ("Montenegro")."""
for _words, _code in COUNTRY_PHRASES.items():
    COUNTRY_NAMES.setdefault(_code, _display(_words))


def lead(text: str) -> str:
    """A text's first paragraph that is more than a date, without its dateline."""
    for paragraph in text.split("\n\n"):
        paragraph = paragraph.strip()
        if not paragraph or _DATE_ONLY.match(paragraph):
            continue
        dateline = _DATELINE_TO_DASH.match(paragraph) or _DATELINE_PLACE.match(paragraph)
        return paragraph[dateline.end():] if dateline else paragraph
    return ""


def item_countries(item: StoredItem) -> set[str]:
    """Countries one report is about: named in its title or its lead."""
    _, in_title = names_and_countries(item.title)
    _, in_lead = names_and_countries(lead(item.text))
    return set(in_title) | set(in_lead)


def story_countries(story: Story) -> tuple[str, ...]:
    """ISO codes of the countries a story is about (any report's title or lead), sorted."""
    return _union(item_countries(member) for member in story.members)


def _union(sets: Iterable[set[str]]) -> tuple[str, ...]:
    found: set[str] = set()
    for codes in sets:
        found |= codes
    return tuple(sorted(found))
