"""MinHash signatures of word shingles: a compact sketch of a text for near-copy matching.

Vectorized with numpy over a whole batch. Word hashes are CRC-32, stable across processes
(unlike Python's `hash`), so signatures stored by one run compare with those of the next.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

PERMUTATIONS = 64
_MASK32 = np.uint64(0xFFFFFFFF)
_MULTIPLIERS = np.array(
    [(zlib.crc32(b"a%d" % k) << 32 | zlib.crc32(b"c%d" % k)) | 1 for k in range(PERMUTATIONS)],
    dtype=np.uint64,
)
_OFFSETS = np.array(
    [zlib.crc32(b"b%d" % k) << 32 | zlib.crc32(b"d%d" % k) for k in range(PERMUTATIONS)],
    dtype=np.uint64,
)
EMPTY = (0xFFFFFFFF,) * PERMUTATIONS
"""The signature of a text with no words."""


def signatures(documents: Sequence[Sequence[str]]) -> list[tuple[int, ...]]:
    """One signature per document (a sequence of folded words), over its word 3-shingles."""
    vocabulary: dict[str, int] = {}
    result: list[tuple[int, ...]] = []
    for words in documents:
        ids = np.fromiter(
            (vocabulary.setdefault(w, zlib.crc32(w.encode())) for w in words),
            dtype=np.uint64,
            count=len(words),
        )
        if ids.size == 0:
            result.append(EMPTY)
            continue
        if ids.size >= 3:
            shingles = (ids[:-2] * np.uint64(0x9E3779B1) + ids[1:-1]) & _MASK32
            shingles = (shingles * np.uint64(0x85EBCA77) + ids[2:]) & _MASK32
        else:
            shingles = ids
        shingles = np.unique(shingles)
        # Multiply-shift hashing: the top 32 bits of a*x + b (mod 2**64) per permutation.
        permuted = (np.outer(_MULTIPLIERS, shingles) + _OFFSETS[:, None]) >> np.uint64(32)
        result.append(tuple(int(v) for v in permuted.min(axis=1)))
    return result


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two signatures."""
    if tuple(a) == EMPTY or tuple(b) == EMPTY:
        return 0.0
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


def bands(signature: Sequence[int], count: int) -> list[str]:
    """Locality-sensitive hashing bands: texts sharing a band are likely near copies."""
    rows = len(signature) // count
    return [
        f"{band}:{zlib.crc32(','.join(map(str, signature[band * rows:(band + 1) * rows])).encode()):08x}"
        for band in range(count)
    ]
