"""Target `statement`: in-toto Statement payloads (`parse_statement`, v1 and v0.1).

A Statement that parses must also survive what signing does with it: `statement_payload`
(validation as v1 + RFC 8785) either refuses it with a DssesignError or gives bytes that parse
back to the same Statement.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from functools import partial

from dssesign.intoto.statement import STATEMENT_TYPE_V1, parse_statement, statement_payload

from ._common import FIXTURES, SLSA, ContractViolation, attempt, compact, statement

NAME = "statement"
MAX_LEN = 8 * 1024
DIGEST = hashlib.sha256(b"artifact").hexdigest()

DICTIONARY = (
    '"_type"', '"subject"', '"predicateType"', '"predicate"', '"name"', '"uri"', '"digest"',
    '"content"', '"downloadLocation"', '"mediaType"', '"annotations"', '"sha256"', '"sha512"',
    '"sha1"', '"gitCommit"', '"gitTree"', '"dirHash"', '"md5"', '"sha3_256"', '"goModuleH1"',
    STATEMENT_TYPE_V1, "https://in-toto.io/Statement/v0.1", SLSA, DIGEST, '"_"', '""', "\\u0000",
    "\\ud800", "\\u017f", "1e400", "9007199254740993", "-0.0", '"Subject"', '"predicate_type"',
    '"_Type"', "h1:", "null", "true", "[]", "{}",
)  # fmt: skip


def check(data: bytes) -> None:
    for allow_v01 in (True, False):
        parsed = attempt(partial(parse_statement, data, allow_v01=allow_v01))
        if parsed is None or parsed.get("_type") != STATEMENT_TYPE_V1:
            continue
        payload = attempt(partial(statement_payload, parsed))
        if payload is None:
            continue
        again = attempt(partial(parse_statement, payload))
        if again != parsed:
            raise ContractViolation(
                "round-trip", "statement_payload() bytes do not parse back to the Statement"
            )


def seeds() -> Iterator[bytes]:
    base = statement(DIGEST)
    yield compact(base)
    yield json.dumps(base, indent=2).encode()
    yield compact({**base, "_type": "https://in-toto.io/Statement/v0.1"})
    yield compact(
        {
            **base,
            "subject": [
                {"name": "a", "digest": {"sha256": DIGEST, "sha512": "ab" * 64}},
                {"name": "_", "digest": {"gitCommit": "cd" * 20}},
                {"uri": "https://example.com/b", "digest": {"sha256": "ef" * 32}},
                {
                    "name": "c",
                    "digest": {"dirHash": "01" * 32, "goModuleH1": "h1:" + "A" * 43 + "="},
                    "content": "aGVsbG8=",
                    "downloadLocation": "https://example.com/c",
                    "mediaType": "application/octet-stream",
                    "annotations": {"k": ["v", 1, None, {"x": True}]},
                },
            ],
        }
    )
    yield compact({**base, "predicate": {"nested": [[[[{}]]]], "n": 1.5e300, "i": -1}})
    yield compact({k: v for k, v in base.items() if k != "predicate"})
    yield compact({**base, "subject": [{"name": "dup", "digest": {"sha256": DIGEST}}] * 2})
    yield compact({"_type": STATEMENT_TYPE_V1, "subject": []})
    vectors = json.loads((FIXTURES / "dsse" / "dsse_vectors.json").read_text())
    for vector in vectors.values():
        value = vector.get("statement_json_utf8") if isinstance(vector, dict) else None
        if isinstance(value, str):
            yield value.encode("utf-8")
    statement_file = FIXTURES / "sigstore-conformance" / "assets" / "statement.json"
    if statement_file.is_file():
        yield statement_file.read_bytes()
    for path in sorted((FIXTURES / "predicates").glob("*.json")):
        yield compact({**base, "predicate": json.loads(path.read_bytes())})
