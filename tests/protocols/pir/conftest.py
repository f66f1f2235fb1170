"""Fixtures for the PIR tests: a served table and a client over an in-memory link."""

from __future__ import annotations

import threading
from typing import Iterator

import pyarrow as pa
import pytest

from riskshare.net import memory_pair
from riskshare.protocols.pir import PirClient, PirServer, ServerTable, prepare_table


def make_table(records: dict[str, tuple[str, str]]) -> pa.Table:
    keys = list(records)
    return pa.table({
        "uscc": pa.array(keys, type=pa.string()),
        "level": pa.array([records[k][0] for k in keys], type=pa.string()),
        "reason": pa.array([records[k][1] for k in keys], type=pa.string()),
    })


def server_table(records: dict[str, tuple[str, str]], name: str = "risk") -> ServerTable:
    keys, values, columns = prepare_table(make_table(records), "uscc", "test table")
    return ServerTable.build(name, keys, values, columns)


class Session:
    """A running server thread and a client, on one memory link pair."""

    def __init__(self, table: ServerTable, mode: str = "cached", **server_options) -> None:
        self.client_link, self.server_link = memory_pair("client", "server", timeout=20)
        self.server = PirServer(table, mode=mode, **server_options)
        self.events: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.server.serve, args=(self.server_link, ["client"], self.stop),
                                       kwargs={"on_event": self.events.append}, daemon=True)
        self.thread.start()
        self.mode = mode

    def client(self, **options) -> PirClient:
        return PirClient(self.client_link, "server", mode=self.mode, **options)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def session_factory() -> Iterator:
    sessions: list[Session] = []

    def make(table: ServerTable, mode: str = "cached", **options) -> Session:
        s = Session(table, mode, **options)
        sessions.append(s)
        return s

    yield make
    for s in sessions:
        s.close()


RECORDS = {
    "91310000MA1FL1XB2X": ("high", "fraud"),
    "91350100M000100Y43": ("low", "late payment, twice"),
    "9144030071526726XG": ("medium", "上市公司 关联交易"),
    "A1": ("high", ""),
}
