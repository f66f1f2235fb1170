"""The entry point: every protocol and mode against the plaintext answer, buckets, auto, agreement."""

import threading

import numpy as np

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskshare.errors import InputError, ParameterMismatch
from riskshare.net import memory_pair
from riskshare.protocols import psi
from riskshare.protocols.psi import auto, buckets
from riskshare.psi import intersect, intersection_size, run_local

ids = st.lists(st.text(alphabet="abcAB1２ ", min_size=1, max_size=4), max_size=25)


def _plain(left, right):
    from riskshare.psi import _distinct
    a, b = set(_distinct(left, "upper").to_pylist()), set(_distinct(right, "upper").to_pylist())
    return sorted(a & b)


@settings(max_examples=15, deadline=None)
@given(left=ids, right=ids)
@pytest.mark.parametrize("protocol", ["ecdh", "ot", "auto", "unbalanced"])
def test_intersection_equals_plaintext(protocol, left, right):
    assert intersect(left, right, protocol=protocol) == _plain(left, right)


@settings(max_examples=10, deadline=None)
@given(left=ids, right=ids)
def test_count_mode_equals_plaintext(left, right):
    r, s, _, _ = run_local(left, right, protocol="auto", output_mode="count")
    assert r.size == s.size == len(_plain(left, right))
    assert r.indices is None and s.indices is None


@pytest.mark.parametrize("protocol", ["ecdh", "ot"])
@pytest.mark.parametrize("bucket_size", [64, 10_000])
def test_buckets_and_result_to_both(protocol, bucket_size):
    left = [f"id{i}" for i in range(700)]
    right = [f"ID{i}" for i in range(300, 1000)] + ["only-right"]
    r, s, r_ids, s_ids = run_local(left, right, protocol=protocol, result_to="both", bucket_size=bucket_size)
    expect = _plain(left, right)
    assert sorted(r_ids.take(r.indices).to_pylist()) == expect
    assert sorted(s_ids.take(s.indices).to_pylist()) == expect
    assert r.details["buckets"] == (1 if bucket_size > 1000 else 11)


@pytest.mark.parametrize("left,right", [([], []), (["a"], []), ([], ["a"]), (["a"], ["A"]), (["x"] * 3, ["y"])])
def test_edge_sizes_with_buckets(left, right):
    assert intersect(left, right, protocol="ot", bucket_size=1) == _plain(left, right)


def test_unequal_sizes_and_full_overlap_through_auto():
    small = [f"k{i}" for i in range(50)]
    big = [f"k{i}" for i in range(6000)]
    r, _, r_ids, _ = run_local(small, big, protocol="auto")
    assert r.protocol == "ot" and sorted(r_ids.take(r.indices).to_pylist()) == sorted(s.upper() for s in small)
    assert intersection_size(big, big, protocol="ecdh") == 6000


def test_auto_rule():
    assert auto.choose(10, 10, "intersection") == "ecdh"
    assert auto.choose(10, 10**6, "intersection") == "ot"
    assert auto.choose(10**6, 10**6, "count") == "ecdh"


def test_bucket_capacity_is_public_and_covers_the_mean():
    assert buckets.capacity(1000, 1) == 1000
    cap = buckets.capacity(10**7, 10)
    assert 10**6 < cap < 1.01 * 10**6


def test_protocol_mismatch_is_caught_before_data_moves():
    r, s = memory_pair("r", "s", timeout=10)
    out = {}

    def sender():
        try:
            psi.run(s, "r", "sender", ["a"], protocol="ecdh")
        except ParameterMismatch as exc:
            out["e"] = exc

    t = threading.Thread(target=sender)
    t.start()
    with pytest.raises(ParameterMismatch, match="protocol"):
        psi.run(r, "s", "receiver", ["a"], protocol="ot")
    t.join()
    assert "e" in out
    assert not any(tag.startswith("bucket") for tag in r.stats.by_tag())


def test_unknown_protocol_and_unsupported_mode():
    r, _ = memory_pair("r", "s")
    with pytest.raises(InputError, match="unknown PSI protocol"):
        psi.run(r, "s", "receiver", ["a"], protocol="fast")
    with pytest.raises(InputError):
        run_local(["a"], ["a"], protocol="ot", output_mode="count")


def test_result_to_both_in_process_for_unbalanced():
    r, s, r_ids, s_ids = run_local(["a", "b", "x"], ["B", "c", "A"], protocol="unbalanced", result_to="both")
    assert sorted(r_ids.take(r.indices).to_pylist()) == ["A", "B"]
    assert sorted(s_ids.take(s.indices).to_pylist()) == ["A", "B"]


def test_a_cuckoo_failure_is_retried_with_a_fresh_key_before_the_key_is_sent(monkeypatch):
    from riskshare.protocols.psi import hashing, ot

    calls = {"n": 0}
    real = hashing.cuckoo

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise hashing.CuckooFailure("simulated")
        return real(*args, **kwargs)

    monkeypatch.setattr(ot.hashing, "cuckoo", flaky)
    left = [f"id{i}" for i in range(5000)]
    r, _, r_ids, _ = run_local(left, left[:100], protocol="ot")
    assert calls["n"] == 2 and r.size == 100  # nothing lost
    assert r.details["buckets"] == 1


def test_bucket_overflow_moves_both_sides_to_a_fresh_key(monkeypatch):
    from riskshare.protocols.psi import hashing

    real = hashing.bucket_of
    calls = []

    def skewed(values, key, count):
        calls.append(key)
        if len(calls) == 1:  # the receiver's first attempt piles everything into bucket 0
            return np.zeros(len(values), dtype=np.int64)
        return real(values, key, count)

    monkeypatch.setattr(buckets.hashing, "bucket_of", skewed)
    left = [f"id{i}" for i in range(400)]
    right = [f"id{i}" for i in range(200, 600)]
    r, s, r_ids, _ = run_local(left, right, protocol="ot", bucket_size=100)
    assert sorted(r_ids.take(r.indices).to_pylist()) == _plain(left, right)
    assert len(calls) == 4 and len(set(calls)) == 2  # both sides tried two keys, the same two
