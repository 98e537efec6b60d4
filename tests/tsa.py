"""A real RFC 3161 TSA for the tests: `openssl ts -reply` behind a loopback HTTP server.

tests/conftest.py registers this module as a plugin: a test names the `tsa` fixture (marker
`tsa`). One test CA and TSA per session, made with pyca/cryptography; `tsa.make_tsa(...)` starts
more, with other certificates or a misbehaviour, all stopped at the session's end.

Measured: with a `certs` line in its TSA config OpenSSL writes the SignedData certificate SET
unsorted, which strict DER parsers (rfc3161-client) refuse. So tokens embed the signer
certificate only (certReq in the query) and the chain goes to the trust root (`chain_pem`).

OpenSSL refuses to sign with a TSA certificate whose EKU is not critical (RFC 3161 2.3), so
such a TSA answers with a token OpenSSL made under a helper certificate and then re-signed by
its own key here (`resign`, which also moves a token's time): a real token in every other way.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import pytest
import rfc3161_client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dssesign.timestamp import TimestampAuthority

#: What a TSA server answers: a token, or one of the faults the signing side must catch.
Behaviour = Literal["ok", "wrong-nonce", "other-imprint", "reject", "garbage"]
KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_PEM = serialization.Encoding.PEM
_DER = serialization.Encoding.DER

_CONFIG = """\
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = $ENV::TSA_SERIAL
crypto_device = builtin
signer_cert = {cert}
signer_key = {key}
signer_digest = sha256
default_policy = 1.3.6.1.4.1.57264.2
digests = sha1, sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def openssl_binary() -> str:
    found = shutil.which("openssl")
    if found is None:
        pytest.fail(
            "openssl is not installed (apt-get install -y openssl): the RFC 3161 tests need "
            "`openssl ts` as a real TSA",
            pytrace=False,
        )
    return found


# --- DER: just enough to write a SignedData and to edit a query ------------------------------


def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def der_seq(*parts: bytes) -> bytes:
    return der(0x30, b"".join(parts))


def der_set(*parts: bytes) -> bytes:
    return der(0x31, b"".join(sorted(parts)))  # DER orders a SET OF by encoding


def der_int(value: int) -> bytes:
    return der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        while arc := arc >> 7:
            chunk.append(0x80 | (arc & 0x7F))
        out += bytes(reversed(chunk))
    return der(0x06, bytes(out))


def der_children(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int, int]]:
    """(tag, contents start, contents end) of the elements filling data[start:end]."""
    end = len(data) if end is None else end
    items = []
    while start < end:
        tag, length, pos = data[start], data[start + 1], start + 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        items.append((tag, pos, pos + length))
        start = pos + length
    return items


def _inside(data: bytes, element: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    return der_children(data, element[1], element[2])


def tst_info_der(response: bytes) -> bytes:
    """The DER TSTInfo inside a TimeStampResp (the bytes the TSA's messageDigest covers)."""
    top = der_children(response)[0]
    content_info = _inside(response, _inside(response, top)[1])
    signed_data = _inside(response, _inside(response, content_info[1])[0])
    encapsulated = _inside(response, signed_data[2])
    octets = _inside(response, encapsulated[1])[0]
    return response[octets[1] : octets[2]]


def signature_algorithm_span(response: bytes) -> range:
    """Where the SignerInfo's signatureAlgorithm (header and contents) lies in a TimeStampResp."""
    top = der_children(response)[0]
    content_info = _inside(response, _inside(response, top)[1])
    signed_data = _inside(response, _inside(response, content_info[1])[0])
    (signer_info,) = _inside(response, signed_data[-1])
    fields = _inside(response, signer_info)
    assert fields[3][0] == 0xA0, "the SignerInfo has no signed attributes"
    return range(fields[3][2], fields[4][2])


def _flip_last(data: bytes, position: int) -> bytes:
    return data[: position - 1] + bytes([data[position - 1] ^ 0x01]) + data[position:]


def _edit_query(query: bytes, behaviour: Behaviour) -> bytes:
    """A TimeStampReq with its nonce or its imprint changed (still valid DER)."""
    ((_, start, end),) = der_children(query)
    fields = der_children(query, start, end)
    if behaviour == "wrong-nonce":
        nonce = [f for f in fields if f[0] == 0x02][1]  # after the version
        return _flip_last(query, nonce[2])
    imprint = der_children(query, fields[1][1], fields[1][2])
    return _flip_last(query, imprint[1][2])


# --- certificates -----------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _new_key(key_type: KeyType) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


class Credentials:
    """A certificate and its private key."""

    def __init__(self, certificate: x509.Certificate, key: PrivateKey) -> None:
        self.certificate = certificate
        self.key = key

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(_PEM)


def make_ca(common_name: str = "dssesign test TSA CA") -> Credentials:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=3650))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return Credentials(certificate, key)


