"""`python -m tests.e2e._hsm_cli ...`: the `dssesign` command, with `hsm` registered if the CLI
does not register it yet (so these tests run before and after `dssesign.cli` wires `_cli_hsm`)."""

from __future__ import annotations

import argparse

from dssesign import _cli_hsm, cli

_build_parser = cli.build_parser


def _with_hsm() -> argparse.ArgumentParser:
    parser = _build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and "hsm" not in action.choices:
            _cli_hsm.register(action)
    return parser


cli.build_parser = _with_hsm

if __name__ == "__main__":
    raise SystemExit(cli.main())
