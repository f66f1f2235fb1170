"""China's unified social credit code (统一社会信用代码), GB 32100-2015.

18 characters from the 31-character set ``0-9 A-H J-N P-R T U W-Y`` (no I, O,
S, V, Z): registration authority (1), organisation type (1), administrative
division (6), organisation code (9) and a check character (1). The check
character is ``31 - (sum(value_i * 3^(i-1) mod 31) mod 31)``, with 31 written
as ``0`` (GB 32100-2015, clause 5 and annex).

Validation here is vectorised over arrays of codes; nothing loops per record.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .strings import padded_bytes

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
LENGTH = 18
WEIGHTS = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)

_VALUE = np.full(256, -1, dtype=np.int64)
for _i, _ch in enumerate(ALPHABET):
    _VALUE[ord(_ch)] = _i


def check_character(first17: np.ndarray) -> np.ndarray:
    """Expected check-character values for an (n, 17) matrix of character values."""
    total = (first17 * WEIGHTS).sum(axis=1) % 31
    return (31 - total) % 31


def validate(codes: pa.Array) -> tuple[np.ndarray, list[str | None]]:
    """Return (valid mask, reason per code or None) for normalised codes."""
    mat, lengths = padded_bytes(codes, LENGTH)
    values = _VALUE[mat]
    length_ok = lengths == LENGTH
    chars_ok = (values >= 0).all(axis=1) & length_ok
    expected = check_character(np.where(values[:, :17] >= 0, values[:, :17], 0))
    check_ok = chars_ok & (values[:, 17] == expected)
    reasons: list[str | None] = [None] * len(lengths)
    bad = np.flatnonzero(~check_ok)
    if bad.size:  # only rejects are explained one by one; they are few
        texts = codes.take(pa.array(bad)).to_pylist()
        for i, text in zip(bad.tolist(), texts):
            if not length_ok[i]:
                reasons[i] = f"has {len(text or '')} characters, a USCC has 18"
            elif not chars_ok[i]:
                wrong = sorted({c for c in text if c not in ALPHABET})
                reasons[i] = f"contains characters not used in a USCC: {''.join(wrong)}"
            else:
                reasons[i] = f"check character is {text[17]}, expected {ALPHABET[int(expected[i])]}"
    return check_ok, reasons


def is_valid(code: str) -> bool:
    mask, _ = validate(pa.array([code]))
    return bool(mask[0])


def complete(first17: str) -> str:
    """Append the check character to 17 characters (used by the synthetic data generator)."""
    values = _VALUE[np.frombuffer(first17.encode(), dtype=np.uint8)]
    if len(first17) != 17 or (values < 0).any():
        raise ValueError(f"not 17 USCC characters: {first17!r}")
    return first17 + ALPHABET[int(check_character(values[None, :])[0])]
