"""``riskshare psi``: one side of a two-party PSI, run directly between two machines."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..data import prepare_ids, read_table, write_table
from ..errors import InputError
from ..node.home import NodeHome, check_name
from ..progress import Progress
from ..protocols import psi as psi_protocols
from ..protocols.psi.store import ClientCache, ServerSet
from . import main
from .identity import home_option


def set_path(node: NodeHome, name: str) -> Path:
    """Where a server keeps a prepared set for unbalanced PSI."""
    return node.path / "psi" / "sets" / name


def cache_path(node: NodeHome, peer: str, name: str) -> Path:
    """Where a client keeps its copy of a peer's prepared set."""
    return node.path / "psi" / "peers" / peer / name


def _read_ids(input_path: Path, id_column: str, id_type: str, case: str, delimiter: str | None, encoding: str,
              rejects: Path | None, output: Path | None):
    table = read_table(input_path, delimiter=delimiter, encoding=encoding, strings=True, required_columns=[id_column])
    prepared = prepare_ids(table, id_column, id_type=id_type, case=case, source=str(input_path))  # type: ignore[arg-type]
    click.echo(f"{input_path}: {prepared.report.summary()}", err=True)
    if prepared.rejects.num_rows:
        path = _rejects_path(rejects, output, input_path)
        prepared.write_rejects(path)
        click.echo(f"kept {prepared.rejects.num_rows} rows out of the run; listed in {path}", err=True)
    if len(prepared.unique) == 0:
        raise InputError(f"{input_path} has no usable IDs in column '{id_column}'", hint="see the rejects file")
    return table, prepared


def _values(table: pa.Table, prepared, column: str, scale: int, source: Path):
    """The sender's amounts as exact integers of 10^-scale, summed per distinct ID."""
    if column not in table.column_names:
        raise InputError(f"{source} has no column '{column}'", hint=f"columns: {', '.join(table.column_names)}")
    try:
        amounts = pc.cast(table[column], pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"column '{column}' of {source} is not numeric: {exc}",
                         hint="amounts must be plain numbers such as 1234.56") from None
    rows = prepared.row_to_unique >= 0
    bad = rows & ~np.isfinite(amounts)
    if bad.any():
        first = int(np.flatnonzero(bad)[0]) + 1
        raise InputError(f"column '{column}' of {source} has {int(bad.sum())} empty or non-numeric amounts "
                         f"(first at data row {first})", hint="fill them in (0 if none) or remove those rows")
    scaled = np.rint(amounts[rows] * 10**scale)
    if scaled.size and np.abs(scaled).max() >= 2.0**62:
        raise InputError(f"amounts in '{column}' are too large for --value-scale {scale}")
    totals = np.zeros(len(prepared.unique), dtype=np.int64)
    np.add.at(totals, prepared.row_to_unique[rows], scaled.astype(np.int64))
    return totals


def _rejects_path(rejects: Path | None, output: Path | None, input_path: Path) -> Path:
    if rejects:
        return rejects
    # Next to the output, or else next to the input: never in whatever directory the command ran from.
    base = output if output else input_path
    return base.with_name(base.stem + ".rejects.csv")


