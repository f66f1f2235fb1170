"""Talking to peer nodes' ``/peer/v1`` endpoints: HTTPS with mutual TLS and pinned certificates.

Each request presents this node's certificate and accepts only the
certificate pinned for that peer; the peer's node identifies us by our
certificate, never by anything in the request body.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any

import httpx

from ..errors import PeerUnavailable
from ..net.tls import PinnedPeer
from .errors import PeerRefused
from .home import NodeHome, format_address

log = logging.getLogger("riskshare.node.peers")


def peer_ssl_context(home: NodeHome, peer: PinnedPeer) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # the identity is the pinned certificate, not a host name
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=peer.cert_pem.decode())
    ctx.load_cert_chain(str(home.cert_path), str(home.key_path))
    return ctx


class PeerClient:
    """One HTTP client per pinned peer, rebuilt when the pinning changes."""

    def __init__(self, home: NodeHome, timeout: float = 15.0) -> None:
        self.home = home
        self.timeout = timeout
        self._clients: dict[str, tuple[PinnedPeer, httpx.Client]] = {}
        self._lock = threading.Lock()

    def _client(self, name: str) -> tuple[PinnedPeer, httpx.Client]:
        peer = self.home.peer(name)
        with self._lock:
            cached = self._clients.get(name)
            if cached is not None and cached[0] == peer:
                return cached
            if cached is not None:
                cached[1].close()
            client = httpx.Client(base_url=f"https://{format_address(peer.host, peer.port)}/peer/v1",
                                  verify=peer_ssl_context(self.home, peer), timeout=self.timeout)
            self._clients[name] = (peer, client)
            return peer, client

    def call(self, peer_name: str, method: str, path: str, json: Any = None, *, timeout: float | None = None) -> Any:
        """Call the peer; return its JSON answer. Unreachable -> PeerUnavailable; a refusal -> PeerRefused."""
        peer, client = self._client(peer_name)
        try:
            response = client.request(method, path, json=json, timeout=timeout or self.timeout)
        except (httpx.TransportError, ssl.SSLError, OSError) as exc:
            raise PeerUnavailable(f"cannot reach peer '{peer_name}' at {peer.address}: {type(exc).__name__}: {exc}",
                                  hint="check that its node is running and reachable") from None
        if response.status_code >= 500:
            raise PeerUnavailable(f"peer '{peer_name}' answered {response.status_code}: {_detail(response)}")
        if response.status_code >= 400:
            raise PeerRefused(f"peer '{peer_name}' refused: {_detail(response)}")
        return response.json()

    def close(self) -> None:
        with self._lock:
            for _, client in self._clients.values():
                client.close()
            self._clients.clear()


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and "detail" in body:
            return str(body["detail"])
    except ValueError:
        pass
    return response.text[:300]
