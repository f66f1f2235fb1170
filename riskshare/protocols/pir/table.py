"""The server's encrypted table: built from a plaintext table, versioned, updated incrementally.

Every record is stored under ``tag = T(F(k, key))`` and sealed under a key
derived from the same OPRF output (:mod:`.records`). The published part of the
table — tags, nonces, ciphertexts and revisions, sorted by tag — is what a
client in cached mode keeps, and what the PIR database in pir mode is laid out
from. The private part — the plaintext keys, OPRF outputs and record
fingerprints — never leaves the server; it lets a new version of the source
table be applied as a delta: unchanged records keep their ciphertexts, changed
ones are re-sealed (no new OPRF evaluation), new keys are evaluated, and
removed keys leave a tombstone so caches drop them.

``version`` increases with every change; each record carries the version in
which it was last sealed (its *revision*). Rotating the OPRF key re-evaluates
and re-seals everything under a new key id: old caches become useless and are
told so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from ...crypto.oprf import OUTPUT_BYTES, OprfKey
from ...data import normalise
from ...data.io import check_columns
from ...errors import ConfigError, InputError
from . import records
from .records import NONCE_BYTES, TAG_BYTES

TABLE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
STATE_VERSION = 1
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Published:
    """The part of a table a client may hold: every array sorted by tag."""

    table_id: str
    key_id: str
    version: int
    columns: list[str]
    width: int
    tags: np.ndarray  # (n, 16) uint8
    nonces: np.ndarray  # (n, 12) uint8
    ciphertexts: np.ndarray  # (n, width + 16) uint8
    revisions: np.ndarray  # (n,) uint64

    @property
    def size(self) -> int:
        return len(self.tags)

    @property
    def slot_bytes(self) -> int:
        return TAG_BYTES + NONCE_BYTES + self.width + records.GCM_TAG_BYTES

    def digest(self) -> str:
        """SHA-256 over the manifest fields and every array: names one exact table version."""
        return table_digest(self.table_id, self.key_id, self.version, self.columns, self.width,
                            self.tags, self.nonces, self.ciphertexts, self.revisions)


def table_digest(table_id: str, key_id: str, version: int, columns: list[str], width: int, tags: np.ndarray,
                 nonces: np.ndarray, ciphertexts: np.ndarray, revisions: np.ndarray) -> str:
    h = hashlib.sha256()
    head = json.dumps([table_id, key_id, int(version), list(columns), int(width), int(len(tags))],
                      ensure_ascii=False, separators=(",", ":"))
    h.update(b"riskshare/pir/table/v1\x00" + head.encode() + b"\x00")
    for arr in (tags, nonces, ciphertexts, np.asarray(revisions, dtype="<u8")):
        h.update(np.ascontiguousarray(arr).data)
    return h.hexdigest()


@dataclass
class Delta:
    """What a client at some version needs to reach the current one."""

    kind: str  # "none", "delta" or "full"
    rows: np.ndarray  # positions in the published arrays to send
    deleted: np.ndarray  # (k, 16) tags to drop


@dataclass
class ServerTable:
    """The whole server-side state of one served table."""

    table_id: str
    key: OprfKey
    version: int
    columns: list[str]
    width: int
    keys: pa.Array  # normalised keys, sorted like the published arrays (private)
    prf: np.ndarray  # (n, 64) OPRF outputs (private)
    fingerprints: np.ndarray  # (n, 16) plaintext record fingerprints (private)
    buckets: np.ndarray  # (n,) uint64 PIR bucket selectors (private; derived from prf)
    tags: np.ndarray
    nonces: np.ndarray
    ciphertexts: np.ndarray
    revisions: np.ndarray
    tombstone_tags: np.ndarray = field(default_factory=lambda: np.zeros((0, TAG_BYTES), np.uint8))
    tombstone_versions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    _digest: str | None = None

    # -- views --------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.tags)

    @property
    def key_id(self) -> str:
        return self.key.key_id

    def published(self) -> Published:
        return Published(self.table_id, self.key_id, self.version, list(self.columns), self.width,
                         self.tags, self.nonces, self.ciphertexts, self.revisions)

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = self.published().digest()
        return self._digest

    def manifest(self) -> dict:
        """The public description a client receives with every answer."""
        return {"table": self.table_id, "key_id": self.key_id, "version": int(self.version),
                "columns": list(self.columns), "width": int(self.width), "records": int(self.size),
                "digest": self.digest}

    def delta_since(self, key_id: str | None, version: int | None) -> Delta:
        """Rows and deletions a client holding (key_id, version) needs; ``full`` if it holds nothing usable."""
        if key_id != self.key_id or version is None or version > self.version or version < 0:
            return Delta("full", np.arange(self.size), np.zeros((0, TAG_BYTES), np.uint8))
        if version == self.version:
            return Delta("none", np.zeros(0, np.int64), np.zeros((0, TAG_BYTES), np.uint8))
        rows = np.flatnonzero(self.revisions > version)
        deleted = self.tombstone_tags[self.tombstone_versions > version]
        return Delta("delta", rows, deleted)

    # -- building -------------------------------------------------------------------------
    @classmethod
    def build(cls, table_id: str, keys: pa.Array, values: pa.Array, columns: list[str], *,
              key: OprfKey | None = None, version: int = 1, progress: Progress | None = None) -> "ServerTable":
        """Evaluate the OPRF on every key and seal every record (a fresh table)."""
        check_table_id(table_id)
        key = key or OprfKey.generate()
        width = records.width_for(values)
        n = len(keys)
        revisions = np.full(n, version, np.uint64)
        tags = np.empty((n, TAG_BYTES), np.uint8)
        buckets = np.empty(n, np.uint64)
        fingerprints = np.empty((n, 16), np.uint8)
        nonces = np.empty((n, NONCE_BYTES), np.uint8)
        cts = np.empty((n, width + records.GCM_TAG_BYTES), np.uint8)

        def seal_rows(start: int, stop: int, outputs: np.ndarray) -> None:
            # Runs on this thread while the pool evaluates the next rows.
            derived = records.derive(outputs)
            padded = records.pad(values.slice(start, stop - start), width)
            fingerprints[start:stop] = records.record_digests(padded)
            nonces[start:stop], cts[start:stop] = records.seal(padded, derived.keys, derived.tags,
                                                               revisions[start:stop], table_id, key.key_id)
            tags[start:stop], buckets[start:stop] = derived.tags, derived.buckets

        step = (lambda done, total: progress("evaluate OPRF on the table's keys", done, total)) if progress else None
        prf = key.evaluate([k.encode() for k in keys.to_pylist()], progress=step, on_rows=seal_rows)
        order = records.tag_order(tags)
        return cls(
            table_id=table_id, key=key, version=version, columns=list(columns), width=width,
            keys=keys.take(pa.array(order)), prf=prf[order], fingerprints=fingerprints[order], buckets=buckets[order],
            tags=tags[order], nonces=nonces[order], ciphertexts=cts[order], revisions=revisions[order],
        )

    @classmethod
    def _assemble(cls, table_id: str, key: OprfKey, version: int, columns: list[str], width: int, keys: pa.Array,
                  prf: np.ndarray, fingerprints: np.ndarray, padded: np.ndarray, revisions: np.ndarray,
                  reuse: "ServerTable | None" = None, reuse_rows: np.ndarray | None = None,
                  reuse_from: np.ndarray | None = None) -> "ServerTable":
        """Derive tags and seal; rows listed in ``reuse_rows`` copy their sealed form from ``reuse``."""
        derived = records.derive(prf)
        n = len(keys)
        nonces = np.empty((n, NONCE_BYTES), np.uint8)
        cts = np.empty((n, width + records.GCM_TAG_BYTES), np.uint8)
        fresh = np.ones(n, dtype=bool)
        if reuse is not None and reuse_rows is not None and reuse_from is not None and len(reuse_rows):
            nonces[reuse_rows] = reuse.nonces[reuse_from]
            cts[reuse_rows] = reuse.ciphertexts[reuse_from]
            fresh[reuse_rows] = False
        todo = np.flatnonzero(fresh)
        if len(todo):
            n_, c_ = records.seal(padded[todo], derived.keys[todo], derived.tags[todo], revisions[todo],
                                  table_id, key.key_id)
            nonces[todo], cts[todo] = n_, c_
        order = records.tag_order(derived.tags)
        return cls(
            table_id=table_id, key=key, version=version, columns=list(columns), width=width,
            keys=keys.take(pa.array(order)), prf=prf[order], fingerprints=fingerprints[order],
            buckets=derived.buckets[order], tags=derived.tags[order], nonces=nonces[order], ciphertexts=cts[order],
            revisions=revisions[order],
        )

    def updated(self, keys: pa.Array, values: pa.Array, columns: list[str], *,
                progress: Progress | None = None) -> "ServerTable":
        """This table brought to a new plaintext table: a new version if anything changed, else ``self``."""
        width = records.width_for(values, minimum=self.width if columns == self.columns else 0)
        padded = records.pad(values, width)
        fingerprints = records.record_digests(padded)
        old_pos = _positions(self.keys, keys)  # for each new key: its row in self, or -1
        known = old_pos >= 0
        same_layout = columns == self.columns and width == self.width
        unchanged = known.copy()
        if same_layout:
            unchanged[known] = (self.fingerprints[old_pos[known]] == fingerprints[known]).all(axis=1)
        else:
            unchanged[:] = False
        removed = np.ones(self.size, dtype=bool)
        removed[old_pos[known]] = False
        if unchanged.all() and not removed.any() and len(keys) == self.size and same_layout:
            return self
        new_version = self.version + 1
        prf = np.empty((len(keys), OUTPUT_BYTES), np.uint8)
        prf[known] = self.prf[old_pos[known]]
        new_rows = np.flatnonzero(~known)
        if len(new_rows):
            step = (lambda d, t: progress("evaluate OPRF on new keys", d, t)) if progress else None
            new_keys = keys.take(pa.array(new_rows)).to_pylist()
            prf[new_rows] = self.key.evaluate([k.encode() for k in new_keys], progress=step)
        revisions = np.full(len(keys), new_version, np.uint64)
        keep_rows = np.flatnonzero(unchanged)
        revisions[keep_rows] = self.revisions[old_pos[keep_rows]]
        table = self._assemble(self.table_id, self.key, new_version, columns, width, keys, prf, fingerprints,
                               padded, revisions, reuse=self, reuse_rows=keep_rows, reuse_from=old_pos[keep_rows])
        dead = self.tags[removed]
        table.tombstone_tags = np.concatenate([self.tombstone_tags, dead])
        table.tombstone_versions = np.concatenate(
            [self.tombstone_versions, np.full(len(dead), new_version, np.uint64)])
        return table

    def rotated(self, *, progress: Progress | None = None, new_key: OprfKey | None = None) -> "ServerTable":
        """The same records under a fresh OPRF key (new key id; every cache must be fetched again)."""
        key = new_key or OprfKey.generate()
        step = (lambda d, t: progress("evaluate OPRF under the new key", d, t)) if progress else None
        prf = key.evaluate([k.encode() for k in self.keys.to_pylist()], progress=step)
        version = self.version + 1
        # Re-pad from the stored plaintexts is impossible (the server keeps only fingerprints), so
        # decrypt with the old keys: the server holds both.
        padded = self._plaintexts()
        return self._assemble(self.table_id, key, version, self.columns, self.width, self.keys, prf,
                              self.fingerprints, padded, np.full(self.size, version, np.uint64))

    def _plaintexts(self) -> np.ndarray:
        derived = records.derive(self.prf)
        out = np.empty((self.size, self.width), np.uint8)
        for i in range(self.size):
            pt = records.open_record(derived.keys[i].tobytes(), self.nonces[i].tobytes(),
                                     self.ciphertexts[i].tobytes(), self.table_id, self.key_id,
                                     self.tags[i].tobytes(), int(self.revisions[i]))
            if pt is None:
                raise ConfigError(f"the stored PIR table '{self.table_id}' is damaged (record {i} fails to open)",
                                  hint="rebuild it from the source table with --rebuild")
            out[i] = np.frombuffer(pt, dtype=np.uint8)
        return out

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the state atomically: arrays (Arrow IPC), manifest (JSON), OPRF key (mode 0600)."""
        directory.mkdir(parents=True, exist_ok=True)
        key_file = directory / f"oprf-{self.key_id}.key"
        if not key_file.exists():
            tmp = directory / f".{key_file.name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.key.to_bytes())
            os.replace(tmp, key_file)
        arrays = pa.table({
            "key": self.keys,
            "prf": _fixed(self.prf),
            "fingerprint": _fixed(self.fingerprints),
            "tag": _fixed(self.tags),
            "nonce": _fixed(self.nonces),
            "ciphertext": _fixed(self.ciphertexts),
            "revision": pa.array(self.revisions, type=pa.uint64()),
        })
        tomb = pa.table({"tag": _fixed(self.tombstone_tags),
                         "version": pa.array(self.tombstone_versions, type=pa.uint64())})
        for name, tbl in (("records.arrow", arrays), ("tombstones.arrow", tomb)):
            tmp = directory / f".{name}.tmp"
            feather.write_feather(tbl, tmp, compression="uncompressed")
            os.replace(tmp, directory / name)
        manifest = {"state_version": STATE_VERSION, **self.manifest(), "key_file": key_file.name}
        tmp = directory / ".manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
        os.replace(tmp, directory / "manifest.json")
        for old in directory.glob("oprf-*.key"):  # a rotated key is destroyed once the new state is saved
            if old != key_file:
                old.unlink()

    @classmethod
    def load(cls, directory: Path) -> "ServerTable | None":
        """The saved state, or ``None`` if there is none; damaged state is a clear error."""
        manifest_file = directory / "manifest.json"
        if not manifest_file.exists():
            return None
        try:
            manifest = json.loads(manifest_file.read_text())
            if manifest.get("state_version") != STATE_VERSION:
                raise ConfigError(f"{directory} holds PIR state of an unknown format",
                                  hint="rebuild it with --rebuild")
            key = OprfKey.from_bytes((directory / manifest["key_file"]).read_bytes())
            arrays = feather.read_table(directory / "records.arrow")
            tomb = feather.read_table(directory / "tombstones.arrow")
        except (OSError, ValueError, KeyError, pa.ArrowInvalid) as exc:
            raise ConfigError(f"the saved PIR state in {directory} cannot be read ({exc})",
                              hint="rebuild it from the source table with --rebuild") from None
        width = int(manifest["width"])
        table = cls(
            table_id=manifest["table"], key=key, version=int(manifest["version"]), columns=list(manifest["columns"]),
            width=width, keys=arrays["key"].combine_chunks(),
            prf=_unfixed(arrays["prf"], OUTPUT_BYTES), fingerprints=_unfixed(arrays["fingerprint"], 16),
            buckets=np.zeros(0, np.uint64), tags=_unfixed(arrays["tag"], TAG_BYTES),
            nonces=_unfixed(arrays["nonce"], NONCE_BYTES),
            ciphertexts=_unfixed(arrays["ciphertext"], width + records.GCM_TAG_BYTES),
            revisions=arrays["revision"].to_numpy().astype(np.uint64),
            tombstone_tags=_unfixed(tomb["tag"], TAG_BYTES),
            tombstone_versions=tomb["version"].to_numpy().astype(np.uint64),
        )
        if key.key_id != manifest["key_id"]:
            raise ConfigError(f"the OPRF key file in {directory} does not match its manifest",
                              hint="rebuild the table with --rebuild")
        table.buckets = records.derive(table.prf).buckets
        if table.digest != manifest["digest"]:
            raise ConfigError(f"the saved PIR table in {directory} fails its integrity check",
                              hint="rebuild it from the source table with --rebuild")
        return table


