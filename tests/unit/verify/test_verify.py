"""The offline verifier on well-formed input: what counts, what is reported, which policy wins.

Adversarial input lives in test_verify_adversarial.py; this module pins the positive paths and
the policy semantics (thresholds of distinct keys, per-type policy, required keyids, hybrid
modes, validity windows, revocation, rotation, artifacts and digests).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dssesign import trust as trustroot
from dssesign.core.dsse import Envelope, Signature, pae
from dssesign.errors import VerificationError
from dssesign.intoto.statement import PAYLOAD_TYPE, STATEMENT_TYPE_V01, STATEMENT_TYPE_V1
from dssesign.profiles.software import SoftwareSigner
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.trust import Policy, Revocation, TrustedKey, TrustRoot, TypePolicy
from dssesign.verify import (
    CODES,
    Code,
    VerificationFailure,
    VerificationResult,
    failure_report,
    verify,
)
from dssesign.verify import _inputs as verify_inputs
from tests.conftest import ALL_ALGORITHMS, signer_for

#: The verification time of every test: key windows are placed around it.
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
SLSA = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document/v2.3"
ARTIFACT = b"payments-api 2.14.1 linux-amd64\n"
ARTIFACT_SHA256 = hashlib.sha256(ARTIFACT).hexdigest()
OTHER_SHA256 = hashlib.sha256(b"another artifact").hexdigest()


def statement(
    predicate_type: str = SLSA,
    *,
    subjects: Sequence[Mapping[str, object]] | None = None,
    statement_type: str = STATEMENT_TYPE_V1,
) -> dict[str, object]:
    return {
        "_type": statement_type,
        "subject": list(
            subjects
            if subjects is not None
            else [
                {"name": "payments-api.tar.gz", "digest": {"sha256": ARTIFACT_SHA256}},
                {"name": "other.tar.gz", "digest": {"sha256": OTHER_SHA256}},
            ]
        ),
        "predicateType": predicate_type,
        "predicate": {"buildDefinition": {"buildType": "https://example.com/build/v1"}},
    }


def payload_of(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def sign_payload(
    signers: Sequence[SoftwareSigner],
    payload: bytes,
    *,
    payload_type: str = PAYLOAD_TYPE,
    keyids: Sequence[str] | None = None,
) -> Envelope:
    """Sign without MultiProfileSigner's guards, so tests can build odd envelopes."""
    message = pae(payload_type, payload)
    signatures = tuple(
        Signature(sig=s.sign(message), keyid=s.keyid if keyids is None else keyids[i])
        for i, s in enumerate(signers)
    )
    return Envelope(payload=payload, payload_type=payload_type, signatures=signatures)


def signed(signers: Sequence[SoftwareSigner], obj: object | None = None, **kwargs: Any) -> bytes:
    return sign_payload(
        signers, payload_of(statement() if obj is None else obj), **kwargs
    ).to_json()


def key(signer: SoftwareSigner, **kwargs: Any) -> TrustedKey:
    return TrustedKey(public_key=signer.public_key, **kwargs)


def make_root(
    keys: Sequence[TrustedKey | SoftwareSigner],
    *,
    threshold: int = 1,
    required: Sequence[str] = (),
    per_type: Mapping[str, TypePolicy] | None = None,
    hybrid: trustroot.HybridMode = "off",
    rotations: Sequence[trustroot.RotationEvent] = (),
    expires: datetime = NOW + timedelta(days=365),
) -> TrustRoot:
    return TrustRoot(
        version=1,
        expires=expires,
        keys=tuple(k if isinstance(k, TrustedKey) else key(k) for k in keys),
        policy=Policy(
            threshold=threshold,
            required_keyids=tuple(required),
            per_type=dict(per_type or {}),
            hybrid=hybrid,
        ),
        rotations=tuple(rotations),
    )


def check(envelope: bytes | str | Envelope, root: TrustRoot, **kwargs: Any) -> VerificationResult:
    kwargs.setdefault("at", NOW)
    return verify(envelope, root, **kwargs)


def refused(envelope: bytes | str | Envelope, root: TrustRoot, **kwargs: Any) -> VerificationError:
    kwargs.setdefault("at", NOW)
    with pytest.raises(VerificationError) as info:
        verify(envelope, root, **kwargs)
    assert isinstance(info.value, VerificationFailure)
    assert info.value.code in CODES
    return info.value


