"""Attach attestations to an image, in cosign's two layouts, idempotently and without losing
another writer's entries.

Blobs go up before the manifest that names them, so a failure leaves nothing a reader lists.
A registry without conditional PUTs cannot make a read-modify-write of a shared tag atomic:
the tag-schema index and the ``.att`` image are re-read after each write (after a short random
pause), re-merged and written again until the entry is seen on two reads in a row.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ..codes import Code
from ..errors import RegistryError
from .client import RegistryClient
from .image import Target
from .layout import (
    BUNDLE_ARTIFACT_TYPES,
    EMPTY_CONFIG,
    INDEX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    Descriptor,
    attestation_tag,
    bundle_referrer,
    digest_of,
    go_json,
    legacy_config,
    legacy_layer,
    parse_index,
    parse_manifest,
    referrers_tag,
)

__all__ = ["Attached", "attach_bundle", "attach_legacy"]

Layout = Literal["referrers-api", "referrers-tag", "legacy-tag"]
_ATTEMPTS = 8
_PAUSE_S = (0.05, 0.25)


@dataclass(frozen=True)
class Attached:
    """Where an attestation went: the manifest (or tag) naming it, and whether it was new."""

    layout: Layout
    manifest_digest: str
    new: bool
    tag: str | None = None


def attach_bundle(
    client: RegistryClient,
    target: Target,
    bundle: bytes,
    predicate_type: str,
    *,
    created: datetime | None = None,
) -> Attached:
    """Push `bundle` as an OCI 1.1 referrer of `target` (cosign's BUNDLE_SPEC layout).

    No new referrer when one whose bundle layer has the same digest is already listed.
    """
    layer_digest = digest_of(bundle)
    existing = _listed_bundle(client, target, layer_digest)
    if existing is not None:
        return existing
    when = (created or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest, entry = bundle_referrer(bundle, predicate_type, target.descriptor, when)
    client.put_blob(EMPTY_CONFIG, what="the empty config")
    client.put_blob(bundle, what="the bundle")
    client.put_manifest(
        entry.digest, manifest, MANIFEST_MEDIA_TYPE, what="the bundle referrer manifest"
    )
    # OCI-Subject alone is not proof (sigstore-js saw ECR send it without the API): the API
    # answering is, as go-containerregistry checks it.
    if client.referrers(target.digest, what=f"the referrers of {target.ref}") is not None:
        return Attached("referrers-api", entry.digest, new=True)
    tag = referrers_tag(target.digest)
    _merge_into_tag(
        client,
        tag,
        INDEX_MEDIA_TYPE,
        present=lambda doc: any(e.get("digest") == entry.digest for e in doc.get("manifests", [])),
        merged=lambda doc: _index_with(doc, entry),
        what=f"the referrers index {tag}",
    )
    return Attached("referrers-tag", entry.digest, new=True, tag=tag)


def attach_legacy(
    client: RegistryClient,
    target: Target,
    envelope: bytes,
    predicate_type: str,
    *,
    certificate_pem: bytes | None = None,
    chain_pem: bytes | None = None,
    rfc3161_token: bytes | None = None,
) -> Attached:
    """Add `envelope` as a layer of cosign's ``sha256-<hex>.att`` image of `target`."""
    layer = legacy_layer(
        envelope,
        predicate_type,
        certificate_pem=certificate_pem,
        chain_pem=chain_pem,
        rfc3161_token=rfc3161_token,
    )
    tag = attestation_tag(target.digest)
    current = client.get_manifest(tag, what=f"the attestation image {tag}", missing_ok=True)
    if current is not None:
        manifest = parse_manifest(current.data, current.digest, what=f"attestation image {tag}")
        if any(existing.digest == layer.digest for existing in manifest.layers):
            return Attached("legacy-tag", current.digest, new=False, tag=tag)
    client.put_blob(envelope, what="the DSSE envelope layer")
    uploaded: set[str] = set()

    def merged(document: dict[str, Any]) -> dict[str, Any]:
        layers = [*document.get("layers", []), layer.to_json()]
        descriptors = [Descriptor(str(x.get("mediaType")), str(x.get("digest")), 0) for x in layers]
        config = legacy_config(descriptors)
        if digest_of(config) not in uploaded:
            client.put_blob(config, what="the attestation image config")
            uploaded.add(digest_of(config))
        return {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": len(config),
                "digest": digest_of(config),
            },
            "layers": layers,
        }

    digest = _merge_into_tag(
        client,
        tag,
        MANIFEST_MEDIA_TYPE,
        present=lambda doc: any(x.get("digest") == layer.digest for x in doc.get("layers", [])),
        merged=merged,
        what=f"the attestation image {tag}",
    )
    return Attached("legacy-tag", digest, new=True, tag=tag)


