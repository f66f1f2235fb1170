"""One party's side of a whole VFL job — align, train or score, save — as plain functions over a Link.

The CLI calls these; the node service can run them as jobs (it supplies the
link, the table and where to save). Nothing here knows about processes,
terminals or HTTP.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ParameterMismatch
from ..net import Link
from . import lr, model as model_store, secureboost, woe
from .common import TrainLog, check_role
from .data import PartyTable, align

ALGORITHMS = {"lr": lr, "secureboost": secureboost}
_MODEL_CLASSES = {
    ("lr", "guest"): lr.LRGuestModel, ("lr", "host"): lr.LRHostModel,
    ("secureboost", "guest"): secureboost.SecureBoostGuestModel,
    ("secureboost", "host"): secureboost.SecureBoostHostModel,
}


def check_algorithm(algorithm: str) -> Any:
    if algorithm not in ALGORITHMS:
        raise InputError(f"unknown algorithm '{algorithm}'", hint=f"choose one of: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[algorithm]


def train(
    link: Link, peer: str, role: str, algorithm: str, table: PartyTable, params: dict[str, Any] | None = None,
    *, log: TrainLog | None = None, aligned: bool = False,
) -> tuple[Any, PartyTable, dict[str, Any]]:
    """Align (unless ``aligned``) and train this party's side; return (model part, aligned table, summary)."""
    check_role(role)
    proto = check_algorithm(algorithm)
    if role == "guest" and table.y is None:
        raise InputError("the guest's table needs a label column (--label)")
    rows = table if aligned else align(link, peer, role, table)
    log = log or TrainLog()
    log(step="aligned", rows=len(rows.ids))
    if role == "guest":
        part = proto.train_guest(link, peer, rows.X, rows.y, params, feature_names=rows.feature_names, log=log)
    else:
        part = proto.train_host(link, peer, rows.X, params, feature_names=rows.feature_names, log=log)
    summary: dict[str, Any] = {"rows": len(rows.ids), "features": rows.feature_names,
                               "seconds": round(log.history[-1]["elapsed_s"], 2) if log.history else None}
    return part, rows, summary


def save(model_out: str | os.PathLike[str], role: str, algorithm: str, part: Any, *, peer: str,
         summary: dict[str, Any]) -> Path:
    """Write this party's part as a new model version (atomically)."""
    return model_store.save(model_out, role=role, algorithm=algorithm, model_id=part.model_id,
                            payload=part.to_json(), meta={"peer": peer, **summary})


def load(path: str | os.PathLike[str], role: str) -> tuple[dict[str, Any], Any]:
    manifest, payload = model_store.load(path, role=role)
    algorithm = manifest.get("algorithm")
    cls = _MODEL_CLASSES.get((algorithm, role))
    if cls is None:
        raise InputError(f"{path}: unknown model algorithm {algorithm!r}")
    try:
        return manifest, cls.from_json(payload)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: the model file is malformed ({exc})") from None


def predict(link: Link, peer: str, role: str, manifest: dict[str, Any], part: Any, table: PartyTable,
            *, aligned: bool = False) -> tuple[np.ndarray | None, PartyTable]:
    """Align and score; the guest gets probabilities for the aligned rows, the host gets None."""
    check_role(role)
    algorithm = manifest["algorithm"]
    proto = check_algorithm(algorithm)
    if table.feature_names != list(part.feature_names):
        raise ParameterMismatch(
            f"the input's feature columns {table.feature_names} differ from the model's {list(part.feature_names)}",
            hint="score a file with the same columns (in the same order) as the training file",
        )
    rows = table if aligned else align(link, peer, role, table)
    if role == "guest":
        return proto.predict_guest(link, peer, part, rows.X), rows
    proto.predict_host(link, peer, part, rows.X)
    return None, rows


def information_value(link: Link, peer: str, role: str, table: PartyTable, params: dict[str, Any] | None = None,
                      *, aligned: bool = False) -> tuple[woe.IVReport, PartyTable]:
    check_role(role)
    rows = table if aligned else align(link, peer, role, table)
    if role == "guest":
        if rows.y is None:
            raise InputError("the guest's table needs a label column (--label)")
        return woe.iv_guest(link, peer, rows.X, rows.y, params, feature_names=rows.feature_names), rows
    return woe.iv_host(link, peer, rows.X, params, feature_names=rows.feature_names), rows
