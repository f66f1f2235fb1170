import pyarrow as pa
from hypothesis import given, strategies as st

from riskshare.data import uscc

# Published codes: the worked example of GB 32100-2015, and codes printed on the business
# licences of well-known companies.
PUBLISHED = [
    "91350100M000100Y43",  # GB 32100-2015 example
    "91330100799655058B",  # Alibaba (China) Co., Ltd.
    "9144030071526726XG",  # Tencent Technology (Shenzhen) Co., Ltd.
    "914403001922038216",  # Huawei Technologies Co., Ltd.
    "91110000802100433B",  # China Mobile Communications Group Co., Ltd.
]


def test_published_codes_are_valid():
    mask, reasons = uscc.validate(pa.array(PUBLISHED))
    assert mask.all()
    assert reasons == [None] * len(PUBLISHED)


def test_corrupted_codes_are_invalid_with_reasons():
    codes = ["91350100M000100Y44", "91350100M00010Y43", "91350100M000100I43", "9135010OM000100Y43", ""]
    mask, reasons = uscc.validate(pa.array(codes))
    assert not mask.any()
    assert "expected 3" in reasons[0]
    assert "17 characters" in reasons[1]
    assert "I" in reasons[2]
    assert "O" in reasons[3]
    assert "0 characters" in reasons[4]


def test_complete_appends_the_check_character():
    for code in PUBLISHED:
        assert uscc.complete(code[:17]) == code


codes17 = st.text(alphabet=uscc.ALPHABET, min_size=17, max_size=17)


@given(codes17, st.integers(0, 17), st.sampled_from(uscc.ALPHABET))
def test_any_single_substitution_is_detected(first17, position, replacement):
    code = uscc.complete(first17)
    corrupted = code[:position] + replacement + code[position + 1 :]
    assert uscc.is_valid(code)
    assert uscc.is_valid(corrupted) == (corrupted == code)
