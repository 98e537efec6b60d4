"""The attachment layouts' bytes are cosign's, and what a registry serves is parsed strictly.

The expected manifests below are written out by hand from cosign's Go code (cosign v3.1.2
`pkg/oci/remote/write.go` WriteReferrer / WriteAttestationNewBundleFormat, serialised by
`encoding/json` from go-containerregistry's structs):

- `referrerManifest{v1.Manifest, ArtifactType}`: the embedded Manifest's fields first
  (schemaVersion, mediaType, config, layers, annotations, subject), then artifactType;
- `v1.Descriptor`: mediaType, size, digest, [data, urls], annotations, [platform], artifactType;
- map keys sorted; compact; `<`, `>`, `&`, U+2028 and U+2029 written as ``\\u003c`` etc.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from dssesign.codes import Code
from dssesign.errors import RegistryError
from dssesign.limits import Limits
from dssesign.oci.layout import (
    BUNDLE_MEDIA_TYPE,
    EMPTY_CONFIG,
    INDEX_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    Descriptor,
    attestation_tag,
    bundle_referrer,
    digest_of,
    go_json,
    legacy_layer,
    legacy_manifest,
    parse_index,
    parse_manifest,
    referrers_index,
    referrers_tag,
)

EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
SUBJECT = "sha256:" + "ab" * 32
BUNDLE = b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}'
BUNDLE_DIGEST = "sha256:f2168ec310ea3d35dc929b480c85a91c21775cbbf36db3a37e041e5fe815f586"
TRICKY_TYPE = "https://example.com/p?a=1&b=<2>\u2028"


def test_the_empty_config_is_cosigns() -> None:
    assert EMPTY_CONFIG == b"{}"
    assert digest_of(EMPTY_CONFIG) == EMPTY_DIGEST
    assert hashlib.sha256(BUNDLE).hexdigest() == BUNDLE_DIGEST.removeprefix("sha256:")


def test_bundle_referrer_bytes_are_cosigns() -> None:
    subject = Descriptor(
        MANIFEST_MEDIA_TYPE,
        SUBJECT,
        1234,
        annotations={"org.opencontainers.image.ref.name": "v1"},
        platform=("linux", "amd64", ""),
    )
    data, entry = bundle_referrer(BUNDLE, TRICKY_TYPE, subject, "2025-01-02T03:04:05Z")
    expected = (
        '{"schemaVersion":2,'
        '"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        '"config":{"mediaType":"application/vnd.oci.empty.v1+json","size":2,'
        '"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",'
        '"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"},'
        '"layers":[{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","size":61,'
        '"digest":"sha256:f2168ec310ea3d35dc929b480c85a91c21775cbbf36db3a37e041e5fe815f586"}],'
        '"annotations":{"dev.sigstore.bundle.content":"dsse-envelope",'
        '"dev.sigstore.bundle.predicateType":"https://example.com/p?a=1\\u0026b=\\u003c2\\u003e'
        '\\u2028",'
        '"org.opencontainers.image.created":"2025-01-02T03:04:05Z"},'
        # The subject as cosign takes it from a HEAD: mediaType, size, digest, nothing else.
        '"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1234,'
        '"digest":"sha256:abababababababababababababababababababababababababababababababab"},'
        '"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}'
    )
    assert data == expected.encode()
    # The referrers-index entry names exactly these bytes.
    assert entry.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert (entry.media_type, entry.size, entry.artifact_type) == (
        MANIFEST_MEDIA_TYPE,
        len(data),
        BUNDLE_MEDIA_TYPE,
    )
    assert dict(entry.annotations) == {
        "org.opencontainers.image.created": "2025-01-02T03:04:05Z",
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": TRICKY_TYPE,
    }


def test_bundle_referrer_parses_back() -> None:
    subject = Descriptor(INDEX_MEDIA_TYPE, SUBJECT, 99)
    data, entry = bundle_referrer(BUNDLE, "https://slsa.dev/provenance/v1", subject, "T")
    manifest = parse_manifest(data, entry.digest, what="referrer")
    assert manifest.artifact_type == BUNDLE_MEDIA_TYPE
    assert manifest.subject == Descriptor(INDEX_MEDIA_TYPE, SUBJECT, 99)
    assert manifest.config.digest == EMPTY_DIGEST and manifest.config.size == 2
    assert [(x.media_type, x.digest, x.size) for x in manifest.layers] == [
        (BUNDLE_MEDIA_TYPE, BUNDLE_DIGEST, len(BUNDLE))
    ]
    assert manifest.annotations["dev.sigstore.bundle.predicateType"] == (
        "https://slsa.dev/provenance/v1"
    )


def test_go_json_escapes_as_go_does() -> None:
    value = {"b": "<a href='x'>&amp;</a>\u2028\u2029é", "a": [1, None, True]}
    assert go_json(value) == (
        b'{"b":"\\u003ca href=\'x\'\\u003e\\u0026amp;\\u003c/a\\u003e\\u2028\\u2029\xc3\xa9",'
        b'"a":[1,null,true]}'
    )


def test_tags_of_both_layouts() -> None:
    assert referrers_tag(SUBJECT) == "sha256-" + "ab" * 32
    assert attestation_tag(SUBJECT) == "sha256-" + "ab" * 32 + ".att"


def test_referrers_index_is_sorted_by_digest() -> None:
    high = Descriptor(
        MANIFEST_MEDIA_TYPE, "sha256:" + "f" * 64, 10, {"z": "1", "a": "2"}, BUNDLE_MEDIA_TYPE
    )
    low = Descriptor(MANIFEST_MEDIA_TYPE, "sha256:" + "0" * 64, 20, {}, "")
    data = referrers_index([high, low])
    assert data == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
        b'"manifests":['
        b'{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":20,'
        b'"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},'
        b'{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":10,'
        b'"digest":"sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",'
        b'"annotations":{"a":"2","z":"1"},'
        b'"artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"}]}'
    )
    assert referrers_index([low, high]) == data  # input order does not matter
    assert [d.digest for d in parse_index(data, digest_of(data), what="i").manifests] == [
        low.digest,
        high.digest,
    ]


def test_legacy_layer_annotations_are_cosigns() -> None:
    envelope = b'{"payloadType":"application/vnd.in-toto+json","payload":"","signatures":[]}'
    plain = legacy_layer(envelope, "https://slsa.dev/provenance/v1")
    envelope_digest = "sha256:" + hashlib.sha256(envelope).hexdigest()
    assert (
        go_json(plain.to_json())
        == (
            '{"mediaType":"application/vnd.dsse.envelope.v1+json",'
            f'"size":{len(envelope)},"digest":"{envelope_digest}",'
            '"annotations":{"dev.cosignproject.cosign/signature":"",'
            '"predicateType":"https://slsa.dev/provenance/v1"}}'
        ).encode()
    )
    token = b"\xfb\xff\xfe\x00"  # base64 "+//+AA==": Go's []byte is standard, padded base64
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    full = legacy_layer(
        envelope,
        "https://slsa.dev/provenance/v1",
        certificate_pem=pem,
        chain_pem=b"CHAIN\n",
        rfc3161_token=token,
    )
    assert full.annotations["dev.sigstore.cosign/rfc3161timestamp"] == (
        '{"SignedRFC3161Timestamp":"+//+AA=="}'
    )
    assert (
        base64.b64decode(
            json.loads(full.annotations["dev.sigstore.cosign/rfc3161timestamp"])[
                "SignedRFC3161Timestamp"
            ]
        )
        == token
    )
    assert (
        go_json(full.to_json())
        == (
            '{"mediaType":"application/vnd.dsse.envelope.v1+json",'
            f'"size":{len(envelope)},"digest":"{envelope_digest}",'
            '"annotations":{"dev.cosignproject.cosign/signature":"",'
            '"dev.sigstore.cosign/certificate":'
            '"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n",'
            '"dev.sigstore.cosign/chain":"CHAIN\\n",'
            '"dev.sigstore.cosign/rfc3161timestamp":"{\\"SignedRFC3161Timestamp\\":\\"+//+AA==\\"}",'
            '"predicateType":"https://slsa.dev/provenance/v1"}}'
        ).encode()
    )


def test_legacy_manifest_and_config() -> None:
    layer = legacy_layer(b"{}", "https://example.com/t")
    manifest, config = legacy_manifest([layer])
    assert (
        config
        == (
            '{"architecture":"","created":"0001-01-01T00:00:00Z",'
            '"history":[{"created":"0001-01-01T00:00:00Z"}],"os":"",'
            f'"rootfs":{{"type":"layers","diff_ids":["{EMPTY_DIGEST}"]}},"config":{{}}}}'
        ).encode()
    )
    parsed = parse_manifest(manifest, digest_of(manifest), what="att")
    assert parsed.config.digest == digest_of(config) and parsed.config.size == len(config)
    assert parsed.config.media_type == "application/vnd.oci.image.config.v1+json"
    assert parsed.subject is None and parsed.artifact_type == ""
    assert [x.digest for x in parsed.layers] == [EMPTY_DIGEST]
    assert parsed.layers[0].annotations["predicateType"] == "https://example.com/t"


# --- strict parsing -------------------------------------------------------------------------------


def _descriptor(**changes: Any) -> dict[str, Any]:
    return {"mediaType": "application/octet-stream", "size": 2, "digest": EMPTY_DIGEST, **changes}


def _manifest(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": _descriptor(),
        "layers": [_descriptor()],
    }
    document.update(changes)
    return document


def _index(**changes: Any) -> dict[str, Any]:
    entry = _descriptor(mediaType=MANIFEST_MEDIA_TYPE)
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [entry],
    }
    document.update(changes)
    return document


def _bytes(document: object) -> bytes:
    return json.dumps(document).encode()


def test_valid_documents_parse() -> None:
    manifest = parse_manifest(_bytes(_manifest()), "sha256:" + "1" * 64, what="m")
    assert manifest.layers[0].digest == EMPTY_DIGEST and manifest.digest == "sha256:" + "1" * 64
    platform = {"os": "linux", "architecture": "arm64", "variant": "v8"}
    entry = _descriptor(mediaType=MANIFEST_MEDIA_TYPE, platform=platform)
    index = parse_index(_bytes(_index(manifests=[entry])), "sha256:" + "2" * 64, what="i")
    assert index.manifests[0].platform == ("linux", "arm64", "v8")
    # The Docker v2 list and a listing without mediaType are indexes too.
    for media_type in ("application/vnd.docker.distribution.manifest.list.v2+json", None):
        document = _index(mediaType=media_type)
        if media_type is None:
            del document["mediaType"]
        assert len(parse_index(_bytes(document), "sha256:" + "3" * 64, what="i").manifests) == 1


BAD_MANIFESTS: list[tuple[str, object, str]] = [
    ("schemaVersion 1", _manifest(schemaVersion=1), "schemaVersion is not 2"),
    ('schemaVersion "2"', _manifest(schemaVersion="2"), "schemaVersion is not 2"),
    ("schemaVersion true", _manifest(schemaVersion=True), "schemaVersion is not 2"),
    ("schemaVersion 2.0", _manifest(schemaVersion=2.0), "schemaVersion is not 2"),
    ("no schemaVersion", {k: v for k, v in _manifest().items() if k != "schemaVersion"}, "2"),
    ("config digest sha512", _manifest(config=_descriptor(digest="sha512:" + "a" * 128)), "digest"),
    ("uppercase digest", _manifest(config=_descriptor(digest="sha256:" + "A" * 64)), "digest"),
    ("short digest", _manifest(layers=[_descriptor(digest="sha256:abc")]), "layer 0: digest"),
    ("digest not a string", _manifest(layers=[_descriptor(digest=7)]), "digest"),
    ("negative size", _manifest(layers=[_descriptor(size=-1)]), "size is not a non-negative"),
    ("size true", _manifest(config=_descriptor(size=True)), "size"),
    ("size 2.0", _manifest(config=_descriptor(size=2.0)), "size"),
    ("size string", _manifest(config=_descriptor(size="2")), "size"),
    ("size 2**53", _manifest(config=_descriptor(size=2**53)), "size"),
    ("annotation int", _manifest(annotations={"a": 1}), "annotation value is not a string"),
    ("annotation null", _manifest(annotations={"a": None}), "annotation value"),
    ("annotations list", _manifest(annotations=["a"]), "annotations are not a map"),
    ("too many annotations", _manifest(annotations={str(i): "" for i in range(65)}), "at most 64"),
    ("layer annotation int", _manifest(layers=[_descriptor(annotations={"a": 1})]), "annotation"),
    ("an index as manifest", _index(), "is an image index, not an image manifest"),
    ("index mediaType", _manifest(mediaType=INDEX_MEDIA_TYPE), "is an image index"),
    ("manifests key", _manifest(manifests=[]), "is an image index"),
    ("no layers", {k: v for k, v in _manifest().items() if k != "layers"}, "no layers list"),
    ("layers object", _manifest(layers={}), "no layers list"),
    ("config missing", {k: v for k, v in _manifest().items() if k != "config"}, "config"),
    ("config string", _manifest(config="sha256:x"), "config is not a descriptor"),
    ("subject string", _manifest(subject=SUBJECT), "subject is not a descriptor"),
    ("mediaType int", _manifest(layers=[_descriptor(mediaType=1)]), "mediaType is not a string"),
    ("mediaType huge", _manifest(layers=[_descriptor(mediaType="a" * 256)]), "at most 255"),
    ("artifactType list", _manifest(artifactType=["x"]), "artifactType"),
    ("platform int", _manifest(layers=[_descriptor(platform={"os": 1})]), "platform"),
    ("a JSON array", [_manifest()], "not a JSON object"),
]


@pytest.mark.parametrize(
    ("document", "problem"),
    [pytest.param(d, p, id=name) for name, d, p in BAD_MANIFESTS],
)
def test_parse_manifest_refusals(document: object, problem: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_manifest(_bytes(document), "sha256:" + "1" * 64, what="referrer X")
    assert caught.value.code is Code.REGISTRY_CONTENT_INVALID
    assert caught.value.exit_code == 1
    assert problem in str(caught.value), str(caught.value)
    assert "referrer X" in str(caught.value)


BAD_INDEXES: list[tuple[str, object, str]] = [
    ("schemaVersion 1", _index(schemaVersion=1), "schemaVersion is not 2"),
    ("a manifest as index", _manifest(), "not an image index"),
    ("no manifests", {k: v for k, v in _index().items() if k != "manifests"}, "no manifests list"),
    ("manifests object", _index(manifests={}), "no manifests list"),
    ("entry digest", _index(manifests=[_descriptor(digest="sha256:zz")]), "entry 0: digest"),
    ("entry size", _index(manifests=[_descriptor(size=-5)]), "entry 0: size"),
    ("entry annotations", _index(manifests=[_descriptor(annotations={"a": []})]), "annotation"),
    ("entry string", _index(manifests=["sha256:" + "a" * 64]), "entry 0 is not a descriptor"),
    ("too many", _index(manifests=[_descriptor()] * 4097), "more than 4096"),
]


@pytest.mark.parametrize(
    ("document", "problem"),
    [pytest.param(d, p, id=name) for name, d, p in BAD_INDEXES],
)
def test_parse_index_refusals(document: object, problem: str) -> None:
    with pytest.raises(RegistryError) as caught:
        parse_index(_bytes(document), "sha256:" + "1" * 64, what="the referrers of X")
    assert caught.value.code is Code.REGISTRY_CONTENT_INVALID
    assert problem in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b'{"schemaVersion":2,"schemaVersion":2,"layers":[]}',  # a duplicate member
        b'{"schemaVersion":2,"layers":[],"config":' + b"[" * 200 + b"]" * 200 + b"}",
        b"\xff\xfe{}",
    ],
    ids=["empty", "not-json", "duplicate-member", "too-deep", "not-utf8"],
)
def test_unparseable_bytes_are_content_invalid(data: bytes) -> None:
    for parse in (parse_manifest, parse_index):
        with pytest.raises(RegistryError) as caught:
            parse(data, "sha256:" + "1" * 64, what="m")
        assert caught.value.code is Code.REGISTRY_CONTENT_INVALID


def test_parsing_honours_the_byte_limit() -> None:
    data = _bytes(_manifest(annotations={"pad": "x" * 5000}))
    assert parse_manifest(data, "sha256:" + "1" * 64, what="m")
    with pytest.raises(RegistryError, match="exceeds the limit of 1000") as caught:
        parse_manifest(data, "sha256:" + "1" * 64, what="m", limits=Limits(max_json_bytes=1000))
    assert caught.value.code is Code.REGISTRY_CONTENT_INVALID
