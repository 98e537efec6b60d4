"""The signing options `attest` and `sign` share: keys and their secrets, TSAs, bundle dir,
organisation certificates.

Read and checked before any key is loaded: a bad option never costs a signature.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._internal.fileio import read_bounded
from ..errors import ConfigError, InputError
from .common import add_password, password

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography import x509

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
            "--certificate",
            action="append",
            default=[],
            metavar="PEM",
            help="the X.509 code-signing certificate (PEM, one per file) of one --key: paired "
            "with the key whose public key it carries, checked before signing, carried in "
            "that signature's bundle (needs --bundle-dir or --image); repeatable, one per key",
        )
        parser.add_argument(
            "--certificate-chain",
            action="append",
            default=[],
            metavar="PEM",
            help="with --certificate: the intermediates (PEM, the leaf's issuer first) the "
            "leaf must be issued by; only checked here, never put in a bundle (verifiers take "
            "intermediates from their trust root); repeatable, each for the leaves of its "
            "first certificate",
        )
        parser.add_argument(
            "--tsa",
            action="append",
            default=[],
            metavar="URL",
            help="ask this RFC 3161 timestamp authority to timestamp every keyed signature "
            "(repeatable; the tokens go into the bundles: needs --bundle-dir or --image, and "
            "--trust-root)",
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
    if bundle_dir is None and not getattr(args, "image", None):  # --image: to the registry
        raise ConfigError(
            "--tsa needs --bundle-dir (or --image): a signature's timestamps travel in its bundle"
        )
    if not args.trust_root:
        raise ConfigError(
            "--tsa needs --trust-root: the trust root whose timestamp authorities will judge "
            "the tokens (a signature is never emitted with a token that does not verify)"
        )
    from ..sign.timestamps import Timestamping
    from .verify import load_trust_root_arg

    root = load_trust_root_arg(args.trust_root, args.root_keyid)
    return Timestamping(tuple(urls), root.timestamp_authorities, timeout=args.tsa_timeout)


# --- --certificate / --certificate-chain -------------------------------------------------------


@dataclass(frozen=True)
class _Certificate:
    """One --certificate, read and checked (all but its key) before any key is loaded."""

    path: str
    leaf: x509.Certificate
    spki: bytes
    chain_path: str | None = None
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def source(self) -> str:
        return f"--certificate {self.path}"

    @property
    def chain_source(self) -> str:
        return f"--certificate-chain {self.chain_path}"


def _certificates(
    args: argparse.Namespace, outputs: OutputSet, bundle_dir: Path | None
) -> list[_Certificate]:
    """--certificate and --certificate-chain: read (bounded), parsed and checked now, before any
    key is loaded, so a certificate unfit for code signing never costs a key load (keyless: a
    Fulcio certificate) or a signature. Its key is matched by `_attach_certificates`.

    With --certificate-chain, each leaf is checked against the chain that starts with its
    issuer, and each chain must serve a leaf.
    """
    from datetime import UTC, datetime

    from ..sign.certified import certificate_spki, check_leaf, load_chain, load_leaf

    paths: list[str] = list(getattr(args, "certificate", None) or [])
    chain_paths: list[str] = list(getattr(args, "certificate_chain", None) or [])
    if not paths:
        if chain_paths:
            raise ConfigError("--certificate-chain is only used with --certificate")
        return []
    if bundle_dir is None and not getattr(args, "image", None):  # --image: to the registry
        raise ConfigError(
            "--certificate needs --bundle-dir (or --image): a signature's certificate travels "
            "in its bundle"
        )
    keyed = [ref for ref in args.key if ref != "keyless"]
    if len(paths) > len(keyed):
        raise ConfigError(
            f"{len(paths)} --certificate for {len(keyed)} key(s) that can carry one: each "
            "certificate goes with one --key (a keyless signer takes no --certificate: Fulcio "
            "issues its own)"
        )
    _protect_inputs(
        args,
        outputs,
        [
            *(("--certificate", p) for p in paths),
            *(("--certificate-chain", p) for p in chain_paths),
        ],
    )
    chains = []
    for path in chain_paths:
        source = f"--certificate-chain {path}"
        chains.append((path, load_chain(_read_pem(path, "--certificate-chain"), source=source)))
    now = datetime.now(UTC)
    planned: list[_Certificate] = []
    for path in paths:
        source = f"--certificate {path}"
        leaf = load_leaf(_read_pem(path, "--certificate"), source=source)
        spki = certificate_spki(leaf, source=source)
        for earlier in planned:
            if earlier.spki == spki:
                raise ConfigError(
                    f"{earlier.source} and {source} carry the same public key: one certificate "
                    "per key"
                )
        chain_path, chain = _chain_for(leaf, chains, source)
        item = _Certificate(path, leaf, spki, chain_path, chain)
        check_leaf(leaf, chain, now=now, source=source, chain_source=item.chain_source)
        planned.append(item)
    used = {item.chain_path for item in planned}
    for chain_path, _ in chains:
        if chain_path not in used:
            raise ConfigError(
                f"--certificate-chain {chain_path}: its first certificate issued none of the "
                "--certificate leaves"
            )
    return planned


def _read_pem(path: str, what: str) -> bytes:
    from ..sign.certified import MAX_PEM_BYTES

    return read_bounded(path, limit=MAX_PEM_BYTES, what=what)


def _chain_for(
    leaf: x509.Certificate,
    chains: list[tuple[str, tuple[x509.Certificate, ...]]],
    source: str,
) -> tuple[str | None, tuple[x509.Certificate, ...]]:
    """The chain to check `leaf` against: the only one given, else the one that starts with its
    issuer (by name, then by signature when issuers share a name)."""
    if not chains:
        return None, ()
    if len(chains) == 1:
        return chains[0]
    named = [(path, chain) for path, chain in chains if chain[0].subject == leaf.issuer]
    if not named:
        raise ConfigError(
            f"{source}: no --certificate-chain starts with its issuer "
            f"({leaf.issuer.rfc4514_string()})"
        )
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

    for path, chain in named:
        try:
            leaf.verify_directly_issued_by(chain[0])
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            continue  # not this one; check_leaf reports why the first did not issue it
        return path, chain
    return named[0]


def _protect_inputs(
    args: argparse.Namespace, outputs: OutputSet, inputs: list[tuple[str, str]]
) -> None:
    """The certificate files are inputs: no output (--out, now; a bundle, later) may be one."""
    from .._internal.fileio import OutputSet as Inputs

    out = getattr(args, "out", None)
    if out:
        Inputs(inputs).check(out, what="--out")  # --out was planned before these were known
    for what, path in inputs:
        outputs.add_input(what, path)


def _attach_certificates(signers: list[Signer], planned: list[_Certificate]) -> list[Signer]:
    """Each signer whose key a --certificate carries, wrapped to carry it (`certify`, which
    checks it all again against the loaded key); refused before anything is signed when a
    certificate's key is none of the --key keys."""
    if not planned:
        return signers
    from ..sign.bundles import is_keyless
    from ..sign.certified import certify

    # is_keyless is a runtime Protocol check: once per signer, here, never per signature.
    keyless = [is_keyless(signer) for signer in signers]
    by_spki = {
        signer.public_key.spki_der: index
        for index, signer in enumerate(signers)
        if not keyless[index]
    }
    result = list(signers)
    for item in planned:
        index = by_spki.get(item.spki)
        if index is None:
            from ..core.keys import keyid_of_spki

            note = (
                " (a keyless signer takes no --certificate: Fulcio issues its own)"
                if any(keyless)
                else ""
            )
            raise ConfigError(
                f"{item.source}: its public key (keyid {keyid_of_spki(item.spki)[:16]}) is not "
                "the key of any --key" + note
            )
        result[index] = certify(
            signers[index],
            item.leaf,
            item.chain,
            source=item.source,
            chain_source=item.chain_source,
        )
    return result
