"""Software keys: PKCS#8 PEM files on disk, signing in-process with pyca/cryptography."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeAlias
from urllib.parse import unquote, urlparse

from cryptography.exceptions import InternalError, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa

from .._internal.fileio import NamedPath, OutputSet, read_bounded
from ..core.keys import Algorithm, PublicKey, algorithm_of, get_algorithm, pss_padding
from ..errors import ConfigError, KeyFormatError
from ..sign.signer import SignerOptions, register_path_loader

PrivateKeyType: TypeAlias = (
    ed25519.Ed25519PrivateKey
    | ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | mldsa.MLDSA65PrivateKey
)

_MAX_KEY_FILE = 64 * 1024


class SoftwareSigner:
    """Signs with a private key held in this process; deterministic where the algorithm allows."""

    #: Runs on the caller's thread in MultiProfileSigner: CPU-bound and never blocks on I/O.
    in_process = True
    exportable = False  # a key file: the passphrase, not a device, protects it

    def __init__(self, private_key: PrivateKeyType, *, reference: str = "software") -> None:
        self._private_key = private_key
        self._algorithm = algorithm_of(private_key)
        self._public_key = PublicKey(private_key.public_key())
        self.reference = reference
        self._sign = self._signing_function()

    @property
    def keyid(self) -> str:
        """keyid of the private key's public half, computed when the signer was built."""
        return self._public_key.keyid

    @property
    def algorithm(self) -> Algorithm:
        """The allow-listed algorithm of the private key (checked when the signer was built)."""
        return self._algorithm

    @property
    def public_key(self) -> PublicKey:
        """The private key's public half: what `public-key` prints and a trust root pins."""
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        """Sign `data` on this thread; ECDSA is deterministic (RFC 6979) and DER-encoded."""
        return self._sign(data)

    def _signing_function(self) -> Callable[[bytes], bytes]:
        key = self._private_key
        if isinstance(key, ed25519.Ed25519PrivateKey | mldsa.MLDSA65PrivateKey):
            return key.sign  # ML-DSA: FIPS 204 with the empty context
        if isinstance(key, ec.EllipticCurvePrivateKey):
            # RFC 6979: no RNG at signing time, and identical envelopes run to run.
            ecdsa = ec.ECDSA(self._algorithm.hash_algorithm(), deterministic_signing=True)
            return lambda data: key.sign(data, ecdsa)
        pss, hash_algorithm = pss_padding(self._algorithm), self._algorithm.hash_algorithm()
        return lambda data: key.sign(data, pss, hash_algorithm)

    def private_key_pem(self, password: bytes | None) -> bytes:
        """PKCS#8 PEM, encrypted with the best available scheme when a password is given.

        An empty password is refused: it would silently write the key unencrypted.
        """
        if password is not None and not password:
            raise ConfigError("an empty passphrase is refused: give one, or none (unencrypted)")
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def __repr__(self) -> str:
        return f"SoftwareSigner({self._algorithm.name}, keyid={self.keyid[:16]}…)"


def generate(algorithm: str | Algorithm) -> SoftwareSigner:
    """A fresh key pair for one allow-listed algorithm (`ed25519`, `PKIX_ED25519`, ...)."""
    alg = algorithm if isinstance(algorithm, Algorithm) else get_algorithm(algorithm)
    key: PrivateKeyType
    if alg.cli_name == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif alg.cli_name == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif alg.cli_name == "ecdsa-p384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif alg.cli_name == "rsa-pss-3072":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    elif alg.cli_name == "rsa-pss-4096":
        key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    elif alg.cli_name == "ml-dsa-65":
        key = mldsa.MLDSA65PrivateKey.generate()
    else:  # pragma: no cover - get_algorithm only returns allow-listed entries
        raise KeyFormatError(f"cannot generate {alg.name}")
    return SoftwareSigner(key, reference="generated")


