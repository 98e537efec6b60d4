"""The `dssesign serve` configuration: one TOML file, checked whole before the service starts.

Every problem is a ConfigError that names the table and field (``keys[1].timeout_s``) and what
is wrong, never the value of a field that may hold a secret. Unknown keys are refused, so a
misspelt option fails loudly instead of silently taking its default. Secrets are never in the
file: a key names the environment variable or file its passphrase is in, read at use time.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from .._internal.fileio import read_bounded
from ..errors import ConfigError, InputError

#: The configuration file is small; a bigger one is a mistake (or an attack on the parser).
MAX_CONFIG_BYTES: Final = 1024 * 1024
#: A passphrase file holds one line.
MAX_SECRET_FILE_BYTES: Final = 4096
#: Token signature algorithms the service may accept: asymmetric only, so the service holds
#: nothing it could mint tokens with.
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {"ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
DEFAULT_ALGORITHMS: Final = ("ES256", "RS256", "EdDSA")
MAX_LEEWAY_S: Final = 300
#: Field names (or their last word: `redis_password`) that would hold a secret: refused with
#: the reason, not as merely unknown.
_SECRET_FIELDS: Final = frozenset({"password", "passphrase", "pin", "secret", "token"})
#: Key and TSA names appear in requests and URLs: a plain identifier.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_REQUIRED: Final = object()


class _Invalid(Exception):
    """One problem, located (``auth.issuer: ...``); load_config adds the file's name."""


@dataclass(frozen=True)
class AuthConfig:
    """How bearer tokens are checked: offline, against a JWKS file, asymmetric algorithms only."""

    issuer: str
    audience: str
    jwks_file: Path
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    tenant_claim: str = "tenant"
    leeway_s: int = 30


@dataclass(frozen=True)
class KeyConfig:
    """A signing key: its reference and where its passphrase lives (never the passphrase)."""

    name: str
    #: A dssesign key reference; a plain path is already resolved against the config directory.
    ref: str
    password_env: str | None = None
    password_file: Path | None = None
    timeout_s: float = 10.0

    def password(self) -> bytes | None:
        """Read the passphrase now (it may rotate); None when the key has none configured.

        Errors name the variable or file, never its content.
        """
        where = f"keys.{self.name}"
        if self.password_env is not None:
            return _env_secret(where, self.password_env).encode("utf-8")
        if self.password_file is not None:
            try:
                data = read_bounded(
                    self.password_file, limit=MAX_SECRET_FILE_BYTES, what="password file"
                )
            except InputError as exc:  # names the file and the OS error, not the content
                raise ConfigError(f"{where}: {exc}") from None
            secret = data.removesuffix(b"\n").removesuffix(b"\r")
            if not secret:
                raise ConfigError(f"{where}: password file {self.password_file} is empty")
            return secret
        return None


@dataclass(frozen=True)
class TsaConfig:
    """An RFC 3161 timestamp authority the service may ask for a trusted signing time."""

    name: str
    url: str


@dataclass(frozen=True)
class TenantConfig:
    """A tenant (the token's tenant claim): the keys it may use and its request quota."""

    name: str
    keys: tuple[str, ...]
    #: Requests per minute; the bucket also holds this many, so a burst of that size passes.
    rate_per_minute: int


@dataclass(frozen=True)
class ServerConfig:
    """Limits, trust material and the audit log of the service itself."""

    trust_root: Path
    #: What the TSAs' tokens are checked against (the trust root unless set).
    tsa_trust_root: Path
    audit_log: Path
    max_body_bytes: int = 1024 * 1024
    max_inflight: int = 64
    #: Per client address, for requests without a valid token.
    unauthenticated_rate_per_minute: int = 30
    #: A key reference (plain paths resolved against the config directory).
    audit_key: str | None = None
    #: Quotas shared between replicas; None keeps them in each process's memory.
    redis_url: str | None = None
    #: The environment variable holding the Redis password (never in the URL).
    redis_password_env: str | None = None

    def redis_password(self) -> str | None:
        """The Redis password, read now from `redis_password_env`; None when not configured."""
        if self.redis_password_env is None:
            return None
        return _env_secret("server.redis_password_env", self.redis_password_env)


