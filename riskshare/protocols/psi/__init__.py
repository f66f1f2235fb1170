"""Private set intersection: one entry point, several protocols.

:func:`run` is what the CLI, the node and the in-process API call. It first
agrees with the peer on the protocol, modes and set sizes (one handshake, no
data-dependent message), resolves ``protocol="auto"``
(:mod:`.auto`), splits large intersection runs into buckets
(:mod:`.buckets`), and runs the protocol function on each bucket over its
own scoped link. Each protocol module documents its security model, what
each party learns and where its parameters come from.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

import pyarrow as pa

from ...errors import InputError
from ...net import Link
from . import auto, buckets, ecdh, ot, psi_sum, unbalanced
from .buckets import DEFAULT_BUCKET_SIZE, Executor
from .common import OutputMode, Progress, PsiParams, PsiResult, ResultTo, Role, agree, as_id_array, check_role

PROTOCOLS: dict[str, Callable[..., PsiResult]] = {
    ecdh.NAME: ecdh.run,
    ot.NAME: ot.run,
    unbalanced.NAME: unbalanced.run,
    psi_sum.NAME: psi_sum.run,
}
CHOICES = (ecdh.NAME, ot.NAME, unbalanced.NAME, "auto")  # what --protocol takes; "sum" is --output-mode sum


def _protocol_params(name: str, result_to: ResultTo, output_mode: OutputMode, stash: int,
                     set_name: str | None, he_scheme: str) -> PsiParams:
    extra: dict = {}
    if name == psi_sum.NAME:
        extra = {"scheme": he_scheme}
    if name == ot.NAME:
        extra = {"variant": ot.VARIANT, "stash": stash}
    elif name == unbalanced.NAME:
        extra = {"set": set_name}
    return PsiParams(protocol=name, result_to=result_to, output_mode=output_mode, extra=extra)


def run(
    link: Link,
    peer: str,
    role: Role,
    ids: Sequence[str] | pa.Array,
    *,
    protocol: str = "ecdh",
    result_to: ResultTo = "receiver",
    output_mode: OutputMode = "intersection",
    progress: Progress | None = None,
    bucket_size: int = DEFAULT_BUCKET_SIZE,
    stash: int = 0,
    executor: Executor | None = None,
    announce: Callable[[str], None] | None = None,
    store: object | None = None,
    set_name: str | None = None,
    values: np.ndarray | None = None,
    he_scheme: str = psi_sum.DEFAULT_SCHEME,
    value_scale: int = 0,
) -> PsiResult:
    """Run PSI as ``role`` on distinct normalised ``ids`` against ``peer``.

    ``bucket_size``: IDs of the larger side per bucket (intersection mode);
    ``stash``: cuckoo stash slots for ``ot``; ``announce`` receives one line
    saying which protocol ``auto`` picked and how many buckets run.
    ``store`` / ``set_name``: for ``unbalanced``, the server's prepared set
    (:class:`.store.ServerSet`) or the client's copy (:class:`.store.ClientCache`),
    and the set's name, which both sides must give alike.
    ``values``: for ``output_mode="sum"``, the sender's integer value of each
    ID (aligned with ``ids``); ``he_scheme``: ``ou`` (default) or ``paillier``;
    ``value_scale``: decimal places of those integers, agreed so that the
    receiver reads the sum in the same unit.
    """
    check_role(role)
    if protocol not in CHOICES:
        raise InputError(f"unknown PSI protocol '{protocol}'", hint=f"choose one of: {', '.join(CHOICES)}")
    if bucket_size < 1:
        raise InputError("the bucket size must be at least 1")
    ids = as_id_array(ids)
    plan = PsiParams(protocol=protocol, result_to=result_to, output_mode=output_mode,
                     extra={"bucket_size": int(bucket_size), "stash": int(stash)})
    plan.check()
    if protocol == unbalanced.NAME:
        plan.extra["set"] = set_name
    if output_mode == "sum":
        plan.extra.update(scheme=he_scheme, value_scale=int(value_scale))
    serving = protocol == unbalanced.NAME and role == "sender" and isinstance(store, unbalanced.ServerSet)
    n = store.count if serving else len(ids)  # type: ignore[union-attr]
    n_peer = agree(link, peer, role, plan, n)
    n_r, n_s = (n, n_peer) if role == "receiver" else (n_peer, n)
    chosen = auto.choose(n_r, n_s, output_mode) if protocol == "auto" else protocol
    if output_mode == "sum":
        if chosen not in (ecdh.NAME, psi_sum.NAME):
            raise InputError(f"--protocol {protocol} has no sum mode",
                             hint="PSI-sum runs on the ECDH family: use --protocol ecdh or auto")
        chosen = psi_sum.NAME
    one_bucket = output_mode != "intersection" or chosen == unbalanced.NAME
    count = 1 if one_bucket else buckets.bucket_count(n_r, n_s, bucket_size)
    if announce is not None:
        picked = f"auto picked '{chosen}' for {n_r:,} x {n_s:,} IDs" if protocol == "auto" else f"protocol '{chosen}'"
        announce(picked + (f", {count} buckets" if count > 1 else ""))
    params = _protocol_params(chosen, result_to, output_mode, stash, set_name, he_scheme)
    if chosen == psi_sum.NAME:  # one run, no buckets: per-bucket sums would reveal more than the total
        result = psi_sum.run(link.scoped("bucket/0"), peer, role, ids, params, progress=progress, values=values)
        result.details["requested"] = protocol
        return result
    if chosen == unbalanced.NAME:  # one run against the preprocessed set: no buckets
        result = unbalanced.run(link.scoped("bucket/0"), peer, role, ids, params, progress=progress, store=store)
        result.details["requested"] = protocol
        return result
    parts = buckets.partition(link, peer, role, ids, n_peer, count)
    results = buckets.run_buckets(
        link, peer, role, ids, parts,
        lambda sub_link, sub_ids, sub_progress: PROTOCOLS[chosen](
            sub_link, peer, role, sub_ids, params, progress=sub_progress
        ),
        executor=executor, progress=progress,
    )
    result = buckets.merge(role, chosen, n, n_peer, parts, results)
    result.details["requested"] = protocol
    return result


__all__ = ["run", "PROTOCOLS", "CHOICES", "DEFAULT_BUCKET_SIZE", "PsiParams", "PsiResult", "Role", "ResultTo", "OutputMode", "Progress"]
