from __future__ import annotations

import os
from pathlib import Path

import pytest

from dssesign.errors import ConfigError, InputError
from dssesign.profiles.software import write_keypair
from dssesign.sign.signer import (
    Signer,
    SignerOptions,
    load_signer,
    register_scheme,
    registered_schemes,
)
from tests.conftest import DelegatingSigner, signer_for


class _Fake(DelegatingSigner):
    """A stand-in backend registered under its own scheme, as later profiles will be."""

    def __init__(self, ref: str) -> None:
        super().__init__(signer_for("ed25519"), ref)


def test_new_schemes_plug_in_without_touching_the_core() -> None:
    seen: list[tuple[str, SignerOptions]] = []

    def loader(ref: str, options: SignerOptions) -> Signer:
        seen.append((ref, options))
        return _Fake(ref)

    register_scheme("fakekms", loader)
    signer = load_signer("fakekms://host/key-1", SignerOptions(password=b"x"))
    assert isinstance(signer, Signer)
    assert seen == [("fakekms://host/key-1", SignerOptions(password=b"x"))]
    assert "fakekms:" in registered_schemes()


def test_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown key reference scheme 'nosuch'.*file://"):
        load_signer("nosuch://x")


def test_empty_reference() -> None:
    with pytest.raises(ConfigError, match="empty key reference"):
        load_signer("")


def test_missing_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_signer(str(tmp_path / "absent.key"))
    with pytest.raises(InputError, match="is a directory"):
        load_signer(str(tmp_path))


def test_a_path_with_a_colon_that_exists_is_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_path, _ = write_keypair(signer_for("ed25519"), tmp_path / "weird:name", password=None)
    # "weird:name.key" is not a registered scheme and exists on disk: it is a file.
    monkeypatch.chdir(tmp_path)
    assert load_signer(key_path.name).keyid == signer_for("ed25519").keyid


# --- the scheme table: built-in backends imported on first use, third parties by entry point ---


def test_a_third_party_backend_plugs_in_through_the_entry_point_group(tmp_path: Path) -> None:
    """A tiny installed package registers `dummy:` in `dssesign.signers`; nothing else needed."""
    import subprocess
    import sys

    package = tmp_path / "dummy_signer"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from dssesign.profiles.software import generate\n"
        "def load(reference, options):\n"
        "    signer = generate('ed25519')\n"
        "    signer.reference = reference\n"
        "    return signer\n"
    )
    info = tmp_path / "dummy_signer-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dummy-signer\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dssesign.signers]\ndummy = dummy_signer:load\n")
    script = (
        "import sys\n"
        "from dssesign.sign.signer import load_signer, registered_schemes\n"
        "assert 'dummy:' in registered_schemes(), registered_schemes()\n"
        "signer = load_signer('dummy:key-1')\n"
        "assert signer.reference == 'dummy:key-1' and len(signer.sign(b'x')) == 64\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run


def test_loading_a_file_key_imports_no_other_backend(tmp_path: Path) -> None:
    import subprocess
    import sys

    from dssesign.profiles.software import generate

    write_keypair(generate("ed25519"), tmp_path / "k", password=None)
    script = (
        "import sys\n"
        "from dssesign.sign.signer import load_signer\n"
        f"load_signer({str(tmp_path / 'k.key')!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('dssesign.profiles.')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DSSESIGN_KEY_PASSWORD"}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "['dssesign.profiles.software']", run.stdout
