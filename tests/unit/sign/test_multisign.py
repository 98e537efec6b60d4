from __future__ import annotations

import threading
import time

import pytest

from dssesign.core.dsse import pae
from dssesign.errors import ConfigError, SigningError
from dssesign.profiles.software import SoftwareSigner
from dssesign.sign.multisign import MultiProfileSigner, SigningRecord, envelope_keyid
from dssesign.sign.signer import Signer
from tests.conftest import ALL_ALGORITHMS, DelegatingSigner, signer_for


class _Backend(DelegatingSigner):
    """A remote-like signer (not in-process) wrapping a software key, with injectable faults."""

    def __init__(
        self,
        inner: SoftwareSigner,
        *,
        delay: float = 0.0,
        fail: Exception | None = None,
        corrupt: bool = False,
        hang: threading.Event | None = None,
    ) -> None:
        super().__init__(inner, f"fake://{inner.algorithm.cli_name}")
        self._delay, self._fail, self._corrupt, self._hang = delay, fail, corrupt, hang
        self.calls = 0

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        if self._hang is not None:
            self._hang.wait(10)
        time.sleep(self._delay)
        if self._fail is not None:
            raise self._fail
        signature = self._inner.sign(data)
        return signature[:-1] + bytes([signature[-1] ^ 1]) if self._corrupt else signature


def test_all_algorithms_sign_one_envelope_in_order() -> None:
    signers = [signer_for(a) for a in ALL_ALGORITHMS]
    envelope = MultiProfileSigner(signers).sign(b"payload", "application/x")
    assert [s.keyid for s in envelope.signatures] == [s.keyid for s in signers]
    message = pae("application/x", b"payload")
    for signer, signature in zip(signers, envelope.signatures, strict=True):
        assert signer.public_key.verify(signature.sig, message)


def test_order_is_the_given_order_whatever_finishes_first() -> None:
    slow: Signer = _Backend(signer_for("ed25519"), delay=0.2)
    fast = _Backend(signer_for("ecdsa-p256"))
    local = signer_for("ecdsa-p384")
    envelope = MultiProfileSigner([slow, fast, local]).sign(b"p", "t")
    assert [s.keyid for s in envelope.signatures] == [slow.keyid, fast.keyid, local.keyid]


def test_backends_run_concurrently() -> None:
    backends = [_Backend(signer_for(a), delay=0.3) for a in ("ed25519", "ecdsa-p256", "ecdsa-p384")]
    start = time.perf_counter()
    MultiProfileSigner(backends).sign(b"p", "t")
    assert time.perf_counter() - start < 0.8  # three 0.3 s calls in parallel, not 0.9 s in series


def test_deterministic_algorithms_give_identical_envelopes() -> None:
    signers = [signer_for(a) for a in ("ed25519", "ecdsa-p256", "ecdsa-p384")]
    first = MultiProfileSigner(signers).sign(b"same", "t").to_json()
    second = MultiProfileSigner(signers).sign(b"same", "t").to_json()
    assert first == second


def test_a_corrupt_signature_never_reaches_the_envelope() -> None:
    bad = _Backend(signer_for("ecdsa-p256"), corrupt=True)
    with pytest.raises(SigningError, match="does not verify with its public key"):
        MultiProfileSigner([signer_for("ed25519"), bad]).sign(b"p", "t")
    envelope = MultiProfileSigner([signer_for("ed25519"), bad], threshold=1).sign(b"p", "t")
    assert [s.keyid for s in envelope.signatures] == [signer_for("ed25519").keyid]


def test_policy_not_met_lists_every_failure() -> None:
    failing: list[Signer] = [
        _Backend(signer_for("ed25519"), fail=RuntimeError("HSM unplugged")),
        _Backend(signer_for("ecdsa-p256"), fail=TimeoutError("KMS slow\nsecond line")),
        signer_for("ecdsa-p384"),
    ]
    with pytest.raises(SigningError) as info:
        MultiProfileSigner(failing, threshold=2).sign(b"p", "t")
    message = str(info.value)
    assert "'at least 2' not met: 1 of 3 signed" in message
    assert "HSM unplugged" in message and "KMS slow" in message and "second line" not in message


