"""The FastAPI application of one node."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ... import __version__
from ...errors import RiskshareError
from ..errors import http_status
from . import peer as peer_routes
from . import routes

if TYPE_CHECKING:
    from ..service import NodeService

log = logging.getLogger("riskshare.node.api")


def create_app(node: "NodeService") -> Any:
    app = FastAPI(
        title=f"riskshare node '{node.ctx.name}'",
        version=__version__,
        description="Data registry, grants and approvals, jobs, artifacts and audit of one riskshare node. "
        "Authenticate with `Authorization: Bearer <token>` (`riskshare user add` prints one).",
        openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None,
    )
    app.state.node = node

    @app.exception_handler(RiskshareError)
    async def riskshare_error(_request: Request, exc: RiskshareError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=http_status(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": f"invalid request: {problems}", "error": "ValidationError"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s: %s", type(exc).__name__, exc, exc_info=exc)
        return JSONResponse({"detail": "internal error (a bug; see the node's log)", "error": "InternalError"},
                            status_code=500)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "node": node.ctx.name, "version": __version__}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(routes.router, prefix="/api/v1")
    app.include_router(peer_routes.router, prefix="/peer/v1", include_in_schema=False)
    return _Observed(app, node)


class _Observed:
    """ASGI wrapper: Prometheus counters and one structured log line per request."""

    def __init__(self, app: FastAPI, node: "NodeService") -> None:
        self.app = app
        self.node = node

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or ("unmatched" if status["code"] == 404 else scope["path"])
            method = scope["method"]
            self.node.metrics.requests.labels(method, route, str(status["code"])).inc()
            self.node.metrics.latency.labels(route).observe(seconds)
            level = logging.INFO if method != "GET" or status["code"] >= 400 else logging.DEBUG
            if route not in ("/healthz", "/metrics") and log.isEnabledFor(level):
                client = scope.get("client") or ("", 0)
                log.log(level, "%s %s -> %s", method, scope["path"], status["code"], extra={
                    "node": self.node.ctx.name, "method": method, "path": scope["path"], "status": status["code"],
                    "ms": round(seconds * 1000, 2), "client": f"{client[0]}:{client[1]}"})
