"""Vertical federated learning on default_credit: federated vs plaintext in one run; prints JSON.

    pip install -e '.[bench]'
    python benchmarks/vfl.py [--only lr,secureboost,iv] [--trees 30]

Both parties run as two `riskshare` processes over mutual TLS on loopback, with
2048-bit keys, exactly as two institutions would (PSI alignment included).
Split: 70/30 stratified on y with random_state=42. Reported per algorithm:
holdout AUC and KS of the federated model, the guest's wall-clock seconds for
the whole command and for training after alignment, and the plaintext
baseline fitted in the same run on the joined data (scikit-learn
LogisticRegression; XGBoost with the same parameters and one thread; pandas
for IV on the same bins). The machine's load average is printed too: these
machines are shared, so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "fate"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "riskshare", *args]


def run_pair(guest_args: list[str], host_args: list[str], timeout: float = 1800) -> tuple[float, str, str]:
    """Start host and guest commands; return (guest wall seconds, guest stderr, host stderr)."""
    host = subprocess.Popen(cli(*host_args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.perf_counter()
    guest = subprocess.Popen(cli(*guest_args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        g_out, g_err = guest.communicate(timeout=timeout)
        seconds = time.perf_counter() - start
        h_out, h_err = host.communicate(timeout=120)
    finally:
        for p in (guest, host):
            if p.poll() is None:
                p.kill()
    if guest.returncode or host.returncode:
        raise SystemExit(f"federated run failed:\nguest: {g_err}\nhost: {h_err}")
    return seconds, g_out + g_err, h_out + h_err


def setup(work: Path) -> dict[str, Path]:
    from riskshare.node.home import NodeHome

    guest = pd.read_csv(DATA / "default_credit_hetero_guest.csv")
    host = pd.read_csv(DATA / "default_credit_hetero_host.csv")
    from sklearn.model_selection import train_test_split

    train_ids, test_ids = train_test_split(guest["id"].values, test_size=0.3, stratify=guest["y"].values,
                                           random_state=42)
    files = {
        "g_train": guest[guest.id.isin(train_ids)], "h_train": host[host.id.isin(train_ids)],
        "g_test": guest[guest.id.isin(test_ids)].drop(columns=["y"]), "h_test": host[host.id.isin(test_ids)],
        "labels": guest[guest.id.isin(test_ids)][["id", "y"]],
    }
    paths = {}
    for name, df in files.items():
        paths[name] = work / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    homes = {n: NodeHome.init(work / n, n, f"127.0.0.1:{free_port()}") for n in ("broker", "bank")}
    homes["broker"].add_peer("bank", homes["bank"].config["node"]["listen"], homes["bank"].cert_pem)
    homes["bank"].add_peer("broker", homes["broker"].config["node"]["listen"], homes["broker"].cert_pem)
    paths["broker"], paths["bank"] = homes["broker"].path, homes["bank"].path
    return paths


def train_seconds(log: str) -> float | None:
    """Seconds from the end of alignment to the last training line (from the progress lines)."""
    aligned, last = None, None
    for line in log.splitlines():
        if "elapsed_s" in line:
            value = float(line.rsplit("elapsed_s", 1)[1].split()[0])
            if "step aligned" in line:
                aligned = value
            last = value
    return round(last - aligned, 2) if aligned is not None and last is not None else None


def federated(paths: dict[str, Path], work: Path, algorithm: str, params: dict) -> dict:
    common = ["--id-column", "id", "--timeout", "900"]
    seconds, g_log, h_log = run_pair(
        ["train", "--home", str(paths["broker"]), "--peer", "bank", "--role", "guest", "--algorithm", algorithm,
         "--input", str(paths["g_train"]), "--label", "y", "--params", json.dumps(params),
         "--model-out", str(work / f"broker_{algorithm}"), *common],
        ["train", "--home", str(paths["bank"]), "--peer", "broker", "--role", "host", "--algorithm", algorithm,
         "--input", str(paths["h_train"]), "--model-out", str(work / f"bank_{algorithm}"), *common],
    )
    scores = work / f"scores_{algorithm}.csv"
    predict_s, _, _ = run_pair(
        ["predict", "--home", str(paths["broker"]), "--peer", "bank", "--role", "guest",
         "--model", str(work / f"broker_{algorithm}"), "--input", str(paths["g_test"]), "--output", str(scores),
         *common],
        ["predict", "--home", str(paths["bank"]), "--peer", "broker", "--role", "host",
         "--model", str(work / f"bank_{algorithm}"), "--input", str(paths["h_test"]), *common],
    )
    from riskshare.ml import metrics

    s = pd.read_csv(scores).merge(pd.read_csv(paths["labels"]), on="id")
    return {"auc": round(metrics.auc(s.y.values, s.score.values), 4),
            "ks": round(metrics.ks(s.y.values, s.score.values), 4),
            "command_seconds": round(seconds, 2), "train_seconds_after_alignment": train_seconds(g_log),
            "predict_seconds": round(predict_s, 2), "params": params}


def joined(paths: dict[str, Path]):
    g, h = pd.read_csv(paths["g_train"]), pd.read_csv(paths["h_train"])
    tr = g.merge(h, on="id", suffixes=("_g", "_h"))
    gt, ht = pd.read_csv(paths["g_test"]), pd.read_csv(paths["h_test"])
    te = gt.merge(ht, on="id", suffixes=("_g", "_h")).merge(pd.read_csv(paths["labels"]), on="id")
    cols = [c for c in tr.columns if c not in ("id", "y")]
    return tr[cols].values, tr.y.values, te[cols].values, te.y.values


def plain_lr(paths) -> dict:
    from sklearn.linear_model import LogisticRegression

    from riskshare.ml import metrics

    X, y, Xt, yt = joined(paths)
    start = time.perf_counter()
    model = LogisticRegression(max_iter=1000).fit(X, y)
    seconds = time.perf_counter() - start
    p = model.predict_proba(Xt)[:, 1]
    return {"auc": round(metrics.auc(yt, p), 4), "ks": round(metrics.ks(yt, p), 4), "seconds": round(seconds, 3),
            "model": "sklearn LogisticRegression(max_iter=1000)"}


def plain_xgb(paths, trees: int) -> dict:
    import xgboost as xgb

    from riskshare.ml import metrics

    X, y, Xt, yt = joined(paths)
    start = time.perf_counter()
    model = xgb.XGBClassifier(n_estimators=trees, max_depth=3, learning_rate=0.3, max_bin=32, n_jobs=1,
                              tree_method="hist").fit(X, y)
    seconds = time.perf_counter() - start
    p = model.predict_proba(Xt)[:, 1]
    return {"auc": round(metrics.auc(yt, p), 4), "ks": round(metrics.ks(yt, p), 4), "seconds": round(seconds, 3),
            "model": f"xgboost {xgb.__version__} hist, {trees} trees, depth 3, lr 0.3, max_bin 32, 1 thread"}


def iv_run(paths: dict[str, Path], work: Path) -> dict:
    params = json.dumps({"max_bin": 10, "min_bin_count": 50})
    common = ["--id-column", "id", "--params", params, "--timeout", "900"]
    seconds, g_log, _ = run_pair(
        ["iv", "--home", str(paths["broker"]), "--peer", "bank", "--role", "guest", "--input", str(paths["g_train"]),
         "--label", "y", "--output", str(work / "iv_guest.json"), *common],
        ["iv", "--home", str(paths["bank"]), "--peer", "broker", "--role", "host", "--input", str(paths["h_train"]),
         "--output", str(work / "iv_host.json"), *common],
    )
    guest_report = json.loads((work / "iv_guest.json").read_text())
    host_report = json.loads((work / "iv_host.json").read_text())
    # plaintext on the same bins (the host's cut points are known here because both files are)
    g, h = pd.read_csv(paths["g_train"]), pd.read_csv(paths["h_train"])
    d = g.merge(h, on="id", suffixes=("_g", "_h"))
    start = time.perf_counter()
    diffs = []
    host_cuts = {f["name"]: f["cuts"] for f in host_report["features"]}
    for f in guest_report["features"]:
        suffixed = f["name"] + ("_g" if f["owner"] == "guest" else "_h")
        col = d[suffixed] if suffixed in d.columns else d[f["name"]]
        cuts = f["cuts"] if f["owner"] == "guest" else host_cuts[f["name"]]
        bins = np.searchsorted(np.asarray(cuts), col.values, side="right")
        t = pd.DataFrame({"b": bins, "y": d.y.values}).groupby("b")["y"].agg(["sum", "count"])
        e = t["sum"].astype(float)
        n = (t["count"] - t["sum"]).astype(float)
        e = e.where((e > 0) & (n > 0), np.maximum(e, 0.5))
        n = n.where((t["sum"] > 0) & (n > 0), np.maximum(n, 0.5))
        pe, pn = e / t["sum"].sum(), n / (t["count"] - t["sum"]).sum()
        diffs.append(abs(float(((pe - pn) * np.log(pe / pn)).sum()) - f["iv"]))
    pandas_s = time.perf_counter() - start
    return {"features": len(guest_report["features"]), "max_abs_iv_difference_vs_pandas": max(diffs),
            "command_seconds": round(seconds, 2), "pandas_seconds": round(pandas_s, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="lr,secureboost,iv")
    ap.add_argument("--trees", type=int, default=30)
    ap.add_argument("--scheme", default="ou", choices=["ou", "paillier"])
    args = ap.parse_args()
    todo = set(args.only.split(","))
    out: dict = {"machine": {"cores": os.cpu_count(), "loadavg_start": [round(v, 2) for v in os.getloadavg()],
                             "note": "shared machine: compare federated and plaintext figures of the same run"}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = setup(work)
        if "lr" in todo:
            out["lr"] = {"federated": federated(paths, work, "lr", {"he_scheme": args.scheme}),
                         "plaintext": plain_lr(paths)}
        if "secureboost" in todo:
            params = {"n_trees": args.trees, "max_depth": 3, "learning_rate": 0.3, "max_bin": 32,
                      "he_scheme": args.scheme}
            out["secureboost"] = {"federated": federated(paths, work, "secureboost", params),
                                  "plaintext": plain_xgb(paths, args.trees)}
        if "iv" in todo:
            out["woe_iv"] = iv_run(paths, work)
    out["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
