"""The fake OCI registry (tests/oci_fake.py) does what the distribution spec v1.1 says.

Raw urllib requests, no registry client: the fake is what a client's tests will trust, so its
referrers API, auth flow and faults are checked here against the spec's text and the examples
copied into fixtures/oci/.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from tests.conftest import FIXTURES
from tests.oci_fake import EMPTY, INDEX, MANIFEST, FakeRegistry, Framing, sha256_digest

SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx comes back as the response


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> Response:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=30) as response:
            return Response(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, error.headers, error.read())


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def artifact_manifest(
    registry: FakeRegistry, repo: str, subject: str, artifact_type: str
) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY, "digest": registry.put_blob(repo, b"{}"), "size": 2},
        "layers": [],
        "subject": registry.descriptor(repo, subject),
        "annotations": {"org.opencontainers.image.created": "2025-01-01T00:00:00Z"},
    }


def list_all(registry: FakeRegistry, path: str) -> tuple[list[dict[str, Any]], list[Response]]:
    """Follow the referrers API's Link headers; every descriptor and every page."""
    url, pages, entries = registry.url + path, [], []
    while True:
        page = call(url)
        assert page.status == 200, page.body
        pages.append(page)
        entries.extend(page.json()["manifests"])
        link = page.headers.get("Link")
        if link is None:
            return entries, pages
        target, relation = link.split(";", 1)
        assert relation.strip() == 'rel="next"'
        url = urljoin(url, target.strip().removeprefix("<").removesuffix(">"))


# --- the basics ----------------------------------------------------------------------------


def test_listens_on_loopback_and_answers_v2(fake_registry: FakeRegistry) -> None:
    assert fake_registry.url.startswith("http://127.0.0.1:")
    response = call(fake_registry.url + "/v2/")
    assert response.status == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_context_manager_stops_even_kept_alive_connections() -> None:
    with FakeRegistry(auth="basic", page_size=3) as registry:
        connection = http.client.HTTPConnection(registry.host, timeout=10)
        connection.request("GET", "/v2/")  # HTTP/1.1: the connection stays open
        response = connection.getresponse()
        assert (response.status, response.getheader("Connection")) == (401, None)
        response.read()
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        connection.request("GET", "/v2/")
        connection.getresponse()
    connection.close()
    with pytest.raises(RuntimeError):
        _ = registry.url


def test_blob_push_post_then_put_single_post_and_chunks(fake_registry: FakeRegistry) -> None:
    data = b"some layer bytes"
    digest = sha256_digest(data)
    started = call(fake_registry.url + "/v2/app/blobs/uploads/", "POST", b"")
    assert started.status == 202
    location = started.headers["Location"]
    wrong = call(
        urljoin(fake_registry.url, location) + "?digest=" + sha256_digest(b"x"), "PUT", data
    )
    assert wrong.status == 400
    assert wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"

    started = call(fake_registry.url + "/v2/app/blobs/uploads/", "POST", b"")
    location = urljoin(fake_registry.url, started.headers["Location"])
    done = call(f"{location}?digest={digest}", "PUT", data)
    assert done.status == 201
    assert done.headers["Docker-Content-Digest"] == digest
    assert done.headers["Location"] == f"/v2/app/blobs/{digest}"
    fetched = call(urljoin(fake_registry.url, done.headers["Location"]))
    assert (fetched.status, fetched.body) == (200, data)
    assert fetched.headers["Docker-Content-Digest"] == digest
    head = call(fake_registry.url + f"/v2/app/blobs/{digest}", "HEAD")
    assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", str(len(data)))

    other = b"single post"
    single = call(
        f"{fake_registry.url}/v2/app/blobs/uploads/?digest={sha256_digest(other)}", "POST", other
    )
    assert single.status == 201
    assert fake_registry.repo("app").blobs[sha256_digest(other)] == other

    started = call(fake_registry.url + "/v2/app/blobs/uploads/", "POST", b"")
    location = urljoin(fake_registry.url, started.headers["Location"])
    assert call(location, "PATCH", b"chunk one, ").headers["Range"] == "0-10"
    chunked = call(f"{location}?digest={sha256_digest(b'chunk one, two')}", "PUT", b"two")
    assert chunked.status == 201

    missing = call(fake_registry.url + f"/v2/app/blobs/{sha256_digest(b'nothing')}")
    assert missing.status == 404
    assert missing.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_manifest_put_keeps_exact_bytes_and_content_type(fake_registry: FakeRegistry) -> None:
    image = fake_registry.push_image("app")
    body, _ = fake_registry.repo("app").manifests[image]
    pretty = json.dumps(json.loads(body), indent=3).encode()  # other bytes, other digest
    pushed = call(
        fake_registry.url + "/v2/app/manifests/v1", "PUT", pretty, {"Content-Type": MANIFEST}
    )
    assert pushed.status == 201
    digest = pushed.headers["Docker-Content-Digest"]
    assert digest == sha256_digest(pretty)
    assert pushed.headers["OCI-Subject"] is None  # no subject, no header
    for reference in ("v1", digest):
        got = call(fake_registry.url + f"/v2/app/manifests/{reference}")
        assert (got.status, got.body) == (200, pretty)
        assert got.headers["Content-Type"] == MANIFEST
        assert got.headers["Docker-Content-Digest"] == digest
        assert got.headers["Content-Length"] == str(len(pretty))
    head = call(fake_registry.url + "/v2/app/manifests/v1", "HEAD")
    assert (head.status, head.headers["Content-Length"]) == (200, str(len(pretty)))

    wrong = call(fake_registry.url + f"/v2/app/manifests/{image}", "PUT", pretty)
    assert wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_missing_manifest_is_a_spec_404(fake_registry: FakeRegistry) -> None:
    for reference in ("nope", sha256_digest(b"nope")):
        response = call(fake_registry.url + f"/v2/app/manifests/{reference}")
        assert response.status == 404
        error = response.json()["errors"][0]
        assert error["code"] == "MANIFEST_UNKNOWN"
        assert isinstance(error["message"], str)


