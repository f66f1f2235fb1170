import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskshare.errors import InputError
from riskshare.psi import intersection_sum, run_local


def _plain(left, right, values):
    lset = {str(v).strip().upper() for v in left}
    return (len(lset & {str(v).strip().upper() for v in right}),
            sum(v for r, v in zip(right, values) if str(r).strip().upper() in lset))


@settings(max_examples=8, deadline=None)
@given(left=st.lists(st.sampled_from("abcdefgh"), max_size=8),
       right=st.lists(st.tuples(st.sampled_from("ABCDEFGHij"), st.integers(-10**12, 10**12)), max_size=10))
def test_sum_equals_plaintext(left, right):
    ids, values = [r for r, _ in right], [v for _, v in right]
    assert intersection_sum(left, ids, values) == _plain(left, ids, values)


@pytest.mark.parametrize("left,right,values", [
    ([], [], []), (["a"], [], []), ([], ["a"], [3]), (["a"], ["a"], [2**61]),
    ([f"k{i}" for i in range(300)], [f"k{i}" for i in range(300)], list(range(300))),  # 100 % overlap
])
def test_edges(left, right, values):
    assert intersection_sum(left, right, values) == _plain(left, right, values)


def test_only_the_receiver_learns_and_paillier_works_too():
    r, s, _, _ = run_local(["a", "b", "c"], ["b", "c", "d"], protocol="ecdh", output_mode="sum",
                           sender_values=[10, 20, 30], he_scheme="paillier")
    assert (r.size, r.details["total_integer"]) == (2, 30)
    assert s.size is None and s.total is None and s.indices is None and r.indices is None


def test_unsupported_combinations_are_refused():
    with pytest.raises(InputError, match="sum mode"):
        run_local(["a"], ["a"], protocol="ot", output_mode="sum", sender_values=[1])
    with pytest.raises(InputError, match="receiver only"):
        run_local(["a"], ["a"], protocol="ecdh", output_mode="sum", result_to="both", sender_values=[1])
    with pytest.raises(InputError, match="2\\^62"):
        run_local(["a"], ["a"], protocol="ecdh", output_mode="sum", sender_values=[2**62])
