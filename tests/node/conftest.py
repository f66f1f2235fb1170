"""Fixtures for the node tests: databases (SQLite and a real PostgreSQL), node homes, two pinned nodes."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from riskshare.node.context import NodeContext
from riskshare.node.home import NodeHome

PG_ADMIN_URL = os.environ.get("RISKSHARE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="session")
def pg_admin() -> str:
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} (CI must provide it)")
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_admin: str) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"riskshare_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'node.db'}"
    return request.getfixturevalue("pg_url")


def write_ids(path: Path, column: str, ids: range | list[str], extra: str = "score") -> Path:
    lines = [f"{column},{extra}"] + [f"C{int(i):08d},{int(i) % 97}" if not isinstance(i, str) else f"{i},1"
                                     for i in ids]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def home(tmp_path: Path) -> NodeHome:
    return NodeHome.init(tmp_path / "bank", "bank", f"127.0.0.1:{free_port()}")


@pytest.fixture
def ctx(tmp_path: Path, home: NodeHome, database_url: str) -> Iterator[NodeContext]:
    """A node context on the parametrised database, with a pinned peer 'broker' and a table."""
    broker = NodeHome.init(tmp_path / "broker", "broker", f"127.0.0.1:{free_port()}")
    home.add_peer("broker", broker.config["node"]["listen"], broker.cert_pem)
    context = NodeContext.open(home.path, database_url)
    yield context
    context.close()


@dataclass
class Pair:
    """Two pinned nodes (bank, broker) with a table each and one user of every role on each."""

    root: Path
    bank: NodeHome
    broker: NodeHome
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> role -> token

    def home(self, name: str) -> Path:
        return self.root / name


def make_pair(root: Path, bank_ids: range = range(0, 1000), broker_ids: range = range(500, 1500),
              database_urls: dict[str, str] | None = None) -> Pair:
    from riskshare.node import registry, users

    bank = NodeHome.init(root / "bank", "bank", f"127.0.0.1:{free_port()}")
    broker = NodeHome.init(root / "broker", "broker", f"127.0.0.1:{free_port()}")
    bank.add_peer("broker", broker.config["node"]["listen"], broker.cert_pem)
    broker.add_peer("bank", bank.config["node"]["listen"], bank.cert_pem)
    write_ids(root / "clients.csv", "uscc", bank_ids)
    write_ids(root / "risk.csv", "id", broker_ids)
    pair = Pair(root, bank, broker)
    for node, table, path, column in (("bank", "risk_clients", "clients.csv", "uscc"),
                                      ("broker", "broker_risk", "risk.csv", "id")):
        if database_urls and node in database_urls:
            h = NodeHome.open(root / node)
            h.config["service"] = {"database_url": database_urls[node]}
            h.save()
        context = NodeContext.open(root / node)
        try:
            with context.db.session() as s:
                pair.tokens[node] = {}
                for role in ("admin", "data_owner", "analyst", "auditor"):
                    _, token = users.add_user(context, s, "local:test", f"{role.replace('_', '')}1", role)
                    pair.tokens[node][role] = token
                registry.add_table(context, s, "local:test", name=table, path=str(root / path), id_column=column)
        finally:
            context.close()
    return pair


def add_grant(pair: Pair, node: str, **kwargs: object) -> int:
    from riskshare.node import grants

    context = NodeContext.open(pair.home(node))
    try:
        with context.db.session() as s:
            defaults = {"table": "risk_clients" if node == "bank" else "broker_risk",
                        "peer": "broker" if node == "bank" else "bank", "ops": ["psi"],
                        "purpose": "post-loan monitoring", "expires": "2099-12-31"}
            defaults.update(kwargs)
            return grants.add_grant(context, s, "local:test", **defaults).id  # type: ignore[arg-type]
    finally:
        context.close()
