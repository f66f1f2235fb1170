"""``riskshare pir``: serve a table for keyword PIR (匿踪查询), or look keys up in a peer's table."""

from __future__ import annotations

import datetime as dt
import signal
import sys
import threading
import time
from pathlib import Path

import click
import pyarrow as pa

from ..data import read_table, write_table
from ..errors import InputError
from ..node.home import NodeHome, check_name
from ..progress import Progress
from ..protocols.pir import (
    CacheStore, FileQueryPolicy, HintStore, PirClient, PirServer, ServerTable, prepare_table,
)
from ..protocols.pir.table import check_table_id
from . import main
from .identity import home_option


@main.group()
def pir() -> None:
    """Keyword PIR: the asker learns only the records of the keys it asks; the owner learns nothing of them."""


def _state_dir(node: NodeHome, name: str) -> Path:
    return node.path / "pir" / "tables" / name


def _load_source(table_path: Path, key_column: str, columns: str | None, delimiter: str | None, encoding: str):
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    tbl = read_table(table_path, delimiter=delimiter, encoding=encoding, strings=True,
                     required_columns=[key_column] + (wanted or []))
    return prepare_table(tbl, key_column, str(table_path), wanted)


def _prepare_state(node: NodeHome, name: str, source, *, rebuild: bool, rotate: bool,
                   progress: Progress) -> tuple[ServerTable, str]:
    keys, values, columns = source
    directory = _state_dir(node, name)
    saved = None if rebuild else ServerTable.load(directory)
    if saved is None:
        table = ServerTable.build(name, keys, values, columns, progress=progress)
        what = f"built version {table.version}"
    else:
        table = saved.updated(keys, values, columns, progress=progress)
        what = (f"updated version {saved.version} -> {table.version}" if table is not saved
                else f"unchanged since version {table.version}")
    if rotate:
        old = table.key_id
        table = table.rotated(progress=progress)
        what += f"; rotated the OPRF key {old} -> {table.key_id} (version {table.version}; every cache is now stale)"
    if table is not saved:
        table.save(directory)
    progress.done()
    return table, what


@pir.command("serve")
@home_option
@click.option("--table", "table_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV or Parquet file: one row per key.")
@click.option("--key-column", required=True, help="Column holding the keys (e.g. uscc).")
@click.option("--columns", default=None, help="Comma-separated record columns to serve (default: all others).")
@click.option("--peer", "peers", required=True, multiple=True, help="A pinned peer allowed to query (repeatable).")
@click.option("--mode", type=click.Choice(["cached", "pir"]), default="cached", show_default=True,
              help="cached: clients keep the encrypted table; pir: clients download a hint and fetch by SimplePIR.")
@click.option("--name", default=None, help="Table name clients see (default: the file's name without suffix).")
@click.option("--max-keys-per-day", type=click.IntRange(min=0), default=10_000, show_default=True,
              help="Keys each peer may look up per day (0: no limit).")
@click.option("--max-queries-per-minute", type=click.IntRange(min=0), default=60, show_default=True,
              help="Queries each peer may make per minute (0: no limit).")
