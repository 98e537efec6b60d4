"""The bytes of both attachment layouts, and strict parsing of what a registry serves.

Writers emit JSON exactly as cosign's Go code does (go-containerregistry structs through
``encoding/json``: struct field order, sorted annotation keys, no spaces, ``<>&`` escaped), so an
attachment made here is byte-for-byte the shape cosign makes:

- the Sigstore bundle referrer (cosign ``specs/BUNDLE_SPEC.md``): an OCI image manifest with
  ``artifactType`` = the bundle v0.3 media type, the empty config descriptor, the bundle as its
  one layer, ``subject`` = the image and the ``dev.sigstore.bundle.*`` annotations; where the
  registry lacks the referrers API, listed in the ``sha256-<hex>`` tag-schema index;
- cosign's legacy ``sha256-<hex>.att`` image: one DSSE envelope per layer of media type
  ``application/vnd.dsse.envelope.v1+json`` with the ``predicateType`` annotation (and the
  signature's certificate and RFC 3161 timestamp, as cosign writes them).

Readers accept only what these layouts need and bound everything before trusting anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._internal.strict_json import loads_strict
from ..codes import Code
from ..errors import InputError, RegistryError
from ..limits import DEFAULT_LIMITS, Limits

__all__ = [
    "BUNDLE_ARTIFACT_TYPES",
    "BUNDLE_MEDIA_TYPE",
    "DSSE_LAYER_MEDIA_TYPE",
    "EMPTY_CONFIG",
    "EMPTY_MEDIA_TYPE",
    "INDEX_MEDIA_TYPE",
    "INTOTO_ARTIFACT_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "Descriptor",
    "Index",
    "Manifest",
    "attestation_tag",
    "bundle_referrer",
    "digest_of",
    "go_json",
    "legacy_config",
    "legacy_layer",
    "legacy_manifest",
    "parse_index",
    "parse_manifest",
    "referrers_index",
    "referrers_tag",
]

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
#: What /manifests/ GETs accept: OCI and Docker v2 images and indexes.
MANIFEST_ACCEPT = (MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE, DOCKER_MANIFEST, DOCKER_LIST)
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
#: Bundle referrers other tools write: cosign's and sigstore-js's v0.3 name, and the old form.
BUNDLE_ARTIFACT_TYPES = frozenset(
    {BUNDLE_MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"}
)
#: cosign's referrer of DSSE layers (`WriteAttestationsReferrer`).
INTOTO_ARTIFACT_TYPE = "application/vnd.in-toto+json"
DSSE_LAYER_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
LEGACY_CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"

# Annotation keys, as cosign spells them.
CREATED = "org.opencontainers.image.created"
BUNDLE_CONTENT = "dev.sigstore.bundle.content"
BUNDLE_PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"
PREDICATE_TYPE = "predicateType"
SIGNATURE = "dev.cosignproject.cosign/signature"
CERTIFICATE = "dev.sigstore.cosign/certificate"
CHAIN = "dev.sigstore.cosign/chain"
RFC3161_TIMESTAMP = "dev.sigstore.cosign/rfc3161timestamp"

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_MAX_MEDIA_TYPE = 255
_MAX_ANNOTATIONS = 64
_MAX_ENTRIES = 4096
_MAX_SIZE = 2**53


def digest_of(data: bytes) -> str:
    """The OCI digest of `data`: ``sha256:<hex>``."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for an image digest: ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)


def attestation_tag(digest: str) -> str:
    """cosign's legacy attestation tag: ``sha256-<hex>.att``."""
    return f"{referrers_tag(digest)}.att"


