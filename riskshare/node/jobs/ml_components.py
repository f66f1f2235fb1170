"""Vertical federated learning as job steps: ``train``, ``predict`` and ``iv`` over ``riskshare.ml.jobs``.

The side whose registered table has a label is the *guest*, the other the
*host* (exactly one side may have one). Rows are aligned by PSI inside each
step, as in the ``riskshare train`` command; each node keeps only its own part
of the model, as artifacts of the training job on that node. A ``predict``
step scores with the model of a training step in the same job, or of an
earlier training job named by ``params.model_job`` (both nodes hold their part
under the same job id); the scores go to the guest only.

These components register themselves only when ``riskshare.ml`` is installed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ...errors import InputError
from .components import Component, StepContext, StepResult, register
from .state import JOB_ID_RE

_ALGORITHMS = ("lr", "secureboost")


def _role(ctx: StepContext) -> str:
    return "guest" if ctx.table.label else "host"


def _scalar_params(op: str, params: dict[str, Any], allowed_extra: set[str]) -> dict[str, Any]:
    for key, value in params.items():
        if key in allowed_extra:
            continue
        if not isinstance(value, (str, int, float, bool)) or isinstance(value, str) and len(value) > 200:
            raise InputError(f"{op} parameter '{key}' must be a short string, a number or true/false")
    return params


def _party_table(ctx: StepContext, *, features: list[str] | None = None, with_label: bool = True) -> Any:
    """This node's registered table as a ``riskshare.ml`` PartyTable (read now, from where it lives)."""
    from ...ml.data import load_table

    source = ctx.table
    label = source.label if with_label else None
    wanted = features if features is not None else (list(source.features) or None)
    if source.kind == "file":
        return load_table(source.location, source.id_column, label=label, features=wanted,
                          delimiter=source.options.get("delimiter"), encoding=source.options.get("encoding", "auto"),
                          require_label=bool(label))
    # a query over the institution's database: through a private file in the job's directory
    path = ctx.workdir / f".{ctx.step_id}-input.parquet"
    try:
        pq.write_table(source.read(), path)
        return load_table(path, source.id_column, label=label, features=wanted, require_label=bool(label))
    finally:
        path.unlink(missing_ok=True)


def _traffic(ctx: StepContext, before: dict[str, int]) -> dict[str, int]:
    """Bytes this step sent and received over the link (PSI alignment included)."""
    after = ctx.link.stats.total()
    return {"bytes_sent": after["bytes_sent"] - before["bytes_sent"],
            "bytes_received": after["bytes_received"] - before["bytes_received"]}


def _model_dir(ctx: StepContext) -> Path:
    for value in ctx.inputs.values():
        if isinstance(value, dict) and "model_dir" in value:
            return Path(value["model_dir"])
    model_job = ctx.params.get("model_job")
    if not isinstance(model_job, str) or not JOB_ID_RE.match(model_job):
        raise InputError("predict needs a train step in the same job, or params.model_job (a training job's id)")
    directory = ctx.workdir.parent / model_job / "model"
    if not directory.is_dir():
        raise InputError(f"this node holds no model from job {model_job}", hint="name a training job both nodes ran")
    return directory


