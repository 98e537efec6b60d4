"""PKCS#11 modules and tokens: loading a module once, finding tokens, opening sessions."""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ...errors import (
    ConfigError,
    MissingDependencyError,
    TokenNotFound,
)

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
    """The one initialized token matching `label` and `serial` (None: any); `TokenNotFound`
    (naming the tokens present) if none, `ConfigError` if several."""
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
    """The initialized tokens of every slot that has one; unrecognised tokens are skipped."""
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
