"""Per-party binning."""

from __future__ import annotations

import numpy as np
import pytest

from riskshare.errors import InputError
from riskshare.ml import binning


def test_quantile_bins_are_roughly_equal_frequency():
    x = np.random.default_rng(0).normal(size=(10000, 2))
    b = binning.fit(x, 10, "quantile")
    idx = b.transform(x)
    counts = np.bincount(idx[:, 0], minlength=10)
    assert len(counts) == 10 and counts.min() > 900 and counts.max() < 1100
    assert idx.dtype == np.uint8


def test_uniform_bins_have_equal_width_and_clip_outside_values():
    x = np.linspace(0, 10, 101).reshape(-1, 1)
    b = binning.fit(x, 5, "uniform")
    assert np.allclose(b.cuts[0], [2, 4, 6, 8])
    assert b.transform(np.array([[-5.0], [3.0], [99.0]]))[:, 0].tolist() == [0, 1, 4]


def test_ties_and_constant_columns():
    x = np.c_[np.repeat([0.0, 1.0], 50), np.ones(100)]
    b = binning.fit(x, 32)
    assert b.n_bins.tolist() == [2, 1]
    assert set(b.transform(x)[:, 0].tolist()) == {0, 1}


def test_roundtrip_json_and_errors():
    x = np.random.default_rng(1).random((100, 3))
    b = binning.fit(x, 8)
    b2 = binning.Binning.from_json(b.to_json())
    assert np.array_equal(b.transform(x), b2.transform(x))
    with pytest.raises(InputError, match="NaN"):
        binning.fit(np.array([[np.nan], [1.0]]))
    with pytest.raises(InputError, match="method"):
        binning.fit(x, 8, "kmeans")
    with pytest.raises(InputError):
        b.transform(x[:, :2])
