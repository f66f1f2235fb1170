"""Grants (a data owner's standing permission) and per-job approvals.

A grant lets one peer use one local table for named operations, for a
purpose, until an expiry date, within quotas (runs, PIR queries per day), with
results going only where it says (``receiver``: the requesting side only;
``both``: both sides). Every check happens here, on the data owner's node,
against the request the peer's node sent — nothing the requester claims about
its permissions is trusted.

:func:`evaluate` decides a request:

* **covered** — a live grant covers it: it runs (and uses one of the grant's runs);
* **refused** — grants for this table and peer would cover it but are expired,
  used up or revoked: refused, with a message naming the grant and why;
* **uncovered** — nothing covers it: it waits as a pending approval, with its
  full manifest, until a data owner approves or denies it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..errors import InputError
from .context import NodeContext
from .errors import Conflict, NotFound
from .home import check_name
from .storage import utcnow
from .storage.models import Approval, Grant, GrantUsage, Job

OPERATIONS = ("psi", "pir", "train", "predict", "stats")
RESULT_TO = ("receiver", "both")


def parse_expiry(value: str | dt.date | dt.datetime) -> dt.datetime:
    """``2027-06-30`` means through the end of that day (UTC); a full timestamp is taken as given."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, dt.date):
        day = value
    else:
        text = str(value).strip()
        try:
            if "T" in text or " " in text:
                parsed = dt.datetime.fromisoformat(text)
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise InputError(f"'{value}' is not a date", hint="write --expires as YYYY-MM-DD, e.g. 2027-06-30") from None
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)


def check_ops(ops: list[str]) -> list[str]:
    ops = [o.strip() for o in ops if o and o.strip()]
    if not ops:
        raise InputError("name at least one operation", hint=f"e.g. --ops psi,pir (known: {', '.join(OPERATIONS)})")
    unknown = [o for o in ops if o not in OPERATIONS]
    if unknown:
        raise InputError(f"unknown operation(s) {', '.join(unknown)}", hint=f"known: {', '.join(OPERATIONS)}")
    return sorted(set(ops), key=OPERATIONS.index)


def _expiry_text(expires_at: dt.datetime) -> str:
    last_day = (expires_at - dt.timedelta(microseconds=1)).date()
    return last_day.isoformat()


def grant_dict(g: Grant, now: dt.datetime | None = None) -> dict[str, Any]:
    return {
        "id": g.id, "table": g.table_name, "peer": g.peer, "ops": list(g.ops), "purpose": g.purpose,
        "expires": _expiry_text(g.expires_at), "expires_at": g.expires_at.isoformat(),
        "max_runs": g.max_runs, "runs_used": g.runs_used, "max_queries_per_day": g.max_queries_per_day,
        "result_to": g.result_to, "created_at": g.created_at.isoformat(), "created_by": g.created_by,
        "revoked_at": g.revoked_at.isoformat() if g.revoked_at else None, "revoked_by": g.revoked_by,
        "revoke_reason": g.revoke_reason, "status": grant_status(g, now or utcnow())[0],
    }


def grant_status(g: Grant, now: dt.datetime) -> tuple[str, str]:
    """('active' | 'revoked' | 'expired' | 'exhausted', why)."""
    what = f"grant #{g.id} (table '{g.table_name}' to peer '{g.peer}' for {','.join(g.ops)})"
    if g.revoked_at is not None:
        reason = f": {g.revoke_reason}" if g.revoke_reason else ""
        return "revoked", f"{what} was revoked by {g.revoked_by} on {g.revoked_at:%Y-%m-%d %H:%M} UTC{reason}"
    if g.expires_at <= now:
        return "expired", f"{what} expired at the end of {_expiry_text(g.expires_at)}"
    if g.max_runs is not None and g.runs_used >= g.max_runs:
        return "exhausted", f"{what} is used up: all {g.max_runs} runs it allows have been used"
    return "active", f"{what} is active"


