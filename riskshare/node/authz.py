"""Roles and what each may do. Every API call names one permission; this table decides.

=========== =================================================================
admin       users and peers; reads tables, grants, jobs (no approvals, no data)
data_owner  tables, grants, approvals; reads and cancels jobs on its data
analyst     runs jobs and schedules; reads tables and jobs; downloads outputs
auditor     reads everything that is not data (audit, grants, approvals, jobs)
=========== =================================================================
"""

from __future__ import annotations

from .errors import Forbidden

ROLES = ("admin", "data_owner", "analyst", "auditor")

PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({
        "users:read", "users:manage", "peers:read", "peers:manage", "tables:read", "grants:read", "jobs:read",
        "schedules:read", "node:read",
    }),
    "data_owner": frozenset({
        "peers:read", "tables:read", "tables:manage", "grants:read", "grants:manage", "approvals:read",
        "approvals:decide", "jobs:read", "jobs:cancel", "schedules:read", "node:read",
    }),
    "analyst": frozenset({
        "peers:read", "tables:read", "jobs:read", "jobs:run", "jobs:cancel", "artifacts:read", "schedules:read",
        "schedules:manage", "node:read",
    }),
    "auditor": frozenset({
        "peers:read", "tables:read", "grants:read", "approvals:read", "jobs:read", "schedules:read", "audit:read",
        "users:read", "node:read",
    }),
}


def allowed(role: str, permission: str) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


def require(role: str, permission: str, who: str = "this user") -> None:
    if not allowed(role, permission):
        raise Forbidden(f"{who} (role {role}) may not {permission.replace(':', ' ')}",
                        hint="ask an admin for a user with the right role")
