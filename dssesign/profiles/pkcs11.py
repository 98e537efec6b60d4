"""PKCS#11 HSM keys: RFC 7512 `pkcs11:` references, signing on the token through python-pkcs11.

A reference names a token and a private key object, as cosign does::

    pkcs11:token=ci;object=attest?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:PIN

The PIN comes from `pin-source=env:NAME` or `pin-source=file:PATH` (default: the
`DSSESIGN_PKCS11_PIN` environment variable); `pin-value=` is refused. dssesign extensions in the
query: `failover-token=LABEL` (repeatable: other tokens holding the same key), `pool-size=N`
(sessions per token, default 4) and `allow-extractable=true`.

python-pkcs11 is imported lazily, so this module registers the `pkcs11` scheme even where the
`pkcs11` extra is not installed; loading a reference then says what to install.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, unquote_to_bytes

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..errors import (
    ConfigError,
    KeyFormatError,
    MissingDependencyError,
    SigningError,
    TokenNotFound,
    TokenUnavailable,
)
from ..keys import ECDSA_P256, ECDSA_P384, ED25519, RSA_PSS_3072, RSA_PSS_4096, Algorithm
from ..keys import PublicKey as DsPublicKey
from ..signer import SignerOptions, register_scheme

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
        if not raw_size.isdigit() or not 1 <= int(raw_size) <= MAX_POOL_SIZE:
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


# --------------------------------------------------------------------------- modules


def _p11() -> Any:
    try:
        import pkcs11  # noqa: PLC0415 - optional dependency, imported on first use
    except ImportError:
        raise MissingDependencyError("pkcs11: references", "python-pkcs11", "pkcs11") from None
    return pkcs11


class _CInitializeArgs(ctypes.Structure):
    _fields_ = (
        ("create_mutex", ctypes.c_void_p),
        ("destroy_mutex", ctypes.c_void_p),
        ("lock_mutex", ctypes.c_void_p),
        ("unlock_mutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("reserved", ctypes.c_void_p),
    )


_CKF_OS_LOCKING_OK = 0x2


@dataclass
class Module:
    """One loaded PKCS#11 module, shared by every signer in the process."""

    path: str
    lib: Any
    #: False when the module was initialized without OS locking: then every call is serialized.
    concurrent: bool
    #: The same loaded object through ctypes, for the calls python-pkcs11 does not offer.
    native: ctypes.CDLL
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Salted digests of the PINs that logged each token in (never the PINs themselves).
    logins: dict[tuple[int, str], bytes] = field(default_factory=dict)
    salt: bytes = field(default_factory=lambda: os.urandom(16))

    @contextmanager
    def calls(self) -> Iterator[None]:
        """Hold the module-wide lock only where the module cannot take concurrent calls."""
        if self.concurrent:
            yield
        else:
            with self.lock:
                yield


_modules: dict[str, Module] = {}
_modules_lock = threading.Lock()


def load_module(path: str) -> Module:
    """Load (once per process) the module at `path`, initialized for multi-threaded use.

    python-pkcs11 calls `C_Initialize(NULL)`, which tells the module that no two threads call it
    at once (SoftHSM then disables its own locks). Right after loading, before any session
    exists, the module is re-initialized with `CKF_OS_LOCKING_OK`; if that is not possible all
    calls into the module are serialized instead.
    """
    key = os.path.realpath(path)
    with _modules_lock:
        found = _modules.get(key)
        if found is not None:
            return found
        pkcs11 = _p11()
        fresh = path not in pkcs11._loaded  # someone else may hold sessions on it already
        try:
            lib = pkcs11.lib(path)
        except pkcs11.PKCS11Error as exc:
            raise ConfigError(f"cannot load PKCS#11 module {path}: {_ckr(exc)}") from None
        try:
            native = ctypes.CDLL(path)  # the same loaded object python-pkcs11 holds
        except OSError as exc:
            raise ConfigError(f"cannot load PKCS#11 module {path}: {exc}") from None
        concurrent = fresh and _reinitialize_with_locking(native)
        module = Module(path=path, lib=lib, concurrent=concurrent, native=native)
        _modules[key] = module
        return module


def _reinitialize_with_locking(native: ctypes.CDLL) -> bool:
    try:
        if native.C_Finalize(None) != 0:
            return False
        args = _CInitializeArgs(flags=_CKF_OS_LOCKING_OK)
        if native.C_Initialize(ctypes.byref(args)) == 0:
            return True
        native.C_Initialize(None)  # back to what python-pkcs11 set up; calls get serialized
        return False
    except (OSError, AttributeError):
        return False


