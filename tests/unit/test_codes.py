"""One enum of codes, documented exactly: docs/verification.md's table is `CODES`, both ways."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from dssesign.codes import CODES, Code
from dssesign.errors import VerificationError

ROOT = Path(__file__).resolve().parents[2]
_ROW = re.compile(r"^\| `([A-Z_]+)` \| (.*) \|$")


def _documented() -> dict[str, str]:
    text = (ROOT / "docs" / "verification.md").read_text(encoding="utf-8")
    table = text.split("| code | meaning |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines():
        match = _ROW.fullmatch(line)
        assert match, f"not a code row: {line!r}"
        rows[match.group(1)] = match.group(2)
    return rows


def test_the_documented_table_is_the_enum_both_ways() -> None:
    documented = _documented()
    assert list(documented) == [str(code) for code in CODES]
    assert set(CODES) == set(Code)
    for code, meaning in CODES.items():
        assert documented[str(code)] == meaning, code


def test_a_string_that_is_not_a_code_is_refused() -> None:
    assert VerificationError(Code.OK, "x").code is Code.OK
    assert VerificationError("NO_SIGNATURES", "x").code is Code.NO_SIGNATURES  # type: ignore[arg-type]
    try:
        VerificationError("NO_SUCH_CODE", "x")  # type: ignore[arg-type]
    except ValueError:
        pass
    else:
        raise AssertionError("an unknown code was accepted")


def test_no_code_is_a_string_literal_in_library_code() -> None:
    """Codes are Code members wherever they are raised: no `"BUNDLE_MALFORMED"` strings."""
    names = {str(code) for code in Code}
    offenders = []
    for path in (ROOT / "dssesign").rglob("*.py"):
        if path.name == "codes.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        exported = {  # `__all__` lists names, which may spell like codes
            id(element)
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, ast.List | ast.Tuple)
            for element in node.value.elts
        }
        for node in ast.walk(tree):
            if id(node) in exported:
                continue
            if isinstance(node, ast.Constant) and node.value in names and node.value != "OK":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert not offenders, offenders
