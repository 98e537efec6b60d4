"""A checkpoint: the audit key's signature over the chain's head at one sequence number."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.canonical import MAX_SAFE_INTEGER, canonicalize
from ..core.dsse import pae
from ..errors import InputError
from .records import CHECKPOINT_PAYLOAD_TYPE


@dataclass(frozen=True)
class Checkpoint:
    """The audit key's signature over (`seq`, `head`, `time`): the chain up to `seq` as signed."""

    seq: int
    head: str
    time: str
    keyid: str
    algorithm: str
    signature: bytes

    def body(self) -> dict[str, Any]:
        """The signed fields (`head`, `seq`, `time`); `message` canonicalizes exactly these."""
        return {"head": self.head, "seq": self.seq, "time": self.time}

    def message(self) -> bytes:
        """The bytes the audit key signs: the DSSE PAE of `body` in RFC 8785 form."""
        return pae(CHECKPOINT_PAYLOAD_TYPE, canonicalize(self.body()))

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint as a log line's object (``type: checkpoint``, the signature in base64)."""
        return {
            "type": "checkpoint",
            **self.body(),
            "keyid": self.keyid,
            "algorithm": self.algorithm,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Checkpoint:
        """Parse, not verify, one checkpoint object; a missing or bad field raises `InputError`."""
        try:
            seq, head, moment = obj["seq"], obj["head"], obj["time"]
            keyid, algorithm, signature = obj["keyid"], obj["algorithm"], obj["signature"]
            if not (
                type(seq) is int
                and 0 < seq <= MAX_SAFE_INTEGER
                and all(isinstance(v, str) for v in (head, moment, keyid, algorithm, signature))
            ):
                raise TypeError
            for text in (head, moment, keyid, algorithm):
                text.encode("utf-8")  # a lone surrogate: no signed message could hold it
            raw = base64.b64decode(signature, validate=True)
        except (KeyError, TypeError, ValueError):
            raise InputError("malformed checkpoint") from None
        return cls(seq, head, moment, keyid, algorithm, raw)
