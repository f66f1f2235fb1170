import threading

import numpy as np
import pyarrow as pa
import pytest

from riskshare.errors import InputError, ParameterMismatch, ProtocolError
from riskshare.net import memory_pair
from riskshare.protocols.psi import ot
from riskshare.protocols.psi.common import PsiParams


def _run(x, y, *, result_to="receiver", stash=0, timeout=30):
    r, s = memory_pair("r", "s", timeout=timeout)
    params = PsiParams(protocol="ot", result_to=result_to, extra={"variant": ot.VARIANT, "stash": stash})
    out = {}

    def sender():
        try:
            out["s"] = ot.run(s, "r", "sender", pa.array(y, type=pa.string()), params)
        except Exception as exc:  # noqa: BLE001
            out["e"] = exc

    t = threading.Thread(target=sender)
    t.start()
    res = ot.run(r, "s", "receiver", pa.array(x, type=pa.string()), params)
    t.join()
    if "e" in out:
        raise out["e"]
    return res, out["s"]


def _expected(x, y):
    ys = set(y)
    return [i for i, v in enumerate(x) if v in ys]


@pytest.mark.parametrize("stash", [0, 2])
def test_intersection_and_result_to_both(stash):
    x = [f"C{i:06d}" for i in range(3000)]
    y = [f"C{i:06d}" for i in range(2000, 9000)]
    r, s = _run(x, y, result_to="both", stash=stash)
    assert r.indices.tolist() == _expected(x, y)
    assert s.indices.tolist() == _expected(y, x)
    assert r.peer_size == 7000 and s.peer_size == 3000


def test_values_in_many_batches(monkeypatch):
    monkeypatch.setattr(ot, "BATCH", 1000)
    x = [f"C{i:06d}" for i in range(2000)]
    y = [f"C{i:06d}" for i in range(1500, 4000)]
    r, s = _run(x, y, result_to="both", stash=1)
    assert r.indices.tolist() == _expected(x, y)
    assert s.indices.tolist() == _expected(y, x)


@pytest.mark.parametrize("x,y", [([], []), ([], ["a"]), (["a"], []), (["a"], ["a"]), (["a"], ["b"]),
                                 (["a", "b", "c"], ["c", "b", "a"])])
def test_tiny_sets(x, y):
    r, s = _run(x, y, result_to="both")
    assert r.indices.tolist() == _expected(x, y)
    assert s.indices.tolist() == _expected(y, x)


def test_full_overlap_and_sender_learns_nothing_by_default():
    x = [str(i) for i in range(5000)]
    r, s = _run(x, x[::-1])
    assert r.indices.tolist() == list(range(5000))
    assert s.indices is None and s.size is None


def test_count_mode_is_refused_with_a_pointer():
    r, _ = memory_pair("r", "s")
    with pytest.raises(InputError, match="ecdh"):
        ot.run(r, "s", "receiver", ["a"], PsiParams(protocol="ot", output_mode="count"))


def test_stash_setting_must_agree():
    r, s = memory_pair("r", "s", timeout=10)
    out = {}

    def sender():
        try:
            ot.run(s, "r", "sender", ["a"], PsiParams(protocol="ot", extra={"variant": ot.VARIANT, "stash": 1}))
        except ParameterMismatch as exc:
            out["e"] = exc

    t = threading.Thread(target=sender)
    t.start()
    with pytest.raises(ParameterMismatch, match="extra"):
        ot.run(r, "s", "receiver", ["a"], PsiParams(protocol="ot", extra={"variant": ot.VARIANT, "stash": 0}))
    t.join()
    assert "e" in out


def test_receiver_aborts_on_more_values_than_agreed(monkeypatch):
    """A sender that sends more OPRF values than (3 + stash) x its announced set size is refused."""
    real = ot.kkrt.OprfKey.evaluate

    def padded(self, instances, inputs, out_bytes):
        values = real(self, instances, inputs, out_bytes)
        return np.concatenate([values, values[:1]])  # one value too many

    monkeypatch.setattr(ot.kkrt.OprfKey, "evaluate", padded)
    with pytest.raises(ProtocolError, match="shape"):
        _run(["a", "b"], ["b", "c"], timeout=10)


def test_forged_match_positions_are_refused(monkeypatch):
    """With --result-to both, positions outside the sender's list make the sender abort."""
    real = ot.SortedTable.probe

    def forged(self, batch):
        li, rj = real(self, batch)
        return li, rj + 10**6

    monkeypatch.setattr(ot.SortedTable, "probe", forged)
    with pytest.raises(ProtocolError, match="out-of-range"):
        _run(["a", "b"], ["b", "c"], result_to="both", timeout=10)