@main.command()
@home_option
@click.option("--peer", "peer_name", required=True, help="The pinned peer to run with.")
@click.option("--role", type=click.Choice(["sender", "receiver"]), required=True)
@click.option("--input", "input_path", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV or Parquet file holding your IDs (not needed by an unbalanced-PSI server).")
@click.option("--id-column", help="Column that holds the IDs.")
@click.option("--id-type", type=click.Choice(["any", "uscc"]), default="any", show_default=True,
              help="uscc: check unified social credit codes (GB 32100-2015); invalid ones are kept out and listed.")
@click.option("--case", type=click.Choice(["upper", "keep"]), default="upper", show_default=True,
              help="Upper-case IDs before matching (both sides must agree).")
@click.option("--protocol", type=click.Choice(list(psi_protocols.CHOICES)), default="ecdh", show_default=True,
              help="ecdh: X25519 Diffie-Hellman; ot: OT-extension (KKRT16), fastest for large sets; "
              "unbalanced: a large prepared server set (see `riskshare psi-set`); auto: pick by the two set sizes.")
@click.option("--set", "set_name", help="unbalanced: the name of the server's prepared set (both sides).")
@click.option("--result-to", type=click.Choice(["receiver", "both"]), default="receiver", show_default=True)
@click.option("--output-mode", type=click.Choice(["intersection", "count", "sum"]), default="intersection",
              show_default=True, help="count: both sides learn only the size of the intersection; sum: the "
              "receiver learns the size and the sum of the sender's --value-column over it (nothing per member).")
@click.option("--value-column", help="sum mode, sender: the column of amounts to add up.")
@click.option("--value-scale", default=2, show_default=True, type=click.IntRange(0, 12),
              help="sum mode: decimal places kept (amounts are summed exactly as integers of 10^-scale).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write your rows whose ID is in the intersection (CSV or .parquet).")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to list kept-out rows (default: next to the output).")
@click.option("--delimiter", default=None, help="CSV delimiter (default: detected).")
@click.option("--encoding", default="auto", show_default=True, help="auto, utf-8, gbk or gb18030.")
@click.option("--bucket-size", default=psi_protocols.DEFAULT_BUCKET_SIZE, show_default=True, type=click.IntRange(1),
              help="IDs of the larger side per bucket; larger runs are split into buckets run one after another.")
@click.option("--stats", "stats_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write this run's figures (sizes, protocol, seconds, bytes each way) as JSON here.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the peer at each step.")
def psi(home: Path, peer_name: str, role: str, input_path: Path | None, id_column: str | None, id_type: str,
        case: str, protocol: str, set_name: str | None, result_to: str, output_mode: str, value_column: str | None,
        value_scale: int, output: Path | None,
        rejects: Path | None, delimiter: str | None, encoding: str, bucket_size: int, stats_path: Path | None,
        timeout: float) -> None:
    """Find the IDs both parties hold without revealing the others.

    Start one side with --role sender and the other with --role receiver (in
    either order). The receiver writes its own rows whose ID is shared; with
    --result-to both, so does the sender.
    """
    started = time.monotonic()
    node = NodeHome.open(home)
    node.peer(peer_name)  # fail early on an unknown peer
    learns_rows = output_mode == "intersection" and (role == "receiver" or result_to == "both")
    if learns_rows and output is None:
        raise InputError("--output is required: this side receives the intersection", hint="e.g. --output shared.csv")
    store = None
    if protocol == "unbalanced":
        if not set_name:
            raise InputError("--protocol unbalanced needs --set NAME (the server's prepared set)")
        check_name(set_name, "set name")
        store = (ServerSet.open(set_path(node, set_name)) if role == "sender"
                 else ClientCache.open(cache_path(node, peer_name, set_name)))
    serving = protocol == "unbalanced" and role == "sender"
    if serving:
        table, prepared = None, None
        ids = pa.array([], type=pa.string())
        click.echo(f"serving PSI set '{set_name}': {store.count:,} IDs, version {store.meta['version']}", err=True)
    else:
        if input_path is None or id_column is None:
            raise InputError("--input and --id-column are required", hint="e.g. --input clients.csv --id-column uscc")
        table, prepared = _read_ids(input_path, id_column, id_type, case, delimiter, encoding, rejects, output)
        ids = prepared.unique
    values = None
    if output_mode == "sum" and role == "sender":
        if not value_column:
            raise InputError("--output-mode sum needs --value-column on the sender", hint="e.g. --value-column amount")
        values = _values(table, prepared, value_column, value_scale, input_path)  # type: ignore[arg-type]

    progress = Progress()
    protocol_started = time.monotonic()
    with node.open_link([peer_name], timeout=timeout) as link:
        result = psi_protocols.run(
            link, peer_name, role, ids, protocol=protocol,  # type: ignore[arg-type]
            result_to=result_to, output_mode=output_mode, progress=progress,  # type: ignore[arg-type]
            bucket_size=bucket_size, announce=lambda line: click.echo(line, err=True),
            store=store, set_name=set_name, values=values, value_scale=value_scale,
        )
        progress.done()
        traffic = link.stats.total()
    protocol_seconds = time.monotonic() - protocol_started
    seconds = time.monotonic() - started
    sent_mb, recv_mb = traffic["bytes_sent"] / 1e6, traffic["bytes_received"] / 1e6
    own = len(ids) if not serving else store.count  # type: ignore[union-attr]
    if result.indices is not None and output is not None and serving:
        matched = store.ids().take(pa.array(result.indices, type=pa.int64()))  # type: ignore[union-attr]
        write_table(pa.table({"id": matched}), output)
        click.echo(f"intersection: {len(result.indices)} of the set's {own} IDs written to {output}")
    elif result.indices is not None and output is not None:
        rows = prepared.rows_for(result.indices)  # type: ignore[union-attr]
        write_table(table.take(pa.array(rows, type=pa.int64())), output)  # type: ignore[union-attr]
        click.echo(f"intersection: {len(result.indices)} of your {own} distinct IDs "
                   f"({len(rows)} rows) written to {output}")
    elif result.total is not None:
        total = result.details.get("total_integer", 0) / 10**value_scale
        click.echo(f"intersection size: {result.size}, sum of the peer's values over it: {total:,.{value_scale}f} "
                   f"(your {own} IDs, peer's {result.peer_size})")
    elif result.size is not None:
        click.echo(f"intersection size: {result.size} (your {own} IDs, peer's {result.peer_size})")
    else:
        click.echo(f"done: the peer ({result.peer_size} IDs) received the result; this side learns only its size")
    click.echo(f"{seconds:.1f} s, sent {sent_mb:.1f} MB, received {recv_mb:.1f} MB", err=True)
    if stats_path is not None:
        figures = {
            "role": role, "protocol": result.protocol, "requested": protocol, "output_mode": output_mode,
            "own_ids": own, "peer_ids": result.peer_size, "intersection": result.size,
            "seconds": round(seconds, 3), "protocol_seconds": round(protocol_seconds, 3),
            "bytes_sent": traffic["bytes_sent"], "bytes_received": traffic["bytes_received"],
            "details": {k: v for k, v in result.details.items() if isinstance(v, (int, float, str))},
        }
        stats_path.write_text(json.dumps(figures, indent=2) + "\n")


@main.group("psi-set")
def psi_set() -> None:
    """Prepare large sets for unbalanced PSI (kept under the node home, reused across runs)."""


@psi_set.command("prepare")
@home_option
@click.option("--name", "set_name", required=True, help="The set's name; clients use it with --set.")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--id-column", required=True)
@click.option("--id-type", type=click.Choice(["any", "uscc"]), default="any", show_default=True)
@click.option("--case", type=click.Choice(["upper", "keep"]), default="upper", show_default=True)
@click.option("--delimiter", default=None)
@click.option("--encoding", default="auto", show_default=True)
@click.option("--rebuild", is_flag=True, help="Start over with a new key (needed to remove IDs; clients re-download).")
def psi_set_prepare(home: Path, set_name: str, input_path: Path, id_column: str, id_type: str, case: str,
                    delimiter: str | None, encoding: str, rebuild: bool) -> None:
    """Create a set from a file, or add the file's new IDs to it (a set only grows)."""
    node = NodeHome.open(home)
    check_name(set_name, "set name")
    _, prepared = _read_ids(input_path, id_column, id_type, case, delimiter, encoding, None, None)
    progress = Progress()
    started = time.monotonic()
    server_set, added = ServerSet.prepare(set_path(node, set_name), set_name, prepared.unique, rebuild=rebuild,
                                          progress=lambda done, total: progress("OPRF values", done, total))
    progress.done()
    click.echo(f"PSI set '{set_name}': {server_set.count:,} IDs ({added:,} added), version "
               f"{server_set.meta['version']}, key {server_set.key_id}, {time.monotonic() - started:.1f} s")


@psi_set.command("show")
@home_option
def psi_set_show(home: Path) -> None:
    """List the prepared sets of this node."""
    node = NodeHome.open(home)
    root = node.path / "psi" / "sets"
    names = sorted(p.name for p in root.iterdir() if (p / "meta.json").is_file()) if root.is_dir() else []
    if not names:
        click.echo("no prepared PSI sets")
    for name in names:
        meta = ServerSet.open(root / name).meta
        click.echo(f"{name}: {meta['count']:,} IDs, version {meta['version']}, key {meta['key_id']}, "
                   f"updated {meta['updated']}")
