"""SimplePIR: parameters, layout, the discrete Gaussian, and exact recovery of any column."""

from __future__ import annotations

import os

import numpy as np
import pytest

from riskshare.protocols.pir import simplepir as sp


def test_parameters_are_the_papers() -> None:
    assert (sp.LWE_N, sp.LOG_Q, sp.SIGMA) == (1024, 32, 6.4)
    assert sp.P == 256 and sp.DELTA == 2**24
    # The paper's parameter table gives p >= 294 for up to 2^20 samples: ours is smaller, so at least as correct.
    assert sp.P <= 294 and sp.MAX_COLUMNS == 2**20


def test_gaussian_errors_have_the_right_spread() -> None:
    e = sp.gaussian_errors(200_000).astype(np.int32)  # uint32 wrap-around read back as signed
    assert abs(e.mean()) < 0.1
    assert 6.2 < e.std() < 6.6
    assert np.abs(e).max() <= 64


def test_expand_a_is_deterministic_and_block_consistent() -> None:
    seed = os.urandom(16)
    whole = sp.expand_a(seed, 0, 64)
    assert np.array_equal(sp.expand_a(seed, 16, 48), whole[16:48])
    assert not np.array_equal(sp.expand_a(os.urandom(16), 0, 64), whole)


def test_hint_equals_plain_modular_product() -> None:
    rng = np.random.default_rng(1)
    d = rng.integers(0, 256, size=(40, 5000), dtype=np.uint8)
    seed = os.urandom(16)
    a = sp.expand_a(seed, 0, 5000).astype(np.uint64)
    expected = ((d.astype(np.uint64) @ a) & 0xFFFFFFFF).astype(np.uint32)  # exact: products < 2^40, sums < 2^53
    assert np.array_equal(sp._times_a(d, seed), expected)


@pytest.mark.parametrize("n", [1, 37, 3000])
def test_every_record_is_recovered_from_its_bucket_or_the_stash(n: int) -> None:
    slots = np.frombuffer(os.urandom(n * 60), np.uint8).reshape(n, 60).copy()
    selectors = np.frombuffer(os.urandom(8 * n), np.uint64).copy()
    db = sp.Database.build(slots, selectors)
    client = sp.ClientState(db.layout, db.seed, db.hint, db.stash)
    picks = np.random.default_rng(0).choice(n, size=min(n, 12), replace=False)
    columns = (selectors[picks] & np.uint64(db.layout.buckets - 1)).astype(np.int64)
    secrets, queries = client.queries(columns)
    assert queries.shape == (len(picks), db.layout.buckets) and queries.dtype == np.uint32
    got = client.recover(db.answer(queries), secrets)
    for i, p in enumerate(picks):
        in_bucket = (got[i] == slots[p]).all(axis=1).any()
        in_stash = len(db.stash) and (db.stash == slots[p]).all(axis=1).any()
        assert in_bucket or in_stash
    # The whole bucket comes back exactly, empty slots included.
    m, c, s = db.layout.buckets, db.layout.capacity, db.layout.slot_bytes
    expected_column = db.matrix[:, columns[0]].astype(np.uint8).reshape(c, s)
    assert np.array_equal(got[0], expected_column)
    assert m & (m - 1) == 0


def test_layout_keeps_the_hint_small_for_a_million_records() -> None:
    selectors = np.frombuffer(os.urandom(8 * 1_000_000), np.uint64)
    layout, stash = sp.choose_layout(selectors, slot_bytes=124)
    table_bytes = 1_000_000 * 124
    assert layout.hint_bytes / table_bytes < 0.10
    assert stash <= 1_000_000 // 256
    assert layout.query_bytes <= 1 << 20 and layout.answer_bytes < 1 << 20


@pytest.mark.parametrize("cols", [1, 2, 3, 40])
def test_modular_products_are_exact_for_any_batch(cols: int) -> None:
    rng = np.random.default_rng(cols)
    a = rng.integers(0, 2**32, size=(50, 1024), dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 2**32, size=(1024, cols), dtype=np.uint64).astype(np.uint32)
    expected = np.stack([a @ b[:, j] for j in range(cols)], axis=1)  # numpy's uint32 wrap-around
    assert np.array_equal(sp._mul_mod_q(a, b), expected)
    slots = np.frombuffer(os.urandom(300 * 40), np.uint8).reshape(300, 40).copy()
    db = sp.Database.build(slots, np.frombuffer(os.urandom(8 * 300), np.uint64).copy())
    queries = rng.integers(0, 2**32, size=(cols, db.layout.buckets), dtype=np.uint64).astype(np.uint32)
    assert np.array_equal(db.answer(queries), np.stack([db.matrix @ q for q in queries]))
