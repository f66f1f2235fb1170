"""128-bit keyed digests of string arrays: fixed-width stand-ins for IDs of any length.

:func:`keyed_digests` maps each string to a length-prepended CBC-MAC (AES-128)
under a caller-chosen key — a PRF on messages of any length (Bellare, Kilian
& Rogaway 2000; Petrank & Rackoff 2000). With the inputs fixed before a fresh
random key is drawn, two distinct strings among q collide with probability
about q² · L / 2^128 (L = blocks per string): below 2^-70 for 10^8 IDs of up
to 64 bytes.

Used by the OT-based PSI protocols (under a key both parties derive in each
run) and by :func:`riskshare.data.ids.prepare_ids` to find duplicate IDs (under
a local random key, every candidate duplicate then confirmed byte for byte).
All strings of one byte length are hashed together in one AES call per block.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..crypto import aes

_DOMAIN = 0x7273_6964_0001  # "rsid" v1: first block = (domain, byte length)


def _fixed_width(ids: pa.Array, length: int) -> np.ndarray:
    """The byte strings of ``ids`` (all ``length`` bytes long) as an (n, length) uint8 matrix."""
    if length == 0:
        return np.zeros((len(ids), 0), dtype=np.uint8)
    fixed = ids.cast(pa.binary()).cast(pa.binary(length))
    data = np.frombuffer(fixed.buffers()[1], dtype=np.uint8)
    start = fixed.offset * length
    return data[start : start + len(fixed) * length].reshape(-1, length)


def keyed_digests(ids: pa.Array | pa.ChunkedArray, key: bytes) -> np.ndarray:
    """128-bit keyed digests of non-null strings, in input order: (n, 2) uint64."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    n = len(ids)
    out = np.empty((n, 2), dtype=np.uint64)
    if n == 0:
        return out
    lengths = pc.binary_length(ids).to_numpy(zero_copy_only=False).astype(np.int64)
    distinct = [int(lengths[0])] if lengths.min() == lengths.max() else np.unique(lengths).tolist()
    for length in distinct:
        rows = None if len(distinct) == 1 else np.flatnonzero(lengths == length)
        subset = ids if rows is None else ids.take(pa.array(rows, type=pa.int64()))
        nblocks = 1 + -(-length // 16)
        blocks = np.zeros((len(subset), nblocks * 16), dtype=np.uint8)
        blocks[:, 16 : 16 + length] = _fixed_width(subset, length)
        words = blocks.view(np.uint64).reshape(len(subset), nblocks, 2)
        words[:, 0, 0] = _DOMAIN
        words[:, 0, 1] = length
        digest = aes.cbc_mac_rows(key, words, None)
        if rows is None:
            out[:] = digest
        else:
            out[rows] = digest
    return out
