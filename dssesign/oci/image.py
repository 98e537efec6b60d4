"""From a reference to the exact manifest an attestation is about: digest, media type, size."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..codes import Code
from ..errors import ConfigError, RegistryError
from .client import RegistryClient
from .layout import DOCKER_LIST, INDEX_MEDIA_TYPE, Descriptor, digest_of, parse_index
from .reference import ImageRef

__all__ = ["Target", "resolve"]


@dataclass(frozen=True)
class Target:
    """The image manifest (or index) attestations attach to, pinned by digest."""

    ref: ImageRef  # with .digest set
    descriptor: Descriptor
    resolved_from_tag: bool = False

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the manifest (or index) attested."""
        return self.descriptor.digest


def resolve(
    client: RegistryClient, *, platform: str | None = None, allow_tag: bool = False
) -> Target:
    """Pin `client.image` to a digest; `platform` ("os/arch[/variant]") picks one of an index.

    A tag-only reference is refused unless `allow_tag`: a tag can move between resolving it and
    using it, so a pipeline should name the digest it built.
    """
    image = client.image
    if image.digest is None and not allow_tag:
        raise ConfigError(
            f"{image} names a tag, not a digest: give REPOSITORY@sha256:... (or --resolve-tag "
            "to use the digest the tag points to now)"
        )
    fetched = client.get_manifest(image.reference, what=f"image {image}")
    assert fetched is not None
    descriptor = Descriptor(
        fetched.media_type or _guess(fetched.data), fetched.digest, len(fetched.data)
    )
    if platform is not None:
        descriptor = _pick_platform(client, image, descriptor, fetched.data, platform)
    return Target(image.with_digest(descriptor.digest), descriptor, image.digest is None)


def _pick_platform(
    client: RegistryClient, image: ImageRef, descriptor: Descriptor, data: bytes, platform: str
) -> Descriptor:
    wanted = platform.split("/")
    if len(wanted) not in (2, 3) or not all(wanted):
        raise ConfigError(f"--platform {platform!r}: expected OS/ARCH or OS/ARCH/VARIANT")
    if descriptor.media_type not in (INDEX_MEDIA_TYPE, DOCKER_LIST):
        raise ConfigError(
            f"--platform {platform}: {image} is a single-platform image, not an index"
        )
    index = parse_index(data, descriptor.digest, what=f"image index {image}", limits=client.limits)
    matches = [
        entry
        for entry in index.manifests
        if entry.platform is not None
        and list(entry.platform[:2]) == wanted[:2]
        and (len(wanted) == 2 or entry.platform[2] == wanted[2])
    ]
    if not matches:
        raise RegistryError(Code.IMAGE_NOT_FOUND, f"image index {image} has no {platform} manifest")
    if len({m.digest for m in matches}) > 1:
        raise ConfigError(
            f"image index {image} has several {platform} manifests: name the variant "
            "(OS/ARCH/VARIANT) or the digest"
        )
    chosen = matches[0]
    fetched = client.get_manifest(chosen.digest, what=f"the {platform} manifest of {image}")
    assert fetched is not None
    return Descriptor(chosen.media_type, fetched.digest, len(fetched.data))


def _guess(data: bytes) -> str:
    """A media type for a registry that sent no Content-Type: the manifest's own field."""
    try:
        value = json.loads(data).get("mediaType")
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        value = None
    if isinstance(value, str) and value:
        return value
    raise RegistryError(
        Code.REGISTRY_CONTENT_INVALID,
        f"manifest {digest_of(data)} has no media type (no Content-Type, no mediaType field)",
    )
