"""`dssesign countersign` and `dssesign merge` end to end, in real subprocesses."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dssesign.core.dsse import Envelope
from dssesign.profiles.software import write_keypair
from dssesign.trust import Policy, TrustedKey, TrustRoot, save_trust_root
from tests.conftest import signer_for
from tests.unit.cli.test_cli import ARTIFACT, ATTEST_SLSA, Run, assert_one_line_error, dssesign

A, B, C = signer_for("ed25519", 3), signer_for("ecdsa-p256", 3), signer_for("ecdsa-p384", 3)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Keys A, B (trusted, 2 of 2) and C (not trusted); a.json signed by A, b.json by B apart,
    each with its bundle beside it."""
    d = tmp_path_factory.mktemp("countersign")
    for name, signer in (("a", A), ("b", B), ("c", C)):
        write_keypair(signer, d / name, password=None)
    root = TrustRoot(
        version=1,
        expires=datetime.now(UTC).replace(microsecond=0) + timedelta(days=30),
        keys=(TrustedKey(A.public_key, label="build"), TrustedKey(B.public_key, label="review")),
        policy=Policy(threshold=2),
    )
    save_trust_root(d / "root.json", root)
    for name in ("a", "b"):
        (d / name).mkdir()
        run = dssesign(
            "attest",
            *ATTEST_SLSA,
            "--key",
            d / f"{name}.key",
            "--out",
            d / name / f"{name}.json",
            "--bundle-dir",
            d / name,
        )
        assert run.code == 0, run
    return {
        "dir": d,
        "root": d / "root.json",
        "a": d / "a" / "a.json",
        "b": d / "b" / "b.json",
        "key_a": d / "a.key",
        "key_b": d / "b.key",
        "key_c": d / "c.key",
    }


def _read(path: Path) -> Envelope:
    return Envelope.from_json(path.read_bytes())


def _edited(world: dict[str, Path], tmp: Path, edit: Any, source: str = "a") -> Path:
    data = json.loads(world[source].read_text())
    edit(data)
    path = tmp / "edited.json"
    path.write_text(json.dumps(data))
    return path


