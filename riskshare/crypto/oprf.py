"""OPRF(ristretto255, SHA-512) — RFC 9497, base mode — batched over many inputs.

An oblivious pseudorandom function: the server holds a key ``k``; a client with
an input ``x`` learns ``F(k, x) = SHA-512(len(x) || x || len(N) || N ||
"Finalize")`` with ``N = k · HashToGroup(x)``, and the server learns nothing
about ``x`` (the blinded element ``r · HashToGroup(x)`` is a uniformly random
group element). This is 2HashDH (Jarecki, Kiayias & Krawczyk, ASIACRYPT 2014)
exactly as standardised in RFC 9497 (Davidson, Faz-Hernández, Sullivan & Wood,
2023), suite ``OPRF(ristretto255, SHA-512)``, mode ``modeOPRF`` (0x00):

* ``HashToGroup`` is ``hash_to_ristretto255`` of RFC 9380 (``expand_message_xmd``
  with SHA-512 to 64 bytes, then the ristretto255 one-way map of RFC 9496);
* scalars are little-endian integers modulo the group order ``L = 2^252 +
  27742317777372353535851937790883648493``; elements are 32-byte ristretto255
  encodings.

Security: the OPRF is secure under the One-More Gap Diffie–Hellman assumption
in the random-oracle model (RFC 9497 §7.2); ristretto255 gives ~128-bit
security. The client's privacy is unconditional (perfect blinding). The server
is not bound to a committed key in this mode (no verifiability): a semi-honest
server is assumed, which is what the protocols using this module state. Every
element received from a peer is validated (a non-canonical encoding, or the
identity, is refused with :class:`~riskshare.errors.ProtocolError`).

Why this suite and library. Correctness first: RFC 9497 publishes test vectors
for it, and libsodium implements every primitive it needs
(``crypto_core_ristretto255_from_hash``, ``crypto_scalarmult_ristretto255``,
scalar inversion and reduction), so nothing is hand-rolled except the RFC's
byte layouts (``expand_message_xmd``, ``DeriveKeyPair``, ``Finalize``), which the
vectors check. Speed second: measured on the project's machine, libsodium's
hash-to-group costs ~15 µs and a ristretto255 scalar multiplication 56–110 µs
(the machine is shared), against ~125–200 µs for ed25519 through PyNaCl, while
X25519 (35 µs) clamps scalars and so cannot unblind. P-256 would need
hash-to-curve, which OpenSSL's Python binding does not offer. PyNaCl does not
expose ristretto255, so the system libsodium is loaded through ctypes (located
by ``pysodium``); ctypes releases the GIL during each call, so a thread pool
spreads batches over every core.

Batches are numpy arrays of shape ``(n, 32)`` (elements, scalars) or ``(n, 64)``
(outputs); inputs are byte strings.
"""

from __future__ import annotations

import ctypes
import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError, InputError, ProtocolError
from .workers import chunk_size, pool

SUITE = "ristretto255-SHA512"
MODE_OPRF = 0x00
CONTEXT = b"OPRFV1-" + bytes([MODE_OPRF]) + b"-" + SUITE.encode()
HASH_TO_GROUP_DST = b"HashToGroup-" + CONTEXT
HASH_TO_SCALAR_DST = b"HashToScalar-" + CONTEXT
DERIVE_KEY_PAIR_DST = b"DeriveKeyPair" + CONTEXT

ELEMENT_BYTES = 32
SCALAR_BYTES = 32
OUTPUT_BYTES = 64
MAX_INPUT_BYTES = 0xFFFF  # inputs are length-prefixed with two bytes (RFC 9497 §3.3.1)

_CHUNK = 2048

Progress = Callable[[int, int], None]


# -- libsodium ------------------------------------------------------------------

