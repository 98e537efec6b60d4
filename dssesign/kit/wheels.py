"""The wheels a kit carries: dssesign and its pinned dependencies, offline-first from a cache."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .layout import _COPY_MODE_MASK, _PEP440, _REQUIREMENT_NAME, Progress, WheelSource

# --- wheels ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Wheel:
    filename: str
    name: str
    version: str


@dataclass(frozen=True)
class _WheelSet:
    dssesign: _Wheel
    #: Everything pip installs on the receiving side (dssesign included), sorted by file name.
    wheels: tuple[_Wheel, ...]
    installer: _Wheel
    python_versions: tuple[str, ...]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse_wheel(filename: str) -> _Wheel:
    parts = filename.removesuffix(".whl").split("-")
    if not filename.endswith(".whl") or len(parts) not in (5, 6):
        raise ConfigError(f"{filename}: not a wheel file name")
    return _Wheel(filename, _normalize(parts[0]), parts[1])


def _gather_wheels(
    dest: Path, source: WheelSource, work: Path, say: Progress, *, extras: tuple[str, ...] = ()
) -> _WheelSet:
    if importlib.util.find_spec("pip") is None:
        raise ConfigError(f"pip is not installed in {sys.executable}; it is needed to build a kit")
    local_dirs = [Path(p) for p in source.find_links]
    for directory in local_dirs:
        if not directory.is_dir():
            raise ConfigError(f"wheel directory {directory}: not a directory")
    cache = source.cache_dir
    if cache is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            local_dirs.append(cache)
        except OSError as exc:
            say(f"not using the wheel cache {cache}: {exc.strerror}")
            cache = None

    if source.dssesign_wheel is not None:
        own = Path(source.dssesign_wheel)
        if not own.is_file() or _parse_wheel(own.name).name != "dssesign":
            raise ConfigError(f"{own}: not a dssesign wheel")
    else:
        own = _build_own_wheel(work, source, local_dirs, cache, say)

    pip_version = _installed_version("pip")
    installer_req = f"pip=={pip_version}" if pip_version else "pip"
    constraints = work / "constraints.txt"
    constraints.write_text("".join(f"{pin}\n" for pin in _environment_pins(extras)))
    # With extras the built wheel is named by URL, so pip resolves the extras' dependencies.
    own_requirement = (
        f"dssesign[{','.join(extras)}] @ {own.resolve().as_uri()}" if extras else str(own)
    )
    shown = f" and the {', '.join(extras)} extra's" if extras else ""
    say(f"resolving dssesign's runtime dependencies{shown}")
    # pip's own wheel comes along: it is the installer on the receiving side.
    requirements = [own_requirement, installer_req]
    _pip_offline_first(
        ["wheel", "--wheel-dir", str(dest), "--constraint", str(constraints), *requirements],
        source,
        local_dirs,
        what="gather the dependency wheels",
    )

    running = "{}.{}".format(*sys.version_info[:2])
    versions = [running]
    for version in source.python_versions:
        if version not in versions:
            _add_wheels_for(
                version,
                dest,
                requirements=[own_requirement],
                constraints=constraints,
                source=source,
                local_dirs=local_dirs,
                work=work,
                say=say,
            )
            versions.append(version)

    wheels = [_parse_wheel(p.name) for p in sorted(dest.iterdir())]
    version_of: dict[str, _Wheel] = {}
    for wheel in wheels:
        other = version_of.setdefault(wheel.name, wheel)
        if other.version != wheel.version:
            raise ConfigError(
                f"the wheels disagree on the version of {wheel.name}: "
                f"{other.filename} and {wheel.filename} (pin one version)"
            )
    if "dssesign" not in version_of or "pip" not in version_of:
        raise ConfigError("pip did not produce the dssesign and pip wheels")
    missing = [name for name in _extra_requirement_names(own, extras) if name not in version_of]
    if missing:
        raise ConfigError(f"pip did not produce wheels for {', '.join(missing)} (dssesign extras)")
    if cache is not None:
        _fill_cache(dest, cache, exclude=("dssesign",))
    return _WheelSet(
        dssesign=version_of["dssesign"],
        wheels=tuple(w for w in wheels if w.name != "pip"),
        installer=version_of["pip"],
        python_versions=tuple(versions),
    )


def _add_wheels_for(
    version: str,
    dest: Path,
    *,
    requirements: list[str],
    constraints: Path,
    source: WheelSource,
    local_dirs: list[Path],
    work: Path,
    say: Progress,
) -> None:
    """Add the wheels another CPython version needs (same platform, same pinned versions)."""
    match = re.fullmatch(r"3\.([0-9]{1,3})", version)
    if sys.implementation.name != "cpython":
        raise ConfigError("extra Python versions are only supported when building with CPython")
    if not match or int(match.group(1)) < 11:
        raise ConfigError(f"python version {version!r}: expected 3.11 or later, as in 3.12")
    say(f"adding wheels for Python {version}")
    extra = work / f"py{version}"
    args = ["download", "--dest", str(extra), "--only-binary=:all:", "--implementation", "cp"]
    args += ["--python-version", version, "--constraint", str(constraints), *requirements]
    _pip_offline_first(
        args,
        source,
        local_dirs,
        what=f"gather wheels for Python {version}",
    )
    for path in sorted(extra.iterdir()):
        if not (dest / path.name).exists():
            shutil.copy(path, dest / path.name)  # with its mode, narrowed in _hash_existing


def _find_project_dir() -> Path:
    root = Path(__file__).resolve().parents[2]  # dssesign/kit/wheels.py -> the source tree
    pyproject = root / "pyproject.toml"
    try:
        name = tomllib.loads(pyproject.read_text("utf-8")).get("project", {}).get("name")
    except (OSError, ValueError):
        name = None
    if name != "dssesign":
        raise ConfigError(
            f"cannot find the dssesign source tree (dssesign is installed at {root}); "
            "pass the source tree or a prebuilt dssesign wheel"
        )
    return root


def _build_own_wheel(
    work: Path, source: WheelSource, local_dirs: list[Path], cache: Path | None, say: Progress
) -> Path:
    project = Path(source.project_dir) if source.project_dir else _find_project_dir()
    try:
        pyproject = tomllib.loads((project / "pyproject.toml").read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{project}/pyproject.toml: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{project}/pyproject.toml: {exc}") from None
    requires = pyproject.get("build-system", {}).get("requires", [])
    if cache is not None and requires:
        # Keep the build backend's wheels in the cache so the next build needs no network.
        _pip_offline_first(
            ["wheel", "--wheel-dir", str(cache), *requires],
            source,
            local_dirs,
            what="fetch the build backend",
        )
    say(f"building the dssesign wheel from {project}")
    dist = work / "dist"
    _pip_offline_first(
        ["wheel", "--no-deps", "--wheel-dir", str(dist), str(project)],
        source,
        local_dirs,
        what="build the dssesign wheel",
    )
    built = sorted(dist.glob("dssesign-*.whl"))
    if len(built) != 1:
        raise ConfigError(f"building dssesign from {project} did not produce one wheel")
    return built[0]


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _environment_pins(extras: Sequence[str] = ()) -> list[str]:
    """`name==version` for dssesign's dependency closure as installed here (and pip), through
    the requirements of the given dssesign extras too, so the kit runs this environment's
    versions. Below dssesign, every requirement is followed whatever its marker: an extra pin
    on an unused package is harmless, a missing one lets pip pick another version."""
    installed: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions():  # in sys.path order: first one wins
        name = dist.metadata["Name"]
        if name:
            installed.setdefault(_normalize(name), dist)
    wanted = ["dssesign", "pip"]
    seen: set[str] = set()
    pins: list[str] = []
    while wanted:
        key = wanted.pop()
        if key in seen or key not in installed:
            continue
        seen.add(key)
        dist = installed[key]
        for requirement in dist.requires or ():
            if key == "dssesign" and not _wanted_by(requirement, extras):
                continue
            match = _REQUIREMENT_NAME.match(requirement)
            if match:
                wanted.append(_normalize(match.group(1)))
        if key == "dssesign":
            continue  # always our own wheel, never a version from an index
        direct = dist.read_text("direct_url.json") or ""
        if '"dir_info"' in direct or '"vcs_info"' in direct:
            continue  # a local or VCS install has no index release to pin to
        if _PEP440.fullmatch(dist.version or ""):
            pins.append(f"{key}=={dist.version}")
    return sorted(pins)


_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")


def _wanted_by(requirement: str, extras: Sequence[str]) -> bool:
    """A base requirement of dssesign, or one of a requested extra's."""
    marker = requirement.partition(";")[2]
    named = {_normalize(m) for m in _EXTRA_MARKER.findall(marker)}
    return not named or bool(named & {_normalize(e) for e in extras})


