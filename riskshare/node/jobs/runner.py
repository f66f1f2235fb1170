"""Running one attempt of a job on this node: its steps in order, each persisted and audited.

An attempt runs in a worker thread of its own, at background CPU priority; a
watcher thread next to it stops it when the job's grant is revoked or expires,
or when the peer no longer runs the same attempt. Protocol steps talk to the
peer over a :class:`~.link.JobLink` scoped to ``job/<id>/<attempt>/<step>``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ...net.certs import sha256_hex
from ...errors import InputError, PeerError, RiskshareError
from .. import grants as grants_mod
from ..errors import PeerRefused
from ..quota import GrantQueryPolicy
from ..registry import get_table, source_of
from ..storage import utcnow
from ..storage.models import Artifact, Job, JobStep
from .components import StepContext, get_component
from .link import JobLink
from .state import Attempt, Stop, _short

log = logging.getLogger("riskshare.node.jobs")


class AttemptRunner:
    """Mixin of :class:`~.manager.JobManager`: launching, watching and executing attempts."""

    def _launch(self, job_id: str, number: int, start_step: str) -> None:
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            steps = [st["id"] for st in job.manifest["steps"]]
            if start_step not in steps:
                start_step = steps[0]
            job.state, job.attempt, job.start_step = "running", number, start_step
            job.started_at = job.started_at or utcnow()
            job.updated_at = utcnow()
            job.error = None
            self._event(s, job_id, "info", f"attempt {number} started at step '{start_step}'")
            self.ctx.audit.append(s, "node", "job.attempt", f"job:{job_id}", {"attempt": number, "start_step": start_step})
        attempt = Attempt(job_id, number)
        with self._lock:
            self._attempts[job_id] = attempt
        attempt.thread = threading.Thread(target=self._execute, args=(attempt, start_step),
                                          name=f"rs-job-{job_id}", daemon=True)
        attempt.thread.start()
        threading.Thread(target=self._watch, args=(attempt,), name=f"rs-watch-{job_id}", daemon=True).start()

    def _watch(self, attempt: Attempt) -> None:
        """Stop the attempt if its grant is revoked or expires, or the peer stopped its side."""
        last_peer_poll = time.monotonic()
        while not attempt.done.wait(1.0):
            try:
                with self.ctx.db.session() as s:
                    job = s.get(Job, attempt.job_id)
                    grant_id, peer = job.grant_id, job.peer
                    if grant_id is not None:
                        why = grants_mod.check_still_valid(s, grant_id)
                        if why:
                            attempt.stop(Stop("revoked", why))
                            continue
                if time.monotonic() - last_peer_poll >= 3.0 and time.monotonic() - attempt.started > 5.0:
                    last_peer_poll = time.monotonic()
                    try:
                        answer = self.node.peer_client.call(peer, "GET", f"/jobs/{attempt.job_id}", timeout=5.0)
                    except (PeerError, PeerRefused):
                        continue  # unreachable: the link's own timeouts decide
                    state, their_attempt = answer.get("state"), answer.get("attempt", 0)
                    if state in ("failed", "cancelled", "denied", "refused"):
                        attempt.stop(Stop("peer", f"peer '{peer}' {state} the job: {answer.get('error') or ''}",
                                          "cancelled" if state == "cancelled" else "failed"))
                    elif their_attempt < attempt.number or (state != "running" and state != "succeeded"):
                        attempt.stop(Stop("peer", f"peer '{peer}' is no longer running attempt {attempt.number}",
                                          "interrupted"))
            except Exception:  # noqa: BLE001 - the watcher must not die silently
                log.warning("job watcher error:\n%s", traceback.format_exc())

    def _execute(self, attempt: Attempt, start_step: str) -> None:
        job_id = attempt.job_id
        step_id = "start"
        _background_priority()
        try:
            with self.ctx.db.session() as s:
                job = s.get(Job, job_id)
                manifest, peer, role, table_name = dict(job.manifest), job.peer, job.role, job.table_name
                grant_id = job.grant_id
                table = source_of(get_table(s, table_name))
            quota = GrantQueryPolicy(self.ctx, grant_id, job_id=job_id)
            steps = manifest["steps"]
            protocol_role = manifest["initiator_role"] if role == "initiator" else (
                "sender" if manifest["initiator_role"] == "receiver" else "receiver")
            workdir = self.ctx.artifacts_dir / job_id
            workdir.mkdir(parents=True, exist_ok=True)
            values: dict[str, Any] = {}
            start_index = next(i for i, st in enumerate(steps) if st["id"] == start_step)
            prefix = f"job/{job_id}/{attempt.number}"
            for index, step in enumerate(steps):
                step_id = step["id"]
                component = get_component(step["op"])
                link = JobLink(self.node.link, f"{prefix}/{step_id}", peer, attempt.check, float(manifest["timeout"]))
                ctx = StepContext(
                    job_id=job_id, step_id=step_id, params=dict(step["params"]), manifest=manifest, peer=peer,
                    protocol_role=protocol_role, result_to=manifest["result_to"], link=link, table=table,
                    inputs={n: values[n] for n in step["needs"] if n in values}, workdir=workdir,
                    check=attempt.check, log=lambda m, _j=job_id: self._log(_j, "info", m),
                    add_artifact=lambda name, path, media_type, rows=None, _j=job_id, _s=step_id:
                        self._add_artifact(_j, _s, name, path, media_type, rows),
                    state_dir=self.ctx.home.path / "state", quota=quota,
                )
                saved = workdir / ".steps" / step_id
                if index < start_index and component.talks_to_peer:
                    value = component.load(saved, ctx)
                    if value is None:
                        raise InputError(f"cannot resume at step '{start_step}': the saved output of step "
                                         f"'{step_id}' is missing or the table changed since",
                                         hint="rerun the job")
                    values[step_id] = value
                    continue
                attempt.check()
                self._step_started(job_id, step_id, attempt.number)
                _fault_delay(step_id, attempt.check)
                result = component.run(ctx)
                attempt.check()
                if component.talks_to_peer:
                    component.save(result.value, saved)
                values[step_id] = result.value
                self._step_finished(job_id, step_id, attempt.number, result.summary)
            self._succeeded(job_id, peer)
        except Stop as stop:
            self._stopped(attempt, step_id, stop)
        except RiskshareError as exc:
            self._failed(attempt, step_id, f"step '{step_id}' failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug, but the job must still end and say where
            log.error("job %s step %s crashed:\n%s", job_id, step_id, traceback.format_exc())
            self._failed(attempt, step_id, f"step '{step_id}' failed with an internal error: {type(exc).__name__}: {exc}")
        finally:
            self.node.link.discard(f"job/{job_id}/{attempt.number}/")
            with self._lock:
                if self._attempts.get(job_id) is attempt:
                    del self._attempts[job_id]
            attempt.done.set()
            self.wake()

    def _step_started(self, job_id: str, step_id: str, number: int) -> None:
        with self.ctx.db.session() as s:
            step = s.get(JobStep, (job_id, step_id))
            step.state, step.attempt, step.started_at, step.finished_at, step.error = "running", number, utcnow(), None, None
            job = s.get(Job, job_id)
            job.current_step, job.updated_at = step_id, utcnow()
            self.ctx.audit.append(s, "node", "job.step.start", f"job:{job_id}", {"step": step_id, "attempt": number})

    def _step_finished(self, job_id: str, step_id: str, number: int, summary: dict[str, Any]) -> None:
        with self.ctx.db.session() as s:
            step = s.get(JobStep, (job_id, step_id))
            step.state, step.finished_at, step.summary = "succeeded", utcnow(), summary
            self.ctx.audit.append(s, "node", "job.step.finish", f"job:{job_id}",
                                  {"step": step_id, "attempt": number, "summary": summary})
            self._event(s, job_id, "info", f"step '{step_id}' done: {_short(summary)}")

    def _add_artifact(self, job_id: str, step_id: str, name: str, path: Path, media_type: str,
                      rows: int | None = None) -> None:
        data = Path(path).read_bytes()
        with self.ctx.db.session() as s:
            for old in s.execute(select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name)).scalars():
                s.delete(old)
            art = Artifact(job_id=job_id, step_id=step_id, name=name,
                           path=str(Path(path).resolve().relative_to(self.ctx.home.path.resolve())),
                           media_type=media_type, size=len(data), sha256=sha256_hex(data), rows=rows,
                           created_at=utcnow())
            s.add(art)
            s.flush()
            self.ctx.audit.append(s, "node", "artifact.create", f"artifact:{art.id}",
                                  {"job": job_id, "step": step_id, "name": name, "bytes": len(data), "rows": rows})

    def _succeeded(self, job_id: str, peer: str) -> None:
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            self._finish(s, job, "succeeded", None)
        self.exchange_heads(peer, job_id)

    def _stopped(self, attempt: Attempt, step_id: str, stop: Stop) -> None:
        job_id = attempt.job_id
        if stop.kind == "superseded":
            return
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            self._mark_step(s, job_id, step_id, "interrupted" if stop.kind in ("shutdown", "peer") else "failed",
                            stop.reason)
            if stop.kind == "shutdown":
                self._event(s, job_id, "warning", f"interrupted at step '{step_id}': {stop.reason}")
                peer, notify = job.peer, ("interrupted", stop.reason)
            elif stop.kind == "peer" and stop.peer_kind == "interrupted":
                self._event(s, job_id, "warning", f"step '{step_id}': {stop.reason}")
                if job.role == "initiator":
                    job.state, job.next_action_at = "starting", utcnow()
                    job.deadline_at = utcnow() + dt.timedelta(seconds=self.peer_deadline)
                else:
                    job.state, job.updated_at = "queued", utcnow()
                peer, notify = job.peer, None
            elif stop.kind == "peer":
                state = "cancelled" if stop.peer_kind == "cancelled" else "failed"
                self._finish(s, job, state, f"step '{step_id}': {stop.reason}")
                peer, notify = job.peer, None
            elif stop.kind == "cancelled":
                self._finish(s, job, "cancelled", f"cancelled at step '{step_id}': {stop.reason}")
                peer, notify = job.peer, ("cancelled", stop.reason)
            else:  # revoked
                self._finish(s, job, "failed", f"stopped before finishing step '{step_id}': {stop.reason}")
                peer, notify = job.peer, ("failed", job.error)
        if notify is not None:
            body = {"attempt": attempt.number, "kind": notify[0], "reason": notify[1], "step": step_id}
            if stop.kind == "shutdown":
                try:  # while shutting down: one quick try, no background thread
                    self.node.peer_client.call(peer, "POST", f"/jobs/{job_id}/abort", body, timeout=2.0)
                except (PeerError, PeerRefused):
                    pass
            else:
                self._notify_async(peer, f"/jobs/{job_id}/abort", body)

    def _failed(self, attempt: Attempt, step_id: str, message: str) -> None:
        job_id = attempt.job_id
        if attempt.stop_reason is not None:  # the failure was caused by a stop (e.g. the link was cut)
            self._stopped(attempt, step_id, attempt.stop_reason)
            return
        with self.ctx.db.session() as s:
            job = s.get(Job, job_id)
            self._mark_step(s, job_id, step_id, "failed", message)
            self._finish(s, job, "failed", message)
            peer = job.peer
        self._notify_async(peer, f"/jobs/{job_id}/abort",
                           {"attempt": attempt.number, "kind": "failed", "reason": message, "step": step_id})

    @staticmethod
    def _mark_step(s: Any, job_id: str, step_id: str, state: str, error: str) -> None:
        step = s.get(JobStep, (job_id, step_id))
        if step is not None and step.state == "running":
            step.state, step.error, step.finished_at = state, error, utcnow()


JOB_NICE = 10


def _background_priority() -> None:
    """Run this job thread (and the worker threads it starts) at a lower CPU priority.

    Protocol work is bulk work: when the machine is busy, the API (status reads,
    approvals) should still answer at once. Linux schedules threads separately and
    new threads inherit the nice value of the thread that creates them, so the
    crypto thread pools a protocol starts from here are lowered too.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICE)
    except (AttributeError, OSError, PermissionError):
        pass


FAULT_DELAY_ENV = "RISKSHARE_FAULT_STEP_DELAY"


def _fault_delay(step_id: str, check: Any) -> None:
    """Fault injection for tests: ``RISKSHARE_FAULT_STEP_DELAY=psi:3`` holds step psi for 3 s
    (stoppable), so a test can revoke a grant or kill a node while a step runs."""
    spec = os.environ.get(FAULT_DELAY_ENV, "")
    for item in spec.split(","):
        name, _, seconds = item.partition(":")
        if name == step_id and seconds:
            log.warning("fault injection: holding step '%s' for %s s", step_id, seconds)
            deadline = time.monotonic() + float(seconds)
            while time.monotonic() < deadline:
                check()
                time.sleep(0.05)
