"""HashiCorp Vault / OpenBao transit keys: `hashivault://NAME[?version=N]`, signed through hvac.

References are written as cosign writes them. The plain reference signs with the key's latest
version *as read when the key is loaded* (the signer keeps that version, so its keyid always
matches its signatures); `?version=N` pins a version. dssesign extension in the query:
`allow-exportable=true` (keys whose private half can leave Vault are refused otherwise).

Where and how to connect comes from the environment, never from the reference or argv:
`VAULT_ADDR`/`VAULT_TOKEN` (or `BAO_ADDR`/`BAO_TOKEN`; the token falls back to `~/.vault-token`
as cosign does), `VAULT_NAMESPACE`, `VAULT_CACERT`/`VAULT_CAPATH`, the transit mount from
`DSSESIGN_VAULT_TRANSIT_PATH` or cosign's `TRANSIT_SECRET_ENGINE_PATH` (default `transit`) and
the per-request timeout from `DSSESIGN_VAULT_TIMEOUT` (seconds, default 30).

hvac is imported lazily, so this module registers the `hashivault` scheme even where the
`vault` extra is not installed; loading a reference then says what to install.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from cryptography.hazmat.primitives.asymmetric import ed25519

from ..core.keys import ECDSA_P256, ECDSA_P384, ED25519, RSA_PSS_3072, RSA_PSS_4096, Algorithm
from ..core.keys import PublicKey as DsPublicKey
from ..errors import ConfigError, KeyFormatError, MissingDependencyError, SigningError
from ..sign.signer import SignerOptions, register_scheme
from ._remote import query_params, seconds
from ._vault_errors import _from_urllib3, _root_cause, _timed_out, _vault_errors

SCHEME = "hashivault"
ADDR_ENVS = ("VAULT_ADDR", "BAO_ADDR")
TOKEN_ENVS = ("VAULT_TOKEN", "BAO_TOKEN")
NAMESPACE_ENVS = ("VAULT_NAMESPACE", "BAO_NAMESPACE")
CACERT_ENVS = ("VAULT_CACERT", "BAO_CACERT")
CAPATH_ENVS = ("VAULT_CAPATH", "BAO_CAPATH")
MOUNT_ENVS = ("DSSESIGN_VAULT_TRANSIT_PATH", "TRANSIT_SECRET_ENGINE_PATH")
TIMEOUT_ENV = "DSSESIGN_VAULT_TIMEOUT"
DEFAULT_MOUNT = "transit"
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 600.0
#: The file `vault login` writes; read when no token variable is set (cosign does the same).
TOKEN_FILE = ".vault-token"  # noqa: S105 - a file name, not a secret
_MAX_TOKEN_FILE = 8192
#: HTTP connections kept per signer: enough for MultiProfileSigner's and callers' threads.
_POOL_SIZE = 16

#: Transit key types dssesign signs with, and the allow-listed algorithm each one is.
KEY_TYPES: dict[str, Algorithm] = {
    "ecdsa-p256": ECDSA_P256,
    "ecdsa-p384": ECDSA_P384,
    "ed25519": ED25519,
    "rsa-3072": RSA_PSS_3072,
    "rsa-4096": RSA_PSS_4096,
}
#: dssesign's own algorithm names accepted where a transit key type is asked for.
_KEY_TYPE_ALIASES = {"rsa-pss-3072": "rsa-3072", "rsa-pss-4096": "rsa-4096"}
_TRANSIT_HASH = {"sha256": "sha2-256", "sha384": "sha2-384"}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,254}$")
_MOUNT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$")
_SIGNATURE = re.compile(r"^[a-z]+:v([0-9]{1,9}):([A-Za-z0-9+/]+={0,2})$")
_TRUE = {"1", "true", "yes"}
_QUERY = {"version", "allow-exportable"}


# --------------------------------------------------------------------------- references


@dataclass(frozen=True)
class VaultRef:
    """A parsed `hashivault://` reference: a transit key name and an optional pinned version."""

    name: str
    version: int | None = None
    allow_exportable: bool = False

    def describe(self, version: int | None = None) -> str:
        """The reference, pinned to `version` when given (safe for logs and records)."""
        pinned = version if version is not None else self.version
        return f"{SCHEME}://{self.name}" + (f"?version={pinned}" if pinned is not None else "")


def parse_reference(ref: str) -> VaultRef:
    """Parse `hashivault://NAME[?version=N][&allow-exportable=true]`; anything else is refused."""
    prefix = f"{SCHEME}://"
    if not ref.lower().startswith(prefix):
        raise ConfigError(f"not a {prefix} reference")
    body = ref[len(prefix) :]
    name, _, query = body.partition("?")
    if not name:
        raise ConfigError(f"{prefix} reference names no key (write {prefix}KEY_NAME)")
    if not _NAME.match(name):
        raise ConfigError(
            f"{prefix} reference: key name {name!r} is not a transit key name "
            "(letters, digits, '_', '.', '@', '+', '-'; no '/')"
        )
    params = query_params(query, _QUERY, where=f"{prefix} reference", noun="query parameter")
    version: int | None = None
    if "version" in params:
        raw = params["version"]
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 999_999_999:
            raise ConfigError(f"{prefix} reference: version must be a positive integer")
        version = int(raw)
    return VaultRef(
        name=name,
        version=version,
        allow_exportable=params.get("allow-exportable", "").lower() in _TRUE,
    )


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class VaultConfig:
    """Where the transit engine is and how to authenticate; `token` is never shown."""

    address: str
    token: str = field(repr=False)
    mount: str = DEFAULT_MOUNT
    namespace: str | None = None
    #: requests' `verify`: True, or the CA bundle file / directory to trust.
    verify: bool | str = True
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> VaultConfig:
        """Read the configuration from VAULT_* (or BAO_*) and DSSESIGN_VAULT_* variables."""
        env = os.environ if environ is None else environ
        address = _first(env, ADDR_ENVS)
        if not address:
            raise ConfigError(
                f"{SCHEME}:// keys need the server address: set VAULT_ADDR (or BAO_ADDR)"
            )
        address = address.rstrip("/")
        if not address.startswith(("http://", "https://")):
            raise ConfigError("VAULT_ADDR must start with http:// or https://")
        token = _first(env, TOKEN_ENVS) or _token_from_file(env)
        if not token:
            raise ConfigError(
                f"{SCHEME}:// keys need a token: set VAULT_TOKEN (or BAO_TOKEN), or log in so "
                f"that ~/{TOKEN_FILE} exists"
            )
        if not (token.isascii() and token.isprintable()):  # never echoed: it is the secret
            raise ConfigError(
                f"the Vault token (VAULT_TOKEN, BAO_TOKEN or ~/{TOKEN_FILE}) is not printable "
                "ASCII text"
            )
        mount = (_first(env, MOUNT_ENVS) or DEFAULT_MOUNT).strip("/")
        if not _MOUNT.match(mount):
            raise ConfigError(f"transit mount path {mount!r} is not a valid path")
        verify: bool | str = True
        for names in (CAPATH_ENVS, CACERT_ENVS):  # VAULT_CACERT wins, as in Vault's CLI
            ca = _first(env, names)
            if ca:
                if not Path(ca).exists():
                    raise ConfigError(f"{names[0]}: {ca} does not exist")
                verify = ca
        return cls(
            address=address,
            token=token,
            mount=mount,
            namespace=_first(env, NAMESPACE_ENVS) or None,
            verify=verify,
            timeout=_timeout(env.get(TIMEOUT_ENV)),
        )


def _first(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value.strip()
    return None


def _token_from_file(env: Mapping[str, str]) -> str | None:
    home = env.get("HOME")
    if not home:
        return None
    path = Path(home) / TOKEN_FILE
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_TOKEN_FILE + 1)
    except OSError:
        return None
    if len(data) > _MAX_TOKEN_FILE:
        raise ConfigError(f"~/{TOKEN_FILE} is too large for a token")
    return data.decode("utf-8", "replace").strip() or None


def _timeout(raw: str | None) -> float:
    if raw is None or not raw.strip():
        return DEFAULT_TIMEOUT
    return seconds(raw, what=TIMEOUT_ENV, maximum=MAX_TIMEOUT)


# --------------------------------------------------------------------------- transit client


def _hvac() -> Any:
    try:
        return importlib.import_module("hvac")
    except ImportError:
        raise MissingDependencyError(f"{SCHEME}:// references", "hvac", "vault") from None


@dataclass(frozen=True)
class TransitKey:
    """What `read_key` says about a transit key: its type and each version's public key."""

    name: str
    key_type: str
    latest_version: int
    exportable: bool
    allow_plaintext_backup: bool
    #: Public key per version still held by Vault (trimmed versions are absent).
    public_keys: Mapping[int, DsPublicKey]

    @property
    def algorithm(self) -> Algorithm:
        """The dssesign algorithm of `key_type` (keys of other types are refused on read)."""
        return KEY_TYPES[self.key_type]

    def public_key(self, version: int) -> DsPublicKey:
        """The public key of one version; `ConfigError` if Vault does not hold that version."""
        found = self.public_keys.get(version)
        if found is None:
            held = ", ".join(str(v) for v in sorted(self.public_keys)) or "none"
            raise ConfigError(
                f"transit key {self.name!r} has no version {version} "
                f"(latest is {self.latest_version}; versions held: {held})"
            )
        return found