def add_grant(ctx: NodeContext, session: Session, actor: str, *, table: str, peer: str, ops: list[str],
              purpose: str, expires: str | dt.date | dt.datetime, max_runs: int | None = None,
              max_queries_per_day: int | None = None, result_to: str = "receiver") -> Grant:
    from .registry import get_table

    get_table(session, table)
    check_name(peer, "peer name")
    if peer not in ctx.home.config.get("peers", {}):
        raise NotFound(f"'{peer}' is not a pinned peer of this node", hint="pin it first with `riskshare peer add`")
    ops = check_ops(ops)
    if not purpose or not purpose.strip():
        raise InputError("a grant needs a --purpose (what the peer may use the data for)")
    if result_to not in RESULT_TO:
        raise InputError(f"--result-to must be one of {', '.join(RESULT_TO)}, not '{result_to}'")
    expires_at = parse_expiry(expires)
    if expires_at <= utcnow():
        raise InputError(f"the expiry {_expiry_text(expires_at)} is in the past")
    for value, flag in ((max_runs, "--max-runs"), (max_queries_per_day, "--max-queries-per-day")):
        if value is not None and value < 1:
            raise InputError(f"{flag} must be at least 1")
    grant = Grant(table_name=table, peer=peer, ops=ops, purpose=purpose.strip(), expires_at=expires_at,
                  max_runs=max_runs, runs_used=0, max_queries_per_day=max_queries_per_day, result_to=result_to,
                  created_at=utcnow(), created_by=actor)
    session.add(grant)
    session.flush()
    ctx.audit.append(session, actor, "grant.add", f"grant:{grant.id}", {
        "table": table, "peer": peer, "ops": ops, "purpose": grant.purpose, "expires": _expiry_text(expires_at),
        "max_runs": max_runs, "max_queries_per_day": max_queries_per_day, "result_to": result_to,
    })
    return grant


def get_grant(session: Session, grant_id: int) -> Grant:
    grant = session.get(Grant, grant_id)
    if grant is None:
        raise NotFound(f"no grant #{grant_id}")
    return grant


def list_grants(session: Session, *, table: str | None = None, peer: str | None = None,
                include_inactive: bool = True) -> list[Grant]:
    query = select(Grant).order_by(Grant.id)
    if table:
        query = query.where(Grant.table_name == table)
    if peer:
        query = query.where(Grant.peer == peer)
    grants = list(session.execute(query).scalars())
    if not include_inactive:
        now = utcnow()
        grants = [g for g in grants if grant_status(g, now)[0] == "active"]
    return grants


def revoke_grant(ctx: NodeContext, session: Session, actor: str, grant_id: int, reason: str = "") -> Grant:
    grant = get_grant(session, grant_id)
    if grant.revoked_at is not None:
        raise Conflict(f"grant #{grant_id} was already revoked on {grant.revoked_at:%Y-%m-%d %H:%M} UTC")
    grant.revoked_at, grant.revoked_by, grant.revoke_reason = utcnow(), actor, reason or None
    ctx.audit.append(session, actor, "grant.revoke", f"grant:{grant_id}", {"reason": reason})
    return grant


@dataclass(frozen=True)
class Decision:
    kind: str  # covered | refused | uncovered
    reason: str
    grant_id: int | None = None


def _recipients(result_to: str) -> set[str]:
    return {"receiver"} if result_to == "receiver" else {"receiver", "sender"}


def evaluate(session: Session, *, table: str, peer: str, ops: list[str], result_to: str,
             now: dt.datetime | None = None) -> Decision:
    """Decide a request to use ``table`` with ``peer`` for ``ops`` (see the module docstring)."""
    now = now or utcnow()
    wanted_ops, wanted_to = set(ops), _recipients(result_to)
    matching = [g for g in list_grants(session, table=table, peer=peer)
                if wanted_ops <= set(g.ops) and wanted_to <= _recipients(g.result_to)]
    refusals = []
    for g in matching:
        status, why = grant_status(g, now)
        if status == "active":
            return Decision("covered", f"covered by grant #{g.id} ({g.purpose})", g.id)
        refusals.append(why)
    if refusals:
        return Decision("refused", "; ".join(refusals) + " — ask the data owner for a new grant")
    return Decision("uncovered", f"no grant lets peer '{peer}' use table '{table}' for {', '.join(sorted(ops))} "
                                 f"with results to {result_to}; waiting for a data owner's approval")


