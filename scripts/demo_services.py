"""Services for `make demo`, on 127.0.0.1 only: an OpenBao dev server (Vault transit), the
local Sigstore test instance the test suite uses (test CA, CT log, Rekor-style log, test OIDC)
and an RFC 3161 TSA (OpenSSL behind a loopback HTTP server).

    python scripts/demo_services.py DIR

writes DIR/services.env (VAULT_ADDR, VAULT_TOKEN, DSSESIGN_OIDC_TOKEN,
DSSESIGN_SIGSTORE_TRUST_CONFIG, DEMO_TRUSTED_ROOT, DEMO_ISSUER, DEMO_SUBJECT, DEMO_TSA_URL,
DEMO_TSA_CHAIN) once all answer,
then runs until it is terminated or the process that started it ends. The secrets are throwaway
demo values; they reach the demo through that file, never through argv.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.openbao import _free_port, bao_binary
from tests.registry import RegistryPool
from tests.sigstore_instance import start_instance
from tests.tsa import TsaPool

_START_TIMEOUT = 30.0


def _start_openbao(directory: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """`bao server -dev` lets the server pick its root token and write it to $HOME/.vault-token."""
    home = directory / "openbao"
    home.mkdir()
    port = _free_port()
    address = f"http://127.0.0.1:{port}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    environment["HOME"] = str(home)
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [
            bao_binary(),
            "server",
            "-dev",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-log-level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environment,
        cwd=home,
    )
    deadline = time.monotonic() + _START_TIMEOUT
    token_file = home / ".vault-token"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bao server exited: {(home / 'server.log').read_text()[-1000:]}")
        try:
            health = f"{address}/v1/sys/health"  # http://127.0.0.1 only
            with urllib.request.urlopen(health, timeout=1) as answer:  # noqa: S310
                if answer.status == 200 and token_file.is_file():
                    break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        process.terminate()
        raise SystemExit(f"bao server did not answer within {_START_TIMEOUT:g}s")
    token = token_file.read_text().strip()
    request = urllib.request.Request(  # noqa: S310 - enable transit at transit/ on 127.0.0.1
        f"{address}/v1/sys/mounts/transit",
        data=json.dumps({"type": "transit"}).encode(),
        headers={"X-Vault-Token": token, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass
    return process, address, token


def main() -> None:
    directory = Path(sys.argv[1])
    directory.mkdir(parents=True, exist_ok=True)
    openbao, address, token = _start_openbao(directory)
    sigstore_dir = directory / "sigstore"
    sigstore_dir.mkdir()
    instance = start_instance(sigstore_dir)
    # An RFC 3161 TSA: OpenSSL's `ts -reply` behind a loopback HTTP server, under a test CA.
    tsa_dir = directory / "tsa"
    tsa_dir.mkdir()
    tsas = TsaPool(tsa_dir)
    tsa = tsas.start()
    (directory / "tsa-chain.pem").write_bytes(tsa.chain_pem)
    # An OCI registry (Debian's docker-registry): TLS under a test CA, htpasswd, one image.
    (directory / "registry").mkdir()
    registries = RegistryPool(directory / "registry")
    registry = registries.start()
    image = registry.push_image("demo/hello", tag="1.0")
    values = {
        "VAULT_ADDR": address,
        "VAULT_TOKEN": token,
        "DSSESIGN_OIDC_TOKEN": instance.identity_token(),
        "DSSESIGN_SIGSTORE_TRUST_CONFIG": str(instance.trust_config_path),
        "DEMO_TRUSTED_ROOT": str(instance.trusted_root_path),
        "DEMO_ISSUER": instance.issuer,
        "DEMO_SUBJECT": instance.subject,
        "DEMO_TSA_URL": tsa.url,
        "DEMO_TSA_CHAIN": str(directory / "tsa-chain.pem"),
        "DEMO_IMAGE": registry.reference("demo/hello", image),
        "DEMO_DOCKER_CONFIG": str(registry.docker_config(directory / "registry")),
        "DEMO_REGISTRY_CA": str(registry.ca_pem),
    }
    env_file = directory / "services.env"
    partial = env_file.with_suffix(".partial")
    partial.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items()))
    partial.chmod(0o600)
    partial.replace(env_file)  # appears whole: the demo waits for it

    def stop(*_: object) -> None:
        instance.stop()
        tsas.close()
        registries.close()
        openbao.terminate()
        openbao.wait(timeout=10)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    parent = os.getppid()
    while os.getppid() == parent:  # the demo ended without stopping us: stop anyway
        time.sleep(0.5)
    stop()


if __name__ == "__main__":
    main()
