"""RFC 3161 trusted time against a real TSA (`openssl ts -reply` on 127.0.0.1), no mocks.

Each adversarial case asserts its exact code; tools dssesign did not write (openssl ts -verify,
rfc3161-client) check the tokens it accepts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
import rfc3161_client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from dssesign.codes import Code
from dssesign.errors import ConfigError, SigningError, TrustRootError, VerificationError
from dssesign.sign.timestamps import request_timestamp, request_timestamps
from dssesign.timestamp import (
    MAX_TIMESTAMPS,
    MAX_TOKEN_BYTES,
    TimestampAuthority,
    VerifiedTime,
    load_pem_chain,
    verify_token,
    verify_tokens,
)
from tests.conftest import FIXTURES
from tests.tsa import (
    Credentials,
    Tsa,
    der,
    der_int,
    der_oid,
    der_seq,
    der_set,
    make_ca,
    make_tsa_certificate,
    openssl_binary,
    resign,
    signature_algorithm_span,
    tst_info_der,
)

DAY = timedelta(days=1)


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def signature() -> bytes:
    return os.urandom(71)  # the size of an ECDSA P-256 DER signature


@pytest.fixture
def stamped(tsa: Tsa, signature: bytes) -> bytes:
    """A token for `signature` from the session TSA, checked at signing time."""
    return request_timestamp(tsa.url, signature, timeout=30, authorities=[tsa.authority()])


def _code(call: Callable[[], object]) -> Code:
    with pytest.raises(VerificationError) as caught:
        call()
    return caught.value.code


def _verify(token: bytes, signature: bytes, authorities: list[TimestampAuthority]) -> Code:
    return _code(lambda: verify_token(token, signature, authorities, now=_now()))


# --- round trip and interoperability ---------------------------------------------------------


def test_a_token_requested_from_a_real_tsa_verifies(
    tsa: Tsa, signature: bytes, stamped: bytes
) -> None:
    before = _now().replace(microsecond=0)
    token = request_timestamp(tsa.url, signature, timeout=30, authorities=[tsa.authority()])
    verified = verify_token(token, signature, [tsa.authority("main")], now=_now())
    assert verified.authority == "main"
    assert verified.hash_algorithm == "sha256"
    assert before <= verified.time <= _now()
    assert verified.serial_number > 0
    other = verify_token(stamped, signature, [tsa.authority()], now=_now())
    assert other.serial_number != verified.serial_number  # every reply has its own serial


def test_openssl_ts_verify_accepts_the_token(
    tsa: Tsa, signature: bytes, stamped: bytes, tmp_path: Path
) -> None:
    (tmp_path / "token.tsr").write_bytes(stamped)
    result = subprocess.run(
        [
            *(openssl_binary(), "ts", "-verify", "-digest", hashlib.sha256(signature).hexdigest()),
            *("-in", str(tmp_path / "token.tsr"), "-CAfile", str(tsa.ca_path)),
            *("-untrusted", str(tsa.tsa_cert_path)),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stdout
    # ... and refuses it for other bytes: the check above is not vacuous.
    wrong = subprocess.run(
        [
            *(openssl_binary(), "ts", "-verify", "-digest", hashlib.sha256(b"other").hexdigest()),
            *("-in", str(tmp_path / "token.tsr"), "-CAfile", str(tsa.ca_path)),
            *("-untrusted", str(tsa.tsa_cert_path)),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert wrong.returncode != 0


def test_rfc3161_client_parses_and_verifies_the_token(
    tsa: Tsa, signature: bytes, stamped: bytes
) -> None:
    response = rfc3161_client.decode_timestamp_response(stamped)
    assert response.status == rfc3161_client.PKIStatus.GRANTED
    assert response.tst_info.message_imprint.message == hashlib.sha256(signature).digest()
    assert len(response.signed_data.certificates) == 1  # the signer only (see tests/tsa.py)
    verifier = (
        rfc3161_client.VerifierBuilder()
        .tsa_certificate(tsa.signer.certificate)
        .add_root_certificate(tsa.ca.certificate)
        .build()
    )
    assert verifier.verify_message(response, signature)
    with pytest.raises(rfc3161_client.VerificationError):
        verifier.verify_message(response, signature + b"x")


def test_rsa_tsa_tokens_verify(tsa: Tsa, signature: bytes) -> None:
    rsa_tsa = tsa.make_tsa(key_type="rsa")
    token = request_timestamp(rsa_tsa.url, signature, timeout=30)
    assert verify_token(token, signature, [rsa_tsa.authority("rsa")], now=_now()).authority == "rsa"


@pytest.mark.parametrize(("digest", "name"), [("sha384", "sha384"), ("sha512", "sha512")])
def test_stronger_imprints_verify(tsa: Tsa, signature: bytes, digest: str, name: str) -> None:
    token = tsa.post(tsa.query(signature, digest=digest))
    assert verify_token(token, signature, [tsa.authority()], now=_now()).hash_algorithm == name


def test_a_tsa_certificate_rotated_under_the_same_ca_still_verifies(
    tsa: Tsa, signature: bytes
) -> None:
    """The chain is the trust: a new TSA certificate issued by the listed CA counts."""
    sibling = tsa.make_tsa()
    token = request_timestamp(sibling.url, signature, timeout=30)
    assert verify_token(token, signature, [tsa.authority("main")], now=_now()).authority == "main"


def test_many_signatures_are_timestamped_in_about_one_round_trip(tsa: Tsa) -> None:
    slow = tsa.make_tsa()
    slow.delay = 0.5  # a distant TSA: the round trip dominates openssl's own work
    signatures = [os.urandom(64) for _ in range(8)]
    started = time.perf_counter()
    request_timestamp(slow.url, signatures[0], timeout=30)
    one = time.perf_counter() - started
    started = time.perf_counter()
    results = request_timestamps([slow.url], signatures, timeout=30, authorities=[tsa.authority()])
    elapsed = time.perf_counter() - started
    assert elapsed < 1.5 * one, (elapsed, one)
    for index, entry in enumerate(results):
        assert isinstance(entry, tuple) and len(entry) == 1
        for token in entry:
            assert verify_token(token, signatures[index], [tsa.authority()], now=_now())
            other = signatures[index - 1]
            assert _verify(token, other, [tsa.authority()]) is Code.TIMESTAMP_MISMATCH


def test_one_failing_signature_does_not_sink_the_others(tsa: Tsa) -> None:
    results = request_timestamps(["http://127.0.0.1:9/none"], [b"a", b"b"], timeout=5)
    assert all(isinstance(r, SigningError) and "127.0.0.1:9" in str(r) for r in results)
    assert request_timestamps([tsa.url], [], timeout=5) == []
    assert request_timestamps([], [b"a"], timeout=5) == [()]


_CONFORMANCE = FIXTURES / "sigstore-conformance" / "assets"


def _sigstore_case(name: str) -> tuple[list[bytes], bytes, list[TimestampAuthority]]:
    """A conformance bundle's tokens, its signature, and its trusted root's TSAs."""
    directory = _CONFORMANCE / "bundle-verify" / name
    bundle = json.loads((directory / "bundle.sigstore.json").read_text())
    root = json.loads((directory / "trusted_root.json").read_text())
    material = bundle["verificationMaterial"]["timestampVerificationData"]
    tokens = [base64.b64decode(t["signedTimestamp"]) for t in material["rfc3161Timestamps"]]
    if "dsseEnvelope" in bundle:
        signature = base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"])
    else:
        signature = base64.b64decode(bundle["messageSignature"]["signature"])
    authorities = []
    for index, entry in enumerate(root["timestampAuthorities"]):
        chain = tuple(
            x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"]))
            for c in entry["certChain"]["certificates"]
        )
        start, end = (entry["validFor"].get(key) for key in ("start", "end"))
        authorities.append(
            TimestampAuthority(
                name=f"sigstore-{index}",
                chain=chain,
                valid_from=datetime.fromisoformat(start).replace(microsecond=0) if start else None,
                valid_until=datetime.fromisoformat(end).replace(microsecond=0) if end else None,
            )
        )
    return tokens, signature, authorities


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("rekor2-timestamp-with-embedded-cert", Code.OK),
        ("rekor2-timestamp-without-embedded-cert", Code.OK),  # the trust root's leaf signs
        ("rekor2-timestamp-with-expired-cert-chain", Code.OK),  # judged at the token's time
        ("trust-root-tsa-validity-end-inclusive", Code.OK),
        ("rekor2-timestamp-outside-trust-root-tsa-validity_fail", Code.TIMESTAMP_UNTRUSTED),
        ("rekor2-timestamp-outside-tsa-cert-validity_fail", Code.TIMESTAMP_UNTRUSTED),
        ("rekor2-timestamp-payload-mismatch_fail", Code.TIMESTAMP_MISMATCH),
        ("rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail", Code.TIMESTAMP_UNTRUSTED),
        # Its SignedData certificate SET is not in DER order: strict parsing refuses it.
        ("rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail", Code.TIMESTAMP_INVALID),
    ],
)
def test_tokens_from_sigstore_tsas_are_judged_as_sigstore_judges_them(
    case: str, expected: Code
) -> None:
    """Real tokens (Sigstore's TSA, ECDSA P-384, intermediate CA with a timeStamping EKU)."""
    tokens, signature, authorities = _sigstore_case(case)
    for token in tokens:
        if expected is Code.OK:
            verified = verify_token(token, signature, authorities, now=_now())
            assert verified.authority.startswith("sigstore-")
        else:
            assert _verify(token, signature, authorities) is expected


# --- adversarial: each with its exact code ----------------------------------------------------


def test_a_token_over_another_signature_is_a_mismatch(
    tsa: Tsa, signature: bytes, stamped: bytes
) -> None:
    assert _verify(stamped, signature[:-1], [tsa.authority()]) is Code.TIMESTAMP_MISMATCH
    assert _verify(stamped, os.urandom(71), [tsa.authority()]) is Code.TIMESTAMP_MISMATCH


def test_a_token_over_the_payload_instead_of_the_signature_is_a_mismatch(
    tsa: Tsa, signature: bytes
) -> None:
    payload = b'{"_type":"https://in-toto.io/Statement/v1"}'
    token = request_timestamp(tsa.url, payload, timeout=30)
    assert verify_token(token, payload, [tsa.authority()], now=_now())  # a real token...
    assert _verify(token, signature, [tsa.authority()]) is Code.TIMESTAMP_MISMATCH  # ...of that


def test_a_tsa_not_in_the_trust_root_is_untrusted(tsa: Tsa, signature: bytes) -> None:
    stranger = tsa.make_tsa(own_ca=True)
    token = request_timestamp(stranger.url, signature, timeout=30)
    assert verify_token(token, signature, [stranger.authority()], now=_now())
    assert _verify(token, signature, [tsa.authority()]) is Code.TIMESTAMP_UNTRUSTED
    assert _verify(token, signature, []) is Code.TIMESTAMP_UNTRUSTED


def test_a_tsa_certificate_expired_at_the_token_time_is_untrusted(
    tsa: Tsa, signature: bytes
) -> None:
    expired = tsa.make_tsa(not_before=_now() - 10 * DAY, not_after=_now() - DAY)
    token = request_timestamp(expired.url, signature, timeout=30)  # openssl signs regardless
    with pytest.raises(VerificationError) as caught:
        verify_token(token, signature, [expired.authority()], now=_now())
    assert caught.value.code is Code.TIMESTAMP_UNTRUSTED
    assert "not valid at the token's time" in str(caught.value)


def test_a_tsa_certificate_not_yet_valid_at_the_token_time_is_untrusted(
    tsa: Tsa, signature: bytes
) -> None:
    early = tsa.make_tsa(not_before=_now() + DAY, not_after=_now() + 30 * DAY)
    token = request_timestamp(early.url, signature, timeout=30)
    assert _verify(token, signature, [early.authority()]) is Code.TIMESTAMP_UNTRUSTED


def test_the_certificate_is_judged_at_the_token_time_not_now(tsa: Tsa, signature: bytes) -> None:
    # Expired now, valid when the (re-signed, moved) token says it was made: it counts.
    expired = tsa.make_tsa(not_before=_now() - 10 * DAY, not_after=_now() - DAY)
    genuine = request_timestamp(tsa.url, signature, timeout=30)
    then = (_now() - 5 * DAY).replace(microsecond=0)
    old = resign(genuine, expired.signer, gen_time=then)
    verified = verify_token(old, signature, [expired.authority()], now=_now())
    assert verified.time == then
    # Valid now, but not yet at the token's time: refused.
    before_issue = tsa.signer.certificate.not_valid_before_utc - timedelta(hours=1)
    moved = resign(genuine, tsa.signer, gen_time=before_issue)
    assert _verify(moved, signature, [tsa.authority()]) is Code.TIMESTAMP_UNTRUSTED
    # The re-signing itself is sound: the same token at its own time verifies.
    assert verify_token(resign(genuine, tsa.signer), signature, [tsa.authority()], now=_now())


def test_a_tsa_outside_its_trust_root_window_is_untrusted(
    tsa: Tsa, signature: bytes, stamped: bytes
) -> None:
    at = verify_token(stamped, signature, [tsa.authority()], now=_now()).time
    second = timedelta(seconds=1)
    for authority in (
        tsa.authority(valid_until=at - second),
        tsa.authority(valid_from=at + second),
    ):
        assert _verify(stamped, signature, [authority]) is Code.TIMESTAMP_UNTRUSTED, authority
    # Both ends inclusive.
    edges = tsa.authority(valid_from=at, valid_until=at)
    assert verify_token(stamped, signature, [edges], now=_now()).time == at


def test_a_tsa_revoked_at_or_before_the_token_time_is_untrusted(
    tsa: Tsa, signature: bytes, stamped: bytes
) -> None:
    at = verify_token(stamped, signature, [tsa.authority()], now=_now()).time
    for revoked in (at - DAY, at):
        authority = tsa.authority(revoked_at=revoked)
        assert _verify(stamped, signature, [authority]) is Code.TIMESTAMP_UNTRUSTED, revoked
    later = tsa.authority(revoked_at=at + timedelta(seconds=1))  # a token before it still counts
    assert verify_token(stamped, signature, [later], now=_now()).time == at


def test_a_sha1_imprint_is_refused(tsa: Tsa, signature: bytes) -> None:
    token = tsa.post(tsa.query(signature, digest="sha1"))
    imprint = rfc3161_client.decode_timestamp_response(token).tst_info.message_imprint
    assert imprint.hash_algorithm.dotted_string == "1.3.14.3.2.26"  # the TSA did sign SHA-1
    assert imprint.message == hashlib.sha1(signature).digest()
    assert _verify(token, signature, [tsa.authority()]) is Code.TIMESTAMP_WEAK_HASH


def _tamper(token: bytes, where: str, other: bytes) -> bytes:
    tst = tst_info_der(token)
    start = token.index(tst)
    if where == "tstinfo-nonce":  # the TSTInfo ends with the nonce
        index = start + len(tst) - 1
    elif where == "signing-time":  # the signed attributes' UTCTime, its last seconds digit
        index = token.rindex(b"\x17\x0d") + 2 + 11
    elif where == "signature":
        index = len(token) - 5
    elif where == "certificate":  # inside the embedded signer certificate's own signature
        index = start + len(tst) + 300
    else:  # the imprint rewritten to another signature's hash, as a forger would
        old = hashlib.sha256(other).digest()
        assert tst.count(old) == 0
        imprint = rfc3161_client.decode_timestamp_response(token).tst_info.message_imprint
        return token.replace(imprint.message, old)
    return token[:index] + bytes([token[index] ^ 0x01]) + token[index + 1 :]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("tstinfo-nonce", Code.TIMESTAMP_INVALID),
        ("signing-time", Code.TIMESTAMP_INVALID),
        ("signature", Code.TIMESTAMP_INVALID),
        # The altered certificate no longer carries its CA's signature: the trust checks, which
        # run before the CMS signature, refuse it.
        ("certificate", Code.TIMESTAMP_UNTRUSTED),
        ("imprint", Code.TIMESTAMP_INVALID),
    ],
)
def test_a_tampered_token_is_refused(
    tsa: Tsa, signature: bytes, stamped: bytes, where: str, expected: Code
) -> None:
    other = os.urandom(71)
    tampered = _tamper(stamped, where, other)
    assert tampered != stamped and len(tampered) == len(stamped)
    checked = other if where == "imprint" else signature
    assert _verify(tampered, checked, [tsa.authority()]) is expected


