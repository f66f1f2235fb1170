"""Node keys and self-signed certificates (Ed25519, X.509 via OpenSSL).

A node is identified by its certificate. There is no public CA: operators pin
each other's certificates and confirm the SHA-256 fingerprint out of band
(by phone), exactly as they would an SSH host key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from ..errors import ConfigError

CERT_VALIDITY_DAYS = 3650


def generate_identity(name: str, hosts: list[str]) -> tuple[bytes, bytes]:
    """Return (private key PEM, self-signed certificate PEM) for node ``name``."""
    key = ed25519.Ed25519PrivateKey.generate()
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "riskshare node"),
    ])
    alt_names: list[x509.GeneralName] = [x509.DNSName(name), x509.DNSName("localhost")]
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if host and host != name:
                alt_names.append(x509.DNSName(host))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_VALIDITY_DAYS))
        # Self-signed and pinned: it is its own trust anchor, so it is marked as a CA
        # that may sign only itself (path length 0).
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, None)
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def load_certificate(pem: bytes, source: str = "certificate") -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ConfigError(f"{source} is not a PEM certificate", hint="export it with `riskshare identity --export`") from None


def fingerprint_der(der: bytes) -> str:
    """SHA-256 of the DER certificate, as colon-separated upper-case hex (what operators read aloud)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def fingerprint_pem(pem: bytes, source: str = "certificate") -> str:
    cert = load_certificate(pem, source)
    return fingerprint_der(cert.public_bytes(serialization.Encoding.DER))


def common_name(pem: bytes) -> str:
    cert = load_certificate(pem)
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def load_private_key(pem: bytes) -> ed25519.Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError("the node key is not an Ed25519 key")
    return key


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


__all__ = [
    "generate_identity", "load_certificate", "fingerprint_der", "fingerprint_pem", "common_name",
    "load_private_key", "sha256_hex",
]
