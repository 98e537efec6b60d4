"""The package's public names: every one resolves lazily, and importing the package is cheap."""

from __future__ import annotations

import subprocess
import sys

import dssesign


def test_every_public_name_resolves_and_is_listed_once() -> None:
    assert sorted(dssesign.__all__) == sorted(set(dssesign.__all__))
    assert set(dssesign.__all__) == set(dssesign._EXPORTS)
    for name in dssesign.__all__:
        assert getattr(dssesign, name) is not None, name


def test_importing_the_package_imports_no_profile_or_heavy_dependency() -> None:
    code = (
        "import sys, dssesign; "
        "heavy = [m for m in ('jsonschema', 'sigstore', 'boto3', 'hvac', 'pkcs11', 'rich') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
