"""Merging envelopes signed apart: one payload, the union of their signatures.

Two teams sign the same Statement on different machines; `merge_envelopes` makes one envelope
of their envelopes. Rules (each one so that a merge can never change what was signed):

- Every input must carry the identical decoded payload bytes and the identical payloadType.
  The JSON is never compared as JSON: the same Statement with other whitespace or key order
  is a different payload (its signatures cover other bytes) and is refused. A payload written
  in another base64 spelling (URL-safe) that decodes to the same bytes is the same payload:
  it is accepted and written in standard base64, as every dssesign envelope is.
- The signatures are the union, in argument order (each input's in its own order).
- The same signature twice is kept once, the first. With no trust root to map signatures to
  keys, only identical signature bytes are known to be the same: an equal keyid is not proof
  (a hostile input listed first could otherwise push out a co-signer's real signature with
  junk under its keyid). Two signatures of one key with different bytes are both kept; the
  verifier counts distinct public keys whatever the keyids say, so it never counts one twice.

Bundles: `find_bundle` looks for the Sigstore bundle of a kept signature beside its input
envelope (and in an optional extra directory), named as `--bundle-dir` names them
(`countersign.signature_bundle_names`), and takes it only if it holds exactly that signature
over this payload; `merged_bundles` renames what it found under the output's stem.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._internal.fileio import read_bounded
from .._internal.strict_json import loads_strict
from ..core.dsse import Envelope, Signature
from ..errors import DssesignError, EnvelopeError
from ..limits import DEFAULT_LIMITS, Limits, exceeded
from .bundles import BundleFile, bundle_stem
from .countersign import signature_bundle_names

#: Largest bundle file read while looking for one (a keyless bundle with its chain is ~10 KiB).
MAX_BUNDLE_BYTES = 1 << 20


@dataclass(frozen=True)
class MergeResult:
    """The merged envelope and where each of its signatures came from."""

    envelope: Envelope
    #: For each signature of `envelope`: (input index, signature index in that input).
    origins: tuple[tuple[int, int], ...]
    #: Signatures left out as a key's second signature: (input index, signature index).
    dropped: tuple[tuple[int, int], ...] = ()


def merge_envelopes(envelopes: Sequence[Envelope], *, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """One envelope with the union of the signatures of `envelopes` (see the module docstring).

    Raises EnvelopeError naming the first input whose payload or payloadType differs.
    """
    return merge_detailed(envelopes, limits=limits).envelope


def merge_detailed(
    envelopes: Sequence[Envelope],
    *,
    names: Sequence[str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> MergeResult:
    """`merge_envelopes`, also saying where each kept signature came from (for its bundle).

    `names` label the inputs in errors (file names); default "envelope 1", "envelope 2", ...
    """
    if not envelopes:
        raise EnvelopeError("merge: no envelopes given")
    labels = list(names) if names is not None else []
    labels += [f"envelope {i + 1}" for i in range(len(labels), len(envelopes))]
    first = envelopes[0]
    for index, other in enumerate(envelopes[1:], start=1):
        if other.payload_type != first.payload_type:
            raise EnvelopeError(
                f"cannot merge: {labels[index]} has payloadType {other.payload_type[:100]!r}, "
                f"{labels[0]} has {first.payload_type[:100]!r}"
            )
        if other.payload != first.payload:
            raise EnvelopeError(
                f"cannot merge: the payload of {labels[index]} differs from {labels[0]}'s "
                f"(sha256 {_short(other.payload)} vs {_short(first.payload)}; a payload "
                "re-encoded in any way is another payload)"
            )
    kept: list[Signature] = []
    origins: list[tuple[int, int]] = []
    dropped: list[tuple[int, int]] = []
    seen_sigs: set[bytes] = set()
    for index, envelope in enumerate(envelopes):
        for position, signature in enumerate(envelope.signatures):
            if signature.sig in seen_sigs:
                dropped.append((index, position))
                continue
            seen_sigs.add(signature.sig)
            kept.append(signature)
            origins.append((index, position))
    if len(kept) > limits.max_signatures:
        raise EnvelopeError(
            f"cannot merge: {len(kept)} signatures exceed "
            f"{exceeded('max_signatures', limits.max_signatures)}"
        )
    merged = dataclasses.replace(first, signatures=tuple(kept))
    return MergeResult(merged, tuple(origins), tuple(dropped))


def bundle_holds(data: bytes, envelope: Envelope, signature: bytes) -> bool:
    """`data` is a Sigstore bundle whose DSSE envelope is exactly `signature` over this payload.

    Only what a bundle's file name cannot promise is checked here; the verifier checks the rest.
    """
    try:
        bundle = loads_strict(data, what="bundle")
        if not isinstance(bundle, dict):
            return False
        inner = Envelope.from_dict(bundle.get("dsseEnvelope"))
    except DssesignError:
        return False
    return (
        inner.payload == envelope.payload
        and inner.payload_type == envelope.payload_type
        and len(inner.signatures) == 1
        and inner.signatures[0].sig == signature
    )


def find_bundle(
    envelope_path: str | Path,
    envelope: Envelope,
    position: int,
    extra: str | Path | None = None,
) -> tuple[Path, bytes] | None:
    """The bundle file (path, bytes) of signature `position` of the envelope read from
    `envelope_path`, or None.

    Looked for by its `--bundle-dir` name (stem of `envelope_path`) beside the envelope, then
    in `extra`; a file by that name that does not hold exactly this signature is passed over.
    """
    name = signature_bundle_names(envelope, bundle_stem(str(envelope_path)))[position]
    if name is None:
        return None
    places = [Path(envelope_path).parent] + ([Path(extra)] if extra is not None else [])
    signature = envelope.signatures[position].sig
    for place in places:
        path = place / name
        if not path.is_file():
            continue
        try:
            data = read_bounded(path, limit=MAX_BUNDLE_BYTES, what="bundle")
        except DssesignError:
            continue
        if bundle_holds(data, envelope, signature):
            return path, (data if data.endswith(b"\n") else data + b"\n")
    return None


@dataclass(frozen=True)
class MergedBundles:
    """The bundles found for a merge's kept signatures, renamed under the output's stem."""

    files: tuple[BundleFile, ...]
    #: Where each of `files` was read from (an input of the command: never overwritten).
    sources: tuple[Path, ...]
    #: Indexes (in the merged envelope) of kept signatures whose bundle was not found.
    missing: tuple[int, ...]


def merged_bundles(
    result: MergeResult,
    inputs: Sequence[tuple[str | Path, Envelope]],
    stem: str,
    extra: str | Path | None = None,
) -> MergedBundles:
    """Find the bundle of every kept signature (`find_bundle`) and name it under `stem`.

    `inputs[i]` is the path and envelope of input i, as given to `merge_detailed`.
    """
    names = signature_bundle_names(result.envelope, stem)
    files: list[BundleFile] = []
    sources: list[Path] = []
    missing: list[int] = []
    for index, ((source, position), name) in enumerate(zip(result.origins, names, strict=True)):
        path, envelope = inputs[source]
        found = find_bundle(path, envelope, position, extra) if name is not None else None
        if found is None or name is None:
            missing.append(index)
            continue
        keyid = result.envelope.signatures[index].keyid
        files.append(BundleFile(name, found[1], keyid, keyless=not keyid))
        sources.append(found[0])
    return MergedBundles(tuple(files), tuple(sources), tuple(missing))


def _short(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()[:16]
