"""Real SBOMs at real size: the SPDX fixture, and deterministic growth of both fixtures.

Two commands:

``spdx-fixture OUT``
    Writes the SPDX 2.3 JSON fixture (fixtures/sbom/dssesign-venv.spdx.json) with spdx-tools'
    own model, validator and JSON writer, from the distributions installed in the running
    interpreter's environment (importlib.metadata): run it with the project's venv
    (``.venv/bin/python scripts/gen_sbom.py spdx-fixture OUT``). The CycloneDX fixture is
    written by ``cyclonedx-py environment`` itself (see fixtures/sbom/README.md).

``grow --out DIR``
    Grows the two real documents to N components / packages with a fixed seed, so every run
    writes byte-identical files: ``cyclonedx-<N>.json`` and ``spdx-<N>.json``. Sizes below the
    fixture's own count keep its first entries (a tiny document for memory baselines). The
    output is for benchmarks and is not committed.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import random
import re
import sys
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.utils import getaddresses
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from spdx_tools.common.spdx_licensing import spdx_licensing
from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.checksum import Checksum, ChecksumAlgorithm
from spdx_tools.spdx.model.document import CreationInfo, Document
from spdx_tools.spdx.model.file import File, FileType
from spdx_tools.spdx.model.package import (
    ExternalPackageRef,
    ExternalPackageRefCategory,
    Package,
    PackagePurpose,
    PackageVerificationCode,
)
from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from spdx_tools.spdx.writer.json.json_writer import write_document_to_file

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "sbom"
CYCLONEDX_FIXTURE = FIXTURES / "dssesign-venv.cdx.json"
SPDX_FIXTURE = FIXTURES / "dssesign-venv.spdx.json"
SEED = 20251130
#: The fixtures' creation time (SOURCE_DATE_EPOCH 1764460800), so rebuilding them is reproducible.
CREATED = datetime(2025, 11, 30, tzinfo=UTC)
ROOT_PACKAGE = "dssesign"

Json = dict[str, Any]


# --- the SPDX fixture (spdx-tools' own API) ---------------------------------------------------

#: Trove classifiers that name exactly one SPDX licence; ambiguous ones ("BSD License") are not
#: guessed at: such packages declare NOASSERTION.
_CLASSIFIER_LICENSES = {
    "License :: OSI Approved :: Apache Software License": "Apache-2.0",
    "License :: OSI Approved :: MIT License": "MIT",
    "License :: OSI Approved :: ISC License (ISCL)": "ISC",
    "License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "License :: OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "License :: OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "License :: OSI Approved :: zlib/libpng License": "Zlib",
}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _license(meta: Any, licensing: Any) -> Any:
    """The declared licence as an spdx-tools LicenseExpression, or None when nothing is clear."""
    candidates = [meta.get("License-Expression"), meta.get("License")]
    classified = {
        _CLASSIFIER_LICENSES[c]
        for c in meta.get_all("Classifier") or ()
        if c in _CLASSIFIER_LICENSES
    }
    if len(classified) == 1:
        candidates.append(classified.pop())
    for text in candidates:
        if not text or len(text) > 100 or "\n" in text:
            continue  # a licence's full text, not an expression
        try:
            expression = licensing.parse(text.strip())
        except Exception:  # noqa: S112 - license_expression raises several unrelated types
            continue  # not an expression: try the next candidate
        if expression is not None and not licensing.validate(expression).invalid_symbols:
            return expression
    return None


def _originator(meta: Any) -> Any:
    author = (meta.get("Author") or "").strip()
    address = ""
    pairs = getaddresses([meta.get("Author-email") or ""])
    if pairs and (pairs[0][0] or pairs[0][1]):
        author = author or pairs[0][0]
        address = pairs[0][1]
    author = " ".join(author.replace("(", " ").replace(")", " ").split())
    if not author:
        return None
    return Actor(ActorType.PERSON, author[:120], address or None)


def _homepage(meta: Any) -> str | None:
    urls: list[str | None] = [meta.get("Home-page")]
    for entry in meta.get_all("Project-URL") or ():
        label, _, url = entry.partition(",")
        if label.strip().lower() in {"homepage", "home", "source", "repository", "source code"}:
            urls.append(url.strip())
    for url in urls:
        if url and re.fullmatch(r"https?://[^\s\"<>]+", url.strip()):
            return url.strip()
    return None


def _requirements(dist: metadata.Distribution, extras: Iterable[str]) -> set[str]:
    names: set[str] = set()
    for line in dist.requires or ():
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras):
            names.add(_normalize(requirement.name))
    return names


def _metadata_file(dist: metadata.Distribution, spdx_id: str) -> tuple[Any, str]:
    """The distribution's METADATA file as an SPDX File (SHA-1 + SHA-256), and its SHA-1."""
    data = (dist.read_text("METADATA") or "").encode("utf-8")
    located = dist.locate_file("")
    folder = getattr(dist, "_path", None)
    name = f"./{Path(str(folder)).name}/METADATA" if folder else f"./{located}/METADATA"
    sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()
    file = File(
        name=name,
        spdx_id=f"{spdx_id}-METADATA",
        checksums=[
            Checksum(ChecksumAlgorithm.SHA1, sha1),
            Checksum(ChecksumAlgorithm.SHA256, hashlib.sha256(data).hexdigest()),
        ],
        file_types=[FileType.TEXT],
        license_concluded=SpdxNoAssertion(),
        copyright_text=SpdxNoAssertion(),
    )
    return file, sha1


