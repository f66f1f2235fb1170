"""The audit log: append-only, hash-chained, signed with the node key.

Every record holds who (``actor``), did what (``action``), to what
(``target``), with which counts and names (``details``) — never data values.
Each record's ``hash`` is SHA-256 over its canonical JSON including the
previous record's hash, and ``signature`` is the node's Ed25519 signature of
that hash. So an edited record breaks its own hash, a deleted or reordered one
breaks the chain, and nobody without ``node.key`` can forge a consistent
replacement. The newest (sequence number, hash) is also kept in a one-row head
table and, at the end of every job, sent signed to the peer, which keeps it:
rewriting history later would contradict what the peer holds.

Records are appended inside the caller's database transaction, so a state
change and its audit record commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select
from sqlalchemy.orm import Session

from .storage import Database
from .storage.models import AuditHead, AuditRecord, PeerHead

GENESIS = "0" * 64
RECORD_DOMAIN = b"riskshare-audit-record-v1:"
HEAD_DOMAIN = b"riskshare-audit-head-v1:"

# Detail keys that must never carry data values; anything else is a name, count or decision.
_FORBIDDEN_DETAIL_KEYS = frozenset({"ids", "values", "data"})


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(seq: int, ts: str, actor: str, action: str, target: str, details: str, prev_hash: str) -> str:
    body = canonical({"seq": seq, "ts": ts, "actor": actor, "action": action, "target": target,
                      "details": json.loads(details), "prev": prev_hash})
    return hashlib.sha256(body.encode()).hexdigest()


def _now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def head_message(node: str, seq: int, hash_hex: str, ts: str) -> bytes:
    return HEAD_DOMAIN + canonical({"node": node, "seq": seq, "hash": hash_hex, "ts": ts}).encode()


@dataclass
class VerifyReport:
    records: int = 0
    problems: list[str] = field(default_factory=list)
    head_seq: int = 0
    head_hash: str = GENESIS

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "head_seq": self.head_seq, "head_hash": self.head_hash,
                "problems": self.problems}


class AuditLog:
    """Appends to and verifies one node's audit chain."""

    def __init__(self, db: Database, node_name: str, private_key: ed25519.Ed25519PrivateKey) -> None:
        self.db = db
        self.node_name = node_name
        self._key = private_key
        self.public_key = private_key.public_key()

    # -- writing ----------------------------------------------------------------
    def append(self, session: Session, actor: str, action: str, target: str = "",
               details: dict[str, Any] | None = None) -> AuditRecord:
        """Add a record in ``session``'s transaction (it commits with the caller's change)."""
        details = details or {}
        bad = _FORBIDDEN_DETAIL_KEYS.intersection(details)
        if bad:  # a programming error: audit carries counts and names, never data
            raise ValueError(f"audit details may not carry data values ({', '.join(sorted(bad))})")
        head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
        if head is None:
            head = AuditHead(id=1, seq=0, hash=GENESIS)
            session.add(head)
            session.flush()
        seq = head.seq + 1
        ts = _now_iso()
        details_json = canonical(details)
        digest = record_hash(seq, ts, actor, action, target, details_json, head.hash)
        signature = self._key.sign(RECORD_DOMAIN + bytes.fromhex(digest)).hex()
        record = AuditRecord(seq=seq, ts=ts, actor=actor[:120], action=action, target=target[:255],
                             details=details_json, prev_hash=head.hash, hash=digest, signature=signature)
        session.add(record)
        head.seq, head.hash = seq, digest
        session.flush()
        return record

    def record(self, actor: str, action: str, target: str = "", details: dict[str, Any] | None = None) -> None:
        """Add a record in its own transaction."""
        with self.db.session() as session:
            self.append(session, actor, action, target, details)

    # -- heads ------------------------------------------------------------------
    def head(self) -> dict[str, Any]:
        """The newest (seq, hash), signed now: what we hand a peer at the end of a job."""
        with self.db.session() as session:
            row = session.get(AuditHead, 1)
            seq, digest = (row.seq, row.hash) if row else (0, GENESIS)
        ts = _now_iso()
        signature = self._key.sign(head_message(self.node_name, seq, digest, ts)).hex()
        return {"node": self.node_name, "seq": seq, "hash": digest, "ts": ts, "signature": signature}

    # -- reading ----------------------------------------------------------------
    def records(self, *, since: dt.datetime | None = None, after_seq: int = 0, limit: int | None = None,
                action: str | None = None) -> list[dict[str, Any]]:
        with self.db.session() as session:
            query = select(AuditRecord).where(AuditRecord.seq > after_seq).order_by(AuditRecord.seq)
            if since is not None:
                query = query.where(AuditRecord.ts >= since.astimezone(dt.timezone.utc).isoformat())
            if action:
                query = query.where(AuditRecord.action.like(action.replace("*", "%")))
            if limit:
                query = query.limit(limit)
            return [record_dict(r) for r in session.execute(query).scalars()]

    def iter_all(self, batch: int = 5000) -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            rows = self.records(after_seq=after, limit=batch)
            if not rows:
                return
            yield from rows
            after = rows[-1]["seq"]

    # -- verifying ----------------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Check every record's hash, signature and chain link, and the head row."""
        report = verify_records(self.iter_all(), self.public_key)
        with self.db.session() as session:
            head = session.get(AuditHead, 1)
            head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
            if (head_seq, head_hash) != (report.head_seq, report.head_hash):
                report.problems.append(
                    f"the chain ends at record {report.head_seq} but the head says {head_seq}: "
                    "records at the end were deleted or the head was changed"
                )
            for held in session.execute(select(PeerHead).where(PeerHead.owner == "self")).scalars():
                if held.seq > report.head_seq:
                    report.problems.append(
                        f"peer '{held.peer}' holds our head at record {held.seq}, beyond the end of the chain "
                        f"({report.head_seq}): records were deleted"
                    )
        return report


