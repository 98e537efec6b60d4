"""Public keys: the one algorithm allow-list, keyids, PEM/DER loading and signature verification."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa

from .._internal.text import clip
from ..errors import KeyFormatError

#: Public key types dssesign can verify with.
PublicKeyType: TypeAlias = (
    ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey | mldsa.MLDSA65PublicKey
)


@dataclass(frozen=True)
class Algorithm:
    """One entry of the allow-list; `name` is sigstore's `PublicKeyDetails` name."""

    name: str
    #: The name users type: `dssesign keygen --algorithm <cli_name>`.
    cli_name: str
    #: securesystemslib (keytype, scheme) verifying the same bytes; None where it has none
    #: (its ml-dsa-65/1 scheme signs a TAP 21 SHA-512 pre-hash, not FIPS 204 over the PAE).
    sslib_keytype: str | None
    sslib_scheme: str | None
    #: Hash the signature scheme applies to the message (None: the scheme hashes internally).
    hash_name: str | None
    #: Set for post-quantum algorithms (hybrid policies treat them apart).
    post_quantum: bool = False

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        """The pre-hash of ECDSA and RSA-PSS; `ValueError` for Ed25519 and ML-DSA (none)."""
        if self.hash_name == "sha256":
            return hashes.SHA256()
        if self.hash_name == "sha384":
            return hashes.SHA384()
        raise ValueError(f"{self.name} does not use a separate hash")


ED25519 = Algorithm("PKIX_ED25519", "ed25519", "ed25519", "ed25519", None)
ECDSA_P256 = Algorithm(
    "PKIX_ECDSA_P256_SHA_256", "ecdsa-p256", "ecdsa", "ecdsa-sha2-nistp256", "sha256"
)
ECDSA_P384 = Algorithm(
    "PKIX_ECDSA_P384_SHA_384", "ecdsa-p384", "ecdsa", "ecdsa-sha2-nistp384", "sha384"
)
RSA_PSS_3072 = Algorithm(
    "PKIX_RSA_PSS_3072_SHA256", "rsa-pss-3072", "rsa", "rsassa-pss-sha256", "sha256"
)
RSA_PSS_4096 = Algorithm(
    "PKIX_RSA_PSS_4096_SHA256", "rsa-pss-4096", "rsa", "rsassa-pss-sha256", "sha256"
)
ML_DSA_65 = Algorithm("ML_DSA_65", "ml-dsa-65", None, None, None, post_quantum=True)

#: The allow-list, by `PublicKeyDetails` name. Nothing outside it is signed with or trusted.
ALGORITHMS: dict[str, Algorithm] = {
    a.name: a for a in (ED25519, ECDSA_P256, ECDSA_P384, RSA_PSS_3072, RSA_PSS_4096, ML_DSA_65)
}
_BY_CLI_NAME: dict[str, Algorithm] = {a.cli_name: a for a in ALGORITHMS.values()}

_RSA_SIZES = {3072: RSA_PSS_3072, 4096: RSA_PSS_4096}
_EC_CURVES: dict[str, Algorithm] = {"secp256r1": ECDSA_P256, "secp384r1": ECDSA_P384}


def get_algorithm(name: str) -> Algorithm:
    """Look an algorithm up by `PublicKeyDetails` name or CLI name (`ed25519`, `ecdsa-p256`...)."""
    found = ALGORITHMS.get(name) or _BY_CLI_NAME.get(name.lower())
    if found is None:
        known = ", ".join(sorted(_BY_CLI_NAME))
        raise KeyFormatError(f"unknown algorithm {name!r} (known: {known})")
    return found


def algorithm_of(key: object) -> Algorithm:
    """The allow-listed algorithm a public or private key belongs to; anything else is refused."""
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return ED25519
    if isinstance(key, mldsa.MLDSA65PublicKey | mldsa.MLDSA65PrivateKey):
        return ML_DSA_65
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        found = _EC_CURVES.get(key.curve.name)
        if found is None:
            raise KeyFormatError(
                f"unsupported elliptic curve {key.curve.name} (use P-256 or P-384)"
            )
        return found
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        found = _RSA_SIZES.get(key.key_size)
        if found is None:
            raise KeyFormatError(f"unsupported RSA key size {key.key_size} (use 3072 or 4096)")
        return found
    raise KeyFormatError(f"unsupported key type {type(key).__name__}")


