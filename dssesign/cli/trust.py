"""`dssesign trust-root ...` and `kit build`.

Every trust-root change is one read-modify-write under the file's update lock (`PATH.lock`,
bounded by --timeout), recorded in the audit log before the new file is renamed into place
(no audit, no change), and bumps `version` (`trust_update`). The timestamp-authority commands
live in `trust_tsa`, the role commands in `trust_roles`, the organisation PKI commands (`add-ca`,
`add-crl`, `add-identity --ca`, `revoke --ca / --identity`) in `trust_pki`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .._internal.fileio import OutputSet, read_bounded
from ..errors import ConfigError
from .audit import audit_log, record_trust_not_published, write_trust_record
from .common import Parser, add_json, add_password, command_inputs, password, print_json
from .trust_pki import (
    cmd_add_certificate_identity,
    pki_lines,
    register_pki_commands,
    revoke_pki,
)
from .trust_roles import (
    add_policy_role_options,
    policy_role_arguments,
    register_add_role,
    role_lines,
    role_requirement,
)
from .trust_sign import register_subcommands as register_trust_sign
from .trust_tsa import register_add_tsa, revoke_tsa, tsa_lines
from .trust_update import Change as _Change
from .trust_update import add_update_options as _add_update_options
from .trust_update import option_time as _time
from .trust_update import read_root as _read
from .trust_update import update as _update

if TYPE_CHECKING:
    from ..core.keys import PublicKey
    from ..trust import TrustRoot

_MAX_PEM = 64 * 1024


def register(commands: Any) -> None:
    """Add `trust-root` (init, add-key, add-tsa, add-ca, add-crl, add-role, revoke, set-policy,
    rotate, set-root-keys, set-sigstore-root, add-identity, show, sign) and `kit build`."""
    trust = commands.add_parser("trust-root", help="create and manage a trust-root bundle")
    sub = trust.add_subparsers(dest="trust_command", required=True, parser_class=Parser)

    init = sub.add_parser("init", help="create an empty trust root (version 1)")
    init.add_argument("--out", required=True, metavar="FILE")
    init.add_argument("--threshold", type=int, default=1, metavar="N")
    init.add_argument("--expires-days", type=int, default=365, metavar="DAYS")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    _add_update_options(init)
    init.set_defaults(handler=_cmd_init)

    add = sub.add_parser("add-key", help="trust a signing key")
    add.add_argument("file", metavar="FILE")
    add.add_argument("--public-key", required=True, metavar="PEM")
    add.add_argument("--valid-from", metavar="TIME")
    add.add_argument("--valid-until", metavar="TIME")
    add.add_argument("--predicate-type", action="append", default=[], metavar="URI")
    add.add_argument("--label", metavar="LABEL")
    _add_update_options(add)
    add.set_defaults(handler=_cmd_add_key)

    register_add_tsa(sub)
    register_pki_commands(sub)
    register_add_role(sub)

    revoke = sub.add_parser(
        "revoke",
        help="revoke a key, a timestamp authority, an organisation CA or a certificate identity "
        "from a point in time on",
    )
    revoke.add_argument("file", metavar="FILE")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--keyid", metavar="ID", help="the key to revoke")
    which.add_argument("--tsa", metavar="NAME", help="the timestamp authority to revoke")
    which.add_argument("--ca", metavar="NAME", help="the organisation CA to revoke")
    which.add_argument(
        "--identity", metavar="NAME", help="the certificate identity to revoke, by its name"
    )
    revoke.add_argument("--at", metavar="TIME", help="revocation time (default: now)")
    revoke.add_argument("--reason", default="", metavar="TEXT", help="shown when a key is refused")
    _add_update_options(revoke)
    revoke.set_defaults(handler=_cmd_revoke)

    policy = sub.add_parser(
        "set-policy", help="threshold, required keys and roles, hybrid PQ mode, timestamps"
    )
    policy.add_argument("file", metavar="FILE")
    policy.add_argument("--threshold", type=int, metavar="N")
    policy.add_argument("--require-keyid", action="append", metavar="ID")
    policy.add_argument("--clear-required", action="store_true", help="require no keyids")
    policy.add_argument("--for-type", metavar="URI", help="set the policy for one predicate type")
    policy.add_argument("--hybrid", choices=("off", "or", "and", "pq-only"))
    policy.add_argument(
        "--require-timestamp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="every counted signature (of --for-type, or of any type) needs a verified "
        "RFC 3161 timestamp; --no-require-timestamp drops the rule",
    )
    add_policy_role_options(policy)
    _add_update_options(policy)
    policy.set_defaults(handler=_cmd_set_policy)

    rotate = sub.add_parser("rotate", help="hand a key over to a new one, signed by the old key")
    rotate.add_argument("file", metavar="FILE")
    rotate.add_argument("--from-key", required=True, metavar="REF")
    rotate.add_argument("--to-public-key", required=True, metavar="PEM")
    rotate.add_argument("--transition-days", type=int, default=30, metavar="DAYS")
    rotate.add_argument("--label", metavar="LABEL")
    add_password(rotate)
    _add_update_options(rotate)
    rotate.set_defaults(handler=_cmd_rotate)

    roots = sub.add_parser("set-root-keys", help="the keys that sign the trust root itself")
    roots.add_argument("file", metavar="FILE")
    roots.add_argument("--public-key", action="append", required=True, metavar="PEM")
    roots.add_argument("--threshold", type=int, default=1, metavar="N")
    _add_update_options(roots)
    roots.set_defaults(handler=_cmd_set_root_keys)

    sigstore_root = sub.add_parser(
        "set-sigstore-root",
        help="embed the Sigstore trusted_root.json keyless bundles are verified against",
    )
    sigstore_root.add_argument("file", metavar="FILE")
    sigstore_root.add_argument("--trusted-root", required=True, metavar="TRUSTED_ROOT_JSON")
    _add_update_options(sigstore_root)
    sigstore_root.set_defaults(handler=_cmd_set_sigstore_root)

    identity = sub.add_parser(
        "add-identity",
        help="trust signatures by a certificate subject: keyless (--issuer) or from an "
        "organisation CA (--ca)",
    )
    identity.add_argument("file", metavar="FILE")
    issuer = identity.add_mutually_exclusive_group(required=True)
    issuer.add_argument("--issuer", metavar="URL", help="OIDC issuer, exact (keyless)")
    issuer.add_argument(
        "--ca", metavar="NAME", help="the organisation CA the certificate must chain through"
    )
    subject = identity.add_mutually_exclusive_group(required=True)
    subject.add_argument("--subject", metavar="SAN", help="certificate SAN, exact")
    subject.add_argument(
        "--subject-regexp", metavar="RE", help="regular expression matching the whole SAN"
    )
    subject.add_argument(
        "--subject-dn", metavar="DN", help="certificate subject DN, RFC 4514 (with --ca only)"
    )
    identity.add_argument(
        "--extension",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="certificate extension the signer must carry, e.g. "
        "githubWorkflowRepository=org/repo (keyless) or 1.3.6.1.4.1.55555.1=VALUE (--ca: by "
        "dotted OID); repeatable",
    )
    identity.add_argument("--predicate-type", action="append", default=[], metavar="URI")
    identity.add_argument("--label", metavar="LABEL")
    identity.add_argument(
        "--name", metavar="NAME", help="unique name roles refer to it by (add-role --identity)"
    )
    _add_update_options(identity)
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
    _add_update_options(sign)
    sign.set_defaults(handler=_cmd_sign)
    register_trust_sign(sub)

    kit = commands.add_parser("kit", help="offline verification kits")
    kit_sub = kit.add_subparsers(dest="kit_command", required=True, parser_class=Parser)
    build = kit_sub.add_parser("build", help="write a self-contained offline verification kit")
    build.add_argument("--trust-root", required=True, metavar="FILE")
    build.add_argument("--out", required=True, metavar="DIR")
    build.add_argument("--artifacts", metavar="DIR")
    build.add_argument("--force", action="store_true", help="replace an existing kit")
    build.add_argument(
        "--with-vsa",
        action="store_true",
        help="let the kit's verify.sh --emit-vsa FILE --vsa-key REF --resource-uri URI write a "
        "signed verification summary (SLSA VSA) with a key at the site; the attestations must "
        "then be one dssesign verify run: envelopes without bundles, or one attestation",
    )
    build.add_argument(
        "attestations",
        nargs="*",
        metavar="ATTESTATION",
        help="DSSE envelopes, JSON Lines files of them (.jsonl, .intoto.jsonl) and Sigstore "
        "bundles: a bundle STEM.TAG.sigstore.json is verified with the envelope STEM.json, "
        "STEM.PAYLOAD.TAG.sigstore.json with the lines of STEM.jsonl, any other bundle alone "
        "(docs/offline-kit.md)",
    )
    build.add_argument(
        "--image",
        metavar="REF",
        help="also carry the attestations attached to this image in its registry (both "
        "layouts; those whose Statement names the image digest), as `dssesign download` saves "
        "them",
    )
    from .oci import add_registry_options

    add_registry_options(build)
    add_json(build)
    build.set_defaults(handler=_cmd_kit_build)


def _public_key(path: str) -> PublicKey:
    from ..core.keys import load_public_key

    return load_public_key(read_bounded(path, limit=_MAX_PEM, what="public key"), source=path)


def _cmd_init(args: argparse.Namespace) -> int:
    from ..trust import init_trust_root

    def make(_: TrustRoot | None) -> _Change:
        root = init_trust_root(threshold=args.threshold, expires_days=args.expires_days)
        return _Change(root, "created", "init")

    return _update(args, args.out, make, create=True)


def _cmd_add_key(args: argparse.Namespace) -> int:
    from ..trust import add_key

    key = _public_key(args.public_key)
    valid_from = _time(args.valid_from, "--valid-from")
    valid_until = _time(args.valid_until, "--valid-until")

    def make(current: TrustRoot | None) -> _Change:
        assert current is not None
        root = add_key(
            current,
            key,
            valid_from=valid_from,
            valid_until=valid_until,
            predicate_types=tuple(args.predicate_type),
            label=args.label,
        )
        what = f"added key {key.keyid} ({key.algorithm.name})"
        return _Change(root, what, "add-key", keyids=(key.keyid,))

    return _update(args, args.file, make)


def _cmd_revoke(args: argparse.Namespace) -> int:
    from ..trust import revoke_key

    at = _time(args.at, "--at")
    if args.tsa is not None:
        return revoke_tsa(args, at)
    if args.ca is not None or args.identity is not None:
        return revoke_pki(args, at)

    def make(current: TrustRoot | None) -> _Change:
        assert current is not None
        root = revoke_key(current, args.keyid, at=at, reason=args.reason)
        return _Change(root, f"revoked key {args.keyid}", "revoke", keyids=(args.keyid,))

    return _update(args, args.file, make)


def _cmd_set_policy(args: argparse.Namespace) -> int:
    from ..trust import set_policy

    if args.clear_required and args.require_keyid:
        raise ConfigError("--clear-required and --require-keyid contradict each other")
    required = () if args.clear_required else args.require_keyid
    scope = f" for {args.for_type}" if args.for_type else ""
    roles = policy_role_arguments(args)

    def make(current: TrustRoot | None) -> _Change:
        assert current is not None
        root = set_policy(
            current,
            threshold=args.threshold,
            required_keyids=required,
            for_type=args.for_type,
            hybrid=args.hybrid,
            require_timestamp=args.require_timestamp,
            **roles,
        )
        what = f"policy updated{scope}"
        if args.for_type and args.require_timestamp is False and root.policy.require_timestamp:
            what += " (timestamps stay required: the global policy requires them for every type)"
        return _Change(root, what, "set-policy")

    return _update(args, args.file, make)


def _cmd_rotate(args: argparse.Namespace) -> int:
    from ..sign.signer import SignerOptions, load_signer
    from ..trust import rotate_key

    # Keys are loaded (a KMS or HSM may be slow) before the trust root is locked.
    old = load_signer(args.from_key, SignerOptions(password=password(args)))
    new = _public_key(args.to_public_key)

    def make(current: TrustRoot | None) -> _Change:
        assert current is not None
        root = rotate_key(current, old, new, transition_days=args.transition_days, label=args.label)
        return _Change(
            root,
            f"rotated {old.keyid[:16]}… -> {new.keyid[:16]}…",
            "rotate",
            rotation=(old.keyid, new.keyid),
            signer_reference=args.from_key,
        )

    return _update(args, args.file, make)


def _cmd_set_root_keys(args: argparse.Namespace) -> int:
    from ..trust import set_root_keys

    keys = [_public_key(p) for p in args.public_key]

    def make(current: TrustRoot | None) -> _Change:
        assert current is not None
        root = set_root_keys(current, keys, threshold=args.threshold)
        return _Change(
            root,
            f"{len(keys)} root keys, threshold {args.threshold}",
            "set-root-keys",
            keyids=tuple(k.keyid for k in keys),
        )

    return _update(args, args.file, make)


def _cmd_set_sigstore_root(args: argparse.Namespace) -> int:
    from .._internal.strict_json import loads_strict
    from ..trust import MAX_TRUST_ROOT_BYTES, set_sigstore_root

    data = read_bounded(args.trusted_root, limit=MAX_TRUST_ROOT_BYTES, what="trusted root")
    document = loads_strict(data, what=f"trusted root {args.trusted_root}")
    if not isinstance(document, dict):
        raise ConfigError(f"trusted root {args.trusted_root}: expected a JSON object")

    def make(current: TrustRoot | None) -> _Change:
        assert current is not None
        root = set_sigstore_root(current, document)
        return _Change(root, "Sigstore trusted root set", "set-sigstore-root")

    return _update(args, args.file, make)


def _cmd_add_identity(args: argparse.Namespace) -> int:
    from ..trust import add_identity

    if args.ca is not None:
        return cmd_add_certificate_identity(args)
    if args.subject_dn is not None:
        raise ConfigError("--subject-dn is for certificate identities (--ca NAME), not --issuer")
    extensions: dict[str, str] = {}
    for item in args.extension:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"--extension {item!r}: expected NAME=VALUE")
        if name in extensions:
            raise ConfigError(f"--extension {name} given twice")
        extensions[name] = value

    def make(current: TrustRoot | None) -> _Change:
        assert current is not None
        root = add_identity(
            current,
            issuer=args.issuer,
            subject=args.subject,
            subject_regexp=args.subject_regexp,
            extensions=extensions,
            predicate_types=tuple(args.predicate_type),
            label=args.label,
            name=args.name,
        )
        assert root.keyless is not None  # add_identity refuses a root without a sigstore section
        shown = root.keyless.identities[-1].shown_subject
        named = f" as {args.name}" if args.name else ""
        return _Change(root, f"added identity {args.issuer} {shown}{named}", "add-identity")

    return _update(args, args.file, make)


def _cmd_show(args: argparse.Namespace) -> int:
    from .._internal.text import escape_controls
    from ..trust import failed_handovers, format_time, rotation_chain_problem, to_json

    root = _read(args.file)
    if args.json:
        print_json(to_json(root))
        return 0
    policy = root.policy
    print(f"trust root version {root.version}, expires {format_time(root.expires)}")
    required = ", ".join(k[:16] + "…" for k in policy.required_keyids) or "none"
    stamped = ", timestamp required" if policy.require_timestamp else ""
    print(
        f"policy: threshold {policy.threshold}, required {required}, hybrid {policy.hybrid}"
        f"{stamped}{role_requirement(policy.required_roles, policy.any_role)}"
    )
    for uri, rule in policy.per_type.items():
        stamped = ", timestamp required" if rule.require_timestamp else ""
        roles = role_requirement(rule.required_roles, rule.any_role)
        print(f"  for {escape_controls(uri)}: threshold {rule.threshold}{stamped}{roles}")
    for key in root.keys:
        window = (
            f"{format_time(key.valid_from) if key.valid_from else '-'} .. "
            f"{format_time(key.valid_until) if key.valid_until else '-'}"
        )
        state = f"REVOKED {format_time(key.revocation.time)}" if key.revocation else "active"
        print(f"key {key.keyid} {key.public_key.algorithm.name} {state} [{window}]")
        if key.label:
            print(f"    label: {escape_controls(key.label)}")
        if key.predicate_types:
            print(f"    types: {escape_controls(', '.join(key.predicate_types))}")
    if root.keyless is not None:
        # A list: the trust root's checks refuse anything else.
        tlogs = root.keyless.trusted_root.get("tlogs", [])
        print(f"sigstore: trusted root with {len(tlogs)} tlog(s)")
        for identity in root.keyless.identities:
            label = f" ({escape_controls(identity.label)})" if identity.label else ""
            named = f" [{escape_controls(identity.name)}]" if identity.name else ""
            shown = escape_controls(f"{identity.issuer} {identity.shown_subject}")
            print(f"identity {shown}{label}{named}")
            for name, value in identity.extensions.items():
                print(f"    {escape_controls(name)}: {escape_controls(value)}")
            if identity.predicate_types:
                print(f"    types: {escape_controls(', '.join(identity.predicate_types))}")
    for authority in root.timestamp_authorities:
        for line in tsa_lines(authority):
            print(line)
    for line in pki_lines(root):
        print(line)
    for line in role_lines(root):
        print(line)
    for event in root.rotations:
        print(
            f"rotation {event.from_keyid[:16]}… -> {event.to_keyid[:16]}… "
            f"until {format_time(event.transition_deadline)}"
        )
    if _timestamps_required(root) and not _timestamp_authorities_known(root):
        print(
            "warning: the policy requires timestamps but the trust root lists no timestamp "
            "authority (trust-root add-tsa): every signature will be refused",
            file=sys.stderr,
        )
    for event in failed_handovers(root):
        problem = rotation_chain_problem(root, event.to_keyid)
        print(f"warning: key {event.to_keyid} will not count: {problem}", file=sys.stderr)
    return 0


def _timestamps_required(root: TrustRoot) -> bool:
    policy = root.policy
    return policy.require_timestamp or any(p.require_timestamp for p in policy.per_type.values())


def _timestamp_authorities_known(root: TrustRoot) -> bool:
    """Any TSA a token could chain to: the trust root's, or its Sigstore trusted root's."""
    if root.timestamp_authorities:
        return True
    return root.keyless is not None and bool(root.keyless.trusted_root.get("timestampAuthorities"))


def _cmd_sign(args: argparse.Namespace) -> int:
    """Outputs checked (audit log, --out) before a key is loaded; the record is committed
    before the envelope is published; no record, no envelope."""
    import uuid

    from ..trust import MAX_TRUST_ROOT_BYTES, load_trust_root, sign_trust_root
    from .signing import load_signers

    with audit_log(args) as audit, OutputSet(command_inputs(args)) as outputs:
        outputs.add_input("the trust root", args.file)
        if args.out:
            outputs.add(args.out, what="--out")
        signers = load_signers(args)
        data = read_bounded(args.file, limit=MAX_TRUST_ROOT_BYTES, what="trust root")
        root = load_trust_root(data, allow_incomplete=True)
        envelope = sign_trust_root(root, signers)
        out = envelope.to_json()
        out = out if out.endswith(b"\n") else out + b"\n"
        if args.out:
            outputs.write(args.out, out)
        if audit is None:
            _publish_signed(outputs, args.out, out)
        else:
            operation_id = str(uuid.uuid4())
            write_trust_record(
                audit,
                "sign",
                version=root.version,
                operation_id=operation_id,
                data=data,
                keyids=[signer.keyid for signer in signers],
            )
            try:
                audit.commit()
                _publish_signed(outputs, args.out, out)
            except BaseException as exc:
                record_trust_not_published(
                    audit, "sign", exc, version=root.version, operation_id=operation_id
                )
                raise
    if args.json:
        print_json({"out": args.out, "signatures": [s.keyid for s in envelope.signatures]})
    elif args.out:
        print(f"{args.out}: signed by {len(envelope.signatures)} root keys")
    return 0


def _publish_signed(outputs: OutputSet, path: str | None, out: bytes) -> None:
    if path:
        outputs.publish()
    else:
        sys.stdout.buffer.write(out)
        sys.stdout.flush()


def _cmd_kit_build(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from ..kit import build_kit

    attestations = list(args.attestations)
    with tempfile.TemporaryDirectory(prefix="dssesign-kit-image-") as downloaded:
        if args.image is not None:
            from .oci import download_image

            _, files = download_image(args, None)
            for name, data in files:
                (Path(downloaded) / name).write_bytes(data)
                attestations.append(str(Path(downloaded) / name))
        if not attestations:
            raise ConfigError("give ATTESTATION files or --image REF")
        manifest = build_kit(
            args.trust_root,
            args.out,
            attestations,
            args.artifacts,
            force=args.force,
            with_vsa=args.with_vsa,
        )
    if args.json:
        print_json(manifest.to_dict())
    else:
        print(
            f"kit written to {manifest.out_dir}: {len(manifest.attestations)} attestations, "
            f"{sum(len(b) for _, b in manifest.bundles)} bundles; "
            f"run {manifest.out_dir}/verify.sh on the offline machine"
            + (" (--emit-vsa FILE ... signs a verification summary there)" if args.with_vsa else "")
        )
    return 0
