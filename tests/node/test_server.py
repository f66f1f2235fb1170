"""The node's one port: HTTPS API, peer endpoint with pinned certificates, link by ALPN; roles."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from riskshare.client import Client, pinned_context
from riskshare.net.certs import generate_identity
from riskshare.net.tls import LINK_ALPN
from riskshare.node.server import offered_alpn
from riskshare.node.service import NodeService

from .conftest import Pair, make_pair


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    return make_pair(tmp_path, range(0, 50), range(25, 75))


@pytest.fixture
def bank_node(pair: Pair) -> Iterator[NodeService]:
    with NodeService(pair.home("bank")) as node:
        yield node


def _client_hello(alpn: list[str] | None) -> bytes:
    """A real ClientHello, captured from OpenSSL through a memory BIO."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_alpn_is_read_from_a_real_client_hello() -> None:
    assert offered_alpn(_client_hello([LINK_ALPN])) == [LINK_ALPN.encode()]
    assert offered_alpn(_client_hello(["h2", "http/1.1"])) == [b"h2", b"http/1.1"]
    assert offered_alpn(_client_hello(None)) == []
    assert offered_alpn(b"GET / HTTP/1.1\r\n\r\n") is None
    assert offered_alpn(b"\x16\x03\x01\x00\x10\x01\x00") is None  # truncated: not a hello we can read


def test_health_metrics_and_openapi(bank_node: NodeService, pair: Pair) -> None:
    ctx = pinned_context(pair.bank.cert_pem)
    with httpx.Client(base_url=bank_node.url, verify=ctx) as http:
        assert http.get("/healthz").json()["node"] == "bank"
        schema = http.get("/api/v1/openapi.json").json()
        assert "/api/v1/jobs" in schema["paths"] and not any(p.startswith("/peer") for p in schema["paths"])
        assert http.get("/api/v1/jobs").status_code == 401
        metrics = http.get("/metrics").text
        assert "riskshare_http_requests_total" in metrics and "riskshare_audit_records" in metrics


def test_tls_is_pinned_and_1_3(bank_node: NodeService, pair: Pair, tmp_path: Path) -> None:
    host, port = bank_node.server.address
    with socket.create_connection((host, port)) as raw:
        with pinned_context(pair.bank.cert_pem).wrap_socket(raw) as tls:
            assert tls.version() == "TLSv1.3"
    # a client pinning another certificate refuses this node
    _, other_cert = generate_identity("impostor", ["127.0.0.1"])
    with pytest.raises(httpx.ConnectError):
        httpx.get(bank_node.url + "/healthz", verify=pinned_context(other_cert))