# -- helpers --------------------------------------------------------------------------------

def check_table_id(table_id: str) -> str:
    if not TABLE_ID_RE.match(table_id or ""):
        raise InputError(f"invalid table name '{table_id}'",
                         hint="use letters, digits, '.', '-' and '_' (at most 63 characters)")
    return table_id


def prepare_table(table: pa.Table, key_column: str, source: str,
                  columns: list[str] | None = None) -> tuple[pa.Array, pa.Array, list[str]]:
    """Normalised keys, joined record values and the value column names of a source table.

    Refuses empty keys and duplicate keys, naming them: a risk list with two
    records for one client is ambiguous, and which one to serve is the owner's call.
    """
    check_columns(table, [key_column], source)
    value_columns = [c for c in table.column_names if c != key_column] if columns is None else list(columns)
    check_columns(table, value_columns, source)
    if key_column in value_columns:
        raise InputError(f"the key column '{key_column}' cannot also be a record column")
    raw = table[key_column].combine_chunks() if table.num_rows else pa.array([], pa.string())
    keys = normalise(raw.cast(pa.string()))
    empty = pc.fill_null(pc.equal(pc.utf8_length(pc.fill_null(keys, "")), 0), True).to_numpy(zero_copy_only=False)
    if empty.any():
        rows = (np.flatnonzero(empty) + 1).tolist()
        shown = ", ".join(map(str, rows[:10])) + (" …" if len(rows) > 10 else "")
        raise InputError(f"{source}: {len(rows)} row(s) have an empty key in column '{key_column}' (rows {shown})",
                         hint="fill in or remove those rows")
    counts = pc.value_counts(keys)
    dup_mask = pc.greater(counts.field("counts"), 1)
    if pc.any(dup_mask).as_py():
        dups = counts.filter(dup_mask)
        names = dups.field("values").to_pylist()
        shown = ", ".join(f"{k} (x{c})" for k, c in zip(names[:10], dups.field("counts").to_pylist()[:10]))
        raise InputError(
            f"{source}: {len(names)} key(s) appear more than once in column '{key_column}' after normalisation: "
            f"{shown}{' …' if len(names) > 10 else ''}",
            hint="keep one record per key (merge the duplicates), then serve the table again",
        )
    if table.num_rows == 0:
        raise InputError(f"{source} has no records", hint="a served table needs at least one row")
    values = records.join_values(table, value_columns, source)
    return keys, values, value_columns


def _positions(old: pa.Array, new: pa.Array) -> np.ndarray:
    """For each value of ``new``: its position in ``old`` (distinct values), or -1."""
    if len(old) == 0:
        return np.full(len(new), -1, np.int64)
    idx = pc.index_in(new, value_set=old)
    return pc.fill_null(idx, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _fixed(arr: np.ndarray) -> pa.Array:
    width = arr.shape[1]
    flat = pa.array(np.ascontiguousarray(arr).reshape(-1), type=pa.uint8())
    return pa.FixedSizeListArray.from_arrays(flat, width)


def _unfixed(col: pa.ChunkedArray, width: int) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if len(arr) == 0:
        return np.zeros((0, width), np.uint8)
    values = arr.flatten().to_numpy(zero_copy_only=False)
    if values.size != len(arr) * width:
        raise ValueError("stored array has the wrong width")
    return values.astype(np.uint8, copy=False).reshape(len(arr), width)
