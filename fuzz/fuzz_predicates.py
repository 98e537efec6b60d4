"""Target `predicates`: predicate files for every `--type` short name (`prepare_predicate`).

The first byte of an input picks the type (one short name per known predicate type, in
registry order, modulo their number); the rest is the predicate file. A predicate that is
accepted is put in a Statement and made into the payload to sign, which gives bytes or a
DssesignError (a value RFC 8785 cannot represent), never another exception.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator

from dssesign.intoto.predicates import known_predicate_types, prepare_predicate
from dssesign.intoto.statement import statement_payload

from ._common import FIXTURES, NOW, attempt, compact, statement

NAME = "predicates"
MAX_LEN = 16 * 1024
DIGEST = hashlib.sha256(b"artifact").hexdigest()

DICTIONARY = (
    '"bomFormat"', '"CycloneDX"', '"specVersion"', '"1.6"', '"1.5"', '"1.4"', '"components"',
    '"bom-ref"', '"dependencies"', '"dependsOn"', '"serialNumber"', '"urn:uuid:"', '"purl"',
    '"spdxVersion"', '"SPDX-2.3"', '"SPDXID"', '"SPDXRef-DOCUMENT"', '"SPDXRef-"',
    '"relationships"', '"relationshipType"', '"DESCRIBES"', '"packages"', '"files"',
    '"dataLicense"', '"CC0-1.0"', '"documentNamespace"', '"creationInfo"', '"created"',
    '"buildDefinition"', '"buildType"', '"externalParameters"', '"runDetails"', '"builder"',
    '"id"', '"verifier"', '"timeVerified"', '"resourceUri"', '"policy"', '"verificationResult"',
    '"PASSED"', '"FAILED"', '"verifiedLevels"', '"SLSA_BUILD_LEVEL_3"', '"@context"',
    '"https://openvex.dev/ns/v0.2.0"', '"statements"', '"vulnerability"', '"status"',
    '"not_affected"', '"justification"', '"result"', '"passedTests"', '"configuration"',
    '"2026-06-01T12:00:00Z"', '"2026-02-30T25:61:61+99:99"', "\\ud800", "1e400", "-0",
)  # fmt: skip


@functools.cache
def type_names() -> tuple[str, ...]:
    """One `--type` short name per known predicate type, in registry order."""
    return tuple(t.short_names[0] for t in known_predicate_types() if t.short_names)


def check(data: bytes) -> None:
    if not data:
        return
    names = type_names()
    name = names[data[0] % len(names)]
    prepared = attempt(lambda: prepare_predicate(name, data[1:], timestamp=NOW))
    if prepared is None:
        return
    uri, predicate = prepared
    attempt(lambda: statement_payload(statement(DIGEST, uri, predicate=predicate)))


_FIXTURE_TYPES = {
    "slsa-provenance-v1.json": "slsaprovenance1",
    "slsa-vsa-v1.json": "vsa",
    "openvex.json": "openvex",
    "test-result-v0.1.json": "test-result",
    "cyclonedx-1.6.json": "cyclonedx",
    "cyclonedx-1.5.json": "cyclonedx",
    "spdx-2.3.json": "spdx",
}


def seeds() -> Iterator[bytes]:
    names = type_names()
    for file_name, type_name in _FIXTURE_TYPES.items():
        if type_name not in names:
            continue
        raw = (FIXTURES / "predicates" / file_name).read_bytes()
        selector = bytes([names.index(type_name)])
        yield selector + raw
        yield selector + compact(json.loads(raw))
    for index in range(len(names)):
        yield bytes([index]) + b"{}"
        yield bytes([index]) + b'{"a":[1,2.5,null,true,"x"]}'
    if "custom" in names:
        yield bytes([names.index("custom")]) + b"free text, not JSON \xff"
