"""Reading what goes into a kit: the trust root, attestations, bundles and artifacts, strictly."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._internal.strict_json import loads_strict
from ..core.dsse import Envelope
from ..errors import ConfigError, DssesignError, InputError, VerificationError
from ..limits import DEFAULT_LIMITS
from ..sign.bundles import BUNDLE_SUFFIX, PAYLOAD_TAG_CHARS, bundle_stem
from ..trust import (
    MAX_TRUST_ROOT_BYTES,
    TrustRoot,
    format_time,
    load_trust_root,
    verify_signed_trust_root,
)
from ..verify.bundles import is_bundle_document, parse_bundle
from ..verify.jsonl import is_jsonl_name, read_jsonl
from .layout import (
    _O_CLOEXEC,
    KIT_MEDIA_TYPE,
    MANIFEST_FILE,
    MAX_KIT_FILES,
    MAX_MANIFEST_BYTES,
    MAX_NAME_BYTES,
)

# --- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TrustRootInput:
    data: bytes
    signed: bool
    #: Has a `sigstore` section (keyless identities): verifying needs sigstore-python.
    sigstore: bool
    #: The source file's st_mode: the kit's copy is never more open than the source.
    mode: int


def _read_trust_root(path: Path) -> _TrustRootInput:
    """A trust root, plain or DSSE-signed; a signed one must verify against its own root keys."""
    # A signed trust root is base64 inside JSON: allow for the expansion and the signatures.
    data, mode = _read_regular(path, limit=2 * MAX_TRUST_ROOT_BYTES, what="trust root")
    document = loads_strict(data, what=f"trust root {path}")
    signed = isinstance(document, dict) and "payloadType" in document
    try:
        root = _check_signed_trust_root(data) if signed else load_trust_root(data)
    except DssesignError as exc:
        code = getattr(exc, "code", None)
        raise InputError(f"{path}: {code + ': ' if code else ''}{exc}") from None
    if root.expires <= datetime.now(UTC):
        # The verifier refuses an expired trust root, so every check in the kit would fail.
        raise InputError(
            f"trust root {path} expired at {format_time(root.expires)}; "
            "renew it before building a kit"
        )
    return _TrustRootInput(data, signed, root.sigstore is not None, mode)


def _symlink_message(path: Path, what: str) -> str:
    return (
        f"{what} {path}: is a symbolic link, and links are never followed into a kit "
        "(put the file itself there instead)"
    )


def _require_regular(path: Path, info: os.stat_result, what: str) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise InputError(_symlink_message(path, what))
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{what} {path}: is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{what} {path}: not a regular file")


def _open_regular(path: Path, *, what: str, follow: bool) -> tuple[int, os.stat_result]:
    """Open a regular file for reading: its descriptor and its status.

    A directory, FIFO, device or socket is refused before it is opened (nothing blocks, no
    device is touched) and again on the open descriptor. With `follow=False` a symbolic link
    is refused too, and O_NOFOLLOW keeps one swapped in after the check from being followed.
    """
    try:
        info = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: {exc.strerror}") from None
    _require_regular(path, info, what)
    flags = os.O_RDONLY | os.O_NONBLOCK | _O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow and exc.errno in (errno.ELOOP, errno.EMLINK):
            raise InputError(_symlink_message(path, what)) from None
        raise InputError(f"{what} {path}: {exc.strerror}") from None
    try:
        opened = os.fstat(fd)
        _require_regular(path, opened, what)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, opened


def _read_regular(path: Path, *, limit: int, what: str, follow: bool = True) -> tuple[bytes, int]:
    """The bytes (at most `limit`) and st_mode of a regular file."""
    fd, info = _open_regular(path, what=what, follow=follow)
    try:
        with open(fd, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise InputError(f"{what} {path}: larger than the limit of {limit} bytes")
    return data, info.st_mode


def _check_signed_trust_root(data: bytes) -> TrustRoot:
    # The site checks it against root keyids it pinned; here only that it is well formed and
    # signed by a threshold of the root keys it names itself.
    payload = Envelope.from_json(data).payload
    root = load_trust_root(payload)
    if not root.root.keys:
        raise InputError("signed trust root lists no root keys (rootKeys)")
    return verify_signed_trust_root(
        data,
        pinned_root_keyids=[key.keyid for key in root.root.keys],
        pinned_threshold=root.root.threshold,
    )


#: Unicode categories never allowed in a kit's file names: control characters (C0, DEL, C1),
#: format characters (bidi overrides, zero-width) and line/paragraph separators. None of them
#: may reach a terminal or a line-based listing from a file name.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _check_name(name: str, what: str) -> None:
    """A file name that survives sha256sum lines, shell globs and case-folding file systems."""
    if not name or name.startswith((".", "-")):
        raise InputError(f"{what} {name!r}: names starting with '.' or '-' are not supported")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} {name!r}: the name is not valid UTF-8") from None
    if any(ch == "\\" or unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in name):
        raise InputError(
            f"{what} {name!r}: control characters, invisible formatting characters and '\\' "
            "are not supported in names"
        )
    if len(encoded) > MAX_NAME_BYTES:
        raise InputError(f"{what} {name!r}: names are limited to {MAX_NAME_BYTES} bytes")


def _unique(entries: list[tuple[str, Path]], what: str) -> None:
    seen: dict[str, Path] = {}
    for name, path in entries:
        # Case-insensitive and normalizing file systems (macOS: NFD, case folded) would store
        # "café" in NFC and NFD, or "A" and "a", as one file.
        key = unicodedata.normalize("NFC", name).casefold()
        if key in seen:
            raise InputError(
                f"{what} {path} and {seen[key]} would both be stored as {name!r} "
                "(names must differ, ignoring case and Unicode normalization)"
            )
        seen[key] = path


@dataclass(frozen=True)
class _Input:
    """One attestation file as given: a DSSE envelope or a Sigstore bundle."""

    name: str
    path: Path
    #: A Sigstore bundle (by its mediaType), not an envelope.
    bundle: bool
    #: A bundle with a certificate (keyless): verifying it needs sigstore-python.
    keyless: bool
    #: SHA-256 of the bytes checked here: the kit gets exactly those bytes or the build fails.
    sha256: str
    #: JSON Lines (`.jsonl`): `lines` DSSE envelopes or Sigstore bundles, one per line.
    jsonl: bool = False
    lines: int = 1


@dataclass(frozen=True)
class _Attestation:
    """What verify.sh checks in one `dssesign verify` run: an envelope with the bundles of
    its signatures, or a bundle alone (then `bundles` is empty)."""

    name: str
    path: Path
    #: The file is itself a bundle, verified alone.
    lone_bundle: bool
    #: SHA-256 of the bytes checked when the attestation was read.
    sha256: str
    bundles: tuple[_Input, ...]
    #: Verifying this needs sigstore-python (a keyless bundle, alone or with the envelope).
    keyless: bool


def _plan_attestations(paths: Sequence[str | os.PathLike[str]]) -> list[_Attestation]:
    """Read every input, tell envelopes from bundles, and give each bundle its envelope.

    A bundle named `<stem>.<tag>.sigstore.json` (no dot in tag, as `--bundle-dir` writes them)
    goes with the envelope whose name is `<stem>.json` (or `.dsse.json`, ...: `bundle_stem`);
    one named `<stem>.<payload tag>.<tag>.sigstore.json` with the JSON Lines file `<stem>.jsonl`
    (a line's bundle, as `attest --out FILE.jsonl --bundle-dir` names it); any other bundle is
    verified alone. Names that could mean either are refused.
    """
    if isinstance(paths, str | bytes):
        raise ConfigError("attestations must be a sequence of paths, not one string")
    if not paths:
        raise ConfigError("no attestations: give at least one envelope to put in the kit")
    read = [_read_input(Path(raw)) for raw in paths]
    _unique([(item.name, item.path) for item in read], "attestations")
    envelopes = [item for item in read if not item.bundle]
    by_stem: dict[str, list[_Input]] = {}
    for envelope in envelopes:
        by_stem.setdefault(bundle_stem(envelope.name), []).append(envelope)
    grouped: dict[str, list[_Input]] = {envelope.name: [] for envelope in envelopes}
    plan: dict[str, _Attestation | None] = {item.name: None for item in read}
    for item in read:
        if not item.bundle:
            continue
        owner = _bundle_owner(item, by_stem)
        if owner is None:
            plan[item.name] = _Attestation(
                item.name, item.path, True, item.sha256, (), item.keyless
            )
        else:
            grouped[owner.name].append(item)
    limit = DEFAULT_LIMITS.max_signatures
    for envelope in envelopes:
        bundles = tuple(grouped[envelope.name])
        if len(bundles) > limit * envelope.lines:
            raise InputError(
                f"attestation {envelope.path}: {len(bundles)} bundles go with it; "
                f"dssesign verify takes at most {limit} bundles per envelope"
            )
        keyless = envelope.keyless or any(bundle.keyless for bundle in bundles)
        plan[envelope.name] = _Attestation(
            envelope.name, envelope.path, False, envelope.sha256, bundles, keyless
        )
    return [entry for entry in plan.values() if entry is not None]


def _check_vsa_plan(attestations: Sequence[_Attestation]) -> None:
    """`with_vsa`: the kit must be one `dssesign verify` run, since one run writes one summary.

    On the receiving side `verify.sh --emit-vsa` verifies the whole kit once more in a single
    `dssesign verify --emit-vsa` run, which takes either several DSSE envelopes without bundles
    or one attestation (an envelope with its bundles, a JSON Lines file with its lines'
    bundles, a bundle alone). Anything else is refused now, before any wheel is gathered,
    rather than on the air-gapped side. ConfigError, in one line, naming the attestation.
    """
    if len(attestations) <= 1:
        return
    for attestation in attestations:
        if attestation.bundles:
            why = f"comes with {len(attestation.bundles)} bundle(s)"
        elif attestation.lone_bundle:
            why = "is a Sigstore bundle verified alone"
        elif is_jsonl_name(attestation.name):
            why = "is a JSON Lines file"
        else:
            continue
        raise ConfigError(
            f"--with-vsa: attestation {attestation.path} {why}, but one verification summary "
            f"is one dssesign verify run: several DSSE envelopes without bundles, or a single "
            f"attestation with its bundles ({len(attestations)} attestations given); build one "
            "kit per attestation"
        )


def _read_input(path: Path) -> _Input:
    _check_name(path.name, "attestation")
    if is_jsonl_name(path.name):
        return _read_jsonl_input(path)
    # A cheap sanity check (the verifier on the other side does the real work), but enough that
    # only a DSSE envelope or a Sigstore bundle is ever shipped: never some other JSON file, such
    # as a credential, that a glob or a link picked up. A named file may be a symbolic link
    # (to an envelope elsewhere); its content is what is checked and, by digest, what is copied.
    data, _mode = _read_regular(path, limit=DEFAULT_LIMITS.max_json_bytes, what="attestation")
    digest = hashlib.sha256(data).hexdigest()
    document = loads_strict(data, what=f"attestation {path}")
    if not isinstance(document, dict):
        raise InputError(
            f"attestation {path}: expected a JSON object (a DSSE envelope or a Sigstore bundle)"
        )
    if not is_bundle_document(document):
        try:
            Envelope.from_dict(document)
        except DssesignError as exc:
            raise InputError(
                f"attestation {path}: not a DSSE envelope or a Sigstore bundle: {exc}"
            ) from None
        return _Input(path.name, path, bundle=False, keyless=False, sha256=digest)
    try:
        parsed = parse_bundle(data)
    except VerificationError as exc:
        raise InputError(f"bundle {path}: {exc.code}: {exc}") from None
    return _Input(path.name, path, bundle=True, keyless=not parsed.keyed, sha256=digest)


def _read_jsonl_input(path: Path) -> _Input:
    """A JSON Lines file: every line a DSSE envelope or a Sigstore bundle (`read_jsonl`)."""
    limit = DEFAULT_LIMITS.max_jsonl_bytes
    data, _mode = _read_regular(path, limit=limit, what="attestation")
    try:
        lines = read_jsonl(data)
    except InputError as exc:
        raise InputError(f"attestation {path}: {exc}") from None
    keyless = any(line.keyless for line in lines)
    digest = hashlib.sha256(data).hexdigest()
    return _Input(path.name, path, False, keyless, digest, jsonl=True, lines=len(lines))


def _is_payload_tag(text: str) -> bool:
    return len(text) == PAYLOAD_TAG_CHARS and all(c in "0123456789abcdef" for c in text)


def _bundle_owner(bundle: _Input, by_stem: Mapping[str, list[_Input]]) -> _Input | None:
    """The envelope a bundle goes with, by name; None: verified alone."""
    if not bundle.name.endswith(BUNDLE_SUFFIX):
        return None
    base = bundle.name[: -len(BUNDLE_SUFFIX)]
    if base in by_stem:
        raise InputError(
            f"bundle {bundle.path}: its name does not say whether it goes with "
            f"{by_stem[base][0].path} or stands alone; rename it {base}.<tag>{BUNDLE_SUFFIX} "
            "to verify it with that envelope, or to another name to verify it alone"
        )
    stem, dot, tag = base.rpartition(".")
    owners = by_stem.get(stem, []) if dot and tag else []
    if not owners and dot and tag:
        # A JSON Lines file's bundle: <stem>.<payload tag>.<tag>.sigstore.json.
        stem, dot, payload = stem.rpartition(".")
        if dot and _is_payload_tag(payload):
            owners = [owner for owner in by_stem.get(stem, []) if owner.jsonl]
    if len(owners) > 1:
        shown = " and ".join(str(owner.path) for owner in owners)
        raise InputError(
            f"bundle {bundle.path}: {shown} both have the bundle stem {stem!r}; "
            "rename one so each envelope's bundles are unambiguous"
        )
    return owners[0] if owners else None


def _plan_artifacts(directory: Path) -> list[tuple[str, Path]]:
    """The regular files at the top of `directory`. Symbolic links are refused, wherever they
    point: the folder's contents are not chosen file by file, and a link (to a signing key, to
    ~/.ssh) must never pull a file from elsewhere into a kit that is sent away."""
    entries: list[tuple[str, Path]] = []
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                if entry.name.startswith("."):
                    continue  # .DS_Store, .gitkeep: never an artifact
                if len(entries) >= MAX_KIT_FILES:
                    raise InputError(
                        f"artifacts directory {directory}: more than {MAX_KIT_FILES} files "
                        "(the most a kit holds)"
                    )
                _check_name(entry.name, "artifact")
                child = directory / entry.name
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    raise InputError(
                        f"artifacts directory {directory}: {entry.name} is a directory "
                        "(only files at the top level are supported)"
                    )
                _require_regular(child, info, "artifact")
                entries.append((entry.name, child))
    except FileNotFoundError:
        raise InputError(f"artifacts directory {directory}: no such directory") from None
    except NotADirectoryError:
        raise InputError(f"artifacts directory {directory}: not a directory") from None
    except OSError as exc:
        raise InputError(f"artifacts directory {directory}: {exc.strerror}") from None
    if not entries:
        raise InputError(f"artifacts directory {directory}: holds no files")
    entries.sort()
    _unique(entries, "artifacts")
    return entries


def _read_manifest(kit_dir: Path) -> dict[str, Any]:
    """A kit's MANIFEST.json, bounded before anything is parsed: a regular file (not a link) of
    at most MAX_MANIFEST_BYTES, strict JSON (linear, depth-bounded), the kit media type, and at
    most MAX_KIT_FILES entries in `files`. InputError, in one line, for anything else."""
    path = kit_dir / MANIFEST_FILE
    data, _mode = _read_regular(path, limit=MAX_MANIFEST_BYTES, what="kit manifest", follow=False)
    document = loads_strict(data, what=f"kit manifest {path}")
    if not isinstance(document, dict) or document.get("mediaType") != KIT_MEDIA_TYPE:
        raise InputError(f"kit manifest {path}: its mediaType is not {KIT_MEDIA_TYPE}")
    files = document.get("files")
    if not isinstance(files, list):
        raise InputError(f"kit manifest {path}: files: expected a list")
    if len(files) > MAX_KIT_FILES:
        raise InputError(
            f"kit manifest {path}: {len(files)} files; a kit holds at most {MAX_KIT_FILES}"
        )
    return document


def _check_out_dir(out: Path, *, force: bool, inputs: Sequence[Path]) -> None:
    if out == out.parent or Path.cwd().resolve().is_relative_to(out.resolve()):
        raise ConfigError(f"output {out}: give a directory of its own for the kit")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"output {out}: exists and is not a directory")
    if not out.exists():
        return
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        raise InputError(f"output {out}: {exc.strerror}") from None
    if empty:
        return
    if not force:
        raise ConfigError(f"output {out} is not empty (use --force to replace an earlier kit)")
    try:
        _read_manifest(out)
    except InputError as exc:
        raise ConfigError(
            f"output {out} is not empty and is not a dssesign kit ({exc}); not replacing it"
        ) from None
    resolved = out.resolve()
    for path in inputs:
        if path.resolve().is_relative_to(resolved):
            raise ConfigError(f"input {path} lies inside {out}, which --force would replace")
