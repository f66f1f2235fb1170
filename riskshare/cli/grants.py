"""``riskshare grant`` and ``riskshare approvals``: who may use which table, and per-job decisions."""

from __future__ import annotations

import json
from typing import Any

import click

from . import main
from ._api import emit, json_option, node_options, table_out, target


def _local(t: Any, fn: Any) -> Any:
    with t.local_session() as (ctx, s):
        return fn(ctx, s)


@main.group()
def grant() -> None:
    """Grant peers the use of local tables (checked on this node for every request)."""


@grant.command("add")
@node_options
@click.option("--table", required=True, help="The local table.")
@click.option("--peer", required=True, help="The pinned peer that may use it.")
@click.option("--ops", required=True, help="Operations, comma-separated: psi, pir, train, predict, stats.")
@click.option("--purpose", required=True, help="What the peer may use it for (shown in every job).")
@click.option("--expires", required=True, help="Last day the grant holds, YYYY-MM-DD (UTC).")
@click.option("--max-runs", type=click.IntRange(min=1), help="At most this many jobs.")
@click.option("--max-queries-per-day", type=click.IntRange(min=1), help="At most this many PIR queries a day.")
@click.option("--result-to", type=click.Choice(["receiver", "both"]), default="receiver", show_default=True,
              help="Who may learn results: the receiver only, or both parties.")
@json_option
def add(table: str, peer: str, ops: str, purpose: str, expires: str, max_runs: int | None,
        max_queries_per_day: int | None, result_to: str, as_json: bool, **kw: Any) -> None:
    """Let PEER use TABLE for OPS, for PURPOSE, until EXPIRES."""
    args = dict(table=table, peer=peer, ops=[o.strip() for o in ops.split(",") if o.strip()], purpose=purpose,
                expires=expires, max_runs=max_runs, max_queries_per_day=max_queries_per_day, result_to=result_to)
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            row = client.add_grant(**args)
    else:
        from ..node import grants
        from ..node.context import local_actor

        row = _local(t, lambda ctx, s: grants.grant_dict(grants.add_grant(ctx, s, local_actor(), **args)))
    emit(row, as_json, lambda g: click.echo(
        f"grant #{g['id']}: peer '{g['peer']}' may use table '{g['table']}' for {','.join(g['ops'])} "
        f"until the end of {g['expires']} (results to {g['result_to']})"))


@grant.command("list")
@node_options
@click.option("--table")
@click.option("--peer")
@click.option("--active", is_flag=True, help="Only grants in force now.")
@json_option
def list_(table: str | None, peer: str | None, active: bool, as_json: bool, **kw: Any) -> None:
    """List grants and their status (active, expired, exhausted, revoked)."""
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            rows = client.grants(table=table, peer=peer, active=active)
    else:
        from ..node import grants

        rows = _local(t, lambda ctx, s: [grants.grant_dict(g) for g in
                                         grants.list_grants(s, table=table, peer=peer, include_inactive=not active)])
    emit(rows, as_json, lambda r: table_out(
        r, ["id", "table", "peer", "ops", "status", "expires", "runs_used", "max_runs", "result_to", "purpose"],
        "no grants"))


@grant.command("revoke")
@node_options
@click.option("--id", "grant_id", required=True, type=int)
@click.option("--reason", default="", help="Why (recorded, and shown to the peer when its job stops).")
def revoke(grant_id: int, reason: str, **kw: Any) -> None:
    """Revoke a grant now: new requests are refused and running jobs stop at their next step."""
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            client.revoke_grant(grant_id, reason)
    else:
        from ..node import grants
        from ..node.context import local_actor

        _local(t, lambda ctx, s: grants.revoke_grant(ctx, s, local_actor(), grant_id, reason))
    click.echo(f"revoked grant #{grant_id}")


@main.group()
def approvals() -> None:
    """Requests no grant covers: review their manifest, approve or deny them."""


@approvals.command("list")
@node_options
@click.option("--state", type=click.Choice(["pending", "approved", "denied", "withdrawn", "all"]), default="pending",
              show_default=True)
@json_option
def approvals_list(state: str, as_json: bool, **kw: Any) -> None:
    """List approvals (pending ones by default) with what each job would do."""
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            rows = client.approvals(state)
    else:
        from ..node import grants

        rows = _local(t, lambda ctx, s: [grants.approval_dict(a) for a in grants.list_approvals(s, state)])

    def render(items: list[dict[str, Any]]) -> None:
        if not items:
            click.echo(f"no {state if state != 'all' else ''} approvals".replace("  ", " "))
        for a in items:
            m = a["manifest"]
            side = "initiator" if a["peer"] != m.get("initiator") else "responder"
            mine = m.get("tables", {}).get(side, {})
            click.echo(f"#{a['id']} [{a['state']}] job {a['job_id']}: peer '{a['peer']}' wants table '{a['table']}' "
                       f"for {','.join(a['ops'])}")
            click.echo(f"    purpose: {m.get('purpose')}; results to: {m.get('result_to')}; "
                       f"columns: {', '.join(mine.get('columns', [])) or '-'}; requested by {m.get('requested_by')}")
            if a["decided_by"]:
                click.echo(f"    {a['state']} by {a['decided_by']}" + (f": {a['reason']}" if a["reason"] else ""))

    emit(rows, as_json, render)


@approvals.command("show")
@node_options
@click.option("--id", "approval_id", required=True, type=int)
def approvals_show(approval_id: int, **kw: Any) -> None:
    """Show one approval with its full manifest (JSON)."""
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            row = client.approval(approval_id)
    else:
        from ..node import grants

        row = _local(t, lambda ctx, s: grants.approval_dict(grants.get_approval(s, approval_id)))
    click.echo(json.dumps(row, indent=2, ensure_ascii=False))


def _decide(approval_id: int, approve: bool, reason: str, kw: dict[str, Any]) -> None:
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            (client.approve(approval_id, reason) if approve else client.deny(approval_id, reason))
    else:
        from ..node.context import local_actor
        from ..node.jobs.state import record_approval_decision

        _local(t, lambda ctx, s: record_approval_decision(ctx, s, local_actor(), approval_id, approve, reason))
    click.echo(f"{'approved' if approve else 'denied'} #{approval_id}")


@approvals.command("approve")
@node_options
@click.option("--id", "approval_id", required=True, type=int)
@click.option("--reason", default="")
def approvals_approve(approval_id: int, reason: str, **kw: Any) -> None:
    """Approve this one job (it does not create a standing grant)."""
    _decide(approval_id, True, reason, kw)


@approvals.command("deny")
@node_options
@click.option("--id", "approval_id", required=True, type=int)
@click.option("--reason", required=True, help="Why (the requester sees it).")
def approvals_deny(approval_id: int, reason: str, **kw: Any) -> None:
    """Deny this job; the requesting node's job ends as denied, with your reason."""
    _decide(approval_id, False, reason, kw)
