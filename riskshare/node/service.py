"""The node service: a node home brought to life on its one listening address.

In-process (tests, notebooks, the demo)::

    with NodeService("./bank") as node:
        print(node.url)          # https://127.0.0.1:7443

As a process: ``riskshare node start --home ./bank`` (SIGTERM or Ctrl-C stop it
gracefully), or :class:`NodeProcess` to start and stop one from Python with
no orphan left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..net import NetworkLink
from .context import NodeContext
from .home import format_address
from .jobs.manager import JobManager
from .metrics import NodeMetrics
from .peers import PeerClient
from .users import AuthCache

log = logging.getLogger("riskshare.node")


class NodeService:
    def __init__(self, home: str | os.PathLike[str], *, database_url: str | None = None,
                 link_timeout: float = 600.0, **job_options: Any) -> None:
        self.ctx = NodeContext.open(home, database_url)
        home_obj = self.ctx.home
        self.metrics = NodeMetrics()
        self.link = NetworkLink(home_obj.identity, None, home_obj.peers(), timeout=link_timeout,
                                reconnect_window=60.0, peer_restarts="accept")
        self.peer_client = PeerClient(home_obj)
        self.jobs = JobManager(self, **job_options)
        self.auth_cache = AuthCache()
        self._peers_mtime = self._config_mtime()
        self._https_ctx = self._make_https_context()
        self._peer_lock = threading.Lock()
        from .api.app import create_app

        self.app = create_app(self)
        self.metrics.attach(self)
        from .server import NodeServer

        self.server = NodeServer(self)
        self._stopped = threading.Event()
        self.started_at: float | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> "NodeService":
        try:
            self.server.start()
        except OSError as exc:
            self.ctx.close()
            host, port = self.ctx.home.listen
            raise ConfigError(f"cannot listen on {format_address(host, port)}: {exc.strerror or exc}",
                              hint="another node or program may be using this port; stop it, or change 'listen' "
                              f"in {self.ctx.home.path / 'riskshare.toml'}") from None
        self.jobs.start()
        self.started_at = time.time()
        self.ctx.audit.record("node", "node.start", f"node:{self.ctx.name}", {"address": self.address})
        log.info("node '%s' listening on https://%s (database %s)", self.ctx.name, self.address, self.ctx.db.safe_url)
        return self

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        log.info("node '%s' stopping", self.ctx.name)
        self.jobs.stop()
        self.server.stop()
        try:
            self.ctx.audit.record("node", "node.stop", f"node:{self.ctx.name}", {})
        except Exception:  # noqa: BLE001 - the database may be gone at shutdown
            pass
        self.link.close(notify_peers=False)
        self.peer_client.close()
        self.ctx.close()

    def wait(self) -> None:
        self._stopped.wait()

    def __enter__(self) -> "NodeService":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        host, port = self.server.address or self.ctx.home.listen
        return format_address(host, port)

    @property
    def url(self) -> str:
        return f"https://{self.address}"

    # -- TLS and peers ------------------------------------------------------------------
    def _config_mtime(self) -> float:
        try:
            return (self.ctx.home.path / "riskshare.toml").stat().st_mtime
        except OSError:
            return 0.0

    def _make_https_context(self) -> ssl.SSLContext:
        from ..net.tls import server_context

        home = self.ctx.home
        ctx = server_context(home.identity, home.peers(), require_client_cert=False)
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def https_context(self) -> ssl.SSLContext:
        return self._https_ctx

    def refresh_peers(self, force: bool = False) -> None:
        """Pick up peers pinned or removed since start (``riskshare peer add`` edits riskshare.toml)."""
        mtime = self._config_mtime()
        if not force and mtime == self._peers_mtime:
            return
        with self._peer_lock:
            from .home import NodeHome

            fresh = NodeHome.open(self.ctx.home.path)
            before = {n: e.get("fingerprint") for n, e in self.ctx.home.config.get("peers", {}).items()}
            self.ctx.home.config = fresh.config
            self._peers_mtime = mtime
            self.link.set_peers(self.ctx.home.peers())
            self._https_ctx = self._make_https_context()
            after = {n: e.get("fingerprint") for n, e in self.ctx.home.config.get("peers", {}).items()}
            if before != after:  # pinned or removed outside the API (`riskshare peer add|remove`)
                self.ctx.audit.record("local:riskshare.toml", "peer.change", f"node:{self.ctx.name}", {
                    "added": sorted(set(after) - set(before)), "removed": sorted(set(before) - set(after)),
                    "repinned": sorted(n for n in set(before) & set(after) if before[n] != after[n])})
            log.info("peers reloaded: %s", ", ".join(after) or "none")

    def peer_by_fingerprint(self, fingerprint: str | None) -> str | None:
        if not fingerprint:
            return None
        self.refresh_peers()
        for name, entry in self.ctx.home.config.get("peers", {}).items():
            if entry.get("fingerprint") == fingerprint:
                return name
        return None


def run_forever(home: str | os.PathLike[str], database_url: str | None = None) -> None:
    """What ``riskshare node start`` does: serve until SIGTERM or SIGINT, then stop gracefully."""
    node = NodeService(home, database_url=database_url)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    node.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        node.stop()


class NodeProcess:
    """A node in a child process: ``start()`` waits until it answers, ``stop()`` ends it (SIGTERM, then SIGKILL).

    The child dies with its parent on Linux (PR_SET_PDEATHSIG), so a crashed test
    or demo leaves no orphan node behind.
    """

    def __init__(self, home: str | os.PathLike[str], *, database_url: str | None = None,
                 log_path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.home = Path(home)
        self.database_url = database_url
        self.log_path = Path(log_path) if log_path else self.home / "node.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> "NodeProcess":
        cmd = [sys.executable, "-m", "riskshare", "node", "start", "--home", str(self.home)]
        if self.database_url:
            cmd += ["--database-url", self.database_url]
        env = {**os.environ, **(self.env or {})}
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        import httpx

        from ..client import pinned_context
        from .home import NodeHome

        home = NodeHome.open(self.home)
        host, port = home.listen
        url = f"https://{format_address(host, port)}/healthz"
        ctx = pinned_context(home.cert_pem)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ConfigError(f"node in {self.home} exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(url, verify=ctx, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise ConfigError(f"node in {self.home} did not answer within {timeout:g} s; see {self.log_path}")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, for tests of restart recovery."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self._log.close()

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
