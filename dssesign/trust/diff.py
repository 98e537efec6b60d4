"""What changed from one trust root to the next: what a root-key holder reviews before signing.

Each side is a trust-root document or a DSSE-signed one. A signed one is read WITHOUT checking
its signatures, for display only (`DiffSide.signed` says so, and so does every rendering);
accepting it is `verify_signed_trust_root`'s job. Both documents are checked as trust roots
(strict JSON, the schema, keyids recomputed from the keys), so the keyids shown are those of
the key material.

The comparison is generic over the documents as JSON: every top-level section of either
document is compared, known to this module or not, so a section or member added to the format
later shows up too. Lists of objects are matched by their identifying member (`keyid`, `name`,
or `fromKeyid` + `toKeyid` for rotations; identity rules without names by their issuer or CA,
subject and extensions) and compared entry by entry; other lists as multisets.
`sigstore.trustedRoot` is compared by digest only; the CRLs of `pki.crls` are matched by issuer
and shown as summaries (CRLNumber, lastUpdate, nextUpdate, entries, digest).

Changes that widen trust (a new key, CA or identity, a lifted revocation, a dropped CRL, a
lowered threshold...) are listed in `TrustRootDiff.widening` with the reason, and marked in the
text form (`_diff_rules.widening` says which).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from .._internal.strict_json import loads_strict
from .._internal.text import escape_controls
from ..core.canonical import canonicalize
from ..core.dsse import Envelope
from ..errors import TrustRootError
from ..limits import DEFAULT_LIMITS, Limits
from ._common import MAX_TRUST_ROOT_BYTES, MEDIA_TYPES, _aware, parse_time
from ._diff_rules import certificate_shown, crl_change_reason, crl_info, widening
from .document import _load_document, dump_trust_root
from .model import TrustRoot

__all__ = ["SECTIONS", "DiffSide", "TrustRootDiff", "diff_trust_roots", "read_diff_side"]

#: Top-level sections always reported, in this order; any other section follows, sorted.
SECTIONS: Final = (
    "version",
    "expires",
    "keys",
    "rotations",
    "policy",
    "rootKeys",
    "timestampAuthorities",
    "sigstore",
    "pki",
)
#: Members that identify an entry in a list of objects, tried in this order.
_IDENTITIES: Final = (("keyid",), ("name",), ("fromKeyid", "toKeyid"), ("id",))
#: What identifies an identity rule without a name: its issuer or CA, subject and extensions.
_RULE_MEMBERS: Final = ("issuer", "ca", "subject", "subjectRegExp", "subjectDN", "extensions")
_CRLS: Final = ("pki", "crls")
_WIDENS: Final = "WIDENS TRUST"
#: Values compared (and shown) by SHA-256 of their canonical JSON only.
_OPAQUE: Final = frozenset({"$.sigstore.trustedRoot"})
#: Strings longer than this, and PEM blocks, are shown as their length and digest.
_LONG: Final = 1024
_PLAIN_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_VALUE: Final = re.compile(r"[A-Za-z0-9._:/@+-]{1,128}")
_MISSING: Final = object()


@dataclasses.dataclass(frozen=True)
class DiffSide:
    """One side of a diff: the document, and whether it came DSSE-signed (signatures unchecked)."""

    document: dict[str, Any]
    signed: bool = False
    #: Signatures the envelope carries (0 for a plain document); none of them was verified.
    signatures: int = 0

    @property
    def version(self) -> object:
        """The document's `version`."""
        return self.document.get("version")

    @property
    def expires(self) -> object:
        """The document's `expires`."""
        return self.document.get("expires")


