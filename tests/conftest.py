"""Shared fixtures: free ports, node homes that pin each other, the riskshare command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from riskshare.node.home import NodeHome


def free_port() -> int:
    """A TCP port nobody is listening on right now (tests never use fixed ports)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 60.0) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:port."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def make_homes(root: Path, *names: str) -> dict[str, NodeHome]:
    """Node homes on free loopback ports, every pair pinned to each other."""
    homes = {n: NodeHome.init(root / n, n, f"127.0.0.1:{free_port()}") for n in names}
    for a in homes.values():
        for b in homes.values():
            if a is not b:
                a.add_peer(b.name, b.config["node"]["listen"], b.cert_pem)
    return {n: NodeHome.open(h.path) for n, h in homes.items()}


@pytest.fixture
def two_homes(tmp_path: Path) -> dict[str, NodeHome]:
    return make_homes(tmp_path, "bank", "broker")


def riskshare_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "riskshare", *args]


def run_cli(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(riskshare_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
