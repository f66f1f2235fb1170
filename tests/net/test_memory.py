import threading

import numpy as np
import pytest

from riskshare.errors import PeerTimeout, ProtocolError, RiskshareError
from riskshare.net import MemoryHub, memory_pair


def test_send_and_typed_receive():
    a, b = memory_pair("a", "b")
    arr = np.arange(10, dtype=np.int64)
    a.send("b", "x", arr)
    arr[0] = 99  # the receiver got a copy, as over a network
    got = b.recv_array("a", "x", dtype=np.int64, shape=(None,))
    assert got.tolist() == list(range(10))
    a.send("b", "y", b"hello")
    assert b.recv_bytes("a", "y", exact=5) == b"hello"
    a.send_json("b", "z", {"n": 3})
    assert b.recv_json("a", "z") == {"n": 3}


def test_same_tag_is_fifo():
    a, b = memory_pair()
    for i in range(5):
        a.send_json("bob", "t", i)
    assert [b.recv_json("alice", "t") for _ in range(5)] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "payload, kwargs, match",
    [
        (np.zeros(3, np.uint8), dict(dtype=np.int64), "uint8 array"),
        (np.zeros((3, 2), np.uint8), dict(dtype=np.uint8, shape=(None, 32)), "shape"),
        (b"xx", dict(dtype=np.uint8), "bytes"),
    ],
)
def test_type_checks_name_peer_and_step(payload, kwargs, match):
    a, b = memory_pair("bank", "broker")
    a.send("broker", "psi/step", payload)
    with pytest.raises(ProtocolError, match=f"'bank'.*{match}|{match}.*'psi/step'"):
        b.recv_array("bank", "psi/step", **kwargs)


def test_recv_bytes_limits():
    a, b = memory_pair()
    a.send("bob", "t", b"x" * 10)
    with pytest.raises(ProtocolError, match="at most 4"):
        b.recv_bytes("alice", "t", max_bytes=4)
    a.send_json("bob", "j", 1)
    with pytest.raises(ProtocolError, match="JSON"):
        b.recv_bytes("alice", "j")


def test_timeout_names_peer_and_step():
    a, b = memory_pair("bank", "broker")
    with pytest.raises(PeerTimeout, match="'psi/ecdh/x_a' from peer 'bank'"):
        b.recv("bank", "psi/ecdh/x_a", timeout=0.2)


def test_unknown_peer():
    a, _ = memory_pair("bank", "broker")
    with pytest.raises(RiskshareError, match="not a peer"):
        a.send("sub", "t", b"x")


def test_stats_and_scoped_links():
    a, b = memory_pair()
    sa, sb = a.scoped("job1"), b.scoped("job1")
    sa.send("bob", "t", np.zeros(100, np.uint8))
    assert sb.recv_array("alice", "t", dtype=np.uint8).size == 100
    a.send("bob", "t", b"x")  # same tag, other scope: not mixed up
    assert b.recv_bytes("alice", "t") == b"x"
    tags = a.stats.by_tag()
    assert set(tags) == {"job1/t", "t"}
    assert tags["job1/t"]["bytes_sent"] > 100
    assert b.stats.total("job1/")["messages_received"] == 1


def test_three_parties_and_concurrency():
    hub = MemoryHub(["hq", "sub1", "sub2"])
    results = {}

    def sub(name):
        hub[name].send_json("hq", "q", name)
        results[name] = hub[name].recv_json("hq", "a")

    threads = [threading.Thread(target=sub, args=(n,)) for n in ("sub1", "sub2")]
    for t in threads:
        t.start()
    for n in ("sub1", "sub2"):
        hub["hq"].send_json(n, "a", hub["hq"].recv_json(n, "q").upper())
    for t in threads:
        t.join()
    assert results == {"sub1": "SUB1", "sub2": "SUB2"}
