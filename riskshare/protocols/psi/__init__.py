"""Private set intersection: one entry point, several protocols.

:func:`run` is what the CLI, the node and the in-process API call. It looks up
the protocol by name; each protocol module documents its security model, what
each party learns and where its parameters come from.
"""

from __future__ import annotations

from typing import Callable, Sequence

import pyarrow as pa

from ...errors import InputError
from ...net import Link
from . import ecdh
from .common import OutputMode, Progress, PsiParams, PsiResult, ResultTo, Role, check_role

PROTOCOLS: dict[str, Callable[..., PsiResult]] = {
    ecdh.NAME: ecdh.run,
}


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
) -> PsiResult:
    """Run PSI as ``role`` on distinct normalised ``ids`` against ``peer``."""
    check_role(role)
    if protocol not in PROTOCOLS:
        raise InputError(f"unknown PSI protocol '{protocol}'", hint=f"choose one of: {', '.join(PROTOCOLS)}")
    params = PsiParams(protocol=protocol, result_to=result_to, output_mode=output_mode)
    params.check()
    return PROTOCOLS[protocol](link, peer, role, ids, params, progress=progress)


__all__ = ["run", "PROTOCOLS", "PsiParams", "PsiResult", "Role", "ResultTo", "OutputMode", "Progress"]
