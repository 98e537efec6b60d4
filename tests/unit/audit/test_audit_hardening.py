"""Regression tests for the audit-log hardening findings (outside red team, audit items 1-3).

`audit verify` stays linear and reports instead of aborting; `audit show` and `audit verify`
print no control characters a signer wrote; a line that is not I-JSON is a bad record, never
a crash. Each test builds its hostile log itself.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from dssesign import audit
from dssesign._internal.text import escape_controls
from dssesign.audit import (
    GENESIS,
    AuditError,
    AuditLog,
    printable_json,
    read_records,
    verify_log,
)
from dssesign.cli import main
from dssesign.core.canonical import canonicalize
from tests.conftest import signer_for

AUDIT_KEY = signer_for("ed25519", 7)
AUDIT_PUB = AUDIT_KEY.public_key
#: What must never reach a terminal raw: C0, DEL, C1, bidi embeddings/overrides/isolates,
#: line and paragraph separators, lone surrogates.
UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.log"


@pytest.fixture
def pub(tmp_path: Path) -> Path:
    path = tmp_path / "audit.pub"
    path.write_text(AUDIT_PUB.pem)
    return path


def _write(path: Path, count: int, **options: Any) -> None:
    with AuditLog(path, checkpoint_signer=AUDIT_KEY, **options) as log:
        for i in range(count):
            log.append({"event": "test", "n": i})


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _index_of_record(path: Path, seq: int) -> int:
    for index, line in enumerate(_lines(path)):
        obj = json.loads(line)
        if obj["type"] == "record" and obj["seq"] == seq:
            return index
    raise AssertionError(f"no record {seq}")


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- 1. linear work, findings instead of aborts -------------------------------------------------


class _TooMuchWork(Exception):
    pass


def _lines_executed_in_audit(work: Callable[[], object], budget: int) -> int:
    """How many lines of the `dssesign/audit/` package `work` executes (loops, comprehensions,
    generator steps included): a count of the work done, not a timing. Stops at `budget` so that a
    quadratic regression fails fast instead of running for minutes."""
    package = os.path.dirname(audit.__file__)  # every module of the audit package counts
    executed = 0

    def local(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal executed
        if event == "line":
            executed += 1
            if executed > budget:
                raise _TooMuchWork
        return local

    def calls(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code.co_filename.startswith(package + os.sep) else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        work()
    except _TooMuchWork:
        pytest.fail(f"more than {budget} lines of audit.py executed: not linear")
    finally:
        sys.settrace(previous)
    return executed


LINES = 20_000
#: Lines of audit.py executed per log line; a linear verifier needs about 55 today.
PER_LINE = 150


def _hostile_log(path: Path, make: Callable[[int], dict[str, Any]]) -> None:
    dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode  # any int
    path.write_bytes("".join(dumps(make(i)) + "\n" for i in range(LINES)).encode())


@pytest.mark.parametrize(
    "make",
    [
        # 20,000 distinct records that all claim seq 1 and that nothing chains to.
        lambda i: {"type": "record", "seq": 1, "prev": GENESIS, "n": i},
        # The same line 20,000 times (a replay).
        lambda i: {"type": "record", "seq": 1, "prev": GENESIS},
        # Sibling: one gap of more than 64 after another.
        lambda i: {"type": "record", "seq": 1 + 100 * i, "prev": GENESIS},
        # Sibling: 20,000 malformed records sharing a seq (not I-JSON: no hash).
        lambda i: {"type": "record", "seq": 1, "prev": GENESIS, "n": 2**60 + 1 + 2 * i},
    ],
    ids=["same-seq", "replayed-line", "gap-after-gap", "malformed-same-seq"],
)
def test_verify_work_is_linear_in_the_number_of_lines(
    log_path: Path, make: Callable[[int], dict[str, Any]]
) -> None:
    _hostile_log(log_path, make)
    reports: list[audit.VerifyReport] = []
    executed = _lines_executed_in_audit(
        lambda: reports.append(verify_log(log_path, [AUDIT_PUB])), budget=PER_LINE * LINES
    )
    assert executed <= PER_LINE * LINES
    (report,) = reports
    assert not report.ok and report.problems


@pytest.mark.parametrize(
    "value",
    [
        b"1e400",
        b"-1e400",
        # Beyond 2^53 - 1 and held exactly by no double: readers would disagree on the value.
        str(2**53 + 1).encode(),
        str(-(2**60 + 1)).encode(),
        b'"\\ud800"',
        b'"a\\udfffb"',
    ],
    ids=["1e400", "-1e400", "2^53+1", "-(2^60+1)", "lone-high-surrogate", "lone-low-surrogate"],
)
def test_a_record_without_an_rfc8785_form_is_a_bad_record(log_path: Path, value: bytes) -> None:
    _write(log_path, 6)
    lines = _lines(log_path)
    index = _index_of_record(log_path, 3)
    lines[index] = lines[index].replace(b'"n":2', b'"n":' + value)
    log_path.write_bytes(b"".join(lines))
    report = verify_log(log_path, [AUDIT_PUB])
    # One bad line, one finding: not also "deleted" (the records after it keep their place)
    # nor "edited" (its hash is unknown, not wrong).
    assert report.kinds() == {"malformed-record"}, report.problems
    (problem,) = report.problems
    assert (problem.seq, problem.line) == (3, index + 1)
    assert report.valid_through == 2 and report.last_seq == 6
    # The whole report is I-JSON and printable.
    text = json.dumps(report.to_dict(), allow_nan=False)
    text.encode("utf-8")
    assert not UNSAFE.search(problem.message)


def test_a_bad_key_in_a_record_is_a_bad_record(log_path: Path) -> None:
    _write(log_path, 3)
    lines = _lines(log_path)
    lines[1] = lines[1].replace(b'"n":1', b'"\\ud800\\u001b[2K":1')
    log_path.write_bytes(b"".join(lines))
    report = verify_log(log_path, [AUDIT_PUB])
    assert report.kinds() == {"malformed-record"}
    assert not UNSAFE.search(report.problems[0].message)


def test_verify_cli_reports_a_bad_record_with_exit_1_in_both_modes(
    log_path: Path, pub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(log_path, 4)
    lines = _lines(log_path)
    lines[1] = lines[1].replace(b'"n":1', b'"n":1e400')
    lines[2] = lines[2].replace(b'"n":2', b'"n":9007199254740993')
    log_path.write_bytes(b"".join(lines))
    code, out, err = _run(capsys, "audit", "verify", log_path, "--key", pub, "--json")
    assert code == 1, err
    report = json.loads(out)
    assert report["ok"] is False and report["lastSeq"] == 4 and report["validThrough"] == 1
    kinds = [p["kind"] for p in report["problems"]]
    assert kinds == ["malformed-record", "malformed-record"]
    assert [p["seq"] for p in report["problems"]] == [2, 3]
    text_code, text_out, text_err = _run(capsys, "audit", "verify", log_path, "--key", pub)
    assert text_code == 1 and text_out == ""
    assert "audit log FAILED: 2 problem(s); records verified through 1" in text_err
    assert text_err.count("[malformed-record]") == 2
    for stream in (err, text_err):
        assert "error:" not in stream and "Traceback" not in stream


def test_a_deleted_middle_record_is_deleted_not_also_truncated(log_path: Path) -> None:
    _write(log_path, 3)  # checkpoint 3 (log and sidecar)
    _write(log_path, 3)  # records 4..6, checkpoint 6
    lines = _lines(log_path)
    del lines[_index_of_record(log_path, 3)]  # the record checkpoint 3 signs
    log_path.write_bytes(b"".join(lines))
    report = verify_log(log_path, [AUDIT_PUB])
    assert report.kinds() == {"deleted"}, report.problems
    assert [p.seq for p in report.problems] == [3]
    assert report.valid_through == 2 and report.anchored_seq == 6


def test_deleting_the_only_checkpointed_record_is_one_finding(log_path: Path) -> None:
    _write(log_path, 3)  # checkpoint 3
    with AuditLog(log_path) as log:  # no audit key: records 4..6 unanchored
        for _ in range(3):
            log.append({"event": "test"})
    lines = _lines(log_path)
    del lines[_index_of_record(log_path, 3)]
    log_path.write_bytes(b"".join(lines))
    report = verify_log(log_path, [AUDIT_PUB])
    assert report.kinds() == {"deleted"}, report.problems  # not truncated, not no-checkpoint


def test_truncation_is_still_truncation(log_path: Path) -> None:
    _write(log_path, 6)
    lines = _lines(log_path)
    log_path.write_bytes(b"".join(lines[: _index_of_record(log_path, 5)]))
    assert verify_log(log_path, [AUDIT_PUB]).kinds() == {"truncated"}


def test_a_record_without_prev_keeps_its_place(log_path: Path) -> None:
    _write(log_path, 5)
    lines = _lines(log_path)
    index = _index_of_record(log_path, 3)
    record = json.loads(lines[index])
    del record["prev"]
    lines[index] = canonicalize(record) + b"\n"
    log_path.write_bytes(b"".join(lines))
    report = verify_log(log_path, [AUDIT_PUB])
    assert report.kinds() == {"malformed-record"}  # not also "record 3 deleted"
    assert [p.seq for p in report.problems] == [3]


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 2**53 + 1},
        {"seq": 0},
        {"head": "\ud800"},
        {"keyid": "\udc00"},
        {"time": ["not", "a", "string"]},
    ],
)
def test_a_malformed_outside_checkpoint_is_a_finding(
    log_path: Path, change: dict[str, Any]
) -> None:
    _write(log_path, 2)
    sidecar = Path(f"{log_path}.checkpoint")
    checkpoint = {**json.loads(sidecar.read_bytes()), **change}
    line = json.dumps(checkpoint).encode()  # ensure_ascii: a lone surrogate as a \u escape
    report = verify_log(log_path, [AUDIT_PUB], checkpoint=line)
    assert "corrupt-line" in report.kinds()
    assert not report.ok


@pytest.mark.parametrize("seq", [b'"seq":2,"x":1e400', b'"seq":9007199254740993'])
def test_an_in_log_checkpoint_that_is_not_i_json_is_a_finding(log_path: Path, seq: bytes) -> None:
    _write(log_path, 2)
    lines = _lines(log_path)
    lines[-1] = lines[-1].replace(b'"seq":2', seq)
    log_path.write_bytes(b"".join(lines))
    report = verify_log(log_path, [AUDIT_PUB], use_sidecar=False)
    assert report.kinds() == {"corrupt-line", "no-checkpoint"}


def test_an_unreadable_sidecar_is_a_finding(log_path: Path) -> None:
    _write(log_path, 2)
    sidecar = Path(f"{log_path}.checkpoint")
    sidecar.unlink()
    sidecar.mkdir()
    report = verify_log(log_path, [AUDIT_PUB])
    assert "corrupt-line" in report.kinds()


def test_a_writer_refuses_a_log_ending_in_a_record_without_a_hash(log_path: Path) -> None:
    _write(log_path, 2)
    with log_path.open("ab") as handle:
        forged = {"type": "record", "seq": 3, "prev": GENESIS, "time": "t"}
        handle.write(json.dumps(forged).encode()[:-1] + b',"n":9007199254740993}\n')
    with pytest.raises(AuditError, match="audit verify"), AuditLog(log_path) as log:
        log.append({"event": "test"})


# --- 2. nothing a signer wrote reaches the terminal raw ----------------------------------------

HOSTILE = {
    "actor": "mallory\r\x1b[2Kalice",
    "tenant": "\u202eemca",
    "keyRef": "pkcs11:object=k\u2028forged",
    "operationId": "op\n     2 forged row",
    "algorithm": "PKIX_ED25519\x9b31m",
    "errorCode": "\u2066x\u2069\x7f",
    "result": "success\x07",
    "keyid": "\x1b]0;title\x07",
    "event": "sign\u2029",
}


def test_printable_json_escapes_what_a_terminal_obeys_and_keeps_the_value() -> None:
    hostile = {**HOSTILE, "bom": "\ufeff", "text": "José 東京"}
    shown = printable_json(hostile)
    assert json.loads(shown) == hostile  # the same strings to a JSON reader
    assert not UNSAFE.search(shown.replace("\n", " "))
    assert "\\u202e" in shown and "\\u009b" in shown and "\\u007f" in shown
    assert "José 東京" in shown
    # What verify and show print goes through the shared escaper: idempotent, so a message
    # escaped when built is unchanged when printed.
    once = escape_controls("".join(HOSTILE.values()))
    assert escape_controls(once) == once and not UNSAFE.search(once)


def test_show_escapes_every_field_a_signer_controls(
    log_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with AuditLog(log_path) as log:
        log.append(HOSTILE)
        log.append({"event": "trust-root", "change": "init\x1b[1A\x1b[2K", "actor": "x"})
        log.append({"event": ["not", "text"], "result": {"a": 1}, "actor": 7})  # odd types
    code, out, err = _run(capsys, "audit", "show", log_path)
    assert code == 0 and err == ""
    rows = out.split("\n")
    assert rows[-1] == "" and len(rows) == 4  # one row per record, nothing forged
    assert not UNSAFE.search(out.replace("\n", " "))
    first = rows[0]
    for escaped in ("mallory\\r\\x1b[2Kalice", "tenant=\\u202eemca", "k\\u2028forged"):
        assert escaped in first
    assert "op\\n     2 forged row" in first and "\\x9b31m" in first
    assert "trust-root:init\\x1b[1A\\x1b[2K" in rows[1]
    code, out, err = _run(capsys, "audit", "show", log_path, "--json")
    assert code == 0 and err == ""
    assert not UNSAFE.search(out.replace("\n", " "))
    listed = json.loads(out)
    assert listed == read_records(log_path)
    assert listed[0]["actor"] == HOSTILE["actor"]  # escaped on screen, exact to a JSON reader


def test_verify_text_output_escapes_what_a_line_holds(
    log_path: Path, pub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(log_path, 2)
    checkpoint = json.loads(Path(f"{log_path}.checkpoint").read_bytes())
    checkpoint["keyid"] = "\r\x1b[2Kaudit log OK\u202e"
    with log_path.open("ab") as handle:
        handle.write(json.dumps(checkpoint).encode() + b"\n")
    code, out, err = _run(capsys, "audit", "verify", log_path, "--key", pub)
    assert code == 1 and out == ""
    assert "[unknown-checkpoint-key]" in err and "\\x1b[2Kaudit log OK\\u202e" in err
    assert not UNSAFE.search(err.replace("\n", " "))
    code, out, _ = _run(capsys, "audit", "verify", log_path, "--key", pub, "--json")
    assert code == 1 and not UNSAFE.search(out.replace("\n", " "))


# --- 3. I-JSON: a bad line is a bad record, the same in text and --json ------------------------


@pytest.mark.parametrize("value", [b"1e400", b'"\\ud800"', b"18446744073709551617"])
def test_show_leaves_out_and_names_a_line_that_is_not_i_json(
    log_path: Path, capsys: pytest.CaptureFixture[str], value: bytes
) -> None:
    _write(log_path, 3)
    lines = _lines(log_path)
    lines[1] = lines[1].replace(b'"n":1', b'"n":' + value)
    log_path.write_bytes(b"".join(lines))
    code, out, err = _run(capsys, "audit", "show", log_path)
    assert code == 0 and len(out.splitlines()) == 2
    assert "1 line(s)" in err and "(line 2)" in err and "Traceback" not in err
    json_code, json_out, json_err = _run(capsys, "audit", "show", log_path, "--json")
    assert json_code == 0 and json_err == err
    assert [r["seq"] for r in json.loads(json_out)] == [1, 3]  # valid JSON: no Infinity
    assert "Infinity" not in json_out


def test_verify_verdict_is_the_same_in_text_and_json(
    log_path: Path, pub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(log_path, 5)
    lines = _lines(log_path)
    lines[1] = lines[1].replace(b'"n":1', b'"n":-1e999')
    lines[3] = b'{"type":"record","seq":4,"bad":"\\udbff"}\n'
    lines.insert(4, b"not json at all\x1b[2K\n")
    log_path.write_bytes(b"".join(lines))
    json_code, json_out, _ = _run(capsys, "audit", "verify", log_path, "--key", pub, "--json")
    text_code, _, text_err = _run(capsys, "audit", "verify", log_path, "--key", pub)
    assert json_code == text_code == 1
    report = json.loads(json_out)
    printed = re.findall(r"^  \[([a-z-]+)\] ", text_err, re.M)
    assert printed == [p["kind"] for p in report["problems"]]
    assert f"records verified through {report['validThrough']}" in text_err
    assert report["validThrough"] == 1
    assert {"malformed-record", "corrupt-line"} <= set(printed)
    assert not UNSAFE.search(text_err.replace("\n", " "))
