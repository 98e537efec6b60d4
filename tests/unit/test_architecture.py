"""The shape of the code, checked: no import cycle, deferred imports say why, modules stay small.

import-linter (make lint) guards the layer contracts; this test adds what it does not see: a
cycle through an import inside a function, which a reader cannot spot and which hides layering
mistakes. TYPE_CHECKING imports are annotations, not imports, and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dssesign"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _runtime_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    annotations_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            annotations_only.update(id(inner) for inner in ast.walk(node))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in annotations_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {module for module in found if module in modules and module != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start, imported in graph.items():
        if start in index:
            continue
        work = [(start, iter(sorted(imported)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_the_import_graph_has_no_cycle_even_through_imports_inside_functions() -> None:
    modules = _modules()
    graph = {name: _runtime_imports(name, path, modules) for name, path in modules.items()}
    assert graph.get("dssesign.verify")
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_deferred_import_says_why() -> None:
    """`noqa: PLC0415` only where an import is deferred on purpose, with the reason beside it."""
    bare = [
        f"{path.relative_to(PACKAGE.parent)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "noqa: PLC0415" in line and "PLC0415 - " not in line
    ]
    assert bare == []


#: Old import paths (issue 13): each a thin shim that warns for one release.
SHIMS = {
    "dssesign.dsse": ("dssesign.core.dsse",),
    "dssesign.canonical": ("dssesign.core.canonical",),
    "dssesign.keys": ("dssesign.core.keys",),
    "dssesign.statement": ("dssesign.intoto.statement", "dssesign.intoto.subjects"),
    "dssesign.predicates": ("dssesign.intoto.predicates",),
    "dssesign.signer": ("dssesign.sign.signer",),
    "dssesign.multisign": ("dssesign.sign.multisign",),
    "dssesign.bundles": ("dssesign.sign.bundles",),
    "dssesign.bundle_verify": ("dssesign.verify.bundles",),
    "dssesign.trustroot": ("dssesign.trust",),
}
#: "About 600 lines": the ceiling a module may reach before it is split.
MAX_MODULE_LINES = 650


def test_every_old_path_warns_and_gives_the_same_objects() -> None:
    """A fresh interpreter per shim: the warning fires on first import only."""
    import subprocess
    import sys

    for old, new in SHIMS.items():
        script = (
            "import importlib, warnings\n"
            "warnings.simplefilter('error')\n"
            f"targets = [importlib.import_module(n) for n in {list(new)!r}]\n"
            "try:\n"
            f"    importlib.import_module({old!r})\n"
            "except DeprecationWarning as w:\n"
            f"    assert {new[0]!r} in str(w), w\n"
            "else:\n"
            "    raise SystemExit('no DeprecationWarning')\n"
            "warnings.simplefilter('ignore')\n"
            f"shim = importlib.import_module({old!r})\n"
            "assert shim.__all__, 'nothing re-exported'\n"
            "for name in shim.__all__:\n"
            "    assert any(getattr(t, name, None) is getattr(shim, name) for t in targets), name\n"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert done.returncode == 0, f"{old}: {done.stderr}"


def test_no_library_module_imports_an_old_path() -> None:
    modules = _modules()
    offenders = {
        name: sorted(imported & SHIMS.keys())
        for name, path in modules.items()
        if name not in SHIMS and name != "dssesign"
        for imported in [_runtime_imports(name, path, modules)]
        if imported & SHIMS.keys()
    }
    assert offenders == {}


def test_no_module_is_over_about_600_lines() -> None:
    sizes = {
        str(path.relative_to(PACKAGE.parent)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert sizes, "no module found"
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}
