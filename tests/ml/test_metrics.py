"""Evaluation metrics against brute-force definitions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskshare.errors import InputError
from riskshare.ml import metrics


def brute_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def brute_ks(y, s):
    best = 0.0
    for t in np.unique(s):
        tpr = np.mean(s[y == 1] >= t)
        fpr = np.mean(s[y == 0] >= t)
        best = max(best, tpr - fpr)
    return best


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 20)), min_size=2, max_size=60))
def test_auc_and_ks_match_definitions_with_ties(rows):
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows], dtype=float)
    if len(np.unique(y)) < 2:
        with pytest.raises(InputError):
            metrics.auc(y, s)
        return
    assert metrics.auc(y, s) == pytest.approx(brute_auc(y, s))
    assert metrics.ks(y, s) == pytest.approx(brute_ks(y, s))


def test_roc_curve_endpoints_and_monotone():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = rng.random(500) + 0.3 * y
    roc = metrics.roc_curve(y, s)
    assert roc["fpr"][0] == 0 and roc["tpr"][0] == 0 and roc["fpr"][-1] == 1 and roc["tpr"][-1] == 1
    assert np.all(np.diff(roc["fpr"]) >= 0) and np.all(np.diff(roc["tpr"]) >= 0)
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(metrics.auc(y, s))


def test_deciles_confusion_and_psi():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 1000)
    s = rng.random(1000) + 0.5 * y
    table = metrics.deciles(y, s)
    assert len(table) == 10 and sum(r["count"] for r in table) == 1000
    assert sum(r["positives"] for r in table) == y.sum()
    assert table[-1]["cumulative_gain"] == pytest.approx(1.0)
    assert table[0]["lift"] > 1 > table[-1]["lift"]
    c = metrics.confusion(y, s, 0.75)
    assert c["tp"] + c["fp"] + c["fn"] + c["tn"] == 1000
    assert c["tp"] == int(np.sum((s >= 0.75) & (y == 1)))
    assert metrics.psi(s, s) == pytest.approx(0.0, abs=1e-12)
    assert metrics.psi(s, s + 0.5) > 0.25  # a shifted population is flagged
    rep = metrics.report(y, s, curve_points=11)
    assert rep["auc"] == metrics.auc(y, s) and len(rep["curves"]["ks"]) <= 11


def test_bad_inputs_are_refused():
    with pytest.raises(InputError, match="0/1"):
        metrics.auc(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(InputError, match="NaN"):
        metrics.ks(np.array([0, 1]), np.array([np.nan, 0.2]))
    with pytest.raises(InputError, match="same length"):
        metrics.auc(np.array([0, 1, 1]), np.array([0.1, 0.2]))
