"""AWS KMS keys: `awskms://` references as cosign writes them, signing in KMS through boto3.

    awskms:///alias/release-signing                       default endpoint, region from the chain
    awskms:///arn:aws:kms:eu-west-1:111122223333:key/ID   region from the ARN
    awskms://127.0.0.1:4566/1234abcd-...?timeout=5        endpoint http://127.0.0.1:4566

The private key never leaves KMS: the PAE is hashed here with the key spec's hash and KMS signs
the digest (`MessageType=DIGEST`), so payloads of any size work. Credentials come from boto3's
standard chain (environment, shared profile, web identity, container/instance role) and never
appear in a reference, an error or a record. Query parameters (dssesign extensions, all
optional): `timeout=` seconds for connect and read each (default `$DSSESIGN_KMS_TIMEOUT`, else
5), `max-attempts=` (default `$DSSESIGN_KMS_MAX_ATTEMPTS`, else 3), `retry-mode=standard|adaptive`
and `region=`. docs/kms.md has the details.

boto3 is imported only when a key is loaded, so this module registers `awskms` for free.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.keys import ECDSA_P256, ECDSA_P384, RSA_PSS_3072, RSA_PSS_4096, Algorithm, PublicKey
from ..errors import (
    ConfigError,
    DssesignError,
    KeyFormatError,
    MissingDependencyError,
    SigningError,
)
from ..sign.signer import SignerOptions, register_scheme
from ._remote import clip as _clip
from ._remote import query_params, seconds

SCHEME = "awskms://"
TIMEOUT_ENV = "DSSESIGN_KMS_TIMEOUT"
ATTEMPTS_ENV = "DSSESIGN_KMS_MAX_ATTEMPTS"
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_ATTEMPTS = 3
MAX_TIMEOUT = 300.0
MAX_ATTEMPTS = 10
RETRY_MODES = ("standard", "adaptive")


@dataclass(frozen=True)
class KeySpec:
    """One KMS key spec dssesign signs with, and how."""

    name: str
    algorithm: Algorithm
    #: KMS `SigningAlgorithm` for Sign (the DIGEST is made with `algorithm`'s hash).
    signing_algorithm: str


#: The allow-list: KMS key spec -> dssesign algorithm. RSA is PSS with salt = hash length in KMS,
#: which is what `keys.pss_padding` verifies.
KEY_SPECS: dict[str, KeySpec] = {
    s.name: s
    for s in (
        KeySpec("ECC_NIST_P256", ECDSA_P256, "ECDSA_SHA_256"),
        KeySpec("ECC_NIST_P384", ECDSA_P384, "ECDSA_SHA_384"),
        KeySpec("RSA_3072", RSA_PSS_3072, "RSASSA_PSS_SHA_256"),
        KeySpec("RSA_4096", RSA_PSS_4096, "RSASSA_PSS_SHA_256"),
    )
}
_SPEC_BY_ALGORITHM = {s.algorithm.cli_name: s for s in KEY_SPECS.values()}

# Key ids, aliases and ARNs as KMS accepts them for KeyId.
_KEY_ID = re.compile(r"^(?:mrk-[0-9a-f]{32}|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})$")
_ALIAS = re.compile(r"^alias/[A-Za-z0-9/_-]{1,250}$")
_ARN = re.compile(
    r"^arn:(aws[a-z-]*):kms:([a-z0-9-]+):([0-9]{12}):"
    r"(key/[A-Za-z0-9-]{1,128}|alias/[A-Za-z0-9/_-]{1,250})$"
)
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_QUERY = {"timeout", "max-attempts", "retry-mode", "region"}
_SECRETS = re.compile(
    r"(Credential=|Signature=|X-Amz-Security-Token=|SignedHeaders=)\S+|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"
)


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class KmsUri:
    """A parsed `awskms://` reference; holds no credential."""

    #: `host[:port]` as written, or "" for the default endpoint.
    host: str
    #: Key id, `alias/NAME` or ARN; "" only where a command creates the key.
    key: str
    region: str | None = None
    timeout: float | None = None
    max_attempts: int | None = None
    retry_mode: str = "standard"

    @property
    def endpoint_url(self) -> str | None:
        """`http://host:port` (cosign's meaning of a host), or None for boto3's default."""
        return f"http://{self.host}" if self.host else None

    @property
    def arn_region(self) -> str | None:
        """The region inside an ARN `key`; None for a key id or an alias."""
        match = _ARN.match(self.key)
        return match.group(2) if match else None

    def describe(self) -> str:
        """The reference without query parameters: safe for logs, errors and records."""
        return f"{SCHEME}{self.host}/{self.key}"

    def with_key(self, key: str) -> KmsUri:
        """The same endpoint and settings, naming another key (a created key's id or alias)."""
        return dataclasses.replace(self, key=key)


def parse_uri(ref: str, *, key_required: bool = True) -> KmsUri:
    """Parse `awskms://[host:port]/<key id | alias/NAME | ARN>[?timeout=..&...]`."""
    if not ref.startswith(SCHEME):
        raise ConfigError("not an awskms:// reference (awskms://[host:port]/KEY)")
    body, _, query = ref[len(SCHEME) :].partition("?")
    host, slash, key = body.partition("/")
    if not slash:
        raise ConfigError(
            "awskms reference has no key: use awskms:///KEY or awskms://HOST:PORT/KEY "
            "(KEY: key id, alias/NAME or ARN)"
        )
    if "@" in host:  # never echoed: user info may hold a password
        raise ConfigError("awskms reference: user info in the host is refused (no credentials)")
    if host and not _HOST.match(host):
        raise ConfigError(f"awskms reference: {_clip(host)!r} is not a host[:port]")
    if host and ":" in host.rsplit("]", 1)[-1]:
        port = host.rsplit(":", 1)[1]
        if not 1 <= int(port) <= 65535:
            raise ConfigError(f"awskms reference: port {port} is out of range")
    if key:
        _check_key(key)
    elif key_required:
        raise ConfigError("awskms reference names no key (awskms://[host:port]/KEY)")
    params = query_params(query, _QUERY, where="awskms reference")
    region = params.get("region")
    if region is not None and not re.fullmatch(r"[a-z]{2}(?:-[a-z0-9]+)+-[0-9]+", region):
        raise ConfigError(f"awskms reference: {_clip(region)!r} is not an AWS region")
    retry_mode = params.get("retry-mode", "standard")
    if retry_mode not in RETRY_MODES:
        raise ConfigError(f"awskms reference: retry-mode must be one of {', '.join(RETRY_MODES)}")
    uri = KmsUri(
        host=host,
        key=key,
        region=region,
        timeout=_timeout(params["timeout"], "timeout=") if "timeout" in params else None,
        max_attempts=(
            _attempts(params["max-attempts"], "max-attempts=") if "max-attempts" in params else None
        ),
        retry_mode=retry_mode,
    )
    arn_region = uri.arn_region
    if arn_region is not None and region is not None and region != arn_region:
        raise ConfigError(f"awskms reference: region={region} contradicts the ARN's {arn_region}")
    return uri


def _check_key(key: str) -> None:
    if _KEY_ID.match(key) or _ARN.match(key):
        return
    if _ALIAS.match(key):
        if key.startswith("alias/aws/"):
            raise ConfigError(f"{key} is an AWS managed alias; those keys cannot sign")
        return
    raise ConfigError(
        f"awskms reference: {_clip(key)!r} is not a KMS key id, alias/NAME or key ARN"
    )


def _timeout(text: str, what: str) -> float:
    return seconds(text, what=what, maximum=MAX_TIMEOUT)


def _attempts(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ATTEMPTS:
        raise ConfigError(f"{what} must be a whole number 1..{MAX_ATTEMPTS}")
    return int(text)


def key_spec(name: str) -> KeySpec:
    """A key spec by KMS name (`ECC_NIST_P256`) or dssesign algorithm name (`ecdsa-p256`)."""
    found = KEY_SPECS.get(name.upper()) or _SPEC_BY_ALGORITHM.get(name.lower())
    if found is None:
        raise ConfigError(
            f"key spec {_clip(name)!r} is not supported (use {', '.join(KEY_SPECS)}; "
            "or ecdsa-p256, ecdsa-p384, rsa-pss-3072, rsa-pss-4096)"
        )
    return found


# --------------------------------------------------------------------------- clients


_client_lock = threading.Lock()
_client_hooks: list[Callable[[Any], None]] = []


def register_client_hook(hook: Callable[[Any], None]) -> None:
    """Call `hook(client)` on every KMS client created from now on (metrics, tracing, tests).

    The hook sees the client before its first request, so `client.meta.events` handlers it
    registers count GetPublicKey too.
    """
    with _client_lock:
        _client_hooks.append(hook)


def unregister_client_hook(hook: Callable[[Any], None]) -> None:
    """Undo `register_client_hook`; clients already created keep what the hook did to them."""
    with _client_lock:
        if hook in _client_hooks:
            _client_hooks.remove(hook)


def _boto() -> tuple[Any, Any, Any]:
    try:
        import boto3  # noqa: PLC0415 - optional dependency, imported on first use
        import botocore.config  # noqa: PLC0415 - optional dependency, imported on first use
        import botocore.exceptions  # noqa: PLC0415 - optional dependency, imported on first use
    except ImportError:
        raise MissingDependencyError("awskms:// references", "boto3", "awskms") from None
    return boto3, botocore.config, botocore.exceptions


def resolve_region(uri: KmsUri, session: Any = None) -> str:
    """The ARN's region, else `region=`, else $AWS_REGION, else boto3's chain."""
    region = uri.arn_region or uri.region or os.environ.get("AWS_REGION") or None
    if region is None and session is not None:
        region = session.region_name
    if not region:
        raise ConfigError(
            f"no AWS region for {uri.describe()}: use a key ARN, add ?region=NAME, or set "
            "AWS_REGION / AWS_DEFAULT_REGION (or a region in the AWS profile)"
        )
    return str(region)


def settings(uri: KmsUri) -> tuple[float, int]:
    """(timeout seconds for connect and read each, total attempts) for this reference."""
    timeout = uri.timeout
    if timeout is None:
        env = os.environ.get(TIMEOUT_ENV)
        timeout = _timeout(env, f"${TIMEOUT_ENV}") if env else DEFAULT_TIMEOUT
    attempts = uri.max_attempts
    if attempts is None:
        env = os.environ.get(ATTEMPTS_ENV)
        attempts = _attempts(env, f"${ATTEMPTS_ENV}") if env else DEFAULT_MAX_ATTEMPTS
    return timeout, attempts


_sessions: dict[str, Any] = {}
_MAX_SESSIONS = 8


def _session(boto3: Any) -> Any:
    """A boto3 session per AWS environment (call with `_client_lock` held).

    Reusing it makes a second client cost milliseconds instead of a model load; keying it on
    the AWS_* variables (hashed) means changed credentials or profiles get a fresh session.
    """
    aws = sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))
    fingerprint = hashlib.sha256(repr(aws).encode()).hexdigest()
    session = _sessions.get(fingerprint)
    if session is None:
        if len(_sessions) >= _MAX_SESSIONS:
            _sessions.clear()
        session = _sessions[fingerprint] = boto3.session.Session()
    return session


def new_client(uri: KmsUri) -> tuple[Any, str]:
    """A KMS client for the reference's endpoint and region; safe to share between threads."""
    boto3, config_module, exceptions = _boto()
    timeout, attempts = settings(uri)
    config = config_module.Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": uri.retry_mode, "total_max_attempts": attempts},
        # Signing threads share the client; give them connections rather than a queue.
        max_pool_connections=16,
        user_agent_extra="dssesign",
    )
    # boto3 sessions are not thread-safe; clients made from them are.
    with _client_lock:
        try:
            session = _session(boto3)
            region = resolve_region(uri, session)
            client = session.client(
                "kms", region_name=region, endpoint_url=uri.endpoint_url, config=config
            )
        except exceptions.BotoCoreError as exc:
            raise ConfigError(f"AWS KMS client for {uri.describe()}: {_safe(exc)}") from None
        hooks = list(_client_hooks)
    for hook in hooks:
        hook(client)
    return client, region


