import numpy as np
import pytest

from riskshare.errors import ProtocolError
from riskshare.net import framing


def header_bytes(**over):
    fields = dict(magic=framing.MAGIC, kind=framing.KIND_DATA, ptype=framing.PTYPE_ARRAY, tag_len=3, seq=1,
                  dtype_code=0, ndim=2, reserved=0, payload_len=64)
    fields.update(over)
    return framing.HEADER.pack(*fields.values())


def test_encode_array_is_zero_copy_and_decodes():
    arr = np.arange(12, dtype="<u4").reshape(3, 4)
    enc = framing.encode(7, "tag", arr)
    assert enc.ptype == framing.PTYPE_ARRAY
    assert np.shares_memory(np.frombuffer(enc.body, dtype=np.uint8), arr)
    head = framing.decode_header(enc.prefix[: framing.HEADER.size], 1 << 20)
    assert (head.kind, head.seq, head.ndim, head.payload_len) == (framing.KIND_DATA, 7, 2, 48)
    assert framing.DTYPES[head.dtype_code] == np.dtype("<u4")
    framing.check_shape(head, (3, 4))
    with pytest.raises(ProtocolError, match="does not match"):
        framing.check_shape(head, (4, 4))


def test_bytes_and_json():
    assert framing.encode(1, "t", b"abc").body.tobytes() == b"abc"
    enc = framing.encode(1, "t", {"a": [1, 2]}, is_json=True)
    assert framing.decode_json(enc.body.tobytes()) == {"a": [1, 2]}
    with pytest.raises(ProtocolError, match="malformed JSON"):
        framing.decode_json(b"{nope")


@pytest.mark.parametrize(
    "over, match",
    [
        (dict(magic=b"HTTP"), "bad frame magic"),
        (dict(kind=99), "unknown frame kind"),
        (dict(tag_len=10_000), "tag"),
        (dict(payload_len=1 << 40), "exceeds the limit"),
        (dict(ptype=9), "unknown payload type"),
        (dict(dtype_code=200), "unknown dtype"),
        (dict(ndim=9), "dimensions"),
        (dict(ptype=framing.PTYPE_JSON, ndim=0, payload_len=framing.MAX_JSON_BYTES + 1), "JSON message"),
        (dict(kind=framing.KIND_ACK, payload_len=5, ndim=0), "control frame"),
    ],
)
def test_malformed_headers_are_refused_before_allocation(over, match):
    with pytest.raises(ProtocolError, match=match):
        framing.decode_header(header_bytes(**over), max_message_bytes=1 << 30)


def test_truncated_header():
    with pytest.raises(ProtocolError, match="truncated"):
        framing.decode_header(b"RSL1", 100)


def test_only_whitelisted_payloads_can_be_sent():
    with pytest.raises(TypeError):
        framing.encode(1, "t", np.array([object()]))
    with pytest.raises(TypeError):
        framing.encode(1, "t", "a string")
    with pytest.raises(TypeError):
        framing.encode(1, "t", np.zeros((1,) * 5))
    big_endian = np.arange(3, dtype=">u4")
    enc = framing.encode(1, "t", big_endian)
    assert np.frombuffer(enc.body, dtype="<u4").tolist() == [0, 1, 2]
