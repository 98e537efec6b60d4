"""The signing options `attest` and `sign` share: keys and their secrets, TSAs, bundle dir.

Read and checked before any key is loaded: a bad option never costs a signature.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .._internal.fileio import read_bounded
from ..errors import ConfigError, InputError
from .common import add_password, password

if TYPE_CHECKING:
    from pathlib import Path

    from .._internal.fileio import OutputSet
    from ..audit import AuditLog
    from ..sign.signer import Signer, SignerOptions
    from ..sign.timestamps import Timestamping

__all__ = ["OIDC_TOKEN_ENV", "add_signing", "load_signers", "signer_options"]

#: Environment variable the keyless profile reads the OIDC identity token from.
OIDC_TOKEN_ENV = "DSSESIGN_OIDC_TOKEN"  # noqa: S105 - the variable's name, not a secret
_MAX_TOKEN_FILE = 64 * 1024


def add_signing(
    parser: argparse.ArgumentParser,
    *,
    out: bool = True,
    out_required: bool = False,
    trust_root_help: str | None = None,
) -> None:
    """The signing options: repeatable --key, --threshold, --timeout and the secrets; with `out`,
    also --out (`out_required`: no stdout), --bundle-dir, --tsa and --trust-root (whose help a
    command that reads the trust root for more than --tsa gives as `trust_root_help`)."""
    parser.add_argument(
        "--key",
        action="append",
        required=True,
        metavar="REF",
        help="key reference (PATH, file://PATH, or a profile's scheme); repeat for N signatures",
    )
    parser.add_argument(
        "--threshold",
        type=int,
        metavar="K",
        help="succeed when at least K keys sign (default: all must sign)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="per-signer time limit (default: 60)",
    )
    if out:
        parser.add_argument(
            "--out",
            metavar="FILE",
            required=out_required,
            help="write the envelope here" + ("" if out_required else " (default: stdout)"),
        )
        parser.add_argument(
            "--bundle-dir",
            metavar="DIR",
            help="also write one Sigstore bundle (v0.3) per signature here: "
            "STEM.<keyid16>.sigstore.json, keyless: STEM.keyless-<n>.sigstore.json "
            "(STEM: the --out name without .json, else 'envelope')",
        )
        parser.add_argument(
            "--tsa",
            action="append",
            default=[],
            metavar="URL",
            help="ask this RFC 3161 timestamp authority to timestamp every keyed signature "
            "(repeatable; the tokens go into the bundles: needs --bundle-dir and --trust-root)",
        )
        parser.add_argument(
            "--trust-root",
            metavar="FILE",
            help=trust_root_help
            or "with --tsa: the trust root whose timestampAuthorities must accept every token "
            "before a signature is emitted",
        )
        parser.add_argument(
            "--root-keyid",
            action="append",
            default=[],
            metavar="KEYID",
            help="with a DSSE-signed --trust-root: a pinned root keyid (repeatable)",
        )
        parser.add_argument(
            "--tsa-timeout",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="per-request time limit for --tsa (default: 30)",
        )
    add_password(parser)
    parser.add_argument(
        "--identity-token-file",
        metavar="FILE",
        help=f"OIDC identity token for --key keyless (default: ${OIDC_TOKEN_ENV}, "
        "then ambient CI credentials)",
    )
    parser.add_argument(
        "--trust-config",
        metavar="FILE",
        help="Sigstore ClientTrustConfig JSON naming the instance for --key keyless "
        "(default: $DSSESIGN_SIGSTORE_TRUST_CONFIG, then the public-good instance)",
    )


def signer_options(args: argparse.Namespace) -> SignerOptions:
    """Secrets and instance settings for the key loaders, from files or the environment."""
    from pathlib import Path

    from ..sign.signer import SignerOptions

    token = None
    token_file = getattr(args, "identity_token_file", None)
    if token_file:
        raw = read_bounded(token_file, limit=_MAX_TOKEN_FILE, what="identity token file")
        try:
            token = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise InputError(f"identity token file {token_file}: not ASCII text") from None
        if not token:
            raise InputError(f"identity token file {token_file}: empty")
    trust_config = getattr(args, "trust_config", None)
    if trust_config and not Path(trust_config).is_file():
        raise InputError(f"trust config {trust_config}: no such file")
    # Without --identity-token-file the keyless loader reads $DSSESIGN_OIDC_TOKEN itself.
    return SignerOptions(
        password=password(args),
        identity_token=token,
        trust_config=Path(trust_config) if trust_config else None,
    )


def load_signers(args: argparse.Namespace) -> list[Signer]:
    """Load every `--key`, with no exportable warning and no audit record of a failure."""
    from ..sign.signer import load_signer

    options = signer_options(args)
    return [load_signer(ref, options) for ref in args.key]


def _load_signers_audited(
    args: argparse.Namespace, audit: AuditLog | None, operation_id: str
) -> list[Signer]:
    """`load_signers`, recording a key that fails to load in the open audit log (if any).

    Warns on stderr about each key that can leave its device (`exportable`).
    """
    from ..sign.signer import load_signer
    from .audit import record_load_failure

    options = signer_options(args)
    signers = []
    for ref in args.key:
        try:
            signers.append(load_signer(ref, options))
        except Exception as exc:
            if audit is not None:
                record_load_failure(args, ref, exc, log=audit, operation_id=operation_id)
            raise
    _warn_exportable(signers)
    return signers


def _warn_exportable(signers: list[Signer]) -> None:
    from ..sign.multisign import is_exportable

    for signer in signers:
        if is_exportable(signer):
            print(
                f"warning: key {getattr(signer, 'reference', signer.keyid)} can leave its device "
                "(exportable/extractable, accepted by the reference's allow- option); "
                "its signatures are marked exportable",
                file=sys.stderr,
            )


def _bundle_dir(args: argparse.Namespace, outputs: OutputSet) -> Path | None:
    """--bundle-dir, created now: before any key is loaded (keyless loading costs a certificate).

    Removed again (if it was created and is still empty) when the command fails.
    """
    if not getattr(args, "bundle_dir", None):
        return None
    from ..sign.bundles import prepare_bundle_dir

    return prepare_bundle_dir(args.bundle_dir, outputs)


def _timestamping(args: argparse.Namespace, bundle_dir: Path | None) -> Timestamping | None:
    """--tsa and its trust root, checked before any key is loaded."""
    urls = getattr(args, "tsa", None) or []
    if not urls:
        if getattr(args, "trust_root", None):
            raise ConfigError("--trust-root is only used with --tsa")
        return None
    if bundle_dir is None:
        raise ConfigError("--tsa needs --bundle-dir: a signature's timestamps travel in its bundle")
    if not args.trust_root:
        raise ConfigError(
            "--tsa needs --trust-root: the trust root whose timestamp authorities will judge "
            "the tokens (a signature is never emitted with a token that does not verify)"
        )
    from ..sign.timestamps import Timestamping
    from .verify import load_trust_root_arg

    root = load_trust_root_arg(args.trust_root, args.root_keyid)
    return Timestamping(tuple(urls), root.timestamp_authorities, timeout=args.tsa_timeout)
