"""The network Link: TLS 1.3 with pinned certificates, resend after reconnect.

Each party listens on its own address; to send, it connects to the peer's
address and pushes frames. Received frames land in a :class:`Mailbox` until the
protocol asks for them.

Reliability. Every data frame carries a sequence number. The receiver
acknowledges each frame it delivers; the sender keeps frames until they are
acknowledged. When a connection drops, the sender reconnects (with backoff, up
to ``reconnect_window`` seconds), learns from the receiver's HELLO_ACK which
sequence number it delivered last, and resends the rest; duplicates are
discarded, so a resend is idempotent. Sequence numbers belong to one sender
*incarnation* (a random id per link object), so a restarted process starts a
fresh stream rather than being mistaken for a resend.

Failure is explicit. A peer that stays unreachable longer than
``reconnect_window`` fails every pending and future receive from it with
:class:`~riskshare.errors.PeerUnavailable`; a step that waits longer than its
timeout raises :class:`~riskshare.errors.PeerTimeout`; a peer that aborts sends
its reason (a BYE frame) and our side reports it.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import ssl
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from ..errors import CertificateMismatch, PeerError, PeerUnavailable, ProtocolError, RiskshareError
from . import framing
from .link import DEFAULT_TIMEOUT, Link, Mailbox, Message
from .tls import PinnedPeer, TlsIdentity, client_context, peer_fingerprint, presented_fingerprint, server_context

log = logging.getLogger("riskshare.net")

_CHUNK = 1 << 30  # OpenSSL takes an int length: write and read in slices below 2 GiB
_HANDSHAKE_TIMEOUT = 15.0
_SERVER_RECONNECT_GRACE = 0.5


def _recv_exact_into(sock: ssl.SSLSocket, view: memoryview) -> None:
    got, total = 0, view.nbytes
    while got < total:
        n = sock.recv_into(view[got : got + min(_CHUNK, total - got)])
        if n == 0:
            raise ConnectionError("connection closed by peer")
        got += n


def _recv_exact(sock: ssl.SSLSocket, size: int) -> bytes:
    buf = bytearray(size)
    _recv_exact_into(sock, memoryview(buf))
    return bytes(buf)


def _send_all(sock: ssl.SSLSocket, data: bytes | memoryview) -> None:
    view = memoryview(data).cast("B")
    for start in range(0, view.nbytes, _CHUNK):
        sock.sendall(view[start : start + _CHUNK])


def _read_frame_header(sock: ssl.SSLSocket, max_message_bytes: int) -> tuple[framing.Header, bytes]:
    header = framing.decode_header(_recv_exact(sock, framing.HEADER.size), max_message_bytes)
    tag = _recv_exact(sock, header.tag_len) if header.tag_len else b""
    return header, tag


class NetworkLink(Link):
    """A party on the network: listens on ``listen`` and connects to pinned peers.

    With ``listen=None`` the link opens no listener of its own: a server that
    already accepts connections on the node's port (the node service) hands it
    the link's connections with :meth:`serve_inbound`.
    """

    def __init__(
        self,
        identity: TlsIdentity,
        listen: tuple[str, int] | None,
        peers: list[PinnedPeer],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        reconnect_window: float = 30.0,
        max_message_bytes: int = framing.DEFAULT_MAX_MESSAGE_BYTES,
        peer_restarts: str = "fail",
    ) -> None:
        super().__init__()
        self.name = identity.name
        self.identity = identity
        self.default_timeout = timeout
        self.reconnect_window = reconnect_window
        self.max_message_bytes = max_message_bytes
        self._peers = {p.name: p for p in peers}
        self._by_fingerprint = {p.fingerprint: p for p in peers}
        self._mailbox = Mailbox()
        if peer_restarts not in ("fail", "accept"):
            raise ValueError("peer_restarts is 'fail' (one run) or 'accept' (a long-running server)")
        self.peer_restarts = peer_restarts
        self._delivered: dict[tuple[str, bytes], int] = {}
        self._delivered_lock = threading.Lock()
        self._closed = threading.Event()
        self.refused: list[str] = []  # human-readable reasons for refused inbound connections
        self._server_ctx = server_context(identity, peers)
        self._listener: socket.socket | None = None
        self.address: tuple[str, int] | None = None
        if listen is not None:
            self._listener = socket.create_server(listen, reuse_port=False)
            self.address = self._listener.getsockname()[:2]
        self._inbound: set[socket.socket] = set()
        self._inbound_lock = threading.Lock()
        self._channels = {name: _Channel(self, peer) for name, peer in self._peers.items()}
        self._acceptor: threading.Thread | None = None
        if self._listener is not None:
            self._acceptor = threading.Thread(target=self._accept_loop, name=f"rs-accept-{self.name}", daemon=True)
            self._acceptor.start()

    # -- Link interface ---------------------------------------------------------
    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(self._peers)

    def _send(self, peer: str, tag: str, payload: Any, is_json: bool) -> int:
        encoded = framing.encode(0, tag, payload, is_json=is_json)
        self._channels[peer].send(encoded)
        return encoded.size

    def _recv(self, peer: str, tag: str, timeout: float) -> Message:
        return self._mailbox.get(peer, tag, timeout)

    def close(self, reason: str | None = None, *, notify_peers: bool = True) -> None:
        """Flush what we sent, tell peers we are done (with ``reason`` if we are aborting), stop.

        ``notify_peers=False`` closes without the goodbye: a long-running node whose
        peers keep talking to its next incarnation must not make them fail every
        later conversation with it.
        """
        if self._closed.is_set():
            return
        for channel in list(self._channels.values()):
            channel.close(reason, flush=reason is None, say_bye=notify_peers)
        self._closed.set()
        self._mailbox.close()
        if self._listener is not None and self._acceptor is not None:
            _interrupt(self._listener)  # wakes the thread blocked in accept(); it closes the socket
            self._acceptor.join(timeout=5.0)  # so the port is free when close() returns
        with self._inbound_lock:
            for sock in list(self._inbound):
                _interrupt(sock)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(None if exc is None else _abort_reason(exc))

    def drop_connections(self) -> None:
        """Cut every TCP connection of this link (tests use it to exercise resend)."""
        for channel in self._channels.values():
            channel.drop()
        with self._inbound_lock:
            for sock in list(self._inbound):
                _interrupt(sock)

    def set_peers(self, peers: list[PinnedPeer]) -> None:
        """Change the pinned peers of a running link (a node whose operator pinned or removed one).

        New peers get a channel; removed peers' channels are closed (without a
        goodbye) and their connections refused from now on; a peer whose
        certificate or address changed gets a fresh channel.
        """
        new = {p.name: p for p in peers}
        closing = []
        with self._inbound_lock:
            self._server_ctx = server_context(self.identity, peers)
            for name, channel in list(self._channels.items()):
                if new.get(name) != self._peers.get(name):
                    closing.append(channel)
                    del self._channels[name]
            for name, peer in new.items():
                if name not in self._channels:
                    self._channels[name] = _Channel(self, peer)
            self._peers = new
            self._by_fingerprint = {p.fingerprint: p for p in peers}
        for channel in closing:
            channel.close(None, flush=False, say_bye=False)

    def discard(self, prefix: str) -> int:
        """Drop received messages whose tag starts with ``prefix``, now and later (an abandoned conversation)."""
        return self._mailbox.discard(prefix)

    # -- inbound ----------------------------------------------------------------
    def serve_inbound(self, raw: socket.socket, addr: tuple[str, int]) -> None:
        """Serve one accepted TCP connection (TLS handshake included) until it closes; blocks.

        Used by a server that owns the listening socket and routed this
        connection to the link (see ``listen=None``).
        """
        raw.setblocking(True)
        self._serve_inbound(raw, addr)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                raw, addr = self._listener.accept()
            except OSError:
                break
            threading.Thread(target=self._serve_inbound, args=(raw, addr), daemon=True).start()
        _close(self._listener)

    def _serve_inbound(self, raw: socket.socket, addr: tuple[str, int]) -> None:
        raw.settimeout(_HANDSHAKE_TIMEOUT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock = self._server_ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            reason = f"refused a connection from {addr[0]}:{addr[1]}: TLS handshake failed ({_ssl_reason(exc)})"
            if "certificate" in str(exc).lower() or "unknown ca" in str(exc).lower():
                reason = (
                    f"refused a connection from {addr[0]}:{addr[1]}: its certificate is not pinned here "
                    "(pin it with `riskshare peer add`)"
                )
            self.refused.append(reason)
            log.warning(reason)
            _close(raw)
            return
        fp = peer_fingerprint(sock)
        peer = self._by_fingerprint.get(fp or "")
        if peer is None:  # verified by OpenSSL but not one of ours: refuse all the same
            reason = f"refused a connection from {addr[0]}:{addr[1]}: certificate {fp} is not a pinned peer"
            self.refused.append(reason)
            log.warning(reason)
            _close(sock)
            return
        with self._inbound_lock:
            self._inbound.add(sock)
        try:
            sock.settimeout(None)
            self._read_frames(sock, peer.name)
        except (OSError, ssl.SSLError, ConnectionError):
            pass  # the sender reconnects and resends; a dead peer is detected by its channel
        except Exception as exc:  # noqa: BLE001 - anything else the peer made us do is its fault
            detail = exc.message if isinstance(exc, ProtocolError) else f"{type(exc).__name__}: {exc}"
            log.warning("peer '%s' sent a malformed message: %s", peer.name, detail)
            self._mailbox.fail_peer(
                peer.name,
                ProtocolError(f"peer '{peer.name}' sent a malformed message: {detail}", hint="the run was stopped"),
            )
        finally:
            with self._inbound_lock:
                self._inbound.discard(sock)
            _close(sock)

    def _read_frames(self, sock: ssl.SSLSocket, peer: str) -> None:
        header, payload = _read_frame_header(sock, self.max_message_bytes)
        if header.kind != framing.KIND_HELLO or len(payload) != 16:
            raise ProtocolError("expected HELLO as the first frame")
        incarnation = payload
        key = (peer, incarnation)
        with self._delivered_lock:
            restarted = key not in self._delivered and any(p == peer for p, _ in self._delivered)
            last = self._delivered.setdefault(key, 0)
        if restarted:
            if self.peer_restarts == "accept":  # a server: a new client process is a new conversation
                self._mailbox.clear_peer(peer)
                self._channels[peer].reset()
            else:
                self._mailbox.fail_peer(
                    peer, PeerError(f"peer '{peer}' restarted during the run", hint="start both sides again")
                )
        _send_all(sock, framing.control_frame(framing.KIND_HELLO_ACK, last))
        while True:
            header, tag_b = _read_frame_header(sock, self.max_message_bytes)
            if header.kind == framing.KIND_BYE:
                reason = tag_b.decode(errors="replace")
                log.debug("%s: BYE from %s (%r)", self.name, peer, reason)
                error = PeerError(f"peer '{peer}' stopped: {reason}") if reason else PeerError(
                    f"peer '{peer}' closed the session", hint="it finished or was stopped before sending this step"
                )
                self._mailbox.fail_peer(peer, error)
                self._channels[peer].peer_closed(error)
                return
            if header.kind != framing.KIND_DATA:
                raise ProtocolError(f"unexpected frame kind {header.kind} on a data connection")
            try:
                tag = tag_b.decode()
            except UnicodeDecodeError:
                raise ProtocolError("frame tag is not UTF-8") from None
            shape: tuple[int, ...] = ()
            if header.ptype == framing.PTYPE_ARRAY:
                raw_shape = _recv_exact(sock, 8 * header.ndim)
                shape = tuple(int(d) for d in np.frombuffer(raw_shape, dtype="<u8"))
                framing.check_shape(header, shape)
            with self._delivered_lock:
                already = header.seq <= self._delivered[key]
            if already:  # a resend of something already delivered: read and drop
                _discard(sock, header.payload_len)
                _send_all(sock, framing.control_frame(framing.KIND_ACK, header.seq))
                continue
            if header.ptype == framing.PTYPE_ARRAY:
                value: Any = np.empty(shape, dtype=framing.DTYPES[header.dtype_code])
                if header.payload_len:
                    _recv_exact_into(sock, memoryview(value.reshape(-1).view(np.uint8)))
            else:
                buf = bytearray(header.payload_len)
                if header.payload_len:
                    _recv_exact_into(sock, memoryview(buf))
                value = bytes(buf)
            size = framing.HEADER.size + header.tag_len + 8 * header.ndim + header.payload_len
            # Check and deliver atomically: a stale connection finishing the same frame must not deliver it twice.
            with self._delivered_lock:
                last = self._delivered[key]
                if header.seq == last + 1:
                    self._delivered[key] = header.seq
                    self._mailbox.put(peer, tag, Message(header.ptype, value, size))
                    log.debug("%s: delivered %s #%d from %s", self.name, tag, header.seq, peer)
                elif header.seq > last + 1:
                    raise ProtocolError(f"frame {header.seq} arrived after {last}: messages were lost")
            _send_all(sock, framing.control_frame(framing.KIND_ACK, header.seq))


class _Channel:
    """Our outgoing stream to one peer: ordered, acknowledged, resent after reconnect.

    One thread owns the connection and is the only one that touches it (OpenSSL
    objects must not be used from two threads at once): it connects, writes
    frames, reads the peer's acknowledgements, notices a dead connection, sends
    BYE and closes. Other threads only queue frames and wake it.
    """

    def __init__(self, link: NetworkLink, peer: PinnedPeer) -> None:
        self.link = link
        self.peer = peer
        self._cv = threading.Condition()
        self._next_seq = 1
        self._pending: deque[tuple[int, framing.Encoded]] = deque()  # sent or not, not yet acknowledged
        self._written = 0  # highest seq written on the current connection
        self._writing = 0  # highest seq handed to a connection at least once
        self._sock: ssl.SSLSocket | None = None
        self._error: RiskshareError | None = None
        self._closing = False
        self._bye: str | None = None  # reason to send in our BYE frame
        self._peer_gone: RiskshareError | None = None  # the peer said BYE
        self._ever_connected = False
        self._incarnation = os.urandom(16)  # names our outgoing stream; sequence numbers belong to it
        self._thread: threading.Thread | None = None
        self._drop_requested = False  # reset(): the owner thread closes the old connection
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # -- called from protocol threads ------------------------------------------
    def send(self, encoded: framing.Encoded) -> None:
        with self._cv:
            if self._error:
                raise self._error
            if self._peer_gone is not None:
                raise self._peer_gone
            if self._closing:
                raise RiskshareError(f"the link to '{self.peer.name}' is closed")
            seq = self._next_seq
            self._next_seq += 1
            encoded.prefix = _with_seq(encoded.prefix, seq)
            self._pending.append((seq, encoded))
            self._ensure_thread()
            self._wake()
            # Backpressure and error surfacing: wait until the frame is on the wire. The owner thread gives
            # up on an unreachable peer after its own window, so this deadline is only a backstop.
            deadline = time.monotonic() + self.link.default_timeout + self.link.reconnect_window + 5.0
            while self._written < seq and self._error is None:
                if self._peer_gone is not None:
                    if self._writing >= seq:
                        return  # on the wire when the peer said goodbye: it may well have read it
                    raise self._peer_gone  # it left before our frame went out
                if not self._pending or self._pending[0][0] > seq:
                    return  # already acknowledged (possible after a reconnect)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PeerUnavailable(
                        f"could not deliver a message to peer '{self.peer.name}' at {self.peer.address} "
                        f"within {self.link.default_timeout:g} s",
                        hint="check that the peer is running and reachable",
                    )
                self._cv.wait(min(remaining, 1.0))
            if self._written < seq and self._error:
                raise self._error

    def close(self, reason: str | None, flush: bool, say_bye: bool = True) -> None:
        with self._cv:
            if flush and self._thread is not None:
                deadline = time.monotonic() + min(self.link.default_timeout, 30.0)
                while self._pending and self._error is None and self._peer_gone is None:
                    if time.monotonic() > deadline:
                        break
                    self._cv.wait(0.2)
            self._closing = True
            self._bye = (reason or "") if say_bye else None
            thread = self._thread
            self._wake()
        if thread is not None:
            thread.join(timeout=10.0)
        elif reason and say_bye and self._peer_gone is None:
            # An aborting party tells the peer why, even if it never sent it anything.
            try:
                sock = self._handshake()
                _send_all(sock, _bye_frame(reason))
                _close(sock)
            except (OSError, ssl.SSLError, ConnectionError, RiskshareError):
                pass
        self._wake_r.close()
        self._wake_w.close()

    def peer_closed(self, error: RiskshareError) -> None:
        """The peer ended its session: stop reconnecting; unsent messages can no longer arrive."""
        with self._cv:
            # The peer will read nothing more. What we wrote before its BYE may well have been delivered
            # (acknowledgements travel on another connection than its BYE), so nothing already sent is
            # an error; unacknowledged frames are dropped rather than resent, and new sends fail.
            self._peer_gone = error
            self._pending.clear()
            self._cv.notify_all()
            self._wake()

    def reset(self) -> None:
        """The peer restarted: start a fresh outgoing stream (new incarnation, sequence from 1)."""
        with self._cv:
            self._incarnation = os.urandom(16)
            self._next_seq = 1
            self._pending.clear()
            self._written = 0
            self._writing = 0
            self._error = None
            self._peer_gone = None
            self._ever_connected = False
            self._drop_requested = True
            self._cv.notify_all()
            self._wake()

    def drop(self) -> None:
        """Cut the connection (tests); the owner thread notices and reconnects."""
        with self._cv:
            if self._sock is not None:
                _interrupt(self._sock)

    def _ensure_thread(self) -> None:
        if self._thread is None:  # the thread clears this, under the lock, when it exits
            self._thread = threading.Thread(
                target=self._run, name=f"rs-send-{self.link.name}-{self.peer.name}", daemon=True
            )
            self._thread.start()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"w")
        except (BlockingIOError, OSError):
            pass  # already awake, or closing

    # -- the owner thread --------------------------------------------------------
    def _run(self) -> None:
        sock: ssl.SSLSocket | None = None
        lost_at = 0.0
        try:
            while True:
                with self._cv:
                    if self._drop_requested and sock is not None:
                        self._drop_requested = False
                        self._sock = None
                        _close(sock)
                        sock = None
                    if self._closing:
                        break
                    if sock is None and self._peer_gone is not None and not self._pending:
                        break  # the peer finished; nothing left to deliver
                    if sock is None and self.link.peer_restarts == "accept" and (
                        not self._pending or time.monotonic() - lost_at < _SERVER_RECONNECT_GRACE
                    ):
                        # A server reconnects only when it has something to say, and not at once after losing
                        # a client: its BYE (processed on another thread) may be on its way, and an eager
                        # reconnect could carry a stale reply to the next client process.
                        self._cv.wait(0.1)
                        continue
                    item = next((p for p in self._pending if p[0] > self._written), None) if sock else None
                if sock is None:
                    sock = self._connect()
                    if sock is None:
                        break
                    continue
                try:
                    if item is not None:
                        with self._cv:
                            self._writing = max(self._writing, item[0])
                        _write_frame(sock, item[1])
                        with self._cv:
                            self._written = max(self._written, item[0])
                            self._cv.notify_all()
                        self._read_acks(sock, timeout=0.0)
                    else:
                        self._read_acks(sock, timeout=1.0)
                except (OSError, ssl.SSLError, ConnectionError, ProtocolError):
                    with self._cv:  # connection lost: reconnect and resend what is unacknowledged
                        self._sock = None
                        self._written = 0
                    _close(sock)
                    sock = None
                    lost_at = time.monotonic()
        finally:
            if sock is not None:
                if self._closing and self._bye is not None:
                    try:
                        _send_all(sock, _bye_frame(self._bye))
                    except (OSError, ssl.SSLError):
                        pass
                _close(sock)
            with self._cv:
                self._sock = None
                self._thread = None
                self._cv.notify_all()

    def _read_acks(self, sock: ssl.SSLSocket, timeout: float) -> None:
        """Read whatever acknowledgements have arrived; wait up to ``timeout`` for the first one or a wake-up."""
        while True:
            if not sock.pending():
                ready, _, _ = select.select([sock, self._wake_r], [], [], timeout)
                if self._wake_r in ready:
                    try:
                        self._wake_r.recv(4096)
                    except (BlockingIOError, OSError):
                        pass
                    return
                if sock not in ready:
                    return
            header, _ = _read_frame_header(sock, 0)  # EOF raises: the connection is gone
            if header.kind != framing.KIND_ACK:
                raise ProtocolError("unexpected frame on an outgoing connection")
            with self._cv:
                while self._pending and self._pending[0][0] <= header.seq:
                    self._pending.popleft()
                self._cv.notify_all()
            timeout = 0.0

    def _connect(self) -> ssl.SSLSocket | None:
        """(Re)connect with backoff; None if we gave up (the failure is recorded)."""
        started = time.monotonic()
        delay = 0.05
        last_error = "no attempt made"
        # The first connection may wait for the peer to start (up to the step timeout);
        # once we have talked, a peer gone for longer than reconnect_window is treated as dead.
        window = self.link.reconnect_window if self._ever_connected else self.link.default_timeout
        while True:
            with self._cv:
                if self._closing or (self._peer_gone is not None and not self._pending):
                    return None
            try:
                sock = self._handshake()
            except CertificateMismatch as exc:
                self._fail(exc)
                return None
            except (OSError, ssl.SSLError, ConnectionError, ProtocolError) as exc:
                last_error = _ssl_reason(exc)
                if time.monotonic() - started > window:
                    self._fail(
                        PeerUnavailable(
                            f"cannot reach peer '{self.peer.name}' at {self.peer.address} for {window:g} s "
                            f"({last_error})",
                            hint="check that its riskshare process is running and that the address in "
                            "`riskshare peer list` is right",
                        )
                    )
                    return None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self._ever_connected = True
            return sock

    def _handshake(self) -> ssl.SSLSocket:
        ctx = client_context(self.link.identity, self.peer)
        raw = socket.create_connection((self.peer.host, self.peer.port), timeout=_HANDSHAKE_TIMEOUT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock = ctx.wrap_socket(raw)
        except ssl.SSLCertVerificationError:
            _close(raw)
            shown = presented_fingerprint(self.peer.host, self.peer.port) or "unknown"
            raise CertificateMismatch(
                f"the node at {self.peer.address} presented certificate {shown}, which is not the certificate "
                f"pinned for peer '{self.peer.name}' ({self.peer.fingerprint})",
                hint="confirm the fingerprint with the peer's operator and re-pin it with `riskshare peer add`",
            ) from None
        except BaseException:
            _close(raw)
            raise
        fp = peer_fingerprint(sock)
        if fp != self.peer.fingerprint:
            _close(sock)
            raise CertificateMismatch(
                f"the node at {self.peer.address} presented certificate {fp}, not the one pinned for "
                f"'{self.peer.name}' ({self.peer.fingerprint})",
                hint="confirm the fingerprint with the peer's operator and re-pin it with `riskshare peer add`",
            )
        try:
            _send_all(sock, framing.control_frame(framing.KIND_HELLO, 0, self._incarnation))
            header, _ = _read_frame_header(sock, 0)
        except ssl.SSLError as exc:
            _close(sock)
            if "certificate" in str(exc).lower() or "unknown ca" in str(exc).lower():
                raise CertificateMismatch(
                    f"peer '{self.peer.name}' at {self.peer.address} refused our certificate: it has not pinned "
                    f"this node ('{self.link.name}')",
                    hint="send it the output of `riskshare identity --export` and ask its operator to run "
                    "`riskshare peer add`",
                ) from None
            raise
        except BaseException:
            _close(sock)
            raise
        if header.kind != framing.KIND_HELLO_ACK:
            _close(sock)
            raise ProtocolError("peer did not answer HELLO")
        sock.settimeout(None)  # blocking: this thread waits in select(), never in a read that may not end
        with self._cv:
            self._sock = sock
            while self._pending and self._pending[0][0] <= header.seq:
                self._pending.popleft()
            self._written = header.seq
            self._cv.notify_all()
        return sock

    def _fail(self, error: RiskshareError) -> None:
        with self._cv:
            self._error = error
            self._cv.notify_all()
        self.link._mailbox.fail_peer(self.peer.name, error)


def _write_frame(sock: ssl.SSLSocket, encoded: framing.Encoded) -> None:
    if encoded.body.nbytes <= 64 * 1024:  # small: one write, one TLS record
        _send_all(sock, encoded.prefix + encoded.body.tobytes())
    else:  # large: no copy of the body
        _send_all(sock, encoded.prefix)
        _send_all(sock, encoded.body)


def _bye_frame(reason: str) -> bytes:
    return framing.control_frame(framing.KIND_BYE, 0, reason.encode()[: framing.MAX_TAG_BYTES])


def _with_seq(prefix: bytes, seq: int) -> bytes:
    head = bytearray(prefix)
    fields = list(framing.HEADER.unpack_from(head))
    fields[4] = seq
    framing.HEADER.pack_into(head, 0, *fields)
    return bytes(head)


def _discard(sock: ssl.SSLSocket, size: int) -> None:
    scratch = memoryview(bytearray(min(size, 1 << 20) or 1))
    left = size
    while left:
        n = min(left, scratch.nbytes)
        _recv_exact_into(sock, scratch[:n])
        left -= n


def _interrupt(sock: socket.socket) -> None:
    """Make a socket owned by another thread fail its pending and next calls (never close it from here:
    its file descriptor could be reused by a new connection while the owner still reads it)."""
    try:
        # socket.socket.shutdown, not SSLSocket.shutdown: the latter drops the TLS state, and the owner's
        # next read would then return raw TLS bytes still queued in the kernel as if they were data.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _close(sock: socket.socket) -> None:
    """Shut down and close a socket this thread owns."""
    _interrupt(sock)
    try:
        sock.close()
    except OSError:
        pass


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__


def _abort_reason(exc: object) -> str:
    if isinstance(exc, RiskshareError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
