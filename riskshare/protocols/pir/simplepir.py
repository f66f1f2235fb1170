"""SimplePIR: single-server index PIR from LWE, with one linear pass over the database per query.

Construction: Henzinger, Hong, Corrigan-Gibbs, Meiklejohn & Vaikuntanathan,
"One Server for the Price of Two: Simple and Fast Single-Server Private
Information Retrieval", USENIX Security 2023, §4 (SimplePIR).

The database is a matrix ``D`` of ``ℓ × m`` entries in ``Z_p``; ``A`` is a
public uniformly random ``m × n`` matrix over ``Z_q`` expanded from a seed.

* set-up (server): hint ``H = D · A`` (``ℓ × n``), downloaded once by clients;
* query for column ``j`` (client): ``qu = A·s + e + Δ·u_j``, ``s`` uniform in
  ``Z_q^n``, ``e`` discrete Gaussian, ``Δ = q/p``, ``u_j`` the j-th unit vector;
* answer (server): ``ans = D · qu`` — one pass over the database;
* recovery (client): ``round((ans − H·s) / Δ) = D[:, j]``, since
  ``ans − H·s = Δ·D[:, j] + D·e``.

The query is an LWE sample vector under the client's fresh secret ``s``, so
the server learns nothing about ``j`` under the LWE assumption (semi-honest
server; a malicious server can make the client recover garbage, which the
records' AEAD then rejects).

Parameters — the paper's, for 128-bit security (§4.2 and its parameter table,
``pir/params.csv`` in the authors' code): secret dimension ``n = 2^10``,
modulus ``q = 2^32`` (native uint32 wrap-around), error a discrete Gaussian of
standard deviation ``σ = 6.4``, secure for up to ``m = 2^20`` LWE samples (the
query length). The paper's plaintext modulus for ``m ≤ 2^20`` columns is at
least 294 (correctness error ≤ 2^-40); this module uses ``p = 2^8`` — smaller,
hence at least as correct, and one byte per entry. With ``m ≤ 2^17``, the
error term ``D·e`` has standard deviation at most ``6.4 · 255 · √m ≈ 5.9·10^5``
against a decoding margin ``Δ/2 = 2^23``: more than 14 standard deviations.

``A`` is expanded with AES-128-CTR from a 16-byte seed chosen by the server
(the paper also derives ``A`` from a seed), row block by row block so neither
side needs to hold all of it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

LWE_N = 1024
LOG_Q = 32
SIGMA = 6.4
P = 256
DELTA = 1 << (LOG_Q - 8)
MAX_COLUMNS = 1 << 20  # the parameter set covers up to 2^20 samples
SEED_BYTES = 16
_A_BLOCK = 4096  # rows of A expanded at a time (16 MiB)


@dataclass(frozen=True)
class Layout:
    """How records are laid out: ``buckets`` columns of ``capacity`` slots of ``slot_bytes`` bytes each."""

    buckets: int  # m, a power of two
    capacity: int  # record slots per bucket
    slot_bytes: int

    @property
    def rows(self) -> int:  # ℓ
        return self.capacity * self.slot_bytes

    @property
    def hint_bytes(self) -> int:
        return 4 * self.rows * LWE_N

    @property
    def query_bytes(self) -> int:
        return 4 * self.buckets

    @property
    def answer_bytes(self) -> int:
        return 4 * self.rows

    def to_json(self) -> dict:
        return {"buckets": self.buckets, "capacity": self.capacity, "slot_bytes": self.slot_bytes}


def choose_layout(bucket_selectors: np.ndarray, slot_bytes: int, *, target_load: float = 8.0,
                  max_stash_fraction: float = 1 / 256) -> tuple[Layout, int]:
    """Pick ``m`` (about ``n / target_load`` buckets, a power of two) and the capacity.

    The capacity is the smallest that leaves at most ``max(8, n · max_stash_fraction)``
    records overflowing into the stash (sent with the hint). The hint then costs
    ``4 · n_lwe · capacity`` bytes against ``n · slot`` for the table: with
    ``target_load = 8`` the capacity is ~13, so the hint is ~5 % of a 10^6-record
    table. Returns (layout, stash size).
    """
    n = len(bucket_selectors)
    buckets = 1 << max(4, min(int(math.log2(MAX_COLUMNS)), round(math.log2(max(1.0, n / target_load)))))
    loads = np.bincount((bucket_selectors & np.uint64(buckets - 1)).astype(np.int64), minlength=buckets)
    allowed = max(8, int(n * max_stash_fraction))
    # overflow(c) = sum(max(0, load - c)); take the smallest c with overflow <= allowed
    sorted_loads = np.sort(loads)
    capacity = 1
    for c in range(1, int(sorted_loads[-1]) + 2 if n else 2):
        if int(np.maximum(loads - c, 0).sum()) <= allowed:
            capacity = c
            break
    return Layout(buckets, capacity, slot_bytes), int(np.maximum(loads - capacity, 0).sum())


def expand_a(seed: bytes, row_start: int, row_stop: int) -> np.ndarray:
    """Rows ``[row_start, row_stop)`` of ``A`` (uint32, ``LWE_N`` columns) from AES-128-CTR(seed)."""
    rows = row_stop - row_start
    offset_blocks = row_start * LWE_N * 4 // 16
    counter = offset_blocks.to_bytes(16, "big")
    enc = Cipher(algorithms.AES(seed), modes.CTR(counter)).encryptor()
    stream = enc.update(bytes(rows * LWE_N * 4))
    return np.frombuffer(stream, dtype="<u4").reshape(rows, LWE_N)


_GAUSS_TAIL = 64  # 10 σ: the mass beyond is below 2^-70
_values = np.arange(-_GAUSS_TAIL, _GAUSS_TAIL + 1)
_weights = np.exp(-(_values.astype(np.float64) ** 2) / (2 * SIGMA * SIGMA))
_CDF = np.cumsum(_weights / _weights.sum())


def gaussian_errors(count: int) -> np.ndarray:
    """Discrete Gaussian samples (σ = 6.4, support ±64) as uint32 mod 2^32, by CDF inversion on OS randomness."""
    uniform = (np.frombuffer(os.urandom(8 * count), dtype="<u8") >> np.uint64(11)).astype(np.float64) * 2.0**-53
    idx = np.minimum(np.searchsorted(_CDF, uniform, side="right"), len(_values) - 1)
    return _values[idx].astype(np.int64).astype(np.uint32)


def _limbs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (x & 0xFFFF).astype(np.float64), (x >> 16).astype(np.float64)


def _wrap(x: np.ndarray) -> np.ndarray:
    """Exact float64 integers (below 2^53) reduced modulo 2^32."""
    return (x.astype(np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _mul_mod_q(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b mod 2^32`` for uint32 matrices with an inner dimension <= 2^20.

    One operand column: numpy's integer mat-vec (wraps natively). More: float64
    BLAS on 16-bit limbs (each limb product < 2^32, each sum < 2^52: exact), the
    ``hi·hi`` term vanishing modulo 2^32 — several times faster for batches.
    """
    if b.ndim == 1 or b.shape[1] <= 2:
        return a @ b
    a_lo, a_hi = _limbs(a)
    b_lo, b_hi = _limbs(b)
    low = _wrap(a_lo @ b_lo)
    mid = _wrap(a_lo @ b_hi) + _wrap(a_hi @ b_lo)
    return low + (mid << np.uint32(16))


