"""The node's storage on SQLite and PostgreSQL: migrations, users, tables, grants, approvals, audit."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text, update

from riskshare.errors import InputError
from riskshare.node import grants, registry, users
from riskshare.node.context import NodeContext
from riskshare.node.errors import Conflict, NotFound, Unauthenticated
from riskshare.node.storage import Database
from riskshare.node.storage.models import AuditHead, AuditRecord, Base, Grant

from .conftest import write_ids


def test_migrations_create_exactly_the_models(database_url: str) -> None:
    db = Database(database_url)
    assert db.revision() == "0001"
    Database(database_url)  # opening again is a no-op upgrade
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    db.dispose()


def test_users_tokens_and_logins(ctx: NodeContext) -> None:
    with ctx.db.session() as s:
        user, token = users.add_user(ctx, s, "local:test", "li", "analyst", password="correct horse")
    assert token.startswith("rs_") and len(token) > 40
    with ctx.db.session() as s:
        assert users.authenticate(s, token).role == "analyst"
        stored = s.execute(text("select token_hash from tokens")).scalars().all()
        assert token not in stored and users.hash_token(token) in stored  # only the hash is kept
        with pytest.raises(Conflict):
            users.add_user(ctx, s, "local:test", "li", "admin")
    with ctx.db.session() as s, pytest.raises(InputError):
        users.add_user(ctx, s, "local:test", "x", "superuser")
    with pytest.raises(Unauthenticated):
        users.login(ctx, "li", "wrong password")
    principal, session_token = users.login(ctx, "li", "correct horse")
    assert principal.name == "li"
    with ctx.db.session() as s:
        new = users.new_api_token(ctx, s, "local:test", "li")
    with ctx.db.session() as s:
        with pytest.raises(Unauthenticated):
            users.authenticate(s, token)  # the old API token was revoked
        assert users.authenticate(s, new).name == "li"
        assert users.authenticate(s, session_token).name == "li"
        users.disable_user(ctx, s, "local:test", "li")
    with ctx.db.session() as s, pytest.raises(Unauthenticated):
        users.authenticate(s, new)
    actions = [r["action"] for r in ctx.audit.records()]
    assert actions.count("auth.login_failed") == 1 and actions.count("auth.login") == 1
    assert "user.disable" in actions


def test_tables_record_schema_and_rows(ctx: NodeContext, tmp_path: Path) -> None:
    path = write_ids(tmp_path / "c.csv", "uscc", range(10))
    with ctx.db.session() as s:
        row = registry.add_table(ctx, s, "local:test", name="clients", path=str(path), id_column="uscc",
                                 features=["score"])
        assert row.row_count == 10 and [c["name"] for c in row.columns] == ["uscc", "score"]
    with ctx.db.session() as s:
        with pytest.raises(InputError, match="no column"):
            registry.add_table(ctx, s, "local:test", name="bad", path=str(path), id_column="nope")
    with ctx.db.session() as s:
        with pytest.raises(Conflict):
            registry.add_table(ctx, s, "local:test", name="clients", path=str(path), id_column="uscc")
        assert registry.source_of(registry.get_table(s, "clients")).read().num_rows == 10
        registry.remove_table(ctx, s, "local:test", "clients")
    with ctx.db.session() as s, pytest.raises(NotFound):
        registry.get_table(s, "clients")


def test_sql_tables_are_read_from_their_database(ctx: NodeContext, tmp_path: Path) -> None:
    import sqlite3

    source = tmp_path / "bank.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("create table loans (uscc text, amount real)")
        conn.executemany("insert into loans values (?, ?)", [(f"C{i:08d}", i * 10.0) for i in range(7)])
    with ctx.db.session() as s:
        row = registry.add_table(ctx, s, "local:test", name="loans", sql="select uscc, amount from loans",
                                 database_url=f"sqlite:///{source}", id_column="uscc")
        assert row.row_count == 7 and row.kind == "sql"


def _grant(ctx: NodeContext, tmp_path: Path, **kwargs: object) -> int:
    path = write_ids(tmp_path / "g.csv", "id", range(5))
    with ctx.db.session() as s:
        if not registry.list_tables(s):
            registry.add_table(ctx, s, "local:test", name="risk", path=str(path), id_column="id")
    with ctx.db.session() as s:
        args = {"table": "risk", "peer": "broker", "ops": ["psi", "pir"], "purpose": "post-loan monitoring",
                "expires": "2099-06-30", **kwargs}
        return grants.add_grant(ctx, s, "local:test", **args).id  # type: ignore[arg-type]


def test_grant_decisions(ctx: NodeContext, tmp_path: Path) -> None:
    gid = _grant(ctx, tmp_path, max_runs=2)
    with ctx.db.session() as s:
        d = grants.evaluate(s, table="risk", peer="broker", ops=["psi"], result_to="receiver")
        assert d.kind == "covered" and d.grant_id == gid
        # not covered: another operation, results to both sides, another peer
        assert grants.evaluate(s, table="risk", peer="broker", ops=["train"], result_to="receiver").kind == "uncovered"
        assert grants.evaluate(s, table="risk", peer="broker", ops=["psi"], result_to="both").kind == "uncovered"
        assert grants.evaluate(s, table="risk", peer="sub", ops=["psi"], result_to="receiver").kind == "uncovered"
        assert grants.consume_run(s, gid) and grants.consume_run(s, gid)
        assert not grants.consume_run(s, gid)  # two runs allowed
        d = grants.evaluate(s, table="risk", peer="broker", ops=["psi"], result_to="receiver")
        assert d.kind == "refused" and "used up" in d.reason and f"#{gid}" in d.reason
    # expired: a grant whose last day has passed
    gid2 = _grant(ctx, tmp_path, ops=["pir"])
    with ctx.db.session() as s:
        s.execute(update(Grant).where(Grant.id == gid2).values(
            expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)))
    with ctx.db.session() as s:
        d = grants.evaluate(s, table="risk", peer="broker", ops=["pir"], result_to="receiver")
        assert d.kind == "refused" and "expired" in d.reason
        grants.revoke_grant(ctx, s, "local:test", gid, "client withdrew consent")
    with ctx.db.session() as s:
        d = grants.evaluate(s, table="risk", peer="broker", ops=["psi"], result_to="receiver")
        assert d.kind == "refused" and "revoked" in d.reason and "client withdrew consent" in d.reason
        assert grants.check_still_valid(s, gid) is not None
        with pytest.raises(Conflict):
            grants.revoke_grant(ctx, s, "local:test", gid)


def test_grant_input_is_checked(ctx: NodeContext, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="past"):
        _grant(ctx, tmp_path, expires="2001-01-01")
    with pytest.raises(InputError, match="unknown operation"):
        _grant(ctx, tmp_path, ops=["exfiltrate"])
    with pytest.raises(NotFound, match="not a pinned peer"):
        _grant(ctx, tmp_path, peer="stranger")
    assert grants.parse_expiry("2027-06-30") == dt.datetime(2027, 7, 1, tzinfo=dt.timezone.utc)


def test_pir_daily_quota(ctx: NodeContext, tmp_path: Path) -> None:
    gid = _grant(ctx, tmp_path, max_queries_per_day=5)
    with ctx.db.session() as s:
        assert grants.count_queries(s, gid, 3, day="2026-11-27") == (True, 3)
        assert grants.count_queries(s, gid, 3, day="2026-11-27") == (False, 3)
        assert grants.count_queries(s, gid, 2, day="2026-11-27") == (True, 5)
        assert grants.count_queries(s, gid, 5, day="2026-11-28") == (True, 5)


def test_audit_chain_verifies_and_catches_tampering(ctx: NodeContext) -> None:
    for i in range(6):
        ctx.audit.record("user:li", "job.submit", f"job:{i}", {"n": i})
    assert ctx.audit.verify().ok
    with ctx.db.session() as s:  # edit a record's content
        s.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(target="job:999"))
    report = ctx.audit.verify()
    assert not report.ok and any("record 3 was edited" in p for p in report.problems)


def test_audit_detects_deleted_and_reordered_records(ctx: NodeContext) -> None:
    for i in range(6):
        ctx.audit.record("user:li", "grant.add", f"grant:{i}", {"n": i})
    with ctx.db.session() as s:
        s.execute(AuditRecord.__table__.delete().where(AuditRecord.seq == 2))
    report = ctx.audit.verify()
    assert not report.ok and any("record 2 is missing" in p for p in report.problems)


def test_audit_detects_swapped_records(ctx: NodeContext) -> None:
    for i in range(4):
        ctx.audit.record("user:li", "table.add", f"table:{i}", {"n": i})
    with ctx.db.session() as s:
        a, b = (s.get(AuditRecord, 2), s.get(AuditRecord, 3))
        fields = ("ts", "actor", "action", "target", "details", "prev_hash", "hash", "signature")
        va, vb = ({f: getattr(a, f) for f in fields}, {f: getattr(b, f) for f in fields})
        for f in fields:
            setattr(a, f, vb[f])
            setattr(b, f, va[f])
    assert not ctx.audit.verify().ok


def test_audit_detects_truncated_tail(ctx: NodeContext) -> None:
    for i in range(4):
        ctx.audit.record("user:li", "table.add", f"table:{i}", {"n": i})
    with ctx.db.session() as s:
        s.execute(AuditRecord.__table__.delete().where(AuditRecord.seq == 4))
    report = ctx.audit.verify()
    assert not report.ok and any("head says" in p for p in report.problems)


def test_audit_forged_record_without_key_fails(ctx: NodeContext) -> None:
    """Recomputing the hash after an edit is not enough: the signature needs node.key."""
    import json

    from riskshare.node.audit import canonical, record_hash

    ctx.audit.record("user:li", "grant.add", "grant:1", {"n": 1})
    ctx.audit.record("user:li", "grant.add", "grant:2", {"n": 2})
    with ctx.db.session() as s:
        last = s.get(AuditRecord, 2)
        details = canonical({"n": 42})
        last.details = details
        last.hash = record_hash(2, last.ts, last.actor, last.action, last.target, details, last.prev_hash)
        s.get(AuditHead, 1).hash = last.hash
    report = ctx.audit.verify()
    assert not report.ok and any("signature" in p for p in report.problems)
    assert json.loads(details) == {"n": 42}


def test_audit_appends_from_threads_stay_one_chain(ctx: NodeContext) -> None:
    def work(k: int) -> None:
        for i in range(10):
            ctx.audit.record(f"user:{k}", "job.step.finish", f"job:{k}", {"i": i})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = ctx.audit.verify()
    assert report.ok and report.records == 40


def test_audit_refuses_data_values(ctx: NodeContext) -> None:
    with pytest.raises(ValueError, match="data values"):
        ctx.audit.record("node", "job.step.finish", "job:1", {"ids": ["C00000001"]})


def test_approvals_decide_once(ctx: NodeContext, tmp_path: Path) -> None:
    from riskshare.node.storage import utcnow
    from riskshare.node.storage.models import Job

    _grant(ctx, tmp_path)
    with ctx.db.session() as s:
        job = Job(id="j-0000000000000001", name="t", role="responder", peer="broker", state="waiting_approval",
                  manifest={"result_to": "receiver"}, table_name="risk", purpose="p", created_by="peer:broker",
                  created_at=utcnow(), updated_at=utcnow(), attempt=0, local_decision="pending", peer_decision="covered")
        s.add(job)
        s.flush()
        approval = grants.request_approval(ctx, s, job, ["train"], job.manifest, "peer:broker")
    with ctx.db.session() as s:
        with pytest.raises(InputError, match="why"):
            grants.decide(ctx, s, "user:wang", approval.id, False, "")
    with ctx.db.session() as s:
        grants.decide(ctx, s, "user:wang", approval.id, False, "purpose too broad")
    with ctx.db.session() as s, pytest.raises(Conflict):
        grants.decide(ctx, s, "user:wang", approval.id, True)
    with ctx.db.session() as s:
        assert [a.state for a in grants.list_approvals(s, "all")] == ["denied"]
        assert s.execute(select(AuditRecord.action).where(AuditRecord.action == "approval.deny")).scalar()
