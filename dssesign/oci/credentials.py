"""Registry credentials from the docker config.json conventions, never from argv.

Looked up as the docker CLI does: the config directory is ``$DOCKER_CONFIG`` (else
``~/.docker``); for a registry host, ``credHelpers[host]`` names a helper, else ``credsStore``
names the default one (``docker-credential-<name> get``, the host on stdin, JSON on stdout),
else ``auths[host]`` holds ``auth`` (base64 ``user:password``), ``username``/``password``, an
``identitytoken`` (an OAuth2 refresh token) or a ``registrytoken`` (a bearer token). Nothing
found means anonymous access. Secrets never reach an error message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .._internal.fileio import read_bounded
from ..errors import ConfigError
from .reference import DOCKER_HUB

__all__ = ["Credentials", "config_path", "credentials_for"]

_MAX_CONFIG = 1024 * 1024
_MAX_HELPER_OUTPUT = 64 * 1024
_HELPER_TIMEOUT_S = 30.0
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: The key docker writes for Docker Hub in `auths` and hands to credential helpers.
_DOCKER_HUB_KEY = "https://index.docker.io/v1/"
#: What a helper prints (and exits 1 with) when it has nothing for the host.
_NOT_FOUND = b"credentials not found"


@dataclass(frozen=True)
class Credentials:
    """What to authenticate to one registry with; every field may be empty."""

    username: str = ""
    password: str = field(default="", repr=False)
    #: An OAuth2 refresh token (docker's "identity token"): exchanged at the token realm.
    identity_token: str = field(default="", repr=False)
    #: A bearer token used as is.
    registry_token: str = field(default="", repr=False)
    #: Where they came from, for messages: "config.json auths", "credential helper ecr-login".
    source: str = "none"

    @property
    def anonymous(self) -> bool:
        """Nothing to authenticate with (the registry may still allow pulls)."""
        return not (self.password or self.identity_token or self.registry_token)


ANONYMOUS = Credentials()


def config_path() -> Path:
    """The config.json docker would read: ``$DOCKER_CONFIG/config.json`` or ``~/.docker``."""
    directory = os.environ.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path.home() / ".docker" / "config.json"


def credentials_for(registry: str) -> Credentials:
    """The credentials config.json holds for `registry` (as written in the reference)."""
    path = config_path()
    if not path.is_file():
        return ANONYMOUS
    data = read_bounded(path, limit=_MAX_CONFIG, what="docker config.json")
    try:
        config = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"docker config {path} is not valid JSON") from None
    if not isinstance(config, dict):
        raise ConfigError(f"docker config {path} is not a JSON object")
    keys = _lookup_keys(registry)
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key in keys:
            name = helpers.get(key)
            if isinstance(name, str) and name:
                found = _from_helper(name, keys[0] if registry != DOCKER_HUB else _DOCKER_HUB_KEY)
                return found or ANONYMOUS
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        found = _from_helper(store, keys[0] if registry != DOCKER_HUB else _DOCKER_HUB_KEY)
        if found is not None:
            return found
    auths = config.get("auths")
    if isinstance(auths, dict):
        by_host = {_normalise(k): v for k, v in auths.items() if isinstance(k, str)}
        for key in keys:
            entry = by_host.get(_normalise(key))
            if isinstance(entry, dict):
                return _from_auths_entry(entry, path)
    return ANONYMOUS


def _lookup_keys(registry: str) -> list[str]:
    if registry == DOCKER_HUB:
        return [DOCKER_HUB, _DOCKER_HUB_KEY, "index.docker.io", "registry-1.docker.io"]
    return [registry]


def _normalise(key: str) -> str:
    """``https://host/v1/`` and ``host`` name the same registry (docker's convertToHostname)."""
    for scheme in ("https://", "http://"):
        if key.startswith(scheme):
            key = key[len(scheme) :]
    return key.split("/", 1)[0]


def _from_auths_entry(entry: dict[str, object], path: Path) -> Credentials:
    auth = entry.get("auth")
    username = entry.get("username")
    password = entry.get("password")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(f"docker config {path}: an `auth` value is not base64") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise ConfigError(f"docker config {path}: an `auth` value is not user:password")
    identity = entry.get("identitytoken")
    token = entry.get("registrytoken")
    return Credentials(
        username=username if isinstance(username, str) else "",
        password=password if isinstance(password, str) else "",
        identity_token=identity if isinstance(identity, str) else "",
        registry_token=token if isinstance(token, str) else "",
        source=f"{path} auths",
    )


def _from_helper(name: str, server: str) -> Credentials | None:
    """Run ``docker-credential-<name> get``; None when it has nothing for `server`."""
    if _HELPER_NAME.fullmatch(name) is None:
        raise ConfigError(f"docker config names a bad credential helper {name[:64]!r}")
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise ConfigError(
            f"docker config names the credential helper {name!r}, but docker-credential-{name} "
            "is not on PATH"
        )
    try:
        done = subprocess.run(
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=_HELPER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"credential helper docker-credential-{name} did not answer in "
            f"{_HELPER_TIMEOUT_S:.0f} s"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"credential helper docker-credential-{name} could not run ({exc.strerror})"
        ) from None
    if done.returncode != 0:
        if _NOT_FOUND in done.stdout.lower() or _NOT_FOUND in done.stderr.lower():
            return None
        # Its output may hold a secret: say only that it failed.
        raise ConfigError(
            f"credential helper docker-credential-{name} failed (exit {done.returncode})"
        )
    if len(done.stdout) > _MAX_HELPER_OUTPUT:
        raise ConfigError(f"credential helper docker-credential-{name} answered too much")
    try:
        answer = json.loads(done.stdout)
    except (ValueError, UnicodeDecodeError):
        answer = None
    if not isinstance(answer, dict):
        raise ConfigError(f"credential helper docker-credential-{name} did not answer JSON")
    username = answer.get("Username")
    secret = answer.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise ConfigError(
            f"credential helper docker-credential-{name} answered without Username and Secret"
        )
    source = f"credential helper {name}"
    if username == "<token>":  # docker's marker for an identity (refresh) token
        return Credentials(identity_token=secret, source=source)
    return Credentials(username=username, password=secret, source=source)
