"""`dssesign trust-root add-ca`, `add-identity --ca`, `add-crl`, `revoke --ca / --identity`, the
pki lines of `show` and `diff`, end to end in a real process, with the test organisation PKI of
`tests/pki.py`; and `dssesign verify` of a certificate bundle against the trust root they make.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519

from dssesign.audit import read_records, verify_log
from dssesign.cli import main
from dssesign.profiles.software import write_keypair
from dssesign.trust import read_trust_root
from tests.conftest import signer_for
from tests.pki import EPOCH, Revoked, crl_pem, make_ca, make_crl, org_pki
from tests.unit.cli.test_cli import Run, assert_one_line_error, dssesign
from tests.unit.verify.test_pki_verify import signed

SLSA = "https://slsa.dev/provenance/v1"
OID = "1.3.6.1.4.1.55555.1"
AT = "2026-06-01T12:00:00Z"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """PEM files of a test PKI (and its broken variants), the signed envelope and bundle of
    its leaf, and the PKI itself under "pki"."""
    directory = tmp_path_factory.mktemp("pki")
    pki = org_pki()
    serial = pki.leaf.cert.serial_number
    other = make_ca("Other CA")
    contents: dict[str, bytes] = {
        "root": pki.root.pem,
        "intermediate": pki.intermediate.pem,
        "stranger": org_pki().intermediate.pem,
        "not-ca": make_ca("Not A CA", issuer=pki.root, ca=False).pem,
        "leaf": pki.leaf.pem,
        "ed25519": make_ca("Edwards CA", key=ed25519.Ed25519PrivateKey.generate()).pem,
        "uri": make_ca("URI CA", permitted_uris=["https://example.com"]).pem,
        "two": pki.root.pem + pki.intermediate.pem,
        "garbage": b"not a certificate\n",
        "crl1": crl_pem(make_crl(pki.intermediate, [Revoked(7, EPOCH)], number=1)),
        "crl2": crl_pem(make_crl(pki.intermediate, number=2)),
        "crl-leaf": crl_pem(
            make_crl(pki.intermediate, [Revoked(serial, EPOCH - timedelta(days=2))], number=3)
        ),
        "crl-wrong": crl_pem(make_crl(pki.intermediate, signed_by=pki.root.key, number=9)),
        "crl-other": crl_pem(make_crl(other)),
        "crl-stale": crl_pem(
            make_crl(pki.root, last_update=EPOCH - timedelta(days=9), next_update=EPOCH)
        ),
    }
    made: dict[str, Any] = {"pki": pki}
    for name, data in contents.items():
        made[name] = directory / f"{name}.pem"
        made[name].write_bytes(data)
    envelope, bundle = signed(pki.leaf)
    made["envelope"] = directory / "statement.json"
    made["envelope"].write_text(envelope)
    made["bundle"] = directory / "statement.sigstore.json"
    made["bundle"].write_text(bundle)
    return made


def _ok(run: Run) -> Run:
    assert run.code == 0, run
    return run


def cli(*args: str | Path) -> Run:
    """`dssesign ARGS` in this process (as `main` runs it: one error line, an exit code); the
    end-to-end tests below run real processes."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse: usage errors and --help
            code = exc.code if isinstance(exc.code, int) else 2
    return Run(code, out.getvalue(), err.getvalue())


def trust(*args: str | Path) -> Run:
    return cli("trust-root", *args)


def _init(tmp_path: Path) -> Path:
    tmp_path.mkdir(exist_ok=True)
    root = tmp_path / "root.json"
    _ok(trust("init", "--out", root))
    return root


def _with_cas(files: dict[str, Any], tmp_path: Path) -> Path:
    root = _init(tmp_path)
    _ok(trust("add-ca", root, "--certificate", files["root"], "--name", "root"))
    _ok(trust("add-ca", root, "--certificate", files["intermediate"], "--name", "issuing"))
    return root


def _fingerprint(path: Path) -> str:
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes()).fingerprint(hashes.SHA256()).hex()


