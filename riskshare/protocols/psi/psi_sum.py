"""PSI-sum: the receiver learns |X ∩ Y| and the sum of the sender's values over X ∩ Y, nothing per member.

Construction: Ion, Kreuter, Nergiz, Patel, Saxena, Seth, Raykova, Shanahan &
Yung, "On Deploying Secure Computing: Private Intersection-Sum-with-
Cardinality", EuroS&P 2020 (Google's private join and compute), on the
X25519 commutative masking of :mod:`.ecdh` and the additively homomorphic
engine :mod:`riskshare.crypto.he` (Okamoto–Uchiyama by default, Paillier on
request), adapted so that the party *without* the values learns the sum:

    R (receiver, IDs X)                        S (sender, pairs (y, t_y), HE key pair)
    R -> S  {H(x)^a}, shuffled
    S -> R  {H(x)^ab}, shuffled again, truncated    (R cannot tell which x each is)
    S -> R  HE public key; {(H(y)^b, Enc(t_y))}, shuffled
    R       matches (H(y)^b)^a against {H(x)^ab}: the count c and the matching pairs J
    R -> S  Enc(Σ_J t_j + r), re-randomised, r uniform in [0, 2^(P-2))
    S -> R  Σ_J t_j + r (decrypted)
    R       sum = (Σ_J t_j + r) - r

Security model: semi-honest parties; DDH on X25519 with H a random oracle,
and the semantic security of the homomorphic scheme (2048-bit modulus:
~112-bit security; pass ``key_bits=3072`` for 128).

What each party learns (exactly):

* **receiver**: |X ∩ Y|, the sum Σ_{y ∈ X∩Y} t_y, and |Y|. It sees which of
  S's *pseudonymous* pairs matched, but not which of its own x they match
  (its own masked IDs came back shuffled), nor any single t_y (ciphertexts).
* **sender**: |X| and the masked value Σ + r. Since r is uniform over
  2^(P-2) (P = the plaintext bits, ~680 for OU, ~2046 for Paillier) and
  |Σ| < 2^(62+log2|Y|), Σ + r is statistically independent of Σ (distance
  below 2^-500): the sender learns nothing about the intersection.

Values are integers (the caller scales decimals, e.g. to cents) with
|t| < 2^62; the sum is exact.
"""

from __future__ import annotations

import secrets
from typing import Sequence

import numpy as np
import pyarrow as pa

from ...crypto import he, x25519
from ...errors import InputError, ProtocolError
from ...net import Link
from .common import Progress, PsiParams, PsiResult, Role, agree
from .matching import match

NAME = "sum"
DOMAIN = b"riskshare/psi/sum-x25519/v1"
TRUNCATE = 16
DEFAULT_SCHEME = "ou"


def run(
    link: Link,
    peer: str,
    role: Role,
    ids: Sequence[str] | pa.Array,
    params: PsiParams | None = None,
    *,
    progress: Progress | None = None,
    values: np.ndarray | None = None,
) -> PsiResult:
    """Run PSI-sum; the sender passes ``values`` (int64, one per ID, |v| < 2^62)."""
    params = params or PsiParams(protocol=NAME, output_mode="sum", extra={"scheme": DEFAULT_SCHEME})
    if params.result_to != "receiver":
        raise InputError("PSI-sum gives the sum to the receiver only", hint="drop --result-to both")
    if isinstance(ids, (pa.Array, pa.ChunkedArray)):
        ids = ids.to_pylist()
    ids = list(ids)
    if role == "sender":
        if values is None or len(values) != len(ids):
            raise InputError("the PSI-sum sender needs one value per ID (--value-column)")
        values = np.asarray(values, dtype=np.int64)
        if len(values) and int(np.abs(values).max()) >= 2**62:
            raise InputError("PSI-sum values must be below 2^62 in magnitude", hint="use a smaller --value-scale")
    n_peer = agree(link, peer, role, params, len(ids))
    step = (lambda name, done, total: progress(name, done, total)) if progress else (lambda *a: None)
    rng = np.random.default_rng()
    secret = x25519.random_scalar()
    perm = rng.permutation(len(ids))
    masked = x25519.multiply(secret, x25519.hash_to_points([ids[i] for i in perm], DOMAIN),
                             progress=lambda d, t: step("mask own IDs", d, t))
    if role == "receiver":
        return _receiver(link, peer, masked, secret, n_peer, params, step)
    return _sender(link, peer, masked, perm, values, secret, n_peer, params, rng, step)  # type: ignore[arg-type]


