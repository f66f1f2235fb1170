"""Bucketing: split a large PSI into independent buckets by a keyed hash of the normalised ID.

Both parties hash every ID with a key they derive together in this run and
keep, for bucket b, the IDs that hash to b; an ID shared by both sides lands
in the same bucket on both, so the intersection is the union of the
per-bucket intersections. Each bucket runs the unchanged protocol function on
its own scoped link (``bucket/<b>``), which keeps memory bounded by the bucket
size and lets an executor other than :class:`SequentialExecutor` (e.g. Ray,
one task per bucket) run buckets in parallel on a cluster.

Leakage control: every bucket is padded with random dummy IDs to a common
capacity ``cap(n, B) = ⌈μ + 7√μ + 8⌉`` (μ = n/B), a public function of the
set size, so the per-bucket sizes the inner protocol exchanges reveal nothing
beyond n. A bucket over capacity (probability below 10^-11 per bucket) makes
both sides move to a fresh key — the only data-dependent bit, and it is
exchanged before any ID-derived message. Dummies are 128-bit random strings
and match nothing except with probability ~2^-128; the padding costs under
1 % at a million IDs per bucket.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol, Sequence, TypeVar

import numpy as np
import pyarrow as pa

from ...errors import ProtocolError
from ...net import Link
from . import hashing
from .common import Progress, PsiResult, Role

T = TypeVar("T")
DEFAULT_BUCKET_SIZE = 1 << 20  # IDs of the larger side per bucket
MAX_KEY_ATTEMPTS = 8


def bucket_count(n_receiver: int, n_sender: int, bucket_size: int) -> int:
    return max(1, math.ceil(max(n_receiver, n_sender) / max(1, bucket_size)))


def capacity(n: int, buckets: int) -> int:
    """Padded size of each of a party's buckets: a public function of its set size."""
    if buckets == 1:
        return n
    mu = n / buckets
    return math.ceil(mu + 7 * math.sqrt(mu) + 8)


class Executor(Protocol):
    def map(self, fn: Callable[[int], T], items: Iterable[int]) -> list[T]: ...


class SequentialExecutor:
    """Runs buckets one after another in this process."""

    def map(self, fn: Callable[[int], T], items: Iterable[int]) -> list[T]:
        return [fn(i) for i in items]


@dataclass
class Buckets:
    """One party's partition: ``positions[b]`` are the indices (into its IDs) that fall in bucket b."""

    positions: list[np.ndarray]
    capacity: int

    def inputs(self, ids: pa.Array, b: int) -> pa.Array:
        """Bucket b's IDs: the real ones first, then random dummies up to the capacity."""
        real = ids.take(pa.array(self.positions[b], type=pa.int64()))
        missing = self.capacity - len(real) if len(self.positions) > 1 else 0
        if missing <= 0:
            return real
        dummies = pa.array(["\x00" + os.urandom(16).hex() for _ in range(missing)], type=pa.string())
        return pa.concat_arrays([real.cast(pa.string()), dummies])

    def map_back(self, b: int, indices: np.ndarray) -> np.ndarray:
        """Bucket-local indices (dummies dropped) to indices into the party's IDs."""
        pos = self.positions[b]
        indices = np.asarray(indices, dtype=np.int64)
        return pos[indices[indices < len(pos)]]


def partition(link: Link, peer: str, role: Role, ids: pa.Array, n_peer: int, count: int) -> Buckets:
    """Agree on a bucket key with the peer and split ``ids`` into ``count`` padded buckets."""
    n = len(ids)
    if count == 1:
        return Buckets([np.arange(n, dtype=np.int64)], n)
    cap = capacity(n, count)
    mine = os.urandom(16)
    link.send(peer, "psi/buckets/nonce", mine)
    theirs = link.recv_bytes(peer, "psi/buckets/nonce", exact=16)
    r, s = (mine, theirs) if role == "receiver" else (theirs, mine)
    for attempt in range(MAX_KEY_ATTEMPTS):
        key = hashlib.sha256(b"riskshare/psi/buckets/v1" + r + s + bytes([attempt])).digest()
        values = hashing.compress_ids(ids, key[:16])
        which = hashing.bucket_of(values, key[16:], count)
        loads = np.bincount(which, minlength=count)
        overflow = bool(loads.max(initial=0) > cap)
        link.send_json(peer, "psi/buckets/overflow", overflow)
        peer_overflow = link.recv_json(peer, "psi/buckets/overflow")
        if not isinstance(peer_overflow, bool):
            raise ProtocolError(f"peer '{peer}' sent a malformed bucket status")
        if not overflow and not peer_overflow:
            order = np.argsort(which, kind="stable")
            bounds = np.concatenate([[0], np.cumsum(loads)])
            return Buckets([order[bounds[b] : bounds[b + 1]] for b in range(count)], cap)
    raise ProtocolError(f"buckets overflowed with {MAX_KEY_ATTEMPTS} keys in a row; this should not happen")


def run_buckets(
    link: Link,
    peer: str,
    role: Role,
    ids: pa.Array,
    buckets: Buckets,
    run_one: Callable[[Link, pa.Array, Progress | None], PsiResult],
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> list[PsiResult]:
    """Run ``run_one`` on every bucket over ``link.scoped("bucket/<b>")``; results in bucket order."""
    count = len(buckets.positions)

    def one(b: int) -> PsiResult:
        inner = None
        if progress is not None:
            label = f"bucket {b + 1}/{count}: " if count > 1 else ""
            inner = lambda step, done, total: progress(label + step, done, total)  # noqa: E731
            if count > 1:
                progress(f"bucket {b + 1}/{count}", b, count)
        result = run_one(link.scoped(f"bucket/{b}"), buckets.inputs(ids, b), inner)
        if progress is not None and count > 1:
            progress(f"bucket {b + 1}/{count}", b + 1, count)
        return result

    return (executor or SequentialExecutor()).map(one, range(count))


def merge(role: Role, protocol: str, n: int, n_peer: int, buckets: Buckets,
          results: Sequence[PsiResult]) -> PsiResult:
    """Combine per-bucket results into one, with indices into the party's own IDs."""
    details = {"buckets": len(results), "bucket_capacity": buckets.capacity}
    if results and results[0].details:
        details.update({k: v for k, v in results[0].details.items() if k not in details})
    if any(r.indices is None for r in results):
        sizes = [r.size for r in results]
        size = None if any(s is None for s in sizes) else int(sum(sizes))  # type: ignore[arg-type]
        return PsiResult(role, protocol, n, n_peer, size=size, details=details)
    parts = [buckets.map_back(b, r.indices) for b, r in enumerate(results)]  # type: ignore[arg-type]
    indices = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    return PsiResult(role, protocol, n, n_peer, indices=indices, size=int(len(indices)), details=details)
