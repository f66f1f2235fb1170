"""The Python SDK: ``riskshare.Client(url, token)`` talks to a node's ``/api/v1``.

>>> client = Client.for_home("./bank", token=token)       # address and certificate from the home
>>> job = client.psi(peer="broker", table="risk_clients", peer_table="broker_risk")
>>> client.wait(job["id"])["state"]
'succeeded'

The node's certificate is self-signed, so the client *pins* it: pass the
certificate (``cert=`` a PEM path or bytes; ``for_home`` reads it from the
home) or its SHA-256 ``fingerprint=`` as ``riskshare identity`` prints it.
Verification is never switched off.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlparse

import httpx

from .errors import AuthorizationError, ConfigError, InputError, PeerUnavailable

TOKEN_ENV = "RISKSHARE_TOKEN"
TERMINAL = ("succeeded", "failed", "cancelled", "denied", "refused")


class ApiError(InputError):
    """The node refused the request (4xx, or 5xx for its own failures); ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
        self.exit_code = {401: 5, 403: 5, 404: 2, 409: 2, 422: 2}.get(status, 1)


def pinned_context(cert_pem: bytes) -> ssl.SSLContext:
    """Trust exactly this certificate (TLS 1.3; the pinned certificate is the identity, not a host name)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=cert_pem.decode())
    return ctx


def fetch_certificate(url: str, fingerprint: str, timeout: float = 10.0) -> bytes:
    """Get the node's certificate and keep it only if its fingerprint is the expected one."""
    from .net.certs import fingerprint_der

    parsed = urlparse(url)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE  # only to read the certificate; it is checked against the fingerprint below
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout) as raw:
            with probe.wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise PeerUnavailable(f"cannot reach the node at {url}: {exc}") from None
    want = fingerprint.strip().upper().replace(" ", "")
    got = fingerprint_der(der)
    if got.replace(":", "") != want.replace(":", ""):
        raise ConfigError(f"the node at {url} presented certificate {got}, not the expected {fingerprint}",
                          hint="confirm the fingerprint with the node's operator")
    return ssl.DER_cert_to_PEM_cert(der).encode()


