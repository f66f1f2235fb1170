import numpy as np
import pytest

from riskshare.crypto.bitmatrix import columns_to_rows, gather_rows, rows_to_blocks


def _bits(words: np.ndarray) -> np.ndarray:
    return np.unpackbits(words.view(np.uint8).reshape(len(words), -1), axis=1, bitorder="little")


@pytest.mark.parametrize("w,m", [(64, 64), (128, 256), (512, 64 * 40), (512, 64 * 5000)])
def test_columns_to_rows_is_the_bit_transpose(w, m):
    rng = np.random.default_rng(w + m)
    cols = rng.integers(0, 2**64, size=(w, m // 64), dtype=np.uint64)
    rows = gather_rows(columns_to_rows(cols), np.arange(m))
    assert (_bits(rows) == _bits(cols).T).all()


def test_gather_rows_picks_instances_in_any_order():
    rng = np.random.default_rng(3)
    cols = rng.integers(0, 2**64, size=(128, 4), dtype=np.uint64)
    blocks = columns_to_rows(cols)
    pick = np.array([255, 0, 64, 17, 17])
    assert (gather_rows(blocks, pick) == gather_rows(blocks, np.arange(256))[pick]).all()


def test_rows_to_blocks_inverts_gather():
    rng = np.random.default_rng(4)
    rows = rng.integers(0, 2**64, size=(192, 8), dtype=np.uint64)
    assert (gather_rows(rows_to_blocks(rows), np.arange(192)) == rows).all()


def test_rejects_widths_that_are_not_whole_blocks():
    with pytest.raises(ValueError):
        columns_to_rows(np.zeros((65, 1), dtype=np.uint64))
