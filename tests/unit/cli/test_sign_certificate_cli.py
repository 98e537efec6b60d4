"""`--certificate` / `--certificate-chain` on `sign`, `attest` and `countersign`: a key's
organisation certificate checked before anything is signed, carried in its signature's bundle.

Run in-process (`dssesign.cli.main`): every refusal is exit 2 with one line naming the file and
what is wrong, and leaves no envelope and no bundle behind.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sigstore_models.bundle.v1 import Bundle as BundleModel

from dssesign.cli import main
from dssesign.core.dsse import Envelope
from dssesign.profiles.software import SoftwareSigner, write_keypair
from dssesign.sign.bundles import BUNDLE_MEDIA_TYPE, public_key_hint
from tests.conftest import signer_for
from tests.pki import Issued, OrgPKI, make_ca, make_leaf, org_pki, pem_of

PAYLOAD = b"release notes\n"
PAYLOAD_TYPE = "text/plain"
NOW = datetime.now(UTC)
#: Leaves valid around the time the tests run (the PKI module's EPOCH is a fixed date).
VALID: dict[str, Any] = {
    "not_before": NOW - timedelta(days=1),
    "not_after": NOW + timedelta(days=30),
}


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("DSSESIGN_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    def run(*args: str | Path) -> Run:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@dataclass
class Work:
    """A directory with keys, their certificates and a payload."""

    path: Path

    def key(self, algorithm: str, index: int = 0) -> tuple[Path, SoftwareSigner]:
        signer = signer_for(algorithm, index)
        prefix = self.path / f"{algorithm}-{index}"
        if not prefix.with_suffix(".key").exists():
            write_keypair(signer, prefix, password=None)
        return prefix.with_suffix(".key"), signer

    def write(self, name: str, data: bytes) -> Path:
        target = self.path / name
        target.write_bytes(data)
        return target

    def pki(self, signer: SoftwareSigner, name: str = "leaf", **leaf: Any) -> tuple[Path, OrgPKI]:
        pki = org_pki(leaf_public_key=signer.public_key.key, **{**VALID, **leaf})
        return self.write(f"{name}.pem", pki.leaf.pem), pki

    @property
    def out(self) -> Path:
        return self.path / "env.json"

    @property
    def bundles(self) -> Path:
        return self.path / "bundles"


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Work]:
    w = Work(tmp_path)
    w.write("payload.txt", PAYLOAD)
    yield w


def _sign(cli: Callable[..., Run], work: Work, *extra: str | Path) -> Run:
    return cli(
        "sign",
        "--payload",
        work.path / "payload.txt",
        "--payload-type",
        PAYLOAD_TYPE,
        "--out",
        work.out,
        *extra,
    )


def _bundle(work: Work, keyid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (work.bundles / f"env.{keyid[:16]}.sigstore.json").read_bytes()
    )
    return data


def _certificate_bundle(
    work: Work, signer: SoftwareSigner, leaf: Issued, envelope: Envelope, index: int = 0
) -> None:
    """The bundle of `signer`'s signature is exactly the certificate form, over the envelope."""
    bundle = _bundle(work, signer.keyid)
    signature = envelope.signatures[index]
    assert bundle == {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "certificate": {"rawBytes": base64.b64encode(leaf.der).decode()},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(envelope.payload).decode(),
            "payloadType": envelope.payload_type,
            "signatures": [{"sig": base64.b64encode(signature.sig).decode(), "keyid": ""}],
        },
    }
    raw = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    assert x509.load_der_x509_certificate(raw) == leaf.cert
    model = BundleModel.from_json(json.dumps(bundle))
    assert model.verification_material.certificate is not None
    assert model.verification_material.certificate.raw_bytes == leaf.der


def _envelope(work: Work) -> Envelope:
    return Envelope.from_json(work.out.read_bytes())


