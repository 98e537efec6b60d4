"""`dssesign verify --emit-vsa FILE --vsa-key REF ...`: a signed SLSA VSA of the verdict.

The options, and the step around the verification: `plan_vsa` checks them and the output
before any verification work (and reads the trust root's bytes, whose SHA-256 is the policy
digest); `VsaStep.prepare` loads the VSA key(s), the audit log and the TSAs once the trust
root is loaded; `VsaStep.add` (or `collect`) records each file verified with the SHA-256 of
the bytes that were verified; `VsaStep.finish` builds, signs and publishes the summary.

Nothing of `dssesign.vsa` or the signing stack is imported unless ``--emit-vsa`` is given:
`dssesign verify` stays the offline verifier. (`cli.signing` is not used: it imports
`cli.verify`, which imports this module.)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DssesignError, PredicateError

if TYPE_CHECKING:
    from .._internal.fileio import OutputSet
    from ..audit import AuditLog
    from ..sign.signer import Signer
    from ..sign.timestamps import Timestamping
    from ..trust import TrustRoot
    from ..verify import VerificationResult
    from ..vsa import VerifiedInput, VsaRequest

__all__ = ["VSA_ENTRY", "VsaStep", "add_vsa_options", "plan_vsa"]

#: The key a per-envelope report carries its `VerifiedInput` under until `collect` takes it off.
VSA_ENTRY = "_vsa"

#: (attribute, option) of every option that only means something with --emit-vsa.
_VSA_ONLY = (
    ("vsa_key", "--vsa-key"),
    ("vsa_password_file", "--vsa-password-file"),
    ("vsa_bundle_dir", "--vsa-bundle-dir"),
    ("vsa_tsa", "--vsa-tsa"),
    ("vsa_audit_log", "--vsa-audit-log"),
    ("vsa_verifier_id", "--vsa-verifier-id"),
    ("resource_uri", "--resource-uri"),
    ("policy_uri", "--policy-uri"),
    ("verified_level", "--verified-level"),
    ("emit_vsa_on_failure", "--emit-vsa-on-failure"),
)
#: `command_inputs` names options as `attest` spells them; here they carry the --vsa- prefix.
_OWN_NAMES = {"--key": "--vsa-key", "--password-file": "--vsa-password-file"}
#: The VSA field each option fills, for errors that name the option.
_FIELD_OPTIONS = (
    ("$.verifier", "--vsa-verifier-id"),
    ("$.resourceUri", "--resource-uri"),
    ("$.policy", "--policy-uri"),
    ("$.verifiedLevels", "--verified-level"),
)


def add_vsa_options(parser: argparse.ArgumentParser) -> None:
    """`verify`'s options for writing a signed verification summary (SLSA VSA v1)."""
    group = parser.add_argument_group(
        "verification summary (SLSA VSA v1)",
        "write a signed in-toto Statement of the verdict, checked against the VSA schema; "
        "PASSED only if everything verified",
    )
    group.add_argument(
        "--emit-vsa",
        metavar="FILE",
        help="write a DSSE envelope of a SLSA VSA here (needs --vsa-key and --resource-uri; "
        "not with --at: timeVerified is the wall clock)",
    )
    group.add_argument(
        "--vsa-key",
        action="append",
        default=[],
        metavar="REF",
        help="key that signs the VSA (PATH, file://PATH, or a profile's scheme); repeatable, "
        "every key signs",
    )
    group.add_argument(
        "--vsa-password-file",
        metavar="FILE",
        help="file holding the VSA key's passphrase (default: $DSSESIGN_KEY_PASSWORD)",
    )
    group.add_argument(
        "--vsa-bundle-dir",
        metavar="DIR",
        help="also write one Sigstore bundle (v0.3) per VSA signature here",
    )
    group.add_argument(
        "--vsa-tsa",
        action="append",
        default=[],
        metavar="URL",
        help="timestamp each VSA signature at this RFC 3161 TSA, judged by the trust root's "
        "timestamp authorities (repeatable; needs --vsa-bundle-dir)",
    )
    group.add_argument(
        "--vsa-audit-log",
        metavar="FILE",
        help="record the VSA signatures in this audit log (default: $DSSESIGN_AUDIT_LOG)",
    )
    group.add_argument(
        "--vsa-verifier-id",
        metavar="URI",
        help="the VSA's verifier.id (default: https://github.com/dssesign/dssesign/verify@VERSION)",
    )
    group.add_argument(
        "--resource-uri",
        metavar="URI",
        help="the VSA's resourceUri (required by the spec): where consumers fetch the artifact",
    )
    group.add_argument(
        "--policy-uri",
        metavar="URI",
        help="the VSA's policy.uri (default: the trust root's file:// URI; the digest is always "
        "the SHA-256 of the trust-root file)",
    )
    group.add_argument(
        "--verified-level",
        action="append",
        default=[],
        metavar="LEVEL",
        help="a verifiedLevels entry of a PASSED VSA, e.g. SLSA_BUILD_LEVEL_3 (one per track; "
        "repeatable)",
    )
    group.add_argument(
        "--emit-vsa-on-failure",
        action="store_true",
        help="write a FAILED VSA when verification fails (needs --artifact or --digest: a "
        "FAILED VSA names what was asked about); the exit code stays verify's",
    )


