"""Sigstore bundles out: one bundle v0.3 per signature of a multi-signature DSSE envelope.

A Sigstore bundle holds exactly one DSSE signature (protobuf-specs; sigstore-go, sigstore-python
and sigstore-js enforce it), so `dssesign attest/sign --bundle-dir DIR` writes one bundle per
signature beside the envelope, each over the byte-identical payload:

- keyed signatures (software, HSM, KMS, Vault keys) get a bundle built here, with
  `verificationMaterial.publicKey.hint` = base64 of SHA-256 of the SPKI DER (what cosign v3
  writes) and no transparency-log entry (`tlogEntries: []`: we do not upload keyed signatures);
- keyed signatures whose key carries an organisation certificate (`certified.CertifiedSigner`)
  get the same bundle with the leaf's DER in `verificationMaterial.certificate.rawBytes` in
  place of the hint, and the DSSE signature's keyid "" (as cosign writes it); the
  intermediates are not carried (the verifier takes them from its trust root);
- keyless signatures get the bundle the keyless signer obtained (leaf certificate + tlog entry),
  taken from `signer.bundle_for(signature)`, checked to carry exactly this signature over this
  payload, and written byte for byte as sigstore-python returned it.

File names (deterministic, in DIR; STEM is the envelope file name without `.json`):
  keyed    STEM.<first 16 hex digits of the keyid>.sigstore.json   (full keyid if two collide;
           with a certificate too: the keyid is the key's, as in the envelope)
  keyless  STEM.keyless-<n>.sigstore.json   n = 1, 2, ... in envelope order among keyless ones
For a JSON Lines output (`--out FILE.jsonl`, one envelope per line, `--append`) every name also
carries the envelope's payload: STEM.<first 16 hex digits of its SHA-256>.<keyid16 or
keyless-n>.sigstore.json, so the bundles of two lines signed by one key never collide
(`payload_tag`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cryptography.hazmat.primitives.serialization import Encoding

from .._internal.fileio import OutputSet
from .._internal.strict_json import loads_strict
from ..core.dsse import Envelope, b64encode
from ..core.keys import PublicKey
from ..core.keys import public_key_hint as public_key_hint  # noqa: PLC0414 - re-export: moved to keys
from ..errors import ConfigError, InputError, SigningError
from .certified import CertifiedSigner, certificate_spki
from .signer import Signer

if TYPE_CHECKING:
    from cryptography import x509

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_SUFFIX = ".sigstore.json"
#: Envelope file-name endings dropped to get the bundle stem (longest first).
_ENVELOPE_SUFFIXES = (".dsse.json", ".json", ".jsonl", ".dsse")
#: Stem used when the envelope goes to stdout.
DEFAULT_STEM = "envelope"
_KEYID_PREFIX = 16
#: Hex digits of the payload's SHA-256 in a JSON Lines output's bundle names.
PAYLOAD_TAG_CHARS = 16


@runtime_checkable
class BundleSource(Protocol):
    """A signer whose signatures come with their own Sigstore bundle (keyless: cert + tlog)."""

    def bundle_for(self, signature: bytes) -> str:
        """The bundle JSON for a signature this signer made; KeyError for any other."""
        ...


def keyed_bundle(
    payload: bytes,
    payload_type: str,
    signature: bytes,
    public_key: PublicKey,
    timestamps: Sequence[bytes] = (),
    *,
    certificate: x509.Certificate | None = None,
) -> dict[str, object]:
    """A bundle v0.3 for one keyed DSSE signature, in the protobuf JSON mapping (camelCase).

    The DSSE signature's keyid is the hint too: protobuf-specs requires the two to be equal
    when both are set (sigstore-js writes it so; cosign leaves keyid empty, which verifiers
    treat alike). Verifiers find the key out of band by the hint; nothing here is trusted.

    With `certificate` (the key's leaf, checked by `certified.certify`) the bundle carries the
    leaf's DER in `verificationMaterial.certificate` instead of the hint, and the signature's
    keyid is "": a verifier finds the key in the certificate and judges the certificate against
    its trust root. SigningError if the certificate is not for `public_key`.
    """
    material: dict[str, object]
    if certificate is None:
        keyid = public_key_hint(public_key)
        material = {"publicKey": {"hint": keyid}, "tlogEntries": []}
    else:
        if certificate_spki(certificate) != public_key.spki_der:
            raise SigningError(
                f"the certificate {certificate.subject.rfc4514_string()!r} is not for the key "
                f"{public_key.keyid[:16]}"
            )
        keyid = ""
        leaf = b64encode(certificate.public_bytes(Encoding.DER))
        material = {"certificate": {"rawBytes": leaf}, "tlogEntries": []}
    if timestamps:
        # Where cosign and sigstore verifiers read RFC 3161 tokens (the DER TimeStampResp).
        material["timestampVerificationData"] = {
            "rfc3161Timestamps": [{"signedTimestamp": b64encode(t)} for t in timestamps]
        }
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": b64encode(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": b64encode(signature), "keyid": keyid}],
        },
    }


def bundle_json(bundle: Mapping[str, object]) -> bytes:
    """Compact JSON in the member order given, newline-terminated."""
    return json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


@dataclass(frozen=True)
class BundleFile:
    """One bundle ready to write: its file name, bytes, and which signature it holds."""

    name: str
    data: bytes
    #: keyid of the signing key (for keyless: of the ephemeral key in the certificate).
    keyid: str
    keyless: bool


def bundle_stem(envelope_path: str | None) -> str:
    """The envelope's file name without `.json` (or `.dsse.json`, ...); stdout: `envelope`."""
    if not envelope_path:
        return DEFAULT_STEM
    name = Path(envelope_path).name
    for suffix in _ENVELOPE_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def is_keyless(signer: object) -> bool:
    """A signer whose signatures come with their own Sigstore bundle (certificate + tlog)."""
    return isinstance(signer, BundleSource)


def payload_tag(payload: bytes) -> str:
    """What a JSON Lines output's bundle names carry of the payload: its SHA-256, 16 hex digits."""
    return hashlib.sha256(payload).hexdigest()[:PAYLOAD_TAG_CHARS]


def bundle_names(
    signers: Sequence[Signer], stem: str, *, payload: bytes | None = None
) -> list[str]:
    """The bundle file name for each signer's signature, in order (see the module docstring).

    Called with every signer before signing, it names each file a command may write, so each
    can be checked before any signature is made. With `payload` (a JSON Lines output), each
    name carries its `payload_tag` after the stem.
    """
    if not stem or "/" in stem or stem in {".", ".."}:
        raise ConfigError(f"bad bundle file stem {stem!r}")
    if payload is not None:
        stem = f"{stem}.{payload_tag(payload)}"
    prefixes = [s.keyid[:_KEYID_PREFIX] for s in signers if not is_keyless(s)]
    full_names = len(set(prefixes)) != len(prefixes)  # never seen; stay deterministic anyway
    names = []
    keyless_count = 0
    for signer in signers:
        if is_keyless(signer):
            keyless_count += 1
            names.append(f"{stem}.keyless-{keyless_count}{BUNDLE_SUFFIX}")
        else:
            label = signer.keyid if full_names else signer.keyid[:_KEYID_PREFIX]
            names.append(f"{stem}.{label}{BUNDLE_SUFFIX}")
    return names


def bundles_for(
    envelope: Envelope,
    signers: Sequence[Signer],
    stem: str,
    timestamps: Sequence[Sequence[bytes]] = (),
    *,
    per_payload: bool = False,
) -> list[BundleFile]:
    """One bundle per envelope signature; `signers[i]` made `envelope.signatures[i]`.

    `per_payload` (a JSON Lines output) names them with the payload's tag (`bundle_names`).

    `timestamps[i]` (if given) are signature i's RFC 3161 tokens, carried in its keyed bundle.
    A `certified.CertifiedSigner`'s bundle carries its certificate (see `keyed_bundle`).

    Raises SigningError if a keyless signer has no bundle for its signature or hands back one
    that does not hold exactly that signature over this payload and payload type.
    """
    if len(signers) != len(envelope.signatures):
        raise ValueError("one signer per envelope signature is needed")
    names = bundle_names(signers, stem, payload=envelope.payload if per_payload else None)
    files: list[BundleFile] = []
    for index, (signer, signature, name) in enumerate(
        zip(signers, envelope.signatures, names, strict=True)
    ):
        if isinstance(signer, BundleSource):
            text = _keyless_bundle(signer, signature.sig, envelope, index)
            files.append(BundleFile(name, text, signer.keyid, keyless=True))
        else:
            bundle = keyed_bundle(
                envelope.payload,
                envelope.payload_type,
                signature.sig,
                signer.public_key,
                timestamps[index] if timestamps else (),
                # A plain class check: only a certificate `certify` checked reaches a bundle.
                certificate=signer.certificate if isinstance(signer, CertifiedSigner) else None,
            )
            files.append(BundleFile(name, bundle_json(bundle), signer.keyid, keyless=False))
    return files


def prepare_bundle_dir(directory: str | Path, outputs: OutputSet | None = None) -> Path:
    """Create DIR (and parents) if missing; refuse a path that is not a directory.

    Called before signing, so a bad --bundle-dir never costs a signature or an audit record.
    With `outputs`, a directory created here is removed again if the command fails.
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--bundle-dir {path}: not a directory")
    if outputs is not None:
        return outputs.make_directory(path, what="--bundle-dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--bundle-dir {path}: cannot create ({exc.strerror})") from None
    return path


def write_bundles(
    directory: str | Path, files: Sequence[BundleFile], outputs: OutputSet | None = None
) -> list[Path]:
    """Write each bundle into `directory` (replacing a same-named file) by `_fileio`'s rules.

    Without `outputs` they are written and published here, all or none; with it they are
    staged into that set, which the caller publishes (with the envelope) at the end.
    """
    base = Path(directory)
    own = outputs is None
    staged = OutputSet() if outputs is None else outputs
    written = []
    try:
        for item in files:
            target = base / item.name
            staged.add(target, what="bundle")
            staged.write(target, item.data)
            written.append(target)
        if own:
            staged.publish()
    except BaseException:
        if own:
            staged.discard()
        raise
    return written


def _keyless_bundle(
    signer: BundleSource, signature: bytes, envelope: Envelope, index: int
) -> bytes:
    where = f"keyless signer {index + 1}"
    try:
        text: object = signer.bundle_for(signature)
    except KeyError:
        raise SigningError(f"{where}: no Sigstore bundle for its signature") from None
    if not isinstance(text, str | bytes):
        raise SigningError(f"{where}: bundle_for returned {type(text).__name__}, not JSON text")
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        bundle = loads_strict(data, what=f"{where}: bundle")
    except InputError as exc:
        raise SigningError(str(exc)) from None
    problem = _keyless_mismatch(bundle, signature, envelope)
    if problem:
        raise SigningError(f"{where}: its Sigstore bundle {problem}")
    return data if data.endswith(b"\n") else data + b"\n"


def _keyless_mismatch(bundle: Any, signature: bytes, envelope: Envelope) -> str | None:
    """Why `bundle` is not a v0.3 DSSE bundle of exactly this signature; None if it is."""
    if not isinstance(bundle, dict):
        return "is not a JSON object"
    if bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
        return f"has mediaType {bundle.get('mediaType')!r}, expected {BUNDLE_MEDIA_TYPE}"
    material = bundle.get("verificationMaterial")
    if not isinstance(material, dict) or not (
        "certificate" in material or "x509CertificateChain" in material
    ):
        return "carries no signing certificate"
    entries = material.get("tlogEntries")
    if not isinstance(entries, list) or not entries:
        return "carries no transparency-log entry"
    dsse = bundle.get("dsseEnvelope")
    if not isinstance(dsse, dict):
        return "holds no dsseEnvelope"
    signatures = dsse.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1:
        return "does not hold exactly one DSSE signature"
    try:
        payload = base64.b64decode(str(dsse.get("payload")), validate=True)
        sig = base64.b64decode(str(signatures[0].get("sig")), validate=True)
    except (ValueError, AttributeError):
        return "has a payload or signature that is not base64"
    if payload != envelope.payload:
        return "holds a different payload"
    if dsse.get("payloadType") != envelope.payload_type:
        return f"has payloadType {dsse.get('payloadType')!r}, not {envelope.payload_type!r}"
    if sig != signature:
        return "holds a different signature"
    return None
