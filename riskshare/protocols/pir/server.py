"""The data owner's side: answers PIR requests from pinned peers until stopped.

:meth:`PirServer.handle` answers one request (a plain function of the link,
the peer and the request); :meth:`PirServer.serve` loops over requests from
each peer on its own thread. The table can be replaced while serving (an
updated source table, a rotated key): requests in flight finish on the version
they started with.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...crypto.oprf import ELEMENT_BYTES
from ...errors import PeerError, PeerTimeout, ProtocolError, QuotaExceeded, RiskshareError
from ...net import Link
from . import simplepir, wire
from .policy import QueryPolicy, UnlimitedPolicy
from .table import ServerTable

log = logging.getLogger("riskshare.pir")

Event = Callable[[dict], None]


@dataclass
class _Snapshot:
    table: ServerTable
    database: simplepir.Database | None


class PirServer:
    """Serves one table in one mode (``cached`` or ``pir``) under a query policy."""

    def __init__(self, table: ServerTable, *, mode: str = "cached", policy: QueryPolicy | None = None,
                 max_keys_per_query: int | None = None) -> None:
        if mode not in wire.MODES:
            raise ValueError(f"mode is one of {wire.MODES}")
        self.mode = mode
        self.policy = policy or UnlimitedPolicy()
        self.max_keys = max_keys_per_query or (wire.MAX_KEYS_CACHED if mode == "cached" else wire.MAX_KEYS_PIR)
        self._lock = threading.Lock()
        self._snapshot = _Snapshot(table, self._database_for(table))

    def _database_for(self, table: ServerTable) -> simplepir.Database | None:
        if self.mode != "pir":
            return None
        return build_database(table)

    @property
    def table(self) -> ServerTable:
        return self._snapshot.table

    @property
    def database(self) -> simplepir.Database | None:
        return self._snapshot.database

    def replace_table(self, table: ServerTable) -> None:
        """Serve ``table`` from the next request on (a new version or a rotated key)."""
        snapshot = _Snapshot(table, self._database_for(table))
        with self._lock:
            self._snapshot = snapshot

    # -- one request ------------------------------------------------------------------------
    def handle(self, link: Link, peer: str, request: dict) -> dict:
        """Answer one validated request; return a summary for the operator's log (no keys in it)."""
        with self._lock:
            snap = self._snapshot
        table = snap.table
        qid, op, mode, n = request["qid"], request["op"], request["mode"], request["keys"]
        summary = {"peer": peer, "query_id": qid, "op": op, "mode": mode, "keys": n, "table": table.table_id,
                   "version": table.version}
        blinded = None
        if op == "query" and n <= self.max_keys:
            blinded = link.recv_array(peer, wire.tag(qid, "blinded"), dtype=np.uint8, shape=(n, ELEMENT_BYTES))

        def refuse(reason: str, message: str) -> dict:
            if reason != "quota":  # the policy logged quota refusals itself
                self.policy.record(peer, "refused", table=table.table_id, query_id=qid, keys=n)
            link.send_json(peer, wire.tag(qid, "reply"), {"status": "refused", "reason": reason, "message": message})
            log.warning("refused %s query %s from '%s': %s", mode, qid, peer, message)
            return {**summary, "outcome": f"refused ({reason})"}

        if mode != self.mode:
            return refuse("mode", f"this server answers in {self.mode} mode, not {mode}; "
                                  f"query with --mode {self.mode}")
        if n > self.max_keys:
            return refuse("too-many-keys", f"at most {self.max_keys} keys per query in {mode} mode "
                                           f"(asked {n}); split the keys into several queries")
        allowance = None
        if op == "query":
            try:
                allowance = self.policy.check_and_count(peer, n, table=table.table_id, mode=mode, query_id=qid)
            except QuotaExceeded as exc:
                return refuse("quota", exc.message)
            try:
                evaluated = table.key.blind_evaluate(blinded)  # type: ignore[arg-type]
            except ProtocolError as exc:
                return refuse("malformed", f"your blinded elements were refused: {exc.message}")

        have = request.get("have") or {}
        reply: dict = {"status": "ok", "manifest": table.manifest()}
        if allowance is not None:
            reply["allowance"] = {"keys_left_today": allowance.keys_left_today,
                                  "queries_left_this_minute": allowance.queries_left_this_minute}
        if mode == "cached":
            delta = table.delta_since(have.get("key_id"), have.get("version"))
            reply["update"] = {"kind": delta.kind, "rows": int(len(delta.rows)), "deleted": int(len(delta.deleted))}
            link.send_json(peer, wire.tag(qid, "reply"), reply)
            if delta.kind != "none":
                rows = delta.rows
                link.send(peer, wire.tag(qid, "rows/tags"), table.tags[rows])
                link.send(peer, wire.tag(qid, "rows/nonces"), table.nonces[rows])
                link.send(peer, wire.tag(qid, "rows/ciphertexts"), table.ciphertexts[rows])
                link.send(peer, wire.tag(qid, "rows/revisions"), table.revisions[rows].astype("<u8"))
                link.send(peer, wire.tag(qid, "rows/deleted"), delta.deleted)
            summary["update"] = delta.kind
            summary["rows_sent"] = int(len(delta.rows))
        else:
            db = snap.database
            assert db is not None
            stale = have.get("key_id") != table.key_id or have.get("version") != table.version
            reply["update"] = {"kind": "full" if stale else "none", "rows": 0, "deleted": 0}
            if stale:
                reply["pir"] = {"layout": db.layout.to_json(), "seed": db.seed.hex(), "stash": int(len(db.stash))}
            link.send_json(peer, wire.tag(qid, "reply"), reply)
            if stale:
                link.send(peer, wire.tag(qid, "hint/matrix"), db.hint)
                link.send(peer, wire.tag(qid, "hint/stash"), db.stash)
            summary["update"] = "hint" if stale else "none"
        if op == "query":
            link.send(peer, wire.tag(qid, "evaluated"), evaluated)
            if mode == "pir":
                assert db is not None
                queries = link.recv_array(peer, wire.tag(qid, "pir-query"), dtype=np.uint32,
                                          shape=(n, db.layout.buckets))
                link.send(peer, wire.tag(qid, "pir-answer"), db.answer(queries))
        else:
            self.policy.record(peer, "sync", table=table.table_id, query_id=qid,
                               rows=int(summary.get("rows_sent", 0)))
        summary["outcome"] = "answered"
        return summary

    # -- serving -------------------------------------------------------------------------------
    def serve(self, link: Link, peers: list[str], stop: threading.Event, *, on_event: Event | None = None,
              tick: Callable[[], None] | None = None) -> None:
        """Answer requests from ``peers`` (one thread each) until ``stop`` is set.

        ``tick`` runs on the calling thread about twice a second (the CLI reloads the
        table there when asked to); signal handlers run on it as well.
        """
        threads = [threading.Thread(target=self._serve_peer, args=(link, p, stop, on_event), daemon=True,
                                    name=f"rs-pir-{p}") for p in peers]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            threads[0].join(0.5)
            if tick is not None and not stop.is_set():
                tick()

    def _serve_peer(self, link: Link, peer: str, stop: threading.Event, on_event: Event | None) -> None:
        while not stop.is_set():
            try:
                doc = link.recv_json(peer, wire.REQUEST_TAG, timeout=0.5)
            except PeerTimeout:
                continue
            except PeerError:
                time.sleep(0.2)  # the last client left; wait for the next one to connect
                continue
            except RiskshareError as exc:
                if stop.is_set():
                    return
                log.warning("request from '%s' unreadable: %s", peer, exc)
                time.sleep(0.2)
                continue
            started = time.monotonic()
            try:
                request = wire.check_request(doc, peer)
                summary = self.handle(link, peer, request)
            except RiskshareError as exc:
                summary = {"peer": peer, "outcome": f"failed: {exc}"}
                log.warning("query from '%s' failed: %s", peer, exc)
            summary["seconds"] = round(time.monotonic() - started, 4)
            if on_event:
                on_event(summary)


def build_database(table: ServerTable) -> simplepir.Database:
    """The SimplePIR database of a table: every record's slot (tag | nonce | revision | ciphertext)."""
    revisions = np.ascontiguousarray(table.revisions.astype("<u8")).view(np.uint8).reshape(-1, 8)
    slots = np.concatenate([table.tags, table.nonces, revisions, table.ciphertexts], axis=1)
    return simplepir.Database.build(slots, table.buckets)
