"""Signatures judged at their RFC 3161 time (issue 14): a real TSA, real bundles, `verify`.

The TSA is OpenSSL behind a loopback server (tests/tsa.py). A token's time is moved into the
past by re-signing its TSTInfo with the TSA's own certificate (`resign`), which is what a token
made back then looks like; everything else is what `dssesign attest --tsa` writes.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dssesign.codes import Code
from dssesign.core.dsse import Envelope
from dssesign.errors import VerificationError
from dssesign.intoto.statement import PAYLOAD_TYPE, statement_payload
from dssesign.profiles.software import SoftwareSigner, generate
from dssesign.sign.bundles import bundle_json, keyed_bundle
from dssesign.sign.multisign import MultiProfileSigner, SigningRecord
from dssesign.sign.timestamps import Timestamping, request_timestamp
from dssesign.trust import Policy, TrustedKey, TrustRoot, revoke_key, rotate_key
from dssesign.trust.model import TypePolicy
from dssesign.verify import verify
from tests.conftest import FIXTURES
from tests.tsa import Tsa, resign

NOW = datetime.now(UTC).replace(microsecond=0)
SLSA = "https://slsa.dev/provenance/v1"


def _statement() -> bytes:
    return statement_payload(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app.tar.gz", "digest": {"sha256": "a" * 64}}],
            "predicateType": SLSA,
            "predicate": {"buildDefinition": {"buildType": "https://example.com/b"}},
        }
    )


@dataclasses.dataclass
class Signed:
    envelope: bytes
    signature: bytes
    key: SoftwareSigner
    payload: bytes

    def bundle(self, *tokens: bytes) -> bytes:
        document = keyed_bundle(
            self.payload, PAYLOAD_TYPE, self.signature, self.key.public_key, tokens
        )
        return bundle_json(document)


@pytest.fixture(scope="module")
def key() -> SoftwareSigner:
    return generate("ecdsa-p256")


@pytest.fixture(scope="module")
def signed(key: SoftwareSigner) -> Signed:
    payload = _statement()
    envelope = MultiProfileSigner([key]).sign(payload, PAYLOAD_TYPE)
    return Signed(envelope.to_json(), envelope.signatures[0].sig, key, payload)


def _root(tsa: Tsa, *keys: TrustedKey, **fields: object) -> TrustRoot:
    base = TrustRoot(
        version=1,
        expires=NOW + timedelta(days=365),
        keys=keys,
        policy=Policy(threshold=1),
        timestamp_authorities=(tsa.authority(),),
    )
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def _token(tsa: Tsa, signature: bytes, at: datetime | None = None) -> bytes:
    token = request_timestamp(tsa.url, signature, timeout=30, authorities=[tsa.authority()])
    return token if at is None else resign(token, tsa.signer, gen_time=at)


def _code(envelope: bytes, root: TrustRoot, bundles: list[bytes], **kwargs: object) -> Code:
    with pytest.raises(VerificationError) as info:
        verify(envelope, root, bundles=bundles, **kwargs)  # type: ignore[arg-type]
    return info.value.code


def test_a_timestamped_signature_reports_its_signing_time(tsa: Tsa, signed: Signed) -> None:
    root = _root(tsa, TrustedKey(signed.key.public_key))
    token = _token(tsa, signed.signature)
    result = verify(signed.envelope, root, bundles=[signed.bundle(token)], require_timestamp=True)
    (counted,) = result.keys_counted
    assert counted.signed_at is not None
    assert abs(counted.signed_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert result.to_dict()["keysCounted"][0]["signedAt"].endswith("Z")  # type: ignore[index]


def test_a_revocation_after_the_token_time_does_not_touch_the_signature(
    tsa: Tsa, signed: Signed
) -> None:
    earlier = NOW - timedelta(hours=6)
    root = revoke_key(
        _root(tsa, TrustedKey(signed.key.public_key)), signed.key.keyid, at=NOW - timedelta(hours=1)
    )
    token = _token(tsa, signed.signature, at=earlier)
    result = verify(signed.envelope, root, bundles=[signed.bundle(token)])
    assert result.keys_counted[0].signed_at == earlier
    # Without the token the key is judged now: revoked.
    assert _code(signed.envelope, root, []) == Code.KEY_REVOKED


def test_a_token_at_or_after_the_revocation_is_refused(tsa: Tsa, signed: Signed) -> None:
    revoked_at = NOW - timedelta(hours=3)
    root = revoke_key(
        _root(tsa, TrustedKey(signed.key.public_key)), signed.key.keyid, at=revoked_at
    )
    for moment in (revoked_at, revoked_at + timedelta(minutes=1)):
        token = _token(tsa, signed.signature, at=moment)
        assert _code(signed.envelope, root, [signed.bundle(token)]) == Code.KEY_REVOKED


def test_rotated_out_key_still_counts_for_a_signature_dated_before_its_deadline(
    tsa: Tsa, signed: Signed
) -> None:
    new = generate("ed25519")
    root = rotate_key(
        _root(tsa, TrustedKey(signed.key.public_key)),
        signed.key,
        new.public_key,
        transition_days=0,
        now=NOW - timedelta(hours=20),
    )
    before = _token(tsa, signed.signature, at=NOW - timedelta(hours=22))
    after = _token(tsa, signed.signature, at=NOW - timedelta(hours=2))
    result = verify(signed.envelope, root, bundles=[signed.bundle(before)])
    assert result.keys_counted[0].keyid == signed.key.keyid
    assert _code(signed.envelope, root, [signed.bundle(after)]) == Code.KEY_ROTATED_OUT
    assert _code(signed.envelope, root, []) == Code.KEY_ROTATED_OUT


def test_an_expired_key_counts_inside_its_window(tsa: Tsa, signed: Signed) -> None:
    entry = TrustedKey(
        signed.key.public_key,
        valid_from=NOW - timedelta(days=2),
        valid_until=NOW - timedelta(hours=10),
    )
    root = _root(tsa, entry)
    inside = _token(tsa, signed.signature, at=NOW - timedelta(hours=12))
    assert verify(signed.envelope, root, bundles=[signed.bundle(inside)]).keys_counted
    assert _code(signed.envelope, root, []) == Code.KEY_EXPIRED


def test_at_does_not_move_a_timestamped_signature_and_a_later_token_is_refused(
    tsa: Tsa, signed: Signed
) -> None:
    root = _root(tsa, TrustedKey(signed.key.public_key))
    token = _token(tsa, signed.signature, at=NOW - timedelta(hours=5))
    bundle = signed.bundle(token)
    result = verify(signed.envelope, root, bundles=[bundle], at=NOW + timedelta(days=30))
    assert result.keys_counted[0].signed_at == NOW - timedelta(hours=5)
    at = NOW - timedelta(hours=6)
    assert _code(signed.envelope, root, [bundle], at=at) == Code.TIMESTAMP_IN_FUTURE


def test_the_trust_root_expiry_stays_judged_now(tsa: Tsa, signed: Signed) -> None:
    root = _root(tsa, TrustedKey(signed.key.public_key), expires=NOW - timedelta(hours=1))
    token = _token(tsa, signed.signature, at=NOW - timedelta(hours=5))
    assert _code(signed.envelope, root, [signed.bundle(token)]) == Code.TRUST_ROOT_EXPIRED


def test_a_token_over_another_signature_or_the_payload_is_refused(tsa: Tsa, signed: Signed) -> None:
    root = _root(tsa, TrustedKey(signed.key.public_key))
    other = MultiProfileSigner([generate("ed25519")]).sign(b"{}", PAYLOAD_TYPE).signatures[0].sig
    for data in (other, signed.payload):
        token = request_timestamp(tsa.url, data, timeout=30)
        code = _code(signed.envelope, root, [signed.bundle(token)])
        assert code == Code.TIMESTAMP_MISMATCH


def test_tokens_from_an_untrusted_or_windowed_out_tsa_are_refused(tsa: Tsa, signed: Signed) -> None:
    foreign = tsa.make_tsa(own_ca=True)
    token = request_timestamp(foreign.url, signed.signature, timeout=30)
    root = _root(tsa, TrustedKey(signed.key.public_key))
    assert _code(signed.envelope, root, [signed.bundle(token)]) == Code.TIMESTAMP_UNTRUSTED
    # The trusted TSA, outside its trust-root window at the token's time.
    windowed = dataclasses.replace(
        root, timestamp_authorities=(tsa.authority(valid_until=NOW - timedelta(hours=1)),)
    )
    fresh = _token(tsa, signed.signature)
    assert _code(signed.envelope, windowed, [signed.bundle(fresh)]) == Code.TIMESTAMP_UNTRUSTED
    # A trust root with no timestamp authority at all trusts no token.
    bare = dataclasses.replace(root, timestamp_authorities=())
    assert _code(signed.envelope, bare, [signed.bundle(fresh)]) == Code.TIMESTAMP_UNTRUSTED


def test_bad_tokens_are_errors_never_skipped(tsa: Tsa, signed: Signed) -> None:
    root = _root(tsa, TrustedKey(signed.key.public_key))
    token = _token(tsa, signed.signature)
    tampered = bytearray(token)
    tampered[len(tampered) // 2] ^= 0x01
    cases = {
        bytes(tampered): {Code.TIMESTAMP_INVALID, Code.TIMESTAMP_UNTRUSTED},
        token[: len(token) // 2]: {Code.TIMESTAMP_INVALID},
    }
    for bad, codes in cases.items():
        # Beside a good token too: one bad token fails the signature.
        assert _code(signed.envelope, root, [signed.bundle(token, bad)]) in codes


def test_too_many_or_repeated_tokens_are_refused(tsa: Tsa, signed: Signed) -> None:
    root = _root(tsa, TrustedKey(signed.key.public_key))
    token = _token(tsa, signed.signature)
    assert _code(signed.envelope, root, [signed.bundle(token, token)]) == Code.TOO_MANY_TIMESTAMPS
    many = [_token(tsa, signed.signature) for _ in range(33)]
    assert _code(signed.envelope, root, [signed.bundle(*many)]) == Code.TOO_MANY_TIMESTAMPS


def test_a_sha1_imprint_is_refused(tsa: Tsa, signed: Signed) -> None:
    token = tsa.post(tsa.query(signed.signature, digest="sha1"))
    root = _root(tsa, TrustedKey(signed.key.public_key))
    assert _code(signed.envelope, root, [signed.bundle(token)]) == Code.TIMESTAMP_WEAK_HASH


def test_required_timestamps_globally_per_type_and_by_argument(tsa: Tsa, signed: Signed) -> None:
    plain = _root(tsa, TrustedKey(signed.key.public_key))
    assert _code(signed.envelope, plain, [], require_timestamp=True) == Code.TIMESTAMP_REQUIRED
    assert verify(signed.envelope, plain).keys_counted  # not required: judged now
    globally = dataclasses.replace(plain, policy=Policy(threshold=1, require_timestamp=True))
    per_type = dataclasses.replace(
        plain,
        policy=Policy(threshold=1, per_type={SLSA: TypePolicy(1, require_timestamp=True)}),
    )
    other_type = dataclasses.replace(
        plain,
        policy=Policy(
            threshold=1, per_type={"https://example.com/x": TypePolicy(1, require_timestamp=True)}
        ),
    )
    for root in (globally, per_type):
        assert _code(signed.envelope, root, []) == Code.TIMESTAMP_REQUIRED
        token = _token(tsa, signed.signature)
        assert verify(signed.envelope, root, bundles=[signed.bundle(token)]).keys_counted
    assert verify(signed.envelope, other_type).keys_counted


def test_signing_with_a_tsa_puts_verified_tokens_in_bundles_and_the_audit_record(
    tsa: Tsa, key: SoftwareSigner
) -> None:
    second = generate("ed25519")
    records: list[SigningRecord] = []
    stamping = Timestamping((tsa.url,), (tsa.authority(),))
    signer = MultiProfileSigner([key, second], hooks=[records.append], timestamps=stamping)
    result = signer.sign_detailed(_statement(), PAYLOAD_TYPE)
    assert [len(tokens) for tokens in result.timestamps] == [1, 1]
    assert all(r.timestamps and r.timestamps[0]["tsa"] == tsa.url for r in records)
    assert all(r.timestamps[0]["serial"].isdigit() for r in records)
    root = _root(tsa, TrustedKey(key.public_key), TrustedKey(second.public_key))
    root = dataclasses.replace(root, policy=Policy(threshold=2, require_timestamp=True))
    envelope = result.envelope
    bundles = [
        bundle_json(keyed_bundle(envelope.payload, PAYLOAD_TYPE, s.sig, signer_.public_key, tokens))
        for signer_, s, tokens in zip(
            result.signers, envelope.signatures, result.timestamps, strict=True
        )
    ]
    verified = verify(envelope.to_json(), root, bundles=bundles)
    assert all(k.signed_at is not None for k in verified.keys_counted)


def test_a_tsa_that_answers_with_another_nonce_fails_the_signature(
    tsa: Tsa, key: SoftwareSigner
) -> None:
    liar = tsa.make_tsa(behaviour="wrong-nonce")
    stamping = Timestamping((liar.url,), (liar.authority(),))
    records: list[SigningRecord] = []
    signer = MultiProfileSigner([key], hooks=[records.append], timestamps=stamping)
    with pytest.raises(Exception, match="nonce"):
        signer.sign(_statement(), PAYLOAD_TYPE)
    assert records and not records[0].ok and records[0].error_code == "timestamp"


def test_the_cli_attests_with_a_tsa_and_verifies_it_offline(
    tsa: Tsa, key: SoftwareSigner, tmp_path: Path
) -> None:
    from dssesign.cli import main
    from dssesign.trust import save_trust_root

    key_path = tmp_path / "key.pem"
    key_path.write_bytes(key.private_key_pem(None))
    root_path = tmp_path / "root.json"
    save_trust_root(root_path, _root(tsa, TrustedKey(key.public_key)))
    (tmp_path / "app.tar.gz").write_bytes(b"app")
    predicate = FIXTURES / "predicates" / "slsa-provenance-v1.json"
    out = tmp_path / "att.json"
    bundles = tmp_path / "bundles"
    code = main(
        [
            "attest",
            "--key", str(key_path),
            "--type", "slsaprovenance1",
            "--predicate", str(predicate),
            "--subject", str(tmp_path / "app.tar.gz"),
            "--out", str(out),
            "--bundle-dir", str(bundles),
            "--tsa", tsa.url,
            "--trust-root", str(root_path),
        ]
    )  # fmt: skip
    assert code == 0
    (bundle,) = bundles.iterdir()
    assert "rfc3161Timestamps" in bundle.read_text()
    envelope = Envelope.from_json(out.read_bytes())
    assert envelope.signatures
    code = main(
        ["verify", "--trust-root", str(root_path), "--require-timestamp", str(out), str(bundle)]
    )
    assert code == 0
    # Without its bundle the same envelope has no time evidence: refused when required.
    code = main(["verify", "--trust-root", str(root_path), "--require-timestamp", str(out)])
    assert code == 1


def test_a_revoked_tsa_is_not_revived_by_another_tsa_under_the_same_ca(
    tsa: Tsa, signed: Signed
) -> None:
    """Red-team finding: an authority covering a CA's certificates must not vouch for the leaf
    of another authority that is revoked (or outside its window) at the token's time."""
    sibling = tsa.make_tsa()  # another TSA certificate under the same CA
    revoked = tsa.authority("revoked-tsa", revoked_at=NOW - timedelta(hours=1))
    root = _root(
        tsa,
        TrustedKey(signed.key.public_key),
        timestamp_authorities=(revoked, sibling.authority("sibling-tsa")),
    )
    token = _token(tsa, signed.signature)
    assert _code(signed.envelope, root, [signed.bundle(token)]) == Code.TIMESTAMP_UNTRUSTED
    # The sibling's own tokens still count.
    fresh = request_timestamp(sibling.url, signed.signature, timeout=30)
    assert verify(signed.envelope, root, bundles=[signed.bundle(fresh)]).keys_counted


