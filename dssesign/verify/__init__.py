"""Offline verification of DSSE envelopes and Sigstore bundles against a trust root.

Never imports the signing stack, profiles, audit or metrics (import-linter contracts and
tests/unit/verify/test_standalone.py hold it to that).
"""

from ..codes import CODES, Code
from .envelope import verify, verify_bundle
from .result import (
    CountedIdentity,
    CountedKey,
    MatchedSubject,
    VerificationFailure,
    VerificationResult,
    failure_report,
)

__all__ = [
    "CODES",
    "Code",
    "CountedIdentity",
    "CountedKey",
    "MatchedSubject",
    "VerificationFailure",
    "VerificationResult",
    "failure_report",
    "verify",
    "verify_bundle",
]
