"""``riskshare table``: the node's data registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from . import main
from ._api import emit, json_option, node_options, table_out, target


@main.group()
def table() -> None:
    """Register the local tables this node offers (the data stays where it is)."""


@table.command("add")
@node_options(node_db=False)
@click.option("--name", required=True, help="The table's name on this node (what grants and jobs refer to).")
@click.option("--path", type=click.Path(dir_okay=False, path_type=Path), help="A CSV or Parquet file.")
@click.option("--sql", help="A query over the institution's database (with --database-url).")
@click.option("--database-url", "source_url", help="Database URL the --sql query runs on (e.g. postgresql+psycopg://...).")
@click.option("--id-column", required=True, help="The column holding client IDs.")
@click.option("--id-type", type=click.Choice(["any", "uscc"]), default="any", show_default=True)
@click.option("--label", help="The label column (for training).")
@click.option("--features", default="", help="Feature columns, comma-separated.")
@click.option("--delimiter", help="CSV delimiter (default: detected).")
@click.option("--encoding", default="auto", show_default=True, help="auto, utf-8, gbk or gb18030.")
@click.option("--description", default="")
@click.option("--replace", is_flag=True, help="Register again under the same name.")
@json_option
def add(name: str, path: Path | None, sql: str | None, source_url: str | None, id_column: str, id_type: str,
        label: str | None, features: str, delimiter: str | None, encoding: str, description: str, replace: bool,
        as_json: bool, **kw: Any) -> None:
    """Register a table: its schema and row count are recorded now, its data read at job time.

    Here --database-url is the institution database the --sql query runs on; the
    node's own database comes from the home (or RISKSHARE_DATABASE_URL).
    """
    feats = [f.strip() for f in features.split(",") if f.strip()]
    args = dict(name=name, path=str(path.resolve()) if path else None, sql=sql, database_url=source_url,
                id_column=id_column, id_type=id_type, label=label, features=feats, delimiter=delimiter,
                encoding=encoding, description=description, replace=replace)
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            row = client.add_table(**args)
    else:
        from ..node import registry
        from ..node.context import local_actor

        with t.local_session() as (ctx, s):
            row = registry.table_dict(registry.add_table(ctx, s, local_actor(), **args))
    emit(row, as_json, lambda r: click.echo(
        f"registered table '{r['name']}': {r['row_count']} rows, columns {', '.join(c['name'] for c in r['columns'])}"))


@table.command("list")
@node_options
@json_option
def list_(as_json: bool, **kw: Any) -> None:
    """List registered tables."""
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            rows = client.tables()
    else:
        from ..node import registry

        with t.local_session() as (ctx, s):
            rows = [registry.table_dict(r) for r in registry.list_tables(s)]
    emit(rows, as_json, lambda r: table_out(r, ["name", "kind", "id_column", "label", "features", "row_count"],
                                            "no tables registered"))


@table.command("remove")
@node_options
@click.option("--name", required=True)
def remove(name: str, **kw: Any) -> None:
    """Take a table out of the registry (jobs can no longer use it)."""
    t = target(**kw)
    if t.remote:
        with t.client() as client:
            client.remove_table(name)
    else:
        from ..node import registry
        from ..node.context import local_actor

        with t.local_session() as (ctx, s):
            registry.remove_table(ctx, s, local_actor(), name)
    click.echo(f"removed table '{name}'")
