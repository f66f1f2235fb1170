"""The network link between two real TLS endpoints on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from riskshare.errors import CertificateMismatch, PeerError, PeerUnavailable, ProtocolError
from riskshare.net import NetworkLink, framing
from riskshare.node.home import NodeHome

from ..conftest import free_port, make_homes


def open_links(homes, **kw):
    return {n: NetworkLink(h.identity, h.listen, h.peers(), **{"timeout": 10, **kw}) for n, h in homes.items()}


@pytest.fixture
def links(two_homes):
    ls = open_links(two_homes)
    yield ls
    for link in ls.values():
        link.close()


def test_round_trip_arrays_bytes_json(links):
    bank, broker = links["bank"], links["broker"]
    big = np.random.default_rng(1).integers(0, 255, size=(200_000, 32), dtype=np.uint8)
    bank.send("broker", "big", big)
    bank.send("broker", "small", b"abc")
    bank.send_json("broker", "ctl", {"n": 1})
    assert np.array_equal(broker.recv_array("bank", "big", dtype=np.uint8, shape=(None, 32)), big)
    assert broker.recv_bytes("bank", "small") == b"abc"
    assert broker.recv_json("bank", "ctl") == {"n": 1}
    broker.send("bank", "empty", np.zeros((0, 16), np.uint8))
    assert bank.recv_array("broker", "empty", dtype=np.uint8, shape=(0, 16)).shape == (0, 16)
    sent = bank.stats.by_tag()["big"]["bytes_sent"]
    assert sent == broker.stats.by_tag()["big"]["bytes_received"] > big.nbytes


def test_resend_after_dropped_connections(links):
    bank, broker = links["bank"], links["broker"]
    payloads = [np.full(50_000 * (i + 1), i, dtype=np.uint8) for i in range(30)]

    def cut_repeatedly():
        for _ in range(5):
            time.sleep(0.01)
            bank.drop_connections()
            broker.drop_connections()

    cutter = threading.Thread(target=cut_repeatedly)
    cutter.start()
    for i, p in enumerate(payloads):
        bank.send("broker", f"m{i}", p)
    cutter.join()
    for i, p in enumerate(payloads):  # each exactly once, intact, in order
        assert np.array_equal(broker.recv_array("bank", f"m{i}", dtype=np.uint8), p)
    with pytest.raises(PeerError):  # and nothing extra
        broker.recv("bank", "m0", timeout=0.3)


class CuttingProxy:
    """Forwards TCP to a target and cuts the first connection after ``cut_after`` bytes upstream."""

    def __init__(self, target_port: int, cut_after: int) -> None:
        self.port = free_port()
        self.target = target_port
        self.cut_after = cut_after
        self.cuts = 0
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            limit = self.cut_after if self.cuts == 0 else None
            if limit is not None:
                self.cuts += 1
            threading.Thread(target=self._pipe, args=(client, upstream, limit), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, None), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, limit):
        moved = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                moved += len(data)
                if limit is not None and moved > limit:
                    break
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.server.close()


def test_connection_cut_mid_message_is_resent(tmp_path):
    homes = make_homes(tmp_path, "bank", "broker")
    proxy = CuttingProxy(homes["broker"].listen[1], cut_after=3_000_000)
    bank_home = homes["bank"]
    bank_home.add_peer("broker", f"127.0.0.1:{proxy.port}", homes["broker"].cert_pem, replace=True)
    ls = open_links({"bank": bank_home, "broker": homes["broker"]})
    try:
        payload = np.arange(2_000_000, dtype=np.uint64)  # 16 MB: the cut lands inside it
        ls["bank"].send("broker", "p", payload)
        got = ls["broker"].recv_array("bank", "p", dtype=np.uint64)
        assert np.array_equal(got, payload)
        assert proxy.cuts == 1
    finally:
        for link in ls.values():
            link.close()
        proxy.close()


def test_unpinned_certificate_is_refused(tmp_path):
    homes = make_homes(tmp_path, "bank", "broker")
    stranger = NodeHome.init(tmp_path / "stranger", "bank", f"127.0.0.1:{free_port()}")
    # The stranger calls itself 'bank' and pins broker, but broker never pinned the stranger.
    stranger.add_peer("broker", homes["broker"].config["node"]["listen"], homes["broker"].cert_pem)
    broker = NetworkLink(homes["broker"].identity, homes["broker"].listen, homes["broker"].peers(), timeout=5)
    intruder = NetworkLink(stranger.identity, stranger.listen, stranger.peers(), timeout=5)
    try:
        with pytest.raises(CertificateMismatch, match="refused our certificate.*peer add"):
            intruder.send("broker", "x", b"hello")
        deadline = time.monotonic() + 5
        while not broker.refused and time.monotonic() < deadline:  # the server logs it on its own thread
            time.sleep(0.05)
        assert any("not pinned" in r for r in broker.refused), broker.refused
        with pytest.raises(PeerError):
            broker.recv("bank", "x", timeout=0.5)
    finally:
        intruder.close()
        broker.close()


def test_server_with_a_different_certificate_is_refused(tmp_path):
    homes = make_homes(tmp_path, "bank", "broker")
    impostor = NodeHome.init(tmp_path / "impostor", "broker", homes["broker"].config["node"]["listen"])
    impostor.add_peer("bank", homes["bank"].config["node"]["listen"], homes["bank"].cert_pem)
    fake = NetworkLink(impostor.identity, impostor.listen, impostor.peers(), timeout=5)
    bank = NetworkLink(homes["bank"].identity, homes["bank"].listen, homes["bank"].peers(), timeout=5)
    try:
        with pytest.raises(CertificateMismatch, match=f"presented certificate {impostor.fingerprint}.*pinned for peer 'broker'"):
            bank.send("broker", "x", b"secret")
    finally:
        bank.close()
        fake.close()


def test_peer_offline_fails_within_the_timeout(two_homes):
    bank = NetworkLink(two_homes["bank"].identity, two_homes["bank"].listen, two_homes["bank"].peers(), timeout=1.5)
    try:
        started = time.monotonic()
        with pytest.raises(PeerUnavailable, match="cannot reach peer 'broker'.*connection refused"):
            bank.send("broker", "x", b"hello")
        assert time.monotonic() - started < 5
    finally:
        bank.close()


PEER_SCRIPT = """
import sys, time
from riskshare.node.home import NodeHome
from riskshare.net import NetworkLink
home = NodeHome.open(sys.argv[1])
link = NetworkLink(home.identity, home.listen, home.peers(), timeout=10)
peer = home.peers()[0].name
link.send_json(peer, "hello", sys.argv[2])
print(link.recv_json(peer, "hello"), flush=True)
time.sleep(60)
"""


def start_peer_process(home, word):
    proc = subprocess.Popen([sys.executable, "-c", PEER_SCRIPT, str(home.path), word], stdout=subprocess.PIPE, text=True)
    return proc


def test_peer_that_dies_is_detected(two_homes):
    bank = NetworkLink(two_homes["bank"].identity, two_homes["bank"].listen, two_homes["bank"].peers(),
                       timeout=15, reconnect_window=1.0)
    proc = start_peer_process(two_homes["broker"], "one")
    try:
        assert bank.recv_json("broker", "hello") == "one"
        bank.send_json("broker", "hello", "ack")
        assert proc.stdout.readline().strip() == "ack"
        proc.kill()  # dies without a goodbye
        started = time.monotonic()
        with pytest.raises(PeerUnavailable, match="cannot reach peer 'broker'"):
            bank.recv("broker", "never", timeout=10)
        assert time.monotonic() - started < 5
    finally:
        proc.kill()
        proc.wait()
        bank.close()


def test_one_run_mode_reports_a_restarted_peer(two_homes):
    bank = NetworkLink(two_homes["bank"].identity, two_homes["bank"].listen, two_homes["bank"].peers(), timeout=15)
    first = start_peer_process(two_homes["broker"], "one")
    second = None
    try:
        assert bank.recv_json("broker", "hello") == "one"
        first.kill()
        first.wait()
        second = start_peer_process(two_homes["broker"], "two")
        with pytest.raises(PeerError, match="restarted during the run"):
            bank.recv_json("broker", "next", timeout=10)
    finally:
        for p in (first, second):
            if p:
                p.kill()
                p.wait()
        bank.close()


def test_abort_reason_reaches_the_peer(links):
    bank, broker = links["bank"], links["broker"]
    bank.send_json("broker", "hello", 1)
    assert broker.recv_json("bank", "hello") == 1
    bank.close("parameters differ: protocol ecdh here, ot there")
    with pytest.raises(PeerError, match="peer 'bank' stopped: parameters differ"):
        broker.recv("bank", "next", timeout=5)


def test_oversized_message_is_refused(two_homes):
    bank = NetworkLink(two_homes["bank"].identity, two_homes["bank"].listen, two_homes["bank"].peers(), timeout=5)
    broker = NetworkLink(two_homes["broker"].identity, two_homes["broker"].listen, two_homes["broker"].peers(),
                         timeout=5, max_message_bytes=1000)
    try:
        bank.send("broker", "big", np.zeros(5000, np.uint8))
        with pytest.raises(ProtocolError, match="malformed message.*exceeds the limit of 1000"):
            broker.recv("bank", "big", timeout=5)
    finally:
        bank.close()
        broker.close()


def test_garbage_from_a_pinned_peer_is_a_protocol_error(two_homes):
    """A pinned peer that speaks nonsense after the handshake stops the run with a clear error."""
    import ssl

    bank_home, broker_home = two_homes["bank"], two_homes["broker"]
    broker = NetworkLink(broker_home.identity, broker_home.listen, broker_home.peers(), timeout=5)
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(bank_home.cert_path, bank_home.key_path)
        with socket.create_connection(broker_home.listen) as raw, ctx.wrap_socket(raw) as tls:
            tls.sendall(framing.control_frame(framing.KIND_HELLO, 0, b"0" * 16))
            tls.recv(framing.HEADER.size)
            tls.sendall(b"NOT A FRAME HEADER AT ALL, JUST TEXT!!")
            time.sleep(0.2)
        with pytest.raises(ProtocolError, match="peer 'bank' sent a malformed message.*magic"):
            broker.recv("bank", "anything", timeout=5)
    finally:
        broker.close()


def test_server_mode_accepts_successive_client_processes(two_homes):
    hq = NetworkLink(two_homes["bank"].identity, two_homes["bank"].listen, two_homes["bank"].peers(),
                     timeout=5, peer_restarts="accept")
    try:
        for k in range(3):
            client = NetworkLink(two_homes["broker"].identity, two_homes["broker"].listen,
                                 two_homes["broker"].peers(), timeout=5)
            client.send_json("bank", f"q{k}", k)
            hq.send_json("broker", f"a{k}", hq.recv_json("broker", f"q{k}") * 10)
            assert client.recv_json("bank", f"a{k}") == k * 10
            client.close()
    finally:
        hq.close()