def consume_run(session: Session, grant_id: int) -> bool:
    """Use one run of a grant, atomically; False when none is left (a concurrent request took it)."""
    result = session.execute(
        update(Grant).where(Grant.id == grant_id, Grant.revoked_at.is_(None),
                            (Grant.max_runs.is_(None)) | (Grant.runs_used < Grant.max_runs))
        .values(runs_used=Grant.runs_used + 1)
    )
    return result.rowcount == 1


def check_still_valid(session: Session, grant_id: int, now: dt.datetime | None = None) -> str | None:
    """None while the grant still stands, else why it no longer does (checked before every job step).

    A grant that ran out of runs *after* this job took its run still covers this job.
    """
    grant = session.get(Grant, grant_id)
    if grant is None:
        return f"grant #{grant_id} no longer exists"
    status, why = grant_status(grant, now or utcnow())
    if status in ("revoked", "expired"):
        return why
    return None


def count_queries(session: Session, grant_id: int, queries: int, day: str | None = None) -> tuple[bool, int]:
    """Count PIR queries against the grant's daily quota; (allowed, used today after counting)."""
    grant = get_grant(session, grant_id)
    day = day or utcnow().date().isoformat()
    usage = session.get(GrantUsage, (grant_id, day), with_for_update=True)
    if usage is None:
        usage = GrantUsage(grant_id=grant_id, day=day, queries=0)
        session.add(usage)
        session.flush()
    if grant.max_queries_per_day is not None and usage.queries + queries > grant.max_queries_per_day:
        return False, usage.queries
    usage.queries += queries
    return True, usage.queries


# -- approvals -------------------------------------------------------------------

def approval_dict(a: Approval) -> dict[str, Any]:
    return {"id": a.id, "job_id": a.job_id, "table": a.table_name, "peer": a.peer, "ops": list(a.ops),
            "manifest": a.manifest, "state": a.state, "requested_at": a.requested_at.isoformat(),
            "decided_at": a.decided_at.isoformat() if a.decided_at else None, "decided_by": a.decided_by,
            "reason": a.reason}


def request_approval(ctx: NodeContext, session: Session, job: Job, ops: list[str], manifest: dict[str, Any],
                     actor: str) -> Approval:
    approval = Approval(job_id=job.id, table_name=job.table_name, peer=job.peer, ops=ops, manifest=manifest,
                        state="pending", requested_at=utcnow())
    session.add(approval)
    session.flush()
    ctx.audit.append(session, actor, "approval.request", f"approval:{approval.id}", {
        "job": job.id, "table": job.table_name, "peer": job.peer, "ops": ops, "purpose": job.purpose,
        "result_to": manifest.get("result_to"),
    })
    return approval


def get_approval(session: Session, approval_id: int) -> Approval:
    approval = session.get(Approval, approval_id)
    if approval is None:
        raise NotFound(f"no approval #{approval_id}")
    return approval


def list_approvals(session: Session, state: str | None = "pending") -> list[Approval]:
    query = select(Approval).order_by(Approval.id)
    if state and state != "all":
        query = query.where(Approval.state == state)
    return list(session.execute(query).scalars())


def decide(ctx: NodeContext, session: Session, actor: str, approval_id: int, approve: bool, reason: str = "") -> Approval:
    approval = get_approval(session, approval_id)
    if approval.state != "pending":
        raise Conflict(f"approval #{approval_id} is already {approval.state}")
    if not approve and not reason.strip():
        raise InputError("say why you deny it (--reason): the requester sees it")
    approval.state = "approved" if approve else "denied"
    approval.decided_at, approval.decided_by, approval.reason = utcnow(), actor, reason or None
    ctx.audit.append(session, actor, "approval.approve" if approve else "approval.deny", f"approval:{approval_id}",
                     {"job": approval.job_id, "reason": reason})
    return approval
