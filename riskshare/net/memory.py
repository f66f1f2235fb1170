"""In-process links for tests, benchmarks and notebooks.

Messages are copied on send (arrays and bytes) and JSON is serialised, so a
protocol behaves exactly as it would over the network: no shared objects, and
byte counts equal what the network link would put on the wire.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import framing
from .link import DEFAULT_TIMEOUT, Link, Mailbox, Message


class MemoryHub:
    """A set of named parties that can talk to each other in one process."""

    def __init__(self, names: list[str] | tuple[str, ...], *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if len(set(names)) != len(names) or len(names) < 2:
            raise ValueError("a hub needs at least two distinct party names")
        self._mailboxes = {name: Mailbox() for name in names}
        self.links = {name: MemoryLink(self, name, timeout) for name in names}

    def __getitem__(self, name: str) -> "MemoryLink":
        return self.links[name]

    def close(self) -> None:
        for box in self._mailboxes.values():
            box.close()


class MemoryLink(Link):
    def __init__(self, hub: MemoryHub, name: str, timeout: float) -> None:
        super().__init__()
        self._hub = hub
        self.name = name
        self.default_timeout = timeout
        self._peers = tuple(n for n in hub._mailboxes if n != name)

    @property
    def peers(self) -> tuple[str, ...]:
        return self._peers

    def _send(self, peer: str, tag: str, payload: Any, is_json: bool) -> int:
        encoded = framing.encode(0, tag, payload, is_json=is_json)
        if encoded.ptype == framing.PTYPE_ARRAY:
            value: Any = np.array(framing.normalise_payload(payload)[1], copy=True)
        else:
            value = bytes(encoded.body)
        self._hub._mailboxes[peer].put(self.name, tag, Message(encoded.ptype, value, encoded.size))
        return encoded.size

    def _recv(self, peer: str, tag: str, timeout: float) -> Message:
        return self._hub._mailboxes[self.name].get(peer, tag, timeout)

    def close(self) -> None:
        self._hub._mailboxes[self.name].close()


def memory_pair(a: str = "alice", b: str = "bob", *, timeout: float = DEFAULT_TIMEOUT) -> tuple[MemoryLink, MemoryLink]:
    """Two linked parties in one process."""
    hub = MemoryHub([a, b], timeout=timeout)
    return hub[a], hub[b]
