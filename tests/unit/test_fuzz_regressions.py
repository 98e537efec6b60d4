"""Regression tests for what the fuzzing campaign found (docs/fuzzing.md, fuzz/crashes/).

Each test states the CORRECT behaviour for a minimised finding: a result, or a DssesignError
subclass (with the right code for the verifier). Findings the code still gets wrong are marked
``xfail(strict=True)``: the mark comes off with the fix. The last test replays every saved
finding through its fuzz target's `check`, which holds the whole contract (exception type,
message, 1 s, 16 MB + 64 x the input's size).
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from dssesign.audit import redact_reference
from dssesign.core.dsse import Envelope
from dssesign.core.keys import PublicKey
from dssesign.errors import (
    CanonicalizationError,
    ConfigError,
    DssesignError,
    EnvelopeError,
    KeyFormatError,
    PredicateError,
    StatementError,
    VerificationError,
)
from dssesign.intoto.predicates import prepare_predicate
from dssesign.intoto.statement import parse_statement, statement_payload
from dssesign.profiles import pkcs11, vault
from dssesign.profiles.software import load_private_key_pem
from dssesign.sign.signer import load_signer, redacted_reference
from dssesign.trust import (
    TRUST_ROOT_MALFORMED,
    dump_trust_root,
    load_trust_root,
    verify_signed_trust_root,
)
from dssesign.verify import Code, VerificationFailure, verify, verify_bundle
from dssesign.verify.bundles import parse_bundle

CRASHES = Path(__file__).resolve().parents[2] / "fuzz" / "crashes"


@pytest.fixture(autouse=True, scope="module")
def _scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The audit and kit targets write their input to files: under pytest's temporary tree."""
    from fuzz._common import SCRATCH_ENV

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SCRATCH_ENV, str(tmp_path_factory.mktemp("fuzz")))
        yield


SHA256 = "ab" * 32


def _statement(predicate: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "a", "digest": {"sha256": SHA256}}],
            "predicateType": "https://example.com/predicate/v1",
            "predicate": predicate,
        }
    ).encode()


# --- envelope / bundle: base64 with three padding characters -------------------------------------


@pytest.mark.parametrize(
    "envelope",
    [
        b'{"payload":"AAAA===","payloadType":"x","signatures":[]}',
        b'{"payload":"","payloadType":"x","signatures":[{"sig":"AAAA==="}]}',
    ],
)
def test_base64_with_three_padding_characters_is_an_envelope_error(envelope: bytes) -> None:
    with pytest.raises(EnvelopeError, match="base64"):
        Envelope.from_json(envelope)


def test_verify_reports_three_padding_characters_as_a_malformed_envelope() -> None:
    from fuzz.fuzz_envelope import root

    envelope = b'{"payload":"","payloadType":"x","signatures":[{"sig":"AAAA==="}]}'
    with pytest.raises(VerificationFailure) as info:
        verify(envelope, root())
    assert info.value.code == "MALFORMED_ENVELOPE", str(info.value)


_BUNDLE = (
    b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":'
    b'{"publicKey":{"hint":""},"tlogEntries":[]},"dsseEnvelope":{"payload":"AAAA===",'
    b'"payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AAAA"}]}}'
)


def test_a_bundle_with_three_padding_characters_is_malformed() -> None:
    with pytest.raises(VerificationError) as info:
        parse_bundle(_BUNDLE)
    assert info.value.code == "BUNDLE_MALFORMED", str(info.value)


def test_verify_bundle_reports_three_padding_characters_as_malformed() -> None:
    from fuzz.fuzz_bundle import root

    with pytest.raises(VerificationFailure) as info:
        verify_bundle(_BUNDLE, root())
    assert info.value.code == "BUNDLE_MALFORMED", str(info.value)


def test_a_signed_trust_root_with_three_padding_characters_is_malformed() -> None:
    from fuzz.fuzz_trustroot import PINNED

    envelope = b'{"payload":"AAAA===","payloadType":"x","signatures":[{"sig":"AAAA"}]}'
    with pytest.raises(VerificationError) as info:
        verify_signed_trust_root(envelope, pinned_root_keyids=PINNED)
    assert info.value.code == TRUST_ROOT_MALFORMED, str(info.value)


# --- statement: what attest signs, verify must read ----------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "1e16",
        "9070000000000000.0",
        "-1.5e300",
        "9007199254740991",
        "0.1",
    ],
)
def test_a_signed_statement_parses_back(number: str) -> None:
    raw = _statement({"n": "NUMBER"}).replace(b'"NUMBER"', number.encode())
    assert math.isfinite(float(number))
    try:
        statement = parse_statement(raw)
        payload = statement_payload(statement)
    except (StatementError, CanonicalizationError):
        return  # refusing the number up front is right too
    assert parse_statement(payload) == statement


# --- key references: parse only, as argv gives them (undecodable bytes as surrogates) ------------


def argv(raw: bytes) -> str:
    """A command-line argument as Python on Linux receives it."""
    return raw.decode("utf-8", "surrogateescape")


@pytest.mark.parametrize(
    "raw",
    [
        b"a0:?region=\x8a",
        b"pkcs11:token=t?module-path=/usr/lib/\xff.so",
        b"awskms:///k?region=\xe9",
    ],
)
def test_redacting_a_reference_never_raises(raw: bytes) -> None:
    # Redaction runs on the error path: raising there replaces the real error with a traceback.
    for pin_source in (True, False):
        assert isinstance(redacted_reference(argv(raw), pin_source=pin_source), str)
    assert isinstance(redact_reference(argv(raw)), str)


