"""A job's view of the node's link: its own tag prefix, its own peer, and a way to stop it."""

from __future__ import annotations

import time
from typing import Any, Callable

from ...errors import PeerTimeout
from ...net.link import Link, Message


class JobLink(Link):
    """Tags under ``prefix/``; only the job's peer; every wait checks ``check()`` twice a second.

    ``check`` raises when the job must stop (cancelled, grant revoked, peer
    gone), so a protocol blocked waiting for the peer ends promptly instead of
    at its timeout.
    """

    def __init__(self, parent: Link, prefix: str, peer: str, check: Callable[[], None], timeout: float) -> None:
        super().__init__()
        self._parent = parent
        self._prefix = prefix.rstrip("/") + "/"
        self._peer = peer
        self._check = check
        self.name = parent.name
        self.default_timeout = timeout

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def peers(self) -> tuple[str, ...]:
        return (self._peer,)

    def _send(self, peer: str, tag: str, payload: Any, is_json: bool) -> int:
        self._check()
        return self._parent._send(peer, self._prefix + tag, payload, is_json)

    def _recv(self, peer: str, tag: str, timeout: float) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            self._check()
            remaining = deadline - time.monotonic()
            try:
                return self._parent._recv(peer, self._prefix + tag, max(0.0, min(remaining, 0.5)))
            except PeerTimeout:
                if time.monotonic() >= deadline:
                    raise PeerTimeout(
                        f"timed out after {timeout:g} s waiting for step '{tag}' from peer '{peer}'",
                        hint="the peer may have stopped or be slower than expected; check the job on both nodes, "
                        "or allow more time with the job's timeout",
                    ) from None
