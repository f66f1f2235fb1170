"""ECDH-PSI (Diffie–Hellman private set intersection) over X25519.

Construction: Meadows 1986; Huberman, Franklin & Hogg 1999 ("Enhancing privacy
and trust in electronic communities"); the form used here is the one analysed
by De Cristofaro & Tsudik (2010) and deployed by Ion et al. (2020, Google's
private join and compute). The group is X25519 on hashed inputs
(:mod:`riskshare.crypto.x25519`, RFC 7748), 128-bit security.

Security model: semi-honest (honest-but-curious), under the decisional
Diffie–Hellman assumption with H modelled as a random oracle.

Flow (receiver R holds X, sender S holds Y; a, b fresh random scalars)::

    R -> S   H(x)^a for x in X, in random order              (|X| points)
    S -> R   H(y)^b for y in Y, in random order              (|Y| points)
    S -> R   (H(x)^a)^b in the order received, truncated     (|X| x 16 bytes)
    R        intersects {(H(x)^a)^b} with {(H(y)^b)^a}

What each party learns:

* **receiver** (``output_mode="intersection"``): X ∩ Y and |Y|; nothing about
  Y \\ X.
* **sender**: |X| only. With ``result_to="both"`` the receiver then sends the
  positions of the matches in S's shuffled list, so S learns X ∩ Y as well.
* ``output_mode="count"``: S shuffles the double-masked values before
  returning them, so R can count matches but not tell which of its elements
  they are; R tells S the count. Both learn |X ∩ Y| (and each other's set
  sizes) and nothing else.

Messages are shuffled so their order reveals nothing about the input order.
Double-masked values are truncated to 16 bytes: a false match among n·m pairs
has probability below n·m / 2^128 (negligible for any n, m ≤ 2^32).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from ...crypto import x25519
from ...errors import ProtocolError
from ...net import Link
from .common import PsiParams, PsiResult, Progress, Role, agree, check_indices
from .matching import match

NAME = "ecdh"
DOMAIN = b"riskshare/psi/ecdh-x25519/v1"
TRUNCATE = 16


def _progress_for(progress: Progress | None, step: str):
    if progress is None:
        return None
    return lambda done, total: progress(step, done, total)


def run(
    link: Link,
    peer: str,
    role: Role,
    ids: Sequence[str] | pa.Array,
    params: PsiParams | None = None,
    *,
    progress: Progress | None = None,
) -> PsiResult:
    """Run ECDH-PSI on distinct, normalised ``ids``; see the module docstring for who learns what."""
    params = params or PsiParams(protocol=NAME)
    if params.output_mode == "sum":
        raise ProtocolError("ECDH-PSI has no sum mode here; use --protocol for PSI-sum")
    if isinstance(ids, pa.Array):
        ids = ids.to_pylist()
    n_peer = agree(link, peer, role, params, len(ids))
    n = len(ids)
    rng = np.random.default_rng()
    secret = x25519.random_scalar()
    perm = rng.permutation(n)  # our elements in the order we send them
    hashed = x25519.hash_to_points([ids[i] for i in perm], DOMAIN)
    masked = x25519.multiply(secret, hashed, progress=_progress_for(progress, "mask own IDs"))
    count_only = params.output_mode == "count"

    if role == "receiver":
        link.send(peer, "psi/ecdh/x_a", masked)
        y_b = link.recv_array(peer, "psi/ecdh/y_b", dtype=np.uint8, shape=(n_peer, x25519.POINT_BYTES))
        y_ba = x25519.multiply(secret, y_b, progress=_progress_for(progress, "mask peer's IDs"))[:, :TRUNCATE]
        x_ab = link.recv_array(peer, "psi/ecdh/x_ab", dtype=np.uint8, shape=(n, TRUNCATE))
        mine, theirs = match(x_ab, np.ascontiguousarray(y_ba))
        if count_only:
            link.send_json(peer, "psi/ecdh/count", int(len(mine)))
            return PsiResult(role, NAME, n, n_peer, size=int(len(mine)))
        indices = np.sort(perm[mine])
        if params.result_to == "both":
            link.send(peer, "psi/ecdh/matches", np.sort(theirs).astype("<u8"))
        return PsiResult(role, NAME, n, n_peer, indices=indices, size=int(len(indices)))

    # sender
    link.send(peer, "psi/ecdh/y_b", masked)
    x_a = link.recv_array(peer, "psi/ecdh/x_a", dtype=np.uint8, shape=(n_peer, x25519.POINT_BYTES))
    x_ab = x25519.multiply(secret, x_a, progress=_progress_for(progress, "mask peer's IDs"))[:, :TRUNCATE]
    if count_only:
        x_ab = x_ab[rng.permutation(len(x_ab))]
    link.send(peer, "psi/ecdh/x_ab", np.ascontiguousarray(x_ab))
    if count_only:
        size = link.recv_json(peer, "psi/ecdh/count")
        if not isinstance(size, int) or not 0 <= size <= min(n, n_peer):
            raise ProtocolError(f"peer '{peer}' reported an impossible intersection size {size!r}")
        return PsiResult(role, NAME, n, n_peer, size=size)
    if params.result_to == "both":
        positions = link.recv_array(peer, "psi/ecdh/matches", dtype="<u8", shape=(None,))
        if len(positions) > min(n, n_peer):
            raise ProtocolError(f"peer '{peer}' reported more matches than the sets allow")
        positions = check_indices(positions.astype(np.int64), n, peer, "psi/ecdh/matches")
        indices = np.sort(perm[positions])
        return PsiResult(role, NAME, n, n_peer, indices=indices, size=int(len(indices)))
    return PsiResult(role, NAME, n, n_peer)