# --------------------------------------------------------------------------- errors


def _safe(exc: BaseException) -> str:
    """One line of an exception's text, with anything credential-shaped removed."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return _clip(_SECRETS.sub(lambda m: (m.group(1) or "") + "[redacted]", text), 300)


def _state_of(client: Any, key: str) -> str | None:
    try:
        metadata = client.describe_key(KeyId=key)["KeyMetadata"]
    except Exception:  # naming the state is best effort
        return None
    state = metadata.get("KeyState")
    return str(state) if state else None


def translate(exc: BaseException, *, what: str, client: Any = None, key: str = "") -> DssesignError:
    """A botocore error as one dssesign error: config problems exit 2, signing failures exit 1."""
    _boto3, _config, exceptions = _boto()
    if isinstance(exc, exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = _safe(Exception(error.get("Message") or "")) if error.get("Message") else code
        if code == "DisabledException":
            return SigningError(f"{what}: the KMS key is in state Disabled ({message})")
        if code == "KMSInvalidStateException":
            state = _state_of(client, key) if client is not None and key else None
            named = f"state {state}" if state else "an invalid state"
            return SigningError(f"{what}: the KMS key is in {named} ({message})")
        if code in ("NotFoundException", "InvalidArnException"):
            return ConfigError(f"{what}: no such KMS key ({message})")
        if code in (
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "IncompleteSignature",
            "IncompleteSignatureException",
            "ExpiredTokenException",
            "InvalidClientTokenId",
        ):
            return ConfigError(f"{what}: AWS refused the credentials or permissions ({code})")
        if code in ("InvalidKeyUsageException", "ValidationException", "InvalidAliasNameException"):
            return ConfigError(f"{what}: {code}: {message}")
        attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts")
        tried = f" after {attempts + 1} attempts" if isinstance(attempts, int) and attempts else ""
        return SigningError(f"{what}: KMS answered {code}{tried}: {message}")
    if isinstance(exc, exceptions.NoCredentialsError | exceptions.PartialCredentialsError):
        return ConfigError(
            f"{what}: no AWS credentials (environment, shared config/credentials file, web "
            "identity, container or instance role)"
        )
    if isinstance(exc, exceptions.NoRegionError):
        return ConfigError(f"{what}: no AWS region (set AWS_REGION or use a key ARN)")
    if isinstance(exc, exceptions.CredentialRetrievalError | exceptions.TokenRetrievalError):
        return ConfigError(f"{what}: AWS credentials could not be obtained ({type(exc).__name__})")
    if isinstance(exc, exceptions.ParamValidationError):
        return ConfigError(f"{what}: {_safe(exc)}")
    if isinstance(
        exc,
        exceptions.ConnectTimeoutError
        | exceptions.ReadTimeoutError
        | exceptions.EndpointConnectionError
        | exceptions.ConnectionClosedError,
    ):
        return SigningError(f"{what}: KMS endpoint unreachable ({_safe(exc)})")
    return SigningError(f"{what}: {type(exc).__name__}: {_safe(exc)}")


# --------------------------------------------------------------------------- key metadata


@dataclass(frozen=True)
class KmsKey:
    """What GetPublicKey said about one key: fetched once per process and cached."""

    arn: str
    spec: KeySpec
    public_key: PublicKey


_cache_lock = threading.Lock()
_key_locks: dict[tuple[str, str, str], threading.Lock] = {}
_keys: dict[tuple[str, str, str], KmsKey] = {}


def clear_cache() -> None:
    """Forget every cached public key (tests; a long-lived process after re-pointing aliases)."""
    with _cache_lock:
        _keys.clear()
        _key_locks.clear()


def _cache_key(uri: KmsUri, region: str) -> tuple[str, str, str]:
    return (uri.endpoint_url or "", region, uri.key)


def fetch_key(uri: KmsUri, client: Any, region: str) -> KmsKey:
    """The key's ARN, spec and public key; GetPublicKey runs once per key per process."""
    cache_key = _cache_key(uri, region)
    with _cache_lock:
        cached = _keys.get(cache_key)
        if cached is not None:
            return cached
        lock = _key_locks.setdefault(cache_key, threading.Lock())
    with lock:  # one GetPublicKey even when threads load the same key at once
        with _cache_lock:
            cached = _keys.get(cache_key)
        if cached is not None:
            return cached
        try:
            response = client.get_public_key(KeyId=uri.key)
        except Exception as exc:
            raise translate(
                exc, what=f"GetPublicKey {uri.describe()}", client=client, key=uri.key
            ) from None
        key = _key_from_response(uri, response)
        with _cache_lock:
            _keys[cache_key] = key
        return key


