import os

import numpy as np
import pyarrow as pa
import pytest

from riskshare.protocols.psi import hashing


def test_compress_ids_is_deterministic_per_key_and_injective_in_practice():
    ids = pa.array(["A", "B", "AB", "", "X" * 16, "X" * 17, "客户一", "91350100M000100Y43"])
    key = os.urandom(16)
    a = hashing.compress_ids(ids, key)
    assert (a == hashing.compress_ids(ids, key)).all()
    assert len({row.tobytes() for row in a}) == len(ids)
    assert not (a == hashing.compress_ids(ids, os.urandom(16))).all(axis=1).any()
    # order and chunking do not matter, only the ID
    chunked = pa.chunked_array([ids[:3], ids[3:]])
    assert (hashing.compress_ids(chunked, key) == a).all()
    assert (hashing.compress_ids(ids[::-1], key) == a[::-1]).all()
    # zero padding inside a block cannot make two lengths collide
    assert not (hashing.compress_ids(pa.array(["A\x00"]), key) == hashing.compress_ids(pa.array(["A"]), key)).all()


@pytest.mark.parametrize("n", [1, 2, 10, 1000, 50_000])
@pytest.mark.parametrize("stash", [0, 3])
def test_cuckoo_places_every_value_in_one_of_its_bins(n, stash):
    values = np.random.default_rng(n).integers(0, 2**64, size=(n, 2), dtype=np.uint64)
    m = hashing.bins_for(n)
    cand = hashing.candidates(values, os.urandom(16), m)
    table = hashing.cuckoo(cand, m, stash)
    placed = table.bins[table.bins >= 0]
    stashed = table.stash[table.stash >= 0]
    assert sorted(np.concatenate([placed, stashed]).tolist()) == list(range(n))
    occupied = np.flatnonzero(table.bins >= 0)
    assert (cand[table.bins[occupied], table.hash_index[occupied]] == occupied).all()


def test_overfull_table_raises_so_the_caller_retries():
    cand = np.zeros((5, 3), dtype=np.int64)  # five values that all want bin 0
    with pytest.raises(hashing.CuckooFailure):
        hashing.cuckoo(cand, 4, stash=2)
    table = hashing.cuckoo(cand, 4, stash=4)
    assert (table.stash >= 0).sum() == 4 and table.bins[0] >= 0


def test_buckets_are_in_range():
    values = np.random.default_rng(0).integers(0, 2**64, size=(10_000, 2), dtype=np.uint64)
    b = hashing.bucket_of(values, os.urandom(16), 7)
    assert b.min() == 0 and b.max() == 6
    assert np.bincount(b).min() > 1200
