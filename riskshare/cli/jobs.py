"""``riskshare job`` and ``riskshare schedule``: run jobs through a running node."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import RiskshareError
from . import main
from ._api import emit, json_option, node_options, table_out, target


@main.group()
def job() -> None:
    """Submit and follow jobs (needs the running node and an API token)."""


def _client(kw: dict[str, Any]) -> Any:
    return target(**kw).require_remote("this command")


def _submitted(result: dict[str, Any]) -> None:
    if "schedule" in result:
        s = result["schedule"]
        click.echo(f"scheduled '{s['name']}' ({s['cron']}), next run {s['next_run_at']}", err=True)
        click.echo(f"schedule {s['id']}")
        return
    click.echo(f"job {result['id']} {result['state']}: {result['name']}", err=True)
    if result.get("decision_reason") and result["state"] in ("refused", "denied"):
        click.echo(f"  {result['decision_reason']}", err=True)
    click.echo(result["id"])


@job.command("submit")
@node_options
@click.argument("job_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--cron", help='Run on this schedule instead of once, e.g. "0 2 * * *".')
def submit(job_file: Path, cron: str | None, **kw: Any) -> None:
    """Submit a job file (YAML); prints the job's id as the last line."""
    from ..node.jobs.spec import parse_spec

    spec = parse_spec(job_file.read_text(encoding="utf-8")).model_dump()
    if cron:
        spec["schedule"] = cron
    with _client(kw) as client:
        _submitted(client.submit(spec))


def _op_command(op: str, helptext: str) -> None:
    @job.command(op, help=helptext)
    @node_options
    @click.option("--peer", required=True, help="The pinned peer that runs the other side.")
    @click.option("--table", required=True, help="This node's table.")
    @click.option("--peer-table", required=True, help="The peer's table.")
    @click.option("--purpose", default=None, help="Why (shown to the data owners; default: the operation).")
    @click.option("--protocol", default=None, help="Protocol variant (psi: ecdh, ...).")
    @click.option("--output-mode", default=None, help="psi: intersection, count, ...")
    @click.option("--role", type=click.Choice(["receiver", "sender"]), default="receiver", show_default=True,
                  help="This node's protocol role.")
    @click.option("--result-to", type=click.Choice(["receiver", "both"]), default="receiver", show_default=True)
    @click.option("--param", "params", multiple=True, help="Extra parameter KEY=VALUE (repeatable).")
    @click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the peer within a step.")
    @click.option("--name", default="")
    @click.option("--cron", help='Run on this schedule, e.g. "0 2 * * *" (post-loan monitoring every night).')
    def command(peer: str, table: str, peer_table: str, purpose: str | None, protocol: str | None,
                output_mode: str | None, role: str, result_to: str, params: tuple[str, ...], timeout: float,
                name: str, cron: str | None, **kw: Any) -> None:
        from ..node.jobs.spec import default_steps

        p: dict[str, Any] = {}
        if protocol:
            p["protocol"] = protocol
        if output_mode:
            p["output_mode"] = output_mode
        for item in params:
            key, sep, value = item.partition("=")
            if not sep:
                raise click.BadParameter(f"'{item}' is not KEY=VALUE", param_hint="--param")
            try:
                p[key] = json.loads(value)
            except json.JSONDecodeError:
                p[key] = value
        spec = {"name": name, "peer": peer, "table": table, "peer_table": peer_table,
                "purpose": purpose or f"{op} with {peer}", "role": role, "result_to": result_to,
                "timeout": timeout, "steps": default_steps(op, p), "schedule": cron}
        with _client(kw) as client:
            _submitted(client.submit(spec))


_op_command("psi", "Private set intersection of --table with the peer's --peer-table; prints the job id last.")
_op_command("pir", "Keyword PIR: look the IDs of --table up in the peer's --peer-table (--param mode=cached|pir, "
                   "--param columns=a,b); prints the job id last.")
_op_command("train", "Vertical federated training (needs riskshare.ml; --param algorithm=lr|secureboost); "
                     "prints the job id last.")
_op_command("predict", "Score with a trained model (needs riskshare.ml; --param model_job=JOB_ID of the training "
                       "job); prints the job id last.")
_op_command("iv", "WOE and information value of both nodes' features (needs riskshare.ml); prints the job id last.")


@job.command("list")
@node_options
@click.option("--state")
@click.option("--limit", default=50, show_default=True)
@json_option
def list_(state: str | None, limit: int, as_json: bool, **kw: Any) -> None:
    """List recent jobs."""
    with _client(kw) as client:
        rows = client.jobs(state, limit)
    emit(rows, as_json, lambda r: table_out(r, ["id", "state", "role", "peer", "table", "ops", "current_step",
                                                "created_at", "error"], "no jobs"))


