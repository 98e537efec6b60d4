"""One exception hierarchy for the library; the CLI maps each branch to an exit code."""

from __future__ import annotations


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


class EnvelopeError(InputError):
    """A DSSE envelope that cannot be parsed strictly or exceeds a limit."""


class KeyFormatError(InputError):
    """Key material that cannot be loaded: bad PEM, wrong passphrase, unsupported algorithm."""


class ConfigError(DssesignError):
    """Bad usage or configuration: unknown key reference scheme, conflicting options."""


class SigningError(DssesignError):
    """Signing did not produce what the policy needs; nothing is emitted."""

    exit_code = 1


class VerificationError(DssesignError):
    """Verification failed; `code` is stable and machine-readable."""

    exit_code = 1

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class LockTimeoutError(DssesignError):
    """Another process held a lock for longer than the time allowed; nothing was changed."""

    exit_code = 1


class ConcurrentUpdateError(DssesignError):
    """The file changed while an update of it was being made; nothing was written."""

    exit_code = 1
