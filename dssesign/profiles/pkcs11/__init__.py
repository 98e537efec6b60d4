"""PKCS#11 HSM keys: RFC 7512 `pkcs11:` references, signing on the token through python-pkcs11.

A reference names a token and a private key object, as cosign does::

    pkcs11:token=ci;object=attest?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:PIN

The PIN comes from `pin-source=env:NAME` or `pin-source=file:PATH` (default: the
`DSSESIGN_PKCS11_PIN` environment variable); `pin-value=` is refused. dssesign extensions in the
query: `failover-token=LABEL` (repeatable: other tokens holding the same key), `pool-size=N`
(sessions per token, default 4) and `allow-extractable=true`.

python-pkcs11 is imported lazily, so this module registers the `pkcs11` scheme even where the
`pkcs11` extra is not installed; loading a reference then says what to install.
"""

from __future__ import annotations

from ...errors import TokenNotFound, TokenUnavailable
from ...sign.signer import register_scheme
from .keys import check_protection, find_private_key, key_algorithm, public_key_of
from .manage import TokenKey, generate_keypair, list_keys, read_public_key
from .module import Module, find_token, list_tokens, load_module, open_session
from .pool import SessionPool, close_session
from .signer import Pkcs11Signer, load, load_reference
from .uri import (
    DEFAULT_POOL_SIZE,
    EC_PARAMS_ED25519,
    EC_PARAMS_P256,
    EC_PARAMS_P384,
    MAX_POOL_SIZE,
    MODULE_ENV,
    PIN_ENV,
    SOFTHSM_CANDIDATES,
    Pkcs11Uri,
    parse_uri,
    read_pin,
    resolve_module_path,
)

register_scheme("pkcs11", load_reference)

__all__ = [
    "DEFAULT_POOL_SIZE",
    "EC_PARAMS_ED25519",
    "EC_PARAMS_P256",
    "EC_PARAMS_P384",
    "MAX_POOL_SIZE",
    "MODULE_ENV",
    "PIN_ENV",
    "SOFTHSM_CANDIDATES",
    "Module",
    "Pkcs11Signer",
    "Pkcs11Uri",
    "SessionPool",
    "TokenKey",
    "TokenNotFound",
    "TokenUnavailable",
    "check_protection",
    "close_session",
    "find_private_key",
    "find_token",
    "generate_keypair",
    "key_algorithm",
    "list_keys",
    "list_tokens",
    "load",
    "load_module",
    "load_reference",
    "open_session",
    "parse_uri",
    "public_key_of",
    "read_pin",
    "read_public_key",
    "resolve_module_path",
]
