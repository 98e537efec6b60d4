"""`make bench`: every benchmark in one run, printed as a table of ratios and saved as markdown."""

from __future__ import annotations

import argparse
import importlib
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
    "bench.bench_audit",
    "bench.bench_pkcs11",
    "bench.bench_kms",
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
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.2f} {unit}"


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
                target = f">= {row.target[1]:g}x: {met}"
            lines.append(
                f"| {row.name if index == 0 else ''} "
                f"| {_fmt_rate(row.ours, row.unit) if index == 0 else ''} "
                f"| {label} | {_fmt_rate(value, row.unit)} | {row.ratio(label):.2f}x | {target} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--only", action="append", help="run only these modules (e.g. bench_sign)")
    args = parser.parse_args(argv)
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
    if args.markdown:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        body = [
            "# Benchmarks",
            "",
            "Written by `make bench` (`python -m bench.run --markdown docs/benchmarks.md`); every",
            "baseline is measured in the same process and run as ours; rates are the best of 5.",
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
