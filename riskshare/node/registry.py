"""The data registry: which local tables a node offers, where they live, their schema.

Registering a table reads it once to record its columns and row count and to
check that the ID, label and feature columns exist; the data stays where it
is (a CSV or Parquet file, or a query over the institution's own database)
and is read again, fresh, each time a job uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from ..data import read_table
from ..errors import InputError
from .context import NodeContext
from .errors import Conflict, NotFound
from .home import check_name
from .storage import utcnow
from .storage.models import DataTable


@dataclass(frozen=True)
class TableSource:
    """How to read a registered table (what a job needs, nothing about who registered it)."""

    name: str
    kind: str
    location: str
    database_url: str | None
    id_column: str
    id_type: str
    label: str | None
    features: tuple[str, ...]
    options: dict[str, Any]

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """Read the table now, from where it lives."""
        if self.kind == "file":
            table = read_table(self.location, delimiter=self.options.get("delimiter"),
                               encoding=self.options.get("encoding", "auto"), string_columns=[self.id_column],
                               required_columns=[self.id_column])
        else:
            table = read_sql(self.database_url or "", self.location)
        if columns:
            missing = [c for c in columns if c not in table.column_names]
            if missing:
                raise InputError(f"table '{self.name}' no longer has column(s) {', '.join(missing)}",
                                 hint="the source changed since it was registered; register it again")
            table = table.select(columns)
        return table


def read_sql(database_url: str, query: str) -> pa.Table:
    """Run ``query`` on the institution's database and return the result as an Arrow table."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(database_url)
    except (ArgumentError, ModuleNotFoundError) as exc:
        raise InputError(f"cannot use database URL {_safe(database_url)}: {exc}") from None
    try:
        with engine.connect() as conn:
            result = conn.execute(text(query))
            names = list(result.keys())
            rows = result.fetchall()
    except SQLAlchemyError as exc:
        raise InputError(f"the query failed on {_safe(database_url)}: {str(getattr(exc, 'orig', exc)).strip()}") from None
    finally:
        engine.dispose()
    if len(set(names)) != len(names):
        raise InputError("the query returns duplicate column names", hint="alias them with AS")
    columns = list(zip(*rows)) if rows else [() for _ in names]
    arrays = []
    for values in columns:
        try:
            arrays.append(pa.array(list(values)))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else str(v) for v in values], type=pa.string()))
    return pa.table(dict(zip(names, arrays))) if names else pa.table({})


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid url>"


def source_of(row: DataTable) -> TableSource:
    return TableSource(row.name, row.kind, row.location, row.database_url, row.id_column, row.id_type, row.label,
                       tuple(row.features or ()), dict(row.options or {}))


def table_dict(row: DataTable) -> dict[str, Any]:
    return {
        "name": row.name, "kind": row.kind,
        "location": row.location if row.kind == "file" else None,
        "sql": row.location if row.kind == "sql" else None,
        "database_url": _safe(row.database_url) if row.database_url else None,
        "id_column": row.id_column, "id_type": row.id_type, "label": row.label, "features": list(row.features or []),
        "columns": row.columns, "row_count": row.row_count, "description": row.description,
        "created_at": row.created_at.isoformat(), "created_by": row.created_by,
    }


def add_table(ctx: NodeContext, session: Session, actor: str, *, name: str, path: str | None = None,
              sql: str | None = None, database_url: str | None = None, id_column: str, id_type: str = "any",
              label: str | None = None, features: list[str] | None = None, delimiter: str | None = None,
              encoding: str = "auto", description: str = "", replace: bool = False) -> DataTable:
    """Register a table after reading it once to check and describe it."""
    check_name(name, "table name")
    if bool(path) == bool(sql):
        raise InputError("give either --path (a CSV or Parquet file) or --sql with --database-url")
    if sql and not database_url:
        raise InputError("--sql needs --database-url (the institution database to run it on)")
    if id_type not in ("any", "uscc"):
        raise InputError(f"unknown --id-type '{id_type}'", hint="use 'any' or 'uscc'")
    existing = session.execute(select(DataTable).where(DataTable.name == name)).scalar_one_or_none()
    if existing is not None and existing.removed_at is None and not replace:
        raise Conflict(f"table '{name}' is already registered", hint="add --replace to register it again")
    features = [f for f in (features or []) if f]
    location = str(Path(path).expanduser().resolve()) if path else str(sql)
    source = TableSource(name, "file" if path else "sql", location, database_url, id_column, id_type, label,
                         tuple(features), {"delimiter": delimiter, "encoding": encoding})
    table = source.read()
    wanted = [id_column] + ([label] if label else []) + features
    missing = [c for c in wanted if c not in table.column_names]
    if missing:
        raise InputError(f"{'the query' if sql else path} has no column(s) {', '.join(missing)} "
                         f"(its columns: {', '.join(table.column_names)})", hint="name existing columns")
    if label in features:
        raise InputError(f"'{label}' is both the label and a feature")
    columns = [{"name": f.name, "type": str(f.type)} for f in table.schema]
    if existing is not None:
        session.delete(existing)
        session.flush()
    row = DataTable(name=name, kind=source.kind, location=location, database_url=database_url, id_column=id_column,
                    id_type=id_type, label=label, features=features, columns=columns, row_count=table.num_rows,
                    options=source.options, description=description, created_at=utcnow(), created_by=actor,
                    removed_at=None)
    session.add(row)
    session.flush()
    ctx.audit.append(session, actor, "table.replace" if existing is not None else "table.add", f"table:{name}", {
        "kind": source.kind, "id_column": id_column, "label": label, "features": features,
        "columns": [c["name"] for c in columns], "row_count": table.num_rows,
    })
    return row


def get_table(session: Session, name: str) -> DataTable:
    row = session.execute(select(DataTable).where(DataTable.name == name, DataTable.removed_at.is_(None))).scalar_one_or_none()
    if row is None:
        known = ", ".join(r.name for r in list_tables(session)) or "none"
        raise NotFound(f"no table named '{name}' on this node (registered: {known})",
                       hint="register it with `riskshare table add`")
    return row


def list_tables(session: Session) -> list[DataTable]:
    return list(session.execute(select(DataTable).where(DataTable.removed_at.is_(None)).order_by(DataTable.name)).scalars())


def remove_table(ctx: NodeContext, session: Session, actor: str, name: str) -> None:
    row = get_table(session, name)
    row.removed_at = utcnow()
    ctx.audit.append(session, actor, "table.remove", f"table:{name}", {})

