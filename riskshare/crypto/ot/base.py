"""Base oblivious transfers: Chou–Orlandi "simplest OT" over edwards25519 (libsodium via PyNaCl).

Chou & Orlandi, "The Simplest Protocol for Oblivious Transfer", LATINCRYPT
2015, in its batched form (one sender key for all instances, the instance
index and both public points hashed into every key). Semi-honest security
under the computational Diffie–Hellman assumption in the prime-order subgroup
of edwards25519 (order ℓ ≈ 2^252, ~128-bit security), with the key
derivation hash (SHA-256) modelled as a random oracle.

Random-OT form, which is what OT extension needs::

    S: a <- Z_l, A = aG                         S -> R  A
    R: b_j <- Z_l, B_j = b_j G + c_j A          R -> S  B_1..B_k
    R: k_j = H(j, A, B_j, b_j A)                      (= k_{c_j, j})
    S: k_{0,j} = H(j, A, B_j, a B_j),  k_{1,j} = H(j, A, B_j, a B_j - a A)

The sender learns nothing about the choice bits c (B_j is uniform either
way); the receiver learns k_{c_j, j} and nothing about k_{1-c_j, j}. Every
received point is checked to be a canonical point of the prime-order
subgroup (``crypto_core_ed25519_is_valid_point``) before use.
"""

from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np
from nacl import bindings as sodium

from ...errors import ProtocolError
from ...net import Link
from ..workers import WORKERS, pool

POINT = 32
KEY = 16


def _scalar() -> bytes:
    return sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))


def _point(raw: bytes, peer: str, step: str) -> bytes:
    if len(raw) != POINT or not sodium.crypto_core_ed25519_is_valid_point(raw):
        raise ProtocolError(f"peer '{peer}' sent an invalid curve point in step '{step}'")
    return raw


def _kdf(session: bytes, j: int, a_pub: bytes, b_pub: bytes, shared: bytes) -> bytes:
    h = hashlib.sha256(b"riskshare/ot/chou-orlandi/v1" + session + j.to_bytes(4, "little") + a_pub + b_pub + shared)
    return h.digest()[:KEY]


def _parallel(fn, items: Sequence) -> list:
    chunk = max(1, -(-len(items) // WORKERS))
    parts = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    futures = [pool("baseot").submit(lambda p: [fn(*x) for x in p], part) for part in parts]
    return [y for fut in futures for y in fut.result()]


def send(link: Link, peer: str, count: int, session: bytes, tag: str = "ot/base") -> list[tuple[bytes, bytes]]:
    """Run ``count`` random OTs as the sender; return the (k0, k1) key pairs."""
    a = _scalar()
    a_pub = sodium.crypto_scalarmult_ed25519_base_noclamp(a)
    link.send(peer, f"{tag}/A", a_pub)
    raw = link.recv_array(peer, f"{tag}/B", dtype=np.uint8, shape=(count, POINT))
    b_pubs = [_point(bytes(row), peer, f"{tag}/B") for row in raw]
    a_a = sodium.crypto_scalarmult_ed25519_noclamp(a, a_pub)

    def keys(j: int, b_pub: bytes) -> tuple[bytes, bytes]:
        shared0 = sodium.crypto_scalarmult_ed25519_noclamp(a, b_pub)
        shared1 = sodium.crypto_core_ed25519_sub(shared0, a_a)
        return _kdf(session, j, a_pub, b_pub, shared0), _kdf(session, j, a_pub, b_pub, shared1)

    return _parallel(keys, list(enumerate(b_pubs)))


def receive(link: Link, peer: str, choices: np.ndarray, session: bytes, tag: str = "ot/base") -> list[bytes]:
    """Run random OTs as the receiver with choice bits ``choices`` (0/1 array); return k_{c_j, j}."""
    a_pub = _point(link.recv_bytes(peer, f"{tag}/A", exact=POINT), peer, f"{tag}/A")

    def blind(j: int, c: int) -> tuple[bytes, bytes]:
        b = _scalar()
        b_pub = sodium.crypto_scalarmult_ed25519_base_noclamp(b)
        if c:
            b_pub = sodium.crypto_core_ed25519_add(b_pub, a_pub)
        return b, b_pub

    blinded = _parallel(blind, [(j, int(c)) for j, c in enumerate(choices)])
    link.send(peer, f"{tag}/B", np.frombuffer(b"".join(bp for _, bp in blinded), dtype=np.uint8).reshape(-1, POINT))

    def key(j: int, b: bytes, b_pub: bytes) -> bytes:
        return _kdf(session, j, a_pub, b_pub, sodium.crypto_scalarmult_ed25519_noclamp(b, a_pub))

    return _parallel(key, [(j, b, bp) for j, (b, bp) in enumerate(blinded)])