def _key_from_response(uri: KmsUri, response: dict[str, Any]) -> KmsKey:
    where = uri.describe()
    usage = response.get("KeyUsage")
    if usage != "SIGN_VERIFY":
        raise ConfigError(f"KMS key {where} has key usage {usage}, not SIGN_VERIFY")
    spec_name = str(response.get("KeySpec") or response.get("CustomerMasterKeySpec"))
    spec = KEY_SPECS.get(spec_name)
    if spec is None:
        raise ConfigError(
            f"KMS key {where} has key spec {spec_name}, which dssesign does not sign with "
            f"(supported: {', '.join(KEY_SPECS)})"
        )
    offered = response.get("SigningAlgorithms") or []
    if spec.signing_algorithm not in offered:
        raise ConfigError(
            f"KMS key {where} does not offer {spec.signing_algorithm} (offers: "
            f"{', '.join(map(str, offered)) or 'none'})"
        )
    try:
        public = PublicKey.from_der(bytes(response["PublicKey"]), source=f"KMS key {where}")
    except KeyFormatError as exc:
        raise ConfigError(str(exc)) from None
    if public.algorithm is not spec.algorithm:
        raise ConfigError(
            f"KMS key {where}: public key is {public.algorithm.name}, spec says {spec.name}"
        )
    arn = str(response.get("KeyId") or uri.key)
    return KmsKey(arn=arn, spec=spec, public_key=public)