def load_private_key_pem(
    data: bytes, *, password: bytes | None, source: str = "private key"
) -> SoftwareSigner:
    """Load a PKCS#8 (or traditional) PEM private key, naming the file in every error."""
    encrypted = b"ENCRYPTED" in data.split(b"\n", 1)[0] or b"Proc-Type: 4,ENCRYPTED" in data
    if encrypted and not password:
        raise KeyFormatError(
            f"{source} is encrypted: set DSSESIGN_KEY_PASSWORD or pass --password-file"
        )
    try:
        key = serialization.load_pem_private_key(data, password=password if encrypted else None)
    except TypeError:
        raise KeyFormatError(f"{source} is not encrypted but a password was given") from None
    except ValueError as exc:
        if encrypted:
            raise KeyFormatError(f"{source}: wrong passphrase (or corrupt key)") from None
        raise KeyFormatError(f"{source}: not a PEM private key ({_first_line(exc)})") from None
    except UnsupportedAlgorithm as exc:
        raise KeyFormatError(f"{source}: unsupported key ({_first_line(exc)})") from None
    except InternalError:  # OpenSSL refused the key material in a way pyca does not map
        raise KeyFormatError(f"{source}: not a usable private key") from None
    if not isinstance(
        key,
        ed25519.Ed25519PrivateKey
        | ec.EllipticCurvePrivateKey
        | rsa.RSAPrivateKey
        | mldsa.MLDSA65PrivateKey,
    ):
        raise KeyFormatError(f"{source}: unsupported key type {type(key).__name__}")
    return SoftwareSigner(key, reference=source)


def load_key_file(path: str | os.PathLike[str], *, password: bytes | None = None) -> SoftwareSigner:
    """Read and load a PEM private key file (at most 64 KiB); `password` decrypts it."""
    data = read_bounded(path, limit=_MAX_KEY_FILE, what="key")
    return load_private_key_pem(data, password=password, source=str(path))


def write_keypair(
    signer: SoftwareSigner,
    prefix: str | os.PathLike[str],
    *,
    password: bytes | None,
    force: bool = False,
    inputs: Iterable[NamedPath] = (),
) -> tuple[Path, Path]:
    """Write PREFIX.key (PKCS#8, mode 0600) and PREFIX.pub (SPKI PEM, the umask's mode).

    Both are checked before either is written (never one of `inputs`, the files the command
    read; never each other), both written to temp files, then published: the public key first
    and the private key last, so a failure leaves no private key behind. Without `force` an
    existing file (or a symlink, even a dangling one) at either name is refused.
    """
    key_path = Path(f"{os.fspath(prefix)}.key")
    pub_path = Path(f"{os.fspath(prefix)}.pub")
    if not force:
        for existing in (key_path, pub_path):
            if os.path.lexists(existing):
                raise ConfigError(f"{existing} exists; refusing to overwrite it (use --force)")
    with OutputSet(inputs) as outputs:
        outputs.add(pub_path, what="public key")
        outputs.add(key_path, what="private key", mode=0o600)
        outputs.write(pub_path, signer.public_key.pem.encode("ascii"))
        outputs.write(key_path, signer.private_key_pem(password))
        outputs.publish()
    return key_path, pub_path


def path_of_reference(ref: str) -> Path:
    """`file:///abs/key.pem`, `file://rel.pem` or a plain path → a path."""
    if ref.startswith("file://"):
        try:
            parsed = urlparse(ref)
        except ValueError as exc:  # "file://[": an unclosed IPv6 host
            raise ConfigError(f"file:// reference: {exc}") from None
        return Path(unquote(parsed.netloc + parsed.path))
    return Path(ref)


def load_reference(ref: str, options: SignerOptions) -> SoftwareSigner:
    """The loader for plain paths and `file://` references; the passphrase comes from `options`."""
    return load_key_file(path_of_reference(ref), password=options.password)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


register_path_loader(load_reference)
