import numpy as np
import pytest

from riskshare.crypto.bitmatrix import columns_to_rows, rows_from_column_chunks


def _bits(words: np.ndarray) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8).reshape(len(words), -1), axis=1, bitorder="little")


@pytest.mark.parametrize("w,m", [(64, 64), (128, 256), (512, 64 * 40), (512, 64 * 5000)])
def test_columns_to_rows_is_the_bit_transpose(w, m):
    rng = np.random.default_rng(w + m)
    cols = rng.integers(0, 2**64, size=(w, m // 64), dtype=np.uint64)
    rows = columns_to_rows(cols)
    assert rows.shape == (m, w // 64)
    assert (_bits(rows) == _bits(cols).T).all()


def test_the_callers_columns_are_left_as_they_were():
    rng = np.random.default_rng(3)
    cols = rng.integers(0, 2**64, size=(128, 4), dtype=np.uint64)
    before = cols.copy()
    columns_to_rows(cols)
    assert (cols == before).all()


def test_rows_from_column_chunks_asks_for_every_piece_once():
    rng = np.random.default_rng(5)
    cols = rng.integers(0, 2**64, size=(128, 5000), dtype=np.uint64)
    asked = []

    def piece(start, stop):
        asked.append((start, stop))
        return np.array(cols[:, start:stop], order="C"), np.array(~cols[:, start:stop], order="C")

    rows, inverted = rows_from_column_chunks(128, 5000, piece, 2)
    assert (rows == columns_to_rows(cols)).all()
    assert (inverted == ~rows).all()
    assert sorted(asked)[0][0] == 0 and sorted(asked)[-1][1] == 5000
    assert sum(stop - start for start, stop in asked) == 5000


def test_rejects_widths_that_are_not_whole_blocks():
    with pytest.raises(ValueError):
        columns_to_rows(np.zeros((65, 1), dtype=np.uint64))