def _mat_a_products(seed: bytes, buckets: int, secrets: np.ndarray) -> np.ndarray:
    """``A · s`` for every secret (rows of ``secrets``, shape (B, n)): a (B, m) uint32 array, A expanded blockwise."""
    out = np.empty((len(secrets), buckets), dtype=np.uint32)
    st = np.ascontiguousarray(secrets.T)  # (n, B)
    for start in range(0, buckets, _A_BLOCK):
        stop = min(start + _A_BLOCK, buckets)
        out[:, start:stop] = _mul_mod_q(expand_a(seed, start, stop), st).T
    return out


def _times_a(matrix_u8: np.ndarray, seed: bytes) -> np.ndarray:
    """``D · A mod 2^32`` for a (ℓ, m) uint8 ``D``, through float64 BLAS on 16-bit limbs of ``A``.

    Each product of a byte and a 16-bit limb is below 2^24 and each sum over at
    most 2^20 terms below 2^44, so float64 (53-bit mantissa) is exact.
    """
    rows, buckets = matrix_u8.shape
    acc = np.zeros((rows, LWE_N), dtype=np.uint64)
    for start in range(0, buckets, _A_BLOCK):
        stop = min(start + _A_BLOCK, buckets)
        block = expand_a(seed, start, stop)
        d = matrix_u8[:, start:stop].astype(np.float64)
        lo = d @ (block & 0xFFFF).astype(np.float64)
        hi = d @ (block >> 16).astype(np.float64)
        acc += lo.astype(np.uint64) + (hi.astype(np.uint64) << np.uint64(16))
    return (acc & np.uint64(0xFFFFFFFF)).astype(np.uint32)


