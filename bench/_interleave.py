"""Interleaved rounds: every case timed once per round, the best rate of each case kept.

A noisy neighbour (a shared 2-core machine) then slows every case of a round alike instead of
one case of the whole run, and the best of several rounds is each case's quiet-machine rate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ._harness import rate


def interleaved(
    cases: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    repeats: int = 2,
    min_time: float = 0.4,
) -> dict[str, float]:
    """Calls per second of each case: the best over `rounds` rounds, cases in turn in each."""
    best = dict.fromkeys(cases, 0.0)
    for _ in range(rounds):
        for label, fn in cases.items():
            best[label] = max(best[label], rate(fn, min_time=min_time, repeats=repeats))
    return best
