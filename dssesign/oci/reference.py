"""Image references, parsed as docker and cosign parse them: ``[REGISTRY/]REPO[:TAG][@DIGEST]``.

The grammar is distribution's `reference` package (lowercase path components separated by
``.``, ``_``, ``__`` or dashes; tags of at most 128 word characters, dots and dashes), with its
conventions for Docker Hub: a first component without ``.`` or ``:`` that is not
``localhost`` is a path, not a host, so ``alpine`` is ``docker.io/library/alpine``. Only
SHA-256 image digests are accepted: both attachment layouts name tags after them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["DOCKER_HUB", "ImageRef", "parse_reference"]

#: The name Docker Hub goes by in references and in config.json (`auths` keys differ: see
#: credentials.py); its API lives at registry-1.docker.io.
DOCKER_HUB = "docker.io"
_DOCKER_HUB_API = "registry-1.docker.io"
#: Other names docker reads as Docker Hub.
_DOCKER_HUB_ALIASES = frozenset({"index.docker.io", "registry-1.docker.io"})
_MAX_REFERENCE = 512

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_HOST = re.compile(
    r"(?:localhost|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*"
    r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class ImageRef:
    """One image: `registry` (as written, e.g. ``ghcr.io`` or ``127.0.0.1:5000``), `repository`,
    and a `tag` and/or `digest` (``sha256:<hex>``)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """Where the distribution API of `registry` answers."""
        return _DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """The digest if there is one, else the tag: what `/v2/<repo>/manifests/` takes."""
        if self.digest is not None:
            return self.digest
        assert self.tag is not None  # parse_reference never builds one with neither
        return self.tag

    def with_digest(self, digest: str) -> ImageRef:
        """The same repository pinned to `digest` (the tag kept only for display)."""
        if _DIGEST.fullmatch(digest) is None:
            raise ConfigError(f"not a sha256 image digest: {digest[:80]!r}")
        return ImageRef(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> ImageRef:
    """Parse an image reference; ConfigError naming what is wrong with it.

    A reference with neither tag nor digest means the tag ``latest``, as docker reads it.
    """
    shown = repr(text[:80])
    if not text:
        raise ConfigError(
            "bad image reference '': empty (expected REGISTRY/REPOSITORY[:TAG][@sha256:HEX])"
        )
    if len(text) > _MAX_REFERENCE:
        raise ConfigError(
            f"bad image reference {shown}...: longer than {_MAX_REFERENCE} characters"
        )
    if not text.isascii():
        raise ConfigError(f"bad image reference {shown}: not ASCII")
    if not text.isprintable():
        raise ConfigError(f"bad image reference {shown}: a control character or space")
    name, at, digest = text.partition("@")
    if at and not digest:
        raise ConfigError(
            f"bad image reference {shown}: nothing after '@' (an unset digest variable?)"
        )
    if digest and _DIGEST.fullmatch(digest) is None:
        algorithm = digest.partition(":")[0]
        why = (
            "only sha256 image digests are supported"
            if algorithm not in {"", "sha256"}
            else "a digest is sha256: and 64 lowercase hex digits"
        )
        raise ConfigError(f"bad image reference {text!r}: {why}")
    registry, slash, rest = name.partition("/")
    if not slash or ("." not in registry and ":" not in registry and registry != "localhost"):
        registry, rest = DOCKER_HUB, name
    elif _HOST.fullmatch(registry) is None:
        raise ConfigError(f"bad image reference {text!r}: bad registry host {registry!r}")
    tag: str | None = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if _TAG.fullmatch(tag) is None:
            raise ConfigError(f"bad image reference {text!r}: bad tag {tag!r}")
    if _PATH.fullmatch(rest) is None:
        raise ConfigError(
            f"bad image reference {text!r}: repository {rest!r} must be lowercase path "
            "components (letters, digits, separators . _ __ -)"
        )
    if registry in _DOCKER_HUB_ALIASES:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in rest:
        rest = f"library/{rest}"
    if tag is None and not digest:
        tag = "latest"
    return ImageRef(registry, rest, tag, digest or None)
