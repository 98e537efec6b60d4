"""The distribution-API calls both layouts need, for one repository, every byte checked.

A manifest or blob fetched by digest is hashed and compared before anyone parses it; one
fetched by tag gets its digest from its bytes (never from a header). Sizes are bounded by
`Limits.max_manifest_bytes` and the caller's blob limit before reading.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urljoin, urlsplit

from ..codes import Code
from ..errors import RegistryError
from ..limits import DEFAULT_LIMITS, Limits
from .credentials import credentials_for
from .layout import (
    INDEX_MEDIA_TYPE,
    MANIFEST_ACCEPT,
    Descriptor,
    Index,
    Manifest,
    digest_of,
    parse_index,
    parse_manifest,
    referrers_tag,
)
from .reference import ImageRef
from .transport import Response, Transport

__all__ = ["Fetched", "RegistryClient", "Source"]

#: Where an attestation was found: a referrer listed by the registry's API or in the
#: tag-schema index, or a layer of cosign's legacy ``.att`` image.
Source = Literal["referrers-api", "referrers-tag", "legacy-tag"]

_MAX_PAGES = 16
#: Referrers of every kind read from one listing (16 pages of up to 4096 would be 65536).
_MAX_LISTED = 4096
_NO_BODY = 64 * 1024


@dataclass(frozen=True)
class Fetched:
    """A manifest or index as served: exact bytes, their digest, the Content-Type."""

    data: bytes
    digest: str
    media_type: str

    def descriptor(self) -> Descriptor:
        """What a `subject` field names this by."""
        return Descriptor(self.media_type, self.digest, len(self.data))


class RegistryClient:
    """Manifests, blobs, tags and referrers of `image`'s repository."""

    def __init__(
        self,
        image: ImageRef,
        *,
        insecure: bool = False,
        limits: Limits = DEFAULT_LIMITS,
        transport: Transport | None = None,
    ) -> None:
        self.image = image
        self.limits = limits
        self.transport = transport or Transport(
            image.api_host, credentials_for(image.registry), insecure=insecure
        )
        self._repo = image.repository
        self._pull = f"repository:{self._repo}:pull"
        self._push = f"repository:{self._repo}:pull,push"

    # --- manifests ----------------------------------------------------------------------------

    def get_manifest(
        self, reference: str, *, what: str, missing_ok: bool = False
    ) -> Fetched | None:
        """The manifest or index at `reference` (a digest or tag); None if 404 and `missing_ok`."""
        response = self._call(
            "GET",
            f"/v2/{self._repo}/manifests/{quote(reference, safe=':')}",
            scope=self._pull,
            limit=self.limits.max_manifest_bytes,
            headers={"Accept": ", ".join(MANIFEST_ACCEPT)},
            what=what,
        )
        if response.status == 404:
            if missing_ok:
                return None
            raise RegistryError(
                Code.IMAGE_NOT_FOUND, f"{what} is not in {self.image.registry}/{self._repo}"
            )
        self._expect(response, (200,), what)
        digest = digest_of(response.body)
        if reference.startswith("sha256:") and not hmac.compare_digest(digest, reference):
            raise RegistryError(
                Code.REGISTRY_CONTENT_INVALID,
                f"registry {self.image.registry} served {what} whose bytes hash to {digest}, "
                f"not {reference}",
            )
        media_type = (response.header("content-type") or "").split(";")[0].strip()
        return Fetched(response.body, digest, media_type)

    def manifest(self, digest: str, *, what: str) -> Manifest:
        """The image manifest at `digest`, its bytes checked and parsed strictly."""
        fetched = self.get_manifest(digest, what=what)
        assert fetched is not None
        return parse_manifest(fetched.data, fetched.digest, what=what, limits=self.limits)

    def index(
        self, reference: str, *, what: str, missing_ok: bool = False, lenient: bool = False
    ) -> Index | None:
        """The image index at `reference` (`lenient`: unreadable entries skipped, see
        `parse_index`); None if 404 and `missing_ok`."""
        fetched = self.get_manifest(reference, what=what, missing_ok=missing_ok)
        if fetched is None:
            return None
        return parse_index(
            fetched.data, fetched.digest, what=what, limits=self.limits, lenient=lenient
        )

    def put_manifest(self, reference: str, data: bytes, media_type: str, *, what: str) -> Response:
        """PUT a manifest by tag or digest; the response (its OCI-Subject header matters)."""
        response = self._call(
            "PUT",
            f"/v2/{self._repo}/manifests/{quote(reference, safe=':')}",
            scope=self._push,
            limit=_NO_BODY,
            headers={"Content-Type": media_type},
            body=data,
            what=what,
        )
        self._expect(response, (200, 201, 202), what)
        return response

    # --- blobs --------------------------------------------------------------------------------

    def get_blob(self, descriptor: Descriptor, *, limit: int, what: str) -> bytes:
        """The blob `descriptor` names, no larger than `limit` and hashing to its digest."""
        if descriptor.size > limit:
            raise RegistryError(
                Code.REGISTRY_CONTENT_INVALID,
                f"{what} is {descriptor.size} bytes, over the limit of {limit}",
            )
        response = self._call(
            "GET",
            f"/v2/{self._repo}/blobs/{descriptor.digest}",
            scope=self._pull,
            limit=limit,
            what=what,
        )
        if response.status == 404:
            raise RegistryError(
                Code.REGISTRY_CONTENT_INVALID,
                f"{what} ({descriptor.digest}) is not in the registry",
            )
        self._expect(response, (200,), what)
        digest = digest_of(response.body)
        if (
            not hmac.compare_digest(digest, descriptor.digest)
            or len(response.body) != descriptor.size
        ):
            raise RegistryError(
                Code.REGISTRY_CONTENT_INVALID,
                f"registry {self.image.registry} served {what} whose bytes do not match its "
                f"digest {descriptor.digest} and size {descriptor.size}",
            )
        return response.body

    def put_blob(self, data: bytes, *, what: str) -> str:
        """Upload `data` unless the registry has it; its digest."""
        digest = digest_of(data)
        head = self._call(
            "HEAD", f"/v2/{self._repo}/blobs/{digest}", scope=self._push, limit=0, what=what
        )
        if head.status == 200:
            return digest
        started = self._call(
            "POST",
            f"/v2/{self._repo}/blobs/uploads/",
            scope=self._push,
            limit=_NO_BODY,
            what=f"an upload of {what}",
        )
        self._expect(started, (202,), f"an upload of {what}")
        location = started.header("location")
        if not location:
            raise RegistryError(
                Code.REGISTRY_CONTENT_INVALID,
                f"registry {self.image.registry} started an upload without a Location",
            )
        try:
            url = urljoin(f"{self.transport.scheme}://{self.transport.host}/", location)
            separator = "&" if urlsplit(url).query else "?"
        except ValueError:
            raise RegistryError(
                Code.REGISTRY_CONTENT_INVALID,
                f"registry {self.image.registry} started an upload at a malformed Location",
            ) from None
        done = self._call(
            "PUT",
            f"{url}{separator}digest={quote(digest, safe='')}",
            scope=self._push,
            limit=_NO_BODY,
            headers={"Content-Type": "application/octet-stream"},
            body=data,
            what=f"the upload of {what}",
        )
        self._expect(done, (201, 204), f"the upload of {what}")
        return digest

    # --- referrers ------------------------------------------------------------------------

    def referrers(self, digest: str, *, what: str) -> Index | None:
        """The referrers API's listing for `digest`, all pages, read leniently (entries we
        cannot read are counted in `skipped`); None if the API is missing (404)."""
        path: str | None = f"/v2/{self._repo}/referrers/{digest}"
        found: list[Descriptor] = []
        skipped = 0
        for _ in range(_MAX_PAGES):
            if path is None:
                return Index(b"", "", tuple(found), skipped)
            response = self._call(
                "GET",
                path,
                scope=self._pull,
                limit=self.limits.max_manifest_bytes,
                headers={"Accept": INDEX_MEDIA_TYPE},
                what=what,
            )
            if response.status == 404 and not found:
                return None
            self._expect(response, (200,), what)
            index = parse_index(
                response.body, digest_of(response.body), what=what, limits=self.limits, lenient=True
            )
            found.extend(index.manifests)
            skipped += index.skipped
            if len(found) > _MAX_LISTED:
                # Every kind of referrer counts here (SBOMs, signatures, ...); the attestation
                # budget (Limits.max_referrers) is applied by the caller to what it wants.
                raise RegistryError(
                    Code.REGISTRY_CONTENT_INVALID, f"{what} lists more than {_MAX_LISTED} referrers"
                )
            path = _next_page(response.header("link"), self.transport)
        raise RegistryError(
            Code.REGISTRY_CONTENT_INVALID, f"{what} runs to more than {_MAX_PAGES} pages"
        )

    def listing(self, digest: str) -> tuple[Index | None, Source]:
        """The referrers of `digest` where the registry keeps them: its API, else the
        ``sha256-<hex>`` tag-schema index (None when that tag does not exist either)."""
        listing = self.referrers(digest, what=f"the referrers of {digest}")
        if listing is not None:
            return listing, "referrers-api"
        tag = referrers_tag(digest)
        index = self.index(tag, what=f"the referrers index {tag}", missing_ok=True, lenient=True)
        return index, "referrers-tag"

    # --- internals ----------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        limit: int,
        what: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        return self.transport.request(
            method, path, scope=scope, limit=limit, headers=headers, body=body, what=what
        )

    def _expect(self, response: Response, statuses: tuple[int, ...], what: str) -> None:
        if response.status not in statuses:
            raise RegistryError(
                Code.REGISTRY_UNAVAILABLE,
                f"registry {self.image.registry} answered {response.status} to {what}"
                f"{self.transport.error_text(response)}",
            )


def _next_page(link: str | None, transport: Transport) -> str | None:
    """The rel="next" target of a Link header, on this registry only."""
    if not link:
        return None
    for part in link.split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' not in params.replace(" ", ""):
            continue
        target = target.strip().removeprefix("<").removesuffix(">")
        try:
            url = urljoin(f"{transport.scheme}://{transport.host}/", target)
        except ValueError:
            url = ""
        if not transport.same_origin(url):
            raise RegistryError(
                Code.REGISTRY_CONTENT_INVALID,
                f"registry {transport.host} paged its referrers listing to another origin",
            )
        return url
    return None
