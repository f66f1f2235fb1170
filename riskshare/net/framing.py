"""Wire framing for link messages: bytes, numpy arrays and small JSON documents.

Nothing received from a peer is ever unpickled. Each frame starts with a fixed
header that is checked (magic, kind, lengths, dtype, shape, size limit) before a
single payload byte is allocated, so a malformed or oversized message is refused
without cost. Array payloads travel as their raw little-endian buffer: the
sender writes the array's memory directly and the receiver reads straight into
a freshly allocated array (zero copies beyond the socket).

Frame layout (little-endian)::

    header  (HEADER.size bytes)
        magic       4s   b"RSL1"
        kind        B    DATA / ACK / HELLO / HELLO_ACK / BYE
        ptype       B    BYTES / ARRAY / JSON (DATA only)
        tag_len     H    length of the UTF-8 tag that follows
        seq         Q    sequence number (DATA: the message's, ACK: highest delivered)
        dtype_code  B    index into DTYPES (ARRAY only)
        ndim        B    number of dimensions (ARRAY only, <= MAX_NDIM)
        reserved    H
        payload_len Q    bytes of payload after tag and shape
    tag     tag_len bytes
    shape   ndim x uint64
    payload payload_len bytes
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ProtocolError

MAGIC = b"RSL1"
HEADER = struct.Struct("<4sBBHQBBHQ")

KIND_DATA = 1
KIND_ACK = 2
KIND_HELLO = 3
KIND_HELLO_ACK = 4
KIND_BYE = 5  # the sender is done (empty tag) or aborting (tag = its reason)
KINDS = frozenset({KIND_DATA, KIND_ACK, KIND_HELLO, KIND_HELLO_ACK, KIND_BYE})

PTYPE_BYTES = 1
PTYPE_ARRAY = 2
PTYPE_JSON = 3

MAX_TAG_BYTES = 512
MAX_NDIM = 4
MAX_JSON_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 2 * 1024**3

# The only dtypes a peer may send. Index = wire code; never reorder.
DTYPES: tuple[np.dtype, ...] = tuple(
    np.dtype(s)
    for s in ("|u1", "<u2", "<u4", "<u8", "|i1", "<i2", "<i4", "<i8", "<f4", "<f8", "|b1")
)
_DTYPE_CODE = {dt: i for i, dt in enumerate(DTYPES)}


@dataclass(frozen=True)
class Header:
    kind: int
    ptype: int
    tag_len: int
    seq: int
    dtype_code: int
    ndim: int
    payload_len: int


def decode_header(raw: bytes, max_message_bytes: int) -> Header:
    """Parse and bound-check a frame header; raise ProtocolError if it is not one of ours."""
    if len(raw) != HEADER.size:
        raise ProtocolError(f"truncated frame header ({len(raw)} of {HEADER.size} bytes)")
    magic, kind, ptype, tag_len, seq, dtype_code, ndim, _reserved, payload_len = HEADER.unpack(raw)
    if magic != MAGIC:
        raise ProtocolError("the peer is not speaking the riskshare link protocol (bad frame magic)")
    if kind not in KINDS:
        raise ProtocolError(f"unknown frame kind {kind}")
    if tag_len > MAX_TAG_BYTES:
        raise ProtocolError(f"frame tag of {tag_len} bytes exceeds the limit of {MAX_TAG_BYTES}")
    if kind == KIND_DATA:
        if ptype not in (PTYPE_BYTES, PTYPE_ARRAY, PTYPE_JSON):
            raise ProtocolError(f"unknown payload type {ptype}")
        if payload_len > max_message_bytes:
            raise ProtocolError(
                f"message of {payload_len} bytes exceeds the limit of {max_message_bytes} bytes"
            )
        if ptype == PTYPE_JSON and payload_len > MAX_JSON_BYTES:
            raise ProtocolError(f"JSON message of {payload_len} bytes exceeds {MAX_JSON_BYTES}")
        if ptype == PTYPE_ARRAY:
            if dtype_code >= len(DTYPES):
                raise ProtocolError(f"array with unknown dtype code {dtype_code}")
            if ndim > MAX_NDIM:
                raise ProtocolError(f"array with {ndim} dimensions (at most {MAX_NDIM} allowed)")
        elif ndim:
            raise ProtocolError("non-array frame carries a shape")
    elif payload_len or ndim:
        raise ProtocolError("control frame carries a payload")
    return Header(kind, ptype, tag_len, seq, dtype_code, ndim, payload_len)


def check_shape(header: Header, shape: tuple[int, ...]) -> None:
    """The declared shape must account for exactly the declared payload bytes."""
    itemsize = DTYPES[header.dtype_code].itemsize
    count = 1
    for dim in shape:
        count *= dim
    if count * itemsize != header.payload_len:
        raise ProtocolError(
            f"array shape {shape} of {DTYPES[header.dtype_code]} does not match its "
            f"{header.payload_len}-byte payload"
        )


def control_frame(kind: int, seq: int = 0, tag: bytes = b"") -> bytes:
    return HEADER.pack(MAGIC, kind, 0, len(tag), seq, 0, 0, 0, 0) + tag


@dataclass
class Encoded:
    """A message ready for the wire: a small prefix and a zero-copy body."""

    ptype: int
    prefix: bytes  # header + tag + shape
    body: memoryview

    @property
    def size(self) -> int:
        return len(self.prefix) + self.body.nbytes


def normalise_payload(payload: Any) -> tuple[int, Any]:
    """Return (ptype, value) for a payload we are allowed to send."""
    if isinstance(payload, np.ndarray):
        dt = payload.dtype.newbyteorder("<") if payload.dtype.byteorder == ">" else payload.dtype
        if dt not in _DTYPE_CODE:
            raise TypeError(f"cannot send arrays of dtype {payload.dtype}; allowed: {[str(d) for d in DTYPES]}")
        if payload.ndim > MAX_NDIM:
            raise TypeError(f"cannot send arrays with more than {MAX_NDIM} dimensions")
        return PTYPE_ARRAY, np.ascontiguousarray(payload, dtype=dt)
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return PTYPE_BYTES, payload
    raise TypeError(f"link payloads are bytes or numpy arrays, not {type(payload).__name__}")


def encode(seq: int, tag: str, payload: Any, *, is_json: bool = False) -> Encoded:
    tag_b = tag.encode()
    if len(tag_b) > MAX_TAG_BYTES:
        raise ValueError(f"tag longer than {MAX_TAG_BYTES} bytes: {tag[:40]}...")
    if is_json:
        body = json.dumps(payload, separators=(",", ":")).encode()
        if len(body) > MAX_JSON_BYTES:
            raise ValueError("JSON message too large; send arrays for bulk data")
        head = HEADER.pack(MAGIC, KIND_DATA, PTYPE_JSON, len(tag_b), seq, 0, 0, 0, len(body))
        return Encoded(PTYPE_JSON, head + tag_b, memoryview(body))
    ptype, value = normalise_payload(payload)
    if ptype == PTYPE_ARRAY:
        body = memoryview(value.reshape(-1).view(np.uint8)) if value.size else memoryview(b"")
        shape = struct.pack(f"<{value.ndim}Q", *value.shape)
        head = HEADER.pack(
            MAGIC, KIND_DATA, PTYPE_ARRAY, len(tag_b), seq, _DTYPE_CODE[value.dtype], value.ndim, 0, body.nbytes
        )
        return Encoded(PTYPE_ARRAY, head + tag_b + shape, body)
    body = memoryview(value).cast("B")
    head = HEADER.pack(MAGIC, KIND_DATA, PTYPE_BYTES, len(tag_b), seq, 0, 0, 0, body.nbytes)
    return Encoded(PTYPE_BYTES, head + tag_b, body)


def decode_json(raw: bytes | bytearray) -> Any:
    try:
        return json.loads(bytes(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"the peer sent malformed JSON: {exc}") from None
