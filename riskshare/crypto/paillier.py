"""Paillier encryption (Paillier, EUROCRYPT 1999) with the Damgård–Jurik–Nielsen fast randomness.

Scheme (s = 1 of Damgård–Jurik, PKC 2001; g = n + 1 as in Damgård–Jurik and
python-paillier)::

    keygen   n = p·q, p and q random primes of bits/2 bits, gcd(n, (p-1)(q-1)) = 1
             x <- Z_n^*,  h = -x^2 mod n,  h_s = h^n mod n^2            public key (n, h_s)
    encrypt  c = (1 + m·n) · h_s^a mod n^2,   a <- {0,1}^ceil(bits/2)
    decrypt  m = L_p(c^(p-1) mod p^2)·hp mod p, the same mod q, CRT;   L_p(u) = (u-1)/p
             (Paillier 1999, §7; the CRT form of python-paillier / Catalano et al.)

The randomness ``h_s^a`` with a short exponent of ``ceil(bits/2)`` bits is the
variant of Damgård, Jurik & Nielsen, "A generalization of Paillier's public-key
system with applications to electronic voting" (IJIS 2010, §4.1 "a faster
encryption"), the one SecretFlow HEU calls "Zahlen"; it is semantically secure
under the decisional composite residuosity assumption plus the assumption that
``h^a`` for short ``a`` is indistinguishable from a random square. Because the
base is fixed, ``h_s^a`` costs one multiplication per exponent byte with
precomputed tables (:mod:`riskshare.crypto.fixedbase`): 128 multiplications
mod n^2 for a 2048-bit key. The key owner computes the same value modulo
p^2 and q^2 separately (two half-size moduli, ~3x cheaper) and recombines.

Security: 2048-bit n ~ 112-bit security, 3072-bit ~ 128-bit (NIST SP 800-57
Part 1 Rev. 5, Table 2). Semi-honest use only: ciphertexts are malleable.
"""

from __future__ import annotations

import secrets
from typing import Any

import gmpy2
from gmpy2 import mpz

from .fixedbase import FixedBase, random_digits
from .he import PrivateKey, PublicKey, parse_hex

SCHEME = "paillier"


def _random_prime(bits: int) -> mpz:
    while True:
        candidate = mpz(secrets.randbits(bits)) | (mpz(3) << (bits - 2)) | 1  # top two bits set: |p·q| = 2·bits
        p = gmpy2.next_prime(candidate)
        if p.bit_length() == bits:
            return p


