"""The Vault / OpenBao transit profile against a real OpenBao dev server (tests/openbao.py)."""

from __future__ import annotations

import base64
import hashlib
import http.server
import importlib
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from dssesign.core.dsse import pae
from dssesign.core.keys import ECDSA_P256, ECDSA_P384, ED25519, RSA_PSS_3072, RSA_PSS_4096
from dssesign.errors import ConfigError, SigningError
from dssesign.intoto.statement import PAYLOAD_TYPE
from dssesign.profiles import vault
from dssesign.profiles.vault import VaultConfig, VaultRef, parse_reference
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.sign.signer import SignerOptions, load_signer
from dssesign.trust import Policy, TrustedKey, TrustRoot
from dssesign.verify import verify
from tests.conftest import signer_for
from tests.openbao import (
    OpenBao,
    run_openbao,
)

#: Transit key type -> the algorithm dssesign must report for it.
KEY_TYPES = {
    "ecdsa-p256": ECDSA_P256,
    "ecdsa-p384": ECDSA_P384,
    "ed25519": ED25519,
    "rsa-3072": RSA_PSS_3072,
    "rsa-4096": RSA_PSS_4096,
}
NOW = datetime.now(UTC)


def _statement_payload(size: int = 6000) -> bytes:
    """A Statement payload larger than 4096 bytes (transit must not need it to be small)."""
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a.tar.gz", "digest": {"sha256": hashlib.sha256(b"a").hexdigest()}}],
        "predicateType": "https://example.com/test/v1",
        "predicate": {"padding": "x" * size},
    }
    return json.dumps(statement, separators=(",", ":"), sort_keys=True).encode()


def _root(*publics: Any, threshold: int = 1) -> TrustRoot:
    return TrustRoot(
        version=1,
        expires=NOW + timedelta(days=30),
        keys=tuple(TrustedKey(public_key=p) for p in publics),
        policy=Policy(threshold=threshold),
    )


def _pyca_verify(public: Any, signature: bytes, data: bytes, key_type: str) -> None:
    """Verify with pyca/cryptography directly, naming each scheme's parameters explicitly."""
    if key_type == "ed25519":
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(signature, data)
    elif key_type.startswith("ecdsa"):
        assert isinstance(public, ec.EllipticCurvePublicKey)
        digest = hashes.SHA256() if key_type == "ecdsa-p256" else hashes.SHA384()
        public.verify(signature, data, ec.ECDSA(digest))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        # Salt length = hash length (32), as sigstore, AWS KMS and dssesign expect.
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        public.verify(signature, data, pss, hashes.SHA256())


@pytest.fixture(scope="module")
def bao(openbao: OpenBao) -> Iterator[OpenBao]:
    """The server, with VAULT_ADDR/VAULT_TOKEN set for this module's in-process loads."""
    with pytest.MonkeyPatch.context() as patch:
        for name in (*vault.ADDR_ENVS, *vault.TOKEN_ENVS, *vault.MOUNT_ENVS, vault.TIMEOUT_ENV):
            patch.delenv(name, raising=False)
        for name, value in openbao.env.items():
            patch.setenv(name, value)
        yield openbao


@pytest.fixture(scope="module")
def typed_keys(bao: OpenBao) -> dict[str, str]:
    """One transit key per supported type, made through dssesign's create_key."""
    names = {}
    for key_type in KEY_TYPES:
        name = f"lib-{key_type}"
        vault.create_key(f"hashivault://{name}", key_type)
        names[key_type] = name
    return names


