"""Batched, related-key OPRF from OT extension (KKRT16, "BaRK-OPRF").

Kolesnikov, Kumaresan, Rosulek & Trieu, "Efficient Batched Oblivious PRF with
Applications to Private Set Intersection", CCS 2016. The IKNP OT extension
(Ishai, Kilian, Nissim & Petrank, CRYPTO 2003) with the receiver's choice
rows replaced by codewords of a pseudorandom code C, so one extended OT
instance i gives the receiver F_i(x_i) for its own x_i, while the sender can
evaluate F_i(y) on any y. Semi-honest security.

Parameters (κ = 128 computational, λ = 40 statistical):

* Code width w = 512 = 4 AES blocks: C(x) = AES_{k1}(x) ‖ … ‖ AES_{k4}(x) on
  128-bit inputs, a pseudorandom code with fresh keys chosen by the sender in
  each run (KKRT16 §4: a PRC whose codewords for the inputs in use are at
  distance ≥ κ). For two distinct inputs the distance is Binomial(512, 1/2);
  by the Chernoff bound P[d < 128] ≤ 2^-(512·D(1/4‖1/2)) = 2^-96.6, so over
  the ≤ 2^50 input pairs of any run the bound fails with probability
  ≤ 2^-46 < 2^-λ. (KKRT16 use 424–448 bits with a tighter analysis; 512 keeps
  rows on AES-block and machine-word boundaries for 17 % more traffic.)
* w base OTs (Chou–Orlandi, :mod:`.base`) with roles reversed, as in IKNP: the
  OPRF sender picks a secret s ∈ {0,1}^w, the OPRF receiver supplies the
  seed pairs. Columns are stretched with AES-128-CTR (:func:`..aes.prg_matrix`).
* Output hash H: the chained fixed-key MMO of :meth:`..aes.FixedKeyAes.hash_blocks`
  over the four 128-bit blocks of a row (KKRT16 model H as a random oracle);
  the caller truncates to λ + log2(number of compared pairs) bits.

Messages (receiver R with m inputs, sender S)::

    base OTs (w, reversed roles)         S learns t_{s_j, j} = G(k_{s_j, j})
    S -> R  the PRC keys (4 x 16 bytes)
    R -> S  U = (T0 ⊕ T1) ⊕ C(X), as m rows of w bits      (m · w / 8 bytes)
    R       F(i, x_i) = H(T0_i)
    S       Q_i = T_s,i ⊕ (U_i ∧ s) = T0_i ⊕ (C(x_i) ∧ s);  F(i, y) = H(Q_i ⊕ (C(y) ∧ s))

All three bit-matrix transpositions touch only PRG output (T0, T0 ⊕ T1 on R,
T_s on S): U travels in row layout, so no transposition waits for the inputs,
and :func:`sender_setup` / :func:`receiver_setup` run before the inputs are ready.
Matrices are row-major (m, w/64) uint64 (:mod:`..bitmatrix`): the 512-bit row
of an instance is one cache line, so the sender's scattered lookups Q_i cost
one memory access each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ...net import Link
from .. import aes
from ..bitmatrix import rows_from_column_chunks
from . import base

WIDTH = 512  # code width w in bits
WORDS = WIDTH // 64
CODE_BLOCKS = WIDTH // 128
HASH_KEY = bytes.fromhex("72697368617265206b6b727420682121")  # the fixed public key of π (any constant works)


def padded_rows(m: int) -> int:
    """Instances come in whole 64 x 64 bit blocks: a multiple of 64, at least 64."""
    return max(64, -(-m // 64) * 64)


def _prg_nonce(session: bytes, which: int) -> bytes:
    return session[:15] + bytes([which])


def _prg_rows(seeds: list[bytes], m: int, nonce: bytes, xor_seeds: list[bytes] | None = None
              ) -> tuple[np.ndarray, ...]:
    """Rows (m, w/64) of the matrix whose column j is the PRG stream of seeds[j]; with ``xor_seeds``,
    also the rows of that matrix ⊕ the one of xor_seeds[j] (T0 and T0 ⊕ T1 from one pass over the streams).

    The streams are made and transposed piece by piece (:func:`..bitmatrix.rows_from_column_chunks`).
    """

    def piece(start: int, stop: int) -> tuple[np.ndarray, ...]:
        cols = aes.prg_matrix(seeds, 8 * (stop - start), nonce, offset=8 * start).view(np.uint64)
        if xor_seeds is None:
            return (cols,)
        other = aes.prg_matrix(xor_seeds, 8 * (stop - start), nonce, offset=8 * start).view(np.uint64)
        np.bitwise_xor(other, cols, out=other)
        return cols, other

    return rows_from_column_chunks(len(seeds), m // 64, piece, 1 if xor_seeds is None else 2)


def _block(rows: np.ndarray, b: int) -> np.ndarray:
    """A contiguous copy of the 128-bit block b of every (m, w/64) row: (m, 2) uint64.

    Moved as one 16-byte item per row (a "V16" view): numpy is slow on an inner axis of two words.
    """
    return np.ascontiguousarray(rows.view("V16")[:, b]).view(np.uint64).reshape(-1, 2)


def _code(keys: list[bytes], inputs: np.ndarray) -> np.ndarray:
    """C(x) = AES_k1(x) ‖ … ‖ AES_k4(x) of each (n, 2) uint64 input, as (n, w/64) uint64 rows."""
    code = np.empty((len(inputs), WORDS), dtype=np.uint64)
    slots = code.view("V16")
    for b, key in enumerate(keys):
        slots[:, b] = aes.ecb_encrypt(key, inputs).view("V16").reshape(-1)
    return code


@dataclass
class OprfKey:
    """The sender's side of one batch of m OPRF instances: evaluates F(i, y) for any instance i and input y."""

    s: np.ndarray  # (w/64,) uint64: the secret choice bits
    q: np.ndarray  # (m, w/64) uint64 rows of Q
    code_keys: list[bytes]
    rows: int

    def evaluate(self, instances: np.ndarray, inputs: np.ndarray, out_bytes: int) -> np.ndarray:
        """F(instances[k], inputs[k]) for each k, inputs as (n, 2) uint64: (n, out_bytes) uint8."""
        instances = np.asarray(instances, dtype=np.int64)
        if instances.size and (instances.min() < 0 or instances.max() >= self.rows):
            raise ValueError("OPRF instance out of range")
        rows = self.q.take(instances, axis=0)  # Q_i, one cache line each
        code = _code(self.code_keys, np.ascontiguousarray(inputs, dtype=np.uint64))
        np.bitwise_and(code, self.s, out=code)
        np.bitwise_xor(rows, code, out=rows)  # Q_i ⊕ (C(y) ∧ s)
        return aes.FixedKeyAes(HASH_KEY).hash_blocks((_block(rows, b) for b in range(CODE_BLOCKS)), out_bytes)


