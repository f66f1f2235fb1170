"""WOE/IV with encrypted labels: exact against the plaintext computation on the host's own bins."""

from __future__ import annotations

import numpy as np
import pytest

from riskshare.errors import InputError, ParameterMismatch
from riskshare.ml import woe
from riskshare.ml.estimators import information_value, run_pair


def plain_iv(idx, y):
    e = np.bincount(idx, weights=y).astype(float)
    c = np.bincount(idx).astype(float)
    n = c - e
    pe, pn = e / e.sum(), n / n.sum()
    return float(np.sum((pe - pn) * np.log(pe / pn)))


def test_host_iv_equals_plaintext(breast):
    Xg, Xh, y = breast["Xg"], breast["Xh"], breast["y"]
    g, h = information_value(Xg, y, Xh, max_bin=5, min_bin_count=30, share_woe=True)
    host_feats = [f for f in g.features if f.owner == "host"]
    assert len(host_feats) == Xh.shape[1]
    for j, (gf, hf) in enumerate(zip(host_feats, h.features)):
        assert gf.cuts is None  # the guest never sees host cut points
        idx = np.searchsorted(np.asarray(hf.cuts), Xh[:, j], side="right")
        assert min(np.bincount(idx)) >= 30
        if np.all(np.bincount(idx, weights=y) > 0) and np.all(np.bincount(idx) - np.bincount(idx, weights=y) > 0):
            assert gf.iv == pytest.approx(plain_iv(idx, y), abs=1e-9)
        assert hf.iv == pytest.approx(gf.iv) and hf.woe == pytest.approx(gf.woe)
    transformed = woe.woe_transform(Xh, h.features)
    assert set(np.unique(transformed[:, 0])) <= set(h.features[0].woe)


def test_host_gets_no_woe_unless_shared(breast):
    Xg, Xh, y = breast["Xg"], breast["Xh"], breast["y"]
    _, h = information_value(Xg, y, Xh, max_bin=4, min_bin_count=20)
    assert all(f.woe == [] and f.events == [] for f in h.features)
    with pytest.raises(InputError, match="share_woe"):
        woe.woe_transform(Xh, h.features)


def test_merge_small_bins():
    idx = np.array([0] * 5 + [1] * 1 + [2] * 10 + [3] * 2)
    cuts = np.array([1.0, 2.0, 3.0])
    new_idx, new_cuts = woe.merge_small_bins(idx, cuts, 6)
    assert np.bincount(new_idx).min() >= 6
    assert new_cuts.tolist() == [2.0]


def test_zero_event_bins_are_adjusted():
    w, iv = woe.woe_iv(np.array([10, 10]), np.array([0, 5]), 0.5)
    assert np.all(np.isfinite(w)) and iv > 0


def test_parameters_must_agree(breast):
    Xg, Xh, y = breast["Xg"], breast["Xh"], breast["y"]
    with pytest.raises(ParameterMismatch, match="share_woe"):
        run_pair(lambda link: woe.iv_guest(link, "host", Xg, y, {"share_woe": True}),
                 lambda link: woe.iv_host(link, "guest", Xh, {"share_woe": False}))
