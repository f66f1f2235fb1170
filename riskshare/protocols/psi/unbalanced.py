"""Unbalanced PSI: a large server set preprocessed once, small client sets answered in milliseconds.

Construction: Kiss, Liu, Schneider, Asokan & Pinkas, "Private Set
Intersection for Unequal Set Sizes with Mobile Applications", PETS 2017
(the DH-OPRF variant, §4), with the OPRF of RFC 9497 (2HashDH over
ristretto255, :mod:`riskshare.crypto.oprf`) in place of their ECC-NR PRF.

* **Offline, once per set** (``riskshare psi-set prepare``): the server draws
  an OPRF key k and computes F(k, y) for every y ∈ Y (≈ 0.1 ms per ID per
  core), keeping key, IDs and values under its node home
  (:class:`.store.ServerSet`). Additions append values under the same key;
  removals need a rebuild with a fresh key.
* **Sync, at the start of a run**: the client holds a copy of the values
  (:class:`.store.ClientCache`). It tells the server which key and how many
  values it has; the server sends the values it lacks (everything on the
  first run or after a new key, only the additions otherwise).
* **Online**: the client blinds its |X| IDs (RFC 9497 Blind), the server
  evaluates them (BlindEvaluate), the client unblinds (Finalize) and looks
  the results up in its copy. Online cost: 3·|X| group operations and
  64·|X| bytes — independent of |Y|.

Security model: semi-honest server and client; OPRF security under
One-More Gap DH in the random-oracle model (RFC 9497 §7.2), ~128-bit
security. Values are truncated to 96 bits: a false match among |X|·|Y| ≤
2^56 pairs has probability ≤ 2^-40 (runs beyond that are refused).

What each party learns:

* **client (receiver)**: X ∩ Y and |Y|; from the sync, also how many IDs the
  server added since its last run. The copy of F(k, ·) it keeps is
  pseudorandom without k and reveals nothing else about Y — but it lets each
  later run answer for new client IDs, which is what the protocol is for.
* **server (sender)**: |X| only (blinded elements are uniformly random).
  With ``result_to="both"`` the client then sends the server positions of the
  matches, so the server learns X ∩ Y as well.

Cardinality-only output is not offered (the client always sees which of its
own values matched).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from ...crypto import oprf
from ...errors import InputError, ProtocolError
from ...net import Link
from .common import Progress, PsiParams, PsiResult, Role, agree, check_indices
from .store import VALUE_BYTES, ClientCache, ServerSet, truncate

NAME = "unbalanced"
MAX_PAIRS_LOG2 = 8 * VALUE_BYTES - 40


def run(
    link: Link,
    peer: str,
    role: Role,
    ids: Sequence[str] | pa.Array,
    params: PsiParams | None = None,
    *,
    progress: Progress | None = None,
    store: ServerSet | ClientCache | None = None,
) -> PsiResult:
    """Run unbalanced PSI: the sender serves ``store`` (a ServerSet), the receiver keeps its copy in ``store``."""
    params = params or PsiParams(protocol=NAME)
    if params.output_mode != "intersection":
        raise InputError(f"--protocol unbalanced has no '{params.output_mode}' mode",
                         hint="use --protocol ecdh for --output-mode count")
    if role == "sender":
        if not isinstance(store, ServerSet):
            raise InputError("the server side of unbalanced PSI needs a prepared set (--set NAME)")
        return _server(link, peer, store, params)
    if not isinstance(store, ClientCache):
        raise InputError("the client side of unbalanced PSI needs a cache folder for the server's values")
    ids = ids.to_pylist() if isinstance(ids, (pa.Array, pa.ChunkedArray)) else list(ids)
    return _client(link, peer, ids, store, params, progress)


def _client(link: Link, peer: str, ids: list[str], cache: ClientCache, params: PsiParams,
            progress: Progress | None) -> PsiResult:
    n = len(ids)
    n_server = agree(link, peer, "receiver", params, n)
    if n and n_server and np.log2(float(n) * n_server) > MAX_PAIRS_LOG2:
        raise InputError(f"{n} x {n_server} IDs exceed what {VALUE_BYTES}-byte values separate at 2^-40",
                         hint="split the client set into smaller runs")
    link.send_json(peer, "psi/ub/have", {"key_id": cache.key_id, "count": cache.count})
    offer = link.recv_json(peer, "psi/ub/offer")
    if not isinstance(offer, dict) or offer.get("count") != n_server or not isinstance(offer.get("key_id"), str):
        raise ProtocolError(f"peer '{peer}' offered a set that does not match the agreed size {n_server}")
    start = offer.get("start")
    if start not in (0, cache.count) or (start and offer["key_id"] != cache.key_id):
        raise ProtocolError(f"peer '{peer}' offered values from an impossible position {start!r}")
    fresh = link.recv_array(peer, "psi/ub/values", dtype=np.uint8, shape=(n_server - start, VALUE_BYTES))
    if len(fresh) or start == 0:
        cache.update(offer["key_id"], int(offer.get("version", 0)), start, fresh)
    if progress:
        progress("server values up to date", 1, 1)
    if n == 0:
        link.send(peer, "psi/ub/blinded", np.zeros((0, oprf.ELEMENT_BYTES), np.uint8))
        link.recv_array(peer, "psi/ub/evaluated", dtype=np.uint8, shape=(0, oprf.ELEMENT_BYTES))
        found, positions = np.zeros(0, np.int64), np.zeros(0, np.int64)
    else:
        blinded = oprf.blind([s.encode() for s in ids])
        link.send(peer, "psi/ub/blinded", blinded.elements)
        evaluated = link.recv_array(peer, "psi/ub/evaluated", dtype=np.uint8, shape=(n, oprf.ELEMENT_BYTES))
        values = truncate(oprf.finalize(blinded, evaluated))
        found, positions = cache.lookup(values)
    order = np.argsort(found)
    found, positions = found[order], positions[order]
    if params.result_to == "both":
        link.send(peer, "psi/ub/matches", np.sort(positions).astype("<u8"))
    return PsiResult("receiver", NAME, n, n_server, indices=found, size=int(len(found)),
                     details={"synced_values": int(len(fresh)), "full_sync": start == 0})


def _server(link: Link, peer: str, server_set: ServerSet, params: PsiParams) -> PsiResult:
    n = server_set.count
    n_client = agree(link, peer, "sender", params, n)
    have = link.recv_json(peer, "psi/ub/have")
    if not isinstance(have, dict):
        raise ProtocolError(f"peer '{peer}' sent a malformed cache state")
    count = have.get("count")
    start = count if (have.get("key_id") == server_set.key_id and isinstance(count, int) and 0 <= count <= n) else 0
    link.send_json(peer, "psi/ub/offer", {"key_id": server_set.key_id, "version": server_set.meta["version"],
                                          "start": start, "count": n})
    link.send(peer, "psi/ub/values", server_set.values(start) if start < n else np.zeros((0, VALUE_BYTES), np.uint8))
    blinded = link.recv_array(peer, "psi/ub/blinded", dtype=np.uint8, shape=(n_client, oprf.ELEMENT_BYTES))
    link.send(peer, "psi/ub/evaluated", server_set.key().blind_evaluate(blinded) if n_client else blinded)
    details = {"sent_values": int(n - start), "full_sync": start == 0}
    if params.result_to != "both":
        return PsiResult("sender", NAME, n, n_client, details=details)
    positions = link.recv_array(peer, "psi/ub/matches", dtype="<u8", shape=(None,))
    if len(positions) > min(n, n_client):
        raise ProtocolError(f"peer '{peer}' reported more matches than the sets allow")
    indices = check_indices(positions.astype(np.int64), n, peer, "psi/ub/matches")
    return PsiResult("sender", NAME, n, n_client, indices=indices, size=int(len(indices)), details=details)