def _flips(token: bytes) -> Iterator[tuple[int, bytes]]:
    for index in range(len(token)):
        for bit in range(8):
            yield index, token[:index] + bytes([token[index] ^ 1 << bit]) + token[index + 1 :]


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_no_single_bit_flip_of_a_token_verifies(
    tsa: Tsa, signature: bytes, key_type: Literal["ec", "rsa"]
) -> None:
    """Every bit of a real token, flipped one at a time: each refused with a timestamp code.

    Every byte, the SignerInfo's signatureAlgorithm too: no signature covers it and OpenSSL's
    PKCS7_verify ignores it, so it is dssesign's own check that refuses it.
    """
    signer = tsa if key_type == "ec" else tsa.make_tsa(key_type="rsa")
    token = request_timestamp(signer.url, signature, timeout=30)
    authorities = [signer.authority()]
    now = _now()
    verify_token(token, signature, authorities, now=now)
    refused = {
        Code.TIMESTAMP_INVALID,
        Code.TIMESTAMP_WEAK_HASH,
        Code.TIMESTAMP_UNTRUSTED,
        Code.TIMESTAMP_MISMATCH,
        Code.TIMESTAMP_IN_FUTURE,
    }
    flips, accepted, codes = 0, [], set()
    for index, flipped in _flips(token):
        flips += 1
        try:
            verify_token(flipped, signature, authorities, now=now)
        except VerificationError as exc:
            codes.add(exc.code)
        else:
            accepted.append(index)
    assert flips == 8 * len(token)
    assert accepted == [], sorted(set(accepted))
    assert codes <= refused, codes
    assert Code.TIMESTAMP_INVALID in codes and Code.TIMESTAMP_UNTRUSTED in codes


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_a_flipped_signature_algorithm_is_refused(
    tsa: Tsa, signature: bytes, key_type: Literal["ec", "rsa"]
) -> None:
    signer = tsa if key_type == "ec" else tsa.make_tsa(key_type="rsa")
    token = request_timestamp(signer.url, signature, timeout=30)
    span = signature_algorithm_span(token)
    # The OID's last byte (ECDSA: no parameters; RSA: before its NULL).
    last = span[-1] if key_type == "ec" else span[-3]
    flipped = token[:last] + bytes([token[last] ^ 0x01]) + token[last + 1 :]
    assert _verify(flipped, signature, [signer.authority()]) is Code.TIMESTAMP_INVALID


