"""The `prefect-lipsync` command.

Each area registers its own subcommands (`register(subparsers)` in its `cli` module), imported
only when the command runs, so `prefect-lipsync probe` never pays for importing Prefect.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (module with a `register(subparsers)` function) in the order they appear in --help.
_SUBCOMMAND_MODULES = (
    "prefect_lipsync.media.cli",
    "prefect_lipsync.plan_cli",
    "prefect_lipsync.manifest.cli",
    "prefect_lipsync.emulator.cli",
    "prefect_lipsync.quality.cli",
    "prefect_lipsync.run_cli",
    "prefect_lipsync.team_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prefect-lipsync",
        description="Plan, run and check sync-3 lip-sync jobs on the Runware API.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # that area has no command yet
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
