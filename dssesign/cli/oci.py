"""`dssesign attach`, `dssesign download`, and the --image side of `verify` and `attest`.

Registry credentials come from the docker config.json (DOCKER_CONFIG), never argv; TLS trust
from the system store or SSL_CERT_FILE / REQUESTS_CA_BUNDLE; plain HTTP only with
--allow-insecure-registry. docs/oci.md is the guide.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .._internal.fileio import read_bounded
from .._internal.text import escape_controls as safe
from ..errors import ConfigError, DssesignError, InputError
from ..limits import DEFAULT_LIMITS
from .common import add_json, print_json

if TYPE_CHECKING:
    from ..core.dsse import Envelope
    from ..intoto.statement import ResourceDescriptor
    from ..oci import Attached, RegistryClient, Target
    from ..sign.multisign import SigningResult
    from ..trust import TrustRoot


def add_registry_options(parser: argparse.ArgumentParser) -> None:
    """The options every command that talks to a registry takes."""
    parser.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="for an image index (multi-platform image): use this platform's manifest instead "
        "of the index itself",
    )
    parser.add_argument(
        "--resolve-tag",
        action="store_true",
        help="accept a tag-only --image and use the digest it points to now (printed)",
    )
    parser.add_argument(
        "--allow-insecure-registry",
        action="store_true",
        help="talk plain HTTP to the registry (never for a registry on a network you share)",
    )


def add_image_option(
    parser: argparse.ArgumentParser, *, help_text: str, legacy: bool = False
) -> None:
    """--image REF and the registry options, for `attest` (with --legacy-tag) and `verify`."""
    parser.add_argument("--image", metavar="REF", help=help_text)
    if legacy:
        parser.add_argument(
            "--legacy-tag",
            action="store_true",
            help="with --image: attach in cosign's legacy sha256-<hex>.att tag instead of as "
            "an OCI 1.1 referrer",
        )
    add_registry_options(parser)


def register(commands: Any) -> None:
    """Add `attach` and `download`."""
    attach = commands.add_parser(
        "attach",
        help="attach an envelope's Sigstore bundles (or the envelope) to an image in a registry",
        description="Attach each BUNDLE of ENVELOPE to --image as an OCI 1.1 referrer (through "
        "the referrers tag schema where the registry lacks the API), or ENVELOPE to cosign's "
        "legacy sha256-<hex>.att tag with --legacy-tag. The Statement must name the image "
        "digest as a subject. Attaching what is already attached adds nothing.",
    )
    attach.add_argument("--image", required=True, metavar="REGISTRY/REPO@sha256:HEX")
    attach.add_argument(
        "--legacy-tag",
        action="store_true",
        help="cosign's legacy layout: the envelope as a layer of the sha256-<hex>.att image",
    )
    add_registry_options(attach)
    attach.add_argument("envelope", metavar="ENVELOPE")
    attach.add_argument("bundles", nargs="*", metavar="BUNDLE")
    add_json(attach)
    attach.set_defaults(handler=_cmd_attach)

    download = commands.add_parser(
        "download",
        help="save an image's attestations as envelope and bundle files, for offline verify",
        description="Save each attestation of --image (both layouts; bundles of one payload "
        "grouped into one envelope) as DIR/attestation-<payload sha256>.dsse.json plus its "
        "bundles, named as `attest --bundle-dir` names them. Nothing is verified here: run "
        "`dssesign verify --trust-root F ENVELOPE BUNDLE...` (or a kit) on them.",
    )
    download.add_argument("--image", required=True, metavar="REF")
    download.add_argument("--out", required=True, metavar="DIR")
    download.add_argument(
        "--type", dest="predicate_type", metavar="TYPE", help="only attestations of this type"
    )
    add_registry_options(download)
    add_json(download)
    download.set_defaults(handler=_cmd_download)


# --- shared -----------------------------------------------------------------------------------


def open_target(args: argparse.Namespace) -> tuple[RegistryClient, Target]:
    """The registry client and the pinned image of --image (tag refused unless --resolve-tag)."""
    from ..oci import RegistryClient, parse_reference, resolve

    image = parse_reference(args.image)
    client = RegistryClient(image, insecure=args.allow_insecure_registry)
    target = resolve(client, platform=args.platform, allow_tag=args.resolve_tag)
    if target.resolved_from_tag or args.platform:
        print(f"image {safe(image)} resolved to {target.digest}", file=sys.stderr)
    return client, target


def _statement_of(envelope: Envelope, what: str) -> dict[str, Any]:
    from .._internal.strict_json import loads_strict
    from ..intoto.statement import PAYLOAD_TYPE

    if envelope.payload_type != PAYLOAD_TYPE:
        raise InputError(f"{what}: payloadType is not {PAYLOAD_TYPE}")
    statement = loads_strict(envelope.payload, what=f"{what} payload")
    if not isinstance(statement, dict) or not isinstance(statement.get("predicateType"), str):
        raise InputError(f"{what}: the payload is not an in-toto Statement")
    return statement


def check_subject(statement: dict[str, Any], target: Target, what: str) -> None:
    """The Statement must name the image digest: an attestation about another artifact is
    refused before anything is pushed."""
    hexdigest = target.digest.removeprefix("sha256:")
    subjects = statement.get("subject")
    if isinstance(subjects, list):
        for subject in subjects:
            digest = subject.get("digest") if isinstance(subject, dict) else None
            if isinstance(digest, dict) and digest.get("sha256") == hexdigest:
                return
    raise ConfigError(
        f"{what}: no subject of its Statement has the image digest {target.digest}; attest "
        "the image (attest --image, or --subject sha256:HEX) before attaching"
    )


def attach_signed(
    client: RegistryClient,
    target: Target,
    envelope: Envelope,
    bundles: Sequence[bytes],
    *,
    legacy: bool,
) -> list[Attached]:
    """Attach a signed envelope (and its bundles) to `target`; the attachments made or found."""
    from ..oci import attach_bundle, attach_legacy

    statement = _statement_of(envelope, "the envelope")
    predicate_type = statement["predicateType"]
    check_subject(statement, target, "the envelope")
    if legacy:
        material = _legacy_material(envelope, bundles)
        return [attach_legacy(client, target, envelope.to_json(), predicate_type, **material)]
    if not bundles:
        raise ConfigError(
            "no Sigstore bundles to attach: the referrer layout carries bundles (write them with "
            "attest --bundle-dir), or attach the envelope with --legacy-tag"
        )
    return [attach_bundle(client, target, bundle, predicate_type) for bundle in bundles]


def _legacy_material(envelope: Envelope, bundles: Sequence[bytes]) -> dict[str, bytes | None]:
    """cosign's legacy annotations (certificate, RFC 3161 token) from the envelope's one bundle."""

    if not bundles:
        return {}
    if len(envelope.signatures) != 1 or len(bundles) != 1:
        raise ConfigError(
            "--legacy-tag carries one signature's certificate and timestamp per layer: with "
            f"{len(envelope.signatures)} signatures and {len(bundles)} bundles, attach the "
            "bundles as referrers (without --legacy-tag)"
        )
    from ..verify.bundles import parse_bundle

    try:
        bundle = parse_bundle(bundles[0])
        found: dict[str, bytes | None] = {}
        if bundle.certificates:
            from cryptography import x509
            from cryptography.hazmat.primitives.serialization import Encoding

            certificate = x509.load_der_x509_certificate(bundle.certificates[0])
            found["certificate_pem"] = certificate.public_bytes(Encoding.PEM)
    except (DssesignError, ValueError) as exc:
        raise InputError(f"bundle: {exc}") from None
    if bundle.timestamps:
        found["rfc3161_token"] = bundle.timestamps[0]
    return found


def report_attached(attached: Sequence[Attached], target: Target, *, json_output: bool) -> None:
    """One line per attachment (stderr when the envelope went to stdout), or --json."""
    if json_output:
        print_json(
            {
                "image": str(target.ref),
                "digest": target.digest,
                "attached": [
                    {
                        "layout": a.layout,
                        "manifest": a.manifest_digest,
                        "tag": a.tag,
                        "new": a.new,
                    }
                    for a in attached
                ],
            }
        )
        return
    for item in attached:
        how = {
            "referrers-api": "as an OCI referrer",
            "referrers-tag": f"as an OCI referrer, listed in tag {item.tag}",
            "legacy-tag": f"in cosign's legacy tag {item.tag}",
        }[item.layout]
        state = "attached" if item.new else "already attached"
        print(f"{state} to {safe(target.ref)} {how} ({item.manifest_digest})")


# --- attest --image ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageAttach:
    """`attest --image`: the image resolved before signing, attached to after publishing."""

    client: RegistryClient
    target: Target
    legacy: bool

    def subject(self) -> ResourceDescriptor:
        """The image as a Statement subject, named as cosign names it (no tag, no digest)."""
        from ..intoto.statement import ResourceDescriptor

        image = self.target.ref
        return ResourceDescriptor(
            name=f"{image.registry}/{image.repository}",
            digest={"sha256": self.target.digest.removeprefix("sha256:")},
        )

    def check(self, statement: dict[str, Any]) -> None:
        """Refuse (before signing) a Statement that does not name the image."""
        check_subject(statement, self.target, "the Statement")

    def attach(self, result: SigningResult, *, stream: TextIO | None) -> list[dict[str, Any]]:
        """Attach the signed envelope's bundles (or the envelope: --legacy-tag); the summary."""
        from ..codes import Code
        from ..errors import RegistryError
        from ..sign.bundles import DEFAULT_STEM, bundles_for

        files = bundles_for(result.envelope, result.signers, DEFAULT_STEM, result.timestamps)
        bundles = [f.data for f in files]
        if self.legacy and len(bundles) > 1:
            bundles = []  # one layer of several signatures: no per-signature annotations
        try:
            attached = attach_signed(
                self.client, self.target, result.envelope, bundles, legacy=self.legacy
            )
        except Exception as exc:  # whatever happened, the signature is kept
            code = exc.code if isinstance(exc, RegistryError) else Code.REGISTRY_UNAVAILABLE
            raise RegistryError(
                code,
                f"signed and written, but not attached to {self.target.ref}: {exc} (attach the "
                "outputs later with `dssesign attach`)",
            ) from None
        if stream is not None:
            with contextlib.redirect_stdout(stream):
                report_attached(attached, self.target, json_output=False)
        return [
            {"layout": a.layout, "manifest": a.manifest_digest, "tag": a.tag, "new": a.new}
            for a in attached
        ]


