"""The node's local commands (acting on a home's database, no running node): users, tables, grants, audit."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from riskshare.cli import main
from riskshare.node.home import NodeHome

from .conftest import free_port, write_ids


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_local_commands_and_offline_audit_verification(tmp_path: Path) -> None:
    bank = NodeHome.init(tmp_path / "bank", "bank", f"127.0.0.1:{free_port()}")
    broker = NodeHome.init(tmp_path / "broker", "broker", f"127.0.0.1:{free_port()}")
    bank.add_peer("broker", broker.config["node"]["listen"], broker.cert_pem)
    home = ["--home", str(bank.path)]
    token = run("user", "add", *home, "--name", "li", "--role", "admin").strip().splitlines()[-1]
    assert token.startswith("rs_")
    assert "li" in run("user", "list", *home)
    write_ids(tmp_path / "clients.csv", "uscc", range(10))
    out = run("table", "add", *home, "--name", "risk_clients", "--path", str(tmp_path / "clients.csv"),
              "--id-column", "uscc", "--features", "score")
    assert "10 rows" in out
    out = run("grant", "add", *home, "--table", "risk_clients", "--peer", "broker", "--ops", "psi,pir",
              "--purpose", "post-loan monitoring", "--expires", "2099-06-30", "--max-runs", "30",
              "--max-queries-per-day", "500")
    assert "grant #1" in out and "2099-06-30" in out
    grants = json.loads(run("grant", "list", *home, "--json"))
    assert grants[0]["status"] == "active" and grants[0]["max_queries_per_day"] == 500
    run("grant", "revoke", *home, "--id", "1", "--reason", "test")
    assert json.loads(run("grant", "list", *home, "--json"))[0]["status"] == "revoked"
    assert "no pending approvals" in run("approvals", "list", *home)

    bad = CliRunner().invoke(main, ["grant", "add", *home, "--table", "nope", "--peer", "broker", "--ops", "psi",
                                    "--purpose", "x", "--expires", "2099-01-01"])
    assert bad.exit_code != 0 and "no table named 'nope'" in bad.output

    assert "intact" in run("audit", "verify", *home)
    export = tmp_path / "audit.jsonl"
    run("audit", "export", *home, "--output", str(export))
    records = [json.loads(line) for line in export.read_text().splitlines()]
    assert [r["action"] for r in records][:3] == ["user.add", "table.add", "grant.add"]
    assert not any("C00000001" in line for line in export.read_text().splitlines())  # no data values
    cert = tmp_path / "bank.crt"
    cert.write_bytes(bank.cert_pem)
    assert "intact" in run("audit", "verify", "--file", str(export), "--node-cert", str(cert))
    records[1]["details"]["row_count"] = 11  # someone "corrects" the export
    export.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = CliRunner().invoke(main, ["audit", "verify", "--file", str(export), "--node-cert", str(cert)])
    assert result.exit_code == 1 and "record 2 was edited" in result.output
