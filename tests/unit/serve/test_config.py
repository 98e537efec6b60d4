"""The service config: a full file loads with its defaults and resolved paths; each mistake is a
ConfigError that names the file, the table and field, and never a secret's value."""

from __future__ import annotations

from pathlib import Path

import pytest

from dssesign.errors import ConfigError
from dssesign.serve.config import (
    DEFAULT_ALGORITHMS,
    MAX_CONFIG_BYTES,
    KeyConfig,
    ServiceConfig,
    load_config,
)

SECRET = "s3cr3t-Pa55-do-not-print"

AUTH = """\
[auth]
issuer = "https://issuer.example"
audience = "dssesign"
jwks_file = "jwks.json"
"""
KEYS = """\
[[keys]]
name = "release"
ref = "release.key"
password_env = "RELEASE_KEY_PASSWORD"
"""
TENANTS = """\
[[tenants]]
name = "team-a"
keys = ["release"]
rate_per_minute = 60
"""
SERVER = """\
[server]
trust_root = "trust-root.json"
audit_log = "audit.log"
"""
MINIMAL = AUTH + KEYS + TENANTS + SERVER

FULL = """\
[auth]
issuer = "https://issuer.example"
audience = "dssesign"
jwks_file = "conf.d/jwks.json"
algorithms = ["ES256", "PS256"]
tenant_claim = "org"
leeway_s = 5

[[keys]]
name = "release"
ref = "keys/release.key"
password_env = "RELEASE_KEY_PASSWORD"
timeout_s = 2.5

[[keys]]
name = "hsm"
ref = "pkcs11:token=signing;object=release?module-path=/usr/lib/softhsm/libsofthsm2.so"

[[keys]]
name = "kms"
ref = "awskms://alias/release"
password_file = "secrets/kms.pass"

[[keys]]
name = "abs"
ref = "/etc/dssesign/abs.key"

[[tsa]]
name = "corp"
url = "http://tsa.example/"

[[tenants]]
name = "team-a"
keys = ["release", "hsm"]
rate_per_minute = 60

[[tenants]]
name = "team-b"
keys = ["kms"]
rate_per_minute = 5

[server]
max_body_bytes = 65536
max_inflight = 8
unauthenticated_rate_per_minute = 10
trust_root = "trust-root.json"
tsa_trust_root = "/etc/dssesign/tsa-root.json"
audit_log = "audit/audit.log"
audit_key = "audit.key"
redis_url = "redis://127.0.0.1:6379/0"
redis_password_env = "REDIS_PASSWORD"
"""


def _write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "serve.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_config_loads_with_paths_against_its_own_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "etc"
    path = _write(conf, FULL)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths follow the file, not the working directory
    config = load_config(path)
    assert isinstance(config, ServiceConfig)
    assert config.directory == conf
    assert config.auth.jwks_file == conf / "conf.d" / "jwks.json"
    assert config.auth.algorithms == ("ES256", "PS256")
    assert (config.auth.tenant_claim, config.auth.leeway_s) == ("org", 5)
    release, hsm, kms, absolute = config.keys
    assert release.ref == str(conf / "keys" / "release.key")
    assert (release.password_env, release.password_file, release.timeout_s) == (
        "RELEASE_KEY_PASSWORD",
        None,
        2.5,
    )
    assert hsm.ref.startswith("pkcs11:token=signing;")  # a scheme is kept as written
    assert hsm.timeout_s == 10.0
    assert kms.ref == "awskms://alias/release"
    assert kms.password_file == conf / "secrets" / "kms.pass"
    assert absolute.ref == "/etc/dssesign/abs.key"
    assert [(t.name, t.url) for t in config.tsas] == [("corp", "http://tsa.example/")]
    assert [(t.name, t.keys, t.rate_per_minute) for t in config.tenants] == [
        ("team-a", ("release", "hsm"), 60),
        ("team-b", ("kms",), 5),
    ]
    server = config.server
    assert (server.max_body_bytes, server.max_inflight) == (65536, 8)
    assert server.unauthenticated_rate_per_minute == 10
    assert server.trust_root == conf / "trust-root.json"
    assert server.tsa_trust_root == Path("/etc/dssesign/tsa-root.json")
    assert server.audit_log == conf / "audit" / "audit.log"
    assert server.audit_key == str(conf / "audit.key")
    assert server.redis_url == "redis://127.0.0.1:6379/0"
    assert config.key("hsm") is hsm
    assert config.key("nope") is None
    tenant = config.tenant("team-b")
    assert tenant is not None and tenant.keys == ("kms",)
    assert config.tenant("team-c") is None


