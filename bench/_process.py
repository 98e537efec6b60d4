"""Whole processes timed as users run them: wall time and that child's own peak RSS."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    wall: float  #: seconds, interpreter start-up included
    max_rss: int  #: bytes: the child's peak resident set (wait4's ru_maxrss)


class TimedOut(RuntimeError):
    pass


def installed_env() -> dict[str, str]:
    """The environment as installed: with bytecode caches (pip compiles them at install time),
    even where the developer's environment sets PYTHONDONTWRITEBYTECODE."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(command: list[str], *, timeout: float = 600.0, cwd: Path | None = None) -> Measured:
    """Run `command` to completion (it must exit 0): its wall time and its own max RSS.

    os.wait4 reports the resources of exactly this child, unlike RUSAGE_CHILDREN, which keeps
    the maximum over every child reaped so far.
    """
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            env=installed_env(),
            cwd=cwd,
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            errors.seek(0)
            detail = errors.read().decode(errors="replace")[-2000:]
            if proc.returncode == -9 and wall >= timeout:
                raise TimedOut(f"{command[:4]} ran over {timeout:.0f} s")
            raise RuntimeError(f"{command} exited {proc.returncode}: {detail}")
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    scale = 1 if sys.platform == "darwin" else 1024
    return Measured(wall=wall, max_rss=usage.ru_maxrss * scale)
