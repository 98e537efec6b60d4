"""The trust root's `timestampAuthorities` section and the `requireTimestamp` policy fields.

Loading and dumping (round trip, one spelling, bounds, every refusal naming its JSON path), the
edits (add, revoke, set_policy) and the promise that a trust root without the section is
written exactly as before and loads without importing any X.509 code.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.serialization import Encoding

from dssesign import trust as tr
from dssesign.errors import ConfigError
from dssesign.timestamp.authority import (
    MAX_CHAIN_CERTIFICATES,
    MAX_PEM_BYTES,
    TimestampAuthority,
)
from dssesign.trust import TrustRoot, TrustRootError
from tests.conftest import signer_for
from tests.tsa import Credentials, make_ca, make_tsa_certificate

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SLSA = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "trust-root.md"


@pytest.fixture(scope="module")
def ca() -> Credentials:
    return make_ca()


@pytest.fixture(scope="module")
def tsas(ca: Credentials) -> list[Credentials]:
    """Three TSA certificates under `ca`."""
    return [make_tsa_certificate(ca, common_name=f"test TSA {i}") for i in range(3)]


def authority(
    tsa: Credentials, ca: Credentials, name: str = "tsa", **fields: Any
) -> TimestampAuthority:
    return TimestampAuthority(name=name, chain=(tsa.certificate, ca.certificate), **fields)


def base_root() -> TrustRoot:
    root = tr.init_trust_root(threshold=1, now=NOW)
    root = tr.add_key(root, signer_for("ed25519", 0).public_key, label="ci")
    return tr.add_key(root, signer_for("ed25519", 1).public_key, predicate_types=[SLSA])


def doc_with(ca: Credentials, tsas: list[Credentials]) -> dict[str, Any]:
    root = tr.add_timestamp_authority(base_root(), authority(tsas[0], ca, "first"))
    loaded: dict[str, Any] = json.loads(tr.dump_trust_root(root))
    return loaded


def refused(doc: object) -> TrustRootError:
    with pytest.raises(TrustRootError) as info:
        tr.load_trust_root(json.dumps(doc).encode())
    return info.value


def pem(certificate: Credentials) -> str:
    return certificate.certificate.public_bytes(Encoding.PEM).decode("ascii")


# --- round trip ------------------------------------------------------------------------------


def test_round_trip_with_authorities_is_exact(ca: Credentials, tsas: list[Credentials]) -> None:
    full = authority(
        tsas[0],
        ca,
        "acme",
        valid_from=NOW,
        valid_until=NOW + timedelta(days=365),
        label="ACME timestamping",
        revoked_at=NOW + timedelta(days=200),
    )
    bare = TimestampAuthority(name="bare", chain=(tsas[1].certificate,))
    root = tr.add_timestamp_authority(base_root(), full)
    root = tr.add_timestamp_authority(root, bare)
    data = tr.dump_trust_root(root)
    loaded = tr.load_trust_root(data)
    assert loaded == root
    assert loaded.timestamp_authorities == (full, bare)
    assert tr.dump_trust_root(loaded) == data
    section = json.loads(data)["timestampAuthorities"]
    assert section[0] == {
        "name": "acme",
        "certificateChain": [pem(tsas[0]), pem(ca)],
        "validFrom": "2026-01-01T00:00:00Z",
        "validUntil": "2027-01-01T00:00:00Z",
        "label": "ACME timestamping",
        "revokedAt": "2026-07-20T00:00:00Z",
    }
    assert section[1] == {"name": "bare", "certificateChain": [pem(tsas[1])]}
    # A pretty-printed copy loads the same.
    assert tr.load_trust_root(json.dumps(json.loads(data), indent=2)) == root


def test_a_signed_trust_root_carries_its_authorities(
    ca: Credentials, tsas: list[Credentials]
) -> None:
    root_key = signer_for("ed25519", 10)
    root = tr.set_root_keys(base_root(), [root_key.public_key], threshold=1)
    root = tr.add_timestamp_authority(root, authority(tsas[0], ca, "acme", label="ACME"))
    envelope = tr.sign_trust_root(root, [root_key])
    verified = tr.verify_signed_trust_root(
        envelope.to_json(), pinned_root_keyids=[root_key.keyid], now=NOW
    )
    assert verified == root
    assert verified.timestamp_authorities[0].name == "acme"


def test_a_trust_root_without_the_section_is_written_exactly_as_before() -> None:
    """The documented example, canonicalized by rfc8785 (not by dssesign): load + dump gives
    back those very bytes, with no trace of the new fields."""
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("<!-- example:trust-root -->\n```json\n", 1)[1].split("\n```", 1)[0]
    canonical = rfc8785.dumps(json.loads(block))
    root = tr.load_trust_root(canonical)
    assert root.timestamp_authorities == ()
    assert not root.policy.require_timestamp
    assert not any(p.require_timestamp for p in root.policy.per_type.values())
    assert tr.dump_trust_root(root) == canonical
    assert b"timestampAuthorities" not in canonical and b"requireTimestamp" not in canonical
    # Edits that do not touch the new fields leave them out too.
    edited = tr.set_policy(root, threshold=1, for_type=SLSA)
    assert b"requireTimestamp" not in tr.dump_trust_root(edited)
    assert b"timestampAuthorities" not in tr.dump_trust_root(edited)


def test_loading_without_the_section_imports_no_x509_code(tmp_path: Path) -> None:
    path = tmp_path / "root.json"
    tr.save_trust_root(path, base_root())
    code = (
        "import sys; from dssesign.trust import read_trust_root; "
        f"r = read_trust_root({str(path)!r}); "
        "print(sorted(m for m in sys.modules if m.startswith('dssesign.timestamp') "
        "or m == 'rfc3161_client' or m == 'cryptography.x509'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out


def test_schema_bounds_are_the_authority_modules(ca: Credentials) -> None:
    schema = tr.schema()
    section = schema["properties"]["timestampAuthorities"]
    assert section["maxItems"] == tr.MAX_TIMESTAMP_AUTHORITIES == 32
    assert section["minItems"] == 1
    entry = schema["$defs"]["timestampAuthority"]
    assert entry["properties"]["certificateChain"]["maxItems"] == MAX_CHAIN_CERTIFICATES
    assert schema["$defs"]["certificate"]["maxLength"] == MAX_PEM_BYTES
    assert set(entry["properties"]) == {
        "name",
        "certificateChain",
        "validFrom",
        "validUntil",
        "label",
        "revokedAt",
    }


# --- refused on load, with the path ----------------------------------------------------------


def test_duplicate_names_are_refused(ca: Credentials, tsas: list[Credentials]) -> None:
    doc = doc_with(ca, tsas)
    doc["timestampAuthorities"].append({"name": "first", "certificateChain": [pem(tsas[1])]})
    error = refused(doc)
    assert error.path == "$.timestampAuthorities[1].name"
    assert "'first' is already the name of $.timestampAuthorities[0]" in str(error)


def test_the_same_tsa_certificate_under_two_names_is_refused(
    ca: Credentials, tsas: list[Credentials]
) -> None:
    doc = doc_with(ca, tsas)
    doc["timestampAuthorities"].append({"name": "again", "certificateChain": [pem(tsas[0])]})
    error = refused(doc)
    assert error.path == "$.timestampAuthorities[1].certificateChain[0]"
    assert "already listed at $.timestampAuthorities[0]" in str(error)


@pytest.mark.parametrize(
    ("chain", "path", "message"),
    [
        (["garbage"], "$.timestampAuthorities[0].certificateChain[0]", "PEM certificate"),
        (
            ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
            "$.timestampAuthorities[0].certificateChain[0]",
            "is not a PEM certificate",
        ),
        ([], "$.timestampAuthorities[0].certificateChain", "at least 1"),
        ("ca-first", "$.timestampAuthorities[0].certificateChain[0]", "timeStamping EKU"),
        ("foreign-ca", "$.timestampAuthorities[0].certificateChain[0]", "not issued by the next"),
        ("impostor-ca", "$.timestampAuthorities[0].certificateChain[0]", "not signed by the next"),
        ("nine", "$.timestampAuthorities[0].certificateChain", "more than 8 items"),
        ("oversize", "$.timestampAuthorities[0].certificateChain[0]", "longer than 65536"),
        ("crlf", "$.timestampAuthorities[0].certificateChain[0]", "PEM certificate"),
        ("long-lines", "$.timestampAuthorities[0].certificateChain[0]", "canonical PEM"),
        ("twice", "$.timestampAuthorities[0].certificateChain", "same certificate twice"),
    ],
)
def test_a_bad_chain_is_refused_with_its_path(
    ca: Credentials, tsas: list[Credentials], chain: object, path: str, message: str
) -> None:
    leaf, anchor = pem(tsas[0]), pem(ca)
    body = "".join(leaf.splitlines()[1:-1])
    chains: dict[str, list[str]] = {
        "ca-first": [anchor, leaf],
        "foreign-ca": [leaf, pem(make_ca("another CA"))],
        "impostor-ca": [leaf, pem(make_ca())],  # the same name, another key
        "nine": [leaf, anchor] + [anchor] * 7,
        "oversize": [leaf[:-26] + "A" * (MAX_PEM_BYTES + 1) + leaf[-26:]],
        "crlf": [leaf.replace("\n", "\r\n")],
        "long-lines": [
            "-----BEGIN CERTIFICATE-----\n"
            + "\n".join(body[i : i + 76] for i in range(0, len(body), 76))
            + "\n-----END CERTIFICATE-----\n"
        ],
        "twice": [leaf, leaf],
    }
    doc = doc_with(ca, tsas)
    doc["timestampAuthorities"][0]["certificateChain"] = (
        chains[chain] if isinstance(chain, str) else chain
    )
    error = refused(doc)
    assert error.path == path, error
    assert message in str(error), error
    assert str(error).startswith(f"trust root {path}: ")


def test_section_bounds_and_shape(ca: Credentials, tsas: list[Credentials]) -> None:
    doc = doc_with(ca, tsas)
    entry = doc["timestampAuthorities"][0]

    too_many = {**doc, "timestampAuthorities": [entry] * 33}
    error = refused(too_many)
    assert error.path == "$.timestampAuthorities" and "more than 32 items" in str(error)

    assert refused({**doc, "timestampAuthorities": []}).path == "$.timestampAuthorities"

    unknown = {**doc, "timestampAuthorities": [{**entry, "reason": "x"}]}
    assert refused(unknown).path == "$.timestampAuthorities[0].reason"

    nameless = {**doc, "timestampAuthorities": [{"certificateChain": entry["certificateChain"]}]}
    assert refused(nameless).path == "$.timestampAuthorities[0].name"

    control = {**doc, "timestampAuthorities": [{**entry, "label": "a\u202eb"}]}
    error = refused(control)
    assert error.path == "$.timestampAuthorities[0].label" and "control" in str(error)

    c1 = {**doc, "timestampAuthorities": [{**entry, "name": "a\x85b"}]}
    error = refused(c1)
    assert error.path == "$.timestampAuthorities[0].name" and "reordering" in str(error)

    long_name = {**doc, "timestampAuthorities": [{**entry, "name": "n" * 129}]}
    assert refused(long_name).path == "$.timestampAuthorities[0].name"

    bad_time = {**doc, "timestampAuthorities": [{**entry, "revokedAt": "2026-01-01T00:00:00"}]}
    error = refused(bad_time)
    assert error.path == "$.timestampAuthorities[0].revokedAt" and "RFC 3339" in str(error)


def test_windows_must_be_in_order(ca: Credentials, tsas: list[Credentials]) -> None:
    doc = doc_with(ca, tsas)
    entry = doc["timestampAuthorities"][0]
    backwards = {"validFrom": "2026-02-01T00:00:00Z", "validUntil": "2026-01-01T00:00:00Z"}
    error = refused({**doc, "timestampAuthorities": [{**entry, **backwards}]})
    assert error.path == "$.timestampAuthorities[0].validUntil"
    assert "before validFrom" in str(error)
    # One instant is a (short) window: both ends are inclusive.
    instant = {"validFrom": "2026-01-01T00:00:00Z", "validUntil": "2026-01-01T00:00:00Z"}
    root = tr.load_trust_root(json.dumps({**doc, "timestampAuthorities": [{**entry, **instant}]}))
    assert root.timestamp_authorities[0].covers(NOW)
    assert not root.timestamp_authorities[0].covers(NOW + timedelta(seconds=1))


# --- edits -----------------------------------------------------------------------------------


def test_add_bumps_the_version_and_refuses_duplicates(
    ca: Credentials, tsas: list[Credentials]
) -> None:
    root = base_root()
    added = tr.add_timestamp_authority(root, authority(tsas[0], ca, "acme"))
    assert added.version == root.version + 1
    assert root.timestamp_authorities == ()  # the input is never changed
    assert [a.name for a in added.timestamp_authorities] == ["acme"]

    with pytest.raises(TrustRootError) as info:
        tr.add_timestamp_authority(added, authority(tsas[1], ca, "acme"))
    assert info.value.path == "$.timestampAuthorities[0].name"
    assert "'acme' is already listed" in str(info.value)

    with pytest.raises(TrustRootError) as info:
        tr.add_timestamp_authority(added, authority(tsas[0], ca, "other"))
    assert "already listed as 'acme'" in str(info.value)

    with pytest.raises(ConfigError):
        tr.add_timestamp_authority(added, "acme")  # type: ignore[arg-type]

    both = tr.add_timestamp_authority(added, authority(tsas[1], ca, "second"))
    assert [a.name for a in both.timestamp_authorities] == ["acme", "second"]


def test_at_most_32_authorities(ca: Credentials) -> None:
    root = base_root()
    for i in range(tr.MAX_TIMESTAMP_AUTHORITIES):
        leaf = TimestampAuthority(name=f"t{i}", chain=(make_tsa_certificate(ca).certificate,))
        root = tr.add_timestamp_authority(root, leaf)
    with pytest.raises(TrustRootError, match="more than 32 timestamp authorities"):
        extra = TimestampAuthority(name="t32", chain=(make_tsa_certificate(ca).certificate,))
        tr.add_timestamp_authority(root, extra)


def test_revoke(ca: Credentials, tsas: list[Credentials]) -> None:
    root = tr.add_timestamp_authority(base_root(), authority(tsas[0], ca, "acme"))
    root = tr.add_timestamp_authority(root, authority(tsas[1], ca, "other"))
    at = NOW + timedelta(days=10, microseconds=900_000)
    revoked = tr.revoke_timestamp_authority(root, "acme", at)
    assert revoked.version == root.version + 1
    acme, other = revoked.timestamp_authorities
    assert acme.revoked_at == NOW + timedelta(days=10)  # rounded down: the stricter side
    assert other == root.timestamp_authorities[1]
    assert acme.revoked_by(NOW + timedelta(days=10)) and not acme.revoked_by(at - timedelta(1))
    assert json.loads(tr.dump_trust_root(revoked))["timestampAuthorities"][0]["revokedAt"] == (
        "2026-01-11T00:00:00Z"
    )

    with pytest.raises(TrustRootError) as info:
        tr.revoke_timestamp_authority(revoked, "acme", at)
    assert info.value.path == "$.timestampAuthorities[0].revokedAt"
    assert "already revoked (since 2026-01-11T00:00:00Z)" in str(info.value)

    with pytest.raises(TrustRootError, match="no timestamp authority named 'nope'"):
        tr.revoke_timestamp_authority(root, "nope", at)

    with pytest.raises(ConfigError, match="timezone-aware"):
        tr.revoke_timestamp_authority(root, "acme", datetime(2026, 1, 1))

    before = datetime.now(UTC).replace(microsecond=0)
    now_revoked = tr.revoke_timestamp_authority(root, "other")
    stamp = now_revoked.timestamp_authorities[1].revoked_at
    assert stamp is not None and before <= stamp <= datetime.now(UTC)


def test_revoked_at_must_be_aware() -> None:
    """The model refuses a naive time however the entry was made."""
    ca = make_ca()
    leaf = make_tsa_certificate(ca).certificate
    with pytest.raises(TrustRootError, match="timezone-aware"):
        TimestampAuthority(name="x", chain=(leaf,), revoked_at=datetime(2026, 1, 1))


# --- policy ----------------------------------------------------------------------------------


def test_require_timestamp_globally() -> None:
    root = tr.set_policy(base_root(), require_timestamp=True)
    policy = json.loads(tr.dump_trust_root(root))["policy"]
    assert policy["requireTimestamp"] is True
    loaded = tr.load_trust_root(tr.dump_trust_root(root))
    assert loaded == root and loaded.policy.require_timestamp
    assert loaded.policy.for_type(SLSA).require_timestamp  # every type
    # Another change keeps it; turning it off leaves no trace.
    root = tr.set_policy(root, threshold=2)
    assert root.policy.require_timestamp
    off = tr.set_policy(root, require_timestamp=False)
    assert not off.policy.require_timestamp
    assert "requireTimestamp" not in json.loads(tr.dump_trust_root(off))["policy"]


def test_require_timestamp_for_one_type() -> None:
    root = base_root()
    with pytest.raises(ConfigError, match="needs a threshold"):
        tr.set_policy(root, for_type=SLSA, require_timestamp=True)
    keyid = signer_for("ed25519", 1).keyid
    root = tr.set_policy(root, for_type=SLSA, threshold=1, required_keyids=[keyid])
    root = tr.set_policy(root, for_type=SLSA, require_timestamp=True)
    rule = root.policy.per_type[SLSA]
    assert (rule.threshold, rule.required_keyids, rule.require_timestamp) == (1, (keyid,), True)
    # Changing the type's threshold later keeps its timestamp rule.
    root = tr.set_policy(root, for_type=SLSA, threshold=1)
    assert root.policy.per_type[SLSA].require_timestamp
    document = json.loads(tr.dump_trust_root(root))["policy"]
    assert document["perType"][SLSA] == {
        "threshold": 1,
        "requiredKeyids": [keyid],
        "requireTimestamp": True,
    }
    assert "requireTimestamp" not in document
    loaded = tr.load_trust_root(tr.dump_trust_root(root))
    assert loaded == root
    assert loaded.policy.for_type(SLSA).require_timestamp
    assert not loaded.policy.for_type(SPDX).require_timestamp
    off = tr.set_policy(root, for_type=SLSA, require_timestamp=False)
    assert "requireTimestamp" not in json.loads(tr.dump_trust_root(off))["policy"]["perType"][SLSA]


def test_a_global_requirement_holds_for_a_type_that_turns_it_off() -> None:
    root = tr.set_policy(base_root(), for_type=SLSA, threshold=1, require_timestamp=False)
    root = tr.set_policy(root, require_timestamp=True)
    assert not root.policy.per_type[SLSA].require_timestamp
    assert root.policy.for_type(SLSA).require_timestamp


def test_require_timestamp_has_one_spelling() -> None:
    doc: dict[str, Any] = json.loads(tr.dump_trust_root(base_root()))
    doc["policy"]["requireTimestamp"] = False
    error = refused(doc)
    assert error.path == "$.policy.requireTimestamp"
    assert "leave the field out instead of false" in str(error)
    doc["policy"]["requireTimestamp"] = "yes"
    assert refused(doc).path == "$.policy.requireTimestamp"
    doc["policy"].pop("requireTimestamp")
    doc["policy"]["perType"] = {SLSA: {"threshold": 1, "requireTimestamp": 1}}
    assert refused(doc).path == f'$.policy.perType["{SLSA}"].requireTimestamp'


def test_set_policy_argument_checks() -> None:
    with pytest.raises(ConfigError, match="nothing to change"):
        tr.set_policy(base_root())
    with pytest.raises(ConfigError, match="True, False or None"):
        tr.set_policy(base_root(), require_timestamp=1)  # type: ignore[arg-type]
    bad = dataclasses.replace(
        base_root(),
        policy=dataclasses.replace(
            base_root().policy,
            require_timestamp="yes",  # type: ignore[arg-type]
        ),
    )
    with pytest.raises(TrustRootError) as info:
        tr.dump_trust_root(bad)
    assert info.value.path == "$.policy.requireTimestamp"
