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
Rows live in the row-block layout of :mod:`..bitmatrix`; instance i = 64 t + r
sits at flat position k = r · (m/64) + t of each 64-column group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ...net import Link
from .. import aes
from ..bitmatrix import columns_to_rows, row_index
from . import base

WIDTH = 512  # code width w in bits
GROUPS = WIDTH // 64
CODE_BLOCKS = WIDTH // 128
HASH_KEY = bytes.fromhex("72697368617265206b6b727420682121")  # the fixed public key of π (any constant works)


def padded_rows(m: int) -> int:
    """Instances come in whole 64 x 64 bit blocks: a multiple of 64, at least 64."""
    return max(64, -(-m // 64) * 64)


def instance_of_position(m: int) -> np.ndarray:
    """For each flat position k of the row-block layout, the instance stored there."""
    words = m // 64
    k = np.arange(m, dtype=np.int64)
    return 64 * (k % words) + k // words


def _prg_nonce(session: bytes, which: int) -> bytes:
    return session[:15] + bytes([which])


@dataclass
class OprfKey:
    """The sender's side of one batch of m OPRF instances: evaluates F(i, y) for any instance i and input y."""

    s: np.ndarray  # (8,) uint64: the secret choice bits, one word per 64-column group
    q: np.ndarray  # (8, 64, m/64) uint64 row blocks of Q
    code_keys: list[bytes]
    rows: int

    def evaluate(self, instances: np.ndarray, inputs: np.ndarray, out_bytes: int) -> np.ndarray:
        """F(instances[k], inputs[k]) for each k, inputs as (n, 2) uint64: (n, out_bytes) uint8."""
        instances = np.asarray(instances, dtype=np.int64)
        if instances.size and (instances.min() < 0 or instances.max() >= self.rows):
            raise ValueError("OPRF instance out of range")
        pos = row_index(instances, self.rows // 64)
        flat = self.q.reshape(GROUPS, -1)
        inputs = np.ascontiguousarray(inputs, dtype=np.uint64)

        def blocks() -> Iterator[np.ndarray]:
            for b, key in enumerate(self.code_keys):
                block = aes.ecb_encrypt(key, inputs)  # C(y), block b
                np.bitwise_and(block, self.s[2 * b : 2 * b + 2], out=block)
                block[:, 0] ^= flat[2 * b].take(pos)
                block[:, 1] ^= flat[2 * b + 1].take(pos)
                yield block

        return aes.FixedKeyAes(HASH_KEY).hash_blocks(blocks(), out_bytes)


@dataclass
class SenderSetup:
    """The sender after the base OTs and the PRG, before the receiver's correction matrix arrives."""

    s: np.ndarray
    ts: np.ndarray  # (8, 64, m/64) row blocks of T_s
    code_keys: list[bytes]
    rows: int

    def finish(self, link: Link, peer: str, tag: str = "kkrt") -> OprfKey:
        """Receive U and return the key: Q = T_s ⊕ (U ∧ s)."""
        m = self.rows
        u = link.recv_array(peer, f"{tag}/u", dtype="<u8", shape=(GROUPS, 64, m // 64))
        q = self.ts
        for g in range(GROUPS):  # one 64-column group at a time (s is one word per group)
            np.bitwise_and(u[g], self.s[g], out=u[g])
            np.bitwise_xor(q[g], u[g], out=q[g])
        self.ts = np.zeros((GROUPS, 64, 0), dtype=np.uint64)  # the key owns Q now
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
    ts = columns_to_rows(aes.prg_matrix(seeds, m // 8, _prg_nonce(session, 0)).view(np.uint64))
    return SenderSetup(s=s_bits.view(np.uint64).copy(), ts=ts, code_keys=code_keys, rows=m)


def send(link: Link, peer: str, m: int, session: bytes, tag: str = "kkrt") -> OprfKey:
    """The OPRF sender's side of m instances (a multiple of 64): returns the key to evaluate F with."""
    return sender_setup(link, peer, m, session, tag).finish(link, peer, tag)


@dataclass
class ReceiverSetup:
    """The receiver after the base OTs and the PRG: T0 and T0 ⊕ T1 in row-block layout."""

    t0: np.ndarray
    d: np.ndarray
    code_keys: list[bytes]
    rows: int

    def finish(self, link: Link, peer: str, inputs: np.ndarray, out_bytes: int, tag: str = "kkrt") -> np.ndarray:
        """Send U = (T0 ⊕ T1) ⊕ C(inputs); return F(i, inputs[i]) for (m, 2) uint64 inputs: (m, out_bytes) uint8."""
        m = self.rows
        if inputs.shape != (m, 2):
            raise ValueError(f"expected ({m}, 2) inputs")
        words = m // 64
        d = self.d
        # Encrypting the inputs in layout order puts each code block's two words straight into two group planes.
        order = instance_of_position(m)
        laid_out = np.ascontiguousarray(np.asarray(inputs, dtype=np.uint64)[order])
        for b, key in enumerate(self.code_keys):
            block = aes.ecb_encrypt(key, laid_out)
            d[2 * b] ^= block[:, 0].reshape(64, words)
            d[2 * b + 1] ^= block[:, 1].reshape(64, words)
        link.send(peer, f"{tag}/u", d)
        self.d = np.zeros((GROUPS, 64, 0), dtype=np.uint64)
        flat = self.t0.reshape(GROUPS, m)

        def blocks() -> Iterator[np.ndarray]:
            for b in range(CODE_BLOCKS):
                yield np.stack([flat[2 * b], flat[2 * b + 1]], axis=1)

        out = np.empty((m, out_bytes), dtype=np.uint8)
        out[order] = aes.FixedKeyAes(HASH_KEY).hash_blocks(blocks(), out_bytes)
        return out


def receiver_setup(link: Link, peer: str, m: int, session: bytes, tag: str = "kkrt") -> ReceiverSetup:
    """Input-independent part of the receiver's side (base OTs, PRG, transpositions) for m instances."""
    if m % 64 or m <= 0:
        raise ValueError("m must be a positive multiple of 64")
    pairs = base.send(link, peer, WIDTH, session, tag=f"{tag}/base")
    raw = link.recv_bytes(peer, f"{tag}/code", exact=16 * CODE_BLOCKS)
    code_keys = [raw[16 * b : 16 * b + 16] for b in range(CODE_BLOCKS)]
    nonce = _prg_nonce(session, 0)
    t0 = aes.prg_matrix([k0 for k0, _ in pairs], m // 8, nonce).view(np.uint64)
    d = aes.prg_matrix([k1 for _, k1 in pairs], m // 8, nonce).view(np.uint64)
    np.bitwise_xor(d, t0, out=d)
    return ReceiverSetup(t0=columns_to_rows(t0), d=columns_to_rows(d), code_keys=code_keys, rows=m)


def receive(link: Link, peer: str, inputs: np.ndarray, session: bytes, out_bytes: int, tag: str = "kkrt") -> np.ndarray:
    """The OPRF receiver's side: F(i, inputs[i]) for (m, 2) uint64 inputs, m a multiple of 64; (m, out_bytes) uint8."""
    return receiver_setup(link, peer, len(inputs), session, tag).finish(link, peer, inputs, out_bytes, tag)


__all__ = ["WIDTH", "OprfKey", "SenderSetup", "ReceiverSetup", "send", "receive", "sender_setup",
           "receiver_setup", "padded_rows"]
