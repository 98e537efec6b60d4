"""Red-team round 2: a second adversarial corpus, built with independent tools.

Inputs are made with pyca/cryptography directly (non-DER and high-S ECDSA, non-canonical
Ed25519, RSA-PSS with other salts, PKCS#1 v1.5), with raw JSON edits (escaped and case-folded
member names, numbers beyond a double, UTF-16, NUL, BOM), and through the `dssesign` command
itself. Each case states the one outcome it must have: a verifier code, a trust-root code, an
audit-log finding, or a CLI exit status plus its ``--json`` code.

Cases marked ``xfail(strict=True, reason="finding: ...")`` assert the behaviour we want and
fail today: each is a finding listed in docs/threat-model.md ("Red-team round 2").
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from dssesign import cli
from dssesign import trust as tr
from dssesign.audit import AuditLog, verify_log
from dssesign.core.dsse import Envelope, Signature, pae
from dssesign.errors import InputError, VerificationError
from dssesign.intoto.statement import PAYLOAD_TYPE
from dssesign.kit import WheelSource, build_kit
from dssesign.profiles.software import SoftwareSigner
from dssesign.sign.bundles import bundle_json, keyed_bundle, public_key_hint
from dssesign.trust import TrustRoot
from dssesign.verify import CODES, Code, verify, verify_bundle
from tests.conftest import signer_for
from tests.unit.verify.test_verify import (
    ARTIFACT,
    ARTIFACT_SHA256,
    NOW,
    SLSA,
    key,
    make_root,
    payload_of,
    sign_payload,
    signed,
    statement,
)
from tests.unit.verify.test_verify_adversarial import Attempt, Case

#: Order of the P-256 group and of the Ed25519 base point (for malleability cases).
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ED25519_L = 2**252 + 27742317777372353535851937790883648493


def _ed(index: int = 0) -> SoftwareSigner:
    return signer_for("ed25519", index)


def _ec(index: int = 0) -> SoftwareSigner:
    return signer_for("ecdsa-p256", index)


def _data(envelope: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(envelope)
    return data


def _dump(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _sig_of(signer: SoftwareSigner, obj: object | None = None) -> bytes:
    return base64.b64decode(_data(signed([signer], obj))["signatures"][0]["sig"])


def _with_sig(signer: SoftwareSigner, sig: bytes) -> bytes:
    data = _data(signed([signer]))
    data["signatures"][0]["sig"] = _b64(sig)
    return _dump(data)


def _message() -> bytes:
    return pae(PAYLOAD_TYPE, payload_of(statement()))


def _private(signer: SoftwareSigner) -> Any:
    return signer._private_key


# --- the verifier corpus --------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    reason: str


CORPUS: list[Case] = []
FINDINGS: dict[str, Finding] = {}


def case(
    code: Code, finding: str | None = None
) -> Callable[[Callable[[Path], Attempt]], Callable[[Path], Attempt]]:
    """Register a builder; `Code.OK` means the input must verify (a documented acceptance)."""

    def register(build: Callable[[Path], Attempt]) -> Callable[[Path], Attempt]:
        CORPUS.append(Case(build.__name__, build, code))
        if finding is not None:
            FINDINGS[build.__name__] = Finding(f"finding: {finding}")
        return build

    return register


# Parser differentials on the envelope.


@case(Code.OK)
def escaped_member_name_equal_to_payload(_: Path) -> Attempt:
    # "\u0070ayload" IS "payload" to every JSON parser: one member, not a smuggled second one.
    a = _ed()
    return Attempt(signed([a]).replace(b'"payload":', b'"\\u0070ayload":', 1), make_root([a]))


@case(Code.MALFORMED_ENVELOPE)
def escaped_duplicate_payload_member(_: Path) -> Attempt:
    a = _ed()
    other = _b64(payload_of(statement("https://spdx.dev/Document/v2.3")))
    raw = signed([a])[:-1] + f',"\\u0070ayload":"{other}"}}'.encode()
    return Attempt(raw, make_root([a]))


@case(Code.MALFORMED_ENVELOPE)
def long_s_case_fold_variant_of_signatures(_: Path) -> Attempt:
    # Go's encoding/json folds U+017F (long s) to 's': that member would be read as signatures.
    a = _ed()
    data = _data(signed([a]))
    data["\u017fignatures"] = []
    return Attempt(_dump(data), make_root([a]))


@case(Code.MALFORMED_ENVELOPE)
def kelvin_sign_case_fold_variant_of_keyid(_: Path) -> Attempt:
    a = _ed()
    data = _data(signed([a]))
    data["signatures"][0]["\u212aeyid"] = "0" * 64  # KELVIN SIGN folds to 'k'
    return Attempt(_dump(data), make_root([a]))


@case(Code.MALFORMED_ENVELOPE)
def exponent_overflow_in_unknown_envelope_member(_: Path) -> Attempt:
    a = _ed()
    return Attempt(signed([a])[:-1] + b',"x":1E400}', make_root([a]))


@case(Code.MALFORMED_ENVELOPE)
def integer_beyond_double_range_in_envelope(_: Path) -> Attempt:
    a = _ed()
    return Attempt(signed([a])[:-1] + b',"x":1' + b"0" * 400 + b"}", make_root([a]))


@case(Code.MALFORMED_ENVELOPE)
def envelope_in_utf16_with_bom(_: Path) -> Attempt:
    a = _ed()
    return Attempt(signed([a]).decode().encode("utf-16"), make_root([a]))


@case(Code.MALFORMED_ENVELOPE)
def envelope_in_utf16le_without_bom(_: Path) -> Attempt:
    a = _ed()
    return Attempt(signed([a]).decode().encode("utf-16-le"), make_root([a]))


@case(Code.MALFORMED_ENVELOPE)
def raw_nul_inside_a_string(_: Path) -> Attempt:
    a = _ed()
    return Attempt(signed([a])[:-1] + b',"x":"a\x00b"}', make_root([a]))


@case(Code.MALFORMED_ENVELOPE)
def nul_after_the_document(_: Path) -> Attempt:
    a = _ed()
    return Attempt(signed([a]) + b"\x00", make_root([a]))


@case(Code.UNSUPPORTED_PAYLOAD_TYPE)
def bom_inside_the_payload_type(_: Path) -> Attempt:
    a = _ed()
    data = _data(signed([a]))
    data["payloadType"] = "\ufeff" + PAYLOAD_TYPE
    return Attempt(_dump(data), make_root([a]))


@case(Code.UNSUPPORTED_PAYLOAD_TYPE)
def payload_type_carrying_pae_length_fields(_: Path) -> Attempt:
    # A type with spaces and digits, signed as such: PAE's length prefixes keep it apart.
    a = _ed()
    odd = f"{PAYLOAD_TYPE} 411 x"
    envelope = sign_payload([a], payload_of(statement()), payload_type=odd)
    return Attempt(envelope.to_json(), make_root([a]))


# keyid tricks.


@case(Code.MALFORMED_ENVELOPE)
def ten_thousand_character_keyid(_: Path) -> Attempt:
    a = _ed()
    data = _data(signed([a]))
    data["signatures"][0]["keyid"] = "k" * 10_000
    return Attempt(_dump(data), make_root([a]))


@case(Code.MALFORMED_ENVELOPE)
def null_keyid(_: Path) -> Attempt:
    a = _ed()
    data = _data(signed([a]))
    data["signatures"][0]["keyid"] = None
    return Attempt(_dump(data), make_root([a]))


@case(Code.OK)
def uppercase_keyid_of_a_trusted_key_is_only_a_hint(_: Path) -> Attempt:
    a = _ed()
    data = _data(signed([a]))
    data["signatures"][0]["keyid"] = a.keyid.upper()
    return Attempt(_dump(data), make_root([a]))


@case(Code.THRESHOLD_NOT_MET)
def keyid_with_whitespace_and_newline_for_threshold_2(_: Path) -> Attempt:
    a, b = _ed(0), _ed(1)
    data = _data(signed([a]))
    sig = data["signatures"][0]["sig"]
    data["signatures"] += [
        {"keyid": f" {a.keyid}", "sig": sig},
        {"keyid": f"{a.keyid}\n", "sig": sig},
    ]
    return Attempt(_dump(data), make_root([a, b], threshold=2))


# Signature malleability and algorithm confusion.


def _high_s(sig: bytes) -> bytes:
    r, s = decode_dss_signature(sig)
    return encode_dss_signature(r, P256_N - s)


@case(Code.OK)
def ecdsa_high_s_signature_verifies(_: Path) -> Attempt:
    # ECDSA is malleable and OpenSSL (like cosign and sigstore) accepts high S: documented.
    a = _ec()
    return Attempt(_with_sig(a, _high_s(_sig_of(a))), make_root([a]))


@case(Code.THRESHOLD_NOT_MET)
def ecdsa_low_and_high_s_pair_counts_once(_: Path) -> Attempt:
    a, b = _ec(), _ed(1)
    data = _data(signed([a]))
    data["signatures"].append({"keyid": "", "sig": _b64(_high_s(_sig_of(a)))})
    return Attempt(_dump(data), make_root([a, b], threshold=2))


def _der_integer(value: int, pad: bytes = b"") -> bytes:
    body = pad + value.to_bytes((value.bit_length() + 8) // 8, "big")
    return b"\x02" + bytes([len(body)]) + body


@case(Code.NO_VALID_SIGNATURE)
def ecdsa_ber_long_form_length(_: Path) -> Attempt:
    a = _ec()
    r, s = decode_dss_signature(_sig_of(a))
    body = _der_integer(r) + _der_integer(s)
    return Attempt(_with_sig(a, b"\x30\x81" + bytes([len(body)]) + body), make_root([a]))


@case(Code.NO_VALID_SIGNATURE)
def ecdsa_integers_with_extra_leading_zeros(_: Path) -> Attempt:
    a = _ec()
    r, s = decode_dss_signature(_sig_of(a))
    body = _der_integer(r, b"\x00\x00") + _der_integer(s, b"\x00\x00")
    return Attempt(_with_sig(a, b"\x30" + bytes([len(body)]) + body), make_root([a]))


@case(Code.NO_VALID_SIGNATURE)
def ecdsa_raw_r_and_s_instead_of_der(_: Path) -> Attempt:
    a = _ec()
    r, s = decode_dss_signature(_sig_of(a))
    return Attempt(_with_sig(a, r.to_bytes(32, "big") + s.to_bytes(32, "big")), make_root([a]))


@case(Code.NO_VALID_SIGNATURE)
def ecdsa_der_with_a_trailing_byte(_: Path) -> Attempt:
    a = _ec()
    return Attempt(_with_sig(a, _sig_of(a) + b"\x00"), make_root([a]))


@case(Code.NO_VALID_SIGNATURE)
def ecdsa_signature_over_sha384_for_a_p256_key(_: Path) -> Attempt:
    a = _ec()
    sig = _private(a).sign(_message(), ec.ECDSA(hashes.SHA384()))
    return Attempt(_with_sig(a, sig), make_root([a]))


@case(Code.NO_VALID_SIGNATURE)
def ed25519_non_canonical_s(_: Path) -> Attempt:
    a = _ed()
    for n in range(50):
        obj = statement(subjects=[{"name": f"e{n}", "digest": {"sha256": ARTIFACT_SHA256}}])
        sig = _sig_of(a, obj)
        s = int.from_bytes(sig[32:], "little")
        if s + ED25519_L < 2**256:
            data = _data(signed([a], obj))
            data["signatures"][0]["sig"] = _b64(sig[:32] + (s + ED25519_L).to_bytes(32, "little"))
            return Attempt(_dump(data), make_root([a]))
    raise AssertionError("no S small enough")  # pragma: no cover


def _rsa_sig(signer: SoftwareSigner, pad: padding.AsymmetricPadding) -> bytes:
    private: rsa.RSAPrivateKey = _private(signer)
    return private.sign(_message(), pad, hashes.SHA256())


@case(Code.NO_VALID_SIGNATURE)
def rsa_pss_with_maximum_salt(_: Path) -> Attempt:
    a = signer_for("rsa-pss-3072")
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    return Attempt(_with_sig(a, _rsa_sig(a, pss)), make_root([a]))


@case(Code.NO_VALID_SIGNATURE)
def rsa_pss_with_empty_salt(_: Path) -> Attempt:
    a = signer_for("rsa-pss-3072")
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=0)
    return Attempt(_with_sig(a, _rsa_sig(a, pss)), make_root([a]))


@case(Code.NO_VALID_SIGNATURE)
def rsa_pkcs1v15_under_a_pss_key(_: Path) -> Attempt:
    a = signer_for("rsa-pss-3072")
    return Attempt(_with_sig(a, _rsa_sig(a, padding.PKCS1v15())), make_root([a]))


@case(Code.NO_VALID_SIGNATURE)
def signature_over_the_bare_payload_not_the_pae(_: Path) -> Attempt:
    a = _ed()
    return Attempt(_with_sig(a, a.sign(payload_of(statement()))), make_root([a]))


# The signed Statement and its subjects.


def _signed_payload(payload: bytes, **kwargs: Any) -> Attempt:
    a = _ed()
    return Attempt(sign_payload([a], payload).to_json(), make_root([a]), kwargs)


def _one_subject(digest: dict[str, str]) -> bytes:
    return payload_of(statement(subjects=[{"name": "a", "digest": digest}]))


@case(Code.INVALID_STATEMENT)
def subject_digest_in_uppercase_hex(_: Path) -> Attempt:
    return _signed_payload(
        _one_subject({"sha256": ARTIFACT_SHA256.upper()}), digests=[f"sha256:{ARTIFACT_SHA256}"]
    )


@case(Code.INVALID_STATEMENT)
def subject_sha256_of_63_hex_digits(_: Path) -> Attempt:
    return _signed_payload(_one_subject({"sha256": ARTIFACT_SHA256[:63]}))


@case(Code.INVALID_STATEMENT)
def subject_digest_name_in_uppercase(_: Path) -> Attempt:
    return _signed_payload(_one_subject({"SHA256": ARTIFACT_SHA256}))


@case(Code.INVALID_STATEMENT)
def subject_digest_in_arabic_indic_digits(_: Path) -> Attempt:
    return _signed_payload(_one_subject({"sha256": "\u0661" * 64}))


@case(Code.SUBJECT_MISMATCH)
def sha512_only_subject_against_a_sha256_artifact(tmp_path: Path) -> Attempt:
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(ARTIFACT)
    digest = hashlib.sha512(ARTIFACT).hexdigest()
    return _signed_payload(_one_subject({"sha512": digest}), artifacts=[artifact])


@case(Code.INVALID_ARGUMENT)
def md5_digest_requested(_: Path) -> Attempt:
    return _signed_payload(_one_subject({"md5": "0" * 32}), digests=["md5:" + "0" * 32])


@case(Code.INVALID_ARGUMENT)
def requested_digest_in_fullwidth_digits(_: Path) -> Attempt:
    wide = ARTIFACT_SHA256.translate(
        str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
    )
    return _signed_payload(_one_subject({"sha256": ARTIFACT_SHA256}), digests=[f"sha256:{wide}"])


@case(Code.INVALID_STATEMENT)
def nul_at_the_end_of_the_predicate_type(_: Path) -> Attempt:
    obj = statement()
    obj["predicateType"] = SLSA + "\x00"
    return _signed_payload(payload_of(obj), predicate_type=SLSA)


@case(Code.INVALID_STATEMENT)
def statement_type_with_a_trailing_slash(_: Path) -> Attempt:
    obj = statement()
    obj["_type"] = "https://in-toto.io/Statement/v1/"
    return _signed_payload(payload_of(obj))


@case(Code.INVALID_STATEMENT)
def nul_after_the_signed_statement(_: Path) -> Attempt:
    return _signed_payload(payload_of(statement()) + b"\x00")


@case(Code.INVALID_STATEMENT)
def integer_beyond_double_range_in_the_statement(_: Path) -> Attempt:
    return _signed_payload(payload_of(statement())[:-1] + b',"x":1' + b"0" * 400 + b"}")


# Key state at the boundaries (trust roots built in memory).


@case(Code.KEY_REVOKED)
def revoked_exactly_at_the_verification_time(_: Path) -> Attempt:
    a = _ed()
    revoked = key(a, revocation=tr.Revocation(NOW, "boundary"))
    return Attempt(signed([a]), make_root([revoked]))


@case(Code.OK)
def revoked_one_second_after_the_verification_time(_: Path) -> Attempt:
    a = _ed()
    revoked = key(a, revocation=tr.Revocation(NOW + timedelta(seconds=1), "later"))
    return Attempt(signed([a]), make_root([revoked]))


@case(Code.OK)
def valid_until_exactly_the_verification_time(_: Path) -> Attempt:
    a = _ed()
    return Attempt(signed([a]), make_root([key(a, valid_until=NOW)]))


@case(Code.TRUST_ROOT_INVALID)
def threshold_true_in_an_in_memory_policy(_: Path) -> Attempt:
    a = _ed()
    return Attempt(signed([a]), make_root([a], threshold=True))


# Sigstore bundles (keyed) given with the envelope.


def _bundled(
    edit: Callable[[dict[str, Any]], None] | None = None,
    *,
    signers: tuple[SoftwareSigner, ...] = (),
    sig: bytes | None = None,
    threshold: int = 1,
) -> Attempt:
    a, b = _ed(), _ec()
    envelope = sign_payload(list(signers or (a, b)), payload_of(statement()))
    bundle = keyed_bundle(
        envelope.payload,
        PAYLOAD_TYPE,
        envelope.signatures[0].sig if sig is None else sig,
        a.public_key,
    )
    if edit is not None:
        edit(bundle)
    root = make_root([a, b], threshold=threshold)
    return Attempt(envelope.to_json(), root, {"bundles": [bundle_json(bundle)]})


@case(Code.BUNDLE_MALFORMED)
def bundle_with_two_dsse_signatures(_: Path) -> Attempt:
    def edit(bundle: dict[str, Any]) -> None:
        sigs = bundle["dsseEnvelope"]["signatures"]
        sigs.append(dict(sigs[0]))

    return _bundled(edit)


@case(Code.BUNDLE_PAYLOAD_MISMATCH)
def bundle_for_another_payload_type(_: Path) -> Attempt:
    def edit(bundle: dict[str, Any]) -> None:
        bundle["dsseEnvelope"]["payloadType"] = "application/json"

    return _bundled(edit)


@case(Code.BUNDLE_UNSUPPORTED)
def bundle_media_type_v02_in_the_v03_spelling(_: Path) -> Attempt:
    def edit(bundle: dict[str, Any]) -> None:
        bundle["mediaType"] = "application/vnd.dev.sigstore.bundle.v0.2+json"

    return _bundled(edit)


@case(Code.BUNDLE_UNSUPPORTED)
def bundle_media_type_with_a_space_before_version(_: Path) -> Attempt:
    def edit(bundle: dict[str, Any]) -> None:
        bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json; version=0.3"

    return _bundled(edit)


@case(Code.BUNDLE_MALFORMED)
def bundle_with_public_key_and_certificate_chain(_: Path) -> Attempt:
    def edit(bundle: dict[str, Any]) -> None:
        bundle["verificationMaterial"]["x509CertificateChain"] = {"certificates": []}

    return _bundled(edit)


@case(Code.BUNDLE_MALFORMED)
def bundle_v01_with_the_v03_certificate_field(_: Path) -> Attempt:
    def edit(bundle: dict[str, Any]) -> None:
        bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1"
        bundle["verificationMaterial"] = {"certificate": {"rawBytes": "AAAA"}, "tlogEntries": []}

    return _bundled(edit)


@case(Code.OK)
def bundle_public_key_hint_naming_another_trusted_key(_: Path) -> Attempt:
    def edit(bundle: dict[str, Any]) -> None:
        bundle["verificationMaterial"]["publicKey"]["hint"] = public_key_hint(_ec().public_key)

    return _bundled(edit)


@case(Code.BUNDLE_SIGNATURE_MISMATCH)
def bundle_with_the_high_s_twin_of_an_envelope_signature(_: Path) -> Attempt:
    a, b = _ec(), _ed()
    envelope = sign_payload([a, b], payload_of(statement()))
    twin = _high_s(envelope.signatures[0].sig)
    bundle = keyed_bundle(envelope.payload, PAYLOAD_TYPE, twin, a.public_key)
    return Attempt(envelope.to_json(), make_root([a, b]), {"bundles": [bundle_json(bundle)]})


@case(Code.BUNDLE_SIGNATURE_MISMATCH)
def bundle_adding_a_signature_the_envelope_lacks(_: Path) -> Attempt:
    a, b = _ed(), _ec()
    payload = payload_of(statement())
    only_b = sign_payload([b], payload)
    extra = sign_payload([a], payload).signatures[0].sig
    bundle = keyed_bundle(payload, PAYLOAD_TYPE, extra, a.public_key)
    root = make_root([a, b], threshold=2)
    return Attempt(only_b.to_json(), root, {"bundles": [bundle_json(bundle)]})


@case(Code.BUNDLE_PAYLOAD_MISMATCH)
def message_signature_bundle_given_with_an_envelope(_: Path) -> Attempt:
    a = _ed()
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": public_key_hint(a.public_key)}},
        "messageSignature": {"signature": _b64(bytes(64))},
    }
    return Attempt(signed([a]), make_root([a]), {"bundles": [bundle_json(bundle)]})


def _corpus_params() -> list[Any]:
    params = []
    for item in CORPUS:
        finding = FINDINGS.get(item.name)
        marks = [pytest.mark.xfail(strict=True, reason=finding.reason)] if finding else []
        params.append(pytest.param(item, id=item.name, marks=marks))
    return params


def test_corpus2_is_large_and_uses_known_codes() -> None:
    assert len(CORPUS) >= 25
    assert len({c.name for c in CORPUS}) == len(CORPUS)
    assert all(c.code in CODES for c in CORPUS)


@pytest.mark.parametrize("item", _corpus_params())
def test_corpus2_case_has_its_code(item: Case, tmp_path: Path) -> None:
    attempt = item.build(tmp_path)
    kwargs = {"at": NOW, **attempt.kwargs}
    start = time.perf_counter()
    if item.code == Code.OK:
        result = verify(attempt.envelope, attempt.root, **kwargs)
        assert result.keys_counted
    else:
        with pytest.raises(VerificationError) as info:
            verify(attempt.envelope, attempt.root, **kwargs)
        assert info.value.code == item.code, str(info.value)
    assert time.perf_counter() - start < 1.0, f"{item.name} took too long"


def test_a_keyed_bundle_alone_verifies_and_its_twin_signature_does_not() -> None:
    a = _ec()
    envelope = sign_payload([a], payload_of(statement()))
    good = keyed_bundle(envelope.payload, PAYLOAD_TYPE, envelope.signatures[0].sig, a.public_key)
    assert verify_bundle(bundle_json(good), make_root([a]), at=NOW).keys_counted
    # A bundle alone is an envelope of its one signature: the high-S twin verifies too, and
    # still counts as the one key it is.
    twin = keyed_bundle(
        envelope.payload, PAYLOAD_TYPE, _high_s(envelope.signatures[0].sig), a.public_key
    )
    result = verify_bundle(bundle_json(twin), make_root([a, _ed()], threshold=1), at=NOW)
    assert [k.keyid for k in result.keys_counted] == [a.keyid]


# --- the trust-root loader ------------------------------------------------------------------


def _root_document() -> dict[str, Any]:
    root = tr.init_trust_root(threshold=1, now=NOW - timedelta(days=1))
    root = tr.add_key(root, _ed().public_key, label="ed")
    root = tr.add_key(root, _ec().public_key, label="ec")
    document: dict[str, Any] = json.loads(tr.dump_trust_root(root))
    return document


BASE_ROOT = _root_document()

Edit = Callable[[dict[str, Any]], None]


def _set(*path_and_value: Any) -> Edit:
    *path, name, value = path_and_value

    def edit(document: dict[str, Any]) -> None:
        target: Any = document
        for part in path:
            target = target[part]
        target[name] = value

    return edit


def _swap_keyids(document: dict[str, Any]) -> None:
    first, second = document["keys"]
    first["keyid"], second["keyid"] = second["keyid"], first["keyid"]


def _root_key_also_signing_key(document: dict[str, Any]) -> None:
    entry = document["keys"][0]
    document["rootKeys"] = {
        "threshold": 1,
        "keys": [{name: entry[name] for name in ("keyid", "algorithm", "publicKey")}],
    }


def _root_threshold_2_of_1(document: dict[str, Any]) -> None:
    _root_key_also_signing_key(document)
    document["rootKeys"]["threshold"] = 2


KEYID0 = BASE_ROOT["keys"][0]["keyid"]

#: (name, edit or raw text transform, JSON path the refusal names, or None: it must load).
LOADER_CASES: list[tuple[str, Edit | Callable[[str], str], str | None]] = [
    ("keyid_in_uppercase", _set("keys", 0, "keyid", KEYID0.upper()), "$.keys[0].keyid"),
    ("keyids_swapped_between_two_keys", _swap_keyids, "$.keys[0].keyid"),
    (
        "validity_window_reversed",
        lambda d: d["keys"][0].update(
            validFrom="2027-01-01T00:00:00Z", validUntil="2026-01-01T00:00:00Z"
        ),
        "$.keys[0].validUntil",
    ),
    ("expires_in_year_9999", _set("expires", "9999-12-31T23:59:59Z"), None),
    ("expires_in_year_10000", _set("expires", "10000-01-01T00:00:00Z"), "$.expires"),
    ("expires_on_a_leap_second", _set("expires", "2030-12-31T23:59:60Z"), "$.expires"),
    ("expires_with_an_offset", _set("expires", "2030-12-31T23:59:59+00:00"), "$.expires"),
    (
        "expires_in_arabic_indic_digits",
        _set("expires", "\u0662\u0660\u0663\u0660-01-01T00:00:00Z"),
        "$.expires",
    ),
    ("threshold_zero", _set("policy", "threshold", 0), "$.policy.threshold"),
    ("threshold_true", _set("policy", "threshold", True), "$.policy.threshold"),
    ("threshold_one_point_zero", _set("policy", "threshold", 1.0), "$.policy.threshold"),
    (
        "threshold_1e0",
        lambda t: t.replace('"threshold":1', '"threshold":1e0'),
        "$.policy.threshold",
    ),
    (
        "threshold_minus_zero",
        lambda t: t.replace('"threshold":1', '"threshold":-0'),
        "$.policy.threshold",
    ),
    # I-JSON: integers beyond 2^53 - 1 are refused by the parser, before any field is read.
    ("threshold_10_to_the_30", _set("policy", "threshold", 10**30), "$"),
    ("version_2_to_the_53_plus_1", _set("version", 2**53 + 1), "$"),
    (
        "per_type_with_an_uppercase_scheme",
        _set("policy", "perType", {"HTTPS://slsa.dev/provenance/v1": {"threshold": 1}}),
        "$.policy.perType",
    ),
    ("hybrid_in_uppercase", _set("policy", "hybrid", "OFF"), "$.policy.hybrid"),
    ("root_key_also_a_signing_key", _root_key_also_signing_key, None),
    ("root_threshold_2_of_1", _root_threshold_2_of_1, "$.rootKeys.threshold"),
    (
        "escaped_duplicate_version",
        lambda t: t[:-1] + ',"\\u0076ersion":99}',
        "$",
    ),
    (
        "escaped_member_name_equal_to_version",
        lambda t: t.replace('"version"', '"\\u0076ersion"'),
        None,
    ),
    (
        "public_key_with_crlf_line_ends",
        lambda t: t.replace("\\n", "\\r\\n"),
        "$.keys[0].publicKey",
    ),
    (
        "revocation_reason_with_an_escape_sequence",
        _set("keys", 0, "revoked", {"time": "2030-01-01T00:00:00Z", "reason": "\x1b[2K"}),
        "$.keys[0].revoked.reason",
    ),
]


@pytest.mark.parametrize(
    ("edit", "refused_at"),
    [pytest.param(edit, where, id=name) for name, edit, where in LOADER_CASES],
)
def test_trust_root_loader(edit: Callable[[Any], Any], refused_at: str | None) -> None:
    document = copy.deepcopy(BASE_ROOT)
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    try:
        edited = edit(text)
    except (TypeError, AttributeError):
        edited = None
    if isinstance(edited, str):
        data = edited.encode()
    else:
        edit(document)
        data = json.dumps(document, separators=(",", ":")).encode()
    if refused_at is None:
        root = tr.load_trust_root(data)
        a = _ed()
        at = min(NOW + timedelta(days=1), root.expires)
        assert verify(signed([a]), root, at=at).keys_counted
        return
    with pytest.raises(tr.TrustRootError) as info:
        tr.load_trust_root(data)
    assert info.value.path == refused_at, str(info.value)


# --- signed trust roots ---------------------------------------------------------------------

ROOT_SIGNER, OTHER_ROOT_SIGNER = _ed(11), _ec(11)


def _rooted(**changes: Any) -> TrustRoot:
    root = tr.init_trust_root(threshold=1)
    root = tr.add_key(root, _ed().public_key, label="signing")
    return dataclasses.replace(
        tr.set_root_keys(root, [ROOT_SIGNER.public_key], threshold=1), **changes
    )


def _signed_as(payload_type: str, signers: tuple[SoftwareSigner, ...] = (ROOT_SIGNER,)) -> bytes:
    payload = tr.dump_trust_root(_rooted())
    message = pae(payload_type, payload)
    sigs = tuple(Signature(s.sign(message), s.keyid) for s in signers)
    return Envelope(payload, payload_type, sigs).to_json()


def _junk_signed() -> tuple[bytes, list[str]]:
    many = [signer_for("ed25519", 40 + i) for i in range(32)]
    root = tr.set_root_keys(_rooted(), [s.public_key for s in many], threshold=32)
    data = _data(tr.sign_trust_root(root, many[:1]).to_json())
    data["signatures"] = [{"sig": _b64(bytes([i + 1]) * 64)} for i in range(64)]
    return _dump(data), [s.keyid for s in many]


def _signed_root_cases() -> Iterator[Any]:
    pins = {"pinned_root_keyids": [ROOT_SIGNER.keyid]}
    yield pytest.param(
        _signed_as(PAYLOAD_TYPE), pins, tr.TRUST_ROOT_PAYLOAD_TYPE, id="in_toto_payload_type"
    )
    yield pytest.param(
        _signed_as(tr.MEDIA_TYPE.upper()), pins, tr.TRUST_ROOT_PAYLOAD_TYPE, id="payload_type_upper"
    )
    yield pytest.param(
        _signed_as(tr.MEDIA_TYPE, (_ed(),)),
        {"pinned_root_keyids": [_ed().keyid]},
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD,
        id="pin_names_a_signing_key_not_a_root_key",
    )
    yield pytest.param(
        _signed_as(tr.MEDIA_TYPE),
        {"pinned_root_keyids": [OTHER_ROOT_SIGNER.keyid]},
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD,
        id="pin_absent_from_the_document",
    )
    current = _rooted()
    later = tr.set_expires(current, current.expires + timedelta(days=1))
    yield pytest.param(
        tr.sign_trust_root(current, [ROOT_SIGNER]).to_json(),
        {"previous": later},
        tr.TRUST_ROOT_ROLLBACK,
        id="rollback_to_an_older_version",
    )
    twin = dataclasses.replace(
        tr.set_expires(current, current.expires - timedelta(days=1)), version=current.version
    )
    yield pytest.param(
        tr.sign_trust_root(twin, [ROOT_SIGNER]).to_json(),
        {"previous": current},
        tr.TRUST_ROOT_VERSION_CONFLICT,
        id="same_version_other_content",
    )
    two = tr.set_root_keys(
        current, [ROOT_SIGNER.public_key, OTHER_ROOT_SIGNER.public_key], threshold=2
    )
    doubled = _data(tr.sign_trust_root(two, [ROOT_SIGNER]).to_json())
    doubled["signatures"] *= 2
    yield pytest.param(
        _dump(doubled),
        {"pinned_root_keyids": [ROOT_SIGNER.keyid], "pinned_threshold": 1},
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD,
        id="one_root_signature_twice_for_threshold_2",
    )
    junk, keyids = _junk_signed()
    yield pytest.param(
        junk,
        {"pinned_root_keyids": keyids},
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD,
        id="64_junk_signatures_against_32_root_keys",
    )


@pytest.mark.parametrize(("envelope", "anchors", "code"), list(_signed_root_cases()))
def test_signed_trust_root(envelope: bytes, anchors: dict[str, Any], code: str) -> None:
    start = time.perf_counter()
    with pytest.raises(VerificationError) as info:
        tr.verify_signed_trust_root(envelope, **anchors)
    assert info.value.code == code, str(info.value)
    assert time.perf_counter() - start < 1.0


# --- the audit log --------------------------------------------------------------------------

AUDIT_SIGNER = _ed(21)


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three records, each followed by a checkpoint, and the sidecar."""
    path = tmp_path_factory.mktemp("audit") / "audit.log"
    for version in (1, 2, 3):
        with AuditLog(path, checkpoint_signer=AUDIT_SIGNER, checkpoint_every=1) as log:
            log.record_trust_root_change("add-key", version=version, keyids=[_ed().keyid])
    return path


