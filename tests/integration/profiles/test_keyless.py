"""Keyless profile: sigstore-python's real signing client against the local Sigstore instance."""

from __future__ import annotations

import base64
import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sigstore.oidc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dssesign.core.canonical import canonicalize
from dssesign.core.dsse import pae
from dssesign.core.keys import ECDSA_P256
from dssesign.errors import ConfigError, DssesignError, SigningError
from dssesign.profiles.keyless import TOKEN_ENV, TRUST_CONFIG_ENV, KeylessSigner, parse_pae
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.sign.signer import SignerOptions, load_signer
from tests.conftest import signer_for
from tests.sigstore_instance import SigstoreInstance

IN_TOTO = "application/vnd.in-toto+json"


def statement(name: str = "app.tar.gz", digest: str = "ab" * 32) -> bytes:
    return canonicalize(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {"sha256": digest}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"buildDefinition": {"buildType": "https://example.com/t"}},
        }
    )


def load(instance: SigstoreInstance, token: str | None = None, **kwargs: object) -> KeylessSigner:
    options = SignerOptions(
        identity_token=token if token is not None else instance.identity_token(),
        trust_config=instance.trust_config_path,
    )
    signer = load_signer("keyless", options)
    assert isinstance(signer, KeylessSigner)
    return signer


@pytest.fixture(scope="module")
def keyless(sigstore_instance: SigstoreInstance) -> KeylessSigner:
    return load(sigstore_instance)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv(TRUST_CONFIG_ENV, raising=False)
    yield


# --------------------------------------------------------------------------- signing


def test_keyless_signature_verifies_with_the_ephemeral_key(
    keyless: KeylessSigner,
    sigstore_instance: SigstoreInstance,
) -> None:
    message = pae(IN_TOTO, statement())
    signature = keyless.sign(message)
    assert keyless.public_key.verify(signature, message)
    assert not keyless.public_key.verify(signature, pae(IN_TOTO, statement(name="other")))
    assert keyless.algorithm == ECDSA_P256
    assert keyless.keyid == keyless.public_key.keyid
    assert not getattr(keyless, "in_process", False)
    # The certificate binds that key to the token's identity.
    assert keyless.identity == sigstore_instance.subject
    assert keyless.issuer == sigstore_instance.issuer
    assert (
        keyless.certificate.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        == keyless.public_key.spki_der
    )


def test_bundle_carries_the_byte_identical_payload_certificate_and_tlog_entry(
    keyless: KeylessSigner,
) -> None:
    payload = statement(name="bundle-check")
    signature = keyless.sign(pae(IN_TOTO, payload))
    bundle = json.loads(keyless.bundle_for(signature))
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    envelope = bundle["dsseEnvelope"]
    assert base64.b64decode(envelope["payload"]) == payload
    assert envelope["payloadType"] == IN_TOTO
    assert [base64.b64decode(s["sig"]) for s in envelope["signatures"]] == [signature]
    material = bundle["verificationMaterial"]
    leaf = x509.load_der_x509_certificate(base64.b64decode(material["certificate"]["rawBytes"]))
    assert leaf == keyless.certificate
    (entry,) = material["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    assert entry["inclusionProof"]["checkpoint"]["envelope"]
    assert entry["inclusionPromise"]["signedEntryTimestamp"]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    assert body["spec"]["signatures"][0]["signature"] == base64.b64encode(signature).decode()


def test_one_certificate_serves_many_signatures(
    sigstore_instance: SigstoreInstance,
) -> None:
    issued = sigstore_instance.server.fulcio.issued
    signer = load(sigstore_instance)
    first = signer.sign(pae(IN_TOTO, statement(digest="01" * 32)))
    second = signer.sign(pae(IN_TOTO, statement(digest="02" * 32)))
    assert sigstore_instance.server.fulcio.issued == issued + 1
    indexes = {
        json.loads(signer.bundle_for(sig))["verificationMaterial"]["tlogEntries"][0]["logIndex"]
        for sig in (first, second)
    }
    assert len(indexes) == 2


def test_bundle_for_an_unknown_signature_is_a_key_error(keyless: KeylessSigner) -> None:
    with pytest.raises(KeyError):
        keyless.bundle_for(b"\x30\x06not-ours")


@pytest.mark.parametrize(
    "payload_type", ["application/json", "text/plain", "application/vnd.in-toto+json "]
)
def test_other_payload_types_are_refused_before_anything_is_logged(
    keyless: KeylessSigner,
    sigstore_instance: SigstoreInstance,
    payload_type: str,
) -> None:
    size = sigstore_instance.tlog.info()["treeSize"]
    with pytest.raises(SigningError, match="only supports payloadType"):
        keyless.sign(pae(payload_type, statement()))
    assert sigstore_instance.tlog.info()["treeSize"] == size


def test_a_payload_that_is_not_a_statement_is_refused(keyless: KeylessSigner) -> None:
    with pytest.raises(SigningError, match="not an in-toto Statement"):
        keyless.sign(pae(IN_TOTO, b'{"hello":"world"}'))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"DSSEv2 1 a 1 b",
        b"DSSEv1 28 application/vnd.in-toto+json 5 abc",
        b"DSSEv1 28 application/vnd.in-toto+json 01 a",
        b"DSSEv1 99 application/vnd.in-toto+json 1 a",
        b"DSSEv1 x application/vnd.in-toto+json 1 a",
        b"DSSEv1 -1 a 1 b",
    ],
)
def test_malformed_pae_is_refused(keyless: KeylessSigner, data: bytes) -> None:
    with pytest.raises(SigningError, match="PAE"):
        keyless.sign(data)


