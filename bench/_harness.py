"""Tiny timing harness: every case is timed in the same process and run, best of N repeats."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    group: str
    name: str
    ops_per_sec: float
    unit: str = "ops/s"


def rate(fn: Callable[[], object], *, min_time: float = 0.4, repeats: int = 5) -> float:
    """Calls per second of `fn`, the best of `repeats` runs of at least `min_time` seconds each."""
    fn()  # warm up caches and lazy imports
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time / 4:
            break
        n *= 2
    per_run = max(1, int(n * (min_time / max(elapsed, 1e-9))))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(per_run):
            fn()
        elapsed = time.perf_counter() - start
        best = max(best, per_run / elapsed)
    return best


@dataclass(frozen=True)
class Comparison:
    """One row of the `make bench` table: ours beside baselines measured in the same run."""

    name: str
    unit: str
    ours: float
    #: baseline label -> rate in the same unit, e.g. {"rfc8785": 1234.0}
    baselines: dict[str, float]
    #: (baseline label, minimum ours/baseline ratio) this row is held to, if any; with
    #: `lower_is_better` (times, memory) the ratio is a maximum instead
    target: tuple[str, float] | None = None
    note: str = ""
    lower_is_better: bool = False

    def ratio(self, label: str) -> float:
        return self.ours / self.baselines[label]

    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        label, bound = self.target
        if self.lower_is_better:
            return self.ratio(label) <= bound
        return self.ratio(label) >= bound