@click.option("--rotate-key", is_flag=True, help="Rotate the table's OPRF key before serving (re-seals every record).")
@click.option("--rebuild", is_flag=True, help="Discard the saved state and rebuild from the table.")
@click.option("--delimiter", default=None, help="CSV delimiter (default: detected).")
@click.option("--encoding", default="auto", show_default=True, help="auto, utf-8, gbk or gb18030.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for a client at each step.")
def serve(home: Path, table_path: Path, key_column: str, columns: str | None, peers: tuple[str, ...], mode: str,
          name: str | None, max_keys_per_day: int, max_queries_per_minute: int, rotate_key: bool, rebuild: bool,
          delimiter: str | None, encoding: str, timeout: float) -> None:
    """Serve TABLE to pinned peers until stopped (Ctrl-C or SIGTERM). SIGHUP re-reads the table.

    The first start evaluates the OPRF on every key and seals every record
    (about a minute per million records on two cores); the state is kept in
    HOME/pir, so later starts only apply what changed in the table. Every
    query is counted in HOME/pir/queries.log (peer, number of keys — never a key).
    """
    node = NodeHome.open(home)
    for p in peers:
        node.peer(p)
    name = check_table_id(name or table_path.stem)
    progress = Progress()
    source = _load_source(table_path, key_column, columns, delimiter, encoding)
    table, what = _prepare_state(node, name, source, rebuild=rebuild, rotate=rotate_key, progress=progress)
    click.echo(f"table '{name}': {table.size} records, columns {', '.join(table.columns) or '(none)'}; {what}; "
               f"OPRF key id {table.key_id}", err=True)
    policy = FileQueryPolicy(node.path / "pir" / "queries.log", max_keys_per_day=max_keys_per_day or None,
                             max_queries_per_minute=max_queries_per_minute or None)
    started = time.monotonic()
    server = PirServer(table, mode=mode, policy=policy)
    if mode == "pir":
        db = server.database
        assert db is not None
        table_bytes = table.size * table.published().slot_bytes
        click.echo(f"pir database: {db.layout.buckets} buckets x {db.layout.capacity} slots of {db.layout.slot_bytes} "
                   f"bytes; hint {db.layout.hint_bytes / 1e6:.1f} MB ({100 * db.layout.hint_bytes / table_bytes:.1f} % "
                   f"of the {table_bytes / 1e6:.1f} MB table), stash {len(db.stash)} records; "
                   f"built in {time.monotonic() - started:.1f} s", err=True)

    stop = threading.Event()
    reload_requested = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            reload_requested.set()
        else:
            stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, on_signal)

    def on_event(event: dict) -> None:
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        detail = f"{event.get('op', '?')} {event.get('keys', 0)} key(s)"
        if event.get("update") not in (None, "none"):
            detail += f", sent {event['update']} ({event.get('rows_sent', 0)} rows)"
        click.echo(f"{stamp} peer '{event.get('peer')}' query {event.get('query_id', '-')}: {detail}: "
                   f"{event.get('outcome')} in {event.get('seconds', 0):.3f} s", err=True)

    def tick() -> None:
        if not reload_requested.is_set():
            return
        reload_requested.clear()
        try:
            src = _load_source(table_path, key_column, columns, delimiter, encoding)
            new, info = _prepare_state(node, name, src, rebuild=False, rotate=False, progress=Progress())
            server.replace_table(new)
            click.echo(f"reloaded {table_path}: {info}", err=True)
        except Exception as exc:  # noqa: BLE001 - keep serving the last good version
            click.echo(f"reload failed, still serving version {server.table.version}: {exc}", err=True)

    # Clients send at most MAX_KEYS_PIR queries of 4·m bytes (or 32 bytes a key in cached mode): refuse
    # anything far bigger before it is read into memory.
    with node.open_link(list(peers), timeout=timeout, peer_restarts="accept", max_message_bytes=512 << 20) as link:
        click.echo(f"serving '{name}' (version {table.version}, {mode} mode) to {', '.join(peers)} on "
                   f"{node.config['node']['listen']}; stop with Ctrl-C", err=True)
        server.serve(link, list(peers), stop, on_event=on_event, tick=tick)
    click.echo("stopped", err=True)


def _read_keys(keys: tuple[str, ...], keys_file: Path | None, key_column: str | None) -> list[str]:
    out = list(keys)
    if keys_file is not None:
        if key_column:
            tbl = read_table(keys_file, strings=True, required_columns=[key_column])
            col = tbl[key_column].combine_chunks() if tbl.num_rows else pa.array([], pa.string())
            out.extend("" if v is None else v for v in col.to_pylist())
        else:
            if not keys_file.is_file():
                raise InputError(f"keys file {keys_file} does not exist")
            data = keys_file.read_bytes()
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                try:
                    text = data.decode("gb18030")
                except UnicodeDecodeError:
                    raise InputError(f"{keys_file} is neither UTF-8 nor GBK text") from None
            out.extend(line for line in text.splitlines() if line.strip())
    if not out:
        raise InputError("no keys to look up", hint="give --key KEY (repeatable) or --keys-file FILE")
    return out