def _log_copy(source: Path, target: Path, edit: Callable[[list[bytes]], list[bytes]]) -> Path:
    lines = source.read_bytes().split(b"\n")[:-1]
    log = target / "audit.log"
    log.write_bytes(b"".join(line + b"\n" for line in edit(lines)))
    sidecar = Path(f"{source}.checkpoint")
    shutil.copyfile(sidecar, f"{log}.checkpoint")
    return log


def _checkpoint_positions(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line]


def _swap_first_and_last_checkpoint(lines: list[bytes]) -> list[bytes]:
    first, *_, last = _checkpoint_positions(lines)
    lines[first], lines[last] = lines[last], lines[first]
    return lines


def _duplicate_member(lines: list[bytes]) -> list[bytes]:
    lines[0] = lines[0][:-1] + b',"actor":"mallory"}'
    return lines


def _reorder_members(lines: list[bytes]) -> list[bytes]:
    record = json.loads(lines[0])
    lines[0] = json.dumps(dict(reversed(list(record.items())))).encode()
    return lines


AUDIT_CASES: list[Any] = [
    pytest.param(lambda ls: [line + b"\r" for line in ls], set(), id="crlf_line_ends_same_content"),
    pytest.param(_reorder_members, set(), id="record_members_reordered_same_content"),
    pytest.param(_duplicate_member, {"malformed-record"}, id="record_with_a_duplicate_member"),
    pytest.param(
        lambda ls: [ls[0], b"", *ls[1:]], {"corrupt-line"}, id="blank_line_between_records"
    ),
    pytest.param(
        lambda ls: [b"\xef\xbb\xbf" + ls[0], *ls[1:]], {"corrupt-line"}, id="bom_before_the_log"
    ),
    pytest.param(
        lambda ls: [ls[0], ls[1], ls[2][:40], *ls[3:]],
        {"corrupt-line"},
        id="torn_line_in_the_middle",
    ),
    pytest.param(lambda ls: [], {"truncated"}, id="emptied_log_with_the_sidecar_kept"),
    pytest.param(
        _swap_first_and_last_checkpoint,
        {"reordered"},
        id="checkpoints_reordered",
    ),
]


