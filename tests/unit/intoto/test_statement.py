from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import rich.progress
from hypothesis import given, settings
from hypothesis import strategies as st

from dssesign.core.canonical import canonicalize
from dssesign.errors import ConfigError, InputError, StatementError
from dssesign.intoto import subjects as subjects_mod
from dssesign.intoto.statement import (
    KNOWN_DIGEST_ALGORITHMS,
    PAYLOAD_TYPE,
    STATEMENT_TYPE_V01,
    STATEMENT_TYPE_V1,
    ResourceDescriptor,
    build_statement,
    parse_statement,
    statement_payload,
    validate_statement,
)
from dssesign.intoto.subjects import (
    digest_file,
    parse_subject_arg,
    subject_from_digest,
    subject_from_file,
)
from dssesign.limits import Limits

SHA256_A = "a" * 64
SHA256_B = "b" * 64
BUF = subjects_mod._BUFFER_SIZE

#: Hex length that every known algorithm accepts in a well-formed digest.
GOOD_HEX = {
    "sha256": 64,
    "sha224": 56,
    "sha384": 96,
    "sha512": 128,
    "sha512_224": 56,
    "sha512_256": 64,
    "sha3_224": 56,
    "sha3_256": 64,
    "sha3_384": 96,
    "sha3_512": 128,
    "shake128": 64,
    "shake256": 128,
    "blake2b": 128,
    "blake2s": 64,
    "ripemd160": 40,
    "sm3": 64,
    "gost": 64,
    "sha1": 40,
    "md5": 32,
    "dirHash": 64,
    "gitCommit": 40,
    "gitTree": 64,
    "gitBlob": 40,
    "gitTag": 64,
}


def minimal() -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE_V1,
        "subject": [{"name": "app.tar.gz", "digest": {"sha256": SHA256_A}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {}},
    }


def rejects(obj: object, path: str, *, allow_v01: bool = False) -> str:
    """Assert validation fails with a message that starts with the JSON path `path`."""
    with pytest.raises(StatementError) as info:
        validate_statement(obj, allow_v01=allow_v01)
    message = str(info.value)
    assert message.startswith(path + ":"), message
    return message


# --- constants and ResourceDescriptor ------------------------------------------------------------


def test_constants() -> None:
    assert STATEMENT_TYPE_V1 == "https://in-toto.io/Statement/v1"
    assert STATEMENT_TYPE_V01 == "https://in-toto.io/Statement/v0.1"
    assert PAYLOAD_TYPE == "application/vnd.in-toto+json"
    assert set(GOOD_HEX) == KNOWN_DIGEST_ALGORITHMS


def test_descriptor_to_dict_camel_case_only_set_fields() -> None:
    assert ResourceDescriptor(digest={"sha256": SHA256_A}).to_dict() == {
        "digest": {"sha256": SHA256_A}
    }
    full = ResourceDescriptor(
        name="a.intoto.json",
        uri="https://example.com/a",
        digest={"sha256": SHA256_A},
        content=b"\xfb\xff",
        download_location="https://mirror.example.com/a",
        media_type="application/x.dsse+json",
        annotations={"twoPartyReview": False},
    )
    data = full.to_dict()
    assert list(data) == [
        "name",
        "uri",
        "digest",
        "content",
        "downloadLocation",
        "mediaType",
        "annotations",
    ]
    assert data["content"] == "+/8="
    assert ResourceDescriptor.from_dict(data) == full


def test_descriptor_is_immutable_and_copies_its_input() -> None:
    digest = {"sha256": SHA256_A}
    rd = ResourceDescriptor(name="x", digest=digest)
    digest["sha256"] = SHA256_B
    assert rd.digest["sha256"] == SHA256_A
    with pytest.raises(TypeError):
        rd.digest["sha256"] = SHA256_B  # type: ignore[index]
    with pytest.raises(AttributeError):
        rd.name = "y"  # type: ignore[misc]
    twin = ResourceDescriptor(name="x", digest={"sha256": SHA256_A}, annotations={"l": [1]})
    assert twin == ResourceDescriptor(name="x", digest={"sha256": SHA256_A}, annotations={"l": [1]})
    assert hash(twin) == hash(rd)  # hashable even with a list inside the annotations
    assert len({rd, twin}) == 2  # equal hash, different annotations


def test_descriptor_to_dict_does_not_leak_internal_state() -> None:
    rd = ResourceDescriptor(digest={"sha256": SHA256_A})
    data = rd.to_dict()
    data["digest"]["sha256"] = SHA256_B  # type: ignore[index]
    assert rd.digest["sha256"] == SHA256_A


