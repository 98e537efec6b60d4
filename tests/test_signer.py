from __future__ import annotations

from pathlib import Path

import pytest

from dssesign.errors import ConfigError, InputError
from dssesign.profiles.software import write_keypair
from dssesign.signer import Signer, SignerOptions, load_signer, register_scheme, registered_schemes

from .conftest import DelegatingSigner, signer_for


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
