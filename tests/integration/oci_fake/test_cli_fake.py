"""`attest --image`, `attach`, `download` and `verify --image` against the fake registry.

In-process (`dssesign.cli.main`, output captured): the fast tier stays fast. The fake is plain
HTTP, so every command that should reach it gets --allow-insecure-registry.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dssesign import trust as tr
from dssesign.cli import main
from dssesign.intoto.statement import ResourceDescriptor
from dssesign.oci import RegistryClient, attach_bundle, parse_reference, resolve
from dssesign.oci.layout import digest_of, referrers_tag
from dssesign.profiles.software import write_keypair
from dssesign.sign.attest import attest
from tests.conftest import signer_for
from tests.oci_fake import FakeRegistry

PASSWORD = "oci cli key passphrase"
INSECURE = "--allow-insecure-registry"
CUSTOM = "https://cosign.sigstore.dev/attestation/v1"
#: The keys of `verify --json`'s report; each group of `verify --image --json` has them.
VERIFY_KEYS = {
    "schemaVersion",
    "ok",
    "code",
    "message",
    "predicateType",
    "subjectsMatched",
    "keysCounted",
    "identitiesCounted",
    "warnings",
    "signatures",
    "roles",
}
#: The keys of `verify --image --json`'s report.
IMAGE_REPORT_KEYS = (
    "image",
    "digest",
    "referrers",
    "ok",
    "code",
    "attestations",
    "groups",
    "problems",
)
SIGNERS = {"a": ("ed25519", 20), "b": ("ecdsa-p256", 20), "stranger": ("ed25519", 21)}


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Run]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Keys a, b (trusted) and stranger (not), trust roots, and a predicate file."""
    d = tmp_path_factory.mktemp("oci-cli")
    for name, (algorithm, index) in SIGNERS.items():
        write_keypair(signer_for(algorithm, index), d / name, password=PASSWORD.encode())

    def root(names: tuple[str, ...], threshold: int, path: str) -> None:
        made = tr.init_trust_root(threshold=threshold, now=datetime.now(UTC) - timedelta(days=1))
        for name in names:
            made = tr.add_key(made, signer_for(*SIGNERS[name]).public_key)
        (d / path).write_bytes(tr.dump_trust_root(made))

    root(("a",), 1, "root-a.json")
    root(("a", "b"), 2, "root-ab2.json")
    (d / "predicate.txt").write_text("built by the oci cli tests\n")
    return {"dir": d, "root": d / "root-a.json", "root2": d / "root-ab2.json"}


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    """Run `dssesign` in-process in `tmp_path`: the key passphrase set, an empty DOCKER_CONFIG."""
    for name in list(os.environ):
        if name.startswith("DSSESIGN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DSSESIGN_KEY_PASSWORD", PASSWORD)
    (tmp_path / "docker").mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.chdir(tmp_path)

    def run(*args: str | Path) -> Run:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


@pytest.fixture
def image(fake_registry: FakeRegistry) -> tuple[FakeRegistry, str, str]:
    """The fake registry, an image pushed to it (tag v1), and its digest reference."""
    digest = fake_registry.push_image("app", tag="v1")
    return fake_registry, digest, f"{fake_registry.host}/app@{digest}"


def _key(world: dict[str, Path], name: str) -> Path:
    return world["dir"] / f"{name}.key"


def _attest(cli: Cli, world: dict[str, Path], ref: str, *extra: str | Path, key: str = "a") -> Run:
    """`attest --image REF`, envelope to ./env.json and bundles to ./bundles."""
    return cli(
        "attest", "--image", ref, INSECURE, "--key", _key(world, key), "--type", "custom",
        "--predicate", world["dir"] / "predicate.txt", "--out", "env.json",
        "--bundle-dir", "bundles", *extra,
    )  # fmt: skip


def _verify(cli: Cli, root: Path, ref: str, *extra: str) -> Run:
    return cli("verify", "--image", ref, "--trust-root", root, INSECURE, *extra)


