import pyarrow as pa
import pytest

from riskshare.data import normalise, normalise_one, prepare_ids
from riskshare.errors import InputError


def test_normalise_nfkc_strip_upper():
    assert normalise_one("  ９１３５０１００ｍ０００１００ｙ４３\t") == "91350100M000100Y43"
    assert normalise_one("abc", case="keep") == "abc"
    assert normalise(["Ａｂ", None, " x "]).to_pylist() == ["AB", None, "X"]


def test_full_width_and_half_width_ids_are_the_same_client():
    t = pa.table({"id": ["ＡＢＣ１２３", "abc123 ", "ABC123"]})
    prepared = prepare_ids(t, "id")
    assert prepared.unique.to_pylist() == ["ABC123"]
    assert prepared.report.duplicates == 2
    assert prepared.rows_for([0]).tolist() == [0, 1, 2]


def test_empty_and_duplicate_ids_are_counted_and_rejected_rows_listed():
    t = pa.table({"id": ["a", "", None, "A", "b", "  "], "v": [1, 2, 3, 4, 5, 6]})
    p = prepare_ids(t, "id")
    assert p.report.as_dict() == {"rows": 6, "empty": 3, "invalid": 0, "duplicates": 1, "unique": 2}
    assert p.rejects.column("row").to_pylist() == [2, 3, 6]
    assert set(p.rejects.column("reason").to_pylist()) == {"empty ID"}
    assert p.row_to_unique.tolist()[1:3] == [-1, -1]


def test_uscc_mode_keeps_invalid_codes_out_and_lists_them(tmp_path):
    t = pa.table({"uscc": ["91350100M000100Y43", "91350100M000100Y44", "914403001922038216"]})
    p = prepare_ids(t, "uscc", id_type="uscc")
    assert sorted(p.unique.to_pylist()) == ["91350100M000100Y43", "914403001922038216"]
    assert p.report.invalid == 1
    assert p.write_rejects(tmp_path / "rejects.csv")
    text = (tmp_path / "rejects.csv").read_text()
    assert "91350100M000100Y44" in text and "expected 3" in text


def test_integer_id_columns_are_treated_as_text():
    p = prepare_ids(pa.table({"id": [1, 2, 2]}), "id")
    assert sorted(p.unique.to_pylist()) == ["1", "2"]


def test_missing_id_column_names_the_columns():
    with pytest.raises(InputError, match="no column 'uscc'.*its columns: id"):
        prepare_ids(pa.table({"id": ["a"]}), "uscc")


def test_unknown_id_type():
    with pytest.raises(InputError, match="id-type"):
        prepare_ids(pa.table({"id": ["a"]}), "id", id_type="passport")  # type: ignore[arg-type]
