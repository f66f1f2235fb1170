import stat

from riskshare.node.home import NodeHome

from ..conftest import free_port, run_cli


def test_init_export_and_pin(tmp_path):
    bank, broker = tmp_path / "bank", tmp_path / "broker"
    r = run_cli("init", "--name", "bank", "--home", str(bank), "--listen", f"127.0.0.1:{free_port()}")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((bank / "node.key").stat().st_mode) == 0o600
    assert run_cli("init", "--name", "broker", "--home", str(broker), "--listen", f"127.0.0.1:{free_port()}").returncode == 0

    r = run_cli("identity", "--home", str(broker), "--export", str(tmp_path / "broker.pem"))
    assert r.returncode == 0
    fingerprint = NodeHome.open(broker).fingerprint
    assert fingerprint in r.stdout and len(fingerprint) == 95  # 32 bytes as AA:BB:...

    r = run_cli("peer", "add", "--home", str(bank), "--name", "broker", "--address", "127.0.0.1:7444",
                "--cert", str(tmp_path / "broker.pem"))
    assert r.returncode == 0 and fingerprint in r.stdout
    r = run_cli("peer", "list", "--home", str(bank))
    assert "broker\t127.0.0.1:7444\t" + fingerprint in r.stdout

    again = run_cli("peer", "add", "--home", str(bank), "--name", "broker", "--address", "127.0.0.1:7444",
                    "--cert", str(tmp_path / "broker.pem"))
    assert again.returncode != 0 and "already pinned" in again.stderr and "--replace" in again.stderr

    assert run_cli("peer", "remove", "--home", str(bank), "--name", "broker").returncode == 0
    assert "no peers pinned" in run_cli("peer", "list", "--home", str(bank)).stdout


def test_clear_errors(tmp_path):
    r = run_cli("identity", "--home", str(tmp_path / "nothing"))
    assert r.returncode != 0
    assert r.stderr.startswith("error: ") and "riskshare init" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("init", "--name", "bad name", "--home", str(tmp_path / "x"), "--listen", "127.0.0.1:1")
    assert r.returncode != 0 and "invalid node name" in r.stderr
    r = run_cli("init", "--name", "bank", "--home", str(tmp_path / "x"), "--listen", "localhost")
    assert r.returncode != 0 and "host:port" in r.stderr
    home = tmp_path / "bank"
    run_cli("init", "--name", "bank", "--home", str(home), "--listen", "127.0.0.1:1")
    r = run_cli("init", "--name", "bank", "--home", str(home), "--listen", "127.0.0.1:1")
    assert r.returncode != 0 and "already a riskshare home" in r.stderr
    (tmp_path / "junk.pem").write_text("not a certificate")
    r = run_cli("peer", "add", "--home", str(home), "--name", "x", "--address", "127.0.0.1:2", "--cert",
                str(tmp_path / "junk.pem"))
    assert r.returncode != 0 and "not a PEM certificate" in r.stderr
    r = run_cli("peer", "add", "--home", str(home), "--name", "self", "--address", "127.0.0.1:2", "--cert",
                str(home / "node.crt"))
    assert r.returncode != 0 and "this node's own" in r.stderr


def test_every_command_is_listed_for_lazy_loading():
    import importlib
    import pkgutil

    import riskshare.cli as cli

    for mod in pkgutil.iter_modules(cli.__path__):
        importlib.import_module(f"riskshare.cli.{mod.name}")
    assert set(cli.main.commands) == set(cli.COMMANDS)
    for name, module in cli.COMMANDS.items():
        assert cli.main.commands[name].callback.__module__ == f"riskshare.cli.{module}"
