"""Image references parse as docker reads them, and every refusal says what is wrong.

distribution's `reference` grammar: a first component without ``.`` or ``:`` (and not
``localhost``) is a Docker Hub path; only sha256 digests (both attachment layouts name tags
after them); tags of 1-128 word characters, dots and dashes, not starting with ``.`` or ``-``.
"""

from __future__ import annotations

import pytest

from dssesign.errors import ConfigError
from dssesign.oci.reference import DOCKER_HUB, ImageRef, parse_reference

HEX = "0123456789abcdef" * 4
DIGEST = f"sha256:{HEX}"


HUB = "registry-1.docker.io"


@pytest.mark.parametrize(
    ("text", "expected", "api_host"),
    [
        ("alpine", ImageRef(DOCKER_HUB, "library/alpine", "latest"), HUB),
        ("alpine:3.19", ImageRef(DOCKER_HUB, "library/alpine", "3.19"), HUB),
        ("user/app", ImageRef(DOCKER_HUB, "user/app", "latest"), HUB),
        ("docker.io/alpine", ImageRef(DOCKER_HUB, "library/alpine", "latest"), HUB),
        ("docker.io/org/team/app:v1", ImageRef(DOCKER_HUB, "org/team/app", "v1"), HUB),
        ("ghcr.io/o/r:v1.2.3-rc_1", ImageRef("ghcr.io", "o/r", "v1.2.3-rc_1"), "ghcr.io"),
        ("127.0.0.1:5000/app", ImageRef("127.0.0.1:5000", "app", "latest"), "127.0.0.1:5000"),
        ("localhost/app:dev", ImageRef("localhost", "app", "dev"), "localhost"),
        ("localhost:5000/a/b", ImageRef("localhost:5000", "a/b", "latest"), "localhost:5000"),
        ("[::1]:5000/app:v1", ImageRef("[::1]:5000", "app", "v1"), "[::1]:5000"),
        ("[::1]/app", ImageRef("[::1]", "app", "latest"), "[::1]"),
        (
            "reg.example.com:443/a_b/c__d/e--f.g",
            ImageRef("reg.example.com:443", "a_b/c__d/e--f.g", "latest"),
            "reg.example.com:443",
        ),
        (f"ghcr.io/o/r@{DIGEST}", ImageRef("ghcr.io", "o/r", None, DIGEST), "ghcr.io"),
        (f"alpine@{DIGEST}", ImageRef(DOCKER_HUB, "library/alpine", None, DIGEST), HUB),
        (f"ghcr.io/o/r:v1@{DIGEST}", ImageRef("ghcr.io", "o/r", "v1", DIGEST), "ghcr.io"),
        (
            f"localhost:5000/r:v1@{DIGEST}",
            ImageRef("localhost:5000", "r", "v1", DIGEST),
            "localhost:5000",
        ),
    ],
)
def test_references_parse_as_docker_reads_them(
    text: str, expected: ImageRef, api_host: str
) -> None:
    ref = parse_reference(text)
    assert ref == expected
    assert ref.api_host == api_host
    # What /v2/<repo>/manifests/ is asked for: the digest whenever there is one, never the tag.
    assert ref.reference == (expected.digest or expected.tag)


def test_str_round_trips_the_normalised_form() -> None:
    for text in ("alpine", f"ghcr.io/o/r:v1@{DIGEST}", "[::1]:5000/app:v1", "localhost/app"):
        ref = parse_reference(text)
        assert parse_reference(str(ref)) == ref
    assert str(parse_reference("alpine")) == "docker.io/library/alpine:latest"
    assert str(parse_reference(f"ghcr.io/o/r:v1@{DIGEST}")) == f"ghcr.io/o/r:v1@{DIGEST}"


