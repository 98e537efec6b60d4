"""The PKCS#11 profile on a real SoftHSM2: signing, key protection, pool, reconnect, failover."""

from __future__ import annotations

import ctypes
import threading
import time
from typing import Any

import pkcs11
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from securesystemslib.signer import Signature as SslibSignature
from securesystemslib.signer import SSlibKey

from dssesign.core.keys import pss_padding
from dssesign.errors import ConfigError, SigningError
from dssesign.profiles import pkcs11 as p11
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.sign.signer import SignerOptions, load_signer
from tests.softhsm import (
    ALGORITHMS,
    FAILOVER_A,
    FAILOVER_B,
    MAIN,
    OTHER,
    PIN,
    PIN_ENV,
    SHARED_KEY,
    SoftHsm,
)

MESSAGE = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"


def _signer(hsm: SoftHsm, token: str, obj: str, **query: str) -> p11.Pkcs11Signer:
    signer = load_signer(hsm.uri(token, obj, **query))
    assert isinstance(signer, p11.Pkcs11Signer)
    return signer


def _pyca_verify(signer: p11.Pkcs11Signer, signature: bytes, data: bytes) -> None:
    key = signer.public_key.key
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(signer.algorithm.hash_algorithm()))
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, data)
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, data, pss_padding(signer.algorithm), hashes.SHA256())


def _close_idle_sessions(pool: p11.SessionPool, deadline: float = 5.0) -> int:
    """Close, from outside, the pool's login session and every signing session not busy now.

    Takes the idle sessions out of the pool (so no worker can be inside C_Sign on them), closes
    their handles behind the pool's back and puts them back: the next workers to use them get
    CKR_SESSION_HANDLE_INVALID. (SoftHSM crashes when a session is closed during its own C_Sign
    on another thread, so busy ones are left alone.) Waits for at least one idle session.
    """
    native = pool.module.native
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        taken = []
        while True:
            try:
                taken.append(pool._idle.popleft())
            except IndexError:
                break
        fresh = [p for p in taken if id(p) not in _closed_by_test]
        if fresh:
            with pool._cond:  # the login session is never used to sign
                login = [pool._login] if pool._login is not None else []
                for session in [p.session for p in fresh] + login:
                    native.C_CloseSession(ctypes.c_ulong(session.handle))
            _closed_by_test.update(id(p) for p in fresh)
        pool._idle.extend(taken)
        if fresh:
            return len(fresh)
        time.sleep(0.0005)
    return 0


_closed_by_test: set[int] = set()


def _close_all_sessions(hsm: SoftHsm, token_label: str) -> None:
    """C_CloseAllSessions on the token's slot: every session of this process dies at once."""
    module = p11.load_module(hsm.module)
    slot_id = p11.find_token(module, token_label).slot.slot_id
    assert ctypes.CDLL(hsm.module).C_CloseAllSessions(ctypes.c_ulong(slot_id)) == 0


# --------------------------------------------------------------------------- references


def test_uri_parsing() -> None:
    uri = p11.parse_uri(
        "pkcs11:token=My%20Token;object=k1;id=%01%02"
        "?module-path=/x/lib.so&pin-source=env:P&failover-token=b&failover-token=c&pool-size=8"
    )
    assert (uri.token, uri.object, uri.id) == ("My Token", "k1", b"\x01\x02")
    assert uri.module_path == "/x/lib.so" and uri.pin_source == "env:P"
    assert uri.tokens == ("My Token", "b", "c") and uri.pool_size == 8
    assert not uri.allow_extractable
    described = uri.describe()
    assert "pin" not in described and described.startswith("pkcs11:token=My%20Token;object=k1")


def test_pin_value_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="pin-source") as caught:
        load_signer("pkcs11:token=t;object=k?pin-value=s3cret-pin")
    assert "s3cret-pin" not in str(caught.value)


@pytest.mark.parametrize(
    "ref",
    [
        "pkcs11:token=t;object=k;object=j",
        "pkcs11:token=t;bogus=1",
        "pkcs11:token=t;object=k?pool-size=0",
        "pkcs11:token=t;object=k?colour=blue",
        "pkcs11:token=t;object=k;type=public",
        "pkcs11:object=k",
    ],
)
def test_bad_references_are_config_errors(ref: str) -> None:
    with pytest.raises(ConfigError):
        load_signer(ref)