def test_a_signer_certificate_swapped_for_another_of_the_same_key_is_refused(
    tsa: Tsa, signature: bytes, stamped: bytes
) -> None:
    """The ESS signingCertificateV2 names the certificate the TSA signed with; the token here
    embeds (and its SignerInfo names) another certificate the CA issued for the same key."""
    other = make_tsa_certificate(tsa.ca, key=tsa.signer.key)
    swapped = resign(stamped, Credentials(other.certificate, tsa.signer.key), ess=tsa.chain[0])
    honest = resign(stamped, Credentials(other.certificate, tsa.signer.key))
    assert verify_token(honest, signature, [tsa.authority()], now=_now())
    assert _verify(swapped, signature, [tsa.authority()]) is Code.TIMESTAMP_INVALID


_HASH_OIDS = {
    "sha1": "1.3.14.3.2.26",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}


def _ess(
    certificate: x509.Certificate,
    *,
    v1: bool = False,
    hash_name: str = "sha256",
    issuer: x509.Name | None = None,
    serial: int | None = None,
) -> bytes:
    """An ESS signingCertificateV2 (or, `v1`, signingCertificate) attribute naming
    `certificate`, with an issuerSerial when `serial` is given."""
    cert_der = certificate.public_bytes(serialization.Encoding.DER)
    fields = [der(0x04, hashlib.new("sha1" if v1 else hash_name, cert_der).digest())]
    if not v1 and hash_name != "sha256":  # DER leaves the default SHA-256 out
        fields.insert(0, der_seq(der_oid(_HASH_OIDS[hash_name])))
    if serial is not None:
        names = der_seq(der(0xA4, (issuer or certificate.issuer).public_bytes()))
        fields.append(der_seq(names, der_int(serial)))
    oid = "1.2.840.113549.1.9.16.2." + ("12" if v1 else "47")
    return der_seq(der_oid(oid), der_set(der_seq(der_seq(der_seq(*fields)))))


