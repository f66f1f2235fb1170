"""The asking side: look keys up in a peer's table, learning only their records.

:class:`PirClient` keeps its state between queries (in memory, and in the node
home through a :class:`~.cache.CacheStore` / :class:`HintStore`): in cached mode
the encrypted table copy, in pir mode the hint. Each :meth:`PirClient.query`
is one request: the OPRF round (plus, in pir mode, one LWE query per key), with
any update of the copy or hint the server sends in the same round.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from ...crypto import oprf
from ...data import normalise
from ...errors import InputError, ProtocolError, QuotaExceeded
from ...net import Link
from . import records, simplepir, wire
from .cache import CacheIntegrityError, CacheStore, TableCopy
from .records import NONCE_BYTES, TAG_BYTES
from .table import TABLE_ID_RE

MAX_KEY_CHARS = 256


@dataclass
class Answer:
    """One asked key: as asked, normalised, found or not, and the record's values by column."""

    key: str
    normalised: str
    found: bool
    record: dict[str, str] | None


@dataclass
class QueryResult:
    answers: list[Answer]
    table: str
    columns: list[str]
    version: int
    key_id: str
    update: str  # "none", "delta", "full" (cached) / "none", "full" (pir: the hint)
    rows_received: int = 0
    deleted: int = 0
    notes: list[str] = field(default_factory=list)
    allowance: dict | None = None

    @property
    def found(self) -> int:
        return sum(a.found for a in self.answers)


# -- keys -------------------------------------------------------------------------------------

def normalise_keys(keys: Sequence[str]) -> list[str]:
    """Normalise as PSI does (NFKC, strip, upper-case); refuse empty and malformed keys, naming them."""
    if not keys:
        raise InputError("no keys to look up", hint="give --key KEY or --keys-file FILE")
    raw = [None if k is None else str(k) for k in keys]
    norm = normalise(pa.array(raw, type=pa.string())).to_pylist()
    for i, (asked, value) in enumerate(zip(raw, norm)):
        where = f"key {i + 1} ({asked!r})" if len(keys) > 1 else f"the key {asked!r}"
        if not value:
            raise InputError(f"{where} is empty", hint="remove empty lines from the keys file")
        if len(value) > MAX_KEY_CHARS:
            raise InputError(f"{where} is {len(value)} characters long; keys are at most {MAX_KEY_CHARS}")
        bad = sorted({c for c in value if unicodedata.category(c)[0] == "C"})
        if bad:
            codes = ", ".join(f"U+{ord(c):04X}" for c in bad)
            raise InputError(f"{where} contains control characters ({codes})", hint="check the keys file's encoding")
    return norm


# -- pir mode's hint ---------------------------------------------------------------------------

@dataclass
class PirHint:
    """What a pir-mode client downloads once per table version."""

    manifest: dict
    state: simplepir.ClientState

    @property
    def key_id(self) -> str:
        return self.manifest["key_id"]

    @property
    def version(self) -> int:
        return int(self.manifest["version"])


