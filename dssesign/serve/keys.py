"""The service's keys: loaded once, each behind its own timeout, health tracked per key.

A key whose backend is down (KMS unreachable, HSM hung) fails the requests that use it within
its `timeout_s` and marks it unhealthy (`/readyz` says so) until it signs again; other keys are
not affected: every remote signer runs on its own worker thread (`_internal.workers`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import DssesignError
from ..sign.multisign import (
    MultiProfileSigner,
    RecordHook,
    SigningContext,
    SigningRecord,
    SigningResult,
)
from ..sign.signer import Signer, SignerOptions, load_signer
from ..sign.timestamps import Timestamping
from .config import KeyConfig, ServiceConfig

__all__ = ["KeyRing", "KeyUnavailable"]

#: Signers kept per key set (a tenant's usual combinations; bounded).
_MAX_CACHED = 256


class KeyUnavailable(DssesignError):
    """A configured key could not be loaded or its backend failed: the service answers 503."""

    exit_code = 1


@dataclass
class _Slot:
    config: KeyConfig
    signer: Signer | None = None
    healthy: bool = False
    problem: str = "not loaded yet"


class KeyRing:
    """Every `[[keys]]` entry by name; `sign` with several at once through MultiProfileSigner."""

    def __init__(self, config: ServiceConfig) -> None:
        self._slots = {key.name: _Slot(key) for key in config.keys}
        self._lock = threading.Lock()
        self._signers: dict[tuple[str, ...], MultiProfileSigner] = {}
        for name in self._slots:
            # A backend down at start-up fails only its own key (/readyz says so); it is
            # loaded again on its first use.
            with contextlib.suppress(KeyUnavailable):
                self._load(name)

    def _load(self, name: str) -> Signer:
        slot = self._slots[name]
        with self._lock:
            if slot.signer is not None:
                return slot.signer
            try:
                password = slot.config.password()
                slot.signer = load_signer(slot.config.ref, SignerOptions(password=password))
            except DssesignError as exc:
                # /readyz and clients see the class only; the detail stays in the server's log.
                slot.healthy = False
                slot.problem = f"could not be loaded ({type(exc).__name__})"
                raise KeyUnavailable(f"key {name} {slot.problem}: {exc}") from None
            slot.healthy, slot.problem = True, ""
            return slot.signer

    def signer(self, name: str) -> Signer:
        """The signer of key `name` (loaded on demand if it failed at start-up)."""
        slot = self._slots[name]
        return slot.signer if slot.signer is not None else self._load(name)

    def timeout(self, names: Sequence[str]) -> float:
        """The longest timeout of `names`: one request waits at most that long."""
        return max(self._slots[name].config.timeout_s for name in names)

    def health(self) -> dict[str, str]:
        """Each key's state: "ok" or why not (no secrets: names and error classes)."""
        return {name: "ok" if slot.healthy else slot.problem for name, slot in self._slots.items()}

    def sign(
        self,
        names: Sequence[str],
        payload: bytes,
        payload_type: str,
        *,
        context: SigningContext,
        timestamping: Timestamping | None,
        audit: RecordHook | None = None,
    ) -> SigningResult:
        """Sign with every key in `names` (all must sign); health updated from the outcome."""
        key = tuple(names)
        multi = self._signers.get(key) if timestamping is None else None
        if multi is None:
            signers = [self.signer(name) for name in names]
            by_keyid = {signer.keyid: name for signer, name in zip(signers, names, strict=True)}

            def health(record: SigningRecord) -> None:  # each signer's outcome: its key's health
                name = by_keyid.get(record.keyid)
                if name is not None:
                    self._mark(name, healthy=record.ok, problem=record.error_code or "")

            multi = MultiProfileSigner(
                signers,
                timeout=self.timeout(names),
                timestamps=timestamping,
                hooks=[health],
                audit=audit,
            )
            if timestamping is None and len(self._signers) < _MAX_CACHED:
                self._signers[key] = multi  # built once per key set: it holds no request state
        return multi.sign_detailed(payload, payload_type, context=context)

    def _mark(self, name: str, *, healthy: bool, problem: str = "") -> None:
        slot = self._slots[name]
        slot.healthy, slot.problem = (
            healthy,
            "" if healthy else f"last signature failed ({problem})",
        )
