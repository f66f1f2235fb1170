"""Node service benchmarks: job overhead, status-read throughput during a job, link throughput on the node port.

    python benchmarks/node.py [--ids 20000] [--jobs 5] [--big-ids 300000] [--seconds 6] [--mb 100]

Prints one JSON document. Everything runs on loopback on this machine: two node
processes (bank, broker), SQLite stores, real TLS.

* ``job_overhead``: submit → succeeded as the analyst's SDK sees it, minus the
  PSI protocol step's own time (measured inside the step); also the same PSI run
  directly between two `riskshare psi` processes, as the baseline a node adds to.
* ``status_reads``: while a large PSI job runs, client processes poll
  ``GET /api/v1/jobs/{id}`` with keep-alive as fast as they can; achieved
  requests per second and latency percentiles.
* ``link_throughput``: one large array over the node's link (routed by ALPN on
  the node's HTTPS port) against two stand-alone links (their own listener).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from riskshare.client import Client  # noqa: E402
from riskshare.node import grants, registry, users  # noqa: E402
from riskshare.node.context import NodeContext  # noqa: E402
from riskshare.node.home import NodeHome  # noqa: E402
from riskshare.node.service import NodeProcess, NodeService  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_ids(path: Path, column: str, start: int, stop: int) -> Path:
    ids = np.char.add("C", np.char.zfill(np.arange(start, stop).astype(str), 10))
    with open(path, "w") as fh:
        fh.write(f"{column},score\n")
        fh.write("\n".join(f"{i},1" for i in ids.tolist()))
        fh.write("\n")
    return path


def setup(root: Path, n: int, n_big: int) -> dict[str, str]:
    bank = NodeHome.init(root / "bank", "bank", f"127.0.0.1:{free_port()}")
    broker = NodeHome.init(root / "broker", "broker", f"127.0.0.1:{free_port()}")
    bank.add_peer("broker", broker.config["node"]["listen"], broker.cert_pem)
    broker.add_peer("bank", bank.config["node"]["listen"], bank.cert_pem)
    write_ids(root / "bank.csv", "uscc", 0, n)
    write_ids(root / "broker.csv", "id", n // 2, n + n // 2)
    write_ids(root / "bank_big.csv", "uscc", 0, n_big)
    write_ids(root / "broker_big.csv", "id", n_big // 2, n_big + n_big // 2)
    tokens = {}
    for name, peer, col in (("bank", "broker", "uscc"), ("broker", "bank", "id")):
        ctx = NodeContext.open(root / name)
        with ctx.db.session() as s:
            _, tokens[name] = users.add_user(ctx, s, "local:bench", "bench", "analyst")
            for suffix in ("", "_big"):
                table = f"t{suffix}"
                registry.add_table(ctx, s, "local:bench", name=table, path=str(root / f"{name}{suffix}.csv"),
                                   id_column=col)
                grants.add_grant(ctx, s, "local:bench", table=table, peer=peer, ops=["psi"], purpose="benchmark",
                                 expires="2099-01-01")
        ctx.close()
    return tokens


def job_overhead(root: Path, tokens: dict[str, str], jobs: int) -> dict:
    results = []
    with Client.for_home(root / "bank", tokens["bank"]) as analyst:
        for _ in range(jobs + 1):
            started = time.perf_counter()
            job = analyst.psi(peer="broker", table="t", peer_table="t")
            done = analyst.wait(job["id"], timeout=300, interval=0.01)
            total = time.perf_counter() - started
            assert done["state"] == "succeeded", done
            steps = {s["id"]: s for s in done["steps"]}
            psi_seconds = steps["psi"]["summary"]["seconds"]
            step_seconds = {k: _seconds(v) for k, v in steps.items()}
            results.append({"total_s": round(total, 3), "psi_protocol_s": psi_seconds,
                            "read_s": round(step_seconds["read"], 3), "write_s": round(step_seconds["write"], 3),
                            "overhead_s": round(total - psi_seconds, 3),
                            "overhead_excluding_read_write_s": round(
                                total - psi_seconds - step_seconds["read"] - step_seconds["write"], 3)})
    results = results[1:]  # the first job warms connections and caches
    return {
        "runs": results,
        "median_total_s": statistics.median(r["total_s"] for r in results),
        "median_psi_protocol_s": statistics.median(r["psi_protocol_s"] for r in results),
        "median_overhead_s": statistics.median(r["overhead_s"] for r in results),
        "median_overhead_excluding_read_write_s": statistics.median(
            r["overhead_excluding_read_write_s"] for r in results),
        "target_overhead_s": 1.0,
    }


def _seconds(step: dict) -> float:
    import datetime as dt

    if not step["started_at"] or not step["finished_at"]:
        return 0.0
    return (dt.datetime.fromisoformat(step["finished_at"]) - dt.datetime.fromisoformat(step["started_at"])).total_seconds()


def direct_cli_baseline(root: Path) -> float:
    """The same PSI, run directly between two `riskshare psi` processes (no node)."""
    cli = [sys.executable, "-m", "riskshare", "psi"]
    started = time.perf_counter()
    sender = subprocess.Popen(cli + ["--home", str(root / "broker"), "--peer", "bank", "--role", "sender",
                                     "--input", str(root / "broker.csv"), "--id-column", "id"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    receiver = subprocess.run(cli + ["--home", str(root / "bank"), "--peer", "broker", "--role", "receiver",
                                     "--input", str(root / "bank.csv"), "--id-column", "uscc",
                                     "--output", str(root / "direct.csv")], capture_output=True)
    sender.wait()
    assert receiver.returncode == 0, receiver.stderr.decode()
    return time.perf_counter() - started


def _poller(url: str, cert: bytes, token: str, job_id: str, seconds: float, out: "mp.Queue") -> None:
    with Client(url, token, cert=cert) as c:
        latencies = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            c.job(job_id)
            latencies.append(time.perf_counter() - t)
    out.put(latencies)


def status_reads(root: Path, tokens: dict[str, str], seconds: float, clients: int) -> dict:
    with Client.for_home(root / "bank", tokens["bank"]) as analyst:
        job = analyst.psi(peer="broker", table="t_big", peer_table="t_big")
        analyst.wait(job["id"], states=["running"], timeout=60, interval=0.05)
        home = NodeHome.open(root / "bank")
        url = analyst.url
        queue: mp.Queue = mp.Queue()
        procs = [mp.Process(target=_poller, args=(url, home.cert_pem, tokens["bank"], job["id"], seconds, queue))
                 for _ in range(clients)]
        for p in procs:
            p.start()
        latencies = [x for _ in procs for x in queue.get()]
        for p in procs:
            p.join()
        during = analyst.job(job["id"])
        done = analyst.wait(job["id"], timeout=600, interval=0.5)
    latencies.sort()
    return {
        "client_processes": clients, "seconds": seconds, "requests": len(latencies),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "latency_ms_p50": round(1000 * latencies[len(latencies) // 2], 2),
        "latency_ms_p99": round(1000 * latencies[int(len(latencies) * 0.99)], 2),
        "job_state_after_polling": during["state"], "job_final_state": done["state"],
        "job_psi_seconds": next(s for s in done["steps"] if s["id"] == "psi")["summary"].get("seconds"),
        "target_requests_per_s": 200,
    }


def link_throughput(mb: int, rounds: int = 5) -> dict:
    """The same array over stand-alone links and over node links, alternating, ``rounds`` times each."""
    payload = np.random.default_rng(0).integers(0, 2**63, size=mb * 2**20 // 8, dtype=np.uint64)
    times: dict[str, list[float]] = {"standalone": [], "node_port": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        homes = {}
        for pair in ("s", "n"):
            a = NodeHome.init(root / f"{pair}a", "a", f"127.0.0.1:{free_port()}")
            b = NodeHome.init(root / f"{pair}b", "b", f"127.0.0.1:{free_port()}")
            a.add_peer("b", b.config["node"]["listen"], b.cert_pem)
            b.add_peer("a", a.config["node"]["listen"], a.cert_pem)
            homes[pair] = (a, b)
        # stand-alone links: each its own listener (what `riskshare psi` uses);
        # node links: connections routed by ALPN on the nodes' HTTPS port
        with homes["s"][0].open_link(["b"], timeout=120) as la, homes["s"][1].open_link(["a"], timeout=120) as lb, \
                NodeService(homes["n"][0].path) as na, NodeService(homes["n"][1].path) as nb:
            for i in range(rounds):
                times["standalone"].append(_transfer(la, lb, payload, f"s{i}"))
                times["node_port"].append(_transfer(na.link, nb.link, payload, f"n{i}"))
    out: dict = {"megabytes": round(payload.nbytes / 1e6, 1), "rounds": rounds}
    for mode, values in times.items():
        out[f"{mode}_s_min"] = round(min(values), 3)
        out[f"{mode}_s_median"] = round(statistics.median(values), 3)
        out[f"{mode}_MB_per_s_best"] = round(payload.nbytes / 1e6 / min(values), 1)
    out["node_over_standalone_median_ratio"] = round(out["node_port_s_median"] / out["standalone_s_median"], 3)
    return out


def _transfer(la, lb, payload: np.ndarray, tag: str) -> float:
    started = time.perf_counter()
    la.send("b", f"bulk/{tag}", payload)
    got = lb.recv_array("a", f"bulk/{tag}", dtype=np.uint64, shape=(None,))
    elapsed = time.perf_counter() - started
    assert got.shape == payload.shape
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=20_000, help="IDs per side for the overhead jobs")
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--big-ids", type=int, default=300_000, help="IDs per side for the job polled during reads")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--clients", type=int, default=4, help="polling client processes")
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    report: dict = {"machine": {"cpus": os.cpu_count(), "note": "shared machine; loopback; SQLite stores"},
                    "params": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tokens = setup(root, args.ids, args.big_ids)
        env = {"RISKSHARE_FAULT_STEP_DELAY": ""}
        procs = [NodeProcess(root / n, env=env).start() for n in ("bank", "broker")]
        try:
            report["job_overhead"] = job_overhead(root, tokens, args.jobs)
            report["status_reads"] = status_reads(root, tokens, args.seconds, args.clients)
        finally:
            for p in procs:
                p.stop()
        report["direct_cli_psi_s"] = round(direct_cli_baseline(root), 3)
        report["job_overhead"]["node_total_over_direct_cli_ratio"] = round(
            report["job_overhead"]["median_total_s"] / report["direct_cli_psi_s"], 3)
    report["link_throughput"] = link_throughput(args.mb)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
