"""Loading a party's table and aligning it with the peer by PSI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from riskshare.errors import InputError
from riskshare.ml.data import align, load_table
from riskshare.ml.estimators import run_pair


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_load_checks(tmp_path: Path):
    ok = load_table(write(tmp_path / "a.csv", "id,y,f1,f2\n007,1,0.5,2\n008,0,1.5,3\n"), "id", label="y")
    assert ok.ids == ["007", "008"] and ok.feature_names == ["f1", "f2"] and ok.y.tolist() == [1.0, 0.0]
    with pytest.raises(InputError, match="non-numeric"):
        load_table(write(tmp_path / "b.csv", "id,f\n1,a\n2,b\n"), "id")
    with pytest.raises(InputError, match="missing"):
        load_table(write(tmp_path / "c.csv", "id,f\n1,\n2,3\n"), "id")
    with pytest.raises(InputError, match="repeat an ID"):
        load_table(write(tmp_path / "d.csv", "id,f\n1,1\n 1 ,2\n"), "id")
    with pytest.raises(InputError, match="binary"):
        load_table(write(tmp_path / "e.csv", "id,y,f\n1,2,1\n2,0,1\n"), "id", label="y")
    with pytest.raises(InputError, match="no column"):
        load_table(write(tmp_path / "f.csv", "id,f\n1,1\n"), "id", label="y")


def test_align_orders_rows_identically(tmp_path: Path):
    rng = np.random.default_rng(0)
    ids_g = [f"C{i:04d}" for i in rng.permutation(60)]
    ids_h = [f"c{i:04d} " for i in rng.permutation(np.arange(20, 90))]
    g = load_table(write(tmp_path / "g.csv", "id,y,x\n" + "".join(f"{i},{k % 2},{k}\n" for k, i in enumerate(ids_g))),
                   "id", label="y")
    h = load_table(write(tmp_path / "h.csv", "id,z\n" + "".join(f"{i},{k}\n" for k, i in enumerate(ids_h))), "id")
    ga, ha = run_pair(lambda link: align(link, "host", "guest", g), lambda link: align(link, "guest", "host", h))
    assert ga.ids == ha.ids == sorted(set(ga.ids)) and len(ga.ids) == 40
    assert ha.raw_ids[0].strip().upper() == ga.ids[0]


def test_no_overlap_is_an_error(tmp_path: Path):
    g = load_table(write(tmp_path / "g.csv", "id,x\n" + "".join(f"A{i},1\n" for i in range(20))), "id")
    h = load_table(write(tmp_path / "h.csv", "id,x\n" + "".join(f"B{i},1\n" for i in range(20))), "id")
    with pytest.raises(InputError, match="share only 0"):
        run_pair(lambda link: align(link, "host", "guest", g), lambda link: align(link, "guest", "host", h))