class TransitClient:
    """hvac against one transit mount; every failure becomes one line without the token.

    One hvac client (one requests session, a pool of `_POOL_SIZE` connections) is shared by
    all threads: MultiProfileSigner signs on a fresh thread per call, so per-thread clients
    would open a new connection each time, and urllib3's pool is thread-safe. Measured against
    an OpenBao dev server on 2 cores, 8 threads: shared 530-600 signs/s, per-thread 580-690/s
    (noise-level difference).
    """

    def __init__(self, config: VaultConfig) -> None:
        hvac = _hvac()
        requests = importlib.import_module("requests")
        adapters = importlib.import_module("requests.adapters")
        retry = importlib.import_module("urllib3.util.retry")
        self.config = config
        session = requests.Session()
        # hvac lets a given session's `verify` override its own argument: set it here.
        session.verify = config.verify
        # Only busy answers are retried (with backoff, honouring Retry-After); a refused or
        # silent server fails within one timeout, so the caller's deadline holds.
        session.mount(
            config.address,
            adapters.HTTPAdapter(
                pool_connections=1,
                pool_maxsize=_POOL_SIZE,
                max_retries=retry.Retry(
                    total=3,
                    connect=0,
                    read=0,
                    status=3,
                    other=0,
                    backoff_factor=0.2,
                    status_forcelist=(429, 502, 503, 504),
                    allowed_methods=None,
                    raise_on_status=False,
                    respect_retry_after_header=True,
                ),
            ),
        )
        self._client = hvac.Client(
            url=config.address,
            token=config.token,
            namespace=config.namespace,
            verify=config.verify,
            timeout=config.timeout,
            session=session,
        )
        self._transit = self._client.secrets.transit

    def read_key(self, name: str) -> TransitKey:
        """The key's type, latest version and public keys; ConfigError when it cannot be read."""
        try:
            response = self._transit.read_key(name, mount_point=self.config.mount)
        except Exception as exc:
            self._fail(exc, f"reading transit key {name!r}", ConfigError, name=name)
        return _transit_key(name, response)

    def create_key(self, name: str, key_type: str) -> TransitKey:
        """Create a non-exportable signing key; refuses a name that already exists."""
        try:
            self._transit.read_key(name, mount_point=self.config.mount)
        except Exception as exc:
            if not _is_missing_key(exc):
                self._fail(exc, f"checking transit key {name!r}", ConfigError, name=name)
        else:
            # Vault answers a create on an existing name with success and changes nothing.
            raise ConfigError(
                f"transit key {name!r} already exists at mount {self.config.mount!r}; "
                "refusing to create a second key under it"
            )
        try:
            self._transit.create_key(
                name,
                key_type=key_type,
                exportable=False,
                allow_plaintext_backup=False,
                mount_point=self.config.mount,
            )
        except Exception as exc:
            self._fail(exc, f"creating transit key {name!r}", ConfigError, name=name)
        return self.read_key(name)

    def sign(self, name: str, version: int, algorithm: Algorithm, data: bytes) -> tuple[int, bytes]:
        """Sign `data` with one key version; returns (version Vault used, signature bytes)."""
        if algorithm is ED25519:
            # Pure Ed25519 signs the message itself; Vault caps the request, not the input.
            params: dict[str, Any] = {"hash_input": base64.b64encode(data).decode("ascii")}
        else:
            hash_name = algorithm.hash_name
            assert hash_name is not None
            digest = hashlib.new(hash_name, data).digest()
            params = {
                "hash_input": base64.b64encode(digest).decode("ascii"),
                "prehashed": True,
                "hash_algorithm": _TRANSIT_HASH[hash_name],
            }
            if algorithm in (ECDSA_P256, ECDSA_P384):
                params["marshaling_algorithm"] = "asn1"
            else:
                params["signature_algorithm"] = "pss"
                params["salt_length"] = "hash"
        try:
            response = self._transit.sign_data(
                name, key_version=version, mount_point=self.config.mount, **params
            )
        except Exception as exc:
            self._fail(
                exc, f"signing with transit key {name!r} v{version}", SigningError, name=name
            )
        return _parse_signature(response, name)

    def _fail(
        self,
        exc: BaseException,
        doing: str,
        kind: type[ConfigError] | type[SigningError],
        *,
        name: str | None = None,
    ) -> NoReturn:
        """Raise `kind` with one line saying what failed and why, never the token."""
        where = f"{self.config.address} (mount {self.config.mount!r})"
        hvac = _hvac()
        requests = importlib.import_module("requests")
        reason: str
        if isinstance(exc, hvac.exceptions.Forbidden | hvac.exceptions.Unauthorized):
            reason = (
                "permission denied: the token is invalid or expired, or its policy does not "
                "allow this path"
            )
        elif name is not None and _is_missing_key(exc):
            reason = (
                "no such key (create it with: dssesign vault create-key "
                f"--uri {SCHEME}://{name} --key-type TYPE)"
            )
        elif isinstance(exc, hvac.exceptions.InvalidPath) and (routing := _vault_errors(exc)):
            reason = (
                f"{routing} (is the transit engine mounted at "
                f"{self.config.mount!r}? set {MOUNT_ENVS[0]})"
            )
        elif isinstance(exc, hvac.exceptions.VaultError):
            status = type(exc).__name__
            reason = f"Vault answered {status}: {_vault_errors(exc) or 'no details'}"
        elif isinstance(exc, requests.exceptions.Timeout) or _timed_out(exc):
            reason = f"no answer within {self.config.timeout:g}s (set {TIMEOUT_ENV})"
        elif isinstance(exc, requests.exceptions.SSLError):
            reason = "TLS verification failed (set VAULT_CACERT to the server's CA bundle)"
        elif isinstance(exc, requests.exceptions.ConnectionError | OSError) or _from_urllib3(exc):
            reason = "cannot connect: " + _root_cause(exc)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        message = f"Vault {where}: {doing} failed: {reason}"
        raise kind(self._scrub(" ".join(message.split()))) from None

    def _scrub(self, text: str) -> str:
        # Belt and braces: no message is built from the token, but a server could echo it.
        token = self.config.token
        return text.replace(token, "<token>") if len(token) >= 4 else text


