"""The one-process API: riskshare.pir.LocalPir and lookup."""

from __future__ import annotations

import doctest

import riskshare.pir
from riskshare.pir import LocalPir, lookup


def test_docstring_example_runs() -> None:
    assert doctest.testmod(riskshare.pir).failed == 0


def test_lookup_update_and_rotate(tmp_path) -> None:
    table = {"A1": {"level": "high"}, "B2": {"level": "low"}}
    assert lookup(["a1", "zz"], table) == [{"level": "high"}, None]
    csv = tmp_path / "risk.csv"
    csv.write_text("uscc,level\nA1,high\nB2,low\n")
    with LocalPir(csv, "uscc", mode="pir", client_home=tmp_path / "sub") as pir:
        assert pir.lookup(["B2"]) == [{"level": "low"}]
        pir.update({"A1": {"level": "medium"}})
        assert pir.lookup(["A1", "B2"]) == [{"level": "medium"}, None]
        old = pir.table.key_id
        assert pir.rotate_key().key_id != old
        result = pir.query(["A1"])
        assert result.answers[0].record == {"level": "medium"} and result.notes
    assert (tmp_path / "sub" / "pir-hint").is_dir()
