"""The client's copy of a server's encrypted table (cached mode), kept in the client's node home.

The copy is useless without OPRF evaluations by the server: each record opens
only under a key derived from ``F(k, key)``. It is updated by version (only
records sealed after the copy's version, and tombstones of removed records,
travel) and checked against the server's digest of the version it announces,
so a copy modified on disk — a record changed, added or removed — is detected
before any answer is given from it.

Layout (one directory per peer and table)::

    HOME/pir-cache/<peer>/<table>/
        manifest.json      table, key id, version, columns, width, digest
        tags.npy nonces.npy ciphertexts.npy revisions.npy
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import ConfigError, ProtocolError
from . import records
from .records import NONCE_BYTES, TAG_BYTES
from .table import TABLE_ID_RE, table_digest

_ARRAYS = ("tags", "nonces", "ciphertexts", "revisions")


class CacheIntegrityError(ConfigError):
    """The cached table does not match its digest: it was modified or damaged on disk."""


@dataclass
class TableCopy:
    """An in-memory copy of a published table, sorted by tag."""

    table_id: str
    key_id: str
    version: int
    columns: list[str]
    width: int
    digest: str
    tags: np.ndarray
    nonces: np.ndarray
    ciphertexts: np.ndarray
    revisions: np.ndarray

    @property
    def size(self) -> int:
        return len(self.tags)

    def computed_digest(self) -> str:
        return table_digest(self.table_id, self.key_id, self.version, self.columns, self.width,
                            self.tags, self.nonces, self.ciphertexts, self.revisions)

    def find(self, tags: np.ndarray) -> np.ndarray:
        """Row of each wanted tag in this copy, or -1 (vectorised: one binary search on 16-byte keys)."""
        if self.size == 0 or len(tags) == 0:
            return np.full(len(tags), -1, np.int64)
        mine = np.ascontiguousarray(self.tags).view([("hi", ">u8"), ("lo", ">u8")]).reshape(-1)
        wanted = np.ascontiguousarray(tags).view([("hi", ">u8"), ("lo", ">u8")]).reshape(-1)
        pos = np.searchsorted(mine, wanted)
        pos_c = np.minimum(pos, self.size - 1)
        hit = (self.tags[pos_c] == tags).all(axis=1)
        return np.where(hit, pos_c, -1)

    def open_rows(self, rows: np.ndarray, keys: np.ndarray, tags: np.ndarray) -> list[list[str] | None]:
        """Decrypt the records at ``rows`` with the derived keys; a failed authentication is tampering."""
        out: list[list[str] | None] = []
        for row, key, tag in zip(rows.tolist(), keys, tags):
            if row < 0:
                out.append(None)
                continue
            plaintext = records.open_record(key.tobytes(), self.nonces[row].tobytes(),
                                            self.ciphertexts[row].tobytes(), self.table_id, self.key_id,
                                            tag.tobytes(), int(self.revisions[row]))
            if plaintext is None:
                raise CacheIntegrityError(
                    f"a record of the cached table '{self.table_id}' fails authentication: the copy was modified",
                    hint="fetch a fresh copy with --refresh",
                )
            try:
                out.append(records.unpad(plaintext, len(self.columns)))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ProtocolError(f"a record of the cached table '{self.table_id}' is malformed ({exc})") from None
        return out

    # -- updates from the server ------------------------------------------------------------
    @classmethod
    def empty(cls) -> "TableCopy":
        z = np.zeros((0, TAG_BYTES), np.uint8)
        return cls("", "", 0, [], 0, "", z, np.zeros((0, NONCE_BYTES), np.uint8), np.zeros((0, 16), np.uint8),
                   np.zeros(0, np.uint64))

    def apply(self, manifest: dict, kind: str, tags: np.ndarray, nonces: np.ndarray, ciphertexts: np.ndarray,
              revisions: np.ndarray, deleted: np.ndarray) -> "TableCopy":
        """A new copy: this one with the server's rows and deletions applied, checked against its digest."""
        if kind == "full":
            base_tags = np.zeros((0, TAG_BYTES), np.uint8)
            base = (base_tags, np.zeros((0, NONCE_BYTES), np.uint8),
                    np.zeros((0, ciphertexts.shape[1]), np.uint8), np.zeros(0, np.uint64))
        else:
            if ciphertexts.shape[1] != self.ciphertexts.shape[1] and self.size:
                raise ProtocolError("the server sent an update of a different record width than the cached copy")
            drop = np.zeros(self.size, dtype=bool)
            for group in (tags, deleted):
                rows = self.find(group)
                drop[rows[rows >= 0]] = True
            keep = ~drop
            base = (self.tags[keep], self.nonces[keep], self.ciphertexts[keep], self.revisions[keep])
        all_tags = np.concatenate([base[0], tags])
        order = records.tag_order(all_tags)
        new = TableCopy(
            table_id=manifest["table"], key_id=manifest["key_id"], version=int(manifest["version"]),
            columns=list(manifest["columns"]), width=int(manifest["width"]), digest=manifest["digest"],
            tags=all_tags[order], nonces=np.concatenate([base[1], nonces])[order],
            ciphertexts=np.concatenate([base[2], ciphertexts])[order],
            revisions=np.concatenate([base[3], revisions.astype(np.uint64)])[order],
        )
        if new.size != int(manifest["records"]) or new.computed_digest() != new.digest:
            raise ProtocolError(
                f"after applying the server's update, the copy of table '{new.table_id}' does not match the "
                "server's digest",
                hint="fetch a fresh copy with --refresh; if it persists, the server's state is inconsistent",
            )
        return new


