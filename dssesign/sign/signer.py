"""The `Signer` protocol every profile implements, and the table of key-reference schemes.

As securesystemslib's signer table: a reference's scheme maps to a loader that is imported only
when a key of that scheme is loaded (`BUILTIN_SCHEMES`), so loading a file key never imports the
PKCS#11, KMS, Vault or Sigstore profiles. Third-party backends register through the
``dssesign.signers`` entry-point group (name: the scheme, value: a loader
``(reference, SignerOptions) -> Signer``), or in-process with `register_scheme`. This module
never imports a backend at import time.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol, runtime_checkable
from urllib.parse import parse_qsl, quote, unquote

from ..core.keys import Algorithm, PublicKey
from ..errors import ConfigError


@runtime_checkable
class Signer(Protocol):
    """Something that signs PAE bytes with one key it never hands out."""

    @property
    def keyid(self) -> str:
        """Must equal `public_key.keyid`, or `MultiProfileSigner` refuses the signer."""
        ...

    @property
    def algorithm(self) -> Algorithm:
        """The allow-listed algorithm of `public_key`, which `sign` uses; records name it."""
        ...

    @property
    def public_key(self) -> PublicKey:
        """The public half: a signature that does not verify with it is dropped, never emitted."""
        ...

    @property
    def reference(self) -> str:
        """The key reference it was loaded from, as records and messages show it."""
        ...

    @property
    def in_process(self) -> bool:
        """True when `sign` is local CPU work (no device or network): signed inline, no thread."""
        ...

    @property
    def exportable(self) -> bool:
        """True when the key can leave its device (Vault allow-exportable, PKCS#11
        allow-extractable): warned about, and marked in records and summaries."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign `data` (the DSSE PAE) and return the signature in its ecosystem's encoding."""
        ...


@dataclass(frozen=True)
class SignerOptions:
    """What a loader may need beyond the reference; secrets arrive here, never in the reference."""

    #: Passphrase for encrypted software keys.
    password: bytes | None = field(default=None, repr=False)
    #: If set, the loaded key's keyid must equal it.
    expected_keyid: str | None = None
    #: OIDC identity token for keyless signing (a secret: never logged or shown).
    identity_token: str | None = field(default=None, repr=False)
    #: Sigstore ClientTrustConfig / signing-config file naming a private Sigstore instance.
    trust_config: Path | None = None


SignerLoader = Callable[[str, SignerOptions], Signer]

#: Built-in schemes and words -> "module:loader", imported on first use.
BUILTIN_SCHEMES: Final = {
    "pkcs11": "dssesign.profiles.pkcs11:load_reference",
    "awskms": "dssesign.profiles.awskms:load",
    "hashivault": "dssesign.profiles.vault:load",
}
BUILTIN_WORDS: Final = {"keyless": "dssesign.profiles.keyless:load_reference"}
#: Plain paths and file:// references.
_PATH_LOADER: Final = "dssesign.profiles.software:load_reference"
#: Entry-point group third-party signing backends register in.
ENTRY_POINT_GROUP: Final = "dssesign.signers"

_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.IGNORECASE)
_lock = threading.Lock()
_schemes: dict[str, SignerLoader] = {}
_words: dict[str, SignerLoader] = {}
_path_loader: SignerLoader | None = None


def register_scheme(scheme: str, loader: SignerLoader) -> None:
    """Route references `scheme:...` (for example `pkcs11`, `awskms`) to `loader`."""
    with _lock:
        _schemes[scheme.lower()] = loader


def register_word(word: str, loader: SignerLoader) -> None:
    """Route a bare reference word (for example `keyless`) to `loader`."""
    with _lock:
        _words[word] = loader


def register_path_loader(loader: SignerLoader) -> None:
    """Route plain paths and `file://` references (the software profile)."""
    global _path_loader  # noqa: PLW0603 - a registry is module state by design
    with _lock:
        _path_loader = loader


def registered_schemes() -> list[str]:
    """Every scheme and word a reference may use (built in, registered, or from entry points)."""
    with _lock:
        schemes = {*_schemes, *BUILTIN_SCHEMES, *_entry_points()}
        words = {*_words, *BUILTIN_WORDS}
    return sorted([*(f"{s}:" for s in schemes), *words, "file://", "<path>"])


def _import_loader(target: str) -> SignerLoader:
    module, _, name = target.partition(":")
    loader: SignerLoader = getattr(importlib.import_module(module), name)
    return loader


_entry_point_cache: dict[str, str] | None = None


def _entry_points() -> dict[str, str]:
    """scheme -> "module:attr" from the ``dssesign.signers`` entry points (read once)."""
    global _entry_point_cache  # noqa: PLW0603 - read once per process
    if _entry_point_cache is None:
        from importlib.metadata import entry_points  # noqa: PLC0415 - only for unknown schemes

        _entry_point_cache = {
            ep.name.lower(): ep.value
            for ep in entry_points(group=ENTRY_POINT_GROUP)
            if ep.name.lower() not in BUILTIN_SCHEMES
        }
    return _entry_point_cache


def _scheme_loader(scheme: str) -> SignerLoader | None:
    """The loader for `scheme`: registered, else built in, else from an entry point."""
    with _lock:
        loader = _schemes.get(scheme)
    if loader is not None:
        return loader
    target = BUILTIN_SCHEMES.get(scheme) or _entry_points().get(scheme)
    if target is None:
        return None
    loader = _import_loader(target)
    with _lock:
        return _schemes.setdefault(scheme, loader)


def _word_loader(word: str) -> SignerLoader | None:
    with _lock:
        loader = _words.get(word)
    if loader is None and word in BUILTIN_WORDS:
        loader = _import_loader(BUILTIN_WORDS[word])
        with _lock:
            loader = _words.setdefault(word, loader)
    return loader


