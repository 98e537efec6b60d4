"""A Rekor-v1-style transparency log: dsse/0.0.1 and hashedrekord/0.0.1 entries in an RFC 6962
Merkle tree, each answered with an inclusion proof, a signed checkpoint and a SET.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from . import merkle


class RekorError(Exception):
    """A refused request; `status` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def canonical_json(value: object) -> bytes:
    """Canonical JSON for the values a log writes (ASCII strings, integers, objects)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _pae(payload_type: str, payload: bytes) -> bytes:
    type_bytes = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


def _verifier_key(verifier_b64: str) -> ec.EllipticCurvePublicKey:
    """The public key in a base64 PEM certificate (or PEM public key), as Rekor accepts them."""
    try:
        pem = base64.b64decode(verifier_b64, validate=True)
        key = (
            x509.load_pem_x509_certificate(pem).public_key()
            if b"CERTIFICATE" in pem
            else serialization.load_pem_public_key(pem)
        )
    except ValueError as exc:
        raise RekorError(400, f"unreadable verifier: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise RekorError(400, "only ECDSA verifiers are supported by this test log")
    return key


def _verifies(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class _Entry:
    body: bytes
    integrated_time: int
    leaf_hash: bytes


class TransparencyLog:
    """An append-only log with one ECDSA P-256 key; log id = SHA-256 of its SPKI DER."""

    def __init__(self, origin: str = "rekor.dssesign.test", tree_id: int = 4242) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = self._key.public_key()
        self.spki_der = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.log_id = hashlib.sha256(self.spki_der).digest()
        #: The checkpoint's origin and signer name. sigstore-js requires the name to be a
        #: substring of the log's baseUrl, so the instance sets it to the server's host:port.
        self.name = origin
        self.tree_id = tree_id
        self._entries: list[_Entry] = []
        #: Fault injection for tests of clients: "set" or "checkpoint" answers with that
        #: signature made by a key the trusted root does not list.
        self.fault: str | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ requests

    def add(self, proposed: object) -> dict[str, Any]:
        """Integrate a proposed entry; returns Rekor's `{uuid: LogEntry}` response."""
        if not isinstance(proposed, dict):
            raise RekorError(400, "proposed entry must be a JSON object")
        kind, version = proposed.get("kind"), proposed.get("apiVersion")
        spec = proposed.get("spec")
        if not isinstance(spec, dict):
            raise RekorError(400, "proposed entry has no spec")
        if (kind, version) == ("dsse", "0.0.1"):
            body = self._dsse_body(spec)
        elif (kind, version) == ("hashedrekord", "0.0.1"):
            body = self._hashedrekord_body(spec)
        else:
            raise RekorError(400, f"unsupported entry type {kind}/{version}")
        leaf_hash = merkle.leaf_hash(body)
        with self._lock:
            if any(entry.leaf_hash == leaf_hash for entry in self._entries):
                raise RekorError(409, "an equivalent entry already exists in the log")
            self._entries.append(_Entry(body, int(time.time()), leaf_hash))
            index = len(self._entries) - 1
            return self._response(index)

    def get(self, uuid: str) -> dict[str, Any]:
        with self._lock:
            for index, entry in enumerate(self._entries):
                if entry.leaf_hash.hex() == uuid.lower()[-64:]:
                    return self._response(index)
        raise RekorError(404, f"no entry with uuid {uuid}")

    def info(self) -> dict[str, Any]:
        with self._lock:
            hashes_ = [entry.leaf_hash for entry in self._entries]
            root_hash = merkle.root(hashes_)
            return {
                "rootHash": root_hash.hex(),
                "treeSize": len(hashes_),
                "signedTreeHead": self._checkpoint(len(hashes_), root_hash),
                "treeID": str(self.tree_id),
            }

    # ------------------------------------------------------------------ entry bodies

    def _dsse_body(self, spec: dict[str, Any]) -> bytes:
        content = spec.get("proposedContent")
        if not isinstance(content, dict):
            raise RekorError(400, "dsse entry needs proposedContent")
        envelope_text, verifiers = content.get("envelope"), content.get("verifiers")
        if not isinstance(envelope_text, str) or not isinstance(verifiers, list) or not verifiers:
            raise RekorError(400, "dsse entry needs an envelope string and verifiers")
        try:
            envelope = json.loads(envelope_text)
            payload = base64.b64decode(envelope["payload"], validate=True)
            payload_type = envelope["payloadType"]
            signatures = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise RekorError(400, f"malformed DSSE envelope: {exc}") from None
        if not isinstance(payload_type, str) or not signatures:
            raise RekorError(400, "malformed DSSE envelope")
        keys = [(str(v), _verifier_key(str(v))) for v in verifiers]
        message = _pae(payload_type, payload)
        recorded = []
        for signature in signatures:
            verifier = next((v for v, key in keys if _verifies(key, signature, message)), None)
            if verifier is None:
                raise RekorError(400, "a DSSE signature does not verify with any verifier")
            recorded.append(
                {"signature": base64.b64encode(signature).decode(), "verifier": verifier}
            )
        recorded.sort(key=lambda item: item["signature"])
        return canonical_json(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(envelope_text.encode()).hexdigest(),
                    },
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(payload).hexdigest(),
                    },
                    "signatures": recorded,
                },
            }
        )

    def _hashedrekord_body(self, spec: dict[str, Any]) -> bytes:
        try:
            digest_hex = spec["data"]["hash"]["value"]
            algorithm = spec["data"]["hash"]["algorithm"]
            signature_b64 = spec["signature"]["content"]
            verifier = spec["signature"]["publicKey"]["content"]
            digest = bytes.fromhex(digest_hex)
            signature = base64.b64decode(signature_b64, validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise RekorError(400, f"malformed hashedrekord entry: {exc}") from None
        if algorithm != "sha256" or len(digest) != 32:
            raise RekorError(400, "hashedrekord entries must carry a SHA-256 digest")
        key = _verifier_key(str(verifier))
        try:
            key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        except InvalidSignature:
            raise RekorError(400, "the hashedrekord signature does not verify") from None
        return canonical_json(
            {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                    "signature": {"content": signature_b64, "publicKey": {"content": verifier}},
                },
            }
        )

    # ------------------------------------------------------------------ proofs

    def _response(self, index: int) -> dict[str, Any]:
        """One entry with an inclusion proof against the current tree (caller holds the lock)."""
        entry = self._entries[index]
        hashes_ = [e.leaf_hash for e in self._entries]
        root_hash = merkle.root(hashes_)
        body_b64 = base64.b64encode(entry.body).decode()
        set_payload = canonical_json(
            {
                "body": body_b64,
                "integratedTime": entry.integrated_time,
                "logID": self.log_id.hex(),
                "logIndex": index,
            }
        )
        signed_entry_timestamp = self._signing_key("set").sign(
            set_payload, ec.ECDSA(hashes.SHA256())
        )
        return {
            entry.leaf_hash.hex(): {
                "body": body_b64,
                "integratedTime": entry.integrated_time,
                "logID": self.log_id.hex(),
                "logIndex": index,
                "verification": {
                    "inclusionProof": {
                        "checkpoint": self._checkpoint(len(hashes_), root_hash),
                        "hashes": [h.hex() for h in merkle.inclusion_proof(index, hashes_)],
                        "logIndex": index,
                        "rootHash": root_hash.hex(),
                        "treeSize": len(hashes_),
                    },
                    "signedEntryTimestamp": base64.b64encode(signed_entry_timestamp).decode(),
                },
            }
        }

    def _signing_key(self, purpose: str) -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1()) if self.fault == purpose else self._key

    def _checkpoint(self, size: int, root_hash: bytes) -> str:
        """A signed note: origin, size, root, blank line, `— name base64(keyhint || sig)`."""
        note = f"{self.name} - {self.tree_id}\n{size}\n{base64.b64encode(root_hash).decode()}\n"
        signature = self._signing_key("checkpoint").sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        # Rekor v1's key hint is the first four bytes of the log id.
        line = base64.b64encode(self.log_id[:4] + signature).decode()
        return f"{note}\n\u2014 {self.name} {line}\n"
