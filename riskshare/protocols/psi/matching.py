"""Vectorised equality matching of fixed-width byte strings (PRF outputs, tags)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def match(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (i, j) with left[i] == right[j] for (n, w) / (m, w) uint8 matrices of distinct rows.

    Looks the first 8 bytes of each row up as a uint64 key in a hash table of
    the smaller side (Arrow's ``index_in``), then confirms the whole row. Keys
    repeated within the table side (a 64-bit prefix collision) fall back to a
    sort-based match, so the answer is exact either way. Pairs come back
    ordered by ``i``.
    """
    if len(left) == 0 or len(right) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    width = left.shape[1]
    if width < 8:
        raise ValueError("rows must be at least 8 bytes wide")
    if len(left) > len(right):
        rj, li = match(right, left)
        order = np.argsort(li, kind="stable")
        return li[order], rj[order]
    lp = np.ascontiguousarray(left[:, :8]).view("<u8").reshape(-1)
    rp = np.ascontiguousarray(right[:, :8]).view("<u8").reshape(-1)
    table = pa.array(lp, type=pa.uint64())
    if len(pc.unique(table)) != len(lp):
        return _sorted_match(left, right, lp, rp)
    found = pc.index_in(pa.array(rp, type=pa.uint64()), value_set=table)
    rj = np.flatnonzero(found.is_valid().to_numpy(zero_copy_only=False))
    li = found.drop_null().to_numpy(zero_copy_only=False).astype(np.int64)
    if width > 8 and len(li):
        full = (left[li, 8:] == right[rj, 8:]).all(axis=1)
        li, rj = li[full], rj[full]
    order = np.argsort(li, kind="stable")
    return li[order], rj[order]


def _sorted_match(left, right, lp, rp) -> tuple[np.ndarray, np.ndarray]:
    """Exact matching when 64-bit prefixes repeat: sort the right side, check every equal-prefix candidate."""
    order_r = np.argsort(rp)
    sorted_r = rp[order_r]
    lo = np.searchsorted(sorted_r, lp, "left")
    hi = np.searchsorted(sorted_r, lp, "right")
    counts = hi - lo
    li = np.repeat(np.arange(len(lp)), counts)
    starts = np.repeat(lo, counts)
    offsets = np.arange(len(li)) - np.repeat(np.cumsum(counts) - counts, counts)
    rj = order_r[starts + offsets]
    full = (left[li] == right[rj]).all(axis=1)
    return li[full].astype(np.int64), rj[full].astype(np.int64)


class SortedTable:
    """One side's rows, sorted once by their first 8 bytes, to probe with many batches of the other side's.

    Probing a batch costs one ``searchsorted`` — cheapest when the batch comes
    sorted, as OPRF values do when the sender sorts each batch (an order
    determined by the pseudorandom values themselves reveals nothing).
    Exact like :func:`match`: repeated 8-byte prefixes fall back to checking
    every candidate row.
    """

    def __init__(self, rows: np.ndarray) -> None:
        if rows.ndim != 2 or (len(rows) and rows.shape[1] < 8):
            raise ValueError("rows must be (n, w >= 8) uint8")
        self.rows = rows
        keys = np.ascontiguousarray(rows[:, :8]).view("<u8").reshape(-1) if len(rows) else np.zeros(0, "<u8")
        self.order = np.argsort(keys)  # any order among equal keys will do: repeats are checked row by row
        self.keys = keys[self.order]
        self.repeats = bool(len(keys) > 1 and (self.keys[1:] == self.keys[:-1]).any())

    def probe(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (i, j) with rows[i] == batch[j]."""
        if len(self.keys) == 0 or len(batch) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        bk = np.ascontiguousarray(batch[:, :8]).view("<u8").reshape(-1)
        if self.repeats:
            li, rj = _sorted_match(batch, self.rows[self.order], bk, self.keys)
            return self.order[rj], li
        pos = np.minimum(np.searchsorted(self.keys, bk), len(self.keys) - 1)
        rj = np.flatnonzero(self.keys[pos] == bk)
        li = self.order[pos[rj]]
        if batch.shape[1] > 8 and len(li):
            full = (self.rows[li, 8:] == batch[rj, 8:]).all(axis=1)
            li, rj = li[full], rj[full]
        return li.astype(np.int64), rj.astype(np.int64)
