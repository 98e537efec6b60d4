"""A test OIDC identity provider: ES256-signed JWTs with aud=sigstore, checked by the test Fulcio.

sigstore-python only reads a token's claims; our Fulcio checks the signature as the real one
does (against the test provider's key), so a forged or tampered token is refused.
"""

from __future__ import annotations

import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from .ca import Identity

AUDIENCE = "sigstore"
DEFAULT_ISSUER = "https://oidc.dssesign.test"
DEFAULT_SUBJECT = "signer@dssesign.test"


class TokenError(Exception):
    """A token the test Fulcio refuses."""


class TestOIDCProvider:
    """Issues and checks identity tokens for any issuer URL, signed with one test key."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    def token(
        self,
        subject: str = DEFAULT_SUBJECT,
        issuer: str = DEFAULT_ISSUER,
        *,
        lifetime: int = 600,
        audience: str = AUDIENCE,
        issued_at: int | None = None,
    ) -> str:
        """A signed JWT; an email-like subject also goes into the `email` claim."""
        now = int(time.time()) if issued_at is None else issued_at
        claims: dict[str, object] = {
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
        }
        if "@" in subject and ":" not in subject:
            claims["email"] = subject
            claims["email_verified"] = True
        return jwt.encode(claims, self._key, algorithm="ES256")

    def verify(self, token: str) -> Identity:
        """The identity a valid token names; TokenError otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["ES256"],
                audience=AUDIENCE,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid identity token: {exc}") from None
        email = claims.get("email")
        if isinstance(email, str):
            if claims.get("email_verified") is not True:
                raise TokenError("email in identity token is not verified")
            return Identity(issuer=str(claims["iss"]), subject=email, is_email=True)
        return Identity(issuer=str(claims["iss"]), subject=str(claims["sub"]), is_email=False)
