"""Tables in and out, ID normalisation and checks."""

from .ids import IdReport, PreparedIds, normalise, normalise_one, prepare_ids
from .io import atomic_output, check_columns, read_table, write_table

__all__ = [
    "IdReport", "PreparedIds", "normalise", "normalise_one", "prepare_ids",
    "atomic_output", "check_columns", "read_table", "write_table",
]
