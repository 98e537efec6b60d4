"""`dssesign.attest(...)`: the one call an SBOM or provenance producer needs, as `dssesign attest`.

Subjects, a predicate (a JSON object, the bytes of a predicate file, a cyclonedx-python-lib
``Bom`` or an spdx-tools ``Document``), a predicate type and keys in; the envelope, its Sigstore
bundles and the Statement out. Everything `dssesign attest` checks is checked here the same way:
the predicate against its type before any key is touched, the Statement, and every signature
before it is emitted.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, MissingDependencyError
from ..intoto.predicates import prepare_predicate
from ..intoto.statement import (
    PAYLOAD_TYPE,
    ResourceDescriptor,
    build_statement,
    statement_payload,
)
from ..intoto.subjects import parse_subject_arg

if TYPE_CHECKING:
    from ..core.dsse import Envelope
    from .bundles import BundleFile
    from .multisign import RecordHook, SigningContext
    from .signer import Signer, SignerOptions
    from .timestamps import Timestamping

__all__ = ["AttestResult", "attest"]

Subject = ResourceDescriptor | str | os.PathLike[str]


@dataclass(frozen=True)
class AttestResult:
    """The signed envelope, one Sigstore bundle per signature (in order), and the Statement."""

    envelope: Envelope
    bundles: tuple[BundleFile, ...]
    statement: Mapping[str, Any] = field(repr=False)


def attest(
    subjects: Sequence[Subject],
    predicate: object,
    predicate_type: str,
    *,
    keys: Sequence[str | Signer],
    options: SignerOptions | None = None,
    threshold: int | None = None,
    timeout: float = 60.0,
    sha512: bool = False,
    validate: bool = True,
    bundle_stem: str = "envelope",
    audit: RecordHook | None = None,
    context: SigningContext | None = None,
    timestamps: Timestamping | None = None,
) -> AttestResult:
    """Build the in-toto Statement, sign it with every key, and return it with its bundles.

    `subjects`: ResourceDescriptors, file paths (digested as they stream) or ``alg:hex``
    strings, as ``--subject`` takes them. `predicate`: a JSON object, the raw bytes of a
    predicate file, a cyclonedx-python-lib ``Bom`` (serialized with the library's own JSON
    writer, CycloneDX 1.6) or an spdx-tools ``Document`` (its own JSON writer).
    `predicate_type`: a ``--type`` short name or a type URI. `keys`: key references (as
    ``--key``) or `Signer` objects. `validate=False` is ``--no-validate``. `timestamps`
    (``--tsa`` with its trust root's authorities) puts verified RFC 3161 tokens in each keyed
    signature's bundle. Raises the same errors the command reports.
    """
    from .bundles import bundles_for  # noqa: PLC0415 - the signing stack, on first use
    from .multisign import MultiProfileSigner  # noqa: PLC0415 - on first use
    from .signer import SignerOptions, load_signer  # noqa: PLC0415 - on first use

    if isinstance(subjects, str | bytes) or not subjects:
        raise ConfigError("subjects: give a non-empty sequence of subjects")
    if isinstance(keys, str) or not keys:
        raise ConfigError("keys: give a non-empty sequence of key references or signers")
    raw = _predicate_bytes(predicate)
    type_uri, checked = prepare_predicate(predicate_type, raw, validate=validate)
    descriptors = [
        subject
        if isinstance(subject, ResourceDescriptor)
        else parse_subject_arg(os.fspath(subject), sha512=sha512)
        for subject in subjects
    ]
    statement = build_statement(descriptors, type_uri, checked)
    chosen = options or SignerOptions()
    signers = [load_signer(key, chosen) if isinstance(key, str) else key for key in keys]
    signer = MultiProfileSigner(
        signers, threshold=threshold, timeout=timeout, audit=audit, timestamps=timestamps
    )
    result = signer.sign_detailed(statement_payload(statement), PAYLOAD_TYPE, context=context)
    bundles = bundles_for(result.envelope, result.signers, bundle_stem, result.timestamps)
    return AttestResult(envelope=result.envelope, bundles=tuple(bundles), statement=statement)


def _predicate_bytes(predicate: object) -> bytes:
    """The predicate as the JSON bytes a predicate file would hold."""
    if isinstance(predicate, bytes | bytearray):
        return bytes(predicate)
    if isinstance(predicate, Mapping):
        return json.dumps(predicate, ensure_ascii=False, allow_nan=False).encode("utf-8")
    module = type(predicate).__module__
    if module.startswith("cyclonedx.") and type(predicate).__name__ == "Bom":
        return _cyclonedx_json(predicate)
    if module.startswith("spdx_tools.") and type(predicate).__name__ == "Document":
        return _spdx_json(predicate)
    raise ConfigError(
        f"predicate: expected a JSON object, bytes, a cyclonedx Bom or an spdx-tools Document, "
        f"not {type(predicate).__name__}"
    )


def _cyclonedx_json(bom: Any) -> bytes:
    try:
        from cyclonedx.output import make_outputter  # noqa: PLC0415 - optional extra
        from cyclonedx.schema import OutputFormat, SchemaVersion  # noqa: PLC0415 - on first use
    except ImportError:
        raise MissingDependencyError(
            "signing a cyclonedx Bom", "cyclonedx-python-lib", "sbom"
        ) from None
    text: str = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6).output_as_string()
    return text.encode("utf-8")


def _spdx_json(document: Any) -> bytes:
    try:
        from spdx_tools.spdx.writer.json.json_writer import (  # noqa: PLC0415 - optional
            write_document_to_stream,
        )
    except ImportError:
        raise MissingDependencyError("signing an SPDX Document", "spdx-tools", "sbom") from None
    stream = io.StringIO()
    # dssesign validates the document itself (in one pass, linear); spdx-tools' own check
    # is quadratic in the number of packages.
    write_document_to_stream(document, stream, validate=False)
    return stream.getvalue().encode("utf-8")