def go_json(value: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, UTF-8, ``<``, ``>``, ``&``, U+2028/9 escaped.

    Callers build dicts in Go struct field order; annotation maps are sorted here as Go sorts
    map keys.
    """
    text = json.dumps(_sorted_maps(value), ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text.encode("utf-8")


def _sorted_maps(value: Any) -> Any:
    if isinstance(value, _Annotations):
        return dict(sorted(value.items()))
    if isinstance(value, dict):
        return {k: _sorted_maps(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sorted_maps(v) for v in value]
    return value


class _Annotations(dict[str, str]):
    """A Go map[string]string: its keys are written sorted."""


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (the fields both layouts use)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str = ""
    platform: tuple[str, str, str] | None = None  # (os, architecture, variant)

    def to_json(self) -> dict[str, Any]:
        """Go's v1.Descriptor field order: mediaType, size, digest, annotations, artifactType."""
        out: dict[str, Any] = {"mediaType": self.media_type, "size": self.size}
        out["digest"] = self.digest
        if self.annotations:
            out["annotations"] = _Annotations(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


@dataclass(frozen=True)
class Manifest:
    """An image manifest as read: its exact bytes, digest and the fields the layouts use."""

    data: bytes
    digest: str
    media_type: str
    artifact_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class Index:
    """An image index (a multi-platform image, or a referrers listing) as read."""

    data: bytes
    digest: str
    manifests: tuple[Descriptor, ...]
    #: Entries left out by a lenient parse (another tool's referrers we cannot read).
    skipped: int = 0


# --- writers ------------------------------------------------------------------------------


def bundle_referrer(
    bundle: bytes, predicate_type: str, subject: Descriptor, created: str
) -> tuple[bytes, Descriptor]:
    """cosign's bundle referrer manifest for `bundle`, and its entry for a referrers index.

    `created` is RFC 3339 UTC to the second, as Go's time.RFC3339 writes it.
    """
    annotations = _Annotations(
        {CREATED: created, BUNDLE_CONTENT: "dsse-envelope", BUNDLE_PREDICATE_TYPE: predicate_type}
    )
    config = {
        "mediaType": EMPTY_MEDIA_TYPE,
        "size": len(EMPTY_CONFIG),
        "digest": digest_of(EMPTY_CONFIG),
        "artifactType": BUNDLE_MEDIA_TYPE,
    }
    layer = Descriptor(BUNDLE_MEDIA_TYPE, digest_of(bundle), len(bundle))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config,
        "layers": [layer.to_json()],
        "annotations": annotations,
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
        "artifactType": BUNDLE_MEDIA_TYPE,
    }
    data = go_json(manifest)
    entry = Descriptor(
        MANIFEST_MEDIA_TYPE, digest_of(data), len(data), annotations, BUNDLE_MEDIA_TYPE
    )
    return data, entry


def referrers_index(entries: Sequence[Descriptor]) -> bytes:
    """A referrers tag-schema index of `entries`, sorted by digest as go-containerregistry does."""
    ordered = sorted(entries, key=lambda d: d.digest)
    return go_json(
        {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [d.to_json() for d in ordered],
        }
    )


def legacy_layer(
    envelope: bytes,
    predicate_type: str,
    *,
    certificate_pem: bytes | None = None,
    chain_pem: bytes | None = None,
    rfc3161_token: bytes | None = None,
) -> Descriptor:
    """One DSSE layer of cosign's ``.att`` image, with the annotations cosign gives it."""
    annotations: dict[str, str] = {PREDICATE_TYPE: predicate_type, SIGNATURE: ""}
    if certificate_pem:
        annotations[CERTIFICATE] = certificate_pem.decode("ascii")
        annotations[CHAIN] = (chain_pem or b"").decode("ascii")
    if rfc3161_token:
        token = base64.b64encode(rfc3161_token).decode("ascii")
        annotations[RFC3161_TIMESTAMP] = go_json({"SignedRFC3161Timestamp": token}).decode()
    return Descriptor(DSSE_LAYER_MEDIA_TYPE, digest_of(envelope), len(envelope), annotations)


def legacy_config(layers: Sequence[Descriptor]) -> bytes:
    """The image config go-containerregistry writes for cosign's signature images."""
    zero = "0001-01-01T00:00:00Z"
    return go_json(
        {
            "architecture": "",
            "created": zero,
            "history": [{"created": zero} for _ in layers],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
            "config": {},
        }
    )


def legacy_manifest(layers: Sequence[Descriptor]) -> tuple[bytes, bytes]:
    """The ``.att`` image's manifest over `layers`, and its config blob."""
    config = legacy_config(layers)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": LEGACY_CONFIG_MEDIA_TYPE,
            "size": len(config),
            "digest": digest_of(config),
        },
        "layers": [layer.to_json() for layer in layers],
    }
    return go_json(manifest), config


# --- readers ------------------------------------------------------------------------------


