"""Job states, why an attempt stops, and the views of jobs, artifacts and schedules the API returns."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .. import grants as grants_mod
from ..storage import utcnow
from ..storage.models import Artifact, Job, JobEvent, JobStep, Schedule

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "denied", "refused"})
ACCEPTED = frozenset({"covered", "approved"})
JOB_ID_RE = re.compile(r"^j-[0-9a-f]{16}$")


class Stop(Exception):
    """Why a running attempt must stop (raised inside the worker by checks)."""

    def __init__(self, kind: str, reason: str, peer_kind: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind  # cancelled | revoked | peer | shutdown | superseded
        self.reason = reason
        self.peer_kind = peer_kind  # for kind == peer: cancelled | failed | interrupted | denied


@dataclass
class Attempt:
    job_id: str
    number: int
    started: float = field(default_factory=time.monotonic)
    stop_reason: Stop | None = None
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def stop(self, reason: Stop) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def check(self) -> None:
        if self.stop_reason is not None:
            raise self.stop_reason


def new_job_id() -> str:
    return "j-" + secrets.token_hex(8)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_dict(job: Job, steps: list[JobStep] | None = None) -> dict[str, Any]:
    out = {
        "id": job.id, "name": job.name, "role": job.role, "peer": job.peer, "state": job.state,
        "table": job.table_name, "peer_table": _other_table(job), "purpose": job.purpose,
        "ops": job.manifest.get("ops", []), "result_to": job.manifest.get("result_to"),
        "created_by": job.created_by, "created_at": _iso(job.created_at), "updated_at": _iso(job.updated_at),
        "started_at": _iso(job.started_at), "finished_at": _iso(job.finished_at), "attempt": job.attempt,
        "current_step": job.current_step, "error": job.error, "local_decision": job.local_decision,
        "peer_decision": job.peer_decision, "decision_reason": job.decision_reason, "grant_id": job.grant_id,
        "schedule_id": job.schedule_id, "rerun_of": job.rerun_of,
    }
    if steps is not None:
        out["steps"] = [{"id": s.step_id, "op": s.op, "state": s.state, "attempt": s.attempt,
                         "started_at": _iso(s.started_at), "finished_at": _iso(s.finished_at),
                         "summary": s.summary, "error": s.error} for s in steps]
    return out


def _other_table(job: Job) -> str | None:
    tables = job.manifest.get("tables", {})
    return tables.get("responder" if job.role == "initiator" else "initiator", {}).get("table")


def artifact_dict(a: Artifact) -> dict[str, Any]:
    return {"id": a.id, "job_id": a.job_id, "step": a.step_id, "name": a.name, "media_type": a.media_type,
            "size": a.size, "sha256": a.sha256, "rows": a.rows, "created_at": a.created_at.isoformat()}


def schedule_dict(r: Schedule) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "cron": r.cron, "enabled": r.enabled, "spec": r.spec,
            "created_at": r.created_at.isoformat(), "created_by": r.created_by,
            "next_run_at": _iso(r.next_run_at), "last_run_at": _iso(r.last_run_at), "last_job_id": r.last_job_id}


def _short(summary: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in list(summary.items())[:8])


def record_approval_decision(ctx: Any, s: Any, actor: str, approval_id: int, approve: bool,
                             reason: str) -> tuple[dict[str, Any], str | None, str | None, str]:
    """Record a data owner's decision on its approval and job; the node's supervisor moves the job on.

    Used by the API and by local commands (``riskshare approvals approve --home``),
    so a decision takes effect whether or not it was made through the running node.
    """
    approval = grants_mod.decide(ctx, s, actor, approval_id, approve, reason)
    out = grants_mod.approval_dict(approval)
    job = s.get(Job, approval.job_id)
    if job is None or job.state in TERMINAL:
        return out, None, None, approval.job_id
    job.local_decision = "approved" if approve else "denied"
    job.decision_reason = f"{'approved' if approve else 'denied'} by {actor}" + (f": {reason}" if reason else "")
    job.updated_at = job.next_action_at = utcnow()
    s.add(JobEvent(job_id=job.id, ts=utcnow(), level="info",
                   message=f"{'approved' if approve else 'denied'} by {actor}" + (f": {reason}" if reason else "")))
    return out, job.role, job.peer, job.id
