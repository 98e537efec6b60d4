"""Bearer tokens: the matrix a JWT verifier must get right, with real keys made by
cryptography, and the JWKS files it must refuse. Every refusal carries one fixed reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import jwt.algorithms
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from dssesign.errors import ConfigError, DssesignError
from dssesign.serve.config import AuthConfig
from dssesign.serve.tokens import MAX_TOKEN_BYTES, REASONS, Principal, TokenError, TokenVerifier

ISSUER = "https://issuer.example"
AUDIENCE = "dssesign"
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class Signer:
    kid: str
    alg: str
    private: PrivateKey

    def jwk(self, **extra: Any) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, rsa.RSAPublicKey):
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = jwt.algorithms.OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", **extra}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    return {
        "ES256": Signer("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1())),
        "RS256": Signer("rsa-1", "RS256", rsa.generate_private_key(65537, 2048)),
        "EdDSA": Signer("ed-1", "EdDSA", ed25519.Ed25519PrivateKey.generate()),
    }


def _write_jwks(path: Path, keys: list[Any]) -> Path:
    path.write_text(json.dumps({"keys": keys}))
    return path


def _auth(jwks: Path, **changes: Any) -> AuthConfig:
    fields: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": jwks} | changes
    return AuthConfig(**fields)


@pytest.fixture
def verifier(tmp_path: Path, signers: dict[str, Signer]) -> TokenVerifier:
    jwks = _write_jwks(tmp_path / "jwks.json", [s.jwk() for s in signers.values()])
    return TokenVerifier(_auth(jwks))


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "ci@team-a",
        "tenant": "team-a",
        "scope": "sign verify",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _token(signer: Signer, claims: dict[str, Any] | None = None, **headers: Any) -> str:
    header = {"kid": signer.kid} | headers
    return jwt.encode(
        claims if claims is not None else _claims(),
        signer.private,
        algorithm=signer.alg,
        headers={k: v for k, v in header.items() if v is not None},
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())


def _signed_raw(signer: Signer, header: dict[str, Any]) -> str:
    """A correctly signed token with a header PyJWT's encoder would not write."""
    signing_input = _segments(header, _claims())
    signature = jwt.algorithms.get_default_algorithms()[signer.alg].sign(
        signing_input.encode(), signer.private
    )
    return signing_input + "." + _b64(signature)


def _refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenError) as caught:
        verifier.verify(token)
    error = caught.value
    assert isinstance(error, DssesignError)
    assert str(error) == error.reason and error.reason in REASONS
    return error.reason


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_a_valid_token_of_each_algorithm(
    verifier: TokenVerifier, signers: dict[str, Signer], alg: str
) -> None:
    claims = _claims()
    principal = verifier.verify(_token(signers[alg], claims))
    assert principal == Principal(
        subject="ci@team-a",
        tenant="team-a",
        scopes=frozenset({"sign", "verify"}),
        issuer=ISSUER,
        expires=datetime.fromtimestamp(claims["exp"], UTC),
    )


def test_time_claims_and_the_leeway(verifier: TokenVerifier, signers: dict[str, Signer]) -> None:
    es = signers["ES256"]
    now = int(time.time())
    assert _refused(verifier, _token(es, _claims(exp=now - 120))) == "token expired"
    verifier.verify(_token(es, _claims(exp=now - 10)))  # within the 30 s leeway: still valid
    assert _refused(verifier, _token(es, _claims(nbf=now + 600))) == "token not yet valid"
    verifier.verify(_token(es, _claims(nbf=now + 10)))
    assert _refused(verifier, _token(es, _claims(iat=now + 600))) == "token not yet valid"
    assert _refused(verifier, _token(es, _claims(exp=None))) == "malformed token"  # exp required
    assert _refused(verifier, _token(es, _claims(exp=str(now + 300)))) == "malformed token"


def test_issuer_is_exact(verifier: TokenVerifier, signers: dict[str, Signer]) -> None:
    es = signers["ES256"]
    for issuer in ("https://evil.example", ISSUER + "/", ISSUER.upper(), None):
        assert _refused(verifier, _token(es, _claims(iss=issuer))) == "wrong issuer"


