"""`riskshare train / predict / evaluate / iv` between two real processes over mutual TLS on loopback."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from riskshare.node.home import NodeHome

from ..conftest import riskshare_cmd, run_cli

DATA = Path(__file__).resolve().parents[2] / "data" / "fate"


_STARTED: list[subprocess.Popen] = []


def start(home: NodeHome, command: str, *args: str) -> subprocess.Popen:
    if "--timeout" not in args:
        args = (*args, "--timeout", "60")
    proc = subprocess.Popen(riskshare_cmd(command, "--home", str(home.path), *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _STARTED.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _kill_leftovers():
    yield
    while _STARTED:  # never leave a process behind when a test fails
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def finish(proc: subprocess.Popen, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture
def files(tmp_path):
    """Breast data split 70/30 by ID; the host file has extra IDs the guest lacks, rows shuffled."""
    rows_g = list(csv.reader(open(DATA / "breast_hetero_guest.csv")))
    rows_h = list(csv.reader(open(DATA / "breast_hetero_host.csv")))
    head_g, body_g = rows_g[0], rows_g[1:]
    head_h, body_h = rows_h[0], rows_h[1:]
    rng = np.random.default_rng(3)
    test_ids = {r[0] for r in body_g if rng.random() < 0.3}
    def dump(name, head, rows):
        with open(tmp_path / name, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(head)
            w.writerows(rows)
        return tmp_path / name
    body_h = [body_h[i] for i in rng.permutation(len(body_h))] + [[f"X9{k}"] + ["0.1"] * (len(head_h) - 1) for k in range(5)]
    return {
        "g_train": dump("g_train.csv", head_g, [r for r in body_g if r[0] not in test_ids]),
        "h_train": dump("h_train.csv", head_h, [r for r in body_h if r[0] not in test_ids]),
        "g_test": dump("g_test.csv", [c for c in head_g if c != "y"],
                       [[v for c, v in zip(head_g, r) if c != "y"] for r in body_g if r[0] in test_ids]),
        "h_test": dump("h_test.csv", head_h, [r for r in body_h if r[0] in test_ids]),
        "labels": dump("labels.csv", ["id", "y"], [[r[0], r[1]] for r in body_g if r[0] in test_ids]),
        "dir": tmp_path,
    }


def test_train_predict_evaluate_secureboost(two_homes, files):
    bank, broker = two_homes["bank"], two_homes["broker"]
    d = files["dir"]
    host = start(bank, "train", "--peer", "broker", "--role", "host", "--algorithm", "secureboost",
                 "--input", str(files["h_train"]), "--id-column", "id", "--model-out", str(d / "bank_model"))
    guest = start(broker, "train", "--peer", "bank", "--role", "guest", "--algorithm", "secureboost",
                  "--input", str(files["g_train"]), "--id-column", "id", "--label", "y",
                  "--params", json.dumps({"n_trees": 3, "max_bin": 16}), "--model-out", str(d / "broker_model"))
    rc_g, out_g, err_g = finish(guest)
    rc_h, out_h, err_h = finish(host)
    assert rc_g == 0, err_g
    assert rc_h == 0, err_h
    assert "tree 3/3" in err_g  # progress on the terminal
    assert (d / "broker_model" / "v1" / "manifest.json").is_file() and (d / "bank_model" / "LATEST").is_file()
    g_manifest = json.loads((d / "broker_model" / "v1" / "manifest.json").read_text())
    h_manifest = json.loads((d / "bank_model" / "v1" / "manifest.json").read_text())
    assert g_manifest["model_id"] == h_manifest["model_id"] and g_manifest["role"] == "guest"

    host = start(bank, "predict", "--peer", "broker", "--role", "host", "--model", str(d / "bank_model"),
                 "--input", str(files["h_test"]), "--id-column", "id")
    guest = start(broker, "predict", "--peer", "bank", "--role", "guest", "--model", str(d / "broker_model"),
                  "--input", str(files["g_test"]), "--id-column", "id", "--output", str(d / "scores.csv"))
    rc_g, out_g, err_g = finish(guest)
    rc_h, _, err_h = finish(host)
    assert rc_g == 0 and rc_h == 0, err_g + err_h
    scores = list(csv.DictReader(open(d / "scores.csv")))
    assert len(scores) == len(list(csv.reader(open(files["labels"])))) - 1
    assert set(scores[0]) == {"id", "score"}

    res = run_cli("evaluate", "--scores", str(d / "scores.csv"), "--labels", str(files["labels"]), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["auc"] > 0.95 and report["matched"] == len(scores) and len(report["deciles"]) == 10
    text = run_cli("evaluate", "--scores", str(d / "scores.csv"), "--labels", str(files["labels"]))
    assert "AUC" in text.stdout and "KS" in text.stdout


def test_parameter_mismatch_stops_both_sides_and_saves_nothing(two_homes, files):
    bank, broker = two_homes["bank"], two_homes["broker"]
    d = files["dir"]
    host = start(bank, "train", "--peer", "broker", "--role", "host", "--algorithm", "lr",
                 "--input", str(files["h_train"]), "--id-column", "id", "--params", '{"l2": 0.5}',
                 "--model-out", str(d / "bank_model"))
    guest = start(broker, "train", "--peer", "bank", "--role", "guest", "--algorithm", "lr",
                  "--input", str(files["g_train"]), "--id-column", "id", "--label", "y",
                  "--model-out", str(d / "broker_model"))
    rc_g, _, err_g = finish(guest)
    rc_h, _, err_h = finish(host)
    assert rc_g == 4 and rc_h == 4
    assert "l2" in err_g and "l2" in err_h
    assert not (d / "broker_model" / "v1").exists() and not (d / "bank_model" / "v1").exists()


@pytest.mark.slow
def test_peer_disconnect_mid_training_fails_cleanly(two_homes, files):
    bank, broker = two_homes["bank"], two_homes["broker"]
    d = files["dir"]
    host = start(bank, "train", "--peer", "broker", "--role", "host", "--algorithm", "secureboost",
                 "--input", str(files["h_train"]), "--id-column", "id", "--model-out", str(d / "bank_model"),
                 "--timeout", "30")
    guest = start(broker, "train", "--peer", "bank", "--role", "guest", "--algorithm", "secureboost",
                  "--input", str(files["g_train"]), "--id-column", "id", "--label", "y",
                  "--params", json.dumps({"n_trees": 200}), "--model-out", str(d / "broker_model"),
                  "--timeout", "30")
    for line in host.stderr:  # wait until trees are being built, then kill the host
        if "tree 2/200" in line:
            break
    host.kill()
    host.communicate()
    rc_g, _, err_g = finish(guest, timeout=200)
    assert rc_g == 3, err_g  # PeerError
    assert "bank" in err_g
    assert not (d / "broker_model").exists() or not any((d / "broker_model").glob("v*"))


def test_iv_command(two_homes, files):
    bank, broker = two_homes["bank"], two_homes["broker"]
    d = files["dir"]
    host = start(bank, "iv", "--peer", "broker", "--role", "host", "--input", str(files["h_train"]),
                 "--id-column", "id", "--params", '{"max_bin": 5, "min_bin_count": 20}')
    guest = start(broker, "iv", "--peer", "bank", "--role", "guest", "--input", str(files["g_train"]),
                  "--id-column", "id", "--label", "y", "--params", '{"max_bin": 5, "min_bin_count": 20}',
                  "--output", str(d / "iv.json"))
    rc_g, out_g, err_g = finish(guest)
    rc_h, out_h, err_h = finish(host)
    assert rc_g == 0 and rc_h == 0, err_g + err_h
    report = json.loads((d / "iv.json").read_text())
    assert len(report["features"]) == 30 and "IV" in out_g
    assert all(f["cuts"] is None for f in report["features"] if f["owner"] == "host")


def test_bad_input_messages(two_homes, files, tmp_path):
    broker = two_homes["broker"]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,y,x\n1,1,a\n2,0,b\n")
    res = run_cli("train", "--home", str(broker.path), "--peer", "bank", "--role", "guest", "--algorithm", "lr",
                  "--input", str(bad), "--id-column", "id", "--label", "y", "--model-out", str(tmp_path / "m"))
    assert res.returncode == 2 and "non-numeric" in res.stderr
    res = run_cli("train", "--home", str(broker.path), "--peer", "bank", "--role", "guest", "--algorithm", "lr",
                  "--input", str(files["g_train"]), "--id-column", "id", "--model-out", str(tmp_path / "m"))
    assert res.returncode == 2 and "--label" in res.stderr
    res = run_cli("train", "--home", str(broker.path), "--peer", "bank", "--role", "guest", "--algorithm", "lr",
                  "--input", str(files["g_train"]), "--id-column", "id", "--label", "y", "--params", "{bad",
                  "--model-out", str(tmp_path / "m"))
    assert res.returncode == 2 and "JSON" in res.stderr
