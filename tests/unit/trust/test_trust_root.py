from __future__ import annotations

import base64
import copy
import dataclasses
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dssesign import trust as tr
from dssesign.core.dsse import Envelope, Signature, b64encode, pae
from dssesign.core.keys import ALGORITHMS
from dssesign.errors import ConfigError, InputError, SigningError, VerificationError
from dssesign.profiles.software import SoftwareSigner
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.trust import TrustRoot, TrustRootError
from tests.conftest import DelegatingSigner, signer_for

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SLSA = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
#: A sigstore section in outline (the trusted root is not parsed by sigstore-python on load).
SIGSTORE: dict[str, Any] = {
    "trustedRoot": {"mediaType": TRUSTED_ROOT_MEDIA_TYPE, "tlogs": []},
    "identities": [
        {"issuer": "https://issuer.example", "subject": "ci@example.com"},
        {
            "issuer": "https://token.actions.githubusercontent.com",
            "subjectRegExp": "https://github\\.com/org/[a-z-]+/\\.github/workflows/.*",
            "extensions": {"githubWorkflowRepository": "org/app"},
            "predicateTypes": [SLSA],
            "label": "gha",
        },
    ],
}


def key(index: int) -> SoftwareSigner:
    """Ed25519 signing keys 0..9 (cheap); root keys are 10 and up."""
    return signer_for("ed25519", index)


def root_key(index: int) -> SoftwareSigner:
    return signer_for("ed25519", 10 + index)


def base_root(*, root_keys: int = 2, root_threshold: int = 2, version: int = 1) -> TrustRoot:
    """Two signing keys (threshold 1) and `root_keys` root keys; expires 2027-01-01."""
    root = tr.init_trust_root(threshold=1, now=NOW)
    root = tr.add_key(root, key(0).public_key, label="ci")
    root = tr.add_key(root, key(1).public_key, predicate_types=[SLSA])
    if root_keys:
        root = tr.set_root_keys(
            root, [root_key(i).public_key for i in range(root_keys)], threshold=root_threshold
        )
    return dataclasses.replace(root, version=version)


def doc_of(root: TrustRoot) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(tr.dump_trust_root(root))
    return loaded


def load_doc(doc: object, **kwargs: Any) -> TrustRoot:
    return tr.load_trust_root(json.dumps(doc).encode(), **kwargs)


def refused(doc: object, **kwargs: Any) -> TrustRootError:
    with pytest.raises(TrustRootError) as info:
        load_doc(doc, **kwargs)
    return info.value


# --- format and round trip -------------------------------------------------------------------


def test_round_trip_is_exact_with_every_field() -> None:
    root = base_root()
    root = tr.rotate_key(root, key(0), key(2).public_key, now=NOW)
    root = tr.revoke_key(root, key(1).keyid, at=NOW + timedelta(days=3), reason="laptop lost")
    root = tr.add_key(
        root,
        key(3).public_key,
        valid_from=NOW,
        valid_until=NOW + timedelta(days=90),
        predicate_types=[SLSA, SPDX],
        label="sbom",
    )
    root = tr.set_policy(root, threshold=2, required_keyids=[key(0).keyid])
    root = tr.set_policy(root, for_type=SPDX, threshold=1, required_keyids=[key(3).keyid])
    root = dataclasses.replace(root, sigstore=SIGSTORE)
    data = tr.dump_trust_root(root)
    loaded = tr.load_trust_root(data)
    assert loaded == root
    assert tr.dump_trust_root(loaded) == data
    assert json.loads(data)["mediaType"] == tr.MEDIA_TYPE
    # Canonical: sorted members, no whitespace.
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()


def test_loader_accepts_any_member_order_and_whitespace() -> None:
    root = base_root()
    pretty = json.dumps(doc_of(root), indent=2).encode()
    assert tr.load_trust_root(pretty) == root
    assert tr.load_trust_root(pretty.decode()) == root