def _listed_bundle(client: RegistryClient, target: Target, layer_digest: str) -> Attached | None:
    """A referrer of `target` already carrying this bundle (same layer digest), if listed."""
    listing, layout = client.listing(target.digest)
    entries = listing.manifests if listing is not None else ()
    bundles = [entry for entry in entries if entry.artifact_type in BUNDLE_ARTIFACT_TYPES]
    for entry in bundles[: client.limits.max_referrers]:
        try:
            manifest = client.manifest(entry.digest, what=f"referrer {entry.digest}")
        except RegistryError as exc:
            if exc.code is not Code.REGISTRY_CONTENT_INVALID:
                raise
            continue  # a broken referrer is not ours: it must not block attaching
        about_target = manifest.subject is not None and manifest.subject.digest == target.digest
        if about_target and any(layer.digest == layer_digest for layer in manifest.layers):
            listed_in = referrers_tag(target.digest) if layout == "referrers-tag" else None
            return Attached(layout, manifest.digest, new=False, tag=listed_in)
    return None


def _index_with(document: dict[str, Any], entry: Descriptor) -> dict[str, Any]:
    manifests = [*document.get("manifests", []), entry.to_json()]
    manifests.sort(key=lambda d: str(d.get("digest")))
    return {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}


def _merge_into_tag(
    client: RegistryClient,
    tag: str,
    media_type: str,
    *,
    present: Callable[[dict[str, Any]], bool],
    merged: Callable[[dict[str, Any]], dict[str, Any]],
    what: str,
) -> str:
    """Read-modify-write `tag` until our entry is seen on two reads in a row; the last digest."""
    seen = 0
    last: RegistryError | None = None
    for _ in range(_ATTEMPTS * 2):
        try:
            fetched = client.get_manifest(tag, what=what, missing_ok=True)
            document: dict[str, Any] = {}
            digest = ""
            if fetched is not None:
                document = _checked(fetched.data, fetched.digest, media_type, what, client)
                digest = fetched.digest
            if document and present(document):
                seen += 1
                if seen >= 2:
                    return digest
            else:
                seen = 0
                data = go_json(merged(document))
                client.put_manifest(tag, data, media_type, what=what)
        except RegistryError as exc:
            # distribution answers 500 when two writers move one tag at once: retry that, not
            # a refusal or bad content.
            if exc.code is not Code.REGISTRY_UNAVAILABLE:
                raise
            last, seen = exc, 0
        time.sleep(random.uniform(*_PAUSE_S))  # noqa: S311 - a back-off jitter, not a secret
    raise RegistryError(
        Code.REGISTRY_UNAVAILABLE,
        f"{what} kept changing under concurrent writers; try again"
        + (f" (last: {last})" if last is not None else ""),
    )


def _checked(
    data: bytes, digest: str, media_type: str, what: str, client: RegistryClient
) -> dict[str, Any]:
    """The tag's current document, validated as the layout it must be, as raw JSON."""
    if media_type == INDEX_MEDIA_TYPE:
        parse_index(data, digest, what=what, limits=client.limits)
    else:
        parse_manifest(data, digest, what=what, limits=client.limits)
    document: dict[str, Any] = json.loads(data)
    return document
