"""Shared options of the commands that act on a node: locally on its home, or through its API.

With a token (``--token`` or ``RISKSHARE_TOKEN``) or ``--url`` a command goes
through the running node's API as that user, with that user's role. Without
one, commands that allow it act directly on the home's database as the
operator who has access to the home (recorded in the audit log as
``local:<os user>``) — this is how the first admin is created.
"""

from __future__ import annotations

from contextlib import contextmanager

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from ..client import TOKEN_ENV, Client
from ..errors import ConfigError


def node_options(f: Callable[..., Any] | None = None, *, node_db: bool = True) -> Any:
    """Add --home/--url/--token/--cert/--fingerprint (and --database-url for the node's own database)."""
    if f is None:
        return lambda g: node_options(g, node_db=node_db)
    options = [
        click.option("--home", type=click.Path(file_okay=False, path_type=Path),
                     help="The node's home (its address and certificate, or its database when acting locally)."),
        click.option("--url", help="The node's API address, https://HOST:PORT (instead of --home)."),
        click.option("--token", envvar=TOKEN_ENV, help=f"API token (or set {TOKEN_ENV})."),
        click.option("--cert", type=click.Path(dir_okay=False, path_type=Path),
                     help="The node's certificate (PEM) to pin, with --url."),
        click.option("--fingerprint", help="The node's certificate fingerprint to pin, with --url."),
    ]
    if node_db:
        options.append(click.option("--database-url", help="The node's database, when acting locally "
                                    "(default: the home's, or RISKSHARE_DATABASE_URL)."))
    for option in reversed(options):
        f = option(f)
    return f


class Target:
    """Where a command acts: ``client`` (through the API) or ``ctx`` (on the home directly)."""

    def __init__(self, home: Path | None, url: str | None, token: str | None, cert: Path | None,
                 fingerprint: str | None, database_url: str | None) -> None:
        self.home, self.url, self.token = home, url, token
        self.cert, self.fingerprint, self.database_url = cert, fingerprint, database_url

    @property
    def remote(self) -> bool:
        return bool(self.token or self.url)

    def client(self) -> Client:
        if self.url:
            cert: Any = self.cert
            if cert is None and self.home is not None:
                from ..node.home import NodeHome

                cert = NodeHome.open(self.home).cert_pem
            return Client(self.url, self.token, cert=cert, fingerprint=self.fingerprint)
        if self.home is None:
            raise ConfigError("say which node: --home DIR (or --url with --cert/--fingerprint)")
        return Client.for_home(self.home, self.token)

    def context(self):  # -> NodeContext
        from ..node.context import NodeContext

        if self.home is None:
            raise ConfigError("--home is needed to act on a node locally (or give --token to use its API)")
        return NodeContext.open(self.home, self.database_url)

    @contextmanager
    def local_session(self) -> Iterator[tuple[Any, Any]]:
        """(NodeContext, database session) on the home, for commands that act without the API."""
        ctx = self.context()
        try:
            with ctx.db.session() as session:
                yield ctx, session
        finally:
            ctx.close()

    def require_remote(self, what: str) -> Client:
        if not self.token:
            raise ConfigError(f"{what} needs the running node and an API token",
                              hint=f"pass --token or set {TOKEN_ENV} (`riskshare user add` prints one)")
        return self.client()


def target(**kwargs: Any) -> Target:
    return Target(kwargs["home"], kwargs["url"], kwargs["token"], kwargs["cert"], kwargs["fingerprint"],
                  kwargs.get("database_url"))


def api_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Split the node options off a command's keyword arguments."""
    keys = ("home", "url", "token", "cert", "fingerprint", "database_url")
    return {k: kwargs.pop(k) for k in keys}


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        render(data)


def table_out(rows: list[dict[str, Any]], columns: list[str], empty: str = "none") -> None:
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
