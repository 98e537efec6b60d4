"""The sigstore-conformance offline verification cases, run through `dssesign verify`.

Each case (fixtures/sigstore-conformance/assets/bundle-verify/NAME) becomes a dssesign trust
root: the case's trusted_root.json (else the public-good production one) and the case's
identity + issuer (else the suite's defaults) as one identity rule, and its key.pub, if any,
as a trusted key. Then `dssesign verify --trust-root ROOT BUNDLE` runs twice, the artifact given
as a path and as a digest (``sha256:HEX``), as the suite's `test_verify` does. A case whose
name ends in ``_fail`` must exit 1 (a verification failure with a stable code); every other
case must exit 0. Cases dssesign cannot pass are listed in XFAIL with the reason (strict).

One case's key.pub is not a key at all (managed-key-wrong-key_fail: corrupted base64): a trust
root cannot hold it (loading it is refused, as `trust-root add-key` would), so that case is run
with a valid but different P-256 key as the wrong key, and must fail with BUNDLE_KEY_UNTRUSTED.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dssesign import cli
from dssesign import trust as tr
from dssesign.core.keys import PublicKey, load_public_key
from dssesign.errors import KeyFormatError
from dssesign.verify import CODES
from tests.conftest import FIXTURES, signer_for
from tests.unit.cli.test_cli import dssesign

SUITE = FIXTURES / "sigstore-conformance"
CASES_DIR = SUITE / "assets" / "bundle-verify"
DEFAULT_ARTIFACT = SUITE / "assets" / "a.txt"
PRODUCTION_ROOT = SUITE / "production-trust-root" / "trusted_root.json"
DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"
NOW = datetime(2026, 11, 1, tzinfo=UTC)

#: Cases that cannot pass, and why (strict: they must keep failing, or be removed from here).
XFAIL = {
    "intoto-with-custom-trust-root": (
        "its tlog entry is intoto/0.0.2 (deprecated); sigstore-python 4.5.1, whose verifier "
        "dssesign uses, supports only hashedrekord and dsse entries (the suite lets clients "
        "xfail test_verify*intoto*)"
    ),
    "trust-root-tsa-validity-end-inclusive": (
        "sigstore-python 4.5.1 treats the end of a TSA's validFor as exclusive "
        "(Verifier._verify_signed_timestamp: gen_time < validity_period_end), so a timestamp "
        "exactly at the end finds no verified time; validFor is a closed interval"
    ),
}

#: The stable code each failing case must fail with (its README says why it must fail).
#: The intoto/0.0.2 cases fail before their intended check: that entry kind is unsupported.
EXPECTED_CODES = {
    "bundle-empty-certificate-chain_fail": "BUNDLE_MALFORMED",
    "bundle-from-wrong-instance_fail": "BUNDLE_CERTIFICATE_INVALID",
    "bundle-invalid-base64-signature_fail": "BUNDLE_MALFORMED",
    "bundle-malformed-json_fail": "BUNDLE_MALFORMED",
    "bundle-negative-log-index_fail": "BUNDLE_MALFORMED",
    "bundle-unknown-version_fail": "BUNDLE_UNSUPPORTED",
    "bundle-with-root-cert_fail": "BUNDLE_MALFORMED",
    "checkpoint-bad-keyhint_fail": "BUNDLE_TLOG_INVALID",
    "checkpoint-wrong-roothash_fail": "BUNDLE_TLOG_INVALID",
    "dsse-invalid-sig_fail": "BUNDLE_SIGNATURE_INVALID",
    "dsse-mismatch-envelope_fail": "BUNDLE_TLOG_MISMATCH",
    "dsse-mismatch-sig_fail": "BUNDLE_TLOG_MISMATCH",
    "inclusion-proof-corrupted-hash_fail": "BUNDLE_TLOG_INVALID",
    "incorrect-public-key_fail": "BUNDLE_TLOG_INVALID",
    "integrated-time-in-future_fail": "BUNDLE_CERTIFICATE_INVALID",
    "intoto-expired-certificate_fail": "BUNDLE_UNSUPPORTED",
    "intoto-log-entry-mismatch_fail": "BUNDLE_UNSUPPORTED",
    "intoto-missing-inclusion-proof_fail": "BUNDLE_UNSUPPORTED",
    "intoto-set-outside-signing-cert-validity_fail": "BUNDLE_UNSUPPORTED",
    "intoto-tsa-timestamp-outside-cert-validity_fail": "BUNDLE_UNSUPPORTED",
    "invalid-checkpoint-signature_fail": "BUNDLE_TLOG_INVALID",
    "invalid-ct-key_fail": "BUNDLE_SCT_INVALID",
    "invalid-inclusion-proof_fail": "BUNDLE_MALFORMED",
    "managed-key-no-key_fail": "BUNDLE_KEY_UNTRUSTED",
    "managed-key-wrong-key_fail": "BUNDLE_KEY_UNTRUSTED",
    "message-digest-mismatch_fail": "ARTIFACT_DIGEST_MISMATCH",
    "rekor2-checkpoint-missing-log-signature_fail": "BUNDLE_TLOG_INVALID",
    "rekor2-checkpoint-missing-origin_fail": "BUNDLE_TLOG_INVALID",
    "rekor2-checkpoint-missing-root-hash_fail": "BUNDLE_TLOG_INVALID",
    "rekor2-checkpoint-missing-size_fail": "BUNDLE_TLOG_INVALID",
    "rekor2-checkpoint-no-matching-signature_fail": "BUNDLE_TLOG_INVALID",
    "rekor2-dsse-invalid-sig_fail": "BUNDLE_SIGNATURE_INVALID",
    "rekor2-dsse-mismatch-envelope_fail": "BUNDLE_TLOG_MISMATCH",
    "rekor2-dsse-mismatch-sig_fail": "BUNDLE_TLOG_MISMATCH",
    "rekor2-no-inclusion-proof_fail": "BUNDLE_MALFORMED",
    "rekor2-no-timestamp_fail": "BUNDLE_MALFORMED",
    "rekor2-timestamp-outside-trust-root-tsa-validity_fail": "BUNDLE_TIMESTAMP_INVALID",
    "rekor2-timestamp-outside-tsa-cert-validity_fail": "BUNDLE_TIMESTAMP_INVALID",
    "rekor2-timestamp-payload-mismatch_fail": "BUNDLE_TIMESTAMP_INVALID",
    "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail": "BUNDLE_TIMESTAMP_INVALID",
    "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail": "BUNDLE_TIMESTAMP_INVALID",
    # Its token's base64 is malformed (1706 characters, one "="): bundles' RFC 3161 tokens are
    # read strictly, so it is refused before sigstore-python sees the wrong time.
    "rekor2-timestamp-with-incorrect-time_fail": "BUNDLE_MALFORMED",
    "set-invalid-signature_fail": "BUNDLE_TLOG_INVALID",
    "signature-mismatch_fail": "BUNDLE_SIGNATURE_INVALID",
    "trust-root-tlog-missing-validity-start_fail": "TRUST_ROOT_INVALID",
    "wrong-hashedrekord-artifact_fail": "BUNDLE_TLOG_MISMATCH",
    "wrong-hashedrekord-cert-and-sig_fail": "BUNDLE_TLOG_MISMATCH",
    "wrong-hashedrekord-entry_fail": "BUNDLE_TLOG_MISMATCH",
    "wrong-material_fail": "ARTIFACT_DIGEST_MISMATCH",
}


def _cases() -> list[str]:
    return sorted(p.name for p in CASES_DIR.iterdir() if p.is_dir())


def _text(case: Path, name: str, default: str) -> str:
    path = case / name
    return path.read_text(encoding="utf-8").strip() if path.exists() else default


def build_trust_root(case: Path, out: Path) -> Path:
    """The dssesign trust root standing for the case's trusted root, identity and key."""
    trusted_root_path = case / "trusted_root.json"
    if not trusted_root_path.exists():
        trusted_root_path = PRODUCTION_ROOT
    root = tr.init_trust_root(threshold=1, expires_days=3650, now=NOW)
    if (case / "key.pub").exists():
        root = tr.add_key(root, _case_key(case), label="conformance key.pub")
    identity = {
        "issuer": _text(case, "issuer", DEFAULT_ISSUER),
        "subject": _text(case, "identity", DEFAULT_IDENTITY),
    }
    # Embedded as given: a broken trusted root must fail at verification, not here.
    sigstore = {
        "trustedRoot": json.loads(trusted_root_path.read_text(encoding="utf-8")),
        "identities": [identity],
    }
    root = dataclasses.replace(root, sigstore=sigstore)
    tr.save_trust_root(out, root)
    return out


