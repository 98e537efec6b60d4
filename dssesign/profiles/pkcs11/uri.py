"""RFC 7512 `pkcs11:` references: parsed strictly, PINs only from the environment or a file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, unquote, unquote_to_bytes

from ...errors import (
    ConfigError,
)

#: Environment variable naming the PKCS#11 module when the URI has no `module-path`.
MODULE_ENV = "DSSESIGN_PKCS11_MODULE"
#: Environment variable holding the user PIN when the URI has no `pin-source`.
PIN_ENV = "DSSESIGN_PKCS11_PIN"
#: Where the platform's SoftHSM2 module usually lives (Debian/Ubuntu, Fedora, macOS Homebrew).
SOFTHSM_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
DEFAULT_POOL_SIZE = 4
MAX_POOL_SIZE = 64
_MAX_PIN_FILE = 1024

# DER-encoded EC parameters (named curve OIDs) for the allow-listed curves.
EC_PARAMS_P256 = bytes.fromhex("06082a8648ce3d030107")
EC_PARAMS_P384 = bytes.fromhex("06052b81040022")
EC_PARAMS_ED25519 = bytes.fromhex("06032b6570")
# Some modules give Ed25519 parameters as the PrintableString "edwards25519".
_EC_PARAMS_ED25519_NAME = b"\x13\x0cedwards25519"

_PATH_ATTRIBUTES = {"token", "object", "id", "serial", "manufacturer", "model", "type", "slot-id"}
_QUERY_ATTRIBUTES = {
    "module-path",
    "module-name",
    "pin-source",
    "failover-token",
    "pool-size",
    "allow-extractable",
}
_TRUE = {"1", "true", "yes"}

T = TypeVar("T")


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed `pkcs11:` key reference; holds where the PIN is, never the PIN."""

    token: str | None = None
    object: str | None = None
    id: bytes | None = None
    serial: str | None = None
    object_type: str | None = None
    module_path: str | None = None
    pin_source: str | None = None
    failover_tokens: tuple[str, ...] = ()
    pool_size: int = DEFAULT_POOL_SIZE
    allow_extractable: bool = False

    @property
    def tokens(self) -> tuple[str, ...]:
        """The primary token and its failover tokens, in the order they are tried."""
        first = (self.token,) if self.token is not None else ()
        return first + tuple(t for t in self.failover_tokens if t != self.token)

    def describe(self) -> str:
        """The reference without any PIN source: safe for logs, errors and signing records."""
        parts = []
        if self.token is not None:
            parts.append(f"token={_pct(self.token)}")
        if self.object is not None:
            parts.append(f"object={_pct(self.object)}")
        if self.id is not None:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.id))
        if self.serial is not None:
            parts.append(f"serial={_pct(self.serial)}")
        text = "pkcs11:" + ";".join(parts)
        query = [f"failover-token={_pct(t)}" for t in self.failover_tokens]
        if self.module_path is not None:
            query.append(f"module-path={_pct(self.module_path)}")
        return text + ("?" + "&".join(query) if query else "")


def _pct(value: str) -> str:
    return quote(value, safe="-._~:[]@!$'()*+,=/ ").replace(" ", "%20")


