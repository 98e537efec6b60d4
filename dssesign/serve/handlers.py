"""What each endpoint does with a checked request: plain functions, no HTTP in sight.

The gate (`gate.py`) has already verified the token, the scope, the tenant, the quota and the
body size; these functions parse the body strictly, enforce the tenant's keys and the
configured TSAs, and run the same library code the CLI runs (`attest` builds and validates the
Statement exactly as `dssesign attest` does). Failures are `ApiError`s with a status and a
stable code; messages name what was wrong in the request and nothing of the server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._internal.strict_json import loads_strict
from ..codes import Code
from ..core.dsse import b64decode
from ..errors import DssesignError, InputError, SigningError, VerificationError
from ..intoto.predicates import prepare_predicate, resolve_predicate_type
from ..intoto.statement import (
    PAYLOAD_TYPE,
    ResourceDescriptor,
    build_statement,
    parse_statement,
    statement_payload,
)
from ..limits import DEFAULT_LIMITS
from ..sign.bundles import DEFAULT_STEM, bundles_for
from ..sign.multisign import SigningContext
from ..sign.timestamps import Timestamping
from ..verify import failure_report
from ..verify import verify as verify_envelope
from .keys import KeyUnavailable
from .tokens import Principal

if TYPE_CHECKING:
    from .app import Service

__all__ = ["ApiError", "attest", "keys", "sign", "verify"]

_MAX_KEYS = 16
_MAX_SUBJECTS = 1024


@dataclass
class ApiError(Exception):
    """An answer other than 200: HTTP status, a stable code, and a message for the client."""

    status: int
    code: str
    message: str
    retry_after: float | None = None


def parse_body(body: bytes) -> dict[str, Any]:
    """The request body: one strict JSON object (the verifier's own reader)."""
    try:
        document = loads_strict(body, what="request body")
    except InputError as exc:
        raise ApiError(400, "BAD_REQUEST", str(exc)) from None
    if not isinstance(document, dict):
        raise ApiError(400, "BAD_REQUEST", "request body: expected a JSON object")
    return document


def sign(service: Service, principal: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
    """`POST /v1/sign`: sign a payload with the tenant's named keys."""
    _only(body, {"payload", "payloadType", "keys", "tsa"})
    payload_type = _text(body, "payloadType")
    if len(payload_type) > DEFAULT_LIMITS.max_payload_type_chars or not payload_type.isprintable():
        raise ApiError(400, "BAD_REQUEST", "payloadType: not a short printable string")
    try:
        payload = b64decode(_text(body, "payload"), what="payload")
    except InputError as exc:
        raise ApiError(400, "BAD_REQUEST", str(exc)) from None
    if len(payload) > DEFAULT_LIMITS.max_payload_bytes:
        raise ApiError(413, "TOO_LARGE", "payload: over limits.max_payload_bytes")
    statement = None
    if payload_type == PAYLOAD_TYPE:
        try:
            statement = parse_statement(payload, allow_v01=True)
        except InputError as exc:
            raise ApiError(400, str(Code.INVALID_STATEMENT), f"payload: {exc}") from None
    return _sign(
        service, principal, body, payload=payload, payload_type=payload_type, statement=statement
    )


def attest(service: Service, principal: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
    """`POST /v1/attest`: build and validate the Statement as the CLI does, then sign it."""
    _only(body, {"subjects", "predicateType", "predicate", "keys", "tsa"})
    subjects = body.get("subjects")
    if not isinstance(subjects, list) or not 1 <= len(subjects) <= _MAX_SUBJECTS:
        raise ApiError(400, "BAD_REQUEST", f"subjects: a list of 1 to {_MAX_SUBJECTS} subjects")
    predicate = body.get("predicate")
    if not isinstance(predicate, dict):
        raise ApiError(400, "BAD_REQUEST", "predicate: expected a JSON object")
    try:
        descriptors = [
            ResourceDescriptor.from_dict(item, path=f"subjects[{index}]")
            for index, item in enumerate(subjects)
        ]
        raw = json.dumps(predicate, ensure_ascii=False).encode()
        type_uri, prepared = prepare_predicate(_text(body, "predicateType"), raw)
        statement = build_statement(descriptors, type_uri, prepared)
        payload = statement_payload(statement)
    except (InputError, DssesignError) as exc:
        raise ApiError(400, str(Code.INVALID_STATEMENT), str(exc)) from None
    return _sign(
        service,
        principal,
        body,
        payload=payload,
        payload_type=PAYLOAD_TYPE,
        statement=dict(statement),
    )


def verify(service: Service, body: Mapping[str, Any]) -> dict[str, Any]:
    """`POST /v1/verify`: the `verify --json` report against the configured trust root."""
    _only(body, {"envelope", "bundles", "predicateType", "digests"})
    envelope = body.get("envelope")
    if not isinstance(envelope, dict):
        raise ApiError(400, "BAD_REQUEST", "envelope: expected a DSSE envelope object")
    bundles = body.get("bundles", [])
    if not isinstance(bundles, list) or not all(isinstance(b, dict) for b in bundles):
        raise ApiError(400, "BAD_REQUEST", "bundles: expected a list of bundle objects")
    digests = body.get("digests", [])
    if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
        raise ApiError(400, "BAD_REQUEST", "digests: expected a list of ALG:HEX strings")
    predicate_type = body.get("predicateType")
    if predicate_type is not None:
        try:
            predicate_type = resolve_predicate_type(_text(body, "predicateType"))
        except DssesignError as exc:
            raise ApiError(400, "BAD_REQUEST", str(exc)) from None
    try:
        result = verify_envelope(
            json.dumps(envelope).encode(),
            service.trust_root,
            bundles=[json.dumps(b).encode() for b in bundles],
            digests=tuple(digests),
            predicate_type=predicate_type,
        )
    except VerificationError as exc:
        return failure_report(exc)
    return result.to_dict()


def keys(service: Service, principal: Principal) -> dict[str, Any]:
    """`GET /v1/keys`: the caller's tenant's keys and their public keys."""
    tenant = service.tenant_of(principal)
    listed = []
    for name in tenant.keys:
        try:
            signer = service.keys.signer(name)
        except KeyUnavailable:
            listed.append({"name": name, "available": False})
            continue
        listed.append(
            {
                "name": name,
                "available": True,
                "keyid": signer.keyid,
                "algorithm": signer.algorithm.name,
                "publicKey": signer.public_key.pem,
            }
        )
    return {"tenant": tenant.name, "keys": listed}


# --- shared -------------------------------------------------------------------------------------


def _sign(
    service: Service,
    principal: Principal,
    body: Mapping[str, Any],
    *,
    payload: bytes,
    payload_type: str,
    statement: Mapping[str, Any] | None,
) -> dict[str, Any]:
    names = _key_names(service, principal, body)
    timestamping = _timestamping(service, body)
    context = SigningContext(
        actor=principal.subject,
        tenant=principal.tenant,
        subject_digests=tuple(
            s["digest"] for s in (statement or {}).get("subject", []) if isinstance(s, dict)
        ),
        predicate_type=(statement or {}).get("predicateType"),
    )
    try:
        result = service.keys.sign(
            names,
            payload,
            payload_type,
            context=context,
            timestamping=timestamping,
            audit=service.audit,
        )
    except KeyUnavailable:
        # The detail (a backend's address, its error) is for the operator, not the client.
        message = f"key(s) {', '.join(names)} not available now"
        raise ApiError(503, "KEY_UNAVAILABLE", message, retry_after=5.0) from None
    except SigningError:
        # Why (a timeout, a refusal) is in the audit log's signing records, not in the answer.
        message = f"signing with {', '.join(names)} failed or timed out"
        raise ApiError(503, "SIGNING_FAILED", message, retry_after=5.0) from None
    service.audit.flush()  # no signature leaves before its audit record is durable
    files = bundles_for(result.envelope, result.signers, DEFAULT_STEM, result.timestamps)
    return {
        "envelope": result.envelope.to_dict(),
        "bundles": [json.loads(f.data) for f in files],
        "keys": [{"name": n, "keyid": s.keyid} for n, s in zip(names, result.signers, strict=True)],
    }


def _key_names(service: Service, principal: Principal, body: Mapping[str, Any]) -> list[str]:
    names = _names(body, "keys", required=True)
    tenant = service.tenant_of(principal)
    for name in names:
        if name not in tenant.keys:
            raise ApiError(403, "KEY_NOT_ALLOWED", f"key {name!r} is not one of this tenant's keys")
    return names


def _timestamping(service: Service, body: Mapping[str, Any]) -> Timestamping | None:
    names = _names(body, "tsa", required=False)
    if not names:
        return None
    urls = []
    for name in names:
        url = service.tsa_urls.get(name)
        if url is None:
            raise ApiError(400, "UNKNOWN_TSA", f"tsa {name!r} is not configured")
        urls.append(url)
    return Timestamping(tuple(urls), service.tsa_authorities)


def _names(body: Mapping[str, Any], field: str, *, required: bool) -> list[str]:
    value = body.get(field, [] if not required else None)
    ok = isinstance(value, list) and all(isinstance(v, str) and 0 < len(v) <= 64 for v in value)
    if not ok or len(value) > _MAX_KEYS or (required and not value):
        raise ApiError(400, "BAD_REQUEST", f"{field}: expected a list of names (1 to {_MAX_KEYS})")
    if len(set(value)) != len(value):
        raise ApiError(400, "BAD_REQUEST", f"{field}: a name is given twice")
    return list(value)


def _text(body: Mapping[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise ApiError(400, "BAD_REQUEST", f"{field}: expected a non-empty string")
    return value


def _only(body: Mapping[str, Any], allowed: Sequence[str] | set[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise ApiError(400, "BAD_REQUEST", f"unknown field(s) {shown}")