def _env_secret(where: str, name: str) -> str:
    """A secret from the environment, read at use time; errors name the variable only."""
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{where}: environment variable {name} is not set or empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # environ bytes that are not UTF-8 arrive as surrogates
        raise ConfigError(f"{where}: environment variable {name} is not valid UTF-8") from None
    return value


@dataclass(frozen=True)
class ServiceConfig:
    """The whole service configuration, as `load_config` checked it."""

    auth: AuthConfig
    keys: tuple[KeyConfig, ...]
    tsas: tuple[TsaConfig, ...]
    tenants: tuple[TenantConfig, ...]
    server: ServerConfig
    #: The config file's directory, which relative paths were resolved against.
    directory: Path

    def key(self, name: str) -> KeyConfig | None:
        """The key configured under `name`, if any."""
        return next((key for key in self.keys if key.name == name), None)

    def tenant(self, name: str) -> TenantConfig | None:
        """The tenant configured under `name`, if any."""
        return next((tenant for tenant in self.tenants if tenant.name == name), None)


def load_config(path: str | os.PathLike[str]) -> ServiceConfig:
    """Read and check the service configuration; ConfigError naming the field on any problem."""
    source = Path(path)
    try:
        data = read_bounded(source, limit=MAX_CONFIG_BYTES, what="service config")
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"service config {source}: not valid UTF-8") from None
    except tomllib.TOMLDecodeError as exc:  # says where (line, column), not what was there
        raise ConfigError(f"service config {source}: not valid TOML: {exc}") from None
    try:
        return _service(document, source.absolute().parent)
    except _Invalid as exc:
        raise ConfigError(f"service config {source}: {exc}") from None


def _service(document: dict[str, Any], directory: Path) -> ServiceConfig:
    _known("the top level", document, {"auth", "keys", "tsa", "tenants", "server"})
    keys = tuple(
        _key(f"keys[{i}]", table, directory)
        for i, table in enumerate(_array(document, "keys", required=True))
    )
    tsas = tuple(_tsa(f"tsa[{i}]", table) for i, table in enumerate(_array(document, "tsa")))
    tenants = tuple(
        _tenant(f"tenants[{i}]", table, {key.name for key in keys})
        for i, table in enumerate(_array(document, "tenants", required=True))
    )
    for what, items in (("keys", keys), ("tsa", tsas), ("tenants", tenants)):
        names = [item.name for item in items]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise _Invalid(f"{what}[{index}].name: {name[:64]!r} is used twice")
    return ServiceConfig(
        auth=_auth(_table(document, "auth"), directory),
        keys=keys,
        tsas=tsas,
        tenants=tenants,
        server=_server(_table(document, "server"), directory),
        directory=directory,
    )


def _auth(table: dict[str, Any], directory: Path) -> AuthConfig:
    where = "auth"
    _known(where, table, {"issuer", "audience", "jwks_file", "algorithms", "tenant_claim",
                          "leeway_s"})  # fmt: skip
    algorithms = tuple(_strings(where, table, "algorithms", list(DEFAULT_ALGORITHMS)))
    for algorithm in algorithms:
        why = ""
        if algorithm.upper().startswith("HS"):
            why = "HMAC tokens are checked with a shared secret, which lets the holder mint them"
        elif algorithm.lower() == "none":
            why = "an unsigned token proves nothing"
        elif algorithm not in ASYMMETRIC_ALGORITHMS:
            why = "not one of " + ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
        if why:
            raise _Invalid(f"{where}.algorithms: {algorithm[:16]!r} is refused: {why}")
    return AuthConfig(
        issuer=_str(where, table, "issuer"),
        audience=_str(where, table, "audience"),
        jwks_file=_path(where, table, "jwks_file", directory),
        algorithms=algorithms,
        tenant_claim=_str(where, table, "tenant_claim", "tenant"),
        # A larger clock skew keeps expired tokens valid for longer than anyone means it to.
        leeway_s=_int(where, table, "leeway_s", 30, minimum=0, maximum=MAX_LEEWAY_S),
    )


