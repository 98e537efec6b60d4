"""HTTP to one registry: TLS trust, the docker auth handshake, bounded bodies, safe redirects.

Built on urllib3 (already under boto3 and requests) rather than on an OCI library: what the
attestation layouts need is byte control of manifests, bodies read to a limit before anything
parses them, and redirects that never carry credentials to another origin (docs/oci.md says
why oras-py does not fit). Plain HTTP only for a registry
named with ``insecure=True`` (the CLI's ``--allow-insecure-registry``). TLS trust: the
system store, or the file in ``SSL_CERT_FILE`` (OpenSSL reads it), plus ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3

from .._internal.text import clip, escape_controls
from ..codes import Code
from ..errors import RegistryError
from .credentials import ANONYMOUS, Credentials

__all__ = ["Response", "Transport"]

_TIMEOUT = urllib3.Timeout(connect=10.0, read=60.0)
_MAX_REDIRECTS = 3
#: One response body, however slowly it trickles in (the read timeout is per socket read).
_BODY_DEADLINE_S = 120.0
_MAX_TOKEN_BYTES = 256 * 1024
_MAX_ERROR_BODY = 64 * 1024
_CHUNK = 256 * 1024
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)="([^"]*)"')
_USER_AGENT = "dssesign"


@dataclass(frozen=True)
class Response:
    """A response whose body was read whole, within the caller's limit."""

    status: int
    headers: dict[str, str]  # lowercase names
    body: bytes
    #: Whether the answer came from the registry itself (not a redirect's other origin).
    own: bool = True

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        return self.headers.get(name.lower())


def _ssl_context() -> ssl.SSLContext:
    """The system store as OpenSSL finds it (which honours SSL_CERT_FILE / SSL_CERT_DIR), plus
    REQUESTS_CA_BUNDLE when set: either variable adds a CA, neither hides the other."""
    context = ssl.create_default_context()
    bundle = os.environ.get("REQUESTS_CA_BUNDLE")
    if bundle:
        try:
            context.load_verify_locations(cafile=bundle)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(
                Code.REGISTRY_UNAVAILABLE,
                f"cannot load the CA bundle REQUESTS_CA_BUNDLE={bundle}: {_reason(exc)}",
            ) from None
    return context