def plan_vsa(args: argparse.Namespace) -> VsaStep | None:
    """None without --emit-vsa; else the step, with its options and --emit-vsa checked.

    Runs before any verification work: bad usage is exit 2 and leaves nothing behind.
    """
    if not getattr(args, "emit_vsa", None):
        for attribute, option in _VSA_ONLY:
            if getattr(args, attribute, None):
                raise ConfigError(f"{option} is only used with --emit-vsa")
        return None
    if args.at is not None:
        raise ConfigError(
            "--emit-vsa cannot be used with --at: a verification summary records when the "
            "verification happened (timeVerified is the wall clock)"
        )
    if not args.vsa_key:
        raise ConfigError("--emit-vsa needs --vsa-key: the key that signs the summary")
    if not args.resource_uri:
        raise ConfigError(
            "--emit-vsa needs --resource-uri: the SLSA VSA's resourceUri (required by the spec) "
            "names where consumers fetch the artifact"
        )
    if args.emit_vsa_on_failure and not (args.artifact or args.digest):
        raise ConfigError(
            "--emit-vsa-on-failure needs --artifact or --digest: a FAILED summary names what was "
            "asked about, never subjects of an envelope that did not verify"
        )
    if args.vsa_tsa and not args.vsa_bundle_dir:
        raise ConfigError(
            "--vsa-tsa needs --vsa-bundle-dir: a signature's timestamps travel in its bundle"
        )
    step = VsaStep(args)
    try:
        step.plan()
    except BaseException:
        step.close(failed=True)
        raise
    return step


