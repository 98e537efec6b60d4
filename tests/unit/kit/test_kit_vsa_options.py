"""`kit build --with-vsa` and `verify.sh --emit-vsa ...` up to the point where a kit is needed.

No wheels are built: the plan check runs before any are gathered, and verify.sh checks its
VSA options right after reading them, before it looks at the kit. The end-to-end run (wheels,
a VSA signed at the site) is tests/integration/kit/test_kit_vsa.py.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dssesign.cli import main
from dssesign.errors import ConfigError
from dssesign.intoto.statement import PAYLOAD_TYPE, build_statement, statement_payload
from dssesign.intoto.subjects import subject_from_digest
from dssesign.kit import WheelSource, build_kit
from dssesign.kit.assemble import _render_verify_script
from dssesign.kit.inputs import _check_vsa_plan, _plan_attestations
from dssesign.sign.bundles import bundle_stem, bundles_for, write_bundles
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.trust import add_key, dump_trust_root, init_trust_root
from tests.conftest import signer_for

#: Gathering wheels would fail at once with this (no index, no wheel directories): a test that
#: gets a --with-vsa error from build_kit knows no wheel was touched.
NO_WHEELS = WheelSource(cache_dir=None, allow_index=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A trust root; envelopes a.json (with two keyed bundles), b.json and c.json (without)."""
    d = tmp_path_factory.mktemp("kit-vsa")
    signers = [signer_for("ed25519"), signer_for("ecdsa-p256")]
    root = init_trust_root(threshold=1, now=datetime.now(UTC) - timedelta(days=1))
    for signer in signers:
        root = add_key(root, signer.public_key)
    (d / "root.json").write_bytes(dump_trust_root(root, allow_incomplete=False))
    multi = MultiProfileSigner(signers)
    paths: dict[str, Path] = {"root": d / "root.json"}
    for run, name in enumerate(("a", "b", "c"), 1):
        statement = build_statement(
            [subject_from_digest(f"sha256:{run:064x}")], "https://example.com/t/v1", {"run": run}
        )
        envelope = multi.sign(statement_payload(statement), PAYLOAD_TYPE)
        paths[name] = d / f"{name}.json"
        paths[name].write_bytes(envelope.to_json())
        if name == "a":
            written = write_bundles(d, bundles_for(envelope, signers, bundle_stem("a.json")))
            paths["a-bundle-1"], paths["a-bundle-2"] = written
    return paths


# --- kit build --with-vsa: one summary is one dssesign verify run ---------------------------


@pytest.mark.parametrize(
    "names",
    [["a", "a-bundle-1", "a-bundle-2"], ["b"], ["b", "c"], ["a-bundle-1"]],
    ids=["one-envelope-with-bundles", "one-envelope", "envelopes-without-bundles", "lone-bundle"],
)
def test_plans_one_run_can_summarise_are_accepted(world: dict[str, Path], names: list[str]) -> None:
    _check_vsa_plan(_plan_attestations([world[name] for name in names]))


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        (["a", "a-bundle-1", "a-bundle-2", "b"], "a.json comes with 2 bundle(s)"),
        (["b", "a-bundle-1"], "a.ed25519"),  # a lone bundle beside an envelope
    ],
)
def test_plans_one_run_cannot_summarise_are_refused_before_wheels(
    world: dict[str, Path], tmp_path: Path, names: list[str], fragment: str
) -> None:
    attestations = [world[name] for name in names]
    with pytest.raises(ConfigError) as caught:
        build_kit(
            world["root"], tmp_path / "kit", attestations, wheel_source=NO_WHEELS, with_vsa=True
        )
    message = str(caught.value)
    assert message.startswith("--with-vsa: attestation "), message
    assert "one dssesign verify run" in message and "one kit per attestation" in message
    assert "\n" not in message
    assert not (tmp_path / "kit").exists()
    # Without --with-vsa the same plan is fine: the build goes on to the wheels.
    with pytest.raises(ConfigError) as caught:
        build_kit(world["root"], tmp_path / "kit", attestations, wheel_source=NO_WHEELS)
    assert "--with-vsa" not in str(caught.value)


def test_plan_refusal_names_the_lone_bundle(world: dict[str, Path]) -> None:
    plan = _plan_attestations([world["b"], world["a-bundle-1"]])
    with pytest.raises(ConfigError, match="is a Sigstore bundle verified alone"):
        _check_vsa_plan(plan)


