"""`.intoto.jsonl` end to end: `attest/sign --out FILE.jsonl [--append]` and
`verify FILE.jsonl [BUNDLE...]`, in real subprocesses."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dssesign.core.dsse import Envelope
from dssesign.sign.bundles import bundle_names, payload_tag
from tests.conftest import signer_for
from tests.unit.cli.test_cli import (
    ARTIFACT,
    PROVENANCE,
    Run,
    assert_one_line_error,
    dssesign,
)

PASSWORD = {"DSSESIGN_KEY_PASSWORD": "pw"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two keys, a 2-of-2 trust root and a 1-of-2 one for them."""
    d = tmp_path_factory.mktemp("jsonl")
    for alg in ("ed25519", "ecdsa-p256"):
        assert dssesign("keygen", "--algorithm", alg, "--out", d / alg, env=PASSWORD).code == 0
    for name, threshold in (("root2", "2"), ("root1", "1")):
        root = d / f"{name}.json"
        assert dssesign("trust-root", "init", "--out", root, "--threshold", threshold).code == 0
        for alg in ("ed25519", "ecdsa-p256"):
            run = dssesign("trust-root", "add-key", root, "--public-key", d / f"{alg}.pub")
            assert run.code == 0, run
    return {"dir": d, "root": d / "root2.json", "root1": d / "root1.json"}


def _keys(setup: dict[str, Path]) -> list[str | Path]:
    return ["--key", setup["dir"] / "ed25519.key", "--key", setup["dir"] / "ecdsa-p256.key"]


def _attest(setup: dict[str, Path], out: Path, run: int, *extra: str | Path) -> Run:
    """An attestation whose subject differs per `run` (so each payload differs)."""
    digest = hashlib.sha256(f"artifact {run}".encode()).hexdigest()
    return dssesign(
        "attest",
        "--subject",
        f"sha256:{digest}",
        "--predicate",
        PROVENANCE,
        "--type",
        "slsaprovenance1",
        *_keys(setup),
        "--out",
        out,
        *extra,
        env=PASSWORD,
    )


def _verify(setup: dict[str, Path], *args: str | Path, root: str = "root") -> Run:
    return dssesign("verify", "--trust-root", setup[root], *args)


def _write_lines(path: Path, lines: list[bytes], end: bytes = b"\n") -> Path:
    path.write_bytes(end.join(lines) + end)
    return path


@pytest.fixture(scope="module")
def two_lines(setup: dict[str, Path]) -> dict[str, Path]:
    """build.intoto.jsonl: two lines appended by one pair of keys, their bundles in bundles/."""
    d = setup["dir"] / "two"
    d.mkdir()
    out = d / "build.intoto.jsonl"
    for run in (1, 2):
        result = _attest(setup, out, run, "--append", "--bundle-dir", d / "bundles", "--json")
        assert result.code == 0, result
        assert json.loads(result.out)["line"] == run
    return {"jsonl": out, "bundles": d / "bundles"}


def _lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


# --- writing ---------------------------------------------------------------------------------


def test_append_twice_gives_two_lines_and_four_distinct_bundles(
    two_lines: dict[str, Path], setup: dict[str, Path]
) -> None:
    lines = _lines(two_lines["jsonl"])
    assert len(lines) == 2
    envelopes = [Envelope.from_json(line) for line in lines]
    assert all(line == e.to_json() for line, e in zip(lines, envelopes, strict=True))  # compact
    assert envelopes[0].payload != envelopes[1].payload
    names = sorted(p.name for p in two_lines["bundles"].iterdir())
    assert len(names) == 4 == len(set(names))
    keyids = [e.signatures[i].keyid[:16] for e in envelopes for i in (0, 1)]
    expected = sorted(
        f"build.intoto.{payload_tag(e.payload)}.{keyid}.sigstore.json"
        for e in envelopes
        for keyid in (e.signatures[0].keyid[:16], e.signatures[1].keyid[:16])
    )
    assert names == expected and len(set(keyids)) == 2
    # Each bundle holds its line's payload.
    for path in two_lines["bundles"].iterdir():
        bundle = json.loads(path.read_bytes())
        payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
        assert payload_tag(payload) in path.name
    # The lock sits beside the file and stays; nothing else was left behind.
    leftovers = {p.name for p in two_lines["jsonl"].parent.iterdir()}
    assert leftovers == {"build.intoto.jsonl", "build.intoto.jsonl.lock", "bundles"}


