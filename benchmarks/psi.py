"""PSI benchmark: two `riskshare psi` processes over loopback mutual TLS, from CSV to output file.

Prints one JSON line per case: the sizes, wall seconds (both processes started
together, until both have exited), bytes each way, peak memory of each party
process (ru_maxrss from os.wait4), and — timed in the same run on the same
files — a plaintext intersection (read both CSVs with pyarrow, intersect,
write the receiver's rows), with the ratio of the two.

    python benchmarks/psi.py --n 1048576 --protocol ecdh      # issue 2's benchmark
    python benchmarks/psi.py                                  # ot and ecdh at 2^16, ot at 2^20
    python benchmarks/psi.py --protocol ot --n 10000000       # the long one (bucketed)
    python benchmarks/psi.py --protocol sum --n 100000        # PSI-sum (receiver learns count and sum)

The machine is usually shared: compare the ratio column across runs, not the seconds.
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
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

PARTY = [sys.executable, "-c", "from riskshare.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def riskshare(*args: str) -> None:
    subprocess.run([*PARTY, *args], check=True, stdout=subprocess.DEVNULL)


def make_homes(root: Path) -> tuple[Path, Path]:
    bank, broker = root / "bank", root / "broker"
    riskshare("init", "--name", "bank", "--home", str(bank), "--listen", f"127.0.0.1:{free_port()}")
    riskshare("init", "--name", "broker", "--home", str(broker), "--listen", f"127.0.0.1:{free_port()}")
    for home, other, name in ((bank, broker, "broker"), (broker, bank, "bank")):
        pem = root / f"{name}.pem"
        riskshare("identity", "--home", str(other), "--export", str(pem))
        listen = next(line.split("=", 1)[1].strip().strip('"') for line in (other / "riskshare.toml").read_text().splitlines()
                      if line.startswith("listen"))
        riskshare("peer", "add", "--home", str(home), "--name", name, "--address", listen, "--cert", str(pem))
    return bank, broker


def make_data(root: Path, n_receiver: int, n_sender: int, overlap: float, seed: int) -> tuple[Path, Path, int]:
    """Two CSVs of 18-character IDs; the first ``overlap`` share of the receiver's IDs are also the sender's."""
    rng = np.random.default_rng(seed)
    shared = int(min(n_receiver, n_sender) * overlap)
    total = n_receiver + n_sender - shared
    pool = np.unique(rng.integers(0, 10**12, size=int(total * 1.01) + 16))
    rng.shuffle(pool)
    pool = pool[:total]
    r_ids, s_ids = pool[:n_receiver], np.concatenate([pool[:shared], pool[n_receiver:]])
    paths = []
    for name, ids in (("receiver", r_ids), ("sender", s_ids)):
        table = pa.table({
            "client_id": pc.binary_join_element_wise("913501", pa.array(np.char.zfill(ids.astype(str), 12)), ""),
            "amount": pa.array(rng.integers(1, 10**6, size=len(ids))),
        })
        path = root / f"{name}.csv"
        pacsv.write_csv(table, path)
        paths.append(path)
    return paths[0], paths[1], shared


def plaintext(receiver_csv: Path, sender_csv: Path, out: Path) -> tuple[float, int, int]:
    """The same job without privacy: (seconds, rows in common, sum of the sender's amounts over them)."""
    started = time.perf_counter()
    r = pacsv.read_csv(receiver_csv, convert_options=pacsv.ConvertOptions(column_types={"client_id": pa.string()}))
    s = pacsv.read_csv(sender_csv, convert_options=pacsv.ConvertOptions(column_types={"client_id": pa.string()}))
    rows = r.filter(pc.is_in(r["client_id"], value_set=s["client_id"].combine_chunks()))
    pacsv.write_csv(rows, out)
    total = pc.sum(s.filter(pc.is_in(s["client_id"], value_set=r["client_id"].combine_chunks()))["amount"]).as_py()
    return time.perf_counter() - started, rows.num_rows, int(total or 0)


def run_pair(bank: Path, broker: Path, receiver_csv: Path, sender_csv: Path, protocol: str, root: Path,
             extra: list[str]) -> dict:
    out = root / "shared.csv"
    common = ["psi", "--id-column", "client_id", "--protocol", protocol, "--timeout", "3600", *extra]
    receiver_out = [] if "sum" in extra else ["--output", str(out)]
    cmds = {
        "receiver": [*PARTY, *common, "--home", str(bank), "--peer", "broker", "--role", "receiver",
                     "--input", str(receiver_csv), *receiver_out, "--stats", str(root / "receiver.json")],
        "sender": [*PARTY, *common, "--home", str(broker), "--peer", "bank", "--role", "sender",
                   "--input", str(sender_csv), "--stats", str(root / "sender.json")],
    }
    started = time.perf_counter()
    procs = {role: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for role, cmd in cmds.items()}
    usage, cpu, codes = {}, {}, {}
    pending = {p.pid: role for role, p in procs.items()}
    while pending:
        pid, status, rusage = os.wait4(-1, 0)
        if pid in pending:
            role = pending.pop(pid)
            usage[role] = rusage.ru_maxrss * 1024
            cpu[role] = rusage.ru_utime + rusage.ru_stime
            codes[role] = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    for role, p in procs.items():
        err = p.stderr.read().decode()
        p.stdout.close()
        p.stderr.close()
        if codes[role] != 0:
            raise RuntimeError(f"{role} failed ({codes[role]}): {err.strip()}")
    stats = {role: json.loads((root / f"{role}.json").read_text()) for role in procs}
    rows = sum(1 for _ in out.open()) - 1 if out.exists() else 0
    return {"wall": wall, "peak": usage, "cpu": cpu, "stats": stats, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, action="append", help="set size of each side (repeatable)")
    ap.add_argument("--sender-n", type=int, help="sender's set size if different from --n")
    ap.add_argument("--protocol", action="append", choices=["ecdh", "ot", "auto", "sum"],
                    help="repeatable; sum = ECDH PSI-sum over the sender's amount column")
    ap.add_argument("--overlap", type=float, default=0.5, help="share of the smaller set that is shared")
    ap.add_argument("--large", action="store_true", help="also run ot at 10^7 x 10^7 (long)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", help="keep the working files in this directory")
    args = ap.parse_args()
    cases: list[tuple[str, int]] = []
    if args.n or args.protocol:
        for proto in args.protocol or ["ot"]:
            for n in args.n or [1 << 16, 1 << 20]:
                cases.append((proto, n))
    else:
        cases = [("ecdh", 1 << 16), ("ot", 1 << 16), ("ot", 1 << 20)]
    if args.large:
        cases.append(("ot", 10**7))
    with tempfile.TemporaryDirectory(prefix="rs-bench-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        bank, broker = make_homes(root / "homes")
        for proto, n in cases:
            case = root / f"{proto}-{n}"
            case.mkdir(exist_ok=True)
            n_s = args.sender_n or n
            r_csv, s_csv, shared = make_data(case, n, n_s, args.overlap, args.seed)
            plain_s, plain_rows, plain_sum = plaintext(r_csv, s_csv, case / "plain.csv")
            if proto == "sum":
                res = run_pair(bank, broker, r_csv, s_csv, "ecdh", case,
                               ["--output-mode", "sum", "--value-column", "amount", "--value-scale", "0"])
                got = (res["stats"]["receiver"]["intersection"], res["stats"]["receiver"]["details"]["total_integer"])
                if got != (shared, plain_sum):
                    raise SystemExit(f"wrong answer: expected {(shared, plain_sum)}, PSI-sum gave {got}")
            else:
                res = run_pair(bank, broker, r_csv, s_csv, proto, case, [])
            if (proto != "sum" and res["rows"] != shared) or plain_rows != shared:
                raise SystemExit(f"wrong answer: expected {shared}, PSI wrote {res['rows']}, plaintext {plain_rows}")
            rs, ss = res["stats"]["receiver"], res["stats"]["sender"]
            print(json.dumps({
                "protocol": "ecdh-sum" if proto == "sum" else rs["protocol"],
                "n": n, "n_receiver": n, "n_sender": n_s, "intersection": shared,
                "seconds": round(res["wall"], 2),
                "bytes_receiver_to_sender": rs["bytes_sent"], "bytes_sender_to_receiver": ss["bytes_sent"],
                "mb_total": round((rs["bytes_sent"] + ss["bytes_sent"]) / 1e6, 1),
                "peak_rss_receiver_mib": round(res["peak"]["receiver"] / 2**20),
                "peak_rss_sender_mib": round(res["peak"]["sender"] / 2**20),
                "protocol_seconds_receiver": rs["protocol_seconds"],
                "cpu_seconds": {role: round(t, 2) for role, t in res["cpu"].items()},
                "plaintext_seconds": round(plain_s, 3), "ratio_to_plaintext": round(res["wall"] / plain_s, 1),
                "buckets": rs["details"].get("buckets", 1),
            }), flush=True)


if __name__ == "__main__":
    main()
