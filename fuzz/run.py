"""Run the fuzzing campaign: every target for a bounded time, findings saved, a row per target
appended to docs/fuzzing.md (``make fuzz``; ``python -m fuzz.run --help``).

One libFuzzer process (atheris) runs at a time, under ``nice``. A run that stops on a finding
is replayed without instrumentation, minimised (delta debugging that keeps the same failure)
into ``fuzz/crashes/<target>/``, and the target resumes for the rest of its time; failures
already saved there are recognised and counted, not saved again. A libFuzzer timeout that does
not reproduce in a fresh process (the machine is shared) is noted, not saved.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: fuzz._common.SCRATCH_ENV (not imported: the worker imports dssesign only once instrumenting).
SCRATCH_ENV = "DSSESIGN_FUZZ_SCRATCH"
TARGETS = (
    "envelope", "statement", "trustroot", "bundle", "audit", "kit", "keys", "keyref", "predicates",
)  # fmt: skip
#: Executions each target must reach across the campaign (issue 12, item 5).
GOALS = {"envelope": 1_000_000, "statement": 1_000_000, "bundle": 1_000_000}
DEFAULT_GOAL = 200_000
REPORT = ROOT / "docs" / "fuzzing.md"
WORK = ROOT / "build" / "fuzz"
CRASHES = ROOT / "fuzz" / "crashes"
ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "slow-unit-", "leak-")
TOTALS_BEGIN = "<!-- totals:begin (written by fuzz/run.py) -->"
TOTALS_END = "<!-- totals:end -->"
LOG_HEADER = "## Campaign log"


def target_module(name: str) -> ModuleType:
    if name not in TARGETS:
        raise SystemExit(f"unknown target {name!r} (known: {', '.join(TARGETS)})")
    return importlib.import_module(f"fuzz.fuzz_{name}")


# --- failure signatures --------------------------------------------------------------------


def signature(exc: BaseException) -> str:
    """What makes two failures the same finding: the exception type (and contract kind) and the
    innermost dssesign function it passed through (by name: line numbers move as code changes)."""
    from fuzz._common import ContractViolation  # noqa: PLC0415

    kind = type(exc).__name__
    if isinstance(exc, ContractViolation):
        kind = f"contract:{exc.kind}"
        cause = exc.__cause__ or exc.__context__
        if exc.kind == "internal":
            detail = re.match(r"internal error \((\w+)", str(exc).split(": ", 1)[-1])
            kind += f":{detail.group(1)}" if detail else ""
        elif cause is not None:
            exc = cause
    where = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if "dssesign" in path.parts:
            where = f"{path.parent.name}/{path.name}:{frame.name}"
    return f"{kind}@{where}"


def failure_of(check: Callable[[bytes], None], data: bytes) -> BaseException | None:
    try:
        check(data)
    except Exception as exc:  # every escaping exception is a finding
        return exc
    return None


def _guarded(module: ModuleType) -> Callable[[bytes], None]:
    from fuzz._common import Guard  # noqa: PLC0415

    return Guard(module.check)


def minimise(check: Callable[[bytes], None], data: bytes, wanted: str, budget: float = 60) -> bytes:
    """Delta debugging: drop chunks (halving their size), then simplify single bytes, keeping
    the failure's signature. Bounded by `budget` seconds."""
    deadline = time.monotonic() + budget

    def same(candidate: bytes) -> bool:
        failure = failure_of(check, candidate)
        return failure is not None and signature(failure) == wanted

    best = data
    chunk = max(1, len(best) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        start, progress = 0, False
        while start < len(best) and time.monotonic() < deadline:
            candidate = best[:start] + best[start + chunk :]
            if candidate != best and same(candidate):
                best, progress = candidate, True
            else:
                start += chunk
        if not progress:
            chunk //= 2
    for index in range(len(best)):
        if time.monotonic() >= deadline:
            break
        for simpler in b"0a ":
            if best[index] != simpler:
                candidate = best[:index] + bytes([simpler]) + best[index + 1 :]
                if same(candidate):
                    best = candidate
                    break
    return best


def known_failures(module: ModuleType, folder: Path) -> dict[str, Path]:
    """Signatures of the saved findings that still fail (fixed ones are simply not known)."""
    known: dict[str, Path] = {}
    check = _guarded(module)
    for path in sorted(folder.glob("*.bin")) if folder.is_dir() else ():
        failure = failure_of(check, path.read_bytes())
        if failure is not None:
            known.setdefault(signature(failure), path)
    return known


# --- the worker: one atheris process ---------------------------------------------------------


def worker(name: str, libfuzzer_args: Sequence[str]) -> None:
    atheris: Any = importlib.import_module("atheris")  # only the worker needs it (`fuzz` extra)
    import dssesign  # noqa: PLC0415

    with atheris.instrument_imports(include=["dssesign"]):
        for info in pkgutil.walk_packages(dssesign.__path__, "dssesign."):
            if info.name.endswith(("__main__", ".cli")) or "._cli_" in info.name:
                continue  # the command line: running __main__ would start it
            with contextlib.suppress(ImportError):
                importlib.import_module(info.name)
        module = target_module(name)
    from fuzz._common import Guard  # noqa: PLC0415

    notes_path = WORK / f"{name}.notes"

    def note(text: str) -> None:
        with notes_path.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")

    known = known_failures(module, CRASHES / name)
    for seed in module.seeds():  # warm caches and lazy imports before memory is watched
        failure_of(module.check, seed)
    guard = Guard(module.check, notes=note)

    def one_input(data: bytes) -> None:
        try:
            guard(data)
        except Exception as exc:
            found = signature(exc)
            if found in known:
                note(f"known {found}")
                return
            # Saved here as well: libFuzzer does not always get to write its artifact.
            saved = CRASHES / name / f"crash-{hashlib.sha1(data).hexdigest()}"  # noqa: S324
            if not saved.exists():
                saved.write_bytes(data)
            raise

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


# --- the campaign ------------------------------------------------------------------------------


@dataclass
class Run:
    target: str
    seconds: float = 0.0
    executions: int = 0
    new_units: int = 0
    corpus_before: int = 0
    corpus_after: int = 0
    coverage: str = ""
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _dict_line(token: str) -> str:
    out = []
    for byte in token.encode("utf-8"):
        char = chr(byte)
        if char in '"\\' or not 0x20 <= byte < 0x7F:
            out.append(f"\\x{byte:02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _prepare(name: str, module: ModuleType) -> tuple[Path, Path, Path]:
    corpus = WORK / "corpus" / name
    seeds = WORK / "seeds" / name
    corpus.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(seeds, ignore_errors=True)
    seeds.mkdir(parents=True)
    for seed in module.seeds():
        if len(seed) <= module.MAX_LEN:
            (seeds / hashlib.sha1(seed).hexdigest()).write_bytes(seed)  # noqa: S324 - a file name
    dictionary = WORK / f"{name}.dict"
    dictionary.write_text("".join(_dict_line(t) + "\n" for t in module.DICTIONARY))
    return corpus, seeds, dictionary


def _parse_stats(output: str, run: Run) -> None:
    units = re.findall(r"stat::number_of_executed_units:\s+(\d+)", output)
    if units:
        run.executions += int(units[-1])
    else:  # no final stats (a crash): the last status line
        counts = re.findall(r"^#(\d+)\s", output, re.MULTILINE)
        run.executions += int(counts[-1]) if counts else 0
    added = re.findall(r"stat::new_units_added:\s+(\d+)", output)
    run.new_units += int(added[-1]) if added else 0
    status = re.findall(r"cov: (\d+) ft: (\d+)", output)
    if status:
        run.coverage = f"cov {status[-1][0]}, ft {status[-1][1]}"


def _replay(name: str, data: bytes) -> tuple[str | None, str]:
    """Signature and traceback of `data` in this (uninstrumented) process, or None."""
    module = target_module(name)
    failure = failure_of(_guarded(module), data)
    if failure is None:
        return None, ""
    return signature(failure), "".join(traceback.format_exception(failure))


def _handle_artifact(name: str, path: Path, run: Run, crashes: Path) -> None:
    data = path.read_bytes()
    found, trace = _replay(name, data)
    if found is None and path.name.startswith("timeout-"):
        # libFuzzer's alarm fired, but the input is quick on its own: a shared machine.
        slowest = max(_time_input(name, data) for _ in range(3))
        if slowest <= 1.0:
            run.notes.append(f"a libFuzzer timeout did not reproduce ({slowest:.2f} s)")
            path.unlink()
            return
        found = "contract:slow@libfuzzer-timeout"
    if found is None:
        run.notes.append(f"{path.name} did not reproduce without instrumentation; kept")
        found = f"unreproduced:{path.name.split('-')[0]}"
        target = crashes / f"{path.name}.unreproduced"
        path.rename(target)
        run.findings.append(f"{found} ({target.relative_to(ROOT)})")
        return
    if found in known_failures(target_module(name), crashes):
        run.notes.append(f"known finding again: {found}")
        path.unlink()
        return
    module = target_module(name)
    slow = found.startswith("contract:slow")
    smallest = data if slow else minimise(_guarded(module), data, found)
    digest = hashlib.sha256(smallest).hexdigest()[:12]
    saved = crashes / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', found)[:80]}-{digest}.bin"
    saved.write_bytes(smallest)
    (saved.with_suffix(".txt")).write_text(
        f"signature: {found}\nminimised from {len(data)} to {len(smallest)} bytes\n"
        f"input (repr): {smallest!r}\n\n{trace}",
        encoding="utf-8",
    )
    path.unlink()
    run.findings.append(f"{found} ({saved.relative_to(ROOT)}, {len(smallest)} bytes)")


def _time_input(name: str, data: bytes) -> float:
    code = (
        "import sys, time\nfrom fuzz.run import failure_of, target_module\n"
        "m = target_module(sys.argv[1])\nfailure_of(m.check, b'')\n"
        "d = open(sys.argv[2], 'rb').read()\nt = time.perf_counter()\n"
        "failure_of(m.check, d)\nprint(time.perf_counter() - t)\n"
    )
    scratch = WORK / "timing.bin"
    scratch.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-c", code, name, str(scratch)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    try:
        return float(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return float("inf")


def _tmpfs() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs if there is one


def run_target(name: str, seconds: float, args: argparse.Namespace) -> Run:
    module = target_module(name)
    corpus, seeds, dictionary = _prepare(name, module)
    crashes = CRASHES / name
    crashes.mkdir(parents=True, exist_ok=True)
    (WORK / f"{name}.notes").unlink(missing_ok=True)
    run = Run(name, corpus_before=sum(1 for _ in corpus.iterdir()))
    started = time.monotonic()
    deadline = started + seconds
    restarts = 0
    while (remaining := deadline - time.monotonic()) > 5 and restarts <= args.max_restarts:
        command = [
            "nice", "-n", str(args.nice), sys.executable, "-m", "fuzz.run", "--worker", name, "--",
            str(corpus), str(seeds), f"-max_total_time={int(remaining)}",
            f"-timeout={args.timeout}", f"-rss_limit_mb={args.rss_limit_mb}",
            f"-max_len={module.MAX_LEN}", f"-dict={dictionary}", f"-artifact_prefix={crashes}/",
            "-print_final_stats=1", "-print_pcs=0", "-reload=0",
        ]  # fmt: skip
        before = {p.name for p in crashes.iterdir()}
        log = WORK / f"{name}.log"
        scratch = tempfile.mkdtemp(prefix="worker-", dir=os.environ.get(SCRATCH_ENV, _tmpfs()))
        environment = {**os.environ, SCRATCH_ENV: scratch}
        try:
            with log.open("w", encoding="utf-8") as handle:
                process = subprocess.run(
                    command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, check=False,
                    env=environment,
                )  # fmt: skip
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        output = log.read_text(encoding="utf-8", errors="replace")
        _parse_stats(output, run)
        if process.returncode == 0:
            break
        new = [
            p for p in crashes.iterdir()
            if p.name not in before and p.name.startswith(ARTIFACT_PREFIXES)
        ]  # fmt: skip
        if not new:
            tail = "\n".join(output.splitlines()[-20:])
            run.notes.append(f"libFuzzer exited {process.returncode} with no artifact")
            print(tail, file=sys.stderr)
            restarts += 1
            time.sleep(20)  # a tree being edited that does not import yet: try again soon
            continue
        for path in new:
            _handle_artifact(name, path, run, crashes)
        restarts += 1
    run.seconds = time.monotonic() - started
    run.corpus_after = sum(1 for _ in corpus.iterdir())
    notes_path = WORK / f"{name}.notes"
    if notes_path.is_file():
        lines = notes_path.read_text(encoding="utf-8").splitlines()
        known_hits = sum(1 for line in lines if line.startswith("known "))
        if known_hits:
            run.notes.append(f"{known_hits} inputs hit known findings")
        others = sorted({line for line in lines if not line.startswith("known ")})
        run.notes.extend(others[:5])
    return run


# --- docs/fuzzing.md ---------------------------------------------------------------------------


def _row(run: Run, when: str) -> str:
    rate = run.executions / run.seconds if run.seconds else 0
    findings = "; ".join(run.findings) or "none"
    notes = "; ".join(run.notes)
    if notes:
        findings += f" ({notes})"
    findings = findings.replace("|", "\\|")
    return (
        f"| {when} | {run.target} | {run.seconds:.0f} | {run.executions:,} | {rate:,.0f} | "
        f"{run.coverage or '-'} | {run.corpus_before} → {run.corpus_after} (+{run.new_units}) | "
        f"{findings} |"
    )


def _counts(text: str) -> dict[str, tuple[int, float]]:
    """(executions, seconds) per target over every row of the campaign log in `text`."""
    found: dict[str, tuple[int, float]] = dict.fromkeys(TARGETS, (0, 0.0))
    row = re.compile(r"^\| [^|]+ \| (\w+) \| (\d+) \| ([\d,]+) \|", re.MULTILINE)
    for target, secs, count in row.findall(text.split(LOG_HEADER, 1)[-1]):
        if target in found:
            done, spent = found[target]
            found[target] = (done + int(count.replace(",", "")), spent + float(secs))
    return found


def totals(path: Path) -> dict[str, tuple[int, float]]:
    return _counts(path.read_text(encoding="utf-8") if path.is_file() else "")


def _totals(text: str) -> str:
    counts = _counts(text)
    lines = [
        TOTALS_BEGIN,
        "| Target | Executions (all runs) | Goal | Fuzzing time (s) | Met |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for target, (done, spent) in counts.items():
        goal = GOALS.get(target, DEFAULT_GOAL)
        met = "yes" if done >= goal else "no"
        lines.append(f"| {target} | {done:,} | {goal:,} | {spent:.0f} | {met} |")
    lines.append(TOTALS_END)
    return "\n".join(lines)


def append_report(path: Path, runs: Sequence[Run]) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    text = path.read_text(encoding="utf-8") if path.is_file() else f"# Fuzzing\n\n{LOG_HEADER}\n"
    if LOG_HEADER not in text:
        text = text.rstrip("\n") + f"\n\n{LOG_HEADER}\n"
    if "| Date (UTC) | Target |" not in text.split(LOG_HEADER, 1)[1]:
        text = text.rstrip("\n") + (
            "\n\n| Date (UTC) | Target | Seconds | Executions | Exec/s | Coverage (end) "
            "| Corpus (new units) | Findings |\n"
            "| --- | --- | ---: | ---: | ---: | --- | --- | --- |\n"
        )
    text = text.rstrip("\n") + "\n" + "".join(_row(run, when) + "\n" for run in runs)
    if TOTALS_BEGIN in text and TOTALS_END in text:
        head, rest = text.split(TOTALS_BEGIN, 1)
        tail = rest.split(TOTALS_END, 1)[1]
        text = head + _totals(text) + tail
    path.write_text(text, encoding="utf-8")


def _plan(args: argparse.Namespace, started: float) -> list[tuple[str, float]]:
    """The next round: every target once; with --until-goals, then the targets still below
    their goal, each for the time its measured rate says it needs (capped)."""
    names = args.targets or TARGETS
    if not args.until_goals:
        return [(name, args.seconds) for name in names]
    left = args.budget_seconds - (time.monotonic() - started)
    plan = []
    for name, (done, spent) in totals(args.report).items():
        goal = GOALS.get(name, DEFAULT_GOAL)
        if name not in names or done >= goal:
            continue
        need = (goal - done) / (done / spent) * 1.1 + 15 if done and spent else args.seconds
        plan.append((name, min(max(need, 30.0), args.max_chunk, left)))
    return plan if left > 60 else []


def campaign(args: argparse.Namespace) -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    runs = []
    started = time.monotonic()
    while plan := _plan(args, started):
        for name, seconds in plan:
            if args.until_goals and time.monotonic() - started > args.budget_seconds - 60:
                break
            print(f"fuzz: {name} for {seconds:.0f} s", file=sys.stderr, flush=True)
            try:
                run = run_target(name, seconds, args)
            except Exception as exc:  # e.g. dssesign being edited does not import right now
                print(f"fuzz: {name} skipped: {exc!r}", file=sys.stderr, flush=True)
                time.sleep(30)
                continue
            print(f"fuzz: {_row(run, '-')}", file=sys.stderr, flush=True)
            runs.append(run)
            if not args.no_report:
                append_report(args.report, [run])  # after each target: an interruption counts
        if not args.until_goals or args.no_report:
            break
    return 1 if args.fail_on_findings and any(run.findings for run in runs) else 0


def _replay_files(name: str, files: Sequence[str]) -> int:
    status = 0
    for file in files:
        found, trace = _replay(name, Path(file).read_bytes())
        print(f"{file}: {found or 'ok'}")
        if found is not None:
            print(trace)
            status = 1
    return status


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        rest = argv[2:]
        worker(argv[1], rest[1:] if rest[:1] == ["--"] else rest)
        return 0
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__)
    parser.add_argument("targets", nargs="*", help=f"default: all ({', '.join(TARGETS)})")
    seconds = float(os.environ.get("FUZZ_SECONDS", "30"))
    parser.add_argument("--seconds", type=float, default=seconds, help="per target")
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--no-report", action="store_true", help="do not touch docs/fuzzing.md")
    parser.add_argument("--timeout", type=int, default=1, help="libFuzzer -timeout (s)")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="libFuzzer backstop")
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--max-restarts", type=int, default=20)
    parser.add_argument("--fail-on-findings", action="store_true")
    parser.add_argument(
        "--until-goals", action="store_true",
        help="then repeat targets below their execution goal (totals in the report)",
    )  # fmt: skip
    parser.add_argument("--budget-seconds", type=float, default=3600, help="for --until-goals")
    parser.add_argument("--max-chunk", type=float, default=900, help="longest single run (s)")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="replay files on TARGET")
    args = parser.parse_args(argv)
    if args.replay and len(args.targets) != 1:
        parser.error("--replay needs exactly one target")
    scratch = tempfile.mkdtemp(prefix="dssesign-fuzz-", dir=_tmpfs())
    os.environ[SCRATCH_ENV] = scratch  # the targets' files, here and in every worker
    try:
        return _replay_files(args.targets[0], args.replay) if args.replay else campaign(args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
