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

import numpy as np
import pyarrow as pa

from .data.ids import Case, normalise
from .errors import PeerError
from .net import MemoryHub
from .protocols import psi as psi_protocols
from .protocols.psi.common import OutputMode, PsiResult


def _distinct(values: Iterable[Any], case: Case) -> pa.Array:
    arr = normalise(pa.array([None if v is None else str(v) for v in values], type=pa.string()), case)
    arr = arr.filter(pa.compute.greater(pa.compute.utf8_length(arr), 0))
    return arr.unique()


def _values_per_id(ids: list[Any], values: list[int], unique: pa.Array, case: Case) -> np.ndarray:
    if len(ids) != len(values):
        raise ValueError("one value per sender ID")
    norm = normalise(pa.array([None if v is None else str(v) for v in ids], type=pa.string()), case)
    where = pa.compute.index_in(norm, value_set=unique).to_numpy(zero_copy_only=False)
    keep = ~np.isnan(where.astype(np.float64)) if where.dtype.kind == "f" else np.ones(len(where), bool)
    totals = np.zeros(len(unique), dtype=np.int64)
    np.add.at(totals, where[keep].astype(np.int64), np.asarray(values, dtype=np.int64)[keep])
    return totals


def run_local(
    receiver_ids: Iterable[Any],
    sender_ids: Iterable[Any],
    *,
    protocol: str = "ecdh",
    result_to: str = "receiver",
    output_mode: OutputMode = "intersection",
    case: Case = "upper",
    sender_values: Iterable[int] | None = None,
    **options: Any,
) -> tuple[PsiResult, PsiResult, pa.Array, pa.Array]:
    """Run both roles; return (receiver result, sender result, receiver IDs, sender IDs) after normalisation.

    ``sender_values`` (PSI-sum): one integer per entry of ``sender_ids``; the
    values of entries whose IDs normalise alike are added up.
    """
    sender_list = list(sender_ids)
    r_ids, s_ids = _distinct(receiver_ids, case), _distinct(sender_list, case)
    sender_options = dict(options)
    if sender_values is not None:
        sender_options["values"] = _values_per_id(sender_list, list(sender_values), s_ids, case)
    if protocol == "unbalanced" and "store" not in options:
        return _run_local_unbalanced(r_ids, s_ids, result_to, **options)
    hub = MemoryHub(["receiver", "sender"])
    r_link, s_link = hub["receiver"], hub["sender"]
    out: dict[str, Any] = {}

    def sender() -> None:
        try:
            out["sender"] = psi_protocols.run(
                s_link, "receiver", "sender", s_ids, protocol=protocol, result_to=result_to,
                output_mode=output_mode, **sender_options,
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            out["sender_error"] = exc
            # Like a network peer's goodbye: the receiver stops waiting at once.
            hub._mailboxes["receiver"].fail_peer("sender", PeerError(f"the sender stopped: {exc}"))

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    try:
        receiver = psi_protocols.run(
            r_link, "sender", "receiver", r_ids, protocol=protocol, result_to=result_to,
            output_mode=output_mode, **options,
        )
    except BaseException as exc:
        if "sender_error" in out:
            raise out["sender_error"] from None
        hub._mailboxes["sender"].fail_peer("receiver", PeerError(f"the receiver stopped: {exc}"))
        raise
    finally:
        thread.join()
    if "sender_error" in out:
        raise out["sender_error"]
    return receiver, out["sender"], r_ids, s_ids


def _run_local_unbalanced(r_ids: pa.Array, s_ids: pa.Array, result_to: str,
                          **options: Any) -> tuple[PsiResult, PsiResult, pa.Array, pa.Array]:
    """Unbalanced PSI in one process: the server set is prepared in a temporary folder first."""
    import tempfile
    from pathlib import Path

    from .protocols.psi.store import ClientCache, ServerSet

    with tempfile.TemporaryDirectory(prefix="riskshare-ub-") as tmp:
        server_set, _ = ServerSet.prepare(Path(tmp) / "server", "local", s_ids)
        cache = ClientCache.open(Path(tmp) / "client")
        hub = MemoryHub(["receiver", "sender"])
        out: dict[str, Any] = {}

        def sender() -> None:
            try:
                out["sender"] = psi_protocols.run(hub["sender"], "receiver", "sender", pa.array([], pa.string()),
                                                  protocol="unbalanced", result_to=result_to, store=server_set,
                                                  set_name="local", **options)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001
                out["sender_error"] = exc
                hub._mailboxes["receiver"].fail_peer("sender", PeerError(f"the sender stopped: {exc}"))

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        try:
            receiver = psi_protocols.run(hub["receiver"], "sender", "receiver", r_ids, protocol="unbalanced",
                                         result_to=result_to, store=cache, set_name="local",  # type: ignore[arg-type]
                                         **options)
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


def intersection_sum(left: Iterable[Any], right: Iterable[Any], values: Iterable[int], protocol: str = "auto",
                     **options: Any) -> tuple[int, int]:
    """(|left ∩ right|, sum of ``values`` of ``right``'s IDs in the intersection), by PSI-sum.

    ``left`` is the receiver (it learns both numbers and nothing per member),
    ``right`` the sender with one integer value per ID.
    """
    result, _, _, _ = run_local(left, right, protocol=protocol, output_mode="sum", sender_values=values, **options)
    assert result.size is not None and result.total is not None
    return result.size, int(result.details["total_integer"])
