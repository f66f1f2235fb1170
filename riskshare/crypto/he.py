"""Additively homomorphic encryption: one interface over Paillier and Okamoto–Uchiyama.

>>> from riskshare.crypto import he
>>> sk = he.generate_keypair("paillier", 2048)          # or "ou"
>>> pk = sk.public_key
>>> a = pk.encrypt([5, -3, 0])                           # (any party holding pk)
>>> b = pk.add(a, pk.mul_scalar(a, [2, 2, 2]))           # [[15]], [[-9]], [[0]]
>>> sk.decrypt(pk.sum(b))
6

What every scheme offers (:class:`PublicKey` / :class:`PrivateKey`):

* key generation (2048-bit default, 3072 for 128-bit security), public-key
  serialisation (:meth:`PublicKey.to_json` / :func:`load_public_key`);
* vectorised encryption of signed integer arrays (process pool for big batches),
  with fixed-base precomputation for the randomness; the key owner encrypts
  faster through the Chinese remainder theorem (:meth:`PrivateKey.encrypt`);
* ciphertext add / subtract / negate, add a plaintext, multiply by plaintext
  integers, sum, ``X^T·[[d]]`` by multi-exponentiation, re-randomisation;
* decryption (CRT) with **overflow detection**: plaintexts are signed, and a
  decrypted value outside ``±2^plaintext_bits`` raises :class:`PlaintextOverflow`
  instead of wrapping silently;
* ciphertext (de)serialisation to fixed-width ``uint8`` matrices for the Link,
  and a checked decoder for what a peer sends (``0 < c < modulus``, invertible).

Fixed-point encoding of floats (:class:`FixedPoint`) and packing several values
into one plaintext (:func:`pack` / :func:`unpack`) sit on top, independent of
the scheme.

Ciphertexts are :class:`EncryptedVector` objects (a list of gmpy2 integers plus
the key they belong to); arithmetic runs as tight loops of GMP calls, each one
a big-integer operation, so there is nothing left for numpy to vectorise.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import os
import threading
from abc import ABC, abstractmethod
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any, Iterable, Sequence

import gmpy2
import numpy as np
from gmpy2 import mpz

from ..errors import InputError, ProtocolError
from .fixedbase import multi_exp

DEFAULT_KEY_BITS = 2048
KEY_SIZES = (2048, 3072)
# Batches smaller than this are encrypted in-process: a pool round trip costs more.
PARALLEL_MIN = 512
# Histograms with fewer (row, group) entries than this are summed in-process.
HISTOGRAM_PARALLEL_MIN = 20000


class PlaintextOverflow(InputError):
    """A value does not fit the scheme's plaintext space (or a homomorphic result overflowed)."""


class InvalidCiphertext(ProtocolError):
    """A peer sent something that is not a ciphertext under the agreed key."""


def _ints(values: Iterable[int] | np.ndarray) -> list[int]:
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "f":
            raise TypeError("encrypt integers; encode floats with FixedPoint first")
        return values.reshape(-1).tolist()
    return [int(v) for v in values]


@dataclass
class EncryptedVector:
    """Ciphertexts under ``public_key``, one per plaintext value.

    ``wire`` is the fixed-width byte form the values were decoded from, when they
    came from a peer (:meth:`PublicKey.ciphertexts_from_bytes`): handing rows of it
    to worker processes costs a copy, where the integers would cost a conversion.
    """

    public_key: "PublicKey"
    values: list[mpz]
    wire: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: Any) -> "EncryptedVector":
        wire = self.wire
        if isinstance(index, slice):
            return EncryptedVector(self.public_key, self.values[index], None if wire is None else wire[index])
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        vals = self.values
        return EncryptedVector(self.public_key, [vals[i] for i in idx.tolist()],
                               None if wire is None else wire[idx])

    def to_bytes(self) -> np.ndarray:
        return self.public_key.ciphertexts_to_bytes(self)


