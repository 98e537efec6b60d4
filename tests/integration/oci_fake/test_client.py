"""The OCI registry client (dssesign.oci) against the in-process fake registry, fault by fault.

Every registry answer is untrusted: these tests make the fake lie (tampered bytes, oversize
bodies, referrers about another image, redirects to another host, outages) and check that the
client refuses the lie with the right code, keeps going where one bad referrer should not stop
verification, and never hands credentials to anyone but the registry.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3

from dssesign import trust as tr
from dssesign.codes import Code
from dssesign.errors import ConfigError, RegistryError
from dssesign.intoto.statement import ResourceDescriptor
from dssesign.limits import Limits
from dssesign.oci import (
    RegistryClient,
    Target,
    attach_bundle,
    attach_legacy,
    discover,
    group_candidates,
    parse_reference,
    resolve,
    verify_image,
)
from dssesign.oci.layout import (
    BUNDLE_MEDIA_TYPE,
    bundle_referrer,
    digest_of,
    parse_index,
    referrers_tag,
)
from dssesign.sign.attest import AttestResult, attest
from tests.conftest import signer_for
from tests.oci_fake import FakeRegistry, Framing

PREDICATE_TYPE = "https://cosign.sigstore.dev/attestation/v1"
PASSWORD = "fakepass"


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DOCKER_CONFIG: never the developer's ~/.docker; tests write config.json here."""
    directory = tmp_path / "docker"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


def _login(directory: Path, host: str, user: str = "fakeuser", password: str = PASSWORD) -> None:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


def _client(reg: FakeRegistry, reference: str, **kwargs: Any) -> RegistryClient:
    return RegistryClient(parse_reference(f"{reg.host}/app{reference}"), insecure=True, **kwargs)


def _target(reg: FakeRegistry, digest: str) -> tuple[RegistryClient, Target]:
    client = _client(reg, f"@{digest}")
    return client, resolve(client)


def _signed(digest: str, note: str = "hello", key: int = 0) -> AttestResult:
    subject = ResourceDescriptor(name="app", digest={"sha256": digest.removeprefix("sha256:")})
    return attest([subject], note.encode(), "custom", keys=[signer_for("ed25519", key)])


def _root(*keys: int, threshold: int = 1) -> tr.TrustRoot:
    root = tr.init_trust_root(threshold=threshold, now=datetime.now(UTC) - timedelta(days=1))
    for key in keys:
        root = tr.add_key(root, signer_for("ed25519", key).public_key)
    return root


def _raises(code: Code, call: Any, *args: Any, **kwargs: Any) -> RegistryError:
    with pytest.raises(RegistryError) as caught:
        call(*args, **kwargs)
    assert caught.value.code is code, caught.value
    return caught.value


def _puts(reg: FakeRegistry) -> list[str]:
    return [path for method, path, _ in reg.requests if method in ("PUT", "POST", "PATCH")]


@pytest.fixture
def image(fake_registry: FakeRegistry) -> Iterator[tuple[FakeRegistry, str]]:
    yield fake_registry, fake_registry.push_image("app", tag="v1")


# --- attaching ----------------------------------------------------------------------------------


def test_bundle_goes_through_the_referrers_api(image: tuple[FakeRegistry, str]) -> None:
    reg, digest = image
    client, target = _target(reg, digest)
    bundle = _signed(digest).bundles[0].data
    attached = attach_bundle(client, target, bundle, PREDICATE_TYPE)
    assert (attached.layout, attached.new, attached.tag) == ("referrers-api", True, None)
    listing = client.referrers(digest, what="referrers")
    assert listing is not None
    assert [(e.digest, e.artifact_type) for e in listing.manifests] == [
        (attached.manifest_digest, BUNDLE_MEDIA_TYPE)
    ]
    manifest = client.manifest(attached.manifest_digest, what="referrer")
    assert manifest.subject is not None and manifest.subject.digest == digest
    assert [layer.digest for layer in manifest.layers] == [digest_of(bundle)]
    assert reg.repo("app").blobs[digest_of(bundle)] == bundle
    assert referrers_tag(digest) not in reg.repo("app").tags  # no tag-schema fallback


