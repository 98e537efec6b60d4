"""`dssesign serve`: the ASGI application (Starlette) and what it holds for its lifetime.

Starlette on uvicorn, not FastAPI: the service needs a raw ASGI gate that checks the token
before the body is read (`gate.py`), strict JSON parsing by the verifier's own reader, and a
hand-kept OpenAPI document; FastAPI's request models and dependency injection would sit beside
all three unused. docs/service.md has the threat model.
"""

from __future__ import annotations

import threading
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._internal.fileio import read_bounded
from ..audit import AuditLog
from ..errors import ConfigError
from ..sign.signer import load_signer
from ..trust import MAX_TRUST_ROOT_BYTES, TrustRoot, load_trust_root
from . import handlers
from .config import ServiceConfig, TenantConfig
from .gate import Gate
from .handlers import ApiError
from .keys import KeyRing
from .openapi import OPENAPI
from .quota import MemoryRateLimiter, QuotaUnavailable, RateLimiter, RedisRateLimiter
from .tokens import Principal, TokenVerifier

__all__ = ["Service", "build_app"]


class Service:
    """Everything a request needs, loaded once at start-up (a bad config fails here)."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.tokens = TokenVerifier(config.auth)
        self.trust_root = _trust_root(config.server.trust_root)
        tsa_root = (
            self.trust_root
            if config.server.tsa_trust_root == config.server.trust_root
            else _trust_root(config.server.tsa_trust_root)
        )
        self.tsa_authorities = tsa_root.timestamp_authorities
        self.tsa_urls = {tsa.name: tsa.url for tsa in config.tsas}
        self.limiter: RateLimiter = (
            RedisRateLimiter(config.server.redis_url, password=config.server.redis_password())
            if config.server.redis_url
            else MemoryRateLimiter()
        )
        self.unauthenticated = MemoryRateLimiter()
        audit_signer = None
        if config.server.audit_key:
            audit_signer = load_signer(config.server.audit_key)
        # Group commit: requests append without an fsync each; a signature is answered only
        # after `flush` made its records durable (handlers._sign).
        self.audit = AuditLog(
            config.server.audit_log, durability="group", checkpoint_signer=audit_signer
        )
        self.keys = KeyRing(config)
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def tenant_of(self, principal: Principal) -> TenantConfig:
        """The principal's configured tenant (the gate let no other through)."""
        tenant = self.config.tenant(principal.tenant or "")
        if tenant is None:  # pragma: no cover - the gate refuses these first
            raise ApiError(403, "FORBIDDEN", "the token's tenant is not configured")
        return tenant

    def record_request(
        self,
        *,
        path: str,
        status: int,
        reason: str,
        principal: Principal | None,
        address: str,
        seconds: float,
    ) -> None:
        """One audit record per request, and the request counters for /metrics."""
        with self._lock:
            key = (path, status)
            self._counts[key] = self._counts.get(key, 0) + 1
        self.audit.append(
            {
                "event": "request",
                "path": path,
                "status": status,
                "outcome": reason,
                "verified": principal is not None,
                "subject": principal.subject if principal else None,
                "tenant": principal.tenant if principal else None,
                "client": address,
                "durationSeconds": round(seconds, 6),
            }
        )

    def metrics(self) -> str:
        """Prometheus text: request counts by path and status, key health. No secrets."""
        lines = [
            "# HELP dssesign_requests_total Requests to the /v1 endpoints by path and status.",
            "# TYPE dssesign_requests_total counter",
        ]
        with self._lock:
            counts = sorted(self._counts.items())
        for (path, status), count in counts:
            lines.append(f'dssesign_requests_total{{path="{path}",status="{status}"}} {count}')
        lines += [
            "# HELP dssesign_key_up 1 when the key's last signature (or its loading) succeeded.",
            "# TYPE dssesign_key_up gauge",
        ]
        for name, state in sorted(self.keys.health().items()):
            lines.append(f'dssesign_key_up{{key="{name}"}} {1 if state == "ok" else 0}')
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """Write the audit log's final checkpoint; release the quota store."""
        self.audit.close()
        self.limiter.close()


def _trust_root(path: Any) -> TrustRoot:
    try:
        return load_trust_root(read_bounded(path, limit=MAX_TRUST_ROOT_BYTES, what="trust root"))
    except Exception as exc:
        raise ConfigError(f"server.trust_root {path}: {exc}") from None


def build_app(service: Service) -> Gate:
    """The ASGI app: the gate in front of Starlette's routes."""

    # One endpoint function per route, never dispatched on the request's URL: the gate checked
    # the scope of this route's path, and a Host header must not choose another handler.
    async def sign(request: Request) -> Response:
        principal: Principal = request.scope["state"]["principal"]
        body = handlers.parse_body(await request.body())
        return JSONResponse(await run_in_threadpool(handlers.sign, service, principal, body))

    async def attest(request: Request) -> Response:
        principal: Principal = request.scope["state"]["principal"]
        body = handlers.parse_body(await request.body())
        return JSONResponse(await run_in_threadpool(handlers.attest, service, principal, body))

    async def verify(request: Request) -> Response:
        body = handlers.parse_body(await request.body())
        return JSONResponse(await run_in_threadpool(handlers.verify, service, body))

    async def keys(request: Request) -> Response:
        principal: Principal = request.scope["state"]["principal"]
        return JSONResponse(await run_in_threadpool(handlers.keys, service, principal))

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        state: dict[str, Any] = {"keys": service.keys.health()}
        ready = all(value == "ok" for value in state["keys"].values())
        if service.config.server.redis_url:
            try:
                await run_in_threadpool(service.limiter.acquire, "readyz", 1_000_000)
                state["quotaStore"] = "ok"
            except QuotaUnavailable:
                state["quotaStore"], ready = "unavailable", False
        state["ready"] = ready
        return JSONResponse(state, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        return Response(service.metrics(), media_type="text/plain; version=0.0.4")

    async def openapi(_: Request) -> Response:
        return JSONResponse(OPENAPI)

    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        headers = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
        body = {"error": {"code": exc.code, "message": exc.message}}
        return JSONResponse(body, status_code=exc.status, headers=headers)

    routes = [
        Route("/v1/sign", sign, methods=["POST"]),
        Route("/v1/attest", attest, methods=["POST"]),
        Route("/v1/verify", verify, methods=["POST"]),
        Route("/v1/keys", keys, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={ApiError: api_error})
    return Gate(app, service)
