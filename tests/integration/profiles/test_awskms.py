"""The AWS KMS profile against LocalStack's KMS: DIGEST signing per key spec, key states,
retries and timeouts, threads, the GetPublicKey cache, and offline verification of the result.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from dssesign.core.dsse import pae
from dssesign.errors import ConfigError, SigningError
from dssesign.intoto.statement import PAYLOAD_TYPE
from dssesign.profiles import awskms
from dssesign.profiles.software import SoftwareSigner
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.sign.signer import SignerOptions, load_signer
from dssesign.trust import TrustedKey
from dssesign.verify import verify
from tests.conftest import signer_for
from tests.localstack import (
    ACCOUNT,
    REGION,
    LocalStack,
)
from tests.openbao import (
    OpenBao,
)
from tests.unit.verify.test_verify import NOW, make_root, payload_of, statement

SPECS = ("ECC_NIST_P256", "ECC_NIST_P384", "RSA_3072", "RSA_4096")
#: Larger than KMS's 4096-byte cap on RAW messages: only DIGEST mode can sign it.
BIG_PAYLOAD = payload_of(statement() | {"predicate": {"blob": "x" * 10_000}})


def _create(stack: LocalStack, spec: str, usage: str = "SIGN_VERIFY") -> str:
    key_id: str = stack.client().create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
    return key_id


@pytest.fixture(scope="module")
def keys(localstack: LocalStack) -> dict[str, str]:
    """One key per supported spec, made once for the module: key spec -> key id."""
    return {spec: _create(localstack, spec) for spec in SPECS}


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    awskms.clear_cache()
    yield
    awskms.clear_cache()


def _kms_signer(ref: str) -> awskms.AwsKmsSigner:
    signer = load_signer(ref)
    assert isinstance(signer, awskms.AwsKmsSigner)
    return signer


def _pyca_verify(signer: awskms.AwsKmsSigner, signature: bytes, data: bytes) -> None:
    """Verify with pyca directly, with AWS's documented parameters (not dssesign's helpers)."""
    key = signer.public_key.key
    if isinstance(key, ec.EllipticCurvePublicKey):
        hash_algorithm: hashes.HashAlgorithm = (
            hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
        )
        key.verify(signature, data, ec.ECDSA(hash_algorithm))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        # KMS RSASSA_PSS_SHA_256: MGF1 with SHA-256 and a 32-byte salt.
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        key.verify(signature, data, pss, hashes.SHA256())


class _Counter:
    """Counts KMS API calls by operation on every client the profile creates."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, client: Any) -> None:
        client.meta.events.register("before-call.kms", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[model.name] = self.calls.get(model.name, 0) + 1


@pytest.fixture
def counter(fresh_cache: None) -> Iterator[_Counter]:
    counting = _Counter()
    awskms.register_client_hook(counting)
    yield counting
    awskms.unregister_client_hook(counting)


# --- references (no server) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "host", "key", "region"),
    [
        ("awskms:///alias/release", "", "alias/release", None),
        ("awskms://127.0.0.1:4566/alias/a/b_c-d", "127.0.0.1:4566", "alias/a/b_c-d", None),
        (
            "awskms:///1234abcd-12ab-34cd-56ef-1234567890ab",
            "",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            None,
        ),
        (
            "awskms://localhost:4566/arn:aws:kms:eu-west-1:111122223333:key/"
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "localhost:4566",
            "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "eu-west-1",
        ),
        (
            "awskms:///arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/x",
            "",
            "arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/x",
            "us-gov-west-1",
        ),
        (
            "awskms://[::1]:4566/mrk-1234abcd12ab34cd56ef1234567890ab",
            "[::1]:4566",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            None,
        ),
    ],
)
def test_parse_references(ref: str, host: str, key: str, region: str | None) -> None:
    uri = awskms.parse_uri(ref)
    assert uri.host == host
    assert uri.key == key
    assert uri.arn_region == region
    assert uri.endpoint_url == (f"http://{host}" if host else None)
    assert uri.describe() == ref


