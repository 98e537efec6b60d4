"""Offline verification of DSSE envelopes and Sigstore bundles against a trust root.

Never imports the signing stack, profiles, audit or metrics (import-linter contracts and
tests/unit/verify/test_standalone.py hold it to that).
"""

from ..codes import CODES, Code
from .envelope import verify, verify_bundle
from .jsonl import JsonlLine, LineOutcome, jsonl_passed, read_jsonl, verify_jsonl
from .result import (
    REPORT_SCHEMA_VERSION,
    CountedIdentity,
    CountedKey,
    MatchedSubject,
    RoleReport,
    SignatureReport,
    VerificationFailure,
    VerificationResult,
    failure_report,
    role_reports,
    signature_reports,
)

__all__ = [
    "CODES",
    "REPORT_SCHEMA_VERSION",
    "Code",
    "CountedIdentity",
    "CountedKey",
    "JsonlLine",
    "LineOutcome",
    "MatchedSubject",
    "RoleReport",
    "SignatureReport",
    "VerificationFailure",
    "VerificationResult",
    "failure_report",
    "jsonl_passed",
    "read_jsonl",
    "role_reports",
    "signature_reports",
    "verify",
    "verify_bundle",
    "verify_jsonl",
]
