"""The `Signer` protocol every profile implements, and the registry of key-reference schemes.

Later profiles (pkcs11:, awskms://, hashivault://, keyless) plug in with `register_scheme`
without touching this module.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from .errors import ConfigError
from .keys import Algorithm, PublicKey


@runtime_checkable
class Signer(Protocol):
    """Something that signs PAE bytes with one key it never hands out."""

    @property
    def keyid(self) -> str: ...

    @property
    def algorithm(self) -> Algorithm: ...

    @property
    def public_key(self) -> PublicKey: ...

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

_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")
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
    with _lock:
        return sorted([*(f"{s}:" for s in _schemes), *_words, "file://", "<path>"])


def load_signer(ref: str, options: SignerOptions | None = None) -> Signer:
    """Load the signer a key reference names (cosign's `--key` syntax)."""
    _ensure_builtin_profiles()
    options = options or SignerOptions()
    if not ref:
        raise ConfigError("empty key reference")
    with _lock:
        loader = _words.get(ref)
        match = _SCHEME.match(ref)
        scheme = match.group(1) if match and match.group(1) != "file" else None
        if loader is None and scheme is not None:
            loader = _schemes.get(scheme)
        if loader is None and (scheme is None or Path(ref).exists()):
            # No registered scheme: a plain path (even one with a colon) or file://.
            loader = _path_loader
    if loader is None:
        known = ", ".join(registered_schemes())
        raise ConfigError(f"unknown key reference scheme {scheme!r} (known: {known})")
    signer = loader(ref, options)
    if options.expected_keyid is not None and signer.keyid != options.expected_keyid:
        raise ConfigError(f"key {ref} has keyid {signer.keyid}, expected {options.expected_keyid}")
    return signer


def _ensure_builtin_profiles() -> None:
    # Importing a profile registers it; the import is cheap and idempotent.
    # Each profile imports its client library (python-pkcs11, boto3, hvac, sigstore) only when
    # one of its keys is loaded, so registering it costs nothing where its extra is missing.
    from .profiles import awskms, keyless, pkcs11, software, vault  # noqa: F401, PLC0415