def _path() -> SignerLoader:
    global _path_loader  # noqa: PLW0603 - a registry is module state by design
    with _lock:
        loader = _path_loader
    if loader is None:
        loader = _import_loader(_PATH_LOADER)
        with _lock:
            _path_loader = _path_loader or loader
            loader = _path_loader
    return loader


#: pkcs11 path attributes (RFC 7512) that name a token or key; never a secret.
_SAFE_PATH_ATTRIBUTES: Final = frozenset(
    {"token", "object", "id", "serial", "manufacturer", "model", "type", "slot-id",
     "slot-description", "slot-manufacturer", "library-description", "library-manufacturer",
     "library-version"}
)  # fmt: skip
#: Query parameters of any reference that never carry a secret.
_SAFE_QUERY_KEYS: Final = frozenset(
    {"module-path", "module-name", "slot-id", "failover-token", "pool-size", "allow-extractable",
     "region", "endpoint", "timeout", "max-attempts", "retry-mode", "version", "key-version",
     "allow-exportable"}
)  # fmt: skip
#: Schemes whose `//authority/path` names a key or a server, never a secret (user info aside).
_URL_SCHEMES: Final = frozenset({"file", "awskms", "hashivault"})
#: `pin-source=` is kept as the kind of source only (`env`, `file`); never its name or path.
_PIN_SOURCE: Final = "pin-source"


def redacted_reference(ref: str, *, pin_source: bool = True) -> str:
    """A key reference fit for an error, a log or an audit record: an allow-list, not a filter.

    Only the scheme and the attributes known to hold no secret survive: pkcs11 path attributes
    such as `token`, `object`, `id`; query parameters such as `module-path`, `region`,
    `version`; `pin-source` as its kind only (`pin-source=env`, `pin-source=file`; dropped
    with ``pin_source=False``). Anything else (`pin=`, `userpin=`, `pin-value=`, `x-...`,
    user info, fragments, an unknown scheme's body) is dropped, with its value, even from a
    reference that was refused. Plain paths and `file://` references stay as written.
    """
    # argv bytes that are not UTF-8 arrive as lone surrogates: shown escaped, never an error
    # on the path that reports errors.
    ref = ref.encode("utf-8", "backslashreplace").decode("utf-8")
    match = _SCHEME.match(ref)
    if ref in _words_snapshot() or match is None or len(match.group(1)) == 1:
        return ref  # a registered word (`keyless`), a plain path, or a drive letter
    scheme = match.group(1).lower()
    if scheme == "file":
        return ref
    body, _, query = ref[match.end() :].partition("?")
    body = body.split("#", 1)[0]
    kept_query = _redacted_query(query.split("#", 1)[0], pin_source=pin_source)
    if body.startswith("//"):
        authority, slash, path = body[2:].partition("/")
        authority = authority.rsplit("@", 1)[-1]  # never user:password@
        rest = "//" + authority + (slash + path if scheme in _URL_SCHEMES else "")
    elif scheme == "pkcs11":
        rest = ";".join(
            attribute
            for attribute in body.split(";")
            if attribute.partition("=")[0].strip().lower() in _SAFE_PATH_ATTRIBUTES
        )
    else:
        rest = ""  # an opaque body of a scheme we do not know: nothing in it is known safe
    return f"{scheme}:{rest}" + (f"?{kept_query}" if kept_query else "")


def _redacted_query(query: str, *, pin_source: bool) -> str:
    kept: list[tuple[str, str]] = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        name = key.strip().lower()
        if name in _SAFE_QUERY_KEYS:
            kept.append((name, value))
        elif name == _PIN_SOURCE and pin_source:
            source = unquote(value)
            kind = source.split(":", 1)[0].lower() if ":" in source else ""
            if kind not in ("env", "file"):
                kind = "file" if source.startswith("/") else "other"
            kept.append((name, kind))
    return "&".join(f"{quote(k, safe='-')}={quote(v, safe='/-._:')}" for k, v in kept)


def _words_snapshot() -> frozenset[str]:
    with _lock:
        return frozenset({*_words, *BUILTIN_WORDS})


def load_signer(ref: str, options: SignerOptions | None = None) -> Signer:
    """Load the signer a key reference names (cosign's `--key` syntax)."""
    options = options or SignerOptions()
    if not ref:
        raise ConfigError("empty key reference")
    loader = _word_loader(ref)
    match = _SCHEME.match(ref)
    # Schemes are case-insensitive (RFC 3986): `PKCS11:` is no path to echo in an error.
    # One letter is a Windows drive; `file:` is the path loader's.
    scheme = match.group(1).lower() if match else None
    if scheme == "file" or (scheme is not None and len(scheme) == 1):
        scheme = None
    if loader is None and scheme is not None:
        loader = _scheme_loader(scheme)
    if loader is None and (scheme is None or Path(ref).exists()):
        # No scheme known: a plain path (even one with a colon) or file://.
        loader = _path()
    if loader is None:
        known = ", ".join(registered_schemes())
        raise ConfigError(f"unknown key reference scheme {scheme!r} (known: {known})")
    signer = loader(ref, options)
    if options.expected_keyid is not None and signer.keyid != options.expected_keyid:
        raise ConfigError(
            f"key {redacted_reference(ref)} has keyid {signer.keyid}, "
            f"expected {options.expected_keyid}"
        )
    return signer


def _ensure_builtin_profiles() -> None:
    """Import every built-in profile (tests; nothing on the signing path needs it)."""
    for target in (*BUILTIN_SCHEMES.values(), *BUILTIN_WORDS.values(), _PATH_LOADER):
        _import_loader(target)