def _ckr(exc: BaseException) -> str:
    """A PKCS#11 error as one line: python-pkcs11's exceptions often carry no message."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def find_token(module: Module, label: str | None, serial: str | None = None) -> Any:
    pkcs11 = _p11()
    with module.calls():
        tokens = []
        for slot in module.lib.get_slots(token_present=True):
            try:
                tokens.append(slot.get_token())
            except (pkcs11.TokenNotPresent, pkcs11.TokenNotRecognised):
                continue
    matches = [
        t
        for t in tokens
        if (label is None or t.label == label)
        and (serial is None or t.serial == serial)
        and (t.flags & pkcs11.TokenFlag.TOKEN_INITIALIZED)
    ]
    if not matches:
        known = ", ".join(repr(t.label) for t in tokens if t.label) or "none"
        wanted = f"labelled {label!r}" if label is not None else f"with serial {serial!r}"
        raise TokenNotFound(f"no PKCS#11 token {wanted} in {module.path} (tokens: {known})")
    if len(matches) > 1:
        raise ConfigError(
            f"{len(matches)} PKCS#11 tokens match {label!r}; add serial= to the reference"
        )
    return matches[0]


def list_tokens(module: Module) -> list[Any]:
    pkcs11 = _p11()
    tokens = []
    with module.calls():
        for slot in module.lib.get_slots(token_present=True):
            try:
                token = slot.get_token()
            except (pkcs11.TokenNotPresent, pkcs11.TokenNotRecognised):
                continue
            if token.flags & pkcs11.TokenFlag.TOKEN_INITIALIZED:
                tokens.append(token)
    return tokens


def open_session(module: Module, token: Any, pin: str | None, *, rw: bool = False) -> Any:
    """Open a session, logged in with `pin` when given; a wrong PIN is a ConfigError.

    Login state belongs to the token and the whole process, so when another session is already
    logged in the module cannot check `pin` again: it must then equal the PIN that logged in
    (compared by salted digest; the PIN itself is never kept).
    """
    pkcs11 = _p11()
    slot_key = (token.slot.slot_id, token.serial)
    digest = hashlib.sha256(module.salt + pin.encode("utf-8")).digest() if pin else None
    try:
        with module.calls():
            try:
                session = token.open(rw=rw, user_pin=pin)
            except pkcs11.UserAlreadyLoggedIn:
                if digest is not None and module.logins.get(slot_key) != digest:
                    raise ConfigError(
                        f"PKCS#11 token {token.label!r}: PIN rejected (another PIN is logged in)"
                    ) from None
                return token.open(rw=rw)
    except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange):
        raise ConfigError(f"PKCS#11 token {token.label!r}: PIN rejected") from None
    except pkcs11.PinLocked:
        raise ConfigError(f"PKCS#11 token {token.label!r}: PIN locked") from None
    if digest is not None:
        module.logins[slot_key] = digest
    return session


# --------------------------------------------------------------------------- keys


def key_algorithm(private_key: Any) -> Algorithm:
    """The allow-listed algorithm of a token key (from its type, curve or modulus size)."""
    pkcs11 = _p11()
    key_type = private_key.key_type
    if key_type == pkcs11.KeyType.EC:
        params = bytes(private_key[pkcs11.Attribute.EC_PARAMS])
        if params == EC_PARAMS_P256:
            return ECDSA_P256
        if params == EC_PARAMS_P384:
            return ECDSA_P384
        raise KeyFormatError(f"unsupported EC curve (parameters {params.hex()}); use P-256/P-384")
    if key_type == pkcs11.KeyType.EC_EDWARDS:
        params = bytes(private_key[pkcs11.Attribute.EC_PARAMS])
        if params in (EC_PARAMS_ED25519, _EC_PARAMS_ED25519_NAME):
            return ED25519
        raise KeyFormatError("unsupported Edwards curve (only Ed25519 is allowed)")
    if key_type == pkcs11.KeyType.RSA:
        bits = int.from_bytes(bytes(private_key[pkcs11.Attribute.MODULUS]), "big").bit_length()
        if bits == 3072:
            return RSA_PSS_3072
        if bits == 4096:
            return RSA_PSS_4096
        raise KeyFormatError(f"unsupported RSA key size {bits} (use 3072 or 4096)")
    raise KeyFormatError(f"unsupported PKCS#11 key type {key_type!r}")


def _der_octet_string(data: bytes) -> bytes:
    """Unwrap a DER OCTET STRING (how CKA_EC_POINT is encoded); raw points pass unchanged."""
    if len(data) < 2 or data[0] != 0x04:
        return data
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if offset + length == len(data):
        return data[offset:]
    return data


def public_key_of(session: Any, private_key: Any, algorithm: Algorithm) -> DsPublicKey:
    """The key pair's public key as an SPKI, read from the token's public key object."""
    pkcs11 = _p11()
    attrs: dict[Any, Any] = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PUBLIC_KEY}
    label = _attr_or_none(private_key, pkcs11.Attribute.LABEL)
    key_id = _attr_or_none(private_key, pkcs11.Attribute.ID)
    if key_id:
        attrs[pkcs11.Attribute.ID] = bytes(key_id)
    if label:
        attrs[pkcs11.Attribute.LABEL] = label
    publics = list(session.get_objects(attrs))
    if len(publics) != 1:
        info = _attr_or_none(private_key, pkcs11.Attribute.PUBLIC_KEY_INFO)
        if info:
            return DsPublicKey.from_der(bytes(info), source="CKA_PUBLIC_KEY_INFO")
        raise KeyFormatError(
            f"PKCS#11 key {label!r}: {len(publics)} matching public key objects (need exactly 1)"
        )
    public = publics[0]
    key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
    try:
        if algorithm in (ECDSA_P256, ECDSA_P384):
            curve: ec.EllipticCurve = ec.SECP256R1() if algorithm is ECDSA_P256 else ec.SECP384R1()
            point = _der_octet_string(bytes(public[pkcs11.Attribute.EC_POINT]))
            key = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        elif algorithm is ED25519:
            point = _der_octet_string(bytes(public[pkcs11.Attribute.EC_POINT]))
            key = ed25519.Ed25519PublicKey.from_public_bytes(point)
        else:
            modulus = int.from_bytes(bytes(public[pkcs11.Attribute.MODULUS]), "big")
            exponent = int.from_bytes(bytes(public[pkcs11.Attribute.PUBLIC_EXPONENT]), "big")
            key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError as exc:
        raise KeyFormatError(f"PKCS#11 key {label!r}: bad public key ({exc})") from None
    return DsPublicKey(key)


def _attr_or_none(obj: Any, attribute: Any) -> Any:
    pkcs11 = _p11()
    try:
        return obj[attribute]
    except (pkcs11.AttributeTypeInvalid, pkcs11.AttributeSensitive, pkcs11.FunctionFailed):
        return None


def find_private_key(session: Any, uri: Pkcs11Uri, token_label: str) -> Any:
    pkcs11 = _p11()
    attrs: dict[Any, Any] = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY}
    if uri.object is not None:
        attrs[pkcs11.Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[pkcs11.Attribute.ID] = uri.id
    if len(attrs) == 1:
        raise ConfigError("pkcs11 URI: name the key with object= or id=")
    found = list(session.get_objects(attrs))
    what = uri.describe().split("?", 1)[0]
    if not found:
        raise ConfigError(f"no private key {what} on PKCS#11 token {token_label!r}")
    if len(found) > 1:
        raise ConfigError(f"{len(found)} private keys match {what}; add id= to the reference")
    return found[0]


def check_protection(private_key: Any, *, allow_extractable: bool, where: str) -> bool:
    """Refuse a key that could leave the token, unless the user explicitly allowed it.

    Returns whether it can leave (extractable or not sensitive): True only when allowed.
    """
    pkcs11 = _p11()
    sensitive = bool(_attr_or_none(private_key, pkcs11.Attribute.SENSITIVE))
    extractable = bool(_attr_or_none(private_key, pkcs11.Attribute.EXTRACTABLE))
    if (extractable or not sensitive) and not allow_extractable:
        problem = "extractable" if extractable else "not sensitive"
        raise ConfigError(
            f"{where}: the private key is {problem}, so it can leave the HSM; refusing to sign "
            "with it (add allow-extractable=true to the reference to accept this)"
        )
    return extractable or not sensitive


# --------------------------------------------------------------------------- session pool


_RECONNECT_ERRORS = (
    "SessionHandleInvalid",
    "SessionClosed",
    "DeviceRemoved",
    "TokenNotPresent",
    # Closing the session that logged in logs every session out: re-open and log in again.
    "UserNotLoggedIn",
)


def _is_reconnect_error(exc: BaseException) -> bool:
    return type(exc).__name__ in _RECONNECT_ERRORS


@dataclass
class _Pooled:
    session: Any
    key: Any
    generation: int


class SessionPool:
    """Up to `size` sessions on one token, each bound to the key; safe to share across threads.

    Every session but one is opened without a PIN: PKCS#11 login state belongs to the token and
    the application, so the first (login) session logs all of them in.
    """

    def __init__(
        self, module: Module, uri: Pkcs11Uri, token_label: str, pin: str | None, size: int
    ) -> None:
        self.module = module
        self.uri = uri
        self.token_label = token_label
        self._pin = pin
        self.size = size
        self._cond = threading.Condition()  # guards opening, counting and resetting sessions
        self._idle: deque[_Pooled] = deque()  # FIFO: every session takes its turn
        #: Released when a session comes back while threads wait (held: nothing to announce).
        self._signal = threading.Lock()
        self._signal.acquire()
        self._open = 0
        self._generation = 0
        self._token: Any = None
        self._login: Any = None
        self._waiting = 0
        self._pkcs11 = _p11()
        #: The module takes one call at a time: every operation holds its lock.
        self._serialized = not module.concurrent
        #: How many times the pool was re-opened after a lost session.
        self.reopened = 0

    def __repr__(self) -> str:  # never shows the PIN
        return f"SessionPool(token={self.token_label!r}, size={self.size})"

    def connect(self) -> tuple[Any, Any]:
        """Find the token and log in; returns (session, private key) for the first use."""
        with self._cond:
            self._ensure_login()
            generation = self._generation
        pooled = self._new(generation)
        return pooled.session, pooled.key

    def _ensure_login(self) -> None:
        if self._login is None:
            if self._token is None:
                self._token = find_token(self.module, self.token_label, self.uri.serial)
            self._login = open_session(self.module, self._token, self._pin)

    def _new(self, generation: int) -> _Pooled:
        session = open_session(self.module, self._token, None)
        try:
            with self.module.calls():
                key = find_private_key(session, self.uri, self.token_label)
        except BaseException:
            _close_quietly(self.module, session)
            raise
        return _Pooled(session, key, generation)

    def acquire(self) -> _Pooled:
        """A session (and its key object) for one operation; waits while all are busy."""
        idle = self._idle
        try:
            return idle.popleft()  # the fast path: deque.popleft is atomic
        except IndexError:
            pass
        with self._cond:
            self._waiting += 1
        try:
            while True:
                try:
                    pooled = idle.popleft()
                except IndexError:
                    if self._open < self.size:
                        with self._cond:
                            if self._open < self.size:
                                pooled = self._open_one()
                                break
                        continue
                    # Waits in C with the GIL released, so a wake-up that finds the session
                    # already taken again (releasers may take their session straight back)
                    # costs the signing threads next to nothing. Bounded: wake-ups coalesce.
                    self._signal.acquire(timeout=0.05)
                    continue
                break
        finally:
            with self._cond:
                self._waiting -= 1
        if self._waiting and (idle or self._open < self.size):
            self._wake()  # more to hand out: pass the wake-up on
        return pooled

    def _open_one(self) -> _Pooled:
        """Open one more session (the caller holds the lock: never concurrent with a reset)."""
        self._open += 1
        try:
            self._ensure_login()
            return self._new(self._generation)
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    def _wake(self) -> None:
        """Wake one waiting thread; at most one wake-up is pending at a time."""
        try:  # noqa: SIM105 - contextlib.suppress costs a context manager on a hot path
            self._signal.release()
        except RuntimeError:
            pass  # one is pending already

    def release(self, pooled: _Pooled, *, lost: bool = False) -> None:
        """Give a session back; `lost` when the token said its handle is gone."""
        if not lost and pooled.generation == self._generation:
            self._idle.append(pooled)
        else:
            with self._cond:
                self._open -= 1
                if not lost:
                    # It just worked, so the handle is still this session's: safe to close.
                    _close_quietly(self.module, pooled.session)
        if self._waiting:
            self._wake()

    def reset(self, failed_generation: int) -> None:
        """Forget every session of the failed generation; the next acquire opens fresh ones.

        The forgotten handles are not closed: once a module reports a session lost, its handle
        number may already belong to a new session, which a blind C_CloseSession would kill.
        """
        with self._cond:
            if failed_generation != self._generation:
                return  # another thread already re-opened
            self._generation += 1
            self.reopened += 1
            while self._idle:
                self._idle.popleft()
                self._open -= 1
            self._login, self._token = None, None
        self._wake()

    def run(self, operation: Callable[[Any, bytes], T], data: bytes) -> T:
        """`operation(key, data)` on a pooled session; re-open and retry once if it was lost.

        The hot path of every signature: an idle session, the operation, the session back. It
        takes no lock (deque.popleft/append are atomic) and calls nothing it does not need, so
        the time this thread holds the GIL stays close to python-pkcs11's own.
        """
        if self._serialized:
            return self._run(operation, data)
        idle = self._idle
        try:
            pooled = idle.popleft()
        except IndexError:
            return self._run(operation, data)  # all busy or none open yet: wait or open one
        try:
            result = operation(pooled.key, data)
        except self._pkcs11.PKCS11Error as exc:
            return self._run(operation, data, self._failed(pooled, exc))
        except BaseException:
            self.release(pooled)
            raise
        if pooled.generation == self._generation:
            idle.append(pooled)
            if self._waiting:
                self._wake()
        else:
            self.release(pooled)
        return result

    def _failed(self, pooled: _Pooled, exc: BaseException) -> str:
        """Give back a session whose operation failed; a lost session resets the pool.

        Returns the reason to retry with; any other token error is a SigningError.
        """
        lost = _is_reconnect_error(exc)
        self.release(pooled, lost=lost)
        if not lost:
            raise SigningError(
                f"PKCS#11 token {self.token_label!r}: signing failed ({_ckr(exc)})"
            ) from None
        self.reset(pooled.generation)
        return _ckr(exc)

    def _run(self, operation: Callable[[Any, bytes], T], data: bytes, retry: str = "") -> T:
        """The general path: waits for a session, opens one, serializes calls when the module
        needs it; after a lost session (`retry` says why) only one more attempt is left."""
        pkcs11 = self._pkcs11
        last = retry
        for _attempt in range(1 if retry else 2):
            generation = self._generation
            try:
                pooled = self.acquire()
            except ConfigError as exc:
                # The token vanished, or the key is not visible (logged out under us).
                if not isinstance(exc, TokenNotFound) and "PIN" in str(exc):
                    raise TokenUnavailable(f"PKCS#11 token {self.token_label!r}: {exc}") from None
                last = str(exc)
                self.reset(generation)
                continue
            except pkcs11.PKCS11Error as exc:
                if not _is_reconnect_error(exc):
                    raise SigningError(
                        f"PKCS#11 token {self.token_label!r}: cannot open a session ({_ckr(exc)})"
                    ) from None
                last = _ckr(exc)
                self.reset(generation)
                continue
            try:
                if self._serialized:
                    with self.module.lock:
                        result = operation(pooled.key, data)
                else:
                    result = operation(pooled.key, data)
            except pkcs11.PKCS11Error as exc:
                last = self._failed(pooled, exc)
                continue
            except BaseException:
                self.release(pooled)
                raise
            self.release(pooled)
            return result
        raise TokenUnavailable(
            f"PKCS#11 token {self.token_label!r}: session lost and re-opening it did not help "
            f"({last})"
        )

    def close(self) -> None:
        """Close the idle sessions and log out (sessions still busy close on release)."""
        with self._cond:
            self._generation += 1
            while self._idle:
                _close_quietly(self.module, self._idle.popleft().session)
                self._open -= 1
            if self._login is not None:
                _close_quietly(self.module, self._login, logout=True)
            self._login, self._token = None, None


def close_session(module: Module, session: Any) -> None:
    """Close a session without logging the token out (other sessions keep working)."""
    _close_quietly(module, session)


def _close_quietly(module: Module, session: Any, *, logout: bool = False) -> None:
    pkcs11 = _p11()
    try:
        with module.calls():
            if logout:
                session.close()
            else:
                # python-pkcs11's close() logs out first, which would log out every session.
                module.native.C_CloseSession(ctypes.c_ulong(session.handle))
    except (pkcs11.PKCS11Error, AttributeError, TypeError, OSError):
        pass


# --------------------------------------------------------------------------- signer


class Pkcs11Signer:
    """Signs on a PKCS#11 token; the private key never leaves it.

    Not `in_process`: MultiProfileSigner runs it on its own thread with a timeout.
    """

    in_process = False
    #: Seconds a token that failed is tried only after the others.
    retry_after = 5.0
    #: The private key can leave the token (used only with `allow-extractable=true`).
    exportable = False

    def __init__(
        self,
        uri: Pkcs11Uri,
        *,
        pin: str | None,
        module: Module,
        expected_keyid: str | None = None,
    ) -> None:
        if not uri.tokens:
            raise ConfigError("pkcs11 URI: name the token with token=")
        self.uri = uri
        #: The reference without any PIN source, for records and messages.
        self.reference = uri.describe()
        self._module = module
        self._pools = [SessionPool(module, uri, t, pin, uri.pool_size) for t in uri.tokens]
        self._verified: list[bool] = [False] * len(self._pools)
        self._down_until: list[float] = [0.0] * len(self._pools)
        self._lock = threading.Lock()
        self._public_key: DsPublicKey | None = None
        self._algorithm: Algorithm | None = None
        self._expected_keyid = expected_keyid
        errors: list[str] = []
        for index in range(len(self._pools)):
            try:
                self._check_pool(index)
            except TokenNotFound as exc:
                # Only an unreachable token is failed over; a wrong PIN or key never is.
                errors.append(str(exc))
                self._down_until[index] = time.monotonic() + self.retry_after
        if self._public_key is None:
            raise ConfigError("; ".join(errors) if errors else "no PKCS#11 token available")
        self._sign_raw: Callable[[SessionPool, bytes], bytes] = self._mechanism()

    def _check_pool(self, index: int) -> None:
        """Read the key's public half from one token and hold it to the signer's keyid."""
        pool = self._pools[index]
        pkcs11 = _p11()
        try:
            session, key = pool.connect()
        except pkcs11.PKCS11Error as exc:
            raise TokenNotFound(
                f"cannot reach PKCS#11 token {pool.token_label!r}: {_ckr(exc)}"
            ) from None
        try:
            where = f"{self.reference} on token {pool.token_label!r}"
            with self._module.calls():
                if check_protection(key, allow_extractable=self.uri.allow_extractable, where=where):
                    self.exportable = True  # allowed, but the key can leave the HSM
                algorithm = key_algorithm(key)
                public = public_key_of(session, key, algorithm)
        finally:
            _close_quietly(self._module, session)
        with self._lock:
            wanted = self._expected_keyid or (
                self._public_key.keyid if self._public_key is not None else None
            )
            if wanted is not None and public.keyid != wanted:
                raise ConfigError(
                    f"PKCS#11 token {pool.token_label!r} holds key {public.keyid} for "
                    f"{self.reference}, expected {wanted}: refusing to fail over to another key"
                )
            if self._public_key is None:
                self._public_key, self._algorithm = public, algorithm
            self._verified[index] = True

    @property
    def keyid(self) -> str:
        return self.public_key.keyid

    @property
    def algorithm(self) -> Algorithm:
        assert self._algorithm is not None
        return self._algorithm

    @property
    def public_key(self) -> DsPublicKey:
        assert self._public_key is not None
        return self._public_key

    @property
    def pools(self) -> list[SessionPool]:
        return list(self._pools)

    def sign(self, data: bytes) -> bytes:
        """Sign on the first reachable token holding this key; never on another key."""
        if self._verified[0] and not self._down_until[0]:
            try:
                return self._sign_raw(self._pools[0], data)  # the common case: primary is up
            except TokenUnavailable as exc:
                self._mark_down(0)
                return self._sign_failover(data, [str(exc)], skip=0)
        return self._sign_failover(data, [], skip=None)

    def _mark_down(self, index: int) -> None:
        self._verified[index] = False
        self._down_until[index] = time.monotonic() + self.retry_after

    def _sign_failover(self, data: bytes, failures: list[str], skip: int | None) -> bytes:
        now = time.monotonic()
        # Tokens that failed lately are tried last, so a dead primary does not slow every call.
        order = sorted(range(len(self._pools)), key=lambda i: self._down_until[i] > now)
        for index in order:
            if index == skip:
                continue
            pool = self._pools[index]
            if not self._verified[index]:
                # A token not checked yet (or that dropped out) must show the same key first.
                try:
                    self._check_pool(index)
                except ConfigError as exc:
                    failures.append(str(exc))
                    continue
            try:
                signature = self._sign_raw(pool, data)
            except TokenUnavailable as exc:
                failures.append(str(exc))
                self._mark_down(index)
                continue
            self._down_until[index] = 0.0
            return signature
        raise SigningError("; ".join(failures) or "no PKCS#11 token available")

    def _mechanism(self) -> Callable[[SessionPool, bytes], bytes]:
        pkcs11 = _p11()
        algorithm = self.algorithm
        if algorithm in (ECDSA_P256, ECDSA_P384):
            hash_new = hashlib.sha256 if algorithm is ECDSA_P256 else hashlib.sha384
            half = 32 if algorithm is ECDSA_P256 else 48
            mechanism = pkcs11.Mechanism.ECDSA
            size = 2 * half
            from_bytes = int.from_bytes  # big-endian is the default (3.11+)

            def raw_ecdsa(key: Any, digest: bytes) -> bytes:
                signature: bytes = key.sign(digest, mechanism=mechanism)
                return signature

            def sign_ecdsa(pool: SessionPool, data: bytes) -> bytes:
                raw = pool.run(raw_ecdsa, hash_new(data).digest())
                if len(raw) != size:
                    raise SigningError(f"PKCS#11 ECDSA returned {len(raw)} bytes, not r||s")
                return encode_dss_signature(from_bytes(raw[:half]), from_bytes(raw[half:]))

            return sign_ecdsa
        if algorithm is ED25519:
            eddsa = pkcs11.Mechanism.EDDSA

            def raw_eddsa(key: Any, data: bytes) -> bytes:
                signature: bytes = key.sign(data, mechanism=eddsa)
                return signature

            return lambda pool, data: pool.run(raw_eddsa, data)
        pss = pkcs11.Mechanism.SHA256_RSA_PKCS_PSS
        pss_param = (pkcs11.Mechanism.SHA256, pkcs11.MGF.SHA256, 32)

        def raw_pss(key: Any, data: bytes) -> bytes:
            signature: bytes = key.sign(data, mechanism=pss, mechanism_param=pss_param)
            return signature

        return lambda pool, data: pool.run(raw_pss, data)

    def close(self) -> None:
        for pool in self._pools:
            pool.close()

    def __repr__(self) -> str:
        return f"Pkcs11Signer({self.reference}, keyid={self.keyid[:16]}…)"


def load(ref: str | Pkcs11Uri, options: SignerOptions | None = None) -> Pkcs11Signer:
    """Load the signer a `pkcs11:` reference names (the PIN comes from its pin-source)."""
    options = options or SignerOptions()
    uri = parse_uri(ref) if isinstance(ref, str) else ref
    if not uri.tokens:
        raise ConfigError("pkcs11 URI: name the token with token=")
    if uri.object is None and uri.id is None:
        raise ConfigError("pkcs11 URI: name the key with object= or id=")
    module = load_module(resolve_module_path(uri))
    pin = read_pin(uri)
    return Pkcs11Signer(uri, pin=pin, module=module, expected_keyid=options.expected_keyid)


# --------------------------------------------------------------------------- key management


@dataclass(frozen=True)
class TokenKey:
    """One key pair on a token, as `dssesign hsm list` shows it."""

    token: str
    label: str
    id: bytes
    algorithm: str
    keyid: str
    extractable: bool
    sensitive: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "token": self.token,
            "label": self.label,
            "id": self.id.hex(),
            "algorithm": self.algorithm,
            "keyid": self.keyid,
            "extractable": self.extractable,
            "sensitive": self.sensitive,
        }


def generate_keypair(ref: str | Pkcs11Uri, algorithm: Algorithm) -> tuple[DsPublicKey, bytes]:
    """Create a token key pair: CKA_TOKEN, CKA_SENSITIVE true, CKA_EXTRACTABLE false.

    Returns the public key and the CKA_ID used (the URI's `id=`, else 16 random bytes).
    """
    pkcs11 = _p11()
    uri = parse_uri(ref) if isinstance(ref, str) else ref
    if uri.token is None or uri.object is None:
        raise ConfigError("hsm keygen: the reference needs token= and object=")
    module = load_module(resolve_module_path(uri))
    pin = read_pin(uri)
    token = find_token(module, uri.token, uri.serial)
    key_id = uri.id if uri.id is not None else os.urandom(16)
    session = open_session(module, token, pin, rw=True)
    try:
        with module.calls():
            clash = {pkcs11.Attribute.LABEL: uri.object}
            if list(session.get_objects(clash)) or list(
                session.get_objects({pkcs11.Attribute.ID: key_id})
            ):
                raise ConfigError(
                    f"token {uri.token!r} already holds an object labelled {uri.object!r} "
                    "or with that id; refusing to create a second key under it"
                )
            common = {pkcs11.Attribute.TOKEN: True, pkcs11.Attribute.LABEL: uri.object}
            private_template = {
                **common,
                pkcs11.Attribute.PRIVATE: True,
                pkcs11.Attribute.SENSITIVE: True,
                pkcs11.Attribute.EXTRACTABLE: False,
                pkcs11.Attribute.SIGN: True,
                pkcs11.Attribute.DECRYPT: False,
                pkcs11.Attribute.UNWRAP: False,
            }
            public_template: dict[Any, Any] = {**common, pkcs11.Attribute.VERIFY: True}
            if algorithm in (ECDSA_P256, ECDSA_P384, ED25519):
                params = {
                    ECDSA_P256.name: EC_PARAMS_P256,
                    ECDSA_P384.name: EC_PARAMS_P384,
                    ED25519.name: EC_PARAMS_ED25519,
                }[algorithm.name]
                public_template[pkcs11.Attribute.EC_PARAMS] = params
                is_ed = algorithm is ED25519
                _public, private = session.generate_keypair(
                    pkcs11.KeyType.EC_EDWARDS if is_ed else pkcs11.KeyType.EC,
                    store=True,
                    id=key_id,
                    label=uri.object,
                    mechanism=(
                        pkcs11.Mechanism.EC_EDWARDS_KEY_PAIR_GEN
                        if is_ed
                        else pkcs11.Mechanism.EC_KEY_PAIR_GEN
                    ),
                    public_template=public_template,
                    private_template=private_template,
                )
            elif algorithm in (RSA_PSS_3072, RSA_PSS_4096):
                public_template[pkcs11.Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"
                _public, private = session.generate_keypair(
                    pkcs11.KeyType.RSA,
                    3072 if algorithm is RSA_PSS_3072 else 4096,
                    store=True,
                    id=key_id,
                    label=uri.object,
                    public_template=public_template,
                    private_template=private_template,
                )
            else:
                raise ConfigError(f"hsm keygen: {algorithm.name} is not available on PKCS#11")
            return public_key_of(session, private, algorithm), key_id
    except pkcs11.PKCS11Error as exc:
        raise ConfigError(f"hsm keygen on token {uri.token!r} failed: {_ckr(exc)}") from None
    finally:
        _close_quietly(module, session)


def read_public_key(ref: str | Pkcs11Uri) -> DsPublicKey:
    """The public key a reference names (logging in only when a PIN is configured)."""
    pkcs11 = _p11()
    uri = parse_uri(ref) if isinstance(ref, str) else ref
    if uri.token is None or (uri.object is None and uri.id is None):
        raise ConfigError("the reference needs token= and object= (or id=)")
    module = load_module(resolve_module_path(uri))
    pin = read_pin(uri, required=False)
    token = find_token(module, uri.token, uri.serial)
    session = open_session(module, token, pin)
    try:
        with module.calls():
            if pin is not None:
                private = find_private_key(session, uri, uri.token)
                return public_key_of(session, private, key_algorithm(private))
            attrs: dict[Any, Any] = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PUBLIC_KEY}
            if uri.object is not None:
                attrs[pkcs11.Attribute.LABEL] = uri.object
            if uri.id is not None:
                attrs[pkcs11.Attribute.ID] = uri.id
            found = list(session.get_objects(attrs))
            if len(found) != 1:
                raise ConfigError(
                    f"{len(found)} public keys match {uri.describe()} (set a PIN to look up "
                    "the private key instead)"
                )
            return public_key_of(session, found[0], key_algorithm(found[0]))
    except pkcs11.PKCS11Error as exc:
        raise ConfigError(f"PKCS#11 token {uri.token!r}: {_ckr(exc)}") from None
    finally:
        _close_quietly(module, session)


def list_keys(ref: str | Pkcs11Uri) -> tuple[list[str], list[TokenKey]]:
    """Token labels, and the key pairs on them (all tokens, or the one `token=` names)."""
    pkcs11 = _p11()
    uri = parse_uri(ref) if isinstance(ref, str) else ref
    module = load_module(resolve_module_path(uri))
    pin = read_pin(uri, required=False)
    tokens = [t for t in list_tokens(module) if uri.token is None or t.label == uri.token]
    if uri.token is not None and not tokens:
        find_token(module, uri.token)  # raises with the list of known tokens
    keys: list[TokenKey] = []
    for token in tokens:
        session = open_session(module, token, pin)
        try:
            with module.calls():
                klass = pkcs11.ObjectClass.PRIVATE_KEY if pin else pkcs11.ObjectClass.PUBLIC_KEY
                # Collect first: one find operation per session at a time.
                for obj in list(session.get_objects({pkcs11.Attribute.CLASS: klass})):
                    try:
                        algorithm = key_algorithm(obj)
                        public = public_key_of(session, obj, algorithm)
                    except (KeyFormatError, ConfigError):
                        continue
                    keys.append(
                        TokenKey(
                            token=token.label,
                            label=str(_attr_or_none(obj, pkcs11.Attribute.LABEL) or ""),
                            id=bytes(_attr_or_none(obj, pkcs11.Attribute.ID) or b""),
                            algorithm=algorithm.name,
                            keyid=public.keyid,
                            extractable=bool(_attr_or_none(obj, pkcs11.Attribute.EXTRACTABLE)),
                            sensitive=bool(_attr_or_none(obj, pkcs11.Attribute.SENSITIVE)),
                        )
                    )
        except pkcs11.PKCS11Error as exc:
            raise ConfigError(f"PKCS#11 token {token.label!r}: {_ckr(exc)}") from None
        finally:
            _close_quietly(module, session)
    return [t.label for t in tokens], keys


def load_reference(ref: str, options: SignerOptions) -> Pkcs11Signer:
    """`load` for the scheme table (a reference string and its options)."""
    return load(ref, options)


register_scheme("pkcs11", load_reference)