def test_parse_query_parameters() -> None:
    uri = awskms.parse_uri(
        "awskms://h:1/alias/k?timeout=2.5&max-attempts=4&retry-mode=adaptive&region=eu-central-1"
    )
    assert (uri.timeout, uri.max_attempts, uri.retry_mode, uri.region) == (
        2.5,
        4,
        "adaptive",
        "eu-central-1",
    )
    assert uri.describe() == "awskms://h:1/alias/k"  # settings never reach records


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("awskms://", "has no key"),
        ("awskms:///", "names no key"),
        ("awskms://host:4566", "has no key"),
        ("awskms:///not a key", "is not a KMS key id"),
        ("awskms:///alias/aws/ebs", "AWS managed alias"),
        ("awskms://bad host/alias/k", "is not a host"),
        ("awskms://AKIAEXAMPLE:pw123@h:1/alias/k", "user info in the host is refused"),
        ("awskms://h:99999/alias/k", "out of range"),
        ("awskms:///alias/k?timeout=0", "timeout="),
        ("awskms:///alias/k?timeout=abc", "timeout="),
        ("awskms:///alias/k?max-attempts=99", "max-attempts="),
        ("awskms:///alias/k?retry-mode=legacy", "retry-mode"),
        ("awskms:///alias/k?secret=x", "unknown parameter"),
        ("awskms:///alias/k?region=x&region=y", "given twice"),
        (
            "awskms:///arn:aws:kms:eu-west-1:111122223333:alias/x?region=us-east-1",
            "contradicts",
        ),
    ],
)
def test_bad_references_are_config_errors(ref: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        awskms.parse_uri(ref)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value) and "pw123" not in str(info.value)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = awskms.parse_uri("awskms:///alias/k")
    assert awskms.settings(uri) == (awskms.DEFAULT_TIMEOUT, awskms.DEFAULT_MAX_ATTEMPTS)
    monkeypatch.setenv(awskms.TIMEOUT_ENV, "1.5")
    monkeypatch.setenv(awskms.ATTEMPTS_ENV, "2")
    assert awskms.settings(uri) == (1.5, 2)
    assert awskms.settings(awskms.parse_uri("awskms:///alias/k?timeout=3")) == (3.0, 2)
    monkeypatch.setenv(awskms.TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError, match=awskms.TIMEOUT_ENV):
        awskms.settings(uri)


def test_key_spec_names() -> None:
    assert awskms.key_spec("ecc_nist_p384").signing_algorithm == "ECDSA_SHA_384"
    assert awskms.key_spec("rsa-pss-4096").name == "RSA_4096"
    assert awskms.key_spec("RSA_3072").signing_algorithm == "RSASSA_PSS_SHA_256"
    for refused in ("RSA_2048", "ECC_SECG_P256K1", "ed25519", "SYMMETRIC_DEFAULT"):
        with pytest.raises(ConfigError, match="not supported"):
            awskms.key_spec(refused)


def test_error_text_never_carries_credentials() -> None:
    leaky = Exception(
        "Authorization=AWS4-HMAC-SHA256 Credential=AKIAABCDEFGHIJKLMNOP/20260101/us-east-1/kms"
        "/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123abcd\nsecond line "
        "ASIAABCDEFGHIJKLMNOP X-Amz-Security-Token=FQoGZXIvYXdzE"
    )
    text = awskms._safe(leaky)
    for secret in ("AKIAABCDEFGHIJKLMNOP", "ASIAABCDEFGHIJKLMNOP", "0123abcd", "FQoGZXIvYXdzE"):
        assert secret not in text
    assert "\n" not in text and "[redacted]" in text