def _is_missing_key(exc: BaseException) -> bool:
    """A 404 without a routing error: the mount exists, the key does not."""
    hvac = _hvac()
    return isinstance(exc, hvac.exceptions.InvalidPath) and not _vault_errors(exc)


def _transit_key(name: str, response: Any) -> TransitKey:
    data = response.get("data") if isinstance(response, Mapping) else None
    if not isinstance(data, Mapping):
        raise ConfigError(f"transit key {name!r}: Vault's answer has no key data")
    key_type = data.get("type")
    latest = data.get("latest_version")
    if not isinstance(key_type, str) or not isinstance(latest, int) or latest < 1:
        raise ConfigError(f"transit key {name!r}: Vault's answer lacks type or latest_version")
    if key_type not in KEY_TYPES:
        raise ConfigError(
            f"transit key {name!r} is of type {key_type}, which dssesign does not sign with "
            f"(supported: {', '.join(KEY_TYPES)})"
        )
    algorithm = KEY_TYPES[key_type]
    versions = data.get("keys")
    if not isinstance(versions, Mapping):
        raise ConfigError(f"transit key {name!r}: Vault's answer has no public keys")
    public_keys: dict[int, DsPublicKey] = {}
    for raw_version, entry in versions.items():
        if not (str(raw_version).isascii() and str(raw_version).isdigit()) or not isinstance(
            entry, Mapping
        ):
            continue
        public = _public_key(name, int(raw_version), entry.get("public_key"), algorithm)
        public_keys[int(raw_version)] = public
    return TransitKey(
        name=name,
        key_type=key_type,
        latest_version=latest,
        exportable=bool(data.get("exportable")),
        allow_plaintext_backup=bool(data.get("allow_plaintext_backup")),
        public_keys=public_keys,
    )