@pytest.mark.parametrize(("edit", "kinds"), AUDIT_CASES)
def test_audit_log_edit(
    audit_log: Path, tmp_path: Path, edit: Callable[[list[bytes]], list[bytes]], kinds: set[str]
) -> None:
    log = _log_copy(audit_log, tmp_path, edit)
    report = verify_log(log, [AUDIT_SIGNER.public_key])
    if not kinds:
        assert report.ok, report.problems
        assert report.records == 3
    else:
        assert not report.ok
        assert kinds <= report.kinds(), report.problems


def _run_limited(
    args: list[str], *, seconds: float, memory: int
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run(
        [sys.executable, "-m", "dssesign", *args],
        capture_output=True,
        text=True,
        timeout=seconds,
        preexec_fn=limit,
        check=False,
    )


def test_audit_verify_of_an_endless_file_is_refused(tmp_path: Path) -> None:
    """/dev/zero is not a log: refused unread (the subprocess timeout is the hang bound)."""
    public = tmp_path / "audit.pub"
    public.write_text(AUDIT_SIGNER.public_key.pem)
    run = _run_limited(
        ["audit", "verify", "/dev/zero", "--key", str(public)], seconds=30, memory=1 << 30
    )
    assert run.returncode == 2, run
    assert "not a regular file" in run.stderr, run.stderr
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr, run.stderr


# --- the offline kit ------------------------------------------------------------------------


def _kit_inputs(tmp_path: Path, names: tuple[str, str]) -> tuple[Path, list[Path]]:
    a = _ed()
    root = tr.add_key(tr.init_trust_root(threshold=1), a.public_key, label="kit")
    trust_root = tmp_path / "trust-root.json"
    trust_root.write_bytes(tr.dump_trust_root(root))
    paths = []
    for index, name in enumerate(names):
        folder = tmp_path / f"in{index}"
        folder.mkdir()
        path = folder / name
        path.write_bytes(signed([a]))
        paths.append(path)
    return trust_root, paths


NO_WHEELS = WheelSource(
    dssesign_wheel=Path("/nonexistent/dssesign.whl"), cache_dir=None, allow_index=False
)


@pytest.mark.parametrize(
    "names",
    [
        pytest.param(("release.json", "RELEASE.json"), id="case_variants"),
        pytest.param(("stra\u00dfe.json", "STRASSE.json"), id="sharp_s_case_fold"),
        pytest.param(
            (
                unicodedata.normalize("NFC", "caf\u00e9.json"),
                unicodedata.normalize("NFD", "caf\u00e9.json"),
            ),
            id="nfc_and_nfd_spellings",
        ),
    ],
)
def test_kit_refuses_names_that_collide_on_other_file_systems(
    tmp_path: Path, names: tuple[str, str]
) -> None:
    trust_root, paths = _kit_inputs(tmp_path, names)
    with pytest.raises(InputError, match="names must differ"):
        build_kit(trust_root, tmp_path / "kit", paths, wheel_source=NO_WHEELS)
    assert not (tmp_path / "kit").exists()


@pytest.mark.parametrize(
    "name",
    ["-rf.json", "line\u2028sep.json", "rtl\u202egpj.json", "nul\x01.json"],
)
def test_kit_refuses_hostile_names(tmp_path: Path, name: str) -> None:
    trust_root, paths = _kit_inputs(tmp_path, (name, "other.json"))
    with pytest.raises(InputError):
        build_kit(trust_root, tmp_path / "kit", paths, wheel_source=NO_WHEELS)


# --- the command line -----------------------------------------------------------------------


@dataclass(frozen=True)
class Files:
    dir: Path
    root: Path
    envelope: Path
    key: Path
    signed_root: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    d = tmp_path_factory.mktemp("cli")
    a = _ed()
    root = tr.add_key(tr.init_trust_root(threshold=1), a.public_key, label="ok\u202egnp.exe")
    (d / "root.json").write_bytes(tr.dump_trust_root(root))
    (d / "env.json").write_bytes(signed([a]))
    (d / "signer.key").write_bytes(a.private_key_pem(None))
    (d / "art.txt").write_bytes(ARTIFACT)
    (d / "pred.json").write_text('{"a":1}')
    rooted = tr.set_root_keys(root, [ROOT_SIGNER.public_key], threshold=1)
    (d / "signed-root.json").write_bytes(tr.sign_trust_root(rooted, [ROOT_SIGNER]).to_json())
    return Files(d, d / "root.json", d / "env.json", d / "signer.key", d / "signed-root.json")


def _main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _verify_args(files: Files, *extra: str) -> list[str | Path]:
    return ["verify", "--json", "--trust-root", files.root, *extra, files.envelope]


@pytest.mark.parametrize(
    ("extra", "exit_code", "json_code"),
    [
        pytest.param(["--at", "2026-06-01T12:00:00+00:00"], 2, None, id="at_with_an_offset"),
        pytest.param(["--at", "2026-06-01T23:59:60Z"], 2, None, id="at_on_a_leap_second"),
        pytest.param(["--at", "10000-01-01T00:00:00Z"], 2, None, id="at_in_year_10000"),
        pytest.param(["--at", "2026-06-01T12:00:00.5Z"], 2, None, id="at_with_a_fraction"),
        pytest.param(["--at", "9999-12-31T23:59:59Z"], 1, "TRUST_ROOT_EXPIRED", id="at_year_9999"),
        pytest.param(["--type", "unknownzzz"], 2, None, id="unknown_type"),
        pytest.param(["--type", "SLSAPROVENANCE1"], 2, None, id="type_short_name_upper"),
        pytest.param(["--type", "vsa"], 1, "PREDICATE_TYPE_MISMATCH", id="other_type"),
        pytest.param(["--root-keyid", "ab" * 32], 2, None, id="pin_for_an_unsigned_root"),
        pytest.param(
            ["--type", ""],
            2,
            None,
            id="empty_type_is_not_no_type",
        ),
        pytest.param(
            ["--at", ""],
            2,
            None,
            id="empty_at_is_not_now",
        ),
        pytest.param(
            ["--digest", "md5:" + "0" * 32],
            2,
            "INVALID_ARGUMENT",
            id="md5_digest_is_bad_usage",
        ),
        pytest.param(
            ["--artifact", "/nonexistent/artifact.bin"],
            2,
            "ARTIFACT_UNREADABLE",
            id="unreadable_artifact_is_unreadable_input",
        ),
    ],
)
def test_verify_command_line(
    files: Files,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    exit_code: int,
    json_code: str | None,
) -> None:
    code, out, err = _main(capsys, *_verify_args(files, *extra))
    assert code == exit_code, (out, err)
    if json_code is not None:
        assert json.loads(out)["code"] == json_code
    if exit_code == 2 and json_code is None:
        assert err.startswith("error: ") and err.count("\n") == 1, err


def test_verify_escapes_a_bidi_override_in_a_key_label(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _main(capsys, "verify", "--trust-root", files.root, files.envelope)
    assert code == 0
    assert "\u202e" not in out and "\\u202e" in out


def test_signed_trust_root_with_an_uppercase_pin_is_bad_usage(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _main(
        capsys,
        "verify",
        "--trust-root",
        files.signed_root,
        "--root-keyid",
        ROOT_SIGNER.keyid.upper(),
        files.envelope,
    )
    assert code == 2 and "64 lower-case hex" in err, err
    code, out, _ = _main(
        capsys,
        "verify",
        "--json",
        "--trust-root",
        files.signed_root,
        "--root-keyid",
        ROOT_SIGNER.keyid,
        files.envelope,
    )
    assert code == 0 and json.loads(out)["code"] == "OK"


def _attest(files: Files, *extra: str | Path) -> list[str | Path]:
    return [
        "attest",
        "--subject",
        files.dir / "art.txt",
        "--predicate",
        files.dir / "pred.json",
        "--type",
        "custom",
        "--key",
        files.key,
        *extra,
    ]


@pytest.mark.parametrize(
    "out_name",
    ["signer.key", "hardlink.key", "symlink.key", "pred.json", "art.txt", "../cli*/signer.key"],
)
def test_attest_never_overwrites_its_inputs(
    files: Files, capsys: pytest.CaptureFixture[str], out_name: str
) -> None:
    before = {p.name: p.read_bytes() for p in files.dir.iterdir() if p.is_file()}
    hard, soft = files.dir / "hardlink.key", files.dir / "symlink.key"
    if not hard.exists():
        os.link(files.key, hard)
    if not soft.is_symlink():
        soft.symlink_to(files.key.name)
    out = files.dir / out_name.replace("../cli*/", f"../{files.dir.name}/")
    code, _, err = _main(capsys, *_attest(files, "--out", out))
    assert code == 2 and "refusing to overwrite an input" in err, err
    after = {
        p.name: p.read_bytes() for p in files.dir.iterdir() if p.is_file() and p.name in before
    }
    assert after == before


@pytest.mark.parametrize("threshold", ["0", "-1", "99999999999999999999", "1.0"])
def test_attest_refuses_an_impossible_threshold(
    files: Files, capsys: pytest.CaptureFixture[str], threshold: str
) -> None:
    code, out, _ = _main(capsys, *_attest(files, "--threshold", threshold))
    assert code == 2 and out == ""