def test_push_index(fake_registry: FakeRegistry) -> None:
    index, images = fake_registry.push_index("app", ["linux/amd64", "linux/arm64/v8"], tag="multi")
    got = call(fake_registry.url + "/v2/app/manifests/multi")
    assert got.headers["Content-Type"] == INDEX
    assert got.headers["Docker-Content-Digest"] == index == sha256_digest(got.body)
    entries = got.json()["manifests"]
    assert [entry["digest"] for entry in entries] == list(images.values())
    assert entries[1]["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    for digest in images.values():
        manifest = call(fake_registry.url + f"/v2/app/manifests/{digest}").json()
        for blob in [manifest["config"], *manifest["layers"]]:
            assert (
                sha256_digest(call(fake_registry.url + f"/v2/app/blobs/{blob['digest']}").body)
                == blob["digest"]
            )


# --- subject and referrers -----------------------------------------------------------------


def test_manifest_with_subject_gets_oci_subject(fake_registry: FakeRegistry) -> None:
    image = fake_registry.push_image("app", "latest")
    body = json.dumps(artifact_manifest(fake_registry, "app", image, SBOM)).encode()
    pushed = call(
        fake_registry.url + f"/v2/app/manifests/{sha256_digest(body)}",
        "PUT",
        body,
        {"Content-Type": MANIFEST},
    )
    assert pushed.status == 201
    assert pushed.headers["OCI-Subject"] == image
    assert pushed.headers["Docker-Content-Digest"] == sha256_digest(body)

    # The spec: a manifest whose subject is not (yet) in the repository is accepted.
    missing = artifact_manifest(fake_registry, "app", sha256_digest(b"later"), SBOM)
    early = call(fake_registry.url + "/v2/app/manifests/early", "PUT", json.dumps(missing).encode())
    assert early.status == 201
    assert early.headers["OCI-Subject"] == sha256_digest(b"later")


def test_referrers_list_artifact_type_and_annotations(fake_registry: FakeRegistry) -> None:
    image = fake_registry.push_image("app")
    sbom = fake_registry.push_artifact(
        "app", image, SBOM, annotations={"org.example.sbom.format": "json"}
    )
    # No artifactType: the descriptor takes the config media type (spec, Listing Referrers).
    untyped = fake_registry.push_artifact(
        "app", image, None, config_media_type="application/vnd.example.config.v1+json"
    )
    # An index with a subject and no artifactType: listed without artifactType.
    index = fake_registry.put_manifest(
        "app",
        {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [],
            "subject": fake_registry.descriptor("app", image),
            "annotations": {"org.opencontainers.image.created": "2023-01-01T07:21:33Z"},
        },
    )
    fake_registry.push_artifact("app", fake_registry.push_image("app"), SBOM)  # not image's

    response = call(fake_registry.url + f"/v2/app/referrers/{image}")
    assert response.status == 200
    assert response.headers["Content-Type"] == INDEX
    assert response.headers["OCI-Filters-Applied"] is None
    listing = response.json()
    by_digest = {entry["digest"]: entry for entry in listing["manifests"]}
    assert list(by_digest) == [sbom, untyped, index]
    assert by_digest[sbom]["artifactType"] == SBOM
    assert by_digest[sbom]["annotations"] == {"org.example.sbom.format": "json"}
    assert by_digest[untyped]["artifactType"] == "application/vnd.example.config.v1+json"
    assert "artifactType" not in by_digest[index]
    assert by_digest[index]["mediaType"] == INDEX
    for digest, entry in by_digest.items():
        body, _ = fake_registry.repo("app").manifests[digest]
        assert entry["size"] == len(body)

    # The shape of the spec's example (fixtures/oci/referrers-response.json).
    example = json.loads((FIXTURES / "oci" / "referrers-response.json").read_text())
    assert listing.keys() == example.keys()
    assert (listing["schemaVersion"], listing["mediaType"]) == (2, example["mediaType"])
    allowed = set().union(*(entry.keys() for entry in example["manifests"]))
    assert all(entry.keys() <= allowed for entry in listing["manifests"])
    assert example["manifests"][2].keys() == by_digest[index].keys()  # the index: no artifactType


def test_referrers_empty_list_not_404(fake_registry: FakeRegistry) -> None:
    image = fake_registry.push_image("app")
    for repo, digest in (("app", image), ("app", sha256_digest(b"unknown")), ("other", image)):
        response = call(fake_registry.url + f"/v2/{repo}/referrers/{digest}")
        assert response.status == 200
        assert response.json() == {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}
        assert response.headers["Link"] is None
    assert call(fake_registry.url + "/v2/app/referrers/not-a-digest").status == 400


def test_referrers_filter_sets_oci_filters_applied(fake_registry: FakeRegistry) -> None:
    image = fake_registry.push_image("app")
    sbom = fake_registry.push_artifact("app", image, SBOM)
    fake_registry.push_artifact("app", image, SIGNATURE)
    response = call(fake_registry.url + f"/v2/app/referrers/{image}?artifactType={SBOM}")
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    assert [entry["digest"] for entry in response.json()["manifests"]] == [sbom]
    example = json.loads((FIXTURES / "oci" / "referrers-filtered-response.json").read_text())
    assert example["manifests"][0]["artifactType"] == SBOM  # the spec's own example filter

    none = call(fake_registry.url + f"/v2/app/referrers/{image}?artifactType=application/x-none")
    assert none.headers["OCI-Filters-Applied"] == "artifactType"
    assert none.json()["manifests"] == []

    fake_registry.apply_filters = False  # allowed: filtering is a SHOULD
    ignored = call(fake_registry.url + f"/v2/app/referrers/{image}?artifactType={SBOM}")
    assert ignored.headers["OCI-Filters-Applied"] is None
    assert len(ignored.json()["manifests"]) == 2


def test_referrers_pagination_link(fake_registry: FakeRegistry) -> None:
    fake_registry.page_size = 2
    image = fake_registry.push_image("app")
    pushed = [fake_registry.push_artifact("app", image, SBOM, payload=bytes([n])) for n in range(5)]
    signature = fake_registry.push_artifact("app", image, SIGNATURE)
    entries, pages = list_all(fake_registry, f"/v2/app/referrers/{image}")
    assert [entry["digest"] for entry in entries] == [*pushed, signature]
    assert [len(page.json()["manifests"]) for page in pages] == [2, 2, 2]
    assert all(page.headers["Link"] for page in pages[:-1])

    entries, pages = list_all(fake_registry, f"/v2/app/referrers/{image}?artifactType={SBOM}")
    assert [entry["digest"] for entry in entries] == pushed
    assert len(pages) == 3
    assert all(page.headers["OCI-Filters-Applied"] == "artifactType" for page in pages)


def test_referrers_disabled_like_distribution_2_8(fake_registry: FakeRegistry) -> None:
    fake_registry.referrers = False
    image = fake_registry.push_image("app")
    body = json.dumps(artifact_manifest(fake_registry, "app", image, SBOM)).encode()
    pushed = call(fake_registry.url + "/v2/app/manifests/sig", "PUT", body)
    assert pushed.status == 201
    assert pushed.headers["OCI-Subject"] is None
    response = call(fake_registry.url + f"/v2/app/referrers/{image}")
    assert response.status == 404
    # The referrers tag schema fallback still works: tags are plain manifests.
    tag = image.replace(":", "-")
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}
    assert (
        call(
            fake_registry.url + f"/v2/app/manifests/{tag}", "PUT", json.dumps(index).encode()
        ).status
        == 201
    )
    assert call(fake_registry.url + f"/v2/app/manifests/{tag}").json() == index