def test_parse_pae_inverts_pae() -> None:
    for payload_type, body in [(IN_TOTO, statement()), ("x y", b"a b  c"), ("t", b"")]:
        assert parse_pae(pae(payload_type, body)) == (payload_type, body)


@pytest.mark.parametrize("fault", ["set", "checkpoint"])
def test_a_log_answer_that_does_not_verify_is_never_emitted(
    sigstore_instance: SigstoreInstance,
    fault: str,
) -> None:
    signer = load(sigstore_instance)
    sigstore_instance.tlog.fault = fault
    try:
        with pytest.raises(SigningError, match="does not verify against the trusted root"):
            signer.sign(pae(IN_TOTO, statement(digest="0f" * 32)))
    finally:
        sigstore_instance.tlog.fault = None
    assert not signer._bundles


# --------------------------------------------------------------------------- configuration


def test_token_and_trust_config_from_the_environment(
    sigstore_instance: SigstoreInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = sigstore_instance.identity_token(subject="env@dssesign.test")
    for name, value in sigstore_instance.env(token).items():
        monkeypatch.setenv(name, value)
    signer = load_signer("keyless")
    assert isinstance(signer, KeylessSigner)
    assert signer.identity == "env@dssesign.test"


def test_ambient_ci_credentials_are_used_when_no_token_is_given(
    sigstore_instance: SigstoreInstance,
    monkeypatch: pytest.MonkeyPatch,
    no_env: None,
) -> None:
    workflow = "https://github.com/org/repo/.github/workflows/ci.yml@refs/heads/main"
    token = sigstore_instance.identity_token(subject=workflow, issuer="https://ci.example")
    monkeypatch.setattr(sigstore.oidc, "detect_credential", lambda: token)
    options = SignerOptions(trust_config=sigstore_instance.trust_config_path)
    signer = load_signer("keyless", options)
    assert isinstance(signer, KeylessSigner)
    assert (signer.identity, signer.issuer) == (workflow, "https://ci.example")


def test_no_token_anywhere_is_a_config_error_naming_the_sources(
    sigstore_instance: SigstoreInstance,
    monkeypatch: pytest.MonkeyPatch,
    no_env: None,
) -> None:
    monkeypatch.setattr(sigstore.oidc, "detect_credential", lambda: None)
    options = SignerOptions(trust_config=sigstore_instance.trust_config_path)
    with pytest.raises(ConfigError, match=TOKEN_ENV) as caught:
        load_signer("keyless", options)
    _one_line(caught.value)


def _bad_tokens(instance: SigstoreInstance) -> dict[str, tuple[str, type[DssesignError], str]]:
    from tests.sigstore_instance.oidc import TestOIDCProvider

    return {
        "malformed": ("not-a-jwt", ConfigError, "malformed"),
        "expired": (instance.identity_token(lifetime=-60), ConfigError, "expired"),
        "audience": (instance.oidc.token(audience="other"), ConfigError, "audience"),
        # Claims are fine, so sigstore-python sends it; our Fulcio checks the signature.
        "forged": (TestOIDCProvider().token(), SigningError, "401"),
    }


@pytest.mark.parametrize("case", ["malformed", "expired", "audience", "forged"])
def test_bad_tokens_give_one_line_errors_without_the_token(
    sigstore_instance: SigstoreInstance,
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    token, error, fragment = _bad_tokens(sigstore_instance)[case]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(error, match=fragment) as caught:
        load(sigstore_instance, token)
    _one_line(caught.value)
    _no_secret(token, str(caught.value), caplog.text)


def test_unreachable_fulcio_is_a_signing_error(
    sigstore_instance: SigstoreInstance,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = _dead_url()
    config = sigstore_instance.write_trust_config(
        tmp_path / "c.json", fulcio_url=dead, rekor_url=sigstore_instance.url
    )
    token = sigstore_instance.identity_token()
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SigningError, match="unreachable") as caught:
        load_signer("keyless", SignerOptions(identity_token=token, trust_config=config))
    assert dead in str(caught.value)
    _one_line(caught.value)
    _no_secret(token, str(caught.value), caplog.text)


def test_unreachable_rekor_is_a_signing_error_and_no_bundle_is_kept(
    sigstore_instance: SigstoreInstance,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = sigstore_instance.write_trust_config(
        tmp_path / "c.json", fulcio_url=sigstore_instance.url, rekor_url=_dead_url()
    )
    token = sigstore_instance.identity_token()
    caplog.set_level(logging.DEBUG)
    signer = load_signer("keyless", SignerOptions(identity_token=token, trust_config=config))
    assert isinstance(signer, KeylessSigner)
    with pytest.raises(SigningError, match="/api/v1/log/entries is unreachable") as caught:
        signer.sign(pae(IN_TOTO, statement()))
    _one_line(caught.value)
    _no_secret(token, str(caught.value), caplog.text, repr(signer))
    assert not signer._bundles


def test_a_fulcio_that_never_answers_times_out(
    sigstore_instance: SigstoreInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dssesign.profiles.keyless as keyless_module

    monkeypatch.setattr(keyless_module, "NETWORK_TIMEOUT", 0.5)
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config = sigstore_instance.write_trust_config(
            tmp_path / "c.json", fulcio_url=url, rekor_url=sigstore_instance.url
        )
        options = SignerOptions(
            identity_token=sigstore_instance.identity_token(), trust_config=config
        )
        with pytest.raises(SigningError, match=r"Fulcio did not answer within 0\.5s") as caught:
            load_signer("keyless", options)
    _one_line(caught.value)


def test_token_is_not_in_the_options_or_signer_repr(
    sigstore_instance: SigstoreInstance,
) -> None:
    token = sigstore_instance.identity_token()
    options = SignerOptions(identity_token=token, trust_config=sigstore_instance.trust_config_path)
    signer = load_signer("keyless", options)
    _no_secret(token, repr(options), repr(signer), str(vars(signer).get("reference")))


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "no such file"),
        ("{not json", "not JSON"),
        ('{"mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json"}', "signing config"),
        ('{"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"}', "mediaType"),
        (
            '{"mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json"}',
            "trust config",
        ),
    ],
)
def test_bad_trust_configs_are_config_errors(
    sigstore_instance: SigstoreInstance,
    tmp_path: Path,
    content: str | None,
    fragment: str,
) -> None:
    path = tmp_path / "trust.json"
    if content is not None:
        path.write_text(content)
    options = SignerOptions(identity_token=sigstore_instance.identity_token(), trust_config=path)
    with pytest.raises(ConfigError, match=fragment) as caught:
        load_signer("keyless", options)
    _one_line(caught.value)


def test_registering_the_profile_does_not_import_sigstore() -> None:
    code = (
        "import sys, dssesign.sign.signer as s; s._ensure_builtin_profiles(); "
        "assert 'keyless' in s.registered_schemes(); "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('sigstore', 'requests')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("emptied", "error", "fragment"),
    [
        (("trustedRoot", "tlogs"), ConfigError, "no transparency log"),
        (("trustedRoot", "certificateAuthorities"), ConfigError, "Fulcio certificates not found"),
        (("signingConfig", "caUrls"), ConfigError, "No valid Fulcio CA"),
        (("signingConfig", "rekorTlogUrls"), ConfigError, "No valid Rekor"),
        # Without CT log keys Fulcio's SCT cannot be checked: no certificate is accepted.
        (("trustedRoot", "ctlogs"), SigningError, "CTFE keys not found"),
    ],
)
def test_incomplete_trust_configs_are_refused(
    sigstore_instance: SigstoreInstance,
    tmp_path: Path,
    emptied: tuple[str, str],
    error: type[DssesignError],
    fragment: str,
) -> None:
    config = json.loads(sigstore_instance.trust_config_path.read_text())
    section, key = emptied
    config[section][key] = []
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(config))
    options = SignerOptions(identity_token=sigstore_instance.identity_token(), trust_config=path)
    with pytest.raises(error, match=fragment) as caught:
        load_signer("keyless", options)
    _one_line(caught.value)


