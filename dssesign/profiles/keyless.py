"""Sigstore keyless signing: an ephemeral key, a Fulcio certificate for an OIDC identity, and a
Rekor entry, through sigstore-python's own signing client.

The reference is the bare word `keyless`. The identity token comes from
`SignerOptions.identity_token`, else `DSSESIGN_OIDC_TOKEN`, else ambient CI credentials
(sigstore's `detect_credential`). The Sigstore instance comes from a ClientTrustConfig file
(`SignerOptions.trust_config`, else `DSSESIGN_SIGSTORE_TRUST_CONFIG`), else the public-good
instance. Loading the signer obtains the certificate (so the key is known up front); each
`sign` records one DSSE entry and keeps its bundle for `bundle_for`.

The token is a secret: it is never put in an error, a log line or a repr. sigstore is imported
only when a keyless signer is loaded.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

from .._internal.fileio import read_bounded
from ..core.certificates import certificate_sans
from ..core.keys import Algorithm, PublicKey
from ..errors import ConfigError, DssesignError, MissingDependencyError, SigningError
from ..sign.signer import SignerOptions, register_word

if TYPE_CHECKING:
    from sigstore.models import Bundle, ClientTrustConfig
    from sigstore.sign import Signer as SigstoreSigner
    from sigstore.verify import Verifier

#: Environment variable holding the OIDC identity token (a secret).
TOKEN_ENV = "DSSESIGN_OIDC_TOKEN"  # noqa: S105 - the variable's name, not a token
#: Environment variable naming a Sigstore ClientTrustConfig file (a private instance).
TRUST_CONFIG_ENV = "DSSESIGN_SIGSTORE_TRUST_CONFIG"
#: The only payload type Sigstore's DSSE signing (and its bundle verifiers) handle.
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"

T = TypeVar("T")

_CLIENT_TRUST_CONFIG = "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"
_SIGNING_CONFIG_PREFIX = "application/vnd.dev.sigstore.signingconfig"
_MAX_TRUST_CONFIG = 4 * 1024 * 1024
_MAX_DECIMAL = 20
#: Seconds one Fulcio or Rekor exchange may take (sigstore-python's HTTP calls set no limit).
NETWORK_TIMEOUT = 60.0
_OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")


class KeylessSigner:
    """Signs DSSE PAEs of in-toto Statements with a Fulcio-certified ephemeral P-256 key.

    Not `in_process`: every signature is a Rekor round trip.
    """

    reference = "keyless"
    in_process = False
    exportable = False  # an ephemeral key that lives and dies in this process

    def __init__(
        self, signer: SigstoreSigner, verifier: Verifier, public_key: PublicKey, *, secret: str
    ) -> None:
        self._signer = signer
        self._verifier = verifier
        self._public_key = public_key
        self._secret = secret  # only to scrub it from messages; never shown
        self._bundles: dict[bytes, str] = {}
        self._lock = threading.Lock()
        # sigstore-python has no public accessor for the certificate it cached at construction
        # (cache=True); this returns it without another Fulcio call.
        certificate = signer._signing_cert()
        self.certificate: x509.Certificate = certificate
        #: The certificate's identity (SAN) and OIDC issuer: public, safe to log.
        self.identity = _san(certificate)
        self.issuer = _issuer(certificate)

    @property
    def keyid(self) -> str:
        """keyid of the ephemeral key; the envelope carries "" instead (`envelope_keyid`)."""
        return self._public_key.keyid

    @property
    def algorithm(self) -> Algorithm:
        """The ephemeral key's algorithm (ECDSA P-256 as sigstore-python makes it)."""
        return self._public_key.algorithm

    @property
    def public_key(self) -> PublicKey:
        """The ephemeral key the Fulcio certificate binds to `identity`; it dies with the signer."""
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        """Sign exactly the Statement inside `data` (a PAE) and log it; returns DER ECDSA."""
        payload_type, payload = parse_pae(data)
        if payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise SigningError(
                f"keyless signing only supports payloadType {IN_TOTO_PAYLOAD_TYPE} "
                f"(Sigstore DSSE bundles carry in-toto Statements), not {payload_type!r}"
            )
        from sigstore import dsse  # noqa: PLC0415 - lazy: sigstore is an optional extra
        from sigstore.errors import Error as SigstoreError  # noqa: PLC0415 - on first use

        try:
            statement = dsse.Statement(payload)
        except SigstoreError as exc:
            raise SigningError(
                f"keyless: payload is not an in-toto Statement sigstore accepts: {_line(exc)}"
            ) from None
        with self._lock:
            try:
                bundle = _bounded(lambda: self._signer.sign_dsse(statement), "Rekor")
            except Exception as exc:
                raise SigningError(f"keyless signing failed: {self._describe(exc)}") from None
        text = bundle.to_json()
        envelope = json.loads(text).get("dsseEnvelope") or {}
        signatures = envelope.get("signatures") or []
        if (
            _b64(envelope.get("payload")) != payload
            or envelope.get("payloadType") != payload_type
            or len(signatures) != 1
        ):
            raise SigningError("keyless: the bundle's DSSE envelope is not the payload we signed")
        signature = bundle.signature
        if not self._public_key.verify(signature, data):
            raise SigningError("keyless: the bundle's signature does not verify over the PAE")
        self._check(bundle)
        with self._lock:
            self._bundles[signature] = text
        return signature

    def _check(self, bundle: Bundle) -> None:
        """Verify-before-emit: chain, SCT, inclusion proof, checkpoint, SET and identity."""
        from sigstore.verify.policy import Identity  # noqa: PLC0415 - on first use

        policy = Identity(identity=self.identity, issuer=self.issuer or None)
        try:
            self._verifier.verify_dsse(bundle, policy)
        except Exception as exc:
            raise SigningError(
                f"keyless: the Sigstore bundle does not verify against the trusted root: "
                f"{self._describe(exc)}"
            ) from None

    def bundle_for(self, signature: bytes) -> str:
        """The Sigstore bundle (v0.3 JSON) recorded for a signature this signer made."""
        with self._lock:
            return self._bundles[signature]

    def _describe(self, exc: BaseException) -> str:
        return _describe(exc, self._secret)

    def __repr__(self) -> str:
        return f"KeylessSigner({self.identity!r}, issuer={self.issuer!r}, keyid={self.keyid[:16]}…)"