# --- signing with a certificate ---------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256", "rsa-pss-3072"])
def test_sign_carries_the_certificate_in_the_bundle(
    cli: Callable[..., Run], work: Work, algorithm: str
) -> None:
    key, signer = work.key(algorithm)
    leaf, pki = work.pki(signer)
    chain = work.write("chain.pem", pem_of(pki.intermediate, pki.root))
    run = _sign(
        cli,
        work,
        "--key",
        key,
        "--certificate",
        leaf,
        "--certificate-chain",
        chain,
        "--bundle-dir",
        work.bundles,
        "--json",
    )
    assert run.code == 0, run
    envelope = _envelope(work)
    # The envelope is what it would be without a certificate.
    (signature,) = envelope.signatures
    assert signature.keyid == signer.keyid
    assert signer.public_key.verify(signature.sig, envelope.pae())
    assert [p.name for p in work.bundles.iterdir()] == [f"env.{signer.keyid[:16]}.sigstore.json"]
    _certificate_bundle(work, signer, pki.leaf, envelope)
    (item,) = json.loads(run.out)["signatures"]
    assert item["certificate"] == {
        "sha256": pki.leaf.cert.fingerprint(hashes.SHA256()).hex(),
        "subject": "CN=release signer,O=Example Corp",
    }


def test_attest_carries_the_certificate_and_says_so(cli: Callable[..., Run], work: Work) -> None:
    key, signer = work.key("ecdsa-p256")
    leaf, pki = work.pki(signer)
    work.write("predicate.json", b'{"note": "hello"}\n')
    run = cli(
        "attest",
        "--key",
        key,
        "--subject",
        work.path / "payload.txt",
        "--predicate",
        work.path / "predicate.json",
        "--type",
        "custom",
        "--out",
        work.out,
        "--bundle-dir",
        work.bundles,
        "--certificate",
        leaf,
    )
    assert run.code == 0, run
    fingerprint = pki.leaf.cert.fingerprint(hashes.SHA256()).hex()
    assert f"    certificate CN=release signer,O=Example Corp (sha256 {fingerprint})" in run.out
    _certificate_bundle(work, signer, pki.leaf, _envelope(work))


def test_mixed_keys_give_one_certificate_bundle_and_one_public_key_bundle(
    cli: Callable[..., Run], work: Work
) -> None:
    key_a, a = work.key("ecdsa-p256")
    key_b, b = work.key("ed25519")
    leaf, pki = work.pki(a)
    run = _sign(
        cli, work, "--key", key_a, "--key", key_b, "--certificate", leaf,
        "--bundle-dir", work.bundles, "--json",
    )  # fmt: skip
    assert run.code == 0, run
    envelope = _envelope(work)
    assert [s.keyid for s in envelope.signatures] == [a.keyid, b.keyid]
    _certificate_bundle(work, a, pki.leaf, envelope, 0)
    hint = public_key_hint(b.public_key)
    plain = _bundle(work, b.keyid)
    assert plain["verificationMaterial"] == {"publicKey": {"hint": hint}, "tlogEntries": []}
    assert plain["dsseEnvelope"]["signatures"][0]["keyid"] == hint
    summary = json.loads(run.out)["signatures"]
    assert "certificate" in summary[0] and "certificate" not in summary[1]


