"""Our verification summaries, checked by tools dssesign did not write.

* in-toto-attestation's Python bindings parse the payload as a Statement v1 and `validate()` it,
  and parse the predicate into their SLSA VSA v1 message (`predicates/vsa/v1/vsa.proto`).
  That proto follows VSA 1.0: `verifier` is only `{id}` and an input attestation `{uri,
  digest}`. The spec since 1.1 (``../shared/reference/schemas/slsa/verification_summary.md``)
  adds `verifier.version` and makes `inputAttestations` ResourceDescriptors, so our `name`
  (the file as given) and `verifier.version` are the only members their strict parser does not
  know; the test pins exactly that. Their 0.9.3 proto also declares `verified_levels` a single
  string although the spec has an array, so that one field is compared by us, not by it.
* The `jsonschema` package validates the predicate against a SLSA VSA v1 JSON Schema. SLSA
  publishes no JSON Schema for the VSA (CUE and proto only; ../shared/reference/schemas/README.md
  says so), so this is the schema the project ships, `predicates/slsa-vsa-v1.schema.json`,
  written from verification_summary.md (VSA 1.2), with the in-toto field types of
  `predicates/intoto-v1-fields.schema.json`; dssesign itself runs them on jsonschema-rs. The
  spec's required fields are also checked here straight from the spec's text.
* securesystemslib verifies the multi-signature VSA envelope.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement as TheirStatement
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError as SslibVerificationError
from securesystemslib.signer import SSlibKey

from dssesign import trust as tr
from dssesign.intoto.statement import PAYLOAD_TYPE, statement_payload
from dssesign.profiles.software import SoftwareSigner
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.verify import verify
from dssesign.vsa import VerifiedInput, VsaRequest, build_vsa, emit_vsa
from tests.conftest import signer_for

SCHEMAS = Path(__file__).resolve().parents[3] / "predicates"
APP = hashlib.sha256(b"app 1.0").hexdigest()
#: The predicate fields verification_summary.md marks "required".
SPEC_REQUIRED = ("verifier", "resourceUri", "policy", "verificationResult", "verifiedLevels")


def _sslib_key(signer: SoftwareSigner) -> Any:
    assert signer.algorithm.sslib_scheme is not None
    return SSlibKey.from_crypto(
        signer.public_key.key, keyid=signer.keyid, scheme=signer.algorithm.sslib_scheme
    )


@pytest.fixture(scope="module")
def summaries() -> dict[str, Any]:
    """A PASSED and a FAILED summary of real verifications, signed by two VSA keys."""
    signer = signer_for("ed25519", 5)
    vsa_keys = [signer_for("ed25519", 6), signer_for("ecdsa-p384", 6)]
    root = tr.init_trust_root(threshold=1, now=datetime.now(UTC) - timedelta(days=1))
    for key in (signer, *vsa_keys):
        root = tr.add_key(root, key.public_key)
    payload = statement_payload(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app.tar.gz", "digest": {"sha256": APP}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"buildDefinition": {}},
        }
    )
    envelope = MultiProfileSigner([signer]).sign(payload, PAYLOAD_TYPE).to_json()
    result = verify(envelope, root, digests=[f"sha256:{APP}"])
    request = VsaRequest(
        resource_uri="https://example.com/app.tar.gz",
        policy_uri="file:///etc/dssesign/root.json",
        policy_sha256=hashlib.sha256(tr.dump_trust_root(root)).hexdigest(),
        verified_levels=("SLSA_BUILD_LEVEL_3",),
        digests=(f"sha256:{APP}",),
    )
    passed = build_vsa([VerifiedInput.of("app.intoto.json", envelope, result)], request)
    failed = build_vsa(
        [
            VerifiedInput.of("app.intoto.json", envelope, result),
            VerifiedInput.of("other.intoto.json", b"{}", None),
        ],
        request,
    )
    signed = emit_vsa(passed, keys=vsa_keys)
    return {"passed": passed, "failed": failed, "signed": signed, "keys": vsa_keys}


@pytest.mark.parametrize("which", ["passed", "failed"])
def test_their_statement_bindings_accept_it(summaries: dict[str, Any], which: str) -> None:
    payload = statement_payload(summaries[which])
    theirs = TheirStatement.copy_from_pb(json_format.Parse(payload, statement_pb2.Statement()))
    theirs.validate()
    assert theirs.pb.predicate_type == "https://slsa.dev/verification_summary/v1"
    assert [s.digest["sha256"] for s in theirs.pb.subject] == [APP]


@pytest.mark.parametrize("which", ["passed", "failed"])
def test_their_vsa_message_reads_the_predicate(summaries: dict[str, Any], which: str) -> None:
    predicate = summaries[which]["predicate"]
    levels = ["SLSA_BUILD_LEVEL_3"] if which == "passed" else ["FAILED"]
    assert predicate["verifiedLevels"] == levels
    # Only the two VSA 1.1 additions are unknown to their VSA 1.0 message...
    trimmed = json.loads(json.dumps(predicate))
    del trimmed["verifier"]["version"]
    for attestation in trimmed["inputAttestations"]:
        del attestation["name"]
    # ...and in-toto-attestation 0.9.3 declares verified_levels a single string, where the spec
    # (and every version of it) has an array: a spec-valid VSA cannot go through that field.
    repeated = vsa_pb2.VerificationSummary.DESCRIPTOR.fields_by_name["verified_levels"]
    if not getattr(repeated, "is_repeated", False):
        del trimmed["verifiedLevels"]
    message = json_format.Parse(json.dumps(trimmed), vsa_pb2.VerificationSummary())
    assert message.verifier.id == predicate["verifier"]["id"]
    assert message.resource_uri == "https://example.com/app.tar.gz"
    assert message.policy.uri == "file:///etc/dssesign/root.json"
    assert dict(message.policy.digest) == predicate["policy"]["digest"]
    assert message.verification_result == which.upper()
    assert message.time_verified.ToJsonString() == predicate["timeVerified"]
    assert [dict(a.digest) for a in message.input_attestations] == [
        a["digest"] for a in predicate["inputAttestations"]
    ]
    if "verifiedLevels" in trimmed:
        assert list(message.verified_levels) == levels
    # The strict parser does refuse what it does not know: the check above is not vacuous.
    with pytest.raises(json_format.ParseError):
        json_format.Parse(json.dumps({**trimmed, "verifier": predicate["verifier"]}),
                          vsa_pb2.VerificationSummary())  # fmt: skip


def _schema_validator() -> Draft202012Validator:
    main = json.loads((SCHEMAS / "slsa-vsa-v1.schema.json").read_text(encoding="utf-8"))
    fields = json.loads((SCHEMAS / "intoto-v1-fields.schema.json").read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry().with_resource(
        fields["$id"], Resource.from_contents(fields)
    )
    return Draft202012Validator(
        main, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@pytest.mark.parametrize("which", ["passed", "failed"])
def test_jsonschema_validates_the_predicate(summaries: dict[str, Any], which: str) -> None:
    validator = _schema_validator()
    predicate = summaries[which]["predicate"]
    assert list(validator.iter_errors(predicate)) == []
    for name in SPEC_REQUIRED:
        assert name in predicate
    assert "id" in predicate["verifier"]
    assert all("digest" in a for a in predicate["inputAttestations"])  # "MUST contain a digest"
    datetime.strptime(predicate["timeVerified"], "%Y-%m-%dT%H:%M:%SZ")


def test_jsonschema_really_checks(summaries: dict[str, Any]) -> None:
    """The validator above is not vacuous: refs resolve and formats are checked."""
    validator = _schema_validator()
    predicate = json.loads(json.dumps(summaries["passed"]["predicate"]))
    for broken in (
        {**predicate, "resourceUri": "not a uri"},
        {**predicate, "policy": {"uri": "file:///r.json", "digest": {"sha256": "XYZ"}}},
        {**predicate, "verificationResult": "MAYBE"},
        {k: v for k, v in predicate.items() if k != "verifiedLevels"},
    ):
        assert list(validator.iter_errors(broken)) != []


def test_securesystemslib_verifies_the_vsa_envelope(summaries: dict[str, Any]) -> None:
    envelope = summaries["signed"].envelope
    keys = [_sslib_key(k) for k in summaries["keys"]]
    theirs = SslibEnvelope.from_dict(json.loads(envelope.to_json()))
    accepted = theirs.verify(keys, threshold=2)
    assert set(accepted) == {k.keyid for k in summaries["keys"]}
    assert theirs.payload == envelope.payload
    assert json.loads(theirs.payload)["predicate"]["verificationResult"] == "PASSED"


def test_securesystemslib_refuses_a_summary_turned_failed(summaries: dict[str, Any]) -> None:
    document = json.loads(summaries["signed"].envelope.to_json())
    theirs = SslibEnvelope.from_dict(document)
    theirs.payload = theirs.payload.replace(b'"PASSED"', b'"FAILED"')
    with pytest.raises(SslibVerificationError):
        theirs.verify([_sslib_key(k) for k in summaries["keys"]], threshold=1)
