"""Predicate registry: cosign's --type names, its custom wrapper, schema and SBOM validation."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from dssesign.errors import InputError, PredicateError
from dssesign.intoto import _schemas, predicates
from dssesign.intoto.predicates import (
    CUSTOM_URI,
    CYCLONEDX_URI,
    OPENVEX_URI,
    SLSA_PROVENANCE_V1_URI,
    SPDX_URI,
    TEST_RESULT_URI,
    VSA_URI,
    PredicateType,
    is_rfc3339_date_time,
    json_schema_validator,
    known_predicate_types,
    lookup_predicate_type,
    prepare_predicate,
    register_predicate_type,
    resolve_predicate_type,
    validate_predicate,
)
from tests.conftest import FIXTURES

PREDICATE_FIXTURES = FIXTURES / "predicates"
SCHEMA_DIR = Path(__file__).resolve().parents[3] / "predicates"

#: cosign's PredicateTypeMap (cmd/cosign/cli/options/predicate.go) plus dssesign's two.
EXPECTED_SHORT_NAMES = {
    "custom": "https://cosign.sigstore.dev/attestation/v1",
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
    "vsa": "https://slsa.dev/verification_summary/v1",
    "test-result": "https://in-toto.io/attestation/test-result/v0.1",
}

#: (fixture file, --type, predicateType) for every sample predicate.
VALID_FIXTURES = [
    ("slsa-provenance-v1.json", "slsaprovenance1", SLSA_PROVENANCE_V1_URI),
    ("slsa-vsa-v1.json", "vsa", VSA_URI),
    ("openvex.json", "openvex", OPENVEX_URI),
    ("test-result-v0.1.json", "test-result", TEST_RESULT_URI),
    ("cyclonedx-1.6.json", "cyclonedx", CYCLONEDX_URI),
    ("cyclonedx-1.5.json", "cyclonedx", CYCLONEDX_URI),
    ("spdx-2.3.json", "spdxjson", SPDX_URI),
]

_GO_RFC3339_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PREDICATE_FIXTURES / name).read_text(encoding="utf-8"))
    return data


def refused(type_uri: str, predicate: object) -> PredicateError:
    with pytest.raises(PredicateError) as info:
        validate_predicate(type_uri, predicate)
    return info.value


def assert_refused_at(type_uri: str, predicate: object, path: str, *fragments: str) -> None:
    error = refused(type_uri, predicate)
    assert error.path == path, str(error)
    assert str(error).startswith(f"{path}: "), str(error)
    for fragment in fragments:
        assert fragment in str(error)


def _clear_schema_caches() -> None:
    for cached in (
        _schemas._schema_dir,
        _schemas._bundled_schemas,
        _schemas._schema_registry,
        _schemas._bundled,
    ):
        cached.cache_clear()


@pytest.fixture
def private_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registration tests get a copy, so the built-in registry is never changed for others."""
    monkeypatch.setattr(predicates, "_REGISTRY", predicates._REGISTRY.copy())


# --- --type resolution ----------------------------------------------------------------------


@pytest.mark.parametrize(("short", "uri"), sorted(EXPECTED_SHORT_NAMES.items()))
def test_short_names_map_exactly_as_cosign(short: str, uri: str) -> None:
    assert resolve_predicate_type(short) == uri


def test_no_short_names_beyond_the_expected_ones() -> None:
    registered = {n: t.uri for t in known_predicate_types() for n in t.short_names}
    assert registered == EXPECTED_SHORT_NAMES


@pytest.mark.parametrize(
    "uri",
    [
        "https://example.com/predicates/build-notes/v1",
        "http://localhost:8080/predicate",
        "urn:example:predicate:v1",
        "https://cyclonedx.org/bom/v1.5",
        "https://openvex.dev/ns/v0.2.0",
        SLSA_PROVENANCE_V1_URI,
    ],
)
def test_absolute_uris_pass_through(uri: str) -> None:
    assert resolve_predicate_type(uri) == uri


@pytest.mark.parametrize(
    "value", ["slsa", "foo", "", "SLSAprovenance1", "provenance", "example.com/x", "/abs/path"]
)
def test_unknown_short_name_lists_the_known_ones(value: str) -> None:
    with pytest.raises(InputError) as info:
        resolve_predicate_type(value)
    assert not isinstance(info.value, PredicateError)
    assert "slsaprovenance1" in str(info.value)
    assert "test-result" in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "https:/example.com/x",
        "mailto:someone@example.com",
        "HTTPS://example.com/x",
        "https://Example.com/x",
        "https://example.com/a b",
        "https://exämple.com/x",
        "URN:example:x",
        "urn:x",
    ],
)
def test_malformed_uris_are_refused(value: str) -> None:
    with pytest.raises(InputError, match="predicate type"):
        resolve_predicate_type(value)


