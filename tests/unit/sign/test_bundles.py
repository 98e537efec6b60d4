from __future__ import annotations

import base64
import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dssesign.core.dsse import pae
from dssesign.core.keys import load_public_key
from dssesign.errors import ConfigError, SigningError
from dssesign.sign.bundles import (
    BUNDLE_MEDIA_TYPE,
    BundleSource,
    bundle_stem,
    bundles_for,
    is_keyless,
    keyed_bundle,
    prepare_bundle_dir,
    public_key_hint,
    write_bundles,
)
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.sign.signer import Signer
from tests.conftest import ALL_ALGORITHMS, FIXTURES, DelegatingSigner, signer_for

SIGSTORE = FIXTURES / "sigstore"
PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1","predicateType":"x","subject":[]}'
PAYLOAD_TYPE = "application/vnd.in-toto+json"


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def _json_names(node: Any) -> Any:
    """The schema with every `required` proto field name turned into its JSON (camelCase) name."""
    if isinstance(node, dict):
        return {
            k: [_camel(n) for n in v] if k == "required" else _json_names(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_json_names(v) for v in node]
    return node


@cache
def _raw_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SIGSTORE / "Bundle.schema.json").read_text())
    return schema


@cache
def _validator() -> jsonschema.Draft4Validator:
    # See fixtures/sigstore/README.md: the generated schema names required members in snake_case.
    return jsonschema.Draft4Validator(_json_names(_raw_schema()))


def _fixture(name: str) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads((SIGSTORE / name).read_text())
    return bundle


class FakeKeyless(DelegatingSigner):
    """A keyless-like signer: a software key plus a bundle per signature it made.

    The bundle's certificate and tlog entry are copied from a real public-good bundle, so its
    shape is real; its cryptography is not meant to verify (the interop tests do that).
    """

    def __init__(self, index: int = 0, *, tamper: str | None = None) -> None:
        super().__init__(signer_for("ecdsa-p256", 10 + index), "keyless")
        self.tamper = tamper
        self.made: dict[bytes, bytes] = {}

    def sign(self, data: bytes) -> bytes:
        signature = self._inner.sign(data)
        self.made[signature] = data
        return signature

    def bundle_for(self, signature: bytes) -> str:
        data = self.made[signature]  # KeyError for a signature it did not make
        _, type_length, rest = data.split(b" ", 2)  # PAE: DSSEv1 LEN type LEN body
        payload_type = rest[: int(type_length)].decode()
        body = rest[int(type_length) + 1 :].split(b" ", 1)[1]
        bundle = _fixture("keyless-dsse.sigstore.json")
        bundle["dsseEnvelope"] = {
            "payload": base64.b64encode(body).decode(),
            "payloadType": payload_type,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        }
        _TAMPER[self.tamper or "none"](bundle)
        return json.dumps(bundle, indent=2)


def _two_signatures(b: dict[str, Any]) -> None:
    b["dsseEnvelope"]["signatures"] *= 2


_TAMPER: dict[str, Any] = {
    "none": lambda b: None,
    "payload": lambda b: b["dsseEnvelope"].update(payload=base64.b64encode(b"{}").decode()),
    "payloadType": lambda b: b["dsseEnvelope"].update(payloadType="text/plain"),
    "signature": lambda b: b["dsseEnvelope"]["signatures"][0].update(sig="AAAA"),
    "two signatures": _two_signatures,
    "no certificate": lambda b: b["verificationMaterial"].pop("certificate"),
    "no tlog entry": lambda b: b["verificationMaterial"].update(tlogEntries=[]),
    "media type": lambda b: b.update(mediaType="application/vnd.dev.sigstore.bundle+json"),
}


def test_hint_is_what_cosign_writes() -> None:
    # cosign's own keyed bundle carries the hint of the key it was made with.
    key = load_public_key((SIGSTORE / "cosign-keyed.pub").read_bytes())
    cosign = _fixture("cosign-keyed.sigstore.json")
    assert public_key_hint(key) == cosign["verificationMaterial"]["publicKey"]["hint"]


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_hint_is_the_keyid_digest_in_base64(algorithm: str) -> None:
    key = signer_for(algorithm).public_key
    assert base64.b64decode(public_key_hint(key)) == bytes.fromhex(key.keyid)


