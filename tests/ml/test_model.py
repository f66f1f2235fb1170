"""Model parts: versioned directories, atomic writes, integrity checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from riskshare.errors import InputError
from riskshare.ml import model


def test_versions_and_latest(tmp_path: Path):
    root = tmp_path / "m1"
    v1 = model.save(root, role="guest", algorithm="lr", model_id="abc", payload={"w": [1.0]})
    v2 = model.save(root, role="guest", algorithm="lr", model_id="def", payload={"w": [2.0]})
    assert (v1.name, v2.name) == ("v1", "v2")
    manifest, payload = model.load(root, role="guest", algorithm="lr")
    assert manifest["model_id"] == "def" and payload == {"w": [2.0]}
    assert model.load(v1)[1] == {"w": [1.0]}  # an older version stays readable
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_a_failed_save_leaves_nothing(tmp_path: Path):
    root = tmp_path / "m"
    with pytest.raises(TypeError):
        model.save(root, role="host", algorithm="lr", model_id="x", payload={"bad": object()})
    assert list(root.iterdir()) == []
    with pytest.raises(InputError, match="not a riskshare model"):
        model.load(root)


def test_tampering_and_wrong_role_are_detected(tmp_path: Path):
    v = model.save(tmp_path / "m", role="host", algorithm="secureboost", model_id="x", payload={"a": 1})
    with pytest.raises(InputError, match="host's part"):
        model.load(v, role="guest")
    with pytest.raises(InputError, match="not lr"):
        model.load(v, algorithm="lr")
    (v / "model.json").write_text(json.dumps({"a": 2}))
    with pytest.raises(InputError, match="does not match its manifest"):
        model.load(v)


def test_model_out_must_be_a_directory(tmp_path: Path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        model.save(f, role="guest", algorithm="lr", model_id="x", payload={})