def _show(j: dict[str, Any]) -> None:
    click.echo(f"job {j['id']}: {j['state']}  ({j['name']})")
    click.echo(f"  {j['role']} with peer '{j['peer']}'; table '{j['table']}' / peer table '{j['peer_table']}'; "
               f"ops {','.join(j['ops'])}; results to {j['result_to']}")
    click.echo(f"  decisions: this node {j['local_decision']}, peer {j['peer_decision']}"
               + (f" — {j['decision_reason']}" if j.get("decision_reason") else ""))
    if j.get("attempt"):
        click.echo(f"  attempt {j['attempt']}, current step {j['current_step']}")
    for s in j.get("steps", []):
        summary = ", ".join(f"{k}={v}" for k, v in (s.get("summary") or {}).items())
        click.echo(f"  - {s['id']} ({s['op']}): {s['state']}" + (f"  {summary}" if summary else "")
                   + (f"  error: {s['error']}" if s.get("error") else ""))
    if j.get("error"):
        click.echo(f"  error: {j['error']}")


@job.command("status")
@node_options
@click.argument("job_id")
@json_option
def status(job_id: str, as_json: bool, **kw: Any) -> None:
    """Show a job: state, decisions, steps and their counts."""
    with _client(kw) as client:
        emit(client.job(job_id), as_json, _show)


@job.command("wait")
@node_options
@click.argument("job_id")
@click.option("--timeout", default=3600.0, show_default=True)
@json_option
def wait(job_id: str, timeout: float, as_json: bool, **kw: Any) -> None:
    """Wait until the job finishes; exit 0 only if it succeeded."""
    with _client(kw) as client:
        j = client.wait(job_id, timeout=timeout, interval=0.5)
    emit(j, as_json, _show)
    if j["state"] != "succeeded":
        sys.exit(6)


@job.command("logs")
@node_options
@click.argument("job_id")
def logs(job_id: str, **kw: Any) -> None:
    """Print the job's log (decisions, steps, errors)."""
    with _client(kw) as client:
        for e in client.logs(job_id):
            click.echo(f"{e['ts']} {e['level']:<7} {e['message']}")


@job.command("cancel")
@node_options
@click.argument("job_id")
@click.option("--reason", default="")
def cancel(job_id: str, reason: str, **kw: Any) -> None:
    """Cancel a job (both nodes stop it)."""
    with _client(kw) as client:
        j = client.cancel(job_id, reason)
    click.echo(f"job {job_id}: {j['state']}")


@job.command("rerun")
@node_options
@click.argument("job_id")
def rerun(job_id: str, **kw: Any) -> None:
    """Submit the same job again (grants are checked anew); prints the new id last."""
    with _client(kw) as client:
        _submitted(client.rerun(job_id))


@job.command("output")
@node_options
@click.argument("job_id")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to save the artifacts.")
@click.option("--name", help="Only this artifact.")
@click.option("--list", "only_list", is_flag=True, help="List the artifacts without downloading.")
def output(job_id: str, directory: Path, name: str | None, only_list: bool, **kw: Any) -> None:
    """Download the job's outputs (artifacts) from this node."""
    with _client(kw) as client:
        arts = client.artifacts(job_id)
        if only_list:
            table_out(arts, ["id", "name", "rows", "size", "sha256"], "no artifacts")
            return
        chosen = [a for a in arts if name is None or a["name"] == name]
        if not chosen:
            raise RiskshareError(f"job {job_id} has no artifact{' named ' + repr(name) if name else 's'}")
        for a in chosen:
            target_path = directory / a["name"]
            client.download(a["id"], target_path)
            click.echo(f"{target_path}  ({a['size']} bytes" + (f", {a['rows']} rows" if a["rows"] is not None else "") + ")")


@main.group()
def schedule() -> None:
    """Scheduled jobs (created by `job ... --cron`)."""


@schedule.command("list")
@node_options
@json_option
def schedule_list(as_json: bool, **kw: Any) -> None:
    with _client(kw) as client:
        rows = client.schedules()
    emit(rows, as_json, lambda r: table_out(r, ["id", "name", "cron", "enabled", "next_run_at", "last_job_id"],
                                            "no schedules"))


@schedule.command("run")
@node_options
@click.option("--id", "schedule_id", required=True, type=int)
def schedule_run(schedule_id: int, **kw: Any) -> None:
    """Run a scheduled job now; prints the new job's id last."""
    with _client(kw) as client:
        _submitted(client.run_schedule(schedule_id))


@schedule.command("remove")
@node_options
@click.option("--id", "schedule_id", required=True, type=int)
def schedule_remove(schedule_id: int, **kw: Any) -> None:
    with _client(kw) as client:
        client.remove_schedule(schedule_id)
    click.echo(f"removed schedule {schedule_id}")
