"""MinHash signatures of word shingles: a compact sketch of a text for near-copy matching.

Vectorized with numpy over a whole batch. Word hashes are CRC-32, stable across processes
(unlike Python's `hash`), so signatures stored by one run compare with those of the next.
"""

from __future__ import annotations

import struct
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
    vocabulary = _WordHashes()
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    for words in documents:
        spans.append((len(ids), len(words)))
        ids.extend(map(vocabulary.__getitem__, words))
    every = np.array(ids, dtype=np.uint64)
    # The 3-shingle starting at each word of all documents at once; those that run into the
    # next document are never picked. A document of one or two words is its words.
    if every.size >= 3:
        triples = (every[:-2] * np.uint64(0x9E3779B1) + every[1:-1]) & _MASK32
        triples = (triples * np.uint64(0x85EBCA77) + every[2:]) & _MASK32
    else:
        triples = np.zeros(0, dtype=np.uint64)
    pool = np.concatenate((triples, every))
    picks: list[int] = []
    sizes: list[int] = []
    for start, count in spans:
        if count >= 3:
            picks.extend(range(start, start + count - 2))
            sizes.append(count - 2)
        else:
            picks.extend(range(triples.size + start, triples.size + start + count))
            sizes.append(count)
    shingles = pool[np.array(picks, dtype=np.intp)]
    result: list[bytes] = [EMPTY] * len(documents)
    first = taken = 0
    while first < len(sizes):
        stop, size = first, 0
        while stop < len(sizes) and (size == 0 or size + sizes[stop] <= _BATCH_SHINGLES):
            size += sizes[stop]
            stop += 1
        _sign_batch(shingles[taken : taken + size], sizes[first:stop], result, first)
        first, taken = stop, taken + size
    return result


class _WordHashes(dict[str, int]):
    """Word -> its CRC-32, computed on first use."""

    def __missing__(self, word: str) -> int:
        value = self[word] = zlib.crc32(word.encode())
        return value


def _sign_batch(shingles: np.ndarray, sizes: list[int], result: list[bytes], at: int) -> None:
    """Sign the documents `at`, `at + 1`, ... whose shingles, `sizes[i]` each, follow one
    another in `shingles`."""
    counts = np.array(sizes, dtype=np.intp)
    nonempty = np.flatnonzero(counts)
    if nonempty.size == 0:
        return
    # Multiply-shift hashing: the top 32 bits of a*x + b (mod 2**64) per permutation (in
    # place: the matrix is large).
    permuted = np.outer(_MULTIPLIERS, shingles)
    permuted += _OFFSETS[:, None]
    permuted >>= np.uint64(32)
    offsets = np.concatenate(([0], np.cumsum(counts[nonempty])[:-1]))
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
    hashes = sorted({zlib.crc32(w.encode()) for w in words})
    return struct.pack(f"<{len(hashes)}I", *hashes)


def shared_count(a: bytes, b: bytes) -> int:
    """How many hashes two `word_hashes` sets share."""
    if not a or not b:
        return 0
    return len(set(array("I", a)).intersection(array("I", b)))