def test_audience_string_or_list(verifier: TokenVerifier, signers: dict[str, Signer]) -> None:
    es = signers["ES256"]
    verifier.verify(_token(es, _claims(aud=["other", AUDIENCE])))
    for audience in ("other", ["other", "dssesign2"], None, "dssesign "):
        assert _refused(verifier, _token(es, _claims(aud=audience))) == "wrong audience"


def test_scopes_and_tenant(verifier: TokenVerifier, signers: dict[str, Signer]) -> None:
    es = signers["ES256"]
    no_scope = verifier.verify(_token(es, _claims(scope=None, tenant=None)))
    assert no_scope.scopes == frozenset()
    assert no_scope.tenant is None
    assert verifier.verify(_token(es, _claims(scope=" a  b "))).scopes == {"a", "b"}
    assert verifier.verify(_token(es, _claims(scope=None, scp=["x", "y"]))).scopes == {"x", "y"}
    assert verifier.verify(_token(es, _claims(scope=None, scp="x y"))).scopes == {"x", "y"}
    assert verifier.verify(_token(es, _claims(scope="x y", scp=["y", "x"]))).scopes == {"x", "y"}
    for bad in ({"scope": ["sign"]}, {"scope": None, "scp": [1]}, {"scope": "a", "scp": ["b"]}):
        assert _refused(verifier, _token(es, _claims(**bad))) == "malformed token", bad
    for tenant in (["team-a"], 7, ""):
        assert _refused(verifier, _token(es, _claims(tenant=tenant))) == "malformed token"
    assert _refused(verifier, _token(es, _claims(sub=None))) == "malformed token"


def test_the_tenant_claim_is_configurable(tmp_path: Path, signers: dict[str, Signer]) -> None:
    es = signers["ES256"]
    jwks = _write_jwks(tmp_path / "jwks.json", [es.jwk()])
    verifier = TokenVerifier(_auth(jwks, tenant_claim="org"))
    assert verifier.verify(_token(es, _claims(org="team-b"))).tenant == "team-b"
    assert verifier.verify(_token(es, _claims())).tenant is None  # `tenant` is not the claim


def test_alg_none_is_refused(verifier: TokenVerifier, signers: dict[str, Signer]) -> None:
    for alg in ("none", "None", "NONE"):
        unsigned = _segments({"alg": alg, "kid": "ec-1", "typ": "JWT"}, _claims()) + "."
        assert _refused(verifier, unsigned) == "algorithm not allowed"


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = _segments(header, claims)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


@pytest.mark.parametrize("form", ["pem", "jwk-json", "raw-x"])
def test_hs256_keyed_with_the_published_public_key_is_refused(
    verifier: TokenVerifier, signers: dict[str, Signer], form: str
) -> None:
    """Algorithm confusion: the attacker knows the public key and uses it as an HMAC secret."""
    for signer in signers.values():
        secret = {
            "pem": signer.public_pem(),
            "jwk-json": json.dumps(signer.jwk()).encode(),
            "raw-x": base64.urlsafe_b64decode(signer.jwk().get("x", "AA") + "=="),
        }[form]
        forged = _hs256({"alg": "HS256", "kid": signer.kid, "typ": "JWT"}, _claims(), secret)
        assert _refused(verifier, forged) == "algorithm not allowed"


def test_an_hmac_algorithm_cannot_be_configured_around_load_config(tmp_path: Path) -> None:
    jwks = _write_jwks(tmp_path / "jwks.json", [])
    with pytest.raises(ConfigError, match="only asymmetric algorithms"):
        TokenVerifier(_auth(jwks, algorithms=("ES256", "HS256")))


def test_key_selection(tmp_path: Path, verifier: TokenVerifier, signers: dict[str, Signer]) -> None:
    es = signers["ES256"]
    assert _refused(verifier, _token(es, kid="ec-2")) == "unknown key"
    assert _refused(verifier, _token(es, kid=None)) == "unknown key"  # three keys: ambiguous
    assert _refused(verifier, _signed_raw(es, {"alg": "ES256", "kid": ["ec-1"]})) == (
        "malformed token"
    )
    single = TokenVerifier(_auth(_write_jwks(tmp_path / "one.json", [es.jwk(kid=None)])))
    assert single.verify(_token(es, kid=None)).subject == "ci@team-a"  # one key: that one
    assert _refused(single, _token(es)) == "unknown key"  # a kid the JWKS does not have