# --- cosign's custom wrapper ----------------------------------------------------------------


def test_custom_wraps_a_non_json_file_as_cosign_does() -> None:
    stamp = datetime(2024, 5, 6, 7, 8, 9, 999_999, tzinfo=timezone(timedelta(hours=2)))
    uri, predicate = prepare_predicate("custom", b"not json {\n\xc3\xa9t\xc3\xa9", timestamp=stamp)
    assert uri == CUSTOM_URI
    # Go: t.UTC().Format(time.RFC3339) -- UTC, whole seconds truncated, 'Z'.
    assert predicate == {"Data": "not json {\nété", "Timestamp": "2024-05-06T05:08:09Z"}
    validate_predicate(uri, predicate)


def test_custom_keeps_a_json_file_as_a_string() -> None:
    raw = (PREDICATE_FIXTURES / "slsa-provenance-v1.json").read_bytes()
    _, predicate = prepare_predicate("custom", raw, timestamp=datetime(2024, 1, 1, tzinfo=UTC))
    assert isinstance(predicate, dict)
    assert predicate["Data"] == raw.decode("utf-8")
    assert list(predicate) == ["Data", "Timestamp"]


def test_custom_uri_also_wraps() -> None:
    # cosign's generateCustomPredicate wraps whenever the type is the custom URI.
    _, predicate = prepare_predicate(CUSTOM_URI, b"x", timestamp=datetime(2024, 1, 1, tzinfo=UTC))
    assert predicate == {"Data": "x", "Timestamp": "2024-01-01T00:00:00Z"}


def test_custom_timestamp_defaults_to_now_in_utc() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    _, predicate = prepare_predicate("custom", b"")
    after = datetime.now(UTC)
    assert isinstance(predicate, dict)
    stamp = predicate["Timestamp"]
    assert _GO_RFC3339_UTC.fullmatch(stamp)
    assert before <= datetime.fromisoformat(stamp) <= after


def test_custom_pads_the_year_like_go() -> None:
    _, predicate = prepare_predicate("custom", b"", timestamp=datetime(999, 1, 2, tzinfo=UTC))
    assert predicate == {"Data": "", "Timestamp": "0999-01-02T00:00:00Z"}


def test_custom_refuses_non_utf8_rather_than_mangling_it() -> None:
    with pytest.raises(InputError, match="UTF-8"):
        prepare_predicate("custom", b"ok \xff\xfe", timestamp=datetime(2024, 1, 1, tzinfo=UTC))


def test_custom_refuses_a_naive_timestamp() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        prepare_predicate("custom", b"x", timestamp=datetime(2024, 1, 1))


def test_custom_wrapper_shape_is_checked_on_statements() -> None:
    assert_refused_at(CUSTOM_URI, {"Data": "x"}, "$.Timestamp", "required")
    assert_refused_at(CUSTOM_URI, {"Data": "x", "Timestamp": "now"}, "$.Timestamp", "RFC 3339")


# --- reading predicate files ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "type_", "uri"), VALID_FIXTURES)
def test_valid_fixtures_pass(name: str, type_: str, uri: str) -> None:
    raw = (PREDICATE_FIXTURES / name).read_bytes()
    got_uri, predicate = prepare_predicate(type_, raw)
    assert got_uri == uri
    assert predicate == json.loads(raw)


