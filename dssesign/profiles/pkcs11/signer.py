"""The PKCS#11 signer: signs the PAE on the token; the private key never leaves it."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ...core.keys import ECDSA_P256, ECDSA_P384, ED25519, Algorithm
from ...core.keys import PublicKey as DsPublicKey
from ...errors import (
    ConfigError,
    SigningError,
    TokenNotFound,
    TokenUnavailable,
)
from ...sign.signer import SignerOptions
from .keys import check_protection, key_algorithm, public_key_of
from .module import Module, _ckr, _p11, load_module
from .pool import SessionPool, _close_quietly
from .uri import Pkcs11Uri, parse_uri, read_pin, resolve_module_path

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
        """keyid of the key read at load; a failover token holding another key is refused."""
        return self.public_key.keyid

    @property
    def algorithm(self) -> Algorithm:
        """The key's algorithm as read from the token at load."""
        assert self._algorithm is not None
        return self._algorithm

    @property
    def public_key(self) -> DsPublicKey:
        """The public key read from the token at load; a failover token must hold the same key."""
        assert self._public_key is not None
        return self._public_key

    @property
    def pools(self) -> list[SessionPool]:
        """One session pool per `token=`, in failover order (a copy of the list)."""
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
        """Close the idle sessions and log out of every token; busy sessions close when released."""
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


def load_reference(ref: str, options: SignerOptions) -> Pkcs11Signer:
    """`load` for the scheme table (a reference string and its options)."""
    return load(ref, options)
