"""Bearer tokens (JWT) checked offline against a JWKS file: who is asking, for which tenant.

The header's `alg` is never trusted on its own: it must be on the configured allow-list (only
asymmetric algorithms) *and* fit the key its `kid` selects, so neither `none` nor an HMAC
token keyed with a published public key ("algorithm confusion") can pass. A refusal is a
`TokenError` with one short fixed reason, safe to send to the client: it never echoes the token.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .._internal.fileio import read_bounded
from ..errors import ConfigError, DssesignError, InputError, MissingDependencyError
from .config import ASYMMETRIC_ALGORITHMS, AuthConfig

try:
    import jwt
    import jwt.algorithms
except ImportError as exc:  # PyJWT comes with the serve extra
    raise MissingDependencyError("bearer-token checks", "pyjwt", "serve") from exc

#: A bearer token is a few hundred bytes to a few KiB; anything larger is refused unparsed.
MAX_TOKEN_BYTES: Final = 8 * 1024
MAX_JWKS_BYTES: Final = 1024 * 1024
MAX_JWKS_KEYS: Final = 100
MIN_RSA_BITS: Final = 2048

#: Every reason a TokenError may carry: fixed text, nothing from the token.
REASONS: Final = frozenset(
    {"missing token", "malformed token", "algorithm not allowed", "unknown key", "bad signature",
     "token expired", "token not yet valid", "wrong issuer", "wrong audience"}
)  # fmt: skip
_RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_CURVES: Final = {"P-256": ("ES256", ec.SECP256R1), "P-384": ("ES384", ec.SECP384R1)}
#: JWK members only a private (or symmetric) key has: a verification JWKS holds none of them.
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class TokenError(DssesignError):
    """A bearer token refused; `reason` is one of `REASONS`, fit to return to the client."""

    exit_code = 1

    def __init__(self, reason: str) -> None:
        if reason not in REASONS:  # a programming error: never let free text reach a client
            raise ValueError(f"not a token refusal reason: {reason!r}")
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for."""

    subject: str
    #: The configured tenant claim, when the token has one.
    tenant: str | None
    scopes: frozenset[str]
    issuer: str
    expires: datetime


@dataclass(frozen=True)
class _Key:
    kid: str | None
    public_key: _PublicKey
    #: The algorithms this key may verify: its type's, narrowed by the JWK's own `alg`.
    algorithms: frozenset[str]


