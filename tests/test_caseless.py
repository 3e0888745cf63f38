"""`gazetteer.caseless`: the lowered copy that ignore-case patterns are matched in, case-
sensitively, by normalize and dedup. Every code point is checked, in one string."""

from __future__ import annotations

import re

from aggregator.gazetteer import caseless

EVERY_CHARACTER = "".join(chr(code) for code in range(0x110000)
                          if not 0xD800 <= code <= 0xDFFF)


def _offsets(pattern: str, text: str, flags: int = 0) -> list[int]:
    return [match.start() for match in re.finditer(pattern, text, flags)]


def test_caseless_keeps_every_offset_and_character_class() -> None:
    lowered = caseless(EVERY_CHARACTER)
    assert len(lowered) == len(EVERY_CHARACTER)
    for pattern in (r"\w", r"\d", r"\s", r"[.,:;!?'’()\[\]$€£-]"):
        assert _offsets(pattern, lowered) == _offsets(pattern, EVERY_CHARACTER), pattern


def test_caseless_letters_are_those_ignore_case_matches() -> None:
    lowered = caseless(EVERY_CHARACTER)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        assert _offsets(letter, lowered) == _offsets(letter, EVERY_CHARACTER, re.IGNORECASE)


def test_caseless_of_ascii_and_of_the_twins() -> None:
    assert caseless("EUR 5 Million") == "eur 5 million"
    assert caseless("SİX ſeven Kelvın") == "six seven kelvin"
