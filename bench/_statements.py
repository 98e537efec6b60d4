"""Realistic in-toto Statement v1 documents shared by the benchmarks.

Sizes and shapes follow what real producers emit (GitHub's SLSA generator, a VSA verifier, a
CycloneDX SBOM of a mid-sized service, a vulnerability scan). Everything is derived from fixed
strings, so every run serializes the same bytes: no randomness, no clock.
"""

from __future__ import annotations

import hashlib

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


def _sha256(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def _sha1(label: str) -> str:
    return hashlib.sha1(label.encode(), usedforsecurity=False).hexdigest()


def slsa_provenance() -> dict[str, object]:
    """SLSA Provenance v1 as a GitHub Actions builder writes it, with a few dependencies."""
    repo = "https://github.com/example-org/payments-api"
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": f"payments-api-2.14.1-{arch}.tar.gz",
                "digest": {"sha256": _sha256(f"payments-api-{arch}")},
            }
            for arch in ("linux-amd64", "linux-arm64", "darwin-arm64")
        ],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {
                    "workflow": {
                        "ref": "refs/tags/v2.14.1",
                        "repository": repo,
                        "path": ".github/workflows/release.yml",
                    },
                    "inputs": {"publish": True, "channel": "stable"},
                },
                "internalParameters": {
                    "github": {
                        "event_name": "push",
                        "repository_id": "684123977",
                        "repository_owner_id": "104917365",
                        "runner_environment": "github-hosted",
                    }
                },
                "resolvedDependencies": [
                    {
                        "uri": f"git+{repo}@refs/tags/v2.14.1",
                        "digest": {"gitCommit": _sha1("payments-api v2.14.1")},
                    },
                    {
                        "uri": "pkg:github/actions/checkout@v4.1.7",
                        "digest": {"gitCommit": _sha1("actions/checkout v4.1.7")},
                    },
                    {
                        "uri": "pkg:github/actions/setup-go@v5.0.2",
                        "digest": {"gitCommit": _sha1("actions/setup-go v5.0.2")},
                    },
                    {
                        "uri": "pkg:docker/golang@1.22.5-bookworm",
                        "digest": {"sha256": _sha256("golang:1.22.5-bookworm")},
                        "annotations": {"platform": "linux/amd64"},
                    },
                    {
                        "uri": "https://proxy.golang.org/github.com/lib/pq/@v/v1.10.9.zip",
                        "digest": {"sha256": _sha256("github.com/lib/pq v1.10.9")},
                        "name": "github.com/lib/pq",
                    },
                ],
            },
            "runDetails": {
                "builder": {
                    "id": "https://github.com/actions/runner/github-hosted",
                    "version": {"actions-runner": "2.317.0"},
                },
                "metadata": {
                    "invocationId": f"{repo}/actions/runs/9812734521/attempts/1",
                    "startedOn": "2024-07-08T14:02:11Z",
                    "finishedOn": "2024-07-08T14:09:47Z",
                },
                "byproducts": [
                    {
                        "name": "build.log",
                        "digest": {"sha256": _sha256("build.log")},
                        "mediaType": "text/plain",
                    }
                ],
            },
        },
    }


def vsa() -> dict[str, object]:
    """SLSA Verification Summary Attestation v1 for a container image."""
    image = "oci://registry.example.com/payments/api"
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": "registry.example.com/payments/api",
                "digest": {"sha256": _sha256("payments/api@2.14.1")},
            }
        ],
        "predicateType": "https://slsa.dev/verification_summary/v1",
        "predicate": {
            "verifier": {
                "id": "https://verifier.example.com/slsa-verifier",
                "version": {"slsa-verifier": "2.6.0", "policy-engine": "0.9.3"},
            },
            "timeVerified": "2024-07-08T14:12:03Z",
            "resourceUri": f"{image}@sha256:{_sha256('payments/api@2.14.1')}",
            "policy": {
                "uri": "https://policies.example.com/slsa/payments-api.rego",
                "digest": {"sha256": _sha256("payments-api.rego v17")},
            },
            "inputAttestations": [
                {
                    "uri": f"https://attestations.example.com/payments-api/{i}.intoto.jsonl",
                    "digest": {"sha256": _sha256(f"attestation {i}")},
                }
                for i in range(4)
            ],
            "verificationResult": "PASSED",
            "verifiedLevels": ["SLSA_BUILD_LEVEL_3", "SLSA_SOURCE_LEVEL_2"],
            "dependencyLevels": {"SLSA_BUILD_LEVEL_3": 12, "SLSA_BUILD_LEVEL_2": 3},
            "slsaVersion": "1.0",
        },
    }


