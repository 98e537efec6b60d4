"""The ASGI gate in front of every `/v1/` endpoint, in the order that keeps floods cheap.

1. The bearer token is verified (at most 8 KiB, one signature). A valid one always passes this
   step; a bad one is charged to its client address's budget: 401 naming the reason, or 429
   once the address has spent its budget (then until its bucket refills).
2. The endpoint's scope and the tenant (403).
3. The tenant's quota (429 with Retry-After; 503 if the shared quota store is down).
4. `max_inflight` (503 with Retry-After: never an unbounded queue), of which one tenant may hold
   at most half when there are several.
5. Only now the body is read, to `max_body_bytes` (413 past it).

Every request, whatever its fate, is one audit record (subject, tenant, verified or not;
never the token).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import anyio

from .quota import MemoryRateLimiter, QuotaUnavailable
from .tokens import Principal, TokenError

if TYPE_CHECKING:
    from .app import Service

__all__ = ["SCOPES", "Gate"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Seconds a request body may take to arrive once its slot is taken.
_BODY_DEADLINE_S = 10.0
#: Endpoint -> (method, the scope its token must carry).
SCOPES = {
    "/v1/sign": ("POST", "signer.sign"),
    "/v1/attest": ("POST", "signer.sign"),
    "/v1/verify": ("POST", "signer.verify"),
    "/v1/keys": ("GET", "signer.keys"),
}


class Gate:
    """Wraps the endpoint app; see the module docstring for the order of checks."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service
        self._inflight = 0
        self._by_tenant: dict[str, int] = {}
        self._blocked: dict[str, float] = {}  # client address -> monotonic time it may retry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: `/v1/` requests pass the checks; the rest go straight to the app."""
        path = scope["path"] if scope["type"] == "http" else ""
        if not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        if path not in SCOPES:  # no /v1 path reaches the app without passing here
            await _deny(send, 404, "NOT_FOUND", "no such endpoint")
            return
        started = time.monotonic()
        address = (scope.get("client") or ("unknown", 0))[0]
        principal: Principal | None = None
        status, reason = 500, "internal"
        try:
            status, reason, principal = await self._admit(scope, receive, send, address)
        finally:
            # Off the event loop: an append can wait behind the audit log's fdatasync.
            record = functools.partial(
                self.service.record_request,
                path=scope["path"],
                status=status,
                reason=reason,
                principal=principal,
                address=address,
                seconds=time.monotonic() - started,
            )
            await anyio.to_thread.run_sync(record)

    async def _admit(
        self, scope: Scope, receive: Receive, send: Send, address: str
    ) -> tuple[int, str, Principal | None]:
        method, needed = SCOPES[scope["path"]]
        now = time.monotonic()
        try:
            # A valid token always gets through: behind a TLS proxy every client has the
            # proxy's address, and one flooder must not lock the others out. A junk token costs
            # one bounded check (8 KiB, one signature) before the address budget applies.
            principal = self.service.tokens.verify(_bearer(scope))
        except TokenError as exc:
            until = self._blocked.get(address)
            if until is not None and until > now:
                status = await _deny(
                    send, 429, "RATE_LIMITED", "too many unauthenticated requests", until - now
                )
                return status, "rate_limited", None
            self._blocked.pop(address, None)
            decision = self.service.unauthenticated.acquire(
                address, self.service.config.server.unauthenticated_rate_per_minute
            )
            if not decision.allowed:
                self._blocked[address] = now + decision.retry_after_s
                if len(self._blocked) > 100_000:  # bounded: forget the oldest
                    self._blocked.pop(next(iter(self._blocked)))
                status = await _deny(
                    send, 429, "RATE_LIMITED", "too many unauthenticated requests",
                    decision.retry_after_s,
                )  # fmt: skip
                return status, "rate_limited", None
            return await _deny(send, 401, "UNAUTHORIZED", exc.reason), exc.reason, None
        if scope["method"] != method:
            return (
                await _deny(send, 405, "METHOD_NOT_ALLOWED", f"use {method}"),
                "method",
                principal,
            )
        if needed not in principal.scopes:
            return (
                await _deny(send, 403, "FORBIDDEN", f"the token lacks the scope {needed}"),
                "scope",
                principal,
            )
        tenant = self.service.config.tenant(principal.tenant or "") if principal.tenant else None
        if tenant is None:
            return (
                await _deny(send, 403, "FORBIDDEN", "the token's tenant is not configured"),
                "tenant",
                principal,
            )
        try:
            acquire = self.service.limiter.acquire
            key = f"tenant:{tenant.name}"
            if isinstance(self.service.limiter, MemoryRateLimiter):  # microseconds: inline
                decision = acquire(key, tenant.rate_per_minute)
            else:  # a network round trip: off the event loop
                decision = await anyio.to_thread.run_sync(acquire, key, tenant.rate_per_minute)
        except QuotaUnavailable:
            return (
                await _deny(send, 503, "UNAVAILABLE", "quota store unavailable", 5.0),
                "quota_store",
                principal,
            )
        if not decision.allowed:
            return (
                await _deny(
                    send, 429, "RATE_LIMITED", "tenant quota exceeded", decision.retry_after_s
                ),
                "quota",
                principal,
            )
        limit = self.service.config.server.max_inflight
        # One tenant (a hung key of its own) may hold at most half the slots when there are
        # others: the rest keep answering.
        share = limit if len(self.service.config.tenants) < 2 else max(1, limit // 2)
        if self._inflight >= limit or self._by_tenant.get(tenant.name, 0) >= share:
            return (
                await _deny(send, 503, "OVERLOADED", "too many requests in flight", 1.0),
                "overloaded",
                principal,
            )
        self._inflight += 1
        self._by_tenant[tenant.name] = self._by_tenant.get(tenant.name, 0) + 1
        try:
            try:
                with anyio.fail_after(_BODY_DEADLINE_S):  # a trickled body holds no slot long
                    body = await _read_body(
                        scope, receive, self.service.config.server.max_body_bytes
                    )
            except TimeoutError:
                status = await _deny(send, 408, "TIMEOUT", "the request body came too slowly")
                return status, "body_timeout", principal
            if body is None:
                return (
                    await _deny(send, 413, "TOO_LARGE", "request body over max_body_bytes"),
                    "too_large",
                    principal,
                )
            scope.setdefault("state", {})["principal"] = principal
            status = await self._forward(scope, body, send)
            return status, "ok" if status < 400 else "error", principal
        finally:
            self._inflight -= 1
            self._by_tenant[tenant.name] -= 1

    async def _forward(self, scope: Scope, body: bytes, send: Send) -> int:
        sent = False
        status = 500

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, replay, watch)
        return status


def _bearer(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = bytes(value).decode("latin-1")
            kind, _, token = text.partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
            raise TokenError("malformed token")
    raise TokenError("missing token")


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None past `limit` (a Content-Length over it is refused unread)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return None
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _deny(
    send: Send, status: int, code: str, message: str, retry_after: float | None = None
) -> int:
    """A JSON error answer; `Retry-After` in whole seconds (at least 1)."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="dssesign"'))
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, int(retry_after + 0.999))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status