def test_cli_demo_fixture_is_slsa_provenance_v1() -> None:
    raw = (PREDICATE_FIXTURES / "slsa-provenance-v1.json").read_bytes()
    assert prepare_predicate("slsaprovenance1", raw)[0] == SLSA_PROVENANCE_V1_URI


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"buildDefinition: yes", "not valid JSON"),
        (b'{"a": 1, "a": 2}', "duplicate member"),
        (b"\xef\xbb\xbf{}", "byte order mark"),
        (b'{"a": NaN}', "not valid JSON"),
        (b"\xff{}", "not UTF-8"),
    ],
)
def test_non_json_predicate_file_is_refused_clearly(raw: bytes, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        prepare_predicate("slsaprovenance1", raw)
    assert not isinstance(info.value, PredicateError)
    assert fragment in str(info.value)
    assert "predicate file" in str(info.value)
    assert "--type custom" in str(info.value)


@pytest.mark.parametrize("raw", [b"[]", b"42", b'"text"', b"null", b"true"])
@pytest.mark.parametrize("type_", ["slsaprovenance1", "link", "https://example.com/x/v1"])
def test_json_that_is_not_an_object_is_refused(raw: bytes, type_: str) -> None:
    with pytest.raises(PredicateError, match=r"^\$: a predicate must be a JSON object") as info:
        prepare_predicate(type_, raw)
    assert info.value.path == "$"


def all_type_uris() -> list[str]:
    return [u for t in known_predicate_types() for u in t.uris] + ["https://example.com/x/v1"]


@pytest.mark.parametrize("uri", all_type_uris())
@pytest.mark.parametrize("value", [[], [{}], "x", 1, 1.5, True, None])
def test_non_object_predicate_refused_for_every_type(uri: str, value: object) -> None:
    assert refused(uri, value).path == "$"


def test_unknown_uri_accepts_any_object() -> None:
    validate_predicate("https://example.com/x/v1", {"anything": [1, None, {"x": "y"}]})
    assert lookup_predicate_type("https://example.com/x/v1") is None


@pytest.mark.parametrize(
    "uri",
    [
        "https://slsa.dev/provenance/v0.2",
        "https://in-toto.io/Link/v1",
        "https://cosign.sigstore.dev/attestation/vuln/v1",
    ],
)
def test_types_without_a_schema_accept_objects(uri: str) -> None:
    validate_predicate(uri, {"whatever": 1})
    ptype = lookup_predicate_type(uri)
    assert ptype is not None
    assert ptype.validator is None


# --- SLSA provenance v1 ---------------------------------------------------------------------


def slsa() -> dict[str, Any]:
    return load("slsa-provenance-v1.json")


def test_slsa_missing_build_type() -> None:
    doc = slsa()
    del doc["buildDefinition"]["buildType"]
    assert_refused_at(
        SLSA_PROVENANCE_V1_URI,
        doc,
        "$.buildDefinition.buildType",
        "'buildType' is a required property",
    )


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda d: d.pop("runDetails"), "$.runDetails", "required"),
        (
            lambda d: d["buildDefinition"].pop("externalParameters"),
            "$.buildDefinition.externalParameters",
            "required",
        ),
        (lambda d: d["runDetails"]["builder"].pop("id"), "$.runDetails.builder.id", "required"),
        (
            lambda d: d["buildDefinition"].update(buildType=None),
            "$.buildDefinition.buildType",
            "required",
        ),
        (
            lambda d: d["buildDefinition"].update(buildType="not a uri"),
            "$.buildDefinition.buildType",
            "URI",
        ),
        (
            lambda d: d["buildDefinition"].update(externalParameters=[]),
            "$.buildDefinition.externalParameters",
            "object",
        ),
        (
            lambda d: d["runDetails"]["builder"]["version"].update(runner=2),
            "$.runDetails.builder.version.runner",
            "string",
        ),
        (
            lambda d: d["buildDefinition"]["resolvedDependencies"].append(
                {"name": "x", "mediaType": "y"}
            ),
            "$.buildDefinition.resolvedDependencies[2]",
            "uri, digest or content",
        ),
        (
            lambda d: d["runDetails"]["byproducts"].append({"uri": "", "digest": {}}),
            "$.runDetails.byproducts[1]",
            "uri, digest or content",
        ),
        (
            lambda d: d["buildDefinition"]["resolvedDependencies"][0]["digest"].update(
                gitCommit="ABCDEF"
            ),
            "$.buildDefinition.resolvedDependencies[0].digest.gitCommit",
            "lowercase hex",
        ),
        (
            lambda d: d["buildDefinition"]["resolvedDependencies"][1]["digest"].update(
                sha256="068c05f82262e57641bd93458dfa883128858f5f4997aad7a36fd25b13b29209\n"
            ),
            "$.buildDefinition.resolvedDependencies[1].digest.sha256",
            "64 lowercase hex",
        ),
        (
            lambda d: d["buildDefinition"]["resolvedDependencies"][1].update(uri="relative/path"),
            "$.buildDefinition.resolvedDependencies[1].uri",
            "URI",
        ),
        (
            lambda d: d["runDetails"]["metadata"].update(startedOn="2024-02-30T00:00:00Z"),
            "$.runDetails.metadata.startedOn",
            "RFC 3339",
        ),
        (
            lambda d: d["runDetails"]["metadata"].update(startedOn="2024-01-15 10:00:00Z"),
            "$.runDetails.metadata.startedOn",
            "RFC 3339",
        ),
        (
            lambda d: d["runDetails"]["metadata"].update(finishedOn="2024-01-15T10:04:31+01:00"),
            "$.runDetails.metadata.finishedOn",
            "UTC",
        ),
        (
            lambda d: d["runDetails"]["metadata"].update(finishedOn=1705313071),
            "$.runDetails.metadata.finishedOn",
            "RFC 3339",
        ),
    ],
)
def test_slsa_invalid(mutate: Any, path: str, fragment: str) -> None:
    doc = slsa()
    mutate(doc)
    assert_refused_at(SLSA_PROVENANCE_V1_URI, doc, path, fragment)


