"""Regression tests for a red-team read of dssesign.oci: what a hostile registry (or anyone who
can push to a repository, or a host a registry redirects to) could do, and what dssesign does
now instead.

Each section is one finding: the attack as the red team ran it, against the in-process fake
(tests/oci_fake.py) where it can misbehave the needed way, else against a tiny server
(hostile.py) that answers byte by byte. Library calls where they say it, `dssesign.cli.main`
in-process where the finding was a CLI crash; everything on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dssesign import trust as tr
from dssesign.cli import main
from dssesign.codes import Code
from dssesign.errors import RegistryError
from dssesign.intoto.statement import ResourceDescriptor
from dssesign.limits import Limits
from dssesign.oci import (
    RegistryClient,
    Target,
    attach_bundle,
    attach_legacy,
    discover,
    parse_reference,
    resolve,
    verify_image,
)
from dssesign.oci import transport as oci_transport
from dssesign.oci.layout import (
    BUNDLE_MEDIA_TYPE,
    DSSE_LAYER_MEDIA_TYPE,
    INDEX_MEDIA_TYPE,
    INTOTO_ARTIFACT_TYPE,
    MANIFEST_MEDIA_TYPE,
    bundle_referrer,
    digest_of,
    referrers_tag,
)
from dssesign.profiles.software import write_keypair
from dssesign.sign.attest import AttestResult, attest
from tests import oci_fake
from tests.conftest import signer_for
from tests.oci_fake import EMPTY as EMPTY_MEDIA_TYPE
from tests.oci_fake import FakeRegistry

from .hostile import HostileServer, LocalTLS, fake_registry_over_tls, make_local_tls, reply

PREDICATE_TYPE = "https://cosign.sigstore.dev/attestation/v1"
INSECURE = "--allow-insecure-registry"
KEY_PASSWORD = "hostile registry key passphrase"
SECRET = "s3cret-registry-password"
SBOM = "application/vnd.example.sbom"


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DOCKER_CONFIG: never the developer's ~/.docker; tests write config.json here."""
    directory = tmp_path / "docker"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


def _login(directory: Path, host: str, user: str = "alice", password: str = SECRET) -> None:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _client(reg: FakeRegistry, digest: str, *, insecure: bool = True) -> RegistryClient:
    return RegistryClient(parse_reference(f"{reg.host}/app@{digest}"), insecure=insecure)


def _target(reg: FakeRegistry, digest: str) -> tuple[RegistryClient, Target]:
    client = _client(reg, digest)
    return client, resolve(client)


def _signed(digest: str, note: str = "hello", key: int = 0) -> AttestResult:
    subject = ResourceDescriptor(name="app", digest={"sha256": digest.removeprefix("sha256:")})
    return attest([subject], note.encode(), "custom", keys=[signer_for("ed25519", key)])


def _root(*keys: int, threshold: int = 1) -> tr.TrustRoot:
    root = tr.init_trust_root(threshold=threshold, now=datetime.now(UTC) - timedelta(days=1))
    for key in keys:
        root = tr.add_key(root, signer_for("ed25519", key).public_key)
    return root


def _raises(code: Code, call: Callable[..., Any], *args: Any, **kwargs: Any) -> RegistryError:
    with pytest.raises(RegistryError) as caught:
        call(*args, **kwargs)
    assert caught.value.code is code, caught.value
    return caught.value


def _with_signature(bundle: bytes, signature: bytes) -> bytes:
    """`bundle` with its one DSSE signature replaced (the keyid hint kept)."""
    document = json.loads(bundle)
    document["dsseEnvelope"]["signatures"][0]["sig"] = _b64(signature)
    return json.dumps(document).encode()


def _envelope(made: AttestResult, signatures: list[dict[str, str]]) -> bytes:
    """A DSSE envelope of `made`'s payload with other `signatures` (no key needed)."""
    original = json.loads(made.envelope.to_json())
    return json.dumps(
        {
            "payload": original["payload"],
            "payloadType": original["payloadType"],
            "signatures": signatures,
        }
    ).encode()


def _left_out(outcome: Any) -> list[str]:
    """The digests `verify_image` dropped from a group as counting no signer alone."""
    return [p.digest for p in outcome.problems if "left out of its attestation" in p.message]


def _blob_gets(reg: FakeRegistry) -> list[str]:
    return [path for method, path, _ in reg.requests if method == "GET" and "/blobs/" in path]


def _writes(reg: FakeRegistry) -> list[tuple[str, str]]:
    return [(m, p) for m, p, _ in reg.requests if m in ("PUT", "POST", "PATCH", "DELETE")]


@pytest.fixture
def image(fake_registry: FakeRegistry) -> tuple[FakeRegistry, str]:
    """The fake registry and the digest of an image pushed to its repository `app`."""
    return fake_registry, fake_registry.push_image("app", tag="v1")


