"""Arrays of strings as fixed-width byte matrices, and fast non-cryptographic fingerprints of them.

Strings of one byte length become one (n, length) uint8 matrix without a copy
per string (:func:`length_groups`), strings of any length a zero-padded one
(:func:`padded_bytes`); protocols hash those matrices in bulk (the
OT-based PSI's keyed digests), and :func:`fingerprints` mixes them into 64-bit
values for grouping equal strings (duplicate IDs). Fingerprints are not a
cryptographic hash — callers confirm every grouping byte for byte — but they
are seeded per call, so no input can be prepared to collide.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio (Fibonacci hashing)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)  # splitmix64's finaliser (Steele, Lea & Flood, OOPSLA 2014)
_MIX2 = np.uint64(0x94D049BB133111EB)


def fixed_width(ids: pa.Array, length: int) -> np.ndarray:
    """The byte strings of ``ids`` (all ``length`` bytes long) as an (n, length) uint8 matrix."""
    if length == 0:
        return np.zeros((len(ids), 0), dtype=np.uint8)
    fixed = ids.cast(pa.binary()).cast(pa.binary(length))
    data = np.frombuffer(fixed.buffers()[1], dtype=np.uint8)
    start = fixed.offset * length
    return data[start : start + len(fixed) * length].reshape(-1, length)


def padded_bytes(arr: pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of strings of any length as a zero-padded (n, width) uint8 matrix (longer ones cut),
    plus each string's byte length; nulls count as empty."""
    arr = arr.cast(pa.large_string()) if arr.type != pa.large_string() else arr
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    n = len(arr)
    if n == 0:
        return np.zeros((0, width), np.uint8), np.zeros(0, np.int64)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    lengths = offsets[1:] - offsets[:-1]
    cols = np.arange(width)
    idx = offsets[:-1, None] + cols
    keep = cols < lengths[:, None]
    if data.size == 0:
        return np.zeros((n, width), np.uint8), lengths
    out = np.where(keep, data[np.minimum(idx, data.size - 1)], 0).astype(np.uint8)
    return out, lengths


def length_groups(ids: pa.Array | pa.ChunkedArray) -> Iterator[tuple[np.ndarray | None, int, np.ndarray]]:
    """(rows, length, matrix) for each byte length among non-null ``ids``: ``matrix`` holds the strings
    of that length, which sit at ``rows`` of the input (``rows`` is None when every string has it)."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if len(ids) == 0:
        return
    lengths = pc.binary_length(ids).to_numpy(zero_copy_only=False).astype(np.int64)
    if lengths.min() == lengths.max():
        yield None, int(lengths[0]), fixed_width(ids, int(lengths[0]))
        return
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        yield rows, int(length), fixed_width(ids.take(pa.array(rows, type=pa.int64())), int(length))


def _mix(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)
    return h


def fingerprints(ids: pa.Array | pa.ChunkedArray, seed: int | None = None) -> np.ndarray:
    """A seeded 64-bit fingerprint of every non-null string: (n,) uint64. Equal strings, equal values."""
    n = len(ids)
    out = np.empty(n, dtype=np.uint64)
    seed_word = np.uint64(int.from_bytes(os.urandom(8), "little") if seed is None else seed & (2**64 - 1))
    with np.errstate(over="ignore"):
        for rows, length, matrix in length_groups(ids):
            words = -(-length // 8)
            padded = np.zeros((len(matrix), 8 * max(words, 1)), dtype=np.uint8)
            padded[:, :length] = matrix
            columns = padded.view("<u8")
            h = np.full(len(matrix), seed_word ^ np.uint64(length), dtype=np.uint64)
            for w in range(columns.shape[1]):
                h ^= columns[:, w]
                h *= _MULTIPLIER
                h = _mix(h)
            if rows is None:
                out[:] = h
            else:
                out[rows] = h
    return out
