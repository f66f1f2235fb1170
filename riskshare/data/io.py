"""Tables in and out: CSV (any delimiter, quoted fields, UTF-8 with or without BOM,
GBK detected or chosen) and Parquet, through pyarrow.

Files are read where they live; outputs are written atomically (a temporary
file renamed into place), so a failed run never leaves a partial output.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import InputError

Encoding = Literal["auto", "utf-8", "gbk", "gb18030"]
_DELIMITERS = ",;\t|"
_SNIFF_BYTES = 64 * 1024


def _detect_encoding(sample: bytes) -> str:
    """UTF-8 (with or without BOM) when the sample decodes; otherwise GB18030, the superset of GBK."""
    body = sample[3:] if sample.startswith(b"\xef\xbb\xbf") else sample
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the sample is not an error.
        if exc.start >= len(body) - 3 and exc.reason == "unexpected end of data":
            return "utf-8"
    try:
        body.decode("gb18030")
        return "gb18030"
    except UnicodeDecodeError:
        raise InputError(
            "the file is neither UTF-8 nor GBK/GB18030 text",
            hint="convert it to UTF-8, or pass --encoding if you know it",
        ) from None


def _decode_sample(sample: bytes, enc: str, p: Path) -> str:
    """Decode the start of the file strictly; only a character cut at the sample's end is forgiven."""
    try:
        return sample.decode(enc).lstrip("\ufeff")
    except LookupError:
        raise InputError(f"unknown encoding '{enc}'", hint="use utf-8, gbk or gb18030") from None
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 4 and len(sample) == _SNIFF_BYTES:
            return sample[: exc.start].decode(enc).lstrip("\ufeff")
        raise InputError(
            f"{p} is not valid {enc} text (byte {exc.start})",
            hint="pass --encoding gbk (or the file's real encoding)",
        ) from None


def _sniff_delimiter(text: str) -> str:
    lines = [ln for ln in text.splitlines()[:20] if ln.strip()]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        header = lines[0]
        counts = {d: header.count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def read_table(
    path: str | os.PathLike[str],
    *,
    delimiter: str | None = None,
    encoding: Encoding | str = "auto",
    strings: bool = False,
    required_columns: list[str] | None = None,
    string_columns: list[str] | None = None,
) -> pa.Table:
    """Read a CSV or Parquet file into a pyarrow Table.

    ``strings=True`` keeps every CSV column as text exactly as written (for
    outputs that must reproduce the input rows); otherwise types are inferred,
    except ``string_columns`` (ID columns keep leading zeros).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"input file {p} does not exist", hint="check the path")
    if p.is_dir():
        raise InputError(f"input {p} is a directory, not a file")
    if p.suffix.lower() in (".parquet", ".pq"):
        table = _read_parquet(p)
    else:
        table = _read_csv(p, delimiter, encoding, strings, string_columns or [])
    check_columns(table, required_columns or [], p)
    return table


def check_columns(table: pa.Table, required: list[str], source: str | os.PathLike[str]) -> None:
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise InputError(
            f"{source} has no column {', '.join(repr(c) for c in missing)} "
            f"(its columns: {', '.join(table.column_names)})",
            hint="name the right column (e.g. --id-column)",
        )


def _read_parquet(p: Path) -> pa.Table:
    try:
        return pq.read_table(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{p} is not a readable Parquet file: {exc}") from None


def _read_csv(p: Path, delimiter: str | None, encoding: str, strings: bool, string_columns: list[str]) -> pa.Table:
    with open(p, "rb") as fh:
        sample = fh.read(_SNIFF_BYTES)
    if not sample.strip():
        raise InputError(f"{p} is empty", hint="the file needs a header line and at least one row")
    enc = _detect_encoding(sample) if encoding == "auto" else encoding
    text = _decode_sample(sample, enc, p)
    delim = delimiter or _sniff_delimiter(text)
    header = next(csv.reader(io.StringIO(text), delimiter=delim), [])
    if not header or any(not h.strip() for h in header):
        raise InputError(f"{p} has an empty column name in its header line", hint="every column needs a name")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputError(f"{p} has duplicate column names: {', '.join(dupes)}")
    column_types = {h: pa.string() for h in header} if strings else {h: pa.string() for h in string_columns if h in header}
    try:
        return pacsv.read_csv(
            p,
            read_options=pacsv.ReadOptions(encoding=enc if enc != "utf-8" else "utf8", block_size=16 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delim, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types=column_types, strings_can_be_null=not strings,
                                                 quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        if "UTF8" in msg or "utf8" in msg.lower():
            raise InputError(
                f"{p} is not valid {enc} text: {msg.splitlines()[0]}",
                hint="pass --encoding gbk (or the file's real encoding)",
            ) from None
        raise InputError(f"{p} could not be parsed as CSV (delimiter {delim!r}): {msg.splitlines()[0]}") from None
    except LookupError:
        raise InputError(f"unknown encoding '{enc}'") from None


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_table(table: pa.Table, path: str | os.PathLike[str]) -> Path:
    """Write CSV (default) or Parquet (by suffix), atomically."""
    target = Path(path)
    with atomic_output(target) as tmp:
        if target.suffix.lower() in (".parquet", ".pq"):
            pq.write_table(table, tmp)
        else:
            pacsv.write_csv(table, tmp, write_options=pacsv.WriteOptions(quoting_style="needed"))
    return target