def test_lie_subject_lists_a_manifest_of_another_subject(fake_registry: FakeRegistry) -> None:
    image = fake_registry.push_image("app")
    genuine = fake_registry.push_artifact("app", image, SBOM)
    fake_registry.lie_subject = True
    listed = call(fake_registry.url + f"/v2/app/referrers/{image}?artifactType={SBOM}").json()
    digests = [entry["digest"] for entry in listed["manifests"]]
    assert digests[0] == genuine
    assert len(digests) == 2
    decoy = call(fake_registry.url + f"/v2/app/manifests/{digests[1]}").json()
    assert decoy["artifactType"] == SBOM
    assert decoy["subject"]["digest"] != image


# --- auth ----------------------------------------------------------------------------------


def test_bearer_auth_flow(fake_registry: FakeRegistry) -> None:
    fake_registry.auth = "bearer"
    image = fake_registry.push_image("team/app")
    ping = call(fake_registry.url + "/v2/")
    assert ping.status == 401
    assert ping.headers["WWW-Authenticate"] == (
        f'Bearer realm="{fake_registry.url}/token",service="fake"'
    )
    denied = call(fake_registry.url + f"/v2/team/app/manifests/{image}")
    assert denied.status == 401
    assert denied.json()["errors"][0]["code"] == "UNAUTHORIZED"
    challenge = denied.headers["WWW-Authenticate"]
    assert challenge.endswith(',scope="repository:team/app:pull"')
    push_challenge = call(fake_registry.url + "/v2/team/app/blobs/uploads/", "POST", b"")
    assert push_challenge.headers["WWW-Authenticate"].endswith(
        ',scope="repository:team/app:pull,push"'
    )

    token_url = f"{fake_registry.url}/token?service=fake&scope=repository:team/app:pull"
    assert call(token_url).status == 401
    assert call(token_url, headers=basic("fakeuser", "wrong")).status == 401
    issued = call(token_url, headers=basic("fakeuser", "fakepass"))
    assert issued.status == 200
    token = issued.json()["token"]
    assert issued.json()["access_token"] == token
    bearer = {"Authorization": f"Bearer {token}"}
    assert call(fake_registry.url + f"/v2/team/app/manifests/{image}", headers=bearer).status == 200
    assert (
        call(fake_registry.url + "/v2/", headers={"Authorization": "Bearer forged"}).status == 401
    )

    fake_registry.credentials = None  # anonymous tokens, like a public registry
    assert call(token_url).status == 200


