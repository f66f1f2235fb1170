"""TLS 1.3 contexts with mutual authentication against pinned certificates.

There is no certificate authority: each node's self-signed certificate is its
own trust anchor, and a node trusts exactly the certificates its operator
pinned with ``riskshare peer add``. After the handshake the peer's certificate
fingerprint is compared with the pinned one as well, so a certificate that
OpenSSL would accept for any reason other than pinning is still refused.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from .certs import fingerprint_der

# ALPN protocol name of link connections. A node serves its REST API and the link on one
# port and routes each incoming connection by the ALPN protocol its client offers.
LINK_ALPN = "riskshare-link/1"


@dataclass(frozen=True)
class TlsIdentity:
    """This node's certificate and private key, as files (what OpenSSL loads)."""

    name: str
    cert_path: Path
    key_path: Path

    @property
    def cert_pem(self) -> bytes:
        return Path(self.cert_path).read_bytes()


@dataclass(frozen=True)
class PinnedPeer:
    name: str
    host: str
    port: int
    cert_pem: bytes
    fingerprint: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _base(purpose: int, identity: TlsIdentity) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if purpose == ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(identity.cert_path), str(identity.key_path))
    return ctx


def server_context(identity: TlsIdentity, peers: list[PinnedPeer], *, require_client_cert: bool = True) -> ssl.SSLContext:
    """Context for the listening side: only pinned peers' certificates verify."""
    ctx = _base(ssl.Purpose.CLIENT_AUTH, identity)
    if peers:
        ctx.load_verify_locations(cadata="".join(p.cert_pem.decode() for p in peers))
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols([LINK_ALPN])
    return ctx


def client_context(identity: TlsIdentity, peer: PinnedPeer) -> ssl.SSLContext:
    """Context for connecting to one pinned peer, presenting our own certificate."""
    ctx = _base(ssl.Purpose.SERVER_AUTH, identity)
    ctx.check_hostname = False  # identity is the pinned certificate, not a DNS name
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=peer.cert_pem.decode())
    ctx.set_alpn_protocols([LINK_ALPN])  # ignored by a plain link listener, routes us to the link on a node
    return ctx


def peer_fingerprint(sock: ssl.SSLSocket) -> str | None:
    der = sock.getpeercert(binary_form=True)
    return fingerprint_der(der) if der else None


def presented_fingerprint(host: str, port: int, timeout: float = 5.0) -> str | None:
    """Fetch the certificate a server presents without trusting it, to explain a mismatch."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw) as tls:
                return peer_fingerprint(tls)
    except (OSError, ssl.SSLError):
        return None