def test_without_the_api_it_lands_in_the_tag_index() -> None:
    with FakeRegistry(referrers=False) as reg:
        digest = reg.push_image("app")
        client, target = _target(reg, digest)
        attached = attach_bundle(client, target, _signed(digest).bundles[0].data, PREDICATE_TYPE)
        tag = "sha256-" + digest.removeprefix("sha256:")
        assert (attached.layout, attached.tag) == ("referrers-tag", tag)
        assert client.referrers(digest, what="referrers") is None
        index = client.index(tag, what="tag index")
        assert index is not None
        assert [(e.digest, e.artifact_type) for e in index.manifests] == [
            (attached.manifest_digest, BUNDLE_MEDIA_TYPE)
        ]
        found = discover(client, target)
        assert found.referrers_source == "referrers-tag"
        assert [c.manifest_digest for c in found.candidates] == [attached.manifest_digest]


@pytest.mark.parametrize("referrers", [True, False], ids=["api", "tag-schema"])
def test_attaching_twice_adds_nothing(referrers: bool) -> None:
    with FakeRegistry(referrers=referrers) as reg:
        digest = reg.push_image("app")
        client, target = _target(reg, digest)
        bundle = _signed(digest).bundles[0].data
        first = attach_bundle(client, target, bundle, PREDICATE_TYPE)
        writes = len(_puts(reg))
        again = attach_bundle(client, target, bundle, PREDICATE_TYPE)
        assert (first.new, again.new) == (True, False)
        assert again.manifest_digest == first.manifest_digest
        assert len(_puts(reg)) == writes  # nothing pushed the second time
        found = discover(client, target)
        assert [c.manifest_digest for c in found.candidates] == [first.manifest_digest]


def test_referrers_pagination_finds_every_page() -> None:
    with FakeRegistry(page_size=2) as reg:
        digest = reg.push_image("app")
        client, target = _target(reg, digest)
        made = {
            attach_bundle(
                client, target, _signed(digest, f"n{i}").bundles[0].data, "t"
            ).manifest_digest
            for i in range(5)
        }
        listing = client.referrers(digest, what="referrers")
        entries = listing.manifests if listing is not None else ()
        assert {e.digest for e in entries} == made and len(entries) == 5
        pages = [p for m, p, _ in reg.requests if m == "GET" and f"/referrers/{digest}" in p]
        assert any("cursor=4" in p for p in pages), pages  # the third page was fetched
        assert {c.manifest_digest for c in discover(client, target).candidates} == made


def test_concurrent_writers_all_land_in_the_tag_index() -> None:
    """8 writers read-modify-write one tag index at once; the re-read loop keeps every entry."""
    with FakeRegistry(referrers=False) as reg:
        reg.slow = 0.01
        digest = reg.push_image("app")
        _, target = _target(reg, digest)
        start = threading.Barrier(8)

        def writer(number: int) -> str:
            client = _client(reg, f"@{digest}")  # one client each, as separate processes
            bundle = json.dumps({"writer": number}).encode()
            start.wait()
            return attach_bundle(client, target, bundle, PREDICATE_TYPE).manifest_digest

        with ThreadPoolExecutor(8) as pool:
            written = set(pool.map(writer, range(8)))
        assert len(written) == 8
        tag = referrers_tag(digest)
        body, _ = reg.repo("app").manifests[reg.repo("app").tags[tag]]
        listed = [e.digest for e in parse_index(body, digest_of(body), what="idx").manifests]
        assert sorted(listed) == sorted(written)
        index_puts = [p for p in _puts(reg) if p.endswith(f"/manifests/{tag}")]
        assert len(index_puts) >= 8


def test_legacy_attestation_is_idempotent_and_discovered(image: tuple[FakeRegistry, str]) -> None:
    reg, digest = image
    client, target = _target(reg, digest)
    envelope = _signed(digest).envelope.to_json()
    first = attach_legacy(client, target, envelope, PREDICATE_TYPE)
    again = attach_legacy(client, target, envelope, PREDICATE_TYPE)
    assert (first.layout, first.tag) == ("legacy-tag", f"{referrers_tag(digest)}.att")
    assert (first.new, again.new, again.manifest_digest) == (True, False, first.manifest_digest)
    found = discover(client, target)
    assert [(c.source, c.kind, c.data) for c in found.candidates] == [
        ("legacy-tag", "envelope", envelope)
    ]
    assert verify_image(target, found, _root(0)).passed


