"""Malformed requests against every operation of the OpenAPI schema (schemathesis, negative mode).

No answer may be a 5xx, every malformed request that would change something must
get a 4xx (a read with nothing to break may answer 200), and no malformed request
may change anything: the node's users, tables, grants, approvals, jobs, schedules and
audit chain are the same afterwards.
"""

from __future__ import annotations


from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from sqlalchemy import func, select

from riskshare.node.service import NodeService
from riskshare.node.storage.models import (Approval, AuditRecord, DataTable, Grant, Job, Schedule, Token, User)

from .conftest import Pair, add_grant, make_pair

EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeService, Pair]]:
    pair = make_pair(tmp_path_factory.mktemp("fuzz"), range(0, 20), range(10, 30))
    add_grant(pair, "bank")
    service = NodeService(pair.home("bank"))  # in-process, not started: requests go straight to the ASGI app
    service.jobs.start()
    yield service, pair
    service.jobs.stop()
    service.link.close(notify_peers=False)
    service.ctx.close()


def snapshot(service: NodeService) -> dict[str, Any]:
    with service.ctx.db.session() as s:
        counts = {m.__tablename__: s.execute(select(func.count()).select_from(m)).scalar()
                  for m in (User, Token, DataTable, Grant, Approval, Job, Schedule)}
        counts["audit"] = s.execute(select(func.count()).select_from(AuditRecord)
                                    .where(AuditRecord.action != "audit.verify")).scalar()
        counts["grants_used"] = s.execute(select(func.sum(Grant.runs_used))).scalar()
    counts["peers"] = sorted(service.ctx.home.config.get("peers", {}))
    return counts


@pytest.mark.slow
def test_malformed_requests_get_4xx_and_change_nothing(node: tuple[NodeService, Pair]) -> None:
    service, pair = node
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", service.app)
    before = snapshot(service)
    failures: list[str] = []
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
        seen: list[int] = []

        @given(case=strategy)
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:  # noqa: B023 - called at once, inside this iteration
            headers = dict(case.headers or {})
            if not _headers_mutated(case):
                # the mutation is in the path, query or body: send it with a token of the role that may
                # call the operation, so the node must refuse it for its input, not for its role
                role = _role_for(operation.path, operation.method)  # noqa: B023
                headers["Authorization"] = f"Bearer {pair.tokens['bank'][role]}"
            response = case.call(headers=headers)
            seen.append(response.status_code)  # noqa: B023
            # A read may legitimately succeed (negative generation cannot always break a request that
            # has nothing to validate); a change must be refused; nothing may be a server error.
            refused_change = operation.method.upper() == "GET" or 400 <= response.status_code < 500  # noqa: B023
            if response.status_code >= 500 or not refused_change:
                failures.append(f"{operation.method.upper()} {operation.path}: {response.status_code} for "  # noqa: B023
                                f"{case.path_parameters} {case.query} {str(case.body)[:200]} -> {response.text[:200]}")

        run()
        checked += len(seen)
    assert checked > 100
    assert not failures, "\n".join(failures[:20])
    assert snapshot(service) == before


def _headers_mutated(case: Any) -> bool:
    components = getattr(case.meta, "components", {}) or {}
    return any(getattr(location, "value", location) == "header" and info.mode == GenerationMode.NEGATIVE
               for location, info in components.items())


def _role_for(path: str, method: str) -> str:
    if path.startswith("/api/v1/users") or path.startswith("/api/v1/peers"):
        return "admin"
    if path.startswith("/api/v1/audit"):
        return "auditor"
    if path.startswith(("/api/v1/tables", "/api/v1/grants", "/api/v1/approvals")):
        return "data_owner"
    return "analyst"


