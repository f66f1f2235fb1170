import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from riskshare.crypto import aes

# FIPS-197 Appendix C.1 (AES-128)
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
PLAIN = bytes.fromhex("00112233445566778899aabbccddeeff")
CIPHER = bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a")


def test_ecb_matches_fips197_vector_in_bulk():
    blocks = np.frombuffer(PLAIN * 1000, dtype=np.uint64).reshape(1000, 2).copy()
    out = aes.ecb_encrypt(KEY, blocks)
    assert out.tobytes() == CIPHER * 1000
    assert aes.ecb_encrypt(KEY, blocks[:1]).tobytes() == CIPHER


def test_prg_matrix_rows_are_ctr_keystreams():
    seeds = [bytes([i]) * 16 for i in range(5)]
    nonce = bytes(range(16))
    matrix = aes.prg_matrix(seeds, 100, nonce)
    for seed, row in zip(seeds, matrix):
        enc = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor()
        assert row.tobytes() == enc.update(bytes(100))


def test_prg_matrix_pieces_join_into_the_whole_stream():
    seeds = [bytes([i + 7]) * 16 for i in range(3)]
    for nonce in (bytes(range(16)), b"\xff" * 15 + b"\xfe"):  # the second wraps the 128-bit counter
        whole = aes.prg_matrix(seeds, 160, nonce)
        pieces = np.concatenate([aes.prg_matrix(seeds, 48, nonce, offset=0),
                                 aes.prg_matrix(seeds, 64, nonce, offset=48),
                                 aes.prg_matrix(seeds, 48, nonce, offset=112)], axis=1)
        assert (pieces == whole).all()


def test_hash_rows_is_the_chained_mmo():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 2**64, size=(50, 8), dtype=np.uint64)
    h = aes.FixedKeyAes(KEY)
    state = h.mmo(rows[:, 0:2].copy())
    for b in (2, 4, 6):
        state = h.mmo(state ^ rows[:, b : b + 2])
    assert (h.hash_rows(rows, 16) == state.view(np.uint8).reshape(50, 16)).all()
    assert h.hash_rows(rows, 10).shape == (50, 10)
    # every block matters
    changed = rows.copy()
    changed[:, 5] ^= np.uint64(1)
    assert not (h.hash_rows(changed, 16) == h.hash_rows(rows, 16)).all(axis=1).any()


def test_cbc_mac_with_and_without_lengths():
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 2**64, size=(20, 3, 2), dtype=np.uint64)
    full = aes.cbc_mac_rows(KEY, blocks)
    assert (aes.cbc_mac_rows(KEY, blocks, np.full(20, 3)) == full).all()
    two = aes.cbc_mac_rows(KEY, blocks, np.full(20, 2))
    assert (two == aes.cbc_mac_rows(KEY, blocks[:, :2].copy())).all()
    assert not (two == full).all(axis=1).any()
