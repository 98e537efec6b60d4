"""`openssl verify` accepts the organisation chains dssesign accepts, and refuses what it refuses.

OpenSSL is a chain verifier we did not write: each chain the PKI tests sign with must verify
with `-purpose any -CAfile ROOT -untrusted INTERMEDIATE LEAF` (with `-crl_check` and the
carried CRL too), and the broken chains of the adversarial tests must fail there as well, so
the two verifiers agree on which chains are chains.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dssesign.codes import Code
from dssesign.verify import verify
from tests.pki import (
    Issued,
    Revoked,
    crl_pem,
    make_ca,
    make_crl,
    make_leaf,
    org_pki,
)
from tests.unit.verify.test_pki_verify import root_of, signed
from tests.unit.verify.test_verify import NOW

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def openssl_verify(
    tmp_path: Path, root: Issued, intermediates: list[Issued], leaf: Issued, crl: bytes = b""
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "root.pem").write_bytes(root.pem)
    (tmp_path / "untrusted.pem").write_bytes(b"".join(c.pem for c in intermediates))
    (tmp_path / "leaf.pem").write_bytes(leaf.pem)
    command = ["openssl", "verify", "-purpose", "any", "-attime", str(int(NOW.timestamp()))]
    command += ["-CAfile", str(tmp_path / "root.pem")]
    if intermediates:
        command += ["-untrusted", str(tmp_path / "untrusted.pem")]
    if crl:
        (tmp_path / "crl.pem").write_bytes(crl)
        command += ["-crl_check", "-CRLfile", str(tmp_path / "crl.pem")]
    return subprocess.run(
        [*command, str(tmp_path / "leaf.pem")], capture_output=True, text=True, check=False
    )


def test_openssl_accepts_the_chain_dssesign_verifies(tmp_path: Path) -> None:
    pki = org_pki()
    envelope, bundle = signed(pki.leaf)
    root = root_of([("root", pki.root), ("issuing", pki.intermediate)])
    assert verify(envelope, root, bundles=[bundle], at=NOW).identities_counted
    done = openssl_verify(tmp_path, pki.root, [pki.intermediate], pki.leaf)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(": OK")
    # With the issuing CA's (empty) CRL checked too.
    crl = crl_pem(make_crl(pki.intermediate))
    done = openssl_verify(tmp_path, pki.root, [pki.intermediate], pki.leaf, crl)
    assert done.returncode == 0, done.stderr


def test_openssl_accepts_a_device_style_leaf_without_a_san(tmp_path: Path) -> None:
    pki = org_pki()
    leaf = make_leaf(pki.intermediate, emails=())
    envelope, bundle = signed(leaf)
    dn = leaf.cert.subject.rfc4514_string()
    root = root_of(
        [("root", pki.root), ("issuing", pki.intermediate)],
        identities=[{"ca": "issuing", "subjectDN": dn}],
    )
    assert verify(envelope, root, bundles=[bundle], at=NOW).identities_counted
    assert openssl_verify(tmp_path, pki.root, [pki.intermediate], leaf).returncode == 0


def test_both_refuse_an_intermediate_that_is_not_a_ca(tmp_path: Path) -> None:
    pki = org_pki()
    not_ca = make_ca("Not A CA", issuer=pki.root, ca=False)
    leaf = make_leaf(not_ca)
    envelope, bundle = signed(leaf, chain=[not_ca])
    root = root_of([("root", pki.root)])
    with pytest.raises(Exception) as info:
        verify(envelope, root, bundles=[bundle], at=NOW)
    assert getattr(info.value, "code", None) == Code.CERTIFICATE_CA_INVALID
    assert openssl_verify(tmp_path, pki.root, [not_ca], leaf).returncode != 0


def test_both_refuse_a_revoked_leaf(tmp_path: Path) -> None:
    pki = org_pki()
    crl = make_crl(pki.intermediate, [Revoked(pki.leaf.cert.serial_number, NOW.replace(hour=0))])
    root = root_of([("root", pki.root), ("issuing", pki.intermediate)], crls=[crl])
    envelope, bundle = signed(pki.leaf)
    with pytest.raises(Exception) as info:
        verify(envelope, root, bundles=[bundle], at=NOW)
    assert getattr(info.value, "code", None) == Code.CERTIFICATE_REVOKED
    done = openssl_verify(tmp_path, pki.root, [pki.intermediate], pki.leaf, crl_pem(crl))
    assert done.returncode != 0
    assert "revoked" in done.stdout + done.stderr


def test_both_refuse_a_leaf_from_another_root(tmp_path: Path) -> None:
    pki, other = org_pki(), org_pki()
    envelope, bundle = signed(other.leaf, chain=[other.intermediate])
    root = root_of([("root", pki.root), ("issuing", pki.intermediate)])
    with pytest.raises(Exception) as info:
        verify(envelope, root, bundles=[bundle], at=NOW)
    assert getattr(info.value, "code", None) == Code.CERTIFICATE_UNTRUSTED
    assert openssl_verify(tmp_path, pki.root, [other.intermediate], other.leaf).returncode != 0
