"""Entry point of ``sld``: discovers subcommands from the modules of this package.

A module ``sld_workflows/cli/<name>.py`` joins the command by defining ``register(subparsers)``,
which adds its parser(s) and sets ``func`` (called with the parsed args, returns an exit code).
Modules must import heavy dependencies inside their functions, so ``sld --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import sld_workflows
from sld_workflows.errors import SLDError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sld", description="Spin-lattice dynamics: run locally, or submit and run as FireWorks workflows."
    )
    parser.add_argument("--version", action="version", version=f"sld_workflows {sld_workflows.__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    package = importlib.import_module("sld_workflows.cli")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name == "main":
            continue
        module = importlib.import_module(f"sld_workflows.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (SLDError, ValueError, FileNotFoundError, KeyError) as exc:
        if args.debug:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