def _receiver(link, peer, masked, secret, n_peer, params, step) -> PsiResult:
    n = len(masked)
    link.send(peer, "psi/sum/x_a", masked)
    x_ab = link.recv_array(peer, "psi/sum/x_ab", dtype=np.uint8, shape=(n, TRUNCATE))
    key_doc = link.recv_json(peer, "psi/sum/public-key")
    try:
        pk = he.load_public_key(key_doc)
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"peer '{peer}' sent an unusable public key: {exc}") from None
    if isinstance(key_doc, dict) and key_doc.get("scheme") != params.extra.get("scheme"):
        raise ProtocolError(f"peer '{peer}' sent a {key_doc.get('scheme')!r} key; "
                            f"{params.extra.get('scheme')!r} was agreed")
    y_b = link.recv_array(peer, "psi/sum/y_b", dtype=np.uint8, shape=(n_peer, x25519.POINT_BYTES))
    raw = link.recv_array(peer, "psi/sum/values", dtype=np.uint8, shape=(n_peer, pk.ciphertext_bytes))
    encrypted = pk.ciphertexts_from_bytes(raw, peer=peer, step="psi/sum/values")
    y_ba = x25519.multiply(secret, y_b, progress=lambda d, t: step("mask peer's IDs", d, t))[:, :TRUNCATE]
    _, matched = match(x_ab, np.ascontiguousarray(y_ba))
    count = int(len(matched))
    mask = secrets.randbelow(2 ** (pk.plaintext_bits - 2))
    if count:
        total = pk.sum(encrypted[np.sort(matched).tolist()])
    else:
        total = pk.encrypt([0])
    hidden = pk.rerandomize(pk.add_plain(total, [mask]))
    link.send(peer, "psi/sum/masked-sum", pk.ciphertexts_to_bytes(hidden))
    reply = link.recv_json(peer, "psi/sum/decrypted")
    if not isinstance(reply, str):
        raise ProtocolError(f"peer '{peer}' sent a malformed decryption")
    try:
        value = int(reply) - mask
    except ValueError:
        raise ProtocolError(f"peer '{peer}' sent a malformed decryption") from None
    bound = min(count, n_peer) * 2**62
    if abs(value) > bound:
        raise ProtocolError(f"peer '{peer}' returned a decryption inconsistent with {count} matches")
    return PsiResult("receiver", NAME, n, n_peer, size=count, total=float(value),
                     details={"total_integer": value, "scheme": pk.to_json().get("scheme")})


def _sender(link, peer, masked, perm, values, secret, n_peer, params, rng, step) -> PsiResult:
    n = len(masked)
    scheme = params.extra.get("scheme", DEFAULT_SCHEME)
    bits = int(params.extra.get("key_bits", he.DEFAULT_KEY_BITS))
    sk = he.generate_keypair(scheme, bits)
    pk = sk.public_key
    step("encrypt values", 0, 1)
    encrypted = sk.encrypt(values[perm])  # in the order of the masked IDs we send
    step("encrypt values", 1, 1)
    x_a = link.recv_array(peer, "psi/sum/x_a", dtype=np.uint8, shape=(n_peer, x25519.POINT_BYTES))
    x_ab = x25519.multiply(secret, x_a, progress=lambda d, t: step("mask peer's IDs", d, t))[:, :TRUNCATE]
    link.send(peer, "psi/sum/x_ab", np.ascontiguousarray(x_ab[rng.permutation(len(x_ab))]))
    link.send_json(peer, "psi/sum/public-key", pk.to_json())
    link.send(peer, "psi/sum/y_b", masked)
    link.send(peer, "psi/sum/values", pk.ciphertexts_to_bytes(encrypted))
    raw = link.recv_array(peer, "psi/sum/masked-sum", dtype=np.uint8, shape=(1, pk.ciphertext_bytes))
    hidden = pk.ciphertexts_from_bytes(raw, peer=peer, step="psi/sum/masked-sum")
    link.send_json(peer, "psi/sum/decrypted", str(sk.decrypt_list(hidden)[0]))
    return PsiResult("sender", NAME, n, n_peer)