@pytest.mark.parametrize(
    ("content", "decoded"),
    [("+/8=", b"\xfb\xff"), ("-_8", b"\xfb\xff"), ("-_8=", b"\xfb\xff"), ("", b"")],
)
def test_descriptor_content_accepts_protobuf_base64(content: str, decoded: bytes) -> None:
    rd = ResourceDescriptor.from_dict({"uri": "https://x.example/", "content": content})
    assert rd.content == decoded


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        ([], "$"),
        ({}, "$"),
        ({"name": "only-a-name"}, "$"),
        ({"content": ""}, "$"),
        ({"content": "a"}, "$.content"),
        ({"content": "a+b-"}, "$.content"),
        ({"content": "!!!!"}, "$.content"),
        ({"content": 5}, "$.content"),
        ({"uri": "relative/path"}, "$.uri"),
        ({"uri": 3}, "$.uri"),
        ({"digest": {"sha256": "A" * 64}}, "$.digest.sha256"),
        ({"uri": "https://x.example/", "name": 1}, "$.name"),
        ({"uri": "https://x.example/", "Name": "x"}, "$.Name"),
        ({"uri": "https://x.example/", "mediaType": []}, "$.mediaType"),
        ({"uri": "https://x.example/", "media_type": "a/b"}, "$.media_type"),
        ({"uri": "https://x.example/", "downloadLocation": "nope"}, "$.downloadLocation"),
        ({"uri": "https://x.example/", "annotations": []}, "$.annotations"),
    ],
)
def test_descriptor_from_dict_rejects(obj: object, path: str) -> None:
    with pytest.raises(StatementError) as info:
        ResourceDescriptor.from_dict(obj)
    assert str(info.value).startswith(path + ":"), str(info.value)


def test_descriptor_from_dict_ignores_unknown_members() -> None:
    rd = ResourceDescriptor.from_dict({"uri": "pkg:pypi/x@1", "extension": {"a": 1}})
    assert rd.to_dict() == {"uri": "pkg:pypi/x@1"}


# --- digest_file --------------------------------------------------------------------------------


def _write(path: Path, size: int) -> bytes:
    # Random (but seeded) bytes: a chunk hashed twice or skipped changes the digest.
    data = random.Random(size).randbytes(size)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize(
    "size", [0, 1, 31, BUF - 1, BUF, BUF + 1, 2 * BUF, 3 * BUF + 12345], ids=lambda n: f"{n}B"
)
def test_digest_file_matches_hashlib(tmp_path: Path, size: int) -> None:
    path = tmp_path / "blob"
    data = _write(path, size)
    assert digest_file(path) == {"sha256": hashlib.sha256(data).hexdigest()}
    both = digest_file(str(path), algorithms=("sha256", "sha512"))
    assert both == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha512": hashlib.sha512(data).hexdigest(),
    }
    assert list(both) == ["sha256", "sha512"]


def test_digest_file_other_algorithms_and_dedupe(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = _write(path, BUF + 7)
    result = digest_file(path, algorithms=["sha3_256", "blake2b", "sha3_256", "sha512_256"])
    assert result == {
        "sha3_256": hashlib.sha3_256(data).hexdigest(),
        "blake2b": hashlib.blake2b(data).hexdigest(),
        "sha512_256": hashlib.new("sha512_256", data).hexdigest(),
    }


@pytest.mark.parametrize("algorithms", [(), ("md5",), ("SHA256",), ("gitBlob",)])
def test_digest_file_refuses_algorithms_it_cannot_compute(
    tmp_path: Path, algorithms: tuple[str, ...]
) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x")
    with pytest.raises(ConfigError):
        digest_file(path, algorithms=algorithms)


def test_digest_file_reads_non_regular_files() -> None:
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    assert digest_file("/dev/null") == {"sha256": hashlib.sha256(b"").hexdigest()}


def _read_error(path: str | Path) -> InputError:
    with pytest.raises(InputError) as info:
        digest_file(path)
    exc = info.value
    assert not isinstance(exc, StatementError)
    # `from None`: the CLI prints one line, no chained traceback.
    assert exc.__cause__ is None and exc.__suppress_context__
    assert str(path) in str(exc)
    return exc


def test_digest_file_missing(tmp_path: Path) -> None:
    assert "no such file" in str(_read_error(tmp_path / "missing.bin"))


def test_digest_file_directory(tmp_path: Path) -> None:
    assert "is a directory" in str(_read_error(tmp_path))


def test_digest_file_path_through_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    assert "not a directory" in str(_read_error(tmp_path / "file" / "child"))


def test_digest_file_error_while_reading() -> None:
    # Unreadable even for root: reading /proc/self/mem at offset 0 fails with EIO.
    if not os.path.exists("/proc/self/mem"):
        pytest.skip("needs Linux /proc")
    assert "input/output error" in str(_read_error("/proc/self/mem"))


def test_digest_file_permission_denied_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # We run as root, where chmod 000 does not stop a read; raise the open() error ourselves.
    path = tmp_path / "secret.bin"
    path.write_bytes(b"x")

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(subjects_mod, "open", denied, raising=False)
    assert "permission denied" in str(_read_error(path))


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads mode-000 files"
)
def test_digest_file_permission_denied_for_real(tmp_path: Path) -> None:  # pragma: no cover
    path = tmp_path / "secret.bin"
    path.write_bytes(b"x")
    path.chmod(0)
    assert "permission denied" in str(_read_error(path))