class _Sodium:
    """The few libsodium functions this module calls, with fixed prototypes.

    A private ``CDLL`` handle is opened on the library ``pysodium`` found, so
    setting ``argtypes`` here never changes ``pysodium``'s own function objects.
    """

    def __init__(self) -> None:
        try:
            import pysodium  # noqa: F401 - locates and initialises the system libsodium
        except (ImportError, OSError, ValueError) as exc:
            raise ConfigError(
                f"the OPRF needs libsodium >= 1.0.18 and the pysodium package ({exc})",
                hint="install libsodium (Debian/Ubuntu: apt-get install libsodium23; macOS: brew install "
                "libsodium) and `pip install pysodium`",
            ) from None
        lib = ctypes.CDLL(pysodium.sodium._name)
        if lib.sodium_init() < 0:
            raise ConfigError("libsodium failed to initialise")
        required = (
            "crypto_core_ristretto255_from_hash", "crypto_scalarmult_ristretto255",
            "crypto_scalarmult_ristretto255_base", "crypto_core_ristretto255_scalar_invert",
            "crypto_core_ristretto255_scalar_reduce", "crypto_core_ristretto255_scalar_random",
            "crypto_core_ristretto255_is_valid_point",
        )
        missing = [name for name in required if not hasattr(lib, name)]
        if missing:
            raise ConfigError(
                f"the installed libsodium has no ristretto255 support (missing {', '.join(missing)})",
                hint="upgrade libsodium to 1.0.18 or later",
            )
        vp = ctypes.c_void_p
        for name, args, res in (
            ("crypto_core_ristretto255_from_hash", [vp, vp], ctypes.c_int),
            ("crypto_scalarmult_ristretto255", [vp, vp, vp], ctypes.c_int),
            ("crypto_scalarmult_ristretto255_base", [vp, vp], ctypes.c_int),
            ("crypto_core_ristretto255_scalar_invert", [vp, vp], ctypes.c_int),
            ("crypto_core_ristretto255_scalar_reduce", [vp, vp], None),
            ("crypto_core_ristretto255_scalar_random", [vp], None),
            ("crypto_core_ristretto255_is_valid_point", [vp], ctypes.c_int),
        ):
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = res
        self.from_hash = lib.crypto_core_ristretto255_from_hash
        self.scalarmult = lib.crypto_scalarmult_ristretto255
        self.scalarmult_base = lib.crypto_scalarmult_ristretto255_base
        self.scalar_invert = lib.crypto_core_ristretto255_scalar_invert
        self.scalar_reduce = lib.crypto_core_ristretto255_scalar_reduce
        self.scalar_random = lib.crypto_core_ristretto255_scalar_random
        self.is_valid_point = lib.crypto_core_ristretto255_is_valid_point


_sodium_instance: _Sodium | None = None


def _sodium() -> _Sodium:
    global _sodium_instance
    if _sodium_instance is None:
        _sodium_instance = _Sodium()
    return _sodium_instance


def available() -> bool:
    """Whether libsodium with ristretto255 can be loaded here."""
    try:
        _sodium()
        return True
    except ConfigError:
        return False


def _parallel(n: int, work: Callable[[int, int], None], progress: Progress | None,
              on_chunk: Callable[[int, int], None] | None = None) -> None:
    """Run ``work(start, stop)`` over chunks of ``range(n)`` on every core, re-raising the first error.

    ``on_chunk(start, stop)`` runs on the calling thread, in order, as each chunk is done,
    while the pool works on the next ones.
    """
    if n == 0:
        return
    if n <= _CHUNK:
        work(0, n)
        if on_chunk:
            on_chunk(0, n)
        if progress:
            progress(n, n)
        return
    size = chunk_size(n, _CHUNK)
    starts = range(0, n, size)
    futures = [pool("oprf").submit(work, s, min(s + size, n)) for s in starts]
    error: BaseException | None = None
    for s, fut in zip(starts, futures):
        try:
            fut.result()
            if on_chunk and error is None:
                on_chunk(s, min(s + size, n))
        except BaseException as exc:  # noqa: BLE001 - wait for every chunk, then raise the first failure
            error = error or exc
        if progress and error is None:
            progress(min(s + size, n), n)
    if error is not None:
        raise error


def _rows(array: np.ndarray, width: int, what: str) -> np.ndarray:
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"{what} must be an (n, {width}) uint8 array, not shape {arr.shape}")
    return arr


