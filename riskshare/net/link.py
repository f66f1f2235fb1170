"""The Link: ``send(peer, tag, payload)`` / ``recv(peer, tag)`` between named parties.

Protocols are plain functions over a Link; they never see sockets, HTTP or
processes. Payloads are ``bytes`` or numpy arrays (plus small JSON documents
for control messages). Messages with the same (peer, tag) are delivered in the
order they were sent, so a tag may be reused in a loop.

Received data is untrusted: use the typed receivers (:meth:`Link.recv_array`,
:meth:`Link.recv_bytes`, :meth:`Link.recv_json`) so that a malformed message
from the peer becomes a :class:`~riskshare.errors.ProtocolError` naming the
peer and step instead of an obscure failure later on.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from ..errors import PeerTimeout, ProtocolError, RiskshareError
from . import framing

DEFAULT_TIMEOUT = 120.0


@dataclass
class Message:
    ptype: int
    value: Any  # bytes, np.ndarray or raw JSON bytes
    nbytes: int


class LinkStats:
    """Bytes and messages per tag, in each direction. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_tag: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])

    def count_sent(self, tag: str, nbytes: int) -> None:
        with self._lock:
            row = self._by_tag[tag]
            row[0] += 1
            row[1] += nbytes

    def count_received(self, tag: str, nbytes: int) -> None:
        with self._lock:
            row = self._by_tag[tag]
            row[2] += 1
            row[3] += nbytes

    def by_tag(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                tag: {"messages_sent": r[0], "bytes_sent": r[1], "messages_received": r[2], "bytes_received": r[3]}
                for tag, r in sorted(self._by_tag.items())
            }

    def total(self, prefix: str = "") -> dict[str, int]:
        out = {"messages_sent": 0, "bytes_sent": 0, "messages_received": 0, "bytes_received": 0}
        for tag, row in self.by_tag().items():
            if tag.startswith(prefix):
                for key, value in row.items():
                    out[key] += value
        return out


