"""Jobs between two in-process nodes (real TLS on loopback): roles, result recipients, modes, validation."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterator

import pytest

from riskshare.client import Client
from riskshare.errors import InputError
from riskshare.node.jobs.spec import parse_spec
from riskshare.node.service import NodeService

from .conftest import Pair, add_grant, make_pair


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    pair = make_pair(tmp_path_factory.mktemp("jobs"), range(0, 300), range(200, 600))
    add_grant(pair, "bank", result_to="both")
    add_grant(pair, "broker", result_to="both")
    with NodeService(pair.home("bank")), NodeService(pair.home("broker")):
        yield pair


def analyst(pair: Pair, node: str) -> Client:
    return Client.for_home(pair.home(node), pair.tokens[node]["analyst"])


def rows(client: Client, job_id: str) -> list[dict[str, str]]:
    arts = {a["name"]: a["id"] for a in client.artifacts(job_id)}
    if "psi-rows.csv" not in arts:
        return []
    return list(csv.DictReader(io.StringIO(client.download(arts["psi-rows.csv"]).decode())))


def test_initiator_as_sender_with_results_to_both(nodes: Pair) -> None:
    with analyst(nodes, "bank") as bank, analyst(nodes, "broker") as broker:
        job = bank.psi(peer="broker", table="risk_clients", peer_table="broker_risk", role="sender",
                       result_to="both")
        assert bank.wait(job["id"], timeout=60)["state"] == "succeeded"
        assert broker.wait(job["id"], timeout=30)["state"] == "succeeded"
        expected = [f"C{i:08d}" for i in range(200, 300)]
        assert sorted(r["uscc"] for r in rows(bank, job["id"])) == expected
        assert sorted(r["id"] for r in rows(broker, job["id"])) == expected


def test_count_mode_reveals_only_the_size(nodes: Pair) -> None:
    with analyst(nodes, "bank") as bank, analyst(nodes, "broker") as broker:
        job = bank.psi(peer="broker", table="risk_clients", peer_table="broker_risk", output_mode="count")
        done = bank.wait(job["id"], timeout=60)
        assert done["state"] == "succeeded"
        psi = next(s for s in done["steps"] if s["id"] == "psi")["summary"]
        assert psi["intersection"] == 100 and psi["learned_members"] is False
        assert rows(bank, job["id"]) == [] and rows(broker, job["id"]) == []


def test_result_to_both_needs_a_grant_that_allows_it(tmp_path: Path) -> None:
    pair = make_pair(tmp_path, range(0, 20), range(10, 30))
    add_grant(pair, "bank", result_to="both")
    add_grant(pair, "broker", result_to="receiver")  # the broker allows results to the receiver only
    with NodeService(pair.home("bank")), NodeService(pair.home("broker")):
        with analyst(pair, "bank") as bank:
            job = bank.psi(peer="broker", table="risk_clients", peer_table="broker_risk", result_to="both")
            waiting = bank.wait(job["id"], timeout=30, states=["waiting_approval"])
            assert waiting["peer_decision"] == "pending"
        with Client.for_home(pair.home("broker"), pair.tokens["broker"]["data_owner"]) as owner:
            (approval,) = owner.approvals()
            assert approval["manifest"]["result_to"] == "both"


def test_operations_not_yet_available_say_so(nodes: Pair) -> None:
    with analyst(nodes, "bank") as bank:
        for op in ("binning", "evaluate"):
            with pytest.raises(InputError, match=f"operation '{op}' is not available"):
                bank.submit({"peer": "broker", "table": "risk_clients", "peer_table": "broker_risk",
                             "purpose": "x", "op": op})
        with pytest.raises(InputError, match="unknown psi parameter"):
            bank.psi(peer="broker", table="risk_clients", peer_table="broker_risk", colour="blue")
        with pytest.raises(InputError, match="unknown PSI protocol"):
            bank.psi(peer="broker", table="risk_clients", peer_table="broker_risk", protocol="magic")


def test_job_files_are_checked() -> None:
    spec = parse_spec("peer: broker\ntable: a\npeer_table: b\npurpose: monitoring\nop: psi\n")
    assert [s.id for s in spec.steps] == ["read", "psi", "write"]
    with pytest.raises(InputError, match="needs 'nope'"):
        parse_spec({"peer": "broker", "table": "a", "peer_table": "b", "purpose": "p",
                    "steps": [{"id": "psi", "op": "psi", "needs": ["nope"]}]})
    with pytest.raises(InputError, match="purpose"):
        parse_spec({"peer": "broker", "table": "a", "peer_table": "b", "op": "psi"})
    with pytest.raises(InputError, match="not valid YAML"):
        parse_spec("peer: [unclosed")


def test_pir_job_looks_keys_up_within_the_daily_quota(tmp_path: Path) -> None:
    pair = make_pair(tmp_path, range(0, 300), range(200, 600))
    add_grant(pair, "bank", ops=["pir"])
    add_grant(pair, "broker", ops=["pir"], max_queries_per_day=500)
    with NodeService(pair.home("bank")), NodeService(pair.home("broker")):
        with analyst(pair, "bank") as bank:
            job = bank.submit({"peer": "broker", "table": "risk_clients", "peer_table": "broker_risk",
                               "purpose": "group risk list lookup", "op": "pir"})
            done = bank.wait(job["id"], timeout=120)
            assert done["state"] == "succeeded", done
            pir = next(s for s in done["steps"] if s["id"] == "pir")["summary"]
            assert pir["keys"] == 300 and pir["found"] == 100
            arts = {a["name"]: a["id"] for a in bank.artifacts(job["id"])}
            answers = list(csv.DictReader(io.StringIO(bank.download(arts["pir-answers.csv"]).decode())))
            found = {r["key"]: r["score"] for r in answers if r["found"] == "yes"}
            assert sorted(found) == [f"C{i:08d}" for i in range(200, 300)]
            assert all(found[f"C{i:08d}"] == str(i % 97) for i in range(200, 300))  # the owner's records
            # 300 of the 500 keys a day are used: a second lookup of 300 keys is refused, and says why
            again = bank.wait(bank.rerun(job["id"])["id"], timeout=120)
            assert again["state"] == "failed" and "allows 500 lookups a day" in again["error"]
        with Client.for_home(pair.home("broker"), pair.tokens["broker"]["auditor"]) as auditor:
            events = [(r["action"], r["details"]["keys"]) for r in auditor.audit(action="pir.*")]
            assert events == [("pir.query", 300), ("pir.refused", 300)]


def test_concurrent_jobs_with_two_peers_keep_apart(tmp_path: Path) -> None:
    from riskshare.node import grants, registry
    from riskshare.node.context import NodeContext
    from riskshare.node.home import NodeHome

    from .conftest import free_port, write_ids

    pair = make_pair(tmp_path, range(0, 400), range(100, 500))
    sub = NodeHome.init(tmp_path / "sub", "sub", f"127.0.0.1:{free_port()}")
    bank = NodeHome.open(pair.home("bank"))
    bank.add_peer("sub", sub.config["node"]["listen"], sub.cert_pem)
    sub.add_peer("bank", bank.config["node"]["listen"], bank.cert_pem)
    write_ids(tmp_path / "sub.csv", "id", range(300, 700))
    ctx = NodeContext.open(sub.path)
    with ctx.db.session() as s:
        registry.add_table(ctx, s, "local:test", name="sub_risk", path=str(tmp_path / "sub.csv"), id_column="id")
    with ctx.db.session() as s:
        grants.add_grant(ctx, s, "local:test", table="sub_risk", peer="bank", ops=["psi"], purpose="group",
                         expires="2099-01-01")
    ctx.close()
    add_grant(pair, "broker")
    for peer in ("broker", "sub"):
        add_grant(pair, "bank", peer=peer)
    with NodeService(pair.home("bank")), NodeService(pair.home("broker")), NodeService(sub.path):
        with analyst(pair, "bank") as client:
            jobs = [client.psi(peer=p, table="risk_clients", peer_table=t)["id"]
                    for p, t in (("broker", "broker_risk"), ("sub", "sub_risk"), ("broker", "broker_risk"),
                                 ("sub", "sub_risk"))]
            sizes = []
            for job_id in jobs:
                done = client.wait(job_id, timeout=120)
                assert done["state"] == "succeeded", done
                sizes.append(next(s for s in done["steps"] if s["id"] == "psi")["summary"]["intersection"])
    assert sizes == [300, 100, 300, 100]


def test_psi_sum_and_unbalanced_psi_as_jobs(nodes: Pair) -> None:
    with analyst(nodes, "bank") as bank, analyst(nodes, "broker") as broker:
        # PSI-sum: the bank (receiver) learns the size and the total of the broker's scores over it
        job = bank.psi(peer="broker", table="risk_clients", peer_table="broker_risk", output_mode="sum",
                       value_column="score", protocol="ecdh")
        done = bank.wait(job["id"], timeout=120)
        assert done["state"] == "succeeded", done
        arts = {a["name"]: a["id"] for a in bank.artifacts(job["id"])}
        summary = json.loads(bank.download(arts["psi-summary.json"]))
        assert summary["intersection"] == 100 and summary["sum"] == sum(i % 97 for i in range(200, 300))
        assert "psi-rows.csv" not in arts  # nothing per member
        approvals_columns = broker.job(job["id"])
        assert approvals_columns["state"] == "succeeded"
        # unbalanced PSI: the broker serves a prepared set kept in its home; the bank keeps a copy
        for _ in range(2):
            job = bank.psi(peer="broker", table="risk_clients", peer_table="broker_risk", protocol="unbalanced")
            done = bank.wait(job["id"], timeout=120)
            assert done["state"] == "succeeded", done
            assert sorted(r["uscc"] for r in rows(bank, job["id"])) == [f"C{i:08d}" for i in range(200, 300)]
        for protocol in ("ot", "auto"):
            job = bank.psi(peer="broker", table="risk_clients", peer_table="broker_risk", protocol=protocol)
            done = bank.wait(job["id"], timeout=120)
            assert done["state"] == "succeeded", done
            assert len(rows(bank, job["id"])) == 100
    assert (nodes.home("broker") / "state" / "psi" / "sets" / "broker_risk" / "meta.json").is_file()