def parse_uri(ref: str) -> Pkcs11Uri:
    """Parse an RFC 7512 reference; refuses `pin-value` and attributes it does not know."""
    if not ref.lower().startswith("pkcs11:"):
        raise ConfigError("not a pkcs11: reference")
    try:
        ref.encode("utf-8")
    except UnicodeEncodeError:  # argv bytes that are not UTF-8 arrive as lone surrogates
        raise ConfigError("pkcs11: reference: not valid UTF-8 text") from None
    body = ref[len("pkcs11:") :]
    path, _, query = body.partition("?")
    path_attrs: dict[str, str | bytes] = {}
    for part in filter(None, path.split(";")):
        name, sep, raw = part.partition("=")
        name = name.strip().lower()
        if not sep:
            raise ConfigError(f"pkcs11 URI: path attribute {name!r} has no value")
        if name in path_attrs:
            raise ConfigError(f"pkcs11 URI: path attribute {name!r} given twice")
        if name not in _PATH_ATTRIBUTES and not name.startswith("x-"):
            raise ConfigError(
                f"pkcs11 URI: unknown path attribute {name!r} "
                f"(known: {', '.join(sorted(_PATH_ATTRIBUTES))})"
            )
        path_attrs[name] = unquote_to_bytes(raw) if name == "id" else unquote(raw)
    query_attrs: dict[str, list[str]] = {}
    for part in filter(None, query.split("&")):
        name, _, raw = part.partition("=")
        name = name.strip().lower()
        if name == "pin-value":
            # The value never reaches the message: it would land in logs and records.
            raise ConfigError(
                "pkcs11 URI: pin-value is refused (a PIN in a reference leaks into argv, shell "
                "history and logs); use pin-source=env:NAME or pin-source=file:PATH"
            )
        if name not in _QUERY_ATTRIBUTES and not name.startswith("x-"):
            raise ConfigError(
                f"pkcs11 URI: unknown query attribute {name!r} "
                f"(known: {', '.join(sorted(_QUERY_ATTRIBUTES))})"
            )
        query_attrs.setdefault(name, []).append(unquote(raw))
    for name, values in query_attrs.items():
        if name != "failover-token" and len(values) > 1:
            raise ConfigError(f"pkcs11 URI: query attribute {name!r} given twice")

    def one(name: str) -> str | None:
        values = query_attrs.get(name)
        return values[0] if values else None

    object_type = _str_attr(path_attrs, "type")
    if object_type not in (None, "private"):
        raise ConfigError(f"pkcs11 URI: type={object_type} cannot sign (use type=private)")
    module_path = one("module-path")
    if module_path is None and one("module-name") is not None:
        raise ConfigError("pkcs11 URI: module-name is not supported; give module-path")
    pool_size = DEFAULT_POOL_SIZE
    if (raw_size := one("pool-size")) is not None:
        if (
            not (raw_size.isascii() and raw_size.isdigit())
            or not 1 <= int(raw_size) <= MAX_POOL_SIZE
        ):
            raise ConfigError(f"pkcs11 URI: pool-size must be 1..{MAX_POOL_SIZE}")
        pool_size = int(raw_size)
    key_id = path_attrs.get("id")
    return Pkcs11Uri(
        token=_str_attr(path_attrs, "token"),
        object=_str_attr(path_attrs, "object"),
        id=key_id if isinstance(key_id, bytes) else None,
        serial=_str_attr(path_attrs, "serial"),
        object_type=object_type,
        module_path=module_path,
        pin_source=one("pin-source"),
        failover_tokens=tuple(query_attrs.get("failover-token", ())),
        pool_size=pool_size,
        allow_extractable=(one("allow-extractable") or "").lower() in _TRUE,
    )


def _str_attr(attrs: dict[str, str | bytes], name: str) -> str | None:
    value = attrs.get(name)
    return value if isinstance(value, str) else None


def resolve_module_path(uri: Pkcs11Uri) -> str:
    """`module-path`, else `$DSSESIGN_PKCS11_MODULE`, else the platform's SoftHSM2 module."""
    path = uri.module_path or os.environ.get(MODULE_ENV)
    if path:
        if not Path(path).is_file():
            raise ConfigError(f"PKCS#11 module not found: {path}")
        return path
    for candidate in SOFTHSM_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    raise ConfigError(
        f"no PKCS#11 module: add module-path= to the reference or set {MODULE_ENV} "
        "(SoftHSM2 was not found either)"
    )


def read_pin(uri: Pkcs11Uri, *, required: bool = True) -> str | None:
    """The user PIN from `pin-source` (env:NAME, file:PATH) or `$DSSESIGN_PKCS11_PIN`."""
    source = uri.pin_source
    if source is None:
        pin = os.environ.get(PIN_ENV)
        if pin is None and required:
            raise ConfigError(
                f"no PIN for {uri.describe()}: add pin-source=env:NAME or pin-source=file:PATH "
                f"to the reference, or set {PIN_ENV}"
            )
        return _utf8_pin(pin, PIN_ENV) if pin is not None else None
    if source.startswith("env:"):
        name = source[len("env:") :]
        pin = os.environ.get(name)
        if pin is None:
            raise ConfigError(f"pin-source env:{name}: the variable is not set")
        return _utf8_pin(pin, f"pin-source env:{name}")
    if source.startswith("file:"):
        path = unquote(source[len("file:") :])
        if path.startswith("//"):
            path = path[2:]
    elif source.startswith("/"):
        path = source
    else:
        raise ConfigError("pin-source must be env:NAME or file:PATH")
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_PIN_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"pin-source file {path}: {exc.strerror or 'unreadable'}") from None
    if len(data) > _MAX_PIN_FILE:
        raise ConfigError(f"pin-source file {path} is too large for a PIN")
    try:
        text = data.decode("utf-8", "strict")
    except UnicodeDecodeError:  # never echo the bytes or where they are: they are the PIN
        raise ConfigError(f"pin-source file {path}: not valid UTF-8") from None
    return text.removesuffix("\n").removesuffix("\r")


def _utf8_pin(pin: str, where: str) -> str:
    """`pin` if it is UTF-8 text; environ bytes that are not arrive as lone surrogates."""
    try:
        pin.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{where}: not valid UTF-8") from None
    return pin
