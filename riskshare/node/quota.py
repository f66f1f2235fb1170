"""PIR query quotas backed by grants and the audit log.

:class:`GrantQueryPolicy` implements the query-policy interface of keyword PIR
(``check_and_count`` / ``record``, see ``riskshare.protocols.pir.policy``) for a
PIR server run by the node: each lookup round is allowed only while the grant
stands, its keys are counted against the grant's ``--max-queries-per-day`` (per
UTC day, in the node's database, so the count survives restarts and is shared
by every job), and every round, refusal, table download or hint download is an
audit record with its counts — never a key, never a record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import AuthorizationError, QuotaExceeded
from . import grants
from .context import NodeContext


@dataclass(frozen=True)
class Allowance:
    """What is left for the peer after this query (``None``: no limit). Same fields as PIR's own."""

    keys_left_today: int | None
    queries_left_this_minute: int | None


def _allowance(keys_left: int | None) -> Any:
    try:  # the PIR package's own type, where it is installed
        from ..protocols.pir.policy import Allowance as PirAllowance  # type: ignore[import-not-found]

        return PirAllowance(keys_left, None)
    except ImportError:
        return Allowance(keys_left, None)


class GrantQueryPolicy:
    """``grant_id=None``: a job a data owner approved by hand — no quota, every round still audited."""

    def __init__(self, ctx: NodeContext, grant_id: int | None, *, job_id: str | None = None) -> None:
        self.ctx = ctx
        self.grant_id = grant_id
        self.job_id = job_id

    def check_and_count(self, peer: str, n_keys: int, *, table: str, mode: str, query_id: str) -> Any:
        """Count ``n_keys`` lookups against the grant, or refuse with a message for the peer."""
        refusal: Exception | None = None
        limit: int | None = None
        used = 0
        with self.ctx.db.session() as s:
            details = {"peer": peer, "table": table, "mode": mode, "query_id": query_id, "keys": n_keys,
                       "grant": self.grant_id, "job": self.job_id}
            if self.grant_id is None:
                self.ctx.audit.append(s, f"peer:{peer}", "pir.query", f"job:{self.job_id}", details)
                return _allowance(None)
            why = grants.check_still_valid(s, self.grant_id)
            if why:
                self.ctx.audit.append(s, f"peer:{peer}", "pir.refused", f"grant:{self.grant_id}",
                                      {**details, "reason": why})
                refusal = AuthorizationError(why)
            else:
                allowed, used = grants.count_queries(s, self.grant_id, n_keys)
                limit = grants.get_grant(s, self.grant_id).max_queries_per_day
                if not allowed:
                    message = (f"grant #{self.grant_id} allows {limit} lookups a day; {used} were used today "
                               f"and this query asks for {n_keys} more")
                    self.ctx.audit.append(s, f"peer:{peer}", "pir.refused", f"grant:{self.grant_id}",
                                          {**details, "used_today": used, "reason": "quota"})
                    refusal = QuotaExceeded(message, hint="try again tomorrow, or ask the data owner for a larger quota")
                else:
                    self.ctx.audit.append(s, f"peer:{peer}", "pir.query", f"grant:{self.grant_id}",
                                          {**details, "used_today": used})
        if refusal is not None:
            raise refusal
        return _allowance(None if limit is None else max(0, limit - used))

    def record(self, peer: str, event: str, *, table: str, query_id: str, **counts: int) -> None:
        """Audit an event that uses no quota (a table or hint download, a refused request)."""
        target = f"grant:{self.grant_id}" if self.grant_id is not None else f"job:{self.job_id}"
        self.ctx.audit.record(f"peer:{peer}", f"pir.{event}", target, {
            "peer": peer, "table": table, "query_id": query_id, "job": self.job_id,
            **{k: int(v) for k, v in counts.items()}})