def keyid_of_spki(spki_der: bytes) -> str:
    """keyid = lowercase hex SHA-256 of the DER SubjectPublicKeyInfo (the DESIGN contract)."""
    return hashlib.sha256(spki_der).hexdigest()


class PublicKey:
    """An allow-listed public key; equality and keyid come from its SPKI DER, never from labels."""

    def __init__(self, key: PublicKeyType) -> None:
        self._key = key
        self.algorithm: Algorithm = algorithm_of(key)

    @classmethod
    def from_pem(cls, data: bytes, *, source: str = "public key") -> PublicKey:
        """Load a PEM SubjectPublicKeyInfo; `KeyFormatError` if unreadable or off the allow-list."""
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyFormatError(
                f"{source}: not a PEM SubjectPublicKeyInfo ({_brief(exc)})"
            ) from None
        return cls(key)  # type: ignore[arg-type]  # algorithm_of refuses other types

    @classmethod
    def from_der(cls, data: bytes, *, source: str = "public key") -> PublicKey:
        """Load a DER SubjectPublicKeyInfo; non-canonical DER is refused, so a key has one keyid."""
        try:
            key = serialization.load_der_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyFormatError(
                f"{source}: not a DER SubjectPublicKeyInfo ({_brief(exc)})"
            ) from None
        public = cls(key)  # type: ignore[arg-type]
        if public.spki_der != data:
            # A non-canonical encoding would give the same key a second keyid.
            raise KeyFormatError(f"{source}: SubjectPublicKeyInfo is not in canonical DER")
        return public

    @property
    def key(self) -> PublicKeyType:
        """The pyca/cryptography key object, for callers that need its own API."""
        return self._key

    @cached_property
    def spki_der(self) -> bytes:
        """The DER SubjectPublicKeyInfo: what the keyid hashes and equality compares."""
        return self._key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @cached_property
    def pem(self) -> str:
        """The SubjectPublicKeyInfo as PEM text, as `public-key` prints it."""
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    @cached_property
    def keyid(self) -> str:
        """Lowercase hex SHA-256 of `spki_der`; never taken from a label or a hint."""
        return keyid_of_spki(self.spki_der)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True only if `signature` is valid over `data` under this key's one algorithm."""
        try:
            self._verifier(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True

    @cached_property
    def _verifier(self) -> Callable[[bytes, bytes], None]:
        # Bound once: the per-call isinstance dispatch showed up in the signing profile.
        key = self._key
        if isinstance(key, ed25519.Ed25519PublicKey | mldsa.MLDSA65PublicKey):
            return key.verify
        if isinstance(key, ec.EllipticCurvePublicKey):
            ecdsa = ec.ECDSA(self.algorithm.hash_algorithm())
            return lambda signature, data: key.verify(signature, data, ecdsa)
        pss, hash_algorithm = pss_padding(self.algorithm), self.algorithm.hash_algorithm()
        return lambda signature, data: key.verify(signature, data, pss, hash_algorithm)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and self.spki_der == other.spki_der

    def __hash__(self) -> int:
        return hash(self.spki_der)

    def __repr__(self) -> str:
        return f"PublicKey({self.algorithm.name}, keyid={self.keyid[:16]}…)"


def pss_padding(algorithm: Algorithm) -> padding.PSS:
    """RSA-PSS as sigstore, KMS and HSMs do it: MGF1 on the same hash, salt length = hash length."""
    hash_algorithm = algorithm.hash_algorithm()
    return padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)


def load_public_key(data: bytes, *, source: str = "public key") -> PublicKey:
    """Load a PEM or DER SubjectPublicKeyInfo."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return PublicKey.from_pem(data, source=source)
    return PublicKey.from_der(data, source=source)


def public_key_hint(public_key: PublicKey) -> str:
    """base64 (standard, padded) of SHA-256 of the SPKI DER: cosign v3's and sigstore-go's hint.

    Here, not with the bundle writer, because the verifier matches hints too.
    """
    return base64.b64encode(hashlib.sha256(public_key.spki_der).digest()).decode("ascii")


def _brief(exc: BaseException) -> str:
    """An exception's text for a one-line error: its first line, at most 200 characters (the
    text may quote the input: a PEM header of 50 KB)."""
    lines = str(exc).splitlines()
    text = lines[0] if lines else type(exc).__name__
    return clip(text)
