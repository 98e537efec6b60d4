"""Two replicas of `dssesign serve` behind one Redis: a tenant's quota holds across both.

Both read the same JWKS (the second replica's [auth] points at the first's file), so one token
works on either, as it would behind a load balancer; their token buckets live in Redis.
"""

from __future__ import annotations

import base64

import pytest

from tests.redis_server import RedisServer, run_redis
from tests.service import ServiceFactory

BODY = {
    "payload": base64.b64encode(b"release notes\n").decode(),
    "payloadType": "text/plain",
    "keys": ["release"],
}


def test_quota_is_shared_by_replicas_through_redis(
    service_factory: ServiceFactory, redis_server: RedisServer
) -> None:
    tenants = [("team-a", ["release"], 4)]
    first = service_factory(tenants=tenants, redis_url=redis_server.url)
    second = service_factory(
        tenants=tenants,
        redis_url=redis_server.url,
        auth={"jwks_file": str(first.directory / "jwks.json")},
    )
    token = first.token()
    statuses = []
    for service in (first, second, first, second, first, second):
        reply = service.call("POST", "/v1/sign", BODY, token=token)
        statuses.append(reply.status)
    # A burst of 4 in all, not 4 per replica.
    assert statuses[:4] == [200, 200, 200, 200], statuses
    assert statuses[4:] == [429, 429], statuses
    refused = second.call("POST", "/v1/sign", BODY, token=token)
    assert refused.status == 429 and int(refused.headers["retry-after"]) >= 1
    ready = first.call("GET", "/readyz", token=None)
    assert ready.status == 200 and ready.json()["quotaStore"] == "ok"


def test_a_redis_outage_fails_closed_and_readyz_says_so(
    service_factory: ServiceFactory,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Its own Redis (the session's is shared), stopped mid-run.
    with run_redis(tmp_path_factory) as own:
        service = service_factory(redis_url=own.url)
        assert service.call("POST", "/v1/sign", BODY).status == 200
        own.stop()
        reply = service.call("POST", "/v1/sign", BODY)
        ready = service.call("GET", "/readyz", token=None)
    assert reply.status == 503 and reply.error["code"] == "UNAVAILABLE"
    assert "retry-after" in reply.headers
    assert ready.status == 503 and ready.json()["quotaStore"] == "unavailable"
    del redis_server  # named for the marker: this test needs redis-server installed
