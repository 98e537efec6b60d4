"""Key management on a token: non-extractable, sensitive key generation; listing; public keys."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ...core.keys import ECDSA_P256, ECDSA_P384, ED25519, RSA_PSS_3072, RSA_PSS_4096, Algorithm
from ...core.keys import PublicKey as DsPublicKey
from ...errors import (
    ConfigError,
    KeyFormatError,
)
from .keys import _attr_or_none, find_private_key, key_algorithm, public_key_of
from .module import _ckr, _p11, find_token, list_tokens, load_module, open_session
from .pool import _close_quietly
from .uri import (
    EC_PARAMS_ED25519,
    EC_PARAMS_P256,
    EC_PARAMS_P384,
    Pkcs11Uri,
    parse_uri,
    read_pin,
    resolve_module_path,
)

# --------------------------------------------------------------------------- key management


@dataclass(frozen=True)
class TokenKey:
    """One key pair on a token, as `dssesign hsm list` shows it."""

    token: str
    label: str
    id: bytes
    algorithm: str
    keyid: str
    extractable: bool
    sensitive: bool

    def to_dict(self) -> dict[str, object]:
        """This key as one entry of `hsm list --json` (`id` in hex)."""
        return {
            "token": self.token,
            "label": self.label,
            "id": self.id.hex(),
            "algorithm": self.algorithm,
            "keyid": self.keyid,
            "extractable": self.extractable,
            "sensitive": self.sensitive,
        }


def generate_keypair(ref: str | Pkcs11Uri, algorithm: Algorithm) -> tuple[DsPublicKey, bytes]:
    """Create a token key pair: CKA_TOKEN, CKA_SENSITIVE true, CKA_EXTRACTABLE false.

    Returns the public key and the CKA_ID used (the URI's `id=`, else 16 random bytes).
    """
    pkcs11 = _p11()
    uri = parse_uri(ref) if isinstance(ref, str) else ref
    if uri.token is None or uri.object is None:
        raise ConfigError("hsm keygen: the reference needs token= and object=")
    module = load_module(resolve_module_path(uri))
    pin = read_pin(uri)
    token = find_token(module, uri.token, uri.serial)
    key_id = uri.id if uri.id is not None else os.urandom(16)
    session = open_session(module, token, pin, rw=True)
    try:
        with module.calls():
            clash = {pkcs11.Attribute.LABEL: uri.object}
            if list(session.get_objects(clash)) or list(
                session.get_objects({pkcs11.Attribute.ID: key_id})
            ):
                raise ConfigError(
                    f"token {uri.token!r} already holds an object labelled {uri.object!r} "
                    "or with that id; refusing to create a second key under it"
                )
            common = {pkcs11.Attribute.TOKEN: True, pkcs11.Attribute.LABEL: uri.object}
            private_template = {
                **common,
                pkcs11.Attribute.PRIVATE: True,
                pkcs11.Attribute.SENSITIVE: True,
                pkcs11.Attribute.EXTRACTABLE: False,
                pkcs11.Attribute.SIGN: True,
                pkcs11.Attribute.DECRYPT: False,
                pkcs11.Attribute.UNWRAP: False,
            }
            public_template: dict[Any, Any] = {**common, pkcs11.Attribute.VERIFY: True}
            if algorithm in (ECDSA_P256, ECDSA_P384, ED25519):
                params = {
                    ECDSA_P256.name: EC_PARAMS_P256,
                    ECDSA_P384.name: EC_PARAMS_P384,
                    ED25519.name: EC_PARAMS_ED25519,
                }[algorithm.name]
                public_template[pkcs11.Attribute.EC_PARAMS] = params
                is_ed = algorithm is ED25519
                _public, private = session.generate_keypair(
                    pkcs11.KeyType.EC_EDWARDS if is_ed else pkcs11.KeyType.EC,
                    store=True,
                    id=key_id,
                    label=uri.object,
                    mechanism=(
                        pkcs11.Mechanism.EC_EDWARDS_KEY_PAIR_GEN
                        if is_ed
                        else pkcs11.Mechanism.EC_KEY_PAIR_GEN
                    ),
                    public_template=public_template,
                    private_template=private_template,
                )
            elif algorithm in (RSA_PSS_3072, RSA_PSS_4096):
                public_template[pkcs11.Attribute.PUBLIC_EXPONENT] = b"\x01\x00\x01"
                _public, private = session.generate_keypair(
                    pkcs11.KeyType.RSA,
                    3072 if algorithm is RSA_PSS_3072 else 4096,
                    store=True,
                    id=key_id,
                    label=uri.object,
                    public_template=public_template,
                    private_template=private_template,
                )
            else:
                raise ConfigError(f"hsm keygen: {algorithm.name} is not available on PKCS#11")
            return public_key_of(session, private, algorithm), key_id
    except pkcs11.PKCS11Error as exc:
        raise ConfigError(f"hsm keygen on token {uri.token!r} failed: {_ckr(exc)}") from None
    finally:
        _close_quietly(module, session)


def read_public_key(ref: str | Pkcs11Uri) -> DsPublicKey:
    """The public key a reference names (logging in only when a PIN is configured)."""
    pkcs11 = _p11()
    uri = parse_uri(ref) if isinstance(ref, str) else ref
    if uri.token is None or (uri.object is None and uri.id is None):
        raise ConfigError("the reference needs token= and object= (or id=)")
    module = load_module(resolve_module_path(uri))
    pin = read_pin(uri, required=False)
    token = find_token(module, uri.token, uri.serial)
    session = open_session(module, token, pin)
    try:
        with module.calls():
            if pin is not None:
                private = find_private_key(session, uri, uri.token)
                return public_key_of(session, private, key_algorithm(private))
            attrs: dict[Any, Any] = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PUBLIC_KEY}
            if uri.object is not None:
                attrs[pkcs11.Attribute.LABEL] = uri.object
            if uri.id is not None:
                attrs[pkcs11.Attribute.ID] = uri.id
            found = list(session.get_objects(attrs))
            if len(found) != 1:
                raise ConfigError(
                    f"{len(found)} public keys match {uri.describe()} (set a PIN to look up "
                    "the private key instead)"
                )
            return public_key_of(session, found[0], key_algorithm(found[0]))
    except pkcs11.PKCS11Error as exc:
        raise ConfigError(f"PKCS#11 token {uri.token!r}: {_ckr(exc)}") from None
    finally:
        _close_quietly(module, session)


def list_keys(ref: str | Pkcs11Uri) -> tuple[list[str], list[TokenKey]]:
    """Token labels, and the key pairs on them (all tokens, or the one `token=` names)."""
    pkcs11 = _p11()
    uri = parse_uri(ref) if isinstance(ref, str) else ref
    module = load_module(resolve_module_path(uri))
    pin = read_pin(uri, required=False)
    tokens = [t for t in list_tokens(module) if uri.token is None or t.label == uri.token]
    if uri.token is not None and not tokens:
        find_token(module, uri.token)  # raises with the list of known tokens
    keys: list[TokenKey] = []
    for token in tokens:
        session = open_session(module, token, pin)
        try:
            with module.calls():
                klass = pkcs11.ObjectClass.PRIVATE_KEY if pin else pkcs11.ObjectClass.PUBLIC_KEY
                # Collect first: one find operation per session at a time.
                for obj in list(session.get_objects({pkcs11.Attribute.CLASS: klass})):
                    try:
                        algorithm = key_algorithm(obj)
                        public = public_key_of(session, obj, algorithm)
                    except (KeyFormatError, ConfigError):
                        continue
                    keys.append(
                        TokenKey(
                            token=token.label,
                            label=str(_attr_or_none(obj, pkcs11.Attribute.LABEL) or ""),
                            id=bytes(_attr_or_none(obj, pkcs11.Attribute.ID) or b""),
                            algorithm=algorithm.name,
                            keyid=public.keyid,
                            extractable=bool(_attr_or_none(obj, pkcs11.Attribute.EXTRACTABLE)),
                            sensitive=bool(_attr_or_none(obj, pkcs11.Attribute.SENSITIVE)),
                        )
                    )
        except pkcs11.PKCS11Error as exc:
            raise ConfigError(f"PKCS#11 token {token.label!r}: {_ckr(exc)}") from None
        finally:
            _close_quietly(module, session)
    return [t.label for t in tokens], keys