def test_slsa_null_means_unset_and_extensions_are_allowed() -> None:
    doc = slsa()
    doc["buildDefinition"]["internalParameters"] = None
    doc["runDetails"]["metadata"] = None
    doc["runDetails"]["builder"]["builderDependencies"] = None
    doc["examplebuilder_isCodeReviewed"] = True
    doc["buildDefinition"]["resolvedDependencies"][0]["annotations"] = {"x": None}
    before = copy.deepcopy(doc)
    validate_predicate(SLSA_PROVENANCE_V1_URI, doc)
    assert doc == before  # the nulls are only dropped from the copy that is validated


def test_slsa_empty_external_parameters_are_allowed() -> None:
    doc = slsa()
    doc["buildDefinition"]["externalParameters"] = {}
    validate_predicate(SLSA_PROVENANCE_V1_URI, doc)


# --- SLSA VSA -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (
            lambda d: d.update(verificationResult="MAYBE"),
            "$.verificationResult",
            "'MAYBE' is not one of",
        ),
        (lambda d: d.pop("verifiedLevels"), "$.verifiedLevels", "required"),
        (lambda d: d.pop("resourceUri"), "$.resourceUri", "required"),
        (lambda d: d["verifier"].pop("id"), "$.verifier.id", "required"),
        (lambda d: d["policy"].pop("uri"), "$.policy.uri", "required"),
        (
            lambda d: d["inputAttestations"][0].pop("digest"),
            "$.inputAttestations[0].digest",
            "required",
        ),
        (lambda d: d.update(timeVerified="2024-01-15T10:10:00"), "$.timeVerified", "RFC 3339"),
        (
            lambda d: d["dependencyLevels"].update(SLSA_BUILD_LEVEL_3=-1),
            "$.dependencyLevels.SLSA_BUILD_LEVEL_3",
            "minimum",
        ),
        (
            lambda d: d["dependencyLevels"].update(SLSA_BUILD_LEVEL_3="5"),
            "$.dependencyLevels.SLSA_BUILD_LEVEL_3",
            "integer",
        ),
        (lambda d: d.update(slsaVersion="1"), "$.slsaVersion", "<MAJOR>.<MINOR>"),
        (
            lambda d: d["verifiedLevels"].append("SLSA_BUILD_LEVEL_3"),
            "$.verifiedLevels[2]",
            "one per track",
        ),
        (
            lambda d: d["verifiedLevels"].append("SLSA_BUILD_LEVEL_UNEVALUATED"),
            "$.verifiedLevels[2]",
            "BUILD track",
        ),
    ],
)
def test_vsa_invalid(mutate: Any, path: str, fragment: str) -> None:
    doc = load("slsa-vsa-v1.json")
    mutate(doc)
    assert_refused_at(VSA_URI, doc, path, fragment)


def test_vsa_custom_levels_and_failed_are_allowed() -> None:
    doc = load("slsa-vsa-v1.json")
    doc["verificationResult"] = "FAILED"
    doc["verifiedLevels"] = ["FAILED", "EXAMPLE_CUSTOM_PROPERTY"]
    doc["dependencyLevels"] = None  # "unset or null: no claims about dependencies"
    validate_predicate(VSA_URI, doc)