def _cms(
    token: bytes,
    signer: Credentials,
    attributes: list[bytes] | None = None,
    *,
    algorithm: bytes | None = None,
    embed: bool = True,
) -> bytes:
    """`token`'s TSTInfo signed (SHA-256) by `signer`, with these signed attributes besides
    contentType and messageDigest (by default a signingCertificateV2 naming the signer) and
    this signatureAlgorithm (by default ecdsa-with-SHA256 or sha256WithRSAEncryption)."""
    tst = tst_info_der(token)
    cert = signer.certificate
    sha256 = der_seq(der_oid(_HASH_OIDS["sha256"]), der(0x05, b""))
    signed = der_set(
        der_seq(der_oid("1.2.840.113549.1.9.3"), der_set(der_oid("1.2.840.113549.1.9.16.1.4"))),
        der_seq(der_oid("1.2.840.113549.1.9.4"), der_set(der(0x04, hashlib.sha256(tst).digest()))),
        *(attributes if attributes is not None else [_ess(cert)]),
    )
    if isinstance(signer.key, ec.EllipticCurvePrivateKey):
        default = der_seq(der_oid("1.2.840.10045.4.3.2"))
        value = signer.key.sign(signed, ec.ECDSA(hashes.SHA256()))
    else:
        default = der_seq(der_oid("1.2.840.113549.1.1.11"), der(0x05, b""))
        value = signer.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    signer_info = der_seq(
        der_int(1),
        der_seq(cert.issuer.public_bytes(), der_int(cert.serial_number)),
        sha256,
        b"\xa0" + signed[1:],
        algorithm or default,
        der(0x04, value),
    )
    signed_data = der_seq(
        der_int(3),
        der_set(sha256),
        der_seq(der_oid("1.2.840.113549.1.9.16.1.4"), der(0xA0, der(0x04, tst))),
        der(0xA0, cert.public_bytes(serialization.Encoding.DER)) if embed else b"",
        der_set(signer_info),
    )
    content_info = der_seq(der_oid("1.2.840.113549.1.7.2"), der(0xA0, signed_data))
    return der_seq(der_seq(der_int(0)), content_info)