class Mailbox:
    """Messages that arrived, waiting for ``recv``; wakes receivers, carries peer failures."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queues: dict[tuple[str, str], deque[Message]] = defaultdict(deque)
        self._peer_errors: dict[str, RiskshareError] = {}
        self._closed = False
        self._dropped: deque[str] = deque(maxlen=4096)  # tag prefixes whose messages are discarded

    def put(self, peer: str, tag: str, message: Message) -> None:
        with self._cond:
            if self._dropped and any(tag.startswith(prefix) for prefix in self._dropped):
                return  # a late message of a conversation that was abandoned
            self._queues[(peer, tag)].append(message)
            self._cond.notify_all()

    def discard(self, prefix: str) -> int:
        """Drop queued messages whose tag starts with ``prefix``, and any that arrive later.

        For long-running processes that abandon a conversation (a cancelled job): what
        the peer still sends for it must not pile up. Returns how many were dropped.
        """
        with self._cond:
            self._dropped.append(prefix)
            doomed = [key for key in self._queues if key[1].startswith(prefix)]
            count = sum(len(self._queues.pop(key)) for key in doomed)
            return count

    def fail_peer(self, peer: str, error: RiskshareError) -> None:
        """Make every pending and future ``get`` for this peer raise ``error``."""
        with self._cond:
            self._peer_errors.setdefault(peer, error)
            self._cond.notify_all()

    def clear_peer(self, peer: str) -> None:
        """Forget a peer's failure (it came back as a new process)."""
        with self._cond:
            self._peer_errors.pop(peer, None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get(self, peer: str, tag: str, timeout: float) -> Message:
        deadline = time.monotonic() + timeout
        key = (peer, tag)
        with self._cond:
            while True:
                queue = self._queues.get(key)
                if queue:
                    message = queue.popleft()
                    if not queue:
                        del self._queues[key]
                    return message
                if peer in self._peer_errors:
                    raise self._peer_errors[peer]
                if self._closed:
                    raise RiskshareError(f"the link was closed while waiting for '{tag}' from '{peer}'")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PeerTimeout(
                        f"timed out after {timeout:g} s waiting for step '{tag}' from peer '{peer}'",
                        hint="the peer may have stopped or be slower than expected; check its log, "
                        "or allow more time with --timeout",
                    )
                self._cond.wait(min(remaining, 1.0))


class Link(ABC):
    """A party's view of the conversation with its peers."""

    name: str
    default_timeout: float = DEFAULT_TIMEOUT

    def __init__(self) -> None:
        self.stats = LinkStats()

    # -- subclasses implement these two --------------------------------------
    @abstractmethod
    def _send(self, peer: str, tag: str, payload: Any, is_json: bool) -> int:
        """Deliver one message; return the number of bytes it costs on the wire."""

    @abstractmethod
    def _recv(self, peer: str, tag: str, timeout: float) -> Message: ...

    @property
    @abstractmethod
    def peers(self) -> tuple[str, ...]: ...

    def close(self) -> None:  # pragma: no cover - trivial default
        pass

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending --------------------------------------------------------------
    def send(self, peer: str, tag: str, payload: bytes | np.ndarray) -> None:
        """Send bytes or a numpy array to ``peer`` under ``tag``."""
        self._check_peer(peer)
        nbytes = self._send(peer, tag, payload, False)
        self.stats.count_sent(tag, nbytes)

    def send_json(self, peer: str, tag: str, obj: Any) -> None:
        """Send a small JSON-serialisable control message (parameters, counts)."""
        self._check_peer(peer)
        nbytes = self._send(peer, tag, obj, True)
        self.stats.count_sent(tag, nbytes)

    # -- receiving ------------------------------------------------------------
    def _get(self, peer: str, tag: str, timeout: float | None) -> Message:
        self._check_peer(peer)
        message = self._recv(peer, tag, self.default_timeout if timeout is None else timeout)
        self.stats.count_received(tag, message.nbytes)
        return message

    def recv(self, peer: str, tag: str, timeout: float | None = None) -> bytes | np.ndarray:
        """Receive the next bytes or array message for ``tag`` (no type check: prefer the typed receivers)."""
        message = self._get(peer, tag, timeout)
        if message.ptype == framing.PTYPE_JSON:
            raise ProtocolError(f"peer '{peer}' sent a JSON document for step '{tag}' where data was expected")
        return message.value

    def recv_json(self, peer: str, tag: str, timeout: float | None = None) -> Any:
        message = self._get(peer, tag, timeout)
        if message.ptype != framing.PTYPE_JSON:
            raise ProtocolError(f"peer '{peer}' sent binary data for step '{tag}' where a JSON document was expected")
        return framing.decode_json(message.value)

    def recv_bytes(
        self, peer: str, tag: str, *, max_bytes: int | None = None, exact: int | None = None,
        timeout: float | None = None,
    ) -> bytes:
        message = self._get(peer, tag, timeout)
        if message.ptype != framing.PTYPE_BYTES:
            raise ProtocolError(f"peer '{peer}' sent {_kind(message)} for step '{tag}' where bytes were expected")
        value = bytes(message.value)
        if exact is not None and len(value) != exact:
            raise ProtocolError(f"peer '{peer}' sent {len(value)} bytes for step '{tag}'; expected exactly {exact}")
        if max_bytes is not None and len(value) > max_bytes:
            raise ProtocolError(f"peer '{peer}' sent {len(value)} bytes for step '{tag}'; at most {max_bytes} allowed")
        return value

    def recv_array(
        self,
        peer: str,
        tag: str,
        *,
        dtype: Any,
        shape: Iterable[int | None] | None = None,
        timeout: float | None = None,
    ) -> np.ndarray:
        """Receive an array and check its dtype and shape (``None`` in ``shape`` = any length)."""
        message = self._get(peer, tag, timeout)
        if message.ptype != framing.PTYPE_ARRAY:
            raise ProtocolError(f"peer '{peer}' sent {_kind(message)} for step '{tag}' where an array was expected")
        array: np.ndarray = message.value
        want = np.dtype(dtype)
        if array.dtype != want:
            raise ProtocolError(f"peer '{peer}' sent a {array.dtype} array for step '{tag}'; expected {want}")
        if shape is not None:
            expected = tuple(shape)
            ok = len(expected) == array.ndim and all(e is None or e == a for e, a in zip(expected, array.shape))
            if not ok:
                shown = tuple("*" if e is None else e for e in expected)
                raise ProtocolError(
                    f"peer '{peer}' sent an array of shape {array.shape} for step '{tag}'; expected {shown}"
                )
        return array

    # -- helpers --------------------------------------------------------------
    def _check_peer(self, peer: str) -> None:
        if peer not in self.peers:
            raise RiskshareError(f"'{peer}' is not a peer of '{self.name}' (known: {', '.join(self.peers) or 'none'})")

    def scoped(self, prefix: str) -> "Link":
        """A view of this link whose tags all start with ``prefix/`` (one per job or bucket)."""
        return ScopedLink(self, prefix)


def _kind(message: Message) -> str:
    return {framing.PTYPE_BYTES: "bytes", framing.PTYPE_ARRAY: "an array", framing.PTYPE_JSON: "a JSON document"}[
        message.ptype
    ]


class ScopedLink(Link):
    """Prefixes every tag, so concurrent jobs or buckets never mix their messages."""

    def __init__(self, parent: Link, prefix: str) -> None:
        self._parent = parent
        self._prefix = prefix.rstrip("/") + "/"
        self.name = parent.name
        self.default_timeout = parent.default_timeout
        self.stats = parent.stats

    @property
    def peers(self) -> tuple[str, ...]:
        return self._parent.peers

    def _send(self, peer: str, tag: str, payload: Any, is_json: bool) -> int:
        return self._parent._send(peer, self._prefix + tag, payload, is_json)

    def _recv(self, peer: str, tag: str, timeout: float) -> Message:
        return self._parent._recv(peer, self._prefix + tag, timeout)

    def send(self, peer: str, tag: str, payload: bytes | np.ndarray) -> None:
        self._check_peer(peer)
        full = self._prefix + tag
        self.stats.count_sent(full, self._parent._send(peer, full, payload, False))

    def send_json(self, peer: str, tag: str, obj: Any) -> None:
        self._check_peer(peer)
        full = self._prefix + tag
        self.stats.count_sent(full, self._parent._send(peer, full, obj, True))

    def _get(self, peer: str, tag: str, timeout: float | None) -> Message:
        self._check_peer(peer)
        full = self._prefix + tag
        message = self._parent._recv(peer, full, self.default_timeout if timeout is None else timeout)
        self.stats.count_received(full, message.nbytes)
        return message
