"""Optional Prometheus metrics and structured JSON log lines; hashes and ids only, never secrets.

prometheus-client (the ``metrics`` extra) is imported on first use; without it every function
here still works and the metrics are no-ops. The metrics:

* ``dssesign_sign_total{profile,algorithm,result}``: one per signer per signing operation;
* ``dssesign_sign_seconds{profile}``: histogram of each signer's time;
* ``dssesign_verify_total{result,code}``: one per verification (``code`` is the
  `VerificationError` code, or ``ok``).

Log lines are one JSON object each, on the ``dssesign`` logger (and any ``emit`` callable),
carrying only the fields in `LOG_FIELDS`: operation id, keyid, digests, codes and names.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .sign.multisign import RecordHook, SigningRecord

__all__ = [
    "LOG_FIELDS",
    "configure",
    "count_verify",
    "enabled",
    "log_event",
    "observe_sign",
    "signing_hook",
]

LOGGER: Final = logging.getLogger("dssesign")
#: The only fields a log line may carry.
LOG_FIELDS: Final = frozenset(
    {
        "event",
        "operationId",
        "keyid",
        "algorithm",
        "profile",
        "payloadType",
        "payloadSha256",
        "signatureSha256",
        "recordSha256",
        "headSha256",
        "seq",
        "result",
        "code",
        "errorCode",
        "durationMs",
    }
)


@dataclass(frozen=True)
class _Metrics:
    sign_total: Any
    sign_seconds: Any
    verify_total: Any


_lock = threading.Lock()
_metrics: _Metrics | None = None
_tried = False


def configure(registry: Any = None) -> bool:
    """(Re)create the metrics in `registry` (default: prometheus-client's global one).

    Returns False when prometheus-client is not installed (metrics stay no-ops).
    """
    global _metrics, _tried  # noqa: PLW0603 - one set of metrics per process
    with _lock:
        _tried = True
        try:
            from prometheus_client import REGISTRY, Counter, Histogram  # noqa: PLC0415 - on first use
        except ImportError:
            _metrics = None
            return False
        target = REGISTRY if registry is None else registry
        _metrics = _Metrics(
            sign_total=Counter(
                "dssesign_sign",
                "Signatures attempted, per signer",
                ["profile", "algorithm", "result"],
                registry=target,
            ),
            sign_seconds=Histogram(
                "dssesign_sign_seconds",
                "Time one signer took to sign",
                ["profile"],
                registry=target,
            ),
            verify_total=Counter(
                "dssesign_verify", "Verifications, by result and code", ["result", "code"],
                registry=target,
            ),
        )  # fmt: skip
        return True


def _get() -> _Metrics | None:
    if not _tried:
        try:
            configure()
        except ValueError:  # already registered in the global registry by someone else
            return None
    return _metrics


def active() -> bool:
    """True once the metrics exist; never imports prometheus-client (hot paths ask this first)."""
    return _metrics is not None


def enabled() -> bool:
    """True when prometheus-client is installed and the metrics exist."""
    return _get() is not None


def observe_sign(profile: str, algorithm: str, result: str, seconds: float) -> None:
    """Count one signer's attempt (`result`: ``success`` or ``failure``) and its time."""
    metrics = _get()
    if metrics is None:
        return
    metrics.sign_total.labels(profile=profile, algorithm=algorithm, result=result).inc()
    metrics.sign_seconds.labels(profile=profile).observe(seconds)


def count_verify(result: str, code: str = "ok") -> None:
    """Count one verification: `result` is ``ok`` or ``failed``, `code` its error code."""
    metrics = _get()
    if metrics is not None:
        metrics.verify_total.labels(result=result, code=code).inc()


def log_event(event: str, *, emit: Callable[[str], None] | None = None, **fields: Any) -> str:
    """Log one JSON line; refuses any field outside `LOG_FIELDS` and any non-scalar value."""
    unknown = set(fields) - LOG_FIELDS
    if unknown:
        raise ValueError(f"log fields not allowed: {sorted(unknown)}")
    for name, value in fields.items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ValueError(f"log field {name} must be a scalar")
    line = json.dumps(
        {"event": event, **{k: v for k, v in fields.items() if v is not None}},
        sort_keys=True,
        separators=(",", ":"),
    )
    LOGGER.info(line)
    if emit is not None:
        emit(line)
    return line


def signing_hook(*, emit: Callable[[str], None] | None = None) -> RecordHook:
    """A `MultiProfileSigner` hook: metrics and one JSON log line per signer per operation."""
    from .audit import error_code, profile_of, redact_reference  # noqa: PLC0415 - a cycle

    def hook(record: SigningRecord) -> None:
        profile = profile_of(redact_reference(record.reference))
        result = "success" if record.ok else "failure"
        observe_sign(profile, record.algorithm, result, record.duration_seconds)
        log_event(
            "sign",
            emit=emit,
            operationId=record.context.operation_id if record.context else None,
            keyid=record.keyid,
            algorithm=record.algorithm,
            profile=profile,
            payloadType=record.payload_type,
            payloadSha256=record.payload_sha256,
            signatureSha256=record.signature_sha256,
            result=result,
            errorCode=error_code(record),
            durationMs=round(record.duration_seconds * 1000, 3),
        )

    return hook