# --------------------------------------------------------------------------- signing


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_algorithm_signs_and_verifies(softhsm: SoftHsm, algorithm: str) -> None:
    signer = _signer(softhsm, MAIN, algorithm)
    assert signer.algorithm.cli_name == algorithm
    assert signer.in_process is False  # runs on its own thread, with the timeout
    assert "pin" not in signer.reference
    signature = signer.sign(MESSAGE)
    _pyca_verify(signer, signature, MESSAGE)
    assert signer.public_key.verify(signature, MESSAGE)
    assert not signer.public_key.verify(signature, MESSAGE + b"x")
    scheme = signer.algorithm.sslib_scheme
    assert scheme is not None
    sslib_key = SSlibKey.from_crypto(signer.public_key.key, keyid=signer.keyid, scheme=scheme)
    sslib_key.verify_signature(SslibSignature(signer.keyid, signature.hex()), MESSAGE)
    envelope = MultiProfileSigner([signer]).sign(b"{}", "application/vnd.in-toto+json")
    assert envelope.signatures[0].keyid == signer.keyid


def test_keyid_is_held_to_the_expected_one(softhsm: SoftHsm) -> None:
    signer = _signer(softhsm, MAIN, "ed25519")
    again = load_signer(softhsm.uri(MAIN, "ed25519"), SignerOptions(expected_keyid=signer.keyid))
    assert again.keyid == signer.keyid
    with pytest.raises(ConfigError, match="expected"):
        load_signer(softhsm.uri(MAIN, "ed25519"), SignerOptions(expected_keyid="ab" * 32))


def test_private_value_cannot_be_read_or_wrapped(softhsm: SoftHsm) -> None:
    module = p11.load_module(softhsm.module)
    token = p11.find_token(module, MAIN)
    session = p11.open_session(module, token, PIN, rw=True)
    try:
        key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="ecdsa-p256")
        assert key[pkcs11.Attribute.SENSITIVE] is True
        assert key[pkcs11.Attribute.EXTRACTABLE] is False
        with pytest.raises(pkcs11.AttributeSensitive):
            key[pkcs11.Attribute.VALUE]
        wrapping = session.generate_key(
            pkcs11.KeyType.AES, 256, store=False, template={pkcs11.Attribute.WRAP: True}
        )
        with pytest.raises((pkcs11.KeyUnextractable, pkcs11.KeyNotWrappable)):
            wrapping.wrap_key(key, mechanism=pkcs11.Mechanism.AES_KEY_WRAP_PAD)
    finally:
        p11.close_session(module, session)


def test_extractable_key_is_refused_unless_allowed(softhsm: SoftHsm) -> None:
    module = p11.load_module(softhsm.module)
    session = p11.open_session(module, p11.find_token(module, OTHER), PIN, rw=True)
    try:
        session.generate_keypair(
            pkcs11.KeyType.EC,
            store=True,
            label="loose",
            id=b"\x77",
            public_template={pkcs11.Attribute.EC_PARAMS: p11.EC_PARAMS_P256},
            private_template={
                pkcs11.Attribute.SENSITIVE: False,
                pkcs11.Attribute.EXTRACTABLE: True,
            },
        )
    finally:
        p11.close_session(module, session)
    with pytest.raises(ConfigError, match="extractable"):
        _signer(softhsm, OTHER, "loose")
    allowed = _signer(softhsm, OTHER, "loose", **{"allow-extractable": "true"})
    assert allowed.public_key.verify(allowed.sign(MESSAGE), MESSAGE)


# --------------------------------------------------------------------------- sessions


def test_sixteen_threads_share_one_signer(softhsm: SoftHsm) -> None:
    signer = _signer(softhsm, MAIN, "ecdsa-p256", **{"pool-size": "4"})
    per_thread = 200
    results: dict[tuple[int, int], bytes] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        try:
            for i in range(per_thread):
                message = MESSAGE + f"{thread}:{i}".encode()
                signature = signer.sign(message)
                with lock:
                    results[(thread, i)] = signature
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors, errors[:3]
    assert len(results) == 16 * per_thread
    for (thread, i), signature in results.items():
        assert signer.public_key.verify(signature, MESSAGE + f"{thread}:{i}".encode())
    assert signer.pools[0]._open <= 4


def test_sessions_closed_under_a_running_batch(softhsm: SoftHsm) -> None:
    signer = _signer(softhsm, MAIN, "ecdsa-p384", **{"pool-size": "4"})
    threads_count, per_thread = 8, 300
    total = threads_count * per_thread
    results: dict[tuple[int, int], bytes] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    progress = threading.Condition(lock)

    def work(thread: int) -> None:
        try:
            for i in range(per_thread):
                message = MESSAGE + f"{thread}:{i}".encode()
                signature = signer.sign(message)
                with progress:
                    assert (thread, i) not in results
                    results[(thread, i)] = signature
                    progress.notify_all()
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_count)]
    for worker in workers:
        worker.start()
    closed, done_at_close = 0, []
    for fraction in (0.1, 0.25, 0.4, 0.55):
        with progress:
            progress.wait_for(
                lambda goal=fraction * total: len(results) >= goal or bool(errors),  # type: ignore[misc]
                30,
            )
        closed += _close_idle_sessions(signer.pools[0])
        with progress:
            done_at_close.append(len(results))
    for worker in workers:
        worker.join(60)
    assert not errors, errors[:3]
    assert len(results) == total  # none lost, none duplicated (keys are unique)
    for (thread, i), signature in results.items():
        assert signer.public_key.verify(signature, MESSAGE + f"{thread}:{i}".encode())
    assert closed >= 4 and done_at_close[0] < total  # closed while the batch ran
    assert signer.pools[0].reopened >= 1