def counted(result: VerificationResult) -> set[str]:
    return {k.keyid for k in result.keys_counted}


# --- every algorithm ------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_each_algorithm_verifies(algorithm: str) -> None:
    signer = signer_for(algorithm)
    result = check(signed([signer]), make_root([key(signer, label=f"ci-{algorithm}")]))
    assert result.predicate_type == SLSA
    assert result.statement_type == STATEMENT_TYPE_V1
    assert [(k.keyid, k.algorithm, k.label) for k in result.keys_counted] == [
        (signer.keyid, signer.algorithm.name, f"ci-{algorithm}")
    ]
    assert result.payload == payload_of(statement())
    assert result.statement["predicateType"] == SLSA


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_each_algorithm_rejects_a_changed_payload(algorithm: str) -> None:
    signer = signer_for(algorithm)
    envelope = sign_payload([signer], payload_of(statement()))
    tampered = dataclasses.replace(envelope, payload=payload_of(statement(SPDX)))
    assert refused(tampered, make_root([signer])).code == Code.NO_VALID_SIGNATURE


def test_multiprofile_signer_output_verifies() -> None:
    signers = [signer_for("ed25519"), signer_for("ecdsa-p256"), signer_for("ml-dsa-65")]
    envelope = MultiProfileSigner(signers).sign(payload_of(statement()), PAYLOAD_TYPE)
    result = check(envelope.to_json(), make_root(signers, threshold=3))
    assert counted(result) == {s.keyid for s in signers}


def test_accepts_str_and_envelope_objects() -> None:
    signer = signer_for("ed25519")
    envelope = sign_payload([signer], payload_of(statement()))
    root = make_root([signer])
    assert (
        check(envelope, root).keys_counted == check(envelope.to_json().decode(), root).keys_counted
    )


def test_url_safe_base64_is_accepted() -> None:
    # DSSE: verifiers MUST accept either alphabet. Find a payload whose encoding differs.
    signer = signer_for("ed25519")
    for n in range(200):
        obj = statement(subjects=[{"name": f"a{'?' * n}>", "digest": {"sha256": ARTIFACT_SHA256}}])
        data = json.loads(signed([signer], obj))
        if "+" in data["payload"] or "/" in data["payload"]:
            break
    else:  # pragma: no cover
        pytest.fail("no payload with + or / found")
    data["payload"] = data["payload"].replace("+", "-").replace("/", "_")
    result = check(json.dumps(data).encode(), make_root([signer]))
    assert counted(result) == {signer.keyid}


# --- thresholds of distinct keys ------------------------------------------------------------


def test_k_of_n() -> None:
    a, b, c = (signer_for("ed25519", i) for i in range(3))
    root = make_root([a, b, c], threshold=2)
    assert counted(check(signed([a, c]), root)) == {a.keyid, c.keyid}
    assert counted(check(signed([a, b, c]), root)) == {a.keyid, b.keyid, c.keyid}
    error = refused(signed([b]), root)
    assert error.code == Code.THRESHOLD_NOT_MET
    assert "threshold is 2" in str(error)


def test_untrusted_signatures_beside_trusted_ones_are_ignored() -> None:
    trusted, stranger = signer_for("ed25519", 0), signer_for("ed25519", 9)
    result = check(signed([stranger, trusted]), make_root([trusted]))
    assert counted(result) == {trusted.keyid}


def test_keyid_is_only_a_hint() -> None:
    a, b = signer_for("ecdsa-p256", 0), signer_for("ed25519", 1)
    root = make_root([a, b], threshold=2)
    # Empty and unknown keyids are tried against every trusted key.
    result = check(signed([a, b], keyids=["", "not-a-keyid"]), root)
    assert counted(result) == {a.keyid, b.keyid}
    assert any("names no trusted key" in w for w in result.warnings)


def test_per_type_policy_overrides_the_default() -> None:
    a, b = signer_for("ed25519", 0), signer_for("ecdsa-p256", 0)
    root = make_root([a, b], threshold=1, per_type={SLSA: TypePolicy(threshold=2)})
    assert refused(signed([a], statement(SLSA)), root).code == Code.THRESHOLD_NOT_MET
    assert check(signed([a, b], statement(SLSA)), root).threshold == 2
    # Other types keep the default threshold of 1.
    assert check(signed([a], statement(SPDX)), root).threshold == 1