def read_diff_side(
    data: bytes | str | Envelope | TrustRoot,
    *,
    what: str = "trust root",
    limits: Limits = DEFAULT_LIMITS,
) -> DiffSide:
    """A trust root to compare: a document, a DSSE envelope of one (NOT verified), or a model.

    The document must load as a trust root (complete or still being assembled); TrustRootError
    (or EnvelopeError for a broken envelope) otherwise.
    """
    if isinstance(data, TrustRoot):
        return DiffSide(json.loads(dump_trust_root(data)))
    envelope: Envelope | None = data if isinstance(data, Envelope) else None
    bounded = dataclasses.replace(
        limits, max_json_bytes=min(limits.max_json_bytes, MAX_TRUST_ROOT_BYTES)
    )
    if envelope is None:
        assert isinstance(data, bytes | str)
        parsed = loads_strict(data, what=what, limits=limits, error=TrustRootError)
        if isinstance(parsed, dict) and "payloadType" in parsed:
            envelope = Envelope.from_dict(parsed, limits=limits)
        else:
            document = parsed
    if envelope is not None:
        if envelope.payload_type not in MEDIA_TYPES:
            raise TrustRootError(
                f"{what}: a DSSE envelope whose payloadType "
                f"{escape_controls(repr(envelope.payload_type))[:120]} is not a trust root",
                "$.payloadType",
            )
        document = loads_strict(
            envelope.payload, what=f"{what} (signed payload)", limits=bounded, error=TrustRootError
        )
    try:  # a trust root, whose keyids are those of its keys
        _load_document(document, allow_incomplete=True)
    except TrustRootError as exc:
        raise TrustRootError(f"{what}: {exc}", exc.path) from None
    assert isinstance(document, dict)
    if envelope is None:
        return DiffSide(document)
    return DiffSide(document, signed=True, signatures=len(envelope.signatures))


@dataclasses.dataclass(frozen=True)
class TrustRootDiff:
    """The changes from `old` to `new`, section by section, and what they mean for signing."""

    old: DiffSide
    new: DiffSide
    #: Every section of SECTIONS and any other present: added, removed, changed, unchanged
    #: or absent.
    sections: Mapping[str, str]
    #: In section order: {"section", "path", "change": added | removed | changed | reordered,
    #: "old"?, "new"?}; opaque values carry "oldSha256"/"newSha256" instead. A path ending in
    #: "[]" names an element of a list compared as a multiset.
    changes: tuple[dict[str, Any], ...]
    notes: tuple[str, ...]
    #: The changes that widen trust: {"index" (into `changes`), "path", "reason"}.
    widening: tuple[dict[str, Any], ...] = ()

    @property
    def identical(self) -> bool:
        """No section differs."""
        return not self.changes

    def to_json(self) -> dict[str, Any]:
        """The machine-readable form (`trust-root diff --json`)."""
        return {
            "old": _side_json(self.old),
            "new": _side_json(self.new),
            "signaturesVerified": False,
            "identical": self.identical,
            "sections": dict(self.sections),
            "changes": list(self.changes),
            "widensTrust": list(self.widening),
            "notes": list(self.notes),
        }

    def lines(self, old_name: str = "OLD", new_name: str = "NEW") -> list[str]:
        """The human-readable form, every value with control characters escaped."""
        out = [
            _side_line("old", old_name, self.old),
            _side_line("new", new_name, self.new),
        ]
        if self.identical:
            out.append("no changes: the documents are identical")
        reasons = {entry["index"]: entry["reason"] for entry in self.widening}
        for section, state in self.sections.items():
            out.append(f"{escape_controls(section)}: {state}")
            for index, change in enumerate(self.changes):
                if change["section"] != section:
                    continue
                mark = f"  [{_WIDENS}: {reasons[index]}]" if index in reasons else ""
                out.append(f"  {_change_line(change)}{escape_controls(mark)}")
        out.extend(f"note: {escape_controls(note)}" for note in self.notes)
        return out