def _peer_client(cert_pem: bytes, key_pem: bytes | None, tmp_path: Path, server_cert: bytes) -> httpx.Client:
    ctx = pinned_context(server_cert)
    if key_pem is not None:
        (tmp_path / "c.pem").write_bytes(cert_pem)
        (tmp_path / "k.pem").write_bytes(key_pem)
        ctx.load_cert_chain(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    return httpx.Client(verify=ctx, timeout=5)


def test_peer_endpoint_needs_a_pinned_certificate(bank_node: NodeService, pair: Pair, tmp_path: Path) -> None:
    url = bank_node.url + "/peer/v1/hello"
    # no client certificate: the API port is open to it, the peer endpoint is not
    with _peer_client(b"", None, tmp_path, pair.bank.cert_pem) as http:
        response = http.get(url)
        assert response.status_code == 403 and "pinned peer" in response.json()["detail"]
    # an unknown certificate: refused during the TLS handshake
    key, cert = generate_identity("mallory", ["127.0.0.1"])
    with _peer_client(cert, key, tmp_path, pair.bank.cert_pem) as http:
        with pytest.raises(httpx.HTTPError):
            http.get(url)
    deadline = time.monotonic() + 5  # the server records the refusal just after the client sees it
    while not any("not pinned" in r for r in bank_node.server.refused):
        assert time.monotonic() < deadline, bank_node.server.refused
        time.sleep(0.05)
    # the pinned broker: accepted, and named by its certificate
    with _peer_client(pair.broker.cert_pem, pair.broker.key_path.read_bytes(), tmp_path, pair.bank.cert_pem) as http:
        assert http.get(url).json() == {"node": "bank", "you": "broker"}


# (permission, method, path, body) for every kind of action a role may or may not take
ACTIONS = {
    "read tables": ("GET", "/tables", None),
    "add table": ("POST", "/tables", {"name": "t2", "path": "PATH", "id_column": "uscc"}),
    "read grants": ("GET", "/grants", None),
    "add grant": ("POST", "/grants", {"table": "risk_clients", "peer": "broker", "ops": ["psi"],
                                      "purpose": "x", "expires": "2099-01-01"}),
    "read approvals": ("GET", "/approvals", None),
    "approve": ("POST", "/approvals/1/approve", {}),
    "read jobs": ("GET", "/jobs", None),
    "submit job": ("POST", "/jobs", {"peer": "broker", "table": "risk_clients", "peer_table": "broker_risk",
                                     "purpose": "x", "steps": [{"id": "psi", "op": "psi"}]}),
    "read audit": ("GET", "/audit", None),
    "verify audit": ("GET", "/audit/verify", None),
    "read users": ("GET", "/users", None),
    "add user": ("POST", "/users", {"name": "newbie", "role": "analyst"}),
    "add peer": ("POST", "/peers", {"name": "sub", "address": "127.0.0.1:1", "cert_pem": "x"}),
    "download artifact": ("GET", "/artifacts/1", None),
    "schedule": ("POST", "/schedules/1/run", None),
}
ALLOWED = {
    "admin": {"read tables", "read grants", "read jobs", "read users", "add user", "add peer"},
    "data_owner": {"read tables", "add table", "read grants", "add grant", "read approvals", "approve", "read jobs"},
    "analyst": {"read tables", "read jobs", "submit job", "download artifact", "schedule"},
    "auditor": {"read tables", "read grants", "read approvals", "read jobs", "read audit", "verify audit",
                "read users"},
}


def test_each_role_can_do_exactly_what_it_should(bank_node: NodeService, pair: Pair) -> None:
    for role, allowed in ALLOWED.items():
        with Client(bank_node.url, pair.tokens["bank"][role], cert=pair.bank.cert_pem) as client:
            for action, (method, path, body) in ACTIONS.items():
                if body and body.get("path") == "PATH":
                    body = {**body, "path": str(pair.root / "clients.csv")}
                response = client._http.request(method, path, json=body)
                if action in allowed:
                    assert response.status_code not in (401, 403), (role, action, response.text)
                else:
                    assert response.status_code == 403, (role, action, response.status_code, response.text)
    # the auditor changed nothing; the refusals above left no trace but their audit of real changes
    with Client(bank_node.url, pair.tokens["bank"]["auditor"], cert=pair.bank.cert_pem) as auditor:
        actions = {r["action"] for r in auditor.audit(limit=1000)}
        assert "table.add" in actions and "grant.add" in actions


def test_login_with_password_is_audited(bank_node: NodeService, pair: Pair) -> None:
    with Client(bank_node.url, pair.tokens["bank"]["admin"], cert=pair.bank.cert_pem) as admin:
        admin.add_user("zhao", "auditor", password="a long passphrase")
    with Client(bank_node.url, cert=pair.bank.cert_pem) as anon:
        with pytest.raises(Exception, match="wrong user name or password"):
            anon.login("zhao", "nope nope nope")
        anon.login("zhao", "a long passphrase")
        assert anon.me()["role"] == "auditor"
        actions = [r["action"] for r in anon.audit(action="auth.*")]
        assert actions == ["auth.login_failed", "auth.login"]


def test_sdk_pins_by_fingerprint(bank_node: NodeService, pair: Pair) -> None:
    with Client(bank_node.url, pair.tokens["bank"]["analyst"], fingerprint=pair.bank.fingerprint) as client:
        assert client.me()["name"] == "analyst1"
    with pytest.raises(Exception, match="not the expected"):
        Client(bank_node.url, "x", fingerprint=pair.broker.fingerprint)


def test_unreachable_peer_fails_the_job_naming_the_step(pair: Pair) -> None:
    from .conftest import add_grant

    add_grant(pair, "bank")
    with NodeService(pair.home("bank"), peer_deadline=1.5) as bank:  # the broker's node is not running
        with Client(bank.url, pair.tokens["bank"]["analyst"], cert=pair.bank.cert_pem) as analyst:
            job = analyst.psi(peer="broker", table="risk_clients", peer_table="broker_risk")
            done = analyst.wait(job["id"], timeout=30)
    assert done["state"] == "failed"
    assert "step 'propose'" in done["error"] and "cannot reach peer 'broker'" in done["error"]
