"""``/api/v1``: what users do through a node (the SDK and the CLI's API commands call these)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from ... import __version__
from .. import grants as grants_mod
from .. import registry, users
from ..errors import NotFound
from ..home import NAME_RE
from ..jobs.spec import JobSpec
from ..users import Principal
from .deps import current_user, get_node, permission

router = APIRouter()
MAX_ID = 2**62  # what every database's BIGINT holds
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Name = Field(pattern=NAME_RE.pattern, max_length=63)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- node, login, me ------------------------------------------------------------------------

@router.get("/node", tags=["node"])
def node_info(request: Request, user: Principal = Depends(permission("node:read"))) -> dict[str, Any]:
    node = get_node(request)
    home = node.ctx.home
    return {"name": home.name, "address": node.address, "fingerprint": home.fingerprint, "version": __version__,
            "peers": [{"name": p.name, "address": p.address, "fingerprint": p.fingerprint} for p in home.peers()]}


class LoginIn(Strict):
    name: str = Field(max_length=63)
    password: str = Field(max_length=1024)


@router.post("/auth/login", tags=["users"])
def login(body: LoginIn, request: Request) -> dict[str, Any]:
    node = get_node(request)
    client = request.client.host if request.client else ""
    principal, token = users.login(node.ctx, body.name, body.password, source=client)
    return {"token": token, "user": principal.name, "role": principal.role, "expires_in_hours": users.SESSION_HOURS}


@router.get("/me", tags=["users"])
def me(user: Principal = Depends(current_user)) -> dict[str, Any]:
    from ..authz import PERMISSIONS

    return {"name": user.name, "role": user.role, "permissions": sorted(PERMISSIONS[user.role])}


# -- users --------------------------------------------------------------------------------

class UserIn(Strict):
    name: str = Name
    role: Literal["admin", "data_owner", "analyst", "auditor"]
    password: str | None = Field(default=None, min_length=8, max_length=1024)


@router.get("/users", tags=["users"])
def list_users(request: Request, user: Principal = Depends(permission("users:read"))) -> list[dict[str, Any]]:
    with get_node(request).ctx.db.session() as s:
        return users.list_users(s)


@router.post("/users", tags=["users"], status_code=201)
def add_user(body: UserIn, request: Request, user: Principal = Depends(permission("users:manage"))) -> dict[str, Any]:
    ctx = get_node(request).ctx
    with ctx.db.session() as s:
        row, token = users.add_user(ctx, s, user.actor, body.name, body.role, body.password)
        return {"user": users.user_dict(row), "token": token}


@router.post("/users/{name}/token", tags=["users"])
def new_token(name: str, request: Request, user: Principal = Depends(permission("users:manage"))) -> dict[str, Any]:
    ctx = get_node(request).ctx
    with ctx.db.session() as s:
        token = users.new_api_token(ctx, s, user.actor, name)
    get_node(request).auth_cache.clear()
    return {"user": name, "token": token}


@router.post("/users/{name}/disable", tags=["users"])
def disable_user(name: str, request: Request, user: Principal = Depends(permission("users:manage"))) -> dict[str, Any]:
    ctx = get_node(request).ctx
    with ctx.db.session() as s:
        users.disable_user(ctx, s, user.actor, name)
        out = users.user_dict(users.get_user(s, name))
    get_node(request).auth_cache.clear()
    return out


# -- peers --------------------------------------------------------------------------------

class PeerIn(Strict):
    name: str = Name
    address: str = Field(max_length=300)
    cert_pem: str = Field(max_length=20000)
    replace: bool = False


@router.get("/peers", tags=["peers"])
def list_peers(request: Request, user: Principal = Depends(permission("peers:read"))) -> list[dict[str, Any]]:
    return [{"name": p.name, "address": p.address, "fingerprint": p.fingerprint}
            for p in get_node(request).ctx.home.peers()]


@router.post("/peers", tags=["peers"], status_code=201)
def add_peer(body: PeerIn, request: Request, user: Principal = Depends(permission("peers:manage"))) -> dict[str, Any]:
    node = get_node(request)
    pinned = node.ctx.home.add_peer(body.name, body.address, body.cert_pem.encode(), replace=body.replace)
    node.refresh_peers(force=True)
    node.ctx.audit.record(user.actor, "peer.add", f"peer:{body.name}",
                          {"address": pinned.address, "fingerprint": pinned.fingerprint, "replace": body.replace})
    return {"name": pinned.name, "address": pinned.address, "fingerprint": pinned.fingerprint}


@router.delete("/peers/{name}", tags=["peers"])
def remove_peer(name: str, request: Request, user: Principal = Depends(permission("peers:manage"))) -> dict[str, Any]:
    node = get_node(request)
    if name not in node.ctx.home.config.get("peers", {}):
        raise NotFound(f"no peer named '{name}'")
    node.ctx.home.remove_peer(name)
    node.refresh_peers(force=True)
    node.ctx.audit.record(user.actor, "peer.remove", f"peer:{name}", {})
    return {"removed": name}


# -- tables -------------------------------------------------------------------------------

class TableIn(Strict):
    name: str = Name
    path: str | None = Field(default=None, max_length=4096)
    sql: str | None = Field(default=None, max_length=100_000)
    database_url: str | None = Field(default=None, max_length=4096)
    id_column: str = Field(min_length=1, max_length=255)
    id_type: Literal["any", "uscc"] = "any"
    label: str | None = Field(default=None, max_length=255)
    features: list[str] = Field(default_factory=list, max_length=10_000)
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    encoding: Literal["auto", "utf-8", "gbk", "gb18030"] = "auto"
    description: str = Field(default="", max_length=2000)
    replace: bool = False


@router.get("/tables", tags=["tables"])
def list_tables(request: Request, user: Principal = Depends(permission("tables:read"))) -> list[dict[str, Any]]:
    with get_node(request).ctx.db.session() as s:
        return [registry.table_dict(t) for t in registry.list_tables(s)]


@router.get("/tables/{name}", tags=["tables"])
def get_table(name: str, request: Request, user: Principal = Depends(permission("tables:read"))) -> dict[str, Any]:
    with get_node(request).ctx.db.session() as s:
        return registry.table_dict(registry.get_table(s, name))


@router.post("/tables", tags=["tables"], status_code=201)
def add_table(body: TableIn, request: Request, user: Principal = Depends(permission("tables:manage"))) -> dict[str, Any]:
    ctx = get_node(request).ctx
    with ctx.db.session() as s:
        row = registry.add_table(ctx, s, user.actor, **body.model_dump())
        return registry.table_dict(row)


@router.delete("/tables/{name}", tags=["tables"])
def remove_table(name: str, request: Request, user: Principal = Depends(permission("tables:manage"))) -> dict[str, Any]:
    ctx = get_node(request).ctx
    with ctx.db.session() as s:
        registry.remove_table(ctx, s, user.actor, name)
    return {"removed": name}


# -- grants -------------------------------------------------------------------------------

class GrantIn(Strict):
    table: str = Name
    peer: str = Name
    ops: list[Literal["psi", "pir", "train", "predict", "stats"]] = Field(min_length=1, max_length=5)
    purpose: str = Field(min_length=1, max_length=1000)
    expires: dt.date
    max_runs: int | None = Field(default=None, ge=1, le=10**9)
    max_queries_per_day: int | None = Field(default=None, ge=1, le=10**9)
    result_to: Literal["receiver", "both"] = "receiver"


class ReasonIn(Strict):
    reason: str = Field(default="", max_length=2000)


@router.get("/grants", tags=["grants"])
def list_grants(request: Request, table: str | None = Query(default=None, max_length=63),
                peer: str | None = Query(default=None, max_length=63), active: bool = False,
                user: Principal = Depends(permission("grants:read"))) -> list[dict[str, Any]]:
    with get_node(request).ctx.db.session() as s:
        return [grants_mod.grant_dict(g) for g in
                grants_mod.list_grants(s, table=table, peer=peer, include_inactive=not active)]


@router.get("/grants/{grant_id}", tags=["grants"])
def get_grant(grant_id: Id, request: Request, user: Principal = Depends(permission("grants:read"))) -> dict[str, Any]:
    with get_node(request).ctx.db.session() as s:
        return grants_mod.grant_dict(grants_mod.get_grant(s, grant_id))


@router.post("/grants", tags=["grants"], status_code=201)
def add_grant(body: GrantIn, request: Request, user: Principal = Depends(permission("grants:manage"))) -> dict[str, Any]:
    ctx = get_node(request).ctx
    with ctx.db.session() as s:
        return grants_mod.grant_dict(grants_mod.add_grant(ctx, s, user.actor, **body.model_dump()))


@router.post("/grants/{grant_id}/revoke", tags=["grants"])
def revoke_grant(grant_id: Id, body: ReasonIn, request: Request,
                 user: Principal = Depends(permission("grants:manage"))) -> dict[str, Any]:
    node = get_node(request)
    with node.ctx.db.session() as s:
        out = grants_mod.grant_dict(grants_mod.revoke_grant(node.ctx, s, user.actor, grant_id, body.reason))
    node.jobs.wake()
    return out


# -- approvals ------------------------------------------------------------------------------

@router.get("/approvals", tags=["approvals"])
def list_approvals(request: Request,
                   state: Literal["pending", "approved", "denied", "withdrawn", "all"] = "pending",
                   user: Principal = Depends(permission("approvals:read"))) -> list[dict[str, Any]]:
    with get_node(request).ctx.db.session() as s:
        return [grants_mod.approval_dict(a) for a in grants_mod.list_approvals(s, state)]


@router.get("/approvals/{approval_id}", tags=["approvals"])
def get_approval(approval_id: Id, request: Request,
                 user: Principal = Depends(permission("approvals:read"))) -> dict[str, Any]:
    with get_node(request).ctx.db.session() as s:
        return grants_mod.approval_dict(grants_mod.get_approval(s, approval_id))


@router.post("/approvals/{approval_id}/approve", tags=["approvals"])
def approve(approval_id: Id, body: ReasonIn, request: Request,
            user: Principal = Depends(permission("approvals:decide"))) -> dict[str, Any]:
    return get_node(request).jobs.decide_approval(user.actor, approval_id, True, body.reason)


@router.post("/approvals/{approval_id}/deny", tags=["approvals"])
def deny(approval_id: Id, body: ReasonIn, request: Request,
         user: Principal = Depends(permission("approvals:decide"))) -> dict[str, Any]:
    return get_node(request).jobs.decide_approval(user.actor, approval_id, False, body.reason)


# -- jobs ---------------------------------------------------------------------------------

@router.get("/jobs", tags=["jobs"])
def list_jobs(request: Request, state: str | None = Query(default=None, max_length=20),
              limit: int = Query(default=100, ge=1, le=1000),
              user: Principal = Depends(permission("jobs:read"))) -> list[dict[str, Any]]:
    return get_node(request).jobs.list(state=state, limit=limit)


@router.post("/jobs", tags=["jobs"], status_code=201)
def submit_job(body: JobSpec, request: Request, user: Principal = Depends(permission("jobs:run"))) -> dict[str, Any]:
    node = get_node(request)
    if body.schedule:
        return {"schedule": node.jobs.add_schedule(user.actor, body)}
    return node.jobs.submit(user.actor, body)


@router.get("/jobs/{job_id}", tags=["jobs"])
def get_job(job_id: str, request: Request, user: Principal = Depends(permission("jobs:read"))) -> dict[str, Any]:
    return get_node(request).jobs.get(job_id)


@router.get("/jobs/{job_id}/logs", tags=["jobs"])
def job_logs(job_id: str, request: Request, user: Principal = Depends(permission("jobs:read"))) -> list[dict[str, Any]]:
    return get_node(request).jobs.logs(job_id)


@router.post("/jobs/{job_id}/cancel", tags=["jobs"])
def cancel_job(job_id: str, body: ReasonIn, request: Request,
               user: Principal = Depends(permission("jobs:cancel"))) -> dict[str, Any]:
    return get_node(request).jobs.cancel(user.actor, job_id, body.reason)


@router.post("/jobs/{job_id}/rerun", tags=["jobs"], status_code=201)
def rerun_job(job_id: str, request: Request, user: Principal = Depends(permission("jobs:run"))) -> dict[str, Any]:
    return get_node(request).jobs.rerun(user.actor, job_id)


@router.get("/jobs/{job_id}/artifacts", tags=["jobs"])
def job_artifacts(job_id: str, request: Request,
                  user: Principal = Depends(permission("jobs:read"))) -> list[dict[str, Any]]:
    return get_node(request).jobs.artifacts(job_id)


@router.get("/artifacts/{artifact_id}", tags=["jobs"], response_class=FileResponse)
def download_artifact(artifact_id: Id, request: Request,
                      user: Principal = Depends(permission("artifacts:read"))) -> FileResponse:
    meta, path = get_node(request).jobs.artifact_file(artifact_id, user.actor)
    return FileResponse(path, media_type=meta["media_type"], filename=meta["name"],
                        headers={"X-Content-SHA256": meta["sha256"]})


# -- schedules ------------------------------------------------------------------------------

class ScheduleIn(Strict):
    spec: JobSpec
    cron: str = Field(min_length=9, max_length=64)


@router.get("/schedules", tags=["schedules"])
def list_schedules(request: Request, user: Principal = Depends(permission("schedules:read"))) -> list[dict[str, Any]]:
    return get_node(request).jobs.list_schedules()


@router.post("/schedules", tags=["schedules"], status_code=201)
def add_schedule(body: ScheduleIn, request: Request,
                 user: Principal = Depends(permission("schedules:manage"))) -> dict[str, Any]:
    return get_node(request).jobs.add_schedule(user.actor, body.spec, body.cron)


@router.post("/schedules/{schedule_id}/run", tags=["schedules"], status_code=201)
def run_schedule(schedule_id: Id, request: Request,
                 user: Principal = Depends(permission("schedules:manage"))) -> dict[str, Any]:
    return get_node(request).jobs.trigger(user.actor, schedule_id)


@router.delete("/schedules/{schedule_id}", tags=["schedules"])
def remove_schedule(schedule_id: Id, request: Request,
                    user: Principal = Depends(permission("schedules:manage"))) -> dict[str, Any]:
    get_node(request).jobs.remove_schedule(user.actor, schedule_id)
    return {"removed": schedule_id}


# -- audit --------------------------------------------------------------------------------

@router.get("/audit", tags=["audit"])
def audit_records(request: Request, since: dt.datetime | None = None, after: int = Query(default=0, ge=0, le=MAX_ID),
                  limit: int = Query(default=1000, ge=1, le=100_000),
                  action: str | None = Query(default=None, max_length=64),
                  user: Principal = Depends(permission("audit:read"))) -> list[dict[str, Any]]:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.timezone.utc)
    return get_node(request).ctx.audit.records(since=since, after_seq=after, limit=limit, action=action)


@router.get("/audit/verify", tags=["audit"])
def audit_verify(request: Request, user: Principal = Depends(permission("audit:read"))) -> dict[str, Any]:
    node = get_node(request)
    report = node.ctx.audit.verify().as_dict()
    node.ctx.audit.record(user.actor, "audit.verify", f"node:{node.ctx.name}",
                          {"ok": report["ok"], "records": report["records"]})
    return report


@router.get("/audit/head", tags=["audit"])
def audit_head(request: Request, user: Principal = Depends(permission("audit:read"))) -> dict[str, Any]:
    return get_node(request).ctx.audit.head()