def diff_trust_roots(
    old: bytes | str | Envelope | TrustRoot | DiffSide,
    new: bytes | str | Envelope | TrustRoot | DiffSide,
    *,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> TrustRootDiff:
    """What changed from `old` to `new` (each as `read_diff_side` takes it); signatures unchecked.

    `now` (default: the current time) is only used for a note when `new` has expired.
    """
    before = old if isinstance(old, DiffSide) else read_diff_side(old, what="old", limits=limits)
    after = new if isinstance(new, DiffSide) else read_diff_side(new, what="new", limits=limits)
    names = list(SECTIONS) + sorted((set(before.document) | set(after.document)) - set(SECTIONS))
    sections: dict[str, str] = {}
    changes = _Changes()
    for name in names:
        left = before.document.get(name, _MISSING)
        right = after.document.get(name, _MISSING)
        if left is _MISSING and right is _MISSING:
            sections[name] = "absent"
            continue
        if left is not _MISSING and right is not _MISSING and _same(left, right):
            sections[name] = "unchanged"
            continue
        sections[name] = (
            "added" if left is _MISSING else "removed" if right is _MISSING else "changed"
        )
        # A whole section added or removed is shown entry by entry against an empty one.
        left = _empty_like(right) if left is _MISSING else left
        right = _empty_like(left) if right is _MISSING else right
        _compare(_At(name, f"${_member(name)}", (name,)), left, right, changes)
    moment = _aware(datetime.now(UTC) if now is None else now, "now")
    notes = _notes(before, after, moment)
    if changes.widening:
        notes += (
            f"{len(changes.widening)} change(s) widen trust (marked {_WIDENS}): a verifier "
            "accepts more under NEW than under OLD; review them before signing",
        )
    return TrustRootDiff(
        before, after, sections, tuple(changes.records), notes, tuple(changes.widening)
    )


# --- the comparison --------------------------------------------------------------------------


def _canonical(value: object) -> bytes:
    return canonicalize(value)


def _same(left: object, right: object) -> bool:
    return _canonical(left) == _canonical(right)


def _digest(value: object) -> str:
    return "sha256:" + hashlib.sha256(_canonical(value)).hexdigest()


def _empty_like(value: object) -> object:
    if isinstance(value, dict):
        return {}
    if isinstance(value, list):
        return []
    return _MISSING


def _member(name: str) -> str:
    return f".{name}" if _PLAIN_NAME.fullmatch(name) else f"[{json.dumps(name)}]"


def _record(section: str, path: str, change: str, old: object, new: object) -> dict[str, Any]:
    entry: dict[str, Any] = {"section": section, "path": path, "change": change}
    if path in _OPAQUE:
        if old is not _MISSING:
            entry["oldSha256"] = _digest(old)
        if new is not _MISSING:
            entry["newSha256"] = _digest(new)
        return entry
    if old is not _MISSING:
        entry["old"] = old
    if new is not _MISSING:
        entry["new"] = new
    return entry


_Shape = tuple[str, ...]
_Key = tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class _At:
    """Where a change is: its section, its path as shown, and its shape (the path with list
    entries as "[]", which `_diff_rules.widening` reads)."""

    section: str
    path: str
    shape: _Shape

    def member(self, name: str) -> _At:
        return _At(self.section, self.path + _member(name), (*self.shape, name))

    def entry(self, key: _Key | None) -> _At:
        """An entry of this list: named by its key, or `[]` (an element of a multiset)."""
        if key is None:
            return _At(self.section, f"{self.path}[]", (*self.shape, "[]"))
        shown = ",".join(
            f"{name}={value if _PLAIN_VALUE.fullmatch(value) else json.dumps(value)}"
            for name, value in key
        )
        return _At(self.section, f"{self.path}[{shown}]", (*self.shape, "[]"))


@dataclasses.dataclass
class _Changes:
    """The change records in order, and which of them widen trust."""

    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    widening: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def add(
        self, at: _At, change: str, old: object, new: object, *, reason: str | None = None
    ) -> None:
        if reason is None:  # "": said not to widen; a reordered list counts as changed
            kind = "changed" if change == "reordered" else change
            reason = widening(at.shape, kind, old, new)
        if reason:
            self.widening.append({"index": len(self.records), "path": at.path, "reason": reason})
        self.records.append(_record(at.section, at.path, change, old, new))


def _entries_of(value: object, shape: _Shape) -> bool:
    """A map or list compared entry by entry when the other side lacks it (perType, the
    entries of a nested list, the CRLs), rather than as one value."""
    if isinstance(value, dict):
        return bool(value) and all(isinstance(item, dict) for item in value.values())
    if isinstance(value, list):
        return bool(value) and (shape == _CRLS or all(isinstance(item, dict) for item in value))
    return False


def _compare(at: _At, old: object, new: object, out: _Changes) -> None:
    if old is _MISSING or new is _MISSING:
        present = new if old is _MISSING else old
        if not _entries_of(present, at.shape):
            out.add(at, "added" if old is _MISSING else "removed", old, new)
            return
        old, new = (_empty_like(new), new) if old is _MISSING else (old, _empty_like(old))
    if _same(old, new):
        return
    start = len(out.records)
    if at.path in _OPAQUE:
        pass
    elif isinstance(old, dict) and isinstance(new, dict):
        for name in sorted(set(old) | set(new)):
            _compare(at.member(name), old.get(name, _MISSING), new.get(name, _MISSING), out)
    elif isinstance(old, list) and isinstance(new, list):
        if at.shape == _CRLS and _compare_crls(at, old, new, out):
            pass
        elif (keys := _entry_keys(at.shape, old, new)) is not None:
            _compare_keyed(at, old, new, out, keys)
        else:
            _compare_multisets(at, old, new, out)
    if len(out.records) == start:  # a scalar, a change of type, or the same entries reordered
        same_items = (
            isinstance(old, list)
            and isinstance(new, list)
            and Counter(map(_canonical, old)) == Counter(map(_canonical, new))
        )
        out.add(at, "reordered" if same_items else "changed", old, new)


def _rule_key(entry: Mapping[str, Any]) -> _Key:
    return tuple(
        (name, entry[name] if isinstance(entry[name], str) else _canonical(entry[name]).decode())
        for name in _RULE_MEMBERS
        if name in entry
    )


def _entry_keys(shape: _Shape, old: Sequence[object], new: Sequence[object]) -> list[_Key] | None:
    """Per entry of `old` then `new`, the members naming it uniquely in both lists of objects;
    None when there are none (then the lists are compared as multisets)."""
    entries = [entry for entry in (*old, *new) if isinstance(entry, dict)]
    if not entries or len(entries) != len(old) + len(new):
        return None
    candidates: list[list[_Key]] = [
        [tuple((name, entry[name]) for name in names) for entry in entries]
        for names in _IDENTITIES
        if all(isinstance(entry.get(name), str) for entry in entries for name in names)
    ]
    if shape[-1:] == ("identities",):  # identity rules, named or not
        candidates.append([_rule_key(entry) for entry in entries])
    for keys in candidates:
        if len(set(keys[: len(old)])) == len(old) and len(set(keys[len(old) :])) == len(new):
            return keys
    return None


def _compare_keyed(
    at: _At, old: Sequence[object], new: Sequence[object], out: _Changes, keys: list[_Key]
) -> None:
    before = dict(zip(keys[: len(old)], old, strict=True))
    after = dict(zip(keys[len(old) :], new, strict=True))
    for key, entry in before.items():
        if key not in after:
            out.add(at.entry(key), "removed", entry, _MISSING)
    for key, entry in after.items():
        if key not in before:
            out.add(at.entry(key), "added", _MISSING, entry)
        else:
            _compare(at.entry(key), before[key], entry, out)


def _compare_multisets(
    at: _At, old: Sequence[object], new: Sequence[object], out: _Changes
) -> None:
    left = Counter(map(_canonical, old))
    right = Counter(map(_canonical, new))
    gone, came = left - right, right - left
    for item in old:
        if gone[_canonical(item)] > 0:
            gone[_canonical(item)] -= 1
            out.add(at.entry(None), "removed", item, _MISSING)
    for item in new:
        if came[_canonical(item)] > 0:
            came[_canonical(item)] -= 1
            out.add(at.entry(None), "added", _MISSING, item)


def _crls_by_issuer(
    crls: Sequence[object],
) -> dict[str, tuple[object, dict[str, Any], frozenset[int]]] | None:
    """PEM, summary and revoked serials of each CRL by issuer DN; None when one is not a
    readable CRL or two share an issuer."""
    found: dict[str, tuple[object, dict[str, Any], frozenset[int]]] = {}
    for pem in crls:
        info = crl_info(pem)
        if info is None or info[0]["issuer"] in found:
            return None
        found[info[0]["issuer"]] = (pem, *info)
    return found


def _compare_crls(at: _At, old: Sequence[object], new: Sequence[object], out: _Changes) -> bool:
    """The carried CRLs by issuer, each shown as its summary; False (nothing recorded) when
    `_crls_by_issuer` cannot match them: they are then compared as a multiset."""
    before, after = _crls_by_issuer(old), _crls_by_issuer(new)
    if before is None or after is None:
        return False
    for issuer, (_, summary, _) in before.items():
        if issuer not in after:
            out.add(at.entry((("issuer", issuer),)), "removed", summary, _MISSING)
    for issuer, (pem, summary, serials) in after.items():
        where = at.entry((("issuer", issuer),))
        if issuer not in before:
            out.add(where, "added", _MISSING, summary)
        elif before[issuer][0] != pem:
            _, old_summary, old_serials = before[issuer]
            reason = crl_change_reason(old_summary, summary, old_serials - serials)
            out.add(where, "changed", old_summary, summary, reason=reason or "")
    return True


# --- notes and rendering ---------------------------------------------------------------------


def _notes(old: DiffSide, new: DiffSide, now: datetime) -> tuple[str, ...]:
    notes: list[str] = []
    for name, side in (("OLD", old), ("NEW", new)):
        if side.signed:
            notes.append(
                f"{name} is DSSE-signed ({side.signatures} signature(s)); the signatures were "
                "NOT verified: this diff is for review only (verify with "
                "verify_signed_trust_root, or `dssesign verify --trust-root`)"
            )
    if isinstance(old.version, int) and isinstance(new.version, int):
        if new.version < old.version:
            notes.append(
                f"NEW's version {new.version} is lower than OLD's {old.version}: a verifier that "
                "accepted OLD refuses NEW (TRUST_ROOT_ROLLBACK)"
            )
        elif new.version == old.version and not _same(old.document, new.document):
            notes.append(
                f"both are version {new.version} with different content: a verifier that "
                "accepted OLD refuses NEW (TRUST_ROOT_VERSION_CONFLICT)"
            )
    old_root, new_root = old.document.get("rootKeys"), new.document.get("rootKeys")
    if isinstance(old_root, dict) and not _same(old_root, new_root):
        notes.append(
            f"the root keys change: to chain from OLD, NEW needs {old_root.get('threshold')} "
            "signature(s) by OLD's root keys as well as its own root threshold"
        )
    if isinstance(new.expires, str):
        try:
            expired = parse_time(new.expires, what="expires") < now
        except TrustRootError:
            expired = False
        if expired:
            notes.append(f"NEW expired at {new.expires}: verifiers refuse it (TRUST_ROOT_EXPIRED)")
    return tuple(notes)


def _side_json(side: DiffSide) -> dict[str, Any]:
    return {
        "version": side.version,
        "expires": side.expires,
        "signed": side.signed,
        "signatures": side.signatures,
    }


def _side_line(label: str, name: str, side: DiffSide) -> str:
    form = (
        f"DSSE-signed, {side.signatures} signature(s) NOT verified (read for review only)"
        if side.signed
        else "plain document"
    )
    return (
        f"{label}: {escape_controls(name)}: version {escape_controls(side.version)}, "
        f"expires {escape_controls(side.expires)}, {form}"
    )


_MARKS: Final = {"added": "+", "removed": "-", "changed": "~", "reordered": "~"}


def _change_line(change: Mapping[str, Any]) -> str:
    mark, path, kind = _MARKS[change["change"]], escape_controls(change["path"]), change["change"]
    if "oldSha256" in change or "newSha256" in change:
        old, new = change.get("oldSha256", "(none)"), change.get("newSha256", "(none)")
        return f"{mark} {path}: {kind} ({old} -> {new})"
    if kind == "added":
        return f"{mark} {path}: added {_show(change['new'])}"
    if kind == "removed":
        return f"{mark} {path}: removed {_show(change['old'])}"
    if kind == "reordered":
        return f"{mark} {path}: same entries, reordered"
    return f"{mark} {path}: {_show(change['old'])} -> {_show(change['new'])}"


def _shortened(value: object) -> object:
    if isinstance(value, str):
        if value.startswith("-----BEGIN CERTIFICATE-----") and (shown := certificate_shown(value)):
            return shown
        if value.startswith("-----BEGIN ") or len(value) > _LONG:
            what = "PEM" if value.startswith("-----BEGIN ") else "text"
            return f"<{what}, {len(value)} characters, {_digest(value)[:23]}…>"
        return value
    if isinstance(value, dict):
        return {name: _shortened(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_shortened(item) for item in value]
    return value


def _show(value: object) -> str:
    text = json.dumps(_shortened(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return escape_controls(text)