def test_per_type_policy_can_lower_the_threshold() -> None:
    a, b = signer_for("ed25519", 0), signer_for("ecdsa-p256", 0)
    root = make_root([a, b], threshold=2, per_type={SPDX: TypePolicy(threshold=1)})
    assert check(signed([a], statement(SPDX)), root).threshold == 1
    assert refused(signed([a], statement(SLSA)), root).code == Code.THRESHOLD_NOT_MET


def test_required_keyids() -> None:
    a, b, c = (signer_for("ed25519", i) for i in range(3))
    root = make_root([a, b, c], threshold=2, required=[a.keyid])
    assert counted(check(signed([a, b]), root)) == {a.keyid, b.keyid}
    error = refused(signed([b, c]), root)
    assert error.code == Code.REQUIRED_KEY_MISSING
    assert a.keyid[:16] in str(error)


def test_per_type_required_keyids_replace_the_default_ones() -> None:
    a, b = signer_for("ed25519", 0), signer_for("ed25519", 1)
    root = make_root(
        [a, b], required=[a.keyid], per_type={SPDX: TypePolicy(1, required_keyids=(b.keyid,))}
    )
    assert check(signed([b], statement(SPDX)), root)
    assert refused(signed([a], statement(SPDX)), root).code == Code.REQUIRED_KEY_MISSING
    assert refused(signed([b], statement(SLSA)), root).code == Code.REQUIRED_KEY_MISSING


def test_required_key_that_is_revoked_reports_the_revocation() -> None:
    a, b = signer_for("ed25519", 0), signer_for("ed25519", 1)
    root = make_root(
        [key(a, revocation=Revocation(NOW - timedelta(days=1), "compromised")), key(b)],
        required=[a.keyid],
    )
    error = refused(signed([a, b]), root)
    assert error.code == Code.KEY_REVOKED
    assert "compromised" in str(error)


# --- hybrid post-quantum modes --------------------------------------------------------------

CLASSICAL = ("ed25519", "ecdsa-p256")


@pytest.mark.parametrize("mode", ["off", "or"])
def test_hybrid_off_and_or_count_any_mix(mode: trustroot.HybridMode) -> None:
    ed, ec, pq = signer_for("ed25519"), signer_for("ecdsa-p256"), signer_for("ml-dsa-65")
    root = make_root([ed, ec, pq], threshold=2, hybrid=mode)
    assert counted(check(signed([ed, pq]), root)) == {ed.keyid, pq.keyid}
    assert counted(check(signed([ed, ec]), root)) == {ed.keyid, ec.keyid}
    assert refused(signed([pq]), root).code == Code.THRESHOLD_NOT_MET


def test_hybrid_and_needs_classical_threshold_and_one_pq() -> None:
    ed, ec, pq = signer_for("ed25519"), signer_for("ecdsa-p256"), signer_for("ml-dsa-65")
    root = make_root([ed, ec, pq], threshold=2, hybrid="and")
    result = check(signed([ed, ec, pq]), root)
    assert counted(result) == {ed.keyid, ec.keyid, pq.keyid}
    # Classical threshold met, no ML-DSA signature.
    assert refused(signed([ed, ec]), root).code == Code.HYBRID_POLICY_NOT_MET
    # Two keys in total, but only one classical: the PQ key does not stand in for it.
    assert refused(signed([ed, pq]), root).code == Code.HYBRID_POLICY_NOT_MET
    assert refused(signed([ed]), root).code == Code.THRESHOLD_NOT_MET


def test_hybrid_and_ignores_an_untrusted_pq_signature() -> None:
    ed, pq_trusted, pq_stranger = (
        signer_for("ed25519"),
        signer_for("ml-dsa-65", 0),
        signer_for("ml-dsa-65", 1),
    )
    root = make_root([ed, pq_trusted], threshold=1, hybrid="and")
    assert refused(signed([ed, pq_stranger]), root).code == Code.HYBRID_POLICY_NOT_MET
    assert counted(check(signed([ed, pq_trusted]), root)) == {ed.keyid, pq_trusted.keyid}


