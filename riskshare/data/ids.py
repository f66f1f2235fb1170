"""ID normalisation and checks, applied identically on both sides of every protocol.

Normalisation: Unicode NFKC (full-width ``９１３１`` becomes ``9131``), strip
surrounding whitespace, upper-case (unless ``case="keep"``). Empty IDs are
counted and kept out of the run; duplicate IDs are counted and run once (every
row with that ID is still in the output). With ``id_type="uscc"`` codes failing
the GB 32100-2015 check are kept out of the run and listed as rejects — never
silently dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import InputError
from . import uscc
from .strings import fingerprints
from .io import check_columns, write_table

IdType = Literal["any", "uscc"]
Case = Literal["upper", "keep"]


def normalise(values: pa.Array | pa.ChunkedArray | list[str], case: Case = "upper") -> pa.Array:
    """NFKC, strip, upper-case; nulls stay null. Vectorised through Arrow compute."""
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    # NFKC leaves ASCII text as it is, and ASCII upper-casing is several times faster: most ID columns are ASCII.
    ascii_only = len(arr) == 0 or bool(pc.all(pc.string_is_ascii(arr)).as_py() is not False)
    if not ascii_only:
        arr = pc.utf8_normalize(arr, "NFKC")
    arr = pc.utf8_trim_whitespace(arr)
    if case == "upper":
        arr = pc.ascii_upper(arr) if ascii_only else pc.utf8_upper(arr)
    return arr


def normalise_one(value: str, case: Case = "upper") -> str:
    return normalise([value], case)[0].as_py() or ""


@dataclass
class IdReport:
    rows: int
    empty: int
    invalid: int
    duplicates: int
    unique: int

    def summary(self) -> str:
        parts = [f"{self.rows} rows", f"{self.unique} distinct IDs"]
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate rows")
        if self.empty:
            parts.append(f"{self.empty} empty IDs")
        if self.invalid:
            parts.append(f"{self.invalid} invalid IDs")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "empty": self.empty, "invalid": self.invalid,
                "duplicates": self.duplicates, "unique": self.unique}


@dataclass
class PreparedIds:
    """A table's ID column, ready for a protocol.

    ``unique`` holds the distinct normalised valid IDs (the protocol's input);
    ``row_to_unique[r]`` is the position in ``unique`` of row ``r``'s ID, or -1
    for rows kept out (empty or invalid).
    """

    unique: pa.Array
    row_to_unique: np.ndarray
    report: IdReport
    rejects: pa.Table = field(repr=False)

    def rows_for(self, unique_positions: np.ndarray) -> np.ndarray:
        """Row numbers (ascending) whose ID is one of ``unique[unique_positions]``."""
        selected = np.zeros(len(self.unique) + 1, dtype=bool)
        selected[np.asarray(unique_positions, dtype=np.int64)] = True
        # index -1 (kept-out rows) maps to the extra False slot at the end
        return np.flatnonzero(selected[self.row_to_unique])

    def write_rejects(self, path: str | os.PathLike[str]) -> bool:
        """Write the rejects file if there are any; return whether one was written."""
        if self.rejects.num_rows == 0:
            return False
        write_table(self.rejects, path)
        return True


def _null_or_empty(arr: pa.Array) -> np.ndarray:
    """Boolean mask of null or "" strings, read off the offsets buffer.

    (Arrow's comparison kernels cost ~0.15 s on their first call in a process: too much for a CLI run.)
    """
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=bool)
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=width)[arr.offset : arr.offset + n + 1]
    empty = offsets[1:] == offsets[:-1]
    if arr.null_count:
        empty |= arr.is_null().to_numpy(zero_copy_only=False)
    return empty


def distinct_values(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Distinct strings of ``values`` (no nulls): ``first`` — the row of each one's first occurrence,
    ascending — and ``inverse`` — for every row, the position in ``first`` of its value.

    Rows are grouped by a seeded 64-bit fingerprint (sorting one word is ~10x
    faster than Arrow's string hash table at 10^6 IDs), and every row grouped
    with another is then compared byte for byte with its group's first row.
    Should a fingerprint ever join two different strings, the answer comes from
    Arrow's exact dictionary encoding instead: the result is exact either way.
    """
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    prints = fingerprints(values)
    order = np.argsort(prints)
    sorted_prints = prints[order]
    starts_group = np.ones(n, dtype=bool)
    np.not_equal(sorted_prints[1:], sorted_prints[:-1], out=starts_group[1:])
    if starts_group.all():  # no two rows share a fingerprint: all distinct
        everything = np.arange(n, dtype=np.int64)
        return everything, everything
    group = np.cumsum(starts_group) - 1
    leader = np.minimum.reduceat(order, np.flatnonzero(starts_group))  # first row of each group
    follower = np.flatnonzero(order != leader[group])  # sorted positions of rows grouped under another
    rows, leads = order[follower], leader[group[follower]]
    same = pc.all(pc.equal(
        values.take(pa.array(rows, type=pa.int64())), values.take(pa.array(leads, type=pa.int64())))).as_py()
    if not same:  # a fingerprint collision between different strings (chance ~ n^2 / 2^65): exact fallback
        encoded = pc.dictionary_encode(values)
        inverse = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        first = np.full(len(encoded.dictionary), n, dtype=np.int64)
        np.minimum.at(first, inverse, np.arange(n, dtype=np.int64))
        return first, inverse
    rank = np.empty(len(leader), dtype=np.int64)
    by_row = np.argsort(leader)
    rank[by_row] = np.arange(len(leader), dtype=np.int64)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = rank[group]
    return leader[by_row], inverse


def prepare_ids(
    table: pa.Table,
    id_column: str,
    *,
    id_type: IdType = "any",
    case: Case = "upper",
    source: str = "input",
) -> PreparedIds:
    """Normalise and check ``table[id_column]``; see the module docstring for the rules."""
    check_columns(table, [id_column], source)
    raw = table[id_column].combine_chunks() if table.num_rows else pa.array([], type=pa.string())
    norm = normalise(raw, case)
    n = len(norm)
    empty = _null_or_empty(norm)
    valid = ~empty
    reasons: list[str | None] = [None] * n
    if id_type == "uscc":
        ok, reasons = uscc.validate(norm)
        invalid = valid & ~ok
        valid &= ok
    elif id_type == "any":
        invalid = np.zeros(n, dtype=bool)
    else:
        raise InputError(f"unknown --id-type '{id_type}'", hint="use 'any' or 'uscc'")

    keep = np.flatnonzero(valid)
    kept = norm.take(pa.array(keep, type=pa.int64())) if keep.size < n else norm
    first, inverse = distinct_values(kept)
    row_to_unique = np.full(n, -1, dtype=np.int64)
    row_to_unique[keep] = inverse
    unique = kept.take(pa.array(first, type=pa.int64())) if len(first) < len(kept) else kept
    if not pa.types.is_string(unique.type):
        unique = unique.cast(pa.string())

    reject_rows = np.flatnonzero(empty | invalid)
    raw_rejected = raw.take(pa.array(reject_rows, type=pa.int64())).cast(pa.string()) if reject_rows.size else pa.array([], pa.string())
    reject_reasons = ["empty ID" if empty[i] else f"invalid USCC: {reasons[i]}" for i in reject_rows.tolist()]
    rejects = pa.table({
        "row": pa.array(reject_rows + 1, type=pa.int64()),  # 1-based data row (the header is not counted)
        id_column: raw_rejected,
        "reason": pa.array(reject_reasons, type=pa.string()),
    })
    report = IdReport(
        rows=n,
        empty=int(empty.sum()),
        invalid=int(invalid.sum()),
        duplicates=int(keep.size - len(unique)),
        unique=len(unique),
    )
    return PreparedIds(unique, row_to_unique, report, rejects)
