"""Keyword PIR benchmark: a table of 10^6 records x ~64 bytes, both modes, two processes over loopback TLS.

    python benchmarks/pir.py [--records 1000000] [--batch 10000] [--pir-batch 64] [--modes cached,pir]

``--modes ""`` measures the set-up only.

The server is ``riskshare pir serve`` in its own process; the client runs in
this process over a mutual-TLS network link. Prints one JSON document:
set-up seconds, one-query online milliseconds (median), batch seconds, bytes
each way, the PIR hint's size and its ratio to the table. A baseline measured
in the same run (ristretto255 scalar multiplications on this machine, and a
plaintext dict lookup) lets results from a busy machine be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from riskshare.crypto import oprf
from riskshare.node.home import NodeHome
from riskshare.protocols.pir import PirClient, ServerTable, prepare_table

CLI = [sys.executable, "-c", "from riskshare.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_table(n: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    reasons = np.array(["overdue loan repayment", "court enforcement record", "suspected fraud ring",
                        "abnormal large transfers", "related-party guarantee chain"])
    keys = np.char.add("9131", np.char.zfill(np.arange(n).astype(str), 14))
    level = rng.choice(np.array(["high", "medium", "low"]), n)
    reason = np.char.add(rng.choice(reasons, n), np.char.add(" #", rng.integers(0, 10**6, n).astype(str)))
    date = np.char.add("2026-", np.char.zfill(rng.integers(1, 13, n).astype(str), 2))
    source = np.char.add("notice ", np.char.zfill(rng.integers(0, 10**8, n).astype(str), 8))
    return pa.table({"uscc": keys.tolist(), "level": level.tolist(), "reason": reason.tolist(),
                     "listed_on": date.tolist(), "source": source.tolist()})


def baseline() -> dict:
    """Machine speed in this run: ristretto255 scalar multiplications on all cores, plaintext lookups."""
    key = oprf.OprfKey.generate()
    elements = oprf.blind([os.urandom(16) for _ in range(4000)]).elements
    t = time.perf_counter()
    key.blind_evaluate(elements)
    mult_us = (time.perf_counter() - t) / len(elements) * 1e6
    table = {f"9131{i:014d}": i for i in range(10**6)}
    asked = [f"9131{i:014d}" for i in range(0, 2 * 10**6, 200)]
    t = time.perf_counter()
    _ = [table.get(k) for k in asked]
    return {"scalarmult_us_all_cores": round(mult_us, 2),
            "plain_dict_lookup_10k_ms": round((time.perf_counter() - t) * 1e3, 3)}


class Server:
    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([*CLI, "pir", "serve", *args], stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 900) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.log.append(line)
            if text in line:
                return line
        raise RuntimeError("server did not start:\n" + "".join(self.log))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def traffic(link) -> tuple[int, int]:
    t = link.stats.total()
    return t["bytes_sent"], t["bytes_received"]


def measure_mode(mode: str, hq: NodeHome, sub: NodeHome, csv: Path, keys: list[str], batch: int,
                 singles: int) -> dict:
    server = Server(["--home", str(hq.path), "--table", str(csv), "--key-column", "uscc", "--peer", "sub",
                     "--mode", mode, "--max-keys-per-day", "0", "--max-queries-per-minute", "0", "--timeout", "600"])
    out: dict = {}
    try:
        started = time.monotonic()
        server.wait_for("serving 'risk'")
        out["server_start_s"] = round(time.monotonic() - started, 2)
        for line in server.log:
            m = re.search(r"hint ([\d.]+) MB \(([\d.]+) % of the ([\d.]+) MB table\), stash (\d+).*built in ([\d.]+) s",
                          line)
            if m:
                out.update(hint_mb=float(m.group(1)), hint_ratio=float(m.group(2)) / 100, table_mb=float(m.group(3)),
                           stash_records=int(m.group(4)), pir_database_build_s=float(m.group(5)))
        with sub.open_link(["hq"], timeout=600) as link:
            client = PirClient(link, "hq", mode=mode)
            t = time.perf_counter()
            s0 = traffic(link)
            client.sync()
            s1 = traffic(link)
            out["initial_download_s"] = round(time.perf_counter() - t, 3)
            out["initial_download_bytes"] = s1[1] - s0[1]
            rng = np.random.default_rng(5)
            times, sent, received, prepared = [], [], [], []
            if mode == "pir":  # a query with nothing prepared: the key-independent part overlaps the OPRF round
                t = time.perf_counter()
                client.query([keys[0]])
                out["one_query_unprepared_ms"] = round((time.perf_counter() - t) * 1e3, 1)
            for i in range(singles):
                key = keys[int(rng.integers(len(keys)))] if i % 2 == 0 else f"X{i:017d}"
                if mode == "pir":
                    t = time.perf_counter()
                    client.prepare(1)  # offline: A·s + e and H·s, before the key is known
                    prepared.append(time.perf_counter() - t)
                a = traffic(link)
                t = time.perf_counter()
                result = client.query([key])
                times.append(time.perf_counter() - t)
                b = traffic(link)
                sent.append(b[0] - a[0])
                received.append(b[1] - a[1])
                assert result.answers[0].found == (i % 2 == 0)
            out["one_query_online_ms_median"] = round(statistics.median(times) * 1e3, 1)
            out["one_query_online_ms_all"] = [round(x * 1e3, 1) for x in times]
            if prepared:
                out["one_query_offline_preparation_ms_median"] = round(statistics.median(prepared) * 1e3, 1)
            out["one_query_bytes_sent"] = int(statistics.median(sent))
            out["one_query_bytes_received"] = int(statistics.median(received))
            asked = [keys[i] for i in rng.choice(len(keys), batch // 2, replace=False)] + \
                    [f"Y{i:017d}" for i in range(batch - batch // 2)]
            if mode == "pir":
                t = time.perf_counter()
                client.prepare(len(asked))
                out[f"batch_{batch}_offline_preparation_s"] = round(time.perf_counter() - t, 3)
            a = traffic(link)
            t = time.perf_counter()
            result = client.query(asked)
            out[f"batch_{batch}_keys_s"] = round(time.perf_counter() - t, 3)
            b = traffic(link)
            out[f"batch_{batch}_bytes_sent"] = b[0] - a[0]
            out[f"batch_{batch}_bytes_received"] = b[1] - a[1]
            assert result.found == batch // 2
    finally:
        server.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--pir-batch", type=int, default=64)
    ap.add_argument("--singles", type=int, default=20)
    ap.add_argument("--modes", default="cached,pir")
    args = ap.parse_args()
    report: dict = {"records": args.records, "cores": os.cpu_count(), "baseline_before": baseline()}
    with tempfile.TemporaryDirectory(prefix="rs-pir-bench-") as tmp:
        root = Path(tmp)
        hq = NodeHome.init(root / "hq", "hq", f"127.0.0.1:{free_port()}")
        sub = NodeHome.init(root / "sub", "sub", f"127.0.0.1:{free_port()}")
        hq.add_peer("sub", sub.config["node"]["listen"], sub.cert_pem)
        sub.add_peer("hq", hq.config["node"]["listen"], hq.cert_pem)
        table = make_table(args.records)
        csv = root / "risk.csv"
        pacsv.write_csv(table, csv)
        keys_arr, values, columns = prepare_table(table, "uscc", "bench")
        lengths = pa.compute.binary_length(values).to_numpy()
        report["record_bytes_mean"] = round(float(lengths.mean()), 1)
        t = time.perf_counter()
        served = ServerTable.build("risk", keys_arr, values, columns)
        report["cached_setup_s"] = round(time.perf_counter() - t, 2)
        report["cached_setup_ratio_to_scalarmults"] = round(
            report["cached_setup_s"] / (args.records * report["baseline_before"]["scalarmult_us_all_cores"] * 1e-6), 2)
        report["table_bytes"] = int(served.size * served.published().slot_bytes)
        served.save(hq.path / "pir" / "tables" / "risk")
        keys = keys_arr.to_pylist()
        for mode in filter(None, args.modes.split(",")):
            batch = args.batch if mode == "cached" else args.pir_batch
            singles = args.singles if mode == "cached" else max(3, args.singles // 4)
            report[mode] = measure_mode(mode, NodeHome.open(hq.path), NodeHome.open(sub.path), csv, keys, batch, singles)
    report["baseline_after"] = baseline()
    report["note"] = "shared 2-core machine: compare against the baselines measured in the same run"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