def plan_image_attach(args: argparse.Namespace) -> ImageAttach:
    """Resolve `attest --image` now: a registry fault stops the command before any signature."""
    if args.legacy_tag and len(args.key or []) > 1 and (args.certificate or args.tsa):
        raise ConfigError(
            "--legacy-tag with several keys puts one envelope in one layer, which cannot carry "
            "each signature's certificate or timestamp: attach as a referrer (no --legacy-tag)"
        )
    client, target = open_target(args)
    return ImageAttach(client, target, legacy=args.legacy_tag)


# --- attach -------------------------------------------------------------------------------------


def _cmd_attach(args: argparse.Namespace) -> int:
    from ..core.dsse import Envelope

    limit = DEFAULT_LIMITS.max_json_bytes
    envelope = Envelope.from_json(read_bounded(args.envelope, limit=limit, what="envelope"))
    bundles = [read_bounded(b, limit=limit, what="bundle") for b in args.bundles]
    _check_bundles(envelope, bundles, args.bundles)
    client, target = open_target(args)
    attached = attach_signed(client, target, envelope, bundles, legacy=args.legacy_tag)
    report_attached(attached, target, json_output=getattr(args, "json", False))
    return 0


def _check_bundles(envelope: Envelope, bundles: Sequence[bytes], names: Sequence[str]) -> None:
    """Each bundle must hold this envelope's payload and one of its signatures."""
    from .._internal.strict_json import loads_strict
    from ..core.dsse import Envelope as Parsed

    for data, name in zip(bundles, names, strict=True):
        document = loads_strict(data, what=f"bundle {name}")
        dsse = document.get("dsseEnvelope") if isinstance(document, dict) else None
        if dsse is None:
            raise InputError(f"bundle {name}: not a DSSE bundle (no dsseEnvelope)")
        inner = Parsed.from_dict(dsse)
        same = inner.payload == envelope.payload and inner.payload_type == envelope.payload_type
        signed = {signature.sig for signature in envelope.signatures}
        if not same or not {signature.sig for signature in inner.signatures} <= signed:
            raise InputError(
                f"bundle {name}: does not carry this envelope's payload and one of its signatures"
            )


