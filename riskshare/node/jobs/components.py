"""The components a job's steps run, and the registry that operations plug into.

A component is a small adapter between the node and a protocol: it reads what
the step needs from the node (its own table, earlier steps' outputs), calls
the protocol function with the job's link, and hands back a summary (counts,
never data) and a value for later steps. Protocol code never learns about
jobs; the node never contains crypto.

To add an operation (PIR, training, prediction), write a :class:`Component`
subclass and :func:`register` it; see ``docs/node.md`` ("Adding an operation").
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ...data import PreparedIds, prepare_ids, write_table
from ...errors import InputError
from ...net import Link
from ..registry import TableSource


@dataclass
class StepContext:
    """What a component may use while it runs one step of one job on this node."""

    job_id: str
    step_id: str
    params: dict[str, Any]
    manifest: dict[str, Any]
    peer: str                     # the peer's name as this node pinned it
    protocol_role: str            # this node's role in the protocol: receiver | sender
    result_to: str                # receiver | both
    link: Link                    # scoped to this job, attempt and step
    table: TableSource            # this node's table for the job
    inputs: dict[str, Any]        # values of the steps this one needs
    workdir: Path                 # private scratch space of this job
    check: Callable[[], None]     # raises if the job was cancelled or its grant revoked
    log: Callable[[str], None]
    add_artifact: Callable[..., None]  # (name, path, media_type, rows=None)
    state_dir: Path | None = None  # this node's lasting protocol state (prepared PIR tables, caches)
    quota: Any = None              # the query policy of the grant this job runs under (PIR)


@dataclass
class StepResult:
    summary: dict[str, Any] = field(default_factory=dict)  # counts and names only: it goes to logs and audit
    value: Any = None


class Component:
    """Base class. ``grant_op`` names the grant operation a step needs (None: a local step)."""

    op: str = ""
    grant_op: str | None = None
    talks_to_peer: bool = False

    def check_params(self, params: dict[str, Any], spec: Any) -> dict[str, Any]:
        return params

    def columns(self, table: TableSource, params: dict[str, Any]) -> list[str]:
        """The columns of this node's table the step reads (shown to approvers)."""
        return [table.id_column]

    def run(self, ctx: StepContext) -> StepResult:
        raise NotImplementedError

    # Resume support: a protocol step whose result is saved can be skipped when a job resumes.
    def save(self, value: Any, directory: Path) -> bool:
        return False

    def load(self, directory: Path, ctx: StepContext) -> Any:
        return None


COMPONENTS: dict[str, Component] = {}

# Operations another package brings; named here so that a job using them gets a clear message.
PLANNED = {
    "train": "vertical training arrives with riskshare.ml",
    "predict": "vertical prediction arrives with riskshare.ml",
    "binning": "binning / WOE / IV arrive with riskshare.ml",
    "evaluate": "evaluation arrives with riskshare.ml",
}


def register(component: Component) -> Component:
    COMPONENTS[component.op] = component
    return component


def get_component(op: str) -> Component:
    if op in COMPONENTS:
        return COMPONENTS[op]
    if op in PLANNED:
        raise InputError(f"operation '{op}' is not available in this riskshare version ({PLANNED[op]})")
    raise InputError(f"unknown job operation '{op}'", hint=f"available: {', '.join(sorted(COMPONENTS))}")


# -- read -------------------------------------------------------------------------------

@dataclass
class ReadValue:
    table: pa.Table
    ids: PreparedIds
    fingerprint: str  # of the distinct IDs, so a resumed job notices changed data


class ReadComponent(Component):
    """Read this node's table where it lives and prepare its ID column (normalise, check, de-duplicate)."""

    op = "read"

    def run(self, ctx: StepContext) -> StepResult:
        table = ctx.table.read()
        prepared = prepare_ids(table, ctx.table.id_column, id_type=ctx.table.id_type,  # type: ignore[arg-type]
                               case=ctx.params.get("case", "upper"), source=f"table '{ctx.table.name}'")
        if len(prepared.unique) == 0:
            raise InputError(f"table '{ctx.table.name}' has no usable IDs in column '{ctx.table.id_column}'")
        digest = hashlib.sha256()
        for buf in prepared.unique.buffers():
            if buf is not None:
                digest.update(memoryview(buf))
        summary = prepared.report.as_dict()
        return StepResult(summary, ReadValue(table, prepared, digest.hexdigest()))


