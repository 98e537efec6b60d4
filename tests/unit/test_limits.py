"""Every bound names itself and how to raise it; DSSESIGN_LIMITS raises it for a site."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dssesign._internal.strict_json import loads_strict
from dssesign.errors import InputError
from dssesign.intoto.statement import validate_statement
from dssesign.limits import DEFAULT_LIMITS, LIMITS_ENV, Limits


def test_the_environment_changes_named_bounds_and_refuses_anything_else() -> None:
    raised = Limits.from_environment("max_json_bytes=1000, max_subjects=5")
    assert (raised.max_json_bytes, raised.max_subjects) == (1000, 5)
    assert raised.max_signatures == DEFAULT_LIMITS.max_signatures
    assert Limits.from_environment("") == Limits()
    for bad in ("max_json_bytes", "nope=3", "max_json_bytes=lots", "max_subjects=0"):
        with pytest.raises(ValueError, match=LIMITS_ENV):
            Limits.from_environment(bad)


@pytest.mark.parametrize(
    ("document", "limits", "name"),
    [
        (b"[" + b"1," * 20 + b"1]", Limits(max_array_items=10), "max_array_items"),
        (b"[" * 10 + b"]" * 10, Limits(max_json_depth=5), "max_json_depth"),
        (b'"' + b"x" * 100 + b'"', Limits(max_json_bytes=50), "max_json_bytes"),
    ],
)
def test_a_document_over_a_bound_names_it_and_how_to_raise_it(
    document: bytes, limits: Limits, name: str
) -> None:
    with pytest.raises(InputError) as info:
        loads_strict(document, what="doc", limits=limits)
    message = str(info.value)
    assert f"Limits.{name}" in message and f"{LIMITS_ENV}={name}=N" in message, message


def test_too_many_subjects_names_the_bound() -> None:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": f"s{i}", "digest": {"sha256": f"{i:064x}"}} for i in range(3)],
        "predicateType": "https://example.com/p/v1",
        "predicate": {},
    }
    with pytest.raises(InputError, match=f"Limits.max_subjects.*{LIMITS_ENV}=max_subjects=N"):
        validate_statement(statement, limits=Limits(max_subjects=2))


def test_the_command_line_takes_raised_bounds_and_refuses_a_bad_setting(tmp_path: Path) -> None:
    predicate = tmp_path / "p.json"
    predicate.write_text(json.dumps({"items": list(range(50))}))
    base = [sys.executable, "-m", "dssesign", "statement", "--subject", f"sha256:{'a' * 64}"]
    command = [*base, "--predicate", str(predicate), "--type", "https://example.com/p/v1"]
    env = {k: v for k, v in os.environ.items() if k != LIMITS_ENV}
    low = subprocess.run(
        command, env={**env, LIMITS_ENV: "max_array_items=10"}, capture_output=True, text=True
    )
    assert low.returncode == 2 and f"{LIMITS_ENV}=max_array_items=N" in low.stderr, low
    ok = subprocess.run(command, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok
    bad = subprocess.run(
        command, env={**env, LIMITS_ENV: "max_things=1"}, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad
    assert bad.stderr.startswith(f"error: {LIMITS_ENV}"), bad.stderr
