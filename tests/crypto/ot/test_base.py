import os
import threading

import numpy as np
import pytest

from riskshare.crypto.ot import base
from riskshare.errors import ProtocolError
from riskshare.net import memory_pair


def test_receiver_gets_exactly_the_chosen_keys():
    a, b = memory_pair("s", "r", timeout=20)
    choices = np.random.default_rng(0).integers(0, 2, size=64)
    session = os.urandom(16)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("pairs", base.send(a, "r", 64, session)))
    t.start()
    keys = base.receive(b, "s", choices, session)
    t.join()
    pairs = out["pairs"]
    assert all(k == pair[c] for k, pair, c in zip(keys, pairs, choices))
    assert all(k != pair[1 - c] for k, pair, c in zip(keys, pairs, choices))
    assert len({k0 for k0, _ in pairs} | {k1 for _, k1 in pairs}) == 128


def test_invalid_point_from_the_sender_is_refused():
    a, b = memory_pair("s", "r", timeout=5)
    a.send("r", "ot/base/A", bytes(32))  # the identity / not a valid subgroup point
    with pytest.raises(ProtocolError, match="invalid curve point"):
        base.receive(b, "s", np.zeros(4, dtype=np.uint8), os.urandom(16))