def _ess_cases(tsa: Tsa) -> dict[str, tuple[list[bytes], Code]]:
    leaf, serial = tsa.signer.certificate, tsa.signer.certificate.serial_number
    other = make_tsa_certificate(tsa.ca, key=tsa.signer.key).certificate
    stranger = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "someone else")])
    return {
        "v2": ([_ess(leaf)], Code.OK),
        "v2-sha384": ([_ess(leaf, hash_name="sha384")], Code.OK),
        "v2-sha512-issuer-serial": ([_ess(leaf, hash_name="sha512", serial=serial)], Code.OK),
        "v1-sha1": ([_ess(leaf, v1=True)], Code.OK),  # RFC 3161's own signingCertificate
        "v1-issuer-serial": ([_ess(leaf, v1=True, serial=serial)], Code.OK),
        "v2-sha1": ([_ess(leaf, hash_name="sha1")], Code.TIMESTAMP_WEAK_HASH),
        "v2-other-certificate": ([_ess(other)], Code.TIMESTAMP_INVALID),
        "v1-other-certificate": ([_ess(other, v1=True)], Code.TIMESTAMP_INVALID),
        "v2-the-ca": ([_ess(tsa.ca.certificate)], Code.TIMESTAMP_INVALID),
        "v2-other-serial": ([_ess(leaf, serial=serial + 1)], Code.TIMESTAMP_INVALID),
        "v2-other-issuer": ([_ess(leaf, serial=serial, issuer=stranger)], Code.TIMESTAMP_INVALID),
        "none": ([], Code.TIMESTAMP_INVALID),
        "v1-and-v2": ([_ess(leaf), _ess(leaf, v1=True)], Code.TIMESTAMP_INVALID),
        "v2-twice": ([_ess(leaf), _ess(leaf, hash_name="sha384")], Code.TIMESTAMP_INVALID),
        "v2-no-certificate": (
            [der_seq(der_oid("1.2.840.113549.1.9.16.2.47"), der_set(der_seq(der_seq())))],
            Code.TIMESTAMP_INVALID,
        ),
        "v2-not-a-structure": (  # asn1crypto refuses it: an error code, never its exception
            [der_seq(der_oid("1.2.840.113549.1.9.16.2.47"), der_set(der_int(5)))],
            Code.TIMESTAMP_INVALID,
        ),
    }


