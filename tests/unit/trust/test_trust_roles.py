"""Roles in the trust root: the model, the document (only written when present), the rules
every trust root obeys, the management operations, and what loading one costs."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dssesign import trust as tr
from dssesign.errors import ConfigError
from dssesign.profiles.software import SoftwareSigner
from dssesign.trust import Role, TrustRoot, TrustRootError
from tests.conftest import signer_for

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SLSA = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"
ISSUER = "https://token.actions.githubusercontent.com"
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1"
SIGSTORE: dict[str, Any] = {
    "trustedRoot": {"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1"},
    "identities": [
        {"issuer": ISSUER, "subject": WORKFLOW, "name": "release-workflow"},
        {"issuer": "https://accounts.google.com", "subject": "officer@acme.example"},
    ],
}
DOCS = Path(__file__).resolve().parents[3] / "docs" / "trust-root.md"


def key(index: int) -> SoftwareSigner:
    return signer_for("ed25519", index)


def keys_root(count: int = 4) -> TrustRoot:
    root = tr.init_trust_root(threshold=1, now=NOW)
    for index in range(count):
        root = tr.add_key(root, key(index).public_key)
    return root


def teams() -> TrustRoot:
    """build = key 0 (1 of 1); review = keys 1..3 (2 of 3); SLSA needs both roles."""
    root = keys_root()
    root = tr.add_role(root, "build", keyids=[key(0).keyid], threshold=1)
    root = tr.add_role(root, "review", keyids=[key(i).keyid for i in (1, 2, 3)], threshold=2)
    root = tr.set_policy(root, threshold=3, for_type=SLSA, required_roles=["build", "review"])
    return tr.set_policy(root, required_roles=["build", "review"], any_role=True)


def doc_of(root: TrustRoot) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(tr.dump_trust_root(root))
    return loaded


def refused(doc: object, **kwargs: Any) -> TrustRootError:
    with pytest.raises(TrustRootError) as info:
        tr.load_trust_root(json.dumps(doc).encode(), **kwargs)
    return info.value


# --- the document ----------------------------------------------------------------------------


def test_roles_round_trip_exactly() -> None:
    root = teams()
    data = tr.dump_trust_root(root)
    loaded = tr.load_trust_root(data)
    assert loaded == root
    assert tr.dump_trust_root(loaded) == data
    doc = json.loads(data)
    assert doc["roles"] == [
        {"name": "build", "threshold": 1, "keyids": [key(0).keyid]},
        {"name": "review", "threshold": 2, "keyids": [key(i).keyid for i in (1, 2, 3)]},
    ]
    assert doc["policy"]["requiredRoles"] == ["build", "review"]
    assert doc["policy"]["anyRole"] is True
    assert doc["policy"]["perType"][SLSA] == {"threshold": 3, "requiredRoles": ["build", "review"]}
    assert loaded.role("review") == Role("review", 2, tuple(key(i).keyid for i in (1, 2, 3)))
    assert loaded.role("nobody") is None


def test_a_trust_root_without_roles_is_written_exactly_as_before() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("<!-- example:trust-root -->\n```json\n", 1)[1].split("\n```", 1)[0]
    canonical = tr.dump_trust_root(tr.load_trust_root(block.encode()))
    assert canonical == tr.dump_trust_root(tr.load_trust_root(canonical))
    assert b"roles" not in canonical.lower() and b"anyRole" not in canonical
    assert b'"name"' not in canonical
    # An identity without a name is written without one, too.
    root = dataclasses.replace(keys_root(1), sigstore=copy.deepcopy(SIGSTORE))
    doc = doc_of(root)
    assert doc["sigstore"]["identities"][1] == SIGSTORE["identities"][1]
    assert "roles" not in doc and "requiredRoles" not in doc["policy"]


def test_identity_names_and_roles_of_identities() -> None:
    root = dataclasses.replace(keys_root(1), sigstore=copy.deepcopy(SIGSTORE))
    root = tr.add_role(
        root, "build", identities=["release-workflow"], keyids=[key(0).keyid], threshold=2
    )
    loaded = tr.load_trust_root(tr.dump_trust_root(root))
    assert loaded == root
    assert loaded.keyless is not None
    rule = loaded.keyless.identity("release-workflow")
    assert rule is not None and rule.subject == WORKFLOW and rule.name == "release-workflow"
    assert doc_of(loaded)["roles"] == [
        {
            "name": "build",
            "threshold": 2,
            "keyids": [key(0).keyid],
            "identities": ["release-workflow"],
        }
    ]


def test_add_identity_with_a_name() -> None:
    root = dataclasses.replace(
        keys_root(1), sigstore={"trustedRoot": SIGSTORE["trustedRoot"], "identities": []}
    )
    root = tr.add_identity(root, issuer=ISSUER, subject=WORKFLOW, name="release-workflow")
    assert root.keyless is not None and root.keyless.identities[0].name == "release-workflow"
    with pytest.raises(TrustRootError) as info:
        tr.add_identity(root, issuer=ISSUER, subject="other@acme.example", name="release-workflow")
    assert info.value.path == "$.sigstore.identities[1].name"
    assert "names are unique" in str(info.value)


# --- the rules -------------------------------------------------------------------------------


def _with(mutate: Any) -> dict[str, Any]:
    doc = doc_of(dataclasses.replace(teams(), sigstore=copy.deepcopy(SIGSTORE)))
    mutate(doc)
    return doc


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        (lambda d: d["roles"][1].update(name="build"), "$.roles[1].name", "names are unique"),
        (
            lambda d: d["roles"][0].update(keyids=["0" * 64]),
            "$.roles[0].keyids[0]",
            "is not a key in $.keys",
        ),
        (
            lambda d: d["roles"][0].update(identities=["nobody"]),
            "$.roles[0].identities[0]",
            "names no identity",
        ),
        (lambda d: d["roles"][1].update(threshold=4), "$.roles[1].threshold", "from 1 to 3"),
        (lambda d: d["roles"][1].update(threshold=0), "$.roles[1].threshold", "minimum"),
        (lambda d: d["roles"][0].pop("keyids"), "$.roles[0]", "needs members"),
        (lambda d: d["roles"][0].update(keyids=[]), "$.roles[0].keyids", "at least 1"),
        (lambda d: d["roles"][0].update(label="x"), "$.roles[0].label", "unknown field"),
        (
            lambda d: d["roles"][0].update(name="evil\u202erole"),
            "$.roles[0].name",
            "control or reordering",
        ),
        (lambda d: d["roles"][0].update(name="x" * 129), "$.roles[0].name", "longer than 128"),
        (
            lambda d: d["policy"].update(requiredRoles=["build", "qa"]),
            "$.policy.requiredRoles[1]",
            "is not a role",
        ),
        (
            lambda d: d["policy"].update(requiredRoles=["build", "build"]),
            "$.policy.requiredRoles",
            "duplicate",
        ),
        (
            lambda d: d["policy"].pop("requiredRoles"),
            "$.policy.requiredRoles",
            "required field is missing",
        ),
        (lambda d: d["policy"].update(anyRole=False), "$.policy.anyRole", "must be true"),
        (lambda d: d.update(roles=[]), "$.roles", "at least 1"),
        (
            lambda d: d["sigstore"]["identities"][1].update(name="release-workflow"),
            "$.sigstore.identities[1].name",
            "names are unique",
        ),
    ],
)
def test_role_refusals_name_the_path(mutate: Any, path: str, message: str) -> None:
    error = refused(_with(mutate))
    assert error.path == path, error
    assert message in str(error), error


def test_roles_are_bounded() -> None:
    doc = _with(lambda d: None)
    doc["roles"] = [{"name": f"r{i}", "threshold": 1, "keyids": [key(0).keyid]} for i in range(65)]
    assert refused(doc).path == "$.roles"
    in_memory = dataclasses.replace(
        keys_root(1), roles=tuple(Role(f"r{i}", 1, (key(0).keyid,)) for i in range(65))
    )
    with pytest.raises(TrustRootError, match="at most 64 roles"):
        tr.dump_trust_root(in_memory)
    many = dataclasses.replace(keys_root(1), roles=(Role("big", 1, (key(0).keyid,) * 257),))
    with pytest.raises(TrustRootError, match="at most 256 keyids"):
        tr.dump_trust_root(many)


def test_schema_bounds_roles_and_members() -> None:
    defs = tr.schema()["$defs"]
    assert tr.schema()["properties"]["roles"]["maxItems"] == tr.MAX_ROLES == 64
    assert defs["role"]["properties"]["keyids"] == {"$ref": "#/$defs/keyids"}
    assert defs["keyids"]["maxItems"] == tr.MAX_ROLE_MEMBERS == 256
    assert defs["role"]["properties"]["identities"]["maxItems"] == 64
    assert defs["roleNames"]["maxItems"] == 64 and defs["name"]["maxLength"] == 128


def test_completeness_counts_a_rotation_chain_as_one_member() -> None:
    root = keys_root(2)
    root = tr.rotate_key(root, key(0), key(5).public_key, now=NOW)
    # Keys 0 and 5 are one chain: two members listed, but one member that could ever count.
    root = tr.add_role(root, "release", keyids=[key(0).keyid, key(5).keyid], threshold=2)
    data = tr.dump_trust_root(root)
    with pytest.raises(TrustRootError) as info:
        tr.load_trust_root(data)
    error = info.value
    assert error.path == "$.roles[0].threshold"
    assert "1 distinct members" in str(error)
    assert tr.load_trust_root(data, allow_incomplete=True) == root
    assert root.predecessors(key(5).keyid) == (key(0).keyid,)
    assert root.roles_of_key(key(5).keyid) == ("release",)


def test_completeness_refuses_a_required_role_no_member_may_meet_for_the_type() -> None:
    root = tr.init_trust_root(now=NOW)
    root = tr.add_key(root, key(0).public_key, predicate_types=[SLSA])
    root = tr.add_key(root, key(1).public_key)
    root = tr.add_role(root, "build", keyids=[key(0).keyid], threshold=1)
    root = tr.set_policy(root, for_type=SPDX, threshold=1, required_roles=["build"])
    data = tr.dump_trust_root(root)
    with pytest.raises(TrustRootError) as info:
        tr.load_trust_root(data)
    error = info.value
    assert error.path == f'$.policy.perType["{SPDX}"].requiredRoles'
    assert "'build' can never be met for" in str(error)
    # With any one of two roles, one reachable role is enough.
    root = tr.add_role(root, "any", keyids=[key(1).keyid], threshold=1)
    root = tr.set_policy(root, for_type=SPDX, required_roles=["build", "any"], any_role=True)
    assert tr.load_trust_root(tr.dump_trust_root(root)) == root


# --- the model and the management operations ------------------------------------------------


def test_for_type_inherits_or_replaces_the_role_requirement() -> None:
    root = teams()
    assert root.policy.for_type(SLSA).required_roles == ("build", "review")
    assert root.policy.for_type(SLSA).any_role is False  # its own list, its own mode
    assert root.policy.for_type(SPDX).required_roles == ("build", "review")
    assert root.policy.for_type(SPDX).any_role is True
    # A per-type entry made for a threshold only keeps the global roles.
    root = tr.set_policy(root, for_type=SPDX, threshold=1)
    assert root.policy.per_type[SPDX].required_roles == ()
    assert root.policy.for_type(SPDX).required_roles == ("build", "review")
    assert root.policy.for_type(SPDX).threshold == 1
    # Clearing a type's own list makes it follow the global one again.
    root = tr.set_policy(root, for_type=SLSA, required_roles=())
    assert root.policy.for_type(SLSA).required_roles == ("build", "review")
    assert root.policy.for_type(SLSA).any_role is True


def test_set_policy_roles() -> None:
    root = teams()
    assert root.policy.any_role is True
    # any_role None keeps the mode; new roles with any_role False require all of them.
    kept = tr.set_policy(root, required_roles=["review"])
    assert kept.policy.required_roles == ("review",) and kept.policy.any_role is True
    every = tr.set_policy(root, required_roles=["build"], any_role=False)
    assert every.policy.any_role is False
    cleared = tr.set_policy(root, required_roles=())
    assert cleared.policy.required_roles == () and cleared.policy.any_role is False
    assert "requiredRoles" not in doc_of(cleared)["policy"]
    assert "anyRole" not in doc_of(cleared)["policy"]
    assert cleared.version == root.version + 1
    with pytest.raises(TrustRootError, match="no role named 'qa'"):
        tr.set_policy(root, required_roles=["qa"])
    with pytest.raises(ConfigError, match="any_role needs required roles"):
        tr.set_policy(cleared, any_role=True)
    with pytest.raises(ConfigError, match="not one string"):
        tr.set_policy(root, required_roles="build")
    with pytest.raises(ConfigError, match="nothing to change"):
        tr.set_policy(root)


def test_add_role_refusals() -> None:
    root = teams()
    with pytest.raises(TrustRootError) as info:
        tr.add_role(root, "build", keyids=[key(1).keyid], threshold=1)
    assert info.value.path == "$.roles[0].name"
    with pytest.raises(TrustRootError) as info:
        tr.add_role(root, "qa", keyids=["ab" * 32], threshold=1)
    assert info.value.path == "$.roles[2].keyids[0]"
    with pytest.raises(TrustRootError) as info:
        tr.add_role(root, "qa", identities=["release-workflow"], threshold=1)
    assert info.value.path == "$.roles[2].identities[0]"
    with pytest.raises(TrustRootError) as info:
        tr.add_role(root, "qa", keyids=[key(1).keyid], threshold=2)
    assert info.value.path == "$.roles[2].threshold"
    with pytest.raises(TrustRootError) as info:
        tr.add_role(root, "qa", keyids=[key(1).keyid, key(1).keyid], threshold=1)
    assert info.value.path == "$.roles[2].keyids"
    with pytest.raises(ConfigError, match="at least one keyid or identity"):
        tr.add_role(root, "qa", threshold=1)
    with pytest.raises(ConfigError, match="not one string"):
        tr.add_role(root, "qa", keyids=key(1).keyid, threshold=1)
    added = tr.add_role(root, "qa", keyids=[key(1).keyid], threshold=1)
    assert added.version == root.version + 1 and added.roles[-1] == Role("qa", 1, (key(1).keyid,))
    # A key may belong to two roles.
    assert added.roles_of_key(key(1).keyid) == ("review", "qa")


def test_a_rotated_in_key_inherits_its_predecessors_roles() -> None:
    root = keys_root(2)
    root = tr.add_role(root, "release", keyids=[key(0).keyid], threshold=1)
    root = tr.rotate_key(root, key(0), key(5).public_key, now=NOW)
    root = tr.rotate_key(root, key(5), key(6).public_key, now=NOW + timedelta(days=1))
    assert root.predecessors(key(6).keyid) == (key(5).keyid, key(0).keyid)
    assert root.roles_of_key(key(6).keyid) == ("release",)
    assert root.roles_of_key(key(1).keyid) == ()
    assert tr.load_trust_root(tr.dump_trust_root(root)) == root


# --- start-up cost ---------------------------------------------------------------------------


def test_loading_roles_imports_nothing_more(tmp_path: Path) -> None:
    plain = tmp_path / "plain.json"
    plain.write_bytes(tr.dump_trust_root(keys_root(4)))
    with_roles = tmp_path / "roles.json"
    with_roles.write_bytes(tr.dump_trust_root(teams()))
    script = (
        "import sys, json; from dssesign.trust import read_trust_root; "
        "before = set(sys.modules); read_trust_root(sys.argv[1]); "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )

    def loaded(path: Path) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
        ).stdout
        modules: list[str] = json.loads(out)
        return modules

    assert loaded(with_roles) == loaded(plain)