# --------------------------------------------------------------------------- no server needed


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("hashivault://attest", VaultRef("attest")),
        ("hashivault://attest?version=3", VaultRef("attest", 3)),
        ("HASHIVAULT://a.b_c-d", VaultRef("a.b_c-d")),
        ("hashivault://k?allow-exportable=true", VaultRef("k", None, True)),
    ],
)
def test_parse_reference(ref: str, expected: VaultRef) -> None:
    assert parse_reference(ref) == expected
    assert expected.describe(7).endswith("?version=7")


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("hashivault://", "names no key"),
        ("hashivault://a/b", "not a transit key name"),
        ("hashivault://../sys", "not a transit key name"),
        ("hashivault://k?version=0", "positive integer"),
        ("hashivault://k?version=x", "positive integer"),
        ("hashivault://k?version=1&version=2", "given twice"),
        ("hashivault://k?token=s.abc", "unknown query parameter 'token'"),
        ("awskms://k", "not a hashivault://"),
    ],
)
def test_bad_references_are_config_errors(ref: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("?", r"\?").replace(".", r"\.")):
        parse_reference(ref)


def test_config_from_environment(tmp_path: Path) -> None:
    base = {"HOME": str(tmp_path)}
    with pytest.raises(ConfigError, match="VAULT_ADDR"):
        VaultConfig.from_env(base)
    with pytest.raises(ConfigError, match="VAULT_TOKEN"):
        VaultConfig.from_env({**base, "VAULT_ADDR": "http://127.0.0.1:1"})
    with pytest.raises(ConfigError, match="http"):
        VaultConfig.from_env({**base, "VAULT_ADDR": "127.0.0.1:8200", "VAULT_TOKEN": "t"})

    bao_env = {**base, "BAO_ADDR": "https://bao:8200/", "BAO_TOKEN": "secret-bao-token"}
    config = VaultConfig.from_env(bao_env)
    assert (config.address, config.token, config.mount) == (
        "https://bao:8200",
        "secret-bao-token",
        "transit",
    )
    assert config.timeout == vault.DEFAULT_TIMEOUT and config.verify is True
    assert "secret-bao-token" not in repr(config)

    # cosign's variable, then ours (ours wins); the token file `vault login` writes.
    (tmp_path / ".vault-token").write_text("file-token\n")
    config = VaultConfig.from_env(
        {
            **base,
            "VAULT_ADDR": "http://v:8200",
            "TRANSIT_SECRET_ENGINE_PATH": "/cosign-transit/",
            "VAULT_NAMESPACE": "team-a",
            "DSSESIGN_VAULT_TIMEOUT": "2.5",
        }
    )
    assert (config.token, config.mount, config.namespace, config.timeout) == (
        "file-token",
        "cosign-transit",
        "team-a",
        2.5,
    )
    ours = VaultConfig.from_env(
        {**bao_env, "TRANSIT_SECRET_ENGINE_PATH": "a", "DSSESIGN_VAULT_TRANSIT_PATH": "b/c"}
    )
    assert ours.mount == "b/c"

    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a request")
    assert VaultConfig.from_env({**bao_env, "VAULT_CACERT": str(ca)}).verify == str(ca)
    with pytest.raises(ConfigError, match="VAULT_CACERT"):
        VaultConfig.from_env({**bao_env, "VAULT_CACERT": str(tmp_path / "missing.pem")})
    for bad in ("0", "-1", "abc", "601"):
        with pytest.raises(ConfigError, match="DSSESIGN_VAULT_TIMEOUT"):
            VaultConfig.from_env({**bao_env, "DSSESIGN_VAULT_TIMEOUT": bad})
    with pytest.raises(ConfigError, match="mount path"):
        VaultConfig.from_env({**bao_env, "DSSESIGN_VAULT_TRANSIT_PATH": "a/../b"})