def test_with_digest_pins_and_refuses_anything_but_sha256() -> None:
    ref = parse_reference("ghcr.io/o/r:v1")
    pinned = ref.with_digest(DIGEST)
    assert (pinned.digest, pinned.tag, pinned.reference) == (DIGEST, "v1", DIGEST)
    for bad in (f"sha512:{HEX}{HEX}", f"sha256:{HEX.upper()}", "sha256:abc", HEX):
        with pytest.raises(ConfigError, match="not a sha256 image digest"):
            ref.with_digest(bad)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # sha512 is a valid OCI digest algorithm, but both tag layouts name tags after sha256.
        (f"ghcr.io/o/r@sha512:{HEX}{HEX}", "only sha256 image digests are supported"),
        (f"ghcr.io/o/r:v1@sha512:{HEX}{HEX}", "only sha256 image digests are supported"),
        ("ghcr.io/o/r@md5:d41d8cd98f00b204e9800998ecf8427e", "only sha256"),
        (f"ghcr.io/o/r@sha256:{HEX.upper()}", "64 lowercase hex digits"),
        (f"ghcr.io/o/r@sha256:{HEX[:-1]}", "64 lowercase hex digits"),
        (f"ghcr.io/o/r@sha256:{HEX}0", "64 lowercase hex digits"),
        ("ghcr.io/o/r@sha256:", "64 lowercase hex digits"),
        ("ghcr.io/Org/App:v1", "repository 'Org/App' must be lowercase"),
        ("ghcr.io/org/App", "repository 'org/App' must be lowercase"),
        ("Alpine", "repository 'Alpine' must be lowercase"),
        ("ghcr.io/a//b", "repository 'a//b' must be lowercase"),
        ("ghcr.io/-a/b", "repository '-a/b' must be lowercase"),
        ("ghcr.io/a./b", "repository 'a./b' must be lowercase"),
        ("ghcr.io/", "repository '' must be lowercase"),
        ("ghcr.io/o/r:", "bad tag ''"),
        ("ghcr.io/o/r:-v1", "bad tag '-v1'"),
        ("ghcr.io/o/r:.v1", "bad tag '.v1'"),
        ("ghcr.io/o/r:v1+build", "bad tag 'v1+build'"),
        ("ghcr.io/o/r:v/1", "repository 'o/r:v/1' must be lowercase"),
        (f"ghcr.io/o/r:{'x' * 129}", "bad tag"),
        ("ghcr.io/o/r:v:1", "repository 'o/r:v' must be lowercase"),
        ("bad_host.example!/app", "bad registry host 'bad_host.example!'"),
        ("host.example:port/app", "bad registry host 'host.example:port'"),
        ("::1:5000/app", "bad registry host '::1:5000'"),
        ("[zz::1]:5000/app", "bad registry host '[zz::1]:5000'"),
        ("-host.example/app", "bad registry host '-host.example'"),
    ],
)
def test_refusals_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_reference(text)
    message = str(caught.value)
    assert message.startswith("bad image reference "), message
    assert problem in message, message


def test_longest_tag_is_accepted() -> None:
    assert parse_reference(f"ghcr.io/o/r:{'x' * 128}").tag == "x" * 128
    assert parse_reference("ghcr.io/o/r:_v1").tag == "_v1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ghcr.io/o/r\n:v1",
        "ghcr.io/o/r:v1\r\nX-Injected: 1",
        "ghcr.io/o/r\x00",
        "ghcr.io/o/r:v1\x1b[31m",
        "ghcr.io/o r:v1",
        "ghcr.io/o/r\t",
        "ghcr.io/\u0430pp",  # Cyrillic a: looks like "app"
        "gh\u0441r.io/o/r",  # Cyrillic s in the host
        "ghcr.io/o/r:v1\u202e",  # right-to-left override
        "a" * 513,
        "ghcr.io/" + "a" * 600,
        "ghcr.io/o/r:" + "\n" * 600,
    ],
)
def test_control_characters_non_ascii_and_overlong_input_are_refused(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_reference(text)
    message = str(caught.value)
    assert message.startswith("bad image reference ")
    # Echoed escaped and cut: no raw control character or bidi override reaches a terminal,
    # and 600 characters of attacker input are not repeated in full (nor 1200, escaped).
    assert message.isprintable(), message
    assert len(message) < 300, len(message)


def test_a_long_but_valid_reference_is_accepted_up_to_the_bound() -> None:
    repository = "/".join(["abcdefghi"] * 48)  # 479 characters
    ref = parse_reference(f"ghcr.io/{repository}:v1")
    assert ref.repository == repository and len(str(ref)) <= 512


# --- product bugs: each test below FAILS against dssesign/oci/reference.py as it stands ---------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ghcr.io/" + "a" * 600, "512"),  # the bound, so the user knows it is length
        ("ghcr.io/o/r\n:v1", "control character"),
        ("ghcr.io/\u0430pp", "ASCII"),
    ],
)
def test_generic_refusals_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_reference(text)
    assert problem in str(caught.value), str(caught.value)


@pytest.mark.parametrize("text", ["ghcr.io/o/r@", "alpine@", "ghcr.io/o/r:v1@"])
def test_an_empty_digest_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="digest"):
        parse_reference(text)


def test_legacy_docker_hub_host_is_normalised() -> None:
    assert parse_reference("index.docker.io/alpine") == parse_reference("alpine")
