"""Ask RFC 3161 TSAs to timestamp signatures: the signing side of trusted time.

The imprint is SHA-256 of the signature's bytes (as Sigstore does), with a random nonce that
must come back and certReq set so the token carries its signer certificate. A token is only
returned once it checked out: granted, our nonce, our imprint, and (given the trust root's
authorities) a full `verify_token`, so a signature is never emitted with a token that fails.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import rfc3161_client

from .._internal.text import escape_controls
from ..errors import ConfigError, SigningError, VerificationError
from ..timestamp.authority import TimestampAuthority
from ..timestamp.verify import MAX_TOKEN_BYTES, verify_token

__all__ = ["Timestamping", "request_timestamp", "request_timestamps", "token_time"]

QUERY_TYPE: Final = "application/timestamp-query"
#: What TSAs answer with (RFC 3161 section 3.4; some still send the older "-response").
REPLY_TYPES: Final = frozenset({"application/timestamp-reply", "application/timestamp-response"})
#: Requests in flight at once across all signatures and TSAs.
MAX_WORKERS: Final = 32
_SHA256_OID: Final = "2.16.840.1.101.3.4.2.1"


@dataclass(frozen=True)
class Timestamping:
    """Ask every TSA in `urls` to timestamp each signature before it is emitted.

    `authorities` (the trust root's timestamp authorities) judge every token as the verifier
    will; `timeout` bounds each request.
    """

    urls: tuple[str, ...]
    authorities: tuple[TimestampAuthority, ...]
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.urls:
            raise ConfigError("timestamping: at least one TSA URL is needed")
        for url in self.urls:
            _check_url(url)
        if not self.authorities:
            raise ConfigError(
                "timestamping: the trust root names no timestamp authority to judge the "
                "tokens with (dssesign trust-root add-tsa)"
            )
        if not self.timeout > 0:
            raise ConfigError("timestamping: the timeout must be positive")

    def stamp(self, signatures: Sequence[bytes]) -> list[tuple[bytes, ...] | SigningError]:
        """Each signature's verified tokens (one per URL, in order), or why it has none."""
        return request_timestamps(
            self.urls, signatures, timeout=self.timeout, authorities=self.authorities
        )

    def describe(self, tokens: Sequence[bytes]) -> tuple[dict[str, str], ...]:
        """What the audit log keeps of each token: the TSA URL, its time and serial."""
        described = []
        for url, token in zip(self.urls, tokens, strict=True):
            when, serial = token_time(token)
            described.append(
                {"tsa": _shown(url), "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "serial": serial}
            )
        return tuple(described)


def token_time(token: bytes) -> tuple[datetime, str]:
    """The genTime (UTC) and serial number (decimal) of a token that already verified."""
    info = rfc3161_client.decode_timestamp_response(token).tst_info
    return info.gen_time.astimezone(UTC), str(info.serial_number)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A TSA that redirects is refused: urllib would turn the POST into a GET without body."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _shown(url: str) -> str:
    """The URL for messages: no user:password, query or fragment, no control characters, clipped."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(an unreadable URL)"
    netloc = parts.netloc.rpartition("@")[2]
    text = escape_controls(urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", "")))
    return text if len(text) <= 200 else text[:197] + "..."


def _check_url(url: object) -> str:
    if not isinstance(url, str):
        raise ConfigError("TSA URL: must be a string")
    try:
        parts = urllib.parse.urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        raise ConfigError("TSA URL: not a valid URL") from None
    if parts.scheme not in ("http", "https") or not hostname or not url.isprintable() or " " in url:
        raise ConfigError(f"TSA URL {_shown(url)!r}: must be an http:// or https:// URL")
    return url


def _post(url: str, query: bytes, timeout: float) -> bytes:
    # _check_url allowed http(s) only.
    request = urllib.request.Request(  # noqa: S310
        url,
        data=query,
        method="POST",
        headers={"Content-Type": QUERY_TYPE, "Accept": "application/timestamp-reply"},
    )
    try:
        opener = urllib.request.build_opener(_NoRedirects())  # proxies from the environment
        with opener.open(request, timeout=timeout) as response:
            if response.status != 200:
                raise SigningError(f"TSA {_shown(url)}: HTTP {response.status}")
            kind = response.headers.get_content_type()
            if kind not in REPLY_TYPES:
                raise SigningError(f"TSA {_shown(url)}: answered {kind[:80]!r}, not a timestamp")
            body: bytes = response.read(MAX_TOKEN_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise SigningError(f"TSA {_shown(url)}: HTTP {exc.code}") from None
    except (http.client.HTTPException, ValueError) as exc:
        # A malformed status line or header, an over-long line: what the server sent is not
        # repeated (it may hold anything).
        raise SigningError(
            f"TSA {_shown(url)}: not an HTTP answer ({type(exc).__name__})"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SigningError(f"TSA {_shown(url)}: unreachable ({str(reason)[:120]})") from None
    if len(body) > MAX_TOKEN_BYTES:
        raise SigningError(f"TSA {_shown(url)}: reply larger than {MAX_TOKEN_BYTES} bytes")
    return body


def request_timestamp(
    url: str,
    signature: bytes,
    *,
    timeout: float,
    authorities: Sequence[TimestampAuthority] | None = None,
) -> bytes:
    """One TSA's DER TimeStampResp for `signature`, checked; SigningError naming the TSA if not.

    With `authorities` the token must also pass `verify_token` now, exactly as a verifier
    with that trust root will judge it.
    """
    _check_url(url)
    if not isinstance(signature, bytes) or not signature:
        raise ConfigError("timestamp: the signature must be non-empty bytes")
    if not timeout > 0:
        raise ConfigError("timestamp: the timeout must be positive")
    request = (
        rfc3161_client.TimestampRequestBuilder()
        .data(signature)
        .hash_algorithm(rfc3161_client.HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    token = _post(url, request.as_bytes(), timeout)
    where = f"TSA {_shown(url)}"
    try:
        response = rfc3161_client.decode_timestamp_response(token)
        status = response.status
        if status != rfc3161_client.PKIStatus.GRANTED:
            why = escape_controls("; ".join(response.status_string))[:200]
            raise SigningError(
                f"{where}: refused the request (status {status}{': ' if why else ''}{why})"
            )
        info = response.tst_info
        nonce, imprint = info.nonce, info.message_imprint
        algorithm, message = imprint.hash_algorithm.dotted_string, imprint.message
    except SigningError:
        raise
    except Exception as exc:
        raise SigningError(
            f"{where}: the reply is not a strict DER TimeStampResp ({exc})"
        ) from None
    if nonce != request.nonce:
        raise SigningError(
            f"{where}: the reply does not carry our nonce (a replayed or foreign token)"
        )
    if algorithm != _SHA256_OID or message != hashlib.sha256(signature).digest():
        raise SigningError(f"{where}: the token's imprint is not SHA-256 of this signature")
    if authorities is not None:
        try:
            verify_token(token, signature, authorities, now=datetime.now(UTC))
        except VerificationError as exc:
            raise SigningError(f"{where}: the token does not verify: {exc.code}: {exc}") from None
    return token


def request_timestamps(
    urls: Sequence[str],
    signatures: Sequence[bytes],
    *,
    timeout: float,
    authorities: Sequence[TimestampAuthority] | None = None,
) -> list[tuple[bytes, ...] | SigningError]:
    """Every signature timestamped by every TSA, all requests at once (about one round trip).

    One entry per signature, in order: its tokens in `urls` order, or the SigningError of its
    first failed TSA, so one failing signature does not sink the others.
    """
    for url in urls:
        _check_url(url)
    jobs = [(i, url) for i in range(len(signatures)) for url in urls]
    if not jobs:
        return [() for _ in signatures]
    with ThreadPoolExecutor(max_workers=min(len(jobs), MAX_WORKERS)) as pool:
        futures = [
            pool.submit(
                request_timestamp, url, signatures[i], timeout=timeout, authorities=authorities
            )
            for i, url in jobs
        ]
    results: list[list[bytes] | SigningError] = [[] for _ in signatures]
    for (index, _), future in zip(jobs, futures, strict=True):
        entry = results[index]
        if isinstance(entry, SigningError):
            continue
        try:
            entry.append(future.result())
        except (SigningError, ConfigError) as exc:
            results[index] = exc if isinstance(exc, SigningError) else SigningError(str(exc))
    return [e if isinstance(e, SigningError) else tuple(e) for e in results]