_ECOSYSTEMS = (
    ("npm", ("lodash", "express", "react", "axios", "chalk", "debug", "semver", "uuid", "ws")),
    ("pypi", ("requests", "urllib3", "idna", "certifi", "jinja2", "click", "attrs", "pyyaml")),
    ("golang", ("github.com/spf13/cobra", "golang.org/x/net", "google.golang.org/grpc")),
    (
        "maven",
        ("org.apache.commons/commons-lang3", "com.google.guava/guava", "org.slf4j/slf4j-api"),
    ),
)
_LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "ISC", "MPL-2.0", "BSD-2-Clause")


def cyclonedx_sbom(n_components: int = 300) -> dict[str, object]:
    """CycloneDX 1.5 SBOM predicate with `n_components` libraries (purls, hashes, licences)."""
    components: list[dict[str, object]] = []
    refs: list[str] = []
    for i in range(n_components):
        ecosystem, names = _ECOSYSTEMS[i % len(_ECOSYSTEMS)]
        name = f"{names[i % len(names)]}{'' if i < 40 else f'-{i}'}"
        version = f"{1 + i % 7}.{i % 13}.{i % 5}"
        purl = f"pkg:{ecosystem}/{name}@{version}"
        refs.append(purl)
        component: dict[str, object] = {
            "type": "library",
            "bom-ref": purl,
            "name": name,
            "version": version,
            "purl": purl,
            "hashes": [
                {"alg": "SHA-256", "content": _sha256(purl)},
                {"alg": "SHA-1", "content": _sha1(purl)},
            ],
            "licenses": [{"license": {"id": _LICENSES[i % len(_LICENSES)]}}],
            "scope": "required" if i % 9 else "optional",
        }
        if i % 4 == 0:
            component["externalReferences"] = [
                {
                    "type": "vcs",
                    "url": f"https://github.com/example-deps/{name.rsplit('/', maxsplit=1)[-1]}",
                }
            ]
        components.append(component)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": "registry.example.com/payments/api",
                "digest": {"sha256": _sha256("payments/api@2.14.1")},
            }
        ],
        "predicateType": "https://cyclonedx.org/bom",
        "predicate": {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
            "version": 1,
            "metadata": {
                "timestamp": "2024-07-08T14:10:02Z",
                "tools": {
                    "components": [{"type": "application", "name": "syft", "version": "1.8.0"}]
                },
                "component": {
                    "type": "container",
                    "name": "registry.example.com/payments/api",
                    "version": "2.14.1",
                    "bom-ref": "payments-api",
                },
            },
            "components": components,
            "dependencies": [
                {"ref": "payments-api", "dependsOn": refs[:40]},
                *({"ref": refs[i], "dependsOn": refs[i + 1 : i + 3]} for i in range(0, 120, 3)),
            ],
        },
    }


# id, package, installed, fixed, CVSS v3 score, EPSS probability and percentile, CWE, title,
# description: the fields a Trivy or Grype report carries per finding.
_FINDINGS: tuple[tuple[str, str, str, str, float, float, float, str, str, str], ...] = (
    (
        "CVE-2024-24790",
        "stdlib",
        "1.22.3",
        "1.22.4",
        9.8,
        0.00043,
        0.09817,
        "CWE-115",
        "net/netip: comportement inattendu d'Is* pour les adresses IPv4 mappées en IPv6",
        "The various Is methods (IsPrivate, IsLoopback, etc) did not work as expected for "
        "IPv4-mapped IPv6 addresses, returning false for addresses which would return true in "
        "their traditional IPv4 forms.",
    ),
    (
        "CVE-2024-34156",
        "stdlib",
        "1.22.3",
        "1.22.7",
        7.5,
        4.2e-05,
        0.0131,
        "CWE-674",
        "encoding/gob: Decoder.Decode で深くネストした構造体がスタックを枯渇させる",
        "Calling Decoder.Decode on a message which contains deeply nested structures can cause "
        "a panic due to stack exhaustion. This is a follow-up to CVE-2022-30635.",
    ),
    (
        "GHSA-xr7r-f8xq-vfvv",
        "github.com/example-deps/oauth2",
        "0.20.0",
        "0.21.0",
        5.3,
        0.0021,
        0.5871,
        "CWE-601",
        "Открытое перенаправление в обработчике OAuth — исправлено в 0.21.0",
        "The callback handler accepted a redirect_uri whose host only shared a prefix with the "
        "registered one, so an attacker could send the authorization code to a host they "
        "control. Upgrade to 0.21.0, which compares the full origin.",
    ),
    (
        "CVE-2023-45288",
        "golang.org/x/net",
        "0.21.0",
        "0.23.0",
        7.5,
        0.64218,
        0.97912,
        "CWE-400",
        "HTTP/2 CONTINUATION flood — déni de service",
        "An attacker may cause an HTTP/2 endpoint to read arbitrary amounts of header data by "
        "sending an excessive number of CONTINUATION frames. Maintaining HPACK state requires "
        "parsing and processing all HEADERS and CONTINUATION frames on a connection.",
    ),
    (
        "CVE-2024-3094",
        "xz-utils",
        "5.6.0",
        "5.6.2",
        10.0,
        0.86034,
        0.99563,
        "CWE-506",
        "Porte dérobée dans liblzma (xz) — compromission de la chaîne d'approvisionnement",
        "Malicious code was discovered in the upstream tarballs of xz, starting with version "
        "5.6.0. Through a series of complex obfuscations, the liblzma build process extracts a "
        "prebuilt object file from a disguised test file in the source code.",
    ),
    (
        "CVE-2024-45337",
        "golang.org/x/crypto",
        "0.24.0",
        "0.31.0",
        9.1,
        0.00265,
        0.66021,
        "CWE-285",
        "ssh: misuse of ServerConfig.PublicKeyCallback may cause authorization bypass",
        "Applications and libraries which misuse ServerConfig.PublicKeyCallback may be "
        "susceptible to an authorization bypass, because the callback is not guaranteed to be "
        "called only for the key the client finally authenticates with.",
    ),
)