def test_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, MINIMAL))
    assert config.auth.algorithms == DEFAULT_ALGORITHMS == ("ES256", "RS256", "EdDSA")
    assert (config.auth.tenant_claim, config.auth.leeway_s) == ("tenant", 30)
    assert config.tsas == ()
    server = config.server
    assert (server.max_body_bytes, server.max_inflight) == (1048576, 64)
    assert server.unauthenticated_rate_per_minute == 30
    assert server.tsa_trust_root == server.trust_root == tmp_path / "trust-root.json"
    assert (server.audit_key, server.redis_url, server.redis_password_env) == (None, None, None)


def _replace(old: str, new: str) -> str:
    assert old in MINIMAL, old
    return MINIMAL.replace(old, new)


# (config text, what the message must say): each a mistake an operator makes.
MISTAKES = {
    "unknown top-level table": (MINIMAL + "[serverr]\n", "the top level: unknown key 'serverr'"),
    "misspelt auth field": (
        _replace('audience = "dssesign"', 'audiance = "dssesign"'),
        "auth: unknown key 'audiance'",
    ),
    "missing auth": (KEYS + TENANTS + SERVER, "[auth]: missing"),
    "missing issuer": (_replace('issuer = "https://issuer.example"\n', ""), "auth.issuer: missing"),
    "empty audience": (_replace('audience = "dssesign"', 'audience = ""'), "auth.audience"),
    "HS256 allowed": (
        _replace('jwks_file = "jwks.json"', 'jwks_file = "j"\nalgorithms = ["ES256", "HS256"]'),
        "'HS256' is refused: HMAC",
    ),
    "none allowed": (
        _replace('jwks_file = "jwks.json"', 'jwks_file = "j"\nalgorithms = ["none"]'),
        "'none' is refused",
    ),
    "unknown algorithm": (
        _replace('jwks_file = "jwks.json"', 'jwks_file = "j"\nalgorithms = ["ES512"]'),
        "auth.algorithms: 'ES512' is refused: not one of",
    ),
    "no algorithm": (
        _replace('jwks_file = "jwks.json"', 'jwks_file = "j"\nalgorithms = []'),
        "auth.algorithms: empty",
    ),
    "huge leeway": (
        _replace('jwks_file = "jwks.json"', 'jwks_file = "j"\nleeway_s = 3600'),
        "auth.leeway_s: at most 300",
    ),
    "negative leeway": (
        _replace('jwks_file = "jwks.json"', 'jwks_file = "j"\nleeway_s = -1'),
        "auth.leeway_s: must be at least 0",
    ),
    "no keys": (AUTH + TENANTS + SERVER, "[[keys]]: missing"),
    "keys not an array": ('keys = "release"\n' + AUTH + TENANTS + SERVER, "keys: must be an array"),
    "key without ref": (_replace('ref = "release.key"\n', ""), "keys[0] (release).ref: missing"),
    "key name with a slash": (
        _replace('name = "release"', 'name = "re/lease"'),
        "keys[0].name: 1 to 64",
    ),
    "duplicate key": (
        MINIMAL + '[[keys]]\nname = "release"\nref = "other.key"\n',
        "keys[1].name: 'release' is used twice",
    ),
    "both password sources": (
        _replace(
            'password_env = "RELEASE_KEY_PASSWORD"', 'password_env = "A"\npassword_file = "f"'
        ),
        "keys[0] (release): password_env and password_file are exclusive",
    ),
    "bad env name": (
        _replace('password_env = "RELEASE_KEY_PASSWORD"', 'password_env = "A-B"'),
        "keys[0] (release).password_env: not an environment variable name",
    ),
    "timeout zero": (
        _replace('ref = "release.key"', 'ref = "release.key"\ntimeout_s = 0'),
        "keys[0] (release).timeout_s: must be more than 0",
    ),
    "keyless key": (
        _replace('ref = "release.key"', 'ref = "keyless"'),
        "keyless signing needs an interactive identity token",
    ),
    "tenant names an unknown key": (
        _replace('keys = ["release"]', 'keys = ["release", "relase"]'),
        "tenants[0] (team-a).keys: 'relase' is not a configured key",
    ),
    "tenant without keys": (_replace('keys = ["release"]', "keys = []"), "keys: empty"),
    "tenant names a key twice": (
        _replace('keys = ["release"]', 'keys = ["release", "release"]'),
        "tenants[0] (team-a).keys: a name is given twice",
    ),
    "zero rate": (
        _replace("rate_per_minute = 60", "rate_per_minute = 0"),
        "tenants[0] (team-a).rate_per_minute: must be at least 1",
    ),
    "boolean rate": (
        _replace("rate_per_minute = 60", "rate_per_minute = true"),
        "rate_per_minute: must be a whole number",
    ),
    "fractional rate": (
        _replace("rate_per_minute = 60", "rate_per_minute = 1.5"),
        "rate_per_minute: must be a whole number",
    ),
    "duplicate tenant": (MINIMAL.replace(TENANTS, TENANTS * 2), "tenants[1].name: 'team-a'"),
    "zero inflight": (
        _replace('audit_log = "audit.log"', 'audit_log = "a"\nmax_inflight = 0'),
        "server.max_inflight: must be at least 1",
    ),
    "tsa over ftp": (
        MINIMAL + '[[tsa]]\nname = "corp"\nurl = "ftp://tsa.example/"\n',
        "tsa[0] (corp).url: the scheme must be one of http, https",
    ),
    "tsa without host": (
        MINIMAL + '[[tsa]]\nname = "corp"\nurl = "http:///x"\n',
        "tsa[0] (corp).url: names no host",
    ),
    "redis over http": (
        _replace('audit_log = "audit.log"', 'audit_log = "a"\nredis_url = "http://r:6379"'),
        "server.redis_url: the scheme must be one of redis, rediss, unix",
    ),
    "redis password env without url": (
        _replace('audit_log = "audit.log"', 'audit_log = "a"\nredis_password_env = "P"'),
        "server.redis_password_env: set without redis_url",
    ),
    "missing trust root": (
        _replace('trust_root = "trust-root.json"\n', ""),
        "server.trust_root: missing",
    ),
    "server not a table": ('server = "x"\n' + AUTH + KEYS + TENANTS, "[server]: must be a table"),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_each_mistake_is_a_config_error_naming_the_file_and_field(
    tmp_path: Path, case: str
) -> None:
    text, expected = MISTAKES[case]
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"service config {path}: "), message
    assert expected in message, message


