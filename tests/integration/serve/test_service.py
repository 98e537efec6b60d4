"""`dssesign serve` as a real process on 127.0.0.1: tokens, scopes, tenants, quotas, limits,
backpressure, and signatures that `dssesign verify` and securesystemslib accept.

One server (module scope) takes the token matrix, the endpoints and the quota; the flood, the
body limit and the backpressure tests each start their own, since they change the limits or
spend the budget of the only client address the tests have (127.0.0.1).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import Key as SslibKeyBase
from securesystemslib.signer import SSlibKey

from dssesign.core.keys import PublicKey
from dssesign.intoto.statement import PAYLOAD_TYPE
from tests.localstack import aws_env
from tests.service import (
    ALL_SCOPES,
    SUBJECT,
    Key,
    Reply,
    RunningService,
    ServiceFactory,
    SoftwareKey,
    Tenant,
)

PREDICATE_TYPE = "https://example.com/predicate/test/v1"
DIGEST = hashlib.sha256(b"artifact").hexdigest()
#: The password of the module's encrypted key: it must never show anywhere the server writes.
SEALED_PASSWORD = "pw-" + uuid.uuid4().hex


# --- the module's service -----------------------------------------------------------------------


@dataclass
class Setup:
    service: RunningService
    keys: dict[str, SoftwareKey]


@pytest.fixture(scope="module")
def setup(module_service_factory: ServiceFactory) -> Setup:
    factory = module_service_factory
    keys = {
        "release": factory.software_key("release", "ed25519"),
        "build": factory.software_key("build", "ecdsa-p256"),
        "sealed": factory.software_key("sealed", "ecdsa-p256", password=SEALED_PASSWORD),
        "other": factory.software_key("other", "ed25519"),
    }
    service = factory(
        keys=[
            Key("release", str(keys["release"].path)),
            Key("build", str(keys["build"].path)),
            Key("sealed", str(keys["sealed"].path), 5.0, "SEALED_KEY_PASSWORD"),
            Key("other", str(keys["other"].path)),
        ],
        tenants=[
            Tenant("team-a", ["release", "build", "sealed"]),
            Tenant("team-b", ["other"]),
            Tenant("team-q", ["release"], 5),
        ],
        env={"SEALED_KEY_PASSWORD": SEALED_PASSWORD},
    )
    return Setup(service, keys)


@pytest.fixture
def service(setup: Setup) -> RunningService:
    return setup.service


def sign_body(*keys: str, payload: bytes = b"hello", payload_type: str = "text/plain") -> Any:
    return {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "keys": list(keys),
    }


def attest_body(*keys: str) -> Any:
    return {
        "subjects": [{"name": "artifact.bin", "digest": {"sha256": DIGEST}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"builder": "ci", "run": 7},
        "keys": list(keys),
    }


def assert_refused(reply: Reply, status: int, code: str, message: str, token: str | None) -> None:
    """A refusal with exactly this error, and nothing else in the body: no trace, no token."""
    assert reply.status == status, reply
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.error == {"code": code, "message": message}
    text = reply.body.decode()
    assert "Traceback" not in text and 'File "' not in text
    for leak in _token_parts(token):
        assert leak not in text
        assert all(leak not in value for value in reply.headers.values())
    if status == 401:
        assert reply.headers.get("www-authenticate") == 'Bearer realm="dssesign"'


def _token_parts(token: str | None) -> list[str]:
    """The token and each of its segments long enough to recognise."""
    if not token:
        return []
    return [token, *(part for part in token.split(".") if len(part) >= 8)]


def sslib_verify(envelope: dict[str, Any], keys: list[PublicKey]) -> set[str]:
    """securesystemslib's own DSSE verification; the keyids it accepted (all must)."""
    sslib_keys: list[SslibKeyBase] = []
    for key in keys:
        assert key.algorithm.sslib_scheme is not None
        sslib_keys.append(
            SSlibKey.from_crypto(key.key, keyid=key.keyid, scheme=key.algorithm.sslib_scheme)
        )
    # from_dict pops what it reads: give it a copy.
    theirs = SslibEnvelope.from_dict(copy.deepcopy(envelope))
    accepted = theirs.verify(sslib_keys, threshold=len(sslib_keys))
    return set(accepted)