def test_hybrid_pq_only_counts_only_ml_dsa() -> None:
    ed, pq0, pq1 = signer_for("ed25519"), signer_for("ml-dsa-65", 0), signer_for("ml-dsa-65", 1)
    root = make_root([ed, pq0, pq1], threshold=2, hybrid="pq-only")
    assert counted(check(signed([pq0, pq1]), root)) == {pq0.keyid, pq1.keyid}
    result = check(signed([ed, pq0, pq1]), root)
    assert counted(result) == {pq0.keyid, pq1.keyid}
    assert any("classical" in w for w in result.warnings)
    assert refused(signed([ed, pq0]), root).code == Code.HYBRID_POLICY_NOT_MET
    assert refused(signed([pq0]), root).code == Code.THRESHOLD_NOT_MET


# --- key validity, revocation, trust-root expiry --------------------------------------------


def test_validity_window_is_inclusive_at_both_ends() -> None:
    # Same semantics as TrustedKey.valid_at (sigstore's validFor): both ends inclusive.
    signer = signer_for("ed25519")
    start, end = NOW - timedelta(days=10), NOW + timedelta(days=10)
    root = make_root([key(signer, valid_from=start, valid_until=end)])
    envelope = signed([signer])
    for moment in (start, NOW, end):
        assert check(envelope, root, at=moment)
    assert refused(envelope, root, at=start - timedelta(seconds=1)).code == (Code.KEY_NOT_YET_VALID)
    assert refused(envelope, root, at=end + timedelta(seconds=1)).code == Code.KEY_EXPIRED


def test_default_time_is_now() -> None:
    signer = signer_for("ed25519")
    now = datetime.now(UTC)
    live = make_root(
        [key(signer, valid_until=now + timedelta(hours=1))], expires=now + timedelta(1)
    )
    assert verify(signed([signer]), live)
    dead = make_root(
        [key(signer, valid_until=now - timedelta(hours=1))], expires=now + timedelta(1)
    )
    with pytest.raises(VerificationError) as info:
        verify(signed([signer]), dead)
    assert info.value.code == Code.KEY_EXPIRED


def test_at_must_be_timezone_aware() -> None:
    signer = signer_for("ed25519")
    error = refused(signed([signer]), make_root([signer]), at=datetime(2026, 6, 1))
    assert error.code == Code.INVALID_ARGUMENT


def test_revocation_after_the_verification_time_still_counts_with_a_warning() -> None:
    signer = signer_for("ed25519")
    root = make_root([key(signer, revocation=Revocation(NOW + timedelta(days=1), "rotated"))])
    result = check(signed([signer]), root)
    assert counted(result) == {signer.keyid}
    assert any("revoked from" in w for w in result.warnings)


def test_revocation_at_or_before_the_verification_time_refuses() -> None:
    signer = signer_for("ed25519")
    for when in (NOW, NOW - timedelta(days=1)):
        root = make_root([key(signer, revocation=Revocation(when, "key compromise"))])
        error = refused(signed([signer]), root)
        assert error.code == Code.KEY_REVOKED
        assert "key compromise" in str(error)


def test_revoked_key_does_not_fill_a_threshold() -> None:
    a, b = signer_for("ed25519", 0), signer_for("ed25519", 1)
    root = make_root([key(a), key(b, revocation=Revocation(NOW - timedelta(days=1)))], threshold=2)
    assert refused(signed([a, b]), root).code == Code.KEY_REVOKED


def test_trust_root_expiry() -> None:
    signer = signer_for("ed25519")
    root = make_root([signer], expires=NOW)
    assert check(signed([signer]), root, at=NOW)  # valid through `expires`, like the loader
    error = refused(signed([signer]), root, at=NOW + timedelta(seconds=1))
    assert error.code == Code.TRUST_ROOT_EXPIRED


def test_predicate_types_allowed_per_key() -> None:
    sbom_only = signer_for("ed25519", 0)
    anything = signer_for("ed25519", 1)
    root = make_root([key(sbom_only, predicate_types=(SPDX,)), key(anything)])
    assert counted(check(signed([sbom_only], statement(SPDX)), root)) == {sbom_only.keyid}
    error = refused(signed([sbom_only], statement(SLSA)), root)
    assert error.code == Code.PREDICATE_TYPE_NOT_ALLOWED
    # The key that may attest to it still carries the envelope alone.
    result = check(signed([sbom_only, anything], statement(SLSA)), root)
    assert counted(result) == {anything.keyid}


