"""Reading hvac / requests / urllib3 exceptions into one plain reason for a Vault error message.

Vault, hvac and requests each wrap failures differently; the signer reports only the reason.
"""

from __future__ import annotations

import re
from typing import Any


def _vault_errors(exc: Any) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list | tuple):
        joined = "; ".join(str(e) for e in errors)
    elif exc.args and exc.args[0] is not None:
        joined = str(exc.args[0])
    else:
        joined = ""
    # Vault wraps errors as "1 error occurred:\n\t* reason\n\n".
    joined = re.sub(r"\d+ errors? occurred:\s*", "", joined).replace("*", " ")
    return " ".join(joined.split())


def _from_urllib3(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("urllib3")


def _timed_out(exc: BaseException) -> bool:
    """requests reports some read timeouts as ConnectionError; look down the cause chain."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError) or type(seen).__name__.endswith("TimeoutError"):
            return True
        reason = getattr(seen, "reason", None)
        nested = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = (
            reason if isinstance(reason, BaseException) else nested or seen.__cause__
        ) or seen.__context__
    return False


def _root_cause(exc: BaseException) -> str:
    cause: BaseException | None = exc
    text = str(exc)
    while cause is not None:
        text = str(cause)
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        nested = cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None
        cause = nested or cause.__cause__ or cause.__context__
    match = re.search(r"\[Errno -?\d+\] ([^'\"\)]+)", text)
    return match.group(1) if match else "connection failed"