def test_schema_is_shipped_in_the_package_and_valid() -> None:
    from jsonschema import Draft202012Validator

    shipped = resources.files("dssesign").joinpath("schemas", "trust-root.v1.schema.json")
    document = json.loads(shipped.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(document)
    assert document == tr.schema()
    assert document["$id"] == tr.SCHEMA_ID
    assert document["properties"]["mediaType"]["enum"] == [tr.MEDIA_TYPE, tr.MEDIA_TYPE_V2]
    # The algorithm enum is the one allow-list of keys.py.
    assert set(document["$defs"]["algorithm"]["enum"]) == set(ALGORITHMS)
    # The schema itself accepts what we write (the loader adds semantic checks on top).
    Draft202012Validator(document).validate(doc_of(base_root()))


def test_schema_sets_additional_properties_false_everywhere_but_sigstore() -> None:
    def walk(node: object, path: str) -> list[str]:
        found = []
        if isinstance(node, dict):
            if node.get("type") == "object" and "additionalProperties" not in node:
                found.append(path)
            for name, child in node.items():
                found += walk(child, f"{path}/{name}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                found += walk(child, f"{path}/{index}")
        return found

    # Only the embedded Sigstore trusted root is open: it is Sigstore's format, kept verbatim.
    found = walk(tr.schema(), "#")
    assert found and all(p.startswith("#/$defs/sigstoreTrustedRoot") for p in found), found


def test_save_writes_atomically_and_reads_back(tmp_path: Path) -> None:
    root = base_root()
    target = tmp_path / "trust-root.json"
    tr.save_trust_root(target, root)
    assert target.read_bytes() == tr.dump_trust_root(root)
    assert tr.read_trust_root(target) == root
    assert [p.name for p in tmp_path.iterdir()] == ["trust-root.json"]


def test_cli_flow_init_then_add_keys_through_files(tmp_path: Path) -> None:
    target = tmp_path / "root.json"
    tr.save_trust_root(target, tr.init_trust_root(threshold=2, now=NOW))
    # Still being assembled: a verifier refuses it, the management commands continue it.
    with pytest.raises(TrustRootError, match=r"\$\.policy\.threshold: 2 exceeds the 0 keys"):
        tr.read_trust_root(target)
    for index in range(2):
        current = tr.read_trust_root(target, allow_incomplete=True)
        tr.save_trust_root(target, tr.add_key(current, key(index).public_key))
    final = tr.read_trust_root(target)
    assert final.version == 3
    assert [k.keyid for k in final.keys] == [key(0).keyid, key(1).keyid]


def test_time_helpers() -> None:
    assert tr.parse_time("2026-02-28T23:59:59Z") == datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC)
    assert tr.format_time(datetime(33, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0033-01-02T03:04:05Z"
    for bad in (
        "2026-01-01T00:00:00+00:00",
        "2026-01-01t00:00:00Z",
        "2026-01-01T00:00:00z",
        "2026-01-01T00:00:00.5Z",
        "2026-01-01T00:00:00Z\n",
        "2026-02-30T00:00:00Z",
        "2026-12-31T23:59:60Z",
        "0000-01-01T00:00:00Z",
        "\uff12\uff10\uff12\uff16-01-01T00:00:00Z",  # full-width digits,
    ):
        with pytest.raises(TrustRootError):
            tr.parse_time(bad)


# --- schema refusals -------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], object]

SCHEMA_CASES: list[tuple[str, Mutation, str, str]] = [
    ("unknown top-level field", lambda d: d.update(extra=1), "$.extra", "unknown field"),
    (
        "unknown key field",
        lambda d: d["keys"][0].update(colour="red"),
        "$.keys[0].colour",
        "unknown field",
    ),
    (
        "unknown policy field",
        lambda d: d["policy"].update(quorum=2),
        "$.policy.quorum",
        "unknown field",
    ),
    (
        "unknown perType field",
        lambda d: d["policy"].update(perType={SLSA: {"threshold": 1, "x": 1}}),
        f'$.policy.perType["{SLSA}"].x',
        "unknown field",
    ),
    (
        "unknown rootKeys entry field",
        lambda d: d["rootKeys"]["keys"][1].update(label="r"),
        "$.rootKeys.keys[1].label",
        "unknown field",
    ),
    (
        "unknown revoked field",
        lambda d: d["keys"][0].update(
            revoked={"time": "2026-01-01T00:00:00Z", "reason": "", "by": 1}
        ),
        "$.keys[0].revoked.by",
        "unknown field",
    ),
    (
        "case variant of a field",
        lambda d: d["keys"][0].update(KeyId=d["keys"][0]["keyid"]),
        "$.keys[0].KeyId",
        "unknown field",
    ),
    ("missing policy", lambda d: d.pop("policy"), "$.policy", "required field is missing"),
    (
        "missing hybrid",
        lambda d: d["policy"].pop("hybrid"),
        "$.policy.hybrid",
        "required field is missing",
    ),
    (
        "missing rotations",
        lambda d: d.pop("rotations"),
        "$.rotations",
        "required field is missing",
    ),
    (
        "wrong mediaType",
        lambda d: d.update(mediaType="application/vnd.dev.sigstore.trustedroot.v0.2+json"),
        "$.mediaType",
        "is not one of",
    ),
    ("version 0", lambda d: d.update(version=0), "$.version", "less than the minimum"),
    ("version string", lambda d: d.update(version="2"), "$.version", "not of type"),
    ("version float", lambda d: d.update(version=1.5), "$.version", "not of type"),
    ("version bool", lambda d: d.update(version=True), "$.version", "not of type"),
    (
        "expires with offset",
        lambda d: d.update(expires="2027-01-01T00:00:00+00:00"),
        "$.expires",
        "RFC 3339 UTC",
    ),
    (
        "expires with trailing newline",
        lambda d: d.update(expires="2027-01-01T00:00:00Z\n"),
        "$.expires",
        "RFC 3339 UTC",
    ),
    (
        "upper-case keyid",
        lambda d: d["keys"][0].update(keyid=d["keys"][0]["keyid"].upper()),
        "$.keys[0].keyid",
        "is not a keyid",
    ),
    (
        "algorithm outside the allow-list",
        lambda d: d["keys"][0].update(algorithm="PKIX_RSA_PKCS1V15_2048_SHA256"),
        "$.keys[0].algorithm",
        "is not one of",
    ),
    (
        "hybrid mode unknown",
        lambda d: d["policy"].update(hybrid="maybe"),
        "$.policy.hybrid",
        "is not one of",
    ),
    ("threshold 0", lambda d: d["policy"].update(threshold=0), "$.policy.threshold", "minimum"),
    (
        "empty predicateTypes",
        lambda d: d["keys"][0].update(predicateTypes=[]),
        "$.keys[0].predicateTypes",
        "omit the field",
    ),
    (
        "duplicate predicateTypes",
        lambda d: d["keys"][0].update(predicateTypes=[SLSA, SLSA]),
        "$.keys[0].predicateTypes",
        "duplicate",
    ),
    (
        "predicate type not a URI",
        lambda d: d["keys"][0].update(predicateTypes=["slsa provenance"]),
        "$.keys[0].predicateTypes[0]",
        "absolute URI",
    ),
    (
        "perType name not a URI",
        lambda d: d["policy"].update(perType={"SLSA": {"threshold": 1}}),
        "$.policy.perType",
        'member name "SLSA" is not an absolute URI',
    ),
    (
        "label with a control character",
        lambda d: d["keys"][0].update(label="ci\x1b[2J"),
        "$.keys[0].label",
        "control characters",
    ),
    (
        "empty label",
        lambda d: d["keys"][0].update(label=""),
        "$.keys[0].label",
        "must not be empty",
    ),
    (
        "sigstore not an object",
        lambda d: d.update(sigstore=[]),
        "$.sigstore",
        "not of type",
    ),
    (
        "keys not a list",
        lambda d: d.update(keys={}),
        "$.keys",
        "not of type",
    ),
    (
        "publicKey not PEM",
        lambda d: d["keys"][0].update(publicKey="MCowBQYDK2VwAyEA"),
        "$.keys[0].publicKey",
        "not a PEM",
    ),
    (
        "rootKeys without keys",
        lambda d: d["rootKeys"].update(keys=[]),
        "$.rootKeys.keys",
        "at least 1",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [pytest.param(m, p, msg, id=name) for name, m, p, msg in SCHEMA_CASES],
)
def test_schema_refusals_name_the_path(mutate: Mutation, path: str, message: str) -> None:
    doc = doc_of(base_root())
    mutate(doc)
    error = refused(doc)
    assert error.path == path, str(error)
    assert str(error).startswith(f"trust root {path}: ")
    assert message in str(error)


def test_handover_signature_must_be_standard_padded_base64() -> None:
    root = tr.rotate_key(base_root(), key(0), key(2).public_key, now=NOW)
    doc = doc_of(root)
    sig = base64.b64decode(doc["rotations"][0]["handoverSignature"])
    for spelled in (
        base64.urlsafe_b64encode(sig).decode().replace("=", "").replace("A", "-", 1) + "_",
        base64.b64encode(sig).decode().rstrip("="),
        "@@@@",
    ):
        bad = copy.deepcopy(doc)
        bad["rotations"][0]["handoverSignature"] = spelled
        assert refused(bad).path == "$.rotations[0].handoverSignature"
    # Non-canonical padding bits: decodes, but is not the one spelling.
    bad = copy.deepcopy(doc)
    text = doc["rotations"][0]["handoverSignature"]
    bad["rotations"][0]["handoverSignature"] = text[:-3] + chr(ord(text[-3]) + 1) + "=="
    error = refused(bad)
    assert error.path == "$.rotations[0].handoverSignature"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not valid JSON"),
        (b"[]", "is not of type 'object'"),
        (b"\xef\xbb\xbf{}", "byte order mark"),
        (b'{"version": 1, "version": 2}', "duplicate member 'version'"),
        (b'{"a": NaN}', "not valid JSON"),
        (b"\xff", "not UTF-8"),
        (b"[" * 200 + b"]" * 200, "nested deeper"),
    ],
)
def test_malformed_json_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(TrustRootError, match=message):
        tr.load_trust_root(data)


def test_duplicate_members_inside_keys_are_refused() -> None:
    text = tr.dump_trust_root(base_root()).decode()
    doubled = text.replace('"label":"ci"', '"label":"ci","label":"prod"')
    with pytest.raises(TrustRootError, match="duplicate member 'label'"):
        tr.load_trust_root(doubled)


def test_oversize_document_is_refused() -> None:
    data = b'{"pad":"' + b"x" * tr.MAX_TRUST_ROOT_BYTES + b'"}'
    with pytest.raises(TrustRootError, match="exceeds the limit"):
        tr.load_trust_root(data)


# --- semantic refusals -----------------------------------------------------------------------


def test_keyid_mismatch_is_refused() -> None:
    doc = doc_of(base_root())
    doc["keys"][0]["keyid"] = "0" * 64
    error = refused(doc)
    assert error.path == "$.keys[0].keyid"
    assert f"does not match the key (SHA-256 of its SPKI is {key(0).keyid})" in str(error)


def test_keyid_of_another_listed_key_is_refused() -> None:
    doc = doc_of(base_root())
    doc["keys"][0]["keyid"] = doc["keys"][1]["keyid"]
    assert refused(doc).path == "$.keys[0].keyid"


def test_duplicate_key_under_two_keyids_is_refused() -> None:
    doc = doc_of(base_root())
    twin = dict(doc["keys"][0], keyid="ab" * 32, label="same key, other name")
    doc["keys"].append(twin)
    error = refused(doc)
    assert error.path == "$.keys[2].publicKey"
    assert "the same key is already listed at $.keys[0]" in str(error)


def test_duplicate_key_under_the_same_keyid_is_refused() -> None:
    doc = doc_of(base_root())
    doc["keys"].append(dict(doc["keys"][1]))
    assert "already listed at $.keys[1]" in str(refused(doc))


def test_duplicate_root_key_is_refused() -> None:
    doc = doc_of(base_root())
    doc["rootKeys"]["keys"][1] = dict(doc["rootKeys"]["keys"][0])
    error = refused(doc)
    assert error.path == "$.rootKeys.keys[1].publicKey"


def test_root_keyid_mismatch_is_refused() -> None:
    doc = doc_of(base_root())
    doc["rootKeys"]["keys"][0]["keyid"] = doc["keys"][0]["keyid"]
    assert refused(doc).path == "$.rootKeys.keys[0].keyid"


def test_algorithm_must_match_the_key() -> None:
    doc = doc_of(base_root())
    doc["keys"][0]["algorithm"] = "ML_DSA_65"
    error = refused(doc)
    assert error.path == "$.keys[0].algorithm"
    assert "does not match the key, which is PKIX_ED25519" in str(error)


def test_unsupported_key_type_is_refused() -> None:
    pem = (
        x25519.X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    doc = doc_of(base_root())
    doc["keys"][0]["publicKey"] = pem
    error = refused(doc)
    assert error.path == "$.keys[0].publicKey"
    assert "unsupported key type" in str(error)


def test_non_canonical_pem_is_refused() -> None:
    p384 = signer_for("ecdsa-p384").public_key
    root = tr.add_key(base_root(), p384)
    doc = doc_of(root)
    body = "".join(p384.pem.splitlines()[1:-1])
    doc["keys"][2]["publicKey"] = f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"
    error = refused(doc)
    assert error.path == "$.keys[2].publicKey"
    assert "canonical PEM" in str(error)
    # Two PEM blocks: the second would be ignored by a PEM reader, so refuse it.
    doc["keys"][2]["publicKey"] = p384.pem + key(5).public_key.pem
    assert refused(doc).path == "$.keys[2].publicKey"


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        pytest.param(
            lambda d: d["keys"][0].update(
                validFrom="2026-02-01T00:00:00Z", validUntil="2026-02-01T00:00:00Z"
            ),
            "$.keys[0].validUntil",
            "is not after validFrom",
            id="validFrom-equals-validUntil",
        ),
        pytest.param(
            lambda d: d["keys"][0].update(
                validFrom="2026-03-01T00:00:00Z", validUntil="2026-02-01T00:00:00Z"
            ),
            "$.keys[0].validUntil",
            "is not after validFrom",
            id="validUntil-before-validFrom",
        ),
        pytest.param(
            lambda d: d["keys"][0].update(validFrom="2026-02-30T00:00:00Z"),
            "$.keys[0].validFrom",
            "not a valid time",
            id="impossible-date",
        ),
        pytest.param(
            lambda d: d["policy"].update(requiredKeyids=["ab" * 32]),
            "$.policy.requiredKeyids[0]",
            "is not a key in $.keys",
            id="required-keyid-absent",
        ),
        pytest.param(
            lambda d: d["policy"].update(
                perType={SPDX: {"threshold": 1, "requiredKeyids": [d["keys"][1]["keyid"]]}}
            ),
            f'$.policy.perType["{SPDX}"].requiredKeyids[0]',
            "may not attest to it",
            id="required-key-not-allowed-for-type",
        ),
        pytest.param(
            lambda d: d["policy"].update(threshold=3),
            "$.policy.threshold",
            "3 exceeds the 2 keys",
            id="threshold-above-key-count",
        ),
        pytest.param(
            lambda d: d["policy"].update(perType={SPDX: {"threshold": 2}}),
            f'$.policy.perType["{SPDX}"].threshold',
            f"2 exceeds the 1 keys allowed for {SPDX}",
            id="type-threshold-above-eligible-keys",
        ),
        pytest.param(
            lambda d: d["policy"].update(hybrid="and"),
            "$.policy.threshold",
            "hybrid 'and' needs 1 classical keys and at least one ML-DSA key",
            id="hybrid-and-without-ml-dsa",
        ),
        pytest.param(
            lambda d: d["policy"].update(hybrid="pq-only"),
            "$.policy.threshold",
            "exceeds the 0 ML-DSA keys",
            id="pq-only-without-ml-dsa",
        ),
        pytest.param(
            lambda d: d["rootKeys"].update(threshold=3),
            "$.rootKeys.threshold",
            "from 1 to 2",
            id="root-threshold-above-root-keys",
        ),
        pytest.param(
            lambda d: d.update(
                sigstore={**SIGSTORE, "trustedRoot": {**SIGSTORE["trustedRoot"], "n": 2**60 + 1}}
            ),
            # I-JSON: the parser refuses the integer before the sigstore section is read.
            "$",
            "beyond 2^53 - 1",
            id="sigstore-not-canonicalizable",
        ),
    ],
)
def test_semantic_refusals(mutate: Mutation, path: str, message: str) -> None:
    doc = doc_of(base_root())
    mutate(doc)
    error = refused(doc)
    assert error.path == path, str(error)
    assert message in str(error)


def test_overflowing_number_in_sigstore_is_refused() -> None:
    doc = doc_of(base_root())
    doc["sigstore"] = {**SIGSTORE, "trustedRoot": {**SIGSTORE["trustedRoot"], "n": "PLACEHOLDER"}}
    data = json.dumps(doc).replace('"PLACEHOLDER"', "1e400").encode()
    # I-JSON: refused by the parser already, wherever in the document the number is.
    with pytest.raises(TrustRootError, match="out of range for a double") as info:
        tr.load_trust_root(data)
    assert info.value.path == "$"


def test_incomplete_policy_is_allowed_only_when_asked() -> None:
    doc = doc_of(base_root())
    doc["policy"]["threshold"] = 3
    assert load_doc(doc, allow_incomplete=True).policy.threshold == 3
    with pytest.raises(TrustRootError):
        tr.sign_trust_root(load_doc(doc, allow_incomplete=True), [root_key(0), root_key(1)])


def test_hybrid_policies_that_can_be_met_load() -> None:
    pq = signer_for("ml-dsa-65", 0).public_key
    root = tr.add_key(base_root(), pq)
    for mode in ("off", "or", "and"):
        assert tr.load_trust_root(tr.dump_trust_root(tr.set_policy(root, hybrid=mode)))
    only = tr.set_policy(root, hybrid="pq-only")
    assert tr.load_trust_root(tr.dump_trust_root(only)).policy.hybrid == "pq-only"
    required = tr.set_policy(only, required_keyids=[key(0).keyid])
    with pytest.raises(TrustRootError, match="classical key, which hybrid 'pq-only' never counts"):
        tr.load_trust_root(tr.dump_trust_root(required))


ROTATION_CASES: list[tuple[str, Mutation, str, str]] = [
    (
        "from unknown key",
        lambda d: d["rotations"][0].update(fromKeyid="cd" * 32),
        "$.rotations[0].fromKeyid",
        "is not a key in $.keys",
    ),
    (
        "to unknown key",
        lambda d: d["rotations"][0].update(toKeyid="cd" * 32),
        "$.rotations[0].toKeyid",
        "is not a key in $.keys",
    ),
    (
        "rotated to itself",
        lambda d: d["rotations"][0].update(toKeyid=d["rotations"][0]["fromKeyid"]),
        "$.rotations[0].toKeyid",
        "to itself",
    ),
    (
        "deadline before the rotation",
        lambda d: d["rotations"][0].update(transitionDeadline="2025-12-31T00:00:00Z"),
        "$.rotations[0].transitionDeadline",
        "before the rotation time",
    ),
    (
        "old key valid past the deadline",
        lambda d: d["keys"][0].update(validUntil="2026-06-01T00:00:00Z"),
        "$.keys[0].validUntil",
        "by its transition deadline",
    ),
    (
        "old key without validUntil",
        lambda d: d["keys"][0].pop("validUntil"),
        "$.keys[0].validUntil",
        "by its transition deadline",
    ),
    (
        "same key rotated away twice",
        lambda d: d["rotations"].append(dict(d["rotations"][0], toKeyid=d["keys"][1]["keyid"])),
        "$.rotations[1].fromKeyid",
        "already rotated away",
    ),
    (
        "same key introduced twice",
        lambda d: d["rotations"].append(dict(d["rotations"][0], fromKeyid=d["keys"][1]["keyid"])),
        "$.rotations[1].toKeyid",
        "already introduced at $.rotations[0]",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [pytest.param(m, p, msg, id=name) for name, m, p, msg in ROTATION_CASES],
)
def test_rotation_refusals(mutate: Mutation, path: str, message: str) -> None:
    doc = doc_of(tr.rotate_key(base_root(), key(0), key(2).public_key, now=NOW))
    mutate(doc)
    error = refused(doc)
    assert error.path == path, str(error)
    assert message in str(error)


def test_rotation_cycle_is_refused() -> None:
    root = tr.rotate_key(base_root(), key(0), key(2).public_key, now=NOW)
    doc = doc_of(root)
    deadline = doc["rotations"][0]["transitionDeadline"]
    doc["keys"][2]["validUntil"] = deadline
    back = dict(doc["rotations"][0], fromKeyid=key(2).keyid, toKeyid=key(0).keyid)
    # key 0 is both the start and the end: each is rotated once and introduced once.
    doc["rotations"].append(back)
    error = refused(doc)
    assert "cycle" in str(error)


# --- management operations -------------------------------------------------------------------


def test_init_is_version_1_and_empty() -> None:
    root = tr.init_trust_root(threshold=2, expires_days=30, now=NOW)
    assert root.version == 1
    assert root.keys == ()
    assert root.policy == tr.Policy(threshold=2)
    assert root.expires == NOW + timedelta(days=30)
    assert tr.load_trust_root(tr.dump_trust_root(root), allow_incomplete=True) == root
    with pytest.raises(ConfigError):
        tr.init_trust_root(expires_days=0)
    with pytest.raises(TrustRootError):
        tr.init_trust_root(threshold=0)


def _operations() -> list[tuple[str, Callable[[TrustRoot], TrustRoot]]]:
    return [
        ("add_key", lambda r: tr.add_key(r, key(4).public_key, label="new")),
        ("revoke_key", lambda r: tr.revoke_key(r, key(1).keyid, at=NOW, reason="r")),
        ("set_policy", lambda r: tr.set_policy(r, threshold=2)),
        ("set_policy for a type", lambda r: tr.set_policy(r, for_type=SLSA, threshold=1)),
        ("set_policy hybrid", lambda r: tr.set_policy(r, hybrid="or")),
        ("rotate_key", lambda r: tr.rotate_key(r, key(0), key(4).public_key, now=NOW)),
        ("set_root_keys", lambda r: tr.set_root_keys(r, [root_key(3).public_key], threshold=1)),
        ("set_expires", lambda r: tr.set_expires(r, NOW + timedelta(days=700))),
    ]


@pytest.mark.parametrize(("name", "operation"), _operations(), ids=[n for n, _ in _operations()])
def test_each_operation_bumps_version_and_leaves_the_input_alone(
    name: str, operation: Callable[[TrustRoot], TrustRoot]
) -> None:
    before = base_root(version=7)
    snapshot = tr.dump_trust_root(before)
    after = operation(before)
    assert after.version == 8
    assert after != before
    assert tr.dump_trust_root(before) == snapshot
    assert tr.load_trust_root(tr.dump_trust_root(after)) == after
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.version = 1  # type: ignore[misc]


def test_unset_type_policy() -> None:
    root = tr.set_policy(base_root(), for_type=SLSA, threshold=1, required_keyids=[key(1).keyid])
    assert root.policy.for_type(SLSA) == tr.TypePolicy(1, (key(1).keyid,))
    cleared = tr.unset_type_policy(root, SLSA)
    assert cleared.version == root.version + 1
    assert cleared.policy.per_type == {}
    assert cleared.policy.for_type(SLSA) == tr.TypePolicy(1, ())
    with pytest.raises(TrustRootError):
        tr.unset_type_policy(cleared, SLSA)


def test_set_policy_updates_and_clears() -> None:
    root = tr.set_policy(base_root(), threshold=2, required_keyids=[key(0).keyid])
    assert root.policy.threshold == 2
    assert root.policy.required_keyids == (key(0).keyid,)
    root = tr.set_policy(root, required_keyids=[])
    assert root.policy.required_keyids == ()
    assert root.policy.threshold == 2
    root = tr.set_policy(root, for_type=SLSA, threshold=1)
    root = tr.set_policy(root, for_type=SLSA, required_keyids=[key(1).keyid])
    assert root.policy.per_type[SLSA] == tr.TypePolicy(1, (key(1).keyid,))


def test_set_policy_refusals() -> None:
    root = base_root()
    with pytest.raises(ConfigError, match="nothing to change"):
        tr.set_policy(root)
    with pytest.raises(ConfigError, match="needs a threshold"):
        tr.set_policy(root, for_type=SLSA, required_keyids=[key(1).keyid])
    with pytest.raises(ConfigError, match="whole trust root"):
        tr.set_policy(root, for_type=SLSA, hybrid="or")
    with pytest.raises(TrustRootError, match=r"\$\.policy\.requiredKeyids\[0\]"):
        tr.set_policy(root, required_keyids=["ef" * 32])
    with pytest.raises(TrustRootError, match="lists a keyid twice"):
        tr.set_policy(root, required_keyids=[key(0).keyid, key(0).keyid])
    with pytest.raises(TrustRootError, match="absolute URI"):
        tr.set_policy(root, for_type="not a uri", threshold=1)
    with pytest.raises(TrustRootError, match="not one of"):
        tr.set_policy(root, hybrid="sometimes")  # type: ignore[arg-type]
    # Incomplete is fine while managing (more keys may follow), refused by the verifier's load.
    raised = tr.set_policy(root, threshold=5)
    with pytest.raises(TrustRootError, match="5 exceeds the 2 keys"):
        tr.load_trust_root(tr.dump_trust_root(raised))


def test_add_key_refusals_and_time_rounding() -> None:
    root = base_root()
    with pytest.raises(TrustRootError, match=r"\$\.keys\[2\]\.publicKey: the same key"):
        tr.add_key(root, key(0).public_key)
    with pytest.raises(ConfigError, match="timezone-aware"):
        tr.add_key(root, key(4).public_key, valid_from=datetime(2026, 1, 1))
    with pytest.raises(TrustRootError, match="is not after validFrom"):
        tr.add_key(root, key(4).public_key, valid_from=NOW, valid_until=NOW)
    with pytest.raises(TrustRootError, match="absolute URI"):
        tr.add_key(root, key(4).public_key, predicate_types=["sbom"])
    with pytest.raises(ConfigError):
        tr.add_key(root, key(4).public_key, predicate_types=SLSA)
    with pytest.raises(TrustRootError, match="control characters"):
        tr.add_key(root, key(4).public_key, label="a\nb")
    half = timedelta(microseconds=500_000)
    added = tr.add_key(root, key(4).public_key, valid_from=NOW + half, valid_until=NOW + 5 * half)
    # Toward the stricter side: a later start, an earlier end.
    assert added.keys[-1].valid_from == NOW + timedelta(seconds=1)
    assert added.keys[-1].valid_until == NOW + timedelta(seconds=2)


def test_revoke_key() -> None:
    root = tr.revoke_key(base_root(), key(0).keyid, at=NOW, reason="key leaked")
    revoked = root.key(key(0).keyid)
    assert revoked is not None
    assert revoked.revocation == tr.Revocation(NOW, "key leaked")
    assert revoked.usable_at(NOW - timedelta(seconds=1))
    assert not revoked.usable_at(NOW)
    with pytest.raises(TrustRootError, match="already revoked"):
        tr.revoke_key(root, key(0).keyid)
    with pytest.raises(TrustRootError, match="no key with keyid"):
        tr.revoke_key(root, "ab" * 32)
    # Default time: now.
    before = datetime.now(UTC).replace(microsecond=0)
    now_revoked = tr.revoke_key(base_root(), key(1).keyid).keys[1].revocation
    assert now_revoked is not None
    assert before <= now_revoked.time <= datetime.now(UTC)


def test_trusted_key_helpers() -> None:
    k = tr.TrustedKey(
        key(0).public_key,
        valid_from=NOW,
        valid_until=NOW + timedelta(days=1),
        predicate_types=(SLSA,),
    )
    assert k.valid_at(NOW)
    assert k.valid_at(NOW + timedelta(days=1))  # inclusive, like sigstore's validFor
    assert not k.valid_at(NOW - timedelta(seconds=1))
    assert not k.valid_at(NOW + timedelta(days=1, seconds=1))
    assert k.allows(SLSA)
    assert not k.allows(SPDX)
    assert tr.TrustedKey(key(0).public_key).allows(SPDX)


# --- rotation --------------------------------------------------------------------------------


def test_rotation_hands_over_and_records_the_event() -> None:
    root = tr.add_key(base_root(), key(3).public_key, predicate_types=[SLSA], label="builder")
    rotated = tr.rotate_key(root, key(3), key(4).public_key, transition_days=10, now=NOW)
    deadline = NOW + timedelta(days=10)
    old, new = rotated.key(key(3).keyid), rotated.key(key(4).keyid)
    assert old is not None
    assert new is not None
    assert old.valid_until == deadline
    assert new.valid_from == NOW
    assert new.label == "builder"
    assert new.predicate_types == (SLSA,)
    (event,) = rotated.rotations
    assert (event.from_keyid, event.to_keyid) == (key(3).keyid, key(4).keyid)
    assert (event.time, event.transition_deadline) == (NOW, deadline)
    assert rotated.rotation_to(key(4).keyid) == event
    assert rotated.rotation_from(key(3).keyid) == event
    assert rotated.rotation_to(key(3).keyid) is None
    assert tr.verify_handover(rotated, event)
    assert tr.failed_handovers(rotated) == ()
    # The exact signed bytes: PAE over canonical JSON of the five fields.
    payload = tr.handover_payload(
        key(3).keyid, key(4).public_key, time=NOW, transition_deadline=deadline
    )
    assert json.loads(payload) == {
        "fromKeyid": key(3).keyid,
        "toKeyid": key(4).keyid,
        "toPublicKey": key(4).public_key.pem,
        "time": "2026-01-01T00:00:00Z",
        "transitionDeadline": "2026-01-11T00:00:00Z",
    }
    assert key(3).public_key.verify(
        event.handover_signature, pae("application/vnd.dssesign.key-handover.v1+json", payload)
    )
    # And it survives the file format.
    assert tr.verify_handover(tr.load_trust_root(tr.dump_trust_root(rotated)), event)


def test_rotation_keeps_an_earlier_valid_until() -> None:
    root = tr.add_key(base_root(), key(3).public_key, valid_until=NOW + timedelta(days=5))
    rotated = tr.rotate_key(root, key(3), key(4).public_key, transition_days=30, now=NOW)
    old = rotated.key(key(3).keyid)
    assert old is not None
    assert old.valid_until == NOW + timedelta(days=5)


def test_rotation_chains() -> None:
    root = tr.rotate_key(base_root(), key(0), key(2).public_key, now=NOW)
    root = tr.rotate_key(root, key(2), key(3).public_key, now=NOW + timedelta(days=1))
    assert root.successors(key(0).keyid) == (key(2).keyid, key(3).keyid)
    assert root.successors(key(3).keyid) == ()
    assert all(tr.verify_handover(root, event) for event in root.rotations)


def test_rotation_works_with_other_algorithms() -> None:
    p256, pq = signer_for("ecdsa-p256"), signer_for("ml-dsa-65")
    root = tr.add_key(base_root(), p256.public_key)
    root = tr.rotate_key(root, p256, pq.public_key, now=NOW)
    assert tr.verify_handover(root, root.rotations[0])


def _forge(root: TrustRoot, **changes: Any) -> TrustRoot:
    event = dataclasses.replace(root.rotations[0], **changes)
    return dataclasses.replace(root, rotations=(event,))


def test_forged_or_altered_handovers_do_not_verify() -> None:
    root = tr.rotate_key(base_root(), key(0), key(2).public_key, now=NOW)
    event = root.rotations[0]
    payload = tr.handover_payload(
        key(0).keyid, key(2).public_key, time=NOW, transition_deadline=event.transition_deadline
    )
    attacker = key(7)
    cases = {
        "signed by another key": _forge(
            root, handover_signature=attacker.sign(pae(tr.HANDOVER_PAYLOAD_TYPE, payload))
        ),
        "signed under another payloadType": _forge(
            root, handover_signature=key(0).sign(pae("application/vnd.in-toto+json", payload))
        ),
        "signature over the bare payload": _forge(root, handover_signature=key(0).sign(payload)),
        "signature bit flipped": _forge(
            root,
            handover_signature=event.handover_signature[:-1]
            + bytes([event.handover_signature[-1] ^ 1]),
        ),
        "deadline extended": _forge(
            root, transition_deadline=event.transition_deadline + timedelta(days=1)
        ),
        "time moved": _forge(root, time=NOW - timedelta(days=1)),
        "truncated signature": _forge(root, handover_signature=event.handover_signature[:10]),
    }
    for name, forged in cases.items():
        assert not tr.verify_handover(forged, forged.rotations[0]), name
        assert tr.failed_handovers(forged) == forged.rotations, name
    # Key material swapped under the new keyid: the event names another key now.
    swapped_keys = (
        *root.keys[:-1],
        dataclasses.replace(root.keys[-1], public_key=attacker.public_key),
    )
    swapped = dataclasses.replace(root, keys=swapped_keys)
    assert not tr.verify_handover(swapped, _forge(swapped, to_keyid=attacker.keyid).rotations[0])
    # An event naming keys not in the root.
    assert not tr.verify_handover(base_root(), event)


def test_forged_handover_in_a_file_loads_but_does_not_verify() -> None:
    """The verifier discounts the new key; the loader does not refuse the whole root."""
    root = tr.rotate_key(base_root(), key(0), key(2).public_key, now=NOW)
    doc = doc_of(root)
    doc["rotations"][0]["transitionDeadline"] = "2026-01-20T00:00:00Z"
    doc["keys"][0]["validUntil"] = "2026-01-20T00:00:00Z"
    forged = load_doc(doc)
    assert not tr.verify_handover(forged, forged.rotations[0])
    with pytest.raises(TrustRootError, match="handover signature does not verify"):
        tr.sign_trust_root(forged, [root_key(0), root_key(1)])


def test_handover_by_a_key_revoked_before_the_rotation_does_not_verify() -> None:
    root = tr.rotate_key(base_root(), key(0), key(2).public_key, now=NOW)
    index = 0
    old = root.keys[index]
    revoked = dataclasses.replace(old, revocation=tr.Revocation(NOW - timedelta(hours=1), "x"))
    tampered = dataclasses.replace(root, keys=(revoked, *root.keys[1:]))
    assert not tr.verify_handover(tampered, tampered.rotations[0])


def test_rotate_key_refusals() -> None:
    root = base_root()
    with pytest.raises(TrustRootError, match="no key with keyid"):
        tr.rotate_key(root, key(8), key(4).public_key, now=NOW)
    with pytest.raises(TrustRootError, match="already in the trust root"):
        tr.rotate_key(root, key(0), key(1).public_key, now=NOW)
    revoked = tr.revoke_key(root, key(0).keyid, at=NOW)
    with pytest.raises(TrustRootError, match="cannot hand over"):
        tr.rotate_key(revoked, key(0), key(4).public_key, now=NOW)
    rotated = tr.rotate_key(root, key(0), key(4).public_key, now=NOW)
    with pytest.raises(TrustRootError, match="already rotated"):
        tr.rotate_key(rotated, key(0), key(5).public_key, now=NOW)
    with pytest.raises(ConfigError):
        tr.rotate_key(root, key(0), key(4).public_key, transition_days=-1, now=NOW)


class _BadSigner(DelegatingSigner):
    """A backend returning a signature that does not verify (or failing outright)."""

    def __init__(self, inner: SoftwareSigner, *, fail: bool = False) -> None:
        super().__init__(inner)
        self._fail = fail

    def sign(self, data: bytes) -> bytes:
        if self._fail:
            raise RuntimeError("HSM unplugged")
        return key(7).sign(data)


def test_rotate_key_refuses_a_handover_that_does_not_verify() -> None:
    with pytest.raises(SigningError, match="does not verify with the old key"):
        tr.rotate_key(base_root(), _BadSigner(key(0)), key(4).public_key, now=NOW)
    with pytest.raises(SigningError, match="HSM unplugged"):
        tr.rotate_key(base_root(), _BadSigner(key(0), fail=True), key(4).public_key, now=NOW)


# --- signed trust roots ----------------------------------------------------------------------

PINS = [root_key(0).keyid, root_key(1).keyid]


def signed(root: TrustRoot, *signers: SoftwareSigner) -> bytes:
    return tr.sign_trust_root(root, list(signers)).to_json()


def expect_code(code: str, envelope: bytes | Envelope, **kwargs: Any) -> VerificationError:
    kwargs.setdefault("now", NOW)
    with pytest.raises(VerificationError) as info:
        tr.verify_signed_trust_root(envelope, **kwargs)
    assert info.value.code == code, str(info.value)
    assert code in tr.TRUST_ROOT_ERROR_CODES
    return info.value


def test_signed_trust_root_accepted_with_pins() -> None:
    root = base_root()
    envelope = tr.sign_trust_root(root, [root_key(0), root_key(1)])
    assert envelope.payload_type == tr.MEDIA_TYPE
    assert envelope.payload == tr.dump_trust_root(root)
    assert tr.verify_signed_trust_root(envelope.to_json(), pinned_root_keyids=PINS, now=NOW) == root
    assert tr.verify_signed_trust_root(envelope, pinned_root_keyids=PINS, now=NOW) == root


def test_threshold_of_root_keys_is_required() -> None:
    root = base_root()
    error = expect_code(
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD, signed(root, root_key(0)), pinned_root_keyids=PINS
    )
    assert "1 valid signature(s)" in str(error)
    # Pinning one key and relaxing the pin does not lower the document's own threshold (2).
    expect_code(
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD,
        signed(root, root_key(0)),
        pinned_root_keyids=PINS[:1],
    )


def test_pinned_threshold_defaults_to_every_pinned_key() -> None:
    root = base_root(root_keys=3, root_threshold=1)
    three = [root_key(i).keyid for i in range(3)]
    two_signed = signed(root, root_key(0), root_key(1))
    # The payload says 1-of-3; the pin is not weakened by what the payload says.
    expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, two_signed, pinned_root_keyids=three)
    accepted = tr.verify_signed_trust_root(
        two_signed, pinned_root_keyids=three, pinned_threshold=2, now=NOW
    )
    assert accepted == root
    with pytest.raises(ConfigError):
        tr.verify_signed_trust_root(two_signed, pinned_root_keyids=three, pinned_threshold=4)


def test_signatures_by_unpinned_root_keys_do_not_count_toward_the_pin() -> None:
    root = base_root(root_keys=3, root_threshold=2)
    envelope = signed(root, root_key(0), root_key(2))
    expect_code(
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD, envelope, pinned_root_keyids=PINS, pinned_threshold=2
    )


def test_pinned_keyid_must_be_in_the_document() -> None:
    root = base_root()
    stranger = [root_key(0).keyid, root_key(5).keyid]
    expect_code(
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD,
        signed(root, root_key(0), root_key(1)),
        pinned_root_keyids=stranger,
    )


def _resigned(envelope: Envelope, signatures: list[Signature]) -> bytes:
    return dataclasses.replace(envelope, signatures=tuple(signatures)).to_json()


def test_duplicate_signatures_count_once() -> None:
    root = base_root()
    envelope = tr.sign_trust_root(root, [root_key(0)])
    sig = envelope.signatures[0].sig
    cases = [
        # One signature repeated under its own keyid.
        [Signature(sig, root_key(0).keyid), Signature(sig, root_key(0).keyid)],
        # One key's signature claimed under the other root key's keyid.
        [Signature(sig, root_key(0).keyid), Signature(sig, root_key(1).keyid)],
        # Hint-free copies.
        [Signature(sig), Signature(sig, "x"), Signature(sig, root_key(1).keyid)],
    ]
    for signatures in cases:
        expect_code(
            tr.TRUST_ROOT_SIGNATURE_THRESHOLD,
            _resigned(envelope, signatures),
            pinned_root_keyids=PINS,
        )


def test_same_key_signing_twice_counts_once() -> None:
    """Two different valid signatures by one key (ECDSA is randomized) still count once."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    p256 = signer_for("ecdsa-p256", 3)
    root = tr.set_root_keys(base_root(), [p256.public_key, root_key(1).public_key], threshold=2)
    payload = tr.dump_trust_root(root)
    message = pae(tr.MEDIA_TYPE, payload)
    private = p256._private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    first, second = (private.sign(message, ec.ECDSA(hashes.SHA256())) for _ in range(2))
    assert first != second
    envelope = Envelope(
        payload, tr.MEDIA_TYPE, (Signature(first, p256.keyid), Signature(second, ""))
    )
    expect_code(
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD,
        envelope,
        pinned_root_keyids=[p256.keyid, root_key(1).keyid],
    )


def test_keyid_hints_are_only_hints() -> None:
    root = base_root()
    envelope = tr.sign_trust_root(root, [root_key(0), root_key(1)])
    first, second = envelope.signatures
    for signatures in (
        [Signature(first.sig, ""), Signature(second.sig, "")],
        [Signature(first.sig, "unknown"), Signature(second.sig, "f" * 200)],
        # Swapped hints: each key is still found.
        [Signature(first.sig, second.keyid), Signature(second.sig, first.keyid)],
    ):
        data = _resigned(envelope, signatures)
        assert tr.verify_signed_trust_root(data, pinned_root_keyids=PINS, now=NOW) == root


def test_wrong_payload_type_is_refused() -> None:
    payload = tr.dump_trust_root(base_root())
    for payload_type in ("application/vnd.in-toto+json", tr.MEDIA_TYPE + " ", ""):
        envelope = MultiProfileSigner([root_key(0), root_key(1)]).sign(payload, payload_type)
        expect_code(tr.TRUST_ROOT_PAYLOAD_TYPE, envelope.to_json(), pinned_root_keyids=PINS)


def test_payload_type_swapped_after_signing_is_refused() -> None:
    envelope = tr.sign_trust_root(base_root(), [root_key(0), root_key(1)])
    swapped = dataclasses.replace(envelope, payload_type="application/vnd.in-toto+json")
    expect_code(tr.TRUST_ROOT_PAYLOAD_TYPE, swapped, pinned_root_keyids=PINS)


def test_changed_payload_is_refused() -> None:
    root = base_root()
    envelope = tr.sign_trust_root(root, [root_key(0), root_key(1)])
    looser = tr.dump_trust_root(tr.add_key(root, key(7).public_key))
    expect_code(
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD,
        dataclasses.replace(envelope, payload=looser),
        pinned_root_keyids=PINS,
    )
    # Same JSON meaning, different bytes: the signature covers bytes.
    spaced = envelope.payload.replace(b",", b", ", 1)
    expect_code(
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD,
        dataclasses.replace(envelope, payload=spaced),
        pinned_root_keyids=PINS,
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{}",
        b'{"payload": "", "payloadType": "x", "signatures": {}}',
        b'{"payload": "!!", "payloadType": "x", "signatures": []}',
        b'{"payload": "", "payload": "", "payloadType": "x", "signatures": []}',
    ],
)
def test_malformed_envelopes(data: bytes) -> None:
    expect_code(tr.TRUST_ROOT_MALFORMED, data, pinned_root_keyids=PINS)


def test_signed_payload_that_is_not_a_trust_root_is_malformed() -> None:
    envelope = MultiProfileSigner([root_key(0), root_key(1)]).sign(b"not json", tr.MEDIA_TYPE)
    error = expect_code(tr.TRUST_ROOT_MALFORMED, envelope, pinned_root_keyids=PINS)
    assert "trust root" in str(error)
    # Signatures are checked before the schema: a document that does not list the pinned keys
    # cannot be authenticated by them, whatever else is wrong with it.
    for payload in (b"{}", b'{"mediaType": 1}'):
        envelope = MultiProfileSigner([root_key(0), root_key(1)]).sign(payload, tr.MEDIA_TYPE)
        expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, envelope, pinned_root_keyids=PINS)
    # Once the pinned keys are listed and have signed, the schema speaks.
    document = doc_of(base_root())
    document["mediaType"] = 1
    payload = json.dumps(document).encode()
    envelope = MultiProfileSigner([root_key(0), root_key(1)]).sign(payload, tr.MEDIA_TYPE)
    error = expect_code(tr.TRUST_ROOT_MALFORMED, envelope, pinned_root_keyids=PINS)
    assert "mediaType" in str(error)


def test_signed_incomplete_trust_root_is_malformed() -> None:
    root = tr.set_policy(base_root(), threshold=3)
    payload = tr.dump_trust_root(root)
    envelope = MultiProfileSigner([root_key(0), root_key(1)]).sign(payload, tr.MEDIA_TYPE)
    expect_code(tr.TRUST_ROOT_MALFORMED, envelope, pinned_root_keyids=PINS)


def test_signed_trust_root_without_root_keys_is_refused() -> None:
    root = base_root(root_keys=0)
    envelope = MultiProfileSigner([root_key(0)]).sign(tr.dump_trust_root(root), tr.MEDIA_TYPE)
    expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, envelope, pinned_root_keyids=PINS[:1])


def test_expired_trust_root_is_refused() -> None:
    root = base_root()
    envelope = signed(root, root_key(0), root_key(1))
    assert tr.verify_signed_trust_root(envelope, pinned_root_keyids=PINS, now=root.expires)
    error = expect_code(
        tr.TRUST_ROOT_EXPIRED,
        envelope,
        pinned_root_keyids=PINS,
        now=root.expires + timedelta(seconds=1),
    )
    assert "expired at 2027-01-01T00:00:00Z" in str(error)


def test_rollback_is_refused() -> None:
    old = base_root(version=3)
    current = base_root(version=5)
    error = expect_code(
        tr.TRUST_ROOT_ROLLBACK, signed(old, root_key(0), root_key(1)), previous=current
    )
    assert "version 3 is older than version 5" in str(error)


def test_equal_version_must_be_identical() -> None:
    current = base_root(version=5)
    same = signed(current, root_key(0), root_key(1))
    assert tr.verify_signed_trust_root(same, previous=current, now=NOW) == current
    fork = tr.add_key(current, key(6).public_key)
    fork = dataclasses.replace(fork, version=5)
    expect_code(
        tr.TRUST_ROOT_VERSION_CONFLICT, signed(fork, root_key(0), root_key(1)), previous=current
    )


def test_chained_update_needs_the_previous_root_keys() -> None:
    previous = base_root(version=4)
    # Version 5 moves to new root keys (2 and 3).
    update = tr.set_root_keys(
        previous, [root_key(2).public_key, root_key(3).public_key], threshold=2
    )
    assert update.version == 5
    only_new = signed(update, root_key(2), root_key(3))
    error = expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, only_new, previous=previous)
    assert "previous trust root (version 4)" in str(error)
    only_old = signed(update, root_key(0), root_key(1))
    error = expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, only_old, previous=previous)
    assert "trust root itself" in str(error)
    both = signed(update, root_key(0), root_key(1), root_key(2), root_key(3))
    assert tr.verify_signed_trust_root(both, previous=previous, now=NOW) == update
    # A pin given too must also hold.
    assert tr.verify_signed_trust_root(
        both, previous=previous, pinned_root_keyids=[root_key(2).keyid, root_key(3).keyid], now=NOW
    )
    expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, both, previous=previous, pinned_root_keyids=PINS)


def test_chained_update_from_a_root_without_root_keys_is_refused() -> None:
    previous = base_root(root_keys=0)
    update = tr.set_root_keys(previous, [root_key(0).public_key], threshold=1)
    expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, signed(update, root_key(0)), previous=previous)


def test_trust_root_chain_walks_root_key_rotations() -> None:
    v1 = base_root(root_keys=1, root_threshold=1)
    v2 = tr.set_root_keys(v1, [root_key(1).public_key], threshold=1)
    v3 = tr.add_key(v2, key(5).public_key)
    # v2's expiry has passed by the time v3 is checked: intermediates may have lapsed.
    v2 = dataclasses.replace(v2, expires=NOW + timedelta(days=1))
    chain = [signed(v1, root_key(0)), signed(v2, root_key(0), root_key(1)), signed(v3, root_key(1))]
    later = NOW + timedelta(days=30)
    final = tr.verify_trust_root_chain(chain, pinned_root_keyids=[root_key(0).keyid], now=later)
    assert final == v3
    # Jumping from v1 to v3 directly: v1's root key did not sign v3.
    expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, chain[2], previous=v1)
    # Skipping v2: v1's root key cannot vouch for v3.
    with pytest.raises(VerificationError) as info:
        tr.verify_trust_root_chain(
            [chain[0], chain[2]], pinned_root_keyids=[root_key(0).keyid], now=NOW
        )
    assert info.value.code == tr.TRUST_ROOT_SIGNATURE_THRESHOLD
    with pytest.raises(ConfigError):
        tr.verify_trust_root_chain([], pinned_root_keyids=PINS)


def test_verify_signed_trust_root_usage_errors() -> None:
    envelope = signed(base_root(), root_key(0), root_key(1))
    with pytest.raises(ConfigError, match="pinned root keyids or a previous"):
        tr.verify_signed_trust_root(envelope)
    with pytest.raises(ConfigError, match="64 lower-case hex"):
        tr.verify_signed_trust_root(envelope, pinned_root_keyids=["ABC"])
    with pytest.raises(ConfigError, match="not one string"):
        tr.verify_signed_trust_root(envelope, pinned_root_keyids=PINS[0])
    with pytest.raises(ConfigError, match="timezone-aware"):
        tr.verify_signed_trust_root(
            envelope,
            pinned_root_keyids=PINS,
            now=datetime(2026, 1, 1),
        )


def test_too_many_signatures_are_refused_fast() -> None:
    envelope = tr.sign_trust_root(base_root(), [root_key(0), root_key(1)])
    junk = [Signature(bytes([i % 256]) * 64, "") for i in range(20_000)]
    start = time.perf_counter()
    expect_code(
        tr.TRUST_ROOT_MALFORMED,
        dataclasses.replace(envelope, signatures=tuple(junk)),
        pinned_root_keyids=PINS,
    )
    big = {
        "payload": b64encode(envelope.payload),
        "payloadType": tr.MEDIA_TYPE,
        "signatures": [{"keyid": "", "sig": "AAAA"}] * 20_000,
    }
    expect_code(tr.TRUST_ROOT_MALFORMED, json.dumps(big).encode(), pinned_root_keyids=PINS)
    assert time.perf_counter() - start < 2


def test_junk_signatures_without_hints_are_bounded() -> None:
    root = base_root(root_keys=4, root_threshold=2)
    envelope = tr.sign_trust_root(root, [root_key(0)])
    junk = [Signature(bytes([i]) * 64, "") for i in range(63)]
    start = time.perf_counter()
    expect_code(
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD,
        dataclasses.replace(envelope, signatures=(*junk, *envelope.signatures)),
        pinned_root_keyids=[root_key(i).keyid for i in range(4)],
        pinned_threshold=2,
    )
    assert time.perf_counter() - start < 2


# --- fuzzing ---------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_trust_root_errors(data: bytes) -> None:
    try:
        root = tr.load_trust_root(data)
    except TrustRootError:
        return
    # Whatever loads must dump and load back to the same thing.
    assert tr.load_trust_root(tr.dump_trust_root(root)) == root


@FUZZ
@given(JSON_VALUES)
def test_fuzz_arbitrary_json(value: object) -> None:
    _only_trust_root_errors(json.dumps(value).encode())


def _valid_document() -> dict[str, Any]:
    root = tr.rotate_key(base_root(), key(0), key(2).public_key, now=NOW)
    root = tr.revoke_key(root, key(1).keyid, at=NOW, reason="r")
    root = tr.set_policy(root, for_type=SLSA, threshold=1, required_keyids=[key(1).keyid])
    return doc_of(dataclasses.replace(root, sigstore=copy.deepcopy(SIGSTORE)))


_VALID = _valid_document()


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for name, child in node.items():
            found += _paths(child, (*prefix, name))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


def json_mutations(
    original: dict[str, Any], values: st.SearchStrategy[Any], actions: tuple[str, ...]
) -> st.SearchStrategy[dict[str, Any]]:
    """Copies of `original` with one to three of `actions` applied at random JSON paths.

    replace: a value drawn from `values`; delete; add: a new member to an object; duplicate:
    a list item appended again; flip: one character of a string changed.
    """
    paths = _paths(original)[1:]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        doc = copy.deepcopy(original)
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            path = draw(st.sampled_from(paths))
            parent: Any = doc
            try:
                for step in path[:-1]:
                    parent = parent[step]
                last = path[-1]
                action = draw(st.sampled_from(actions))
                if action == "replace":
                    parent[last] = draw(values)
                elif action == "delete":
                    del parent[last]
                elif action == "add" and isinstance(parent, dict):
                    parent[draw(st.text(max_size=10))] = draw(values)
                elif action == "duplicate" and isinstance(parent, list) and isinstance(last, int):
                    parent.append(copy.deepcopy(parent[last]))
                elif action == "flip" and isinstance(parent[last], str) and parent[last]:
                    text = parent[last]
                    at = draw(st.integers(min_value=0, max_value=len(text) - 1))
                    parent[last] = text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]
            except (KeyError, IndexError, TypeError):
                continue  # an earlier mutation removed this path
        return doc

    return build()


def mutated_documents() -> st.SearchStrategy[dict[str, Any]]:
    return json_mutations(_VALID, JSON_VALUES, ("replace", "delete", "add", "duplicate"))


@FUZZ
@given(mutated_documents())
def test_fuzz_mutated_valid_documents(doc: dict[str, Any]) -> None:
    _only_trust_root_errors(json.dumps(doc).encode())


@FUZZ
@given(st.data())
def test_fuzz_byte_mutations(data: st.DataObject) -> None:
    raw = bytearray(json.dumps(_VALID).encode())
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[index] = data.draw(st.integers(min_value=0, max_value=255))
    _only_trust_root_errors(bytes(raw))


_SIGNED_ROOT = base_root()
_SIGNED = tr.sign_trust_root(_SIGNED_ROOT, [root_key(0), root_key(1)])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_fuzz_no_mutation_of_a_signed_trust_root_verifies(data: st.DataObject) -> None:
    part = data.draw(st.sampled_from(["payload", "payloadType", "sig"]))
    if part == "payload":
        payload = bytearray(_SIGNED.payload)
        index = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
        payload[index] ^= data.draw(st.integers(min_value=1, max_value=255))
        envelope = dataclasses.replace(_SIGNED, payload=bytes(payload))
    elif part == "payloadType":
        new_type = data.draw(st.text(max_size=60).filter(lambda t: t != tr.MEDIA_TYPE))
        envelope = dataclasses.replace(_SIGNED, payload_type=new_type)
    else:
        which = data.draw(st.integers(min_value=0, max_value=1))
        sig = bytearray(_SIGNED.signatures[which].sig)
        index = data.draw(st.integers(min_value=0, max_value=len(sig) - 1))
        sig[index] ^= data.draw(st.integers(min_value=1, max_value=255))
        signatures = list(_SIGNED.signatures)
        signatures[which] = Signature(bytes(sig), signatures[which].keyid)
        envelope = dataclasses.replace(_SIGNED, signatures=tuple(signatures))
    with pytest.raises(VerificationError):
        tr.verify_signed_trust_root(envelope.to_json(), pinned_root_keyids=PINS, now=NOW)


@FUZZ
@given(st.one_of(mutated_documents(), JSON_VALUES), st.sampled_from(["bytes", "envelope"]))
def test_fuzz_signed_payloads_only_raise_verification_errors(doc: object, form: str) -> None:
    """Whatever root keys sign, bad content ends in a VerificationError, never another error."""
    payload = json.dumps(doc).encode()
    envelope = MultiProfileSigner([root_key(0), root_key(1)]).sign(payload, tr.MEDIA_TYPE)
    try:
        tr.verify_signed_trust_root(
            envelope.to_json() if form == "bytes" else envelope,
            pinned_root_keyids=PINS,
            now=NOW,
        )
    except VerificationError as exc:
        assert exc.code in tr.TRUST_ROOT_ERROR_CODES


@FUZZ
@given(JSON_VALUES)
def test_fuzz_envelope_bytes_only_raise_verification_errors(value: object) -> None:
    with pytest.raises(VerificationError):
        tr.verify_signed_trust_root(json.dumps(value).encode(), pinned_root_keyids=PINS, now=NOW)


DOCS = Path(__file__).resolve().parents[3] / "docs" / "trust-root.md"


def test_documented_example_loads_and_its_handover_verifies() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("<!-- example:trust-root -->\n```json\n", 1)[1].split("\n```", 1)[0]
    root = tr.load_trust_root(block.encode())
    assert root.version == 8
    assert len(root.rotations) == 1
    assert tr.failed_handovers(root) == ()


def test_docs_name_every_field_and_error_code() -> None:
    text = DOCS.read_text(encoding="utf-8")

    def names(node: object) -> set[str]:
        found: set[str] = set()
        if isinstance(node, dict):
            found |= set(node.get("properties", {}))
            for child in node.values():
                found |= names(child)
        elif isinstance(node, list):
            for child in node:
                found |= names(child)
        return found

    missing = [n for n in sorted(names(tr.schema())) if f"`{n}`" not in text]
    assert missing == []
    assert [c for c in tr.TRUST_ROOT_ERROR_CODES if f"`{c}`" not in text] == []


def test_trust_root_error_is_an_input_error() -> None:
    assert issubclass(TrustRootError, InputError)
    assert TrustRootError("x").path == "$"


# --- the sigstore section --------------------------------------------------------------------

PRODUCTION_TRUSTED_ROOT = (
    Path(__file__).resolve().parents[3]
    / "fixtures"
    / "sigstore-conformance"
    / "production-trust-root"
    / "trusted_root.json"
)


def sigstore_doc(*identities: dict[str, Any]) -> dict[str, Any]:
    doc = doc_of(base_root())
    doc["sigstore"] = copy.deepcopy(SIGSTORE)
    if identities:
        doc["sigstore"]["identities"] = list(identities)
    return doc


def test_sigstore_section_loads_into_identity_rules() -> None:
    root = load_doc(sigstore_doc())
    assert root.keyless is not None
    exact, pattern = root.keyless.identities
    assert (exact.issuer, exact.subject, exact.subject_regexp) == (
        "https://issuer.example",
        "ci@example.com",
        None,
    )
    assert exact.matches_subject("ci@example.com") and not exact.matches_subject("ci@example.co")
    assert dict(pattern.extensions) == {"githubWorkflowRepository": "org/app"}
    assert pattern.predicate_types == (SLSA,) and pattern.label == "gha"
    good = "https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1"
    assert pattern.matches_subject(good)
    # The whole SAN must match (implicitly anchored), and an over-long SAN matches nothing.
    assert not pattern.matches_subject("x" + good)
    assert not pattern.matches_subject(good + "/" + "a" * tr.MAX_SUBJECT_CHARS)
    assert pattern.allows(SLSA) and not pattern.allows(SPDX) and exact.allows(SPDX)
    assert root.keyless.trusted_root == SIGSTORE["trustedRoot"]
    assert load_doc(doc_of(root)) == root
    assert tr.load_trust_root(tr.dump_trust_root(root)).keyless == root.keyless
    assert root.keyless.identities[1].to_json() == SIGSTORE["identities"][1]


ISSUER = "https://issuer.example"


@pytest.mark.parametrize(
    ("identity", "path", "message"),
    [
        ({"subject": "s"}, "$.sigstore.identities[0].issuer", "required"),
        ({"issuer": ISSUER}, "$.sigstore.identities[0]", "exactly one of subject"),
        (
            {"issuer": ISSUER, "subject": "s", "subjectRegExp": "s"},
            "$.sigstore.identities[0]",
            "exactly one of subject",
        ),
        (
            {"issuer": ISSUER, "subject": "s", "role": "x"},
            "$.sigstore.identities[0].role",
            "unknown",
        ),
        ({"issuer": "", "subject": "s"}, "$.sigstore.identities[0].issuer", "empty"),
        ({"issuer": ISSUER, "subject": "a\nb"}, "$.sigstore.identities[0].subject", "control"),
        (
            {"issuer": ISSUER, "subject": "s", "extensions": {"githubWorkflowRepo": "x"}},
            "$.sigstore.identities[0].extensions",
            "githubWorkflowRepo",
        ),
        (
            {"issuer": ISSUER, "subject": "s", "extensions": {}},
            "$.sigstore.identities[0].extensions",
            "empty",
        ),
        (
            {"issuer": ISSUER, "subject": "s", "predicateTypes": [SLSA, SLSA]},
            "$.sigstore.identities[0].predicateTypes",
            "duplicate",
        ),
        (
            {"issuer": ISSUER, "subject": "s", "predicateTypes": ["not a uri"]},
            "$.sigstore.identities[0].predicateTypes[0]",
            "absolute URI",
        ),
        (
            {"issuer": ISSUER, "subjectRegExp": "a" * 513},
            "$.sigstore.identities[0].subjectRegExp",
            "longer than 512",
        ),
    ],
)
def test_identity_rules_are_checked(identity: dict[str, Any], path: str, message: str) -> None:
    error = refused(sigstore_doc(identity))
    assert error.path == path, str(error)
    assert message in str(error), str(error)


@pytest.mark.parametrize(
    ("regexp", "message"),
    [
        # RE2 (linear) matches subjectRegExps: shapes like (a+)+ are accepted now; what RE2
        # lacks or reads unlike Python is refused (test_subject_regexp.py has the rest).
        ("(x)\\1", "back-references"),
        ("(?=a)a", "look-ahead"),
        ("(?<!a)b", "look-ahead"),
        ("a$b", "'$' is only allowed at the end"),
        ("a{1001}", "repetition counts above 1000"),
        ("(unclosed", "not a valid regular expression"),
    ],
)
def test_subject_regexps_are_bounded(regexp: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        tr.check_subject_regexp(regexp)
    assert message in str(info.value)
    error = refused(sigstore_doc({"issuer": ISSUER, "subjectRegExp": regexp}))
    assert error.path == "$.sigstore.identities[0].subjectRegExp" and message in str(error)


@pytest.mark.parametrize(
    "regexp",
    [
        "https://github\\.com/org/[^/]+/\\.github/workflows/.*@refs/tags/v[0-9]+\\.[0-9]+",
        "(release|ci)@example\\.com",
        "[a-z]{1,64}@example\\.com",
        "(ab){2}.*",
        # Separated by literals they cannot match, repetitions do not compound.
        "https://github\\.com/[^/]+/[^/]+/\\.github/workflows/[^@]+@refs/heads/[a-z]+",
        "[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+",
    ],
)
def test_ordinary_subject_regexps_are_accepted(regexp: str) -> None:
    assert tr.check_subject_regexp(regexp).pattern == regexp


def test_sigstore_section_shape_is_checked() -> None:
    doc = sigstore_doc()
    doc["sigstore"]["trustedRoot"]["mediaType"] = "application/json"
    assert refused(doc).path == "$.sigstore.trustedRoot.mediaType"
    doc = sigstore_doc()
    del doc["sigstore"]["trustedRoot"]
    assert refused(doc).path == "$.sigstore.trustedRoot"
    doc = sigstore_doc()
    doc["sigstore"]["trustedRoot"]["tlogs"] = {}
    assert refused(doc).path == "$.sigstore.trustedRoot.tlogs"
    doc = sigstore_doc()
    doc["sigstore"]["identities"] = [{"issuer": ISSUER, "subject": f"s{i}"} for i in range(65)]
    assert refused(doc).path == "$.sigstore.identities"
    twice = {"issuer": ISSUER, "subject": "s"}
    error = refused(sigstore_doc(twice, {**twice, "label": "again"}))
    assert error.path == "$.sigstore.identities[1]" and "already listed" in str(error)
    # The same checks hold for a trust root built in memory.
    with pytest.raises(TrustRootError, match="exactly one of subject"):
        tr.dump_trust_root(
            dataclasses.replace(
                base_root(), sigstore={**SIGSTORE, "identities": [{"issuer": ISSUER}]}
            )
        )


def test_set_sigstore_root_and_add_identity() -> None:
    trusted = json.loads(PRODUCTION_TRUSTED_ROOT.read_text())
    root = base_root()
    with pytest.raises(TrustRootError, match="set-sigstore-root"):
        tr.add_identity(root, issuer=ISSUER, subject="s")
    with_root = tr.set_sigstore_root(root, trusted)
    assert with_root.version == root.version + 1
    assert with_root.keyless is not None and with_root.keyless.identities == ()
    one = tr.add_identity(
        with_root,
        issuer=ISSUER,
        subject_regexp="ci-[0-9]+@example\\.com",
        extensions={"sourceRepositoryURI": "https://git.example/app"},
        predicate_types=[SLSA],
        label="ci",
    )
    assert one.version == with_root.version + 1
    assert one.keyless is not None and one.keyless.identities[0].label == "ci"
    # Replacing the trusted root keeps the identities.
    replaced = tr.set_sigstore_root(one, trusted)
    assert replaced.keyless is not None
    assert replaced.keyless.identities == one.keyless.identities
    with pytest.raises(TrustRootError, match="validFor"):
        broken = copy.deepcopy(trusted)
        del broken["tlogs"][0]["publicKey"]["validFor"]["start"]
        tr.set_sigstore_root(root, broken)
    with pytest.raises(ConfigError):
        tr.set_sigstore_root(root, [])  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        tr.add_identity(with_root, issuer=ISSUER, subject="s", predicate_types=SLSA)


def test_identities_count_toward_completeness() -> None:
    root = tr.set_sigstore_root(
        tr.init_trust_root(threshold=1, now=NOW), json.loads(PRODUCTION_TRUSTED_ROOT.read_text())
    )
    root = tr.add_key(root, key(0).public_key)
    root = tr.set_policy(root, threshold=2)
    with pytest.raises(TrustRootError, match="exceeds the 1 keys"):
        tr.dump_trust_root(root, allow_incomplete=False)
    root = tr.add_identity(root, issuer=ISSUER, subject="s")
    assert tr.load_trust_root(tr.dump_trust_root(root)).policy.threshold == 2
    # Restricted to SLSA, the identity does not help a per-type policy for SPDX.
    typed = tr.add_identity(
        tr.set_policy(root, for_type=SPDX, threshold=3),
        issuer=ISSUER,
        subject="t",
        predicate_types=[SLSA],
    )
    with pytest.raises(TrustRootError, match="1 keyless identities"):
        tr.dump_trust_root(typed, allow_incomplete=False)


def test_v2_sections_make_a_v2_document_and_a_v1_label_on_them_is_refused() -> None:
    """DESIGN.md: new sections make the trust root v2; one that uses none is still written v1."""
    signer = signer_for("ed25519")
    plain = tr.add_key(tr.init_trust_root(threshold=1), signer.public_key)
    assert json.loads(tr.dump_trust_root(plain))["mediaType"] == tr.MEDIA_TYPE
    timed = tr.set_policy(plain, require_timestamp=True)
    document = json.loads(tr.dump_trust_root(timed))
    assert document["mediaType"] == tr.MEDIA_TYPE_V2
    assert timed.media_type == tr.MEDIA_TYPE_V2
    assert tr.load_trust_root(tr.dump_trust_root(timed)) == timed
    document["mediaType"] = tr.MEDIA_TYPE
    with pytest.raises(TrustRootError) as info:
        tr.load_trust_root(json.dumps(document))
    assert info.value.path == "$.mediaType" and "policy requireTimestamp" in str(info.value)
    # Signed: the payloadType is the document's own mediaType, and must stay so.
    root_key = signer_for("ecdsa-p256", 7)
    rooted = tr.set_root_keys(timed, [root_key.public_key], threshold=1)
    envelope = tr.sign_trust_root(rooted, [root_key])
    assert envelope.payload_type == tr.MEDIA_TYPE_V2
    assert tr.verify_signed_trust_root(envelope.to_json(), pinned_root_keyids=[root_key.keyid])
