"""What every fuzz target shares: the contract each input is held to, and the key material.

The contract (issue 12, item 5): for ANY input a parser returns a result or raises a
`DssesignError` (or subclass) with a clear message; never another exception, never more than
1 s, never more than 16 MB + 64 x the input's size of memory. The verifier turns any unexpected
exception into a `VerificationFailure` with code ``INTERNAL``: the fuzz targets count that as a
crash too (it is another exception, caught late).

Nothing here imports atheris; the targets and this module are plain Python, so
tests/unit/test_fuzz_regressions.py replays every saved finding through the same `check` functions.
"""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from dssesign.errors import DssesignError, VerificationError
from dssesign.profiles.software import SoftwareSigner

T = TypeVar("T")

#: Seconds one input may take (the contract), measured in-process on top of libFuzzer's -timeout.
TIME_LIMIT = 1.0
#: Memory one input may use: BASE + PER_BYTE x its size.
MEMORY_BASE = 16 * 1024 * 1024
MEMORY_PER_BYTE = 64
#: An error message longer than this is no clear message (an echo of the input, say).
MAX_MESSAGE = 4096
#: Codes are stable machine-readable identifiers.
_CODE = re.compile(r"[A-Z][A-Z0-9_]*")

#: The fixed verification time of every target: the trust roots are built around it.
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
PAYLOAD_TYPE = "application/vnd.in-toto+json"
SLSA = "https://slsa.dev/provenance/v1"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


class ContractViolation(AssertionError):
    """An outcome the contract forbids: `kind` groups findings (one saved crash per kind)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def check_error(exc: DssesignError) -> None:
    """A DssesignError is an accepted outcome only with a clear message (and a sound code)."""
    try:
        message = str(exc)
    except Exception as failure:  # pragma: no cover - an error whose str() fails
        raise ContractViolation("unprintable-error", type(failure).__name__) from exc
    if not message.strip():
        raise ContractViolation("empty-message", f"{type(exc).__name__} with no message") from exc
    if len(message) > MAX_MESSAGE:
        raise ContractViolation(
            "long-message", f"{type(exc).__name__}: {len(message)} characters: {message[:200]}"
        ) from exc
    if isinstance(exc, VerificationError):
        code = exc.code
        if not isinstance(code, str) or not _CODE.fullmatch(code):
            raise ContractViolation("bad-code", f"{code!r}: {message[:200]}") from exc
        if code == "INTERNAL":
            raise ContractViolation("internal", message[:300]) from exc


def attempt(call: Callable[[], T]) -> T | None:
    """Run one parser call: its result, or None after a DssesignError that keeps the contract.
    Any other exception propagates (a finding)."""
    try:
        return call()
    except DssesignError as exc:
        check_error(exc)
        return None


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _peak_resetter() -> Callable[[], None] | None:
    """Linux: writing 5 to /proc/self/clear_refs resets the peak RSS (4 us), so each input's
    own peak is measured even after an earlier input peaked higher. None where unavailable."""
    try:
        fd = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"5")
    except OSError:
        return None

    def reset() -> None:
        os.write(fd, b"5")

    return reset


def memory_budget(size: int) -> int:
    return MEMORY_BASE + MEMORY_PER_BYTE * size


def traced_peak(check: Callable[[bytes], None], data: bytes) -> int:
    """Peak Python-heap bytes while `check(data)` runs (tracemalloc; slow, for confirmations)."""
    tracemalloc.start()
    try:
        check(data)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def timed(check: Callable[[bytes], None], data: bytes) -> float:
    start = time.perf_counter()
    check(data)
    return time.perf_counter() - start


@dataclass
class Guard:
    """Per-input time and memory checks around a target's `check`.

    Time: perf_counter around the call; an input over TIME_LIMIT is run again and is a finding
    only if it is slow twice (the machine is shared). Memory: the process's peak RSS is reset
    before the call (Linux clear_refs) and its growth over the RSS at that moment is the input's
    peak; where the reset is unavailable, the growth of the process's lifetime peak (which can
    under-count, never over-count). An input over budget is run again under tracemalloc and is
    a finding if its Python heap peak is over budget too (the first run of a code path imports
    modules and fills caches, which RSS sees once).
    """

    check: Callable[[bytes], None]
    memory: bool = True
    notes: Callable[[str], None] | None = None
    _reset: Callable[[], None] | None = field(default_factory=_peak_resetter, repr=False)

    def __call__(self, data: bytes) -> None:
        if self.memory and self._reset is not None:
            self._reset()
        before = _peak_rss()
        start = time.perf_counter()
        self.check(data)
        elapsed = time.perf_counter() - start
        budget = memory_budget(len(data))
        if elapsed > TIME_LIMIT:
            again = timed(self.check, data)
            if again > TIME_LIMIT:
                raise ContractViolation(
                    "slow", f"{len(data)}-byte input took {elapsed:.2f} s and {again:.2f} s"
                )
            self._note(f"slow once ({elapsed:.2f} s), {again:.2f} s when run again")
        if self.memory:
            grown = _peak_rss() - before
            if grown > budget:
                peak = traced_peak(self.check, data)
                if peak > budget:
                    raise ContractViolation(
                        "memory",
                        f"{len(data)}-byte input: peak RSS +{grown >> 20} MiB, Python heap "
                        f"peak {peak >> 20} MiB (budget {budget >> 20} MiB)",
                    )
                self._note(f"RSS +{grown >> 20} MiB once (warm-up); heap {peak >> 10} KiB")

    def _note(self, text: str) -> None:
        if self.notes is not None:
            self.notes(text)


# --- key material (deterministic, so seeds and findings replay the same way) --------------------


@functools.cache
def ed25519_signer(index: int = 0) -> SoftwareSigner:
    seed = bytes([0x5A, index]) * 16
    return SoftwareSigner(ed25519.Ed25519PrivateKey.from_private_bytes(seed))


@functools.cache
def p256_signer(index: int = 0) -> SoftwareSigner:
    return SoftwareSigner(ec.derive_private_key(0x1234_5678_9ABC + index, ec.SECP256R1()))


#: The runner points this at a directory it removes after each libFuzzer process (which ends
#: with exit(), so Python's own clean-up never runs).
SCRATCH_ENV = "DSSESIGN_FUZZ_SCRATCH"


def scratch_dir(name: str) -> Path:
    """A private directory for a target's files: under $DSSESIGN_FUZZ_SCRATCH, else on tmpfs."""
    tmpfs = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - tmpfs if any
    base = os.environ.get(SCRATCH_ENV) or tmpfs
    return Path(tempfile.mkdtemp(prefix=f"dssesign-fuzz-{name}-", dir=base))


def utf8(data: bytes) -> str:
    """Bytes as argv would give them to Python on Linux (undecodable bytes as surrogates)."""
    return data.decode("utf-8", "surrogateescape")


def statement(digest: str, predicate_type: str = SLSA, **extra: object) -> dict[str, object]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact.tar.gz", "digest": {"sha256": digest}}],
        "predicateType": predicate_type,
        "predicate": {"buildDefinition": {"buildType": "https://example.com/build/v1"}},
        **extra,
    }


def fixture_files(folder: str, pattern: str = "*") -> Iterator[Path]:
    """Files under fixtures/`folder` (recursively), sorted, so seed order is stable."""
    yield from sorted(p for p in (FIXTURES / folder).rglob(pattern) if p.is_file())


def compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
