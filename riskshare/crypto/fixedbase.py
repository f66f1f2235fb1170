"""Fixed-base exponentiation with precomputed byte-window tables, and multi-exponentiation.

Encryption in Paillier and Okamoto–Uchiyama is dominated by ``base^e mod m`` for
one fixed base and many fresh exponents. With a table ``T[i][d] = base^(d·256^i)``
(the fixed-base windowing / comb method, Menezes, van Oorschot & Vanstone,
*Handbook of Applied Cryptography*, §14.6.3 and Algorithm 14.109), one such
power costs one modular multiplication per exponent byte instead of about 1.2
per exponent bit: for a 1024-bit exponent, 128 multiplications instead of ~1200.

Exponents come in as the bytes of their little-endian representation, which is
also how fresh random exponents are drawn (``os.urandom``): the bytes are the
window digits, so no big-integer conversion is needed at all.

:func:`multi_exp` computes ``prod_i c_i^(e_i)`` for many bases and small
exponents with the bucket method (Pippenger 1980; the form in Bernstein et al.,
"Faster batch forgery identification", 2012, §4): ``ceil(b/w)·(n + 2^(w+1))``
multiplications instead of about ``1.5·b·n``.
"""

from __future__ import annotations

from typing import Sequence

import gmpy2
import numpy as np
from gmpy2 import mpz

WINDOW_BITS = 8


class FixedBase:
    """``base^e mod modulus`` for exponents of at most ``max_bits`` bits, one multiplication per byte."""

    def __init__(self, base: int, modulus: int, max_bits: int) -> None:
        self.modulus = mpz(modulus)
        self.max_bits = int(max_bits)
        self.n_bytes = (self.max_bits + 7) // 8
        m = self.modulus
        rows: list[list[mpz]] = []
        step = mpz(base) % m  # base^(256^i)
        for _ in range(self.n_bytes):
            row = [mpz(1)] * 256
            acc = mpz(1)
            for d in range(1, 256):
                acc = acc * step % m
                row[d] = acc
            rows.append(row)
            step = acc * step % m  # base^(256^(i+1)) = (base^(255·256^i))·base^(256^i)
        self.rows = rows

    def pow_digits(self, digits: np.ndarray) -> list[mpz]:
        """``base^e`` for each row of ``digits`` (uint8, little-endian bytes of e, width <= n_bytes)."""
        if digits.ndim != 2 or digits.shape[1] > self.n_bytes:
            raise ValueError(f"exponent digits must be (n, <= {self.n_bytes}) bytes")
        m = self.modulus
        rows = self.rows
        width = digits.shape[1]
        out: list[mpz] = []
        append = out.append
        for row in digits.tolist():
            acc = rows[0][row[0]]
            for i in range(1, width):
                d = row[i]
                if d:
                    acc = acc * rows[i][d] % m
            append(acc)
        return out

    def pow_ints(self, exponents: Sequence[int]) -> list[mpz]:
        """``base^e`` for non-negative integer exponents below ``2^max_bits``."""
        return self.pow_digits(int_digits(exponents, self.n_bytes))


def int_digits(values: Sequence[int], n_bytes: int) -> np.ndarray:
    """Little-endian byte digits of non-negative integers, as an (n, n_bytes) uint8 matrix."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu" and n_bytes >= 8:
        arr = values.astype("<u8", copy=False)
        out = np.zeros((len(arr), n_bytes), dtype=np.uint8)
        out[:, :8] = arr.reshape(-1, 1).view(np.uint8).reshape(-1, 8)
        return out
    blob = b"".join(int(v).to_bytes(n_bytes, "little") for v in values)
    return np.frombuffer(blob, dtype=np.uint8).reshape(len(values), n_bytes)


def random_digits(count: int, bits: int) -> np.ndarray:
    """Uniform random exponents of ``bits`` bits from the OS CSPRNG, as little-endian byte digits."""
    import os

    n_bytes = (bits + 7) // 8
    digits = np.frombuffer(os.urandom(count * n_bytes), dtype=np.uint8).reshape(count, n_bytes).copy()
    extra = n_bytes * 8 - bits
    if extra:
        digits[:, -1] &= np.uint8(0xFF >> extra)
    return digits


def multi_exp(bases: Sequence[mpz], exponents: Sequence[int], modulus: int, window: int | None = None) -> mpz:
    """``prod_i bases[i]^exponents[i] mod modulus`` for non-negative exponents (bucket method)."""
    m = mpz(modulus)
    pairs = [(b, int(e)) for b, e in zip(bases, exponents) if e]
    if not pairs:
        return mpz(1)
    max_bits = max(e.bit_length() for _, e in pairs)
    n = len(pairs)
    if n < 8 or max_bits <= 4:
        acc = mpz(1)
        for b, e in pairs:
            acc = acc * gmpy2.powmod(b, e, m) % m
        return acc
    if window is None:
        # cost ~ (b/w)(n + 2^(w+1)): pick the w that minimises it
        window = min(range(2, 17), key=lambda w: -(-max_bits // w) * (n + (2 << w)))
    w = window
    mask = (1 << w) - 1
    n_windows = -(-max_bits // w)
    result = mpz(1)
    for k in range(n_windows - 1, -1, -1):
        if k != n_windows - 1:
            for _ in range(w):
                result = result * result % m
        shift = k * w
        buckets: list[mpz | None] = [None] * (mask + 1)
        for b, e in pairs:
            d = (e >> shift) & mask
            if d:
                cur = buckets[d]
                buckets[d] = b if cur is None else cur * b % m
        # sum_d d·B_d via running products from the top bucket down
        running = None
        total = None
        for d in range(mask, 0, -1):
            bd = buckets[d]
            if bd is not None:
                running = bd if running is None else running * bd % m
            if running is not None:
                total = running if total is None else total * running % m
        if total is not None:
            result = result * total % m
    return result
