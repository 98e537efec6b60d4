"""`dssesign trust-root ...` (each write atomic, each change bumps `version`) and `kit build`."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._cli_audit import add_trust_audit_options, record_trust_change
from ._cli_common import Parser, add_json, add_password, emit, password, print_json
from ._fileio import read_bounded
from .errors import ConfigError

if TYPE_CHECKING:
    from .keys import PublicKey
    from .trustroot import TrustRoot

_MAX_PEM = 64 * 1024


def register(commands: Any) -> None:
    trust = commands.add_parser("trust-root", help="create and manage a trust-root bundle")
    sub = trust.add_subparsers(dest="trust_command", required=True, parser_class=Parser)

    init = sub.add_parser("init", help="create an empty trust root (version 1)")
    init.add_argument("--out", required=True, metavar="FILE")
    init.add_argument("--threshold", type=int, default=1, metavar="N")
    init.add_argument("--expires-days", type=int, default=365, metavar="DAYS")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    add_json(init)
    add_trust_audit_options(init)
    init.set_defaults(handler=_cmd_init)

    add = sub.add_parser("add-key", help="trust a signing key")
    add.add_argument("file", metavar="FILE")
    add.add_argument("--public-key", required=True, metavar="PEM")
    add.add_argument("--valid-from", metavar="TIME")
    add.add_argument("--valid-until", metavar="TIME")
    add.add_argument("--predicate-type", action="append", default=[], metavar="URI")
    add.add_argument("--label", metavar="LABEL")
    add_json(add)
    add_trust_audit_options(add)
    add.set_defaults(handler=_cmd_add_key)

    revoke = sub.add_parser("revoke", help="revoke a key from a point in time on")
    revoke.add_argument("file", metavar="FILE")
    revoke.add_argument("--keyid", required=True, metavar="ID")
    revoke.add_argument("--at", metavar="TIME", help="revocation time (default: now)")
    revoke.add_argument("--reason", default="", metavar="TEXT")
    add_json(revoke)
    add_trust_audit_options(revoke)
    revoke.set_defaults(handler=_cmd_revoke)

    policy = sub.add_parser("set-policy", help="threshold, required keys, hybrid PQ mode")
    policy.add_argument("file", metavar="FILE")
    policy.add_argument("--threshold", type=int, metavar="N")
    policy.add_argument("--require-keyid", action="append", metavar="ID")
    policy.add_argument("--clear-required", action="store_true", help="require no keyids")
    policy.add_argument("--for-type", metavar="URI", help="set the policy for one predicate type")
    policy.add_argument("--hybrid", choices=("off", "or", "and", "pq-only"))
    add_json(policy)
    add_trust_audit_options(policy)
    policy.set_defaults(handler=_cmd_set_policy)

    rotate = sub.add_parser("rotate", help="hand a key over to a new one, signed by the old key")
    rotate.add_argument("file", metavar="FILE")
    rotate.add_argument("--from-key", required=True, metavar="REF")
    rotate.add_argument("--to-public-key", required=True, metavar="PEM")
    rotate.add_argument("--transition-days", type=int, default=30, metavar="DAYS")
    rotate.add_argument("--label", metavar="LABEL")
    add_password(rotate)
    add_json(rotate)
    add_trust_audit_options(rotate)
    rotate.set_defaults(handler=_cmd_rotate)

    roots = sub.add_parser("set-root-keys", help="the keys that sign the trust root itself")
    roots.add_argument("file", metavar="FILE")
    roots.add_argument("--public-key", action="append", required=True, metavar="PEM")
    roots.add_argument("--threshold", type=int, default=1, metavar="N")
    add_json(roots)
    add_trust_audit_options(roots)
    roots.set_defaults(handler=_cmd_set_root_keys)

    sigstore_root = sub.add_parser(
        "set-sigstore-root",
        help="embed the Sigstore trusted_root.json keyless bundles are verified against",
    )
    sigstore_root.add_argument("file", metavar="FILE")
    sigstore_root.add_argument("--trusted-root", required=True, metavar="TRUSTED_ROOT_JSON")
    add_json(sigstore_root)
    add_trust_audit_options(sigstore_root)
    sigstore_root.set_defaults(handler=_cmd_set_sigstore_root)

    identity = sub.add_parser(
        "add-identity", help="trust keyless signatures by an OIDC issuer + certificate subject"
    )
    identity.add_argument("file", metavar="FILE")
    identity.add_argument("--issuer", required=True, metavar="URL", help="OIDC issuer, exact")
    subject = identity.add_mutually_exclusive_group(required=True)
    subject.add_argument("--subject", metavar="SAN", help="certificate SAN, exact")
    subject.add_argument(
        "--subject-regexp", metavar="RE", help="regular expression matching the whole SAN"
    )
    identity.add_argument(
        "--extension",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="certificate extension the signer must carry, e.g. "
        "githubWorkflowRepository=org/repo; repeatable",
    )
    identity.add_argument("--predicate-type", action="append", default=[], metavar="URI")
    identity.add_argument("--label", metavar="LABEL")
    add_json(identity)
    add_trust_audit_options(identity)
    identity.set_defaults(handler=_cmd_add_identity)

    show = sub.add_parser("show", help="print a trust root")
    show.add_argument("file", metavar="FILE")
    add_json(show)
    show.set_defaults(handler=_cmd_show)

    sign = sub.add_parser("sign", help="DSSE-sign a trust root with its root keys")
    sign.add_argument("file", metavar="FILE")
    sign.add_argument("--key", action="append", required=True, metavar="REF")
    sign.add_argument("--out", metavar="FILE", help="default: stdout")
    add_password(sign)
    add_json(sign)
    sign.set_defaults(handler=_cmd_sign)

    kit = commands.add_parser("kit", help="offline verification kits")
    kit_sub = kit.add_subparsers(dest="kit_command", required=True, parser_class=Parser)
    build = kit_sub.add_parser("build", help="write a self-contained offline verification kit")
    build.add_argument("--trust-root", required=True, metavar="FILE")
    build.add_argument("--out", required=True, metavar="DIR")
    build.add_argument("--artifacts", metavar="DIR")
    build.add_argument("--force", action="store_true", help="replace an existing kit")
    build.add_argument(
        "attestations",
        nargs="*",
        metavar="ATTESTATION",
        help="DSSE envelopes and Sigstore bundles: a bundle STEM.TAG.sigstore.json is verified "
        "with the envelope STEM.json, any other bundle alone (docs/offline-kit.md)",
    )
    add_json(build)
    build.set_defaults(handler=_cmd_kit_build)


def _public_key(path: str) -> PublicKey:
    from .keys import load_public_key

    return load_public_key(read_bounded(path, limit=_MAX_PEM, what="public key"), source=path)


def _time(value: str | None, what: str) -> datetime | None:
    from .trustroot import parse_time

    return parse_time(value, what=what) if value else None


def _read(path: str) -> TrustRoot:
    from .trustroot import read_trust_root

    return read_trust_root(path, allow_incomplete=True)


def _write(
    args: argparse.Namespace,
    path: str,
    root: TrustRoot,
    what: str,
    *,
    change: str,
    keyids: tuple[str, ...] = (),
) -> int:
    from .trustroot import save_trust_root

    save_trust_root(path, root)
    if change != "rotate":  # rotations are recorded with both keyids by _cmd_rotate
        record_trust_change(args, change, version=root.version, path=path, keyids=keyids)
    if args.json:
        print_json({"file": path, "version": root.version, "change": what})
    else:
        print(f"{path}: {what} (version {root.version})")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from .trustroot import init_trust_root

    if Path(args.out).exists() and not args.force:
        raise ConfigError(f"{args.out} exists; refusing to overwrite it (use --force)")
    root = init_trust_root(threshold=args.threshold, expires_days=args.expires_days)
    return _write(args, args.out, root, "created", change="init")


def _cmd_add_key(args: argparse.Namespace) -> int:
    from .trustroot import add_key

    key = _public_key(args.public_key)
    root = add_key(
        _read(args.file),
        key,
        valid_from=_time(args.valid_from, "--valid-from"),
        valid_until=_time(args.valid_until, "--valid-until"),
        predicate_types=tuple(args.predicate_type),
        label=args.label,
    )
    return _write(
        args,
        args.file,
        root,
        f"added key {key.keyid} ({key.algorithm.name})",
        change="add-key",
        keyids=(key.keyid,),
    )


def _cmd_revoke(args: argparse.Namespace) -> int:
    from .trustroot import revoke_key

    root = revoke_key(_read(args.file), args.keyid, at=_time(args.at, "--at"), reason=args.reason)
    return _write(
        args, args.file, root, f"revoked key {args.keyid}", change="revoke", keyids=(args.keyid,)
    )


def _cmd_set_policy(args: argparse.Namespace) -> int:
    from .trustroot import set_policy

    if args.clear_required and args.require_keyid:
        raise ConfigError("--clear-required and --require-keyid contradict each other")
    required = () if args.clear_required else args.require_keyid
    root = set_policy(
        _read(args.file),
        threshold=args.threshold,
        required_keyids=required,
        for_type=args.for_type,
        hybrid=args.hybrid,
    )
    scope = f" for {args.for_type}" if args.for_type else ""
    return _write(args, args.file, root, f"policy updated{scope}", change="set-policy")


def _cmd_rotate(args: argparse.Namespace) -> int:
    from .signer import SignerOptions, load_signer
    from .trustroot import rotate_key

    old = load_signer(args.from_key, SignerOptions(password=password(args)))
    new = _public_key(args.to_public_key)
    root = rotate_key(
        _read(args.file), old, new, transition_days=args.transition_days, label=args.label
    )
    _write(
        args, args.file, root, f"rotated {old.keyid[:16]}… -> {new.keyid[:16]}…", change="rotate"
    )
    record_trust_change(
        args,
        "rotate",
        version=root.version,
        path=args.file,
        rotation=(old.keyid, new.keyid),
        signer_reference=args.from_key,
    )
    return 0


def _cmd_set_root_keys(args: argparse.Namespace) -> int:
    from .trustroot import set_root_keys

    keys = [_public_key(p) for p in args.public_key]
    root = set_root_keys(_read(args.file), keys, threshold=args.threshold)
    return _write(
        args,
        args.file,
        root,
        f"{len(keys)} root keys, threshold {args.threshold}",
        change="set-root-keys",
        keyids=tuple(k.keyid for k in keys),
    )


def _cmd_set_sigstore_root(args: argparse.Namespace) -> int:
    from ._json import loads_strict
    from .trustroot import MAX_TRUST_ROOT_BYTES, set_sigstore_root

    data = read_bounded(args.trusted_root, limit=MAX_TRUST_ROOT_BYTES, what="trusted root")
    document = loads_strict(data, what=f"trusted root {args.trusted_root}")
    if not isinstance(document, dict):
        raise ConfigError(f"trusted root {args.trusted_root}: expected a JSON object")
    root = set_sigstore_root(_read(args.file), document)
    return _write(args, args.file, root, "Sigstore trusted root set", change="set-sigstore-root")


def _cmd_add_identity(args: argparse.Namespace) -> int:
    from .trustroot import add_identity

    extensions: dict[str, str] = {}
    for item in args.extension:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--extension {item!r}: expected NAME=VALUE")
        if name in extensions:
            raise ConfigError(f"--extension {name} given twice")
        extensions[name] = value
    root = add_identity(
        _read(args.file),
        issuer=args.issuer,
        subject=args.subject,
        subject_regexp=args.subject_regexp,
        extensions=extensions,
        predicate_types=tuple(args.predicate_type),
        label=args.label,
    )
    assert root.keyless is not None  # add_identity refuses a root without a sigstore section
    shown = root.keyless.identities[-1].shown_subject
    return _write(
        args, args.file, root, f"added identity {args.issuer} {shown}", change="add-identity"
    )


def _cmd_show(args: argparse.Namespace) -> int:
    from .trustroot import failed_handovers, format_time, to_json

    root = _read(args.file)
    if args.json:
        print_json(to_json(root))
        return 0
    policy = root.policy
    print(f"trust root version {root.version}, expires {format_time(root.expires)}")
    required = ", ".join(k[:16] + "…" for k in policy.required_keyids) or "none"
    print(f"policy: threshold {policy.threshold}, required {required}, hybrid {policy.hybrid}")
    for uri, rule in policy.per_type.items():
        print(f"  for {uri}: threshold {rule.threshold}")
    for key in root.keys:
        window = (
            f"{format_time(key.valid_from) if key.valid_from else '-'} .. "
            f"{format_time(key.valid_until) if key.valid_until else '-'}"
        )
        state = f"REVOKED {format_time(key.revocation.time)}" if key.revocation else "active"
        print(f"key {key.keyid} {key.public_key.algorithm.name} {state} [{window}]")
        if key.label:
            print(f"    label: {key.label}")
        if key.predicate_types:
            print(f"    types: {', '.join(key.predicate_types)}")
    if root.keyless is not None:
        # A list: the trust root's checks refuse anything else.
        tlogs = root.keyless.trusted_root.get("tlogs", [])
        print(f"sigstore: trusted root with {len(tlogs)} tlog(s)")
        for identity in root.keyless.identities:
            label = f" ({identity.label})" if identity.label else ""
            print(f"identity {identity.issuer} {identity.shown_subject}{label}")
            for name, value in identity.extensions.items():
                print(f"    {name}: {value}")
            if identity.predicate_types:
                print(f"    types: {', '.join(identity.predicate_types)}")
    for event in root.rotations:
        print(
            f"rotation {event.from_keyid[:16]}… -> {event.to_keyid[:16]}… "
            f"until {format_time(event.transition_deadline)}"
        )
    for event in failed_handovers(root):
        print(f"warning: handover to {event.to_keyid} does not verify", file=sys.stderr)
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from ._cli_sign import load_signers
    from .trustroot import sign_trust_root

    envelope = sign_trust_root(_read(args.file), load_signers(args))
    emit(envelope.to_json(), args.out)
    if args.json:
        print_json({"out": args.out, "signatures": [s.keyid for s in envelope.signatures]})
    elif args.out:
        print(f"{args.out}: signed by {len(envelope.signatures)} root keys")
    return 0


def _cmd_kit_build(args: argparse.Namespace) -> int:
    from .kit import build_kit

    manifest = build_kit(
        args.trust_root, args.out, args.attestations, args.artifacts, force=args.force
    )
    if args.json:
        print_json(manifest.to_dict())
    else:
        print(
            f"kit written to {manifest.out_dir}: {len(manifest.attestations)} attestations, "
            f"{sum(len(b) for _, b in manifest.bundles)} bundles; "
            f"run {manifest.out_dir}/verify.sh on the offline machine"
        )
    return 0