def test_progress_is_a_callback_and_does_not_change_the_digest(tmp_path: Path) -> None:
    """The library draws nothing: it reports bytes hashed; the CLI draws the bar."""
    path = tmp_path / "blob"
    data = _write(path, 3 * BUF + 5)
    seen: list[tuple[int, int | None]] = []
    expected = {"sha256": hashlib.sha256(data).hexdigest()}
    assert digest_file(path, progress=lambda done, size: seen.append((done, size))) == expected
    two = digest_file(path, algorithms=("sha256", "sha512"), progress=lambda d, s: None)
    assert two["sha512"] == hashlib.sha512(data).hexdigest()
    assert seen[-1] == (len(data), len(data))  # the bar reaches 100%
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert digest_file(path) == expected


def test_the_cli_progress_bar_is_drawn_only_on_a_terminal_for_big_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dssesign.cli import common as _cli_common

    small = tmp_path / "small"
    small.write_bytes(b"x")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with _cli_common.file_progress(str(small)) as progress:
        assert progress is None
    monkeypatch.setattr(_cli_common, "PROGRESS_MIN_BYTES", 1)
    advanced: list[float] = []
    real_update = rich.progress.Progress.update

    def update(self: rich.progress.Progress, task: Any, **kwargs: Any) -> None:
        advanced.append(kwargs.get("completed", 0))
        real_update(self, task, **kwargs)

    monkeypatch.setattr(rich.progress.Progress, "update", update)
    big = tmp_path / "big"
    data = _write(big, 2 * BUF + 1)
    with _cli_common.file_progress(str(big)) as progress:
        assert progress is not None
        assert digest_file(big, progress=progress)["sha256"] == hashlib.sha256(data).hexdigest()
    assert advanced and advanced[-1] == len(data)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    with _cli_common.file_progress(str(big)) as progress:
        assert progress is None


@pytest.mark.parametrize(
    ("tty", "size", "shown"),
    [
        (True, 64 * 1024 * 1024, True),
        (True, 64 * 1024 * 1024 - 1, False),
        (False, 1 << 40, False),
        (True, None, False),
    ],
)
def test_progress_auto_rule(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tty: bool, size: int | None, shown: bool
) -> None:
    """The CLI's bar: on a terminal, for files of 64 MiB or more (sparse files here)."""
    from dssesign.cli import common as _cli_common

    path = tmp_path / "sparse"
    if size is not None:
        with path.open("wb") as handle:
            handle.truncate(size)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    with _cli_common.file_progress(str(path)) as progress:
        assert (progress is not None) is shown


# --- subjects -----------------------------------------------------------------------------------


def test_subject_from_file(tmp_path: Path) -> None:
    path = tmp_path / "app-1.0.tar.gz"
    data = _write(path, 1000)
    rd = subject_from_file(path)
    assert rd == ResourceDescriptor(
        name="app-1.0.tar.gz", digest={"sha256": hashlib.sha256(data).hexdigest()}
    )
    rd = subject_from_file(str(path), name="dist/app.tgz", sha512=True)
    assert rd.name == "dist/app.tgz"
    assert rd.digest["sha512"] == hashlib.sha512(data).hexdigest()


@pytest.mark.parametrize("algorithm", sorted(GOOD_HEX))
def test_subject_from_digest_every_known_algorithm(algorithm: str) -> None:
    value = "0123456789abcdef" * 8
    rd = subject_from_digest(f"{algorithm}:{value[: GOOD_HEX[algorithm]]}")
    assert rd == ResourceDescriptor(digest={algorithm: value[: GOOD_HEX[algorithm]]})
    assert rd.name is None
    with pytest.raises(InputError, match=algorithm):
        subject_from_digest(f"{algorithm}:{value[: GOOD_HEX[algorithm] - 2]}abc")


def test_subject_from_digest_normalizes_spelling_and_case() -> None:
    assert subject_from_digest("SHA256:" + "AB" * 32, name="img").to_dict() == {
        "name": "img",
        "digest": {"sha256": "ab" * 32},
    }
    assert subject_from_digest("sha-512:" + "0" * 128).digest == {"sha512": "0" * 128}
    assert subject_from_digest("gitcommit:" + "0" * 64).digest == {"gitCommit": "0" * 64}


