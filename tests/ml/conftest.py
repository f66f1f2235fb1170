"""Shared fixtures: the breast-cancer split of FATE's data (569 rows, guest 10 features + label, host 20)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "fate"


def read(name: str) -> dict[str, np.ndarray]:
    t = pacsv.read_csv(DATA / name)
    return {c: t[c].to_numpy() for c in t.column_names}


@pytest.fixture(scope="session")
def breast():
    g, h = read("breast_hetero_guest.csv"), read("breast_hetero_host.csv")
    order_h = {v: i for i, v in enumerate(h["id"].tolist())}
    idx = np.array([order_h[v] for v in g["id"].tolist()])
    gcols = [c for c in g if c not in ("id", "y")]
    hcols = [c for c in h if c != "id"]
    Xg = np.column_stack([g[c] for c in gcols]).astype(float)
    Xh = np.column_stack([h[c] for c in hcols]).astype(float)[idx]
    y = g["y"].astype(int)
    rng = np.random.default_rng(7)
    perm = rng.permutation(len(y))
    cut = int(0.7 * len(y))
    return {"Xg": Xg, "Xh": Xh, "y": y, "train": np.sort(perm[:cut]), "test": np.sort(perm[cut:]),
            "gcols": gcols, "hcols": hcols}
