import os
import threading

import numpy as np
import pytest

from riskshare.crypto.ot import kkrt
from riskshare.errors import ProtocolError
from riskshare.net import memory_pair


def _run(m, inputs, out_bytes=16):
    r, s = memory_pair("r", "s", timeout=30)
    session = os.urandom(16)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("key", kkrt.send(s, "r", m, session)))
    t.start()
    values = kkrt.receive(r, "s", inputs, session, out_bytes)
    t.join()
    return values, out["key"]


@pytest.mark.parametrize("m", [64, 64 * 33])
def test_sender_evaluates_receiver_values_and_nothing_else(m):
    rng = np.random.default_rng(m)
    inputs = rng.integers(0, 2**64, size=(m, 2), dtype=np.uint64)
    values, key = _run(m, inputs)
    assert (key.evaluate(np.arange(m), inputs, 16) == values).all()
    other = inputs.copy()
    other[:, 1] ^= np.uint64(1)  # one bit off: a different input
    assert not (key.evaluate(np.arange(m), other, 16) == values).all(axis=1).any()
    # the same input in another instance gives another value (related keys, not one key)
    shifted = key.evaluate(np.roll(np.arange(m), 1), inputs, 16)
    assert not (shifted == values).all(axis=1).any()


def test_truncation_and_random_access():
    m = 128
    inputs = np.random.default_rng(1).integers(0, 2**64, size=(m, 2), dtype=np.uint64)
    values, key = _run(m, inputs, out_bytes=10)
    pick = np.array([5, 127, 5, 0])
    assert (key.evaluate(pick, inputs[pick], 10) == values[pick]).all()
    with pytest.raises(ValueError):
        key.evaluate(np.array([m]), inputs[:1], 10)


def test_wrongly_shaped_correction_matrix_aborts():
    r, s = memory_pair("r", "s", timeout=10)
    session = os.urandom(16)
    errors = {}

    def sender():
        try:
            kkrt.send(s, "r", 128, session)
        except ProtocolError as exc:
            errors["sender"] = exc

    t = threading.Thread(target=sender)
    t.start()
    from riskshare.crypto.ot import base
    base.send(r, "s", kkrt.WIDTH, session, tag="kkrt/base")
    r.recv_bytes("s", "kkrt/code")
    r.send("s", "kkrt/u", np.zeros((8, 64, 3), dtype="<u8"))  # 192 rows, 128 agreed
    t.join()
    assert "shape" in str(errors["sender"])