class Client:
    """A user's session with one node. Methods return the API's JSON (dicts and lists)."""

    def __init__(self, url: str, token: str | None = None, *, cert: str | os.PathLike[str] | bytes | None = None,
                 fingerprint: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token or os.environ.get(TOKEN_ENV)
        if isinstance(cert, (str, os.PathLike)):
            cert_pem = Path(cert).read_bytes()
        elif isinstance(cert, bytes):
            cert_pem = cert
        elif fingerprint:
            cert_pem = fetch_certificate(self.url, fingerprint)
        else:
            raise ConfigError("the node's certificate is needed to connect safely",
                              hint="pass --home (it holds the certificate), --cert FILE or --fingerprint")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url + "/api/v1", verify=pinned_context(cert_pem), headers=headers,
                                  timeout=timeout)

    @classmethod
    def for_home(cls, home: str | os.PathLike[str], token: str | None = None, **kwargs: Any) -> "Client":
        """Connect to the node of a local home (its address and certificate are in the home)."""
        from .node.home import NodeHome, format_address

        node = NodeHome.open(home)
        host, port = node.listen
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        return cls(f"https://{format_address(host, port)}", token, cert=node.cert_pem, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise PeerUnavailable(f"cannot reach the node at {self.url}: {exc}",
                                  hint="is it running? start it with `riskshare node start --home DIR`") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            if response.status_code in (401, 403):
                raise AuthorizationError(str(detail))
            if response.status_code == 422:
                raise InputError(str(detail))
            raise ApiError(str(detail), response.status_code)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    def _get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def _post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {})

    # -- node and users ----------------------------------------------------------------------
    def node(self) -> dict[str, Any]:
        return self._get("/node")

    def me(self) -> dict[str, Any]:
        return self._get("/me")

    def login(self, name: str, password: str) -> dict[str, Any]:
        answer = self._post("/auth/login", {"name": name, "password": password})
        self.token = answer["token"]
        self._http.headers["Authorization"] = f"Bearer {self.token}"
        return answer

    def users(self) -> list[dict[str, Any]]:
        return self._get("/users")

    def add_user(self, name: str, role: str, password: str | None = None) -> dict[str, Any]:
        return self._post("/users", {"name": name, "role": role, "password": password})

    def new_token(self, name: str) -> str:
        return self._post(f"/users/{name}/token")["token"]

    def disable_user(self, name: str) -> dict[str, Any]:
        return self._post(f"/users/{name}/disable")

    def peers(self) -> list[dict[str, Any]]:
        return self._get("/peers")

    def add_peer(self, name: str, address: str, cert_pem: str | bytes, replace: bool = False) -> dict[str, Any]:
        pem = cert_pem.decode() if isinstance(cert_pem, bytes) else cert_pem
        return self._post("/peers", {"name": name, "address": address, "cert_pem": pem, "replace": replace})

    def remove_peer(self, name: str) -> dict[str, Any]:
        return self.request("DELETE", f"/peers/{name}")

    # -- tables ----------------------------------------------------------------------------
    def tables(self) -> list[dict[str, Any]]:
        return self._get("/tables")

    def table(self, name: str) -> dict[str, Any]:
        return self._get(f"/tables/{name}")

    def add_table(self, name: str, *, id_column: str, path: str | os.PathLike[str] | None = None,
                  sql: str | None = None, database_url: str | None = None, label: str | None = None,
                  features: Iterable[str] = (), id_type: str = "any", delimiter: str | None = None,
                  encoding: str = "auto", description: str = "", replace: bool = False) -> dict[str, Any]:
        return self._post("/tables", {
            "name": name, "path": str(Path(path).resolve()) if path else None, "sql": sql,
            "database_url": database_url, "id_column": id_column, "id_type": id_type, "label": label,
            "features": list(features), "delimiter": delimiter, "encoding": encoding, "description": description,
            "replace": replace})

    def remove_table(self, name: str) -> dict[str, Any]:
        return self.request("DELETE", f"/tables/{name}")

    # -- grants and approvals ------------------------------------------------------------------
    def grants(self, *, table: str | None = None, peer: str | None = None, active: bool = False) -> list[dict[str, Any]]:
        return self._get("/grants", table=table, peer=peer, active=active or None)

    def grant(self, grant_id: int) -> dict[str, Any]:
        return self._get(f"/grants/{grant_id}")

    def add_grant(self, *, table: str, peer: str, ops: Iterable[str], purpose: str, expires: str,
                  max_runs: int | None = None, max_queries_per_day: int | None = None,
                  result_to: str = "receiver") -> dict[str, Any]:
        return self._post("/grants", {"table": table, "peer": peer, "ops": list(ops), "purpose": purpose,
                                      "expires": str(expires), "max_runs": max_runs,
                                      "max_queries_per_day": max_queries_per_day, "result_to": result_to})

    def revoke_grant(self, grant_id: int, reason: str = "") -> dict[str, Any]:
        return self._post(f"/grants/{grant_id}/revoke", {"reason": reason})

    def approvals(self, state: str = "pending") -> list[dict[str, Any]]:
        return self._get("/approvals", state=state)

    def approval(self, approval_id: int) -> dict[str, Any]:
        return self._get(f"/approvals/{approval_id}")

    def approve(self, approval_id: int, reason: str = "") -> dict[str, Any]:
        return self._post(f"/approvals/{approval_id}/approve", {"reason": reason})

    def deny(self, approval_id: int, reason: str) -> dict[str, Any]:
        return self._post(f"/approvals/{approval_id}/deny", {"reason": reason})

    # -- jobs ------------------------------------------------------------------------------
    def jobs(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self._get("/jobs", state=state, limit=limit)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._get(f"/jobs/{job_id}")

    def submit(self, spec: dict[str, Any] | str) -> dict[str, Any]:
        """Submit a job (a dict, or YAML text as in a job file). With ``schedule`` it creates a schedule."""
        from .node.jobs.spec import parse_spec

        return self._post("/jobs", parse_spec(spec).model_dump())  # YAML text or shorthand (op: psi) too

    def psi(self, *, peer: str, table: str, peer_table: str, purpose: str = "risk list cross-check",
            protocol: str = "ecdh", output_mode: str = "intersection", result_to: str = "receiver",
            role: str = "receiver", timeout: float = 600.0, name: str = "", schedule: str | None = None,
            **params: Any) -> dict[str, Any]:
        """Run PSI of this node's ``table`` against the peer's ``peer_table`` (read → psi → write)."""
        from .node.jobs.spec import default_steps

        return self.submit({"name": name, "peer": peer, "table": table, "peer_table": peer_table,
                            "purpose": purpose, "role": role, "result_to": result_to, "timeout": timeout,
                            "schedule": schedule,
                            "steps": default_steps("psi", {"protocol": protocol, "output_mode": output_mode, **params})})

    def wait(self, job_id: str, timeout: float = 600.0, interval: float = 0.2,
             states: Iterable[str] = TERMINAL) -> dict[str, Any]:
        """Poll until the job reaches one of ``states`` (by default: finished in any way)."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in wanted:
                return job
            if time.monotonic() > deadline:
                raise PeerUnavailable(f"job {job_id} is still {job['state']} after {timeout:g} s")
            time.sleep(interval)

    def logs(self, job_id: str) -> list[dict[str, Any]]:
        return self._get(f"/jobs/{job_id}/logs")

    def cancel(self, job_id: str, reason: str = "") -> dict[str, Any]:
        return self._post(f"/jobs/{job_id}/cancel", {"reason": reason})

    def rerun(self, job_id: str) -> dict[str, Any]:
        return self._post(f"/jobs/{job_id}/rerun")

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        return self._get(f"/jobs/{job_id}/artifacts")

    def download(self, artifact_id: int, path: str | os.PathLike[str] | None = None) -> bytes:
        """An artifact's bytes (also written atomically to ``path`` if given)."""
        data = self.request("GET", f"/artifacts/{artifact_id}")
        if isinstance(data, (dict, list)):
            import json

            data = json.dumps(data, indent=2).encode()
        if path is not None:
            from .data import atomic_output

            with atomic_output(path) as tmp:
                Path(tmp).write_bytes(data)
        return data

    # -- schedules -------------------------------------------------------------------------
    def schedules(self) -> list[dict[str, Any]]:
        return self._get("/schedules")

    def add_schedule(self, spec: dict[str, Any], cron: str) -> dict[str, Any]:
        return self._post("/schedules", {"spec": spec, "cron": cron})

    def run_schedule(self, schedule_id: int) -> dict[str, Any]:
        """Run a scheduled job now, as the scheduler would at its next cron time."""
        return self._post(f"/schedules/{schedule_id}/run")

    def remove_schedule(self, schedule_id: int) -> dict[str, Any]:
        return self.request("DELETE", f"/schedules/{schedule_id}")

    # -- audit -----------------------------------------------------------------------------
    def audit(self, *, since: str | None = None, after: int = 0, limit: int = 1000,
              action: str | None = None) -> list[dict[str, Any]]:
        return self._get("/audit", since=since, after=after, limit=limit, action=action)

    def audit_verify(self) -> dict[str, Any]:
        return self._get("/audit/verify")

    def audit_head(self) -> dict[str, Any]:
        return self._get("/audit/head")
