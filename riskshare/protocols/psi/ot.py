"""OT-based PSI (KKRT16): batched OPRF from OT extension, the fast protocol for large sets.

Kolesnikov, Kumaresan, Rosulek & Trieu, "Efficient Batched Oblivious PRF
with Applications to Private Set Intersection", CCS 2016, §5 (the
OPRF-based PSI of Pinkas, Schneider, Segev & Zohner, USENIX Security 2015,
with the batched OPRF of :mod:`riskshare.crypto.ot.kkrt`).

Security model: semi-honest (honest-but-curious) parties; 128-bit
computational security (Chou–Orlandi base OTs on edwards25519, AES-128) and
40-bit statistical security (false matches, code distance). Parameters and
their sources:

* IDs → 128 bits: length-prepended CBC-MAC-AES under a fresh joint key
  (:func:`.hashing.compress_ids`).
* Receiver: cuckoo hashing with k = 3 hash functions into m = 1.27·n_R bins
  (Pinkas et al., EUROCRYPT 2019, §5; failure < 2^-40 without a stash) and an
  optional stash of s slots (KKRT16 §5.2); a table that does not fit is
  rebuilt with a fresh hash key *before* the key is sent, so a retry reveals
  nothing and no element is ever dropped.
* OPRF: KKRT16 with a 512-bit pseudorandom code (see :mod:`riskshare.crypto.ot.kkrt`).
* Output length ℓ = λ + log2(compared pairs) bits, λ = 40 (KKRT16 §5.1):
  any false match among all receiver/sender value pairs has probability ≤ 2^-40.

Flow (receiver R with X, sender S with Y; both sizes agreed first)::

    R, S    exchange fresh nonces -> session id, ID key
    R -> S  cuckoo hash key                            (16 bytes)
    R <-> S OPRF on the m + s bins (R: x ⊕ i for the x in bin i, via hash i)
    S -> R  F(h_i(y), y ⊕ i) for every y and i = 1..3, and F(stash j, y) for each
            stash slot, truncated to ℓ bits ((3 + s)·|Y| values), in batches of
            randomly drawn y, each batch ordered by the values themselves
    R       X ∩ Y = the x whose own OPRF value is among them

What each party learns:

* **receiver**: X ∩ Y and |Y|. Values of y ∉ X are pseudorandom to it.
* **sender**: |X| only. With ``result_to="both"`` the receiver then sends the
  positions of the matching values in the sender's list, so the sender
  learns X ∩ Y as well.

Neither the batches (random subsets of Y) nor the order inside a batch (set
by the pseudorandom values) says anything about the sender's input order;
batching lets the receiver match one batch while the next is computed.
* Cardinality-only and sum modes are not offered: the receiver of an OPRF
  protocol always sees which of its values matched. Use ``ecdh`` for
  ``output_mode="count"`` and the PSI-sum protocol for sums.

A receiver that is sent more (or fewer) values than (3 + s)·|Y| aborts; so
does a sender that gets out-of-range or repeated positions.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
import pyarrow as pa

from ...crypto.ot import kkrt
from ...crypto.workers import pool as worker_pool
from ...errors import InputError, ProtocolError
from ...net import Link
from . import hashing
from .common import Progress, PsiParams, PsiResult, Role, agree, as_id_array, check_indices
from .matching import SortedTable

NAME = "ot"
VARIANT = "kkrt16/w512/k3/e1.27/rows"  # "rows": U travels as row-major (m, 8) words
LAMBDA = 40
MAX_RETRIES = 32
BATCH = 1 << 19  # OPRF values per message from the sender


def _batches(items: int, per_item: int) -> list[tuple[int, int]]:
    """(first item, items) of each batch of the sender's values (``per_item`` values per ID).

    Both sides derive the same batches from the agreed sizes.
    """
    size = max(1, BATCH // per_item)
    return [(start, min(size, items - start)) for start in range(0, items, size)]


def _send_order(values: np.ndarray) -> np.ndarray:
    """Order of a batch on the wire: by the top 16 bits of each (pseudorandom) value, else as computed.

    An order fixed by the values themselves reveals nothing, and nearly sorted
    batches make the receiver's lookups cache-friendly; a 16-bit key sorts in
    linear time.
    """
    top = (np.ascontiguousarray(values[:, :8]).view("<u8").reshape(-1) >> np.uint64(48)).astype(np.uint16)
    return np.argsort(top, kind="stable")


def output_bytes(receiver_values: int, sender_values: int) -> int:
    """Bytes per OPRF value: λ + log2(pairs compared) bits, at least 8 (the matcher's key)."""
    pairs = max(1, receiver_values) * max(1, sender_values)
    bits = LAMBDA + int(np.ceil(np.log2(pairs)))
    return max(8, -(-bits // 8))


def _session(link: Link, peer: str, role: Role) -> bytes:
    mine = os.urandom(16)
    link.send(peer, "psi/ot/nonce", mine)
    theirs = link.recv_bytes(peer, "psi/ot/nonce", exact=16)
    r, s = (mine, theirs) if role == "receiver" else (theirs, mine)
    return hashlib.sha256(b"riskshare/psi/ot/session/v1" + r + s).digest()[:16]


def _derive(session: bytes, label: bytes) -> bytes:
    return hashlib.sha256(b"riskshare/psi/ot/" + label + session).digest()[:16]


def _tweak(values: np.ndarray, index: int) -> np.ndarray:
    """The OPRF input for a value reached through hash function ``index`` (0 = stash)."""
    out = values.copy()
    out[:, 0] ^= np.uint64(index)
    return out


def run(
    link: Link,
    peer: str,
    role: Role,
    ids: Sequence[str] | pa.Array,
    params: PsiParams | None = None,
    *,
    progress: Progress | None = None,
) -> PsiResult:
    """Run OT-based PSI on distinct, normalised ``ids``; see the module docstring for who learns what."""
    params = params or PsiParams(protocol=NAME, extra={"variant": VARIANT, "stash": 0})
    if params.output_mode != "intersection":
        raise InputError(
            f"--protocol ot has no '{params.output_mode}' mode",
            hint="use --protocol ecdh for --output-mode count (or --protocol auto)",
        )
    stash = int(params.extra.get("stash", 0))
    if not 0 <= stash <= 16:
        raise InputError("the cuckoo stash holds 0 to 16 values")
    ids = as_id_array(ids)
    n = len(ids)
    n_peer = agree(link, peer, role, params, n)
    step = (lambda name, done, total: progress(name, done, total)) if progress else (lambda *a: None)
    if n == 0 or n_peer == 0:  # both sides know the sizes: nothing to compare
        empty = np.zeros(0, dtype=np.int64)
        learns = role == "receiver" or params.result_to == "both"
        return PsiResult(role, NAME, n, n_peer, indices=empty if learns else None, size=0 if learns else None)
    session = _session(link, peer, role)
    # Local hashing (ID compression, and the receiver's cuckoo table) runs on a worker thread while the
    # input-independent OT-extension setup talks to the peer: numpy and libsodium release the GIL (OpenSSL's AES
    # through `cryptography` does not, measured, so only its numpy share overlaps).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rs-psi-hash") as pool:
        if role == "receiver":
            return _receiver(link, peer, pool, ids, n_peer, stash, session, params, step)
        return _sender(link, peer, pool, ids, n_peer, stash, session, params, step)


def _cuckoo_table(ids: pa.Array, session: bytes, bins: int, stash: int):
    values = hashing.compress_ids(ids, _derive(session, b"ids"))
    for _attempt in range(MAX_RETRIES):
        bin_key = os.urandom(16)  # a table that does not fit is rebuilt before its key is ever sent
        try:
            return values, bin_key, hashing.cuckoo(hashing.candidates(values, bin_key, bins), bins, stash)
        except hashing.CuckooFailure:
            continue
    raise ProtocolError(  # pragma: no cover - probability far below 2^-40 per attempt at these parameters
        f"could not build a cuckoo table for {len(values)} IDs in {MAX_RETRIES} attempts")


def _receiver(link, peer, pool, ids, n_peer, stash, session, params, step) -> PsiResult:
    n = len(ids)
    bins = hashing.bins_for(n)
    rows = kkrt.padded_rows(bins + stash)
    table_job = pool.submit(_cuckoo_table, ids, session, bins, stash)
    step("oblivious transfers", 0, 1)
    setup = kkrt.receiver_setup(link, peer, rows, session, tag="psi/ot/oprf")
    values, bin_key, table = table_job.result()
    link.send(peer, "psi/ot/bin-key", bin_key)
    inputs = hashing.random_blocks(rows)  # dummies for empty bins, empty stash slots and padding
    occupied = np.flatnonzero(table.bins >= 0)
    owner = table.bins[occupied]
    inputs[occupied] = values[owner]
    inputs[occupied, 0] ^= (table.hash_index[occupied].astype(np.uint64) + np.uint64(1))
    filled = np.flatnonzero(table.stash >= 0)
    inputs[bins + filled] = values[table.stash[filled]]  # stash inputs use tweak 0
    instances = np.concatenate([occupied, bins + filled])
    owners = np.concatenate([owner, table.stash[filled]])
    width = output_bytes(n, (hashing.HASHES + stash) * n_peer)
    step("oblivious PRF", 0, 1)
    oprf = setup.finish(link, peer, inputs, width, tag="psi/ot/oprf")
    mine = oprf[instances]
    step("oblivious PRF", 1, 1)
    table_of_mine = SortedTable(mine)
    found_mine, found_theirs = [], []
    per = hashing.HASHES + stash
    for first, count in _batches(n_peer, per):
        theirs = link.recv_array(peer, "psi/ot/values", dtype=np.uint8, shape=(per * count, width))
        li, rj = table_of_mine.probe(theirs)
        found_mine.append(li)
        found_theirs.append(rj + per * first)
    li, rj = np.concatenate(found_mine), np.concatenate(found_theirs)
    indices = np.sort(owners[li])
    if params.result_to == "both":
        link.send(peer, "psi/ot/matches", np.sort(rj).astype("<u8"))
    return PsiResult("receiver", NAME, n, n_peer, indices=indices, size=int(len(indices)),
                     details={"bins": bins, "stash": stash, "value_bytes": width})


def _sender(link, peer, pool, ids, n_peer, stash, session, params, step) -> PsiResult:
    n = len(ids)
    bins = hashing.bins_for(n_peer)
    rows = kkrt.padded_rows(bins + stash)
    values_job = pool.submit(hashing.compress_ids, ids, _derive(session, b"ids"))
    step("oblivious transfers", 0, 1)
    setup = kkrt.sender_setup(link, peer, rows, session, tag="psi/ot/oprf")
    values = values_job.result()
    # Batches of IDs drawn in a random order (so a batch says nothing about where its IDs sit in our
    # input); each batch carries the values of its IDs under every hash function and stash slot.
    perm = np.random.default_rng().permutation(n)
    values = values[perm]
    bin_key = link.recv_bytes(peer, "psi/ot/bin-key", exact=16)
    cand = hashing.candidates(values, bin_key, bins)
    step("oblivious PRF", 0, 1)
    key = setup.finish(link, peer, tag="psi/ot/oprf")
    per = hashing.HASHES + stash
    width = output_bytes(n_peer, per * n)
    sent_item = np.empty(per * n, dtype=np.int64)  # for --result-to both: which ID each sent value is of

    def evaluate(key: kkrt.OprfKey, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        chunk = values[first : first + count]
        instances = np.concatenate([cand[first : first + count, k] for k in range(hashing.HASHES)]
                                   + [np.full(count, bins + j) for j in range(stash)])
        inputs = np.concatenate([_tweak(chunk, k + 1) for k in range(hashing.HASHES)] + [chunk] * stash)
        out = key.evaluate(instances, inputs, width)
        order = _send_order(out)
        return out[order], order

    # Two batches are evaluated at once and sent in order as they complete: the gathers, XORs and sorts
    # (numpy, which releases the GIL) of one overlap the other's, while the receiver only matches.
    batches = _batches(n, per)
    workers = worker_pool("psi-oprf")
    pending = [workers.submit(evaluate, key, *batch) for batch in batches[:2]]
    for i, (first, count) in enumerate(batches):
        sorted_values, order = pending[i].result()
        pending[i] = None  # type: ignore[call-overload]  # drop the batch once it is sent
        if i + 2 < len(batches):
            pending.append(workers.submit(evaluate, key, *batches[i + 2]))
        link.send(peer, "psi/ot/values", sorted_values)
        sent_item[per * first : per * (first + count)] = perm[first + order % count]
    del key
    step("oblivious PRF", 1, 1)
    if params.result_to != "both":
        return PsiResult("sender", NAME, n, n_peer, details={"bins": bins, "stash": stash, "value_bytes": width})
    positions = link.recv_array(peer, "psi/ot/matches", dtype="<u8", shape=(None,))
    if len(positions) > min(n, n_peer):
        raise ProtocolError(f"peer '{peer}' reported more matches than the sets allow")
    positions = check_indices(positions.astype(np.int64), len(sent_item), peer, "psi/ot/matches")
    items = sent_item[positions]
    indices = check_indices(items, n, peer, "psi/ot/matches")
    return PsiResult("sender", NAME, n, n_peer, indices=indices, size=int(len(indices)),
                     details={"bins": bins, "stash": stash, "value_bytes": width})
