"""One TLS port for everything: the REST API, the peer endpoint and the link.

Each accepted TCP connection is routed by the ALPN protocol its TLS
ClientHello offers, read with ``MSG_PEEK`` before any byte is consumed:

* ``riskshare-link/1`` (what :class:`~riskshare.net.NetworkLink` offers) — the
  raw socket goes to the node's link in a thread of its own, which does the
  TLS 1.3 handshake with pinned client certificates *required* and then runs
  the link's framing, acknowledgements and resend exactly as a stand-alone
  ``riskshare psi`` does. Bulk protocol traffic (an OT-PSI run moves ~100 MB)
  thus flows through blocking OpenSSL reads straight into numpy buffers, off
  the event loop that serves the API.
* anything else — HTTPS on the asyncio event loop, served by uvicorn's HTTP
  protocol with the FastAPI app. Client certificates are *optional* (browsers
  and the SDK have none); a certificate that is presented must be a pinned
  peer's or the handshake fails, and ``/peer/v1`` requires one.

Why not tunnel the link through HTTP (WebSocket or a streaming request)?
It would add a second framing layer, copies and event-loop work for every
byte of protocol traffic, and tie the link's reliability to the HTTP stack's;
routing by ALPN keeps one port and the link code unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from ..net.certs import fingerprint_der
from ..net.tls import LINK_ALPN

if TYPE_CHECKING:
    from .service import NodeService

log = logging.getLogger("riskshare.node.server")

_PEEK_TIMEOUT = 10.0
_MAX_HELLO = 5 + 16384  # one TLS record


def offered_alpn(hello: bytes) -> list[bytes] | None:
    """The ALPN protocol names in a TLS ClientHello record, [] if none, None if it is not one."""
    try:
        if len(hello) < 9 or hello[0] != 0x16 or hello[5] != 0x01:
            return None
        body = hello[5 : 5 + int.from_bytes(hello[3:5], "big")]
        p = 4 + 2 + 32  # handshake header, legacy version, random
        p += 1 + body[p]  # session id
        p += 2 + int.from_bytes(body[p : p + 2], "big")  # cipher suites
        p += 1 + body[p]  # compression methods
        end = min(p + 2 + int.from_bytes(body[p : p + 2], "big"), len(body))
        p += 2
        while p + 4 <= end:
            ext_type = int.from_bytes(body[p : p + 2], "big")
            ext_len = int.from_bytes(body[p + 2 : p + 4], "big")
            p += 4
            if ext_type == 16:  # application_layer_protocol_negotiation (RFC 7301)
                names, q, data = [], 0, body[p + 2 : p + ext_len]
                while q < len(data):
                    n = data[q]
                    names.append(bytes(data[q + 1 : q + 1 + n]))
                    q += 1 + n
                return names
            p += ext_len
        return []
    except IndexError:
        return None


class NodeServer:
    """Accepts on the node's address and routes connections; runs its own event loop thread."""

    def __init__(self, node: "NodeService") -> None:
        import uvicorn
        from uvicorn.server import ServerState

        self.node = node
        self.config = uvicorn.Config(node.app, http="h11", interface="asgi3", lifespan="off", log_config=None, access_log=False,
                                     server_header=False, date_header=False, timeout_keep_alive=30)
        self.config.load()
        self.state = ServerState()
        self.loop = asyncio.new_event_loop()
        self.listener: socket.socket | None = None
        self.address: tuple[str, int] | None = None
        self.refused: list[str] = []
        self._thread: threading.Thread | None = None
        self._accept_task: asyncio.Task[Any] | None = None
        self._tick_task: asyncio.Task[Any] | None = None
        self._started = threading.Event()
        self._stop_requested: asyncio.Event | None = None
        self._shutdown_timeout = 10.0
        self._protocol_class = _tls_aware(self.config.http_protocol_class)

    # -- lifecycle (called from any thread) ---------------------------------------------
    def start(self) -> None:
        host, port = self.node.ctx.home.listen
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, port), family=family, backlog=256, reuse_port=False)
        self.listener.setblocking(False)
        self.address = self.listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._run, name=f"rs-server-{self.node.ctx.name}", daemon=True)
        self._thread.start()
        self._started.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._shutdown_timeout = timeout
        self.loop.call_soon_threadsafe(self._stop_requested.set)
        self._thread.join(timeout=timeout + 5)
        self._thread = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            # One long-lived main task: anyio (FastAPI's thread pool for sync endpoints) ties its
            # worker threads to the root task; without one it would start a thread per request.
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stop_requested = asyncio.Event()
        self._accept_task = self.loop.create_task(self._accept_loop())
        self._tick_task = self.loop.create_task(self._tick())
        self._started.set()
        await self._stop_requested.wait()
        await self._shutdown(self._shutdown_timeout)

    async def _shutdown(self, timeout: float) -> None:
        if self._accept_task is not None:
            self._accept_task.cancel()
        if self._tick_task is not None:
            self._tick_task.cancel()
        if self.listener is not None:
            self.listener.close()
        for connection in list(self.state.connections):
            connection.shutdown()
        deadline = time.monotonic() + timeout
        while self.state.tasks and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for task in list(self.state.tasks):
            task.cancel()

    async def _tick(self) -> None:
        while True:  # the Date header uvicorn's own main loop would keep fresh
            self.state.default_headers = [(b"date", formatdate(usegmt=True).encode())]
            await asyncio.sleep(1.0)

    # -- accepting and routing ----------------------------------------------------------
    async def _accept_loop(self) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, addr = await self.loop.sock_accept(self.listener)
            except asyncio.CancelledError:
                return
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            self.loop.create_task(self._route(sock, addr))

    async def _route(self, sock: socket.socket, addr: tuple[str, int]) -> None:
        try:
            hello = await self._peek_hello(sock)
        except (OSError, asyncio.TimeoutError):
            hello = None
        if hello is None:
            sock.close()
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.node.refresh_peers()
        protocols = offered_alpn(hello) or []
        if LINK_ALPN.encode() in protocols:
            self.node.metrics.connections.labels("link").inc()
            threading.Thread(target=self.node.link.serve_inbound, args=(sock, addr), name="rs-link-in",
                             daemon=True).start()
            return
        self.node.metrics.connections.labels("https").inc()
        try:
            await self.loop.connect_accepted_socket(
                lambda: self._protocol_class(config=self.config, server_state=self.state, app_state={}),
                sock, ssl=self.node.https_context(), ssl_handshake_timeout=_PEEK_TIMEOUT,
            )
        except (ssl.SSLError, OSError, ConnectionError, asyncio.TimeoutError) as exc:
            reason = f"refused an HTTPS connection from {addr[0]}:{addr[1]}: {_reason(exc)}"
            if "certificate" in str(exc).lower() or "unknown ca" in str(exc).lower():
                reason = f"refused a connection from {addr[0]}:{addr[1]}: its client certificate is not pinned here"
            self.refused.append(reason)
            self.node.metrics.refused.inc()
            log.warning(reason)
            try:
                sock.close()
            except OSError:
                pass

    async def _peek_hello(self, sock: socket.socket) -> bytes | None:
        deadline = self.loop.time() + _PEEK_TIMEOUT
        while True:
            try:
                data = sock.recv(_MAX_HELLO, socket.MSG_PEEK)
            except BlockingIOError:
                data = None
            if data == b"":
                return None  # closed before saying anything
            if data:
                if data[0] != 0x16 or len(data) < 5:
                    return data  # not TLS (or too short to tell): HTTPS handling will refuse it
                need = 5 + int.from_bytes(data[3:5], "big")
                if len(data) >= min(need, _MAX_HELLO):
                    return data
            if self.loop.time() > deadline:
                return None
            if data:
                await asyncio.sleep(0.005)  # part of the hello is here; the rest is on its way
            else:
                await self._readable(sock, deadline - self.loop.time())

    async def _readable(self, sock: socket.socket, timeout: float) -> None:
        fut = self.loop.create_future()
        fd = sock.fileno()
        self.loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
        try:
            await asyncio.wait_for(fut, max(timeout, 0.01))
        finally:
            self.loop.remove_reader(fd)


def _tls_aware(base: type) -> type:
    """uvicorn's HTTP protocol, plus the client certificate's fingerprint in every request's scope."""

    class TlsAwareProtocol(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            ssl_object = transport.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            fingerprint = fingerprint_der(der) if der else None
            app = self.app

            async def with_tls(scope: dict[str, Any], receive: Any, send: Any) -> None:
                scope["riskshare.client_cert"] = fingerprint
                await app(scope, receive, send)

            self.app = with_tls
            super().connection_made(transport)

    return TlsAwareProtocol


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    return str(exc) or type(exc).__name__
