"""`dssesign verify`: offline verification of one envelope, or of many across every core.

Sigstore bundles are recognised by their mediaType: ``verify ENVELOPE BUNDLE...`` checks the
envelope together with bundles of its signatures; ``verify BUNDLE`` checks a bundle alone (a
DSSE bundle as an envelope of one signature, a messageSignature bundle against --artifact or
--digest). Bundles must be named as files, not found in directories.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._internal.fileio import read_bounded
from ..errors import ConfigError, DssesignError, VerificationError
from .common import add_json, print_json

if TYPE_CHECKING:
    from ..trust import TrustRoot
    from .verify_vsa import VsaStep

#: Envelopes read per directory before we refuse (bounded work for a directory argument).
MAX_ENVELOPES = 1_000_000


def register(commands: Any) -> None:
    """Add `verify`: envelopes (files or directories), an envelope with its bundles, a bundle."""
    verify = commands.add_parser(
        "verify",
        help="verify DSSE envelopes offline against a trust root",
        description="Verify each ENVELOPE (a file, or a directory of *.json files) offline; "
        "or one ENVELOPE with Sigstore BUNDLE files of its signatures; or one BUNDLE alone.",
    )
    verify.add_argument("--trust-root", required=True, metavar="FILE")
    verify.add_argument(
        "--root-keyid",
        action="append",
        default=[],
        metavar="ID",
        help="pin a root keyid: the trust root must then be a DSSE-signed trust root",
    )
    verify.add_argument(
        "--previous-trust-root",
        metavar="FILE",
        help="the last trust root this site accepted: a signed update must be signed by its "
        "root keys and may not roll back to an older version",
    )
    verify.add_argument(
        "--artifact",
        action="append",
        default=[],
        metavar="PATH",
        help="a file whose SHA-256 must match a subject; repeatable",
    )
    verify.add_argument(
        "--digest",
        action="append",
        default=[],
        metavar="ALG:HEX",
        help="a digest that must match a subject; repeatable",
    )
    verify.add_argument(
        "--type", dest="predicate_type", metavar="TYPE", help="required predicate type"
    )
    verify.add_argument("--at", metavar="TIME", help="verification time, RFC 3339 UTC")
    verify.add_argument(
        "--require-timestamp",
        action="store_true",
        help="every counted key's signature must carry a verified RFC 3161 timestamp in its "
        "bundle (TIMESTAMP_REQUIRED otherwise)",
    )
    verify.add_argument(
        "--allow-stale-crl",
        action="store_true",
        help="accept a carried CRL whose nextUpdate is before a certificate signature's signing "
        "time (CRL_STALE otherwise)",
    )
    verify.add_argument(
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="processes for many envelopes (default: every core)",
    )
    verify.add_argument("envelopes", nargs="*", metavar="ENVELOPE|BUNDLE")
    from .oci import add_image_option

    add_image_option(
        verify,
        help_text="verify the attestations attached to this image in its registry (both "
        "layouts) instead of files: one must pass, with the image digest as a subject",
    )
    from .verify_jsonl import add_options as add_jsonl_options

    add_jsonl_options(verify)  # FILE.jsonl: JSON Lines of attestations, --any-line
    from .verify_vsa import add_vsa_options

    add_vsa_options(verify)  # --emit-vsa FILE --vsa-key REF ...: a signed SLSA VSA
    add_json(verify)
    verify.set_defaults(handler=_cmd_verify)


@dataclass(frozen=True)
class _Request:
    trust_root: bytes
    digests: tuple[str, ...]
    artifacts: tuple[str, ...]
    predicate_type: str | None
    at: datetime | None
    require_timestamp: bool = False
    allow_stale_crl: bool = False
    vsa: bool = False  # --emit-vsa: each report carries its VerifiedInput (verify_vsa)


def load_trust_root_arg(
    path: str, pins: Sequence[str], previous_path: str | None = None, data: bytes | None = None
) -> TrustRoot:
    """A plain trust root, or a DSSE-signed one checked against pins and/or the previous one.

    `data`: the file's bytes, already read (so a VSA's policy digest is of what was loaded).
    """
    from .._internal.strict_json import loads_strict
    from ..trust import MAX_TRUST_ROOT_BYTES, load_trust_root, verify_signed_trust_root

    if data is None:
        data = read_bounded(path, limit=MAX_TRUST_ROOT_BYTES, what="trust root")
    document = loads_strict(data, what=f"trust root {path}")
    signed = isinstance(document, dict) and "payloadType" in document
    if signed and not pins and not previous_path:
        raise ConfigError(
            f"trust root {path} is DSSE-signed: pin its root keys with --root-keyid "
            "or give --previous-trust-root"
        )
    if not signed and (pins or previous_path):
        raise ConfigError(
            f"--root-keyid/--previous-trust-root given but trust root {path} is not signed"
        )
    if signed:
        previous = _read_accepted(previous_path) if previous_path else None
        return verify_signed_trust_root(data, pinned_root_keyids=pins or None, previous=previous)
    return load_trust_root(data)


def _read_accepted(path: str) -> TrustRoot:
    """A trust root this site accepted earlier, kept plain or as the signed envelope it came in."""
    from .._internal.strict_json import loads_strict
    from ..core.dsse import Envelope
    from ..trust import MAX_TRUST_ROOT_BYTES, load_trust_root

    data = read_bounded(path, limit=MAX_TRUST_ROOT_BYTES, what="previous trust root")
    document = loads_strict(data, what=f"previous trust root {path}")
    if isinstance(document, dict) and "payloadType" in document:
        data = Envelope.from_dict(document).payload
    return load_trust_root(data)


def _expand(paths: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file()))
        else:
            found.append(path)
        if len(found) > MAX_ENVELOPES:
            raise ConfigError(f"more than {MAX_ENVELOPES} envelopes given")
    if not found:
        raise ConfigError("no envelopes found (a directory is searched for *.json files)")
    return found


# --- worker side: one trust root per process, loaded once ------------------------------------

_worker: tuple[TrustRoot, _Request] | None = None


def _init_worker(request: _Request) -> None:
    global _worker  # noqa: PLW0603 - per-process state, set once by the pool initializer
    from ..trust import load_trust_root

    _worker = (load_trust_root(request.trust_root), request)


def _verify_one(path: Path, root: TrustRoot, request: _Request) -> tuple[int, dict[str, object]]:
    from ..codes import Code
    from ..limits import DEFAULT_LIMITS
    from ..verify import VerificationResult, failure_report, verify

    data: bytes | None = None
    result: VerificationResult | None = None
    try:
        data = read_bounded(path, limit=DEFAULT_LIMITS.max_json_bytes, what="envelope")
        result = verify(
            data,
            root,
            artifacts=request.artifacts,
            digests=request.digests,
            predicate_type=request.predicate_type,
            at=request.at,
            require_timestamp=request.require_timestamp,
            allow_stale_crl=request.allow_stale_crl,
        )
    except VerificationError as exc:
        code, report = exc.exit_code, {"envelope": str(path), **failure_report(exc)}
    except DssesignError as exc:
        from ..verify.result import REPORT_SCHEMA_VERSION

        code = exc.exit_code
        report = {
            "envelope": str(path),
            "schemaVersion": REPORT_SCHEMA_VERSION,
            "ok": False,
            "code": str(Code.UNREADABLE),
            "message": str(exc),
            "signatures": [],
            "roles": {},
        }
    else:
        code, report = 0, {"envelope": str(path), **result.to_dict()}
    if request.vsa:  # --emit-vsa: the bytes verified and the result, taken off before printing
        from ..vsa import VerifiedInput
        from .verify_vsa import VSA_ENTRY

        report[VSA_ENTRY] = VerifiedInput.of(str(path), data, result)
    return code, report


def _verify_in_worker(path: Path) -> tuple[int, dict[str, object]]:
    assert _worker is not None
    return _verify_one(path, *_worker)


def _run_all(
    paths: list[Path], root: TrustRoot, request: _Request, jobs: int
) -> Iterator[tuple[int, dict[str, object]]]:
    if jobs <= 1 or len(paths) < 64:
        for path in paths:
            yield _verify_one(path, root, request)
        return
    from concurrent.futures import ProcessPoolExecutor  # only for many envelopes: 20 ms

    with ProcessPoolExecutor(
        max_workers=jobs, initializer=_init_worker, initargs=(request,)
    ) as pool:
        # The trust root and options travel once per worker; only paths go per task.
        chunk = max(1, min(256, len(paths) // (jobs * 8)))
        yield from pool.map(_verify_in_worker, paths, chunksize=chunk)


def _cmd_verify(args: argparse.Namespace) -> int:
    from .verify_vsa import plan_vsa

    vsa = plan_vsa(args)  # --emit-vsa: its options and output checked before any work
    if vsa is None:
        return _verify_command(args, None)
    with vsa:
        return vsa.finish(_verify_command(args, vsa))


def _verify_command(args: argparse.Namespace, vsa: VsaStep | None) -> int:
    from ..trust import dump_trust_root, parse_time

    try:
        root = load_trust_root_arg(
            args.trust_root,
            args.root_keyid,
            args.previous_trust_root,
            data=vsa.trust_root_data if vsa is not None else None,
        )
    except VerificationError as exc:
        if args.json:  # the report is printed on failure too
            from ..verify import failure_report

            print_json(failure_report(exc))
        raise
    # An empty --type or --at (an unset shell variable) is bad usage, never "any" or "now".
    at = parse_time(args.at, what="--at") if args.at is not None else None
    predicate_type = None
    if args.predicate_type is not None:
        from ..intoto.predicates import resolve_predicate_type

        predicate_type = resolve_predicate_type(args.predicate_type)
    if args.image is not None:
        from .oci import ImageCheck, verify_image_command

        if vsa is not None:
            raise ConfigError("--emit-vsa does not summarise --image verification yet")
        check = ImageCheck(predicate_type, at, args.require_timestamp, args.allow_stale_crl)
        return verify_image_command(args, root, check)
    if not args.envelopes:
        raise ConfigError("give ENVELOPE or BUNDLE files (or --image REF)")
    if vsa is not None:
        vsa.prepare(root)  # the VSA key loaded before any envelope is verified
    from .verify_jsonl import verify_jsonl_arguments

    jsonl_code = verify_jsonl_arguments(
        args, root, predicate_type, at, vsa
    )  # None: no .jsonl given
    if jsonl_code is not None:
        return jsonl_code
    try:
        bundled = _bundle_mode(args.envelopes)
    except VerificationError as exc:
        if args.json:
            from ..verify import failure_report

            print_json(failure_report(exc))
        raise
    if bundled is not None:
        code, report = _verify_bundled(root, bundled, args, predicate_type, at, vsa=vsa)
        return _print_single(code, report, json_output=args.json)
    paths = _expand(args.envelopes)
    digests = list(args.digest)
    artifacts = tuple(args.artifact)
    if len(paths) > 1 and artifacts:
        # Hash each artifact once, not once per envelope.
        from ..intoto.subjects import digest_file

        digests += [f"sha256:{digest_file(a)['sha256']}" for a in artifacts]
        artifacts = ()
    request = _Request(
        trust_root=dump_trust_root(root, allow_incomplete=True),
        digests=tuple(digests),
        artifacts=artifacts,
        predicate_type=predicate_type,
        at=at,
        require_timestamp=args.require_timestamp,
        allow_stale_crl=args.allow_stale_crl,
        vsa=vsa is not None,
    )
    jobs = args.jobs or os.cpu_count() or 1
    results = _run_all(paths, root, request, jobs)
    if vsa is not None:
        results = vsa.collect(results, len(paths))
    if len(paths) == 1:
        code, report = next(results)
        report.pop("envelope")
        return _print_single(code, report, json_output=args.json)
    return _report_many(results, len(paths), json_output=args.json)


def _print_single(code: int, report: dict[str, Any], *, json_output: bool) -> int:
    from .._internal.text import escape_controls as safe

    roles = report.get("roles") or {}
    if json_output:
        print_json(report)
    elif code == 0:
        print(f"OK: {safe(report['message'])}")
        for key in report.get("keysCounted", []):
            label = f" ({safe(key['label'])})" if key.get("label") else ""
            when = f"  signed at {key['signedAt']} (RFC 3161)" if key.get("signedAt") else ""
            print(f"  {key['algorithm']:<26} {key['keyid']}{label}{when}")
        for identity in report.get("identitiesCounted", []):
            label = f" ({safe(identity['label'])})" if identity.get("label") else ""
            print(
                f"  {identity.get('kind', 'keyless'):<26} {safe(identity['issuer'])} "
                f"{safe(identity['subject'])}{label}"
            )
        for name, role in roles.items():
            state = "met" if role["met"] else "not met"
            print(f"  role {safe(name)}: {role['counted']} of {role['threshold']} counted, {state}")
    else:
        # The message names the role that was short (ROLE_POLICY_NOT_MET); every role follows.
        print(
            f"error: verification failed [{report['code']}]: {safe(report['message'])}",
            file=sys.stderr,
        )
        for name, role in roles.items():
            state = "met" if role["met"] else "not met"
            print(
                f"  role {safe(name)}: {role['counted']} of {role['threshold']} counted, {state}",
                file=sys.stderr,
            )
    return code


@dataclass(frozen=True)
class _Bundled:
    """One envelope with bundles of its signatures, or one bundle alone (envelope None)."""

    envelope: bytes | None
    bundles: tuple[bytes, ...]


def _bundle_mode(arguments: Sequence[str]) -> _Bundled | None:
    """Read the named files if any of them is a Sigstore bundle; None for plain envelopes.

    Only files named directly count (never directory contents), and only up to one envelope
    plus limits.max_signatures bundles; a cheap byte search skips JSON parsing for files that
    cannot be bundles.
    """
    from ..limits import DEFAULT_LIMITS

    if any(Path(a).is_dir() for a in arguments):
        return None
    limit = DEFAULT_LIMITS.max_signatures
    if len(arguments) > 1 + limit:
        # Too many for one envelope's bundles: if bundles are among them, say so (a bounded
        # look at the first ones), rather than verifying them as many envelopes.
        if any(_is_bundle(_read_or_empty(a)) for a in arguments[1 : limit + 2]):
            from ..codes import Code

            raise VerificationError(
                Code.TOO_MANY_BUNDLES,
                f"{len(arguments) - 1} bundles exceed the limit of {limit} (one per signature)",
            )
        return None
    contents: list[bytes] = []
    kinds: list[bool] = []
    unreadable: DssesignError | None = None
    for index, argument in enumerate(arguments):
        try:
            data = read_bounded(argument, limit=DEFAULT_LIMITS.max_json_bytes, what="envelope")
        except DssesignError as exc:
            # Plain envelopes report an unreadable file per file (UNREADABLE) and go on with
            # the others; only a bundle verification makes it the one error of the command.
            unreadable = unreadable or exc
            data = b""
        kinds.append(_is_bundle(data))
        # Keep only what this mode can use: the first file and bundles (bounded memory).
        contents.append(data if index == 0 or kinds[-1] else b"")
    if not any(kinds):
        return None
    if unreadable is not None:
        raise unreadable
    if len(contents) == 1:
        return _Bundled(envelope=None, bundles=(contents[0],))
    if kinds[0] or not all(kinds[1:]):
        raise ConfigError(
            "give one ENVELOPE followed by Sigstore BUNDLE files of its signatures, "
            "or one BUNDLE alone"
        )
    return _Bundled(envelope=contents[0], bundles=tuple(contents[1:]))


def _read_or_empty(path: str) -> bytes:
    from ..limits import DEFAULT_LIMITS

    try:
        return read_bounded(path, limit=DEFAULT_LIMITS.max_json_bytes, what="envelope")
    except DssesignError:
        return b""


def _is_bundle(data: bytes) -> bool:
    if b"mediaType" not in data:
        return False
    from .._internal.strict_json import loads_strict
    from ..errors import InputError
    from ..verify.bundles import is_bundle_document

    try:
        document = loads_strict(data, what="input")
    except InputError:
        # Unparseable: a bundle if it names a bundle media type (the verifier says what is wrong).
        return b"application/vnd.dev.sigstore.bundle" in data
    return is_bundle_document(document)


def _verify_bundled(
    root: TrustRoot,
    bundled: _Bundled,
    args: argparse.Namespace,
    predicate_type: str | None,
    at: datetime | None,
    *,
    vsa: VsaStep | None = None,
) -> tuple[int, dict[str, Any]]:
    from ..verify import failure_report, verify, verify_bundle

    try:
        if bundled.envelope is None:
            result = verify_bundle(
                bundled.bundles[0],
                root,
                artifacts=tuple(args.artifact),
                digests=tuple(args.digest),
                predicate_type=predicate_type,
                at=at,
                require_timestamp=args.require_timestamp,
                allow_stale_crl=args.allow_stale_crl,
            )
        else:
            result = verify(
                bundled.envelope,
                root,
                bundles=bundled.bundles,
                artifacts=tuple(args.artifact),
                digests=tuple(args.digest),
                predicate_type=predicate_type,
                at=at,
                require_timestamp=args.require_timestamp,
                allow_stale_crl=args.allow_stale_crl,
            )
    except VerificationError as exc:
        if vsa is not None:  # --emit-vsa: every file verified, and the result (None: failed)
            vsa.add_bundled(args.envelopes, bundled.envelope, bundled.bundles, None)
        return exc.exit_code, failure_report(exc)
    if vsa is not None:
        vsa.add_bundled(args.envelopes, bundled.envelope, bundled.bundles, result)
    return 0, result.to_dict()


def _report_many(
    results: Iterator[tuple[int, dict[str, object]]], total: int, *, json_output: bool
) -> int:
    worst = 0
    reports: list[dict[str, object]] = []
    failed = 0
    progress = None
    if sys.stderr.isatty() and not json_output:
        from rich.progress import Progress

        progress = Progress(transient=True)
        progress.start()
        task = progress.add_task("verifying", total=total)
    try:
        for code, report in results:
            worst = max(worst, code)
            if json_output:
                reports.append(report)
            elif code:
                failed += 1
                from .._internal.text import escape_controls as safe

                print(
                    f"FAIL {safe(report['envelope'])}: [{report['code']}] {safe(report['message'])}"
                )
            if progress is not None:
                progress.advance(task)
    finally:
        if progress is not None:
            progress.stop()
    if json_output:
        print_json(reports)
    else:
        print(f"{total - failed} of {total} envelopes verified")
    return worst