def test_requested_predicate_type() -> None:
    signer = signer_for("ed25519")
    root = make_root([signer])
    assert check(signed([signer]), root, predicate_type=SLSA).predicate_type == SLSA
    error = refused(signed([signer]), root, predicate_type=SPDX)
    assert error.code == Code.PREDICATE_TYPE_MISMATCH


# --- rotation -------------------------------------------------------------------------------

ROTATED_AT = NOW - timedelta(days=5)


def _rotated() -> tuple[SoftwareSigner, SoftwareSigner, TrustRoot]:
    old, new = signer_for("ecdsa-p256", 3), signer_for("ed25519", 3)
    root = make_root([key(old, label="release")])
    rotated = trustroot.rotate_key(root, old, new.public_key, transition_days=30, now=ROTATED_AT)
    return old, new, rotated


def test_rotation_both_keys_count_during_the_transition() -> None:
    old, new, root = _rotated()
    assert counted(check(signed([old]), root)) == {old.keyid}
    result = check(signed([new]), root)
    assert [(k.keyid, k.label) for k in result.keys_counted] == [(new.keyid, "release")]


def test_rotation_old_key_stops_after_the_deadline() -> None:
    old, new, root = _rotated()
    after = ROTATED_AT + timedelta(days=30, seconds=1)
    expires_later = dataclasses.replace(root, expires=after + timedelta(days=365))
    assert check(signed([new]), expires_later, at=after)
    error = refused(signed([old]), expires_later, at=after)
    assert error.code == Code.KEY_ROTATED_OUT
    # At the deadline itself it still counts (the window is inclusive).
    assert check(signed([old]), expires_later, at=ROTATED_AT + timedelta(days=30))


def test_rotation_new_key_does_not_count_before_the_rotation() -> None:
    _, new, root = _rotated()
    error = refused(signed([new]), root, at=ROTATED_AT - timedelta(seconds=1))
    assert error.code == Code.KEY_NOT_YET_VALID


def test_rotation_with_a_forged_handover_does_not_count_the_new_key() -> None:
    old, new, root = _rotated()
    (event,) = root.rotations
    forged_sig = bytearray(event.handover_signature)
    forged_sig[-1] ^= 1
    forged = dataclasses.replace(
        root, rotations=(dataclasses.replace(event, handover_signature=bytes(forged_sig)),)
    )
    assert refused(signed([new]), forged).code == Code.ROTATION_UNVERIFIED
    assert counted(check(signed([old]), forged)) == {old.keyid}


# --- artifacts and digests ------------------------------------------------------------------


def test_artifact_matches_a_subject(tmp_path: Path) -> None:
    signer = signer_for("ed25519")
    artifact = tmp_path / "payments-api.tar.gz"
    artifact.write_bytes(ARTIFACT)
    result = check(signed([signer]), make_root([signer]), artifacts=[artifact])
    assert [(m.name, m.digest, m.artifact) for m in result.subjects_matched] == [
        ("payments-api.tar.gz", f"sha256:{ARTIFACT_SHA256}", str(artifact))
    ]
    assert not any("not checked" in w for w in result.warnings)


def test_each_artifact_must_match(tmp_path: Path) -> None:
    signer = signer_for("ed25519")
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(ARTIFACT)
    bad.write_bytes(ARTIFACT + b"tampered")
    root = make_root([signer])
    error = refused(signed([signer]), root, artifacts=[good, bad])
    assert error.code == Code.SUBJECT_MISMATCH
    assert str(bad) in str(error)


def test_unreadable_artifact(tmp_path: Path) -> None:
    signer = signer_for("ed25519")
    error = refused(signed([signer]), make_root([signer]), artifacts=[tmp_path / "missing"])
    assert error.code == Code.ARTIFACT_UNREADABLE


def test_digests_match_and_mismatch() -> None:
    signer = signer_for("ed25519")
    root = make_root([signer])
    envelope = signed([signer])
    result = check(envelope, root, digests=[f"sha256:{ARTIFACT_SHA256}", f"sha256:{OTHER_SHA256}"])
    assert [m.name for m in result.subjects_matched] == ["payments-api.tar.gz", "other.tar.gz"]
    # Uppercase hex is read as the same digest.
    assert check(envelope, root, digests=[f"SHA256:{ARTIFACT_SHA256.upper()}"])
    error = refused(envelope, root, digests=[f"sha256:{'0' * 64}"])
    assert error.code == Code.SUBJECT_MISMATCH
    for bad in ("sha256:xyz", "nonsense", f"md5:{'0' * 32}"):
        assert refused(envelope, root, digests=[bad]).code == Code.INVALID_ARGUMENT


