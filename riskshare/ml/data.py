"""A party's training or scoring table: features, optional label, IDs, and PSI alignment with the peer.

Rules (the same on both sides):

* the ID column is normalised like every riskshare protocol (NFKC, trim,
  upper-case); empty IDs are refused, and so are duplicate IDs — a row
  cannot be matched to the peer's row unambiguously;
* features are every column except the ID and the label (or the ones named);
  they must be numeric; **missing values are refused**, not imputed: the
  error names the columns so the analyst can impute on purpose;
* the label must be 0/1 (checked in :func:`riskshare.ml.common.check_labels`).

Alignment runs ECDH-PSI with ``result_to="both"`` and then orders the shared
rows by normalised ID on both sides, so row k on the guest and row k on the
host are the same customer. Both sides learn the intersection (the IDs they
share), as any vertical-learning alignment does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..data import prepare_ids, read_table
from ..errors import InputError, PeerError
from ..net import Link
from ..protocols import psi

MIN_SHARED_ROWS = 10


@dataclass
class PartyTable:
    ids: list[str]          # normalised, one per row, in file order
    raw_ids: list[str]      # as written in the file (for outputs)
    X: np.ndarray           # (rows, features) float64
    feature_names: list[str]
    y: np.ndarray | None    # labels (guest, training only)
    source: str

    def take(self, rows: np.ndarray) -> "PartyTable":
        rows = np.asarray(rows, dtype=np.int64)
        idx = rows.tolist()
        return PartyTable([self.ids[i] for i in idx], [self.raw_ids[i] for i in idx], self.X[rows], self.feature_names,
                          None if self.y is None else self.y[rows], self.source)


def load_table(
    path: str | os.PathLike[str], id_column: str, *, label: str | None = None, features: list[str] | None = None,
    delimiter: str | None = None, encoding: str = "auto", require_label: bool = False,
) -> PartyTable:
    """Read one party's table and check it (see the module docstring for the rules)."""
    table = read_table(path, delimiter=delimiter, encoding=encoding, string_columns=[id_column],
                       required_columns=[id_column] + ([label] if label else []) + (features or []))
    source = str(path)
    if require_label and not label:
        raise InputError("the guest needs --label (the 0/1 column to learn)")
    prepared = prepare_ids(table, id_column, source=source)
    if prepared.report.empty:
        raise InputError(f"{source}: {prepared.report.empty} rows have an empty ID", hint="remove or fill them")
    if prepared.report.duplicates:
        raise InputError(f"{source}: {prepared.report.duplicates} rows repeat an ID already seen",
                         hint="each customer must appear once for training and scoring; deduplicate first")
    uniq = prepared.unique.to_pylist()
    ids = [uniq[k] for k in prepared.row_to_unique.tolist()]
    raw_ids = [str(v) for v in table[id_column].cast(pa.string()).to_pylist()]
    names = features or [c for c in table.column_names if c not in (id_column, label)]
    if not names:
        raise InputError(f"{source} has no feature columns besides '{id_column}'")
    non_numeric = [c for c in names if not _numeric(table[c].type)]
    if non_numeric:
        raise InputError(f"{source}: non-numeric feature column(s) {', '.join(non_numeric)}",
                         hint="encode them as numbers, or leave them out with --features")
    X = np.column_stack([_to_float(table[c]) for c in names]) if table.num_rows else np.zeros((0, len(names)))
    missing = [c for j, c in enumerate(names) if not np.all(np.isfinite(X[:, j]))]
    if missing:
        raise InputError(f"{source}: missing or non-finite values in {', '.join(missing[:10])}",
                         hint="riskshare does not impute silently: fill or drop them first")
    y = None
    if label:
        col = table[label]
        if col.null_count:
            raise InputError(f"{source}: {col.null_count} rows have no label in '{label}'", hint="drop those rows")
        if not _numeric(col.type):
            raise InputError(f"{source}: label column '{label}' must be 0/1 numbers")
        y = _to_float(col)
        values = np.unique(y)
        if not np.all(np.isin(values, [0.0, 1.0])):
            raise InputError(f"{source}: label '{label}' must be binary 0/1, found {values[:6].tolist()}")
    return PartyTable(ids, raw_ids, X, names, y, source)


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)


def _to_float(col: pa.ChunkedArray) -> np.ndarray:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_boolean(arr.type):
        arr = pc.cast(arr, pa.int8())
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def align(link: Link, peer: str, role: str, table: PartyTable, *, progress=None) -> PartyTable:
    """Keep the rows whose ID the peer also holds, ordered by normalised ID (identically on both sides)."""
    ids = pa.array(table.ids, type=pa.string())
    result = psi.run(link, peer, "receiver" if role == "guest" else "sender", ids, result_to="both",
                     progress=progress)
    if result.indices is None:
        raise PeerError("the alignment did not return the shared IDs")
    if len(result.indices) < MIN_SHARED_ROWS:
        raise InputError(f"the two parties share only {len(result.indices)} IDs (at least {MIN_SHARED_ROWS} needed)",
                         hint="check that both files use the same ID column and format")
    shared = np.asarray(result.indices, dtype=np.int64)
    order = sorted(shared.tolist(), key=lambda i: table.ids[i])
    return table.take(np.asarray(order, dtype=np.int64))
