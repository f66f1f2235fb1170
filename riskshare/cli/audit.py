"""``riskshare audit``: verify and export the tamper-evident audit log."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from . import main
from ._api import node_options, target


@main.group()
def audit() -> None:
    """Verify and export this node's audit log (hash-chained, signed with the node key)."""


def _since(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"'{value}' is not a date or time", hint="e.g. --since 2026-11-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


@audit.command("verify")
@node_options
@click.option("--file", "export_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Verify an exported file instead (offline; needs --node-cert).")
@click.option("--node-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The certificate of the node that wrote the export.")
@click.option("--peers", "with_peers", is_flag=True,
              help="Also compare with the chain heads the peers hold (needs the running node's peers reachable).")
def verify(export_file: Path | None, node_cert: Path | None, with_peers: bool, **kw: Any) -> None:
    """Check every record's hash, signature and link; exit 1 if anything was edited, deleted or reordered."""
    if export_file:
        from ..net.certs import load_certificate
        from ..node.audit import verify_records

        if node_cert is None:
            raise InputError("--file needs --node-cert (the exporting node's certificate)")
        lines = [json.loads(line) for line in export_file.read_text().splitlines() if line.strip()]
        records = [r for r in lines if "seq" in r]
        first = records[0]["seq"] if records else 1
        prev = records[0]["prev_hash"] if records else "0" * 64
        report = verify_records(records, load_certificate(node_cert.read_bytes()).public_key(),  # type: ignore[arg-type]
                                first_seq=first, prev_hash=prev)
        report_dict = report.as_dict()
    else:
        t = target(**kw)
        if t.remote:
            with t.client() as client:
                report_dict = client.audit_verify()
        else:
            ctx = t.context()
            try:
                report_dict = ctx.audit.verify().as_dict()
                if with_peers:
                    report_dict["problems"].extend(_check_with_peers(ctx, report_dict))
                    report_dict["ok"] = not report_dict["problems"]
            finally:
                ctx.close()
    for problem in report_dict["problems"]:
        click.echo(f"PROBLEM: {problem}")
    if report_dict["ok"]:
        click.echo(f"audit log intact: {report_dict['records']} records, head {report_dict['head_seq']} "
                   f"{report_dict['head_hash'][:16]}…")
    else:
        click.echo(f"audit log FAILED verification ({len(report_dict['problems'])} problems)")
        raise SystemExit(1)


def _check_with_peers(ctx: Any, report: dict[str, Any]) -> list[str]:
    from ..node.audit import record_dict
    from ..node.peers import PeerClient
    from ..node.storage.models import AuditRecord
    from ..errors import RiskshareError

    problems = []
    client = PeerClient(ctx.home)
    try:
        for name in ctx.home.config.get("peers", {}):
            try:
                held = client.call(name, "GET", "/audit/heads")
            except RiskshareError as exc:
                problems.append(f"could not ask peer '{name}': {exc}")
                continue
            with ctx.db.session() as s:
                for head in held:
                    row = s.get(AuditRecord, head["seq"])
                    if row is None or record_dict(row)["hash"] != head["hash"]:
                        problems.append(f"peer '{name}' holds our head {head['seq']} {head['hash'][:16]}…, "
                                        "which our chain no longer has: history was rewritten")
    finally:
        client.close()
    return problems


@audit.command("export")
@node_options
@click.option("--since", help="Only records from this date/time on (ISO 8601, UTC unless it says otherwise).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout).")
def export(since: str | None, output: Path | None, **kw: Any) -> None:
    """Export records as JSON lines (each with its hash and signature: verifiable offline)."""
    t = target(**kw)
    start = _since(since)
    if t.remote:
        with t.client() as client:
            records, after = [], 0
            while True:
                batch = client.audit(since=start.isoformat() if start else None, after=after, limit=5000)
                if not batch:
                    break
                records.extend(batch)
                after = batch[-1]["seq"]
    else:
        ctx = t.context()
        try:
            records = ctx.audit.records(since=start)
        finally:
            ctx.close()
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    if output:
        from ..data import atomic_output

        with atomic_output(output) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(records)} records to {output}", err=True)
    else:
        click.echo(text, nl=False)
