"""Okamoto–Uchiyama encryption (EUROCRYPT 1998) in the accelerated form of Coron, Naccache & Paillier.

Scheme (Okamoto & Uchiyama, "A new public-key cryptosystem as secure as
factoring", 1998; with the subgroup speed-up of Coron, Naccache & Paillier,
"Accelerating Okamoto–Uchiyama's public-key cryptosystem", Electronics Letters
35(4), 1999, as also used by SecretFlow HEU)::

    keygen   t prime of t_bits; p = t·u + 1 prime of ceil(bits/3) bits; q prime; n = p^2·q
             g <- Z_n with g^(p-1) mod p^2 of order p;  g' <- Z_n^*
             G = g^u mod n,  H = g'^(n·u) mod n                          public key (n, G, H)
    encrypt  c = G^m · H^r mod n,   r <- {0,1}^(t_bits + 64)
    decrypt  m = L(c^t mod p^2) · L(G^t mod p^2)^-1 mod p,   L(x) = (x-1)/p

Why it is correct: modulo p^2, ``H`` has order t, so ``c^t = G^(m·t)``, and
``G^t = g^(p-1)`` lies in the order-p subgroup where ``L`` is a logarithm.
Decryption costs one exponentiation with a t_bits exponent modulo p^2 (about a
tenth of Paillier's), and ciphertexts are elements of Z_n, half the size of
Paillier's: additions are ~4x cheaper.

Parameters: n of 2048 bits (p, q of 683/682 bits) with t of 224 bits, or 3072
bits with t of 256 bits — the subgroup sizes NIST SP 800-57 pairs with 2048-
and 3072-bit factoring moduli (112- and 128-bit security), the same choice as
HEU. The randomness exponent r has t_bits + 64 bits, so that ``H^r mod p^2``
is within 2^-64 of uniform on the order-t subgroup that hides the message
(HEU uses shorter exponents: 110 bits at 2048). Security rests on the
hardness of factoring n = p^2·q (the p-subgroup assumption for semantic
security); no attack better than factoring a 2048-bit RSA modulus is known
for |p| = |q| = |n|/3 (lattice methods for p^r·q need r much larger than 2).

The plaintext space is Z_p: signed values up to 2^(|p|-3) (680 bits at 2048),
enough for a few packed 64-bit slots but far less than Paillier's 2045 bits.
"""

from __future__ import annotations

import secrets
from typing import Any

import gmpy2
from gmpy2 import mpz

from .fixedbase import FixedBase, int_digits, random_digits
from .he import PrivateKey, PublicKey, parse_hex

SCHEME = "ou"
SUBGROUP_BITS = {2048: 224, 3072: 256}


def _subgroup_bits(bits: int) -> int:
    return SUBGROUP_BITS.get(bits, 224 if bits < 3072 else 256)


