"""``riskshare demo``: three nodes on loopback run the four scenarios through their real APIs.

The demo is what an operator, a data owner, an analyst and an auditor would do
at three institutions — a bank, a securities firm that is also the group's
head office, and one of the group's subsidiaries — compressed into one command:

1. write realistic synthetic data (:mod:`riskshare.scenarios.synth`);
2. create a node home for each institution (own key, certificate, SQLite
   database), pin certificates between the nodes that talk, add users;
3. start the three nodes as separate processes on loopback;
4. register tables and create the grants each scenario needs — all but one:
   the broker's cross-check against the bank's risk list is left to wait for
   the bank's data owner, who approves it;
5. run the scenarios as jobs from the job templates in :mod:`riskshare.scenarios`, the
   nightly monitoring job once per simulated day;
6. verify every node's audit chain, compare the results with the generator's
   ground truth, write ``summary.json`` and ``report.html``, stop the nodes.

Nothing here computes a result itself: every answer comes from a job's
artifacts, downloaded through the API by a user allowed to read it. The only
local computations are what one institution does with its own data (the
broker's split of its labelled clients, its broker-only baseline model and the
evaluation of scores it received).

The driver sits above the node layer (it starts nodes and talks to them through
the SDK, as the CLI does); the data and templates it uses live in
:mod:`riskshare.scenarios`, below.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import socket
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import yaml

from . import __version__
from .data import read_table, write_table
from .errors import ConfigError, InputError, RiskshareError
from .scenarios import report, synth

TEMPLATES = Path(__file__).parent / "scenarios"  # the job templates (*.yaml)
NODES = {  # name -> the institution it stands for
    "bank": "bank (commercial bank)",
    "broker": "broker (securities firm; the group's head office)",
    "sub": "sub (a subsidiary of the group)",
}
LINKS = [("bank", "broker"), ("broker", "sub")]  # who pins whom
ROLES = ("admin", "data_owner", "analyst", "auditor")
USER_NAMES = {"admin": "ops", "data_owner": "owner", "analyst": "analyst", "auditor": "auditor"}
EXPIRES = (dt.date.today() + dt.timedelta(days=365)).isoformat()


def load_template(name: str, **overrides: Any) -> dict[str, Any]:
    """A job template from this package as a dict, with top-level fields and step params overridden."""
    path = TEMPLATES / f"{name}.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    params = overrides.pop("params", None)
    spec.update(overrides)
    if params:
        for step in spec["steps"]:
            if step["op"] not in ("read", "write"):
                step["params"] = {**step.get("params", {}), **params}
    return spec


@dataclass
class Step:
    """One job as the report shows it."""

    name: str
    job: str
    protocol: str
    seconds: float
    bytes_sent: int
    bytes_received: int
    who_learns: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Demo:
    out: Path
    small: bool = False
    base_port: int | None = None
    echo: Callable[[str], None] = print
    cfg: synth.SynthConfig = field(init=False)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    procs: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cfg = synth.SynthConfig.small() if self.small else synth.SynthConfig()
        self.data = self.out / "data"
        self.homes = self.out / "nodes"

    # -- the whole run ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self._check_out()
        self.echo(f"riskshare demo ({'small' if self.small else 'full'}): {self.out}")
        with self._phase("synthetic data"):
            self.truth = synth.generate(self.data, self.cfg)
        summary: dict[str, Any] = {
            "version": __version__, "mode": "small" if self.small else "full",
            "started": dt.datetime.now().isoformat(timespec="seconds"), "config": self.truth["config"],
            "scenarios": {},
        }
        with ExitStack() as stack:
            stack.callback(self._stop_nodes)
            with self._phase("three nodes: homes, pinned certificates, users, start"):
                self._make_nodes()
                self._start_nodes()
            summary["nodes"] = self._node_info()
            with self._phase("tables and grants"):
                self._register()
            with self._phase("1.1 risk-list cross-check"):
                summary["scenarios"]["1.1"], summary["approval"] = self.scenario_1_1()
            with self._phase("1.2 high-risk-client model"):
                summary["scenarios"]["1.2"] = self.scenario_1_2()
            with self._phase("1.3 post-loan monitoring"):
                summary["scenarios"]["1.3"] = self.scenario_1_3()
            with self._phase("2.1 group risk list"):
                summary["scenarios"]["2.1"] = self.scenario_2_1()
            with self._phase("audit"):
                summary["audit"] = self._audit()
        summary["seconds"] = round(time.monotonic() - started, 1)
        summary["phases"] = self.timings
        summary["checks"] = check(summary, self.truth)
        (self.out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
        (self.out / "report.html").write_text(report.render(summary), encoding="utf-8")
        return summary

    def _check_out(self) -> None:
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise InputError(f"{self.out} already exists and is not empty", hint="choose a new --out directory")
        self.out.mkdir(parents=True, exist_ok=True)

    class _Phase:
        def __init__(self, demo: "Demo", name: str) -> None:
            self.demo, self.name = demo, name

        def __enter__(self) -> None:
            self.started = time.monotonic()
            self.demo.echo(f"  ▸ {self.name} …")

        def __exit__(self, exc_type: object, *_: object) -> None:
            seconds = time.monotonic() - self.started
            self.demo.timings[self.name] = round(seconds, 2)
            if exc_type is None:
                self.demo.echo(f"    done in {seconds:.1f} s")

    def _phase(self, name: str) -> "_Phase":
        return Demo._Phase(self, name)

    # -- nodes ---------------------------------------------------------------------------------------------
    def _ports(self) -> dict[str, int]:
        if self.base_port is None:
            return {name: _free_port() for name in NODES}
        ports = {name: self.base_port + i for i, name in enumerate(NODES)}
        for name, port in ports.items():
            if not _port_free(port):
                raise ConfigError(f"port {port} (for node '{name}') is already in use on 127.0.0.1",
                                  hint="stop what uses it, or choose another --base-port")
        return ports

    def _make_nodes(self) -> None:
        from .node import users
        from .node.context import NodeContext
        from .node.home import NodeHome

        ports = self._ports()
        homes = {name: NodeHome.init(self.homes / name, name, f"127.0.0.1:{port}") for name, port in ports.items()}
        for a, b in LINKS:
            homes[a].add_peer(b, homes[b].config["node"]["listen"], homes[b].cert_pem)
            homes[b].add_peer(a, homes[a].config["node"]["listen"], homes[a].cert_pem)
        for name in NODES:  # the operator's first step on each node: its users (as `riskshare user add` does)
            context = NodeContext.open(self.homes / name)
            try:
                with context.db.session() as s:
                    self.tokens[name] = {
                        role: users.add_user(context, s, "local:demo", USER_NAMES[role], role)[1] for role in ROLES
                    }
            finally:
                context.close()

    def _start_nodes(self) -> None:
        from .node.service import NodeProcess

        for name in NODES:
            proc = NodeProcess(self.homes / name, log_path=self.homes / f"{name}.log")
            self.procs[name] = proc
            try:
                proc.start(timeout=60)
            except RiskshareError as exc:
                raise ConfigError(f"node '{name}' failed to start: {exc.message}",
                                  hint=f"see {self.homes / (name + '.log')}") from None

    def _stop_nodes(self) -> None:
        for proc in self.procs.values():
            try:
                proc.stop()
            except Exception:  # noqa: BLE001 - stopping the others matters more than this one's error
                proc.kill()

    def client(self, node: str, role: str) -> Any:
        from .client import Client

        return Client.for_home(self.homes / node, self.tokens[node][role], timeout=120.0)

    def _node_info(self) -> dict[str, Any]:
        from .node.home import NodeHome

        out = {}
        for name, label in NODES.items():
            home = NodeHome.open(self.homes / name)
            out[name] = {"role": label, "address": home.config["node"]["listen"], "fingerprint": home.fingerprint,
                         "home": str(self.homes / name)}
        return out

    # -- tables and grants -----------------------------------------------------------------------------
    def _register(self) -> None:
        d = self.data
        self._split_broker_labels()
        self._write_lookup_tables()
        tables = {
            "bank": [
                ("loans", d / "bank" / "loans.csv", {}),
                ("bank_risk_list", d / "bank" / "risk_list.csv", {}),
                ("loan_features", d / "bank" / "features.csv", {}),
                ("recent_borrowers", d / "bank" / "recent_borrowers.csv", {}),
                ("pir_lookups", d / "bank" / "pir_lookups.csv", {}),
            ],
            "broker": [
                ("broker_clients", d / "broker" / "clients.csv", {}),
                ("broker_risk_list", d / "broker" / "risk_list.csv", {}),
                ("hr_train", d / "broker" / "hr_train.csv", {"label": "high_risk"}),
                ("hr_holdout", d / "broker" / "hr_holdout.csv", {"label": "high_risk"}),
                ("large_buys", d / "broker" / "large_buys.csv", {}),
                ("group_risk_list", d / "broker" / "group_risk_list.csv", {}),
            ],
            "sub": [
                ("single_key", d / "sub" / "single_key.csv", {}),
                ("lookup_keys", d / "sub" / "lookup_keys.csv", {}),
            ],
        }
        self._set_day(0)  # the nightly tables start with the first simulated day's exports
        for node, rows in tables.items():
            with self.client(node, "data_owner") as owner:
                for name, path, extra in rows:
                    owner.add_table(name, path=str(path), id_column="uscc", **extra)
        grants = [
            # (owner node, table, peer, ops, purpose, extra)
            ("broker", "broker_risk_list", "bank", ["psi", "pir"], "risk-list cross-check (scenario 1.1)",
             {"max_queries_per_day": 1000}),
            ("bank", "loans", "broker", ["psi"], "risk-list cross-check (scenario 1.1)", {}),
            ("bank", "pir_lookups", "broker", ["pir"], "risk-list cross-check (scenario 1.1)", {}),
            ("broker", "broker_clients", "bank", ["psi"], "risk-list cross-check (scenario 1.1)", {}),
            # deliberately missing: the bank's grant of bank_risk_list to the broker (waits for approval)
            ("bank", "loan_features", "broker", ["stats", "train", "predict"], "high-risk client model (scenario 1.2)", {}),
            ("broker", "hr_train", "bank", ["stats", "train"], "high-risk client model (scenario 1.2)", {}),
            ("broker", "hr_holdout", "bank", ["predict"], "high-risk client model (scenario 1.2)", {}),
            ("broker", "large_buys", "bank", ["psi"], "post-loan monitoring (scenario 1.3)",
             {"max_runs": 2 * self.cfg.days + 2, "result_to": "receiver"}),
            ("bank", "recent_borrowers", "broker", ["psi"], "post-loan monitoring (scenario 1.3)",
             {"max_runs": 2 * self.cfg.days + 2}),
            ("broker", "group_risk_list", "sub", ["pir"], "group risk list (scenario 2.1)",
             {"max_queries_per_day": 5000}),
            ("sub", "single_key", "broker", ["pir"], "group risk list (scenario 2.1)", {}),
            ("sub", "lookup_keys", "broker", ["pir"], "group risk list (scenario 2.1)", {}),
        ]
        for node, table, peer, ops, purpose, extra in grants:
            with self.client(node, "data_owner") as owner:
                owner.add_grant(table=table, peer=peer, ops=ops, purpose=purpose, expires=EXPIRES, **extra)

    def _split_broker_labels(self) -> None:
        """The broker keeps 30 % of its labelled clients aside (stratified) to evaluate models on."""
        train = read_table(self.data / "broker" / "train.csv", string_columns=["uscc"])
        y = train["high_risk"].to_numpy()
        rng = np.random.default_rng(42)
        holdout = np.zeros(len(y), dtype=bool)
        for label in (0, 1):
            idx = np.flatnonzero(y == label)
            holdout[rng.choice(idx, size=int(round(0.3 * len(idx))), replace=False)] = True
        write_table(train.filter(pa.array(~holdout)), self.data / "broker" / "hr_train.csv")
        write_table(train.filter(pa.array(holdout)), self.data / "broker" / "hr_holdout.csv")

    def _write_lookup_tables(self) -> None:
        keys_11 = list(self.truth["1.1"]["pir_lookups"])
        write_table(pa.table({"uscc": keys_11}), self.data / "bank" / "pir_lookups.csv")
        keys_21 = (self.data / "sub" / "lookup_keys.txt").read_text(encoding="utf-8").split()
        write_table(pa.table({"uscc": keys_21[:1]}), self.data / "sub" / "single_key.csv")
        write_table(pa.table({"uscc": keys_21}), self.data / "sub" / "lookup_keys.csv")

    def _set_day(self, index: int) -> str:
        """Nightly exports: the bank's recent borrowers and the broker's large buys of that day."""
        day = self.truth["1.3"]["days"][index]["day"]
        for src, dst in ((self.data / "bank" / f"recent_borrowers_{day}.csv", self.data / "bank" / "recent_borrowers.csv"),
                         (self.data / "broker" / f"large_buys_{day}.csv", self.data / "broker" / "large_buys.csv")):
            tmp = dst.with_suffix(".csv.part")
            tmp.write_bytes(src.read_bytes())
            tmp.replace(dst)
        return day

    # -- jobs ----------------------------------------------------------------------------------------------
    def _submit(self, node: str, spec: dict[str, Any]) -> str:
        with self.client(node, "analyst") as analyst:
            return analyst.submit(spec)["id"]

    def _wait(self, node: str, job_id: str, timeout: float = 1800.0) -> dict[str, Any]:
        with self.client(node, "analyst") as analyst:
            job = analyst.wait(job_id, timeout=timeout)
        if job["state"] != "succeeded":
            raise RiskshareError(f"job {job_id} on node '{node}' ended {job['state']}: {job.get('error') or ''}",
                                 hint=f"see `riskshare job logs --home {self.homes / node} {job_id}`")
        return job

    def _run(self, node: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self._wait(node, self._submit(node, spec))

    def _artifact(self, node: str, job_id: str, name: str) -> bytes:
        with self.client(node, "analyst") as analyst:
            for art in analyst.artifacts(job_id):
                if art["name"] == name:
                    return analyst.download(art["id"])
        raise RiskshareError(f"job {job_id} on node '{node}' has no artifact '{name}'")

    def _rows(self, node: str, job_id: str, name: str) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self._artifact(node, job_id, name).decode("utf-8"))))

    @staticmethod
    def _step(name: str, job: dict[str, Any], who_learns: str) -> Step:
        protocol_steps = [s for s in job["steps"] if s["op"] not in ("read", "write")]
        summary = protocol_steps[0].get("summary") or {} if protocol_steps else {}
        seconds = sum(float((s.get("summary") or {}).get("seconds") or 0) for s in protocol_steps)
        protocol = str(summary.get("protocol") or summary.get("algorithm") or protocol_steps[0]["op"])
        if summary.get("mode"):
            protocol += f" ({summary['mode']})"
        return Step(name, job["id"], protocol, round(seconds, 3), int(summary.get("bytes_sent") or 0),
                    int(summary.get("bytes_received") or 0), who_learns)

    def _commands(self, node: str, template: str) -> str:
        return f"riskshare job submit --home {self.homes / node} {TEMPLATES / (template + '.yaml')}"

    # -- scenario 1.1 --------------------------------------------------------------------------------------
    def scenario_1_1(self) -> tuple[dict[str, Any], dict[str, Any]]:
        steps: list[Step] = []
        job = self._run("bank", load_template("risk_list_psi", peer="broker", table="loans",
                                              peer_table="broker_risk_list"))
        bank_overlap = sorted(r["uscc"] for r in self._rows("bank", job["id"], "psi-rows.csv"))
        steps.append(self._step("bank's clients × broker's risk list", job,
                                "bank: which of its clients are listed; broker: the size of the bank's list"))
        self.echo(f"    bank: {len(bank_overlap)} of its clients are on the broker's risk list")

        # The broker's cross-check against the bank's list: no grant covers it, so it waits for approval.
        spec = load_template("risk_list_psi", peer="bank", table="broker_clients", peer_table="bank_risk_list",
                             purpose="risk-list cross-check (scenario 1.1, the broker's side)")
        job_id = self._submit("broker", spec)
        asked = time.monotonic()
        with self.client("broker", "analyst") as analyst:
            waiting = analyst.wait(job_id, timeout=120, states=["waiting_approval", "failed", "refused", "denied"])
        if waiting["state"] != "waiting_approval":
            raise RiskshareError(f"the broker's cross-check did not wait for approval (it is {waiting['state']})")
        with self.client("bank", "data_owner") as owner:
            pending = [a for a in owner.approvals() if a["job_id"] == job_id]
            if not pending:
                raise RiskshareError("the bank's node shows no pending approval for the broker's request")
            manifest = pending[0]["manifest"]
            self.echo(f"    bank's data owner sees a pending request: {pending[0]['ops']} on "
                      f"'{pending[0]['table']}' for '{pending[0]['peer']}', purpose “{manifest['purpose']}” — approves")
            owner.approve(pending[0]["id"], "agreed with the broker's compliance officer")
        job = self._wait("broker", job_id)
        approval = {"job": job_id, "node": "bank", "operation": "psi", "table": "bank_risk_list",
                    "requested_by": "broker", "approved_by": "the bank's data owner",
                    "waited_seconds": round(time.monotonic() - asked, 2), "state": "approved"}
        broker_overlap = sorted(r["uscc"] for r in self._rows("broker", job_id, "psi-rows.csv"))
        steps.append(self._step("broker's clients × bank's risk list (after approval)", job,
                                "broker: which of its clients are listed; bank: the size of the broker's list"))
        self.echo(f"    broker: {len(broker_overlap)} of its clients are on the bank's risk list")

        job = self._run("bank", load_template("risk_list_pir", peer="broker", table="pir_lookups",
                                              peer_table="broker_risk_list"))
        answers = self._pir_answers("bank", job["id"])
        steps.append(self._step("bank looks up clients in the broker's list", job,
                                "bank: the records it asked for; broker: that 8 keys were asked"))
        self.echo(f"    PIR: {sum(1 for v in answers.values() if v)} of {len(answers)} looked-up clients are listed")
        t = self.truth["1.1"]
        result = {
            "bank_clients": t["bank_clients"], "broker_risk_list": t["broker_risk_list"],
            "broker_clients": t["broker_clients"], "bank_risk_list": t["bank_risk_list"],
            "bank_overlap": len(bank_overlap), "broker_overlap": len(broker_overlap),
            "bank_clients_on_broker_list": bank_overlap, "broker_clients_on_bank_list": broker_overlap,
            "pir": answers, "steps": [s.as_dict() for s in steps],
            "commands": [self._commands("bank", "risk_list_psi"), self._commands("bank", "risk_list_pir")],
        }
        return result, approval

    def _pir_answers(self, node: str, job_id: str) -> dict[str, dict[str, str] | None]:
        rows = self._rows(node, job_id, "pir-answers.csv")
        out: dict[str, dict[str, str] | None] = {}
        for r in rows:
            key = r.pop("key", None) or r.pop("uscc")
            found = r.pop("found", "no") in ("yes", "true", "True", "1")
            out[key] = {k: v for k, v in r.items() if v != ""} if found else None
        return out

    # -- scenario 1.2 --------------------------------------------------------------------------------------
    def scenario_1_2(self) -> dict[str, Any]:
        steps: list[Step] = []
        base = {"peer": "bank", "peer_table": "loan_features"}
        job = self._run("broker", load_template("high_risk_iv", table="hr_train", **base))
        iv_doc = json.loads(self._artifact("broker", job["id"], "iv.json"))
        steps.append(self._step("IV of both parties' features", job,
                                "broker: IV and per-bin counts of the bank's features; bank: nothing about labels"))
        iv = _iv_by_party(iv_doc)
        sb_params = {"algorithm": "secureboost", "n_trees": 30 if not self.small else 15, "max_depth": 3,
                     "learning_rate": 0.3, "max_bin": 32}
        models: dict[str, dict[str, Any]] = {}
        holdout = read_table(self.data / "broker" / "hr_holdout.csv", string_columns=["uscc"])
        for key, label, params in (("federated_lr", "federated LR (broker + bank)", {"algorithm": "lr"}),
                                   ("federated_secureboost", "federated SecureBoost (broker + bank)", sb_params)):
            train_job = self._run("broker", load_template("high_risk_train", table="hr_train", params=params, **base))
            steps.append(self._step(f"train {label}", train_job, "each keeps its own part of the model"))
            score_job = self._run("broker", load_template("high_risk_predict", table="hr_holdout",
                                                          params={"model_job": train_job["id"]}, **base))
            steps.append(self._step(f"score held-out rows ({label})", score_job, "broker: the scores; bank: nothing"))
            scores = {r["uscc"]: float(r["score"]) for r in self._rows("broker", score_job["id"], "scores.csv")}
            train_summary = next(s for s in train_job["steps"] if s["op"] == "train")["summary"] or {}
            models[key] = {"label": label, "seconds": float(train_summary.get("seconds") or 0),
                           "rows_train": train_summary.get("rows"), "scores": scores}
        # The broker alone: logistic regression on its own features, scored on the same held-out rows.
        models["broker_only_lr"] = {"label": "broker-only LR (its own features)", **self._broker_only(holdout)}
        scored = set.intersection(*(set(m["scores"]) for m in models.values()))
        ids = holdout["uscc"].to_pylist()
        y_all = dict(zip(ids, holdout["high_risk"].to_pylist()))
        rows = sorted(scored)
        y = np.array([y_all[k] for k in rows])
        for m in models.values():
            scores = m.pop("scores")
            m.update(_evaluate(y, np.array([scores[k] for k in rows])))
            m["rows_test"] = len(rows)
        fed, alone = models["federated_lr"], models["broker_only_lr"]
        headline = (f"With the bank's features the broker's high-risk model reaches AUC {fed['auc']:.3f} "
                    f"(KS {fed['ks']:.3f}) on {len(rows)} held-out clients, against {alone['auc']:.3f} "
                    f"(KS {alone['ks']:.3f}) on its own data — +{fed['auc'] - alone['auc']:.3f} AUC. "
                    f"SecureBoost: AUC {models['federated_secureboost']['auc']:.3f}.")
        self.echo(f"    {headline}")
        return {"models": models, "iv": iv, "headline": headline, "steps": [s.as_dict() for s in steps],
                "commands": [self._commands("broker", t) for t in ("high_risk_iv", "high_risk_train", "high_risk_predict")]}

    def _broker_only(self, holdout: pa.Table) -> dict[str, Any]:
        from .ml.lr import fit_plain_logistic

        train = read_table(self.data / "broker" / "hr_train.csv", string_columns=["uscc"])
        features = [c for c in train.column_names if c not in ("uscc", "high_risk")]
        X = np.column_stack([train[c].to_numpy().astype(float) for c in features])
        mean, std = X.mean(axis=0), X.std(axis=0) + 1e-12
        started = time.monotonic()
        w = fit_plain_logistic((X - mean) / std, train["high_risk"].to_numpy().astype(float))
        Xh = (np.column_stack([holdout[c].to_numpy().astype(float) for c in features]) - mean) / std
        score = 1 / (1 + np.exp(-(Xh @ w[:-1] + w[-1])))
        return {"seconds": round(time.monotonic() - started, 3), "rows_train": train.num_rows,
                "scores": dict(zip(holdout["uscc"].to_pylist(), score.tolist()))}

    # -- scenario 1.3 --------------------------------------------------------------------------------------
    def scenario_1_3(self) -> dict[str, Any]:
        with self.client("bank", "analyst") as analyst:
            hits = analyst.submit(load_template("monitoring_hits"))
            total = analyst.submit(load_template("monitoring_sum"))
        if "schedule" not in hits or "schedule" not in total:
            raise RiskshareError("the node did not create schedules for the nightly monitoring jobs")
        schedules = [hits["schedule"]["id"], total["schedule"]["id"]]
        days, steps, flagged_any = [], [], {}
        for index in range(self.cfg.days):
            day = self._set_day(index)
            with self.client("bank", "analyst") as analyst:
                hit_job = analyst.run_schedule(schedules[0])["id"]
                sum_job = analyst.run_schedule(schedules[1])["id"]
            hit = self._wait("bank", hit_job)
            tot = self._wait("bank", sum_job)
            flagged = sorted(r["uscc"] for r in self._rows("bank", hit_job, "psi-rows.csv"))
            total_doc = json.loads(self._artifact("bank", sum_job, "psi-summary.json"))
            for key in flagged:
                flagged_any.setdefault(key, day)
            days.append({"day": day, "flagged": flagged, "flagged_count": len(flagged),
                         "flagged_amount": float(total_doc["sum"]), "sum_count": int(total_doc["intersection"]),
                         "recent_borrowers": int(next(s for s in hit["steps"] if s["op"] == "psi")["summary"]["own_ids"]),
                         "job": hit_job})
            steps.append(self._step(f"night of {day}: hits", hit, "bank: flagged borrowers; broker: list size"))
            steps.append(self._step(f"night of {day}: total", tot, "bank: count and sum only; broker: list size"))
            self.echo(f"    {day}: {len(flagged)} recent borrowers bought ≥ "
                      f"{self.cfg.large_buy_threshold:,.0f} CNY, {float(total_doc['sum']):,.2f} CNY in all")
        target = self._new_target(flagged_any)
        return {"threshold": self.cfg.large_buy_threshold, "days": days, "new_target": target,
                "schedules": schedules, "steps": [s.as_dict() for s in steps],
                "commands": [self._commands("bank", "monitoring_hits"), self._commands("bank", "monitoring_sum"),
                             f"riskshare schedule run --home {self.homes / 'bank'} --id {schedules[0]}"]}

    def _new_target(self, flagged: dict[str, str]) -> str:
        """The bank turns the monitoring hits into a label for its own models: a new registered table."""
        features = read_table(self.data / "bank" / "features.csv", string_columns=["uscc"])
        ids = features["uscc"].to_pylist()
        flag = pa.array([1 if k in flagged else 0 for k in ids], type=pa.int8())
        path = write_table(features.append_column("bought_big_after_loan", flag),
                           self.data / "bank" / "monitoring_target.csv")
        with self.client("bank", "data_owner") as owner:
            owner.add_table("monitoring_target", path=str(path), id_column="uscc", label="bought_big_after_loan")
        return "monitoring_target"

    # -- scenario 2.1 --------------------------------------------------------------------------------------
    def scenario_2_1(self) -> dict[str, Any]:
        steps: list[Step] = []
        base = {"peer": "broker", "peer_table": "group_risk_list"}
        single = self._run("sub", load_template("group_risk_pir", table="single_key", params={"mode": "pir"}, **base))
        one = self._pir_answers("sub", single["id"])
        steps.append(self._step("one key (SimplePIR mode)", single, "sub: the record; head office: one key was asked"))
        batch = self._run("sub", load_template("group_risk_pir", table="lookup_keys", **base))
        answers = self._pir_answers("sub", batch["id"])
        steps.append(self._step(f"batch of {len(answers)} keys (cached mode)", batch,
                                f"sub: the records; head office: that {len(answers)} keys were asked"))
        key = next(iter(one))
        self.echo(f"    one key: {'found' if one[key] else 'not found'}; batch: "
                  f"{sum(1 for v in answers.values() if v)} of {len(answers)} found")
        return {"single": {"key": key, "record": one[key]}, "batch": answers, "steps": [s.as_dict() for s in steps],
                "commands": [self._commands("sub", "group_risk_pir")]}

    # -- audit ---------------------------------------------------------------------------------------------
    def _audit(self) -> dict[str, Any]:
        out = {}
        for node in NODES:
            with self.client(node, "auditor") as auditor:
                verdict = auditor.audit_verify()
                records = auditor.audit(limit=100000)
            actions: dict[str, int] = {}
            for r in records:
                actions[r["action"]] = actions.get(r["action"], 0) + 1
            out[node] = {"verified": bool(verdict.get("ok")), "records": len(records), "actions": actions,
                         "head": verdict.get("head")}
            self.echo(f"    {node}: {len(records)} audit records, chain and signatures "
                      f"{'verified' if verdict.get('ok') else 'FAILED: ' + str(verdict)}")
        return out


# -- helpers -------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _iv_by_party(doc: dict[str, Any]) -> dict[str, dict[str, float]]:
    """IV per feature, grouped by the party that holds it."""
    out: dict[str, dict[str, float]] = {"broker": {}, "bank": {}}
    for row in doc.get("features", []):
        party = "bank" if row.get("owner") == "host" else "broker"
        out[party][row["name"]] = round(float(row["iv"]), 4)
    return out


def _evaluate(y: np.ndarray, score: np.ndarray, points: int = 60) -> dict[str, Any]:
    from .ml import metrics

    roc = metrics.roc_curve(y, score)
    idx = np.unique(np.linspace(0, len(roc["fpr"]) - 1, points).astype(int))
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    share = (roc["tpr"] * positives + roc["fpr"] * negatives) / len(y)
    return {
        "auc": round(metrics.auc(y, score), 4), "ks": round(metrics.ks(y, score), 4),
        "roc": [[round(float(roc["fpr"][i]), 4), round(float(roc["tpr"][i]), 4)] for i in idx],
        "ks_curve": [[round(float(share[i]), 4), round(float(roc["tpr"][i]), 4), round(float(roc["fpr"][i]), 4)]
                     for i in idx],
        "deciles": metrics.deciles(y, score),
    }


def check(summary: dict[str, Any], truth: dict[str, Any]) -> dict[str, bool]:
    """The demo's results against the generator's ground truth."""
    sc = summary.get("scenarios", {})
    out: dict[str, bool] = {}
    if "1.1" in sc:
        s, t = sc["1.1"], truth["1.1"]
        out["1.1 bank's overlap with the broker's list is exact"] = s["bank_clients_on_broker_list"] == t["bank_clients_on_broker_list"]
        out["1.1 broker's overlap with the bank's list is exact"] = s["broker_clients_on_bank_list"] == t["broker_clients_on_bank_list"]
        out["1.1 PIR answers are exact"] = _same_records(s["pir"], t["pir_lookups"])
    if "1.2" in sc:
        m = sc["1.2"]["models"]
        out["1.2 federated AUC beats broker-only AUC"] = m["federated_lr"]["auc"] > m["broker_only_lr"]["auc"]
    if "1.3" in sc:
        got = {d["day"]: d for d in sc["1.3"]["days"]}
        out["1.3 monitoring hits are exact"] = all(got[d["day"]]["flagged"] == d["flagged"] for d in truth["1.3"]["days"])
        out["1.3 monitoring totals are exact"] = all(
            abs(got[d["day"]]["flagged_amount"] - d["flagged_amount"]) < 0.005 and got[d["day"]]["sum_count"] == d["flagged_count"]
            for d in truth["1.3"]["days"])
    if "2.1" in sc:
        s, t = sc["2.1"], truth["2.1"]
        out["2.1 single PIR answer is exact"] = _same_records({s["single"]["key"]: s["single"]["record"]},
                                                              {t["single_key"]: t["single_answer"]})
        out["2.1 batch PIR answers are exact"] = _same_records(s["batch"], t["batch"])
    approval = summary.get("approval") or {}
    out["the uncovered request waited for approval and then ran"] = approval.get("state") == "approved"
    audit = summary.get("audit") or {}
    out["audit chains verify on all three nodes"] = len(audit) == 3 and all(a["verified"] for a in audit.values())
    return out


def _same_records(got: dict[str, Any], want: dict[str, Any]) -> bool:
    if set(got) != set(want):
        return False
    for key, record in want.items():
        if (record is None) != (got[key] is None):
            return False
        if record is not None and any(str(got[key].get(k)) != str(v) for k, v in record.items()):
            return False
    return True
