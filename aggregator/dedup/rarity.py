"""How rare a word or key is: among the items near an item (the local window) and in the
English language as a whole (wordfreq's frequency list), so a word shared by two items counts
by how much it says even in a run of a handful of items.

wordfreq is imported on the first lookup: a run that places no new item never loads it.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache
from typing import Any

_COMMONEST_ZIPF = 6.0
"""Zipf frequency (log10 per billion words) from which a word says nothing ("the" is 7.7)."""
_RAREST_ZIPF = 2.0
"""Zipf frequency below which a word counts fully (names, jargon, "ransomware" is 2.7)."""


def local(frequency: int) -> float:
    """A key's weight from how many items near an item hold it: 1 for one, falling slowly."""
    return 1.0 if frequency <= 1 else 1.0 / (1.0 + math.log2(frequency))


@lru_cache(maxsize=262_144)
def language(word: str) -> float:
    """A word's weight from its frequency in English: 1 for a rare word, 0.1 for the
    commonest. Digits and unknown words are rare."""
    if not word or word.isdigit():
        return 1.0
    zipf = float(_frequencies().zipf_frequency(word, "en", wordlist="small"))
    if zipf <= _RAREST_ZIPF:
        return 1.0
    share = (_COMMONEST_ZIPF - zipf) / (_COMMONEST_ZIPF - _RAREST_ZIPF)
    return max(0.1, min(1.0, share))


@cache
def _frequencies() -> Any:
    import wordfreq

    return wordfreq