def test_add_ca_end_to_end(files: dict[str, Any], tmp_path: Path) -> None:
    root = _init(tmp_path)
    run = _ok(
        trust(
            "add-ca",
            root,
            "--certificate",
            files["root"],
            "--name",
            "root",
            "--label",
            "Example Root",
            "--valid-from",
            "2026-01-01T00:00:00Z",
            "--valid-until",
            "2030-01-01T00:00:00Z",
        )
    )
    assert run.out == (
        f"{root}: added certificate authority root (root, SHA-256 "
        f"{_fingerprint(files['root'])}) (version 2)\n"
    )
    second = _ok(
        trust("add-ca", root, "--certificate", files["intermediate"], "--name", "issuing", "--json")
    )
    assert json.loads(second.out) == {
        "file": str(root),
        "version": 3,
        "change": "added certificate authority issuing (intermediate issued by root, SHA-256 "
        f"{_fingerprint(files['intermediate'])})",
    }
    loaded = read_trust_root(root, allow_incomplete=True)
    assert loaded.pki is not None and loaded.media_type.endswith("v2+json")
    authority = loaded.pki.authority("root")
    assert authority is not None and authority.label == "Example Root"
    document = json.loads(root.read_bytes())
    assert document["pki"]["certificateAuthorities"][0]["certificate"] == (
        files["root"].read_text()
    )
    assert document["pki"]["certificateAuthorities"][0]["validUntil"] == "2030-01-01T00:00:00Z"


def test_add_ca_refusals_are_one_line_and_change_nothing(
    files: dict[str, Any], tmp_path: Path
) -> None:
    root = _with_cas(files, tmp_path)
    before = root.read_bytes()
    add = ("add-ca", root, "--certificate")
    assert_one_line_error(
        trust(*add, files["stranger"], "--name", "root"),
        "$.pki.certificateAuthorities[0].name",
        "a CA named 'root' is already listed",
    )
    assert_one_line_error(trust(*add, files["root"], "--name", "again"), "already listed as 'root'")
    assert_one_line_error(
        trust(*add, files["stranger"], "--name", "stranger"),
        f"--certificate {files['stranger']}:",
        "neither a self-signed root nor issued by a CA listed before it",
    )
    assert_one_line_error(
        trust(*add, files["not-ca"], "--name", "not-ca"), "is not a CA certificate"
    )
    assert_one_line_error(trust(*add, files["leaf"], "--name", "leaf"), "not a CA certificate")
    assert_one_line_error(
        trust(*add, files["ed25519"], "--name", "ed"), "its key is not RSA or ECDSA"
    )
    assert_one_line_error(trust(*add, files["uri"], "--name", "uri"), "URI name constraints")
    assert_one_line_error(
        trust(*add, files["two"], "--name", "two"),
        f"--certificate {files['two']}: must hold exactly one PEM certificate, not 2",
    )
    assert_one_line_error(
        trust(*add, files["garbage"], "--name", "g"), "exactly one PEM certificate, not 0"
    )
    assert_one_line_error(trust(*add, tmp_path / "missing.pem", "--name", "m"), "missing.pem")
    assert_one_line_error(
        trust(*add, make_ca_file(tmp_path), "--name", "bad\u202ename"),
        "--name: contains control or reordering characters",
    )
    assert_one_line_error(
        trust(
            *add,
            make_ca_file(tmp_path),
            "--name",
            "w",
            "--valid-from",
            "2027-01-01T00:00:00Z",
            "--valid-until",
            "2026-01-01T00:00:00Z",
        ),
        "--valid-until: is before validFrom",
    )
    assert_one_line_error(
        trust(*add, make_ca_file(tmp_path), "--name", "t", "--valid-from", "yesterday"),
        "--valid-from",
    )
    assert root.read_bytes() == before


def make_ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "fresh-root.pem"
    if not path.exists():
        path.write_bytes(make_ca("Fresh Root").pem)
    return path