def test_k_of_n_emits_what_succeeded() -> None:
    signers: list[Signer] = [
        signer_for("ed25519"),
        _Backend(signer_for("ecdsa-p256"), fail=RuntimeError("down")),
        signer_for("ecdsa-p384"),
    ]
    envelope = MultiProfileSigner(signers, threshold=2).sign(b"p", "t")
    assert len(envelope.signatures) == 2


def test_timeout_per_signer() -> None:
    release = threading.Event()
    hung = _Backend(signer_for("ed25519"), hang=release)
    start = time.perf_counter()
    try:
        with pytest.raises(SigningError, match=r"timed out after 0\.2s"):
            MultiProfileSigner([hung, signer_for("ecdsa-p256")], timeout=0.2).sign(b"p", "t")
        assert time.perf_counter() - start < 2
    finally:
        release.set()


def test_hooks_get_a_record_per_signer_without_secrets() -> None:
    records: list[SigningRecord] = []
    failing = _Backend(signer_for("ecdsa-p256"), fail=RuntimeError("down"))
    signer = MultiProfileSigner(
        [signer_for("ed25519"), failing], threshold=1, hooks=[records.append]
    )
    signer.sign(b"p", "t")
    assert [(r.keyid, r.ok) for r in records] == [
        (signer_for("ed25519").keyid, True),
        (failing.keyid, False),
    ]
    assert records[0].signature_sha256 is not None and records[1].error == "RuntimeError: down"
    assert (
        records[0].payload_sha256
        == "148de9c5a7a44d19e56cd9ae1a554bf67847afb0c58f6e12fa29ac7ddfca9940"
    )
    assert records[0].algorithm == "PKIX_ED25519"


def test_a_failing_hook_stops_the_envelope() -> None:
    def broken(record: SigningRecord) -> None:
        raise OSError("audit disk full")

    with pytest.raises(SigningError, match="audit disk full"):
        MultiProfileSigner([signer_for("ed25519")], hooks=[broken]).sign(b"p", "t")


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="no signers"):
        MultiProfileSigner([])
    with pytest.raises(ConfigError, match="the same key was given twice"):
        MultiProfileSigner([signer_for("ed25519"), _Backend(signer_for("ed25519"))])
    with pytest.raises(ConfigError, match="threshold 3 must be between 1 and 2"):
        MultiProfileSigner([signer_for("ed25519"), signer_for("ecdsa-p256")], threshold=3)
    with pytest.raises(ConfigError, match="timeout"):
        MultiProfileSigner([signer_for("ed25519")], timeout=0)


def test_non_bytes_from_a_backend_is_a_failure() -> None:
    class Weird(_Backend):
        def sign(self, data: bytes) -> bytes:
            return "not bytes"  # type: ignore[return-value]

    with pytest.raises(SigningError, match="returned str, not bytes"):
        MultiProfileSigner([Weird(signer_for("ed25519"))]).sign(b"p", "t")


def test_sign_detailed_names_the_signer_of_each_signature() -> None:
    down = _Backend(signer_for("ecdsa-p256"), fail=RuntimeError("down"))
    signers: list[Signer] = [signer_for("ed25519"), down, signer_for("ecdsa-p384")]
    result = MultiProfileSigner(signers, threshold=2).sign_detailed(b"p", "t")
    assert result.signers == (signers[0], signers[2])  # the failed one made no signature
    message = pae("t", b"p")
    for signer, signature in result.pairs():
        assert signature.keyid == signer.keyid
        assert signer.public_key.verify(signature.sig, message)
    assert MultiProfileSigner(signers[::2]).sign(b"p", "t") == result.envelope


class _Keyless(_Backend):
    """Certificate-bound like the keyless profile: it has `bundle_for`."""

    def bundle_for(self, signature: bytes) -> str:
        raise KeyError(signature)


def test_a_keyless_signature_has_an_empty_keyid_as_cosign_writes() -> None:
    keyless = _Keyless(signer_for("ecdsa-p256", 1))
    keyed = signer_for("ed25519")
    assert envelope_keyid(keyless) == "" and envelope_keyid(keyed) == keyed.keyid
    result = MultiProfileSigner([keyless, keyed]).sign_detailed(b"p", "t")
    assert [s.keyid for s in result.envelope.signatures] == ["", keyed.keyid]
    assert result.signers == (keyless, keyed)
    assert keyless.public_key.verify(result.envelope.signatures[0].sig, pae("t", b"p"))