# --- OpenVEX --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (
            lambda d: d["statements"][2].update(status="maybe"),
            "$.statements[2].status",
            "'maybe' is not one of",
        ),
        (
            lambda d: [d["statements"][0].pop(k) for k in ("justification", "impact_statement")],
            "$.statements[0]",
            "needs a justification or an impact_statement",
        ),
        (
            lambda d: d["statements"][1].pop("action_statement"),
            "$.statements[1]",
            "needs an action_statement",
        ),
        (
            lambda d: d["statements"][0].update(justification="trust me"),
            "$.statements[0].justification",
            "not one of",
        ),
        (lambda d: d.update(timestamp="2024-01-15T25:00:00Z"), "$.timestamp", "RFC 3339"),
        (
            lambda d: d["statements"][2].update(timestamp="yesterday"),
            "$.statements[2].timestamp",
            "RFC 3339",
        ),
        (
            lambda d: d["statements"][1].update(action_statement_timestamp="2024-01-15"),
            "$.statements[1].action_statement_timestamp",
            "RFC 3339",
        ),
        (
            lambda d: d["statements"][3].update(vulnerability={}),
            "$.statements[3].vulnerability.name",
            "required",
        ),
        (
            lambda d: d["statements"][3].update(vulnerability="CVE-2024-00003"),
            "$.statements[3].vulnerability",
            "object",
        ),
        (lambda d: d.pop("author"), "$.author", "required"),
        (lambda d: d.update(version=0), "$.version", "minimum"),
        (lambda d: d.update(statements=[]), "$.statements", "non-empty"),
        (lambda d: d.update({"@context": "https://openvex.dev/ns"}), '$["@context"]', "v0.2.0"),
        (lambda d: d.update({"@id": "not an iri"}), '$["@id"]', "iri"),
        (
            lambda d: d["statements"][2]["products"].append({"subcomponents": []}),
            "$.statements[2].products[1]",
            "@id, identifiers or hashes",
        ),
        (
            lambda d: d["statements"][0]["products"][0]["hashes"].update(sha256="x"),
            "$.statements[0].products[0].hashes",
            "'sha256' is not one of",
        ),
        (
            lambda d: d["statements"][0]["products"][0]["identifiers"].update(cpe23=5),
            "$.statements[0].products[0].identifiers.cpe23",
            "string",
        ),
    ],
)
def test_openvex_invalid(mutate: Any, path: str, fragment: str) -> None:
    doc = load("openvex.json")
    mutate(doc)
    assert_refused_at(OPENVEX_URI, doc, path, fragment)


def test_openvex_not_affected_with_only_an_impact_statement_passes() -> None:
    doc = load("openvex.json")
    del doc["statements"][0]["justification"]
    validate_predicate(OPENVEX_URI, doc)
    validate_predicate(OPENVEX_URI + "/v0.2.0", doc)


# --- test-result ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda d: d.update(result="OK"), "$.result", "'OK' is not one of"),
        (lambda d: d.pop("configuration"), "$.configuration", "required"),
        (
            lambda d: d.update(configuration=[{"name": "ci.yml"}]),
            "$.configuration[0]",
            "uri, digest or content",
        ),
        (lambda d: d.update(url="not a url"), "$.url", "URI"),
        (lambda d: d.update(failedTests=[1]), "$.failedTests[0]", "string"),
    ],
)
def test_test_result_invalid(mutate: Any, path: str, fragment: str) -> None:
    doc = load("test-result-v0.1.json")
    mutate(doc)
    assert_refused_at(TEST_RESULT_URI, doc, path, fragment)


# --- CycloneDX ------------------------------------------------------------------------------


def test_cyclonedx_pinned_uri_matches_spec_version() -> None:
    validate_predicate(CYCLONEDX_URI + "/v1.6", load("cyclonedx-1.6.json"))
    validate_predicate(CYCLONEDX_URI + "/v1.5", load("cyclonedx-1.5.json"))
    assert_refused_at(
        CYCLONEDX_URI + "/v1.5", load("cyclonedx-1.6.json"), "$.specVersion", "needs specVersion"
    )


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (
            lambda d: d["components"][0].pop("name"),
            "$.components[0].name",
            "'name' is a required property",
        ),
        (lambda d: d.update(specVersion="9.9"), "$.specVersion", "no JSON schema"),
        (lambda d: d.update(specVersion="1.0"), "$.specVersion", "no JSON schema"),
        (lambda d: d.update(specVersion=1.6), "$.specVersion", "CycloneDX version"),
        (lambda d: d.update(specVersion="1.6.0"), "$.specVersion", "CycloneDX version"),
        (lambda d: d.pop("specVersion"), "$.specVersion", "required"),
        (lambda d: d.update(bomFormat="SPDX"), "$.bomFormat", "CycloneDX"),
        (
            lambda d: d["metadata"].update(timestamp="2024-13-01T00:00:00Z"),
            "$.metadata.timestamp",
            "date-time",
        ),
        (lambda d: d["components"][0].update(type="gadget"), "$.components[0].type", "not one of"),
        (
            lambda d: d["components"][0].update({"bom-ref": 5}),
            '$.components[0]["bom-ref"]',
            "string",
        ),
        (lambda d: d.update(surprise=1), "$", "'surprise' was unexpected"),
        (
            lambda d: d["components"].append(copy.deepcopy(d["components"][0])),
            "$.components",
            "an array has non-unique elements",
        ),
    ],
)
def test_cyclonedx_invalid(mutate: Any, path: str, fragment: str) -> None:
    doc = load("cyclonedx-1.6.json")
    mutate(doc)
    assert_refused_at(CYCLONEDX_URI, doc, path, fragment)