def test_schema_as_published_needs_the_json_names() -> None:
    # Why the tests rewrite `required`: the unmodified schema refuses cosign's own bundle.
    cosign = _fixture("cosign-keyed.sigstore.json")
    assert not jsonschema.Draft4Validator(_raw_schema()).is_valid(cosign)
    for real in ("cosign-keyed.sigstore.json", "keyless-dsse.sigstore.json"):
        _validator().validate(_fixture(real))
    bad = copy.deepcopy(cosign)
    bad["verificationMaterial"]["publicKey"]["hints"] = "x"
    assert not _validator().is_valid(bad)


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_keyed_bundle_shape_and_signature(algorithm: str) -> None:
    signer = signer_for(algorithm)
    signature = signer.sign(pae(PAYLOAD_TYPE, PAYLOAD))
    bundle = keyed_bundle(PAYLOAD, PAYLOAD_TYPE, signature, signer.public_key)
    _validator().validate(bundle)
    assert (
        bundle["mediaType"] == BUNDLE_MEDIA_TYPE == "application/vnd.dev.sigstore.bundle.v0.3+json"
    )
    material: Any = bundle["verificationMaterial"]
    hint = public_key_hint(signer.public_key)
    assert material == {"publicKey": {"hint": hint}, "tlogEntries": []}
    dsse: Any = bundle["dsseEnvelope"]
    assert base64.b64decode(dsse["payload"]) == PAYLOAD
    assert dsse["payloadType"] == PAYLOAD_TYPE
    # protobuf-specs: a DSSE keyid, when set, must equal the verification material's hint.
    assert dsse["signatures"] == [{"sig": base64.b64encode(signature).decode(), "keyid": hint}]
    assert signer.public_key.verify(
        base64.b64decode(dsse["signatures"][0]["sig"]),
        pae(dsse["payloadType"], base64.b64decode(dsse["payload"])),
    )


def test_keyed_bundle_has_the_members_cosign_writes() -> None:
    signer = signer_for("ecdsa-p256")
    ours: Any = keyed_bundle(PAYLOAD, PAYLOAD_TYPE, signer.sign(b"x"), signer.public_key)
    cosign = _fixture("cosign-keyed.sigstore.json")
    assert ours["mediaType"] == cosign["mediaType"]
    # Ours has no log entry (tlogEntries: []) and no timestamps; nothing cosign lacks.
    assert set(ours["verificationMaterial"]) <= set(cosign["verificationMaterial"])
    assert set(ours["verificationMaterial"]["publicKey"]) == {"hint"}


def test_one_bundle_per_signature_over_the_same_payload(tmp_path: Path) -> None:
    signers: list[Signer] = [signer_for(a) for a in ("ed25519", "ecdsa-p256", "rsa-pss-3072")]
    result = MultiProfileSigner(signers).sign_detailed(PAYLOAD, PAYLOAD_TYPE)
    files = bundles_for(result.envelope, result.signers, "att.intoto")
    assert [f.name for f in files] == [f"att.intoto.{s.keyid[:16]}.sigstore.json" for s in signers]
    assert [f.keyid for f in files] == [s.keyid for s in signers]
    written = write_bundles(tmp_path, files)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files)
    for path, signer, sig in zip(written, signers, result.envelope.signatures, strict=True):
        bundle = json.loads(path.read_bytes())
        _validator().validate(bundle)
        assert base64.b64decode(bundle["dsseEnvelope"]["payload"]) == result.envelope.payload
        (only,) = bundle["dsseEnvelope"]["signatures"]
        assert base64.b64decode(only["sig"]) == sig.sig
        assert bundle["verificationMaterial"]["publicKey"]["hint"] == public_key_hint(
            signer.public_key
        )