def test_pkcs11_id_that_is_not_utf8_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        pkcs11.parse_uri(argv(b"pkcs11:token=t;id=\xd2"))


def test_pkcs11_token_that_is_not_utf8_is_refused_or_described() -> None:
    try:
        uri = pkcs11.parse_uri(argv(b"pkcs11:token=\x9e"))
    except ConfigError:
        return  # refusing it is right: PKCS#11 labels are UTF-8
    assert isinstance(uri.describe(), str)


@pytest.mark.parametrize("size", ["%C2%B2", "4%C2%B2", "%D9%A1"])
def test_pkcs11_pool_size_of_other_digits_is_a_config_error(size: str) -> None:
    with pytest.raises(ConfigError, match="pool-size"):
        pkcs11.parse_uri(f"pkcs11:token=t?pool-size={size}")


@pytest.mark.parametrize("version", ["%C2%B2", "\u00b2", "1\u00b2"])
def test_vault_version_of_other_digits_is_a_config_error(version: str) -> None:
    with pytest.raises(ConfigError, match="version"):
        vault.parse_reference(f"hashivault://k?version={version}")


@pytest.mark.parametrize("reference", ["file://[", "file://[::1/key.pem", "file://]x"])
def test_a_file_reference_urllib_refuses_is_a_dssesign_error(reference: str) -> None:
    with pytest.raises(DssesignError):
        load_signer(reference)


# --- key files -----------------------------------------------------------------------------------


def test_a_private_key_openssl_cannot_load_is_a_key_format_error() -> None:
    pem = (
        b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VvBCIEIB00000000000000000000000000000000000"
        b"0000000\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(KeyFormatError):
        load_private_key_pem(pem, password=None)


# --- error messages that echo the whole input --------------------------------------------------

#: An error that quotes attacker-chosen text clips it (the project clips to 80-200 characters):
#: the message stays one clear line whatever the input's size.
MESSAGE_BOUND = 1024


def test_a_public_key_error_does_not_echo_the_whole_pem() -> None:
    pem = b"-----BEGIN " + b"A" * 50_000 + b"-----\nAAAA\n-----END B-----\n"
    with pytest.raises(KeyFormatError) as info:
        PublicKey.from_pem(pem)
    assert len(str(info.value)) <= MESSAGE_BOUND


@pytest.mark.parametrize("where", ["top", "key"])
def test_a_trust_root_error_does_not_echo_a_huge_member_name(where: str) -> None:
    from fuzz.fuzz_envelope import root

    document = json.loads(dump_trust_root(root()))
    target = document if where == "top" else document["keys"][0]
    target["x" * 50_000] = 1
    with pytest.raises(DssesignError) as info:
        load_trust_root(json.dumps(document))
    assert len(str(info.value)) <= MESSAGE_BOUND


def test_an_spdx_error_does_not_echo_a_huge_spdx_id() -> None:
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "predicates" / "spdx-2.3.json"
    document = json.loads(fixture.read_bytes())
    document["documentDescribes"] = ["SPDXRef-" + "x" * 50_000]
    with pytest.raises(PredicateError) as info:
        prepare_predicate("spdx", json.dumps(document).encode())
    assert len(str(info.value)) <= MESSAGE_BOUND


# --- every saved finding, replayed through its fuzz target ---------------------------------------


#: Saved findings whose bug is still open, by target/file-name prefix (the failure signature):
#: their replay is expected to fail until the fix.
OPEN: dict[str, str] = {}


def _open_reason(path: Path) -> str | None:
    name = f"{path.parent.name}/{path.name}"
    return next((f"fuzz finding: {why}" for key, why in OPEN.items() if name.startswith(key)), None)


def _saved() -> list[object]:
    cases: list[object] = []
    for path in sorted(CRASHES.glob("*/*.bin")):
        reason = _open_reason(path)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        cases.append(pytest.param(path, id=f"{path.parent.name}/{path.stem[:60]}", marks=marks))
    return cases


@pytest.mark.parametrize("path", _saved())
def test_saved_finding_keeps_the_contract(path: Path) -> None:
    from fuzz._common import Guard

    module = importlib.import_module(f"fuzz.fuzz_{path.parent.name}")
    Guard(module.check)(path.read_bytes())


# --- the harness holds the contract it claims --------------------------------------------------


def test_the_guard_refuses_other_exceptions_memory_and_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from fuzz import _common
    from fuzz._common import ContractViolation, Guard, attempt

    def not_ours(data: bytes) -> None:
        raise ValueError("not a DssesignError")

    with pytest.raises(ValueError):
        Guard(not_ours)(b"")

    def refuse(message: str) -> None:
        raise ConfigError(message)

    assert attempt(lambda: refuse("refused")) is None
    with pytest.raises(ContractViolation, match="empty-message"):
        attempt(lambda: refuse(""))

    def hungry(data: bytes) -> None:
        block = b"x" * (_common.memory_budget(len(data)) + (8 << 20))
        assert block

    with pytest.raises(ContractViolation, match="memory"):
        Guard(hungry)(b"abc")
    monkeypatch.setattr(_common, "TIME_LIMIT", 0.05)
    with pytest.raises(ContractViolation, match="slow"):
        Guard(lambda data: time.sleep(0.1))(b"")


def test_the_verifier_internal_code_is_a_finding() -> None:
    from fuzz._common import ContractViolation, check_error

    with pytest.raises(ContractViolation, match="internal"):
        check_error(VerificationFailure(Code.INTERNAL, "internal error (KeyError: '=')"))
    check_error(VerificationFailure(Code.MALFORMED_ENVELOPE, "envelope: not valid JSON"))
