"""Roles at verification time, and the report's `signatures` and `roles` entries.

A role counts distinct counted keys and identities: only what survived validity, revocation,
rotation, timestamps, predicate types and the hybrid mode; one key once; a rotated-in key in
its predecessor's roles, as one member with it. Each test asserts the exact code.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dssesign import trust as tr
from dssesign.codes import Code
from dssesign.errors import VerificationError
from dssesign.profiles.software import SoftwareSigner
from dssesign.sign.bundles import bundle_json, keyed_bundle
from dssesign.timestamp.verify import VerifiedTime
from dssesign.trust import Policy, Revocation, Role, TrustedKey, TrustRoot, TypePolicy
from dssesign.verify import (
    CountedIdentity,
    VerificationFailure,
    VerificationResult,
    _bundled,
    failure_report,
    verify,
)
from dssesign.verify._roles import _evaluate_roles
from dssesign.verify._run import _Run
from tests.conftest import signer_for
from tests.unit.verify.test_verify import (
    NOW,
    SLSA,
    SPDX,
    payload_of,
    sign_payload,
    signed,
    statement,
)

A, B, C, D = (signer_for("ed25519", i) for i in range(4))
ML = signer_for("ml-dsa-65", 0)
ISSUER = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1"


def trusted(signer: SoftwareSigner, **kwargs: Any) -> TrustedKey:
    return TrustedKey(public_key=signer.public_key, **kwargs)


def make(
    keys: Sequence[TrustedKey | SoftwareSigner],
    roles: Sequence[Role],
    *,
    required: Sequence[str] = (),
    any_role: bool = False,
    threshold: int = 1,
    per_type: Mapping[str, TypePolicy] | None = None,
    hybrid: tr.HybridMode = "off",
    sigstore: Mapping[str, Any] | None = None,
) -> TrustRoot:
    """A trust root that passes every rule a loaded one does (dumped and loaded back)."""
    root = TrustRoot(
        version=1,
        expires=NOW + timedelta(days=365),
        keys=tuple(k if isinstance(k, TrustedKey) else trusted(k) for k in keys),
        policy=Policy(
            threshold=threshold,
            per_type=dict(per_type or {}),
            hybrid=hybrid,
            required_roles=tuple(required),
            any_role=any_role,
        ),
        sigstore=sigstore,
        roles=tuple(roles),
    )
    return tr.load_trust_root(tr.dump_trust_root(root, allow_incomplete=False))


def role(name: str, threshold: int, *members: SoftwareSigner) -> Role:
    return Role(name, threshold, tuple(m.keyid for m in members))


def teams(**kwargs: Any) -> TrustRoot:
    """build: A (1 of 1); review: B, C, D (2 of 3); both required unless said otherwise."""
    kwargs.setdefault("required", ("build", "review"))
    return make([A, B, C, D], [role("build", 1, A), role("review", 2, B, C, D)], **kwargs)


def check(envelope: bytes, root: TrustRoot, **kwargs: Any) -> VerificationResult:
    kwargs.setdefault("at", NOW)
    return verify(envelope, root, **kwargs)


def refused(envelope: bytes, root: TrustRoot, code: Code, **kwargs: Any) -> VerificationFailure:
    kwargs.setdefault("at", NOW)
    with pytest.raises(VerificationFailure) as info:
        verify(envelope, root, **kwargs)
    assert info.value.code == code, info.value
    return info.value


def roles_of(report: Mapping[str, Any]) -> dict[str, tuple[int, int, bool]]:
    return {n: (r["threshold"], r["counted"], r["met"]) for n, r in report["roles"].items()}


def entries(report: Mapping[str, Any]) -> list[tuple[str, str, str | None, list[str]]]:
    return [(s["keyid"], s["status"], s["code"], s["roles"]) for s in report["signatures"]]


# --- all, any, and together with the rest of the policy --------------------------------------


def test_every_required_role_must_be_met() -> None:
    result = check(signed([A, B, C]), teams())
    assert roles_of(result.to_dict()) == {"build": (1, 1, True), "review": (2, 2, True)}
    assert entries(result.to_dict()) == [
        (A.keyid, "counted", None, ["build"]),
        (B.keyid, "counted", None, ["review"]),
        (C.keyid, "counted", None, ["review"]),
    ]
    error = refused(signed([A, B]), teams(), Code.ROLE_POLICY_NOT_MET)
    assert str(error) == (
        f"role 'review' is short: 1 distinct member(s) counted (key {B.keyid[:16]}), threshold 2"
    )
    report = failure_report(error)
    assert roles_of(report) == {"build": (1, 1, True), "review": (2, 1, False)}
    # Review alone is not enough either: build counted none.
    error = refused(signed([B, C, D]), teams(), Code.ROLE_POLICY_NOT_MET)
    assert str(error).startswith("role 'build' is short: 0 distinct member(s) counted (none)")


def test_any_role_needs_one_of_them() -> None:
    root = teams(any_role=True)
    assert check(signed([A]), root).roles["build"].met
    assert check(signed([B, D]), root).roles["review"].met
    error = refused(signed([B]), root, Code.ROLE_POLICY_NOT_MET)
    message = str(error)
    assert message.startswith("no required role is met (any one would do): ")
    assert "role 'build' is short: 0 distinct member(s) counted (none), threshold 1" in message
    assert f"role 'review' is short: 1 distinct member(s) counted (key {B.keyid[:16]})" in message


def test_roles_are_anded_with_the_threshold_and_required_keys() -> None:
    # Both roles met by A and B+C, but the threshold asks for four distinct keys.
    error = refused(signed([A, B, C]), teams(threshold=4), Code.THRESHOLD_NOT_MET)
    assert roles_of(failure_report(error)) == {"build": (1, 1, True), "review": (2, 2, True)}
    # The threshold met by review's keys alone, but build is required too.
    assert str(refused(signed([B, C, D]), teams(threshold=3), Code.ROLE_POLICY_NOT_MET))
    # A per-type policy brings its own roles; a type without one keeps the global roles.
    per_type = {SPDX: TypePolicy(1, required_roles=("build",)), SLSA: TypePolicy(2)}
    root = teams(per_type=per_type)
    assert check(signed([A], statement(SPDX)), root).predicate_type == SPDX
    refused(signed([A, B]), root, Code.ROLE_POLICY_NOT_MET)  # SLSA: build and review
    assert check(signed([A, B, C]), root)


def test_a_role_not_required_is_reported_but_not_enforced() -> None:
    root = teams(required=("build",))
    result = check(signed([A]), root)
    assert roles_of(result.to_dict()) == {"build": (1, 1, True), "review": (2, 0, False)}


# --- adversarial: one key twice, keys that do not count, the wrong role ---------------------


def test_one_key_cannot_meet_a_role_threshold_twice() -> None:
    root = make([A, B, C], [role("review", 2, B, C)], required=("review",))
    # The same key's two signatures, both under its keyid.
    error = refused(signed([A, B, B]), root, Code.ROLE_POLICY_NOT_MET)
    assert "1 distinct member(s) counted" in str(error)
    assert entries(failure_report(error)) == [
        (A.keyid, "counted", None, []),
        (B.keyid, "counted", None, ["review"]),
        (B.keyid, "verified-untrusted", "SIGNATURE_DUPLICATE", []),
    ]
    # The second signature without a keyid, or with another key's keyid: still one key.
    for keyids in ([B.keyid, ""], [B.keyid, "f" * 64]):
        envelope = sign_payload([B, B], payload_of(statement()), keyids=keyids).to_json()
        error = refused(envelope, root, Code.ROLE_POLICY_NOT_MET)
        assert entries(failure_report(error))[1] == (
            B.keyid,
            "verified-untrusted",
            "SIGNATURE_DUPLICATE",
            [],
        )
    # A second signature under C's keyid is C's or nothing: B's signature there is invalid.
    envelope = sign_payload([B, B], payload_of(statement()), keyids=[B.keyid, C.keyid]).to_json()
    error = refused(envelope, root, Code.ROLE_POLICY_NOT_MET)
    assert entries(failure_report(error))[1] == (C.keyid, "invalid", "NO_VALID_SIGNATURE", [])


def test_a_role_met_only_by_a_revoked_key_is_refused() -> None:
    revoked = trusted(C, revocation=Revocation(NOW - timedelta(days=1), "laptop stolen"))
    root = make([A, B, revoked], [role("review", 2, B, C)], required=("review",))
    error = refused(signed([A, B, C]), root, Code.ROLE_POLICY_NOT_MET)
    assert str(error).startswith(
        f"role 'review' is short: 1 distinct member(s) counted (key {B.keyid[:16]}), threshold 2; "
        f"not counted: key {C.keyid[:16]} was revoked at"
    )
    assert "laptop stolen" in str(error)
    assert entries(failure_report(error))[2] == (C.keyid, "verified-untrusted", "KEY_REVOKED", [])
    # When the revoked key is the only signer, nothing is left to count: its own code.
    single = make([A, revoked], [role("review", 1, C)], required=("review",))
    error = refused(signed([C]), single, Code.KEY_REVOKED)
    assert entries(failure_report(error)) == [(C.keyid, "verified-untrusted", "KEY_REVOKED", [])]
    assert failure_report(error)["roles"] == {}  # stopped before the policy step


ROTATED_AT = NOW - timedelta(days=5)


def rotated(roles: Sequence[Role], **kwargs: Any) -> TrustRoot:
    """A (old) rotated to D at ROTATED_AT with a 2-day transition (over by NOW); B, C plain."""
    root = make([A, B, C], roles, **kwargs)
    root = tr.rotate_key(root, A, D.public_key, transition_days=2, now=ROTATED_AT)
    return tr.load_trust_root(tr.dump_trust_root(root, allow_incomplete=False))


def test_a_role_met_only_by_a_rotated_out_key_is_refused() -> None:
    root = rotated([role("release", 1, A)], required=("release",))
    error = refused(signed([A, B]), root, Code.ROLE_POLICY_NOT_MET)
    assert f"not counted: key {A.keyid[:16]} was rotated to {D.keyid[:16]}" in str(error)
    assert entries(failure_report(error))[0] == (
        A.keyid,
        "verified-untrusted",
        "KEY_ROTATED_OUT",
        [],
    )


def test_a_rotated_in_key_inherits_its_predecessors_roles() -> None:
    root = rotated([role("release", 1, A)], required=("release",))
    result = check(signed([D]), root)
    assert entries(result.to_dict()) == [(D.keyid, "counted", None, ["release"])]
    assert result.roles["release"].met


def test_an_old_and_a_new_key_of_one_chain_are_one_member() -> None:
    root = rotated([role("release", 2, A, B)], required=("release",))
    during = ROTATED_AT + timedelta(days=1)  # both A and D count in the transition
    error = refused(signed([A, D]), root, Code.ROLE_POLICY_NOT_MET, at=during)
    assert failure_report(error)["keysCounted"] and len(error.keys_counted) == 2
    assert roles_of(failure_report(error)) == {"release": (2, 1, False)}
    assert any("one member" in w for w in error.warnings)
    assert check(signed([D, B]), root, at=during).roles["release"].counted == 2


def test_a_key_of_role_a_does_not_count_for_role_b() -> None:
    root = make([A, B, C], [role("build", 1, A), role("review", 1, B)], required=("review",))
    error = refused(signed([A, C]), root, Code.ROLE_POLICY_NOT_MET)
    assert str(error) == "role 'review' is short: 0 distinct member(s) counted (none), threshold 1"
    assert entries(failure_report(error)) == [
        (A.keyid, "counted", None, ["build"]),
        (C.keyid, "counted", None, []),
    ]
    # A key may belong to two roles and counts in each.
    both = make(
        [A, B], [role("build", 1, A), role("review", 1, A, B)], required=("build", "review")
    )
    assert entries(check(signed([A]), both).to_dict()) == [
        (A.keyid, "counted", None, ["build", "review"])
    ]


def test_keys_set_aside_by_type_or_hybrid_mode_do_not_count_in_roles() -> None:
    slsa_only = trusted(B, predicate_types=(SLSA,))
    root = make(
        [A, slsa_only, C],
        [role("review", 1, B, C)],
        per_type={SPDX: TypePolicy(1)},
        required=("review",),
    )
    error = refused(signed([A, B], statement(SPDX)), root, Code.ROLE_POLICY_NOT_MET)
    assert entries(failure_report(error))[1] == (
        B.keyid,
        "verified-untrusted",
        "PREDICATE_TYPE_NOT_ALLOWED",
        [],
    )
    pq = make([A, ML], [role("review", 1, A, ML)], hybrid="pq-only", required=("review",))
    result = check(signed([A, ML]), pq)
    assert entries(result.to_dict()) == [
        (A.keyid, "verified-untrusted", "HYBRID_POLICY_NOT_MET", []),
        (ML.keyid, "counted", None, ["review"]),
    ]
    assert roles_of(result.to_dict()) == {"review": (1, 1, True)}


def test_a_trust_root_built_in_memory_with_a_broken_role_is_refused() -> None:
    root = teams()
    ghost = dataclasses.replace(
        root, policy=dataclasses.replace(root.policy, required_roles=("qa",))
    )
    refused(signed([A]), ghost, Code.TRUST_ROOT_INVALID)
    zero = dataclasses.replace(root, roles=(Role("build", 0, (A.keyid,)), root.roles[1]))
    refused(signed([A]), zero, Code.TRUST_ROOT_INVALID)
    stranger = dataclasses.replace(root, roles=(Role("build", 1, ("e" * 64,)), root.roles[1]))
    refused(signed([A]), stranger, Code.TRUST_ROOT_INVALID)


# --- roles and trusted time --------------------------------------------------------------------

TOKEN_TIME = NOW - timedelta(days=3)


def stamped(monkeypatch: pytest.MonkeyPatch, times: Mapping[bytes, datetime]) -> None:
    """Tokens verify to the given times (the token checks themselves: timestamp tests)."""

    def fake(
        root: object, tokens: tuple[bytes, ...], signature: bytes, now: datetime
    ) -> tuple[VerifiedTime, ...]:
        assert tokens == (b"token",)
        return (VerifiedTime(times[signature], "acme-tsa", 1, "sha256"),)

    monkeypatch.setattr(_bundled, "_verified_times", fake)


def test_a_key_counted_at_its_timestamp_counts_in_its_role(monkeypatch: pytest.MonkeyPatch) -> None:
    revoked = trusted(B, revocation=Revocation(NOW - timedelta(days=1), "compromised"))
    root = make([A, revoked], [role("review", 1, B)], required=("review",))
    envelope = sign_payload([A, B], payload_of(statement()))
    b_sig = envelope.signatures[1].sig
    bundle = bundle_json(
        keyed_bundle(envelope.payload, envelope.payload_type, b_sig, B.public_key, [b"token"])
    )
    stamped(monkeypatch, {b_sig: TOKEN_TIME})
    # Judged at its token time, before the revocation: B counts, and counts in its role.
    result = check(envelope.to_json(), root, bundles=[bundle])
    report = result.to_dict()
    assert report["signatures"] == [
        {
            "index": 0,
            "keyid": A.keyid,
            "status": "counted",
            "code": None,
            "roles": [],
            "signedAt": None,
            "timeSource": "at",
        },
        {
            "index": 1,
            "keyid": B.keyid,
            "status": "counted",
            "code": None,
            "roles": ["review"],
            "signedAt": "2026-05-29T12:00:00Z",
            "timeSource": "rfc3161",
        },
    ]
    assert roles_of(report) == {"review": (1, 1, True)}
    # Without the token, B is judged now: revoked, so the role is short.
    error = refused(envelope.to_json(), root, Code.ROLE_POLICY_NOT_MET)
    assert entries(failure_report(error))[1] == (B.keyid, "verified-untrusted", "KEY_REVOKED", [])
    # A token dated after the revocation does not help either.
    stamped(monkeypatch, {b_sig: NOW - timedelta(hours=1)})
    error = refused(envelope.to_json(), root, Code.ROLE_POLICY_NOT_MET, bundles=[bundle])
    assert "judged at its RFC 3161 timestamp" in str(error)


def test_required_timestamps_apply_inside_roles(monkeypatch: pytest.MonkeyPatch) -> None:
    root = make([A, B], [role("review", 1, B)], required=("review",))
    envelope = sign_payload([A, B], payload_of(statement()))
    a_sig = envelope.signatures[0].sig
    bundle = bundle_json(
        keyed_bundle(envelope.payload, envelope.payload_type, a_sig, A.public_key, [b"token"])
    )
    stamped(monkeypatch, {a_sig: TOKEN_TIME})
    error = refused(
        envelope.to_json(), root, Code.ROLE_POLICY_NOT_MET, bundles=[bundle], require_timestamp=True
    )
    assert entries(failure_report(error)) == [
        (A.keyid, "counted", None, []),
        (B.keyid, "verified-untrusted", "TIMESTAMP_REQUIRED", []),
    ]


# --- keyless identities in roles ----------------------------------------------------------------

SIGSTORE: dict[str, Any] = {
    "trustedRoot": {"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"},
    "identities": [
        {"issuer": ISSUER, "subjectRegExp": "https://github\\.com/acme/.*", "name": "acme-ci"},
        {"issuer": "https://accounts.google.com", "subject": "officer@acme.example"},
    ],
}


def test_identities_count_in_their_roles_once_each() -> None:
    root = make(
        [A],
        [Role("build", 2, (A.keyid,), ("acme-ci",))],
        required=("build",),
        sigstore=copy.deepcopy(SIGSTORE),
    )
    run = _Run()
    first = CountedIdentity(ISSUER, WORKFLOW)
    second = CountedIdentity(ISSUER, WORKFLOW.replace("release", "nightly"))
    officer = CountedIdentity("https://accounts.google.com", "officer@acme.example")
    run.identity_names = {
        (first.issuer, first.subject): ("acme-ci",),
        (second.issuer, second.subject): ("acme-ci",),
        (officer.issuer, officer.subject): (),
    }
    # One identity (however many times) plus no key: 1 of 2.
    short = _evaluate_roles(
        run, root, predicate_type=SLSA, keys=[], identities=[first, first, officer], excluded=()
    )
    assert short is not None and short.code == Code.ROLE_POLICY_NOT_MET
    assert str(short) == (
        f"role 'build' is short: 1 distinct member(s) counted (identity {WORKFLOW}), threshold 2"
    )
    assert run.identity_roles == {(ISSUER, WORKFLOW): ("build",)}
    # Two distinct signers matching the member rule, or one of them and the key: met.
    assert (
        _evaluate_roles(
            run, root, predicate_type=SLSA, keys=[], identities=[first, second], excluded=()
        )
        is None
    )
    assert (
        _evaluate_roles(
            run, root, predicate_type=SLSA, keys=[A.keyid], identities=[first], excluded=()
        )
        is None
    )
    assert run.roles["build"].counted == 2


# --- the report --------------------------------------------------------------------------------


def test_report_lists_counted_verified_untrusted_and_invalid_signatures() -> None:
    revoked = trusted(C, revocation=Revocation(NOW - timedelta(days=1), ""))
    root = make([A, B, revoked], [role("build", 1, A)], required=("build",), threshold=2)
    envelope = sign_payload([A, B, C, D], payload_of(statement()))
    data = json.loads(envelope.to_json())
    forged = dict(data["signatures"][1])
    forged["sig"] = data["signatures"][0]["sig"]  # A's signature under B's keyid
    data["signatures"].append(forged)
    result = check(json.dumps(data).encode(), root)
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
    assert report["signatures"] == [
        {
            "index": 0,
            "keyid": A.keyid,
            "status": "counted",
            "code": None,
            "roles": ["build"],
            "signedAt": None,
            "timeSource": "at",
        },
        {
            "index": 1,
            "keyid": B.keyid,
            "status": "counted",
            "code": None,
            "roles": [],
            "signedAt": None,
            "timeSource": "at",
        },
        {
            "index": 2,
            "keyid": C.keyid,
            "status": "verified-untrusted",
            "code": "KEY_REVOKED",
            "roles": [],
            "signedAt": None,
            "timeSource": "at",
        },
        {
            "index": 3,
            "keyid": D.keyid,
            "status": "invalid",
            "code": "NO_VALID_SIGNATURE",
            "roles": [],
            "signedAt": None,
            "timeSource": "at",
        },
        {
            "index": 4,
            "keyid": B.keyid,
            "status": "invalid",
            "code": "NO_VALID_SIGNATURE",
            "roles": [],
            "signedAt": None,
            "timeSource": "at",
        },
    ]
    assert report["roles"] == {"build": {"threshold": 1, "counted": 1, "met": True}}
    assert json.loads(json.dumps(report)) == report


def test_failure_report_has_the_same_members_and_says_what_stopped_it() -> None:
    root = teams()
    # Stopped before the policy: the Statement is not one. The keys that verified did not
    # count, for the reason the verification stopped.
    envelope = sign_payload([A, B], b'{"not": "a statement"}').to_json()
    error = refused(envelope, root, Code.INVALID_STATEMENT)
    report = failure_report(error)
    assert list(report) == list(check(signed([A, B, C]), root).to_dict())
    assert report["schemaVersion"] == 1
    assert entries(report) == [
        (A.keyid, "verified-untrusted", "INVALID_STATEMENT", []),
        (B.keyid, "verified-untrusted", "INVALID_STATEMENT", []),
    ]
    assert report["roles"] == {}
    # Nothing verifies: every entry invalid; a plain VerificationError reports empty lists.
    error = refused(signed([signer_for("ed25519", 9)]), root, Code.NO_VALID_SIGNATURE)
    assert entries(failure_report(error)) == [
        (signer_for("ed25519", 9).keyid, "invalid", "NO_VALID_SIGNATURE", [])
    ]
    plain = failure_report(VerificationError(Code.NO_SIGNATURES, "none"))
    assert plain["schemaVersion"] == 1 and plain["signatures"] == [] and plain["roles"] == {}


def test_time_source_is_now_without_a_verification_time() -> None:
    root = dataclasses.replace(teams(), expires=datetime(2099, 1, 1, tzinfo=UTC))
    result = verify(signed([A, B, C]), root)
    assert {s.time_source for s in result.signatures} == {"now"}
