"""riskshare OT-PSI vs SecretFlow spu 0.9.5 RR22 on the same CSV files, in the same run.

spu is kept out of riskshare's dependencies: install it in its own virtualenv
(see benchmarks/README.md) and pass that virtualenv's Python:

    python benchmarks/compare_spu.py --spu-python /path/to/spu-venv/bin/python --n 1048576 --repeat 3

Each repetition runs riskshare (two `riskshare psi` processes over mutual
TLS) and spu (two processes over its brpc link, plain TCP) back to back on the
same files; both go from CSV to an output CSV. Prints one JSON line per
repetition and a summary with the median ratio riskshare / spu.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import psi as bench  # noqa: E402

HERE = Path(__file__).resolve().parent


def run_spu(python: str, receiver_csv: Path, sender_csv: Path, root: Path, protocol: str) -> dict:
    ports = f"{bench.free_port()},{bench.free_port()}"
    started = time.perf_counter()
    procs = [
        subprocess.Popen([python, str(HERE / "spu_party.py"), "--rank", str(rank), "--ports", ports,
                          "--input", str(path), "--output", str(root / f"spu-out-{rank}.csv"), "--protocol", protocol],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for rank, path in ((0, receiver_csv), (1, sender_csv))
    ]
    peaks = {}
    pending = {p.pid: i for i, p in enumerate(procs)}
    codes = {}
    while pending:
        pid, status, rusage = os.wait4(-1, 0)
        if pid in pending:
            i = pending.pop(pid)
            peaks[i] = rusage.ru_maxrss * 1024
            codes[i] = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    outs = []
    for i, p in enumerate(procs):
        out, err = p.stdout.read().decode(), p.stderr.read().decode()
        if codes[i] != 0:
            raise RuntimeError(f"spu rank {i} failed: {err[-2000:]}")
        outs.append(json.loads([ln for ln in out.splitlines() if ln.startswith("{\"rank\"")][-1]))
    return {"wall": wall, "peaks": peaks, "intersection": outs[0]["intersection"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spu-python", required=True)
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--protocol", default="ot")
    ap.add_argument("--spu-protocol", default="PROTOCOL_RR22")
    args = ap.parse_args()
    ratios = []
    with tempfile.TemporaryDirectory(prefix="rs-vs-spu-") as tmp:
        root = Path(tmp)
        bank, broker = bench.make_homes(root / "homes")
        r_csv, s_csv, shared = bench.make_data(root, args.n, args.n, 0.5, 1)
        for rep in range(args.repeat):
            ours = bench.run_pair(bank, broker, r_csv, s_csv, args.protocol, root, [])
            spu = run_spu(args.spu_python, r_csv, s_csv, root, args.spu_protocol)
            if ours["rows"] != shared or spu["intersection"] != shared:
                raise SystemExit(f"wrong answer: expected {shared}, riskshare {ours['rows']}, spu {spu['intersection']}")
            ratio = ours["wall"] / spu["wall"]
            ratios.append(ratio)
            print(json.dumps({
                "repeat": rep, "n": args.n, "riskshare_protocol": args.protocol, "riskshare_seconds": round(ours["wall"], 2),
                "spu_protocol": args.spu_protocol, "spu_seconds": round(spu["wall"], 2), "ratio": round(ratio, 3),
                "riskshare_peak_mib": {k: round(v / 2**20) for k, v in ours["peak"].items()},
                "spu_peak_mib": {("receiver" if k == 0 else "sender"): round(v / 2**20) for k, v in spu["peaks"].items()},
            }), flush=True)
    print(json.dumps({"summary": True, "n": args.n, "median_ratio": round(statistics.median(ratios), 3)}))


if __name__ == "__main__":
    main()
