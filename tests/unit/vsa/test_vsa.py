"""`dssesign.vsa`: the SLSA VSA Statement of verify's results, its verdict rules, its signing.

The verdict is derived, never chosen: PASSED only when every input verified. These tests feed
real `verify` results (and real failures: tampered envelopes, a wrong predicate type) in.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dssesign import trust as tr
from dssesign.core.dsse import Envelope
from dssesign.errors import ConfigError, InputError, PredicateError, VerificationError
from dssesign.intoto.predicates import VSA_URI, validate_predicate
from dssesign.intoto.statement import PAYLOAD_TYPE, statement_payload
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.trust import TrustRoot
from dssesign.verify import VerificationResult, verify
from dssesign.vsa import (
    DEFAULT_VERIFIER_ID,
    MAX_INPUTS,
    VerifiedInput,
    VsaRequest,
    build_vsa,
    emit_vsa,
    verification_result,
)
from tests.conftest import signer_for

APP = hashlib.sha256(b"app 1.0").hexdigest()
LIB = hashlib.sha256(b"lib 2.0").hexdigest()
OTHER = hashlib.sha256(b"something else").hexdigest()
ROOT_BYTES = b'{"a trust root": "as read"}'
RESOURCE = "https://example.com/releases/app-1.0.tar.gz"
PROVENANCE = "https://slsa.dev/provenance/v1"


def _statement(
    *subjects: tuple[str, str], predicate_type: str = "https://example.com/p/v1"
) -> bytes:
    return statement_payload(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {"sha256": value}} for name, value in subjects],
            "predicateType": predicate_type,
            "predicate": {"k": "v"},
        }
    )


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    """A signing key and a VSA key, both trusted by one trust root (threshold 1)."""
    signer, vsa_signer = signer_for("ed25519", 7), signer_for("ecdsa-p256", 7)
    root = tr.init_trust_root(threshold=1, now=datetime.now(UTC) - timedelta(days=1))
    for key in (signer, vsa_signer):
        root = tr.add_key(root, key.public_key)
    return {"signer": signer, "vsa": vsa_signer, "root": root}


def _envelope(world: dict[str, Any], payload: bytes) -> bytes:
    return MultiProfileSigner([world["signer"]]).sign(payload, PAYLOAD_TYPE).to_json()


def _input(
    world: dict[str, Any], name: str, data: bytes, **options: Any
) -> tuple[VerifiedInput, VerificationResult | None]:
    root: TrustRoot = world["root"]
    try:
        result: VerificationResult | None = verify(data, root, **options)
    except VerificationError:
        result = None
    return VerifiedInput.of(name, data, result), result


def _request(**changes: Any) -> VsaRequest:
    fields: dict[str, Any] = {
        "resource_uri": RESOURCE,
        "policy_uri": "file:///etc/dssesign/root.json",
        "policy_sha256": hashlib.sha256(ROOT_BYTES).hexdigest(),
    }
    fields.update(changes)
    return VsaRequest(**fields)


def _tampered(data: bytes) -> bytes:
    document = json.loads(data)
    payload = base64.b64decode(document["payload"]).replace(APP.encode(), OTHER.encode())
    document["payload"] = base64.b64encode(payload).decode()
    return json.dumps(document).encode()


# --- the Statement's fields --------------------------------------------------------------------


def test_a_passed_summary_names_what_matched_and_every_field(world: dict[str, Any]) -> None:
    data = _envelope(world, _statement(("app.tar.gz", APP), ("lib.tar.gz", LIB)))
    item, result = _input(world, "dist/app.intoto.json", data, digests=[f"sha256:{APP}"])
    assert result is not None and item.passed
    before = datetime.now(UTC).replace(microsecond=0)
    statement = build_vsa(
        [item],
        _request(verified_levels=("SLSA_BUILD_LEVEL_3",), digests=(f"sha256:{APP}",)),
    )
    after = datetime.now(UTC)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == VSA_URI == "https://slsa.dev/verification_summary/v1"
    # Only the digest that matched, with the matched subject's name; lib.tar.gz was not asked.
    assert statement["subject"] == [{"name": "app.tar.gz", "digest": {"sha256": APP}}]
    predicate = statement["predicate"]
    assert predicate["verifier"] == {"id": DEFAULT_VERIFIER_ID, "version": {"dssesign": "0.1.0"}}
    assert DEFAULT_VERIFIER_ID == "https://github.com/dssesign/dssesign/verify@0.1.0"
    when = datetime.strptime(predicate["timeVerified"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= when <= after
    assert predicate["resourceUri"] == RESOURCE
    assert predicate["policy"] == {
        "uri": "file:///etc/dssesign/root.json",
        "digest": {"sha256": hashlib.sha256(ROOT_BYTES).hexdigest()},
    }
    assert predicate["inputAttestations"] == [
        {"name": "dist/app.intoto.json", "digest": {"sha256": hashlib.sha256(data).hexdigest()}}
    ]
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifiedLevels"] == ["SLSA_BUILD_LEVEL_3"]
    validate_predicate(VSA_URI, predicate)  # the shipped schema and its one-level-per-track rule


def test_without_artifacts_the_verified_subjects_deduplicated(world: dict[str, Any]) -> None:
    first = _envelope(world, _statement(("app.tar.gz", APP), ("lib.tar.gz", LIB)))
    second = _envelope(world, _statement(("app.tar.gz", APP)))
    inputs = [_input(world, "a.json", first)[0], _input(world, "b.json", second)[0]]
    statement = build_vsa(inputs, _request())
    assert statement["subject"] == [
        {"name": "app.tar.gz", "digest": {"sha256": APP}},
        {"name": "lib.tar.gz", "digest": {"sha256": LIB}},
    ]
    assert [a["name"] for a in statement["predicate"]["inputAttestations"]] == ["a.json", "b.json"]
    assert statement["predicate"]["verifiedLevels"] == []


def test_the_caller_names_its_verifier_and_the_time(world: dict[str, Any]) -> None:
    item = _input(world, "e.json", _envelope(world, _statement(("app", APP))))[0]
    moment = datetime(2027, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    statement = build_vsa(
        [item], _request(verifier_id="https://verifier.example/v1"), time_verified=moment
    )
    assert statement["predicate"]["verifier"]["id"] == "https://verifier.example/v1"
    assert statement["predicate"]["timeVerified"] == "2027-01-02T03:04:05Z"
    with pytest.raises(ConfigError, match="timezone-aware"):
        build_vsa([item], _request(), time_verified=datetime(2027, 1, 1))


def test_subjects_that_cannot_share_a_statement_are_refused(world: dict[str, Any]) -> None:
    one = _envelope(world, _statement(("app.tar.gz", APP)))
    two = _envelope(world, _statement(("app.tar.gz", LIB)))  # the same name, another digest
    inputs = [_input(world, "1.json", one)[0], _input(world, "2.json", two)[0]]
    with pytest.raises(ConfigError, match="cannot share one summary"):
        build_vsa(inputs, _request())


# --- PASSED vs FAILED ----------------------------------------------------------------------


def test_the_verdict_is_passed_only_when_every_input_passed() -> None:
    for flags in itertools.product((True, False), repeat=3):
        for size in (1, 2, 3):
            inputs = [VerifiedInput(f"{i}", "0" * 64, passed) for i, passed in enumerate(flags)]
            expected = "PASSED" if all(flags[:size]) else "FAILED"
            assert verification_result(inputs[:size]) == expected
    assert verification_result([]) == "FAILED"
    # Anything but True (a truthy string smuggled in) is not a pass.
    assert verification_result([VerifiedInput("x", None, "yes")]) == "FAILED"  # type: ignore[arg-type]


def test_one_failed_envelope_of_several_fails_the_summary(world: dict[str, Any]) -> None:
    good = _envelope(world, _statement(("app.tar.gz", APP)))
    bad = _tampered(good)
    inputs = [
        _input(world, "good.json", good, digests=[f"sha256:{APP}"])[0],
        _input(world, "bad.json", bad, digests=[f"sha256:{APP}"])[0],
        _input(world, "good-again.json", good, digests=[f"sha256:{APP}"])[0],
    ]
    assert [item.passed for item in inputs] == [True, False, True]
    statement = build_vsa(
        inputs, _request(verified_levels=("SLSA_BUILD_LEVEL_3",), digests=(f"sha256:{APP}",))
    )
    predicate = statement["predicate"]
    assert predicate["verificationResult"] == "FAILED"
    assert predicate["verifiedLevels"] == ["FAILED"]  # never the claimed level
    # The requested digest, unnamed: nothing read from the tampered payload.
    assert statement["subject"] == [{"digest": {"sha256": APP}}]
    assert [a["name"] for a in predicate["inputAttestations"]] == [
        "good.json",
        "bad.json",
        "good-again.json",
    ]
    assert predicate["inputAttestations"][1]["digest"]["sha256"] == hashlib.sha256(bad).hexdigest()


@pytest.mark.parametrize(
    "options",
    [
        {"predicate_type": VSA_URI},  # a wrong --type
        {"predicate_type": PROVENANCE},
        {"digests": [f"sha256:{OTHER}"]},  # the artifact is not a subject
    ],
)
def test_a_failed_verification_never_yields_passed(
    world: dict[str, Any], options: dict[str, Any]
) -> None:
    data = _envelope(world, _statement(("app.tar.gz", APP)))
    item, result = _input(world, "e.json", data, **options)
    assert result is None and not item.passed and item.subjects == ()
    statement = build_vsa([item], _request(digests=(f"sha256:{APP}",)))
    assert statement["predicate"]["verificationResult"] == "FAILED"
    assert statement["predicate"]["verifiedLevels"] == ["FAILED"]


def test_a_failed_summary_needs_the_digests_asked_about(world: dict[str, Any]) -> None:
    bad = _tampered(_envelope(world, _statement(("app.tar.gz", APP))))
    item = _input(world, "bad.json", bad)[0]
    with pytest.raises(ConfigError, match="never taken from an envelope that did not verify"):
        build_vsa([item], _request())


def test_an_unreadable_input_fails_and_is_not_listed() -> None:
    inputs = [VerifiedInput.of("gone.json", None, None)]
    statement = build_vsa(inputs, _request(digests=(f"sha256:{APP}",)))
    assert statement["predicate"]["verificationResult"] == "FAILED"
    assert statement["predicate"]["inputAttestations"] == []


def test_nothing_to_summarise_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        build_vsa([], _request())
    too_many = [VerifiedInput("e", "0" * 64, True, ({"digest": {"sha256": APP}},))] * (
        MAX_INPUTS + 1
    )
    with pytest.raises(ConfigError, match=f"at most {MAX_INPUTS}"):
        build_vsa(too_many, _request())
    with pytest.raises(ConfigError, match="VerifiedInput"):
        build_vsa(["e.json"], _request())  # type: ignore[list-item]


# --- the request is checked against the schema when made --------------------------------------


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"resource_uri": "dist/app.tar.gz"}, "$.resourceUri"),
        ({"resource_uri": ""}, "$.resourceUri"),
        ({"policy_uri": "not a uri"}, "$.policy.uri"),
        ({"verifier_id": "dssesign"}, "$.verifier.id"),
        ({"verified_levels": ("SLSA_BUILD_LEVEL_1", "SLSA_BUILD_LEVEL_3")}, "$.verifiedLevels[1]"),
        ({"verified_levels": ("",)}, "$.verifiedLevels[0]"),
        ({"verified_levels": ("SLSA_BUILD_LEVEL_2", "FAILED")}, "$.verifiedLevels[1]"),
        ({"policy_sha256": "ABC"}, "$.policy.digest.sha256"),
    ],
)
def test_bad_request_fields_are_refused(changes: dict[str, Any], path: str) -> None:
    with pytest.raises(PredicateError) as caught:
        _request(**changes)
    assert caught.value.path == path


def test_levels_of_different_tracks_and_custom_values_are_fine() -> None:
    request = _request(
        verified_levels=("SLSA_BUILD_LEVEL_3", "SLSA_SOURCE_LEVEL_2", "ACME_REVIEWED")
    )
    assert request.verified_levels == ("SLSA_BUILD_LEVEL_3", "SLSA_SOURCE_LEVEL_2", "ACME_REVIEWED")


def test_bad_digests_are_refused() -> None:
    with pytest.raises(InputError, match="ALG:HEX"):
        _request(digests=("nonsense",))
    with pytest.raises(InputError, match="sha256"):
        _request(digests=("sha256:XYZ",))


# --- signing ----------------------------------------------------------------------------------


def test_emit_signs_what_build_made_and_it_verifies_as_a_vsa(world: dict[str, Any]) -> None:
    data = _envelope(world, _statement(("app.tar.gz", APP)))
    item = _input(world, "e.json", data, digests=[f"sha256:{APP}"])[0]
    statement = build_vsa([item], _request(verified_levels=("SLSA_BUILD_LEVEL_2",)))
    signed = emit_vsa(statement, keys=[world["vsa"]], bundle_stem="app.vsa")
    assert signed.statement == statement
    assert [b.name for b in signed.bundles] == [f"app.vsa.{world['vsa'].keyid[:16]}.sigstore.json"]
    result = verify(signed.envelope.to_json(), world["root"], predicate_type=VSA_URI)
    assert result.statement == statement
    assert [k.keyid for k in result.keys_counted] == [world["vsa"].keyid]
    # A summary is an attestation like any other: its subject matches the artifact digest.
    verify(signed.envelope.to_json(), world["root"], digests=[f"sha256:{APP}"])


def test_a_failed_summary_tampered_to_passed_does_not_verify(world: dict[str, Any]) -> None:
    bad = _tampered(_envelope(world, _statement(("app.tar.gz", APP))))
    item = _input(world, "bad.json", bad)[0]
    statement = build_vsa([item], _request(digests=(f"sha256:{APP}",)))
    signed = emit_vsa(statement, keys=[world["vsa"]])
    forged = signed.envelope.payload.replace(b'"FAILED"', b'"PASSED"')
    assert forged != signed.envelope.payload
    envelope = Envelope(forged, PAYLOAD_TYPE, signed.envelope.signatures)
    with pytest.raises(VerificationError):
        verify(envelope.to_json(), world["root"], predicate_type=VSA_URI)


def test_emit_signs_only_vsa_statements(world: dict[str, Any]) -> None:
    statement = json.loads(_statement(("app", APP)))
    with pytest.raises(ConfigError, match="verification_summary"):
        emit_vsa(statement, keys=[world["vsa"]])
    item = _input(world, "e.json", _envelope(world, _statement(("app", APP))))[0]
    statement = build_vsa([item], _request())
    statement["predicate"]["verifiedLevels"] = ["SLSA_BUILD_LEVEL_1", "SLSA_BUILD_LEVEL_2"]
    with pytest.raises(PredicateError, match="one per track"):  # the schema again, before a key
        emit_vsa(statement, keys=[world["vsa"]])


def test_building_a_summary_loads_no_signing_module(world: dict[str, Any]) -> None:
    script = f"""
import sys
from dssesign.vsa import VerifiedInput, VsaRequest, build_vsa
request = VsaRequest(resource_uri={RESOURCE!r}, policy_uri="file:///r.json",
                     policy_sha256="{"0" * 64}", digests=("sha256:{APP}",))
build_vsa([VerifiedInput.of("e.json", b"{{}}", None)], request)
print("\\n".join(m for m in sys.modules if m.startswith("dssesign")))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = run.stdout.split()
    assert "dssesign.vsa.summary" in loaded
    assert [m for m in loaded if m.startswith(("dssesign.sign", "dssesign.profiles"))] == []