# --- verify --image -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageCheck:
    """What `verify --image` needs beyond the registry: the policy options."""

    predicate_type: str | None
    at: datetime | None
    require_timestamp: bool
    allow_stale_crl: bool


def verify_image_command(args: argparse.Namespace, root: TrustRoot, check: ImageCheck) -> int:
    """`verify --image`: find, group and verify; exit 0 when a group passes."""
    from ..oci import discover, verify_image

    if args.envelopes or args.artifact or args.digest:
        raise ConfigError(
            "--image verifies the image's attestations: give no ENVELOPE, --artifact or --digest"
        )
    client, target = open_target(args)
    outcome = verify_image(
        target,
        discover(client, target),
        root,
        predicate_type=check.predicate_type,
        at=check.at,
        require_timestamp=check.require_timestamp,
        allow_stale_crl=check.allow_stale_crl,
    )
    if args.json:
        print_json(outcome.to_dict())
        return outcome.exit_code
    report = outcome.to_dict()
    print(f"image {safe(report['image'])} (referrers: {report['referrers']})")
    for number, group in enumerate(report["groups"], 1):
        members = [a for a in report["attestations"] if a["group"] == number - 1]
        where = ", ".join(f"{a['source']} {a['manifest'][:19]}" for a in members)
        state = "OK" if group["ok"] else f"FAIL [{group['code']}]"
        print(f"  attestation {number}: {safe(group['predicateType'] or '?')}: {state} ({where})")
        print(f"    {safe(group['message'])}")
        for key in group.get("keysCounted", []):
            print(f"    {key['algorithm']:<26} {key['keyid']}")
        for identity in group.get("identitiesCounted", []):
            print(
                f"    {identity['kind']:<26} {safe(identity['issuer'])} {safe(identity['subject'])}"
            )
    for problem in report["problems"]:
        print(f"  skipped [{problem['code']}] {safe(problem['message'])}")
    passed = sum(1 for g in report["groups"] if g["ok"])
    if outcome.passed:
        print(f"OK: {passed} of {len(report['groups'])} attestations verified for {target.digest}")
        return 0
    why = (
        "no attestation found"
        if not report["groups"]
        else f"none of {len(report['groups'])} attestations verified"
    )
    print(
        f"error: verification failed [{report['code']}]: {why} for {target.digest}", file=sys.stderr
    )
    return outcome.exit_code