def test_add_identity_with_a_ca(files: dict[str, Any], tmp_path: Path) -> None:
    root = _with_cas(files, tmp_path)
    run = _ok(
        trust(
            "add-identity",
            root,
            "--ca",
            "issuing",
            "--subject",
            "release@example.com",
            "--name",
            "release",
            "--label",
            "Release signer",
            "--predicate-type",
            SLSA,
            "--extension",
            f"{OID}=release",
        )
    )
    assert run.out == (
        f"{root}: added certificate identity issuing release@example.com as release (version 4)\n"
    )
    dn = files["pki"].leaf.cert.subject.rfc4514_string()
    _ok(trust("add-identity", root, "--ca", "root", "--subject-dn", dn))
    _ok(trust("add-identity", root, "--ca", "root", "--subject-regexp", r".*@example\.com"))
    document = json.loads(root.read_bytes())
    assert document["version"] == 6
    assert document["pki"]["identities"] == [
        {
            "ca": "issuing",
            "subject": "release@example.com",
            "name": "release",
            "label": "Release signer",
            "predicateTypes": [SLSA],
            "extensions": {OID: "release"},
        },
        {"ca": "root", "subjectDN": dn},
        {"ca": "root", "subjectRegExp": r".*@example\.com"},
    ]
    # A role lists it by name, as it lists keyless identities.
    _ok(trust("add-role", root, "--name", "release", "--identity", "release", "--threshold", "1"))


def test_add_identity_refusals_change_nothing(files: dict[str, Any], tmp_path: Path) -> None:
    root = _with_cas(files, tmp_path)
    _ok(trust("add-identity", root, "--ca", "issuing", "--subject", "a@example.com", "--name", "a"))
    before = root.read_bytes()
    add = ("add-identity", root)
    assert_one_line_error(
        trust(*add, "--ca", "nope", "--subject", "x"),
        "--ca: 'nope' names no certificate authority of the trust root (listed: root, issuing)",
    )
    assert_one_line_error(
        trust(*add, "--ca", "root", "--subject", "x", "--subject-dn", "CN=x"),
        "argument --subject-dn: not allowed with argument --subject",
    )
    assert_one_line_error(
        trust(*add, "--ca", "root", "--issuer", "https://x", "--subject", "x"),
        "not allowed with argument",
    )
    assert_one_line_error(trust(*add, "--subject", "x"), "one of the arguments --issuer --ca")
    for bad in ("foo=bar", "3.1=x", "1.2.3"):
        assert_one_line_error(
            trust(*add, "--ca", "root", "--subject", "x", "--extension", bad), "--extension"
        )
    assert_one_line_error(
        trust(
            *add,
            "--ca",
            "root",
            "--subject",
            "x",
            "--extension",
            "1.2.3=x",
            "--extension",
            "1.2.3=y",
        ),
        "--extension 1.2.3 given twice",
    )
    assert_one_line_error(
        trust(*add, "--ca", "root", "--subject-dn", "not a DN"), "--subject-dn: is not an RFC 4514"
    )
    assert_one_line_error(
        trust(*add, "--ca", "root", "--subject-regexp", "(a"), "--subject-regexp:"
    )
    assert_one_line_error(
        trust(*add, "--ca", "root", "--subject", "x", "--name", "a"),
        "'a' is already the name of $.pki.identities[0]",
    )
    assert_one_line_error(
        trust(*add, "--ca", "issuing", "--subject", "a@example.com"), "the same rule is already"
    )
    assert_one_line_error(
        trust(*add, "--issuer", "https://x", "--subject-dn", "CN=x"),
        "--subject-dn is for certificate identities (--ca NAME), not --issuer",
    )
    assert root.read_bytes() == before
    empty = _init(tmp_path / "empty")
    assert_one_line_error(
        trust("add-identity", empty, "--ca", "root", "--subject", "x"), "no organisation CA yet"
    )