def test_a_tampered_payload_is_refused(verifier: TokenVerifier, signers: dict[str, Signer]) -> None:
    for signer in signers.values():
        header, _, signature = _token(signer).split(".")
        forged_claims = _b64(json.dumps(_claims(sub="admin", tenant="team-b")).encode())
        assert _refused(verifier, f"{header}.{forged_claims}.{signature}") == "bad signature"


def test_an_attacker_key_embedded_in_the_header_is_ignored(
    verifier: TokenVerifier, signers: dict[str, Signer]
) -> None:
    attacker = Signer("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1()))
    token = _token(attacker, jwk=attacker.jwk(), jku="https://evil.example/jwks")
    assert _refused(verifier, token) == "bad signature"


def test_alg_must_fit_the_selected_key(
    tmp_path: Path, verifier: TokenVerifier, signers: dict[str, Signer]
) -> None:
    # ES256 signed by the EC key (a valid ES256 signature) but the kid names the RSA key
    mismatched = _token(signers["ES256"], kid="rsa-1")
    assert _refused(verifier, mismatched) == "algorithm not allowed"
    assert _refused(verifier, _token(signers["RS256"], kid="ed-1")) == "algorithm not allowed"
    assert _refused(verifier, _token(signers["EdDSA"], kid="ec-1")) == "algorithm not allowed"
    # an allowed algorithm for the key type, narrowed by the JWK's own `alg`
    rs = signers["RS256"]
    jwks = _write_jwks(tmp_path / "pinned.json", [rs.jwk(alg="RS256")])
    pinned = TokenVerifier(_auth(jwks, algorithms=("RS256", "PS256")))
    ps256 = jwt.encode(_claims(), rs.private, algorithm="PS256", headers={"kid": rs.kid})
    assert _refused(pinned, ps256) == "algorithm not allowed"
    unpinned = TokenVerifier(
        _auth(_write_jwks(tmp_path / "rsa.json", [rs.jwk()]), algorithms=("RS256", "PS256"))
    )
    assert unpinned.verify(ps256).subject == "ci@team-a"


def test_an_algorithm_off_the_allow_list_is_refused(
    tmp_path: Path, signers: dict[str, Signer]
) -> None:
    jwks = _write_jwks(tmp_path / "jwks.json", [s.jwk() for s in signers.values()])
    es_only = TokenVerifier(_auth(jwks, algorithms=("ES256",)))
    assert es_only.verify(_token(signers["ES256"])).tenant == "team-a"
    assert _refused(es_only, _token(signers["EdDSA"])) == "algorithm not allowed"
    assert _refused(es_only, _token(signers["RS256"])) == "algorithm not allowed"


def test_size_is_bounded_before_parsing(
    verifier: TokenVerifier, signers: dict[str, Signer]
) -> None:
    ed = signers["EdDSA"]

    def padded(pad: int) -> str:
        return _token(ed, _claims(pad="p" * pad))

    pad = (MAX_TOKEN_BYTES - len(padded(0))) * 3 // 4 - 8  # base64url: 4 chars per 3 bytes
    while len(padded(pad + 1)) <= MAX_TOKEN_BYTES:
        pad += 1
    largest, next_one = padded(pad), padded(pad + 1)
    assert len(largest) <= MAX_TOKEN_BYTES < len(next_one) <= MAX_TOKEN_BYTES + 2
    assert verifier.verify(largest).subject == "ci@team-a"
    # the same token with one more byte of claim: refused for its size alone
    assert _refused(verifier, next_one) == "malformed token"
    assert _refused(verifier, "x" * 10_000_000) == "malformed token"


def test_missing_and_malformed(verifier: TokenVerifier, signers: dict[str, Signer]) -> None:
    assert _refused(verifier, "") == "missing token"
    for junk in ("abc", "a.b.c", "a.b", "....", _token(signers["ES256"]) + "é"):
        assert _refused(verifier, junk) == "malformed token", junk
    header_list = _b64(b"[1]") + "." + _b64(json.dumps(_claims()).encode()) + ".c2ln"
    assert _refused(verifier, header_list) == "malformed token"
    crit = _token(signers["ES256"], crit=["exp"])
    assert _refused(verifier, crit) == "malformed token"  # an extension it does not know


def test_no_reason_echoes_the_token(verifier: TokenVerifier, signers: dict[str, Signer]) -> None:
    marker = "MARKER-4711"
    es = signers["ES256"]
    tokens = [
        _token(es, _claims(iss=marker)),
        _token(es, _claims(aud=marker)),
        _token(es, kid=marker),
        _token(es, _claims(exp=int(time.time()) - 999, sub=marker)),
        marker,
    ]
    for token in tokens:
        with pytest.raises(TokenError) as caught:
            verifier.verify(token)
        assert marker not in str(caught.value) and marker not in repr(caught.value)
        error = caught.value  # no chained PyJWT message either
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


def test_token_error_takes_only_a_known_reason() -> None:
    with pytest.raises(ValueError, match="not a token refusal reason"):
        TokenError("signature of eyJhbGciOi... is wrong")


def _jwk_of(public: Any) -> dict[str, Any]:
    if isinstance(public, ec.EllipticCurvePublicKey):
        return jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    if isinstance(public, rsa.RSAPublicKey):
        return jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    return jwt.algorithms.OKPAlgorithm.to_jwk(public, as_dict=True)


def test_jwks_refusals(tmp_path: Path, signers: dict[str, Signer]) -> None:
    es = signers["ES256"]
    small_rsa = _jwk_of(rsa.generate_private_key(65537, 1024).public_key())
    p521 = _jwk_of(ec.generate_private_key(ec.SECP521R1()).public_key())
    ed448_jwk = _jwk_of(ed448.Ed448PrivateKey.generate().public_key())
    private_ec = jwt.algorithms.ECAlgorithm.to_jwk(
        ec.generate_private_key(ec.SECP256R1()), as_dict=True
    )
    cases: list[tuple[Any, str]] = [
        ({"keys": [{"kty": "oct", "k": _b64(b"secret" * 6), "kid": "h"}]}, "symmetric (oct)"),
        ({"keys": [private_ec]}, "private key material (d)"),
        ({"keys": [small_rsa]}, "RSA key of 1024 bits"),
        ({"keys": [p521]}, "P-256 or P-384"),
        ({"keys": [ed448_jwk]}, "OKP keys must be Ed25519"),
        ({"keys": [es.jwk(), es.jwk()]}, "two keys share a kid"),
        ({"keys": [es.jwk(use="enc")]}, "not a signature key"),
        ({"keys": [es.jwk(key_ops=["encrypt"])]}, "key_ops"),
        ({"keys": [es.jwk(alg="RS256")]}, "alg 'RS256' does not fit a EC key"),
        ({"keys": [es.jwk(x="AAAA")]}, "not a valid EC key"),
        ({"keys": [{"kty": "EC"}]}, "P-256 or P-384"),
        ({"keys": [{"kty": "XYZ"}]}, "kty must be EC, RSA or OKP"),
        ({"keys": ["not an object"]}, "not a JSON object"),
        ({"keys": []}, "not a JWKS"),
        ([es.jwk()], "not a JWKS"),
        ({"keys": [signers["RS256"].jwk()]}, "no key can verify any of the allowed algorithms"),
    ]
    for document, expected in cases:
        jwks = tmp_path / "jwks.json"
        jwks.write_text(json.dumps(document))
        with pytest.raises(ConfigError) as caught:
            TokenVerifier(_auth(jwks, algorithms=("ES256", "EdDSA")))
        assert expected in str(caught.value), (expected, str(caught.value))
        assert "auth.jwks_file" in str(caught.value)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        TokenVerifier(_auth(tmp_path / "bad.json"))
    with pytest.raises(ConfigError, match="no such file"):
        TokenVerifier(_auth(tmp_path / "absent.json"))
