"""End to end for the fast PSI family: `riskshare psi --protocol ot|auto` between two processes over mutual TLS."""

import csv
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from riskshare.node.home import NodeHome

PARTY = [sys.executable, "-c", "from riskshare.cli import main; main()"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def homes(tmp_path: Path):
    bank = NodeHome.init(tmp_path / "bank", "bank", f"127.0.0.1:{_port()}")
    broker = NodeHome.init(tmp_path / "broker", "broker", f"127.0.0.1:{_port()}")
    bank.add_peer("broker", broker.config["node"]["listen"], broker.cert_pem)
    broker.add_peer("bank", bank.config["node"]["listen"], bank.cert_pem)
    return bank.path, broker.path


def _csv(path: Path, ids: list[str]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["client_id", "amount"])
        for i, v in enumerate(ids):
            w.writerow([v, i])
    return path


def _pair(homes, tmp_path, receiver_ids, sender_ids, *extra, sender_output=False):
    bank, broker = homes
    r_csv, s_csv = _csv(tmp_path / "r.csv", receiver_ids), _csv(tmp_path / "s.csv", sender_ids)
    common = ["psi", "--id-column", "client_id", "--timeout", "60", *extra]
    sender_cmd = [*PARTY, *common, "--home", str(broker), "--peer", "bank", "--role", "sender", "--input", str(s_csv),
                  "--stats", str(tmp_path / "s.json")]
    if sender_output:
        sender_cmd += ["--output", str(tmp_path / "s-out.csv")]
    receiver_cmd = [*PARTY, *common, "--home", str(bank), "--peer", "broker", "--role", "receiver",
                    "--input", str(r_csv), "--output", str(tmp_path / "r-out.csv"), "--stats", str(tmp_path / "r.json")]
    sender = subprocess.Popen(sender_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    receiver = subprocess.run(receiver_cmd, capture_output=True, text=True, timeout=120)
    s_out, s_err = sender.communicate(timeout=120)
    return receiver, (sender.returncode, s_out, s_err)


def _ids_in(path: Path) -> list[str]:
    with path.open() as fh:
        return sorted(row["client_id"] for row in csv.DictReader(fh))


@pytest.mark.parametrize("protocol", ["ot", "auto"])
def test_ot_psi_between_two_processes(homes, tmp_path, protocol):
    receiver_ids = [f"91350100M{i:09d}" for i in range(3000)]
    sender_ids = [f"91350100m{i:09d}" for i in range(2500, 9000)]  # lower case: normalised to match
    receiver, (code, _, s_err) = _pair(homes, tmp_path, receiver_ids, sender_ids, "--protocol", protocol,
                                       "--result-to", "both", sender_output=True)
    assert receiver.returncode == 0, receiver.stderr
    assert code == 0, s_err
    expected = sorted(receiver_ids[2500:])
    assert _ids_in(tmp_path / "r-out.csv") == expected
    assert _ids_in(tmp_path / "s-out.csv") == sorted(sender_ids[:500])
    stats = json.loads((tmp_path / "r.json").read_text())
    assert stats["protocol"] == "ot" and stats["intersection"] == 500 and stats["bytes_sent"] > 0
    if protocol == "auto":
        assert "auto picked 'ot'" in receiver.stderr


def test_protocol_mismatch_between_processes_fails_clearly(homes, tmp_path):
    bank, broker = homes
    r_csv, s_csv = _csv(tmp_path / "r.csv", ["A", "B"]), _csv(tmp_path / "s.csv", ["B"])
    sender = subprocess.Popen([*PARTY, "psi", "--id-column", "client_id", "--timeout", "30", "--home", str(broker),
                               "--peer", "bank", "--role", "sender", "--input", str(s_csv), "--protocol", "ecdh"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    receiver = subprocess.run([*PARTY, "psi", "--id-column", "client_id", "--timeout", "30", "--home", str(bank),
                               "--peer", "broker", "--role", "receiver", "--input", str(r_csv), "--protocol", "ot",
                               "--output", str(tmp_path / "out.csv")], capture_output=True, text=True, timeout=60)
    _, s_err = sender.communicate(timeout=60)
    assert receiver.returncode == 4 and "protocol" in receiver.stderr
    assert sender.returncode != 0 and "protocol" in s_err
    assert not (tmp_path / "out.csv").exists()


def test_unbalanced_psi_with_a_prepared_set(homes, tmp_path):
    bank, broker = homes
    big = _csv(tmp_path / "risk.csv", [f"R{i:05d}" for i in range(2000)])
    prep = subprocess.run([*PARTY, "psi-set", "prepare", "--home", str(broker), "--name", "risklist", "--input",
                           str(big), "--id-column", "client_id"], capture_output=True, text=True, timeout=120)
    assert prep.returncode == 0, prep.stderr
    assert "2,000 IDs (2,000 added)" in prep.stdout
    assert (broker / "psi" / "sets" / "risklist" / "key.bin").stat().st_mode & 0o077 == 0
    for run in range(2):
        clients = _csv(tmp_path / "c.csv", ["r00007", "R01999", "nobody", f"R0{run}500"])
        sender = subprocess.Popen([*PARTY, "psi", "--home", str(broker), "--peer", "bank", "--role", "sender",
                                   "--protocol", "unbalanced", "--set", "risklist", "--timeout", "60"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        receiver = subprocess.run([*PARTY, "psi", "--home", str(bank), "--peer", "broker", "--role", "receiver",
                                   "--protocol", "unbalanced", "--set", "risklist", "--input", str(clients),
                                   "--id-column", "client_id", "--output", str(tmp_path / "out.csv"),
                                   "--stats", str(tmp_path / "r.json"), "--timeout", "60"],
                                  capture_output=True, text=True, timeout=120)
        _, s_err = sender.communicate(timeout=60)
        assert receiver.returncode == 0, receiver.stderr
        assert sender.returncode == 0, s_err
        assert _ids_in(tmp_path / "out.csv") == sorted(["r00007", "R01999", f"R0{run}500"])
        stats = json.loads((tmp_path / "r.json").read_text())
        # the first run downloads the set's values, the second only the (empty) difference
        assert (stats["bytes_received"] > 2000 * 12) == (run == 0)
    shown = subprocess.run([*PARTY, "psi-set", "show", "--home", str(broker)], capture_output=True, text=True)
    assert "risklist: 2,000 IDs, version 1" in shown.stdout


def test_psi_sum_between_two_processes(homes, tmp_path):
    bank, broker = homes
    borrowers = _csv(tmp_path / "borrowers.csv", [f"B{i:03d}" for i in range(40)])
    buys = tmp_path / "buys.csv"
    with buys.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["client_id", "amount"])
        rows = [(f"b{i:03d}", f"{i}.25") for i in range(30, 60)] + [("B035", "100.50")]  # a second purchase
        w.writerows(rows)
    expected = sum(i + 0.25 for i in range(30, 40)) + 100.50
    sender = subprocess.Popen([*PARTY, "psi", "--home", str(broker), "--peer", "bank", "--role", "sender",
                               "--input", str(buys), "--id-column", "client_id", "--output-mode", "sum",
                               "--value-column", "amount", "--timeout", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    receiver = subprocess.run([*PARTY, "psi", "--home", str(bank), "--peer", "broker", "--role", "receiver",
                               "--input", str(borrowers), "--id-column", "client_id", "--output-mode", "sum",
                               "--protocol", "auto", "--timeout", "60"], capture_output=True, text=True, timeout=120)
    s_out, s_err = sender.communicate(timeout=60)
    # the sender left --protocol at its default (ecdh), the receiver asked for auto: both stop, clearly
    assert receiver.returncode == 4 and "protocol" in receiver.stderr
    assert sender.returncode != 0 and "protocol" in s_err
    sender = subprocess.Popen([*PARTY, "psi", "--home", str(broker), "--peer", "bank", "--role", "sender",
                               "--input", str(buys), "--id-column", "client_id", "--output-mode", "sum",
                               "--value-column", "amount", "--protocol", "auto", "--timeout", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    receiver = subprocess.run([*PARTY, "psi", "--home", str(bank), "--peer", "broker", "--role", "receiver",
                               "--input", str(borrowers), "--id-column", "client_id", "--output-mode", "sum",
                               "--protocol", "auto", "--timeout", "60"], capture_output=True, text=True, timeout=120)
    s_out, s_err = sender.communicate(timeout=60)
    assert receiver.returncode == 0 and sender.returncode == 0, receiver.stderr + s_err
    assert f"intersection size: 10, sum of the peer's values over it: {expected:,.2f}" in receiver.stdout
    assert "sum" not in s_out and "10" not in s_out  # the sender learns neither
