"""`riskshare demo --small` end to end: three real node processes, checked against the ground truth."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest

from riskshare.errors import ConfigError
from riskshare import demo as demo_module

from ..conftest import run_cli


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (no orphan node may outlive the demo)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return [pid for pid in found if pid != os.getpid()]


@pytest.mark.slow
def test_small_demo_matches_the_ground_truth(tmp_path):
    out = tmp_path / "demo"
    r = run_cli("demo", "--small", "--out", str(out), timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    truth = json.loads((out / "data" / "truth.json").read_text())
    assert summary["checks"] and all(summary["checks"].values()), summary["checks"]
    # the same facts, checked here rather than trusted from the demo's own checks
    s11 = summary["scenarios"]["1.1"]
    assert s11["bank_clients_on_broker_list"] == truth["1.1"]["bank_clients_on_broker_list"]
    assert s11["broker_clients_on_bank_list"] == truth["1.1"]["broker_clients_on_bank_list"]
    assert {k: v is None for k, v in s11["pir"].items()} == {k: v is None for k, v in truth["1.1"]["pir_lookups"].items()}
    models = summary["scenarios"]["1.2"]["models"]
    assert models["federated_lr"]["auc"] > models["broker_only_lr"]["auc"]
    assert models["federated_secureboost"]["auc"] > models["broker_only_lr"]["auc"]
    for got, want in zip(summary["scenarios"]["1.3"]["days"], truth["1.3"]["days"]):
        assert got["flagged"] == want["flagged"]
        assert got["flagged_amount"] == pytest.approx(want["flagged_amount"], abs=0.005)
    s21 = summary["scenarios"]["2.1"]
    assert s21["single"]["key"] == truth["2.1"]["single_key"] and s21["single"]["record"]["reason"] == truth["2.1"]["single_answer"]["reason"]
    assert summary["approval"]["state"] == "approved"
    assert all(a["verified"] for a in summary["audit"].values()) and len(summary["audit"]) == 3
    html = (out / "report.html").read_text()
    assert html.count("<svg") == 5 and not re.search(r"""(src|href)=["']?https?://""", html)  # opens offline
    assert "pass" in r.stdout and "FAIL" not in r.stdout
    assert processes_mentioning(str(out)) == []
    assert summary["seconds"] < 300


def test_existing_out_directory_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    r = run_cli("demo", "--small", "--out", str(tmp_path))
    assert r.returncode != 0
    assert "error:" in r.stderr and "not empty" in r.stderr
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli("demo", "--small", "--out", str(tmp_path / "d"), "--base-port", str(port))
    assert r.returncode != 0
    assert f"port {port}" in r.stderr and "already in use" in r.stderr
    assert processes_mentioning(str(tmp_path / "d")) == []


def test_a_node_that_fails_to_start_stops_the_others(tmp_path, monkeypatch):
    from riskshare.node import service

    started = []
    real_start = service.NodeProcess.start

    def start(self, timeout=30.0):
        if self.home.name == "sub":
            raise ConfigError(f"node in {self.home} exited with code 1")
        started.append(self)
        return real_start(self, timeout)

    monkeypatch.setattr(service.NodeProcess, "start", start)
    run = demo_module.Demo(tmp_path / "d", small=True, echo=lambda _: None)
    with pytest.raises(ConfigError, match="node 'sub' failed to start"):
        run.run()
    assert len(started) == 2
    assert all(p.proc.poll() is not None for p in started)  # bank and broker were stopped
    assert processes_mentioning(str(tmp_path / "d" / "nodes")) == []