def test_registering_the_scheme_does_not_import_boto3() -> None:
    code = (
        "import sys\n"
        "from dssesign.sign import signer\n"
        "signer._ensure_builtin_profiles()\n"
        "assert 'awskms:' in signer.registered_schemes()\n"
        "loaded = [m for m in ('boto3', 'botocore') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- signing per key spec -------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS)
def test_each_key_spec_signs_large_payloads_and_verifies_offline(
    localstack: LocalStack, keys: dict[str, str], spec: str
) -> None:
    signer = _kms_signer(localstack.uri(keys[spec]))
    expected = awskms.KEY_SPECS[spec]
    assert signer.algorithm is expected.algorithm
    assert signer.key_spec == spec
    assert signer.key_arn == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{keys[spec]}"
    assert signer.keyid == hashlib.sha256(signer.public_key.spki_der).hexdigest()
    assert getattr(signer, "in_process", True) is False

    message = pae(PAYLOAD_TYPE, BIG_PAYLOAD)
    assert len(message) > 4096
    signature = signer.sign(message)
    _pyca_verify(signer, signature, message)
    if spec.startswith("ECC"):
        assert signature[0] == 0x30  # DER, as DSSE and cosign expect
    else:
        assert len(signature) == signer.public_key.key.key_size // 8  # type: ignore[union-attr]

    envelope = MultiProfileSigner([signer]).sign(BIG_PAYLOAD, PAYLOAD_TYPE)
    root = make_root([TrustedKey(public_key=signer.public_key, label=f"kms-{spec}")])
    result = verify(envelope.to_json(), root, at=NOW)
    assert [(k.keyid, k.algorithm) for k in result.keys_counted] == [
        (signer.keyid, expected.algorithm.name)
    ]
    assert result.payload == BIG_PAYLOAD


def test_signing_is_by_digest(localstack: LocalStack, keys: dict[str, str]) -> None:
    """What goes to KMS is the SHA-256 of the PAE with MessageType=DIGEST, never the PAE."""
    signer = _kms_signer(localstack.uri(keys["ECC_NIST_P256"]))
    sent: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        sent.append(dict(params))

    signer.client.meta.events.register("provide-client-params.kms.Sign", capture)
    try:
        message = pae(PAYLOAD_TYPE, BIG_PAYLOAD)
        signer.sign(message)
    finally:
        signer.client.meta.events.unregister("provide-client-params.kms.Sign", capture)
    assert len(sent) == 1
    assert sent[0]["MessageType"] == "DIGEST"
    assert sent[0]["Message"] == hashlib.sha256(message).digest()
    assert sent[0]["SigningAlgorithm"] == "ECDSA_SHA_256"
    assert sent[0]["KeyId"] == signer.key_arn


def test_alias_and_arn_references(localstack: LocalStack, keys: dict[str, str]) -> None:
    client = localstack.client()
    client.create_alias(AliasName="alias/dss-alias-test", TargetKeyId=keys["ECC_NIST_P384"])
    by_id = _kms_signer(localstack.uri(keys["ECC_NIST_P384"]))
    by_alias = _kms_signer(localstack.uri("alias/dss-alias-test"))
    by_arn = _kms_signer(localstack.uri(by_id.key_arn))
    assert by_id.keyid == by_alias.keyid == by_arn.keyid
    assert by_alias.key_arn == by_id.key_arn
    message = b"alias"
    assert by_id.public_key.verify(by_alias.sign(message), message)


def test_repointed_alias_cannot_change_the_signing_key(
    localstack: LocalStack, keys: dict[str, str]
) -> None:
    """The signer signs with the ARN it fetched the public key for, not with the alias."""
    client = localstack.client()
    client.create_alias(AliasName="alias/dss-repoint", TargetKeyId=keys["ECC_NIST_P256"])
    signer = _kms_signer(localstack.uri("alias/dss-repoint"))
    other = _create(localstack, "ECC_NIST_P256")
    client.update_alias(AliasName="alias/dss-repoint", TargetKeyId=other)
    message = b"after the alias moved"
    assert signer.public_key.verify(signer.sign(message), message)


def test_empty_host_uses_the_default_endpoint_chain(
    localstack: LocalStack, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`awskms:///KEY` leaves the endpoint to boto3, which honours AWS_ENDPOINT_URL_KMS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", localstack.endpoint)
    signer = _kms_signer(f"awskms:///{keys['ECC_NIST_P256']}")
    assert signer.reference == f"awskms:///{keys['ECC_NIST_P256']}"
    assert signer.client.meta.endpoint_url == localstack.endpoint
    assert signer.public_key.verify(signer.sign(b"m"), b"m")


@pytest.mark.parametrize("mode", ["standard", "adaptive"])
def test_reference_settings_reach_the_client(
    localstack: LocalStack, keys: dict[str, str], mode: str
) -> None:
    ref = localstack.uri(
        keys["ECC_NIST_P256"], timeout="2.5", **{"max-attempts": "4", "retry-mode": mode}
    )
    signer = _kms_signer(ref)
    config = signer.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (2.5, 2.5)
    assert config.retries == {"mode": mode, "total_max_attempts": 4}
    assert signer.reference == localstack.uri(keys["ECC_NIST_P256"])
    assert signer.public_key.verify(signer.sign(b"m"), b"m")


def test_region_comes_from_the_arn(
    localstack: LocalStack, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{keys['ECC_NIST_P256']}"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError, match="no AWS region"):
        load_signer(localstack.uri(keys["ECC_NIST_P256"]))
    signer = _kms_signer(localstack.uri(arn))
    assert signer.public_key.verify(signer.sign(b"m"), b"m")
    signer = _kms_signer(localstack.uri(keys["ECC_NIST_P256"], region=REGION))
    assert signer.key_arn == arn


def test_missing_credentials_are_a_config_error(
    localstack: LocalStack, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADSSESIGNTESTONLY")
    awskms.clear_cache()
    with pytest.raises(ConfigError) as info:
        load_signer(localstack.uri(keys["ECC_NIST_P256"]))
    assert "credentials" in str(info.value)
    assert "AKIADSSESIGNTESTONLY" not in str(info.value)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    with pytest.raises(ConfigError, match="no AWS credentials"):
        load_signer(localstack.uri(keys["ECC_NIST_P256"]))


def test_expected_keyid_is_enforced(localstack: LocalStack, keys: dict[str, str]) -> None:
    ref = localstack.uri(keys["ECC_NIST_P256"])
    keyid = _kms_signer(ref).keyid
    assert load_signer(ref, SignerOptions(expected_keyid=keyid)).keyid == keyid
    with pytest.raises(ConfigError, match="expected"):
        load_signer(ref, SignerOptions(expected_keyid="0" * 64))


# --- refusals and key states ------------------------------------------------------------------


def test_wrong_key_id_and_unknown_alias(localstack: LocalStack) -> None:
    for key in ("11111111-2222-3333-4444-555555555555", "alias/dss-no-such-alias"):
        with pytest.raises(ConfigError, match="no such KMS key") as info:
            load_signer(localstack.uri(key))
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("spec", "usage", "fragment"),
    [
        ("RSA_2048", "SIGN_VERIFY", "key spec RSA_2048"),
        ("ECC_SECG_P256K1", "SIGN_VERIFY", "key spec ECC_SECG_P256K1"),
        ("RSA_3072", "ENCRYPT_DECRYPT", "key usage ENCRYPT_DECRYPT"),
    ],
)
def test_unsupported_keys_are_refused(
    localstack: LocalStack, spec: str, usage: str, fragment: str
) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_signer(localstack.uri(_create(localstack, spec, usage)))


def test_disabled_key_fails_at_once_naming_the_state(localstack: LocalStack) -> None:
    key_id = _create(localstack, "ECC_NIST_P256")
    loaded = _kms_signer(localstack.uri(key_id))
    localstack.client().disable_key(KeyId=key_id)
    start = time.monotonic()
    with pytest.raises(SigningError, match="state Disabled"):
        loaded.sign(b"m")
    assert time.monotonic() - start < 5  # no retries on a permanent state (liveness bound)
    software = signer_for("ed25519")
    with pytest.raises(SigningError, match="state Disabled") as info:
        MultiProfileSigner([software, loaded]).sign(b"{}", PAYLOAD_TYPE)
    assert "1 of 2 signed" in str(info.value)
    localstack.client().enable_key(KeyId=key_id)
    assert loaded.public_key.verify(loaded.sign(b"m"), b"m")


def test_key_pending_deletion_fails_naming_the_state(
    localstack: LocalStack, fresh_cache: None
) -> None:
    key_id = _create(localstack, "ECC_NIST_P256")
    loaded = _kms_signer(localstack.uri(key_id))
    localstack.client().schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with pytest.raises(SigningError, match="state PendingDeletion"):
        loaded.sign(b"m")
    awskms.clear_cache()
    with pytest.raises(SigningError, match="state PendingDeletion"):
        load_signer(localstack.uri(key_id))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that name no account: these tests never reach KMS, but boto3 wants some
    (the full suite's LocalStack fixture sets them; a test must not depend on that order)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.mark.usefixtures("dummy_credentials")
def test_unreachable_endpoint_fails_within_the_timeout() -> None:
    start = time.monotonic()
    with pytest.raises(SigningError, match="KMS endpoint unreachable") as info:
        load_signer(f"awskms://127.0.0.1:{_closed_port()}/alias/k?timeout=1&region=us-east-1")
    assert "\n" not in str(info.value)
    assert time.monotonic() - start < 10  # liveness, not speed: retries are bounded


@pytest.mark.usefixtures("dummy_credentials")
def test_silent_endpoint_times_out_after_the_read_timeout() -> None:
    """A server that accepts connections and never answers: each attempt ends at the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(SigningError, match="unreachable"):
            load_signer(f"awskms://127.0.0.1:{port}/alias/k?timeout=1&max-attempts=2")
        elapsed = time.monotonic() - start
    assert 1.0 <= elapsed < 10


# --- retries, threads, caching ----------------------------------------------------------------


def _throttle(first_attempts: int) -> tuple[Any, list[int]]:
    """A before-send hook answering ThrottlingException to each call's first N attempts."""
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    injected: list[int] = []
    lock = threading.Lock()

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        attempt = request.context.get("retries", {}).get("attempt", 1)
        if attempt > first_attempts:
            return None
        with lock:
            injected.append(attempt)
        raw = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'

        class _Raw:
            def stream(self, **_: Any) -> Iterator[bytes]:
                yield raw

        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.1"
        return AWSResponse(request.url, 400, headers, _Raw())

    return hook, injected


def test_throttled_batch_completes_through_retries(
    localstack: LocalStack, keys: dict[str, str]
) -> None:
    signer = _kms_signer(localstack.uri(keys["ECC_NIST_P256"], **{"max-attempts": "3"}))
    hook, injected = _throttle(first_attempts=1)
    signer.client.meta.events.register_first("before-send.kms.Sign", hook)
    try:
        messages = [f"batch {i}".encode() for i in range(16)]
        results: dict[int, bytes] = {}

        def work(index: int) -> None:
            results[index] = signer.sign(messages[index])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(messages))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        signer.client.meta.events.unregister("before-send.kms.Sign", hook)
    assert len(injected) == len(messages)  # every call was throttled once, then retried
    assert sorted(results) == list(range(len(messages)))
    for index, signature in results.items():
        assert signer.public_key.verify(signature, messages[index])


def test_throttling_beyond_the_attempts_is_a_signing_error(
    localstack: LocalStack, keys: dict[str, str]
) -> None:
    signer = _kms_signer(localstack.uri(keys["ECC_NIST_P256"], **{"max-attempts": "2"}))
    hook, injected = _throttle(first_attempts=99)
    signer.client.meta.events.register_first("before-send.kms.Sign", hook)
    try:
        with pytest.raises(SigningError, match="ThrottlingException after 2 attempts"):
            signer.sign(b"m")
    finally:
        signer.client.meta.events.unregister("before-send.kms.Sign", hook)
    assert injected == [1, 2]


def test_eight_threads_through_one_signer(localstack: LocalStack, keys: dict[str, str]) -> None:
    signer = _kms_signer(localstack.uri(keys["ECC_NIST_P256"]))
    per_thread = 5
    results: list[tuple[bytes, bytes]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work(index: int) -> None:
        barrier.wait()
        try:
            for n in range(per_thread):
                message = pae(PAYLOAD_TYPE, f'{{"t":{index},"n":{n}}}'.encode())
                signature = signer.sign(message)
                with lock:
                    results.append((message, signature))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(results) == 8 * per_thread
    assert len({m for m, _ in results}) == 8 * per_thread
    assert all(signer.public_key.verify(s, m) for m, s in results)


def test_get_public_key_once_per_key(
    localstack: LocalStack, keys: dict[str, str], counter: _Counter
) -> None:
    refs = [localstack.uri(keys[spec]) for spec in ("ECC_NIST_P256", "RSA_3072")]
    signers: list[awskms.AwsKmsSigner] = []
    lock = threading.Lock()

    def load(ref: str) -> None:
        signer = _kms_signer(ref)
        with lock:
            signers.append(signer)

    # 8 threads load each key at the same time, then each signer signs.
    threads = [threading.Thread(target=load, args=(ref,)) for ref in refs for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(signers) == 16
    envelope = MultiProfileSigner([signers[0]]).sign(b"{}", PAYLOAD_TYPE)
    assert len(envelope.signatures) == 1
    for signer in signers[:4]:
        signer.sign(b"again")
    assert counter.calls.get("GetPublicKey") == 2
    assert counter.calls.get("Sign") == 5


def test_software_and_kms_in_one_envelope(localstack: LocalStack, keys: dict[str, str]) -> None:
    kms = _kms_signer(localstack.uri(keys["RSA_3072"]))
    software = signer_for("ecdsa-p256")
    envelope = MultiProfileSigner([software, kms]).sign(BIG_PAYLOAD, PAYLOAD_TYPE)
    assert [s.keyid for s in envelope.signatures] == [software.keyid, kms.keyid]
    result = verify(
        envelope.to_json(),
        make_root([software, TrustedKey(public_key=kms.public_key)], threshold=2),
        at=NOW,
    )
    assert {k.keyid for k in result.keys_counted} == {software.keyid, kms.keyid}


def test_software_kms_and_vault_signatures_in_one_envelope(
    localstack: LocalStack,
    keys: dict[str, str],
    openbao: OpenBao,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three profiles, three backends, one envelope: verified offline with threshold 3."""
    from dssesign.profiles import vault

    for name in (*vault.ADDR_ENVS, *vault.TOKEN_ENVS):
        monkeypatch.delenv(name, raising=False)
    for name, value in openbao.env.items():
        monkeypatch.setenv(name, value)
    vault.create_key("hashivault://kms-mixed-ed25519", "ed25519")
    transit = load_signer("hashivault://kms-mixed-ed25519")
    kms = _kms_signer(localstack.uri(keys["ECC_NIST_P384"]))
    software = signer_for("rsa-pss-3072")
    envelope = MultiProfileSigner([software, kms, transit]).sign(BIG_PAYLOAD, PAYLOAD_TYPE)
    assert [s.keyid for s in envelope.signatures] == [software.keyid, kms.keyid, transit.keyid]
    trusted: list[TrustedKey | SoftwareSigner] = [
        software,
        *(TrustedKey(public_key=s.public_key) for s in (kms, transit)),
    ]
    result = verify(envelope.to_json(), make_root(trusted, threshold=3), at=NOW)
    assert {k.keyid for k in result.keys_counted} == {software.keyid, kms.keyid, transit.keyid}


# --- create-key and public-key ------------------------------------------------------------------


def test_create_key_with_alias_and_read_it_back(localstack: LocalStack, counter: _Counter) -> None:
    created = awskms.create_key(
        localstack.uri(), awskms.key_spec("ecdsa-p384"), alias="dss-created"
    )
    assert created.alias == "alias/dss-created"
    assert created.reference == localstack.uri("alias/dss-created")
    metadata = localstack.client().describe_key(KeyId=created.key_id)["KeyMetadata"]
    assert (metadata["KeySpec"], metadata["KeyUsage"]) == ("ECC_NIST_P384", "SIGN_VERIFY")
    assert metadata["Origin"] == "AWS_KMS"  # generated inside KMS, never imported
    public, key = awskms.read_public_key(created.reference)
    assert public == created.key.public_key and key.arn == created.arn
    signer = _kms_signer(created.reference)
    assert signer.public_key.verify(signer.sign(b"new"), b"new")
    via_uri = awskms.create_key(localstack.uri("alias/dss-created-2"), awskms.key_spec("RSA_3072"))
    assert via_uri.alias == "alias/dss-created-2"


def test_create_key_refusals(localstack: LocalStack) -> None:
    spec = awskms.key_spec("ECC_NIST_P256")
    with pytest.raises(ConfigError, match="names an existing key"):
        awskms.create_key(localstack.uri("11111111-2222-3333-4444-555555555555"), spec)
    with pytest.raises(ConfigError, match="contradicts"):
        awskms.create_key(localstack.uri("alias/one"), spec, alias="two")
    awskms.create_key(localstack.uri(), spec, alias="dss-taken")
    with pytest.raises(Exception, match="CreateAlias alias/dss-taken") as info:
        awskms.create_key(localstack.uri(), spec, alias="dss-taken")
    assert isinstance(info.value, ConfigError | SigningError)