def parse_pae(data: bytes) -> tuple[str, bytes]:
    """Split a DSSE PAE `DSSEv1 LEN type LEN body` into (type, body), strictly."""
    prefix = b"DSSEv1 "
    if not data.startswith(prefix):
        raise SigningError("keyless: data to sign is not a DSSE PAE (no 'DSSEv1 ' prefix)")
    rest = data[len(prefix) :]
    type_length, rest = _decimal_field(rest, "payloadType length")
    if len(rest) < type_length + 1 or rest[type_length : type_length + 1] != b" ":
        raise SigningError("keyless: DSSE PAE payloadType length does not match")
    raw_type, rest = rest[:type_length], rest[type_length + 1 :]
    body_length, body = _decimal_field(rest, "payload length")
    if len(body) != body_length:
        raise SigningError("keyless: DSSE PAE payload length does not match")
    try:
        payload_type = raw_type.decode("utf-8")
    except UnicodeDecodeError:
        raise SigningError("keyless: DSSE PAE payloadType is not UTF-8") from None
    return payload_type, body


def _decimal_field(data: bytes, what: str) -> tuple[int, bytes]:
    text, separator, rest = data.partition(b" ")
    if (
        not separator
        or not (text.isascii() and text.isdigit())
        or len(text) > _MAX_DECIMAL
        or (text.startswith(b"0") and text != b"0")
    ):
        raise SigningError(f"keyless: DSSE PAE has a malformed {what}")
    return int(text), rest


# --------------------------------------------------------------------------- loading


def load_reference(reference: str, options: SignerOptions) -> KeylessSigner:
    """The `keyless` loader: gets one Fulcio certificate now, for the signer's lifetime (token from
    `options`, else `$DSSESIGN_OIDC_TOKEN`, else ambient CI credentials)."""
    try:
        from sigstore.errors import Error as SigstoreError  # noqa: PLC0415 - on first use
        from sigstore.oidc import IdentityError, IdentityToken  # noqa: PLC0415 - on first use
        from sigstore.sign import Signer, SigningContext  # noqa: PLC0415 - on first use
        from sigstore.verify import Verifier  # noqa: PLC0415 - on first use
    except ImportError:
        raise MissingDependencyError("keyless signing", "sigstore-python", "sigstore") from None

    raw_token = _token(options)
    trust_config = _trust_config(options)
    try:
        token = IdentityToken(raw_token)
    except IdentityError as exc:
        raise ConfigError(f"identity token refused: {_describe(exc, raw_token)}") from None
    try:
        context = SigningContext.from_trust_config(trust_config)
        verifier = Verifier(trusted_root=trust_config.trusted_root)
    except (SigstoreError, ValueError) as exc:
        raise ConfigError(f"unusable Sigstore trust config: {_line(exc)}") from None
    try:
        # cache=True: one ephemeral key and one Fulcio certificate for this signer's lifetime.
        signer = _bounded(lambda: Signer(token, context, cache=True), "Fulcio")
    except Exception as exc:
        fulcio = trust_config.signing_config.get_fulcio().url
        raise SigningError(
            f"could not get a signing certificate from Fulcio at {fulcio}: "
            f"{_describe(exc, raw_token)}"
        ) from None
    key = signer._private_key.public_key()  # the cached ephemeral key (no public accessor)
    if not isinstance(key, ec.EllipticCurvePublicKey):  # pragma: no cover - sigstore uses P-256
        raise SigningError("sigstore produced a non-ECDSA ephemeral key")
    return KeylessSigner(signer, verifier, PublicKey(key), secret=raw_token)