def test_certificates_pair_with_their_keys_in_any_order(
    cli: Callable[..., Run], work: Work
) -> None:
    key_a, a = work.key("ecdsa-p256")
    key_b, b = work.key("ed25519")
    leaf_a, pki_a = work.pki(a, "a")
    leaf_b, pki_b = work.pki(b, "b")
    chain_a = work.write("chain-a.pem", pem_of(pki_a.intermediate))
    chain_b = work.write("chain-b.pem", pem_of(pki_b.intermediate))
    run = _sign(
        cli, work, "--key", key_a, "--key", key_b, "--certificate", leaf_b, "--certificate",
        leaf_a, "--certificate-chain", chain_b, "--certificate-chain", chain_a,
        "--bundle-dir", work.bundles,
    )  # fmt: skip
    # Both chains start with an issuing CA of the same name: the signature tells them apart.
    assert run.code == 0, run
    envelope = _envelope(work)
    _certificate_bundle(work, a, pki_a.leaf, envelope, 0)
    _certificate_bundle(work, b, pki_b.leaf, envelope, 1)
    # With issuers named apart, each leaf finds its own chain by name.
    other_ca = make_ca("Other Issuing CA", issuer=pki_b.root)
    other_leaf = make_leaf(other_ca, public_key=b.public_key.key, **VALID)
    work.write("b.pem", other_leaf.pem)
    work.write("chain-b.pem", pem_of(other_ca, pki_b.root))
    work.out.unlink()
    run = _sign(
        cli, work, "--key", key_a, "--key", key_b, "--certificate", leaf_b, "--certificate",
        leaf_a, "--certificate-chain", chain_b, "--certificate-chain", chain_a,
        "--bundle-dir", work.bundles,
    )  # fmt: skip
    assert run.code == 0, run
    envelope = _envelope(work)
    _certificate_bundle(work, a, pki_a.leaf, envelope, 0)
    _certificate_bundle(work, b, other_leaf, envelope, 1)


def test_countersign_carries_the_certificate_of_the_added_signature(
    cli: Callable[..., Run], work: Work
) -> None:
    key_a, a = work.key("ed25519")
    key_b, b = work.key("ecdsa-p256")
    first = work.path / "first.json"
    assert cli("sign", "--payload", work.path / "payload.txt", "--payload-type", PAYLOAD_TYPE,
               "--key", key_a, "--out", first).code == 0  # fmt: skip
    leaf, pki = work.pki(b)
    run = cli(
        "countersign", first, "--key", key_b, "--certificate", leaf, "--out", work.out,
        "--bundle-dir", work.bundles,
    )  # fmt: skip
    assert run.code == 0, run
    fingerprint = pki.leaf.cert.fingerprint(hashes.SHA256()).hex()
    assert f"certificate CN=release signer,O=Example Corp (sha256 {fingerprint})" in run.out
    envelope = _envelope(work)
    assert [s.keyid for s in envelope.signatures] == [a.keyid, b.keyid]
    _certificate_bundle(work, b, pki.leaf, envelope, 1)
    assert [p.name for p in work.bundles.iterdir()] == [f"env.{b.keyid[:16]}.sigstore.json"]


