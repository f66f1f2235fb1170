"""Messages of the PIR protocol: tags, the request document and the checks on what a peer sends.

One query is one *request* on the fixed tag ``pir/request`` followed by messages
namespaced by its random query id (``pir/<qid>/…``), so successive client
processes talking to one long-running server never mix their messages.

::

    C -> S  pir/request          {"v", "qid", "op", "mode", "keys", "have"}      JSON, fixed shape
    C -> S  pir/<qid>/blinded    (keys, 32) uint8: blinded OPRF inputs          (op "query")
    S -> C  pir/<qid>/reply      {"status", "manifest", "update", "allowance"} or a refusal
    S -> C  pir/<qid>/rows/*     records sealed since the client's version      (cached mode)
    S -> C  pir/<qid>/hint/*     PIR parameters, hint and stash                 (pir mode, when stale)
    S -> C  pir/<qid>/evaluated  (keys, 32) uint8: the OPRF evaluations
    C -> S  pir/<qid>/pir-query  (keys, m) uint32: one LWE query per key        (pir mode)
    S -> C  pir/<qid>/pir-answer (keys, ℓ) uint32

What the server receives depends only on the number of keys, the mode and the
client's cached version: never on the keys (tested).
"""

from __future__ import annotations

import re
from typing import Any

from ...errors import ProtocolError

WIRE_VERSION = 1
REQUEST_TAG = "pir/request"
MODES = ("cached", "pir")
OPS = ("query", "sync")
QID_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_KEYS_CACHED = 100_000
MAX_KEYS_PIR = 256
MAX_RECORDS = 200_000_000
MAX_COLUMNS = 1000


def tag(qid: str, name: str) -> str:
    return f"pir/{qid}/{name}"


def check_request(doc: Any, peer: str) -> dict:
    """Validate a client's request document; raise ProtocolError naming what is wrong."""
    if not isinstance(doc, dict):
        raise ProtocolError(f"peer '{peer}' sent a PIR request that is not a JSON object")
    if doc.get("v") != WIRE_VERSION:
        raise ProtocolError(f"peer '{peer}' speaks PIR wire version {doc.get('v')!r}, this server {WIRE_VERSION}",
                            hint="run the same riskshare version on both nodes")
    qid = doc.get("qid")
    if not isinstance(qid, str) or not QID_RE.match(qid):
        raise ProtocolError(f"peer '{peer}' sent a PIR request with an invalid query id")
    if doc.get("op") not in OPS or doc.get("mode") not in MODES:
        raise ProtocolError(f"peer '{peer}' sent a PIR request with op {doc.get('op')!r} / mode {doc.get('mode')!r}")
    keys = doc.get("keys")
    if not isinstance(keys, int) or isinstance(keys, bool) or keys < 0:
        raise ProtocolError(f"peer '{peer}' sent a PIR request with an invalid key count {keys!r}")
    if (doc["op"] == "query") != (keys > 0):
        raise ProtocolError(f"peer '{peer}' sent a PIR request whose key count does not fit its operation")
    have = doc.get("have")
    if have is not None:
        if not isinstance(have, dict) or not isinstance(have.get("key_id"), str) or not _is_count(have.get("version")):
            raise ProtocolError(f"peer '{peer}' sent a PIR request with a malformed cache description")
    return doc


def check_reply(doc: Any, peer: str) -> dict:
    """Validate the server's reply document (an ``ok`` answer; refusals are handled before)."""
    if not isinstance(doc, dict):
        raise ProtocolError(f"peer '{peer}' sent a PIR reply that is not a JSON object")
    m = doc.get("manifest")
    u = doc.get("update")
    ok = (
        isinstance(m, dict) and isinstance(u, dict)
        and isinstance(m.get("table"), str) and isinstance(m.get("key_id"), str) and isinstance(m.get("digest"), str)
        and _is_count(m.get("version")) and _is_count(m.get("records")) and _is_count(m.get("width"))
        and isinstance(m.get("columns"), list) and all(isinstance(c, str) for c in m["columns"])
        and u.get("kind") in ("none", "delta", "full") and _is_count(u.get("rows")) and _is_count(u.get("deleted"))
    )
    if not ok:
        raise ProtocolError(f"peer '{peer}' sent a malformed PIR reply")
    if m["records"] > MAX_RECORDS or len(m["columns"]) > MAX_COLUMNS or not 2 <= m["width"] <= 64 * 1024:
        raise ProtocolError(
            f"peer '{peer}' announced an implausible table ({m['records']} records, width {m['width']}, "
            f"{len(m['columns'])} columns)"
        )
    if u["rows"] > m["records"]:
        raise ProtocolError(f"peer '{peer}' announced an update larger than its table")
    return doc


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
