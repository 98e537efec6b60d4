"""Reading and verifying a log: linear in its lines, every finding reported, never an abort."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from .._internal.lock import DEFAULT_LOCK_TIMEOUT, flock_within
from .._internal.strict_json import loads_strict
from ..core.canonical import MAX_SAFE_INTEGER, canonicalize
from ..core.keys import PublicKey
from ..errors import CanonicalizationError, InputError, LockTimeoutError
from .checkpoint import Checkpoint
from .display import _excerpt
from .records import _MAX_LINE, GENESIS, MAX_LOG_BYTES, SIDECAR_SUFFIX
from .writer import _parse_line

# --- reading and verifying -------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One line of the log: a record or a checkpoint (`obj`), or None for a line that is not
    sound I-JSON (unparsable, torn, or without an RFC 8785 form, so no writer made it)."""

    line: int
    obj: dict[str, Any] | None
    raw: bytes
    complete: bool
    #: Why `obj` is None (None for a sound line).
    error: str | None = None
    #: A line strict reading refused, read leniently: only to say which record it claims to be.
    salvaged: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    #: SHA-256 (hex) of `obj` in RFC 8785 form: a record's hash ("" when `obj` is None).
    digest: str = ""

    @property
    def kind(self) -> str:
        """The line's `type` member as text ("record", "checkpoint"); "corrupt" for a bad line."""
        return str(self.obj.get("type")) if self.obj is not None else "corrupt"


