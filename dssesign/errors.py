"""One exception hierarchy for the library; the CLI maps each branch to an exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from .codes import Code

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .verify.result import CountedIdentity, CountedKey, RoleReport, SignatureReport

#: Failures of the caller's request, not of the attestation: the CLI exits 2 for them.
_USAGE_CODES: Final = frozenset({Code.INVALID_ARGUMENT, Code.ARTIFACT_UNREADABLE})


class DssesignError(Exception):
    """Base of every error dssesign raises on purpose."""

    #: Exit status the CLI uses for this error (2: bad usage or unreadable input).
    exit_code = 2


class InputError(DssesignError):
    """Input that is malformed, unreadable, too large or otherwise refused."""


class CanonicalizationError(InputError):
    """A value RFC 8785 cannot represent (NaN, lone surrogates, integers beyond 2^53, ...)."""


class StatementError(InputError):
    """An in-toto Statement or ResourceDescriptor that breaks the spec."""


class PredicateError(InputError):
    """A predicate that fails its schema; `path` names the failing JSON location."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.path = path


class TrustRootError(InputError):
    """A trust root that breaks the format or its rules; `path` names the JSON location."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.path = path


class EnvelopeError(InputError):
    """A DSSE envelope that cannot be parsed strictly or exceeds a limit."""


class KeyFormatError(InputError):
    """Key material that cannot be loaded: bad PEM, wrong passphrase, unsupported algorithm."""


class ConfigError(DssesignError):
    """Bad usage or configuration: unknown key reference scheme, conflicting options."""


class MissingDependencyError(ConfigError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, what: str, package: str, extra: str) -> None:
        super().__init__(f"{what} needs {package}: pip install 'dssesign[{extra}]'")
        self.package = package
        self.extra = extra


class TokenNotFound(ConfigError):
    """No PKCS#11 token by that label is reachable: the configuration error a signer fails over."""


class SigningError(DssesignError):
    """Signing did not produce what the policy needs; nothing is emitted."""

    exit_code = 1


class TokenUnavailable(SigningError):
    """A PKCS#11 token could not be reached (even after one re-open): the signer may fail over."""


class AuditError(DssesignError):
    """The audit log cannot be written or read; signing stops (fail closed)."""

    exit_code = 1


class VerificationError(DssesignError):
    """Verification failed; `code` is stable and machine-readable."""

    exit_code = 1

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        # A string that is not a code is a programming error, caught here rather than shipped.
        self.code: Code = Code(code)


class VerificationFailure(VerificationError):
    """The one exception `verify` raises; carries what was learnt before failing, for reports."""

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        predicate_type: str | None = None,
        keys_counted: tuple[CountedKey, ...] = (),
        warnings: tuple[str, ...] = (),
        identities_counted: tuple[CountedIdentity, ...] = (),
        signatures: tuple[SignatureReport, ...] = (),
        roles: Mapping[str, RoleReport] | None = None,
    ) -> None:
        super().__init__(code, message)
        if self.code in _USAGE_CODES:
            self.exit_code = 2  # the request itself is unusable: bad usage or unreadable input
        self.predicate_type = predicate_type
        self.keys_counted = keys_counted
        self.identities_counted = identities_counted
        self.warnings = warnings
        #: Every envelope signature as far as the verifier judged it, and each role's count.
        self.signatures = signatures
        self.roles: Mapping[str, RoleReport] = roles if roles is not None else {}


class LockTimeoutError(DssesignError):
    """Another process held a lock for longer than the time allowed; nothing was changed."""

    exit_code = 1


class ConcurrentUpdateError(DssesignError):
    """The file changed while an update of it was being made; nothing was written."""

    exit_code = 1


class RegistryError(DssesignError):
    """An OCI registry could not be used: unreachable, refused, missing or serving bad content.

    `code` is one of the REGISTRY_* / IMAGE_NOT_FOUND codes. Exit 1: the request was fine, the
    registry operation failed (as a signing backend's outage is).
    """

    exit_code = 1

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code: Code = Code(code)
