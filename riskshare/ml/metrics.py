"""Evaluation of binary scores: AUC, KS, lift and gain by decile, confusion matrix, PSI, curves.

Plain numpy, no scikit-learn; ties are handled exactly (average ranks for AUC,
one ROC point per distinct score).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError


def _check(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    s = np.asarray(score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise InputError(f"labels and scores must be 1-D of the same length ({y.shape} vs {s.shape})")
    if not np.all(np.isfinite(s)):
        raise InputError("scores contain NaN or infinite values")
    vals = np.unique(y)
    if not np.all(np.isin(vals, [0, 1])):
        raise InputError(f"labels must be 0/1, found {vals[:5].tolist()}")
    if len(vals) < 2:
        raise InputError("AUC and KS need both classes among the labels")
    return y.astype(np.int8), s


def roc_curve(y: np.ndarray, score: np.ndarray) -> dict[str, np.ndarray]:
    """False and true positive rates at each distinct threshold (descending), starting at (0, 0)."""
    y, s = _check(y, score)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.flatnonzero(np.diff(s_sorted)) if len(s_sorted) > 1 else np.zeros(0, dtype=np.int64)
    ends = np.r_[distinct, len(s_sorted) - 1]
    tps = np.cumsum(y_sorted)[ends]
    fps = (ends + 1) - tps
    P, N = tps[-1], fps[-1]
    return {"fpr": np.r_[0.0, fps / N], "tpr": np.r_[0.0, tps / P], "threshold": np.r_[np.inf, s_sorted[ends]]}


def auc(y: np.ndarray, score: np.ndarray) -> float:
    y, s = _check(y, score)
    ranks = _average_ranks(s)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(s: np.ndarray) -> np.ndarray:
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0  # ranks are 1-based
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def ks_curve(y: np.ndarray, score: np.ndarray) -> dict[str, np.ndarray]:
    """Cumulative share of positives and negatives captured above each threshold, and their gap."""
    roc = roc_curve(y, score)
    return {"threshold": roc["threshold"], "tpr": roc["tpr"], "fpr": roc["fpr"], "ks": roc["tpr"] - roc["fpr"]}


def ks(y: np.ndarray, score: np.ndarray) -> float:
    return float(np.max(ks_curve(y, score)["ks"]))


def deciles(y: np.ndarray, score: np.ndarray, n_groups: int = 10) -> list[dict[str, Any]]:
    """Lift and gain table: rows sorted by score (highest first) cut into equal-size groups."""
    y, s = _check(y, score)
    order = np.argsort(-s, kind="mergesort")
    groups = np.array_split(order, n_groups)
    total_pos = int(y.sum())
    base_rate = total_pos / len(y)
    rows, cum_pos, cum_n = [], 0, 0
    for k, idx in enumerate(groups, start=1):
        pos = int(y[idx].sum())
        cum_pos += pos
        cum_n += len(idx)
        rate = pos / len(idx) if len(idx) else 0.0
        rows.append({
            "decile": k, "count": int(len(idx)), "positives": pos,
            "min_score": float(s[idx].min()) if len(idx) else None,
            "max_score": float(s[idx].max()) if len(idx) else None,
            "rate": rate, "lift": rate / base_rate if base_rate else None,
            "cumulative_gain": cum_pos / total_pos if total_pos else None,
            "cumulative_lift": (cum_pos / cum_n) / base_rate if base_rate else None,
        })
    return rows


def confusion(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Counts and rates when ``score >= threshold`` predicts the positive class."""
    y, s = _check(y, score)
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    return {
        "threshold": float(threshold), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
        "accuracy": (tp + tn) / len(y), "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
    }


def psi(expected: np.ndarray, actual: np.ndarray, n_bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index of ``actual`` scores against ``expected`` (quantile bins of expected).

    PSI = Σ (a_k - e_k)·ln(a_k / e_k) over bins; < 0.1 stable, 0.1–0.25 some shift, > 0.25 major shift
    (the usual credit-scoring reading). Empty bins count as ``eps`` to keep the logarithm finite.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.size == 0 or a.size == 0:
        raise InputError("PSI needs two non-empty score sets")
    cuts = np.unique(np.quantile(e, np.arange(1, n_bins) / n_bins))
    e_share = np.bincount(np.searchsorted(cuts, e, side="right"), minlength=len(cuts) + 1) / e.size
    a_share = np.bincount(np.searchsorted(cuts, a, side="right"), minlength=len(cuts) + 1) / a.size
    e_share, a_share = np.maximum(e_share, eps), np.maximum(a_share, eps)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def report(y: np.ndarray, score: np.ndarray, threshold: float = 0.5, curve_points: int = 0) -> dict[str, Any]:
    """Everything above in one JSON-friendly document."""
    out: dict[str, Any] = {
        "n": int(len(y)), "positives": int(np.sum(np.asarray(y) == 1)),
        "auc": auc(y, score), "ks": ks(y, score),
        "confusion": confusion(y, score, threshold), "deciles": deciles(y, score),
    }
    if curve_points:
        curve = ks_curve(y, score)
        idx = np.unique(np.linspace(0, len(curve["fpr"]) - 1, curve_points).astype(int))
        out["curves"] = {k: [None if not np.isfinite(v) else float(v) for v in curve[k][idx]] for k in curve}
    return out
