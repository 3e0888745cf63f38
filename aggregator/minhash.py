"""MinHash signatures of word shingles: a compact sketch of a text for near-copy matching.

Vectorized with numpy over a whole batch. Word hashes are CRC-32, stable across processes
(unlike Python's `hash`), so signatures stored by one run compare with those of the next.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterable, Sequence

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
EMPTY = b"\xff" * (4 * PERMUTATIONS)
assert array("I").itemsize == 4, "signatures are read as arrays of 32-bit lanes"
"""The signature of a text with no words."""


_BATCH_SHINGLES = 40_000
"""Shingles hashed per numpy step: bounds the (64 x n) matrix to about 20 MB."""


def signatures(documents: Sequence[Sequence[str]]) -> list[bytes]:
    """One signature per document (a sequence of folded words), over its word 3-shingles,
    packed as little-endian uint32 values (256 bytes, where a tuple of ints takes ten times
    as much memory).

    The hashing runs over many documents at once: per-document numpy calls would cost more
    than the arithmetic.
    """
    vocabulary: dict[str, int] = {}
    per_document: list[np.ndarray] = []
    for words in documents:
        ids = []
        for word in words:
            value = vocabulary.get(word)
            if value is None:
                value = vocabulary[word] = zlib.crc32(word.encode())
            ids.append(value)
        array = np.array(ids, dtype=np.uint64)
        if array.size >= 3:
            shingles = (array[:-2] * np.uint64(0x9E3779B1) + array[1:-1]) & _MASK32
            shingles = (shingles * np.uint64(0x85EBCA77) + array[2:]) & _MASK32
        else:
            shingles = array
        per_document.append(shingles)
    result: list[bytes] = [EMPTY] * len(documents)
    start = 0
    while start < len(per_document):
        stop, size = start, 0
        while stop < len(per_document) and (size == 0 or size + per_document[stop].size
                                            <= _BATCH_SHINGLES):
            size += per_document[stop].size
            stop += 1
        _sign_batch(per_document[start:stop], result, start)
        start = stop
    return result


def _sign_batch(shingle_sets: list[np.ndarray], result: list[bytes], at: int) -> None:
    sizes = np.array([s.size for s in shingle_sets])
    nonempty = np.flatnonzero(sizes)
    if nonempty.size == 0:
        return
    shingles = np.concatenate([shingle_sets[i] for i in nonempty])
    # Multiply-shift hashing: the top 32 bits of a*x + b (mod 2**64) per permutation.
    permuted = (np.outer(_MULTIPLIERS, shingles) + _OFFSETS[:, None]) >> np.uint64(32)
    offsets = np.concatenate(([0], np.cumsum(sizes[nonempty])[:-1]))
    minima = np.ascontiguousarray(
        np.minimum.reduceat(permuted, offsets, axis=1).T.astype("<u4"))
    for row, index in enumerate(nonempty):
        result[at + int(index)] = minima[row].tobytes()


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two signatures."""
    if a == EMPTY or b == EMPTY:
        return 0.0
    # The positions where the two agree are the zero lanes of their XOR: big-int and array
    # operations in C, where numpy's per-call overhead cost more than the comparison.
    lanes = (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(len(a), "little")
    return array("I", lanes).count(0) / PERMUTATIONS


def word_hashes(words: Iterable[str]) -> bytes:
    """A set of words as sorted, packed uint32 hashes: a compact, comparable word set."""
    return np.unique(np.array([zlib.crc32(w.encode()) for w in words],
                              dtype="<u4")).tobytes()


def shared_count(a: bytes, b: bytes) -> int:
    """How many hashes two `word_hashes` sets share."""
    if not a or not b:
        return 0
    return len(set(array("I", a)).intersection(array("I", b)))
