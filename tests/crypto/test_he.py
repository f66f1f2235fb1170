"""Additively homomorphic encryption: both schemes through the one interface."""

from __future__ import annotations

import json

import gmpy2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskshare.crypto import he
from riskshare.crypto.fixedbase import FixedBase, multi_exp
from riskshare.errors import ProtocolError

SCHEMES = ["paillier", "ou"]


@pytest.fixture(scope="module", params=SCHEMES)
def sk(request):
    return he.generate_keypair(request.param, 2048)


def test_key_sizes(sk):
    pk = sk.public_key
    assert pk.key_bits == 2048
    assert pk.ciphertext_bytes == (512 if pk.scheme == "paillier" else 256)
    assert pk.plaintext_bits >= (2040 if pk.scheme == "paillier" else 679)


def test_roundtrip_edge_values(sk):
    pk = sk.public_key
    top = (1 << pk.plaintext_bits) - 1
    values = [0, 1, -1, 2**62, -(2**62), 2**64 + 7, top, -top]
    assert sk.decrypt_list(pk.encrypt(values)) == values
    assert sk.decrypt_list(sk.encrypt(values)) == values  # key owner's CRT path


def test_encrypt_refuses_values_out_of_range(sk):
    pk = sk.public_key
    with pytest.raises(he.PlaintextOverflow):
        pk.encrypt([1 << pk.plaintext_bits])
    with pytest.raises(he.PlaintextOverflow):
        sk.encrypt([-(1 << pk.plaintext_bits)])
    with pytest.raises(TypeError):
        pk.encrypt(np.array([0.5]))


def test_encryption_is_randomised(sk):
    pk = sk.public_key
    a, b = pk.encrypt([7, 7]).values
    c = sk.encrypt([7]).values[0]
    assert len({a, b, c}) == 3
    r = pk.rerandomize(pk.encrypt([7]))
    assert sk.decrypt(r) == 7


def test_homomorphic_operations_with_negatives(sk):
    pk = sk.public_key
    x = [5, -3, 0, 1000, -(2**70)]
    y = [-5, 4, 0, -1001, 2**69]
    ex, ey = pk.encrypt(x), sk.encrypt(y)
    assert sk.decrypt_list(pk.add(ex, ey)) == [a + b for a, b in zip(x, y)]
    assert sk.decrypt_list(pk.sub(ex, ey)) == [a - b for a, b in zip(x, y)]
    assert sk.decrypt_list(pk.neg(ex)) == [-a for a in x]
    assert sk.decrypt_list(pk.add_plain(ex, y)) == [a + b for a, b in zip(x, y)]
    k = [3, -2, 7, 0, -1]
    assert sk.decrypt_list(pk.mul_scalar(ex, k)) == [a * b for a, b in zip(x, k)]
    assert sk.decrypt_list(pk.mul_scalar(ex, -4)) == [-4 * a for a in x]
    assert sk.decrypt(pk.sum(ex)) == sum(x)


def test_dot_matches_plaintext(sk):
    pk = sk.public_key
    rng = np.random.default_rng(1)
    d = rng.integers(-(2**40), 2**40, size=40)
    mat = rng.integers(-(2**30), 2**30, size=(3, 40))
    mat[1, :] = 0
    mat[2, ::2] = np.abs(mat[2, ::2])
    got = sk.decrypt_list(pk.dot(mat, pk.encrypt(d)))
    want = [sum(int(a) * int(b) for a, b in zip(row, d)) for row in mat]
    assert got == want


@pytest.mark.parametrize("workers, from_wire", [(1, False), (2, False), (2, True)])
def test_histogram_matches_plaintext_sums(sk, monkeypatch, workers, from_wire):
    """Encrypted group sums equal plaintext ones, in-process and split over workers, with empty groups."""
    pk = sk.public_key
    monkeypatch.setattr(he, "HISTOGRAM_PARALLEL_MIN", 10)
    rng = np.random.default_rng(2)
    d = rng.integers(-(2**40), 2**40, size=300)
    groups = np.c_[rng.integers(0, 7, 300), 7 + rng.integers(0, 5, 300)]  # group 12 stays empty
    ct = pk.encrypt(d)
    if from_wire:
        ct = pk.ciphertexts_from_bytes(pk.ciphertexts_to_bytes(ct))
        assert ct.wire is not None and ct[5:9].wire.shape == (4, pk.ciphertext_bytes)
    sums = pk.histogram(ct, groups, 13, workers=workers)
    want = [int(d[(groups == g).any(axis=1)].sum()) for g in range(13)]
    assert sk.decrypt_list(sums) == want
    assert sums.values[12] == 1  # empty: to be re-randomised before it is sent
    with pytest.raises(ValueError, match="group numbers"):
        pk.histogram(ct, groups, int(groups.max()))
    with pytest.raises(ValueError, match="integer matrix"):
        pk.histogram(ct, groups[:-1], 13)


def test_overflow_is_detected_on_decrypt(sk):
    pk = sk.public_key
    big = (1 << pk.plaintext_bits) - 1
    c = pk.mul_scalar(pk.encrypt([big]), 2)  # 2·big is outside the signed range
    with pytest.raises(he.PlaintextOverflow):
        sk.decrypt(c)


