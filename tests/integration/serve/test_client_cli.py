"""`attest --server` / `sign --server` and the library's ServiceClient against a real
`dssesign serve`: the same files as local signing, verified by `dssesign verify`; retries as
Retry-After says; refusals in one line that never holds the token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from dssesign.errors import ConfigError, SigningError
from dssesign.intoto.statement import PAYLOAD_TYPE
from dssesign.serve.client import ServiceClient
from tests.service import Key, RunningService, ServiceFactory, SoftwareKey, Tenant, free_port

DIGEST = hashlib.sha256(b"the artifact").hexdigest()
PREDICATE_TYPE = "https://example.com/predicate/client/v1"
STATEMENT = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": "artifact.bin", "digest": {"sha256": DIGEST}}],
    "predicateType": PREDICATE_TYPE,
    "predicate": {"from": "sign --server"},
}


@dataclass
class Setup:
    service: RunningService
    release: SoftwareKey


@pytest.fixture(scope="module")
def setup(module_service_factory: ServiceFactory) -> Setup:
    release = module_service_factory.software_key("release", "ed25519")
    service = module_service_factory(
        keys=[Key("release", str(release.path))],
        tenants=[Tenant("team-a", ["release"]), Tenant("team-slow", ["release"], 1)],
    )
    return Setup(service, release)


def dssesign(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dssesign", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def token_file(directory: Path, token: str, name: str = "token") -> Path:
    path = directory / name
    path.write_text(token + "\n")
    return path


def no_token_in(result: subprocess.CompletedProcess[str], token: str) -> None:
    for part in [token, *(p for p in token.split(".") if len(p) >= 8)]:
        assert part not in result.stdout
        assert part not in result.stderr


def verify(setup: Setup, cwd: Path, envelope: Path, bundle_dir: Path) -> None:
    bundles = sorted(str(p) for p in bundle_dir.iterdir())
    assert bundles
    result = dssesign(
        "verify", "--trust-root", str(setup.service.trust_root), str(envelope), *bundles, cwd=cwd
    )
    assert result.returncode == 0, result.stdout + result.stderr


def files(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file()
    }


def _without_timestamp(envelope: bytes) -> dict[str, object]:
    """The Statement of an envelope file, minus the time `--type custom` stamps in."""
    statement = json.loads(base64.b64decode(json.loads(envelope)["payload"]))
    predicate = dict(statement["predicate"])
    predicate.pop("Timestamp", None)
    return {**statement, "predicate": predicate}


@pytest.mark.parametrize("kind", ["custom", PREDICATE_TYPE])
def test_attest_through_the_service_writes_what_local_signing_writes(
    setup: Setup, tmp_path: Path, kind: str
) -> None:
    service = setup.service
    token = service.token()
    tokens = token_file(tmp_path, token)
    predicate = tmp_path / "predicate.json"
    predicate.write_text(json.dumps({"builder": "ci", "steps": [1, 2, 3]}))
    common = ["--subject", f"sha256:{DIGEST}", "--type", kind, "--predicate", str(predicate)]
    (tmp_path / "remote").mkdir()
    (tmp_path / "local").mkdir()

    remote = dssesign(
        "attest",
        *("--server", service.url, "--token-file", str(tokens), "--key", "release"),
        *common,
        *("--out", "remote/att.dsse.json", "--bundle-dir", "remote/bundles"),
        cwd=tmp_path,
    )
    assert remote.returncode == 0, remote.stderr
    no_token_in(remote, token)
    local = dssesign(
        "attest",
        *("--key", str(setup.release.path)),
        *common,
        *("--out", "local/att.dsse.json", "--bundle-dir", "local/bundles"),
        cwd=tmp_path,
    )
    assert local.returncode == 0, local.stderr

    remote_files, local_files = files(tmp_path / "remote"), files(tmp_path / "local")
    assert sorted(remote_files) == sorted(local_files)
    bundle_names = [name for name in remote_files if name.startswith("bundles/")]
    assert bundle_names == [f"bundles/att.{setup.release.keyid[:16]}.sigstore.json"]
    if kind == "custom":  # cosign's wrapper holds the signing time: equal but for it
        assert _without_timestamp(remote_files["att.dsse.json"]) == _without_timestamp(
            local_files["att.dsse.json"]
        )
    else:  # Ed25519 is deterministic and the Statement canonical: the very same bytes
        assert remote_files == local_files
    verify(setup, tmp_path, tmp_path / "remote/att.dsse.json", tmp_path / "remote/bundles")
    assert str(tmp_path / "remote/att.dsse.json") not in remote.stderr
    assert "remote/att.dsse.json" in remote.stdout and "release" in remote.stdout


def test_sign_through_the_service_writes_what_local_signing_writes(
    setup: Setup, tmp_path: Path
) -> None:
    service = setup.service
    token = service.token(alg="EdDSA", scope="signer.sign")
    tokens = token_file(tmp_path, token)
    payload = tmp_path / "statement.json"
    payload.write_text(json.dumps(STATEMENT))
    for where, key in (("remote", "release"), ("local", str(setup.release.path))):
        (tmp_path / where).mkdir()
        server = ["--server", service.url, "--token-file", str(tokens)] if where == "remote" else []
        result = dssesign(
            "sign",
            *server,
            *("--payload", str(payload), "--payload-type", PAYLOAD_TYPE, "--key", key),
            *("--out", f"{where}/payload.dsse.json", "--bundle-dir", f"{where}/b"),
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        no_token_in(result, token)
    assert files(tmp_path / "remote") == files(tmp_path / "local")
    envelope = json.loads((tmp_path / "remote/payload.dsse.json").read_text())
    assert base64.b64decode(envelope["payload"]) == payload.read_bytes()
    verify(setup, tmp_path, tmp_path / "remote/payload.dsse.json", tmp_path / "remote/b")


def test_sign_json_summary_to_stdout(setup: Setup, tmp_path: Path) -> None:
    service = setup.service
    token = service.token()
    payload = tmp_path / "p.txt"
    payload.write_text("x")
    result = dssesign(
        "sign",
        *("--server", service.url, "--token-file", str(token_file(tmp_path, token))),
        *("--payload", str(payload), "--payload-type", "text/plain", "--key", "release"),
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["keys"] == [{"name": "release", "keyid": setup.release.keyid}]
    assert summary["envelope"]["payloadType"] == "text/plain"
    no_token_in(result, token)


def _attest_args(server: str, tokens: Path) -> list[str]:
    return [
        "attest",
        *("--server", server, "--token-file", str(tokens), "--key", "release"),
        *("--subject", f"sha256:{DIGEST}", "--type", "custom", "--predicate", "predicate.json"),
        *("--out", "out.dsse.json", "--bundle-dir", "bundles"),
    ]


def test_an_unreachable_server_is_one_line_and_writes_nothing(setup: Setup, tmp_path: Path) -> None:
    token = setup.service.token()
    (tmp_path / "predicate.json").write_text("{}")
    server = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = dssesign(*_attest_args(server, token_file(tmp_path, token)), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: signing service"), result.stderr
    assert "unreachable" in lines[0]
    assert result.stdout == ""
    no_token_in(result, token)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predicate.json", "token"]


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("expired", 401, "UNAUTHORIZED: token expired"),
        ("wrong-tenant-key", 403, "KEY_NOT_ALLOWED"),
        ("no-scope", 403, "FORBIDDEN: the token lacks the scope signer.sign"),
    ],
)
def test_a_refusal_is_one_line_without_the_token(
    setup: Setup, tmp_path: Path, case: str, status: int, message: str
) -> None:
    service = setup.service
    token = {
        "expired": lambda: service.token(exp=1_000_000_000, iat=999_999_000),
        "wrong-tenant-key": lambda: service.token(tenant="team-x"),
        "no-scope": lambda: service.token(scope="signer.verify"),
    }[case]()
    if case == "wrong-tenant-key":  # an unknown tenant is refused by the gate (403 FORBIDDEN)
        message = "FORBIDDEN: the token's tenant is not configured"
    (tmp_path / "predicate.json").write_text("{}")
    result = dssesign(*_attest_args(service.url, token_file(tmp_path, token)), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: signing service {service.url}/v1/sign answered {status}")
    assert message in lines[0]
    no_token_in(result, token)
    assert not (tmp_path / "out.dsse.json").exists()
    assert not (tmp_path / "bundles").exists()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"%(token)s\n%(token)s\n", id="two-lines"),
        pytest.param(b"%(token)s\nsecond-line\n", id="second-line"),
        pytest.param("%(token)s\u00e9\n".encode(), id="non-ascii"),
        pytest.param(b"\n", id="empty"),
    ],
)
def test_a_bad_token_file_is_refused(setup: Setup, tmp_path: Path, content: bytes) -> None:
    token = setup.service.token()
    (tmp_path / "predicate.json").write_text("{}")
    tokens = tmp_path / "token"
    tokens.write_bytes(content % {b"token": token.encode()})
    time.sleep(0.1)  # the records of earlier requests follow their answers
    before = len(setup.service.request_records())
    result = dssesign(*_attest_args(setup.service.url, tokens), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    no_token_in(result, token)
    assert "internal error" not in lines[0]
    # Refused before anything was sent.
    time.sleep(0.1)
    assert len(setup.service.request_records()) == before


def test_server_options_are_checked(setup: Setup, tmp_path: Path) -> None:
    (tmp_path / "predicate.json").write_text("{}")
    args = _attest_args(setup.service.url, tmp_path / "token")
    without_token = [a for a in args if a not in ("--token-file", str(tmp_path / "token"))]
    result = dssesign(*without_token, cwd=tmp_path)
    assert result.returncode == 2
    assert "--token-file" in result.stderr
    token_file(tmp_path, setup.service.token())
    result = dssesign(*args, "--trust-root", "tr.json", cwd=tmp_path)
    assert result.returncode == 2
    assert "--trust-root is not used with --server" in result.stderr


# --- the library client ---------------------------------------------------------------------------


def test_client_retries_429_as_retry_after_says_then_gives_up(setup: Setup) -> None:
    service = setup.service
    slept: list[float] = []
    client = ServiceClient(
        service.url,
        service.token(tenant="team-slow"),
        max_retries=3,
        max_wait_s=120.0,
        sleep=slept.append,
    )
    signed = client.sign(b"first", "text/plain", ["release"])  # the bucket's one token
    assert signed.keys == ({"name": "release", "keyid": setup.release.keyid},)
    with pytest.raises(SigningError) as refused:
        client.sign(b"second", "text/plain", ["release"])
    assert "answered 429" in str(refused.value)
    assert "RATE_LIMITED: tenant quota exceeded" in str(refused.value)
    # Three waits (max_retries), each what Retry-After said: about 60 s at 1 request/minute.
    assert len(slept) == 3
    said = service.call("GET", "/v1/keys", token=service.token(tenant="team-slow"))
    assert said.status == 429
    assert all(abs(wait - int(said.headers["retry-after"])) <= 1 for wait in slept), slept
    assert all(50 <= wait <= 60 for wait in slept), slept
    # One first try and three retries reached the server, all refused by the quota.
    refusals = [
        r
        for r in service.request_records()
        if r.get("tenant") == "team-slow" and r["status"] == 429
    ]
    assert len(refusals) >= 4

    # max_wait_s caps each wait.
    capped: list[float] = []
    client = ServiceClient(
        service.url, service.token(tenant="team-slow"), max_retries=2, max_wait_s=5.0,
        sleep=capped.append,
    )  # fmt: skip
    with pytest.raises(SigningError):
        client.keys()
    assert capped == [5.0, 5.0]


def test_client_checks_what_it_is_given(setup: Setup) -> None:
    for token in ("", "two words", "é", "x" * 9000):
        with pytest.raises(ConfigError) as refused:
            ServiceClient(setup.service.url, token)
        assert token not in str(refused.value) or not token
    with pytest.raises(ConfigError):
        ServiceClient("ftp://127.0.0.1/", "token")


@pytest.mark.parametrize("token", ["aaa.bbb.ccc\nddd", "aaa.bbb.ccc\r\nX-Injected:1", "a\tb"])
def test_client_refuses_a_token_that_is_not_one_header_value(setup: Setup, token: str) -> None:
    with pytest.raises(ConfigError) as refused:
        ServiceClient(setup.service.url, token)
    assert "aaa.bbb" not in str(refused.value)


def test_client_sign_keys_and_verify(setup: Setup) -> None:
    service = setup.service
    client = ServiceClient(service.url, service.token())
    payload = json.dumps(STATEMENT).encode()
    signed = client.sign(payload, PAYLOAD_TYPE, ["release"])
    assert signed.envelope.payload == payload
    assert len(signed.bundles) == 1
    listing = client.keys()
    assert [k["name"] for k in listing["keys"]] == ["release"]
    report = client.verify(signed.envelope.to_dict(), [json.loads(b) for b in signed.bundles])
    assert report["ok"] is True, report
    assert report["keysCounted"][0]["keyid"] == setup.release.keyid
