"""Verification summaries: a signed SLSA VSA v1 of what `dssesign verify` decided.

Sits above `sign` and `verify` (it reads `VerificationResult`s and signs through
`sign.attest`); the offline verifier never imports it. Building a summary loads nothing of the
signing stack: `emit_vsa` imports it on first use.

    from dssesign.vsa import VerifiedInput, VsaRequest, build_vsa, emit_vsa

    inputs = [VerifiedInput.of("app.intoto.json", data, result)]  # result None: it failed
    request = VsaRequest(resource_uri="https://example.com/app.tar.gz",
                         policy_uri="file:///etc/dssesign/root.json",
                         policy_sha256=hashlib.sha256(root_bytes).hexdigest(),
                         verified_levels=("SLSA_BUILD_LEVEL_3",),
                         digests=("sha256:...",))
    statement = build_vsa(inputs, request)          # PASSED only if every input verified
    signed = emit_vsa(statement, keys=["vsa.key"])  # AttestResult: envelope, bundles
"""

from .summary import (
    DEFAULT_VERIFIER_ID,
    FAILED_LEVEL,
    MAX_INPUTS,
    VSA_URI,
    Verdict,
    VerifiedInput,
    VsaRequest,
    build_vsa,
    emit_vsa,
    verification_result,
)

__all__ = [
    "DEFAULT_VERIFIER_ID",
    "FAILED_LEVEL",
    "MAX_INPUTS",
    "VSA_URI",
    "Verdict",
    "VerifiedInput",
    "VsaRequest",
    "build_vsa",
    "emit_vsa",
    "verification_result",
]