def test_add_crl_and_its_refusals(files: dict[str, Any], tmp_path: Path) -> None:
    root = _with_cas(files, tmp_path)
    run = _ok(trust("add-crl", root, "--crl", files["crl1"]))
    assert run.out == (
        f"{root}: added a CRL of issuing (CRLNumber 1, lastUpdate 2026-05-31T00:00:00Z, "
        "nextUpdate 2028-05-31T00:00:00Z, 1 entry) (version 4)\n"
    )
    run = _ok(trust("add-crl", root, "--crl", files["crl2"]))
    assert run.out.startswith(f"{root}: replaced the CRL of issuing (CRLNumber 2,")
    before = root.read_bytes()
    assert_one_line_error(
        trust("add-crl", root, "--crl", files["crl1"]),
        f"--crl {files['crl1']}: the CRL of 'issuing' is not newer than the one carried: "
        "its CRLNumber 1 is not higher than 2",
    )
    assert_one_line_error(
        trust("add-crl", root, "--crl", files["crl-wrong"]), "signed by the wrong CA"
    )
    assert_one_line_error(
        trust("add-crl", root, "--crl", files["crl-other"]),
        "issuer CN=Other CA,O=Example Corp is none of the trust root's certificate authorities",
    )
    assert_one_line_error(
        trust("add-crl", root, "--crl", files["root"]),
        f"--crl {files['root']}: must hold exactly one PEM X509 CRL",
    )
    assert root.read_bytes() == before
    stale = _ok(trust("add-crl", root, "--crl", files["crl-stale"]))
    assert "warning: the CRL's nextUpdate 2026-06-01T00:00:00Z has passed" in stale.err
    assert "CRL_STALE" in stale.err


def test_revoke_a_ca_and_an_identity(files: dict[str, Any], tmp_path: Path) -> None:
    root = _with_cas(files, tmp_path)
    _ok(trust("add-identity", root, "--ca", "issuing", "--subject", "r@example.com", "--name", "r"))
    run = _ok(trust("revoke", root, "--identity", "r", "--at", "2026-02-01T00:00:00Z"))
    assert run.out == (
        f"{root}: revoked certificate identity r from 2026-02-01T00:00:00Z (version 5)\n"
    )
    run = _ok(trust("revoke", root, "--ca", "issuing", "--json"))
    report = json.loads(run.out)
    assert report["version"] == 6
    assert report["change"].startswith("revoked certificate authority issuing from 20")
    before = root.read_bytes()
    assert_one_line_error(trust("revoke", root, "--ca", "issuing"), "is already revoked (since")
    assert_one_line_error(
        trust("revoke", root, "--identity", "r"), "'r' is already revoked (since 2026-02-01"
    )
    assert_one_line_error(
        trust("revoke", root, "--ca", "nope"),
        "no certificate authority named 'nope' (listed: root, issuing)",
    )
    assert_one_line_error(
        trust("revoke", root, "--identity", "nope"), "no certificate identity named 'nope'"
    )
    assert_one_line_error(
        trust("revoke", root, "--ca", "root", "--reason", "lost"),
        "--reason is for keys: a certificate authority's revocation records only its time",
    )
    assert_one_line_error(
        trust("revoke", root, "--ca", "root", "--identity", "r"), "not allowed with argument"
    )
    assert root.read_bytes() == before


