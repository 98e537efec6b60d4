"""Keyless end to end: attest with `--key keyless` against the local Sigstore instance, then
`dssesign verify ENVELOPE BUNDLE...` offline against a trust root holding the instance's
trusted root and the signer's identity.

Signing runs through the CLI (subprocesses); most verifications run `dssesign.cli.main`
in-process (one sigstore-python import for the module), one through a subprocess.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dssesign import cli
from dssesign.core.dsse import Envelope
from tests.sigstore_instance import (
    SigstoreInstance,
)
from tests.unit.cli.test_cli import ARTIFACT, PROVENANCE, dssesign

OTHER_SUBJECT = "someone-else@example.com"


@dataclass(frozen=True)
class Signed:
    envelope: Path
    keyless: Path
    keyed: Path | None


@dataclass(frozen=True)
class World:
    directory: Path
    key: Path
    public_key: Path
    first: Signed  # keyless + software key
    again: Signed  # the same identity, same payload, another keyless signature
    other_identity: Signed  # another subject, same payload
    other_payload: Signed  # the same identity, another artifact


def _attest(
    instance: SigstoreInstance,
    out: Path,
    *,
    key: Path | None = None,
    subject: str | None = None,
    artifact: Path = ARTIFACT,
) -> Signed:
    bundles = out.with_suffix(".bundles")
    args: list[str | Path] = [
        "--subject",
        artifact,
        "--predicate",
        PROVENANCE,
        "--type",
        "slsaprovenance1",
    ]
    keys: list[str | Path] = ["--key", "keyless", *(["--key", str(key)] if key else [])]
    run = dssesign(
        "attest",
        *args,
        *keys,
        "--out",
        out,
        "--bundle-dir",
        bundles,
        env=instance.env(instance.identity_token(subject=subject)),
    )
    assert run.code == 0, run
    keyless = bundles / f"{out.stem}.keyless-1.sigstore.json"
    keyed = [p for p in bundles.iterdir() if p != keyless]
    assert keyless.exists() and len(keyed) == (1 if key else 0)
    return Signed(out, keyless, keyed[0] if keyed else None)


@pytest.fixture(scope="module")
def world(
    sigstore_instance: SigstoreInstance,
    tmp_path_factory: pytest.TempPathFactory,
) -> World:
    directory = tmp_path_factory.mktemp("keyless-e2e")
    run = dssesign("keygen", "--algorithm", "ed25519", "--out", directory / "k")
    assert run.code == 0, run
    key = directory / "k.key"
    other_artifact = directory / "other.txt"
    other_artifact.write_text("another artifact\n")
    return World(
        directory=directory,
        key=key,
        public_key=directory / "k.pub",
        first=_attest(sigstore_instance, directory / "first.json", key=key),
        again=_attest(sigstore_instance, directory / "again.json"),
        other_identity=_attest(sigstore_instance, directory / "o.json", subject=OTHER_SUBJECT),
        other_payload=_attest(sigstore_instance, directory / "p.json", artifact=other_artifact),
    )


def _trust_root(
    world: World,
    instance: SigstoreInstance,
    name: str,
    *,
    threshold: int = 2,
    subjects: tuple[str, ...] | None = None,
    with_key: bool = True,
) -> Path:
    """A trust root made with the CLI: the software key, the instance, identity rule(s)."""
    path = world.directory / f"{name}.trust-root.json"
    steps: list[list[str | Path]] = [["init", "--out", path, "--force"]]
    if with_key:
        steps.append(["add-key", path, "--public-key", world.public_key])
    steps.append(["set-sigstore-root", path, "--trusted-root", instance.trusted_root_path])
    for subject in subjects if subjects is not None else (instance.subject,):
        steps.append(["add-identity", path, "--issuer", instance.issuer, "--subject", subject])
    steps.append(["set-policy", path, "--threshold", str(threshold)])
    for step in steps:
        assert cli.main(["trust-root", *map(str, step)]) == 0, step
    return path


def _verify(
    capsys: pytest.CaptureFixture[str], root: Path, *inputs: Path, artifact: Path = ARTIFACT
) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    code = cli.main(
        ["verify", "--json", "--trust-root", str(root), "--artifact", str(artifact)]
        + [str(p) for p in inputs]
    )
    report: dict[str, object] = json.loads(capsys.readouterr().out)
    return code, report


def test_keyless_and_keyed_signatures_meet_a_threshold_of_two(
    world: World,
    sigstore_instance: SigstoreInstance,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _trust_root(world, sigstore_instance, "two")
    first = world.first
    assert first.keyed is not None
    code, report = _verify(capsys, root, first.envelope, first.keyless, first.keyed)
    assert code == 0, report
    assert report["identitiesCounted"] == [
        {
            "issuer": sigstore_instance.issuer,
            "subject": sigstore_instance.subject,
            "label": None,
            "kind": "keyless",
        }
    ]
    assert len(report["keysCounted"]) == 1  # type: ignore[arg-type]
    # Without its bundle the keyless signature cannot count: one key is below two.
    code, report = _verify(capsys, root, first.envelope)
    assert (code, report["code"]) == (1, "THRESHOLD_NOT_MET")
    # The keyless bundle alone verifies against a threshold of one.
    single = _trust_root(world, sigstore_instance, "one", threshold=1)
    code, report = _verify(capsys, single, first.keyless)
    assert code == 0 and report["identitiesCounted"], report


def test_subprocess_verify_prints_the_identity(
    world: World,
    sigstore_instance: SigstoreInstance,
) -> None:
    root = _trust_root(world, sigstore_instance, "sub")
    first = world.first
    assert first.keyed is not None
    run = dssesign(
        "verify", "--trust-root", root, "--artifact", ARTIFACT, first.envelope, first.keyless
    )
    assert run.code == 0, run
    assert run.out.startswith("OK: ") and sigstore_instance.subject in run.out


def test_wrong_identity_is_refused(
    world: World,
    sigstore_instance: SigstoreInstance,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _trust_root(world, sigstore_instance, "wrong", subjects=(OTHER_SUBJECT,))
    code, report = _verify(capsys, root, world.first.envelope, world.first.keyless)
    assert (code, report["code"]) == (1, "IDENTITY_MISMATCH"), report


def test_tampered_bundle_payload_is_refused(
    world: World,
    sigstore_instance: SigstoreInstance,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = json.loads(world.first.keyless.read_bytes())
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(
        payload.replace(b"hello-1.0", b"hello-6.6")
    ).decode()
    tampered = world.directory / "tampered.sigstore.json"
    tampered.write_text(json.dumps(bundle))
    root = _trust_root(world, sigstore_instance, "tamper", threshold=1)
    code, report = _verify(capsys, root, world.first.envelope, tampered)
    assert (code, report["code"]) == (1, "BUNDLE_PAYLOAD_MISMATCH"), report
    # Alone, the tampered bundle's signature no longer verifies over its payload.
    code, report = _verify(capsys, root, tampered)
    assert (code, report["code"]) == (1, "BUNDLE_SIGNATURE_INVALID"), report


def test_bundle_from_another_envelope_is_refused(
    world: World,
    sigstore_instance: SigstoreInstance,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = _trust_root(world, sigstore_instance, "another", threshold=1)
    code, report = _verify(capsys, root, world.first.envelope, world.other_payload.keyless)
    assert (code, report["code"]) == (1, "BUNDLE_PAYLOAD_MISMATCH"), report
    # Same payload, but a signature this envelope does not carry.
    code, report = _verify(capsys, root, world.first.envelope, world.again.keyless)
    assert (code, report["code"]) == (1, "BUNDLE_SIGNATURE_MISMATCH"), report


def _combined(world: World, name: str, *parts: Signed) -> Path:
    """One envelope carrying the keyless signatures of several attests of the same payload."""
    envelopes = [Envelope.from_json(p.envelope.read_bytes()) for p in parts]
    assert len({e.payload for e in envelopes}) == 1, "attest output is deterministic"
    signatures = tuple(e.signatures[0] for e in envelopes)
    combined = Envelope(envelopes[0].payload, envelopes[0].payload_type, signatures)
    path = world.directory / name
    path.write_bytes(combined.to_json())
    return path


def test_a_keyless_identity_counts_once_even_with_two_bundles(
    world: World,
    sigstore_instance: SigstoreInstance,
    capsys: pytest.CaptureFixture[str],
) -> None:
    same = _combined(world, "same.json", world.first, world.again)
    # Threshold 2 over the software key and one identity: two bundles of that identity are one.
    root = _trust_root(world, sigstore_instance, "once", threshold=2)
    code, report = _verify(capsys, root, same, world.first.keyless, world.again.keyless)
    assert (code, report["code"]) == (1, "THRESHOLD_NOT_MET"), report
    assert len(report["identitiesCounted"]) == 1  # type: ignore[arg-type]
    # Two distinct identities make two.
    both = _combined(world, "both.json", world.first, world.other_identity)
    root = _trust_root(
        world,
        sigstore_instance,
        "both",
        with_key=False,
        subjects=(sigstore_instance.subject, OTHER_SUBJECT),
    )
    code, report = _verify(capsys, root, both, world.first.keyless, world.other_identity.keyless)
    assert code == 0, report
    subjects = {i["subject"] for i in report["identitiesCounted"]}  # type: ignore[attr-defined]
    assert subjects == {sigstore_instance.subject, OTHER_SUBJECT}


def _flip_base64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _no_tlog_entry(bundle: dict[str, Any]) -> None:
    bundle["verificationMaterial"]["tlogEntries"] = []


def _bad_set(bundle: dict[str, Any]) -> None:
    promise = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
    promise["signedEntryTimestamp"] = _flip_base64(promise["signedEntryTimestamp"])


def _moved_integrated_time(bundle: dict[str, Any]) -> None:
    # Still inside the certificate's 10-minute validity: only the SET, which signs the
    # integrated time, can tell.
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 60)


def _integrated_before_certificate(bundle: dict[str, Any]) -> None:
    # Before the leaf was issued: the chain is checked at the log's time, so it fails there.
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) - 3600)


def _bad_inclusion_proof(bundle: dict[str, Any]) -> None:
    proof = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["rootHash"] = _flip_base64(proof["rootHash"])


def _swapped_payload_type(bundle: dict[str, Any]) -> None:
    bundle["dsseEnvelope"]["payloadType"] = "application/vnd.dssesign.trust-root.v1+json"


@pytest.mark.parametrize(
    ("tamper", "codes"),
    [
        (_no_tlog_entry, ("BUNDLE_MALFORMED", "BUNDLE_MALFORMED")),
        (_bad_set, ("BUNDLE_TLOG_INVALID", "BUNDLE_TLOG_INVALID")),
        (_moved_integrated_time, ("BUNDLE_TLOG_INVALID", "BUNDLE_TLOG_INVALID")),
        (_integrated_before_certificate, ("BUNDLE_CERTIFICATE_INVALID",) * 2),
        (_bad_inclusion_proof, ("BUNDLE_TLOG_INVALID", "BUNDLE_TLOG_INVALID")),
        (_swapped_payload_type, ("BUNDLE_PAYLOAD_MISMATCH", "UNSUPPORTED_PAYLOAD_TYPE")),
    ],
    ids=[
        "no-tlog-entry",
        "bad-set",
        "moved-integrated-time",
        "before-certificate",
        "bad-inclusion-proof",
        "payload-type",
    ],
)
def test_broken_log_evidence_or_payload_type_is_refused(
    world: World,
    sigstore_instance: SigstoreInstance,
    capsys: pytest.CaptureFixture[str],
    tamper: Callable[[dict[str, Any]], None],
    codes: tuple[str, str],
) -> None:
    """Our own keyless bundles, each broken one way: refused with the envelope and alone."""
    bundle = json.loads(world.first.keyless.read_bytes())
    tamper(bundle)
    broken = world.directory / f"{tamper.__name__.strip('_')}.sigstore.json"
    broken.write_text(json.dumps(bundle))
    root = _trust_root(world, sigstore_instance, "broken", threshold=1, with_key=False)
    for inputs, expected in zip(((world.first.envelope, broken), (broken,)), codes, strict=True):
        code, report = _verify(capsys, root, *inputs)
        assert (code, report["code"]) == (1, expected), report
    # The untouched bundle passes the same trust root: the refusal is the tampering's.
    code, report = _verify(capsys, root, world.first.envelope, world.first.keyless)
    assert code == 0, report
