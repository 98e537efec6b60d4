"""The client of `dssesign serve`: what `attest --server` / `sign --server` and library users call.

Needs no server-side package (urllib3 only). 429 and 503 are retried as `Retry-After` says,
within a bound (`max_retries`, each wait at most `max_wait_s`); an unreachable service is a
`SigningError` (exit 1) with one line. What comes back is checked before anyone uses it: the
envelope must carry exactly the payload and payload type that were sent, with one bundle per
signature holding that signature.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3

from .._internal.strict_json import loads_strict
from .._internal.text import clip, escape_controls
from ..core.dsse import Envelope, b64encode
from ..errors import ConfigError, DssesignError, InputError, SigningError

__all__ = ["ServiceClient", "Signed"]

_MAX_RESPONSE = 256 * 1024 * 1024
_MAX_TOKEN = 8192
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
#: RFC 6750's b64token: what a bearer token may be, and nothing that could split a header.
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")


@dataclass(frozen=True)
class Signed:
    """A signing answer: the envelope, one bundle (JSON bytes) per signature, the keys used."""

    envelope: Envelope
    bundles: tuple[bytes, ...]
    keys: tuple[dict[str, str], ...]


class ServiceClient:
    """Calls one signing service with one bearer token."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        max_wait_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError("--server: not an http(s) URL")
        if parts.username or parts.password:
            raise ConfigError("--server: no user or password in the URL (the token authenticates)")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ConfigError(
                "--server: plain HTTP only to this machine (127.0.0.1, ::1, localhost): the "
                "bearer token must not cross a network in clear"
            )
        token = token.strip()
        if not token or len(token) > _MAX_TOKEN or _TOKEN68.fullmatch(token) is None:
            # Never echoed: a token with a line break would otherwise reach an error message.
            raise ConfigError("the service token is empty, too long or not one line of ASCII")
        self._base = url.rstrip("/")
        self._token = token
        self._timeout = urllib3.Timeout(connect=10.0, read=timeout_s)
        self._retries = max_retries
        self._max_wait = max_wait_s
        self._sleep = sleep
        self._pool = urllib3.PoolManager(retries=False)

    def sign(
        self, payload: bytes, payload_type: str, keys: Sequence[str], tsa: Sequence[str] = ()
    ) -> Signed:
        """Sign `payload` with the service's keys named `keys` (and its TSAs named `tsa`)."""
        body: dict[str, Any] = {
            "payload": b64encode(payload),
            "payloadType": payload_type,
            "keys": list(keys),
        }
        if tsa:
            body["tsa"] = list(tsa)
        answer = self._call("POST", "/v1/sign", body)
        return _signed(answer, payload, payload_type, len(keys))

    def verify(
        self,
        envelope: dict[str, Any],
        bundles: Sequence[dict[str, Any]] = (),
        *,
        predicate_type: str | None = None,
        digests: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The service's `verify --json` report for `envelope` (and its bundles)."""
        body: dict[str, Any] = {"envelope": envelope, "bundles": list(bundles)}
        if predicate_type is not None:
            body["predicateType"] = predicate_type
        if digests:
            body["digests"] = list(digests)
        return self._call("POST", "/v1/verify", body)

    def keys(self) -> dict[str, Any]:
        """The caller's tenant's keys, with their public keys."""
        return self._call("GET", "/v1/keys", None)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {
            "Authorization": f"Bearer {self._token}",
            "User-Agent": "dssesign",
            "Accept-Encoding": "identity",  # an answer is read to a bound, never inflated
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(self._retries + 1):
            try:
                response = self._pool.request(
                    method,
                    self._base + path,
                    body=data,
                    headers=headers,
                    timeout=self._timeout,
                    redirect=False,
                    preload_content=False,
                    decode_content=False,
                )
                try:
                    if response.headers.get("content-encoding", "identity") != "identity":
                        raise SigningError(
                            f"signing service {self._base} answered a compressed body it was "
                            "not asked for"
                        )
                    raw = response.read(_MAX_RESPONSE + 1, decode_content=False)
                finally:
                    response.release_conn()
            except (urllib3.exceptions.HTTPError, ValueError) as exc:
                reason = escape_controls(clip(str(getattr(exc, "reason", exc)), 160))
                raise SigningError(f"signing service {self._base} unreachable: {reason}") from None
            status = response.status
            if status in (429, 503) and attempt < self._retries:
                self._sleep(min(self._max_wait, _retry_after(response.headers.get("retry-after"))))
                continue
            return _answer(status, raw, self._base, path)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0


def _answer(status: int, raw: bytes, base: str, path: str) -> dict[str, Any]:
    if len(raw) > _MAX_RESPONSE:
        raise SigningError(f"signing service {base}: the answer to {path} is too large")
    try:
        document = loads_strict(raw, what=f"the answer of {base}{path}")
    except InputError:
        document = None
    if status == 200 and isinstance(document, dict):
        return document
    message = ""
    if isinstance(document, dict) and isinstance(document.get("error"), dict):
        error = document["error"]
        message = f"{error.get('code')}: {error.get('message')}"
    text = escape_controls(clip(message or f"HTTP {status}", 240))
    if status in (400, 413):
        raise InputError(f"signing service {base}{path} refused the request: {text}")
    raise SigningError(f"signing service {base}{path} answered {status}: {text}")


def _signed(answer: dict[str, Any], payload: bytes, payload_type: str, count: int) -> Signed:
    """The answer, checked: this payload, one signature per key, one bundle per signature."""
    try:
        envelope = Envelope.from_dict(answer.get("envelope"))
        bundles = answer.get("bundles")
        if not isinstance(bundles, list):
            raise InputError("bundles: not a list")
        parsed = [Envelope.from_dict(b.get("dsseEnvelope")) for b in bundles]
    except (DssesignError, AttributeError) as exc:
        raise SigningError(f"the signing service answered a malformed envelope: {exc}") from None
    if envelope.payload != payload or envelope.payload_type != payload_type:
        raise SigningError("the signing service signed another payload than the one sent")
    signatures = [s.sig for s in envelope.signatures]
    if len(signatures) != count or len(parsed) != count:
        raise SigningError(
            f"the signing service answered {len(signatures)} signatures and {len(parsed)} "
            f"bundles for {count} keys"
        )
    for bundle, signature in zip(parsed, signatures, strict=True):
        same = bundle.payload == payload and bundle.payload_type == payload_type
        if not same or [s.sig for s in bundle.signatures] != [signature]:
            raise SigningError("a bundle from the signing service does not hold its signature")
    keys = answer.get("keys", [])
    if not isinstance(keys, list) or not all(
        isinstance(k, dict) and all(isinstance(v, str) for v in k.values()) for k in keys
    ):
        raise SigningError("the signing service answered a malformed key list")
    return Signed(
        envelope,
        tuple(json.dumps(b, separators=(",", ":")).encode() + b"\n" for b in bundles),
        tuple(keys),
    )