def test_show_prints_the_pki_section(files: dict[str, Any], tmp_path: Path) -> None:
    root = _with_cas(files, tmp_path)
    _ok(
        trust(
            "add-ca",
            root,
            "--certificate",
            make_ca_file(tmp_path),
            "--name",
            "fresh",
            "--label",
            "evil\u202elabel",
            "--valid-until",
            "2030-01-01T00:00:00Z",
        )
    )
    _ok(
        trust(
            "add-identity",
            root,
            "--ca",
            "issuing",
            "--subject",
            "release@example.com",
            "--name",
            "release",
            "--label",
            "rel\u202e",
            "--extension",
            f"{OID}=v",
            "--predicate-type",
            SLSA,
        )
    )
    _ok(trust("add-crl", root, "--crl", files["crl1"]))
    _ok(trust("revoke", root, "--identity", "release", "--at", "2026-02-01T00:00:00Z"))
    run = _ok(trust("show", root))
    lines = run.out.splitlines()
    start = lines.index("ca root active [- .. -]")
    assert lines[start : start + 5] == [
        "ca root active [- .. -]",
        "    kind: root",
        "    subject: CN=Example Root CA,O=Example Corp",
        f"    sha256: {_fingerprint(files['root'])}",
        "    certificate: 2021-06-02T00:00:00Z .. 2031-05-31T00:00:00Z",
    ]
    assert "    kind: intermediate, issued by root" in lines
    assert "ca fresh active [- .. 2030-01-01T00:00:00Z]" in lines
    assert "    label: evil\\u202elabel" in lines
    assert (
        "certificate identity issuing release@example.com (rel\\u202e) [release] "
        "REVOKED 2026-02-01T00:00:00Z"
    ) in lines
    assert f"    {OID}: v" in lines and f"    types: {SLSA}" in lines
    assert (
        "crl of issuing: issuer CN=Example Issuing CA,O=Example Corp, CRLNumber 1, "
        "lastUpdate 2026-05-31T00:00:00Z, nextUpdate 2028-05-31T00:00:00Z, 1 entry"
    ) in lines
    assert "\u202e" not in run.out
    shown = json.loads(_ok(trust("show", root, "--json")).out)
    assert [a["name"] for a in shown["pki"]["certificateAuthorities"]] == [
        "root",
        "issuing",
        "fresh",
    ]


def test_diff_reports_every_pki_change_and_marks_widening(
    files: dict[str, Any], tmp_path: Path
) -> None:
    root = _with_cas(files, tmp_path)
    versions = [root.read_bytes()]

    def step(*args: str | Path) -> None:
        _ok(trust(*args))
        versions.append(root.read_bytes())

    step("add-identity", root, "--ca", "issuing", "--subject", "r@example.com", "--name", "r")
    step("add-crl", root, "--crl", files["crl1"])
    step("add-crl", root, "--crl", files["crl2"])
    step("revoke", root, "--identity", "r", "--at", "2026-02-01T00:00:00Z")
    step("revoke", root, "--ca", "issuing", "--at", "2026-02-01T00:00:00Z")
    paths = []
    for index, data in enumerate(versions):
        path = tmp_path / f"v{index}.json"
        path.write_bytes(data)
        paths.append(path)

    def diff(old: int, new: int) -> list[str]:
        run = _ok(trust("diff", paths[old], paths[new]))
        return [line.strip() for line in run.out.splitlines()]

    issuer = '[issuer="CN=Example Issuing CA,O=Example Corp"]'
    added = diff(0, 1)
    assert any(
        line.startswith("+ $.pki.identities[name=r]: added")
        and line.endswith("[WIDENS TRUST: a certificate identity is trusted]")
        for line in added
    )
    assert any(line.startswith("note: 1 change(s) widen trust") for line in added)
    crl = diff(1, 2)
    assert any(line.startswith(f"+ $.pki.crls{issuer}: added") for line in crl)
    assert not any("WIDENS" in line for line in crl)
    replaced = diff(2, 3)
    assert any(
        line.startswith(f"~ $.pki.crls{issuer}:")
        and line.endswith("[WIDENS TRUST: certificates are no longer revoked (serial 7)]")
        for line in replaced
    )
    assert '+ $.pki.identities[name=r].revokedAt: added "2026-02-01T00:00:00Z"' in diff(3, 4)
    assert (
        '- $.pki.identities[name=r].revokedAt: removed "2026-02-01T00:00:00Z"  '
        "[WIDENS TRUST: a revocation is lifted]"
    ) in diff(4, 3)
    ca = diff(4, 5)
    assert (
        '+ $.pki.certificateAuthorities[name=issuing].revokedAt: added "2026-02-01T00:00:00Z"' in ca
    )
    removed = diff(2, 1)
    assert any(
        line.startswith(f"- $.pki.crls{issuer}: removed")
        and "WIDENS TRUST: a CRL is no longer carried" in line
        for line in removed
    )
    whole = json.loads(_ok(trust("diff", _init(tmp_path / "empty"), paths[5], "--json")).out)
    assert whole["sections"]["pki"] == "added"
    assert {w["reason"] for w in whole["widensTrust"]} == {
        "an organisation CA is trusted",
        "a certificate identity is trusted",
    }
    for earlier, later in itertools.pairwise(paths):  # never an empty pki diff
        report = json.loads(_ok(trust("diff", earlier, later, "--json")).out)
        assert report["sections"]["pki"] == "changed"
        assert [c for c in report["changes"] if c["section"] == "pki"]