class CacheStore:
    """Where a client keeps its table copies: one directory per (peer, table) in its node home."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, peer: str, table_id: str) -> Path:
        if not TABLE_ID_RE.match(table_id):
            raise ProtocolError(f"the server named its table '{table_id}', which is not a valid table name")
        return self.root / peer / table_id

    def tables(self, peer: str) -> list[str]:
        base = self.root / peer
        return sorted(p.name for p in base.iterdir() if (p / "manifest.json").exists()) if base.is_dir() else []

    def load(self, peer: str, table_id: str) -> TableCopy | None:
        """The cached copy, verified against its own digest; ``None`` if there is none."""
        directory = self._dir(peer, table_id)
        manifest_file = directory / "manifest.json"
        if not manifest_file.exists():
            return None
        try:
            m = json.loads(manifest_file.read_text())
            arrays = {name: np.load(directory / f"{name}.npy", allow_pickle=False) for name in _ARRAYS}
            copy = TableCopy(m["table"], m["key_id"], int(m["version"]), list(m["columns"]), int(m["width"]),
                             m["digest"], **arrays)
            ok = (copy.tags.ndim == 2 and copy.tags.shape[1] == TAG_BYTES and copy.nonces.shape == (copy.size, NONCE_BYTES)
                  and copy.ciphertexts.shape == (copy.size, copy.width + records.GCM_TAG_BYTES)
                  and copy.revisions.shape == (copy.size,))
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise CacheIntegrityError(f"the cached table '{table_id}' from '{peer}' cannot be read ({exc})",
                                      hint="fetch a fresh copy with --refresh") from None
        if not ok or copy.computed_digest() != copy.digest:
            raise CacheIntegrityError(
                f"the cached table '{table_id}' from '{peer}' in {directory} fails its integrity check: it was "
                "modified or damaged on disk",
                hint="fetch a fresh copy with --refresh",
            )
        return copy

    def save(self, peer: str, copy: TableCopy) -> None:
        """Replace the cached copy atomically (a new directory renamed over the old one)."""
        directory = self._dir(peer, copy.table_id)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.parent / f".{copy.table_id}.{os.getpid()}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        for name in _ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(copy, name), allow_pickle=False)
        manifest = {"table": copy.table_id, "key_id": copy.key_id, "version": copy.version, "columns": copy.columns,
                    "width": copy.width, "digest": copy.digest, "records": copy.size}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        old = directory.parent / f".{copy.table_id}.{os.getpid()}.old"
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)

    def remove(self, peer: str, table_id: str) -> None:
        directory = self._dir(peer, table_id)
        if directory.exists():
            shutil.rmtree(directory)