def _verification_code(sha1s: Sequence[str]) -> str:
    """SPDX 2.3 §7.9: SHA-1 of the sorted, concatenated SHA-1s of the package's files."""
    joined = "".join(sorted(sha1s)).encode("ascii")
    return hashlib.sha1(joined, usedforsecurity=False).hexdigest()


def spdx_fixture(out: Path) -> None:
    """Write the SPDX 2.3 JSON fixture of this environment with spdx-tools, validated."""
    dists: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and _normalize(name) not in dists:
            dists[_normalize(name)] = dist
    if ROOT_PACKAGE not in dists:
        raise SystemExit(f"{ROOT_PACKAGE} is not installed in {sys.prefix}")

    packages: list[Any] = []
    files: list[Any] = []
    relationships: list[Any] = []
    ids = {key: f"SPDXRef-Package-pypi-{key}" for key in dists}
    for key in sorted(dists):
        dist = dists[key]
        meta: Any = dist.metadata
        spdx_id = ids[key]
        file, sha1 = _metadata_file(dist, spdx_id)
        files.append(file)
        declared = _license(meta, spdx_licensing)
        originator = _originator(meta)
        packages.append(
            Package(
                spdx_id=spdx_id,
                name=meta["Name"],
                version=meta["Version"],
                download_location=SpdxNoAssertion(),
                supplier=SpdxNoAssertion(),
                originator=originator,
                files_analyzed=True,
                verification_code=PackageVerificationCode(_verification_code([sha1])),
                homepage=_homepage(meta),
                license_concluded=SpdxNoAssertion(),
                license_declared=declared if declared is not None else SpdxNoAssertion(),
                copyright_text=SpdxNoAssertion(),
                summary=(meta.get("Summary") or "").strip() or None,
                external_references=[
                    ExternalPackageRef(
                        ExternalPackageRefCategory.PACKAGE_MANAGER,
                        "purl",
                        f"pkg:pypi/{key}@{meta['Version']}",
                    )
                ],
                primary_package_purpose=PackagePurpose.APPLICATION
                if key == ROOT_PACKAGE
                else PackagePurpose.LIBRARY,
            )
        )
        relationships.append(Relationship(spdx_id, RelationshipType.CONTAINS, file.spdx_id))
        extras = list(dist.metadata.get_all("Provides-Extra") or ()) if key == ROOT_PACKAGE else []
        for needed in sorted(_requirements(dist, ["", *extras])):
            if needed in ids and needed != key:
                relationships.append(
                    Relationship(spdx_id, RelationshipType.DEPENDS_ON, ids[needed])
                )
    relationships.insert(
        0, Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, ids[ROOT_PACKAGE])
    )
    content = hashlib.sha256(
        "\n".join(f"{k}=={dists[k].metadata['Version']}" for k in sorted(dists)).encode()
    ).hexdigest()
    document = Document(
        CreationInfo(
            spdx_version="SPDX-2.3",
            spdx_id="SPDXRef-DOCUMENT",
            name="dssesign-venv",
            document_namespace=f"https://dssesign.example/spdx/dssesign-venv-{content[:16]}",
            creators=[
                Actor(ActorType.TOOL, f"spdx-tools-{metadata.version('spdx-tools')}"),
                Actor(ActorType.TOOL, "dssesign-scripts-gen_sbom.py"),
            ],
            created=CREATED,
        ),
        packages=packages,
        files=files,
        relationships=relationships,
    )
    messages = validate_full_spdx_document(document)
    if messages:
        for message in messages[:20]:
            print(f"invalid: {message.validation_message}", file=sys.stderr)
        raise SystemExit(f"spdx-tools rejects the document ({len(messages)} messages)")
    write_document_to_file(document, str(out), validate=True)
    print(f"{out}: {len(packages)} packages, {out.stat().st_size:,} bytes")


