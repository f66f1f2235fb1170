"""Opening the node's database and keeping its schema current.

SQLite in the node home by default (``HOME/node.db``, WAL mode), or any URL
SQLAlchemy understands, e.g. ``postgresql+psycopg://user@host/db`` for
production. The schema is brought to the newest Alembic revision whenever a
node or a local command opens the database, so tables are never created or
changed by hand.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ...errors import ConfigError

log = logging.getLogger("riskshare.node.storage")
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)  # one line per open is noise

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
DB_FILE = "node.db"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def default_database_url(home: Path) -> str:
    return f"sqlite:///{(Path(home) / DB_FILE).resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level so that SQLAlchemy's "begin" hook below decides how
    # transactions start; WAL lets readers run while a job writes.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Take the write lock up front: read-then-write transactions (audit appends, quota
    # counters) from several threads or processes then queue instead of failing with
    # "database is locked" halfway through. Reads (Database.read) need no lock in WAL mode.
    if conn.get_execution_options().get("riskshare_readonly"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine plus a session factory; ``with db.session() as s:`` commits or rolls back."""

    def __init__(self, url: str, *, migrate: bool = True, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError(f"'{url}' is not a database URL",
                              hint="e.g. sqlite:///node.db or postgresql+psycopg://user@host/dbname") from None
        self.url = url
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except (ArgumentError, ModuleNotFoundError, SQLAlchemyError) as exc:
            raise ConfigError(f"cannot use database {self.safe_url}: {exc}") from None
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            self.migrate()

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages and logs."""
        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except ArgumentError:
            return "<invalid url>"

    @classmethod
    def for_home(cls, home: Path, url: str | None = None, **kwargs: Any) -> "Database":
        return cls(url or default_database_url(home), **kwargs)

    def migrate(self) -> None:
        """Upgrade the schema to the newest revision (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise ConfigError(
                f"cannot open database {self.safe_url}: {str(exc.orig).strip().splitlines()[0]}",
                hint="check that the database server is running and the URL is right",
            ) from None

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("select version_num from alembic_version")).scalar()

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection for hot read paths (status polling): no ORM, no write lock."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(riskshare_readonly=True)
            try:
                yield conn
            finally:
                conn.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
