"""Find an image's attestations in both layouts: candidates only, never trusted as listed.

The referrers API (else the ``sha256-<hex>`` tag-schema index) and cosign's legacy
``sha256-<hex>.att`` image say where to look. Each referrer manifest is fetched by digest and
hashed, must name the image as its subject, and its layers are fetched by digest and hashed;
what fails is reported as a `Problem` and skipped. Whether anything is trusted is decided by
verifying the bytes against the trust root afterwards (`verify_image`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..codes import Code
from ..errors import RegistryError
from .client import RegistryClient, Source
from .image import Target
from .layout import (
    BUNDLE_ARTIFACT_TYPES,
    DSSE_LAYER_MEDIA_TYPE,
    EMPTY_MEDIA_TYPE,
    INTOTO_ARTIFACT_TYPE,
    Descriptor,
    attestation_tag,
    parse_manifest,
)

__all__ = ["Candidate", "Discovery", "Problem", "discover"]

_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"


@dataclass(frozen=True)
class Candidate:
    """One attestation as found: a Sigstore bundle or a DSSE envelope, its bytes checked."""

    source: Source
    manifest_digest: str
    layer_digest: str
    kind: Literal["bundle", "envelope"]
    data: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """A listed attestation that could not be used, and why (a REGISTRY_* code)."""

    source: Source
    digest: str
    code: Code
    message: str


@dataclass(frozen=True)
class Discovery:
    """What was found for one image, and what was listed but could not be used."""

    candidates: tuple[Candidate, ...]
    problems: tuple[Problem, ...]
    #: How referrers were listed: the registry's API, or the tag-schema fallback.
    referrers_source: Source


def discover(client: RegistryClient, target: Target) -> Discovery:
    """Every attestation of `target` in both layouts, each checked as far as bytes go.

    Bounded: at most `Limits.max_referrers` candidates and manifests read, one bundle layer per
    bundle referrer (cosign's layout has one), a layer digest read once, and
    `MAX_TOTAL_BYTES` of layers in all. What is past a bound is reported, never read.
    """
    work = _Work(client, target)
    listing, source = client.listing(target.digest)
    entries = listing.manifests if listing is not None else ()
    if listing is not None and listing.skipped:
        work.problem(
            source,
            target.digest,
            f"{listing.skipped} referrer listing entries could not be read and were skipped",
        )
    wanted = [e for e in entries if e.artifact_type in _WANTED | _MAYBE]
    for entry in wanted:
        if not work.room(source):
            break
        try:
            _from_referrer(work, entry, source)
        except RegistryError as exc:
            if exc.code not in (Code.REGISTRY_CONTENT_INVALID, Code.IMAGE_NOT_FOUND):
                raise  # the registry itself failed: not one bad referrer
            work.problems.append(Problem(source, entry.digest, exc.code, str(exc)))
    try:
        _from_legacy(work)
    except RegistryError as exc:
        if exc.code is not Code.REGISTRY_CONTENT_INVALID:
            raise
        work.problems.append(
            Problem("legacy-tag", attestation_tag(target.digest), exc.code, str(exc))
        )
    return Discovery(tuple(work.candidates), tuple(work.problems), source)


#: Listed artifact types that are attestations; and those that may be (go-containerregistry
#: before v0.21.6, so cosign before v3.0.7, listed a referrer under its config's media type).
_WANTED = BUNDLE_ARTIFACT_TYPES | {INTOTO_ARTIFACT_TYPE}
_MAYBE = frozenset({"", EMPTY_MEDIA_TYPE})
#: Layer bytes read for one image, in all.
MAX_TOTAL_BYTES = 256 * 1024 * 1024


class _Work:
    """The budget of one discovery, and what it found so far."""

    def __init__(self, client: RegistryClient, target: Target) -> None:
        self.client = client
        self.target = target
        self.candidates: list[Candidate] = []
        self.problems: list[Problem] = []
        self.manifests = 0
        self.bytes = 0
        self.layers: set[str] = set()
        self.full = False

    def problem(self, source: Source, digest: str, message: str) -> None:
        self.problems.append(Problem(source, digest, Code.REGISTRY_CONTENT_INVALID, message))

    def room(self, source: Source) -> bool:
        """Another manifest may be read; reports (once) when the budget is spent."""
        limit = self.client.limits.max_referrers
        if self.manifests < limit and len(self.candidates) < limit:
            self.manifests += 1
            return True
        if not self.full:
            self.full = True
            self.problem(
                source,
                self.target.digest,
                f"more than {limit} attestations or referrers: the rest were not read "
                "(Limits.max_referrers)",
            )
        return False

    def fetch(
        self,
        layer: Descriptor,
        *,
        source: Source,
        manifest: str,
        kind: Literal["bundle", "envelope"],
        annotations: Mapping[str, str],
        what: str,
    ) -> None:
        """Read one layer (once per digest, within the byte budget) as a candidate."""
        if layer.digest in self.layers:
            return
        if len(self.candidates) >= self.client.limits.max_referrers:
            self.room(source)
            return
        if self.bytes + layer.size > MAX_TOTAL_BYTES:
            self.problem(
                source, layer.digest, f"{what}: over the {MAX_TOTAL_BYTES} bytes read per image"
            )
            return
        data = self.client.get_blob(layer, limit=self.client.limits.max_json_bytes, what=what)
        self.layers.add(layer.digest)
        self.bytes += len(data)
        self.candidates.append(Candidate(source, manifest, layer.digest, kind, data, annotations))


def _from_referrer(work: _Work, entry: Descriptor, source: Source) -> None:
    what = f"referrer {entry.digest}"
    manifest = work.client.manifest(entry.digest, what=what)
    kinds = {manifest.artifact_type, manifest.config.artifact_type} & _WANTED
    if entry.artifact_type in _MAYBE and not kinds:
        return  # listed without a type, and not an attestation after all
    if manifest.subject is None or manifest.subject.digest != work.target.digest:
        other = manifest.subject.digest if manifest.subject is not None else "no subject"
        raise RegistryError(
            Code.REGISTRY_CONTENT_INVALID,
            f"{what} is listed for {work.target.digest} but its subject is {other}",
        )
    bundles = [layer for layer in manifest.layers if layer.media_type.startswith(_BUNDLE_PREFIX)]
    envelopes = [layer for layer in manifest.layers if layer.media_type == DSSE_LAYER_MEDIA_TYPE]
    if bundles:  # cosign's bundle referrer: one bundle, the first
        layer = bundles[0]
        annotations = {**manifest.annotations, **layer.annotations}
        work.fetch(
            layer,
            source=source,
            manifest=manifest.digest,
            kind="bundle",
            annotations=annotations,
            what=f"the bundle of {what}",
        )
        return
    if not envelopes:
        raise RegistryError(
            Code.REGISTRY_CONTENT_INVALID, f"{what} has no bundle or DSSE envelope layer"
        )
    for number, layer in enumerate(envelopes):
        annotations = {**manifest.annotations, **layer.annotations}
        work.fetch(
            layer,
            source=source,
            manifest=manifest.digest,
            kind="envelope",
            annotations=annotations,
            what=f"layer {number} of {what}",
        )


def _from_legacy(work: _Work) -> None:
    client, target = work.client, work.target
    tag = attestation_tag(target.digest)
    fetched = client.get_manifest(tag, what=f"the attestation image {tag}", missing_ok=True)
    if fetched is None:
        return
    manifest = parse_manifest(
        fetched.data, fetched.digest, what=f"attestation image {tag}", limits=client.limits
    )
    for number, layer in enumerate(manifest.layers):
        if layer.media_type != DSSE_LAYER_MEDIA_TYPE:
            continue
        try:
            work.fetch(
                layer,
                source="legacy-tag",
                manifest=manifest.digest,
                kind="envelope",
                annotations=layer.annotations,
                what=f"layer {number} of {tag}",
            )
        except RegistryError as exc:
            if exc.code is not Code.REGISTRY_CONTENT_INVALID:
                raise
            work.problems.append(Problem("legacy-tag", layer.digest, exc.code, str(exc)))
        if work.full:
            break
