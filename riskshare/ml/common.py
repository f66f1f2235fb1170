"""What every VFL protocol shares: roles, the parameter handshake, input checks, HE key exchange.

Before any data-dependent message both parties exchange the algorithm, its
parameters and their row counts (:func:`agree`); anything that differs stops
both sides with :class:`~riskshare.errors.ParameterMismatch`. The host may
leave a parameter unset and adopt the guest's value, or set it and require it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

from ..crypto import he
from ..errors import InputError, ParameterMismatch, ProtocolError
from ..net import Link

Role = Literal["guest", "host"]
ROLES = ("guest", "host")
VFL_WIRE_VERSION = 1
MIN_ROWS = 10


def params_from_dict(cls: type, doc: dict[str, Any] | None, what: str) -> Any:
    """An instance of the parameter dataclass ``cls`` from ``doc``; unknown names are refused by name.

    Each algorithm's ``from_dict`` calls this, then checks the values' ranges.
    """
    doc = dict(doc or {})
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = sorted(set(doc) - known)
    if unknown:
        raise InputError(f"unknown {what} parameter(s): {', '.join(unknown)}",
                         hint=f"known: {', '.join(sorted(known))}")
    return cls(**doc)


def check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(f"role must be 'guest' (holds the labels) or 'host', not '{role}'")


def agree(
    link: Link, peer: str, role: Role, algorithm: str, params: dict[str, Any], n_rows: int,
    *, host_overrides: dict[str, Any] | None = None, step: str = "vfl/hello",
) -> dict[str, Any]:
    """Exchange and check parameters; return the agreed parameters (the guest's, checked by the host).

    ``params`` on the guest are the full training parameters. On the host,
    ``host_overrides`` holds only the values its operator set explicitly; each
    must equal the guest's. Row counts must match (both sides hold the same
    aligned rows).
    """
    check_role(role)
    mine = {"v": VFL_WIRE_VERSION, "role": role, "algorithm": algorithm, "n": int(n_rows),
            "params": params if role == "guest" else (host_overrides or {})}
    link.send_json(peer, step, mine)
    theirs = link.recv_json(peer, step)
    if not isinstance(theirs, dict) or not isinstance(theirs.get("params"), dict):
        raise ProtocolError(f"peer '{peer}' sent malformed training parameters")
    if theirs.get("v") != VFL_WIRE_VERSION:
        raise ParameterMismatch(f"peer '{peer}' speaks VFL wire version {theirs.get('v')}, we speak {VFL_WIRE_VERSION}",
                                hint="run the same riskshare version on both nodes")
    if theirs.get("role") == role:
        raise ParameterMismatch(f"both parties chose role '{role}'",
                                hint="the party with the labels runs --role guest, the other --role host")
    if theirs.get("algorithm") != algorithm:
        raise ParameterMismatch(f"algorithm differs: '{algorithm}' here, '{theirs.get('algorithm')}' at peer '{peer}'",
                                hint="both sides must run the same --algorithm")
    if theirs.get("n") != int(n_rows):
        raise ParameterMismatch(f"row counts differ: {n_rows} here, {theirs.get('n')} at peer '{peer}'",
                                hint="both sides must align on the same IDs first")
    if role == "guest":
        overrides = theirs["params"]
        agreed = params
    else:
        overrides = host_overrides or {}
        agreed = theirs["params"]
    for key, value in overrides.items():
        if agreed.get(key) != value:
            raise ParameterMismatch(
                f"parameter '{key}' differs: guest uses {agreed.get(key)!r}, host requires {value!r}",
                hint="pass the same --params on both sides (or leave it out on the host)",
            )
    return dict(agreed)


def check_features(X: Any, what: str = "features") -> np.ndarray:
    """A finite float64 matrix with at least MIN_ROWS rows; NaN is refused (impute before training)."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be numeric", hint="encode categorical columns as numbers first") from None
    if arr.ndim != 2:
        raise InputError(f"{what} must be a 2-D matrix, got shape {arr.shape}")
    if arr.shape[0] < MIN_ROWS:
        raise InputError(f"too few rows to train on: {arr.shape[0]} (at least {MIN_ROWS})")
    if arr.shape[1] == 0:
        raise InputError(f"no {what} columns")
    bad = ~np.isfinite(arr)
    if bad.any():
        cols = np.flatnonzero(bad.any(axis=0)).tolist()
        raise InputError(
            f"{what} contain {int(bad.sum())} missing or infinite values (columns {cols[:10]})",
            hint="riskshare refuses to guess: impute or drop them before training",
        )
    return arr


def check_labels(y: Any, n_rows: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or len(arr) != n_rows:
        raise InputError(f"labels must be one value per row ({n_rows}), got shape {arr.shape}")
    try:
        f = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError("labels must be 0/1 numbers") from None
    if not np.all(np.isfinite(f)):
        raise InputError("labels contain missing values", hint="remove those rows first")
    values = np.unique(f)
    if not np.all(np.isin(values, [0.0, 1.0])):
        raise InputError(f"labels must be binary 0/1, found {values[:6].tolist()}",
                         hint="map the high-risk class to 1 and the rest to 0")
    if len(values) < 2:
        raise InputError("labels hold only one class; a model needs both 0 and 1")
    return f.astype(np.int8)


def send_public_key(link: Link, peer: str, pk: he.PublicKey, step: str) -> None:
    link.send_json(peer, step, pk.to_json())


def recv_public_key(link: Link, peer: str, step: str, *, scheme: str, bits: int) -> he.PublicKey:
    pk = he.load_public_key(link.recv_json(peer, step))
    if pk.scheme != scheme or pk.key_bits != bits:
        raise ParameterMismatch(f"peer '{peer}' sent a {pk.scheme}-{pk.key_bits} key; agreed {scheme}-{bits}")
    return pk


def send_ciphertexts(link: Link, peer: str, step: str, ct: he.EncryptedVector) -> None:
    link.send(peer, step, ct.to_bytes())


def recv_ciphertexts(link: Link, peer: str, step: str, pk: he.PublicKey, count: int | None) -> he.EncryptedVector:
    rows = link.recv_array(peer, step, dtype=np.uint8, shape=(count, pk.ciphertext_bytes))
    return pk.ciphertexts_from_bytes(rows, peer=peer, step=step)


Progress = Callable[[str], None]


@dataclass
class TrainLog:
    """What training reports as it goes (and what the model manifest keeps)."""

    echo: Progress | None = None
    start: float = field(default_factory=time.monotonic)
    history: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, **entry: Any) -> None:
        entry["elapsed_s"] = round(time.monotonic() - self.start, 2)
        self.history.append(entry)
        if self.echo:
            self.echo("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
