"""Records of a PIR table: plaintext encoding, keys derived from OPRF outputs, authenticated encryption.

A record is the values of the table's non-key columns, joined with the ASCII
unit separator and padded to the table's fixed *width* behind a two-byte
length, so every ciphertext has the same size (lengths of individual records
are not revealed; only the table's width is).

From the OPRF output ``y = F(k, key)`` (64 bytes) one call of BLAKE2b in keyed
mode — ``y`` as the 64-byte key, personalisation ``riskshare-pir-v1`` —
derives, as disjoint segments of its 56-byte output, the record's *tag* (16
bytes, where the record sits), its AES-256-GCM *key* (32 bytes) and its PIR
*bucket* selector (8 bytes). Keyed BLAKE2b is a PRF (RFC 7693), ``y`` is
pseudorandom and known only to whoever evaluated the OPRF on ``key``, and
disjoint segments of a PRF's output are independent, so the tag reveals
nothing about the AEAD key (the split-output construction of TLS 1.2's key
block); the personalisation separates this use from any other.

Each record is sealed with AES-256-GCM under its own key and a fresh random
96-bit nonce (fresh on every re-encryption, so a changed record never reuses a
nonce), with associated data binding the table id, the OPRF key id, the tag and
the record's revision: a ciphertext moved to another tag, table, key epoch or
revision fails to open.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...data.strings import padded_bytes
from ...errors import InputError

TAG_BYTES = 16
KEY_BYTES = 32
BUCKET_BYTES = 8
NONCE_BYTES = 12
GCM_TAG_BYTES = 16
SEPARATOR = "\x1f"  # ASCII unit separator: never part of a CSV value worth keeping
_KDF_PERSON = b"riskshare-pir-v1"
_AD_PREFIX = b"riskshare/pir/record/v1"
WIDTH_STEP = 16
MAX_WIDTH = 64 * 1024


@dataclass(frozen=True)
class Derived:
    """Per-record values derived from OPRF outputs (all (n, ...) arrays)."""

    tags: np.ndarray  # (n, 16) uint8
    keys: np.ndarray  # (n, 32) uint8
    buckets: np.ndarray  # (n,) uint64


def derive(prf_outputs: np.ndarray) -> Derived:
    """Tag, AEAD key and bucket selector for every OPRF output (an (n, 64) array)."""
    blake = hashlib.blake2b
    size = TAG_BYTES + KEY_BYTES + BUCKET_BYTES
    raw = b"".join([blake(digest_size=size, key=row, person=_KDF_PERSON).digest() for row in map(bytes, prf_outputs)])
    out = np.frombuffer(raw, dtype=np.uint8).reshape(-1, size)
    tags = np.ascontiguousarray(out[:, :TAG_BYTES])
    keys = np.ascontiguousarray(out[:, TAG_BYTES : TAG_BYTES + KEY_BYTES])
    buckets = np.ascontiguousarray(out[:, TAG_BYTES + KEY_BYTES :]).view("<u8").reshape(-1)
    return Derived(tags, keys, buckets)


def associated_data(table_id: str, key_id: str, tag: bytes, revision: int) -> bytes:
    tid = table_id.encode()
    kid = key_id.encode()
    return (_AD_PREFIX + len(tid).to_bytes(1, "big") + tid + len(kid).to_bytes(1, "big") + kid + tag
            + int(revision).to_bytes(8, "big"))


# -- plaintexts -----------------------------------------------------------------------

def join_values(table: pa.Table, columns: list[str], source: str) -> pa.Array:
    """One UTF-8 string per row: the values of ``columns`` joined with the unit separator."""
    if not columns:
        return pa.array([""] * table.num_rows, type=pa.string())
    arrays = []
    for name in columns:
        col = table[name].combine_chunks() if table.num_rows else pa.array([], type=pa.string())
        col = pc.fill_null(col.cast(pa.string()), "")
        if table.num_rows and pc.any(pc.match_substring(col, SEPARATOR)).as_py():
            raise InputError(f"{source}: column '{name}' contains the control character U+001F",
                             hint="remove control characters from the table")
        arrays.append(col)
    if len(arrays) == 1:
        return arrays[0]
    return pc.binary_join_element_wise(*arrays, SEPARATOR)


def width_for(joined: pa.Array, minimum: int = 0) -> int:
    """The padded plaintext width: 2 length bytes + the longest record, rounded up; never below ``minimum``."""
    longest = int(pc.max(pc.binary_length(joined)).as_py() or 0) if len(joined) else 0
    width = max(minimum, -(-(longest + 2) // WIDTH_STEP) * WIDTH_STEP)
    if width > MAX_WIDTH:
        raise InputError(f"a record is {longest} bytes long; at most {MAX_WIDTH - 2} bytes per record are supported",
                         hint="leave long free-text columns out of the served table")
    return width


def pad(joined: pa.Array, width: int) -> np.ndarray:
    """(n, width) uint8: big-endian length, UTF-8 bytes, zero padding."""
    body, lengths = padded_bytes(joined, width - 2)
    if len(lengths) and lengths.max() > width - 2:
        raise ValueError("record longer than the table width")
    out = np.zeros((len(lengths), width), dtype=np.uint8)
    out[:, 0] = (lengths >> 8).astype(np.uint8)
    out[:, 1] = (lengths & 0xFF).astype(np.uint8)
    out[:, 2:] = body
    return out


def unpad(plaintext: bytes, n_columns: int) -> list[str]:
    """The column values of one decrypted record."""
    length = int.from_bytes(plaintext[:2], "big")
    if length > len(plaintext) - 2:
        raise ValueError("record length field exceeds the record")
    text = plaintext[2 : 2 + length].decode("utf-8")
    if n_columns == 0:
        return []
    values = text.split(SEPARATOR)
    if len(values) != n_columns:
        raise ValueError(f"record has {len(values)} values, the table {n_columns} columns")
    return values


def record_digests(padded: np.ndarray) -> np.ndarray:
    """(n, 16) fingerprints of plaintext records, to tell which records changed between versions."""
    blake = hashlib.blake2b
    raw = b"".join([blake(row, digest_size=16, person=b"riskshare-pir-rd").digest() for row in map(bytes, padded)])
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, 16).copy()


# -- sealing ----------------------------------------------------------------------------

def seal(padded: np.ndarray, derived_keys: np.ndarray, tags: np.ndarray, revisions: np.ndarray,
         table_id: str, key_id: str) -> tuple[np.ndarray, np.ndarray]:
    """AES-256-GCM every row under its own key; return (nonces (n, 12), ciphertexts (n, width + 16))."""
    n, width = padded.shape
    nonces = np.frombuffer(os.urandom(NONCE_BYTES * n), dtype=np.uint8).reshape(n, NONCE_BYTES).copy()
    tid, kid = table_id.encode(), key_id.encode()
    ad_head = _AD_PREFIX + len(tid).to_bytes(1, "big") + tid + len(kid).to_bytes(1, "big") + kid
    nonce_b, pt_b, key_b, tag_b = nonces.tobytes(), padded.tobytes(), derived_keys.tobytes(), tags.tobytes()
    revs = [int(r) for r in revisions]
    ct = b"".join([
        AESGCM(key_b[KEY_BYTES * i : KEY_BYTES * (i + 1)]).encrypt(
            nonce_b[NONCE_BYTES * i : NONCE_BYTES * (i + 1)],
            pt_b[width * i : width * (i + 1)],
            ad_head + tag_b[TAG_BYTES * i : TAG_BYTES * (i + 1)] + revs[i].to_bytes(8, "big"),
        )
        for i in range(n)
    ])
    return nonces, np.frombuffer(ct, dtype=np.uint8).reshape(n, width + GCM_TAG_BYTES).copy()


def open_record(key: bytes, nonce: bytes, ciphertext: bytes, table_id: str, key_id: str, tag: bytes,
                revision: int) -> bytes | None:
    """Decrypt one record; ``None`` if it fails authentication (tampered, or not ours)."""
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, associated_data(table_id, key_id, tag, revision))
    except InvalidTag:
        return None


def tag_order(tags: np.ndarray) -> np.ndarray:
    """Positions that sort (n, 16) uint8 tags lexicographically."""
    if len(tags) == 0:
        return np.zeros(0, np.int64)
    hi = tags[:, :8].copy().view(">u8").reshape(-1)
    lo = tags[:, 8:].copy().view(">u8").reshape(-1)
    return np.lexsort((lo, hi))