class PublicKey(ABC):
    """The public half: encrypt and compute on ciphertexts."""

    scheme: str
    key_bits: int

    # -- what a scheme defines ------------------------------------------------
    @property
    @abstractmethod
    def modulus(self) -> mpz:
        """Ciphertexts live in Z_modulus^*."""

    @property
    @abstractmethod
    def plaintext_bits(self) -> int:
        """Signed plaintexts must satisfy |m| < 2^plaintext_bits (checked on encrypt and decrypt)."""

    @abstractmethod
    def _random_masks(self, count: int) -> list[mpz]:
        """Fresh encryptions of zero (the randomness factor), from the public key only."""

    @abstractmethod
    def _embed(self, values: list[int]) -> list[mpz]:
        """Deterministic encodings of plaintexts (encryption with randomness 1)."""

    @abstractmethod
    def to_json(self) -> dict[str, Any]: ...

    @abstractmethod
    def _worker_spec(self) -> tuple[str, dict[str, Any]]:
        """What a pool worker needs to rebuild this key: (scheme, material)."""

    # -- derived --------------------------------------------------------------
    @property
    def ciphertext_bytes(self) -> int:
        return (self.modulus.bit_length() + 7) // 8

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical public-key document: both parties compare it before data moves."""
        doc = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(doc).hexdigest()

    def check_plaintexts(self, values: list[int]) -> None:
        bound = 1 << self.plaintext_bits
        for v in values:
            if not -bound < v < bound:
                raise PlaintextOverflow(
                    f"value of {abs(v).bit_length()} bits does not fit this {self.scheme}-{self.key_bits} key's "
                    f"plaintext space (|m| < 2^{self.plaintext_bits})",
                    hint="use a coarser fixed-point scale, fewer packed slots, or a bigger key",
                )

    # -- encryption -----------------------------------------------------------
    def encrypt(self, values: Iterable[int] | np.ndarray, *, workers: int | None = None) -> EncryptedVector:
        """Encrypt signed integers (fresh randomness for each)."""
        ints = _ints(values)
        self.check_plaintexts(ints)
        return EncryptedVector(self, _parallel(self, "encrypt", ints, workers))

    def _encrypt_local(self, ints: list[int]) -> list[mpz]:
        m = self.modulus
        return [e * r % m for e, r in zip(self._embed(ints), self._random_masks(len(ints)))]

    def encrypt_zeros(self, count: int, *, workers: int | None = None) -> EncryptedVector:
        return self.encrypt([0] * count, workers=workers)

    def rerandomize(self, ct: EncryptedVector, *, workers: int | None = None) -> EncryptedVector:
        """Same plaintexts, fresh randomness: hides which ciphertexts a result was computed from."""
        self._check_key(ct)
        m = self.modulus
        zeros = self.encrypt_zeros(len(ct), workers=workers).values
        return EncryptedVector(self, [c * z % m for c, z in zip(ct.values, zeros)])

    # -- homomorphic operations -----------------------------------------------
    def _check_key(self, *cts: EncryptedVector) -> None:
        for ct in cts:
            if ct.public_key is not self and ct.public_key.fingerprint != self.fingerprint:
                raise ValueError("ciphertexts under a different key")

    def add(self, a: EncryptedVector, b: EncryptedVector) -> EncryptedVector:
        self._check_key(a, b)
        if len(a) != len(b):
            raise ValueError(f"length mismatch: {len(a)} and {len(b)}")
        m = self.modulus
        return EncryptedVector(self, [x * y % m for x, y in zip(a.values, b.values)])

    def neg(self, a: EncryptedVector) -> EncryptedVector:
        self._check_key(a)
        m = self.modulus
        return EncryptedVector(self, [gmpy2.invert(x, m) for x in a.values])

    def sub(self, a: EncryptedVector, b: EncryptedVector) -> EncryptedVector:
        return self.add(a, self.neg(b))

    def add_plain(self, a: EncryptedVector, values: Iterable[int] | np.ndarray) -> EncryptedVector:
        """[[a_i + v_i]] (no fresh randomness: re-randomise before sending if ``a`` was seen by the peer)."""
        self._check_key(a)
        ints = _ints(values)
        if len(ints) != len(a):
            raise ValueError(f"length mismatch: {len(a)} ciphertexts and {len(ints)} plaintexts")
        self.check_plaintexts(ints)
        m = self.modulus
        return EncryptedVector(self, [x * e % m for x, e in zip(a.values, self._embed(ints))])

    def mul_scalar(self, a: EncryptedVector, scalars: Iterable[int] | np.ndarray | int) -> EncryptedVector:
        """[[a_i · k_i]] for plaintext integers k_i (one k for all when given a single int)."""
        self._check_key(a)
        m = self.modulus
        if isinstance(scalars, (int, np.integer)):
            k = int(scalars)
            return EncryptedVector(self, [gmpy2.powmod(x, k, m) for x in a.values])
        ks = _ints(scalars)
        if len(ks) != len(a):
            raise ValueError(f"length mismatch: {len(a)} ciphertexts and {len(ks)} scalars")
        return EncryptedVector(self, [gmpy2.powmod(x, k, m) for x, k in zip(a.values, ks)])

    def sum(self, a: EncryptedVector) -> EncryptedVector:
        """[[Σ a_i]] as a one-element vector."""
        self._check_key(a)
        m = self.modulus
        acc = mpz(1)
        for x in a.values:
            acc = acc * x % m
        return EncryptedVector(self, [acc])

    def histogram(self, a: EncryptedVector, groups: np.ndarray, n_groups: int, *,
                  workers: int | None = None) -> EncryptedVector:
        """Encrypted sums by group: ``out[g] = [[Σ a_i over every (i, j) with groups[i, j] == g]]``.

        ``groups`` is an integer matrix of shape ``(len(a), k)``: ciphertext ``i`` is
        added into the ``k`` groups of its row (SecureBoost: one bin of each
        feature). One multiplication per entry, the rows split over worker
        processes for big inputs. A group nothing falls into comes out as the
        integer 1 — an encryption of zero with no randomness: re-randomise
        before sending any of these to the key owner.
        """
        self._check_key(a)
        grp = np.asarray(groups)
        if grp.ndim != 2 or len(grp) != len(a) or grp.dtype.kind not in "iu":
            raise ValueError(f"groups must be an integer matrix with {len(a)} rows, not {grp.shape} {grp.dtype}")
        if grp.size and (int(grp.min()) < 0 or int(grp.max()) >= n_groups):
            raise ValueError(f"group numbers must be in [0, {n_groups})")
        n_workers = _worker_count(workers)
        if n_workers == 1 or grp.size < HISTOGRAM_PARALLEL_MIN:
            return EncryptedVector(self, _histogram_local(self.modulus, a.values, grp, n_groups))
        rows = a.wire if a.wire is not None else self.ciphertexts_to_bytes(a)
        pool, spec_id = _pool_for(self, n_workers)
        size = math.ceil(len(a) / n_workers)
        futures = [pool.submit(_worker_run, spec_id, "histogram", (rows[i : i + size], grp[i : i + size], n_groups))
                   for i in range(0, len(a), size)]
        m = self.modulus
        out = [mpz(1)] * n_groups
        for f in futures:
            out = [x if y == 1 else (y if x == 1 else x * y % m) for x, y in zip(out, f.result())]
        return EncryptedVector(self, out)

    def dot(self, matrix: np.ndarray, a: EncryptedVector) -> EncryptedVector:
        """[[M · a]] for an integer matrix M of shape (k, len(a)): k multi-exponentiations.

        Signed entries are handled by two multi-exponentiations (positive and
        negative parts) and one inversion per row.
        """
        self._check_key(a)
        mat = np.asarray(matrix)
        if mat.ndim != 2 or mat.shape[1] != len(a):
            raise ValueError(f"matrix of shape {mat.shape} does not match {len(a)} ciphertexts")
        if mat.dtype.kind == "f":
            raise TypeError("dot takes integer matrices; encode floats with FixedPoint first")
        m = self.modulus
        vals = a.values
        out = []
        for row in mat:
            row_list = row.tolist()
            pos = [(vals[i], e) for i, e in enumerate(row_list) if e > 0]
            neg = [(vals[i], -e) for i, e in enumerate(row_list) if e < 0]
            acc = multi_exp([b for b, _ in pos], [e for _, e in pos], m) if pos else mpz(1)
            if neg:
                n_acc = multi_exp([b for b, _ in neg], [e for _, e in neg], m)
                acc = acc * gmpy2.invert(n_acc, m) % m
            out.append(acc)
        return EncryptedVector(self, out)

    # -- serialisation ----------------------------------------------------------
    def ciphertexts_to_bytes(self, ct: EncryptedVector) -> np.ndarray:
        """Fixed-width big-endian rows, shape (len, ciphertext_bytes), dtype uint8."""
        self._check_key(ct)
        w = self.ciphertext_bytes
        blob = b"".join(int(x).to_bytes(w, "big") for x in ct.values)
        return np.frombuffer(blob, dtype=np.uint8).reshape(len(ct), w)

    def ciphertexts_from_bytes(self, rows: np.ndarray, *, peer: str = "peer", step: str = "?") -> EncryptedVector:
        """Decode and check ciphertexts a peer sent: 0 < c < modulus and c invertible, else InvalidCiphertext."""
        w = self.ciphertext_bytes
        if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != w:
            raise InvalidCiphertext(
                f"peer '{peer}' sent ciphertexts of shape {rows.shape} ({rows.dtype}) for step '{step}'; "
                f"expected (*, {w}) uint8"
            )
        m = self.modulus
        data = rows.tobytes()
        values = [mpz(int.from_bytes(data[i : i + w], "big")) for i in range(0, len(data), w)]
        # One product and one gcd check all at once: a non-invertible c shares a factor with the
        # modulus, and so does the product of all of them.
        acc = mpz(1)
        for i, c in enumerate(values):
            if not 0 < c < m:
                raise InvalidCiphertext(f"peer '{peer}' sent an out-of-range ciphertext (#{i}) for step '{step}'")
            acc = acc * c % m
        if gmpy2.gcd(acc, m) != 1:
            raise InvalidCiphertext(f"peer '{peer}' sent a non-invertible ciphertext for step '{step}'")
        return EncryptedVector(self, values, rows)


class PrivateKey(ABC):
    """The secret half: decrypt, and encrypt faster than the public key can (CRT)."""

    public_key: PublicKey

    @abstractmethod
    def _decrypt_raw(self, values: list[mpz]) -> list[int]:
        """Plaintexts as residues in [0, plaintext modulus)."""

    @property
    @abstractmethod
    def _plaintext_modulus(self) -> int: ...

    @abstractmethod
    def _random_masks_crt(self, count: int) -> list[mpz]:
        """Fresh encryptions of zero computed with the factorisation (faster than the public path)."""

    @abstractmethod
    def _worker_spec(self) -> tuple[str, dict[str, Any]]: ...

    def encrypt(self, values: Iterable[int] | np.ndarray, *, workers: int | None = None) -> EncryptedVector:
        """Encrypt as the key owner (same ciphertext distribution as the public key, computed via CRT)."""
        pk = self.public_key
        ints = _ints(values)
        pk.check_plaintexts(ints)
        return EncryptedVector(pk, _parallel(self, "encrypt", ints, workers))

    def _encrypt_local(self, ints: list[int]) -> list[mpz]:
        pk = self.public_key
        m = pk.modulus
        return [e * r % m for e, r in zip(pk._embed(ints), self._random_masks_crt(len(ints)))]

    def decrypt(self, ct: EncryptedVector, *, workers: int | None = None) -> list[int] | int:
        """Signed plaintexts; a one-element vector gives a plain int."""
        self.public_key._check_key(ct)
        out = self.decrypt_list(ct, workers=workers)
        return out[0] if len(out) == 1 else out

    def decrypt_list(self, ct: EncryptedVector, *, workers: int | None = None) -> list[int]:
        self.public_key._check_key(ct)
        raw = _parallel(self, "decrypt", ct.values, workers)
        return self._signed(raw)

    def _signed(self, raw: list[int]) -> list[int]:
        pm = self._plaintext_modulus
        bound = 1 << self.public_key.plaintext_bits
        out = []
        for r in raw:
            v = r if r < bound else r - pm
            if not -bound < v < bound:
                raise PlaintextOverflow(
                    "a decrypted value is outside the plaintext range: a homomorphic sum or product overflowed",
                    hint="reduce the fixed-point scale or the number of packed slots",
                )
            out.append(v)
        return out


# -- fixed-point and packing ----------------------------------------------------


@dataclass(frozen=True)
class FixedPoint:
    """Floats as integers ``round(x · 2^frac_bits)``.

    Precision: the encoding error of one value is at most ``2^-(frac_bits+1)``
    (round to nearest); a sum of ``k`` encoded values is off by at most
    ``k · 2^-(frac_bits+1)``; a product of two encodings carries
    ``2·frac_bits`` fractional bits and is decoded with ``scale_power=2``.
    With the default 40 bits, one value is exact to 4.5e-13, well below
    float32 (6e-8, what XGBoost keeps gradients in) and near float64's relative
    precision for values around 1.
    """

    frac_bits: int = 40

    def encode(self, x: np.ndarray | float, *, max_abs_bits: int = 62) -> np.ndarray:
        """Integers (int64 when they fit in ``max_abs_bits`` bits, else Python ints in an object array)."""
        arr = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise InputError("cannot encode NaN or infinite values", hint="impute or remove missing values first")
        scaled = np.rint(arr * float(2**self.frac_bits))
        if arr.size == 0 or np.max(np.abs(scaled)) < 2.0**max_abs_bits:
            return scaled.astype(np.int64)
        return np.array([int(v) for v in scaled.reshape(-1)], dtype=object).reshape(arr.shape)

    def decode(self, ints: Sequence[int] | np.ndarray, *, scale_power: int = 1) -> np.ndarray:
        denom = 2 ** (self.frac_bits * scale_power)
        arr = np.asarray(ints, dtype=object) if not isinstance(ints, np.ndarray) else ints
        if arr.dtype != object and arr.dtype.kind in "iu":
            return arr.astype(np.float64) / float(denom)
        # exact for big integers: split into quotient and remainder first
        return np.array([int(v) / denom for v in arr.reshape(-1)], dtype=np.float64).reshape(arr.shape)


def pack(columns: Sequence[Sequence[int] | np.ndarray], slot_bits: int) -> list[int]:
    """Pack k signed integer columns into one integer per row: Σ_j col_j · 2^(j·slot_bits).

    Sums of packed values unpack to the column sums as long as every slot's sum
    stays within ±2^(slot_bits-1) (balanced representation: a negative slot
    borrows from the next one, and :func:`unpack` gives it back).
    """
    cols = [_ints(c) if isinstance(c, np.ndarray) else [int(v) for v in c] for c in columns]
    if len({len(c) for c in cols}) > 1:
        raise ValueError("columns of different lengths")
    limit = 1 << (slot_bits - 1)
    for c in cols:
        for v in c:
            if not -limit < v < limit:
                raise PlaintextOverflow(f"value does not fit a {slot_bits}-bit slot")
    out = []
    for row in zip(*cols):
        acc = 0
        for j in range(len(row) - 1, -1, -1):
            acc = (acc << slot_bits) + row[j]
        out.append(acc)
    return out


def unpack(values: Sequence[int], n_slots: int, slot_bits: int) -> list[list[int]]:
    """Inverse of :func:`pack` (also for sums of packed values): n_slots columns of signed ints."""
    mask = (1 << slot_bits) - 1
    half = 1 << (slot_bits - 1)
    cols: list[list[int]] = [[] for _ in range(n_slots)]
    for v in values:
        v = int(v)
        for j in range(n_slots):
            low = v & mask
            if low >= half:
                low -= 1 << slot_bits
            cols[j].append(low)
            v = (v - low) >> slot_bits
        if v != 0:
            raise PlaintextOverflow("packed value has more slots than expected (a slot overflowed)")
    return cols


# -- keys -----------------------------------------------------------------------


def generate_keypair(scheme: str = "paillier", bits: int = DEFAULT_KEY_BITS) -> PrivateKey:
    """A fresh key pair; ``scheme`` is ``paillier`` or ``ou``; ``bits`` 2048 (112-bit security) or 3072 (128-bit)."""
    if bits not in KEY_SIZES and not os.environ.get("RISKSHARE_TEST_SMALL_KEYS"):
        raise InputError(f"key size {bits} is not supported", hint=f"use one of {KEY_SIZES}")
    if scheme == "paillier":
        from . import paillier

        return paillier.generate(bits)
    if scheme == "ou":
        from . import ou

        return ou.generate(bits)
    raise InputError(f"unknown homomorphic scheme '{scheme}'", hint="use 'paillier' or 'ou'")


def load_public_key(doc: dict[str, Any] | bytes | str) -> PublicKey:
    """Rebuild a public key a peer sent (JSON document); checks its structure and sizes."""
    if isinstance(doc, (bytes, str)):
        try:
            doc = json.loads(doc)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"malformed public key: {exc}") from None
    if not isinstance(doc, dict):
        raise ProtocolError("malformed public key (not a JSON object)")
    scheme = doc.get("scheme")
    try:
        if scheme == "paillier":
            from . import paillier

            return paillier.PaillierPublicKey.from_json(doc)
        if scheme == "ou":
            from . import ou

            return ou.OUPublicKey.from_json(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed {scheme} public key: {exc}") from None
    raise ProtocolError(f"unknown homomorphic scheme {scheme!r} in a public key")


def parse_hex(value: Any, name: str, min_bits: int = 1) -> mpz:
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise ValueError(f"'{name}' must be a hex string")
    x = mpz(value, 16)
    if x.bit_length() < min_bits:
        raise ValueError(f"'{name}' is too small")
    return x


# -- parallel execution ---------------------------------------------------------

# Worker pools by key: each holds its key's fixed-base tables. Few keys are live at once (one per
# running protocol), so the oldest pools are shut down beyond MAX_POOLS.
MAX_POOLS = 4
_POOLS: dict[tuple[str, str, int], ProcessPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()
_WORKER_KEYS: dict[str, Any] = {}


def default_workers() -> int:
    env = os.environ.get("RISKSHARE_HE_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(4, os.cpu_count() or 1))


def _exit_with_parent(parent: int) -> None:
    """A worker must not outlive its parent (killed with SIGKILL, the pool cannot tell it to stop)."""
    try:  # Linux: the kernel signals us when the parent dies
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="riskshare-he-watchdog", daemon=True).start()


def _worker_init(spec_id: str, scheme: str, material: dict[str, Any], private: bool, parent: int) -> None:
    from . import ou, paillier

    _exit_with_parent(parent)

    module = paillier if scheme == "paillier" else ou
    _WORKER_KEYS[spec_id] = module.rebuild(material, private)


def _worker_run(spec_id: str, op: str, chunk: Any) -> list:
    key = _WORKER_KEYS[spec_id]
    if op == "encrypt":
        return key._encrypt_local(chunk)
    if op == "histogram":
        rows, groups, n_groups = chunk
        data, w = rows.tobytes(), rows.shape[1]
        values = [mpz(int.from_bytes(data[i : i + w], "big")) for i in range(0, len(data), w)]
        return _histogram_local(key.modulus, values, groups, n_groups)
    return key._decrypt_raw(chunk)


def _histogram_local(m: mpz, values: list[mpz], groups: np.ndarray, n_groups: int) -> list[mpz]:
    one = mpz(1)
    out = [one] * n_groups
    for column in groups.T.tolist():
        for g, c in zip(column, values):
            acc = out[g]
            out[g] = c if acc is one else acc * c % m  # a group's first ciphertext needs no multiplication
    return out


def _pool_for(owner: PublicKey | PrivateKey, workers: int) -> tuple[ProcessPoolExecutor, str]:
    scheme, material = owner._worker_spec()
    private = isinstance(owner, PrivateKey)
    spec_id = hashlib.sha256(json.dumps([scheme, private, material], sort_keys=True).encode()).hexdigest()[:16]
    key = (spec_id, scheme, workers)
    evicted: list[ProcessPoolExecutor] = []
    with _POOLS_LOCK:
        pool = _POOLS.pop(key, None)
        if pool is None:
            pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=_context(),
                initializer=_worker_init, initargs=(spec_id, scheme, material, private, os.getpid()),
            )
        _POOLS[key] = pool  # most recently used last
        while len(_POOLS) > MAX_POOLS:
            evicted.append(_POOLS.pop(next(iter(_POOLS))))
    for old in evicted:
        old.shutdown(wait=False, cancel_futures=False)
    return pool, spec_id


def shutdown_pools() -> None:
    """Stop the worker processes (they are also stopped at interpreter exit)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_pools)


