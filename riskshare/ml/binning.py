"""Per-party feature binning: equal-frequency (quantile) or equal-width cut points.

Each party bins only its own columns; cut points never leave their owner.
A bin index is ``searchsorted(cuts, x, side="right")``: bin 0 holds values
below the first cut, bin k values in ``[cuts[k-1], cuts[k])``, like XGBoost's
histogram method. Values outside the training range fall into the first or
last bin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import InputError

Method = Literal["quantile", "uniform"]
METHODS = ("quantile", "uniform")


@dataclass
class Binning:
    """Cut points per feature (inner boundaries only; ``len(cuts[j]) + 1`` bins)."""

    cuts: list[np.ndarray]
    method: str
    max_bin: int

    @property
    def n_bins(self) -> np.ndarray:
        return np.array([len(c) + 1 for c in self.cuts], dtype=np.int64)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Bin indices, shape (n, d), uint8 (uint16 when max_bin > 255)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.cuts):
            raise InputError(f"expected {len(self.cuts)} feature columns, got {X.shape[1] if X.ndim == 2 else X.shape}")
        dtype = np.uint8 if self.max_bin <= 256 else np.uint16
        out = np.empty(X.shape, dtype=dtype)
        for j, cuts in enumerate(self.cuts):
            out[:, j] = np.searchsorted(cuts, X[:, j], side="right")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "max_bin": self.max_bin, "cuts": [c.tolist() for c in self.cuts]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "Binning":
        return cls([np.asarray(c, dtype=np.float64) for c in doc["cuts"]], str(doc["method"]), int(doc["max_bin"]))


def _quantile_cuts(col: np.ndarray, max_bin: int) -> np.ndarray:
    """Equal-frequency cuts at data values: every distinct value gets its own bin when there are at most
    ``max_bin`` of them (as XGBoost's histogram method does); otherwise, for each target rank
    k·n/max_bin, the distinct value whose mid-rank is nearest."""
    values, counts = np.unique(col, return_counts=True)
    if len(values) <= max_bin:
        return values[1:]
    mid = np.cumsum(counts) - counts / 2.0
    targets = np.arange(1, max_bin) * (len(col) / max_bin)
    j = np.clip(np.searchsorted(mid, targets), 1, len(values) - 1)
    nearer_left = (targets - mid[j - 1]) <= (mid[j] - targets)
    j = np.where(nearer_left, j - 1, j)
    cuts = np.unique(values[j])
    return cuts[cuts > values[0]]  # a cut at the minimum would leave bin 0 empty


def fit(X: np.ndarray, max_bin: int = 32, method: str = "quantile") -> Binning:
    """Cut points for each column of ``X`` (at most ``max_bin`` bins per feature)."""
    if method not in METHODS:
        raise InputError(f"unknown binning method '{method}'", hint=f"use one of: {', '.join(METHODS)}")
    if not 2 <= max_bin <= 65535:
        raise InputError(f"max_bin must be between 2 and 65535, not {max_bin}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise InputError("binning needs a non-empty 2-D feature matrix")
    if not np.all(np.isfinite(X)):
        raise InputError("features contain NaN or infinite values", hint="impute or remove them before binning")
    cuts = []
    for j in range(X.shape[1]):
        col = X[:, j]
        if method == "quantile":
            c = _quantile_cuts(col, max_bin)
        else:
            lo, hi = float(col.min()), float(col.max())
            c = np.linspace(lo, hi, max_bin + 1)[1:-1] if hi > lo else np.zeros(0)
        cuts.append(np.asarray(c, dtype=np.float64))
    return Binning(cuts, method, int(max_bin))
