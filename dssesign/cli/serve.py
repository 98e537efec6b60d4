"""`dssesign serve --config FILE`: the signing service on uvicorn (docs/service.md)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError, MissingDependencyError


def register(commands: Any) -> None:
    """Add `serve`."""
    serve = commands.add_parser(
        "serve",
        help="run the signing service (HTTP; scoped tokens, per-tenant keys, quotas)",
        description="Serve POST /v1/sign, /v1/attest, /v1/verify and GET /v1/keys with the "
        "keys, tenants and limits of --config (TOML). Binds 127.0.0.1 unless --host says "
        "otherwise: put TLS in front of it (docs/service.md).",
    )
    serve.add_argument("--config", required=True, metavar="FILE")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(handler=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("dssesign serve", "uvicorn", "serve") from None
    from ..serve.app import Service, build_app
    from ..serve.config import load_config

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: not a TCP port")
    service = Service(load_config(args.config))
    try:
        uvicorn.run(
            build_app(service),
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=False,  # every request is in the audit log instead
            # X-Forwarded-For from a local client would pick its own address (and reset its
            # flood budget); the service sees the peer, and a proxy in front must be TLS-only.
            proxy_headers=False,
            server_header=False,
            # Bounded connections: beyond this uvicorn answers 503 itself; idle keep-alive
            # connections are closed after a few seconds.
            limit_concurrency=service.config.server.max_inflight * 4 + 64,
            timeout_keep_alive=5,
            lifespan="off",
        )
    finally:
        service.close()
    return 0
