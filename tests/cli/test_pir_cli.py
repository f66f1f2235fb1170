"""``riskshare pir serve`` and ``riskshare pir query`` as real processes over mutual TLS on loopback."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from riskshare.node.home import NodeHome

CLI = [sys.executable, "-c", "from riskshare.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def homes(root: Path) -> tuple[Path, Path]:
    hq = NodeHome.init(root / "hq", "hq", f"127.0.0.1:{free_port()}")
    sub = NodeHome.init(root / "sub", "sub", f"127.0.0.1:{free_port()}")
    hq.add_peer("sub", sub.config["node"]["listen"], sub.cert_pem)
    sub.add_peer("hq", hq.config["node"]["listen"], hq.cert_pem)
    return hq.path, sub.path


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


class Server:
    """``riskshare pir serve`` in the background, its stderr read line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([*CLI, "pir", "serve", *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"server never printed {text!r}; it printed: {''.join(self.seen)}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


RISK_CSV = (
    "uscc,level,reason,listed_on\n"
    "91310000MA1FL1XB2X,high,\"fraud, confirmed\",2026-01-05\n"
    "91350100M000100Y43,low,late payment,2026-02-11\n"
    "9144030071526726XG,medium,关联交易,2026-03-20\n"
)


@pytest.mark.slow
def test_serve_and_query_between_two_processes(tmp_path: Path) -> None:
    hq, sub = homes(tmp_path)
    risk = tmp_path / "risk.csv"
    risk.write_text(RISK_CSV, encoding="utf-8")
    server = Server("--home", str(hq), "--table", str(risk), "--key-column", "uscc", "--peer", "sub",
                    "--max-keys-per-day", "6", "--timeout", "20")
    try:
        server.wait_for("serving 'risk'")
        found = run("pir", "query", "--home", str(sub), "--peer", "hq", "--key", " 91310000ma1fl1xb2x")
        assert found.returncode == 0, found.stderr
        assert "91310000ma1fl1xb2x: found" in found.stdout and "reason: fraud, confirmed" in found.stdout
        assert "full update: 3 records received" in found.stderr

        missing = run("pir", "query", "--home", str(sub), "--peer", "hq", "--key", "91110000000000000X")
        assert missing.returncode == 0 and "91110000000000000X: not found" in missing.stdout

        keys = tmp_path / "keys.txt"
        keys.write_text("9144030071526726XG\n\nnope\n", encoding="utf-8")
        answers = tmp_path / "answers.csv"
        many = run("pir", "query", "--home", str(sub), "--peer", "hq", "--keys-file", str(keys), "--output", str(answers))
        assert many.returncode == 0, many.stderr
        assert answers.read_text(encoding="utf-8").splitlines() == [
            '"key","found","level","reason","listed_on"',
            '"9144030071526726XG","yes","medium","关联交易","2026-03-20"',
            '"nope","no","","",""',
        ]

        # The owner updates the table and tells the server (SIGHUP): only the change travels.
        risk.write_text(RISK_CSV.replace("late payment", "cleared"), encoding="utf-8")
        server.proc.send_signal(signal.SIGHUP)
        server.wait_for("reloaded")
        updated = run("pir", "query", "--home", str(sub), "--peer", "hq", "--key", "91350100M000100Y43")
        assert updated.returncode == 0, updated.stderr
        assert "reason: cleared" in updated.stdout and "delta update: 1 records received" in updated.stderr

        # 5 of 6 keys used: a query of two keys is refused, with a clear message and no answers file.
        refused_out = tmp_path / "refused.csv"
        refused = run("pir", "query", "--home", str(sub), "--peer", "hq", "--key", "A", "--key", "B",
                      "--output", str(refused_out))
        assert refused.returncode == 5, refused.stderr
        assert "daily quota" in refused.stderr and not refused_out.exists()

        # A cached copy modified on disk is detected before anything is answered from it.
        tags = sub / "pir-cache" / "hq" / "risk" / "ciphertexts.npy"
        arr = np.load(tags)
        arr[0, 0] ^= 1
        np.save(tags, arr)
        tampered = run("pir", "query", "--home", str(sub), "--peer", "hq", "--key", "A")
        assert tampered.returncode == 2 and "integrity check" in tampered.stderr and "--refresh" in tampered.stderr
    finally:
        assert server.stop() == 0
    log = (hq / "pir" / "queries.log").read_text(encoding="utf-8")
    assert "91310000" not in log and "nope" not in log and log.count('"outcome": "refused"') == 1


@pytest.mark.slow
def test_pir_mode_between_two_processes(tmp_path: Path) -> None:
    hq, sub = homes(tmp_path)
    risk = tmp_path / "risk.csv"
    risk.write_text(RISK_CSV, encoding="utf-8")
    server = Server("--home", str(hq), "--table", str(risk), "--key-column", "uscc", "--peer", "sub", "--mode", "pir")
    try:
        server.wait_for("serving 'risk'")
        wrong_mode = run("pir", "query", "--home", str(sub), "--peer", "hq", "--key", "A")
        assert wrong_mode.returncode == 2 and "pir mode" in wrong_mode.stderr
        found = run("pir", "query", "--home", str(sub), "--peer", "hq", "--mode", "pir",
                    "--key", "9144030071526726XG", "--key", "nope")
        assert found.returncode == 0, found.stderr
        assert "9144030071526726XG: found" in found.stdout and "nope: not found" in found.stdout
    finally:
        assert server.stop() == 0


def test_bad_input_gives_clear_errors_and_no_output(tmp_path: Path) -> None:
    hq, sub = homes(tmp_path)
    out = tmp_path / "answers.csv"
    empty_key = run("pir", "query", "--home", str(sub), "--peer", "hq", "--key", "  ", "--output", str(out))
    assert empty_key.returncode == 2 and "is empty" in empty_key.stderr
    offline = run("pir", "query", "--home", str(sub), "--peer", "hq", "--key", "A", "--output", str(out),
                  "--timeout", "2")
    assert offline.returncode == 3 and "peer 'hq'" in offline.stderr and "running" in offline.stderr
    assert not out.exists()

    table = tmp_path / "risk.csv"
    table.write_text("id,level\nA,1\n")
    missing = run("pir", "serve", "--home", str(hq), "--table", str(table), "--key-column", "uscc", "--peer", "sub")
    assert missing.returncode == 2 and "no column 'uscc'" in missing.stderr
    table.write_text("uscc,level\nA,1\nb,2\n a ,3\n")
    dup = run("pir", "serve", "--home", str(hq), "--table", str(table), "--key-column", "uscc", "--peer", "sub")
    assert dup.returncode == 2 and "A (x2)" in dup.stderr
    unknown = run("pir", "query", "--home", str(sub), "--peer", "nobody", "--key", "A")
    assert unknown.returncode == 2 and "not a pinned peer" in unknown.stderr
