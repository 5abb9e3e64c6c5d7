"""The `liverplan` command: the same functions as the desktop app, headless.

Each sub-command lives in liverplan/commands/<name>.py and exposes `add_parser(subparsers)`
(which sets `func`) so that capabilities can be added without touching this file's logic.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import liverplan.commands
from liverplan import __version__
from liverplan.errors import Cancelled, LiverPlanError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liverplan", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"liverplan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for mod in sorted(pkgutil.iter_modules(liverplan.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"liverplan.commands.{mod.name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (Cancelled, KeyboardInterrupt):
        print("\nStopped; nothing partial was kept.", file=sys.stderr)
        return 130
    except LiverPlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
