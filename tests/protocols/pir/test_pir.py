"""Keyword PIR end to end over an in-memory link: answers, updates, rotation, quotas, tampering, message sizes."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskshare.errors import InputError, ProtocolError, QuotaExceeded
from riskshare.net import memory_pair
from riskshare.protocols.pir import (
    CacheIntegrityError, CacheStore, FileQueryPolicy, HintStore, PirClient, ServerTable, prepare_table, wire,
)

from .conftest import RECORDS, make_table, server_table

MODES = ["cached", "pir"]


def as_dict(result):
    return {a.key: a.record for a in result.answers}


@pytest.mark.parametrize("mode", MODES)
def test_answers_match_a_plain_dict_lookup(session_factory, mode: str) -> None:
    rng = np.random.default_rng(7)
    # 5000 records: several evaluation chunks, sealed while the next ones are evaluated
    records = {f"9131{i:014d}": (str(rng.integers(1, 4)), f"reason {i} " * int(rng.integers(0, 4)))
               for i in range(5000)}
    session = session_factory(server_table(records), mode)
    client = session.client()
    present = list(records)[::97]
    absent = [f"X{i}" for i in range(20)]
    asked = present + absent + present[:3]  # repeated keys are answered each time
    result = client.query(asked)
    assert [a.key for a in result.answers] == asked
    for a in result.answers:
        expected = records.get(a.key)
        assert a.found == (expected is not None)
        assert a.record == (None if expected is None else {"level": expected[0], "reason": expected[1]})


@pytest.mark.parametrize("mode", MODES)
def test_keys_are_normalised_like_psi_and_not_found_is_reported(session_factory, mode: str) -> None:
    client = session_factory(server_table(RECORDS), mode).client()
    result = client.query(["  91310000ma1fl1xb2x ", "９１３５０１００Ｍ０００１００Ｙ４３", "NOT-THERE"])
    assert [a.found for a in result.answers] == [True, True, False]
    assert result.answers[0].normalised == "91310000MA1FL1XB2X"
    assert result.answers[1].record == {"level": "low", "reason": "late payment, twice"}
    assert result.answers[2].record is None
    assert client.query(["9144030071526726XG"]).answers[0].record["reason"] == "上市公司 关联交易"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    table=st.dictionaries(st.text(alphabet="ABC123", min_size=1, max_size=6),
                          st.text(alphabet="xyz ,\"'好", max_size=12), min_size=1, max_size=25),
    asked=st.lists(st.text(alphabet="ABC123", min_size=1, max_size=6), min_size=1, max_size=10),
)
def test_property_cached_mode_equals_dict(session_factory, table: dict[str, str], asked: list[str]) -> None:
    records = {k: ("v", v) for k, v in table.items()}
    client = session_factory(server_table(records)).client()
    for a in client.query(asked).answers:
        assert a.record == ({"level": "v", "reason": records[a.key][1]} if a.key in records else None)


def test_duplicate_and_empty_keys_in_the_table_are_refused_by_name() -> None:
    table = make_table({"A1": ("x", "y"), "B2": ("x", "y")})
    dup = table.set_column(0, "uscc", __import__("pyarrow").array(["A1", " a1"]))
    with pytest.raises(InputError, match=r"A1 \(x2\)"):
        prepare_table(dup, "uscc", "risk.csv")
    empty = table.set_column(0, "uscc", __import__("pyarrow").array(["A1", "  "]))
    with pytest.raises(InputError, match="empty key.*rows 2"):
        prepare_table(empty, "uscc", "risk.csv")
    with pytest.raises(InputError, match="no column 'id'"):
        prepare_table(table, "id", "risk.csv")


@pytest.mark.parametrize("bad", ["", "   ", "A\x00B", "X" * 300])
def test_bad_keys_are_refused_before_anything_is_sent(session_factory, bad: str) -> None:
    session = session_factory(server_table(RECORDS))
    with pytest.raises(InputError):
        session.client().query(["A1", bad])
    assert session.server.policy.events == []  # nothing reached the server


@pytest.mark.parametrize("mode", MODES)
def test_table_updates_reach_the_client_incrementally(session_factory, tmp_path, mode: str) -> None:
    table = server_table(RECORDS)
    session = session_factory(table, mode)
    store, hints = CacheStore(tmp_path / "cache"), HintStore(tmp_path / "hint")
    client = session.client(store=store, hints=hints)
    first = client.query(["A1"])
    assert first.update == "full" and first.version == 1

    changed = dict(RECORDS)
    changed["A1"] = ("low", "cleared")          # changed
    del changed["91350100M000100Y43"]            # removed
    changed["NEW1"] = ("high", "new entry")      # added
    v2 = table.updated(*prepare_table(make_table(changed), "uscc", "t"))
    assert v2.version == 2
    assert v2.delta_since(table.key_id, 1).rows.size == 2  # only the changed and the added record
    session.server.replace_table(v2)

    # A fresh client process with the cache on disk receives only the delta.
    client2 = session.client(store=store, hints=hints)
    result = client2.query(["A1", "91350100M000100Y43", "NEW1", "91310000MA1FL1XB2X"])
    assert result.version == 2
    if mode == "cached":
        assert (result.update, result.rows_received, result.deleted) == ("delta", 2, 1)
        assert store.load("server", "risk").size == 4
    else:
        assert result.update == "full"  # the hint is recomputed per version
    assert as_dict(result) == {
        "A1": {"level": "low", "reason": "cleared"},
        "91350100M000100Y43": None,
        "NEW1": {"level": "high", "reason": "new entry"},
        "91310000MA1FL1XB2X": {"level": "high", "reason": "fraud"},
    }
    # Serving the same table again creates no new version.
    assert v2.updated(*prepare_table(make_table(changed), "uscc", "t")) is v2
    assert client2.query(["A1"]).update == "none"


@pytest.mark.parametrize("mode", MODES)
def test_key_rotation_invalidates_old_caches_and_says_so(session_factory, tmp_path, mode: str) -> None:
    table = server_table(RECORDS)
    session = session_factory(table, mode)
    store, hints = CacheStore(tmp_path / "cache"), HintStore(tmp_path / "hint")
    client = session.client(store=store, hints=hints)
    client.query(["A1"])
    old_copy = store.load("server", "risk") if mode == "cached" else None
    rotated = table.rotated()
    assert rotated.key_id != table.key_id and not np.array_equal(rotated.tags, table.tags)
    session.server.replace_table(rotated)
    result = session.client(store=store, hints=hints).query(["A1", "91310000MA1FL1XB2X"])
    assert result.update == "full" and result.key_id == rotated.key_id
    assert any("rotated its OPRF key" in note for note in result.notes)
    assert as_dict(result)["A1"] == {"level": "high", "reason": ""}
    if old_copy is not None:  # the old copy holds none of the new tags
        assert (old_copy.find(rotated.tags) == -1).all()


def test_quota_exhausted_is_a_clear_error_on_the_client(session_factory, tmp_path) -> None:
    policy = FileQueryPolicy(tmp_path / "queries.log", max_keys_per_day=3)
    client = session_factory(server_table(RECORDS), policy=policy).client()
    client.query(["A1", "B"])
    with pytest.raises(QuotaExceeded, match=r"used 2 of its 3 keys.*asks 2, 1 left"):
        client.query(["A1", "C"])
    assert client.query(["A1"]).answers[0].found  # the last allowed key still works
    with pytest.raises(QuotaExceeded):
        client.query(["A1"])
    log = (tmp_path / "queries.log").read_text()
    assert "A1" not in log and "refused" in log


def test_rate_limit(session_factory, tmp_path) -> None:
    policy = FileQueryPolicy(tmp_path / "queries.log", max_queries_per_minute=2)
    client = session_factory(server_table(RECORDS), policy=policy).client()
    client.query(["A1"])
    client.query(["A1"])
    with pytest.raises(QuotaExceeded, match="2 queries per minute"):
        client.query(["A1"])


def test_tampered_cached_table_is_detected(session_factory, tmp_path) -> None:
    session = session_factory(server_table(RECORDS))
    store = CacheStore(tmp_path / "cache")
    session.client(store=store).query(["A1"])
    directory = tmp_path / "cache" / "server" / "risk"
    pristine = {p.name: p.read_bytes() for p in directory.iterdir()}

    def tamper(name: str, change) -> None:
        for fname, data in pristine.items():
            (directory / fname).write_bytes(data)
        arr = np.load(directory / name)
        np.save(directory / name, change(arr.copy()))

    def flip(a):
        a[0, -1] ^= 1
        return a

    for name, change in (("ciphertexts.npy", flip), ("tags.npy", flip), ("tags.npy", lambda a: a[1:]),
                         ("revisions.npy", lambda a: a + 1)):
        tamper(name, change)
        with pytest.raises(CacheIntegrityError, match="integrity check"):
            session.client(store=store)
    # An in-memory copy modified after loading fails record authentication instead.
    for fname, data in pristine.items():
        (directory / fname).write_bytes(data)
    client = session.client(store=store)
    client.copy.ciphertexts[:, 5] ^= 0xFF
    with pytest.raises(CacheIntegrityError, match="fails authentication"):
        client.query(["A1"])


@pytest.mark.parametrize("mode", MODES)
def test_messages_the_server_sees_do_not_depend_on_the_key(session_factory, mode: str) -> None:
    session = session_factory(server_table(RECORDS), mode)
    client = session.client()
    client.sync()
    sizes = []
    for keys in (["91310000MA1FL1XB2X"], ["NOT-THERE"], ["9144030071526726XG"], ["Z" * 200]):
        before = session.server_link.stats.by_tag()
        client.query(keys)
        after = session.server_link.stats.by_tag()
        received = {}
        for t, row in after.items():
            delta = row["bytes_received"] - before.get(t, {}).get("bytes_received", 0)
            if delta:
                received[re.sub(r"pir/[0-9a-f]{32}/", "pir/Q/", t)] = delta
        sizes.append(received)
    assert all(s == sizes[0] for s in sizes), sizes
    assert "pir/Q/blinded" in sizes[0]
    if mode == "pir":
        assert "pir/Q/pir-query" in sizes[0]


def _fake_server(reply: dict, arrays: dict | None = None):
    """A server that answers the first request with ``reply`` (and arrays), to test the client's checks."""
    client_link, server_link = memory_pair("client", "server", timeout=5)

    def run() -> None:
        req = server_link.recv_json("client", wire.REQUEST_TAG)
        qid = req["qid"]
        if req["keys"]:
            server_link.recv("client", wire.tag(qid, "blinded"))
        server_link.send_json("client", wire.tag(qid, "reply"), reply)
        for name, arr in (arrays or {}).items():
            server_link.send("client", wire.tag(qid, name), arr)

    threading.Thread(target=run, daemon=True).start()
    return PirClient(client_link, "server")