# --- growth -----------------------------------------------------------------------------------


def _version(rng: random.Random) -> str:
    return f"{rng.randint(0, 30)}.{rng.randint(0, 40)}.{rng.randint(0, 20)}"


def _sample(rng: random.Random, pool: Sequence[str], most: int) -> list[str]:
    return sorted(rng.sample(pool, min(len(pool), rng.randint(0, most))))


def grow_cyclonedx(real: Json, count: int, seed: int = SEED) -> Json:
    """``real`` with ``count`` components: its own first, then variations of them.

    Each added component copies a real one (description, licences, external references,
    properties) under a new name and version: unique bom-ref and purl. Every component gets a
    ``dependencies`` entry naming 0-4 earlier components; the root depends on its real
    dependencies plus a sample of the added ones.
    """
    rng = random.Random(f"cyclonedx-{seed}-{count}")  # noqa: S311 - reproducible test data
    bom = copy.deepcopy(real)
    templates: list[Json] = bom["components"]
    components = [copy.deepcopy(c) for c in templates[:count]]
    refs = [c["bom-ref"] for c in components]
    kept = set(refs)
    root_ref = bom["metadata"]["component"]["bom-ref"]
    dependencies: list[Json] = []
    for entry in bom["dependencies"]:
        if entry["ref"] in kept or entry["ref"] == root_ref:
            trimmed = {**entry, "dependsOn": [r for r in entry.get("dependsOn", ()) if r in kept]}
            if not trimmed["dependsOn"]:
                del trimmed["dependsOn"]
            dependencies.append(trimmed)
    added_refs: list[str] = []
    for index in range(len(components), count):
        template = rng.choice(templates)
        component = copy.deepcopy(template)
        name = f"{template['name']}-g{index:05d}"
        version = _version(rng)
        component["name"] = name
        component["version"] = version
        component["bom-ref"] = f"{name}=={version}"
        component["purl"] = f"pkg:pypi/{_normalize(name)}@{version}"
        node: Json = {"ref": component["bom-ref"]}
        depends = _sample(rng, refs, 4)
        if depends:
            node["dependsOn"] = depends
        components.append(component)
        dependencies.append(node)
        refs.append(component["bom-ref"])
        added_refs.append(component["bom-ref"])
    for entry in dependencies:
        if entry["ref"] == root_ref:
            extra = _sample(rng, added_refs, max(1, len(added_refs) // 20))
            entry["dependsOn"] = sorted({*entry.get("dependsOn", ()), *extra})
            if not entry["dependsOn"]:
                del entry["dependsOn"]
    bom["components"] = components
    bom["dependencies"] = dependencies
    bom["serialNumber"] = f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
    return bom


def _hexdigest(algorithm: str, label: str) -> str:
    return hashlib.new(algorithm, label.encode(), usedforsecurity=False).hexdigest()


def grow_spdx(real: Json, count: int, seed: int = SEED) -> Json:
    """``real`` with ``count`` packages: its own first, then variations of them.

    Each added package copies a real one with a new name, version, SPDXID and purl, and its
    METADATA file under a new SPDXID with fresh checksums and verification code. Relationships
    only name elements that exist: CONTAINS its file, DEPENDS_ON 0-4 earlier packages, and the
    described root DEPENDS_ON a sample of the added ones.
    """
    rng = random.Random(f"spdx-{seed}-{count}")  # noqa: S311 - reproducible test data
    doc = copy.deepcopy(real)
    templates: list[Json] = doc["packages"]
    root_id = next(
        r["relatedSpdxElement"]
        for r in doc["relationships"]
        if r["relationshipType"] == "DESCRIBES" and r["spdxElementId"] == "SPDXRef-DOCUMENT"
    )
    root = next(p for p in templates if p["SPDXID"] == root_id)
    packages = [root, *(p for p in templates if p["SPDXID"] != root_id)][:count]
    kept = {p["SPDXID"] for p in packages}
    contains = {
        r["spdxElementId"]: r["relatedSpdxElement"]
        for r in doc["relationships"]
        if r["relationshipType"] == "CONTAINS"
    }
    files_by_id = {f["SPDXID"]: f for f in doc.get("files", ())}
    files = [files_by_id[contains[p["SPDXID"]]] for p in packages if p["SPDXID"] in contains]
    kept |= {f["SPDXID"] for f in files}
    relationships = [
        r
        for r in doc["relationships"]
        if r["spdxElementId"] in kept | {"SPDXRef-DOCUMENT"} and r["relatedSpdxElement"] in kept
    ]
    package_ids = [p["SPDXID"] for p in packages]
    added: list[str] = []
    for index in range(len(packages), count):
        template = rng.choice(templates)
        package = copy.deepcopy(template)
        name = f"{template['name']}-g{index:05d}"
        version = _version(rng)
        spdx_id = f"SPDXRef-Package-pypi-{_normalize(name)}-{index}"
        package.update(name=name, versionInfo=version, SPDXID=spdx_id)
        package["externalRefs"] = [
            {**ref, "referenceLocator": f"pkg:pypi/{_normalize(name)}@{version}"}
            if ref.get("referenceType") == "purl"
            else ref
            for ref in package.get("externalRefs", ())
        ]
        template_file = contains.get(template["SPDXID"])
        if template_file is not None:
            file = copy.deepcopy(files_by_id[template_file])
            label = f"{name}-{version}"
            file["SPDXID"] = f"{spdx_id}-METADATA"
            file["fileName"] = (
                f"./{_normalize(name).replace('-', '_')}-{version}.dist-info/METADATA"
            )
            file["checksums"] = [
                {"algorithm": c["algorithm"], "checksumValue": _hexdigest(c["algorithm"], label)}
                for c in file["checksums"]
            ]
            sha1 = next(c["checksumValue"] for c in file["checksums"] if c["algorithm"] == "SHA1")
            package["packageVerificationCode"] = {
                "packageVerificationCodeValue": _verification_code([sha1])
            }
            files.append(file)
            relationships.append(
                {
                    "spdxElementId": spdx_id,
                    "relationshipType": "CONTAINS",
                    "relatedSpdxElement": file["SPDXID"],
                }
            )
        relationships.extend(
            {"spdxElementId": spdx_id, "relationshipType": "DEPENDS_ON", "relatedSpdxElement": dep}
            for dep in _sample(rng, package_ids, 4)
        )
        packages.append(package)
        package_ids.append(spdx_id)
        added.append(spdx_id)
    relationships.extend(
        {"spdxElementId": root_id, "relationshipType": "DEPENDS_ON", "relatedSpdxElement": dep}
        for dep in _sample(rng, added, max(1, len(added) // 20))
    )
    doc["packages"] = packages
    doc["files"] = files
    doc["relationships"] = relationships
    doc["name"] = f"{doc['name']}-{count}"
    doc["documentNamespace"] = f"{doc['documentNamespace']}-grown-{seed}-{count}"
    return doc


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def _compact(document: Json) -> str:
    """Without indentation, as syft and other container scanners write large SBOMs."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"


def grow(out: Path, cyclonedx: Sequence[int], spdx: Sequence[int], seed: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if cyclonedx:
        real = json.loads(CYCLONEDX_FIXTURE.read_text(encoding="utf-8"))
        for count in cyclonedx:
            path = out / f"cyclonedx-{count}.json"
            path.write_text(_compact(grow_cyclonedx(real, count, seed)))
            written.append(path)
    if spdx:
        real = json.loads(SPDX_FIXTURE.read_text(encoding="utf-8"))
        for count in spdx:
            path = out / f"spdx-{count}.json"
            path.write_text(_compact(grow_spdx(real, count, seed)))
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fixture = commands.add_parser("spdx-fixture", help="write the SPDX fixture (spdx-tools)")
    fixture.add_argument("out", type=Path)
    grower = commands.add_parser("grow", help="write grown documents into --out")
    grower.add_argument("--out", type=Path, required=True)
    grower.add_argument("--cyclonedx", type=_sizes, default=[1_000, 5_000, 25_000])
    grower.add_argument("--spdx", type=_sizes, default=[1_000, 10_000])
    grower.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if args.command == "spdx-fixture":
        spdx_fixture(args.out)
        return 0
    for path in grow(args.out, args.cyclonedx, args.spdx, args.seed):
        print(f"{path}: {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