@pytest.mark.parametrize(
    "spec",
    [
        "sha256",
        "sha256:",
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "g" * 64,
        "sha256: " + "a" * 63,
        "sha256:" + "a" * 64 + "\n",
        "sha999:" + "a" * 64,
        "blake2s:" + "a" * 66,
        "shake128:abc",
        ":" + "a" * 64,
    ],
)
def test_subject_from_digest_rejects(spec: str) -> None:
    with pytest.raises(InputError) as info:
        subject_from_digest(spec)
    assert repr(spec)[:40] in str(info.value)


def test_parse_subject_arg_path(tmp_path: Path) -> None:
    path = tmp_path / "tool.bin"
    data = _write(path, 10)
    rd = parse_subject_arg(str(path), sha512=True)
    assert rd.name == "tool.bin"
    assert rd.digest == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha512": hashlib.sha512(data).hexdigest(),
    }


def test_parse_subject_arg_digest_forms() -> None:
    assert parse_subject_arg("sha256:" + SHA256_A) == ResourceDescriptor(
        digest={"sha256": SHA256_A}
    )
    # --sha512 only applies to files; a digest subject is what it says.
    assert parse_subject_arg("sha256:" + SHA256_A, sha512=True).digest == {"sha256": SHA256_A}
    named = parse_subject_arg("ghcr.io/org/app=sha256:" + SHA256_A)
    assert named == ResourceDescriptor(name="ghcr.io/org/app", digest={"sha256": SHA256_A})
    # The name may itself hold '=' and ':'; the split is at the last '='.
    odd = parse_subject_arg("pkg:x?a=b=sha256:" + SHA256_A)
    assert odd.name == "pkg:x?a=b"


def test_parse_subject_arg_bad_digest_is_reported_as_digest() -> None:
    # Not "no such file": the algorithm prefix makes the intent clear.
    with pytest.raises(InputError, match=r"subject digest.*expected 64 hex"):
        parse_subject_arg("sha256:abc")
    with pytest.raises(InputError, match="subject digest"):
        parse_subject_arg("app=sha256:abc")
    with pytest.raises(InputError, match="empty name"):
        parse_subject_arg("=sha256:" + SHA256_A)
    with pytest.raises(InputError, match="empty"):
        parse_subject_arg("")


def test_parse_subject_arg_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        parse_subject_arg(str(tmp_path / "nope"))
    # Drive-letter-like and unknown prefixes are paths, not digests.
    with pytest.raises(InputError, match="no such file"):
        parse_subject_arg(str(tmp_path / "c:thing"))


def test_parse_subject_arg_ambiguous_file_and_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = "sha256:" + SHA256_A
    Path(spec).write_bytes(b"file contents")
    with pytest.raises(InputError, match="ambiguous") as info:
        parse_subject_arg(spec)
    assert f"./{spec}" in str(info.value)
    rd = parse_subject_arg(f"./{spec}")
    assert rd.name == spec
    assert rd.digest == {"sha256": hashlib.sha256(b"file contents").hexdigest()}
    Path(f"n={spec}").write_bytes(b"")
    with pytest.raises(InputError, match="ambiguous"):
        parse_subject_arg(f"n={spec}")


# --- build_statement ----------------------------------------------------------------------------


def test_build_statement() -> None:
    subjects = [
        ResourceDescriptor(name="a", digest={"sha256": SHA256_A, "sha512": "c" * 128}),
        ResourceDescriptor(name="b", digest={"sha256": SHA256_B}),
    ]
    built = build_statement(subjects, "https://slsa.dev/provenance/v1", {"k": [1, 2]})
    assert built == {
        "_type": STATEMENT_TYPE_V1,
        "subject": [s.to_dict() for s in subjects],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"k": [1, 2]},
    }
    assert "predicate" not in build_statement(subjects, "https://example.com/t/v1", None)
    proxied = build_statement(subjects, "https://example.com/t/v1", MappingProxyType({"a": 1}))
    assert type(proxied["predicate"]) is dict


@pytest.mark.parametrize(
    ("subjects", "predicate_type", "predicate", "path"),
    [
        ([], "https://example.com/t", {}, "$.subject"),
        ("sha256:" + SHA256_A, "https://example.com/t", {}, "$.subject"),
        ([{"digest": {"sha256": SHA256_A}}], "https://example.com/t", {}, "$.subject[0]"),
        ([ResourceDescriptor(name="x")], "https://example.com/t", {}, "$.subject[0].digest"),
        (
            [ResourceDescriptor(digest={"sha256": SHA256_A[:-1]})],
            "https://example.com/t",
            {},
            "$.subject[0].digest.sha256",
        ),
        ([ResourceDescriptor(digest={"sha256": SHA256_A})], "custom", {}, "$.predicateType"),
        ([ResourceDescriptor(digest={"sha256": SHA256_A})], "https://e.com/t", [1], "$.predicate"),
    ],
)
def test_build_statement_rejects(
    subjects: Any, predicate_type: str, predicate: object, path: str
) -> None:
    with pytest.raises(StatementError) as info:
        build_statement(subjects, predicate_type, predicate)
    assert str(info.value).startswith(path + ":"), str(info.value)