def _manifest(**changes) -> dict:
    m = {"table": "risk", "key_id": "0123456789abcdef", "version": 1, "columns": ["level"], "width": 32,
         "records": 2, "digest": "0" * 64}
    m.update(changes)
    return m


@pytest.mark.parametrize("reply, arrays, message", [
    ({"status": "ok"}, None, "malformed PIR reply"),
    ("not a dict", None, "malformed PIR reply"),
    ({"status": "ok", "manifest": _manifest(records=10**12), "update": {"kind": "full", "rows": 1, "deleted": 0}},
     None, "implausible table"),
    ({"status": "ok", "manifest": _manifest(), "update": {"kind": "full", "rows": 5, "deleted": 0}},
     None, "update larger than its table"),
    ({"status": "ok", "manifest": _manifest(table="../../etc"), "update": {"kind": "none", "rows": 0, "deleted": 0}},
     None, "not a valid name"),
    ({"status": "ok", "manifest": _manifest(), "update": {"kind": "full", "rows": 2, "deleted": 0}},
     {"rows/tags": np.zeros((3, 16), np.uint8)}, "shape"),
    ({"status": "ok", "manifest": _manifest(), "update": {"kind": "full", "rows": 2, "deleted": 0}},
     {"rows/tags": np.zeros((2, 16), np.uint8), "rows/nonces": np.zeros((2, 12), np.uint8),
      "rows/ciphertexts": np.zeros((2, 48), np.uint8), "rows/revisions": np.ones(2, "<u8"),
      "rows/deleted": np.zeros((0, 16), np.uint8)}, "does not match the server's digest"),
    ({"status": "refused", "reason": "malformed", "message": "x"}, None, "refused the query"),
])
def test_malformed_or_oversized_server_answers_are_clear_errors(reply, arrays, message) -> None:
    client = _fake_server(reply, arrays)
    with pytest.raises(ProtocolError, match=message):
        client.query(["A1"])