def test_ciphertext_bytes_roundtrip_and_checks(sk):
    pk = sk.public_key
    ct = pk.encrypt([1, -2, 3])
    rows = ct.to_bytes()
    assert rows.dtype == np.uint8 and rows.shape == (3, pk.ciphertext_bytes)
    back = pk.ciphertexts_from_bytes(rows, peer="bank", step="s")
    assert sk.decrypt_list(back) == [1, -2, 3]

    zero = rows.copy()
    zero[1] = 0
    with pytest.raises(he.InvalidCiphertext, match="out-of-range"):
        pk.ciphertexts_from_bytes(zero)
    too_big = rows.copy()
    too_big[0] = 255
    with pytest.raises(he.InvalidCiphertext, match="out-of-range"):
        pk.ciphertexts_from_bytes(too_big)
    # a multiple of the secret prime is in range but not a unit
    p = sk.p
    bad = np.frombuffer(int(p * 12345).to_bytes(pk.ciphertext_bytes, "big"), dtype=np.uint8).reshape(1, -1)
    with pytest.raises(he.InvalidCiphertext, match="non-invertible"):
        pk.ciphertexts_from_bytes(np.vstack([rows, bad]))
    with pytest.raises(he.InvalidCiphertext, match="shape"):
        pk.ciphertexts_from_bytes(rows[:, 1:])
    assert issubclass(he.InvalidCiphertext, ProtocolError)


def test_public_key_serialisation(sk):
    pk = sk.public_key
    doc = json.dumps(pk.to_json())
    pk2 = he.load_public_key(doc)
    assert pk2.fingerprint == pk.fingerprint
    c = pk2.encrypt([42, -42])
    # a ciphertext made with the reloaded key decrypts with the original secret key
    assert sk.decrypt_list(he.EncryptedVector(pk, c.values)) == [42, -42]


@pytest.mark.parametrize("doc", [
    b"not json", {"scheme": "rsa"}, {"scheme": "paillier", "n": "zz", "hs": "1", "bits": 2048},
    {"scheme": "paillier", "n": "4", "hs": "1", "bits": 3},
    {"scheme": "ou", "n": "ff", "G": "2", "H": "3", "bits": 8, "p_bits": 3, "t_bits": 1},
])
def test_malformed_public_keys_are_refused(doc):
    with pytest.raises(ProtocolError):
        he.load_public_key(doc)


def test_parallel_encryption_and_decryption_agree(sk):
    pk = sk.public_key
    values = list(range(-700, 700))
    ct = sk.encrypt(values, workers=2)
    assert sk.decrypt_list(ct, workers=2) == values
    assert sk.decrypt_list(pk.encrypt(values[:600], workers=2), workers=1) == values[:600]


def test_paillier_interoperates_with_python_paillier():
    """python-paillier (phe) uses the same g = n + 1 scheme: each side decrypts the other's ciphertexts."""
    phe = pytest.importorskip("phe")
    sk = he.generate_keypair("paillier", 2048)
    pk = sk.public_key
    ref_pub = phe.PaillierPublicKey(int(pk.n))
    ref_priv = phe.PaillierPrivateKey(ref_pub, int(sk.p), int(sk.q))
    ours = pk.encrypt([123456789, -5])
    assert ref_priv.raw_decrypt(int(ours.values[0])) == 123456789
    assert ref_priv.raw_decrypt(int(ours.values[1])) == int(pk.n) - 5
    theirs = [ref_pub.raw_encrypt(v) for v in (987654321, int(pk.n) - 77)]
    assert sk.decrypt_list(he.EncryptedVector(pk, [gmpy2.mpz(c) for c in theirs])) == [987654321, -77]


def test_key_size_option():
    with pytest.raises(he.InputError):
        he.generate_keypair("paillier", 1024)
    with pytest.raises(he.InputError):
        he.generate_keypair("elgamal", 2048)


@pytest.mark.slow
def test_3072_bit_keys():
    for scheme in SCHEMES:
        sk = he.generate_keypair(scheme, 3072)
        assert sk.public_key.key_bits == 3072
        assert sk.decrypt_list(sk.public_key.encrypt([-9, 9])) == [-9, 9]


# -- fixed point, packing, fixed-base tables, multi-exponentiation ----------------


def test_fixed_point_precision():
    fp = he.FixedPoint(40)
    x = np.array([0.0, -1.0, 0.123456789, 1e-9, -3.5e6])
    enc = fp.encode(x)
    assert enc.dtype == np.int64
    assert np.max(np.abs(fp.decode(enc) - x)) <= 2.0**-41
    with pytest.raises(he.InputError):
        fp.encode(np.array([np.nan]))
    huge = fp.encode(np.array([1e30]))
    assert huge.dtype == object and abs(fp.decode(huge)[0] - 1e30) / 1e30 < 1e-15


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**40), 2**40), st.integers(-(2**40), 2**40), st.integers(0, 2**40)),
                min_size=1, max_size=30))
def test_pack_unpack_sums(rows):
    cols = [list(c) for c in zip(*rows)]
    packed = he.pack(cols, 52)
    total = sum(packed)
    assert he.unpack([total], 3, 52) == [[sum(c)] for c in cols]
    assert he.unpack(packed, 3, 52) == cols


def test_pack_refuses_values_too_wide():
    with pytest.raises(he.PlaintextOverflow):
        he.pack([[1 << 60]], 52)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 2**200), min_size=1, max_size=5))
def test_fixed_base_matches_powmod(exps):
    m = gmpy2.next_prime(2**255) * gmpy2.next_prime(2**300)
    fb = FixedBase(7, m, 208)
    assert fb.pow_ints(exps) == [gmpy2.powmod(7, e, m) for e in exps]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(2, 2**64), st.integers(0, 2**45)), min_size=0, max_size=70))
def test_multi_exp_matches_naive(pairs):
    m = gmpy2.next_prime(2**127) * gmpy2.next_prime(2**130)
    want = gmpy2.mpz(1)
    for b, e in pairs:
        want = want * gmpy2.powmod(b, e, m) % m
    assert multi_exp([gmpy2.mpz(b) for b, _ in pairs], [e for _, e in pairs], m) == want
