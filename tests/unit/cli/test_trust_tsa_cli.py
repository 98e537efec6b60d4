"""`dssesign trust-root add-tsa`, `revoke --tsa`, `set-policy --require-timestamp` and `show`,
end to end in a real process, with a test CA and TSA certificates made by pyca/cryptography."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from dssesign.audit import read_records, verify_log
from dssesign.profiles.software import write_keypair
from dssesign.trust import load_trust_root, read_trust_root
from tests.conftest import signer_for
from tests.tsa import make_ca, make_tsa_certificate
from tests.unit.cli.test_cli import Run, assert_one_line_error, dssesign

SLSA = "https://slsa.dev/provenance/v1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """PEM files: a good chain (TSA, CA), a second TSA, the chain reversed, a TSA whose EKU is
    not critical, one whose subject holds control and bidi characters, garbage, 9 certs."""
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca()
    tsa = make_tsa_certificate(ca, common_name="ACME TSA")
    files: dict[str, bytes] = {
        "chain": tsa.pem + ca.pem,
        "second": make_tsa_certificate(ca, common_name="second TSA").pem + ca.pem,
        "reversed": ca.pem + tsa.pem,
        "noncritical": make_tsa_certificate(ca, eku_critical=False).pem + ca.pem,
        "evil": make_tsa_certificate(ca, common_name="evil\x1b[2J\u202etsa").pem + ca.pem,
        "garbage": b"this is not a certificate\n",
        "nine": tsa.pem + ca.pem * 8,
    }
    made = {}
    for name, data in files.items():
        made[name] = directory / f"{name}.pem"
        made[name].write_bytes(data)
    return made


def _root(tmp_path: Path, env: dict[str, str] | None = None) -> Path:
    root = tmp_path / "root.json"
    assert dssesign("trust-root", "init", "--out", root, env=env).code == 0
    return root


def _ok(run: Run) -> Run:
    assert run.code == 0, run
    return run


def test_add_tsa_end_to_end(pki: dict[str, Path], tmp_path: Path) -> None:
    root = _root(tmp_path)
    run = _ok(
        dssesign(
            "trust-root",
            "add-tsa",
            root,
            "--certificate-chain",
            pki["chain"],
            "--name",
            "acme",
            "--label",
            "ACME timestamping",
            "--valid-from",
            "2026-01-01T00:00:00Z",
            "--valid-until",
            "2030-01-01T00:00:00Z",
        )
    )
    assert run.out == f"{root}: added timestamp authority acme (version 2)\n"
    assert run.err == ""
    loaded = read_trust_root(root, allow_incomplete=True)
    (authority,) = loaded.timestamp_authorities
    assert authority.name == "acme" and authority.label == "ACME timestamping"
    chain_pem = b"".join(c.public_bytes(Encoding.PEM) for c in authority.chain)
    assert chain_pem == pki["chain"].read_bytes()
    assert json.loads(root.read_bytes())["timestampAuthorities"][0]["validUntil"] == (
        "2030-01-01T00:00:00Z"
    )

    second = _ok(
        dssesign(
            "trust-root",
            "add-tsa",
            root,
            "--certificate-chain",
            pki["second"],
            "--name",
            "second",
            "--json",
        )
    )
    assert json.loads(second.out) == {
        "file": str(root),
        "version": 3,
        "change": "added timestamp authority second",
    }


def test_add_tsa_refusals_are_one_line_and_change_nothing(
    pki: dict[str, Path], tmp_path: Path
) -> None:
    root = _root(tmp_path)
    add = ("trust-root", "add-tsa", root, "--certificate-chain")
    _ok(dssesign(*add, pki["chain"], "--name", "acme"))
    before = root.read_bytes()

    assert_one_line_error(
        dssesign(*add, pki["second"], "--name", "acme"),
        "$.timestampAuthorities[0].name",
        "'acme' is already listed",
    )
    assert_one_line_error(
        dssesign(*add, pki["chain"], "--name", "other"), "already listed as 'acme'"
    )
    assert_one_line_error(
        dssesign(*add, pki["reversed"], "--name", "r"),
        f"--certificate-chain {pki['reversed']}, certificate 1:",
        "timeStamping EKU",
    )
    assert_one_line_error(
        dssesign(*add, pki["garbage"], "--name", "g"),
        f"--certificate-chain {pki['garbage']}:",
        "must hold 1 to 8 PEM certificates, not 0",
    )
    assert_one_line_error(
        dssesign(*add, pki["nine"], "--name", "n"), "must hold 1 to 8 PEM certificates, not 9"
    )
    assert_one_line_error(dssesign(*add, tmp_path / "missing.pem", "--name", "m"), "missing.pem")
    assert_one_line_error(
        dssesign(
            *add,
            pki["second"],
            "--name",
            "w",
            "--valid-from",
            "2026-02-01T00:00:00Z",
            "--valid-until",
            "2026-01-01T00:00:00Z",
        ),
        "--valid-until: is before --valid-from",
    )
    assert_one_line_error(
        dssesign(*add, pki["second"], "--name", "w", "--valid-from", "tomorrow"), "--valid-from"
    )
    assert_one_line_error(dssesign(*add, pki["second"], "--name", "a\u202eb"), "--name:")
    assert_one_line_error(dssesign(*add, pki["second"], "--name", "x" * 129), "--name:")
    assert root.read_bytes() == before


def test_add_tsa_warns_when_verification_would_refuse_its_tokens(
    pki: dict[str, Path], tmp_path: Path
) -> None:
    root = _root(tmp_path)
    run = _ok(
        dssesign(
            "trust-root", "add-tsa", root, "--certificate-chain", pki["noncritical"], "--name", "n"
        )
    )
    assert run.err.startswith("warning: the TSA certificate's extended key usage is not critical")
    assert "TIMESTAMP_UNTRUSTED" in run.err
    assert [a.name for a in read_trust_root(root, allow_incomplete=True).timestamp_authorities] == [
        "n"
    ]


def test_revoke_a_tsa(pki: dict[str, Path], tmp_path: Path) -> None:
    root = _root(tmp_path)
    _ok(dssesign("trust-root", "add-tsa", root, "--certificate-chain", pki["chain"], "--name", "a"))
    revoke = ("trust-root", "revoke", root)
    run = _ok(dssesign(*revoke, "--tsa", "a", "--at", "2026-06-01T00:00:00Z"))
    assert (
        run.out == f"{root}: revoked timestamp authority a from 2026-06-01T00:00:00Z (version 3)\n"
    )
    assert json.loads(root.read_bytes())["timestampAuthorities"][0]["revokedAt"] == (
        "2026-06-01T00:00:00Z"
    )
    before = root.read_bytes()
    assert_one_line_error(
        dssesign(*revoke, "--tsa", "a"), "already revoked (since 2026-06-01T00:00:00Z)"
    )
    assert_one_line_error(dssesign(*revoke, "--tsa", "nope"), "no timestamp authority named 'nope'")
    assert_one_line_error(dssesign(*revoke, "--tsa", "a", "--reason", "x"), "--reason is for keys")
    assert_one_line_error(
        dssesign(*revoke), "one of the arguments --keyid --tsa --ca --identity is required"
    )
    assert_one_line_error(
        dssesign(*revoke, "--tsa", "a", "--keyid", "0" * 64), "not allowed with argument"
    )
    assert root.read_bytes() == before
    # --keyid still revokes keys.
    key = tmp_path / "k"
    write_keypair(signer_for("ed25519", 3), key, password=None)
    _ok(dssesign("trust-root", "add-key", root, "--public-key", f"{key}.pub"))
    keyid = signer_for("ed25519", 3).keyid
    _ok(dssesign(*revoke, "--keyid", keyid, "--reason", "lost"))
    assert read_trust_root(root, allow_incomplete=True).keys[0].revocation is not None


def test_set_policy_require_timestamp_global_and_per_type(tmp_path: Path) -> None:
    root = _root(tmp_path)
    policy = ("trust-root", "set-policy", root)
    _ok(dssesign(*policy, "--require-timestamp"))
    assert json.loads(root.read_bytes())["policy"]["requireTimestamp"] is True

    assert_one_line_error(
        dssesign(*policy, "--require-timestamp", "--for-type", SLSA), "needs a threshold"
    )
    _ok(dssesign(*policy, "--require-timestamp", "--for-type", SLSA, "--threshold", "1"))
    document = json.loads(root.read_bytes())["policy"]
    assert document["perType"][SLSA] == {"threshold": 1, "requireTimestamp": True}

    run = _ok(dssesign(*policy, "--no-require-timestamp", "--for-type", SLSA))
    assert "timestamps stay required: the global policy requires them" in run.out
    _ok(dssesign(*policy, "--no-require-timestamp"))
    document = json.loads(root.read_bytes())["policy"]
    assert "requireTimestamp" not in document
    assert document["perType"][SLSA] == {"threshold": 1}
    assert read_trust_root(root, allow_incomplete=True).version == 5  # the refusal wrote nothing


def test_show_lists_tsas_in_text_and_json(pki: dict[str, Path], tmp_path: Path) -> None:
    root = _root(tmp_path)
    add = ("trust-root", "add-tsa", root, "--certificate-chain")
    valid_from = ("--valid-from", "2026-01-01T00:00:00Z")
    _ok(dssesign(*add, pki["chain"], "--name", "acme", "--label", "ACME", *valid_from))
    _ok(dssesign(*add, pki["evil"], "--name", "evil"))
    _ok(dssesign("trust-root", "revoke", root, "--tsa", "acme", "--at", "2027-01-01T00:00:00Z"))
    per_type = ("--for-type", SLSA, "--threshold", "1", "--require-timestamp")
    _ok(dssesign("trust-root", "set-policy", root, *per_type))

    shown = _ok(dssesign("trust-root", "show", root))
    lines = shown.out.splitlines()
    assert f"  for {SLSA}: threshold 1, timestamp required" in lines
    start = lines.index("tsa acme REVOKED 2027-01-01T00:00:00Z [2026-01-01T00:00:00Z .. -]")
    assert lines[start + 1 : start + 4] == [
        "    label: ACME",
        "    subject: CN=ACME TSA",
        "    chain: 2 certificates",
    ]
    assert "tsa evil active [- .. -]" in lines
    # The certificate's subject is shown, never obeyed.
    assert "    subject: CN=evil\\x1b[2J\\u202etsa" in lines
    assert "\x1b" not in shown.out and "\u202e" not in shown.out
    assert shown.err == ""

    as_json = _ok(dssesign("trust-root", "show", root, "--json"))
    document = json.loads(as_json.out)
    listed = [
        (a["name"], a.get("label"), a.get("revokedAt")) for a in document["timestampAuthorities"]
    ]
    assert listed == [("acme", "ACME", "2027-01-01T00:00:00Z"), ("evil", None, None)]
    assert document["policy"]["perType"][SLSA]["requireTimestamp"] is True
    # --json prints the document itself: it loads as the trust root it shows.
    reloaded = load_trust_root(json.dumps(document), allow_incomplete=True)
    assert reloaded == read_trust_root(root, allow_incomplete=True)


def test_show_warns_when_timestamps_are_required_but_no_tsa_is_listed(tmp_path: Path) -> None:
    root = _root(tmp_path)
    _ok(dssesign("trust-root", "set-policy", root, "--require-timestamp"))
    shown = _ok(dssesign("trust-root", "show", root))
    assert "policy: threshold 1, required none, hybrid off, timestamp required" in shown.out
    assert "warning: the policy requires timestamps but the trust root lists no timestamp" in (
        shown.err
    )


def test_tsa_changes_are_audited(pki: dict[str, Path], tmp_path: Path) -> None:
    audit_key = tmp_path / "audit"
    write_keypair(signer_for("ed25519", 99), audit_key, password=None)
    log = tmp_path / "audit.log"
    env = {"DSSESIGN_AUDIT_LOG": str(log), "DSSESIGN_AUDIT_KEY": f"{audit_key}.key"}
    root = _root(tmp_path, env)
    chain = ("--certificate-chain", pki["chain"])
    _ok(dssesign("trust-root", "add-tsa", root, *chain, "--name", "acme", env=env))
    _ok(dssesign("trust-root", "revoke", root, "--tsa", "acme", env=env))
    _ok(dssesign("trust-root", "set-policy", root, "--require-timestamp", env=env))
    # A refused change records nothing.
    assert dssesign("trust-root", "revoke", root, "--tsa", "acme", env=env).code == 2

    records = read_records(log)
    assert [(r["change"], r["trustRootVersion"], r["result"]) for r in records] == [
        ("init", 1, "success"),
        ("add-tsa", 2, "success"),
        ("revoke-tsa", 3, "success"),
        ("set-policy", 4, "success"),
    ]
    assert records[-1]["trustRootSha256"] == hashlib.sha256(root.read_bytes()).hexdigest()
    report = verify_log(log, [signer_for("ed25519", 99).public_key])
    assert report.ok, report.problems


def test_help_lists_the_new_options() -> None:
    assert "--certificate-chain" in _ok(dssesign("trust-root", "add-tsa", "--help")).out
    assert "--tsa" in _ok(dssesign("trust-root", "revoke", "--help")).out
    policy_help = _ok(dssesign("trust-root", "set-policy", "--help")).out
    assert "--require-timestamp" in policy_help and "--no-require-timestamp" in policy_help