def test_control_characters_in_the_subject_are_shown_not_obeyed(
    cli: Callable[..., Run], work: Work
) -> None:
    key, signer = work.key("ed25519")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil\x1b[2J\u202eman")])
    pki = org_pki(leaf_public_key=signer.public_key.key, subject=subject, **VALID)
    leaf = work.write("leaf.pem", pki.leaf.pem)
    run = _sign(cli, work, "--key", key, "--certificate", leaf, "--bundle-dir", work.bundles)
    assert run.code == 0, run
    assert "\x1b" not in run.out and "\u202e" not in run.out
    assert "certificate CN=evil\\x1b[2J\\u202eman (sha256 " in run.out


# --- refusals: exit 2, one line, nothing written ----------------------------------------------


def _refused(run: Run, work: Work, *fragments: str) -> None:
    assert run.code == 2, run
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.err
    assert "Traceback" not in run.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not work.out.exists()
    assert not work.bundles.exists(), list(work.bundles.iterdir())
    assert not [p for p in work.path.iterdir() if p.name.endswith(".tmp")]


Scenario = Callable[[Work], tuple[list[str | Path], list[str]]]


def _leaf_args(work: Work, **leaf: Any) -> tuple[list[str | Path], Path]:
    key, signer = work.key("ecdsa-p256")
    path, _ = work.pki(signer, **leaf)
    return ["--key", key, "--certificate", path, "--bundle-dir", work.bundles], path


def _no_key(work: Work) -> tuple[list[str | Path], list[str]]:
    key, _ = work.key("ecdsa-p256")
    path, _ = work.pki(signer_for("ecdsa-p256", 1))
    args: list[str | Path] = ["--key", key, "--certificate", path, "--bundle-dir", work.bundles]
    return args, [f"--certificate {path}: its public key", "is not the key of any --key"]


def _two_for_one_key(work: Work) -> tuple[list[str | Path], list[str]]:
    key_a, a = work.key("ecdsa-p256")
    key_b, _ = work.key("ed25519")
    first, _ = work.pki(a, "first")
    second, _ = work.pki(a, "second")
    args: list[str | Path] = ["--key", key_a, "--key", key_b, "--certificate", first,
                              "--certificate", second, "--bundle-dir", work.bundles]  # fmt: skip
    return args, [f"--certificate {first} and --certificate {second} carry the same public key"]


def _same_file_twice(work: Work) -> tuple[list[str | Path], list[str]]:
    key_a, a = work.key("ecdsa-p256")
    key_b, _ = work.key("ed25519")
    leaf, _ = work.pki(a)
    args: list[str | Path] = ["--key", key_a, "--key", key_b, "--certificate", leaf,
                              "--certificate", leaf, "--bundle-dir", work.bundles]  # fmt: skip
    return args, ["carry the same public key: one certificate per key"]


def _more_than_keys(work: Work) -> tuple[list[str | Path], list[str]]:
    key_a, a = work.key("ecdsa-p256")
    first, _ = work.pki(a, "first")
    second, _ = work.pki(signer_for("ed25519"), "second")
    args: list[str | Path] = ["--key", key_a, "--certificate", first, "--certificate", second,
                              "--bundle-dir", work.bundles]  # fmt: skip
    return args, ["2 --certificate for 1 key(s) that can carry one"]


def _keyless(work: Work) -> tuple[list[str | Path], list[str]]:
    # Refused before the keyless key is loaded: no OIDC token, no Fulcio round trip.
    leaf, _ = work.pki(signer_for("ecdsa-p256"))
    args: list[str | Path] = ["--key", "keyless", "--certificate", leaf,
                              "--bundle-dir", work.bundles]  # fmt: skip
    return args, ["a keyless signer takes no --certificate"]


def _no_bundle_dir(work: Work) -> tuple[list[str | Path], list[str]]:
    args, _ = _leaf_args(work)
    return args[:-2], ["--certificate needs --bundle-dir"]


def _chain_alone(work: Work) -> tuple[list[str | Path], list[str]]:
    key, signer = work.key("ecdsa-p256")
    _, pki = work.pki(signer)
    chain = work.write("chain.pem", pem_of(pki.intermediate))
    args: list[str | Path] = ["--key", key, "--certificate-chain", chain,
                              "--bundle-dir", work.bundles]  # fmt: skip
    return args, ["--certificate-chain is only used with --certificate"]


def _ca(work: Work) -> tuple[list[str | Path], list[str]]:
    key, signer = work.key("ecdsa-p256")
    pki = org_pki()

    class _Public:
        def public_key(self) -> Any:
            return signer.public_key.key

    ca = make_ca("Signing CA", issuer=pki.intermediate, key=_Public())
    path = work.write("ca.pem", ca.pem)
    args: list[str | Path] = ["--key", key, "--certificate", path, "--bundle-dir", work.bundles]
    return args, [f"--certificate {path}: is a CA certificate (BasicConstraints cA=TRUE)"]


def _key_usage(work: Work) -> tuple[list[str | Path], list[str]]:
    key, signer = work.key("ecdsa-p256")
    pki = org_pki()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no signing")]))
        .issuer_name(pki.intermediate.cert.subject)
        .public_key(signer.public_key.key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(VALID["not_before"])
        .not_valid_after(VALID["not_after"])
        .add_extension(
            x509.KeyUsage(False, False, True, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    path = work.write("leaf.pem", Issued(certificate).pem)
    args: list[str | Path] = ["--key", key, "--certificate", path, "--bundle-dir", work.bundles]
    return args, [f"--certificate {path}: its KeyUsage does not allow digitalSignature"]


def _no_eku(work: Work) -> tuple[list[str | Path], list[str]]:
    args, path = _leaf_args(work, eku=None)
    return args, [f"--certificate {path}: has no ExtendedKeyUsage", "codeSigning"]


def _wrong_eku(work: Work) -> tuple[list[str | Path], list[str]]:
    args, path = _leaf_args(work, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    return args, [f"--certificate {path}: its ExtendedKeyUsage (1.3.6.1.5.5.7.3.2) does not allow"]


def _expired(work: Work) -> tuple[list[str | Path], list[str]]:
    args, path = _leaf_args(
        work, not_before=NOW - timedelta(days=30), not_after=NOW - timedelta(seconds=5)
    )
    return args, [f"--certificate {path}: expired on"]


def _not_yet_valid(work: Work) -> tuple[list[str | Path], list[str]]:
    args, path = _leaf_args(work, not_before=NOW + timedelta(days=1))
    return args, [f"--certificate {path}: not valid yet"]


def _other_chain(work: Work) -> tuple[list[str | Path], list[str]]:
    args, path = _leaf_args(work)
    other = org_pki()
    chain = work.write("chain.pem", pem_of(other.intermediate, other.root))
    return [*args, "--certificate-chain", chain], [
        f"--certificate {path}: not issued by the first certificate of --certificate-chain {chain}",
        "does not verify with the issuer's key",
    ]


def _broken_chain(work: Work) -> tuple[list[str | Path], list[str]]:
    key, signer = work.key("ecdsa-p256")
    path, pki = work.pki(signer)
    chain = work.write("chain.pem", pem_of(pki.intermediate, org_pki().root))
    args: list[str | Path] = ["--key", key, "--certificate", path, "--certificate-chain", chain,
                              "--bundle-dir", work.bundles]  # fmt: skip
    return args, [f"--certificate-chain {chain}: certificate 1", "is not issued by certificate 2"]


def _long_chain(work: Work) -> tuple[list[str | Path], list[str]]:
    args, _ = _leaf_args(work)
    ca = make_ca("Loop CA")
    chain = work.write("chain.pem", pem_of(*[ca] * 11))
    return [*args, "--certificate-chain", chain], [
        f"--certificate-chain {chain}: holds 11 certificates, more than the limit of 10"
    ]


def _unused_chain(work: Work) -> tuple[list[str | Path], list[str]]:
    key, signer = work.key("ecdsa-p256")
    path, pki = work.pki(signer)
    good = work.write("good.pem", pem_of(pki.intermediate))
    other = make_ca("Unrelated CA")
    unused = work.write("unused.pem", pem_of(other))
    args: list[str | Path] = ["--key", key, "--certificate", path, "--certificate-chain",
                              good, "--certificate-chain", unused, "--bundle-dir",
                              work.bundles]  # fmt: skip
    return args, [f"--certificate-chain {unused}: its first certificate issued none"]


def _no_chain_for_issuer(work: Work) -> tuple[list[str | Path], list[str]]:
    key, signer = work.key("ecdsa-p256")
    path, _ = work.pki(signer)
    one = work.write("one.pem", pem_of(make_ca("One CA")))
    two = work.write("two.pem", pem_of(make_ca("Two CA")))
    args: list[str | Path] = ["--key", key, "--certificate", path, "--certificate-chain", one,
                              "--certificate-chain", two, "--bundle-dir", work.bundles]  # fmt: skip
    return args, [f"--certificate {path}: no --certificate-chain starts with its issuer"]


def _two_in_leaf_file(work: Work) -> tuple[list[str | Path], list[str]]:
    key, signer = work.key("ecdsa-p256")
    _, pki = work.pki(signer)
    path = work.write("full.pem", pem_of(pki.leaf, pki.intermediate))
    args: list[str | Path] = ["--key", key, "--certificate", path, "--bundle-dir", work.bundles]
    return args, [f"--certificate {path}: holds 2 certificates, expected exactly one"]


def _too_large(work: Work) -> tuple[list[str | Path], list[str]]:
    key, signer = work.key("ecdsa-p256")
    _, pki = work.pki(signer)
    path = work.write("big.pem", pki.leaf.pem + b"#" * (64 * 1024))
    args: list[str | Path] = ["--key", key, "--certificate", path, "--bundle-dir", work.bundles]
    return args, [f"--certificate {path}: larger than the limit of 65536 bytes"]


def _not_pem(work: Work) -> tuple[list[str | Path], list[str]]:
    key, signer = work.key("ecdsa-p256")
    _, pki = work.pki(signer)
    path = work.write("leaf.der", pki.leaf.der)
    args: list[str | Path] = ["--key", key, "--certificate", path, "--bundle-dir", work.bundles]
    return args, [f"--certificate {path}: not a PEM certificate"]


def _missing(work: Work) -> tuple[list[str | Path], list[str]]:
    key, _ = work.key("ecdsa-p256")
    path = work.path / "absent.pem"
    args: list[str | Path] = ["--key", key, "--certificate", path, "--bundle-dir", work.bundles]
    return args, [f"--certificate {path}: no such file"]


REFUSALS: dict[str, Scenario] = {
    "matches no key": _no_key,
    "two certificates for one key": _two_for_one_key,
    "the same file twice": _same_file_twice,
    "more certificates than keys": _more_than_keys,
    "keyless": _keyless,
    "no --bundle-dir": _no_bundle_dir,
    "chain without certificate": _chain_alone,
    "CA certificate": _ca,
    "KeyUsage without digitalSignature": _key_usage,
    "no EKU": _no_eku,
    "EKU without codeSigning": _wrong_eku,
    "expired": _expired,
    "not yet valid": _not_yet_valid,
    "chain of another CA": _other_chain,
    "broken chain": _broken_chain,
    "chain too long": _long_chain,
    "chain that issued nothing": _unused_chain,
    "no chain for the issuer": _no_chain_for_issuer,
    "two certificates in one file": _two_in_leaf_file,
    "file too large": _too_large,
    "DER, not PEM": _not_pem,
    "missing file": _missing,
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_sign_refuses(cli: Callable[..., Run], work: Work, case: str) -> None:
    args, fragments = REFUSALS[case](work)
    _refused(_sign(cli, work, *args), work, *fragments)


@pytest.mark.parametrize("case", ["matches no key", "no --bundle-dir", "EKU without codeSigning"])
def test_attest_and_countersign_refuse_alike(
    cli: Callable[..., Run], work: Work, case: str
) -> None:
    args, fragments = REFUSALS[case](work)
    work.write("predicate.json", b'{"note": "hello"}\n')
    run = cli(
        "attest", "--subject", work.path / "payload.txt", "--predicate",
        work.path / "predicate.json", "--type", "custom", "--out", work.out, *args,
    )  # fmt: skip
    _refused(run, work, *fragments)
    other, _ = work.key("ed25519", 7)
    first = work.path / "first.json"
    assert cli("sign", "--payload", work.path / "payload.txt", "--payload-type", PAYLOAD_TYPE,
               "--key", other, "--out", first).code == 0  # fmt: skip
    _refused(cli("countersign", first, "--out", work.out, *args), work, *fragments)


def test_out_may_not_be_a_certificate(cli: Callable[..., Run], work: Work) -> None:
    args, path = _leaf_args(work)
    before = path.read_bytes()
    run = cli(
        "sign", "--payload", work.path / "payload.txt", "--payload-type", PAYLOAD_TYPE,
        "--out", path, *args,
    )  # fmt: skip
    assert run.code == 2, run
    assert f"--out {path} is --certificate {path}: refusing to overwrite" in run.err
    assert path.read_bytes() == before
    assert not work.bundles.exists()


def test_a_mismatch_after_loading_leaves_no_audit_record(
    cli: Callable[..., Run], work: Work
) -> None:
    args, fragments = _no_key(work)
    log = work.path / "audit.jsonl"
    run = _sign(cli, work, *args, "--audit-log", log)
    _refused(run, work, *fragments)
    assert not log.exists() or not log.read_bytes().strip()
