"""The in-toto project's own Python bindings accept the Statements we build.

Our payload bytes go through protobuf's JSON parser (which refuses unknown field names, so a
misspelt camelCase field would fail here) into the v1 Statement message, then through the
bindings' `validate()`.

Where the two deliberately differ:
* they require a non-empty `predicate`; statement.md says it MAY be omitted (unset == empty),
  so we accept a Statement without one;
* they check no digest encodings (the Go bindings check hex and length); we refuse uppercase or
  wrong-length hex for the digest_set.md algorithms;
* protobuf JSON also takes proto field names (`predicate_type`, `type`) and silently keeps the
  last of two spellings; we refuse such a document outright.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor as TheirDescriptor
from in_toto_attestation.v1.statement import Statement as TheirStatement

from dssesign.errors import StatementError
from dssesign.intoto.statement import (
    STATEMENT_TYPE_V1,
    ResourceDescriptor,
    build_statement,
    parse_statement,
    statement_payload,
    validate_statement,
)
from dssesign.intoto.subjects import subject_from_digest, subject_from_file

SHA256 = hashlib.sha256(b"artifact").hexdigest()
PROVENANCE = "https://slsa.dev/provenance/v1"


def their_statement(payload: bytes | str) -> TheirStatement:
    message = json_format.Parse(payload, statement_pb2.Statement())
    return TheirStatement.copy_from_pb(message)


def their_verdict(obj: dict[str, Any]) -> bool:
    try:
        statement = their_statement(json.dumps(obj))
        statement.validate()
    except (ValueError, json_format.ParseError):
        return False
    return True


def our_verdict(obj: dict[str, Any]) -> bool:
    try:
        validate_statement(obj)
    except StatementError:
        return False
    return True


def test_single_file_subject(tmp_path: Path) -> None:
    artifact = tmp_path / "app-1.0.tar.gz"
    artifact.write_bytes(b"artifact")
    built = build_statement([subject_from_file(artifact)], PROVENANCE, {"builder": {"id": "x"}})
    theirs = their_statement(statement_payload(built))
    theirs.validate()
    assert theirs.pb.type == STATEMENT_TYPE_V1
    assert theirs.pb.subject[0].name == "app-1.0.tar.gz"
    assert dict(theirs.pb.subject[0].digest) == {"sha256": SHA256}
    assert theirs.pb.predicate_type == PROVENANCE


def test_several_subjects_sha512_names_and_every_descriptor_field(tmp_path: Path) -> None:
    files = []
    for name in ("a.whl", "b.whl", "c.tar.gz"):
        path = tmp_path / name
        path.write_bytes(name.encode() * 1000)
        files.append(path)
    subjects = [subject_from_file(p, sha512=True) for p in files]
    subjects.append(subject_from_digest("sha384:" + "0" * 96, name="image"))
    subjects.append(subject_from_digest("gitCommit:" + "1" * 40))
    subjects.append(
        ResourceDescriptor(
            name="rich.json",
            uri="pkg:generic/rich@1",
            digest={"sha256": SHA256},
            content=b"\xfb\xff{}",
            download_location="https://example.com/rich.json",
            media_type="application/json",
            annotations={"twoPartyReview": False, "n": [1, {"k": "v"}]},
        )
    )
    predicate = {"buildDefinition": {"buildType": "https://example.com/b/v1"}, "n": 1.5}
    payload = statement_payload(build_statement(subjects, PROVENANCE, predicate))

    theirs = their_statement(payload)
    theirs.validate()
    for subject in theirs.pb.subject:
        TheirDescriptor.copy_from_pb(subject).validate()
    assert [s.name for s in theirs.pb.subject] == [
        "a.whl",
        "b.whl",
        "c.tar.gz",
        "image",
        "",
        "rich.json",
    ]
    assert dict(theirs.pb.subject[1].digest) == {
        "sha256": hashlib.sha256(b"b.whl" * 1000).hexdigest(),
        "sha512": hashlib.sha512(b"b.whl" * 1000).hexdigest(),
    }
    rich = theirs.pb.subject[5]
    assert rich.content == b"\xfb\xff{}"
    assert rich.download_location == "https://example.com/rich.json"
    assert rich.media_type == "application/json"
    assert json_format.MessageToDict(rich.annotations) == {
        "twoPartyReview": False,
        "n": [1, {"k": "v"}],
    }
    assert json_format.MessageToDict(theirs.pb.predicate) == predicate
    # And back: their JSON rendering of the message passes our parser.
    rendered = json_format.MessageToJson(theirs.pb).encode()
    assert parse_statement(rendered)["predicate"] == predicate


def _statement(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "_type": STATEMENT_TYPE_V1,
        "subject": [{"name": "a", "digest": {"sha256": SHA256}}],
        "predicateType": PROVENANCE,
        "predicate": {"k": "v"},
    }
    obj.update(changes)
    return obj


@pytest.mark.parametrize(
    "obj",
    [
        _statement(subject=[{"name": "no-digest"}]),
        _statement(subject=[{"name": "a", "digest": {}}]),
        _statement(subject=[]),
        _statement(_type="https://in-toto.io/Statement/v2"),
        _statement(predicateType=""),
        _statement(subject=[{"name": "a", "digest": {"sha256": SHA256}}, {"uri": "https://x.io"}]),
    ],
    ids=[
        "missing digest",
        "empty digest",
        "no subjects",
        "wrong type",
        "no predicateType",
        "mixed",
    ],
)
def test_both_reject(obj: dict[str, Any]) -> None:
    assert not their_verdict(obj)
    assert not our_verdict(obj)


def test_deliberate_difference_predicate_may_be_omitted() -> None:
    obj = _statement()
    del obj["predicate"]
    assert our_verdict(obj)  # statement.md: predicate optional, unset == set-but-empty
    assert not their_verdict(obj)  # the bindings insist on a non-empty predicate


def test_deliberate_difference_digest_encoding() -> None:
    obj = _statement(subject=[{"name": "a", "digest": {"sha256": SHA256.upper()[:-2]}}])
    assert their_verdict(obj)
    assert not our_verdict(obj)


def test_deliberate_difference_proto_field_aliases() -> None:
    # protobuf JSON reads the proto name too and keeps the last spelling: one signed document,
    # two predicate types depending on the reader. We refuse it.
    text = json.dumps(_statement(predicate_type="https://evil.example/t/v1"))
    assert their_statement(text).pb.predicate_type == "https://evil.example/t/v1"
    with pytest.raises(StatementError, match=r"^\$\.predicate_type: ambiguous"):
        parse_statement(text.encode())
