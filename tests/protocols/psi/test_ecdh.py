"""ECDH-PSI against the plaintext answer, every mode, and a misbehaving peer."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from riskshare.data import normalise
from riskshare.errors import ParameterMismatch, PeerError, ProtocolError
from riskshare.net import memory_pair
from riskshare.protocols import psi
from riskshare.protocols.psi import ecdh
from riskshare.psi import intersect, intersection_size, run_local

ids = st.lists(
    st.text(alphabet="abcAB12ａｂ１ \u3000", min_size=0, max_size=4), max_size=40
)


def plain(left, right):
    def norm(values):
        return {v for v in normalise([str(x) for x in values]).to_pylist() if v}

    return sorted(norm(left) & norm(right))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ids, ids)
def test_intersection_equals_plaintext(left, right):
    assert intersect(left, right) == plain(left, right)


@pytest.mark.parametrize(
    "left, right",
    [([], []), (["a"], []), ([], ["a"]), (["a"], ["a"]), (["a", "b"], ["c"]), (list("abcdef"), list("abcdef")),
     (["x"] * 5 + ["y"], ["y", "y", "Ｘ"])],
)
def test_edge_cases(left, right):
    assert intersect(left, right) == plain(left, right)
    assert intersection_size(left, right) == len(plain(left, right))


def test_result_to_both_gives_the_sender_the_same_set():
    left = [f"id{i}" for i in range(300)]
    right = [f"ID{i}" for i in range(200, 600)]
    receiver, sender, r_ids, s_ids = run_local(left, right, result_to="both")
    got_r = set(r_ids.take(receiver.indices).to_pylist())
    got_s = set(s_ids.take(sender.indices).to_pylist())
    assert got_r == got_s == {f"ID{i}" for i in range(200, 300)}
    assert receiver.peer_size == 400 and sender.peer_size == 300


def test_default_mode_tells_the_sender_only_sizes():
    receiver, sender, _, _ = run_local(["a", "b", "c"], ["b", "c", "d", "e"])
    assert receiver.size == 2
    assert sender.indices is None and sender.size is None
    assert sender.peer_size == 3


def test_count_mode_reveals_only_the_size():
    receiver, sender, _, _ = run_local([f"{i}" for i in range(50)], [f"{i}" for i in range(25, 80)], output_mode="count")
    assert receiver.size == sender.size == 25
    assert receiver.indices is None and sender.indices is None


def test_messages_are_bounded_by_the_agreed_sizes():
    """A sender that returns more masked values than the receiver sent is refused."""
    r_link, s_link = memory_pair("receiver", "sender")
    errors = {}

    def bad_sender():
        psi_hello = s_link.recv_json("receiver", "psi/hello")
        s_link.send_json("receiver", "psi/hello", {**psi_hello, "role": "sender", "n": 2})
        s_link.recv_array("receiver", "psi/ecdh/x_a", dtype=np.uint8)
        s_link.send("receiver", "psi/ecdh/y_b", np.ones((2, 32), np.uint8))
        s_link.send("receiver", "psi/ecdh/x_ab", np.ones((50, 16), np.uint8))  # receiver sent 3

    t = threading.Thread(target=bad_sender)
    t.start()
    with pytest.raises(ProtocolError, match=r"shape \(50, 16\).*expected \(3, 16\)"):
        ecdh.run(r_link, "sender", "receiver", ["a", "b", "c"])  # the protocol's own wire, no plan/buckets
    t.join()


def run_pair(r_kwargs, s_kwargs):
    r_link, s_link = memory_pair("receiver", "sender", timeout=5)
    out = {}

    def side(name, link, peer, role, kwargs):
        try:
            out[name] = psi.run(link, peer, role, ["a", "b"], **kwargs)
        except Exception as exc:  # noqa: BLE001
            out[name] = exc
            link.close()

    threads = [
        threading.Thread(target=side, args=("r", r_link, "sender", "receiver", r_kwargs)),
        threading.Thread(target=side, args=("s", s_link, "receiver", "sender", s_kwargs)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_parameter_mismatch_stops_both_sides_before_any_data():
    out = run_pair({"result_to": "both"}, {"result_to": "receiver"})
    assert isinstance(out["r"], ParameterMismatch) and isinstance(out["s"], ParameterMismatch)
    assert "result_to" in str(out["r"])


def test_both_sides_choosing_the_same_role_is_refused():
    r_link, s_link = memory_pair("a", "b", timeout=5)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("b", _catch(lambda: psi.run(s_link, "a", "receiver", ["x"]))))
    t.start()
    err = _catch(lambda: psi.run(r_link, "b", "receiver", ["x"]))
    t.join()
    assert isinstance(err, ParameterMismatch) and "both parties chose role 'receiver'" in str(err)
    assert isinstance(out["b"], (ParameterMismatch, PeerError))


def _catch(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001
        return exc


def test_unknown_protocol_and_role():
    a, _ = memory_pair()
    with pytest.raises(Exception, match="unknown PSI protocol"):
        psi.run(a, "bob", "receiver", ["x"], protocol="nope")
    with pytest.raises(Exception, match="role must be"):
        psi.run(a, "bob", "observer", ["x"])  # type: ignore[arg-type]


def test_messages_do_not_follow_input_order(monkeypatch):
    """What each side sends is shuffled: its order carries nothing about the input order."""
    from riskshare.crypto import x25519
    from riskshare.protocols.psi import ecdh

    key = bytes(range(32))
    monkeypatch.setattr(x25519, "random_scalar", lambda: key)
    values = [f"{i:04d}" for i in range(200)]
    in_order = x25519.multiply(key, x25519.hash_to_points(values, ecdh.DOMAIN))
    r_link, s_link = memory_pair("receiver", "sender")
    sent = {}
    original_send = s_link.send

    def recording_send(peer, tag, payload):
        sent[tag] = payload.copy()
        original_send(peer, tag, payload)

    s_link.send = recording_send  # type: ignore[method-assign]
    t = threading.Thread(target=lambda: ecdh.run(s_link, "receiver", "sender", values))
    t.start()
    result = ecdh.run(r_link, "sender", "receiver", values)
    t.join()
    assert result.indices.tolist() == list(range(200))
    y_b = sent["psi/ecdh/y_b"]
    assert sorted(map(bytes, y_b)) == sorted(map(bytes, in_order))  # the same values...
    assert not np.array_equal(y_b, in_order)  # ...not in input order