# --- SPDX -----------------------------------------------------------------------------------


def test_spdx_versioned_uri_and_spdx_2_2() -> None:
    validate_predicate(SPDX_URI + "/v2.3", load("spdx-2.3.json"))
    doc = load("spdx-2.3.json")
    doc["spdxVersion"] = "SPDX-2.2"
    doc["packages"][1]["licenseDeclared"] = "NOASSERTION"  # required in 2.2
    validate_predicate(SPDX_URI, doc)
    assert_refused_at(SPDX_URI + "/v2.3", doc, "$.spdxVersion", "needs 'SPDX-2.3'")


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (lambda d: d["packages"][0].pop("name"), "$.packages[0].name", "required"),
        (lambda d: d.pop("creationInfo"), "$.creationInfo", "required"),
        (lambda d: d.update(spdxVersion="SPDX-3.0"), "$.spdxVersion", "SPDX-2.3"),
        (
            lambda d: d["creationInfo"].update(created="2024-01-15"),
            "$.creationInfo.created",
            "YYYY-MM-DDThh:mm:ssZ",
        ),
        (lambda d: d.update(packages={}), "$.packages", "array"),
        (
            lambda d: d["packages"][1].update(downloadLocation="not a url"),
            "$.packages[1].downloadLocation",
            "download_location",
        ),
        (
            lambda d: d["packages"][0]["checksums"][0].update(checksumValue="abc"),
            "$.packages[0].checksums[0].checksumValue",
            "64 lowercase hexadecimal digits",
        ),
        (
            lambda d: d["relationships"][0].update(relatedSpdxElement="SPDXRef-missing"),
            "$.relationships[0].relatedSpdxElement",
            "SPDXRef-missing",
        ),
        (
            lambda d: d.update(documentNamespace="no-namespace"),
            "$.documentNamespace",
            "document_namespace",
        ),
        (
            lambda d: d["packages"][1].update(licenseConcluded="MIT AND ("),
            "$.packages[1].licenseConcluded",
            "LicenseExpression",
        ),
        (
            lambda d: d["packages"][0]["checksums"][0].update(algorithm="CRC0"),
            "$.packages[0].checksums[0].algorithm",
            "ChecksumAlgorithm",
        ),
    ],
)
def test_spdx_invalid(mutate: Any, path: str, fragment: str) -> None:
    doc = load("spdx-2.3.json")
    mutate(doc)
    assert_refused_at(SPDX_URI, doc, path, fragment)


def test_spdx_validation_leaves_the_predicate_untouched() -> None:
    doc = load("spdx-2.3.json")
    doc["packages"][0]["description"] = "back\bspace"  # spdx-tools' file reader strips these
    before = copy.deepcopy(doc)
    validate_predicate(SPDX_URI, doc)
    assert doc == before


def test_missing_sbom_libraries_are_an_error_not_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from dssesign.intoto import _spdx

    for cached in (predicates._cyclonedx_schema, _spdx._licensing):
        cached.cache_clear()
    libraries = {"cyclonedx", "license_expression"}
    for name in [m for m in sys.modules if m.split(".")[0] in libraries]:
        monkeypatch.setitem(sys.modules, name, None)
    for name in libraries:
        monkeypatch.setitem(sys.modules, name, None)
    from dssesign.errors import MissingDependencyError

    hint = re.escape("pip install 'dssesign[sbom]'")
    with pytest.raises(MissingDependencyError, match=hint) as info:
        validate_predicate(CYCLONEDX_URI, load("cyclonedx-1.6.json"))
    assert not isinstance(info.value, PredicateError)
    assert info.value.extra == "sbom" and info.value.exit_code == 2
    with pytest.raises(MissingDependencyError, match=hint):
        prepare_predicate("spdxjson", (PREDICATE_FIXTURES / "spdx-2.3.json").read_bytes())