@pytest.mark.parametrize("embed", [True, False], ids=["embedded", "authority-leaf"])
def test_the_ess_signing_certificate_must_name_the_signer(
    tsa: Tsa, signature: bytes, stamped: bytes, embed: bool
) -> None:
    """Embedded, the certificate the SignerInfo names; else the trusted authority's leaf."""
    for name, (attributes, expected) in _ess_cases(tsa).items():
        token = _cms(stamped, tsa.signer, attributes, embed=embed)
        if expected is Code.OK:
            assert verify_token(token, signature, [tsa.authority()], now=_now()), name
        else:
            assert _verify(token, signature, [tsa.authority()]) is expected, name


def _algorithm(oid: str, parameters: bytes = b"") -> bytes:
    return der_seq(der_oid(oid), parameters)


_ECDSA, _PKCS1, _NULL = "1.2.840.10045.4.", "1.2.840.113549.1.1.", der(0x05, b"")


@pytest.fixture(scope="module")
def rsa_signer(tsa: Tsa) -> Credentials:
    return make_tsa_certificate(tsa.ca, key_type="rsa")


@pytest.mark.parametrize(
    "case",
    [
        ("ec", _algorithm(_ECDSA + "3.2"), Code.OK),
        ("ec", _algorithm(_ECDSA + "3.4"), Code.TIMESTAMP_INVALID),  # SHA-512, not the digest
        ("ec", _algorithm(_ECDSA + "1"), Code.TIMESTAMP_WEAK_HASH),  # SHA-1
        ("ec", _algorithm(_ECDSA + "3.1"), Code.TIMESTAMP_WEAK_HASH),  # SHA-224
        # rfc3161-client's own parse refuses those marked "parse" (parameters its ASN.1
        # definitions forbid); the others reach dssesign's check.
        ("ec", _algorithm(_ECDSA + "3.2", _NULL), Code.TIMESTAMP_INVALID),  # parse
        ("ec", _algorithm(_PKCS1 + "11", _NULL), Code.TIMESTAMP_INVALID),  # not the key's
        ("ec", _algorithm("1.2.840.10045.2.1"), Code.TIMESTAMP_INVALID),  # parse: a key OID
        ("rsa", _algorithm(_PKCS1 + "11", _NULL), Code.OK),
        ("rsa", _algorithm(_PKCS1 + "11"), Code.OK),  # RFC 4055: NULL may be left out
        ("rsa", _algorithm(_PKCS1 + "1", _NULL), Code.OK),  # rsaEncryption, as OpenSSL writes
        ("rsa", _algorithm(_PKCS1 + "13", _NULL), Code.TIMESTAMP_INVALID),  # SHA-512, not it
        ("rsa", _algorithm(_PKCS1 + "5", _NULL), Code.TIMESTAMP_WEAK_HASH),  # SHA-1
        ("rsa", _algorithm(_PKCS1 + "4", _NULL), Code.TIMESTAMP_WEAK_HASH),  # MD5
        ("rsa", _algorithm(_PKCS1 + "10"), Code.TIMESTAMP_INVALID),  # PSS
        ("rsa", _algorithm(_PKCS1 + "11", der(0x04, b"")), Code.TIMESTAMP_INVALID),  # parse
        ("rsa", _algorithm(_ECDSA + "3.2"), Code.TIMESTAMP_INVALID),
    ],
)
def test_the_signature_algorithm_must_fit_the_key_and_digest(
    tsa: Tsa,
    signature: bytes,
    stamped: bytes,
    rsa_signer: Credentials,
    case: tuple[Literal["ec", "rsa"], bytes, Code],
) -> None:
    """No signature covers it and OpenSSL ignores it: dssesign's own check is all there is."""
    key_type, algorithm, expected = case
    signer = tsa.signer if key_type == "ec" else rsa_signer
    token = _cms(stamped, signer, algorithm=algorithm)
    authority = TimestampAuthority(name=key_type, chain=(signer.certificate, tsa.ca.certificate))
    if expected is Code.OK:
        assert verify_token(token, signature, [authority], now=_now())
    else:
        assert _verify(token, signature, [authority]) is expected


_Digest = Literal["sha1", "sha256"]


@pytest.mark.parametrize(
    ("digests", "expected"),
    [
        (("sha1", "sha1"), Code.TIMESTAMP_WEAK_HASH),  # OpenSSL alone would accept this one
        (("sha256", "sha1"), Code.TIMESTAMP_WEAK_HASH),
        # The SignerInfo's SHA-1 hidden behind a SHA-256 digestAlgorithms: OpenSSL finds no
        # digest for the signer and the CMS signature fails.
        (("sha1", "sha256"), Code.TIMESTAMP_INVALID),
    ],
)
def test_a_sha1_cms_digest_is_refused(
    tsa: Tsa, signature: bytes, stamped: bytes, digests: tuple[_Digest, _Digest], expected: Code
) -> None:
    """(the SignerInfo's digestAlgorithm, the SignedData's digestAlgorithms)."""
    weak = resign(stamped, tsa.signer, digest=digests[0], listed=digests[1])
    assert verify_token(resign(stamped, tsa.signer), signature, [tsa.authority()], now=_now())
    assert _verify(weak, signature, [tsa.authority()]) is expected


