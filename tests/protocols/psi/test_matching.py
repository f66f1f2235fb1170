import numpy as np
import pytest

from riskshare.protocols.psi.matching import SortedTable, match


def _pairs(li, rj):
    return sorted(zip(li.tolist(), rj.tolist()))


def _brute(left, right):
    return sorted((i, j) for i in range(len(left)) for j in range(len(right)) if (left[i] == right[j]).all())


@pytest.mark.parametrize("width", [8, 11, 16])
def test_match_and_sorted_table_agree_with_brute_force(width):
    rng = np.random.default_rng(width)
    left = rng.integers(0, 256, size=(200, width), dtype=np.uint8)
    right = rng.integers(0, 256, size=(300, width), dtype=np.uint8)
    right[:50] = left[100:150]
    expected = _brute(left, right)
    assert _pairs(*match(left, right)) == expected
    table = SortedTable(left)
    li, rj = zip(*[table.probe(right[s : s + 64]) for s in range(0, 300, 64)])
    offsets = [np.asarray(r) + s for r, s in zip(rj, range(0, 300, 64))]
    assert _pairs(np.concatenate(li), np.concatenate(offsets)) == expected


def test_repeated_prefixes_are_still_exact():
    left = np.zeros((4, 10), dtype=np.uint8)
    left[:, 9] = [0, 1, 2, 3]  # same first 8 bytes, different rows
    right = left[[3, 1]].copy()
    assert _pairs(*match(left, right)) == [(1, 1), (3, 0)]
    table = SortedTable(left)
    assert table.repeats
    assert _pairs(*table.probe(right)) == [(1, 1), (3, 0)]


def test_empty_sides():
    empty = np.zeros((0, 8), dtype=np.uint8)
    one = np.ones((1, 8), dtype=np.uint8)
    assert len(match(empty, one)[0]) == 0 and len(SortedTable(empty).probe(one)[0]) == 0