# --- validate_statement: accepted ---------------------------------------------------------------


def _with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    obj = minimal()
    change(obj)
    return obj


@pytest.mark.parametrize(
    "obj",
    [
        minimal(),
        _with(lambda s: s.pop("predicate")),
        _with(lambda s: s.update(predicate={})),
        _with(lambda s: s.update(extension={"ignored": True})),  # unknown fields are ignored
        _with(lambda s: s["subject"][0].update(digest={"somecoolhash": "ABCD"})),
        _with(lambda s: s["subject"][0].update(digest={"arn": "arn:aws:ec2:r:1:image/ami-1"})),
        _with(lambda s: s["subject"][0].update(digest={k: "0" * n for k, n in GOOD_HEX.items()})),
        _with(lambda s: s["subject"][0].update(digest={"gitCommit": "0" * 64})),
        _with(lambda s: s["subject"][0].update(digest={"blake2b": "00"})),
        _with(lambda s: s["subject"][0].update(digest={"shake256": "00" * 200})),
        _with(lambda s: s["subject"][0].update(digest={"gost": "0" * 128})),
        _with(lambda s: s["subject"][0].pop("name")),
        _with(
            lambda s: s["subject"][0].update(
                uri="pkg:deb/debian/stunnel@5.50-3?arch=amd64",
                downloadLocation="git+https://github.com/x/y@abc#path%2Fb",
                mediaType="application/vnd.oci.image.manifest.v1+json",
                content="eyJ9",
                annotations={"a": None, "b": [1, {"c": 2.5}]},
                extra=[1],
            )
        ),
        # The same artifact under two names: matched by digest, both names usable by policy.
        _with(lambda s: s["subject"].append({"name": "alias.tgz", "digest": {"sha256": SHA256_A}})),
        # Named and unnamed with the same digest; unnamed ones with disjoint digests.
        _with(lambda s: s["subject"].append({"digest": {"sha256": SHA256_A}})),
        _with(
            lambda s: s["subject"].extend(
                [{"name": "_", "digest": {"sha256": SHA256_A}}, {"digest": {"sha256": SHA256_B}}]
            )
        ),
        _with(lambda s: s.update(predicateType="https://in-toto.io/attestation/vulns/v0.2")),
        _with(lambda s: s.update(predicateType="urn:example:type:v1")),
        _with(lambda s: s.update(predicateType="https://example.com/A/B?Q=1#F")),
        _with(lambda s: s.update(predicateType="https://user@host.example:8443/x%2F")),
    ],
)
def test_validate_accepts(obj: dict[str, Any]) -> None:
    validate_statement(obj)
    validate_statement(json.loads(json.dumps(obj)))


def test_validate_v01_only_when_allowed() -> None:
    obj = _with(lambda s: s.update(_type=STATEMENT_TYPE_V01))
    validate_statement(obj, allow_v01=True)
    rejects(obj, "$._type")


def test_validate_subject_limit() -> None:
    obj = minimal()
    obj["subject"] = [{"name": str(i), "digest": {"sha256": SHA256_A}} for i in range(3)]
    validate_statement(obj, limits=Limits(max_subjects=3))
    with pytest.raises(StatementError, match=r"^\$\.subject: 3 subjects exceed the limit of 2"):
        validate_statement(obj, limits=Limits(max_subjects=2))


def test_validate_error_names_deep_index() -> None:
    obj = minimal()
    obj["subject"] += [
        {"name": "b", "digest": {"sha256": SHA256_B}},
        {"name": "c", "digest": {"sha256": "C" * 64}},
    ]
    assert "lowercase hex" in rejects(obj, "$.subject[2].digest.sha256")


# --- validate_statement: rejected ---------------------------------------------------------------

