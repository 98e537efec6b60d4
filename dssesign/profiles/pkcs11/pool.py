"""The session pool: lock-free signing fast path, bounded waits, one re-open of a lost session."""

from __future__ import annotations

import ctypes
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import (
    ConfigError,
    SigningError,
    TokenNotFound,
    TokenUnavailable,
)
from .keys import find_private_key
from .module import Module, _ckr, _p11, find_token, open_session
from .uri import Pkcs11Uri, T

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