def _key(where: str, table: object, directory: Path) -> KeyConfig:
    table = _as_table(where, table)
    _known(where, table, {"name", "ref", "password_env", "password_file", "timeout_s"})
    name = _name(where, table)
    where = f"{where} ({name})"
    if "password_env" in table and "password_file" in table:
        raise _Invalid(f"{where}: password_env and password_file are exclusive; choose one")
    return KeyConfig(
        name=name,
        ref=_reference(where, _str(where, table, "ref"), directory),
        password_env=_env_name(where, table, "password_env"),
        password_file=_path(where, table, "password_file", directory, None),
        timeout_s=_seconds(where, table, "timeout_s", 10.0),
    )


def _tsa(where: str, table: object) -> TsaConfig:
    table = _as_table(where, table)
    _known(where, table, {"name", "url"})
    name = _name(where, table)
    url = _str(f"{where} ({name})", table, "url")
    _check_url(f"{where} ({name}).url", url, {"http", "https"})
    return TsaConfig(name=name, url=url)


def _tenant(where: str, table: object, key_names: set[str]) -> TenantConfig:
    table = _as_table(where, table)
    _known(where, table, {"name", "keys", "rate_per_minute"})
    name = _str(where, table, "name")
    if len(name) > 256 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise _Invalid(f"{where}.name: at most 256 characters, no control characters")
    where = f"{where} ({name[:64]})"
    keys = _strings(where, table, "keys", _REQUIRED)
    for key in keys:
        if key not in key_names:
            raise _Invalid(f"{where}.keys: {key[:64]!r} is not a configured key")
    return TenantConfig(
        name=name,
        keys=tuple(keys),
        rate_per_minute=_int(where, table, "rate_per_minute", _REQUIRED, minimum=1),
    )


def _server(table: dict[str, Any], directory: Path) -> ServerConfig:
    where = "server"
    _known(where, table, {"max_body_bytes", "max_inflight", "unauthenticated_rate_per_minute",
                          "trust_root", "tsa_trust_root", "audit_log", "audit_key", "redis_url",
                          "redis_password_env"})  # fmt: skip
    trust_root = _path(where, table, "trust_root", directory)
    redis_url = _str(where, table, "redis_url", None)
    if redis_url is not None:
        parts = _check_url(f"{where}.redis_url", redis_url, {"redis", "rediss", "unix"})
        if parts.password is not None:
            raise _Invalid(
                f"{where}.redis_url: holds a password; a secret does not belong in the config "
                "file: put it in an environment variable named by redis_password_env"
            )
    password_env = _env_name(where, table, "redis_password_env")
    if password_env is not None and redis_url is None:
        raise _Invalid(f"{where}.redis_password_env: set without redis_url")
    audit_key: str | None = _str(where, table, "audit_key", None)
    return ServerConfig(
        trust_root=trust_root,
        tsa_trust_root=_path(where, table, "tsa_trust_root", directory, trust_root),
        audit_log=_path(where, table, "audit_log", directory),
        max_body_bytes=_int(where, table, "max_body_bytes", 1024 * 1024, minimum=1),
        max_inflight=_int(where, table, "max_inflight", 64, minimum=1),
        unauthenticated_rate_per_minute=_int(
            where, table, "unauthenticated_rate_per_minute", 30, minimum=1
        ),
        audit_key=None if audit_key is None else _reference(where, audit_key, directory),
        redis_url=redis_url,
        redis_password_env=password_env,
    )


# Field readers: each takes the location, the table, the key and a default (_REQUIRED: none).


