"""The `dssesign` command: exit 0 success, 1 verification or signing failed, 2 bad input."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from .. import __version__
from ..errors import DssesignError, VerificationError
from . import audit as _cli_audit
from . import countersign as _cli_countersign
from . import csr as _cli_csr
from . import hsm as _cli_hsm
from . import kms as _cli_kms
from . import merge as _cli_merge
from . import oci as _cli_oci
from . import serve as _cli_serve
from . import sign as _cli_sign
from . import trust as _cli_trust
from . import vault as _cli_vault
from . import verify as _cli_verify
from .common import Parser


def build_parser() -> argparse.ArgumentParser:
    """The whole `dssesign` argparse tree; each subcommand sets `handler`, which `main` calls."""
    parser = Parser(prog="dssesign", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dssesign {__version__}")
    parser.add_argument(
        "--json", action="store_true", default=False, help="machine-readable output"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _cli_sign.register(commands)
    _cli_countersign.register(commands)
    _cli_merge.register(commands)
    _cli_verify.register(commands)
    _cli_trust.register(commands)
    _cli_hsm.register(commands)
    _cli_kms.register(commands)
    _cli_vault.register(commands)
    _cli_audit.register(commands)
    _cli_csr.register(commands)
    _cli_oci.register(commands)
    _cli_serve.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `dssesign` on `argv`; returns the exit code (argparse exits itself on --help)."""
    from ..limits import ENVIRONMENT_ERROR

    if ENVIRONMENT_ERROR is not None:
        print(f"error: {ENVIRONMENT_ERROR}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except VerificationError as exc:
        _report(exc, prefix=f"verification failed [{exc.code}]: ")
        return exc.exit_code
    except DssesignError as exc:
        _report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`dssesign ... | head -1`): stop quietly, as other tools do.
        # Python would still try to flush stdout at exit and complain; point it at /dev/null.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:  # a bug: still one line, and never an accept
        _report(exc, prefix="internal error: ")
        return 2


def _report(exc: BaseException, *, prefix: str = "") -> None:
    if os.environ.get("DSSESIGN_DEBUG") == "1":
        traceback.print_exc()
    from .._internal.text import escape_controls

    text = escape_controls(" ".join(str(exc).split()) or type(exc).__name__)
    print(f"error: {prefix}{text}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
