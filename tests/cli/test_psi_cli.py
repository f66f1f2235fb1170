"""`riskshare psi` between two real processes over mutual TLS on loopback."""

from __future__ import annotations

import csv
import subprocess
import time
from pathlib import Path

import pytest

from riskshare.data import uscc
from riskshare.node.home import NodeHome

from ..conftest import make_homes, riskshare_cmd, run_cli, wait_listening


def codes(n, start=0):
    return [uscc.complete(f"9131{i:013d}") for i in range(start, start + n)]


def write_csv(path: Path, header, rows, encoding="utf-8", delimiter=","):
    with open(path, "w", newline="", encoding=encoding) as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)


def start(home: NodeHome, *args: str) -> subprocess.Popen:
    return subprocess.Popen(riskshare_cmd("psi", "--home", str(home.path), *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@pytest.fixture
def files(tmp_path):
    bank_rows = [(c, f"Client {i}, Ltd.", str(i)) for i, c in enumerate(codes(300))]
    bank_rows.append(("not-a-code", "Broken", "0"))
    write_csv(tmp_path / "clients.csv", ["uscc", "name", "amount"], bank_rows)
    broker_rows = [(c.lower(), "高风险") for c in codes(200, start=200)]  # other case, GBK, semicolons
    write_csv(tmp_path / "broker.csv", ["统一社会信用代码", "原因"], broker_rows, encoding="gbk", delimiter=";")
    return tmp_path


def test_two_processes_find_the_intersection(two_homes, files):
    bank, broker = two_homes["bank"], two_homes["broker"]
    out = files / "shared.csv"
    sender = start(broker, "--peer", "bank", "--role", "sender", "--input", str(files / "broker.csv"),
                   "--id-column", "统一社会信用代码", "--id-type", "uscc", "--timeout", "60")
    receiver = start(bank, "--peer", "broker", "--role", "receiver", "--input", str(files / "clients.csv"),
                     "--id-column", "uscc", "--id-type", "uscc", "--output", str(out), "--timeout", "60")
    rc_r, out_r, err_r = finish(receiver)
    rc_s, out_s, err_s = finish(sender)
    assert rc_r == 0, err_r
    assert rc_s == 0, err_s
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["uscc"] for r in rows] == codes(100, start=200)
    assert rows[0]["name"] == "Client 200, Ltd." and rows[0]["amount"] == "200"  # all columns, as written
    assert "intersection: 100 of your 300" in out_r
    assert "1 invalid IDs" in err_r and (files / "shared.rejects.csv").exists()
    assert "not-a-code" in (files / "shared.rejects.csv").read_text()
    assert "this side learns only its size" in out_s and "300 IDs" in out_s
    assert not list(files.glob(".*part"))


def test_result_to_both_and_count_mode(two_homes, files):
    bank, broker = two_homes["bank"], two_homes["broker"]
    common = ["--timeout", "60", "--id-type", "uscc"]
    sender = start(broker, "--peer", "bank", "--role", "sender", "--input", str(files / "broker.csv"),
                   "--id-column", "统一社会信用代码", "--result-to", "both", "--output", str(files / "b.csv"), *common)
    receiver = start(bank, "--peer", "broker", "--role", "receiver", "--input", str(files / "clients.csv"),
                     "--id-column", "uscc", "--result-to", "both", "--output", str(files / "a.csv"), *common)
    assert finish(receiver)[0] == 0 and finish(sender)[0] == 0
    assert len((files / "b.csv").read_text().splitlines()) == 101

    sender = start(broker, "--peer", "bank", "--role", "sender", "--input", str(files / "broker.csv"),
                   "--id-column", "统一社会信用代码", "--output-mode", "count", *common)
    receiver = start(bank, "--peer", "broker", "--role", "receiver", "--input", str(files / "clients.csv"),
                     "--id-column", "uscc", "--output-mode", "count", *common)
    rc_r, out_r, err_r = finish(receiver)
    rc_s, out_s, err_s = finish(sender)
    assert rc_r == rc_s == 0, (err_r, err_s)
    assert "intersection size: 100" in out_r and "intersection size: 100" in out_s


def assert_one_line_error(rc, err, *fragments):
    assert rc != 0
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.mark.parametrize(
    "setup, args, fragments",
    [
        (None, ["--input", "missing.csv", "--id-column", "uscc"], ["does not exist"]),
        ("clients", ["--input", "clients.csv", "--id-column", "client_id"], ["no column 'client_id'", "uscc"]),
        ("header_only", ["--input", "empty.csv", "--id-column", "uscc"], ["no usable IDs"]),
        ("binary", ["--input", "junk.csv", "--id-column", "uscc"], ["neither UTF-8 nor GBK"]),
    ],
)
def test_bad_input_is_one_clear_line_and_no_output(two_homes, files, setup, args, fragments):
    if setup == "header_only":
        (files / "empty.csv").write_text("uscc,name\n")
    if setup == "binary":
        (files / "junk.csv").write_bytes(b"uscc\n\xff\xfe\x00\x81\x81\xff\xff\n")
    args = [a if not a.endswith(".csv") else str(files / a) for a in args]
    r = run_cli("psi", "--home", str(two_homes["bank"].path), "--peer", "broker", "--role", "receiver",
                "--output", str(files / "out.csv"), "--timeout", "5", *args)
    assert_one_line_error(r.returncode, r.stderr, *fragments)
    assert not (files / "out.csv").exists()


def test_peer_offline(two_homes, files):
    started = time.monotonic()
    r = run_cli("psi", "--home", str(two_homes["bank"].path), "--peer", "broker", "--role", "receiver",
                "--input", str(files / "clients.csv"), "--id-column", "uscc", "--output", str(files / "out.csv"),
                "--timeout", "3")
    assert_one_line_error(r.returncode, r.stderr, "cannot reach peer 'broker'")
    assert time.monotonic() - started < 30
    assert not (files / "out.csv").exists()


def test_unknown_peer_name(two_homes, files):
    r = run_cli("psi", "--home", str(two_homes["bank"].path), "--peer", "hq", "--role", "receiver",
                "--input", str(files / "clients.csv"), "--id-column", "uscc", "--output", str(files / "o.csv"))
    assert_one_line_error(r.returncode, r.stderr, "'hq' is not a pinned peer", "riskshare peer add")


def test_wrong_certificate_is_refused(tmp_path, files):
    homes = make_homes(tmp_path / "nodes", "bank", "broker")
    impostor = NodeHome.init(tmp_path / "impostor", "broker", homes["broker"].config["node"]["listen"])
    impostor.add_peer("bank", homes["bank"].config["node"]["listen"], homes["bank"].cert_pem)
    fake = start(impostor, "--peer", "bank", "--role", "sender", "--input", str(files / "broker.csv"),
                 "--id-column", "统一社会信用代码", "--timeout", "30")
    try:
        wait_listening(impostor.listen[1])
        r = run_cli("psi", "--home", str(homes["bank"].path), "--peer", "broker", "--role", "receiver",
                    "--input", str(files / "clients.csv"), "--id-column", "uscc", "--output", str(files / "o.csv"),
                    "--timeout", "10")
        assert_one_line_error(r.returncode, r.stderr, "not the certificate pinned for peer 'broker'")
        assert not (files / "o.csv").exists()
    finally:
        fake.kill()
        fake.wait()


def test_peer_that_dies_mid_run_gives_a_clear_error(two_homes, tmp_path):
    big = codes(60_000)
    write_csv(tmp_path / "a.csv", ["uscc"], [(c,) for c in big])
    write_csv(tmp_path / "b.csv", ["uscc"], [(c,) for c in big[::2]])
    sender = start(two_homes["broker"], "--peer", "bank", "--role", "sender", "--input", str(tmp_path / "b.csv"),
                   "--id-column", "uscc", "--timeout", "20")
    receiver = start(two_homes["bank"], "--peer", "broker", "--role", "receiver", "--input", str(tmp_path / "a.csv"),
                     "--id-column", "uscc", "--output", str(tmp_path / "out.csv"), "--timeout", "20")
    time.sleep(2.5)  # both are busy exponentiating
    sender.kill()
    started = time.monotonic()
    rc, _, err = finish(receiver, timeout=90)
    sender.wait()
    assert_one_line_error(rc, err, "broker")
    assert time.monotonic() - started < 60
    assert not (tmp_path / "out.csv").exists()
