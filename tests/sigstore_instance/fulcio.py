"""Fulcio's `/api/v2/signingCert`: an OIDC token plus a CSR in, a leaf + chain out."""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .ca import TestCA
from .oidc import TestOIDCProvider, TokenError


class FulcioError(Exception):
    """A refused request; `status` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Fulcio:
    """Checks the token (signature, audience, expiry) and the CSR's proof of possession."""

    def __init__(self, ca: TestCA, oidc: TestOIDCProvider) -> None:
        self._ca = ca
        self._oidc = oidc
        #: How many certificates were issued (tests check signing reused one certificate).
        self.issued = 0

    def signing_cert(self, authorization: str | None, request: object) -> dict[str, Any]:
        if not authorization or not authorization.startswith("Bearer "):
            raise FulcioError(401, "missing bearer token")
        try:
            identity = self._oidc.verify(authorization.removeprefix("Bearer ").strip())
        except TokenError as exc:
            raise FulcioError(401, str(exc)) from None
        csr = self._csr(request)
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise FulcioError(400, "only ECDSA keys are supported by this test Fulcio")
        leaf = self._ca.issue(public_key, identity)
        self.issued += 1
        chain = [leaf, *self._ca.chain]
        pems = [cert.public_bytes(serialization.Encoding.PEM).decode() for cert in chain]
        return {"signedCertificateEmbeddedSct": {"chain": {"certificates": pems}}}

    def trust_bundle(self) -> dict[str, Any]:
        pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in self._ca.chain]
        return {"chains": [{"certificates": pems}]}

    @staticmethod
    def _csr(request: object) -> x509.CertificateSigningRequest:
        if not isinstance(request, dict) or not isinstance(
            request.get("certificateSigningRequest"), str
        ):
            raise FulcioError(400, "request needs certificateSigningRequest")
        try:
            pem = base64.b64decode(request["certificateSigningRequest"], validate=True)
            csr = x509.load_pem_x509_csr(pem)
        except ValueError as exc:
            raise FulcioError(400, f"unreadable CSR: {exc}") from None
        if not csr.is_signature_valid:
            raise FulcioError(400, "CSR signature does not verify (no proof of possession)")
        return csr