def test_cli_kit_build_with_vsa_refusal_is_one_line(
    world: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["kit", "build", "--with-vsa", "--trust-root", world["root"], "--out", tmp_path / "k"]
    code = main([str(a) for a in [*args, world["a"], world["a-bundle-1"], world["c"]]])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --with-vsa: "), err
    assert "Traceback" not in err


def test_cli_kit_build_help_names_with_vsa_and_jsonl(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["kit", "build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--with-vsa" in text and "--emit-vsa" in text
    assert ".jsonl" in text


# --- verify.sh: the VSA options, checked before the kit is looked at -------------------------


def _script(directory: Path, *, with_vsa: bool) -> Path:
    path = directory / "verify.sh"
    path.write_text(
        _render_verify_script(
            dssesign_version="0.0.0",
            python_versions=("3.11",),
            installer="wheels/pip.whl",
            with_vsa=with_vsa,
        )
    )
    return path


def _run(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )


VSA = ["--emit-vsa", "vsa.json", "--vsa-key", "vsa.key", "--resource-uri", "https://e.com/a"]


def test_a_kit_without_with_vsa_refuses_emit_vsa(tmp_path: Path) -> None:
    script = _script(tmp_path, with_vsa=False)
    assert "KIT_WITH_VSA=0\n" in script.read_text()
    run = _run(script, *VSA, cwd=tmp_path)
    assert run.returncode == 2, run
    assert run.stdout == ""
    assert run.stderr.startswith("verify.sh: --emit-vsa: this kit was built without --with-vsa")
    assert "dssesign kit build --with-vsa" in run.stderr
    assert len(run.stderr.splitlines()) == 1
    assert not (tmp_path / "vsa.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vsa-key", "k"], "--vsa-key is only used with --emit-vsa FILE"),
        (["--emit-vsa-on-failure"], "--emit-vsa-on-failure is only used with --emit-vsa"),
        (["--resource-uri=https://e.com/a"], "--resource-uri is only used with --emit-vsa"),
        (VSA[:2] + VSA[4:], "--emit-vsa needs --vsa-key REF"),
        (VSA[:4], "--emit-vsa needs --resource-uri URI"),
        ([*VSA, "--emit-vsa", "other.json"], "--emit-vsa given twice"),
        (["--emit-vsa="], "--emit-vsa needs a value"),
        ([*VSA, "--policy-uri", ""], "--policy-uri needs a value"),  # an unset shell variable
        ([*VSA, "--verified-level"], "--verified-level needs a value"),
        ([*VSA, "--root-keyid", "ab" * 32, "--root-threshold", "1"], "--root-threshold cannot"),
    ],
)
def test_vsa_options_are_checked_first(tmp_path: Path, args: list[str], message: str) -> None:
    run = _run(_script(tmp_path, with_vsa=True), *args, cwd=tmp_path)
    assert run.returncode == 2, run
    assert run.stderr.startswith(f"verify.sh: {message}"), run.stderr
    assert len(run.stderr.splitlines()) == 1, run.stderr


@pytest.mark.parametrize(
    "argument",
    ["--vsa-password=hunter2", "--password", "--vsa-passphrase=hunter2", "--key-secret=hunter2"],
)
def test_a_passphrase_argument_is_refused_and_never_echoed(tmp_path: Path, argument: str) -> None:
    run = _run(_script(tmp_path, with_vsa=True), *VSA, argument, cwd=tmp_path)
    assert run.returncode == 2, run
    assert "hunter2" not in run.stderr + run.stdout
    assert "$DSSESIGN_KEY_PASSWORD or --vsa-password-file" in run.stderr


def test_help_lists_the_vsa_options(tmp_path: Path) -> None:
    run = _run(_script(tmp_path, with_vsa=False), "--help", cwd=tmp_path)
    assert run.returncode == 0, run
    for option in ("--emit-vsa FILE", "--vsa-key REF", "--resource-uri URI", "--vsa-password-file",
                   "--emit-vsa-on-failure", "Exit status"):  # fmt: skip
        assert option in run.stdout, option
    assert "set -euo" not in run.stdout and "#" not in run.stdout


def test_vsa_values_are_passed_on_as_one_argument_each() -> None:
    """Every VSA option reaches dssesign as --OPTION=VALUE, quoted; nothing is evaluated."""
    text = _render_verify_script(dssesign_version="0", python_versions=(), installer="p")
    assert 'vsa_args+=("$1=$2")' in text
    assert '"--emit-vsa=$vsa_out"' in text
    # The only evals are read_listing's, on array names the script chose (never user input).
    evals = [line.strip() for line in text.splitlines() if "eval " in line]
    assert evals == ['eval "$2=()"', 'eval "$2+=(\\"\\$entry\\")"'], evals