class TrainComponent(Component):
    """Train a vertical model (``algorithm``: lr or secureboost; other params go to the trainer)."""

    op = "train"
    grant_op = "train"
    talks_to_peer = True

    def check_params(self, params: dict[str, Any], spec: Any) -> dict[str, Any]:
        algorithm = params.get("algorithm", "lr")
        if algorithm not in _ALGORITHMS:
            raise InputError(f"unknown algorithm '{algorithm}'", hint=f"choose one of: {', '.join(_ALGORITHMS)}")
        return {**_scalar_params("train", params, set()), "algorithm": algorithm}

    def columns(self, table: Any, params: dict[str, Any]) -> list[str]:
        return [table.id_column, *([table.label] if table.label else []), *table.features]

    def run(self, ctx: StepContext) -> StepResult:
        from ...ml import jobs as ml_jobs

        params = dict(ctx.params)
        algorithm = params.pop("algorithm", "lr")
        role = _role(ctx)
        table = _party_table(ctx)
        started, before = time.monotonic(), ctx.link.stats.total()
        part, rows, summary = ml_jobs.train(ctx.link, ctx.peer, role, algorithm, table, params)
        version = ml_jobs.save(ctx.workdir / "model", role, algorithm, part, peer=ctx.peer, summary=summary)
        for name in ("model.json", "manifest.json"):
            ctx.add_artifact(f"model-{name}", Path(version) / name, "application/json")
        return StepResult({"algorithm": algorithm, "role": role, "rows": summary.get("rows"),
                           "features": len(table.feature_names), "seconds": round(time.monotonic() - started, 3),
                           **_traffic(ctx, before)},
                          {"model_dir": str(ctx.workdir / "model")})


class PredictComponent(Component):
    """Score the rows both nodes hold with a trained model; the guest gets ``scores.csv``."""

    op = "predict"
    grant_op = "predict"
    talks_to_peer = True

    def check_params(self, params: dict[str, Any], spec: Any) -> dict[str, Any]:
        return _scalar_params("predict", params, set())

    def columns(self, table: Any, params: dict[str, Any]) -> list[str]:
        return [table.id_column, *table.features]

    def run(self, ctx: StepContext) -> StepResult:
        import pyarrow as pa

        from ...data import write_table
        from ...ml import jobs as ml_jobs

        role = _role(ctx)
        manifest, part = ml_jobs.load(_model_dir(ctx), role)
        table = _party_table(ctx, features=list(part.feature_names), with_label=False)
        started, before = time.monotonic(), ctx.link.stats.total()
        scores, rows = ml_jobs.predict(ctx.link, ctx.peer, role, manifest, part, table)
        if scores is not None:
            path = write_table(pa.table({ctx.table.id_column: pa.array(rows.raw_ids, type=pa.string()),
                                         "score": pa.array(scores, type=pa.float64())}), ctx.workdir / "scores.csv")
            ctx.add_artifact("scores.csv", path, "text/csv", rows=len(scores))
        return StepResult({"role": role, "rows": len(rows.ids), "model": manifest.get("model_id"),
                           "scores_here": scores is not None, "seconds": round(time.monotonic() - started, 3),
                           **_traffic(ctx, before)}, None)


class IvComponent(Component):
    """WOE and information value of both nodes' features (labels stay encrypted); report as ``iv.json``."""

    op = "iv"
    grant_op = "stats"
    talks_to_peer = True

    def check_params(self, params: dict[str, Any], spec: Any) -> dict[str, Any]:
        return _scalar_params("iv", params, set())

    def columns(self, table: Any, params: dict[str, Any]) -> list[str]:
        return [table.id_column, *([table.label] if table.label else []), *table.features]

    def run(self, ctx: StepContext) -> StepResult:
        from ...ml import jobs as ml_jobs

        role = _role(ctx)
        table = _party_table(ctx)
        started, before = time.monotonic(), ctx.link.stats.total()
        report, rows = ml_jobs.information_value(ctx.link, ctx.peer, role, table, dict(ctx.params))
        path = ctx.workdir / "iv.json"
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(report.to_json(), indent=2))
        tmp.replace(path)
        ctx.add_artifact("iv.json", path, "application/json")
        selected = sum(1 for row in report.table() if row.get("selected"))
        return StepResult({"role": role, "rows": len(rows.ids), "features_here": len(table.feature_names),
                           "selected": selected, "seconds": round(time.monotonic() - started, 3),
                           **_traffic(ctx, before)}, None)


def register_all() -> None:
    for component in (TrainComponent(), PredictComponent(), IvComponent()):
        register(component)
