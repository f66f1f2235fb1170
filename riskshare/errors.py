"""The errors a user can cause, each with a message that says what to do.

Every error raised on purpose by riskshare derives from :class:`RiskshareError`.
The CLI prints ``error: <message>`` on one line and exits with ``exit_code``;
anything else that escapes is a bug and is reported as such.
"""

from __future__ import annotations


class RiskshareError(Exception):
    """Base class: a problem the user can act on."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} — {self.hint}"
        return self.message


class InputError(RiskshareError):
    """A file, column or argument the user gave cannot be used."""

    exit_code = 2


class ConfigError(RiskshareError):
    """A node home, its configuration or a pinned peer is missing or wrong."""

    exit_code = 2


class PeerError(RiskshareError):
    """Something went wrong with the other party (offline, refused, timed out)."""

    exit_code = 3


class PeerUnavailable(PeerError):
    """The peer could not be reached before the deadline."""


class PeerTimeout(PeerError):
    """A protocol step did not complete within its timeout."""


class CertificateMismatch(PeerError):
    """The peer presented a certificate that is not the pinned one."""


class ProtocolError(RiskshareError):
    """The peer sent something the protocol does not allow (malformed, oversized,
    out of order, parameters that disagree with ours)."""

    exit_code = 4


class ParameterMismatch(ProtocolError):
    """Both sides must agree on protocol and parameters before any data moves."""


class AuthorizationError(RiskshareError):
    """No grant covers the request, or the grant is expired, exhausted or revoked."""

    exit_code = 5


class QuotaExceeded(AuthorizationError):
    """A per-peer quota (runs, queries per day, rate) is used up."""