def test_bundle_names_keep_their_old_form_for_other_outputs(tmp_path: Path) -> None:
    signers = [signer_for("ed25519"), signer_for("ecdsa-p256")]
    plain = bundle_names(signers, "build")
    assert plain == [f"build.{s.keyid[:16]}.sigstore.json" for s in signers]
    tagged = bundle_names(signers, "build", payload=b"payload")
    tag = hashlib.sha256(b"payload").hexdigest()[:16]
    assert tagged == [f"build.{tag}.{s.keyid[:16]}.sigstore.json" for s in signers]


def test_without_append_a_jsonl_out_is_written_with_one_line(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "one.jsonl"
    out.write_bytes(b"old\n")
    run = _attest(setup, out, 1, "--bundle-dir", tmp_path / "b")
    assert run.code == 0, run
    assert "(line 1)" in run.out
    (line,) = _lines(out)
    tag = payload_tag(Envelope.from_json(line).payload)
    assert all(f"one.{tag}." in p.name for p in (tmp_path / "b").iterdir())
    # A plain .json out keeps the old bundle names.
    run = _attest(setup, tmp_path / "plain.json", 1, "--bundle-dir", tmp_path / "p")
    assert run.code == 0, run
    assert all(p.name.count(".") == 3 for p in (tmp_path / "p").iterdir())


def test_append_needs_a_jsonl_out(setup: dict[str, Path], tmp_path: Path) -> None:
    run = _attest(setup, tmp_path / "a.json", 1, "--append")
    assert_one_line_error(run, "--append needs --out FILE.jsonl")
    assert not (tmp_path / "a.json").exists()
    run = dssesign(
        "sign",
        "--payload",
        PROVENANCE,
        "--payload-type",
        "text/plain",
        *_keys(setup),
        "--append",
        env=PASSWORD,
    )
    assert_one_line_error(run, "--append needs --out FILE.jsonl")


def test_append_refuses_a_file_that_is_not_envelope_lines(
    setup: dict[str, Path], two_lines: dict[str, Path], tmp_path: Path
) -> None:
    good = _lines(two_lines["jsonl"])
    for content, fragment in [
        (good[0] + b"\n\n" + good[1] + b"\n", "line 2: blank"),
        (good[0] + b"\nnot json\n", "line 2: not valid JSON"),
        (b'{"a": 1}\n', "line 1: neither a DSSE envelope"),
    ]:
        out = tmp_path / "bad.intoto.jsonl"
        out.write_bytes(content)
        run = _attest(setup, out, 3, "--append", "--bundle-dir", tmp_path / "bundles")
        assert_one_line_error(run, "--append", fragment)
        assert out.read_bytes() == content
        assert not (tmp_path / "bundles").exists()  # checked before any key was used
    bundle = next(two_lines["bundles"].iterdir()).read_bytes()
    out.write_bytes(good[0] + b"\n" + bundle)
    assert_one_line_error(_attest(setup, out, 3, "--append"), "line 2: a Sigstore bundle")
    # Full: refused before signing, by the bound's name.
    out.write_bytes(good[0] + b"\n")
    run = dssesign(
        "attest",
        "--subject",
        f"sha256:{'c' * 64}",
        "--predicate",
        PROVENANCE,
        "--type",
        "slsaprovenance1",
        *_keys(setup),
        "--out",
        out,
        "--append",
        env={**PASSWORD, "DSSESIGN_LIMITS": "max_jsonl_lines=1"},
    )
    assert_one_line_error(run, "Limits.max_jsonl_lines")


def test_append_keeps_crlf_and_ends_an_unterminated_last_line(
    setup: dict[str, Path], two_lines: dict[str, Path], tmp_path: Path
) -> None:
    good = _lines(two_lines["jsonl"])
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(good[0] + b"\r\n" + good[1] + b"\r\n")
    assert _attest(setup, crlf, 3, "--append").code == 0
    data = crlf.read_bytes()
    assert data.count(b"\r\n") == 3 and data.endswith(b"\r\n")
    assert data.startswith(good[0] + b"\r\n" + good[1] + b"\r\n")
    bare = tmp_path / "bare.jsonl"
    bare.write_bytes(good[0])
    assert _attest(setup, bare, 3, "--append").code == 0
    lines = _lines(bare)
    assert len(lines) == 2 and lines[0] == good[0]
    for name in ("crlf.jsonl", "bare.jsonl"):
        assert _verify(setup, tmp_path / name).code == 0


def test_concurrent_appends_lose_nothing_and_leave_no_half_line(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "shared.intoto.jsonl"
    count = 4
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSSESIGN_")} | PASSWORD
    processes = []
    for index in range(count):
        digest = hashlib.sha256(f"concurrent {index}".encode()).hexdigest()
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dssesign",
                    "attest",
                    "--subject",
                    f"sha256:{digest}",
                    "--predicate",
                    str(PROVENANCE),
                    "--type",
                    "slsaprovenance1",
                    *map(str, _keys(setup)),
                    "--out",
                    str(out),
                    "--append",
                    "--bundle-dir",
                    str(tmp_path / "bundles"),
                    "--json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        )
    added = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()
        added.append(json.loads(stdout)["line"])
    assert sorted(added) == list(range(1, count + 1))
    lines = _lines(out)
    assert len(lines) == count
    assert len({Envelope.from_json(line).payload for line in lines}) == count
    assert len(list((tmp_path / "bundles").iterdir())) == 2 * count
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    run = _verify(setup, out, *sorted((tmp_path / "bundles").iterdir()))
    assert run.code == 0, run


def test_sign_writes_json_lines_too(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "blobs.jsonl"
    runs = [
        dssesign(
            "sign",
            "--payload",
            ARTIFACT,
            "--payload-type",
            "application/octet-stream",
            *_keys(setup),
            "--out",
            out,
            "--append",
            "--bundle-dir",
            tmp_path / "b",
            env=PASSWORD,
        )
        for _ in range(2)
    ]
    assert runs[0].code == 0, runs[0]
    lines = _lines(out)
    assert len(lines) == 1
    assert Envelope.from_json(lines[0]).payload == ARTIFACT.read_bytes()
    bundles = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert len(bundles) == 2
    # The same payload again: its bundles would take line 1's names (red team: a repeated
    # payload overwrote them). Refused; the file and line 1's bundles stay as they were.
    assert runs[1].code == 2 and "already holds this payload" in runs[1].err, runs[1]
    assert _lines(out) == lines
    assert {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()} == bundles


# --- verifying -------------------------------------------------------------------------------


def test_verify_every_line_with_its_bundles(
    setup: dict[str, Path], two_lines: dict[str, Path]
) -> None:
    bundles = sorted(two_lines["bundles"].iterdir())
    run = _verify(setup, two_lines["jsonl"], *bundles, "--json")
    assert run.code == 0, run
    report = json.loads(run.out)
    assert report["ok"] is True and report["code"] == "OK" and report["schemaVersion"] == 1
    assert report["message"] == "2 of 2 line(s) verified"
    assert [(e["line"], e["kind"], e["bundles"], e["code"]) for e in report["lines"]] == [
        (1, "envelope", 2, "OK"),
        (2, "envelope", 2, "OK"),
    ]
    first = report["lines"][0]
    assert first["predicateType"] == "https://slsa.dev/provenance/v1"
    assert [s["status"] for s in first["signatures"]] == ["counted", "counted"]
    text = _verify(setup, two_lines["jsonl"], *bundles)
    assert text.code == 0, text
    out = text.out.splitlines()
    assert out[0].startswith("line 1: PASS [OK] https://slsa.dev/provenance/v1 with 2 bundle(s)")
    assert out[1].startswith("line 2: PASS [OK]")
    assert out[2] == f"OK: 2 of 2 line(s) of {two_lines['jsonl']} verified"
    # Without bundles the envelope signatures are enough.
    assert _verify(setup, two_lines["jsonl"]).code == 0


def _tampered_copy(two_lines: dict[str, Path], target: Path, end: bytes = b"\n") -> Path:
    lines = _lines(two_lines["jsonl"])
    envelope = json.loads(lines[1])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["buildDefinition"]["forged"] = True
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    return _write_lines(target, [lines[0], json.dumps(envelope).encode()], end)


def test_a_tampered_line_fails_that_line_and_the_command(
    setup: dict[str, Path], two_lines: dict[str, Path], tmp_path: Path
) -> None:
    tampered = _tampered_copy(two_lines, tmp_path / "t.jsonl", b"\r\n")
    run = _verify(setup, tampered, "--json")
    assert run.code == 1, run
    report = json.loads(run.out)
    assert report["ok"] is False and report["code"] == "NO_VALID_SIGNATURE"
    assert "line 2 failed" in report["message"]
    assert [(e["line"], e["ok"]) for e in report["lines"]] == [(1, True), (2, False)]
    assert report["lines"][1]["predicateType"] is None
    assert [s["status"] for s in report["lines"][1]["signatures"]] == ["invalid", "invalid"]
    text = _verify(setup, tampered)
    assert text.code == 1
    assert text.out.splitlines()[1].startswith("line 2: FAIL [NO_VALID_SIGNATURE] -: none of")
    assert text.out.splitlines()[-1].startswith("FAILED: 1 of 2 line(s)")
    any_line = _verify(setup, tampered, "--any-line", "--json")
    assert any_line.code == 0, any_line
    report = json.loads(any_line.out)
    assert report["ok"] is True and report["anyLine"] is True
    assert report["message"] == "1 of 2 line(s) verified (--any-line)"
    # Every line bad: --any-line fails too.
    only_bad = _write_lines(tmp_path / "bad.jsonl", [_lines(tampered.with_name("t.jsonl"))[1]])
    assert _verify(setup, only_bad, "--any-line").code == 1


def test_crlf_and_a_trailing_newline_are_accepted(
    setup: dict[str, Path], two_lines: dict[str, Path], tmp_path: Path
) -> None:
    lines = _lines(two_lines["jsonl"])
    for name, data in [
        ("crlf.jsonl", b"\r\n".join(lines) + b"\r\n"),
        ("none.jsonl", b"\n".join(lines)),
        ("crlf-none.jsonl", b"\r\n".join(lines)),
    ]:
        path = tmp_path / name
        path.write_bytes(data)
        run = _verify(setup, path)
        assert run.code == 0, (name, run)


@pytest.mark.parametrize(
    ("case", "line", "fragment"),
    [
        ("blank", 2, "blank"),
        ("two-final-newlines", 3, "blank"),
        ("not-json", 2, "not valid JSON"),
        ("neither", 2, "neither a DSSE envelope nor a Sigstore bundle"),
        ("array", 1, "not a JSON object"),
        ("too-long", 2, "Limits.max_json_bytes"),
        ("envelope-and-bundle", 2, "both DSSE envelope and Sigstore bundle members"),
    ],
)
def test_an_unreadable_line_is_exit_2_naming_it(
    setup: dict[str, Path],
    two_lines: dict[str, Path],
    tmp_path: Path,
    *,
    case: str,
    line: int,
    fragment: str,
) -> None:
    good = _lines(two_lines["jsonl"])
    env = None
    data = {
        "blank": good[0] + b"\n\n" + good[1] + b"\n",
        "two-final-newlines": good[0] + b"\n" + good[1] + b"\n\n",
        "not-json": good[0] + b"\n{oops\n",
        "neither": good[0] + b'\n{"predicateType": "x"}\n',
        "array": b"[" + good[0] + b"]\n",
        # Red team: an envelope line that also carries bundle members (another envelope).
        "envelope-and-bundle": good[0]
        + b"\n"
        + json.dumps(
            {
                **json.loads(good[1]),
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "dsseEnvelope": json.loads(good[0]),
            }
        ).encode()
        + b"\n",
    }.get(case)
    if case == "too-long":
        padded = json.loads(good[1])
        limit = max(len(good[0]), setup["root"].stat().st_size) + 100
        padded["padding"] = "x" * limit
        data = good[0] + b"\n" + json.dumps(padded).encode() + b"\n"
        env = {"DSSESIGN_LIMITS": f"max_json_bytes={limit}"}
    path = tmp_path / "bad.intoto.jsonl"
    assert data is not None
    path.write_bytes(data)
    run = dssesign("verify", "--trust-root", setup["root"], path, env=env)
    assert_one_line_error(run, f"{path}: line {line}: ", fragment)
    report = dssesign("verify", "--trust-root", setup["root"], path, "--json", env=env)
    assert report.code == 2
    parsed = json.loads(report.out)
    assert parsed["ok"] is False and parsed["code"] == "UNREADABLE"
    assert f"line {line}: " in parsed["message"] and parsed["lines"] == []
    # --any-line does not make an unreadable file pass.
    assert dssesign("verify", "--trust-root", setup["root"], path, "--any-line", env=env).code == 2


def test_too_many_lines_is_exit_2(setup: dict[str, Path], two_lines: dict[str, Path]) -> None:
    run = dssesign(
        "verify",
        "--trust-root",
        setup["root"],
        two_lines["jsonl"],
        env={"DSSESIGN_LIMITS": "max_jsonl_lines=1"},
    )
    assert_one_line_error(run, "2 lines exceed", "Limits.max_jsonl_lines")


def test_a_jsonl_of_sigstore_bundles_verifies_line_by_line(
    setup: dict[str, Path], two_lines: dict[str, Path], tmp_path: Path
) -> None:
    """The form `gh attestation download` writes: one bundle JSON per line (keyed here)."""
    bundles = [p.read_bytes().strip() for p in sorted(two_lines["bundles"].iterdir())]
    path = _write_lines(tmp_path / "sha256:abc.jsonl", bundles)
    run = _verify(setup, path, "--json", root="root1")
    assert run.code == 0, run
    report = json.loads(run.out)
    assert [(e["line"], e["kind"], e["ok"]) for e in report["lines"]] == [
        (n, "bundle", True) for n in range(1, 5)
    ]
    text = _verify(setup, path, root="root1")
    assert text.out.splitlines()[0].startswith(
        "line 1: PASS [OK] https://slsa.dev/provenance/v1 (a bundle)"
    )
    # A threshold of two cannot be met by one key's bundle: every line fails.
    assert _verify(setup, path).code == 1
    # A tampered bundle line fails that line only.
    bundle = json.loads(bundles[2])
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(b"\x00" * 64).decode()
    bundles[2] = json.dumps(bundle).encode()
    tampered = _write_lines(tmp_path / "tampered.jsonl", bundles, b"\r\n")
    run = _verify(setup, tampered, "--json", root="root1")
    assert run.code == 1
    assert [e["ok"] for e in json.loads(run.out)["lines"]] == [True, True, False, True]
    assert _verify(setup, tampered, "--any-line", root="root1").code == 0


def test_wrong_argument_shapes_are_exit_2(
    setup: dict[str, Path], two_lines: dict[str, Path], tmp_path: Path
) -> None:
    jsonl = two_lines["jsonl"]
    bundle = next(two_lines["bundles"].iterdir())
    assert_one_line_error(_verify(setup, jsonl, jsonl), "one FILE.jsonl")
    assert_one_line_error(_verify(setup, bundle, jsonl), "one FILE.jsonl")
    envelope = tmp_path / "env.json"
    envelope.write_bytes(_lines(jsonl)[0])
    assert_one_line_error(_verify(setup, jsonl, envelope), "is not a Sigstore bundle")
    assert_one_line_error(_verify(setup, envelope, "--any-line"), "--any-line is for a .jsonl")
    assert_one_line_error(_verify(setup, tmp_path / "missing.jsonl"), "no such file")


def test_a_bundle_of_no_line_fails_the_command_naming_it(
    setup: dict[str, Path], two_lines: dict[str, Path], tmp_path: Path
) -> None:
    first_only = _write_lines(tmp_path / "first.jsonl", _lines(two_lines["jsonl"])[:1])
    first_payload = Envelope.from_json(_lines(first_only)[0]).payload
    stray = next(
        p for p in two_lines["bundles"].iterdir() if payload_tag(first_payload) not in p.name
    )
    run = _verify(setup, first_only, stray)
    assert run.code == 1, run
    assert "BUNDLE_PAYLOAD_MISMATCH" in run.err and f"bundle {stray}: belongs to no" in run.err
    report = json.loads(_verify(setup, first_only, stray, "--json").out)
    assert report["code"] == "BUNDLE_PAYLOAD_MISMATCH" and report["ok"] is False


def test_control_characters_in_reports_are_escaped(
    setup: dict[str, Path], two_lines: dict[str, Path], tmp_path: Path
) -> None:
    path = _tampered_copy(two_lines, tmp_path / "evil\x1b[2K.jsonl")
    run = _verify(setup, path)
    assert run.code == 1
    assert "\x1b" not in run.out and "\\x1b[2K" in run.out