def make_tsa_certificate(
    ca: Credentials,
    *,
    common_name: str = "dssesign test TSA",
    eku_critical: bool = True,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key_type: KeyType = "ec",
    key: PrivateKey | None = None,
) -> Credentials:
    """A TSA certificate: timeStamping-only EKU, digitalSignature + nonRepudiation.

    `key`: certify this key (as a CA re-certifying a TSA's key does) rather than a new one.
    """
    key = key or _new_key(key_type)
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), eku_critical)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Credentials(certificate, key)


#: CMS digests `resign` can sign with: name -> (OID, hash, ECDSA and RSA signatureAlgorithm).
_CMS_DIGESTS: dict[str, tuple[str, hashes.HashAlgorithm, str, str]] = {
    "sha256": (
        "2.16.840.1.101.3.4.2.1",
        hashes.SHA256(),
        "1.2.840.10045.4.3.2",
        "1.2.840.113549.1.1.11",
    ),
    "sha1": ("1.3.14.3.2.26", hashes.SHA1(), "1.2.840.10045.4.1", "1.2.840.113549.1.1.5"),
}


def resign(
    response: bytes,
    signer: Credentials,
    *,
    gen_time: datetime | None = None,
    digest: Literal["sha256", "sha1"] = "sha256",
    listed: Literal["sha256", "sha1"] | None = None,
    ess: x509.Certificate | None = None,
) -> bytes:
    """`response`'s TSTInfo (its time moved to `gen_time`) in a SignedData signed by `signer`.

    The SignedData is what OpenSSL writes: contentType, messageDigest and ESS
    signingCertificateV2 signed, the signer certificate embedded, one SignerInfo. `digest` is
    the SignerInfo's digestAlgorithm (messageDigest and signature hash); `listed` the one the
    SignedData's digestAlgorithms names (by default the same); `ess` the certificate the ESS
    attribute names (by default the signer's).
    """
    info = rfc3161_client.decode_timestamp_response(response).tst_info
    tst = tst_info_der(response)
    if gen_time is not None:
        old = der(0x18, info.gen_time.strftime("%Y%m%d%H%M%SZ").encode())
        new = der(0x18, gen_time.astimezone(UTC).strftime("%Y%m%d%H%M%SZ").encode())
        assert tst.count(old) == 1, "the genTime is not where it should be"
        tst = tst.replace(old, new)
    cert = signer.certificate
    cert_der = cert.public_bytes(_DER)
    oid, algorithm, ecdsa_oid, rsa_oid = _CMS_DIGESTS[digest]
    digest_algorithm = der_seq(der_oid(oid), der(0x05, b""))
    listed_algorithm = der_seq(der_oid(_CMS_DIGESTS[listed or digest][0]), der(0x05, b""))
    attributes = der_set(
        der_seq(der_oid("1.2.840.113549.1.9.3"), der_set(der_oid("1.2.840.113549.1.9.16.1.4"))),
        der_seq(
            der_oid("1.2.840.113549.1.9.4"),
            der_set(der(0x04, hashlib.new(algorithm.name, tst).digest())),
        ),
        der_seq(
            der_oid("1.2.840.113549.1.9.16.2.47"),
            der_set(
                der_seq(
                    der_seq(
                        der_seq(
                            der(0x04, hashlib.sha256((ess or cert).public_bytes(_DER)).digest())
                        )
                    )
                )
            ),
        ),
    )
    if isinstance(signer.key, ec.EllipticCurvePrivateKey):
        signature_algorithm = der_seq(der_oid(ecdsa_oid))
        signature = signer.key.sign(attributes, ec.ECDSA(algorithm))
    else:
        signature_algorithm = der_seq(der_oid(rsa_oid), der(0x05, b""))
        signature = signer.key.sign(attributes, padding.PKCS1v15(), algorithm)
    signer_info = der_seq(
        der_int(1),
        der_seq(cert.issuer.public_bytes(), der_int(cert.serial_number)),
        digest_algorithm,
        b"\xa0" + attributes[1:],
        signature_algorithm,
        der(0x04, signature),
    )
    signed_data = der_seq(
        der_int(3),
        der_set(listed_algorithm),
        der_seq(der_oid("1.2.840.113549.1.9.16.1.4"), der(0xA0, der(0x04, tst))),
        der(0xA0, cert_der),
        der_set(signer_info),
    )
    token = der_seq(der_oid("1.2.840.113549.1.7.2"), der(0xA0, signed_data))
    return der_seq(der_seq(der_int(0)), token)