def _salvage(line: bytes) -> dict[str, Any] | None:
    """Lenient reading of a refused line, never trusted: only for which record it claims to be,
    so that one bad record is one finding and not also a deleted one."""
    if len(line) > _MAX_LINE:
        return None
    try:
        obj = json.loads(line.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _entry(number: int, raw: bytes, complete: bool) -> Entry:
    """Parse one line strictly and canonicalize it once: an object that parses but has no
    RFC 8785 form (1e400, an integer beyond 2^53, a lone surrogate) has no hash to chain, so it
    is a bad line to report, never an exception that aborts the whole verification."""
    if not complete:
        return Entry(number, None, raw, False, error="torn final line")
    try:
        obj = loads_strict(raw, what="audit line")
    except InputError as exc:
        return Entry(number, None, raw, True, error=str(exc), salvaged=_salvage(raw))
    if not isinstance(obj, dict):
        return Entry(number, None, raw, True, error="not a JSON object")
    try:
        digest = hashlib.sha256(canonicalize(obj)).hexdigest()
    except CanonicalizationError as exc:
        return Entry(number, None, raw, True, error=str(exc), salvaged=obj)
    return Entry(number, obj, raw, True, digest=digest)


def read_entries(path: str | os.PathLike[str]) -> list[Entry]:
    """Every line of the log, under a shared lock so no writer is half-way through one."""
    try:
        with open(path, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                # /dev/zero or a FIFO would be read without end: a log is a regular file.
                raise InputError(f"audit log {path}: not a regular file")
            # A hung writer must not hang verify or show: the shared lock is bounded too.
            if not flock_within(handle.fileno(), DEFAULT_LOCK_TIMEOUT, shared=True):
                raise LockTimeoutError(
                    f"audit log {path}: a writer held its lock for over "
                    f"{DEFAULT_LOCK_TIMEOUT:g} s; nothing was read"
                )
            try:
                data = handle.read(MAX_LOG_BYTES + 1)
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        if len(data) > MAX_LOG_BYTES:
            raise InputError(
                f"audit log {path}: larger than the limit of {MAX_LOG_BYTES} bytes "
                "(dssesign.audit.MAX_LOG_BYTES); verify a rotated, smaller log"
            )
    except FileNotFoundError:
        raise InputError(f"audit log {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"audit log {path}: {exc.strerror}") from None
    entries: list[Entry] = []
    if not data:
        return entries
    lines = data.split(b"\n")
    last_complete = data.endswith(b"\n")
    if last_complete:
        lines.pop()
    for index, raw in enumerate(lines):
        complete = last_complete or index < len(lines) - 1
        entries.append(_entry(index + 1, raw, complete))
    return entries


@dataclass(frozen=True)
class Problem:
    """One finding. `kind`: edited, deleted, inserted, reordered, truncated, torn-final-line,
    corrupt-line, malformed-record, bad-checkpoint-signature, unknown-checkpoint-key,
    checkpoint-mismatch, no-checkpoint."""

    kind: str
    message: str
    seq: int | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """This finding as one entry of the ``problems`` list in `audit verify --json`."""
        return {"kind": self.kind, "message": self.message, "seq": self.seq, "line": self.line}


@dataclass
class VerifyReport:
    """What `verify_log` found: counts, the chain head, every `Problem` (none: a sound log)."""

    records: int = 0
    last_seq: int = 0
    head: str = GENESIS
    checkpoints: int = 0
    #: The highest sequence number a valid checkpoint signs.
    anchored_seq: int = 0
    #: Every record up to this sequence number verified (chain and checkpoints).
    valid_through: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was found; `dssesign audit verify` exits 1 otherwise."""
        return not self.problems

    @property
    def unanchored(self) -> int:
        """Records after the last valid checkpoint: a cut there is not detectable."""
        return max(0, self.last_seq - self.anchored_seq)

    def kinds(self) -> set[str]:
        """The distinct `Problem.kind` values found, e.g. to test for one class of tampering."""
        return {p.kind for p in self.problems}

    def to_dict(self) -> dict[str, Any]:
        """The `audit verify --json` report: camelCase keys, `problems` in log-line order."""
        return {
            "ok": self.ok,
            "records": self.records,
            "lastSeq": self.last_seq,
            "head": self.head,
            "checkpoints": self.checkpoints,
            "anchoredSeq": self.anchored_seq,
            "unanchoredRecords": self.unanchored,
            "validThrough": self.valid_through,
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass(frozen=True)
class _Rec:
    line: int
    seq: int
    prev: str
    hash: str
    #: False for a malformed record kept in the chain only for its place (reported already).
    sound: bool = True


def verify_log(
    path: str | os.PathLike[str],
    keys: Sequence[PublicKey],
    *,
    checkpoint: bytes | None = None,
    use_sidecar: bool = True,
) -> VerifyReport:
    """Walk the chain and the checkpoints of a log; every finding is a `Problem`.

    `keys` are the audit keys whose checkpoints count. `checkpoint` is a checkpoint line kept
    elsewhere (the newest one seen); else the sidecar ``LOG.checkpoint`` is used if present.
    Whatever a line holds, it is a finding in the report, never an exception.
    """
    report = VerifyReport()
    by_keyid = {key.keyid: key for key in keys}
    records: list[_Rec] = []
    checkpoints: list[tuple[int, Checkpoint]] = []
    for entry in read_entries(path):
        if not entry.complete:
            report.problems.append(
                Problem(
                    "torn-final-line",
                    f"line {entry.line} is a torn final line ({len(entry.raw)} bytes without a "
                    "newline): not a record",
                    line=entry.line,
                )
            )
            continue
        obj = entry.obj
        if obj is None:
            _bad_line(entry, entry.salvaged or {}, entry.error or "not JSON", records, report)
            continue
        if obj.get("type") == "checkpoint":
            try:
                checkpoints.append((entry.line, Checkpoint.from_dict(obj)))
            except InputError:
                report.problems.append(
                    Problem(
                        "corrupt-line", f"line {entry.line}: malformed checkpoint", line=entry.line
                    )
                )
            continue
        seq, prev = obj.get("seq"), obj.get("prev")
        if obj.get("type") == "record" and type(seq) is int and isinstance(prev, str):
            records.append(_Rec(entry.line, seq, prev, entry.digest))
        else:
            _bad_line(
                entry, obj, "a record needs type, an integer seq and a prev hash", records, report
            )
    _walk_chain(records, report)
    genuine: dict[int, str] = {}
    record_line: dict[int, int] = {}
    for rec in records:
        genuine.setdefault(rec.seq, rec.hash)
        record_line.setdefault(rec.seq, rec.line)
    _check_checkpoint_order(checkpoints, record_line, report)
    authentic = _check_checkpoints(checkpoints, genuine, by_keyid, report)
    external = checkpoint
    sidecar = Path(f"{path}{SIDECAR_SUFFIX}")
    if external is None and use_sidecar:
        try:
            with sidecar.open("rb") as handle:
                external = handle.read(_MAX_LINE + 1)
        except FileNotFoundError:
            pass
        except OSError as exc:
            report.problems.append(
                Problem("corrupt-line", f"the checkpoint {sidecar} cannot be read: {exc.strerror}")
            )
    if external is not None:
        obj = _parse_line(external.strip()) if len(external) <= _MAX_LINE else None
        try:
            if obj is None:
                raise InputError("not JSON")
            authentic += _check_checkpoints(
                [(0, Checkpoint.from_dict(obj))], genuine, by_keyid, report
            )
        except InputError:
            report.problems.append(Problem("corrupt-line", "the outside checkpoint is malformed"))
    if (
        records
        and report.anchored_seq == 0
        and not authentic
        and not (report.kinds() & _CHECKPOINT_KINDS)
    ):
        report.problems.append(
            Problem(
                "no-checkpoint",
                "no valid checkpoint: the log could have been cut back or rewritten undetected",
            )
        )
    first_bad = min(
        (p.seq for p in report.problems if p.seq is not None), default=report.last_seq + 1
    )
    report.valid_through = max(0, min(report.last_seq, first_bad - 1))
    report.problems.sort(key=lambda p: (p.line or 0) if p.line else 1 << 60)
    return report


_CHECKPOINT_KINDS: Final = frozenset(
    {"bad-checkpoint-signature", "unknown-checkpoint-key", "checkpoint-mismatch", "truncated"}
)


def _bad_line(
    entry: Entry, claimed: Mapping[str, Any], why: str, records: list[_Rec], report: VerifyReport
) -> None:
    """One finding for a line that is not a well-formed record or checkpoint. A record that
    still says which it is keeps its place in the chain (hashed over its raw bytes, which no
    genuine record hashes to), so the records after it are not also reported as deleted,
    reordered or edited."""
    seq, prev = claimed.get("seq"), claimed.get("prev")
    why = _excerpt(why)
    if claimed.get("type") == "record" and type(seq) is int and abs(seq) <= MAX_SAFE_INTEGER:
        report.problems.append(
            Problem(
                "malformed-record",
                f"line {entry.line}: record {seq} is not a valid audit record ({why})",
                seq,
                entry.line,
            )
        )
        raw_hash = hashlib.sha256(entry.raw).hexdigest()
        records.append(
            _Rec(entry.line, seq, prev if isinstance(prev, str) else "", raw_hash, sound=False)
        )
    elif entry.obj is not None:
        report.problems.append(
            Problem("malformed-record", f"line {entry.line}: {why}", line=entry.line)
        )
    else:
        what = "checkpoint" if claimed.get("type") == "checkpoint" else "audit line"
        report.problems.append(
            Problem(
                "corrupt-line", f"line {entry.line} is not a valid {what} ({why})", line=entry.line
            )
        )


def _walk_chain(records: list[_Rec], report: VerifyReport) -> None:
    """Follow the chain in file order. Every step is a few dict/set probes (a gap: a bisect into
    the sorted sequence numbers, over ranges that never overlap), so no input of n lines costs
    more than O(n log n): thousands of forged lines sharing one sequence number, or one gap after
    another, must not make verification quadratic."""
    counts = Counter(rec.seq for rec in records)
    referenced = {rec.prev for rec in records}
    # How many records of each seq something chains to: "does another record of this seq
    # chain?" is then a subtraction, not a scan of all the records that share the seq.
    chained = Counter(rec.seq for rec in records if rec.hash in referenced)
    last_index = {rec.seq: index for index, rec in enumerate(records)}
    ordered = sorted(last_index)
    expected, expected_prev, prev_sound = 1, GENESIS, True
    seen_hashes: set[str] = set()
    problems = report.problems
    for index, rec in enumerate(records):
        if counts[rec.seq] > 1:
            chains = rec.hash in referenced
            others_chain = chained[rec.seq] - int(chains) > 0
            if rec.hash in seen_hashes or (not chains and others_chain):
                if rec.sound:  # a malformed record is reported once, as malformed
                    problems.append(
                        Problem(
                            "inserted",
                            f"line {rec.line}: record {rec.seq} is a second record with this "
                            "sequence number and not part of the chain",
                            rec.seq,
                            rec.line,
                        )
                    )
                continue
        seen_hashes.add(rec.hash)
        if rec.seq == expected:
            if rec.prev != expected_prev and rec.sound and prev_sound:
                problems.append(
                    Problem(
                        "edited",
                        f"line {rec.line}: record {rec.seq} does not chain to record "
                        f"{rec.seq - 1}: record {rec.seq - 1} (or this link) was edited",
                        rec.seq - 1 if rec.seq > 1 else rec.seq,
                        rec.line,
                    )
                )
        elif rec.seq > expected:
            # Missing here but present further down: moved; absent everywhere: deleted. A forged
            # huge seq must not make us enumerate its gap.
            start, stop = bisect_left(ordered, expected), bisect_left(ordered, rec.seq)
            moved = [s for s in ordered[start:stop] if last_index[s] > index]
            moved_set = set(moved)
            gone_first = next((s for s in range(expected, rec.seq) if s not in moved_set), None)
            gone_last = next(
                (s for s in range(rec.seq - 1, expected - 1, -1) if s not in moved_set), None
            )
            if gone_first is not None and gone_last is not None:
                span = f"{gone_first}" if gone_first == gone_last else f"{gone_first}..{gone_last}"
                problems.append(
                    Problem(
                        "deleted",
                        f"record {span} missing before line {rec.line} (deleted)",
                        gone_first,
                        rec.line,
                    )
                )
            if moved:
                problems.append(
                    Problem(
                        "reordered",
                        f"line {rec.line}: record {rec.seq} comes before record {moved[0]}",
                        moved[0],
                        rec.line,
                    )
                )
        else:
            if rec.sound:
                kind = "inserted" if counts[rec.seq] > 1 else "reordered"
                problems.append(
                    Problem(
                        kind,
                        f"line {rec.line}: record {rec.seq} after record {expected - 1} "
                        + (
                            "(duplicate sequence number)"
                            if kind == "inserted"
                            else "(out of order)"
                        ),
                        rec.seq,
                        rec.line,
                    )
                )
            continue
        expected, expected_prev, prev_sound = rec.seq + 1, rec.hash, rec.sound
        report.records += 1
    report.last_seq = expected - 1
    report.head = expected_prev


def _check_checkpoint_order(
    checkpoints: list[tuple[int, Checkpoint]],
    record_line: Mapping[int, int],
    report: VerifyReport,
) -> None:
    """A writer appends a checkpoint after the record it signs, in increasing order: a
    checkpoint line before its record, or after a later checkpoint, was moved."""
    highest = 0
    for line, cp in checkpoints:
        signed_at = record_line.get(cp.seq)
        if signed_at is not None and signed_at > line:
            report.problems.append(
                Problem(
                    "reordered",
                    f"line {line}: checkpoint {cp.seq} comes before its record (line "
                    f"{signed_at}): checkpoint lines were moved",
                    cp.seq,
                    line,
                )
            )
        elif cp.seq < highest:
            report.problems.append(
                Problem(
                    "reordered",
                    f"line {line}: checkpoint {cp.seq} comes after checkpoint {highest}: "
                    "checkpoint lines were moved",
                    cp.seq,
                    line,
                )
            )
        highest = max(highest, cp.seq)


def _check_checkpoints(
    checkpoints: list[tuple[int, Checkpoint]],
    genuine: Mapping[int, str],
    by_keyid: Mapping[str, PublicKey],
    report: VerifyReport,
) -> int:
    """Check each checkpoint against the records; return how many an audit key signed."""
    authentic = 0
    verified: dict[tuple[str, bytes, bytes], bool] = {}  # copies of one line: one verification
    for line, cp in checkpoints:
        where = f"line {line}" if line else "the outside checkpoint"
        key = by_keyid.get(cp.keyid)
        if key is None:
            report.problems.append(
                Problem(
                    "unknown-checkpoint-key",
                    f"{where}: checkpoint {cp.seq} is signed by keyid {_excerpt(cp.keyid, 80)}, "
                    "not an audit key",
                    cp.seq,
                    line or None,
                )
            )
            continue
        message = cp.message()
        valid = verified.get((cp.keyid, message, cp.signature))
        if valid is None:
            valid = verified[cp.keyid, message, cp.signature] = key.verify(cp.signature, message)
        if not valid:
            report.problems.append(
                Problem(
                    "bad-checkpoint-signature",
                    f"{where}: the signature on checkpoint {cp.seq} does not verify",
                    cp.seq,
                    line or None,
                )
            )
            continue
        authentic += 1
        actual = genuine.get(cp.seq)
        if actual is None and 0 < cp.seq <= report.last_seq:
            # Its record is missing from inside the chain, which the walk reported as deleted:
            # the log is not truncated, and one deletion is one finding.
            continue
        if actual is None:
            report.problems.append(
                Problem(
                    "truncated",
                    f"{where}: checkpoint {cp.seq} signs a record the log no longer has "
                    f"(log ends at {report.last_seq}): truncated behind the checkpoint",
                    cp.seq,
                    line or None,
                )
            )
            continue
        if actual != cp.head:
            report.problems.append(
                Problem(
                    "checkpoint-mismatch",
                    f"{where}: checkpoint {cp.seq} signs another head: records up to "
                    f"{cp.seq} were edited, inserted, deleted or reordered",
                    cp.seq,
                    line or None,
                )
            )
            continue
        report.checkpoints += 1 if line else 0
        report.anchored_seq = max(report.anchored_seq, cp.seq)
    return authentic


def read_records(
    path: str | os.PathLike[str],
    *,
    since: datetime | None = None,
    keyid: str | None = None,
    on_skip: Callable[[Entry], None] | None = None,
) -> list[dict[str, Any]]:
    """The complete records of a log (no checkpoints), optionally filtered.

    A line that is neither a sound record nor a checkpoint (torn, corrupt, not I-JSON) is left
    out and passed to `on_skip`: it has no faithful listing, and `verify_log` says what is wrong.
    """
    since_text = None
    if since is not None:
        t = since.astimezone(UTC)
        since_text = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}Z"
    out = []
    for entry in read_entries(path):
        obj = entry.obj
        kind = obj.get("type") if obj is not None else None
        if obj is None or kind != "record":
            if kind != "checkpoint" and on_skip is not None:
                on_skip(entry)
            continue
        if since_text is not None and str(obj.get("time", "")) < since_text:
            continue
        if keyid is not None and not any(
            str(obj.get(name, "")).startswith(keyid) for name in ("keyid", "fromKeyid", "toKeyid")
        ):
            continue
        out.append(obj)
    return out