class PaillierPublicKey(PublicKey):
    scheme = SCHEME

    def __init__(self, n: int, hs: int) -> None:
        self.n = mpz(n)
        self.n2 = self.n * self.n
        self.hs = mpz(hs)
        self.key_bits = self.n.bit_length()
        self.random_bits = (self.key_bits + 1) // 2
        # signed plaintexts: |m| < n/3 leaves the middle third of Z_n to detect overflow
        self._plaintext_bits = (self.n // 3).bit_length() - 1
        self._table: FixedBase | None = None

    @property
    def modulus(self) -> mpz:
        return self.n2

    @property
    def plaintext_bits(self) -> int:
        return self._plaintext_bits

    def _embed(self, values: list[int]) -> list[mpz]:
        n, n2 = self.n, self.n2
        return [(1 + (mpz(v) % n) * n) % n2 for v in values]

    def _random_masks(self, count: int) -> list[mpz]:
        if self._table is None:
            self._table = FixedBase(self.hs, self.n2, self.random_bits)
        return self._table.pow_digits(random_digits(count, self.random_bits))

    def to_json(self) -> dict[str, Any]:
        return {"scheme": SCHEME, "bits": self.key_bits, "n": format(self.n, "x"), "hs": format(self.hs, "x")}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "PaillierPublicKey":
        n = parse_hex(doc["n"], "n", 1024)
        hs = parse_hex(doc["hs"], "hs")
        if doc.get("bits") != n.bit_length():
            raise ValueError("declared key size does not match n")
        if n % 2 == 0 or gmpy2.is_square(n):
            raise ValueError("n is not an RSA modulus")
        if not 0 < hs < n * n or gmpy2.gcd(hs, n) != 1:
            raise ValueError("hs is not a unit modulo n^2")
        return cls(n, hs)

    def _worker_spec(self) -> tuple[str, dict[str, Any]]:
        return SCHEME, self.to_json()


class PaillierPrivateKey(PrivateKey):
    def __init__(self, p: int, q: int, hs: int) -> None:
        self.p, self.q = mpz(min(p, q)), mpz(max(p, q))
        p, q = self.p, self.q
        self.public_key = PaillierPublicKey(p * q, hs)
        self.p2, self.q2 = p * p, q * q
        n = self.public_key.n
        # hp = L_p(g^(p-1) mod p^2)^-1 mod p with g = n + 1
        self.hp = gmpy2.invert((gmpy2.powmod(n + 1, p - 1, self.p2) - 1) // p, p)
        self.hq = gmpy2.invert((gmpy2.powmod(n + 1, q - 1, self.q2) - 1) // q, q)
        self.p_inv_q = gmpy2.invert(p, q)
        self.p2_inv_q2 = gmpy2.invert(self.p2, self.q2)
        self._tables: tuple[FixedBase, FixedBase] | None = None

    @property
    def _plaintext_modulus(self) -> int:
        return int(self.public_key.n)

    def _random_masks_crt(self, count: int) -> list[mpz]:
        pk = self.public_key
        if self._tables is None:
            self._tables = (FixedBase(pk.hs % self.p2, self.p2, pk.random_bits),
                            FixedBase(pk.hs % self.q2, self.q2, pk.random_bits))
        digits = random_digits(count, pk.random_bits)
        tp, tq = self._tables
        rp, rq = tp.pow_digits(digits), tq.pow_digits(digits)
        p2, q2, inv = self.p2, self.q2, self.p2_inv_q2
        return [a + p2 * ((b - a) * inv % q2) for a, b in zip(rp, rq)]

    def _decrypt_raw(self, values: list[mpz]) -> list[int]:
        p, q, p2, q2 = self.p, self.q, self.p2, self.q2
        pm1, qm1, hp, hq, inv = p - 1, q - 1, self.hp, self.hq, self.p_inv_q
        out = []
        for c in values:
            mp = (gmpy2.powmod(c, pm1, p2) - 1) // p * hp % p
            mq = (gmpy2.powmod(c, qm1, q2) - 1) // q * hq % q
            out.append(int(mp + p * ((mq - mp) * inv % q)))
        return out

    def _worker_spec(self) -> tuple[str, dict[str, Any]]:
        return SCHEME, {"p": format(self.p, "x"), "q": format(self.q, "x"), "hs": format(self.public_key.hs, "x")}

    def to_json(self) -> dict[str, Any]:
        """The secret key material (keep it private; used for tests and local worker processes)."""
        return {"scheme": SCHEME, **self._worker_spec()[1]}


def generate(bits: int = 2048) -> PaillierPrivateKey:
    half = bits // 2
    while True:
        p, q = _random_prime(half), _random_prime(bits - half)
        n = p * q
        if p != q and n.bit_length() == bits and gmpy2.gcd(n, (p - 1) * (q - 1)) == 1:
            break
    while True:
        x = mpz(secrets.randbelow(int(n) - 2) + 2)
        if gmpy2.gcd(x, n) == 1:
            break
    h = (-x * x) % n
    hs = gmpy2.powmod(h, n, n * n)
    return PaillierPrivateKey(p, q, hs)


def rebuild(material: dict[str, Any], private: bool) -> PaillierPublicKey | PaillierPrivateKey:
    if private:
        return PaillierPrivateKey(mpz(material["p"], 16), mpz(material["q"], 16), mpz(material["hs"], 16))
    return PaillierPublicKey.from_json(material)