def test_invalid_blinded_elements_are_refused_by_the_server(session_factory) -> None:
    session = session_factory(server_table(RECORDS))
    link = session.client_link
    qid = "ab" * 16
    link.send_json("server", wire.REQUEST_TAG, {"v": 1, "qid": qid, "op": "query", "mode": "cached", "keys": 1,
                                                "have": None})
    link.send("server", wire.tag(qid, "blinded"), np.full((1, 32), 0xFF, np.uint8))
    reply = link.recv_json("server", wire.tag(qid, "reply"))
    assert reply["status"] == "refused" and reply["reason"] == "malformed"


def test_server_refuses_mode_mismatch_and_oversized_batches(session_factory) -> None:
    session = session_factory(server_table(RECORDS), "cached", max_keys_per_query=2)
    with pytest.raises(InputError, match="at most 2 keys"):
        session.client().query(["A", "B", "C"])
    with pytest.raises(InputError, match="cached mode"):
        PirClient(session.client_link, "server", mode="pir").query(["A"])
    assert [e["event"] for e in session.server.policy.events] == ["refused", "refused"]  # logged, never silent


def test_server_state_survives_a_restart_and_detects_damage(tmp_path) -> None:
    table = server_table(RECORDS)
    table.save(tmp_path / "state")
    again = ServerTable.load(tmp_path / "state")
    assert again is not None
    assert again.digest == table.digest and again.key_id == table.key_id
    assert np.array_equal(again.buckets, table.buckets)
    assert oct((tmp_path / "state" / f"oprf-{table.key_id}.key").stat().st_mode & 0o777) == "0o600"
    rotated = again.rotated()
    rotated.save(tmp_path / "state")
    assert [p.name for p in (tmp_path / "state").glob("oprf-*.key")] == [f"oprf-{rotated.key_id}.key"]
    manifest = tmp_path / "state" / "manifest.json"
    manifest.write_text(manifest.read_text().replace(rotated.digest, "f" * 64))
    from riskshare.errors import ConfigError
    with pytest.raises(ConfigError, match="integrity check"):
        ServerTable.load(tmp_path / "state")