# --- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_credentials_from_docker_config(auth: Any, docker_config: Path) -> None:
    with FakeRegistry(auth=auth) as reg:
        digest = reg.push_image("app")
        _login(docker_config, reg.host)
        client, target = _target(reg, digest)
        bundle = _signed(digest).bundles[0].data
        assert attach_bundle(client, target, bundle, PREDICATE_TYPE).new
        assert len(discover(client, target).candidates) == 1
        v2 = [h.get("authorization", "") for _, p, h in reg.requests if p.startswith("/v2/")]
        if auth == "bearer":
            tokens = [h for _, p, h in reg.requests if p.startswith("/token")]
            assert tokens and all(h["authorization"].startswith("Basic ") for h in tokens)
            # The password goes to the token realm only, never to the registry API.
            assert not any(a.startswith("Basic") for a in v2)
            assert any(a.startswith("Bearer ") for a in v2)
        else:
            assert any(a.startswith("Basic ") for a in v2)


def test_a_registry_token_is_used_as_is(docker_config: Path) -> None:
    with FakeRegistry(auth="bearer", credentials=None) as reg:
        digest = reg.push_image("app")
        reg.tokens.add("pre-issued-token")
        entry = {"registrytoken": "pre-issued-token"}
        (docker_config / "config.json").write_text(json.dumps({"auths": {reg.host: entry}}))
        assert resolve(_client(reg, f"@{digest}")).digest == digest
        assert [h["authorization"] for _, _, h in reg.requests] == ["Bearer pre-issued-token"]


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_wrong_credentials_are_unauthorized_without_the_password(
    auth: Any, docker_config: Path
) -> None:
    wrong = "Wr0ng-Passw0rd-Secret"
    with FakeRegistry(auth=auth) as reg:
        digest = reg.push_image("app")
        _login(docker_config, reg.host, password=wrong)
        client = _client(reg, f"@{digest}")
        error = _raises(Code.REGISTRY_UNAUTHORIZED, client.get_manifest, digest, what="image")
        message = str(error)
        assert wrong not in message and base64.b64encode(wrong.encode()).decode() not in message
        assert "config.json auths" in message  # says which credentials were refused


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_anonymous_is_unauthorized_and_says_so(auth: Any) -> None:
    with FakeRegistry(auth=auth) as reg:
        digest = reg.push_image("app")
        error = _raises(Code.REGISTRY_UNAUTHORIZED, resolve, _client(reg, f"@{digest}"))
        assert "no credentials" in str(error) and "DOCKER_CONFIG" in str(error)


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_redirect_to_another_host_drops_authorization(auth: Any, docker_config: Path) -> None:
    with FakeRegistry(auth=auth) as reg:
        digest = reg.push_image("app")
        _login(docker_config, reg.host)
        client = _client(reg, f"@{digest}")
        layer = client.manifest(digest, what="image").layers[0]
        reg.redirect_blobs, reg.redirect_host = True, "localhost"
        data = client.get_blob(layer, limit=1 << 20, what="layer")
        assert data == reg.repo("app").blobs[layer.digest]
        blob_gets = [h for m, p, h in reg.requests if p == f"/v2/app/blobs/{layer.digest}"]
        redirected = [(p, h) for _, p, h in reg.requests if p.startswith("/_blobstore/")]
        assert blob_gets and "authorization" in blob_gets[-1]  # the registry got credentials
        assert len(redirected) == 1
        _, headers = redirected[0]
        assert headers["host"].startswith("localhost:")  # the other origin was reached...
        assert "authorization" not in headers, headers  # ...without them


def test_redirect_within_the_origin_keeps_authorization(docker_config: Path) -> None:
    with FakeRegistry(auth="bearer") as reg:
        digest = reg.push_image("app")
        _login(docker_config, reg.host)
        client = _client(reg, f"@{digest}")
        layer = client.manifest(digest, what="image").layers[0]
        reg.redirect_blobs = True  # to 127.0.0.1:<same port>: the registry's own origin
        assert client.get_blob(layer, limit=1 << 20, what="layer")
        redirected = [h for _, p, h in reg.requests if p.startswith("/_blobstore/")]
        assert len(redirected) == 1 and redirected[0]["authorization"].startswith("Bearer ")


# --- content the registry lies about --------------------------------------------------------------