def _known(where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    secrets = [key for key in unknown if key.lower().rsplit("_", 1)[-1] in _SECRET_FIELDS]
    if secrets:
        hints = ", ".join(sorted(k for k in allowed if k.endswith(("_env", "_file"))))
        raise _Invalid(
            f"{where}.{secrets[0]}: refused: a secret does not belong in the config file (it "
            f"ends up in backups, diffs and logs); name where it is kept instead ({hints})"
        )
    if unknown:
        raise _Invalid(
            f"{where}: unknown key {unknown[0][:64]!r} (known: {', '.join(sorted(allowed))})"
        )


def _value(where: str, table: Mapping[str, Any], key: str, default: object) -> object:
    if key in table:
        return table[key]
    if default is _REQUIRED:
        raise _Invalid(f"{where}.{key}: missing")
    return default


def _str(where: str, table: Mapping[str, Any], key: str, default: object = _REQUIRED) -> Any:
    value = _value(where, table, key, default)
    if value is None and default is None:
        return None
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{where}.{key}: must be a non-empty string")
    return value


def _strings(where: str, table: Mapping[str, Any], key: str, default: object) -> list[str]:
    """A non-empty list of distinct non-empty strings."""
    value = _value(where, table, key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _Invalid(f"{where}.{key}: must be a list of non-empty strings")
    if not value:
        raise _Invalid(f"{where}.{key}: empty; name at least one")
    if len(set(value)) != len(value):
        raise _Invalid(f"{where}.{key}: a name is given twice")
    return list(value)


def _int(
    where: str, table: Mapping[str, Any], key: str, default: object, *, minimum: int,
    maximum: int | None = None,
) -> int:  # fmt: skip
    value = _value(where, table, key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Invalid(f"{where}.{key}: must be a whole number")
    if value < minimum:
        raise _Invalid(f"{where}.{key}: must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise _Invalid(f"{where}.{key}: at most {maximum}")
    return value


def _seconds(where: str, table: Mapping[str, Any], key: str, default: float) -> float:
    value = _value(where, table, key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _Invalid(f"{where}.{key}: must be a number of seconds")
    if not 0 < value <= 3600:
        raise _Invalid(f"{where}.{key}: must be more than 0 and at most 3600")
    return float(value)


def _env_name(where: str, table: Mapping[str, Any], key: str) -> str | None:
    name: str | None = _str(where, table, key, None)
    if name is not None and not _ENV_NAME.fullmatch(name):
        raise _Invalid(f"{where}.{key}: not an environment variable name")
    return name


def _path(
    where: str, table: Mapping[str, Any], key: str, directory: Path, default: Any = _REQUIRED
) -> Any:
    """A path resolved against the config file's directory (or `default` when absent)."""
    if key not in table and default is not _REQUIRED:
        return default
    value = Path(_str(where, table, key))
    return value if value.is_absolute() else directory / value


def _name(where: str, table: Mapping[str, Any]) -> str:
    name: str = _str(where, table, "name")
    if not _NAME.fullmatch(name):
        raise _Invalid(
            f"{where}.name: 1 to 64 of A-Z a-z 0-9 . _ - (starting with a letter or digit)"
        )
    return name


def _reference(where: str, ref: str, directory: Path) -> str:
    """A key reference with a scheme as written; a plain path resolved like the other paths."""
    if ref == "keyless":
        raise _Invalid(
            f"{where}.ref: keyless signing needs an interactive identity token; a service signs "
            "with a stored key (pkcs11:, awskms://, hashivault://, or a key file)"
        )
    scheme = _SCHEME.match(ref)
    if scheme is not None and len(scheme.group(1)) > 1:
        return ref  # pkcs11:..., awskms://..., file://... (one letter would be a drive)
    path = Path(ref)
    return str(path if path.is_absolute() else directory / path)


def _check_url(where: str, url: str, schemes: set[str]) -> Any:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise _Invalid(f"{where}: not a valid URL") from None
    if parts.scheme not in schemes:
        raise _Invalid(f"{where}: the scheme must be one of {', '.join(sorted(schemes))}")
    if parts.scheme != "unix" and not parts.hostname:
        raise _Invalid(f"{where}: names no host")
    return parts


def _as_table(where: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"{where}: must be a table")
    return value


def _table(document: Mapping[str, Any], key: str) -> dict[str, Any]:
    if key not in document:
        raise _Invalid(f"[{key}]: missing")
    return _as_table(f"[{key}]", document[key])


def _array(document: Mapping[str, Any], key: str, *, required: bool = False) -> list[object]:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise _Invalid(f"{key}: must be an array of tables ([[{key}]])")
    if required and not value:
        raise _Invalid(f"[[{key}]]: missing; at least one is needed")
    return value
