"""PSI in one process, for notebooks and benchmarks.

>>> from riskshare.psi import intersect
>>> intersect(["91350100M000100Y43", "A1"], ["a1 ", "B2"])
['A1']

Both parties run in this process over an in-memory link, with the same
protocol code and the same normalisation as two institutions' nodes.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable

import pyarrow as pa

from .data.ids import Case, normalise
from .net import memory_pair
from .protocols import psi as psi_protocols
from .protocols.psi.common import OutputMode, PsiResult


def _distinct(values: Iterable[Any], case: Case) -> pa.Array:
    arr = normalise(pa.array([None if v is None else str(v) for v in values], type=pa.string()), case)
    arr = arr.filter(pa.compute.greater(pa.compute.utf8_length(arr), 0))
    return arr.unique()


def run_local(
    receiver_ids: Iterable[Any],
    sender_ids: Iterable[Any],
    *,
    protocol: str = "ecdh",
    result_to: str = "receiver",
    output_mode: OutputMode = "intersection",
    case: Case = "upper",
    **options: Any,
) -> tuple[PsiResult, PsiResult, pa.Array, pa.Array]:
    """Run both roles; return (receiver result, sender result, receiver IDs, sender IDs) after normalisation."""
    r_ids, s_ids = _distinct(receiver_ids, case), _distinct(sender_ids, case)
    r_link, s_link = memory_pair("receiver", "sender")
    out: dict[str, Any] = {}

    def sender() -> None:
        try:
            out["sender"] = psi_protocols.run(
                s_link, "receiver", "sender", s_ids, protocol=protocol, result_to=result_to,
                output_mode=output_mode, **options,
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            out["sender_error"] = exc

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    try:
        receiver = psi_protocols.run(
            r_link, "sender", "receiver", r_ids, protocol=protocol, result_to=result_to,
            output_mode=output_mode, **options,
        )
    finally:
        thread.join()
    if "sender_error" in out:
        raise out["sender_error"]
    return receiver, out["sender"], r_ids, s_ids


def intersect(left: Iterable[Any], right: Iterable[Any], protocol: str = "ecdh", **options: Any) -> list[str]:
    """The normalised IDs present in both ``left`` (receiver) and ``right`` (sender), sorted."""
    result, _, r_ids, _ = run_local(left, right, protocol=protocol, **options)
    if result.indices is None:
        raise ValueError("this output mode does not reveal the intersection; use run_local for its size")
    return sorted(r_ids.take(pa.array(result.indices, type=pa.int64())).to_pylist())


def intersection_size(left: Iterable[Any], right: Iterable[Any], protocol: str = "ecdh", **options: Any) -> int:
    """|left ∩ right| computed in cardinality-only mode (neither side learns the members)."""
    result, _, _, _ = run_local(left, right, protocol=protocol, output_mode="count", **options)
    assert result.size is not None
    return result.size