def test_keyless_bundles_come_from_their_signer_verbatim(tmp_path: Path) -> None:
    keyless = [FakeKeyless(0), FakeKeyless(1)]
    assert all(isinstance(k, BundleSource) and is_keyless(k) for k in keyless)
    signers: list[Signer] = [keyless[0], signer_for("ed25519"), keyless[1]]
    result = MultiProfileSigner(signers).sign_detailed(PAYLOAD, PAYLOAD_TYPE)
    # cosign writes keyless signatures with an empty keyid; the identity is in the bundle.
    assert [s.keyid for s in result.envelope.signatures] == ["", signers[1].keyid, ""]
    assert result.signers == tuple(signers)
    files = bundles_for(result.envelope, result.signers, "envelope")
    assert [f.name for f in files] == [
        "envelope.keyless-1.sigstore.json",
        f"envelope.{signers[1].keyid[:16]}.sigstore.json",
        "envelope.keyless-2.sigstore.json",
    ]
    assert [f.keyless for f in files] == [True, False, True]
    for item, signer, sig in zip(files, signers, result.envelope.signatures, strict=True):
        if isinstance(signer, FakeKeyless):
            assert item.data == signer.bundle_for(sig.sig).encode() + b"\n"
        bundle = json.loads(item.data)
        _validator().validate(bundle)
        assert base64.b64decode(bundle["dsseEnvelope"]["payload"]) == PAYLOAD


@pytest.mark.parametrize("tamper", [t for t in _TAMPER if t != "none"])
def test_a_keyless_bundle_that_does_not_match_its_signature_is_refused(tamper: str) -> None:
    signer = FakeKeyless(tamper=tamper)
    result = MultiProfileSigner([signer]).sign_detailed(PAYLOAD, PAYLOAD_TYPE)
    with pytest.raises(SigningError, match="keyless signer 1: its Sigstore bundle"):
        bundles_for(result.envelope, result.signers, "e")


def test_a_keyless_signer_without_the_bundle_is_refused() -> None:
    signer = FakeKeyless()
    result = MultiProfileSigner([signer]).sign_detailed(PAYLOAD, PAYLOAD_TYPE)
    signer.made.clear()
    with pytest.raises(SigningError, match="no Sigstore bundle for its signature"):
        bundles_for(result.envelope, result.signers, "e")

    class NotJson(FakeKeyless):
        def bundle_for(self, signature: bytes) -> str:
            return "{not json"

    other = NotJson()
    result = MultiProfileSigner([other]).sign_detailed(PAYLOAD, PAYLOAD_TYPE)
    with pytest.raises(SigningError, match="not valid JSON"):
        bundles_for(result.envelope, result.signers, "e")


def test_signers_must_match_the_signatures() -> None:
    envelope = MultiProfileSigner([signer_for("ed25519")]).sign(PAYLOAD, PAYLOAD_TYPE)
    with pytest.raises(ValueError, match="one signer per envelope signature"):
        bundles_for(envelope, [], "e")
    with pytest.raises(ConfigError, match="bad bundle file stem"):
        bundles_for(envelope, [signer_for("ed25519")], "a/b")


@pytest.mark.parametrize(
    ("out", "stem"),
    [
        (None, "envelope"),
        ("", "envelope"),
        ("out/att.json", "att"),
        ("att.intoto.json", "att.intoto"),
        ("sbom.dsse.json", "sbom"),
        ("a.jsonl", "a"),
        ("plain", "plain"),
        (".json", ".json"),
    ],
)
def test_bundle_stem(out: str | None, stem: str) -> None:
    assert bundle_stem(out) == stem


def test_bundle_dir_is_created_and_a_file_is_refused(tmp_path: Path) -> None:
    made = prepare_bundle_dir(tmp_path / "a" / "b")
    assert made.is_dir()
    assert prepare_bundle_dir(made) == made
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        prepare_bundle_dir(tmp_path / "file")


def test_rewriting_replaces_a_same_named_bundle(tmp_path: Path) -> None:
    signer = signer_for("ed25519")
    first = bundles_for(MultiProfileSigner([signer]).sign(b"1", "t"), [signer], "e")
    second = bundles_for(MultiProfileSigner([signer]).sign(b"2", "t"), [signer], "e")
    (path,) = write_bundles(tmp_path, first)
    write_bundles(tmp_path, second)
    assert path.read_bytes() == second[0].data != first[0].data
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_bundles_are_deterministic_for_deterministic_signatures() -> None:
    # Same key, same payload, deterministic signature: same file name and same bytes.
    signer = signer_for("ed25519")
    runs = [
        bundles_for(MultiProfileSigner([signer]).sign(PAYLOAD, PAYLOAD_TYPE), [signer], "a")
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert json.loads(runs[0][0].data)["dsseEnvelope"]["signatures"][0]["keyid"] == (
        public_key_hint(signer.public_key)
    )