def _token(options: SignerOptions) -> str:
    if options.identity_token:
        return options.identity_token.strip()
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env
    from sigstore.oidc import IdentityError, detect_credential  # noqa: PLC0415 - on first use

    try:
        ambient = detect_credential()
    except IdentityError as exc:
        raise ConfigError(f"ambient OIDC credential detection failed: {_line(exc)}") from None
    if not ambient:
        raise ConfigError(
            f"keyless signing needs an OIDC identity token: set {TOKEN_ENV}, pass "
            "--identity-token-file, or run in a CI with OIDC credentials"
        )
    return ambient


def _trust_config(options: SignerOptions) -> ClientTrustConfig:
    from sigstore.models import ClientTrustConfig  # noqa: PLC0415 - on first use

    path = options.trust_config
    if path is None and os.environ.get(TRUST_CONFIG_ENV):
        path = Path(os.environ[TRUST_CONFIG_ENV])
    if path is None:
        try:
            return ClientTrustConfig.production()
        except Exception as exc:
            raise ConfigError(
                f"could not fetch the public-good Sigstore trust config: {_line(exc)} "
                f"(offline or private instance: pass --trust-config or set {TRUST_CONFIG_ENV})"
            ) from None
    try:
        text = read_bounded(path, limit=_MAX_TRUST_CONFIG, what="Sigstore trust config").decode()
        data = json.loads(text)
    except DssesignError as exc:
        raise ConfigError(str(exc)) from None
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(f"Sigstore trust config {path}: not JSON") from None
    media_type = data.get("mediaType") if isinstance(data, dict) else None
    if isinstance(media_type, str) and media_type.startswith(_SIGNING_CONFIG_PREFIX):
        raise ConfigError(
            f"Sigstore trust config {path}: is a bare signing config; keyless needs a "
            f"ClientTrustConfig ({_CLIENT_TRUST_CONFIG}: signing config plus trusted root)"
        )
    if media_type != _CLIENT_TRUST_CONFIG:
        raise ConfigError(
            f"Sigstore trust config {path}: mediaType {media_type!r} is not {_CLIENT_TRUST_CONFIG}"
        )
    try:
        config = ClientTrustConfig.from_json(text)
        config.trusted_root  # noqa: B018 - parse (and refuse) it now, not at signing time
    except Exception as exc:
        raise ConfigError(f"Sigstore trust config {path}: {_line(exc)}") from None
    return config


class _NoAnswer(Exception):
    pass


def _bounded(call: Callable[[], T], service: str) -> T:
    """Run one blocking sigstore network call with a time limit, on a daemon thread."""
    outcome: list[T] = []
    failure: list[Exception] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True, name=f"dssesign-keyless-{service}")
    thread.start()
    thread.join(NETWORK_TIMEOUT)
    if thread.is_alive():
        raise _NoAnswer(f"{service} did not answer within {NETWORK_TIMEOUT:g}s")
    if failure:
        raise failure[0]
    return outcome[0]


# --------------------------------------------------------------------------- messages


def _b64(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return None


def _line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _describe(exc: BaseException, secret: str) -> str:
    """One line for an error from sigstore/requests, with the token scrubbed out."""
    import requests  # noqa: PLC0415 - sigstore's HTTP client, present with sigstore

    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        request = getattr(exc, "request", None)
        where = getattr(request, "url", None) or "the Sigstore service"
        state = "timed out" if isinstance(exc, requests.Timeout) else "is unreachable"
        text = f"{where} {state}"
    elif type(exc).__name__ == "ExpiredIdentity":
        text = "the identity token has expired"
    elif type(exc).__name__ == "ExpiredCertificate":
        text = "the signing certificate expired; load the keyless signer again"
    else:
        text = _line(exc)
        cause = exc.__cause__
        if cause is not None and type(cause).__name__ == "ExpiredSignatureError":
            text = "the identity token has expired"
        elif cause is not None and type(cause).__name__ == "InvalidAudienceError":
            text = "the identity token's audience is not 'sigstore'"
        elif cause is not None:
            text = f"{text} ({_line(cause)})"
    if secret:
        text = text.replace(secret, "[token]")
    return text


def _san(certificate: x509.Certificate) -> str:
    names = certificate_sans(certificate)
    return names[0] if names else ""


def _issuer(certificate: x509.Certificate) -> str:
    try:
        value = certificate.extensions.get_extension_for_oid(_OIDC_ISSUER_V1).value
    except x509.ExtensionNotFound:
        return ""
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    return raw.decode("utf-8", "replace")


register_word("keyless", load_reference)
