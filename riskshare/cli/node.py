"""``riskshare node``: run a node service."""

from __future__ import annotations

from pathlib import Path

import click

from ..node.home import NodeHome
from . import main


@main.group()
def node() -> None:
    """Run and inspect a node service (one HTTPS port: API, peer endpoint, link)."""


@node.command("start")
@click.option("--home", required=True, type=click.Path(file_okay=False, path_type=Path), help="The node's home.")
@click.option("--database-url", help="e.g. postgresql+psycopg://riskshare@db/riskshare (remembered in riskshare.toml).")
@click.option("--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True)
def start(home: Path, database_url: str | None, log_format: str, log_level: str) -> None:
    """Serve the node until SIGTERM or Ctrl-C (then stop gracefully)."""
    from ..node import logs
    from ..node.service import run_forever

    node_home = NodeHome.open(home)
    if database_url and node_home.config.get("service", {}).get("database_url") != database_url:
        node_home.config.setdefault("service", {})["database_url"] = database_url
        node_home.save()  # later local commands (user add, table add, ...) use the same database
    logs.configure(log_level, log_format)
    run_forever(home, database_url)


@node.command("status")
@click.option("--home", required=True, type=click.Path(file_okay=False, path_type=Path), help="The node's home.")
def status(home: Path) -> None:
    """Say whether the node of this home is up (its /healthz)."""
    import httpx

    from ..client import pinned_context
    from ..node.home import format_address

    node_home = NodeHome.open(home)
    host, port = node_home.listen
    host = "127.0.0.1" if host == "0.0.0.0" else host
    url = f"https://{format_address(host, port)}"
    try:
        answer = httpx.get(url + "/healthz", verify=pinned_context(node_home.cert_pem), timeout=5).json()
    except httpx.HTTPError as exc:
        click.echo(f"node '{node_home.name}' at {url}: not answering ({type(exc).__name__})")
        raise SystemExit(3) from None
    click.echo(f"node '{answer['node']}' at {url}: {answer['status']} (riskshare {answer['version']})")
