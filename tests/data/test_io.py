import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskshare.data import atomic_output, read_table, write_table
from riskshare.errors import InputError


@pytest.mark.parametrize("delim", [",", ";", "\t", "|"])
def test_delimiters_are_detected(tmp_path, delim):
    f = tmp_path / "t.csv"
    f.write_text(f"id{delim}name\nA1{delim}x\nB2{delim}y\n")
    t = read_table(f)
    assert t.column_names == ["id", "name"]
    assert t["id"].to_pylist() == ["A1", "B2"]


def test_quoted_fields_with_delimiters_and_newlines(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text('id,name\nA1,"Acme, Ltd."\nB2,"two\nlines"\n')
    t = read_table(f, strings=True)
    assert t["name"].to_pylist() == ["Acme, Ltd.", "two\nlines"]


def test_utf8_bom_is_ignored(tmp_path):
    f = tmp_path / "t.csv"
    f.write_bytes("\ufeffid,名称\nA1,公司\n".encode("utf-8"))
    t = read_table(f)
    assert t.column_names == ["id", "名称"]
    assert t["名称"].to_pylist() == ["公司"]


def test_gbk_is_detected_and_selectable(tmp_path):
    f = tmp_path / "t.csv"
    f.write_bytes("id,名称\nA1,上海某某投资有限公司\n".encode("gbk"))
    assert read_table(f)["名称"].to_pylist() == ["上海某某投资有限公司"]
    assert read_table(f, encoding="gbk")["名称"].to_pylist() == ["上海某某投资有限公司"]


def test_wrong_declared_encoding_is_a_clear_error(tmp_path):
    f = tmp_path / "t.csv"
    f.write_bytes("id,名称\nA1,上海某某投资有限公司\n".encode("gbk"))
    with pytest.raises(InputError, match="not valid utf-8.*--encoding"):
        read_table(f, encoding="utf-8", strings=True)


def test_id_columns_keep_leading_zeros(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("id,x\n007,1.5\n010,2\n")
    t = read_table(f, string_columns=["id"])
    assert t["id"].to_pylist() == ["007", "010"]
    assert t["x"].type == pa.float64()


def test_parquet_round_trip(tmp_path):
    f = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "v": [1, 2]}), f)
    assert read_table(f, required_columns=["id"]).num_rows == 2


@pytest.mark.parametrize(
    "content, match",
    [(b"", "is empty"), (b"   \n", "is empty"), (b"id,,x\n1,2,3\n", "empty column name"), (b"id,id\n1,2\n", "duplicate")],
)
def test_bad_files(tmp_path, content, match):
    f = tmp_path / "t.csv"
    f.write_bytes(content)
    with pytest.raises(InputError, match=match):
        read_table(f)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="directory"):
        read_table(tmp_path)


def test_missing_required_column(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("id,name\n1,a\n")
    with pytest.raises(InputError, match="no column 'uscc'"):
        read_table(f, required_columns=["uscc"])


def test_not_parquet(tmp_path):
    f = tmp_path / "t.parquet"
    f.write_text("id\n1\n")
    with pytest.raises(InputError, match="not a readable Parquet"):
        read_table(f)


def test_write_is_atomic(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    write_table(pa.table({"id": ["a"]}), target)
    assert read_table(target)["id"].to_pylist() == ["a"]
