"""PIR quotas counted against grants, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskshare.errors import AuthorizationError, QuotaExceeded
from riskshare.node import grants, registry
from riskshare.node.context import NodeContext
from riskshare.node.quota import GrantQueryPolicy

from .conftest import write_ids


def _grant(ctx: NodeContext, tmp_path: Path, **kwargs: object) -> int:
    path = write_ids(tmp_path / "risk.csv", "id", range(5))
    with ctx.db.session() as s:
        registry.add_table(ctx, s, "local:test", name="risk", path=str(path), id_column="id")
    with ctx.db.session() as s:
        return grants.add_grant(ctx, s, "local:test", table="risk", peer="broker", ops=["pir"],
                                purpose="group risk list", expires="2099-01-01", **kwargs).id  # type: ignore[arg-type]


def test_lookups_are_counted_against_the_daily_quota(ctx: NodeContext, tmp_path: Path) -> None:
    policy = GrantQueryPolicy(ctx, _grant(ctx, tmp_path, max_queries_per_day=5), job_id="j-1")
    assert policy.check_and_count("broker", 3, table="risk", mode="cached", query_id="q1").keys_left_today == 2
    with pytest.raises(QuotaExceeded, match="allows 5 lookups a day; 3 were used today and this query asks for 3"):
        policy.check_and_count("broker", 3, table="risk", mode="cached", query_id="q2")
    assert policy.check_and_count("broker", 2, table="risk", mode="pir", query_id="q3").keys_left_today == 0
    policy.record("broker", "sync", table="risk", query_id="q4", bytes=1234)
    actions = [(r["action"], r["details"].get("keys")) for r in ctx.audit.records(action="pir.*")]
    assert actions == [("pir.query", 3), ("pir.refused", 3), ("pir.query", 2), ("pir.sync", None)]
    assert ctx.audit.verify().ok


def test_revoked_grant_refuses_lookups(ctx: NodeContext, tmp_path: Path) -> None:
    grant_id = _grant(ctx, tmp_path)
    policy = GrantQueryPolicy(ctx, grant_id)
    assert policy.check_and_count("broker", 100, table="risk", mode="cached", query_id="q1").keys_left_today is None
    with ctx.db.session() as s:
        grants.revoke_grant(ctx, s, "local:test", grant_id, "audit finding")
    with pytest.raises(AuthorizationError, match="revoked"):
        policy.check_and_count("broker", 1, table="risk", mode="cached", query_id="q2")
