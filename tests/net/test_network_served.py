"""NetworkLink additions for long-running servers: links without a listener of their own
(connections handed in by a server that routes by ALPN), re-pinning peers at run time,
discarding abandoned conversations, closing without a goodbye. The stand-alone mode
(`riskshare psi` between two processes) keeps working, with ALPN offered and ignored."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import numpy as np
import pytest

from riskshare.errors import PeerError
from riskshare.net import NetworkLink
from riskshare.net.tls import LINK_ALPN
from riskshare.node.home import NodeHome


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def homes(tmp_path: Path) -> tuple[NodeHome, NodeHome]:
    a = NodeHome.init(tmp_path / "a", "alice", f"127.0.0.1:{_port()}")
    b = NodeHome.init(tmp_path / "b", "bob", f"127.0.0.1:{_port()}")
    a.add_peer("bob", b.config["node"]["listen"], b.cert_pem)
    b.add_peer("alice", a.config["node"]["listen"], a.cert_pem)
    return a, b


class _Router:
    """A minimal stand-in for the node server: accepts on bob's address, hands link connections over."""

    def __init__(self, address: tuple[str, int], link: NetworkLink) -> None:
        self.listener = socket.create_server(address)
        self.link = link
        self.alpn_seen: list[list[bytes] | None] = []
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        from riskshare.node.server import offered_alpn

        while True:
            try:
                sock, addr = self.listener.accept()
            except OSError:
                return
            hello = sock.recv(16384, socket.MSG_PEEK)
            self.alpn_seen.append(offered_alpn(hello))
            threading.Thread(target=self.link.serve_inbound, args=(sock, addr), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def test_standalone_links_still_talk_and_negotiate_alpn(homes: tuple[NodeHome, NodeHome]) -> None:
    a, b = homes
    with a.open_link(["bob"], timeout=10) as la, b.open_link(["alice"], timeout=10) as lb:
        data = np.arange(100_000, dtype=np.uint64)
        la.send("bob", "x", data)
        assert np.array_equal(lb.recv_array("alice", "x", dtype=np.uint64, shape=(None,)), data)
        lb.send_json("alice", "y", {"ok": True})
        assert la.recv_json("bob", "y") == {"ok": True}


def test_link_without_listener_serves_handed_in_connections(homes: tuple[NodeHome, NodeHome]) -> None:
    a, b = homes
    served = NetworkLink(b.identity, None, b.peers(), timeout=10, peer_restarts="accept")
    assert served.address is None
    router = _Router(b.listen, served)
    client = NetworkLink(a.identity, a.listen, a.peers(), timeout=10)
    try:
        payload = np.random.default_rng(1).integers(0, 255, size=3_000_000, dtype=np.uint8)
        client.send("bob", "job/1/psi", payload)
        got = served.recv_array("alice", "job/1/psi", dtype=np.uint8, shape=(None,))
        assert np.array_equal(got, payload)
        assert router.alpn_seen[0] == [LINK_ALPN.encode()]
        served.send("alice", "reply", b"fine")  # and back, to alice's own listener
        assert client.recv_bytes("bob", "reply") == b"fine"
    finally:
        client.close()
        served.close(notify_peers=False)
        router.close()


def test_discard_drops_queued_and_late_messages(homes: tuple[NodeHome, NodeHome]) -> None:
    a, b = homes
    with a.open_link(["bob"], timeout=5) as la, b.open_link(["alice"], timeout=5) as lb:
        la.send("bob", "job/7/1/psi/hello", b"old")
        la.send("bob", "sync", b"1")
        assert lb.recv_bytes("alice", "sync") == b"1"  # both messages are in bob's mailbox now
        assert lb.discard("job/7/1/") == 1
        la.send("bob", "job/7/1/psi/more", b"late")
        la.send("bob", "job/7/2/psi/hello", b"new attempt")
        assert lb.recv_bytes("alice", "job/7/2/psi/hello") == b"new attempt"
        from riskshare.errors import PeerTimeout

        with pytest.raises(PeerTimeout):
            lb.recv_bytes("alice", "job/7/1/psi/more", timeout=0.3)


def test_unpinned_peer_is_refused_and_repinning_takes_effect(homes: tuple[NodeHome, NodeHome], tmp_path: Path) -> None:
    a, b = homes
    served = NetworkLink(b.identity, None, [], timeout=3, reconnect_window=1, peer_restarts="accept")
    router = _Router(b.listen, served)
    client = NetworkLink(a.identity, None, a.peers(), timeout=3, reconnect_window=1)
    try:
        with pytest.raises(PeerError):  # bob pins nobody yet: alice's certificate is refused
            client.send("bob", "x", b"1")
            client.recv_bytes("bob", "never", timeout=2)
        served.set_peers(b.peers())  # the operator pinned alice
        client2 = NetworkLink(a.identity, None, a.peers(), timeout=5)
        try:
            client2.send("bob", "x", b"2")
            assert served.recv_bytes("alice", "x") == b"2"
        finally:
            client2.close(notify_peers=False)
    finally:
        client.close(notify_peers=False)
        served.close(notify_peers=False)
        router.close()


def test_close_without_goodbye_leaves_the_peer_usable(homes: tuple[NodeHome, NodeHome]) -> None:
    a, b = homes
    served = NetworkLink(b.identity, None, b.peers(), timeout=5, peer_restarts="accept")
    router = _Router(b.listen, served)
    try:
        first = NetworkLink(a.identity, None, a.peers(), timeout=5)
        first.send("bob", "a", b"1")
        assert served.recv_bytes("alice", "a") == b"1"
        first.close(notify_peers=False)  # a node restarting: no BYE
        second = NetworkLink(a.identity, None, a.peers(), timeout=5)  # its next incarnation
        second.send("bob", "b", b"2")
        assert served.recv_bytes("alice", "b") == b"2"
        second.close(notify_peers=False)
    finally:
        served.close(notify_peers=False)
        router.close()


def test_client_context_offers_the_link_alpn(homes: tuple[NodeHome, NodeHome]) -> None:
    from riskshare.net.tls import client_context

    a, b = homes
    ctx = client_context(a.identity, a.peer("bob"))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    from riskshare.node.server import offered_alpn

    assert offered_alpn(outgoing.read()) == [LINK_ALPN.encode()]