REJECTED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    # _type
    ("type missing", lambda s: s.pop("_type"), "$._type"),
    ("type not a string", lambda s: s.update(_type=1), "$._type"),
    ("type v0.2", lambda s: s.update(_type="https://in-toto.io/Statement/v0.2"), "$._type"),
    ("type trailing slash", lambda s: s.update(_type=STATEMENT_TYPE_V1 + "/"), "$._type"),
    ("type proto alias", lambda s: s.update(type=STATEMENT_TYPE_V1), "$.type"),
    ("type case alias", lambda s: s.update(_Type=STATEMENT_TYPE_V1), "$._Type"),
    # subject
    ("subject missing", lambda s: s.pop("subject"), "$.subject"),
    ("subject object", lambda s: s.update(subject={"digest": {}}), "$.subject"),
    ("subject empty", lambda s: s.update(subject=[]), "$.subject"),
    ("subject case alias", lambda s: s.update(Subject=[]), "$.Subject"),
    ("subject folded alias", lambda s: s.update({"\u017fubject": []}), '$["\\u017fubject"]'),
    ("subject element string", lambda s: s["subject"].append("x"), "$.subject[1]"),
    ("subject element null", lambda s: s["subject"].insert(0, None), "$.subject[0]"),
    ("digest missing", lambda s: s["subject"][0].pop("digest"), "$.subject[0].digest"),
    ("digest empty", lambda s: s["subject"][0].update(digest={}), "$.subject[0].digest"),
    ("digest list", lambda s: s["subject"][0].update(digest=[SHA256_A]), "$.subject[0].digest"),
    ("digest string", lambda s: s["subject"][0].update(digest=SHA256_A), "$.subject[0].digest"),
    (
        "digest value number",
        lambda s: s["subject"][0].update(digest={"sha256": 1}),
        "$.subject[0].digest.sha256",
    ),
    (
        "digest value null",
        lambda s: s["subject"][0].update(digest={"custom": None}),
        "$.subject[0].digest.custom",
    ),
    (
        "digest value empty",
        lambda s: s["subject"][0].update(digest={"custom": ""}),
        "$.subject[0].digest.custom",
    ),
    (
        "digest alg empty",
        lambda s: s["subject"][0]["digest"].update({"": "x"}),
        '$.subject[0].digest[""]',
    ),
    (
        "sha256 uppercase",
        lambda s: s["subject"][0].update(digest={"sha256": "A" * 64}),
        "$.subject[0].digest.sha256",
    ),
    (
        "sha256 short",
        lambda s: s["subject"][0].update(digest={"sha256": "a" * 63}),
        "$.subject[0].digest.sha256",
    ),
    (
        "sha256 is a sha512",
        lambda s: s["subject"][0].update(digest={"sha256": "a" * 128}),
        "$.subject[0].digest.sha256",
    ),
    (
        "sha256 not hex",
        lambda s: s["subject"][0].update(digest={"sha256": "z" * 64}),
        "$.subject[0].digest.sha256",
    ),
    (
        "sha256 prefixed",
        lambda s: s["subject"][0].update(digest={"sha256": "sha256:" + "a" * 57}),
        "$.subject[0].digest.sha256",
    ),
    (
        "sha512 short",
        lambda s: s["subject"][0].update(digest={"sha512": "a" * 64}),
        "$.subject[0].digest.sha512",
    ),
    (
        "gitCommit 50",
        lambda s: s["subject"][0].update(digest={"gitCommit": "a" * 50}),
        "$.subject[0].digest.gitCommit",
    ),
    (
        "md5 long",
        lambda s: s["subject"][0].update(digest={"md5": "a" * 40}),
        "$.subject[0].digest.md5",
    ),
    (
        "blake2s too long",
        lambda s: s["subject"][0].update(digest={"blake2s": "a" * 66}),
        "$.subject[0].digest.blake2s",
    ),
    (
        "shake odd",
        lambda s: s["subject"][0].update(digest={"shake128": "abc"}),
        "$.subject[0].digest.shake128",
    ),
    (
        "alg case variant",
        lambda s: s["subject"][0]["digest"].update({"SHA256": SHA256_B}),
        "$.subject[0].digest.SHA256",
    ),
    (
        "alg dash variant",
        lambda s: s["subject"][0]["digest"].update({"sha-512": "a" * 128}),
        '$.subject[0].digest["sha-512"]',
    ),
    ("name number", lambda s: s["subject"][0].update(name=1), "$.subject[0].name"),
    ("name null", lambda s: s["subject"][0].update(name=None), "$.subject[0].name"),
    ("uri relative", lambda s: s["subject"][0].update(uri="a/b"), "$.subject[0].uri"),
    ("uri upper host", lambda s: s["subject"][0].update(uri="https://X.io/"), "$.subject[0].uri"),
    ("uri space", lambda s: s["subject"][0].update(uri="https://x.io/a b"), "$.subject[0].uri"),
    (
        "downloadLocation not a uri",
        lambda s: s["subject"][0].update(downloadLocation="example.com/x"),
        "$.subject[0].downloadLocation",
    ),
    ("mediaType number", lambda s: s["subject"][0].update(mediaType=1), "$.subject[0].mediaType"),
    ("content number", lambda s: s["subject"][0].update(content=1), "$.subject[0].content"),
    ("content not b64", lambda s: s["subject"][0].update(content="@@@@"), "$.subject[0].content"),
    (
        "annotations list",
        lambda s: s["subject"][0].update(annotations=[]),
        "$.subject[0].annotations",
    ),
    (
        "descriptor alias",
        lambda s: s["subject"][0].update(Digest={"sha256": SHA256_B}),
        "$.subject[0].Digest",
    ),
    (
        "descriptor proto alias",
        lambda s: s["subject"][0].update(download_location="https://x.io/"),
        "$.subject[0].download_location",
    ),
    # duplicates
    (
        "same subject twice",
        lambda s: s["subject"].append(copy.deepcopy(s["subject"][0])),
        "$.subject[1].name",
    ),
    (
        "same name other digest",
        lambda s: s["subject"].append({"name": "app.tar.gz", "digest": {"sha256": SHA256_B}}),
        "$.subject[1].name",
    ),
    (
        "unnamed sharing a digest",
        lambda s: s.update(
            subject=[
                {"digest": {"sha256": SHA256_A}},
                {"digest": {"sha256": SHA256_B}},
                {"digest": {"sha512": "0" * 128, "sha256": SHA256_A}},
            ]
        ),
        "$.subject[2].digest.sha256",
    ),
    (
        "underscore names sharing a digest",
        lambda s: s.update(
            subject=[{"name": "_", "digest": {"x": "1"}}, {"name": "_", "digest": {"x": "1"}}]
        ),
        "$.subject[1].digest.x",
    ),
    (
        "same uri",
        lambda s: s.update(
            subject=[
                {"name": "a", "uri": "pkg:x/y", "digest": {"sha256": SHA256_A}},
                {"name": "b", "uri": "pkg:x/y", "digest": {"sha256": SHA256_B}},
            ]
        ),
        "$.subject[1].uri",
    ),
    # predicateType
    ("predicateType missing", lambda s: s.pop("predicateType"), "$.predicateType"),
    ("predicateType number", lambda s: s.update(predicateType=1), "$.predicateType"),
    ("predicateType empty", lambda s: s.update(predicateType=""), "$.predicateType"),
    (
        "predicateType short name",
        lambda s: s.update(predicateType="slsaprovenance"),
        "$.predicateType",
    ),
    (
        "predicateType relative",
        lambda s: s.update(predicateType="/provenance/v1"),
        "$.predicateType",
    ),
    ("predicateType no rest", lambda s: s.update(predicateType="https:"), "$.predicateType"),
    (
        "predicateType scheme case",
        lambda s: s.update(predicateType="HTTPS://x.io/t"),
        "$.predicateType",
    ),
    (
        "predicateType host case",
        lambda s: s.update(predicateType="https://X.io/t"),
        "$.predicateType",
    ),
    ("predicateType space", lambda s: s.update(predicateType="https://x.io/ t"), "$.predicateType"),
    (
        "predicateType newline",
        lambda s: s.update(predicateType="https://x.io/t\n"),
        "$.predicateType",
    ),
    (
        "predicateType non-ascii",
        lambda s: s.update(predicateType="https://x.io/é"),
        "$.predicateType",
    ),
    (
        "predicateType bad escape",
        lambda s: s.update(predicateType="https://x.io/%zz"),
        "$.predicateType",
    ),
    (
        "predicateType alias",
        lambda s: s.update(predicate_type="https://x.io/t"),
        "$.predicate_type",
    ),
    # predicate
    ("predicate list", lambda s: s.update(predicate=[]), "$.predicate"),
    ("predicate string", lambda s: s.update(predicate="{}"), "$.predicate"),
    ("predicate null", lambda s: s.update(predicate=None), "$.predicate"),
    ("predicate alias", lambda s: s.update(Predicate={}), "$.Predicate"),
]