class TokenVerifier:
    """Checks bearer tokens against one issuer's JWKS, loaded once (a ConfigError if unusable).

    Keys rotate by replacing the file and building a new verifier; nothing is fetched.
    """

    def __init__(self, auth: AuthConfig) -> None:
        refused = [a for a in auth.algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if refused or not auth.algorithms:
            raise ConfigError(
                "auth.algorithms: only asymmetric algorithms are accepted ("
                + ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
                + ")"
            )
        self._auth = auth
        self._allowed = frozenset(auth.algorithms)
        self._keys = _load_jwks(auth)
        self._by_kid = {key.kid: key for key in self._keys if key.kid is not None}
        if not any(key.algorithms & self._allowed for key in self._keys):
            raise ConfigError(
                f"auth.jwks_file {auth.jwks_file}: no key can verify any of the allowed "
                f"algorithms ({', '.join(auth.algorithms)})"
            )

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; TokenError with a fixed reason otherwise."""
        if not token:
            raise TokenError("missing token")
        if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or not token.isascii():
            raise TokenError("malformed token")  # bounded before any parsing
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._allowed:
            raise TokenError("algorithm not allowed")  # none, HS*, anything not configured
        key = self._select(header.get("kid"))
        if algorithm not in key.algorithms:
            raise TokenError("algorithm not allowed")  # e.g. ES256 named against an RSA key
        claims = self._decode(token, key, algorithm)
        return Principal(
            subject=_claim_str(claims, "sub"),
            tenant=_tenant(claims, self._auth.tenant_claim),
            scopes=_scopes(claims),
            issuer=_claim_str(claims, "iss"),
            expires=_expiry(claims),
        )

    def _select(self, kid: object) -> _Key:
        if kid is None:
            if len(self._keys) == 1:
                return self._keys[0]
            raise TokenError("unknown key")
        key = self._by_kid.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("unknown key")
        return key

    def _decode(self, token: str, key: _Key, algorithm: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.public_key,
                algorithms=[algorithm],
                audience=self._auth.audience,
                issuer=self._auth.issuer,
                leeway=self._auth.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"], "strict_aud": False},
            )
        except jwt.InvalidSignatureError:
            raise TokenError("bad signature") from None
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.ImmatureSignatureError:  # nbf, or iat in the future beyond the leeway
            raise TokenError("token not yet valid") from None
        except jwt.InvalidIssuerError:
            raise TokenError("wrong issuer") from None
        except jwt.InvalidAudienceError:
            raise TokenError("wrong audience") from None
        except jwt.MissingRequiredClaimError as exc:
            reason = {"iss": "wrong issuer", "aud": "wrong audience"}.get(exc.claim)
            raise TokenError(reason or "malformed token") from None
        except jwt.InvalidAlgorithmError:
            raise TokenError("algorithm not allowed") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise TokenError("malformed token") from None
        for name in ("exp", "nbf", "iat"):  # PyJWT also takes "123"; RFC 7519 says a number
            value = claims.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TokenError("malformed token")
        return claims


def _claim_str(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise TokenError("malformed token")
    return value


def _tenant(claims: Mapping[str, Any], name: str) -> str | None:
    if name not in claims:
        return None
    return _claim_str(claims, name)


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """`scope` (RFC 8693: space-separated) or `scp` (an array, or a string as Entra ID sends)."""
    found: list[frozenset[str]] = []
    for name in ("scope", "scp"):
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, str):
            found.append(frozenset(value.split()))
        elif name == "scp" and isinstance(value, list) and all(isinstance(s, str) for s in value):
            found.append(frozenset(value))
        else:
            raise TokenError("malformed token")
    if len(found) == 2 and found[0] != found[1]:
        raise TokenError("malformed token")  # two claims that disagree: trust neither
    return found[0] if found else frozenset()


def _expiry(claims: Mapping[str, Any]) -> datetime:
    exp = claims["exp"]
    try:
        if not math.isfinite(exp):
            raise ValueError
        return datetime.fromtimestamp(exp, UTC)
    except (ValueError, OverflowError, OSError):
        raise TokenError("malformed token") from None


def _load_jwks(auth: AuthConfig) -> tuple[_Key, ...]:
    where = f"auth.jwks_file {auth.jwks_file}"
    try:
        data = read_bounded(auth.jwks_file, limit=MAX_JWKS_BYTES, what="auth.jwks_file")
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise ConfigError(f"{where}: not valid JSON") from None
    jwks = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(jwks, list) or not jwks:
        raise ConfigError(f"{where}: not a JWKS (an object with a non-empty `keys` array)")
    if len(jwks) > MAX_JWKS_KEYS:
        raise ConfigError(f"{where}: more than {MAX_JWKS_KEYS} keys")
    keys = tuple(_load_jwk(f"{where}: keys[{i}]", jwk) for i, jwk in enumerate(jwks))
    kids = [key.kid for key in keys if key.kid is not None]
    if len(set(kids)) != len(kids):
        raise ConfigError(f"{where}: two keys share a kid; a token could not tell them apart")
    return keys


def _load_jwk(where: str, jwk: object) -> _Key:
    """One public signature key of an allowed type; anything else is refused, not skipped."""
    if not isinstance(jwk, dict):
        raise ConfigError(f"{where}: not a JSON object")
    kty = jwk.get("kty")
    if kty == "oct":
        raise ConfigError(
            f"{where}: a symmetric (oct) key is refused: whoever holds it can mint tokens"
        )
    private = sorted(_PRIVATE_MEMBERS & jwk.keys())
    if private:
        raise ConfigError(
            f"{where}: holds private key material ({private[0]}); a JWKS for verification "
            "holds public keys only"
        )
    kid = jwk.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise ConfigError(f"{where}: kid must be a non-empty string")
    if jwk.get("use", "sig") != "sig":
        raise ConfigError(f'{where}: `use` is not "sig": not a signature key')
    operations = jwk.get("key_ops")
    if operations is not None and (not isinstance(operations, list) or "verify" not in operations):
        raise ConfigError(f'{where}: key_ops does not include "verify"')
    algorithms, public_key = _public_key(where, jwk, kty)
    declared = jwk.get("alg")
    if declared is not None:
        if not isinstance(declared, str) or declared not in algorithms:
            raise ConfigError(f"{where}: alg {str(declared)[:16]!r} does not fit a {kty} key")
        algorithms = frozenset({declared})
    return _Key(kid=kid, public_key=public_key, algorithms=algorithms)


def _public_key(where: str, jwk: dict[str, Any], kty: object) -> tuple[frozenset[str], _PublicKey]:
    try:
        if kty == "EC":
            crv = jwk.get("crv")
            if not isinstance(crv, str) or crv not in _EC_CURVES:
                raise ConfigError(f"{where}: EC keys must be on P-256 or P-384")
            algorithm, curve = _EC_CURVES[crv]
            key = jwt.algorithms.ECAlgorithm.from_jwk(jwk)
            if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, curve):
                raise ConfigError(f"{where}: not an EC public key on {crv}")
            return frozenset({algorithm}), key
        if kty == "RSA":
            rsa_key = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
            if not isinstance(rsa_key, rsa.RSAPublicKey):
                raise ConfigError(f"{where}: not an RSA public key")
            if rsa_key.key_size < MIN_RSA_BITS:
                raise ConfigError(
                    f"{where}: RSA key of {rsa_key.key_size} bits; at least {MIN_RSA_BITS} needed"
                )
            return _RSA_ALGORITHMS, rsa_key
        if kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise ConfigError(f"{where}: OKP keys must be Ed25519")
            ed_key = jwt.algorithms.OKPAlgorithm.from_jwk(jwk)
            if not isinstance(ed_key, ed25519.Ed25519PublicKey):
                raise ConfigError(f"{where}: not an Ed25519 public key")
            return frozenset({"EdDSA"}), ed_key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise ConfigError(f"{where}: not a valid {kty} key") from None
    raise ConfigError(f"{where}: kty must be EC, RSA or OKP")