def _one_error_line(run: Run, *fragments: str) -> str:
    lines = run.err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, run.err
    assert "Traceback" not in run.err and "Traceback" not in run.out
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def _writes(reg: FakeRegistry) -> list[tuple[str, str]]:
    return [(m, p) for m, p, _ in reg.requests if m in ("PUT", "POST", "PATCH", "DELETE")]


def _statement(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    statement: dict[str, Any] = json.loads(base64.b64decode(document["payload"]))
    return statement


# --- attest --image, verify --image ---------------------------------------------------------------


def test_attest_then_verify_image(cli: Cli, world: dict[str, Path], image: Any) -> None:
    reg, digest, ref = image
    run = _attest(cli, world, ref)
    assert run.code == 0, run
    statement = _statement(Path("env.json"))
    assert statement["subject"] == [
        {"name": f"{reg.host}/app", "digest": {"sha256": digest.removeprefix("sha256:")}}
    ]
    (bundle,) = sorted(Path("bundles").iterdir())
    assert reg.repo("app").blobs[digest_of(bundle.read_bytes())] == bundle.read_bytes()

    run = _verify(cli, world["root"], ref)
    assert run.code == 0, run
    assert f"OK: 1 of 1 attestations verified for {digest}" in run.out

    run = _verify(cli, world["root"], ref, "--json")
    assert run.code == 0, run
    report = run.json()
    assert set(report) == set(IMAGE_REPORT_KEYS)
    assert (report["ok"], report["code"], report["digest"]) == (True, "OK", digest)
    assert report["referrers"] == "referrers-api" and report["problems"] == []
    (attestation,) = report["attestations"]
    assert set(attestation) == {"source", "manifest", "layer", "kind", "group", "signatures"}
    listed = reg.referrers_of("app", digest)
    assert attestation["manifest"] == listed[0]["digest"] and len(listed) == 1
    assert attestation["layer"] == digest_of(bundle.read_bytes())
    assert attestation["source"] == "referrers-api" and attestation["kind"] == "bundle"
    assert attestation["group"] == 0
    assert [s["status"] for s in attestation["signatures"]] == ["counted"]
    (group,) = report["groups"]
    assert set(group) == VERIFY_KEYS | {"payloadSha256"}
    payload = base64.b64decode(json.loads(Path("env.json").read_text())["payload"])
    assert group["payloadSha256"] == digest_of(payload).removeprefix("sha256:")
    assert group["ok"] is True and group["predicateType"] == CUSTOM
    assert len(group["keysCounted"]) == 1
    assert group["subjectsMatched"][0]["digest"] == digest


def test_legacy_tag(cli: Cli, world: dict[str, Path], image: Any) -> None:
    reg, digest, ref = image
    assert _attest(cli, world, ref, "--legacy-tag").code == 0
    assert f"{referrers_tag(digest)}.att" in reg.repo("app").tags
    assert reg.referrers_of("app", digest) == []  # no referrer: cosign's legacy layout only
    run = _verify(cli, world["root"], ref, "--json")
    assert run.code == 0, run
    (attestation,) = run.json()["attestations"]
    assert (attestation["source"], attestation["kind"]) == ("legacy-tag", "envelope")


def test_a_key_not_in_the_trust_root_fails(cli: Cli, world: dict[str, Path], image: Any) -> None:
    _, digest, ref = image
    assert _attest(cli, world, ref, key="stranger").code == 0
    run = _verify(cli, world["root"], ref)
    assert run.code == 1, run
    _one_error_line(run, "verification failed", digest)
    report = _verify(cli, world["root"], ref, "--json").json()
    assert report["ok"] is False and report["code"] == "BUNDLE_KEY_UNTRUSTED"
    assert report["groups"][0]["keysCounted"] == []


def test_no_attestations(cli: Cli, world: dict[str, Path], image: Any) -> None:
    _, digest, ref = image
    run = _verify(cli, world["root"], ref)
    assert run.code == 1
    _one_error_line(run, "[NO_ATTESTATIONS]", digest)
    report = _verify(cli, world["root"], ref, "--json").json()
    assert (report["ok"], report["code"], report["groups"]) == (False, "NO_ATTESTATIONS", [])


def test_a_tag_is_refused_unless_resolve_tag(cli: Cli, world: dict[str, Path], image: Any) -> None:
    reg, digest, ref = image
    assert _attest(cli, world, ref).code == 0
    tagged, writes = f"{reg.host}/app:v1", len(_writes(reg))
    attest_tagged = (
        "attest", "--image", tagged, INSECURE, "--key", _key(world, "a"), "--type", "custom",
        "--predicate", world["dir"] / "predicate.txt", "--out", "env2.json",
    )  # fmt: skip
    for command in (
        ("verify", "--image", tagged, "--trust-root", world["root"], INSECURE),
        ("download", "--image", tagged, "--out", "dl", INSECURE),
        ("attach", "--image", tagged, INSECURE, "env.json", *Path("bundles").iterdir()),
        attest_tagged,
    ):
        run = cli(*command)
        assert run.code == 2, (command, run)
        _one_error_line(run, "names a tag, not a digest", "--resolve-tag")
    assert not Path("dl").exists() and not Path("env2.json").exists()
    assert len(_writes(reg)) == writes  # refused before anything was pushed
    run = _verify(cli, world["root"], tagged, "--resolve-tag")
    assert run.code == 0, run
    assert f"resolved to {digest}" in run.err


def test_plain_http_needs_allow_insecure_registry(
    cli: Cli, world: dict[str, Path], image: Any
) -> None:
    reg, _, ref = image
    run = cli("verify", "--image", ref, "--trust-root", world["root"])
    assert run.code == 1, run
    _one_error_line(run, "TLS to registry", reg.host)
    # attest --image reaches the registry before any key is used: nothing is signed.
    run = cli(
        "attest", "--image", ref, "--key", _key(world, "a"), "--type", "custom",
        "--predicate", world["dir"] / "predicate.txt", "--out", "env.json",
    )  # fmt: skip
    assert run.code == 1, run
    _one_error_line(run, "TLS to registry")
    assert not Path("env.json").exists()
    assert _writes(reg) == []


# --- download, offline verify -------------------------------------------------------------------


def test_download_then_verify_offline(cli: Cli, world: dict[str, Path], image: Any) -> None:
    reg, digest, ref = image
    assert _attest(cli, world, ref).code == 0
    run = cli("download", "--image", ref, INSECURE, "--out", "dl")
    assert run.code == 0, run
    files = sorted(Path("dl").iterdir())
    envelopes = [f for f in files if f.name.endswith(".dsse.json")]
    bundles = [f for f in files if f.name.endswith(".sigstore.json")]
    assert len(envelopes) == 1 and len(bundles) == 1 and len(files) == 2, files
    assert bundles[0].read_bytes() == next(Path("bundles").iterdir()).read_bytes()
    reg.stop()  # offline from here on
    run = cli("verify", "--trust-root", world["root"], "--digest", digest, *envelopes, *bundles)
    assert run.code == 0, run
    assert "1 subject match" in run.out
    assert _verify(cli, world["root"], ref).code == 1  # the registry is really gone


def _foreign_bundle(reg: FakeRegistry, digest: str, key: str = "a") -> tuple[bytes, str]:
    """A bundle, signed by a trusted key, whose Statement names another image; attached to
    `digest` by hand (the library does not check subjects). Its payload sha256."""
    other = reg.push_image("app", platform="linux/arm64")
    subject = ResourceDescriptor(name="app", digest={"sha256": other.removeprefix("sha256:")})
    made = attest([subject], b"about another image", "custom", keys=[signer_for(*SIGNERS[key])])
    client = RegistryClient(parse_reference(f"{reg.host}/app@{digest}"), insecure=True)
    bundle = made.bundles[0].data
    attach_bundle(client, resolve(client), bundle, CUSTOM)
    payload = base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"])
    return bundle, digest_of(payload).removeprefix("sha256:")


def test_an_attestation_about_another_image_is_not_counted(
    cli: Cli, world: dict[str, Path], image: Any
) -> None:
    reg, digest, ref = image
    _, foreign = _foreign_bundle(reg, digest)
    run = _verify(cli, world["root"], ref, "--json")
    assert run.code == 1, run
    report = run.json()
    assert (report["ok"], report["code"]) == (False, "SUBJECT_MISMATCH")
    assert [g["code"] for g in report["groups"]] == ["SUBJECT_MISMATCH"]
    run = cli("download", "--image", ref, INSECURE, "--out", "dl")
    assert run.code == 1, run
    _one_error_line(run, "no attestation of", digest)
    assert f"attestation {foreign[:16]}: its Statement does not name {digest}" in run.err
    assert not Path("dl").exists()

    assert _attest(cli, world, ref).code == 0  # now a genuine one as well
    report = _verify(cli, world["root"], ref, "--json").json()
    assert report["ok"] is True and len(report["groups"]) == 2
    by_payload = {g["payloadSha256"]: g for g in report["groups"]}
    assert (by_payload[foreign]["ok"], by_payload[foreign]["code"]) == (False, "SUBJECT_MISMATCH")
    assert [g["ok"] for p, g in by_payload.items() if p != foreign] == [True]
    run = cli("download", "--image", ref, INSECURE, "--out", "dl2")
    assert run.code == 0, run
    assert f"attestation {foreign[:16]}: its Statement does not name {digest}" in run.err
    names = [f.name for f in Path("dl2").iterdir()]
    assert len(names) == 2 and not any(foreign[:16] in name for name in names), names


def test_attach_refuses_an_envelope_about_another_image(
    cli: Cli, world: dict[str, Path], image: Any
) -> None:
    reg, _, ref = image
    other = "sha256:" + "ab" * 32
    run = cli(
        "attest", "--subject", other, "--key", _key(world, "a"), "--type", "custom",
        "--predicate", world["dir"] / "predicate.txt", "--out", "env.json",
        "--bundle-dir", "bundles",
    )  # fmt: skip
    assert run.code == 0, run
    for legacy in ((), ("--legacy-tag",)):
        bundles = list(Path("bundles").iterdir())
        run = cli("attach", "--image", ref, INSECURE, *legacy, "env.json", *bundles)
        assert run.code == 2, run
        _one_error_line(run, "no subject of its Statement has the image digest")
    assert _writes(reg) == []  # nothing pushed, not even a blob
    assert reg.referrers_of("app", other) == []


def test_attach_refuses_a_bundle_of_another_envelope(
    cli: Cli, world: dict[str, Path], image: Any
) -> None:
    reg, digest, ref = image
    for key in ("a", "b"):
        run = cli(
            "attest", "--subject", digest, "--key", _key(world, key), "--type", "custom",
            "--predicate", world["dir"] / "predicate.txt", "--out", f"env-{key}.json",
            "--bundle-dir", f"bundles-{key}",
        )  # fmt: skip
        assert run.code == 0, run
    (bundle_a,) = Path("bundles-a").iterdir()
    run = cli("attach", "--image", ref, INSECURE, "env-b.json", bundle_a)
    assert run.code == 2, run
    _one_error_line(run, "does not carry this envelope's payload and one of its signatures")
    assert _writes(reg) == []


# --- several signatures, one attestation --------------------------------------------------------


def test_bundles_attached_separately_are_grouped(
    cli: Cli, world: dict[str, Path], image: Any
) -> None:
    reg, digest, ref = image
    run = cli(
        "attest", "--subject", digest, "--key", _key(world, "a"), "--key", _key(world, "b"),
        "--type", "custom", "--predicate", world["dir"] / "predicate.txt", "--out", "env.json",
        "--bundle-dir", "bundles",
    )  # fmt: skip
    assert run.code == 0, run
    first, second = sorted(Path("bundles").iterdir())
    run = cli("attach", "--image", ref, INSECURE, "env.json", first)
    assert run.code == 0 and "attached to" in run.out, run
    # One of two keys: below the threshold of 2.
    run = _verify(cli, world["root2"], ref, "--json")
    assert run.code == 1 and len(run.json()["groups"][0]["keysCounted"]) == 1, run
    run = cli("attach", "--image", ref, INSECURE, "env.json", second)
    assert run.code == 0, run
    run = cli("attach", "--image", ref, INSECURE, "env.json", second)
    assert run.code == 0 and "already attached" in run.out, run
    assert len(reg.referrers_of("app", digest)) == 2
    run = _verify(cli, world["root2"], ref, "--json")
    assert run.code == 0, run
    report = run.json()
    (group,) = report["groups"]
    assert group["ok"] is True and len(group["keysCounted"]) == 2
    assert {a["group"] for a in report["attestations"]} == {0}
    assert len(report["attestations"]) == 2
    assert [len(a["signatures"]) for a in report["attestations"]] == [1, 1]


def test_a_tampered_referrer_is_a_problem(cli: Cli, world: dict[str, Path], image: Any) -> None:
    reg, _, ref = image
    assert _attest(cli, world, ref).code == 0
    tampered = digest_of(next(Path("bundles").iterdir()).read_bytes())
    Path("other.txt").write_text("another predicate: another payload, another referrer\n")
    run = cli(
        "attest", "--image", ref, INSECURE, "--key", _key(world, "a"), "--type", "custom",
        "--predicate", "other.txt", "--out", "env2.json",
        "--bundle-dir", "bundles2",
    )  # fmt: skip
    assert run.code == 0, run
    reg.tamper_blobs.add(tampered)
    run = _verify(cli, world["root"], ref, "--json")
    assert run.code == 0, run  # the other attestation still verifies
    report = run.json()
    (problem,) = report["problems"]
    assert set(problem) == {"source", "digest", "code", "message"}
    assert (problem["source"], problem["code"]) == ("referrers-api", "REGISTRY_CONTENT_INVALID")
    assert tampered in problem["message"]
    assert len(report["attestations"]) == 1 and len(report["groups"]) == 1
    run = _verify(cli, world["root"], ref)
    assert "skipped [REGISTRY_CONTENT_INVALID]" in run.out and run.code == 0


def test_platform_attests_the_platform_manifest(cli: Cli, world: dict[str, Path]) -> None:
    with FakeRegistry() as reg:
        index, images = reg.push_index("app", ["linux/amd64", "linux/arm64"])
        ref = f"{reg.host}/app@{index}"
        run = _attest(cli, world, ref, "--platform", "linux/arm64")
        assert run.code == 0, run
        arm = images["linux/arm64"]
        assert f"resolved to {arm}" in run.err
        subject = _statement(Path("env.json"))["subject"][0]
        assert subject["digest"] == {"sha256": arm.removeprefix("sha256:")}
        assert [e["digest"] for e in reg.referrers_of("app", index)] == []
        assert len(reg.referrers_of("app", arm)) == 1
        assert _verify(cli, world["root"], ref, "--platform", "linux/arm64").code == 0
        # The index itself and the other platform have no attestation.
        for extra in ((), ("--platform", "linux/amd64")):
            run = _verify(cli, world["root"], ref, *extra)
            assert run.code == 1 and "[NO_ATTESTATIONS]" in run.err, (extra, run)


def test_a_failed_attach_after_signing_keeps_the_outputs(
    cli: Cli, world: dict[str, Path], image: Any
) -> None:
    reg, _, ref = image
    reg.status_override = {"/v2/app/blobs/uploads/": 500}
    run = _attest(cli, world, ref)
    assert run.code == 1, run
    _one_error_line(run, "signed and written, but not attached", "dssesign attach", "500")
    assert Path("env.json").is_file() and len(list(Path("bundles").iterdir())) == 1
    assert _verify(cli, world["root"], ref).code == 1  # nothing attached
    reg.status_override = {}
    run = cli("attach", "--image", ref, INSECURE, "env.json", *Path("bundles").iterdir())
    assert run.code == 0 and "attached to" in run.out, run
    assert _verify(cli, world["root"], ref).code == 0
