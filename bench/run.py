"""`make bench`: every benchmark in one run, printed as a table of ratios and saved as markdown."""

from __future__ import annotations

import argparse
import importlib
import itertools
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from ._harness import Comparison

MODULES = (
    "bench.bench_canonical",
    "bench.bench_digest",
    "bench.bench_sign",
    "bench.bench_verify",
    "bench.bench_timestamp",
    "bench.bench_startup",
    "bench.bench_sbom",
    "bench.bench_audit",
    "bench.bench_pkcs11",
    "bench.bench_kms",
    "bench.bench_service",
)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    import cryptography
    from cryptography.hazmat.backends.openssl.backend import backend

    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, cryptography {cryptography.__version__} "
        f"({backend.openssl_version_text()})"
    )


def _fmt_rate(value: float, unit: str) -> str:
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.2f} {unit}" if value >= 1 else f"{value:.3f} {unit}"


def table(rows: list[Comparison]) -> list[str]:
    lines = [
        "| benchmark | ours | baseline | baseline rate | ours / baseline | target |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        for index, (label, value) in enumerate(row.baselines.items()):
            target = ""
            if row.target is not None and row.target[0] == label:
                met = "met" if row.meets_target() else "MISSED"
                sign = "<=" if row.lower_is_better else ">="
                target = f"{sign} {row.target[1]:g}x: {met}"
            lines.append(
                f"| {row.name if index == 0 else ''} "
                f"| {_fmt_rate(row.ours, row.unit) if index == 0 else ''} "
                f"| {label} | {_fmt_rate(value, row.unit)} | {row.ratio(label):.2f}x | {target} |"
            )
    return lines


def _row_blocks(lines: list[str]) -> list[list[str]]:
    """A table's body as one block per row: its first line and its continuation lines."""
    blocks: list[list[str]] = []
    for line in lines:
        if line.startswith("|  |") and blocks:
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return blocks


def _block_name(block: list[str]) -> str:
    return block[0].split("|")[1].strip()


def merge(old: str, rows: list[Comparison], stamp: str, modules: list[str]) -> str:
    """`old` (a benchmarks page) with these rows and notes replaced or added, the rest kept.

    A partial run (`--only`) keeps every other module's rows and says which rows are newer.
    """
    text = old.splitlines()
    start = next(i for i, line in enumerate(text) if line.startswith("| benchmark |")) + 2
    end = start
    while end < len(text) and text[end].startswith("|"):
        end += 1
    new_blocks = {_block_name(b): b for b in _row_blocks(table(rows)[2:])}
    blocks = []
    for block in _row_blocks(text[start:end]):
        blocks.append(new_blocks.pop(_block_name(block), block))
    blocks.extend(new_blocks.values())
    new_notes = {f"- {row.name}: ": f"- {row.name}: {row.note}" for row in rows if row.note}
    notes = []
    for line in text[end:]:
        prefix = next((p for p in new_notes if line.startswith(p)), None)
        notes.append(new_notes.pop(prefix) if prefix else line)
    while notes and not notes[-1]:
        notes.pop()
    notes.extend(new_notes.values())
    stamp_line = f"- Rows of {', '.join(modules)} updated: {stamp} (`--only`)"
    same_modules = stamp_line.split(" updated:", maxsplit=1)[0]
    head = [line for line in text[: start - 2] if not line.startswith(same_modules)]
    date_at = next((i for i, line in enumerate(head) if line.startswith("- Machine:")), len(head))
    head.insert(date_at + 1, stamp_line)
    return "\n".join(
        [*head, *text[start - 2 : start], *itertools.chain.from_iterable(blocks), *notes, ""]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument(
        "--only",
        action="extend",
        nargs="+",
        help="run only these modules (bench_sign or bench.bench_sign; repeatable)",
    )
    args = parser.parse_args(argv)
    if args.only:
        args.only = sorted({only.rsplit(".", 1)[-1] for only in args.only})
    rows: list[Comparison] = []
    for name in MODULES:
        if args.only and name.rsplit(".", 1)[1] not in args.only:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(importlib.import_module(name).run())
    lines = table(rows)
    notes = [f"- {row.name}: {row.note}" for row in rows if row.note]
    print("\n".join(lines))
    if notes:
        print("\n" + "\n".join(notes))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.markdown and args.only and args.markdown.exists():
        merged = merge(args.markdown.read_text(), rows, stamp, sorted(args.only))
        args.markdown.write_text(merged)
    elif args.markdown:
        body = [
            "# Benchmarks",
            "",
            "Written by `make bench` (`python -m bench.run --markdown docs/benchmarks.md`); every",
            "baseline is measured in the same run as ours; rates are the best of 5 unless a",
            "row's note says otherwise. Rows in s or MB are lower-is-better (targets read <=).",
            "",
            f"- Date: {stamp}",
            f"- Machine: {_machine()}",
            "",
            *lines,
            "",
            *notes,
            "",
        ]
        args.markdown.write_text("\n".join(body))
    missed = [row.name for row in rows if row.meets_target() is False]
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