# --- RFC 3339 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "1985-04-12T23:20:50.52Z",
        "1996-12-19T16:39:57-08:00",
        "1990-12-31T23:59:60Z",
        "1990-12-31T15:59:60-08:00",
        "2024-02-29T00:00:00Z",
        "2000-02-29t00:00:00z",
        "0000-01-01T00:00:00+00:00",
        "2023-01-08T18:02:03.647787998-06:00",
    ],
)
def test_rfc3339_accepts(value: str) -> None:
    assert is_rfc3339_date_time(value)


@pytest.mark.parametrize(
    "value",
    [
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-01 00:00:00Z",
        "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z",
        "2024-01-01T00:00:60Z",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00+24:00",
        "2024-01-01T00:00:00+0100",
        "2024-1-01T00:00:00Z",
        "\uff12\uff10\uff12\uff14-01-01T00:00:00Z",  # fullwidth digits
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00Z\n",
        "2024-01-01",
        "",
    ],
)
def test_rfc3339_refuses(value: str) -> None:
    assert not is_rfc3339_date_time(value)


@given(
    st.datetimes(
        timezones=st.builds(
            timezone,
            st.integers(min_value=-1439, max_value=1439).map(lambda m: timedelta(minutes=m)),
        )
    )
)
def test_rfc3339_accepts_every_isoformat_datetime(moment: datetime) -> None:
    assert is_rfc3339_date_time(moment.isoformat())


# --- schema files and lookup ----------------------------------------------------------------


def schema_files() -> list[Path]:
    return sorted(SCHEMA_DIR.glob("*.schema.json"))


def test_schema_files_are_draft_2020_12_and_documented() -> None:
    readme = (SCHEMA_DIR / "README.md").read_text(encoding="utf-8")
    ids = set()
    assert len(schema_files()) >= 7
    for path in schema_files():
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)
        ids.add(schema["$id"])
        assert f"`{path.name}`" in readme
    assert len(ids) == len(schema_files())


def test_schemas_come_from_the_source_tree_in_an_editable_install() -> None:
    search = _schemas._schema_search_path()
    assert Path(str(search[0])).parts[-2:] == ("dssesign", "_predicates")
    assert Path(str(search[1])) == SCHEMA_DIR
    assert Path(str(_schemas._schema_dir())) == SCHEMA_DIR


@pytest.fixture
def fresh_schema_caches() -> Iterator[None]:
    _clear_schema_caches()
    yield
    _clear_schema_caches()


@pytest.mark.usefixtures("fresh_schema_caches")
def test_schemas_load_from_the_wheel_layout_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = tmp_path / "dssesign" / "_predicates"
    shutil.copytree(SCHEMA_DIR, packaged)
    marked = json.loads((packaged / "test-result-v0.1.schema.json").read_text(encoding="utf-8"))
    marked["properties"]["result"] = {"enum": ["FROM_WHEEL"]}
    (packaged / "test-result-v0.1.schema.json").write_text(json.dumps(marked), encoding="utf-8")
    monkeypatch.setattr(_schemas, "_schema_search_path", lambda: [packaged, SCHEMA_DIR])
    validate_predicate(TEST_RESULT_URI, {"result": "FROM_WHEEL", "configuration": []})
    assert_refused_at(TEST_RESULT_URI, load("test-result-v0.1.json"), "$.result", "FROM_WHEEL")


@pytest.mark.usefixtures("fresh_schema_caches")
def test_missing_schemas_fail_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_schemas, "_schema_search_path", lambda: [tmp_path / "nothing"])
    with pytest.raises(RuntimeError, match="predicate schemas not found"):
        validate_predicate(SLSA_PROVENANCE_V1_URI, slsa())


# --- registering types ----------------------------------------------------------------------

TOOL_RUN_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["tool", "ranAt"],
    "properties": {
        "tool": {"$ref": "urn:dssesign:schema:intoto-v1-fields#/$defs/ResourceDescriptor"},
        "ranAt": {"$ref": "urn:dssesign:schema:intoto-v1-fields#/$defs/Timestamp"},
    },
}


