"""Bit-matrix transposition for OT extension, vectorised on uint64 words.

An OT-extension matrix is produced column by column (one PRG stream per base
OT) but used row by row (one row per OT instance). :func:`columns_to_rows`
turns ``w`` columns of ``m`` bits into ``m`` rows of ``w`` bits.

Layouts (bits are little-endian within bytes and words):

* **columns**: (w, m/64) uint64; bit ``r`` of word ``t`` in column ``j`` is the
  entry of instance ``64 t + r``.
* **rows**: (m, w/64) uint64, row-major; bit ``c`` of word ``[i, g]`` is column
  ``64 g + c`` of instance ``i``. At w = 512 a row is one 64-byte cache line,
  so gathering the rows of scattered instances costs one memory access each.

The transposition is the classic recursive SWAR exchange of 64 × 64 bit
blocks (Warren, *Hacker's Delight*, §7-3): six rounds of shift/xor/mask over
whole arrays, with the 64 words of each block along an axis of its own, so
no byte shuffling is needed; each transposed chunk is then copied into the
row-major result. Work is split into chunks of columns of blocks and run on a
thread pool (numpy releases the GIL), using every core.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .workers import pool

_MASKS = {
    32: np.uint64(0x00000000FFFFFFFF),
    16: np.uint64(0x0000FFFF0000FFFF),
    8: np.uint64(0x00FF00FF00FF00FF),
    4: np.uint64(0x0F0F0F0F0F0F0F0F),
    2: np.uint64(0x3333333333333333),
    1: np.uint64(0x5555555555555555),
}
_CHUNK_WORDS = 2048  # words of each block row per task: (w/64) * 64 * 2048 * 8 bytes, ~8 MiB at w = 512


def _transpose_blocks_inplace(blocks: np.ndarray) -> None:
    """Transpose every 64 x 64 bit block of a (G, 64, T) uint64 array in place (axis 1 = the 64 words)."""
    g, _, t = blocks.shape
    tmp = np.empty(g * 32 * t, dtype=np.uint64)
    for j in (32, 16, 8, 4, 2, 1):
        view = blocks.reshape(g, 64 // (2 * j), 2, j, t)
        lo = view[:, :, 0]
        hi = view[:, :, 1]
        scratch = tmp.reshape(lo.shape)
        np.right_shift(lo, np.uint64(j), out=scratch)
        np.bitwise_xor(scratch, hi, out=scratch)
        np.bitwise_and(scratch, _MASKS[j], out=scratch)
        np.bitwise_xor(hi, scratch, out=hi)
        np.left_shift(scratch, np.uint64(j), out=scratch)
        np.bitwise_xor(lo, scratch, out=lo)


def columns_to_rows(columns: np.ndarray) -> np.ndarray:
    """(w, m/64) uint64 columns -> (m, w/64) uint64 rows (see the module docstring). w, m multiples of 64."""
    w, words = columns.shape
    # never transpose the caller's array: each chunk is a copy
    (rows,) = rows_from_column_chunks(w, words, lambda start, stop: (np.array(columns[:, start:stop], order="C"),))
    return rows


def rows_from_column_chunks(w: int, words: int, chunk: Callable[[int, int], tuple[np.ndarray, ...]],
                            matrices: int = 1) -> tuple[np.ndarray, ...]:
    """The (m, w/64) rows of ``matrices`` (w, m/64) column matrices that are never held whole.

    ``chunk(start, stop)`` returns one fresh C-contiguous (w, stop - start)
    uint64 array per matrix: words [start, stop) of every column (for OT
    extension, pieces of the PRG streams, so matrices derived from the same
    streams are made together). Each piece is transposed while it is still in
    cache and copied into its result, so the column matrices cost no memory of
    their own.
    """
    if w % 64:
        raise ValueError("the number of columns must be a multiple of 64")
    groups = w // 64
    outs = tuple(np.empty((64 * words, groups), dtype=np.uint64) for _ in range(matrices))

    def task(start: int, stop: int) -> None:
        pieces = chunk(start, stop)
        if len(pieces) != matrices:
            raise ValueError(f"expected {matrices} pieces, got {len(pieces)}")
        for out, piece in zip(outs, pieces):
            piece = piece.reshape(groups, 64, stop - start)
            _transpose_blocks_inplace(piece)  # word [g, r, t] now holds columns 64g.. of instance 64t + r
            out[64 * start : 64 * stop].reshape(stop - start, 64, groups)[...] = piece.transpose(2, 1, 0)

    bounds = [(s, min(s + _CHUNK_WORDS, words)) for s in range(0, words, _CHUNK_WORDS)]
    if len(bounds) <= 1:
        for s, e in bounds:
            task(s, e)
    else:
        for fut in [pool("bits").submit(task, s, e) for s, e in bounds]:
            fut.result()
    return outs