def test_tokens_are_bounded_per_signature_across_its_bundles(tsa: Tsa, signed: Signed) -> None:
    root = _root(tsa, TrustedKey(signed.key.public_key))
    token = _token(tsa, signed.signature)
    twice = [signed.bundle(token), signed.bundle(token)]
    assert _code(signed.envelope, root, twice) == Code.TOO_MANY_TIMESTAMPS
    spread = [signed.bundle(*[_token(tsa, signed.signature) for _ in range(17)]) for _ in range(2)]
    assert _code(signed.envelope, root, spread) == Code.TOO_MANY_TIMESTAMPS


def test_a_tsa_that_does_not_speak_http_is_a_signing_error(signed: Signed) -> None:
    """Red-team finding: a garbage status line or an over-long header must not escape as an
    http.client exception (nor repeat what the server sent, nor the URL's query)."""
    import socket
    import threading

    from dssesign.errors import SigningError

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    answers = [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n"]

    def serve() -> None:
        for answer in answers:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/tsa?token=SECRET"
    try:
        for _ in answers:
            with pytest.raises(SigningError) as info:
                request_timestamp(url, signed.signature, timeout=10)
            assert "SECRET" not in str(info.value) and "garbage" not in str(info.value)
    finally:
        thread.join(timeout=10)
        server.close()
