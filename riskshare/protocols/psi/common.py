"""What every PSI protocol shares: roles, parameters, the agreement step, results.

Before any data-dependent message, both parties exchange their parameters and
set sizes and check them against each other (:func:`agree`); a mismatch stops
both sides with :class:`~riskshare.errors.ParameterMismatch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pyarrow as pa

from ...errors import InputError, ParameterMismatch, ProtocolError
from ...net import Link

Role = Literal["sender", "receiver"]
ResultTo = Literal["receiver", "both"]
OutputMode = Literal["intersection", "count", "sum"]
Progress = Callable[[str, int, int], None]

ROLES = ("sender", "receiver")
PSI_WIRE_VERSION = 2  # 2: a plan handshake (protocol, modes, sizes) precedes the per-bucket protocol runs


@dataclass(frozen=True)
class PsiParams:
    protocol: str = "ecdh"
    result_to: ResultTo = "receiver"
    output_mode: OutputMode = "intersection"
    extra: dict[str, Any] = field(default_factory=dict)  # protocol-specific, must match exactly

    def check(self) -> None:
        if self.result_to not in ("receiver", "both"):
            raise InputError(f"--result-to must be 'receiver' or 'both', not '{self.result_to}'")
        if self.output_mode not in ("intersection", "count", "sum"):
            raise InputError(f"--output-mode must be intersection, count or sum, not '{self.output_mode}'")

    def wire(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "result_to": self.result_to, "output_mode": self.output_mode,
                "extra": self.extra}


@dataclass
class PsiResult:
    """What this party learned.

    ``indices``: positions in this party's input (the distinct IDs it passed in)
    that are in the intersection, sorted; ``None`` when this party learns no
    membership. ``size``: |A ∩ B| when this party learns it. ``total``: the sum
    of the sender's values over the intersection (PSI-sum receiver only).
    """

    role: Role
    protocol: str
    own_size: int
    peer_size: int
    indices: np.ndarray | None = None
    size: int | None = None
    total: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


def check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(f"role must be 'sender' or 'receiver', not '{role}'")


def agree(link: Link, peer: str, role: Role, params: PsiParams, own_size: int, tag: str = "psi/hello") -> int:
    """Exchange and compare parameters; return the peer's set size."""
    params.check()
    mine = {"v": PSI_WIRE_VERSION, "role": role, "n": int(own_size), **params.wire()}
    link.send_json(peer, tag, mine)
    theirs = link.recv_json(peer, tag)
    if not isinstance(theirs, dict):
        raise ProtocolError(f"peer '{peer}' sent malformed PSI parameters")
    if theirs.get("v") != PSI_WIRE_VERSION:
        raise ParameterMismatch(
            f"peer '{peer}' speaks PSI wire version {theirs.get('v')}, we speak {PSI_WIRE_VERSION}",
            hint="run the same riskshare version on both nodes",
        )
    if theirs.get("role") == role:
        raise ParameterMismatch(
            f"both parties chose role '{role}'",
            hint="one side runs --role sender and the other --role receiver",
        )
    for key in ("protocol", "result_to", "output_mode", "extra"):
        if theirs.get(key) != mine[key]:
            raise ParameterMismatch(
                f"PSI parameter '{key}' differs: {mine[key]!r} here, {theirs.get(key)!r} at peer '{peer}'",
                hint="both sides must run with the same --protocol, --result-to and --output-mode",
            )
    n_peer = theirs.get("n")
    if not isinstance(n_peer, int) or n_peer < 0:
        raise ProtocolError(f"peer '{peer}' sent an invalid set size {n_peer!r}")
    return n_peer


def check_indices(indices: np.ndarray, upper: int, peer: str, step: str) -> np.ndarray:
    """Indices a peer sends us must be distinct and in range."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= upper):
        raise ProtocolError(f"peer '{peer}' sent out-of-range positions for step '{step}'")
    if np.unique(idx).size != idx.size:
        raise ProtocolError(f"peer '{peer}' sent repeated positions for step '{step}'")
    return np.sort(idx)


def as_id_array(ids: Sequence[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """IDs as one Arrow string array (a list of str is converted; an Arrow array is used as it is)."""
    if isinstance(ids, pa.ChunkedArray):
        return ids.combine_chunks()
    if isinstance(ids, pa.Array):
        return ids
    return pa.array(list(ids), type=pa.string())