def _extra_requirement_names(wheel: Path, extras: Sequence[str]) -> list[str]:
    """Distribution names the dssesign wheel requires for `extras` (read from its METADATA)."""
    if not extras:
        return []
    try:
        with zipfile.ZipFile(wheel) as archive:
            (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            text = archive.read(metadata).decode("utf-8")
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{wheel}: cannot read the wheel's metadata: {exc}") from None
    names = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = line.removeprefix("Requires-Dist:").strip()
        match = _REQUIREMENT_NAME.match(requirement)
        marker = requirement.partition(";")[2]
        if match and _EXTRA_MARKER.search(marker) and _wanted_by(requirement, extras):
            names.append(_normalize(match.group(1)))
    return names


def _pip_offline_first(
    args: list[str], source: WheelSource, local_dirs: Sequence[Path], *, what: str
) -> None:
    links = [f"--find-links={directory}" for directory in local_dirs]
    if links:
        offline = _pip([*args, "--no-index", *links], timeout=source.timeout)
        if offline is None:
            return
        if not source.allow_index:
            shown = ", ".join(str(d) for d in local_dirs)
            raise ConfigError(f"cannot {what} from local wheels only ({shown}): {offline}")
    elif not source.allow_index:
        raise ConfigError(f"cannot {what}: no wheel directories given and the index is not allowed")
    online = _pip([*args, *links], timeout=source.timeout)
    if online is not None:
        raise ConfigError(f"cannot {what}: {online}")


def _pip(args: list[str], *, timeout: float) -> str | None:
    """Run pip in this interpreter; None on success, else pip's error in one line."""
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input"]
    env = {**os.environ, "PIP_PROGRESS_BAR": "off"}
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return f"pip {args[0]} took longer than {timeout:g}s"
    except OSError as exc:
        return f"cannot run pip: {exc.strerror}"
    if proc.returncode == 0:
        return None
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    detail = "; ".join(errors[:2]) or (lines[-1] if lines else "")
    return f"pip {args[0]} failed (exit {proc.returncode}): {detail}"


def _fill_cache(wheel_dir: Path, cache: Path, *, exclude: Sequence[str]) -> None:
    for path in wheel_dir.iterdir():
        if _parse_wheel(path.name).name in exclude or (cache / path.name).exists():
            continue
        with contextlib.suppress(OSError):
            fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            try:
                shutil.copyfile(path, tmp)
                # mkstemp's 0600, opened to what pip gave the wheel here (never wider than
                # 0644): a kit built from the cache later keeps that mode.
                os.chmod(tmp, path.stat().st_mode & _COPY_MODE_MASK)
                os.replace(tmp, cache / path.name)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