@pytest.mark.parametrize(
    ("change", "path"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED]
)
def test_validate_rejects(change: Callable[[dict[str, Any]], None], path: str) -> None:
    obj = _with(change)
    rejects(obj, path)
    rejects(obj, path, allow_v01=True)


@pytest.mark.parametrize("obj", [None, [], "statement", 1, b"{}", MappingProxyType(minimal())])
def test_validate_rejects_non_objects(obj: object) -> None:
    rejects(obj, "$")


def test_validate_rejects_non_string_keys() -> None:
    obj: dict[Any, Any] = minimal()
    obj[1] = "x"
    rejects(obj, "$")
    obj = minimal()
    obj["subject"][0]["digest"][b"sha256"] = SHA256_A
    rejects(obj, "$.subject[0].digest")
    obj = minimal()
    obj["subject"][0]["annotations"] = {None: 1}
    rejects(obj, "$.subject[0].annotations")


# --- payload and parse --------------------------------------------------------------------------


def test_statement_payload_is_canonical() -> None:
    obj = minimal()
    obj["predicate"] = {"z": 1, "a": [1.0, "é"], "m": {"b": None, "a": True}}
    payload = statement_payload(obj)
    assert payload == canonicalize(obj)
    assert payload.startswith(b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"a":[1,')
    assert statement_payload(MappingProxyType(obj)) == payload


def test_statement_payload_validates_first() -> None:
    with pytest.raises(StatementError, match=r"^\$\._type"):
        statement_payload(_with(lambda s: s.update(_type=STATEMENT_TYPE_V01)))
    with pytest.raises(StatementError, match=r"^\$\.subject\[0\]\.digest"):
        statement_payload(_with(lambda s: s["subject"][0].pop("digest")))
    with pytest.raises(InputError):  # RFC 8785 cannot represent NaN
        statement_payload(_with(lambda s: s.update(predicate={"x": float("nan")})))


def test_parse_statement_round_trip() -> None:
    obj = minimal()
    assert parse_statement(statement_payload(obj)) == obj
    v01 = json.dumps(_with(lambda s: s.update(_type=STATEMENT_TYPE_V01))).encode()
    assert parse_statement(v01)["_type"] == STATEMENT_TYPE_V01
    with pytest.raises(StatementError, match=r"^\$\._type"):
        parse_statement(v01, allow_v01=False)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[]",
        b"\xef\xbb\xbf" + json.dumps(minimal()).encode(),
        b"\xff\xfe",
        json.dumps(minimal()).encode()[:-1],
        # Duplicate members: two parsers could read two different statements from one signature.
        json.dumps(minimal()).encode()[:-1] + b', "predicateType": "https://evil.example/t"}',
        b'{"_type": "https://in-toto.io/Statement/v1", "subject": [{"digest": {"sha256": "'
        + SHA256_A.encode()
        + b'", "sha256": "'
        + SHA256_B.encode()
        + b'"}}], "predicateType": "https://x.io/t"}',
        b'{"_type": NaN}',
    ],
)
def test_parse_statement_rejects(payload: bytes) -> None:
    with pytest.raises(StatementError):
        parse_statement(payload)