# --------------------------------------------------------------------------- signer


class AwsKmsSigner:
    """Signs in AWS KMS with one asymmetric key; many threads may share one signer."""

    #: I/O-bound: MultiProfileSigner gives it its own thread.
    in_process = False
    exportable = False  # KMS keys never leave KMS

    def __init__(self, uri: KmsUri, client: Any, key: KmsKey) -> None:
        self._client = client
        self._key = key
        self.reference = uri.describe()
        self._hash: Callable[[bytes], Any] = (
            hashlib.sha384 if key.spec.algorithm.hash_name == "sha384" else hashlib.sha256
        )

    @property
    def keyid(self) -> str:
        """keyid of the public key GetPublicKey returned when the signer was loaded."""
        return self._key.public_key.keyid

    @property
    def algorithm(self) -> Algorithm:
        """The dssesign algorithm of the key's spec (`KEY_SPECS`)."""
        return self._key.spec.algorithm

    @property
    def public_key(self) -> PublicKey:
        """The public key GetPublicKey returned at load (cached per process, see `clear_cache`)."""
        return self._key.public_key

    @property
    def key_arn(self) -> str:
        """The ARN `sign` uses, fixed at load: re-pointing the alias cannot change the key."""
        return self._key.arn

    @property
    def key_spec(self) -> str:
        """The KMS key spec name, e.g. ``ECC_NIST_P256``."""
        return self._key.spec.name

    @property
    def client(self) -> Any:
        """The boto3 KMS client (thread-safe), for event hooks and metrics."""
        return self._client

    def sign(self, data: bytes) -> bytes:
        """Hash `data` here and have KMS sign the digest; errors never carry credentials."""
        digest = self._hash(data).digest()
        try:
            # The ARN from GetPublicKey, not the alias: re-pointing the alias later cannot make
            # this signer sign with a key other than the public key it reports.
            response = self._client.sign(
                KeyId=self._key.arn,
                Message=digest,
                MessageType="DIGEST",
                SigningAlgorithm=self._key.spec.signing_algorithm,
            )
        except Exception as exc:
            raise translate(
                exc, what=f"KMS Sign with {self.reference}", client=self._client, key=self._key.arn
            ) from None
        signature = response.get("Signature")
        if not isinstance(signature, bytes) or not signature:
            raise SigningError(f"KMS Sign with {self.reference} returned no signature")
        return signature

    def __repr__(self) -> str:
        return f"AwsKmsSigner({self.reference}, {self.algorithm.name}, keyid={self.keyid[:16]}…)"


