"""`dssesign trust-root add-role`, the role options of `set-policy`, and the role lines of `show`.

A role is a named group of keys (by keyid) and keyless identities (by the name given with
`add-identity --name`), with its own threshold; a policy requires roles, all of them or any
one (docs/trust-root.md). The change is the same audited read-modify-write as every other
trust-root change (`trust_update`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .trust_update import Change, add_update_options, update

if TYPE_CHECKING:
    from ..trust import TrustRoot


def register_add_role(sub: Any) -> None:
    """`trust-root add-role FILE --name NAME [--keyid ID ...] [--identity NAME ...]
    --threshold K`."""
    role = sub.add_parser(
        "add-role", help="name a group of keys and identities that a policy can require"
    )
    role.add_argument("file", metavar="FILE")
    role.add_argument("--name", required=True, metavar="NAME", help="unique within the trust root")
    role.add_argument(
        "--keyid", action="append", default=[], metavar="ID", help="a member key; repeatable"
    )
    role.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="NAME",
        help="a member keyless identity, by its name (add-identity --name); repeatable",
    )
    role.add_argument(
        "--threshold",
        type=int,
        required=True,
        metavar="K",
        help="distinct members that must count for the role to be met (1 to the members)",
    )
    add_update_options(role)
    role.set_defaults(handler=cmd_add_role)


def cmd_add_role(args: argparse.Namespace) -> int:
    """Add the role the options describe."""
    from .._internal.text import escape_controls
    from ..trust import add_role

    if not args.keyid and not args.identity:
        raise ConfigError("add-role: give at least one --keyid or --identity")

    def make(current: TrustRoot | None) -> Change:
        assert current is not None
        root = add_role(
            current,
            args.name,
            threshold=args.threshold,
            keyids=tuple(args.keyid),
            identities=tuple(args.identity),
        )
        members = len(args.keyid) + len(args.identity)
        what = (
            f"added role {escape_controls(args.name)} "
            f"(threshold {args.threshold} of {members} member{'s' if members != 1 else ''})"
        )
        return Change(root, what, "add-role", keyids=tuple(args.keyid))

    return update(args, args.file, make)


def add_policy_role_options(policy: argparse.ArgumentParser) -> None:
    """`set-policy`'s --require-role NAME ..., --any-role and --clear-roles."""
    policy.add_argument(
        "--require-role",
        action="append",
        metavar="NAME",
        help="a role that must be met (with --for-type: for that type); repeatable; all of "
        "them must be met unless --any-role",
    )
    policy.add_argument(
        "--any-role", action="store_true", help="any one of the required roles suffices"
    )
    policy.add_argument(
        "--clear-roles",
        action="store_true",
        help="require no roles (with --for-type: that type follows the global roles again)",
    )


def policy_role_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """`set_policy`'s required_roles / any_role from the options (nothing given: unchanged)."""
    if args.clear_roles and (args.require_role or args.any_role):
        raise ConfigError("--clear-roles contradicts --require-role and --any-role")
    if args.clear_roles:
        return {"required_roles": (), "any_role": False}
    if args.require_role:
        return {"required_roles": tuple(args.require_role), "any_role": args.any_role}
    if args.any_role:
        return {"any_role": True}
    return {}


def role_requirement(roles: tuple[str, ...], any_role: bool) -> str:
    """`show`'s words for a role requirement: ', roles: all of a, b' (or '' without one)."""
    from .._internal.text import escape_controls

    if not roles:
        return ""
    which = "any of" if any_role else "all of"
    return f", roles: {which} {', '.join(escape_controls(r) for r in roles)}"


def role_lines(root: TrustRoot) -> list[str]:
    """`show`'s lines for the roles: name, threshold of members; then each member.

    A key listed by keyid is shown with the keys rotated to it (they inherit its roles)."""
    from .._internal.text import escape_controls

    lines = []
    for role in root.roles:
        lines.append(
            f"role {escape_controls(role.name)}: threshold {role.threshold} of {role.size}"
        )
        for keyid in role.keyids:
            key = root.key(keyid)
            label = f" ({escape_controls(key.label)})" if key is not None and key.label else ""
            successors = root.successors(keyid)
            then = (
                f", rotated to {', '.join(k[:16] + '…' for k in successors)}" if successors else ""
            )
            lines.append(f"    key {keyid}{label}{then}")
        for name in role.identities:
            rule = root.keyless.identity(name) if root.keyless is not None else None
            shown = f" ({rule.issuer} {rule.shown_subject})" if rule is not None else ""
            lines.append(f"    identity {escape_controls(name)}{escape_controls(shown)}")
    return lines