@dataclass
class Database:
    """The server's side: the matrix, its hint and the overflow stash."""

    layout: Layout
    seed: bytes
    matrix: np.ndarray  # (ℓ, m) uint32 (bytes widened once, so each answer is one integer mat-vec)
    hint: np.ndarray  # (ℓ, n) uint32
    stash: np.ndarray  # (k, slot_bytes) uint8: records that did not fit their bucket

    @classmethod
    def build(cls, slots: np.ndarray, bucket_selectors: np.ndarray, *, layout: Layout | None = None,
              seed: bytes | None = None) -> "Database":
        """Lay ``slots`` ((n, slot_bytes) uint8) into buckets by their selectors and compute the hint."""
        n, slot_bytes = slots.shape
        if layout is None:
            layout, _ = choose_layout(bucket_selectors, slot_bytes)
        m, c = layout.buckets, layout.capacity
        bucket = (bucket_selectors & np.uint64(m - 1)).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        sorted_b = bucket[order]
        first = np.searchsorted(sorted_b, np.arange(m))
        rank = np.arange(n) - first[sorted_b]
        fits = rank < c
        cells = np.zeros((m, c, slot_bytes), dtype=np.uint8)
        cells[sorted_b[fits], rank[fits]] = slots[order[fits]]
        stash = slots[order[~fits]]
        matrix_u8 = np.ascontiguousarray(cells.reshape(m, c * slot_bytes).T)  # column j = bucket j
        seed = seed or os.urandom(SEED_BYTES)
        hint = _times_a(matrix_u8, seed)
        return cls(layout, seed, matrix_u8.astype(np.uint32), hint, np.ascontiguousarray(stash))

    def answer(self, queries: np.ndarray) -> np.ndarray:
        """``D · qu`` for every query row ((B, m) uint32): a (B, ℓ) uint32 array, one pass over ``D``.

        Few queries: integer mat-vecs. Many: float64 BLAS on 16-bit limbs of the
        queries (byte × limb < 2^24, sums over m <= 2^20 below 2^44: exact), ``D``
        converted in column blocks so the float copy stays small.
        """
        count = len(queries)
        if count <= 4:
            return np.stack([self.matrix @ q for q in queries]) if count else np.zeros((0, self.layout.rows), np.uint32)
        q_lo, q_hi = _limbs(np.ascontiguousarray(queries.T))  # (m, B)
        acc_lo = np.zeros((self.layout.rows, count), dtype=np.float64)
        acc_hi = np.zeros_like(acc_lo)
        # Blocks of columns keep the GEMMs well shaped (ℓ × 4096 times 4096 × B); the float sums
        # stay below 2^8 · 2^16 · 2^20 = 2^44, exact.
        for start in range(0, self.layout.buckets, _A_BLOCK):
            block = self.matrix[:, start : start + _A_BLOCK].astype(np.float64)
            acc_lo += block @ q_lo[start : start + _A_BLOCK]
            acc_hi += block @ q_hi[start : start + _A_BLOCK]
        out = _wrap(acc_lo) + (_wrap(acc_hi) << np.uint32(16))
        return np.ascontiguousarray(out.T)


@dataclass
class ClientState:
    """A client's view: parameters, seed, hint and stash, as downloaded once."""

    layout: Layout
    seed: bytes
    hint: np.ndarray  # (ℓ, n) uint32
    stash: np.ndarray  # (k, slot_bytes) uint8

    def prepare(self, count: int) -> list["Pad"]:
        """Key-independent parts of ``count`` queries (secret, ``A·s + e``, ``H·s``), computable ahead of time."""
        if count == 0:
            return []
        secrets = np.frombuffer(os.urandom(4 * LWE_N * count), dtype="<u4").reshape(count, LWE_N).copy()
        base = _mat_a_products(self.seed, self.layout.buckets, secrets)
        base += gaussian_errors(count * self.layout.buckets).reshape(count, self.layout.buckets)
        hs = _mul_mod_q(self.hint, np.ascontiguousarray(secrets.T)).T if count > 2 else (self.hint @ secrets.T).T
        return [Pad(secrets[i], base[i], np.ascontiguousarray(hs[i])) for i in range(count)]

    def queries(self, columns: np.ndarray, pads: list["Pad"] | None = None) -> tuple[list["Pad"], np.ndarray]:
        """Query vectors for the given bucket columns: (the pads used, queries (B, m) uint32).

        ``pads`` prepared ahead of time are used (and must not be reused); missing ones are made now.
        """
        count = len(columns)
        pads = list(pads or [])[:count]
        pads += self.prepare(count - len(pads))
        qs = np.stack([p.query_base for p in pads]) if count else np.zeros((0, self.layout.buckets), np.uint32)
        qs[np.arange(count), np.asarray(columns, dtype=np.int64)] += np.uint32(DELTA)
        return pads, qs

    def recover(self, answers: np.ndarray, pads: list["Pad"]) -> np.ndarray:
        """The requested columns, as (B, capacity, slot_bytes) uint8 record slots."""
        hs = np.stack([p.hint_product for p in pads]) if pads else np.zeros((0, self.layout.rows), np.uint32)
        noisy = answers - hs  # mod 2^32
        values = ((noisy + np.uint32(DELTA // 2)) >> np.uint32(LOG_Q - 8)).astype(np.uint8)
        return values.reshape(len(answers), self.layout.capacity, self.layout.slot_bytes)


@dataclass
class Pad:
    """One query's key-independent part: its LWE secret, ``A·s + e`` and ``H·s`` (used once)."""

    secret: np.ndarray  # (n,) uint32
    query_base: np.ndarray  # (m,) uint32
    hint_product: np.ndarray  # (ℓ,) uint32
