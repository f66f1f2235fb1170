"""A node home: this institution's identity, listening address and pinned peers.

Layout::

    HOME/
      riskshare.toml      [node] name, listen; [peers.<name>] address, cert, fingerprint
      node.key            Ed25519 private key (mode 0600)
      node.crt            self-signed certificate (what peers pin)
      peers/<name>.pem    pinned peer certificates
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..net.certs import common_name, fingerprint_pem, generate_identity
from ..errors import ConfigError, InputError
from ..net.tls import PinnedPeer, TlsIdentity

CONFIG_FILE = "riskshare.toml"
KEY_FILE = "node.key"
CERT_FILE = "node.crt"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def check_name(name: str, what: str = "name") -> str:
    if not NAME_RE.match(name or ""):
        raise InputError(
            f"invalid {what} '{name}'",
            hint="use letters, digits, '-' and '_' (at most 63 characters, starting with a letter or digit)",
        )
    return name


def parse_address(address: str, what: str = "address") -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port)."""
    match = re.match(r"^\[([0-9A-Fa-f:.]+)\]:(\d+)$", address) or re.match(r"^([^:\s]+):(\d+)$", address or "")
    if not match:
        raise InputError(f"invalid {what} '{address}'", hint="write it as host:port, e.g. 127.0.0.1:7443")
    port = int(match.group(2))
    if not 0 <= port <= 65535:
        raise InputError(f"invalid port in {what} '{address}'")
    return match.group(1), port


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dump_toml(data: dict[str, Any]) -> str:
    """Write our two-level configuration (tables of scalars, and tables of tables)."""
    lines: list[str] = []

    def table(prefix: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        nested = {k: v for k, v in body.items() if isinstance(v, dict)}
        if scalars or not nested:
            lines.append(f"[{prefix}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
            lines.append("")
        for key, sub in nested.items():
            table(f"{prefix}.{key}", sub)

    for key, body in data.items():
        table(key, body)
    return "\n".join(lines)


def write_private(path: Path, data: bytes) -> None:
    """Create a file readable by its owner only (keys, tokens)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class NodeHome:
    path: Path
    config: dict[str, Any]

    # -- creation and loading ---------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike[str], name: str, listen: str) -> "NodeHome":
        home = Path(path)
        check_name(name, "node name")
        host, port = parse_address(listen, "listen address")
        if (home / CONFIG_FILE).exists():
            raise ConfigError(f"{home} is already a riskshare home", hint="choose another --home, or remove it first")
        home.mkdir(parents=True, exist_ok=True)
        (home / "peers").mkdir(exist_ok=True)
        key_pem, cert_pem = generate_identity(name, [host])
        write_private(home / KEY_FILE, key_pem)
        (home / CERT_FILE).write_bytes(cert_pem)
        config = {"node": {"name": name, "listen": format_address(host, port)}, "peers": {}}
        atomic_write(home / CONFIG_FILE, dump_toml(config).encode())
        return cls(home, config)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "NodeHome":
        home = Path(path)
        cfg = home / CONFIG_FILE
        if not cfg.is_file():
            raise ConfigError(
                f"{home} is not a riskshare home (no {CONFIG_FILE})",
                hint="create one with `riskshare init --name NAME --home DIR --listen HOST:PORT`",
            )
        try:
            config = tomllib.loads(cfg.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cfg} is not valid TOML: {exc}") from None
        if "node" not in config or "name" not in config["node"]:
            raise ConfigError(f"{cfg} has no [node] name")
        for required in (KEY_FILE, CERT_FILE):
            if not (home / required).is_file():
                raise ConfigError(f"{home / required} is missing", hint="the home is incomplete; re-create it")
        config.setdefault("peers", {})
        return cls(home, config)

    def save(self) -> None:
        atomic_write(self.path / CONFIG_FILE, dump_toml(self.config).encode())

    # -- identity ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.config["node"]["name"])

    @property
    def listen(self) -> tuple[str, int]:
        return parse_address(self.config["node"]["listen"], "listen address")

    @property
    def cert_path(self) -> Path:
        return self.path / CERT_FILE

    @property
    def key_path(self) -> Path:
        return self.path / KEY_FILE

    @property
    def cert_pem(self) -> bytes:
        return self.cert_path.read_bytes()

    @property
    def fingerprint(self) -> str:
        return fingerprint_pem(self.cert_pem)

    @property
    def identity(self) -> TlsIdentity:
        return TlsIdentity(self.name, self.cert_path, self.key_path)

    # -- peers ------------------------------------------------------------------
    def add_peer(self, name: str, address: str, cert_pem: bytes, *, replace: bool = False) -> PinnedPeer:
        check_name(name, "peer name")
        if name == self.name:
            raise InputError(f"'{name}' is this node's own name")
        host, port = parse_address(address, "peer address")
        fp = fingerprint_pem(cert_pem, "the peer certificate")
        if fp == self.fingerprint:
            raise InputError("that certificate is this node's own", hint="pin the peer's exported certificate")
        if name in self.config["peers"] and not replace:
            raise InputError(f"peer '{name}' is already pinned", hint="add --replace to pin a new certificate")
        for other, entry in self.config["peers"].items():
            if other != name and entry.get("fingerprint") == fp:
                raise InputError(f"that certificate is already pinned as peer '{other}'")
        cert_file = self.path / "peers" / f"{name}.pem"
        cert_file.parent.mkdir(exist_ok=True)
        atomic_write(cert_file, cert_pem)
        self.config["peers"][name] = {
            "address": format_address(host, port),
            "cert": f"peers/{name}.pem",
            "fingerprint": fp,
            "common_name": common_name(cert_pem),
        }
        self.save()
        return self.peer(name)

    def remove_peer(self, name: str) -> None:
        if name not in self.config["peers"]:
            raise InputError(f"no peer named '{name}'")
        del self.config["peers"][name]
        self.save()
        (self.path / "peers" / f"{name}.pem").unlink(missing_ok=True)

    def peer(self, name: str) -> PinnedPeer:
        entry = self.config["peers"].get(name)
        if entry is None:
            known = ", ".join(self.config["peers"]) or "none"
            raise ConfigError(
                f"'{name}' is not a pinned peer of node '{self.name}' (pinned: {known})",
                hint="pin it with `riskshare peer add --name NAME --address HOST:PORT --cert PEER.pem`",
            )
        cert_pem = (self.path / entry["cert"]).read_bytes()
        fp = fingerprint_pem(cert_pem)
        if fp != entry["fingerprint"]:
            raise ConfigError(
                f"the pinned certificate file for '{name}' was changed on disk",
                hint="re-pin the peer with `riskshare peer add --replace`",
            )
        host, port = parse_address(entry["address"], f"address of peer '{name}'")
        return PinnedPeer(name, host, port, cert_pem, fp)

    def peers(self) -> list[PinnedPeer]:
        return [self.peer(name) for name in self.config["peers"]]

    # -- links ------------------------------------------------------------------
    def open_link(self, peer_names: list[str], *, timeout: float = 600.0, reconnect_window: float = 30.0,
                  **options: Any):
        """A network link listening on this node's address, talking to the named pinned peers.

        ``options`` go to :class:`~riskshare.net.NetworkLink` (e.g. ``peer_restarts="accept"`` for a
        long-running server, ``max_message_bytes``).
        """
        from ..net import NetworkLink

        peers = [self.peer(name) for name in peer_names]
        host, port = self.listen
        try:
            return NetworkLink(self.identity, (host, port), peers, timeout=timeout, reconnect_window=reconnect_window,
                               **options)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {format_address(host, port)}: {exc.strerror or exc}",
                hint="another riskshare process or node may be using this port; stop it, or change "
                f"'listen' in {self.path / CONFIG_FILE}",
            ) from None