def test_parse_statement_depth_limit() -> None:
    deep = minimal()
    deep["predicate"] = {"a": json.loads("[" * 100 + "]" * 100)}
    with pytest.raises(StatementError, match="deeper"):
        parse_statement(json.dumps(deep).encode())


# --- property: StatementError or nothing --------------------------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            STATEMENT_TYPE_V1,
            STATEMENT_TYPE_V01,
            "https://x.io/t",
            SHA256_A,
            "A" * 64,
            "pkg:x/y",
            "",
            "_",
            "sha256",
        ]
    )
)
_keys = st.sampled_from(
    [
        "_type",
        "subject",
        "predicateType",
        "predicate",
        "name",
        "uri",
        "digest",
        "content",
        "downloadLocation",
        "mediaType",
        "annotations",
        "sha256",
        "sha512",
        "gitCommit",
        "SHA256",
        "Subject",
        "type",
    ]
) | st.text(max_size=8)
_odd = st.binary(max_size=4) | st.tuples(st.integers()) | st.just(object())
_values = st.recursive(
    _json_scalars | _odd,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_keys, children, max_size=5)
        | st.dictionaries(st.integers() | st.none(), children, max_size=2)
    ),
    max_leaves=25,
)
_descriptor = st.fixed_dictionaries(
    {},
    optional={
        "name": _json_scalars,
        "uri": _json_scalars,
        "digest": st.dictionaries(_keys, _json_scalars, max_size=3) | _values,
        "content": _json_scalars,
        "downloadLocation": _json_scalars,
        "mediaType": _json_scalars,
        "annotations": _values,
    },
)
_statements = st.fixed_dictionaries(
    {},
    optional={
        "_type": st.sampled_from([STATEMENT_TYPE_V1, STATEMENT_TYPE_V01]) | _json_scalars,
        "subject": st.lists(_descriptor | _values, max_size=4) | _values,
        "predicateType": _json_scalars,
        "predicate": _values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_values, _statements), st.booleans())
def test_validate_only_raises_statement_error(obj: object, allow_v01: bool) -> None:
    with contextlib.suppress(StatementError):
        validate_statement(obj, allow_v01=allow_v01)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | _statements.map(lambda s: json.dumps(s, default=repr).encode()))
def test_parse_statement_only_raises_statement_error(payload: bytes) -> None:
    with contextlib.suppress(StatementError):
        parse_statement(payload)
