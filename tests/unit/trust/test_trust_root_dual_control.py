"""Signed trust-root updates under dual control (issue 15, item 4 and item 7's last case).

M of N root keys sign at different times (`countersign_trust_root`), each holder first shown
what changed (`diff_trust_roots`); chained verification counts distinct root keys.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from dssesign import trust as tr
from dssesign.core.dsse import Envelope, Signature, pae
from dssesign.errors import ConfigError, InputError, SigningError, VerificationError
from dssesign.limits import DEFAULT_LIMITS
from dssesign.profiles.software import SoftwareSigner
from dssesign.trust import TrustRoot, TrustRootError
from dssesign.trust.diff import DiffSide, diff_trust_roots, read_diff_side
from dssesign.trust.signed import countersign_trust_root, root_signatures
from tests.conftest import DelegatingSigner, signer_for

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SLSA = "https://slsa.dev/provenance/v1"


def key(index: int) -> SoftwareSigner:
    """Signing keys (never root keys)."""
    return signer_for("ed25519", 300 + index)


def root_key(index: int) -> SoftwareSigner:
    return signer_for("ed25519", 310 + index)


ROOT_P256 = signer_for("ecdsa-p256", 320)


def base_root(*root_keys: SoftwareSigner, threshold: int = 2) -> TrustRoot:
    root = tr.init_trust_root(threshold=1, now=NOW)
    root = tr.add_key(root, key(0).public_key, label="ci")
    keys = root_keys or (root_key(0), root_key(1), root_key(2))
    return tr.set_root_keys(root, [k.public_key for k in keys], threshold=threshold)


def pins(*signers: SoftwareSigner) -> list[str]:
    return [s.keyid for s in signers]


def expect_code(code: str, envelope: bytes | Envelope, **kwargs: Any) -> VerificationError:
    kwargs.setdefault("now", NOW)
    with pytest.raises(VerificationError) as info:
        tr.verify_signed_trust_root(envelope, **kwargs)
    assert info.value.code == code, str(info.value)
    return info.value


def _second_ecdsa_signature(message: bytes) -> bytes:
    private = ROOT_P256._private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    return private.sign(message, ec.ECDSA(hashes.SHA256()))


# --- M of N root keys, signing at different times --------------------------------------------


def test_root_keys_added_at_different_times_meet_the_threshold_only_together() -> None:
    root = base_root()  # 2 of 3 root keys
    three = pins(root_key(0), root_key(1), root_key(2))
    first = tr.sign_trust_root(root, [root_key(0)]).to_json()
    error = expect_code(
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD, first, pinned_root_keyids=three, pinned_threshold=2
    )
    assert "1 valid signature(s) from distinct pinned root keys, 2 needed" in str(error)
    status = root_signatures(first)
    assert (status.counted, status.threshold, status.met) == (1, 2, False)
    assert status.signers == (root_key(0).keyid,)

    second = countersign_trust_root(first, [root_key(1)])
    parsed = Envelope.from_json(first)
    # Payload and type byte for byte; the first signature kept as it was, the new one appended.
    assert second.payload == parsed.payload == tr.dump_trust_root(root)
    assert second.payload_type == tr.MEDIA_TYPE
    assert second.signatures[0] == parsed.signatures[0]
    assert len(second.signatures) == 2
    assert second.signatures[1].keyid == root_key(1).keyid
    assert root_key(1).public_key.verify(second.signatures[1].sig, second.pae())
    accepted = tr.verify_signed_trust_root(
        second.to_json(), pinned_root_keyids=three, pinned_threshold=2, now=NOW
    )
    assert accepted == root
    status = root_signatures(second)
    assert (status.counted, status.met) == (2, True)
    assert status.signers == (root_key(0).keyid, root_key(1).keyid)


def test_a_chained_update_needs_the_previous_root_keys_and_counts_each_once() -> None:
    v1 = base_root()
    v1_signed = tr.sign_trust_root(v1, [root_key(0), root_key(1)])
    v2 = tr.add_key(v1, key(1).public_key, label="release", predicate_types=[SLSA])
    one = tr.sign_trust_root(v2, [root_key(2)])
    expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, one.to_json(), previous=v1)
    two = countersign_trust_root(one, [root_key(0)])
    assert tr.verify_signed_trust_root(two, previous=v1, now=NOW) == v2
    chain = tr.verify_trust_root_chain(
        [v1_signed, two], pinned_root_keyids=pins(root_key(0), root_key(1)), now=NOW
    )
    assert chain == v2


def test_root_keys_of_the_superseded_version_may_countersign_with_previous() -> None:
    v1 = base_root(root_key(0), root_key(1))
    v2 = tr.set_root_keys(v1, [root_key(2).public_key, root_key(3).public_key], threshold=2)
    signed = tr.sign_trust_root(v2, [root_key(2), root_key(3)])
    with pytest.raises(ConfigError, match="is not a root key of trust root version"):
        countersign_trust_root(signed, [root_key(0)])
    expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, signed, previous=v1)
    once = countersign_trust_root(signed, [root_key(0)], previous=v1)
    status = root_signatures(once, previous=v1)
    assert (status.counted, status.previous_counted, status.previous_threshold) == (2, 1, 2)
    assert not status.met
    expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, once, previous=v1)
    twice = countersign_trust_root(once, [root_key(1)], previous=v1)
    assert root_signatures(twice, previous=v1).met
    assert tr.verify_signed_trust_root(twice, previous=v1, now=NOW) == v2
    with pytest.raises(ConfigError, match="not older"):
        countersign_trust_root(signed, [root_key(0)], previous=v2)


# --- refusals ----------------------------------------------------------------------------


def test_a_key_that_already_signed_is_refused_whatever_its_keyid_hint() -> None:
    signed = tr.sign_trust_root(base_root(), [root_key(0)])
    with pytest.raises(ConfigError, match=f"key {root_key(0).keyid} already signed.*signature 1"):
        countersign_trust_root(signed, [root_key(0)])
    # The existing signature carries no hint, or another root key's keyid: still found.
    for hint in ("", root_key(1).keyid, "junk"):
        disguised = dataclasses.replace(
            signed, signatures=(Signature(signed.signatures[0].sig, hint),)
        )
        with pytest.raises(ConfigError, match="already signed"):
            countersign_trust_root(disguised, [root_key(0)])
    # Given twice in one call.
    with pytest.raises(ConfigError, match="given twice"):
        countersign_trust_root(signed, [root_key(1), root_key(1)])


def test_a_randomized_signature_key_that_already_signed_is_refused() -> None:
    """ECDSA makes a different signature every time: refusal is by verification, not bytes."""
    signed = tr.sign_trust_root(base_root(ROOT_P256, root_key(1)), [ROOT_P256])
    with pytest.raises(ConfigError, match="already signed"):
        countersign_trust_root(signed, [ROOT_P256])


def test_a_key_that_is_not_a_root_key_is_refused_before_anything_is_signed() -> None:
    signed = tr.sign_trust_root(base_root(), [root_key(0)])
    signs: list[bytes] = []

    class Watching(DelegatingSigner):
        def sign(self, data: bytes) -> bytes:
            signs.append(data)
            return self._inner.sign(data)

    # A trusted signing key is not a root key; nor is a stranger. The good key listed first
    # does not sign either: every check runs before the first signature.
    for stranger in (key(0), key(5)):
        with pytest.raises(ConfigError, match=f"key {stranger.keyid} is not a root key"):
            countersign_trust_root(signed, [Watching(root_key(1)), stranger])
    assert signs == []


def test_a_signature_that_does_not_verify_is_never_emitted() -> None:
    signed = tr.sign_trust_root(base_root(), [root_key(0)])

    class Wrong(DelegatingSigner):
        def sign(self, data: bytes) -> bytes:
            return root_key(0).sign(data)

    with pytest.raises(SigningError, match="does not verify"):
        countersign_trust_root(signed, [Wrong(root_key(1))])


def test_what_is_not_a_signed_trust_root_is_refused() -> None:
    root = base_root()
    payload = tr.dump_trust_root(root)
    other = Envelope(payload, "application/vnd.in-toto+json", ())
    with pytest.raises(TrustRootError, match="payloadType"):
        countersign_trust_root(other, [root_key(0)])
    with pytest.raises(InputError):
        countersign_trust_root(b'{"payload": "!!", "payloadType": "x"}', [root_key(0)])
    garbage = Envelope(b'{"version": 1}', tr.MEDIA_TYPE, ())
    with pytest.raises(TrustRootError):
        countersign_trust_root(garbage, [root_key(0)])
    with pytest.raises(ConfigError, match="at least one"):
        countersign_trust_root(tr.sign_trust_root(root, [root_key(0)]), [])


def test_countersigning_past_the_signature_limit_is_refused() -> None:
    signed = tr.sign_trust_root(base_root(), [root_key(0)])
    small = dataclasses.replace(DEFAULT_LIMITS, max_signatures=1)
    with pytest.raises(ConfigError, match="over the limit of 1"):
        countersign_trust_root(signed, [root_key(1)], limits=small)


# --- adversarial: a trust-root update signed twice by the same root key ------------------------


def test_an_update_signed_twice_by_the_same_root_key_is_refused() -> None:
    """Item 7: exact code TRUST_ROOT_SIGNATURE_THRESHOLD; the same key counts once however
    many signatures, keyids or anchors it appears under."""
    v1 = base_root(ROOT_P256, root_key(1))
    v2 = tr.add_key(v1, key(2).public_key)
    payload = tr.dump_trust_root(v2)
    message = pae(tr.MEDIA_TYPE, payload)
    first, second = _second_ecdsa_signature(message), _second_ecdsa_signature(message)
    assert first != second
    forged = Envelope(
        payload,
        tr.MEDIA_TYPE,
        (Signature(first, ROOT_P256.keyid), Signature(second, root_key(1).keyid)),
    )
    error = expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, forged.to_json(), previous=v1)
    assert str(error) == (
        "signed trust root: 1 valid signature(s) from distinct root keys of the previous trust "
        f"root (version {v1.version}), 2 needed"
    )
    expect_code(
        tr.TRUST_ROOT_SIGNATURE_THRESHOLD,
        forged,
        pinned_root_keyids=pins(ROOT_P256, root_key(1)),
    )
    v1_signed = tr.sign_trust_root(v1, [ROOT_P256, root_key(1)])
    with pytest.raises(VerificationError) as info:
        tr.verify_trust_root_chain(
            [v1_signed, forged], pinned_root_keyids=pins(ROOT_P256, root_key(1)), now=NOW
        )
    assert info.value.code == tr.TRUST_ROOT_SIGNATURE_THRESHOLD
    # Deterministic signatures: one Ed25519 signature copied under the other root key's keyid.
    ed = tr.sign_trust_root(tr.add_key(base_root(), key(2).public_key), [root_key(0)])
    copied = dataclasses.replace(
        ed, signatures=(ed.signatures[0], Signature(ed.signatures[0].sig, root_key(1).keyid))
    )
    expect_code(tr.TRUST_ROOT_SIGNATURE_THRESHOLD, copied, previous=base_root())
    # And the countersign that would make such an envelope is refused up front.
    one = Envelope(payload, tr.MEDIA_TYPE, (Signature(first, root_key(1).keyid),))
    with pytest.raises(ConfigError, match="already signed"):
        countersign_trust_root(one, [ROOT_P256])


# --- diff --------------------------------------------------------------------------------


def _changes(diff: Any, section: str) -> list[dict[str, Any]]:
    return [c for c in diff.changes if c["section"] == section]


def test_diff_shows_an_added_key_a_policy_change_and_the_version_bump() -> None:
    old = base_root()
    new = tr.add_key(old, key(1).public_key, label="release", predicate_types=[SLSA])
    new = tr.set_policy(new, threshold=2)
    new = tr.set_policy(new, for_type=SLSA, threshold=1, required_keyids=[key(1).keyid])
    new = tr.revoke_key(new, key(0).keyid, at=NOW, reason="lost")
    diff = diff_trust_roots(tr.dump_trust_root(old), tr.dump_trust_root(new), now=NOW)
    report = diff.to_json()
    assert report["sections"]["version"] == "changed"
    assert report["sections"]["keys"] == "changed"
    assert report["sections"]["policy"] == "changed"
    assert report["sections"]["rootKeys"] == "unchanged"
    assert report["sections"]["sigstore"] == "absent"
    assert report["old"]["version"] == old.version and report["new"]["version"] == new.version
    (version,) = _changes(diff, "version")
    assert (version["old"], version["new"]) == (old.version, new.version)
    added = next(c for c in _changes(diff, "keys") if c["path"].endswith(f"={key(1).keyid}]"))
    assert added["path"] == f"$.keys[keyid={key(1).keyid}]" and added["change"] == "added"
    assert added["new"]["label"] == "release" and added["new"]["predicateTypes"] == [SLSA]
    revoked = next(c for c in _changes(diff, "keys") if c["path"].endswith(".revoked"))
    assert revoked["path"] == f"$.keys[keyid={key(0).keyid}].revoked"
    assert revoked["new"] == {"reason": "lost", "time": "2026-01-01T00:00:00Z"}
    policy = {c["path"]: c for c in _changes(diff, "policy")}
    assert policy["$.policy.threshold"]["old"] == 1 and policy["$.policy.threshold"]["new"] == 2
    per_type = policy[f'$.policy.perType["{SLSA}"]']
    assert per_type["change"] == "added"
    assert per_type["new"] == {"requiredKeyids": [key(1).keyid], "threshold": 1}
    text = "\n".join(diff.lines("v1.json", "v2.json"))
    assert f"~ $.version: {old.version} -> {new.version}" in text
    assert f"+ $.keys[keyid={key(1).keyid}]: added" in text
    assert '"label":"release"' in text and "<PEM, " in text  # the PEM by digest only
    assert "~ $.policy.threshold: 1 -> 2" in text
    assert "rootKeys: unchanged" in text
    json.dumps(report)  # serializable as is


def test_diff_reads_a_signed_trust_root_without_verifying_it_and_says_so() -> None:
    old = base_root()
    new = tr.add_key(old, key(1).public_key)
    envelope = tr.sign_trust_root(new, [root_key(0)])
    bogus = dataclasses.replace(envelope, signatures=(Signature(b"\0" * 64, "x"),))
    diff = diff_trust_roots(tr.sign_trust_root(old, [root_key(0)]), bogus.to_json(), now=NOW)
    assert diff.new.signed and diff.new.signatures == 1 and diff.old.signed
    assert diff.to_json()["signaturesVerified"] is False
    assert any("NEW is DSSE-signed" in n and "NOT verified" in n for n in diff.notes)
    assert "1 signature(s) NOT verified" in diff.lines()[1]
    assert [c["change"] for c in _changes(diff, "keys")] == ["added"]


def test_diff_notes_a_rollback_and_a_root_key_change() -> None:
    old = base_root()
    new = tr.set_root_keys(old, [root_key(3).public_key], threshold=1)
    diff = diff_trust_roots(new, old, now=NOW)
    assert any("TRUST_ROOT_ROLLBACK" in n for n in diff.notes)
    forward = diff_trust_roots(old, new, now=NOW)
    assert any("the root keys change" in n and "needs 2 signature(s)" in n for n in forward.notes)
    root_changes = {c["path"]: c["change"] for c in _changes(forward, "rootKeys")}
    assert root_changes[f"$.rootKeys.keys[keyid={root_key(3).keyid}]"] == "added"
    assert root_changes[f"$.rootKeys.keys[keyid={root_key(0).keyid}]"] == "removed"
    assert root_changes["$.rootKeys.threshold"] == "changed"
    same = diff_trust_roots(old, tr.dump_trust_root(old), now=NOW)
    assert same.identical and same.changes == ()
    assert "no changes" in "\n".join(same.lines())
    expired = diff_trust_roots(old, new, now=NOW + timedelta(days=3650))
    assert any("TRUST_ROOT_EXPIRED" in n for n in expired.notes)


def test_diff_compares_sections_it_does_not_know_and_escapes_controls() -> None:
    """Sections added to the format later (roles...) are compared generically."""
    old = DiffSide(
        {
            "version": 1,
            "roles": [{"name": "build", "threshold": 1, "keyids": ["a"]}],
            "policy": {"threshold": 1, "requiredRoles": ["build"]},
            "sigstore": {"trustedRoot": {"x": 1}, "identities": []},
        }
    )
    new = DiffSide(
        {
            "version": 2,
            "roles": [
                {"name": "build", "threshold": 2, "keyids": ["a", "b"]},
                {"name": "review\u202e\x1b[2J", "threshold": 1, "keyids": ["c"]},
            ],
            "policy": {"threshold": 1, "requiredRoles": ["build", "review"], "anyRole": True},
            "sigstore": {"trustedRoot": {"x": 2}, "identities": []},
            "futureSection": {"on": True},
        }
    )
    diff = diff_trust_roots(old, new, now=NOW)
    assert diff.sections["roles"] == "changed"
    assert diff.sections["futureSection"] == "added"
    assert diff.sections["sigstore"] == "changed"
    paths = {c["path"]: c for c in diff.changes}
    assert paths["$.roles[name=build].threshold"]["new"] == 2
    assert paths["$.roles[name=build].keyids[]"] == {
        "section": "roles",
        "path": "$.roles[name=build].keyids[]",
        "change": "added",
        "new": "b",
    }
    assert paths["$.policy.anyRole"]["change"] == "added"
    assert paths["$.policy.requiredRoles[]"]["new"] == "review"
    assert paths["$.futureSection.on"]["new"] is True
    opaque = paths["$.sigstore.trustedRoot"]
    assert opaque["change"] == "changed" and "old" not in opaque
    assert opaque["oldSha256"].startswith("sha256:") and opaque["oldSha256"] != opaque["newSha256"]
    text = "\n".join(diff.lines("old\x1b]0;x\x07", "new"))
    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert "\\u202e" in text and "\\x1b" in text
    # Same entries in another order: said, not hidden.
    turned = diff_trust_roots(
        DiffSide({"policy": {"requiredKeyids": ["a", "b"]}}),
        DiffSide({"policy": {"requiredKeyids": ["b", "a"]}}),
        now=NOW,
    )
    assert [c["change"] for c in turned.changes] == ["reordered"]


def test_diff_refuses_what_is_not_a_trust_root() -> None:
    with pytest.raises(TrustRootError):
        read_diff_side(b'{"version": 1}')
    with pytest.raises(TrustRootError, match="payloadType"):
        read_diff_side(Envelope(tr.dump_trust_root(base_root()), "text/plain", ()))
    document = json.loads(tr.dump_trust_root(base_root()))
    document["keys"][0]["keyid"] = "0" * 64  # a keyid that is not the key's
    with pytest.raises(TrustRootError):
        read_diff_side(json.dumps(document).encode())