@pytest.mark.usefixtures("private_registry")
def test_register_a_new_type_without_editing_the_module() -> None:
    ptype = PredicateType(
        "https://example.com/tool-run/v1",
        ("tool-run",),
        json_schema_validator(TOOL_RUN_SCHEMA),
        "example",
    )
    assert register_predicate_type(ptype) is ptype
    assert ptype in known_predicate_types()
    assert resolve_predicate_type("tool-run") == "https://example.com/tool-run/v1"
    ok = b'{"tool": {"uri": "https://example.com/t"}, "ranAt": "2024-01-01T00:00:00Z"}'
    assert prepare_predicate("tool-run", ok)[1] == json.loads(ok)
    with pytest.raises(PredicateError) as info:
        prepare_predicate("tool-run", b'{"tool": {}, "ranAt": "2024-01-01T00:00:00Z"}')
    assert info.value.path == "$.tool"
    with pytest.raises(PredicateError) as info:
        prepare_predicate("tool-run", b'{"tool": {"uri": "https://e.com/t"}, "ranAt": "now"}')
    assert info.value.path == "$.ranAt"


@pytest.mark.usefixtures("private_registry")
def test_register_from_a_schema_file(tmp_path: Path) -> None:
    path = tmp_path / "tool-run.schema.json"
    path.write_text(json.dumps(TOOL_RUN_SCHEMA), encoding="utf-8")
    register_predicate_type(
        PredicateType("urn:example:tool-run", ["toolrun"], json_schema_validator(path))  # type: ignore[arg-type]
    )
    assert_refused_at(
        "urn:example:tool-run", {"tool": {"uri": "https://e.com"}}, "$.ranAt", "required"
    )


@pytest.mark.usefixtures("private_registry")
def test_register_refuses_clashes_unless_replacing() -> None:
    with pytest.raises(ValueError, match="clashes"):
        register_predicate_type(PredicateType("https://example.com/mine/v1", ("custom",)))
    with pytest.raises(ValueError, match="clashes"):
        register_predicate_type(PredicateType(SLSA_PROVENANCE_V1_URI, ("mine",)))
    register_predicate_type(
        PredicateType(SLSA_PROVENANCE_V1_URI, ("slsaprovenance1",)), replace=True
    )
    validate_predicate(SLSA_PROVENANCE_V1_URI, {"no": "schema any more"})


@pytest.mark.usefixtures("private_registry")
@pytest.mark.parametrize(
    "ptype",
    [
        PredicateType("not-a-uri", ("x",)),
        PredicateType("https://example.com/x", ("has space",)),
        PredicateType("https://example.com/x", ("",)),
        PredicateType("https://example.com/x", (), aliases=("HTTPS://EXAMPLE.COM/y",)),
    ],
)
def test_register_refuses_malformed_types(ptype: PredicateType) -> None:
    with pytest.raises(ValueError, match="predicate"):
        register_predicate_type(ptype)


def test_registry_used_by_other_tests_is_unchanged() -> None:
    assert {n for t in known_predicate_types() for n in t.short_names} == set(EXPECTED_SHORT_NAMES)


# --- robustness -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=16,
)


@pytest.mark.parametrize("uri", all_type_uris())
@settings(max_examples=40, deadline=None)
@given(value=json_values)
def test_arbitrary_json_only_ever_raises_predicate_error(uri: str, value: object) -> None:
    with contextlib.suppress(PredicateError):
        validate_predicate(uri, value)


def test_absurdly_deep_predicates_are_refused_not_crashed() -> None:
    deep: dict[str, Any] = {}
    for _ in range(5000):
        deep = {"x": deep}
    doc = slsa()
    doc["buildDefinition"]["externalParameters"] = deep
    assert_refused_at(SLSA_PROVENANCE_V1_URI, doc, "$", "nested too deeply")


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _replace(document: dict[str, Any], path: tuple[str | int, ...], new: object) -> object:
    if not path:
        return new
    copied = copy.deepcopy(document)
    parent: Any = copied
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return copied


@pytest.mark.parametrize(("name", "type_", "uri"), VALID_FIXTURES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_fixtures_only_ever_raise_predicate_error(
    name: str, type_: str, uri: str, data: st.DataObject
) -> None:
    document = load(name)
    path = data.draw(st.sampled_from(list(_paths(document))), label="path")
    mutated = _replace(document, path, data.draw(json_values, label="new value"))
    try:
        validate_predicate(uri, mutated)
    except PredicateError as exc:
        assert exc.path.startswith("$")
