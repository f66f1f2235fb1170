"""Links between named parties: in-memory for one process, TLS for the network."""

from .link import DEFAULT_TIMEOUT, Link, LinkStats, ScopedLink
from .memory import MemoryHub, MemoryLink, memory_pair
from .network import NetworkLink
from .tls import PinnedPeer, TlsIdentity

__all__ = [
    "DEFAULT_TIMEOUT", "Link", "LinkStats", "ScopedLink", "MemoryHub", "MemoryLink", "memory_pair",
    "NetworkLink", "PinnedPeer", "TlsIdentity",
]
