"""Unbalanced PSI benchmark: a large server set prepared once, then small client runs.

    python benchmarks/psi_unbalanced.py --server-n 1000000 --client-n 1000
    python benchmarks/psi_unbalanced.py --server-n 10000000 --client-n 1000   # preparation takes minutes

Prints one JSON line: the offline preparation (`riskshare psi-set prepare`,
one process), the first client run (downloads the server's values), the
second and third runs (online only: the copy is current), a run after the
server added 1,000 IDs (downloads only those), each as wall seconds of two
`riskshare psi` processes over loopback mutual TLS with bytes each way, and a
plaintext lookup of the same client IDs in the same server file timed in the
same run. Online time = the later runs' wall time, process start-up included.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parent))
import psi as bench  # noqa: E402

PARTY = bench.PARTY


def write_ids(path: Path, ids: np.ndarray) -> None:
    pacsv.write_csv(pa.table({"client_id": pa.array(np.char.add("C", ids.astype(str)))}), path)


def client_run(bank: Path, broker: Path, client_csv: Path, root: Path) -> dict:
    started = time.perf_counter()
    server = subprocess.Popen([*PARTY, "psi", "--home", str(broker), "--peer", "bank", "--role", "sender",
                               "--protocol", "unbalanced", "--set", "big", "--timeout", "3600",
                               "--stats", str(root / "s.json")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = subprocess.run([*PARTY, "psi", "--home", str(bank), "--peer", "broker", "--role", "receiver",
                             "--protocol", "unbalanced", "--set", "big", "--input", str(client_csv),
                             "--id-column", "client_id", "--output", str(root / "out.csv"), "--timeout", "3600",
                             "--stats", str(root / "c.json")], capture_output=True, text=True)
    _, s_err = server.communicate()
    wall = time.perf_counter() - started
    if client.returncode or server.returncode:
        raise SystemExit(f"run failed: {client.stderr}\n{s_err.decode()}")
    stats = json.loads((root / "c.json").read_text())
    rows = sum(1 for _ in (root / "out.csv").open()) - 1
    return {"seconds": round(wall, 2), "protocol_seconds": stats["protocol_seconds"], "intersection": rows,
            "bytes_client_to_server": stats["bytes_sent"], "bytes_server_to_client": stats["bytes_received"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server-n", type=int, default=1_000_000)
    ap.add_argument("--client-n", type=int, default=1000)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(prefix="rs-ub-") as tmp:
        root = Path(tmp)
        bank, broker = bench.make_homes(root / "homes")
        server_ids = rng.permutation(args.server_n * 2)[: args.server_n] + 10**9
        write_ids(root / "server.csv", server_ids)
        half = args.client_n // 2
        client_ids = np.concatenate([server_ids[:half], np.arange(args.client_n - half) + 5 * 10**9])
        write_ids(root / "client.csv", client_ids)

        started = time.perf_counter()
        subprocess.run([*PARTY, "psi-set", "prepare", "--home", str(broker), "--name", "big", "--input",
                        str(root / "server.csv"), "--id-column", "client_id"], check=True, stdout=subprocess.DEVNULL)
        prepare = time.perf_counter() - started

        first = client_run(bank, broker, root / "client.csv", root)
        online = [client_run(bank, broker, root / "client.csv", root) for _ in range(2)]

        extra = np.arange(1000) + 7 * 10**9
        write_ids(root / "server2.csv", np.concatenate([server_ids, extra]))
        started = time.perf_counter()
        subprocess.run([*PARTY, "psi-set", "prepare", "--home", str(broker), "--name", "big", "--input",
                        str(root / "server2.csv"), "--id-column", "client_id"], check=True, stdout=subprocess.DEVNULL)
        add_seconds = time.perf_counter() - started
        after_add = client_run(bank, broker, root / "client.csv", root)

        started = time.perf_counter()
        big = pacsv.read_csv(root / "server.csv", convert_options=pacsv.ConvertOptions(column_types={"client_id": pa.string()}))
        small = pacsv.read_csv(root / "client.csv", convert_options=pacsv.ConvertOptions(column_types={"client_id": pa.string()}))
        hits = small.filter(pc.is_in(small["client_id"], value_set=big["client_id"].combine_chunks())).num_rows
        plain = time.perf_counter() - started
        for run in (first, *online, after_add):
            if run["intersection"] != half or hits != half:
                raise SystemExit(f"wrong answer: expected {half}, got {run['intersection']} (plaintext {hits})")
        best_online = min(r["seconds"] for r in online)
        print(json.dumps({
            "server_n": args.server_n, "client_n": args.client_n, "intersection": half,
            "prepare_seconds": round(prepare, 1), "first_run": first, "online_runs": online,
            "add_1000_seconds": round(add_seconds, 1), "run_after_add": after_add,
            "plaintext_seconds": round(plain, 3), "online_ratio_to_plaintext": round(best_online / plain, 1),
        }))


if __name__ == "__main__":
    main()