def test_basic_auth(fake_registry: FakeRegistry) -> None:
    fake_registry.auth = "basic"
    fake_registry.credentials = ("alice", "s3cret")
    ping = call(fake_registry.url + "/v2/")
    assert (ping.status, ping.headers["WWW-Authenticate"]) == (401, 'Basic realm="fake"')
    assert call(fake_registry.url + "/v2/", headers=basic("alice", "nope")).status == 401
    assert call(fake_registry.url + "/v2/", headers=basic("alice", "s3cret")).status == 200


# --- faults --------------------------------------------------------------------------------


def test_tampered_blob_serves_other_bytes(fake_registry: FakeRegistry) -> None:
    digest = fake_registry.put_blob("app", b"the real content")
    fake_registry.tamper_blobs.add(digest)
    served = call(fake_registry.url + f"/v2/app/blobs/{digest}")
    assert served.status == 200
    assert served.headers["Docker-Content-Digest"] == digest  # the lie
    assert len(served.body) == len(b"the real content")
    assert served.body != b"the real content"
    assert sha256_digest(served.body) != digest


def test_tampered_manifest_is_still_json(fake_registry: FakeRegistry) -> None:
    image = fake_registry.push_image("app")
    fake_registry.tamper_manifests.add(image)
    served = call(fake_registry.url + f"/v2/app/manifests/{image}")
    original, _ = fake_registry.repo("app").manifests[image]
    assert served.headers["Docker-Content-Digest"] == image
    assert len(served.body) == len(original)
    assert sha256_digest(served.body) != image
    assert (
        json.loads(served.body)["layers"][0]["digest"]
        != json.loads(original)["layers"][0]["digest"]
    )


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_oversize_manifest(fake_registry: FakeRegistry, framing: Framing) -> None:
    image = fake_registry.push_image("app")
    fake_registry.oversize_manifest = True
    fake_registry.oversize_framing = framing
    served = call(fake_registry.url + f"/v2/app/manifests/{image}")
    assert served.status == 200
    assert len(served.body) == 5 * 1024 * 1024
    length, encoding = served.headers["Content-Length"], served.headers["Transfer-Encoding"]
    expected = {"length": (str(5 * 1024 * 1024), None), "chunked": (None, "chunked")}
    assert (length, encoding) == expected.get(framing, (None, None))
    original, _ = fake_registry.repo("app").manifests[image]
    assert served.body.startswith(original)