def test_truncated_or_padded_der_is_invalid(tsa: Tsa, signature: bytes, stamped: bytes) -> None:
    for broken in (stamped[:-1], stamped[: len(stamped) // 2], b"", stamped + b"\x00", b"\x30"):
        assert _verify(broken, signature, [tsa.authority()]) is Code.TIMESTAMP_INVALID
    too_big = b"\x30\x84" + (MAX_TOKEN_BYTES).to_bytes(4, "big") + bytes(MAX_TOKEN_BYTES)
    assert _verify(too_big, signature, [tsa.authority()]) is Code.TIMESTAMP_INVALID


def test_a_rejection_is_invalid(tsa: Tsa, signature: bytes) -> None:
    refusing = tsa.make_tsa(behaviour="reject")
    reply = refusing.post(tsa.query(signature))
    assert rfc3161_client.decode_timestamp_response(reply).status == 2
    assert _verify(reply, signature, [refusing.authority()]) is Code.TIMESTAMP_INVALID


def test_a_token_time_after_the_verification_time_is_refused(
    tsa: Tsa, signature: bytes, stamped: bytes
) -> None:
    at = verify_token(stamped, signature, [tsa.authority()], now=_now()).time
    late = at - timedelta(seconds=1)
    assert _code(lambda: verify_token(stamped, signature, [tsa.authority()], now=late)) is (
        Code.TIMESTAMP_IN_FUTURE
    )
    assert verify_token(stamped, signature, [tsa.authority()], now=at).time == at
    naive = datetime.now()
    assert _code(lambda: verify_token(stamped, signature, [tsa.authority()], now=naive)) is (
        Code.INVALID_ARGUMENT
    )


def test_a_tsa_certificate_without_the_critical_eku_is_untrusted(
    tsa: Tsa, signature: bytes, tmp_path: Path
) -> None:
    lax = tsa.make_tsa(eku_critical=False)
    eku = lax.signer.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical
    token = request_timestamp(lax.url, signature, timeout=30)  # re-signed by its own key
    with pytest.raises(VerificationError) as caught:
        verify_token(token, signature, [lax.authority()], now=_now())
    assert caught.value.code is Code.TIMESTAMP_UNTRUSTED
    assert "not critical" in str(caught.value)
    # Why the test TSA re-signs: OpenSSL itself refuses to sign with such a certificate.
    key = tmp_path / "lax.key"
    key.write_bytes(
        lax.signer.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "lax.pem").write_bytes(lax.tsa_cert_pem)
    (tmp_path / "query.tsq").write_bytes(tsa.query(signature))
    refused = subprocess.run(
        [
            *(openssl_binary(), "ts", "-reply", "-config", str(lax.config)),
            *("-queryfile", str(tmp_path / "query.tsq"), "-out", str(tmp_path / "r.tsr")),
            *("-signer", str(tmp_path / "lax.pem"), "-inkey", str(key)),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "TSA_SERIAL": str(tmp_path / "serial")},
        check=False,
    )
    assert refused.returncode != 0 or not (tmp_path / "r.tsr").exists()
    assert "invalid signer certificate purpose" in refused.stderr.lower()


# --- the signing side refuses what it cannot stand behind -------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        ("wrong-nonce", "nonce"),
        ("other-imprint", "imprint"),
        ("reject", "refused"),
        ("garbage", "not a strict DER"),
    ],
)
def test_a_misbehaving_tsa_fails_the_signature_clearly(
    tsa: Tsa, signature: bytes, behaviour: str, words: str
) -> None:
    bad = tsa.make_tsa(behaviour=behaviour)  # type: ignore[arg-type]
    with pytest.raises(SigningError) as caught:
        request_timestamp(bad.url, signature, timeout=30)
    assert bad.url.removesuffix("/tsa") in str(caught.value)
    assert words in str(caught.value)
    assert bad.requests == 1


def test_a_token_that_would_not_verify_is_never_returned(tsa: Tsa, signature: bytes) -> None:
    stranger = tsa.make_tsa(own_ca=True)
    with pytest.raises(SigningError) as caught:
        request_timestamp(stranger.url, signature, timeout=30, authorities=[tsa.authority()])
    assert "TIMESTAMP_UNTRUSTED" in str(caught.value)


def test_only_http_urls_and_reachable_tsas(signature: bytes) -> None:
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/tsa", "http://", "127.0.0.1:80"):
        with pytest.raises(ConfigError):
            request_timestamp(url, signature, timeout=5)
    with pytest.raises(SigningError) as caught:
        request_timestamp("http://user:secret@127.0.0.1:9/tsa", signature, timeout=5)
    assert "unreachable" in str(caught.value) and "secret" not in str(caught.value)
    with pytest.raises(ConfigError):
        request_timestamp("http://127.0.0.1:9/tsa", b"", timeout=5)


