"""SoftHSM2 for the tests: tokens under a temporary SOFTHSM2_CONF, created once per test session.

tests/conftest.py registers this module as a plugin: a test names the `softhsm` fixture.
A missing softhsm2 is a failure with the command that installs it, never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

PIN = "pin-1234-test"
SO_PIN = "so-5678-test"
PIN_ENV = "DSSESIGN_TEST_HSM_PIN"
#: Tokens every test session creates.
MAIN = "dss-main"
FAILOVER_A = "dss-fo-a"
FAILOVER_B = "dss-fo-b"
OTHER = "dss-other"
E2E = "dss-e2e"
TOKENS = (MAIN, FAILOVER_A, FAILOVER_B, OTHER, E2E)
#: Key labels on MAIN, one per algorithm the profile signs with.
ALGORITHMS = ("ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-pss-3072", "rsa-pss-4096")
SHARED_KEY = "shared"


@dataclass
class SoftHsm:
    conf: Path
    module: str
    env: dict[str, str] = field(default_factory=dict)

    def uri(self, token: str, obj: str, **query: str) -> str:
        params = {"pin-source": f"env:{PIN_ENV}", "module-path": self.module, **query}
        return f"pkcs11:token={token};object={obj}?" + "&".join(
            f"{k}={v}" for k, v in params.items()
        )


def _module_path() -> str:
    from dssesign.profiles.pkcs11 import SOFTHSM_CANDIDATES

    for candidate in SOFTHSM_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    pytest.fail(
        "SoftHSM2 is not installed (no libsofthsm2.so): run scripts/ensure-softhsm.sh "
        "(apt-get install -y softhsm2); these tests need a real PKCS#11 module",
        pytrace=False,
    )


def _util() -> str:
    util = shutil.which("softhsm2-util")
    if util is None:
        pytest.fail(
            "softhsm2-util is not installed: run scripts/ensure-softhsm.sh "
            "(apt-get install -y softhsm2); these tests need a real SoftHSM2",
            pytrace=False,
        )
    return util


def import_ec_key(session: Any, private: ec.EllipticCurvePrivateKey, label: str) -> None:
    """Import a P-256 key pair as a non-extractable, sensitive token key (for failover tests)."""
    import pkcs11
    from cryptography.hazmat.primitives import serialization

    from dssesign.profiles.pkcs11 import EC_PARAMS_P256

    point = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    key_id = b"\x5a\x5a"
    session.create_object(
        {
            pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY,
            pkcs11.Attribute.KEY_TYPE: pkcs11.KeyType.EC,
            pkcs11.Attribute.TOKEN: True,
            pkcs11.Attribute.PRIVATE: True,
            pkcs11.Attribute.SENSITIVE: True,
            pkcs11.Attribute.EXTRACTABLE: False,
            pkcs11.Attribute.SIGN: True,
            pkcs11.Attribute.LABEL: label,
            pkcs11.Attribute.ID: key_id,
            pkcs11.Attribute.EC_PARAMS: EC_PARAMS_P256,
            pkcs11.Attribute.VALUE: private.private_numbers().private_value.to_bytes(32, "big"),
        }
    )
    session.create_object(
        {
            pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PUBLIC_KEY,
            pkcs11.Attribute.KEY_TYPE: pkcs11.KeyType.EC,
            pkcs11.Attribute.TOKEN: True,
            pkcs11.Attribute.VERIFY: True,
            pkcs11.Attribute.LABEL: label,
            pkcs11.Attribute.ID: key_id,
            pkcs11.Attribute.EC_PARAMS: EC_PARAMS_P256,
            pkcs11.Attribute.EC_POINT: bytes([0x04, len(point)]) + point,
        }
    )


_created: list[SoftHsm] = []


@pytest.fixture(scope="session", name="softhsm")
def softhsm_fixture(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    """SoftHSM2 with the test tokens and keys; SOFTHSM2_CONF points at them from then on.

    Each module that imports this fixture gets its own session-scoped copy, but the PKCS#11
    module reads SOFTHSM2_CONF once per process, so the tokens are created only once.
    """
    if _created:
        return _created[0]
    util = _util()
    module = _module_path()
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    # Set for the rest of the process: the module cannot be pointed elsewhere once loaded.
    os.environ["SOFTHSM2_CONF"] = str(conf)
    os.environ[PIN_ENV] = PIN
    env = {"SOFTHSM2_CONF": str(conf)}
    for label in TOKENS:
        # PINs reach softhsm2-util's argv here: test-only PINs for throwaway tokens.
        subprocess.run(
            [util, "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", PIN],
            check=True,
            capture_output=True,
            env={**os.environ, **env},
        )
    hsm = SoftHsm(conf=conf, module=module, env=env)
    _populate(hsm)
    _created.append(hsm)
    return hsm


def _populate(hsm: SoftHsm) -> None:
    from dssesign.core.keys import get_algorithm
    from dssesign.profiles import pkcs11 as p11

    for algorithm in ALGORITHMS:
        p11.generate_keypair(hsm.uri(MAIN, algorithm), get_algorithm(algorithm))
    shared = ec.generate_private_key(ec.SECP256R1())
    module = p11.load_module(hsm.module)
    for label, key in (
        (FAILOVER_A, shared),
        (FAILOVER_B, shared),
        (OTHER, ec.generate_private_key(ec.SECP256R1())),
    ):
        token = p11.find_token(module, label)
        session = p11.open_session(module, token, PIN, rw=True)
        try:
            import_ec_key(session, key, SHARED_KEY)
        finally:
            p11.close_session(module, session)
