"""One holder with a key and the key it was rotated to is one signer (red-team finding).

During a rotation's transition both keys verify; counting them as two distinct keys would let
the holder of the old key (who made the new one) meet a threshold of two alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dssesign.codes import Code
from dssesign.errors import VerificationError
from dssesign.intoto.statement import PAYLOAD_TYPE, statement_payload
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.trust import add_key, init_trust_root, rotate_key
from dssesign.verify import verify
from tests.conftest import signer_for

NOW = datetime.now(UTC).replace(microsecond=0)
PAYLOAD = statement_payload(
    {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": "a" * 64}}],
        "predicateType": "https://example.com/p",
        "predicate": {},
    }
)


def test_a_key_and_its_rotated_successor_do_not_meet_a_threshold_of_two() -> None:
    old, other, new = (
        signer_for("ed25519", 21),
        signer_for("ecdsa-p256", 21),
        signer_for("ed25519", 22),
    )
    root = init_trust_root(threshold=2)
    root = add_key(root, old.public_key)
    root = add_key(root, other.public_key)
    root = rotate_key(root, old, new.public_key, transition_days=7, now=NOW - timedelta(hours=1))
    one_holder = MultiProfileSigner([old, new]).sign(PAYLOAD, PAYLOAD_TYPE)
    with pytest.raises(VerificationError) as info:
        verify(one_holder.to_json(), root)
    assert info.value.code == Code.THRESHOLD_NOT_MET
    # Two holders (the new key and another key) do.
    two_holders = MultiProfileSigner([new, other]).sign(PAYLOAD, PAYLOAD_TYPE)
    assert len(verify(two_holders.to_json(), root).keys_counted) == 2