@pir.command("query")
@home_option
@click.option("--peer", "peer_name", required=True, help="The pinned peer serving the table.")
@click.option("--key", "keys", multiple=True, help="A key to look up (repeatable).")
@click.option("--keys-file", type=click.Path(dir_okay=False, path_type=Path),
              help="One key per line (blank lines skipped), or a CSV/Parquet file with --key-column.")
@click.option("--key-column", default=None, help="Column of --keys-file holding the keys (for CSV/Parquet files).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one row per asked key (key, found, record columns) to this CSV or .parquet file.")
@click.option("--mode", type=click.Choice(["cached", "pir"]), default="cached", show_default=True,
              help="Must match the server's mode.")
@click.option("--table", "table_name", default=None, help="Which of the peer's cached tables (default: the latest).")
@click.option("--refresh", is_flag=True, help="Ignore the cached copy and fetch the table (or hint) again.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for the peer at each step.")
def query(home: Path, peer_name: str, keys: tuple[str, ...], keys_file: Path | None, key_column: str | None,
          output: Path | None, mode: str, table_name: str | None, refresh: bool, timeout: float) -> None:
    """Look keys up in a peer's table: prints each record, or "not found".

    The peer learns that a query of N keys happened, never which keys.
    """
    node = NodeHome.open(home)
    check_name(peer_name, "peer name")
    node.peer(peer_name)
    asked = _read_keys(keys, keys_file, key_column)
    from ..protocols.pir import normalise_keys
    normalise_keys(asked)  # refuse bad keys before contacting anyone
    store = CacheStore(node.path / "pir-cache")
    hints = HintStore(node.path / "pir-hint")
    started = time.monotonic()
    with node.open_link([peer_name], timeout=timeout, reconnect_window=min(timeout, 30.0)) as link:
        client = PirClient(link, peer_name, mode=mode, store=store, hints=hints, table=table_name, refresh=refresh)
        result = client.query(asked)
        traffic = link.stats.total()
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if result.update != "none":
        what = "hint" if mode == "pir" else "cached table"
        click.echo(f"{what} '{result.table}' now at version {result.version} ({result.update} update"
                   + (f": {result.rows_received} records received, {result.deleted} removed" if mode == "cached" else "")
                   + ")", err=True)
    if output is not None:
        cols = result.columns
        data: dict[str, list[str]] = {"key": [a.key for a in result.answers],
                                      "found": ["yes" if a.found else "no" for a in result.answers]}
        for c in cols:
            name = c if c not in data else f"record_{c}"
            data[name] = [(a.record or {}).get(c, "") for a in result.answers]
        write_table(pa.table({k: pa.array(v, type=pa.string()) for k, v in data.items()}), output)
        click.echo(f"{result.found} of {len(result.answers)} keys found; answers written to {output}")
    else:
        for a in result.answers:
            if not a.found:
                click.echo(f"{a.key}: not found")
                continue
            click.echo(f"{a.key}: found")
            for c, v in (a.record or {}).items():
                click.echo(f"  {c}: {v}")
    seconds = time.monotonic() - started
    click.echo(f"{seconds:.2f} s, sent {traffic['bytes_sent'] / 1e6:.2f} MB, received "
               f"{traffic['bytes_received'] / 1e6:.2f} MB", err=True)
    if result.allowance and result.allowance.get("keys_left_today") is not None:
        click.echo(f"quota: {result.allowance['keys_left_today']} keys left today", err=True)
    sys.stdout.flush()