def test_status_override_and_slow(fake_registry: FakeRegistry) -> None:
    image = fake_registry.push_image("app")
    fake_registry.status_override = {"/v2/app/manifests/": 503}
    assert call(fake_registry.url + f"/v2/app/manifests/{image}").status == 503
    assert call(fake_registry.url + "/v2/").status == 200
    fake_registry.status_override = {"/v2/": 401}
    unauthorized = call(fake_registry.url + "/v2/")
    assert unauthorized.status == 401
    assert unauthorized.headers["WWW-Authenticate"] == 'Basic realm="fake"'
    fake_registry.status_override = {}
    fake_registry.slow = 0.3
    started = time.monotonic()
    assert call(fake_registry.url + f"/v2/app/manifests/{image}").status == 200
    assert time.monotonic() - started >= 0.3


def test_redirected_blob_and_the_request_record(fake_registry: FakeRegistry) -> None:
    fake_registry.auth = "basic"
    digest = fake_registry.put_blob("app", b"stored in a bucket")
    fake_registry.redirect_blobs = True
    credentials = basic("fakeuser", "fakepass")
    redirected = call(fake_registry.url + f"/v2/app/blobs/{digest}", headers=credentials)
    assert redirected.status == 307
    target = redirected.headers["Location"]
    assert target.startswith(f"{fake_registry.url}/_blobstore/{digest}?X-Amz-Signature=")
    served = call(target)  # a presigned URL: no credentials needed (nor sent here)
    assert (served.status, served.body) == (200, b"stored in a bucket")
    assert served.headers["Docker-Content-Digest"] == digest
    head = call(fake_registry.url + f"/v2/app/blobs/{digest}", "HEAD", headers=credentials)
    assert head.status == 200  # HEAD is answered, not redirected

    fake_registry.redirect_host = "localhost"  # another host, the same server
    moved = call(fake_registry.url + f"/v2/app/blobs/{digest}", headers=credentials)
    assert urlsplit(moved.headers["Location"]).netloc == f"localhost:{fake_registry.port}"

    methods = [method for method, _, _ in fake_registry.requests]
    assert methods == ["GET", "GET", "HEAD", "GET"]
    to_bucket = [h for _, path, h in fake_registry.requests if path.startswith("/_blobstore/")]
    assert len(to_bucket) == 1
    assert "authorization" not in to_bucket[0]
    assert fake_registry.requests[0][2]["authorization"] == credentials["Authorization"]
    assert not any(method in ("PUT", "POST", "PATCH") for method in methods)
    assert hashlib.sha256(served.body).hexdigest() == digest.removeprefix("sha256:")
