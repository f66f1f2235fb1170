"""``/peer/v1``: what another node may ask of this one — only over mutual TLS with a pinned certificate.

The calling peer is identified by its certificate (:func:`~.deps.current_peer`),
never by anything it writes in a request.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from .deps import current_peer, get_node

router = APIRouter()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProposalIn(Strict):
    job_id: str = Field(pattern=r"^j-[0-9a-f]{16}$")
    manifest: dict[str, Any]


class RunIn(Strict):
    attempt: int = Field(ge=1, le=1000)
    completed: list[str] = Field(default_factory=list, max_length=64)


class AbortIn(Strict):
    attempt: int | None = Field(default=None, ge=0)
    kind: Literal["cancelled", "failed", "interrupted"]
    reason: str = Field(default="", max_length=4000)
    step: str | None = Field(default=None, max_length=64)


class DecisionIn(Strict):
    decision: Literal["approved", "denied", "covered", "refused", "pending"]
    reason: str = Field(default="", max_length=4000)


class HeadIn(Strict):
    job_id: str | None = Field(default=None, max_length=40)
    head: dict[str, Any]


@router.post("/jobs")
def propose(body: ProposalIn, request: Request, peer: str = Depends(current_peer)) -> dict[str, Any]:
    return get_node(request).jobs.receive_proposal(peer, body.job_id, body.manifest)


@router.get("/jobs/{job_id}")
def job_status(job_id: str, request: Request, peer: str = Depends(current_peer)) -> dict[str, Any]:
    return get_node(request).jobs.peer_status(peer, job_id)


@router.post("/jobs/{job_id}/run")
def run(job_id: str, body: RunIn, request: Request, peer: str = Depends(current_peer)) -> dict[str, Any]:
    return get_node(request).jobs.peer_run(peer, job_id, body.attempt, body.completed)


@router.post("/jobs/{job_id}/abort")
def abort(job_id: str, body: AbortIn, request: Request, peer: str = Depends(current_peer)) -> dict[str, Any]:
    return get_node(request).jobs.peer_abort(peer, job_id, body.attempt, body.kind, body.reason)


@router.post("/jobs/{job_id}/decision")
def decision(job_id: str, body: DecisionIn, request: Request, peer: str = Depends(current_peer)) -> dict[str, Any]:
    return get_node(request).jobs.peer_decision(peer, job_id, body.decision, body.reason)


@router.post("/audit/heads")
def exchange_heads(body: HeadIn, request: Request, peer: str = Depends(current_peer)) -> dict[str, Any]:
    return get_node(request).jobs.receive_head(peer, body.job_id, body.head)


@router.get("/audit/heads")
def heads_held(request: Request, peer: str = Depends(current_peer)) -> list[dict[str, Any]]:
    """The heads of the *caller's* audit chain that this node holds (for `riskshare audit verify --peers`)."""
    return get_node(request).jobs.heads_held_for(peer)


@router.get("/hello")
def hello(request: Request, peer: str = Depends(current_peer)) -> dict[str, Any]:
    node = get_node(request)
    return {"node": node.ctx.name, "you": peer}