def test_importing_the_profile_does_not_import_hvac() -> None:
    code = (
        "import sys; from dssesign.sign.signer import _ensure_builtin_profiles as e; e(); "
        "print(sorted(m for m in ('hvac', 'requests') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


def test_missing_hvac_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hvac", None)  # makes `import hvac` raise ImportError
    config = VaultConfig(address="http://127.0.0.1:1", token="t" * 10)
    with pytest.raises(ConfigError, match=r"pip install 'dssesign\[vault\]'"):
        vault.load("hashivault://k", config=config)


def test_unsupported_key_type_names() -> None:
    assert vault.normalize_key_type("RSA-PSS-3072") == "rsa-3072"
    for bad in ("aes256-gcm96", "rsa-2048", "ecdsa-p521", "hmac"):
        with pytest.raises(ConfigError, match="unsupported transit key type"):
            vault.normalize_key_type(bad)


# --------------------------------------------------------------------------- against OpenBao


@pytest.mark.parametrize("key_type", list(KEY_TYPES))
def test_each_key_type_signs_large_payloads_that_verify(
    bao: OpenBao, typed_keys: dict[str, str], key_type: str
) -> None:
    name = typed_keys[key_type]
    info = bao.client().secrets.transit.read_key(name)["data"]
    assert info["exportable"] is False and info["allow_plaintext_backup"] is False

    signer = load_signer(f"hashivault://{name}")
    assert isinstance(signer, vault.VaultSigner)
    assert signer.algorithm is KEY_TYPES[key_type]
    assert signer.version == 1 and signer.reference == f"hashivault://{name}?version=1"
    assert signer.keyid == hashlib.sha256(signer.public_key.spki_der).hexdigest()
    assert not getattr(signer, "in_process", False)

    payload = _statement_payload()
    assert len(payload) > 4096
    message = pae(PAYLOAD_TYPE, payload)
    signature = signer.sign(message)
    _pyca_verify(signer.public_key.key, signature, message, key_type)
    if key_type == "ed25519":
        assert len(signature) == 64

    envelope = MultiProfileSigner([signer]).sign(payload, PAYLOAD_TYPE)
    result = verify(envelope.to_json(), _root(signer.public_key))
    assert [k.keyid for k in result.keys_counted] == [signer.keyid]


def test_rotation_latest_and_pinned_versions(bao: OpenBao) -> None:
    name = "lib-rotating"
    _key, first = vault.create_key(f"hashivault://{name}", "ecdsa-p256")
    v1 = load_signer(f"hashivault://{name}")
    assert v1.keyid == first.keyid
    bao.client().secrets.transit.rotate_key(name)

    latest = load_signer(f"hashivault://{name}")
    pinned = load_signer(f"hashivault://{name}?version=1")
    assert isinstance(latest, vault.VaultSigner) and isinstance(pinned, vault.VaultSigner)
    assert latest.version == 2 and pinned.version == 1
    assert latest.keyid != pinned.keyid and pinned.keyid == first.keyid
    # A signer loaded before the rotation keeps its version (its keyid stays true).
    assert isinstance(v1, vault.VaultSigner) and v1.version == 1

    message = pae(PAYLOAD_TYPE, b"{}")
    for signer in (latest, pinned, v1):
        assert signer.public_key.verify(signer.sign(message), message)
    assert not pinned.public_key.verify(latest.sign(message), message)

    _k, version, public = vault.read_public_key(f"hashivault://{name}")
    assert (version, public.keyid) == (2, latest.keyid)
    _k, old_version, old_public = vault.read_public_key(f"hashivault://{name}?version=1")
    assert (old_version, old_public.keyid) == (1, first.keyid)

    with pytest.raises(ConfigError, match="has no version 3"):
        load_signer(f"hashivault://{name}?version=3")
    # Both versions' public keys can be pinned; each version's signature counts as its own key.
    envelope = MultiProfileSigner([latest, pinned]).sign(_statement_payload(10), PAYLOAD_TYPE)
    result = verify(envelope.to_json(), _root(first, public, threshold=2))
    assert {k.keyid for k in result.keys_counted} == {latest.keyid, pinned.keyid}


def test_signature_from_another_version_is_refused(bao: OpenBao) -> None:
    name = "lib-swapped"
    vault.create_key(f"hashivault://{name}", "ed25519")
    bao.client().secrets.transit.rotate_key(name)
    signer = vault.load(f"hashivault://{name}?version=2")
    real_sign = vault.TransitClient.sign

    def sign_with_v1(
        self: vault.TransitClient, key: str, version: int, algorithm: Any, data: bytes
    ) -> tuple[int, bytes]:
        return real_sign(self, key, 1, algorithm, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vault.TransitClient, "sign", sign_with_v1)
        with pytest.raises(SigningError, match="signed with version 1, expected 2"):
            signer.sign(b"data")
    assert signer.public_key.verify(signer.sign(b"data"), b"data")


def test_parse_signature_rejects_malformed_answers() -> None:
    good = base64.b64encode(b"\x01" * 64).decode()
    assert vault._parse_signature({"data": {"signature": f"vault:v12:{good}"}}, "k") == (
        12,
        b"\x01" * 64,
    )
    for bad in ("v1:" + good, "vault:vx:" + good, "vault:v1:", "vault:v1:@@", None):
        with pytest.raises(SigningError):
            vault._parse_signature({"data": {"signature": bad}}, "k")


def test_software_and_vault_signatures_in_one_envelope(
    bao: OpenBao, typed_keys: dict[str, str]
) -> None:
    software = signer_for("ecdsa-p256")
    transit = load_signer(f"hashivault://{typed_keys['ed25519']}")
    payload = _statement_payload(100)
    envelope = MultiProfileSigner([software, transit]).sign(payload, PAYLOAD_TYPE)
    assert len(envelope.signatures) == 2
    result = verify(envelope.to_json(), _root(software.public_key, transit.public_key, threshold=2))
    assert {k.keyid for k in result.keys_counted} == {software.keyid, transit.keyid}


def test_eight_threads_share_one_signer(bao: OpenBao, typed_keys: dict[str, str]) -> None:
    signer = load_signer(f"hashivault://{typed_keys['ecdsa-p256']}")
    messages = [pae(PAYLOAD_TYPE, f'{{"n":{i}}}'.encode()) for i in range(400)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        signatures = list(pool.map(signer.sign, messages))
    assert len(signatures) == 400
    assert all(signer.public_key.verify(s, m) for s, m in zip(signatures, messages, strict=True))


def test_expected_keyid_is_enforced(bao: OpenBao, typed_keys: dict[str, str]) -> None:
    ref = f"hashivault://{typed_keys['ecdsa-p384']}"
    keyid = load_signer(ref).keyid
    assert load_signer(ref, SignerOptions(expected_keyid=keyid)).keyid == keyid
    with pytest.raises(ConfigError, match="expected"):
        load_signer(ref, SignerOptions(expected_keyid="00" * 32))


def test_unknown_key_and_wrong_mount(bao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="no such key") as caught:
        load_signer("hashivault://no-such-key")
    assert "vault create-key --uri hashivault://no-such-key" in str(caught.value)
    monkeypatch.setenv("DSSESIGN_VAULT_TRANSIT_PATH", "not-mounted")
    with pytest.raises(ConfigError, match="not-mounted"):
        load_signer("hashivault://no-such-key")


def test_create_key_refuses_existing_name(bao: OpenBao, typed_keys: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="already exists"):
        vault.create_key(f"hashivault://{typed_keys['ed25519']}", "ed25519")
    with pytest.raises(ConfigError, match="no versions yet"):
        vault.create_key("hashivault://fresh?version=1", "ed25519")


def test_non_signing_and_exportable_keys_are_refused(bao: OpenBao) -> None:
    transit = bao.client().secrets.transit
    transit.create_key("lib-aes", key_type="aes256-gcm96")
    with pytest.raises(ConfigError, match="aes256-gcm96, which dssesign does not sign with"):
        load_signer("hashivault://lib-aes")
    transit.create_key("lib-rsa2048", key_type="rsa-2048")
    with pytest.raises(ConfigError, match="rsa-2048"):
        load_signer("hashivault://lib-rsa2048")
    transit.create_key("lib-exportable", key_type="ecdsa-p256", exportable=True)
    with pytest.raises(ConfigError, match="exportable"):
        load_signer("hashivault://lib-exportable")
    signer = load_signer("hashivault://lib-exportable?allow-exportable=true")
    assert signer.public_key.verify(signer.sign(b"x"), b"x")


def test_bad_token_never_leaks(bao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "wrong-token-" + "7" * 20
    monkeypatch.setenv("VAULT_TOKEN", wrong)
    with pytest.raises(ConfigError, match="permission denied") as caught:
        load_signer("hashivault://lib-ed25519")
    assert wrong not in str(caught.value) and bao.token not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_documented_minimal_policy_signs_and_read_only_does_not(
    bao: OpenBao, typed_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = typed_keys["ecdsa-p256"]
    client = bao.client()
    client.sys.create_or_update_policy(
        name="sign-one-key",
        policy=f'path "transit/keys/{name}" {{ capabilities = ["read"] }}\n'
        f'path "transit/sign/{name}" {{ capabilities = ["update"] }}',
    )
    client.sys.create_or_update_policy(
        name="read-only-transit", policy='path "transit/keys/*" { capabilities = ["read"] }'
    )
    signing = client.auth.token.create(policies=["sign-one-key"], ttl="10m")["auth"]
    monkeypatch.setenv("VAULT_TOKEN", signing["client_token"])
    signer = load_signer(f"hashivault://{name}")
    assert signer.public_key.verify(signer.sign(b"data"), b"data")
    with pytest.raises(ConfigError, match="permission denied"):
        load_signer(f"hashivault://{typed_keys['ed25519']}")

    token = client.auth.token.create(policies=["read-only-transit"], ttl="10m")["auth"]
    monkeypatch.setenv("VAULT_TOKEN", token["client_token"])
    signer = load_signer(f"hashivault://{name}")
    with pytest.raises(SigningError, match="permission denied") as caught:
        signer.sign(b"data")
    assert token["client_token"] not in str(caught.value)
    # Through MultiProfileSigner the failure is one reason in one SigningError.
    with pytest.raises(SigningError, match="permission denied"):
        MultiProfileSigner([signer]).sign(b"{}", PAYLOAD_TYPE)


def test_min_encryption_version_stops_an_old_version(bao: OpenBao) -> None:
    name = "lib-retired"
    vault.create_key(f"hashivault://{name}", "ecdsa-p384")
    transit = bao.client().secrets.transit
    transit.rotate_key(name)
    old = load_signer(f"hashivault://{name}?version=1")
    transit.update_key_configuration(name, min_encryption_version=2)
    with pytest.raises(SigningError, match="less than the minimum encryption key version"):
        old.sign(b"data")
    new = load_signer(f"hashivault://{name}")
    assert new.public_key.verify(new.sign(b"data"), b"data")
    # The retired version's public key stays readable, for verifying old envelopes.
    _key, version, public = vault.read_public_key(f"hashivault://{name}?version=1")
    assert (version, public.keyid) == (1, old.keyid)


def test_namespace(bao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> None:
    bao.client().sys.create_namespace("team-a")
    hvac = importlib.import_module("hvac")
    scoped = hvac.Client(url=bao.address, token=bao.token, namespace="team-a")
    scoped.sys.enable_secrets_engine("transit", path="transit")
    monkeypatch.setenv("VAULT_NAMESPACE", "team-a")
    _key, public = vault.create_key("hashivault://ns-key", "ed25519")
    signer = load_signer("hashivault://ns-key")
    assert signer.keyid == public.keyid
    assert signer.public_key.verify(signer.sign(b"data"), b"data")
    assert scoped.secrets.transit.read_key("ns-key")["data"]["type"] == "ed25519"
    monkeypatch.delenv("VAULT_NAMESPACE")
    with pytest.raises(ConfigError, match="no such key"):
        load_signer("hashivault://ns-key")


def test_tls_server_with_vault_cacert(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_openbao(tmp_path_factory, tls=True) as server:
        assert server.address.startswith("https://") and server.ca_cert is not None
        for name in (*vault.ADDR_ENVS, *vault.TOKEN_ENVS, *vault.CACERT_ENVS):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HOME", str(server.home))
        monkeypatch.setenv("BAO_ADDR", server.address)
        monkeypatch.setenv("BAO_TOKEN", server.token)
        with pytest.raises(ConfigError, match="TLS verification failed"):
            vault.create_key("hashivault://tls-key", "ecdsa-p256")
        monkeypatch.setenv("VAULT_CACERT", str(server.ca_cert))
        vault.create_key("hashivault://tls-key", "ecdsa-p256")
        signer = load_signer("hashivault://tls-key")
        assert signer.public_key.verify(signer.sign(b"data"), b"data")


def test_key_deleted_after_loading(bao: OpenBao) -> None:
    name = "lib-deleted"
    vault.create_key(f"hashivault://{name}", "ecdsa-p256")
    signer = load_signer(f"hashivault://{name}")
    transit = bao.client().secrets.transit
    transit.update_key_configuration(name, deletion_allowed=True)
    transit.delete_key(name)
    with pytest.raises(SigningError, match="signing key not found"):
        signer.sign(b"data")


def test_unreachable_server_fails_fast(bao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(ConfigError, match="cannot connect: Connection refused"):
        load_signer("hashivault://lib-ed25519")
    assert time.monotonic() - start < 5


def test_silent_server_times_out(bao: OpenBao, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts connections and never answers: the configured timeout holds."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("DSSESIGN_VAULT_TIMEOUT", "0.5")
        start = time.monotonic()
        with pytest.raises(ConfigError, match=r"no answer within 0\.5s"):
            load_signer("hashivault://lib-ed25519")
        assert time.monotonic() - start < 3


def test_timeout_applies_to_signing_too(bao: OpenBao, typed_keys: dict[str, str]) -> None:
    name = typed_keys["ed25519"]
    key = vault.TransitClient(VaultConfig(address=bao.address, token=bao.token)).read_key(name)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        config = VaultConfig(
            address=f"http://127.0.0.1:{silent.getsockname()[1]}", token=bao.token, timeout=0.3
        )
        stuck = vault.VaultSigner(
            VaultRef(name), client=vault.TransitClient(config), key=key, version=1
        )
        start = time.monotonic()
        with pytest.raises(SigningError, match=r"no answer within 0\.3s") as caught:
            stuck.sign(b"data")
        assert time.monotonic() - start < 3
    assert bao.token not in str(caught.value)


class _BusyProxy:
    """Answers the first `busy` requests with 503, then forwards to the real server."""

    def __init__(self, upstream: str, busy: int) -> None:
        self.upstream, self.busy, self.refused = upstream, busy, 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                del format, args

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.refused < proxy.busy:
                    proxy.refused += 1
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"errors":["Vault is sealed"]}')
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower().startswith("x-")}
                forwarded = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=body or None,
                    method=self.command,
                    headers={**headers, "Content-Type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(forwarded, timeout=10) as answer:
                        status, data = answer.status, answer.read()
                except urllib.error.HTTPError as error:
                    status, data = error.code, error.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_busy_answers_are_retried_then_reported(bao: OpenBao, typed_keys: dict[str, str]) -> None:
    name = typed_keys["ecdsa-p256"]
    proxy = _BusyProxy(bao.address, busy=1)
    try:
        config = VaultConfig(address=proxy.address, token=bao.token)
        signer = vault.load(f"hashivault://{name}", config=config)  # after one 503
        assert proxy.refused == 1
        proxy.busy += 2
        signature = signer.sign(b"data")  # after two more
        assert proxy.refused == 3 and signer.public_key.verify(signature, b"data")
        proxy.busy += 100
        start = time.monotonic()
        with pytest.raises(SigningError, match="VaultDown: Vault is sealed") as caught:
            signer.sign(b"data")
        assert proxy.refused == 7  # the first try and 3 retries
        assert time.monotonic() - start < 5
        assert bao.token not in str(caught.value)
    finally:
        proxy.close()