def _references(vuln_id: str, pkg: str) -> list[str]:
    """The advisory links scanners copy from NVD/OSV: real records carry a handful to dozens."""
    lower = vuln_id.lower()
    return [
        f"https://nvd.nist.gov/vuln/detail/{vuln_id}",
        f"https://avd.aquasec.com/nvd/{lower}",
        f"https://github.com/advisories?query={vuln_id}",
        f"https://osv.dev/vulnerability/{vuln_id}",
        f"https://access.redhat.com/security/cve/{vuln_id}",
        f"https://ubuntu.com/security/{vuln_id}",
        f"https://security.netapp.com/advisory/ntap-2024{len(pkg):04d}-0001/",
        f"https://pkg.go.dev/vuln/list?q={pkg}",
    ]


def vulnerability_scan() -> dict[str, object]:
    """in-toto vulns v0.2 predicate with Trivy-style annotations: CVSS and EPSS scores (non-integer
    floats, one integral 10.0, one EPSS below 1e-4), titles and names in several scripts."""
    results: list[dict[str, object]] = []
    for i, finding in enumerate(_FINDINGS):
        vuln_id, pkg, installed, fixed, cvss, epss, percentile, cwe, title, description = finding
        severity = "CRITICAL" if cvss >= 9.0 else "HIGH" if cvss >= 7.0 else "MEDIUM"
        results.append(
            {
                "id": vuln_id,
                "severity": [
                    {"method": "nvd", "score": severity.lower()},
                    {"method": "cvss_score", "score": f"{cvss:.1f}"},
                ],
                "annotations": [
                    {
                        "pkgName": pkg,
                        "installedVersion": installed,
                        "fixedVersion": fixed,
                        "status": "fixed",
                        "title": title,
                        "description": description,
                        "cweIDs": [cwe],
                        "cvss": {
                            "nvd": {
                                "V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                                "V3Score": cvss,
                            }
                        },
                        "epss": {"probability": epss, "percentile": percentile},
                        "references": _references(vuln_id, pkg),
                        "publishedDate": f"2024-0{1 + i}-1{i}T15:15:0{i}Z",
                        "primaryMaintainer": "José Müller" if i % 2 else "山田 太郎",
                    }
                ],
            }
        )
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": "registry.example.com/payments/api",
                "digest": {"sha256": _sha256("payments/api@2.14.1")},
            }
        ],
        "predicateType": "https://in-toto.io/attestation/vulns/v0.2",
        "predicate": {
            "scanner": {
                "uri": "pkg:github/aquasecurity/trivy@v0.53.0",
                "version": "0.53.0",
                "db": {
                    "uri": "pkg:github/aquasecurity/trivy-db",
                    "version": "2",
                    "lastUpdate": "2024-07-08T06:14:20.52Z",
                },
                "result": results,
            },
            "metadata": {
                "scanStartedOn": "2024-07-08T14:10:30Z",
                "scanFinishedOn": "2024-07-08T14:10:41Z",
            },
        },
    }


def bench_statements() -> list[dict[str, object]]:
    """The four statements, smallest first."""
    return [vsa(), slsa_provenance(), vulnerability_scan(), cyclonedx_sbom()]