def test_pki_changes_are_audited(
    files: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_key = tmp_path / "audit"
    write_keypair(signer_for("ed25519", 98), audit_key, password=None)
    log = tmp_path / "audit.log"
    monkeypatch.setenv("DSSESIGN_AUDIT_LOG", str(log))
    monkeypatch.setenv("DSSESIGN_AUDIT_KEY", f"{audit_key}.key")
    root = _init(tmp_path)
    _ok(trust("add-ca", root, "--certificate", files["root"], "--name", "root"))
    _ok(trust("add-ca", root, "--certificate", files["intermediate"], "--name", "i"))
    _ok(trust("add-identity", root, "--ca", "i", "--subject", "x", "--name", "x"))
    _ok(trust("add-crl", root, "--crl", files["crl1"]))
    _ok(trust("revoke", root, "--identity", "x"))
    _ok(trust("revoke", root, "--ca", "i"))
    assert trust("revoke", root, "--ca", "i").code == 2  # refused: nothing recorded
    records = read_records(log)
    assert [(r["change"], r["trustRootVersion"]) for r in records] == [
        ("init", 1),
        ("add-ca", 2),
        ("add-ca", 3),
        ("add-identity", 4),
        ("add-crl", 5),
        ("revoke-identity", 6),
        ("revoke-ca", 7),
    ]
    assert records[-1]["trustRootSha256"] == hashlib.sha256(root.read_bytes()).hexdigest()
    assert verify_log(log, [signer_for("ed25519", 98).public_key]).ok


def test_end_to_end_verify_then_revoke_the_identity(files: dict[str, Any], tmp_path: Path) -> None:
    root = _with_cas(files, tmp_path)
    _ok(
        trust(
            "add-identity",
            root,
            "--ca",
            "issuing",
            "--subject",
            "release@example.com",
            "--name",
            "release",
        )
    )
    verify = ("verify", "--trust-root", root, "--at", AT, files["envelope"], files["bundle"])
    run = _ok(dssesign(*verify, "--json"))  # a real process, as a user runs it
    assert json.loads(run.out)["ok"] is True, run.out
    _ok(
        dssesign(
            "trust-root", "revoke", root, "--identity", "release", "--at", "2026-01-01T00:00:00Z"
        )
    )
    failed = dssesign(*verify)
    assert failed.code == 1, failed
    assert "IDENTITY_REVOKED" in failed.err or "IDENTITY_REVOKED" in failed.out


def test_end_to_end_a_carried_crl_refuses_the_leaf(files: dict[str, Any], tmp_path: Path) -> None:
    root = _with_cas(files, tmp_path)
    _ok(trust("add-identity", root, "--ca", "root", "--subject", "release@example.com"))
    verify = ("verify", "--trust-root", root, "--at", AT, files["envelope"], files["bundle"])
    _ok(cli(*verify))
    _ok(trust("add-crl", root, "--crl", files["crl-leaf"]))
    failed = cli(*verify)
    assert failed.code == 1 and "CERTIFICATE_REVOKED" in failed.out + failed.err, failed


def test_help_lists_the_new_commands_and_options() -> None:
    assert "add-ca" in _ok(trust("--help")).out and "add-crl" in _ok(trust("--help")).out
    revoke = _ok(trust("revoke", "--help")).out
    assert "--ca NAME" in revoke and "--identity NAME" in revoke
    identity = _ok(trust("add-identity", "--help")).out
    assert "--subject-dn DN" in identity and "--ca NAME" in identity