def _public_key(name: str, version: int, value: object, algorithm: Algorithm) -> DsPublicKey:
    source = f"transit key {name!r} v{version}"
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: Vault returned no public key")
    if algorithm is ED25519:
        # Vault gives Ed25519 public keys as base64 of the raw 32 bytes, the others as PEM.
        try:
            raw = base64.b64decode(value, validate=True)
            public = DsPublicKey(ed25519.Ed25519PublicKey.from_public_bytes(raw))
        except (binascii.Error, ValueError):
            raise KeyFormatError(f"{source}: not a base64 Ed25519 public key") from None
    else:
        public = DsPublicKey.from_pem(value.encode("ascii"), source=source)
    if public.algorithm is not algorithm:
        raise KeyFormatError(
            f"{source}: public key is {public.algorithm.name}, expected {algorithm.name}"
        )
    return public


def _parse_signature(response: Any, name: str) -> tuple[int, bytes]:
    data = response.get("data") if isinstance(response, Mapping) else None
    text = data.get("signature") if isinstance(data, Mapping) else None
    if not isinstance(text, str):
        raise SigningError(f"transit key {name!r}: Vault's answer has no signature")
    match = _SIGNATURE.match(text)
    if match is None:
        raise SigningError(f"transit key {name!r}: signature is not in the vault:vN:BASE64 form")
    return int(match.group(1)), base64.b64decode(match.group(2))