def sum_values(read: "ReadValue", column: str, scale: int, source: str) -> np.ndarray:
    """The sender's amounts as exact integers of 10^-scale, summed per distinct ID (PSI-sum's input)."""
    table = read.table
    if column not in table.column_names:
        raise InputError(f"table '{source}' has no column '{column}'", hint=f"columns: {', '.join(table.column_names)}")
    try:
        amounts = pc.cast(table[column], pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"column '{column}' of table '{source}' is not numeric: {exc}") from None
    rows = read.ids.row_to_unique >= 0
    if (rows & ~np.isfinite(amounts)).any():
        raise InputError(f"column '{column}' of table '{source}' has empty or non-numeric amounts",
                         hint="fill them in (0 if none) or remove those rows")
    scaled = np.rint(amounts[rows] * 10**scale)
    if scaled.size and np.abs(scaled).max() >= 2.0**62:
        raise InputError(f"amounts in '{column}' are too large for value_scale {scale}")
    totals = np.zeros(len(read.ids.unique), dtype=np.int64)
    np.add.at(totals, read.ids.row_to_unique[rows], scaled.astype(np.int64))
    return totals


def read_input(ctx: StepContext) -> ReadValue:
    """The output of the read step this step needs."""
    for value in ctx.inputs.values():
        if isinstance(value, ReadValue):
            return value
    raise InputError(f"step '{ctx.step_id}' needs a read step (add `needs: [read]`)")


# -- psi --------------------------------------------------------------------------------

# Keyword arguments of riskshare.protocols.psi.run that are objects, not job parameters.
_PSI_NOT_PARAMS = {"progress", "executor", "announce", "store", "result_to", "values"}