class VsaStep:
    """One --emit-vsa: planned before verifying, fed while verifying, finished after.

    Use it as a context manager around the verification: leaving the block with an error
    removes the planned output (and a bundle directory it created) and closes the audit log.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        from .._internal.fileio import OutputSet

        self.args = args
        self.path: str = args.emit_vsa
        self.on_failure: bool = args.emit_vsa_on_failure
        #: The namespace the shared signing helpers read (`--key`, its secret, the audit log).
        self.signing = argparse.Namespace(
            key=list(args.vsa_key),
            password_file=args.vsa_password_file,
            audit_log=args.vsa_audit_log,
            timeout=None,
        )
        self.outputs: OutputSet = OutputSet()
        self.trust_root_data = b""
        self.request: VsaRequest | None = None
        self.bundle_dir: Path | None = None
        self.signers: list[Signer] = []
        self.timestamping: Timestamping | None = None
        self.audit: AuditLog | None = None
        self.inputs: list[VerifiedInput] = []

    def __enter__(self) -> VsaStep:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failed=exc is not None)

    def close(self, *, failed: bool) -> None:
        """Discard what was not published; close the audit log (best effort after a failure)."""
        self.outputs.discard()
        audit, self.audit = self.audit, None
        if audit is None:
            return
        if failed:
            with contextlib.suppress(Exception):
                audit.close()
        else:
            audit.close()

    # -- before verifying ------------------------------------------------------------------

    def plan(self) -> None:
        """The output checked (never an input), the trust root's bytes read, the request made."""
        from .._internal.fileio import read_bounded
        from ..trust import MAX_TRUST_ROOT_BYTES
        from .common import command_inputs

        args = self.args
        for what, path in command_inputs(self.signing):
            self.outputs.add_input(_OWN_NAMES.get(what, what), path)
        self.outputs.add_input("--trust-root", args.trust_root)
        self.outputs.add_input("--previous-trust-root", args.previous_trust_root)
        for artifact in args.artifact:
            self.outputs.add_input("--artifact", artifact)
        for argument in args.envelopes:
            if os.path.isdir(argument):
                # The summary must not become an envelope of a directory being verified.
                name = os.path.join(argument, os.path.basename(self.path))
                self.outputs.add_input(f"an envelope in {argument}", name)
            else:
                self.outputs.add_input("an envelope", argument)
        self.outputs.add(self.path, what="--emit-vsa")
        if args.vsa_bundle_dir:
            self.bundle_dir = self.outputs.make_directory(
                args.vsa_bundle_dir, what="--vsa-bundle-dir"
            )
        self.trust_root_data = read_bounded(
            args.trust_root, limit=MAX_TRUST_ROOT_BYTES, what="trust root"
        )
        self.request = _request(args, self.trust_root_data)

    def prepare(self, root: TrustRoot) -> None:
        """The audit log opened, the TSAs set up and the VSA keys loaded, before verifying.

        A key that cannot load (a wrong passphrase, a missing token) stops the command before
        any envelope is verified; its bundle files are checked now too.
        """
        from ..sign.bundles import bundle_names, bundle_stem
        from ..sign.multisign import is_exportable
        from ..sign.signer import SignerOptions, load_signer
        from .audit import open_audit_log, record_load_failure, signing_context
        from .common import password

        if self.args.vsa_tsa:
            from ..sign.timestamps import Timestamping

            self.timestamping = Timestamping(tuple(self.args.vsa_tsa), root.timestamp_authorities)
        self.audit = open_audit_log(self.signing)
        options = SignerOptions(password=password(self.signing))
        operation_id = signing_context(self.signing).operation_id
        for reference in self.signing.key:
            try:
                self.signers.append(load_signer(reference, options))
            except Exception as exc:
                if self.audit is not None:
                    record_load_failure(
                        self.signing, reference, exc, log=self.audit, operation_id=operation_id
                    )
                raise
        for signer in self.signers:
            if is_exportable(signer):
                print(
                    f"warning: VSA key {getattr(signer, 'reference', signer.keyid)} can leave its "
                    "device; its signature is marked exportable",
                    file=sys.stderr,
                )
        if self.bundle_dir is not None:
            for name in bundle_names(self.signers, bundle_stem(self.path)):
                self.outputs.check(self.bundle_dir / name, what="bundle")

    # -- while verifying -------------------------------------------------------------------

    def add(self, name: str, data: bytes | None, result: VerificationResult | None) -> None:
        """Record one file verified: the bytes that were verified and the result (None: failed)."""
        from ..vsa import VerifiedInput

        self.inputs.append(VerifiedInput.of(name, data, result))

    def add_bundled(
        self,
        names: Sequence[str],
        envelope: bytes | None,
        bundles: Sequence[bytes],
        result: VerificationResult | None,
    ) -> None:
        """An envelope verified with bundles of its signatures (or one bundle alone): each file
        named as given, in order, with the one result."""
        files = ([envelope] if envelope is not None else []) + list(bundles)
        for name, data in zip(names, files, strict=True):
            self.add(name, data, result)

    def add_jsonl(
        self,
        name: str,
        data: bytes,
        results: Sequence[VerificationResult | None],
        bundles: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """A .jsonl file verified line by line: one input for the file (and one per bundle
        file), passed only if every line passed (--any-line lets the command pass, never the
        summary), vouching for the subjects of every line."""
        from ..vsa import VerifiedInput

        lines = [VerifiedInput.of(name, data, result) for result in results]
        passed = bool(lines) and all(line.passed for line in lines)
        subjects = tuple(s for line in lines for s in line.subjects) if passed else ()
        for entry_name, entry_data in [(name, data), *bundles]:
            entry = VerifiedInput.of(entry_name, entry_data, None)
            self.inputs.append(
                VerifiedInput(entry.name, entry.sha256, passed=passed, subjects=subjects)
            )
            subjects = ()  # the file vouches for them; its bundles add nothing

    def collect(
        self, results: Iterator[tuple[int, dict[str, Any]]], count: int
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Pass the per-envelope reports on, taking off (and keeping) each one's `VSA_ENTRY`.

        `count` envelopes are about to be verified: too many for one summary is refused now.
        """
        from ..vsa import MAX_INPUTS

        if count > MAX_INPUTS:
            raise ConfigError(
                f"--emit-vsa: {count} envelopes; one verification summary names at most "
                f"{MAX_INPUTS}"
            )
        return self._collecting(results)

    def _collecting(
        self, results: Iterator[tuple[int, dict[str, Any]]]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        from ..vsa import VerifiedInput

        for code, report in results:
            entry = report.pop(VSA_ENTRY, None)
            if isinstance(entry, VerifiedInput):
                # A report that says it failed never counts as passed, whatever came with it.
                self.inputs.append(entry if code == 0 else _failed(entry))
            yield code, report

    # -- after verifying -------------------------------------------------------------------

    def finish(self, code: int) -> int:
        """Sign and publish the summary if the verdict allows it; returns verify's exit code.

        PASSED needs exit 0 and every recorded input passed; otherwise a FAILED summary is
        written only with --emit-vsa-on-failure. Nothing is written when signing fails.
        """
        from ..vsa import verification_result

        if not self.inputs:
            raise ConfigError("--emit-vsa: nothing was verified that a summary could name")
        verdict = verification_result(self.inputs)
        if verdict == "PASSED" and code != 0:
            # The invariant the verdict rests on; never sign PASSED for a failed command.
            raise ConfigError("--emit-vsa: the inputs passed but verification did not; no VSA")
        if verdict == "FAILED" and not self.on_failure:
            print(
                "no verification summary written: verification failed "
                "(--emit-vsa-on-failure writes a FAILED one)",
                file=sys.stderr,
            )
            # A command that passed (--any-line) but wrote no summary must not exit 0: a
            # script's `verify ... && upload SUMMARY` would ship an older one.
            return code or 1
        self._emit(verdict)
        return code

    def _emit(self, verdict: str) -> None:
        from .._internal.text import escape_controls as safe
        from ..sign.bundles import bundle_stem, write_bundles
        from ..vsa import build_vsa, emit_vsa
        from .audit import signing_context

        assert self.request is not None
        request = self.request
        if verdict == "FAILED" and self.args.artifact:
            request = _with_artifacts(request, self.args.artifact)
        statement = build_vsa(self.inputs, request)
        context = signing_context(self.signing, statement)
        signed = emit_vsa(
            statement,
            keys=self.signers,
            bundle_stem=bundle_stem(self.path),
            audit=self.audit,
            context=context,
            timestamps=self.timestamping,
        )
        written: list[Path] = []
        try:
            if self.bundle_dir is not None:
                written = write_bundles(self.bundle_dir, signed.bundles, self.outputs)
            self.outputs.write(self.path, signed.envelope.to_json() + b"\n")
            if self.audit is not None:
                self.audit.commit()  # durable before anything is published
            self.outputs.publish()
        except BaseException as exc:
            if self.audit is not None:
                with contextlib.suppress(Exception):
                    self.audit.record_publish_failure(
                        operation_id=context.operation_id,
                        error_code=f"not-published:{type(exc).__name__}",
                    )
            raise
        print(
            safe(
                f"verification summary ({verdict}, {len(signed.envelope.signatures)} "
                f"signature(s)) -> {self.path}"
            ),
            file=sys.stderr,
        )
        for path in written:
            print(f"  bundle -> {safe(str(path))}", file=sys.stderr)


def _request(args: argparse.Namespace, trust_root: bytes) -> VsaRequest:
    """The summary's fields from the options, checked now; errors name the option."""
    import hashlib

    from ..vsa import DEFAULT_VERIFIER_ID, VsaRequest

    policy_uri = args.policy_uri or Path(os.path.abspath(args.trust_root)).as_uri()
    try:
        return VsaRequest(
            resource_uri=args.resource_uri,
            policy_uri=policy_uri,
            policy_sha256=hashlib.sha256(trust_root).hexdigest(),
            verifier_id=args.vsa_verifier_id or DEFAULT_VERIFIER_ID,
            verified_levels=tuple(args.verified_level),
            digests=tuple(args.digest),
        )
    except PredicateError as exc:
        for prefix, option in _FIELD_OPTIONS:
            if exc.path.startswith(prefix):
                detail = str(exc).removeprefix(f"{exc.path}: ")
                raise ConfigError(f"{option}: {detail}") from None
        raise
    except DssesignError as exc:
        raise ConfigError(f"--digest: {exc}") from None


def _with_artifacts(request: VsaRequest, artifacts: list[str]) -> VsaRequest:
    """A FAILED summary's subjects: --digest, and each --artifact hashed (SHA-256) now."""
    import dataclasses

    from ..intoto.subjects import digest_file

    hashed = tuple(f"sha256:{digest_file(path)['sha256']}" for path in artifacts)
    return dataclasses.replace(request, digests=request.digests + hashed)


def _failed(entry: VerifiedInput) -> VerifiedInput:
    import dataclasses

    return dataclasses.replace(entry, passed=False, subjects=())
