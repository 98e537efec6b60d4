"""docs/rotation.md run end to end against LocalStack's KMS, in real `dssesign` subprocesses.

The signing pipelines name one stable alias (`alias/release`); the runbook creates the new key,
pins it in the trust root through a handover signed by the old KMS key, moves the alias, and
finally disables the old key. Old and new attestations are verified offline inside the
transition window and after it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dssesign.core.keys import load_public_key
from dssesign.trust import format_time, read_trust_root
from tests.localstack import (
    LocalStack,
)
from tests.unit.cli.test_cli import ATTEST_SLSA, Run, dssesign

TRANSITION_DAYS = 14


def _ok(run: Run) -> Run:
    assert run.code == 0, run
    return run


def _counted(run: Run) -> list[str]:
    assert run.code == 0, run
    return [key["keyid"] for key in json.loads(run.out)["keysCounted"]]


def test_rotation_runbook(localstack: LocalStack, tmp_path: Path) -> None:
    env = localstack.env
    alias = localstack.uri("alias/release")
    root = tmp_path / "trust-root.json"

    # 1. The old key exists and is pinned (first bootstrap).
    created = json.loads(
        _ok(
            dssesign(
                "kms",
                "create-key",
                "--uri",
                localstack.uri(),
                "--key-spec",
                "ECC_NIST_P256",
                "--alias",
                "release",
                "--out",
                tmp_path / "old.pub",
                "--json",
                env=env,
            )
        ).out
    )
    old_keyid, old_key_id = created["keyid"], created["keyId"]
    _ok(dssesign("trust-root", "init", "--out", root))
    _ok(dssesign("trust-root", "add-key", root, "--public-key", tmp_path / "old.pub"))
    old_attestation = tmp_path / "old.intoto.json"
    _ok(dssesign("attest", *ATTEST_SLSA, "--key", alias, "--out", old_attestation, env=env))

    # 2. Create the new key (no alias yet) and export its public key.
    new = json.loads(
        _ok(
            dssesign(
                "kms",
                "create-key",
                "--uri",
                localstack.uri(),
                "--key-spec",
                "ECC_NIST_P384",
                "--out",
                tmp_path / "new.pub",
                "--json",
                env=env,
            )
        ).out
    )
    new_keyid = new["keyid"]
    exported = _ok(
        dssesign("kms", "public-key", "--uri", localstack.uri(new["keyId"]), env=env)
    ).out
    assert load_public_key(exported.split("\n", 1)[1].encode()).keyid == new_keyid

    # 3. Pin it: the old KMS key signs the handover; both count during the window.
    before = datetime.now(UTC).replace(microsecond=0)
    rotated = dssesign(
        "trust-root",
        "rotate",
        root,
        "--from-key",
        alias,
        "--to-public-key",
        tmp_path / "new.pub",
        "--transition-days",
        str(TRANSITION_DAYS),
        env=env,
    )
    _ok(rotated)
    assert "rotated" in rotated.out
    trust = read_trust_root(root)
    (event,) = trust.rotations
    assert (event.from_keyid, event.to_keyid) == (old_keyid, new_keyid)
    deadline = event.transition_deadline
    assert before + timedelta(days=TRANSITION_DAYS) <= deadline
    assert deadline <= datetime.now(UTC) + timedelta(days=TRANSITION_DAYS)
    shown = _ok(dssesign("trust-root", "show", root))
    assert "rotation" in shown.out and "does not verify" not in shown.err

    # 4. Hand over: the alias now names the new key (`aws kms update-alias` in the runbook).
    localstack.client().update_alias(AliasName="alias/release", TargetKeyId=new["keyId"])
    new_attestation = tmp_path / "new.intoto.json"
    _ok(dssesign("attest", *ATTEST_SLSA, "--key", alias, "--out", new_attestation, env=env))

    # 5. Inside the transition window both attestations verify (offline, no AWS at all).
    offline = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_REGION": ""}
    # Now is inside the window; the deadline itself is its last instant (inclusive).
    for at in ([], ["--at", format_time(deadline)]):
        old_run = dssesign(
            "verify", "--trust-root", root, *at, old_attestation, "--json", env=offline
        )
        assert _counted(old_run) == [old_keyid]
        new_run = dssesign(
            "verify", "--trust-root", root, *at, new_attestation, "--json", env=offline
        )
        assert _counted(new_run) == [new_keyid]

    # 6. After the window: the old key no longer counts, the new one does.
    after = format_time(deadline + timedelta(seconds=1))
    late = dssesign("verify", "--trust-root", root, "--at", after, old_attestation, env=offline)
    assert late.code == 1, late
    assert "[KEY_ROTATED_OUT]" in late.err and f"key {old_keyid[:16]} was rotated" in late.err
    assert _counted(
        dssesign(
            "verify", "--trust-root", root, "--at", after, new_attestation, "--json", env=offline
        )
    ) == [new_keyid]

    # 7. Disable the old key: nothing can sign with it any more (`aws kms disable-key`).
    localstack.client().disable_key(KeyId=old_key_id)
    refused = dssesign("attest", *ATTEST_SLSA, "--key", localstack.uri(old_key_id), env=env)
    assert refused.code == 1, refused
    assert "state Disabled" in refused.err and len(refused.err.strip().splitlines()) == 1
    # The new key keeps signing through the alias.
    _ok(dssesign("attest", *ATTEST_SLSA, "--key", alias, env=env))
