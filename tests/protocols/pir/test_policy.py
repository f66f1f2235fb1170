"""The file-backed query policy: daily quotas survive restarts, reset at midnight; rate limits; no keys logged."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from riskshare.errors import QuotaExceeded
from riskshare.protocols.pir import FileQueryPolicy


class Clock:
    def __init__(self, when: dt.datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


def test_daily_quota_counts_across_restarts_and_resets_next_day(tmp_path) -> None:
    clock = Clock(dt.datetime(2026, 3, 1, 23, 0))
    log = tmp_path / "queries.log"
    policy = FileQueryPolicy(log, max_keys_per_day=10, clock=clock)
    assert policy.check_and_count("sub", 6, table="risk", mode="cached", query_id="q1").keys_left_today == 4
    reopened = FileQueryPolicy(log, max_keys_per_day=10, clock=clock)  # a restarted server
    assert reopened.used_today("sub") == 6
    with pytest.raises(QuotaExceeded, match="used 6 of its 10"):
        reopened.check_and_count("sub", 5, table="risk", mode="cached", query_id="q2")
    reopened.check_and_count("other", 10, table="risk", mode="cached", query_id="q3")  # quotas are per peer
    clock.now += 3600  # past midnight
    assert reopened.check_and_count("sub", 10, table="risk", mode="cached", query_id="q4").keys_left_today == 0
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["outcome"] for e in entries] == ["answered", "refused", "answered", "answered"]
    assert all(set(e) >= {"time", "peer", "table", "mode", "query_id", "keys"} for e in entries)


def test_rate_limit_is_a_sliding_minute(tmp_path) -> None:
    clock = Clock(dt.datetime(2026, 3, 1, 12, 0))
    policy = FileQueryPolicy(tmp_path / "q.log", max_queries_per_minute=2, clock=clock)
    policy.check_and_count("sub", 1, table="t", mode="cached", query_id="a")
    clock.now += 30
    policy.check_and_count("sub", 1, table="t", mode="cached", query_id="b")
    with pytest.raises(QuotaExceeded, match="try again in 30 s"):
        policy.check_and_count("sub", 1, table="t", mode="cached", query_id="c")
    clock.now += 31
    policy.check_and_count("sub", 1, table="t", mode="cached", query_id="d")


def test_unlimited_when_no_limits(tmp_path) -> None:
    policy = FileQueryPolicy(tmp_path / "q.log")
    allowance = policy.check_and_count("sub", 10**6, table="t", mode="cached", query_id="a")
    assert allowance.keys_left_today is None and allowance.queries_left_this_minute is None
    policy.record("sub", "sync", table="t", query_id="b", rows=5)
    assert (tmp_path / "q.log").stat().st_mode & 0o777 == 0o600