@dataclass
class SenderSetup:
    """The sender after the base OTs and the PRG, before the receiver's correction matrix arrives."""

    s: np.ndarray
    ts: np.ndarray  # (m, w/64) rows of T_s
    code_keys: list[bytes]
    rows: int

    def finish(self, link: Link, peer: str, tag: str = "kkrt") -> OprfKey:
        """Receive U and return the key: Q = T_s ⊕ (U ∧ s)."""
        m = self.rows
        u = link.recv_array(peer, f"{tag}/u", dtype="<u8", shape=(m, WORDS))
        np.bitwise_and(u, self.s, out=u)
        q = self.ts
        np.bitwise_xor(q, u, out=q)
        self.ts = np.zeros((0, WORDS), dtype=np.uint64)  # the key owns Q now
        return OprfKey(s=self.s, q=q, code_keys=self.code_keys, rows=m)


def sender_setup(link: Link, peer: str, m: int, session: bytes, tag: str = "kkrt") -> SenderSetup:
    """Input-independent part of the sender's side (base OTs, PRG, transposition) for m instances."""
    if m % 64 or m <= 0:
        raise ValueError("m must be a positive multiple of 64")
    s_bits = np.frombuffer(os.urandom(WIDTH // 8), dtype=np.uint8)
    choices = np.unpackbits(s_bits, bitorder="little")
    seeds = base.receive(link, peer, choices, session, tag=f"{tag}/base")
    code_keys = [os.urandom(16) for _ in range(CODE_BLOCKS)]
    link.send(peer, f"{tag}/code", b"".join(code_keys))
    (ts,) = _prg_rows(seeds, m, _prg_nonce(session, 0))
    return SenderSetup(s=s_bits.view(np.uint64).copy(), ts=ts, code_keys=code_keys, rows=m)


def send(link: Link, peer: str, m: int, session: bytes, tag: str = "kkrt") -> OprfKey:
    """The OPRF sender's side of m instances (a multiple of 64): returns the key to evaluate F with."""
    return sender_setup(link, peer, m, session, tag).finish(link, peer, tag)


@dataclass
class ReceiverSetup:
    """The receiver after the base OTs and the PRG: rows of T0 and of T0 ⊕ T1."""

    t0: np.ndarray
    d: np.ndarray
    code_keys: list[bytes]
    rows: int

    def finish(self, link: Link, peer: str, inputs: np.ndarray, out_bytes: int, tag: str = "kkrt") -> np.ndarray:
        """Send U = (T0 ⊕ T1) ⊕ C(inputs); return F(i, inputs[i]) for (m, 2) uint64 inputs: (m, out_bytes) uint8."""
        m = self.rows
        if inputs.shape != (m, 2):
            raise ValueError(f"expected ({m}, 2) inputs")
        np.bitwise_xor(self.d, _code(self.code_keys, np.ascontiguousarray(inputs, dtype=np.uint64)), out=self.d)
        link.send(peer, f"{tag}/u", self.d)
        self.d = np.zeros((0, WORDS), dtype=np.uint64)
        return aes.FixedKeyAes(HASH_KEY).hash_blocks((_block(self.t0, b) for b in range(CODE_BLOCKS)), out_bytes)


def receiver_setup(link: Link, peer: str, m: int, session: bytes, tag: str = "kkrt") -> ReceiverSetup:
    """Input-independent part of the receiver's side (base OTs, PRG, transpositions) for m instances."""
    if m % 64 or m <= 0:
        raise ValueError("m must be a positive multiple of 64")
    pairs = base.send(link, peer, WIDTH, session, tag=f"{tag}/base")
    raw = link.recv_bytes(peer, f"{tag}/code", exact=16 * CODE_BLOCKS)
    code_keys = [raw[16 * b : 16 * b + 16] for b in range(CODE_BLOCKS)]
    nonce = _prg_nonce(session, 0)
    t0, d = _prg_rows([k0 for k0, _ in pairs], m, nonce, xor_seeds=[k1 for _, k1 in pairs])  # T0, T0 ⊕ T1
    return ReceiverSetup(t0=t0, d=d, code_keys=code_keys, rows=m)


def receive(link: Link, peer: str, inputs: np.ndarray, session: bytes, out_bytes: int, tag: str = "kkrt") -> np.ndarray:
    """The OPRF receiver's side: F(i, inputs[i]) for (m, 2) uint64 inputs, m a multiple of 64; (m, out_bytes) uint8."""
    return receiver_setup(link, peer, len(inputs), session, tag).finish(link, peer, inputs, out_bytes, tag)


__all__ = ["WIDTH", "OprfKey", "SenderSetup", "ReceiverSetup", "send", "receive", "sender_setup",
           "receiver_setup", "padded_rows"]
