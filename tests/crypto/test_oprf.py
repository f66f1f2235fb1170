"""OPRF(ristretto255, SHA-512) against RFC 9497's published test vectors, and its batched API."""

from __future__ import annotations


import numpy as np
import pytest

from riskshare.crypto import oprf
from riskshare.crypto.workers import WORKERS, chunk_size
from riskshare.errors import ConfigError, ProtocolError

# RFC 9497, Appendix A.1.1 (OPRF(ristretto255, SHA-512), mode 0x00).
SEED = bytes.fromhex("a3" * 32)
KEY_INFO = bytes.fromhex("74657374206b6579")  # "test key"
SK_SM = "5ebcea5ee37023ccb9fc2d2019f9d7737be85591ae8652ffa9ef0f4d37063b0e"
BLIND = "64d37aed22a27f5191de1c1d69fadb899d8862b58eb4220029e036ec4c1f6706"
VECTORS = [
    {
        "input": "00",
        "blinded": "609a0ae68c15a3cf6903766461307e5c8bb2f95e7e6550e1ffa2dc99e412803c",
        "evaluation": "7ec6578ae5120958eb2db1745758ff379e77cb64fe77b0b2d8cc917ea0869c7e",
        "output": "527759c3d9366f277d8c6020418d96bb393ba2afb20ff90df23fb7708264e2f3"
                  "ab9135e3bd69955851de4b1f9fe8a0973396719b7912ba9ee8aa7d0b5e24bcf6",
    },
    {
        "input": "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a",
        "blinded": "da27ef466870f5f15296299850aa088629945a17d1f5b7f5ff043f76b3c06418",
        "evaluation": "b4cbf5a4f1eeda5a63ce7b77c7d23f461db3fcab0dd28e4e17cecb5c90d02c25",
        "output": "f4a74c9c592497375e796aa837e907b1a045d34306a749db9f34221f7e750cb4"
                  "f2a6413a6bf6fa5e19ba6348eb673934a722a7ede2e7621306d18951e7cf2c73",
    },
]


def _rows(hex_values: list[str]) -> np.ndarray:
    return np.frombuffer(b"".join(bytes.fromhex(h) for h in hex_values), dtype=np.uint8).reshape(len(hex_values), -1)


def test_context_string_is_the_rfc_one() -> None:
    assert oprf.HASH_TO_GROUP_DST.hex() == (
        "48617368546f47726f75702d4f50524656312d002d72697374726574746f3235352d534841353132"
    )


def test_expand_message_xmd_rfc9380_vector() -> None:
    # RFC 9380, Appendix K.3 (expand_message_xmd(SHA-512)), msg "abcdef0123456789", len 0x20.
    out = oprf.expand_message_xmd_sha512(b"abcdef0123456789", b"QUUX-V01-CS02-with-expander-SHA512-256", 0x20)
    assert out.hex() == "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58"


def test_derive_key_pair() -> None:
    assert oprf.OprfKey.derive(SEED, KEY_INFO).secret.hex() == SK_SM


def test_rfc9497_vectors_batched() -> None:
    key = oprf.OprfKey.derive(SEED, KEY_INFO)
    inputs = [bytes.fromhex(v["input"]) for v in VECTORS]
    blinded = oprf.blind(inputs, blinds=_rows([BLIND, BLIND]))
    assert [r.tobytes().hex() for r in blinded.elements] == [v["blinded"] for v in VECTORS]
    evaluated = key.blind_evaluate(blinded.elements)
    assert [r.tobytes().hex() for r in evaluated] == [v["evaluation"] for v in VECTORS]
    outputs = oprf.finalize(blinded, evaluated)
    assert [r.tobytes().hex() for r in outputs] == [v["output"] for v in VECTORS]
    # The server's direct evaluation gives the same outputs without any blinding.
    assert [r.tobytes().hex() for r in key.evaluate(inputs)] == [v["output"] for v in VECTORS]


def test_many_inputs_across_threads_match_direct_evaluation() -> None:
    key = oprf.OprfKey.generate()
    inputs = [f"91310000MA{i:08d}".encode() for i in range(5000)]  # more than one chunk
    blinded = oprf.blind(inputs)
    outputs = oprf.finalize(blinded, key.blind_evaluate(blinded.elements))
    direct = key.evaluate(inputs)
    assert np.array_equal(outputs, direct)
    assert len({r.tobytes() for r in direct}) == len(inputs)
    # Blinded elements are fresh each time: the same input never looks the same to the server.
    again = oprf.blind(inputs[:10])
    assert not (again.elements == blinded.elements[:10]).all(axis=1).any()


def test_different_keys_give_unrelated_outputs() -> None:
    inputs = [b"A", b"B"]
    a, b = oprf.OprfKey.generate(), oprf.OprfKey.generate()
    assert a.key_id != b.key_id
    assert not (a.evaluate(inputs) == b.evaluate(inputs)).all(axis=1).any()


def test_key_serialisation_roundtrip_and_damage() -> None:
    key = oprf.OprfKey.generate()
    again = oprf.OprfKey.from_bytes(key.to_bytes())
    assert again.secret == key.secret and again.key_id == key.key_id
    assert key.secret.hex() not in repr(key)
    with pytest.raises(ConfigError):
        oprf.OprfKey.from_bytes(b"garbage")
    with pytest.raises(ConfigError):
        oprf.OprfKey.from_bytes(key.to_bytes()[:-1])
    with pytest.raises(ValueError):
        oprf.OprfKey(b"\xff" * 32)  # not reduced modulo the group order


def test_invalid_elements_from_a_peer_are_refused() -> None:
    key = oprf.OprfKey.generate()
    good = oprf.blind([b"x", b"y"]).elements
    bad = good.copy()
    bad[1] = np.frombuffer(b"\xff" * 32, dtype=np.uint8)  # not a canonical encoding
    with pytest.raises(ProtocolError):
        key.blind_evaluate(bad)
    identity = good.copy()
    identity[0] = 0
    with pytest.raises(ProtocolError):
        key.blind_evaluate(identity)
    blinded = oprf.blind([b"x", b"y"])
    with pytest.raises(ProtocolError):
        oprf.finalize(blinded, bad)
    with pytest.raises(ProtocolError):
        oprf.finalize(blinded, good[:1])


def test_random_scalars_are_distinct_and_invertible() -> None:
    scalars = oprf.random_scalars(64)
    assert len({r.tobytes() for r in scalars}) == 64
    assert oprf.available()


def test_batch_inversion_matches_libsodium() -> None:
    import ctypes

    scalars = oprf.random_scalars(100)
    inverses = oprf._invert(scalars)
    lib = oprf._sodium()
    for row, inv in zip(scalars, inverses):
        out = ctypes.create_string_buffer(32)
        src = ctypes.create_string_buffer(row.tobytes(), 32)
        assert lib.scalar_invert(ctypes.addressof(out), ctypes.addressof(src)) == 0
        assert out.raw == inv.tobytes()


@pytest.mark.parametrize("n", [2049, 4096, 5000, 10_000, 1_000_000])
def test_batches_split_into_equal_chunks_a_multiple_of_the_threads(n):
    """No chunk runs alone at the end while the other cores wait (10^4 keys: 6 x 1,667, not 5 x 2,048)."""
    size = chunk_size(n, oprf._CHUNK)
    chunks = -(-n // size)
    assert size <= oprf._CHUNK and chunks * size >= n > (chunks - 1) * size
    assert chunks % WORKERS == 0