def record_dict(r: AuditRecord) -> dict[str, Any]:
    return {"seq": r.seq, "ts": r.ts, "actor": r.actor, "action": r.action, "target": r.target,
            "details": json.loads(r.details), "prev_hash": r.prev_hash, "hash": r.hash, "signature": r.signature}


def verify_records(records: Iterable[dict[str, Any]], public_key: ed25519.Ed25519PublicKey,
                   *, first_seq: int = 1, prev_hash: str = GENESIS) -> VerifyReport:
    """Verify a sequence of exported records (offline: needs only the node's public key)."""
    report = VerifyReport(head_seq=first_seq - 1, head_hash=prev_hash)
    expected_seq, prev = first_seq, prev_hash
    for rec in records:
        report.records += 1
        seq = rec["seq"]
        if seq != expected_seq:
            what = "missing (deleted)" if seq > expected_seq else "out of order or repeated"
            report.problems.append(f"record {expected_seq} is {what}: found record {seq} in its place")
        if rec["prev_hash"] != prev:
            report.problems.append(f"record {seq} does not link to the record before it (deleted, inserted or reordered)")
        details_json = canonical(rec["details"])
        digest = record_hash(seq, rec["ts"], rec["actor"], rec["action"], rec["target"], details_json,
                             rec["prev_hash"])
        if digest != rec["hash"]:
            report.problems.append(f"record {seq} was edited: its content does not match its hash")
        try:
            public_key.verify(bytes.fromhex(rec["signature"]), RECORD_DOMAIN + bytes.fromhex(rec["hash"]))
        except (InvalidSignature, ValueError):
            report.problems.append(f"record {seq} has no valid node signature")
        prev, expected_seq = rec["hash"], seq + 1
        report.head_seq, report.head_hash = seq, rec["hash"]
        if len(report.problems) > 100:
            report.problems.append("more than 100 problems; stopped")
            break
    return report


def verify_head(head: dict[str, Any], public_key: ed25519.Ed25519PublicKey) -> bool:
    try:
        public_key.verify(bytes.fromhex(head["signature"]),
                          head_message(head["node"], int(head["seq"]), head["hash"], head["ts"]))
        return True
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