# --------------------------------------------------------------------------- multi-profile


def test_keyless_alongside_a_software_key_in_one_envelope(keyless: KeylessSigner) -> None:
    software = signer_for("ecdsa-p256", 7)
    payload = statement(name="multi")
    envelope = MultiProfileSigner([software, keyless]).sign(payload, IN_TOTO)
    assert envelope.payload == payload and len(envelope.signatures) == 2
    message = pae(IN_TOTO, payload)
    by_key = {
        signer.keyid: [
            s.sig for s in envelope.signatures if signer.public_key.verify(s.sig, message)
        ]
        for signer in (software, keyless)
    }
    assert all(len(sigs) == 1 for sigs in by_key.values())
    bundle = json.loads(keyless.bundle_for(by_key[keyless.keyid][0]))
    assert base64.b64decode(bundle["dsseEnvelope"]["payload"]) == envelope.payload
    # The ephemeral key is in no trust root: cosign-style, its envelope keyid is "".
    keyids = {s.sig: s.keyid for s in envelope.signatures}
    assert keyids[by_key[keyless.keyid][0]] == ""
    assert keyids[by_key[software.keyid][0]] == software.keyid


def test_multi_profile_policy_reports_a_keyless_failure(
    sigstore_instance: SigstoreInstance,
    tmp_path: Path,
) -> None:
    config = sigstore_instance.write_trust_config(
        tmp_path / "c.json", fulcio_url=sigstore_instance.url, rekor_url=_dead_url()
    )
    options = SignerOptions(identity_token=sigstore_instance.identity_token(), trust_config=config)
    keyless = load_signer("keyless", options)
    software = signer_for("ed25519", 7)
    with pytest.raises(SigningError, match="1 of 2 signed; keyless"):
        MultiProfileSigner([software, keyless]).sign(statement(), IN_TOTO)
    envelope = MultiProfileSigner([software, keyless], threshold=1).sign(statement(), IN_TOTO)
    assert len(envelope.signatures) == 1


# --------------------------------------------------------------------------- helpers


def _dead_url() -> str:
    """A loopback URL nothing listens on (a port we bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text, text


def _no_secret(token: str, *texts: str) -> None:
    for text in texts:
        assert token not in text
        # Nor a recognizable piece of it (its signature part).
        assert token.rsplit(".", 1)[-1][:16] not in text


def test_a_fulcio_username_san_is_read_as_its_string() -> None:
    """otherName 1.3.6.1.4.1.57264.1.7 holds a DER UTF8String: the identity is its text."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from dssesign.profiles import keyless

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([])
    username = x509.OtherName(x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7"), b"\x0c\x05alice")
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "test")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([username]), critical=True)
        .sign(key, hashes.SHA256())
    )
    assert keyless._san(certificate) == "alice"
