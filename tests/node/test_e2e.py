"""Two nodes as real processes on loopback, over HTTPS and mutual TLS: the whole life of a job."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text

from riskshare.client import Client
from riskshare.node.service import NodeProcess

from .conftest import Pair, add_grant, make_pair, write_ids

SLOW_STEP = "slowpsi"  # jobs naming a step so are held there for a few seconds (fault injection)
FAULT_ENV = {"RISKSHARE_FAULT_STEP_DELAY": f"{SLOW_STEP}:4"}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    pair = make_pair(tmp_path_factory.mktemp("e2e"))
    add_grant(pair, "bank", ops=["psi"])  # the bank's own data owner lets broker take part with risk_clients
    procs = [NodeProcess(pair.home(n), env=FAULT_ENV) for n in ("bank", "broker")]
    for p in procs:
        p.start()
    pair.procs = {"bank": procs[0], "broker": procs[1]}  # type: ignore[attr-defined]
    yield pair
    for p in procs:
        p.stop()


def client(pair: Pair, node: str, role: str) -> Client:
    return Client.for_home(pair.home(node), pair.tokens[node][role])


def broker_table(pair: Pair, name: str, ids: range = range(500, 1500)) -> None:
    path = write_ids(pair.root / f"{name}.csv", "id", ids)
    with client(pair, "broker", "data_owner") as owner:
        owner.add_table(name, path=path, id_column="id")


def wait_for_step(pair: Pair, node: str, job_id: str, step: str, timeout: float = 30.0) -> None:
    """Until the node runs ``step`` of the job (it may not even know the job yet)."""
    from riskshare.client import ApiError

    deadline = time.monotonic() + timeout
    with client(pair, node, "analyst") as watcher:
        while True:
            try:
                if watcher.job(job_id)["current_step"] == step:
                    return
            except ApiError:
                pass
            assert time.monotonic() < deadline, f"{node} never reached step {step}"
            time.sleep(0.1)


def psi(pair: Pair, peer_table: str, **kwargs: object) -> str:
    with client(pair, "bank", "analyst") as analyst:
        job = analyst.psi(peer="broker", table="risk_clients", peer_table=peer_table, purpose="risk list cross-check",
                          **kwargs)
        return job["id"]


def test_psi_job_runs_and_its_output_downloads(nodes: Pair) -> None:
    broker_table(nodes, "risk_a")
    with client(nodes, "broker", "data_owner") as owner:
        owner.add_grant(table="risk_a", peer="bank", ops=["psi", "pir"], purpose="post-loan monitoring",
                        expires="2099-06-30", max_runs=30)
    job_id = psi(nodes, "risk_a")
    with client(nodes, "bank", "analyst") as analyst:
        job = analyst.wait(job_id, timeout=60)
        assert job["state"] == "succeeded", job
        assert [s["state"] for s in job["steps"]] == ["succeeded"] * 3
        psi_step = job["steps"][1]["summary"]
        assert psi_step["intersection"] == 500 and psi_step["own_ids"] == 1000 and psi_step["peer_ids"] == 1000
        arts = {a["name"]: a for a in analyst.artifacts(job_id)}
        rows = list(csv.DictReader(io.StringIO(analyst.download(arts["psi-rows.csv"]["id"]).decode())))
        assert sorted(r["uscc"] for r in rows) == [f"C{i:08d}" for i in range(500, 1000)]
    with client(nodes, "broker", "analyst") as broker:
        theirs = broker.job(job_id)
        assert theirs["state"] == "succeeded" and theirs["role"] == "responder"
        # the sender learned only the size: no rows were written on its side
        assert [a["name"] for a in broker.artifacts(job_id)] == ["psi-summary.json"]
    with client(nodes, "broker", "data_owner") as owner:
        assert owner.grants(table="risk_a")[0]["runs_used"] == 1
    # both audit chains verify, and each node now holds the other's signed head
    for node in ("bank", "broker"):
        with client(nodes, node, "auditor") as auditor:
            assert auditor.audit_verify()["ok"]
            assert any(r["action"] == "audit.peer_head" and r["details"]["job"] == job_id
                       for r in auditor.audit(action="audit.peer_head"))
    # the analyst may download; the auditor may not
    with client(nodes, "bank", "auditor") as auditor:
        with pytest.raises(Exception, match="may not"):
            auditor.download(arts["psi-rows.csv"]["id"])


def test_uncovered_job_waits_for_approval_then_runs(nodes: Pair) -> None:
    broker_table(nodes, "risk_b")
    job_id = psi(nodes, "risk_b")
    with client(nodes, "bank", "analyst") as analyst:
        job = analyst.wait(job_id, timeout=30, states=["waiting_approval"])
        assert job["peer_decision"] == "pending"
    with client(nodes, "broker", "data_owner") as owner:
        pending = [a for a in owner.approvals() if a["job_id"] == job_id]
        assert len(pending) == 1
        manifest = pending[0]["manifest"]
        assert pending[0]["peer"] == "bank" and pending[0]["table"] == "risk_b" and pending[0]["ops"] == ["psi"]
        assert manifest["purpose"] == "risk list cross-check" and manifest["result_to"] == "receiver"
        assert manifest["tables"]["responder"]["columns"] == ["id"]
    with client(nodes, "broker", "analyst") as analyst:  # an analyst cannot approve
        with pytest.raises(Exception, match="may not approvals decide"):
            analyst.approve(pending[0]["id"])
    with client(nodes, "broker", "data_owner") as owner:
        owner.approve(pending[0]["id"], "one-off check agreed by phone")
    with client(nodes, "bank", "analyst") as analyst:
        assert analyst.wait(job_id, timeout=60)["state"] == "succeeded"


def test_denied_job_tells_the_requester_why(nodes: Pair) -> None:
    broker_table(nodes, "risk_c")
    job_id = psi(nodes, "risk_c")
    with client(nodes, "broker", "data_owner") as owner:
        deadline = time.monotonic() + 30
        while not (pending := [a for a in owner.approvals() if a["job_id"] == job_id]):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        owner.deny(pending[0]["id"], "purpose too broad for this table")
    with client(nodes, "bank", "analyst") as analyst:
        job = analyst.wait(job_id, timeout=30)
        assert job["state"] == "denied"
        assert "purpose too broad" in job["error"] and "broker" in job["error"]


def test_expired_grant_refuses_and_says_so(nodes: Pair) -> None:
    broker_table(nodes, "risk_d")
    with client(nodes, "broker", "data_owner") as owner:
        grant = owner.add_grant(table="risk_d", peer="bank", ops=["psi"], purpose="monitoring", expires="2099-01-01")
    engine = create_engine(f"sqlite:///{nodes.home('broker') / 'node.db'}")
    with engine.begin() as conn:  # time passes: the grant's last day is behind us
        conn.execute(text("update grants set expires_at = '2020-01-01 00:00:00.000000' where id = :id"),
                     {"id": grant["id"]})
    engine.dispose()
    job_id = psi(nodes, "risk_d")
    with client(nodes, "bank", "analyst") as analyst:
        job = analyst.wait(job_id, timeout=30)
    assert job["state"] == "refused"
    assert f"grant #{grant['id']}" in job["error"] and "expired" in job["error"]


def test_revocation_stops_a_running_job(nodes: Pair) -> None:
    broker_table(nodes, "risk_e")
    with client(nodes, "broker", "data_owner") as owner:
        grant = owner.add_grant(table="risk_e", peer="bank", ops=["psi"], purpose="monitoring", expires="2099-01-01")
    with client(nodes, "bank", "analyst") as analyst:
        job_id = analyst.submit({"peer": "broker", "table": "risk_clients", "peer_table": "risk_e",
                                 "purpose": "monitoring", "steps": [
                                     {"id": "read", "op": "read"},
                                     {"id": SLOW_STEP, "op": "psi", "needs": ["read"]},
                                     {"id": "write", "op": "write", "needs": ["read", SLOW_STEP]}]})["id"]
    wait_for_step(nodes, "broker", job_id, SLOW_STEP)
    with client(nodes, "broker", "data_owner") as owner:
        owner.revoke_grant(grant["id"], "client complaint")
    with client(nodes, "bank", "analyst") as analyst:
        job = analyst.wait(job_id, timeout=30)
    assert job["state"] == "failed"
    assert "revoked" in job["error"] and "client complaint" in job["error"]
    with client(nodes, "broker", "analyst") as watcher:
        theirs = watcher.job(job_id)
        assert theirs["state"] == "failed" and SLOW_STEP in theirs["error"]


def test_unknown_peer_certificate_is_refused_on_the_link(nodes: Pair, tmp_path: Path) -> None:
    from riskshare.errors import CertificateMismatch, PeerError
    from riskshare.net import NetworkLink
    from riskshare.node.home import NodeHome

    mallory = NodeHome.init(tmp_path / "mallory", "bank", "127.0.0.1:0")  # claims the bank's name
    bank_peer = NodeHome.open(nodes.home("broker")).peer("bank")
    link = NetworkLink(mallory.identity, None, [bank_peer], timeout=5, reconnect_window=2)
    try:
        with pytest.raises((CertificateMismatch, PeerError)):
            link.send("bank", "x", b"hello")
            link.recv_bytes("bank", "y", timeout=3)
    finally:
        link.close(notify_peers=False)


@pytest.mark.slow
def test_node_killed_mid_job_resumes(tmp_path: Path) -> None:
    pair = make_pair(tmp_path)
    add_grant(pair, "bank")
    add_grant(pair, "broker")
    bank = NodeProcess(pair.home("bank"), env=FAULT_ENV).start()
    broker = NodeProcess(pair.home("broker"), env=FAULT_ENV).start()
    try:
        with client(pair, "bank", "analyst") as analyst:
            job_id = analyst.submit({"peer": "broker", "table": "risk_clients", "peer_table": "broker_risk",
                                     "purpose": "monitoring", "steps": [
                                         {"id": "read", "op": "read"},
                                         {"id": SLOW_STEP, "op": "psi", "needs": ["read"]},
                                         {"id": "write", "op": "write", "needs": ["read", SLOW_STEP]}]})["id"]
        wait_for_step(pair, "broker", job_id, SLOW_STEP)
        broker.kill()  # a crash in the middle of the protocol step
        broker = NodeProcess(pair.home("broker"), env=FAULT_ENV).start()
        with client(pair, "bank", "analyst") as analyst:
            job = analyst.wait(job_id, timeout=90)
            assert job["state"] == "succeeded", job
            assert job["attempt"] == 2
            assert any("attempt 2 started" in e["message"] for e in analyst.logs(job_id))
        with client(pair, "broker", "analyst") as watcher:
            theirs = watcher.job(job_id)
            assert theirs["state"] == "succeeded"
            assert any("restarted while step 'slowpsi'" in e["message"] for e in watcher.logs(job_id))
    finally:
        bank.stop()
        broker.stop()


def test_cli_runs_a_job_and_prints_its_id_last(nodes: Pair, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from riskshare.cli import main

    runner = CliRunner()
    broker_table(nodes, "risk_f")
    result = runner.invoke(main, ["grant", "add", "--home", str(nodes.home("broker")), "--table", "risk_f",
                                  "--peer", "bank", "--ops", "psi", "--purpose", "post-loan monitoring",
                                  "--expires", "2099-06-30", "--max-runs", "30"])
    assert result.exit_code == 0, result.output
    env = {"RISKSHARE_TOKEN": nodes.tokens["bank"]["analyst"]}
    home = ["--home", str(nodes.home("bank"))]
    result = runner.invoke(main, ["job", "psi", *home, "--peer", "broker", "--table", "risk_clients",
                                  "--peer-table", "risk_f", "--protocol", "ecdh"], env=env)
    assert result.exit_code == 0, result.output
    job_id = result.output.strip().splitlines()[-1]
    assert job_id.startswith("j-")
    result = runner.invoke(main, ["job", "wait", *home, job_id, "--timeout", "60"], env=env)
    assert result.exit_code == 0 and "succeeded" in result.output, result.output
    result = runner.invoke(main, ["job", "output", *home, job_id, "--dir", str(tmp_path / "out")], env=env)
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "out" / "psi-rows.csv").read_text().splitlines()) == 501  # header + 500 rows
    result = runner.invoke(main, ["job", "logs", *home, job_id], env=env)
    assert "job succeeded" in result.output
    # without a token the job commands say what is missing
    result = runner.invoke(main, ["job", "list", *home], env={"RISKSHARE_TOKEN": ""})
    assert result.exit_code != 0 and "token" in result.output
    # the auditor verifies both chains against each other's held heads
    for node in ("bank", "broker"):
        result = runner.invoke(main, ["audit", "verify", "--home", str(nodes.home(node)), "--peers"])
        assert result.exit_code == 0 and "intact" in result.output, result.output


def test_user_add_prints_the_token_last(nodes: Pair) -> None:
    from click.testing import CliRunner

    from riskshare.cli import main

    result = CliRunner().invoke(main, ["user", "add", "--home", str(nodes.home("bank")), "--name", "li",
                                       "--role", "admin"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    with Client.for_home(nodes.home("bank"), token) as admin:
        assert admin.me() ["role"] == "admin"


def test_schedule_runs_now_on_request_and_cancel_stops_a_job(nodes: Pair) -> None:
    broker_table(nodes, "risk_g")
    with client(nodes, "broker", "data_owner") as owner:
        owner.add_grant(table="risk_g", peer="bank", ops=["psi"], purpose="nightly monitoring", expires="2099-01-01")
    spec = {"name": "nightly monitoring", "peer": "broker", "table": "risk_clients", "peer_table": "risk_g",
            "purpose": "post-loan monitoring", "op": "psi"}
    with client(nodes, "bank", "analyst") as analyst:
        from riskshare.node.jobs.spec import parse_spec

        schedule = analyst.add_schedule(parse_spec(spec).model_dump(), "0 2 * * *")
        assert schedule["next_run_at"].endswith("02:00:00+00:00")
        runs = [analyst.run_schedule(schedule["id"])["id"] for _ in range(2)]  # two "nights"
        for job_id in runs:
            assert analyst.wait(job_id, timeout=60)["state"] == "succeeded"
        assert [s["last_job_id"] for s in analyst.schedules() if s["id"] == schedule["id"]] == [runs[-1]]
        assert {j["id"] for j in analyst.jobs() if j["schedule_id"] == schedule["id"]} == set(runs)
        # a rerun is a new job checked anew; cancelling it stops both sides
        slow = analyst.submit({**{k: v for k, v in spec.items() if k != "op"}, "steps": [{"id": "read", "op": "read"},
                                                 {"id": SLOW_STEP, "op": "psi", "needs": ["read"]}]})
    wait_for_step(nodes, "bank", slow["id"], SLOW_STEP)
    with client(nodes, "bank", "analyst") as analyst:
        analyst.cancel(slow["id"], "wrong day")
        assert analyst.wait(slow["id"], timeout=30)["state"] == "cancelled"
    with client(nodes, "broker", "analyst") as watcher:
        deadline = time.monotonic() + 20
        while (theirs := watcher.job(slow["id"]))["state"] not in ("cancelled", "failed"):
            assert time.monotonic() < deadline, theirs
            time.sleep(0.1)
        assert theirs["state"] == "cancelled" and "wrong day" in theirs["error"]


@pytest.mark.slow
def test_initiator_killed_mid_job_resumes_and_sigterm_stops_cleanly(tmp_path: Path, pg_url: str) -> None:
    # the broker keeps its state in PostgreSQL, the bank in SQLite
    pair = make_pair(tmp_path, database_urls={"broker": pg_url})
    add_grant(pair, "bank")
    add_grant(pair, "broker")
    bank = NodeProcess(pair.home("bank"), env=FAULT_ENV).start()
    broker = NodeProcess(pair.home("broker"), env=FAULT_ENV).start()
    try:
        with client(pair, "bank", "analyst") as analyst:
            job_id = analyst.submit({"peer": "broker", "table": "risk_clients", "peer_table": "broker_risk",
                                     "purpose": "monitoring", "steps": [
                                         {"id": "read", "op": "read"},
                                         {"id": SLOW_STEP, "op": "psi", "needs": ["read"]},
                                         {"id": "write", "op": "write", "needs": ["read", SLOW_STEP]}]})["id"]
        wait_for_step(pair, "bank", job_id, SLOW_STEP)
        bank.kill()
        bank = NodeProcess(pair.home("bank"), env=FAULT_ENV).start()
        with client(pair, "bank", "analyst") as analyst:
            job = analyst.wait(job_id, timeout=90)
            assert job["state"] == "succeeded" and job["attempt"] == 2, job
            # the resumed attempt started at the protocol step: read had finished on both nodes
            assert any("attempt 2 started at step 'slowpsi'" in e["message"] for e in analyst.logs(job_id))
    finally:
        assert broker.stop() == 0  # SIGTERM: a graceful stop
        assert bank.stop() == 0
    with client_less_audit(pair.home("broker")) as records:
        assert records[-1]["action"] == "node.stop"


class client_less_audit:
    """Read a stopped node's audit log straight from its database."""

    def __init__(self, home: Path) -> None:
        from riskshare.node.context import NodeContext

        self.ctx = NodeContext.open(home)

    def __enter__(self) -> list[dict]:
        return self.ctx.audit.records()

    def __exit__(self, *exc: object) -> None:
        self.ctx.close()