def test_tampered_blob_is_a_problem_and_the_others_still_verify(
    image: tuple[FakeRegistry, str],
) -> None:
    reg, digest = image
    client, target = _target(reg, digest)
    bad = _signed(digest, "first").bundles[0].data
    good = _signed(digest, "second").bundles[0].data
    bad_ref = attach_bundle(client, target, bad, PREDICATE_TYPE).manifest_digest
    good_ref = attach_bundle(client, target, good, PREDICATE_TYPE).manifest_digest
    reg.tamper_blobs.add(digest_of(bad))
    found = discover(client, target)
    assert [c.manifest_digest for c in found.candidates] == [good_ref]
    assert [(p.digest, p.code) for p in found.problems] == [
        (bad_ref, Code.REGISTRY_CONTENT_INVALID)
    ]
    assert digest_of(bad) in found.problems[0].message
    outcome = verify_image(target, found, _root(0))
    assert outcome.passed and len(outcome.outcomes) == 1
    assert outcome.to_dict()["problems"][0]["code"] == "REGISTRY_CONTENT_INVALID"


def test_tampered_legacy_layer_is_a_problem(image: tuple[FakeRegistry, str]) -> None:
    reg, digest = image
    client, target = _target(reg, digest)
    bad, good = (_signed(digest, n).envelope.to_json() for n in ("a", "b"))
    for envelope in (bad, good):
        attach_legacy(client, target, envelope, PREDICATE_TYPE)
    reg.tamper_blobs.add(digest_of(bad))
    found = discover(client, target)
    assert [c.data for c in found.candidates] == [good]
    assert [(p.source, p.digest, p.code) for p in found.problems] == [
        ("legacy-tag", digest_of(bad), Code.REGISTRY_CONTENT_INVALID)
    ]


def test_tampered_manifest_by_digest_is_refused(image: tuple[FakeRegistry, str]) -> None:
    reg, digest = image
    client, target = _target(reg, digest)
    referrer = attach_bundle(client, target, _signed(digest).bundles[0].data, PREDICATE_TYPE)
    reg.tamper_manifests.update({digest, referrer.manifest_digest})
    error = _raises(Code.REGISTRY_CONTENT_INVALID, client.get_manifest, digest, what="image X")
    assert f"not {digest}" in str(error)
    _raises(Code.REGISTRY_CONTENT_INVALID, resolve, _client(reg, f"@{digest}"))
    found = discover(client, target)  # a tampered referrer is one problem, not a crash
    assert found.candidates == ()
    assert [(p.digest, p.code) for p in found.problems] == [
        (referrer.manifest_digest, Code.REGISTRY_CONTENT_INVALID)
    ]
    assert not verify_image(target, found, _root(0)).passed


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_oversize_manifest_is_refused_without_reading_it_all(
    image: tuple[FakeRegistry, str], framing: Framing, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg, digest = image
    limit, chunk = 256 * 1024, 256 * 1024
    client = _client(reg, f"@{digest}", limits=Limits(max_manifest_bytes=limit))
    reg.oversize_manifest, reg.oversize_framing, reg.oversize_bytes = True, framing, 8 << 20
    read = 0

    def counted(method: str) -> Any:
        original = getattr(urllib3.response.HTTPResponse, method)

        def counting(self: Any, *args: Any, **kwargs: Any) -> bytes:
            nonlocal read
            data: bytes = original(self, *args, **kwargs)
            read += len(data)
            return data

        return counting

    for method in ("read", "read1"):  # the transport reads with read1 (what has arrived)
        monkeypatch.setattr(urllib3.response.HTTPResponse, method, counted(method))
    error = _raises(Code.REGISTRY_CONTENT_INVALID, client.get_manifest, digest, what="image X")
    assert "over the limit" in str(error) and "image X" in str(error)
    assert read <= limit + chunk, read
    if framing == "length":
        assert read == 0  # a truthful Content-Length is refused before any byte
    else:
        assert read > limit  # (the counter counts: without a length it had to read past it)


def test_a_layer_claiming_a_huge_size_is_never_fetched(image: tuple[FakeRegistry, str]) -> None:
    reg, digest = image
    client, target = _target(reg, digest)
    layer = {"mediaType": BUNDLE_MEDIA_TYPE, "size": 1 << 40, "digest": "sha256:" + "e" * 64}
    config = {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "size": 2,
        "digest": digest_of(b"{}"),
    }
    liar = reg.put_manifest(
        "app",
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": BUNDLE_MEDIA_TYPE,
            "config": config,
            "layers": [layer],
            "subject": reg.descriptor("app", digest),
        },
    )
    found = discover(client, target)
    # Refused on the size it claims, before any byte of it is asked for.
    assert [p.code for p in found.problems] == [Code.REGISTRY_CONTENT_INVALID]
    assert found.problems[0].digest in (liar, layer["digest"])
    assert "over the" in found.problems[0].message
    assert not any("/blobs/" in path for _, path, _ in reg.requests)