@pytest.mark.parametrize(
    ("field", "table"),
    [("password", "keys"), ("pin", "keys"), ("passphrase", "keys"), ("redis_password", "server")],
)
def test_a_secret_in_the_file_is_refused_with_the_reason_and_never_echoed(
    tmp_path: Path, field: str, table: str
) -> None:
    anchor = 'ref = "release.key"' if table == "keys" else 'audit_log = "audit.log"'
    text = _replace(anchor, f'{anchor}\n{field} = "{SECRET}"')
    if field == "redis_password":
        # the exact name is refused as a secret even though only its _env form is known
        text = text.replace(
            f'{field} = "{SECRET}"', f'redis_url = "redis://r"\n{field} = "{SECRET}"'
        )
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    message = str(caught.value)
    assert f".{field}: refused: a secret does not belong in the config file" in message
    hint = "(password_env, password_file)" if table == "keys" else "(redis_password_env)"
    assert message.endswith(hint), message
    assert SECRET not in message


def test_a_password_in_the_redis_url_is_refused_and_never_echoed(tmp_path: Path) -> None:
    text = _replace(
        'audit_log = "audit.log"', f'audit_log = "a"\nredis_url = "redis://:{SECRET}@r:6379/0"'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    assert "server.redis_url: holds a password" in str(caught.value)
    assert "redis_password_env" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_bad_value_is_not_echoed(tmp_path: Path) -> None:
    """A ref is the likeliest place for a pasted secret: a mistake there does not show it."""
    text = _replace('ref = "release.key"', "ref = 12345678")
    with pytest.raises(
        ConfigError, match=r"keys\[0\] \(release\)\.ref: must be a non-empty string"
    ):
        load_config(_write(tmp_path, text))


def test_unreadable_invalid_and_oversize_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 1"):
        load_config(_write(tmp_path / "a", "[auth\n"))
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        path = tmp_path / "latin1.toml"
        path.write_bytes(b'[auth]\nissuer = "caf\xe9"\n')
        load_config(path)
    padded = MINIMAL + "#" * (MAX_CONFIG_BYTES - len(MINIMAL) + 1)
    with pytest.raises(ConfigError, match=f"larger than the limit of {MAX_CONFIG_BYTES} bytes"):
        load_config(_write(tmp_path / "b", padded))
    # one byte less is within the bound: it is the size that was refused
    load_config(_write(tmp_path / "c", padded[:-1]))


def _key(**changes: object) -> KeyConfig:
    fields: dict[str, object] = {"name": "release", "ref": "/k"} | changes
    return KeyConfig(**fields)  # type: ignore[arg-type]


def test_password_from_the_environment_is_read_at_use_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = _key(password_env="DSSESIGN_TEST_PASSWORD")
    monkeypatch.setenv("DSSESIGN_TEST_PASSWORD", SECRET)
    assert key.password() == SECRET.encode()
    monkeypatch.setenv("DSSESIGN_TEST_PASSWORD", "rotated")
    assert key.password() == b"rotated"  # nothing cached
    assert SECRET not in repr(key) and "rotated" not in repr(key)
    monkeypatch.setenv("DSSESIGN_TEST_PASSWORD", "")
    with pytest.raises(
        ConfigError, match=r"keys\.release: environment variable \w+ is not set or empty"
    ):
        key.password()
    monkeypatch.delenv("DSSESIGN_TEST_PASSWORD")
    with pytest.raises(ConfigError, match="DSSESIGN_TEST_PASSWORD is not set or empty"):
        key.password()


def test_password_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_text(SECRET + "\n")
    assert _key(password_file=path).password() == SECRET.encode()  # one newline stripped
    path.write_text("")
    with pytest.raises(ConfigError, match=f"password file {path} is empty"):
        _key(password_file=path).password()
    path.write_text(SECRET * 1000)
    with pytest.raises(ConfigError) as caught:
        _key(password_file=path).password()
    assert "larger than the limit" in str(caught.value) and SECRET not in str(caught.value)
    with pytest.raises(
        ConfigError, match=f"keys.release: password file {tmp_path / 'no'}: no such"
    ):
        _key(password_file=tmp_path / "no").password()


def test_no_password_configured_is_none() -> None:
    assert _key().password() is None


def test_redis_password_is_read_from_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _replace(
        'audit_log = "audit.log"',
        'audit_log = "a"\nredis_url = "redis://r/0"\nredis_password_env = "DSSESIGN_TEST_REDIS"',
    )
    server = load_config(_write(tmp_path, text)).server
    monkeypatch.delenv("DSSESIGN_TEST_REDIS", raising=False)
    with pytest.raises(ConfigError, match="DSSESIGN_TEST_REDIS is not set or empty"):
        server.redis_password()
    monkeypatch.setenv("DSSESIGN_TEST_REDIS", SECRET)
    assert server.redis_password() == SECRET
    assert SECRET not in repr(server)