def _open(ref: str | KmsUri) -> tuple[KmsUri, Any, KmsKey]:
    """The parsed reference, a client for it and the key's (cached) metadata."""
    uri = parse_uri(ref) if isinstance(ref, str) else ref
    client, region = new_client(uri)
    return uri, client, fetch_key(uri, client, region)


def load(ref: str | KmsUri, options: SignerOptions | None = None) -> AwsKmsSigner:
    """Load the signer for an `awskms://` reference (one GetPublicKey per key per process)."""
    del options  # nothing secret travels with a KMS reference
    return AwsKmsSigner(*_open(ref))


def read_public_key(ref: str | KmsUri) -> tuple[PublicKey, KmsKey]:
    """The public key (and the key's ARN and spec) a reference names; KMS never signs here."""
    _uri, _client, key = _open(ref)
    return key.public_key, key


@dataclass(frozen=True)
class CreatedKey:
    """What `create_key` made; `reference` (the alias if any) is ready to sign with."""

    key_id: str
    arn: str
    alias: str | None
    key: KmsKey
    reference: str


def create_key(ref: str | KmsUri, spec: KeySpec, *, alias: str | None = None) -> CreatedKey:
    """Create an asymmetric SIGN_VERIFY key (and alias): the private key is born in KMS.

    The reference names the endpoint, and may name the alias (`awskms:///alias/NAME`);
    `alias` is the same thing as an option.
    """
    uri = parse_uri(ref, key_required=False) if isinstance(ref, str) else ref
    if uri.key and not uri.key.startswith("alias/"):
        raise ConfigError(
            f"{uri.describe()} names an existing key; give awskms://[host:port]/ or "
            "awskms://[host:port]/alias/NAME"
        )
    names = {a for a in (uri.key or None, _alias_name(alias) if alias else None) if a}
    if len(names) > 1:
        raise ConfigError(f"--alias {alias} contradicts the reference's {uri.key}")
    alias_name = names.pop() if names else None
    if alias_name is not None:
        _check_key(alias_name)
    client, region = new_client(uri)
    what = f"CreateKey at {uri.describe()}"
    try:
        metadata = client.create_key(
            KeySpec=spec.name,
            KeyUsage="SIGN_VERIFY",
            Description=f"dssesign signing key ({spec.algorithm.name})",
        )["KeyMetadata"]
    except Exception as exc:
        raise translate(exc, what=what) from None
    key_id, arn = str(metadata["KeyId"]), str(metadata["Arn"])
    if alias_name is not None:
        try:
            client.create_alias(AliasName=alias_name, TargetKeyId=key_id)
        except Exception as exc:
            raise translate(
                exc, what=f"CreateAlias {alias_name} (key {key_id} was created)"
            ) from None
    key = fetch_key(uri.with_key(key_id), client, region)
    return CreatedKey(
        key_id=key_id,
        arn=arn,
        alias=alias_name,
        key=key,
        # Usable as is: keeps a region= the key would otherwise not be found in.
        reference=uri.with_key(alias_name or key_id).describe()
        + (f"?region={uri.region}" if uri.region else ""),
    )


def _alias_name(name: str) -> str:
    return name if name.startswith("alias/") else f"alias/{name}"


register_scheme("awskms", load)