def parse_manifest(
    data: bytes, digest: str, *, what: str, limits: Limits = DEFAULT_LIMITS
) -> Manifest:
    """A manifest whose bytes hash to `digest` (checked by the caller); REGISTRY_CONTENT_INVALID."""
    document = _load(data, what, limits)
    _check_schema(document, what)
    media_type = _text(document, "mediaType", what, optional=True)
    if "manifests" in document or media_type in (INDEX_MEDIA_TYPE, DOCKER_LIST):
        raise _invalid(f"{what} is an image index, not an image manifest")
    layers = document.get("layers")
    if not isinstance(layers, list) or len(layers) > _MAX_ENTRIES:
        raise _invalid(f"{what} has no layers list (or more than {_MAX_ENTRIES})")
    subject = document.get("subject")
    return Manifest(
        data=data,
        digest=digest,
        media_type=media_type or MANIFEST_MEDIA_TYPE,
        artifact_type=_text(document, "artifactType", what, optional=True),
        config=_descriptor(document.get("config"), f"{what} config"),
        layers=tuple(_descriptor(d, f"{what} layer {i}") for i, d in enumerate(layers)),
        subject=None if subject is None else _descriptor(subject, f"{what} subject"),
        annotations=_annotations(document.get("annotations"), what),
    )


def parse_index(
    data: bytes,
    digest: str,
    *,
    what: str,
    limits: Limits = DEFAULT_LIMITS,
    lenient: bool = False,
) -> Index:
    """An image index or referrers listing; REGISTRY_CONTENT_INVALID naming what is wrong.

    `lenient` (a referrers listing): an entry we cannot read (another tool's, with more
    annotations or another digest algorithm) is skipped and counted, not fatal.
    """
    document = _load(data, what, limits)
    _check_schema(document, what)
    media_type = _text(document, "mediaType", what, optional=True)
    if media_type not in ("", INDEX_MEDIA_TYPE, DOCKER_LIST):
        raise _invalid(f"{what} is {media_type!r}, not an image index")
    manifests = document.get("manifests")
    if not isinstance(manifests, list):
        raise _invalid(f"{what} has no manifests list")
    if len(manifests) > _MAX_ENTRIES:
        raise _invalid(f"{what} lists more than {_MAX_ENTRIES} manifests")
    if not lenient:
        entries = tuple(_descriptor(d, f"{what} entry {i}") for i, d in enumerate(manifests))
        return Index(data=data, digest=digest, manifests=entries)
    readable: list[Descriptor] = []
    for number, entry in enumerate(manifests):
        try:
            readable.append(_descriptor(entry, f"{what} entry {number}"))
        except RegistryError:
            continue
    return Index(data, digest, tuple(readable), skipped=len(manifests) - len(readable))


def _load(data: bytes, what: str, limits: Limits) -> dict[str, Any]:
    try:
        document = loads_strict(data, what=what, limits=limits)
    except InputError as exc:
        raise _invalid(str(exc)) from None
    if not isinstance(document, dict):
        raise _invalid(f"{what} is not a JSON object")
    return document


def _check_schema(document: dict[str, Any], what: str) -> None:
    version = document.get("schemaVersion")
    if type(version) is not int or version != 2:
        raise _invalid(f"{what}: schemaVersion is not 2")


def _descriptor(value: object, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"{what} is not a descriptor object")
    digest = value.get("digest")
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise _invalid(f"{what}: digest is not sha256:<64 hex>")
    size = value.get("size")
    if type(size) is not int or not 0 <= size < _MAX_SIZE:
        raise _invalid(f"{what}: size is not a non-negative integer")
    platform_value = value.get("platform")
    platform = None
    if isinstance(platform_value, dict):
        parts = [platform_value.get(k, "") for k in ("os", "architecture", "variant")]
        if not all(isinstance(p, str) and len(p) <= 64 for p in parts):
            raise _invalid(f"{what}: platform fields are not short strings")
        platform = (str(parts[0]), str(parts[1]), str(parts[2]))
    return Descriptor(
        media_type=_text(value, "mediaType", what),
        digest=digest,
        size=size,
        annotations=_annotations(value.get("annotations"), what),
        artifact_type=_text(value, "artifactType", what, optional=True),
        platform=platform,
    )


def _text(value: dict[str, Any], key: str, what: str, *, optional: bool = False) -> str:
    text = value.get(key)
    if text is None and optional:
        return ""
    if not isinstance(text, str) or len(text) > _MAX_MEDIA_TYPE:
        raise _invalid(f"{what}: {key} is not a string of at most {_MAX_MEDIA_TYPE} characters")
    return text


def _annotations(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > _MAX_ANNOTATIONS:
        raise _invalid(f"{what}: annotations are not a map of at most {_MAX_ANNOTATIONS} strings")
    if not all(isinstance(v, str) for v in value.values()):
        raise _invalid(f"{what}: an annotation value is not a string")
    return dict(value)


def _invalid(message: str) -> RegistryError:
    return RegistryError(Code.REGISTRY_CONTENT_INVALID, message)
