"""Request dependencies: the node, the calling user (by bearer token), the calling peer (by certificate)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..authz import require
from ..errors import Forbidden
from ..users import Principal, authenticate

if TYPE_CHECKING:
    from ..service import NodeService

_bearer = HTTPBearer(auto_error=False, description="API token from `riskshare user add` or a login")


def get_node(request: Request) -> "NodeService":
    return request.app.state.node


async def current_user(request: Request,
                       credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    # async, so a token seen in the last seconds costs no hop to the thread pool (status polling)
    node = get_node(request)
    token = credentials.credentials if credentials else None
    cached = node.auth_cache.get(token)
    if cached is not None:
        return cached
    principal = await run_in_threadpool(_authenticate, node, token)
    node.auth_cache.put(token, principal)
    return principal


def _authenticate(node: "NodeService", token: str | None) -> Principal:
    with node.ctx.db.session() as session:
        return authenticate(session, token)


def permission(name: str) -> Callable[..., Any]:
    """A dependency that lets the request through only for roles holding ``name``."""

    async def check(user: Principal = Depends(current_user)) -> Principal:
        require(user.role, name, f"user '{user.name}'")
        return user

    return check


async def current_peer(request: Request) -> str:
    """The pinned peer whose client certificate this connection presented (mutual TLS)."""
    node = get_node(request)
    fingerprint = request.scope.get("riskshare.client_cert")
    peer = node.peer_by_fingerprint(fingerprint)
    if peer is None:
        raise Forbidden("the peer endpoint needs the client certificate of a pinned peer",
                        hint="nodes reach it with their own certificate; pin each other with `riskshare peer add`")
    return peer