class HintStore:
    """Hints kept in the node home: ``HOME/pir-hint/<peer>/<table>/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def tables(self, peer: str) -> list[str]:
        base = self.root / peer
        return sorted(p.name for p in base.iterdir() if (p / "hint.json").exists()) if base.is_dir() else []

    def load(self, peer: str, table_id: str) -> PirHint | None:
        d = self.root / peer / table_id
        if not (d / "hint.json").exists():
            return None
        try:
            meta = json.loads((d / "hint.json").read_text())
            layout = simplepir.Layout(**meta["layout"])
            hint = np.load(d / "hint.npy", allow_pickle=False)
            stash = np.load(d / "stash.npy", allow_pickle=False)
            ok = hint.shape == (layout.rows, simplepir.LWE_N) and hint.dtype == np.uint32 and (
                stash.ndim == 2 and stash.shape[1] == layout.slot_bytes)
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise CacheIntegrityError(f"the PIR hint for '{table_id}' from '{peer}' cannot be read ({exc})",
                                      hint="fetch it again with --refresh") from None
        if not ok:
            raise CacheIntegrityError(f"the PIR hint for '{table_id}' from '{peer}' is damaged",
                                      hint="fetch it again with --refresh")
        return PirHint(meta["manifest"], simplepir.ClientState(layout, bytes.fromhex(meta["seed"]), hint, stash))

    def save(self, peer: str, hint: PirHint) -> None:
        d = self.root / peer / hint.manifest["table"]
        tmp = d.parent / f".{d.name}.{os.getpid()}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        np.save(tmp / "hint.npy", hint.state.hint, allow_pickle=False)
        np.save(tmp / "stash.npy", hint.state.stash, allow_pickle=False)
        (tmp / "hint.json").write_text(json.dumps({"manifest": hint.manifest, "layout": hint.state.layout.to_json(),
                                                   "seed": hint.state.seed.hex()}, indent=2, ensure_ascii=False))
        old = d.parent / f".{d.name}.{os.getpid()}.old"
        if d.exists():
            os.replace(d, old)
        os.replace(tmp, d)
        shutil.rmtree(old, ignore_errors=True)


# -- the client ------------------------------------------------------------------------------

class PirClient:
    """Looks keys up in ``peer``'s table over ``link``; state optionally persisted in a node home."""

    def __init__(self, link: Link, peer: str, *, mode: str = "cached", store: CacheStore | None = None,
                 hints: HintStore | None = None, table: str | None = None, refresh: bool = False) -> None:
        if mode not in wire.MODES:
            raise InputError(f"--mode must be one of {', '.join(wire.MODES)}, not '{mode}'")
        self.link, self.peer, self.mode = link, peer, mode
        self.store, self.hints = store, hints
        self.copy: TableCopy | None = None
        self.hint: PirHint | None = None
        self._pads: list = []
        if refresh:
            return
        table = table or self._last_table()
        if table is None:
            return
        if mode == "cached" and store is not None:
            self.copy = store.load(peer, table)
        elif mode == "pir" and hints is not None:
            self.hint = hints.load(peer, table)

    def _last_table(self) -> str | None:
        names = (self.store.tables(self.peer) if self.mode == "cached" and self.store
                 else self.hints.tables(self.peer) if self.mode == "pir" and self.hints else [])
        if not names:
            return None
        base = self.store.root if self.mode == "cached" and self.store else self.hints.root  # type: ignore[union-attr]
        return max(names, key=lambda n: (base / self.peer / n).stat().st_mtime)

    def prepare(self, count: int) -> None:
        """pir mode: compute the key-independent part of ``count`` future queries now (offline work).

        A SimplePIR query is ``A·s + e`` plus one entry that depends on the key;
        everything but that entry can be computed before the key is known.
        """
        if self.mode != "pir" or self.hint is None:
            raise InputError("prepare() needs pir mode and a downloaded hint (call sync() first)")
        self._add_pads(self.hint.state.prepare(count), self.hint.manifest["digest"])

    def _add_pads(self, pads: list, digest: str) -> None:
        if getattr(self, "_pads_for", None) != digest:
            self._pads = []  # pads of another hint are useless
        self._pads.extend(pads)
        self._pads_for = digest

    def _take_pads(self, count: int) -> list:
        if self.hint is None or getattr(self, "_pads_for", None) != self.hint.manifest["digest"]:
            return []  # prepared for another hint: useless
        taken, self._pads = self._pads[:count], self._pads[count:]
        return taken

    def sync(self) -> QueryResult:
        """Bring the cached copy (or hint) up to date without looking anything up."""
        return self._round([], [])

    def query(self, keys: Sequence[str]) -> QueryResult:
        """Look ``keys`` up (many in one round); the answers come back in the order asked."""
        asked = [str(k) for k in keys]
        norm = normalise_keys(asked)
        distinct = list(dict.fromkeys(norm))
        return self._round(asked, norm, distinct)

    # -- one round -------------------------------------------------------------------------
    def _have(self) -> dict | None:
        if self.mode == "cached" and self.copy is not None:
            return {"table": self.copy.table_id, "key_id": self.copy.key_id, "version": self.copy.version}
        if self.mode == "pir" and self.hint is not None:
            return {"table": self.hint.manifest["table"], "key_id": self.hint.key_id, "version": self.hint.version}
        return None

    def _round(self, asked: list[str], norm: list[str], distinct: list[str] | None = None) -> QueryResult:
        link, peer = self.link, self.peer
        distinct = distinct or []
        n = len(distinct)
        qid = os.urandom(16).hex()
        have = self._have()
        link.send_json(peer, wire.REQUEST_TAG, {"v": wire.WIRE_VERSION, "qid": qid, "op": "query" if n else "sync",
                                                "mode": self.mode, "keys": n, "have": have})
        blinded = None
        background = None
        if n and self.mode == "pir" and self.hint is not None and len(self._pads) < n:
            # The key-independent part of the PIR queries overlaps the OPRF round.
            hint_now, missing = self.hint, n - len(self._pads)
            made: list = []
            background = threading.Thread(target=lambda: made.extend(hint_now.state.prepare(missing)), daemon=True)
            background.start()
        if n:
            blinded = oprf.blind([k.encode() for k in distinct])
            link.send(peer, wire.tag(qid, "blinded"), blinded.elements)
        reply = link.recv_json(peer, wire.tag(qid, "reply"))
        if isinstance(reply, dict) and reply.get("status") == "refused":
            message = str(reply.get("message", "no reason given"))[:1000]
            if reply.get("reason") == "quota":
                raise QuotaExceeded(f"peer '{peer}' refused the query: {message}")
            if reply.get("reason") in ("mode", "too-many-keys"):
                raise InputError(f"peer '{peer}' refused the query: {message}")
            raise ProtocolError(f"peer '{peer}' refused the query: {message}")
        if not isinstance(reply, dict) or reply.get("status") != "ok":
            raise ProtocolError(f"peer '{peer}' sent a malformed PIR reply")
        reply = wire.check_reply(reply, peer)
        manifest, update = reply["manifest"], reply["update"]
        if not TABLE_ID_RE.match(manifest["table"]):
            raise ProtocolError(f"peer '{peer}' named its table {manifest['table']!r}, which is not a valid name")
        result = QueryResult([], manifest["table"], list(manifest["columns"]), int(manifest["version"]),
                             manifest["key_id"], update["kind"], allowance=reply.get("allowance"))
        if have and have.get("key_id") != manifest["key_id"]:
            result.notes.append(
                f"peer '{peer}' rotated its OPRF key (key id {have['key_id']} -> {manifest['key_id']}): the cached "
                f"{'table' if self.mode == 'cached' else 'hint'} no longer opens and was replaced by a fresh copy")
        if self.mode == "cached":
            self._update_copy(qid, manifest, update, result)
        else:
            self._update_hint(qid, reply, manifest, update)
        if background is not None:
            background.join()
            if self.hint is hint_now:  # still the same hint: the pads fit
                self._add_pads(made, hint_now.manifest["digest"])
        if not n:
            return result
        evaluated = link.recv_array(peer, wire.tag(qid, "evaluated"), dtype=np.uint8, shape=(n, oprf.ELEMENT_BYTES))
        derived = records.derive(oprf.finalize(blinded, evaluated))  # type: ignore[arg-type]
        if self.mode == "cached":
            copy = self.copy
            assert copy is not None
            values = copy.open_rows(copy.find(derived.tags), derived.keys, derived.tags)
        else:
            values = self._pir_fetch(qid, derived, manifest)
        by_key = dict(zip(distinct, values))
        columns = result.columns
        for a, k in zip(asked, norm):
            v = by_key[k]
            result.answers.append(Answer(a, k, v is not None, None if v is None else dict(zip(columns, v))))
        return result

    def _update_copy(self, qid: str, manifest: dict, update: dict, result: QueryResult) -> None:
        link, peer = self.link, self.peer
        kind = update["kind"]
        if kind == "none":
            copy = self.copy
            if copy is None or copy.table_id != manifest["table"] or copy.version != manifest["version"] \
                    or copy.digest != manifest["digest"] or copy.key_id != manifest["key_id"]:
                raise ProtocolError(
                    f"peer '{peer}' says the cached table is current, but it is not the version it announces "
                    f"(cached: {copy.version if copy else 'none'}, server: {manifest['version']})",
                    hint="fetch a fresh copy with --refresh",
                )
            return
        if kind == "delta" and self.copy is None:
            raise ProtocolError(f"peer '{peer}' sent a delta for a table this client does not hold")
        rows, width = update["rows"], manifest["width"]
        q = lambda name: wire.tag(qid, f"rows/{name}")  # noqa: E731
        tags = link.recv_array(peer, q("tags"), dtype=np.uint8, shape=(rows, TAG_BYTES))
        nonces = link.recv_array(peer, q("nonces"), dtype=np.uint8, shape=(rows, NONCE_BYTES))
        cts = link.recv_array(peer, q("ciphertexts"), dtype=np.uint8, shape=(rows, width + records.GCM_TAG_BYTES))
        revs = link.recv_array(peer, q("revisions"), dtype="<u8", shape=(rows,))
        deleted = link.recv_array(peer, q("deleted"), dtype=np.uint8, shape=(update["deleted"], TAG_BYTES))
        base = self.copy if (kind == "delta" and self.copy is not None) else TableCopy.empty()
        new = base.apply(manifest, kind, tags, nonces, cts, revs, deleted)
        if self.store is not None:
            self.store.save(peer, new)
        self.copy = new
        result.rows_received, result.deleted = rows, int(update["deleted"])

    def _update_hint(self, qid: str, reply: dict, manifest: dict, update: dict) -> None:
        if update["kind"] == "none":
            if self.hint is None or self.hint.manifest.get("digest") != manifest["digest"]:
                raise ProtocolError(f"peer '{self.peer}' says the PIR hint is current, but this client has another",
                                    hint="fetch it again with --refresh")
            return
        info = reply.get("pir")
        try:
            layout = simplepir.Layout(int(info["layout"]["buckets"]), int(info["layout"]["capacity"]),
                                      int(info["layout"]["slot_bytes"]))
            seed = bytes.fromhex(info["seed"])
            stash_n = int(info["stash"])
        except (TypeError, KeyError, ValueError):
            raise ProtocolError(f"peer '{self.peer}' sent malformed PIR parameters") from None
        slot = TAG_BYTES + NONCE_BYTES + 8 + manifest["width"] + records.GCM_TAG_BYTES
        if (len(seed) != simplepir.SEED_BYTES or layout.slot_bytes != slot or layout.buckets & (layout.buckets - 1)
                or not 16 <= layout.buckets <= simplepir.MAX_COLUMNS or not 1 <= layout.capacity <= 4096
                or not 0 <= stash_n <= manifest["records"]):
            raise ProtocolError(f"peer '{self.peer}' sent PIR parameters this client does not accept "
                                f"({layout}, stash {stash_n})")
        hint = self.link.recv_array(self.peer, wire.tag(qid, "hint/matrix"), dtype=np.uint32,
                                    shape=(layout.rows, simplepir.LWE_N))
        stash = self.link.recv_array(self.peer, wire.tag(qid, "hint/stash"), dtype=np.uint8, shape=(stash_n, slot))
        self.hint = PirHint(dict(manifest), simplepir.ClientState(layout, seed, hint, stash))
        if self.hints is not None:
            self.hints.save(self.peer, self.hint)

    def _pir_fetch(self, qid: str, derived: records.Derived, manifest: dict) -> list[list[str] | None]:
        hint = self.hint
        assert hint is not None
        layout = hint.state.layout
        columns = (derived.buckets & np.uint64(layout.buckets - 1)).astype(np.int64)
        pads = self._take_pads(len(columns))
        pads, queries = hint.state.queries(columns, pads)
        self.link.send(self.peer, wire.tag(qid, "pir-query"), queries)
        answers = self.link.recv_array(self.peer, wire.tag(qid, "pir-answer"), dtype=np.uint32,
                                       shape=(len(columns), layout.rows))
        buckets = hint.state.recover(answers, pads)
        out: list[list[str] | None] = []
        table_id, key_id, n_cols = manifest["table"], manifest["key_id"], len(manifest["columns"])
        for i in range(len(columns)):
            tag = derived.tags[i]
            candidates = np.concatenate([buckets[i], hint.state.stash]) if len(hint.state.stash) else buckets[i]
            hit = np.flatnonzero((candidates[:, :TAG_BYTES] == tag).all(axis=1))
            if not len(hit):
                out.append(None)
                continue
            slot = candidates[hit[0]]
            nonce = slot[TAG_BYTES : TAG_BYTES + NONCE_BYTES].tobytes()
            revision = int.from_bytes(slot[TAG_BYTES + NONCE_BYTES : TAG_BYTES + NONCE_BYTES + 8].tobytes(), "little")
            ct = slot[TAG_BYTES + NONCE_BYTES + 8 :].tobytes()
            plaintext = records.open_record(derived.keys[i].tobytes(), nonce, ct, table_id, key_id, tag.tobytes(),
                                            revision)
            if plaintext is None:
                raise ProtocolError(f"the record retrieved from peer '{self.peer}' fails authentication",
                                    hint="the server's answer was corrupted or tampered with")
            try:
                out.append(records.unpad(plaintext, n_cols))
            except (ValueError, UnicodeDecodeError) as exc:
                raise ProtocolError(f"a record from peer '{self.peer}' is malformed ({exc})") from None
        return out