# --------------------------------------------------------------------------- failover


def test_failover_to_a_token_holding_the_same_key(
    softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = _signer(softhsm, FAILOVER_A, SHARED_KEY, **{"failover-token": FAILOVER_B})
    only_b = _signer(softhsm, FAILOVER_B, SHARED_KEY)
    assert signer.keyid == only_b.keyid
    assert signer.public_key.verify(signer.sign(MESSAGE), MESSAGE)
    # Token A goes away: its sessions die and it can no longer be found.
    monkeypatch.setattr(signer.pools[0], "token_label", "dss-unplugged")
    _close_all_sessions(softhsm, FAILOVER_A)
    for i in range(20):
        message = MESSAGE + bytes([i])
        assert signer.public_key.verify(signer.sign(message), message)
    assert signer.pools[1].reopened == 0 and signer.pools[0].reopened >= 1
    assert signer._verified == [False, True]  # A was tried once, then left for retry_after
    # A comes back: after retry_after it is checked (same keyid) and used again.
    monkeypatch.undo()
    signer.retry_after = 0.0
    signer._down_until[0] = 0.0
    assert signer.public_key.verify(signer.sign(MESSAGE), MESSAGE)
    assert signer._verified == [True, True]


def test_primary_missing_at_load_uses_the_failover_token(softhsm: SoftHsm) -> None:
    signer = _signer(softhsm, "dss-not-here", SHARED_KEY, **{"failover-token": FAILOVER_B})
    assert signer.keyid == _signer(softhsm, FAILOVER_B, SHARED_KEY).keyid
    assert signer.public_key.verify(signer.sign(MESSAGE), MESSAGE)


def test_never_fails_over_to_a_different_key(softhsm: SoftHsm) -> None:
    with pytest.raises(ConfigError, match="refusing to fail over"):
        _signer(softhsm, FAILOVER_A, SHARED_KEY, **{"failover-token": OTHER})


def test_all_tokens_gone_is_a_signing_error(
    softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = _signer(softhsm, FAILOVER_B, SHARED_KEY)
    monkeypatch.setattr(signer.pools[0], "token_label", "dss-unplugged")
    _close_all_sessions(softhsm, FAILOVER_B)
    with pytest.raises(SigningError, match="dss-unplugged") as caught:
        signer.sign(MESSAGE)
    assert "\n" not in str(caught.value) and PIN not in str(caught.value)


# --------------------------------------------------------------------------- errors


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and PIN not in text and "wrong-pin" not in text, text
    return text


@pytest.mark.parametrize("token", [MAIN, OTHER])
def test_bad_pin(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    _signer(softhsm, MAIN, "ed25519")  # MAIN is logged in by this process already
    monkeypatch.setenv("WRONG_PIN", "wrong-pin-0000")
    with pytest.raises(ConfigError) as caught:
        load_signer(softhsm.uri(token, SHARED_KEY, **{"pin-source": "env:WRONG_PIN"}))
    assert "PIN rejected" in _one_line(caught.value)


def test_wrong_token(softhsm: SoftHsm) -> None:
    with pytest.raises(ConfigError) as caught:
        load_signer(softhsm.uri("no-such-token", "ed25519"))
    assert "no PKCS#11 token labelled 'no-such-token'" in _one_line(caught.value)


def test_missing_object(softhsm: SoftHsm) -> None:
    with pytest.raises(ConfigError) as caught:
        load_signer(softhsm.uri(MAIN, "no-such-key"))
    assert "no private key" in _one_line(caught.value)


def test_missing_module(softhsm: SoftHsm) -> None:
    with pytest.raises(ConfigError) as caught:
        load_signer(softhsm.uri(MAIN, "ed25519", **{"module-path": "/nonexistent/libp11.so"}))
    assert "module not found" in _one_line(caught.value)


def test_missing_pin_source(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PIN_ENV)
    with pytest.raises(ConfigError) as caught:
        load_signer(softhsm.uri(MAIN, "ed25519"))
    assert f"pin-source env:{PIN_ENV}" in _one_line(caught.value)


def test_pin_from_file(softhsm: SoftHsm, tmp_path: Any) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    signer = load_signer(softhsm.uri(MAIN, "ed25519", **{"pin-source": f"file:{pin_file}"}))
    assert signer.public_key.verify(signer.sign(MESSAGE), MESSAGE)