# -- RFC 9380 / RFC 9497 building blocks -------------------------------------------

def _i2osp(value: int, length: int) -> bytes:
    return value.to_bytes(length, "big")


def expand_message_xmd_sha512(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """``expand_message_xmd`` of RFC 9380 §5.3.1 with SHA-512."""
    if len(dst) > 255:
        raise ValueError("DST longer than 255 bytes")
    ell = -(-len_in_bytes // 64)
    if ell > 255 or len_in_bytes > 0xFFFF:
        raise ValueError("requested too many bytes")
    dst_prime = dst + _i2osp(len(dst), 1)
    b0 = hashlib.sha512(b"\x00" * 128 + msg + _i2osp(len_in_bytes, 2) + b"\x00" + dst_prime).digest()
    blocks = [hashlib.sha512(b0 + b"\x01" + dst_prime).digest()]
    for i in range(2, ell + 1):
        mixed = bytes(a ^ b for a, b in zip(b0, blocks[-1]))
        blocks.append(hashlib.sha512(mixed + _i2osp(i, 1) + dst_prime).digest())
    return b"".join(blocks)[:len_in_bytes]


def _xmd64_batch(inputs: Sequence[bytes], dst: bytes) -> bytes:
    """``expand_message_xmd(x, dst, 64)`` for every input, concatenated (the hot path of HashToGroup)."""
    dst_prime = dst + _i2osp(len(dst), 1)
    head = hashlib.sha512(b"\x00" * 128)  # the zero block is common to every input: hash it once
    tail = b"\x00\x40\x00" + dst_prime  # I2OSP(64, 2) || I2OSP(0, 1) || DST_prime
    second = b"\x01" + dst_prime
    sha = hashlib.sha512
    out = []
    for x in inputs:
        h = head.copy()
        h.update(x)
        h.update(tail)
        out.append(sha(h.digest() + second).digest())
    return b"".join(out)


def _check_inputs(inputs: Sequence[bytes]) -> None:
    for x in inputs:
        if not isinstance(x, (bytes, bytearray)):
            raise TypeError(f"OPRF inputs are bytes, not {type(x).__name__}")
        if len(x) > MAX_INPUT_BYTES:
            raise InputError(f"an OPRF input of {len(x)} bytes exceeds {MAX_INPUT_BYTES} bytes")


def hash_to_group(inputs: Sequence[bytes], *, progress: Progress | None = None) -> np.ndarray:
    """RFC 9497 ``HashToGroup`` for every input, as an (n, 32) array of ristretto255 elements."""
    _check_inputs(inputs)
    lib = _sodium()
    n = len(inputs)
    out = np.empty((n, ELEMENT_BYTES), dtype=np.uint8)
    base = out.ctypes.data

    def work(start: int, stop: int) -> None:
        uniform = _xmd64_batch(inputs[start:stop], HASH_TO_GROUP_DST)
        src = ctypes.cast(ctypes.c_char_p(uniform), ctypes.c_void_p).value or 0
        from_hash = lib.from_hash
        for j, i in enumerate(range(start, stop)):
            from_hash(base + ELEMENT_BYTES * i, src + 64 * j)

    _parallel(n, work, progress)
    # The map's output is never the identity except for inputs that hash to it, which happens with
    # probability 2^-252; RFC 9497 still asks to refuse it.
    if n and not out.any(axis=1).all():
        raise InputError("an OPRF input hashes to the identity element; it cannot be evaluated")
    return out


def hash_to_scalar(msg: bytes, dst: bytes = HASH_TO_SCALAR_DST) -> bytes:
    """RFC 9497 ``HashToScalar`` for ristretto255: 64 uniform bytes reduced modulo L."""
    uniform = ctypes.create_string_buffer(expand_message_xmd_sha512(msg, dst, 64), 64)
    out = ctypes.create_string_buffer(SCALAR_BYTES)
    _sodium().scalar_reduce(ctypes.addressof(out), ctypes.addressof(uniform))
    return out.raw


def random_scalars(n: int) -> np.ndarray:
    """``n`` uniformly random non-zero scalars, as an (n, 32) array."""
    lib = _sodium()
    out = np.empty((n, SCALAR_BYTES), dtype=np.uint8)
    base = out.ctypes.data
    for i in range(n):  # ~1 µs each: cheap next to the scalar multiplications that follow
        lib.scalar_random(base + SCALAR_BYTES * i)
    return out


def _multiply(scalars: np.ndarray, elements: np.ndarray, *, same_scalar: bool, what: str,
              progress: Progress | None = None) -> np.ndarray:
    """``scalars[i] · elements[i]`` (or one scalar times every element), refusing invalid elements."""
    lib = _sodium()
    n = len(elements)
    out = np.empty((n, ELEMENT_BYTES), dtype=np.uint8)
    out_p, el_p, sc_p = out.ctypes.data, elements.ctypes.data, scalars.ctypes.data
    bad: list[int] = []

    def work(start: int, stop: int) -> None:
        mult = lib.scalarmult
        for i in range(start, stop):
            scalar = sc_p if same_scalar else sc_p + SCALAR_BYTES * i
            if mult(out_p + ELEMENT_BYTES * i, scalar, el_p + ELEMENT_BYTES * i) != 0:
                bad.append(i)
                return

    _parallel(n, work, progress)
    if bad:
        raise ProtocolError(
            f"{what}: element {min(bad)} is not a valid ristretto255 encoding (or is the identity)",
            hint="the peer's message is malformed; the run was stopped",
        )
    return out


GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493


def _invert(scalars: np.ndarray) -> np.ndarray:
    """Inverses modulo the group order of an (n, 32) batch, by Montgomery's trick (one modular inversion).

    libsodium inverts one scalar in ~30 µs; the trick costs three multiplications of
    Python integers per scalar instead (~1 µs), which matters for 10^4-key batches.
    The scalars are the client's own blinds, so timing here depends on nothing secret
    beyond what the blinds are (fresh, discarded after the query).
    """
    values = [int.from_bytes(row, "little") for row in map(bytes, scalars)]
    if any(v % GROUP_ORDER == 0 for v in values):
        raise ValueError("cannot invert the zero scalar")
    prefix = [1] * (len(values) + 1)
    acc = 1
    for i, v in enumerate(values):
        acc = acc * v % GROUP_ORDER
        prefix[i + 1] = acc
    inv = pow(acc, -1, GROUP_ORDER)
    out = [0] * len(values)
    for i in range(len(values) - 1, -1, -1):
        out[i] = inv * prefix[i] % GROUP_ORDER
        inv = inv * values[i] % GROUP_ORDER
    raw = b"".join(v.to_bytes(SCALAR_BYTES, "little") for v in out)
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, SCALAR_BYTES).copy()


def _finalize_hash(inputs: Sequence[bytes], elements: np.ndarray) -> np.ndarray:
    """``SHA-512(I2OSP(len(x), 2) || x || I2OSP(32, 2) || N || "Finalize")`` for every (x, N)."""
    sha = hashlib.sha512
    rows = elements.tobytes()
    digests = b"".join(
        sha(len(x).to_bytes(2, "big") + x + b"\x00\x20" + rows[ELEMENT_BYTES * i : ELEMENT_BYTES * (i + 1)]
            + b"Finalize").digest()
        for i, x in enumerate(inputs)
    )
    return np.frombuffer(digests, dtype=np.uint8).reshape(-1, OUTPUT_BYTES).copy()


# -- the server's key -------------------------------------------------------------

_KEY_MAGIC = b"RSOPRF1\x00"


@dataclass(frozen=True)
class OprfKey:
    """The server's secret key ``k`` (a scalar), with its public key ``k·G`` and a short key id.

    The key id names the key in caches and logs (``key_id`` is derived from the
    public key, so revealing it reveals nothing about ``k``).
    """

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != SCALAR_BYTES:
            raise ValueError(f"an OPRF secret key is {SCALAR_BYTES} bytes")
        if not any(self.secret):
            raise ValueError("the OPRF secret key must not be zero")
        # Canonical scalars only: reducing must not change it.
        reduced = ctypes.create_string_buffer(SCALAR_BYTES)
        wide = ctypes.create_string_buffer(self.secret + b"\x00" * 32, 64)
        _sodium().scalar_reduce(ctypes.addressof(reduced), ctypes.addressof(wide))
        if reduced.raw != self.secret:
            raise ValueError("the OPRF secret key is not a canonical scalar (>= the group order)")

    @classmethod
    def generate(cls) -> "OprfKey":
        """A fresh uniformly random key."""
        return cls(random_scalars(1)[0].tobytes())

    @classmethod
    def derive(cls, seed: bytes, info: bytes = b"") -> "OprfKey":
        """RFC 9497 ``DeriveKeyPair(seed, info)`` (deterministic; used by the test vectors)."""
        if len(seed) != 32:
            raise ValueError("DeriveKeyPair takes a 32-byte seed")
        if len(info) > 0xFFFF:
            raise ValueError("info longer than 65535 bytes")
        derive_input = seed + _i2osp(len(info), 2) + info
        for counter in range(256):
            secret = hash_to_scalar(derive_input + _i2osp(counter, 1), DERIVE_KEY_PAIR_DST)
            if any(secret):
                return cls(secret)
        raise ValueError("DeriveKeyPair failed (probability 2^-2000)")  # pragma: no cover

    @property
    def public_key(self) -> bytes:
        out = ctypes.create_string_buffer(ELEMENT_BYTES)
        sk = ctypes.create_string_buffer(self.secret, SCALAR_BYTES)
        _sodium().scalarmult_base(ctypes.addressof(out), ctypes.addressof(sk))
        return out.raw

    @property
    def key_id(self) -> str:
        """16 hex characters naming this key (SHA-256 of the public key, truncated)."""
        return hashlib.sha256(b"riskshare/oprf/key-id/v1" + self.public_key).hexdigest()[:16]

    def to_bytes(self) -> bytes:
        """Serialise (magic, suite, secret). Store it like any private key (mode 0600)."""
        suite = SUITE.encode()
        return _KEY_MAGIC + bytes([len(suite)]) + suite + self.secret

    @classmethod
    def from_bytes(cls, data: bytes) -> "OprfKey":
        if not data.startswith(_KEY_MAGIC) or len(data) < len(_KEY_MAGIC) + 1:
            raise ConfigError("not a riskshare OPRF key file")
        n = data[len(_KEY_MAGIC)]
        suite = data[len(_KEY_MAGIC) + 1 : len(_KEY_MAGIC) + 1 + n].decode(errors="replace")
        if suite != SUITE:
            raise ConfigError(f"the OPRF key is for suite '{suite}', this version uses '{SUITE}'")
        secret = data[len(_KEY_MAGIC) + 1 + n :]
        try:
            return cls(secret)
        except ValueError as exc:
            raise ConfigError(f"the OPRF key file is damaged: {exc}") from None

    def __repr__(self) -> str:  # never print the secret
        return f"OprfKey(key_id={self.key_id!r})"

    # -- server operations ---------------------------------------------------------
    def blind_evaluate(self, blinded: np.ndarray, *, progress: Progress | None = None) -> np.ndarray:
        """RFC 9497 ``BlindEvaluate`` for every blinded element (an (n, 32) array from the client)."""
        blinded = _rows(blinded, ELEMENT_BYTES, "blinded elements")
        scalar = np.frombuffer(self.secret, dtype=np.uint8).copy()
        return _multiply(scalar, blinded, same_scalar=True, what="blinded elements", progress=progress)

    def evaluate(self, inputs: Sequence[bytes], *, progress: Progress | None = None,
                 on_rows: Callable[[int, int, np.ndarray], None] | None = None) -> np.ndarray:
        """RFC 9497 ``Evaluate``: the PRF outputs ``F(k, x)`` of many inputs at once (table set-up).

        Returns an (n, 64) array; row ``i`` equals what a client obtains for
        ``inputs[i]`` through :func:`blind`, :meth:`blind_evaluate` and :func:`finalize`.
        ``on_rows(start, stop, outputs)`` is called on the calling thread, in order, as
        soon as rows ``[start, stop)`` are ready, so a caller can pipeline its own
        per-row work (sealing records) with the evaluation of the next rows.
        """
        _check_inputs(inputs)
        lib = _sodium()
        n = len(inputs)
        out = np.empty((n, OUTPUT_BYTES), dtype=np.uint8)
        sk = ctypes.create_string_buffer(self.secret, SCALAR_BYTES)
        sk_p = ctypes.addressof(sk)
        failed: list[int] = []

        def work(start: int, stop: int) -> None:
            chunk = inputs[start:stop]
            uniform = _xmd64_batch(chunk, HASH_TO_GROUP_DST)
            src = ctypes.cast(ctypes.c_char_p(uniform), ctypes.c_void_p).value or 0
            points = np.empty((len(chunk), ELEMENT_BYTES), dtype=np.uint8)
            evaluated = np.empty_like(points)
            pp, ep = points.ctypes.data, evaluated.ctypes.data
            from_hash, mult = lib.from_hash, lib.scalarmult
            for j in range(len(chunk)):
                from_hash(pp + ELEMENT_BYTES * j, src + 64 * j)
                if mult(ep + ELEMENT_BYTES * j, sk_p, pp + ELEMENT_BYTES * j) != 0:
                    failed.append(start + j)
                    return
            out[start:stop] = _finalize_hash(chunk, evaluated)

        def chunk_done(start: int, stop: int) -> None:
            if on_rows is not None and not failed:
                on_rows(start, stop, out[start:stop])

        _parallel(n, work, progress, chunk_done)
        if failed:
            raise InputError(f"OPRF input {min(failed)} hashes to the identity element; it cannot be evaluated")
        return out


# -- the client's side ------------------------------------------------------------

@dataclass
class Blinded:
    """A client's batch in flight: the secret blinds and the elements to send to the server."""

    inputs: Sequence[bytes]
    blinds: np.ndarray  # (n, 32) secret scalars: never leave the client
    elements: np.ndarray  # (n, 32) what the server sees: uniformly random group elements


def blind(inputs: Sequence[bytes], *, blinds: np.ndarray | None = None,
          progress: Progress | None = None) -> Blinded:
    """RFC 9497 ``Blind`` for every input (fresh random blinds unless ``blinds`` is given, for test vectors)."""
    inputs = list(inputs)
    points = hash_to_group(inputs)
    if blinds is None:
        blinds = random_scalars(len(inputs))
    blinds = _rows(blinds, SCALAR_BYTES, "blinds")
    if len(blinds) != len(inputs):
        raise ValueError("one blind per input")
    elements = _multiply(blinds, points, same_scalar=False, what="hashed inputs", progress=progress)
    return Blinded(inputs, blinds, elements)


def finalize(blinded: Blinded, evaluated: np.ndarray, *, progress: Progress | None = None) -> np.ndarray:
    """RFC 9497 ``Finalize``: unblind the server's evaluated elements and hash; an (n, 64) array of outputs.

    ``evaluated`` comes from the server: it is validated (shape, canonical
    non-identity elements) and a bad one raises :class:`ProtocolError`.
    """
    n = len(blinded.inputs)
    if not isinstance(evaluated, np.ndarray) or evaluated.dtype != np.uint8 or evaluated.shape != (n, ELEMENT_BYTES):
        shape = getattr(evaluated, "shape", None)
        raise ProtocolError(f"the server returned evaluated elements of shape {shape}; expected ({n}, {ELEMENT_BYTES})")
    evaluated = np.ascontiguousarray(evaluated)
    inverses = _invert(blinded.blinds)
    unblinded = _multiply(inverses, evaluated, same_scalar=False, what="evaluated elements", progress=progress)
    return _finalize_hash(blinded.inputs, unblinded)


__all__ = [
    "SUITE", "CONTEXT", "ELEMENT_BYTES", "SCALAR_BYTES", "OUTPUT_BYTES", "OprfKey", "Blinded",
    "blind", "finalize", "hash_to_group", "hash_to_scalar", "expand_message_xmd_sha512", "random_scalars",
    "available",
]
