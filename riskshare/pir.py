"""Keyword PIR in one process, for notebooks, tests and benchmarks.

>>> from riskshare.pir import LocalPir
>>> with LocalPir({"91310000MA1FL1XB2X": {"level": "high", "reason": "fraud"}}) as pir:
...     pir.lookup(["91310000ma1fl1xb2x", "A1"])
[{'level': 'high', 'reason': 'fraud'}, None]

Both parties run here over an in-memory link, with the same protocol code,
normalisation and checks as two institutions' nodes (``riskshare pir serve`` /
``riskshare pir query``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa

from .data import read_table
from .net import memory_pair
from .protocols.pir import (
    CacheStore, HintStore, PirClient, PirServer, QueryPolicy, QueryResult, ServerTable, UnlimitedPolicy,
    prepare_table,
)

TableLike = pa.Table | str | Path | Mapping[str, Mapping[str, Any]]


def as_table(table: TableLike, key_column: str = "key") -> tuple[pa.Table, str]:
    """A pyarrow table (and its key column) from a table, a CSV/Parquet path or a ``{key: {column: value}}`` dict."""
    if isinstance(table, pa.Table):
        return table, key_column
    if isinstance(table, (str, Path)):
        return read_table(table, strings=True, required_columns=[key_column]), key_column
    keys = list(table)
    columns: list[str] = []
    for record in table.values():
        columns.extend(c for c in record if c not in columns)
    data = {key_column: keys, **{c: ["" if table[k].get(c) is None else str(table[k].get(c)) for k in keys]
                                 for c in columns}}
    return pa.table({k: pa.array(v, type=pa.string()) for k, v in data.items()}), key_column


def build_table(table: TableLike, key_column: str = "key", *, name: str = "table") -> ServerTable:
    """Evaluate and seal a table for serving (the server's set-up)."""
    tbl, key_column = as_table(table, key_column)
    keys, values, columns = prepare_table(tbl, key_column, name)
    return ServerTable.build(name, keys, values, columns)


class LocalPir:
    """A server and a client in this process; ``lookup``/``query`` many keys, ``update`` or ``rotate_key``."""

    def __init__(self, table: TableLike | ServerTable, key_column: str = "key", *, mode: str = "cached",
                 policy: QueryPolicy | None = None, client_home: str | Path | None = None, name: str = "table") -> None:
        self.key_column = key_column
        self.name = name
        self.table = table if isinstance(table, ServerTable) else build_table(table, key_column, name=name)
        self.client_link, self.server_link = memory_pair("client", "server")
        self.policy = policy or UnlimitedPolicy()
        self.server = PirServer(self.table, mode=mode, policy=self.policy)
        store = hints = None
        if client_home is not None:
            store, hints = CacheStore(Path(client_home) / "pir-cache"), HintStore(Path(client_home) / "pir-hint")
        self.client = PirClient(self.client_link, "server", mode=mode, store=store, hints=hints)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.server.serve, args=(self.server_link, ["client"], self._stop),
                                        daemon=True, name="rs-pir-local")
        self._thread.start()

    def query(self, keys: Iterable[str]) -> QueryResult:
        return self.client.query(list(keys))

    def lookup(self, keys: Iterable[str]) -> list[dict[str, str] | None]:
        """The record of each key (``None``: not found), in the order asked."""
        return [a.record for a in self.query(keys).answers]

    def update(self, table: TableLike) -> ServerTable:
        """Serve a new version of the table (only changed records are re-sealed and re-sent)."""
        tbl, key_column = as_table(table, self.key_column)
        keys, values, columns = prepare_table(tbl, key_column, self.name)
        self.table = self.table.updated(keys, values, columns)
        self.server.replace_table(self.table)
        return self.table

    def rotate_key(self) -> ServerTable:
        self.table = self.table.rotated()
        self.server.replace_table(self.table)
        return self.table

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "LocalPir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lookup(keys: Iterable[str], table: TableLike, key_column: str = "key", *, mode: str = "cached",
           **options: Any) -> list[dict[str, str] | None]:
    """Serve ``table`` and look ``keys`` up once; the record of each key or ``None``."""
    with LocalPir(table, key_column, mode=mode, **options) as pir:
        return pir.lookup(keys)
