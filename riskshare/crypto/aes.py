"""AES (OpenSSL, through ``cryptography``) on bulk numpy buffers: PRG, fixed-key hashing, keyed compression.

These are the symmetric building blocks of the OT-extension protocols. Every
function works on whole arrays in one OpenSSL call per array (AES-NI/VAES run
at several GB/s here), never on one record at a time.

* :func:`prg_matrix` — AES-128-CTR keystreams: the PRG that stretches a 16-byte
  seed (a base-OT output) into a long column of an OT-extension matrix.
* :class:`FixedKeyAes` — the random-permutation model π(x) = AES_k(x) for a
  fixed, public key k (Bellare, Hoang, Keelveedhi, Rogaway, "Efficient
  garbling from a fixed-key blockcipher", S&P 2013; Guo, Katz, Wang, Yu,
  "Efficient and secure multiparty computation from fixed-key block ciphers",
  S&P 2020). :meth:`FixedKeyAes.mmo` is the Matyas–Meyer–Oseas function
  π(x) ⊕ x, which is correlation robust for 128-bit inputs (Guo et al. §6).
  :meth:`FixedKeyAes.hash_rows` hashes a wide row (several 128-bit blocks) by
  iterating it, ``h_1 = mmo(x_1)``, ``h_i = mmo(h_{i-1} ⊕ x_i)``: each
  block's secret bits enter the chaining value before π is applied, and the
  feed-forward keeps π from being inverted, so an adversary must guess all of
  the secret bits together (unlike a XOR of per-block hashes, which falls to
  a meet-in-the-middle search).
* :func:`cbc_mac_rows` — length-prepended CBC-MAC (a PRF on variable-length
  messages, Bellare, Kilian & Rogaway 2000; Petrank & Rackoff 2000) over many
  short messages at once, used with a fresh per-run key to compress IDs of any
  length to 128 bits.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16


def _as_bytes(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    return array.reshape(-1).view(np.uint8)


def ecb_encrypt(key: bytes, blocks: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """AES-ECB of a C-contiguous array whose size is a multiple of 16 bytes; same shape and dtype back."""
    src = _as_bytes(blocks)
    if src.size % BLOCK:
        raise ValueError("AES-ECB input must be a whole number of 16-byte blocks")
    result = np.empty_like(blocks) if out is None else out
    if src.size == 0:
        return result
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    # update_into wants block_size - 1 bytes of slack; encrypt all but the last block in place,
    # then the last block separately, so no output copy is needed.
    dst = result.reshape(-1).view(np.uint8)
    if src.size > BLOCK:
        encryptor.update_into(src[:-BLOCK], _slack_view(dst, src.size - BLOCK))
    dst[-BLOCK:] = np.frombuffer(encryptor.update(src[-BLOCK:].tobytes()), dtype=np.uint8)
    return result


def _slack_view(dst: np.ndarray, length: int) -> np.ndarray:
    # dst has at least `length + BLOCK` bytes: the slack OpenSSL asks for lies inside dst.
    return dst[: length + BLOCK - 1]


_ZEROS = np.zeros(0, dtype=np.uint8)


def _zeros(n: int) -> memoryview:
    global _ZEROS
    if _ZEROS.size < n:
        _ZEROS = np.zeros(max(n, 1 << 20), dtype=np.uint8)
    return memoryview(_ZEROS)


def prg_matrix(seeds: list[bytes], nbytes: int, nonce: bytes = bytes(16), offset: int = 0) -> np.ndarray:
    """A (len(seeds), nbytes) uint8 matrix whose row j is bytes [offset, offset + nbytes) of the CTR
    keystream of seeds[j] (``offset`` a multiple of 16), so a long stream can be made piece by piece.

    Rows are written straight into one buffer: each ``update_into`` may spill
    its slack into the next row, which is overwritten right after.
    """
    if offset % BLOCK:
        raise ValueError("keystream offsets are whole blocks")
    counter = ((int.from_bytes(nonce, "big") + offset // BLOCK) % (1 << 128)).to_bytes(BLOCK, "big")
    rows = len(seeds)
    flat = np.empty(rows * nbytes + BLOCK, dtype=np.uint8)
    zeros = _zeros(nbytes)[:nbytes]
    for j, seed in enumerate(seeds):
        encryptor = Cipher(algorithms.AES(seed), modes.CTR(counter)).encryptor()
        start = j * nbytes
        encryptor.update_into(zeros, flat[start : start + nbytes + BLOCK - 1])
    return flat[: rows * nbytes].reshape(rows, nbytes)


class FixedKeyAes:
    """π(x) = AES_k(x) for a fixed key, on arrays of 128-bit blocks held as (…, 2) uint64."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 16:
            raise ValueError("fixed AES keys are 16 bytes")
        self.key = key

    def permute(self, blocks: np.ndarray) -> np.ndarray:
        return ecb_encrypt(self.key, blocks)

    def mmo(self, blocks: np.ndarray) -> np.ndarray:
        """π(x) ⊕ x, blockwise."""
        out = ecb_encrypt(self.key, blocks)
        np.bitwise_xor(out, blocks, out=out)
        return out

    def hash_rows(self, rows: np.ndarray, out_bytes: int = 16) -> np.ndarray:
        """Hash each row of an (n, 2k) uint64 array (k blocks) to ``out_bytes`` ≤ 16 bytes: (n, out_bytes) uint8."""
        if rows.ndim != 2 or rows.shape[1] % 2:
            raise ValueError("rows must be (n, 2k) uint64")
        return self.hash_blocks((rows[:, b : b + 2] for b in range(0, rows.shape[1], 2)), out_bytes)

    def hash_blocks(self, blocks: Iterable[np.ndarray], out_bytes: int = 16) -> np.ndarray:
        """The chained MMO hash of rows given block by block: each item is the (n, 2) uint64 block b of every row."""
        if not 0 < out_bytes <= 16:
            raise ValueError("output is at most one block")
        state: np.ndarray | None = None
        for block in blocks:
            if state is None:
                state = np.ascontiguousarray(block, dtype=np.uint64).copy()
            else:
                np.bitwise_xor(state, block, out=state)
            state = self.mmo(state)
        if state is None:
            raise ValueError("nothing to hash")
        n = len(state)
        return np.ascontiguousarray(state.view(np.uint8).reshape(n, 16)[:, :out_bytes])


def cbc_mac_rows(key: bytes, blocks: np.ndarray, nblocks: np.ndarray | None = None) -> np.ndarray:
    """CBC-MAC under ``key`` of n messages held as (n, L, 2) uint64 blocks; message i uses its first
    nblocks[i] blocks (all L when ``nblocks`` is None).

    The caller makes the encoding prefix-free (its first block carries the
    message length), which makes CBC-MAC a PRF on messages of any length.
    Returns (n, 2) uint64.
    """
    n, width, _ = blocks.shape
    state = np.zeros((n, 2), dtype=np.uint64)
    for b in range(width):
        if nblocks is None:
            np.bitwise_xor(state, blocks[:, b, :], out=state)
            state = ecb_encrypt(key, state)
            continue
        idx = np.flatnonzero(nblocks > b)
        if idx.size == 0:
            break
        state[idx] = ecb_encrypt(key, state[idx] ^ blocks[idx, b, :])
    return state
