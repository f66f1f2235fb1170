"""Saving one party's part of a trained model: a versioned directory with a manifest, written atomically.

Layout::

    MODEL_DIR/
      LATEST            the name of the newest version ("v3")
      v1/ manifest.json model.json
      v2/ ...

Each version is written to a temporary directory next to its final place and
renamed into place only when complete (``os.replace`` of a directory is atomic
on POSIX), then ``LATEST`` is replaced atomically: a crash or a failed run never
leaves a half-written model, and an earlier version is never overwritten.

``manifest.json`` records the format version, algorithm, role, model id (the
same on both parties' parts; prediction checks it), the peer, feature names,
parameters, training figures and the SHA-256 of ``model.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError

FORMAT = "riskshare-vfl-model"
FORMAT_VERSION = 1
_VERSION_RE = re.compile(r"^v(\d+)$")


def _fsync_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def save(directory: str | os.PathLike[str], *, role: str, algorithm: str, model_id: str, payload: dict[str, Any],
         meta: dict[str, Any] | None = None) -> Path:
    """Write a new version of this party's model part; return its directory."""
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise InputError(f"{root} exists and is not a directory", hint="choose another --model-out")
    root.mkdir(parents=True, exist_ok=True)
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "riskshare_version": __version__,
        "algorithm": algorithm, "role": role, "model_id": model_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model_sha256": hashlib.sha256(body).hexdigest(), **(meta or {}),
    }
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    try:
        _fsync_file(tmp / "model.json", body)
        _fsync_file(tmp / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
        while True:
            target = root / f"v{_next_version(root)}"
            try:
                os.rename(tmp, target)  # fails if target exists: never overwrite a version
                break
            except OSError:
                if not target.exists():
                    raise
        latest_tmp = root / f".LATEST.{os.getpid()}.tmp"
        _fsync_file(latest_tmp, target.name.encode())
        os.replace(latest_tmp, root / "LATEST")
        return target
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _next_version(root: Path) -> int:
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := _VERSION_RE.match(p.name))]
    return max(numbers, default=0) + 1


def resolve(path: str | os.PathLike[str]) -> Path:
    """A version directory: ``path`` itself, or the one ``path/LATEST`` names."""
    p = Path(path)
    if (p / "manifest.json").is_file():
        return p
    latest = p / "LATEST"
    if latest.is_file():
        name = latest.read_text().strip()
        if _VERSION_RE.match(name) and (p / name / "manifest.json").is_file():
            return p / name
    raise InputError(f"{p} is not a riskshare model (no manifest.json or LATEST)",
                     hint="pass the --model-out directory of a training run")


def load(path: str | os.PathLike[str], *, role: str | None = None,
         algorithm: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read and verify (manifest, payload); check the role and algorithm when given."""
    version = resolve(path)
    try:
        manifest = json.loads((version / "manifest.json").read_text())
        body = (version / "model.json").read_bytes()
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the model in {version}: {exc}") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{version} is not a model this riskshare version reads")
    if hashlib.sha256(body).hexdigest() != manifest.get("model_sha256"):
        raise InputError(f"{version}/model.json does not match its manifest (changed or damaged)",
                         hint="restore the model from a backup or train again")
    if role and manifest.get("role") != role:
        raise InputError(f"{version} is the {manifest.get('role')}'s part of the model; this side is the {role}")
    if algorithm and manifest.get("algorithm") != algorithm:
        raise InputError(f"{version} is a {manifest.get('algorithm')} model, not {algorithm}")
    return manifest, json.loads(body)