# --------------------------------------------------------------------------- signer


class VaultSigner:
    """Signs with one version of a transit key; the private key never leaves Vault.

    I/O-bound (one HTTP call per signature), so MultiProfileSigner runs it on its own thread;
    safe to call from many threads at once.
    """

    #: Not CPU work: MultiProfileSigner gives it a thread and the per-signer timeout.
    in_process = False
    #: The private key can leave Vault (used only with `allow-exportable=true`).
    exportable = False

    def __init__(
        self,
        ref: VaultRef,
        *,
        client: TransitClient,
        key: TransitKey,
        version: int,
    ) -> None:
        self._client = client
        self.version = version
        self.key_name = ref.name
        self._public_key = key.public_key(version)
        self._algorithm = key.algorithm
        self.reference = ref.describe(version)

    @property
    def keyid(self) -> str:
        """keyid of this signer's key version (each transit key version is a distinct key)."""
        return self._public_key.keyid

    @property
    def algorithm(self) -> Algorithm:
        """The algorithm of the transit key's type (`KEY_TYPES`)."""
        return self._algorithm

    @property
    def public_key(self) -> DsPublicKey:
        """The public key of this signer's version, read at load; `sign` checks each signature."""
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        """One transit `sign` call with this signer's version; checks what comes back."""
        used, signature = self._client.sign(self.key_name, self.version, self._algorithm, data)
        if used != self.version:
            raise SigningError(
                f"{self.reference}: Vault signed with version {used}, expected {self.version}"
            )
        if not self._public_key.verify(signature, data):
            raise SigningError(
                f"{self.reference}: Vault returned a signature that does not verify with "
                f"version {self.version}'s public key"
            )
        return signature

    def __repr__(self) -> str:
        return f"VaultSigner({self.reference}, keyid={self.keyid[:16]}…)"