def test_digest_of_another_algorithm() -> None:
    signer = signer_for("ed25519")
    sha512 = hashlib.sha512(ARTIFACT).hexdigest()
    obj = statement(
        subjects=[{"name": "a", "digest": {"sha256": ARTIFACT_SHA256, "sha512": sha512}}]
    )
    result = check(signed([signer], obj), make_root([signer]), digests=[f"sha512:{sha512}"])
    assert result.subjects_matched[0].digest == f"sha512:{sha512}"
    # A subject without that algorithm does not match it.
    error = refused(signed([signer]), make_root([signer]), digests=[f"sha512:{sha512}"])
    assert error.code == Code.SUBJECT_MISMATCH


def test_artifacts_argument_must_not_be_one_string(tmp_path: Path) -> None:
    signer = signer_for("ed25519")
    error = refused(signed([signer]), make_root([signer]), artifacts=str(tmp_path))
    assert error.code == Code.INVALID_ARGUMENT


# --- statement versions, results and reports ------------------------------------------------


def test_statement_v01_is_accepted_and_reported() -> None:
    signer = signer_for("ed25519")
    obj = statement(statement_type=STATEMENT_TYPE_V01)
    result = check(signed([signer], obj), make_root([signer]))
    assert result.statement_type == STATEMENT_TYPE_V01
    assert any("v0.1" in w for w in result.warnings)
    assert "v0.1" in result.message


def test_result_report_shape(tmp_path: Path) -> None:
    signer = signer_for("ecdsa-p256")
    artifact = tmp_path / "a.tar.gz"
    artifact.write_bytes(ARTIFACT)
    result = check(signed([signer]), make_root([key(signer, label="ci")]), artifacts=[artifact])
    report = result.to_dict()
    assert list(report) == [
        "schemaVersion",
        "ok",
        "code",
        "message",
        "predicateType",
        "subjectsMatched",
        "keysCounted",
        "identitiesCounted",
        "warnings",
        "signatures",
        "roles",
    ]
    assert report["schemaVersion"] == 1
    assert report["ok"] is True and report["code"] == "OK" and result.ok
    assert report["predicateType"] == SLSA
    assert report["keysCounted"] == [
        {"keyid": signer.keyid, "algorithm": "PKIX_ECDSA_P256_SHA_256", "label": "ci"}
    ]
    assert report["subjectsMatched"] == [
        {
            "name": "payments-api.tar.gz",
            "digest": f"sha256:{ARTIFACT_SHA256}",
            "artifact": str(artifact),
        }
    ]
    assert json.loads(json.dumps(report)) == report


def test_failure_report_shape() -> None:
    a, b = signer_for("ed25519", 0), signer_for("ed25519", 1)
    error = refused(signed([a]), make_root([a, b], threshold=2))
    report = failure_report(error)
    assert list(report) == list(check(signed([a]), make_root([a])).to_dict())
    assert report["ok"] is False
    assert report["code"] == "THRESHOLD_NOT_MET"
    assert report["predicateType"] == SLSA
    assert report["keysCounted"] == [{"keyid": a.keyid, "algorithm": "PKIX_ED25519", "label": None}]
    assert json.loads(json.dumps(report)) == report
    # A plain VerificationError (raised elsewhere) reports too.
    plain = failure_report(VerificationError(Code.NO_SIGNATURES, "none"))
    assert plain["code"] == "NO_SIGNATURES" and plain["keysCounted"] == []


def test_every_code_has_a_meaning_and_is_stable() -> None:
    assert set(CODES) == {c.value for c in Code}
    assert all(meaning and "\n" not in meaning for meaning in CODES.values())
    assert all(code == code.upper() for code in CODES)