def psi_parameters() -> set[str]:
    """The job parameters a psi step accepts: whatever keywords the PSI entry point takes
    (so protocol options added there, e.g. bucket sizes, work in jobs at once), plus ``case``."""
    import inspect

    from ...protocols import psi as psi_protocols

    accepted = {name for name, p in inspect.signature(psi_protocols.run).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    return (accepted - _PSI_NOT_PARAMS) | {"case", "value_column"}


class PsiComponent(Component):
    """Private set intersection on the read step's IDs (any protocol of riskshare.protocols.psi)."""

    op = "psi"
    grant_op = "psi"
    talks_to_peer = True

    def check_params(self, params: dict[str, Any], spec: Any) -> dict[str, Any]:
        from ...protocols import psi as psi_protocols

        allowed = psi_parameters()
        unknown = set(params) - allowed
        if unknown:
            raise InputError(f"unknown psi parameter(s): {', '.join(sorted(unknown))}",
                             hint=f"known: {', '.join(sorted(allowed))}")
        for key, value in params.items():
            if not isinstance(value, (str, int, float, bool)) or isinstance(value, str) and len(value) > 200:
                raise InputError(f"psi parameter '{key}' must be a short string, a number or true/false")
        protocol = params.get("protocol", "ecdh")
        choices = getattr(psi_protocols, "CHOICES", tuple(psi_protocols.PROTOCOLS))
        if protocol not in choices:
            raise InputError(f"unknown PSI protocol '{protocol}'", hint=f"choose one of: {', '.join(choices)}")
        out = {"protocol": protocol, "output_mode": params.get("output_mode", "intersection"), **{
            k: v for k, v in params.items() if k not in ("protocol", "output_mode")}}
        if out["output_mode"] == "sum" and not out.get("value_column"):
            raise InputError("output_mode sum needs value_column: the sender's column of amounts to add up")
        if protocol == "unbalanced" and not out.get("set_name") and spec is not None:
            # the prepared set is named after the sender's table, so both nodes agree on it
            out["set_name"] = spec.peer_table if spec.role == "receiver" else spec.table
        return out

    def columns(self, table: TableSource, params: dict[str, Any]) -> list[str]:
        extra = [params["value_column"]] if params.get("output_mode") == "sum" and params.get("value_column") else []
        return [table.id_column, *extra]

    def run(self, ctx: StepContext) -> StepResult:
        from ...protocols import psi as psi_protocols

        read = read_input(ctx)
        params = dict(ctx.params)
        params.pop("case", None)
        protocol = params.pop("protocol", "ecdh")
        output_mode = params.pop("output_mode", "intersection")
        value_column = params.pop("value_column", None)
        sender = ctx.protocol_role == "sender"
        if output_mode == "sum" and sender:
            params["values"] = sum_values(read, str(value_column), int(params.get("value_scale", 0)), ctx.table.name)
        store = self._unbalanced_store(ctx, read, params.get("set_name")) if protocol == "unbalanced" else None
        if store is not None:
            params["store"] = store
        started = time.monotonic()
        before = ctx.link.stats.total()
        result = psi_protocols.run(ctx.link, ctx.peer, ctx.protocol_role, read.ids.unique,  # type: ignore[arg-type]
                                   protocol=protocol, result_to=ctx.result_to,  # type: ignore[arg-type]
                                   output_mode=output_mode, **params)
        after = ctx.link.stats.total()
        if store is not None and sender and result.indices is not None:
            # a serving sender's positions are into its prepared set; map them to this table's IDs
            matched = store.ids().take(pa.array(result.indices, type=pa.int64()))
            result.indices = np.sort(pc.index_in(matched, value_set=read.ids.unique).to_numpy(zero_copy_only=False))
        summary = {
            "protocol": protocol, "output_mode": output_mode, "role": ctx.protocol_role,
            "own_ids": result.own_size, "peer_ids": result.peer_size,
            "intersection": (len(result.indices) if result.indices is not None else result.size),
            "learned_members": result.indices is not None,
            "seconds": round(time.monotonic() - started, 3),
            "bytes_sent": after["bytes_sent"] - before["bytes_sent"],
            "bytes_received": after["bytes_received"] - before["bytes_received"],
        }
        value: dict[str, Any] = {"result": result, "fingerprint": read.fingerprint}
        if result.total is not None:
            scale = int(params.get("value_scale", 0))
            value["sum"] = result.details.get("total_integer", 0) / 10**scale
            summary["sum_known"] = True  # the sum itself is a result: it goes to the artifact, not the audit
        return StepResult(summary, value)

    @staticmethod
    def _unbalanced_store(ctx: StepContext, read: "ReadValue", set_name: Any) -> Any:
        """The sender's prepared set (grown from its table, rebuilt if IDs left) or the receiver's copy of it."""
        from ...protocols.psi.store import ClientCache, ServerSet

        if not isinstance(set_name, str) or not set_name:
            raise InputError("unbalanced PSI needs set_name (the sender's prepared set)")
        from ..home import check_name

        check_name(set_name, "set name")
        root = (ctx.state_dir or ctx.workdir) / "psi"
        if ctx.protocol_role == "receiver":
            return ClientCache.open(root / "peers" / ctx.peer / set_name)
        try:
            server_set, added = ServerSet.prepare(root / "sets" / set_name, set_name, read.ids.unique)
        except InputError:  # IDs left the table: a set only grows, so start a new one (a new key)
            server_set, added = ServerSet.prepare(root / "sets" / set_name, set_name, read.ids.unique, rebuild=True)
            ctx.log(f"rebuilt prepared PSI set '{set_name}' (IDs were removed from table '{ctx.table.name}')")
        if added:
            ctx.log(f"prepared PSI set '{set_name}': {added} IDs added, {server_set.count} in all")
        return server_set

    def save(self, value: Any, directory: Path) -> bool:
        result = value["result"]
        directory.mkdir(parents=True, exist_ok=True)
        if result.indices is not None:
            np.save(directory / "indices.npy", np.asarray(result.indices, dtype=np.int64))
        meta = {"fingerprint": value["fingerprint"], "role": result.role, "protocol": result.protocol,
                "own_size": result.own_size, "peer_size": result.peer_size, "size": result.size,
                "total": result.total, "has_indices": result.indices is not None}
        (directory / "psi.json").write_text(json.dumps(meta))
        return True

    def load(self, directory: Path, ctx: StepContext) -> Any:
        from ...protocols.psi.common import PsiResult

        meta_path = directory / "psi.json"
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        read = read_input(ctx)
        if meta["fingerprint"] != read.fingerprint:
            return None  # the table changed since: the saved result no longer applies
        indices = np.load(directory / "indices.npy") if meta["has_indices"] else None
        result = PsiResult(role=meta["role"], protocol=meta["protocol"], own_size=meta["own_size"],
                           peer_size=meta["peer_size"], indices=indices, size=meta["size"], total=meta["total"])
        return {"result": result, "fingerprint": meta["fingerprint"]}


# -- write ------------------------------------------------------------------------------

class WriteComponent(Component):
    """Write this node's outputs as artifacts: its own rows in the result, and a JSON summary."""

    op = "write"

    def run(self, ctx: StepContext) -> StepResult:
        reads = [v for v in ctx.inputs.values() if isinstance(v, ReadValue)]
        read = reads[0] if reads else None
        summary: dict[str, Any] = {}
        produced = {k: v for k, v in ctx.inputs.items() if not isinstance(v, ReadValue)}
        for step_id, value in produced.items():
            if isinstance(value, PirAnswers):
                name = f"{step_id}-answers.csv"
                path = write_table(value.as_table(), ctx.workdir / name)
                ctx.add_artifact(name, path, "text/csv", rows=len(value.answers))
                summary[f"{step_id}_answers"] = len(value.answers)
                continue
            result = value.get("result") if isinstance(value, dict) else None
            if result is None:
                continue
            doc = {"job": ctx.job_id, "step": step_id, "protocol": getattr(result, "protocol", None),
                   "own_ids": getattr(result, "own_size", None), "peer_ids": getattr(result, "peer_size", None)}
            if getattr(result, "indices", None) is not None and read is not None:
                rows = read.ids.rows_for(result.indices)
                fmt = ctx.params.get("format", "csv")
                name = f"{step_id}-rows.{'parquet' if fmt == 'parquet' else 'csv'}"
                path = write_table(read.table.take(pa.array(rows, type=pa.int64())), ctx.workdir / name)
                ctx.add_artifact(name, path, "text/csv" if fmt != "parquet" else "application/vnd.apache.parquet",
                                 rows=int(len(rows)))
                doc["intersection"] = int(len(result.indices))
                doc["rows"] = int(len(rows))
                summary[f"{step_id}_rows"] = int(len(rows))
            elif getattr(result, "size", None) is not None:
                doc["intersection"] = int(result.size)
            if isinstance(value, dict) and value.get("sum") is not None:
                doc["sum"] = value["sum"]
            name = f"{step_id}-summary.json"
            path = ctx.workdir / name
            tmp = path.with_suffix(".json.part")
            tmp.write_text(json.dumps(doc, indent=2))
            tmp.replace(path)
            ctx.add_artifact(name, path, "application/json")
            summary[f"{step_id}_summary"] = name
        return StepResult(summary, None)


# -- pir --------------------------------------------------------------------------------

@dataclass
class PirAnswers:
    """What the asking side learned: per asked key, found or not, and the record."""

    answers: list[Any]
    columns: list[str]

    def as_table(self) -> pa.Table:
        data: dict[str, list[str]] = {"key": [a.normalised for a in self.answers],
                                      "found": ["yes" if a.found else "no" for a in self.answers]}
        for column in self.columns:
            name = column if column not in data else f"record_{column}"
            data[name] = [(a.record or {}).get(column, "") for a in self.answers]
        return pa.table({k: pa.array(v, type=pa.string()) for k, v in data.items()})


MAX_PIR_ROUNDS = 10_000


class PirComponent(Component):
    """Keyword PIR (riskshare.protocols.pir): the receiver looks up the IDs of its table in the
    sender's table and learns their records; the sender learns how many keys were asked.

    The sender's side serves its registered table: key = the table's ID column,
    records = ``params.columns`` (comma-separated) or its registered features or, if none,
    every other column. The prepared table (an OPRF evaluation of every key) is kept in
    the node home and only updated for what changed, so repeated jobs start quickly.
    Every lookup round is counted against the grant's ``--max-queries-per-day``.
    """

    op = "pir"
    grant_op = "pir"
    talks_to_peer = True

    def check_params(self, params: dict[str, Any], spec: Any) -> dict[str, Any]:
        unknown = set(params) - {"mode", "columns", "case"}
        if unknown:
            raise InputError(f"unknown pir parameter(s): {', '.join(sorted(unknown))}",
                             hint="known: mode (cached | pir), columns, case")
        mode = params.get("mode", "cached")
        if mode not in ("cached", "pir"):
            raise InputError(f"pir mode is 'cached' or 'pir', not '{mode}'")
        columns = params.get("columns")
        if columns is not None and not isinstance(columns, str):
            raise InputError("pir 'columns' is a comma-separated list of the owner's columns")
        return {**params, "mode": mode}

    def columns(self, table: TableSource, params: dict[str, Any]) -> list[str]:
        if params.get("columns"):
            return [table.id_column, *[c.strip() for c in str(params["columns"]).split(",") if c.strip()]]
        return [table.id_column, *table.features]

    def run(self, ctx: StepContext) -> StepResult:
        if ctx.protocol_role == "receiver":
            return self._ask(ctx)
        return self._serve(ctx)

    def _ask(self, ctx: StepContext) -> StepResult:
        from ...protocols.pir import CacheStore, HintStore, PirClient
        from ...protocols.pir import wire

        mode = ctx.params.get("mode", "cached")
        keys = read_input(ctx).ids.unique.to_pylist()
        per_round = wire.MAX_KEYS_CACHED if mode == "cached" else wire.MAX_KEYS_PIR
        rounds = [keys[i : i + per_round] for i in range(0, len(keys), per_round)]
        if len(rounds) > MAX_PIR_ROUNDS:
            raise InputError(f"{len(keys)} keys need more than {MAX_PIR_ROUNDS} PIR rounds in {mode} mode",
                             hint="use cached mode for many keys")
        ctx.link.send_json(ctx.peer, "pir/plan", {"rounds": len(rounds)})
        state = ctx.state_dir or ctx.workdir
        client = PirClient(ctx.link, ctx.peer, mode=mode, store=CacheStore(state / "pir-cache"),
                           hints=HintStore(state / "pir-hint"))
        started = time.monotonic()
        answers: list[Any] = []
        columns: list[str] = []
        update = "none"
        for chunk in rounds:
            ctx.check()
            result = client.query(chunk)
            answers.extend(result.answers)
            columns, update = result.columns, result.update if update == "none" else update
        summary = {"mode": mode, "keys": len(keys), "found": sum(a.found for a in answers), "rounds": len(rounds),
                   "table_update": update, "seconds": round(time.monotonic() - started, 3),
                   "bytes_sent": ctx.link.stats.total()["bytes_sent"],
                   "bytes_received": ctx.link.stats.total()["bytes_received"]}
        return StepResult(summary, PirAnswers(answers, columns))

    def _serve(self, ctx: StepContext) -> StepResult:
        from ...protocols.pir import PirServer
        from ...protocols.pir import wire

        mode = ctx.params.get("mode", "cached")
        plan = ctx.link.recv_json(ctx.peer, "pir/plan")
        rounds = plan.get("rounds") if isinstance(plan, dict) else None
        if not isinstance(rounds, int) or not 0 <= rounds <= MAX_PIR_ROUNDS:
            raise InputError(f"peer '{ctx.peer}' announced an invalid number of PIR rounds: {rounds!r}")
        table = self._server_table(ctx)
        server = PirServer(table, mode=mode, policy=ctx.quota)
        started = time.monotonic()
        asked = refused = 0
        for _ in range(rounds):
            ctx.check()
            request = wire.check_request(ctx.link.recv_json(ctx.peer, wire.REQUEST_TAG), ctx.peer)
            outcome = server.handle(ctx.link, ctx.peer, request)
            asked += int(request.get("keys", 0))
            if str(outcome.get("outcome", "")).startswith("refused"):
                refused += 1
                raise InputError(f"refused the peer's lookup: {outcome['outcome']}",
                                 hint="the grant's quota or the table's limits were reached")
        summary = {"mode": mode, "records": table.size, "rounds": rounds, "keys_asked": asked, "refused": refused,
                   "table_version": table.version, "seconds": round(time.monotonic() - started, 3)}
        return StepResult(summary, None)

    def _server_table(self, ctx: StepContext) -> Any:
        """The prepared table for this node's registered table, built once and then kept up to date."""
        from ...protocols.pir import ServerTable, prepare_table

        source = ctx.table
        data = source.read()
        if ctx.params.get("columns"):
            columns = [c.strip() for c in str(ctx.params["columns"]).split(",") if c.strip()]
        elif source.features:
            columns = list(source.features)
        else:
            columns = [c for c in data.column_names if c != source.id_column]
        keys, values, names = prepare_table(data.select([source.id_column, *columns]).cast(
            pa.schema([(c, pa.string()) for c in [source.id_column, *columns]])), source.id_column,
            f"table '{source.name}'", columns)
        directory = (ctx.state_dir or ctx.workdir) / "pir" / "tables" / source.name
        saved = ServerTable.load(directory)
        table = ServerTable.build(source.name, keys, values, names) if saved is None else saved.updated(
            keys, values, names)
        if table is not saved:
            table.save(directory)
            ctx.log(f"prepared PIR table '{source.name}': version {table.version}, {table.size} records")
        return table


register(ReadComponent())
register(PsiComponent())
register(PirComponent())
register(WriteComponent())


def _register_ml() -> None:
    """train, predict and iv, when riskshare.ml (vertical federated learning) is part of this installation."""
    import importlib.util

    if importlib.util.find_spec("riskshare.ml") is None or importlib.util.find_spec("riskshare.ml.jobs") is None:
        return
    from . import ml_components

    ml_components.register_all()
    for op in ("train", "predict"):
        PLANNED.pop(op, None)


_register_ml()