def _context():
    """fork where the platform has it: workers only run GMP arithmetic on copies of the key tables, and
    unlike spawn/forkserver it does not re-import the caller's ``__main__`` (a script without a main
    guard, or one read from stdin, would otherwise break)."""
    import multiprocessing

    return get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _main_importable() -> bool:
    """spawn re-imports ``__main__`` by path; a script read from stdin cannot be (run inline then)."""
    import sys

    if _context().get_start_method() == "fork":
        return True
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path is None or os.path.exists(path)


def _worker_count(workers: int | None) -> int:
    """Processes to use: ``workers``, or the default; 1 where worker processes cannot start."""
    n_workers = default_workers() if workers is None else max(1, workers)
    return n_workers if n_workers == 1 or _main_importable() else 1


def _parallel(owner: PublicKey | PrivateKey, op: str, items: list, workers: int | None) -> list:
    n_workers = _worker_count(workers)
    local = owner._encrypt_local if op == "encrypt" else owner._decrypt_raw  # type: ignore[union-attr]
    if n_workers == 1 or len(items) < PARALLEL_MIN:
        return local(items)
    pool, spec_id = _pool_for(owner, n_workers)
    n_chunks = min(len(items), n_workers * 4)
    size = math.ceil(len(items) / n_chunks)
    futures = [pool.submit(_worker_run, spec_id, op, items[i : i + size]) for i in range(0, len(items), size)]
    out: list = []
    for f in futures:
        out.extend(f.result())
    return out