def test_internal_errors_are_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = signer_for("ed25519")

    def explode(*_: object, **__: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(verify_inputs, "parse_statement", explode)
    error = refused(signed([signer]), make_root([signer]))
    assert error.code == Code.INTERNAL
    assert "RuntimeError" in str(error)


def test_a_raising_handover_check_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    _, new, root = _rotated()

    def explode(*_: object) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(trustroot, "verify_handover", explode)
    fresh = dataclasses.replace(root)  # a new object: no cached handover result
    assert refused(signed([new]), fresh).code == Code.ROTATION_UNVERIFIED


def test_trust_root_with_naive_times_is_refused() -> None:
    signer = signer_for("ed25519")
    root = make_root([key(signer, valid_until=datetime(2030, 1, 1))])
    assert refused(signed([signer]), root).code == Code.TRUST_ROOT_INVALID


def test_result_payload_is_exactly_what_was_signed() -> None:
    signer = signer_for("ed25519")
    payload = payload_of(statement())
    data = json.loads(sign_payload([signer], payload).to_json())
    data["payload"] = base64.b64encode(payload).decode()
    assert check(json.dumps(data).encode(), make_root([signer])).payload == payload


def test_keys_dropped_beside_a_met_threshold_are_reported() -> None:
    a, b = signer_for("ed25519", 0), signer_for("ed25519", 1)
    root = make_root([key(a), key(b, revocation=Revocation(NOW - timedelta(days=1), "lost"))])
    result = check(signed([a, b]), root)
    assert counted(result) == {a.keyid}
    assert any(w.startswith("not counted:") and "lost" in w for w in result.warnings)


def test_every_code_is_documented() -> None:
    from pathlib import Path

    from dssesign.verify import CODES

    doc = (Path(__file__).resolve().parents[3] / "docs" / "verification.md").read_text()
    for code in CODES:
        assert f"| `{code}` |" in doc, code


def test_verdicts_are_counted_once_metrics_are_configured() -> None:
    from prometheus_client import CollectorRegistry

    from dssesign import metrics

    registry = CollectorRegistry()
    assert metrics.configure(registry)
    try:
        signer = signer_for("ed25519")
        check(signed([signer]), make_root([signer]))
        refused(signed([signer]), make_root([signer_for("ed25519", 1)]))

        def count(result: str, code: str) -> float | None:
            labels = {"result": result, "code": code}
            return registry.get_sample_value("dssesign_verify_total", labels)

        assert count("ok", "ok") == 1
        assert count("failed", "NO_VALID_SIGNATURE") == 1
    finally:
        metrics._metrics = None  # back to "not configured" for the other tests
        metrics._tried = False


def test_legacy_cosign_envelope_with_empty_keyid_verifies() -> None:
    """`cosign attest-blob --key` output: keyid "", Statement v0.1, compact envelope JSON."""
    signer = signer_for("ecdsa-p256")
    envelope = sign_payload(
        [signer], payload_of(statement(statement_type=STATEMENT_TYPE_V01)), keyids=[""]
    )
    data = json.dumps(
        {
            "payloadType": envelope.payload_type,
            "payload": base64.b64encode(envelope.payload).decode(),
            "signatures": [
                {"keyid": "", "sig": base64.b64encode(envelope.signatures[0].sig).decode()}
            ],
        }
    )
    result = check(
        data, make_root([signer_for("ed25519"), signer]), digests=[f"sha256:{ARTIFACT_SHA256}"]
    )
    assert [k.keyid for k in result.keys_counted] == [signer.keyid]
    assert result.statement_type == STATEMENT_TYPE_V01 and result.identities_counted == ()
    assert not any("names no trusted key" in w for w in result.warnings)


def test_cosign_type_names_in_the_docs_match_the_registry() -> None:
    from dssesign.intoto.predicates import resolve_predicate_type

    doc = (Path(__file__).resolve().parents[3] / "docs" / "cosign.md").read_text()
    rows = [
        line.split("|")[1:3]
        for line in doc.splitlines()
        if line.startswith("| `") and "https://" in line.split("|")[2]
    ]
    table = {name.strip().strip("`"): uri.strip().split("`")[1] for name, uri in rows}
    assert set(table) == {
        "slsaprovenance",
        "slsaprovenance02",
        "slsaprovenance1",
        "spdx",
        "spdxjson",
        "cyclonedx",
        "vuln",
        "openvex",
        "custom",
        "link",
    }
    assert {name: resolve_predicate_type(name) for name in table} == table
