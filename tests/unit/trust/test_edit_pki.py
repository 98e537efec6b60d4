"""The pki section's management operations (`dssesign.trust.edit_pki`) and its `diff`.

Every operation returns a new trust root, version + 1, built through the loader's own checks;
every refusal names the path and changes nothing. The diff reports each pki change and marks
those that widen trust.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519

from dssesign import trust as tr
from dssesign.codes import Code
from dssesign.errors import ConfigError, TrustRootError, VerificationError
from dssesign.trust import TrustRoot
from dssesign.trust.diff import diff_trust_roots
from dssesign.verify import verify
from tests.conftest import signer_for
from tests.pki import Revoked, crl_pem, make_ca, make_crl, org_pki
from tests.unit.verify.test_pki_verify import signed
from tests.unit.verify.test_verify import NOW

SLSA = "https://slsa.dev/provenance/v1"
OID = "1.3.6.1.4.1.55555.1"
SIGSTORE: dict[str, Any] = {
    "trustedRoot": {"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"},
    "identities": [
        {"issuer": "https://accounts.google.com", "subject": "a@example.com", "name": "keyless"}
    ],
}


@pytest.fixture(scope="module")
def pki() -> Any:
    return org_pki()


def base() -> TrustRoot:
    return tr.init_trust_root(threshold=1, now=datetime(2026, 1, 1, tzinfo=UTC))


def with_cas(pki: Any) -> TrustRoot:
    root = tr.add_certificate_authority(base(), pki.root.pem, "root", label="Example Root")
    return tr.add_certificate_authority(root, pki.intermediate.pem.decode(), "issuing")


def standard(pki: Any) -> TrustRoot:
    """Root and issuing CA, and the release identity under the issuing CA, named `release`."""
    return tr.add_certificate_identity(
        with_cas(pki), ca="issuing", subject="release@example.com", name="release"
    )


def refused(match: str, call: Any, *args: Any, **kwargs: Any) -> TrustRootError:
    with pytest.raises(TrustRootError, match=match) as info:
        call(*args, **kwargs)
    return info.value


def round_trips(root: TrustRoot) -> None:
    data = tr.dump_trust_root(root)
    again = tr.load_trust_root(data, allow_incomplete=True)
    assert again == root and tr.dump_trust_root(again) == data


# --- certificate authorities -------------------------------------------------------------------


def test_add_a_root_and_an_intermediate(pki: Any) -> None:
    before = base()
    root = with_cas(pki)
    assert root.version == before.version + 2
    assert root.media_type == tr.MEDIA_TYPE_V2
    assert root.pki is not None
    first, second = root.pki.authorities
    assert (first.name, first.label, first.is_root) == ("root", "Example Root", True)
    assert (second.name, second.is_root) == ("issuing", False)
    assert first.certificate == pki.root.cert
    assert before.pki is None  # the input is never changed
    round_trips(root)


def test_a_window_is_kept_to_whole_seconds_on_the_strict_side(pki: Any) -> None:
    start = datetime(2026, 1, 1, 0, 0, 0, 500, tzinfo=UTC)
    end = datetime(2027, 1, 1, 0, 0, 0, 500, tzinfo=UTC)
    root = tr.add_certificate_authority(
        base(), pki.root.cert, "root", valid_from=start, valid_until=end
    )
    assert root.pki is not None
    (authority,) = root.pki.authorities
    assert authority.valid_from == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert authority.valid_until == datetime(2027, 1, 1, tzinfo=UTC)
    round_trips(root)
    refused(
        "validUntil: is before validFrom",
        tr.add_certificate_authority,
        base(),
        pki.root.pem,
        "root",
        valid_from=end,
        valid_until=start,
    )


def test_add_ca_refusals(pki: Any) -> None:
    root = with_cas(pki)
    stranger = org_pki()
    error = refused(
        "a CA named 'root' is already listed",
        tr.add_certificate_authority,
        root,
        stranger.root.pem,
        "root",
    )
    assert error.path == "$.pki.certificateAuthorities[0].name"
    refused(
        "already listed as 'issuing'",
        tr.add_certificate_authority,
        root,
        pki.intermediate.pem,
        "again",
    )
    error = refused(
        "issued by a CA listed before it",
        tr.add_certificate_authority,
        root,
        stranger.intermediate.pem,
        "stranger",
    )
    assert error.path == "$.pki.certificateAuthorities[2].certificate"
    not_ca = make_ca("Not A CA", issuer=pki.root, ca=False)
    refused("not a CA certificate", tr.add_certificate_authority, root, not_ca.pem, "not-ca")
    refused("not a CA certificate", tr.add_certificate_authority, root, pki.leaf.pem, "leaf")
    edwards = make_ca("Edwards Root", key=ed25519.Ed25519PrivateKey.generate())
    refused("not RSA or ECDSA", tr.add_certificate_authority, root, edwards.pem, "ed")
    uris = make_ca("URI Root", permitted_uris=["https://example.com"])
    refused("URI name constraints", tr.add_certificate_authority, root, uris.pem, "uri")
    refused(
        "exactly one PEM certificate",
        tr.add_certificate_authority,
        root,
        pki.root.pem + pki.intermediate.pem,
        "two",
    )
    refused("exactly one PEM certificate", tr.add_certificate_authority, root, b"junk", "junk")
    refused(
        "control or reordering", tr.add_certificate_authority, root, stranger.root.pem, "evil\u202e"
    )
    refused(
        "control characters",
        tr.add_certificate_authority,
        root,
        stranger.root.pem,
        "ok",
        label="a\x1b[2J",
    )


def test_the_ca_limit(pki: Any) -> None:
    root = base()
    for index in range(32):
        root = tr.add_certificate_authority(root, make_ca(f"Root {index}").pem, f"r{index}")
    refused("already lists 32 CAs", tr.add_certificate_authority, root, pki.root.pem, "one-more")


# --- certificate identities --------------------------------------------------------------------


def test_add_identities_of_every_subject_form(pki: Any) -> None:
    root = standard(pki)
    dn = pki.leaf.cert.subject.rfc4514_string()
    root = tr.add_certificate_identity(root, ca="root", subject_dn=dn, label="by DN")
    root = tr.add_certificate_identity(
        root,
        ca="root",
        subject_regexp=r".*@example\.com",
        extensions={OID: "release"},
        predicate_types=[SLSA],
        name="any-example",
    )
    assert root.pki is not None
    release, by_dn, regexp = root.pki.identities
    assert (release.ca, release.subject, release.name) == (
        "issuing",
        "release@example.com",
        "release",
    )
    assert (by_dn.subject_dn, by_dn.label) == (dn, "by DN")
    assert dict(regexp.extensions) == {OID: "release"} and regexp.predicate_types == (SLSA,)
    round_trips(root)
    # A role may list certificate identities by name, as it lists keyless ones.
    with_role = tr.add_role(
        root, "release-team", identities=["release", "any-example"], threshold=1
    )
    round_trips(with_role)


def test_add_identity_refusals(pki: Any) -> None:
    root = standard(pki)
    add = tr.add_certificate_identity
    error = refused("'nope' names no certificate authority", add, root, ca="nope", subject="x")
    assert "listed: root, issuing" in str(error) and error.path == "$.pki.identities[1].ca"
    refused("no organisation CA yet", add, base(), ca="root", subject="x")
    with pytest.raises(ConfigError, match="exactly one of"):
        add(root, ca="root", subject="x", subject_dn="CN=x")
    with pytest.raises(ConfigError, match="exactly one of"):
        add(root, ca="root")
    for oid in ("foo", "3.1", "1.2.x", "1"):
        refused("is not a dotted OID", add, root, ca="root", subject="x", extensions={oid: "v"})
    refused("subjectRegExp", add, root, ca="root", subject_regexp="(a")
    refused("not an RFC 4514 DN", add, root, ca="root", subject_dn="not a dn")
    refused(
        "already the name of \\$.pki.identities\\[0\\]",
        add,
        root,
        ca="root",
        subject="other@example.com",
        name="release",
    )
    refused(
        "the same rule is already listed", add, root, ca="issuing", subject="release@example.com"
    )
    refused("not an absolute URI", add, root, ca="root", subject="x", predicate_types=["slsa"])
    with pytest.raises(ConfigError, match="not one string"):
        add(root, ca="root", subject="x", predicate_types=SLSA)
    keyless = dataclasses.replace(root, sigstore=copy.deepcopy(SIGSTORE))
    error = refused(
        "already the name of a keyless identity",
        add,
        keyless,
        ca="root",
        subject="x",
        name="keyless",
    )
    assert "unique across both kinds" in str(error)


def test_a_revoked_rule_may_be_listed_again(pki: Any) -> None:
    root = tr.revoke_identity(standard(pki), "release", at=NOW)
    again = tr.add_certificate_identity(root, ca="issuing", subject="release@example.com")
    assert again.pki is not None and len(again.pki.identities) == 2


# --- CRLs ----------------------------------------------------------------------------------


def test_add_and_replace_a_crl(pki: Any) -> None:
    root = standard(pki)
    first = make_crl(pki.intermediate, [Revoked(7, NOW - timedelta(days=30))], number=1)
    with_crl = tr.add_crl(root, crl_pem(first))
    assert with_crl.version == root.version + 1
    assert with_crl.pki is not None
    assert [(name, crl.next_update_utc) for name, crl in with_crl.pki.crls] == [
        ("issuing", first.next_update_utc)
    ]
    both = tr.add_crl(with_crl, make_crl(pki.root))
    assert both.pki is not None and [n for n, _ in both.pki.crls] == ["issuing", "root"]
    newer = make_crl(pki.intermediate, number=2)
    replaced = tr.add_crl(both, crl_pem(newer).decode())
    assert replaced.pki is not None
    assert [(n, len(c)) for n, c in replaced.pki.crls] == [("issuing", 0), ("root", 0)]
    round_trips(replaced)
    error = refused(
        "not newer than the one carried: its CRLNumber 1 is not higher than 2",
        tr.add_crl,
        replaced,
        crl_pem(first),
    )
    assert error.path == "$.pki.crls[0]"
    refused("CRLNumber 2 is not higher than 2", tr.add_crl, replaced, crl_pem(newer))
    earlier = make_crl(pki.intermediate, number=3, last_update=NOW - timedelta(days=400))
    refused("lastUpdate .* is before", tr.add_crl, replaced, crl_pem(earlier))


def test_without_crl_numbers_the_later_last_update_wins(pki: Any) -> None:
    def unnumbered(last_update: datetime) -> x509.CertificateRevocationList:
        return (
            x509.CertificateRevocationListBuilder()
            .issuer_name(pki.root.cert.subject)
            .last_update(last_update)
            .next_update(last_update + timedelta(days=30))
            .sign(pki.root.key, hashes.SHA256())
        )

    root = tr.add_crl(with_cas(pki), unnumbered(NOW - timedelta(days=2)))
    root = tr.add_crl(root, unnumbered(NOW - timedelta(days=1)))
    refused("lastUpdate .* is not after", tr.add_crl, root, unnumbered(NOW - timedelta(days=1)))
    round_trips(root)


def test_add_crl_refusals(pki: Any) -> None:
    root = standard(pki)
    wrong = make_crl(pki.intermediate, signed_by=pki.root.key)
    refused("signed by the wrong CA", tr.add_crl, root, crl_pem(wrong))
    refused(
        "issuer CN=Other CA,O=Example Corp is none of the trust root's certificate authorities",
        tr.add_crl,
        root,
        crl_pem(make_crl(make_ca("Other CA"))),
    )
    refused("no organisation CA yet", tr.add_crl, base(), crl_pem(make_crl(pki.root)))
    refused("exactly one PEM X509 CRL", tr.add_crl, root, pki.root.pem)
    refused(
        "is not a PEM X509 CRL",
        tr.add_crl,
        root,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )


# --- revocation ----------------------------------------------------------------------------


def test_revoke_a_ca_and_an_identity(pki: Any) -> None:
    root = standard(pki)
    revoked = tr.revoke_certificate_authority(root, "issuing", at=NOW)
    revoked = tr.revoke_identity(revoked, "release", at=NOW + timedelta(microseconds=700))
    assert revoked.version == root.version + 2
    assert revoked.pki is not None
    authority, identity = revoked.pki.authority("issuing"), revoked.pki.identity("release")
    assert authority is not None and authority.revoked_at == NOW
    assert identity is not None and identity.revoked_at == NOW  # rounded down: stricter
    round_trips(revoked)
    now = tr.revoke_certificate_authority(root, "root")
    assert now.pki is not None and now.pki.authorities[0].revoked_at is not None
    refused("'issuing' is already revoked", tr.revoke_certificate_authority, revoked, "issuing")
    refused("'release' is already revoked", tr.revoke_identity, revoked, "release")
    refused(
        "no certificate authority named 'nope' \\(listed: root, issuing\\)",
        tr.revoke_certificate_authority,
        root,
        "nope",
    )
    refused(
        "no certificate identity named 'nope' \\(named identities: release\\)",
        tr.revoke_identity,
        root,
        "nope",
    )
    refused("no organisation CA yet", tr.revoke_identity, base(), "release")
    keyless = dataclasses.replace(root, sigstore=copy.deepcopy(SIGSTORE))
    error = refused(
        "keyless identities are removed from the trust root, not revoked",
        tr.revoke_identity,
        keyless,
        "keyless",
    )
    assert error.path == "$.sigstore.identities[0]"


def test_what_the_edits_mean_to_a_verifier(pki: Any) -> None:
    envelope, bundle = signed(pki.leaf)
    root = standard(pki)
    assert verify(envelope, root, bundles=[bundle], at=NOW).identities_counted
    cases = {
        Code.IDENTITY_REVOKED: tr.revoke_identity(root, "release", at=NOW - timedelta(days=1)),
        Code.CA_NOT_TRUSTED_AT_TIME: tr.revoke_certificate_authority(
            root, "issuing", at=NOW - timedelta(days=1)
        ),
        Code.CERTIFICATE_REVOKED: tr.add_crl(
            root,
            make_crl(
                pki.intermediate, [Revoked(pki.leaf.cert.serial_number, NOW - timedelta(days=2))]
            ),
        ),
    }
    for code, edited in cases.items():
        with pytest.raises(VerificationError) as info:
            verify(envelope, edited, bundles=[bundle], at=NOW)
        assert info.value.code == code
    later = tr.revoke_identity(root, "release", at=NOW + timedelta(days=1))
    assert verify(envelope, later, bundles=[bundle], at=NOW).identities_counted


def test_the_edit_functions_import_no_x509_until_called(tmp_path: Any) -> None:
    code = (
        "import sys; from dssesign.trust import add_crl, add_certificate_authority; "
        "print(sorted(m for m in sys.modules if m == 'cryptography.x509' "
        "or m.startswith('dssesign.timestamp') or m == 'dssesign.trust.pki'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out


# --- diff ----------------------------------------------------------------------------------


def diff(old: TrustRoot, new: TrustRoot) -> dict[str, Any]:
    """{path: (change record, widening reason or None)}, and the whole text, under "text"."""
    result = diff_trust_roots(tr.dump_trust_root(old), tr.dump_trust_root(new), now=NOW)
    assert not result.identical
    reasons = {entry["index"]: entry["reason"] for entry in result.widening}
    found: dict[str, Any] = {
        change["path"]: (change, reasons.get(index))
        for index, change in enumerate(result.changes)
        if change["section"] == "pki"
    }
    found["text"] = "\n".join(result.lines("old", "new"))
    found["json"] = result.to_json()
    json.dumps(found["json"])
    return found


CA = "$.pki.certificateAuthorities[name={}]"
IDENTITY = "$.pki.identities[name={}]"


def test_diff_a_ca_added_removed_revoked_and_its_window(pki: Any) -> None:
    old = standard(pki)
    stranger = org_pki()
    added = diff(old, tr.add_certificate_authority(old, stranger.root.pem, "other"))
    change, reason = added[CA.format("other")]
    assert change["change"] == "added" and reason == "an organisation CA is trusted"
    fingerprint = stranger.root.cert.fingerprint(hashes.SHA256()).hex()
    assert (
        f"<certificate CN=Example Root CA,O=Example Corp, SHA-256 {fingerprint}>" in added["text"]
    )
    assert "[WIDENS TRUST: an organisation CA is trusted]" in added["text"]
    assert any("1 change(s) widen trust" in n for n in added["json"]["notes"])
    assert added["json"]["widensTrust"] == [
        {
            "index": next(
                i for i, c in enumerate(added["json"]["changes"]) if c["path"] == CA.format("other")
            ),
            "path": CA.format("other"),
            "reason": "an organisation CA is trusted",
        }
    ]

    revoked = tr.revoke_certificate_authority(old, "issuing", at=NOW)
    forward = diff(old, revoked)
    change, reason = forward[CA.format("issuing") + ".revokedAt"]
    assert (change["change"], change["new"], reason) == ("added", "2026-06-01T12:00:00Z", None)
    back = diff(revoked, old)
    assert back[CA.format("issuing") + ".revokedAt"][1] == "a revocation is lifted"

    document = json.loads(tr.dump_trust_root(old))
    document["pki"]["certificateAuthorities"][1]["validUntil"] = "2027-01-01T00:00:00Z"
    document["version"] += 1
    windowed = tr.load_trust_root(json.dumps(document), allow_incomplete=True)
    narrowed = diff(old, windowed)[CA.format("issuing") + ".validUntil"]
    assert narrowed[0]["change"] == "added" and narrowed[1] is None
    assert diff(windowed, old)[CA.format("issuing") + ".validUntil"][1] == (
        "its window closes later"
    )

    smaller = json.loads(tr.dump_trust_root(old))
    del smaller["pki"]["identities"]
    smaller["pki"]["certificateAuthorities"].pop()
    removed = diff(old, tr.load_trust_root(json.dumps(smaller), allow_incomplete=True))
    assert removed[CA.format("issuing")][0]["change"] == "removed"
    assert removed[CA.format("issuing")][1] is None


def test_diff_a_ca_certificate_replaced_under_the_same_name(pki: Any) -> None:
    old = with_cas(pki)
    document = json.loads(tr.dump_trust_root(old))
    document["pki"]["certificateAuthorities"][0]["certificate"] = org_pki().root.pem.decode()
    document["pki"]["certificateAuthorities"].pop()  # the intermediate no longer chains
    document["version"] += 1
    new = tr.load_trust_root(json.dumps(document), allow_incomplete=True)
    found = diff(old, new)
    assert found[CA.format("root") + ".certificate"][1] == "the CA's certificate is replaced"


def test_diff_an_identity_added_removed_revoked_and_changed(pki: Any) -> None:
    old = standard(pki)
    new = tr.add_certificate_identity(old, ca="root", subject_regexp=".*", name="anyone")
    found = diff(old, new)
    change, reason = found[IDENTITY.format("anyone")]
    assert change["new"] == {"ca": "root", "name": "anyone", "subjectRegExp": ".*"}
    assert reason == "a certificate identity is trusted"
    change, reason = diff(new, old)[IDENTITY.format("anyone")]
    assert change["change"] == "removed" and reason is None

    revoked = tr.revoke_identity(old, "release", at=NOW)
    assert diff(old, revoked)[IDENTITY.format("release") + ".revokedAt"][1] is None
    assert diff(revoked, old)[IDENTITY.format("release") + ".revokedAt"][1] == (
        "a revocation is lifted"
    )

    document = json.loads(tr.dump_trust_root(old))
    document["pki"]["identities"][0]["subject"] = "attacker@example.com"
    document["pki"]["identities"][0]["extensions"] = {OID: "x"}
    document["version"] += 1
    moved = tr.load_trust_root(json.dumps(document), allow_incomplete=True)
    found = diff(old, moved)
    assert found[IDENTITY.format("release") + ".subject"][1] == "the rule matches other signers"
    assert found[IDENTITY.format("release") + ".extensions"][1] is None  # a requirement added
    assert diff(moved, old)[IDENTITY.format("release") + ".extensions"][1] == (
        "it no longer requires certificate extensions"
    )


def test_diff_matches_unnamed_identities_by_their_rule(pki: Any) -> None:
    old = tr.add_certificate_identity(with_cas(pki), ca="root", subject="a@example.com")
    new = tr.revoke_identity(
        tr.add_certificate_identity(old, ca="root", subject="b@example.com", name="b"),
        "b",
        at=NOW,
    )
    found = diff(old, new)
    path = "$.pki.identities[ca=root,subject=b@example.com]"
    assert found[path][0]["change"] == "added" and found[path][1] is not None
    assert not [p for p in found if p.startswith("$.pki.identities[ca=root,subject=a@")]


def test_diff_crls_added_replaced_and_removed(pki: Any) -> None:
    old = standard(pki)
    serial = pki.leaf.cert.serial_number
    first = tr.add_crl(old, make_crl(pki.intermediate, [Revoked(serial, NOW)], number=1))
    issuer = pki.intermediate.cert.subject.rfc4514_string()
    path = f'$.pki.crls[issuer="{issuer}"]'
    found = diff(old, first)
    change, reason = found[path]
    assert change["change"] == "added" and reason is None
    assert {k: change["new"][k] for k in ("crlNumber", "entries", "issuer")} == {
        "crlNumber": 1,
        "entries": 1,
        "issuer": issuer,
    }
    assert change["new"]["lastUpdate"] == "2026-05-31T00:00:00Z"
    assert change["new"]["nextUpdate"] == "2028-05-31T00:00:00Z"
    assert '"crlNumber":1' in found["text"] and "BEGIN X509 CRL" not in found["text"]

    more = tr.add_crl(
        first, make_crl(pki.intermediate, [Revoked(serial, NOW), Revoked(9, NOW)], number=2)
    )
    change, reason = diff(first, more)[path]
    assert change["change"] == "changed" and reason is None
    assert (change["old"]["entries"], change["new"]["entries"]) == (1, 2)
    dropped = tr.add_crl(more, make_crl(pki.intermediate, number=3))
    assert diff(more, dropped)[path][1] == (
        f"certificates are no longer revoked (serial 9, {serial:x})"
    )
    assert diff(more, first)[path][1] == "certificates are no longer revoked (serial 9)"
    assert diff(dropped, more)[path][1] == "an older CRL replaces a newer one (a lower CRLNumber)"
    gone = diff(first, old)
    assert gone[path][0]["change"] == "removed"
    assert gone[path][1] == "a CRL is no longer carried: what it revoked counts again"


def test_diff_of_the_whole_section_and_never_empty(pki: Any) -> None:
    old = base()
    new = standard(pki)
    result = diff_trust_roots(old, new, now=NOW)
    assert result.sections["pki"] == "added"
    paths = [c["path"] for c in result.changes if c["section"] == "pki"]
    assert paths == [CA.format("root"), CA.format("issuing"), IDENTITY.format("release")]
    assert len(result.widening) == 3
    assert diff_trust_roots(new, old, now=NOW).sections["pki"] == "removed"
    assert diff_trust_roots(base(), base(), now=NOW).sections["pki"] == "absent"
    # Any change to the section is reported, even one no rule here knows (a label).
    labelled = json.loads(tr.dump_trust_root(new))
    labelled["pki"]["certificateAuthorities"][0]["label"] = "Renamed\u202e"
    relabelled = diff_trust_roots(tr.dump_trust_root(new), json.dumps(labelled), now=NOW)
    assert [c["path"] for c in relabelled.changes] == [CA.format("root") + ".label"]
    text = "\n".join(relabelled.lines())
    assert "\u202e" not in text and "Renamed\\u202e" in text


def test_diff_marks_widening_changes_of_the_other_sections() -> None:
    key = signer_for("ed25519", 900)
    old = tr.add_key(tr.set_policy(base(), threshold=1), signer_for("ed25519", 901).public_key)
    new = tr.add_key(old, key.public_key)
    result = diff_trust_roots(old, new, now=NOW)
    assert [w["reason"] for w in result.widening] == ["a signing key is trusted"]
    revoked = tr.revoke_key(new, key.keyid, at=NOW)
    back = diff_trust_roots(revoked, new, now=NOW)
    assert [w["reason"] for w in back.widening] == ["a revocation is lifted"]
    two = tr.set_policy(new, threshold=2)
    lowered = diff_trust_roots(two, new, now=NOW)
    assert [w["reason"] for w in lowered.widening] == ["a threshold is lowered"]
    assert diff_trust_roots(new, two, now=NOW).widening == ()