def _case_key(case: Path) -> PublicKey:
    data = (case / "key.pub").read_bytes()
    if case.name == "managed-key-wrong-key_fail":
        with pytest.raises(KeyFormatError):
            load_public_key(data, source=str(case / "key.pub"))
        return signer_for("ecdsa-p256").public_key
    return load_public_key(data, source=str(case / "key.pub"))


def _artifact(case: Path) -> Path:
    return case / "artifact" if (case / "artifact").exists() else DEFAULT_ARTIFACT


def _marks(name: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.xfail(reason=XFAIL[name], strict=True)] if name in XFAIL else []


PARAMS = [
    pytest.param(name, form, id=f"{name}-{form}", marks=_marks(name))
    for name in _cases()
    for form in ("path", "digest")
]


def test_all_seventy_cases_are_here() -> None:
    names = _cases()
    assert len(names) == 70
    assert sum(n.endswith("_fail") for n in names) == 49
    assert set(XFAIL) <= set(names)
    assert set(EXPECTED_CODES) == {n for n in names if n.endswith("_fail")}
    assert set(EXPECTED_CODES.values()) <= set(CODES)


def _artifact_args(case: Path, form: str) -> list[str]:
    """The case's artifact as the suite gives it: a path, or its sha256 digest."""
    artifact = _artifact(case)
    if form == "path":
        return ["--artifact", str(artifact)]
    return ["--digest", f"sha256:{hashlib.sha256(artifact.read_bytes()).hexdigest()}"]


