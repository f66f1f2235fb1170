"""Hashing for the OT-based PSI protocols: IDs to 128-bit values, bins, cuckoo tables, buckets.

* :func:`compress_ids` maps each normalised ID (any length) to 128 bits with a
  length-prepended CBC-MAC (AES-128) under a key both parties derive afresh
  in every run (a PRF on messages of any length: Bellare, Kilian & Rogaway
  2000; Petrank & Rackoff 2000). With inputs fixed before the key is drawn
  (semi-honest parties), two distinct IDs among q collide with probability
  about q² · L / 2^128 (L = blocks per ID) — below 2^-70 for 10^8 IDs of ≤ 64 bytes.
* :func:`candidates` gives each value its k = 3 candidate bins among m, from
  AES under a per-run bin key (the hash functions of cuckoo hashing).
* :func:`cuckoo` places every value in one of its candidate bins, at most
  one per bin, with up to ``stash`` left over; when more are left over it
  raises :class:`CuckooFailure` and the caller retries with a fresh bin key
  (before that key is revealed, so a retry tells the peer nothing).

Cuckoo parameters: k = 3 hash functions and m = 1.27 n bins, for which
Pinkas, Schneider, Tkachenko & Yanai ("Efficient circuit-based PSI with
linear communication", EUROCRYPT 2019, §5) measured a failure probability
below 2^-40 without a stash; KKRT16 use the same hashing with a small stash.
Here a failure costs only a local retry, never a lost element.

Insertion is vectorised: every round, each homeless value claims a free
candidate bin if it has one, else evicts the occupant of a random candidate
(random walk); one claimant per bin wins, and the losers and the evicted try
again in the next round.
The few values still homeless after the vectorised rounds (almost always
none) are placed by a sequential random walk before anything goes to the stash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ...crypto import aes
from ...data.strings import length_groups

HASHES = 3
BIN_FACTOR = 1.27
MIN_BINS = 64
_DOMAIN = 0x7273_6964_0001  # "rsid" v1: first block = (domain, byte length)


class CuckooFailure(Exception):
    """More values than the stash holds could not be placed; retry with a fresh bin key."""


def bins_for(n: int) -> int:
    """Number of cuckoo bins for n values."""
    return max(MIN_BINS, int(np.ceil(BIN_FACTOR * n)))


def compress_ids(ids: pa.Array | pa.ChunkedArray, key: bytes) -> np.ndarray:
    """128-bit keyed digests of distinct IDs, in input order: (n, 2) uint64.

    Length-prepended CBC-MAC-AES: the first block carries (domain, byte length),
    which makes the encoding prefix-free and CBC-MAC a PRF on IDs of any length.
    """
    out = np.empty((len(ids), 2), dtype=np.uint64)
    for rows, length, matrix in length_groups(ids):
        nblocks = 1 + -(-length // 16)
        blocks = np.zeros((len(matrix), nblocks * 16), dtype=np.uint8)
        blocks[:, 16 : 16 + length] = matrix
        words = blocks.view(np.uint64).reshape(len(matrix), nblocks, 2)
        words[:, 0, 0] = _DOMAIN
        words[:, 0, 1] = length
        digest = aes.cbc_mac_rows(key, words, None)
        if rows is None:
            out[:] = digest
        else:
            out[rows] = digest
    return out


def _reduce(words: np.ndarray, m: int) -> np.ndarray:
    """Map uniform 64-bit words to [0, m) with the top 32 bits (multiply-shift; bias ≤ m / 2^32)."""
    return (((words >> np.uint64(32)) * np.uint64(m)) >> np.uint64(32)).astype(np.int64)


def candidates(values: np.ndarray, key: bytes, m: int) -> np.ndarray:
    """The k = 3 candidate bins in [0, m) of each (n, 2) uint64 value: (n, 3) int64."""
    if m >= 1 << 32:
        raise ValueError("at most 2^32 bins")
    first = aes.ecb_encrypt(key, np.ascontiguousarray(values))
    tweaked = np.ascontiguousarray(values).copy()
    tweaked[:, 0] ^= np.uint64(1)
    second = aes.ecb_encrypt(key, tweaked)
    out = np.empty((len(values), HASHES), dtype=np.int64)
    out[:, 0] = _reduce(first[:, 0], m)
    out[:, 1] = _reduce(first[:, 1], m)
    out[:, 2] = _reduce(second[:, 0], m)
    return out


def bucket_of(values: np.ndarray, key: bytes, buckets: int) -> np.ndarray:
    """Bucket in [0, buckets) of each (n, 2) uint64 value: (n,) int64."""
    if buckets == 1:
        return np.zeros(len(values), dtype=np.int64)
    return _reduce(aes.ecb_encrypt(key, np.ascontiguousarray(values))[:, 1], buckets)


@dataclass
class CuckooTable:
    bins: np.ndarray  # (m,) int64: value index in each bin, -1 if empty
    hash_index: np.ndarray  # (m,) int8: which candidate placed it there (0..2), -1 if empty
    stash: np.ndarray  # (s,) int64: value indices in the stash, -1 for an empty slot


def cuckoo(cand: np.ndarray, m: int, stash: int = 0, *, rounds: int = 64, walk: int = 2000,
           rng: np.random.Generator | None = None) -> CuckooTable:
    """Place n values with (n, 3) candidate bins into m bins and a stash of ``stash`` slots."""
    rng = rng or np.random.default_rng()
    n = len(cand)
    table = np.full(m, -1, dtype=np.int64)
    claim = np.full(m, -1, dtype=np.int64)
    used = np.full(n, -1, dtype=np.int8)  # candidate each value sits in
    nxt = rng.integers(0, HASHES, size=n).astype(np.int8)  # candidate to evict from when none is free
    pending = np.arange(n, dtype=np.int64)
    for _ in range(rounds):
        if pending.size == 0:
            break
        options = cand[pending]
        free = table[options] < 0
        has_free = free.any(axis=1)
        # Among free candidates pick one at random (spreads the first rounds' claims evenly).
        pick = (rng.random(free.shape, dtype=np.float32) + free).argmax(axis=1)
        choice = np.where(has_free, pick, nxt[pending]).astype(np.int8)
        pos = options[np.arange(len(pending)), choice]
        claim[pos] = pending  # one claimant per bin wins (the last written)
        won = claim[pos] == pending
        winners, wpos = pending[won], pos[won]
        evicted = table[wpos]
        evicted = evicted[evicted >= 0]
        table[wpos] = winners
        used[winners] = choice[won]
        # The evicted will evict, if they must, from one of their two other candidates.
        nxt[evicted] = (used[evicted] + 1 + rng.integers(0, HASHES - 1, size=len(evicted))) % HASHES
        used[evicted] = -1
        losers = pending[~won]
        pending = np.concatenate([losers, evicted])
    left: list[int] = []
    for item in pending.tolist():  # rare: a handful at most
        homeless = _walk(int(item), cand, table, used, walk, rng)
        if homeless is not None:
            left.append(homeless)
    if len(left) > stash:
        raise CuckooFailure(f"{len(left)} values left over for a stash of {stash}")
    slots = np.full(stash, -1, dtype=np.int64)
    slots[: len(left)] = left
    hash_index = np.full(m, -1, dtype=np.int8)
    occupied = table >= 0
    hash_index[occupied] = used[table[occupied]]
    return CuckooTable(bins=table, hash_index=hash_index, stash=slots)


def _walk(item: int, cand: np.ndarray, table: np.ndarray, used: np.ndarray, steps: int,
          rng: np.random.Generator) -> int | None:
    """Sequential cuckoo insertion of one value; returns the value left homeless, or None."""
    choice = int(rng.integers(0, HASHES))
    for _ in range(steps):
        for k in range(HASHES):  # a free candidate first
            b = cand[item, k]
            if table[b] < 0:
                table[b] = item
                used[item] = k
                return None
        b = cand[item, choice]
        table[b], item = item, int(table[b])
        used[table[b]] = choice
        previous = int(used[item])
        used[item] = -1
        choice = (previous + 1 + int(rng.integers(0, HASHES - 1))) % HASHES
    return item


def random_blocks(n: int) -> np.ndarray:
    """n pseudorandom 128-bit values, (n, 2) uint64 (dummies for empty bins).

    AES-128-CTR under a fresh random key: the kernel's generator runs at a tenth of AES-NI's speed.
    """
    return aes.prg_matrix([os.urandom(16)], 16 * n).reshape(n * 16).view(np.uint64).reshape(n, 2)