def cli_verify(
    service: RunningService, directory: Path, answer: dict[str, Any], *extra: str
) -> subprocess.CompletedProcess[str]:
    """`dssesign verify --json` of a signing answer written to files, as a user would."""
    directory.mkdir(parents=True, exist_ok=True)
    envelope = directory / "envelope.dsse.json"
    envelope.write_text(json.dumps(answer["envelope"]))
    bundles = []
    for index, bundle in enumerate(answer["bundles"]):
        path = directory / f"envelope.{index}.sigstore.json"
        path.write_text(json.dumps(bundle))
        bundles.append(str(path))
    return subprocess.run(
        [
            *(sys.executable, "-m", "dssesign", "verify", "--json"),
            *("--trust-root", str(service.trust_root), *extra, str(envelope), *bundles),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- the token matrix ---------------------------------------------------------------------------


def _hs256_confusion(service: RunningService, kid: str) -> str:
    """HS256 keyed with the JWKS public key's PEM, signed by hand (PyJWT refuses to)."""
    public = service.token_keys[kid].public_key()
    secret = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    unsigned = service.forge(header, service.claims(), b"").rsplit(".", 1)[0]
    signature = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    return service.forge(header, service.claims(), signature)


def _tampered(service: RunningService) -> str:
    """A valid token whose claims were changed afterwards (tenant team-a -> team-b)."""
    header, _, signature = service.token().split(".")
    claims = base64.urlsafe_b64encode(json.dumps(service.claims(tenant="team-b")).encode())
    token = f"{header}.{claims.rstrip(b'=').decode()}.{signature}"
    service.minted.append(token)
    return token


def _foreign_key(service: RunningService) -> str:
    """ES256 under kid k-es, but signed by a key that is not in the JWKS."""
    return service.token(key=ec.generate_private_key(ec.SECP256R1()))


#: (case, token maker, keys to sign with, status, code, message).
MATRIX: list[tuple[str, Callable[[RunningService], str | None], str, int, str, str]] = [
    ("es256", lambda s: s.token(alg="ES256"), "release", 200, "", ""),
    ("rs256", lambda s: s.token(alg="RS256"), "release", 200, "", ""),
    ("eddsa", lambda s: s.token(alg="EdDSA"), "release", 200, "", ""),
    ("scp-array", lambda s: s.token(scope=None, scp=["signer.sign"]), "build", 200, "", ""),
    (
        "expired",
        lambda s: s.token(iat=int(time.time()) - 900, exp=int(time.time()) - 600),
        "release",
        401,
        "UNAUTHORIZED",
        "token expired",
    ),
    (
        "not-yet-valid",
        lambda s: s.token(nbf=int(time.time()) + 600),
        "release",
        401,
        "UNAUTHORIZED",
        "token not yet valid",
    ),
    (
        "wrong-issuer",
        lambda s: s.token(iss="https://evil.example"),
        "release",
        401,
        "UNAUTHORIZED",
        "wrong issuer",
    ),
    (
        "wrong-audience",
        lambda s: s.token(aud="someone-else"),
        "release",
        401,
        "UNAUTHORIZED",
        "wrong audience",
    ),
    (
        "no-audience",
        lambda s: s.token(aud=None),
        "release",
        401,
        "UNAUTHORIZED",
        "wrong audience",
    ),
    (
        "missing-scope",
        lambda s: s.token(scope="signer.verify signer.keys"),
        "release",
        403,
        "FORBIDDEN",
        "the token lacks the scope signer.sign",
    ),
    (
        "other-tenants-key",
        lambda s: s.token(tenant="team-b"),
        "release",
        403,
        "KEY_NOT_ALLOWED",
        "key 'release' is not one of this tenant's keys",
    ),
    (
        "unknown-tenant",
        lambda s: s.token(tenant="team-nobody"),
        "release",
        403,
        "FORBIDDEN",
        "the token's tenant is not configured",
    ),
    (
        "no-tenant",
        lambda s: s.token(tenant=None),
        "release",
        403,
        "FORBIDDEN",
        "the token's tenant is not configured",
    ),
    (
        "alg-none",
        lambda s: s.forge({"alg": "none", "typ": "JWT"}, s.claims(), b""),
        "release",
        401,
        "UNAUTHORIZED",
        "algorithm not allowed",
    ),
    (
        "alg-none-with-kid",
        lambda s: s.forge({"alg": "none", "kid": "k-es"}, s.claims(), b""),
        "release",
        401,
        "UNAUTHORIZED",
        "algorithm not allowed",
    ),
    (
        "hs256-rsa-pem",
        lambda s: _hs256_confusion(s, "k-rs"),
        "release",
        401,
        "UNAUTHORIZED",
        "algorithm not allowed",
    ),
    (
        "hs256-ec-pem",
        lambda s: _hs256_confusion(s, "k-es"),
        "release",
        401,
        "UNAUTHORIZED",
        "algorithm not allowed",
    ),
    (
        "es256-against-rsa-kid",
        lambda s: s.token(alg="ES256", kid="k-rs"),
        "release",
        401,
        "UNAUTHORIZED",
        "algorithm not allowed",
    ),
    (
        "unknown-kid",
        lambda s: s.token(kid="k-unknown"),
        "release",
        401,
        "UNAUTHORIZED",
        "unknown key",
    ),
    ("no-kid", lambda s: s.token(kid=None), "release", 401, "UNAUTHORIZED", "unknown key"),
    ("tampered-payload", _tampered, "release", 401, "UNAUTHORIZED", "bad signature"),
    ("foreign-key", _foreign_key, "release", 401, "UNAUTHORIZED", "bad signature"),
    ("garbage", lambda s: "not-a-jwt", "release", 401, "UNAUTHORIZED", "malformed token"),
    ("no-authorization", lambda s: None, "release", 401, "UNAUTHORIZED", "missing token"),
]


@pytest.mark.parametrize(
    ("make", "key", "status", "code", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in MATRIX],
)
def test_token_matrix(  # noqa: PLR0917 - the parametrized columns
    setup: Setup,
    make: Callable[[RunningService], str | None],
    key: str,
    status: int,
    code: str,
    message: str,
) -> None:
    service = setup.service
    token = make(service)
    before = len(service.settle())
    reply = service.call("POST", "/v1/sign", sign_body(key), token=token)
    if status == 200:
        assert reply.status == 200, reply
        answer = reply.json()
        assert [k["name"] for k in answer["keys"]] == [key]
        assert sslib_verify(answer["envelope"], [setup.keys[key].public_key]) == {
            setup.keys[key].keyid
        }
    else:
        assert_refused(reply, status, code, message, token)

    records = service.settle()
    assert len(records) == before + 1, "one audit record per request"
    record = records[-1]
    assert record["path"] == "/v1/sign"
    assert record["status"] == status
    if status == 401:
        assert record["verified"] is False
        assert record.get("subject") is None and record.get("tenant") is None
        assert record["outcome"] == message
    else:
        assert record["verified"] is True
        assert record["subject"] == SUBJECT
        claims = json.loads(base64.urlsafe_b64decode(str(token).split(".")[1] + "=="))
        assert record.get("tenant") == claims.get("tenant")
    audit = service.audit_text()
    for leak in _token_parts(token):
        assert leak not in audit


def test_no_token_ever_reaches_the_audit_log_or_the_server_log(setup: Setup) -> None:
    service = setup.service
    service.call("GET", "/v1/keys")  # at least one
    audit, log = service.audit_text(), service.log_text()
    assert service.minted
    for token in service.minted:
        for leak in _token_parts(token):
            assert leak not in audit
            assert leak not in log
    assert SEALED_PASSWORD not in audit and SEALED_PASSWORD not in log


@pytest.mark.parametrize("token", ["bad", "valid"])
def test_the_token_is_checked_before_the_body_is_read(setup: Setup, token: str) -> None:
    service = setup.service
    bearer = "eyJhbGciOiJFUzI1NiJ9.e30.AAAA" if token == "bad" else service.token()
    before = len(service.settle())
    started = time.monotonic()
    # A Content-Length of 1 GB with no body behind it: an answer means nothing was waited for.
    reply = service.call(
        "POST",
        "/v1/sign",
        token=bearer,
        body=b"",
        headers={"Content-Length": str(10**9), "Content-Type": "application/json"},
        timeout=10,
    )
    assert time.monotonic() - started < 5
    if token == "bad":
        assert_refused(reply, 401, "UNAUTHORIZED", "unknown key", bearer)  # no kid
    else:
        assert_refused(reply, 413, "TOO_LARGE", "request body over max_body_bytes", bearer)
        assert service.wait_records(before + 1)[-1]["outcome"] == "too_large"


# --- scopes and methods -------------------------------------------------------------------------

ENDPOINTS = {
    "/v1/sign": ("POST", "signer.sign"),
    "/v1/attest": ("POST", "signer.sign"),
    "/v1/verify": ("POST", "signer.verify"),
    "/v1/keys": ("GET", "signer.keys"),
}


def _body_for(service: RunningService, path: str) -> Any:
    if path == "/v1/sign":
        return sign_body("release")
    if path == "/v1/attest":
        return attest_body("release")
    if path == "/v1/verify":
        signed = service.call("POST", "/v1/sign", sign_body("release")).json()
        return {"envelope": signed["envelope"], "bundles": signed["bundles"]}
    return None


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_each_endpoint_needs_its_scope_and_only_it(setup: Setup, path: str) -> None:
    service = setup.service
    method, scope = ENDPOINTS[path]
    body = _body_for(service, path)
    others = " ".join(s for s in ALL_SCOPES.split() if s != scope)
    lacking = service.token(scope=others)
    reply = service.call(method, path, body, token=lacking)
    assert_refused(reply, 403, "FORBIDDEN", f"the token lacks the scope {scope}", lacking)
    for only in (service.token(scope=scope), service.token(scope=None, scp=[scope])):
        reply = service.call(method, path, body, token=only)
        assert reply.status == 200, reply


@pytest.mark.parametrize("host", ["x/v1/sign#", "x/v1/attest?", "127.0.0.1/v1/sign"])
def test_a_host_header_cannot_choose_another_handler(setup: Setup, host: str) -> None:
    """A verify-only token sends a sign body to /v1/verify with a Host header that makes the
    request's URL read /v1/sign (Starlette < 1.0.1 built the URL from it): each route has its
    own handler, so the body is judged as a verify request and nothing is signed."""
    service = setup.service
    verifier = service.token(scope="signer.verify")
    reply = service.call(
        "POST", "/v1/verify", sign_body("release"), token=verifier, headers={"Host": host}
    )
    assert reply.status in (400, 200), reply
    assert "envelope" not in (reply.json() if reply.status == 200 else {}), reply
    if reply.status == 400:
        assert reply.error["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_the_wrong_method_is_405_after_the_token(setup: Setup, path: str) -> None:
    service = setup.service
    method, _ = ENDPOINTS[path]
    wrong = "GET" if method == "POST" else "POST"
    token = service.token()
    reply = service.call(wrong, path, token=token, body=b"{}" if wrong == "POST" else None)
    assert_refused(reply, 405, "METHOD_NOT_ALLOWED", f"use {method}", token)
    reply = service.call(wrong, path, token=None)  # no token: 401 first
    assert reply.status == 401


# --- the endpoints ------------------------------------------------------------------------------


def test_sign_with_two_keys_verifies_everywhere(setup: Setup, tmp_path: Path) -> None:
    service = setup.service
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact.bin", "digest": {"sha256": DIGEST}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"k": "v"},
    }
    payload = json.dumps(statement).encode()
    reply = service.call(
        "POST",
        "/v1/sign",
        sign_body("release", "build", payload=payload, payload_type=PAYLOAD_TYPE),
    )
    assert reply.status == 200, reply
    answer = reply.json()
    keys = [setup.keys["release"], setup.keys["build"]]
    assert answer["keys"] == [
        {"name": "release", "keyid": keys[0].keyid},
        {"name": "build", "keyid": keys[1].keyid},
    ]
    assert base64.b64decode(answer["envelope"]["payload"]) == payload
    assert len(answer["envelope"]["signatures"]) == 2 and len(answer["bundles"]) == 2
    assert sslib_verify(answer["envelope"], [k.public_key for k in keys]) == {k.keyid for k in keys}
    result = cli_verify(service, tmp_path, answer, "--digest", f"sha256:{DIGEST}")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert {k["keyid"] for k in report["keysCounted"]} == {k.keyid for k in keys}


def test_sign_arbitrary_payload_with_the_encrypted_key(setup: Setup) -> None:
    service = setup.service
    reply = service.call("POST", "/v1/sign", sign_body("sealed", payload=b"\x00\xffbinary"))
    assert reply.status == 200, reply
    envelope = reply.json()["envelope"]
    assert envelope["payloadType"] == "text/plain"
    sealed = setup.keys["sealed"]
    assert sslib_verify(envelope, [sealed.public_key]) == {sealed.keyid}


def test_attest_builds_the_statement_and_verifies(setup: Setup, tmp_path: Path) -> None:
    service = setup.service
    reply = service.call("POST", "/v1/attest", attest_body("release"))
    assert reply.status == 200, reply
    answer = reply.json()
    statement = json.loads(base64.b64decode(answer["envelope"]["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": "artifact.bin", "digest": {"sha256": DIGEST}}]
    assert statement["predicateType"] == PREDICATE_TYPE
    assert statement["predicate"] == {"builder": "ci", "run": 7}
    assert answer["envelope"]["payloadType"] == PAYLOAD_TYPE
    release = setup.keys["release"]
    assert sslib_verify(answer["envelope"], [release.public_key]) == {release.keyid}
    result = cli_verify(
        service, tmp_path, answer, "--type", PREDICATE_TYPE, "--digest", f"sha256:{DIGEST}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wrong = cli_verify(service, tmp_path / "wrong", answer, "--digest", "sha256:" + "0" * 64)
    assert wrong.returncode == 1


def test_attest_refuses_a_bad_statement(setup: Setup) -> None:
    service = setup.service
    body = attest_body("release")
    body["subjects"] = [{"name": "x", "digest": {"sha256": "not-hex"}}]
    reply = service.call("POST", "/v1/attest", body)
    assert reply.status == 400
    assert reply.error["code"] == "INVALID_STATEMENT"


def test_verify_answers_the_cli_report(setup: Setup, tmp_path: Path) -> None:
    service = setup.service
    answer = service.call("POST", "/v1/attest", attest_body("release", "build")).json()
    request = {
        "envelope": answer["envelope"],
        "bundles": answer["bundles"],
        "predicateType": PREDICATE_TYPE,
        "digests": [f"sha256:{DIGEST}"],
    }
    reply = service.call("POST", "/v1/verify", request)
    assert reply.status == 200, reply
    report = reply.json()
    assert report["ok"] is True and report["code"] == "OK"
    cli = cli_verify(
        service, tmp_path, answer, "--type", PREDICATE_TYPE, "--digest", f"sha256:{DIGEST}"
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert report == json.loads(cli.stdout)

    tampered = dict(answer["envelope"])
    tampered["payload"] = base64.b64encode(b'{"_type": "forged"}').decode()
    reply = service.call("POST", "/v1/verify", {"envelope": tampered})
    assert reply.status == 200
    assert reply.json()["ok"] is False
    reply = service.call("POST", "/v1/verify", {**request, "digests": ["sha256:" + "0" * 64]})
    assert reply.status == 200 and reply.json()["ok"] is False


def test_keys_lists_the_tenants_keys_only(setup: Setup) -> None:
    service = setup.service
    reply = service.call("GET", "/v1/keys")
    assert reply.status == 200, reply
    listing = reply.json()
    assert listing["tenant"] == "team-a"
    by_name = {k["name"]: k for k in listing["keys"]}
    assert set(by_name) == {"release", "build", "sealed"}
    for name, entry in by_name.items():
        assert entry["available"] is True
        assert entry["keyid"] == setup.keys[name].keyid
        assert entry["publicKey"] == setup.keys[name].public_key.pem
    other = service.call("GET", "/v1/keys", token=service.token(tenant="team-b")).json()
    assert [k["name"] for k in other["keys"]] == ["other"]
    assert "PRIVATE" not in reply.body.decode()


def test_bad_requests_are_400_with_a_code(setup: Setup) -> None:
    service = setup.service
    for body in (b"not json", b"[]", b'{"payload": "aGk=", "payloadType": "x", "keys": []}'):
        reply = service.call("POST", "/v1/sign", body=body)
        assert reply.status == 400, reply
        assert reply.error["code"] == "BAD_REQUEST"
        assert "Traceback" not in reply.body.decode()
    reply = service.call("POST", "/v1/sign", {**sign_body("release"), "tsa": ["nowhere"]})
    assert reply.status == 400 and reply.error["code"] == "UNKNOWN_TSA"


def test_openapi_names_the_four_endpoints(setup: Setup) -> None:
    reply = setup.service.call("GET", "/openapi.json", token=None)
    assert reply.status == 200
    document = reply.json()
    assert str(document["openapi"]).startswith("3.")
    assert {"/v1/sign", "/v1/attest", "/v1/verify", "/v1/keys"} <= set(document["paths"])
    assert set(document["paths"]["/v1/keys"]) == {"get"}
    for path in ("/v1/sign", "/v1/attest", "/v1/verify"):
        assert set(document["paths"][path]) == {"post"}


def test_health_readiness_and_metrics_hold_no_secret(setup: Setup) -> None:
    service = setup.service
    service.call("POST", "/v1/sign", sign_body("release"))
    assert service.call("GET", "/healthz", token=None).json() == {"status": "ok"}
    ready = service.call("GET", "/readyz", token=None)
    assert ready.status == 200
    assert ready.json()["ready"] is True
    assert set(ready.json()["keys"].values()) == {"ok"}
    metrics = service.call("GET", "/metrics", token=None)
    assert metrics.status == 200
    text = metrics.body.decode()
    assert 'dssesign_requests_total{path="/v1/sign",status="200"}' in text
    assert 'dssesign_key_up{key="sealed"} 1' in text
    for token in service.minted:
        for leak in _token_parts(token):
            assert leak not in text
    for secret in (SEALED_PASSWORD, "Bearer", "PRIVATE KEY", SUBJECT):
        assert secret not in text and secret not in ready.body.decode()


def test_sign_with_a_configured_tsa(
    service_factory: ServiceFactory, tsa: Any, tmp_path: Path
) -> None:
    service = service_factory(tsa={"test-tsa": tsa})
    reply = service.call(
        "POST",
        "/v1/attest",
        {**attest_body("release"), "tsa": ["test-tsa"]},
    )
    assert reply.status == 200, reply
    answer = reply.json()
    assert answer["bundles"][0]["verificationMaterial"].get("timestampVerificationData")
    result = cli_verify(service, tmp_path, answer, "--require-timestamp")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["keysCounted"][0].get("signedAt")


# --- quota ----------------------------------------------------------------------------------------


def test_tenant_quota_burst_then_429(setup: Setup) -> None:
    service = setup.service
    token = service.token(tenant="team-q")
    statuses = [service.call("GET", "/v1/keys", token=token).status for _ in range(5)]
    assert statuses == [200] * 5
    reply = service.call("GET", "/v1/keys", token=token)
    assert_refused(reply, 429, "RATE_LIMITED", "tenant quota exceeded", token)
    assert 1 <= int(reply.headers["retry-after"]) <= 13  # one request per 12 s refills
    # Other tenants have their own buckets.
    before = len(service.settle())
    assert service.call("GET", "/v1/keys").status == 200
    record = service.wait_records(before + 1)[-1]
    assert record["status"] == 200 and record["tenant"] == "team-a"
    quota = [r for r in service.request_records() if r["outcome"] == "quota"]
    assert quota and quota[-1]["tenant"] == "team-q" and quota[-1]["verified"] is True


# --- services of their own ------------------------------------------------------------------------


def test_unauthenticated_flood_is_cut_off(service_factory: ServiceFactory) -> None:
    budget = 5
    service = service_factory(limits={"unauthenticated_rate_per_minute": budget})
    statuses = [
        service.call("GET", "/v1/keys", token=f"flood-{i}").status for i in range(budget + 3)
    ]
    assert statuses == [401] * budget + [429] * 3
    reply = service.call("GET", "/v1/keys", token="flood-x")
    assert_refused(reply, 429, "RATE_LIMITED", "too many unauthenticated requests", "flood-x")
    assert 1 <= int(reply.headers["retry-after"]) <= 13
    # A valid token from the same address still gets through: behind a TLS proxy every client
    # shares the proxy's address, and one flooder must not lock the others out.
    assert service.call("GET", "/v1/keys").status == 200
    records = service.settle()
    assert len(records) == budget + 5
    assert [r["status"] for r in records] == [401] * budget + [429] * 4 + [200]
    assert all(r["verified"] is False for r in records[:-1]) and records[-1]["verified"]
    assert [r["outcome"] for r in records[budget:-1]] == ["rate_limited"] * 4
    assert all(r["client"] == "127.0.0.1" for r in records)
    # The junk goes on being refused at once.
    assert service.call("GET", "/v1/keys", token="flood-y").status == 429
    # Health endpoints are outside the gate: a blocked address can still probe them.
    assert service.call("GET", "/healthz", token=None).status == 200


def test_a_forwarded_header_does_not_reset_the_flood_budget(
    service_factory: ServiceFactory,
) -> None:
    service = service_factory(limits={"unauthenticated_rate_per_minute": 2})
    statuses = [
        service.call(
            "GET", "/v1/keys", token="bad", headers={"X-Forwarded-For": f"spoofed-{i}"}
        ).status
        for i in range(4)
    ]
    records = service.settle()
    assert {r["client"] for r in records} == {"127.0.0.1"}
    assert statuses == [401, 401, 429, 429]


def test_body_limit(service_factory: ServiceFactory) -> None:
    service = service_factory(limits={"max_body_bytes": 1024})
    token = service.token()
    big = sign_body("release", payload=b"x" * 2048)
    reply = service.call("POST", "/v1/sign", big, token=token)
    assert_refused(reply, 413, "TOO_LARGE", "request body over max_body_bytes", token)
    small = sign_body("release", payload=b"x" * 512)
    assert service.call("POST", "/v1/sign", small).status == 200

    # Chunked, with no Content-Length: counted as it arrives.
    connection = HTTPConnection("127.0.0.1", service.port, timeout=10)
    try:
        chunks = iter([json.dumps(big).encode()[i : i + 256] for i in range(0, 3000, 256)])
        connection.request(
            "POST",
            "/v1/sign",
            body=chunks,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"]["code"] == "TOO_LARGE"
    finally:
        connection.close()


# --- backpressure: a KMS whose Sign never answers ------------------------------------------------


class _FakeKms(ThreadingHTTPServer):
    """Just enough AWS KMS (JSON protocol) on 127.0.0.1: GetPublicKey answers, Sign hangs."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _KmsHandler)
        self.key_id = str(uuid.uuid4())
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.release = threading.Event()
        self.signs = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def ref(self) -> str:
        port = self.server_address[1]
        return f"awskms://127.0.0.1:{port}/{self.key_id}?timeout=60&max-attempts=1"

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(self.key.public_key())

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _KmsHandler(BaseHTTPRequestHandler):
    server: _FakeKms
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        target = self.headers.get("X-Amz-Target", "")
        if target.endswith(".Sign"):
            with self.server.lock:
                self.server.signs += 1
            self.server.release.wait(120)  # the hung backend
            self.close_connection = True
            return
        if not target.endswith(".GetPublicKey"):
            self.send_error(400)
            return
        der = self.server.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        body = json.dumps(
            {
                "KeyId": f"arn:aws:kms:us-east-1:000000000000:key/{self.server.key_id}",
                "PublicKey": base64.b64encode(der).decode(),
                "KeySpec": "ECC_NIST_P256",
                "KeyUsage": "SIGN_VERIFY",
                "SigningAlgorithms": ["ECDSA_SHA_256"],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


SLOW_TIMEOUT_S = 2.0
SLACK_S = 3.0


@pytest.fixture
def fake_kms() -> Iterator[_FakeKms]:
    server = _FakeKms()
    yield server
    server.close()


def _slow_service(
    factory: ServiceFactory, kms: _FakeKms, tmp_path: Path, max_inflight: int
) -> RunningService:
    release = factory.software_key("release")
    return factory(
        keys=[Key("slow", kms.ref, SLOW_TIMEOUT_S), Key("release", str(release.path))],
        tenants=[Tenant("team-slow", ["slow"]), Tenant("team-b", ["release"])],
        limits={"max_inflight": max_inflight},
        env=aws_env(tmp_path),
        trusted=[kms.public_key],
    )


def _timed(service: RunningService, token: str, key: str) -> tuple[Reply, float]:
    started = time.monotonic()
    reply = service.call("POST", "/v1/sign", sign_body(key), token=token, timeout=30)
    return reply, time.monotonic() - started


def _wait_for_signs(kms: _FakeKms, count: int) -> None:
    deadline = time.monotonic() + 5
    while kms.signs < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert kms.signs >= count


def test_backpressure_max_inflight(
    service_factory: ServiceFactory, fake_kms: _FakeKms, tmp_path: Path
) -> None:
    service = _slow_service(service_factory, fake_kms, tmp_path, max_inflight=2)
    token = service.token(tenant="team-slow")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _timed(service, token, "slow"), range(8)))
    codes = sorted(reply.error["code"] for reply, _ in results)
    # Two tenants: one may hold at most half of the 2 slots, so one request reaches the key.
    assert codes == ["OVERLOADED"] * 7 + ["SIGNING_FAILED"], results
    for reply, elapsed in results:
        assert reply.status == 503
        assert int(reply.headers["retry-after"]) >= 1
        assert elapsed < SLOW_TIMEOUT_S + SLACK_S, "a request waited past the key's timeout"
        if reply.error["code"] == "OVERLOADED":
            assert elapsed < SLACK_S  # refused at once, never queued
    assert fake_kms.signs == 1  # the other seven never reached the key
    # The slots are free again; the hung key is not ready, the other is.
    good = service.call(
        "POST", "/v1/sign", sign_body("release"), token=service.token(tenant="team-b")
    )
    assert good.status == 200, good
    ready = service.call("GET", "/readyz", token=None)
    assert ready.status == 503
    assert ready.json()["keys"]["release"] == "ok"
    assert ready.json()["keys"]["slow"].startswith("last signature failed")
    outcomes = [r["outcome"] for r in service.settle()]
    assert outcomes.count("overloaded") == 7


def test_a_hung_key_does_not_block_other_keys(
    service_factory: ServiceFactory, fake_kms: _FakeKms, tmp_path: Path
) -> None:
    service = _slow_service(service_factory, fake_kms, tmp_path, max_inflight=32)
    slow_token, other = service.token(tenant="team-slow"), service.token(tenant="team-b")
    with ThreadPoolExecutor(8) as pool:
        hung = [pool.submit(_timed, service, slow_token, "slow") for _ in range(8)]
        _wait_for_signs(fake_kms, 8)
        for _ in range(3):
            reply, elapsed = _timed(service, other, "release")
            assert reply.status == 200, reply
            assert elapsed < 1.5
        for future in hung:
            reply, elapsed = future.result()
            assert reply.status == 503 and reply.error["code"] == "SIGNING_FAILED"
            assert elapsed < SLOW_TIMEOUT_S + SLACK_S


def test_a_hung_key_does_not_starve_other_tenants_of_inflight_slots(
    service_factory: ServiceFactory, fake_kms: _FakeKms, tmp_path: Path
) -> None:
    service = _slow_service(service_factory, fake_kms, tmp_path, max_inflight=2)
    slow_token, other = service.token(tenant="team-slow"), service.token(tenant="team-b")
    with ThreadPoolExecutor(2) as pool:
        hung = [pool.submit(_timed, service, slow_token, "slow") for _ in range(2)]
        # One reaches the hung key; the other is refused at once (one tenant: half the slots).
        _wait_for_signs(fake_kms, 1)
        try:
            reply, _ = _timed(service, other, "release")
            assert reply.status == 200, reply
        finally:
            for future in hung:
                future.result()


def test_a_signing_failure_names_the_key_not_the_backend(
    service_factory: ServiceFactory, fake_kms: _FakeKms, tmp_path: Path
) -> None:
    service = _slow_service(service_factory, fake_kms, tmp_path, max_inflight=4)
    reply, _ = _timed(service, service.token(tenant="team-slow"), "slow")
    assert reply.status == 503 and reply.error["code"] == "SIGNING_FAILED"
    message = reply.error["message"]
    assert "slow" in message  # the configured key name is what the client knows
    for internal in ("awskms://", str(fake_kms.server_address[1]), fake_kms.key_id):
        assert internal not in message