_GOOD_MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "a", "size": 2, "digest": "sha256:" + "1" * 64},
        "layers": [],
    }
).encode()


class _SlowBody(BaseHTTPRequestHandler):
    """Headers at once, the body half a second later, as over a slow link: /big is 1 MiB."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        with contextlib.suppress(OSError):  # the client hung up: expected once it refuses
            super().handle()

    def do_GET(self) -> None:
        big = self.path.endswith("/big")
        body = b" " * (1 << 20) if big else _GOOD_MANIFEST
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        if big:
            time.sleep(0.5)
        self.wfile.write(body)


def test_a_refused_body_does_not_poison_the_next_request() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowBody)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ref = parse_reference(f"127.0.0.1:{server.server_address[1]}/app:v1")
        client = RegistryClient(ref, insecure=True, limits=Limits(max_manifest_bytes=64 * 1024))
        _raises(Code.REGISTRY_CONTENT_INVALID, client.get_manifest, "big", what="big")
        fetched = client.get_manifest("v1", what="the next manifest")
        assert fetched is not None and fetched.data == _GOOD_MANIFEST
    finally:
        server.shutdown()
        server.server_close()


def test_a_lying_referrer_never_reaches_grouping(image: tuple[FakeRegistry, str]) -> None:
    reg, digest = image
    client, target = _target(reg, digest)
    genuine = attach_bundle(client, target, _signed(digest).bundles[0].data, PREDICATE_TYPE)
    reg.lie_subject = True  # the listing also carries a copy whose subject is another image
    found = discover(client, target)
    stored = {d: json.loads(body) for d, (body, _) in reg.repo("app").manifests.items()}
    decoys = [
        (d, m["subject"]["digest"])
        for d, m in stored.items()
        if "subject" in m and m["subject"]["digest"] != digest
    ]
    assert len(decoys) == 1
    decoy, other = decoys[0]
    assert [c.manifest_digest for c in found.candidates] == [genuine.manifest_digest]
    assert len(found.problems) == 1
    problem = found.problems[0]
    assert (problem.digest, problem.code) == (decoy, Code.REGISTRY_CONTENT_INVALID)
    assert other in problem.message and digest in problem.message
    groups, _ = group_candidates(found.candidates)
    assert len(groups) == 1 and [m.index for m in groups[0].members] == [0]
    assert verify_image(target, found, _root(0)).passed


def test_unrelated_referrers_beyond_the_budget_do_not_stop_verification(
    fake_registry: FakeRegistry,
) -> None:
    reg = fake_registry
    digest = reg.push_image("app")
    client = _client(reg, f"@{digest}", limits=Limits(max_referrers=3))
    target = resolve(client)
    attach_bundle(client, target, _signed(digest).bundles[0].data, PREDICATE_TYPE)
    for number in range(3):  # three SBOMs from other tools
        reg.push_artifact("app", digest, "application/spdx+json", payload=b"%d" % number)
    assert verify_image(target, discover(client, target), _root(0)).passed


# --- outages and missing things -------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_unavailable(image: tuple[FakeRegistry, str], status: int) -> None:
    reg, digest = image
    reg.status_override = {"/v2/": status}
    error = _raises(Code.REGISTRY_UNAVAILABLE, resolve, _client(reg, f"@{digest}"))
    assert str(status) in str(error)


def test_a_failing_referrers_api_is_not_no_attestations(image: tuple[FakeRegistry, str]) -> None:
    reg, digest = image
    client, target = _target(reg, digest)
    attach_bundle(client, target, _signed(digest).bundles[0].data, PREDICATE_TYPE)
    reg.status_override = {"/v2/app/referrers/": 500}
    _raises(Code.REGISTRY_UNAVAILABLE, discover, client, target)


def test_a_stopped_registry_is_unavailable() -> None:
    reg = FakeRegistry().start()
    digest = reg.push_image("app")
    client = _client(reg, f"@{digest}")
    reg.stop()
    started = time.monotonic()
    error = _raises(Code.REGISTRY_UNAVAILABLE, resolve, client)
    assert "unreachable" in str(error)
    assert time.monotonic() - started < 10


def test_missing_image_is_image_not_found(image: tuple[FakeRegistry, str]) -> None:
    reg, _ = image
    missing = "sha256:" + "0" * 64
    _raises(Code.IMAGE_NOT_FOUND, resolve, _client(reg, f"@{missing}"))
    _raises(Code.IMAGE_NOT_FOUND, resolve, _client(reg, ":nope"), allow_tag=True)
    assert _client(reg, "@" + missing).get_manifest(missing, what="x", missing_ok=True) is None


# --- resolving ------------------------------------------------------------------------------------


def test_a_tag_is_refused_unless_allowed(image: tuple[FakeRegistry, str]) -> None:
    reg, digest = image
    with pytest.raises(ConfigError, match=r"names a tag, not a digest.*--resolve-tag"):
        resolve(_client(reg, ":v1"))
    assert reg.requests == []  # refused before the registry was asked anything
    target = resolve(_client(reg, ":v1"), allow_tag=True)
    assert (target.digest, target.ref.digest, target.resolved_from_tag) == (digest, digest, True)
    assert target.descriptor.size == len(reg.repo("app").manifests[digest][0])
    pinned = resolve(_client(reg, f"@{digest}"))
    assert (pinned.digest, pinned.resolved_from_tag) == (digest, False)


def test_platform_picks_the_manifest_of_an_index(fake_registry: FakeRegistry) -> None:
    reg = fake_registry
    index, images = reg.push_index("app", ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"])
    client = _client(reg, f"@{index}")
    assert resolve(client).digest == index  # no --platform: the index itself
    for platform, expected in (
        ("linux/amd64", images["linux/amd64"]),
        ("linux/arm64", images["linux/arm64/v8"]),
        ("linux/arm64/v8", images["linux/arm64/v8"]),
        ("linux/arm/v7", images["linux/arm/v7"]),
    ):
        target = resolve(client, platform=platform)
        assert target.digest == expected, platform
        assert target.ref.digest == expected
    for unknown in ("linux/s390x", "windows/amd64", "linux/arm/v6"):
        error = _raises(Code.IMAGE_NOT_FOUND, resolve, client, platform=unknown)
        assert unknown in str(error)
    with pytest.raises(ConfigError, match="single-platform"):
        resolve(_client(reg, f"@{images['linux/amd64']}"), platform="linux/amd64")
    with pytest.raises(ConfigError, match="OS/ARCH"):
        resolve(client, platform="linux")


# --- grouping: what counts toward a threshold -----------------------------------------------------


def test_signatures_on_different_payloads_never_add_up(image: tuple[FakeRegistry, str]) -> None:
    reg, digest = image
    client, target = _target(reg, digest)
    for key, note in ((0, "one statement"), (1, "another statement")):
        attach_bundle(client, target, _signed(digest, note, key).bundles[0].data, PREDICATE_TYPE)
    outcome = verify_image(target, discover(client, target), _root(0, 1, threshold=2))
    assert not outcome.passed and len(outcome.outcomes) == 2
    assert [len(o.report["keysCounted"]) for o in outcome.outcomes] == [1, 1]


def test_one_signature_attached_many_ways_counts_once(image: tuple[FakeRegistry, str]) -> None:
    reg, digest = image
    client, target = _target(reg, digest)
    made = _signed(digest)
    bundle = made.bundles[0].data
    attach_bundle(client, target, bundle, PREDICATE_TYPE)
    # The same bundle under another referrer manifest (another `created`), pushed by hand...
    again, _ = bundle_referrer(bundle, PREDICATE_TYPE, target.descriptor, "2020-01-01T00:00:00Z")
    reg.put_manifest("app", again)
    # ...and the same envelope in the legacy layout.
    attach_legacy(client, target, made.envelope.to_json(), PREDICATE_TYPE)
    found = discover(client, target)
    # The second referrer's layer is the same blob: read once. The legacy layer is another.
    assert len(found.candidates) == 2
    groups, problems = group_candidates(found.candidates)
    assert problems == [] and len(groups) == 1
    assert len(groups[0].signatures) == 1 and len(groups[0].bundles) == 1
    two_keys = verify_image(target, found, _root(0, 1, threshold=2))
    assert not two_keys.passed
    assert len(two_keys.outcomes[0].report["keysCounted"]) == 1
    assert verify_image(target, found, _root(0)).passed