def _bundles(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.sigstore.json"))


def _verify(world: dict[str, Path], envelope: Path, *bundles: Path) -> Run:
    return dssesign("verify", "--trust-root", world["root"], envelope, *bundles)


# --- countersign -----------------------------------------------------------------------------


def test_countersign_appends_keeps_bytes_bundles_and_audits(
    world: dict[str, Path], tmp_path: Path
) -> None:
    out, bundles, log = tmp_path / "release.json", tmp_path / "bundles", tmp_path / "audit.log"
    run = dssesign(
        "countersign",
        world["a"],
        "--key",
        world["key_b"],
        "--out",
        out,
        "--bundle-dir",
        bundles,
        "--audit-log",
        log,
    )
    assert run.code == 0, run
    before, after = _read(world["a"]), _read(out)
    assert after.payload == before.payload and after.payload_type == before.payload_type
    assert after.signatures[0] == before.signatures[0]
    assert [s.keyid for s in after.signatures] == [A.keyid, B.keyid]
    assert json.loads(out.read_text())["payload"] == json.loads(world["a"].read_text())["payload"]
    # Only the new signature's bundle, named after --out.
    assert _bundles(bundles) == [f"release.{B.keyid[:16]}.sigstore.json"]
    # Threshold 2 is met: the old bundle beside a.json and the new one both verify with it.
    old_bundle = world["a"].parent / f"a.{A.keyid[:16]}.sigstore.json"
    checked = _verify(world, out, old_bundle, *sorted(bundles.iterdir()))
    assert checked.code == 0, checked
    assert "2 distinct trusted keys counted" in checked.out
    # Said on stderr: what was countersigned, and who had signed.
    assert "https://slsa.dev/provenance/v1" in run.err and A.keyid in run.err
    assert "hello-1.0.tar.gz" in run.err
    records = [json.loads(line) for line in log.read_text().splitlines()]
    signing = [r for r in records if r.get("type") == "record"]
    assert [(r["event"], r["keyid"], r["result"]) for r in signing] == [
        ("countersign", B.keyid, "success")
    ]


def test_countersign_refuses_a_key_that_already_signed(
    world: dict[str, Path], tmp_path: Path
) -> None:
    out, bundles = tmp_path / "out.json", tmp_path / "bundles"
    run = dssesign(
        "countersign", world["a"], "--key", world["key_a"], "--out", out, "--bundle-dir", bundles
    )
    assert_one_line_error(run, "already signed", "same keyid")
    assert not out.exists() and not bundles.exists()

    # The same key under another keyid (or none) is the same key.
    for keyid in ("another-keyid", ""):

        def rekey(data: dict[str, Any], keyid: str = keyid) -> None:
            data["signatures"][0]["keyid"] = keyid

        edited = _edited(world, tmp_path, rekey)
        run = dssesign("countersign", edited, "--key", world["key_a"], "--out", out)
        assert_one_line_error(run, "already signed", "same public key, under another keyid")
        assert not out.exists()


def test_countersign_with_the_trust_root_checks_first(
    world: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    run = dssesign(
        "countersign",
        world["a"],
        "--key",
        world["key_b"],
        "--trust-root",
        world["root"],
        "--type",
        "slsaprovenance1",
        "--artifact",
        ARTIFACT,
        "--existing-bundle",
        world["a"].parent / f"a.{A.keyid[:16]}.sigstore.json",
        "--out",
        out,
        "--json",
    )
    assert run.code == 0, run
    report = json.loads(run.out)
    assert report["schemaVersion"] == 1 and report["trustRootChecked"] is True
    assert report["existing"] == [A.keyid]
    assert [item["keyid"] for item in report["added"]] == [B.keyid]
    assert report["signatures"] == 2 and report["out"] == str(out)
    assert "not checked" not in run.err
    assert _verify(world, out).code == 0


def _flip_signature(data: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(data["signatures"][0]["sig"]))
    sig[-1] ^= 1
    data["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()


def _re_encode_payload(data: dict[str, Any]) -> None:
    statement = json.loads(base64.b64decode(data["payload"]))
    data["payload"] = base64.b64encode(json.dumps(statement, indent=2).encode()).decode()


@pytest.mark.parametrize(
    ("edit", "extra", "code"),
    [
        (_flip_signature, (), "NO_VALID_SIGNATURE"),
        (_re_encode_payload, (), "NO_VALID_SIGNATURE"),
        (None, ("--digest", "sha256:" + "0" * 64), "SUBJECT_MISMATCH"),
        (None, ("--type", "spdxjson"), "PREDICATE_TYPE_MISMATCH"),
    ],
    ids=["bad-signature", "payload-re-encoded", "wrong-subject", "wrong-type"],
)
def test_countersign_with_the_trust_root_refuses(
    world: dict[str, Path], tmp_path: Path, edit: Any, extra: tuple[str, ...], code: str
) -> None:
    envelope = _edited(world, tmp_path, edit) if edit else world["a"]
    out, bundles, log = tmp_path / "out.json", tmp_path / "bundles", tmp_path / "audit.log"
    run = dssesign(
        "countersign",
        envelope,
        "--key",
        world["key_b"],
        "--trust-root",
        world["root"],
        *extra,
        "--out",
        out,
        "--bundle-dir",
        bundles,
        "--audit-log",
        log,
    )
    assert run.code == 1, run
    assert run.err.startswith(f"error: verification failed [{code}]: countersign refused"), run
    assert len(run.err.strip().splitlines()) == 1
    assert not out.exists() and not bundles.exists() and not log.exists()


def test_countersign_refuses_when_one_existing_signature_is_untrusted(
    world: dict[str, Path], tmp_path: Path
) -> None:
    # A signed, then C (in no trust root): A's signature verifies, C's does not count.
    middle = tmp_path / "middle.json"
    run = dssesign("countersign", world["a"], "--key", world["key_c"], "--out", middle)
    assert run.code == 0, run
    out = tmp_path / "out.json"
    run = dssesign(
        "countersign", middle, "--key", world["key_b"], "--trust-root", world["root"], "--out", out
    )
    assert run.code == 1, run
    assert "[THRESHOLD_NOT_MET]" in run.err and "not every one of the 2" in run.err
    assert C.keyid[:16] in run.err
    assert not out.exists()


def test_countersign_reads_a_base64_variant_and_writes_standard_base64(
    world: dict[str, Path], tmp_path: Path
) -> None:
    def url_safe(data: dict[str, Any]) -> None:
        raw = base64.b64decode(data["payload"])
        data["payload"] = base64.urlsafe_b64encode(raw).decode()

    edited = _edited(world, tmp_path, url_safe)
    if edited.read_text() == world["a"].read_text():  # pragma: no cover - payload dependent
        pytest.skip("this payload's base64 has no '+' or '/'")
    out = tmp_path / "out.json"
    run = dssesign(
        "countersign", edited, "--key", world["key_b"], "--trust-root", world["root"], "--out", out
    )
    assert run.code == 0, run
    assert json.loads(out.read_text())["payload"] == json.loads(world["a"].read_text())["payload"]
    assert _verify(world, out).code == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--type", "slsaprovenance1"), "need --trust-root"),
        (("--existing-bundle", "x.json"), "need --trust-root"),
        (("--tsa", "http://127.0.0.1:9/"), "--tsa needs --bundle-dir"),
    ],
)
def test_countersign_usage_errors(
    world: dict[str, Path], tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    out = tmp_path / "out.json"
    run = dssesign("countersign", world["a"], "--key", world["key_b"], *args, "--out", out)
    assert_one_line_error(run, fragment)
    assert not out.exists()


def test_countersign_never_writes_over_its_input(world: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "a.json"
    shutil.copy(world["a"], copy)
    run = dssesign("countersign", copy, "--key", world["key_b"], "--out", copy)
    assert_one_line_error(run, "refusing to overwrite an input")
    assert copy.read_bytes() == world["a"].read_bytes()
    run = dssesign("countersign", copy, "--key", world["key_b"])
    assert run.code == 2 and "--out" in run.err


def test_countersign_refuses_a_malformed_envelope(world: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"payload": "e30=", "payload": "e30=", "payloadType": "x", "signatures": []}')
    out = tmp_path / "out.json"
    run = dssesign("countersign", bad, "--key", world["key_b"], "--out", out)
    assert_one_line_error(run, str(bad))
    assert not out.exists()


# --- merge -----------------------------------------------------------------------------------


def test_merge_two_envelopes_signed_apart_with_their_bundles(
    world: dict[str, Path], tmp_path: Path
) -> None:
    out, bundles = tmp_path / "release.json", tmp_path / "bundles"
    run = dssesign("merge", world["a"], world["b"], "--out", out, "--bundle-dir", bundles)
    assert run.code == 0, run
    merged = _read(out)
    assert merged.payload == _read(world["a"]).payload
    assert merged.signatures == _read(world["a"]).signatures + _read(world["b"]).signatures
    assert _bundles(bundles) == sorted(
        [f"release.{A.keyid[:16]}.sigstore.json", f"release.{B.keyid[:16]}.sigstore.json"]
    )
    assert "warning" not in run.err
    checked = _verify(world, out, *sorted(bundles.iterdir()))
    assert checked.code == 0, checked
    # Argument order is signature order.
    swapped = tmp_path / "swapped.json"
    assert dssesign("merge", world["b"], world["a"], "--out", swapped).code == 0
    assert [s.keyid for s in _read(swapped).signatures] == [B.keyid, A.keyid]


def test_merge_keeps_a_key_once(world: dict[str, Path], tmp_path: Path) -> None:
    countersigned = tmp_path / "ab.json"
    run = dssesign("countersign", world["a"], "--key", world["key_b"], "--out", countersigned)
    assert run.code == 0, run
    out = tmp_path / "out.json"
    run = dssesign("merge", world["b"], countersigned, world["a"], "--out", out, "--json")
    assert run.code == 0, run
    assert [s.keyid for s in _read(out).signatures] == [B.keyid, A.keyid]
    report = json.loads(run.out)
    assert report["schemaVersion"] == 1
    assert [(s["from"], s["index"]) for s in report["signatures"]] == [
        (str(world["b"]), 0),
        (str(countersigned), 0),
    ]
    assert [(s["from"], s["index"]) for s in report["dropped"]] == [
        (str(countersigned), 1),
        (str(world["a"]), 0),
    ]


def _other_type(data: dict[str, Any]) -> None:
    data["payloadType"] = "application/json"


def _key_order(data: dict[str, Any]) -> None:
    statement = json.loads(base64.b64decode(data["payload"]))
    reordered = dict(reversed(list(statement.items())))
    data["payload"] = base64.b64encode(
        json.dumps(reordered, separators=(",", ":")).encode()
    ).decode()


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (_other_type, "has payloadType 'application/json'"),
        (_re_encode_payload, "differs from"),
        (_key_order, "differs from"),
    ],
    ids=["payload-type", "whitespace", "key-order"],
)
def test_merge_refuses_another_payload(
    world: dict[str, Path], tmp_path: Path, edit: Any, fragment: str
) -> None:
    other = _edited(world, tmp_path, edit, source="b")
    out, bundles = tmp_path / "out.json", tmp_path / "bundles"
    run = dssesign("merge", world["a"], other, "--out", out, "--bundle-dir", bundles)
    assert_one_line_error(run, "cannot merge", str(other), fragment)
    assert not out.exists() and not bundles.exists()


def test_merge_accepts_a_base64_variant_of_the_same_bytes(
    world: dict[str, Path], tmp_path: Path
) -> None:
    def url_safe(data: dict[str, Any]) -> None:
        data["payload"] = base64.urlsafe_b64encode(base64.b64decode(data["payload"])).decode()

    variant = _edited(world, tmp_path, url_safe, source="b")
    out = tmp_path / "out.json"
    run = dssesign("merge", world["a"], variant, "--out", out)
    assert run.code == 0, run
    assert json.loads(out.read_text())["payload"] == json.loads(world["a"].read_text())["payload"]
    assert _verify(world, out).code == 0


def test_merge_usage(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    assert_one_line_error(dssesign("merge", world["a"], "--out", out), "at least two")
    run = dssesign("merge", world["a"], world["b"], "--out", out, "--bundles-from", tmp_path)
    assert_one_line_error(run, "--bundles-from needs --bundle-dir")
    run = dssesign("merge", world["a"], world["b"], "--out", world["a"])
    assert_one_line_error(run, "refusing to overwrite an input")
    assert not out.exists()


def test_merge_passes_over_a_bundle_of_another_signature(
    world: dict[str, Path], tmp_path: Path
) -> None:
    # b.json beside a bundle by the right name that holds A's signature: not copied.
    here = tmp_path / "here"
    here.mkdir()
    shutil.copy(world["b"], here / "b.json")
    wrong = world["a"].parent / f"a.{A.keyid[:16]}.sigstore.json"
    shutil.copy(wrong, here / f"b.{B.keyid[:16]}.sigstore.json")
    out, bundles = tmp_path / "m.json", tmp_path / "bundles"
    run = dssesign("merge", world["a"], here / "b.json", "--out", out, "--bundle-dir", bundles)
    assert run.code == 0, run
    assert _bundles(bundles) == [f"m.{A.keyid[:16]}.sigstore.json"]
    assert "no bundle found for signature 1" in run.err and B.keyid in run.err
    # With --bundles-from the right one is found there.
    again = tmp_path / "again"
    run = dssesign(
        "merge",
        world["a"],
        here / "b.json",
        "--out",
        tmp_path / "m2.json",
        "--bundle-dir",
        again,
        "--bundles-from",
        world["b"].parent,
    )
    assert run.code == 0, run
    assert len(_bundles(again)) == 2 and "warning" not in run.err