def _read(
    ref: str | VaultRef, config: VaultConfig | None
) -> tuple[VaultRef, TransitClient, TransitKey, int]:
    """Parse, connect and read the key once; the version is the pinned one, else the latest."""
    parsed = parse_reference(ref) if isinstance(ref, str) else ref
    client = TransitClient(config or VaultConfig.from_env())
    key = client.read_key(parsed.name)
    version = parsed.version if parsed.version is not None else key.latest_version
    return parsed, client, key, version


def load(
    ref: str | VaultRef,
    options: SignerOptions | None = None,
    *,
    config: VaultConfig | None = None,
) -> VaultSigner:
    """Load the signer a `hashivault://` reference names (reads the key once from Vault)."""
    del options  # expected_keyid is checked by load_signer; nothing else applies here
    parsed, client, key, version = _read(ref, config)
    if (key.exportable or key.allow_plaintext_backup) and not parsed.allow_exportable:
        raise ConfigError(
            f"transit key {parsed.name!r} is exportable (its private key can leave Vault); "
            "refusing it (add ?allow-exportable=true to the reference to accept it)"
        )
    signer = VaultSigner(parsed, client=client, key=key, version=version)
    signer.exportable = key.exportable or key.allow_plaintext_backup
    return signer


# --------------------------------------------------------------------------- key management


def normalize_key_type(key_type: str) -> str:
    """A transit key type dssesign signs with (dssesign's `rsa-pss-3072` names accepted)."""
    wanted = _KEY_TYPE_ALIASES.get(key_type.lower(), key_type.lower())
    if wanted not in KEY_TYPES:
        raise ConfigError(
            f"unsupported transit key type {key_type!r} (supported: {', '.join(KEY_TYPES)})"
        )
    return wanted


def create_key(
    ref: str | VaultRef, key_type: str, *, config: VaultConfig | None = None
) -> tuple[TransitKey, DsPublicKey]:
    """Create a non-exportable transit signing key; returns it and version 1's public key."""
    parsed = parse_reference(ref) if isinstance(ref, str) else ref
    if parsed.version is not None:
        raise ConfigError("create-key: a new key has no versions yet; drop ?version=")
    wanted = normalize_key_type(key_type)
    key = TransitClient(config or VaultConfig.from_env()).create_key(parsed.name, wanted)
    if key.key_type != wanted or key.exportable or key.allow_plaintext_backup:
        raise ConfigError(
            f"transit key {parsed.name!r} came back as {key.key_type} "
            f"(exportable={key.exportable}); expected non-exportable {wanted}"
        )
    return key, key.public_key(key.latest_version)


def read_public_key(
    ref: str | VaultRef, *, config: VaultConfig | None = None
) -> tuple[TransitKey, int, DsPublicKey]:
    """The public key of the version a reference names (latest without `?version=`)."""
    _parsed, _client, key, version = _read(ref, config)
    return key, version, key.public_key(version)


register_scheme(SCHEME, load)
