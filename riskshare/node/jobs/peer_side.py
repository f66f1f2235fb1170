"""What a job manager does for its peer's node (called by ``/peer/v1``): proposals, runs, aborts, heads.

The peer is always the name this node pinned for the certificate the request
came with; nothing in a request body says who is asking.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ...net.certs import load_certificate
from ...errors import InputError, PeerError
from ..audit import verify_head
from ..errors import Conflict, NotFound, PeerRefused
from ..registry import get_table, source_of
from ..storage import utcnow
from ..storage.models import Job, PeerHead
from .components import get_component
from .spec import JobSpec, parse_spec
from .state import ACCEPTED, JOB_ID_RE, TERMINAL, Stop


class PeerSide:
    """Mixin of :class:`~.manager.JobManager`: the requests the peer's node sends this node."""

    def receive_proposal(self, peer: str, job_id: str, manifest: dict[str, Any]) -> dict[str, Any]:
        if not JOB_ID_RE.match(job_id or ""):
            raise InputError("malformed job id")
        with self.ctx.db.session() as s:
            existing = s.get(Job, job_id)
            if existing is not None:
                if existing.peer != peer or existing.role != "responder":
                    raise Conflict(f"job {job_id} exists here and is not yours")
                return self.peer_view(existing)
        spec = self._manifest_spec(manifest)
        steps, ops = self._check_steps(spec)
        if ops != manifest.get("ops"):
            raise InputError("the manifest's operations do not match its steps")
        now = utcnow()
        with self.ctx.db.session() as s:
            table = source_of(get_table(s, spec.table))
            mine = dict(manifest)
            mine["steps"] = steps
            mine["tables"] = {"initiator": dict(manifest["tables"]["initiator"]),
                              "responder": {"table": spec.table, "columns": sorted(
                                  {c for st in steps for c in get_component(st["op"]).columns(table, st["params"])})}}
            job = Job(id=job_id, name=spec.name, role="responder", peer=peer, state="waiting_approval",
                      manifest=mine, table_name=spec.table, purpose=spec.purpose, created_by=f"peer:{peer}",
                      created_at=now, updated_at=now, attempt=0, local_decision="pending",
                      peer_decision="covered", next_action_at=now)
            s.add(job)
            self._add_steps(s, job_id, steps)
            s.flush()
            self.ctx.audit.append(s, f"peer:{peer}", "job.proposal", f"job:{job_id}", {
                "peer": peer, "table": spec.table, "ops": ops, "purpose": spec.purpose,
                "result_to": spec.result_to, "requested_by": str(manifest.get("requested_by", ""))[:80],
                "peer_columns": manifest["tables"]["initiator"].get("columns", []),
            })
            self._decide_locally(s, job, ops, mine, f"peer:{peer}")
            if job.local_decision == "covered":
                job.state, job.updated_at = "queued", utcnow()
            return self.peer_view(job)

    def _manifest_spec(self, manifest: Any) -> JobSpec:
        try:
            tables = manifest["tables"]
            role = manifest["initiator_role"]
            return parse_spec({
                "name": manifest.get("name", ""), "peer": self.ctx.name, "table": tables["responder"]["table"],
                "peer_table": tables["initiator"]["table"], "purpose": manifest["purpose"],
                "role": "sender" if role == "receiver" else "receiver", "result_to": manifest["result_to"],
                "timeout": manifest["timeout"], "steps": manifest["steps"],
            })
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"malformed job manifest (missing {exc})") from None

    @staticmethod
    def peer_view(job: Job) -> dict[str, Any]:
        return {"job_id": job.id, "state": job.state, "decision": job.local_decision,
                "reason": job.decision_reason if job.local_decision in ("denied", "refused") else
                (job.decision_reason or ""), "attempt": job.attempt, "current_step": job.current_step,
                "error": job.error}

    def peer_status(self, peer: str, job_id: str) -> dict[str, Any]:
        with self.ctx.db.session() as s:
            job = self._peer_job(s, peer, job_id)
            return self.peer_view(job)

    def _peer_job(self, s: Any, peer: str, job_id: str) -> Job:
        job = s.get(Job, job_id) if isinstance(job_id, str) and len(job_id) <= 40 else None
        if job is None or job.peer != peer:
            raise NotFound(f"no job '{job_id}' with peer '{peer}' here")
        return job

    def peer_run(self, peer: str, job_id: str, number: int, completed: list[str]) -> dict[str, Any]:
        with self.ctx.db.session() as s:
            job = self._peer_job(s, peer, job_id)
            if job.role != "responder":
                raise Conflict("only the initiator starts a job")
            if job.local_decision not in ACCEPTED:
                raise Conflict(f"job {job_id} is not accepted here ({job.local_decision}): {job.decision_reason or ''}")
            if job.state in TERMINAL:
                raise Conflict(f"job {job_id} is already {job.state} here: {job.error or ''}")
            if number <= job.attempt and job.state == "running":
                return {"start_step": job.start_step, "attempt": job.attempt}
            mine = self._completed_steps(s, job_id)
            order = [st["id"] for st in job.manifest["steps"]]
        with self._lock:
            old = self._attempts.get(job_id)
        if old is not None:
            old.stop(Stop("superseded", f"attempt {number} replaces attempt {old.number}"))
            if not old.done.wait(15.0):
                raise Conflict(f"attempt {old.number} of job {job_id} has not stopped yet; try again")
        both = set(mine) & set(completed or [])
        start = next((sid for sid in order if sid not in both), order[-1])
        self._launch(job_id, number, start)
        return {"start_step": start, "attempt": number}

    def peer_abort(self, peer: str, job_id: str, number: int | None, kind: str, reason: str) -> dict[str, Any]:
        if kind not in ("cancelled", "failed", "interrupted"):
            raise InputError(f"unknown abort kind '{kind}'")
        with self.ctx.db.session() as s:
            job = self._peer_job(s, peer, job_id)
            self.ctx.audit.append(s, f"peer:{peer}", "job.peer_abort", f"job:{job_id}",
                                  {"kind": kind, "attempt": number, "reason": reason[:500]})
            with self._lock:
                attempt = self._attempts.get(job_id)
            if attempt is not None and (number is None or number >= attempt.number):
                attempt.stop(Stop("peer", f"peer '{peer}' {kind} the job: {reason}", kind))
            elif job.state not in TERMINAL and job.state != "running":
                if kind == "interrupted":
                    if job.role == "initiator" and job.state == "starting":
                        job.next_action_at = utcnow()
                else:
                    self._finish(s, job, "cancelled" if kind == "cancelled" else "failed",
                                 f"peer '{peer}' {kind} the job: {reason}")
                    self._withdraw_approvals(s, job_id)
        self.wake()
        return {"ok": True}

    def peer_decision(self, peer: str, job_id: str, decision: str, reason: str) -> dict[str, Any]:
        with self.ctx.db.session() as s:
            job = self._peer_job(s, peer, job_id)
            if job.role == "initiator":
                self._apply_peer_decision(s, job, {"decision": decision, "reason": reason})
        self.wake()
        return {"ok": True}

    def exchange_heads(self, peer: str, job_id: str | None) -> None:
        """Hand the peer our signed chain head and keep theirs (at the end of every job)."""
        mine = self.ctx.audit.head()
        try:
            answer = self.node.peer_client.call(peer, "POST", "/audit/heads", {"job_id": job_id, "head": mine})
        except (PeerError, PeerRefused) as exc:
            self._log(job_id, "warning", f"could not exchange audit chain heads with '{peer}': {exc}") if job_id else None
            return
        self.store_peer_head(peer, job_id, answer.get("head"), ours=mine)

    def store_peer_head(self, peer: str, job_id: str | None, head: Any, ours: dict[str, Any] | None = None) -> None:
        cert = load_certificate(self.ctx.home.peer(peer).cert_pem)
        if not isinstance(head, dict) or not verify_head(head, cert.public_key()):  # type: ignore[arg-type]
            raise InputError(f"peer '{peer}' sent an audit head without a valid signature")
        now = utcnow()
        with self.ctx.db.session() as s:
            s.add(PeerHead(peer=peer, owner="peer", job_id=job_id, seq=int(head["seq"]), hash=str(head["hash"]),
                           ts=str(head["ts"]), signature=str(head["signature"]), received_at=now))
            if ours is not None:
                s.add(PeerHead(peer=peer, owner="self", job_id=job_id, seq=ours["seq"], hash=ours["hash"],
                               ts=ours["ts"], signature=ours["signature"], received_at=now))
            self.ctx.audit.append(s, "node", "audit.peer_head", f"peer:{peer}",
                                  {"job": job_id, "seq": int(head["seq"]), "hash": str(head["hash"])})

    def receive_head(self, peer: str, job_id: str | None, head: Any) -> dict[str, Any]:
        mine = self.ctx.audit.head()
        self.store_peer_head(peer, job_id, head, ours=mine)
        return {"head": mine}

    def heads_held_for(self, peer: str) -> list[dict[str, Any]]:
        with self.ctx.db.session() as s:
            rows = s.execute(select(PeerHead).where(PeerHead.peer == peer, PeerHead.owner == "peer")
                             .order_by(PeerHead.id)).scalars()
            return [{"seq": r.seq, "hash": r.hash, "ts": r.ts, "job_id": r.job_id} for r in rows]
