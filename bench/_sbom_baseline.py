"""The SBOM benchmarks' baseline: what signing a document takes with nothing but json and pyca.

Load the document with `json`, wrap it in an in-toto Statement, serialize that with sorted keys,
sign the DSSE PAE with Ed25519, verify the signature, write the envelope. No validation, no
canonical form beyond sorted keys. Used in-process (`attest`) and as a whole process
(`python -m bench._sbom_baseline TYPE_URI DOCUMENT KEY OUT`), beside `dssesign attest`.
It imports nothing from dssesign, so its start-up is the interpreter's and cryptography's alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
#: The subject both sides sign for: the benchmarks give `dssesign attest --subject sha256:...`.
SUBJECT_DIGEST = hashlib.sha256(b"bench sbom subject").hexdigest()


def attest(type_uri: str, document: bytes, key: Ed25519PrivateKey) -> bytes:
    """Envelope JSON bytes for `document` as the predicate of a one-subject Statement."""
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"digest": {"sha256": SUBJECT_DIGEST}}],
        "predicateType": type_uri,
        "predicate": json.loads(document),
    }
    body = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    payload = body.encode("utf-8")
    message = b"DSSEv1 %d %s %d %s" % (
        len(PAYLOAD_TYPE),
        PAYLOAD_TYPE.encode(),
        len(payload),
        payload,
    )
    signature = key.sign(message)
    public = key.public_key()
    public.verify(signature, message)
    keyid = hashlib.sha256(
        public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).hexdigest()
    envelope = {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}],
    }
    return json.dumps(envelope).encode("ascii")


def load_key(path: Path) -> Ed25519PrivateKey:
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit(f"{path}: not an Ed25519 private key")
    return key


def main(argv: list[str]) -> int:
    type_uri, document, key_file, out = argv
    Path(out).write_bytes(attest(type_uri, Path(document).read_bytes(), load_key(Path(key_file))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