# --- download -----------------------------------------------------------------------------------


def _cmd_download(args: argparse.Namespace) -> int:
    from .._internal.fileio import OutputSet

    predicate_type = None
    if args.predicate_type is not None:
        from ..intoto.predicates import resolve_predicate_type

        predicate_type = resolve_predicate_type(args.predicate_type)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: not a directory")
    target, files = download_image(args, predicate_type)
    with OutputSet() as outputs:
        directory = outputs.make_directory(out, what="--out") if not out.exists() else out
        for name, data in files:
            outputs.add(directory / name, what="download")
            outputs.write(directory / name, data)
        outputs.publish()
    if getattr(args, "json", False):
        print_json(
            {"image": str(target.ref), "digest": target.digest, "files": [n for n, _ in files]}
        )
    else:
        print(f"{len(files)} files from {safe(target.ref)} -> {safe(out)}")
    return 0


def download_files(
    groups: Sequence[Any], predicate_type: str | None, target: Target
) -> tuple[list[tuple[str, bytes]], list[str]]:
    """(file name, bytes) for each group about `target`: its envelope, and each bundle by its
    signature; and why other groups were left out.

    A group whose Statement does not name the image digest is left out: verified offline it
    would prove something about another artifact (the signed payload binds the subject, so
    this unauthenticated look is enough to choose, and verification decides).
    """
    import hashlib

    from .._internal.strict_json import loads_strict
    from ..sign.countersign import signature_bundle_names

    files: list[tuple[str, bytes]] = []
    skipped: list[str] = []
    for group in groups:
        try:
            statement = loads_strict(group.payload, what="payload")
            if not isinstance(statement, dict):
                raise InputError("not an object")
            kind = statement.get("predicateType")
            check_subject(statement, target, f"attestation {group.payload_sha256[:16]}")
        except InputError:
            skipped.append(f"attestation {group.payload_sha256[:16]}: not an in-toto Statement")
            continue
        except ConfigError:
            skipped.append(
                f"attestation {group.payload_sha256[:16]}: its Statement does not name "
                f"{target.digest}"
            )
            continue
        if predicate_type is not None and kind != predicate_type:
            continue
        stem = f"attestation-{group.payload_sha256[:16]}"
        envelope = group.envelope
        files.append((f"{stem}.dsse.json", envelope.to_json() + b"\n"))
        names: Sequence[str | None] = signature_bundle_names(envelope, stem)
        if len(set(names)) < len(names):  # two signatures under one keyid (a forged hint)
            names = [None] * len(names)
        for signature, name in zip(envelope.signatures, names, strict=True):
            bundle = group.bundle_of.get(signature.sig)
            if bundle is None:
                continue
            tag = hashlib.sha256(signature.sig).hexdigest()[:16]
            files.append((name or f"{stem}.sig-{tag}.sigstore.json", bundle))
    return files, skipped


def download_image(
    args: argparse.Namespace, predicate_type: str | None
) -> tuple[Target, list[tuple[str, bytes]]]:
    """The files `download` writes for --image; problems and skipped groups said on stderr."""
    from ..oci import discover, group_candidates

    client, target = open_target(args)
    discovery = discover(client, target)
    groups, problems = group_candidates(discovery.candidates)
    files, skipped = download_files(groups, predicate_type, target)
    for problem in (*discovery.problems, *problems):
        print(f"skipped [{problem.code}] {safe(problem.message)}", file=sys.stderr)
    for reason in skipped:
        print(f"skipped {safe(reason)}", file=sys.stderr)
    if not files:
        from ..codes import Code
        from ..errors import RegistryError

        raise RegistryError(Code.NO_ATTESTATIONS, f"no attestation of {target.ref} to download")
    return target, files
