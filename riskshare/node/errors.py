"""Errors of the node service, mapped to HTTP status codes by the API."""

from __future__ import annotations

from ..errors import AuthorizationError, InputError, RiskshareError


class NotFound(InputError):
    """No such user, table, grant, job, approval or artifact."""

    status = 404


class Conflict(InputError):
    """The request contradicts the current state (a name taken, a job already finished)."""

    status = 409


class Unauthenticated(AuthorizationError):
    """No valid token."""

    status = 401


class Forbidden(AuthorizationError):
    """The user's role does not allow this."""

    status = 403


class PeerRefused(RiskshareError):
    """The peer's node answered, and said no."""

    exit_code = 5


def http_status(exc: RiskshareError) -> int:
    status = getattr(exc, "status", None)
    if status:
        return int(status)
    if isinstance(exc, AuthorizationError):
        return 403
    if isinstance(exc, InputError):
        return 400
    return 400
