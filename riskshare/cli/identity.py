"""``riskshare init``, ``identity`` and ``peer``: a node's identity and its pinned peers."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InputError
from ..node.home import NodeHome
from . import main

home_option = click.option(
    "--home", required=True, type=click.Path(file_okay=False, path_type=Path), help="The node's home directory."
)


@main.command()
@click.option("--name", required=True, help="This node's name, e.g. bank.")
@home_option
@click.option("--listen", required=True, help="Address to listen on, host:port (e.g. 127.0.0.1:7443).")
def init(name: str, home: Path, listen: str) -> None:
    """Create a node home: private key (mode 0600), self-signed certificate, riskshare.toml."""
    node = NodeHome.init(home, name, listen)
    click.echo(f"created node '{node.name}' in {node.path} (listens on {node.config['node']['listen']})")
    click.echo(f"certificate fingerprint (SHA-256): {node.fingerprint}")


@main.command()
@home_option
@click.option("--export", "export", type=click.Path(dir_okay=False, path_type=Path), help="Write the certificate here.")
def identity(home: Path, export: Path | None) -> None:
    """Show this node's certificate fingerprint; export the certificate for peers to pin."""
    node = NodeHome.open(home)
    if export:
        export.write_bytes(node.cert_pem)
        click.echo(f"wrote {export}")
    click.echo(f"node: {node.name}")
    click.echo(f"listen: {node.config['node']['listen']}")
    click.echo(f"fingerprint (SHA-256): {node.fingerprint}")


@main.group()
def peer() -> None:
    """Pin, list and remove peers."""


@peer.command("add")
@home_option
@click.option("--name", required=True, help="The peer's name as this node will call it.")
@click.option("--address", required=True, help="The peer's host:port.")
@click.option("--cert", "cert", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The peer's exported certificate (PEM).")
@click.option("--replace", is_flag=True, help="Replace an already pinned certificate or address.")
def peer_add(home: Path, name: str, address: str, cert: Path, replace: bool) -> None:
    """Pin a peer's certificate. Confirm the printed fingerprint with its operator."""
    node = NodeHome.open(home)
    if not cert.is_file():
        raise InputError(f"certificate file {cert} does not exist")
    pinned = node.add_peer(name, address, cert.read_bytes(), replace=replace)
    click.echo(f"pinned peer '{pinned.name}' at {pinned.address}")
    click.echo(f"fingerprint (SHA-256): {pinned.fingerprint}")
    click.echo("confirm this fingerprint with the peer's operator (e.g. by phone) before running jobs")


@peer.command("list")
@home_option
def peer_list(home: Path) -> None:
    """List pinned peers."""
    node = NodeHome.open(home)
    peers = node.peers()
    if not peers:
        click.echo("no peers pinned")
        return
    for p in peers:
        click.echo(f"{p.name}\t{p.address}\t{p.fingerprint}")


@peer.command("remove")
@home_option
@click.option("--name", required=True)
def peer_remove(home: Path, name: str) -> None:
    """Unpin a peer: its connections are refused from now on."""
    NodeHome.open(home).remove_peer(name)
    click.echo(f"removed peer '{name}'")
