"""One node's state on disk: its home, database and audit log, opened together.

The service and the local CLI commands (``riskshare user add --home ./bank``)
both work through a :class:`NodeContext`, so a change made either way is
checked, stored and audited the same way.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from ..net.certs import load_private_key
from .audit import AuditLog
from .home import NodeHome
from .storage import Database

DATABASE_URL_ENV = "RISKSHARE_DATABASE_URL"


def configured_database_url(home: NodeHome, override: str | None = None) -> str | None:
    """``--database-url``, else ``RISKSHARE_DATABASE_URL``, else ``[service] database_url`` in riskshare.toml."""
    return override or os.environ.get(DATABASE_URL_ENV) or home.config.get("service", {}).get("database_url")


class NodeContext:
    def __init__(self, home: NodeHome, db: Database) -> None:
        self.home = home
        self.db = db
        self.audit = AuditLog(db, home.name, load_private_key(home.key_path.read_bytes()))

    @classmethod
    def open(cls, path: str | os.PathLike[str], database_url: str | None = None) -> "NodeContext":
        home = NodeHome.open(path)
        return cls(home, Database.for_home(home.path, configured_database_url(home, database_url)))

    @property
    def name(self) -> str:
        return self.home.name

    @property
    def artifacts_dir(self) -> Path:
        return self.home.path / "artifacts"

    def close(self) -> None:
        self.db.dispose()


def local_actor() -> str:
    """Who a local command acts as: the operating-system user with access to the home."""
    try:
        return f"local:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return f"local:uid{os.getuid()}"