class OUPublicKey(PublicKey):
    scheme = SCHEME

    def __init__(self, n: int, G: int, H: int, p_bits: int, t_bits: int) -> None:
        self.n = mpz(n)
        self.G = mpz(G)
        self.H = mpz(H)
        self.key_bits = self.n.bit_length()
        self.p_bits = int(p_bits)
        self.t_bits = int(t_bits)
        self.random_bits = self.t_bits + 64
        self._plaintext_bits = self.p_bits - 3  # p >= 2^(p_bits-1): |m| < p/4 leaves room to detect overflow
        self._g_tables: tuple[FixedBase, FixedBase] | None = None
        self._h_table: FixedBase | None = None

    @property
    def modulus(self) -> mpz:
        return self.n

    @property
    def plaintext_bits(self) -> int:
        return self._plaintext_bits

    def _embed(self, values: list[int]) -> list[mpz]:
        if self._g_tables is None:
            self._g_tables = (FixedBase(self.G, self.n, self._plaintext_bits),
                              FixedBase(gmpy2.invert(self.G, self.n), self.n, self._plaintext_bits))
        pos_t, neg_t = self._g_tables
        width = max(1, (max((abs(v).bit_length() for v in values), default=1) + 7) // 8)
        out: list[mpz] = [mpz(1)] * len(values)
        pos = [i for i, v in enumerate(values) if v > 0]
        neg = [i for i, v in enumerate(values) if v < 0]
        if pos:
            for i, x in zip(pos, pos_t.pow_digits(int_digits([values[i] for i in pos], width))):
                out[i] = x
        if neg:
            for i, x in zip(neg, neg_t.pow_digits(int_digits([-values[i] for i in neg], width))):
                out[i] = x
        return out

    def _random_masks(self, count: int) -> list[mpz]:
        if self._h_table is None:
            self._h_table = FixedBase(self.H, self.n, self.random_bits)
        return self._h_table.pow_digits(random_digits(count, self.random_bits))

    def to_json(self) -> dict[str, Any]:
        return {"scheme": SCHEME, "bits": self.key_bits, "n": format(self.n, "x"), "G": format(self.G, "x"),
                "H": format(self.H, "x"), "p_bits": self.p_bits, "t_bits": self.t_bits}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "OUPublicKey":
        n = parse_hex(doc["n"], "n", 1024)
        G = parse_hex(doc["G"], "G")
        H = parse_hex(doc["H"], "H")
        p_bits, t_bits = doc["p_bits"], doc["t_bits"]
        if doc.get("bits") != n.bit_length():
            raise ValueError("declared key size does not match n")
        if not isinstance(p_bits, int) or not isinstance(t_bits, int):
            raise ValueError("p_bits and t_bits must be integers")
        if not (n.bit_length() // 3 - 2 <= p_bits <= n.bit_length() // 3 + 2) or not 160 <= t_bits <= p_bits // 2:
            raise ValueError("p_bits / t_bits do not match the modulus size")
        for name, x in (("G", G), ("H", H)):
            if not 1 < x < n or gmpy2.gcd(x, n) != 1:
                raise ValueError(f"{name} is not a unit modulo n")
        return cls(n, G, H, p_bits, t_bits)

    def _worker_spec(self) -> tuple[str, dict[str, Any]]:
        return SCHEME, self.to_json()


class OUPrivateKey(PrivateKey):
    def __init__(self, p: int, q: int, t: int, G: int, H: int) -> None:
        self.p, self.q, self.t = mpz(p), mpz(q), mpz(t)
        p, q = self.p, self.q
        self.p2 = p * p
        n = self.p2 * q
        self.public_key = OUPublicKey(n, G, H, p.bit_length(), self.t.bit_length())
        gp = gmpy2.powmod(mpz(G) % self.p2, self.t, self.p2)
        self.gp_inv = gmpy2.invert((gp - 1) // p, p)
        self.p2_inv_q = gmpy2.invert(self.p2, q)
        self._tables: tuple[FixedBase, FixedBase] | None = None

    @property
    def _plaintext_modulus(self) -> int:
        return int(self.p)

    def _random_masks_crt(self, count: int) -> list[mpz]:
        pk = self.public_key
        p2, q, t = self.p2, self.q, self.t
        if self._tables is None:
            self._tables = (FixedBase(pk.H % p2, p2, self.t.bit_length()), FixedBase(pk.H % q, q, pk.random_bits))
        tp, tq = self._tables
        digits = random_digits(count, pk.random_bits)
        # modulo p^2, H has order t: reduce the exponent (fewer table rows)
        width = (self.t.bit_length() + 7) // 8
        reduced = int_digits([int.from_bytes(row, "little") % t for row in map(bytes, digits)], width)
        rp, rq = tp.pow_digits(reduced), tq.pow_digits(digits)
        inv = self.p2_inv_q
        return [a + p2 * ((b - a) * inv % q) for a, b in zip(rp, rq)]

    def _decrypt_raw(self, values: list[mpz]) -> list[int]:
        p, p2, t, gi = self.p, self.p2, self.t, self.gp_inv
        return [int((gmpy2.powmod(c % p2, t, p2) - 1) // p * gi % p) for c in values]

    def _worker_spec(self) -> tuple[str, dict[str, Any]]:
        pk = self.public_key
        return SCHEME, {"p": format(self.p, "x"), "q": format(self.q, "x"), "t": format(self.t, "x"),
                        "G": format(pk.G, "x"), "H": format(pk.H, "x")}

    def to_json(self) -> dict[str, Any]:
        """The secret key material (keep it private; used for tests and local worker processes)."""
        return {"scheme": SCHEME, **self._worker_spec()[1]}


def _prime_with_subgroup(p_bits: int, t_bits: int) -> tuple[mpz, mpz, mpz]:
    """p = t·u + 1 prime of exactly p_bits bits, t a prime of t_bits bits."""
    while True:
        t = gmpy2.next_prime(mpz(secrets.randbits(t_bits)) | (mpz(1) << (t_bits - 1)))
        if t.bit_length() != t_bits:
            continue
        u_bits = p_bits - t_bits
        for _ in range(20 * p_bits):
            u = mpz(secrets.randbits(u_bits)) | (mpz(1) << (u_bits - 1))
            u += u & 1  # even, so p = t·u + 1 is odd
            p = t * u + 1
            if p.bit_length() == p_bits and gmpy2.is_prime(p, 40):
                return p, t, u


def generate(bits: int = 2048) -> OUPrivateKey:
    t_bits = _subgroup_bits(bits)
    p_bits = (bits + 2) // 3
    q_bits = bits - 2 * p_bits
    while True:
        p, t, u = _prime_with_subgroup(p_bits, t_bits)
        q = gmpy2.next_prime(mpz(secrets.randbits(q_bits)) | (mpz(3) << (q_bits - 2)))
        n = p * p * q
        if q != p and q.bit_length() == q_bits and n.bit_length() == bits:
            break
    p2 = p * p
    while True:
        g = mpz(secrets.randbelow(int(n) - 2) + 2)
        if gmpy2.gcd(g, n) != 1:
            continue
        gp = gmpy2.powmod(g % p2, p - 1, p2)
        if gp != 1 and ((gp - 1) // p) % p != 0:
            break
    while True:
        g2 = mpz(secrets.randbelow(int(n) - 2) + 2)
        if gmpy2.gcd(g2, n) == 1:
            break
    G = gmpy2.powmod(g, u, n)
    H = gmpy2.powmod(g2, n * u, n)
    return OUPrivateKey(p, q, t, G, H)


def rebuild(material: dict[str, Any], private: bool) -> OUPublicKey | OUPrivateKey:
    if private:
        return OUPrivateKey(*(mpz(material[k], 16) for k in ("p", "q", "t", "G", "H")))
    return OUPublicKey.from_json(material)