# --- the server -------------------------------------------------------------------------------


class Tsa:
    """One running TSA: `url` takes application/timestamp-query POSTs.

    `behaviour` and `delay` (seconds before answering) may be changed while it runs; prefer a
    TSA of one's own (`make_tsa`) for that, the session's `tsa` is shared.
    """

    def __init__(
        self,
        pool: TsaPool,
        directory: Path,
        ca: Credentials,
        signer: Credentials,
        *,
        behaviour: Behaviour = "ok",
        openssl_signer: Credentials | None = None,
    ) -> None:
        self._pool = pool
        self.directory = directory
        self.ca = ca
        self.signer = signer
        self.behaviour: Behaviour = behaviour
        self.delay = 0.0
        self.requests = 0
        # OpenSSL signs with the TSA's own certificate, or a helper when it would refuse that.
        self._resign = openssl_signer is not None
        used = openssl_signer or signer
        key_path = directory / "tsa.key"
        key_path.write_bytes(
            used.key.private_bytes(
                _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (directory / "openssl-signer.pem").write_bytes(used.pem)
        self.config = directory / "tsa.cnf"
        self.config.write_text(
            _CONFIG.format(cert=directory / "openssl-signer.pem", key=key_path), "ascii"
        )
        self.ca_path = directory / "ca.pem"
        self.ca_path.write_bytes(self.ca_pem)
        self.tsa_cert_path = directory / "tsa.pem"
        self.tsa_cert_path.write_bytes(self.tsa_cert_pem)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.tsa = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/tsa"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def ca_pem(self) -> bytes:
        return self.ca.pem

    @property
    def tsa_cert_pem(self) -> bytes:
        return self.signer.pem

    @property
    def chain_pem(self) -> bytes:
        """TSA certificate then CA: what a trust root's certificateChain holds."""
        return self.tsa_cert_pem + self.ca_pem

    @property
    def chain(self) -> tuple[x509.Certificate, x509.Certificate]:
        return (self.signer.certificate, self.ca.certificate)

    def authority(self, name: str = "test-tsa", **fields: Any) -> TimestampAuthority:
        """This TSA as a trust root's entry (`fields`: valid_from, valid_until, revoked_at...)."""
        return TimestampAuthority(name=name, chain=self.chain, **fields)

    def make_tsa(
        self,
        *,
        eku_critical: bool = True,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        own_ca: bool = False,
        key_type: KeyType = "ec",
        behaviour: Behaviour = "ok",
    ) -> Tsa:
        """Another running TSA (stopped at the session's end); by default under this CA."""
        return self._pool.start(
            eku_critical=eku_critical,
            not_before=not_before,
            not_after=not_after,
            own_ca=own_ca,
            key_type=key_type,
            behaviour=behaviour,
        )

    def post(self, query: bytes) -> bytes:
        """POST a DER TimeStampReq (made by anyone) and return the raw reply."""
        request = urllib.request.Request(
            self.url, data=query, headers={"Content-Type": "application/timestamp-query"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body: bytes = response.read()
            return body

    def query(self, data: bytes, *, digest: str = "sha256") -> bytes:
        """`openssl ts -query` over `data` (any digest OpenSSL knows, sha1 too), with certReq."""
        with tempfile.TemporaryDirectory(dir=self.directory) as work:
            path = Path(work, "data.bin")
            path.write_bytes(data)
            result = subprocess.run(
                [openssl_binary(), "ts", "-query", "-data", str(path), f"-{digest}", "-cert"],
                capture_output=True,
                timeout=30,
                check=True,
            )
        return result.stdout

    def reply(self, query: bytes) -> bytes:
        """What this TSA answers to `query` (its behaviour applied)."""
        self.requests += 1
        if self.delay:
            time.sleep(self.delay)
        if self.behaviour == "reject":
            return der_seq(der_seq(der_int(2)))  # PKIStatusInfo: rejection, no token
        if self.behaviour == "garbage":
            return b"\x30\x03not a timestamp"
        if self.behaviour in ("wrong-nonce", "other-imprint"):
            query = _edit_query(query, self.behaviour)
        response = self._openssl_reply(query)
        return resign(response, self.signer) if self._resign else response

    def _openssl_reply(self, query: bytes) -> bytes:
        with tempfile.TemporaryDirectory(dir=self.directory) as work:
            query_path, reply_path = Path(work, "query.tsq"), Path(work, "reply.tsr")
            query_path.write_bytes(query)
            serial = Path(work, "serial")  # a fresh random serial per request: no shared file
            serial.write_text(f"{secrets.randbits(63):016X}\n", "ascii")
            result = subprocess.run(
                [
                    *(openssl_binary(), "ts", "-reply", "-config", str(self.config)),
                    *("-queryfile", str(query_path), "-out", str(reply_path)),
                ],
                capture_output=True,
                timeout=30,
                env={**os.environ, "TSA_SERIAL": str(serial)},
                check=False,
            )
            if result.returncode != 0 or not reply_path.is_file():
                raise RuntimeError(f"openssl ts -reply failed: {result.stderr.decode()[-2000:]}")
            return reply_path.read_bytes()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops concurrent connects (1 s SYN retries)


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_POST(self) -> None:
        tsa: Tsa = self.server.tsa  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get_content_type() != "application/timestamp-query":
            self._answer(415, b"", "text/plain")
            return
        if not 0 < length <= 65536:
            self._answer(400, b"", "text/plain")
            return
        try:
            body = tsa.reply(self.rfile.read(length))
        except Exception as exc:
            self._answer(500, str(exc).encode()[:4000], "text/plain")
            return
        self._answer(200, body, "application/timestamp-reply")

    def _answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows failures, not every request


class TsaPool:
    """Every TSA of a session: one shared CA, and their stop at the end."""

    def __init__(self, directory: Path) -> None:
        openssl_binary()
        self.directory = directory
        self.ca = make_ca()
        self._servers: list[Tsa] = []
        self._lock = threading.Lock()

    def start(
        self,
        *,
        eku_critical: bool = True,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        own_ca: bool = False,
        key_type: KeyType = "ec",
        behaviour: Behaviour = "ok",
    ) -> Tsa:
        ca = make_ca("dssesign other test CA") if own_ca else self.ca
        signer = make_tsa_certificate(
            ca,
            eku_critical=eku_critical,
            not_before=not_before,
            not_after=not_after,
            key_type=key_type,
        )
        helper = None if eku_critical else make_tsa_certificate(ca, common_name="openssl helper")
        with self._lock:
            directory = self.directory / f"tsa-{len(self._servers)}"
            directory.mkdir()
            server = Tsa(self, directory, ca, signer, behaviour=behaviour, openssl_signer=helper)
            self._servers.append(server)
        return server

    def close(self) -> None:
        with self._lock:
            servers, self._servers = self._servers, []
        for server in servers:
            server.close()


@pytest.fixture(scope="session", name="tsa")
def tsa_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tsa]:
    """The session's TSA (ECDSA P-256 under a test CA); `tsa.make_tsa(...)` for others."""
    pool = TsaPool(tmp_path_factory.mktemp("tsa"))
    try:
        yield pool.start()
    finally:
        pool.close()
