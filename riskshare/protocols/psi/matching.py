"""Vectorised equality matching of fixed-width byte strings (PRF outputs, tags)."""

from __future__ import annotations

import numpy as np


def match(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (i, j) with left[i] == right[j] for (n, w) / (m, w) uint8 matrices of distinct rows.

    Sorts on the first 8 bytes as a uint64 (one radix-friendly key), then
    confirms the whole row, so the cost is one sort of n + m integers.
    """
    if len(left) == 0 or len(right) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    width = left.shape[1]
    if width < 8:
        raise ValueError("rows must be at least 8 bytes wide")
    lp = np.ascontiguousarray(left[:, :8]).view("<u8").reshape(-1)
    rp = np.ascontiguousarray(right[:, :8]).view("<u8").reshape(-1)
    order_r = np.argsort(rp, kind="stable")
    sorted_r = rp[order_r]
    pos = np.searchsorted(sorted_r, lp)
    pos_c = np.minimum(pos, len(sorted_r) - 1)
    hit = sorted_r[pos_c] == lp
    li = np.flatnonzero(hit)
    rj = order_r[pos_c[li]]
    # A prefix collision between distinct rows is possible in principle: check the remaining bytes,
    # and look at the neighbours when prefixes repeat on the right.
    if width > 8:
        full = (left[li] == right[rj]).all(axis=1)
        if not full.all():
            li, rj = _slow_confirm(left, right, lp, sorted_r, order_r, li[~full], li[full], rj[full])
    return li, rj


def _slow_confirm(left, right, lp, sorted_r, order_r, pending, li_ok, rj_ok):  # pragma: no cover - 2^-64 events
    extra_l, extra_r = [], []
    for i in pending.tolist():
        lo = np.searchsorted(sorted_r, lp[i], "left")
        hi = np.searchsorted(sorted_r, lp[i], "right")
        for k in range(lo, hi):
            j = order_r[k]
            if (left[i] == right[j]).all():
                extra_l.append(i)
                extra_r.append(j)
                break
    li = np.concatenate([li_ok, np.array(extra_l, dtype=np.int64)])
    rj = np.concatenate([rj_ok, np.array(extra_r, dtype=np.int64)])
    return li, rj
