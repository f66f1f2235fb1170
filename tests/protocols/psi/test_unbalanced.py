import threading

import numpy as np
import pyarrow as pa
import pytest

from riskshare.errors import InputError, ParameterMismatch, ProtocolError
from riskshare.net import memory_pair
from riskshare.protocols import psi
from riskshare.protocols.psi.store import ClientCache, ServerSet


def _pair(server_set, cache, client_ids, *, result_to="receiver", set_name="risk", client_set_name=None):
    r, s = memory_pair("client", "server", timeout=30)
    out = {}

    def server():
        try:
            out["s"] = psi.run(s, "client", "sender", pa.array([], pa.string()), protocol="unbalanced",
                               result_to=result_to, store=server_set, set_name=set_name)
        except Exception as exc:  # noqa: BLE001
            out["e"] = exc
            s.close()

    t = threading.Thread(target=server)
    t.start()
    try:
        res = psi.run(r, "server", "receiver", pa.array(client_ids, pa.string()), protocol="unbalanced",
                      result_to=result_to, store=cache, set_name=client_set_name or set_name)
    finally:
        t.join()
    if "e" in out:
        raise out["e"]
    return res, out["s"]


@pytest.fixture()
def server_set(tmp_path):
    ids = pa.array([f"S{i:05d}" for i in range(1000)] + [f"S{i:05d}" for i in (1500, 2999)])
    return ServerSet.prepare(tmp_path / "server", "risk", ids)[0]


def test_sync_once_then_only_additions(tmp_path, server_set):
    cache = ClientCache.open(tmp_path / "client")
    client = ["S00001", "S02999", "X1", "S01500"]
    r, s = _pair(server_set, cache, client, result_to="both")
    assert r.indices.tolist() == [0, 1, 3]
    assert r.details["full_sync"] and r.details["synced_values"] == 1002
    ids = server_set.ids().to_pylist()
    assert sorted(ids[i] for i in s.indices) == ["S00001", "S01500", "S02999"]
    # second run: nothing to download
    r, _ = _pair(server_set, ClientCache.open(tmp_path / "client"), ["S00002", "nope"])
    assert r.indices.tolist() == [0] and r.details["synced_values"] == 0
    # the server adds IDs: only those travel
    grown, added = ServerSet.prepare(server_set.path, "risk", pa.array(ids + ["NEW1", "NEW2"]))
    assert added == 2 and grown.count == 1004 and grown.key_id == server_set.key_id
    r, _ = _pair(grown, ClientCache.open(tmp_path / "client"), ["NEW2", "S00003", "zzz"])
    assert r.indices.tolist() == [0, 1] and r.details["synced_values"] == 2 and not r.details["full_sync"]


def test_rebuild_means_a_new_key_and_a_full_download(tmp_path, server_set):
    _pair(server_set, ClientCache.open(tmp_path / "client"), ["S00001"])
    with pytest.raises(InputError, match="only grows"):
        ServerSet.prepare(server_set.path, "risk", pa.array(["S00001"]))
    rebuilt, _ = ServerSet.prepare(server_set.path, "risk", pa.array(["S00001", "T1"]), rebuild=True)
    assert rebuilt.key_id != server_set.key_id
    r, _ = _pair(rebuilt, ClientCache.open(tmp_path / "client"), ["S00001", "S00002", "T1"])
    assert r.indices.tolist() == [0, 2] and r.details["full_sync"]


def test_empty_client_and_mismatched_set_names(tmp_path, server_set):
    r, _ = _pair(server_set, ClientCache.open(tmp_path / "c"), [])
    assert r.indices.tolist() == [] and r.peer_size == 1002
    with pytest.raises(ParameterMismatch, match="extra"):
        _pair(server_set, ClientCache.open(tmp_path / "c2"), ["S00001"], client_set_name="other")


def test_client_refuses_more_values_than_the_agreed_size(tmp_path, server_set, monkeypatch):
    real = ServerSet.values

    def padded(self, start=0):
        values = real(self, start)
        return np.concatenate([values, values[:1]])

    monkeypatch.setattr(ServerSet, "values", padded)
    with pytest.raises(ProtocolError, match="shape"):
        _pair(server_set, ClientCache.open(tmp_path / "c"), ["S00001"])
    assert not (tmp_path / "c" / "meta.json").exists()  # nothing half-stored