class Transport:
    """Requests to one registry host, authenticated as its WWW-Authenticate challenge asks."""

    def __init__(
        self,
        host: str,
        credentials: Credentials = ANONYMOUS,
        *,
        insecure: bool = False,
        timeout: urllib3.Timeout = _TIMEOUT,
    ) -> None:
        self.host = host
        self.scheme = "http" if insecure else "https"
        self._insecure = insecure
        self._credentials = credentials
        self._pool = urllib3.PoolManager(
            ssl_context=None if insecure else _ssl_context(), retries=False, timeout=timeout
        )
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._basic = False  # the registry asked for Basic

    # --- public -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        limit: int,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        what: str,
    ) -> Response:
        """One request to ``/v2/...`` (or an absolute upload URL on this host); auth as needed.

        `limit` bounds the body read; `what` names the request in errors. Status codes are the
        caller's to judge, except connection faults and 5xx (REGISTRY_UNAVAILABLE).
        """
        url = path if path.startswith(("http://", "https://")) else self._url(path)
        if not self.same_origin(url):
            raise RegistryError(
                Code.REGISTRY_CONTENT_INVALID,
                f"registry {self.host} sent a location on another origin (or plain HTTP) "
                f"for {what}",
            )
        response = self._send(
            method, url, scope=scope, headers=headers, body=body, limit=limit, what=what
        )
        if response.status == 401 and not response.own:
            # A redirect target (blob storage, a CDN) asks for credentials: never ours.
            raise RegistryError(
                Code.REGISTRY_UNAUTHORIZED,
                f"registry {self.host} redirected {what} to a server that asks for credentials",
            )
        if response.status == 401:
            challenge = response.header("www-authenticate") or ""
            self._tokens.pop(scope, None)  # an expired token: ask for a new one, once
            if self._authenticate(challenge, scope, what):
                response = self._send(
                    method, url, scope=scope, headers=headers, body=body, limit=limit, what=what
                )
            if response.status == 401:
                raise self._unauthorized(what)
        if response.status == 403:
            raise self._unauthorized(what, forbidden=True)
        if response.status >= 500 or response.status == 429:
            raise RegistryError(
                Code.REGISTRY_UNAVAILABLE,
                f"registry {self.host} answered {response.status} to {what}"
                f"{self.error_text(response)}",
            )
        return response

    # --- internals ----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

    def same_origin(self, url: str) -> bool:
        """`url` is on this registry, in its scheme (never a downgrade to plain HTTP)."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        return parts.scheme == self.scheme and parts.netloc == self.host

    def _auth_header(self, scope: str) -> dict[str, str]:
        token = self._tokens.get(scope) or self._credentials.registry_token
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic and self._credentials.password:
            pair = f"{self._credentials.username}:{self._credentials.password}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
        return {}

    def _send(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        headers: dict[str, str] | None,
        body: bytes | None,
        limit: int,
        what: str,
    ) -> Response:
        sent = {"User-Agent": _USER_AGENT, **(headers or {}), **self._auth_header(scope)}
        origin = urlsplit(url)[:2]
        for _ in range(_MAX_REDIRECTS + 1):
            raw = self._open(method, url, sent, body, what)
            try:
                if raw.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD"):
                    location = raw.headers.get("location")
                    if not location:
                        raise RegistryError(
                            Code.REGISTRY_CONTENT_INVALID,
                            f"registry {self.host} redirected {what} without a Location",
                        )
                    try:
                        url = urljoin(url, location)
                        target = urlsplit(url)
                    except ValueError:
                        raise RegistryError(
                            Code.REGISTRY_CONTENT_INVALID,
                            f"registry {self.host} redirected {what} to a malformed location",
                        ) from None
                    if target.scheme not in ("https", "http") or (
                        target.scheme == "http" and not self._insecure
                    ):
                        raise RegistryError(
                            Code.REGISTRY_CONTENT_INVALID,
                            f"registry {self.host} redirected {what} to a non-HTTPS location",
                        )
                    if target[:2] != origin:  # another origin (blob storage): no credentials
                        sent = {k: v for k, v in sent.items() if k != "Authorization"}
                    continue
                data = self._read(raw, method, limit, what)
                headers_read = {k.lower(): v for k, v in raw.headers.items()}
                return Response(raw.status, headers_read, data, own=urlsplit(url)[:2] == origin)
            finally:
                _finish(raw)
        raise RegistryError(
            Code.REGISTRY_CONTENT_INVALID, f"registry {self.host}: too many redirects for {what}"
        )

    def _open(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, what: str
    ) -> Any:
        try:
            return self._pool.request(
                method, url, headers=headers, body=body, preload_content=False, redirect=False
            )
        except urllib3.exceptions.SSLError as exc:
            raise RegistryError(
                Code.REGISTRY_UNAVAILABLE,
                f"TLS to registry {self.host} failed for {what} ({_reason(exc)}); trust its CA "
                "with SSL_CERT_FILE or REQUESTS_CA_BUNDLE (a plain-HTTP registry needs "
                "--allow-insecure-registry)",
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise RegistryError(
                Code.REGISTRY_UNAVAILABLE,
                f"registry {self.host} is unreachable for {what} ({_reason(exc)})",
            ) from None

    def _read(self, raw: Any, method: str, limit: int, what: str) -> bytes:
        if method == "HEAD":
            return b""
        # An error body is read only as far as a message needs.
        cap = limit if raw.status < 400 else min(limit, _MAX_ERROR_BODY)
        declared = raw.headers.get("content-length")
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > cap
        ):
            if raw.status >= 400:
                return b""
            raise RegistryError(
                Code.REGISTRY_CONTENT_INVALID,
                f"registry {self.host}: {what} is {int(declared)} bytes, over the limit of {cap}",
            )
        chunks: list[bytes] = []
        total = 0
        deadline = time.monotonic() + _BODY_DEADLINE_S
        try:
            while True:
                if time.monotonic() > deadline:  # a byte at a time never ends otherwise
                    raise RegistryError(
                        Code.REGISTRY_UNAVAILABLE,
                        f"registry {self.host} took over {_BODY_DEADLINE_S:.0f} s to send {what}",
                    )
                # read1: what has arrived (read(n) would wait for all n bytes, past the deadline)
                chunk = raw.read1(min(_CHUNK, cap + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > cap:
                    if raw.status >= 400:
                        break
                    raise RegistryError(
                        Code.REGISTRY_CONTENT_INVALID,
                        f"registry {self.host}: {what} is over the limit of {cap} bytes",
                    )
        except urllib3.exceptions.HTTPError as exc:
            raise RegistryError(
                Code.REGISTRY_UNAVAILABLE,
                f"registry {self.host} broke off {what} ({_reason(exc)})",
            ) from None
        return b"".join(chunks)[:cap]

    def _authenticate(self, challenge: str, scope: str, what: str) -> bool:
        """Act on a 401 challenge; True if a retry with new credentials makes sense."""
        kind, _, params_text = challenge.strip().partition(" ")
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        if kind.lower() == "basic":
            if self._basic or not self._credentials.password:
                return False
            self._basic = True
            return True
        if kind.lower() != "bearer" or scope in self._tokens:
            return False
        realm = params.get("realm", "")
        try:
            parts = urlsplit(realm)
        except ValueError:
            parts = urlsplit("")
        if parts.scheme != "https" and not (parts.scheme == "http" and self._insecure):
            raise RegistryError(
                Code.REGISTRY_UNAUTHORIZED,
                f"registry {self.host} asks for a token from a non-HTTPS realm "
                f"{escape_controls(clip(realm, 120))!r}",
            )
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        self._tokens[scope] = self._fetch_token(realm, query, what)
        return True

    def _fetch_token(self, realm: str, query: dict[str, str], what: str) -> str:
        credentials = self._credentials
        headers = {"User-Agent": _USER_AGENT}
        if credentials.identity_token:  # docker's OAuth2 refresh-token grant
            form = urlencode(
                {
                    **query,
                    "grant_type": "refresh_token",
                    "refresh_token": credentials.identity_token,
                    "client_id": _USER_AGENT,
                }
            ).encode()
            method, url, body = "POST", realm, form
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            method, url, body = "GET", f"{realm}?{urlencode(query)}", None
            if credentials.password:
                pair = f"{credentials.username}:{credentials.password}".encode()
                headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        raw = self._open(method, url, headers, body, f"a token for {what}")
        try:
            data = self._read(raw, method, _MAX_TOKEN_BYTES, f"the token for {what}")
            status = raw.status
        finally:
            _finish(raw)
        if status in (401, 403):
            raise self._unauthorized(what)
        if status != 200:
            raise RegistryError(
                Code.REGISTRY_UNAVAILABLE,
                f"the token service of registry {self.host} answered {status} for {what}",
            )
        try:
            answer = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            answer = None
        token = (
            answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
        )
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_BYTES:
            raise RegistryError(
                Code.REGISTRY_UNAVAILABLE,
                f"the token service of registry {self.host} answered without a token",
            )
        return token

    def _unauthorized(self, what: str, *, forbidden: bool = False) -> RegistryError:
        how = "forbade" if forbidden else "refused"
        if self._credentials.anonymous:
            hint = "no credentials for it in the docker config.json (DOCKER_CONFIG)"
        else:
            hint = f"with the credentials from {self._credentials.source}"
        return RegistryError(
            Code.REGISTRY_UNAUTHORIZED, f"registry {self.host} {how} {what}: {hint}"
        )

    def error_text(self, response: Response) -> str:
        """The registry's own error message (distribution's `errors` list), escaped and cut."""
        try:
            errors = json.loads(response.body).get("errors")
            message = errors[0].get("message") or errors[0].get("code")
        except (
            ValueError,
            AttributeError,
            IndexError,
            TypeError,
            UnicodeDecodeError,
            RecursionError,
        ):
            return ""
        return f": {escape_controls(clip(str(message), 160))}" if message else ""


def _finish(raw: Any) -> None:
    """Give the connection back only when its response was read to the end; a body left
    unread (a redirect's, a refused one) would be read as the next response, so close it."""
    try:
        if not raw.isclosed():
            raw.close()
    finally:
        raw.release_conn()


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    return escape_controls(clip(" ".join(text.split()), 160))
