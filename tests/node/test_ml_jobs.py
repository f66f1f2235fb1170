"""Vertical federated learning as node jobs (runs where riskshare.ml is installed)."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

pytest.importorskip("riskshare.ml.jobs")

from riskshare.client import Client  # noqa: E402
from riskshare.node import grants, registry, users  # noqa: E402
from riskshare.node.context import NodeContext  # noqa: E402
from riskshare.node.home import NodeHome  # noqa: E402
from riskshare.node.service import NodeService  # noqa: E402

from .conftest import free_port  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "data" / "fate"


@pytest.mark.slow
def test_train_iv_and_predict_jobs(tmp_path: Path) -> None:
    broker = NodeHome.init(tmp_path / "broker", "broker", f"127.0.0.1:{free_port()}")  # holds the label: guest
    bank = NodeHome.init(tmp_path / "bank", "bank", f"127.0.0.1:{free_port()}")
    broker.add_peer("bank", bank.config["node"]["listen"], bank.cert_pem)
    bank.add_peer("broker", broker.config["node"]["listen"], broker.cert_pem)
    shutil.copy(DATA / "breast_hetero_guest.csv", tmp_path / "guest.csv")
    shutil.copy(DATA / "breast_hetero_host.csv", tmp_path / "host.csv")
    tokens = {}
    for home, peer, path, label in ((broker, "bank", "guest.csv", "y"), (bank, "broker", "host.csv", None)):
        ctx = NodeContext.open(home.path)
        with ctx.db.session() as s:
            _, tokens[home.name] = users.add_user(ctx, s, "local:test", "ana", "analyst")
            registry.add_table(ctx, s, "local:test", name="clients", path=str(tmp_path / path), id_column="id",
                               label=label)
            grants.add_grant(ctx, s, "local:test", table="clients", peer=peer, ops=["train", "predict", "stats"],
                             purpose="high-risk client model", expires="2099-01-01", result_to="both")
        ctx.close()
    with NodeService(broker.path), NodeService(bank.path):
        with Client.for_home(broker.path, tokens["broker"]) as analyst:
            base = {"peer": "bank", "table": "clients", "peer_table": "clients", "purpose": "model"}
            iv = analyst.wait(analyst.submit({**base, "op": "iv"})["id"], timeout=300)
            assert iv["state"] == "succeeded", iv
            train = analyst.wait(analyst.submit({**base, "steps": [
                {"id": "read", "op": "read"},
                {"id": "train", "op": "train", "needs": ["read"], "params": {"algorithm": "lr"}},
                {"id": "predict", "op": "predict", "needs": ["train"]}]})["id"], timeout=600)
            assert train["state"] == "succeeded", train
            names = {a["name"]: a["id"] for a in analyst.artifacts(train["id"])}
            assert {"model-model.json", "model-manifest.json", "scores.csv"} <= set(names)
            scores = list(csv.DictReader(io.StringIO(analyst.download(names["scores.csv"]).decode())))
            assert len(scores) == 569 and all(0.0 <= float(r["score"]) <= 1.0 for r in scores)
            later = analyst.wait(analyst.submit({**base, "op": "predict",
                                                 "params": {"model_job": train["id"]}})["id"], timeout=300)
            assert later["state"] == "succeeded", later
        with Client.for_home(bank.path, tokens["bank"]) as host:
            assert "scores.csv" not in {a["name"] for a in host.artifacts(train["id"])}  # scores go to the guest