# --- several tokens on one signature -----------------------------------------------------------


def test_several_tokens_verify_and_duplicates_or_too_many_are_refused(
    tsa: Tsa, signature: bytes, stamped: bytes
) -> None:
    second = tsa.make_tsa(own_ca=True)
    other = request_timestamp(second.url, signature, timeout=30)
    authorities = [tsa.authority("a"), second.authority("b")]
    verified = verify_tokens([stamped, other], signature, authorities, now=_now())
    assert [v.authority for v in verified] == ["a", "b"]
    assert all(isinstance(v, VerifiedTime) for v in verified)
    twice = [stamped, stamped]
    assert _code(lambda: verify_tokens(twice, signature, authorities, now=_now())) is (
        Code.TOO_MANY_TIMESTAMPS
    )
    # The same token re-signed (other bytes, same TSA and serial) is still the same token.
    again = [stamped, resign(stamped, tsa.signer)]
    assert _code(lambda: verify_tokens(again, signature, authorities, now=_now())) is (
        Code.TOO_MANY_TIMESTAMPS
    )
    many = [stamped + bytes([i]) for i in range(MAX_TIMESTAMPS + 1)]
    assert _code(lambda: verify_tokens(many, signature, authorities, now=_now())) is (
        Code.TOO_MANY_TIMESTAMPS
    )
    assert verify_tokens([], signature, authorities, now=_now()) == ()
    required = _code(lambda: verify_tokens([], signature, authorities, now=_now(), required=True))
    assert required is Code.TIMESTAMP_REQUIRED


def test_a_bad_token_among_good_ones_is_an_error(
    tsa: Tsa, signature: bytes, stamped: bytes
) -> None:
    tokens = [stamped, stamped[:-1]]
    code = _code(lambda: verify_tokens(tokens, signature, [tsa.authority()], now=_now()))
    assert code is Code.TIMESTAMP_INVALID


# --- the trust root's entry -------------------------------------------------------------------


def test_an_authority_round_trips_through_its_json_form(tsa: Tsa) -> None:
    at = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
    authority = tsa.authority(valid_from=at, valid_until=at + DAY, label="L", revoked_at=at)
    entry = authority.to_dict()
    assert entry["validFrom"] == "2026-01-31T12:00:00Z"
    assert entry["certificateChain"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert TimestampAuthority.from_dict(entry) == authority
    minimal = TimestampAuthority.from_dict(tsa.authority().to_dict())
    assert set(minimal.to_dict()) == {"name", "certificateChain"}
    assert load_pem_chain(tsa.chain_pem) == tsa.chain


def test_a_bad_authority_entry_is_refused_with_its_path(tsa: Tsa) -> None:
    good = tsa.authority().to_dict()
    ca_pem = tsa.ca_pem.decode()
    stranger = make_tsa_certificate(make_ca("elsewhere")).pem.decode()
    cases: list[tuple[object, str]] = [
        ([], "$"),
        ({**good, "extra": 1}, "$"),
        ({"certificateChain": good["certificateChain"]}, "$.name"),
        ({**good, "name": ""}, "$.name"),
        ({**good, "name": "a\u202eb"}, "$.name"),
        ({**good, "certificateChain": []}, "$.certificateChain"),
        ({**good, "certificateChain": [ca_pem] * 9}, "$.certificateChain"),
        ({**good, "certificateChain": ["x" * (70 * 1024)]}, "$.certificateChain[0]"),
        ({**good, "certificateChain": [ca_pem + ca_pem]}, "$.certificateChain[0]"),
        ({**good, "certificateChain": [ca_pem]}, "$.certificateChain[0]"),  # not a TSA
        (
            {**good, "certificateChain": [ca_pem, good["certificateChain"][0]]},
            "$.certificateChain[0]",
        ),
        ({**good, "certificateChain": [stranger, ca_pem]}, "$.certificateChain[0]"),
        ({**good, "validFrom": None}, "$.validFrom"),
        ({**good, "validFrom": "2026-01-31 12:00:00"}, "$.validFrom"),
        ({**good, "validUntil": "2026-02-30T00:00:00Z"}, "$.validUntil"),
        (
            {**good, "validFrom": "2026-02-01T00:00:00Z", "validUntil": "2026-01-01T00:00:00Z"},
            "$.validUntil",
        ),
        ({**good, "label": 5}, "$.label"),
    ]
    for entry, path in cases:
        with pytest.raises(TrustRootError) as caught:
            TimestampAuthority.from_dict(entry)
        assert caught.value.path == path, (entry if len(str(entry)) < 300 else path, caught.value)
    with pytest.raises(TrustRootError):
        tsa.authority(valid_from=datetime(2026, 1, 1))  # naive
    with pytest.raises(TrustRootError):
        TimestampAuthority(name="x", chain=())
