"""On-disk state of unbalanced PSI: the server's preprocessed set and the client's copy of its OPRF values.

Both are plain directories (the CLI keeps them under the node home; see
docs/psi.md); every write goes to temporary files renamed into place, with
``meta.json`` renamed last, so an interrupted update leaves the previous
version intact.

Server set (``HOME/psi/sets/<name>/``)::

    key.bin       the OPRF key (RFC 9497 ristretto255-SHA512), mode 0600
    ids.arrow     the normalised IDs, in insertion order (Arrow IPC)
    values.npy    (n, VALUE_BYTES) uint8: F(k, id) truncated, same order
    meta.json     {"name", "key_id", "count", "version", "value_bytes", "updated"}

Client copy (``HOME/psi/peers/<peer>/<name>/``)::

    keys.npy      (n,) uint64: first 8 bytes of each value, sorted
    values.npy    (n, VALUE_BYTES) uint8, in the same sorted order
    positions.npy (n,) int64: each value's position in the server's insertion order
    meta.json     {"key_id", "count", "version"}
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...crypto import oprf
from ...errors import ConfigError, InputError

VALUE_BYTES = 12  # 96 bits: a false match among |X|·|Y| <= 2^56 pairs has probability <= 2^-40
FORMAT = 1


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.part")
    write(tmp)
    os.replace(tmp, path)


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
    _write_atomic(path, write)


def _save_json(path: Path, data: dict) -> None:
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def truncate(outputs: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(outputs[:, :VALUE_BYTES])


@dataclass
class ServerSet:
    """A server's preprocessed set: OPRF values of every ID under a long-lived key."""

    path: Path
    meta: dict

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def count(self) -> int:
        return int(self.meta["count"])

    @property
    def key_id(self) -> str:
        return str(self.meta["key_id"])

    @classmethod
    def open(cls, path: Path) -> "ServerSet":
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            raise ConfigError(f"no prepared PSI set at {path}",
                              hint="prepare it with `riskshare psi-set prepare --name NAME --input FILE --id-column COL`")
        meta = _read_json(meta_path)
        if meta.get("format") != FORMAT or meta.get("value_bytes") != VALUE_BYTES:
            raise ConfigError(f"the PSI set at {path} was prepared by another riskshare version",
                              hint="rebuild it with `riskshare psi-set prepare --rebuild`")
        return cls(path, meta)

    def key(self) -> oprf.OprfKey:
        return oprf.OprfKey.from_bytes((self.path / "key.bin").read_bytes())

    def values(self, start: int = 0) -> np.ndarray:
        values = np.load(self.path / "values.npy", mmap_mode="r")
        if len(values) != self.count:
            raise ConfigError(f"the PSI set at {self.path} is damaged (values do not match meta.json)",
                              hint="rebuild it with `riskshare psi-set prepare --rebuild`")
        return np.ascontiguousarray(values[start:])

    def ids(self) -> pa.Array:
        with pa.memory_map(str(self.path / "ids.arrow")) as source:
            return pa.ipc.open_file(source).read_all().column("id").combine_chunks()

    @classmethod
    def prepare(cls, path: Path, name: str, ids: pa.Array, *, rebuild: bool = False,
                progress=None) -> tuple["ServerSet", int]:
        """Create the set, or add the IDs not yet in it; returns (set, number of IDs added).

        A set only grows: clients keep copies of its values, so an ID that left
        the set would still match there. If ``ids`` lacks IDs the set holds,
        the caller must ``rebuild`` (a fresh key: every client downloads anew).
        """
        ids = ids.cast(pa.string())
        exists = (path / "meta.json").is_file() and not rebuild
        if exists:
            current = cls.open(path)
            old_ids = current.ids()
            missing = pc.sum(pc.invert(pc.is_in(old_ids, value_set=ids))).as_py() or 0
            if missing:
                raise InputError(
                    f"{missing} IDs of PSI set '{name}' are not in the new input; a set only grows",
                    hint="to remove IDs, rebuild the set with --rebuild (a new key: clients re-download it)",
                )
            new = ids.filter(pc.invert(pc.is_in(ids, value_set=old_ids)))
            key = current.key()
            version = int(current.meta["version"]) + (1 if len(new) else 0)
            all_ids = pa.concat_arrays([old_ids, new]) if len(new) else old_ids
        else:
            path.mkdir(parents=True, exist_ok=True)
            key = oprf.OprfKey.generate()
            key_path = path / "key.bin"
            tmp = key_path.with_name(".key.bin.part")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key.to_bytes())
            os.replace(tmp, key_path)
            new, version, all_ids = ids, 1, ids
        added = truncate(key.evaluate([s.encode() for s in new.to_pylist()], progress=progress)) if len(new) \
            else np.zeros((0, VALUE_BYTES), dtype=np.uint8)
        if exists and len(new):
            values = np.concatenate([np.load(path / "values.npy"), added])
        elif exists:
            values = None
        else:
            values = added
        if values is not None:
            _save_npy(path / "values.npy", values)

            def write_ids(tmp: Path) -> None:
                with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, pa.schema([("id", pa.string())])) as w:
                    w.write_table(pa.table({"id": all_ids}))
            _write_atomic(path / "ids.arrow", write_ids)
        meta = {"format": FORMAT, "name": name, "key_id": key.key_id, "count": len(all_ids), "version": version,
                "value_bytes": VALUE_BYTES, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        _save_json(path / "meta.json", meta)
        return cls(path, meta), len(new)


@dataclass
class ClientCache:
    """A client's copy of one server set's OPRF values, sorted for lookups."""

    path: Path
    meta: dict

    @classmethod
    def open(cls, path: Path) -> "ClientCache":
        meta_path = path / "meta.json"
        meta = _read_json(meta_path) if meta_path.is_file() else {"key_id": None, "count": 0, "version": 0}
        return cls(path, meta)

    @property
    def key_id(self) -> str | None:
        return self.meta.get("key_id")

    @property
    def count(self) -> int:
        return int(self.meta.get("count", 0))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.count:
            return np.zeros(0, "<u8"), np.zeros((0, VALUE_BYTES), np.uint8), np.zeros(0, np.int64)
        load = lambda name: np.load(self.path / name, mmap_mode="r")  # noqa: E731
        keys, values, positions = load("keys.npy"), load("values.npy"), load("positions.npy")
        if not len(keys) == len(values) == len(positions) == self.count:
            raise ConfigError(f"the PSI cache at {self.path} is damaged", hint="delete the folder; it is re-downloaded")
        return keys, values, positions

    def update(self, key_id: str, version: int, start: int, new_values: np.ndarray) -> None:
        """Store values ``start..`` of the server's set (``start == 0``: replace everything)."""
        self.path.mkdir(parents=True, exist_ok=True)
        new_keys = np.ascontiguousarray(new_values[:, :8]).view("<u8").reshape(-1)
        new_positions = np.arange(start, start + len(new_values), dtype=np.int64)
        if start and self.count:
            keys, values, positions = (np.asarray(a) for a in self.arrays())
            keys = np.concatenate([keys, new_keys])
            values = np.concatenate([values, new_values])
            positions = np.concatenate([positions, new_positions])
        else:
            keys, values, positions = new_keys, new_values, new_positions
        order = np.argsort(keys, kind="stable")
        _save_npy(self.path / "keys.npy", keys[order])
        _save_npy(self.path / "values.npy", values[order])
        _save_npy(self.path / "positions.npy", positions[order])
        self.meta = {"key_id": key_id, "count": int(len(keys)), "version": int(version)}
        _save_json(self.path / "meta.json", self.meta)

    def lookup(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(i, server position) for each values[i] present in the copy."""
        keys, stored, positions = self.arrays()
        if not len(keys) or not len(values):
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        probe = np.ascontiguousarray(values[:, :8]).view("<u8").reshape(-1)
        lo = np.searchsorted(keys, probe, "left")
        hi = np.searchsorted(keys, probe, "right")
        single = np.flatnonzero(hi - lo == 1)
        ok = (stored[lo[single]] == values[single]).all(axis=1) if len(single) else np.zeros(0, bool)
        hits_i, hits_p = [single[ok]], [np.asarray(positions[lo[single[ok]]], dtype=np.int64)]
        for i in np.flatnonzero(hi - lo > 1).tolist():  # repeated 8-byte prefixes: ~never
            for k in range(int(lo[i]), int(hi[i])):
                if (stored[k] == values[i]).all():
                    hits_i.append(np.array([i]))
                    hits_p.append(np.array([int(positions[k])]))
                    break
        return np.concatenate(hits_i).astype(np.int64), np.concatenate(hits_p).astype(np.int64)