@pytest.mark.parametrize(("name", "form"), PARAMS)
def test_conformance_case(
    name: str, form: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES_DIR / name
    root = build_trust_root(case, tmp_path / "trust-root.json")
    given = _artifact_args(case, form)
    bundle = case / "bundle.sigstore.json"
    code = cli.main(["verify", "--json", "--trust-root", str(root), *given, str(bundle)])
    out = capsys.readouterr()
    report = json.loads(out.out) if out.out.strip() else {}
    if name.endswith("_fail"):
        assert code == 1, (out.out, out.err)
        assert report["ok"] is False and report["code"] == EXPECTED_CODES[name], report
    else:
        assert code == 0, (report.get("code"), report.get("message"), out.err)
        assert report["ok"] is True
        counted = len(report["keysCounted"]) + len(report["identitiesCounted"])
        assert counted == 1
        assert report["subjectsMatched"], report


@pytest.mark.parametrize(
    ("name", "form", "expected"),
    [
        ("happy-path-v0.3", "path", 0),
        ("managed-key-happy-path", "digest", 0),
        ("rekor2-dsse-happy-path", "path", 0),
        ("wrong-material_fail", "path", 1),
    ],
)
def test_conformance_through_a_subprocess(
    name: str, form: str, expected: int, tmp_path: Path
) -> None:
    case = CASES_DIR / name
    root = build_trust_root(case, tmp_path / "trust-root.json")
    given = _artifact_args(case, form)
    run = dssesign("verify", "--trust-root", root, *given, case / "bundle.sigstore.json")
    assert run.code == expected, run
    if expected == 0:
        assert run.out.startswith("OK: ") and "Traceback" not in run.err
    else:
        assert run.err.startswith("error: verification failed [") and "Traceback" not in run.err
