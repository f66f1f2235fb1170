"""Running jobs between two nodes: proposal, grants, approval, steps, resume, audit.

The initiator's node proposes a job to the peer's node over the peer
endpoint; each node checks its *own* grants for its *own* table; once both
sides accept, the initiator asks the peer to start an attempt and both run
their side of every step, persisting each step's state as they go.

Restarts: a node that comes back finds its jobs that were running. The
initiator starts a new attempt (both sides skip protocol steps that finished
on both and saved their output); the responder waits for that new attempt and
tells the initiator it was interrupted. After ``max_attempts`` the job fails,
naming the step. A job is never left "running" by a node that is up.

All waiting (for the peer to answer, for approvals) is done by one supervisor
thread that wakes at least twice a second; each running attempt has its own
worker thread and a watcher that stops it when the job is cancelled, its grant
is revoked, or the peer stops its side.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from croniter import croniter
from sqlalchemy import bindparam, select

from ...errors import InputError, PeerError, RiskshareError
from .. import grants as grants_mod
from ..errors import Conflict, NotFound, PeerRefused
from ..registry import get_table, source_of
from ..storage import utcnow
from ..storage.models import Approval, Artifact, Job, JobEvent, JobStep, Schedule
from .components import get_component
from .peer_side import PeerSide
from .runner import AttemptRunner
from .spec import JobSpec, parse_spec
from .state import (ACCEPTED, TERMINAL, Attempt, Stop, artifact_dict, job_dict, new_job_id,
                    record_approval_decision, schedule_dict)

if TYPE_CHECKING:
    from ..service import NodeService

log = logging.getLogger("riskshare.node.jobs")

# The status read's statements, built once (clients poll them many times a second).
_JOB_BY_ID = select(Job.__table__).where(Job.__table__.c.id == bindparam("id"))
_STEPS_OF_JOB = (select(JobStep.__table__).where(JobStep.__table__.c.job_id == bindparam("id"))
                 .order_by(JobStep.__table__.c.position))


class JobManager(PeerSide, AttemptRunner):
    """One node's jobs: submitting, deciding, supervising, recovering (see the module docstring)."""

    def __init__(self, node: "NodeService", *, max_attempts: int = 3, peer_deadline: float = 600.0,
                 approval_timeout: float = 7 * 86400.0, poll_interval: float = 2.0,
                 queue_timeout: float = 86400.0) -> None:
        self.node = node
        self.ctx = node.ctx
        self.max_attempts = max_attempts
        self.peer_deadline = peer_deadline
        self.approval_timeout = approval_timeout
        self.poll_interval = poll_interval
        self.queue_timeout = queue_timeout
        self._attempts: dict[str, Attempt] = {}
        self._lock = threading.RLock()
        self._wake = threading.Condition()
        self._kicked = False
        self._stopping = threading.Event()
        self._backoff: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self.counters: dict[str, int] = {}

    # == lifecycle =====================================================================
    def start(self) -> None:
        self._recover()
        self._thread = threading.Thread(target=self._supervise, name=f"rs-jobs-{self.ctx.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.wake()
        with self._lock:
            attempts = list(self._attempts.values())
        for attempt in attempts:
            attempt.stop(Stop("shutdown", f"node '{self.ctx.name}' is shutting down"))
        deadline = time.monotonic() + timeout
        for attempt in attempts:
            attempt.done.wait(max(0.0, deadline - time.monotonic()))
        if self._thread is not None:
            self._thread.join(timeout=max(0.1, deadline - time.monotonic()))

    def wake(self) -> None:
        with self._wake:
            self._kicked = True
            self._wake.notify_all()

    def running_attempts(self) -> int:
        with self._lock:
            return len(self._attempts)

    # == queries =========================================================================
    def get(self, job_id: str) -> dict[str, Any]:
        """A job with its steps (the status read clients poll: plain SQL, no ORM, no write lock)."""
        if not isinstance(job_id, str) or len(job_id) > 40:
            raise NotFound(f"no job '{job_id}' on this node")
        with self.ctx.db.read() as conn:
            row = conn.execute(_JOB_BY_ID, {"id": job_id}).mappings().first()
            if row is None:
                raise NotFound(f"no job '{job_id}' on this node")
            step_rows = conn.execute(_STEPS_OF_JOB, {"id": job_id}).mappings().all()
        return job_dict(SimpleNamespace(**row), [SimpleNamespace(**r) for r in step_rows])  # type: ignore[arg-type]

    def list(self, *, state: str | None = None, limit: int = 100, schedule_id: int | None = None) -> list[dict[str, Any]]:
        with self.ctx.db.session() as s:
            query = select(Job).order_by(Job.created_at.desc()).limit(limit)
            if state:
                query = query.where(Job.state == state)
            if schedule_id is not None:
                query = query.where(Job.schedule_id == schedule_id)
            return [job_dict(j) for j in s.execute(query).scalars()]

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        with self.ctx.db.session() as s:
            self._job(s, job_id)
            rows = s.execute(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).scalars()
            return [{"ts": e.ts.isoformat(), "level": e.level, "message": e.message} for e in rows]

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        with self.ctx.db.session() as s:
            self._job(s, job_id)
            rows = s.execute(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.id)).scalars()
            return [artifact_dict(a) for a in rows]

    def artifact_file(self, artifact_id: int, actor: str) -> tuple[dict[str, Any], Path]:
        with self.ctx.db.session() as s:
            art = s.get(Artifact, artifact_id)
            if art is None:
                raise NotFound(f"no artifact #{artifact_id}")
            path = (self.ctx.home.path / art.path).resolve()
            if not path.is_file():
                raise NotFound(f"artifact #{artifact_id} ({art.name}) is missing from the node home")
            self.ctx.audit.append(s, actor, "artifact.download", f"artifact:{artifact_id}",
                                  {"job": art.job_id, "name": art.name, "bytes": art.size})
            return artifact_dict(art), path

    @staticmethod
    def _job(session: Any, job_id: str) -> Job:
        job = session.get(Job, job_id) if isinstance(job_id, str) and len(job_id) <= 40 else None
        if job is None:
            raise NotFound(f"no job '{job_id}' on this node")
        return job

    # == submitting (initiator) ==========================================================
    def submit(self, actor: str, spec: JobSpec | dict[str, Any] | str, *, schedule_id: int | None = None,
               rerun_of: str | None = None) -> dict[str, Any]:
        spec = spec if isinstance(spec, JobSpec) else parse_spec(spec)  # type: ignore[arg-type]
        home = self.ctx.home
        home.peer(spec.peer)  # a pinned peer, or a clear error
        steps, ops = self._check_steps(spec)
        job_id = new_job_id()
        now = utcnow()
        with self.ctx.db.session() as s:
            table = source_of(get_table(s, spec.table))
            columns = sorted({c for st in steps for c in get_component(st["op"]).columns(table, st["params"])})
            manifest = {
                "job_id": job_id, "name": spec.name, "initiator": home.name, "purpose": spec.purpose,
                "result_to": spec.result_to, "timeout": spec.timeout, "steps": steps, "ops": ops,
                "initiator_role": spec.role,
                "tables": {"initiator": {"table": spec.table, "columns": columns},
                           "responder": {"table": spec.peer_table}},
                "requested_by": actor,
            }
            job = Job(id=job_id, name=spec.name, role="initiator", peer=spec.peer, state="proposing",
                      manifest=manifest, table_name=spec.table, purpose=spec.purpose, created_by=actor,
                      created_at=now, updated_at=now, attempt=0, local_decision="pending",
                      peer_decision="pending", schedule_id=schedule_id, rerun_of=rerun_of, next_action_at=now,
                      deadline_at=now + dt.timedelta(seconds=self.peer_deadline))
            s.add(job)
            self._add_steps(s, job_id, steps)
            s.flush()
            self.ctx.audit.append(s, actor, "job.submit", f"job:{job_id}", {
                "peer": spec.peer, "table": spec.table, "peer_table": spec.peer_table, "ops": ops,
                "purpose": spec.purpose, "result_to": spec.result_to, "columns": columns,
                "schedule": schedule_id, "rerun_of": rerun_of,
            })
            self._decide_locally(s, job, ops, manifest, actor)
            self._event(s, job_id, "info", f"submitted by {actor}: {spec.name}")
            result = job_dict(job)
        self.wake()
        return result

    def _check_steps(self, spec: JobSpec) -> tuple[list[dict[str, Any]], list[str]]:
        steps, ops = [], []
        for step in spec.steps:
            component = get_component(step.op)
            params = component.check_params(dict(step.params), spec)
            steps.append({"id": step.id, "op": step.op, "needs": list(step.needs), "params": params})
            if component.grant_op and component.grant_op not in ops:
                ops.append(component.grant_op)
        if not ops:
            raise InputError("the job has no step that works with the peer (e.g. op: psi)")
        return steps, ops

    @staticmethod
    def _add_steps(s: Any, job_id: str, steps: list[dict[str, Any]]) -> None:
        for i, st in enumerate(steps):
            s.add(JobStep(job_id=job_id, step_id=st["id"], position=i, op=st["op"], state="pending", attempt=0,
                          summary={}))

    def _decide_locally(self, s: Any, job: Job, ops: list[str], manifest: dict[str, Any], actor: str) -> None:
        """Check this node's own grants for its own table; set local_decision (and the state if it ends here)."""
        decision = grants_mod.evaluate(s, table=job.table_name, peer=job.peer, ops=ops,
                                       result_to=manifest["result_to"])
        if decision.kind == "covered" and not grants_mod.consume_run(s, decision.grant_id):  # type: ignore[arg-type]
            decision = grants_mod.Decision("refused", f"grant #{decision.grant_id} has no runs left")
        if decision.kind == "covered":
            job.local_decision, job.grant_id = "covered", decision.grant_id
        elif decision.kind == "refused":
            job.local_decision, job.decision_reason = "refused", decision.reason
        else:
            job.local_decision = "pending"
            grants_mod.request_approval(self.ctx, s, job, ops, manifest, actor)
        job.decision_reason = job.decision_reason or decision.reason
        self.ctx.audit.append(s, "node", "job.decision", f"job:{job.id}", {
            "side": "local", "decision": job.local_decision, "grant": job.grant_id, "reason": decision.reason,
        })
        self._event(s, job.id, "info", f"this node's decision: {job.local_decision} ({decision.reason})")
        if decision.kind == "refused":
            self._finish(s, job, "refused", decision.reason)

    # == approvals ======================================================================
    def decide_approval(self, actor: str, approval_id: int, approve: bool, reason: str = "") -> dict[str, Any]:
        with self.ctx.db.session() as s:
            out, role, peer, job_id = record_approval_decision(self.ctx, s, actor, approval_id, approve, reason)
        if role == "responder":
            self._notify_async(peer, f"/jobs/{job_id}/decision",
                               {"decision": "approved" if approve else "denied", "reason": reason})
        self.wake()
        return out

    # == cancel / rerun ==================================================================
    def cancel(self, actor: str, job_id: str, reason: str = "") -> dict[str, Any]:
        reason = reason or f"cancelled by {actor}"
        with self.ctx.db.session() as s:
            job = self._job(s, job_id)
            if job.state in TERMINAL:
                raise Conflict(f"job {job_id} already {job.state}")
            self.ctx.audit.append(s, actor, "job.cancel", f"job:{job_id}", {"reason": reason, "state": job.state})
            attempt = self._attempts.get(job_id)
            if attempt is None:
                self._finish(s, job, "cancelled", reason)
                self._withdraw_approvals(s, job_id)
        if attempt is not None:
            attempt.stop(Stop("cancelled", reason))
        else:
            self._notify_async(self._peer_of(job_id), f"/jobs/{job_id}/abort",
                               {"attempt": None, "kind": "cancelled", "reason": reason})
        self.wake()
        return self.get(job_id)

    def rerun(self, actor: str, job_id: str) -> dict[str, Any]:
        with self.ctx.db.session() as s:
            job = self._job(s, job_id)
            if job.role != "initiator":
                raise Conflict(f"job {job_id} was started by peer '{job.peer}'; only its initiator can rerun it")
            spec = self._spec_of(job)
        return self.submit(actor, spec, rerun_of=job_id)

    @staticmethod
    def _spec_of(job: Job) -> dict[str, Any]:
        m = job.manifest
        return {"name": m["name"], "peer": job.peer, "table": job.table_name,
                "peer_table": m["tables"]["responder"]["table"], "purpose": m["purpose"],
                "role": m["initiator_role"], "result_to": m["result_to"], "timeout": m["timeout"],
                "steps": [{"id": st["id"], "op": st["op"], "needs": st["needs"], "params": st["params"]}
                          for st in m["steps"]]}

    def _peer_of(self, job_id: str) -> str:
        with self.ctx.db.session() as s:
            return self._job(s, job_id).peer

    # == schedules ======================================================================
    def add_schedule(self, actor: str, spec: JobSpec | dict[str, Any] | str, cron: str | None = None) -> dict[str, Any]:
        spec = spec if isinstance(spec, JobSpec) else parse_spec(spec)  # type: ignore[arg-type]
        cron = cron or spec.schedule
        if not cron or not croniter.is_valid(cron):
            raise InputError(f"'{cron}' is not a cron expression", hint='e.g. --cron "0 2 * * *" (every night at 02:00)')
        self.ctx.home.peer(spec.peer)
        self._check_steps(spec)
        data = spec.model_dump()
        data["schedule"] = None
        now = utcnow()
        with self.ctx.db.session() as s:
            get_table(s, spec.table)
            row = Schedule(name=spec.name, cron=cron, spec=data, enabled=True, created_at=now, created_by=actor,
                           next_run_at=croniter(cron, now).get_next(dt.datetime), last_run_at=None, last_job_id=None)
            s.add(row)
            s.flush()
            self.ctx.audit.append(s, actor, "schedule.add", f"schedule:{row.id}", {
                "cron": cron, "peer": spec.peer, "table": spec.table, "peer_table": spec.peer_table,
                "ops": spec.ops, "purpose": spec.purpose})
            return schedule_dict(row)

    def list_schedules(self) -> list[dict[str, Any]]:
        with self.ctx.db.session() as s:
            return [schedule_dict(r) for r in s.execute(select(Schedule).order_by(Schedule.id)).scalars()]

    def remove_schedule(self, actor: str, schedule_id: int) -> None:
        with self.ctx.db.session() as s:
            row = s.get(Schedule, schedule_id)
            if row is None or not row.enabled:
                raise NotFound(f"no schedule #{schedule_id}")
            row.enabled = False
            self.ctx.audit.append(s, actor, "schedule.remove", f"schedule:{schedule_id}", {})

    def trigger(self, actor: str, schedule_id: int) -> dict[str, Any]:
        """Run a scheduled job now (what the scheduler does at each cron time)."""
        with self.ctx.db.session() as s:
            row = s.get(Schedule, schedule_id)
            if row is None or not row.enabled:
                raise NotFound(f"no schedule #{schedule_id}")
            spec, creator = dict(row.spec), row.created_by
        job = self.submit(f"schedule:{schedule_id}", spec, schedule_id=schedule_id)
        with self.ctx.db.session() as s:
            row = s.get(Schedule, schedule_id)
            row.last_run_at, row.last_job_id = utcnow(), job["id"]
            self.ctx.audit.append(s, actor, "schedule.run", f"schedule:{schedule_id}",
                                  {"job": job["id"], "created_by": creator})
        return job

    def _run_due_schedules(self) -> None:
        now = utcnow()
        with self.ctx.db.session() as s:
            due = [(r.id, r.cron) for r in s.execute(select(Schedule).where(
                Schedule.enabled.is_(True), Schedule.next_run_at <= now)).scalars()]
            for sid, cron in due:
                s.get(Schedule, sid).next_run_at = croniter(cron, now).get_next(dt.datetime)
        for sid, _ in due:
            try:
                self.trigger("scheduler", sid)
            except RiskshareError as exc:
                log.warning("scheduled job %s could not start: %s", sid, exc)
                self.ctx.audit.record("scheduler", "schedule.error", f"schedule:{sid}", {"error": str(exc)})

    # == the supervisor ==================================================================
    def _supervise(self) -> None:
        last_schedule_check = 0.0
        while not self._stopping.is_set():
            try:
                if time.monotonic() - last_schedule_check >= 1.0:
                    last_schedule_check = time.monotonic()
                    self._run_due_schedules()
                self._tick()
            except Exception:  # noqa: BLE001 - the supervisor must survive anything and say so
                log.error("job supervisor error:\n%s", traceback.format_exc())
            with self._wake:
                if not self._kicked:
                    self._wake.wait(0.5)
                self._kicked = False

    def _tick(self) -> None:
        now = utcnow()
        with self.ctx.db.session() as s:
            due = [(j.id, j.role, j.state) for j in s.execute(select(Job).where(
                Job.state.in_(("proposing", "waiting_approval", "starting", "queued")),
                (Job.next_action_at.is_(None)) | (Job.next_action_at <= now))).scalars()]
        for job_id, role, state in due:
            if self._stopping.is_set():
                return
            if role == "initiator" and state == "proposing":
                self._propose(job_id)
            elif role == "initiator" and state == "waiting_approval":
                self._poll_peer_decision(job_id)
            elif role == "initiator" and state == "starting":
                self._start_attempt(job_id)
            elif role == "responder" and state == "waiting_approval":
                self._responder_waiting(job_id)
            elif role == "responder" and state == "queued":
                self._responder_queued(job_id)

    def _retry_later(self, job_id: str, error: RiskshareError, what: str) -> None:
        delay = min(max(self._backoff.get(job_id, 0.25) * 2, 0.5), 15.0)
        self._backoff[job_id] = delay
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            if job.deadline_at and utcnow() > job.deadline_at:
                self._finish(s, job, "failed", f"step '{what}': {error} (gave up after {self.peer_deadline:g} s)")
                return
            job.next_action_at = utcnow() + dt.timedelta(seconds=delay)
            if delay >= 4:
                self._event(s, job_id, "warning", f"{what}: {error}; retrying in {delay:g} s")

    def _propose(self, job_id: str) -> None:
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            if job.state != "proposing":
                return
            if job.local_decision in ("denied", "refused"):
                self._advance_initiator(s, job)
                return
            peer, manifest = job.peer, dict(job.manifest)
        try:
            answer = self.node.peer_client.call(peer, "POST", "/jobs", {"job_id": job_id, "manifest": manifest})
        except PeerRefused as exc:
            with self.ctx.db.session() as s:
                self._finish(s, s.get(Job, job_id), "refused", str(exc))
            return
        except PeerError as exc:
            self._retry_later(job_id, exc, "propose")
            return
        self._backoff.pop(job_id, None)
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            self.ctx.audit.append(s, "node", "job.propose", f"job:{job_id}", {"peer": peer, "answer": answer.get("decision")})
            self._apply_peer_decision(s, job, answer)

    def _apply_peer_decision(self, s: Any, job: Job, answer: dict[str, Any]) -> None:
        decision = str(answer.get("decision", "pending"))
        if decision not in ("pending", "covered", "approved", "denied", "refused"):
            decision = "pending"
        if job.peer_decision != decision:
            job.peer_decision = decision
            reason = answer.get("reason") or ""
            if decision in ("denied", "refused"):
                job.decision_reason = f"peer '{job.peer}' {decision} the job: {reason}"
            self._event(s, job.id, "info", f"peer '{job.peer}' decision: {decision}" + (f" ({reason})" if reason else ""))
            self.ctx.audit.append(s, "node", "job.decision", f"job:{job.id}",
                                  {"side": "peer", "peer": job.peer, "decision": decision, "reason": reason})
        self._advance_initiator(s, job, proposed=True)

    def _advance_initiator(self, s: Any, job: Job, proposed: bool = False) -> None:
        """Move an initiator's job on after a decision; ``proposed``: the peer has the proposal."""
        if job.state in TERMINAL or job.state in ("running", "starting"):
            return
        for side, decision in (("local", job.local_decision), ("peer", job.peer_decision)):
            if decision in ("denied", "refused"):
                reason = job.decision_reason or f"{side} {decision}"
                self._finish(s, job, decision, reason)
                if side == "local":
                    self._notify_async(job.peer, f"/jobs/{job.id}/abort",
                                       {"attempt": None, "kind": "cancelled", "reason": reason})
                return
        if job.local_decision in ACCEPTED and job.peer_decision in ACCEPTED:
            job.state = "starting"
            job.next_action_at = utcnow()
            job.deadline_at = utcnow() + dt.timedelta(seconds=self.peer_deadline)
            self._event(s, job.id, "info", "both nodes accepted the job; starting")
        elif job.state == "proposing" and proposed:
            job.state = "waiting_approval"
            job.next_action_at = utcnow() + dt.timedelta(seconds=self.poll_interval)
            job.deadline_at = utcnow() + dt.timedelta(seconds=self.approval_timeout)
        job.updated_at = utcnow()
        self.wake()

    def _poll_peer_decision(self, job_id: str) -> None:
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            if job.state != "waiting_approval":
                return
            if job.deadline_at and utcnow() > job.deadline_at:
                self._finish(s, job, "failed", f"not approved within {self.approval_timeout / 86400:g} days")
                return
            peer, need_peer = job.peer, job.peer_decision == "pending"
            job.next_action_at = utcnow() + dt.timedelta(seconds=self.poll_interval)
            if not need_peer:
                self._advance_initiator(s, job)
                return
        try:
            answer = self.node.peer_client.call(peer, "GET", f"/jobs/{job_id}")
        except (PeerError, PeerRefused):
            return  # keep waiting; the peer may be restarting
        with self.ctx.db.session() as s:
            self._apply_peer_decision(s, s.get(Job, job_id), answer)

    def _responder_waiting(self, job_id: str) -> None:
        """Apply a data owner's decision (made through the API or a local command) to a waiting job."""
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            job.next_action_at = utcnow() + dt.timedelta(seconds=self.poll_interval / 2)
            if job.local_decision == "approved":
                job.state, job.updated_at = "queued", utcnow()
            elif job.local_decision == "denied":
                self._finish(s, job, "denied", job.decision_reason)
            elif job.created_at + dt.timedelta(seconds=self.approval_timeout) < utcnow():
                self._finish(s, job, "failed", f"not approved within {self.approval_timeout / 86400:g} days")
                self._withdraw_approvals(s, job_id)

    def _responder_queued(self, job_id: str) -> None:
        """An accepted job the initiator never starts (it was lost for good) must not wait forever."""
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            job.next_action_at = utcnow() + dt.timedelta(seconds=60)
            if job.updated_at + dt.timedelta(seconds=self.queue_timeout) < utcnow():
                self._finish(s, job, "failed", f"peer '{job.peer}' did not start the job within "
                             f"{self.queue_timeout / 3600:g} hours of its acceptance")

    def _completed_steps(self, s: Any, job_id: str) -> list[str]:
        steps = s.execute(select(JobStep).where(JobStep.job_id == job_id).order_by(JobStep.position)).scalars()
        return [st.step_id for st in steps if st.state == "succeeded"]

    def _start_attempt(self, job_id: str) -> None:
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            if job.state != "starting" or job_id in self._attempts:
                return
            number = job.attempt + 1
            if number > self.max_attempts:
                step = job.current_step or "start"
                self._finish(s, job, "failed", f"step '{step}' was interrupted {job.attempt} times "
                             f"(node or peer restarts); giving up after {self.max_attempts} attempts")
                self._notify_async(job.peer, f"/jobs/{job_id}/abort",
                                   {"attempt": None, "kind": "failed", "reason": job.error})
                return
            peer, completed = job.peer, self._completed_steps(s, job_id)
        try:
            answer = self.node.peer_client.call(peer, "POST", f"/jobs/{job_id}/run",
                                                {"attempt": number, "completed": completed})
        except PeerRefused as exc:
            with self.ctx.db.session() as s:
                self._finish(s, s.get(Job, job_id), "failed", f"step 'start': {exc}")
            return
        except PeerError as exc:
            self._retry_later(job_id, exc, "start")
            return
        self._backoff.pop(job_id, None)
        self._launch(job_id, number, str(answer.get("start_step") or ""))

    def _finish(self, s: Any, job: Job, state: str, error: str | None) -> None:
        job.state, job.error = state, error
        job.finished_at = job.updated_at = utcnow()
        job.next_action_at = None
        self.counters[state] = self.counters.get(state, 0) + 1
        self._event(s, job.id, "info" if state == "succeeded" else "error",
                    f"job {state}" + (f": {error}" if error else ""))
        self.ctx.audit.append(s, "node", "job.finish", f"job:{job.id}",
                              {"state": state, "error": error, "attempt": job.attempt})
        self._backoff.pop(job.id, None)

    def _withdraw_approvals(self, s: Any, job_id: str) -> None:
        for a in s.execute(select(Approval).where(Approval.job_id == job_id, Approval.state == "pending")).scalars():
            a.state, a.decided_at, a.decided_by = "withdrawn", utcnow(), "node"

    # == recovery =======================================================================
    def _recover(self) -> None:
        with self.ctx.db.session() as s:
            running = list(s.execute(select(Job).where(Job.state == "running")).scalars())
            to_notify = []
            for job in running:
                step = job.current_step or "start"
                self._mark_step(s, job.id, step, "interrupted", "the node restarted during this step")
                self._event(s, job.id, "warning", f"node restarted while step '{step}' of attempt {job.attempt} "
                            "was running")
                self.ctx.audit.append(s, "node", "job.interrupted", f"job:{job.id}", {"step": step, "attempt": job.attempt})
                if job.role == "initiator":
                    job.state, job.next_action_at = "starting", utcnow()
                    job.deadline_at = utcnow() + dt.timedelta(seconds=self.peer_deadline)
                else:
                    job.state, job.updated_at = "queued", utcnow()
                    to_notify.append((job.peer, job.id, job.attempt, step))
        for peer, job_id, number, step in to_notify:
            self._notify_async(peer, f"/jobs/{job_id}/abort", {
                "attempt": number, "kind": "interrupted", "step": step,
                "reason": f"node '{self.ctx.name}' restarted during step '{step}'"})

    # == helpers ========================================================================
    def _event(self, s: Any, job_id: str, level: str, message: str) -> None:
        s.add(JobEvent(job_id=job_id, ts=utcnow(), level=level, message=message[:4000]))
        getattr(log, "warning" if level == "warning" else "error" if level == "error" else "info")(
            "job %s: %s", job_id, message, extra={"node": self.ctx.name, "job": job_id})

    def _log(self, job_id: str, level: str, message: str) -> None:
        with self.ctx.db.session() as s:
            self._event(s, job_id, level, message)

    def _notify_async(self, peer: str, path: str, body: dict[str, Any], tries: int = 6) -> None:
        """Tell the peer something, retrying in the background (it may be restarting)."""
        def send() -> None:
            delay = 0.5
            for _ in range(tries):
                if self._stopping.is_set():
                    return
                try:
                    self.node.peer_client.call(peer, "POST", path, body, timeout=5.0)
                    return
                except PeerRefused:
                    return
                except PeerError:
                    time.sleep(delay)
                    delay = min(delay * 2, 10.0)
        threading.Thread(target=send, name="rs-notify", daemon=True).start()