@dataclass
class Run:
    code: int
    out: str
    err: str


Cli = Callable[..., Run]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    """`dssesign` in-process in `tmp_path`, with key a.key (ed25519 #0) and root.json
    (that key, threshold 1) there."""
    for name in list(os.environ):
        if name.startswith("DSSESIGN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DSSESIGN_KEY_PASSWORD", KEY_PASSWORD)
    monkeypatch.chdir(tmp_path)
    write_keypair(signer_for("ed25519", 0), tmp_path / "a", password=KEY_PASSWORD.encode())
    (tmp_path / "root.json").write_bytes(tr.dump_trust_root(_root(0)))
    (tmp_path / "predicate.txt").write_text("built by the hostile registry tests\n")

    def run(*args: str | Path) -> Run:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def _clean_failure(run: Run, code: int = 1) -> str:
    """One `error:` line, the exit code expected, and no crash (no `internal error`)."""
    assert run.code == code, run
    assert "internal error" not in run.err and "Traceback" not in run.err, run.err
    errors = [line for line in run.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, run.err
    return errors[0]


# --- 1. a redirect target that answers 401 gets no credentials ----------------------------------


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_a_redirect_target_asking_for_credentials_gets_none(
    auth: Any, docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """t6: the registry sends a blob to another origin (blob storage, a CDN) whose 401 names a
    token realm on itself. The registry's password used to go to that realm."""
    cdn_realm: list[str] = []

    def cdn(handler: BaseHTTPRequestHandler) -> None:
        if handler.path.startswith("/token"):
            reply(handler, 200, b'{"token":"cdn-token"}', [("Content-Type", "application/json")])
        else:
            challenge = f'Bearer realm="{cdn_realm[0]}",service="cdn"'
            reply(handler, 401, b"", [("WWW-Authenticate", challenge)])

    with (
        HostileServer(cdn) as other_origin,
        FakeRegistry(auth=auth, credentials=("alice", SECRET)) as reg,
    ):
        cdn_realm.append(f"{other_origin.url}/token")
        _login(docker_config, reg.host)
        digest = reg.push_image("app")
        client, target = _target(reg, digest)
        attach_bundle(client, target, _signed(digest).bundles[0].data, PREDICATE_TYPE)
        original = oci_fake._Handler._serve_blob

        def serve_blob(handler: Any, blob: str, name: str | None) -> None:
            if name is not None and handler.command == "GET":
                location = f"{other_origin.url}/bucket/{blob}?X-Amz-Signature=abc"
                return handler._send(307, b"", {"Location": location})  # type: ignore[no-any-return]
            return original(handler, blob, name)

        monkeypatch.setattr(oci_fake._Handler, "_serve_blob", serve_blob)
        error = _raises(Code.REGISTRY_UNAUTHORIZED, discover, client, target)
        assert "redirected" in str(error) and "asks for credentials" in str(error), error
        assert SECRET not in str(error)
        assert other_origin.requests, "the redirect target was never reached"
        assert [p for _, p, _ in other_origin.requests if p.startswith("/token")] == []
        for method, path, headers in other_origin.requests:
            assert "authorization" not in headers, (method, path, headers)
            assert SECRET not in json.dumps(headers) and _b64(SECRET.encode()) not in path


# --- 2. no cleartext from a TLS registry's Link or upload Location ------------------------------


@pytest.fixture(scope="module")
def local_tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTLS:
    return make_local_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_registry(
    local_tls: LocalTLS, monkeypatch: pytest.MonkeyPatch, docker_config: Path
) -> Iterator[tuple[FakeRegistry, list[bytes]]]:
    """The fake on TLS (its CA trusted through SSL_CERT_FILE), Basic auth, logged in; and the
    list of requests it got in cleartext."""
    monkeypatch.setenv("SSL_CERT_FILE", str(local_tls.ca_file))
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    plaintext = fake_registry_over_tls(monkeypatch, local_tls.server_context)
    with FakeRegistry(auth="basic", credentials=("alice", SECRET), page_size=1) as reg:
        _login(docker_config, reg.host)
        yield reg, plaintext


def _absolute_http(monkeypatch: pytest.MonkeyPatch, header: str, status: int | None) -> None:
    """Make the fake write `header` (Link or Location) as an absolute http:// URL on its own
    host:port, as a registry behind a TLS-terminating proxy often does."""
    original = oci_fake._Handler._send

    def send(handler: Any, code: int, body: bytes = b"", headers: Any = None, **kw: Any) -> None:
        headers = dict(headers or {})
        if header in headers and (status is None or code == status):
            value = headers[header]
            origin = f"http://{handler.server.registry.host}"
            headers[header] = (
                value.replace("</v2", f"<{origin}/v2") if header == "Link" else (origin + value)
            )
        original(handler, code, body, headers, **kw)

    monkeypatch.setattr(oci_fake._Handler, "_send", send)


def test_a_plain_http_referrers_link_from_a_tls_registry_is_refused(
    tls_registry: tuple[FakeRegistry, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t7: the Link to the next referrers page says http://: it used to be followed, the
    Authorization header sent in cleartext."""
    reg, plaintext = tls_registry
    digest = reg.push_image("app")
    client = _client(reg, digest, insecure=False)
    target = resolve(client)
    for key in (0, 1):  # two referrers: two pages of one
        attach_bundle(client, target, _signed(digest, key=key).bundles[0].data, PREDICATE_TYPE)
    assert client.referrers(digest, what="referrers") is not None  # over TLS, it pages fine
    _absolute_http(monkeypatch, "Link", None)
    error = _raises(Code.REGISTRY_CONTENT_INVALID, discover, client, target)
    assert "another origin" in str(error), error
    assert plaintext == [], plaintext


def test_a_plain_http_upload_location_from_a_tls_registry_is_refused(
    tls_registry: tuple[FakeRegistry, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t8: the upload session's Location says http://: the blob and the Authorization header
    used to follow it in cleartext."""
    reg, plaintext = tls_registry
    digest = reg.push_image("app")
    client = _client(reg, digest, insecure=False)
    target = resolve(client)
    _absolute_http(monkeypatch, "Location", 202)
    error = _raises(
        Code.REGISTRY_CONTENT_INVALID,
        attach_bundle,
        client,
        target,
        _signed(digest).bundles[0].data,
        PREDICATE_TYPE,
    )
    assert "another origin (or plain HTTP)" in str(error), error
    assert plaintext == [], plaintext
    assert [m for m, _ in _writes(reg) if m != "POST"] == []  # the upload never went anywhere


def test_an_upload_location_on_another_port_is_refused(
    image: tuple[FakeRegistry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same origin means scheme and host:port: a Location on another port is another server."""
    reg, digest = image
    client, target = _target(reg, digest)
    with HostileServer(lambda h: reply(h, 201)) as elsewhere:

        def upload_status(handler: Any, name: str, session: str, size: int) -> None:
            location = f"{elsewhere.url}/v2/{name}/blobs/uploads/{session}"
            handler._send(202, b"", {"Location": location})

        monkeypatch.setattr(oci_fake._Handler, "_upload_status", upload_status)
        bundle = _signed(digest).bundles[0].data
        error = _raises(Code.REGISTRY_CONTENT_INVALID, attach_bundle, client, target, bundle, "t")
        assert "another origin" in str(error), error
        assert elsewhere.requests == []


# --- 3. group poisoning: junk of the same payload cannot fail the genuine ---------------------


def test_a_junk_bundle_of_the_same_payload_is_left_out(image: tuple[FakeRegistry, str]) -> None:
    """t1: anyone who can push adds a bundle of the (public) payload with a junk signature."""
    reg, digest = image
    client, target = _target(reg, digest)
    bundle = _signed(digest).bundles[0].data
    junk = _with_signature(bundle, b"\x01" * 64)
    attach_bundle(client, target, junk, PREDICATE_TYPE)  # listed first
    attach_bundle(client, target, bundle, PREDICATE_TYPE)
    found = discover(client, target)
    assert len(found.candidates) == 2
    outcome = verify_image(target, found, _root(0))
    assert outcome.passed, outcome.to_dict()
    assert _left_out(outcome) == [digest_of(junk)]


def test_sixty_four_junk_signatures_listed_first_are_left_out(
    image: tuple[FakeRegistry, str],
) -> None:
    """t16: a DSSE-layer referrer of the payload with 64 junk signatures (the signature limit),
    listed before the genuine bundle, used to push the genuine signature out of the group."""
    reg, digest = image
    client, target = _target(reg, digest)
    made = _signed(digest)
    junk = _envelope(made, [{"keyid": "", "sig": _b64(bytes([i]) * 64)} for i in range(64)])
    reg.push_artifact(
        "app",
        digest,
        INTOTO_ARTIFACT_TYPE,
        payload=junk,
        payload_media_type=DSSE_LAYER_MEDIA_TYPE,
    )
    attach_bundle(client, target, made.bundles[0].data, PREDICATE_TYPE)
    found = discover(client, target)
    assert [c.kind for c in found.candidates] == ["envelope", "bundle"]
    outcome = verify_image(target, found, _root(0))
    assert outcome.passed, outcome.to_dict()
    assert _left_out(outcome) == [digest_of(junk)]


def test_a_copy_naming_another_trusted_key_cannot_hijack_the_keyid(
    image: tuple[FakeRegistry, str],
) -> None:
    """t23: the genuine bundle's signature carries no keyid (as cosign writes it); a legacy
    copy of the same signature names another trusted key, so the verifier used to try only
    that key."""
    reg, digest = image
    client, target = _target(reg, digest)
    made = _signed(digest, key=0)
    document = json.loads(made.bundles[0].data)
    document["dsseEnvelope"]["signatures"][0].pop("keyid")
    attach_bundle(client, target, json.dumps(document).encode(), PREDICATE_TYPE)
    root = _root(0, 1)
    assert verify_image(target, discover(client, target), root).passed
    genuine = document["dsseEnvelope"]["signatures"][0]["sig"]
    copy = _envelope(made, [{"keyid": signer_for("ed25519", 1).keyid, "sig": genuine}])
    attach_legacy(client, target, copy, PREDICATE_TYPE)
    found = discover(client, target)
    assert [c.source for c in found.candidates] == ["referrers-api", "legacy-tag"]
    outcome = verify_image(target, found, root)
    assert outcome.passed, outcome.to_dict()
    # The sources disagree on the keyid: the merged signature carries none, so the verifier
    # tries every trusted key instead of the one the forged copy points at.
    assert [s.keyid for s in outcome.outcomes[0].group.signatures] == [""]


# --- 4. one layer listed N times is read once ---------------------------------------------------


@pytest.mark.parametrize("kind", ["bundle", "envelope"])
def test_a_layer_listed_fifty_times_is_fetched_once(
    image: tuple[FakeRegistry, str], kind: str
) -> None:
    """t9: one referrer manifest listing the same blob as 50 layers (the red team used an
    8 MiB blob, 120 times): each copy used to be downloaded and held."""
    reg, digest = image
    client, target = _target(reg, digest)
    made = _signed(digest)
    if kind == "bundle":
        data, media_type, artifact_type = made.bundles[0].data, BUNDLE_MEDIA_TYPE, BUNDLE_MEDIA_TYPE
    else:
        data, media_type = made.envelope.to_json(), DSSE_LAYER_MEDIA_TYPE
        artifact_type = INTOTO_ARTIFACT_TYPE
    layer = {"mediaType": media_type, "size": len(data), "digest": reg.put_blob("app", data)}
    empty = {"mediaType": EMPTY_MEDIA_TYPE, "size": 2, "digest": reg.put_blob("app", b"{}")}
    reg.put_manifest(
        "app",
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": artifact_type,
            "config": empty,
            "layers": [layer] * 50,
            "subject": reg.descriptor("app", digest),
        },
    )
    reg.requests.clear()
    found = discover(client, target)
    assert _blob_gets(reg) == [f"/v2/app/blobs/{layer['digest']}"]
    assert len(found.candidates) == 1
    assert verify_image(target, found, _root(0)).passed


# --- 5. other tools' referrers neither count nor block -------------------------------------------


def test_three_hundred_unrelated_referrers_do_not_hide_the_attestation(
    image: tuple[FakeRegistry, str],
) -> None:
    """t4: more than Limits.max_referrers (256) referrers of another type, listed before the
    attestation, used to fail verify and attach."""
    reg, digest = image
    client, target = _target(reg, digest)
    for number in range(300):
        reg.push_artifact("app", digest, SBOM, payload=b"sbom %d" % number)
    sboms = {e["digest"] for e in reg.referrers_of("app", digest)}
    bundle = _signed(digest).bundles[0].data
    assert attach_bundle(client, target, bundle, PREDICATE_TYPE).new
    reg.requests.clear()
    outcome = verify_image(target, discover(client, target), _root(0))
    assert outcome.passed, outcome.to_dict()
    assert outcome.problems == ()
    read = [p for m, p, _ in reg.requests if m == "GET" and "/manifests/" in p]
    assert not any(p.rsplit("/", 1)[1] in sboms for p in read)  # no SBOM manifest was read
    second = _signed(digest, "another statement", key=1).bundles[0].data
    assert attach_bundle(client, target, second, PREDICATE_TYPE).new


def test_attaching_again_past_many_unrelated_referrers_adds_nothing(
    image: tuple[FakeRegistry, str],
) -> None:
    """Attaching is idempotent (a bundle already listed is not pushed again), also when other
    tools' referrers fill the first Limits.max_referrers entries of the listing (here 3 of 5,
    for speed; by default 256 of 300)."""
    reg, digest = image
    client = RegistryClient(
        parse_reference(f"{reg.host}/app@{digest}"), insecure=True, limits=Limits(max_referrers=3)
    )
    target = resolve(client)
    for number in range(5):
        reg.push_artifact("app", digest, SBOM, payload=b"sbom %d" % number)
    bundle = _signed(digest).bundles[0].data
    first = attach_bundle(client, target, bundle, PREDICATE_TYPE)
    again = attach_bundle(client, target, bundle, PREDICATE_TYPE)
    assert (first.new, again.new) == (True, False)
    assert again.manifest_digest == first.manifest_digest


_UNREADABLE = {
    "65-annotations": {"annotations": {f"k{i}": "v" for i in range(65)}},
    "sha512-digest": {"digest": "sha512:" + "ab" * 64},
    "300-char-artifactType": {"artifactType": "application/vnd." + "x" * 290},
}


@pytest.mark.parametrize("oddity", list(_UNREADABLE.values()), ids=list(_UNREADABLE))
def test_an_unreadable_listing_entry_is_skipped(
    image: tuple[FakeRegistry, str], monkeypatch: pytest.MonkeyPatch, oddity: dict[str, Any]
) -> None:
    """t5b: one entry, valid OCI but outside what dssesign reads, used to fail the listing."""
    reg, digest = image
    client, target = _target(reg, digest)
    attach_bundle(client, target, _signed(digest).bundles[0].data, PREDICATE_TYPE)
    extra = {
        "mediaType": MANIFEST_MEDIA_TYPE,
        "digest": "sha256:" + "0" * 64,
        "size": 10,
        "artifactType": SBOM,
        **oddity,
    }
    listed = reg.referrers_of
    monkeypatch.setattr(reg, "referrers_of", lambda repo, d: [extra, *listed(repo, d)])
    outcome = verify_image(target, discover(client, target), _root(0))
    assert outcome.passed, outcome.to_dict()
    assert [p.message for p in outcome.problems] == [
        "1 referrer listing entries could not be read and were skipped"
    ]
    second = _signed(digest, "another statement").bundles[0].data
    assert attach_bundle(client, target, second, PREDICATE_TYPE).new


def test_a_bundle_referrer_with_65_annotations_blocks_nothing(
    image: tuple[FakeRegistry, str],
) -> None:
    """t5: a bundle-typed referrer with 65 annotations (valid OCI) used to block every attach."""
    reg, digest = image
    client, target = _target(reg, digest)
    many = {f"k{i}": "v" for i in range(65)}
    reg.push_artifact("app", digest, BUNDLE_MEDIA_TYPE, annotations=many)
    assert attach_bundle(client, target, _signed(digest).bundles[0].data, PREDICATE_TYPE).new
    assert verify_image(target, discover(client, target), _root(0)).passed


# --- 6. a deeply nested payload in download / kit build -------------------------------------------


def test_download_and_kit_skip_a_deeply_nested_payload(
    cli: Cli, image: tuple[FakeRegistry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """t3: a legacy layer whose payload is "[" * 200000 used to crash download / kit build."""
    reg, digest = image
    ref = f"{reg.host}/app@{digest}"
    client, target = _target(reg, digest)
    made = _signed(digest)
    attach_bundle(client, target, made.bundles[0].data, PREDICATE_TYPE)
    deep = b"[" * 200_000
    evil = json.dumps(
        {
            "payload": _b64(deep),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"keyid": "", "sig": _b64(b"x" * 64)}],
        }
    ).encode()
    attach_legacy(client, target, evil, PREDICATE_TYPE)
    run = cli("download", "--image", ref, INSECURE, "--out", "dl")
    assert run.code == 0, run
    assert "internal error" not in run.err
    evil_name = hashlib.sha256(deep).hexdigest()[:16]
    assert f"skipped attestation {evil_name}" in run.err, run.err
    genuine = hashlib.sha256(made.envelope.payload).hexdigest()[:16]
    names = sorted(p.name for p in Path("dl").iterdir())
    assert f"attestation-{genuine}.dsse.json" in names and len(names) == 2, names
    assert not any(evil_name in name for name in names)
    # kit build --image downloads the same way; the kit itself (pip wheels, ~15 s) is not
    # what this is about, so build_kit only records what it was given.
    given: dict[str, bytes] = {}

    def build_kit(trust_root: str, out: str, attestations: list[str], *rest: Any, **kw: Any) -> Any:
        given.update({Path(a).name: Path(a).read_bytes() for a in attestations})
        return SimpleNamespace(out_dir=out, attestations=attestations, bundles=[])

    monkeypatch.setattr("dssesign.kit.build_kit", build_kit)
    run = cli("kit", "build", "--trust-root", "root.json", "--out", "kit", "--image", ref, INSECURE)
    assert run.code == 0, run
    assert "internal error" not in run.err
    assert f"skipped attestation {evil_name}" in run.err, run.err
    assert sorted(given) == names


# --- 7. hostile answers are registry errors, never crashes ---------------------------------------

_MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": "a", "digest": "sha256:" + "0" * 64, "size": 1},
        "layers": [],
    }
).encode()


def _nested_manifest(h: BaseHTTPRequestHandler) -> None:
    reply(h, 200, b"[" * 60_000)  # and no Content-Type: the media type is guessed from it


def _nested_503(h: BaseHTTPRequestHandler) -> None:
    reply(h, 503, b"[" * 60_000, [("Content-Type", "application/json")])


def _nested_token(h: BaseHTTPRequestHandler) -> None:
    if h.path.startswith("/token"):
        reply(h, 200, b"[" * 100_000, [("Content-Type", "application/json")])
    else:
        realm = f'Bearer realm="http://{h.headers["Host"]}/token",service="x"'
        reply(h, 401, b"", [("WWW-Authenticate", realm)])


def _bad_redirect(h: BaseHTTPRequestHandler) -> None:
    reply(h, 307, b"", [("Location", "http://[oops/x")])


def _bad_link(h: BaseHTTPRequestHandler) -> None:
    if "/manifests/" in h.path:
        reply(h, 200, _MANIFEST, [("Content-Type", MANIFEST_MEDIA_TYPE)])
    else:
        index = b'{"schemaVersion":2,"manifests":[]}'
        link = '<http://[oops/v2/x>; rel="next"'
        reply(h, 200, index, [("Content-Type", INDEX_MEDIA_TYPE), ("Link", link)])


def _bad_realm(h: BaseHTTPRequestHandler) -> None:
    reply(h, 401, b"", [("WWW-Authenticate", 'Bearer realm="https://[oops/token",service="x"')])


def _superscript_length(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", MANIFEST_MEDIA_TYPE)
    h.send_header("Content-Length", "\xb2")  # "²": str.isdigit() says yes, int() says no
    h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(_MANIFEST)
    h.close_connection = True


_HOSTILE = {
    "no-content-type-nested-manifest": (_nested_manifest, Code.REGISTRY_CONTENT_INVALID),
    "503-nested-error-body": (_nested_503, Code.REGISTRY_UNAVAILABLE),
    "token-nested-body": (_nested_token, Code.REGISTRY_UNAVAILABLE),
    "redirect-to-malformed-url": (_bad_redirect, Code.REGISTRY_CONTENT_INVALID),
    "link-to-malformed-url": (_bad_link, Code.REGISTRY_CONTENT_INVALID),
    "realm-malformed-url": (_bad_realm, Code.REGISTRY_UNAUTHORIZED),
    "content-length-superscript-two": (_superscript_length, None),
}


@pytest.mark.parametrize(("answer", "code"), list(_HOSTILE.values()), ids=list(_HOSTILE))
def test_a_hostile_answer_is_a_registry_error(
    cli: Cli, answer: Callable[[BaseHTTPRequestHandler], None], code: Code | None
) -> None:
    """t12, t13, t13b, t22, t22b: each used to end in `internal error` (RecursionError,
    ValueError from urllib.parse or int())."""
    with HostileServer(answer) as server:
        client = RegistryClient(parse_reference(f"{server.host}/app:latest"), insecure=True)

        def look() -> None:
            target = resolve(client, allow_tag=True)
            verify_image(target, discover(client, target), _root(0))

        if code is None:  # the manifest is served whole: what follows may fail, but cleanly
            with pytest.raises(RegistryError) as caught:
                look()
            assert caught.value.code.name.startswith("REGISTRY_"), caught.value
            fetched = client.get_manifest("latest", what="the manifest")
            assert fetched is not None and fetched.data == _MANIFEST
        else:
            _raises(code, look)
        run = cli(
            "verify", "--image", f"{server.host}/app:latest", "--resolve-tag", INSECURE,
            "--trust-root", "root.json",
        )  # fmt: skip
        _clean_failure(run)


def _upload_to_malformed_location(h: BaseHTTPRequestHandler) -> None:
    """t22c: a registry that serves the image, then starts an upload at http://[oops/."""
    if h.command == "HEAD":
        reply(h, 404)
    elif h.command == "POST":
        reply(h, 202, b"", [("Location", "http://[oops/upload")])
    elif "/referrers/" in h.path:
        reply(h, 200, b'{"schemaVersion":2,"manifests":[]}', [("Content-Type", INDEX_MEDIA_TYPE)])
    elif "/manifests/" in h.path:
        reply(h, 200, _MANIFEST, [("Content-Type", MANIFEST_MEDIA_TYPE)])
    else:
        reply(h, 404)


def _attest_image(cli: Cli, ref: str) -> Run:
    return cli(
        "attest", "--image", ref, "--resolve-tag", INSECURE, "--key", "a.key", "--type", "custom",
        "--predicate", "predicate.txt", "--out", "env.json", "--bundle-dir", "bundles",
    )  # fmt: skip


def test_attest_image_keeps_its_outputs_when_the_upload_location_is_malformed(cli: Cli) -> None:
    with HostileServer(_upload_to_malformed_location) as server:
        run = _attest_image(cli, f"{server.host}/app:latest")
    line = _clean_failure(run)
    assert "signed and written, but not attached" in line, line
    assert Path("env.json").is_file() and len(list(Path("bundles").iterdir())) == 1


def test_attest_image_keeps_its_outputs_whatever_fails_in_attaching(
    cli: Cli, image: tuple[FakeRegistry, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reg, _ = image

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("not a registry error at all")

    monkeypatch.setattr("dssesign.oci.attach_bundle", broken)
    run = _attest_image(cli, f"{reg.host}/app:v1")
    line = _clean_failure(run)
    assert "signed and written, but not attached" in line, line
    assert Path("env.json").is_file()


# --- 8. two signatures under one keyid in download -----------------------------------------------


def test_download_names_bundles_by_signature_when_a_keyid_is_named_twice(
    cli: Cli, image: tuple[FakeRegistry, str]
) -> None:
    """t11: a junk bundle of the same payload carrying the genuine keyid hint used to fail
    download with "named twice"."""
    reg, digest = image
    client, target = _target(reg, digest)
    made = _signed(digest)
    genuine = made.bundles[0].data
    junk_signature = b"\x01" * 64
    attach_bundle(client, target, genuine, PREDICATE_TYPE)
    attach_bundle(client, target, _with_signature(genuine, junk_signature), PREDICATE_TYPE)
    run = cli("download", "--image", f"{reg.host}/app@{digest}", INSECURE, "--out", "dl")
    assert run.code == 0, run
    stem = "attestation-" + hashlib.sha256(made.envelope.payload).hexdigest()[:16]
    files = {p.name: p.read_bytes() for p in Path("dl").iterdir()}
    real_signature = made.envelope.signatures[0].sig
    expected = {
        f"{stem}.dsse.json",
        *(
            f"{stem}.sig-{hashlib.sha256(s).hexdigest()[:16]}.sigstore.json"
            for s in (real_signature, junk_signature)
        ),
    }
    assert set(files) == expected, sorted(files)
    assert genuine in files.values()


# --- 9. a slow-loris body ------------------------------------------------------------------------


def _trickle(length: int, stop: threading.Event) -> Callable[[BaseHTTPRequestHandler], None]:
    """Headers at once (Content-Length `length`), then one byte every 0.3 s until `stop`."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", MANIFEST_MEDIA_TYPE)
        h.send_header("Content-Length", str(length))
        h.end_headers()
        h.wfile.flush()
        for _ in range(length):
            if stop.wait(0.3):
                h.close_connection = True
                return
            h.wfile.write(b" ")
            h.wfile.flush()

    return answer


def test_a_trickled_body_is_cut_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """t10: one byte every 0.3 s; each socket read is within the read timeout, so only an
    overall deadline per body ends it (here 1 s instead of 120 s), however long the body:
    100 bytes would take 30 s."""
    monkeypatch.setattr(oci_transport, "_BODY_DEADLINE_S", 1.0)
    stop = threading.Event()
    outcome: list[BaseException | None] = []

    with HostileServer(_trickle(100, stop)) as server:
        client = RegistryClient(parse_reference(f"{server.host}/app:latest"), insecure=True)

        def fetch() -> None:
            try:
                client.get_manifest("latest", what="X")
            except BaseException as exc:  # judged by the main thread
                outcome.append(exc)
            else:
                outcome.append(None)

        worker = threading.Thread(target=fetch, daemon=True)
        worker.start()
        worker.join(3.0)
        ended_in_time = not worker.is_alive()
        stop.set()  # the server hangs up: the worker ends either way
        worker.join(10.0)
    assert ended_in_time, "still reading the trickled body 3 s after a 1 s deadline"
    error = outcome[0]
    assert isinstance(error, RegistryError), outcome
    assert error.code is Code.REGISTRY_UNAVAILABLE, error
    assert "took over 1 s to send X" in str(error), error


# --- 10. an expired bearer token ----------------------------------------------------------------


def test_an_expired_token_is_fetched_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """t20: the registry forgets the token after the referrers listing (it expired)."""
    with FakeRegistry(auth="bearer", credentials=None) as reg:
        digest = reg.push_image("app")
        client, target = _target(reg, digest)
        attach_bundle(client, target, _signed(digest).bundles[0].data, PREDICATE_TYPE)
        original = oci_fake._Handler._referrers

        def referrers(handler: Any, name: str, subject: str, query: dict[str, str]) -> None:
            original(handler, name, subject, query)
            handler.server.registry.tokens.clear()  # the token expired

        monkeypatch.setattr(oci_fake._Handler, "_referrers", referrers)
        reg.requests.clear()
        outcome = verify_image(target, discover(client, target), _root(0))
        assert outcome.passed, outcome.to_dict()
        assert len([p for _, p, _ in reg.requests if p.startswith("/token")]) >= 1


def test_a_token_that_never_works_is_fetched_again_only_once() -> None:
    class Forgetful(set[str]):
        def add(self, element: str) -> None:
            pass  # every token is refused

    with FakeRegistry(auth="bearer", credentials=None) as reg:
        digest = reg.push_image("app")
        reg.tokens = Forgetful()
        _raises(Code.REGISTRY_UNAUTHORIZED, resolve, _client(reg, digest))
        assert len([p for _, p, _ in reg.requests if p.startswith("/token")]) == 1


# --- 11. attach --legacy-tag with an odd local bundle -------------------------------------------

_ODD_MATERIAL: dict[str, Any] = {
    "certificate-is-a-string": {"certificate": "x"},
    "rawBytes-not-base64": {"certificate": {"rawBytes": "!!!"}},
    "rawBytes-not-DER": {"certificate": {"rawBytes": _b64(b"hello")}},
    "verificationMaterial-is-a-list": [],
    "verificationMaterial-is-a-string": "x",
    "rfc3161Timestamps-is-a-dict": {
        "publicKey": {"hint": "x"},
        "timestampVerificationData": {"rfc3161Timestamps": {"a": 1}},
    },
}


@pytest.mark.parametrize("material", list(_ODD_MATERIAL.values()), ids=list(_ODD_MATERIAL))
def test_attach_legacy_with_an_odd_bundle_is_a_usage_error(
    cli: Cli, image: tuple[FakeRegistry, str], material: Any
) -> None:
    """t14: the bundle's verificationMaterial (read for cosign's legacy annotations) used to
    crash attach --legacy-tag."""
    reg, digest = image
    made = _signed(digest)
    Path("env.json").write_bytes(made.envelope.to_json())
    document = json.loads(made.bundles[0].data)
    document["verificationMaterial"] = material
    Path("odd.sigstore.json").write_text(json.dumps(document))
    ref = f"{reg.host}/app@{digest}"
    run = cli("attach", "--image", ref, INSECURE, "--legacy-tag", "env.json", "odd.sigstore.json")
    line = _clean_failure(run, code=2)
    assert "bundle:" in line, line
    assert _writes(reg) == []


# --- 12. old cosign's tag-schema entries ----------------------------------------------------------


def test_an_old_cosign_tag_schema_entry_is_recognised() -> None:
    """t21: go-containerregistry <= v0.21.5 (cosign <= v3.0.6) lists a referrer in the tag
    schema under its config media type (the empty descriptor's), without annotations."""
    with FakeRegistry(referrers=False) as reg:
        digest = reg.push_image("app")
        client, target = _target(reg, digest)
        bundle = _signed(digest).bundles[0].data
        reg.put_blob("app", b"{}")
        reg.put_blob("app", bundle)
        data, _ = bundle_referrer(bundle, PREDICATE_TYPE, target.descriptor, "2024-01-01T00:00:00Z")
        referrer = reg.put_manifest("app", data, MANIFEST_MEDIA_TYPE)
        entry = {
            "mediaType": MANIFEST_MEDIA_TYPE,
            "size": len(data),
            "digest": referrer,
            "artifactType": EMPTY_MEDIA_TYPE,
        }
        index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [entry]}
        reg.put_manifest(
            "app", json.dumps(index, separators=(",", ":")).encode(), tag=referrers_tag(digest)
        )
        found = discover(client, target)
        assert found.referrers_source == "referrers-tag"
        assert [c.manifest_digest for c in found.candidates] == [referrer]
        assert verify_image(target, found, _root(0)).passed


def test_an_untyped_entry_that_is_not_an_attestation_is_ignored() -> None:
    """The other side of finding 12: an entry listed as the empty type whose manifest is no
    attestation (an old tool's SBOM, say) is read and quietly left alone."""
    with FakeRegistry(referrers=False) as reg:
        digest = reg.push_image("app")
        client, target = _target(reg, digest)
        other = reg.push_artifact("app", digest, None, payload=b"an sbom")
        body, _ = reg.repo("app").manifests[other]
        entry = {
            "mediaType": MANIFEST_MEDIA_TYPE,
            "size": len(body),
            "digest": other,
            "artifactType": EMPTY_MEDIA_TYPE,
        }
        index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [entry]}
        reg.put_manifest("app", index, tag=referrers_tag(digest))
        found = discover(client, target)
        assert (found.candidates, found.problems) == ((), ())
